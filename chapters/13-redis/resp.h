/*
 * resp: the Redis protocol (RESP2), both ways, with no I/O in it.
 *
 * A request is an array of binary-safe strings ("multibulk"):
 *
 *     *2\r\n$3\r\nGET\r\n$3\r\nkey\r\n          GET key
 *
 * or, for a person typing into nc, one line of words ("inline"):
 *
 *     GET key\r\n
 *
 * resp_parse reads one request from the front of a buffer that holds what
 * has arrived so far. It never blocks and never copies: the arguments point
 * into the buffer. It keeps no state between calls either: an incomplete
 * request is parsed again from its start when more bytes come, so the
 * parser is one pure function, which is what makes it easy to fuzz
 * (fuzz_resp.c). Replies are appended to a growing buffer (struct resp_buf)
 * that the connection sends once per batch of requests.
 */
#ifndef RESP_H
#define RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_INLINE (64 * 1024)     /* longest inline line, as in Redis */
#define RESP_MAX_ARGS (1024 * 1024)     /* a larger array is refused at its header */
#define RESP_DEFAULT_MAX_BULK (1024 * 1024)

struct resp_arg {
    const char *data;
    size_t len;
};

/* The arguments of the last request parsed. argv grows with the arguments
 * actually parsed, never with the count a header claims: "*1000000" costs
 * nothing until a million arguments have arrived. */
struct resp_request {
    struct resp_arg *argv;
    size_t argc, cap;
};

enum {
    RESP_MORE = 0,      /* incomplete: call again with more bytes */
    RESP_DONE = 1,      /* a request (argc 0 for an empty one: skip it) */
    RESP_ERROR = -1,    /* malformed: *error says why; reply it, then close */
    RESP_NOMEM = -2,    /* no memory for the argument list */
};

/* Parse one request from buf[0, len). RESP_DONE sets req and *used (the
 * bytes it took). No bulk string may be longer than max_bulk. */
int resp_parse(const char *buf, size_t len, size_t max_bulk, struct resp_request *req, size_t *used,
               const char **error);
void resp_request_free(struct resp_request *req);

/* ---- buffers: what a connection has read, and the replies it will send ---- */

struct resp_buf {
    char *data;
    size_t len, cap;
    int failed;         /* an append ran out of memory: the contents are broken */
};

/* Append bytes, growing the buffer (doubling). */
void resp_add_raw(struct resp_buf *o, const char *data, size_t len);
/* Drop the first n bytes (the requests answered), keeping the rest. */
void resp_buf_consume(struct resp_buf *o, size_t n);

void resp_add_simple(struct resp_buf *o, const char *text);        /* +OK */
void resp_add_error(struct resp_buf *o, const char *text);         /* -ERR ... (text without '-') */
void resp_add_int(struct resp_buf *o, long long value);            /* :42 */
void resp_add_bulk(struct resp_buf *o, const char *data, size_t len);   /* $3 foo */
void resp_add_cstr(struct resp_buf *o, const char *text);          /* a bulk from a C string */
void resp_add_nil(struct resp_buf *o);                             /* $-1 */
void resp_add_array(struct resp_buf *o, size_t count);             /* *3, then 3 replies */
void resp_buf_free(struct resp_buf *o);

#endif
