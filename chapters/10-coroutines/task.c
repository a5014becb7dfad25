/*
 * task.c: the scheduler of task.h. The context switch itself is in switch.S
 * (read switch.h first); the stream calls are in task_stream.c.
 *
 * Two kinds of stack. The loop runs on the thread's own stack ("the loop's
 * stack"); each task has its own, mmap'd. resume() is only ever called on
 * the loop's stack: it switches into a task, and returns when that task
 * suspends or finishes. A task never switches to another task directly; it
 * always goes back to the loop. So there is one saved loop context per
 * thread.
 *
 * A task's life:
 *
 *    spawn ──► NEW ──(loop: start)──► RUNNING ──(returns)──► DONE
 *               │                      │    ▲
 *               │ cancel               │    │ resume (now, from the callback
 *               ▼                      ▼    │  that woke it; or queued)
 *              DONE (never ran)      WAITING ──(task_wake / cancel /
 *                                              deadline)──► READY
 *
 * Waking. A completion that arrives in a loop callback (a timer, a stream
 * callback of chapter 09, which never runs inside the call that started it)
 * resumes the task right there: no queue, no extra loop iteration, and the
 * bytes of a read are still valid while the task runs (task_read_view). A
 * wake that comes from a task (a cancel, a finished join target) is queued
 * with loop_call_soon instead.
 *
 * Withdrawing. A waiting task records how to take back what it waits on
 * (cancel the sleep's timer, unhook the join, withdraw the 09 read). A
 * cancel or a deadline calls that first, then wakes the task: nothing it
 * waited on can complete later, so nothing outlives the call that waited.
 */
/* Stacks want more than POSIX 2008 offers: anonymous memory (MAP_ANON is
 * POSIX only since 2024), and on Linux lazy commit and guard regions. Ask
 * the system for them; without them the code below falls back to POSIX. */
#if defined(__linux__)
#define _GNU_SOURCE
#elif defined(__APPLE__)
#define _DARWIN_C_SOURCE
#endif
#include "task.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "switch.h"

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

/* Linux 6.13's lightweight guard pages (older headers lack the name). */
#if defined(__linux__) && !defined(MADV_GUARD_INSTALL)
#define MADV_GUARD_INSTALL 102
#endif
#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0             /* macOS and the BSDs commit lazily anyway */
#endif
#ifndef MAP_STACK
#define MAP_STACK 0
#endif

enum task_state { T_NEW, T_READY, T_RUNNING, T_WAITING, T_DONE };

struct task {
    struct loop *loop;
    task_fn *fn;
    void *arg;
    intptr_t result;
    enum task_state state;
    intptr_t wake_value;            /* what the suspending call returns */
    struct loop_handle *resume;     /* NEW, READY: the queued start or resume */
    void (*withdraw)(void *op);     /* WAITING: how to take back what it waits on */
    void *op;
    unsigned detached : 1;
    unsigned cancel_requested : 1;  /* a cancel not yet delivered to the task */
    unsigned cancel_in_flight : 1;  /* ...and the wake that delivers it is queued */
    uint64_t deadline;              /* loop time, 0 = none */
    struct loop_handle *deadline_timer;
    struct task *joiner;            /* the task waiting in task_join for this one */
    char *map;                      /* guard region + stack */
    size_t map_size;
    struct ctx ctx;
#if TASK_ASAN
    void *asan_fake;
#endif
};

/* Per thread: one loop per thread, each with its own tasks. */
static _Thread_local struct task *current;
static _Thread_local struct ctx loop_ctx;
#if TASK_ASAN
static _Thread_local void *loop_asan_fake;
static _Thread_local const void *loop_stack_bottom;
static _Thread_local size_t loop_stack_size;
#endif

static void fatal(const char *what)
{
    fprintf(stderr, "task: %s: %s\n", what, strerror(errno));
    abort();
}

/* ---- stacks --------------------------------------------------------------- */

static size_t guard_size(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return TASK_GUARD_SIZE > page ? TASK_GUARD_SIZE / page * page : page;
}
static void *stack_low(const struct task *t) { return t->map + guard_size(); }
static size_t stack_size(const struct task *t) { return t->map_size - guard_size(); }

/*
 * MAP_NORESERVE: pages are committed only when touched. The lowest
 * TASK_GUARD_SIZE bytes are the guard: an overflow faults there instead of
 * writing over whatever lies below. Where the kernel has guard regions
 * (Linux 6.13), the guard is a marker inside the mapping, and the stacks of
 * neighbouring tasks merge into one mapping; a PROT_NONE region instead
 * splits each stack into two, and a process may have at most
 * vm.max_map_count (65,530) mappings: about 32,000 tasks. Past whichever
 * limit, task_spawn fails with ENOMEM.
 */
#ifdef MADV_GUARD_INSTALL
static int guard_regions_work;

/*
 * A kernel without guard regions refuses the madvise, but user-mode QEMU
 * accepts any advice and ignores it, so success proves nothing: the stacks
 * would have no guard at all. Ask the kernel to read from a guard page
 * instead. Guarded, the write fails with EFAULT; readable, it succeeds.
 */
static void probe_guard_regions(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fds[2];
    char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, page, MADV_GUARD_INSTALL) == 0 && pipe(fds) == 0) {
        guard_regions_work = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(p, page);
}

static int install_guard(void *low, size_t size)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, probe_guard_regions);
    if (guard_regions_work && madvise(low, size, MADV_GUARD_INSTALL) == 0)
        return 0;
    return mprotect(low, size, PROT_NONE);
}
#else
static int install_guard(void *low, size_t size)
{
    return mprotect(low, size, PROT_NONE);
}
#endif

/* Fresh zeroed pages. Without MAP_ANON (strict POSIX 2008), a private
 * mapping of /dev/zero is the classic way to get them. */
static void *map_zeroed(size_t size)
{
#ifdef MAP_ANONYMOUS
    return mmap(NULL, size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
#else
    int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return MAP_FAILED;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_STACK, fd, 0);
    int saved = errno;
    close(fd);
    errno = saved;
    return p;
#endif
}

static int map_stack(struct task *t, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), guard = guard_size();
    if (size > SIZE_MAX / 2) {
        errno = ENOMEM;             /* no such stack: do not let the sum wrap */
        return -1;
    }
    t->map_size = (size + page - 1) / page * page + guard;
    t->map = map_zeroed(t->map_size);
    if (t->map == MAP_FAILED) {
        t->map = NULL;
        return -1;
    }
    if (install_guard(t->map, guard) == 0)
        return 0;
    int saved = errno;
    munmap(t->map, t->map_size);
    t->map = NULL;
    errno = saved;
    return -1;
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

/* ---- switching, with AddressSanitizer told about each stack --------------- */

/* On the loop's stack: run t until it suspends or finishes. */
static void switch_into(struct task *t)
{
#if TASK_ASAN
    __sanitizer_start_switch_fiber(&loop_asan_fake, stack_low(t), stack_size(t));
#endif
    ctx_switch(&loop_ctx, &t->ctx);
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
    ctx_switch(&t->ctx, &loop_ctx);
#if TASK_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake, &loop_stack_bottom, &loop_stack_size);
#endif
}

/* Every task starts here, on its own stack, at its first switch. */
static void task_main(void *arg)
{
    struct task *t = arg;
#if TASK_ASAN
    __sanitizer_finish_switch_fiber(NULL, &loop_stack_bottom, &loop_stack_size);
#endif
    t->result = t->fn(t->arg);
    t->state = T_DONE;
    switch_out(t, 1);
    abort();                        /* never resumed */
}

/* ---- life and death --------------------------------------------------------- */

static void queue_resume(struct task *t);
static void stop_waiting(struct task *t, intptr_t value);

/* t is done (returned, or cancelled before it started): give back its
 * stack, hand its result to a joiner, free it if nobody will join it. */
static void finish(struct task *t)
{
    free_stack(t);
    if (t->joiner != NULL) {
        /* Queued, not now: a chain of joins would otherwise nest one
         * resume inside another on the loop's stack. */
        stop_waiting(t->joiner, 0);
        queue_resume(t->joiner);    /* the joiner frees t */
    } else if (t->detached) {
        free(t);
    }
}

/* On the loop's stack: switch into t; back here when it suspends or ends. */
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
    if (t->state == T_DONE)
        finish(t);
}

static void resume_cb(struct loop *loop, void *arg)
{
    struct task *t = arg;
    (void)loop;
    t->resume = NULL;
    resume(t);
}

/* Resume t (READY: stop_waiting has run) from the loop, soon: the caller is
 * a task, or must not be re-entered. */
static void queue_resume(struct task *t)
{
    t->resume = loop_call_soon(t->loop, resume_cb, t);
    if (t->resume == NULL)
        fatal("loop_call_soon");
}

/* t stops waiting; its suspending call will return value. */
static void stop_waiting(struct task *t, intptr_t value)
{
    t->withdraw = NULL;
    t->op = NULL;
    t->wake_value = value;
    t->state = T_READY;
}

void task_wake(struct task *t, intptr_t value)
{
    if (t->state != T_WAITING)
        return;
    stop_waiting(t, value);
    if (current == NULL)
        resume(t);                  /* from a loop callback: right now */
    else
        queue_resume(t);            /* from a task: from the loop */
}

struct task *task_spawn(struct loop *loop, task_fn *fn, void *arg, const struct task_options *opts)
{
    struct task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (map_stack(t, opts != NULL && opts->stack_size ? opts->stack_size : TASK_DEFAULT_STACK) < 0) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->detached = opts != NULL && opts->detached;
    ctx_prepare(&t->ctx, stack_low(t), stack_size(t), task_main, t);
    t->state = T_NEW;
    t->resume = loop_call_soon(loop, resume_cb, t);     /* it starts from the loop */
    if (t->resume == NULL) {
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
int task_started(const struct task *t) { return t->state != T_NEW; }
int task_done(const struct task *t) { return t->state == T_DONE; }

void task_detach(struct task *t)
{
    if (t->detached)
        return;
    t->detached = 1;
    if (t->state == T_DONE && t->joiner == NULL)
        free(t);
    /* A join under way still frees it when it returns the result. */
}

/* ---- waiting --------------------------------------------------------------- */

static void on_deadline(struct loop *loop, void *arg);

int task_check(void)
{
    struct task *t = current;
    if (t == NULL)
        return -EPERM;              /* suspending calls are for tasks only */
    if (t->cancel_requested) {
        t->cancel_requested = 0;    /* delivered: once */
        return -ECANCELED;
    }
    if (t->deadline != 0 && loop_time(t->loop) >= t->deadline)
        return -ETIMEDOUT;
    return 0;
}

intptr_t task_suspend(void (*withdraw)(void *op), void *op)
{
    struct task *t = current;
    t->withdraw = withdraw;
    t->op = op;
    t->state = T_WAITING;
    if (t->deadline != 0 && withdraw != NULL) {
        t->deadline_timer = loop_call_at(t->loop, t->deadline, on_deadline, t);
        if (t->deadline_timer == NULL)
            fatal("loop_call_at");
    }
    switch_out(t, 0);
    if (t->deadline_timer != NULL) {
        loop_cancel(t->loop, t->deadline_timer);
        t->deadline_timer = NULL;
    }
    if (t->cancel_in_flight)        /* this call returns the cancel: delivered */
        t->cancel_in_flight = t->cancel_requested = 0;
    return t->wake_value;
}

/* Take back what t waits on, and wake it with value (-ECANCELED,
 * -ETIMEDOUT): now if we are on the loop's stack and may, else queued. */
static void interrupt(struct task *t, intptr_t value, int now)
{
    void (*withdraw)(void *) = t->withdraw;
    void *op = t->op;
    stop_waiting(t, value);
    if (withdraw != NULL)
        withdraw(op);
    if (now && current == NULL)
        resume(t);
    else
        queue_resume(t);
}

static void on_deadline(struct loop *loop, void *arg)
{
    struct task *t = arg;
    (void)loop;
    t->deadline_timer = NULL;
    if (t->state == T_WAITING)
        interrupt(t, -ETIMEDOUT, 1);
}

void task_cancel(struct task *t)
{
    if (t->state == T_DONE || t->cancel_requested)
        return;                     /* over, or a cancel is already on its way */
    t->cancel_requested = 1;
    switch (t->state) {
    case T_NEW:                     /* never started: it never will */
        loop_cancel(t->loop, t->resume);
        t->resume = NULL;
        t->result = -ECANCELED;
        t->state = T_DONE;
        finish(t);
        break;
    case T_WAITING:                 /* queued: the caller may be iterating */
        if (t->withdraw == NULL)
            break;                  /* a wait that cannot be interrupted */
        t->cancel_in_flight = 1;
        interrupt(t, -ECANCELED, 0);
        break;
    default:                        /* READY or RUNNING: its next call gets it */
        break;
    }
}

uint64_t task_set_timeout(uint64_t ms)
{
    struct task *t = current;
    uint64_t previous = t->deadline;
    uint64_t now = loop_time(t->loop);
    uint64_t when = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;    /* never wraps */
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

/* ---- sleep and yield: a suspending call on a loop timer ---------------------- */

struct sleeping {
    struct task *task;
    struct loop_handle *timer;
};

static void on_sleep_over(struct loop *loop, void *arg)
{
    struct sleeping *sl = arg;
    (void)loop;
    sl->timer = NULL;
    task_wake(sl->task, 0);
}

static void withdraw_sleep(void *op)
{
    struct sleeping *sl = op;
    loop_cancel(sl->task->loop, sl->timer);
}

/* delay_ms, or -1 for "after the loop has run once more" (call_soon). */
static int sleep_for(long long delay_ms)
{
    int rc = task_check();
    if (rc != 0)
        return rc;
    struct sleeping sl = { .task = current };
    sl.timer = delay_ms < 0 ? loop_call_soon(sl.task->loop, on_sleep_over, &sl)
                            : loop_call_later(sl.task->loop, (uint64_t)delay_ms, on_sleep_over, &sl);
    if (sl.timer == NULL)
        return -errno;
    return (int)task_suspend(withdraw_sleep, &sl);
}

int task_sleep(uint64_t ms)
{
    return sleep_for(ms > INT64_MAX ? INT64_MAX : (long long)ms);
}

int task_yield(void)
{
    return sleep_for(-1);
}

/* ---- join and gather ---------------------------------------------------------- */

static void withdraw_join(void *op)
{
    struct task *target = op;
    target->joiner = NULL;
}

int task_join(struct task *t, intptr_t *result)
{
    struct task *self = current;
    if (self == NULL)
        return -EPERM;
    if (t == self)
        return -EDEADLK;
    if (t->detached || t->joiner != NULL)
        return -EINVAL;
    if (t->state != T_DONE) {
        int rc = task_check();
        if (rc != 0)
            return rc;
        t->joiner = self;
        rc = (int)task_suspend(withdraw_join, t);
        if (rc != 0)
            return rc;              /* withdraw_join unhooked us */
    }
    if (result != NULL)
        *result = t->result;
    free(t);
    return 0;
}

int task_gather(struct task **tasks, size_t n, intptr_t *results)
{
    int status = 0;
    if (current == NULL)
        return -EPERM;
    /* Refuse what task_join would refuse before joining any: then only a
     * cancel or a timeout can stop the joins half-way. */
    for (size_t i = 0; i < n; i++)
        if (tasks[i] == current || tasks[i]->detached || tasks[i]->joiner != NULL)
            return tasks[i] == current ? -EDEADLK : -EINVAL;
    uint64_t deadline = current->deadline;
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            int rc = task_join(tasks[i], results ? &results[i] : NULL);
            if (rc == 0)
                break;
            if (rc != -ECANCELED && rc != -ETIMEDOUT) {
                current->deadline = deadline;
                return rc;
            }
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

/* ---- from main, from other threads -------------------------------------------- */

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
    free(t);
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
