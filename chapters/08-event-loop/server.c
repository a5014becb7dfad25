/*
 * Chapter 08 — event loop: the echo server as callbacks on a reusable loop.
 *
 * Chapter 07's server was a loop with the echo wired into it. Here the loop
 * is a library (loop.c, asyncio's API in C) and the server is only what
 * happens on each event:
 *
 *     listener readable  ->  on_accept:    accept a batch, register each client
 *     client readable    ->  on_readable:  read, echo straight back
 *     client writable    ->  on_writable:  (only while echo is pending) send it
 *     idle timer fires   ->  on_idle:      close a client silent for too long
 *     SIGINT / SIGTERM   ->  on_stop:      close everything; the loop then
 *                                          has nothing left and returns
 *
 * Memory per connection is small and bounded: bytes are read into one
 * buffer shared by all clients and sent back at once; only echo the client
 * is not reading fast enough gets copied into a buffer of its own (at
 * most READ_SIZE: one read), and while it waits we stop reading from that
 * client, so TCP pushes back on it. An idle connection holds no buffer at all.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "io.h"
#include "loop.h"
#include "net.h"
#include "trace.h"

#define READ_SIZE 16384         /* one read; also the most echo a client may owe */
#define ACCEPT_BATCH 64

struct client {
    int fd;
    uint64_t last_active_ms;    /* loop time of the last byte moved */
    struct loop_handle *idle_timer;
    char *pending;              /* echo not yet sent, or NULL */
    size_t pending_start, pending_end;
    struct client *prev, *next; /* every client, for the shutdown */
};

static struct {
    int listen_fd;
    long idle_timeout_ms, max_conns, slow_ms;
    struct client *clients;
    long client_count;
    unsigned long long served, echoed;
    char scratch[READ_SIZE];    /* shared: callbacks never run at the same time */
} server = { .listen_fd = -1 };

static void on_readable(struct loop *loop, int fd, void *arg);
static void on_writable(struct loop *loop, int fd, void *arg);

static void close_client(struct loop *loop, struct client *c)
{
    loop_remove_reader(loop, c->fd);    /* leave the loop before close: */
    loop_remove_writer(loop, c->fd);    /* the number may be reused at once */
    loop_cancel(loop, c->idle_timer);
    close(c->fd);
    TRACE("close fd=%d", c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        server.clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    server.client_count--;
    free(c->pending);
    free(c);
}

/*
 * The idle timer is not moved on every byte: that would be a heap operation
 * per read. Each read only notes the time; when the timer fires, it checks
 * that note and either closes the client or sets itself for the new deadline.
 */
static void on_idle(struct loop *loop, void *arg)
{
    struct client *c = arg;
    uint64_t deadline = c->last_active_ms + (uint64_t)server.idle_timeout_ms;
    c->idle_timer = NULL;               /* a fired one-shot handle is gone */
    if (loop_time(loop) >= deadline) {
        TRACE("idle fd=%d after=%ldms", c->fd, server.idle_timeout_ms);
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
        TRACE("write fd=%d error=%s", c->fd, strerror(errno));
        return -1;
    }
    TRACE("write fd=%d n=%zd", c->fd, n);
    server.echoed += (unsigned long long)n;
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
        return;                         /* more to send: wait to be writable again */
    free(c->pending);                   /* all sent: no buffer while idle */
    c->pending = NULL;
    loop_remove_writer(loop, fd);
    if (loop_add_reader(loop, fd, on_readable, c) < 0)
        close_client(loop, c);
}

static void on_readable(struct loop *loop, int fd, void *arg)
{
    struct client *c = arg;
    if (server.slow_ms > 0) {
        /* The demo of what an event loop is not: this sleep blocks the one
         * thread that serves everybody. Every other client waits too. */
        struct timespec pause = { server.slow_ms / 1000, (server.slow_ms % 1000) * 1000000 };
        nanosleep(&pause, NULL);
    }
    ssize_t n = io_read(fd, server.scratch, sizeof server.scratch);
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
    ssize_t sent = send_some(loop, c, server.scratch, (size_t)n);   /* usually all of it */
    if (sent < 0) {
        close_client(loop, c);
        return;
    }
    if (sent == n)
        return;
    /* The client is not reading fast enough: keep the rest, and stop reading
     * from it until that is sent (back-pressure; at most READ_SIZE bytes). */
    c->pending_end = (size_t)(n - sent);
    c->pending_start = 0;
    c->pending = malloc(c->pending_end);
    if (c->pending == NULL) {
        close_client(loop, c);
        return;
    }
    memcpy(c->pending, server.scratch + sent, c->pending_end);
    loop_remove_reader(loop, fd);
    if (loop_add_writer(loop, fd, on_writable, c) < 0)
        close_client(loop, c);
}

static void add_client(struct loop *loop, int fd)
{
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL || loop_add_reader(loop, fd, on_readable, c) < 0) {
        TRACE("refuse fd=%d reason=%s", fd, strerror(errno));
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->last_active_ms = loop_time(loop);
    if (server.idle_timeout_ms > 0)
        c->idle_timer = loop_call_later(loop, (uint64_t)server.idle_timeout_ms, on_idle, c);
    c->next = server.clients;
    if (c->next != NULL)
        c->next->prev = c;
    server.clients = c;
    server.client_count++;
    server.served++;
}

static void on_accept(struct loop *loop, int listen_fd, void *arg);

static void resume_accepting(struct loop *loop, void *arg)
{
    (void)arg;
    if (server.listen_fd >= 0)
        loop_add_reader(loop, server.listen_fd, on_accept, NULL);
}

static void on_accept(struct loop *loop, int listen_fd, void *arg)
{
    (void)arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        char peer[NET_ADDRSTRLEN];
        int fd = net_accept_nonblocking(listen_fd, peer, sizeof peer);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                TRACE("shed reason=%s", errno == EMFILE ? "EMFILE" : "ENFILE");
            } else if (errno == ENOBUFS || errno == ENOMEM) {
                /* Out of memory there is nobody to shed: stop watching the
                 * listener for 100 ms rather than wake for it in a spin. */
                TRACE("accept error=%s: pausing 100 ms", strerror(errno));
                loop_remove_reader(loop, listen_fd);
                loop_call_later(loop, 100, resume_accepting, NULL);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                TRACE("accept error=%s", strerror(errno));
            }
            return;
        }
        TRACE("accept fd=%d peer=%s", fd, peer);
        if (server.max_conns > 0 && server.client_count >= server.max_conns) {
            TRACE("refuse fd=%d reason=max-conns", fd);
            close(fd);
            continue;
        }
        add_client(loop, fd);
    }
}

/* SIGINT/SIGTERM: stop accepting, close every client, drop the handlers.
 * With nothing left to wait for, loop_run returns by itself. */
static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    TRACE("stop clients=%ld", server.client_count);
    if (server.listen_fd >= 0) {
        loop_remove_reader(loop, server.listen_fd);
        close(server.listen_fd);
    }
    server.listen_fd = -1;
    while (server.clients != NULL)
        close_client(loop, server.clients);
    loop_remove_stop_handler(loop);
}

int main(int argc, char **argv)
{
    long idle_seconds = 0;
    const struct cli_option options[] = {
        { "--idle-timeout", "SECONDS", "close a connection silent this long (default: never)",
          1, 86400, &idle_seconds },
        { "--max-conns", "N", "past N clients, accept and close new ones at once",
          1, 10000000, &server.max_conns },
        { "--slow-ms", "MS", "demo: sleep MS in every read callback (stalls everyone)",
          1, 60000, &server.slow_ms },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 08: the echo server as callbacks on a reusable event loop.",
        .options = options,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    server.idle_timeout_ms = idle_seconds * 1000;
    signal(SIGPIPE, SIG_IGN);           /* MSG_NOSIGNAL already; belt and braces */
    TRACE("fd limit raised to %ld", net_raise_fd_limit());

    struct loop *loop = loop_new();
    if (loop == NULL || net_reserve_open() < 0) {
        perror("server: setup");
        return 1;
    }
    /* Signal handlers first: a SIGTERM right after "listening on" must count. */
    if (loop_add_stop_handler(loop, on_stop, NULL) < 0) {
        perror("server: signals");
        return 1;
    }
    server.listen_fd = contract_listen(&cli, SOMAXCONN);
    if (server.listen_fd < 0 || net_set_nonblocking(server.listen_fd) < 0 ||
        loop_add_reader(loop, server.listen_fd, on_accept, NULL) < 0) {
        on_stop(loop, NULL);
        loop_free(loop);
        return 1;
    }

    int status = loop_run(loop);        /* returns once on_stop has emptied it */
    if (status < 0)
        perror("server: loop");
    if (loop_free(loop) < 0) {
        perror("server: loop_free");    /* something was left registered: a bug */
        status = -1;
    }
    net_reserve_close();
    contract_summary(&cli, server.served, server.echoed);
    return status < 0 ? 1 : 0;
}
