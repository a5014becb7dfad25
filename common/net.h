/*
 * net: the socket calls every chapter and tool makes, in one place.
 *
 * Each function returns -1 and leaves errno on failure; none prints or exits.
 * Name resolution fails without an errno, so those functions also report the
 * getaddrinfo code through *gai_error (0 when the failure was a system call).
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Big enough for "[ffff:...:ffff%ifname]:65535". */
#define NET_ADDRSTRLEN 80

/*
 * Resolve host:port (AI_PASSIVE), then socket, SO_REUSEADDR, bind and listen on
 * the first address that works. An IPv6 socket is made IPv6-only, so "::1"
 * means exactly that. Returns the listening descriptor (blocking, close-on-exec).
 */
int net_listen(const char *host, int port, int backlog, int *gai_error);

/* A blocking connect to the first address of host:port that accepts. */
int net_connect(const char *host, int port, int *gai_error);

/* Set O_NONBLOCK, keeping the descriptor's other status flags. */
int net_set_nonblocking(int fd);

/* Set FD_CLOEXEC, so a child process started later does not inherit it. */
int net_set_cloexec(int fd);

/* Write "1.2.3.4:80" or "[::1]:80" into buf. Returns 0, or -1 (EINVAL, ENOSPC). */
int net_format_addr(const struct sockaddr *addr, socklen_t len, char *buf, size_t buflen);

/* The local (sock) or remote (peer) address of a socket, formatted as above. */
int net_sock_name(int fd, char *buf, size_t buflen);
int net_peer_name(int fd, char *buf, size_t buflen);

/*
 * Raise the soft limit on open descriptors to the hard limit, so a server can
 * hold as many connections as the administrator allows. Returns the new limit.
 */
long net_raise_fd_limit(void);

/*
 * Accept one connection, close-on-exec, and format the peer's address into
 * peer (if not NULL). Returns the descriptor, or -1 with errno (EINTR included:
 * the caller decides whether a signal means stop).
 */
int net_accept(int listen_fd, char *peer, size_t peerlen);

/*
 * After accept() failed with err, what should a server do?
 *   NET_ACCEPT_RETRY   the failure concerned one connection or a signal
 *                      (EINTR, ECONNABORTED, EPROTO, EAGAIN...): go on.
 *   NET_ACCEPT_BACK_OFF out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
 *                      ENOMEM): retrying at once would spin; shed or pause.
 *   NET_ACCEPT_FATAL   the listening socket itself is broken (EBADF, EINVAL...).
 */
enum { NET_ACCEPT_RETRY, NET_ACCEPT_BACK_OFF, NET_ACCEPT_FATAL };
int net_accept_action(int err);

/*
 * For non-blocking servers: accept one client, make it non-blocking and
 * close-on-exec. Returns its descriptor, or -1 with errno (EAGAIN: nobody
 * else is waiting).
 *
 * Out of descriptors, accept() fails with EMFILE and leaves the client in the
 * queue, so the listener stays readable and a readiness loop would wake up
 * for it again and again: a spin. If net_reserve_open was called at start,
 * this closes the reserve descriptor, accepts the client with the freed slot,
 * closes it at once (the client sees its connection end), reopens the reserve,
 * and returns -1 with errno EMFILE (ENFILE when the whole system is out):
 * one waiting client shed per call. If nobody was waiting after all, errno is
 * EAGAIN. (Out of memory, ENOBUFS/ENOMEM, there is nothing to shed with.)
 */
int net_accept_nonblocking(int listen_fd, char *peer, size_t peerlen);
int net_reserve_open(void);
void net_reserve_close(void);

/* Close so the peer sees a reset (RST) rather than an orderly end (FIN). */
int net_close_with_reset(int fd);

#endif
