/*
 * stream.c: asyncio-style streams on the chapter 08 loop. See stream.h for
 * the API and its promises; the notes here are about how they are kept.
 *
 * One function, process(), completes the pending read and the pending drain
 * whenever something may have changed (bytes arrived, the queue shrank, an
 * error, a new request). Callbacks run from inside process(); a request
 * made from inside a callback only records itself, and process() loops to
 * serve it: a read-write-drain-read chain never recurses.
 *
 * Bytes are read from the socket into one buffer per thread (scratch). The
 * pending read is served straight from there; only what is left over is
 * copied into the stream's own buffer. So a stream whose reads keep up owns
 * no buffer and no read allocates.
 */
#include "stream.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"
#include "net.h"
#include "trace.h"

#define SCRATCH_SIZE (64 * 1024)
#define ACCEPT_BATCH 64

enum read_kind { READ_NONE, READ_SOME, READ_EXACTLY, READ_UNTIL, READ_LINE };

struct stream {
    struct loop *loop;
    int fd;
    struct stream_options opts;
    int error;                  /* the first failure (errno), 0 if none */
    unsigned eof : 1;           /* the peer will send nothing more */
    unsigned reading : 1;       /* registered as a reader with the loop */
    unsigned paused : 1;        /* reading stopped: buffer over 2 x limit */
    unsigned writing : 1;       /* registered as a writer */
    unsigned write_paused : 1;  /* queue went over high water, not yet back at low */
    unsigned want_eof : 1;      /* write_eof asked: shut down once flushed */
    unsigned closing : 1;       /* close asked: no more reads or writes */
    unsigned closed : 1;        /* fd closed; finalize is scheduled */
    unsigned in_process : 1;

    /* Unread bytes: data[0, len). They live in `own` or, only while
     * on_readable runs, in the thread's scratch buffer. */
    const char *data;
    size_t len;
    char *own;
    size_t own_capacity;
    size_t searched;            /* readuntil: no separator in data[0, searched) */

    /* The pending read. */
    enum read_kind kind;
    size_t want;
    char separator[16];
    size_t seplen;
    stream_read_cb *read_cb;
    void *read_arg;

    /* The write queue: queue[qstart, qend). */
    char *queue;
    size_t qstart, qend, qcapacity;
    stream_done_cb *drain_cb;
    void *drain_arg;
    stream_done_cb *closed_cb;
    void *closed_arg;

    struct loop_handle *kick;   /* a scheduled process() */
    struct stream_server *server;
    struct stream *prev, *next; /* the server's list of open streams */
    void *user;
};

struct stream_server {
    struct loop *loop;
    int fd;
    struct stream_options opts;
    stream_client_cb *on_client;
    void *arg;
    struct stream *streams;
};

static _Thread_local char scratch[SCRATCH_SIZE];

static void on_readable(struct loop *loop, int fd, void *arg);
static void on_writable(struct loop *loop, int fd, void *arg);
static void process(struct stream *s);

static const struct stream_options default_options = {
    .limit = STREAM_DEFAULT_LIMIT,
    .high_water = 64 * 1024,
    .low_water = 16 * 1024,
    .write_cap = 16 * 1024 * 1024,
};

static struct stream_options complete_options(const struct stream_options *o)
{
    struct stream_options r = default_options;
    if (o != NULL) {
        if (o->limit) r.limit = o->limit;
        if (o->high_water) r.high_water = o->high_water;
        if (o->low_water) r.low_water = o->low_water;
        if (o->write_cap) r.write_cap = o->write_cap;
    }
    if (r.low_water > r.high_water)
        r.low_water = r.high_water;     /* asyncio refuses this; here the high mark wins */
    return r;
}

/* ---- the read side ------------------------------------------------------ */

static void fail(struct stream *s, int err)
{
    if (s->error == 0)
        s->error = err;
}

/* Read from the socket only when someone will want the bytes. */
static void update_reading(struct stream *s)
{
    if (s->len > 2 * s->opts.limit)
        s->paused = 1;
    else if (s->len <= s->opts.limit)
        s->paused = 0;
    int waiting = s->kind != READ_NONE;     /* a read waits: never pause it */
    int want = !s->eof && !s->error && !s->closing && (!s->paused || waiting);
    if (want && !s->reading && loop_add_reader(s->loop, s->fd, on_readable, s) == 0)
        s->reading = 1;
    else if (!want && s->reading && loop_remove_reader(s->loop, s->fd) == 0)
        s->reading = 0;
}

static void consume(struct stream *s, size_t n)
{
    s->data += n;
    s->len -= n;
    s->searched = n > s->searched ? 0 : s->searched - n;
    if (s->len == 0 && s->own != NULL) {
        free(s->own);               /* empty: an idle stream keeps no buffer */
        s->own = NULL;
        s->own_capacity = 0;
        s->data = NULL;
    }
}

/* Move unread bytes into the stream's own buffer (out of scratch, or to the
 * front of that buffer) and append n more. */
static int keep(struct stream *s, const char *more, size_t n)
{
    int borrowed = s->own == NULL;      /* any unread bytes are in scratch */
    if (!borrowed && s->data != s->own) {
        memmove(s->own, s->data, s->len);
        s->data = s->own;
    }
    if (s->len + n > s->own_capacity) {
        size_t capacity = s->own_capacity ? s->own_capacity : 4096;
        while (capacity < s->len + n)
            capacity *= 2;
        char *grown = realloc(s->own, capacity);
        if (grown == NULL)
            return -1;
        if (borrowed && s->len > 0)
            memcpy(grown, s->data, s->len);
        s->own = grown;
        s->own_capacity = capacity;
        s->data = grown;
    }
    if (n > 0)
        memcpy(s->own + s->len, more, n);
    s->len += n;
    return 0;
}

/* Find the separator in data, from where the last search stopped. */
static long find_separator(struct stream *s)
{
    size_t from = s->searched;
    if (s->len < s->seplen)
        return -1;
    for (size_t i = from; i + s->seplen <= s->len; i++)
        if (memcmp(s->data + i, s->separator, s->seplen) == 0)
            return (long)i;
    s->searched = s->len - s->seplen + 1;
    return -1;
}

/* Decide whether the pending read can complete now: sets status and how many
 * bytes to hand over (*give) and to drop afterwards (*drop). */
static int read_ready(struct stream *s, int *status, size_t *give, size_t *drop)
{
    int ended = s->eof || s->closing;
    *status = 0;
    *give = *drop = 0;
    if (s->error != 0 && s->len == 0) {
        *status = -s->error;
        return 1;
    }
    switch (s->kind) {
    case READ_SOME:
        if (s->len == 0 && !ended && s->error == 0)
            return 0;
        *give = *drop = s->len < s->want ? s->len : s->want;
        return 1;
    case READ_EXACTLY:
        if (s->len >= s->want) {
            *give = *drop = s->want;
            return 1;
        }
        if (!ended && s->error == 0)
            return 0;
        *status = s->error ? -s->error : STREAM_INCOMPLETE;
        *give = *drop = s->len;
        return 1;
    case READ_UNTIL:
    case READ_LINE: {
        long at = find_separator(s);
        size_t over = at >= 0 ? (size_t)at : (s->len + 1 > s->seplen ? s->len + 1 - s->seplen : 0);
        if (over > s->opts.limit) {
            *status = STREAM_LIMIT;
            /* readline drops the long line (or everything, if no end yet);
             * readuntil leaves it for the caller to deal with. */
            if (s->kind == READ_LINE) {
                *drop = at >= 0 ? (size_t)at + s->seplen : s->len;
                *give = at >= 0;    /* reported as len: did the line end go too? */
            }
            return 1;
        }
        if (at >= 0) {
            *give = *drop = (size_t)at + s->seplen;
            return 1;
        }
        if (!ended && s->error == 0)
            return 0;
        /* The end came before a separator: readline returns what there is,
         * readuntil says it is incomplete. */
        *status = s->error ? -s->error : s->kind == READ_LINE ? 0 : STREAM_INCOMPLETE;
        *give = *drop = s->len;
        return 1;
    }
    case READ_NONE:
        break;
    }
    return 0;
}

static int complete_read(struct stream *s)
{
    int status;
    size_t give, drop;
    if (s->kind == READ_NONE || !read_ready(s, &status, &give, &drop))
        return 0;
    stream_read_cb *cb = s->read_cb;
    void *arg = s->read_arg;
    s->kind = READ_NONE;            /* the callback may start the next read */
    if (status == STREAM_LIMIT)
        cb(s, status, NULL, give, arg);     /* readline: give is 1 or 0, see stream.h */
    else
        cb(s, status, give ? s->data : NULL, give, arg);
    consume(s, drop);
    return 1;
}

/* ---- the write side ----------------------------------------------------- */

size_t stream_write_queued(const struct stream *s)
{
    return s->qend - s->qstart;
}

/* Writing pauses when the queue grows past the high-water mark and resumes
 * once it is back at the low-water mark: two marks, so that a writer is not
 * woken for every few bytes the socket takes (asyncio's pause_writing and
 * resume_writing). */
static void update_write_paused(struct stream *s)
{
    size_t queued = stream_write_queued(s);
    if (queued > s->opts.high_water)
        s->write_paused = 1;
    else if (queued <= s->opts.low_water)
        s->write_paused = 0;
}

static int drain_ready(const struct stream *s)
{
    return s->error != 0 || !s->write_paused;
}

static int complete_drain(struct stream *s)
{
    if (s->drain_cb == NULL || !drain_ready(s))
        return 0;
    int status = s->error != 0 ? -s->error : 0;
    stream_done_cb *cb = s->drain_cb;
    s->drain_cb = NULL;
    cb(s, status, s->drain_arg);
    return 1;
}

static void finalize(struct loop *loop, void *arg);

/* Close the descriptor now; free the stream from the loop, a little later,
 * so that nobody holding the pointer in this iteration is left dangling. */
static void close_now(struct stream *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    s->closing = 1;
    if (s->reading)
        loop_remove_reader(s->loop, s->fd);
    if (s->writing)
        loop_remove_writer(s->loop, s->fd);
    s->reading = s->writing = 0;
    close(s->fd);
    TRACE("close fd=%d", s->fd);
    loop_cancel(s->loop, s->kick);
    s->kick = loop_call_soon(s->loop, finalize, s);
}

/* Queue empty: shut down sending if asked, close if asked. */
static void after_flush(struct stream *s)
{
    if (s->writing && loop_remove_writer(s->loop, s->fd) == 0)
        s->writing = 0;
    free(s->queue);
    s->queue = NULL;
    s->qstart = s->qend = s->qcapacity = 0;
    if (s->want_eof && !s->closing) {
        shutdown(s->fd, SHUT_WR);
        s->want_eof = 0;
    }
    if (s->closing)
        close_now(s);
}

static ssize_t send_now(struct stream *s, const char *data, size_t len)
{
    ssize_t n = io_send(s->fd, data, len);
    if (n >= 0) {
        TRACE("write fd=%d n=%zd", s->fd, n);
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    TRACE("write fd=%d error=%s", s->fd, strerror(errno));
    fail(s, errno);
    return -1;
}

static void on_writable(struct loop *loop, int fd, void *arg)
{
    struct stream *s = arg;
    (void)loop;
    (void)fd;
    ssize_t n = send_now(s, s->queue + s->qstart, stream_write_queued(s));
    if (n < 0) {
        close_now(s);               /* nobody will read what is left */
    } else {
        s->qstart += (size_t)n;
        update_write_paused(s);
        if (s->qstart == s->qend)
            after_flush(s);
    }
    process(s);
}

int stream_write(struct stream *s, const void *data, size_t len)
{
    if (s->error != 0 || s->closing || s->want_eof) {
        errno = s->error != 0 ? s->error : EPIPE;
        return -1;
    }
    size_t queued = stream_write_queued(s);
    if (queued + len > s->opts.write_cap) {
        errno = ENOBUFS;            /* the peer is not reading: do not grow */
        return -1;
    }
    size_t sent = 0;
    if (queued == 0) {
        ssize_t n = send_now(s, data, len);   /* the usual case: all of it, now */
        if (n < 0) {
            errno = s->error;
            return -1;
        }
        sent = (size_t)n;
    }
    if (sent == len)
        return 0;
    if (s->qend + (len - sent) > s->qcapacity) {
        /* Slide to the front, then grow to what is needed. */
        if (queued > 0)
            memmove(s->queue, s->queue + s->qstart, queued);
        s->qend = queued;
        s->qstart = 0;
        size_t capacity = s->qcapacity ? s->qcapacity : 16384;
        while (capacity < queued + (len - sent))
            capacity *= 2;
        if (capacity != s->qcapacity) {
            char *grown = realloc(s->queue, capacity);
            if (grown == NULL)
                return -1;
            s->queue = grown;
            s->qcapacity = capacity;
        }
    }
    memcpy(s->queue + s->qend, (const char *)data + sent, len - sent);
    s->qend += len - sent;
    update_write_paused(s);
    if (!s->writing && loop_add_writer(s->loop, s->fd, on_writable, s) == 0)
        s->writing = 1;
    return 0;
}

/* ---- process(): complete what can be completed ------------------------- */

static void process(struct stream *s)
{
    if (s->in_process)
        return;                     /* the outer call will see the new request */
    s->in_process = 1;
    while (complete_read(s) || complete_drain(s))
        ;
    s->in_process = 0;
    if (!s->closed)
        update_reading(s);
}

static void kicked(struct loop *loop, void *arg)
{
    struct stream *s = arg;
    (void)loop;
    s->kick = NULL;
    process(s);
}

/* A request made outside any of this stream's callbacks completes from the
 * loop, never inside the call that made it. */
static void schedule(struct stream *s)
{
    if (s->in_process || s->kick != NULL || s->closed)
        return;
    int read_may_complete = s->kind != READ_NONE &&
                            (s->len > 0 || s->eof || s->error != 0 || s->closing);
    int drain_may_complete = s->drain_cb != NULL && drain_ready(s);
    if (!read_may_complete && !drain_may_complete)
        return;                     /* on_readable / on_writable will call process() */
    s->kick = loop_call_soon(s->loop, kicked, s);
    if (s->kick == NULL)
        fail(s, ENOMEM);
}

static void on_readable(struct loop *loop, int fd, void *arg)
{
    struct stream *s = arg;
    (void)loop;
    ssize_t n = io_read(fd, scratch, sizeof scratch);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n > 0) {
        TRACE("read fd=%d n=%zd", fd, n);
        if (s->len == 0) {
            s->data = scratch;      /* borrow: serve the read from here */
            s->len = (size_t)n;
        } else if (keep(s, scratch, (size_t)n) < 0) {
            fail(s, ENOMEM);
        }
    } else if (n == 0) {
        TRACE("eof fd=%d", fd);
        s->eof = 1;
    } else {
        TRACE("read fd=%d error=%s", fd, strerror(errno));
        fail(s, errno);
    }
    process(s);
    /* What the reads did not take moves out of the scratch buffer, which the
     * next stream's read will overwrite. */
    if (s->len > 0 && s->own == NULL && keep(s, NULL, 0) < 0) {
        fail(s, ENOMEM);
        s->len = 0;
        s->data = NULL;
    }
}

static int start_read(struct stream *s, enum read_kind kind, size_t want, stream_read_cb *cb, void *arg)
{
    if (s->kind != READ_NONE || s->closed) {
        errno = s->closed ? EBADF : EBUSY;    /* one read at a time */
        return -1;
    }
    s->kind = kind;
    s->want = want;
    s->read_cb = cb;
    s->read_arg = arg;
    schedule(s);
    if (!s->in_process)
        update_reading(s);
    return 0;
}

int stream_read(struct stream *s, size_t n, stream_read_cb *cb, void *arg)
{
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    return start_read(s, READ_SOME, n, cb, arg);
}

int stream_readexactly(struct stream *s, size_t n, stream_read_cb *cb, void *arg)
{
    return start_read(s, READ_EXACTLY, n, cb, arg);
}

int stream_readuntil(struct stream *s, const char *separator, size_t seplen, stream_read_cb *cb, void *arg)
{
    if (seplen == 0 || seplen > sizeof s->separator) {
        errno = EINVAL;
        return -1;
    }
    if (s->kind == READ_NONE) {
        memcpy(s->separator, separator, seplen);
        s->seplen = seplen;
        s->searched = 0;
    }
    return start_read(s, READ_UNTIL, 0, cb, arg);
}

int stream_readline(struct stream *s, stream_read_cb *cb, void *arg)
{
    if (s->kind == READ_NONE) {
        s->separator[0] = '\n';
        s->seplen = 1;
        s->searched = 0;
    }
    return start_read(s, READ_LINE, 0, cb, arg);
}

void stream_cancel_read(struct stream *s)
{
    if (s->kind == READ_NONE)
        return;
    s->kind = READ_NONE;            /* the bytes stay buffered for the next read */
    s->read_cb = NULL;
    if (!s->in_process && !s->closed)
        update_reading(s);          /* nobody waits: reading may pause again */
}

int stream_at_eof(const struct stream *s)
{
    return s->eof && s->len == 0;
}

int stream_drain(struct stream *s, stream_done_cb *cb, void *arg)
{
    if (s->drain_cb != NULL || s->closed) {
        errno = s->closed ? EBADF : EBUSY;
        return -1;
    }
    s->drain_cb = cb;
    s->drain_arg = arg;
    schedule(s);
    return 0;
}

void stream_cancel_drain(struct stream *s)
{
    s->drain_cb = NULL;
}

int stream_write_eof(struct stream *s)
{
    if (s->closing) {
        errno = EBADF;
        return -1;
    }
    s->want_eof = 1;
    if (stream_write_queued(s) == 0)
        after_flush(s);
    return 0;
}

/* ---- closing ------------------------------------------------------------ */

static void unlink_from_server(struct stream *s)
{
    if (s->server == NULL)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->server->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->server = NULL;
}

/* From the loop, after the close: run the last callbacks, free the stream.
 * A read still pending sees the end of the stream; a drain, its outcome. */
static void finalize(struct loop *loop, void *arg)
{
    struct stream *s = arg;
    (void)loop;
    s->kick = NULL;
    s->in_process = 1;
    s->eof = 1;
    if (stream_write_queued(s) > 0)
        fail(s, EPIPE);             /* aborted with bytes unsent */
    while (complete_read(s) || complete_drain(s))
        ;
    if (s->closed_cb != NULL)
        s->closed_cb(s, s->error ? -s->error : 0, s->closed_arg);
    unlink_from_server(s);
    free(s->own);
    free(s->queue);
    free(s);
}

void stream_close(struct stream *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    if (s->reading && loop_remove_reader(s->loop, s->fd) == 0)
        s->reading = 0;
    if (stream_write_queued(s) == 0 || s->error != 0)
        close_now(s);
    /* else on_writable closes once the queue is sent */
}

void stream_abort(struct stream *s)
{
    s->closing = 1;
    close_now(s);
}

int stream_wait_closed(struct stream *s, stream_done_cb *cb, void *arg)
{
    s->closed_cb = cb;
    s->closed_arg = arg;
    return 0;
}

/* ---- information -------------------------------------------------------- */

int stream_peername(const struct stream *s, char *buf, size_t len)
{
    return net_peer_name(s->fd, buf, len);
}

int stream_sockname(const struct stream *s, char *buf, size_t len)
{
    return net_sock_name(s->fd, buf, len);
}

int stream_fd(const struct stream *s) { return s->fd; }
struct loop *stream_loop(const struct stream *s) { return s->loop; }
void *stream_get_user(const struct stream *s) { return s->user; }
void stream_set_user(struct stream *s, void *user) { s->user = user; }

const char *stream_strerror(int status)
{
    switch (status) {
    case 0: return "success";
    case STREAM_INCOMPLETE: return "end of stream before the expected bytes";
    case STREAM_LIMIT: return "separator not found within the limit";
    case STREAM_ERESOLVE: return "name does not resolve";
    default: return status < 0 ? strerror(-status) : "unknown status";
    }
}

/* ---- making streams: servers and connections --------------------------- */

static struct stream *stream_new(struct loop *loop, int fd, const struct stream_options *opts)
{
    struct stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    int one = 1;
    /* Small writes go out at once: an echo must not wait for Nagle's timer. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->loop = loop;
    s->fd = fd;
    s->opts = *opts;
    return s;
}

struct stream *stream_open_fd(struct loop *loop, int fd, const struct stream_options *opts)
{
    struct stream_options o = complete_options(opts);
    if (net_set_nonblocking(fd) < 0)
        return NULL;
    return stream_new(loop, fd, &o);
}

static void on_accept(struct loop *loop, int fd, void *arg)
{
    struct stream_server *server = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        char peer[NET_ADDRSTRLEN];
        int client = net_accept_nonblocking(fd, peer, sizeof peer);
        if (client < 0) {
            if (errno == EMFILE || errno == ENFILE)
                TRACE("shed reason=%s", errno == EMFILE ? "EMFILE" : "ENFILE");
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                TRACE("accept error=%s", strerror(errno));
            return;
        }
        TRACE("accept fd=%d peer=%s", client, peer);
        struct stream *s = stream_new(loop, client, &server->opts);
        if (s == NULL) {
            TRACE("shed fd=%d reason=no memory for a stream", client);
            close(client);
            continue;
        }
        s->server = server;
        s->next = server->streams;
        if (s->next != NULL)
            s->next->prev = s;
        server->streams = s;
        server->on_client(s, server->arg);
    }
}

struct stream_server *stream_serve(struct loop *loop, int listen_fd, const struct stream_options *opts,
                                   stream_client_cb *on_client, void *arg)
{
    struct stream_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return NULL;
    server->loop = loop;
    server->fd = listen_fd;
    server->opts = complete_options(opts);
    server->on_client = on_client;
    server->arg = arg;
    if (net_set_nonblocking(listen_fd) < 0 || loop_add_reader(loop, listen_fd, on_accept, server) < 0) {
        free(server);
        return NULL;
    }
    return server;
}

struct stream_server *stream_start_server(struct loop *loop, const char *host, int port,
                                          const struct stream_options *opts,
                                          stream_client_cb *on_client, void *arg, int *gai_error)
{
    int fd = net_listen(host, port, SOMAXCONN, gai_error);
    if (fd < 0)
        return NULL;
    struct stream_server *server = stream_serve(loop, fd, opts, on_client, arg);
    if (server == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return server;
}

int stream_server_sockname(const struct stream_server *server, char *buf, size_t len)
{
    return net_sock_name(server->fd, buf, len);
}

void stream_server_close(struct stream_server *server, int clients)
{
    loop_remove_reader(server->loop, server->fd);
    close(server->fd);
    while (server->streams != NULL) {
        struct stream *s = server->streams;
        unlink_from_server(s);
        if (clients == STREAM_CLOSE_CLIENTS)
            stream_close(s);
        else if (clients == STREAM_ABORT_CLIENTS)
            stream_abort(s);
    }
    free(server);
}

/* open_connection: a non-blocking connect, finished when the socket turns
 * writable (SO_ERROR says how it went) or abandoned when the timer fires. */
struct stream_connect {
    struct loop *loop;
    int fd;
    int status;
    struct loop_handle *timer;
    stream_connected_cb *cb;
    void *arg;
};

static void connect_done(struct stream_connect *c, int status)
{
    struct stream *s = NULL;
    if (c->fd >= 0)
        loop_remove_writer(c->loop, c->fd);
    loop_cancel(c->loop, c->timer);
    if (status == 0) {
        s = stream_new(c->loop, c->fd, &default_options);
        if (s == NULL)
            status = -ENOMEM;
    }
    if (status != 0 && c->fd >= 0)
        close(c->fd);
    c->cb(s, status, c->arg);
    free(c);
}

static void on_connect_writable(struct loop *loop, int fd, void *arg)
{
    struct stream_connect *c = arg;
    int err = 0;
    socklen_t len = sizeof err;
    (void)loop;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    connect_done(c, -err);
}

static void on_connect_timeout(struct loop *loop, void *arg)
{
    struct stream_connect *c = arg;
    (void)loop;
    c->timer = NULL;                /* it has fired: nothing to cancel */
    connect_done(c, -ETIMEDOUT);
}

static void on_connect_failed_early(struct loop *loop, void *arg)
{
    struct stream_connect *c = arg;
    (void)loop;
    c->timer = NULL;
    connect_done(c, c->status);
}

struct stream_connect *stream_open_connection(struct loop *loop, const char *host, int port,
                                              unsigned timeout_ms, stream_connected_cb *on_connected,
                                              void *arg)
{
    struct stream_connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->cb = on_connected;
    c->arg = arg;
    c->fd = -1;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV }, *list = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &list);
    if (rc != 0) {
        c->status = rc == EAI_SYSTEM ? -errno : STREAM_ERESOLVE;
    } else {
        c->fd = socket(list->ai_family, SOCK_STREAM, 0);
        if (c->fd < 0 || net_set_nonblocking(c->fd) < 0 || net_set_cloexec(c->fd) < 0)
            c->status = -errno;
        else if (connect(c->fd, list->ai_addr, list->ai_addrlen) < 0 && errno != EINPROGRESS)
            c->status = -errno;     /* e.g. refused at once, on loopback */
        freeaddrinfo(list);
    }
    /* Report even an immediate failure from the loop, like every completion. */
    if (c->status != 0)
        c->timer = loop_call_soon(loop, on_connect_failed_early, c);
    else if (loop_add_writer(loop, c->fd, on_connect_writable, c) == 0)
        c->timer = loop_call_later(loop, timeout_ms, on_connect_timeout, c);
    else {
        c->status = -errno;
        c->timer = loop_call_soon(loop, on_connect_failed_early, c);
    }
    if (c->timer == NULL) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

/* The caller gave up (a task was cancelled, say): undo everything; the
 * callback is never called. */
void stream_cancel_connect(struct stream_connect *c)
{
    if (c->fd >= 0) {
        loop_remove_writer(c->loop, c->fd);
        close(c->fd);
    }
    loop_cancel(c->loop, c->timer);
    free(c);
}
