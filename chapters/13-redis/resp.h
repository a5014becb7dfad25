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
 * into the buffer. An incomplete request is not parsed again from its start
 * when more bytes come: the caller keeps a small struct resp_progress per
 * connection (how far the parse got, as Redis keeps multibulklen and the
 * arguments so far in its client), and the parser resumes there. Without
 * it, a client that sends half a million small arguments and then trickles
 * the rest would make every few bytes cost a scan of everything before
 * them. The parser is still one pure function of (buffer, progress), which
 * is what makes it easy to fuzz (fuzz_resp.c): fed in pieces or whole, a
 * request parses the same. Replies are appended to a growing buffer
 * (struct resp_buf) that the connection sends once per batch of requests.
 */
#ifndef RESP_H
#define RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_MAX_INLINE (64 * 1024)     /* longest inline line, as in Redis */
#define RESP_MAX_ARGS (1024 * 1024)     /* a larger array is refused at its header */
#define RESP_DEFAULT_MAX_BULK (1024 * 1024)

struct resp_arg {
    union {
        const char *data;   /* once the request is complete (RESP_DONE) */
        size_t offset;      /* while it is not: from the request's start (the buffer may move) */
    };
    size_t len;
};

/* The arguments of the last request parsed, or of the one being parsed.
 * argv grows with the arguments actually parsed, never with the count a
 * header claims: "*1000000" costs nothing until a million arguments have
 * arrived. */
struct resp_request {
    struct resp_arg *argv;
    size_t argc, cap;
};

/* How far the parse of an incomplete request got: all zero at a request's
 * start, and again after RESP_DONE. Between two calls on the same request,
 * the arguments collected so far stay in its struct resp_request. */
struct resp_progress {
    size_t pos;         /* bytes of the request parsed (multibulk) or searched for '\n' (inline) */
    long long count;    /* multibulk: the arguments its header announced */
};

enum {
    RESP_MORE = 0,      /* incomplete: call again with more bytes */
    RESP_DONE = 1,      /* a request (argc 0 for an empty one: skip it) */
    RESP_ERROR = -1,    /* malformed: *error says why; reply it, then close */
    RESP_NOMEM = -2,    /* no memory for the argument list */
};

/* Parse one request from buf[0, len), resuming where *progress says. buf
 * may have moved since the last call, but must start at the same request,
 * with the bytes seen then unchanged. RESP_MORE updates *progress (and the
 * arguments so far in req); RESP_DONE sets req and *used (the bytes it took)
 * and zeroes *progress. Each call costs the bytes that are new since the
 * last one, plus one header: a request fed in n pieces costs O(its length
 * + n), not O(length x n). No bulk string may be longer than max_bulk. */
int resp_parse(const char *buf, size_t len, size_t max_bulk, struct resp_progress *progress,
               struct resp_request *req, size_t *used, const char **error);
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
