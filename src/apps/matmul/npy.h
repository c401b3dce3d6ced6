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
 * both dimensions > 0, exactly rows*cols*8 bytes of data. A pipe or other non-regular file is
 * read as a stream (in growing chunks, so a header claiming more than it holds is "truncated
 * data", not an allocation of the claimed size). On success *ret_data (free() it), *ret_rows
 * and *ret_cols are set and 0 is returned. On failure a negative JOBQ_E* code is returned and
 * `why` (if not NULL) gets a one-line reason without the file name: JOBQ_EIO when the file
 * cannot be opened or read ("cannot open: ...", "cannot read: ...", "is a directory"),
 * JOBQ_EINVAL for a refused format (including truncated or over-long data), JOBQ_EOVERFLOW for
 * a shape whose byte count does not fit in size_t, JOBQ_ENOMEM when a valid file's data cannot
 * be allocated. The out-params are untouched on failure.
 */
int mm_npy_load(const char *path, double **ret_data, size_t *ret_rows, size_t *ret_cols,
                char *why, size_t why_len);

/*
 * Write rows x cols (row stride ld) as a version 1.0 '<f8' C-order file. A regular file (or a
 * new one) is written to a temporary "<path>.XXXXXX" in the same directory and renamed over
 * `path` only when complete (through a symlink: the file it points to), so an existing file is
 * never truncated first and a failed write leaves it as it was, with the temporary removed; the
 * new file keeps the old one's permission bits (a new one gets 0666 less the umask). A device
 * or pipe is written in place; a directory is refused. Errors: JOBQ_EINVAL (bad arguments),
 * JOBQ_EIO (cannot create, write or rename; `why` says which and why), JOBQ_ENOMEM.
 */
int mm_npy_save(const char *path, const double *data, size_t rows, size_t cols, size_t ld,
                char *why, size_t why_len);

#endif /* JOBQ_MATMUL_NPY_H */
