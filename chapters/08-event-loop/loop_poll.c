/*
 * loop_poll.c: the poll backend of loop_backend.h, for any POSIX system
 * (macOS, the BSDs; on Linux with -DLOOP_BACKEND_POLL). Included by
 * loop.c, not compiled on its own.
 *
 * poll has no interest list in the kernel: the backend keeps one, an array
 * of struct pollfd handed to every poll call, as chapter 06 did. Adding is
 * an append; deleting moves the last entry into the hole, so the array stays
 * dense and a wait costs O(descriptors watched), busy or idle. slot[fd]
 * says where fd sits in the array (-1: not watched).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct backend {
    struct pollfd *fds;         /* what poll watches, in no particular order */
    uint64_t *tokens;           /* tokens[i] goes with fds[i] */
    size_t count, capacity;
    int *slot;                  /* fd -> index in fds, -1 if not watched */
    size_t slot_capacity;
    size_t cursor;              /* where the next report starts (see backend_wait) */
};

static struct backend *backend_create(void)
{
    return calloc(1, sizeof(struct backend));
}

static short poll_events(uint32_t events)
{
    return (short)(((events & LOOP_READ) ? POLLIN : 0) | ((events & LOOP_WRITE) ? POLLOUT : 0));
}

static int backend_add(struct backend *b, int fd, uint32_t events, uint64_t token)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= b->slot_capacity) {
        size_t capacity = b->slot_capacity ? b->slot_capacity : 64;
        while (capacity <= (size_t)fd)
            capacity *= 2;
        int *grown = realloc(b->slot, capacity * sizeof *grown);
        if (grown == NULL)
            return -1;
        for (size_t i = b->slot_capacity; i < capacity; i++)
            grown[i] = -1;
        b->slot = grown;
        b->slot_capacity = capacity;
    }
    if (b->slot[fd] >= 0) {
        errno = EEXIST;             /* as epoll says */
        return -1;
    }
    if (b->count == b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 64;
        struct pollfd *fds = realloc(b->fds, capacity * sizeof *fds);
        if (fds == NULL)
            return -1;
        b->fds = fds;
        uint64_t *tokens = realloc(b->tokens, capacity * sizeof *tokens);
        if (tokens == NULL)
            return -1;              /* fds grew, harmlessly: capacity stays */
        b->tokens = tokens;
        b->capacity = capacity;
    }
    b->fds[b->count] = (struct pollfd){.fd = fd, .events = poll_events(events)};
    b->tokens[b->count] = token;
    b->slot[fd] = (int)b->count++;
    return 0;
}

/* fd's index in the array, or -1 with ENOENT (as epoll says). */
static int slot_of(struct backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->slot_capacity || b->slot[fd] < 0) {
        errno = ENOENT;
        return -1;
    }
    return b->slot[fd];
}

static int backend_modify(struct backend *b, int fd, uint32_t events, uint64_t token)
{
    int i = slot_of(b, fd);
    if (i < 0)
        return -1;
    b->fds[i].events = poll_events(events);
    b->tokens[i] = token;
    return 0;
}

static int backend_delete(struct backend *b, int fd)
{
    int i = slot_of(b, fd);
    if (i < 0)
        return -1;
    size_t last = --b->count;
    if ((size_t)i != last) {
        b->fds[i] = b->fds[last];
        b->tokens[i] = b->tokens[last];
        b->slot[b->fds[i].fd] = i;
    }
    b->slot[fd] = -1;
    return 0;
}

/*
 * poll reports readiness in place (revents), so the wait scans the whole
 * array for it. When more than max are ready, the rest stay ready (poll is
 * level-triggered) and are reported by the next wait; starting each scan
 * where the last one stopped keeps the descriptors at the end of the array
 * from waiting behind those at the start for ever.
 */
static int backend_wait(struct backend *b, struct backend_event *ready, int max, int timeout_ms)
{
    if (b->count > (size_t)INT_MAX) {
        errno = EINVAL;
        return -1;
    }
    int n = poll(b->fds, (nfds_t)b->count, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    int found = 0;
    size_t start = b->cursor < b->count ? b->cursor : 0;
    for (size_t k = 0; k < b->count && found < n && found < max; k++) {
        size_t i = (start + k) % b->count;
        short e = b->fds[i].revents;
        if (e == 0)
            continue;
        ready[found].token = b->tokens[i];
        /* POLLNVAL: fd was closed while still watched. Reporting it as an
         * error lets the callback find out, instead of spinning silently. */
        ready[found].events = ((e & POLLIN) ? LOOP_READ : 0) | ((e & POLLOUT) ? LOOP_WRITE : 0) |
                              ((e & (POLLERR | POLLHUP | POLLNVAL)) ? LOOP_ERROR : 0);
        found++;
        b->cursor = i + 1;
    }
    return found;
}

static void backend_free(struct backend *b)
{
    free(b->fds);
    free(b->tokens);
    free(b->slot);
    free(b);
}
