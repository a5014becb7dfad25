/*
 * Chapter 05 — select: sleep until the kernel says which sockets are ready.
 *
 * Chapter 04 asked every socket "anything for me?" in a tight loop. select()
 * turns the question around: we hand the kernel the sets of descriptors we
 * care about (readable? writable?), it puts us to sleep, and it wakes us when
 * at least one is ready, with the sets rewritten to say which. An idle server
 * now uses no CPU at all.
 *
 * The cost model: each call copies the bitmaps (two here: readable and
 * writable; the third, for exceptional conditions, is NULL) into the kernel, which then
 * checks every descriptor up to the highest one, and copies the bitmaps back;
 * we then scan them all again. O(highest descriptor) per call, however few are
 * ready. And an fd_set is a fixed bitmap of FD_SETSIZE bits (1024 on Linux):
 * FD_SET on a descriptor at or above it writes past the end of the set, which
 * is undefined behaviour. So a client whose descriptor is that high is refused
 * (closed, traced), and the server goes on serving everyone else. Chapter 06's
 * poll() has no such ceiling.
 *
 * The echo logic is conn.c from chapter 04; only the I/O model changed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
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
        if (fd >= FD_SETSIZE) {
            TRACE("refuse fd=%d reason=FD_SETSIZE", fd);
            close(fd);          /* it could never be put in an fd_set */
            continue;
        }
        conn_open(fd);          /* NULL when out of memory: fd is closed */
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 05: an echo server that waits for readiness with select().",
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

    int failed = 0;
    while (!contract_stop && !failed) {
        /* The sets are rebuilt before every call: select overwrites them. */
        fd_set readable, writable;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(listen_fd, &readable);
        FD_SET(stop_fd, &readable);
        int highest = listen_fd > stop_fd ? listen_fd : stop_fd;
        for (int fd = 0; fd <= conn_max_fd(); fd++) {
            struct conn *c = conn_of(fd);
            if (c == NULL)
                continue;
            int wants = conn_wants(c);
            if (wants & CONN_WANT_READ)
                FD_SET(fd, &readable);
            if (wants & CONN_WANT_WRITE)
                FD_SET(fd, &writable);
            if (fd > highest)
                highest = fd;
        }

        int ready = select(highest + 1, &readable, &writable, NULL, NULL);   /* sleeps */
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            fprintf(stderr, "server: select: %s\n", strerror(errno));
            failed = 1;
            break;
        }

        /* Scan every descriptor again to find the ready ones. */
        for (int fd = 0; fd <= conn_max_fd(); fd++) {
            struct conn *c = conn_of(fd);
            if (c == NULL)
                continue;
            int events = (FD_ISSET(fd, &readable) ? CONN_READABLE : 0) |
                         (FD_ISSET(fd, &writable) ? CONN_WRITABLE : 0);
            if (events != 0 && conn_service(c, events) == 0)
                conn_close(c);
        }
        /* Accept last: a new client may reuse a number closed just above. */
        if (FD_ISSET(listen_fd, &readable) && accept_clients(listen_fd) < 0) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            failed = 1;
        }
    }

    close(listen_fd);
    conn_teardown();
    contract_summary(&cli, conn_accepted, conn_bytes_echoed);
    return failed;
}
