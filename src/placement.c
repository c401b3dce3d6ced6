/*
 * placement.c - the decision half of a woken worker's move (pool.c's spread_out makes it).
 * Kept apart, with no system calls, so that tests can check it case by case: what the kernel
 * does with a thread depends on the machine and its load.
 */
#define _GNU_SOURCE
#include "placement.h"

#ifdef __linux__
/* A starved worker ignores `stacked`: it moves off its submitter's CPU onto a worker's if need
 * be, and the stacked rule would move it straight back. */
int
jobq__spread_wanted(int me, int caller, int waker, int starved, int stacked)
{
    return me >= 0 && (me == caller || (starved ? me == waker : stacked));
}

int
jobq__spread_target(int me, int caller, int waker, int starved, int stacked,
                    const cpu_set_t *allowed, jobq__cpu_taken_fn taken, void *ctx)
{
    int c, shared = -1;

    if (!jobq__spread_wanted(me, caller, waker, starved, stacked))
        return -1;
    for (c = 0; c < CPU_SETSIZE; c++) {
        if (c == me || c == caller || !CPU_ISSET(c, allowed))
            continue;
        if (!taken(ctx, c))
            return c;
        if (shared < 0 && c != waker)
            shared = c;
    }
    /* Off the caller's or another worker's CPU only to a free one: sharing a worker's CPU
     * gains nothing. A starved worker leaves the submitter even for a worker's CPU. */
    return me != caller && starved && me == waker ? shared : -1;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int jobq__placement_unused;
#endif
