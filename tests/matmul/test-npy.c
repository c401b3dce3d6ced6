/*
 * test-npy.c - the .npy reader/writer of jobq-matmul (src/apps/matmul/npy.c), and the
 * executable's handling of bad inputs (exit status 3, message naming the file and reason).
 *
 * Every malformed file is written by the test itself into a fresh temporary directory.
 * The executable is found through $JOBQ_MATMUL_EXE (set by meson); those tests skip without it.
 */
#define _XOPEN_SOURCE 700 /* setrlimit, RLIMIT_FSIZE (XSI) */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <jobq.h>

#include "npy.h"

static char dir[64];

static void
make_dir(void)
{
    strcpy(dir, "/tmp/jobq-npy-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void
remove_dir(void)
{
    char cmd[128];

    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)system(cmd);
}

TestSuite(npy, .init = make_dir, .fini = remove_dir);

static const char *
path_of(const char *name)
{
    static char buf[4][160];
    static int next;
    char *p = buf[next++ % 4];

    (void)snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

/* Write a .npy file: version major.minor, header text (padded as numpy does unless raw),
 * then `ndata` doubles 0, 1, 2, ... */
static const char *
write_npy(const char *name, int major, const char *header, size_t ndata)
{
    const char *path = path_of(name);
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 0, 0};
    size_t hlen = strlen(header), prelen = major == 1 ? 10 : 12, i;
    FILE *f = fopen(path, "wb");

    cr_assert_not_null(f);
    pre[6] = (unsigned char)major;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)((hlen >> 8) & 0xff);
    if (major != 1) {
        pre[10] = (unsigned char)((hlen >> 16) & 0xff);
        pre[11] = (unsigned char)((hlen >> 24) & 0xff);
    }
    cr_assert_eq(fwrite(pre, 1, prelen, f), prelen);
    cr_assert_eq(fwrite(header, 1, hlen, f), hlen);
    for (i = 0; i < ndata; i++) {
        double v = (double)i;

        cr_assert_eq(fwrite(&v, sizeof(v), 1, f), 1);
    }
    cr_assert_eq(fclose(f), 0);
    return path;
}

#define GOOD_HDR(shape) "{'descr': '<f8', 'fortran_order': False, 'shape': " shape ", }\n"

static void
expect_refused(const char *path, int code, const char *reason_part)
{
    char why[256] = "";
    double *data = NULL;
    size_t r = 0, c = 0;

    cr_assert_eq(mm_npy_load(path, &data, &r, &c, why, sizeof(why)), code, "%s: got '%s'", path,
                 why);
    cr_assert_null(data);
    cr_assert(strstr(why, reason_part) != NULL, "reason '%s' lacks '%s'", why, reason_part);
}

Test(npy, reads_version_1_and_2)
{
    double *data = NULL;
    size_t r, c, i;
    char why[256];
    const char *p1 = write_npy("v1.npy", 1, GOOD_HDR("(3, 4)"), 12);
    const char *p2 = write_npy("v2.npy", 2, "{'shape': (2, 5), 'fortran_order': False, "
                                            "'descr': '<f8'}\n",
                               10);

    cr_assert_eq(mm_npy_load(p1, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 3);
    cr_assert_eq(c, 4);
    for (i = 0; i < 12; i++)
        cr_assert_eq(data[i], (double)i);
    free(data);
    cr_assert_eq(mm_npy_load(p2, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 2);
    cr_assert_eq(c, 5);
    cr_assert_eq(data[9], 9.0);
    free(data);
}

Test(npy, save_then_load_round_trips_with_stride)
{
    const double src[2][4] = {{1.5, -2.0, 3.25, 99.0}, {4.0, 5.0, -6.5, 99.0}};
    const char *path = path_of("rt.npy");
    double *data = NULL;
    size_t r, c;
    char why[256];

    cr_assert_eq(mm_npy_save(path, &src[0][0], 2, 3, 4, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(mm_npy_load(path, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 2);
    cr_assert_eq(c, 3);
    cr_assert_eq(data[2], 3.25);
    cr_assert_eq(data[3], 4.0);
    cr_assert_eq(data[5], -6.5);
    free(data);
}

Test(npy, refuses_fortran_order)
{
    expect_refused(write_npy("f.npy", 1, "{'descr': '<f8', 'fortran_order': True, "
                                         "'shape': (2, 2), }\n", 4),
                   JOBQ_EINVAL, "Fortran");
}

Test(npy, refuses_other_dtypes)
{
    expect_refused(write_npy("f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, "
                                          "'shape': (2, 2), }\n", 2),
                   JOBQ_EINVAL, "'<f4'");
    expect_refused(write_npy("be.npy", 1, "{'descr': '>f8', 'fortran_order': False, "
                                          "'shape': (2, 2), }\n", 4),
                   JOBQ_EINVAL, "'>f8'");
    expect_refused(write_npy("i8.npy", 1, "{'descr': '<i8', 'fortran_order': False, "
                                          "'shape': (2, 2), }\n", 4),
                   JOBQ_EINVAL, "'<i8'");
}

Test(npy, refuses_truncated_files)
{
    const char *path = write_npy("trunc.npy", 1, GOOD_HDR("(3, 3)"), 8);
    FILE *f;

    expect_refused(path, JOBQ_EINVAL, "truncated data");
    /* Truncated inside the header, and inside the magic. */
    f = fopen(path_of("hdr.npy"), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("\x93NUMPY\x01\x00\x50\x00{'descr'", 1, 18, f), 18);
    cr_assert_eq(fclose(f), 0);
    expect_refused(path_of("hdr.npy"), JOBQ_EINVAL, "truncated header");
    f = fopen(path_of("magic.npy"), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("\x93NUM", 1, 4, f), 4);
    cr_assert_eq(fclose(f), 0);
    expect_refused(path_of("magic.npy"), JOBQ_EINVAL, "not a .npy file");
    /* A short file claiming 80 GB: refused as truncated before anything is allocated (it was
     * "out of memory", or an 80 GB reservation where memory is overcommitted). */
    expect_refused(write_npy("claims80g.npy", 1, GOOD_HDR("(100000, 100000)"), 4), JOBQ_EINVAL,
                   "truncated data");
}

Test(npy, refuses_trailing_data)
{
    expect_refused(write_npy("long.npy", 1, GOOD_HDR("(2, 2)"), 5), JOBQ_EINVAL, "trailing");
}

Test(npy, refuses_huge_header)
{
    size_t len = MM_NPY_MAX_HEADER + 100;
    char *h = malloc(len + 1);

    cr_assert_not_null(h);
    memset(h, ' ', len);
    memcpy(h, GOOD_HDR("(1, 1)"), strlen(GOOD_HDR("(1, 1)")));
    h[len - 1] = '\n';
    h[len] = '\0';
    expect_refused(write_npy("huge.npy", 2, h, 1), JOBQ_EINVAL, "larger than");
    free(h);
}

Test(npy, refuses_bad_shapes_and_versions)
{
    expect_refused(write_npy("1d.npy", 1, GOOD_HDR("(4,)"), 4), JOBQ_EINVAL, "1 dimension,");
    expect_refused(write_npy("3d.npy", 1, GOOD_HDR("(2, 2, 2)"), 8), JOBQ_EINVAL, "3 dimensions");
    expect_refused(write_npy("empty.npy", 1, GOOD_HDR("(0, 3)"), 0), JOBQ_EINVAL, "empty");
    expect_refused(write_npy("big.npy", 1, GOOD_HDR("(99999999999, 99999999999)"), 0),
                   JOBQ_EOVERFLOW, "too large");
    expect_refused(write_npy("v3.npy", 3, GOOD_HDR("(1, 1)"), 1), JOBQ_EINVAL, "version 3.0");
    expect_refused(write_npy("key.npy", 1, "{'descr': '<f8', 'fortran_order': False, "
                                           "'shape': (1, 1), 'extra': 1}\n", 1),
                   JOBQ_EINVAL, "unexpected header key");
    expect_refused(write_npy("nodict.npy", 1, "[1, 2]\n", 1), JOBQ_EINVAL, "not a dict");
    expect_refused(path_of("missing.npy"), JOBQ_EIO, "cannot open");
}

/* A directory opens (fopen accepts it) but cannot be read: an I/O error, not a bad format. */
Test(npy, directory_is_a_read_error)
{
    cr_assert_eq(mkdir(path_of("adir.npy"), 0755), 0);
    expect_refused(path_of("adir.npy"), JOBQ_EIO, "is a directory");
}

/* A read that fails (EIO: /proc/self/mem at address 0 is not mapped) says "cannot read". */
Test(npy, read_error_is_reported_as_such)
{
    FILE *f = fopen("/proc/self/mem", "rb");

    if (f == NULL)
        cr_skip_test("no /proc/self/mem to provoke a read error");
    (void)fclose(f);
    expect_refused("/proc/self/mem", JOBQ_EIO, "cannot read: ");
}

/* Serve `header` (version 1.0) and `ndata` doubles 0, 1, ... from a child process through a
 * pipe; returns the "/dev/fd/N" path of its read end (close *ret_fd and reap *ret_pid after). */
static const char *
serve_pipe(const char *header, size_t ndata, int *ret_fd, pid_t *ret_pid)
{
    static char path[32];
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    size_t hlen = strlen(header), i;
    int fds[2];
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        FILE *w;

        (void)close(fds[0]);
        w = fdopen(fds[1], "wb");
        pre[8] = (unsigned char)(hlen & 0xff);
        pre[9] = (unsigned char)(hlen >> 8);
        if (w == NULL || fwrite(pre, 1, 10, w) != 10 || fwrite(header, 1, hlen, w) != hlen)
            _exit(1);
        for (i = 0; i < ndata; i++) {
            double v = (double)i;

            if (fwrite(&v, sizeof(v), 1, w) != 1)
                _exit(1);
        }
        _exit(fclose(w) == 0 ? 0 : 1);
    }
    (void)close(fds[1]);
    (void)snprintf(path, sizeof(path), "/dev/fd/%d", fds[0]);
    *ret_fd = fds[0];
    *ret_pid = pid;
    return path;
}

/* A pipe has no size to check before allocating: a header claiming 1e8 x 1e8 over 8 values is
 * "truncated data" (it was "out of memory"), and a real stream larger than the first chunk is
 * read whole. */
Test(npy, pipes_are_read_in_bounded_chunks, .timeout = 30)
{
    char why[256] = "";
    double *data = NULL;
    size_t r = 0, c = 0, i;
    int fd, st;
    pid_t pid;
    const char *p;

    p = serve_pipe(GOOD_HDR("(100000000, 100000000)"), 8, &fd, &pid);
    cr_assert_eq(mm_npy_load(p, &data, &r, &c, why, sizeof(why)), JOBQ_EINVAL, "%s", why);
    cr_assert_null(data);
    cr_assert(strstr(why, "truncated data") != NULL && strstr(why, "has 8") != NULL, "%s", why);
    (void)close(fd);
    cr_assert_eq(waitpid(pid, &st, 0), pid);

    /* 600 x 500 doubles: 2.4 MB, more than one 1 MiB chunk, through a 64 KiB pipe. */
    p = serve_pipe(GOOD_HDR("(600, 500)"), 600 * 500, &fd, &pid);
    cr_assert_eq(mm_npy_load(p, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 600);
    cr_assert_eq(c, 500);
    for (i = 0; i < 600 * 500; i += 997)
        cr_assert_eq(data[i], (double)i);
    cr_assert_eq(data[600 * 500 - 1], 600.0 * 500 - 1);
    free(data);
    (void)close(fd);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* One value short through a pipe: truncated, not accepted. */
    p = serve_pipe(GOOD_HDR("(3, 3)"), 8, &fd, &pid);
    data = NULL;
    cr_assert_eq(mm_npy_load(p, &data, &r, &c, why, sizeof(why)), JOBQ_EINVAL, "%s", why);
    cr_assert(strstr(why, "truncated data") != NULL, "%s", why);
    (void)close(fd);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
}

/* The header follows numpy's reader: a dict over several lines is fine; junk after '}', a
 * dimension with a leading zero and a header without its final newline are not. */
Test(npy, header_follows_numpy_format)
{
    double *data = NULL;
    size_t r, c;
    char why[256];
    const char *p;

    p = write_npy("nl.npy", 1, "{'descr': '<f8',\n 'fortran_order': False,\n 'shape': (2,\n 3)}"
                               "   \n", 6);
    cr_assert_eq(mm_npy_load(p, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert(r == 2 && c == 3);
    free(data);
    expect_refused(write_npy("junk.npy", 1, "{'descr': '<f8', 'fortran_order': False, "
                                            "'shape': (2, 3)} junk\n", 6),
                   JOBQ_EINVAL, "after the header dict");
    expect_refused(write_npy("junk2.npy", 1, "{'descr': '<f8', 'fortran_order': False, "
                                             "'shape': (2, 3)}\n\n", 6),
                   JOBQ_EINVAL, "after the header dict");
    expect_refused(write_npy("zero.npy", 1, GOOD_HDR("(02, 3)"), 6), JOBQ_EINVAL, "leading zero");
    expect_refused(write_npy("zero2.npy", 1, GOOD_HDR("(2, 03)"), 6), JOBQ_EINVAL,
                   "leading zero");
    expect_refused(write_npy("nonl.npy", 1, "{'descr': '<f8', 'fortran_order': False, "
                                            "'shape': (2, 3)}   ", 6),
                   JOBQ_EINVAL, "newline");
}

/* The bytes of a file, malloc'd; *ret_len its length. */
static unsigned char *
slurp(const char *path, size_t *ret_len)
{
    unsigned char *buf = malloc(1 << 20);
    FILE *f = fopen(path, "rb");

    cr_assert(buf != NULL && f != NULL, "%s", path);
    *ret_len = fread(buf, 1, 1 << 20, f);
    (void)fclose(f);
    return buf;
}

/* Names in the test directory that start with `prefix` (temporaries left behind). */
static int
count_named(const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    (void)closedir(d);
    return n;
}

/* A save that fails half-way (here: over the file-size limit) leaves the old file as it was and
 * no temporary behind; one that succeeds replaces it whole, keeping its permission bits, and
 * through a symlink replaces the file, not the link. */
Test(npy, save_replaces_the_file_only_when_complete)
{
    static double big[200 * 200];
    const double small[4] = {1, 2, 3, 4};
    const char *path = write_npy("keep.npy", 1, GOOD_HDR("(2, 2)"), 4);
    unsigned char *before, *after;
    size_t before_len, after_len, r, c;
    struct rlimit old, lim;
    struct stat st;
    double *data = NULL;
    char why[256];
    int err;

    cr_assert_eq(chmod(path, 0640), 0);
    before = slurp(path, &before_len);
    /* 320 KB of data against a 64 KiB limit: the write fails with EFBIG. */
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 65536;
    (void)signal(SIGXFSZ, SIG_IGN);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    err = mm_npy_save(path, big, 200, 200, 200, why, sizeof(why));
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(err, JOBQ_EIO, "%s", why);
    cr_assert(strstr(why, "write error") != NULL, "%s", why);
    after = slurp(path, &after_len);
    cr_assert(after_len == before_len && memcmp(before, after, before_len) == 0,
              "the old file was changed by a failed save");
    cr_assert_eq(count_named("keep.npy."), 0, "a temporary file was left behind");
    free(after);

    cr_assert_eq(mm_npy_save(path, small, 1, 4, 4, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    cr_assert_eq(mm_npy_load(path, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert(r == 1 && c == 4 && data[3] == 4.0);
    free(data);

    cr_assert_eq(symlink("keep.npy", path_of("link.npy")), 0);
    cr_assert_eq(mm_npy_save(path_of("link.npy"), small, 2, 2, 2, why, sizeof(why)), 0, "%s",
                 why);
    cr_assert_eq(lstat(path_of("link.npy"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the symlink was replaced");
    cr_assert_eq(mm_npy_load(path, &data, &r, &c, why, sizeof(why)), 0, "%s", why);
    cr_assert(r == 2 && c == 2);
    free(data);
    cr_assert_eq(count_named("keep.npy."), 0);
    expect_refused(path_of("nodir/x.npy"), JOBQ_EIO, "cannot open");
    cr_assert_eq(mm_npy_save(path_of("nodir/x.npy"), small, 2, 2, 2, why, sizeof(why)), JOBQ_EIO);
    cr_assert_eq(mm_npy_save(dir, small, 2, 2, 2, why, sizeof(why)), JOBQ_EIO);
    cr_assert(strstr(why, "is a directory") != NULL, "%s", why);
    free(before);
}

/* Run a shell command line with stderr to err.txt; returns its exit status, stderr in `err`. */
static int
run_cmd(const char *line, char *err, size_t err_len)
{
    char cmd[4400];
    FILE *f;
    size_t n;
    int st;

    (void)snprintf(cmd, sizeof(cmd), "%s 2>'%s'", line, path_of("err.txt"));
    st = system(cmd);
    cr_assert(WIFEXITED(st), "%s did not exit normally", cmd);
    f = fopen(path_of("err.txt"), "r");
    cr_assert_not_null(f);
    n = fread(err, 1, err_len - 1, f);
    err[n] = '\0';
    (void)fclose(f);
    return WEXITSTATUS(st);
}

/* Run the executable with arguments; returns its exit status, stdout in `out` (if not NULL),
 * stderr in `err`. */
static int
run_exe_out(const char *args, char *out, size_t out_len, char *err, size_t err_len)
{
    const char *exe = getenv("JOBQ_MATMUL_EXE");
    char cmd[3200];
    FILE *f;
    size_t n;
    int st;

    (void)snprintf(cmd, sizeof(cmd), "'%s' %s >'%s'", exe, args, path_of("out.txt"));
    st = run_cmd(cmd, err, err_len);
    if (out != NULL) {
        f = fopen(path_of("out.txt"), "r");
        cr_assert_not_null(f);
        n = fread(out, 1, out_len - 1, f);
        out[n] = '\0';
        (void)fclose(f);
    }
    return st;
}

static int
run_exe(const char *args, char *err, size_t err_len)
{
    return run_exe_out(args, NULL, 0, err, err_len);
}

/* Whether the two files hold the same bytes. */
static int
same_file(const char *a, const char *b)
{
    char cmd[512];

    (void)snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

Test(npy, cli_reports_each_bad_file_and_shape_mismatch)
{
    char args[512], err[2048];
    const char *a, *b;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    a = write_npy("a.npy", 1, GOOD_HDR("(2, 3)"), 6);
    b = write_npy("b.npy", 1, GOOD_HDR("(2, 2)"), 4);
    (void)snprintf(args, sizeof(args), "--load '%s' '%s'", a, b);
    cr_assert_eq(run_exe(args, err, sizeof(err)), 3);
    cr_assert(strstr(err, "b.npy") != NULL && strstr(err, "shape mismatch") != NULL, "%s", err);

    /* Both bad files are named in one run. */
    a = write_npy("fa.npy", 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }\n", 4);
    b = write_npy("tb.npy", 1, GOOD_HDR("(2, 2)"), 3);
    (void)snprintf(args, sizeof(args), "--load '%s' '%s'", a, b);
    cr_assert_eq(run_exe(args, err, sizeof(err)), 3);
    cr_assert(strstr(err, "fa.npy: Fortran order") != NULL, "%s", err);
    cr_assert(strstr(err, "tb.npy: truncated data") != NULL, "%s", err);
}

Test(npy, cli_multiplies_and_saves)
{
    char args[512], err[2048], why[256];
    const char *a, *b;
    double *c = NULL;
    size_t r, cols;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    a = write_npy("ma.npy", 1, GOOD_HDR("(2, 3)"), 6); /* [[0 1 2] [3 4 5]] */
    b = write_npy("mb.npy", 1, GOOD_HDR("(3, 1)"), 3); /* [[0] [1] [2]] */
    (void)snprintf(args, sizeof(args), "--load '%s' '%s' --save '%s' --verify -j 2", a, b,
                   path_of("mc.npy"));
    cr_assert_eq(run_exe(args, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mm_npy_load(path_of("mc.npy"), &c, &r, &cols, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 2);
    cr_assert_eq(cols, 1);
    cr_assert_eq(c[0], 5.0);  /* 0*0 + 1*1 + 2*2 */
    cr_assert_eq(c[1], 14.0); /* 3*0 + 4*1 + 5*2 */
    free(c);
}

Test(npy, cli_rejects_bad_options)
{
    char err[2048];

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    cr_assert_eq(run_exe("-n 0", err, sizeof(err)), 2);
    cr_assert_eq(run_exe("-n -5", err, sizeof(err)), 2);
    cr_assert_eq(run_exe("--format xml", err, sizeof(err)), 2);
    cr_assert_eq(run_exe("--bogus", err, sizeof(err)), 2);
    cr_assert_eq(run_exe("--load only-one.npy", err, sizeof(err)), 2);
    cr_assert_eq(run_exe("--help", err, sizeof(err)), 0);
}

/* Every numeric option takes digits only: strtoull skipped the space in " -1" and wrapped it to
 * 2^64 - 1 (--block ran with it; -n said "out of memory"). --seed is decimal too. */
Test(npy, cli_numbers_are_digits_only)
{
    static const char *const bad[] = {
        "--block ' -1' -n 50", "-n ' -5'", "-j ' -1' -n 4", "--repeat ' -1' -n 4", "-n ' 5'",
        "-n +5", "-m -3 -n 4", "-k '\t7' -n 4", "-n 5x", "-n ''",
        "--seed -1 -n 4", "--seed ' 1' -n 4", "--seed +1 -n 4", "--seed 0x10 -n 4",
        "--seed 18446744073709551616 -n 4",
    };
    char err[2048];
    size_t i;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(run_exe(bad[i], err, sizeof(err)), 2, "%s: %s", bad[i], err);
        cr_assert(strstr(err, "is not a") != NULL, "%s: %s", bad[i], err);
    }
    /* Leading zeros are still decimal (08 was refused as bad octal), and 2^64 - 1 fits. */
    cr_assert_eq(run_exe("--seed 08 -n 2 --repeat 1", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(run_exe("--seed 18446744073709551615 -n 2 --repeat 1", err, sizeof(err)), 0,
                 "%s", err);
}

/* Sizes whose buffers cannot be addressed are a bad command line (2), named as such, not
 * "out of memory" (4). */
Test(npy, cli_sizes_overflowing_size_t_are_usage_errors)
{
    char err[2048];

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    cr_assert_eq(run_exe("-n 4294967296", err, sizeof(err)), 2, "%s", err);
    cr_assert(strstr(err, "-n: 4294967296 x 4294967296 doubles overflow the address space") !=
                  NULL,
              "%s", err);
    cr_assert_eq(run_exe("-m 3 -k 2305843009213693952 -n 1", err, sizeof(err)), 2, "%s", err);
    cr_assert(strstr(err, "-m/-k: 3 x 2305843009213693952 doubles") != NULL, "%s", err);
}

/* Run a shell command line (the executable is $E in it); returns its exit status, stderr in
 * `err`. */
static int
run_sh(const char *line, char *err, size_t err_len)
{
    char cmd[1024];

    (void)snprintf(cmd, sizeof(cmd), "E='%s'; %s", getenv("JOBQ_MATMUL_EXE"), line);
    return run_cmd(cmd, err, err_len);
}

/* Results that cannot be written to standard output are a failure (3, like --save), with a
 * message; --help and --version too. */
Test(npy, cli_stdout_write_errors_fail)
{
    char err[2048];

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    cr_assert_eq(run_sh("\"$E\" -n 3 >/dev/full", err, sizeof(err)), 3, "%s", err);
    cr_assert(strstr(err, "standard output") != NULL, "%s", err);
    cr_assert_eq(run_sh("\"$E\" -n 3 --format json >/dev/full", err, sizeof(err)), 3, "%s",
                 err);
    cr_assert_eq(run_sh("\"$E\" --help >/dev/full", err, sizeof(err)), 3, "%s", err);
    cr_assert_eq(run_sh("\"$E\" -n 3 >/dev/null", err, sizeof(err)), 0, "%s", err);
}

/* A speed-up needs a 1-thread run of the same size: a lone -j 2 run shows none (blank, empty,
 * null), a lone -j 1 run is its own baseline (1.00). */
Test(npy, cli_speedup_only_with_a_baseline)
{
    char out[4096], err[2048];

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    cr_assert_eq(run_exe_out("-n 8 -j 2 --repeat 1 --format csv", out, sizeof(out), err,
                             sizeof(err)),
                 0, "%s", err);
    /* gflops,speedup,verify: the speed-up field is empty. */
    cr_assert(strstr(out, ",,skipped,") != NULL, "%s", out);
    cr_assert_eq(run_exe_out("-n 8 -j 2 --repeat 1 --format json", out, sizeof(out), err,
                             sizeof(err)),
                 0, "%s", err);
    cr_assert(strstr(out, "\"speedup\": null,") != NULL, "%s", out);
    cr_assert_eq(run_exe_out("-n 8 -j 2 --repeat 1", out, sizeof(out), err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(strstr(out, "x  skipped") == NULL && strstr(out, "skipped") != NULL, "%s", out);
    cr_assert_eq(run_exe_out("-n 8 -j 1 --repeat 1 --format csv", out, sizeof(out), err,
                             sizeof(err)),
                 0, "%s", err);
    cr_assert(strstr(out, ",1.000,skipped,") != NULL, "%s", out);
}

/* A valid file too large for memory is "out of memory", exit 4 as --help says (it was 3, as if
 * the file were bad). The 512 MiB file is sparse; the address space is capped at 256 MiB. */
Test(npy, cli_valid_input_too_large_for_memory_exits_4, .timeout = 60)
{
    char line[512], err[2048];
    const char *big;
    FILE *f;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("a sanitizer's shadow memory does not fit under ulimit -v");
#endif
    big = write_npy("big.npy", 1, GOOD_HDR("(8192, 8192)"), 0);
    f = fopen(big, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    cr_assert_eq(ftruncate(fileno(f), ftell(f) + (off_t)8192 * 8192 * 8), 0);
    cr_assert_eq(fclose(f), 0);
    (void)write_npy("col.npy", 1, GOOD_HDR("(8192, 1)"), 8192);
    (void)snprintf(line, sizeof(line), "ulimit -v 262144 && \"$E\" --load '%s' '%s' -j 1",
                   path_of("big.npy"), path_of("col.npy"));
    cr_assert_eq(run_sh(line, err, sizeof(err)), 4, "%s", err);
    cr_assert(strstr(err, "big.npy: out of memory") != NULL, "%s", err);
}

/* --save onto one of the inputs works (the input is read first, the output renamed into
 * place), and a --save that fails exits 3 even when the verification failed too (3 over 1). */
Test(npy, cli_save_onto_input_and_save_failure_outranks_verify)
{
    char args[1024], err[2048], why[256], a[160];
    const char *b;
    double *c = NULL, *va, *vb;
    size_t r, cols, p;
    FILE *f;
    int rc;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    /* [[0 1 2] [3 4 5]], copied: path_of's buffers are reused by run_exe. */
    (void)snprintf(a, sizeof(a), "%s", write_npy("ia.npy", 1, GOOD_HDR("(2, 3)"), 6));
    b = write_npy("ib.npy", 1, GOOD_HDR("(3, 1)"), 3); /* [[0] [1] [2]] */
    (void)snprintf(args, sizeof(args), "--load '%s' '%s' --save '%s'", a, b, a);
    cr_assert_eq(run_exe(args, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mm_npy_load(a, &c, &r, &cols, why, sizeof(why)), 0, "%s", why);
    cr_assert(r == 2 && cols == 1 && c[0] == 5.0 && c[1] == 14.0);
    free(c);

    /* 1 x 514 by 514 x 1: a_0 = a_512 = DBL_MAX, a_513 = -DBL_MAX, B ones. The naive reference
     * overflows to +Inf, jobq_matmul (k blocks of 512) gets DBL_MAX: verification fails
     * (exit 1) where the reference is the naive loop; OpenBLAS may agree with C (exit 0). */
    va = calloc(514, sizeof(double));
    vb = malloc(514 * sizeof(double));
    cr_assert(va != NULL && vb != NULL);
    for (p = 0; p < 514; p++)
        vb[p] = 1.0;
    va[0] = va[512] = 1.7976931348623157e308;
    va[513] = -va[0];
    cr_assert_eq(mm_npy_save(path_of("va.npy"), va, 1, 514, 514, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(mm_npy_save(path_of("vb.npy"), vb, 514, 1, 1, why, sizeof(why)), 0, "%s", why);
    free(va);
    free(vb);
    (void)snprintf(args, sizeof(args), "--load '%s' '%s' --verify -j 1",
                   path_of("va.npy"), path_of("vb.npy"));
    rc = run_exe(args, err, sizeof(err));
    cr_assert(rc == 0 || rc == 1, "exit %d: %s", rc, err);
    if (rc == 1)
        cr_assert(strstr(err, "outside the bound") != NULL, "%s", err);
    (void)snprintf(args, sizeof(args), "--load '%s' '%s' --verify -j 1 --save '%s'",
                   path_of("va.npy"), path_of("vb.npy"), path_of("nodir/c.npy"));
    cr_assert_eq(run_exe(args, err, sizeof(err)), 3, "%s", err);
    cr_assert(strstr(err, "nodir/c.npy: cannot") != NULL, "%s", err);
    f = fopen(path_of("nodir/c.npy"), "rb");
    cr_assert_null(f);
}

#define CSV_HEAD "m,k,n,threads,kernel,best_s,median_s,gflops,speedup,verify,failures,max_ratio\n"

/* The text after the i-th comma of line (field i, counting from 0). */
static const char *
csv_field(const char *line, int i)
{
    while (i-- > 0 && line != NULL) {
        line = strchr(line, ',');
        if (line != NULL)
            line++;
    }
    return line != NULL ? line : "";
}

/* The exercise (no size given): N = 128, 256, 512, each on 1 thread and on all cores, every row
 * verified, speed-up 1 on the 1-thread rows. Plain builds only: under a sanitizer the N = 512
 * rows alone take minutes. */
Test(npy, cli_exercise_without_arguments, .timeout = 120)
{
    char out[4096], err[2048], line[256];
    unsigned long m, k, n, t, rows = 0, seen[3] = {0, 0, 0};
    const char *p;
    double speedup;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("the exercise's N = 512 runs take minutes under a sanitizer");
#endif
    cr_assert_eq(run_exe_out("--format csv", out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    p = strchr(out, '\n');
    cr_assert_not_null(p, "%s", out);
    cr_assert(strncmp(out, CSV_HEAD, strlen(CSV_HEAD)) == 0, "%s", out);
    for (p = p + 1; *p != '\0'; p = strchr(p, '\n') + 1) {
        size_t len = (size_t)(strchr(p, '\n') - p);

        cr_assert(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        cr_assert_eq(sscanf(line, "%lu,%lu,%lu,%lu,", &m, &k, &n, &t), 4, "%s", line);
        cr_assert(m == k && k == n && (n == 128 || n == 256 || n == 512), "%s", line);
        seen[n == 128 ? 0 : n == 256 ? 1 : 2]++;
        cr_assert(strstr(line, ",ok,0,") != NULL, "not verified: %s", line);
        cr_assert_eq(sscanf(csv_field(line, 8), "%lf", &speedup), 1, "%s", line);
        if (t == 1)
            cr_assert_eq(speedup, 1.0, "%s", line);
        rows++;
    }
    /* One row per size on a 1-core machine, two elsewhere. */
    cr_assert(rows == 3 || rows == 6, "%lu rows:\n%s", rows, out);
    cr_assert(seen[0] == rows / 3 && seen[1] == rows / 3 && seen[2] == rows / 3, "%s", out);
}

/* -m -k -n, --block, --dispatch, --repeat, --seed, --format json, --save with random inputs. */
Test(npy, cli_options_shape_the_run, .timeout = 120)
{
    char args[512], out[4096], err[2048], why[256];
    double *c = NULL, best, median;
    size_t r, cols;

    if (getenv("JOBQ_MATMUL_EXE") == NULL)
        cr_skip_test("JOBQ_MATMUL_EXE not set (jobq-matmul not built)");
    /* A 7 x 5 by 5 x 3 product in tasks of 2 rows, through a group: saved as 7 x 3, verified. */
    (void)snprintf(args, sizeof(args),
                   "-m 7 -k 5 -n 3 -j 2 --block 2 --dispatch group --seed 9 --verify "
                   "--format json --repeat 1 --save '%s'", path_of("s9.npy"));
    cr_assert_eq(run_exe_out(args, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert(out[0] == '[' && strstr(out, "\"m\": 7, \"k\": 5, \"n\": 3, \"threads\": 2") != NULL,
              "%s", out);
    cr_assert(strstr(out, "\"verify\": \"ok\", \"failures\": 0") != NULL, "%s", out);
    /* One round: its time is both the best and the median. */
    cr_assert_eq(sscanf(strstr(out, "\"best_s\": "), "\"best_s\": %lf, \"median_s\": %lf",
                        &best, &median), 2, "%s", out);
    cr_assert_eq(best, median, "%s", out);
    cr_assert_eq(mm_npy_load(path_of("s9.npy"), &c, &r, &cols, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(r, 7);
    cr_assert_eq(cols, 3);
    free(c);

    /* The same seed gives the same product whatever the threads and blocks; another seed does
     * not. Five rounds: best <= median. */
    (void)snprintf(args, sizeof(args),
                   "-m 7 -k 5 -n 3 -j 1 --seed 9 --repeat 5 --format json --save '%s'",
                   path_of("s9b.npy"));
    cr_assert_eq(run_exe_out(args, out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sscanf(strstr(out, "\"best_s\": "), "\"best_s\": %lf, \"median_s\": %lf",
                        &best, &median), 2, "%s", out);
    cr_assert(best <= median, "%s", out);
    /* Not verified: no ratio to report. */
    cr_assert(strstr(out, "\"verify\": \"skipped\", \"failures\": 0, \"max_ratio\": null}") !=
                  NULL,
              "%s", out);
    cr_assert(same_file(path_of("s9.npy"), path_of("s9b.npy")));
    (void)snprintf(args, sizeof(args), "-m 7 -k 5 -n 3 --seed 10 --save '%s'",
                   path_of("s10.npy"));
    cr_assert_eq(run_exe(args, err, sizeof(err)), 0, "%s", err);
    cr_assert(!same_file(path_of("s9.npy"), path_of("s10.npy")));

    /* csv: a header and one row; not verified, so the ratio field is empty. The table says
     * only "skipped" then. */
    cr_assert_eq(run_exe_out("-n 4 -j 1 --format csv", out, sizeof(out), err, sizeof(err)), 0,
                 "%s", err);
    cr_assert(strncmp(out, CSV_HEAD, strlen(CSV_HEAD)) == 0, "%s", out);
    cr_assert(strstr(out, "\n4,4,4,1,") != NULL, "%s", out);
    cr_assert(strstr(out, ",skipped,0,\n") != NULL, "%s", out);
    cr_assert_eq(run_exe_out("-n 4 -j 1 --verify --format csv", out, sizeof(out), err,
                             sizeof(err)),
                 0, "%s", err);
    cr_assert(strstr(out, ",ok,0,\n") == NULL && strstr(out, ",ok,0,") != NULL, "%s", out);
    cr_assert_eq(run_exe_out("-n 4 -j 1", out, sizeof(out), err, sizeof(err)), 0, "%s", err);
    cr_assert(strstr(out, "skipped\n") != NULL, "%s", out);
}
