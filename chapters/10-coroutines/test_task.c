/*
 * Unit tests of task.c, task_stream.c and switch.S. Each case prints
 * "ok NAME" or "not ok NAME: why" (lines starting with "#" are
 * information, never asserted).
 *
 *     ./test_task            every case
 *     ./test_task NAME       one case (tests/10-coroutines.bats does this)
 */
/* seccomp, guard regions: Linux only, and asked for by name. Elsewhere
 * sigaltstack is all beyond POSIX's base: it is in its XSI option. */
#if defined(__linux__)
#define _GNU_SOURCE
#else
#define _XOPEN_SOURCE 700
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#ifdef __linux__
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "switch.h"
#include "task_stream.h"
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
    static char block[4 * 1024 * 1024];     /* far more than the socket takes */
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

/* ---- stack overflow: the guard region catches it ---- */

/* The guard region of the task that runs overflower or big_frame, computed
 * from the top of its stack, which its first frame sits in. */
static char *guard_low, *guard_high;

static void on_segv(int sig, siginfo_t *info, void *uc)
{
    char *addr = info->si_addr;
    (void)uc;
    if (guard_low != NULL && addr >= guard_low && addr < guard_high) {
        static const char msg[] = "task: stack overflow into the guard region\n";
        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing more to do */
        }
    }
    signal(sig, SIG_DFL);           /* return: the access faults again, fatally */
}

static void report_overflow(void)
{
    static char altstack[16384];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaltstack(&ss, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);   /* what macOS raises for a PROT_NONE page */
}

static void note_guard(void)
{
    volatile char here;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t top = ((uintptr_t)&here + page - 1) & ~(page - 1);
    guard_high = (char *)(top - TASK_DEFAULT_STACK);
    guard_low = guard_high - (TASK_GUARD_SIZE > page ? TASK_GUARD_SIZE / page * page : page);
}

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
    note_guard();
    return recurse(0);
}

/* One frame larger than the stack and its guard: without stack-clash
 * protection, its first write lands below the guard, in the next task's stack. */
static int big_frame_body(void)
{
    volatile char big[TASK_DEFAULT_STACK + TASK_GUARD_SIZE + 16 * 1024];
    big[0] = 1;
    return big[0];
}

/* Called through a volatile pointer, so that it is not inlined: its frame
 * must not be allocated before note_guard has run. */
static int (*volatile big_frame_call)(void) = big_frame_body;

static intptr_t big_frame(void *arg)
{
    (void)arg;
    note_guard();
    return big_frame_call();
}

static intptr_t neighbour(void *arg)
{
    (void)arg;
    task_sleep(1000);
    return 0;
}

static intptr_t big_frame_main(void *arg)
{
    (void)arg;
    /* The big-frame task's stack first, then its neighbour's: new mappings
     * go below older ones, so the neighbour lies right under the guard. */
    struct task *t = task_spawn(loop, big_frame, NULL, NULL);
    struct task *n = task_spawn(loop, neighbour, NULL, NULL);
    intptr_t r = 0;
    task_join(t, &r);
    task_cancel(n);
    task_join(n, NULL);
    return 0;
}

/* Run fn as a task in a child process; it must die of SIGSEGV in the guard
 * page, and say so. (Under AddressSanitizer too: our handler replaces its.) */
static int dies_in_guard(task_fn *fn, const char *what)
{
    int err[2];
    if (pipe(err) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        report_overflow();
        run_case(fn, NULL);
        _exit(0);
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
    CHECK(WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS),
          "%s: the task %s", what,
          WIFSIGNALED(status) ? "died of another signal" : "went on as if nothing happened");
    CHECK(strstr(text, "into the guard region") != NULL,
          "%s: SIGSEGV, but not in the guard region (it jumped over it)", what);
    return 0;
}

static int overflow_case(void) { return dies_in_guard(overflower, "deep recursion"); }
static int big_frame_case(void) { return dies_in_guard(big_frame_main, "a frame larger than the stack"); }

/* ---- the context switch alone (switch.h), without the scheduler ---- */

static struct ctx probe_ctx, main_ctx;

static void probe_main(void *arg)
{
    (void)arg;
    for (;;)
        ctx_switch(&probe_ctx, &main_ctx);
}

/* A stack and a context that switches straight back, for measuring. */
static void *probe_stack_new(void)
{
    void *stack = malloc(65536);
    if (stack == NULL)
        return NULL;
    ctx_prepare(&probe_ctx, stack, 65536, probe_main, NULL);
    return stack;
}

static void probe_rounds(long rounds)
{
    for (long i = 0; i < rounds; i++)
        ctx_switch(&main_ctx, &probe_ctx);
}

/*
 * Where seccomp's strict mode is refused (off Linux; and under user-mode
 * QEMU, which cannot let its guest forbid the system calls QEMU itself
 * needs), the child runs the rounds between two marks on stdout instead,
 * and a tracer checks that no system call comes between them: tests/arm64.bats
 * does, with qemu -strace.
 */
#define ROUNDS_BEGIN "# switch rounds: begin\n"
#define ROUNDS_END "# switch rounds: end\n"

static void say(const char *s)
{
    ssize_t ignored = write(STDOUT_FILENO, s, strlen(s));
    (void)ignored;
}

static int no_syscall_case(void)
{
    fflush(stdout);                         /* or the child's copy of the buffer... */
    pid_t pid = fork();
    if (pid == 0) {                         /* ...which it never flushes: _exit */
        if (probe_stack_new() == NULL)
            _exit(2);
        probe_rounds(10);                   /* warm up (first touches of the stack) */
#ifdef __linux__
        /* From here on, any system call but read/write/exit kills us. */
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) == 0) {
            probe_rounds(1000000);
            syscall(SYS_exit, 0);           /* exit_group is not allowed */
        }
#endif
        say(ROUNDS_BEGIN);
        probe_rounds(1000000);
        say(ROUNDS_END);
        _exit(4);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
        printf("# skip: no seccomp strict mode here; the switches ran between two marks, for a tracer\n");
        return 0;
    }
    if (!CTX_ASSEMBLY) {
        /* The portable switch: swapcontext sets the signal mask, a system
         * call, so seccomp's strict mode kills it at the first switch. */
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "swapcontext switched under seccomp strict mode without a system call?");
        return 0;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "1,000,000 switches under seccomp strict mode: %s %d",
          WIFSIGNALED(status) ? "killed by signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return 0;
}

static int switch_cost_case(void)
{
    void *stack = probe_stack_new();
    CHECK(stack != NULL, "malloc");
    probe_rounds(10);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    probe_rounds(1000000);
    clock_gettime(CLOCK_MONOTONIC, &b);
    free(stack);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 2e6;
    printf("# %.1f ns per switch (1,000,000 round trips)\n", ns);
    return 0;
}

/* ---- after a timeout, every call does exactly what it says ---- */

static intptr_t exact_after_timeout_main(void *arg)
{
    (void)arg;
    int other, other_b;
    struct stream *a = pair(&other, NULL), *b = pair(&other_b, NULL);
    CHECK(a != NULL && b != NULL, "socketpair");
    char big[4096], buf16[16], buf[128];
    char hundred[100];
    for (int i = 0; i < 100; i++)
        hundred[i] = (char)('a' + i % 26);

    /* A 4096-byte read times out; 100 bytes come; a 16-byte read gets 16. */
    uint64_t saved = task_set_timeout(20);
    ssize_t n = task_read(a, big, sizeof big);
    task_restore_deadline(saved);
    CHECK(n == -ETIMEDOUT, "the first read returned %zd, not -ETIMEDOUT", n);
    CHECK(write(other, hundred, sizeof hundred) == 100, "write");
    n = task_read(a, buf16, sizeof buf16);
    CHECK(n == 16 && memcmp(buf16, hundred, 16) == 0, "read(16) after a timed-out read(4096) returned %zd", n);
    n = task_readexactly(a, buf, 4);
    CHECK(n == 4 && memcmp(buf, hundred + 16, 4) == 0, "readexactly(4) returned %zd", n);
    n = task_readexactly(a, buf, 80);
    CHECK(n == 80 && memcmp(buf, hundred + 20, 80) == 0, "nothing lost: readexactly(80) returned %zd", n);

    /* A readuntil("\r\n") times out; a readuntil("|") finds its own separator. */
    saved = task_set_timeout(20);
    n = task_readuntil(a, "\r\n", 2, buf, sizeof buf);
    task_restore_deadline(saved);
    CHECK(n == -ETIMEDOUT, "readuntil returned %zd, not -ETIMEDOUT", n);
    CHECK(write(other, "ab|cd\r\n", 7) == 7, "write");
    n = task_readuntil(a, "|", 1, buf, sizeof buf);
    CHECK(n == 3 && memcmp(buf, "ab|", 3) == 0, "readuntil(\"|\") returned %zd '%.*s'", n,
          n > 0 ? (int)n : 0, buf);

    /* A read on a timed out; calls on another stream, and closing, work. */
    saved = task_set_timeout(20);
    n = task_readline(a, buf, 2);       /* "cd\r\n" is there: this one completes */
    task_restore_deadline(saved);
    CHECK(n == 4, "readline returned %zd", n);
    saved = task_set_timeout(20);
    n = task_read(a, buf, sizeof buf);
    task_restore_deadline(saved);
    CHECK(n == -ETIMEDOUT, "the last read returned %zd", n);
    CHECK(task_write(b, "x", 1) == 0 && task_drain(b) == 0, "drain on another stream failed");
    task_close(a);
    CHECK(task_wait_closed(a) == 0, "wait_closed after a timed-out read failed");
    task_close(b);
    CHECK(task_wait_closed(b) == 0, "wait_closed on b failed");
    close(other);
    close(other_b);
    return 0;
}

/* ---- a task cancelled before it starts never runs ---- */

static int body_ran;

static intptr_t never_runs(void *arg)
{
    (void)arg;
    body_ran = 1;
    return 7;
}

static intptr_t cancel_before_start_main(void *arg)
{
    (void)arg;
    body_ran = 0;
    struct task *t = task_spawn(loop, never_runs, NULL, NULL);
    task_cancel(t);
    intptr_t r = 0;
    CHECK(task_join(t, &r) == 0, "join failed");
    CHECK(!body_ran, "the body of a task cancelled before it started ran");
    CHECK(r == -ECANCELED, "its result is %ld, not -ECANCELED", (long)r);
    struct task_options detached = { .detached = 1 };
    t = task_spawn(loop, never_runs, NULL, &detached);
    task_cancel(t);                 /* frees it: nobody will join it */
    task_yield();
    CHECK(!body_ran, "a detached task cancelled before it started ran");
    return 0;
}

/* ---- the server closes before a new client's task has started ---- */

static int handler_ran;

static void count_handler(struct stream *s, void *arg)
{
    (void)arg;
    handler_ran++;
    stream_abort(s);
}

static void close_server_soon(struct loop *l, void *arg)
{
    (void)l;
    task_server_close(arg);
}

static int server_close_before_start_case(void)
{
    int gai, listener = net_listen("127.0.0.1", 0, 8, &gai);
    char where[NET_ADDRSTRLEN];
    CHECK(listener >= 0, "listen");
    net_sock_name(listener, where, sizeof where);
    struct task_server *server = task_serve(loop, listener, NULL, count_handler, NULL, NULL);
    CHECK(server != NULL, "task_serve");
    int client = net_connect("127.0.0.1", atoi(strrchr(where, ':') + 1), &gai);
    CHECK(client >= 0, "connect");
    /* Queued now, so it runs in the next iteration's call_soon step before
     * the start of the task that the accept in that iteration spawns. */
    loop_call_soon(loop, close_server_soon, server);
    handler_ran = 0;
    loop_run(loop);
    CHECK(handler_ran == 0, "the handler ran after the server was closed");
    char c;
    CHECK(read(client, &c, 1) <= 0, "the client's connection was not closed");
    close(client);
    return 0;
}

/* ---- a cancel is delivered once ---- */

struct twice {
    int first, cleanup;
};

static intptr_t cancelled_then_cleans_up(void *arg)
{
    struct twice *tw = arg;
    tw->first = task_sleep(10000);
    tw->cleanup = task_sleep(1);    /* unwinding: this must not be cancelled again */
    return 0;
}

static intptr_t cancel_once_main(void *arg)
{
    (void)arg;
    struct twice tw = { 1, 1 };
    struct task *t = task_spawn(loop, cancelled_then_cleans_up, &tw, NULL);
    task_sleep(5);
    task_cancel(t);
    task_cancel(t);                 /* before the first is delivered: nothing more */
    CHECK(task_join(t, NULL) == 0, "join");
    CHECK(tw.first == -ECANCELED, "the sleep returned %d, not -ECANCELED", tw.first);
    CHECK(tw.cleanup == 0, "the cleanup call returned %d: the cancel came twice", tw.cleanup);
    return 0;
}

/* ---- detaching a task that someone joins ---- */

static intptr_t joins(void *arg)
{
    intptr_t r = 0;
    int rc = task_join(arg, &r);
    return rc == 0 ? r : rc;
}

static intptr_t short_sleeper(void *arg)
{
    task_sleep(10);
    return (intptr_t)arg;
}

static intptr_t detach_while_joined_main(void *arg)
{
    (void)arg;
    struct task *t = task_spawn(loop, short_sleeper, (void *)(intptr_t)99, NULL);
    struct task *j = task_spawn(loop, joins, t, NULL);
    task_yield();                   /* j is now waiting in task_join(t) */
    task_detach(t);                 /* the join under way still gets t, and frees it */
    intptr_t r = 0;
    CHECK(task_join(j, &r) == 0, "join j");
    CHECK(r == 99, "the joiner got %ld, not 99", (long)r);
    return 0;
}

/* ---- open_connection whose deadline fires before the connect starts ---- */

static intptr_t connects_with_deadline(void *arg)
{
    int port = (int)(intptr_t)arg;
    char host[] = "127.0.0.1";      /* on this task's stack, freed when it returns */
    struct stream *s = NULL;
    uint64_t saved = task_set_timeout(1);
    /* Let the clock pass the deadline before the loop runs again. */
    long long until = now_ms() + 3;
    while (now_ms() < until)
        ;
    int rc = task_open_connection(host, port, 1000, &s);
    task_restore_deadline(saved);
    if (s != NULL)
        stream_abort(s);
    return rc;
}

static intptr_t connect_deadline_main(void *arg)
{
    (void)arg;
    int gai, listener = net_listen("127.0.0.1", 0, 8, &gai);
    char where[NET_ADDRSTRLEN];
    CHECK(listener >= 0, "listen");
    net_sock_name(listener, where, sizeof where);
    int port = atoi(strrchr(where, ':') + 1);
    struct task *t = task_spawn(loop, connects_with_deadline, (void *)(intptr_t)port, NULL);
    intptr_t r = 0;
    CHECK(task_join(t, &r) == 0, "join");
    CHECK(r == -ETIMEDOUT, "open_connection returned %ld, not -ETIMEDOUT", (long)r);
    task_sleep(5);                  /* a connect started late would run now */
    /* And a connection after it works. */
    struct stream *s = NULL;
    CHECK(task_open_connection("127.0.0.1", port, 1000, &s) == 0 && s != NULL, "connect");
    task_close(s);
    task_wait_closed(s);
    close(listener);
    return 0;
}

/* ---- a task looping on sleep(0) lets everything else run ---- */

static int zero_sleeps, zero_sleeps_when_read;

/* From a timer (a first sleep(0)), makes the reader's bytes arrive, then
 * sleeps 0 ms, up to 1000 times. */
static intptr_t sleeps_zero(void *arg)
{
    int *other = arg;
    if (task_sleep(0) != 0 || write(*other, "x", 1) != 1)
        return -1;
    while (zero_sleeps < 1000 && task_sleep(0) == 0)
        zero_sleeps++;
    return 0;
}

static intptr_t reads_one(void *arg)
{
    char c;
    ssize_t n = task_read(arg, &c, 1);
    zero_sleeps_when_read = zero_sleeps;
    return n;
}

static intptr_t sleep_zero_main(void *arg)
{
    (void)arg;
    int other;
    struct stream *s = pair(&other, NULL);
    CHECK(s != NULL, "socketpair");
    zero_sleeps = 0;
    struct task *reader_task = task_spawn(loop, reads_one, s, NULL);
    task_yield();                   /* the reader waits in its read */
    struct task *sleeper_task = task_spawn(loop, sleeps_zero, &other, NULL);
    intptr_t r = 0;
    CHECK(task_join(reader_task, &r) == 0 && r == 1, "the read returned %ld", (long)r);
    CHECK(task_join(sleeper_task, NULL) == 0, "join the sleeper");
    CHECK(zero_sleeps_when_read <= 3, "the read waited for %d sleep(0)s", zero_sleeps_when_read);
    task_close(s);
    task_wait_closed(s);
    close(other);
    return 0;
}

/* ---- more tasks than a process may have mappings ---- */

static int parked;

static intptr_t parks(void *arg)
{
    (void)arg;
    parked++;
    return task_sleep(60000) == -ECANCELED ? 0 : -1;
}

/* The same question task.c asks (user-mode QEMU accepts the madvise and
 * ignores it): is a guard page really unreadable, even to the kernel? */
static int guard_regions_supported(void)
{
#ifdef __linux__
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fds[2], ok = 0;
    char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    if (madvise(p, page, 102 /* MADV_GUARD_INSTALL */) == 0 && pipe(fds) == 0) {
        ok = write(fds[1], p, 1) < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(p, page);
    return ok;
#else
    return 0;
#endif
}

static intptr_t many_tasks_main(void *arg)
{
    (void)arg;
    enum { N = 40000 };             /* over vm.max_map_count / 2 = 32,765 */
    static struct task *t[N];
    parked = 0;
    for (int i = 0; i < N; i++) {
        t[i] = task_spawn(loop, parks, NULL, NULL);
        CHECK(t[i] != NULL, "spawn %d of %d: %s", i, N, strerror(errno));
    }
    while (parked < N)
        task_yield();
    for (int i = 0; i < N; i++)
        task_cancel(t[i]);
    intptr_t r;
    for (int i = 0; i < N; i++)
        CHECK(task_join(t[i], &r) == 0 && r == 0, "task %d ended with %ld", i, (long)r);
    return 0;
}

static int many_tasks_case(void)
{
    if (!guard_regions_supported()) {
        printf("# skip: no guard regions (Linux < 6.13): about vm.max_map_count / 2 tasks at most\n");
        return 0;
    }
    return run_case(many_tasks_main, NULL);
}

/* ---- wait_closed, cancelled with bytes still queued ---- */

struct closing_task {
    struct stream *s;
    int rc;
};

static intptr_t closes_with_unsent(void *arg)
{
    struct closing_task *c = arg;
    static char block[4 * 1024 * 1024];     /* far more than the socket takes */
    if (task_write(c->s, block, sizeof block) != 0)
        return -1;
    task_close(c->s);
    c->rc = task_wait_closed(c->s);         /* the peer never reads: waits */
    return 0;
}

static intptr_t cancel_wait_closed_main(void *arg)
{
    (void)arg;
    int other;
    struct closing_task c = { .s = pair(&other, NULL), .rc = 1 };
    CHECK(c.s != NULL, "socketpair");
    struct task *t = task_spawn(loop, closes_with_unsent, &c, NULL);
    task_sleep(20);
    CHECK(c.rc == 1, "wait_closed returned %d though the peer read nothing", c.rc);
    task_cancel(t);
    CHECK(task_join(t, NULL) == 0, "join");
    CHECK(c.rc == -ECANCELED, "wait_closed returned %d, not -ECANCELED", c.rc);
    /* The stream is gone (aborted), so nothing is left on the loop: the
     * case's after-check frees the loop, which refuses if anything is. */
    close(other);
    return 0;
}

/* ---- values too large: refused or saturated, never wrapped ---- */

static intptr_t huge_values_main(void *arg)
{
    (void)arg;
    struct task_options huge = { .stack_size = SIZE_MAX };
    errno = 0;
    CHECK(task_spawn(loop, quick, NULL, &huge) == NULL && errno == ENOMEM,
          "a SIZE_MAX stack was not refused with ENOMEM");
    uint64_t saved = task_set_timeout(UINT64_MAX);
    int rc = task_sleep(5);
    task_restore_deadline(saved);
    CHECK(rc == 0, "sleep(5) under a timeout of UINT64_MAX ms returned %d", rc);
    return 0;
}

/* ---- gather refuses what join would refuse, before joining any ---- */

static intptr_t gather_refuses_main(void *arg)
{
    (void)arg;
    struct task_options detached = { .detached = 1 };
    struct task *ts[2] = { task_spawn(loop, square, (void *)3, NULL),
                           task_spawn(loop, square, (void *)4, &detached) };
    CHECK(task_gather(ts, 2, NULL) == -EINVAL, "gather accepted a detached task");
    intptr_t r = 0;
    CHECK(task_join(ts[0], &r) == 0 && r == 9, "the first task was not left joinable (%ld)", (long)r);
    task_yield();                   /* let the detached one finish */
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
static int exact_after_timeout(void) { return via_task(exact_after_timeout_main); }
static int cancel_before_start(void) { return via_task(cancel_before_start_main); }
static int cancel_once(void) { return via_task(cancel_once_main); }
static int detach_while_joined(void) { return via_task(detach_while_joined_main); }
static int connect_deadline(void) { return via_task(connect_deadline_main); }
static int sleep_zero(void) { return via_task(sleep_zero_main); }
static int cancel_wait_closed(void) { return via_task(cancel_wait_closed_main); }
static int huge_values(void) { return via_task(huge_values_main); }
static int gather_refuses(void) { return via_task(gather_refuses_main); }

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
    { "big-frame", big_frame_case },
    { "switch-no-syscall", no_syscall_case },
    { "switch-cost", switch_cost_case },
    { "exact-after-timeout", exact_after_timeout },
    { "cancel-before-start", cancel_before_start },
    { "server-close-before-start", server_close_before_start_case },
    { "cancel-once", cancel_once },
    { "detach-while-joined", detach_while_joined },
    { "connect-deadline", connect_deadline },
    { "sleep-zero", sleep_zero },
    { "many-tasks", many_tasks_case },
    { "cancel-wait-closed", cancel_wait_closed },
    { "huge-values", huge_values },
    { "gather-refuses", gather_refuses },
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
