/*
 * test-matmul.c - the matmul job (src/jobs/matmul) through its public header.
 *
 * Products of many shapes (1x1, primes, rectangular, strided) and every kernel the CPU has are
 * checked against the naive reference with the error bound; the result must be bit-identical for
 * any pool size, dispatch and block size; the verifier must catch one planted wrong product; bad
 * arguments must be refused with the documented codes.
 */
#define _GNU_SOURCE /* test-util.h: sched_getaffinity */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <jobq.h>
#include <jobq/matmul.h>

#include "../test-util.h"

static uint64_t rng_state;

static double
rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53 * 2.0 - 1.0;
}

static double *
rand_matrix(size_t rows, size_t ld)
{
    double *p = malloc(rows * ld * sizeof(double));
    size_t i;

    cr_assert_not_null(p);
    for (i = 0; i < rows * ld; i++)
        p[i] = rnd();
    return p;
}

static jobq_pool *
make_pool(unsigned threads)
{
    jobq_pool_options po;
    jobq_pool *pool = NULL;

    jobq_pool_options_init(&po);
    po.threads = threads;
    cr_assert_eq(jobq_pool_create(&pool, &po), 0);
    return pool;
}

/* Multiply with strides lda = k + pa etc., check against the reference and that the padding
 * columns of C were not touched. */
static void
check_shape(jobq_pool *pool, size_t m, size_t n, size_t k, size_t pad, jobq_matmul_kernel kern,
            jobq_matmul_dispatch how)
{
    const size_t lda = k + pad, ldb = n + 2 * pad, ldc = n + pad;
    const double sentinel = -12345.5;
    jobq_matmul_options o;
    jobq_matmul_check check;
    double *A, *B, *C, *R;
    size_t i, j;

    rng_state = m * 1000003u + n * 1009u + k;
    A = rand_matrix(m, lda);
    B = rand_matrix(k, ldb);
    C = malloc(m * ldc * sizeof(double));
    R = malloc(m * n * sizeof(double));
    cr_assert(C != NULL && R != NULL);
    for (i = 0; i < m * ldc; i++)
        C[i] = sentinel;
    jobq_matmul_options_init(&o);
    o.kernel = kern;
    o.dispatch = how;
    cr_assert_eq(jobq_matmul(pool, m, n, k, A, lda, B, ldb, C, ldc, &o), 0,
                 "%zux%zux%zu kernel %s", m, k, n, jobq_matmul_kernel_name(kern));
    cr_assert_eq(jobq_matmul_reference(pool, m, n, k, A, lda, B, ldb, R, n), 0);
    cr_assert_eq(jobq_matmul_verify(pool, m, n, k, A, lda, B, ldb, C, ldc, R, n, &check), 0);
    cr_assert_eq(check.checked, m * n);
    cr_assert_eq(check.failures, 0,
                 "%zux%zux%zu kernel %s: %zu failures, first (%zu,%zu) %.17g vs %.17g", m, k, n,
                 jobq_matmul_kernel_name(kern), check.failures, check.first_row,
                 check.first_col, check.first_c, check.first_r);
    for (i = 0; i < m; i++)
        for (j = n; j < ldc; j++)
            cr_assert_eq(C[i * ldc + j], sentinel, "padding C[%zu][%zu] overwritten", i, j);
    free(A);
    free(B);
    free(C);
    free(R);
}

static const size_t shapes[][3] = {
    {1, 1, 1},     {1, 1, 7},     {2, 3, 5},     {7, 13, 29},   {8, 24, 256},  {9, 25, 257},
    {97, 89, 101}, {1, 300, 5},   {300, 1, 7},   {5, 7, 1},     {31, 17, 600}, {64, 64, 64},
    {127, 129, 131}, {200, 3, 300}, {3, 250, 513}, {3, 4101, 9},
};

static void
check_all_shapes(jobq_pool *pool, jobq_matmul_dispatch how)
{
    unsigned kern;
    size_t s, pad;

    for (kern = JOBQ_MATMUL_KERNEL_AUTO; kern < JOBQ_MATMUL_KERNEL_COUNT; kern++) {
        if (!jobq_matmul_kernel_supported((jobq_matmul_kernel)kern))
            continue;
        for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
            for (pad = 0; pad <= 3; pad += 3)
                check_shape(pool, shapes[s][0], shapes[s][1], shapes[s][2], pad,
                            (jobq_matmul_kernel)kern, how);
    }
}

Test(matmul, shapes_single_thread_match_reference, .timeout = 120)
{
    check_all_shapes(NULL, JOBQ_MATMUL_PARALLEL_FOR);
}

Test(matmul, shapes_on_pool_match_reference, .timeout = 120)
{
    jobq_pool *pool = make_pool(3);

    check_all_shapes(pool, JOBQ_MATMUL_PARALLEL_FOR);
    check_all_shapes(pool, JOBQ_MATMUL_GROUP);
    jobq_pool_destroy(pool);
}

Test(matmul, reference_matches_textbook_loop)
{
    const size_t m = 13, n = 11, k = 300;
    jobq_matmul_check check;
    double *A, *B, *R, *T;
    size_t i, j, p;

    rng_state = 99;
    A = rand_matrix(m, k);
    B = rand_matrix(k, n);
    R = malloc(m * n * sizeof(double));
    T = malloc(m * n * sizeof(double));
    cr_assert(R != NULL && T != NULL);
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            double sum = 0.0;

            for (p = 0; p < k; p++)
                sum += A[i * k + p] * B[p * n + j];
            T[i * n + j] = sum;
        }
    cr_assert_eq(jobq_matmul_reference(NULL, m, n, k, A, k, B, n, R, n), 0);
    cr_assert_eq(jobq_matmul_verify(NULL, m, n, k, A, k, B, n, R, n, T, n, &check), 0);
    cr_assert_eq(check.failures, 0);
    free(A);
    free(B);
    free(R);
    free(T);
}

/* The same product must come out bit for bit equal whatever the threads and blocks. */
static void
check_bit_identical(size_t m, size_t n, size_t k)
{
    static const unsigned pools[] = {1, 2, 4};
    static const size_t blocks[] = {0, 1, 5, 8, 24, 64, 211};
    /* Under a sanitizer (the builds that look for races and memory errors, ~10x slower), every
     * other block size: all of them took 76 s of the 120 s timeout under TSan. */
    const size_t nblocks = sizeof(blocks) / sizeof(blocks[0]), bstep = JOBQ_TEST_SANITIZED ? 2 : 1;
    jobq_matmul_options o;
    double *A, *B, *C0, *C;
    unsigned kern;
    size_t pi, bi, d;

    rng_state = 7;
    A = rand_matrix(m, k);
    B = rand_matrix(k, n);
    C0 = malloc(m * n * sizeof(double));
    C = malloc(m * n * sizeof(double));
    cr_assert(C0 != NULL && C != NULL);
    for (kern = JOBQ_MATMUL_KERNEL_GENERIC; kern < JOBQ_MATMUL_KERNEL_COUNT; kern++) {
        if (!jobq_matmul_kernel_supported((jobq_matmul_kernel)kern))
            continue;
        jobq_matmul_options_init(&o);
        o.kernel = (jobq_matmul_kernel)kern;
        cr_assert_eq(jobq_matmul(NULL, m, n, k, A, k, B, n, C0, n, &o), 0);
        for (pi = 0; pi < sizeof(pools) / sizeof(pools[0]); pi++) {
            jobq_pool *pool = make_pool(pools[pi]);

            for (bi = 0; bi < nblocks; bi += bstep)
                for (d = 0; d < JOBQ_MATMUL_DISPATCH_COUNT; d++) {
                    memset(C, 0, m * n * sizeof(double));
                    o.block_rows = blocks[bi];
                    o.dispatch = (jobq_matmul_dispatch)d;
                    cr_assert_eq(jobq_matmul(pool, m, n, k, A, k, B, n, C, n, &o), 0);
                    cr_assert(memcmp(C, C0, m * n * sizeof(double)) == 0,
                              "kernel %s, %u threads, block %zu, dispatch %zu differs",
                              jobq_matmul_kernel_name(o.kernel), pools[pi], blocks[bi], d);
                }
            jobq_pool_destroy(pool);
        }
    }
    free(A);
    free(B);
    free(C0);
    free(C);
}

Test(matmul, bit_identical_across_threads_and_blocks, .timeout = 120)
{
    check_bit_identical(211, 173, 600); /* k crosses a k-block boundary (512): slice order */
    check_bit_identical(150, 60, 100);  /* small B: every thread packs its own copy */
}

/* A B whose copies fit MM_PRIVATE_B_MAX (2^20 doubles) for 2 or 3 slots but not 5: own copies
 * on 1 and 2 workers, shared packing on 4. */
Test(matmul, bit_identical_with_and_without_private_b, .timeout = 120)
{
    check_bit_identical(20, 720, 300);
}

/* C[i][j] computed with one product slightly wrong must fail the bound, alone. */
Test(matmul, verifier_catches_planted_wrong_product)
{
    const size_t m = 40, n = 30, k = 500, pi = 17, pj = 23, pp = 333;
    jobq_matmul_check check;
    double *A, *B, *C, *R;

    rng_state = 3;
    A = rand_matrix(m, k);
    B = rand_matrix(k, n);
    C = malloc(m * n * sizeof(double));
    R = malloc(m * n * sizeof(double));
    cr_assert(C != NULL && R != NULL);
    cr_assert_eq(jobq_matmul(NULL, m, n, k, A, k, B, n, C, n, NULL), 0);
    cr_assert_eq(jobq_matmul_reference(NULL, m, n, k, A, k, B, n, R, n), 0);
    cr_assert_eq(jobq_matmul_verify(NULL, m, n, k, A, k, B, n, C, n, R, n, &check), 0);
    cr_assert_eq(check.failures, 0);
    cr_assert_lt(check.max_ratio, 1.0);

    /* One term a*b replaced by a*b*(1 + 1e-9): a relative error far above k*u per product. */
    C[pi * n + pj] += A[pi * k + pp] * B[pp * n + pj] * 1e-9;
    cr_assert_eq(jobq_matmul_verify(NULL, m, n, k, A, k, B, n, C, n, R, n, &check), 0);
    cr_assert_eq(check.failures, 1);
    cr_assert_eq(check.first_row, pi);
    cr_assert_eq(check.first_col, pj);
    cr_assert_gt(check.max_ratio, 1.0);

    /* A NaN on one side only is a failure too. */
    C[pi * n + pj] = NAN;
    cr_assert_eq(jobq_matmul_verify(NULL, m, n, k, A, k, B, n, C, n, R, n, &check), 0);
    cr_assert_eq(check.failures, 1);
    free(A);
    free(B);
    free(C);
    free(R);
}

/* One 1 x 1 x 1 check of C against R with A = a, B = 1. */
static jobq_matmul_check
verify_one(double a, double c, double r)
{
    const double b = 1.0;
    jobq_matmul_check check;

    cr_assert_eq(jobq_matmul_verify(NULL, 1, 1, 1, &a, 1, &b, 1, &c, 1, &r, 1, &check), 0);
    return check;
}

/* An infinite bound (an Inf in A) must not pass everything: diff <= +Inf held for any C. */
Test(matmul, verifier_fails_non_finite_mismatches)
{
    jobq_matmul_check ch;

    ch = verify_one(INFINITY, -INFINITY, INFINITY);
    cr_assert_eq(ch.failures, 1, "-Inf vs +Inf passed");
    cr_assert_eq(ch.first_c, -INFINITY);
    cr_assert(isinf(ch.max_ratio) && ch.max_ratio > 0, "max_ratio %g", ch.max_ratio);
    ch = verify_one(INFINITY, 1.0, INFINITY);
    cr_assert_eq(ch.failures, 1, "1 vs +Inf passed");
    cr_assert(isinf(ch.max_ratio), "max_ratio %g", ch.max_ratio);
    ch = verify_one(1.0, INFINITY, 1.0);
    cr_assert_eq(ch.failures, 1, "+Inf vs 1 passed");
    /* Finite C and R that differ, with an Inf in A: no bound can be computed, so a failure. */
    ch = verify_one(INFINITY, 1.0, 2.0);
    cr_assert_eq(ch.failures, 1);
    cr_assert(isinf(ch.max_ratio), "max_ratio %g", ch.max_ratio);
    /* NaN in C where R is finite, and the other way round: failures with ratio INFINITY. */
    ch = verify_one(2.0, NAN, 2.0);
    cr_assert_eq(ch.failures, 1);
    cr_assert(isinf(ch.max_ratio), "max_ratio %g", ch.max_ratio);
    ch = verify_one(2.0, 2.0, NAN);
    cr_assert_eq(ch.failures, 1);
    /* A difference that overflows, between finite values, fails. */
    ch = verify_one(DBL_MAX, DBL_MAX, -DBL_MAX);
    cr_assert_eq(ch.failures, 1);
    cr_assert(isinf(ch.max_ratio), "max_ratio %g", ch.max_ratio);
    /* Equal values pass: the same infinity, and NaN against NaN (the documented choice). */
    ch = verify_one(INFINITY, INFINITY, INFINITY);
    cr_assert_eq(ch.failures, 0);
    cr_assert_eq(ch.max_ratio, 0.0);
    ch = verify_one(NAN, NAN, NAN);
    cr_assert_eq(ch.failures, 0);
}

/* |A| |B| overflows for finite terms that cancel: the bound is recomputed with scaling, so a
 * small error still passes and a large one still fails (an infinite bound passed both). */
Test(matmul, verifier_checks_elements_whose_bound_overflows)
{
    const double A[2] = {1e308, 1e308}, B[2] = {1.0, -1.0};
    /* bound = 2 k u (|A| |B|) = 4 * 2^-53 * 2e308, about 8.9e292 (2e308 itself overflows). */
    const double bound = 8.0 * 0x1p-53 * 1e308;
    double C = 0.0, R;
    jobq_matmul_check ch;

    R = 0.5 * bound;
    cr_assert_eq(jobq_matmul_verify(NULL, 1, 1, 2, A, 2, B, 1, &C, 1, &R, 1, &ch), 0);
    cr_assert_eq(ch.failures, 0);
    cr_assert(ch.max_ratio > 0.45 && ch.max_ratio < 0.55, "max_ratio %g", ch.max_ratio);
    R = 2.0 * bound;
    cr_assert_eq(jobq_matmul_verify(NULL, 1, 1, 2, A, 2, B, 1, &C, 1, &R, 1, &ch), 0);
    cr_assert_eq(ch.failures, 1);
    cr_assert(ch.max_ratio > 1.9 && ch.max_ratio < 2.1, "max_ratio %g", ch.max_ratio);
}

/*
 * A real disagreement that only Inf exposes: a_0 = a_512 = DBL_MAX, a_513 = -DBL_MAX, B all
 * ones. The naive reference overflows at p = 512 and stays +Inf; jobq_matmul sums k in blocks
 * of 512 and gets DBL_MAX (the exact answer). The verifier must report it, not pass it under an
 * infinite bound.
 */
Test(matmul, verifier_reports_overflow_only_in_the_reference)
{
    const size_t k = 514;
    double *A = calloc(k, sizeof(double)), *B = malloc(k * sizeof(double)), C, R;
    jobq_matmul_check ch;
    size_t p;

    cr_assert(A != NULL && B != NULL);
    for (p = 0; p < k; p++)
        B[p] = 1.0;
    A[0] = DBL_MAX;
    A[512] = DBL_MAX;
    A[513] = -DBL_MAX;
    cr_assert_eq(jobq_matmul(NULL, 1, 1, k, A, k, B, 1, &C, 1, NULL), 0);
    cr_assert_eq(jobq_matmul_reference(NULL, 1, 1, k, A, k, B, 1, &R, 1), 0);
    cr_assert_eq(R, INFINITY);
    cr_assert(isfinite(C), "C = %g", C);
    cr_assert_eq(jobq_matmul_verify(NULL, 1, 1, k, A, k, B, 1, &C, 1, &R, 1, &ch), 0);
    cr_assert_eq(ch.failures, 1);
    cr_assert(isinf(ch.max_ratio), "max_ratio %g", ch.max_ratio);
    free(A);
    free(B);
}

Test(matmul, bad_arguments_are_refused)
{
    double a[16] = {0}, b[16] = {0}, c[16] = {0};
    jobq_matmul_options o;
    jobq_matmul_check check;
    jobq_matmul_kernel kern;

    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, NULL, 2, b, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, NULL, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, b, 2, NULL, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 0, 2, 2, a, 2, b, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 2, 0, 2, a, 2, b, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 0, a, 2, b, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 3, a, 2, b, 2, c, 2, NULL), JOBQ_EINVAL); /* lda < k */
    cr_assert_eq(jobq_matmul(NULL, 2, 3, 2, a, 3, b, 2, c, 3, NULL), JOBQ_EINVAL); /* ldb < n */
    cr_assert_eq(jobq_matmul(NULL, 2, 3, 2, a, 2, b, 3, c, 2, NULL), JOBQ_EINVAL); /* ldc < n */
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, b, 2, a + 2, 2, NULL), JOBQ_EINVAL); /* C on A */
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, b, 2, b, 2, NULL), JOBQ_EINVAL);     /* C = B */
    /* Extents that do not fit in size_t (nothing is read: the check comes first). */
    cr_assert_eq(jobq_matmul(NULL, SIZE_MAX / 2, 2, 2, a, 4, b, 2, c, 2, NULL), JOBQ_EOVERFLOW);
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, SIZE_MAX / 4, b, 2, c, 2, NULL), JOBQ_EOVERFLOW);
    cr_assert_eq(jobq_matmul(NULL, 2, SIZE_MAX / 8, 2, a, 2, b, SIZE_MAX / 8, c, SIZE_MAX / 8,
                             NULL),
                 JOBQ_EOVERFLOW);

    jobq_matmul_options_init(&o);
    o.kernel = JOBQ_MATMUL_KERNEL_COUNT;
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, b, 2, c, 2, &o), JOBQ_EINVAL);
    jobq_matmul_options_init(&o);
    o.dispatch = JOBQ_MATMUL_DISPATCH_COUNT;
    cr_assert_eq(jobq_matmul(NULL, 2, 2, 2, a, 2, b, 2, c, 2, &o), JOBQ_EINVAL);

    cr_assert_eq(jobq_matmul_verify(NULL, 2, 2, 2, a, 2, b, 2, c, 2, c, 2, NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul_verify(NULL, 2, 2, 2, a, 2, b, 2, c, 2, c, 1, &check), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul_reference(NULL, 2, 2, 2, a, 1, b, 2, c, 2), JOBQ_EINVAL);

    cr_assert_eq(jobq_matmul_kernel_parse("avx9", &kern), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul_kernel_parse(NULL, &kern), JOBQ_EINVAL);
    cr_assert_str_eq(jobq_matmul_kernel_name(JOBQ_MATMUL_KERNEL_COUNT), "unknown");
}

Test(matmul, kernel_names_round_trip)
{
    jobq_matmul_kernel kern;
    unsigned i;

    for (i = 0; i < JOBQ_MATMUL_KERNEL_COUNT; i++) {
        cr_assert_eq(jobq_matmul_kernel_parse(jobq_matmul_kernel_name((jobq_matmul_kernel)i),
                                              &kern),
                     0);
        cr_assert_eq((unsigned)kern, i);
    }
    cr_assert(jobq_matmul_kernel_supported(JOBQ_MATMUL_KERNEL_GENERIC));
    cr_assert_neq(jobq_matmul_kernel_best(), JOBQ_MATMUL_KERNEL_AUTO);
    cr_assert(jobq_matmul_kernel_supported(jobq_matmul_kernel_best()));
}

/* From inside a worker: parallel_for dispatch works (nested), group dispatch is refused. */
struct nested {
    jobq_pool *pool;
    int pfor_err, group_err, ok;
};

static int
nested_job(void *arg)
{
    struct nested *ns = arg;
    const size_t n = 50;
    double *A, *B, *C, *R;
    jobq_matmul_options o;
    jobq_matmul_check check;

    A = malloc(n * n * sizeof(double));
    B = malloc(n * n * sizeof(double));
    C = malloc(n * n * sizeof(double));
    R = malloc(n * n * sizeof(double));
    if (A == NULL || B == NULL || C == NULL || R == NULL)
        return JOBQ_ENOMEM;
    for (size_t i = 0; i < n * n; i++) {
        A[i] = (double)(i % 7) - 3.0;
        B[i] = (double)(i % 5) * 0.5;
    }
    jobq_matmul_options_init(&o);
    o.block_rows = 8;
    ns->pfor_err = jobq_matmul(ns->pool, n, n, n, A, n, B, n, C, n, &o);
    o.dispatch = JOBQ_MATMUL_GROUP;
    ns->group_err = jobq_matmul(ns->pool, n, n, n, A, n, B, n, R, n, &o);
    ns->ok = jobq_matmul_reference(NULL, n, n, n, A, n, B, n, R, n) == 0 &&
             jobq_matmul_verify(NULL, n, n, n, A, n, B, n, C, n, R, n, &check) == 0 &&
             check.failures == 0;
    free(A);
    free(B);
    free(C);
    free(R);
    return 0;
}

Test(matmul, call_from_a_worker, .timeout = 60)
{
    struct nested ns = {0};
    jobq_job job = {0};

    ns.pool = make_pool(2);
    job.run = nested_job;
    job.arg = &ns;
    cr_assert_eq(jobq_pool_submit(ns.pool, &job), 0);
    cr_assert_eq(jobq_pool_wait(ns.pool), 0);
    cr_assert_eq(ns.pfor_err, 0);
    cr_assert_eq(ns.group_err, JOBQ_EDEADLK);
    cr_assert(ns.ok);
    jobq_pool_destroy(ns.pool);
}

/* B with more than 2^21 elements takes the wide-slice blocking (MC = 96): still exact and still
 * independent of the thread count and block size. */
Test(matmul, large_b_blocking_is_correct_and_bit_identical, .timeout = 120)
{
    const size_t m = 45, n = 2100, k = 1030;
    static const size_t blocks[] = {0, 8, 13, 45};
    jobq_matmul_options o;
    jobq_matmul_check check;
    jobq_pool *pool;
    double *A, *B, *C0, *C, *R;
    size_t bi;

    rng_state = 11;
    A = rand_matrix(m, k);
    B = rand_matrix(k, n);
    C0 = malloc(m * n * sizeof(double));
    C = malloc(m * n * sizeof(double));
    R = malloc(m * n * sizeof(double));
    cr_assert(C0 != NULL && C != NULL && R != NULL);
    jobq_matmul_options_init(&o);
    cr_assert_eq(jobq_matmul(NULL, m, n, k, A, k, B, n, C0, n, &o), 0);
    cr_assert_eq(jobq_matmul_reference(NULL, m, n, k, A, k, B, n, R, n), 0);
    cr_assert_eq(jobq_matmul_verify(NULL, m, n, k, A, k, B, n, C0, n, R, n, &check), 0);
    cr_assert_eq(check.failures, 0, "%zu failures", check.failures);
    pool = make_pool(3);
    for (bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++) {
        o.block_rows = blocks[bi];
        cr_assert_eq(jobq_matmul(pool, m, n, k, A, k, B, n, C, n, &o), 0);
        cr_assert(memcmp(C, C0, m * n * sizeof(double)) == 0, "block %zu differs", blocks[bi]);
    }
    jobq_pool_destroy(pool);
    free(A);
    free(B);
    free(C0);
    free(C);
    free(R);
}

/* A workspace reused across calls of growing and shrinking shapes gives the same bits as fresh
 * buffers, on a pool and without one. */
Test(matmul, workspace_reuse_matches_fresh_buffers, .timeout = 120)
{
    static const size_t sh[][3] = {{7, 13, 29}, {300, 301, 302}, {1, 1, 1}, {64, 700, 33},
                                   {129, 5, 600}, {2, 2, 2}};
    jobq_matmul_workspace *ws = NULL;
    jobq_matmul_options o, plain;
    jobq_pool *pool;
    double *A, *B, *C0, *C;
    size_t s, m, n, k;
    int p;

    cr_assert_eq(jobq_matmul_workspace_create(NULL), JOBQ_EINVAL);
    cr_assert_eq(jobq_matmul_workspace_create(&ws), 0);
    jobq_matmul_workspace_destroy(NULL);
    pool = make_pool(2);
    jobq_matmul_options_init(&plain);
    o = plain;
    o.workspace = ws;
    for (p = 0; p < 2; p++) {
        for (s = 0; s < sizeof(sh) / sizeof(sh[0]); s++) {
            m = sh[s][0];
            n = sh[s][1];
            k = sh[s][2];
            rng_state = s + 100;
            A = rand_matrix(m, k);
            B = rand_matrix(k, n);
            C0 = malloc(m * n * sizeof(double));
            C = malloc(m * n * sizeof(double));
            cr_assert(C0 != NULL && C != NULL);
            cr_assert_eq(jobq_matmul(p ? pool : NULL, m, n, k, A, k, B, n, C0, n, &plain), 0);
            cr_assert_eq(jobq_matmul(p ? pool : NULL, m, n, k, A, k, B, n, C, n, &o), 0);
            cr_assert(memcmp(C, C0, m * n * sizeof(double)) == 0, "%zux%zux%zu, pool %d", m, k,
                      n, p);
            free(A);
            free(B);
            free(C0);
            free(C);
        }
    }
    jobq_pool_destroy(pool);
    jobq_matmul_workspace_destroy(ws);
}

struct ws_race {
    jobq_matmul_workspace *ws;
    const double *A, *B, *C0;
    size_t n;
    int ok, busy, other;
};

static void *
ws_race_thread(void *arg)
{
    struct ws_race *r = arg;
    jobq_matmul_options o;
    double *C = malloc(r->n * r->n * sizeof(double));
    int i, err;

    jobq_matmul_options_init(&o);
    o.workspace = r->ws;
    for (i = 0; i < 40 && C != NULL; i++) {
        err = jobq_matmul(NULL, r->n, r->n, r->n, r->A, r->n, r->B, r->n, C, r->n, &o);
        if (err == JOBQ_EAGAIN)
            r->busy++;
        else if (err == 0 && memcmp(C, r->C0, r->n * r->n * sizeof(double)) == 0)
            r->ok++;
        else
            r->other++;
    }
    free(C);
    return NULL;
}

/* Two threads sharing one workspace: each call either runs with it alone (exact result) or is
 * refused with JOBQ_EAGAIN; never a wrong result or another error. */
Test(matmul, shared_workspace_is_refused_not_corrupted, .timeout = 120)
{
    const size_t n = 150;
    struct ws_race r[2];
    pthread_t t[2];
    jobq_matmul_workspace *ws;
    double *A, *B, *C0;
    int i;

    rng_state = 5;
    A = rand_matrix(n, n);
    B = rand_matrix(n, n);
    C0 = malloc(n * n * sizeof(double));
    cr_assert(C0 != NULL);
    cr_assert_eq(jobq_matmul(NULL, n, n, n, A, n, B, n, C0, n, NULL), 0);
    cr_assert_eq(jobq_matmul_workspace_create(&ws), 0);
    for (i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].ws = ws;
        r[i].A = A;
        r[i].B = B;
        r[i].C0 = C0;
        r[i].n = n;
        cr_assert_eq(pthread_create(&t[i], NULL, ws_race_thread, &r[i]), 0);
    }
    for (i = 0; i < 2; i++)
        cr_assert_eq(pthread_join(t[i], NULL), 0);
    for (i = 0; i < 2; i++) {
        cr_assert_eq(r[i].other, 0, "thread %d: %d wrong results or other errors", i,
                     r[i].other);
        cr_assert_eq(r[i].ok + r[i].busy, 40);
    }
    cr_assert_gt(r[0].ok + r[1].ok, 0);
    jobq_matmul_workspace_destroy(ws);
    free(A);
    free(B);
    free(C0);
}
