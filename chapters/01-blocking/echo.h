/*
 * echo: the blocking echo loop of chapters 01-03.
 *
 * Chapter 01 calls it in its accept loop, 02 in a child process, 03 in a
 * thread: the loop stays the same, only who runs it changes.
 */
#ifndef ECHO_H
#define ECHO_H

/*
 * Echo everything the client sends until it closes its side, resets, or a
 * SIGTERM interrupts a blocked call. Returns the number of bytes echoed.
 * Does not close fd: the caller owns it.
 */
unsigned long long echo_until_eof(int fd);

#endif
