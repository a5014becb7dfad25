/*
 * task_stream.c: chapter 09's stream calls as suspending calls. Each one is
 * the recipe of task.h: check, start the 09 call with a callback that wakes
 * the task, suspend with a way to withdraw the call. The state of a call
 * (where to copy the bytes, say) lives in a struct on the waiting task's
 * stack: the task is suspended inside the call while 09 may use it, and a
 * withdrawn 09 call never calls back, so nothing uses it afterwards.
 */
#include "task_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "trace.h"

/* ---- reads ------------------------------------------------------------------ */

enum read_kind { READ_SOME, READ_EXACTLY, READ_UNTIL, READ_LINE };

struct read_op {
    struct task *task;
    struct stream *s;
    enum read_kind kind;
    size_t n;                   /* read, readexactly: how many bytes */
    const char *sep;            /* readuntil */
    size_t seplen;
    char *buf;                  /* copy up to cap bytes here... */
    size_t cap;
    const char **view;          /* ...or hand out a view */
};

static void on_read(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    struct read_op *op = arg;
    intptr_t result;
    (void)s;
    if (status < 0) {
        result = status;
    } else if (status == STREAM_LIMIT) {
        result = op->kind == READ_LINE && len == 0 ? -E2BIG : -EMSGSIZE;
    } else {
        result = (intptr_t)len;     /* 0, or STREAM_INCOMPLETE: the bytes there are */
        if (op->buf != NULL && len > 0)
            memcpy(op->buf, data, len < op->cap ? len : op->cap);
        else if (op->view != NULL)
            *op->view = data;       /* valid while the task runs in this callback */
    }
    task_wake(op->task, result);
}

static void withdraw_read(void *op)
{
    stream_cancel_read(((struct read_op *)op)->s);
}

static ssize_t read_and_wait(struct read_op *op)
{
    int rc = task_check();
    if (rc != 0)
        return rc;
    op->task = task_current();
    switch (op->kind) {
    case READ_SOME: rc = stream_read(op->s, op->n, on_read, op); break;
    case READ_EXACTLY: rc = stream_readexactly(op->s, op->n, on_read, op); break;
    case READ_UNTIL: rc = stream_readuntil(op->s, op->sep, op->seplen, on_read, op); break;
    case READ_LINE: rc = stream_readline(op->s, on_read, op); break;
    }
    if (rc < 0)
        return -errno;
    return task_suspend(withdraw_read, op);
}

ssize_t task_read(struct stream *s, void *buf, size_t n)
{
    struct read_op op = { .s = s, .kind = READ_SOME, .n = n, .buf = buf, .cap = n };
    return read_and_wait(&op);
}

ssize_t task_read_view(struct stream *s, size_t n, const char **data)
{
    *data = NULL;
    struct read_op op = { .s = s, .kind = READ_SOME, .n = n, .view = data };
    return read_and_wait(&op);
}

ssize_t task_readexactly(struct stream *s, void *buf, size_t n)
{
    struct read_op op = { .s = s, .kind = READ_EXACTLY, .n = n, .buf = buf, .cap = n };
    return read_and_wait(&op);
}

ssize_t task_readuntil(struct stream *s, const char *sep, size_t seplen, char *buf, size_t cap)
{
    struct read_op op = { .s = s, .kind = READ_UNTIL, .sep = sep, .seplen = seplen, .buf = buf, .cap = cap };
    return read_and_wait(&op);
}

ssize_t task_readline(struct stream *s, char *buf, size_t cap)
{
    struct read_op op = { .s = s, .kind = READ_LINE, .buf = buf, .cap = cap };
    return read_and_wait(&op);
}

ssize_t task_readline_view(struct stream *s, const char **data)
{
    *data = NULL;
    struct read_op op = { .s = s, .kind = READ_LINE, .view = data };
    return read_and_wait(&op);
}

/* ---- writes, drain, close ---------------------------------------------------- */

struct done_op {
    struct task *task;
    struct stream *s;
};

static void on_done(struct stream *s, int status, void *arg)
{
    (void)s;
    task_wake(((struct done_op *)arg)->task, status);
}

static void withdraw_drain(void *op)
{
    stream_cancel_drain(((struct done_op *)op)->s);
}


int task_write(struct stream *s, const void *data, size_t len)
{
    return stream_write(s, data, len) < 0 ? -errno : 0;
}

int task_drain(struct stream *s)
{
    int rc = task_check();
    if (rc != 0)
        return rc;
    struct done_op op = { .task = task_current(), .s = s };
    if (stream_drain(s, on_done, &op) < 0)
        return -errno;
    return (int)task_suspend(withdraw_drain, &op);
}

int task_write_eof(struct stream *s)
{
    return stream_write_eof(s) < 0 ? -errno : 0;
}

void task_close(struct stream *s)
{
    stream_close(s);
}

/* wait_closed promises that s is freed when it returns, and a cancel or a
 * timeout must not break that promise (the caller could then neither use s
 * nor know whether it may). So they do not withdraw the wait: they turn the
 * close into an abort (queued bytes dropped), and the task waits on, shielded,
 * for the stream's last callback, which an abort makes come from the loop at
 * once. */
struct closing_op {
    struct task *task;
    struct stream *s;
    int done, status;
};

static void on_closed(struct stream *s, int status, void *arg)
{
    struct closing_op *op = arg;
    (void)s;
    op->done = 1;
    op->status = status;
    task_wake(op->task, status);
}

static void abort_instead(void *arg)
{
    stream_abort(((struct closing_op *)arg)->s);
}

int task_wait_closed(struct stream *s)
{
    struct closing_op op = { .task = task_current(), .s = s };
    if (op.task == NULL)
        return -EPERM;
    int rc = task_check();
    if (stream_wait_closed(s, on_closed, &op) < 0)
        return -errno;
    if (rc != 0)
        stream_abort(s);            /* cancelled or late already: abort, then wait */
    else
        rc = (int)task_suspend(abort_instead, &op);
    while (!op.done)
        task_suspend(NULL, &op);    /* cannot be interrupted: the close is near */
    return rc;
}

/* ---- open_connection ------------------------------------------------------------ */

struct connect_op {
    struct task *task;
    const char *host;           /* the caller's: it waits in this call meanwhile */
    int port;
    unsigned timeout_ms;
    struct stream **out;
    struct loop_handle *start;          /* before the connect has begun */
    struct stream_connect *connecting;  /* while it is under way */
};

static void on_connected(struct stream *s, int status, void *arg)
{
    struct connect_op *op = arg;
    op->connecting = NULL;
    *op->out = s;
    task_wake(op->task, status);
}

/* getaddrinfo may want more stack than a task has: start the connect from
 * the loop's stack. */
static void connect_from_loop(struct loop *loop, void *arg)
{
    struct connect_op *op = arg;
    op->start = NULL;
    op->connecting = stream_open_connection(loop, op->host, op->port, op->timeout_ms, on_connected, op);
    if (op->connecting == NULL)
        task_wake(op->task, -errno);
}

static void withdraw_connect(void *arg)
{
    struct connect_op *op = arg;
    if (op->start != NULL)
        loop_cancel(task_loop(op->task), op->start);
    if (op->connecting != NULL)
        stream_cancel_connect(op->connecting);
}

int task_open_connection(const char *host, int port, unsigned timeout_ms, struct stream **out)
{
    *out = NULL;
    int rc = task_check();
    if (rc != 0)
        return rc;
    struct connect_op op = { .task = task_current(), .host = host, .port = port,
                             .timeout_ms = timeout_ms, .out = out };
    op.start = loop_call_soon(loop_current(), connect_from_loop, &op);  /* the one running this task */
    if (op.start == NULL)
        return -errno;
    return (int)task_suspend(withdraw_connect, &op);
}

/* ---- servers ------------------------------------------------------------------- */

struct client {
    struct task_server *server;     /* NULL once the server is closed */
    struct stream *stream;
    struct task *task;
    task_handler *handler;          /* copies: the server may be gone when it runs */
    void *arg;
    struct client *prev, *next;
};

struct task_server {
    struct loop *loop;
    struct stream_server *streams;
    task_handler *handler;
    void *arg;
    struct task_options topts;
    struct client *clients;
    size_t count;
};

static void unlink_client(struct client *c)
{
    struct task_server *server = c->server;
    if (server == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        server->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    server->count--;
    c->server = NULL;
}

static intptr_t client_main(void *arg)
{
    struct client *c = arg;
    c->handler(c->stream, c->arg);
    unlink_client(c);
    free(c);
    return 0;
}

static void on_client(struct stream *s, void *arg)
{
    struct task_server *server = arg;
    struct client *c = calloc(1, sizeof *c);
    if (c != NULL) {
        *c = (struct client){ .server = server, .stream = s, .handler = server->handler, .arg = server->arg };
        c->task = task_spawn(server->loop, client_main, c, &server->topts);
    }
    if (c == NULL || c->task == NULL) {
        TRACE("shed fd=%d reason=no memory for a task", stream_fd(s));
        free(c);
        stream_abort(s);
        return;
    }
    c->next = server->clients;
    if (c->next != NULL)
        c->next->prev = c;
    server->clients = c;
    server->count++;
}

struct task_server *task_serve(struct loop *loop, int listen_fd, const struct stream_options *opts,
                               task_handler *handler, void *arg, const struct task_options *topts)
{
    struct task_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return NULL;
    server->loop = loop;
    server->handler = handler;
    server->arg = arg;
    if (topts != NULL)
        server->topts = *topts;
    server->topts.detached = 1;
    server->streams = stream_serve(loop, listen_fd, opts, on_client, server);
    if (server->streams == NULL) {
        free(server);
        return NULL;
    }
    return server;
}

struct task_server *task_start_server(struct loop *loop, const char *host, int port,
                                      const struct stream_options *opts, task_handler *handler,
                                      void *arg, int *gai_error)
{
    int fd = net_listen(host, port, SOMAXCONN, gai_error);
    if (fd < 0)
        return NULL;
    struct task_server *server = task_serve(loop, fd, opts, handler, arg, NULL);
    if (server == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return server;
}

void task_server_close(struct task_server *server)
{
    stream_server_close(server->streams, STREAM_KEEP_CLIENTS);  /* the handlers own them */
    while (server->clients != NULL) {
        struct client *c = server->clients;
        unlink_client(c);
        if (task_started(c->task)) {
            task_cancel(c->task);   /* its pending call returns -ECANCELED */
        } else {
            /* Its handler will never run (a task cancelled before it starts
             * does not start), so nobody else would close its stream. */
            stream_abort(c->stream);
            task_cancel(c->task);   /* frees the task: it is detached */
            free(c);
        }
    }
    free(server);
}

size_t task_server_clients(const struct task_server *server)
{
    return server->count;
}
