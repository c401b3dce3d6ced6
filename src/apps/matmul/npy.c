/*
 * npy.c - the numpy .npy format, just enough for float64 matrices.
 *
 * Format (numpy/lib/format.py): magic "\x93NUMPY", major and minor version bytes, a little-endian
 * header length (u16 in 1.0, u32 in 2.0), then an ASCII Python dict literal such as
 * "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }" padded with spaces and a final
 * newline, then the raw data. We parse the dict with a tiny scanner that accepts exactly the
 * three keys numpy writes, in any order, and refuse anything else with a reason: a matrix
 * multiply that silently reinterpreted a float32 or Fortran-order file would be wrong, not slow.
 * The data is read with fread and its length checked against the shape (truncated and
 * over-long files are both refused). The host must be little-endian for '<f8' to be native;
 * that is checked at run time.
 */
#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jobq.h>

#include "npy.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static int
fail(char *why, size_t why_len, int err, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && why_len > 0) {
        va_start(ap, fmt);
        (void)vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return err;
}

static int
host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;

    memcpy(&b, &one, 1);
    return b == 1;
}

static const char *
skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Parse a quoted string ('x' or "x") into out; returns the position after it or NULL. */
static const char *
parse_str(const char *s, char *out, size_t out_len)
{
    char q = *s;
    size_t n = 0;

    if (q != '\'' && q != '"')
        return NULL;
    s++;
    while (*s != '\0' && *s != q) {
        if (n + 1 < out_len)
            out[n++] = *s;
        s++;
    }
    if (*s != q)
        return NULL;
    out[n] = '\0';
    return s + 1;
}

/* Parse the header dict. Returns 0 or JOBQ_EINVAL with `why` set. */
static int
parse_header(const char *h, size_t *rows, size_t *cols, char *why, size_t why_len)
{
    char key[32], descr[32];
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    size_t dims[3], ndim = 0;
    const char *s = skip_space(h);

    if (*s++ != '{')
        return fail(why, why_len, JOBQ_EINVAL, "header is not a dict");
    for (;;) {
        s = skip_space(s);
        if (*s == '}')
            break;
        s = parse_str(s, key, sizeof(key));
        if (s == NULL)
            return fail(why, why_len, JOBQ_EINVAL, "malformed header dict");
        s = skip_space(s);
        if (*s++ != ':')
            return fail(why, why_len, JOBQ_EINVAL, "malformed header dict (no ':')");
        s = skip_space(s);
        if (strcmp(key, "descr") == 0) {
            s = parse_str(s, descr, sizeof(descr));
            if (s == NULL)
                return fail(why, why_len, JOBQ_EINVAL, "malformed 'descr'");
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (strncmp(s, "False", 5) == 0) {
                fortran = 0;
                s += 5;
            } else if (strncmp(s, "True", 4) == 0) {
                fortran = 1;
                s += 4;
            } else {
                return fail(why, why_len, JOBQ_EINVAL, "malformed 'fortran_order'");
            }
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (*s++ != '(')
                return fail(why, why_len, JOBQ_EINVAL, "malformed 'shape'");
            for (;;) {
                unsigned long long v;
                char *end;

                s = skip_space(s);
                if (*s == ')') {
                    s++;
                    break;
                }
                if (!isdigit((unsigned char)*s))
                    return fail(why, why_len, JOBQ_EINVAL, "malformed 'shape'");
                errno = 0;
                v = strtoull(s, &end, 10);
                if (errno != 0 || v > SIZE_MAX)
                    return fail(why, why_len, JOBQ_EOVERFLOW, "shape dimension too large");
                if (ndim < 3)
                    dims[ndim] = (size_t)v;
                ndim++;
                s = skip_space(end);
                if (*s == 'L') /* Python 2 long suffix */
                    s = skip_space(s + 1);
                if (*s == ',')
                    s++;
                else if (*s != ')')
                    return fail(why, why_len, JOBQ_EINVAL, "malformed 'shape'");
            }
            have_shape = 1;
        } else {
            return fail(why, why_len, JOBQ_EINVAL, "unexpected header key '%s'", key);
        }
        s = skip_space(s);
        if (*s == ',')
            s++;
        else if (*s != '}')
            return fail(why, why_len, JOBQ_EINVAL, "malformed header dict");
    }
    if (!have_descr || !have_order || !have_shape)
        return fail(why, why_len, JOBQ_EINVAL,
                    "header lacks 'descr', 'fortran_order' or 'shape'");
    if (strcmp(descr, "<f8") != 0)
        return fail(why, why_len, JOBQ_EINVAL,
                    "dtype '%s' is not supported (need little-endian float64 '<f8')", descr);
    if (fortran)
        return fail(why, why_len, JOBQ_EINVAL,
                    "Fortran order is not supported "
                    "(save a C-order array: numpy.ascontiguousarray)");
    if (ndim != 2)
        return fail(why, why_len, JOBQ_EINVAL, "array has %zu dimensions, need a 2-D matrix",
                    ndim);
    if (dims[0] == 0 || dims[1] == 0)
        return fail(why, why_len, JOBQ_EINVAL, "empty matrix (%zu x %zu)", dims[0], dims[1]);
    *rows = dims[0];
    *cols = dims[1];
    return 0;
}

int
mm_npy_load(const char *path, double **ret_data, size_t *ret_rows, size_t *ret_cols, char *why,
            size_t why_len)
{
    unsigned char pre[12];
    char *header = NULL;
    double *data = NULL;
    size_t hlen, rows = 0, cols = 0, count, got;
    struct stat st;
    long pos;
    FILE *f;
    int err, extra;

    if (path == NULL || ret_data == NULL || ret_rows == NULL || ret_cols == NULL)
        return fail(why, why_len, JOBQ_EINVAL, "invalid arguments");
    if (!host_little_endian())
        return fail(why, why_len, JOBQ_EINVAL, "'<f8' data needs a little-endian host");
    f = fopen(path, "rb");
    if (f == NULL)
        return fail(why, why_len, JOBQ_EIO, "cannot open: %s", strerror(errno));
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, npy_magic, 6) != 0) {
        err = fail(why, why_len, JOBQ_EINVAL, "not a .npy file (bad magic or too short)");
        goto out;
    }
    if (pre[6] == 1 && pre[7] == 0) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 && pre[7] == 0) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            err = fail(why, why_len, JOBQ_EINVAL, "truncated header");
            goto out;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
               (size_t)pre[11] << 24;
    } else {
        err = fail(why, why_len, JOBQ_EINVAL,
                   "unsupported .npy format version %u.%u (need 1.0 or 2.0)", pre[6], pre[7]);
        goto out;
    }
    if (hlen > MM_NPY_MAX_HEADER) {
        err = fail(why, why_len, JOBQ_EINVAL,
                   "header of %zu bytes is larger than the %d-byte limit", hlen,
                   MM_NPY_MAX_HEADER);
        goto out;
    }
    header = malloc(hlen + 1);
    if (header == NULL) {
        err = fail(why, why_len, JOBQ_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(header, 1, hlen, f) != hlen) {
        err = fail(why, why_len, JOBQ_EINVAL, "truncated header");
        goto out;
    }
    header[hlen] = '\0';
    if (strlen(header) != hlen) {
        err = fail(why, why_len, JOBQ_EINVAL, "header contains a NUL byte");
        goto out;
    }
    err = parse_header(header, &rows, &cols, why, why_len);
    if (err != 0)
        goto out;
    if (rows > SIZE_MAX / cols || rows * cols > SIZE_MAX / sizeof(double)) {
        err = fail(why, why_len, JOBQ_EOVERFLOW, "shape (%zu, %zu) is too large", rows, cols);
        goto out;
    }
    count = rows * cols;
    /* A regular file too short for its shape is refused before the allocation: a 100-byte file
     * claiming (100000, 100000) must not reserve 80 GB first, or fail as "out of memory". */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (pos = ftell(f)) >= 0) {
        uint64_t size = (uint64_t)st.st_size, left = size > (uint64_t)pos ? size - (uint64_t)pos : 0;

        if (left / sizeof(double) < count) {
            err = fail(why, why_len, JOBQ_EINVAL,
                       "truncated data: shape (%zu, %zu) needs %zu values, file has %" PRIu64,
                       rows, cols, count, left / sizeof(double));
            goto out;
        }
    }
    data = malloc(count * sizeof(double));
    if (data == NULL) {
        err = fail(why, why_len, JOBQ_ENOMEM, "out of memory for a %zu x %zu matrix", rows, cols);
        goto out;
    }
    got = fread(data, sizeof(double), count, f);
    if (got != count) {
        err = ferror(f) ? fail(why, why_len, JOBQ_EIO, "read error")
                        : fail(why, why_len, JOBQ_EINVAL,
                               "truncated data: shape (%zu, %zu) needs %zu values, file has %zu",
                               rows, cols, count, got);
        goto out;
    }
    extra = fgetc(f);
    if (extra != EOF) {
        err = fail(why, why_len, JOBQ_EINVAL, "trailing bytes after the %zu x %zu data", rows,
                   cols);
        goto out;
    }
    *ret_data = data;
    *ret_rows = rows;
    *ret_cols = cols;
    data = NULL;
    err = 0;
out:
    free(header);
    free(data);
    (void)fclose(f);
    return err;
}

int
mm_npy_save(const char *path, const double *data, size_t rows, size_t cols, size_t ld, char *why,
            size_t why_len)
{
    char header[256];
    unsigned char pre[10];
    size_t len, total, i;
    FILE *f;
    int n, err = 0;

    if (path == NULL || data == NULL || rows == 0 || cols == 0 || ld < cols)
        return fail(why, why_len, JOBQ_EINVAL, "invalid arguments");
    if (!host_little_endian())
        return fail(why, why_len, JOBQ_EINVAL, "'<f8' data needs a little-endian host");
    n = snprintf(header, sizeof(header),
                 "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
    if (n < 0 || (size_t)n >= sizeof(header) - 80)
        return fail(why, why_len, JOBQ_EINVAL, "header too long");
    /* Pad with spaces so that magic + length + header + '\n' is a multiple of 64. */
    len = (size_t)n;
    total = (10 + len + 1 + 63) / 64 * 64;
    while (10 + len + 1 < total)
        header[len++] = ' ';
    header[len++] = '\n';
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(len & 0xff);
    pre[9] = (unsigned char)(len >> 8);
    f = fopen(path, "wb");
    if (f == NULL)
        return fail(why, why_len, JOBQ_EIO, "cannot create: %s", strerror(errno));
    if (fwrite(pre, 1, 10, f) != 10 || fwrite(header, 1, len, f) != len)
        err = JOBQ_EIO;
    for (i = 0; err == 0 && i < rows; i++)
        if (fwrite(data + i * ld, sizeof(double), cols, f) != cols)
            err = JOBQ_EIO;
    if (fclose(f) != 0 && err == 0)
        err = JOBQ_EIO;
    if (err != 0)
        return fail(why, why_len, err, "write error: %s", strerror(errno));
    return 0;
}
