/*
 * conn: one echo connection as a small state machine, shared by chapters 04-07.
 *
 * The I/O model of each chapter (a busy loop, select, poll, epoll) decides
 * *when* to touch a connection; this module decides *what* to do with it:
 * read what the socket has, send back what is pending, and say what the
 * connection waits for next. That split is why `diff` between two of those
 * chapters shows only the model changing.
 *
 * Back-pressure: each connection has one buffer of CONN_BUFFER_SIZE bytes for
 * echo not yet sent. When the client stops reading, its echo fills the buffer
 * and the connection stops asking to read (conn_wants drops CONN_WANT_READ):
 * the client's further bytes wait in the kernel, TCP flow control slows the
 * client down, and the server's memory for it stays bounded.
 */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>

#define CONN_BUFFER_SIZE 16384
#define CONN_ACCEPT_BATCH 64    /* at most this many accepts per wakeup */

/* What a connection waits for: a mask of these, or 0 when it should be closed. */
enum { CONN_WANT_READ = 1, CONN_WANT_WRITE = 2 };

/* What the model saw, passed to conn_service. */
enum {
    CONN_READABLE = 1,          /* the socket has data or end of stream */
    CONN_WRITABLE = 2,          /* the socket has room to send */
    CONN_DRAIN = 4,             /* edge-triggered: keep going until EAGAIN */
};

struct conn {
    int fd;
    int eof;                    /* the client half-closed: nothing more will come */
    int watching;               /* what the model last registered (07: one epoll_ctl
                                   only when it changes); unused by 04-06 */
    size_t start, end;          /* echo not yet sent: buf[start, end) */
    char buf[CONN_BUFFER_SIZE];
};

/* Totals for the summary line. */
extern unsigned long long conn_accepted, conn_bytes_echoed;

/*
 * Raise the descriptor limit to the hard limit and open the reserve
 * descriptor (see net_accept_nonblocking). Returns the limit, or -1.
 */
long conn_setup(void);
void conn_teardown(void);

/*
 * Accept the next waiting client, non-blocking, and count and trace it.
 * Returns its descriptor, or -1: errno EAGAIN when nobody else is waiting,
 * EMFILE when out of descriptors (one waiting client was shed: accepted and
 * closed at once, so the listener does not stay readable and make a readiness
 * loop spin; see net_accept_nonblocking).
 */
int conn_accept(int listen_fd);

/* Start tracking a new client (malloc'd). NULL if out of memory (fd closed). */
struct conn *conn_open(int fd);

/* The connection on descriptor fd, or NULL. */
struct conn *conn_of(int fd);

/* Highest descriptor with a connection, or -1 (the busy loop and select scan to it). */
int conn_max_fd(void);

/* Close the socket and forget the connection. */
void conn_close(struct conn *c);

/* Close every connection (at shutdown). */
void conn_close_all(void);

/* CONN_WANT_READ if there is room and the client may send more;
 * CONN_WANT_WRITE if echo is pending; 0 when finished. */
int conn_wants(const struct conn *c);

/*
 * Do the I/O the socket allows now, without blocking: read if ready says
 * readable, send back whatever is pending. With CONN_DRAIN, repeat until the
 * socket has nothing more to give or take (edge-triggered readiness only says
 * "something changed", once). Returns conn_wants(c): 0 means close it (the
 * client reset, or half-closed and got all its echo).
 */
int conn_service(struct conn *c, int ready);

#endif
