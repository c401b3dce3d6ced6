/*
 * npy.h - minimal reader/writer of numpy .npy files holding a 2-D float64 matrix, as jobq-matmul
 * needs them (private to src/apps/matmul; tests link it too).
 */
#ifndef JOBQ_MATMUL_NPY_H
#define JOBQ_MATMUL_NPY_H

#include <stddef.h>

/* Largest header accepted, in bytes (numpy's own reader stops at 10000 by default). */
#define MM_NPY_MAX_HEADER 65536

/*
 * Read `path`: format version 1.0 or 2.0, dtype '<f8', fortran_order False, a 2-D shape with
 * both dimensions > 0, exactly rows*cols*8 bytes of data. On success *ret_data (free() it),
 * *ret_rows and *ret_cols are set and 0 is returned. On failure a negative JOBQ_E* code
 * (JOBQ_EIO: unreadable, JOBQ_EINVAL: refused format, JOBQ_EOVERFLOW, JOBQ_ENOMEM) is returned
 * and `why` (if not NULL) gets a one-line reason without the file name.
 */
int mm_npy_load(const char *path, double **ret_data, size_t *ret_rows, size_t *ret_cols,
                char *why, size_t why_len);

/* Write rows x cols (row stride ld) as a version 1.0 '<f8' C-order file. Errors as above. */
int mm_npy_save(const char *path, const double *data, size_t rows, size_t cols, size_t ld,
                char *why, size_t why_len);

#endif /* JOBQ_MATMUL_NPY_H */
