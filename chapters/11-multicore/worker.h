/*
 * worker: one event loop, run by one thread, with chapter 08's echo on it.
 *
 * 08's echo keeps all its state in a struct echo (echo.h), so every thread
 * can have its own: its own loop, clients, counters and scratch buffer. Only
 * the worker's own thread touches them (other threads reach it only through
 * loop_call_soon_threadsafe), so none of it needs a lock.
 */
#ifndef WORKER_H
#define WORKER_H

#include <pthread.h>

#include "echo.h"
#include "loop.h"

struct worker {
    int id;                     /* 1..N: the "thread=N" of the traces */
    pthread_t thread;           /* the one that runs it (set by whoever starts it) */
    struct loop *loop;
    struct echo echo;           /* 08's: the clients, the counts, the scratch buffer */
    long jobs;                  /* --work-thread jobs not back yet */
    int stopping;
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

/* On the calling thread (it becomes "thread=ID" in the traces): run the loop
 * until worker_stop has run and every job this worker handed to the work
 * thread has come back. */
int worker_run(struct worker *w);

/* On the worker's thread: close every client. From another thread:
 * loop_call_soon_threadsafe(w->loop, worker_stop, w). */
void worker_stop(struct loop *loop, void *arg);

/* Free the loop once the thread is done. -1/EBUSY if something was left on it. */
int worker_free(struct worker *w);

#endif
