/*
 * Unit tests of task.c. Each case prints "ok NAME" or "not ok NAME: why"
 * (lines starting with "#" are information, never asserted).
 *
 *     ./test_task            every case
 *     ./test_task NAME       one case (tests/10-coroutines.bats does this)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "task.h"
#include "unit.h"

static struct loop *loop;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run main_fn as a task to completion; its result is the case's (0 = ok). */
static int run_case(task_fn *main_fn, void *arg)
{
    intptr_t result = -1;
    if (task_run(loop, main_fn, arg, &result) < 0) {
        snprintf(unit_why, sizeof unit_why, "task_run: %s", strerror(errno));
        return -1;
    }
    return (int)result;
}

/* A stream on one end of a socketpair; the test holds the other end. */
static struct stream *pair(int *other, const struct stream_options *opts)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return NULL;
    *other = sv[1];
    return stream_open_fd(loop, sv[0], opts);
}

/* ---- sleep ordering ---- */

static int order[8], norder;

static intptr_t sleeper(void *arg)
{
    int ms = (int)(intptr_t)arg;
    if (task_sleep((uint64_t)ms) != 0)
        return -1;
    order[norder++] = ms;
    return ms;
}

static intptr_t sleep_order_main(void *arg)
{
    (void)arg;
    int delays[] = { 60, 20, 40, 0 };
    struct task *t[4];
    intptr_t r[4];
    for (int i = 0; i < 4; i++)
        t[i] = task_spawn(loop, sleeper, (void *)(intptr_t)delays[i], NULL);
    CHECK(task_gather(t, 4, r) == 0, "gather failed");
    CHECK(norder == 4 && order[0] == 0 && order[1] == 20 && order[2] == 40 && order[3] == 60,
          "woke in the order %d %d %d %d", order[0], order[1], order[2], order[3]);
    return 0;
}

/* ---- join and gather ---- */

static intptr_t square(void *arg)
{
    intptr_t x = (intptr_t)arg;
    task_yield();
    return x * x;
}

static intptr_t join_gather_main(void *arg)
{
    (void)arg;
    intptr_t r = 0;
    struct task *t = task_spawn(loop, square, (void *)7, NULL);
    CHECK(task_join(t, &r) == 0 && r == 49, "join: %ld", (long)r);
    struct task *ts[5];
    intptr_t rs[5];
    for (int i = 0; i < 5; i++)
        ts[i] = task_spawn(loop, square, (void *)(intptr_t)(i + 1), NULL);
    CHECK(task_gather(ts, 5, rs) == 0, "gather failed");
    for (int i = 0; i < 5; i++)
        CHECK(rs[i] == (i + 1) * (i + 1), "gather result %d is %ld", i, (long)rs[i]);
    CHECK(task_join(task_current(), NULL) == -EDEADLK, "joining itself is not refused");
    return 0;
}

/* ---- cancel while sleeping ---- */

static intptr_t long_sleeper(void *arg)
{
    int *saw = arg;
    *saw = task_sleep(10000);
    return 42;                      /* unwinds through its own code */
}

static intptr_t cancel_sleeping_main(void *arg)
{
    (void)arg;
    int saw = 1;
    long long start = now_ms();
    struct task *t = task_spawn(loop, long_sleeper, &saw, NULL);
    task_sleep(10);
    task_cancel(t);
    intptr_t r = 0;
    CHECK(task_join(t, &r) == 0, "join failed");
    CHECK(saw == -ECANCELED, "sleep returned %d, not -ECANCELED", saw);
    CHECK(r == 42, "the task did not finish normally: %ld", (long)r);
    CHECK(now_ms() - start < 2000, "cancel took %lld ms", now_ms() - start);
    return 0;
}

/* ---- cancel while reading: the read is picked up again, nothing lost ---- */

struct reading {
    struct stream *s;
    ssize_t first, second;
    char buf[64];
};

static intptr_t reader(void *arg)
{
    struct reading *r = arg;
    r->first = task_read(r->s, r->buf, sizeof r->buf);
    r->second = task_read(r->s, r->buf, sizeof r->buf);
    return 0;
}

static intptr_t cancel_reading_main(void *arg)
{
    (void)arg;
    int other;
    struct reading r = { .s = pair(&other, NULL) };
    CHECK(r.s != NULL, "socketpair");
    struct task *t = task_spawn(loop, reader, &r, NULL);
    task_sleep(10);
    task_cancel(t);
    task_sleep(10);
    CHECK(r.first == -ECANCELED, "read returned %zd, not -ECANCELED", r.first);
    CHECK(write(other, "after", 5) == 5, "write");
    CHECK(task_join(t, NULL) == 0, "join");
    CHECK(r.second == 5 && memcmp(r.buf, "after", 5) == 0, "second read got %zd", r.second);
    task_close(r.s);
    CHECK(task_wait_closed(r.s) == 0, "wait_closed");
    close(other);
    return 0;
}

/* ---- cancel while draining ---- */

struct draining {
    struct stream *s;
    int drained;
};

static intptr_t drainer(void *arg)
{
    struct draining *d = arg;
    static char block[256 * 1024];
    if (task_write(d->s, block, sizeof block) != 0)
        return -1;
    d->drained = task_drain(d->s);      /* the peer never reads: waits */
    stream_abort(d->s);                 /* unwinding: drop what is queued */
    return 0;
}

static intptr_t cancel_draining_main(void *arg)
{
    (void)arg;
    int other;
    struct draining d = { .s = pair(&other, NULL), .drained = 1 };
    CHECK(d.s != NULL, "socketpair");
    struct task *t = task_spawn(loop, drainer, &d, NULL);
    task_sleep(50);
    CHECK(d.drained == 1, "drain completed (%d) though the peer never read", d.drained);
    task_cancel(t);
    intptr_t r = -1;
    CHECK(task_join(t, &r) == 0 && r == 0, "join");
    CHECK(d.drained == -ECANCELED, "drain returned %d, not -ECANCELED", d.drained);
    task_sleep(1);                      /* let the stream be finalized */
    close(other);
    return 0;
}

/* ---- timeouts ---- */

static intptr_t timeout_fires_main(void *arg)
{
    (void)arg;
    int other;
    struct stream *s = pair(&other, NULL);
    CHECK(s != NULL, "socketpair");
    char buf[16];
    long long start = now_ms();
    uint64_t saved = task_set_timeout(50);
    ssize_t n = task_readline(s, buf, sizeof buf);      /* the peer says nothing */
    task_restore_deadline(saved);
    long long took = now_ms() - start;
    CHECK(n == -ETIMEDOUT, "readline returned %zd, not -ETIMEDOUT", n);
    CHECK(took >= 45 && took < 2000, "timed out after %lld ms", took);
    /* The timed-out readline is picked up again: the line is not lost. */
    CHECK(write(other, "late\n", 5) == 5, "write");
    n = task_readline(s, buf, sizeof buf);
    CHECK(n == 5 && memcmp(buf, "late\n", 5) == 0, "the next readline got %zd", n);
    task_close(s);
    task_wait_closed(s);
    close(other);
    return 0;
}

static intptr_t timeout_not_fired_main(void *arg)
{
    (void)arg;
    int other;
    struct stream *s = pair(&other, NULL);
    CHECK(s != NULL, "socketpair");
    CHECK(write(other, "in time\n", 8) == 8, "write");
    char buf[16];
    uint64_t saved = task_set_timeout(1000);
    ssize_t n = task_readline(s, buf, sizeof buf);
    int slept = task_sleep(20);
    task_restore_deadline(saved);
    CHECK(n == 8, "readline returned %zd", n);
    CHECK(slept == 0, "sleep inside the deadline returned %d", slept);
    CHECK(task_sleep(1100 - 20) == 0, "a call after the section timed out");   /* past the old deadline */
    task_close(s);
    task_wait_closed(s);
    close(other);
    return 0;
}

/* ---- a task that returns while others wait ---- */

static intptr_t quick(void *arg)
{
    (void)arg;
    return 5;
}

static intptr_t waiter(void *arg)
{
    struct task *quick_task = arg;
    intptr_t r = 0;
    if (task_join(quick_task, &r) != 0)
        return -1;
    task_sleep(10);
    return r + 1;
}

static intptr_t returns_while_others_wait_main(void *arg)
{
    (void)arg;
    struct task *q = task_spawn(loop, quick, NULL, NULL);
    struct task *w = task_spawn(loop, waiter, q, NULL);
    struct task *s = task_spawn(loop, sleeper, (void *)(intptr_t)30, NULL);
    intptr_t r = 0, rs = 0;
    CHECK(task_join(w, &r) == 0 && r == 6, "the waiter got %ld", (long)r);
    CHECK(task_join(s, &rs) == 0 && rs == 30, "the sleeper got %ld", (long)rs);
    return 0;
}

/* ---- 10,000 tasks ---- */

static int tiny_done;

static intptr_t tiny(void *arg)
{
    task_yield();
    tiny_done++;
    return (intptr_t)arg;
}

static intptr_t ten_thousand_main(void *arg)
{
    (void)arg;
    enum { N = 10000 };
    static struct task *t[N];
    static intptr_t r[N];
    for (int round = 0; round < 2; round++) {   /* twice: memory comes back */
        for (int i = 0; i < N; i++) {
            t[i] = task_spawn(loop, tiny, (void *)(intptr_t)i, NULL);
            CHECK(t[i] != NULL, "spawn %d: %s", i, strerror(errno));
        }
        CHECK(task_gather(t, N, r) == 0, "gather");
        long long sum = 0;
        for (int i = 0; i < N; i++)
            sum += r[i];
        CHECK(sum == (long long)N * (N - 1) / 2, "sum %lld", sum);
    }
    /* Detached ones free themselves. */
    struct task_options detached = { .detached = 1 };
    tiny_done = 0;
    for (int i = 0; i < N; i++)
        CHECK(task_spawn(loop, tiny, NULL, &detached) != NULL, "spawn detached");
    while (tiny_done < N)
        task_yield();
    task_yield();                   /* the last one's end is handled from the loop */
    return 0;
}

/* ---- run_coroutine_threadsafe ---- */

static intptr_t doubled(void *arg)
{
    task_sleep(1);
    return (intptr_t)arg * 2;
}

static void stop_loop(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static int thread_failures;

static void *other_thread(void *arg)
{
    (void)arg;
    for (intptr_t i = 0; i < 200; i++) {
        intptr_t r = 0;
        if (task_run_threadsafe(loop, doubled, (void *)i, &r) < 0 || r != 2 * i)
            thread_failures++;
    }
    loop_call_soon_threadsafe(loop, stop_loop, NULL);
    return NULL;
}

static void keepalive(struct loop *l, void *arg)
{
    (void)l; (void)arg;
}

static int threadsafe_case(void)
{
    pthread_t th[2];
    struct loop_handle *alive = loop_call_every(loop, 1000, keepalive, NULL);
    pthread_create(&th[0], NULL, other_thread, NULL);
    loop_run(loop);                         /* until the thread says stop */
    pthread_join(th[0], NULL);
    loop_cancel(loop, alive);
    loop_run(loop);                         /* drain what is left */
    CHECK(thread_failures == 0, "%d calls failed or got a wrong result", thread_failures);
    (void)th;
    return 0;
}

/* ---- stack overflow ---- */

static volatile int bottomless = 1;

static int recurse(int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    return bottomless ? recurse(depth + 1) + frame[0] : 0;
}

static intptr_t overflower(void *arg)
{
    (void)arg;
    return recurse(0);
}

static int overflow_case(void)
{
    int err[2];
    if (pipe(err) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        task_report_overflow();
        run_case(overflower, NULL);
        _exit(0);                           /* not reached */
    }
    close(err[1]);
    char text[4096] = "";
    ssize_t n, got = 0;
    while ((n = read(err[0], text + got, sizeof text - 1 - (size_t)got)) > 0)
        got += n;
    text[got] = '\0';
    close(err[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
        CHECK(strstr(text, "task: stack overflow") != NULL, "died of SIGSEGV, but said: %.200s", text);
        return 0;
    }
    /* Under AddressSanitizer, its own SIGSEGV handler reports and exits. */
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
          (strstr(text, "stack-overflow") != NULL || strstr(text, "SEGV") != NULL),
          "the overflow was not reported (status %#x): %.200s", status, text);
    return 0;
}

/* ---- the switch makes no system call ---- */

static int no_syscall_case(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (task_switch_probe(0) < 0)
            _exit(2);
        task_switch_probe(10);              /* warm up (first touches of the stack) */
        /* From here on, any system call but read/write/exit kills us. */
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) < 0)
            _exit(3);
        task_switch_probe(1000000);
        syscall(SYS_exit, 0);               /* exit_group is not allowed */
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "1,000,000 switches under seccomp strict mode: %s %d",
          WIFSIGNALED(status) ? "killed by signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return 0;
}

static int switch_cost_case(void)
{
    double ns = task_measure_switch(1000000);
    CHECK(ns > 0, "measure failed");
    printf("# %.1f ns per switch (1,000,000 round trips)\n", ns);
    return 0;
}

/* ---- the table ---- */

static int via_task(task_fn *fn) { return run_case(fn, NULL); }
static int sleep_order(void) { return via_task(sleep_order_main); }
static int join_gather(void) { return via_task(join_gather_main); }
static int cancel_sleeping(void) { return via_task(cancel_sleeping_main); }
static int cancel_reading(void) { return via_task(cancel_reading_main); }
static int cancel_draining(void) { return via_task(cancel_draining_main); }
static int timeout_fires(void) { return via_task(timeout_fires_main); }
static int timeout_not_fired(void) { return via_task(timeout_not_fired_main); }
static int returns_while_others_wait(void) { return via_task(returns_while_others_wait_main); }
static int ten_thousand(void) { return via_task(ten_thousand_main); }

static const struct unit_case cases[] = {
    { "sleep-order", sleep_order },
    { "join-gather", join_gather },
    { "cancel-sleeping", cancel_sleeping },
    { "cancel-reading", cancel_reading },
    { "cancel-draining", cancel_draining },
    { "timeout-fires", timeout_fires },
    { "timeout-not-fired", timeout_not_fired },
    { "returns-while-others-wait", returns_while_others_wait },
    { "ten-thousand-tasks", ten_thousand },
    { "threadsafe", threadsafe_case },
    { "stack-overflow", overflow_case },
    { "switch-no-syscall", no_syscall_case },
    { "switch-cost", switch_cost_case },
};

/* Each case gets a fresh loop, which must be empty again when it ends. */
static void new_loop(void)
{
    loop = loop_new();
}

static int free_loop(void)
{
    if (loop_free(loop) == 0)
        return 0;
    if (unit_why[0] == '\0')
        snprintf(unit_why, sizeof unit_why, "loop_free: %s (something left registered)", strerror(errno));
    return -1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    return unit_main(argc, argv, cases, sizeof cases / sizeof cases[0], new_loop, free_loop);
}
