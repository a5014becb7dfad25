/*
 * worker.c: chapter 08's echo callbacks, one set per loop. Read 08's
 * server.c first; the differences are "server." becoming "c->w->", a
 * " thread=N" at the end of every trace line, and --work-thread.
 *
 * --work-thread: a read that starts with "/sleep MS" stands for a request
 * that needs a blocking call (a disk read, a DNS lookup, a slow library).
 * The worker does not make that call: it hands the job to the work thread
 * (work.h), stops reading from that client meanwhile, and goes on serving
 * everybody else. When the job is done, its result (the echo of those bytes,
 * so the protocol is still plain echo) comes back to this loop through
 * loop_call_soon_threadsafe and is sent from here.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "trace.h"
#include "work.h"

#define JOB_MARKER "/sleep "
#define JOB_MAX_MS 10000

struct worker_options worker_options;

struct job {
    struct work_job work;       /* first: the work thread hands this back */
    struct worker *w;
    struct client *client;      /* NULL once the client is gone */
    long ms;
    size_t len;
    char data[];                /* the bytes to echo once the job is done */
};

struct client {
    int fd;
    struct worker *w;
    uint64_t last_active_ms;    /* loop time of the last byte moved */
    struct loop_handle *idle_timer;
    struct job *job;            /* a job on the work thread, or NULL */
    char *pending;              /* echo not yet sent, or NULL */
    size_t pending_start, pending_end;
    struct client *prev, *next;
};

static void on_readable(struct loop *loop, int fd, void *arg);

static void close_client(struct loop *loop, struct client *c)
{
    struct worker *w = c->w;
    loop_remove_reader(loop, c->fd);
    loop_remove_writer(loop, c->fd);
    loop_cancel(loop, c->idle_timer);
    if (c->job != NULL)
        c->job->client = NULL;  /* it still comes back, and is freed then */
    close(c->fd);
    TRACE("close fd=%d thread=%d", c->fd, w->id);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->client_count--;
    free(c->pending);
    free(c);
}

/* Lazy idle timer, as in 08: reads only note the time; the timer checks it. */
static void on_idle(struct loop *loop, void *arg)
{
    struct client *c = arg;
    uint64_t deadline = c->last_active_ms + (uint64_t)worker_options.idle_timeout_ms;
    c->idle_timer = NULL;
    if (loop_time(loop) >= deadline) {
        TRACE("idle fd=%d after=%ldms thread=%d", c->fd, worker_options.idle_timeout_ms, c->w->id);
        close_client(loop, c);
    } else {
        c->idle_timer = loop_call_at(loop, deadline, on_idle, c);
    }
}

/* Send what the socket takes now. Returns the bytes sent, or -1 if the client is gone. */
static ssize_t send_some(struct loop *loop, struct client *c, const char *data, size_t len)
{
    ssize_t n = io_send(c->fd, data, len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0) {
        TRACE("write fd=%d error=%s thread=%d", c->fd, strerror(errno), c->w->id);
        return -1;
    }
    TRACE("write fd=%d n=%zd thread=%d", c->fd, n, c->w->id);
    c->w->echoed += (unsigned long long)n;
    c->last_active_ms = loop_time(loop);
    return n;
}

static void on_writable(struct loop *loop, int fd, void *arg)
{
    struct client *c = arg;
    ssize_t sent = send_some(loop, c, c->pending + c->pending_start, c->pending_end - c->pending_start);
    if (sent < 0) {
        close_client(loop, c);
        return;
    }
    c->pending_start += (size_t)sent;
    if (c->pending_start < c->pending_end)
        return;
    free(c->pending);
    c->pending = NULL;
    loop_remove_writer(loop, fd);
    if (loop_add_reader(loop, fd, on_readable, c) < 0)
        close_client(loop, c);
}

/* Echo len bytes: send what fits, keep the rest and stop reading from this
 * client until it is sent (back-pressure, as in 08); otherwise read on. */
static void echo_back(struct loop *loop, struct client *c, const char *data, size_t len)
{
    ssize_t sent = send_some(loop, c, data, len);
    if (sent < 0) {
        close_client(loop, c);
        return;
    }
    if ((size_t)sent == len) {
        if (loop_add_reader(loop, c->fd, on_readable, c) < 0)  /* no-op if still there */
            close_client(loop, c);
        return;
    }
    c->pending_end = len - (size_t)sent;
    c->pending_start = 0;
    c->pending = malloc(c->pending_end);
    if (c->pending == NULL) {
        close_client(loop, c);
        return;
    }
    memcpy(c->pending, data + sent, c->pending_end);
    loop_remove_reader(loop, c->fd);
    if (loop_add_writer(loop, c->fd, on_writable, c) < 0)
        close_client(loop, c);
}

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
    if (job->client != NULL) {
        TRACE("done fd=%d ms=%ld thread=%d", job->client->fd, job->ms, job->w->id);
        job->client->job = NULL;
        echo_back(loop, job->client, job->data, job->len);
    }
    free(job);
}

/* "/sleep MS" at the start of a read: hand it to the work thread. Returns 1
 * if it did (the echo comes later, from job_done), 0 for a plain read. */
static int start_job(struct loop *loop, struct client *c, const char *data, size_t len)
{
    char digits[8] = "";
    size_t skip = strlen(JOB_MARKER);
    if (!worker_options.work_thread || len <= skip || memcmp(data, JOB_MARKER, skip) != 0)
        return 0;
    memcpy(digits, data + skip, len - skip < sizeof digits - 1 ? len - skip : sizeof digits - 1);
    long ms = strtol(digits, NULL, 10);
    struct job *job = ms > 0 && ms <= JOB_MAX_MS ? malloc(sizeof *job + len) : NULL;
    if (job == NULL)
        return 0;
    *job = (struct job){ .work = { .run = job_run, .done = job_done, .loop = loop },
                         .w = c->w, .client = c, .ms = ms, .len = len };
    memcpy(job->data, data, len);
    if (work_submit(&job->work) < 0) {  /* stopping: echo at once instead */
        free(job);
        return 0;
    }
    TRACE("job fd=%d ms=%ld thread=%d", c->fd, ms, c->w->id);
    c->job = job;
    c->w->jobs++;
    loop_remove_reader(loop, c->fd);    /* later bytes must not overtake this echo */
    return 1;
}

static void on_readable(struct loop *loop, int fd, void *arg)
{
    struct client *c = arg;
    char *scratch = c->w->scratch;
    ssize_t n = io_read(fd, scratch, WORKER_READ_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        if (n == 0)
            TRACE("eof fd=%d thread=%d", fd, c->w->id);
        else
            TRACE("read fd=%d error=%s thread=%d", fd, strerror(errno), c->w->id);
        close_client(loop, c);
        return;
    }
    TRACE("read fd=%d n=%zd thread=%d", fd, n, c->w->id);
    c->last_active_ms = loop_time(loop);
    if (!start_job(loop, c, scratch, (size_t)n))
        echo_back(loop, c, scratch, (size_t)n);
}

void worker_adopt(struct worker *w, int fd)
{
    struct client *c = w->stopping ? NULL : calloc(1, sizeof *c);
    if (c == NULL || loop_add_reader(w->loop, fd, on_readable, c) < 0) {
        TRACE("refuse fd=%d reason=%s thread=%d", fd, w->stopping ? "stopping" : strerror(errno), w->id);
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->w = w;
    c->last_active_ms = loop_time(w->loop);
    if (worker_options.idle_timeout_ms > 0)
        c->idle_timer = loop_call_later(w->loop, (uint64_t)worker_options.idle_timeout_ms, on_idle, c);
    c->next = w->clients;
    if (c->next != NULL)
        c->next->prev = c;
    w->clients = c;
    w->client_count++;
    w->served++;
}

void worker_stop(struct loop *loop, void *arg)
{
    struct worker *w = arg;
    TRACE("stop clients=%ld jobs=%ld thread=%d", w->client_count, w->jobs, w->id);
    while (w->clients != NULL)
        close_client(loop, w->clients);
    w->stopping = 1;
}

int worker_run(struct worker *w)
{
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
