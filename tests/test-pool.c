/*
 * test-pool.c - jobq_pool: every job exactly once, wait-all reuse, shutdown modes and their
 * accounting, nested (caller-runs) submission, deadlock refusals, hooks, worker index, thread
 * names, create/destroy churn, bad arguments and statistics.
 *
 * Jobs that must still be running while the test checks something block on a gate
 * (test-util.h), never on a sleep.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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
    cr_assert_eq(jobq_pool_create(&p, &o), 0, "pool of %u threads, capacity %zu", threads,
                 capacity);
    cr_assert_not_null(p);
    return p;
}

/* ---- every job exactly once ---------------------------------------------------------------- */

struct counted {
    atomic_uint *runs;  /* runs[i]: times job i ran */
    atomic_uint *dones; /* dones[i]: times its done ran */
    atomic_int done_err;
};

struct counted_job {
    struct counted *c;
    size_t i;
};

static int
counted_run(void *arg)
{
    struct counted_job *j = arg;

    atomic_fetch_add_explicit(&j->c->runs[j->i], 1, memory_order_relaxed);
    return 0;
}

static void
counted_done(void *arg, int err)
{
    struct counted_job *j = arg;

    if (err != 0)
        atomic_store(&j->c->done_err, err);
    atomic_fetch_add_explicit(&j->c->dones[j->i], 1, memory_order_relaxed);
}

static void
every_job_once(unsigned threads, size_t capacity, size_t n)
{
    jobq_pool *p = make_pool(threads, capacity);
    struct counted c;
    struct counted_job *jobs = calloc(n, sizeof(*jobs));
    jobq_pool_stats st;
    jobq_job job;
    size_t i, bad = 0;

    memset(&c, 0, sizeof(c));
    c.runs = calloc(n, sizeof(*c.runs));
    c.dones = calloc(n, sizeof(*c.dones));
    cr_assert(jobs && c.runs && c.dones);
    for (i = 0; i < n; i++) {
        jobs[i].c = &c;
        jobs[i].i = i;
        job.run = counted_run;
        job.done = counted_done;
        job.arg = &jobs[i];
        /* Mix the three submit paths. */
        if (i % 3 == 0)
            cr_assert_eq(jobq_pool_submit(p, &job), 0);
        else if (i % 3 == 1)
            cr_assert_eq(jobq_pool_timed_submit(p, &job, 3600ull * 1000000000ull), 0);
        else
            while (jobq_pool_try_submit(p, &job) == JOBQ_EAGAIN)
                ;
    }
    cr_assert_eq(jobq_pool_wait(p), 0);
    for (i = 0; i < n; i++)
        bad += atomic_load(&c.runs[i]) != 1 || atomic_load(&c.dones[i]) != 1;
    cr_expect_eq(bad, 0, "%zu of %zu jobs did not run (and finish) exactly once, %u threads",
                 bad, n, threads);
    cr_expect_eq(atomic_load(&c.done_err), 0);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, n);
    cr_expect_eq(st.completed, n);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.discarded, 0);
    cr_expect_eq(st.threads, threads);
    cr_expect_eq(jobq_pool_threads(p), threads);
    jobq_pool_destroy(p);
    free(c.runs);
    free(c.dones);
    free(jobs);
}

Test(pool, every_job_once_1_worker, .timeout = 60)
{
    every_job_once(1, 64, test_scaled(200000, 10));
}

Test(pool, every_job_once_cores_workers, .timeout = 60)
{
    every_job_once(jobq_cpu_count(), 1024, test_scaled(200000, 10));
}

Test(pool, every_job_once_4x_cores_workers, .timeout = 60)
{
    every_job_once(4 * jobq_cpu_count(), 16, test_scaled(200000, 10));
}

/* submit_batch: every job once, and the count it reports. */
Test(pool, submit_batch_every_job_once, .timeout = 60)
{
    jobq_pool *p = make_pool(2, 16);
    size_t n = 1000, i, bad = 0, got = 0;
    struct counted c;
    struct counted_job *cj = calloc(n, sizeof(*cj));
    jobq_job *jobs = calloc(n, sizeof(*jobs));

    memset(&c, 0, sizeof(c));
    c.runs = calloc(n, sizeof(*c.runs));
    c.dones = calloc(n, sizeof(*c.dones));
    for (i = 0; i < n; i++) {
        cj[i].c = &c;
        cj[i].i = i;
        jobs[i].run = counted_run;
        jobs[i].done = counted_done;
        jobs[i].arg = &cj[i];
    }
    cr_assert_eq(jobq_pool_submit_batch(p, jobs, n, &got), 0);
    cr_assert_eq(got, n);
    cr_assert_eq(jobq_pool_submit_batch(p, jobs, 0, NULL), 0);
    cr_assert_eq(jobq_pool_wait(p), 0);
    for (i = 0; i < n; i++)
        bad += atomic_load(&c.runs[i]) != 1 || atomic_load(&c.dones[i]) != 1;
    cr_expect_eq(bad, 0);
    jobq_pool_destroy(p);
    free(c.runs);
    free(c.dones);
    free(cj);
    free(jobs);
}

/* ---- wait-all ---------------------------------------------------------------------------- */

struct err_job {
    int err;
    atomic_int *ran;
};

static int
err_run(void *arg)
{
    struct err_job *j = arg;

    atomic_fetch_add(j->ran, 1);
    return j->err;
}

Test(pool, wait_all_reuse_first_error_cleared, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 8);
    struct err_job ej[100];
    atomic_int ran = 0;
    jobq_job job = {err_run, NULL, NULL};
    int round, i, r;

    for (round = 0; round < 5; round++) {
        atomic_store(&ran, 0);
        for (i = 0; i < 100; i++) {
            ej[i].ran = &ran;
            /* Odd rounds fail twice; with one worker FIFO order makes the first one known. */
            ej[i].err = (round % 2 && i == 10) ? -1000 - round
                        : (round % 2 && i == 60) ? -2000
                                                 : 0;
            job.arg = &ej[i];
            cr_assert_eq(jobq_pool_submit(p, &job), 0);
        }
        r = jobq_pool_wait(p);
        cr_assert_eq(atomic_load(&ran), 100, "wait returned before every job ran");
        if (round % 2)
            cr_assert_eq(r, -1000 - round, "round %d: wait returned %d", round, r);
        else
            cr_assert_eq(r, 0, "round %d: stale error %d", round, r);
        /* The error was cleared by the wait that returned it. */
        cr_assert_eq(jobq_pool_wait(p), 0);
    }
    jobq_pool_destroy(p);
}

Test(pool, wait_on_idle_pool_returns, .timeout = 10)
{
    jobq_pool *p = make_pool(2, 4);

    cr_assert_eq(jobq_pool_wait(p), 0);
    cr_assert_eq(jobq_pool_wait(p), 0);
    jobq_pool_destroy(p);
}

/* Several threads waiting at once while jobs run; all return once the work is done. */
struct waiter_arg {
    jobq_pool *p;
    int r;
};

static void *
waiter_thread(void *arg)
{
    struct waiter_arg *w = arg;

    w->r = jobq_pool_wait(w->p);
    return NULL;
}

static int
gate_run(void *arg)
{
    test_gate_wait(arg);
    return 0;
}

Test(pool, concurrent_waiters, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 8);
    struct test_gate g;
    struct waiter_arg w[3];
    pthread_t t[3];
    jobq_job job = {gate_run, NULL, NULL};
    int i;

    test_gate_init(&g);
    job.arg = &g;
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    test_gate_await_arrivals(&g, 2);
    for (i = 0; i < 3; i++) {
        w[i].p = p;
        w[i].r = 1;
        cr_assert_eq(pthread_create(&t[i], NULL, waiter_thread, &w[i]), 0);
    }
    test_gate_open(&g);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(w[i].r, 0);
    }
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* ---- shutdown: drain vs discard ---------------------------------------------------------- */

struct acct {
    atomic_uint runs;
    atomic_uint done_ok;
    atomic_uint done_canceled;
    atomic_uint done_other;
    struct test_gate *open_on_cancel; /* opened by the first discarded job's done */
};

static int
acct_run(void *arg)
{
    struct acct *a = arg;

    atomic_fetch_add(&a->runs, 1);
    return 0;
}

static void
acct_done(void *arg, int err)
{
    struct acct *a = arg;

    if (err == 0)
        atomic_fetch_add(&a->done_ok, 1);
    else if (err == JOBQ_ECANCELED)
        atomic_fetch_add(&a->done_canceled, 1);
    else
        atomic_fetch_add(&a->done_other, 1);
    if (err == JOBQ_ECANCELED && a->open_on_cancel != NULL)
        test_gate_open(a->open_on_cancel);
}

/*
 * Both workers block on a gate, the queue is filled to capacity behind them. DISCARD must drop
 * exactly the queued jobs (no worker is free to take one); the first discarded job's done opens
 * the gate so the running jobs can finish and the workers be joined.
 */
Test(pool, discard_drops_exactly_the_queued_jobs, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 16);
    struct test_gate g;
    struct acct a;
    jobq_job gate_job = {gate_run, NULL, NULL}, job = {acct_run, acct_done, NULL};
    jobq_pool_stats st;
    size_t queued = 0, discarded = 12345;

    test_gate_init(&g);
    memset(&a, 0, sizeof(a));
    a.open_on_cancel = &g;
    gate_job.arg = &g;
    job.arg = &a;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(&g, 2);
    while (jobq_pool_try_submit(p, &job) == 0)
        queued++;
    cr_assert_eq(queued, 16, "a full queue of capacity 16 held %zu jobs", queued);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.queue_high_water, 16);

    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(discarded, queued);
    cr_expect_eq(atomic_load(&a.runs), 0);
    cr_expect_eq(atomic_load(&a.done_canceled), queued);
    cr_expect_eq(atomic_load(&a.done_ok), 0);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, queued + 2);
    cr_expect_eq(st.completed, 2);
    cr_expect_eq(st.discarded, queued);
    cr_expect_eq(st.submitted, st.completed + st.discarded);
    /* Second shutdown: nothing more to do, nothing discarded. */
    discarded = 999;
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(discarded, 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DRAIN, NULL), 0);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/*
 * DISCARD must also drop the jobs a worker has taken from the queue in a batch but not started:
 * one worker runs the first job of a 128-job batch, blocked on a gate, while the other 127 sit in
 * its batch and 72 more in the ring. All 199 are dropped (before, the 127 ran); the first
 * discarded job's done opens the gate.
 */
Test(pool, discard_drops_jobs_a_worker_took_but_did_not_start, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 256);
    struct test_gate g1, g2;
    struct acct a;
    jobq_job gate1 = {gate_run, NULL, NULL}, gate2 = {gate_run, NULL, NULL};
    jobq_job job = {acct_run, acct_done, NULL};
    jobq_pool_stats st;
    size_t i, discarded = 0;

    test_gate_init(&g1);
    test_gate_init(&g2);
    memset(&a, 0, sizeof(a));
    a.open_on_cancel = &g2;
    gate1.arg = &g1;
    gate2.arg = &g2;
    job.arg = &a;
    cr_assert_eq(jobq_pool_submit(p, &gate1), 0);
    test_gate_await_arrivals(&g1, 1);
    cr_assert_eq(jobq_pool_submit(p, &gate2), 0);
    for (i = 0; i < 199; i++)
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
    /* The worker leaves gate 1 and takes one batch of 128: gate2's job and 127 of ours. */
    test_gate_open(&g1);
    test_gate_await_arrivals(&g2, 1);

    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(atomic_load(&a.runs), 0, "%u jobs that had not started ran",
                 atomic_load(&a.runs));
    cr_expect_eq(discarded, 199);
    cr_expect_eq(atomic_load(&a.done_canceled), 199);
    cr_expect_eq(atomic_load(&a.done_ok), 0);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.completed, 2);
    cr_expect_eq(st.discarded, 199);
    cr_expect_eq(st.submitted, st.completed + st.discarded);
    jobq_pool_destroy(p);
    test_gate_fini(&g1);
    test_gate_fini(&g2);
}

/* Hold p's one worker at gate g (a job waits there); a opens g once one of its jobs is
 * discarded. */
static void
hold_worker_until_a_discard(jobq_pool *p, struct test_gate *g, struct acct *a)
{
    jobq_job gate_job = {gate_run, NULL, NULL};

    test_gate_init(g);
    memset(a, 0, sizeof(*a));
    a->open_on_cancel = g;
    gate_job.arg = g;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(g, 1);
}

static int
range_noop(void *ctx, size_t begin, size_t end)
{
    (void)ctx;
    (void)begin;
    (void)end;
    return 0;
}

/*
 * A parallel_for helper still queued when DISCARD drops it holds a share of the call's state:
 * its done now releases it (before, the state leaked; this test counts the drops, and a leak
 * check in Criterion's test processes did not report even a plain malloc, so valgrind or a
 * debugger is what shows the leak). The worker is held at a gate, so the caller runs every
 * chunk itself and returns with its helper still in the ring; our job behind it opens the gate
 * when it is dropped.
 */
Test(pool, discarded_parallel_for_helper_releases_its_share, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 16);
    struct test_gate g;
    struct acct a;
    jobq_job job = {acct_run, acct_done, NULL};
    size_t discarded = 0;

    hold_worker_until_a_discard(p, &g, &a);
    job.arg = &a;
    cr_assert_eq(jobq_pool_parallel_for(p, 0, 100, 10, range_noop, NULL), 0);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(discarded, 2, "the helper and our job: %zu", discarded);
    cr_expect_eq(atomic_load(&a.done_canceled), 1);
    cr_expect_eq(atomic_load(&a.runs), 0);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

struct nested_stop {
    jobq_pool *p;
    int r, calls;
};

static void
nested_stop_done(void *arg, int err)
{
    struct nested_stop *ns = arg;

    if (err == JOBQ_ECANCELED) {
        ns->r = jobq_pool_shutdown(ns->p, JOBQ_DRAIN, NULL);
        ns->calls++;
    }
}

/* A discarded job's done, run by the shutting-down thread, shuts the pool down again: that
 * call returns at once (waiting for the first call to finish, it would wait for itself). */
Test(pool, shutdown_from_a_discarded_jobs_done_returns, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 16);
    struct test_gate g;
    struct acct a;
    struct nested_stop ns = {NULL, -1, 0};
    jobq_job job = {acct_run, acct_done, NULL}, stopper = {acct_run, nested_stop_done, NULL};
    size_t discarded = 0;

    ns.p = p;
    job.arg = &a;
    stopper.arg = &ns;
    hold_worker_until_a_discard(p, &g, &a);
    cr_assert_eq(jobq_pool_submit(p, &stopper), 0);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(ns.calls, 1);
    cr_expect_eq(ns.r, 0);
    cr_expect_eq(discarded, 2);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/*
 * Done callbacks that a DISCARD shutdown runs on its own thread, calling back into the pool
 * being shut down: waits are refused (they would wait for the very job whose done is running:
 * it is counted only after its done returns), destroy is ignored (it would free the pool under
 * the shutdown), destroying the job's group defers the free to the group's last job, and a
 * shutdown of another pool in between must not make a later callback's shutdown of the first
 * pool wait for itself (one thread-local mark used to be cleared by the inner shutdown).
 */
struct reentry {
    jobq_pool *p;
    jobq_group *grp;
    pthread_t on;
    int r_wait, r_gwait, r_other, r_shut, calls;
};

static void
reentry_first_done(void *arg, int err)
{
    struct reentry *re = arg;
    jobq_pool *other;
    jobq_pool_options o;

    if (err != JOBQ_ECANCELED)
        return;
    re->on = pthread_self();
    re->calls++;
    re->r_wait = jobq_pool_wait(re->p);
    re->r_gwait = jobq_group_wait(re->grp);
    jobq_pool_destroy(re->p);
    jobq_group_destroy(re->grp);
    jobq_pool_options_init(&o);
    o.threads = 1;
    re->r_other = jobq_pool_create(&other, &o);
    if (re->r_other == 0) {
        re->r_other = jobq_pool_shutdown(other, JOBQ_DRAIN, NULL);
        jobq_pool_destroy(other);
    }
}

static void
reentry_second_done(void *arg, int err)
{
    struct reentry *re = arg;

    if (err != JOBQ_ECANCELED)
        return;
    re->calls++;
    re->r_shut = jobq_pool_shutdown(re->p, JOBQ_DRAIN, NULL);
}

Test(pool, waits_and_destroy_from_a_discarded_jobs_done_are_refused, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 16);
    struct test_gate g;
    struct acct a;
    struct reentry re;
    jobq_job first = {acct_run, reentry_first_done, NULL};
    jobq_job second = {acct_run, reentry_second_done, NULL}, last = {acct_run, acct_done, NULL};
    size_t discarded = 0;

    memset(&re, 0, sizeof(re));
    re.p = p;
    re.r_wait = re.r_gwait = re.r_other = re.r_shut = -1;
    cr_assert_eq(jobq_group_create(&re.grp, p), 0);
    first.arg = second.arg = &re;
    last.arg = &a;
    /* The gate opens when `last` is dropped: the worker stays held until first and second
     * have been dropped by this thread. */
    hold_worker_until_a_discard(p, &g, &a);
    cr_assert_eq(jobq_group_submit(re.grp, &first), 0);
    cr_assert_eq(jobq_pool_submit(p, &second), 0);
    cr_assert_eq(jobq_pool_submit(p, &last), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_expect_eq(re.calls, 2);
    cr_expect(pthread_equal(re.on, pthread_self()), "dropped on the shutting-down thread");
    cr_expect_eq(re.r_wait, JOBQ_EDEADLK, "pool wait: %d", re.r_wait);
    cr_expect_eq(re.r_gwait, JOBQ_EDEADLK, "group wait: %d", re.r_gwait);
    cr_expect_eq(re.r_other, 0);
    cr_expect_eq(re.r_shut, 0);
    cr_expect_eq(discarded, 3);
    cr_expect_eq(atomic_load(&a.runs), 0);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* A job that takes a while, then records that it ran. */
static int
slow_flag_run(void *arg)
{
    test_sleep_ms(30);
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

/* A thread that calls into the pool, then records its result and whether *flag was set by
 * the time the call returned. */
struct probe {
    jobq_pool *p;
    atomic_int *flag;
    int r, flag_seen;
};

static void *
wait_probe_thread(void *arg)
{
    struct probe *w = arg;

    w->r = jobq_pool_wait(w->p);
    w->flag_seen = atomic_load(w->flag);
    return NULL;
}

static void *
drain_thread(void *arg)
{
    (void)jobq_pool_shutdown(arg, JOBQ_DRAIN, NULL);
    return NULL;
}

/*
 * jobq_pool_wait while a DRAIN shutdown waits for room for its sentinel (capacity 1: a job runs,
 * one is queued): the wait must not return before the queued job has run. Before, the sentinel
 * was counted before it was in the ring, so the count of queued jobs was one short meanwhile;
 * the wait returned early when it looked before the sentinel got in (about one round in three
 * here, so eight rounds).
 */
Test(pool, wait_during_shutdown_waits_for_queued_jobs, .timeout = 60)
{
    int round;

    for (round = 0; round < 8; round++) {
        jobq_pool *p = make_pool(1, 1);
        struct test_gate g;
        atomic_int flag = 0;
        jobq_job gate_job = {gate_run, NULL, NULL}, slow = {slow_flag_run, NULL, &flag};
        struct probe w = {NULL, NULL, -1, -1};
        pthread_t waiter, stopper;

        test_gate_init(&g);
        gate_job.arg = &g;
        cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
        test_gate_await_arrivals(&g, 1);
        cr_assert_eq(jobq_pool_submit(p, &slow), 0);
        w.p = p;
        w.flag = &flag;
        cr_assert_eq(pthread_create(&waiter, NULL, wait_probe_thread, &w), 0);
        cr_assert_eq(pthread_create(&stopper, NULL, drain_thread, p), 0);
        /* Let both block (the test holds either way; this makes the old failure show). */
        test_sleep_ms(20);
        test_gate_open(&g);
        cr_assert_eq(pthread_join(waiter, NULL), 0);
        cr_assert_eq(pthread_join(stopper, NULL), 0);
        cr_expect_eq(w.r, 0);
        cr_assert_eq(w.flag_seen, 1, "round %d: jobq_pool_wait returned before the queued job ran",
                     round);
        jobq_pool_destroy(p);
        test_gate_fini(&g);
    }
}

struct gated_flag {
    struct test_gate *gate;
    atomic_int *flag;
};

static int
gate_then_flag_run(void *arg)
{
    struct gated_flag *gf = arg;

    test_gate_wait(gf->gate);
    atomic_store(gf->flag, 1);
    return 0;
}

static void *
shutdown_probe_thread(void *arg)
{
    struct probe *s = arg;

    s->r = jobq_pool_shutdown(s->p, JOBQ_DRAIN, NULL);
    s->flag_seen = atomic_load(s->flag);
    return NULL;
}

/* Two shutdowns at once: the one that loses the race returns only after the pool has stopped
 * (before, it returned at once, while a job still ran). */
Test(pool, concurrent_shutdowns_both_return_after_the_pool_stopped, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 4);
    struct test_gate g;
    atomic_int flag = 0;
    struct gated_flag gf = {&g, &flag};
    struct probe s[2];
    jobq_job job = {gate_then_flag_run, NULL, &gf};
    pthread_t t[2];
    int i;

    test_gate_init(&g);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    test_gate_await_arrivals(&g, 1);
    for (i = 0; i < 2; i++) {
        s[i].p = p;
        s[i].flag = &flag;
        s[i].r = -1;
        s[i].flag_seen = -1;
        cr_assert_eq(pthread_create(&t[i], NULL, shutdown_probe_thread, &s[i]), 0);
    }
    /* Let both reach the pool (the test holds either way; this makes the old failure show). */
    test_sleep_ms(30);
    test_gate_open(&g);
    for (i = 0; i < 2; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_expect_eq(s[i].r, 0);
        cr_expect_eq(s[i].flag_seen, 1, "shutdown %d returned while a job still ran", i);
    }
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

static void *
open_gate_later(void *arg)
{
    test_sleep_ms(20);
    test_gate_open(arg);
    return NULL;
}

/* DRAIN with a full queue behind blocked workers: everything runs, nothing is discarded. */
Test(pool, drain_runs_everything_queued, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 16);
    struct test_gate g;
    struct acct a;
    jobq_job gate_job = {gate_run, NULL, NULL}, job = {acct_run, acct_done, NULL};
    jobq_pool_stats st;
    size_t queued = 0, discarded = 12345;
    pthread_t t;

    test_gate_init(&g);
    memset(&a, 0, sizeof(a));
    gate_job.arg = &g;
    job.arg = &a;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(&g, 2);
    while (jobq_pool_try_submit(p, &job) == 0)
        queued++;
    /* The gate opens while (or before) shutdown drains; either way all must run. */
    cr_assert_eq(pthread_create(&t, NULL, open_gate_later, &g), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DRAIN, &discarded), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_expect_eq(discarded, 0);
    cr_expect_eq(atomic_load(&a.runs), queued);
    cr_expect_eq(atomic_load(&a.done_ok), queued);
    cr_expect_eq(atomic_load(&a.done_canceled), 0);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, queued + 2);
    cr_expect_eq(st.completed, queued + 2);
    cr_expect_eq(st.discarded, 0);
    cr_expect_eq(jobq_pool_submit(p, &job), JOBQ_ECLOSED);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* Under load: producers keep submitting while the pool shuts down. Accounting must hold. */
struct producer {
    jobq_pool *p;
    struct acct *a;
    atomic_int *go;
    unsigned long accepted;
    int last_err;
};

static int
spin_run(void *arg)
{
    struct acct *a = arg;
    volatile unsigned x = 0;

    for (unsigned i = 0; i < 200; i++)
        x += i;
    atomic_fetch_add(&a->runs, 1);
    return 0;
}

static void *
producer_thread(void *arg)
{
    struct producer *pr = arg;
    jobq_job job = {spin_run, acct_done, pr->a};
    int r;

    while (!atomic_load(pr->go))
        ;
    for (;;) {
        r = jobq_pool_submit(pr->p, &job);
        if (r != 0)
            break;
        pr->accepted++;
    }
    pr->last_err = r;
    return NULL;
}

static void
shutdown_under_load(jobq_shutdown_mode mode)
{
    jobq_pool *p = make_pool(2, 64);
    struct acct a;
    struct producer pr[3];
    pthread_t t[3];
    atomic_int go = 0;
    jobq_pool_stats st;
    size_t discarded = 12345;
    unsigned long accepted = 0;
    int i;

    memset(&a, 0, sizeof(a));
    for (i = 0; i < 3; i++) {
        memset(&pr[i], 0, sizeof(pr[i]));
        pr[i].p = p;
        pr[i].a = &a;
        pr[i].go = &go;
        cr_assert_eq(pthread_create(&t[i], NULL, producer_thread, &pr[i]), 0);
    }
    atomic_store(&go, 1);
    /* Let the queue fill and the producers block on it a few times. */
    while (atomic_load(&a.runs) < 20000 / (JOBQ_TEST_SANITIZED ? 10 : 1))
        test_sleep_ms(1);
    cr_assert_eq(jobq_pool_shutdown(p, mode, &discarded), 0);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_expect_eq(pr[i].last_err, JOBQ_ECLOSED, "producer %d stopped with %d", i,
                     pr[i].last_err);
        accepted += pr[i].accepted;
    }
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, accepted, "stats.submitted %llu, accepted %lu",
                 (unsigned long long)st.submitted, accepted);
    cr_expect_eq(st.submitted, st.completed + st.discarded, "%llu != %llu + %llu",
                 (unsigned long long)st.submitted, (unsigned long long)st.completed,
                 (unsigned long long)st.discarded);
    cr_expect_eq(st.discarded, discarded);
    cr_expect_eq(atomic_load(&a.runs), st.completed);
    cr_expect_eq(atomic_load(&a.done_ok), st.completed);
    cr_expect_eq(atomic_load(&a.done_canceled), discarded);
    cr_expect_eq(atomic_load(&a.done_other), 0);
    cr_expect_gt(st.producer_blocks, 0, "the queue filled, yet no producer ever blocked");
    cr_expect_gt(st.queue_high_water, 0);
    cr_expect_leq(st.queue_high_water, 64);
    if (mode == JOBQ_DRAIN)
        cr_expect_eq(discarded, 0);
    jobq_pool_destroy(p);
}

Test(pool, drain_under_load_accounting, .timeout = 60)
{
    shutdown_under_load(JOBQ_DRAIN);
}

Test(pool, discard_under_load_accounting, .timeout = 60)
{
    shutdown_under_load(JOBQ_DISCARD);
}

/* ---- a blocking submitter whose jobs change speed ---------------------------------------- */

/* A job that spins for `us` microseconds (0: returns at once), counted in runs[i]. */
struct paced_job {
    atomic_uint *runs;
    size_t i;
    unsigned us;
};

static int
paced_run(void *arg)
{
    const struct paced_job *j = arg;
    unsigned long long until = test_now_ns() + 1000ull * j->us;

    while (j->us != 0 && test_now_ns() < until)
        ;
    atomic_fetch_add_explicit(&j->runs[j->i], 1, memory_order_relaxed);
    return 0;
}

/*
 * One worker, capacity 1024 (low water 512): the submitter blocks on every refill, and after
 * its first park it knows the drain rate, so where the worker runs on another CPU it sleeps on
 * a timer set by that rate (see pace_ns in pool.c; on the 2-vCPU development VM 37-99 of the
 * submitter's parks were timed, counted with an LD_PRELOAD shim). The jobs then change speed
 * under it: 10 us -> 0 (the timer is far too late; a worker's wake-up at half of low water
 * comes first), 0 -> 100 us (the timer is far too early; the submitter parks again), and back.
 * Every job runs exactly once and the counts add up, whichever wake-up came first. (The timer
 * bounds every wait, so a lost wake-up would show here only as time; the DRAIN shutdown test
 * below checks that a wake-up ends a paced park.)
 */
Test(pool, blocked_submitter_keeps_up_when_job_speed_changes, .timeout = 60)
{
    static const struct {
        unsigned us, n;
    } phase[] = {{10, 8000}, {0, 40000}, {100, 2000}, {10, 8000}, {0, 40000}};
    jobq_pool *p = make_pool(1, 1024);
    struct paced_job *jobs;
    atomic_uint *runs;
    jobq_pool_stats st;
    size_t n = 0, i, k, bad = 0;

    for (k = 0; k < sizeof(phase) / sizeof(phase[0]); k++)
        n += phase[k].n;
    jobs = calloc(n, sizeof(*jobs));
    runs = calloc(n, sizeof(*runs));
    cr_assert(jobs != NULL && runs != NULL);
    for (k = 0, i = 0; k < sizeof(phase) / sizeof(phase[0]); k++)
        for (unsigned m = 0; m < phase[k].n; m++, i++) {
            jobq_job job = {paced_run, NULL, &jobs[i]};

            jobs[i].runs = runs;
            jobs[i].i = i;
            jobs[i].us = phase[k].us;
            cr_assert_eq(jobq_pool_submit(p, &job), 0, "job %zu", i);
        }
    cr_assert_eq(jobq_pool_wait(p), 0);
    for (i = 0; i < n; i++)
        bad += atomic_load(&runs[i]) != 1;
    cr_expect_eq(bad, 0, "%zu of %zu jobs did not run exactly once", bad, n);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, n);
    cr_expect_eq(st.completed, n);
    cr_expect_gt(st.producer_blocks, 0, "a 1024-job queue never filled in %zu submits", n);
    jobq_pool_destroy(p);
    free(runs);
    free(jobs);
}

/* Submits pj until a submit fails (the shutdown): how many it got in, and the error. */
struct paced_producer {
    jobq_pool *p;
    struct paced_job *pj;
    unsigned long accepted;
    int last_err;
    unsigned long long failed_ns; /* test_now_ns() when the failing submit returned */
};

static void *
paced_producer_thread(void *arg)
{
    struct paced_producer *pr = arg;
    jobq_job job = {paced_run, NULL, pr->pj};
    int r;

    while ((r = jobq_pool_submit(pr->p, &job)) == 0)
        pr->accepted++;
    pr->failed_ns = test_now_ns();
    pr->last_err = r;
    return NULL;
}

/* Start a thread submitting pj (jobs of `us` microseconds counted in *runs) into p without
 * end, and return once it has blocked on the full queue `blocks` times. */
static void
start_paced_producer(jobq_pool *p, struct paced_producer *pr, struct paced_job *pj,
                     atomic_uint *runs, unsigned us, uint64_t blocks, pthread_t *t)
{
    jobq_pool_stats st;

    pj->runs = runs;
    pj->i = 0;
    pj->us = us;
    memset(pr, 0, sizeof(*pr));
    pr->p = p;
    pr->pj = pj;
    cr_assert_eq(pthread_create(t, NULL, paced_producer_thread, pr), 0);
    do {
        test_sleep_ms(5);
        cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    } while (st.producer_blocks < blocks);
}

/* A DISCARD shutdown while the submitter parks for room, on its timer where it can (10 us
 * jobs, a 1024-job queue): the submitter's submit fails with JOBQ_ECLOSED, every job it got
 * in either ran or was discarded. */
Test(pool, discard_shutdown_under_a_paced_submitter, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 1024);
    struct paced_producer pr;
    struct paced_job pj;
    atomic_uint runs = 0;
    jobq_pool_stats st;
    pthread_t t;
    size_t discarded = 0;

    /* Several parks: the first teaches the drain rate, the later ones can use the timer. */
    start_paced_producer(p, &pr, &pj, &runs, 10, 5, &t);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_expect_eq(pr.last_err, JOBQ_ECLOSED);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, pr.accepted);
    cr_expect_eq(st.submitted, st.completed + st.discarded);
    cr_expect_eq(st.discarded, discarded);
    cr_expect_gt(discarded, 0, "a full 1024-job queue, yet nothing was discarded");
    cr_expect_eq(atomic_load(&runs), st.completed);
    jobq_pool_destroy(p);
}

/*
 * A DRAIN shutdown wakes a submitter parked for room at once, even one asleep on its timer:
 * 1 ms jobs, a 1024-job queue, so its second park (the first measured the drain rate) sleeps
 * ~0.5 s on a timer where no worker shares its CPU, and a worker's fallback wake-up would come
 * only after 256 more jobs (~0.26 s). Its submit must fail with JOBQ_ECLOSED long before either;
 * then the queued jobs still all run.
 */
Test(pool, drain_shutdown_wakes_a_parked_submitter_at_once, .timeout = 60)
{
    jobq_pool *p = make_pool(1, 1024);
    struct paced_producer pr;
    struct paced_job pj;
    atomic_uint runs = 0;
    jobq_pool_stats st;
    pthread_t t;
    size_t discarded = 1;
    unsigned long long t0;

    start_paced_producer(p, &pr, &pj, &runs, 1000, 2, &t);
    test_sleep_ms(20); /* well inside the second park */
    t0 = test_now_ns();
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DRAIN, &discarded), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_expect_eq(pr.last_err, JOBQ_ECLOSED);
    cr_expect_lt(pr.failed_ns - t0, 100000000ull,
                 "the parked submit returned %.1f ms after the shutdown began",
                 (double)(pr.failed_ns - t0) * 1e-6);
    cr_expect_eq(discarded, 0);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, pr.accepted);
    cr_expect_eq(st.completed, pr.accepted);
    cr_expect_eq(atomic_load(&runs), pr.accepted);
    jobq_pool_destroy(p);
}

Test(pool, submit_after_shutdown_and_double_shutdown, .timeout = 10)
{
    jobq_pool *p = make_pool(2, 4);
    struct acct a;
    jobq_job job = {acct_run, acct_done, NULL};
    jobq_group *grp = NULL;
    size_t n = 77, d = 77;

    memset(&a, 0, sizeof(a));
    job.arg = &a;
    cr_assert_eq(jobq_group_create(&grp, p), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DRAIN, &d), 0);
    cr_assert_eq(d, 0);
    cr_expect_eq(jobq_pool_submit(p, &job), JOBQ_ECLOSED);
    cr_expect_eq(jobq_pool_try_submit(p, &job), JOBQ_ECLOSED);
    cr_expect_eq(jobq_pool_timed_submit(p, &job, 1000000u), JOBQ_ECLOSED);
    cr_expect_eq(jobq_pool_submit_batch(p, &job, 1, &n), JOBQ_ECLOSED);
    cr_expect_eq(n, 0);
    cr_expect_eq(jobq_group_submit(grp, &job), JOBQ_ECLOSED);
    /* A failed submission calls neither run nor done, and the group is not left waiting. */
    cr_expect_eq(atomic_load(&a.runs), 0);
    cr_expect_eq(atomic_load(&a.done_ok) + atomic_load(&a.done_canceled), 0);
    cr_expect_eq(jobq_group_wait(grp), 0);
    cr_expect_eq(jobq_pool_wait(p), 0);
    d = 77;
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &d), 0);
    cr_assert_eq(d, 0);
    jobq_group_destroy(grp);
    jobq_pool_destroy(p);
}

/* A producer blocked on a full queue: what submit returned, and the CPU time it took. */
struct blocked_submit {
    jobq_pool *p;
    pthread_t thread;
    atomic_int returned;
    int r;
    double cpu_s;
};

static void *
blocked_submitter(void *arg)
{
    struct blocked_submit *b = arg;
    jobq_job job = {acct_run, NULL, NULL};
    static struct acct dummy;
    struct timespec t0, t1;

    job.arg = &dummy;
    (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    b->r = jobq_pool_submit(b->p, &job);
    (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    b->cpu_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    atomic_store(&b->returned, 1);
    return NULL;
}

/* Fill p (1 worker, capacity 2) behind a job held at gate g, with two jobs counted in *a, then
 * start b's thread, whose submit finds the queue full. */
static void
start_blocked_submitter(jobq_pool *p, struct test_gate *g, struct acct *a,
                        struct blocked_submit *b)
{
    jobq_job gate_job = {gate_run, NULL, NULL}, filler = {acct_run, acct_done, NULL};

    gate_job.arg = g;
    filler.arg = a;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(g, 1);
    cr_assert_eq(jobq_pool_submit(p, &filler), 0);
    cr_assert_eq(jobq_pool_submit(p, &filler), 0);
    memset(b, 0, sizeof(*b));
    b->p = p;
    cr_assert_eq(pthread_create(&b->thread, NULL, blocked_submitter, b), 0);
}

/*
 * A submitter that finds the queue full may poll it briefly while workers drain it fast, but
 * behind a job that does not finish it must sleep: here it stays blocked for 300 ms and may use
 * a small fraction of that in CPU time (the bounded poll is microseconds; the bound is loose
 * enough for sanitizer builds). Then the job ends and the submit goes through.
 */
Test(pool, submitter_blocked_behind_slow_jobs_sleeps, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 2);
    struct test_gate g;
    struct blocked_submit b;
    struct acct a;

    test_gate_init(&g);
    memset(&a, 0, sizeof(a));
    start_blocked_submitter(p, &g, &a, &b);
    test_sleep_ms(300);
    cr_expect_eq(atomic_load(&b.returned), 0, "submit returned although the queue was full");
    test_gate_open(&g);
    cr_assert_eq(pthread_join(b.thread, NULL), 0);
    cr_expect_eq(b.r, 0);
    cr_expect_lt(b.cpu_s, 0.05, "blocked submitter used %.3f s of CPU in 0.3 s", b.cpu_s);
    cr_expect_eq(jobq_pool_wait(p), 0);
    cr_expect_eq(atomic_load(&a.runs), 2);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* A producer blocked on a full queue is woken by shutdown and fails instead of hanging. */
Test(pool, shutdown_wakes_blocked_submitter, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 2);
    struct test_gate g;
    struct blocked_submit b;
    jobq_pool_stats st;
    struct acct a;
    size_t discarded = 0;

    test_gate_init(&g);
    memset(&a, 0, sizeof(a));
    a.open_on_cancel = &g;
    start_blocked_submitter(p, &g, &a, &b);
    /* Wait until it really blocked (counted), then shut down under it. */
    do {
        test_sleep_ms(1);
        cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    } while (st.producer_blocks == 0);
    cr_expect_eq(atomic_load(&b.returned), 0);
    cr_assert_eq(jobq_pool_shutdown(p, JOBQ_DISCARD, &discarded), 0);
    cr_assert_eq(pthread_join(b.thread, NULL), 0);
    cr_expect_eq(b.r, JOBQ_ECLOSED);
    cr_expect_eq(discarded, 2);
    cr_expect_eq(st.queue_high_water, 2);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* Timed submit on a full queue gives up with JOBQ_ETIMEDOUT (and does not run the job). */
Test(pool, timed_and_try_submit_on_full_queue, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 1);
    struct test_gate g;
    struct acct a;
    jobq_job gate_job = {gate_run, NULL, NULL}, job = {acct_run, acct_done, NULL};
    unsigned long long t0, dt;

    test_gate_init(&g);
    memset(&a, 0, sizeof(a));
    gate_job.arg = &g;
    job.arg = &a;
    cr_assert_eq(jobq_pool_submit(p, &gate_job), 0);
    test_gate_await_arrivals(&g, 1);
    cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_expect_eq(jobq_pool_try_submit(p, &job), JOBQ_EAGAIN);
    t0 = test_now_ns();
    cr_expect_eq(jobq_pool_timed_submit(p, &job, 20000000u), JOBQ_ETIMEDOUT);
    dt = test_now_ns() - t0;
    cr_expect_geq(dt, 20000000ull, "timed_submit gave up after %llu ns", dt);
    test_gate_open(&g);
    cr_assert_eq(jobq_pool_wait(p), 0);
    cr_expect_eq(atomic_load(&a.runs), 1, "a refused submission ran");
    cr_expect_eq(atomic_load(&a.done_ok), 1);
    jobq_pool_destroy(p);
    test_gate_fini(&g);
}

/* ---- nesting ----------------------------------------------------------------------------- */

struct nest {
    jobq_pool *p;
    atomic_uint leaves;
    atomic_int submit_err;
    int depth;
};

struct nest_node {
    struct nest *n;
    int depth;
};

static int
leaf_run(void *arg)
{
    struct nest *n = arg;

    atomic_fetch_add(&n->leaves, 1);
    return 0;
}

/* Submits 10 children into its own pool: with capacity 1 and one worker, the queue is full at
 * once and only this thread could drain it. */
static int
parent_run(void *arg)
{
    struct nest *n = arg;
    jobq_job child = {leaf_run, NULL, n};
    int i, r;

    for (i = 0; i < 10; i++) {
        r = jobq_pool_submit(n->p, &child);
        if (r != 0)
            atomic_store(&n->submit_err, r);
    }
    /* timed_submit from a worker runs inline too rather than time out. */
    r = jobq_pool_timed_submit(n->p, &child, 1000u);
    if (r != 0)
        atomic_store(&n->submit_err, r);
    return 0;
}

Test(pool, nested_submit_capacity_1_one_worker, .timeout = 20)
{
    struct nest n;
    jobq_job job = {parent_run, NULL, NULL};
    jobq_pool_stats st;

    memset(&n, 0, sizeof(n));
    n.p = make_pool(1, 1);
    job.arg = &n;
    cr_assert_eq(jobq_pool_submit(n.p, &job), 0);
    cr_assert_eq(jobq_pool_wait(n.p), 0);
    cr_expect_eq(atomic_load(&n.submit_err), 0);
    cr_expect_eq(atomic_load(&n.leaves), 11);
    cr_assert_eq(jobq_pool_get_stats(n.p, &st, NULL, 0), 0);
    cr_expect_gt(st.caller_runs, 0, "the nested submits must have run inline");
    cr_expect_eq(st.submitted, 12);
    cr_expect_eq(st.completed, 12);
    cr_expect_eq(st.submitted, st.completed + st.discarded);
    jobq_pool_destroy(n.p);
}

/* A binary tree of submissions, in heap layout: node i submits 2i+1 and 2i+2. */
#define TREE_NODES 511

struct tree {
    jobq_pool *p;
    atomic_uint runs[TREE_NODES];
    atomic_int submit_err;
    size_t idx[TREE_NODES];
};

/* The nodes' args point into t->idx; one tree per test process (Criterion forks per test). */
static struct tree *tree_global;

static struct tree *
tree_of(void *arg)
{
    (void)arg;
    return tree_global;
}

static int
tree_run(void *arg)
{
    struct tree *t = tree_of(arg);
    size_t i = *(size_t *)arg, c;
    jobq_job job = {tree_run, NULL, NULL};
    int r;

    atomic_fetch_add(&t->runs[i], 1);
    for (c = 2 * i + 1; c <= 2 * i + 2 && c < TREE_NODES; c++) {
        job.arg = &t->idx[c];
        r = jobq_pool_submit(t->p, &job);
        if (r != 0)
            atomic_store(&t->submit_err, r);
    }
    return 0;
}

static void
nested_tree(unsigned threads, size_t capacity)
{
    struct tree *t = calloc(1, sizeof(*t));
    jobq_job job = {tree_run, NULL, NULL};
    size_t i, bad = 0;

    cr_assert_not_null(t);
    tree_global = t;
    for (i = 0; i < TREE_NODES; i++)
        t->idx[i] = i;
    t->p = make_pool(threads, capacity);
    job.arg = &t->idx[0];
    cr_assert_eq(jobq_pool_submit(t->p, &job), 0);
    cr_assert_eq(jobq_pool_wait(t->p), 0);
    for (i = 0; i < TREE_NODES; i++)
        bad += atomic_load(&t->runs[i]) != 1;
    cr_expect_eq(bad, 0, "%zu tree nodes did not run exactly once", bad);
    cr_expect_eq(atomic_load(&t->submit_err), 0);
    jobq_pool_destroy(t->p);
    free(t);
}

Test(pool, nested_tree_capacity_1_one_worker, .timeout = 20)
{
    nested_tree(1, 1);
}

Test(pool, nested_tree_capacity_2_four_workers, .timeout = 20)
{
    nested_tree(4, 2);
}

/* ---- calls a worker must not make ---------------------------------------------------------- */

struct self_call {
    jobq_pool *p;
    int wait_r;
    int shutdown_r;
    int index;
    int other_index;
    jobq_pool *other;
};

static int
self_call_run(void *arg)
{
    struct self_call *s = arg;

    s->wait_r = jobq_pool_wait(s->p);
    s->shutdown_r = jobq_pool_shutdown(s->p, JOBQ_DRAIN, NULL);
    s->index = jobq_pool_worker_index(s->p);
    s->other_index = jobq_pool_worker_index(s->other);
    return 0;
}

Test(pool, wait_and_shutdown_from_worker_refused, .timeout = 20)
{
    struct self_call s;
    jobq_job job = {self_call_run, NULL, NULL};

    memset(&s, 0, sizeof(s));
    s.p = make_pool(1, 4);
    s.other = make_pool(1, 4);
    job.arg = &s;
    cr_assert_eq(jobq_pool_submit(s.p, &job), 0);
    cr_assert_eq(jobq_pool_wait(s.p), 0);
    cr_expect_eq(s.wait_r, JOBQ_EDEADLK);
    cr_expect_eq(s.shutdown_r, JOBQ_EDEADLK);
    cr_expect_eq(s.index, 0);
    cr_expect_eq(s.other_index, -1, "a worker of one pool is not a worker of another");
    /* Still usable: the refused shutdown did not close it. */
    cr_assert_eq(jobq_pool_submit(s.p, &job), 0);
    cr_assert_eq(jobq_pool_wait(s.p), 0);
    jobq_pool_destroy(s.p);
    jobq_pool_destroy(s.other);
}

/* ---- hooks, worker index, names ----------------------------------------------------------- */

#define HOOK_THREADS 6

struct hooks {
    atomic_uint init[HOOK_THREADS];
    atomic_uint fini[HOOK_THREADS];
    atomic_uint bad_index;
    int fail_index; /* init fails with -77 at this index, or -1 */
    atomic_uint name_errors;
    const char *prefix;
    jobq_pool *pool; /* set after create, read by jobs only */
};

static _Thread_local int hook_index = -1;

static int
hook_init(void *arg, unsigned index)
{
    struct hooks *h = arg;
    char name[16], want[32];

    if (index >= HOOK_THREADS) {
        atomic_fetch_add(&h->bad_index, 1);
        return 0;
    }
    atomic_fetch_add(&h->init[index], 1);
    hook_index = (int)index;
    /* The thread is named before its init hook runs. */
    /* A long prefix is cut so that "-<index>" fits Linux's 15 bytes. */
    (void)snprintf(want, sizeof(want), "%.*s-%u", (int)(13 - (index >= 10) - (index >= 100)),
                   h->prefix, index);
    if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0 || strcmp(name, want) != 0)
        atomic_fetch_add(&h->name_errors, 1);
    return (int)index == h->fail_index ? -77 : 0;
}

static void
hook_fini(void *arg, unsigned index)
{
    struct hooks *h = arg;

    if (index >= HOOK_THREADS || (int)index != hook_index) {
        atomic_fetch_add(&h->bad_index, 1);
        return;
    }
    atomic_fetch_add(&h->fini[index], 1);
}

struct index_job {
    struct hooks *h;
    atomic_uint *mismatch;
    atomic_uint *seen; /* per worker index */
};

static int
index_run(void *arg)
{
    struct index_job *j = arg;
    int idx = jobq_pool_worker_index(j->h->pool);

    if (idx < 0 || idx >= HOOK_THREADS || idx != hook_index)
        atomic_fetch_add(j->mismatch, 1);
    else
        atomic_fetch_add(&j->seen[idx], 1);
    return 0;
}

Test(pool, hooks_once_per_worker_and_worker_index, .timeout = 30)
{
    struct hooks h;
    jobq_pool_options o;
    jobq_pool *p = NULL;
    atomic_uint mismatch = 0, seen[HOOK_THREADS];
    struct index_job ij;
    jobq_job job = {index_run, NULL, NULL};
    unsigned i;

    memset(&h, 0, sizeof(h));
    memset(seen, 0, sizeof(seen));
    h.fail_index = -1;
    h.prefix = "jobq";
    jobq_pool_options_init(&o);
    o.threads = HOOK_THREADS;
    o.capacity = 8;
    o.worker_init = hook_init;
    o.worker_fini = hook_fini;
    o.hook_arg = &h;
    cr_assert_eq(jobq_pool_create(&p, &o), 0);
    h.pool = p;
    /* create returns after every init ran. */
    for (i = 0; i < HOOK_THREADS; i++)
        cr_expect_eq(atomic_load(&h.init[i]), 1, "init of worker %u ran %u times", i,
                     atomic_load(&h.init[i]));
    cr_expect_eq(jobq_pool_worker_index(p), -1, "the main thread is no worker");
    ij.h = &h;
    ij.mismatch = &mismatch;
    ij.seen = seen;
    job.arg = &ij;
    for (i = 0; i < 2000; i++)
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
    cr_assert_eq(jobq_pool_wait(p), 0);
    cr_expect_eq(atomic_load(&mismatch), 0, "jobq_pool_worker_index disagrees with the hook");
    jobq_pool_destroy(p);
    for (i = 0; i < HOOK_THREADS; i++) {
        cr_expect_eq(atomic_load(&h.init[i]), 1);
        cr_expect_eq(atomic_load(&h.fini[i]), 1, "fini of worker %u ran %u times", i,
                     atomic_load(&h.fini[i]));
    }
    cr_expect_eq(atomic_load(&h.bad_index), 0);
    cr_expect_eq(atomic_load(&h.name_errors), 0, "threads are not named jobq-<i>");
}

/* A pool of `threads` workers named `prefix`: hook_init checks each name; returns the count
 * of names that were not as expected. */
static unsigned
named_pool_errors(const char *prefix, unsigned threads, struct hooks *h)
{
    jobq_pool_options o;
    jobq_pool *p = NULL;

    memset(h, 0, sizeof(*h));
    h->fail_index = -1;
    h->prefix = prefix;
    jobq_pool_options_init(&o);
    o.threads = threads;
    o.worker_init = hook_init;
    o.hook_arg = h;
    o.name = prefix;
    cr_assert_eq(jobq_pool_create(&p, &o), 0);
    jobq_pool_destroy(p);
    return atomic_load(&h->name_errors);
}

Test(pool, custom_thread_name_prefix, .timeout = 10)
{
    struct hooks h;

    cr_expect_eq(named_pool_errors("mywork", 3, &h), 0, "threads are not named mywork-<i>");
    cr_expect_eq(atomic_load(&h.init[0]) + atomic_load(&h.init[1]) + atomic_load(&h.init[2]), 3);
}

/* A prefix of 15 bytes (Linux's limit for the whole name) is cut, never the index. */
Test(pool, long_thread_name_prefix_keeps_the_index, .timeout = 10)
{
    struct hooks h;

    cr_expect_eq(named_pool_errors("abcdefghijklmno", HOOK_THREADS, &h), 0,
                 "threads are not named abcdefghijklm-<i>");
}

/* Threads of this process at rest, after one pool came and went: sanitizer runtimes start
 * their own helper thread lazily, on the first pthread_create, and it must not count. */
static int
baseline_threads(void)
{
    jobq_pool *p = make_pool(2, 2);

    jobq_pool_destroy(p);
    return test_thread_count_settled(-1);
}

Test(pool, worker_init_failure_fails_create_and_joins, .timeout = 30)
{
    struct hooks h;
    jobq_pool_options o;
    jobq_pool *p = (jobq_pool *)(uintptr_t)1;
    int before = baseline_threads(), after, round;

    for (round = 0; round < 20; round++) {
        memset(&h, 0, sizeof(h));
        h.fail_index = round % HOOK_THREADS;
        h.prefix = "jobq";
        jobq_pool_options_init(&o);
        o.threads = HOOK_THREADS;
        o.worker_init = hook_init;
        o.worker_fini = hook_fini;
        o.hook_arg = &h;
        cr_assert_eq(jobq_pool_create(&p, &o), -77, "round %d", round);
        cr_assert_eq(p, (jobq_pool *)(uintptr_t)1, "ret_pool written on failure");
        /* fini never runs on the worker whose init failed. */
        cr_expect_eq(atomic_load(&h.fini[h.fail_index]), 0);
    }
    /* Every started thread was joined: the process is back to its own threads. (Leaks of
     * memory are LeakSanitizer's to find in the asan build.) */
    after = test_thread_count_settled(before);
    if (before > 0)
        cr_expect_eq(after, before, "%d threads before, %d after failed creates", before, after);
}

/* ---- worker stacks ----------------------------------------------------------------------- */

struct stack_probe {
    atomic_size_t size[2]; /* per worker */
};

static int
stack_probe_init(void *arg, unsigned index)
{
    struct stack_probe *sp = arg;
    pthread_attr_t attr;
    size_t size = 0;

    if (index >= 2)
        return -1;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        (void)pthread_attr_getstacksize(&attr, &size);
        (void)pthread_attr_destroy(&attr);
    }
    atomic_store(&sp->size[index], size);
    return 0;
}

Test(pool, workers_get_the_stack_size_asked_for, .timeout = 10)
{
    /* 3 MiB: unlike every default (8 MiB from ulimit -s, or 2 MiB). */
    const size_t asked = (size_t)3 << 20;
    struct stack_probe sp;
    jobq_pool_options o;
    jobq_pool *p;
    unsigned i;

    atomic_init(&sp.size[0], 0);
    atomic_init(&sp.size[1], 0);
    jobq_pool_options_init(&o);
    cr_expect_eq(o.stack_size, 0, "the default is the system's stack");
    o.threads = 2;
    o.stack_size = asked;
    o.worker_init = stack_probe_init;
    o.hook_arg = &sp;
    cr_assert_eq(jobq_pool_create(&p, &o), 0);
    jobq_pool_destroy(p);
    for (i = 0; i < 2; i++) {
        size_t got = atomic_load(&sp.size[i]);

        cr_expect(got >= asked && got < asked + ((size_t)1 << 20),
                  "worker %u: stack %zu, asked for %zu", i, got, asked);
    }

    o.stack_size = 1; /* below PTHREAD_STACK_MIN */
    cr_expect_eq(jobq_pool_create(&p, &o), JOBQ_EINVAL);
}

/* A stack no machine can map: pthread_create fails for the first worker. */
Test(pool, unmappable_stack_fails_create_with_ethread, .timeout = 30)
{
    jobq_pool_options o;
    jobq_pool *p = (jobq_pool *)(uintptr_t)1;
    int before = baseline_threads(), after;

    jobq_pool_options_init(&o);
    o.threads = 2;
    o.stack_size = (size_t)1 << 46; /* 64 TiB: half the x86-64 user address space */
    cr_assert_eq(jobq_pool_create(&p, &o), JOBQ_ETHREAD);
    cr_expect_eq(p, (jobq_pool *)(uintptr_t)1, "ret_pool written on failure");
    after = test_thread_count_settled(before);
    if (before > 0)
        cr_expect_eq(after, before, "%d threads before, %d after", before, after);
}

/* Bytes of address space this process has mapped (VmSize), or 0. */
static size_t
mapped_bytes(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu", &pages) != 1)
        pages = 0;
    (void)fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* The address-space limit lets a few 256 MiB stacks in and then refuses the next one: create
 * fails with JOBQ_ETHREAD after some workers started, and must stop and join exactly those.
 * RLIMIT_AS binds root too. Sanitizer runtimes reserve terabytes of address space, so there
 * this runs only in the plain build. */
Test(pool, thread_failure_after_some_started_joins_them, .timeout = 30)
{
    const size_t stack = (size_t)256 << 20;
    struct hooks h;
    struct rlimit old, lim;
    jobq_pool_options o;
    jobq_pool *p = (jobq_pool *)(uintptr_t)1;
    unsigned i, inits = 0, finis = 0;
    int before, after, err;
    size_t base;

    if (JOBQ_TEST_SANITIZED)
        cr_skip_test("RLIMIT_AS cannot be used under a sanitizer's reservations");
    before = baseline_threads();
    base = mapped_bytes();
    cr_assert_gt(base, 0, "cannot read /proc/self/statm");
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    memset(&h, 0, sizeof(h));
    h.fail_index = -1;
    h.prefix = "jobq";
    jobq_pool_options_init(&o);
    o.threads = HOOK_THREADS;
    o.stack_size = stack;
    o.worker_init = hook_init;
    o.worker_fini = hook_fini;
    o.hook_arg = &h;
    /* Room for two stacks, with 128 MiB per thread to spare for its guard page, malloc
     * arena and the like: far short of six stacks. */
    lim = old;
    lim.rlim_cur = (rlim_t)(base + 2 * (stack + ((size_t)128 << 20)));
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
    err = jobq_pool_create(&p, &o);
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    cr_assert_eq(err, JOBQ_ETHREAD, "create returned %d", err);
    cr_expect_eq(p, (jobq_pool *)(uintptr_t)1, "ret_pool written on failure");
    for (i = 0; i < HOOK_THREADS; i++) {
        inits += atomic_load(&h.init[i]);
        finis += atomic_load(&h.fini[i]);
    }
    cr_expect_gt(inits, 0, "no worker started, so the partial path was not taken");
    cr_expect_lt(inits, HOOK_THREADS);
    cr_expect_eq(finis, inits, "%u workers started, %u ran fini", inits, finis);
    after = test_thread_count_settled(before);
    if (before > 0)
        cr_expect_eq(after, before, "%d threads before, %d after", before, after);
}

Test(pool, create_destroy_1000_times, .timeout = 60)
{
    jobq_pool *p;
    struct acct a;
    jobq_job job = {acct_run, acct_done, NULL};
    int i, before = baseline_threads(), after;
    int rounds = (int)test_scaled(1000, 4);

    memset(&a, 0, sizeof(a));
    job.arg = &a;
    for (i = 0; i < rounds; i++) {
        p = make_pool(1 + (unsigned)(i % 4), 1 + (size_t)(i % 8));
        /* Some get work, some are destroyed idle, some just after a submit. */
        if (i % 3 != 0)
            cr_assert_eq(jobq_pool_submit(p, &job), 0);
        if (i % 3 == 1)
            cr_assert_eq(jobq_pool_wait(p), 0);
        jobq_pool_destroy(p);
    }
    /* destroy drains: every accepted job ran. */
    cr_expect_eq(atomic_load(&a.runs), (unsigned)(rounds - (rounds + 2) / 3));
    cr_expect_eq(atomic_load(&a.done_ok), atomic_load(&a.runs));
    after = test_thread_count_settled(before);
    if (before > 0)
        cr_expect_eq(after, before, "threads left behind: %d before, %d after", before, after);
}

/*
 * Shutdown of an idle pool with three or more workers must not lose a sentinel's wake-up.
 * (Seen hanging in join: one worker parked with its sentinel still in the ring; see the
 * report of the core-tests helper.) Many rounds, since the window is a few instructions.
 */
Test(pool, shutdown_idle_many_workers_never_hangs, .timeout = 30,
     .description = "every worker is woken for its sentinel")
{
    jobq_pool *p;
    int i, rounds = (int)test_scaled(2000, 8);

    for (i = 0; i < rounds; i++) {
        p = make_pool(3 + (unsigned)(i % 6), 1 + (size_t)(i % 5));
        jobq_pool_destroy(p);
    }
}

Test(pool, default_options, .timeout = 10)
{
    jobq_pool_options o;
    jobq_pool *p = NULL;

    memset(&o, 0xff, sizeof(o));
    jobq_pool_options_init(&o);
    cr_expect_eq(o.threads, jobq_cpu_count());
    cr_expect_eq(o.capacity, 1024);
    cr_expect_null(o.worker_init);
    cr_expect_null(o.worker_fini);
    cr_expect_null(o.hook_arg);
    cr_expect_str_eq(o.name, "jobq");
    cr_expect_eq(o.stack_size, 0);
    cr_assert_eq(jobq_pool_create(&p, NULL), 0);
    cr_expect_eq(jobq_pool_threads(p), jobq_cpu_count());
    jobq_pool_destroy(p);
}

/* ---- bad arguments ----------------------------------------------------------------------- */

static int
nop_run(void *arg)
{
    (void)arg;
    return 0;
}

Test(pool, bad_arguments, .timeout = 10)
{
    jobq_pool_options o;
    jobq_pool *p = (jobq_pool *)(uintptr_t)1, *good;
    jobq_group *g = (jobq_group *)(uintptr_t)1;
    jobq_job nullrun = {NULL, NULL, NULL}, ok = {nop_run, NULL, NULL}, batch[2];
    jobq_pool_stats st;
    size_t n = 99;

    jobq_pool_options_init(&o);
    cr_expect_eq(jobq_pool_create(NULL, NULL), JOBQ_EINVAL);
    o.threads = 0;
    cr_expect_eq(jobq_pool_create(&p, &o), JOBQ_EINVAL);
    jobq_pool_options_init(&o);
    o.capacity = 0;
    cr_expect_eq(jobq_pool_create(&p, &o), JOBQ_EINVAL);
    cr_expect_eq(p, (jobq_pool *)(uintptr_t)1, "ret_pool written on failure");

    cr_expect_eq(jobq_pool_submit(NULL, &ok), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_try_submit(NULL, &ok), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_timed_submit(NULL, &ok, 1), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_submit_batch(NULL, &ok, 1, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_wait(NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_shutdown(NULL, JOBQ_DRAIN, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_get_stats(NULL, &st, NULL, 0), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_worker_index(NULL), -1);
    cr_expect_eq(jobq_group_create(&g, NULL), JOBQ_EINVAL);
    cr_expect_eq(g, (jobq_group *)(uintptr_t)1);
    cr_expect_eq(jobq_group_submit(NULL, &ok), JOBQ_EINVAL);
    cr_expect_eq(jobq_group_wait(NULL), JOBQ_EINVAL);
    jobq_pool_destroy(NULL);
    jobq_group_destroy(NULL);

    good = make_pool(1, 2);
    cr_expect_eq(jobq_pool_submit(good, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_submit(good, &nullrun), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_try_submit(good, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_try_submit(good, &nullrun), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_timed_submit(good, NULL, 1), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_timed_submit(good, &nullrun, 1), JOBQ_EINVAL);
    batch[0] = ok;
    batch[1] = nullrun;
    cr_expect_eq(jobq_pool_submit_batch(good, batch, 2, &n), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_submit_batch(good, NULL, 1, &n), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_shutdown(good, (jobq_shutdown_mode)42, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_get_stats(good, NULL, NULL, 0), JOBQ_EINVAL);
    cr_expect_eq(jobq_group_create(NULL, good), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_parallel_for(good, 0, 10, 1, NULL, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_parallel_for(NULL, 0, 10, 1, (jobq_range_fn)NULL, NULL), JOBQ_EINVAL);
    cr_expect_eq(jobq_pool_map(good, NULL, 4, NULL, 4, 3, NULL, NULL), JOBQ_EINVAL);
    /* None of the refused calls queued anything. */
    cr_expect_eq(jobq_pool_wait(good), 0);
    cr_assert_eq(jobq_pool_get_stats(good, &st, NULL, 0), 0);
    cr_expect_eq(st.submitted, 0);
    jobq_pool_destroy(good);
}

/* ---- statistics -------------------------------------------------------------------------- */

/* `completed` moves per job, not per batch a worker took: with one worker, the jobs queued
 * while it is held are taken in one batch, and the job that then blocks must not hide the one
 * that finished before it (the counters used to be added when the batch ended, so long jobs
 * showed no progress). busy_ns slots past the worker count are zeroed, not left alone. */
Test(pool, completed_counts_each_job_during_a_long_batch, .timeout = 30)
{
    jobq_pool *p = make_pool(1, 16);
    struct test_gate g1, g2;
    jobq_job hold = {gate_run, NULL, NULL}, quick = {nop_run, NULL, NULL};
    jobq_job block = {gate_run, NULL, NULL};
    jobq_pool_stats st;
    uint64_t busy[3] = {7, 7, 7};

    test_gate_init(&g1);
    test_gate_init(&g2);
    hold.arg = &g1;
    block.arg = &g2;
    cr_assert_eq(jobq_pool_submit(p, &hold), 0);
    test_gate_await_arrivals(&g1, 1);
    cr_assert_eq(jobq_pool_submit(p, &quick), 0);
    cr_assert_eq(jobq_pool_submit(p, &block), 0);
    test_gate_open(&g1);
    test_gate_await_arrivals(&g2, 1);
    cr_assert_eq(jobq_pool_get_stats(p, &st, busy, 3), 0);
    cr_expect_eq(st.completed, 2, "hold and quick finished, block runs: completed %llu",
                 (unsigned long long)st.completed);
    cr_expect_eq(st.submitted, 3);
    cr_expect_eq(busy[1], 0, "no worker 1");
    cr_expect_eq(busy[2], 0, "no worker 2");
    test_gate_open(&g2);
    cr_assert_eq(jobq_pool_wait(p), 0);
    jobq_pool_destroy(p);
    test_gate_fini(&g1);
    test_gate_fini(&g2);
}

struct stats_reader {
    jobq_pool *p;
    atomic_int stop;
    int regressions;
    int errors;
    atomic_ulong reads;
};

/* Each counter is a sum of monotonic atomics read in order: successive reads never go down. */
static void *
stats_reader_thread(void *arg)
{
    struct stats_reader *r = arg;
    jobq_pool_stats prev, cur;
    uint64_t busy[4];

    memset(&prev, 0, sizeof(prev));
    while (!atomic_load(&r->stop)) {
        if (jobq_pool_get_stats(r->p, &cur, busy, 4) != 0) {
            r->errors++;
            break;
        }
        if (cur.completed < prev.completed || cur.submitted < prev.submitted ||
            cur.producer_blocks < prev.producer_blocks ||
            cur.queue_high_water < prev.queue_high_water || cur.queue_high_water > 8)
            r->regressions++;
        prev = cur;
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static int
busy_run(void *arg)
{
    volatile unsigned x = 0;

    (void)arg;
    for (unsigned i = 0; i < 2000; i++)
        x += i;
    return 0;
}

Test(pool, stats_while_running, .timeout = 60)
{
    struct stats_reader r;
    struct test_gate g;
    jobq_job job = {busy_run, NULL, NULL}, gate_job = {gate_run, NULL, NULL};
    jobq_pool_stats st;
    uint64_t busy[4] = {0, 0, 0, 0}, busy_sum = 0;
    unsigned long before;
    pthread_t t;
    size_t i, n = test_scaled(50000, 10);

    memset(&r, 0, sizeof(r));
    r.p = make_pool(4, 8);
    test_gate_init(&g);
    gate_job.arg = &g;
    cr_assert_eq(pthread_create(&t, NULL, stats_reader_thread, &r), 0);
    /* Every worker held in a job: the reader must read the stats at least twice while they run
     * (on 2 cores it might otherwise not be scheduled before a fast run is over). */
    for (i = 0; i < 4; i++)
        cr_assert_eq(jobq_pool_submit(r.p, &gate_job), 0);
    test_gate_await_arrivals(&g, 4);
    before = atomic_load(&r.reads);
    while (atomic_load(&r.reads) < before + 2)
        test_sleep_ms(1);
    test_gate_open(&g);
    for (i = 0; i < n; i++)
        cr_assert_eq(jobq_pool_submit(r.p, &job), 0);
    cr_assert_eq(jobq_pool_wait(r.p), 0);
    atomic_store(&r.stop, 1);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_expect_eq(r.errors, 0);
    cr_expect_eq(r.regressions, 0, "a counter went backwards (or high water > capacity)");
    cr_assert_eq(jobq_pool_get_stats(r.p, &st, busy, 4), 0);
    cr_expect_eq(st.submitted, n + 4);
    cr_expect_eq(st.completed, n + 4);
    cr_expect_gt(st.queue_high_water, 0);
    cr_expect_leq(st.queue_high_water, 8);
    cr_expect_eq(st.threads, 4);
    for (i = 0; i < 4; i++)
        busy_sum += busy[i];
    cr_expect_gt(busy_sum, 0, "workers ran %zu jobs in 0 ns", n);
    jobq_pool_destroy(r.p);
    test_gate_fini(&g);
}

static int
fail_run(void *arg)
{
    return (int)(intptr_t)arg;
}

Test(pool, failed_jobs_counted, .timeout = 10)
{
    jobq_pool *p = make_pool(2, 4);
    jobq_pool_stats st;
    jobq_job job = {fail_run, NULL, NULL};
    int i, r;

    for (i = 0; i < 30; i++) {
        job.arg = (void *)(intptr_t)(i % 3 == 0 ? -5 : 0);
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
    }
    r = jobq_pool_wait(p);
    cr_expect_eq(r, -5);
    cr_assert_eq(jobq_pool_get_stats(p, &st, NULL, 0), 0);
    cr_expect_eq(st.failed, 10);
    cr_expect_eq(st.completed, 30);
    jobq_pool_destroy(p);
}

/* ---- progress ---------------------------------------------------------------------------- */

/*
 * A job that waits for a job queued after it must not deadlock while another worker is idle:
 * this is what pipelines on one pool (a consumer job popping a jobq_queue that a producer job
 * fills) rely on. Job 0 waits (bounded, 10 s) for jobs 1..7 to finish; with two workers the
 * second one is free to run them.
 */
struct dependent {
    atomic_uint finished;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static int
waits_for_others(void *arg)
{
    struct dependent *d = arg;
    struct timespec ts;
    int r = 0;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    (void)pthread_mutex_lock(&d->lock);
    while (atomic_load(&d->finished) < 7 && r == 0)
        r = pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    (void)pthread_mutex_unlock(&d->lock);
    return atomic_load(&d->finished) < 7 ? JOBQ_ETIMEDOUT : 0;
}

static int
signals_one(void *arg)
{
    struct dependent *d = arg;

    (void)pthread_mutex_lock(&d->lock);
    atomic_fetch_add(&d->finished, 1);
    (void)pthread_cond_broadcast(&d->cond);
    (void)pthread_mutex_unlock(&d->lock);
    return 0;
}

Test(pool, blocked_job_does_not_hold_later_jobs_hostage, .timeout = 30,
     .description = "a job waiting for later jobs completes while another worker is idle")
{
    jobq_pool *p = make_pool(2, 64);
    struct dependent d;
    jobq_job first = {waits_for_others, NULL, NULL}, rest = {signals_one, NULL, NULL};
    jobq_job batch[8];
    int i;

    memset(&d, 0, sizeof(d));
    (void)pthread_mutex_init(&d.lock, NULL);
    (void)pthread_cond_init(&d.cond, NULL);
    first.arg = &d;
    rest.arg = &d;
    batch[0] = first;
    for (i = 1; i < 8; i++)
        batch[i] = rest;
    /* Queued in one go, as a producer that outruns the workers would. */
    cr_assert_eq(jobq_pool_submit_batch(p, batch, 8, NULL), 0);
    cr_expect_eq(jobq_pool_wait(p), 0, "job 0 timed out: later jobs were stuck behind it");
    cr_expect_eq(atomic_load(&d.finished), 7);
    jobq_pool_destroy(p);
    (void)pthread_cond_destroy(&d.cond);
    (void)pthread_mutex_destroy(&d.lock);
}

#ifdef __linux__
#include <sched.h>

struct where {
    int cpu[20];
    atomic_uint ran;
    atomic_int stop;
    cpu_set_t other; /* where the busy thread runs */
};

/* Keeps the other CPU busy, so that the kernel has no idle CPU to wake the worker on. */
static void *
busy_thread(void *arg)
{
    struct where *wh = arg;

    (void)pthread_setaffinity_np(pthread_self(), sizeof(wh->other), &wh->other);
    while (!atomic_load_explicit(&wh->stop, memory_order_relaxed))
        ;
    return NULL;
}

static int
note_cpu(void *arg)
{
    struct where *wh = arg;

    wh->cpu[atomic_fetch_add(&wh->ran, 1) % 20] = sched_getcpu();
    return 0;
}

/*
 * A worker that keeps running out of work (starved: the submitter is the bottleneck) and is
 * woken onto its submitter's CPU must leave it before it runs the job, and keep its own
 * affinity mask. On the development VM the kernel woke such a worker beside the submitter every
 * time, halving empty-job throughput. The test keeps the other CPUs busy, puts itself and,
 * before every job, the parked worker on one CPU, submits one job at a time and notes where
 * each ran.
 */
Test(pool, starved_worker_leaves_its_submitters_cpu_and_keeps_its_mask, .timeout = 30)
{
    cpu_set_t all, one, got;
    jobq_pool *p = make_pool(1, 16);
    struct where wh;
    pthread_t busy;
    jobq_job job = {0};
    pid_t tid = test_thread_tid("jobq-0");
    int cpu, round, beside = 0;

    cr_assert(tid > 0, "worker thread jobq-0 not found");
    cpu = test_first_of_two_cpus(&all, &one);
    if (cpu < 0) {
        jobq_pool_destroy(p);
        cr_skip_test("needs an affinity mask with 2 CPUs or more");
    }
    memset(&wh, 0, sizeof(wh));
    wh.other = all;
    CPU_CLR(cpu, &wh.other);
    cr_assert_eq(pthread_create(&busy, NULL, busy_thread, &wh), 0);
    job.run = note_cpu;
    job.arg = &wh;
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0); /* the submitter on `cpu` */
    for (round = 0; round < 20; round++) {
        test_sleep_ms(2); /* the worker parks between jobs */
        /* Parked, it is moved onto `cpu` and given its mask back: `cpu` is its last CPU. */
        cr_assert_eq(test_place_thread(tid, &one, &all), 0);
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
        cr_assert_eq(jobq_pool_wait(p), 0);
    }
    cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
    atomic_store(&wh.stop, 1);
    cr_assert_eq(pthread_join(busy, NULL), 0);
    cr_assert_eq(atomic_load(&wh.ran), 20);
    /* Starved after two short wake-ups. A worker that never leaves runs all of them beside the
     * submitter; the kernel may still move one back under load. Under a sanitizer the awake
     * periods are longer than the starvation limit, so only the mask is checked there. */
    for (round = 5; round < 20; round++)
        beside += wh.cpu[round] == cpu;
    if (!JOBQ_TEST_SANITIZED)
        cr_assert(beside <= 7, "%d of the last 15 jobs ran on the submitter's CPU %d", beside,
                  cpu);
    cr_assert_eq(sched_getaffinity(tid, sizeof(got), &got), 0);
    cr_assert(CPU_EQUAL(&got, &all), "the worker's mask was not restored");
    jobq_pool_destroy(p);
}

struct pair {
    atomic_uint started;
    int cpu[2];
};

/* A long job: busy until its partner has started too and for at least 0.2 ms (so the worker
 * never counts as starved), at most 20 ms (a partner stuck behind it waits for the tick). */
static int
busy_until_partner(void *arg)
{
    struct pair *pr = arg;
    unsigned i = atomic_fetch_add(&pr->started, 1);
    uint64_t t0 = test_now_ns(), t;

    if (i < 2)
        pr->cpu[i] = sched_getcpu();
    do
        t = test_now_ns() - t0;
    while ((atomic_load(&pr->started) < 2 || t < 200000) && t < 20000000);
    return 0;
}

/*
 * Two parked workers whose last CPU is the same, woken by two submits in a row from a
 * submitter that has just been busy, must end up on different CPUs. The kernel counts a CPU
 * whose first wake-up has not landed as idle and, with the submitter's CPU looking loaded, put
 * both there on the development VM, where the second waited a whole tick behind the first
 * (the library before the fix failed this test 3 times in 3, with 6-10 of 20 pairs on one
 * CPU; a probe of the same steps gave 0 of 15 with it, 5-9 of 15 without). The first worker
 * yields while another wake-up is in flight; the second then sees that it woke beside an awake
 * worker and moves to a free CPU (the submitter's: it waits in jobq_pool_wait), keeping its
 * mask.
 */
Test(pool, workers_woken_onto_one_cpu_spread_out_and_keep_their_masks, .timeout = 30)
{
    cpu_set_t all, one, rest, got;
    jobq_pool *p = make_pool(2, 16);
    struct pair pr;
    jobq_job job = {busy_until_partner, NULL, &pr};
    pid_t tid0 = test_thread_tid("jobq-0"), tid1 = test_thread_tid("jobq-1");
    int cpu, round, beside = 0;

    cr_assert(tid0 > 0 && tid1 > 0, "worker threads not found");
    cpu = test_first_of_two_cpus(&all, &one);
    if (cpu < 0) {
        jobq_pool_destroy(p);
        cr_skip_test("needs an affinity mask with 2 CPUs or more");
    }
    rest = all;
    CPU_CLR(cpu, &rest);
    cr_assert_eq(sched_setaffinity(0, sizeof(rest), &rest), 0); /* the submitter elsewhere */
    for (round = 0; round < 20; round++) {
        uint64_t t0;

        test_sleep_ms(2); /* both parked */
        cr_assert_eq(test_place_thread(tid0, &one, &all), 0);
        cr_assert_eq(test_place_thread(tid1, &one, &all), 0);
        memset(&pr, 0, sizeof(pr));
        /* Busy first, as an application that computed before handing out jobs. */
        for (t0 = test_now_ns(); test_now_ns() - t0 < 20000000;)
            ;
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
        cr_assert_eq(jobq_pool_submit(p, &job), 0);
        cr_assert_eq(jobq_pool_wait(p), 0);
        beside += pr.cpu[0] == pr.cpu[1];
    }
    cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
    /* The kernel may still stack a pair now and then (the suite runs alone for this). */
    cr_assert(beside <= 3, "%d of 20 pairs of jobs ran on one CPU", beside);
    cr_assert_eq(sched_getaffinity(tid0, sizeof(got), &got), 0);
    cr_assert(CPU_EQUAL(&got, &all), "jobq-0's mask was not restored");
    cr_assert_eq(sched_getaffinity(tid1, sizeof(got), &got), 0);
    cr_assert(CPU_EQUAL(&got, &all), "jobq-1's mask was not restored");
    jobq_pool_destroy(p);
}
#endif
