/*
 * loop_backend.h: the readiness layer under loop.c, as a small fixed
 * interface (Redis's ae.c keeps its backends behind one like it). Each
 * backend is one file that defines struct backend and these six functions:
 *
 *     loop_epoll.c   epoll: Linux. The kernel keeps the interest list, and a
 *                    wait costs O(ready descriptors).
 *     loop_poll.c    poll: POSIX, so macOS and the BSDs. The interest list is
 *                    an array passed in full to every wait: O(all descriptors),
 *                    as in chapter 06.
 *
 * loop.c includes one of them (see the top of loop.c); a kqueue backend for
 * macOS and the BSDs would be a third file with the same six functions.
 *
 * The loop hands the backend a token with each descriptor (the descriptor
 * and a generation number) and gets it back with each event: the backend
 * never needs to know what the token means. Every function returns -1 with
 * errno set on failure, except backend_wait, which returns 0 when a signal
 * interrupted the wait (the loop then goes round again).
 */
#ifndef LOOP_BACKEND_H
#define LOOP_BACKEND_H

#include <stdint.h>

#define LOOP_READ 1u
#define LOOP_WRITE 2u
#define LOOP_ERROR 4u           /* error or hang-up: both callbacks find out */

struct backend;

struct backend_event {
    uint64_t token;             /* as given to backend_add/backend_modify */
    uint32_t events;            /* LOOP_READ | LOOP_WRITE | LOOP_ERROR */
};

/* A backend watching nothing yet. */
static struct backend *backend_create(void);

/* Start watching fd (not watched yet) for events (LOOP_READ|LOOP_WRITE, not 0). */
static int backend_add(struct backend *b, int fd, uint32_t events, uint64_t token);

/* Watch fd (watched already) for other events, or with another token. */
static int backend_modify(struct backend *b, int fd, uint32_t events, uint64_t token);

/* Stop watching fd. */
static int backend_delete(struct backend *b, int fd);

/* Sleep until a descriptor is ready or timeout_ms passes (-1: no limit);
 * fill at most max events. Returns how many. */
static int backend_wait(struct backend *b, struct backend_event *ready, int max, int timeout_ms);

static void backend_free(struct backend *b);

#endif
