/*
 * Chapter 03 — threads: a thread per client, or a pool of N threads.
 *
 * Like chapter 02, but the workers are threads: they share the process's
 * memory, so counters need a mutex instead of a pipe, and a thread is much
 * cheaper to start than a process. Two ways to use them:
 *
 *   server            a new thread for every client (detached: nobody joins it)
 *   server --pool N   N threads started up front; the main thread accepts and
 *                     puts each socket in a bounded queue, and a free thread
 *                     takes it. At most N clients are served at once; up to
 *                     QUEUE_CAPACITY more wait their turn, and past that a new
 *                     client is closed at once rather than held without bound.
 *
 * The main thread alone receives SIGINT/SIGTERM (the workers block them), so
 * its accept() is the call the signal interrupts. To stop, it shuts down every
 * client socket, which wakes the threads blocked reading them, and waits for
 * them to finish.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "contract.h"
#include "echo.h"
#include "net.h"
#include "trace.h"

#define QUEUE_CAPACITY 64
#define THREAD_STACK_SIZE (256 * 1024)   /* the echo loop needs ~20 KiB; the default is 8 MiB */

/* Everything below is shared by the threads and guarded by lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;  /* queue or active set changed */
static unsigned long long bytes_echoed;
static int stopping;

/* The sockets being served, so a stop can wake the threads blocked on them. */
static int *active;
static size_t active_count, active_capacity;

/* --pool: accepted sockets waiting for a free thread (a ring buffer). */
static int queue[QUEUE_CAPACITY];
static size_t queue_head, queue_length;

static int add_active(int fd)
{
    if (active_count == active_capacity) {
        size_t capacity = active_capacity ? active_capacity * 2 : 64;
        int *grown = realloc(active, capacity * sizeof *grown);
        if (grown == NULL)
            return -1;
        active = grown;
        active_capacity = capacity;
    }
    active[active_count++] = fd;
    return 0;
}

/*
 * The socket is closed while lock is held: otherwise the main thread could
 * shut down a descriptor number that the kernel has already reused.
 */
static void finish_client(int fd, unsigned long long echoed)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < active_count; i++)
        if (active[i] == fd) {
            active[i] = active[--active_count];
            break;
        }
    bytes_echoed += echoed;
    close(fd);
    TRACE("close fd=%d", fd);
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* One thread, one client. The descriptor travels inside the pointer itself:
 * passing &fd instead would race with the main thread's next accept(). */
static void *client_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    finish_client(fd, echo_until_eof(fd));
    return NULL;
}

/* A pool thread: take the next queued socket, serve it, repeat until stopping. */
static void *pool_thread(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (queue_length == 0 && !stopping)
            pthread_cond_wait(&changed, &lock);
        if (stopping) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        int fd = queue[queue_head];
        queue_head = (queue_head + 1) % QUEUE_CAPACITY;
        queue_length--;
        int tracked = add_active(fd);
        pthread_mutex_unlock(&lock);
        if (tracked < 0) {
            finish_client(fd, 0);   /* out of memory: drop this client */
            continue;
        }
        TRACE("serve fd=%d", fd);
        finish_client(fd, echo_until_eof(fd));
    }
}

/* Start a thread that never handles SIGINT/SIGTERM (it inherits the mask). */
static int start_thread(pthread_t *thread, void *(*body)(void *), void *arg, int detached)
{
    pthread_attr_t attr;
    sigset_t stop_signals, old;
    int rc;

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    pthread_attr_setdetachstate(&attr, detached ? PTHREAD_CREATE_DETACHED : PTHREAD_CREATE_JOINABLE);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old);
    rc = pthread_create(thread, &attr, body, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* Hand a new client to a thread. Returns -1 if it had to be refused. */
static int dispatch(int fd, long pool_size)
{
    int refused = 0;
    pthread_t thread;

    pthread_mutex_lock(&lock);
    if (pool_size > 0) {
        if (queue_length == QUEUE_CAPACITY) {
            refused = 1;        /* every thread busy and the queue full */
        } else {
            queue[(queue_head + queue_length) % QUEUE_CAPACITY] = fd;
            queue_length++;
            pthread_cond_broadcast(&changed);
        }
    } else if (add_active(fd) < 0) {
        refused = 1;
    } else if ((errno = start_thread(&thread, client_thread, (void *)(intptr_t)fd, 1)) != 0) {
        TRACE("thread error=%s", strerror(errno));
        active_count--;         /* fd was the last one added */
        refused = 1;
    }
    pthread_mutex_unlock(&lock);
    return refused ? -1 : 0;
}

/* Wake every blocked thread, drop the queued clients, wait for the rest. */
static void stop_threads(pthread_t *pool, long pool_size)
{
    pthread_mutex_lock(&lock);
    stopping = 1;
    for (size_t i = 0; i < active_count; i++)
        shutdown(active[i], SHUT_RDWR);     /* its blocked read returns 0 */
    for (; queue_length > 0; queue_length--, queue_head = (queue_head + 1) % QUEUE_CAPACITY)
        close(queue[queue_head]);
    pthread_cond_broadcast(&changed);
    while (active_count > 0)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
    for (long i = 0; i < pool_size; i++)
        pthread_join(pool[i], NULL);
}

int main(int argc, char **argv)
{
    long pool_size = 0;
    const struct cli_option options[] = {
        { "--pool", "N", "serve with N pre-started threads (default: a thread per client)",
          1, 10000, &pool_size },
        { 0 },
    };
    struct cli cli = {
        .program = "server",
        .about = "Chapter 03: an echo server with a thread per client, or a pool of threads.",
        .options = options,
    };
    int parsed = cli_parse(&cli, argc, argv);
    if (parsed != CLI_OK)
        return cli_exit_code(&cli, parsed);
    if (contract_catch_signals() < 0) {
        perror("server: sigaction");
        return 1;
    }
    int listen_fd = contract_listen(&cli, SOMAXCONN);
    if (listen_fd < 0)
        return 1;

    pthread_t *pool = calloc(pool_size > 0 ? (size_t)pool_size : 1, sizeof *pool);
    long started = 0;
    while (pool != NULL && started < pool_size && start_thread(&pool[started], pool_thread, NULL, 0) == 0)
        started++;
    /* A failure needs a flag of its own: contract_stop says only that a signal
     * came, and one may come while the threads start, just after "listening on". */
    int failed = pool == NULL || started < pool_size;
    if (failed)     /* skip the loop, stop what did start, exit 1 */
        fprintf(stderr, "server: cannot start %ld threads\n", pool_size);

    unsigned long long connections_served = 0;
    contract_wake_on_stop(listen_fd, -1);  /* SIGTERM wakes accept() */
    while (!failed && !contract_stop) {
        char peer[NET_ADDRSTRLEN];
        int fd = contract_accept(listen_fd, peer, sizeof peer);
        if (fd < 0 && !contract_stop && net_accept_action(errno) == NET_ACCEPT_FATAL) {
            fprintf(stderr, "server: accept: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        if (fd < 0)
            continue;
        TRACE("accept fd=%d peer=%s", fd, peer);
        if (dispatch(fd, pool_size) < 0) {
            TRACE("refuse fd=%d reason=%s", fd, pool_size > 0 ? "queue full" : "no thread");
            close(fd);
            continue;
        }
        connections_served++;
    }

    close(listen_fd);
    stop_threads(pool, started);
    free(pool);
    free(active);
    contract_summary(&cli, connections_served, bytes_echoed);
    return failed ? 1 : 0;
}
