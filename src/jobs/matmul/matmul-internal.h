/*
 * matmul-internal.h - helpers shared by the files of src/jobs/matmul (not installed).
 */
#ifndef JOBQ_MATMUL_INTERNAL_H
#define JOBQ_MATMUL_INTERNAL_H

#include <stddef.h>

/* The argument checks of jobq_matmul (JOBQ_EINVAL / JOBQ_EOVERFLOW), C's overlap optional. */
int jobq__mm_check_args(size_t m, size_t n, size_t k, const double *A, size_t lda,
                        const double *B, size_t ldb, const double *C, size_t ldc,
                        int check_overlap);

#endif /* JOBQ_MATMUL_INTERNAL_H */
