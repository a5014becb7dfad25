/*
 * switch.S: ctx_switch(from, to) for x86-64 and AArch64. Read switch.h first.
 *
 * ctx_boot is where a new stack "returns" to from its first switch:
 * ctx_prepare (switch.c) leaves the entry function and its argument in two
 * callee-saved registers, which the first switch pops like any others.
 */
#include "switch.h"

/*
 * ELF (Linux, the BSDs) and Apple's Mach-O spell a function differently:
 * Apple prefixes C names with an underscore and has no .type or .size.
 * (Apple's arm64 ABI also reserves x18 for the system: this file never
 * touches it.)
 */
#if defined(__APPLE__)
        .macro  function_begin name
        .globl  _\name
        .p2align 4
_\name:
        .endm
        .macro  function_end name
        .endm
#else
        .macro  function_begin name
        .globl  \name
        .type   \name, %function
        .p2align 4
\name:
        .endm
        .macro  function_end name
        .size   \name, .-\name
        .endm
#endif

#if CTX_ASSEMBLY && defined(__x86_64__)
/*
 * rdi = from, rsi = to. The System V ABI makes rbx, rbp, r12-r15
 * callee-saved, and the control bits of MXCSR and of the x87 control word
 * too. Six pushes and 8 bytes for the two control words keep the saved
 * frame a multiple of 16 bytes.
 */
        .text
function_begin ctx_switch
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)            /* from->sp = rsp */
        movq    (%rsi), %rsp            /* rsp = to->sp: now on the other stack */
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
function_end ctx_switch

/* r12 = the argument, r13 = the entry; rsp is 16-byte aligned here, as a
 * call wants it. The entry never returns. */
function_begin ctx_boot
        movq    %r12, %rdi
        callq   *%r13
        ud2
function_end ctx_boot

#elif CTX_ASSEMBLY && defined(__aarch64__)
/*
 * x0 = from, x1 = to. AAPCS64: x19-x28, the frame pointer x29, the link
 * register x30, the low halves of v8-v15 (d8-d15) and the FPCR control bits
 * survive a call. 176 bytes keep sp 16-byte aligned, which AArch64 checks
 * in hardware. ret jumps to x30: the other side's return address.
 */
        .text
function_begin ctx_switch
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]                /* from->sp = sp */
        ldr     x9, [x1]
        mov     sp, x9                  /* sp = to->sp: now on the other stack */
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        ret
function_end ctx_switch

/* x19 = the argument, x20 = the entry. */
function_begin ctx_boot
        mov     x0, x19
        blr     x20
        brk     #0
function_end ctx_boot
#endif

/* This file needs no executable stack: say so, or the linker assumes it does. */
#if defined(__linux__) && defined(__ELF__)
        .section .note.GNU-stack, "", %progbits
#endif
