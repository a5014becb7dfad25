/*
 * Chapter 12 — io_uring: ask the kernel to do the I/O, and hear when it is done.
 *
 * Chapters 05-11 ask "which sockets are ready?" and then make the read and
 * the send themselves. Here we hand the kernel the operations — accept on the
 * listener, recv into this buffer, send these bytes — as entries in a shared
 * ring (the SQ), and the kernel puts one completion per operation in another
 * ring (the CQ): "the recv for connection X is done: 12 bytes". ring.c maps
 * the two rings; this file is the echo on top of them.
 *
 * One operation at a time per connection: recv, then send what came (again
 * for the rest, if the send was short), then recv again. So a connection
 * never receives while its echo is unsent: a client that does not read its
 * echo stops being read (back-pressure), and memory per connection stays one
 * buffer of BUF_SIZE bytes.
 *
 * Each round of the loop is ONE system call: io_uring_enter submits every
 * entry queued since the last round and sleeps until at least one completion
 * is there; then we handle every completion waiting. With many busy clients
 * one call carries many echoes: fewer than one system call per echo.
 *
 * Both rings are bounded, and nothing may be lost when one is full. A full
 * SQ: get_sqe hands the queued entries to the kernel to free their slots,
 * and if the kernel takes none right now, the connection waits (in our
 * memory, c->waiting) for the next round. A full CQ: the kernel keeps the
 * completions that do not fit and says so (IORING_SQ_CQ_OVERFLOW); reap
 * has it move them in, and handles them, before the round ends.
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
#include "contract.h"
#include "net.h"
#include "ring.h"
#include "trace.h"

#define BUF_SIZE 16384          /* per connection: echo not yet sent, at most */
#define SQ_ENTRIES 1024         /* --ring-entries: submission slots... */
#define CQ_PER_SQ 16            /* ...and 16 completion slots for each */
#define PAUSE_NS 100000000      /* out of descriptors, nobody to shed: wait 100 ms */

/*
 * What this server asks of the kernel: these operations, the newest of them
 * (RECV, SEND, CLOSE, READ) from Linux 5.6, and IORING_FEAT_NODROP (5.5).
 * Multishot accept (5.19) and DEFER_TASKRUN (6.1) are used where the kernel
 * has them, with fallbacks. main checks all of it before it serves anyone.
 */
#define MIN_KERNEL "Linux 5.6"
static const struct { unsigned op; const char *name; } needed_ops[] = {
    { IORING_OP_ACCEPT, "ACCEPT" }, { IORING_OP_RECV, "RECV" }, { IORING_OP_SEND, "SEND" },
    { IORING_OP_CLOSE, "CLOSE" }, { IORING_OP_READ, "READ" }, { IORING_OP_TIMEOUT, "TIMEOUT" },
    { IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL" },
};

/*
 * A completion carries back the 64-bit user_data of its submission. Ours is a
 * connection's address with the kind of operation in its 3 low bits (malloc
 * aligns to at least 8), or just a kind for the server's own operations.
 */
enum kind { K_ACCEPT = 1, K_SIGNAL, K_PAUSE, K_CANCEL, K_CLOSE, K_RECV, K_SEND };
#define KIND_MASK 7u

struct conn {
    int fd;
    unsigned busy;              /* K_RECV or K_SEND in flight, or 0 */
    unsigned waiting;           /* K_RECV, K_SEND or K_CANCEL that found no free entry, or 0 */
    size_t start, end;          /* echo not yet sent: buf[start, end) */
    struct conn *prev, *next;   /* every connection, for the shutdown */
    char buf[BUF_SIZE];
};

enum { ACCEPT_IDLE, ACCEPT_ARMED, ACCEPT_PAUSED };

static struct {
    struct ring ring;
    int listen_fd, signal_fd;
    long oneshot;               /* --oneshot, or a kernel without multishot accept */
    int accept_state, accept_cancelled, stopping, failed;
    unsigned inflight;          /* operations submitted and not yet completed */
    unsigned waiting;           /* connections with c->waiting set */
    struct conn *conns;
    unsigned long long served, echoed;
    struct signalfd_siginfo siginfo;    /* the signalfd read lands here */
    struct __kernel_timespec pause;
} s = { .listen_fd = -1, .signal_fd = -1, .pause = { 0, PAUSE_NS } };

/*
 * A free submission entry, counted in flight. When the SQ is full, hand its
 * entries to the kernel at once (no waiting) to free their slots. NULL if the
 * kernel takes none right now: short of memory (EAGAIN), or, on older
 * kernels, holding completions that overflowed the CQ until we reap them
 * (EBUSY). The caller must then try again later, never just drop the entry.
 */
static struct io_uring_sqe *get_sqe(uint64_t user_data)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&s.ring);
    if (sqe == NULL && (ring_submit(&s.ring, 0) >= 0 || errno == EINTR))
        sqe = ring_get_sqe(&s.ring);
    if (sqe == NULL)
        return NULL;
    sqe->user_data = user_data;
    s.inflight++;
    return sqe;
}

static struct io_uring_sqe *cancel(uint64_t target)
{
    struct io_uring_sqe *sqe = get_sqe(K_CANCEL);
    if (sqe != NULL) {
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->addr = target;     /* the user_data of the operation to cancel */
    }
    return sqe;
}

/* The connection is idle (nothing of it in flight): close it and free it. */
static void close_conn(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(K_CLOSE);
    if (sqe != NULL) {
        sqe->opcode = IORING_OP_CLOSE;  /* batched with the rest: no close(2) */
        sqe->fd = c->fd;
    } else {
        close(c->fd);
    }
    TRACE("close fd=%d", c->fd);
    if (c->waiting)
        s.waiting--;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s.conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);            /* safe: no entry in flight points into it */
}

/*
 * Queue the connection's next operation: a recv into the empty buffer, the
 * send of what is left of the echo, or (K_CANCEL, at the stop) the cancel of
 * the one in flight. With no free entry, the connection waits for the next
 * round (retry_waiting) and this returns -1: nothing is dropped.
 */
static int submit_io(struct conn *c, unsigned kind)
{
    struct io_uring_sqe *sqe = kind == K_CANCEL ? cancel((uint64_t)(uintptr_t)c | c->busy)
                                                : get_sqe((uint64_t)(uintptr_t)c | kind);
    if (sqe == NULL) {
        TRACE("sq full fd=%d: waits a round", c->fd);
        if (!c->waiting)
            s.waiting++;
        c->waiting = kind;
        return -1;
    }
    if (kind == K_CANCEL)
        return 0;
    sqe->opcode = kind == K_RECV ? IORING_OP_RECV : IORING_OP_SEND;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)(kind == K_RECV ? c->buf : c->buf + c->start);
    sqe->len = (unsigned)(kind == K_RECV ? BUF_SIZE : c->end - c->start);
    sqe->msg_flags = kind == K_SEND ? MSG_NOSIGNAL : 0;    /* EPIPE, not SIGPIPE */
    c->busy = kind;
    return 0;
}

/* Connections that found no free entry, another try. Rare (the kernel had
 * refused entries), so a walk over every connection is fine. */
static void retry_waiting(void)
{
    for (struct conn *c = s.conns; c != NULL && s.waiting > 0; c = c->next) {
        unsigned kind = c->waiting;
        if (kind == 0)
            continue;
        c->waiting = 0;
        s.waiting--;
        if (submit_io(c, kind) < 0)
            return;             /* still full: the rest wait another round */
    }
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe(K_ACCEPT);
    if (sqe == NULL)
        return;                 /* still ACCEPT_IDLE: tried again next round */
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = s.listen_fd;
    sqe->accept_flags = SOCK_CLOEXEC;
    /* Multishot (5.19+): one entry, one completion per client, until it
     * fails or is cancelled. Without it: one entry per client. */
    sqe->ioprio = s.oneshot ? 0 : IORING_ACCEPT_MULTISHOT;
    s.accept_state = ACCEPT_ARMED;
}

/* Once a round: arm the accept if it is not; at the stop, cancel it (or the
 * pause), again next round if no entry was free. */
static void keep_accepting(void)
{
    if (!s.stopping && s.accept_state == ACCEPT_IDLE)
        arm_accept();
    else if (s.stopping && s.accept_state != ACCEPT_IDLE && !s.accept_cancelled)
        s.accept_cancelled = cancel(s.accept_state == ACCEPT_ARMED ? K_ACCEPT : K_PAUSE) != NULL;
}

static void pause_accepting(void)
{
    struct io_uring_sqe *sqe = get_sqe(K_PAUSE);
    if (sqe == NULL)
        return;
    sqe->opcode = IORING_OP_TIMEOUT;    /* completes with -ETIME after s.pause */
    sqe->addr = (uint64_t)(uintptr_t)&s.pause;
    sqe->len = 1;
    s.accept_state = ACCEPT_PAUSED;
}

static void new_conn(int fd)
{
    struct conn *c = malloc(sizeof *c);    /* buffer pages touched only once used */
    if (c == NULL || s.stopping) {
        free(c);
        close(fd);
        return;
    }
    s.served++;
    if (trace_enabled) {        /* the peer's name costs a call: only when tracing */
        char peer[NET_ADDRSTRLEN] = "?";
        net_peer_name(fd, peer, sizeof peer);
        TRACE("accept fd=%d peer=%s", fd, peer);
    }
    /* Field by field: assigning a compound literal to *c would zero buf too,
     * touching all four of its pages for a client that may never send. */
    c->fd = fd;
    c->busy = c->waiting = 0;
    c->start = c->end = 0;
    c->prev = NULL;
    c->next = s.conns;
    if (s.conns != NULL)
        s.conns->prev = c;
    s.conns = c;
    submit_io(c, K_RECV);
}

/*
 * Out of descriptors. io_uring's accept reserves a descriptor before it looks
 * for a client, so it fails at once even with nobody waiting: re-arming it
 * straight away would spin. If a client is waiting, shed it with the reserve
 * descriptor (see net.h) and accept again; if not, pause for 100 ms.
 */
static void shed(int err)
{
    struct pollfd waiting = { .fd = s.listen_fd, .events = POLLIN };
    if (err != EMFILE && err != ENFILE)
        ;                       /* out of memory: nothing to shed with */
    else if (poll(&waiting, 1, 0) == 1) {
        net_reserve_close();
        int fd = accept(s.listen_fd, NULL, NULL);
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
        s.accept_state = ACCEPT_IDLE;   /* no longer armed */
    if (res >= 0) {
        new_conn(res);
    } else if (res == -EINVAL && !s.oneshot) {
        TRACE("multishot accept not supported: one-shot accepts");
        s.oneshot = 1;
    } else if (res != -ECANCELED) {
        int action = net_accept_action(-res);
        TRACE("accept error=%s", strerror(-res));
        if (action == NET_ACCEPT_BACK_OFF)
            shed(-res);
        else if (action == NET_ACCEPT_FATAL) {
            fprintf(stderr, "server: accept: %s\n", strerror(-res));
            s.failed = 1;
        }
    }
}

static void on_conn(struct conn *c, unsigned kind, int res)
{
    c->busy = 0;
    if (res < 0) {
        if (res != -ECANCELED)
            TRACE("%s fd=%d error=%s", kind == K_RECV ? "read" : "write", c->fd, strerror(-res));
        close_conn(c);          /* reset, EPIPE, or cancelled at shutdown */
    } else if (s.stopping) {
        close_conn(c);
    } else if (kind == K_RECV && res == 0) {
        TRACE("eof fd=%d", c->fd);      /* all its echo went out before this recv */
        close_conn(c);
    } else if (kind == K_RECV) {
        TRACE("read fd=%d n=%d", c->fd, res);
        c->start = 0;
        c->end = (size_t)res;
        submit_io(c, K_SEND);
    } else {
        TRACE("write fd=%d n=%d", c->fd, res);
        s.echoed += (unsigned)res;
        c->start += (size_t)res;
        submit_io(c, c->start < c->end ? K_SEND : K_RECV);     /* a short send: the rest */
    }
}

/* SIGINT/SIGTERM: stop accepting (keep_accepting), cancel every operation
 * in flight. Each connection is closed and freed when its cancelled
 * operation completes. A cancel that finds no free entry waits a round like
 * any other entry: one lost here would leave the loop waiting forever. */
static void begin_stop(void)
{
    TRACE("stop: cancelling %u operations", s.inflight);
    s.stopping = 1;
    /* Stop accepting now, in the kernel too: clients that connect from here
     * on are refused at once, and those already queued are reset. Without
     * it, with a one-shot accept being cancelled, about 1 client in 50 that
     * connected just after the signal was left half-open after the server
     * had exited (ESTABLISHED on its side, no socket on ours), waiting for
     * ever (tests/conformance.bats, the random-moment SIGTERM test). */
    shutdown(s.listen_fd, SHUT_RDWR);
    for (struct conn *c = s.conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->busy)
            submit_io(c, K_CANCEL);
        else
            close_conn(c);      /* nothing in flight (it may wait for an entry) */
    }
}

/* io_uring_enter failed in a way the loop cannot go on from. */
static void enter_failed(void)
{
    if (errno == EBADR)         /* ring_dropped too: the kernel lost completions */
        fprintf(stderr, "server: completions were lost (the kernel had no memory to keep"
                        " those that overflowed the CQ): stopping\n");
    else
        fprintf(stderr, "server: io_uring_enter: %s\n", strerror(errno));
    s.failed = 1;
}

static void handle(const struct io_uring_cqe *cqe)
{
    unsigned kind = (unsigned)(cqe->user_data & KIND_MASK);
    struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)KIND_MASK);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        s.inflight--;           /* its last completion: the entry is done */
    if (c != NULL)
        on_conn(c, kind, cqe->res);
    else if (kind == K_ACCEPT)
        on_accept(cqe->res, cqe->flags);
    else if (kind == K_PAUSE)
        s.accept_state = ACCEPT_IDLE;
    else if (kind == K_SIGNAL)
        begin_stop();           /* the signalfd read completed: a signal came */
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
        for (unsigned n = ring_ready(&s.ring); n > 0; n--) {
            struct io_uring_cqe cqe = *ring_cqe(&s.ring, 0);
            ring_advance(&s.ring, 1);   /* the slot is free: handlers may submit */
            handle(&cqe);
        }
        if (ring_dropped(&s.ring) > 0) {
            errno = EBADR;      /* a connection would wait forever for its completion */
            return -1;
        }
        if (!ring_overflowed(&s.ring))
            return 0;
        TRACE("cq overflow: flushing");
        if (ring_flush(&s.ring) < 0 && errno != EINTR)
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
    if (!(s.ring.features & IORING_FEAT_NODROP))
        return "this kernel would drop the completions that overflow the CQ (no IORING_FEAT_NODROP);"
               " it needs " MIN_KERNEL " or later";
    for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++) {
        int known = ring_supports(&s.ring, needed_ops[i].op);
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
    long check = 0, entries = 0;
    const struct cli_option options[] = {
        { "--oneshot", NULL, "one accept entry per client (no multishot accept)", 0, 1, &s.oneshot },
        { "--ring-entries", "N", "submission slots (default 1024), and 16 completion slots each;"
          " small rings show what happens when they fill", 1, 4096, &entries },
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
    if (ring_init(&s.ring, (unsigned)entries, (unsigned)entries * CQ_PER_SQ) < 0) {
        fprintf(stderr, "server: io_uring is not available: io_uring_setup: %s\n",
                ring_why_unavailable(errno));
        return 1;
    }
    const char *why = unusable();
    if (why != NULL || check) {
        if (why != NULL)
            fprintf(stderr, "server: io_uring cannot run this server here: %s\n", why);
        else
            fprintf(stderr, "server: io_uring is available, with every operation this server uses"
                            " (it needs " MIN_KERNEL " or later; features %#x)\n", s.ring.features);
        ring_exit(&s.ring);
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
        (s.signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC)) < 0 || net_reserve_open() < 0) {
        perror("server: setup");
        ring_exit(&s.ring);
        return 1;
    }
    TRACE("fd limit raised to %ld; io_uring sq=%u cq=%u, setup flags %#x, features %#x", limit,
          s.ring.sq_entries, s.ring.cq_entries, s.ring.setup_flags, s.ring.features);
    s.listen_fd = contract_listen(&cli, SOMAXCONN);
    if (s.listen_fd < 0) {
        s.failed = 1;
        s.stopping = 1;         /* nothing in flight: the loop is skipped */
    } else {
        struct io_uring_sqe *sqe = get_sqe(K_SIGNAL);
        sqe->opcode = IORING_OP_READ;   /* the ring is empty: sqe is not NULL */
        sqe->fd = s.signal_fd;
        sqe->addr = (uint64_t)(uintptr_t)&s.siginfo;
        sqe->len = sizeof s.siginfo;
    }

    while (!s.stopping || s.inflight > 0) {
        keep_accepting();
        retry_waiting();
        /* The one system call of the round: submit all, wait for one (not
         * while a connection waits for an entry: then straight on). */
        if (ring_submit(&s.ring, s.waiting ? 0 : 1) < 0 && errno != EINTR) {
            if (errno != EAGAIN && errno != EBUSY) {
                enter_failed();
                break;
            }
            /* Short of memory, or the kernel holds completions that did not
             * fit in the CQ: reap those (below), or back off 1 ms. */
            if (ring_ready(&s.ring) == 0 && !ring_overflowed(&s.ring))
                nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        }
        if (reap() < 0) {
            enter_failed();
            break;
        }
        if (s.failed && !s.stopping)
            begin_stop();
    }

    /* Nothing is in flight any more, so closing the ring cannot leave the
     * kernel writing into freed memory. (Connections remain only if
     * io_uring_enter itself failed: the ring goes first, then they do.) */
    ring_exit(&s.ring);
    for (struct conn *c = s.conns, *next; c != NULL; c = next) {
        next = c->next;
        close(c->fd);
        free(c);
    }
    if (s.listen_fd >= 0)
        close(s.listen_fd);
    close(s.signal_fd);
    net_reserve_close();
    if (s.listen_fd >= 0)
        contract_summary(&cli, s.served, s.echoed);
    return s.failed;
}
