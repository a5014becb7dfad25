/*
 * roundrobin: whose turn is it? The acceptor hands each new socket to the
 * next of count workers: 0, 1, ..., count - 1, 0, 1, ...
 *
 * *turn is the index of the worker whose turn comes next, and it wraps
 * explicitly: after count - 1 comes 0. It is not a running count of
 * hand-offs taken modulo count, because such a count overflows on a
 * long-running server: an int after 2^31 hand-offs (undefined behaviour in
 * C: anything may happen, a negative index in practice), an unsigned after
 * 2^32 (defined, but the wrap to 0 gives one worker two sockets in a row
 * unless count divides 2^32). An index below count never overflows.
 *
 * Any starting value is a valid turn (it is taken modulo count), so a
 * caller may start anywhere; test_roundrobin starts where a counter would
 * have overflowed.
 */
#ifndef ROUNDROBIN_H
#define ROUNDROBIN_H

/* The worker whose turn it is (below count, which must be at least 1);
 * moves *turn on to the next one. */
static inline unsigned round_robin_next(unsigned *turn, unsigned count)
{
    unsigned pick = *turn % count;
    *turn = pick + 1 == count ? 0 : pick + 1;  /* pick + 1 <= count: no overflow */
    return pick;
}

#endif
