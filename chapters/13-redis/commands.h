/*
 * commands: what each Redis command does, on one client's behalf. A command
 * appends its reply to the client's output buffer; server.c sends the
 * buffer once per batch of pipelined requests. Publishing writes straight
 * into the subscribers' streams (they are other tasks' connections).
 */
#ifndef COMMANDS_H
#define COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "resp.h"
#include "task_stream.h"

struct subscription;

struct client {
    struct stream *stream;
    struct resp_buf out;            /* replies not yet handed to the stream */
    unsigned long long id;
    int authenticated;              /* AUTH succeeded (or no password is set) */
    int closing;                    /* QUIT, a protocol error: close after the replies */
    int failed;                     /* a write or drain failed (reset, SIGTERM): abort */
    int cut;                        /* a publisher cut it off (not reading): its stream is aborted */
    size_t nsubs;                   /* channels subscribed to: in subscribe mode if > 0 */
    struct subscription *subs;
    char name[64];                  /* CLIENT SETNAME */
};

/* What every client shares: one loop, one keyspace. */
struct redis {
    struct loop *loop;
    struct db *db;
    const char *requirepass;        /* NULL: no password (and protected mode) */
    size_t pubsub_limit;            /* a subscriber with more unsent is cut off */
    unsigned long long commands, published;
};
extern struct redis redis;

#define MAX_SUBSCRIPTIONS 10000    /* per client: its memory is bounded too */

/* Run one request (argc > 0) and append its reply to c->out. */
void command_run(struct client *c, const struct resp_request *req);

/* Hand c->out to the stream; if the client is not keeping up, wait (drain)
 * until it does. Commands with long replies call it between parts, so a
 * reply is never held whole. -1 when the connection has failed (closing
 * and failed set). */
int client_flush(struct client *c);

/* Leave every channel (the client is going). */
void pubsub_unsubscribe_all(struct client *c);

/* Equal, in a time that does not depend on where the first difference is. */
int equal_constant_time(const char *a, size_t alen, const char *b, size_t blen);

#endif
