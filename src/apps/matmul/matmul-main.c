/*
 * matmul-main.c - jobq-matmul: the matrix-multiply exercise and a command-line multiplier.
 *
 * Design: parse options, build the inputs (random from --seed, or two .npy files), then for each
 * (size, thread count) create a pool, run jobq_matmul --repeat times (best and median wall time),
 * optionally verify against a reference, and print one row per run as a table, JSON or CSV.
 * "-j T" means T computing threads: under the default parallel_for dispatch the calling thread
 * computes too, so the pool gets T-1 workers (none for T = 1); under --dispatch group it gets T.
 * The reference for --verify is OpenBLAS when the build found it, else the library's naive
 * loop; the check is the element-wise bound of jobq_matmul_verify, never bit equality.
 * Each configuration gets ~50 ms of untimed warm-up runs before the --repeat timed ones.
 * Bad input files are reported with the file name and reason; the exit status tells what failed.
 * When several things fail in one run, the highest status wins (4 over 3 over 1): a file that
 * could not be written must not hide behind a verification failure, and both are reported.
 * Standard output is checked at the end (fflush, ferror): results that never reached the
 * terminal or the file they were redirected to are a failure, not a success.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jobq.h>
#include <jobq/matmul.h>

#include "npy.h"

#ifdef JOBQ_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
#endif

enum {
    EXIT_OK = 0,
    EXIT_VERIFY = 1, /* --verify found elements outside the bound */
    EXIT_USAGE = 2,  /* bad command line */
    EXIT_FILE = 3,   /* an input file was refused or unreadable, or an output (--save, standard
                      * output) could not be written */
    EXIT_RUN = 4,    /* the multiply itself failed (out of memory, pool error), or a valid input
                      * is too large to hold in memory */
};

enum fmt { FMT_TABLE, FMT_JSON, FMT_CSV };

struct opts {
    size_t m, n, k;
    unsigned threads; /* 0: default */
    size_t block;
    unsigned repeat;
    enum fmt format;
    int verify;
    uint64_t seed;
    jobq_matmul_kernel kernel;
    jobq_matmul_dispatch dispatch;
    const char *load_a, *load_b, *save_c;
};

struct result {
    size_t m, n, k;
    unsigned threads;
    double best_s, median_s, gflops;
    double speedup; /* over the 1-thread run of the same size; NAN when there is none */
    const char *verify; /* "ok", "FAILED", "skipped" */
    size_t failures;
    double max_ratio;
};

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: jobq-matmul [options]\n"
            "       jobq-matmul --load A.npy B.npy [--save C.npy] [options]\n"
            "\n"
            "C = A x B for double matrices, split into row blocks run by a jobq thread pool.\n"
            "Without a size or --load: the exercise - N = 128, 256, 512 with random inputs, each\n"
            "on 1 thread and on all cores, timed and verified.\n"
            "\n"
            "  -n N                square N x N (or, with -m/-k, the columns of B and C)\n"
            "  -m M, -k K          rows of A and C; columns of A = rows of B\n"
            "  -j, --threads T     computing threads (default: every usable core, %u here)\n"
            "  --block ROWS        rows of C per task (default: automatic)\n"
            "  --repeat R          run R times, report best and median (default 3, or as many\n"
            "                      as fit in about 0.1 s, at most 1000, for fast sizes)\n"
            "  --format F          table (default), json or csv\n"
            "  --verify            check C against a reference (%s) with |C-R| <= 2 k u |A||B|\n"
            "  --seed S            seed of the random inputs (default 1)\n"
            "  --kernel K          auto (default), generic, avx2, avx512\n"
            "  --dispatch D        pfor (default: parallel_for, caller computes) or group\n"
            "  --load A.npy B.npy  multiply two .npy files (float64 '<f8', C order, 2-D)\n"
            "  --save C.npy        write the product (with --load, or with random inputs)\n"
            "  -h, --help          this text\n"
            "  -V, --version       version\n"
            "\n"
            "Sizes, -j, --block and --repeat are positive decimal integers, --seed a decimal\n"
            "integer >= 0 (no sign, no leading spaces). The speed-up is over the 1-thread run of\n"
            "the same size; it is left blank (CSV: empty, JSON: null) when there is none.\n"
            "\n"
            "Exit status: 0 success; 1 verification failed; 2 bad command line (also sizes too\n"
            "large to address); 3 an input file was refused or unreadable (the message names\n"
            "the file and the reason), or an output could not be written (--save, standard\n"
            "output); 4 the multiply failed (out of memory - also for a valid input too large\n"
            "to load - or a pool error). When several apply, the highest wins.\n",
            jobq_cpu_count(),
#ifdef JOBQ_HAVE_OPENBLAS
            "OpenBLAS"
#else
            "the naive triple loop"
#endif
    );
}

/*
 * A decimal integer made of digits only: 0, or -1 without a message. strtoull alone will not
 * do: it skips leading whitespace and accepts a sign, negating "-1" (or " -1") into 2^64 - 1,
 * so the first character must be a digit.
 */
static int
parse_digits(const char *s, unsigned long long *ret)
{
    unsigned long long v;
    char *end;

    if (!isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *ret = v;
    return 0;
}

static int
parse_size(const char *opt, const char *s, size_t *ret)
{
    unsigned long long v;

    if (s == NULL) {
        fprintf(stderr, "jobq-matmul: %s needs a value\n", opt);
        return -1;
    }
    if (parse_digits(s, &v) != 0 || v == 0 || v > SIZE_MAX) {
        fprintf(stderr, "jobq-matmul: %s: '%s' is not a positive integer\n", opt, s);
        return -1;
    }
    *ret = (size_t)v;
    return 0;
}

/* Whether rows x cols doubles fit in size_t bytes. */
static int
doubles_fit(size_t rows, size_t cols)
{
    return cols != 0 && rows <= SIZE_MAX / sizeof(double) / cols;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: a fixed, portable stream for a given seed. */
static double
rand_unit(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1p-53 * 2.0 - 1.0;
}

static double *
random_matrix(size_t rows, size_t cols, uint64_t *state)
{
    double *p;
    size_t i;

    if (!doubles_fit(rows, cols))
        return NULL;
    p = malloc(rows * cols * sizeof(double));
    if (p == NULL)
        return NULL;
    for (i = 0; i < rows * cols; i++)
        p[i] = rand_unit(state);
    return p;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Run one configuration; returns an EXIT_* code. *c_out keeps the last product. */
static int
run_one(const struct opts *o, unsigned threads, size_t m, size_t n, size_t k, const double *A,
        const double *B, double *C, struct result *res)
{
    jobq_pool_options po;
    jobq_matmul_options mo;
    jobq_pool *pool = NULL;
    double *times = NULL, t, warm_start, warm_end;
    unsigned r, workers, repeat, warm_runs;
    int err;

    workers = o->dispatch == JOBQ_MATMUL_GROUP ? threads : threads - 1;
    if (workers > 0) {
        jobq_pool_options_init(&po);
        po.threads = workers;
        po.name = "matmul";
        err = jobq_pool_create(&pool, &po);
        if (err != 0) {
            fprintf(stderr, "jobq-matmul: cannot start %u thread%s: %s\n", workers,
                    workers == 1 ? "" : "s", jobq_strerror(err));
            return EXIT_RUN;
        }
    }
    jobq_matmul_options_init(&mo);
    mo.block_rows = o->block;
    mo.kernel = o->kernel;
    mo.dispatch = o->dispatch;
    /* The repeats share one workspace: a later call does not fault its buffers in again. */
    if (jobq_matmul_workspace_create(&mo.workspace) != 0) {
        jobq_pool_destroy(pool);
        fprintf(stderr, "jobq-matmul: out of memory\n");
        return EXIT_RUN;
    }
    /* Untimed runs first (at least one, ~50 ms in all): they fault in C and the library's
     * buffers, wake the workers and let the CPU clock ramp up, which would otherwise land in
     * the first timings. */
    warm_start = now_s();
    warm_end = warm_start + 0.05;
    warm_runs = 0;
    do {
        err = jobq_matmul(pool, m, n, k, A, k, B, n, C, n, &mo);
        warm_runs++;
    } while (err == 0 && now_s() < warm_end);
    /* Default: 3 runs, or as many as fit in about 0.1 s (at most 1000) for fast sizes, where
     * three samples of tens of microseconds say more about the machine than the multiply. */
    repeat = o->repeat;
    if (repeat == 0) {
        t = (now_s() - warm_start) / (double)warm_runs;
        repeat = t > 0 && 0.1 / t > 3 ? (0.1 / t < 1000 ? (unsigned)(0.1 / t) : 1000) : 3;
    }
    times = calloc(repeat, sizeof(double));
    if (times == NULL) {
        jobq_matmul_workspace_destroy(mo.workspace);
        jobq_pool_destroy(pool);
        fprintf(stderr, "jobq-matmul: out of memory\n");
        return EXIT_RUN;
    }
    for (r = 0; err == 0 && r < repeat; r++) {
        t = now_s();
        err = jobq_matmul(pool, m, n, k, A, k, B, n, C, n, &mo);
        times[r] = now_s() - t;
    }
    jobq_matmul_workspace_destroy(mo.workspace);
    {
        if (err != 0) {
            fprintf(stderr, "jobq-matmul: multiply %zu x %zu x %zu failed: %s\n", m, k, n,
                    jobq_strerror(err));
            free(times);
            jobq_pool_destroy(pool);
            return EXIT_RUN;
        }
    }
    qsort(times, repeat, sizeof(double), cmp_double);
    res->m = m;
    res->n = n;
    res->k = k;
    res->threads = threads;
    res->best_s = times[0];
    res->median_s = repeat % 2 ? times[repeat / 2]
                               : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
    res->gflops = 2.0 * (double)m * (double)n * (double)k / res->best_s * 1e-9;
    res->speedup = NAN; /* set by the caller, which knows the baseline */
    res->verify = "skipped";
    res->failures = 0;
    res->max_ratio = 0.0;
    free(times);

    if (o->verify) {
        jobq_matmul_check check;
        double *R = malloc(m * n * sizeof(double));

        if (R == NULL) {
            jobq_pool_destroy(pool);
            fprintf(stderr, "jobq-matmul: out of memory for the reference\n");
            return EXIT_RUN;
        }
        err = 0;
#ifdef JOBQ_HAVE_OPENBLAS
        /* cblas takes int sizes: beyond them the naive reference does the job. */
        if (m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX) {
            openblas_set_num_threads((int)threads);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0,
                        A, (int)k, B, (int)n, 0.0, R, (int)n);
            if (threads > 1) {
                /* OpenBLAS's threads spin ~2^28 cycles after a call: let them go to sleep
                 * before the next configuration is timed, or they take a core from it. */
                struct timespec quiet = {0, 150 * 1000 * 1000L};

                (void)nanosleep(&quiet, NULL);
            }
        } else
#endif
            err = jobq_matmul_reference(pool, m, n, k, A, k, B, n, R, n);
        if (err == 0)
            err = jobq_matmul_verify(pool, m, n, k, A, k, B, n, C, n, R, n, &check);
        free(R);
        if (err != 0) {
            jobq_pool_destroy(pool);
            fprintf(stderr, "jobq-matmul: verification could not run: %s\n", jobq_strerror(err));
            return EXIT_RUN;
        }
        res->failures = check.failures;
        res->max_ratio = check.max_ratio;
        res->verify = check.failures == 0 ? "ok" : "FAILED";
        if (check.failures > 0)
            fprintf(stderr,
                    "jobq-matmul: %zu x %zu x %zu: %zu element%s outside the bound, first "
                    "C[%zu][%zu] = %.17g vs reference %.17g\n",
                    m, k, n, check.failures, check.failures == 1 ? "" : "s", check.first_row,
                    check.first_col, check.first_c, check.first_r);
    }
    jobq_pool_destroy(pool);
    return res->failures > 0 ? EXIT_VERIFY : EXIT_OK;
}

static void
print_header(enum fmt f)
{
    if (f == FMT_TABLE)
        printf("%6s %6s %6s %7s %11s %11s %9s %8s  %s\n", "m", "k", "n", "threads", "best_s",
               "median_s", "GFLOP/s", "speedup", "verify (max |C-R|/bound)");
    else if (f == FMT_CSV)
        printf("m,k,n,threads,kernel,best_s,median_s,gflops,speedup,verify,failures,max_ratio\n");
    else
        printf("[");
}

static void
print_row(enum fmt f, const struct result *r, const char *kernel, int first)
{
    /* Without a verification there is no ratio to show: the table shows none, CSV an empty
     * field and JSON null. JSON has no inf or nan either (a NaN in C, or a difference where the
     * bound is 0, makes the ratio infinite): null stands for them too. */
    int checked = strcmp(r->verify, "skipped") != 0;
    char ratio[32] = "", speedup[32] = "";

    if (checked && (f != FMT_JSON || isfinite(r->max_ratio)))
        (void)snprintf(ratio, sizeof(ratio), f == FMT_TABLE ? " (%.3g)" : "%.6g", r->max_ratio);
    else if (f == FMT_JSON)
        (void)snprintf(ratio, sizeof(ratio), "null");
    /* Likewise a speed-up needs a 1-thread run of the same size to compare with: "-n 512 -j 2"
     * alone has none, and 1.00x would claim that 2 threads are no faster than one. */
    if (!isnan(r->speedup))
        (void)snprintf(speedup, sizeof(speedup), f == FMT_TABLE ? "%7.2fx" : "%.3f", r->speedup);
    else if (f == FMT_JSON)
        (void)snprintf(speedup, sizeof(speedup), "null");
    if (f == FMT_TABLE)
        printf("%6zu %6zu %6zu %7u %11.6f %11.6f %9.2f %8s  %s%s\n", r->m, r->k, r->n,
               r->threads, r->best_s, r->median_s, r->gflops, speedup, r->verify, ratio);
    else if (f == FMT_CSV)
        printf("%zu,%zu,%zu,%u,%s,%.9f,%.9f,%.3f,%s,%s,%zu,%s\n", r->m, r->k, r->n, r->threads,
               kernel, r->best_s, r->median_s, r->gflops, speedup, r->verify, r->failures, ratio);
    else {
        printf("%s\n  {\"m\": %zu, \"k\": %zu, \"n\": %zu, \"threads\": %u, \"kernel\": \"%s\", "
               "\"best_s\": %.9f, \"median_s\": %.9f, \"gflops\": %.3f, \"speedup\": %s, "
               "\"verify\": \"%s\", \"failures\": %zu, \"max_ratio\": %s}",
               first ? "" : ",", r->m, r->k, r->n, r->threads, kernel, r->best_s, r->median_s,
               r->gflops, speedup, r->verify, r->failures, ratio);
    }
}

static void
print_footer(enum fmt f)
{
    if (f == FMT_JSON)
        printf("\n]\n");
}

/* Load one input; returns an EXIT_* code: a file that is fine but too large for memory is
 * EXIT_RUN (out of memory, as --help says), anything else wrong with it EXIT_FILE. */
static int
load_file(const char *path, double **data, size_t *rows, size_t *cols)
{
    char why[256];
    int err;

    err = mm_npy_load(path, data, rows, cols, why, sizeof(why));
    if (err != 0) {
        fprintf(stderr, "jobq-matmul: %s: %s\n", path, why);
        return err == JOBQ_ENOMEM ? EXIT_RUN : EXIT_FILE;
    }
    return EXIT_OK;
}

/*
 * Flush standard output and return `status`, or EXIT_FILE (or status, if higher) when anything
 * written to it was lost: printf's errors only show in the stream's error flag, and a full disk
 * or a closed descriptor would otherwise exit 0 with the results gone.
 */
static int
finish_stdout(int status)
{
    int e;

    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return status;
    e = errno;
    if (e != 0)
        fprintf(stderr, "jobq-matmul: cannot write to standard output: %s\n", strerror(e));
    else
        fprintf(stderr, "jobq-matmul: cannot write to standard output\n");
    return status > EXIT_FILE ? status : EXIT_FILE;
}

/* "-n", or "-m/-k" when a matrix's two sizes came from different options. */
static const char *
dims_label(char *buf, size_t len, const char *rows_opt, const char *cols_opt)
{
    if (strcmp(rows_opt, cols_opt) == 0)
        return rows_opt;
    (void)snprintf(buf, len, "%s/%s", rows_opt, cols_opt);
    return buf;
}

int
main(int argc, char **argv)
{
    static const size_t exercise[] = {128, 256, 512};
    struct opts o;
    struct result res, base = {0};
    const char *kernel_name;
    double *A = NULL, *B = NULL, *C = NULL;
    size_t sizes[3], nsizes, s, ar, ac, br, bc;
    unsigned thread_list[2], nthreads, t, cores;
    int i, status = EXIT_OK, rc, first = 1, have_size = 0, given_m = 0, given_n = 0, given_k = 0;
    uint64_t state;

    memset(&o, 0, sizeof(o));
    o.repeat = 0; /* automatic, see run_one */
    o.seed = 1;
    o.kernel = JOBQ_MATMUL_KERNEL_AUTO;
    o.dispatch = JOBQ_MATMUL_PARALLEL_FOR;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t val;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return finish_stdout(EXIT_OK);
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("jobq-matmul %s (kernel %s)\n", JOBQ_VERSION_STRING,
                   jobq_matmul_kernel_name(jobq_matmul_kernel_best()));
            return finish_stdout(EXIT_OK);
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "-m") == 0 || strcmp(a, "-k") == 0) {
            if (parse_size(a, v, &val) != 0)
                return EXIT_USAGE;
            if (a[1] == 'n') {
                o.n = val;
                given_n = 1;
            } else if (a[1] == 'm') {
                o.m = val;
                given_m = 1;
            } else {
                o.k = val;
                given_k = 1;
            }
            have_size = 1;
            i++;
        } else if (strcmp(a, "-j") == 0 || strcmp(a, "--threads") == 0) {
            if (parse_size(a, v, &val) != 0)
                return EXIT_USAGE;
            if (val > 4096) {
                fprintf(stderr, "jobq-matmul: %s: at most 4096 threads\n", a);
                return EXIT_USAGE;
            }
            o.threads = (unsigned)val;
            i++;
        } else if (strcmp(a, "--block") == 0) {
            if (parse_size(a, v, &o.block) != 0)
                return EXIT_USAGE;
            i++;
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_size(a, v, &val) != 0)
                return EXIT_USAGE;
            if (val > 100000) {
                fprintf(stderr, "jobq-matmul: --repeat: at most 100000\n");
                return EXIT_USAGE;
            }
            o.repeat = (unsigned)val;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            unsigned long long seed;

            /* Decimal only: base 0 took "-1" as 2^64 - 1, 0x10 as 16 and 010 as 8, and refused
             * 08 - none of which a seed on a command line means. */
            if (v == NULL) {
                fprintf(stderr, "jobq-matmul: --seed needs a value\n");
                return EXIT_USAGE;
            }
            if (parse_digits(v, &seed) != 0 || seed > UINT64_MAX) {
                fprintf(stderr, "jobq-matmul: --seed: '%s' is not a non-negative decimal "
                        "integer below 2^64\n", v);
                return EXIT_USAGE;
            }
            o.seed = (uint64_t)seed;
            i++;
        } else if (strcmp(a, "--format") == 0) {
            if (v != NULL && strcmp(v, "table") == 0)
                o.format = FMT_TABLE;
            else if (v != NULL && strcmp(v, "json") == 0)
                o.format = FMT_JSON;
            else if (v != NULL && strcmp(v, "csv") == 0)
                o.format = FMT_CSV;
            else {
                fprintf(stderr, "jobq-matmul: --format: need table, json or csv\n");
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--kernel") == 0) {
            if (v == NULL || jobq_matmul_kernel_parse(v, &o.kernel) != 0) {
                fprintf(stderr, "jobq-matmul: --kernel: need auto, generic, avx2 or avx512\n");
                return EXIT_USAGE;
            }
            if (!jobq_matmul_kernel_supported(o.kernel)) {
                fprintf(stderr, "jobq-matmul: --kernel %s: not supported by this CPU\n", v);
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--dispatch") == 0) {
            if (v != NULL && strcmp(v, "pfor") == 0)
                o.dispatch = JOBQ_MATMUL_PARALLEL_FOR;
            else if (v != NULL && strcmp(v, "group") == 0)
                o.dispatch = JOBQ_MATMUL_GROUP;
            else {
                fprintf(stderr, "jobq-matmul: --dispatch: need pfor or group\n");
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--verify") == 0) {
            o.verify = 1;
        } else if (strcmp(a, "--load") == 0) {
            if (i + 2 >= argc) {
                fprintf(stderr, "jobq-matmul: --load needs two files: A.npy B.npy\n");
                return EXIT_USAGE;
            }
            o.load_a = argv[i + 1];
            o.load_b = argv[i + 2];
            i += 2;
        } else if (strcmp(a, "--save") == 0) {
            if (v == NULL) {
                fprintf(stderr, "jobq-matmul: --save needs a file name\n");
                return EXIT_USAGE;
            }
            o.save_c = v;
            i++;
        } else {
            fprintf(stderr, "jobq-matmul: unknown option '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (o.load_a != NULL && have_size) {
        fprintf(stderr, "jobq-matmul: --load takes the sizes from the files; drop -m/-k/-n\n");
        return EXIT_USAGE;
    }
    if (o.save_c != NULL && o.load_a == NULL && !have_size) {
        fprintf(stderr, "jobq-matmul: --save needs --load or a size (-n)\n");
        return EXIT_USAGE;
    }
    cores = jobq_cpu_count();
    kernel_name = jobq_matmul_kernel_name(o.kernel == JOBQ_MATMUL_KERNEL_AUTO
                                              ? jobq_matmul_kernel_best()
                                              : o.kernel);

    if (o.load_a != NULL) {
        int bad = EXIT_OK;

        /* Both files are checked, so one run reports every bad input. */
        rc = load_file(o.load_a, &A, &ar, &ac);
        if (rc > bad)
            bad = rc;
        rc = load_file(o.load_b, &B, &br, &bc);
        if (rc > bad)
            bad = rc;
        if (bad == EXIT_OK && ac != br) {
            fprintf(stderr,
                    "jobq-matmul: %s: shape mismatch: A (%s) is %zu x %zu but B has %zu rows\n",
                    o.load_b, o.load_a, ar, ac, br);
            bad = EXIT_FILE;
        }
        if (bad == EXIT_OK && !doubles_fit(ar, bc)) {
            fprintf(stderr,
                    "jobq-matmul: --load: the product of %s and %s is %zu x %zu doubles, which "
                    "overflow the address space\n",
                    o.load_a, o.load_b, ar, bc);
            bad = EXIT_RUN;
        }
        if (bad != EXIT_OK) {
            free(A);
            free(B);
            return bad;
        }
        o.m = ar;
        o.k = ac;
        o.n = bc;
        have_size = 1;
    }

    if (have_size) {
        if (o.n == 0)
            o.n = o.m != 0 ? o.m : o.k;
        if (o.m == 0)
            o.m = o.n;
        if (o.k == 0)
            o.k = o.n;
        if (o.load_a == NULL) {
            /* Refuse sizes whose buffers cannot even be addressed before anything is printed:
             * they are a bad command line, not "out of memory". n came from -n, else from -m,
             * else -k; m and k default to n. */
            const char *on = given_n ? "-n" : given_m ? "-m" : "-k";
            const char *om = given_m ? "-m" : on, *ok = given_k ? "-k" : on;
            /* A (m x k), B (k x n), C (m x n). */
            const char *row_opt[3] = {om, ok, om}, *col_opt[3] = {ok, on, on};
            const size_t rows[3] = {o.m, o.k, o.m}, cols[3] = {o.k, o.n, o.n};
            char label[8];
            unsigned x;

            for (x = 0; x < 3; x++) {
                if (doubles_fit(rows[x], cols[x]))
                    continue;
                fprintf(stderr, "jobq-matmul: %s: %zu x %zu doubles overflow the address space\n",
                        dims_label(label, sizeof(label), row_opt[x], col_opt[x]), rows[x],
                        cols[x]);
                return EXIT_USAGE;
            }
        }
        nsizes = 1;
        sizes[0] = 0;
        thread_list[0] = o.threads != 0 ? o.threads : cores;
        nthreads = 1;
    } else {
        nsizes = 3;
        memcpy(sizes, exercise, sizeof(exercise));
        o.verify = 1;
        thread_list[0] = 1;
        thread_list[1] = o.threads != 0 ? o.threads : cores;
        nthreads = thread_list[1] != 1 ? 2 : 1;
    }

    if (o.format == FMT_TABLE) {
        if (o.repeat > 0)
            printf("# jobq-matmul %s: kernel %s, %u usable core%s, dispatch %s, %u repeat%s\n",
                   JOBQ_VERSION_STRING, kernel_name, cores, cores == 1 ? "" : "s",
                   o.dispatch == JOBQ_MATMUL_GROUP ? "group" : "parallel_for", o.repeat,
                   o.repeat == 1 ? "" : "s");
        else
            printf("# jobq-matmul %s: kernel %s, %u usable core%s, dispatch %s, repeats: 3, or "
                   "0.1 s worth for fast sizes\n",
                   JOBQ_VERSION_STRING, kernel_name, cores, cores == 1 ? "" : "s",
                   o.dispatch == JOBQ_MATMUL_GROUP ? "group" : "parallel_for");
    }
    print_header(o.format);
    for (s = 0; s < nsizes; s++) {
        size_t m = o.m, n = o.n, k = o.k;

        if (sizes[s] != 0)
            m = n = k = sizes[s];
        if (o.load_a == NULL) {
            state = o.seed;
            free(A);
            free(B);
            A = random_matrix(m, k, &state);
            B = random_matrix(k, n, &state);
        }
        free(C);
        C = n != 0 && m <= SIZE_MAX / sizeof(double) / n ? malloc(m * n * sizeof(double)) : NULL;
        if (A == NULL || B == NULL || C == NULL) {
            fprintf(stderr, "jobq-matmul: out of memory for %zu x %zu x %zu\n", m, k, n);
            status = EXIT_RUN;
            break;
        }
        for (t = 0; t < nthreads; t++) {
            rc = run_one(&o, thread_list[t], m, n, k, A, B, C, &res);
            if (rc == EXIT_RUN) {
                status = EXIT_RUN;
                break;
            }
            if (rc == EXIT_VERIFY && status == EXIT_OK)
                status = EXIT_VERIFY;
            /* The first run of a size is the baseline only when it is the 1-thread one (always
             * so in the exercise); a single "-j T" run has nothing to compare with. */
            if (t == 0) {
                if (res.threads == 1)
                    res.speedup = 1.0;
                base = res;
            } else if (base.threads == 1) {
                res.speedup = base.best_s / res.best_s;
            }
            print_row(o.format, &res, kernel_name, first);
            first = 0;
        }
        if (status == EXIT_RUN)
            break;
    }
    print_footer(o.format);
    if (o.save_c != NULL && status == EXIT_RUN) {
        fprintf(stderr, "jobq-matmul: %s: not written (no product)\n", o.save_c);
    } else if (o.save_c != NULL) {
        char why[256];

        /* A failed save outranks a failed verification (3 over 1): the file the user asked
         * for is missing either way, and the verification message is already out. */
        if (mm_npy_save(o.save_c, C, o.m, o.n, o.n, why, sizeof(why)) != 0) {
            fprintf(stderr, "jobq-matmul: %s: %s\n", o.save_c, why);
            if (status < EXIT_FILE)
                status = EXIT_FILE;
        }
    }
    free(A);
    free(B);
    free(C);
    return finish_stdout(status);
}
