/*
 * Chapter 06 — poll: select without the FD_SETSIZE ceiling.
 *
 * poll() takes an array of {descriptor, events wanted} and fills in the
 * events that happened (revents). Unlike an fd_set, the array is as long as
 * we need, so a descriptor numbered 1024 or 100,000 is no problem, and the
 * kernel looks only at the descriptors listed, not at every number up to the
 * highest.
 *
 * The cost model is still O(n) per call, with n the number of connections:
 * the whole array is copied into the kernel, every socket in it is asked for
 * its state (and, if none is ready, has the thread put on its wait queue and
 * taken off again), the array is copied back, and we scan it for revents.
 * With 10,000 mostly idle connections, each wakeup for one ready socket costs
 * 10,000 checks. Chapter 07's epoll keeps the interest list in the kernel and
 * returns only the ready ones.
 *
 * The echo logic is conn.c from chapter 04; only the I/O model changed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "contract.h"
#include "net.h"
#include "trace.h"

/* Accept up to a batch of waiting clients. Returns -1 if the listener broke. */
static int accept_clients(int listen_fd)
{
    for (int i = 0; i < CONN_ACCEPT_BATCH; i++) {
        int fd = conn_accept(listen_fd);
        if (fd < 0)
            return net_accept_action(errno) == NET_ACCEPT_FATAL ? -1 : 0;
        conn_open(fd);          /* NULL when out of memory: fd is closed */
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 06: an echo server that waits for readiness with poll().",
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

    struct pollfd *fds = NULL;
    size_t capacity = 0;
    int failed = 0;
    while (!contract_stop && !failed) {
        /* The array lists what we wait for: the listener, the stop pipe, and
         * each connection with the events it wants now. */
        size_t needed = (size_t)conn_max_fd() + 3, count = 0;
        if (needed > capacity) {
            struct pollfd *grown = realloc(fds, needed * sizeof *grown);
            if (grown == NULL) {
                fprintf(stderr, "server: out of memory\n");
                failed = 1;
                break;
            }
            fds = grown;
            capacity = needed;
        }
        fds[count++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
        fds[count++] = (struct pollfd){ .fd = stop_fd, .events = POLLIN };
        for (int fd = 0; fd <= conn_max_fd(); fd++) {
            struct conn *c = conn_of(fd);
            if (c == NULL)
                continue;
            int wants = conn_wants(c);
            fds[count++] = (struct pollfd){
                .fd = fd,
                .events = (short)(((wants & CONN_WANT_READ) ? POLLIN : 0) |
                                  ((wants & CONN_WANT_WRITE) ? POLLOUT : 0)),
            };
        }

        int ready = poll(fds, (nfds_t)count, -1);   /* sleeps */
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            fprintf(stderr, "server: poll: %s\n", strerror(errno));
            failed = 1;
            break;
        }

        /* Scan the whole array to find the ready ones. */
        for (size_t i = 2; i < count; i++) {
            short revents = fds[i].revents;
            /* POLLHUP/POLLERR: let the read or send report what happened. */
            int events = ((revents & (POLLIN | POLLHUP | POLLERR)) ? CONN_READABLE : 0) |
                         ((revents & POLLOUT) ? CONN_WRITABLE : 0);
            struct conn *c = conn_of(fds[i].fd);
            if (events != 0 && conn_service(c, events) == 0)
                conn_close(c);
        }
        /* Accept last: a new client may reuse a number closed just above. */
        if ((fds[0].revents & POLLIN) && accept_clients(listen_fd) < 0) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            failed = 1;
        }
    }

    free(fds);
    close(listen_fd);
    conn_teardown();
    contract_summary(&cli, conn_accepted, conn_bytes_echoed);
    return failed;
}
