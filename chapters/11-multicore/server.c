/*
 * Chapter 11 — multicore: chapter 08's server, times N threads.
 *
 * One event loop runs on one thread, so it uses one core, however many the
 * machine has. This server runs N workers (worker.c: a loop and 08's echo.c),
 * each on its own thread with its own loop. They share nothing; the only
 * question is how connections reach them, and --balance picks the answer:
 *
 *   reuseport (default)  each worker has its own listening socket, all on one
 *                        port (SO_REUSEPORT), and accepts for itself; the
 *                        kernel spreads connections over the sockets.
 *   acceptor             the main thread accepts, and hands each socket to
 *                        the next worker, round robin, with
 *                        loop_call_soon_threadsafe.
 *
 *   thread 0 (main)   a loop with the signal handlers (and the acceptor's listener)
 *   threads 1..N      a worker each; "thread=N" ends every trace line
 *   --work-thread     one more thread, for blocking jobs (work.h)
 *
 * Stopping: SIGINT/SIGTERM reaches the main loop (a signal belongs to one
 * loop), which closes its listener and sends stop_thread to every worker as
 * a thread-safe call. Each worker closes its own listener and clients on its
 * own thread and returns; main joins them all, frees everything, and prints
 * the summary line with each worker's count of connections.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "listener.h"
#include "net.h"
#include "roundrobin.h"
#include "trace.h"
#include "work.h"
#include "worker.h"

#define ACCEPT_BATCH 64
#define MAX_THREADS 256

static struct {
    int count, started;         /* workers: asked for, running */
    struct worker *workers;
    struct listener *listeners; /* reuseport: listeners[i] is worker i's */
    struct listener acceptor;   /* acceptor: the main thread's one */
    int use_acceptor;
    unsigned turn;              /* the acceptor's round robin: the next worker (roundrobin.h) */
    int stopped;
} server;

struct handoff {
    struct worker *to;
    int fd;
};

/* Runs on the worker's thread: the acceptor queued it there. */
static void adopt_handoff(struct loop *loop, void *arg)
{
    struct handoff *h = arg;
    (void)loop;
    worker_adopt(h->to, h->fd);
    free(h);
}

/* Acceptor: the socket goes to the next worker's loop, as a thread-safe call. */
static void hand_off(int fd)
{
    struct worker *to = &server.workers[round_robin_next(&server.turn, (unsigned)server.count)];
    struct handoff *h = malloc(sizeof *h);
    if (h != NULL) {
        *h = (struct handoff){ .to = to, .fd = fd };
        TRACE("handoff fd=%d to=%d", fd, to->id);
    }
    if (h == NULL || loop_call_soon_threadsafe(to->loop, adopt_handoff, h) < 0) {
        TRACE("refuse fd=%d reason=%s", fd, strerror(errno));
        free(h);
        close(fd);
    }
}

static void on_accept(struct loop *loop, int listen_fd, void *arg)
{
    struct listener *l = arg;
    (void)listen_fd;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        char peer[NET_ADDRSTRLEN];
        int fd = listener_accept(loop, l, peer, sizeof peer);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EMFILE)
                TRACE("accept error=%s", strerror(errno));
            return;
        }
        TRACE("accept fd=%d peer=%s", fd, peer);
        if (l->owner != NULL)
            worker_adopt(l->owner, fd);     /* reuseport: we are on its thread */
        else
            hand_off(fd);
    }
}

/* Runs on the worker's thread: on_stop queued it there. */
static void stop_thread(struct loop *loop, void *arg)
{
    struct worker *w = arg;
    listener_close(loop, &server.listeners[w->id - 1]);     /* reuseport's */
    worker_stop(loop, w);
}

/* SIGINT/SIGTERM, on the main loop. With its listener and handlers gone, the
 * main loop has nothing left, and loop_run returns. */
static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    if (server.stopped++)
        return;
    TRACE("stop threads=%d", server.started);
    listener_close(loop, &server.acceptor);
    loop_remove_stop_handler(loop);
    /* Each loop runs its thread-safe calls in the order they were queued. So
     * a socket handed off before now is adopted first, then closed by
     * stop_thread like any other client: none is lost in between. And a job
     * cut short by work_stop comes back after stop_thread: its client is
     * gone by then, and job_done only frees it. */
    for (int i = 0; i < server.started; i++)
        while (loop_call_soon_threadsafe(server.workers[i].loop, stop_thread, &server.workers[i]) < 0)
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);  /* out of memory: it must get there */
    work_stop();
}

static void *thread_main(void *arg)
{
    if (worker_run(arg) < 0) {
        perror("server: loop");         /* epoll_wait fails only on a bug */
        exit(1);
    }
    return NULL;
}

/* Everything up to "serving": returns 0, or 1 once it has said why. */
static int start(const struct cli *cli, struct loop *loop, int work_thread)
{
    int n = server.count;
    server.workers = calloc((size_t)n, sizeof *server.workers);
    server.listeners = calloc((size_t)n, sizeof *server.listeners);
    if (server.workers == NULL || server.listeners == NULL || net_reserve_open() < 0)
        goto failed;
    for (int i = 0; i < n; i++)
        server.listeners[i] = (struct listener){ .fd = -1, .on_accept = on_accept,
                                                 .owner = &server.workers[i] };
    for (int i = 0; i < n; i++)
        if (worker_init(&server.workers[i], i + 1) < 0)
            goto failed;
    /* Before "listening on": from that line on, a SIGTERM must find the
     * handler (the loop runs the callback once loop_run starts). */
    if (loop_add_stop_handler(loop, on_stop, NULL) < 0)
        goto failed;
    if (server.use_acceptor) {
        server.acceptor.fd = contract_listen(cli, SOMAXCONN);
        if (server.acceptor.fd < 0)
            return 1;
        if (net_set_nonblocking(server.acceptor.fd) < 0 || listener_watch(loop, &server.acceptor) < 0)
            goto failed;
    } else {
        if (listener_open_group(cli, server.listeners, n) < 0)
            return 1;
        for (int i = 0; i < n; i++)
            if (listener_watch(server.workers[i].loop, &server.listeners[i]) < 0)
                goto failed;
    }
    /* The threads are born with SIGINT and SIGTERM blocked (a new thread
     * inherits its creator's mask, as in chapter 03), so a stop signal is
     * delivered to the main thread, whose loop it belongs to, never to a
     * worker that would only pass it on. */
    sigset_t stop_signals, saved;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &saved);
    int err = work_thread && work_start() < 0 ? errno : 0;
    for (; err == 0 && server.started < n; server.started++) {
        struct worker *w = &server.workers[server.started];
        err = pthread_create(&w->thread, NULL, thread_main, w);
        if (err != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (err == 0)
        return 0;
    errno = err;
failed:
    perror("server: setup");
    return 1;
}

/* Join, free, and check that nothing was left behind. Returns 0 or 1. */
static int finish(const struct cli *cli, struct loop *loop, int status)
{
    unsigned long long served = 0, echoed = 0;
    for (int i = 0; i < server.started; i++)
        pthread_join(server.workers[i].thread, NULL);
    work_join();
    for (int i = 0; server.workers != NULL && i < server.count; i++) {
        struct worker *w = &server.workers[i];
        served += w->echo.served;
        echoed += w->echo.echoed;
        if (w->loop != NULL && server.listeners != NULL)
            listener_close(w->loop, &server.listeners[i]);  /* its thread never started */
        if (worker_free(w) < 0) {
            perror("server: worker loop_free");             /* left registered: a bug */
            status = 1;
        }
    }
    if (loop_free(loop) < 0) {
        perror("server: loop_free");
        status = 1;
    }
    net_reserve_close();
    if (status == 0) {
        /* The contract's summary line, and each worker's share after it. */
        fprintf(stderr, "%s: served %llu connection%s, echoed %llu bytes (per thread:", cli->program,
                served, served == 1 ? "" : "s", echoed);
        for (int i = 0; i < server.count; i++)
            fprintf(stderr, " %llu", server.workers[i].echo.served);
        fprintf(stderr, ")\n");
    }
    free(server.workers);
    free(server.listeners);
    return status;
}

int main(int argc, char **argv)
{
    static const char *const balance_modes[] = { "reuseport", "acceptor", NULL };
    long threads = 0, balance = 0, idle_seconds = 0, work_thread = 0;
    const struct cli_option options[] = {
        { "--threads", "N", "event loops, a thread each (default: the online CPUs)",
          1, MAX_THREADS, &threads },
        { "--idle-timeout", "SECONDS", "close a connection silent this long (default: never)",
          1, 86400, &idle_seconds },
        { "--work-thread", NULL, "demo: \"/sleep MS\" blocks a work thread MS ms, then echoes",
          0, 0, &work_thread },
        { 0 },
    };
    const struct cli_choice choices[] = {
        { "--balance", "MODE", "reuseport (default): a listener per loop; acceptor: one thread accepts",
          balance_modes, &balance },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 11: one event loop per thread; the kernel or an acceptor spreads the clients.",
        .options = options,
        .choices = choices,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    if (threads == 0) {
        threads = sysconf(_SC_NPROCESSORS_ONLN);
        threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    }
    server.count = (int)threads;
    server.use_acceptor = balance == 1;     /* balance_modes[1] */
    server.acceptor = (struct listener){ .fd = -1, .on_accept = on_accept };
    worker_options.idle_timeout_ms = idle_seconds * 1000;
    worker_options.work_thread = (int)work_thread;
    signal(SIGPIPE, SIG_IGN);
    trace_set_thread(0);                        /* each worker sets its own */
    TRACE("fd limit raised to %ld", net_raise_fd_limit());

    struct loop *loop = loop_new();
    if (loop == NULL) {
        perror("server: setup");
        return 1;
    }
    int status = start(&cli, loop, (int)work_thread);
    if (status == 0 && loop_run(loop) < 0) {    /* returns once on_stop has emptied it */
        perror("server: loop");
        status = 1;
    }
    on_stop(loop, NULL);                        /* after a failure: stop what did start */
    return finish(&cli, loop, status);
}
