/*
 * verify.c - the naive reference product and the element-wise error-bound check.
 *
 * Design: both are deliberately independent of the packed kernels in matmul.c: the plain
 * i-p-j triple loop (each element summed in increasing k order with separate multiply and add),
 * rows spread over the pool with jobq_pool_parallel_for. jobq_matmul_verify computes |A| |B| the
 * same way, one row at a time, and compares row i of C and R against 2 k u (|A| |B|)_i. Each
 * row's outcome goes to its own slot; the slots are reduced in row order afterwards, so the
 * report (first failure, counts) does not depend on scheduling.
 *
 * Why the bound holds: any summation order of a k-term dot product has |error| <= gamma_k
 * (|a| . |b|) with gamma_k = k u / (1 - k u) ~ k u; C and R each carry such an error, so a
 * correct C is within about 2 k u (|A| |B|) of a correct R. (Subnormal underflow is outside
 * this model.)
 *
 * Non-finite values: the bound says nothing about them (an Inf in the inputs makes it +Inf or
 * NaN, and "diff <= +Inf" would pass anything), so they are decided before it. Equal values pass
 * (the same infinity, or both NaN: NaN is what IEEE arithmetic gives for Inf x 0 or Inf - Inf in
 * the inputs, so a NaN in R is matched by a NaN in C, not a wrong answer). Any other pair with a
 * non-finite side fails, and so does a finite pair whose difference overflows. When |A| |B|
 * overflows for finite C and R (terms of huge magnitude that cancel), that element's bound is
 * recomputed with A scaled by 2^-64, so it is still checked rather than passed by +Inf.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jobq/matmul.h>

#include "matmul-internal.h"

#define UNIT_ROUNDOFF 0x1p-53

/* The scaling of scaled_abs_dot: 2^-64 takes any |a| |b| below 2^1088 (every finite product a
 * b, and then some) under the overflow threshold, while the terms it flushes to zero (|a| under
 * 2^-958) are far too small to matter beside a sum that overflowed. */
#define BOUND_SHIFT 64

struct ref_ctx {
    size_t n, k, lda, ldb, ldc;
    const double *A, *B;
    double *C;
};

static int
ref_rows(void *ctx, size_t r0, size_t r1)
{
    const struct ref_ctx *rc = ctx;
    size_t i, p, j;

    for (i = r0; i < r1; i++) {
        double *c = rc->C + i * rc->ldc;

        for (j = 0; j < rc->n; j++)
            c[j] = 0.0;
        for (p = 0; p < rc->k; p++) {
            const double a = rc->A[i * rc->lda + p];
            const double *b = rc->B + p * rc->ldb;

            for (j = 0; j < rc->n; j++)
                c[j] += a * b[j];
        }
    }
    return 0;
}

static int
over_rows(jobq_pool *pool, size_t m, size_t cost_per_row, jobq_range_fn fn, void *ctx)
{
    size_t grain;

    if (pool == NULL)
        return fn(ctx, 0, m);
    /* Chunks of at least ~1 MFLOP so that tiny products are not dominated by dispatch. */
    grain = (1u << 20) / (cost_per_row + 1) + 1;
    return jobq_pool_parallel_for(pool, 0, m, grain, fn, ctx);
}

int
jobq_matmul_reference(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A,
                      size_t lda, const double *B, size_t ldb, double *C, size_t ldc)
{
    struct ref_ctx rc;
    int err;

    err = jobq__mm_check_args(m, n, k, A, lda, B, ldb, C, ldc, 1);
    if (err != 0)
        return err;
    rc.n = n;
    rc.k = k;
    rc.lda = lda;
    rc.ldb = ldb;
    rc.ldc = ldc;
    rc.A = A;
    rc.B = B;
    rc.C = C;
    return over_rows(pool, m, n * k, ref_rows, &rc);
}

/* Per-row outcome. */
struct row_check {
    size_t failures;
    size_t first_col;
    double first_c, first_r;
    double max_ratio;
};

struct verify_ctx {
    size_t n, k, lda, ldb, ldc, ldr;
    const double *A, *B, *C, *R;
    struct row_check *rows;
};

/* (|A| |B|)_ij * 2^-BOUND_SHIFT, for an element where the plain sum overflowed. */
static double
scaled_abs_dot(const struct verify_ctx *vc, size_t i, size_t j)
{
    double sum = 0.0;
    size_t p;

    for (p = 0; p < vc->k; p++)
        sum += ldexp(fabs(vc->A[i * vc->lda + p]), -BOUND_SHIFT) * fabs(vc->B[p * vc->ldb + j]);
    return sum;
}

/*
 * Whether element (i, j) passes, where c != r and they are not both NaN; *ret_ratio gets
 * |C - R| / bound, or INFINITY where that is undefined - a non-finite c or r, a difference that
 * overflows, a zero bound, a bound that is not finite even when scaled (an Inf or NaN input) -
 * and every such element fails. The decision compares diff with bound, not the rounded ratio
 * with 1, so it is exactly the documented inequality.
 */
static int
element_ok(const struct verify_ctx *vc, size_t i, size_t j, double c, double r, double bound,
           double scale, double *ret_ratio)
{
    double diff;

    *ret_ratio = INFINITY;
    if (!isfinite(c) || !isfinite(r))
        return 0;
    diff = fabs(c - r);
    if (isinf(diff))
        return 0;
    if (!isfinite(bound)) {
        bound = scale * scaled_abs_dot(vc, i, j);
        if (!isfinite(bound))
            return 0;
        diff = ldexp(diff, -BOUND_SHIFT);
    }
    if (bound > 0.0)
        *ret_ratio = diff / bound;
    return diff <= bound;
}

static int
verify_rows(void *ctx, size_t r0, size_t r1)
{
    const struct verify_ctx *vc = ctx;
    const double scale = 2.0 * (double)vc->k * UNIT_ROUNDOFF;
    double *absrow;
    size_t i, p, j;

    absrow = malloc(vc->n * sizeof(double));
    if (absrow == NULL)
        return JOBQ_ENOMEM;
    for (i = r0; i < r1; i++) {
        const double *c = vc->C + i * vc->ldc;
        const double *r = vc->R + i * vc->ldr;
        struct row_check *rc = &vc->rows[i];

        for (j = 0; j < vc->n; j++)
            absrow[j] = 0.0;
        for (p = 0; p < vc->k; p++) {
            const double a = fabs(vc->A[i * vc->lda + p]);
            const double *b = vc->B + p * vc->ldb;

            for (j = 0; j < vc->n; j++)
                absrow[j] += a * fabs(b[j]);
        }
        memset(rc, 0, sizeof(*rc));
        for (j = 0; j < vc->n; j++) {
            double ratio;
            int ok;

            if (c[j] == r[j] || (isnan(c[j]) && isnan(r[j])))
                continue;
            ok = element_ok(vc, i, j, c[j], r[j], scale * absrow[j], scale, &ratio);
            /* ratio is never NaN, so no element is lost from the maximum. */
            if (ratio > rc->max_ratio)
                rc->max_ratio = ratio;
            if (!ok) {
                if (rc->failures == 0) {
                    rc->first_col = j;
                    rc->first_c = c[j];
                    rc->first_r = r[j];
                }
                rc->failures++;
            }
        }
    }
    free(absrow);
    return 0;
}

int
jobq_matmul_verify(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A, size_t lda,
                   const double *B, size_t ldb, const double *C, size_t ldc, const double *R,
                   size_t ldr, jobq_matmul_check *ret_check)
{
    struct verify_ctx vc;
    jobq_matmul_check check;
    size_t i;
    int err;

    if (ret_check == NULL)
        return JOBQ_EINVAL;
    err = jobq__mm_check_args(m, n, k, A, lda, B, ldb, C, ldc, 0);
    if (err == 0)
        err = jobq__mm_check_args(m, n, k, A, lda, B, ldb, R, ldr, 0);
    if (err != 0)
        return err;
    if (m > SIZE_MAX / sizeof(struct row_check))
        return JOBQ_EOVERFLOW;
    vc.rows = malloc(m * sizeof(struct row_check));
    if (vc.rows == NULL)
        return JOBQ_ENOMEM;
    vc.n = n;
    vc.k = k;
    vc.lda = lda;
    vc.ldb = ldb;
    vc.ldc = ldc;
    vc.ldr = ldr;
    vc.A = A;
    vc.B = B;
    vc.C = C;
    vc.R = R;
    err = over_rows(pool, m, n * k, verify_rows, &vc);
    if (err != 0) {
        free(vc.rows);
        return err;
    }
    memset(&check, 0, sizeof(check));
    check.checked = m * n;
    for (i = 0; i < m; i++) {
        const struct row_check *rc = &vc.rows[i];

        if (rc->failures > 0 && check.failures == 0) {
            check.first_row = i;
            check.first_col = rc->first_col;
            check.first_c = rc->first_c;
            check.first_r = rc->first_r;
        }
        check.failures += rc->failures;
        if (rc->max_ratio > check.max_ratio)
            check.max_ratio = rc->max_ratio;
    }
    free(vc.rows);
    *ret_check = check;
    return 0;
}
