/*
 * loop_epoll.c: the epoll backend of loop_backend.h (Linux). Included by
 * loop.c, not compiled on its own. Chapter 07 explains epoll; here it is
 * only the six calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EPOLL_BATCH 256         /* the most events one wait reports */

struct backend {
    int epoll_fd;
};

static struct backend *backend_create(void)
{
    struct backend *b = malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    b->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epoll_fd < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static int epoll_change(struct backend *b, int op, int fd, uint32_t events, uint64_t token)
{
    struct epoll_event ev = {
        .events = ((events & LOOP_READ) ? EPOLLIN : 0) | ((events & LOOP_WRITE) ? EPOLLOUT : 0),
        .data.u64 = token,
    };
    return epoll_ctl(b->epoll_fd, op, fd, &ev);
}

static int backend_add(struct backend *b, int fd, uint32_t events, uint64_t token)
{
    return epoll_change(b, EPOLL_CTL_ADD, fd, events, token);
}

static int backend_modify(struct backend *b, int fd, uint32_t events, uint64_t token)
{
    return epoll_change(b, EPOLL_CTL_MOD, fd, events, token);
}

static int backend_delete(struct backend *b, int fd)
{
    return epoll_change(b, EPOLL_CTL_DEL, fd, 0, 0);
}

static int backend_wait(struct backend *b, struct backend_event *ready, int max, int timeout_ms)
{
    struct epoll_event events[EPOLL_BATCH];
    if (max > EPOLL_BATCH)
        max = EPOLL_BATCH;
    int n = epoll_wait(b->epoll_fd, events, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        uint32_t e = events[i].events;
        ready[i].token = events[i].data.u64;
        ready[i].events = ((e & EPOLLIN) ? LOOP_READ : 0) | ((e & EPOLLOUT) ? LOOP_WRITE : 0) |
                          ((e & (EPOLLERR | EPOLLHUP)) ? LOOP_ERROR : 0);
    }
    return n;
}

static void backend_free(struct backend *b)
{
    close(b->epoll_fd);
    free(b);
}
