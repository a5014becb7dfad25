#include "trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int trace_enabled;
static _Thread_local char thread_tag[24];   /* " thread=N", or "" */

long long trace_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void trace_set_thread(int id)
{
    if (id < 0)
        thread_tag[0] = '\0';
    else
        snprintf(thread_tag, sizeof thread_tag, " thread=%d", id);
}

void trace_log(const char *fmt, ...)
{
    char line[512];
    int saved = errno;      /* a trace must not disturb the caller's errno */
    int n = snprintf(line, sizeof line, "%lld ", trace_now_us());
    va_list ap;

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t tag_len = strlen(thread_tag);
    if (n > (int)(sizeof line - 1 - tag_len))
        n = (int)(sizeof line - 1 - tag_len);   /* truncated: still one whole line, tag and all */
    memcpy(line + n, thread_tag, tag_len);
    n += (int)tag_len;
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
    errno = saved;
}
