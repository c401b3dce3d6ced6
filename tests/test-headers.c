/*
 * test-headers.c - compiled once per public header (JOBQ_TEST_HEADER) and C standard: the header
 * must compile on its own, first in the unit, with -Wpedantic, and survive a second inclusion.
 * The build is the test; running it checks the version macros the core header promises.
 */
#include JOBQ_TEST_HEADER
#include JOBQ_TEST_HEADER /* include guard */

#include <stdio.h>
#include <string.h>

#include <jobq.h>

int
main(void)
{
    char v[32];

    (void)snprintf(v, sizeof(v), "%d.%d.%d", JOBQ_VERSION_MAJOR, JOBQ_VERSION_MINOR,
                   JOBQ_VERSION_PATCH);
    if (strcmp(v, JOBQ_VERSION_STRING) != 0) {
        fprintf(stderr, "JOBQ_VERSION_STRING %s != %s\n", JOBQ_VERSION_STRING, v);
        return 1;
    }
    printf("%s: compiles alone\n", JOBQ_TEST_HEADER);
    return 0;
}
