/*
 * loadgen: drive an echo server with many concurrent connections and measure it.
 *
 *     loadgen [--connections N] [--size BYTES] [--pipeline K]
 *             [--duration SEC] [--requests N] [--timeout SEC]
 *     loadgen --idle [--connections N] [--hold SEC] [--timeout SEC]
 *
 * Ping-pong (the default): each connection sends a message of SIZE bytes
 * (K of them in flight with --pipeline K), waits for its whole echo, checks
 * every byte, and goes again, until --duration seconds pass or --requests
 * echoes have come back in all. It prints one line:
 *
 *     connections=100 size=64 pipeline=1 requests=123456 seconds=3.00 rps=41152
 *     p50_us=1600 p99_us=3200 max_us=9000 errors=0            (on one line)
 *
 * Latency runs from a message's first byte sent to the last byte of its
 * echo received. Idle (--idle): open N connections, print "connected=N",
 * leave them idle for --hold seconds (SIGTERM or SIGINT ends the hold early),
 * then send one 16-byte message on each, check the echoes and print
 * "idle connections=N opened=N echoed=N errors=0".
 *
 * A connection that is refused, reset or closed, echoes a wrong byte, or
 * waits --timeout seconds for an echo counts one error and stops; the others
 * go on. Exit status: 0 without errors, 1 with errors (the first is described
 * on stderr), 2 bad options.
 *
 * It is one thread around poll(). Each connection keeps only counters: the
 * bytes of a message are computed from (connection, message number, offset),
 * so checking an echo needs no copy of what was sent, and memory per
 * connection stays small whatever --size is.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "net.h"
#include "trace.h"

#define MAX_CONNECTING 256      /* connects in progress at once: the backlog may be short */
#define CHUNK 65536             /* the most one send() or read() moves */
#define IDLE_MESSAGE 16
#define TICK_US 100000          /* poll wakes at least this often to look at the clock */

static long opt_connections = 10, opt_size = 64, opt_duration = 3, opt_requests = 0,
            opt_pipeline = 1, opt_timeout = 5, opt_idle = 0, opt_hold = 0;

static const struct cli_option options[] = {
    { "--connections", "N", "concurrent connections (default 10)", 1, 100000, &opt_connections },
    { "--size", "BYTES", "bytes per message (default 64)", 1, 16L << 20, &opt_size },
    { "--duration", "SEC", "seconds of load (default 3)", 1, 3600, &opt_duration },
    { "--requests", "N", "stop after N echoes in all (default 0: no limit)",
      0, 1L << 30, &opt_requests },
    { "--pipeline", "K", "messages in flight per connection (default 1)", 1, 64, &opt_pipeline },
    { "--timeout", "SEC", "longest wait for a connect or an echo (default 5)",
      1, 600, &opt_timeout },
    { "--idle", NULL, "open, hold idle, then check one echo per connection", 0, 0, &opt_idle },
    { "--hold", "SEC", "with --idle: seconds to hold (default 0)", 0, 3600, &opt_hold },
    { 0 },
};

enum { C_WAITING, C_CONNECTING, C_OPEN, C_DONE, C_FAILED };

struct conn {
    int fd, state;
    uint64_t send_seq, recv_seq;        /* the message being sent, being received */
    size_t send_off, recv_off;          /* how much of each has gone or come */
    long long *sent_at;                 /* first-byte times, a ring indexed by seq */
};

/* What run_load() does: ping-pong, or the idle mode's one echo per connection. */
struct load {
    size_t size, pipeline;
    uint64_t per_conn;                  /* messages per connection; 0: no limit */
    unsigned long long total;           /* messages in all; 0: no limit */
    long long end;                      /* stop at this trace_now_us() */
    int stoppable;                      /* SIGINT/SIGTERM ends it early */
};

static struct conn *conns;
static long nconns;
static struct pollfd *pfds;             /* pfds[i] belongs to conns[i] */
static unsigned char scratch[CHUNK];
static char target[NET_ADDRSTRLEN];
static unsigned long long errors, started, completed;
static char first_error[300];
static volatile sig_atomic_t stop_requested;

static void on_stop(int signo)
{
    (void)signo;
    stop_requested = 1;
}

/* Count one error, keep the first for the report, and end the connection. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void conn_fail(struct conn *c, const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    TRACE("conn %ld: %s", (long)(c - conns), why);
    if (errors++ == 0)
        snprintf(first_error, sizeof first_error, "connection %ld: %s", (long)(c - conns), why);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_FAILED;
}

/*
 * Message content. splitmix64 is a bijection, so every (connection, message)
 * pair gets its own seed and its own first 8 bytes: an echo that went to the
 * wrong connection or is a stale copy fails the check at once. Mixing in the
 * offset catches bytes that are lost or repeated inside a message.
 */
static uint64_t message_seed(long conn, uint64_t seq)
{
    uint64_t z = ((uint64_t)conn << 40 ^ seq) + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static unsigned char message_byte(uint64_t seed, size_t off)
{
    return (unsigned char)((seed >> (off % 8 * 8)) ^ (off * 7) ^ (off >> 8));
}

/*
 * Latency histogram in bounded memory: values under 256 us have a bucket
 * each; above, every power of two is split into 128 buckets, so a bucket is
 * under 1/128 of its value wide and its midpoint is within 0.4%.
 */
#define SUB 128
#define BUCKETS (58 * SUB)
static unsigned long long hist[BUCKETS], hist_count, hist_max;

static void hist_add(uint64_t us)
{
    unsigned s = 0;
    while ((us >> s) >= 2 * SUB)
        s++;
    hist[s == 0 ? us : s * SUB + (us >> s)]++;
    hist_count++;
    if (us > hist_max)
        hist_max = us;
}

static unsigned long long hist_percentile(unsigned pct)
{
    unsigned long long rank = (hist_count * pct + 99) / 100, seen = 0;
    for (unsigned b = 0; b < BUCKETS && hist_count > 0; b++) {
        if ((seen += hist[b]) < rank)
            continue;
        if (b < 2 * SUB)
            return b;
        unsigned s = b / SUB - 1;
        unsigned long long mid = ((unsigned long long)(b % SUB + SUB) << s) + (1ULL << s) / 2;
        return mid < hist_max ? mid : hist_max;
    }
    return 0;
}

/* Start a non-blocking connect; it finishes in open_connections(). */
static void start_connect(struct conn *c, const struct addrinfo *ai)
{
    int one = 1;

    c->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (c->fd < 0 || net_set_nonblocking(c->fd) < 0) {
        conn_fail(c, "socket: %s", strerror(errno));
        return;
    }
    /* Small messages must go out now, not wait for Nagle to gather more. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_CONNECTING;
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        c->state = C_OPEN;
    else if (errno != EINPROGRESS && errno != EINTR)    /* EINTR: it goes on anyway */
        conn_fail(c, "connect to %s: %s", target, strerror(errno));
}

/* Open all connections, at most MAX_CONNECTING at a time, within --timeout. */
static long open_connections(const struct addrinfo *ai)
{
    struct pollfd wait[MAX_CONNECTING];
    long who[MAX_CONNECTING], next = 0, opened = 0;
    nfds_t pending = 0;
    long long deadline = trace_now_us() + opt_timeout * 1000000LL;

    while ((next < nconns || pending > 0) && !stop_requested) {
        while (pending < MAX_CONNECTING && next < nconns) {
            struct conn *c = &conns[next];
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
            struct conn *c = &conns[who[i]];
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err != 0)
                conn_fail(c, "connect to %s: %s", target, strerror(err));
            else
                c->state = C_OPEN, opened++;
            pending--;                  /* fill the hole with the last entry */
            wait[i] = wait[pending];
            who[i] = who[pending];
        }
    }
    for (long i = 0; i < nconns; i++)
        if (conns[i].state == C_WAITING || conns[i].state == C_CONNECTING)
            conn_fail(&conns[i], "connect to %s: %s", target,
                      stop_requested ? "interrupted" : "timed out");
    return opened;
}

/* May c start message seq, `extra` new messages being already on their way? */
static int may_start(const struct conn *c, uint64_t seq, uint64_t extra, const struct load *l)
{
    return seq - c->recv_seq < l->pipeline && (l->per_conn == 0 || seq < l->per_conn) &&
           (l->total == 0 || started + extra < l->total);
}

static void conn_send(struct conn *c, const struct load *l)
{
    uint64_t seq = c->send_seq;
    size_t off = c->send_off, fill = 0;

    /* Gather the rest of the current message and any new ones the pipeline allows. */
    while (fill < CHUNK && (off > 0 || may_start(c, seq, seq - c->send_seq - (c->send_off > 0), l))) {
        uint64_t seed = message_seed(c - conns, seq);
        while (off < l->size && fill < CHUNK)
            scratch[fill++] = message_byte(seed, off++);
        if (off == l->size)
            seq++, off = 0;
    }
    if (fill == 0)
        return;
    ssize_t n = io_send(c->fd, scratch, fill);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(c, "send: %s", strerror(errno));
        return;
    }
    /* Only what the kernel took counts; the rest is made again next time. */
    long long now = trace_now_us();
    for (size_t left = (size_t)n; left > 0;) {
        if (c->send_off == 0) {
            c->sent_at[c->send_seq % l->pipeline] = now;
            started++;
        }
        size_t take = l->size - c->send_off < left ? l->size - c->send_off : left;
        c->send_off += take;
        left -= take;
        if (c->send_off == l->size)
            c->send_seq++, c->send_off = 0;
    }
}

static void conn_receive(struct conn *c, const struct load *l)
{
    ssize_t n = io_read(c->fd, scratch, CHUNK);
    if (n <= 0) {
        if (n == 0)
            conn_fail(c, "the server closed the connection");
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(c, "receive: %s", strerror(errno));
        return;
    }
    uint64_t owed = (c->send_seq - c->recv_seq) * l->size + c->send_off - c->recv_off;
    if ((uint64_t)n > owed) {
        conn_fail(c, "the server sent %llu bytes more than it was sent",
                  (unsigned long long)((uint64_t)n - owed));
        return;
    }
    for (size_t i = 0; i < (size_t)n;) {
        uint64_t seed = message_seed(c - conns, c->recv_seq);
        for (; i < (size_t)n && c->recv_off < l->size; i++, c->recv_off++) {
            unsigned char want = message_byte(seed, c->recv_off);
            if (scratch[i] != want) {
                conn_fail(c, "mismatch in message %llu at offset %zu: got 0x%02x, expected 0x%02x",
                          (unsigned long long)c->recv_seq, c->recv_off, scratch[i], want);
                return;
            }
        }
        if (c->recv_off == l->size) {
            hist_add((uint64_t)(trace_now_us() - c->sent_at[c->recv_seq % l->pipeline]));
            completed++;
            c->recv_seq++;
            c->recv_off = 0;
            if (l->per_conn != 0 && c->recv_seq == l->per_conn)
                c->state = C_DONE;
        }
    }
}

/* Send and check messages on every open connection until the load says stop. */
static void run_load(const struct load *l)
{
    for (;;) {
        long long now = trace_now_us();
        long busy = 0;

        for (long i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            pfds[i].fd = -1;            /* poll() skips negative descriptors */
            pfds[i].revents = 0;
            if (c->state != C_OPEN)
                continue;
            int owed = c->send_seq != c->recv_seq || c->send_off > 0;
            if (owed && now - c->sent_at[c->recv_seq % l->pipeline] > opt_timeout * 1000000LL) {
                conn_fail(c, "no echo within %ld s", opt_timeout);
                continue;
            }
            int can_send = c->send_off > 0 || may_start(c, c->send_seq, 0, l);
            /* Always watch for input: a close or stray data is an error even then. */
            pfds[i].fd = c->fd;
            pfds[i].events = (short)(POLLIN | (can_send ? POLLOUT : 0));
            busy += owed || can_send;
        }
        if (busy == 0 || now >= l->end || (l->stoppable && stop_requested) ||
            (l->total != 0 && completed >= l->total))
            return;
        long long left = l->end - now < TICK_US ? l->end - now : TICK_US;
        int rc = poll(pfds, (nfds_t)nconns, (int)((left + 999) / 1000));
        if (rc < 0 && errno != EINTR) {
            for (long i = 0; i < nconns; i++)
                if (conns[i].state == C_OPEN)
                    conn_fail(&conns[i], "poll: %s", strerror(errno));
            return;
        }
        for (long i = 0; i < nconns && rc > 0; i++) {
            if (pfds[i].revents & (POLLIN | POLLERR | POLLHUP))
                conn_receive(&conns[i], l);
            if ((pfds[i].revents & POLLOUT) && conns[i].state == C_OPEN)
                conn_send(&conns[i], l);
        }
    }
}

/* --idle: hold the connections, still noticing any the server closes. */
static void hold_idle(const struct load *l, long long until)
{
    for (long long now; (now = trace_now_us()) < until && !stop_requested;) {
        for (long i = 0; i < nconns; i++)
            pfds[i] = (struct pollfd){ .fd = conns[i].state == C_OPEN ? conns[i].fd : -1,
                                       .events = POLLIN };
        long long left = until - now < TICK_US ? until - now : TICK_US;
        if (poll(pfds, (nfds_t)nconns, (int)((left + 999) / 1000)) <= 0)
            continue;
        for (long i = 0; i < nconns; i++)
            if (pfds[i].revents != 0)
                conn_receive(&conns[i], l);     /* nothing is owed: any input is an error */
    }
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

    /* SIGPIPE would kill us on the first reset connection; EPIPE is handled instead.
     * No SA_RESTART: a signal interrupts poll() so the flag is seen at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* stdin, stdout, stderr and a few for the resolver besides the connections. */
    long limit = net_raise_fd_limit();
    nconns = opt_connections;
    if (limit >= 0 && limit < nconns + 16) {
        fprintf(stderr, "loadgen: the open-file limit is %ld, too low for %ld connections "
                        "(raise it with ulimit -n)\n", limit, nconns);
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

    long long *sent_at = calloc((size_t)nconns * (size_t)opt_pipeline, sizeof *sent_at);
    conns = calloc((size_t)nconns, sizeof *conns);
    pfds = calloc((size_t)nconns, sizeof *pfds);
    if (sent_at == NULL || conns == NULL || pfds == NULL) {
        fprintf(stderr, "loadgen: out of memory for %ld connections\n", nconns);
        free(sent_at), free(conns), free(pfds), freeaddrinfo(ai);
        return 1;
    }
    for (long i = 0; i < nconns; i++)
        conns[i] = (struct conn){ .fd = -1, .sent_at = sent_at + i * opt_pipeline };

    long opened = open_connections(ai);
    freeaddrinfo(ai);
    TRACE("opened %ld of %ld connections", opened, nconns);

    if (opt_idle) {
        struct load check = { .size = IDLE_MESSAGE, .pipeline = 1, .per_conn = 1 };
        long echoed = 0;
        printf("connected=%ld\n", opened);
        fflush(stdout);                 /* a test waits for this line before it acts */
        hold_idle(&check, trace_now_us() + opt_hold * 1000000LL);
        check.end = trace_now_us() + opt_timeout * 1000000LL;
        run_load(&check);
        for (long i = 0; i < nconns; i++) {
            if (conns[i].state == C_OPEN)
                conn_fail(&conns[i], "no echo within %ld s", opt_timeout);
            echoed += conns[i].state == C_DONE;
        }
        printf("idle connections=%ld opened=%ld echoed=%ld errors=%llu\n",
               nconns, opened, echoed, errors);
    } else {
        struct load load = { .size = (size_t)opt_size, .pipeline = (size_t)opt_pipeline,
                             .total = (unsigned long long)opt_requests, .stoppable = 1 };
        long long begin = trace_now_us();
        load.end = begin + opt_duration * 1000000LL;
        if (opened > 0)
            run_load(&load);
        double seconds = opened > 0 ? (double)(trace_now_us() - begin) / 1e6 : 0;
        printf("connections=%ld size=%ld pipeline=%ld requests=%llu seconds=%.2f rps=%.0f "
               "p50_us=%llu p99_us=%llu max_us=%llu errors=%llu\n",
               nconns, opt_size, opt_pipeline, completed, seconds,
               seconds > 0 ? (double)completed / seconds : 0.0, hist_percentile(50),
               hist_percentile(99), hist_max, errors);
    }
    if (errors > 0)
        fprintf(stderr, "loadgen: %llu errors; the first: %s\n", errors, first_error);

    for (long i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(sent_at);
    free(conns);
    free(pfds);
    return errors > 0 ? 1 : 0;
}
