/*
 * Chapter 12 — io_uring: ask the kernel to do the I/O, and hear when it is done.
 *
 * Chapters 05-11 ask "which sockets are ready?" and then make the read and
 * the send themselves. Here we hand the kernel the operations — accept on the
 * listener, recv, send these bytes — as entries in a shared ring (the SQ),
 * and the kernel puts one completion per result in another ring (the CQ):
 * "the recv for connection X is done: 12 bytes". ring.c maps the rings;
 * conn.c is a connection's echo on top of them, in one of two designs chosen
 * at start (a pool of provided buffers with a multishot recv, or a buffer per
 * connection: conn.h says how each works); this file is the rest: options,
 * set-up, the accept, and the loop that hands each completion to its owner.
 *
 * Each round of the loop is ONE system call: io_uring_enter submits every
 * entry queued since the last round and sleeps until at least one
 * completion is there; then we handle every completion waiting.
 *
 * Both rings are bounded, and nothing may be lost when one is full. A full
 * SQ: get_sqe hands the queued entries to the kernel to free their slots,
 * and if the kernel takes none right now, the connection waits (c->waiting,
 * conn.c) for the next round. A full CQ: the kernel keeps the completions
 * that do not fit and says so (IORING_SQ_CQ_OVERFLOW); reap has it move them
 * in.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "contract.h"
#include "net.h"
#include "ring.h"
#include "trace.h"

#define POOL_BUFS 1024          /* --buffers: how many in the pool */
#define SQ_ENTRIES 1024         /* --ring-entries: submission slots... */
#define CQ_PER_SQ 16            /* ...and 16 completion slots for each */
#define PAUSE_NS 100000000      /* out of descriptors, nobody to shed: wait 100 ms */

/*
 * What this server asks of the kernel: these operations, the newest of them
 * (RECV, SEND, CLOSE, READ) from Linux 5.6, and IORING_FEAT_NODROP (5.5).
 * Multishot accept (5.19), provided buffers with multishot recv (6.0) and
 * DEFER_TASKRUN (6.1) are used where the kernel has them, with fallbacks.
 * main checks all of it before it serves anyone.
 */
#define MIN_KERNEL "Linux 5.6"
static const struct { unsigned op; const char *name; } needed_ops[] = {
    { IORING_OP_ACCEPT, "ACCEPT" }, { IORING_OP_RECV, "RECV" }, { IORING_OP_SEND, "SEND" },
    { IORING_OP_CLOSE, "CLOSE" }, { IORING_OP_READ, "READ" }, { IORING_OP_TIMEOUT, "TIMEOUT" },
    { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" },
};

enum { ACCEPT_IDLE, ACCEPT_ARMED, ACCEPT_PAUSED };
enum { SIGNAL_DONE, SIGNAL_ARMED, SIGNAL_CANCELLING };     /* the signalfd read */

struct loop loop;

static struct {
    int listen_fd, signal_fd;
    long oneshot;               /* --oneshot, or a kernel without multishot accept */
    long own_buffers;           /* --own-buffers */
    const char *design;         /* which receive design, in words, for -v and --check */
    int accept_state, accept_cancelled, failed;
    int accept_seen;            /* an accept has completed once: multishot works */
    int signal_read;            /* SIGNAL_ARMED until a signal comes or the stop cancels it */
    struct signalfd_siginfo siginfo;    /* the signalfd read lands here */
    struct __kernel_timespec pause;
} server = { .listen_fd = -1, .signal_fd = -1, .pause = { 0, PAUSE_NS } };

/*
 * A free submission entry, counted in flight. When the SQ is full, hand its
 * entries to the kernel at once (no waiting) to free their slots. NULL if the
 * kernel takes none right now: short of memory (EAGAIN), or, on older
 * kernels, holding completions that overflowed the CQ until we reap them
 * (EBUSY). The caller must then try again later, never just drop the entry.
 */
struct io_uring_sqe *get_sqe(uint64_t user_data)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&loop.ring);
    if (sqe == NULL && (ring_submit(&loop.ring, 0) >= 0 || errno == EINTR))
        sqe = ring_get_sqe(&loop.ring);
    if (sqe == NULL)
        return NULL;
    sqe->user_data = user_data;
    loop.inflight++;
    return sqe;
}

struct io_uring_sqe *cancel(uint64_t target)
{
    struct io_uring_sqe *sqe = get_sqe(K_CANCEL);
    if (sqe != NULL) {
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->addr = target;     /* the user_data of the operation to cancel */
    }
    return sqe;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe(K_ACCEPT);
    if (sqe == NULL)
        return;                 /* still ACCEPT_IDLE: tried again next round */
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = server.listen_fd;
    sqe->accept_flags = SOCK_CLOEXEC;
    /* Multishot (5.19+): one entry, one completion per client, until it
     * fails or is cancelled. Without it: one entry per client. */
    sqe->ioprio = server.oneshot ? 0 : IORING_ACCEPT_MULTISHOT;
    server.accept_state = ACCEPT_ARMED;
}

/* Once a round: arm the accept if it is not; at the stop, cancel it (or the
 * pause), again next round if no entry was free. */
static void keep_accepting(void)
{
    if (!loop.stopping && server.accept_state == ACCEPT_IDLE)
        arm_accept();
    else if (loop.stopping && server.accept_state != ACCEPT_IDLE && !server.accept_cancelled)
        server.accept_cancelled = cancel(server.accept_state == ACCEPT_ARMED ? K_ACCEPT : K_PAUSE) != NULL;
}

/* Once a round, at a stop that no signal began (a fatal accept error): the
 * signalfd read is still in flight, counted, and would complete only when a
 * signal comes, so the count would never reach 0 and the loop would sleep in
 * io_uring_enter for ever. Cancel it too; again next round if no entry was
 * free. */
static void stop_signal_read(void)
{
    if (loop.stopping && server.signal_read == SIGNAL_ARMED && cancel(K_SIGNAL) != NULL)
        server.signal_read = SIGNAL_CANCELLING;
}

static void pause_accepting(void)
{
    struct io_uring_sqe *sqe = get_sqe(K_PAUSE);
    if (sqe == NULL)
        return;
    sqe->opcode = IORING_OP_TIMEOUT;    /* completes with -ETIME after server.pause */
    sqe->addr = (uint64_t)(uintptr_t)&server.pause;
    sqe->len = 1;
    server.accept_state = ACCEPT_PAUSED;
}

/*
 * Out of descriptors. io_uring's accept reserves a descriptor before it looks
 * for a client, so it fails at once even with nobody waiting: re-arming it
 * straight away would spin. If a client is waiting, shed it with the reserve
 * descriptor (see net.h) and accept again; if not, or if the kernel is out of
 * memory instead (nothing to shed with), pause for 100 ms.
 */
static void shed(int err)
{
    struct pollfd waiting = { .fd = server.listen_fd, .events = POLLIN };
    if ((err == EMFILE || err == ENFILE) && poll(&waiting, 1, 0) == 1) {
        net_reserve_close();
        int fd = accept(server.listen_fd, NULL, NULL);
        if (fd >= 0)
            close(fd);
        net_reserve_open();
        if (fd >= 0) {
            TRACE("shed reason=%s", err == EMFILE ? "EMFILE" : "ENFILE");
            return;             /* ACCEPT_IDLE: re-armed next round */
        }
    }
    pause_accepting();
}

static void on_accept(int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        server.accept_state = ACCEPT_IDLE;   /* no longer armed */
    /* A kernel without multishot accept refuses the entry itself: then the
     * FIRST completion is -EINVAL. Any later one is the listener's own error
     * (shut down under us...), fatal like any -EINVAL from accept. */
    int first = !server.accept_seen;
    server.accept_seen = 1;
    if (res >= 0) {
        conn_new(res);
    } else if (res == -ECANCELED || loop.stopping) {
        /* The stop: cancelled, or failing on the listener that begin_stop
         * shut down itself (-EINVAL, if that came before the cancel). */
    } else if (res == -EINVAL && !server.oneshot && first) {
        TRACE("multishot accept not supported: one-shot accepts");
        server.oneshot = 1;
    } else {
        int action = net_accept_action(-res);
        TRACE("accept error=%s", strerror(-res));
        if (action == NET_ACCEPT_BACK_OFF)
            shed(-res);
        else if (action == NET_ACCEPT_FATAL) {
            fprintf(stderr, "server: accept: %s\n", strerror(-res));
            server.failed = 1;
        }
    }
}

/* SIGINT/SIGTERM, or a fatal error: stop accepting (keep_accepting), cancel
 * every operation in flight (the signalfd read too: stop_signal_read). Each
 * connection is closed and freed when its cancelled operations have
 * completed. A cancel that finds no free entry waits a round like any other
 * entry: one lost here would leave the loop waiting forever. */
static void begin_stop(void)
{
    TRACE("stop: cancelling %u operations", loop.inflight);
    loop.stopping = 1;
    /* Stop accepting now, in the kernel too: clients that connect from here
     * on are refused at once, and those already queued are reset. Without
     * it, with a one-shot accept being cancelled, about 1 client in 50 that
     * connected just after the signal was left half-open after the server
     * had exited (ESTABLISHED on its side, no socket on ours), waiting for
     * ever (tests/conformance.bats, the random-moment SIGTERM test). */
    shutdown(server.listen_fd, SHUT_RDWR);
    conn_stop_all();
}

/* io_uring_enter failed in a way the loop cannot go on from. */
static void enter_failed(void)
{
    if (errno == EBADR)         /* ring_dropped too: the kernel lost completions */
        fprintf(stderr, "server: completions were lost (the kernel had no memory to keep"
                        " those that overflowed the CQ): stopping\n");
    else
        fprintf(stderr, "server: io_uring_enter: %s\n", strerror(errno));
    server.failed = 1;
}

static void handle(const struct io_uring_cqe *cqe)
{
    unsigned kind = (unsigned)(cqe->user_data & KIND_MASK);
    struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)KIND_MASK);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        loop.inflight--;        /* its last completion: the entry is done */
    if (c != NULL && kind == K_RECV)
        conn_on_recv(c, cqe->res, cqe->flags);
    else if (c != NULL)
        conn_on_send(c, cqe->res);
    else if (kind == K_ACCEPT)
        on_accept(cqe->res, cqe->flags);
    else if (kind == K_PAUSE)
        server.accept_state = ACCEPT_IDLE;
    else if (kind == K_SIGNAL) {
        server.signal_read = SIGNAL_DONE;
        if (!loop.stopping)
            begin_stop();       /* the signalfd read completed: a signal came */
    }
}

/*
 * Handle every completion in the CQ. A kernel with IORING_FEAT_NODROP keeps
 * those that did not fit and sets IORING_SQ_CQ_OVERFLOW; it moves them into
 * the CQ only inside io_uring_enter with GETEVENTS. Our next round's wait
 * would do that too, but after this round's submissions (which older kernels
 * refuse with EBUSY while they hold a backlog): so flush them now and handle
 * them, until the kernel holds none. -1 (errno) if the loop cannot go on.
 */
static int reap(void)
{
    for (;;) {
        for (unsigned n = ring_ready(&loop.ring); n > 0; n--) {
            struct io_uring_cqe cqe = *ring_cqe(&loop.ring, 0);
            ring_advance(&loop.ring, 1);   /* the slot is free: handlers may submit */
            handle(&cqe);
        }
        if (ring_dropped(&loop.ring) > 0) {
            errno = EBADR;      /* a connection would wait forever for its completion */
            return -1;
        }
        if (!ring_overflowed(&loop.ring))
            return 0;
        TRACE("cq overflow: flushing");
        if (ring_flush(&loop.ring) < 0 && errno != EINTR)
            return errno == EAGAIN || errno == EBUSY ? 0 : -1;  /* not now: next round */
    }
}

/* NULL if the kernel's io_uring can run this server; else why not. */
static const char *unusable(void)
{
    static char why[160];
    /*
     * Without NODROP, a completion that finds the CQ full is lost, and with
     * it a connection (its recv never comes back) or the stop (the count in
     * flight never reaches 0). No CQ size rules that out here: one multishot
     * accept completes once per client, however many come at once. Every
     * kernel with the operations below has NODROP, so refusing costs nothing.
     */
    if (!(loop.ring.features & IORING_FEAT_NODROP))
        return "this kernel would drop the completions that overflow the CQ (no IORING_FEAT_NODROP);"
               " it needs " MIN_KERNEL " or later";
    for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++) {
        int known = ring_supports(&loop.ring, needed_ops[i].op);
        if (known < 0 && errno == EINVAL)
            snprintf(why, sizeof why, "this kernel cannot list its io_uring operations"
                     " (no IORING_REGISTER_PROBE); it needs " MIN_KERNEL " or later");
        else if (known < 0)
            snprintf(why, sizeof why, "io_uring_register: %s", strerror(errno));
        else if (!known)
            snprintf(why, sizeof why, "this kernel has no IORING_OP_%s; it needs " MIN_KERNEL " or later",
                     needed_ops[i].name);
        if (known <= 0)
            return why;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long check = 0, entries = 0, buffers = POOL_BUFS;
    const struct cli_option options[] = {
        { "--oneshot", NULL, "one accept entry per client (no multishot accept)", 0, 1, &server.oneshot },
        { "--ring-entries", "N", "submission slots (default 1024), and 16 completion slots each;"
          " small rings show what happens when they fill", 1, 4096, &entries },
        { "--own-buffers", NULL, "a 16 KiB buffer per connection, one recv at a time"
          " (the design for kernels before 6.0)", 0, 1, &server.own_buffers },
        { "--buffers", "N", "provided buffers in the pool (default 1024); a small pool shows"
          " what happens when it runs dry", 1, 32768, &buffers },
        { "--check", NULL, "only check that io_uring works here, then exit", 0, 1, &check },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 12: an echo server on io_uring, completion-based I/O.",
        .options = options,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);

    entries = entries ? entries : SQ_ENTRIES;
    if (ring_init(&loop.ring, (unsigned)entries, (unsigned)entries * CQ_PER_SQ) < 0) {
        fprintf(stderr, "server: io_uring is not available: io_uring_setup: %s\n",
                ring_why_unavailable(errno));
        return 1;
    }
    const char *why = unusable();
    if (why == NULL && (server.design = conn_init(server.own_buffers, buffers)) == NULL) {
        perror("server: the buffer pool");
        why = "";
    } else if (why != NULL) {
        fprintf(stderr, "server: io_uring cannot run this server here: %s\n", why);
    } else if (check) {
        fprintf(stderr, "server: io_uring is available, with every operation this server uses"
                        " (it needs " MIN_KERNEL " or later; features %#x); receives into %s\n",
                loop.ring.features, server.design);
    }
    if (why != NULL || check) {
        ring_exit(&loop.ring);
        conn_exit();
        return why != NULL;
    }
    /* The signals wait, blocked, until the signalfd read in the ring takes
     * them: no handler, no race with going to sleep in io_uring_enter. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    long limit = net_raise_fd_limit();
    if (sigaction(SIGPIPE, &ignore, NULL) < 0 || sigprocmask(SIG_BLOCK, &stop_signals, NULL) < 0 ||
        (server.signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC)) < 0 || net_reserve_open() < 0) {
        perror("server: setup");
        ring_exit(&loop.ring);
        conn_exit();
        return 1;
    }
    TRACE("fd limit raised to %ld; io_uring sq=%u cq=%u, setup flags %#x, features %#x", limit,
          loop.ring.sq_entries, loop.ring.cq_entries, loop.ring.setup_flags, loop.ring.features);
    TRACE("receives into %s", server.design);
    server.listen_fd = contract_listen(&cli, SOMAXCONN);
    if (server.listen_fd < 0) {
        server.failed = 1;
        loop.stopping = 1;      /* nothing in flight: the loop is skipped */
    } else {
        struct io_uring_sqe *sqe = get_sqe(K_SIGNAL);
        sqe->opcode = IORING_OP_READ;   /* the ring is empty: sqe is not NULL */
        sqe->fd = server.signal_fd;
        sqe->addr = (uint64_t)(uintptr_t)&server.siginfo;
        sqe->len = sizeof server.siginfo;
        server.signal_read = SIGNAL_ARMED;
    }

    while (!loop.stopping || loop.inflight > 0) {
        keep_accepting();
        stop_signal_read();
        conn_retry();
        /* The one system call of the round: submit all, wait for one (not
         * while a connection waits for an entry: then straight on). */
        if (ring_submit(&loop.ring, loop.waiting ? 0 : 1) < 0 && errno != EINTR) {
            if (errno != EAGAIN && errno != EBUSY) {
                enter_failed();
                break;
            }
            /* Short of memory, or the kernel holds completions that did not
             * fit in the CQ: reap those (below), or back off 1 ms. */
            if (ring_ready(&loop.ring) == 0 && !ring_overflowed(&loop.ring))
                nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        }
        if (reap() < 0) {
            enter_failed();
            break;
        }
        if (server.failed && !loop.stopping)
            begin_stop();
    }

    /* Nothing is in flight any more, so closing the ring cannot leave the
     * kernel writing into freed memory. (Connections remain only if
     * io_uring_enter itself failed: the ring goes first, then they do.) */
    ring_exit(&loop.ring);
    conn_exit();
    if (server.listen_fd >= 0)
        close(server.listen_fd);
    close(server.signal_fd);
    net_reserve_close();
    if (server.listen_fd >= 0)
        contract_summary(&cli, loop.served, loop.echoed);
    return server.failed;
}
