/*
 * loadgen: drive an echo server with many concurrent connections and measure it.
 *
 *     loadgen [--connections N] [--size BYTES] [--pipeline K]
 *             [--duration SEC] [--requests N] [--timeout SEC]
 *             [--idle-extra N] [--spin] [--threads T]
 *     loadgen --idle [--connections N] [--hold SEC] [--timeout SEC]
 *
 * Ping-pong (the default): each of the N active connections sends a message
 * of SIZE bytes (K of them in flight with --pipeline K), waits for its whole
 * echo, checks every byte, and goes again, until --duration seconds pass or
 * --requests echoes have come back in all. It prints one line:
 *
 *     connections=100 size=64 pipeline=1 requests=123456 seconds=3.00 rps=41152
 *     p50_us=1600 p99_us=3200 max_us=9000 errors=0 idle_extra=0 echoes_min=1180
 *     echoes_median=1234 echoes_max=1301 jain=0.9991 wait_share=0.42  (on one line)
 *
 * Latency runs from a message's first byte sent to the last byte of its echo
 * received. echoes_min/median/max are the echoes each active connection got
 * (the median is the lower middle one) and jain is Jain's fairness index over
 * them, (sum x)^2 / (n * sum x^2): 1 when all got as many, 1/n when one got
 * everything (0 when nothing came back). wait_share is the share of the run
 * the load generator spent waiting for the server: from the start of a poll
 * that found nothing ready until the next event (blocking) or the next poll
 * (--spin), averaged over the threads. Near 0, loadgen was busy all the time
 * and may have set the pace; high, the server did.
 *
 * --idle-extra N opens N more connections before the run and holds them, sending
 * nothing, until it ends; then each must still be open and echo one 16-byte
 * message. --spin polls with a zero timeout instead of sleeping (for a CPU of
 * its own, under taskset). --threads T splits the active connections over T
 * threads (the idle ones stay with the main thread).
 *
 * Idle (--idle): open N connections, print "connected=N", leave them idle for
 * --hold seconds (SIGTERM or SIGINT ends the hold early), then send one 16-byte
 * message on each, check the echoes and print
 * "idle connections=N opened=N echoed=N errors=0".
 *
 * A connection that is refused, reset or closed, echoes a wrong byte, or waits
 * --timeout seconds for an echo counts one error and stops; the others go on.
 * Exit status: 0 without errors, 1 with errors (the first is described on
 * stderr), 2 bad options.
 *
 * Design, so that the server, not this program, sets the pace:
 * - Readiness: epoll on Linux, poll() elsewhere (or with -DLOADGEN_POLL), behind
 *   the five poller_* functions. The interest set is built once; writability is
 *   watched only while the kernel has refused part of a message.
 * - Eager sends: when an echo is complete the next message goes out at once,
 *   without waiting for the poller to say the socket is writable.
 * - Content: one random pattern of SIZE + WINDOW bytes is made at start and
 *   shared read-only. Message `seq` of connection `c` is an 8-byte tag, a
 *   bijection of (c, seq) so no two messages of the run begin alike (from 8
 *   bytes up; a shorter message is a prefix of its tag), then the pattern from
 *   an offset the tag chooses. Sending gathers the tag and the
 *   pattern with sendmsg (no copy); checking is memcmp against them. An echo
 *   that belongs to another connection, or repeats an older message, or loses
 *   or repeats bytes inside one, fails the check. Memory per connection stays
 *   a few counters whatever --size is.
 * - Each thread owns its connections, poller, counters and histogram, merged
 *   once at the end: no locks on the way, except for recording an error.
 * - Every wait is bounded: a tick of 100 ms at most, at which each connection's
 *   --timeout is checked and the clock and signals looked at.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__linux__) && !defined(LOADGEN_POLL)
#define USE_EPOLL 1
#include <sys/epoll.h>
#endif

#include "cli.h"
#include "io.h"
#include "net.h"
#include "trace.h"

#define MAX_CONNECTING 256      /* connects in progress at once: the backlog may be short */
#define CHUNK 65536             /* the most one read() takes */
#define IDLE_MESSAGE 16
#define TICK_US 100000          /* the longest wait before the clock is looked at again */
#define TAG 8                   /* bytes of a message that name it */
#define WINDOW 65536            /* a message's pattern starts in the first WINDOW bytes */
#define MAX_EVENTS 256          /* ready connections taken per wait */
#define MAX_IOV 16              /* the least IOV_MAX POSIX allows: 8 messages per sendmsg */

static long opt_connections = 10, opt_size = 64, opt_duration = 3, opt_requests = 0,
            opt_pipeline = 1, opt_timeout = 5, opt_idle = 0, opt_hold = 0,
            opt_idle_extra = 0, opt_spin = 0, opt_threads = 1;

static const struct cli_option options[] = {
    { "--connections", "N", "concurrent active connections (default 10)", 1, 100000,
      &opt_connections },
    { "--size", "BYTES", "bytes per message (default 64)", 1, 16L << 20, &opt_size },
    { "--duration", "SEC", "seconds of load (default 3)", 1, 3600, &opt_duration },
    { "--requests", "N", "stop after N echoes in all (default 0: no limit)",
      0, 1L << 30, &opt_requests },
    { "--pipeline", "K", "messages in flight per connection (default 1)", 1, 64, &opt_pipeline },
    { "--timeout", "SEC", "longest wait for a connect or an echo (default 5)",
      1, 600, &opt_timeout },
    { "--idle-extra", "N", "also hold N idle connections during the run, check them after",
      0, 100000, &opt_idle_extra },
    { "--spin", NULL, "busy-poll instead of sleeping (for a CPU of its own)", 0, 0, &opt_spin },
    { "--threads", "T", "split the active connections over T threads (default 1)",
      1, 64, &opt_threads },
    { "--idle", NULL, "open, hold idle, then check one echo per connection", 0, 0, &opt_idle },
    { "--hold", "SEC", "with --idle: seconds to hold (default 0)", 0, 3600, &opt_hold },
    { 0 },
};

enum { C_WAITING, C_CONNECTING, C_OPEN, C_DONE, C_FAILED };

struct conn {
    int fd, state;
    int watch_out;                      /* is the poller watching for writability? */
    long id;                            /* its number: in the content, and in errors */
    size_t slot;                        /* poll(): its entry in the pollfd array */
    uint64_t send_seq, recv_seq;        /* the message being sent, being received */
    size_t send_off, recv_off;          /* how much of each has gone or come */
    long long *sent_at;                 /* first-byte times, a ring indexed by seq */
};

/* What a run does: ping-pong, or one echo per idle connection. */
struct load {
    size_t size, pipeline;
    uint64_t per_conn;                  /* messages per connection; 0: no limit */
    int limited;                        /* is total a limit? */
    unsigned long long total;           /* messages in all, for this group */
    long long end;                      /* stop at this trace_now_us() */
    int stoppable, spin;                /* SIGINT/SIGTERM ends it early; busy-poll */
};

/*
 * Latency histogram in bounded memory: values under 256 us have a bucket
 * each; above, every power of two is split into 128 buckets, so a bucket is
 * under 1/128 of its value wide and its midpoint is within 0.4%.
 */
#define SUB 128
#define BUCKETS (58 * SUB)
struct hist {
    unsigned long long count[BUCKETS], n, max;
};

#ifdef USE_EPOLL
struct poller {
    int epfd;
    struct epoll_event ev[MAX_EVENTS];
};
#else
struct poller {
    struct pollfd *pfds;                /* one per connection, in the order added */
    struct conn **who;                  /* who[i] owns pfds[i] */
    size_t n, *ready, start;            /* ready: indexes found by the last wait */
};
#endif

/* The connections one thread drives, and everything it counts. */
struct group {
    struct conn *conns;
    long n, open;                       /* open: still C_OPEN */
    struct load load;
    unsigned long long started, completed;
    long long waited_us, finished_at;
    struct poller poller;
    unsigned char scratch[CHUNK];
    struct hist hist;
    pthread_t thread;
};

static long nactive, nall;              /* conns[0..nactive) are active, the rest idle */
static struct conn *conns;
static unsigned char *pattern;          /* max(SIZE, IDLE_MESSAGE) + WINDOW random bytes */
static char target[NET_ADDRSTRLEN];
static atomic_int stop_requested;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long errors;       /* under error_lock */
static char first_error[300];

static void on_stop(int signo)
{
    (void)signo;
    atomic_store(&stop_requested, 1);   /* lock-free, so safe in a handler */
}

/* ---- readiness: epoll or poll behind one small interface ---- */

#ifdef USE_EPOLL
static int poller_init(struct poller *p, long n)
{
    (void)n;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    return p->epfd < 0 ? -1 : 0;
}

static void poller_free(struct poller *p)
{
    if (p->epfd >= 0)
        close(p->epfd);
}

static int poller_add(struct poller *p, struct conn *c)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Watch for writability or stop (input is always watched: a close is an error). */
static int poller_watch_out(struct poller *p, struct conn *c, int on)
{
    if (c->watch_out == on)
        return 0;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c };
    c->watch_out = on;
    return epoll_ctl(p->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Stop watching c before it is closed or left open unwatched. */
static void poller_forget(struct poller *p, struct conn *c)
{
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

static int poller_wait(struct poller *p, int timeout_ms)
{
    return epoll_wait(p->epfd, p->ev, MAX_EVENTS, timeout_ms);
}

/* The i-th ready connection of the last wait; *in covers errors and hang-ups. */
static struct conn *poller_ready(struct poller *p, int i, int *in, int *out)
{
    *in = (p->ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
    *out = (p->ev[i].events & EPOLLOUT) != 0;
    return p->ev[i].data.ptr;
}
#else
static int poller_init(struct poller *p, long n)
{
    p->n = p->start = 0;
    p->pfds = calloc((size_t)n + 1, sizeof *p->pfds);
    p->who = calloc((size_t)n + 1, sizeof *p->who);
    p->ready = calloc((size_t)n + 1, sizeof *p->ready);
    return p->pfds && p->who && p->ready ? 0 : -1;
}

static void poller_free(struct poller *p)
{
    free(p->pfds), free(p->who), free(p->ready);
}

static int poller_add(struct poller *p, struct conn *c)
{
    c->slot = p->n++;
    p->pfds[c->slot] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
    p->who[c->slot] = c;
    return 0;
}

static int poller_watch_out(struct poller *p, struct conn *c, int on)
{
    c->watch_out = on;
    p->pfds[c->slot].events = (short)(POLLIN | (on ? POLLOUT : 0));
    return 0;
}

static void poller_forget(struct poller *p, struct conn *c)
{
    p->pfds[c->slot].fd = -1;           /* poll() skips negative descriptors */
}

static int poller_wait(struct poller *p, int timeout_ms)
{
    int rc = poll(p->pfds, (nfds_t)p->n, timeout_ms);
    if (rc <= 0)
        return rc;
    /* Start where the last scan began, one further on: nobody always comes first. */
    size_t found = 0;
    p->start = p->n > 0 ? (p->start + 1) % p->n : 0;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = (p->start + k) % p->n;
        if (p->pfds[i].fd >= 0 && p->pfds[i].revents != 0)
            p->ready[found++] = i;
    }
    return (int)found;
}

static struct conn *poller_ready(struct poller *p, int i, int *in, int *out)
{
    short r = p->pfds[p->ready[i]].revents;
    *in = (r & (POLLIN | POLLERR | POLLHUP)) != 0;
    *out = (r & POLLOUT) != 0;
    return p->who[p->ready[i]];
}
#endif

/* ---- errors ---- */

/* Count one error, keep the first for the report, and end the connection. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void conn_fail(struct group *g, struct conn *c, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    int idle = c->id >= nactive;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    TRACE("%sconn %ld: %s", idle ? "idle " : "", c->id, why);
    pthread_mutex_lock(&error_lock);
    if (errors++ == 0)
        snprintf(first_error, sizeof first_error, "%sconnection %ld: %s", idle ? "idle " : "",
                 c->id, why);
    pthread_mutex_unlock(&error_lock);
    if (g != NULL && c->state == C_OPEN) {
        poller_forget(&g->poller, c);
        g->open--;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_FAILED;
}

/* ---- message content ---- */

/*
 * splitmix64's finalizer is a bijection, so every (connection, message) pair
 * below 2^24 connections and 2^40 messages gets a tag of its own.
 */
static uint64_t mix(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t message_tag(long conn, uint64_t seq)
{
    return mix((uint64_t)conn << 40 ^ seq);
}

static unsigned char tag_byte(uint64_t tag, size_t off)
{
    return (unsigned char)(tag >> (off * 8));
}

/* Where in the pattern message `tag` takes its bytes from (those past the tag). */
static const unsigned char *message_body(uint64_t tag)
{
    return pattern + (tag >> 32) % WINDOW;
}

static unsigned char message_byte(uint64_t tag, size_t off)
{
    return off < TAG ? tag_byte(tag, off) : message_body(tag)[off];
}

/* How many of the len bytes at got, bytes off.. of message tag, are right before a wrong one. */
static size_t message_check(uint64_t tag, size_t off, const unsigned char *got, size_t len)
{
    size_t i = 0;
    for (; i < len && off + i < TAG; i++)
        if (got[i] != tag_byte(tag, off + i))
            return i;
    const unsigned char *want = message_body(tag) + off;
    if (i == len || memcmp(got + i, want + i, len - i) == 0)
        return len;
    while (got[i] == want[i])           /* only on a mismatch: find it for the report */
        i++;
    return i;
}

static int make_pattern(size_t size)
{
    pattern = malloc(size + WINDOW);
    if (pattern == NULL)
        return -1;
    for (size_t i = 0; i < size + WINDOW; i++)
        pattern[i] = (unsigned char)(mix(i / 8) >> (i % 8 * 8));
    return 0;
}

/* ---- latency ---- */

static void hist_add(struct hist *h, uint64_t us)
{
    unsigned s = 0;
    while ((us >> s) >= 2 * SUB)
        s++;
    h->count[s == 0 ? us : s * SUB + (us >> s)]++;
    h->n++;
    if (us > h->max)
        h->max = us;
}

static unsigned long long hist_percentile(const struct hist *h, unsigned pct)
{
    unsigned long long rank = (h->n * pct + 99) / 100, seen = 0;
    for (unsigned b = 0; b < BUCKETS && h->n > 0; b++) {
        if ((seen += h->count[b]) < rank)
            continue;
        if (b < 2 * SUB)
            return b;
        unsigned s = b / SUB - 1;
        unsigned long long mid = ((unsigned long long)(b % SUB + SUB) << s) + (1ULL << s) / 2;
        return mid < h->max ? mid : h->max;
    }
    return 0;
}

/* ---- connecting ---- */

/* Start a non-blocking connect; it finishes in open_connections(). */
static void start_connect(struct conn *c, const struct addrinfo *ai)
{
    int one = 1;

    c->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (c->fd < 0 || net_set_nonblocking(c->fd) < 0) {
        conn_fail(NULL, c, "socket: %s", strerror(errno));
        return;
    }
    /* Small messages must go out now, not wait for Nagle to gather more. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_CONNECTING;
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        c->state = C_OPEN;
    else if (errno != EINPROGRESS && errno != EINTR)    /* EINTR: it goes on anyway */
        conn_fail(NULL, c, "connect to %s: %s", target, strerror(errno));
}

/* Open conns[0..n), at most MAX_CONNECTING at a time, within --timeout. */
static long open_connections(struct conn *cs, long n, const struct addrinfo *ai)
{
    struct pollfd wait[MAX_CONNECTING];
    long who[MAX_CONNECTING], next = 0, opened = 0;
    nfds_t pending = 0;
    long long deadline = trace_now_us() + opt_timeout * 1000000LL;

    while ((next < n || pending > 0) && !atomic_load(&stop_requested)) {
        while (pending < MAX_CONNECTING && next < n) {
            struct conn *c = &cs[next];
            start_connect(c, ai);
            opened += c->state == C_OPEN;
            if (c->state == C_CONNECTING) {
                wait[pending] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
                who[pending++] = next;
            }
            next++;
        }
        long long left = deadline - trace_now_us();
        if (left <= 0)
            break;
        if (poll(wait, pending, (int)(((left < TICK_US ? left : TICK_US) + 999) / 1000)) <= 0)
            continue;                   /* EINTR or the tick: look at the clock again */
        for (nfds_t i = pending; i-- > 0;) {
            if (wait[i].revents == 0)
                continue;
            struct conn *c = &cs[who[i]];
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err != 0)
                conn_fail(NULL, c, "connect to %s: %s", target, strerror(err));
            else
                c->state = C_OPEN, opened++;
            pending--;                  /* fill the hole with the last entry */
            wait[i] = wait[pending];
            who[i] = who[pending];
        }
    }
    for (long i = 0; i < n; i++)
        if (cs[i].state == C_WAITING || cs[i].state == C_CONNECTING)
            conn_fail(NULL, &cs[i], "connect to %s: %s", target,
                      atomic_load(&stop_requested) ? "interrupted" : "timed out");
    return opened;
}

/* ---- ping-pong ---- */

/* May c start message seq, `extra` new messages being already on their way? */
static int may_start(const struct group *g, const struct conn *c, uint64_t seq, uint64_t extra)
{
    const struct load *l = &g->load;
    return seq - c->recv_seq < l->pipeline && (l->per_conn == 0 || seq < l->per_conn) &&
           (!l->limited || g->started + extra < l->total);
}

/*
 * Send what the pipeline allows: the rest of the current message, then new
 * ones, straight from their tags and the pattern. If the kernel takes less,
 * watch for writability until it has taken it all.
 */
static void conn_send(struct group *g, struct conn *c)
{
    const size_t size = g->load.size;
    struct iovec iov[MAX_IOV];
    unsigned char tags[MAX_IOV][TAG];   /* one per message: a message takes one or two iovecs */
    int niov = 0, nmsg = 0;
    size_t offered = 0, off = c->send_off;
    uint64_t seq = c->send_seq;

    while (niov + 2 <= MAX_IOV &&
           (off > 0 || may_start(g, c, seq, seq - c->send_seq - (c->send_off > 0)))) {
        uint64_t tag = message_tag(c->id, seq);
        unsigned char *t = tags[nmsg++];
        size_t head = size < TAG ? size : TAG;
        for (size_t k = 0; k < head; k++)
            t[k] = tag_byte(tag, k);
        if (off < head)
            iov[niov++] = (struct iovec){ .iov_base = t + off, .iov_len = head - off };
        if (size > TAG) {
            size_t from = off > TAG ? off : TAG;
            iov[niov++] = (struct iovec){ .iov_base = (void *)(message_body(tag) + from),
                                          .iov_len = size - from };
        }
        offered += size - off;
        seq++, off = 0;
    }
    if (offered == 0) {
        poller_watch_out(&g->poller, c, 0);
        return;
    }
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = niov };
    long long now = trace_now_us();     /* latency includes the send itself */
    ssize_t n;
    do
        n = sendmsg(c->fd, &msg, IO_SEND_FLAGS);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(g, c, "send: %s", strerror(errno));
        else
            poller_watch_out(&g->poller, c, 1);
        return;
    }
    /* Only what the kernel took counts; the rest is offered again next time. */
    for (size_t left = (size_t)n; left > 0;) {
        if (c->send_off == 0) {
            c->sent_at[c->send_seq % g->load.pipeline] = now;
            g->started++;
        }
        size_t take = size - c->send_off < left ? size - c->send_off : left;
        c->send_off += take;
        left -= take;
        if (c->send_off == size)
            c->send_seq++, c->send_off = 0;
    }
    if (poller_watch_out(&g->poller, c, (size_t)n < offered) < 0)
        conn_fail(g, c, "watching for writability: %s", strerror(errno));
}

/* Read what has come, check it against what was sent, and send the next. */
static void conn_receive(struct group *g, struct conn *c)
{
    const size_t size = g->load.size;
    ssize_t n = io_read(c->fd, g->scratch, CHUNK);
    if (n <= 0) {
        if (n == 0)
            conn_fail(g, c, "the server closed the connection");
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(g, c, "receive: %s", strerror(errno));
        return;
    }
    uint64_t owed = (c->send_seq - c->recv_seq) * size + c->send_off - c->recv_off;
    if ((uint64_t)n > owed) {
        conn_fail(g, c, "the server sent %llu bytes more than it was sent",
                  (unsigned long long)((uint64_t)n - owed));
        return;
    }
    long long now = 0;
    for (size_t i = 0; i < (size_t)n;) {
        uint64_t tag = message_tag(c->id, c->recv_seq);
        size_t take = size - c->recv_off < (size_t)n - i ? size - c->recv_off : (size_t)n - i;
        size_t good = message_check(tag, c->recv_off, g->scratch + i, take);
        if (good < take) {
            size_t at = c->recv_off + good;
            conn_fail(g, c, "mismatch in message %llu at offset %zu: got 0x%02x, expected 0x%02x",
                      (unsigned long long)c->recv_seq, at, g->scratch[i + good],
                      message_byte(tag, at));
            return;
        }
        i += take;
        c->recv_off += take;
        if (c->recv_off == size) {
            if (now == 0)
                now = trace_now_us();
            hist_add(&g->hist, (uint64_t)(now - c->sent_at[c->recv_seq % g->load.pipeline]));
            g->completed++;
            c->recv_seq++;
            c->recv_off = 0;
            if (g->load.per_conn != 0 && c->recv_seq == g->load.per_conn) {
                poller_forget(&g->poller, c);   /* left open, but no longer watched */
                c->state = C_DONE;
                g->open--;
                return;
            }
        }
    }
    conn_send(g, c);
}

/* A connection that owes an echo and has waited --timeout for it fails. */
static void check_timeouts(struct group *g, long long now)
{
    for (long i = 0; i < g->n; i++) {
        struct conn *c = &g->conns[i];
        int owed = c->send_seq != c->recv_seq || c->send_off > 0;
        if (c->state == C_OPEN && owed &&
            now - c->sent_at[c->recv_seq % g->load.pipeline] > opt_timeout * 1000000LL)
            conn_fail(g, c, "no echo within %ld s", opt_timeout);
    }
}

/* Drive the group's connections until the load says stop. */
static void run_group(struct group *g)
{
    const struct load *l = &g->load;
    long long next_tick = 0;

    for (long i = 0; i < g->n; i++)
        if (g->conns[i].state == C_OPEN)
            conn_send(g, &g->conns[i]);
    for (;;) {
        long long now = trace_now_us();
        if (now >= next_tick) {
            check_timeouts(g, now);
            next_tick = now + TICK_US;
        }
        if (g->open == 0 || now >= l->end || (l->stoppable && atomic_load(&stop_requested)) ||
            (l->limited && g->completed >= l->total))
            break;
        /* Look first without sleeping: a wait that finds nothing is time the server set. */
        int n = poller_wait(&g->poller, 0);
        if (n == 0) {
            if (!l->spin) {
                long long left = (l->end < next_tick ? l->end : next_tick) - now;
                n = poller_wait(&g->poller, (int)((left + 999) / 1000));
            }
            g->waited_us += trace_now_us() - now;
        }
        if (n < 0 && errno != EINTR) {
            int err = errno;
            for (long i = 0; i < g->n; i++)
                if (g->conns[i].state == C_OPEN)
                    conn_fail(g, &g->conns[i], "waiting for events: %s", strerror(err));
            break;
        }
        for (int i = 0; i < n; i++) {
            int in, out;
            struct conn *c = poller_ready(&g->poller, i, &in, &out);
            if (in && c->state == C_OPEN)
                conn_receive(g, c);
            if (out && c->state == C_OPEN)
                conn_send(g, c);
        }
    }
    g->finished_at = trace_now_us();
}

static atomic_long workers_left;        /* threads still in run_group */

static void *run_thread(void *arg)
{
    run_group(arg);
    atomic_fetch_sub(&workers_left, 1);
    return NULL;
}

/*
 * Hold the group's connections idle until `until`, or a signal, or (with
 * while_workers) the worker threads are done, still noticing any the server
 * closes: nothing is owed on them, so any input is an error.
 */
static void hold_idle(struct group *g, long long until, int while_workers)
{
    for (long long now; (now = trace_now_us()) < until && !atomic_load(&stop_requested) &&
                        (!while_workers || atomic_load(&workers_left) > 0);) {
        long long left = until - now < TICK_US ? until - now : TICK_US;
        int n = poller_wait(&g->poller, (int)((left + 999) / 1000));
        for (int i = 0; i < n; i++) {
            int in, out;
            struct conn *c = poller_ready(&g->poller, i, &in, &out);
            if (c->state == C_OPEN)
                conn_receive(g, c);
        }
    }
}

/* ---- setting up, and the results ---- */

/* Give a group conns[first..first+n) and watch the open ones. -1 (said on stderr) if it cannot. */
static int group_init(struct group *g, long first, long n, struct load load)
{
    g->conns = conns + first;
    g->n = n;
    g->load = load;
    if (poller_init(&g->poller, n) < 0) {
        fprintf(stderr, "loadgen: cannot make a poller: %s\n", strerror(errno));
        return -1;
    }
    for (long i = 0; i < n; i++) {
        struct conn *c = &g->conns[i];
        if (c->state != C_OPEN)
            continue;
        if (poller_add(&g->poller, c) < 0)
            conn_fail(NULL, c, "watching the connection: %s", strerror(errno));
        else
            g->open++;
    }
    return 0;
}

static int compare_counts(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Echoes per active connection: min, lower median, max, and Jain's index. */
static void fairness(uint64_t out[3], double *jain)
{
    uint64_t *counts = malloc((size_t)nactive * sizeof *counts);
    double sum = 0, squares = 0;

    *jain = 0;
    out[0] = out[1] = out[2] = 0;
    if (counts == NULL)
        return;
    for (long i = 0; i < nactive; i++) {
        counts[i] = conns[i].recv_seq;
        sum += (double)counts[i];
        squares += (double)counts[i] * (double)counts[i];
    }
    qsort(counts, (size_t)nactive, sizeof *counts, compare_counts);
    out[0] = counts[0];
    out[1] = counts[(nactive - 1) / 2];
    out[2] = counts[nactive - 1];
    if (squares > 0)
        *jain = sum * sum / ((double)nactive * squares);
    free(counts);
}

/* --idle: hold every connection, then one echo on each. */
static void run_idle(struct group *g, long opened)
{
    long echoed = 0;

    printf("connected=%ld\n", opened);
    fflush(stdout);                     /* a test waits for this line before it acts */
    hold_idle(g, trace_now_us() + opt_hold * 1000000LL, 0);
    g->load.end = trace_now_us() + opt_timeout * 1000000LL;
    run_group(g);
    for (long i = 0; i < g->n; i++) {
        if (g->conns[i].state == C_OPEN)
            conn_fail(g, &g->conns[i], "no echo within %ld s", opt_timeout);
        echoed += g->conns[i].state == C_DONE;
    }
    printf("idle connections=%ld opened=%ld echoed=%ld errors=%llu\n", g->n, opened, echoed,
           errors);
}

/* Ping-pong on the active connections over T threads, the idle ones held meanwhile. */
static int run_pingpong(struct group *workers, long nthreads, struct group *idle, long long begin)
{
    struct load load = { .size = (size_t)opt_size, .pipeline = (size_t)opt_pipeline,
                         .limited = opt_requests > 0, .stoppable = 1, .spin = opt_spin != 0 };
    unsigned long long total = (unsigned long long)opt_requests;
    sigset_t stops, old;
    long created = 0;

    load.end = begin + opt_duration * 1000000LL;
    for (long t = 0; t < nthreads; t++) {
        long first = nactive * t / nthreads, last = nactive * (t + 1) / nthreads;
        load.total = total * (unsigned long long)(t + 1) / (unsigned long long)nthreads -
                     total * (unsigned long long)t / (unsigned long long)nthreads;
        if (group_init(&workers[t], first, last - first, load) < 0)
            return -1;
    }
    /* Signals go to the main thread, whose waits they cut short; workers see the flag. */
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stops, &old);
    atomic_store(&workers_left, nthreads);
    for (; created < nthreads; created++) {
        int err = pthread_create(&workers[created].thread, NULL, run_thread, &workers[created]);
        if (err != 0) {
            fprintf(stderr, "loadgen: cannot start a thread: %s\n", strerror(err));
            atomic_store(&stop_requested, 1);   /* the others stop at once */
            atomic_fetch_sub(&workers_left, nthreads - created);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (idle->n > 0)
        hold_idle(idle, load.end, 1);
    for (long t = 0; t < created; t++)
        pthread_join(workers[t].thread, NULL);
    return created == nthreads ? 0 : -1;
}

/* After ping-pong: each idle connection must still be there and echo once. */
static void check_idle(struct group *idle)
{
    idle->load.end = trace_now_us() + opt_timeout * 1000000LL;
    run_group(idle);
    for (long i = 0; i < idle->n; i++)
        if (idle->conns[i].state == C_OPEN)
            conn_fail(idle, &idle->conns[i], "no echo within %ld s", opt_timeout);
}

static void report(const struct group *workers, long nthreads, long long begin)
{
    struct hist *h = calloc(1, sizeof *h);
    unsigned long long completed = 0;
    long long finished = begin, waited = 0;
    uint64_t counts[3];
    double jain;

    if (h == NULL) {
        fprintf(stderr, "loadgen: out of memory for the report\n");
        return;
    }
    for (long t = 0; t < nthreads; t++) {
        const struct group *g = &workers[t];
        completed += g->completed;
        waited += g->waited_us;
        if (g->finished_at > finished)
            finished = g->finished_at;
        for (unsigned b = 0; b < BUCKETS; b++)
            h->count[b] += g->hist.count[b];
        h->n += g->hist.n;
        if (g->hist.max > h->max)
            h->max = g->hist.max;
    }
    fairness(counts, &jain);
    double seconds = (double)(finished - begin) / 1e6;
    printf("connections=%ld size=%ld pipeline=%ld requests=%llu seconds=%.2f rps=%.0f "
           "p50_us=%llu p99_us=%llu max_us=%llu errors=%llu idle_extra=%ld "
           "echoes_min=%llu echoes_median=%llu echoes_max=%llu jain=%.4f wait_share=%.2f\n",
           nactive, opt_size, opt_pipeline, completed, seconds,
           seconds > 0 ? (double)completed / seconds : 0.0, hist_percentile(h, 50),
           hist_percentile(h, 99), h->max, errors, nall - nactive,
           (unsigned long long)counts[0], (unsigned long long)counts[1],
           (unsigned long long)counts[2], jain,
           finished > begin ? (double)waited / (double)nthreads / (double)(finished - begin) : 0.0);
    free(h);
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "loadgen",
        .about = "Load an echo server with concurrent connections; check every echo, report latency.",
        .options = options,
        .is_client = 1,
    };
    int rc = cli_parse(&cli, argc, argv);
    if (rc != CLI_OK)
        return cli_exit_code(&cli, rc);
    if (opt_idle && (opt_idle_extra || opt_spin || opt_threads > 1)) {
        fprintf(stderr, "loadgen: --idle takes none of --idle-extra, --spin, --threads "
                        "(try --help)\n");
        return 2;
    }

    /* SIGPIPE would kill us on the first reset connection; EPIPE is handled instead.
     * No SA_RESTART: a signal interrupts a wait so the flag is seen at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    nactive = opt_connections;
    nall = nactive + opt_idle_extra;
    long nthreads = opt_threads < nactive ? opt_threads : nactive;
    /* stdin, stdout, stderr, the pollers and a few for the resolver besides the connections. */
    long limit = net_raise_fd_limit();
    if (limit >= 0 && limit < nall + nthreads + 16) {
        fprintf(stderr, "loadgen: the open-file limit is %ld, too low for %ld connections "
                        "(raise it with ulimit -n)\n", limit, nall);
        return 1;
    }

    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", cli.port);
    int gai = getaddrinfo(cli.host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s: %s\n", cli.host,
                gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return 1;
    }
    net_format_addr(ai->ai_addr, ai->ai_addrlen, target, sizeof target);

    long long *sent_at = calloc((size_t)nall * (size_t)opt_pipeline, sizeof *sent_at);
    conns = calloc((size_t)nall, sizeof *conns);
    struct group *groups = calloc((size_t)nthreads + 1, sizeof *groups);    /* + the idle one */
    if (sent_at == NULL || conns == NULL || groups == NULL ||
        make_pattern((size_t)(opt_size > IDLE_MESSAGE ? opt_size : IDLE_MESSAGE)) < 0) {
        fprintf(stderr, "loadgen: out of memory for %ld connections\n", nall);
        free(sent_at), free(conns), free(groups), freeaddrinfo(ai);
        return 1;
    }
    for (long i = 0; i < nall; i++)
        conns[i] = (struct conn){ .fd = -1, .id = i, .sent_at = sent_at + i * opt_pipeline };
#ifdef USE_EPOLL
    for (long t = 0; t <= nthreads; t++)
        groups[t].poller.epfd = -1;
#endif

    /* The idle ones first: they are there before the first message is sent. */
    long opened = open_connections(conns + nactive, nall - nactive, ai);
    opened += open_connections(conns, nactive, ai);
    freeaddrinfo(ai);
    TRACE("opened %ld of %ld connections", opened, nall);

    struct group *idle = &groups[nthreads];
    struct load check = { .size = IDLE_MESSAGE, .pipeline = 1, .per_conn = 1 };
    int failed = 0;
    if (opt_idle) {
        failed = group_init(idle, 0, nall, check) < 0;
        if (!failed)
            run_idle(idle, opened);
    } else {
        long long begin = trace_now_us();
        failed = group_init(idle, nactive, nall - nactive, check) < 0 ||
                 run_pingpong(groups, nthreads, idle, begin) < 0;
        if (!failed) {
            check_idle(idle);
            report(groups, nthreads, begin);
        }
    }
    if (errors > 0)
        fprintf(stderr, "loadgen: %llu errors; the first: %s\n", errors, first_error);

    for (long i = 0; i < nall; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    for (long t = 0; t <= nthreads; t++)
        poller_free(&groups[t].poller);
    free(groups);
    free(pattern);
    free(sent_at);
    free(conns);
    return errors > 0 || failed ? 1 : 0;
}
