/*
 * Chapter 01 — blocking: the iterative echo server.
 *
 * One loop: accept a client, echo until it leaves, then accept the next. Every
 * call blocks (accept waits for a client, read waits for bytes, send waits for
 * room in the socket's send buffer), so while one client is connected every
 * other client waits in the kernel's listen queue. That is the whole model,
 * and the reason for every chapter after this one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "echo.h"
#include "contract.h"
#include "net.h"
#include "trace.h"

static unsigned long long connections_served, bytes_echoed;

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 01: a blocking echo server that serves one client at a time.",
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    if (contract_catch_signals() < 0) {
        perror("server: sigaction");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);
    if (listen_fd < 0)
        return 1;

    /*
     * A SIGTERM that lands after the check of contract_stop but before accept()
     * or read() starts waiting would not be noticed until that call returns by
     * itself. So the signal handler also shuts down the sockets we may be
     * blocked on (see contract.h), which wakes the call whenever it lands.
     */
    contract_wake_on_stop(listen_fd, -1);
    while (!contract_stop) {
        char peer[NET_ADDRSTRLEN];
        int fd = contract_accept(listen_fd, peer, sizeof peer);   /* blocks until a client */
        if (fd < 0 && !contract_stop && net_accept_action(errno) == NET_ACCEPT_FATAL) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            break;
        }
        if (fd < 0)
            continue;           /* EINTR lands here too: the loop re-checks contract_stop */
        TRACE("accept fd=%d peer=%s", fd, peer);
        connections_served++;
        contract_wake_on_stop(listen_fd, fd);
        /* A stop that came before fd was named (since accept returned) had
         * nothing to wake; one after this check will shut fd down. */
        if (!contract_stop)
            bytes_echoed += echo_until_eof(fd);   /* every other client waits meanwhile */
        contract_wake_on_stop(listen_fd, -1);
        close(fd);
        TRACE("close fd=%d", fd);
    }

    close(listen_fd);
    contract_summary(&cli, connections_served, bytes_echoed);
    return contract_stop ? 0 : 1;
}
