#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "net.h"
#include "trace.h"

unsigned long long conn_accepted, conn_bytes_echoed;

/* Connections indexed by descriptor: the kernel hands out the lowest free
 * number, so the table stays about as long as the number of clients. */
static struct conn **table;
static size_t table_size;
static int highest_fd = -1;

long conn_setup(void)
{
    long limit = net_raise_fd_limit();
    TRACE("fd limit raised to %ld", limit);
    return net_reserve_open() < 0 ? -1 : limit;
}

void conn_teardown(void)
{
    conn_close_all();
    free(table);
    table = NULL;
    table_size = 0;
    net_reserve_close();
}

int conn_accept(int listen_fd)
{
    char peer[NET_ADDRSTRLEN];
    int fd = net_accept_nonblocking(listen_fd, peer, sizeof peer);

    if (fd >= 0) {
        conn_accepted++;
        TRACE("accept fd=%d peer=%s", fd, peer);
    } else if (errno == EMFILE || errno == ENFILE) {
        TRACE("shed reason=%s", errno == EMFILE ? "EMFILE" : "ENFILE");     /* a client was accepted and closed */
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        TRACE("accept error=%s", strerror(errno));
    }
    return fd;
}

struct conn *conn_open(int fd)
{
    if ((size_t)fd >= table_size) {
        size_t size = table_size ? table_size : 1024;
        while (size <= (size_t)fd)
            size *= 2;
        struct conn **grown = realloc(table, size * sizeof *grown);
        if (grown == NULL) {
            close(fd);
            return NULL;
        }
        memset(grown + table_size, 0, (size - table_size) * sizeof *grown);
        table = grown;
        table_size = size;
    }
    /* malloc, not calloc: the buffer's pages are touched only once used. */
    struct conn *c = malloc(sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->eof = 0;
    c->watching = 0;
    c->start = c->end = 0;
    table[fd] = c;
    if (fd > highest_fd)
        highest_fd = fd;
    return c;
}

struct conn *conn_of(int fd)
{
    return fd >= 0 && (size_t)fd < table_size ? table[fd] : NULL;
}

int conn_max_fd(void)
{
    return highest_fd;
}

void conn_close(struct conn *c)
{
    table[c->fd] = NULL;
    while (highest_fd >= 0 && table[highest_fd] == NULL)
        highest_fd--;
    close(c->fd);
    TRACE("close fd=%d", c->fd);
    free(c);
}

void conn_close_all(void)
{
    while (highest_fd >= 0)
        conn_close(table[highest_fd]);
}

int conn_wants(const struct conn *c)
{
    int wants = 0;
    if (!c->eof && c->end < CONN_BUFFER_SIZE)
        wants |= CONN_WANT_READ;
    if (c->end > c->start)
        wants |= CONN_WANT_WRITE;
    return wants;
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

int conn_service(struct conn *c, int ready)
{
    /* Edge-triggered: an earlier "readable" may have been left unread while
     * the buffer was full, and it will not be announced again: always try. */
    int may_read = (ready & (CONN_READABLE | CONN_DRAIN)) != 0;
    int may_send = 1;   /* echo just read can usually go out at once: try */

    for (;;) {
        size_t room = CONN_BUFFER_SIZE - c->end;
        if (may_read && !c->eof && room > 0) {
            ssize_t n = io_read(c->fd, c->buf + c->end, room);
            if (n > 0) {
                TRACE("read fd=%d n=%zd", c->fd, n);
                c->end += (size_t)n;
            } else if (n == 0) {
                TRACE("eof fd=%d", c->fd);
                c->eof = 1;
            } else if (would_block()) {
                may_read = 0;
            } else {
                TRACE("read fd=%d error=%s", c->fd, strerror(errno));
                return 0;       /* reset by the peer */
            }
        }
        if (may_send && c->end > c->start) {
            size_t pending = c->end - c->start;
            ssize_t n = io_send(c->fd, c->buf + c->start, pending);
            if (n > 0) {
                TRACE("write fd=%d n=%zd", c->fd, n);
                c->start += (size_t)n;
                conn_bytes_echoed += (unsigned long long)n;
                if (c->start == c->end) {
                    c->start = c->end = 0;  /* empty: reuse from the front */
                } else {
                    /* A short send: the socket is nearly full. Slide what is
                     * left to the front, so the free room is in one piece. */
                    memmove(c->buf, c->buf + c->start, c->end - c->start);
                    c->end -= c->start;
                    c->start = 0;
                }
            } else if (would_block()) {
                may_send = 0;
            } else {
                TRACE("write fd=%d error=%s", c->fd, strerror(errno));
                return 0;       /* EPIPE, ECONNRESET: the client is gone */
            }
        }
        /* Level-triggered models come back when the kernel says so. An
         * edge-triggered one must go on until read and send both say EAGAIN
         * (or there is nothing left to do): a short read is not proof that
         * the socket is empty (its end of stream may already be queued), and
         * what is left unread now will not be announced again. */
        int can_read = may_read && !c->eof && c->end < CONN_BUFFER_SIZE;
        int can_send = may_send && c->end > c->start;
        if (!(ready & CONN_DRAIN) || !(can_read || can_send))
            break;
    }
    if (c->eof && c->start == c->end)
        return 0;               /* half-closed and fully echoed: done */
    return conn_wants(c);
}
