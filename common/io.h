/*
 * io: read and write loops that get the details right.
 *
 * read() and send() may be interrupted by a signal (EINTR) and may move fewer
 * bytes than asked (a short count). These wrappers restart on EINTR, except
 * once SIGINT/SIGTERM has asked the server to stop (contract_stop): then they
 * return -1 with EINTR so a blocked server can wind down. The *_all versions
 * also loop over short counts. Writes to a socket use MSG_NOSIGNAL
 * where it exists, so a peer that has gone away gives EPIPE, never SIGPIPE
 * (elsewhere the servers ignore SIGPIPE once at start: contract_catch_signals
 * in contract.c).
 * All return -1 with errno on failure and never print.
 */
#ifndef IO_H
#define IO_H

#include <stddef.h>
#include <sys/types.h>

#ifdef MSG_NOSIGNAL
#define IO_SEND_FLAGS MSG_NOSIGNAL
#else
#define IO_SEND_FLAGS 0
#endif

/* One read, restarted on EINTR: >0 bytes, 0 at end of stream, or -1. */
ssize_t io_read(int fd, void *buf, size_t len);

/* One send, restarted on EINTR: it may send fewer than len bytes. */
ssize_t io_send(int fd, const void *buf, size_t len);

/* Send all len bytes (for blocking sockets): 0, or -1 with errno. */
int io_send_all(int fd, const void *buf, size_t len);

/* Write all len bytes to any descriptor (a pipe, a file): 0, or -1. */
int io_write_all(int fd, const void *buf, size_t len);

#endif
