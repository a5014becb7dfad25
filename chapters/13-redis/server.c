/*
 * Chapter 13 — server: a small Redis, on chapter 10's tasks and 09's streams.
 *
 * The connection handler, with what an asyncio version would say beside it:
 *
 *     async def handle(reader, writer):               static void handle_client(struct stream *s, void *arg)
 *         buf = b""                                       struct resp_buf in = { 0 };
 *         while data := await reader.read(65536):         while ((n = task_read_view(s, 65536, &data)) > 0) {
 *             buf += data                                     resp_add_raw(&in, data, n);
 *             while (req := parse(buf)) is not None:          while (resp_parse(in, ..., &req, &used) == RESP_DONE)
 *                 run(req, replies)                               command_run(&c, &req);
 *             writer.write(replies)                           client_flush(&c);    write, and drain if behind
 *             await writer.drain()                        }
 *         writer.close()                                  task_close(s); task_wait_closed(s);
 *
 * Pipelining comes from the shape: every request that one read brought is
 * answered before the next read, and the replies go out in one write.
 * The rest of the chapter: resp.c (the protocol), db.c (the keyspace and
 * expiry), commands.c (what each command does, publish/subscribe).
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "contract.h"
#include "net.h"
#include "trace.h"

#define EXPIRE_TICK_MS 100      /* ten times a second, as Redis's default hz */
#define KEEP_BUFFER (16 * 1024) /* an idle client keeps buffers up to this; bigger ones are freed */

static struct task_server *server;
static struct loop_handle *expire_timer;
static long max_bulk = RESP_DEFAULT_MAX_BULK, pubsub_limit = 8 * 1024 * 1024;
static long expire_budget = 200;    /* keys the timer looks at per tick, at most */
static size_t max_request;
static unsigned long long served;

static const char denied[] =
    "-DENIED Running in protected mode: no password is set, so only clients on the loopback "
    "interface are accepted. Restart the server with --requirepass PASSWORD (clients then AUTH), "
    "or connect from the server's own host.\r\n";

/* Protected mode, as Redis has it since servers left open on the internet
 * were found and wiped by the thousand: with no password, only clients on
 * the loopback interface may talk to us, whatever address we listen on. */
static int from_loopback(struct stream *s)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    if (getpeername(stream_fd(s), (struct sockaddr *)&peer, &len) < 0)
        return 0;
    if (peer.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24) == 127;
    if (peer.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&peer)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int client_flush(struct client *c)
{
    if (c->cut || c->failed) {      /* our stream was aborted under us, or has failed */
        c->closing = c->failed = 1;
        return -1;
    }
    if (c->out.len > 0) {
        if (c->out.failed || task_write(c->stream, c->out.data, c->out.len) < 0) {
            c->closing = c->failed = 1;
            c->out.len = 0;
            return -1;
        }
        c->out.len = 0;
    }
    if (c->out.cap > KEEP_BUFFER)
        resp_buf_free(&c->out);
    /* drain suspends the task until the stream is back under its low-water
     * mark; called only when writing is behind, it costs nothing otherwise. */
    if (stream_write_queued(c->stream) > 64 * 1024 && task_drain(c->stream) < 0) {
        c->closing = c->failed = 1;     /* reset, or cancelled: SIGTERM */
        return -1;
    }
    return 0;
}

/* Answer every complete request at the front of `in`, in order; keep the
 * incomplete rest for the next read, and how far its parse got in
 * `progress`, so that the next read resumes there: a client that trickles
 * the end of a huge request costs only the bytes it sends. A malformed
 * request is answered with its error, and the connection closes after the
 * replies before it. */
static void answer_requests(struct client *c, struct resp_buf *in, struct resp_progress *progress,
                            struct resp_request *req)
{
    size_t start = 0, used = 0;
    while (!c->closing) {
        const char *error = NULL;
        int rc = resp_parse(in->data + start, in->len - start, (size_t)max_bulk, progress, req, &used, &error);
        if (rc == RESP_MORE)
            break;
        if (rc < 0) {
            resp_add_error(&c->out, rc == RESP_NOMEM ? "ERR out of memory" : error);
            TRACE("protocol-error fd=%d %s", stream_fd(c->stream), rc == RESP_NOMEM ? "no memory" : error);
            c->closing = 1;
            break;
        }
        if (req->argc > 0)
            command_run(c, req);
        start += used;
        if (c->out.len >= 64 * 1024)
            client_flush(c);    /* a long batch: send what is ready, wait if the client is behind */
    }
    resp_buf_consume(in, start);    /* progress counts from the request's start: still right */
    if (progress->pos == 0 && req->cap > 4096)
        resp_request_free(req);     /* a request of many arguments, done: do not keep its list */
    if (!c->closing && in->len > max_request) {
        resp_add_error(&c->out, "ERR Protocol error: request too big");
        TRACE("protocol-error fd=%d request over %zu bytes", stream_fd(c->stream), max_request);
        c->closing = 1;
    }
}

static void handle_client(struct stream *s, void *arg)
{
    (void)arg;
    struct client c = { .stream = s, .id = ++served, .authenticated = redis.requirepass == NULL };
    struct resp_buf in = { 0 };
    struct resp_request req = { 0 };
    struct resp_progress progress = { 0 };     /* how far the parse of an incomplete request got */
    char addr[NET_ADDRSTRLEN];
    const char *data;
    ssize_t n = 0;
    if (trace_enabled && stream_peername(s, addr, sizeof addr) == 0)
        TRACE("peer %s fd=%d", addr, stream_fd(s));
    if (redis.requirepass == NULL && !from_loopback(s)) {
        TRACE("denied fd=%d reason=protected-mode", stream_fd(s));
        task_write(s, denied, sizeof denied - 1);
        c.closing = 1;
    }
    while (!c.closing && (n = task_read_view(s, 65536, &data)) > 0) {
        resp_add_raw(&in, data, (size_t)n);
        if (in.failed) {
            resp_add_error(&c.out, "ERR out of memory");
            c.closing = 1;
        }
        answer_requests(&c, &in, &progress, &req);
        client_flush(&c);               /* one write for the whole batch */
        if (in.len == 0 && in.cap > KEEP_BUFFER)
            resp_buf_free(&in);
    }
    pubsub_unsubscribe_all(&c);
    resp_buf_free(&in);
    resp_buf_free(&c.out);
    resp_request_free(&req);
    if (c.cut)                          /* a publisher aborted our stream: it is not ours to close */
        return;
    if (n >= 0 && !c.failed) {          /* end of stream, QUIT or an error reply: send, then close */
        task_close(s);
        task_wait_closed(s);
    } else {                            /* cancelled (SIGTERM), reset */
        stream_abort(s);
    }
}

/* The active half of expiry (db.h): a little work, ten times a second. */
static void expire_tick(struct loop *loop, void *arg)
{
    (void)arg;
    size_t deleted = db_expire_cycle(redis.db, loop_time(loop), (size_t)expire_budget);
    if (deleted > 0)
        TRACE("expired keys=%zu left-with-deadline=%zu", deleted, db_expiring(redis.db));
}

static void on_stop(struct loop *loop, void *arg)
{
    (void)arg;
    task_server_close(server);      /* every handler's pending call returns -ECANCELED */
    loop_cancel(loop, expire_timer);
    loop_remove_stop_handler(loop);
}

/* The common command line (cli.h) has numbers and flags, and a password is
 * a word: take "--requirepass WORD" (or "=WORD") out of argv before
 * cli_parse reads the rest. */
static int take_password(int *argc, char **argv, struct cli *cli)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "--requirepass") == 0)
            value = i + 1 < *argc ? argv[++i] : "";
        else if (strncmp(argv[i], "--requirepass=", 14) == 0)
            value = argv[i] + 14;
        else
            argv[out++] = argv[i];
        if (value != NULL && *value == '\0') {
            snprintf(cli->error, sizeof cli->error, "option '--requirepass' needs a password");
            return CLI_ERROR;
        }
        if (value != NULL)
            redis.requirepass = value;
    }
    *argc = out;
    return CLI_OK;
}

int main(int argc, char **argv)
{
    long unused;
    const struct cli_option options[] = {
        { "--requirepass", "PASSWORD", "clients must AUTH with it; without it, only loopback clients",
          0, 0, &unused },          /* listed for --help; take_password reads it */
        { "--max-bulk", "BYTES", "longest string in a request (default 1 MiB); a request may be 4x that",
          1, 512L * 1024 * 1024, &max_bulk },
        { "--pubsub-limit", "BYTES", "cut off a subscriber with this much unsent (default 8 MiB)",
          1024, 1L << 30, &pubsub_limit },
        { "--expire-budget", "KEYS", "keys the expiry timer samples per tick (default 200; 0: on access only)",
          0, 1000000, &expire_budget },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 13: a small Redis (RESP2) on chapter 10's tasks.",
        .options = options,
        .default_port = 6380,
    };
    int parsed = take_password(&argc, argv, &cli);
    if (parsed == CLI_OK)
        parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    signal(SIGPIPE, SIG_IGN);
    TRACE("fd limit raised to %ld", net_raise_fd_limit());
    max_request = 4 * (size_t)max_bulk + 64 * 1024;
    redis.pubsub_limit = (size_t)pubsub_limit;

    redis.loop = loop_new();
    redis.db = db_new();
    if (redis.loop == NULL || redis.db == NULL || net_reserve_open() < 0 ||
        loop_add_stop_handler(redis.loop, on_stop, NULL) < 0) {
        perror("server: setup");
        return 1;
    }
    /* A stream may queue a subscriber's messages up to the pub/sub limit,
     * plus the largest reply a command hands over in one piece. */
    struct stream_options opts = { .write_cap = (size_t)pubsub_limit + 2 * (size_t)max_bulk + 128 * 1024 };
    int listen_fd = contract_listen(&cli, SOMAXCONN);     /* prints "listening on ..." */
    server = listen_fd < 0 ? NULL : task_serve(redis.loop, listen_fd, &opts, handle_client, NULL, NULL);
    expire_timer = server == NULL ? NULL : loop_call_every(redis.loop, EXPIRE_TICK_MS, expire_tick, NULL);
    if (expire_timer == NULL) {
        if (server != NULL)
            task_server_close(server);
        else if (listen_fd >= 0)
            close(listen_fd);
        if (listen_fd >= 0)
            perror("server: setup");
        loop_remove_stop_handler(redis.loop);
        loop_run(redis.loop);       /* lets a closed server finish freeing itself */
        loop_free(redis.loop);
        db_free(redis.db);
        net_reserve_close();
        return 1;
    }

    int status = loop_run(redis.loop);
    if (loop_free(redis.loop) < 0) {
        perror("server: loop_free");
        status = -1;
    }
    db_free(redis.db);
    net_reserve_close();
    fprintf(stderr, "server: served %llu connections, %llu commands\n", served, redis.commands);
    return status < 0 ? 1 : 0;
}
