/*
 * Chapter 12 — io_uring: ask the kernel to do the I/O, and hear when it is done.
 *
 * Chapters 05-11 ask "which sockets are ready?" and then make the read and
 * the send themselves. Here we hand the kernel the operations — accept on the
 * listener, recv, send these bytes — as entries in a shared ring (the SQ),
 * and the kernel puts one completion per result in another ring (the CQ):
 * "the recv for connection X is done: 12 bytes". ring.c maps the rings; this
 * file is the echo on top of them, in one of two designs, chosen at start:
 *
 * A pool of provided buffers (Linux 6.0+, the default). Each connection has
 * ONE multishot recv armed for its whole life, naming no buffer: when data
 * arrives the kernel takes a buffer from the pool (ring.h), and posts a
 * completion naming it; the recv stays armed (IORING_CQE_F_MORE). We send
 * from that buffer and give it back once the send has completed. An idle
 * connection holds no buffer at all: only its struct. Back-pressure: a
 * connection holding HOLD_MAX buffers unsent (its client does not read) has
 * its recv cancelled, and armed again once its echo has gone out.
 *
 * A buffer per connection (--own-buffers, or an older kernel): one operation
 * at a time, recv into the connection's own BUF_SIZE bytes, send them, recv
 * again. Simple, and bounded, but the buffer must exist before the data does.
 *
 * Either way each round of the loop is ONE system call: io_uring_enter
 * submits every entry queued since the last round and sleeps until at least
 * one completion is there; then we handle every completion waiting.
 *
 * Both rings are bounded, and nothing may be lost when one is full. A full
 * SQ: get_sqe hands the queued entries to the kernel to free their slots,
 * and if the kernel takes none right now, the connection waits (c->waiting)
 * for the next round. A full CQ: the kernel keeps the completions that do
 * not fit and says so (IORING_SQ_CQ_OVERFLOW); reap has it move them in.
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

#define BUF_SIZE 16384          /* one receive buffer: a connection's own, or one of the pool's */
#define POOL_BUFS 1024          /* --buffers: how many in the pool */
#define POOL_GROUP 0            /* the pool's buffer group id (we have one pool) */
#define HOLD_MAX 4              /* pool buffers a connection may hold unsent before its recv stops */
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

/*
 * A completion carries back the 64-bit user_data of its submission. Ours is a
 * connection's address with the kind of operation in its 3 low bits (malloc
 * aligns to at least 8), or just a kind for the server's own operations.
 */
enum kind { K_ACCEPT = 1, K_SIGNAL, K_PAUSE, K_CANCEL, K_CLOSE, K_RECV, K_SEND };
#define KIND_MASK 7u

enum { IDLE, ARMED, CANCELLING };       /* a connection's recv, or its send */

struct conn {
    int fd;
    unsigned char recv, send;   /* IDLE, ARMED (in flight) or CANCELLING */
    unsigned char ended;        /* the client half-closed: echo what is held, then close */
    unsigned char failed;       /* reset, EPIPE...: close once nothing is in flight */
    unsigned char waiting;      /* found no free entry: advance again next round */
    unsigned char starved;      /* its recv found the pool empty: again once a buffer is back */
    /* Unsent echo. Own buffer: buf[start, end). Pool: `held` buffers, oldest
     * first, linked through server.held; `sent` bytes of the first are out. */
    size_t start, end, sent;
    int first, last;
    unsigned held;
    struct conn *prev, *next;   /* every connection, for the shutdown */
    char buf[];                 /* BUF_SIZE bytes with own buffers; none with the pool */
};

enum { ACCEPT_IDLE, ACCEPT_ARMED, ACCEPT_PAUSED };

static struct {
    struct ring ring;
    int listen_fd, signal_fd;
    long oneshot;               /* --oneshot, or a kernel without multishot accept */
    long own_buffers;           /* --own-buffers, or a kernel without provided buffers */
    const char *design;         /* which receive design, in words, for -v and --check */
    struct ring_bufs pool;
    struct { unsigned len; int next; } *held;  /* per pool buffer, while a connection holds it */
    unsigned starved;           /* connections whose recv found the pool empty */
    unsigned holding;           /* pool buffers that are ours: the rest are the kernel's */
    int accept_state, accept_cancelled, stopping, failed;
    unsigned inflight;          /* operations submitted and not yet completed */
    unsigned waiting;           /* connections with c->waiting set */
    struct conn *conns;
    unsigned long long served, echoed;
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
static struct io_uring_sqe *get_sqe(uint64_t user_data)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&server.ring);
    if (sqe == NULL && (ring_submit(&server.ring, 0) >= 0 || errno == EINTR))
        sqe = ring_get_sqe(&server.ring);
    if (sqe == NULL)
        return NULL;
    sqe->user_data = user_data;
    server.inflight++;
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

static uint64_t op_of(struct conn *c, unsigned kind)
{
    return (uint64_t)(uintptr_t)c | kind;
}

/* The pool buffer a connection has finished with goes back to the kernel. */
static void give_back(unsigned id)
{
    ring_bufs_give(&server.pool, id);
    server.holding--;
}

/* Nothing of the connection is in flight: close it and free it. */
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
    for (; c->held > 0; c->held--, c->first = server.held[c->first].next)
        give_back((unsigned)c->first);          /* echo that will never be sent */
    server.waiting -= c->waiting;
    server.starved -= c->starved;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        server.conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);            /* safe: no entry in flight points into it */
}

static int submit_send(struct conn *c, const char *bytes, size_t len)
{
    struct io_uring_sqe *sqe = get_sqe(op_of(c, K_SEND));
    if (sqe == NULL)
        return 0;
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t)(uintptr_t)bytes;     /* the kernel reads them until it completes */
    sqe->len = (unsigned)len;
    sqe->msg_flags = MSG_NOSIGNAL;              /* EPIPE, not SIGPIPE */
    c->send = ARMED;
    return 1;
}

static int submit_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(op_of(c, K_RECV));
    if (sqe == NULL)
        return 0;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = c->fd;
    if (server.own_buffers) {
        sqe->addr = (uint64_t)(uintptr_t)c->buf;
        sqe->len = BUF_SIZE;
    } else {
        /* No buffer, no length: the kernel picks one from the group per
         * arrival, and the recv stays armed until it fails or is cancelled. */
        sqe->flags = IOSQE_BUFFER_SELECT;
        sqe->buf_group = POOL_GROUP;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        TRACE("recv fd=%d multishot armed", c->fd);
    }
    c->recv = ARMED;
    return 1;
}

/* Cancel whatever of the connection is in flight; close it once nothing is.
 * 0 if an entry was not free (advance is called again next round). */
static int wind_down(struct conn *c)
{
    if (c->recv == ARMED) {
        if (!cancel(op_of(c, K_RECV)))
            return 0;
        c->recv = CANCELLING;
    }
    if (c->send == ARMED) {
        if (!cancel(op_of(c, K_SEND)))
            return 0;
        c->send = CANCELLING;
    }
    if (c->recv == IDLE && c->send == IDLE)
        close_conn(c);
    return 1;
}

/* Own buffer: one operation at a time. Received bytes are sent, then the
 * next recv goes out, into the buffer that is free again. */
static int advance_own(struct conn *c)
{
    if (c->recv != IDLE || c->send != IDLE)
        return 1;
    if (c->start < c->end)
        return submit_send(c, c->buf + c->start, c->end - c->start);
    if (c->ended) {
        close_conn(c);          /* every byte it sent came back */
        return 1;
    }
    return submit_recv(c);
}

/* Pool: the recv stays armed while the connection holds fewer than HOLD_MAX
 * buffers; the send of the oldest goes out as soon as the last one is done. */
static int advance_pool(struct conn *c)
{
    if (c->send == IDLE && c->held > 0) {
        const char *bytes = ring_buf(&server.pool, (unsigned)c->first) + c->sent;
        if (!submit_send(c, bytes, server.held[c->first].len - c->sent))
            return 0;
    }
    if (c->recv == IDLE && !c->ended && !c->starved && c->held < HOLD_MAX) {
        if (!submit_recv(c))
            return 0;
    } else if (c->recv == ARMED && c->held >= HOLD_MAX) {
        /* Back-pressure: its client does not read its echo, or not fast
         * enough. Stop receiving (more completions may come before the
         * cancel lands: each holds a buffer of the pool, so the pool bounds
         * them), and arm the recv again once the echo has gone out. */
        if (!cancel(op_of(c, K_RECV)))
            return 0;
        c->recv = CANCELLING;
        TRACE("pause fd=%d held=%u", c->fd, c->held);
    }
    if (c->ended && c->recv == IDLE && c->send == IDLE && c->held == 0)
        close_conn(c);
    return 1;
}

/*
 * Queue what the connection needs next, as its state says: called after each
 * of its completions, and again next round if an entry was not free (then
 * nothing is dropped: its state still says what it needs). May free c.
 */
static void advance(struct conn *c)
{
    int done = server.stopping || c->failed ? wind_down(c)
             : server.own_buffers ? advance_own(c) : advance_pool(c);
    if (!done && !c->waiting) {
        TRACE("sq full fd=%d: waits a round", c->fd);
        c->waiting = 1;
        server.waiting++;
    }
}

/* Once a round: the connections that found no free entry, and, as many as
 * the kernel has buffers, those that found the pool empty (more would only
 * find it empty again). Both are rare (a ring or a pool too small for the
 * load), so a walk over every connection is fine. */
static void retry_conns(void)
{
    unsigned refill = server.starved > 0 ? server.pool.count - server.holding : 0;
    if (server.waiting == 0 && refill == 0)
        return;
    for (struct conn *c = server.conns, *next; c != NULL; c = next) {
        next = c->next;         /* advance may free c */
        if (c->starved && refill > 0)
            refill--;
        else if (!c->waiting)
            continue;
        server.waiting -= c->waiting;
        server.starved -= c->starved;
        c->waiting = c->starved = 0;
        advance(c);
    }
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
    if (!server.stopping && server.accept_state == ACCEPT_IDLE)
        arm_accept();
    else if (server.stopping && server.accept_state != ACCEPT_IDLE && !server.accept_cancelled)
        server.accept_cancelled = cancel(server.accept_state == ACCEPT_ARMED ? K_ACCEPT : K_PAUSE) != NULL;
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

static void new_conn(int fd)
{
    /* With own buffers the struct ends with one; its pages are touched only
     * once data comes (the assignment below copies the fields, not buf). */
    struct conn *c = malloc(sizeof *c + (server.own_buffers ? BUF_SIZE : 0));
    if (c == NULL || server.stopping) {
        free(c);
        close(fd);
        return;
    }
    server.served++;
    if (trace_enabled) {        /* the peer's name costs a call: only when tracing */
        char peer[NET_ADDRSTRLEN] = "?";
        net_peer_name(fd, peer, sizeof peer);
        TRACE("accept fd=%d peer=%s", fd, peer);
    }
    *c = (struct conn){ .fd = fd, .first = -1, .last = -1, .next = server.conns };
    if (server.conns != NULL)
        server.conns->prev = c;
    server.conns = c;
    advance(c);
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
    if (res >= 0) {
        new_conn(res);
    } else if (res == -EINVAL && !server.oneshot) {
        TRACE("multishot accept not supported: one-shot accepts");
        server.oneshot = 1;
    } else if (res != -ECANCELED) {
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

/* A recv completed. With the pool, a completion with bytes names the buffer
 * they are in (now ours), and says (F_MORE) whether the recv is still armed. */
static void on_recv(struct conn *c, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        c->recv = IDLE;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
        server.holding++;
        if (server.stopping || c->failed) {
            give_back(id);                      /* no echo any more */
        } else {                                /* queued behind the echo it holds */
            server.held[id].len = (unsigned)res;
            server.held[id].next = -1;
            if (c->held++ > 0)
                server.held[c->last].next = (int)id;
            else
                c->first = (int)id;
            c->last = (int)id;
        }
        TRACE("read fd=%d n=%d", c->fd, res);
        TRACE("buf fd=%d id=%u held=%u", c->fd, id, c->held);     /* its echo not yet sent */
        if (c->recv == IDLE && !c->failed)
            TRACE("recv fd=%d ended", c->fd);   /* e.g. the CQ was full: armed again */
    } else if (res > 0) {
        TRACE("read fd=%d n=%d", c->fd, res);
        c->start = 0;
        c->end = (size_t)res;
    } else if (res == 0) {
        TRACE("eof fd=%d", c->fd);
        c->ended = 1;
    } else if (res == -ENOBUFS) {
        /* The pool is empty: every buffer is in some connection's echo.
         * Armed again once one comes back (retry_conns), not now: it would
         * fail again at once, and spin. */
        TRACE("nobufs fd=%d: waits for a buffer", c->fd);
        c->starved = 1;
        server.starved++;
    } else if (res != -ECANCELED) {
        TRACE("read fd=%d error=%s", c->fd, strerror(-res));
        c->failed = 1;          /* a reset... */
    }
    advance(c);
}

static void on_send(struct conn *c, int res)
{
    c->send = IDLE;
    if (res < 0) {
        if (res != -ECANCELED)
            TRACE("write fd=%d error=%s", c->fd, strerror(-res));
        c->failed = 1;          /* EPIPE, a reset, or cancelled at the stop */
    } else {
        TRACE("write fd=%d n=%d", c->fd, res);
        server.echoed += (unsigned)res;
        if (server.own_buffers) {
            c->start += (size_t)res;            /* a short send: the rest next */
        } else if ((c->sent += (size_t)res) == server.held[c->first].len) {
            unsigned id = (unsigned)c->first;   /* all of it is out: the kernel's again */
            c->first = server.held[id].next;
            c->held--;
            c->sent = 0;
            give_back(id);
        }
    }
    advance(c);
}

/* SIGINT/SIGTERM: stop accepting (keep_accepting), cancel every operation
 * in flight. Each connection is closed and freed when its cancelled
 * operations have completed. A cancel that finds no free entry waits a round
 * like any other entry: one lost here would leave the loop waiting forever. */
static void begin_stop(void)
{
    TRACE("stop: cancelling %u operations", server.inflight);
    if (!server.own_buffers)    /* none, once every connection's echo is out */
        TRACE("pool: %u of %u buffers held by connections", server.holding, server.pool.count);
    server.stopping = 1;
    /* Stop accepting now, in the kernel too: clients that connect from here
     * on are refused at once, and those already queued are reset. Without
     * it, with a one-shot accept being cancelled, about 1 client in 50 that
     * connected just after the signal was left half-open after the server
     * had exited (ESTABLISHED on its side, no socket on ours), waiting for
     * ever (tests/conformance.bats, the random-moment SIGTERM test). */
    shutdown(server.listen_fd, SHUT_RDWR);
    for (struct conn *c = server.conns, *next; c != NULL; c = next) {
        next = c->next;
        advance(c);             /* winds it down: cancels, or closes at once */
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
    server.failed = 1;
}

static void handle(const struct io_uring_cqe *cqe)
{
    unsigned kind = (unsigned)(cqe->user_data & KIND_MASK);
    struct conn *c = (struct conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)KIND_MASK);
    if (!(cqe->flags & IORING_CQE_F_MORE))
        server.inflight--;      /* its last completion: the entry is done */
    if (c != NULL && kind == K_RECV)
        on_recv(c, cqe->res, cqe->flags);
    else if (c != NULL)
        on_send(c, cqe->res);
    else if (kind == K_ACCEPT)
        on_accept(cqe->res, cqe->flags);
    else if (kind == K_PAUSE)
        server.accept_state = ACCEPT_IDLE;
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
        for (unsigned n = ring_ready(&server.ring); n > 0; n--) {
            struct io_uring_cqe cqe = *ring_cqe(&server.ring, 0);
            ring_advance(&server.ring, 1);   /* the slot is free: handlers may submit */
            handle(&cqe);
        }
        if (ring_dropped(&server.ring) > 0) {
            errno = EBADR;      /* a connection would wait forever for its completion */
            return -1;
        }
        if (!ring_overflowed(&server.ring))
            return 0;
        TRACE("cq overflow: flushing");
        if (ring_flush(&server.ring) < 0 && errno != EINTR)
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
    if (!(server.ring.features & IORING_FEAT_NODROP))
        return "this kernel would drop the completions that overflow the CQ (no IORING_FEAT_NODROP);"
               " it needs " MIN_KERNEL " or later";
    for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++) {
        int known = ring_supports(&server.ring, needed_ops[i].op);
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

/*
 * Provided buffers with a multishot recv where the kernel has both (unless
 * --own-buffers), else a buffer per connection; server.design says which.
 * 0, or -1 with errno if the pool cannot be made (out of memory).
 */
static int choose_design(long buffers)
{
    static char pool[120];
    /* No flag says "multishot recv": SINGLE_ISSUER came in the same release
     * (6.0), after IORING_REGISTER_PBUF_RING (5.19), so ring_init's setup
     * having it is the sign. */
    if (server.own_buffers) {
        server.design = "a 16384-byte buffer per connection, one recv at a time (--own-buffers)";
        return 0;
    }
    int multishot_recv = (server.ring.setup_flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    if (!multishot_recv ||
        ring_bufs_init(&server.ring, &server.pool, POOL_GROUP, (unsigned)buffers, BUF_SIZE) < 0) {
        if (multishot_recv && errno != EINVAL)
            return -1;          /* out of memory: not the kernel's age */
        server.own_buffers = 1;
        server.design = "a 16384-byte buffer per connection, one recv at a time"
                        " (no provided buffers with multishot recv: a kernel before 6.0)";
        return 0;
    }
    server.held = calloc((size_t)buffers, sizeof *server.held);
    if (server.held == NULL)
        return -1;
    snprintf(pool, sizeof pool, "a pool of %ld provided buffers of 16384 bytes, one multishot recv"
             " per connection", buffers);
    server.design = pool;
    return 0;
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
    if (ring_init(&server.ring, (unsigned)entries, (unsigned)entries * CQ_PER_SQ) < 0) {
        fprintf(stderr, "server: io_uring is not available: io_uring_setup: %s\n",
                ring_why_unavailable(errno));
        return 1;
    }
    const char *why = unusable();
    if (why == NULL && choose_design(buffers) < 0) {
        perror("server: the buffer pool");
        why = "";
    } else if (why != NULL) {
        fprintf(stderr, "server: io_uring cannot run this server here: %s\n", why);
    } else if (check) {
        fprintf(stderr, "server: io_uring is available, with every operation this server uses"
                        " (it needs " MIN_KERNEL " or later; features %#x); receives into %s\n",
                server.ring.features, server.design);
    }
    if (why != NULL || check) {
        ring_exit(&server.ring);
        ring_bufs_exit(&server.pool);
        free(server.held);
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
        ring_exit(&server.ring);
        ring_bufs_exit(&server.pool);
        free(server.held);
        return 1;
    }
    TRACE("fd limit raised to %ld; io_uring sq=%u cq=%u, setup flags %#x, features %#x", limit,
          server.ring.sq_entries, server.ring.cq_entries, server.ring.setup_flags, server.ring.features);
    TRACE("receives into %s", server.design);
    server.listen_fd = contract_listen(&cli, SOMAXCONN);
    if (server.listen_fd < 0) {
        server.failed = 1;
        server.stopping = 1;         /* nothing in flight: the loop is skipped */
    } else {
        struct io_uring_sqe *sqe = get_sqe(K_SIGNAL);
        sqe->opcode = IORING_OP_READ;   /* the ring is empty: sqe is not NULL */
        sqe->fd = server.signal_fd;
        sqe->addr = (uint64_t)(uintptr_t)&server.siginfo;
        sqe->len = sizeof server.siginfo;
    }

    while (!server.stopping || server.inflight > 0) {
        keep_accepting();
        retry_conns();
        /* The one system call of the round: submit all, wait for one (not
         * while a connection waits for an entry: then straight on). */
        if (ring_submit(&server.ring, server.waiting ? 0 : 1) < 0 && errno != EINTR) {
            if (errno != EAGAIN && errno != EBUSY) {
                enter_failed();
                break;
            }
            /* Short of memory, or the kernel holds completions that did not
             * fit in the CQ: reap those (below), or back off 1 ms. */
            if (ring_ready(&server.ring) == 0 && !ring_overflowed(&server.ring))
                nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        }
        if (reap() < 0) {
            enter_failed();
            break;
        }
        if (server.failed && !server.stopping)
            begin_stop();
    }

    /* Nothing is in flight any more, so closing the ring cannot leave the
     * kernel writing into freed memory. (Connections remain only if
     * io_uring_enter itself failed: the ring goes first, then they do.) */
    ring_exit(&server.ring);
    ring_bufs_exit(&server.pool);       /* the kernel is done with the buffers too */
    free(server.held);
    for (struct conn *c = server.conns, *next; c != NULL; c = next) {
        next = c->next;
        close(c->fd);
        free(c);
    }
    if (server.listen_fd >= 0)
        close(server.listen_fd);
    close(server.signal_fd);
    net_reserve_close();
    if (server.listen_fd >= 0)
        contract_summary(&cli, server.served, server.echoed);
    return server.failed;
}
