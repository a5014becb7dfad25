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
 *     arguments (resp_add_array and resp_add_bulk agree with resp_parse).
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
        int rc = resp_parse(buf + pos, size - pos, MAX_BULK, &req, &used, &error);
        if (rc == RESP_ERROR)
            check(error != NULL && strchr(error, '\r') == NULL && strchr(error, '\n') == NULL);
        if (rc != RESP_DONE)
            break;
        check(used >= 1 && used <= size - pos);
        for (size_t i = 0; i < req.argc; i++)
            check(req.argv[i].data >= buf + pos && req.argv[i].data + req.argv[i].len <= buf + pos + used &&
                  req.argv[i].len <= (buf[pos] == '*' ? MAX_BULK : RESP_MAX_INLINE));

        check(resp_parse(buf + pos, used, MAX_BULK, &again, &used2, &error) == RESP_DONE && used2 == used);
        same_request(&req, &again);
        check(resp_parse(buf + pos, used - 1, MAX_BULK, &again, &used2, &error) == RESP_MORE);

        struct resp_buf out = { 0 };
        resp_add_array(&out, req.argc);
        for (size_t i = 0; i < req.argc; i++)
            resp_add_bulk(&out, req.argv[i].data, req.argv[i].len);
        if (req.argc > 0) {
            check(!out.failed);
            /* (an inline word may be longer than MAX_BULK: the limit is for bulk strings) */
            check(resp_parse(out.data, out.len, RESP_MAX_INLINE, &again, &used2, &error) == RESP_DONE &&
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
