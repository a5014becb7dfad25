/*
 * Chapter 08 — event loop: the echo server as callbacks on a reusable loop.
 *
 * Chapter 07's server was a loop with the echo wired into it. Here the loop
 * is a library (loop.c, asyncio's API in C), the echo is a set of callbacks
 * on it (echo.c), and this file only sets them up and accepts:
 *
 *     listener readable  ->  on_accept:    accept a batch, hand each client
 *                                          to the echo (echo_add_client)
 *     SIGINT / SIGTERM   ->  on_stop:      close everything; the loop then
 *                                          has nothing left and returns
 *
 * All the server's state is in one struct handed to the callbacks as their
 * argument; nothing is file-static, so chapter 11 can run echo.c once per
 * thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "echo.h"
#include "loop.h"
#include "net.h"
#include "trace.h"

#define ACCEPT_BATCH 64

struct server {
    int listen_fd;
    long max_conns;
    struct echo echo;           /* the clients, their callbacks' state, the counts */
};

static void on_accept(struct loop *loop, int listen_fd, void *arg);

static void resume_accepting(struct loop *loop, void *arg)
{
    struct server *s = arg;
    if (s->listen_fd >= 0)
        loop_add_reader(loop, s->listen_fd, on_accept, s);
}

static void on_accept(struct loop *loop, int listen_fd, void *arg)
{
    struct server *s = arg;
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
                loop_call_later(loop, 100, resume_accepting, s);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                TRACE("accept error=%s", strerror(errno));
            }
            return;
        }
        TRACE("accept fd=%d peer=%s", fd, peer);
        if (s->max_conns > 0 && s->echo.client_count >= s->max_conns) {
            TRACE("refuse fd=%d reason=max-conns", fd);
            close(fd);
            continue;
        }
        echo_add_client(&s->echo, loop, fd);
    }
}

/* SIGINT/SIGTERM: stop accepting, close every client, drop the handlers.
 * With nothing left to wait for, loop_run returns by itself. */
static void on_stop(struct loop *loop, void *arg)
{
    struct server *s = arg;
    TRACE("stop clients=%ld", s->echo.client_count);
    if (s->listen_fd >= 0) {
        loop_remove_reader(loop, s->listen_fd);
        close(s->listen_fd);
    }
    s->listen_fd = -1;
    echo_close_all(&s->echo, loop);
    loop_remove_stop_handler(loop);
}

int main(int argc, char **argv)
{
    struct server s = { .listen_fd = -1 };  /* lives as long as the loop: all of main */
    long idle_seconds = 0;
    const struct cli_option options[] = {
        { "--idle-timeout", "SECONDS", "close a connection silent this long (default: never)",
          1, 86400, &idle_seconds },
        { "--max-conns", "N", "past N clients, accept and close new ones at once",
          1, 10000000, &s.max_conns },
        { "--slow-ms", "MS", "demo: sleep MS in every read callback (stalls everyone)",
          1, 60000, &s.echo.slow_ms },
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
    s.echo.idle_timeout_ms = idle_seconds * 1000;
    signal(SIGPIPE, SIG_IGN);           /* MSG_NOSIGNAL already; belt and braces */
    TRACE("fd limit raised to %ld", net_raise_fd_limit());

    struct loop *loop = loop_new();
    if (loop == NULL || net_reserve_open() < 0) {
        perror("server: setup");
        return 1;
    }
    /* Signal handlers first: a SIGTERM right after "listening on" must count. */
    if (loop_add_stop_handler(loop, on_stop, &s) < 0) {
        perror("server: signals");
        return 1;
    }
    s.listen_fd = contract_listen(&cli, SOMAXCONN);
    if (s.listen_fd < 0 || net_set_nonblocking(s.listen_fd) < 0 ||
        loop_add_reader(loop, s.listen_fd, on_accept, &s) < 0) {
        on_stop(loop, &s);
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
    contract_summary(&cli, s.echo.served, s.echo.echoed);
    return status < 0 ? 1 : 0;
}
