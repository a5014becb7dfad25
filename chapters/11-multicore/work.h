/*
 * work: one thread for blocking jobs, so that no event loop ever blocks.
 * asyncio calls it loop.run_in_executor(); libuv, uv_queue_work().
 *
 *     loop thread                         work thread
 *     work_submit(job)  ── queue ──────►  job->run(job)      may block
 *     job->done(loop, job)  ◄──────────  loop_call_soon_threadsafe(job->loop, ...)
 *
 * The job's result comes back as an ordinary callback on the loop that
 * submitted it, so it touches that loop's data without a lock.
 */
#ifndef WORK_H
#define WORK_H

#include "loop.h"

struct work_job {
    void (*run)(struct work_job *job);  /* on the work thread */
    loop_callback *done;                /* then done(loop, job) on loop's thread */
    struct loop *loop;
    struct work_job *next;              /* the queue's */
};

/* Start the work thread. Returns 0, or -1 with errno. */
int work_start(void);

/* From any thread: queue the job. -1/ECANCELED if the thread is not running
 * or work_stop was called. Every job queued is run and comes back once. */
int work_submit(struct work_job *job);

/* From any thread: refuse new jobs, and cut work_block short. */
void work_stop(void);

/* Wait for the thread to finish the queue and exit (after work_stop). */
void work_join(void);

/* The demo's blocking call, for run: block the calling thread ms
 * milliseconds. Unlike a real blocking call (a disk read, a DNS lookup), it
 * returns early after work_stop, so a stop never waits for a long job. */
void work_block(long ms);

#endif
