/*
 * Unit tests of stream.c, after asyncio's own stream tests. Each case prints
 * "ok NAME" or "not ok NAME: why". Most use a socketpair: one end is the
 * stream under test, the test writes to and reads from the other end itself.
 *
 *     ./test_stream            every case
 *     ./test_stream NAME       one case (tests/09-streams.bats does this)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "stream.h"
#include "unit.h"

/* What the last read callback got. */
static struct {
    int calls, status;
    char data[256 * 1024];
    size_t len;
} got;

static void on_read(struct stream *s, int status, const char *data, size_t len, void *arg)
{
    (void)s; (void)arg;
    got.calls++;
    got.status = status;
    got.len = len < sizeof got.data ? len : sizeof got.data;
    if (data != NULL)
        memcpy(got.data, data, got.len);
}

static int done_calls, done_status;
static void on_done(struct stream *s, int status, void *arg)
{
    (void)s; (void)arg;
    done_calls++;
    done_status = status;
}

/* Run the loop until *counter reaches target, or 5 s pass. */
static int timed_out;
static void on_time_limit(struct loop *loop, void *arg)
{
    (void)loop; (void)arg;
    timed_out = 1;
}

static int run_until(struct loop *loop, int *counter, int target)
{
    timed_out = 0;
    struct loop_handle *limit = loop_call_later(loop, 5000, on_time_limit, NULL);
    while (*counter < target && !timed_out)
        if (loop_run_once(loop) < 0)
            break;
    if (!timed_out)
        loop_cancel(loop, limit);
    return *counter >= target ? 0 : -1;
}

/* Let the loop work for about ms milliseconds, whatever happens. */
static void run_for(struct loop *loop, unsigned ms)
{
    timed_out = 0;
    struct loop_handle *limit = loop_call_later(loop, ms, on_time_limit, NULL);
    while (!timed_out && loop_run_once(loop) >= 0)
        ;
    (void)limit;                /* it fired: the handle is gone */
}

struct pair {
    struct loop *loop;
    struct stream *s;
    int peer;               /* the test's end */
};

static int pair_open(struct pair *p, const struct stream_options *opts)
{
    int fds[2];
    memset(&got, 0, sizeof got);
    done_calls = done_status = 0;
    p->loop = loop_new();
    if (p->loop == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        return -1;
    p->s = stream_open_fd(p->loop, fds[0], opts);
    p->peer = fds[1];
    return p->s == NULL ? -1 : 0;
}

static int closed_calls;
static void on_closed(struct stream *s, int status, void *arg)
{
    (void)s; (void)status; (void)arg;
    closed_calls++;
}

/* Close the stream, let the loop finish it, free everything. */
static int pair_close(struct pair *p)
{
    closed_calls = 0;
    if (p->s != NULL) {
        stream_close(p->s);
        stream_wait_closed(p->s, on_closed, NULL);
        run_until(p->loop, &closed_calls, 1);
    }
    close(p->peer);
    return loop_free(p->loop);
}

static void send_text(int fd, const char *text)
{
    ssize_t n = write(fd, text, strlen(text));
    (void)n;
}

static int test_readline_limit(void)
{
    struct pair p;
    struct stream_options o = { .limit = 8 };
    CHECK(pair_open(&p, &o) == 0, "setup");
    send_text(p.peer, "this line is too long\nshort\n");
    stream_readline(p.s, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == STREAM_LIMIT, "status %d, expected STREAM_LIMIT", got.status);
    CHECK(got.len == 1, "len %zu: the end of the long line was there, and dropped", got.len);
    /* The long line is gone, the next one is intact. */
    stream_readline(p.s, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no second callback");
    CHECK(got.status == 0 && got.len == 6 && memcmp(got.data, "short\n", 6) == 0,
          "after the long line got status %d '%.*s'", got.status, (int)got.len, got.data);
    return pair_close(&p);
}

static int test_readuntil_limit_keeps_data(void)
{
    struct pair p;
    struct stream_options o = { .limit = 4 };
    CHECK(pair_open(&p, &o) == 0, "setup");
    send_text(p.peer, "abcdefgh|");
    stream_readuntil(p.s, "|", 1, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == STREAM_LIMIT, "status %d, expected STREAM_LIMIT", got.status);
    stream_read(p.s, 100, on_read, NULL);       /* the data is still there */
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no second callback");
    CHECK(got.len == 9 && memcmp(got.data, "abcdefgh|", 9) == 0, "got '%.*s'", (int)got.len, got.data);
    return pair_close(&p);
}

static int test_readuntil_split_separator(void)
{
    struct pair p;
    CHECK(pair_open(&p, NULL) == 0, "setup");
    stream_readuntil(p.s, "\r\n\r\n", 4, on_read, NULL);
    send_text(p.peer, "GET / HTTP/1.0\r\n\r");        /* the separator, cut in two */
    run_for(p.loop, 50);
    CHECK(got.calls == 0, "completed without the whole separator");
    send_text(p.peer, "\nbody");
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == 0 && got.len == 18, "status %d len %zu", got.status, got.len);
    stream_read(p.s, 100, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no second callback");
    CHECK(got.len == 4 && memcmp(got.data, "body", 4) == 0, "remainder '%.*s'", (int)got.len, got.data);
    return pair_close(&p);
}

static int test_readexactly_eof(void)
{
    struct pair p;
    CHECK(pair_open(&p, NULL) == 0, "setup");
    send_text(p.peer, "abc");
    shutdown(p.peer, SHUT_WR);
    stream_readexactly(p.s, 10, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == STREAM_INCOMPLETE && got.len == 3 && memcmp(got.data, "abc", 3) == 0,
          "status %d partial '%.*s'", got.status, (int)got.len, got.data);
    CHECK(stream_at_eof(p.s), "at_eof is false after the partial bytes were taken");
    return pair_close(&p);
}

static int test_at_eof(void)
{
    struct pair p;
    CHECK(pair_open(&p, NULL) == 0, "setup");
    send_text(p.peer, "x");
    shutdown(p.peer, SHUT_WR);
    CHECK(!stream_at_eof(p.s), "at_eof before anything was read");
    stream_read(p.s, 100, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.len == 1, "read %zu bytes", got.len);
    stream_read(p.s, 100, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no second callback");
    CHECK(got.status == 0 && got.len == 0, "expected end of stream, got %d/%zu", got.status, got.len);
    CHECK(stream_at_eof(p.s), "at_eof false after end of stream");
    return pair_close(&p);
}

static int test_second_read_is_busy(void)
{
    struct pair p;
    CHECK(pair_open(&p, NULL) == 0, "setup");
    CHECK(stream_read(p.s, 10, on_read, NULL) == 0, "first read refused");
    CHECK(stream_read(p.s, 10, on_read, NULL) == -1 && errno == EBUSY, "second read accepted");
    return pair_close(&p);
}

/* Ten writes into a peer that does not read: they queue; drain completes
 * once, when the peer has read enough for the queue to be at the low mark. */
static int test_writes_in_order_and_drain(void)
{
    struct pair p;
    struct stream_options o = { .low_water = 16 * 1024 };
    static char chunk[64 * 1024], back[10 * sizeof chunk];
    CHECK(pair_open(&p, &o) == 0, "setup");
    for (int i = 0; i < 10; i++) {
        memset(chunk, 'a' + i, sizeof chunk);
        CHECK(stream_write(p.s, chunk, sizeof chunk) == 0, "write %d: %s", i, strerror(errno));
    }
    CHECK(stream_write_queued(p.s) > o.low_water, "nothing queued: the socket took it all");
    stream_drain(p.s, on_done, NULL);
    run_for(p.loop, 50);
    CHECK(done_calls == 0, "drain completed while the peer read nothing");
    size_t total = 0;
    net_set_nonblocking(p.peer);
    while (total < sizeof back) {
        ssize_t n = read(p.peer, back + total, sizeof back - total);
        if (n > 0)
            total += (size_t)n;
        run_for(p.loop, 1);
    }
    CHECK(done_calls == 1 && done_status == 0, "drain ran %d times, status %d", done_calls, done_status);
    for (size_t i = 0; i < sizeof back; i++)
        CHECK(back[i] == 'a' + (char)(i / sizeof chunk), "byte %zu out of order", i);
    return pair_close(&p);
}

static int test_close_delivers_pending_writes(void)
{
    struct pair p;
    static char big[512 * 1024], back[sizeof big];
    CHECK(pair_open(&p, NULL) == 0, "setup");
    memset(big, 'z', sizeof big);
    CHECK(stream_write(p.s, big, sizeof big) == 0, "write");
    CHECK(stream_write_queued(p.s) > 0, "nothing queued");
    stream_close(p.s);
    closed_calls = 0;
    stream_wait_closed(p.s, on_closed, NULL);
    p.s = NULL;
    size_t total = 0;
    net_set_nonblocking(p.peer);
    for (int spins = 0; spins < 100000; spins++) {
        ssize_t n = read(p.peer, back + total, sizeof back - total);
        if (n == 0)
            break;              /* the close arrived after the bytes */
        if (n > 0)
            total += (size_t)n;
        run_for(p.loop, 1);
    }
    CHECK(total == sizeof big, "peer got %zu of %zu bytes before the close", total, sizeof big);
    run_until(p.loop, &closed_calls, 1);
    CHECK(closed_calls == 1, "wait_closed callback ran %d times", closed_calls);
    return pair_close(&p);
}

static struct stream *closing_stream;
static int write_after_close_result, write_after_close_errno;
static void write_after_close(struct stream *s, int status, void *arg)
{
    (void)status; (void)arg;
    write_after_close_result = stream_write(s, "x", 1);
    write_after_close_errno = errno;
}

static int test_write_after_close(void)
{
    struct pair p;
    CHECK(pair_open(&p, NULL) == 0, "setup");
    closing_stream = p.s;
    stream_close(p.s);
    CHECK(stream_write(p.s, "x", 1) == -1 && errno == EPIPE, "write after close did not fail with EPIPE");
    closed_calls = 0;
    stream_wait_closed(p.s, write_after_close, NULL);
    p.s = NULL;
    run_for(p.loop, 50);
    CHECK(write_after_close_result == -1 && write_after_close_errno == EPIPE,
          "write in wait_closed did not fail with EPIPE");
    return pair_close(&p);
}

static int test_reset_reaches_read(void)
{
    struct pair p;
    int listener, gai, client;
    char where[NET_ADDRSTRLEN];
    /* A real TCP connection, so the peer can reset it. */
    listener = net_listen("127.0.0.1", 0, 4, &gai);
    CHECK(listener >= 0, "listen");
    net_sock_name(listener, where, sizeof where);
    int port = atoi(strrchr(where, ':') + 1);
    client = net_connect("127.0.0.1", port, &gai);
    int server_side = accept(listener, NULL, NULL);
    CHECK(client >= 0 && server_side >= 0, "connect");
    close(listener);
    memset(&got, 0, sizeof got);
    p.loop = loop_new();
    p.s = stream_open_fd(p.loop, server_side, NULL);
    p.peer = -1;
    stream_read(p.s, 100, on_read, NULL);
    net_close_with_reset(client);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == -ECONNRESET, "status %d (%s), expected -ECONNRESET", got.status, stream_strerror(got.status));
    stream_read(p.s, 100, on_read, NULL);       /* later reads: the same error */
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no second callback");
    CHECK(got.status == -ECONNRESET, "second status %d", got.status);
    stream_abort(p.s);
    stream_wait_closed(p.s, on_closed, NULL);
    closed_calls = 0;
    run_until(p.loop, &closed_calls, 1);
    return loop_free(p.loop);
}

/* Half-close: the peer shuts down its side; the stream reads to the end,
 * still writes, then closes. */
static int test_half_close(void)
{
    struct pair p;
    char back[64];
    CHECK(pair_open(&p, NULL) == 0, "setup");
    send_text(p.peer, "question");
    shutdown(p.peer, SHUT_WR);
    stream_read(p.s, 100, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    stream_read(p.s, 100, on_read, NULL);
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no end of stream");
    CHECK(got.len == 0 && stream_at_eof(p.s), "expected end of stream");
    CHECK(stream_write(p.s, "answer", 6) == 0, "write after the peer's half-close failed");
    stream_close(p.s);
    closed_calls = 0;
    stream_wait_closed(p.s, on_closed, NULL);
    p.s = NULL;
    run_until(p.loop, &closed_calls, 1);
    ssize_t n = read(p.peer, back, sizeof back);
    CHECK(n == 6 && memcmp(back, "answer", 6) == 0, "peer read %zd bytes", n);
    CHECK(read(p.peer, back, sizeof back) == 0, "no end of stream after the answer");
    return pair_close(&p);
}

static struct stream *connected;
static int connect_calls, connect_status;
static void on_connected(struct stream *s, int status, void *arg)
{
    (void)arg;
    connect_calls++;
    connect_status = status;
    connected = s;
}

static int test_connect_refused(void)
{
    struct loop *loop = loop_new();
    int gai;
    char where[NET_ADDRSTRLEN];
    int probe = net_listen("127.0.0.1", 0, 1, &gai);     /* find a free port... */
    net_sock_name(probe, where, sizeof where);
    close(probe);                                          /* ...and leave it closed */
    connect_calls = 0;
    CHECK(stream_open_connection(loop, "127.0.0.1", atoi(strrchr(where, ':') + 1), 1000,
                                 on_connected, NULL) != NULL, "open_connection");
    CHECK(connect_calls == 0, "completed inside the call");
    CHECK(run_until(loop, &connect_calls, 1) == 0, "no callback");
    CHECK(connect_status == -ECONNREFUSED && connected == NULL, "status %d", connect_status);
    connect_calls = 0;
    stream_open_connection(loop, "no-such-host.invalid", 80, 1000, on_connected, NULL);
    CHECK(run_until(loop, &connect_calls, 1) == 0, "no callback for a bad name");
    CHECK(connect_status == STREAM_ERESOLVE, "bad name gave %d", connect_status);
    return loop_free(loop);
}

static int test_connect_timeout(void)
{
    struct loop *loop = loop_new();
    int gai, fillers[4];
    char where[NET_ADDRSTRLEN];
    /* A listener that never accepts, with its queue full: SYNs are dropped. */
    int listener = net_listen("127.0.0.1", 0, 0, &gai);
    net_sock_name(listener, where, sizeof where);
    int port = atoi(strrchr(where, ':') + 1);
    for (int i = 0; i < 4; i++) {
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        fillers[i] = socket(AF_INET, SOCK_STREAM, 0);
        net_set_nonblocking(fillers[i]);
        connect(fillers[i], (struct sockaddr *)&to, sizeof to);
    }
    connect_calls = 0;
    uint64_t start = loop_time(loop);
    stream_open_connection(loop, "127.0.0.1", port, 300, on_connected, NULL);
    CHECK(run_until(loop, &connect_calls, 1) == 0, "no callback");
    CHECK(connect_status == -ETIMEDOUT, "status %d (%s)", connect_status, stream_strerror(connect_status));
    CHECK(loop_time(loop) - start >= 300, "timed out after %llu ms", (unsigned long long)(loop_time(loop) - start));
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(listener);
    return loop_free(loop);
}

/* Nobody reads: reading pauses past 2 x limit, so the buffer stays bounded. */
static int test_reading_pauses(void)
{
    struct pair p;
    struct stream_options o = { .limit = 1024 };
    static char flood[256 * 1024];
    CHECK(pair_open(&p, &o) == 0, "setup");
    net_set_nonblocking(p.peer);
    memset(flood, 'f', sizeof flood);
    stream_read(p.s, 1, on_read, NULL);        /* one read starts the reading */
    ssize_t sent = write(p.peer, flood, sizeof flood);
    CHECK(sent > 0, "write");
    run_for(p.loop, 50);
    CHECK(got.calls == 1, "read callback ran %d times", got.calls);
    /* 256 KiB were offered; had reading not paused, the stream would have
     * taken them all and the socket would be empty. */
    char probe[1];
    CHECK(recv(stream_fd(p.s), probe, 1, MSG_PEEK | MSG_DONTWAIT) == 1,
          "the socket was drained: reading did not pause");
    return pair_close(&p);
}

/* Fill the socket until the stream has to queue, then return what is queued. */
static size_t fill_socket(struct pair *p)
{
    static char chunk[4096];
    memset(chunk, 'w', sizeof chunk);
    for (int i = 0; i < 100000 && stream_write_queued(p->s) == 0; i++)
        if (stream_write(p->s, chunk, sizeof chunk) < 0)
            break;
    return stream_write_queued(p->s);
}

/* What drain saw: the queue when its callback ran. */
static size_t queued_at_drain;
static void on_drain_note_queue(struct stream *s, int status, void *arg)
{
    queued_at_drain = stream_write_queued(s);
    on_done(s, status, arg);
}

/* asyncio's drain: at once below the high-water mark; past it, writing is
 * paused until the queue is back at the low-water mark. */
static int test_drain_high_water(void)
{
    struct pair p;
    static char more[64 * 1024], sink[4096];
    CHECK(pair_open(&p, NULL) == 0, "setup");
    CHECK(fill_socket(&p) > 0, "the socket never filled");
    /* Queue between the marks: 16 KiB < queued <= 64 KiB. Drain completes. */
    while (stream_write_queued(p.s) <= 24 * 1024)
        CHECK(stream_write(p.s, more, 4096) == 0, "write: %s", strerror(errno));
    size_t between = stream_write_queued(p.s);
    CHECK(between <= 64 * 1024, "queued %zu, over the high-water mark already", between);
    CHECK(stream_drain(p.s, on_drain_note_queue, NULL) == 0, "drain refused");
    CHECK(done_calls == 0, "drain completed inside the call");
    run_for(p.loop, 50);
    CHECK(done_calls == 1 && done_status == 0,
          "drain with %zu bytes queued (under the 64 KiB high-water mark) did not complete", between);
    /* Over the high-water mark: drain waits while the peer reads nothing... */
    CHECK(stream_write(p.s, more, sizeof more) == 0, "write: %s", strerror(errno));
    CHECK(stream_drain(p.s, on_drain_note_queue, NULL) == 0, "second drain refused");
    run_for(p.loop, 50);
    CHECK(done_calls == 1, "drain completed with %zu bytes queued", stream_write_queued(p.s));
    /* ...and completes once the queue is back at 16 KiB, not before. */
    net_set_nonblocking(p.peer);
    for (int spins = 0; spins < 100000 && done_calls < 2; spins++) {
        if (read(p.peer, sink, sizeof sink) < 0 && errno != EAGAIN)
            break;
        run_for(p.loop, 1);
    }
    CHECK(done_calls == 2 && done_status == 0, "the second drain ran %d times", done_calls - 1);
    CHECK(queued_at_drain <= 16 * 1024, "drain completed with %zu bytes still queued", queued_at_drain);
    return pair_close(&p);
}

/* A withdrawn read never calls back and loses nothing; the next read, of
 * any kind and size, gets exactly what it asks for. */
static int test_cancel_read(void)
{
    struct pair p;
    char hundred[100];
    CHECK(pair_open(&p, NULL) == 0, "setup");
    CHECK(stream_read(p.s, 4096, on_read, NULL) == 0, "read refused");
    run_for(p.loop, 10);
    stream_cancel_read(p.s);
    for (int i = 0; i < 100; i++)
        hundred[i] = (char)('0' + i % 10);
    CHECK(write(p.peer, hundred, sizeof hundred) == 100, "write");
    run_for(p.loop, 20);
    CHECK(got.calls == 0, "a withdrawn read called back");
    CHECK(stream_read(p.s, 16, on_read, NULL) == 0, "a read after the withdrawn one was refused: %s",
          strerror(errno));
    CHECK(run_until(p.loop, &got.calls, 1) == 0, "no callback");
    CHECK(got.status == 0 && got.len == 16 && memcmp(got.data, hundred, 16) == 0,
          "read(16) after a withdrawn read(4096) got status %d and %zu bytes", got.status, got.len);
    /* A readuntil withdrawn, then a readuntil for another separator. */
    CHECK(stream_readuntil(p.s, "\r\n", 2, on_read, NULL) == 0, "readuntil refused");
    run_for(p.loop, 10);
    stream_cancel_read(p.s);
    CHECK(stream_readuntil(p.s, "9", 1, on_read, NULL) == 0, "second readuntil refused");
    CHECK(run_until(p.loop, &got.calls, 2) == 0, "no callback for the second readuntil");
    CHECK(got.status == 0 && got.len == 4 && memcmp(got.data, "6789", 4) == 0,
          "readuntil(\"9\") got status %d, %zu bytes '%.*s'", got.status, got.len, (int)got.len, got.data);
    CHECK(stream_readexactly(p.s, 80, on_read, NULL) == 0, "readexactly refused");
    CHECK(run_until(p.loop, &got.calls, 3) == 0, "no callback for readexactly");
    CHECK(got.status == 0 && got.len == 80 && memcmp(got.data, hundred + 20, 80) == 0,
          "readexactly(80) got status %d, %zu bytes", got.status, got.len);
    return pair_close(&p);
}

static int count_open_fds(void)
{
    int count = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            count++;
    return count;
}

/* A connection given up before it completes: no callback, nothing left
 * registered, its socket closed. */
static int test_cancel_connect(void)
{
    struct loop *loop = loop_new();
    int gai;
    char where[NET_ADDRSTRLEN];
    int listener = net_listen("127.0.0.1", 0, 4, &gai);
    CHECK(listener >= 0, "listen");
    net_sock_name(listener, where, sizeof where);
    int before = count_open_fds();
    connect_calls = 0;
    struct stream_connect *c = stream_open_connection(loop, "127.0.0.1", atoi(strrchr(where, ':') + 1),
                                                      1000, on_connected, NULL);
    CHECK(c != NULL, "open_connection: %s", strerror(errno));
    stream_cancel_connect(c);
    run_for(loop, 50);
    CHECK(connect_calls == 0, "the callback of a cancelled connect ran");
    CHECK(count_open_fds() == before, "%d descriptors open, %d before", count_open_fds(), before);
    close(listener);
    CHECK(loop_free(loop) == 0, "the loop still has something registered: %s", strerror(errno));
    return 0;
}

static const struct unit_case cases[] = {
    { "readline-limit", test_readline_limit },
    { "readuntil-limit-keeps-data", test_readuntil_limit_keeps_data },
    { "readuntil-split-separator", test_readuntil_split_separator },
    { "readexactly-eof", test_readexactly_eof },
    { "at-eof", test_at_eof },
    { "second-read-busy", test_second_read_is_busy },
    { "writes-in-order-drain-once", test_writes_in_order_and_drain },
    { "close-delivers-pending-writes", test_close_delivers_pending_writes },
    { "write-after-close", test_write_after_close },
    { "reset-reaches-read", test_reset_reaches_read },
    { "half-close", test_half_close },
    { "connect-refused", test_connect_refused },
    { "connect-timeout", test_connect_timeout },
    { "reading-pauses", test_reading_pauses },
    { "drain-high-water", test_drain_high_water },
    { "cancel-read", test_cancel_read },
    { "cancel-connect", test_cancel_connect },
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
