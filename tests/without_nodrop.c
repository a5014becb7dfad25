/*
 * An LD_PRELOAD library for tests/12-io-uring.bats: it makes io_uring_setup
 * report a kernel without IORING_FEAT_NODROP (one that drops completions when
 * the CQ is full), which no kernel with the operations chapter 12 needs is.
 * It wraps libc's syscall(), the way ring.c makes that call, and clears the
 * flag in what the real call returned; everything else passes through.
 *
 *     cc -shared -fPIC -o without_nodrop.so without_nodrop.c -ldl
 *     LD_PRELOAD=./without_nodrop.so chapters/12-io-uring/server --check
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/io_uring.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>

long syscall(long number, ...)
{
    static long (*real)(long, ...);
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "syscall");
        memcpy(&real, &sym, sizeof real);       /* object to function pointer */
    }
    /* Every system call takes at most six word-sized arguments. */
    long arg[6];
    va_list ap;
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        arg[i] = va_arg(ap, long);
    va_end(ap);
    long ret = real(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
    if (number == SYS_io_uring_setup && ret >= 0)
        ((struct io_uring_params *)arg[1])->features &= ~(unsigned)IORING_FEAT_NODROP;
    return ret;
}
