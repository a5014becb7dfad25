/*
 * Chapter 07 — epoll: the kernel keeps the list, and returns only what is ready.
 *
 * select and poll hand the kernel the whole list of descriptors on every call,
 * and the kernel checks each one: O(n) per wakeup. epoll splits that in two:
 *
 *   epoll_ctl(ADD/MOD/DEL)  change the interest list, once, when it changes;
 *                           the kernel hangs a callback on each socket.
 *   epoll_wait              sleep until the ready list is not empty; return
 *                           only the ready descriptors: O(ready), not O(n).
 *
 * When a packet arrives, the socket's callback puts it on the ready list; so
 * 10,000 idle connections cost nothing per wakeup.
 *
 * Two ways to be told (see the README for the long version):
 *   level-triggered (default)  "this socket IS readable": reported on every
 *       epoll_wait until drained. Like poll. We read once per report, and ask
 *       for EPOLLOUT only while echo is pending (one epoll_ctl then).
 *   edge-triggered (--edge)    "this socket BECAME readable": reported once per
 *       change. We register EPOLLIN|EPOLLOUT once and never touch it again,
 *       but each report must be drained until EAGAIN: bytes left unread would
 *       never be reported again, and the client would hang.
 * The listening socket stays level-triggered in both modes: we accept at most
 * a batch per wakeup, and with edge triggering the clients left in the queue
 * would never be announced again.
 *
 * The echo logic is conn.c from chapter 04; only the I/O model changed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "contract.h"
#include "net.h"
#include "trace.h"

#define MAX_EVENTS 256         /* ready descriptors taken per epoll_wait */

static int epoll_fd = -1;
static long edge_triggered;

/* What a connection that wants `wants` should be registered for. */
static uint32_t interest(int wants)
{
    if (edge_triggered)
        return EPOLLIN | EPOLLOUT | EPOLLET;    /* once, for good */
    return ((wants & CONN_WANT_READ) ? EPOLLIN : 0) | ((wants & CONN_WANT_WRITE) ? EPOLLOUT : 0);
}

static int watch(int fd, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    return epoll_ctl(epoll_fd, op, fd, &ev);
}

/* Leave the epoll set first, then close: the order the kernel expects. */
static void close_conn(struct conn *c)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    conn_close(c);
}

/* Accept up to a batch of waiting clients. Returns -1 if the listener broke. */
static int accept_clients(int listen_fd)
{
    for (int i = 0; i < CONN_ACCEPT_BATCH; i++) {
        int fd = conn_accept(listen_fd);
        if (fd < 0)
            return net_accept_action(errno) == NET_ACCEPT_FATAL ? -1 : 0;
        struct conn *c = conn_open(fd);     /* NULL when out of memory: fd is closed */
        if (c == NULL)
            continue;
        c->watching = (int)interest(CONN_WANT_READ);
        if (watch(fd, EPOLL_CTL_ADD, (uint32_t)c->watching) < 0) {
            TRACE("epoll_ctl fd=%d error=%s", fd, strerror(errno));
            conn_close(c);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct cli_option options[] = {
        { "--edge", NULL, "edge-triggered epoll (default: level-triggered)", 0, 1, &edge_triggered },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 07: an echo server on epoll, level- or edge-triggered.",
        .options = options,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    if (contract_catch_signals() < 0 || conn_setup() < 0) {
        perror("server: setup");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);
    if (listen_fd < 0 || net_set_nonblocking(listen_fd) < 0) {
        conn_teardown();
        return 1;
    }
    int stop_fd = contract_stop_fd();   /* readable once SIGINT/SIGTERM arrives */

    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0 || watch(listen_fd, EPOLL_CTL_ADD, EPOLLIN) < 0 ||
        watch(stop_fd, EPOLL_CTL_ADD, EPOLLIN) < 0) {
        perror("server: epoll");
        close(listen_fd);
        conn_teardown();
        return 1;
    }
    TRACE("epoll %s-triggered", edge_triggered ? "edge" : "level");

    struct epoll_event events[MAX_EVENTS];
    int failed = 0;
    while (!contract_stop && !failed) {
        int ready = epoll_wait(epoll_fd, events, MAX_EVENTS, -1);   /* sleeps */
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            fprintf(stderr, "server: epoll_wait: %s\n", strerror(errno));
            failed = 1;
            break;
        }

        /* Only the ready descriptors: no scan of the others. */
        int listener_ready = 0;
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            if (fd == listen_fd)
                listener_ready = 1;
            struct conn *c = conn_of(fd);
            if (c == NULL)
                continue;       /* the listener or the stop pipe */
            if (ev & (EPOLLERR | EPOLLHUP)) {
                /* 06 handed POLLHUP/POLLERR to the read, whose error then
                 * named the cause. Here the flag itself is enough: the server
                 * never shuts its own side, so a hang-up means the client
                 * reset or vanished, and no echo can reach it. Closing now
                 * saves a read or send that could only fail; the trace says
                 * "hangup" instead of the errno. Both ways are correct. */
                TRACE("hangup fd=%d%s", fd, (ev & EPOLLERR) ? " error" : "");
                close_conn(c);
                continue;
            }
            int wants = conn_service(c, ((ev & EPOLLIN) ? CONN_READABLE : 0) |
                                        ((ev & EPOLLOUT) ? CONN_WRITABLE : 0) |
                                        (edge_triggered ? CONN_DRAIN : 0));
            if (wants == 0) {
                close_conn(c);
            } else if ((int)interest(wants) != c->watching) {
                /* Level-triggered only, and only when the wish changes: never
                 * for an echo that went out at once. */
                c->watching = (int)interest(wants);
                if (watch(fd, EPOLL_CTL_MOD, (uint32_t)c->watching) < 0)
                    close_conn(c);
            }
        }
        /* Accept last: a new client may reuse a number closed just above. */
        if (listener_ready && accept_clients(listen_fd) < 0) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            failed = 1;
        }
    }

    close(epoll_fd);
    close(listen_fd);
    conn_teardown();
    contract_summary(&cli, conn_accepted, conn_bytes_echoed);
    return failed;
}
