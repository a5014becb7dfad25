/*
 * work.c: the work thread of work.h. A queue behind a mutex, and a condition
 * variable the thread sleeps on while the queue is empty.
 */
#include "work.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;     /* a job was queued, or work_stop was called */
    struct work_job *head, *tail;
    int running, stopping;
    pthread_t thread;
} work = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *work_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&work.lock);
    for (;;) {
        while (work.head == NULL && !work.stopping)
            pthread_cond_wait(&work.changed, &work.lock);
        struct work_job *job = work.head;
        if (job == NULL)
            break;              /* stopping, and the queue is empty */
        work.head = job->next;
        if (work.head == NULL)
            work.tail = NULL;
        pthread_mutex_unlock(&work.lock);
        job->run(job);          /* blocking is fine here: this is not a loop */
        /* The result must get back, or its loop would wait for it forever:
         * out of memory, try again a millisecond later. */
        while (loop_call_soon_threadsafe(job->loop, job->done, job) < 0)
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        pthread_mutex_lock(&work.lock);
    }
    pthread_mutex_unlock(&work.lock);
    return NULL;
}

int work_start(void)
{
    pthread_condattr_t attr;
    int err = pthread_condattr_init(&attr);
    if (err == 0) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);  /* work_block's clock */
        err = pthread_cond_init(&work.changed, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (err == 0) {
        err = pthread_create(&work.thread, NULL, work_main, NULL);
        if (err != 0)
            pthread_cond_destroy(&work.changed);
    }
    if (err != 0) {
        errno = err;
        return -1;
    }
    work.running = 1;
    return 0;
}

int work_submit(struct work_job *job)
{
    pthread_mutex_lock(&work.lock);
    int accepted = work.running && !work.stopping;
    if (accepted) {
        job->next = NULL;
        if (work.tail != NULL)
            work.tail->next = job;
        else
            work.head = job;
        work.tail = job;
        pthread_cond_broadcast(&work.changed);
    }
    pthread_mutex_unlock(&work.lock);
    if (!accepted)
        errno = ECANCELED;
    return accepted ? 0 : -1;
}

void work_stop(void)
{
    pthread_mutex_lock(&work.lock);
    work.stopping = 1;
    if (work.running)
        pthread_cond_broadcast(&work.changed);
    pthread_mutex_unlock(&work.lock);
}

void work_join(void)
{
    if (!work.running)
        return;
    pthread_join(work.thread, NULL);
    pthread_cond_destroy(&work.changed);
    work.running = 0;
}

void work_block(long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&work.lock);
    while (!work.stopping && pthread_cond_timedwait(&work.changed, &work.lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&work.lock);
}
