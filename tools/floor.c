/*
 * floor: the fastest ping-pong load one CPU can offer an echo server, and
 * nothing else. It exists only to measure tools/loadgen against: if loadgen
 * gets as many echoes per second out of a server as this does, loadgen is not
 * what limits the figure.
 *
 *     floor [--connections N] [--size BYTES] [--duration SEC]
 *
 * Each connection sends SIZE bytes, waits until SIZE bytes have come back, and
 * sends again; one thread spins on epoll_wait with a zero timeout. It checks no
 * byte and keeps no latency: it prints
 *
 *     connections=50 size=16384 requests=312345 seconds=3.00 rps=104115
 *
 * Sends are blocking (a message is handed over whole, SO_SNDTIMEO bounds the
 * wait); reads are not. Exit 0, or 1 when a connection fails (it stops at the
 * first), 2 on a bad option. Linux only (epoll); elsewhere it says so and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trace.h"

#ifdef __linux__
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "io.h"
#include "net.h"

#define MAX_EVENTS 256

static long opt_connections = 1, opt_size = 64, opt_duration = 3;

static const struct cli_option options[] = {
    { "--connections", "N", "connections (default 1)", 1, 10000, &opt_connections },
    { "--size", "BYTES", "bytes per message (default 64)", 1, 1L << 20, &opt_size },
    { "--duration", "SEC", "seconds of load (default 3)", 1, 3600, &opt_duration },
    { 0 },
};

int main(int argc, char **argv)
{
    struct cli cli = { .program = "floor", .options = options, .is_client = 1,
                       .about = "Spin a ping-pong load on an echo server; check nothing." };
    int rc = cli_parse(&cli, argc, argv);
    if (rc != CLI_OK)
        return cli_exit_code(&cli, rc);
    signal(SIGPIPE, SIG_IGN);

    size_t size = (size_t)opt_size;
    char *msg = calloc(1, size), *buf = malloc(1 << 16);
    long *got = calloc((size_t)opt_connections, sizeof *got);     /* bytes of the echo so far */
    int *fds = calloc((size_t)opt_connections, sizeof *fds);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (msg == NULL || buf == NULL || got == NULL || fds == NULL || ep < 0) {
        perror("floor");
        return 1;
    }
    struct timeval tv = { .tv_sec = 5 };
    int one = 1, gai = 0;
    for (long i = 0; i < opt_connections; i++) {
        fds[i] = net_connect(cli.host, cli.port, &gai);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
        if (fds[i] < 0 || setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
            setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
            fprintf(stderr, "floor: connection %ld: %s\n", i, gai ? gai_strerror(gai) : strerror(errno));
            return 1;
        }
    }
    long long begin = trace_now_us(), end = begin + opt_duration * 1000000LL, now;
    unsigned long long echoes = 0;
    for (long i = 0; i < opt_connections; i++)
        if (io_send_all(fds[i], msg, size) < 0) {
            fprintf(stderr, "floor: send: %s\n", strerror(errno));
            return 1;
        }
    struct epoll_event ev[MAX_EVENTS];
    while ((now = trace_now_us()) < end) {
        int n = epoll_wait(ep, ev, MAX_EVENTS, 0);
        for (int k = 0; k < n; k++) {
            long i = (long)ev[k].data.u64;
            ssize_t r = recv(fds[i], buf, 1 << 16, MSG_DONTWAIT);
            if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                fprintf(stderr, "floor: connection %ld: %s\n", i, r == 0 ? "closed" : strerror(errno));
                return 1;
            }
            if (r > 0 && (got[i] += r) >= (long)size) {
                got[i] = 0;                 /* one message in flight: nothing more can come */
                echoes++;
                if (io_send_all(fds[i], msg, size) < 0) {
                    fprintf(stderr, "floor: send: %s\n", strerror(errno));
                    return 1;
                }
            }
        }
    }
    double seconds = (double)(now - begin) / 1e6;
    printf("connections=%ld size=%ld requests=%llu seconds=%.2f rps=%.0f\n", opt_connections,
           opt_size, echoes, seconds, (double)echoes / seconds);
    for (long i = 0; i < opt_connections; i++)
        close(fds[i]);
    close(ep);
    free(msg), free(buf), free(got), free(fds);
    return 0;
}
#else
int main(void)
{
    fprintf(stderr, "floor: needs epoll, which is Linux only\n");
    return 1;
}
#endif
