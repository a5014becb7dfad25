/*
 * The commands. Each one checks its arguments, does its work on the
 * keyspace (db.c) or the channels (below), and appends one reply. The error
 * texts are Redis's own, so that clients written for Redis show them as
 * they would.
 */
#include "commands.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "trace.h"

struct redis redis;

#define ARG(i) req->argv[i].data, req->argv[i].len
#define FLUSH_AT (64 * 1024)        /* a long reply is handed to the stream in parts this big */
/* Redis's error class for memory (its text speaks of maxmemory, which this server does not have). */
#define OOM_ERROR "OOM out of memory, the command was not run"


static int arg_is(const struct resp_arg *a, const char *word)
{
    return a->len == strlen(word) && strncasecmp(a->data, word, a->len) == 0;
}

/* An integer argument, as Redis reads one (string2ll): optional '-',
 * digits, no '+', no spaces, no leading zeros, within a long long. */
static int arg_ll(const struct resp_arg *a, long long *out)
{
    char text[24];
    size_t i = a->len > 0 && a->data[0] == '-';
    if (a->len == i || a->len >= sizeof text || (a->data[i] == '0' && a->len > i + 1))
        return -1;
    for (size_t k = i; k < a->len; k++)
        if (a->data[k] < '0' || a->data[k] > '9')
            return -1;
    memcpy(text, a->data, a->len);
    text[a->len] = '\0';
    errno = 0;
    long long v = strtoll(text, NULL, 10);      /* digits only by now: it can only overflow */
    if (errno != 0)
        return -1;
    *out = v;
    return 0;
}

static void reply_not_integer(struct client *c)
{
    resp_add_error(&c->out, "ERR value is not an integer or out of range");
}

/* An error that quotes what the client sent: CR and LF would end the
 * reply line early, so they become spaces (as Redis does). */
static void reply_error_quoting(struct client *c, const char *fmt, const struct resp_arg *a, const char *more)
{
    char text[400];
    snprintf(text, sizeof text, fmt, a->len > 128 ? 128 : (int)a->len, a->data, more);
    for (char *p = text; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    resp_add_error(&c->out, text);
}

/* Now plus ms, or 0 when that would overflow (an "invalid expire time"). */
static uint64_t deadline_after(long long ms)
{
    uint64_t now = loop_time(redis.loop);
    if (ms > 0 && (uint64_t)ms > UINT64_MAX - 1 - now)
        return 0;
    return now + (uint64_t)ms;
}

/* ---- strings and keys ---- */

static void cmd_get(struct client *c, const struct resp_request *req)
{
    size_t len;
    const char *value = db_get(redis.db, ARG(1), &len, loop_time(redis.loop));
    if (value == NULL)
        resp_add_nil(&c->out);
    else
        resp_add_bulk(&c->out, value, len);
}

/* SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL] */
static void cmd_set(struct client *c, const struct resp_request *req)
{
    int nx = 0, xx = 0, keepttl = 0;
    long long ttl = 0, unit = 0;
    for (size_t i = 3; i < req->argc; i++) {
        const struct resp_arg *a = &req->argv[i];
        if (arg_is(a, "NX") && !xx) {
            nx = 1;
        } else if (arg_is(a, "XX") && !nx) {
            xx = 1;
        } else if (arg_is(a, "KEEPTTL") && !unit) {
            keepttl = 1;
        } else if ((arg_is(a, "EX") || arg_is(a, "PX")) && !unit && !keepttl && i + 1 < req->argc) {
            unit = arg_is(a, "EX") ? 1000 : 1;
            if (arg_ll(&req->argv[++i], &ttl) < 0) {
                reply_not_integer(c);
                return;
            }
        } else {
            resp_add_error(&c->out, "ERR syntax error");
            return;
        }
    }
    uint64_t when = keepttl ? DB_KEEP_TTL : DB_NO_EXPIRY;
    if (unit) {
        if (ttl <= 0 || ttl > LLONG_MAX / unit || (when = deadline_after(ttl * unit)) == 0) {
            resp_add_error(&c->out, "ERR invalid expire time in 'set' command");
            return;
        }
    }
    uint64_t now = loop_time(redis.loop);
    size_t len;
    if ((nx || xx) && (db_get(redis.db, ARG(1), &len, now) != NULL) != xx) {
        resp_add_nil(&c->out);          /* NX and it exists, or XX and it does not */
        return;
    }
    if (db_set(redis.db, ARG(1), ARG(2), when, now) < 0)
        resp_add_error(&c->out, OOM_ERROR);
    else
        resp_add_simple(&c->out, "OK");
}

static void cmd_del(struct client *c, const struct resp_request *req)
{
    long long n = 0;
    for (size_t i = 1; i < req->argc; i++)
        n += db_del(redis.db, ARG(i), loop_time(redis.loop));
    resp_add_int(&c->out, n);
}

static void cmd_exists(struct client *c, const struct resp_request *req)
{
    long long n = 0;
    size_t len;
    for (size_t i = 1; i < req->argc; i++)      /* a key named twice counts twice, as in Redis */
        n += db_get(redis.db, ARG(i), &len, loop_time(redis.loop)) != NULL;
    resp_add_int(&c->out, n);
}

static void add_to_integer(struct client *c, const struct resp_request *req, long long by)
{
    uint64_t now = loop_time(redis.loop);
    size_t len;
    long long value = 0;
    const char *old = db_get(redis.db, ARG(1), &len, now);
    if (old != NULL && arg_ll(&(struct resp_arg){ .data = old, .len = len }, &value) < 0) {
        reply_not_integer(c);
        return;
    }
    if ((by > 0 && value > LLONG_MAX - by) || (by < 0 && value < LLONG_MIN - by)) {
        resp_add_error(&c->out, "ERR increment or decrement would overflow");
        return;
    }
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", value + by);
    if (db_set(redis.db, ARG(1), text, (size_t)n, DB_KEEP_TTL, now) < 0)
        resp_add_error(&c->out, OOM_ERROR);
    else
        resp_add_int(&c->out, value + by);
}

static void cmd_incr(struct client *c, const struct resp_request *req) { add_to_integer(c, req, 1); }
static void cmd_decr(struct client *c, const struct resp_request *req) { add_to_integer(c, req, -1); }

static void cmd_mget(struct client *c, const struct resp_request *req)
{
    resp_add_array(&c->out, req->argc - 1);
    for (size_t i = 1; i < req->argc && !c->closing; i++) {
        size_t len;
        const char *value = db_get(redis.db, ARG(i), &len, loop_time(redis.loop));
        if (value == NULL)
            resp_add_nil(&c->out);
        else
            resp_add_bulk(&c->out, value, len);
        if (c->out.len >= FLUSH_AT)
            client_flush(c);    /* the arguments stay valid: they are in our own input buffer */
    }
}

static void cmd_mset(struct client *c, const struct resp_request *req)
{
    if (req->argc % 2 == 0) {
        resp_add_error(&c->out, "ERR wrong number of arguments for 'mset' command");
        return;
    }
    for (size_t i = 1; i < req->argc; i += 2) {
        if (db_set(redis.db, ARG(i), ARG(i + 1), DB_NO_EXPIRY, loop_time(redis.loop)) < 0) {
            resp_add_error(&c->out, OOM_ERROR);
            return;
        }
    }
    resp_add_simple(&c->out, "OK");
}

static void cmd_expire(struct client *c, const struct resp_request *req)
{
    long long seconds;
    if (arg_ll(&req->argv[2], &seconds) < 0) {
        reply_not_integer(c);
        return;
    }
    uint64_t now = loop_time(redis.loop), when = now;      /* zero or less: delete now */
    if (seconds > 0 && (seconds > LLONG_MAX / 1000 || (when = deadline_after(seconds * 1000)) == 0)) {
        resp_add_error(&c->out, "ERR invalid expire time in 'expire' command");
        return;
    }
    int rc = db_expire_at(redis.db, ARG(1), when, now);
    if (rc < 0)
        resp_add_error(&c->out, OOM_ERROR);
    else
        resp_add_int(&c->out, rc);
}

static void cmd_ttl(struct client *c, const struct resp_request *req)
{
    long long ms = db_ttl(redis.db, ARG(1), loop_time(redis.loop));
    resp_add_int(&c->out, ms < 0 ? ms : (ms + 500) / 1000);     /* rounded, as Redis does */
}

/* ---- publish / subscribe ----
 *
 * A channel exists while someone is subscribed to it. Each subscription is
 * on two lists: its channel's (for PUBLISH) and its client's (to leave
 * everything when the client goes). */

struct channel {
    struct dict_entry e;
    struct subscription *subs;
    size_t count;
};

struct subscription {
    struct client *client;
    struct channel *channel;
    struct subscription *prev, *next;           /* the channel's list */
    struct subscription *cprev, *cnext;         /* the client's list */
};

static struct dict channels;

static void reply_subscription(struct client *c, const char *kind, const char *name, size_t len)
{
    resp_add_array(&c->out, 3);
    resp_add_cstr(&c->out, kind);
    if (name != NULL)
        resp_add_bulk(&c->out, name, len);
    else
        resp_add_nil(&c->out);
    resp_add_int(&c->out, (long long)c->nsubs);
}

static struct subscription *find_subscription(struct client *c, const char *name, size_t len)
{
    for (struct subscription *s = c->subs; s != NULL; s = s->cnext)
        if (s->channel->e.klen == len && memcmp(s->channel->e.key, name, len) == 0)
            return s;
    return NULL;
}

static int subscribe(struct client *c, const char *name, size_t len)
{
    if (find_subscription(c, name, len) != NULL)
        return 0;
    struct channel *ch = (struct channel *)dict_find(&channels, name, len);
    struct subscription *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    if (ch == NULL) {
        ch = calloc(1, sizeof *ch + len);
        if (ch == NULL) {
            free(s);
            return -1;
        }
        ch->e.key = (char *)(ch + 1);
        memcpy(ch->e.key, name, len);
        ch->e.klen = len;
        ch->e.hash = dict_hash(name, len);
        if (dict_insert(&channels, &ch->e) < 0) {
            free(ch);
            free(s);
            return -1;
        }
    }
    *s = (struct subscription){ .client = c, .channel = ch, .next = ch->subs, .cnext = c->subs };
    if (ch->subs != NULL)
        ch->subs->prev = s;
    ch->subs = s;
    ch->count++;
    if (c->subs != NULL)
        c->subs->cprev = s;
    c->subs = s;
    c->nsubs++;
    return 0;
}

static void unsubscribe(struct client *c, struct subscription *s)
{
    struct channel *ch = s->channel;
    if (s->prev != NULL) s->prev->next = s->next; else ch->subs = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    if (s->cprev != NULL) s->cprev->cnext = s->cnext; else c->subs = s->cnext;
    if (s->cnext != NULL) s->cnext->cprev = s->cprev;
    c->nsubs--;
    free(s);
    if (--ch->count == 0) {
        dict_remove(&channels, &ch->e);
        free(ch);
        if (channels.count == 0)
            dict_free(&channels);       /* nothing held once nobody listens */
    }
}

void pubsub_unsubscribe_all(struct client *c)
{
    while (c->subs != NULL)
        unsubscribe(c, c->subs);
}

static void cmd_subscribe(struct client *c, const struct resp_request *req)
{
    for (size_t i = 1; i < req->argc; i++) {
        if (c->nsubs >= MAX_SUBSCRIPTIONS && find_subscription(c, ARG(i)) == NULL) {
            resp_add_error(&c->out, "ERR too many subscriptions for one client");
            continue;
        }
        if (subscribe(c, ARG(i)) < 0) {
            resp_add_error(&c->out, OOM_ERROR);
            continue;
        }
        reply_subscription(c, "subscribe", ARG(i));
    }
}

static void cmd_unsubscribe(struct client *c, const struct resp_request *req)
{
    if (req->argc == 1) {                       /* all of them */
        if (c->subs == NULL)
            reply_subscription(c, "unsubscribe", NULL, 0);
        while (c->subs != NULL) {
            struct channel *ch = c->subs->channel;
            char *name = ch->e.key;             /* reply before unsubscribing frees it */
            resp_add_array(&c->out, 3);
            resp_add_cstr(&c->out, "unsubscribe");
            resp_add_bulk(&c->out, name, ch->e.klen);
            resp_add_int(&c->out, (long long)c->nsubs - 1);
            unsubscribe(c, c->subs);
        }
        return;
    }
    for (size_t i = 1; i < req->argc; i++) {
        struct subscription *s = find_subscription(c, ARG(i));
        if (s != NULL)
            unsubscribe(c, s);
        reply_subscription(c, "unsubscribe", ARG(i));
    }
}

/* Cut off a subscriber that does not read: abort its stream (its own task,
 * waiting in a read or a drain, then sees an error and ends) rather than
 * queue its messages without bound. */
static void cut(struct client *c)
{
    TRACE("cut fd=%d queued=%zu reason=not-reading", stream_fd(c->stream), stream_write_queued(c->stream));
    c->cut = 1;
    pubsub_unsubscribe_all(c);
    stream_abort(c->stream);
}

static void cmd_publish(struct client *c, const struct resp_request *req)
{
    struct channel *ch = (struct channel *)dict_find(&channels, ARG(1));
    long long receivers = 0;
    if (ch != NULL) {
        struct resp_buf msg = { 0 };            /* built once, written to each */
        resp_add_array(&msg, 3);
        resp_add_cstr(&msg, "message");
        resp_add_bulk(&msg, ARG(1));
        resp_add_bulk(&msg, ARG(2));
        struct subscription *s = ch->subs, *next;
        for (; s != NULL && !msg.failed; s = next) {
            next = s->next;     /* a cut frees s (and ch, with its last subscriber) */
            struct client *to = s->client;
            if (stream_write_queued(to->stream) + msg.len > redis.pubsub_limit ||
                task_write(to->stream, msg.data, msg.len) < 0)
                cut(to);
            else
                receivers++;
        }
        if (msg.failed)
            resp_add_error(&c->out, OOM_ERROR);
        resp_buf_free(&msg);
        if (msg.failed)
            return;
    }
    redis.published++;
    resp_add_int(&c->out, receivers);
}

/* ---- the connection ---- */

static void cmd_ping(struct client *c, const struct resp_request *req)
{
    if (req->argc > 2) {
        resp_add_error(&c->out, "ERR wrong number of arguments for 'ping' command");
    } else if (c->nsubs > 0) {                  /* in subscribe mode, a push-style reply */
        resp_add_array(&c->out, 2);
        resp_add_cstr(&c->out, "pong");
        resp_add_bulk(&c->out, req->argc == 2 ? req->argv[1].data : "", req->argc == 2 ? req->argv[1].len : 0);
    } else if (req->argc == 2) {
        resp_add_bulk(&c->out, ARG(1));
    } else {
        resp_add_simple(&c->out, "PONG");
    }
}

static void cmd_echo(struct client *c, const struct resp_request *req)
{
    resp_add_bulk(&c->out, ARG(1));
}

static void cmd_quit(struct client *c, const struct resp_request *req)
{
    (void)req;
    resp_add_simple(&c->out, "OK");
    c->closing = 1;
}

int equal_constant_time(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Every byte of the guess a is looked at, whatever it holds: the time
     * depends on the guess's length only, never on how much of it is right.
     * (b, the password, is never empty: main refuses that.) */
    volatile unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)(a[i] ^ b[i % blen]);
    return diff == 0;
}

/* AUTH [default] password: 1 if it succeeded, else the error is replied. */
static int authenticate(struct client *c, const struct resp_arg *user, const struct resp_arg *pass)
{
    if (redis.requirepass == NULL) {
        resp_add_error(&c->out, "ERR AUTH <password> called without any password configured for the "
                                "default user. Are you sure your configuration is correct?");
        return 0;
    }
    int ok = equal_constant_time(pass->data, pass->len, redis.requirepass, strlen(redis.requirepass));
    if (user != NULL && !arg_is(user, "default"))
        ok = 0;
    if (!ok) {
        TRACE("auth fd=%d ok=0", stream_fd(c->stream));
        resp_add_error(&c->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return 0;
    }
    c->authenticated = 1;
    return 1;
}

static void cmd_auth(struct client *c, const struct resp_request *req)
{
    if (req->argc > 3) {
        resp_add_error(&c->out, "ERR syntax error");
        return;
    }
    if (authenticate(c, req->argc == 3 ? &req->argv[1] : NULL, &req->argv[req->argc - 1]))
        resp_add_simple(&c->out, "OK");
}

/* HELLO [2 [AUTH user pass] [SETNAME name]]: only RESP2 is spoken here. */
static void cmd_hello(struct client *c, const struct resp_request *req)
{
    long long version = 2;
    if (req->argc > 1 && arg_ll(&req->argv[1], &version) < 0) {
        resp_add_error(&c->out, "ERR Protocol version is not an integer or out of range");
        return;
    }
    if (version != 2) {
        resp_add_error(&c->out, "NOPROTO unsupported protocol version");
        return;
    }
    for (size_t i = 2; i < req->argc; i++) {
        if (arg_is(&req->argv[i], "AUTH") && i + 2 < req->argc) {
            if (!authenticate(c, &req->argv[i + 1], &req->argv[i + 2]))
                return;
            i += 2;
        } else if (arg_is(&req->argv[i], "SETNAME") && i + 1 < req->argc) {
            i++;
        } else {
            reply_error_quoting(c, "ERR Syntax error in HELLO option '%.*s'%s", &req->argv[i], "");
            return;
        }
    }
    if (redis.requirepass != NULL && !c->authenticated) {
        resp_add_error(&c->out, "NOAUTH HELLO must be called with the client already authenticated, "
                                "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                                "authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    resp_add_array(&c->out, 14);
    resp_add_cstr(&c->out, "server");
    resp_add_cstr(&c->out, "redis");
    resp_add_cstr(&c->out, "version");
    resp_add_cstr(&c->out, "7.0.0");        /* the version whose commands clients may expect here */
    resp_add_cstr(&c->out, "proto");
    resp_add_int(&c->out, 2);
    resp_add_cstr(&c->out, "id");
    resp_add_int(&c->out, (long long)c->id);
    resp_add_cstr(&c->out, "mode");
    resp_add_cstr(&c->out, "standalone");
    resp_add_cstr(&c->out, "role");
    resp_add_cstr(&c->out, "master");
    resp_add_cstr(&c->out, "modules");
    resp_add_array(&c->out, 0);
}

static void reply_unknown_subcommand(struct client *c, const struct resp_request *req, const char *help)
{
    reply_error_quoting(c, "ERR unknown subcommand '%.*s'. Try %s HELP.", &req->argv[1], help);
}

/* CLIENT ID | GETNAME | SETNAME name | SETINFO ...: what clients send on connecting. */
static void cmd_client(struct client *c, const struct resp_request *req)
{
    const struct resp_arg *sub = &req->argv[1];
    if (arg_is(sub, "ID") && req->argc == 2) {
        resp_add_int(&c->out, (long long)c->id);
    } else if (arg_is(sub, "GETNAME") && req->argc == 2) {
        if (c->name[0] != '\0')
            resp_add_cstr(&c->out, c->name);
        else
            resp_add_nil(&c->out);
    } else if (arg_is(sub, "SETNAME") && req->argc == 3) {
        const struct resp_arg *name = &req->argv[2];
        if (name->len >= sizeof c->name || memchr(name->data, ' ', name->len) != NULL ||
            memchr(name->data, '\n', name->len) != NULL || memchr(name->data, '\0', name->len) != NULL) {
            resp_add_error(&c->out, "ERR Client names cannot contain spaces, newlines or special characters.");
            return;
        }
        memcpy(c->name, name->data, name->len);
        c->name[name->len] = '\0';
        resp_add_simple(&c->out, "OK");
    } else if (arg_is(sub, "SETINFO") && req->argc == 4) {
        resp_add_simple(&c->out, "OK");
    } else {
        reply_unknown_subcommand(c, req, "CLIENT");
    }
}

/* COMMAND [COUNT | DOCS | INFO]: redis-cli asks for the docs of every
 * command to show hints as you type. An empty answer means "no hints". */
static void cmd_command(struct client *c, const struct resp_request *req);

/* CONFIG GET save / appendonly: redis-benchmark asks, to warn when
 * persistence would slow the benchmark. There is none here. */
static void cmd_config(struct client *c, const struct resp_request *req)
{
    if (!arg_is(&req->argv[1], "GET") || req->argc != 3) {
        reply_unknown_subcommand(c, req, "CONFIG");
        return;
    }
    const struct resp_arg *name = &req->argv[2];
    const char *value = arg_is(name, "save") ? "" : arg_is(name, "appendonly") ? "no" : NULL;
    resp_add_array(&c->out, value != NULL ? 2 : 0);
    if (value != NULL) {
        resp_add_bulk(&c->out, name->data, name->len);
        resp_add_cstr(&c->out, value);
    }
}

/* ---- the table ---- */

enum {
    BEFORE_AUTH = 1,    /* allowed before AUTH */
    SUBSCRIBED = 2,     /* allowed in subscribe mode */
};

struct command {
    const char *name;
    int arity;          /* as Redis counts: N exactly, -N at least N (the name included) */
    int flags;
    void (*run)(struct client *c, const struct resp_request *req);
};

static const struct command commands[] = {
    { "get", 2, 0, cmd_get },
    { "set", -3, 0, cmd_set },
    { "del", -2, 0, cmd_del },
    { "exists", -2, 0, cmd_exists },
    { "incr", 2, 0, cmd_incr },
    { "decr", 2, 0, cmd_decr },
    { "mget", -2, 0, cmd_mget },
    { "mset", -3, 0, cmd_mset },
    { "expire", 3, 0, cmd_expire },
    { "ttl", 2, 0, cmd_ttl },
    { "publish", 3, 0, cmd_publish },
    { "subscribe", -2, SUBSCRIBED, cmd_subscribe },
    { "unsubscribe", -1, SUBSCRIBED, cmd_unsubscribe },
    { "ping", -1, SUBSCRIBED, cmd_ping },
    { "echo", 2, 0, cmd_echo },
    { "quit", -1, BEFORE_AUTH | SUBSCRIBED, cmd_quit },
    { "auth", -2, BEFORE_AUTH, cmd_auth },
    { "hello", -1, BEFORE_AUTH, cmd_hello },
    { "client", -2, 0, cmd_client },
    { "command", -1, 0, cmd_command },
    { "config", -2, 0, cmd_config },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void cmd_command(struct client *c, const struct resp_request *req)
{
    if (req->argc >= 2 && arg_is(&req->argv[1], "COUNT"))
        resp_add_int(&c->out, (long long)NCOMMANDS);
    else if (req->argc == 1 || arg_is(&req->argv[1], "DOCS") || arg_is(&req->argv[1], "INFO"))
        resp_add_array(&c->out, 0);
    else
        reply_unknown_subcommand(c, req, "COMMAND");
}

void command_run(struct client *c, const struct resp_request *req)
{
    const struct resp_arg *name = &req->argv[0];
    const struct command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS && cmd == NULL; i++)
        if (arg_is(name, commands[i].name))
            cmd = &commands[i];
    redis.commands++;
    if (cmd == NULL) {
        char args[160] = "";        /* "'a' 'b' ", at most 128 characters of them */
        size_t used = 0;
        for (size_t i = 1; i < req->argc && used < 128; i++) {
            int n = snprintf(args + used, sizeof args - used, "'%.*s' ",
                             (int)(req->argv[i].len < 128 - used ? req->argv[i].len : 128 - used),
                             req->argv[i].data);
            used += n > 0 ? (size_t)n : 0;
        }
        reply_error_quoting(c, "ERR unknown command '%.*s', with args beginning with: %s", name, args);
    } else if (redis.requirepass != NULL && !c->authenticated && !(cmd->flags & BEFORE_AUTH)) {
        resp_add_error(&c->out, "NOAUTH Authentication required.");
    } else if (c->nsubs > 0 && !(cmd->flags & SUBSCRIBED)) {
        char text[200];
        snprintf(text, sizeof text, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                 "PING / QUIT / RESET are allowed in this context", cmd->name);
        resp_add_error(&c->out, text);
    } else if (cmd->arity > 0 ? req->argc != (size_t)cmd->arity : req->argc < (size_t)-cmd->arity) {
        char text[80];
        snprintf(text, sizeof text, "ERR wrong number of arguments for '%s' command", cmd->name);
        resp_add_error(&c->out, text);
    } else {
        cmd->run(c, req);
    }
}
