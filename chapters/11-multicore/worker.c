/*
 * worker.c: see worker.h. The echo itself is chapter 08's echo.c, linked
 * unchanged; what is here is what running it on N threads adds.
 *
 * --work-thread: a read that starts with "/sleep MS" stands for a request
 * that needs a blocking call (a disk read, a DNS lookup, a slow library).
 * The worker does not make that call: it hands the job to the work thread
 * (work.h), and the echo holds that client (reads nothing more from it)
 * while serving everybody else. When the job is done, its result (the echo
 * of those bytes, so the protocol is still plain echo) comes back to this
 * loop through loop_call_soon_threadsafe and is sent from here.
 */
#include "worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace.h"
#include "work.h"

#define JOB_MARKER "/sleep "
#define JOB_MAX_MS 10000

struct worker_options worker_options;

struct job {
    struct work_job work;       /* first: the work thread hands this back */
    struct worker *w;
    struct echo_client *client; /* held by the echo until echo_resume */
    long ms;
    size_t len;
    char data[];                /* the bytes to echo once the job is done */
};

/* On the work thread: the blocking part. The loop never runs this. */
static void job_run(struct work_job *work)
{
    work_block((long)((struct job *)work)->ms);
}

/* Back on the worker's loop (the work thread queued it here). */
static void job_done(struct loop *loop, void *arg)
{
    struct job *job = arg;
    job->w->jobs--;
    if (job->client->fd >= 0)           /* else closed meanwhile: echo_resume frees it */
        TRACE("done fd=%d ms=%ld", job->client->fd, job->ms);
    echo_resume(loop, job->client, job->data, job->len);
    free(job);
}

/* The echo's on_read: "/sleep MS" at the start of a read goes to the work
 * thread. Returns 1 if it did (the echo comes later, from job_done), 0 for
 * a plain read, which the echo sends back at once. */
static int start_job(struct loop *loop, struct echo_client *c, const char *data, size_t len)
{
    struct worker *w = c->echo->arg;
    char digits[8] = "";
    size_t skip = strlen(JOB_MARKER);
    if (len <= skip || memcmp(data, JOB_MARKER, skip) != 0)
        return 0;
    memcpy(digits, data + skip, len - skip < sizeof digits - 1 ? len - skip : sizeof digits - 1);
    long ms = strtol(digits, NULL, 10);
    struct job *job = ms > 0 && ms <= JOB_MAX_MS ? malloc(sizeof *job + len) : NULL;
    if (job == NULL)
        return 0;
    *job = (struct job){ .work = { .run = job_run, .done = job_done, .loop = loop },
                         .w = w, .client = c, .ms = ms, .len = len };
    memcpy(job->data, data, len);
    if (work_submit(&job->work) < 0) {  /* stopping: echo at once instead */
        free(job);
        return 0;
    }
    TRACE("job fd=%d ms=%ld", c->fd, ms);
    w->jobs++;
    return 1;
}

void worker_adopt(struct worker *w, int fd)
{
    if (w->stopping) {
        TRACE("refuse fd=%d reason=stopping", fd);
        close(fd);
        return;
    }
    echo_add_client(&w->echo, w->loop, fd);
}

void worker_stop(struct loop *loop, void *arg)
{
    struct worker *w = arg;
    TRACE("stop clients=%ld jobs=%ld", w->echo.client_count, w->jobs);
    echo_close_all(&w->echo, loop);
    w->stopping = 1;
}

int worker_run(struct worker *w)
{
    trace_set_thread(w->id);
    /* Not loop_run: that returns as soon as nothing is registered, and a
     * worker fed by an acceptor has nothing registered until a client comes. */
    while (!w->stopping || w->jobs > 0)
        if (loop_run_once(w->loop) < 0)
            return -1;
    return 0;
}

int worker_init(struct worker *w, int id)
{
    w->id = id;
    w->echo.idle_timeout_ms = worker_options.idle_timeout_ms;
    if (worker_options.work_thread) {
        w->echo.on_read = start_job;
        w->echo.arg = w;
    }
    w->loop = loop_new();
    return w->loop == NULL ? -1 : 0;
}

int worker_free(struct worker *w)
{
    if (w->loop != NULL && loop_free(w->loop) < 0)
        return -1;
    w->loop = NULL;
    return 0;
}
