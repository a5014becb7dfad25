/*
 * worker: one event loop's echo server, run by one thread.
 *
 * This is chapter 08's server.c with its globals gathered into a struct, so
 * that every thread can have its own: its own loop, clients, counters and
 * scratch buffer. Only the worker's own thread touches them (other threads
 * reach it only through loop_call_soon_threadsafe), so none of it needs a lock.
 */
#ifndef WORKER_H
#define WORKER_H

#include <pthread.h>

#include "loop.h"

#define WORKER_READ_SIZE 16384  /* one read; also the most echo a client may owe */

struct client;

struct worker {
    int id;                     /* 1..N: the "thread=N" of the traces */
    pthread_t thread;           /* the one that runs it (set by whoever starts it) */
    struct loop *loop;
    struct client *clients;     /* every client, for the stop */
    long client_count;
    long jobs;                  /* --work-thread jobs not back yet */
    int stopping;
    unsigned long long served, echoed;
    char scratch[WORKER_READ_SIZE]; /* shared by this loop's clients only */
};

/* Set once by main, before any thread starts; read-only afterwards. */
extern struct worker_options {
    long idle_timeout_ms;       /* 0: never */
    int work_thread;            /* "/sleep MS" runs on the work thread (work.h) */
} worker_options;

/* Create the worker's loop. Returns 0, or -1 with errno. */
int worker_init(struct worker *w, int id);

/* On the worker's thread: serve the connected, non-blocking socket fd. */
void worker_adopt(struct worker *w, int fd);

/* Run the loop on the calling thread until worker_stop has run and every
 * job this worker handed to the work thread has come back. */
int worker_run(struct worker *w);

/* On the worker's thread: close every client. From another thread:
 * loop_call_soon_threadsafe(w->loop, worker_stop, w). */
void worker_stop(struct loop *loop, void *arg);

/* Free the loop once the thread is done. -1/EBUSY if something was left on it. */
int worker_free(struct worker *w);

#endif
