/*
 * listener.c: see listener.h.
 */
#define _GNU_SOURCE             /* SO_REUSEPORT */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "contract.h"
#include "net.h"
#include "trace.h"

#define PAUSE_MS 100

static int open_reuseport(const struct sockaddr_storage *addr, socklen_t len)
{
    int one = 1;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0 &&
        (addr->ss_family != AF_INET6 ||
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0) &&
        bind(fd, (const struct sockaddr *)addr, len) == 0 && listen(fd, SOMAXCONN) == 0)
        return fd;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int listener_open_group(const struct cli *cli, struct listener *group, int n)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char where[NET_ADDRSTRLEN];
    int gai_error = 0, i = 0;

    /*
     * First claim the port with an ordinary socket (no SO_REUSEPORT), and
     * read back the address it got: with --port 0, that is the port the
     * kernel chose. Why not bind with SO_REUSEPORT at once? Because a second
     * server of the same user on the same port would then not fail with
     * "Address already in use": the kernel would quietly share the port
     * between the two (the feature zero-downtime restarts use).
     */
    int probe = net_listen(cli->host, cli->port, 1, &gai_error);
    if (probe >= 0 && getsockname(probe, (struct sockaddr *)&addr, &len) == 0) {
        close(probe);
        probe = -1;
        for (; i < n; i++) {
            group[i].fd = open_reuseport(&addr, len);
            if (group[i].fd < 0)
                break;
        }
    }
    if (i == n && net_sock_name(group[0].fd, where, sizeof where) == 0) {
        printf("listening on %s\n", where);
        fflush(stdout);
        return 0;
    }
    contract_listen_failed(cli, gai_error);
    if (probe >= 0)
        close(probe);
    while (i-- > 0) {
        close(group[i].fd);
        group[i].fd = -1;
    }
    return -1;
}

int listener_watch(struct loop *loop, struct listener *l)
{
    return loop_add_reader(loop, l->fd, l->on_accept, l);
}

static void on_resume(struct loop *loop, void *arg)
{
    struct listener *l = arg;
    l->resume = NULL;
    TRACE("resume fd=%d", l->fd);
    if (listener_watch(loop, l) < 0)
        TRACE("resume fd=%d error=%s", l->fd, strerror(errno));
}

/*
 * Out of descriptors, accept() fails and leaves the client queued, so the
 * listener stays readable: a loop would spin on it. net.h's answer is a
 * reserve descriptor, closed to accept one client and shed it. That reserve
 * is one for the process, so threads take turns with it (the lock); and a
 * slot the reserve frees may be taken at once by another thread's accept,
 * leaving no reserve until descriptors free up. Then this listener pauses
 * for PAUSE_MS instead of spinning (what nginx does, for 500 ms).
 */
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;

int listener_accept(struct loop *loop, struct listener *l, char *peer, size_t peerlen)
{
    int fd = net_accept(l->fd, peer, peerlen);
    if (fd >= 0 && net_set_nonblocking(fd) == 0)
        return fd;
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (errno != EMFILE)
        return -1;
    pthread_mutex_lock(&reserve_lock);
    int have_reserve = net_reserve_open() == 0;     /* get it back if it was lost */
    if (have_reserve)
        fd = net_accept_nonblocking(l->fd, peer, peerlen);
    int saved = errno;
    pthread_mutex_unlock(&reserve_lock);
    if (fd >= 0)
        return fd;              /* descriptors were freed meanwhile */
    if (saved != EMFILE) {
        errno = saved;
        return -1;
    }
    if (have_reserve) {
        TRACE("shed reason=EMFILE");
    } else if (l->resume == NULL) {
        loop_remove_reader(loop, l->fd);
        l->resume = loop_call_later(loop, PAUSE_MS, on_resume, l);
        if (l->resume == NULL)
            listener_watch(loop, l);    /* no memory for the timer: keep going */
        else
            TRACE("pause fd=%d reason=EMFILE ms=%d", l->fd, PAUSE_MS);
    }
    errno = EMFILE;
    return -1;
}

void listener_close(struct loop *loop, struct listener *l)
{
    if (l->fd < 0)
        return;
    loop_remove_reader(loop, l->fd);
    loop_cancel(loop, l->resume);
    l->resume = NULL;
    /* Stop accepting in the kernel at once (later clients are refused,
     * queued ones reset) before the descriptor goes: the random-moment
     * SIGTERM test saw, rarely, a client that connected during the stop
     * still connected after the server had exited (12 does the same). */
    shutdown(l->fd, SHUT_RDWR);
    close(l->fd);
    l->fd = -1;
}
