/*
 * bench-queue.c - push/pop throughput of jobq_queue against a mutex+condvar queue and GLib's
 * GAsyncQueue, for P producers x C consumers (1x1, 2x2, 4x4 by default), in the same run.
 *
 * Each run moves `items` 8-byte values (1..items, split evenly over the producers) through a
 * fresh queue; consumers pop until the queue reports closed and sum what they saw, and the run
 * fails unless the sum is items*(items+1)/2 (every item exactly once). The timed region starts
 * when all threads have passed a barrier and ends when the last consumer has been joined;
 * thread creation is outside it.
 *
 * Systems:
 *   jobq        jobq_queue (bounded, capacity 1024), push/pop, jobq_queue_close at the end
 *   mutex       the textbook reference: one mutex, not_empty/not_full condition variables,
 *               signal after every change of the predicate, bounded at 1024 (defined below)
 *   glib        GAsyncQueue: UNBOUNDED (producers never block, so it is not the same
 *               contract); one sentinel pointer per consumer ends the run
 * Configurations are interleaved (every one once per round, round after round); rows give the
 * median and min/max over the rounds. Within a producers x consumers configuration a round runs
 * the systems in a balanced Latin-square order (bench_balanced_order in bench.h: with 3
 * systems, each directly follows each other twice in every 6 rounds; with 2, they alternate),
 * and every run starts after the same bench_settle() (20 ms asleep, then 20 ms of all usable
 * cores spinning), as in bench-pool: no system always runs in the wake of the same one.
 * ratio_vs_mutex / ratio_vs_glib = items_per_s / the peer's for the same producers x consumers
 * (> 1: faster than the peer).
 *
 * Usage: bench-queue [--reps R] [--quick] [--items N] [--pc 1x1,2x2,4x4]
 *        bench-queue --help
 * --reps 1..100 (default 5, --quick 3); --items 1..1e12 (default 2000000, --quick a tenth),
 * at least the largest producer count.
 * Exit codes: 0 ok, 1 a run failed or lost items, 2 bad usage.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "bench.h"

#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif

#define CAPACITY 1024
#define MAX_REPS 100
#define MAX_CONFIGS 16
#define MAX_THREADS 64
/* A run of 1e12 items takes hours at any rate seen here; the cap keeps items + 1 and the
 * producers' split of 1..items far from wrapping. */
#define MAX_ITEMS 1000000000000ULL

enum sys { S_JOBQ, S_MUTEX, S_GLIB, S_COUNT };
static const char *const sys_names[S_COUNT] = { "jobq", "mutex", "glib" };

/* ------------------------------------------------------------------------------------------ */
/* The reference queue: the simplest correct bounded MPMC queue                                */

struct refq {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    uint64_t *buf; /* under lock, as are the fields below */
    size_t cap, head, count;
    int closed;
};

static int
refq_init(struct refq *q, size_t cap)
{
    q->buf = malloc(cap * sizeof(*q->buf));
    if (q->buf == NULL)
        return -1;
    q->cap = cap;
    q->head = q->count = 0;
    q->closed = 0;
    (void)pthread_mutex_init(&q->lock, NULL);
    (void)pthread_cond_init(&q->not_empty, NULL);
    (void)pthread_cond_init(&q->not_full, NULL);
    return 0;
}

static void
refq_fini(struct refq *q)
{
    (void)pthread_mutex_destroy(&q->lock);
    (void)pthread_cond_destroy(&q->not_empty);
    (void)pthread_cond_destroy(&q->not_full);
    free(q->buf);
}

static void
refq_push(struct refq *q, uint64_t v)
{
    (void)pthread_mutex_lock(&q->lock);
    while (q->count == q->cap && !q->closed)
        (void)pthread_cond_wait(&q->not_full, &q->lock);
    if (!q->closed) {
        q->buf[(q->head + q->count) % q->cap] = v;
        q->count++;
        (void)pthread_cond_signal(&q->not_empty);
    }
    (void)pthread_mutex_unlock(&q->lock);
}

/* 0 and *v, or -1 once closed and empty. */
static int
refq_pop(struct refq *q, uint64_t *v)
{
    int r = -1;

    (void)pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        (void)pthread_cond_wait(&q->not_empty, &q->lock);
    if (q->count > 0) {
        *v = q->buf[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        (void)pthread_cond_signal(&q->not_full);
        r = 0;
    }
    (void)pthread_mutex_unlock(&q->lock);
    return r;
}

static void
refq_close(struct refq *q)
{
    (void)pthread_mutex_lock(&q->lock);
    q->closed = 1;
    (void)pthread_cond_broadcast(&q->not_empty);
    (void)pthread_cond_broadcast(&q->not_full);
    (void)pthread_mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------------------------------------ */
/* One run                                                                                     */

#define GLIB_SENTINEL UINT64_MAX

struct run {
    enum sys sys;
    jobq_queue *jq;
    struct refq rq;
#ifdef BENCH_HAVE_GLIB
    GAsyncQueue *gq;
#endif
    pthread_barrier_t start;
    atomic_int error;
};

struct worker {
    _Alignas(64) struct run *run;
    uint64_t first, count; /* producers: values first .. first+count-1 */
    uint64_t sum, seen;    /* consumers */
};

static void *
producer(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    uint64_t v, end = w->first + w->count;
    int e;

    (void)pthread_barrier_wait(&r->start);
    for (v = w->first; v < end; v++) {
        switch (r->sys) {
        case S_JOBQ:
            e = jobq_queue_push(r->jq, &v);
            if (e != 0) {
                atomic_store(&r->error, e);
                return NULL;
            }
            break;
        case S_MUTEX:
            refq_push(&r->rq, v);
            break;
        default:
#ifdef BENCH_HAVE_GLIB
            g_async_queue_push(r->gq, (gpointer)(uintptr_t)v);
#endif
            break;
        }
    }
    return NULL;
}

static void *
consumer(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    uint64_t v, sum = 0, seen = 0;
    int e;

    (void)pthread_barrier_wait(&r->start);
    for (;;) {
        if (r->sys == S_JOBQ) {
            e = jobq_queue_pop(r->jq, &v);
            if (e == JOBQ_ECLOSED)
                break;
            if (e != 0) {
                atomic_store(&r->error, e);
                break;
            }
        } else if (r->sys == S_MUTEX) {
            if (refq_pop(&r->rq, &v) != 0)
                break;
        } else {
#ifdef BENCH_HAVE_GLIB
            v = (uint64_t)(uintptr_t)g_async_queue_pop(r->gq);
            if (v == (uint64_t)(uintptr_t)GLIB_SENTINEL)
                break;
#else
            break;
#endif
        }
        sum += v;
        seen++;
    }
    w->sum = sum;
    w->seen = seen;
    return NULL;
}

struct sample {
    double wall_s;
    long ctx;
};

static int
run_once(enum sys s, unsigned np, unsigned nc, uint64_t items, struct sample *out)
{
    static struct worker ws[2 * MAX_THREADS];
    pthread_t tids[2 * MAX_THREADS];
    struct run r;
    uint64_t t0, t1, sum = 0, seen = 0, per = items / np, next = 1;
    unsigned i, started = 0;
    long c0, c1;
    int e = 0;

    memset(&r, 0, sizeof(r));
    r.sys = s;
    atomic_init(&r.error, 0);
    if (s == S_JOBQ)
        e = jobq_queue_create(&r.jq, CAPACITY, sizeof(uint64_t));
    else if (s == S_MUTEX)
        e = refq_init(&r.rq, CAPACITY);
#ifdef BENCH_HAVE_GLIB
    else
        r.gq = g_async_queue_new();
#endif
    if (e != 0) {
        fprintf(stderr, "bench-queue: %s: cannot create the queue\n", sys_names[s]);
        return -1;
    }
    (void)pthread_barrier_init(&r.start, NULL, np + nc + 1);
    for (i = 0; i < np + nc; i++) {
        ws[i].run = &r;
        ws[i].sum = ws[i].seen = 0;
        if (i < np) {
            ws[i].first = next;
            ws[i].count = i + 1 == np ? items + 1 - next : per;
            next += ws[i].count;
        }
        if (pthread_create(&tids[i], NULL, i < np ? producer : consumer, &ws[i]) != 0) {
            fprintf(stderr, "bench-queue: pthread_create failed\n");
            exit(1); /* the barrier would never open; a bench may just stop */
        }
        started++;
    }
    (void)pthread_barrier_wait(&r.start);
    c0 = bench_ctx_switches();
    t0 = bench_now_ns();
    for (i = 0; i < np; i++)
        (void)pthread_join(tids[i], NULL);
    if (s == S_JOBQ) {
        jobq_queue_close(r.jq);
    } else if (s == S_MUTEX) {
        refq_close(&r.rq);
    } else {
#ifdef BENCH_HAVE_GLIB
        for (i = 0; i < nc; i++)
            g_async_queue_push(r.gq, (gpointer)(uintptr_t)GLIB_SENTINEL);
#endif
    }
    for (i = np; i < started; i++)
        (void)pthread_join(tids[i], NULL);
    t1 = bench_now_ns();
    c1 = bench_ctx_switches();
    for (i = np; i < np + nc; i++) {
        sum += ws[i].sum;
        seen += ws[i].seen;
    }
    (void)pthread_barrier_destroy(&r.start);
    if (s == S_JOBQ)
        jobq_queue_destroy(r.jq);
    else if (s == S_MUTEX)
        refq_fini(&r.rq);
#ifdef BENCH_HAVE_GLIB
    else
        g_async_queue_unref(r.gq);
#endif
    if (atomic_load(&r.error) != 0) {
        fprintf(stderr, "bench-queue: %s: %s\n", sys_names[s],
                jobq_strerror(atomic_load(&r.error)));
        return -1;
    }
    /* items*(items+1)/2 wraps for huge counts, identically on both sides (mod 2^64). */
    if (seen != items || sum != items * (items + 1) / 2) {
        fprintf(stderr, "bench-queue: %s %ux%u: saw %llu items (sum %llu), expected %llu\n",
                sys_names[s], np, nc, (unsigned long long)seen, (unsigned long long)sum,
                (unsigned long long)items);
        return -1;
    }
    out->wall_s = (double)(t1 - t0) * 1e-9;
    out->ctx = c1 - c0;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Driver                                                                                      */

struct config {
    unsigned np, nc;
};

/* Whether `a` is an option that takes a value: for the message when the value is missing. */
static int
takes_value(const char *a)
{
    static const char *const with_value[] = {
        "--reps", "--items", "--pc",
    };
    size_t i;

    for (i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
        if (strcmp(with_value[i], a) == 0)
            return 1;
    return 0;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: bench-queue [--reps R] [--quick] [--items N] [--pc 1x1,2x2,4x4]\n"
            "       bench-queue --help\n"
            "--reps 1..%d (default 5; --quick 3), --items 1..%llu (default 2000000; --quick a "
            "tenth),\n"
            "--pc PxC[,PxC...] with 1..%d producers and consumers each (at most %d pairs)\n",
            MAX_REPS, MAX_ITEMS, MAX_THREADS, MAX_CONFIGS);
}

static size_t
parse_pc(const char *arg, struct config *cfg)
{
    char buf[256], *tok, *save = NULL, *x, *end;
    size_t n = 0;
    unsigned long p, c;

    if (strlen(arg) >= sizeof(buf))
        return 0;
    strcpy(buf, arg);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        x = strchr(tok, 'x');
        if (x == NULL || n == MAX_CONFIGS)
            return 0;
        *x = '\0';
        /* Digits only: strtoul would take " 2", "+2", and "-1" as a huge count. */
        if (*tok < '0' || *tok > '9' || x[1] < '0' || x[1] > '9')
            return 0;
        p = strtoul(tok, &end, 10);
        if (*end != '\0')
            return 0;
        c = strtoul(x + 1, &end, 10);
        if (*end != '\0')
            return 0;
        if (p == 0 || c == 0 || p > MAX_THREADS || c > MAX_THREADS)
            return 0;
        cfg[n].np = (unsigned)p;
        cfg[n].nc = (unsigned)c;
        n++;
    }
    return n;
}

int
main(int argc, char **argv)
{
    static struct sample samples[MAX_CONFIGS][S_COUNT][MAX_REPS];
    struct config cfg[MAX_CONFIGS] = { { 1, 1 }, { 2, 2 }, { 4, 4 } };
    size_t ncfg = 3, k, order[S_COUNT], nrun, j;
    int run_sys[S_COUNT];
    unsigned reps = 5, rep;
    unsigned long long items = 2000000;
    int quick = 0, items_set = 0, reps_set = 0, failed[MAX_CONFIGS][S_COUNT];
    double ips[MAX_CONFIGS][S_COUNT];
    char extra[200];
    struct bench_machine m0, m1;
    int i, s;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) {
            quick = 1;
        } else if (v == NULL) {
            if (takes_value(a))
                fprintf(stderr, "bench-queue: %s needs a value\n", a);
            else
                fprintf(stderr, "bench-queue: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--reps") == 0) {
            reps = (unsigned)bench_parse_range("bench-queue", a, v, 1, MAX_REPS);
            reps_set = 1;
            i++;
        } else if (strcmp(a, "--items") == 0) {
            items = bench_parse_range("bench-queue", a, v, 1, MAX_ITEMS);
            items_set = 1;
            i++;
        } else if (strcmp(a, "--pc") == 0) {
            ncfg = parse_pc(v, cfg);
            if (ncfg == 0) {
                fprintf(stderr,
                        "bench-queue: --pc: expected PxC[,PxC...] with 1..%d each and at most "
                        "%d pairs, got '%s'\n",
                        MAX_THREADS, MAX_CONFIGS, v);
                usage(stderr);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "bench-queue: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (quick && !items_set)
        items /= 10;
    if (quick && !reps_set)
        reps = 3;
    for (k = 0; k < ncfg; k++)
        if (items < cfg[k].np) {
            fprintf(stderr, "bench-queue: --items: %llu is fewer than %u producers (--pc)\n",
                    items, cfg[k].np);
            return 2;
        }

    (void)snprintf(extra, sizeof(extra),
                   "items %llu per run (8-byte values), capacity %d (glib: unbounded), "
                   "rounds %u (interleaved, balanced order)%s",
                   items, CAPACITY, reps, quick ? ", quick" : "");
    bench_print_env("bench-queue: push/pop items/s of jobq_queue vs mutex+condvar reference vs "
                    "GLib GAsyncQueue", extra);
#ifdef BENCH_HAVE_GLIB
    printf("# glib GAsyncQueue: built in (unbounded: producers never block)\n");
#else
    printf("# glib GAsyncQueue: not found at build time, skipped\n");
#endif
    fflush(stdout);

    /* The systems built in; the balanced order runs over these only (GLib may be absent). */
    nrun = 0;
    for (s = 0; s < S_COUNT; s++) {
#ifndef BENCH_HAVE_GLIB
        if (s == S_GLIB)
            continue;
#endif
        run_sys[nrun++] = s;
    }
    memset(failed, 0, sizeof(failed));
    m0 = bench_machine_now();
    for (rep = 0; rep < reps; rep++) {
        bench_balanced_order(nrun, rep, order);
        for (k = 0; k < ncfg; k++)
            for (j = 0; j < nrun; j++) {
                s = run_sys[order[j]];
                if (failed[k][s])
                    continue;
                bench_settle();
                if (run_once((enum sys)s, cfg[k].np, cfg[k].nc, items, &samples[k][s][rep]))
                    failed[k][s] = 1;
            }
        fprintf(stderr, "bench-queue: round %u/%u done\n", rep + 1, reps);
    }
    m1 = bench_machine_now();
    bench_machine_report(m0, m1);

    printf("system,producers,consumers,capacity,items,wall_s_median,wall_s_min,wall_s_max,"
           "items_per_s,ctx_switches_per_item,ratio_vs_mutex,ratio_vs_glib\n");
    for (k = 0; k < ncfg; k++) {
        struct bench_summary ws[S_COUNT], cs[S_COUNT];

        for (s = 0; s < S_COUNT; s++) {
            double walls[MAX_REPS], ctxs[MAX_REPS];

            ips[k][s] = 0;
#ifndef BENCH_HAVE_GLIB
            if (s == S_GLIB)
                continue;
#endif
            if (failed[k][s])
                continue;
            for (rep = 0; rep < reps; rep++) {
                walls[rep] = samples[k][s][rep].wall_s;
                ctxs[rep] = (double)samples[k][s][rep].ctx;
            }
            ws[s] = bench_summarize(walls, reps);
            cs[s] = bench_summarize(ctxs, reps);
            ips[k][s] = (double)items / ws[s].median;
        }
        for (s = 0; s < S_COUNT; s++) {
            if (ips[k][s] <= 0)
                continue;
            printf("%s,%u,%u,%s,%llu,%.6f,%.6f,%.6f,%.0f,%.4f,", sys_names[s], cfg[k].np,
                   cfg[k].nc, s == S_GLIB ? "unbounded" : "1024", items, ws[s].median,
                   ws[s].min, ws[s].max, ips[k][s], cs[s].median / (double)items);
            if (ips[k][S_MUTEX] > 0)
                printf("%.3f,", ips[k][s] / ips[k][S_MUTEX]);
            else
                printf(",");
            if (ips[k][S_GLIB] > 0)
                printf("%.3f\n", ips[k][s] / ips[k][S_GLIB]);
            else
                printf("\n");
        }
    }
    for (k = 0; k < ncfg; k++)
        for (s = 0; s < S_COUNT; s++)
            if (failed[k][s])
                return 1;
    return 0;
}
