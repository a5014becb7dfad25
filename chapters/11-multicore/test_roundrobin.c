/*
 * Unit tests of roundrobin.h, run through common/unit.h: each case prints
 * "ok NAME" or "not ok NAME: why".
 *
 *     ./test_roundrobin          run every case; exit 1 if any failed
 *     ./test_roundrobin NAME     run one case (tests/11-multicore.bats does this)
 *
 * A server would need 2^31 hand-offs to reach the overflow the acceptor's
 * old `next++ % count` (an int) had; here the turn simply starts there.
 */
#include <limits.h>

#include "roundrobin.h"
#include "unit.h"

/* From turn, n picks over count workers come in turn: each in range, each
 * the one after the last. */
static int picks_in_turn(unsigned turn, unsigned count, unsigned n)
{
    unsigned last = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned pick = round_robin_next(&turn, count);
        CHECK(pick < count, "pick %u: worker %u of %u", i, pick, count);
        CHECK(i == 0 || pick == (last + 1) % count,
              "pick %u: worker %u after worker %u (of %u): not in turn", i, pick, last, count);
        last = pick;
    }
    return 0;
}

static int test_in_turn(void)
{
    for (unsigned count = 1; count <= 8; count++) {
        unsigned turn = 0;
        for (unsigned i = 0; i < 3 * count; i++) {
            unsigned pick = round_robin_next(&turn, count);
            CHECK(pick == i % count, "%u workers, pick %u: worker %u, expected %u", count, i, pick, i % count);
        }
    }
    return 0;
}

/* Where `int next; next++ % count` overflows: INT_MAX hand-offs. */
static int test_past_int_max(void)
{
    for (unsigned count = 1; count <= 8; count++)
        if (picks_in_turn((unsigned)INT_MAX - 3, count, 2 * count + 8) < 0)
            return -1;
    return 0;
}

/* Where an unsigned counter would wrap to 0: with 3 workers, 2^32 is not a
 * multiple of 3, and a counter would give one worker two in a row. */
static int test_past_uint_max(void)
{
    for (unsigned count = 1; count <= 8; count++)
        if (picks_in_turn(UINT_MAX - 3, count, 2 * count + 8) < 0)
            return -1;
    return 0;
}

/* The turn is an index, not a count: after every pick it is below count, so
 * no number of hand-offs can make it overflow. */
static int test_turn_stays_below_count(void)
{
    for (unsigned count = 1; count <= 8; count++) {
        unsigned turn = 0;
        for (unsigned i = 0; i < 1000; i++) {
            round_robin_next(&turn, count);
            CHECK(turn < count, "%u workers: after %u picks the turn is %u", count, i + 1, turn);
        }
    }
    return 0;
}

static const struct unit_case cases[] = {
    { "in-turn", test_in_turn },
    { "past-int-max", test_past_int_max },
    { "past-uint-max", test_past_uint_max },
    { "turn-stays-below-count", test_turn_stays_below_count },
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
