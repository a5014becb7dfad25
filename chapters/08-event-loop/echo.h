/*
 * echo: the echo server's callbacks, as a module a program sets up on a loop.
 *
 * Everything the callbacks need is in a struct echo that the program owns
 * and hands over, not in file-static variables: one struct echo per loop,
 * so chapter 11 runs these same callbacks once per thread, unchanged.
 *
 *     client readable  ->  on_readable:  read into the shared scratch buffer,
 *                                        echo straight back
 *     client writable  ->  on_writable:  (only while echo is pending) send it
 *     idle timer fires ->  on_idle:      close a client silent for too long
 *
 * Memory per connection is small and bounded: bytes are read into one
 * buffer shared by the echo's clients and sent back at once; only echo the
 * client is not reading fast enough gets copied into a buffer of its own (at
 * most ECHO_READ_SIZE: one read), and while it waits we stop reading from
 * that client, so TCP pushes back on it. An idle connection holds no buffer.
 */
#ifndef ECHO_H
#define ECHO_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define ECHO_READ_SIZE 16384    /* one read; also the most echo a client may owe */

struct echo_client {
    struct echo *echo;
    int fd;                     /* -1 once closed while held (below) */
    int held;                   /* on_read took a read: no reading until echo_resume */
    uint64_t last_active_ms;    /* loop time of the last byte moved */
    struct loop_handle *idle_timer;
    char *pending;              /* echo not yet sent, or NULL */
    size_t pending_start, pending_end;
    struct echo_client *prev, *next;    /* every client, for echo_close_all */
};

struct echo {
    /* Set by the program before the first client: */
    long idle_timeout_ms;       /* 0: never */
    long slow_ms;               /* demo: sleep this long in every read callback */
    /* Optional: see a read before it is echoed. Returning 1 takes it: the
     * client is then held (not read from) until echo_resume gives the bytes
     * to echo. Chapter 11's --work-thread; NULL echoes at once. */
    int (*on_read)(struct loop *loop, struct echo_client *c, const char *data, size_t len);
    void *arg;                  /* the program's own, for on_read */
    /* Kept by echo.c (read them, do not write them): */
    struct echo_client *clients;
    long client_count;
    unsigned long long served, echoed;
    char scratch[ECHO_READ_SIZE];   /* shared: this loop's callbacks never run at once */
};

/* Serve the connected, non-blocking socket fd on loop. The echo owns fd from
 * now on: on failure it is closed (and traced as refused). */
void echo_add_client(struct echo *e, struct loop *loop, int fd);

/* A held client (on_read returned 1): echo data (len bytes) now, and read
 * from it again. If the client was closed meanwhile, only frees it. */
void echo_resume(struct loop *loop, struct echo_client *c, const char *data, size_t len);

/* Close every client (a held one is freed by its echo_resume). */
void echo_close_all(struct echo *e, struct loop *loop);

#endif
