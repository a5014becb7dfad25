/*
 * Chapter 02 — fork: a process per client.
 *
 * The loop of chapter 01, except that after accept() the server forks: the
 * child echoes for that one client and exits, while the parent goes straight
 * back to accept(). Every client now has a process of its own, so a slow or
 * idle client blocks only its own process.
 *
 * What a forking server must get right, and where this file does it:
 *   - each process closes the descriptors it does not use (the parent its copy
 *     of the client socket, the child the listening socket), or connections
 *     never end and descriptors leak;
 *   - the parent reaps every child that exits (waitpid in a SIGCHLD handler),
 *     or each one stays a zombie in the process table;
 *   - processes share no memory, so a child reports its byte count to the
 *     parent through a pipe;
 *   - on SIGTERM the parent stops accepting, passes SIGTERM on to its
 *     children and waits for them, so none is left behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "echo.h"
#include "contract.h"
#include "io.h"
#include "net.h"
#include "trace.h"

static unsigned long long connections_served, bytes_echoed;

/*
 * The children still running. Both main() (adding) and the SIGCHLD handler
 * (removing) change this list, so main() blocks SIGCHLD while it touches it.
 */
static pid_t *children;
static size_t child_count, child_capacity;

/* Children write their byte count here (8 bytes, one write: atomic on a pipe). */
static int report_pipe[2] = { -1, -1 };

/* Add the bytes every finished child has reported. Safe in the handler. */
static void collect_reports(void)
{
    unsigned long long count;
    while (read(report_pipe[0], &count, sizeof count) == (ssize_t)sizeof count)
        bytes_echoed += count;
}

static void forget_child(pid_t pid)
{
    for (size_t i = 0; i < child_count; i++)
        if (children[i] == pid) {
            children[i] = children[--child_count];
            return;
        }
}

/* Reap every child that has exited, so none stays a zombie. */
static void on_sigchld(int signo)
{
    int saved = errno;      /* waitpid could change errno under main()'s feet */
    pid_t pid;
    (void)signo;
    while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
        forget_child(pid);
    collect_reports();
    errno = saved;
}

/* Hold back (SIG_BLOCK) or let through (SIG_UNBLOCK) SIGCHLD, and with
 * stop_too SIGINT and SIGTERM as well. */
static void hold_signals(int how, int stop_too)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (stop_too) {
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
    }
    sigprocmask(how, &set, NULL);
}

/* The child's whole life: echo like chapter 01, report, exit. */
static void serve_client(int fd)
{
    unsigned long long echoed = echo_until_eof(fd);

    contract_wake_on_stop(-1, -1);
    close(fd);
    TRACE("close fd=%d", fd);
    if (io_write_all(report_pipe[1], &echoed, sizeof echoed) < 0)
        TRACE("report lost: %s", strerror(errno));
}

/*
 * Fork a child to serve fd, with signals held back meanwhile:
 *   - SIGCHLD, so that its handler never sees the list of children half-changed;
 *   - SIGINT and SIGTERM, because the child is born with the parent's stop
 *     wake-up, which names the listener (contract_wake_on_stop), not its
 *     client. A stop handled before the child names its own socket would
 *     leave its read() asleep until the client leaves, and the parent waiting
 *     for it. Held back, the stop waits, and comes through the moment the
 *     child lets it, its socket named.
 */
static int start_child(int listen_fd, int fd)
{
    hold_signals(SIG_BLOCK, 1);
    if (child_count == child_capacity) {
        size_t capacity = child_capacity ? child_capacity * 2 : 64;
        pid_t *grown = realloc(children, capacity * sizeof *grown);
        if (grown == NULL) {
            hold_signals(SIG_UNBLOCK, 1);
            return -1;
        }
        children = grown;
        child_capacity = capacity;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: it serves this client only, with default SIGCHLD. */
        signal(SIGCHLD, SIG_DFL);
        close(listen_fd);
        close(report_pipe[0]);
        contract_wake_on_stop(-1, fd);     /* SIGTERM wakes this child's read */
        hold_signals(SIG_UNBLOCK, 1);      /* from here on a stop may come */
        serve_client(fd);
        free(children);
        close(report_pipe[1]);
        exit(0);
    }
    if (pid > 0)
        children[child_count++] = pid;
    hold_signals(SIG_UNBLOCK, 1);
    return pid < 0 ? -1 : 0;
}

/* Pass the stop on to every child and wait until all have exited. */
static void stop_children(void)
{
    hold_signals(SIG_BLOCK, 0);
    for (size_t i = 0; i < child_count; i++)
        kill(children[i], SIGTERM);
    while (child_count > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid > 0)
            forget_child(pid);
        else if (errno == ECHILD)
            break;
    }
    collect_reports();
}

static int setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;   /* accept() simply goes on */
    if (pipe(report_pipe) < 0 || net_set_nonblocking(report_pipe[0]) < 0 ||
        net_set_cloexec(report_pipe[0]) < 0 || net_set_cloexec(report_pipe[1]) < 0)
        return -1;
    return sigaction(SIGCHLD, &sa, NULL);
}

int main(int argc, char **argv)
{
    struct cli cli = {
        .program = "server",
        .about = "Chapter 02: an echo server that forks a process per client.",
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    if (contract_catch_signals() < 0 || setup() < 0) {
        perror("server: setup");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);
    if (listen_fd < 0)
        return 1;

    contract_wake_on_stop(listen_fd, -1);  /* SIGTERM wakes the parent's accept */
    while (!contract_stop) {
        char peer[NET_ADDRSTRLEN];
        int fd = contract_accept(listen_fd, peer, sizeof peer);
        if (fd < 0 && !contract_stop && net_accept_action(errno) == NET_ACCEPT_FATAL) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            break;
        }
        if (fd < 0)
            continue;
        TRACE("accept fd=%d peer=%s", fd, peer);
        if (start_child(listen_fd, fd) < 0) {
            TRACE("fork error=%s: closing fd=%d", strerror(errno), fd);
            close(fd);          /* out of processes: refuse this client, keep going */
            continue;
        }
        connections_served++;
        close(fd);              /* the child has its own copy; ours would keep it open */
        TRACE("fork fd=%d children=%zu", fd, child_count);
    }

    close(listen_fd);
    stop_children();
    close(report_pipe[0]);
    close(report_pipe[1]);
    free(children);
    contract_summary(&cli, connections_served, bytes_echoed);
    return contract_stop ? 0 : 1;
}
