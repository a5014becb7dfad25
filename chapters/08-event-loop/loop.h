/*
 * loop: a small event loop with callbacks, modelled on asyncio's.
 *
 * Chapters 04-07 each wrote their own loop around select/poll/epoll, with the
 * echo logic wired into it. This module pulls the loop out, so a program only
 * says what it wants done when something happens:
 *
 *     asyncio                          here
 *     loop.add_reader(fd, cb)          loop_add_reader(loop, fd, cb, arg)
 *     loop.add_writer(fd, cb)          loop_add_writer(loop, fd, cb, arg)
 *     loop.call_soon(cb)               loop_call_soon(loop, cb, arg)
 *     loop.call_later(delay, cb)       loop_call_later(loop, ms, cb, arg)
 *     loop.call_at(when, cb)           loop_call_at(loop, when_ms, cb, arg)
 *     handle.cancel()                  loop_cancel(loop, handle)
 *     loop.call_soon_threadsafe(cb)    loop_call_soon_threadsafe(loop, cb, arg)
 *     loop.add_signal_handler(sig, cb) loop_add_signal_handler(loop, sig, cb, arg)
 *     loop.time()                      loop_time(loop)   (milliseconds)
 *     loop.run_forever() / stop()      loop_run(loop) / loop_stop(loop)
 *     asyncio.get_running_loop()       loop_current()
 *     asyncio.set_event_loop(loop)     loop_set_current(loop)
 *
 * One iteration of the loop (loop_run_once), in order:
 *
 *   1. Decide how long it may sleep: not at all if callbacks are queued or a
 *      stop was asked; until the earliest timer if there is one (rounded UP
 *      to a whole millisecond, so it never wakes a hair early and spins);
 *      otherwise for as long as it takes.
 *   2. Sleep in the backend (epoll_wait, or poll) until a descriptor is ready, a timer
 *      is due, or another thread or a signal pokes the wake-up descriptor.
 *   3. Read the clock once; that is loop_time() for the whole iteration.
 *   4. Call the reader and writer callbacks of the ready descriptors. A
 *      callback removed (or whose descriptor was closed and reused) by an
 *      earlier callback of the same batch is not called.
 *   5. Call the timers that were due when this step began, earliest first,
 *      equal deadlines in the order they were scheduled. Repeating timers are
 *      scheduled again. A timer scheduled during this step runs in a later
 *      iteration, even if it is already due (call_later(0) or call_at a past
 *      time, from a timer callback): a timer that re-arms itself cannot
 *      starve I/O, call_soon, signals or the other timers.
 *   6. Call the callbacks queued with call_soon, first in first out, but
 *      only those queued before this step began: one that queues itself again
 *      runs in the next iteration, after I/O, so it cannot starve the sockets.
 *      Calls queued by other threads join this queue in step 4, when the
 *      wake-up descriptor is read; signal callbacks run right there.
 *
 * Everything runs on the thread that calls loop_run: callbacks never run
 * concurrently, so they need no locks. The price is the rule every event loop
 * has: a callback must not block. While one runs, nothing else does.
 *
 * Handles: call_soon/call_later/call_at/call_every return a handle that
 * loop_cancel takes. A one-shot handle belongs to the loop and is valid until
 * its callback starts or it is cancelled, whichever comes first; a repeating
 * one until it is cancelled (its own callback may cancel it).
 *
 * Errors: functions return -1 (or NULL) with errno set, and never print.
 */
#ifndef LOOP_H
#define LOOP_H

#include <stdint.h>

struct loop;
struct loop_handle;

typedef void loop_callback(struct loop *loop, void *arg);
typedef void loop_io_callback(struct loop *loop, int fd, void *arg);

/* Create a loop (with its backend and wake-up descriptors). */
struct loop *loop_new(void);

/* Free the loop. Refuses with EBUSY while anything is still registered or
 * queued (readers, writers, timers, callbacks, signal handlers): freeing then
 * would leave callbacks that can never run and memory that is never freed. */
int loop_free(struct loop *loop);

/* Run until loop_stop is called or nothing is left to wait for (no readers,
 * writers, timers, queued callbacks or signal handlers). Returns 0, or -1 if
 * the backend failed. */
int loop_run(struct loop *loop);

/* One iteration, as described above. Returns 1 if anything is left to wait
 * for, 0 if not, -1 on error. */
int loop_run_once(struct loop *loop);

/* The calling thread's loop: the one it is running (inside loop_run or
 * loop_run_once), else the one set with loop_set_current, else NULL. Each
 * thread has its own: one loop per thread, as in chapter 11. */
struct loop *loop_current(void);
void loop_set_current(struct loop *loop);

/* Make loop_run return after the current iteration. Safe from callbacks;
 * from another thread, use loop_call_soon_threadsafe with a callback that
 * calls it. */
void loop_stop(struct loop *loop);

/* The loop's clock: milliseconds on the monotonic clock, read once per
 * iteration (so every callback of an iteration sees the same time). */
uint64_t loop_time(const struct loop *loop);

/* Call cb(loop, fd, arg) whenever fd is readable (or writable). One callback
 * per descriptor and direction: adding again replaces it. fd should be
 * non-blocking. Removing one that is not there is not an error. */
int loop_add_reader(struct loop *loop, int fd, loop_io_callback *cb, void *arg);
int loop_remove_reader(struct loop *loop, int fd);
int loop_add_writer(struct loop *loop, int fd, loop_io_callback *cb, void *arg);
int loop_remove_writer(struct loop *loop, int fd);

/* Queue cb(loop, arg) to run in this iteration's call_soon step (or the next). */
struct loop_handle *loop_call_soon(struct loop *loop, loop_callback *cb, void *arg);

/* Call cb once, delay_ms from now / at loop time when_ms. */
struct loop_handle *loop_call_later(struct loop *loop, uint64_t delay_ms, loop_callback *cb, void *arg);
struct loop_handle *loop_call_at(struct loop *loop, uint64_t when_ms, loop_callback *cb, void *arg);

/* Call cb every interval_ms (> 0), the first time interval_ms from now. */
struct loop_handle *loop_call_every(struct loop *loop, uint64_t interval_ms, loop_callback *cb, void *arg);

/* Cancel a handle that has not run yet (see "Handles" above). */
void loop_cancel(struct loop *loop, struct loop_handle *handle);

/* From any thread: queue cb to run on the loop's thread and wake the loop.
 * Every call queued is run exactly once, in order. -1/ENOMEM if no memory. */
int loop_call_soon_threadsafe(struct loop *loop, loop_callback *cb, void *arg);

/* Run cb on the loop when signal signo arrives. The signal handler itself
 * only records the signal and wakes the loop; cb runs as an ordinary
 * callback, where anything is allowed. One loop per signal. Removing
 * restores the action the signal had before. */
int loop_add_signal_handler(struct loop *loop, int signo, loop_callback *cb, void *arg);
int loop_remove_signal_handler(struct loop *loop, int signo);

/* The pair every server here installs: cb on SIGINT and on SIGTERM (both or
 * neither), and their removal, which lets loop_run return once nothing else
 * is registered. */
int loop_add_stop_handler(struct loop *loop, loop_callback *cb, void *arg);
void loop_remove_stop_handler(struct loop *loop);

#endif
