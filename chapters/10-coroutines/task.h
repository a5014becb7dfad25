/*
 * task: coroutines with their own stacks, scheduled by the chapter 08 loop,
 * and the chapter 09 stream calls made to suspend the calling task instead of
 * taking a callback. The C reads like asyncio's `await`:
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
 *     await reader.read(n)                     task_read(s, buf, n) / task_read_view(s, n, &data)
 *     await reader.readexactly(n)              task_readexactly(s, buf, n)
 *     await reader.readuntil(sep)              task_readuntil(s, sep, seplen, buf, cap)
 *     await reader.readline()                  task_readline(s, buf, cap) / task_readline_view(s, &data)
 *     writer.write(data)                       task_write(s, data, len)      (never suspends)
 *     await writer.drain()                     task_drain(s)
 *     writer.write_eof()                       task_write_eof(s)
 *     writer.close(); await wait_closed()      task_close(s); task_wait_closed(s)
 *     await asyncio.open_connection(h, p)      task_open_connection(loop, h, p, ms, &s)
 *     await asyncio.start_server(cb, h, p)     task_start_server(loop, h, p, &opts, handler, arg, &gai)
 *
 * Running. A task runs on the loop's thread, from a loop callback, until it
 * returns or calls a suspending function (the ones marked "suspends" below);
 * then the loop goes on, and some later callback (a timer, a completed read)
 * switches back into it. Only one task runs at a time, so tasks share data
 * without locks, and a task that computes for a second stalls everyone.
 * Suspending functions may only be called from a task.
 *
 * Errors. Suspending functions return a negative errno on failure. Two are
 * for every one of them:
 *     -ECANCELED   task_cancel was called: the call's wait was abandoned.
 *                  A cancel is delivered once (to the pending call, or to the
 *                  next one if the task is not waiting), like asyncio's
 *                  CancelledError; the task then unwinds through its own code
 *                  (closing what it opened) and returns.
 *     -ETIMEDOUT   the deadline set with task_set_timeout passed.
 * A stream read abandoned that way stays started inside chapter 09's stream
 * (09 has no way to withdraw a read): the same kind of read on the same
 * stream, from the same task, picks it up again with nothing lost; anything
 * else on that stream's read side fails with -EBUSY until the stream is
 * closed. The usual reaction to a cancel, closing the stream, is always fine.
 *
 * Who frees a task. A task is owned by whoever spawned it until it is joined
 * (task_join/task_gather free it when they return its result) or detached
 * (task_detach: freed as soon as it returns). A task neither joined nor
 * detached is a leak, as in any C API. Its stack is freed when it returns.
 */
#ifndef TASK_H
#define TASK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "stream.h"

struct task;
struct task_server;

typedef intptr_t task_fn(void *arg);

/* 64 KiB: the stack is mapped, not allocated, and only the pages a task
 * touches cost memory (one page for an echo handler waiting in a read), so
 * the size is a ceiling, not a cost. 64 KiB holds the handler's frames, stdio
 * and a few KiB of local buffers with margin, and 10,000 tasks still map only
 * 650 MiB of address space. Deeply recursive code or big local arrays need
 * more: pass stack_size. Name resolution never runs on a task's stack. */
#define TASK_DEFAULT_STACK (64 * 1024)

struct task_options {
    size_t stack_size;          /* 0: TASK_DEFAULT_STACK; rounded up to pages */
    int detached;               /* freed when it returns; nobody joins it */
};

/* ---- tasks ---- */

/* Create a task that will run fn(arg) on its own stack, starting from the
 * loop soon (never inside this call). NULL with errno on failure. */
struct task *task_spawn(struct loop *loop, task_fn *fn, void *arg, const struct task_options *opts);

/* The running task (NULL on the loop's own stack), and its loop. */
struct task *task_current(void);
struct loop *task_loop(const struct task *t);
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
 * -ECANCELED. Callable from a task or a loop callback. */
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

/* ---- streams (chapter 09's semantics; every call here suspends, except
 *      task_write, task_write_eof and task_close) ---- */

/* 1..n bytes into buf, 0 at end of stream, or -errno. */
ssize_t task_read(struct stream *s, void *buf, size_t n);

/* No copy: *data points into the stream's buffer and stays valid until this
 * task's next suspending call (the task runs inside chapter 09's read
 * callback until then). Same return values as task_read. */
ssize_t task_read_view(struct stream *s, size_t n, const char **data);

/* n bytes (n <= buf's size), or fewer (the partial bytes, copied) when the
 * stream ends first (asyncio's IncompleteReadError), or -errno. */
ssize_t task_readexactly(struct stream *s, void *buf, size_t n);

/* Up to and including the separator. Returns the length of what was read,
 * like snprintf: when it is over cap, only cap bytes were copied (the rest is
 * consumed all the same). A result that does not end with the separator is
 * the partial data at end of stream. -EMSGSIZE: no separator within the
 * stream's limit; the data stays buffered. */
ssize_t task_readuntil(struct stream *s, const char *sep, size_t seplen, char *buf, size_t cap);

/* A line with its '\n' (without, at end of stream; 0 at end of stream),
 * truncated to cap like readuntil. Over the stream's limit the line is
 * dropped (09 and asyncio): -EMSGSIZE if its end was dropped too, -E2BIG if
 * the rest is still to come (the next readline returns that tail). */
ssize_t task_readline(struct stream *s, char *buf, size_t cap);
ssize_t task_readline_view(struct stream *s, const char **data);

/* Copy and send, or queue: never suspends. 0 or -errno (-ENOBUFS past the
 * stream's write cap, -EPIPE after close or an error). */
int task_write(struct stream *s, const void *data, size_t len);
int task_drain(struct stream *s);
int task_write_eof(struct stream *s);

/* Close (send what is queued first); after task_wait_closed returns, s is
 * freed. task_close alone is fine too: s is freed from the loop later. */
void task_close(struct stream *s);
int task_wait_closed(struct stream *s);

/* Connect; the name is resolved on the loop's stack, not the task's. 0 with
 * *out set, or -errno / STREAM_ERESOLVE. */
int task_open_connection(struct loop *loop, const char *host, int port, unsigned timeout_ms,
                         struct stream **out);

/* ---- servers: one task per client, running handler(stream, arg) ---- */

/* The handler owns its stream: it closes (or aborts) it before returning.
 * When the server is closed, every handler still running is cancelled: its
 * pending call returns -ECANCELED and it unwinds. */
typedef void task_handler(struct stream *s, void *arg);

struct task_server *task_serve(struct loop *loop, int listen_fd, const struct stream_options *opts,
                               task_handler *handler, void *arg, const struct task_options *topts);
struct task_server *task_start_server(struct loop *loop, const char *host, int port,
                                      const struct stream_options *opts, task_handler *handler,
                                      void *arg, int *gai_error);
/* Stop accepting, cancel every handler task, free the server. The handlers
 * finish from the loop afterwards. */
void task_server_close(struct task_server *server);
size_t task_server_clients(const struct task_server *server);

/* ---- measuring and debugging ---- */

/* Nanoseconds per switch, over `rounds` round trips loop -> task -> loop
 * (two switches each), with nothing else in between. */
double task_measure_switch(long rounds);

/* The same switches without a clock, for the test that runs them under
 * seccomp's strict mode (any system call but read/write/exit kills):
 * task_switch_probe(0) makes the probe task, (N > 0) switches into it and
 * back N times, (-1) lets it return and frees it. */
int task_switch_probe(long rounds);

/* On a stack overflow into a task's guard page, print "task: stack overflow"
 * with the stack size on stderr before the process dies of SIGSEGV (installs
 * a SIGSEGV handler on an alternate stack, for the calling thread). */
int task_report_overflow(void);

#endif
