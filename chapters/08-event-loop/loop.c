/*
 * loop.c: the event loop of loop.h. Read loop.h first: it lists the steps of
 * one iteration, and loop_run_once below follows them in that order.
 *
 * The data it keeps:
 *   - a table indexed by descriptor: the reader and writer callbacks, what the
 *     backend is told to watch, and a generation number (see dispatch_io);
 *   - a min-heap of timers ordered by (deadline, sequence number);
 *   - a FIFO of callbacks for call_soon;
 *   - a mutex-protected list of thread-safe calls, and a wake-up descriptor
 *     that other threads and signal handlers write to, to wake the loop (an
 *     eventfd on Linux; elsewhere a pipe, the classic "self-pipe").
 *
 * Readiness itself (epoll, poll) is behind the six functions of
 * loop_backend.h, one file per backend, chosen below when the file is built.
 */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop_backend.h"

/* Linux has epoll and eventfd; everywhere else (and on Linux with
 * -DLOOP_BACKEND_POLL, which make passes for the poll backend, so that it
 * is tested here) poll and a pipe. The backend file is included, not
 * linked, as Redis's ae.c does: every program that links loop.c gets the
 * right one without naming it. */
#if defined(__linux__) && !defined(LOOP_BACKEND_POLL)
#include "loop_epoll.c"
#define LOOP_EVENTFD 1
#include <sys/eventfd.h>
#else
#include "loop_poll.c"
#define LOOP_EVENTFD 0
#endif

#define MAX_EVENTS 256
#define MAX_SIGNAL 65           /* signals 1..64 */

struct loop_handle {
    loop_callback *cb;
    void *arg;
    uint64_t when_us;           /* timers: deadline on the loop's clock */
    uint64_t interval_us;       /* repeating timers: 0 for one-shot */
    uint64_t sequence;          /* timers: ties on when_us go in this order */
    size_t heap_index;          /* timers: where it sits in the heap */
    struct loop_handle *next;   /* call_soon FIFO, thread-safe list, due timers */
    int is_timer;
    int in_batch;               /* timers: taken out of the heap to run this step */
    int cancelled;
};

struct io_watch {
    loop_io_callback *read_cb, *write_cb;
    void *read_arg, *write_arg;
    uint32_t events;            /* what the backend watches: LOOP_READ|LOOP_WRITE */
    uint32_t generation;        /* +1 each time fd leaves the backend */
};

struct signal_watch {
    loop_callback *cb;
    void *arg;
    struct sigaction previous;
};

struct loop {
    uint64_t now_us;
    int stopping;

    struct io_watch *watches;
    size_t watch_capacity;
    size_t io_count;            /* registered (fd, direction) pairs */

    struct loop_handle **heap;
    size_t heap_length, heap_capacity;
    uint64_t next_sequence;

    struct loop_handle *soon_head, *soon_tail;
    size_t soon_count;
    struct loop_handle *running;    /* the handle whose callback is running */

    pthread_mutex_t threadsafe_lock;
    struct loop_handle *threadsafe_head, *threadsafe_tail;
    int wake_fd;                /* read end: the loop watches it */
    int wake_write_fd;          /* other threads and signals write here (eventfd: the same) */

    struct signal_watch signals[MAX_SIGNAL];
    size_t signal_count;

    struct backend *backend;
    struct backend_event ready[MAX_EVENTS];
};

/* ---- time ---------------------------------------------------------------- */

static uint64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t loop_time(const struct loop *loop)
{
    return loop->now_us / 1000u;
}

/* ---- readers and writers ------------------------------------------------- */

static struct io_watch *watch_of(struct loop *loop, int fd)
{
    return fd >= 0 && (size_t)fd < loop->watch_capacity ? &loop->watches[fd] : NULL;
}

static uint64_t token_of(int fd, uint32_t generation)
{
    return (uint64_t)generation << 32 | (uint32_t)fd;
}

/* Tell the backend to watch fd for `events` instead of `old` (0 = not at all). */
static int watch_backend(struct loop *loop, int fd, uint32_t old, uint32_t events, uint64_t token)
{
    if (old == 0)
        return backend_add(loop->backend, fd, events, token);
    if (events == 0)
        return backend_delete(loop->backend, fd);
    return backend_modify(loop->backend, fd, events, token);
}

/* Set (cb != NULL) or clear one direction of fd, and update the backend. */
static int set_watch(struct loop *loop, int fd, uint32_t direction, loop_io_callback *cb, void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= loop->watch_capacity) {
        if (cb == NULL)
            return 0;           /* nothing registered there: nothing to remove */
        size_t capacity = loop->watch_capacity ? loop->watch_capacity : 64;
        while (capacity <= (size_t)fd)
            capacity *= 2;
        struct io_watch *grown = realloc(loop->watches, capacity * sizeof *grown);
        if (grown == NULL)
            return -1;
        memset(grown + loop->watch_capacity, 0, (capacity - loop->watch_capacity) * sizeof *grown);
        loop->watches = grown;
        loop->watch_capacity = capacity;
    }
    struct io_watch *w = &loop->watches[fd];
    uint32_t events = cb != NULL ? (w->events | direction) : (w->events & ~direction);
    if (w->events == 0 && events != 0)
        w->generation++;        /* a new registration: events for an old one are stale */
    if (events != w->events && watch_backend(loop, fd, w->events, events, token_of(fd, w->generation)) < 0)
        return -1;
    int was_set = (w->events & direction) != 0;
    if (direction == LOOP_READ) {
        w->read_cb = cb;
        w->read_arg = arg;
    } else {
        w->write_cb = cb;
        w->write_arg = arg;
    }
    loop->io_count += (cb != NULL) - was_set;
    w->events = events;
    return 0;
}

int loop_add_reader(struct loop *loop, int fd, loop_io_callback *cb, void *arg)
{
    return set_watch(loop, fd, LOOP_READ, cb, arg);
}

int loop_remove_reader(struct loop *loop, int fd)
{
    return set_watch(loop, fd, LOOP_READ, NULL, NULL);
}

int loop_add_writer(struct loop *loop, int fd, loop_io_callback *cb, void *arg)
{
    return set_watch(loop, fd, LOOP_WRITE, cb, arg);
}

int loop_remove_writer(struct loop *loop, int fd)
{
    return set_watch(loop, fd, LOOP_WRITE, NULL, NULL);
}

/*
 * Step 4. An event names the registration it was reported for (fd and
 * generation). Each callback is looked up again just before it is called, so
 * one that an earlier callback removed is skipped; and if the descriptor was
 * removed, closed, and its number reused for a new registration, the
 * generation differs and the old event is dropped.
 */
static void dispatch_io(struct loop *loop, int count)
{
    for (int i = 0; i < count; i++) {
        int fd = (int)(uint32_t)loop->ready[i].token;
        uint32_t generation = (uint32_t)(loop->ready[i].token >> 32);
        uint32_t events = loop->ready[i].events;
        struct io_watch *w = watch_of(loop, fd);

        if (w != NULL && w->generation == generation && w->read_cb != NULL &&
            (events & (LOOP_READ | LOOP_ERROR)))
            w->read_cb(loop, fd, w->read_arg);
        w = watch_of(loop, fd);     /* the callback may have grown the table */
        if (w != NULL && w->generation == generation && w->write_cb != NULL &&
            (events & (LOOP_WRITE | LOOP_ERROR)))
            w->write_cb(loop, fd, w->write_arg);
    }
}

/* ---- timers: a binary min-heap on (when_us, sequence) -------------------- */

static int earlier(const struct loop_handle *a, const struct loop_handle *b)
{
    return a->when_us < b->when_us || (a->when_us == b->when_us && a->sequence < b->sequence);
}

static void heap_place(struct loop *loop, size_t i, struct loop_handle *h)
{
    loop->heap[i] = h;
    h->heap_index = i;
}

static void heap_sift_up(struct loop *loop, size_t i)
{
    struct loop_handle *h = loop->heap[i];
    while (i > 0 && earlier(h, loop->heap[(i - 1) / 2])) {
        heap_place(loop, i, loop->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(loop, i, h);
}

static void heap_sift_down(struct loop *loop, size_t i)
{
    struct loop_handle *h = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_length)
            break;
        if (child + 1 < loop->heap_length && earlier(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!earlier(loop->heap[child], h))
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, h);
}

static int heap_push(struct loop *loop, struct loop_handle *h)
{
    if (loop->heap_length == loop->heap_capacity) {
        size_t capacity = loop->heap_capacity ? loop->heap_capacity * 2 : 64;
        struct loop_handle **grown = realloc(loop->heap, capacity * sizeof *grown);
        if (grown == NULL)
            return -1;
        loop->heap = grown;
        loop->heap_capacity = capacity;
    }
    h->sequence = loop->next_sequence++;
    loop->heap[loop->heap_length++] = h;
    heap_sift_up(loop, loop->heap_length - 1);
    return 0;
}

static void heap_remove(struct loop *loop, size_t i)
{
    struct loop_handle *last = loop->heap[--loop->heap_length];
    if (i == loop->heap_length)
        return;
    heap_place(loop, i, last);
    heap_sift_up(loop, i);
    heap_sift_down(loop, last->heap_index);
}

static struct loop_handle *new_handle(loop_callback *cb, void *arg)
{
    struct loop_handle *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->cb = cb;
        h->arg = arg;
    }
    return h;
}

static struct loop_handle *add_timer(struct loop *loop, uint64_t when_us, uint64_t interval_us,
                                     loop_callback *cb, void *arg)
{
    struct loop_handle *h = new_handle(cb, arg);
    if (h == NULL)
        return NULL;
    h->is_timer = 1;
    h->when_us = when_us;
    h->interval_us = interval_us;
    if (heap_push(loop, h) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* Milliseconds to microseconds, and a sum, that stop at "never" instead of
 * wrapping round to a time in the past. */
#define NEVER UINT64_MAX
static uint64_t us_of_ms(uint64_t ms) { return ms > NEVER / 1000u ? NEVER : ms * 1000u; }
static uint64_t add_us(uint64_t a, uint64_t b) { return b > NEVER - a ? NEVER : a + b; }

struct loop_handle *loop_call_at(struct loop *loop, uint64_t when_ms, loop_callback *cb, void *arg)
{
    return add_timer(loop, us_of_ms(when_ms), 0, cb, arg);
}

struct loop_handle *loop_call_later(struct loop *loop, uint64_t delay_ms, loop_callback *cb, void *arg)
{
    return add_timer(loop, add_us(loop->now_us, us_of_ms(delay_ms)), 0, cb, arg);
}

struct loop_handle *loop_call_every(struct loop *loop, uint64_t interval_ms, loop_callback *cb, void *arg)
{
    if (interval_ms == 0) {
        errno = EINVAL;
        return NULL;
    }
    return add_timer(loop, add_us(loop->now_us, us_of_ms(interval_ms)), us_of_ms(interval_ms), cb, arg);
}

/* Step 5: run the timers that were due when the step began, earliest first.
 * They are taken out of the heap before any runs, so that a timer scheduled
 * meanwhile waits for the next iteration, even one already due (call_later(0)
 * from a timer callback, or call_at a past time). Run straight from the heap,
 * a timer that re-arms itself that way would spin here for ever, and no
 * descriptor, call_soon callback, signal or older timer would be served. */
static void run_timers(struct loop *loop)
{
    struct loop_handle *due = NULL, **last = &due;
    while (loop->heap_length > 0 && loop->heap[0]->when_us <= loop->now_us) {
        struct loop_handle *h = loop->heap[0];
        heap_remove(loop, 0);
        h->in_batch = 1;
        h->next = NULL;
        *last = h;
        last = &h->next;
    }
    while (due != NULL) {
        struct loop_handle *h = due;
        due = h->next;
        h->in_batch = 0;
        if (h->cancelled) {         /* by an earlier callback of this batch */
            free(h);
            continue;
        }
        loop->running = h;
        h->cb(loop, h->arg);
        loop->running = NULL;
        if (h->interval_us == 0 || h->cancelled) {
            free(h);
            continue;
        }
        /* Repeat from the deadline, not from now, so the period does not drift;
         * but never into the past, or a late loop would fire it in a burst. */
        h->when_us = add_us(h->when_us, h->interval_us);
        if (h->when_us <= loop->now_us)
            h->when_us = add_us(loop->now_us, h->interval_us);
        if (heap_push(loop, h) < 0)
            free(h);            /* out of memory: the timer stops repeating */
    }
}

/* ---- call_soon ----------------------------------------------------------- */

static void soon_append(struct loop *loop, struct loop_handle *h)
{
    h->next = NULL;
    if (loop->soon_tail != NULL)
        loop->soon_tail->next = h;
    else
        loop->soon_head = h;
    loop->soon_tail = h;
    loop->soon_count++;
}

struct loop_handle *loop_call_soon(struct loop *loop, loop_callback *cb, void *arg)
{
    struct loop_handle *h = new_handle(cb, arg);
    if (h != NULL)
        soon_append(loop, h);
    return h;
}

/* Step 6: run what was queued before this step began, no more. */
static void run_soon(struct loop *loop)
{
    for (size_t n = loop->soon_count; n > 0; n--) {
        struct loop_handle *h = loop->soon_head;
        loop->soon_head = h->next;
        if (loop->soon_head == NULL)
            loop->soon_tail = NULL;
        loop->soon_count--;
        if (!h->cancelled) {
            loop->running = h;
            h->cb(loop, h->arg);
            loop->running = NULL;
        }
        free(h);
    }
}

void loop_cancel(struct loop *loop, struct loop_handle *h)
{
    if (h == NULL || h->cancelled)
        return;
    h->cancelled = 1;
    /* A pending timer leaves the heap now; a due one waiting in this step's
     * batch, or a queued call_soon, is skipped and freed when its turn comes;
     * a running one is freed when it returns. */
    if (h->is_timer && h != loop->running && !h->in_batch) {
        heap_remove(loop, h->heap_index);
        free(h);
    }
}

/* ---- waking the loop: other threads and signals -------------------------- */

static volatile sig_atomic_t signal_pending[MAX_SIGNAL];
static volatile sig_atomic_t signal_wake_fd[MAX_SIGNAL];

/* An eventfd adds the 8-byte value to its counter; a pipe just holds the
 * bytes. Either way the read end is now readable. */
static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof one);  /* async-signal-safe */
    (void)ignored;      /* EAGAIN: the counter (or the pipe) is full, the loop will wake */
}

/* The whole signal handler: record, wake, return. The work happens in the
 * callback, on the loop's thread, where any function may be called. */
static void on_signal(int signo)
{
    int saved = errno;
    signal_pending[signo] = 1;
    if (signal_wake_fd[signo] >= 0)
        wake(signal_wake_fd[signo]);
    errno = saved;
}

int loop_call_soon_threadsafe(struct loop *loop, loop_callback *cb, void *arg)
{
    struct loop_handle *h = new_handle(cb, arg);
    if (h == NULL)
        return -1;
    pthread_mutex_lock(&loop->threadsafe_lock);
    if (loop->threadsafe_tail != NULL)
        loop->threadsafe_tail->next = h;
    else
        loop->threadsafe_head = h;
    loop->threadsafe_tail = h;
    pthread_mutex_unlock(&loop->threadsafe_lock);
    wake(loop->wake_write_fd);
    return 0;
}

/* The wake-up descriptor is readable: collect thread-safe calls and signals. */
static void on_wake(struct loop *loop, int fd, void *arg)
{
    uint64_t drain[32];
    (void)arg;
    /* Empty it first (one read resets an eventfd; a pipe may hold many
     * pokes): a call queued after this point wakes us again. */
    for (;;) {
        ssize_t n = read(fd, drain, sizeof drain);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < (ssize_t)sizeof drain || LOOP_EVENTFD)
            break;
    }
    pthread_mutex_lock(&loop->threadsafe_lock);
    struct loop_handle *h = loop->threadsafe_head;
    loop->threadsafe_head = loop->threadsafe_tail = NULL;
    pthread_mutex_unlock(&loop->threadsafe_lock);
    while (h != NULL) {
        struct loop_handle *next = h->next;
        soon_append(loop, h);
        h = next;
    }
    for (int signo = 1; signo < MAX_SIGNAL; signo++)
        if (loop->signals[signo].cb != NULL && signal_pending[signo]) {
            signal_pending[signo] = 0;
            loop->signals[signo].cb(loop, loop->signals[signo].arg);
        }
}

int loop_add_signal_handler(struct loop *loop, int signo, loop_callback *cb, void *arg)
{
    if (signo <= 0 || signo >= MAX_SIGNAL || cb == NULL ||
        (signal_wake_fd[signo] >= 0 && signal_wake_fd[signo] != loop->wake_write_fd)) {
        errno = EINVAL;         /* bad signal, or another loop has it */
        return -1;
    }
    struct signal_watch *s = &loop->signals[signo];
    if (s->cb == NULL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;   /* nothing should see EINTR because of us */
        signal_pending[signo] = 0;
        signal_wake_fd[signo] = loop->wake_write_fd;
        if (sigaction(signo, &sa, &s->previous) < 0) {
            signal_wake_fd[signo] = -1;
            return -1;
        }
        loop->signal_count++;
    }
    s->cb = cb;
    s->arg = arg;
    return 0;
}

int loop_remove_signal_handler(struct loop *loop, int signo)
{
    if (signo <= 0 || signo >= MAX_SIGNAL) {
        errno = EINVAL;
        return -1;
    }
    struct signal_watch *s = &loop->signals[signo];
    if (s->cb == NULL)
        return 0;
    if (sigaction(signo, &s->previous, NULL) < 0)
        return -1;
    signal_wake_fd[signo] = -1;
    s->cb = NULL;
    loop->signal_count--;
    return 0;
}

int loop_add_stop_handler(struct loop *loop, loop_callback *cb, void *arg)
{
    if (loop_add_signal_handler(loop, SIGINT, cb, arg) < 0)
        return -1;
    if (loop_add_signal_handler(loop, SIGTERM, cb, arg) < 0) {
        int saved = errno;
        loop_remove_signal_handler(loop, SIGINT);
        errno = saved;
        return -1;
    }
    return 0;
}

void loop_remove_stop_handler(struct loop *loop)
{
    loop_remove_signal_handler(loop, SIGINT);
    loop_remove_signal_handler(loop, SIGTERM);
}

/* ---- the loop itself ------------------------------------------------------ */

static pthread_once_t signals_once = PTHREAD_ONCE_INIT;

static void init_signal_table(void)
{
    for (int i = 0; i < MAX_SIGNAL; i++)
        signal_wake_fd[i] = -1;
}

/* The wake-up descriptor(s): fds[0] to watch, fds[1] to write to. */
static int wake_open(int fds[2])
{
#if LOOP_EVENTFD
    fds[0] = fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fds[0] < 0 ? -1 : 0;
#else
    /* Both ends non-blocking: a full pipe must not block a signal handler,
     * and draining stops at "empty" instead of waiting. */
    if (pipe(fds) < 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            int saved = errno;
            close(fds[0]);
            close(fds[1]);
            errno = saved;
            return -1;
        }
    return 0;
#endif
}

static void wake_close(struct loop *loop)
{
    if (loop->wake_write_fd >= 0 && loop->wake_write_fd != loop->wake_fd)
        close(loop->wake_write_fd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
}

struct loop *loop_new(void)
{
    pthread_once(&signals_once, init_signal_table);
    struct loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return NULL;
    loop->now_us = clock_us();
    int fds[2] = {-1, -1};
    int ok = wake_open(fds) == 0;
    loop->wake_fd = fds[0];
    loop->wake_write_fd = fds[1];
    if (!ok || (loop->backend = backend_create()) == NULL ||
        pthread_mutex_init(&loop->threadsafe_lock, NULL) != 0 ||
        set_watch(loop, loop->wake_fd, LOOP_READ, on_wake, NULL) < 0) {
        int saved = errno;
        wake_close(loop);
        if (loop->backend != NULL)
            backend_free(loop->backend);
        free(loop->watches);
        free(loop);
        errno = saved;
        return NULL;
    }
    loop->io_count = 0;         /* the wake-up reader does not keep the loop alive */
    return loop;
}

static int has_work(struct loop *loop)
{
    if (loop->io_count > 0 || loop->heap_length > 0 || loop->soon_count > 0 || loop->signal_count > 0)
        return 1;
    /* Other threads append to this list: look at it under its lock. */
    pthread_mutex_lock(&loop->threadsafe_lock);
    int pending = loop->threadsafe_head != NULL;
    pthread_mutex_unlock(&loop->threadsafe_lock);
    return pending;
}

int loop_free(struct loop *loop)
{
    if (has_work(loop)) {
        errno = EBUSY;
        return -1;
    }
    backend_free(loop->backend);
    wake_close(loop);
    pthread_mutex_destroy(&loop->threadsafe_lock);
    free(loop->watches);
    free(loop->heap);
    free(loop);
    return 0;
}

/* ---- the calling thread's loop ---------------------------------------------- */

static _Thread_local struct loop *thread_loop;      /* set with loop_set_current */
static _Thread_local struct loop *running_loop;     /* inside loop_run_once */

struct loop *loop_current(void)
{
    return running_loop != NULL ? running_loop : thread_loop;
}

void loop_set_current(struct loop *loop)
{
    thread_loop = loop;
}

/* Step 1: how long the backend may sleep, in whole milliseconds, rounded up. */
static int sleep_budget_ms(const struct loop *loop)
{
    if (loop->soon_count > 0 || loop->stopping)
        return 0;
    if (loop->heap_length == 0)
        return -1;
    uint64_t when = loop->heap[0]->when_us;
    if (when <= loop->now_us)
        return 0;
    uint64_t ms = (when - loop->now_us + 999) / 1000;
    return ms > 24u * 3600 * 1000 ? 24 * 3600 * 1000 : (int)ms;
}

int loop_run_once(struct loop *loop)
{
    struct loop *outer = running_loop;      /* a loop may run another, nested */
    running_loop = loop;
    loop->now_us = clock_us();
    int count = backend_wait(loop->backend, loop->ready, MAX_EVENTS,   /* steps 1-2 */
                             sleep_budget_ms(loop));
    if (count >= 0) {
        loop->now_us = clock_us();                              /* step 3 */
        dispatch_io(loop, count);                               /* step 4 */
        run_timers(loop);                                       /* step 5 */
        run_soon(loop);                                         /* step 6 */
    }
    running_loop = outer;
    return count < 0 ? -1 : has_work(loop);
}

int loop_run(struct loop *loop)
{
    while (!loop->stopping && has_work(loop))
        if (loop_run_once(loop) < 0)
            return -1;
    loop->stopping = 0;
    return 0;
}

void loop_stop(struct loop *loop)
{
    loop->stopping = 1;
}
