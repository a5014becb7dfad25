/*
 * stream: buffered TCP streams on the event loop, with the semantics of
 * asyncio's StreamReader/StreamWriter, completing through callbacks.
 *
 *     asyncio                                  here
 *     await asyncio.start_server(cb, h, p)     stream_start_server(loop, h, p, &opts, cb, arg)
 *     await asyncio.open_connection(h, p)      stream_open_connection(loop, h, p, ms, cb, arg)
 *     await reader.read(n)                     stream_read(s, n, cb, arg)
 *     await reader.readexactly(n)              stream_readexactly(s, n, cb, arg)
 *     await reader.readuntil(sep)              stream_readuntil(s, sep, seplen, cb, arg)
 *     await reader.readline()                  stream_readline(s, cb, arg)
 *     reader.at_eof()                          stream_at_eof(s)
 *     writer.write(data)                       stream_write(s, data, len)
 *     await writer.drain()                     stream_drain(s, cb, arg)
 *     writer.write_eof()                       stream_write_eof(s)
 *     writer.close(); await wait_closed()      stream_close(s); stream_wait_closed(s, cb, arg)
 *     writer.transport.abort()                 stream_abort(s)
 *     writer.get_extra_info('peername')        stream_peername(s, buf, len)
 *
 * Reads. One read may be pending per stream (a second fails with EBUSY). Its
 * callback gets a status and the bytes: `data` points into the stream's
 * buffer and is valid only during the callback (copy what you keep). That is
 * how a read costs no malloc. The status is one of
 *     0                   success; for read(), len 0 means end of stream
 *     STREAM_INCOMPLETE   end of stream came first: data/len are the partial
 *                         bytes (readexactly, readuntil)
 *     STREAM_LIMIT        readuntil/readline: no separator within the limit.
 *                         readuntil leaves the data buffered; readline
 *                         discards it (the line, or all buffered if no end
 *                         of line was seen), as asyncio does. For readline,
 *                         len is 1 if the end of the long line was dropped
 *                         too, 0 if the rest of it is still to come
 *     -errno              the connection failed (-ECONNRESET, -ETIMEDOUT...)
 * A callback is called once, never from inside the call that started it:
 * it runs from the loop (or after the current callback returns), so a
 * handler may start its next read from inside the callback without recursion.
 *
 * Flow control. Bytes are read from the socket while a read waits for them,
 * or while fewer than 2 x limit are buffered; past that, reading pauses until
 * the buffer is back at the limit, and TCP tells the peer to slow down.
 * Writes: stream_write copies and sends at once if it can; what does not fit
 * is queued. Writing "pauses" when the queue grows past the high-water mark
 * (64 KiB) and resumes when it is back at the low-water mark (16 KiB), as in
 * asyncio: stream_drain completes at once (from the loop) unless writing is
 * paused, and then when it resumes. So a writer that awaits drain after
 * every write runs ahead by up to 64 KiB, and wakes in 48 KiB steps. The
 * queue also has a hard cap, this project's own (asyncio has none): a write
 * past it fails with ENOBUFS instead of growing without bound. Buffers are allocated when needed and
 * freed when empty: an idle stream holds no buffer.
 *
 * Errors (reset, broken pipe) reach the pending read and the pending drain,
 * once each; later reads and drains complete with the same error.
 */
#ifndef STREAM_H
#define STREAM_H

#include <stddef.h>

#include "loop.h"

#define STREAM_INCOMPLETE 1
#define STREAM_LIMIT 2
#define STREAM_DEFAULT_LIMIT (64 * 1024)

struct stream;
struct stream_server;

typedef void stream_read_cb(struct stream *s, int status, const char *data, size_t len, void *arg);
typedef void stream_done_cb(struct stream *s, int status, void *arg);
typedef void stream_client_cb(struct stream *s, void *arg);
typedef void stream_connected_cb(struct stream *s, int status, void *arg);

struct stream_options {
    size_t limit;               /* readline/readuntil limit; default 64 KiB */
    size_t high_water;          /* writing pauses past this; default 64 KiB */
    size_t low_water;           /* ...and resumes at or below this; default 16 KiB */
    size_t write_cap;           /* a write past this many queued bytes fails; default 16 MiB */
};

/* ---- servers and connections ---- */

/* Listen on host:port and call on_client for every new connection, with a
 * stream the callback owns. NULL with errno on failure (*gai_error set for
 * name-resolution failures, as in net_listen). */
struct stream_server *stream_start_server(struct loop *loop, const char *host, int port,
                                          const struct stream_options *opts,
                                          stream_client_cb *on_client, void *arg, int *gai_error);

/* The same on a socket that is already listening (asyncio's sock=): the
 * server takes it over, and closes it in stream_server_close. */
struct stream_server *stream_serve(struct loop *loop, int listen_fd, const struct stream_options *opts,
                                   stream_client_cb *on_client, void *arg);

/* The listening address, "127.0.0.1:8888". */
int stream_server_sockname(const struct stream_server *server, char *buf, size_t len);

/* Stop accepting and free the server. What happens to the streams it
 * accepted that are still open: */
enum {
    STREAM_KEEP_CLIENTS,        /* nothing: they go on, owned by their code */
    STREAM_CLOSE_CLIENTS,       /* stream_close on each: queued bytes are sent first */
    STREAM_ABORT_CLIENTS,       /* stream_abort on each: now, queued bytes dropped */
};
void stream_server_close(struct stream_server *server, int clients);

/* Connect without blocking the loop (name resolution itself may block: use a
 * numeric address where that matters). on_connected gets a new stream and 0,
 * or NULL and -ECONNREFUSED, -ETIMEDOUT (after timeout_ms), -EHOSTUNREACH...;
 * STREAM_ERESOLVE when the name did not resolve. Returns a handle that is
 * valid until on_connected starts, or NULL with errno (ENOMEM). */
#define STREAM_ERESOLVE (-10000)
struct stream_connect;
struct stream_connect *stream_open_connection(struct loop *loop, const char *host, int port,
                                              unsigned timeout_ms, stream_connected_cb *on_connected,
                                              void *arg);
/* Give up a connection still under way: its socket is closed and
 * on_connected is never called (asyncio: cancelling open_connection). */
void stream_cancel_connect(struct stream_connect *c);

/* A stream over any connected, stream-oriented socket (a socketpair, say). */
struct stream *stream_open_fd(struct loop *loop, int fd, const struct stream_options *opts);

/* ---- reading ---- */
int stream_read(struct stream *s, size_t n, stream_read_cb *cb, void *arg);
int stream_readexactly(struct stream *s, size_t n, stream_read_cb *cb, void *arg);
int stream_readuntil(struct stream *s, const char *separator, size_t seplen, stream_read_cb *cb, void *arg);
int stream_readline(struct stream *s, stream_read_cb *cb, void *arg);
int stream_at_eof(const struct stream *s);     /* end of stream seen and buffer empty */
/* Withdraw the pending read: its callback is never called, and nothing is
 * lost (bytes that arrived stay buffered for the next read). asyncio gets
 * this by cancelling the task that awaits the read; a C caller that gives up
 * waiting (a timeout, a cancel) needs it said. No read pending: nothing. */
void stream_cancel_read(struct stream *s);

/* ---- writing ---- */
int stream_write(struct stream *s, const void *data, size_t len);  /* -1: ENOBUFS, EPIPE, error */
int stream_drain(struct stream *s, stream_done_cb *cb, void *arg);
void stream_cancel_drain(struct stream *s);     /* its callback is never called */
int stream_write_eof(struct stream *s);        /* shut down sending once the queue is empty */
size_t stream_write_queued(const struct stream *s);

/* ---- closing ---- */
/* Stop reading, send what is queued, then close. The stream is freed after
 * the wait_closed callbacks have run; do not use it after stream_close except
 * to call stream_wait_closed before returning to the loop. */
void stream_close(struct stream *s);
/* Close now, discarding anything queued. */
void stream_abort(struct stream *s);
int stream_wait_closed(struct stream *s, stream_done_cb *cb, void *arg);  /* cb NULL: withdraw */

/* ---- information ---- */
int stream_peername(const struct stream *s, char *buf, size_t len);
int stream_sockname(const struct stream *s, char *buf, size_t len);
int stream_fd(const struct stream *s);
struct loop *stream_loop(const struct stream *s);
void *stream_get_user(const struct stream *s);    /* one pointer for the owner */
void stream_set_user(struct stream *s, void *user);

/* A message for a status: "connection reset by peer", "line too long"... */
const char *stream_strerror(int status);

#endif
