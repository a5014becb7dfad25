/*
 * trace: one line per event on stderr when -v is given, for watching a model work.
 *
 *     TRACE("read fd=%d n=%zd", fd, n);   ->   "1234567 read fd=5 n=12"
 *
 * Each line starts with a monotonic time in microseconds and is written with a
 * single write(), so lines from several threads or processes never interleave.
 * When tracing is off, TRACE costs one predictable branch: its arguments are
 * not even evaluated.
 *
 * A program with several event loops (chapter 11) says once, on each thread,
 * which one it is: trace_set_thread(2), and every line that thread traces
 * from then on ends with " thread=2", without each TRACE saying so.
 */
#ifndef TRACE_H
#define TRACE_H

extern int trace_enabled;

#define TRACE(...)                    \
    do {                              \
        if (trace_enabled)            \
            trace_log(__VA_ARGS__);   \
    } while (0)

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void trace_log(const char *fmt, ...);

/* Tag the calling thread's trace lines with " thread=ID" (ID >= 0), or
 * with nothing (ID < 0, the default of every thread). */
void trace_set_thread(int id);

/* Microseconds on the monotonic clock (never jumps when the date is set). */
long long trace_now_us(void);

#endif
