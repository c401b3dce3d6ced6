/*
 * placement.c - the decision half of pool.c's CPU-aware choices: a woken worker's move
 * (spread_out makes it) and who wakes a parked submitter (made_room). Kept apart, with no system
 * calls, so that tests can check them case by case: what the kernel does with a thread depends
 * on the machine and its load.
 */
#define _GNU_SOURCE
#include "placement.h"

int
jobq__wake_submitter(size_t size, size_t low_water, int me, int parked, int paced)
{
    return size <= low_water && (size <= low_water / 2 || (!paced && me == parked));
}

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
#endif
