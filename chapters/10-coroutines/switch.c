/*
 * switch.c: the C half of switch.h. ctx_prepare writes, at the top of a new
 * stack, the frame that ctx_switch would have pushed there, so that the
 * first switch into it pops that frame and "returns" into ctx_boot, which
 * calls the entry function. Elsewhere than x86-64 and AArch64, ucontext does
 * the same, at the price of a system call per switch.
 */
#include "switch.h"

#include <stdint.h>
#include <string.h>

#if CTX_ASSEMBLY

void ctx_boot(void);            /* switch.S */

void ctx_prepare(struct ctx *c, void *low, size_t size, void (*entry)(void *), void *arg)
{
    /* 16-byte aligned, with 16 bytes to spare above it. */
    uintptr_t top = (((uintptr_t)low + size) & ~(uintptr_t)15) - 16;
    /* (memcpy: ISO C has no conversion between function and data pointers.) */
    void (*boot)(void) = ctx_boot;
#if defined(__x86_64__)
    /* From the bottom up, what ctx_switch pops: the control words, r15,
     * r14, r13, r12, rbx, rbp; then the address its ret jumps to. */
    void **frame = (void **)(top - 64);
    uint32_t *control = (uint32_t *)frame;
    memset(frame, 0, 64);
    control[0] = 0x1F80;        /* MXCSR: exceptions masked, round to nearest */
    control[1] = 0x037F;        /* x87: the same, 64-bit precision */
    memcpy(&frame[3], &entry, sizeof entry);    /* r13 */
    frame[4] = arg;                             /* r12 */
    memcpy(&frame[7], &boot, sizeof boot);      /* where ret goes */
    /* rbp = 0 (frame[6]) ends the chain of frames a debugger walks. */
#elif defined(__aarch64__)
    /* x19..x28, x29, x30, d8..d15, FPCR: see switch.S for the offsets. */
    void **frame = (void **)(top - 176);
    memset(frame, 0, 176);
    frame[0] = arg;                             /* x19 */
    memcpy(&frame[1], &entry, sizeof entry);    /* x20 */
    memcpy(&frame[11], &boot, sizeof boot);     /* x30: where ret goes */
#endif
    c->sp = frame;
}

#else /* the portable fallback */

/* makecontext passes int arguments only: a pointer travels in two 32-bit
 * halves (through uint64_t, which a 32-bit uintptr_t could not shift). */
static void ctx_start(unsigned hi, unsigned lo, unsigned ehi, unsigned elo)
{
    void *arg = (void *)(uintptr_t)(((uint64_t)hi << 32) | lo);
    uintptr_t e = (uintptr_t)(((uint64_t)ehi << 32) | elo);
    void (*entry)(void *);
    memcpy(&entry, &e, sizeof entry);
    entry(arg);
}

void ctx_prepare(struct ctx *c, void *low, size_t size, void (*entry)(void *), void *arg)
{
    uint64_t p = (uintptr_t)arg;
    uintptr_t e0;
    memcpy(&e0, &entry, sizeof entry);
    uint64_t e = e0;
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = low;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))ctx_start, 4, (unsigned)(p >> 32), (unsigned)p,
                (unsigned)(e >> 32), (unsigned)e);
}

void ctx_switch(struct ctx *from, struct ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

#endif
