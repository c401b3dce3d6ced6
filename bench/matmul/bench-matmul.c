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
 *                     [--impls jobq,openblas,...] [--keep-openblas-coretype]
 * --impls keeps only the named implementations (for quick comparisons, e.g. a tuning sweep);
 * an implementation that does not apply (no OpenBLAS, baselines above N = 1024) stays out.
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
#define CEIL_MAX_T 64

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
        if (*s == ',')
            s++;
    }
    return 0;
}

static int
parse_list(const char *s, size_t *out, size_t max)
{
    size_t count = 0;
    char *end;

    while (*s != '\0' && count < max) {
        unsigned long long v = strtoull(s, &end, 10);

        if (end == s || v == 0)
            return -1;
        out[count++] = (size_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return -1;
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
        printf("# compute ceiling, T = %zu: a register-only FMA loop runs %.3fx as fast on %zu "
               "threads at once as on one (start of the run), %.3fx (end)\n",
               tlist[ti], ceil_start[ti], tlist[ti], ceil_end);
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
    size_t sizes[32] = {128, 256, 512, 1000, 1023, 1024, 2048}, tlist[8];
    int nsizes = 7, nthreads, rounds_opt = 0, i, have_openblas = 0, avx2;
    int want[I_COUNT];
    /* Best times per size, thread count and implementation, for the speed-up lines. */
    static double bests[32][8][I_COUNT];
    double ceil_start[8] = {0};
    unsigned cores = jobq_cpu_count();

#ifdef JOBQ_HAVE_OPENBLAS
    {
        const char *forced = getenv("OPENBLAS_CORETYPE");
        int keep = 0;

        for (i = 1; i < argc; i++)
            if (strcmp(argv[i], "--keep-openblas-coretype") == 0)
                keep = 1;
        if (forced != NULL && !keep && getenv("JOBQ_BENCH_DROPPED_CORETYPE") == NULL) {
            (void)setenv("JOBQ_BENCH_DROPPED_CORETYPE", forced, 1);
            (void)unsetenv("OPENBLAS_CORETYPE");
            (void)execv("/proc/self/exe", argv);
            perror("bench-matmul: re-exec without OPENBLAS_CORETYPE failed; continuing");
        }
    }
#endif
    for (i = 0; i < I_COUNT; i++)
        want[i] = 1;
    tlist[0] = 1;
    tlist[1] = cores;
    nthreads = cores > 1 ? 2 : 1;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            nsizes = parse_list(argv[++i], sizes, 32);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            nthreads = parse_list(argv[++i], tlist, 8);
        } else if (strcmp(argv[i], "--keep-openblas-coretype") == 0) {
            continue;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds_opt = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--impls") == 0 && i + 1 < argc) {
            if (parse_impls(argv[++i], want) != 0) {
                fprintf(stderr, "bench-matmul: --impls: unknown name in '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench-matmul [--sizes N,N,...] [--threads T,T,...] "
                            "[--rounds R] [--impls NAME,...] [--keep-openblas-coretype]\n");
            return 2;
        }
    }
    if (nsizes <= 0 || nthreads <= 0 || rounds_opt < 0 || rounds_opt > MAX_ROUNDS) {
        fprintf(stderr, "bench-matmul: bad --sizes, --threads or --rounds\n");
        return 2;
    }
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

            /* Warm-up, and a time estimate to pick the number of rounds (~1.5 s per row set
             * for the fast ones, at least 5 rounds). */
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
            rounds = rounds_opt > 0 ? rounds_opt : (int)(0.4 / (est + 1e-9));
            if (rounds < PASSES)
                rounds = PASSES;
            if (rounds > MAX_ROUNDS)
                rounds = MAX_ROUNDS;
            /* Round r belongs to pass r % PASSES; within a pass, one implementation at a time. */
            for (int pass = 0; pass < PASSES; pass++) {
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
