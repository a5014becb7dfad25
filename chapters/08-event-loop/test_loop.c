/*
 * Unit tests of loop.c, run through common/unit.h: each case prints "ok NAME"
 * or "not ok NAME: why".
 *
 *     ./test_loop            run every case; exit 1 if any failed
 *     ./test_loop NAME       run one case (tests/08-event-loop.bats does this)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "unit.h"

/* A log of which callbacks ran, in order. */
static char order[64];
static void note(struct loop *loop, void *arg)
{
    (void)loop;
    strncat(order, arg, sizeof order - strlen(order) - 1);
}

static void stop_loop(struct loop *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static int test_timer_order(void)
{
    struct loop *loop = loop_new();
    uint64_t now = loop_time(loop);
    order[0] = '\0';
    loop_call_at(loop, now + 30, note, "E");
    loop_call_at(loop, now + 10, note, "A");
    loop_call_at(loop, now + 20, note, "B");
    loop_call_at(loop, now + 20, note, "C");    /* same deadline: in the order scheduled */
    loop_call_at(loop, now + 20, note, "D");
    loop_call_later(loop, 0, note, "0");
    CHECK(loop_run(loop) == 0, "loop_run failed");
    CHECK(strcmp(order, "0ABCDE") == 0, "order was %s, expected 0ABCDE", order);
    CHECK(loop_time(loop) >= now + 30, "ran before the last deadline");
    return loop_free(loop);
}

static struct loop_handle *victim;
static void cancel_victim(struct loop *loop, void *arg)
{
    note(loop, arg);
    loop_cancel(loop, victim);
}

static int test_cancel(void)
{
    struct loop *loop = loop_new();
    order[0] = '\0';
    /* Cancelled before the loop runs. */
    struct loop_handle *h = loop_call_later(loop, 5, note, "X");
    loop_call_later(loop, 10, note, "A");
    loop_cancel(loop, h);
    /* Cancelled during dispatch, by a timer due at the same moment. */
    uint64_t when = loop_time(loop) + 20;
    loop_call_at(loop, when, cancel_victim, "B");
    victim = loop_call_at(loop, when, note, "Y");
    /* A call_soon cancelled before its turn. */
    h = loop_call_soon(loop, note, "Z");
    loop_cancel(loop, h);
    CHECK(loop_run(loop) == 0, "loop_run failed");
    CHECK(strcmp(order, "AB") == 0, "ran %s, expected AB", order);
    return loop_free(loop);
}

/* A callback that queues itself again, forever, and a reader that must still run. */
static int requeues, reader_ran, reader_ran_after, keep_requeuing;
static void requeue(struct loop *loop, void *arg)
{
    requeues++;
    if (keep_requeuing)
        loop_call_soon(loop, requeue, arg);
}
static void on_pipe_readable(struct loop *loop, int fd, void *arg)
{
    char c;
    (void)arg;
    if (read(fd, &c, 1) == 1 && !reader_ran) {
        reader_ran = 1;
        reader_ran_after = requeues;
    }
    loop_remove_reader(loop, fd);
}

static int test_soon_fifo_and_no_starvation(void)
{
    struct loop *loop = loop_new();
    int p[2];
    order[0] = '\0';
    loop_call_soon(loop, note, "1");
    loop_call_soon(loop, note, "2");
    loop_call_soon(loop, note, "3");
    CHECK(loop_run_once(loop) == 0, "work left after three call_soon");
    CHECK(strcmp(order, "123") == 0, "order %s, expected 123", order);

    CHECK(pipe(p) == 0, "pipe");
    requeues = reader_ran = reader_ran_after = 0;
    keep_requeuing = 1;
    loop_call_soon(loop, requeue, NULL);
    loop_add_reader(loop, p[0], on_pipe_readable, NULL);
    CHECK(write(p[1], "x", 1) == 1, "write");
    for (int i = 0; i < 5; i++)
        loop_run_once(loop);
    /* One pass runs only what was queued before it: one requeue per iteration. */
    CHECK(requeues == 5, "%d requeues in 5 iterations, expected 5", requeues);
    CHECK(reader_ran && reader_ran_after <= 1, "the reader ran %s after %d requeues",
          reader_ran ? "only" : "not even", reader_ran_after);
    close(p[0]);
    close(p[1]);
    CHECK(loop_free(loop) == -1 && errno == EBUSY, "free accepted a loop with a queued callback");
    keep_requeuing = 0;
    CHECK(loop_run(loop) == 0, "loop_run failed");
    return loop_free(loop);
}

/*
 * Two readable pipes, A and B, in the same batch. Whichever callback runs
 * first removes the other's reader, closes it, and puts a *new* readable pipe
 * on the same descriptor number with a third callback, C. Neither the other
 * callback nor C may run in that iteration: the pending event belongs to the
 * old registration. C runs in the next iteration, for its own event.
 */
static int fds[2][2], first_ran = -1, second_ran, third_ran;
static void on_third(struct loop *loop, int fd, void *arg)
{
    char c;
    (void)arg;
    third_ran++;
    if (read(fd, &c, 1) == 1)
        loop_remove_reader(loop, fd);
}
static void on_ab(struct loop *loop, int fd, void *arg)
{
    int me = (int)(intptr_t)arg, other = 1 - me, fresh[2];
    char c;
    if (first_ran >= 0) {
        second_ran++;
        return;
    }
    first_ran = me;
    if (read(fd, &c, 1) != 1)
        return;
    loop_remove_reader(loop, fd);
    loop_remove_reader(loop, fds[other][0]);
    if (pipe(fresh) < 0 || write(fresh[1], "n", 1) != 1)
        return;
    dup2(fresh[0], fds[other][0]);          /* same number, new file */
    close(fresh[0]);
    close(fds[other][1]);
    fds[other][1] = fresh[1];
    loop_add_reader(loop, fds[other][0], on_third, NULL);
}

static int test_removed_in_batch(void)
{
    struct loop *loop = loop_new();
    for (int i = 0; i < 2; i++) {
        CHECK(pipe(fds[i]) == 0, "pipe");
        CHECK(write(fds[i][1], "x", 1) == 1, "write");
        loop_add_reader(loop, fds[i][0], on_ab, (void *)(intptr_t)i);
    }
    loop_run_once(loop);
    CHECK(first_ran >= 0, "neither reader ran");
    CHECK(second_ran == 0, "a reader removed earlier in the batch was called");
    CHECK(third_ran == 0, "a stale event was delivered to the new reader on a reused fd");
    loop_run_once(loop);
    CHECK(third_ran == 1, "the new reader did not get its own event");
    loop_remove_reader(loop, fds[first_ran][0]);
    for (int i = 0; i < 2; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    return loop_free(loop);
}

/* 4 threads x 10,000 calls: each arrives exactly once, and in order per thread. */
#define THREADS 4
#define CALLS 10000
static int received[THREADS][CALLS];
static int last_seen[THREADS], total_received, out_of_order;
static struct loop_handle *keepalive;
struct call { int thread, seq; };
static struct call calls[THREADS][CALLS];

static void on_call(struct loop *loop, void *arg)
{
    struct call *c = arg;
    received[c->thread][c->seq]++;
    if (c->seq < last_seen[c->thread])
        out_of_order++;
    last_seen[c->thread] = c->seq;
    if (++total_received == THREADS * CALLS) {
        loop_cancel(loop, keepalive);
        loop_stop(loop);
    }
}

static struct loop *shared_loop;
static void *caller(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < CALLS; i++) {
        calls[t][i] = (struct call){ t, i };
        while (loop_call_soon_threadsafe(shared_loop, on_call, &calls[t][i]) < 0)
            ;
    }
    return NULL;
}

static int test_threadsafe(void)
{
    pthread_t threads[THREADS];
    shared_loop = loop_new();
    keepalive = loop_call_later(shared_loop, 30000, stop_loop, NULL);   /* the test's time limit */
    for (int t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, caller, (void *)(intptr_t)t);
    loop_run(shared_loop);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    CHECK(total_received == THREADS * CALLS, "%d of %d calls arrived", total_received, THREADS * CALLS);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < CALLS; i++)
            CHECK(received[t][i] == 1, "call %d of thread %d ran %d times", i, t, received[t][i]);
    CHECK(out_of_order == 0, "%d calls ran out of order", out_of_order);
    return loop_free(shared_loop);
}

static int signal_callbacks;
static void on_usr1(struct loop *loop, void *arg)
{
    (void)arg;
    signal_callbacks++;
    loop_stop(loop);
}

static int test_signal(void)
{
    struct loop *loop = loop_new();
    CHECK(loop_add_signal_handler(loop, SIGUSR1, on_usr1, NULL) == 0, "add_signal_handler");
    struct loop_handle *limit = loop_call_later(loop, 5000, stop_loop, NULL);
    kill(getpid(), SIGUSR1);
    loop_run(loop);
    CHECK(signal_callbacks == 1, "the signal callback ran %d times", signal_callbacks);
    loop_cancel(loop, limit);
    CHECK(loop_add_signal_handler(loop, 0, on_usr1, NULL) == -1 && errno == EINVAL, "signal 0 accepted");
    CHECK(loop_free(loop) == -1 && errno == EBUSY, "free accepted a loop with a signal handler");
    CHECK(loop_remove_signal_handler(loop, SIGUSR1) == 0, "remove_signal_handler");
    return loop_free(loop);
}

/* SIGINT and SIGTERM both reach the one stop callback; removing it leaves
 * nothing registered. */
static int test_stop_handler(void)
{
    struct loop *loop = loop_new();
    signal_callbacks = 0;
    CHECK(loop_add_stop_handler(loop, on_usr1, NULL) == 0, "add_stop_handler");
    struct loop_handle *limit = loop_call_later(loop, 5000, stop_loop, NULL);
    kill(getpid(), SIGTERM);
    loop_run(loop);
    kill(getpid(), SIGINT);
    loop_run(loop);
    CHECK(signal_callbacks == 2, "the stop callback ran %d times, expected 2", signal_callbacks);
    loop_cancel(loop, limit);
    loop_remove_stop_handler(loop);
    return loop_free(loop);
}

static int test_free_refuses(void)
{
    struct loop *loop = loop_new();
    int p[2];
    struct loop_handle *h = loop_call_later(loop, 1000, note, "x");
    CHECK(loop_free(loop) == -1 && errno == EBUSY, "free accepted a loop with a timer");
    loop_cancel(loop, h);
    CHECK(pipe(p) == 0, "pipe");
    loop_add_writer(loop, p[1], NULL, NULL);
    loop_add_reader(loop, p[0], on_pipe_readable, NULL);
    CHECK(loop_free(loop) == -1 && errno == EBUSY, "free accepted a loop with a reader");
    loop_remove_reader(loop, p[0]);
    close(p[0]);
    close(p[1]);
    CHECK(loop_free(loop) == 0, "free refused an empty loop: %s", strerror(errno));
    return 0;
}

static int test_run_returns_when_empty(void)
{
    struct loop *loop = loop_new();
    order[0] = '\0';
    loop_call_later(loop, 10, note, "T");
    CHECK(loop_run(loop) == 0, "loop_run failed");
    CHECK(strcmp(order, "T") == 0, "the timer did not run");
    CHECK(loop_run(loop) == 0, "loop_run on an empty loop failed");
    return loop_free(loop);
}

/* A 1 ms timer must fire after one or two sleeps, never after a spin. */
static int test_no_spin(void)
{
    struct loop *loop = loop_new();
    int fired = 0, iterations = 0;
    order[0] = '\0';
    loop_call_later(loop, 1, note, "t");
    while (order[0] == '\0' && iterations < 1000) {
        loop_run_once(loop);
        iterations++;
    }
    fired = order[0] == 't';
    CHECK(fired, "the timer never fired");
    CHECK(iterations <= 2, "took %d iterations: the loop spun", iterations);
    return loop_free(loop);
}

static struct loop_handle *repeating;
static int repeats;
static void on_repeat(struct loop *loop, void *arg)
{
    (void)arg;
    if (++repeats == 3)
        loop_cancel(loop, repeating);   /* a repeating handle may cancel itself */
}

static int test_repeating(void)
{
    struct loop *loop = loop_new();
    uint64_t start = loop_time(loop);
    repeating = loop_call_every(loop, 5, on_repeat, NULL);
    CHECK(loop_run(loop) == 0, "loop_run failed");
    CHECK(repeats == 3, "ran %d times, expected 3", repeats);
    CHECK(loop_time(loop) - start >= 15, "three 5 ms periods took %llu ms",
          (unsigned long long)(loop_time(loop) - start));
    return loop_free(loop);
}

static int replaced_ran, replacement_ran;
static void old_reader(struct loop *loop, int fd, void *arg)
{
    (void)loop; (void)fd; (void)arg;
    replaced_ran++;
}
static void new_reader(struct loop *loop, int fd, void *arg)
{
    char c;
    (void)arg;
    replacement_ran++;
    if (read(fd, &c, 1) == 1)
        loop_remove_reader(loop, fd);
}
static void on_writable(struct loop *loop, int fd, void *arg)
{
    (void)arg;
    loop_remove_writer(loop, fd);
}

static int test_replace_and_directions(void)
{
    struct loop *loop = loop_new();
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    loop_add_reader(loop, p[0], old_reader, NULL);
    loop_add_reader(loop, p[0], new_reader, NULL);      /* replaces old_reader */
    loop_add_writer(loop, p[1], on_writable, NULL);     /* the pipe's other end */
    CHECK(write(p[1], "x", 1) == 1, "write");
    CHECK(loop_run(loop) == 0, "loop_run failed");
    CHECK(replaced_ran == 0 && replacement_ran == 1, "old ran %d, new ran %d", replaced_ran, replacement_ran);
    close(p[0]);
    close(p[1]);
    return loop_free(loop);
}

/*
 * A timer that re-arms itself with no delay (call_later(0) from its own
 * callback). On its first run it makes a pipe readable and queues a
 * call_soon: both must be served within the next iteration, while the
 * timer runs once per iteration.
 */
static int zero_timer_runs, zero_reader_ran, zero_soon_ran, zero_pipe[2];
static struct loop_handle *zero_timer;
static void zero_on_soon(struct loop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    zero_soon_ran = 1;
}
static void rearm_now(struct loop *loop, void *arg)
{
    if (zero_timer_runs == 0) {
        if (write(zero_pipe[1], "x", 1) != 1)
            return;
        loop_call_soon(loop, zero_on_soon, NULL);
    }
    /* Bounded, so that a loop that runs it in the same pass still returns. */
    zero_timer = ++zero_timer_runs < 1000 ? loop_call_later(loop, 0, rearm_now, arg) : NULL;
}
static void zero_on_readable(struct loop *loop, int fd, void *arg)
{
    char c;
    (void)arg;
    if (read(fd, &c, 1) == 1)
        zero_reader_ran = 1;
    loop_remove_reader(loop, fd);
}

static int test_zero_delay_timer(void)
{
    struct loop *loop = loop_new();
    CHECK(pipe(zero_pipe) == 0, "pipe");
    loop_add_reader(loop, zero_pipe[0], zero_on_readable, NULL);
    zero_timer = loop_call_later(loop, 0, rearm_now, NULL);
    for (int i = 0; i < 2; i++)
        loop_run_once(loop);
    CHECK(zero_timer_runs <= 2, "the timer ran %d times in 2 iterations", zero_timer_runs);
    CHECK(zero_reader_ran, "a readable pipe waited while the timer re-armed itself");
    CHECK(zero_soon_ran, "a queued call_soon waited while the timer re-armed itself");
    if (zero_timer != NULL)
        loop_cancel(loop, zero_timer);
    loop_remove_reader(loop, zero_pipe[0]);
    close(zero_pipe[0]);
    close(zero_pipe[1]);
    return loop_free(loop);
}

/* A timer that re-arms itself at a time already past (call_at(0): "as soon
 * as possible") must not hold back a timer that was due before it. */
static int past_runs, older_ran;
static struct loop_handle *past_timer;
static void rearm_in_past(struct loop *loop, void *arg)
{
    past_timer = ++past_runs < 1000 ? loop_call_at(loop, 0, rearm_in_past, arg) : NULL;
}
static void older_timer(struct loop *loop, void *arg)
{
    (void)loop; (void)arg;
    older_ran++;
}

static int test_past_timer_no_starvation(void)
{
    struct loop *loop = loop_new();
    uint64_t now = loop_time(loop);
    past_timer = loop_call_at(loop, now, rearm_in_past, NULL);
    loop_call_at(loop, now, older_timer, NULL);     /* due too, scheduled second */
    loop_run_once(loop);
    CHECK(past_runs == 1, "the re-arming timer ran %d times in one iteration", past_runs);
    CHECK(older_ran == 1, "the older due timer ran %d times in the first iteration", older_ran);
    loop_run_once(loop);
    CHECK(past_runs == 2, "the re-arming timer ran %d times in two iterations", past_runs);
    if (past_timer != NULL)
        loop_cancel(loop, past_timer);
    return loop_free(loop);
}

/* Times too far away to count in microseconds mean "never", not a wrapped
 * time in the past. */
static int far_ran;
static void far_timer(struct loop *loop, void *arg)
{
    (void)loop; (void)arg;
    far_ran++;
}

static int test_far_timers(void)
{
    struct loop *loop = loop_new();
    struct loop_handle *a = loop_call_later(loop, UINT64_MAX / 1000 + 1, far_timer, NULL);
    struct loop_handle *b = loop_call_later(loop, UINT64_MAX, far_timer, NULL);
    struct loop_handle *c = loop_call_at(loop, UINT64_MAX, far_timer, NULL);
    struct loop_handle *limit = loop_call_later(loop, 20, stop_loop, NULL);
    loop_run(loop);
    CHECK(far_ran == 0, "a timer for the far future ran %d times within 20 ms", far_ran);
    (void)limit;
    loop_cancel(loop, a);
    loop_cancel(loop, b);
    loop_cancel(loop, c);
    return loop_free(loop);
}

/* remove_reader only unregisters: the callback is not called, not then,
 * not when the descriptor becomes readable afterwards. */
static int remove_calls;
static void counts_calls(struct loop *loop, int fd, void *arg)
{
    (void)loop; (void)fd; (void)arg;
    remove_calls++;
}

static int test_remove_calls_nothing(void)
{
    struct loop *loop = loop_new();
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    remove_calls = 0;
    CHECK(loop_add_reader(loop, p[0], counts_calls, NULL) == 0, "add_reader");
    CHECK(loop_remove_reader(loop, p[0]) == 0, "remove_reader");
    CHECK(remove_calls == 0, "remove_reader called the callback");
    CHECK(write(p[1], "x", 1) == 1, "write");
    struct loop_handle *limit = loop_call_later(loop, 20, stop_loop, NULL);
    loop_run(loop);
    CHECK(remove_calls == 0, "the removed reader was called %d times", remove_calls);
    (void)limit;
    close(p[0]);
    close(p[1]);
    return loop_free(loop);
}

/* Each thread sees its own loop: the one it runs, else the one it set. */
struct per_thread {
    struct loop *loop, *seen_inside, *seen_outside;
};

static void note_current(struct loop *loop, void *arg)
{
    struct per_thread *pt = arg;
    (void)loop;
    pt->seen_inside = loop_current();
}

static void *thread_with_loop(void *arg)
{
    struct per_thread *pt = arg;
    pt->loop = loop_new();
    loop_set_current(pt->loop);
    pt->seen_outside = loop_current();
    loop_call_soon(pt->loop, note_current, pt);
    loop_run(pt->loop);
    loop_set_current(NULL);
    return NULL;                    /* the test frees the loop, once both are done */
}

static int test_current_per_thread(void)
{
    struct per_thread a = { 0 }, b = { 0 }, main_pt = { 0 };
    pthread_t ta, tb;
    CHECK(loop_current() == NULL, "a thread that set nothing has a current loop");
    pthread_create(&ta, NULL, thread_with_loop, &a);
    pthread_create(&tb, NULL, thread_with_loop, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.seen_outside == a.loop && b.seen_outside == b.loop, "loop_set_current was not per thread");
    CHECK(a.seen_inside == a.loop && b.seen_inside == b.loop, "a callback saw another thread's loop");
    CHECK(a.loop != b.loop, "two threads got one loop");
    loop_free(a.loop);
    loop_free(b.loop);
    /* The loop being run wins over the one set, and only while it runs. */
    struct loop *set = loop_new(), *run = loop_new();
    loop_set_current(set);
    loop_call_soon(run, note_current, &main_pt);
    loop_run(run);
    CHECK(main_pt.seen_inside == run, "inside loop_run, loop_current was not the running loop");
    CHECK(loop_current() == set, "after loop_run, loop_current was not the one set");
    loop_set_current(NULL);
    loop_free(set);
    return loop_free(run);
}

/*
 * More descriptors ready at once than one wait reports (256): each wait
 * hands back the next ones, not the first 256 again. 270 pipes stay
 * readable (nobody reads them); in two iterations every reader has run.
 */
enum { MANY = 270 };
static int many_runs[MANY];

static void on_many(struct loop *loop, int fd, void *arg)
{
    (void)loop;
    (void)fd;
    many_runs[(int *)arg - many_runs]++;
}

static int test_many_ready(void)
{
    struct loop *loop = loop_new();
    CHECK(loop != NULL, "loop_new");
    static int p[MANY][2];
    int opened = 0, ok = 1;
    for (; opened < MANY && ok; opened++) {
        ok = pipe(p[opened]) == 0;
        if (!ok)
            break;
        many_runs[opened] = 0;
        ok = write(p[opened][1], "x", 1) == 1 &&
             loop_add_reader(loop, p[opened][0], on_many, &many_runs[opened]) == 0;
    }
    int never = -1;
    if (ok) {
        loop_run_once(loop);
        loop_run_once(loop);
        for (int i = 0; i < MANY && never < 0; i++)
            if (many_runs[i] == 0)
                never = i;
    }
    for (int i = 0; i < opened; i++) {
        loop_remove_reader(loop, p[i][0]);
        close(p[i][0]);
        close(p[i][1]);
    }
    loop_free(loop);
    CHECK(ok, "could not open and watch %d pipes: %s", MANY, strerror(errno));
    CHECK(never < 0, "pipe %d of %d was never served in two iterations", never + 1, MANY);
    return 0;
}

static const struct unit_case cases[] = {
    { "timer-order", test_timer_order },
    { "cancel", test_cancel },
    { "soon-fifo-no-starvation", test_soon_fifo_and_no_starvation },
    { "removed-in-batch", test_removed_in_batch },
    { "threadsafe", test_threadsafe },
    { "signal", test_signal },
    { "stop-handler", test_stop_handler },
    { "free-refuses", test_free_refuses },
    { "run-returns-when-empty", test_run_returns_when_empty },
    { "no-spin", test_no_spin },
    { "repeating", test_repeating },
    { "replace-and-directions", test_replace_and_directions },
    { "zero-delay-timer", test_zero_delay_timer },
    { "remove-calls-nothing", test_remove_calls_nothing },
    { "past-timer-no-starvation", test_past_timer_no_starvation },
    { "far-timers", test_far_timers },
    { "current-per-thread", test_current_per_thread },
    { "many-ready", test_many_ready },
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
