/*
 * test-group.c - jobq_group: wait for a subset while other long jobs run, first error, reuse,
 * destroy waits for the group's jobs, waiting from a worker.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "test-util.h"

static jobq_pool *
make_pool(unsigned threads, size_t capacity)
{
    jobq_pool_options o;
    jobq_pool *p = NULL;

    jobq_pool_options_init(&o);
    o.threads = threads;
    o.capacity = capacity;
    cr_assert_eq(jobq_pool_create(&p, &o), 0);
    return p;
}

static int
gate_run(void *arg)
{
    test_gate_wait(arg);
    return 0;
}

struct tally {
    atomic_uint runs;
    atomic_uint dones;
    int err; /* what run returns */
};

static int
tally_run(void *arg)
{
    struct tally *t = arg;

    atomic_fetch_add(&t->runs, 1);
    return t->err;
}

static void
tally_done(void *arg, int err)
{
    struct tally *t = arg;

    (void)err;
    atomic_fetch_add(&t->dones, 1);
}

/* A long job (gated) occupies one worker; the group's jobs finish on the other and the group
 * wait returns although the pool as a whole is not idle. */
Test(group, wait_subset_while_long_job_runs, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 16);
    jobq_group *g = NULL;
    struct test_gate gate;
    struct tally t;
    jobq_job long_job = {gate_run, NULL, NULL}, job = {tally_run, tally_done, NULL};
    int round, i;

    test_gate_init(&gate);
    memset(&t, 0, sizeof(t));
    long_job.arg = &gate;
    job.arg = &t;
    cr_assert_eq(jobq_group_create(&g, p), 0);
    cr_assert_not_null(g);
    cr_assert_eq(jobq_pool_submit(p, &long_job), 0);
    test_gate_await_arrivals(&gate, 1);
    for (round = 1; round <= 3; round++) {
        for (i = 0; i < 100; i++)
            cr_assert_eq(jobq_group_submit(g, &job), 0);
        cr_assert_eq(jobq_group_wait(g), 0);
        /* Every group job (and its done) finished before the wait returned. */
        cr_assert_eq(atomic_load(&t.runs), 100u * (unsigned)round);
        cr_assert_eq(atomic_load(&t.dones), 100u * (unsigned)round);
    }
    /* The long job is still blocked: the group wait did not wait for it. */
    cr_assert_eq(gate.open, 0);
    test_gate_open(&gate);
    cr_assert_eq(jobq_pool_wait(p), 0);
    jobq_group_destroy(g);
    jobq_pool_destroy(p);
    test_gate_fini(&gate);
}

Test(group, first_error_then_cleared_on_reuse, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 8);
    jobq_group *g;
    struct tally ok, bad1, bad2;
    jobq_job job = {tally_run, NULL, NULL};
    int i;

    memset(&ok, 0, sizeof(ok));
    memset(&bad1, 0, sizeof(bad1));
    memset(&bad2, 0, sizeof(bad2));
    bad1.err = -11;
    bad2.err = -22;
    cr_assert_eq(jobq_group_create(&g, p), 0);
    for (i = 0; i < 50; i++) {
        job.arg = i == 5 ? &bad1 : i == 30 ? &bad2 : &ok;
        cr_assert_eq(jobq_group_submit(g, &job), 0);
    }
    /* One worker runs them in FIFO order: the first error is bad1's. */
    cr_expect_eq(jobq_group_wait(g), -11);
    cr_expect_eq(atomic_load(&ok.runs) + atomic_load(&bad1.runs) + atomic_load(&bad2.runs), 50);
    cr_expect_eq(jobq_group_wait(g), 0, "the error was not cleared by the wait that returned it");
    job.arg = &ok;
    for (i = 0; i < 10; i++)
        cr_assert_eq(jobq_group_submit(g, &job), 0);
    cr_expect_eq(jobq_group_wait(g), 0);
    cr_expect_eq(atomic_load(&ok.runs), 58);
    jobq_group_destroy(g);
    jobq_pool_destroy(p);
}

/* Two groups on one pool: one's error is not the other's. */
Test(group, groups_are_independent, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 8);
    jobq_group *a, *b;
    struct tally ok, bad;
    jobq_job job = {tally_run, NULL, NULL};
    int i;

    memset(&ok, 0, sizeof(ok));
    memset(&bad, 0, sizeof(bad));
    bad.err = -3;
    cr_assert_eq(jobq_group_create(&a, p), 0);
    cr_assert_eq(jobq_group_create(&b, p), 0);
    for (i = 0; i < 40; i++) {
        job.arg = &bad;
        cr_assert_eq(jobq_group_submit(a, &job), 0);
        job.arg = &ok;
        cr_assert_eq(jobq_group_submit(b, &job), 0);
    }
    cr_expect_eq(jobq_group_wait(b), 0);
    cr_expect_eq(jobq_group_wait(a), -3);
    cr_expect_eq(atomic_load(&ok.runs), 40);
    cr_expect_eq(atomic_load(&bad.runs), 40);
    jobq_group_destroy(a);
    jobq_group_destroy(b);
    jobq_pool_destroy(p);
}

struct slow {
    atomic_uint finished;
};

static int
slow_run(void *arg)
{
    struct slow *s = arg;

    test_sleep_ms(2);
    atomic_fetch_add(&s->finished, 1);
    return 0;
}

/* Destroy waits for the group's outstanding jobs (they may still reference the group). */
Test(group, destroy_waits_for_outstanding_jobs, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 64);
    jobq_group *g;
    struct slow s;
    jobq_job job = {slow_run, NULL, NULL};
    int i;

    memset(&s, 0, sizeof(s));
    job.arg = &s;
    cr_assert_eq(jobq_group_create(&g, p), 0);
    for (i = 0; i < 40; i++)
        cr_assert_eq(jobq_group_submit(g, &job), 0);
    jobq_group_destroy(g);
    cr_expect_eq(atomic_load(&s.finished), 40, "destroy returned with jobs outstanding");
    jobq_pool_destroy(p);
}

/* From a worker: waiting on an incomplete group would deadlock (one worker), so it is
 * refused; waiting on a complete group is fine. */
struct from_worker {
    jobq_group *pending;
    jobq_group *complete;
    int pending_r;
    int complete_r;
};

static int
wait_groups_run(void *arg)
{
    struct from_worker *f = arg;

    f->pending_r = jobq_group_wait(f->pending);
    f->complete_r = jobq_group_wait(f->complete);
    return 0;
}

Test(group, wait_from_worker, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 8);
    struct test_gate gate;
    struct from_worker f;
    struct tally t;
    jobq_job gate_job = {gate_run, NULL, NULL}, job = {wait_groups_run, NULL, NULL};
    jobq_job tj = {tally_run, NULL, NULL};

    test_gate_init(&gate);
    memset(&t, 0, sizeof(t));
    memset(&f, 0, sizeof(f));
    cr_assert_eq(jobq_group_create(&f.pending, p), 0);
    cr_assert_eq(jobq_group_create(&f.complete, p), 0);
    tj.arg = &t;
    cr_assert_eq(jobq_group_submit(f.complete, &tj), 0);
    cr_assert_eq(jobq_group_wait(f.complete), 0);
    /* The worker is held at the gate while our job and then the pending group's job are
     * queued: FIFO with one worker, the group job cannot run before ours returns. */
    job.arg = &f;
    gate_job.arg = &gate;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(&gate, 1);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_assert_eq(jobq_group_submit(f.pending, &tj), 0);
    test_gate_open(&gate);
    cr_assert_eq(jobq_pool_wait(p), 0);
    cr_expect_eq(f.pending_r, JOBQ_EDEADLK);
    cr_expect_eq(f.complete_r, 0);
    cr_expect_eq(jobq_group_wait(f.pending), 0);
    cr_expect_eq(atomic_load(&t.runs), 2);
    jobq_group_destroy(f.pending);
    jobq_group_destroy(f.complete);
    jobq_pool_destroy(p);
    test_gate_fini(&gate);
}

static int
empty_job(void *arg)
{
    (void)arg;
    return 0;
}

/* Destroy right after wait, over and over, with jobs finishing on other threads: the last
 * finisher must be done with the group before wait can return (under ASan a use-after-free
 * here was a real bug, found through jobq_matmul's group dispatch). */
Test(group, destroy_right_after_wait_is_safe, .timeout = 60)
{
    jobq_pool *p;
    jobq_group *g;
    jobq_job job = {empty_job, NULL, NULL};
    unsigned it, j;

    /* More workers than cores, so a finisher is often pre-empted inside group_finish; one to
     * eight jobs per group, so the waiter often arrives just as the last one ends. */
    p = make_pool(4 * jobq_cpu_count(), 64);
    for (it = 0; it < 20000; it++) {
        cr_assert_eq(jobq_group_create(&g, p), 0);
        for (j = 0; j < 1 + it % 8; j++)
            cr_assert_eq(jobq_group_submit(g, &job), 0);
        cr_assert_eq(jobq_group_wait(g), 0);
        jobq_group_destroy(g);
    }
    jobq_pool_destroy(p);
}

/* A job destroys the group it has just filled: from a worker, destroy must not wait (with one
 * worker the group's jobs cannot run before this job returns) and must not free the group
 * under them; the last of them frees it (a use-after-free under ASan before). */
struct destroy_in_job {
    jobq_pool *pool;
    struct tally *t;
    int submit_err;
};

static int
destroy_in_job_run(void *arg)
{
    struct destroy_in_job *d = arg;
    jobq_job tj = {tally_run, tally_done, d->t};
    jobq_group *g;
    int i;

    d->submit_err = jobq_group_create(&g, d->pool);
    if (d->submit_err != 0)
        return d->submit_err;
    for (i = 0; i < 3 && d->submit_err == 0; i++)
        d->submit_err = jobq_group_submit(g, &tj);
    jobq_group_destroy(g);
    return 0;
}

Test(group, destroy_from_worker_frees_after_last_job, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 8);
    struct tally t;
    struct destroy_in_job d;
    jobq_job job = {destroy_in_job_run, NULL, NULL};
    int round;

    for (round = 0; round < 50; round++) {
        memset(&t, 0, sizeof(t));
        d.pool = p;
        d.t = &t;
        d.submit_err = -1;
        job.arg = &d;
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
        cr_assert_eq(jobq_pool_wait(p), 0);
        cr_assert_eq(d.submit_err, 0);
        cr_assert_eq(atomic_load(&t.runs), 3);
        cr_assert_eq(atomic_load(&t.dones), 3);
    }
    jobq_pool_destroy(p);
}
