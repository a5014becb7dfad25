/* syscall() is not POSIX: glibc declares it with _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
#include "ring.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc has no wrappers for these two: we call them by number. */
static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
    return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

static void *map(int fd, size_t len, off_t offset)
{
    /* MAP_SHARED: the same pages the kernel reads and writes. */
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
}

int ring_init(struct ring *r, unsigned sq_entries, unsigned cq_entries)
{
    /*
     * Ask for the most useful setup first, and fall back for older kernels
     * (EINVAL: a flag it does not know):
     *   CQSIZE          a CQ bigger than twice the SQ (5.5: every kernel
     *                   this server can run on has it)
     *   SINGLE_ISSUER   only this thread submits (6.0), and so
     *   DEFER_TASKRUN   the kernel finishes completions when we call
     *                   io_uring_enter to wait for them (6.1), instead of
     *                   interrupting us for each one as it happens.
     */
    static const unsigned tries[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_CQSIZE,
    };
    struct io_uring_params p;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && r->fd < 0; i++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[i];
        p.cq_entries = cq_entries;
        r->fd = sys_setup(sq_entries, &p);
        if (r->fd < 0 && errno != EINVAL)
            return -1;          /* ENOSYS, EPERM...: no io_uring at all */
    }
    if (r->fd < 0)
        return -1;
    r->setup_flags = p.flags;
    r->features = p.features;

    /* The SQ ring ends with its index array; the CQ ring with its CQEs. */
    r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        /* Since 5.4 both rings live in one mapping: map the larger size once. */
        if (r->cq_map_len > r->sq_map_len)
            r->sq_map_len = r->cq_map_len;
        r->cq_map_len = 0;
    }
    r->sq_map = map(r->fd, r->sq_map_len, IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED)
        goto fail;
    r->cq_map = r->cq_map_len ? map(r->fd, r->cq_map_len, IORING_OFF_CQ_RING) : r->sq_map;
    if (r->cq_map == MAP_FAILED)
        goto fail;
    r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = map(r->fd, r->sqes_len, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        goto fail;

    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_head = (_Atomic unsigned *)(void *)(sq + p.sq_off.head);
    r->sq_tail = (_Atomic unsigned *)(void *)(sq + p.sq_off.tail);
    r->sq_mask = *(unsigned *)(void *)(sq + p.sq_off.ring_mask);
    r->sq_entries = p.sq_entries;
    r->sq_local_tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    r->sq_flags = (_Atomic unsigned *)(void *)(sq + p.sq_off.flags);
    r->cq_head = (_Atomic unsigned *)(void *)(cq + p.cq_off.head);
    r->cq_tail = (_Atomic unsigned *)(void *)(cq + p.cq_off.tail);
    r->cq_dropped = (_Atomic unsigned *)(void *)(cq + p.cq_off.overflow);
    r->cq_mask = *(unsigned *)(void *)(cq + p.cq_off.ring_mask);
    r->cq_entries = p.cq_entries;
    r->cqes = (struct io_uring_cqe *)(void *)(cq + p.cq_off.cqes);
    /* The SQ ring holds indexes into the SQE array, so SQEs could be filled
     * out of order. We use slot i for ring position i: fill the map once. */
    unsigned *array = (unsigned *)(void *)(sq + p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++)
        array[i] = i;
    return 0;

fail:;
    int saved = errno;
    ring_exit(r);
    errno = saved;
    return -1;
}

void ring_exit(struct ring *r)
{
    if (r->sqes != NULL && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_map_len && r->cq_map != NULL && r->cq_map != MAP_FAILED)
        munmap(r->cq_map, r->cq_map_len);
    if (r->sq_map != NULL && r->sq_map != MAP_FAILED)
        munmap(r->sq_map, r->sq_map_len);
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

struct io_uring_sqe *ring_get_sqe(struct ring *r)
{
    /* Acquire: the kernel moves sq head once it has read an SQE (copied it
     * in). Seeing the new head must mean that reading is over, before we
     * overwrite the slot with a new entry. */
    unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
    if (r->sq_local_tail - head >= r->sq_entries)
        return NULL;                    /* full: every slot awaits the kernel */
    struct io_uring_sqe *sqe = &r->sqes[r->sq_local_tail & r->sq_mask];
    r->sq_local_tail++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

unsigned ring_pending(const struct ring *r)
{
    return r->sq_local_tail - atomic_load_explicit(r->sq_head, memory_order_acquire);
}

int ring_submit(struct ring *r, unsigned wait_nr)
{
    /* Release: every SQE written above must be visible to the kernel before
     * the tail that says they are there (it may read them on another CPU,
     * with SQPOLL, without any system call in between). */
    atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
    unsigned to_submit = ring_pending(r);
    int n = sys_enter(r->fd, to_submit, wait_nr, wait_nr ? IORING_ENTER_GETEVENTS : 0);
    return n;                           /* -1 with errno, as the call left it */
}

unsigned ring_ready(struct ring *r)
{
    /* Acquire: the kernel writes a CQE, then moves cq tail (release). Loading
     * the tail with acquire makes the CQEs it covers visible to our reads. */
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    /* Relaxed: only we write cq head. */
    return tail - atomic_load_explicit(r->cq_head, memory_order_relaxed);
}

const struct io_uring_cqe *ring_cqe(const struct ring *r, unsigned i)
{
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    return &r->cqes[(head + i) & r->cq_mask];
}

void ring_advance(struct ring *r, unsigned n)
{
    /* Release: our reads of those CQEs must be done before the kernel sees
     * the slots free and writes new completions into them. */
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    atomic_store_explicit(r->cq_head, head + n, memory_order_release);
}

int ring_overflowed(const struct ring *r)
{
    /* Relaxed: a hint to call ring_flush, which does its own ordering. */
    return (atomic_load_explicit(r->sq_flags, memory_order_relaxed) & IORING_SQ_CQ_OVERFLOW) != 0;
}

int ring_flush(struct ring *r)
{
    /* Submit nothing, wait for nothing: GETEVENTS alone makes the kernel
     * move what it holds into the CQ (and, with DEFER_TASKRUN, finish the
     * completions it has deferred to this moment). */
    return sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS) < 0 ? -1 : 0;
}

unsigned ring_dropped(const struct ring *r)
{
    return atomic_load_explicit(r->cq_dropped, memory_order_relaxed);
}

int ring_supports(struct ring *r, unsigned op)
{
    /* The kernel fills one entry per opcode, up to the last it knows; the
     * memory must be zeroed. Opcodes are 8 bits: 256 entries cover them all. */
    struct io_uring_probe *probe = calloc(1, sizeof *probe + 256 * sizeof probe->ops[0]);
    if (probe == NULL)
        return -1;
    int known = sys_register(r->fd, IORING_REGISTER_PROBE, probe, 256) < 0 ? -1
              : op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
    int saved = errno;
    free(probe);
    errno = saved;
    return known;
}

const char *ring_why_unavailable(int err)
{
    if (err == ENOSYS)
        return "this kernel has no io_uring (before 5.1, or built without it)";
    if (err == EINVAL)
        return "this kernel's io_uring is too old (no IORING_SETUP_CQSIZE: before 5.5)";
    if (err == EPERM || err == EACCES)
        return "not permitted (sysctl kernel.io_uring_disabled, or a seccomp filter such as a container's)";
    return strerror(err);
}

static void *map_anonymous(size_t len)
{
    /* Untouched pages cost no memory: a buffer becomes resident only once
     * the kernel has written into it. */
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

int ring_bufs_init(struct ring *r, struct ring_bufs *b, unsigned group, unsigned count, unsigned size)
{
    memset(b, 0, sizeof *b);
    unsigned entries = 1;
    while (entries < count)
        entries *= 2;               /* the ring's size must be a power of two */
    b->count = count;
    b->size = size;
    b->mask = entries - 1;
    b->ring_len = entries * sizeof(struct io_uring_buf);
    b->mem_len = (size_t)count * size;
    b->ring = map_anonymous(b->ring_len);       /* page-aligned, as the kernel wants */
    b->mem = map_anonymous(b->mem_len);
    if (b->ring == MAP_FAILED || b->mem == MAP_FAILED)
        goto fail;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)b->ring, .ring_entries = entries, .bgid = (uint16_t)group,
    };
    if (sys_register(r->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
        goto fail;
    for (unsigned id = 0; id < count; id++)
        ring_bufs_give(b, id);
    return 0;

fail:;
    int saved = errno;
    ring_bufs_exit(b);
    errno = saved;
    return -1;
}

void ring_bufs_exit(struct ring_bufs *b)
{
    if (b->ring != NULL && b->ring != MAP_FAILED)
        munmap(b->ring, b->ring_len);
    if (b->mem != NULL && b->mem != MAP_FAILED)
        munmap(b->mem, b->mem_len);
    memset(b, 0, sizeof *b);
}

char *ring_buf(const struct ring_bufs *b, unsigned id)
{
    return b->mem + (size_t)id * b->size;
}

void ring_bufs_give(struct ring_bufs *b, unsigned id)
{
    struct io_uring_buf *slot = &b->ring->bufs[b->tail & b->mask];
    slot->addr = (uint64_t)(uintptr_t)ring_buf(b, id);
    slot->len = b->size;
    slot->bid = (uint16_t)id;
    b->tail++;
    /* Release: the entry must be visible before the tail that hands it
     * over; the kernel loads the tail with acquire. The tail is 16 bits,
     * laid over the reserved field of bufs[0] (the header's union). */
    atomic_store_explicit((_Atomic uint16_t *)(void *)&b->ring->tail, b->tail, memory_order_release);
}
