/*
 * unit: the few lines every C unit-test program here shares (test_loop,
 * test_stream, test_task). A program lists its cases; each prints
 * "ok NAME" or "not ok NAME: why", and bats runs them one by one:
 *
 *     ./test_loop                every case; exit 1 if any failed
 *     ./test_loop timer-order    one case; exit 2 if there is no such case
 */
#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>
#include <stdio.h>

struct unit_case {
    const char *name;
    int (*run)(void);           /* 0 passed; -1 failed, with unit_why set */
};

/* Why the case that just ran failed (CHECK fills it). */
extern char unit_why[512];

/* In a case: fail it with a message unless cond holds. */
#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            snprintf(unit_why, sizeof unit_why, __VA_ARGS__);       \
            return -1;                                              \
        }                                                           \
    } while (0)

/*
 * Run the case named argv[1], or all of them. before/after (either may be
 * NULL) run around each case; after returns -1 (with unit_why) to fail a
 * case that passed, e.g. when it left something behind.
 */
int unit_main(int argc, char **argv, const struct unit_case *cases, size_t count,
              void (*before)(void), int (*after)(void));

#endif
