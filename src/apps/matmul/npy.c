/*
 * npy.c - the numpy .npy format, just enough for float64 matrices.
 *
 * Format (numpy/lib/format.py): magic "\x93NUMPY", major and minor version bytes, a little-endian
 * header length (u16 in 1.0, u32 in 2.0), then an ASCII Python dict literal such as
 * "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }" padded with spaces and a final
 * newline, then the raw data. We parse the dict with a tiny scanner that accepts exactly the
 * three keys numpy writes, in any order, and refuse anything else with a reason: a matrix
 * multiply that silently reinterpreted a float32 or Fortran-order file would be wrong, not slow.
 * The scanner follows what numpy's reader (a Python literal) accepts: any whitespace, newlines
 * included, between tokens; decimal dimensions without leading zeros; after the closing '}'
 * only the space padding and the final '\n' that numpy writes.
 * The data is read with fread and its length checked against the shape (truncated and
 * over-long files are both refused). A regular file's size is checked before the data buffer is
 * allocated; a pipe or other stream has no size, so it is read in bounded chunks into a growing
 * buffer, and a header that claims more than the stream holds ends as "truncated data", not as
 * one huge allocation. Read errors (a directory, EIO) are reported as such, never as a bad
 * format. The host must be little-endian for '<f8' to be native; that is checked at run time.
 *
 * Saving never writes over the destination in place: the file is written to a temporary file
 * in the same directory and renamed over it only once complete, so `--save` onto one of the
 * inputs, or a write that fails half-way (disk full), leaves the old file intact.
 */
#define _XOPEN_SOURCE 700 /* realpath (XSI) */
#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jobq.h>

#include "npy.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* First allocation, in doubles, when reading data from a stream of unknown size (1 MiB); the
 * buffer doubles from there up to the size the shape asks for. */
#define STREAM_CHUNK ((size_t)1 << 17)

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

/* Python's whitespace between tokens: the dict literal may span lines (numpy accepts that). */
static const char *
skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v')
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
        if (*s == '}') {
            s++;
            break;
        }
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
                /* Python 3 refuses 02 as a literal, and so does numpy's reader. */
                if (s[0] == '0' && isdigit((unsigned char)s[1]))
                    return fail(why, why_len, JOBQ_EINVAL,
                                "malformed 'shape' (dimension with a leading zero)");
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
    /* numpy pads with spaces and ends the header with one '\n'; anything else after the dict
     * is not something numpy wrote (nor would read as this dict). */
    while (*s == ' ')
        s++;
    if (*s != '\n' || s[1] != '\0')
        return fail(why, why_len, JOBQ_EINVAL,
                    *s == '\0' ? "header does not end with a newline"
                               : "unexpected text after the header dict");
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
        return fail(why, why_len, JOBQ_EINVAL, "array has %zu dimension%s, need a 2-D matrix",
                    ndim, ndim == 1 ? "" : "s");
    if (dims[0] == 0 || dims[1] == 0)
        return fail(why, why_len, JOBQ_EINVAL, "empty matrix (%zu x %zu)", dims[0], dims[1]);
    *rows = dims[0];
    *cols = dims[1];
    return 0;
}

/*
 * fread exactly n bytes. 0 on success; 1 when the file ends first (*ret_got bytes read);
 * JOBQ_EIO on a read error, with `why` set to "cannot read: <reason>".
 */
static int
read_bytes(FILE *f, void *buf, size_t n, size_t *ret_got, char *why, size_t why_len)
{
    size_t got;
    int e;

    errno = 0;
    got = fread(buf, 1, n, f);
    e = errno;
    if (ret_got != NULL)
        *ret_got = got;
    if (got == n)
        return 0;
    if (ferror(f))
        return fail(why, why_len, JOBQ_EIO, "cannot read: %s", strerror(e != 0 ? e : EIO));
    return 1;
}

/*
 * Read up to `count` doubles from a stream of unknown length: the buffer starts at STREAM_CHUNK
 * doubles and doubles while data keeps coming, so a header that claims far more than the stream
 * holds costs only about twice what was actually sent. 0 with *ret_data (*ret_got doubles read,
 * fewer than count when the stream ended first), JOBQ_EIO or JOBQ_ENOMEM with `why` set.
 */
static int
read_stream(FILE *f, size_t count, size_t rows, size_t cols, double **ret_data, size_t *ret_got,
            char *why, size_t why_len)
{
    double *data = NULL, *grown;
    size_t cap = 0, got = 0, bytes;
    int r;

    while (got < count) {
        if (got == cap) {
            cap = cap == 0 ? STREAM_CHUNK : cap * 2;
            if (cap > count)
                cap = count;
            grown = realloc(data, cap * sizeof(double));
            if (grown == NULL) {
                free(data);
                return fail(why, why_len, JOBQ_ENOMEM, "out of memory for a %zu x %zu matrix",
                            rows, cols);
            }
            data = grown;
        }
        r = read_bytes(f, data + got, (cap - got) * sizeof(double), &bytes, why, why_len);
        got += bytes / sizeof(double);
        if (r < 0) {
            free(data);
            return r;
        }
        if (r > 0)
            break;
    }
    *ret_data = data;
    *ret_got = got;
    return 0;
}

int
mm_npy_load(const char *path, double **ret_data, size_t *ret_rows, size_t *ret_cols, char *why,
            size_t why_len)
{
    unsigned char pre[12];
    char *header = NULL;
    double *data = NULL;
    size_t hlen, rows = 0, cols = 0, count, got = 0;
    struct stat st;
    long pos;
    FILE *f;
    int err, extra, regular;

    if (path == NULL || ret_data == NULL || ret_rows == NULL || ret_cols == NULL)
        return fail(why, why_len, JOBQ_EINVAL, "invalid arguments");
    if (!host_little_endian())
        return fail(why, why_len, JOBQ_EINVAL, "'<f8' data needs a little-endian host");
    f = fopen(path, "rb");
    if (f == NULL)
        return fail(why, why_len, JOBQ_EIO, "cannot open: %s", strerror(errno));
    /* fopen accepts a directory; reading it fails with EISDIR, which must not pass for a short
     * or malformed file. fstat on the open file: no race with a rename in between. */
    if (fstat(fileno(f), &st) != 0) {
        err = fail(why, why_len, JOBQ_EIO, "cannot read: %s", strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        err = fail(why, why_len, JOBQ_EIO, "is a directory");
        goto out;
    }
    regular = S_ISREG(st.st_mode);
    err = read_bytes(f, pre, 10, NULL, why, why_len);
    if (err < 0)
        goto out;
    if (err > 0 || memcmp(pre, npy_magic, 6) != 0) {
        err = fail(why, why_len, JOBQ_EINVAL, "not a .npy file (bad magic or too short)");
        goto out;
    }
    if (pre[6] == 1 && pre[7] == 0) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 && pre[7] == 0) {
        err = read_bytes(f, pre + 10, 2, NULL, why, why_len);
        if (err != 0) {
            if (err > 0)
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
    err = read_bytes(f, header, hlen, NULL, why, why_len);
    if (err != 0) {
        if (err > 0)
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
    if (regular) {
        /* A regular file too short for its shape is refused before the allocation: a 100-byte
         * file claiming (100000, 100000) must not reserve 80 GB first, or fail as "out of
         * memory". */
        if ((pos = ftell(f)) >= 0) {
            uint64_t size = (uint64_t)st.st_size;
            uint64_t left = size > (uint64_t)pos ? size - (uint64_t)pos : 0;

            if (left / sizeof(double) < count) {
                err = fail(why, why_len, JOBQ_EINVAL,
                           "truncated data: shape (%zu, %zu) needs %zu values, file has %" PRIu64,
                           rows, cols, count, left / sizeof(double));
                goto out;
            }
        }
        data = malloc(count * sizeof(double));
        if (data == NULL) {
            err = fail(why, why_len, JOBQ_ENOMEM, "out of memory for a %zu x %zu matrix", rows,
                       cols);
            goto out;
        }
        err = read_bytes(f, data, count * sizeof(double), &got, why, why_len);
        if (err < 0)
            goto out;
        got /= sizeof(double);
    } else {
        err = read_stream(f, count, rows, cols, &data, &got, why, why_len);
        if (err != 0)
            goto out;
    }
    if (got != count) {
        err = fail(why, why_len, JOBQ_EINVAL,
                   "truncated data: shape (%zu, %zu) needs %zu values, file has %zu", rows, cols,
                   count, got);
        goto out;
    }
    errno = 0;
    extra = fgetc(f);
    if (extra == EOF && ferror(f)) {
        err = fail(why, why_len, JOBQ_EIO, "cannot read: %s",
                   strerror(errno != 0 ? errno : EIO));
        goto out;
    }
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

/* Write the whole file to f; 0, or JOBQ_EIO with the errno of the first failure in *ret_errno. */
static int
write_npy(FILE *f, const unsigned char *pre, const char *header, size_t len, const double *data,
          size_t rows, size_t cols, size_t ld, int *ret_errno)
{
    size_t i;

    errno = 0;
    if (fwrite(pre, 1, 10, f) != 10 || fwrite(header, 1, len, f) != len)
        goto fail;
    for (i = 0; i < rows; i++)
        if (fwrite(data + i * ld, sizeof(double), cols, f) != cols)
            goto fail;
    if (fflush(f) != 0)
        goto fail;
    return 0;
fail:
    *ret_errno = errno != 0 ? errno : EIO;
    return JOBQ_EIO;
}

/*
 * Where to write `path`: the file a symlink points to (so that the rename replaces the file and
 * keeps the link), or path itself when it does not exist yet. malloc'd; NULL when out of memory.
 */
static char *
save_target(const char *path)
{
    char *real = realpath(path, NULL);

    if (real != NULL)
        return real;
    real = malloc(strlen(path) + 1);
    if (real != NULL)
        strcpy(real, path);
    return real;
}

int
mm_npy_save(const char *path, const double *data, size_t rows, size_t cols, size_t ld, char *why,
            size_t why_len)
{
    char header[256], *target = NULL, *tmp = NULL;
    unsigned char pre[10];
    size_t len, total;
    struct stat st;
    mode_t mode;
    FILE *f;
    int n, fd, e = 0, err = 0;

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

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode))
            return fail(why, why_len, JOBQ_EIO, "is a directory");
        /* A device, pipe or /dev/stdout: written in place. A rename would replace the node
         * itself (as root, /dev/null with a regular file), and a stream cannot be left half
         * written in a way a rename would avoid. */
        f = fopen(path, "wb");
        if (f == NULL)
            return fail(why, why_len, JOBQ_EIO, "cannot open: %s", strerror(errno));
        err = write_npy(f, pre, header, len, data, rows, cols, ld, &e);
        if (fclose(f) != 0 && err == 0) {
            e = errno;
            err = JOBQ_EIO;
        }
        return err != 0 ? fail(why, why_len, err, "write error: %s", strerror(e)) : 0;
    }

    /* A regular file, or none yet: write "<target>.XXXXXX" beside it, then rename over it. */
    target = save_target(path);
    tmp = target != NULL ? malloc(strlen(target) + sizeof(".XXXXXX")) : NULL;
    if (tmp == NULL) {
        free(target);
        return fail(why, why_len, JOBQ_ENOMEM, "out of memory");
    }
    strcpy(tmp, target);
    strcat(tmp, ".XXXXXX");
    /* mkstemp creates the file 0600: give it the mode the file already had, or the one a plain
     * fopen would (0666 less the umask; umask can only be read by setting it, and nothing
     * else in this single-threaded program creates files meanwhile). */
    if (stat(target, &st) == 0) {
        mode = st.st_mode & 07777;
    } else {
        mode = umask(022);
        (void)umask(mode);
        mode = 0666 & ~mode;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        err = fail(why, why_len, JOBQ_EIO, "cannot create a temporary file beside it: %s",
                   strerror(errno));
        free(tmp);
        free(target);
        return err;
    }
    (void)fchmod(fd, mode); /* best effort: the data matter more than the mode */
    f = fdopen(fd, "wb");
    if (f == NULL) {
        e = errno;
        (void)close(fd);
        err = JOBQ_EIO;
    } else {
        err = write_npy(f, pre, header, len, data, rows, cols, ld, &e);
        if (fclose(f) != 0 && err == 0) {
            e = errno;
            err = JOBQ_EIO;
        }
    }
    if (err == 0 && rename(tmp, target) != 0) {
        err = fail(why, why_len, JOBQ_EIO, "cannot replace the file: %s", strerror(errno));
        (void)unlink(tmp);
    } else if (err != 0) {
        /* The old file (if any) is untouched; only the partial copy goes. */
        (void)unlink(tmp);
        err = fail(why, why_len, err, "write error: %s", strerror(e));
    }
    free(tmp);
    free(target);
    return err;
}
