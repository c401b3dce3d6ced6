/*
 * bench-matmul.c - GFLOP/s of jobq_matmul against OpenBLAS cblas_dgemm in the same run.
 *
 * Question: how close is the pooled row-block multiply to OpenBLAS, on 1 thread and on all
 * cores, for square N? Each (N, threads) row set is measured in PASSES interleaved passes;
 * in a pass every implementation runs its share of the rounds back to back (after one warm-up
 * call each), so that drift of the machine (frequency, neighbours) hits all of them alike while
 * no implementation's threads run during another's calls: OpenBLAS's threads keep spinning
 * (with sched_yield) for about 2^28 cycles after each call, which on 2 cores took a core from
 * whatever ran next when every round called every implementation once. After an OpenBLAS block
 * the bench sleeps OPENBLAS_QUIET_US for them to go to sleep, and every block starts with
 * WARM_S of untimed calls. Best and median are reported.
 * Implementations:
 *   jobq        jobq_matmul, automatic kernel, parallel_for dispatch (pool of T-1 + caller)
 *   jobq-group  the same through a jobq_group (pool of T workers, caller waits)
 *   jobq-avx2   jobq_matmul forced to the AVX2 kernel: the same instruction set as the OpenBLAS
 *               kernel Debian's build picks here (see the '# openblas core' line)
 *   openblas    cblas_dgemm with openblas_set_num_threads(T)
 *   naive-ijk   the textbook triple loop, rows spread over the pool (N <= 1024 only)
 *   transposed  B transposed once, then row-by-row dot products, rows over the pool (N <= 1024)
 * ratio_openblas = openblas best time / this best time (> 1: faster than OpenBLAS).
 * After each (N, T) row set a '# machine' line gives the host's steal and the other processes'
 * share of all CPU time during it (bench.h), so that a row set hit by the host shows as such.
 * After the rows, '# speed-up' lines give best time on 1 thread / best time on T threads for
 * jobq and OpenBLAS, next to the machine's own ceiling measured in the same run (at the start
 * and at the end): how much faster T threads run a register-only FMA loop (no memory traffic)
 * at once than one thread alone. On a VM whose vCPUs share physical cores or are descheduled
 * by the host, that ceiling is below T, and no multiply can beat it.
 * OpenBLAS reads OPENBLAS_CORETYPE when it is loaded; an environment that forces a core (this
 * development machine sets Haswell, i.e. AVX2 only, on an AVX-512 CPU) would handicap the peer.
 * So unless --keep-openblas-coretype is given, the bench re-executes itself once without that
 * variable and says so in a '#' line: OpenBLAS then picks its own best kernel.
 * Usage: bench-matmul [--sizes 128,256,...] [--threads 1,2] [--rounds R]
 *                     [--impls jobq,openblas,...] [--keep-openblas-coretype] [--help]
 * --impls keeps only the named implementations (for quick comparisons, e.g. a tuning sweep);
 * an implementation that does not apply (no OpenBLAS, baselines above N = 1024) stays out.
 * --rounds R is used exactly as given (1 .. MAX_ROUNDS; rounds r go to pass r % PASSES, so with
 * R < PASSES only the first R passes time anything); without it the bench picks ~0.4 s worth,
 * PASSES at least. Option values are parsed strictly: a bad one is a usage error (exit 2).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>
#include <jobq/matmul.h>

#include "../bench.h"

#ifdef JOBQ_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif

#define BASELINE_MAX_N 1024
#define MAX_IMPLS 6
#define MAX_ROUNDS 200
/* Command-line limits: entries per list (the bests table is sized by them), the largest N
 * (three N x N doubles plus B^T must fit in memory: 4 x 8 x 32768^2 bytes is 32 GiB) and the
 * most threads (each T also runs the compute ceiling with T threads at once). */
#define MAX_SIZES 32
#define MAX_THREAD_COUNTS 8
#define MAX_N 32768
#define MAX_THREADS 1024
#define PASSES 5
/* OpenBLAS's server threads spin 2^28 cycles (its THREAD_TIMEOUT) after a call: ~0.1 s. */
#define OPENBLAS_QUIET_US 150000
/* Untimed warm-up per implementation and pass (see warm_up). */
#define WARM_S 0.02

enum impl { I_JOBQ, I_GROUP, I_AVX2, I_OPENBLAS, I_NAIVE, I_TRANS, I_COUNT };
static const char *const impl_names[I_COUNT] = {
    "jobq", "jobq-group", "jobq-avx2", "openblas", "naive-ijk", "transposed",
};

struct bench {
    size_t n;
    unsigned threads;
    const double *A, *B;
    double *C, *BT;
    jobq_pool *pool;  /* T-1 workers (NULL for T = 1) */
    jobq_pool *gpool; /* T workers */
    jobq_matmul_workspace *ws; /* reused by the jobq rows, as OpenBLAS reuses its buffer */
};

static double
now_s(void)
{
    return (double)bench_now_ns() * 1e-9;
}

static int
naive_rows(void *ctx, size_t r0, size_t r1)
{
    const struct bench *b = ctx;
    const size_t n = b->n;
    size_t i, j, p;

    for (i = r0; i < r1; i++)
        for (j = 0; j < n; j++) {
            double sum = 0.0;

            for (p = 0; p < n; p++)
                sum += b->A[i * n + p] * b->B[p * n + j];
            b->C[i * n + j] = sum;
        }
    return 0;
}

static int
trans_rows(void *ctx, size_t r0, size_t r1)
{
    const struct bench *b = ctx;
    const size_t n = b->n;
    size_t i, j, p;

    for (i = r0; i < r1; i++)
        for (j = 0; j < n; j++) {
            const double *a = b->A + i * n, *bt = b->BT + j * n;
            double sum = 0.0;

            for (p = 0; p < n; p++)
                sum += a[p] * bt[p];
            b->C[i * n + j] = sum;
        }
    return 0;
}

static int
over_rows(struct bench *b, jobq_range_fn fn)
{
    if (b->pool == NULL)
        return fn(b, 0, b->n);
    return jobq_pool_parallel_for(b->pool, 0, b->n, 1, fn, b);
}

/* Give OpenBLAS's spinning threads time to go to sleep (see the header comment). */
static void
quiet_pause(void)
{
    struct timespec ts = {0, OPENBLAS_QUIET_US * 1000L};

    (void)nanosleep(&ts, NULL);
}

/* One call of implementation `im`; returns its wall time, or a negative value on error. */
static double
run_impl(struct bench *b, enum impl im)
{
    jobq_matmul_options o;
    size_t n = b->n, i, j;
    double t;
    int err = 0;

    jobq_matmul_options_init(&o);
    o.workspace = b->ws;
    t = now_s();
    switch (im) {
    case I_JOBQ:
        err = jobq_matmul(b->pool, n, n, n, b->A, n, b->B, n, b->C, n, &o);
        break;
    case I_GROUP:
        o.dispatch = JOBQ_MATMUL_GROUP;
        err = jobq_matmul(b->gpool, n, n, n, b->A, n, b->B, n, b->C, n, &o);
        break;
    case I_AVX2:
        o.kernel = JOBQ_MATMUL_KERNEL_AVX2;
        err = jobq_matmul(b->pool, n, n, n, b->A, n, b->B, n, b->C, n, &o);
        break;
    case I_OPENBLAS:
#ifdef JOBQ_HAVE_OPENBLAS
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, b->A,
                    (int)n, b->B, (int)n, 0.0, b->C, (int)n);
#endif
        break;
    case I_NAIVE:
        err = over_rows(b, naive_rows);
        break;
    case I_TRANS:
        /* The transpose is part of the method's cost. */
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++)
                b->BT[j * n + i] = b->B[i * n + j];
        err = over_rows(b, trans_rows);
        break;
    default:
        break;
    }
    t = now_s() - t;
    return err != 0 ? -1.0 : t;
}

/* Untimed calls of `im` for WARM_S seconds, at least one. */
static void
warm_up(struct bench *b, enum impl im)
{
    double t0 = now_s();

    do
        (void)run_impl(b, im);
    while (now_s() - t0 < WARM_S);
}

/* ---- compute ceiling: T threads running a register-only FMA loop at once vs one ------------ */

#define CEIL_ITERS (1u << 25)
#define CEIL_TRIES 3
#define CEIL_MAX_T MAX_THREADS

struct ceil_run {
    atomic_uint ready;
    atomic_int go;
    double sink[CEIL_MAX_T];
};

struct ceil_arg {
    struct ceil_run *run;
    unsigned index;
};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CEIL_VEC 1
__attribute__((target("avx2,fma"))) static double
fma_loop_avx2(void)
{
    __m256d a[12], m = _mm256_set1_pd(0.999999), c = _mm256_set1_pd(1e-9);
    double out[4], sum = 0;
    unsigned i, k;

    for (k = 0; k < 12; k++)
        a[k] = _mm256_set1_pd(1.0 + k);
    for (i = 0; i < CEIL_ITERS; i++)
        for (k = 0; k < 12; k++)
            a[k] = _mm256_fmadd_pd(a[k], m, c);
    for (k = 1; k < 12; k++)
        a[0] = _mm256_add_pd(a[0], a[k]);
    _mm256_storeu_pd(out, a[0]);
    for (k = 0; k < 4; k++)
        sum += out[k];
    return sum;
}
#endif

/* Twelve independent chains, enough to keep the FMA units busy (latency x throughput). */
static double
fma_loop_scalar(void)
{
    double a[12], sum = 0;
    unsigned i, k;

    for (k = 0; k < 12; k++)
        a[k] = 1.0 + k;
    for (i = 0; i < CEIL_ITERS; i++)
        for (k = 0; k < 12; k++)
            a[k] = a[k] * 0.999999 + 1e-9;
    for (k = 0; k < 12; k++)
        sum += a[k];
    return sum;
}

static double
fma_loop(void)
{
#ifdef CEIL_VEC
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return fma_loop_avx2();
#endif
    return fma_loop_scalar();
}

static void *
ceil_thread(void *p)
{
    struct ceil_arg *a = p;

    atomic_fetch_add(&a->run->ready, 1);
    while (!atomic_load_explicit(&a->run->go, memory_order_acquire))
        ;
    a->run->sink[a->index] = fma_loop();
    return NULL;
}

/* Seconds for `t` threads (the caller and t - 1 started ones) to run the loop at once. */
static double
ceil_time(unsigned t)
{
    static struct ceil_run run;
    struct ceil_arg args[CEIL_MAX_T];
    pthread_t tids[CEIL_MAX_T];
    unsigned i, started = 0;
    double t0, t1;

    atomic_store(&run.ready, 0);
    atomic_store(&run.go, 0);
    for (i = 1; i < t && i < CEIL_MAX_T; i++) {
        args[i].run = &run;
        args[i].index = i;
        if (pthread_create(&tids[i], NULL, ceil_thread, &args[i]) != 0)
            break;
        started++;
    }
    while (atomic_load(&run.ready) != started)
        ;
    t0 = now_s();
    atomic_store_explicit(&run.go, 1, memory_order_release);
    run.sink[0] = fma_loop();
    for (i = 1; i <= started; i++)
        (void)pthread_join(tids[i], NULL);
    t1 = now_s();
    return started + 1 == t ? t1 - t0 : -1.0;
}

/* T threads' speed-up over one on the FMA loop, best times of CEIL_TRIES each; < 0 on error. */
static double
compute_ceiling(unsigned t)
{
    double one = 1e30, all = 1e30, x;
    int k;

    if (t < 1 || t > CEIL_MAX_T)
        return -1.0;
    /* Untimed first: wakes idle CPUs up (clock, vCPU scheduling). */
    if (ceil_time(t) < 0)
        return -1.0;
    for (k = 0; k < CEIL_TRIES; k++) {
        x = ceil_time(1);
        if (x > 0 && x < one)
            one = x;
        x = ceil_time(t);
        if (x < 0)
            return -1.0;
        if (x < all)
            all = x;
    }
    return (double)t * one / all;
}

/* Comma-separated implementation names into want[]; returns -1 on an unknown name. */
static int
parse_impls(const char *s, int *want)
{
    int im;

    for (im = 0; im < I_COUNT; im++)
        want[im] = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");

        for (im = 0; im < I_COUNT; im++)
            if (strlen(impl_names[im]) == len && strncmp(s, impl_names[im], len) == 0)
                break;
        if (im == I_COUNT)
            return -1;
        want[im] = 1;
        s += len;
        if (*s == ',' && *++s == '\0')
            return -1; /* a trailing comma: an empty name */
    }
    for (im = 0; im < I_COUNT; im++)
        if (want[im])
            return 0;
    return -1; /* an empty list would print no rows at all */
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: bench-matmul [--sizes N,N,...] [--threads T,T,...] [--rounds R]\n"
            "                    [--impls NAME,...] [--keep-openblas-coretype] [--help]\n"
            "GFLOP/s of C = A x B (square N, doubles) for jobq_matmul, OpenBLAS and naive "
            "baselines.\n"
            "  --sizes N,...     matrix sizes, 1..%d, at most %d (default "
            "128,256,512,1000,1023,1024,2048)\n"
            "  --threads T,...   thread counts, 1..%d, at most %d (default 1,<usable cores>)\n"
            "  --rounds R        timed calls per implementation and (N, T), 1..%d, used as "
            "given;\n"
            "                    the median needs no minimum, but below %d only the first R of "
            "the\n"
            "                    %d interleaved passes time anything (default: ~0.4 s worth, "
            "%d at least)\n"
            "  --impls NAME,...  only these of jobq,jobq-group,jobq-avx2,openblas,naive-ijk,"
            "transposed\n"
            "  --keep-openblas-coretype  do not re-execute without OPENBLAS_CORETYPE\n"
            "Exit status: 0 done; 1 a run failed; 2 bad command line.\n",
            MAX_N, MAX_SIZES, MAX_THREADS, MAX_THREAD_COUNTS, MAX_ROUNDS, PASSES, PASSES, PASSES);
}

/* Usage error: message and usage on stderr, exit 2. */
static void
bad_usage(const char *msg, const char *opt, const char *val)
{
    fprintf(stderr, "bench-matmul: %s%s%s%s%s\n", opt != NULL ? opt : "",
            opt != NULL ? ": " : "", msg, val != NULL ? ": " : "", val != NULL ? val : "");
    usage(stderr);
    exit(2);
}

/* One decimal integer in [1, max] from s[0 .. len), digits only (strtoull alone would skip
 * blanks, accept a sign and negate "-1" into a huge value); -1 on anything else. */
static long long
parse_count(const char *s, size_t len, unsigned long long max)
{
    unsigned long long v = 0;
    size_t i;

    if (len == 0 || len > 20)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long long)(s[i] - '0');
        if (v > max)
            return -1;
    }
    return v == 0 ? -1 : (long long)v;
}

/* Comma-separated counts in [1, max] into out[]; exits with a usage error on an empty entry,
 * a value out of range or more than `cap` entries (they used to be dropped without a word). */
static int
parse_list(const char *opt, const char *s, size_t *out, size_t cap, unsigned long long max)
{
    const char *all = s;
    char msg[96];
    size_t count = 0, len;
    long long v;

    for (;;) {
        len = strcspn(s, ",");
        v = parse_count(s, len, max);
        if (v < 0) {
            (void)snprintf(msg, sizeof(msg),
                           "expects comma-separated integers from 1 to %llu, got", max);
            bad_usage(msg, opt, all);
        }
        if (count == cap) {
            (void)snprintf(msg, sizeof(msg), "at most %zu values, got more", cap);
            bad_usage(msg, opt, NULL);
        }
        out[count++] = (size_t)v;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    return (int)count;
}

/* '# speed-up' lines: best 1-thread time / best T-thread time, and the FMA ceiling. */
static void
print_speedups(const size_t *sizes, int nsizes, const size_t *tlist, int nthreads,
               double (*bests)[8][I_COUNT], const double *ceil_start)
{
    int one = -1, ti, si;

    for (ti = 0; ti < nthreads; ti++)
        if (tlist[ti] == 1)
            one = ti;
    for (ti = 0; ti < nthreads; ti++) {
        double ceil_end;

        if (tlist[ti] <= 1)
            continue;
        ceil_end = compute_ceiling((unsigned)tlist[ti]);
        /* Negative: the T threads could not all be started; say so rather than print -1x. */
        if (ceil_start[ti] > 0 && ceil_end > 0)
            printf("# compute ceiling, T = %zu: a register-only FMA loop runs %.3fx as fast on "
                   "%zu threads at once as on one (start of the run), %.3fx (end)\n",
                   tlist[ti], ceil_start[ti], tlist[ti], ceil_end);
        else
            printf("# compute ceiling, T = %zu: n/a (could not start %zu threads at once)\n",
                   tlist[ti], tlist[ti]);
        if (one < 0)
            continue;
        for (si = 0; si < nsizes; si++) {
            const double *b1 = bests[si][one], *bt = bests[si][ti];

            printf("# speed-up N = %zu, T = %zu:", sizes[si], tlist[ti]);
            if (bt[I_JOBQ] > 0 && b1[I_JOBQ] > 0)
                printf(" jobq %.3fx", b1[I_JOBQ] / bt[I_JOBQ]);
            if (bt[I_OPENBLAS] > 0 && b1[I_OPENBLAS] > 0)
                printf(" openblas %.3fx", b1[I_OPENBLAS] / bt[I_OPENBLAS]);
            printf("\n");
        }
    }
}

int
main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {128, 256, 512, 1000, 1023, 1024, 2048}, tlist[MAX_THREAD_COUNTS];
    int nsizes = 7, nthreads, rounds_opt = 0, i, have_openblas = 0, avx2, keep_coretype = 0;
    int want[I_COUNT];
    /* Best times per size, thread count and implementation, for the speed-up lines. */
    static double bests[MAX_SIZES][MAX_THREAD_COUNTS][I_COUNT];
    double ceil_start[MAX_THREAD_COUNTS] = {0};
    unsigned cores = jobq_cpu_count();
    long long v;

    for (i = 0; i < I_COUNT; i++)
        want[i] = 1;
    tlist[0] = 1;
    /* The default's second count is the machine's; only --threads is held to MAX_THREADS. */
    tlist[1] = cores < MAX_THREADS ? cores : MAX_THREADS;
    nthreads = cores > 1 ? 2 : 1;
    /* Parse everything before the re-exec below, so that a usage error or --help is answered
     * once, by this process. */
    for (i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(opt, "--keep-openblas-coretype") == 0) {
            keep_coretype = 1;
            continue;
        } else if (strcmp(opt, "--sizes") != 0 && strcmp(opt, "--threads") != 0 &&
                   strcmp(opt, "--rounds") != 0 && strcmp(opt, "--impls") != 0) {
            bad_usage("unknown argument", NULL, opt);
        } else if (val == NULL) {
            bad_usage("needs a value", opt, NULL);
        }
        i++;
        if (strcmp(opt, "--sizes") == 0) {
            nsizes = parse_list(opt, val, sizes, MAX_SIZES, MAX_N);
        } else if (strcmp(opt, "--threads") == 0) {
            nthreads = parse_list(opt, val, tlist, MAX_THREAD_COUNTS, MAX_THREADS);
        } else if (strcmp(opt, "--rounds") == 0) {
            v = parse_count(val, strlen(val), MAX_ROUNDS);
            if (v < 0) {
                char msg[64];

                (void)snprintf(msg, sizeof(msg), "expects an integer from 1 to %d, got",
                               MAX_ROUNDS);
                bad_usage(msg, opt, val);
            }
            rounds_opt = (int)v;
        } else if (parse_impls(val, want) != 0) {
            bad_usage("unknown or empty name in", opt, val);
        }
    }
#ifdef JOBQ_HAVE_OPENBLAS
    {
        const char *forced = getenv("OPENBLAS_CORETYPE");

        if (forced != NULL && !keep_coretype && getenv("JOBQ_BENCH_DROPPED_CORETYPE") == NULL) {
            (void)setenv("JOBQ_BENCH_DROPPED_CORETYPE", forced, 1);
            (void)unsetenv("OPENBLAS_CORETYPE");
            (void)execv("/proc/self/exe", argv);
            perror("bench-matmul: re-exec without OPENBLAS_CORETYPE failed; continuing");
        }
    }
#else
    (void)keep_coretype;
#endif
#ifdef JOBQ_HAVE_OPENBLAS
    have_openblas = 1;
#endif
    avx2 = jobq_matmul_kernel_supported(JOBQ_MATMUL_KERNEL_AVX2);
    bench_print_env("bench-matmul: C = A x B, square N, doubles, GFLOP/s = 2 N^3 / best time",
                    NULL);
    printf("# jobq kernel (auto): %s\n", jobq_matmul_kernel_name(jobq_matmul_kernel_best()));
#ifdef JOBQ_HAVE_OPENBLAS
    printf("# openblas core: %s; config: %s\n", openblas_get_corename(), openblas_get_config());
    if (getenv("JOBQ_BENCH_DROPPED_CORETYPE") != NULL)
        printf("# OPENBLAS_CORETYPE=%s was set in the environment: removed so that OpenBLAS "
               "picks its own kernel\n", getenv("JOBQ_BENCH_DROPPED_CORETYPE"));
    else if (getenv("OPENBLAS_CORETYPE") != NULL)
        printf("# OPENBLAS_CORETYPE=%s kept (--keep-openblas-coretype)\n",
               getenv("OPENBLAS_CORETYPE"));
#else
    printf("# openblas: not found at build time; ratio_openblas left empty\n");
#endif
    printf("# threads T: jobq = pool of T-1 workers + the calling thread (parallel_for); "
           "jobq-group = pool of T workers\n");
    printf("# naive-ijk and transposed only for N <= %d\n", BASELINE_MAX_N);
    printf("# jobq rows reuse one jobq_matmul_workspace per (N, T), as OpenBLAS reuses its "
           "buffer; blocks of consecutive calls per implementation, %d passes\n", PASSES);
    for (int ti = 0; ti < nthreads; ti++)
        if (tlist[ti] > 1)
            ceil_start[ti] = compute_ceiling((unsigned)tlist[ti]);
    printf("n,threads,impl,kernel,rounds,best_s,median_s,gflops,ratio_openblas\n");
    fflush(stdout);

    for (int si = 0; si < nsizes; si++) {
        const size_t n = sizes[si];
        double *A = malloc(n * n * sizeof(double)), *B = malloc(n * n * sizeof(double));
        double *C = malloc(n * n * sizeof(double)), *BT = malloc(n * n * sizeof(double));
        uint64_t st = 42;
        size_t e;

        if (A == NULL || B == NULL || C == NULL || BT == NULL) {
            fprintf(stderr, "bench-matmul: out of memory for N = %zu\n", n);
            return 1;
        }
        for (e = 0; e < n * n; e++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            A[e] = (double)(st >> 11) * 0x1p-53 - 0.5;
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            B[e] = (double)(st >> 11) * 0x1p-53 - 0.5;
        }
        for (int ti = 0; ti < nthreads; ti++) {
            struct bench b;
            struct bench_machine m0 = bench_machine_now(), m1;
            char label[64];
            jobq_pool_options po;
            double times[I_COUNT][MAX_ROUNDS], best[I_COUNT], med[I_COUNT], flops, est;
            int use[I_COUNT], rounds, r, im;

            memset(&b, 0, sizeof(b));
            b.n = n;
            b.threads = (unsigned)tlist[ti];
            b.A = A;
            b.B = B;
            b.C = C;
            b.BT = BT;
            if (jobq_matmul_workspace_create(&b.ws) != 0)
                return 1;
            jobq_pool_options_init(&po);
            if (b.threads > 1) {
                po.threads = b.threads - 1;
                if (jobq_pool_create(&b.pool, &po) != 0)
                    return 1;
            }
            po.threads = b.threads;
            if (jobq_pool_create(&b.gpool, &po) != 0)
                return 1;
#ifdef JOBQ_HAVE_OPENBLAS
            openblas_set_num_threads((int)b.threads);
#endif
            for (im = 0; im < I_COUNT; im++)
                use[im] = 1;
            use[I_AVX2] = avx2 && jobq_matmul_kernel_best() != JOBQ_MATMUL_KERNEL_AVX2;
            use[I_OPENBLAS] = have_openblas;
            use[I_NAIVE] = use[I_TRANS] = n <= BASELINE_MAX_N;
            for (im = 0; im < I_COUNT; im++)
                use[im] = use[im] && want[im];

            /* Warm-up, and a time estimate to pick the number of rounds when --rounds is not
             * given (~0.4 s of jobq calls per row set, at least PASSES rounds). */
            est = 0.0;
            for (im = 0; im < I_COUNT; im++) {
                double t;

                if (!use[im])
                    continue;
                t = run_impl(&b, (enum impl)im);
                if (t < 0) {
                    fprintf(stderr, "bench-matmul: %s failed at N = %zu\n", impl_names[im], n);
                    return 1;
                }
                if (im == I_JOBQ)
                    est = run_impl(&b, (enum impl)im);
                if (im == I_OPENBLAS)
                    quiet_pause();
            }
            /* --rounds is taken as given (parsing held it to 1 .. MAX_ROUNDS); only the
             * automatic count is clamped. */
            if (rounds_opt > 0) {
                rounds = rounds_opt;
            } else {
                rounds = (int)(0.4 / (est + 1e-9));
                if (rounds < PASSES)
                    rounds = PASSES;
                if (rounds > MAX_ROUNDS)
                    rounds = MAX_ROUNDS;
            }
            /* Round r belongs to pass r % PASSES; within a pass, one implementation at a time.
             * Passes from `rounds` on hold no round (R < PASSES): skip their warm-ups. */
            for (int pass = 0; pass < PASSES && pass < rounds; pass++) {
                for (im = 0; im < I_COUNT; im++) {
                    if (!use[im] || ((im == I_NAIVE || im == I_TRANS) && pass >= 3))
                        continue;
                    /* Untimed calls first, for WARM_S at least: after the pause that follows
                     * OpenBLAS the CPUs have idled (clock down, vCPUs descheduled), which landed
                     * on whichever implementation came next - jobq's 1-thread N = 2048 best went
                     * from 0.19 s to 0.27 s that way, and with one warm-up call (0.1 ms) jobq's
                     * N = 128 best was 0.14-0.16 ms next to 0.10-0.13 ms when run alone. */
                    warm_up(&b, (enum impl)im);
                    for (r = pass; r < rounds; r += PASSES) {
                        /* The slow baselines get 3 rounds at most. */
                        if ((im == I_NAIVE || im == I_TRANS) && r >= 3)
                            continue;
                        times[im][r] = run_impl(&b, (enum impl)im);
                    }
                    if (im == I_OPENBLAS)
                        quiet_pause();
                }
            }
            flops = 2.0 * (double)n * (double)n * (double)n;
            for (im = 0; im < I_COUNT; im++) {
                int cnt = (im == I_NAIVE || im == I_TRANS) && rounds > 3 ? 3 : rounds;

                if (!use[im])
                    continue;
                qsort(times[im], (size_t)cnt, sizeof(double), bench_cmp_double);
                best[im] = times[im][0];
                med[im] = cnt % 2 ? times[im][cnt / 2]
                                  : (times[im][cnt / 2 - 1] + times[im][cnt / 2]) / 2;
            }
            for (im = 0; im < I_COUNT; im++) {
                const char *kern = "-";
                int cnt = (im == I_NAIVE || im == I_TRANS) && rounds > 3 ? 3 : rounds;

                if (!use[im])
                    continue;
                if (im == I_JOBQ || im == I_GROUP)
                    kern = jobq_matmul_kernel_name(jobq_matmul_kernel_best());
                else if (im == I_AVX2)
                    kern = "avx2";
                bests[si][ti][im] = best[im];
                printf("%zu,%u,%s,%s,%d,%.9f,%.9f,%.3f,", n, b.threads, impl_names[im], kern, cnt,
                       best[im], med[im], flops / best[im] * 1e-9);
                if (use[I_OPENBLAS])
                    printf("%.3f\n", best[I_OPENBLAS] / best[im]);
                else
                    printf("\n");
            }
            /* Steal hits the row sets unevenly: it is what to look at first when a speed-up
             * (two row sets) is off. */
            m1 = bench_machine_now();
            (void)snprintf(label, sizeof(label), "machine, N = %zu, T = %u", n, b.threads);
            bench_machine_report_as(label, m0, m1);
            fflush(stdout);
            jobq_pool_destroy(b.pool);
            jobq_pool_destroy(b.gpool);
            jobq_matmul_workspace_destroy(b.ws);
        }
        free(A);
        free(B);
        free(C);
        free(BT);
    }
    print_speedups(sizes, nsizes, tlist, nthreads, bests, ceil_start);
    return 0;
}
