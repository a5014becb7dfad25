/*
 * conn: one echo connection's state machine, and the two receive designs
 * (conn.h says what each is). Called by the loop (server.c) for each of a
 * connection's completions and once a round; nothing here waits: each call
 * queues the entries the connection needs next and returns.
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "trace.h"

#define BUF_SIZE 16384          /* one receive buffer: a connection's own, or one of the pool's */
#define POOL_GROUP 0            /* the pool's buffer group id (we have one pool) */
#define HOLD_MAX 4              /* pool buffers a connection may hold unsent: then its recv stops */
#define SPILL_MAX (4u << 20)    /* bytes it may copy out of the pool meanwhile (spill, below) */

enum { IDLE, ARMED, CANCELLING };       /* a connection's recv, or its send */

struct conn {
    int fd;
    unsigned char recv, send;   /* IDLE, ARMED (in flight) or CANCELLING */
    unsigned char ended;        /* the client half-closed: echo what is held, then close */
    unsigned char failed;       /* reset, EPIPE...: close once nothing is in flight */
    unsigned char waiting;      /* found no free entry: advance again next round */
    unsigned char starved;      /* its recv found the pool empty: again once a buffer is back */
    /* Unsent echo. Own buffer: buf[start, end). Pool: `held` buffers, oldest
     * first, linked through conns.held; `sent` bytes of the first are out;
     * after them, spill[start, end): bytes copied out of the pool (spill). */
    size_t start, end, sent;
    int first, last;
    unsigned held;
    char *spill;                /* NULL unless it holds unsent bytes */
    struct conn *prev, *next;   /* every connection, for the shutdown */
    char buf[];                 /* BUF_SIZE bytes with own buffers; none with the pool */
};

static struct {
    long own_buffers;           /* --own-buffers, or a kernel without provided buffers */
    struct ring_bufs pool;
    struct { unsigned len; int next; } *held;  /* per pool buffer, while a connection holds it */
    unsigned starved;           /* connections whose recv found the pool empty */
    unsigned holding;           /* pool buffers that are ours: the rest are the kernel's */
    struct conn *list;          /* every connection, for the shutdown */
} conns;

static uint64_t op_of(struct conn *c, unsigned kind)
{
    return (uint64_t)(uintptr_t)c | kind;
}

/* The pool buffer a connection has finished with goes back to the kernel. */
static void give_back(unsigned id)
{
    ring_bufs_give(&conns.pool, id);
    conns.holding--;
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
    for (; c->held > 0; c->held--, c->first = conns.held[c->first].next)
        give_back((unsigned)c->first);          /* echo that will never be sent */
    free(c->spill);
    loop.waiting -= c->waiting;
    conns.starved -= c->starved;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        conns.list = c->next;
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
    if (conns.own_buffers) {
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
 * buffers and has spilled nothing; the send of the oldest echo (a held
 * buffer, then the spill) goes out as soon as the last one is done. */
static int advance_pool(struct conn *c)
{
    if (c->send == IDLE && c->held > 0) {
        const char *bytes = ring_buf(&conns.pool, (unsigned)c->first) + c->sent;
        if (!submit_send(c, bytes, conns.held[c->first].len - c->sent))
            return 0;
    } else if (c->send == IDLE && c->spill != NULL) {
        if (!submit_send(c, c->spill + c->start, c->end - c->start))
            return 0;
    }
    if (c->recv == IDLE && !c->ended && !c->starved && c->held < HOLD_MAX && c->spill == NULL) {
        if (!submit_recv(c))
            return 0;
    } else if (c->recv == ARMED && (c->held >= HOLD_MAX || c->spill != NULL)) {
        /* Back-pressure: its client does not read its echo, or not fast
         * enough. Stop receiving, and arm the recv again once the echo has
         * gone out. Completions already on their way still come before the
         * cancel lands (one wake of a multishot recv takes about 33
         * buffers): spill copies them out of the pool. */
        if (!cancel(op_of(c, K_RECV)))
            return 0;
        c->recv = CANCELLING;
        TRACE("pause fd=%d held=%u", c->fd, c->held);
    }
    if (c->ended && c->recv == IDLE && c->send == IDLE && c->held == 0 && c->spill == NULL)
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
    int done = loop.stopping || c->failed ? wind_down(c)
             : conns.own_buffers ? advance_own(c) : advance_pool(c);
    if (!done && !c->waiting) {
        TRACE("sq full fd=%d: waits a round", c->fd);
        c->waiting = 1;
        loop.waiting++;
    }
}

/* Once a round: the connections that found no free entry, and, as many as
 * the kernel has buffers, those that found the pool empty (more would only
 * find it empty again). Both are rare (a ring or a pool too small for the
 * load), so a walk over every connection is fine. */
void conn_retry(void)
{
    unsigned refill = conns.starved > 0 ? conns.pool.count - conns.holding : 0;
    if (loop.waiting == 0 && refill == 0)
        return;
    for (struct conn *c = conns.list, *next; c != NULL; c = next) {
        next = c->next;         /* advance may free c */
        if (c->starved && refill > 0)
            refill--;
        else if (!c->waiting)
            continue;
        loop.waiting -= c->waiting;
        conns.starved -= c->starved;
        c->waiting = c->starved = 0;
        advance(c);
    }
}

void conn_new(int fd)
{
    /* With own buffers the struct ends with one; its pages are touched only
     * once data comes (the assignment below copies the fields, not buf). */
    struct conn *c = malloc(sizeof *c + (conns.own_buffers ? BUF_SIZE : 0));
    if (c == NULL || loop.stopping) {
        free(c);
        close(fd);
        return;
    }
    loop.served++;
    if (trace_enabled) {        /* the peer's name costs a call: only when tracing */
        char peer[NET_ADDRSTRLEN] = "?";
        net_peer_name(fd, peer, sizeof peer);
        TRACE("accept fd=%d peer=%s", fd, peer);
    }
    *c = (struct conn){ .fd = fd, .first = -1, .last = -1, .next = conns.list };
    if (conns.list != NULL)
        conns.list->prev = c;
    conns.list = c;
    advance(c);
}

/* Pool: the connection holds buffer id, len bytes of its echo, queued
 * behind the rest. */
static void hold(struct conn *c, unsigned id, unsigned len)
{
    conns.held[id].len = len;
    conns.held[id].next = -1;
    if (c->held++ > 0)
        conns.held[c->last].next = (int)id;
    else
        c->first = (int)id;
    c->last = (int)id;
    TRACE("buf fd=%d id=%u held=%u", c->fd, id, c->held);     /* its echo not yet sent */
}

/*
 * Pool: the connection already holds HOLD_MAX buffers, its recv being paused,
 * or has spilled already (then its bytes go here too, to stay in order).
 * Copy them into memory of its own and give the buffer back at once: so no
 * connection ever holds more than HOLD_MAX buffers of the shared pool, and
 * clients that do not read cannot starve the others. What comes here is what
 * the kernel had taken from the socket before the pause landed: a wake's
 * worth, up to SPILL_MAX; a connection that would need more (or finds no
 * memory) is closed rather than allowed to grow without bound.
 */
static void spill(struct conn *c, unsigned id, size_t len)
{
    if (c->spill == NULL && (c->spill = malloc(SPILL_MAX)) == NULL) {
        TRACE("spill fd=%d: out of memory, closing", c->fd);
        c->failed = 1;
    } else if (c->end + len > SPILL_MAX) {
        TRACE("spill fd=%d full: closing", c->fd);
        c->failed = 1;
    } else {
        memcpy(c->spill + c->end, ring_buf(&conns.pool, id), len);
        c->end += len;
        TRACE("spill fd=%d n=%zu spilled=%zu", c->fd, len, c->end - c->start);
    }
    give_back(id);
}

/* A recv completed. With the pool, a completion with bytes names the buffer
 * they are in (now ours), and says (F_MORE) whether the recv is still armed. */
void conn_on_recv(struct conn *c, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        c->recv = IDLE;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
        conns.holding++;
        TRACE("read fd=%d n=%d", c->fd, res);
        if (loop.stopping || c->failed)
            give_back(id);                      /* no echo any more */
        else if (c->held >= HOLD_MAX || c->spill != NULL)
            spill(c, id, (size_t)res);
        else
            hold(c, id, (unsigned)res);
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
         * Armed again once one comes back (conn_retry), not now: it would
         * fail again at once, and spin. */
        TRACE("nobufs fd=%d: waits for a buffer", c->fd);
        c->starved = 1;
        conns.starved++;
    } else if (res != -ECANCELED) {
        TRACE("read fd=%d error=%s", c->fd, strerror(-res));
        c->failed = 1;          /* a reset... */
    }
    advance(c);
}

void conn_on_send(struct conn *c, int res)
{
    c->send = IDLE;
    if (res < 0) {
        if (res != -ECANCELED)
            TRACE("write fd=%d error=%s", c->fd, strerror(-res));
        c->failed = 1;          /* EPIPE, a reset, or cancelled at the stop */
    } else {
        TRACE("write fd=%d n=%d", c->fd, res);
        loop.echoed += (unsigned)res;
        if (conns.own_buffers) {
            c->start += (size_t)res;            /* a short send: the rest next */
        } else if (c->held > 0) {               /* from its oldest buffer (the spill waits for them) */
            if ((c->sent += (size_t)res) == conns.held[c->first].len) {
                unsigned id = (unsigned)c->first;   /* all of it is out: the kernel's again */
                c->first = conns.held[id].next;
                c->held--;
                c->sent = 0;
                give_back(id);
            }
        } else if ((c->start += (size_t)res) == c->end) {
            free(c->spill);                     /* all of the spill is out: its recv may go again */
            c->spill = NULL;
            c->start = c->end = 0;
        }
    }
    advance(c);
}

/* The stop: the pool's count first (none held, once every connection's echo
 * is out), then each connection winds down: cancels, or closes at once. */
void conn_stop_all(void)
{
    if (!conns.own_buffers)
        TRACE("pool: %u of %u buffers held by connections", conns.holding, conns.pool.count);
    for (struct conn *c = conns.list, *next; c != NULL; c = next) {
        next = c->next;
        advance(c);
    }
}

const char *conn_init(long own_buffers, long buffers)
{
    static char pool[120];
    /* No flag says "multishot recv": SINGLE_ISSUER came in the same release
     * (6.0), after IORING_REGISTER_PBUF_RING (5.19), so ring_init's setup
     * having it is the sign. */
    conns.own_buffers = own_buffers;
    if (own_buffers)
        return "a 16384-byte buffer per connection, one recv at a time (--own-buffers)";
    int multishot_recv = (loop.ring.setup_flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    if (!multishot_recv ||
        ring_bufs_init(&loop.ring, &conns.pool, POOL_GROUP, (unsigned)buffers, BUF_SIZE) < 0) {
        if (multishot_recv && errno != EINVAL)
            return NULL;        /* out of memory: not the kernel's age */
        conns.own_buffers = 1;
        return "a 16384-byte buffer per connection, one recv at a time"
               " (no provided buffers with multishot recv: a kernel before 6.0)";
    }
    conns.held = calloc((size_t)buffers, sizeof *conns.held);
    if (conns.held == NULL)
        return NULL;
    snprintf(pool, sizeof pool, "a pool of %ld provided buffers of 16384 bytes, one multishot recv"
             " per connection", buffers);
    return pool;
}

/* Connections remain here only if io_uring_enter itself failed: the ring
 * is gone by now, so nothing in flight can still point into them. */
void conn_exit(void)
{
    ring_bufs_exit(&conns.pool);        /* the kernel is done with the buffers too */
    free(conns.held);
    for (struct conn *c = conns.list, *next; c != NULL; c = next) {
        next = c->next;
        close(c->fd);
        free(c->spill);
        free(c);
    }
}
