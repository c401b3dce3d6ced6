/*
 * test-placement.c - jobq__spread_target, the decision a woken worker makes about moving, and
 * jobq__wake_submitter, whether a pop wakes a parked submitter (white-box: src/placement.h).
 * What the kernel then does with the threads depends on the machine and its load; the
 * end-to-end checks are in test-pool.c and test-parallel.c.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include "placement.h"

Test(placement, submitter_is_woken_at_low_water_only_from_its_own_cpu)
{
    /* Above low water nobody wakes it, on its CPU or not. */
    cr_assert_not(jobq__wake_submitter(513, 512, 3, 3, 0));
    /* At or below low water: from the CPU it parked on, yes; from another, not yet. */
    cr_assert(jobq__wake_submitter(512, 512, 3, 3, 0));
    cr_assert(jobq__wake_submitter(300, 512, 3, 3, 0));
    cr_assert_not(jobq__wake_submitter(512, 512, 2, 3, 0));
    cr_assert_not(jobq__wake_submitter(257, 512, 2, 3, 0));
    /* A popping thread whose CPU is unknown is "another CPU". */
    cr_assert_not(jobq__wake_submitter(300, 512, -1, 3, 0));
}

Test(placement, submitter_is_woken_at_half_low_water_from_any_cpu)
{
    cr_assert(jobq__wake_submitter(256, 512, 2, 3, 0));
    cr_assert(jobq__wake_submitter(0, 512, 2, 3, 0));
    cr_assert(jobq__wake_submitter(0, 512, -1, 3, 0));
    /* Capacity 1 (low water 0) and 2 (low water 1): woken once the ring is empty. */
    cr_assert(jobq__wake_submitter(0, 0, 0, 1, 0));
    cr_assert_not(jobq__wake_submitter(1, 1, 0, 1, 0));
    cr_assert(jobq__wake_submitter(0, 1, 0, 1, 0));
}

Test(placement, submitter_with_unknown_cpus_is_woken_at_low_water)
{
    /* Off Linux (or where getcpu fails) both CPUs read -1: the plain low-water rule. */
    cr_assert(jobq__wake_submitter(512, 512, -1, -1, 0));
    cr_assert_not(jobq__wake_submitter(513, 512, -1, -1, 0));
}

Test(placement, paced_submitter_is_woken_at_half_low_water_only)
{
    /* Parked on a timer for low water: workers wake it only as a fallback, at half of it,
     * from any CPU - its own included. */
    cr_assert_not(jobq__wake_submitter(512, 512, 3, 3, 1));
    cr_assert_not(jobq__wake_submitter(257, 512, 3, 3, 1));
    cr_assert_not(jobq__wake_submitter(300, 512, -1, -1, 1));
    cr_assert(jobq__wake_submitter(256, 512, 3, 3, 1));
    cr_assert(jobq__wake_submitter(256, 512, 2, 3, 1));
    cr_assert(jobq__wake_submitter(0, 512, -1, 3, 1));
}

#ifdef __linux__
/* ctx: an int array indexed by CPU, non-zero where another pool thread is. */
static int
taken_in(void *ctx, int cpu)
{
    const int *busy = ctx;

    return cpu < 8 && busy[cpu];
}

static cpu_set_t
cpus(int n)
{
    cpu_set_t s;
    int i;

    CPU_ZERO(&s);
    for (i = 0; i < n; i++)
        CPU_SET(i, &s);
    return s;
}

Test(placement, stays_when_neither_beside_the_caller_nor_starved)
{
    cpu_set_t all = cpus(4);
    int busy[8] = {0};

    /* On a CPU that is not the caller's, not starved: stay, wherever the waker is. */
    cr_assert_eq(jobq__spread_target(1, 0, 1, 0, 0, &all, taken_in, busy), -1);
    cr_assert_eq(jobq__spread_target(1, -1, -1, 0, 0, &all, taken_in, busy), -1);
    /* Starved but not on the waker's CPU: stay. */
    cr_assert_eq(jobq__spread_target(2, -1, 1, 1, 0, &all, taken_in, busy), -1);
    /* Unknown CPU: stay. */
    cr_assert_eq(jobq__spread_target(-1, -1, -1, 1, 0, &all, taken_in, busy), -1);
}

Test(placement, leaves_the_callers_cpu_for_a_free_one_only)
{
    cpu_set_t all = cpus(4);
    int busy[8] = {0};

    busy[1] = 1; /* a worker on CPU 1 */
    cr_assert_eq(jobq__spread_target(0, 0, -1, 0, 0, &all, taken_in, busy), 2);
    /* Every other CPU has a worker: nothing to gain. */
    busy[2] = busy[3] = 1;
    cr_assert_eq(jobq__spread_target(0, 0, -1, 0, 0, &all, taken_in, busy), -1);
    /* Beside the caller wins over starvation: still only to a free CPU. */
    cr_assert_eq(jobq__spread_target(0, 0, 0, 1, 0, &all, taken_in, busy), -1);
}

Test(placement, starved_worker_leaves_its_wakers_cpu_even_for_a_workers)
{
    cpu_set_t all = cpus(2);
    int busy[8] = {0};

    cr_assert_eq(jobq__spread_target(0, -1, 0, 1, 0, &all, taken_in, busy), 1);
    busy[1] = 1; /* the other worker is there: share it rather than the submitter's CPU */
    cr_assert_eq(jobq__spread_target(0, -1, 0, 1, 0, &all, taken_in, busy), 1);
    /* Not starved: the same placement stays. */
    cr_assert_eq(jobq__spread_target(0, -1, 0, 0, 0, &all, taken_in, busy), -1);
}

Test(placement, starved_worker_prefers_a_free_cpu_and_never_the_callers)
{
    cpu_set_t all = cpus(4);
    int busy[8] = {0};

    busy[1] = 1;
    cr_assert_eq(jobq__spread_target(0, -1, 0, 1, 0, &all, taken_in, busy), 2);
    /* CPU 1 is the parallel_for caller's, 2 and 3 have workers: 2 (not the caller's). */
    busy[2] = busy[3] = 1;
    cr_assert_eq(jobq__spread_target(0, 1, 0, 1, 0, &all, taken_in, busy), 2);
}

Test(placement, only_allowed_cpus)
{
    cpu_set_t some;
    int busy[8] = {0};

    CPU_ZERO(&some);
    CPU_SET(0, &some);
    CPU_SET(3, &some);
    cr_assert_eq(jobq__spread_target(0, 0, -1, 0, 0, &some, taken_in, busy), 3);
    cr_assert_eq(jobq__spread_target(0, -1, 0, 1, 0, &some, taken_in, busy), 3);
    /* A single allowed CPU: never move. */
    CPU_CLR(3, &some);
    cr_assert_eq(jobq__spread_target(0, 0, 0, 1, 0, &some, taken_in, busy), -1);
}

Test(placement, stacked_worker_moves_to_a_free_cpu_only)
{
    cpu_set_t all = cpus(2);
    int busy[8] = {0};

    /* Another awake worker woke on CPU 0 too; CPU 1 has the submitter that woke them: go. */
    busy[0] = 1;
    cr_assert_eq(jobq__spread_target(0, -1, 1, 0, 1, &all, taken_in, busy), 1);
    cr_assert_eq(jobq__spread_target(0, -1, -1, 0, 1, &all, taken_in, busy), 1);
    /* A worker on CPU 1 as well: sharing another worker's CPU gains nothing, stay. */
    busy[1] = 1;
    cr_assert_eq(jobq__spread_target(0, -1, 1, 0, 1, &all, taken_in, busy), -1);
    /* Not stacked: stay. */
    busy[1] = 0;
    cr_assert_eq(jobq__spread_target(0, -1, 1, 0, 0, &all, taken_in, busy), -1);
}

Test(placement, starved_worker_ignores_stacking)
{
    cpu_set_t all = cpus(2);
    int busy[8] = {0};

    /* Starved, stacked on a worker, the submitter on CPU 1: the starved rule keeps it off the
     * submitter's CPU, so the stacked rule must not send it there (they would alternate). */
    busy[0] = 1;
    cr_assert_eq(jobq__spread_target(0, -1, 1, 1, 1, &all, taken_in, busy), -1);
    cr_assert(!jobq__spread_wanted(0, -1, 1, 1, 1));
    /* Starved on the submitter's CPU, stacked or not: leave it as before. */
    cr_assert_eq(jobq__spread_target(1, -1, 1, 1, 1, &all, taken_in, busy), 0);
}

Test(placement, stacked_worker_never_moves_onto_the_callers_cpu)
{
    cpu_set_t all = cpus(3);
    int busy[8] = {0};

    /* CPU 1 is the parallel_for caller's (taken), CPU 2 free. */
    busy[0] = busy[1] = 1;
    cr_assert_eq(jobq__spread_target(0, 1, -1, 0, 1, &all, taken_in, busy), 2);
    busy[2] = 1;
    cr_assert_eq(jobq__spread_target(0, 1, -1, 0, 1, &all, taken_in, busy), -1);
}
#endif
