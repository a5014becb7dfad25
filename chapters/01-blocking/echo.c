#include "echo.h"

#include <errno.h>
#include <string.h>

#include "io.h"
#include "trace.h"

unsigned long long echo_until_eof(int fd)
{
    char buf[16384];
    unsigned long long echoed = 0;

    for (;;) {
        ssize_t n = io_read(fd, buf, sizeof buf);   /* blocks until bytes, EOF or error */
        if (n == 0) {
            TRACE("eof fd=%d", fd);
            return echoed;
        }
        if (n < 0) {
            TRACE("read fd=%d error=%s", fd, strerror(errno));
            return echoed;      /* reset by the peer, or SIGTERM (EINTR) */
        }
        TRACE("read fd=%d n=%zd", fd, n);
        /* send may take only part of the buffer: io_send_all loops until done. */
        if (io_send_all(fd, buf, (size_t)n) < 0) {
            TRACE("write fd=%d error=%s", fd, strerror(errno));
            return echoed;      /* EPIPE/ECONNRESET: the client vanished */
        }
        TRACE("write fd=%d n=%zd", fd, n);
        echoed += (unsigned long long)n;
    }
}
