#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "*<count>\r\n" and "$<length>\r\n" are short; a header longer than this
 * is not a number anyone meant, and waiting for its end would let a client
 * fill memory one digit at a time. */
#define HEADER_MAX 32

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A whole decimal number, as Redis reads them: an optional '-', digits, and
 * nothing else (no '+', no spaces, no leading zeros beyond "0"). */
static int parse_ll(const char *p, size_t len, long long *out)
{
    int negative = len > 0 && p[0] == '-';
    size_t i = (size_t)negative;
    long long v = 0;
    if (len == i || len - i > 18 || (p[i] == '0' && len - i > 1))
        return -1;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = negative ? -v : v;
    return 0;
}

/* A header line at buf[pos] ("*3\r\n", "$5\r\n"): its number, and where the
 * next line starts. RESP_MORE until its "\r\n" has come. */
static int parse_header(const char *buf, size_t len, size_t pos, long long *n, size_t *next,
                        const char *too_big, const char *invalid, const char **error)
{
    size_t avail = len - pos, scan = avail < HEADER_MAX ? avail : HEADER_MAX;
    const char *nl = memchr(buf + pos, '\n', scan);
    if (nl == NULL) {
        if (avail >= HEADER_MAX) {
            *error = too_big;
            return RESP_ERROR;
        }
        return RESP_MORE;
    }
    size_t end = (size_t)(nl - buf);
    if (end < pos + 2 || buf[end - 1] != '\r' || parse_ll(buf + pos + 1, end - 1 - (pos + 1), n) < 0) {
        *error = invalid;
        return RESP_ERROR;
    }
    *next = end + 1;
    return RESP_DONE;
}

/* Append an argument, as an offset from the request's start: the caller's
 * buffer may grow (and move) before the request is complete. */
static int push_arg(struct resp_request *req, size_t offset, size_t len)
{
    if (req->argc == req->cap) {
        size_t cap = req->cap ? req->cap * 2 : 8;
        struct resp_arg *argv = realloc(req->argv, cap * sizeof *argv);
        if (argv == NULL)
            return RESP_NOMEM;
        req->argv = argv;
        req->cap = cap;
    }
    req->argv[req->argc].offset = offset;
    req->argv[req->argc++].len = len;
    return 0;
}

/* The request is complete: its offsets become pointers into buf, once. */
static int done(const char *buf, size_t end, struct resp_progress *progress, struct resp_request *req,
                size_t *used)
{
    for (size_t i = 0; i < req->argc; i++) {
        size_t offset = req->argv[i].offset;
        req->argv[i].data = buf + offset;
    }
    *progress = (struct resp_progress){ 0 };
    *used = end;
    return RESP_DONE;
}

/* The header once, then each argument from where the last call stopped:
 * progress->pos is the start of the first argument not yet collected, so a
 * call re-reads at most that argument's header (32 bytes), never the ones
 * before it. A bulk string's bytes are skipped by its length, not scanned. */
static int parse_multibulk(const char *buf, size_t len, size_t max_bulk, struct resp_progress *progress,
                           struct resp_request *req, size_t *used, const char **error)
{
    static char unexpected[48];
    long long n;
    size_t pos = progress->pos;
    int rc;
    if (pos == 0) {
        rc = parse_header(buf, len, 0, &progress->count, &pos, "ERR Protocol error: too big mbulk count string",
                          "ERR Protocol error: invalid multibulk length", error);
        if (rc != RESP_DONE)
            return rc;
        if (progress->count > RESP_MAX_ARGS) {
            *error = "ERR Protocol error: invalid multibulk length";
            return RESP_ERROR;
        }
        progress->pos = pos;
    }
    while ((long long)req->argc < progress->count) {
        if (pos >= len)
            return RESP_MORE;
        if (buf[pos] != '$') {
            unsigned char c = (unsigned char)buf[pos];
            snprintf(unexpected, sizeof unexpected, "ERR Protocol error: expected '$', got '%c'",
                     c >= 32 && c < 127 ? c : '?');
            *error = unexpected;
            return RESP_ERROR;
        }
        size_t data;
        rc = parse_header(buf, len, pos, &n, &data, "ERR Protocol error: too big bulk count string",
                          "ERR Protocol error: invalid bulk length", error);
        if (rc != RESP_DONE)
            return rc;
        if (n < 0 || (unsigned long long)n > max_bulk) {
            *error = "ERR Protocol error: invalid bulk length";
            return RESP_ERROR;
        }
        if (len - data < (size_t)n + 2)
            return RESP_MORE;       /* its bytes are still to come: resume at its header */
        if (buf[data + n] != '\r' || buf[data + n + 1] != '\n') {
            *error = "ERR Protocol error: expected CRLF after a bulk string";
            return RESP_ERROR;
        }
        if (push_arg(req, data, (size_t)n) < 0)
            return RESP_NOMEM;
        pos = progress->pos = data + (size_t)n + 2;
    }
    return done(buf, pos, progress, req, used);
}

/* One line of words separated by spaces; a word in double or single quotes
 * may hold spaces (no escapes: that is redis-cli's job, not a person's at nc).
 * The search for its end resumes where the last call's stopped. */
static int parse_inline(const char *buf, size_t len, struct resp_progress *progress, struct resp_request *req,
                        size_t *used, const char **error)
{
    size_t limit = len < RESP_MAX_INLINE + 1 ? len : RESP_MAX_INLINE + 1;
    const char *nl = memchr(buf + progress->pos, '\n', limit - progress->pos);
    if (nl == NULL) {
        if (len > RESP_MAX_INLINE) {
            *error = "ERR Protocol error: too big inline request";
            return RESP_ERROR;
        }
        progress->pos = len;
        return RESP_MORE;
    }
    const char *p = buf, *end = nl;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            break;
        const char *word = p;
        if (*p == '"' || *p == '\'') {
            const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
            if (close == NULL || (close + 1 < end && !is_space(close[1]))) {
                *error = "ERR Protocol error: unbalanced quotes in request";
                return RESP_ERROR;
            }
            word = p + 1;
            p = close + 1;
            if (push_arg(req, (size_t)(word - buf), (size_t)(close - word)) < 0)
                return RESP_NOMEM;
            continue;
        }
        while (p < end && !is_space(*p))
            p++;
        if (push_arg(req, (size_t)(word - buf), (size_t)(p - word)) < 0)
            return RESP_NOMEM;
    }
    return done(buf, (size_t)(nl - buf) + 1, progress, req, used);
}

int resp_parse(const char *buf, size_t len, size_t max_bulk, struct resp_progress *progress,
               struct resp_request *req, size_t *used, const char **error)
{
    if (progress->pos == 0)
        req->argc = 0;      /* a new request: nothing collected yet */
    if (len == 0)
        return RESP_MORE;
    if (buf[0] == '*')
        return parse_multibulk(buf, len, max_bulk, progress, req, used, error);
    return parse_inline(buf, len, progress, req, used, error);
}

void resp_request_free(struct resp_request *req)
{
    free(req->argv);
    *req = (struct resp_request){ 0 };
}

/* ---- replies ---- */

void resp_add_raw(struct resp_buf *o, const char *data, size_t len)
{
    if (o->failed || len == 0)
        return;
    if (o->cap - o->len < len) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->len < len)
            cap *= 2;
        char *grown = realloc(o->data, cap);
        if (grown == NULL) {
            o->failed = 1;
            return;
        }
        o->data = grown;
        o->cap = cap;
    }
    memcpy(o->data + o->len, data, len);
    o->len += len;
}

void resp_buf_consume(struct resp_buf *o, size_t n)
{
    if (n == 0)
        return;                 /* and data may be NULL: memmove wants a pointer */
    memmove(o->data, o->data + n, o->len - n);
    o->len -= n;
}

static void add_line(struct resp_buf *o, char type, long long n)
{
    char line[32];
    int len = snprintf(line, sizeof line, "%c%lld\r\n", type, n);
    resp_add_raw(o, line, (size_t)len);
}

void resp_add_simple(struct resp_buf *o, const char *text)
{
    resp_add_raw(o, "+", 1);
    resp_add_raw(o, text, strlen(text));
    resp_add_raw(o, "\r\n", 2);
}

void resp_add_error(struct resp_buf *o, const char *text)
{
    resp_add_raw(o, "-", 1);
    resp_add_raw(o, text, strlen(text));
    resp_add_raw(o, "\r\n", 2);
}

void resp_add_int(struct resp_buf *o, long long value)
{
    add_line(o, ':', value);
}

void resp_add_bulk(struct resp_buf *o, const char *data, size_t len)
{
    add_line(o, '$', (long long)len);
    resp_add_raw(o, data, len);
    resp_add_raw(o, "\r\n", 2);
}

void resp_add_cstr(struct resp_buf *o, const char *text)
{
    resp_add_bulk(o, text, strlen(text));
}

void resp_add_nil(struct resp_buf *o)
{
    resp_add_raw(o, "$-1\r\n", 5);
}

void resp_add_array(struct resp_buf *o, size_t count)
{
    add_line(o, '*', (long long)count);
}

void resp_buf_free(struct resp_buf *o)
{
    free(o->data);
    *o = (struct resp_buf){ 0 };
}
