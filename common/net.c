#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* getaddrinfo wants the port as a string. */
static struct addrinfo *resolve(const char *host, int port, int flags, int *gai_error)
{
    struct addrinfo hints, *list = NULL;
    char service[16];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    *gai_error = getaddrinfo(host, service, &hints, &list);
    if (*gai_error == EAI_SYSTEM)
        *gai_error = 0;             /* errno says what went wrong */
    else if (*gai_error != 0)
        errno = EINVAL;
    return *gai_error == 0 ? list : NULL;
}

static int open_socket(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && net_set_cloexec(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_listen(const char *host, int port, int backlog, int *gai_error)
{
    struct addrinfo *list = resolve(host, port, AI_PASSIVE, gai_error);
    int fd = -1, saved = 0, one = 1;

    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        fd = open_socket(ai);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* Restarting the server must not wait for old connections' TIME_WAIT. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            (ai->ai_family != AF_INET6 ||
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0) &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, backlog) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (list != NULL)
        freeaddrinfo(list);
    if (fd < 0 && saved != 0)
        errno = saved;
    return fd;
}

static int wait_connected(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int rc, err = 0;
    socklen_t len = sizeof err;

    do
        rc = poll(&p, 1, -1);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

int net_connect(const char *host, int port, int *gai_error)
{
    struct addrinfo *list = resolve(host, port, 0, gai_error);
    int fd = -1, saved = 0;

    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        fd = open_socket(ai);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* An interrupted connect goes on in the background: wait for it. */
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && (errno == EINTR || errno == EINPROGRESS))
            rc = wait_connected(fd);
        if (rc == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (list != NULL)
        freeaddrinfo(list);
    if (fd < 0 && saved != 0)
        errno = saved;
    return fd;
}

int net_set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return (flags & O_NONBLOCK) ? 0 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int net_set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -1;
    return (flags & FD_CLOEXEC) ? 0 : fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int net_format_addr(const struct sockaddr *addr, socklen_t len, char *buf, size_t buflen)
{
    char host[INET6_ADDRSTRLEN];
    int n;

    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        n = snprintf(buf, buflen, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        n = snprintf(buf, buflen, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        errno = EINVAL;
        return -1;
    }
    if (n < 0 || (size_t)n >= buflen) {
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

int net_sock_name(int fd, char *buf, size_t buflen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return net_format_addr((struct sockaddr *)&ss, len, buf, buflen);
}

int net_peer_name(int fd, char *buf, size_t buflen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return net_format_addr((struct sockaddr *)&ss, len, buf, buflen);
}

long net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
        /* Some systems (macOS) refuse an unlimited soft limit: keep the old one. */
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

int net_close_with_reset(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    int rc = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return rc;
}

int net_accept(int listen_fd, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept(listen_fd, (struct sockaddr *)&ss, &len);

    if (fd < 0)
        return -1;
    if (net_set_cloexec(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (peer != NULL && net_format_addr((struct sockaddr *)&ss, len, peer, peerlen) < 0)
        snprintf(peer, peerlen, "?");
    return fd;
}

int net_accept_action(int err)
{
    switch (err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return NET_ACCEPT_BACK_OFF;
    case EBADF:
    case EINVAL:
    case ENOTSOCK:
    case EOPNOTSUPP:
    case EFAULT:
        return NET_ACCEPT_FATAL;
    default:                /* EINTR, EAGAIN, ECONNABORTED, EPROTO, EPERM, network errors */
        return NET_ACCEPT_RETRY;
    }
}

/* One descriptor held back for the day accept() fails with EMFILE. Several
 * threads may accept at once (chapter 11): the lock makes sure only one of
 * them gives the reserve up and takes it back at a time. */
static int reserve_fd = -1;
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;

int net_reserve_open(void)
{
    pthread_mutex_lock(&reserve_lock);
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int ok = reserve_fd >= 0;
    pthread_mutex_unlock(&reserve_lock);
    return ok ? 0 : -1;
}

void net_reserve_close(void)
{
    pthread_mutex_lock(&reserve_lock);
    if (reserve_fd >= 0)
        close(reserve_fd);
    reserve_fd = -1;
    pthread_mutex_unlock(&reserve_lock);
}

int net_accept_nonblocking(int listen_fd, char *peer, size_t peerlen)
{
    int fd = net_accept(listen_fd, peer, peerlen);
    if (fd >= 0) {
        if (net_set_nonblocking(fd) == 0)
            return fd;
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (errno == EMFILE || errno == ENFILE) {
        /* Linux checks for a free descriptor before it looks at the queue:
         * EMFILE does not mean somebody is waiting. Only say EMFILE (a client
         * was shed) if the spare slot actually took one. */
        int limit_errno = errno, accept_errno = limit_errno;
        pthread_mutex_lock(&reserve_lock);
        if (reserve_fd >= 0) {
            close(reserve_fd);
            reserve_fd = -1;
            fd = accept(listen_fd, NULL, NULL);
            accept_errno = errno;
            if (fd >= 0)
                close(fd);
            reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        pthread_mutex_unlock(&reserve_lock);
        errno = fd >= 0 ? limit_errno : accept_errno;
    }
    return -1;
}
