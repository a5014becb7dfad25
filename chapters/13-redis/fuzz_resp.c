/*
 * libFuzzer target for the request parser (make fuzz). The fuzzer calls
 * LLVMFuzzerTestOneInput with ever new inputs, steering towards code not yet
 * reached; AddressSanitizer and UBSan turn any out-of-bounds read or
 * undefined arithmetic into a crash it reports. Beyond "no crash", each
 * input checks what the server relies on:
 *
 *   - every request parsed lies inside the buffer, and takes at least one byte
 *     (or the server's loop over a buffer would never end);
 *   - a request parsed from buf[0, used) is parsed the same from exactly
 *     that many bytes, and one byte fewer is "more, please": the parser does
 *     not look past a request's end, and incomplete input never looks complete;
 *   - what the parser returns, written back as RESP, parses to the same
 *     arguments (resp_add_array and resp_add_bulk agree with resp_parse);
 *   - fed in pieces, as the network delivers it, the input parses exactly as
 *     it does whole: the parser resumes where it stopped (struct
 *     resp_progress), and after every piece it says what a parse from
 *     scratch of the same bytes says: more, the same error, or the same
 *     request of the same length. Each piece is a fresh copy of exactly the
 *     bytes so far, so the buffer moves between calls, as the server's does,
 *     and an argument kept as a pointer instead of an offset is caught.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

#define MAX_BULK 512

/* An invariant broken: say which, and stop (libFuzzer saves the input). */
#define check(condition)                                                      \
    do {                                                                      \
        if (!(condition)) {                                                   \
            fprintf(stderr, "fuzz_resp.c:%d: %s\n", __LINE__, #condition);    \
            abort();                                                          \
        }                                                                     \
    } while (0)

static void same_request(const struct resp_request *a, const struct resp_request *b)
{
    check(a->argc == b->argc);
    for (size_t i = 0; i < a->argc; i++)
        check(a->argv[i].len == b->argv[i].len && memcmp(a->argv[i].data, b->argv[i].data, a->argv[i].len) == 0);
}

/* A parse from scratch of buf[0, len). */
static int parse_whole(const char *buf, size_t len, struct resp_request *req, size_t *used, const char **error)
{
    struct resp_progress fresh = { 0 };
    return resp_parse(buf, len, MAX_BULK, &fresh, req, used, error);
}

/* Feed data[0, size) in pieces whose sizes come from `seed`, each call on a
 * new copy of the bytes so far, and compare every answer with a parse from
 * scratch of the same bytes. */
static void parse_in_pieces(const char *data, size_t size, unsigned seed)
{
    struct resp_progress progress = { 0 };
    struct resp_request req = { 0 }, whole = { 0 };
    size_t len = 0;
    while (len < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % ((seed >> 8) % 2 ? 4 : 64);     /* mostly small, some larger */
        len = piece < size - len ? len + piece : size;
        char *copy = malloc(len);
        check(copy != NULL);
        memcpy(copy, data, len);
        size_t used = 0, used2 = 0;
        const char *error = NULL, *error2 = NULL;
        int rc = resp_parse(copy, len, MAX_BULK, &progress, &req, &used, &error);
        int rc2 = parse_whole(copy, len, &whole, &used2, &error2);
        check(rc == rc2);
        if (rc == RESP_ERROR)
            check(strcmp(error, error2) == 0);
        if (rc == RESP_DONE) {
            check(used == used2);
            same_request(&req, &whole);
            for (size_t i = 0; i < req.argc; i++)
                check(req.argv[i].data >= copy && req.argv[i].data + req.argv[i].len <= copy + used);
        }
        free(copy);
        if (rc != RESP_MORE)
            break;
    }
    resp_request_free(&req);
    resp_request_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so a read past the end is caught. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct resp_request req = { 0 }, again = { 0 };
    size_t pos = 0;
    while (pos < size) {
        size_t used = 0, used2 = 0;
        const char *error = NULL;
        int rc = parse_whole(buf + pos, size - pos, &req, &used, &error);
        if (rc == RESP_ERROR)
            check(error != NULL && strchr(error, '\r') == NULL && strchr(error, '\n') == NULL);
        parse_in_pieces(buf + pos, size - pos, (unsigned)size * 2654435761u + (unsigned)pos);
        if (rc != RESP_DONE)
            break;
        check(used >= 1 && used <= size - pos);
        for (size_t i = 0; i < req.argc; i++)
            check(req.argv[i].data >= buf + pos && req.argv[i].data + req.argv[i].len <= buf + pos + used &&
                  req.argv[i].len <= (buf[pos] == '*' ? MAX_BULK : RESP_MAX_INLINE));

        check(parse_whole(buf + pos, used, &again, &used2, &error) == RESP_DONE && used2 == used);
        same_request(&req, &again);
        check(parse_whole(buf + pos, used - 1, &again, &used2, &error) == RESP_MORE);

        struct resp_buf out = { 0 };
        resp_add_array(&out, req.argc);
        for (size_t i = 0; i < req.argc; i++)
            resp_add_bulk(&out, req.argv[i].data, req.argv[i].len);
        if (req.argc > 0) {
            check(!out.failed);
            /* (an inline word may be longer than MAX_BULK: the limit is for bulk strings) */
            struct resp_progress fresh = { 0 };
            check(resp_parse(out.data, out.len, RESP_MAX_INLINE, &fresh, &again, &used2, &error) == RESP_DONE &&
                  used2 == out.len);
            same_request(&req, &again);
        }
        resp_buf_free(&out);
        pos += used;
    }
    resp_request_free(&req);
    resp_request_free(&again);
    free(buf);
    return 0;
}
