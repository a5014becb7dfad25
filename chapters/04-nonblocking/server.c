/*
 * Chapter 04 — nonblocking: one thread, every socket in O_NONBLOCK.
 *
 * A call on a non-blocking socket never waits: when it cannot make progress it
 * fails at once with EAGAIN ("try again later"). So one thread can serve every
 * client by trying each socket in turn, forever:
 *
 *     loop:  accept whoever is waiting;  for each client: read, send back
 *
 * It works, for any number of clients, and no client can stall another. But
 * the loop never sleeps: with nothing to do it asks every socket again and
 * again, and an idle server burns a whole core. Chapter 05 asks the kernel
 * which sockets are ready instead, and sleeps until one is.
 *
 * The per-connection echo logic lives in conn.c; chapters 05-07 link it too,
 * so what changes from here on is only the I/O model, in this file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
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
        .about = "Chapter 04: a non-blocking echo server that busy-polls every socket.",
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

    int failed = 0;
    while (!contract_stop && !failed) {
        if (accept_clients(listen_fd) < 0) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            failed = 1;
        }
        /* Try every client, ready or not: most of these calls are EAGAIN. */
        for (int fd = 0; fd <= conn_max_fd(); fd++) {
            struct conn *c = conn_of(fd);
            if (c != NULL && conn_service(c, CONN_READABLE | CONN_WRITABLE) == 0)
                conn_close(c);
        }
    }

    close(listen_fd);
    conn_teardown();
    contract_summary(&cli, conn_accepted, conn_bytes_echoed);
    return failed;
}
