/*
 * test-parallel.c - jobq_pool_parallel_for and jobq_pool_map: every index exactly once for
 * awkward ranges and grains, chunk bounds, nesting from a worker, error stop, ordered results.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
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

struct cover {
    size_t begin, end, grain;
    atomic_uint *hits; /* [i - begin] */
    atomic_uint bad_chunks; /* empty, out of range, or longer than grain */
    atomic_uint chunks;
};

static int
cover_fn(void *ctx, size_t b, size_t e)
{
    struct cover *c = ctx;
    size_t i;

    atomic_fetch_add(&c->chunks, 1);
    if (b >= e || b < c->begin || e > c->end || (c->grain > 0 && e - b > c->grain)) {
        atomic_fetch_add(&c->bad_chunks, 1);
        return 0;
    }
    for (i = b; i < e; i++)
        atomic_fetch_add_explicit(&c->hits[i - c->begin], 1, memory_order_relaxed);
    return 0;
}

static void
check_cover(jobq_pool *p, size_t begin, size_t end, size_t grain)
{
    struct cover c;
    size_t n = end - begin, i, bad = 0;

    memset(&c, 0, sizeof(c));
    c.begin = begin;
    c.end = end;
    c.grain = grain;
    c.hits = calloc(n + 1, sizeof(*c.hits));
    cr_assert_not_null(c.hits);
    cr_assert_eq(jobq_pool_parallel_for(p, begin, end, grain, cover_fn, &c), 0);
    for (i = 0; i < n; i++)
        bad += atomic_load(&c.hits[i]) != 1;
    cr_expect_eq(bad, 0, "[%zu, %zu) grain %zu: %zu indexes not covered exactly once", begin, end,
                 grain, bad);
    cr_expect_eq(atomic_load(&c.bad_chunks), 0, "[%zu, %zu) grain %zu: bad chunk bounds", begin,
                 end, grain);
    if (n == 0)
        cr_expect_eq(atomic_load(&c.chunks), 0, "fn called for an empty range");
    if (grain > 0 && n > 0)
        cr_expect_eq(atomic_load(&c.chunks), (n + grain - 1) / grain);
    free(c.hits);
}

static void
awkward_ranges(unsigned threads)
{
    jobq_pool *p = make_pool(threads, 16);

    check_cover(p, 0, 0, 0);
    check_cover(p, 0, 0, 5);
    check_cover(p, 7, 7, 1);
    check_cover(p, 0, 1, 0);
    check_cover(p, 0, 1, 1);
    check_cover(p, 0, 997, 0);     /* prime, automatic grain */
    check_cover(p, 0, 997, 1);     /* one index per chunk */
    check_cover(p, 0, 997, 10);    /* last chunk short */
    check_cover(p, 0, 997, 5000);  /* grain > n */
    check_cover(p, 1000, 1997, 7); /* begin != 0 */
    check_cover(p, 3, 100003, 0);
    check_cover(p, SIZE_MAX - 100, SIZE_MAX, 9); /* no overflow at the top of size_t */
    check_cover(p, SIZE_MAX - 100000, SIZE_MAX, 0);
    jobq_pool_destroy(p);
}

Test(parallel, covers_every_index_once_1_worker, .timeout = 30)
{
    awkward_ranges(1);
}

Test(parallel, covers_every_index_once_4_workers, .timeout = 30)
{
    awkward_ranges(4);
}

Test(parallel, reversed_range_refused, .timeout = 10)
{
    jobq_pool *p = make_pool(2, 4);
    struct cover c;

    memset(&c, 0, sizeof(c));
    cr_expect_eq(jobq_pool_parallel_for(p, 10, 5, 1, cover_fn, &c), JOBQ_EINVAL);
    cr_expect_eq(atomic_load(&c.chunks), 0);
    jobq_pool_destroy(p);
}

/* Automatic grain hands out chunks that shrink toward the end of the range, so a thread that
 * starts late or is pre-empted holds the others up by a short chunk, not by 1/(8 * threads) of
 * the range; and there are few of them, so cheap bodies do not pay an atomic per index. */
#define GUIDED_N 100000
#define GUIDED_MAX_CHUNKS 4096

struct guided {
    atomic_uint n;
    size_t b[GUIDED_MAX_CHUNKS], e[GUIDED_MAX_CHUNKS];
};

static int
guided_fn(void *ctx, size_t b, size_t e)
{
    struct guided *g = ctx;
    unsigned i = atomic_fetch_add(&g->n, 1);

    if (i < GUIDED_MAX_CHUNKS) {
        g->b[i] = b;
        g->e[i] = e;
    }
    return 0;
}

static int
by_begin(const void *x, const void *y)
{
    const size_t *a = x, *b = y;

    return (a[0] > b[0]) - (a[0] < b[0]);
}

Test(parallel, automatic_grain_shrinks_chunks_toward_the_end, .timeout = 30)
{
    static struct guided g;
    static size_t ch[GUIDED_MAX_CHUNKS][2];
    const unsigned workers = 2, takers = workers + 1; /* and the calling thread */
    jobq_pool *p = make_pool(workers, 16);
    unsigned n, i;

    cr_assert_eq(jobq_pool_parallel_for(p, 0, GUIDED_N, 0, guided_fn, &g), 0);
    jobq_pool_destroy(p);
    n = atomic_load(&g.n);
    cr_assert(n >= 2 * takers && n <= 40 * takers, "%u chunks for %u threads", n, takers);
    for (i = 0; i < n; i++) {
        ch[i][0] = g.b[i];
        ch[i][1] = g.e[i];
    }
    qsort(ch, n, sizeof(ch[0]), by_begin);
    cr_expect_eq(ch[0][0], 0);
    cr_expect_eq(ch[n - 1][1], GUIDED_N);
    for (i = 0; i < n; i++) {
        size_t len = ch[i][1] - ch[i][0];

        cr_assert_gt(len, 0);
        /* No chunk takes half of what is left, unless it is one of the short tail chunks. */
        if (len > GUIDED_N / (64 * takers))
            cr_expect_lt(len, (GUIDED_N - ch[i][0]) / 2, "chunk %u [%zu, %zu)", i, ch[i][0],
                         ch[i][1]);
        if (i > 0) {
            cr_expect_eq(ch[i][0], ch[i - 1][1], "chunks %u and %u not contiguous", i - 1, i);
            cr_expect_leq(len, ch[i - 1][1] - ch[i - 1][0], "chunk %u longer than chunk %u", i,
                          i - 1);
        }
    }
    /* The last chunk: a small fraction of one thread's share. */
    cr_expect_leq(ch[n - 1][1] - ch[n - 1][0], GUIDED_N / (64 * takers));
}

/* Nested: a job on the only worker runs a parallel_for on the same pool. The worker must take
 * the chunks itself (nobody else can) instead of waiting for queued helpers. */
struct nested {
    jobq_pool *p;
    struct cover c;
    int r;
};

static int
nested_job(void *arg)
{
    struct nested *n = arg;

    n->r = jobq_pool_parallel_for(n->p, 0, 1000, 3, cover_fn, &n->c);
    return n->r;
}

static void
nested_from_worker(unsigned threads, size_t capacity)
{
    struct nested n;
    jobq_job job = {nested_job, NULL, NULL};
    size_t i, bad = 0;

    memset(&n, 0, sizeof(n));
    n.p = make_pool(threads, capacity);
    n.c.begin = 0;
    n.c.end = 1000;
    n.c.grain = 3;
    n.c.hits = calloc(1000, sizeof(*n.c.hits));
    n.r = -1;
    job.arg = &n;
    cr_assert_eq(jobq_pool_submit(n.p, &job), 0);
    cr_assert_eq(jobq_pool_wait(n.p), 0);
    cr_expect_eq(n.r, 0);
    for (i = 0; i < 1000; i++)
        bad += atomic_load(&n.c.hits[i]) != 1;
    cr_expect_eq(bad, 0);
    cr_expect_eq(atomic_load(&n.c.bad_chunks), 0);
    jobq_pool_destroy(n.p);
    free(n.c.hits);
}

Test(parallel, nested_from_worker_1_worker, .timeout = 20)
{
    nested_from_worker(1, 1);
}

Test(parallel, nested_from_worker_3_workers, .timeout = 20)
{
    nested_from_worker(3, 2);
}

/* Errors: every chunk from index 10 on fails; the call returns that error and stops handing
 * out chunks (at most a chunk per thread in flight runs after the first failure). */
struct failing {
    atomic_uint calls;
};

static int
failing_fn(void *ctx, size_t b, size_t e)
{
    struct failing *f = ctx;

    (void)e;
    atomic_fetch_add(&f->calls, 1);
    return b >= 10 ? -42 : 0;
}

Test(parallel, error_stops_and_is_returned, .timeout = 30)
{
    jobq_pool *p = make_pool(2, 8);
    struct failing f;
    size_t n = 100000;

    memset(&f, 0, sizeof(f));
    cr_assert_eq(jobq_pool_parallel_for(p, 0, n, 1, failing_fn, &f), -42);
    cr_expect_lt(atomic_load(&f.calls), n / 2, "%u of %zu chunks ran after errors",
                 atomic_load(&f.calls), n);
    /* The pool is fine afterwards, and the error does not leak into the next call. */
    memset(&f, 0, sizeof(f));
    cr_assert_eq(jobq_pool_parallel_for(p, 0, 10, 1, failing_fn, &f), 0);
    cr_expect_eq(atomic_load(&f.calls), 10);
    jobq_pool_destroy(p);
}

/* ---- map ------------------------------------------------------------------------------- */

struct out_rec {
    double square;
    uint32_t idx_check;
    int32_t worker;
};

struct map_ctx {
    const int32_t *base;
    int fail_at; /* -1: never */
};

static int
square_fn(void *ctx, const void *in, void *out)
{
    const struct map_ctx *m = ctx;
    int32_t v = *(const int32_t *)in;
    struct out_rec *o = out;

    if (m->fail_at >= 0 && v == m->fail_at)
        return -9;
    o->square = (double)v * (double)v;
    o->idx_check = (uint32_t)((const int32_t *)in - m->base);
    o->worker = 1;
    return 0;
}

Test(parallel, map_results_land_at_their_index, .timeout = 30)
{
    jobq_pool *p = make_pool(4, 8);
    size_t n = 10007, i, bad = 0;
    int32_t *in = malloc(n * sizeof(*in));
    struct out_rec *out = calloc(n, sizeof(*out));
    struct map_ctx m;

    cr_assert(in && out);
    for (i = 0; i < n; i++)
        in[i] = (int32_t)(i * 7 % 1009) - 500;
    m.base = in;
    m.fail_at = -1;
    cr_assert_eq(jobq_pool_map(p, in, sizeof(*in), out, sizeof(*out), n, square_fn, &m), 0);
    for (i = 0; i < n; i++)
        bad += out[i].square != (double)in[i] * (double)in[i] || out[i].idx_check != i ||
               out[i].worker != 1;
    cr_expect_eq(bad, 0, "%zu results not at their index", bad);
    /* n = 0 calls nothing. */
    cr_expect_eq(jobq_pool_map(p, in, sizeof(*in), out, sizeof(*out), 0, square_fn, &m), 0);
    /* An error is returned. */
    m.fail_at = in[5000];
    cr_expect_eq(jobq_pool_map(p, in, sizeof(*in), out, sizeof(*out), n, square_fn, &m), -9);
    cr_expect_eq(jobq_pool_map(p, in, sizeof(*in), out, SIZE_MAX / 2, 3, square_fn, &m),
                 JOBQ_EOVERFLOW);
    jobq_pool_destroy(p);
    free(in);
    free(out);
}

#define ORDER_N 400

struct order {
    atomic_int ran[ORDER_N];
    atomic_int finished;
};

/* Chunk c (grain 1) waits until every earlier chunk has finished. That must not deadlock: the
 * documented guarantee jobq_matmul builds on is that when a thread takes chunk c, every earlier
 * chunk is held by a running thread (a chunk taken but parked, or handed out out of order,
 * would hang this test until its timeout). */
static int
order_chunk(void *ctx, size_t b, size_t e)
{
    struct order *o = ctx;
    size_t c;

    for (c = b; c < e; c++) {
        while ((size_t)atomic_load(&o->finished) < c)
            ;
        atomic_fetch_add(&o->ran[c], 1);
        atomic_fetch_add(&o->finished, 1);
    }
    return 0;
}

Test(parallel, chunks_taken_in_order_may_wait_for_earlier_ones, .timeout = 60)
{
    static const unsigned workers[] = {1, 2, 4};
    struct order *o;
    unsigned w, i;

    for (w = 0; w < sizeof(workers) / sizeof(workers[0]); w++) {
        jobq_pool *p = make_pool(workers[w], 64);

        o = calloc(1, sizeof(*o));
        cr_assert_not_null(o);
        cr_assert_eq(jobq_pool_parallel_for(p, 0, ORDER_N, 1, order_chunk, o), 0);
        cr_assert_eq(atomic_load(&o->finished), ORDER_N);
        for (i = 0; i < ORDER_N; i++)
            cr_assert_eq(atomic_load(&o->ran[i]), 1, "chunk %u ran %d times", i,
                         atomic_load(&o->ran[i]));
        free(o);
        jobq_pool_destroy(p);
    }
}

/*
 * The same chain with a failing chunk: after the error no further chunk is handed out, but a
 * chunk already taken always runs - skipping one (an error check after the claim) left the
 * chunks behind it waiting forever for it. So the chunks that ran are exactly a prefix of
 * the range, the error is returned, and the call returns (a hang shows as the timeout). With
 * more threads than CPUs, a thread is often pre-empted between its claim and its chunk.
 */
#define ORDER_FAIL_AT 40

static int
failing_order_chunk(void *ctx, size_t b, size_t e)
{
    int r = order_chunk(ctx, b, e);

    return r != 0 ? r : (b <= ORDER_FAIL_AT && ORDER_FAIL_AT < e ? -9 : 0);
}

Test(parallel, chunks_taken_before_an_error_still_run, .timeout = 120)
{
    struct order *o;
    unsigned rep, i, ran;
    jobq_pool *p = make_pool(4, 64);

    o = calloc(1, sizeof(*o));
    cr_assert_not_null(o);
    for (rep = 0; rep < (unsigned)test_scaled(200, 10); rep++) {
        memset(o, 0, sizeof(*o));
        cr_assert_eq(jobq_pool_parallel_for(p, 0, ORDER_N, 1, failing_order_chunk, o), -9);
        ran = (unsigned)atomic_load(&o->finished);
        cr_assert_gt(ran, ORDER_FAIL_AT, "the failing chunk and all before it ran");
        for (i = 0; i < ORDER_N; i++)
            cr_assert_eq(atomic_load(&o->ran[i]), i < ran ? 1 : 0,
                         "rep %u: chunk %u ran %d times (%u ran in all)", rep, i,
                         atomic_load(&o->ran[i]), ran);
    }
    free(o);
    jobq_pool_destroy(p);
}

#ifdef __linux__
#include <sched.h>

/* 0.2 ms of work per chunk. */
static int
spin_chunk(void *ctx, size_t b, size_t e)
{
    unsigned long long t0 = test_now_ns();

    (void)ctx;
    (void)b;
    (void)e;
    while (test_now_ns() - t0 < 200000ull)
        ;
    return 0;
}

/*
 * A parked worker that wakes up on its parallel_for caller's CPU must not stay there (the
 * caller computes chunks too; sharing its CPU made every call serial on the development VM)
 * and must keep its own affinity mask. The worker is put on the caller's CPU first: pinned
 * there by the test, then given back its mask, and left to park.
 */
Test(parallel, woken_worker_leaves_the_callers_cpu_and_keeps_its_mask, .timeout = 30)
{
    cpu_set_t all, one, got;
    jobq_pool *p = make_pool(1, 16);
    pid_t tid = test_thread_tid("jobq-0");
    int cpu, round, now, beside = 0;

    cr_assert(tid > 0, "worker thread jobq-0 not found");
    cpu = test_first_of_two_cpus(&all, &one);
    if (cpu < 0) {
        jobq_pool_destroy(p);
        cr_skip_test("needs an affinity mask with 2 CPUs or more");
    }
    for (round = 0; round < 10; round++) {
        /* Worker onto `cpu` and parked there; the caller on `cpu` as well. */
        cr_assert_eq(test_place_thread(tid, &one, &all), 0);
        cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        test_sleep_ms(20);
        cr_assert_eq(jobq_pool_parallel_for(p, 0, 8, 1, spin_chunk, NULL), 0);
        cr_assert_eq(sched_setaffinity(0, sizeof(all), &all), 0);
        cr_assert_eq(jobq_pool_wait(p), 0);

        cr_assert_eq(sched_getaffinity(tid, sizeof(got), &got), 0);
        cr_assert(CPU_EQUAL(&got, &all), "round %d: the worker's mask was not restored", round);
        now = test_thread_cpu(tid);
        cr_assert(now >= 0, "cannot read the worker's CPU");
        beside += now == cpu;
    }
    /* The kernel may move the worker back under load (other tests, other processes); a worker
     * that never leaves ends all 10 rounds there. */
    cr_assert(beside <= 4, "worker ended %d of 10 rounds on the caller's CPU %d", beside, cpu);
    jobq_pool_destroy(p);
}

struct chunk_cpus {
    jobq_pool *pool;
    int worker, caller; /* CPU each ran its chunk on, -1: ran none */
};

/* 5 ms of work (longer than a scheduler tick), noting where it ran. */
static int
note_chunk_cpu(void *ctx, size_t b, size_t e)
{
    struct chunk_cpus *cc = ctx;
    unsigned long long t0 = test_now_ns();

    (void)b;
    (void)e;
    if (jobq_pool_worker_index(cc->pool) >= 0)
        cc->worker = sched_getcpu();
    else
        cc->caller = sched_getcpu();
    while (test_now_ns() - t0 < 5000000ull)
        ;
    return 0;
}

static int
noop_job(void *arg)
{
    (void)arg;
    return 0;
}

/* Keeps one CPU busy for 20 ms, as the other half of a two-thread computation. */
static void *
busy_20ms(void *arg)
{
    unsigned long long t0 = test_now_ns();

    (void)arg;
    while (test_now_ns() - t0 < 20000000ull)
        ;
    return NULL;
}

/*
 * A worker that wakes its jobq_pool_wait caller on its own CPU is often pre-empted by it right
 * there: runnable but not running, and still counted as searching, so a parallel_for that the
 * caller starts next wakes nobody. On the development VM such a worker waited for the tick
 * (3.9 ms) beside the caller while the other vCPU idled, then ran its chunk there. The caller
 * must make way, and the worker, once it has work, must leave the caller's CPU. Each round, as
 * in the probe that found it: two threads busy for 20 ms, then a fresh one-worker pool, a no-op
 * job and a wait, then two chunks of 5 ms; the test notes where each thread ran its chunk.
 */
Test(parallel, worker_preempted_on_the_callers_cpu_leaves_it_for_its_chunk, .timeout = 60)
{
    cpu_set_t all, one;
    jobq_job noop = {noop_job, NULL, NULL};
    int round, beside = 0, ran = 0;

    if (test_first_of_two_cpus(&all, &one) < 0)
        cr_skip_test("needs an affinity mask with 2 CPUs or more");
    for (round = 0; round < 12; round++) {
        struct chunk_cpus cc = {NULL, -1, -1};
        pthread_t busy;

        cr_assert_eq(pthread_create(&busy, NULL, busy_20ms, NULL), 0);
        (void)busy_20ms(NULL);
        cr_assert_eq(pthread_join(busy, NULL), 0);
        test_sleep_ms(20);
        cc.pool = make_pool(1, 16);
        cr_assert_eq(jobq_pool_submit(cc.pool, &noop), 0);
        cr_assert_eq(jobq_pool_wait(cc.pool), 0);
        cr_assert_eq(jobq_pool_parallel_for(cc.pool, 0, 2, 1, note_chunk_cpu, &cc), 0);
        jobq_pool_destroy(cc.pool);
        ran += cc.worker >= 0;
        beside += cc.worker >= 0 && cc.worker == cc.caller;
    }
    cr_assert(ran >= 6, "the worker ran a chunk in only %d of 12 rounds", ran);
    cr_assert(beside <= 3, "the worker ran its chunk on the caller's CPU in %d of %d rounds",
              beside, ran);
}
#endif
