/*
 * echo.c: see echo.h. Every callback finds its state through its argument
 * (a client, and the struct echo it belongs to), never in a global.
 */
#include "echo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "trace.h"

static void on_readable(struct loop *loop, int fd, void *arg);

static void close_client(struct loop *loop, struct echo_client *c)
{
    struct echo *e = c->echo;
    loop_remove_reader(loop, c->fd);    /* leave the loop before close: */
    loop_remove_writer(loop, c->fd);    /* the number may be reused at once */
    loop_cancel(loop, c->idle_timer);
    c->idle_timer = NULL;
    close(c->fd);
    TRACE("close fd=%d", c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        e->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    e->client_count--;
    free(c->pending);
    c->pending = NULL;
    if (c->held)
        c->fd = -1;                     /* whoever holds it frees it, in echo_resume */
    else
        free(c);
}

/*
 * The idle timer is not moved on every byte: that would be a heap operation
 * per read. Each read only notes the time; when the timer fires, it checks
 * that note and either closes the client or sets itself for the new deadline.
 */
static void on_idle(struct loop *loop, void *arg)
{
    struct echo_client *c = arg;
    long timeout_ms = c->echo->idle_timeout_ms;
    uint64_t deadline = c->last_active_ms + (uint64_t)timeout_ms;
    c->idle_timer = NULL;               /* a fired one-shot handle is gone */
    if (loop_time(loop) >= deadline) {
        TRACE("idle fd=%d after=%ldms", c->fd, timeout_ms);
        close_client(loop, c);
    } else {
        c->idle_timer = loop_call_at(loop, deadline, on_idle, c);
    }
}

/* Send what the socket takes now. Returns the bytes sent, or -1 if the client is gone. */
static ssize_t send_some(struct loop *loop, struct echo_client *c, const char *data, size_t len)
{
    ssize_t n = io_send(c->fd, data, len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0) {
        TRACE("write fd=%d error=%s", c->fd, strerror(errno));
        return -1;
    }
    TRACE("write fd=%d n=%zd", c->fd, n);
    c->echo->echoed += (unsigned long long)n;
    c->last_active_ms = loop_time(loop);
    return n;
}

static void on_writable(struct loop *loop, int fd, void *arg)
{
    struct echo_client *c = arg;
    ssize_t sent = send_some(loop, c, c->pending + c->pending_start, c->pending_end - c->pending_start);
    if (sent < 0) {
        close_client(loop, c);
        return;
    }
    c->pending_start += (size_t)sent;
    if (c->pending_start < c->pending_end)
        return;                         /* more to send: wait to be writable again */
    free(c->pending);                   /* all sent: no buffer while idle */
    c->pending = NULL;
    loop_remove_writer(loop, fd);
    if (loop_add_reader(loop, fd, on_readable, c) < 0)
        close_client(loop, c);
}

/* Echo len bytes: usually the socket takes them all. If not, keep the rest,
 * and stop reading from the client until that is sent (back-pressure; at
 * most one read's worth). Returns 0 if all was sent, 1 if some waits for
 * on_writable, -1 once the client is closed. */
static int echo_back(struct loop *loop, struct echo_client *c, const char *data, size_t len)
{
    ssize_t sent = send_some(loop, c, data, len);
    if (sent < 0) {
        close_client(loop, c);
        return -1;
    }
    if ((size_t)sent == len)
        return 0;
    c->pending_end = len - (size_t)sent;
    c->pending_start = 0;
    c->pending = malloc(c->pending_end);
    if (c->pending == NULL) {
        close_client(loop, c);
        return -1;
    }
    memcpy(c->pending, data + sent, c->pending_end);
    loop_remove_reader(loop, c->fd);
    if (loop_add_writer(loop, c->fd, on_writable, c) < 0) {
        close_client(loop, c);
        return -1;
    }
    return 1;
}

static void on_readable(struct loop *loop, int fd, void *arg)
{
    struct echo_client *c = arg;
    struct echo *e = c->echo;
    if (e->slow_ms > 0) {
        /* The demo of what an event loop is not: this sleep blocks the one
         * thread that serves everybody. Every other client waits too. */
        struct timespec pause = { e->slow_ms / 1000, (e->slow_ms % 1000) * 1000000 };
        nanosleep(&pause, NULL);
    }
    ssize_t n = io_read(fd, e->scratch, sizeof e->scratch);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        if (n == 0)
            TRACE("eof fd=%d", fd);     /* nothing pending: we read only then */
        else
            TRACE("read fd=%d error=%s", fd, strerror(errno));
        close_client(loop, c);
        return;
    }
    TRACE("read fd=%d n=%zd", fd, n);
    c->last_active_ms = loop_time(loop);
    if (e->on_read != NULL && e->on_read(loop, c, e->scratch, (size_t)n)) {
        c->held = 1;                    /* later bytes must not overtake that echo */
        loop_remove_reader(loop, fd);
        return;
    }
    echo_back(loop, c, e->scratch, (size_t)n);
}

void echo_add_client(struct echo *e, struct loop *loop, int fd)
{
    struct echo_client *c = calloc(1, sizeof *c);
    if (c == NULL || loop_add_reader(loop, fd, on_readable, c) < 0) {
        TRACE("refuse fd=%d reason=%s", fd, strerror(errno));
        free(c);
        close(fd);
        return;
    }
    c->echo = e;
    c->fd = fd;
    c->last_active_ms = loop_time(loop);
    if (e->idle_timeout_ms > 0)
        c->idle_timer = loop_call_later(loop, (uint64_t)e->idle_timeout_ms, on_idle, c);
    c->next = e->clients;
    if (c->next != NULL)
        c->next->prev = c;
    e->clients = c;
    e->client_count++;
    e->served++;
}

void echo_resume(struct loop *loop, struct echo_client *c, const char *data, size_t len)
{
    c->held = 0;
    if (c->fd < 0) {                    /* closed while held: only the struct is left */
        free(c);
        return;
    }
    if (echo_back(loop, c, data, len) == 0 && loop_add_reader(loop, c->fd, on_readable, c) < 0)
        close_client(loop, c);
}

void echo_close_all(struct echo *e, struct loop *loop)
{
    while (e->clients != NULL)
        close_client(loop, e->clients);
}
