#include "unit.h"

#include <errno.h>
#include <string.h>

char unit_why[512];

int unit_main(int argc, char **argv, const struct unit_case *cases, size_t count,
              void (*before)(void), int (*after)(void))
{
    int ran = 0, failures = 0;
    for (size_t i = 0; i < count; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        ran++;
        unit_why[0] = '\0';
        errno = 0;
        if (before != NULL)
            before();
        int rc = cases[i].run();
        if (after != NULL && after() < 0)
            rc = -1;
        if (rc == 0) {
            printf("ok %s\n", cases[i].name);
        } else {
            printf("not ok %s: %s\n", cases[i].name,
                   unit_why[0] ? unit_why : errno ? strerror(errno) : "failed");
            failures++;
        }
        fflush(stdout);         /* each line out before the next case can crash */
    }
    if (ran == 0) {
        fprintf(stderr, "%s: no case named %s\n", argv[0], argc > 1 ? argv[1] : "?");
        return 2;
    }
    return failures ? 1 : 0;
}
