/*
 * task.c: coroutines on the chapter 08 loop. See task.h for the API; the
 * notes here are about how it works.
 *
 * Two kinds of stack. The loop runs on the thread's own stack ("the loop's
 * stack"); each task has its own, mmap'd. resume() is only ever called on the
 * loop's stack: it switches into a task, and returns when that task suspends
 * or finishes. A task never switches to another task directly; it always
 * goes back to the loop. So there is one saved loop context per thread.
 *
 * Waking. A completion that arrives in a loop callback (a timer, a stream
 * callback of chapter 09, which never runs inside the call that started it)
 * resumes the task right there: no queue, no extra loop iteration, and the
 * bytes of a read are still valid while the task runs (task_read_view). A
 * wake that comes from a task (cancel, join) or that must not run inside the
 * caller's loop over something (task_server_close) is queued with
 * loop_call_soon instead.
 *
 * Switching. swapcontext() saves and restores the signal mask, which is a
 * system call (rt_sigprocmask) at every switch. Tasks never change the
 * signal mask, so that work is wasted: ctx_switch below saves only what the
 * C calling convention says a called function must preserve, swaps the
 * stack pointer, and returns on the other stack. It is a function call, not
 * a system call: a few nanoseconds.
 */
#define _GNU_SOURCE
#include "task.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define TASK_ASAN 1
#else
#define TASK_ASAN 0
#endif

/* ---- the context switch ------------------------------------------------- */

#if defined(__x86_64__)
/*
 * void ctx_switch(void **save_sp, void *load_sp)
 *   rdi = where to save this stack's pointer, rsi = the stack to go to.
 * The System V ABI makes rbx, rbp, r12-r15 callee-saved, and the MXCSR
 * control bits and the x87 control word too: push them, save rsp, load the
 * other rsp, pop the other side's, return into it. Everything else is
 * caller-saved: the C compiler has already spilled what it needs across
 * the call. 6 pushes + 8 bytes for the two control words keep the saved
 * frame a multiple of 16 bytes.
 */
__asm__(".text\n"
        ".p2align 4\n"
        ".type task_ctx_switch,@function\n"
        "task_ctx_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size task_ctx_switch, .-task_ctx_switch\n"
        /* A new stack "returns" here from its first switch, with r12 = the
         * task and r13 = the C entry point; rsp is 16-byte aligned, as it
         * must be at a call. */
        ".p2align 4\n"
        ".type task_ctx_boot,@function\n"
        "task_ctx_boot:\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        ".size task_ctx_boot, .-task_ctx_boot\n");
#define TASK_OWN_SWITCH 1
#elif defined(__aarch64__)
/*
 * AAPCS64: x19-x28, the frame pointer x29, the link register x30, sp, the
 * low halves of v8-v15 (d8-d15) and the FPCR control bits survive a call.
 * 176 bytes keep sp 16-byte aligned, which aarch64 checks in hardware.
 */
__asm__(".text\n"
        ".p2align 4\n"
        ".type task_ctx_switch,%function\n"
        "task_ctx_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    mov sp, x1\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size task_ctx_switch, .-task_ctx_switch\n"
        ".p2align 4\n"
        ".type task_ctx_boot,%function\n"
        "task_ctx_boot:\n"
        "    mov x0, x19\n"
        "    blr x20\n"
        "    brk #0\n"
        ".size task_ctx_boot, .-task_ctx_boot\n");
#define TASK_OWN_SWITCH 1
#else
/* Elsewhere: swapcontext. It costs a system call per switch (the signal
 * mask), but it is portable and correct, and this chapter's point (tasks
 * reading top to bottom) holds all the same; porting means writing the two
 * small routines above for that architecture's callee-saved registers. */
#include <ucontext.h>
#define TASK_OWN_SWITCH 0
#endif

#if TASK_OWN_SWITCH
void task_ctx_switch(void **save_sp, void *load_sp);
void task_ctx_boot(void);
#endif

/* ---- data --------------------------------------------------------------- */

enum task_state { T_NEW, T_READY, T_RUNNING, T_WAITING, T_DONE };
enum wait_kind { W_NONE, W_TIMER, W_JOIN, W_IO, W_EXTERNAL };
enum op_kind { OP_NONE, OP_READ, OP_EXACTLY, OP_UNTIL, OP_LINE, OP_DRAIN, OP_CLOSED, OP_CONNECT };

/* The chapter 09 call a task waits on. It lives in the task struct, not on
 * the stack: when a wait is abandoned (cancel, timeout) the 09 callback still
 * comes later, and must find it. */
struct io_op {
    enum op_kind kind;
    int busy;                   /* the 09 call is started; its callback is due */
    int abandoned;              /* ...but nobody waits for it any more */
    struct stream *s;
    char *buf;                  /* copy here (NULL: hand out a view) */
    size_t cap;
    const char **view;
    struct stream **connected;
    const char *host;
    int port;
    unsigned timeout_ms;
};

struct task {
    struct loop *loop;
    task_fn *fn;
    void *arg;
    intptr_t result;
    enum task_state state;
    enum wait_kind wait;
    intptr_t wake_value;
    int refs;                   /* 1 for the owner, 1 per abandoned 09 call */
    unsigned detached : 1, joined : 1, cancel_pending : 1;
    struct loop_handle *timer;  /* sleep / yield */
    struct loop_handle *deadline_timer;
    uint64_t deadline;          /* loop time, 0 = none */
    struct task *joiner;        /* the task waiting in task_join for this one */
    struct task *join_target;
    struct io_op op;
    char *map;                  /* guard page + stack */
    size_t map_size;
#if TASK_OWN_SWITCH
    void *sp;
#else
    ucontext_t uc;
#endif
#if TASK_ASAN
    void *asan_fake;
#endif
};

/* Per thread: one loop per thread, each with its own tasks. */
static _Thread_local struct task *current;
#if TASK_OWN_SWITCH
static _Thread_local void *loop_sp;
#else
static _Thread_local ucontext_t loop_uc;
#endif
#if TASK_ASAN
static _Thread_local void *loop_asan_fake;
static _Thread_local const void *loop_stack_bottom;
static _Thread_local size_t loop_stack_size;
#endif

static void task_main(struct task *t);

/* ---- switching, with AddressSanitizer told about each stack ------------- */

static void *stack_low(const struct task *t) { return t->map + sysconf(_SC_PAGESIZE); }
static size_t stack_size(const struct task *t) { return t->map_size - (size_t)sysconf(_SC_PAGESIZE); }

/* On the loop's stack: run t until it suspends or finishes. */
static void switch_into(struct task *t)
{
#if TASK_ASAN
    __sanitizer_start_switch_fiber(&loop_asan_fake, stack_low(t), stack_size(t));
#endif
#if TASK_OWN_SWITCH
    task_ctx_switch(&loop_sp, t->sp);
#else
    swapcontext(&loop_uc, &t->uc);
#endif
#if TASK_ASAN
    __sanitizer_finish_switch_fiber(loop_asan_fake, NULL, NULL);
#endif
}

/* On t's stack: go back to the loop. A finished task never comes back, and
 * tells ASan so (no fake stack to keep). */
static void switch_out(struct task *t, int finished)
{
#if TASK_ASAN
    __sanitizer_start_switch_fiber(finished ? NULL : &t->asan_fake, loop_stack_bottom, loop_stack_size);
#else
    (void)finished;
#endif
#if TASK_OWN_SWITCH
    task_ctx_switch(&t->sp, loop_sp);
#else
    swapcontext(&t->uc, &loop_uc);
#endif
#if TASK_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake, &loop_stack_bottom, &loop_stack_size);
#endif
}

#if !TASK_OWN_SWITCH
static void task_main_ucontext(unsigned hi, unsigned lo)
{
    task_main((struct task *)(((uintptr_t)hi << 32) | lo));
}
#endif

/* Lay out a new stack so that the first switch into it lands in task_main. */
static void prepare_stack(struct task *t)
{
    char *top = t->map + t->map_size;
#if TASK_OWN_SWITCH
    /* (memcpy: ISO C has no cast from a function pointer to void *.) */
    void (*entry)(struct task *) = task_main;
    void (*boot)(void) = task_ctx_boot;
#endif
#if defined(__x86_64__)
    uintptr_t s = ((uintptr_t)top & ~(uintptr_t)15) - 16;   /* rsp after the first ret */
    void **frame = (void **)(s - 64);
    uint32_t *csr = (uint32_t *)frame;
    csr[0] = 0x1F80;                /* MXCSR: all exceptions masked, round to nearest */
    csr[1] = 0x037F;                /* x87 control word: the same, 64-bit precision */
    frame[1] = NULL;                /* r15 */
    frame[2] = NULL;                /* r14 */
    memcpy(&frame[3], &entry, sizeof entry);    /* r13 */
    frame[4] = t;                   /* r12 */
    frame[5] = NULL;                /* rbx */
    frame[6] = NULL;                /* rbp: the end of the frame chain */
    memcpy(&frame[7], &boot, sizeof boot);      /* where the first ret goes */
    t->sp = frame;
#elif defined(__aarch64__)
    uintptr_t s = ((uintptr_t)top & ~(uintptr_t)15) - 16;
    void **frame = (void **)(s - 176);
    memset(frame, 0, 176);
    frame[0] = t;                   /* x19 */
    memcpy(&frame[1], &entry, sizeof entry);    /* x20 */
    memcpy(&frame[11], &boot, sizeof boot);     /* x30: where ret goes */
    t->sp = frame;
#else
    uintptr_t p = (uintptr_t)t;
    getcontext(&t->uc);
    t->uc.uc_stack.ss_sp = stack_low(t);
    t->uc.uc_stack.ss_size = stack_size(t);
    t->uc.uc_link = NULL;
    makecontext(&t->uc, (void (*)(void))task_main_ucontext, 2, (unsigned)(p >> 32), (unsigned)p);
#endif
}

/* ---- life and death ----------------------------------------------------- */

static void fatal(const char *what)
{
    fprintf(stderr, "task: %s: %s\n", what, strerror(errno));
    abort();
}

static void unref(struct task *t)
{
    if (--t->refs == 0)
        free(t);
}

static void free_stack(struct task *t)
{
    if (t->map == NULL)
        return;
#if TASK_ASAN
    /* The task's last frames were never unwound: clear their poison, or the
     * next mapping at this address inherits it. */
    ASAN_UNPOISON_MEMORY_REGION(stack_low(t), stack_size(t));
#endif
    munmap(t->map, t->map_size);
    t->map = NULL;
}

static void wake_soon(struct task *t, intptr_t value);

/* On the loop's stack, after the switch back: the task suspended or ended. */
static void resume(struct task *t)
{
    if (current != NULL) {
        errno = EDEADLK;
        fatal("resume called from a task");
    }
    t->state = T_RUNNING;
    current = t;
    switch_into(t);
    current = NULL;
    if (t->state != T_DONE)
        return;
    free_stack(t);
    if (t->joiner != NULL)
        wake_soon(t->joiner, 0);
    if (t->detached)
        unref(t);
}

static void resume_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct task *t = arg;
    t->timer = NULL;
    resume(t);
}

/* Wake a waiting task with `value` as its suspending call's result. */
static void wake_now(struct task *t, intptr_t value)
{
    t->wait = W_NONE;
    t->wake_value = value;
    if (current == NULL) {
        resume(t);
        return;
    }
    t->state = T_READY;             /* woken from a task: resume from the loop */
    t->timer = loop_call_soon(t->loop, resume_cb, t);
    if (t->timer == NULL)
        fatal("loop_call_soon");
}

static void wake_soon(struct task *t, intptr_t value)
{
    t->wait = W_NONE;
    t->wake_value = value;
    t->state = T_READY;
    t->timer = loop_call_soon(t->loop, resume_cb, t);
    if (t->timer == NULL)
        fatal("loop_call_soon");
}

static void task_main(struct task *t)
{
#if TASK_ASAN
    __sanitizer_finish_switch_fiber(NULL, &loop_stack_bottom, &loop_stack_size);
#endif
    t->result = t->fn(t->arg);
    t->state = T_DONE;
    switch_out(t, 1);
    abort();                        /* never resumed */
}

/* A task with its stack, ready to be switched into, not yet scheduled. */
static struct task *task_new(struct loop *loop, task_fn *fn, void *arg, const struct task_options *opts)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = opts != NULL && opts->stack_size ? opts->stack_size : TASK_DEFAULT_STACK;
    size = (size + page - 1) / page * page;
    struct task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    /* MAP_NORESERVE: pages are only committed when touched. The lowest page
     * is the guard: an overflow faults there instead of writing over
     * whatever lies below. */
    t->map_size = size + page;
    t->map = mmap(NULL, t->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (t->map == MAP_FAILED || mprotect(t->map, page, PROT_NONE) < 0) {
        int saved = errno;
        if (t->map != MAP_FAILED)
            munmap(t->map, t->map_size);
        free(t);
        errno = saved;
        return NULL;
    }
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->refs = 1;
    t->detached = opts != NULL && opts->detached;
    prepare_stack(t);
    t->state = T_READY;
    return t;
}

struct task *task_spawn(struct loop *loop, task_fn *fn, void *arg, const struct task_options *opts)
{
    struct task *t = task_new(loop, fn, arg, opts);
    if (t == NULL)
        return NULL;
    t->timer = loop_call_soon(loop, resume_cb, t);     /* it starts from the loop */
    if (t->timer == NULL) {
        int saved = errno;
        free_stack(t);
        free(t);
        errno = saved;
        return NULL;
    }
    return t;
}

struct task *task_current(void) { return current; }
struct loop *task_loop(const struct task *t) { return t->loop; }
int task_done(const struct task *t) { return t->state == T_DONE; }

void task_detach(struct task *t)
{
    if (t->detached)
        return;
    t->detached = 1;
    if (t->state == T_DONE && t->joiner == NULL)
        unref(t);
}

/* ---- waiting ------------------------------------------------------------ */

static void on_deadline(struct loop *loop, void *arg);

/* Before a suspending call starts anything: a pending cancel or a passed
 * deadline makes it fail at once. */
static int precheck(void)
{
    struct task *t = current;
    if (t == NULL)
        return -EPERM;              /* suspending calls are for tasks only */
    if (t->cancel_pending) {
        t->cancel_pending = 0;
        return -ECANCELED;
    }
    if (t->deadline != 0 && loop_time(t->loop) >= t->deadline)
        return -ETIMEDOUT;
    return 0;
}

/* Suspend the running task until something wakes it; returns the value it
 * was woken with. */
static intptr_t wait_for(enum wait_kind kind)
{
    struct task *t = current;
    t->wait = kind;
    t->state = T_WAITING;
    if (t->deadline != 0) {
        t->deadline_timer = loop_call_at(t->loop, t->deadline, on_deadline, t);
        if (t->deadline_timer == NULL)
            fatal("loop_call_at");
    }
    switch_out(t, 0);
    if (t->deadline_timer != NULL) {
        loop_cancel(t->loop, t->deadline_timer);
        t->deadline_timer = NULL;
    }
    return t->wake_value;
}

/* Abandon what t waits on and wake it with `value` (-ECANCELED, -ETIMEDOUT). */
static void interrupt(struct task *t, intptr_t value, int now)
{
    switch (t->wait) {
    case W_NONE:
        return;                     /* not waiting, or already woken */
    case W_TIMER:
        loop_cancel(t->loop, t->timer);
        t->timer = NULL;
        break;
    case W_JOIN:
        t->join_target->joiner = NULL;
        t->join_target = NULL;
        break;
    case W_IO:
        t->op.abandoned = 1;        /* the 09 callback will come, and find nobody */
        t->refs++;
        break;
    case W_EXTERNAL:
        break;
    }
    if (now)
        wake_now(t, value);
    else
        wake_soon(t, value);
}

static void on_deadline(struct loop *loop, void *arg)
{
    (void)loop;
    struct task *t = arg;
    t->deadline_timer = NULL;
    interrupt(t, -ETIMEDOUT, 1);
}

void task_cancel(struct task *t)
{
    if (t->state == T_DONE)
        return;
    if (t->state == T_WAITING && t->wait != W_NONE)
        interrupt(t, -ECANCELED, 0);    /* queued: the caller may be iterating */
    else
        t->cancel_pending = 1;
}

uint64_t task_set_timeout(uint64_t ms)
{
    struct task *t = current;
    uint64_t previous = t->deadline;
    uint64_t when = loop_time(t->loop) + ms;
    if (when == 0)
        when = 1;
    if (previous == 0 || when < previous)
        t->deadline = when;
    return previous;
}

void task_restore_deadline(uint64_t previous)
{
    current->deadline = previous;
}

static void on_timer(struct loop *loop, void *arg)
{
    (void)loop;
    struct task *t = arg;
    t->timer = NULL;
    wake_now(t, 0);
}

int task_sleep(uint64_t ms)
{
    int rc = precheck();
    if (rc != 0)
        return rc;
    struct task *t = current;
    t->timer = loop_call_later(t->loop, ms, on_timer, t);
    if (t->timer == NULL)
        return -errno;
    return (int)wait_for(W_TIMER);
}

int task_yield(void)
{
    int rc = precheck();
    if (rc != 0)
        return rc;
    struct task *t = current;
    t->timer = loop_call_soon(t->loop, on_timer, t);
    if (t->timer == NULL)
        return -errno;
    return (int)wait_for(W_TIMER);
}

int task_join(struct task *t, intptr_t *result)
{
    struct task *self = current;
    if (self == NULL)
        return -EPERM;
    if (t == self)
        return -EDEADLK;
    if (t->detached || t->joined || (t->joiner != NULL && t->joiner != self))
        return -EINVAL;
    if (t->state != T_DONE) {
        int rc = precheck();
        if (rc != 0)
            return rc;
        t->joiner = self;
        self->join_target = t;
        rc = (int)wait_for(W_JOIN);
        if (rc != 0)
            return rc;              /* interrupt() unhooked us */
        self->join_target = NULL;
        t->joiner = NULL;
    }
    if (result != NULL)
        *result = t->result;
    t->joined = 1;
    unref(t);
    return 0;
}

int task_gather(struct task **tasks, size_t n, intptr_t *results)
{
    int status = 0;
    uint64_t deadline = current != NULL ? current->deadline : 0;
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            int rc = task_join(tasks[i], results ? &results[i] : NULL);
            if (rc == 0)
                break;
            if (rc != -ECANCELED && rc != -ETIMEDOUT)
                return rc;
            if (status == 0) {
                status = rc;        /* cancel the rest, then wait for them */
                for (size_t j = i; j < n; j++)
                    task_cancel(tasks[j]);
                current->deadline = 0;  /* their unwinding is not timed */
            }
        }
    }
    if (status != 0)
        current->deadline = deadline;
    return status;
}

/* ---- from main, from other threads -------------------------------------- */

int task_run(struct loop *loop, task_fn *fn, void *arg, intptr_t *result)
{
    struct task *t = task_spawn(loop, fn, arg, NULL);
    if (t == NULL)
        return -1;
    while (t->state != T_DONE) {
        int rc = loop_run_once(loop);
        if (rc < 0)
            return -1;
        if (rc == 0 && t->state != T_DONE) {
            errno = EDEADLK;        /* nothing left that could wake it */
            return -1;
        }
    }
    if (result != NULL)
        *result = t->result;
    unref(t);
    return 0;
}

struct threadsafe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, error;
    task_fn *fn;
    void *arg;
    intptr_t result;
};

static intptr_t threadsafe_main(void *arg)
{
    struct threadsafe *req = arg;
    intptr_t r = req->fn(req->arg);
    pthread_mutex_lock(&req->lock);
    req->result = r;
    req->done = 1;
    pthread_cond_signal(&req->cond);
    pthread_mutex_unlock(&req->lock);   /* req may be gone after this */
    return 0;
}

static void threadsafe_start(struct loop *loop, void *arg)
{
    struct threadsafe *req = arg;
    struct task_options opts = { .detached = 1 };
    if (task_spawn(loop, threadsafe_main, req, &opts) == NULL) {
        pthread_mutex_lock(&req->lock);
        req->error = errno ? errno : ENOMEM;
        req->done = 1;
        pthread_cond_signal(&req->cond);
        pthread_mutex_unlock(&req->lock);
    }
}

int task_run_threadsafe(struct loop *loop, task_fn *fn, void *arg, intptr_t *result)
{
    struct threadsafe req = { .fn = fn, .arg = arg };
    pthread_mutex_init(&req.lock, NULL);
    pthread_cond_init(&req.cond, NULL);
    int rc = loop_call_soon_threadsafe(loop, threadsafe_start, &req);
    if (rc == 0) {
        pthread_mutex_lock(&req.lock);
        while (!req.done)
            pthread_cond_wait(&req.cond, &req.lock);
        pthread_mutex_unlock(&req.lock);
        if (req.error != 0) {
            errno = req.error;
            rc = -1;
        } else if (result != NULL) {
            *result = req.result;
        }
    }
    pthread_cond_destroy(&req.cond);
    pthread_mutex_destroy(&req.lock);
    return rc;
}

/* ---- streams ------------------------------------------------------------ */

/* A 09 callback came for t's op. Abandoned: drop it (and the bytes). */
static int op_finished(struct task *t)
{
    t->op.busy = 0;
    if (t->op.abandoned) {
        t->op.abandoned = 0;
        unref(t);
        return 0;
    }
    return 1;
}

static void on_read(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s;
    struct task *t = arg;
    struct io_op *op = &t->op;
    if (!op_finished(t))
        return;
    intptr_t r;
    if (status < 0)
        r = status;
    else if (status == STREAM_LIMIT)
        r = op->kind == OP_LINE && len == 0 ? -E2BIG : -EMSGSIZE;
    else {
        r = (intptr_t)len;          /* 0, or STREAM_INCOMPLETE: the bytes there are */
        if (op->buf != NULL && len > 0)
            memcpy(op->buf, data, len < op->cap ? len : op->cap);
        else if (op->view != NULL)
            *op->view = data;       /* valid while the task runs in this callback */
    }
    wake_now(t, r);
}

static void on_done(struct stream *s, int status, void *arg)
{
    (void)s;
    struct task *t = arg;
    if (op_finished(t))
        wake_now(t, status);
}

static void on_connected(struct stream *s, int status, void *arg)
{
    struct task *t = arg;
    if (!op_finished(t)) {
        if (s != NULL)
            stream_abort(s);        /* nobody wants it any more */
        return;
    }
    *t->op.connected = s;
    wake_now(t, status);
}

/* Start a 09 call for the running task and wait for its callback. A call
 * abandoned earlier by this task (cancel, timeout) that is the same kind on
 * the same stream is still running inside 09: wait for that one again. */
static intptr_t io_wait(struct io_op *want, int (*start)(struct task *t))
{
    int rc = precheck();
    if (rc != 0)
        return rc;
    struct task *t = current;
    struct io_op *op = &t->op;
    if (op->busy) {
        if (!op->abandoned || op->kind != want->kind || op->s != want->s)
            return -EBUSY;
        op->abandoned = 0;          /* pick it up again */
        t->refs--;
        op->buf = want->buf;
        op->cap = want->cap;
        op->view = want->view;
        op->connected = want->connected;
        return wait_for(W_IO);
    }
    *op = *want;
    if (start(t) < 0)
        return -errno;
    op->busy = 1;
    return wait_for(W_IO);
}

static int start_read(struct task *t)
{
    return stream_read(t->op.s, t->op.cap, on_read, t);
}

static int start_exactly(struct task *t)
{
    return stream_readexactly(t->op.s, t->op.cap, on_read, t);
}

static int start_line(struct task *t)
{
    return stream_readline(t->op.s, on_read, t);
}

static _Thread_local const char *until_sep;
static _Thread_local size_t until_seplen;

static int start_until(struct task *t)
{
    return stream_readuntil(t->op.s, until_sep, until_seplen, on_read, t);
}

static int start_drain(struct task *t)
{
    return stream_drain(t->op.s, on_done, t);
}

static int start_closed(struct task *t)
{
    return stream_wait_closed(t->op.s, on_done, t);
}

ssize_t task_read(struct stream *s, void *buf, size_t n)
{
    struct io_op want = { .kind = OP_READ, .s = s, .buf = buf, .cap = n };
    return io_wait(&want, start_read);
}

ssize_t task_read_view(struct stream *s, size_t n, const char **data)
{
    *data = NULL;
    struct io_op want = { .kind = OP_READ, .s = s, .cap = n, .view = data };
    return io_wait(&want, start_read);
}

ssize_t task_readexactly(struct stream *s, void *buf, size_t n)
{
    struct io_op want = { .kind = OP_EXACTLY, .s = s, .buf = buf, .cap = n };
    return io_wait(&want, start_exactly);
}

ssize_t task_readuntil(struct stream *s, const char *sep, size_t seplen, char *buf, size_t cap)
{
    struct io_op want = { .kind = OP_UNTIL, .s = s, .buf = buf, .cap = cap };
    until_sep = sep;
    until_seplen = seplen;
    return io_wait(&want, start_until);
}

ssize_t task_readline(struct stream *s, char *buf, size_t cap)
{
    struct io_op want = { .kind = OP_LINE, .s = s, .buf = buf, .cap = cap };
    return io_wait(&want, start_line);
}

ssize_t task_readline_view(struct stream *s, const char **data)
{
    *data = NULL;
    struct io_op want = { .kind = OP_LINE, .s = s, .view = data };
    return io_wait(&want, start_line);
}

int task_write(struct stream *s, const void *data, size_t len)
{
    return stream_write(s, data, len) < 0 ? -errno : 0;
}

int task_drain(struct stream *s)
{
    struct io_op want = { .kind = OP_DRAIN, .s = s };
    return (int)io_wait(&want, start_drain);
}

int task_write_eof(struct stream *s)
{
    return stream_write_eof(s) < 0 ? -errno : 0;
}

void task_close(struct stream *s)
{
    stream_close(s);
}

int task_wait_closed(struct stream *s)
{
    struct io_op want = { .kind = OP_CLOSED, .s = s };
    return (int)io_wait(&want, start_closed);
}

/* getaddrinfo may want more stack than a task has: start the connect from
 * the loop's stack. */
static void connect_from_loop(struct loop *loop, void *arg)
{
    struct task *t = arg;
    if (stream_open_connection(loop, t->op.host, t->op.port, t->op.timeout_ms, on_connected, t) == NULL)
        on_connected(NULL, -errno, t);
}

static int start_connect(struct task *t)
{
    return loop_call_soon(t->loop, connect_from_loop, t) == NULL ? -1 : 0;
}

int task_open_connection(struct loop *loop, const char *host, int port, unsigned timeout_ms,
                         struct stream **out)
{
    *out = NULL;
    struct io_op want = { .kind = OP_CONNECT, .host = host, .port = port,
                          .timeout_ms = timeout_ms, .connected = out };
    (void)loop;                     /* the running task's loop */
    return (int)io_wait(&want, start_connect);
}

/* ---- servers ------------------------------------------------------------ */

struct client {
    struct task_server *server;     /* NULL once the server is closed */
    struct stream *stream;
    struct task *task;
    struct client *prev, *next;
};

struct task_server {
    struct loop *loop;
    struct stream_server *streams;
    task_handler *handler;
    void *arg;
    struct task_options topts;
    struct client *clients;
    size_t count;
};

static void unlink_client(struct client *c)
{
    struct task_server *server = c->server;
    if (server == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        server->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    server->count--;
    c->server = NULL;
}

static intptr_t client_main(void *arg)
{
    struct client *c = arg;
    c->server->handler(c->stream, c->server->arg);
    unlink_client(c);
    free(c);
    return 0;
}

static void on_client(struct stream *s, void *arg)
{
    struct task_server *server = arg;
    struct client *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->server = server;
        c->stream = s;
        c->task = task_spawn(server->loop, client_main, c, &server->topts);
    }
    if (c == NULL || c->task == NULL) {
        free(c);
        stream_abort(s);            /* out of memory: shed this client */
        return;
    }
    c->next = server->clients;
    if (c->next != NULL)
        c->next->prev = c;
    server->clients = c;
    server->count++;
}

struct task_server *task_serve(struct loop *loop, int listen_fd, const struct stream_options *opts,
                               task_handler *handler, void *arg, const struct task_options *topts)
{
    struct task_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return NULL;
    server->loop = loop;
    server->handler = handler;
    server->arg = arg;
    if (topts != NULL)
        server->topts = *topts;
    server->topts.detached = 1;
    server->streams = stream_serve(loop, listen_fd, opts, on_client, server);
    if (server->streams == NULL) {
        free(server);
        return NULL;
    }
    return server;
}

struct task_server *task_start_server(struct loop *loop, const char *host, int port,
                                      const struct stream_options *opts, task_handler *handler,
                                      void *arg, int *gai_error)
{
    int fd = net_listen(host, port, SOMAXCONN, gai_error);
    if (fd < 0)
        return NULL;
    struct task_server *server = task_serve(loop, fd, opts, handler, arg, NULL);
    if (server == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return server;
}

void task_server_close(struct task_server *server)
{
    stream_server_close(server->streams, STREAM_KEEP_CLIENTS);  /* the handlers own them */
    while (server->clients != NULL) {
        struct client *c = server->clients;
        unlink_client(c);
        task_cancel(c->task);
    }
    free(server);
}

size_t task_server_clients(const struct task_server *server)
{
    return server->count;
}

/* ---- measuring ---------------------------------------------------------- */

static _Thread_local struct task *probe;
static _Thread_local int probe_stop;

static intptr_t probe_main(void *arg)
{
    (void)arg;
    while (!probe_stop) {
        current->state = T_WAITING;
        switch_out(current, 0);
    }
    return 0;
}

int task_switch_probe(long rounds)
{
    if (rounds == 0) {              /* make the probe task */
        struct task_options opts = { .detached = 1 };
        probe_stop = 0;
        probe = task_new(NULL, probe_main, NULL, &opts);
        return probe == NULL ? -1 : 0;
    }
    if (rounds < 0)
        probe_stop = 1;             /* let it return, and free it */
    for (long i = 0; i < (rounds < 0 ? 1 : rounds); i++) {
        probe->state = T_RUNNING;
        current = probe;
        switch_into(probe);
        current = NULL;
    }
    if (rounds < 0) {
        free_stack(probe);
        unref(probe);
        probe = NULL;
    }
    return 0;
}

double task_measure_switch(long rounds)
{
    if (task_switch_probe(0) < 0)
        return -1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    task_switch_probe(rounds);
    clock_gettime(CLOCK_MONOTONIC, &b);
    task_switch_probe(-1);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    return ns / (2.0 * (double)rounds);
}

/* ---- stack overflow reports --------------------------------------------- */

static void on_segv(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    struct task *t = current;
    char *addr = info->si_addr;
    if (t != NULL && t->map != NULL && addr >= t->map && addr < (char *)stack_low(t)) {
        char msg[96];
        int n = snprintf(msg, sizeof msg, "task: stack overflow (the stack is %zu bytes)\n", stack_size(t));
        if (write(STDERR_FILENO, msg, (size_t)n) < 0) {
            /* nothing more to do */
        }
    }
    signal(sig, SIG_DFL);           /* return: the access faults again, fatally */
}

int task_report_overflow(void)
{
    static _Thread_local char altstack[16384];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaltstack(&ss, NULL) < 0 || sigaction(SIGSEGV, &sa, NULL) < 0)
        return -1;
    return 0;
}
