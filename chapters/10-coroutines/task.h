/*
 * task: coroutines with their own stacks, scheduled by the chapter 08 loop.
 * A task is a function that runs until it calls a suspending function (the
 * C spelling of asyncio's `await`), and continues on the next line when the
 * result is there. task_stream.h makes chapter 09's stream calls suspend.
 *
 *     asyncio                                  here
 *     asyncio.create_task(coro(arg))           t = task_spawn(loop, fn, arg, NULL)
 *     asyncio.run(main())                      task_run(loop, fn, arg, &result)
 *     await asyncio.sleep(s)                   task_sleep(ms)
 *     await asyncio.sleep(0)                   task_yield()
 *     result = await t                         task_join(t, &result)
 *     await asyncio.gather(a, b, c)            task_gather(tasks, 3, results)
 *     t.cancel()                               task_cancel(t)
 *     await asyncio.wait_for(x, s)             old = task_set_timeout(ms); x; task_restore_deadline(old)
 *     run_coroutine_threadsafe(c, loop)        task_run_threadsafe(loop, fn, arg, &result)
 *     loop.create_future(); await fut          task_check(); start it; task_suspend(withdraw, op)
 *     fut.set_result(value)                    task_wake(t, value)
 *
 * Running. A task runs on the loop's thread, from a loop callback, until it
 * returns or suspends; then the loop goes on, and a later callback (a timer,
 * a completed read) switches back into it. Only one task runs at a time, so
 * tasks share data without locks, and a task that computes for a second
 * stalls everyone. Suspending functions may only be called from a task.
 *
 * Errors. Suspending functions return a negative errno on failure. Two are
 * for every one of them:
 *     -ECANCELED   task_cancel was called: the call's wait was withdrawn.
 *                  A cancel is delivered once (to the pending call, or to the
 *                  next one if the task is not waiting), like asyncio's
 *                  CancelledError; the task then unwinds through its own code
 *                  (closing what it opened) and returns. A task cancelled
 *                  before it started never runs at all (its result is
 *                  -ECANCELED).
 *     -ETIMEDOUT   the deadline set with task_set_timeout passed.
 * Either way the operation waited on is withdrawn whole: nothing of it
 * happens later, and the next call, on any stream, does exactly what it says.
 *
 * Who frees a task. A task is owned by whoever spawned it until it is joined
 * (task_join/task_gather free it when they return its result) or detached
 * (task_detach: freed as soon as it returns, unless a join is under way,
 * which then frees it). A task neither joined nor detached is a leak, as in
 * any C API. Its stack is freed when it returns.
 */
#ifndef TASK_H
#define TASK_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct task;

typedef intptr_t task_fn(void *arg);

/* 64 KiB: the stack is mapped, not allocated, and only the pages a task
 * touches cost memory (one page for an echo handler waiting in a read), so
 * the size is a ceiling, not a cost. 64 KiB holds the handler's frames, stdio
 * and a few KiB of local buffers with margin. Deeply recursive code or big
 * local arrays need more: pass stack_size. */
#define TASK_DEFAULT_STACK (64 * 1024)

/* Below each stack, a guard region that faults when touched. A function
 * whose frame is larger than the guard could step over it and write into
 * whatever lies below, unless the code is built with -fstack-clash-
 * protection (this chapter's Makefile does that): the compiler then touches
 * a large frame page by page. x86-64 compilers probe every 4 KiB; GCC on
 * AArch64 assumes a 64 KiB guard (as glibc's threads have) and leaves frames
 * below that unprobed, so the guard is 64 KiB. It costs address space only,
 * or nothing where the kernel has guard regions (see map_stack in task.c). */
#define TASK_GUARD_SIZE (64 * 1024)

struct task_options {
    size_t stack_size;          /* 0: TASK_DEFAULT_STACK; rounded up to pages */
    int detached;               /* freed when it returns; nobody joins it */
};

/* ---- tasks ---- */

/* Create a task that will run fn(arg) on its own stack, starting from the
 * loop soon (never inside this call). NULL with errno on failure: ENOMEM
 * when no stack can be mapped. */
struct task *task_spawn(struct loop *loop, task_fn *fn, void *arg, const struct task_options *opts);

/* The running task (NULL on the loop's own stack), and its loop. */
struct task *task_current(void);
struct loop *task_loop(const struct task *t);
int task_started(const struct task *t);     /* its function has begun (or it is done) */
int task_done(const struct task *t);

/* Suspends until the task returns, stores its result, and frees it. -EINVAL
 * for a detached task or one already joined by another, -EDEADLK for itself.
 * If the join itself is cancelled or times out, the task goes on and may be
 * joined again (or cancelled, or detached). */
int task_join(struct task *t, intptr_t *result);

/* Join n tasks (results may be NULL). If the gather is cancelled or times
 * out, it cancels the tasks not yet finished, waits for them all to unwind,
 * frees them, and returns -ECANCELED / -ETIMEDOUT. Otherwise 0. */
int task_gather(struct task **tasks, size_t n, intptr_t *results);

/* Nobody will join t: free it when it returns (now, if it already has). */
void task_detach(struct task *t);

/* Ask t to stop: its pending suspending call (or its next one) returns
 * -ECANCELED; a task not yet started never starts. Callable from a task or
 * a loop callback. Cancelling again before the first is delivered does
 * nothing more. */
void task_cancel(struct task *t);

/* Suspend for ms milliseconds / until the loop has run once more. */
int task_sleep(uint64_t ms);
int task_yield(void);

/* wait_for: every suspending call of this task returns -ETIMEDOUT once ms
 * milliseconds have passed. Returns the previous deadline, to restore when
 * the timed section ends. Sections nest: the nearer deadline wins. */
uint64_t task_set_timeout(uint64_t ms);
void task_restore_deadline(uint64_t previous);

/* asyncio.run: from the loop's stack (main), spawn fn(arg), run the loop
 * until it returns, store its result, free it. 0, or -1 with errno. */
int task_run(struct loop *loop, task_fn *fn, void *arg, intptr_t *result);

/* run_coroutine_threadsafe(...).result(): from another thread than the
 * loop's, run fn(arg) as a task on loop and wait for its result. 0, or -1
 * with errno (ENOMEM). The loop must be running (or run later). */
int task_run_threadsafe(struct loop *loop, task_fn *fn, void *arg, intptr_t *result);

/* ---- making a suspending call out of a callback API ----
 *
 * Every suspending call here is built the same way (task_sleep on a loop
 * timer, task_stream.c on chapter 09's calls):
 *
 *     int rc = task_check();           a cancel or a passed deadline: fail now
 *     if (rc != 0) return rc;
 *     start the operation; its callback will call task_wake(t, value)
 *     return task_suspend(withdraw, op);
 *
 * task_suspend returns the value given to task_wake; or, if the task is
 * cancelled or its deadline passes first, it calls withdraw(op), which must
 * take the operation back so that its callback never comes, and returns
 * -ECANCELED / -ETIMEDOUT. */
int task_check(void);
intptr_t task_suspend(void (*withdraw)(void *op), void *op);
void task_wake(struct task *t, intptr_t value);
/* The operation's callback must not run before task_suspend (a callback API
 * that can complete at once must still call back from the loop, as 09's
 * does): a task_wake for a task that is not waiting is ignored. withdraw
 * NULL makes a wait that cannot be interrupted: no deadline applies, and a
 * cancel waits for the task's next call (task_wait_closed uses it to see a
 * close through). */

#endif
