/*
 * conn: one echo connection on io_uring, and the two ways it receives.
 *
 * A connection never does I/O itself: it queues operations (recv, send,
 * cancel, close) as entries in the ring, and its state (struct conn, in
 * conn.c) says what is in flight and what it needs next. Each completion
 * the loop hands over (conn_on_recv, conn_on_send) moves that state on, and
 * queues what comes next. The receive design is chosen once, at start:
 *
 * A pool of provided buffers (Linux 6.0+, the default). Each connection has
 * ONE multishot recv armed for its whole life, naming no buffer: when data
 * arrives the kernel takes a buffer from the pool (ring.h), and posts a
 * completion naming it; the recv stays armed (IORING_CQE_F_MORE). We send
 * from that buffer and give it back once the send has completed. An idle
 * connection holds no buffer at all: only its struct. Back-pressure: a
 * connection holding HOLD_MAX buffers unsent (its client does not read) has
 * its recv cancelled, and armed again once its echo has gone out; what still
 * comes before the cancel lands is copied out of the pool into a spill of
 * its own (at most SPILL_MAX bytes), so no connection holds more than
 * HOLD_MAX buffers of the pool.
 *
 * A buffer per connection (--own-buffers, or an older kernel): one operation
 * at a time, recv into the connection's own BUF_SIZE bytes, send them, recv
 * again. Simple, and bounded, but the buffer must exist before the data does.
 */
#ifndef CONN_H
#define CONN_H

#include <stdint.h>

#include "ring.h"

/*
 * A completion carries back the 64-bit user_data of its submission. Ours is a
 * connection's address with the kind of operation in its 3 low bits (malloc
 * aligns to at least 8), or just a kind for the server's own operations.
 */
enum kind { K_ACCEPT = 1, K_SIGNAL, K_PAUSE, K_CANCEL, K_CLOSE, K_RECV, K_SEND };
#define KIND_MASK 7u

/* The loop's (server.c), shared with the connections: the ring, and what
 * both sides count. */
struct loop {
    struct ring ring;
    unsigned inflight;          /* operations submitted and not yet completed */
    unsigned waiting;           /* connections that found no free entry: again next round */
    int stopping;               /* a signal came: every connection winds down */
    unsigned long long served, echoed;
};
extern struct loop loop;

/* server.c: a free entry, counted in flight, or NULL if none is free right
 * now (then try again next round, never just drop it); and a cancel of the
 * operation whose user_data is target. */
struct io_uring_sqe *get_sqe(uint64_t user_data);
struct io_uring_sqe *cancel(uint64_t target);

struct conn;

/*
 * Choose the design: provided buffers with a multishot recv where the
 * kernel has both (unless own_buffers), a pool of `buffers` of them; else a
 * buffer per connection. Returns the choice in words (for -v and --check),
 * or NULL with errno if the pool cannot be made (out of memory).
 */
const char *conn_init(long own_buffers, long buffers);
/* After ring_exit: the pool, and any connection left, closed and freed. */
void conn_exit(void);

/* A client accepted (fd): counted served, its first recv queued; closed at
 * once instead if there is no memory for it or the server is stopping. */
void conn_new(int fd);
/* A completion of one of c's recvs (res, flags: the CQE's), or its send. */
void conn_on_recv(struct conn *c, int res, unsigned flags);
void conn_on_send(struct conn *c, int res);
/* Once a round: the connections that found no free entry or no buffer. */
void conn_retry(void);
/* loop.stopping is set: cancel what each connection has in flight. */
void conn_stop_all(void);

#endif
