/*
 * kernels.h - the register-tiled micro-kernels of the matmul job (private to src/jobs/matmul).
 */
#ifndef JOBQ_MATMUL_KERNELS_H
#define JOBQ_MATMUL_KERNELS_H

#include <stddef.h>

#include <jobq/matmul.h>

/*
 * c[0..mr) x [0..nr) (row stride ldc) = (load_c ? c : 0) + a x b over kc steps, where `a` is a
 * packed micro-panel of A (kc groups of mr doubles, one column of the tile's rows each) and `b`
 * a packed micro-panel of B (kc groups of nr doubles, one row each). Both are 64-byte aligned.
 * Each element of a x b is one chain of multiply-adds in increasing k order, started from zero
 * and then added to c.
 */
typedef void (*jobq__mm_kernel_fn)(size_t kc, const double *a, const double *b, double *c,
                                   size_t ldc, int load_c);

struct jobq__mm_kernel {
    jobq_matmul_kernel id;
    unsigned mr, nr;
    jobq__mm_kernel_fn fn;
};

/* The kernel for `id` (AUTO = best supported), or NULL when this CPU cannot run it. */
const struct jobq__mm_kernel *jobq__mm_kernel_get(jobq_matmul_kernel id);

#endif /* JOBQ_MATMUL_KERNELS_H */
