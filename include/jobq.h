/*
 * jobq.h - bounded job queue and fixed thread pool (the whole core API).
 *
 * Two objects:
 *   jobq_queue  a generic bounded MPMC FIFO of fixed-size elements, with blocking, try_ and timed
 *               push/pop and close (sentinel) semantics. Use it to build pipelines.
 *   jobq_pool   a fixed set of worker threads draining a bounded queue of jobq_job values, with
 *               backpressure, caller-runs nested submission, wait-all, groups, parallel-for,
 *               ordered map, per-worker hooks and statistics.
 *
 * Conventions: every fallible function returns 0 or a negative JOBQ_E* code (negated errno
 * values), except that the calls reporting a job's result (jobq_pool_wait, jobq_group_wait,
 * jobq_pool_parallel_for, jobq_pool_map) or a worker_init failure (jobq_pool_create) pass on
 * the value that the job, fn or hook returned, whatever it is; out-parameters are named ret_*
 * and are written only on success; _destroy(NULL) is a no-op. No function keeps hidden global
 * state: two pools share nothing.
 *
 * Threads: do not pthread_cancel a thread while it is inside a jobq call (the blocking calls
 * wait on condition variables without cancellation handlers, and a cancelled waiter leaves a
 * lock held), and do not use a queue or pool in the child of a fork() made while it existed
 * (its workers are not there): only the thread that forked is.
 */
#ifndef JOBQ_H
#define JOBQ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(JOBQ_STATIC)
#define JOBQ_API
#elif defined(JOBQ_BUILDING) && defined(__GNUC__)
#define JOBQ_API __attribute__((visibility("default")))
#else
#define JOBQ_API
#endif

#define JOBQ_VERSION_MAJOR 0
#define JOBQ_VERSION_MINOR 1
#define JOBQ_VERSION_PATCH 0
#define JOBQ_VERSION_STRING "0.1.0"

/* X(name, value, message): every error code, once. JOBQ_E<name> = value. */
#define JOBQ_ERRNO_MAP(X)                                                                          \
    X(INVAL, (-EINVAL), "invalid argument")                                                        \
    X(NOMEM, (-ENOMEM), "out of memory")                                                           \
    X(AGAIN, (-EAGAIN), "operation would block (queue full or empty)")                             \
    X(TIMEDOUT, (-ETIMEDOUT), "timed out")                                                         \
    X(CLOSED, (-EPIPE), "queue or pool is closed")                                                 \
    X(CANCELED, (-ECANCELED), "job was discarded before it ran")                                   \
    X(DEADLK, (-EDEADLK), "operation would deadlock (called from within this pool)")               \
    X(OVERFLOW, (-EOVERFLOW), "size arithmetic overflows")                                         \
    X(THREAD, (-ESRCH), "could not start a worker thread")                                       \
    X(IO, (-EIO), "input/output error")

enum {
#define JOBQ__ERR_ENUM(name, value, msg) JOBQ_E##name = value,
    JOBQ_ERRNO_MAP(JOBQ__ERR_ENUM)
#undef JOBQ__ERR_ENUM
};

/* Message for a JOBQ_E* code (or 0); never NULL, "unknown error" for unknown codes. */
JOBQ_API const char *jobq_strerror(int err);
/* Symbolic name ("JOBQ_EINVAL"); never NULL, "JOBQ_UNKNOWN" for unknown codes. */
JOBQ_API const char *jobq_err_name(int err);

/*
 * Usable CPU count for this process: the smaller of the sched_getaffinity() mask and the cgroup
 * (v2 cpu.max / v1 cfs quota) limit, rounded up - the smallest quota from the process's own
 * cgroup (/proc/self/cgroup) up to the root; falls back to sysconf(_SC_NPROCESSORS_ONLN).
 * Always >= 1. Thread-safe.
 */
JOBQ_API unsigned jobq_cpu_count(void);

/* ------------------------------------------------------------------------------------------ */
/* Generic bounded MPMC queue                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct jobq_queue jobq_queue;

/*
 * Create a queue holding at most `capacity` elements of `elem_size` bytes each (copied in and
 * out). Errors: JOBQ_EINVAL (NULL ret_queue, capacity or elem_size 0), JOBQ_EOVERFLOW,
 * JOBQ_ENOMEM.
 */
JOBQ_API int jobq_queue_create(jobq_queue **ret_queue, size_t capacity, size_t elem_size);
/* Free the queue. No thread may be using it. NULL is a no-op. */
JOBQ_API void jobq_queue_destroy(jobq_queue *queue);

/*
 * Copy *elem in. push blocks while the queue is full; try_push returns JOBQ_EAGAIN instead;
 * timed_push gives up after timeout_ns nanoseconds (JOBQ_ETIMEDOUT). All return JOBQ_ECLOSED
 * once the queue is closed (also waking blocked pushers). Any number of threads may push and pop
 * concurrently.
 */
JOBQ_API int jobq_queue_push(jobq_queue *queue, const void *elem);
JOBQ_API int jobq_queue_try_push(jobq_queue *queue, const void *elem);
JOBQ_API int jobq_queue_timed_push(jobq_queue *queue, const void *elem, uint64_t timeout_ns);

/*
 * Copy the oldest element into *ret_elem. pop blocks while the queue is empty and open;
 * try_pop returns JOBQ_EAGAIN; timed_pop returns JOBQ_ETIMEDOUT. After close, pops still return
 * the remaining elements, then JOBQ_ECLOSED.
 */
JOBQ_API int jobq_queue_pop(jobq_queue *queue, void *ret_elem);
JOBQ_API int jobq_queue_try_pop(jobq_queue *queue, void *ret_elem);
JOBQ_API int jobq_queue_timed_pop(jobq_queue *queue, void *ret_elem, uint64_t timeout_ns);

/* Close: further pushes fail with JOBQ_ECLOSED, all waiters wake. Idempotent. */
JOBQ_API void jobq_queue_close(jobq_queue *queue);

/* Snapshot getters (racy by nature, but data-race free). */
JOBQ_API size_t jobq_queue_size(const jobq_queue *queue);
JOBQ_API size_t jobq_queue_capacity(const jobq_queue *queue);

/* ------------------------------------------------------------------------------------------ */
/* Fixed thread pool                                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct jobq_pool jobq_pool;
typedef struct jobq_group jobq_group;

/*
 * A job is a value the caller fills and the pool copies. `run` must not be NULL; its non-zero
 * return is the job's error, reported by jobq_pool_wait() / jobq_group_wait(). `done`, if set,
 * runs on the same thread right after `run` with run's result, or with JOBQ_ECANCELED if the job
 * was discarded by jobq_pool_shutdown(JOBQ_DISCARD) (then on the shutting-down thread, or on the
 * worker that had already taken it from the queue without starting it). The pool
 * never frees `arg`; the submitter owns it until `done` has run (or, without `done`, until a wait
 * covering the job returns). If submission fails, neither function is called.
 */
typedef struct jobq_job {
    int (*run)(void *arg);
    void (*done)(void *arg, int err);
    void *arg;
} jobq_job;

/* Per-worker hooks: init runs on each worker before it takes any job (a non-zero return makes
 * jobq_pool_create fail with that code), fini after its last job. `index` is 0..threads-1. */
typedef int (*jobq_worker_init_fn)(void *hook_arg, unsigned index);
typedef void (*jobq_worker_fini_fn)(void *hook_arg, unsigned index);

typedef struct jobq_pool_options {
    unsigned threads;                /* worker count; jobq_pool_options_init sets jobq_cpu_count() */
    size_t capacity;                 /* bounded queue size; default 1024 */
    jobq_worker_init_fn worker_init; /* optional */
    jobq_worker_fini_fn worker_fini; /* optional */
    void *hook_arg;                  /* passed to both hooks */
    const char *name;                /* thread name prefix, default "jobq": threads are "jobq-<i>" */
    size_t stack_size;               /* worker stack in bytes; 0 (the default) = the system's */
} jobq_pool_options;

/* Fill *opts with the defaults. */
JOBQ_API void jobq_pool_options_init(jobq_pool_options *opts);

/*
 * Start a pool. opts NULL means defaults. Errors: JOBQ_EINVAL (NULL ret_pool, threads 0 or
 * over 65536, capacity 0, a stack_size below PTHREAD_STACK_MIN), JOBQ_EOVERFLOW (capacity too
 * large for memory sizes), JOBQ_ENOMEM, JOBQ_ETHREAD (a thread could not be created, e.g. no
 * memory for its stack), or a worker_init failure code. On failure every started thread has
 * been joined and nothing leaks.
 *
 * Placement (Linux): a worker that the kernel wakes onto the CPU of the thread that last called
 * jobq_pool_parallel_for, or that starts one of its helpers there, moves itself to an allowed
 * CPU with no pool thread, if there is one (a caller that finds an awake worker recorded on its
 * own CPU after queuing its helpers yields once, so that the worker can run and go);
 * a worker that keeps running out of work and is woken onto the CPU of the thread that
 * submitted moves to another allowed CPU; any other worker woken onto a CPU where another
 * worker is awake moves to an allowed CPU with no worker, if there is one (a worker woken while
 * another wake-up is on its way yields its CPU once, so that a second worker queued behind it
 * can do so). Each keeps its affinity mask (it pins itself to the new CPU, then restores the
 * mask), and a mask that allows a single CPU is never moved.
 */
JOBQ_API int jobq_pool_create(jobq_pool **ret_pool, const jobq_pool_options *opts);

/*
 * Queue a job. Blocks while the queue is full (backpressure) - except when called from one of
 * this pool's own workers: then, rather than wait for a queue only it could drain (deadlock with
 * one worker), the job runs inline on the calling thread ("caller runs"). A blocked caller
 * first polls the queue for up to ~30 us while the workers drain it fast enough to make room
 * within that time (short jobs), and otherwise sleeps until half the queue is free (on Linux,
 * until three quarters are, unless a worker runs on the CPU it sleeps on). So a job must not
 * wait for something its blocked submitter does next: with every worker waiting, the queue
 * would not drain that far.
 * Errors: JOBQ_EINVAL (NULL pool/job/run), JOBQ_ECLOSED (after shutdown began). Thread-safe.
 */
JOBQ_API int jobq_pool_submit(jobq_pool *pool, const jobq_job *job);
/* As submit, but returns JOBQ_EAGAIN instead of blocking (from workers too). */
JOBQ_API int jobq_pool_try_submit(jobq_pool *pool, const jobq_job *job);
/* As submit, but gives up with JOBQ_ETIMEDOUT after timeout_ns (workers run inline instead). */
JOBQ_API int jobq_pool_timed_submit(jobq_pool *pool, const jobq_job *job, uint64_t timeout_ns);
/*
 * Queue n jobs with one CAS on the ring per free run of slots (up to 128 jobs); blocks for
 * space like submit.
 * Returns 0 when all were queued; on error *ret_submitted (if not NULL) tells how many were.
 */
JOBQ_API int jobq_pool_submit_batch(jobq_pool *pool, const jobq_job *jobs, size_t n,
                                    size_t *ret_submitted);

/*
 * Wait until the pool is idle: every job submitted before the call has finished, and so has
 * every job submitted (by other threads, or by jobs) while it waits - with producers that never
 * pause it may not return; wait on a jobq_group for a fixed set of jobs. Returns the first
 * non-zero job error seen since the previous wait returned (and clears it), else 0. The pool
 * stays usable. Errors: JOBQ_EDEADLK when called from one of this pool's workers, or from a
 * done callback that this pool's DISCARD shutdown runs on its own thread.
 */
JOBQ_API int jobq_pool_wait(jobq_pool *pool);

typedef enum jobq_shutdown_mode {
    JOBQ_DRAIN,   /* run everything queued, then stop */
    JOBQ_DISCARD, /* drop every job not yet started (done gets JOBQ_ECANCELED), finish running
                     ones */
} jobq_shutdown_mode;

/*
 * Stop accepting jobs, then enqueue one sentinel per worker and join them all. Afterwards
 * submitted == completed + discarded. *ret_discarded (if not NULL) gets the number of jobs
 * dropped by this call. Errors: JOBQ_EDEADLK from a worker, JOBQ_EINVAL; a second call (at the
 * same time or later) returns 0 and discards nothing, once the first has joined the workers (so
 * it must not come from a thread that a running job waits for; from a done callback that the
 * first call itself runs, it returns at once).
 */
JOBQ_API int jobq_pool_shutdown(jobq_pool *pool, jobq_shutdown_mode mode, size_t *ret_discarded);

/* Shut down (drain) if not yet done, join, free. NULL is a no-op. Not from a worker, nor from a
 * done callback that this pool's shutdown runs (ignored in both: the pool is still in use
 * there), and not while another thread may still call into the pool. */
JOBQ_API void jobq_pool_destroy(jobq_pool *pool);

/* Worker count. */
JOBQ_API unsigned jobq_pool_threads(const jobq_pool *pool);
/* Index (0..threads-1) of the calling thread if it is a worker of `pool`, else -1. */
JOBQ_API int jobq_pool_worker_index(const jobq_pool *pool);

/*
 * Call fn(ctx, b, e) over disjoint sub-ranges [b, e) covering [begin, end) exactly once, each
 * `grain` long (the last one may be shorter), on the workers and the calling thread, and wait.
 * grain 0 = automatic: guided chunks, each the rest of the range divided by twice the number of
 * threads, down to 1/256 of one thread's share, so the last chunks are short. Safe
 * to call from a worker (nested): the caller takes chunks itself, so it never waits on queued
 * work. Chunks are handed out in increasing order and a thread runs a chunk as soon as it takes
 * it, so when a thread gets chunk c, every chunk before c has been taken by a running thread
 * (a chunk may therefore wait for earlier chunks to finish, never for later ones).
 * Returns the first non-zero fn result, else 0 (or JOBQ_ENOMEM if the call's shared state
 * cannot be allocated, before fn runs at all). After a non-zero result no further chunk is
 * handed out; chunks already taken by other threads still run (so one waiting for an earlier
 * chunk is never left waiting for a skipped one). A thread running a chunk is not told.
 * A worker woken onto the CPU of the thread that last called parallel_for moves off it (see
 * jobq_pool_create).
 */
typedef int (*jobq_range_fn)(void *ctx, size_t begin, size_t end);
JOBQ_API int jobq_pool_parallel_for(jobq_pool *pool, size_t begin, size_t end, size_t grain,
                                    jobq_range_fn fn, void *ctx);

/*
 * Ordered map: for i in [0, n): fn(ctx, in + i*in_size, out + i*out_size). Results land at their
 * index regardless of which thread ran them (like Python's Pool.map). Same error rule as
 * parallel_for.
 */
typedef int (*jobq_map_fn)(void *ctx, const void *in, void *out);
JOBQ_API int jobq_pool_map(jobq_pool *pool, const void *in, size_t in_size, void *out,
                           size_t out_size, size_t n, jobq_map_fn fn, void *ctx);

/*
 * Groups: a subset of a pool's jobs that can be waited for alone. Reusable after a wait.
 * jobq_group_wait returns the first non-zero error among the group's jobs since the last wait.
 * Waiting from a worker of the pool (or from a done callback its DISCARD shutdown runs) returns
 * JOBQ_EDEADLK unless the group is already complete. Destroy waits for outstanding jobs of the
 * group first; from those threads it does not wait (that could deadlock), and the group is
 * freed when its last outstanding job ends.
 */
JOBQ_API int jobq_group_create(jobq_group **ret_group, jobq_pool *pool);
JOBQ_API int jobq_group_submit(jobq_group *group, const jobq_job *job);
JOBQ_API int jobq_group_wait(jobq_group *group);
JOBQ_API void jobq_group_destroy(jobq_group *group);

/*
 * Counters, readable at any time from any thread (relaxed atomics: a consistent-enough view).
 * `completed` and `failed` move per job; busy time when a worker's batch of jobs ends (up to
 * 128 jobs taken at once), so for long jobs it trails by the jobs in progress. parallel_for and
 * map queue internal helper jobs (at most one per worker and call): they count here like any
 * other job, in submitted, completed and discarded alike (and in a shutdown's *ret_discarded),
 * so the identity below holds, but a caller comparing them with its own submits sees them.
 */
typedef struct jobq_pool_stats {
    uint64_t submitted;       /* accepted by submit (including caller-runs) */
    uint64_t completed;       /* run returned */
    uint64_t failed;          /* of completed, run returned non-zero */
    uint64_t discarded;       /* dropped by JOBQ_DISCARD */
    uint64_t caller_runs;     /* nested submits that ran inline */
    uint64_t producer_blocks; /* times a submitter had to wait for space */
    size_t queue_high_water;  /* most jobs ever queued at once */
    unsigned threads;
} jobq_pool_stats;

/*
 * Fill *ret_stats. If busy_ns is not NULL, busy_ns[i] (i < n_busy) gets the nanoseconds worker i
 * spent running jobs (0 for i >= threads). Errors: JOBQ_EINVAL.
 */
JOBQ_API int jobq_pool_get_stats(const jobq_pool *pool, jobq_pool_stats *ret_stats,
                                 uint64_t *busy_ns, size_t n_busy);

#ifdef __cplusplus
}
#endif

#endif /* JOBQ_H */
