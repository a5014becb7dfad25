/*
 * contract: the parts of the server contract (see the top README) that every
 * chapter keeps the same way, so a chapter's server.c shows only its I/O model.
 *
 * These three print, because printing the contract's lines is their job:
 * "listening on ADDR:PORT" on stdout, the listen error and the summary on stderr.
 */
#ifndef CONTRACT_H
#define CONTRACT_H

#include <signal.h>
#include <stdatomic.h>

#include "cli.h"

/* Set to 1 by SIGINT or SIGTERM once contract_catch_signals has run. An
 * atomic, not a volatile sig_atomic_t: that is enough only for the thread the
 * signal interrupts, and in a threaded server (03) the handler may run on one
 * thread while others read the flag (ThreadSanitizer calls it a data race). */
extern atomic_int contract_stop;

/*
 * SIGINT and SIGTERM set contract_stop. They are installed without SA_RESTART,
 * so a thread blocked in accept(), read() or poll() returns with EINTR and can
 * look at the flag. SIGPIPE is ignored: writing to a vanished peer becomes an
 * EPIPE error on that one connection instead of killing the whole server.
 */
int contract_catch_signals(void);

/*
 * For the blocking servers (01-03), asleep in accept() or read() when the
 * signal comes. Checking contract_stop before each call leaves a window: a
 * signal landing just after the check is not seen until the call returns by
 * itself, which may be never. So the handler also shuts down these sockets
 * (shutdown() is async-signal-safe): a blocked read() then returns 0, a
 * blocked accept() fails (Linux; elsewhere the accept window remains).
 * Pass -1 for none; clear the client before closing it. A forked child
 * inherits its parent's sockets here: hold SIGINT/SIGTERM back across fork()
 * until the child has named its own (chapter 02 shows how).
 */
void contract_wake_on_stop(int listen_fd, int client_fd);

/*
 * A descriptor that becomes readable when SIGINT or SIGTERM arrives (the
 * handler writes a byte into a pipe: the "self-pipe trick"), or -1 before
 * contract_catch_signals. A server waiting in select/poll/epoll watches it
 * beside its sockets, so a stop can never slip in between checking
 * contract_stop and going to sleep.
 */
int contract_stop_fd(void);

/*
 * Listen on cli->host:cli->port and print "listening on 127.0.0.1:PORT"
 * (flushed) once ready. On failure print "PROGRAM: cannot listen on HOST:PORT:
 * reason" on stderr and return -1; the caller exits 1.
 */
int contract_listen(const struct cli *cli, int backlog);

/* That failure message alone, for a server that opens its listeners some
 * other way (11's SO_REUSEPORT group): the reason is gai_strerror(gai_error),
 * or strerror(errno) when gai_error is 0. */
void contract_listen_failed(const struct cli *cli, int gai_error);

/*
 * accept() as the blocking servers (01-03) use it: wait for a client and
 * return its descriptor, with its address in peer. On failure return -1 with
 * errno; when the failure was running out of descriptors or memory (EMFILE,
 * ENFILE...), first pause 100 ms, so a server that simply calls again cannot
 * spin. The caller stops on NET_ACCEPT_FATAL errors (see net.h).
 */
int contract_accept(int listen_fd, char *peer, size_t peerlen);

/* The one line printed at exit: "PROGRAM: served N connections, echoed M bytes". */
void contract_summary(const struct cli *cli, unsigned long long connections,
                      unsigned long long bytes);

#endif
