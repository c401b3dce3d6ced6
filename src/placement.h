/*
 * placement.h - the CPU-aware decisions of pool.c: where a woken worker should move (see
 * spread_out) and which worker wakes a parked submitter (see made_room). Private.
 */
#ifndef JOBQ_PLACEMENT_H
#define JOBQ_PLACEMENT_H

#include <stddef.h>

/*
 * Whether a pop that left `size` jobs in the ring should wake the submitters parked for room:
 * at `low_water` when the popping thread runs on `me` == `parked`, the CPU the submitter parked
 * on (the kernel then queues it locally, with no inter-processor interrupt); at half of
 * low_water whatever the CPUs. With both CPUs unknown (-1, as off Linux) that is low_water.
 * `paced`: every parked submitter sleeps on a timer set for low water (see pace_ns in pool.c),
 * so only the half-low-water wake-up is left to workers, as a fallback for a late timer.
 */
int jobq__wake_submitter(size_t size, size_t low_water, int me, int parked, int paced);

#ifdef __linux__
#include <sched.h>

/* Whether CPU `cpu` has another pool thread on it (a worker, or the parallel_for caller). */
typedef int (*jobq__cpu_taken_fn)(void *ctx, int cpu);

/* Whether a worker woken on `me` should look for another CPU at all (see below): cheap, so
 * that the common case costs no system call. */
int jobq__spread_wanted(int me, int caller, int waker, int starved, int stacked);

/*
 * The CPU a worker that just woke up on `me` should move to, or -1 to stay. `caller`: CPU of
 * the last parallel_for caller (-1: none); `waker`: CPU of the last submitter that woke a
 * worker (-1: none); `starved`: the worker has been running out of work; `stacked`: another
 * awake worker woke on `me` too; `allowed`: its affinity mask. Moves when
 *   - me == caller: to an allowed CPU that is not taken, if there is one;
 *   - else, when starved and me == waker: to such a CPU, else to a taken one that is neither
 *     the caller's nor the waker's;
 *   - else, when stacked and not starved: to an allowed CPU that is not taken (the waker's CPU
 *     counts as free: a submitter that woke workers soon parks or shares), if there is one.
 * No system calls: the caller does the move.
 */
int jobq__spread_target(int me, int caller, int waker, int starved, int stacked,
                        const cpu_set_t *allowed, jobq__cpu_taken_fn taken, void *ctx);
#endif

#endif /* JOBQ_PLACEMENT_H */
