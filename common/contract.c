#include "contract.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "trace.h"

/* A signal handler may touch only lock-free atomics (C11 7.14.1.1). */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free");

atomic_int contract_stop;
static int stop_pipe[2] = { -1, -1 };
static atomic_int wake_listen_fd = -1, wake_client_fd = -1;

void contract_wake_on_stop(int listen_fd, int client_fd)
{
    wake_listen_fd = listen_fd;
    wake_client_fd = client_fd;
}

static void on_stop_signal(int signo)
{
    int saved = errno;
    (void)signo;
    contract_stop = 1;
    int listen_fd = wake_listen_fd, client_fd = wake_client_fd;    /* each read once */
    if (listen_fd >= 0)
        shutdown(listen_fd, SHUT_RDWR);
    if (client_fd >= 0)
        shutdown(client_fd, SHUT_RDWR);
    if (stop_pipe[1] >= 0) {
        /* write() is async-signal-safe; the pipe is non-blocking, and once it
         * holds a byte the reader will wake anyway, so a full pipe is fine. */
        ssize_t ignored = write(stop_pipe[1], "!", 1);
        (void)ignored;
    }
    errno = saved;
}

int contract_stop_fd(void)
{
    return stop_pipe[0];
}

int contract_catch_signals(void)
{
    struct sigaction sa;

    if (stop_pipe[0] < 0) {
        if (pipe(stop_pipe) < 0)
            return -1;
        for (int i = 0; i < 2; i++)
            if (net_set_nonblocking(stop_pipe[i]) < 0 || net_set_cloexec(stop_pipe[i]) < 0)
                return -1;
    }
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = 0;                    /* no SA_RESTART: blocked calls return EINTR */
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

int contract_listen(const struct cli *cli, int backlog)
{
    char where[NET_ADDRSTRLEN];
    int gai_error;
    int fd = net_listen(cli->host, cli->port, backlog, &gai_error);

    if (fd >= 0 && net_sock_name(fd, where, sizeof where) == 0) {
        printf("listening on %s\n", where);
        fflush(stdout);
        return fd;
    }
    contract_listen_failed(cli, gai_error);
    if (fd >= 0)
        close(fd);
    return -1;
}

void contract_listen_failed(const struct cli *cli, int gai_error)
{
    const char *why = gai_error != 0 ? gai_strerror(gai_error) : strerror(errno);
    int v6 = strchr(cli->host, ':') != NULL;
    fprintf(stderr, "%s: cannot listen on %s%s%s:%d: %s\n", cli->program,
            v6 ? "[" : "", cli->host, v6 ? "]" : "", cli->port, why);
}

void contract_summary(const struct cli *cli, unsigned long long connections,
                      unsigned long long bytes)
{
    fprintf(stderr, "%s: served %llu connection%s, echoed %llu bytes\n",
            cli->program, connections, connections == 1 ? "" : "s", bytes);
}

int contract_accept(int listen_fd, char *peer, size_t peerlen)
{
    int fd = net_accept(listen_fd, peer, peerlen);
    if (fd < 0) {
        int saved = errno;
        TRACE("accept error=%s", strerror(saved));
        if (net_accept_action(saved) == NET_ACCEPT_BACK_OFF) {
            struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
            nanosleep(&pause, NULL);    /* a signal may cut it short: fine */
        }
        errno = saved;
    }
    return fd;
}
