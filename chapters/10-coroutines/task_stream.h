/*
 * task_stream: chapter 09's stream calls, made to suspend the calling task
 * instead of taking a callback (task.h says how a suspending call is built).
 *
 *     asyncio                                  here
 *     await reader.read(n)                     task_read(s, buf, n) / task_read_view(s, n, &data)
 *     await reader.readexactly(n)              task_readexactly(s, buf, n)
 *     await reader.readuntil(sep)              task_readuntil(s, sep, seplen, buf, cap)
 *     await reader.readline()                  task_readline(s, buf, cap) / task_readline_view(s, &data)
 *     writer.write(data)                       task_write(s, data, len)      (never suspends)
 *     await writer.drain()                     task_drain(s)
 *     writer.write_eof()                       task_write_eof(s)
 *     writer.close(); await wait_closed()      task_close(s); task_wait_closed(s)
 *     await asyncio.open_connection(h, p)      task_open_connection(h, p, ms, &s)
 *     await asyncio.start_server(cb, h, p)     task_start_server(loop, h, p, &opts, handler, arg, &gai)
 *
 * Every call here suspends, except task_write, task_write_eof and
 * task_close, and returns -ECANCELED or -ETIMEDOUT as task.h says. A read
 * cancelled or timed out is withdrawn from the stream whole (09's
 * stream_cancel_read): the bytes that came meanwhile stay buffered for the
 * next read, whatever its kind, size or separator.
 */
#ifndef TASK_STREAM_H
#define TASK_STREAM_H

#include <sys/types.h>

#include "stream.h"
#include "task.h"

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
/* asyncio's drain: waits only while writing is paused (over 64 KiB queued). */
int task_drain(struct stream *s);
int task_write_eof(struct stream *s);

/* Close (send what is queued first); after task_wait_closed returns, s is
 * freed, whatever it returns. Cancelled or timed out, it aborts the stream
 * (what is still queued is dropped) and still waits for the end, which then
 * comes at once. task_close alone is fine too: s is freed from the loop. */
void task_close(struct stream *s);
int task_wait_closed(struct stream *s);

/* Connect, on the loop running the calling task (loop_current(): like
 * asyncio's, it takes no loop); the name is resolved on the loop's stack,
 * not the task's. 0 with *out set, or -errno / STREAM_ERESOLVE. */
int task_open_connection(const char *host, int port, unsigned timeout_ms, struct stream **out);

/* ---- servers: one task per client, running handler(stream, arg) ---- */

struct task_server;

/* The handler owns its stream: it closes (or aborts) it before returning.
 * When the server is closed, every handler still running is cancelled: its
 * pending call returns -ECANCELED and it unwinds; a handler not yet started
 * never starts, and the server aborts its stream. When no task can be made
 * for a new client (no memory for its stack), the client is shed: its
 * connection is closed at once, with a "shed" trace line. */
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

#endif
