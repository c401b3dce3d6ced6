/*
 * pool.c - jobq_pool: a fixed set of worker threads draining a bounded FIFO of jobs.
 *
 * DESIGN
 * The queue is a ring of `struct entry` (a copied jobq_job plus its group) guarded by one mutex
 * with three condition variables: `work` (idle workers), `space` (blocked submitters) and `idle`
 * (jobq_pool_wait callers). The costs that matter for small jobs are system calls and cache-line
 * traffic, so:
 *   - nobody signals unless somebody sleeps (sleeper counts under the lock), and a submitter wakes
 *     at most one idle worker per job it queues, counting wake-ups already in flight;
 *   - a blocked submitter is woken only once the queue has drained to a low-water mark (half the
 *     capacity), so it refills in one burst instead of pre-empting a busy worker per job;
 *   - a worker claims a small batch of jobs per lock round-trip when the queue is long (never more
 *     than its fair share, so long jobs still spread over all workers) and accounts for the batch
 *     at once: one atomic subtraction from `outstanding`, per-worker counters on the worker's own
 *     cache line, and one pair of clock reads per batch for the busy time.
 *
 * Shutdown is by sentinel: after `closed` is set no job is accepted; one sentinel entry (run ==
 * NULL, which users cannot submit) per worker is queued behind the real jobs, so FIFO order
 * drains the work first; a worker that takes a sentinel exits; then all are joined. DISCARD mode
 * first removes the queued real jobs (calling done with JOBQ_ECANCELED).
 *
 * Nested submission: a worker that submits into its own pool's full queue would wait for space
 * only workers can make - with one worker, forever. It runs the job inline instead ("caller
 * runs"). A worker's parallel_for likewise takes chunks itself and never waits for queued work.
 *
 * Accounting: `outstanding` = jobs accepted and not yet finished (queued, claimed or running).
 * Invariant at rest: stats.submitted == completed + discarded.
 *
 * LOCK ORDER: pool->lock, then group->lock or pf->lock. User code never runs with a lock held.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "jobq-private.h"

#define DEFAULT_CAPACITY 1024
#define MAX_BATCH 32

struct jobq_group {
    jobq_pool *pool;
    pthread_mutex_t lock;
    pthread_cond_t done;
    atomic_size_t outstanding;
    atomic_int first_err;
    unsigned waiters; /* under lock */
};

struct entry {
    jobq_job job;
    jobq_group *group;
};

/* Per-worker state; aligned so workers never write to each other's cache lines. */
struct worker {
    _Alignas(JOBQ__CACHE_LINE) jobq_pool *pool;
    pthread_t thread;
    unsigned index;
    int started;
    atomic_uint_fast64_t completed;
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t busy_ns;
    struct entry batch[MAX_BATCH];
};

struct jobq_pool {
    /* Everything from here to `closed` is under `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t work;  /* workers wait for jobs */
    pthread_cond_t space; /* submitters wait for room */
    pthread_cond_t idle;  /* jobq_pool_wait waits for outstanding == 0 */
    struct entry *ring;
    size_t capacity;
    size_t head;
    size_t count;
    size_t low_water;
    unsigned idle_workers;
    unsigned wakes_pending;  /* signals sent to `work` not yet consumed */
    unsigned blocked_submitters;
    unsigned waiters;        /* threads in jobq_pool_wait */
    int closed;
    int shut_down;           /* workers joined */

    /* Read without the lock (atomics). */
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t outstanding;
    atomic_int first_err;
    atomic_uint_fast64_t submitted;
    atomic_uint_fast64_t discarded;
    atomic_uint_fast64_t caller_runs;
    atomic_uint_fast64_t producer_blocks;
    atomic_uint_fast64_t caller_completed; /* jobs run inline by submitters or shutdown */
    atomic_uint_fast64_t caller_failed;
    atomic_size_t high_water;

    unsigned threads;
    jobq_worker_init_fn worker_init;
    jobq_worker_fini_fn worker_fini;
    void *hook_arg;
    char name[12];
    /* Startup handshake: workers report their init result. Under lock. */
    unsigned started;
    int init_err;
    struct worker *workers;
};

/* The worker the current thread is, if any: lets submit/wait detect nesting. */
static _Thread_local struct worker *current_worker;

static int
is_own_worker(const jobq_pool *pool)
{
    return current_worker != NULL && current_worker->pool == pool;
}

void
jobq_pool_options_init(jobq_pool_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof(*opts));
    opts->threads = jobq_cpu_count();
    opts->capacity = DEFAULT_CAPACITY;
    opts->name = "jobq";
}

static void
record_error(atomic_int *slot, int err)
{
    int expected = 0;

    if (err != 0)
        (void)atomic_compare_exchange_strong(slot, &expected, err);
}

/* A group job finished: drop the group's count and wake its waiters at zero. */
static void
group_finish(jobq_group *g, int err)
{
    record_error(&g->first_err, err);
    /* seq_cst pairs with the waiter's seq_cst increment of `waiters`: one of the two sees the
     * other, so a waiter is never left asleep on a finished group. */
    if (atomic_fetch_sub(&g->outstanding, 1) == 1) {
        (void)pthread_mutex_lock(&g->lock);
        if (g->waiters > 0)
            (void)pthread_cond_broadcast(&g->done);
        (void)pthread_mutex_unlock(&g->lock);
    }
}

/* n jobs finished: drop `outstanding` and wake jobq_pool_wait callers at zero. */
static void
pool_finish(jobq_pool *pool, size_t n)
{
    if (n == 0)
        return;
    if (atomic_fetch_sub(&pool->outstanding, n) == n) {
        (void)pthread_mutex_lock(&pool->lock);
        if (pool->waiters > 0)
            (void)pthread_cond_broadcast(&pool->idle);
        (void)pthread_mutex_unlock(&pool->lock);
    }
}

/* Run one job with no lock held; returns its error. */
static int
run_entry(jobq_pool *pool, const struct entry *e)
{
    int err = e->job.run(e->job.arg);

    record_error(&pool->first_err, err);
    if (e->job.done != NULL)
        e->job.done(e->job.arg, err);
    if (e->group != NULL)
        group_finish(e->group, err);
    return err;
}

/* Take up to `max` real jobs from the head into out[]. Stops before a sentinel; returns 0 with
 * *sentinel set when the head is a sentinel. Under lock. */
static size_t
take_batch(jobq_pool *pool, struct entry *out, size_t max, int *sentinel)
{
    size_t n = 0;

    *sentinel = 0;
    while (n < max && pool->count > 0) {
        struct entry *e = &pool->ring[pool->head];
        if (e->job.run == NULL) {
            if (n == 0) {
                *sentinel = 1;
                pool->head = (pool->head + 1) % pool->capacity;
                pool->count--;
            }
            break;
        }
        out[n++] = *e;
        pool->head = (pool->head + 1) % pool->capacity;
        pool->count--;
    }
    return n;
}

static void
wake_submitters(jobq_pool *pool)
{
    if (pool->blocked_submitters > 0 && pool->count <= pool->low_water)
        (void)pthread_cond_broadcast(&pool->space);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    jobq_pool *pool = w->pool;
    char name[16];
    int err = 0;

    current_worker = w;
    (void)snprintf(name, sizeof(name), "%s-%u", pool->name, w->index);
    (void)pthread_setname_np(pthread_self(), name);
    if (pool->worker_init != NULL)
        err = pool->worker_init(pool->hook_arg, w->index);

    (void)pthread_mutex_lock(&pool->lock);
    pool->started++;
    if (err != 0 && pool->init_err == 0)
        pool->init_err = err;
    (void)pthread_cond_broadcast(&pool->idle);
    (void)pthread_mutex_unlock(&pool->lock);

    for (;;) {
        size_t n, i, max, fair;
        int sentinel;
        uint64_t t0, failed = 0;

        (void)pthread_mutex_lock(&pool->lock);
        while (pool->count == 0) {
            pool->idle_workers++;
            (void)pthread_cond_wait(&pool->work, &pool->lock);
            pool->idle_workers--;
            if (pool->wakes_pending > 0)
                pool->wakes_pending--;
        }
        /* Claim a batch only when the queue is long: at most a fair share of it per worker. */
        fair = pool->count / (2 * (size_t)pool->threads);
        max = fair < 1 ? 1 : fair > MAX_BATCH ? MAX_BATCH : fair;
        n = take_batch(pool, w->batch, max, &sentinel);
        wake_submitters(pool);
        /* More work left and someone idle: pass the baton so queued jobs don't wait on us. */
        if (pool->count > 0 && pool->idle_workers > pool->wakes_pending) {
            pool->wakes_pending++;
            (void)pthread_cond_signal(&pool->work);
        }
        (void)pthread_mutex_unlock(&pool->lock);
        if (sentinel)
            break;

        t0 = jobq__now_ns();
        for (i = 0; i < n; i++)
            failed += run_entry(pool, &w->batch[i]) != 0;
        atomic_fetch_add_explicit(&w->busy_ns, jobq__now_ns() - t0, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->completed, n, memory_order_relaxed);
        if (failed > 0)
            atomic_fetch_add_explicit(&w->failed, failed, memory_order_relaxed);
        pool_finish(pool, n);
    }

    if (pool->worker_fini != NULL && err == 0)
        pool->worker_fini(pool->hook_arg, w->index);
    current_worker = NULL;
    return NULL;
}

/* Append an entry (sentinels too). Under lock; caller checked there is room. */
static void
push_entry(jobq_pool *pool, const struct entry *e)
{
    size_t tail = (pool->head + pool->count) % pool->capacity;
    size_t hw;

    pool->ring[tail] = *e;
    pool->count++;
    hw = atomic_load_explicit(&pool->high_water, memory_order_relaxed);
    if (pool->count > hw)
        atomic_store_explicit(&pool->high_water, pool->count, memory_order_relaxed);
    if (pool->idle_workers > pool->wakes_pending) {
        pool->wakes_pending++;
        (void)pthread_cond_signal(&pool->work);
    }
}

/* Join every started worker. Called without the lock after sentinels are queued. */
static void
join_workers(jobq_pool *pool)
{
    unsigned i;

    for (i = 0; i < pool->threads; i++)
        if (pool->workers[i].started)
            (void)pthread_join(pool->workers[i].thread, NULL);
}

/* Queue one sentinel per started worker, waiting for room like a submitter. Under lock. */
static void
queue_sentinels(jobq_pool *pool, unsigned n)
{
    struct entry sentinel;

    memset(&sentinel, 0, sizeof(sentinel));
    while (n-- > 0) {
        while (pool->count == pool->capacity) {
            pool->blocked_submitters++;
            (void)pthread_cond_wait(&pool->space, &pool->lock);
            pool->blocked_submitters--;
        }
        push_entry(pool, &sentinel);
    }
}

static void
pool_free(jobq_pool *pool)
{
    (void)pthread_cond_destroy(&pool->idle);
    (void)pthread_cond_destroy(&pool->space);
    (void)pthread_cond_destroy(&pool->work);
    (void)pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool->ring);
    free(pool);
}

int
jobq_pool_create(jobq_pool **ret_pool, const jobq_pool_options *opts)
{
    jobq_pool_options defaults;
    jobq_pool *pool;
    unsigned i, started = 0;
    int err = 0;

    if (opts == NULL) {
        jobq_pool_options_init(&defaults);
        opts = &defaults;
    }
    if (ret_pool == NULL || opts->threads == 0 || opts->capacity == 0)
        return JOBQ_EINVAL;
    /* The ring also holds one sentinel per worker at shutdown; make sure that always fits
     * eventually (it does: sentinels wait for room), and reject absurd sizes early. */
    if (opts->capacity > SIZE_MAX / sizeof(struct entry))
        return JOBQ_EOVERFLOW;

    pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return JOBQ_ENOMEM;
    pool->ring = calloc(opts->capacity, sizeof(struct entry));
    pool->workers = aligned_alloc(JOBQ__CACHE_LINE,
                                  ((opts->threads * sizeof(struct worker) + JOBQ__CACHE_LINE - 1) /
                                   JOBQ__CACHE_LINE) * JOBQ__CACHE_LINE);
    if (pool->ring == NULL || pool->workers == NULL) {
        free(pool->ring);
        free(pool->workers);
        free(pool);
        return JOBQ_ENOMEM;
    }
    memset(pool->workers, 0, opts->threads * sizeof(struct worker));
    if (pthread_mutex_init(&pool->lock, NULL) != 0 || pthread_cond_init(&pool->work, NULL) != 0 ||
        pthread_cond_init(&pool->space, NULL) != 0 || pthread_cond_init(&pool->idle, NULL) != 0) {
        /* glibc's init functions cannot fail for default attributes; be safe anyway. */
        free(pool->ring);
        free(pool->workers);
        free(pool);
        return JOBQ_ENOMEM;
    }
    pool->capacity = opts->capacity;
    pool->low_water = opts->capacity / 2;
    pool->threads = opts->threads;
    pool->worker_init = opts->worker_init;
    pool->worker_fini = opts->worker_fini;
    pool->hook_arg = opts->hook_arg;
    (void)snprintf(pool->name, sizeof(pool->name), "%s", opts->name ? opts->name : "jobq");
    atomic_init(&pool->outstanding, 0);
    atomic_init(&pool->first_err, 0);

    for (i = 0; i < opts->threads; i++) {
        struct worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            err = JOBQ_ETHREAD;
            break;
        }
        w->started = 1;
        started++;
    }

    (void)pthread_mutex_lock(&pool->lock);
    while (pool->started < started)
        (void)pthread_cond_wait(&pool->idle, &pool->lock);
    if (err == 0)
        err = pool->init_err;
    if (err != 0) {
        pool->closed = 1;
        queue_sentinels(pool, started);
    }
    (void)pthread_mutex_unlock(&pool->lock);

    if (err != 0) {
        join_workers(pool);
        pool_free(pool);
        return err;
    }
    *ret_pool = pool;
    return 0;
}

enum submit_kind { SUBMIT_BLOCK, SUBMIT_TRY, SUBMIT_TIMED };

/* Run a job inline on the submitting worker (caller runs); counts it as submitted+completed. */
static int
run_inline(jobq_pool *pool, const struct entry *e)
{
    int err;

    atomic_fetch_add_explicit(&pool->submitted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->caller_runs, 1, memory_order_relaxed);
    err = run_entry(pool, e);
    atomic_fetch_add_explicit(&pool->caller_completed, 1, memory_order_relaxed);
    if (err != 0)
        atomic_fetch_add_explicit(&pool->caller_failed, 1, memory_order_relaxed);
    return 0;
}

static int
submit_entry(jobq_pool *pool, const struct entry *e, enum submit_kind kind, uint64_t timeout_ns)
{
    struct timespec deadline = {0, 0};
    int blocked = 0, r;

    if (pool == NULL || e->job.run == NULL)
        return JOBQ_EINVAL;
    if (kind == SUBMIT_TIMED)
        deadline = jobq__deadline(timeout_ns);

    (void)pthread_mutex_lock(&pool->lock);
    for (;;) {
        if (pool->closed) {
            (void)pthread_mutex_unlock(&pool->lock);
            return JOBQ_ECLOSED;
        }
        if (pool->count < pool->capacity)
            break;
        if (kind == SUBMIT_TRY) {
            (void)pthread_mutex_unlock(&pool->lock);
            return JOBQ_EAGAIN;
        }
        if (is_own_worker(pool)) {
            (void)pthread_mutex_unlock(&pool->lock);
            return run_inline(pool, e);
        }
        if (!blocked) {
            blocked = 1;
            atomic_fetch_add_explicit(&pool->producer_blocks, 1, memory_order_relaxed);
        }
        pool->blocked_submitters++;
        if (kind == SUBMIT_TIMED) {
            r = pthread_cond_timedwait(&pool->space, &pool->lock, &deadline);
        } else {
            (void)pthread_cond_wait(&pool->space, &pool->lock);
            r = 0;
        }
        pool->blocked_submitters--;
        if (r == ETIMEDOUT && pool->count == pool->capacity && !pool->closed) {
            (void)pthread_mutex_unlock(&pool->lock);
            return JOBQ_ETIMEDOUT;
        }
    }
    if (e->group != NULL)
        atomic_fetch_add(&e->group->outstanding, 1);
    atomic_fetch_add_explicit(&pool->outstanding, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->submitted, 1, memory_order_relaxed);
    push_entry(pool, e);
    (void)pthread_mutex_unlock(&pool->lock);
    return 0;
}

static int
make_entry(struct entry *e, const jobq_job *job, jobq_group *group)
{
    if (job == NULL || job->run == NULL)
        return JOBQ_EINVAL;
    e->job = *job;
    e->group = group;
    return 0;
}

int
jobq_pool_submit(jobq_pool *pool, const jobq_job *job)
{
    struct entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_BLOCK, 0);
}

int
jobq_pool_try_submit(jobq_pool *pool, const jobq_job *job)
{
    struct entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_TRY, 0);
}

int
jobq_pool_timed_submit(jobq_pool *pool, const jobq_job *job, uint64_t timeout_ns)
{
    struct entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_TIMED, timeout_ns);
}

int
jobq_pool_submit_batch(jobq_pool *pool, const jobq_job *jobs, size_t n, size_t *ret_submitted)
{
    size_t done = 0, i;
    int r = 0;

    if (pool == NULL || (jobs == NULL && n > 0))
        return JOBQ_EINVAL;
    for (i = 0; i < n; i++)
        if (jobs[i].run == NULL)
            return JOBQ_EINVAL;

    (void)pthread_mutex_lock(&pool->lock);
    while (done < n) {
        size_t room, k;

        if (pool->closed) {
            r = JOBQ_ECLOSED;
            break;
        }
        room = pool->capacity - pool->count;
        if (room == 0) {
            struct entry e;

            if (is_own_worker(pool)) {
                /* Nested: run one inline, then look for room again. */
                (void)pthread_mutex_unlock(&pool->lock);
                (void)make_entry(&e, &jobs[done], NULL);
                (void)run_inline(pool, &e);
                done++;
                (void)pthread_mutex_lock(&pool->lock);
                continue;
            }
            atomic_fetch_add_explicit(&pool->producer_blocks, 1, memory_order_relaxed);
            pool->blocked_submitters++;
            (void)pthread_cond_wait(&pool->space, &pool->lock);
            pool->blocked_submitters--;
            continue;
        }
        k = n - done < room ? n - done : room;
        atomic_fetch_add_explicit(&pool->outstanding, k, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->submitted, k, memory_order_relaxed);
        for (i = 0; i < k; i++) {
            struct entry e;

            e.job = jobs[done + i];
            e.group = NULL;
            push_entry(pool, &e);
        }
        done += k;
    }
    (void)pthread_mutex_unlock(&pool->lock);
    if (ret_submitted != NULL)
        *ret_submitted = done;
    return r;
}

int
jobq_pool_wait(jobq_pool *pool)
{
    if (pool == NULL)
        return JOBQ_EINVAL;
    if (is_own_worker(pool))
        return JOBQ_EDEADLK;
    (void)pthread_mutex_lock(&pool->lock);
    pool->waiters++;
    /* seq_cst load pairs with the seq_cst fetch_sub in pool_finish (see group_finish). */
    while (atomic_load(&pool->outstanding) != 0)
        (void)pthread_cond_wait(&pool->idle, &pool->lock);
    pool->waiters--;
    (void)pthread_mutex_unlock(&pool->lock);
    return atomic_exchange(&pool->first_err, 0);
}

int
jobq_pool_shutdown(jobq_pool *pool, jobq_shutdown_mode mode, size_t *ret_discarded)
{
    struct entry *dropped = NULL;
    size_t ndropped = 0, i;
    unsigned started = 0;

    if (pool == NULL || (mode != JOBQ_DRAIN && mode != JOBQ_DISCARD))
        return JOBQ_EINVAL;
    if (is_own_worker(pool))
        return JOBQ_EDEADLK;

    (void)pthread_mutex_lock(&pool->lock);
    if (pool->closed) {
        (void)pthread_mutex_unlock(&pool->lock);
        if (ret_discarded != NULL)
            *ret_discarded = 0;
        return 0;
    }
    pool->closed = 1;
    /* Blocked submitters must see `closed` and fail instead of sleeping forever. */
    (void)pthread_cond_broadcast(&pool->space);
    if (mode == JOBQ_DISCARD && pool->count > 0) {
        /* Real jobs only: no sentinel can be queued yet, since closed was clear. */
        dropped = malloc(pool->count * sizeof(*dropped));
        if (dropped != NULL) {
            while (pool->count > 0) {
                dropped[ndropped++] = pool->ring[pool->head];
                pool->head = (pool->head + 1) % pool->capacity;
                pool->count--;
            }
        }
        /* Without memory for the list we fall back to draining: nothing is lost. */
    }
    for (i = 0; i < pool->threads; i++)
        started += pool->workers[i].started;
    queue_sentinels(pool, started);
    (void)pthread_mutex_unlock(&pool->lock);

    /* Discarded jobs: tell their owners, outside the lock, on this thread. */
    for (i = 0; i < ndropped; i++) {
        if (dropped[i].job.done != NULL)
            dropped[i].job.done(dropped[i].job.arg, JOBQ_ECANCELED);
        if (dropped[i].group != NULL)
            group_finish(dropped[i].group, JOBQ_ECANCELED);
    }
    atomic_fetch_add_explicit(&pool->discarded, ndropped, memory_order_relaxed);
    pool_finish(pool, ndropped);
    free(dropped);

    join_workers(pool);
    (void)pthread_mutex_lock(&pool->lock);
    pool->shut_down = 1;
    (void)pthread_mutex_unlock(&pool->lock);
    if (ret_discarded != NULL)
        *ret_discarded = ndropped;
    return 0;
}

void
jobq_pool_destroy(jobq_pool *pool)
{
    /* From one of its own workers the pool cannot be joined (the caller is a worker); freeing
     * it would pull memory from under running threads, so this is refused (documented). */
    if (pool == NULL || is_own_worker(pool))
        return;
    (void)jobq_pool_shutdown(pool, JOBQ_DRAIN, NULL);
    pool_free(pool);
}

unsigned
jobq_pool_threads(const jobq_pool *pool)
{
    return pool == NULL ? 0 : pool->threads;
}

int
jobq_pool_worker_index(const jobq_pool *pool)
{
    return is_own_worker(pool) ? (int)current_worker->index : -1;
}

int
jobq_pool_get_stats(const jobq_pool *pool, jobq_pool_stats *ret_stats, uint64_t *busy_ns,
                    size_t n_busy)
{
    jobq_pool_stats s;
    unsigned i;

    if (pool == NULL || ret_stats == NULL || (busy_ns == NULL && n_busy > 0))
        return JOBQ_EINVAL;
    memset(&s, 0, sizeof(s));
    s.threads = pool->threads;
    s.completed = atomic_load_explicit(&pool->caller_completed, memory_order_relaxed);
    s.failed = atomic_load_explicit(&pool->caller_failed, memory_order_relaxed);
    for (i = 0; i < pool->threads; i++) {
        const struct worker *w = &pool->workers[i];
        s.completed += atomic_load_explicit(&w->completed, memory_order_relaxed);
        s.failed += atomic_load_explicit(&w->failed, memory_order_relaxed);
        if (busy_ns != NULL && i < n_busy)
            busy_ns[i] = atomic_load_explicit(&w->busy_ns, memory_order_relaxed);
    }
    s.submitted = atomic_load_explicit(&pool->submitted, memory_order_relaxed);
    s.discarded = atomic_load_explicit(&pool->discarded, memory_order_relaxed);
    s.caller_runs = atomic_load_explicit(&pool->caller_runs, memory_order_relaxed);
    s.producer_blocks = atomic_load_explicit(&pool->producer_blocks, memory_order_relaxed);
    s.queue_high_water = atomic_load_explicit(&pool->high_water, memory_order_relaxed);
    *ret_stats = s;
    return 0;
}

/* ---- groups ---------------------------------------------------------------------------- */

int
jobq_group_create(jobq_group **ret_group, jobq_pool *pool)
{
    jobq_group *g;

    if (ret_group == NULL || pool == NULL)
        return JOBQ_EINVAL;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return JOBQ_ENOMEM;
    if (pthread_mutex_init(&g->lock, NULL) != 0) {
        free(g);
        return JOBQ_ENOMEM;
    }
    if (pthread_cond_init(&g->done, NULL) != 0) {
        (void)pthread_mutex_destroy(&g->lock);
        free(g);
        return JOBQ_ENOMEM;
    }
    g->pool = pool;
    atomic_init(&g->outstanding, 0);
    atomic_init(&g->first_err, 0);
    *ret_group = g;
    return 0;
}

int
jobq_group_submit(jobq_group *group, const jobq_job *job)
{
    struct entry e;
    int r;

    if (group == NULL)
        return JOBQ_EINVAL;
    r = make_entry(&e, job, group);
    return r != 0 ? r : submit_entry(group->pool, &e, SUBMIT_BLOCK, 0);
}

int
jobq_group_wait(jobq_group *group)
{
    if (group == NULL)
        return JOBQ_EINVAL;
    if (atomic_load(&group->outstanding) != 0 && is_own_worker(group->pool))
        return JOBQ_EDEADLK;
    (void)pthread_mutex_lock(&group->lock);
    group->waiters++;
    while (atomic_load(&group->outstanding) != 0)
        (void)pthread_cond_wait(&group->done, &group->lock);
    group->waiters--;
    (void)pthread_mutex_unlock(&group->lock);
    return atomic_exchange(&group->first_err, 0);
}

void
jobq_group_destroy(jobq_group *group)
{
    if (group == NULL)
        return;
    if (!is_own_worker(group->pool))
        (void)jobq_group_wait(group);
    /* The last finisher may still hold the lock to broadcast: take it once before freeing. */
    (void)pthread_mutex_lock(&group->lock);
    (void)pthread_mutex_unlock(&group->lock);
    (void)pthread_cond_destroy(&group->done);
    (void)pthread_mutex_destroy(&group->lock);
    free(group);
}

/* ---- parallel for / map ------------------------------------------------------------------ */

/*
 * Shared state of one parallel_for call. It lives on the heap with a reference count because
 * helper jobs may start after the caller has returned (the caller never waits for *queued*
 * helpers, only for chunks already taken): each helper and the caller hold one reference.
 */
struct pfor {
    atomic_size_t next;   /* next chunk to take */
    atomic_size_t done;   /* chunks finished (run or skipped) */
    atomic_int err;
    atomic_uint refs;
    size_t nchunks, begin, end, grain;
    jobq_range_fn fn;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t finished;
    int waiting; /* under lock */
};

static void
pfor_release(struct pfor *pf)
{
    if (atomic_fetch_sub(&pf->refs, 1) == 1) {
        (void)pthread_cond_destroy(&pf->finished);
        (void)pthread_mutex_destroy(&pf->lock);
        free(pf);
    }
}

/* Take and run chunks until none are left. */
static void
pfor_work(struct pfor *pf)
{
    size_t c, b, e, finished = 0;

    for (;;) {
        c = atomic_fetch_add_explicit(&pf->next, 1, memory_order_relaxed);
        if (c >= pf->nchunks)
            break;
        /* After an error the remaining chunks are skipped, but still counted as done. */
        if (atomic_load_explicit(&pf->err, memory_order_relaxed) == 0) {
            int r;

            b = pf->begin + c * pf->grain;
            e = pf->end - b < pf->grain ? pf->end : b + pf->grain;
            r = pf->fn(pf->ctx, b, e);
            record_error(&pf->err, r);
        }
        finished++;
    }
    if (finished > 0 && atomic_fetch_add(&pf->done, finished) + finished == pf->nchunks) {
        (void)pthread_mutex_lock(&pf->lock);
        if (pf->waiting)
            (void)pthread_cond_signal(&pf->finished);
        (void)pthread_mutex_unlock(&pf->lock);
    }
}

static int
pfor_helper(void *arg)
{
    struct pfor *pf = arg;

    pfor_work(pf);
    pfor_release(pf);
    return 0;
}

int
jobq_pool_parallel_for(jobq_pool *pool, size_t begin, size_t end, size_t grain, jobq_range_fn fn,
                       void *ctx)
{
    struct pfor *pf;
    size_t n, nchunks, i, helpers;
    jobq_job job;
    int err;

    if (pool == NULL || fn == NULL || end < begin)
        return JOBQ_EINVAL;
    n = end - begin;
    if (n == 0)
        return 0;
    if (grain == 0) {
        /* About 8 chunks per thread: enough to balance uneven chunks, few enough to be cheap. */
        grain = n / (8 * (size_t)pool->threads);
        if (grain == 0)
            grain = 1;
    }
    nchunks = n / grain + (n % grain != 0);
    if (nchunks == 1)
        return fn(ctx, begin, end);

    pf = malloc(sizeof(*pf));
    if (pf == NULL)
        return JOBQ_ENOMEM;
    if (pthread_mutex_init(&pf->lock, NULL) != 0 || pthread_cond_init(&pf->finished, NULL) != 0) {
        free(pf);
        return JOBQ_ENOMEM;
    }
    atomic_init(&pf->next, 0);
    atomic_init(&pf->done, 0);
    atomic_init(&pf->err, 0);
    pf->nchunks = nchunks;
    pf->begin = begin;
    pf->end = end;
    pf->grain = grain;
    pf->fn = fn;
    pf->ctx = ctx;
    pf->waiting = 0;

    /* One helper per worker (less if there are fewer chunks); the caller is the last one.
     * try_submit: a full queue just means fewer helpers, never a wait. */
    helpers = nchunks - 1 < pool->threads ? nchunks - 1 : pool->threads;
    if (is_own_worker(pool) && helpers > 0)
        helpers--;
    atomic_init(&pf->refs, (unsigned)helpers + 1);
    job.run = pfor_helper;
    job.done = NULL;
    job.arg = pf;
    for (i = 0; i < helpers; i++) {
        if (jobq_pool_try_submit(pool, &job) != 0) {
            atomic_fetch_sub(&pf->refs, (unsigned)(helpers - i));
            break;
        }
    }

    pfor_work(pf);
    (void)pthread_mutex_lock(&pf->lock);
    pf->waiting = 1;
    while (atomic_load(&pf->done) != nchunks)
        (void)pthread_cond_wait(&pf->finished, &pf->lock);
    (void)pthread_mutex_unlock(&pf->lock);
    err = atomic_load(&pf->err);
    pfor_release(pf);
    return err;
}

struct map_ctx {
    const unsigned char *in;
    unsigned char *out;
    size_t in_size, out_size;
    jobq_map_fn fn;
    void *ctx;
};

static int
map_range(void *arg, size_t b, size_t e)
{
    const struct map_ctx *m = arg;
    size_t i;
    int r;

    for (i = b; i < e; i++) {
        r = m->fn(m->ctx, m->in + i * m->in_size, m->out + i * m->out_size);
        if (r != 0)
            return r;
    }
    return 0;
}

int
jobq_pool_map(jobq_pool *pool, const void *in, size_t in_size, void *out, size_t out_size,
              size_t n, jobq_map_fn fn, void *ctx)
{
    struct map_ctx m;

    if (pool == NULL || fn == NULL || (n > 0 && (in == NULL || out == NULL)))
        return JOBQ_EINVAL;
    if ((in_size != 0 && n > SIZE_MAX / in_size) || (out_size != 0 && n > SIZE_MAX / out_size))
        return JOBQ_EOVERFLOW;
    m.in = in;
    m.out = out;
    m.in_size = in_size;
    m.out_size = out_size;
    m.fn = fn;
    m.ctx = ctx;
    return jobq_pool_parallel_for(pool, 0, n, 0, map_range, &m);
}
