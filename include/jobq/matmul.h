/*
 * jobq/matmul.h - the matrix-multiply job: C = A x B for dense row-major doubles on a jobq pool.
 *
 * A client of the public jobq API only (it is not part of libjobq's core). One call:
 *   1. packs B once into zero-padded column panels (the packing itself spread over the pool;
 *      a small B - one k block, all copies within 8 MiB - is packed by every computing thread
 *      into its own copy instead, which costs less than reading the other cores' halves);
 *   2. splits the rows of C into blocks, one pool task per block (when B has several slices -
 *      k over 512 or n over 1024 - one task per block and slice, handed out slice by slice);
 *      each task packs its own rows of A and runs a register-tiled micro-kernel (AVX-512,
 *      AVX2+FMA or portable vector code, picked at run time) over them;
 *   3. returns when every block is done.
 *
 * Determinism: every element of C is computed in a fixed order: k is cut into blocks of a
 * constant size, each block summed (by one task) as one chain of multiply-adds in increasing k
 * order and added to C in block order. The result is therefore bit-identical for any pool size
 * and any block size (for a given kernel); different kernels may differ in the last bits (fused
 * or not, and their k blocks).
 *
 * Verification: jobq_matmul_verify() checks C against a reference R element-wise with the
 * standard a-priori bound |C - R| <= 2 k u (|A| |B|), u = 2^-53, which covers the rounding of
 * any summation order in both C and R.
 */
#ifndef JOBQ_MATMUL_H
#define JOBQ_MATMUL_H

#include <stddef.h>

#include <jobq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Micro-kernels. AUTO picks the best one the CPU supports. */
typedef enum jobq_matmul_kernel {
    JOBQ_MATMUL_KERNEL_AUTO = 0,
    JOBQ_MATMUL_KERNEL_GENERIC, /* portable GCC vector extensions, 2 doubles wide (fused
                                   multiply-adds only where the compiler targets FMA) */
    JOBQ_MATMUL_KERNEL_AVX2,    /* x86-64 AVX2 + FMA, 6x8 register tile */
    JOBQ_MATMUL_KERNEL_AVX512,  /* x86-64 AVX-512F, 8x24 register tile */
    JOBQ_MATMUL_KERNEL_COUNT
} jobq_matmul_kernel;

/* How the row blocks reach the pool. */
typedef enum jobq_matmul_dispatch {
    /* jobq_pool_parallel_for: the pool's workers AND the calling thread take blocks, so a pool
     * of T-1 workers computes on T threads. The default. */
    JOBQ_MATMUL_PARALLEL_FOR = 0,
    /* One job per block through a jobq_group; the calling thread only waits, so a pool of T
     * workers computes on T threads. Must not be used from a worker of the same pool. */
    JOBQ_MATMUL_GROUP,
    JOBQ_MATMUL_DISPATCH_COUNT
} jobq_matmul_dispatch;

/*
 * Scratch memory (packed B, the per-thread slices of A) kept from one jobq_matmul call to the
 * next. Without one, every call allocates and frees its buffers, and a fresh buffer is faulted in
 * page by page: at N = 2048 that is 32 MiB, several milliseconds under a hypervisor, more when no
 * huge page is free. Give a workspace to calls that repeat (as OpenBLAS keeps its own buffer).
 * It grows to the largest call seen and is freed by _destroy.
 * One call at a time per workspace: a call that finds it in use fails with JOBQ_EAGAIN.
 */
typedef struct jobq_matmul_workspace jobq_matmul_workspace;

/* Create an empty workspace. Errors: JOBQ_EINVAL (ret_ws NULL), JOBQ_ENOMEM. */
int jobq_matmul_workspace_create(jobq_matmul_workspace **ret_ws);
/* Free ws and its buffers; NULL is a no-op. Not while a call is using it. */
void jobq_matmul_workspace_destroy(jobq_matmul_workspace *ws);

typedef struct jobq_matmul_options {
    size_t block_rows;           /* rows of C per task; 0 = automatic (several per thread) */
    jobq_matmul_kernel kernel;   /* default JOBQ_MATMUL_KERNEL_AUTO */
    jobq_matmul_dispatch dispatch; /* default JOBQ_MATMUL_PARALLEL_FOR */
    jobq_matmul_workspace *workspace; /* default NULL: buffers allocated per call */
} jobq_matmul_options;

/* Fill *opts with the defaults (automatic block size and kernel, parallel_for, no workspace). */
void jobq_matmul_options_init(jobq_matmul_options *opts);

/* 1 when this CPU (and this build) can run `kernel`, else 0. AUTO and GENERIC are always 1. */
int jobq_matmul_kernel_supported(jobq_matmul_kernel kernel);
/* The kernel AUTO resolves to on this CPU (never AUTO). */
jobq_matmul_kernel jobq_matmul_kernel_best(void);
/* "auto", "generic", "avx2", "avx512"; "unknown" otherwise. Never NULL. */
const char *jobq_matmul_kernel_name(jobq_matmul_kernel kernel);
/* Parse a name as printed by jobq_matmul_kernel_name. Errors: JOBQ_EINVAL. */
int jobq_matmul_kernel_parse(const char *name, jobq_matmul_kernel *ret_kernel);

/*
 * C = A x B, where A is m x k with row stride lda, B is k x n with row stride ldb and C is m x n
 * with row stride ldc (all in elements, row-major). C is overwritten. C's address range - from
 * C to the end of its last row, [C, C + (m - 1) ldc + n) - must not intersect A's
 * ([A, A + (m - 1) lda + k)) or B's ([B, B + (k - 1) ldb + n)): the check is on whole ranges, so
 * a C placed in the gaps between A's or B's rows (stride > width) is refused too, although it
 * would not overlap any element. A and B may overlap each other (A == B is fine).
 * `pool` may be NULL: then everything runs on the calling thread. opts NULL means defaults.
 *
 * Errors: JOBQ_EINVAL (NULL matrix, m, n or k zero, lda < k, ldb < n, ldc < n, C's range
 * intersecting A's or B's as above, an unknown or unsupported kernel or dispatch),
 * JOBQ_EOVERFLOW (a matrix extent or a buffer size does not fit in size_t), JOBQ_ENOMEM,
 * JOBQ_EDEADLK (GROUP dispatch from a worker of `pool`), JOBQ_EAGAIN (opts->workspace in use
 * by another call), or an error of the pool (JOBQ_ECLOSED). On error C may be partly written.
 * Thread-safe: any number of calls may run at once, on the same pool or not (each with its own
 * workspace, or none).
 */
int jobq_matmul(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A, size_t lda,
                const double *B, size_t ldb, double *C, size_t ldc,
                const jobq_matmul_options *opts);

/*
 * Naive reference: C = A x B by the textbook triple loop (each element summed in increasing k
 * order, separate multiply and add), independent of the packed kernels. Rows are spread over
 * `pool` (may be NULL). Same arguments and errors as jobq_matmul.
 */
int jobq_matmul_reference(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A,
                          size_t lda, const double *B, size_t ldb, double *C, size_t ldc);

/* Outcome of jobq_matmul_verify. */
typedef struct jobq_matmul_check {
    size_t checked;    /* elements compared: m * n */
    size_t failures;   /* elements outside the bound */
    size_t first_row;  /* first failing element in row-major order (valid when failures > 0) */
    size_t first_col;
    double first_c;    /* C and R at the first failure */
    double first_r;
    double max_ratio;  /* largest |C - R| / bound over the elements that differ (0 when none
                        * does); INFINITY where some element's ratio is undefined (see
                        * jobq_matmul_verify), which is then also a failure. Never NaN. */
} jobq_matmul_check;

/*
 * Compare C (m x n, stride ldc) with a reference R (stride ldr) of the product of A and B:
 * element (i, j) passes when C == R (the same infinity included), when both are NaN (what the
 * arithmetic gives for Inf x 0 or Inf - Inf in the inputs), or when both are finite and
 * |C - R| <= 2 k u (|A| |B|)_ij with u = 2^-53. It fails, with ratio INFINITY, when only one
 * side is NaN, when either side is infinite and they differ (-Inf vs +Inf, a finite value vs
 * Inf), when |C - R| overflows, when the bound is 0 and they differ, or when the bound is not
 * finite because of an Inf or NaN in row i of A or column j of B: an infinite bound never
 * passes an element. Where |A| |B| overflows for finite inputs, the bound is recomputed with
 * scaling, so the element is still checked. |A| |B| is computed here by the plain triple loop
 * (not by the packed kernels), its rows spread over `pool` (may be NULL). Returns 0 with
 * *ret_check filled whether or not the check passed (look at ret_check->failures); errors as
 * jobq_matmul (ldr < n is JOBQ_EINVAL).
 */
int jobq_matmul_verify(jobq_pool *pool, size_t m, size_t n, size_t k, const double *A, size_t lda,
                       const double *B, size_t ldb, const double *C, size_t ldc, const double *R,
                       size_t ldr, jobq_matmul_check *ret_check);

#ifdef __cplusplus
}
#endif

#endif /* JOBQ_MATMUL_H */
