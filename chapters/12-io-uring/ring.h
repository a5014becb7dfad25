/*
 * ring: an io_uring instance from the raw system calls, no liburing.
 *
 * io_uring_setup gives a descriptor and three regions to map from it:
 *
 *   SQ ring   head, tail, mask, and an array of indexes into the SQE array
 *   SQE array the submission entries themselves (64 bytes each)
 *   CQ ring   head, tail, mask, and the completion entries (16 bytes each)
 *
 * Each ring has one producer and one consumer, and no locks: we produce SQEs
 * (write an entry, then move sq tail) and the kernel consumes them (moves sq
 * head); the kernel produces CQEs (moves cq tail) and we consume them (move
 * cq head). io_uring_enter tells the kernel to look at the SQ and, with
 * IORING_ENTER_GETEVENTS, sleeps until enough completions are there.
 *
 * When a completion finds the CQ full, a kernel with IORING_FEAT_NODROP
 * (5.5+) keeps it on a list of its own and sets IORING_SQ_CQ_OVERFLOW in the
 * SQ ring's flags; it moves those into the CQ only inside io_uring_enter with
 * IORING_ENTER_GETEVENTS (ring_flush). Without NODROP it drops them, counting
 * them in the CQ ring's overflow field; with it, it drops one only when it has
 * no memory for the list (ring_dropped, and io_uring_enter fails with EBADR).
 */
#ifndef RING_H
#define RING_H

#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stddef.h>

struct ring {
    int fd;
    unsigned features;                  /* IORING_FEAT_* the kernel offers */
    unsigned setup_flags;               /* IORING_SETUP_* it accepted */
    /* Submission side. The kernel writes head; we write tail. */
    _Atomic unsigned *sq_head, *sq_tail;
    unsigned sq_mask, sq_entries;
    unsigned sq_local_tail;             /* SQEs filled in, maybe not yet published */
    struct io_uring_sqe *sqes;
    _Atomic unsigned *sq_flags;         /* the kernel's: IORING_SQ_CQ_OVERFLOW... */
    /* Completion side. The kernel writes tail; we write head. */
    _Atomic unsigned *cq_head, *cq_tail;
    _Atomic unsigned *cq_dropped;       /* the kernel's count of completions lost */
    unsigned cq_mask, cq_entries;
    struct io_uring_cqe *cqes;
    /* The mappings, to unmap them. */
    void *sq_map, *cq_map;
    size_t sq_map_len, cq_map_len, sqes_len;
};

/*
 * Set up a ring with sq_entries submission slots and cq_entries completion
 * slots. Returns 0, or -1 with errno: ENOSYS (no io_uring in this kernel),
 * EPERM (disabled by sysctl kernel.io_uring_disabled or a seccomp filter)...
 */
int ring_init(struct ring *r, unsigned sq_entries, unsigned cq_entries);
void ring_exit(struct ring *r);

/* Why ring_init failed with err, in words, for a one-line message. */
const char *ring_why_unavailable(int err);

/* Does this kernel know opcode op (IORING_OP_*)? 1 or 0; -1 with errno when
 * it cannot say: IORING_REGISTER_PROBE came in 5.6 (EINVAL before). */
int ring_supports(struct ring *r, unsigned op);

/* A zeroed free SQE, or NULL when the SQ is full (submit first). */
struct io_uring_sqe *ring_get_sqe(struct ring *r);

/* SQEs filled in and not yet taken by the kernel. */
unsigned ring_pending(const struct ring *r);

/*
 * Publish the filled SQEs and make one io_uring_enter: submit them all and,
 * if wait_nr > 0, sleep until at least wait_nr completions are in the CQ.
 * Returns the number submitted, or -1 with errno (EINTR; EAGAIN or EBUSY:
 * the kernel is short of memory or its completion backlog is full: reap
 * completions, then try again).
 */
int ring_submit(struct ring *r, unsigned wait_nr);

/* How many completions wait in the CQ; ring_cqe(r, i) is the i-th, oldest
 * first; ring_advance(r, n) hands the n oldest back to the kernel. */
unsigned ring_ready(struct ring *r);
const struct io_uring_cqe *ring_cqe(const struct ring *r, unsigned i);
void ring_advance(struct ring *r, unsigned n);

/* The kernel holds completions that did not fit in the CQ (1), or not (0). */
int ring_overflowed(const struct ring *r);

/* Have the kernel move the completions it holds into the CQ, as far as they
 * fit, without waiting: io_uring_enter(0, 0, GETEVENTS). 0, or -1 with errno. */
int ring_flush(struct ring *r);

/* Completions the kernel lost since the ring was set up (0 with NODROP, unless
 * it ran out of memory for its overflow list). */
unsigned ring_dropped(const struct ring *r);

/*
 * Provided buffers (Linux 5.19): a pool of `count` buffers of `size` bytes,
 * and a third ring, of buffer ids, that we fill and the kernel empties. A
 * recv with IOSQE_BUFFER_SELECT names the pool (its group), not a buffer:
 * the kernel takes the next id from the ring only when data arrives, and
 * the completion says which (IORING_CQE_F_BUFFER, the id in flags >> 16).
 *
 * Who owns a buffer, and when:
 *   in the ring          the kernel's: it may write into it at any moment;
 *                        we must not read it or write it
 *   named by a CQE       ours, from the moment we read that CQE: the kernel
 *                        will not touch it until we give it back
 *   in a send in flight  still ours, but lent to the kernel, which reads it:
 *                        given back only once the send has completed
 *   ring_bufs_give       the kernel's again, at once
 * The ring itself: we write entries, then move tail (release); the kernel
 * moves its own head, which we never need to read: we count what we hold.
 */
struct ring_bufs {
    struct io_uring_buf_ring *ring;     /* shared: entries, and the tail over bufs[0] */
    char *mem;                          /* the buffers, `size` bytes each */
    size_t ring_len, mem_len;
    unsigned count, size, mask;
    unsigned short tail;                /* ours: what we have given, wrapping at 65536 */
};

/* Register a pool of count buffers (1..32768) of size bytes as buffer group
 * `group`, every buffer given to the kernel. 0, or -1 with errno: EINVAL on
 * a kernel without IORING_REGISTER_PBUF_RING (before 5.19), ENOMEM... */
int ring_bufs_init(struct ring *r, struct ring_bufs *b, unsigned group, unsigned count, unsigned size);
void ring_bufs_exit(struct ring_bufs *b);     /* after ring_exit: nothing may use it */

/* Buffer `id`'s memory. */
char *ring_buf(const struct ring_bufs *b, unsigned id);

/* Give buffer `id` back to the kernel: from this call on it is the kernel's. */
void ring_bufs_give(struct ring_bufs *b, unsigned id);

#endif
