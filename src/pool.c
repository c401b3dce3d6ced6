/*
 * pool.c - jobq_pool: a fixed set of worker threads draining a bounded FIFO of jobs.
 *
 * DESIGN
 * The FIFO is the lock-free ring of ring.h (one CAS per push, one per batch of pops). Locks and
 * condition variables are used only to *park*: a worker that finds the ring empty, a submitter
 * that finds it full, a jobq_pool_wait caller. The costs that matter for small jobs are system
 * calls, pre-emption and cache-line traffic, so:
 *   - nobody signals unless somebody sleeps: sleeper counts are atomics checked after a
 *     seq_cst fence (the Dekker pattern below), and a submitter wakes one idle worker at a time,
 *     counting wake-ups still in flight;
 *   - a worker spins briefly on an empty ring before sleeping (a job usually follows at once);
 *   - a submitter that finds the ring full polls it briefly while the workers drain it fast
 *     (short jobs), and otherwise parks and is woken only once the ring has drained to a
 *     low-water mark (half the capacity), so it refills in one burst instead of pre-empting a
 *     busy worker per job - woken by a worker on its own CPU (Linux; by any worker at a quarter
 *     of the capacity), since a wake-up onto another CPU costs the waker an interrupt; one
 *     parked where no worker runs sleeps on a timer set by the drain rate instead (pace_ns);
 *   - a worker claims a batch of jobs with one CAS when the ring is long (half the ready run, so
 *     long jobs still spread over all workers), counts each job on counters in its own cache
 *     line (plain stores, one fence per batch) and times the batch with one pair of clock
 *     reads;
 *   - (Linux) a worker woken onto the CPU of a parallel_for caller, a starved one woken onto
 *     its submitter's CPU, or one woken where another worker is awake, moves away (spread_out):
 *     some kernels leave them stacked there.
 *
 * Lost wake-up freedom (Dekker): a sleeper increments its sleeper count (seq_cst), re-checks the
 * ring, and only then waits under the park lock; the other side changes the ring, issues a
 * seq_cst fence, and reads the count. At least one of them sees the other's write; if the waker
 * sees the sleeper it signals under the same lock, which the sleeper holds until it waits.
 *
 * Shutdown is by sentinel: `closed` is set (new submits fail; a push that claimed its cell
 * before that is ahead of the sentinels in FIFO order), and one sentinel entry (run == NULL,
 * which users cannot submit) per worker is queued behind the real jobs, so FIFO order drains the
 * work first; a worker that takes a sentinel exits (handing back any extra sentinels its batch
 * took); then all are joined. DISCARD mode first drops every job not yet started, calling its
 * done with JOBQ_ECANCELED: those in the ring, those in workers' claimed batches (taken the way
 * a thief takes them), and - `discarding` is set first - any a worker claims after that.
 * A second shutdown call waits until the first has joined the workers.
 *
 * Nested submission: a worker that submits into its own pool's full ring would wait for space
 * only workers can make - with one worker, forever. It runs the job inline instead ("caller
 * runs"). A worker's parallel_for likewise takes chunks itself and never waits for queued work.
 *
 * Accounting: outstanding work = accepted - finished (see struct jobq_pool).
 * At rest: stats.submitted == completed + discarded.
 *
 * LOCK ORDER: pool->lock, then group->lock or pf->lock. User code never runs with a lock held.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "jobq-private.h"
#include "placement.h"
#include "ring.h"

#define DEFAULT_CAPACITY 1024
/* Most entries one pop scans (it claims half of them with several workers). Every pop costs a
 * CAS on `head` and cross-core misses on the cells' lines and on the parking counters; 128
 * (batches of up to 64) against 32 (up to 16): 1 us tasks +3-5 %, empty tasks +22 % in
 * alternating bench-pool --point runs on the 2-vCPU development VM (2026-12-01); 100 us tasks
 * unchanged. A batch stays stealable, so a big one does not hold long jobs back. */
#define MAX_BATCH 128
/* A searching worker polls the head cell SPIN_POLLS times, SPIN_PAUSES `pause`s apart (a few
 * µs in all) before it parks: polling less often than every pause keeps the cell line from
 * ping-ponging with the submitter that is writing it. */
#define SPIN_POLLS 64
#define SPIN_PAUSES 4
/* A worker is starved after STARVE_N awake periods in a row shorter than STARVE_NS (see
 * spread_out): a few wake-ups' worth of work each time, so the jobs come slower than it runs
 * them. */
#define STARVE_NS 50000u
#define STARVE_N 2u
/* parallel_for's caller, out of chunks, polls this many times (SPIN_PAUSES apart, ~20 µs in
 * all) for the chunks still running on other threads before it sleeps: they were sized to be
 * short, and a futex wake-up of the caller costs more than that on a hypervisor. */
#define PFOR_WAIT_POLLS 1024
/* A blocking submitter that finds the ring full polls it (SPIN_PAUSES apart) for room for
 * min(capacity / 8, SPACE_SPIN_ROOM) jobs: for at most SPACE_SPIN_POLLS polls (~30 us), and
 * after SPACE_SPIN_PROBE polls only while the drain rate seen so far predicts that much room
 * within that limit (see spin_for_space). */
#define SPACE_SPIN_POLLS 256
#define SPACE_SPIN_PROBE 8
#define SPACE_SPIN_ROOM 128
/*
 * A ring cell can be claimed and not yet filled or emptied: a producer pre-empted between its
 * CAS and its store to the cell holds up that cell, a consumer pre-empted inside its pop holds
 * the producers at the position it announced + capacity (ring.h). The counts then disagree
 * with the cells - a worker sees jobs counted that it cannot take, a submitter sees room it
 * cannot use - and the Dekker handshake that makes a full sleep safe is not there (the other
 * side's store to the cell is a release, not seq_cst). Rather than poll until the stalled
 * thread runs again (on an oversubscribed machine the poller may hold the very CPU it needs),
 * such a thread sleeps STALL_PARK_NS at a time; a signal still ends the sleep at once.
 * A submitter calls it a stall after STALL_TRIES failed pushes in a row with room counted.
 */
#define STALL_PARK_NS 100000u
#define STALL_TRIES 64
/* A blocking submitter parks on a timer (see pace_ns) only when the ring's low water is at
 * least PACE_MIN_LOW_WATER jobs and the predicted drain to it takes PACE_MIN_NS or more (the
 * timer's default slack is 50 us); it sleeps PACE_MAX_NS at most per timer. */
#define PACE_MIN_LOW_WATER 64
#define PACE_MIN_NS 100000.0
#define PACE_MAX_NS 1000000000u

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

struct jobq_group {
    jobq_pool *pool;
    pthread_mutex_t lock;
    pthread_cond_t done;
    atomic_size_t outstanding;
    atomic_int first_err;
    unsigned waiters; /* under lock */
    int orphaned;     /* under lock: destroyed from a worker while jobs were outstanding */
};

/*
 * Per-worker state; aligned so workers never write to each other's cache lines.
 *
 * A batch claimed from the ring stays *stealable*: its entries are handed out one at a time
 * through `claim` (generation << 32 | next << 16 | n), by the owner and by idle workers alike.
 * Without that, a job that blocks waiting for a later job of the same batch would hold it
 * hostage while other workers sit idle. The owner refills `batch` only once `copied` says every
 * claimed entry has been copied out; the generation makes a thief's stale CAS fail.
 */
struct worker {
    _Alignas(JOBQ__CACHE_LINE) jobq_pool *pool;
    pthread_t thread;
    unsigned index;
    int started;
    atomic_uint_fast64_t completed;
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t busy_ns;
    _Atomic uint64_t claim;
    atomic_uint copied;
    atomic_int cpu;    /* CPU the worker woke up on (see spread_out), -1 while parked */
    uint64_t woke_ns;  /* owner only: when it last woke from parking (0: never) */
    unsigned starved;  /* owner only: awake periods in a row shorter than STARVE_NS */
    unsigned batch_n;  /* owner only: size of the current batch */
    unsigned hw_ticks; /* owner only: pops that saw a full scan (high-water sampling) */
    struct jobq__entry batch[MAX_BATCH];
};

#define CLAIM_NEXT(c) ((unsigned)((c) >> 16) & 0xffffu)
#define CLAIM_N(c) ((unsigned)(c)&0xffffu)

/* Take the next unclaimed entry of w's current batch (owner or thief). Returns 1 if got one. */
static int
batch_claim(struct worker *w, struct jobq__entry *out)
{
    uint64_t c = atomic_load_explicit(&w->claim, memory_order_acquire);

    while (CLAIM_NEXT(c) < CLAIM_N(c)) {
        /* acquire on success: the entries were written before the batch was published. */
        if (atomic_compare_exchange_weak_explicit(&w->claim, &c, c + (1u << 16),
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            *out = w->batch[CLAIM_NEXT(c)];
            /* release: our copy is done before the owner may overwrite the slot. */
            atomic_fetch_add_explicit(&w->copied, 1, memory_order_release);
            return 1;
        }
    }
    return 0;
}

/* Publish w->batch[0..n) as w's new batch. The previous one must be fully copied out. */
static void
batch_publish(struct worker *w, unsigned n)
{
    uint64_t gen = (atomic_load_explicit(&w->claim, memory_order_relaxed) >> 32) + 1;

    w->batch_n = n;
    atomic_store_explicit(&w->copied, 0, memory_order_relaxed);
    /* seq_cst: a parking worker's seq_cst sleeper increment then scan of the claim words, and
     * our publish then load of the sleeper count (made_work), form a Dekker pair. */
    atomic_store(&w->claim, gen << 32 | (uint64_t)n);
}

/* Wait until every entry of w's current batch has been copied out (thieves copy 1 entry right
 * after claiming it, so this is a few nanoseconds unless a thief was pre-empted). */
static void
batch_drain(struct worker *w)
{
    while (atomic_load_explicit(&w->copied, memory_order_acquire) != w->batch_n)
        cpu_relax();
}

struct jobq_pool {
    struct jobq__ring ring; /* its `tail` also carries the closed bit */
    /* Set once by a DISCARD shutdown before it drops the queued jobs: a worker then drops each
     * job it claims instead of running it. Read per job, on a line of its own (the ring's lines
     * end before it, work_sleepers starts the next). */
    atomic_int discarding;

    /* Read on every submit, written rarely: parking state. */
    _Alignas(JOBQ__CACHE_LINE) atomic_uint work_sleepers;
    atomic_uint wakes_pending;    /* signals sent to `work` not yet consumed */
    atomic_uint space_sleepers;
    atomic_uint space_paced;      /* of those, parked on a timer (see pace_ns) */
    atomic_int space_cpu;         /* CPU the last submitter to park for space parked on */
    _Atomic uint64_t drain_ps;    /* ring drain time per job seen by the last park, ps; 0: none */
    atomic_uint waiters;          /* threads in jobq_pool_wait */
    /* Written by workers each time they start or stop searching; read only before a signal. */
    _Alignas(JOBQ__CACHE_LINE) atomic_uint searching;
    atomic_int first_err;
    atomic_int caller_cpu; /* CPU of the last parallel_for caller that handed out helpers */
    atomic_int waker_cpu;  /* CPU of the last non-worker thread that woke a worker */
    _Alignas(JOBQ__CACHE_LINE) pthread_mutex_t lock;
    pthread_cond_t work;  /* workers wait for jobs */
    pthread_cond_t space; /* submitters wait for room */
    pthread_cond_t idle;  /* jobq_pool_wait / create wait here */

    /*
     * Accounting without a shared per-job counter (workers would bounce its cache line to the
     * submitter on every job): jobs queued = ring pushes - sentinels; finished = the sum of
     * the workers' own `completed` counters + discarded. Outstanding = queued - finished. Jobs
     * run inline by a submitting worker are counted in caller_runs/caller_completed only.
     */
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t sentinels;
    atomic_uint_fast64_t discarded;
    atomic_uint_fast64_t caller_runs;
    atomic_uint_fast64_t caller_completed;
    atomic_uint_fast64_t caller_failed;
    atomic_uint_fast64_t producer_blocks;
    atomic_size_t high_water;
    atomic_int shutting_down;
    int shut_down;        /* under lock: the first shutdown has joined the workers */
    size_t low_water;
    unsigned threads;
    jobq_worker_init_fn worker_init;
    jobq_worker_fini_fn worker_fini;
    void *hook_arg;
    char name[16];        /* thread name prefix: Linux names hold 15 bytes */
    unsigned started;     /* under lock: workers past their init hook */
    int init_err;         /* under lock */
    struct worker *workers;
};

/* The worker the current thread is, if any: lets submit/wait detect nesting. */
static _Thread_local struct worker *current_worker;
/*
 * The pools this thread is shutting down, innermost first: a DISCARD shutdown runs discarded
 * jobs' done callbacks on this thread, and one that shuts down another pool nests a second
 * frame. Such a callback must not wait for (or free) a pool whose shutdown is its own caller:
 * the wait would wait for itself (its job is counted only after its done returns), and
 * destroy would free the pool under that shutdown and its workers. A stack, not one pointer:
 * an inner shutdown of another pool used to clear the outer one's mark.
 */
struct shutdown_frame {
    const jobq_pool *pool;
    struct shutdown_frame *outer;
};
static _Thread_local struct shutdown_frame *current_shutdown;

static int
is_own_worker(const jobq_pool *pool)
{
    return current_worker != NULL && current_worker->pool == pool;
}

/* Whether this thread is inside a shutdown of `pool` (in a done callback it runs). */
static int
in_own_shutdown(const jobq_pool *pool)
{
    const struct shutdown_frame *f;

    for (f = current_shutdown; f != NULL; f = f->outer)
        if (f->pool == pool)
            return 1;
    return 0;
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

/* Wake every thread parked on `cond` if `sleepers` says there is one. Call after a seq_cst
 * fence that follows the state change the sleepers wait for. */
static void
wake_all(jobq_pool *pool, atomic_uint *sleepers, pthread_cond_t *cond)
{
    if (atomic_load(sleepers) > 0) {
        /* The empty critical section orders us after any sleeper that is between its
         * re-check and its wait (it holds the lock until it waits); broadcasting after the
         * unlock lets a woken thread take the lock at once instead of sleeping on it again,
         * which on few cores would pre-empt us. */
        (void)pthread_mutex_lock(&pool->lock);
        (void)pthread_mutex_unlock(&pool->lock);
        (void)pthread_cond_broadcast(cond);
    }
}

/*
 * A group job finished: drop the group's count and wake its waiters at zero. The last decrement
 * happens under g->lock: the waiter sees zero only under that lock, and may free the group as
 * soon as it does, so nothing may touch g after the unlock. (Decrementing first and locking
 * after let a waiter return and free the group in between: ASan caught it in a matmul test.)
 */
static void
group_free(jobq_group *g)
{
    (void)pthread_cond_destroy(&g->done);
    (void)pthread_mutex_destroy(&g->lock);
    free(g);
}

static void
group_finish(jobq_group *g, int err)
{
    size_t cur;
    int last, orphan;

    record_error(&g->first_err, err);
    cur = atomic_load(&g->outstanding);
    while (cur > 1)
        if (atomic_compare_exchange_weak(&g->outstanding, &cur, cur - 1))
            return; /* not the last: the group cannot be freed while we are here */
    (void)pthread_mutex_lock(&g->lock);
    last = atomic_fetch_sub(&g->outstanding, 1) == 1;
    if (last && g->waiters > 0)
        (void)pthread_cond_broadcast(&g->done);
    orphan = last && g->orphaned;
    (void)pthread_mutex_unlock(&g->lock);
    if (orphan)
        group_free(g);
}

/* Queued jobs that are done: run by a worker or discarded. */
static uint64_t
finished_count(const jobq_pool *pool)
{
    uint64_t n = atomic_load(&pool->discarded);
    unsigned i;

    for (i = 0; i < pool->threads; i++)
        n += atomic_load(&pool->workers[i].completed);
    return n;
}

static uint64_t
queued_count(const jobq_pool *pool)
{
    /* `sentinels` first: a sentinel is counted after its push, so a count read before `tail`
     * can only make the result too high (a waiter sleeps until the count's pool_finish), never
     * too low (read after, a push and count in between made it one short). */
    size_t sentinels = atomic_load(&pool->sentinels);

    return jobq__ring_pushed(&pool->ring) - sentinels;
}

/*
 * Jobs finished (the counters are already bumped, seq_cst): wake jobq_pool_wait callers, but
 * only once nothing is outstanding - waking them per batch would cost a context switch each
 * time for nothing. Of two workers finishing at once, the one whose seq_cst loads come last
 * sees both increments, so the final wake-up is never missed.
 */
static void
pool_finish(jobq_pool *pool)
{
    if (atomic_load(&pool->waiters) > 0 && finished_count(pool) == queued_count(pool))
        wake_all(pool, &pool->waiters, &pool->idle);
}

/* Run one job with no lock held; returns its error. */
static int
run_entry(jobq_pool *pool, const struct jobq__entry *e)
{
    int err = e->job.run(e->job.arg);

    record_error(&pool->first_err, err);
    if (e->job.done != NULL)
        e->job.done(e->job.arg, err);
    if (e->group != NULL)
        group_finish(e->group, err);
    return err;
}

/* Drop a job that was queued but not started (DISCARD shutdown); the caller counts it. */
static void
drop_entry(const struct jobq__entry *e)
{
    if (e->job.done != NULL)
        e->job.done(e->job.arg, JOBQ_ECANCELED);
    if (e->group != NULL)
        group_finish(e->group, JOBQ_ECANCELED);
}

static int
current_cpu(void)
{
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

/*
 * A ring change made room: wake blocked submitters once the ring is down to low water - from
 * the CPU the submitter parked on, or from anywhere at half of low water (jobq__wake_submitter).
 * A wake-up onto another CPU costs the waker an inter-processor interrupt: on the 2-vCPU
 * development VM that kept it in the futex call 19 us instead of 5 us (median; sched and
 * futex tracepoints, 1 us jobs: 617 of 3744 wake-ups were remote, 4 of 3725 after).
 */
static void
made_room(jobq_pool *pool)
{
    unsigned sleepers;
    size_t size;
    int paced;

    /* seq_cst load after the seq_cst CAS on head: the Dekker pair of wait_for_space(). */
    sleepers = atomic_load(&pool->space_sleepers);
    if (sleepers == 0)
        return;
    size = jobq__ring_size(&pool->ring);
    if (size > pool->low_water)
        return;
    /* A stale count only moves the wake-up between low water and half of it (a paced
     * sleeper counts itself after `space_sleepers` and uncounts itself before). */
    paced = atomic_load_explicit(&pool->space_paced, memory_order_relaxed) >= sleepers;
    if (jobq__wake_submitter(size, pool->low_water, paced ? -1 : current_cpu(),
                             atomic_load_explicit(&pool->space_cpu, memory_order_relaxed),
                             paced))
        wake_all(pool, &pool->space_sleepers, &pool->space);
}

/* Whether an awake worker other than `self` (NULL: any) last woke up on `cpu`. */
static int
worker_on(const jobq_pool *pool, const struct worker *self, int cpu)
{
    unsigned i;

    for (i = 0; i < pool->threads; i++)
        if (&pool->workers[i] != self &&
            atomic_load_explicit(&pool->workers[i].cpu, memory_order_relaxed) == cpu)
            return 1;
    return 0;
}

/* Whether `cpu` has other pool threads on it: the last parallel_for caller, or a worker last
 * seen waking there. */
static int
cpu_taken(const jobq_pool *pool, const struct worker *self, int cpu)
{
    return atomic_load_explicit(&pool->caller_cpu, memory_order_relaxed) == cpu ||
           worker_on(pool, self, cpu);
}

/* jobq__spread_target's view of the pool. */
static int
taken_by_pool(void *ctx, int cpu)
{
    const struct worker *w = ctx;

    return cpu_taken(w->pool, w, cpu);
}

/*
 * Called by a worker that has just been woken. The kernel places a woken thread on its previous
 * CPU or its waker's, and on the development VM (a 2-vCPU Firecracker guest, kernel 6.18) it did
 * not look for an idle one. Two placements cost a lot there, and the worker corrects them by
 * moving itself (pin to the new CPU, then restore its own affinity mask: the kernel leaves the
 * thread where it is, and the mask the user or the cgroup set stays as it was):
 *
 * 1. On the CPU of the last parallel_for caller, which computes chunks while its helpers run:
 *    move to an allowed CPU with neither the caller nor a worker on it, if there is one. After a
 *    pause, a caller and its one worker ended up on one vCPU for as long as they kept waking
 *    each other, every call serial: jobq_matmul, N = 128, 2 threads, 101 us per call instead of
 *    60 in 5 of 16 bench-matmul runs, none of 16 with this; N = 256, 0.74 ms instead of 0.40 in
 *    2 of 4. This rule alone (`caller_only`) is also checked when a worker starts a
 *    parallel_for helper: one pre-empted by the caller it had just woken (see
 *    yield_to_worker) takes the helper without having slept.
 * 2. Starved (its last STARVE_N awake periods each shorter than STARVE_NS: the jobs come slower
 *    than the workers run them) and on the CPU of the thread that woke it (a submitter, not a
 *    worker): move to another CPU without the submitter, sharing it with a worker if need be.
 *    Then the submitter, the bottleneck, keeps its CPU. Empty jobs, single submit, 2 workers:
 *    16-31 M jobs/s whenever a worker sat on the submitter's CPU (5 of 16 fresh pools), 50-63
 *    otherwise; alternating bench-pool --point runs, medians of 5: 36 -> 63 M/s, batch submit
 *    56 -> 75 M/s; 1 us and 100 us jobs unchanged (their workers do not starve).
 * 3. Not starved and on a CPU where another awake worker woke: move to an allowed CPU with no
 *    worker and not the caller's (a submitter's counts as free: it parks or shares), if there
 *    is one. Two wake-ups sent back to back landed on one vCPU (see make_way, which lets the
 *    second worker run at once instead of a tick later so that it can get here). A cold start
 *    of 4000 single submits of 100 us jobs right after the submitter had been busy: the second
 *    worker's first job at 2-2.7 ms in 10 of 12 runs before, 1 of 12 after; bench-pool 100 us
 *    single submit alternating with raw-threads, 3 runs each: 0.967-0.968 -> 0.987-0.990.
 *    Starved workers skip this rule, which would undo rule 2.
 *
 * The decision is jobq__spread_target (placement.c). On this VM the kernel woke the worker
 * beside its waker again after a move, so a starved worker may move on most wake-ups; a moved
 * worker's previous CPU is its own, which helps kernels that keep it there. Cost per wake-up:
 * two clock reads, a getcpu (rseq or vDSO) and a load per worker; three system calls per move.
 * A worker that a running worker keeps off its CPU cannot move itself until it runs, which
 * without make_way's yield is when the first is pre-empted (1-4 ms late): moving it then
 * measured no better.
 */
static void
spread_out(jobq_pool *pool, struct worker *w, int caller_only)
{
#ifdef __linux__
    int caller = atomic_load_explicit(&pool->caller_cpu, memory_order_relaxed), me, best, waker;
    int starved = !caller_only && w->starved >= STARVE_N, stacked;
    cpu_set_t allowed, one;

    if (caller_only && caller < 0)
        return;
    me = current_cpu();
    atomic_store_explicit(&w->cpu, me, memory_order_relaxed);
    if (me < 0)
        return;
    stacked = !caller_only && pool->threads > 1 && worker_on(pool, w, me);
    waker = atomic_load_explicit(&pool->waker_cpu, memory_order_relaxed);
    if (!jobq__spread_wanted(me, caller, waker, starved, stacked))
        return;
    if (pthread_getaffinity_np(pthread_self(), sizeof(allowed), &allowed) != 0)
        return;
    best = jobq__spread_target(me, caller, waker, starved, stacked, &allowed, taken_by_pool, w);
    if (best < 0)
        return;
    atomic_store_explicit(&w->cpu, best, memory_order_relaxed);
    CPU_ZERO(&one);
    CPU_SET(best, &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0) {
        atomic_store_explicit(&w->cpu, me, memory_order_relaxed);
        return;
    }
    /* Fails only if the allowed set changed in between; the thread then stays on `best`,
     * which was in it. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof(allowed), &allowed);
#else
    (void)pool;
    (void)w;
    (void)caller_only;
#endif
}

/*
 * Called by a worker that has just been woken (and placed itself): if another worker's wake-up
 * is still on its way, yield the CPU once. Two wake-ups sent back to back can land on one CPU:
 * the kernel counts a CPU whose wake-up has not landed yet as idle. sched: tracepoints on the
 * development VM showed the second worker then waiting behind the first for a whole scheduler
 * tick (4.5 ms) while the other vCPU sat idle, and a submitter that had just been busy made it
 * the rule (second worker's first 100 us job at 2-2.7 ms in 10 of 12 cold starts, 0-1 of 12
 * otherwise). The yield lets such a stacked worker run now, see (spread_out) that it woke where
 * a worker is awake, and move to a free CPU; with nothing else queued here it returns at once.
 */
static void
make_way(jobq_pool *pool, const struct worker *w)
{
#ifdef __linux__
    /* Not when starved: such a worker parks and wakes again within microseconds, and the
     * stacked move does not apply to it (see jobq__spread_wanted). */
    if (pool->threads > 1 && w->starved < STARVE_N &&
        atomic_load_explicit(&pool->wakes_pending, memory_order_relaxed) > 0)
        (void)sched_yield();
#else
    (void)pool;
    (void)w;
#endif
}

/*
 * Called by a parallel_for caller on `cpu` that has just queued its helpers: if an awake worker
 * last woke on this CPU, it can only be runnable behind us (or gone elsewhere since), so yield
 * once. A worker that wakes its jobq_pool_wait caller on its own CPU is often pre-empted by it
 * right there, still counted as searching, so queuing the helpers wakes nobody: sched:
 * tracepoints showed such a worker waiting 3.9 ms (until the tick) beside the caller while the
 * other vCPU idled (cold 1-worker calls of 4000 100 us jobs: first chunk 1.9-3.9 ms late in 6
 * of 6). After the yield it finds the helper, sees the caller's CPU and moves (spread_out).
 */
static void
yield_to_worker(jobq_pool *pool, int cpu)
{
#ifdef __linux__
    if (cpu >= 0 && worker_on(pool, NULL, cpu))
        (void)sched_yield();
#else
    (void)pool;
    (void)cpu;
#endif
}

/*
 * A job was queued: wake one parked worker, unless a worker is searching (spinning on the ring:
 * it will take the job within microseconds, and if it gives up it re-checks the ring after
 * announcing itself as a sleeper) or enough wake-ups are already on their way. This is what
 * keeps tiny jobs free of system calls: workers are not woken per job, a searcher picks them up.
 */
static void
made_work(jobq_pool *pool)
{
    /* seq_cst load after the seq_cst CAS on tail: the Dekker pair of worker_take(). */
    if (atomic_load(&pool->work_sleepers) >
            atomic_load_explicit(&pool->wakes_pending, memory_order_relaxed) &&
        atomic_load_explicit(&pool->searching, memory_order_relaxed) == 0) {
        int wake = 0;

        (void)pthread_mutex_lock(&pool->lock);
        if (atomic_load(&pool->work_sleepers) > atomic_load(&pool->wakes_pending)) {
            atomic_fetch_add(&pool->wakes_pending, 1);
            wake = 1;
        }
        (void)pthread_mutex_unlock(&pool->lock);
        /* After the unlock, as in wake_all(): the sleeper is waiting by now. */
        if (wake) {
            /* Only submitters: a worker's chain wake-up says nothing about the bottleneck. */
            if (!is_own_worker(pool))
                atomic_store_explicit(&pool->waker_cpu, current_cpu(), memory_order_relaxed);
            (void)pthread_cond_signal(&pool->work);
        }
    }
}

/* Steal one entry from any other worker's batch. Returns 1 if got one. */
static int
steal(jobq_pool *pool, const struct worker *self, struct jobq__entry *out)
{
    unsigned i;

    for (i = 0; i < pool->threads; i++) {
        struct worker *o = &pool->workers[i];
        uint64_t c;

        if (o == self)
            continue;
        c = atomic_load_explicit(&o->claim, memory_order_relaxed);
        if (CLAIM_NEXT(c) < CLAIM_N(c) && batch_claim(o, out))
            return 1;
    }
    return 0;
}

/* Whether any worker's batch has an unclaimed entry (seq_cst loads: see batch_publish). */
static int
stealable(const jobq_pool *pool)
{
    unsigned i;

    for (i = 0; i < pool->threads; i++) {
        uint64_t c = atomic_load(&pool->workers[i].claim);
        if (CLAIM_NEXT(c) < CLAIM_N(c))
            return 1;
    }
    return 0;
}

/* Pop a batch for worker w. Returns the batch size, 0 when the ring is empty; *ret_left says
 * whether ready jobs were left behind for others. */
static size_t
worker_pop(jobq_pool *pool, struct worker *w, int *ret_left)
{
    size_t n, found = 0, size;
    size_t hw = atomic_load_explicit(&pool->high_water, memory_order_relaxed);

    batch_drain(w);
    /* With several workers take at most half of the ready run (the ring caps it at
     * MAX_BATCH), so long jobs still spread over all workers. */
    n = jobq__ring_try_pop(&pool->ring, w->index, w->batch, MAX_BATCH, pool->threads > 1,
                           &found);
    *ret_left = found > n;
    if (n == 0)
        return 0;
    /*
     * High-water mark: the ready run the pop saw is the queue's length, up to MAX_BATCH where
     * the scan stops. Only beyond that is `tail` read, and only every 8th time: a worker that
     * reads `tail` pulls the submitters' cache line into the shared state, and the next push's
     * CAS then waits for it to be invalidated in our cache (a cross-core round trip, ~0.5 us
     * on the development VM; perf put 78 % of submit's time on that CAS when every pop read
     * it). A full ring is recorded exactly by note_full().
     */
    size = found;
    if (found == MAX_BATCH && hw < pool->ring.limit && (++w->hw_ticks & 7) == 0)
        size = jobq__ring_size(&pool->ring) + n;
    if (size > pool->ring.limit)
        size = pool->ring.limit;
    /* A CAS, not a store: another worker or note_full() may have raised it since we read it. */
    while (size > hw && !atomic_compare_exchange_weak_explicit(&pool->high_water, &hw, size,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed))
        ;
    batch_publish(w, (unsigned)n);
    made_room(pool);
    return n;
}

/*
 * Give worker w its next batch (published in w->batch), searching then parking while there is
 * no work. Work is the ring, or an unclaimed entry of another worker's batch (stolen into a
 * batch of one). At most half the workers (at least one) search at a time: on an
 * oversubscribed machine more spinners would only steal the CPU from the submitter they wait
 * for.
 */
static void
worker_take(jobq_pool *pool, struct worker *w)
{
    unsigned spins, max_searching = pool->threads / 2 > 0 ? pool->threads / 2 : 1;
    struct jobq__entry e;
    int left = 0, searched = 0, slept;

    for (;;) {
        if (worker_pop(pool, w, &left) > 0)
            goto got;
        if (atomic_fetch_add(&pool->searching, 1) < max_searching) {
            for (spins = 0; spins < SPIN_POLLS; spins++) {
                unsigned p;

                for (p = 0; p < SPIN_PAUSES; p++)
                    cpu_relax();
                if (jobq__ring_ready(&pool->ring) && worker_pop(pool, w, &left) > 0)
                    break;
                if (steal(pool, w, &e)) {
                    batch_drain(w);
                    w->batch[0] = e;
                    batch_publish(w, 1);
                    left = 0;
                    break;
                }
            }
            atomic_fetch_sub(&pool->searching, 1);
            if (spins < SPIN_POLLS) {
                searched = 1;
                goto got;
            }
        } else {
            atomic_fetch_sub(&pool->searching, 1);
        }
        (void)pthread_mutex_lock(&pool->lock);
        atomic_fetch_add(&pool->work_sleepers, 1);
        slept = 0;
        if (jobq__ring_size(&pool->ring) == 0 && !stealable(pool)) {
            uint64_t t = jobq__now_ns();

            /* How long this worker stayed awake since its last wake-up (see spread_out). */
            w->starved = w->woke_ns != 0 && t - w->woke_ns < STARVE_NS
                             ? (w->starved < STARVE_N ? w->starved + 1 : STARVE_N)
                             : 0;
            atomic_store_explicit(&w->cpu, -1, memory_order_relaxed);
            (void)pthread_cond_wait(&pool->work, &pool->lock);
            if (atomic_load(&pool->wakes_pending) > 0)
                atomic_fetch_sub(&pool->wakes_pending, 1);
            slept = 1;
        } else if (!jobq__ring_ready(&pool->ring) && !stealable(pool)) {
            /* Jobs counted, none ready: a submitter stalled in its push (see STALL_PARK_NS).
             * A wait that times out may still have consumed a signal, so a pending wake-up is
             * taken off either way: one too many off only costs a spare signal later, one left
             * on would keep made_work() from waking the parked workers ever again. */
            struct timespec until = jobq__deadline(STALL_PARK_NS);

            (void)pthread_cond_timedwait(&pool->work, &pool->lock, &until);
            if (atomic_load(&pool->wakes_pending) > 0)
                atomic_fetch_sub(&pool->wakes_pending, 1);
        }
        atomic_fetch_sub(&pool->work_sleepers, 1);
        (void)pthread_mutex_unlock(&pool->lock);
        if (slept) {
            spread_out(pool, w, 0);
            make_way(pool, w);
            /* After a move, so that its cost does not count as work. */
            w->woke_ns = jobq__now_ns();
        }
    }
got:
    /* Work left behind in the ring or in our batch: make sure someone is awake to take it.
     * A searcher must also look again after it stopped searching: producers skipped their
     * wake-up while it searched (seq_cst: our decrement of `searching`, then these loads, pair
     * with a producer's push, then its load of `searching`). */
    if (left || w->batch_n > 1 ||
        (searched && (jobq__ring_size(&pool->ring) > 0 || stealable(pool))))
        made_work(pool);
}

/* Push a sentinel past the closed bit, parking while the ring is full. */
static void
push_sentinel(jobq_pool *pool)
{
    struct jobq__entry sentinel;

    memset(&sentinel, 0, sizeof(sentinel));
    while (jobq__ring_try_push(&pool->ring, &sentinel, 1) != 0) {
        (void)pthread_mutex_lock(&pool->lock);
        atomic_fetch_add(&pool->space_sleepers, 1);
        if (jobq__ring_size(&pool->ring) >= pool->ring.limit) {
            (void)pthread_cond_wait(&pool->space, &pool->lock);
        } else {
            /* Room counted but the cell not free: a worker stalled in its pop. */
            struct timespec until = jobq__deadline(STALL_PARK_NS);

            (void)pthread_cond_timedwait(&pool->space, &pool->lock, &until);
        }
        atomic_fetch_sub(&pool->space_sleepers, 1);
        (void)pthread_mutex_unlock(&pool->lock);
    }
    /*
     * Counted once it is in the ring, so that queued_count() (pushes - sentinels) never drops
     * below the real jobs queued: counted before, while this push waited for room, a
     * jobq_pool_wait caller saw the count match the finished jobs and returned with one still
     * queued. Until the count, queued_count() is one too high, so the wake-up check that
     * follows is what lets a waiter that looked in between return.
     */
    atomic_fetch_add(&pool->sentinels, 1);
    pool_finish(pool);
    made_work(pool);
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    jobq_pool *pool = w->pool;
    char name[16], suffix[12];
    int err = 0, keep;

    current_worker = w;
    atomic_store_explicit(&w->cpu, current_cpu(), memory_order_relaxed);
    /* The index always fits: the prefix is cut instead, so that no two workers share a name. */
    keep = (int)(sizeof(name) - 1) - snprintf(suffix, sizeof(suffix), "-%u", w->index);
    (void)snprintf(name, sizeof(name), "%.*s%s", keep, pool->name, suffix);
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
        struct jobq__entry e;
        uint64_t t0, ran = 0, dropped = 0;
        int sentinel = 0;

        worker_take(pool, w);
        t0 = jobq__now_ns();
        while (batch_claim(w, &e)) {
            if (e.job.run == NULL) {
                sentinel = 1;
                break;
            }
            if (atomic_load(&pool->discarding)) {
                drop_entry(&e);
                dropped++;
                continue;
            }
            /* Counted per job, so that the stats move during a long batch: the counters are
             * this worker's alone, so a plain store does (no locked instruction). A release
             * store: a jobq_pool_wait caller that sees the count (acquire) sees the job's
             * writes. */
            if (run_entry(pool, &e) != 0)
                atomic_store_explicit(&w->failed,
                                      atomic_load_explicit(&w->failed, memory_order_relaxed) + 1,
                                      memory_order_relaxed);
            atomic_store_explicit(&w->completed,
                                  atomic_load_explicit(&w->completed, memory_order_relaxed) + 1,
                                  memory_order_release);
            ran++;
        }
        if (dropped > 0) {
            atomic_fetch_add(&pool->discarded, dropped);
            pool_finish(pool);
        }
        if (ran > 0) {
            atomic_fetch_add_explicit(&w->busy_ns, jobq__now_ns() - t0, memory_order_relaxed);
            /* The Dekker pair of jobq_pool_wait: our `completed` stores, this fence, then
             * pool_finish's load of `waiters`, against its seq_cst increment of `waiters`
             * followed by its loads of the counters. One side sees the other. */
            atomic_thread_fence(memory_order_seq_cst);
            pool_finish(pool);
        }
        if (sentinel) {
            /* Sentinels follow every real job, so the rest of this batch is sentinels of other
             * workers: hand them back through the ring, where parked workers get woken. */
            while (batch_claim(w, &e))
                push_sentinel(pool);
            break;
        }
    }

    if (pool->worker_fini != NULL && err == 0)
        pool->worker_fini(pool->hook_arg, w->index);
    current_worker = NULL;
    return NULL;
}

/* Join every started worker. */
static void
join_workers(jobq_pool *pool)
{
    unsigned i;

    for (i = 0; i < pool->threads; i++)
        if (pool->workers[i].started)
            (void)pthread_join(pool->workers[i].thread, NULL);
}

static void
queue_sentinels(jobq_pool *pool, unsigned n)
{
    jobq__ring_close(&pool->ring);
    while (n-- > 0)
        push_sentinel(pool);
}

static void
pool_free(jobq_pool *pool)
{
    (void)pthread_cond_destroy(&pool->idle);
    (void)pthread_cond_destroy(&pool->space);
    (void)pthread_cond_destroy(&pool->work);
    (void)pthread_mutex_destroy(&pool->lock);
    jobq__ring_fini(&pool->ring);
    free(pool->workers);
    free(pool);
}

int
jobq_pool_create(jobq_pool **ret_pool, const jobq_pool_options *opts)
{
    jobq_pool_options defaults;
    pthread_attr_t attr;
    jobq_pool *pool;
    size_t wbytes;
    unsigned i, started = 0;
    int err = 0;

    if (opts == NULL) {
        jobq_pool_options_init(&defaults);
        opts = &defaults;
    }
    if (ret_pool == NULL || opts->threads == 0 || opts->capacity == 0)
        return JOBQ_EINVAL;
    if (opts->threads > 65536)
        return JOBQ_EINVAL;
    if (opts->stack_size != 0 && opts->stack_size < (size_t)PTHREAD_STACK_MIN)
        return JOBQ_EINVAL;

    pool = aligned_alloc(JOBQ__CACHE_LINE, sizeof(*pool));
    if (pool == NULL)
        return JOBQ_ENOMEM;
    memset(pool, 0, sizeof(*pool));
    /* Consumers: the workers, and a DISCARD shutdown's sweep (one at a time). */
    err = jobq__ring_init(&pool->ring, opts->capacity, opts->threads + 1);
    if (err != 0) {
        free(pool);
        return err;
    }
    wbytes = opts->threads * sizeof(struct worker); /* a multiple of the cache line */
    pool->workers = aligned_alloc(JOBQ__CACHE_LINE, wbytes);
    if (pool->workers == NULL) {
        jobq__ring_fini(&pool->ring);
        free(pool);
        return JOBQ_ENOMEM;
    }
    memset(pool->workers, 0, wbytes);
    /* glibc's init functions cannot fail with default attributes. */
    (void)pthread_mutex_init(&pool->lock, NULL);
    (void)jobq__cond_init_monotonic(&pool->work); /* stall parks are timed (STALL_PARK_NS) */
    (void)jobq__cond_init_monotonic(&pool->space); /* timed_submit deadlines are monotonic */
    (void)pthread_cond_init(&pool->idle, NULL);
    atomic_init(&pool->caller_cpu, -1);
    atomic_init(&pool->waker_cpu, -1);
    atomic_init(&pool->space_cpu, -1);
    pool->low_water = opts->capacity / 2;
    pool->threads = opts->threads;
    pool->worker_init = opts->worker_init;
    pool->worker_fini = opts->worker_fini;
    pool->hook_arg = opts->hook_arg;
    (void)snprintf(pool->name, sizeof(pool->name), "%s", opts->name ? opts->name : "jobq");

    /* One attribute object for every worker; glibc's setstacksize only checks the minimum,
     * which is checked above, so a stack that cannot be mapped fails in pthread_create. */
    (void)pthread_attr_init(&attr);
    if (opts->stack_size != 0)
        (void)pthread_attr_setstacksize(&attr, opts->stack_size);
    for (i = 0; i < opts->threads; i++) {
        struct worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        atomic_init(&w->cpu, -1);
        if (pthread_create(&w->thread, &attr, worker_main, w) != 0) {
            err = JOBQ_ETHREAD;
            break;
        }
        w->started = 1;
        started++;
    }
    (void)pthread_attr_destroy(&attr);

    (void)pthread_mutex_lock(&pool->lock);
    while (pool->started < started)
        (void)pthread_cond_wait(&pool->idle, &pool->lock);
    if (err == 0)
        err = pool->init_err;
    (void)pthread_mutex_unlock(&pool->lock);

    if (err != 0) {
        queue_sentinels(pool, started);
        join_workers(pool);
        pool_free(pool);
        return err;
    }
    *ret_pool = pool;
    return 0;
}

enum submit_kind { SUBMIT_BLOCK, SUBMIT_TRY, SUBMIT_TIMED };

/* Run a job inline on the submitting worker (caller runs). */
static void
run_inline(jobq_pool *pool, const struct jobq__entry *e)
{
    int err;

    atomic_fetch_add_explicit(&pool->caller_runs, 1, memory_order_relaxed);
    err = run_entry(pool, e);
    if (err != 0)
        atomic_fetch_add_explicit(&pool->caller_failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->caller_completed, 1, memory_order_relaxed);
}

/* The ring was found full: that is the high-water mark, exactly. Otherwise the mark is
 * sampled by workers (reading `head` on every push would pull the consumers' cache line to the
 * submitter each time). */
static void
note_full(jobq_pool *pool)
{
    atomic_store_explicit(&pool->high_water, pool->ring.limit, memory_order_relaxed);
}

/*
 * A blocking submitter found the ring full: poll it for a while before parking, as long as the
 * rate at which workers drain it promises room soon. Short jobs make room within microseconds,
 * while a park costs a futex wake-up round trip (70 us on the 2-vCPU development VM) during
 * which the workers drain the ring and go idle: with empty jobs the producer spent most of a
 * batch-submit run parked (664 parks per 1 M jobs). Long jobs drain too slowly for the
 * prediction, so the submitter parks after the short probe, without taking a core from the
 * workers. Returns 1 when there is room for min(capacity / 8, SPACE_SPIN_ROOM) jobs (at least
 * one), or the ring was closed; 0 to park. Counts the wait in producer_blocks.
 */
static int
spin_for_space(jobq_pool *pool)
{
    const size_t limit = pool->ring.limit;
    size_t want = limit / 8, start = jobq__ring_size(&pool->ring), size, drained;
    unsigned i, p;

    atomic_fetch_add_explicit(&pool->producer_blocks, 1, memory_order_relaxed);
    if (want == 0)
        want = 1;
    if (want > SPACE_SPIN_ROOM)
        want = SPACE_SPIN_ROOM;
    for (i = 1; i <= SPACE_SPIN_POLLS; i++) {
        for (p = 0; p < SPIN_PAUSES; p++)
            cpu_relax();
        size = jobq__ring_size(&pool->ring);
        if (size + want <= limit || jobq__ring_closed(&pool->ring))
            return 1;
        /* Predicted polls until `want` cells are free: want * i / drained. */
        drained = start > size ? start - size : 0;
        if (i >= SPACE_SPIN_PROBE && drained * SPACE_SPIN_POLLS < want * i)
            return 0;
    }
    return 0;
}

/*
 * How long a blocking submitter on `cpu` that finds `size` jobs queued should sleep on a timer
 * for the ring to drain to low water, at the drain rate its last park saw; 0: wait for a
 * worker's wake-up instead (no rate yet, a small ring, a sleep too short for a timer, or a
 * worker on the submitter's CPU).
 *
 * Why a timer: the worker that wakes a parked submitter pays for it inside its futex call,
 * 5 us when the submitter is queued on the worker's own CPU and 19 us when on another (the
 * inter-processor interrupt is a VM exit on the 2-vCPU development VM), once per refill of
 * half the ring, and a remote wake-up only comes at half of low water (made_room). When no
 * worker runs on the submitter's CPU, a timer that expires there costs the workers nothing:
 * 1 worker on 2 vCPUs, 1 us jobs, alternating runs of bench-pool -j 1: single submit 0.934 ->
 * 0.950, batch 0.931 -> 0.945 (4 pairs), 0.938 -> 0.946 and 0.935 -> 0.949 (4 more). Where a
 * worker shares the submitter's CPU, its local wake-up is cheap and pacing measured worse
 * (2 workers: 0.894 -> 0.867, 8 pairs; not understood), so the local rule stays there.
 * The workers still wake a paced submitter at half of low water (jobq__wake_submitter), so a
 * timer that comes late (the jobs got shorter; the timer's slack, 50 us by default) costs
 * what the remote rule cost before; one that comes early parks again with the new rate.
 */
static uint64_t
pace_ns(const jobq_pool *pool, int cpu, size_t size)
{
    uint64_t ps = atomic_load_explicit(&pool->drain_ps, memory_order_relaxed);
    double ns;

    if (ps == 0 || pool->low_water < PACE_MIN_LOW_WATER || size <= pool->low_water ||
        cpu < 0 || worker_on(pool, NULL, cpu))
        return 0;
    ns = (double)(size - pool->low_water) * (double)ps * 1e-3;
    if (ns < PACE_MIN_NS)
        return 0;
    return ns < PACE_MAX_NS ? (uint64_t)ns : PACE_MAX_NS;
}

/* A park that began at t0 with s0 jobs queued ended at t1 with s1: record the drain rate, if
 * the ring never ran dry (then the workers were busy all along and the rate is theirs). With
 * several submitters woken together the later ones see the earlier ones' refill, so the rate
 * reads slow and their next timer long; the wake-up at half of low water bounds that. */
static void
note_drain(jobq_pool *pool, uint64_t t0, size_t s0, uint64_t t1, size_t s1)
{
    if (s1 == 0 || s1 >= s0 || t1 <= t0 || t1 - t0 > UINT64_MAX / 1000)
        return;
    atomic_store_explicit(&pool->drain_ps, (t1 - t0) * 1000 / (s0 - s1), memory_order_relaxed);
}

/*
 * The wait of a blocking submitter on `cpu` that found the ring full, called with pool->lock
 * held and counted in space_sleepers: on a timer where pace_ns says so, else until a worker's
 * wake-up. Woken (room at half of low water, a close) or drained as predicted, it returns; a
 * timer that came early sleeps again rather than refilling a few cells per park; after one
 * that saw nothing drain at all (a job that blocks: the rate says nothing) it waits for a
 * worker's wake-up, instead of waking every timer (a reviewer counted ~150 wake-ups behind a
 * job blocked for 1 s).
 */
static void
park_for_space(jobq_pool *pool, int cpu)
{
    int timer = 1;

    for (;;) {
        size_t s0 = jobq__ring_size(&pool->ring), s1;
        uint64_t t0 = jobq__now_ns(), ns = timer ? pace_ns(pool, cpu, s0) : 0;
        struct timespec until;
        int rc;

        if (ns == 0) {
            (void)pthread_cond_wait(&pool->space, &pool->lock);
            note_drain(pool, t0, s0, jobq__now_ns(), jobq__ring_size(&pool->ring));
            return;
        }
        until = jobq__deadline(ns);
        atomic_fetch_add(&pool->space_paced, 1);
        rc = pthread_cond_timedwait(&pool->space, &pool->lock, &until);
        atomic_fetch_sub(&pool->space_paced, 1);
        s1 = jobq__ring_size(&pool->ring);
        note_drain(pool, t0, s0, jobq__now_ns(), s1);
        if (rc != ETIMEDOUT || s1 <= pool->low_water || jobq__ring_closed(&pool->ring))
            return;
        if (s1 >= s0)
            timer = 0;
    }
}

/* Park until the ring has room or is closed. Returns 0, or JOBQ_ETIMEDOUT. `counted`: the
 * caller already counted this wait in producer_blocks (it spun first). */
static int
wait_for_space(jobq_pool *pool, enum submit_kind kind, const struct timespec *deadline,
               int counted)
{
    int r = 0, cpu = current_cpu();

    (void)pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->space_cpu, cpu, memory_order_relaxed);
    atomic_fetch_add(&pool->space_sleepers, 1);
    if (jobq__ring_size(&pool->ring) >= pool->ring.limit && !jobq__ring_closed(&pool->ring)) {
        if (!counted)
            atomic_fetch_add_explicit(&pool->producer_blocks, 1, memory_order_relaxed);
        if (kind == SUBMIT_TIMED)
            r = pthread_cond_timedwait(&pool->space, &pool->lock, deadline) == ETIMEDOUT
                    ? JOBQ_ETIMEDOUT
                    : 0;
        else
            park_for_space(pool, cpu);
    }
    atomic_fetch_sub(&pool->space_sleepers, 1);
    (void)pthread_mutex_unlock(&pool->lock);
    return r;
}

/*
 * A push failed although the ring counts room for it: a worker stalled in its pop holds the
 * cell (see STALL_PARK_NS), or workers made room since. Retry at once STALL_TRIES times (room
 * made: the next push works), then sleep until a worker makes room or STALL_PARK_NS pass, or
 * until `deadline` (if not NULL) when that is sooner. Returns JOBQ_ETIMEDOUT once `deadline`
 * has passed, else 0: try the push again.
 */
static int
wait_out_stall(jobq_pool *pool, unsigned *tries, const struct timespec *deadline)
{
    struct timespec until;
    unsigned p;
    int r = 0;

    if (++*tries < STALL_TRIES) {
        for (p = 0; p < SPIN_PAUSES; p++)
            cpu_relax();
        return 0;
    }
    *tries = 0;
    until = jobq__deadline(STALL_PARK_NS);
    if (deadline != NULL && (deadline->tv_sec < until.tv_sec ||
                             (deadline->tv_sec == until.tv_sec && deadline->tv_nsec < until.tv_nsec)))
        until = *deadline;
    atomic_fetch_add_explicit(&pool->producer_blocks, 1, memory_order_relaxed);
    (void)pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->space_sleepers, 1);
    if (jobq__ring_size(&pool->ring) < pool->ring.limit && !jobq__ring_closed(&pool->ring) &&
        pthread_cond_timedwait(&pool->space, &pool->lock, &until) == ETIMEDOUT &&
        deadline != NULL && until.tv_sec == deadline->tv_sec &&
        until.tv_nsec == deadline->tv_nsec)
        r = JOBQ_ETIMEDOUT;
    atomic_fetch_sub(&pool->space_sleepers, 1);
    (void)pthread_mutex_unlock(&pool->lock);
    return r;
}

static int
submit_entry(jobq_pool *pool, const struct jobq__entry *e, enum submit_kind kind,
             uint64_t timeout_ns)
{
    struct timespec deadline = {0, 0};
    unsigned stall_tries = 0;
    int r, full;

    if (pool == NULL || e->job.run == NULL)
        return JOBQ_EINVAL;
    /* Counted before it is visible to workers, so the group count never goes negative. */
    if (e->group != NULL)
        atomic_fetch_add(&e->group->outstanding, 1);
    for (;;) {
        r = jobq__ring_try_push(&pool->ring, e, 0);
        if (r == 0) {
            made_work(pool);
            return 0;
        }
        if (r == JOBQ_ECLOSED)
            break;
        /* Full by its count, or a stalled cell (see wait_out_stall). */
        full = jobq__ring_size(&pool->ring) >= pool->ring.limit;
        if (full)
            note_full(pool);
        if (kind == SUBMIT_TRY)
            break;
        if (is_own_worker(pool)) {
            run_inline(pool, e);
            return 0;
        }
        if (kind == SUBMIT_TIMED && timeout_ns == 0) {
            r = JOBQ_ETIMEDOUT; /* waits for nothing, so is not counted in producer_blocks */
            break;
        }
        if (kind == SUBMIT_TIMED && deadline.tv_sec == 0 && deadline.tv_nsec == 0)
            deadline = jobq__deadline(timeout_ns);
        if (!full) {
            r = wait_out_stall(pool, &stall_tries, kind == SUBMIT_TIMED ? &deadline : NULL);
            if (r == 0)
                continue;
        } else {
            stall_tries = 0;
            /* Timed submits do not spin: their deadline may be shorter than the spin. */
            if (kind == SUBMIT_BLOCK && spin_for_space(pool))
                continue;
            r = wait_for_space(pool, kind, &deadline, kind == SUBMIT_BLOCK);
        }
        if (r != 0) {
            /* Timed out; room may have appeared just now: one last try. */
            int again = jobq__ring_try_push(&pool->ring, e, 0);
            if (again == 0) {
                made_work(pool);
                return 0;
            }
            if (again == JOBQ_ECLOSED)
                r = again;
            break;
        }
    }
    /* Not queued: undo the group count; neither run nor done will be called. */
    if (e->group != NULL)
        group_finish(e->group, 0);
    return r;
}

static int
make_entry(struct jobq__entry *e, const jobq_job *job, jobq_group *group)
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
    struct jobq__entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_BLOCK, 0);
}

int
jobq_pool_try_submit(jobq_pool *pool, const jobq_job *job)
{
    struct jobq__entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_TRY, 0);
}

int
jobq_pool_timed_submit(jobq_pool *pool, const jobq_job *job, uint64_t timeout_ns)
{
    struct jobq__entry e;
    int r = make_entry(&e, job, NULL);

    return r != 0 ? r : submit_entry(pool, &e, SUBMIT_TIMED, timeout_ns);
}

int
jobq_pool_submit_batch(jobq_pool *pool, const jobq_job *jobs, size_t n, size_t *ret_submitted)
{
    size_t done = 0, i;
    unsigned stall_tries = 0;
    int r = 0, full;

    if (pool == NULL || (jobs == NULL && n > 0))
        return JOBQ_EINVAL;
    for (i = 0; i < n; i++)
        if (jobs[i].run == NULL)
            return JOBQ_EINVAL;
    /* Runs of free cells are claimed with one CAS each, and parked workers are checked once
     * per run rather than once per job. Jobs are staged as ring entries MAX_BATCH at a time. */
    while (done < n) {
        struct jobq__entry staged[MAX_BATCH];
        size_t k = n - done < MAX_BATCH ? n - done : MAX_BATCH, got;

        for (i = 0; i < k; i++) {
            staged[i].job = jobs[done + i];
            staged[i].group = NULL;
        }
        got = jobq__ring_try_push_n(&pool->ring, staged, k, &r);
        if (got > 0) {
            done += got;
            made_work(pool);
            r = 0;
            continue;
        }
        if (r == JOBQ_ECLOSED)
            break;
        r = 0;
        full = jobq__ring_size(&pool->ring) >= pool->ring.limit;
        if (full)
            note_full(pool);
        if (is_own_worker(pool)) {
            run_inline(pool, &staged[0]), done++;
        } else if (!full) {
            (void)wait_out_stall(pool, &stall_tries, NULL);
        } else {
            stall_tries = 0;
            if (!spin_for_space(pool))
                (void)wait_for_space(pool, SUBMIT_BLOCK, NULL, 1);
        }
    }
    if (ret_submitted != NULL)
        *ret_submitted = done;
    return r;
}

int
jobq_pool_wait(jobq_pool *pool)
{
    if (pool == NULL)
        return JOBQ_EINVAL;
    if (is_own_worker(pool) || in_own_shutdown(pool))
        return JOBQ_EDEADLK;
    (void)pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->waiters, 1);
    /* Our seq_cst increment of `waiters` and the finishers' seq_cst counter increments
     * followed by their load of `waiters`: one side sees the other. */
    while (finished_count(pool) != queued_count(pool))
        (void)pthread_cond_wait(&pool->idle, &pool->lock);
    atomic_fetch_sub(&pool->waiters, 1);
    (void)pthread_mutex_unlock(&pool->lock);
    return atomic_exchange(&pool->first_err, 0);
}

int
jobq_pool_shutdown(jobq_pool *pool, jobq_shutdown_mode mode, size_t *ret_discarded)
{
    struct jobq__entry batch[MAX_BATCH];
    struct shutdown_frame frame;
    size_t ndropped, n, i;
    uint64_t before;
    unsigned started = 0;
    int expected = 0;

    if (pool == NULL || (mode != JOBQ_DRAIN && mode != JOBQ_DISCARD))
        return JOBQ_EINVAL;
    if (is_own_worker(pool))
        return JOBQ_EDEADLK;
    if (!atomic_compare_exchange_strong(&pool->shutting_down, &expected, 1)) {
        /* Another call is shutting down: return once it has, so that the pool is stopped
         * (and its counters final) for this caller too - unless it is this thread's own call,
         * from a done callback it runs. */
        if (ret_discarded != NULL)
            *ret_discarded = 0;
        if (in_own_shutdown(pool))
            return 0;
        (void)pthread_mutex_lock(&pool->lock);
        while (!pool->shut_down)
            (void)pthread_cond_wait(&pool->idle, &pool->lock);
        (void)pthread_mutex_unlock(&pool->lock);
        return 0;
    }
    frame.pool = pool;
    frame.outer = current_shutdown;
    current_shutdown = &frame;
    /* From here every ordinary push fails; a push that won its slot before this line is
     * ahead of the sentinels in FIFO order, so it is drained (or discarded) like the rest. */
    jobq__ring_close(&pool->ring);
    /* Blocked submitters must see the closed ring and fail instead of sleeping forever. */
    (void)pthread_mutex_lock(&pool->lock);
    (void)pthread_cond_broadcast(&pool->space);
    (void)pthread_mutex_unlock(&pool->lock);

    before = atomic_load(&pool->discarded);
    if (mode == JOBQ_DISCARD) {
        struct jobq__entry e;
        uint64_t swept = 0;

        /* Workers claiming jobs from now on drop them too (seq_cst: a worker's claim that
         * comes after this store in the total order sees it). */
        atomic_store(&pool->discarding, 1);
        /* Our sweep of the claim words below, against a worker's batch publish then load of
         * `discarding`: a store-buffering pair, which only seq_cst on both sides orders (the
         * sweep's loads are acquire). */
        atomic_thread_fence(memory_order_seq_cst);
        /* Workers may race us for the queued jobs; what we get, we drop. */
        while ((n = jobq__ring_try_pop(&pool->ring, pool->threads, batch, MAX_BATCH, 0,
                                       NULL)) > 0) {
            made_room(pool);
            for (i = 0; i < n; i++)
                drop_entry(&batch[i]);
            atomic_fetch_add(&pool->discarded, n);
            pool_finish(pool);
        }
        /* Jobs a worker took from the ring in a batch but has not started (it is running the
         * batch's first, say) are queued too: take them as a thief would. No sentinel is
         * queued yet, so every entry is a real job. */
        for (i = 0; i < pool->threads; i++) {
            while (batch_claim(&pool->workers[i], &e)) {
                drop_entry(&e);
                swept++;
            }
        }
        atomic_fetch_add(&pool->discarded, swept);
        pool_finish(pool);
    }
    for (i = 0; i < pool->threads; i++)
        started += (unsigned)pool->workers[i].started;
    queue_sentinels(pool, started);
    join_workers(pool);
    /* Ours and those the workers dropped: only this call discards (DRAIN: none). */
    ndropped = (size_t)(atomic_load(&pool->discarded) - before);
    (void)pthread_mutex_lock(&pool->lock);
    pool->shut_down = 1;
    (void)pthread_cond_broadcast(&pool->idle);
    (void)pthread_mutex_unlock(&pool->lock);
    current_shutdown = frame.outer;
    if (ret_discarded != NULL)
        *ret_discarded = ndropped;
    return 0;
}

void
jobq_pool_destroy(jobq_pool *pool)
{
    /* From one of its own workers the pool cannot be joined (the caller is a worker); freeing
     * it would pull memory from under running threads, so this is refused (documented). */
    if (pool == NULL || is_own_worker(pool) || in_own_shutdown(pool))
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
    for (i = pool->threads; busy_ns != NULL && i < n_busy; i++)
        busy_ns[i] = 0; /* no such worker */
    s.submitted = queued_count(pool) + atomic_load(&pool->caller_runs);
    s.discarded = atomic_load_explicit(&pool->discarded, memory_order_relaxed);
    s.caller_runs = atomic_load_explicit(&pool->caller_runs, memory_order_relaxed);
    s.producer_blocks = atomic_load_explicit(&pool->producer_blocks, memory_order_relaxed);
    s.queue_high_water = atomic_load_explicit(&pool->high_water, memory_order_relaxed);
    if (s.queue_high_water > pool->ring.limit)
        s.queue_high_water = pool->ring.limit;
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
    struct jobq__entry e;
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
    if (atomic_load(&group->outstanding) != 0 &&
        (is_own_worker(group->pool) || in_own_shutdown(group->pool)))
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
    if (is_own_worker(group->pool) || in_own_shutdown(group->pool)) {
        /* A worker must not wait for queued jobs (with one worker they would never run), and
         * must not free the group under them: the last of them frees it (group_finish). A
         * done callback of a discarded job may be its group's last job still counted. */
        (void)pthread_mutex_lock(&group->lock);
        if (atomic_load(&group->outstanding) != 0) {
            group->orphaned = 1;
            (void)pthread_mutex_unlock(&group->lock);
            return;
        }
        (void)pthread_mutex_unlock(&group->lock);
    } else {
        (void)jobq_group_wait(group);
    }
    /* The last finisher may still hold the lock (it decrements under it): take it once before
     * freeing. */
    (void)pthread_mutex_lock(&group->lock);
    (void)pthread_mutex_unlock(&group->lock);
    group_free(group);
}

/* ---- parallel for / map ------------------------------------------------------------------ */

/*
 * Shared state of one parallel_for call. It lives on the heap with a reference count because
 * helper jobs may start after the caller has returned (the caller never waits for *queued*
 * helpers, only for chunks already taken): each helper and the caller hold one reference.
 */
struct pfor {
    atomic_size_t next;   /* fixed grain: next chunk number; guided: first index not taken */
    atomic_size_t done;   /* indexes finished (run or skipped) */
    atomic_int err;
    atomic_uint refs;
    size_t begin, end;
    size_t grain;   /* fixed chunk length; 0: guided (see pfor_take) */
    size_t nchunks; /* fixed grain: chunks in all */
    size_t share;   /* guided: a chunk is the rest / share ... */
    size_t least;   /* ... but at least this long */
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

/*
 * Claim the next chunk [*b, *e). Returns 0 when none is left. A fixed grain is one atomic add.
 * Guided (grain 0): each chunk is the rest of the range divided by `share` (twice the threads
 * that take chunks), at least `least` long, claimed by CAS. The early chunks are long and few;
 * the last ones are short, so a thread that was pre-empted or woke late holds the others up by
 * one short chunk at the end, not by one of the n / (8 * threads) chunks used before: with
 * 100 us jobs, 2 threads and chunks of 500 jobs, bench-pool's jobq-pfor run lost 16 ms of 216
 * (median) waiting for the last chunk.
 */
static int
pfor_take(struct pfor *pf, size_t *b, size_t *e)
{
    size_t c = atomic_load_explicit(&pf->next, memory_order_relaxed), len;

    if (pf->grain != 0) {
        /* Chunk numbers, not indexes: next ends at most one per thread past nchunks, where an
         * index could overflow near SIZE_MAX. */
        c = atomic_fetch_add_explicit(&pf->next, 1, memory_order_relaxed);
        if (c >= pf->nchunks)
            return 0;
        *b = pf->begin + c * pf->grain;
        *e = pf->end - *b < pf->grain ? pf->end : *b + pf->grain;
        return 1;
    }
    do {
        if (c >= pf->end)
            return 0;
        len = (pf->end - c) / pf->share;
        if (len < pf->least)
            len = pf->least;
        if (len > pf->end - c)
            len = pf->end - c;
    } while (!atomic_compare_exchange_weak_explicit(&pf->next, &c, c + len, memory_order_relaxed,
                                                    memory_order_relaxed));
    *b = c;
    *e = c + len;
    return 1;
}

/*
 * After an error: hand out no more chunks, and count the indexes never handed out as done.
 * Moving `next` to its end is what stops the others, inside the same atomic order as their
 * claims, so every chunk claimed before it still runs and every one after is never claimed.
 * Skipping chunks already claimed instead (checking the error after the claim) let a chunk
 * that waits for an earlier one - which the header allows - wait forever for one skipped.
 * Returns the indexes this call took out of circulation (0 if another error came first).
 */
static size_t
pfor_stop(struct pfor *pf)
{
    size_t old;

    if (pf->grain != 0) {
        old = atomic_exchange_explicit(&pf->next, pf->nchunks, memory_order_relaxed);
        return old < pf->nchunks ? (pf->end - pf->begin) - old * pf->grain : 0;
    }
    old = atomic_exchange_explicit(&pf->next, pf->end, memory_order_relaxed);
    return old < pf->end ? pf->end - old : 0;
}

/* Take and run chunks until none are left. */
static void
pfor_work(struct pfor *pf)
{
    size_t b, e, finished = 0;
    int err;

    while (pfor_take(pf, &b, &e)) {
        err = pf->fn(pf->ctx, b, e);
        finished += e - b;
        if (err != 0) {
            record_error(&pf->err, err);
            finished += pfor_stop(pf);
        }
    }
    if (finished > 0 && atomic_fetch_add(&pf->done, finished) + finished == pf->end - pf->begin) {
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

    /* A helper taken on the caller's CPU without a wake-up (spread_out checks rule 1 only after
     * one) was most likely pre-empted there by the caller (see yield_to_worker): go first. */
    if (current_worker != NULL)
        spread_out(current_worker->pool, current_worker, 1);
    pfor_work(pf);
    pfor_release(pf);
    return 0;
}

/* A helper dropped by a DISCARD shutdown never runs: its done drops the reference it held
 * (after a run, which dropped it, done does nothing). */
static void
pfor_helper_done(void *arg, int err)
{
    if (err == JOBQ_ECANCELED)
        pfor_release(arg);
}

int
jobq_pool_parallel_for(jobq_pool *pool, size_t begin, size_t end, size_t grain, jobq_range_fn fn,
                       void *ctx)
{
    struct pfor *pf;
    size_t n, nchunks, i, helpers, takers;
    jobq_job job;
    int err, caller;

    if (pool == NULL || fn == NULL || end < begin)
        return JOBQ_EINVAL;
    n = end - begin;
    if (n == 0)
        return 0;
    /* The threads that may take chunks: the workers and, unless it is one of them, the caller. */
    takers = (size_t)pool->threads + !is_own_worker(pool);
    if (grain == 0) {
        /* Guided (see pfor_take): about 12 chunks per taker, and never fewer than
         * min(n, 2 * takers); only that lower bound is needed below, for the helper count. */
        nchunks = n < 2 * takers ? n : 2 * takers;
    } else {
        nchunks = n / grain + (n % grain != 0);
    }
    if (nchunks == 1)
        return fn(ctx, begin, end);

    pf = malloc(sizeof(*pf));
    if (pf == NULL)
        return JOBQ_ENOMEM;
    if (pthread_mutex_init(&pf->lock, NULL) != 0) {
        free(pf);
        return JOBQ_ENOMEM;
    }
    if (pthread_cond_init(&pf->finished, NULL) != 0) {
        (void)pthread_mutex_destroy(&pf->lock);
        free(pf);
        return JOBQ_ENOMEM;
    }
    atomic_init(&pf->next, grain != 0 ? 0 : begin);
    atomic_init(&pf->done, 0);
    atomic_init(&pf->err, 0);
    pf->begin = begin;
    pf->end = end;
    pf->grain = grain;
    pf->nchunks = nchunks;
    pf->share = 2 * takers;
    /* The shortest guided chunk: 1/256 of a thread's share of the range (and at least one
     * index), so the tail is short next to the whole, and the chunks number about
     * 2 * takers * (ln(128) + 1), whatever n is. */
    pf->least = n / (256 * takers) > 0 ? n / (256 * takers) : 1;
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
    job.done = pfor_helper_done;
    job.arg = pf;
    /* Where this caller computes (see spread_out); written only when it changed, since the
     * line is shared with the workers' searching count. */
    caller = -1;
    if (helpers > 0 && !is_own_worker(pool)) {
        caller = current_cpu();
        if (atomic_load_explicit(&pool->caller_cpu, memory_order_relaxed) != caller)
            atomic_store_explicit(&pool->caller_cpu, caller, memory_order_relaxed);
    }
    for (i = 0; i < helpers; i++) {
        if (jobq_pool_try_submit(pool, &job) != 0) {
            atomic_fetch_sub(&pf->refs, (unsigned)(helpers - i));
            break;
        }
    }
    if (i > 0)
        yield_to_worker(pool, caller);

    pfor_work(pf);
    for (i = 0; i < PFOR_WAIT_POLLS && atomic_load(&pf->done) != n; i++) {
        unsigned p;

        for (p = 0; p < SPIN_PAUSES; p++)
            cpu_relax();
    }
    (void)pthread_mutex_lock(&pf->lock);
    pf->waiting = 1;
    while (atomic_load(&pf->done) != n)
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
