/*
 * test-ring.c - white-box tests of the pool's private lock-free ring (src/ring.h).
 *
 * The pool tests exercise the ring through jobq_pool; these pin down the ring's own contract:
 * cell layout (one cell per cache line, the array aligned to one), FIFO order across laps,
 * the capacity bound (including capacity 1, which runs on two cells), runs claimed with one
 * push_n / pop, the `half` pop, the closed bit that only forced pushes pass, and a consumer's
 * announcement holding producers off the cells it has not copied out yet.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "ring.h"

static struct jobq__entry
entry(uintptr_t v)
{
    struct jobq__entry e;

    memset(&e, 0, sizeof(e));
    e.job.arg = (void *)v;
    return e;
}

static uintptr_t
value(const struct jobq__entry *e)
{
    return (uintptr_t)e->job.arg;
}

Test(ring, cells_are_cache_line_aligned_and_one_per_line)
{
    static const size_t caps[] = {1, 2, 3, 7, 64, 1000, 1024};
    struct jobq__ring r;
    size_t i;

    cr_assert_eq(sizeof(struct jobq__cell) % JOBQ__CACHE_LINE, 0);
    for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        cr_assert_eq(jobq__ring_init(&r, caps[i], 2), 0);
        /* A cell that straddles two lines shares one with its neighbour: a producer filling
         * cell p + 1 would then invalidate the line a consumer is reading cell p from. */
        cr_expect_eq((uintptr_t)r.cells % JOBQ__CACHE_LINE, 0, "capacity %zu: cells at %p",
                     caps[i], (void *)r.cells);
        jobq__ring_fini(&r);
    }
}

Test(ring, fifo_across_many_laps)
{
    struct jobq__ring r;
    struct jobq__entry e, out[4];
    uintptr_t next_in = 1, next_out = 1;
    size_t got, i, round;

    cr_assert_eq(jobq__ring_init(&r, 5, 2), 0); /* not a power of two: the modulo path */
    for (round = 0; round < 1000; round++) {
        size_t fill = 1 + round % 5;

        for (i = 0; i < fill; i++) {
            e = entry(next_in++);
            cr_assert_eq(jobq__ring_try_push(&r, &e, 0), 0, "round %zu", round);
        }
        while ((got = jobq__ring_try_pop(&r, 0, out, 4, 0, NULL)) > 0)
            for (i = 0; i < got; i++)
                cr_assert_eq(value(&out[i]), next_out++, "round %zu", round);
    }
    cr_expect_eq(next_in, next_out);
    cr_expect_eq(jobq__ring_size(&r), 0);
    jobq__ring_fini(&r);
}

Test(ring, capacity_is_the_bound_even_for_one)
{
    static const size_t caps[] = {1, 2, 3, 8};
    struct jobq__ring r;
    struct jobq__entry e = entry(7), out;
    size_t c, i;

    for (c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        cr_assert_eq(jobq__ring_init(&r, caps[c], 2), 0);
        for (i = 0; i < caps[c]; i++)
            cr_assert_eq(jobq__ring_try_push(&r, &e, 0), 0);
        cr_expect_eq(jobq__ring_try_push(&r, &e, 0), JOBQ_EAGAIN, "capacity %zu", caps[c]);
        cr_expect_eq(jobq__ring_size(&r), caps[c]);
        cr_assert_eq(jobq__ring_try_pop(&r, 0, &out, 1, 0, NULL), 1);
        cr_expect_eq(jobq__ring_try_push(&r, &e, 0), 0, "room again after one pop");
        jobq__ring_fini(&r);
    }
}

Test(ring, push_n_claims_the_free_run_and_pop_reports_what_it_left)
{
    struct jobq__ring r;
    struct jobq__entry in[8], out[8];
    size_t got, found, i;
    int err;

    cr_assert_eq(jobq__ring_init(&r, 8, 2), 0);
    for (i = 0; i < 8; i++)
        in[i] = entry(100 + i);
    /* 6 fit of the 8 offered after 2 are queued. */
    cr_assert_eq(jobq__ring_try_push_n(&r, in, 2, &err), 2);
    cr_assert_eq(err, 0);
    cr_expect_eq(jobq__ring_try_push_n(&r, in + 2, 8, &err), 6);
    cr_expect_eq(jobq__ring_try_push_n(&r, in, 1, &err), 0);
    cr_expect_eq(err, JOBQ_EAGAIN);

    /* half: half of the ready run (rounded up), and the run's length in found. */
    got = jobq__ring_try_pop(&r, 0, out, 8, 1, &found);
    cr_expect_eq(got, 4);
    cr_expect_eq(found, 8);
    for (i = 0; i < got; i++)
        cr_expect_eq(value(&out[i]), 100 + i);
    got = jobq__ring_try_pop(&r, 0, out, 3, 0, &found);
    cr_expect_eq(got, 3);
    cr_expect_eq(found, 3);
    cr_expect_eq(value(&out[0]), 104);
    cr_expect(jobq__ring_ready(&r));
    cr_expect_eq(jobq__ring_try_pop(&r, 0, out, 8, 0, NULL), 1);
    cr_expect_not(jobq__ring_ready(&r));
    cr_expect_eq(jobq__ring_try_pop(&r, 0, out, 8, 0, NULL), 0);
    jobq__ring_fini(&r);
}

Test(ring, closed_ring_takes_only_forced_pushes_behind_the_rest)
{
    struct jobq__ring r;
    struct jobq__entry e = entry(1), s = entry(2), out[4];
    int err;

    cr_assert_eq(jobq__ring_init(&r, 4, 2), 0);
    cr_assert_eq(jobq__ring_try_push(&r, &e, 0), 0);
    jobq__ring_close(&r);
    jobq__ring_close(&r); /* idempotent */
    cr_expect(jobq__ring_closed(&r));
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), JOBQ_ECLOSED);
    cr_expect_eq(jobq__ring_try_push_n(&r, &e, 1, &err), 0);
    cr_expect_eq(err, JOBQ_ECLOSED);
    cr_expect_eq(jobq__ring_try_push(&r, &s, 1), 0, "a forced push (sentinel) still lands");
    cr_expect_eq(jobq__ring_pushed(&r), 2);
    cr_assert_eq(jobq__ring_try_pop(&r, 0, out, 4, 0, NULL), 2);
    cr_expect_eq(value(&out[0]), 1, "queued work drains first");
    cr_expect_eq(value(&out[1]), 2);
    jobq__ring_fini(&r);
}

/*
 * A consumer that has claimed cells but not copied them out (pre-empted between its CAS of
 * `head` and the end of its copy) announces where its claim starts: producers must not refill
 * those cells on the next lap, although `head` says they are taken. Simulated here by setting
 * consumer 1's announcement by hand, as jobq__ring_try_pop does before its CAS.
 */
Test(ring, unfinished_pop_holds_producers_off_its_cells)
{
    struct jobq__ring r;
    struct jobq__entry e = entry(7), out[4];
    size_t i;
    int err;

    cr_assert_eq(jobq__ring_init(&r, 4, 2), 0);
    for (i = 0; i < 4; i++)
        cr_assert_eq(jobq__ring_try_push(&r, &e, 0), 0);
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), JOBQ_EAGAIN, "full");
    /* Consumer 1 "claimed" position 0 and is still copying: pop 0..3 as consumer 0, then the
     * announcement alone keeps the cells of positions 0.. from the producers. */
    atomic_store(&r.consumers[1].busy_from, 0);
    cr_assert_eq(jobq__ring_try_pop(&r, 0, out, 4, 0, NULL), 4);
    cr_expect_eq(jobq__ring_size(&r), 0);
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), JOBQ_EAGAIN,
                 "a cell still being copied out was handed to a producer");
    cr_expect_eq(jobq__ring_try_push_n(&r, out, 4, &err), 0);
    cr_expect_eq(err, JOBQ_EAGAIN);
    /* It has copied position 0 and 1 (announces 2): two cells free again. */
    atomic_store(&r.consumers[1].busy_from, 2);
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), 0);
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), 0);
    cr_expect_eq(jobq__ring_try_push(&r, &e, 0), JOBQ_EAGAIN);
    /* Done: the whole capacity again. */
    atomic_store(&r.consumers[1].busy_from, JOBQ__RING_IDLE);
    cr_expect_eq(jobq__ring_try_push_n(&r, out, 4, &err), 2);
    cr_expect_eq(jobq__ring_size(&r), 4);
    jobq__ring_fini(&r);
}
