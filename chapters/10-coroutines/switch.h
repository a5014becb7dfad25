/*
 * switch: the one piece of magic in chapter 10, on its own (xv6 keeps its swtch.S
 * so). Everything else in the chapter is ordinary C.
 *
 * A context is a stack that is not running, with what the running code had
 * in its callee-saved registers pushed on top of it. Switching is a function
 * call that returns on another stack:
 *
 *     ctx_switch(&from, &to)
 *         push the callee-saved registers on the current stack
 *         from.sp = sp                  (this stack is now a context)
 *         sp = to.sp                    (the other one runs again...)
 *         pop its callee-saved registers
 *         ret                           (...from ITS call to ctx_switch)
 *
 * Only callee-saved registers: the compiler has already saved everything
 * else around the call, as it does around any call. No system call either:
 * swapcontext() also saves and restores the signal mask (rt_sigprocmask),
 * which tasks never change.
 *
 * switch.S has it for x86-64 and AArch64; switch.c lays out a new stack so
 * that the first switch into it starts a function, and falls back to
 * ucontext's swapcontext on any other architecture.
 */
#ifndef SWITCH_H
#define SWITCH_H

/* -DCTX_PORTABLE: use the fallback even where switch.S has the assembly
 * (test_task_ucontext does, to test it and to compare the cost). */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(CTX_PORTABLE)
#define CTX_ASSEMBLY 1
#else
#define CTX_ASSEMBLY 0
#endif

#ifndef __ASSEMBLER__           /* switch.S includes this file for CTX_ASSEMBLY */
#include <stddef.h>

#if CTX_ASSEMBLY
struct ctx {
    void *sp;                   /* the saved stack pointer: switch.S knows it is first */
};
#else
#include <ucontext.h>
struct ctx {
    ucontext_t uc;
};
#endif

/* Save the running code in *from and resume *to. Returns when someone
 * switches back to *from. */
void ctx_switch(struct ctx *from, struct ctx *to);

/* Make *c a context that, when first switched to, calls entry(arg) on the
 * stack [low, low + size). entry must never return: it switches away for
 * the last time instead. */
void ctx_prepare(struct ctx *c, void *low, size_t size, void (*entry)(void *), void *arg);

#endif /* __ASSEMBLER__ */
#endif
