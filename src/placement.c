/*
 * placement.c - the decision half of a woken worker's move (pool.c's spread_out makes it).
 * Kept apart, with no system calls, so that tests can check it case by case: what the kernel
 * does with a thread depends on the machine and its load.
 */
#define _GNU_SOURCE
#include "placement.h"

#ifdef __linux__
int
jobq__spread_wanted(int me, int caller, int waker, int starved)
{
    return me >= 0 && (me == caller || (starved && me == waker));
}

int
jobq__spread_target(int me, int caller, int waker, int starved, const cpu_set_t *allowed,
                    jobq__cpu_taken_fn taken, void *ctx)
{
    int c, shared = -1;

    if (!jobq__spread_wanted(me, caller, waker, starved))
        return -1;
    for (c = 0; c < CPU_SETSIZE; c++) {
        if (c == me || c == caller || !CPU_ISSET(c, allowed))
            continue;
        if (!taken(ctx, c))
            return c;
        if (shared < 0 && c != waker)
            shared = c;
    }
    /* Off the caller's CPU only to a free one: a parallel_for helper sharing a worker's CPU
     * gains nothing. A starved worker leaves the submitter even for a worker's CPU. */
    return me != caller ? shared : -1;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int jobq__placement_unused;
#endif
