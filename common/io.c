#include "io.h"

#include "contract.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * A signal interrupts a blocked call with EINTR. Usually the right answer is to
 * call again; but when the signal was SIGINT/SIGTERM asking the server to stop
 * (contract_stop), the caller must get EINTR back, or a server blocked reading
 * from an idle client would never notice it was asked to stop.
 */
static int should_restart(void)
{
    return errno == EINTR && !contract_stop;
}

ssize_t io_read(int fd, void *buf, size_t len)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && should_restart());
    return n;
}

ssize_t io_send(int fd, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = send(fd, buf, len, IO_SEND_FLAGS);
    while (n < 0 && should_restart());
    return n;
}

int io_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        if (contract_stop) {        /* a partial send is not an EINTR: look here too */
            errno = EINTR;
            return -1;
        }
        ssize_t n = io_send(fd, p, len);
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int io_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && should_restart())
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
