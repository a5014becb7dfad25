/*
 * listener: the listening sockets, and accepting from them when several
 * threads do at once.
 *
 * --balance reuseport opens one listener per thread, all bound to the same
 * port with SO_REUSEPORT: the kernel keeps one accept queue per socket and
 * spreads new connections over them by a hash of the addresses.
 * --balance acceptor opens one, watched by the main thread only.
 */
#ifndef LISTENER_H
#define LISTENER_H

#include <stddef.h>

#include "cli.h"
#include "loop.h"

struct worker;

struct listener {
    int fd;                         /* -1 when closed */
    struct worker *owner;           /* reuseport: the worker it feeds; acceptor: NULL */
    loop_io_callback *on_accept;    /* called with the listener as arg */
    struct loop_handle *resume;     /* set while paused, out of descriptors */
};

/* Open n listeners sharing cli's address and port (--port 0: the one the
 * kernel picks for the first), then print the contract's "listening on"
 * line. Returns 0, or -1 after printing why on stderr (the caller exits 1). */
int listener_open_group(const struct cli *cli, struct listener *group, int n);

/* Have loop call l->on_accept(loop, l->fd, l) while clients are waiting. */
int listener_watch(struct loop *loop, struct listener *l);

/* Accept one client, non-blocking and close-on-exec, its address in peer.
 * -1 with errno EAGAIN when nobody is waiting. Out of descriptors (EMFILE)
 * it sheds one waiting client, or pauses the listener for a moment when it
 * cannot; either way -1/EMFILE. */
int listener_accept(struct loop *loop, struct listener *l, char *peer, size_t peerlen);

/* Stop watching and close. Safe on a closed listener. */
void listener_close(struct loop *loop, struct listener *l);

#endif
