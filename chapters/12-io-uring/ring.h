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
    /* Completion side. The kernel writes tail; we write head. */
    _Atomic unsigned *cq_head, *cq_tail;
    unsigned cq_mask;
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

#endif
