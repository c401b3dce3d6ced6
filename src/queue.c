/*
 * queue.c - jobq_queue: a generic bounded MPMC FIFO of fixed-size elements.
 *
 * Mechanism: a ring buffer guarded by one mutex, with two condition variables: `not_empty`
 * (poppers wait) and `not_full` (pushers wait). This is the textbook design on purpose: it is
 * obviously correct, and every operation is a handful of instructions under an uncontended
 * futex-based mutex. The one refinement is that we count sleepers and signal only when somebody
 * sleeps: an unconditional pthread_cond_signal() is a system call on every push and pop.
 *
 * Invariants (all under `lock`): 0 <= count <= capacity; elements live at
 * slots head, head+1, ..., head+count-1 (mod capacity); once `closed` is set it is never cleared.
 * Close semantics follow a sentinel: pushes fail, pops drain what is left and then fail.
 *
 * `count` is mirrored in an atomic so jobq_queue_size() can read it without the lock and without
 * a data race.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "jobq-private.h"

struct jobq_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    unsigned char *slots; /* capacity * elem_size bytes */
    size_t capacity;
    size_t elem_size;
    size_t head;            /* index of the oldest element; under lock */
    size_t count;           /* under lock */
    unsigned pop_sleepers;  /* under lock */
    unsigned push_sleepers; /* under lock */
    int closed;             /* under lock */
    atomic_size_t count_mirror; /* relaxed copy of count for jobq_queue_size() */
};

int
jobq__cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r;

    r = pthread_condattr_init(&attr);
    if (r != 0)
        return r;
    r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(cond, &attr);
    (void)pthread_condattr_destroy(&attr);
    return r;
}

uint64_t
jobq__now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec
jobq__deadline(uint64_t timeout_ns)
{
    struct timespec ts;
    uint64_t sec;

    /* The largest time_t: 2^31 - 1 where it is 32 bits (i386, armhf without _TIME_BITS=64). */
    const uint64_t time_max = sizeof(time_t) >= 8 ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX;
    uint64_t room;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    sec = timeout_ns / 1000000000u;
    /* Clamp absurd timeouts to ~100 years, and below the largest time_t (one second kept for
     * the nanoseconds' carry): a 32-bit time_t cannot hold 100 years from boot, and the
     * wrapped sum was a deadline in the past, so "forever" timed out at once. */
    room = time_max - (uint64_t)ts.tv_sec - 1;
    if (sec > 3153600000u)
        sec = 3153600000u;
    if (sec > room)
        sec = room;
    ts.tv_sec += (time_t)sec;
    ts.tv_nsec += (long)(timeout_ns % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_nsec -= 1000000000L;
        ts.tv_sec++;
    }
    return ts;
}

int
jobq_queue_create(jobq_queue **ret_queue, size_t capacity, size_t elem_size)
{
    jobq_queue *q;

    if (ret_queue == NULL || capacity == 0 || elem_size == 0)
        return JOBQ_EINVAL;
    if (capacity > SIZE_MAX / elem_size)
        return JOBQ_EOVERFLOW;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return JOBQ_ENOMEM;
    q->slots = malloc(capacity * elem_size);
    if (q->slots == NULL)
        goto fail_slots;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        goto fail_lock;
    if (jobq__cond_init_monotonic(&q->not_empty) != 0)
        goto fail_not_empty;
    if (jobq__cond_init_monotonic(&q->not_full) != 0)
        goto fail_not_full;
    q->capacity = capacity;
    q->elem_size = elem_size;
    atomic_init(&q->count_mirror, 0);
    *ret_queue = q;
    return 0;

fail_not_full:
    (void)pthread_cond_destroy(&q->not_empty);
fail_not_empty:
    (void)pthread_mutex_destroy(&q->lock);
fail_lock:
    free(q->slots);
fail_slots:
    free(q);
    return JOBQ_ENOMEM;
}

void
jobq_queue_destroy(jobq_queue *q)
{
    if (q == NULL)
        return;
    (void)pthread_cond_destroy(&q->not_full);
    (void)pthread_cond_destroy(&q->not_empty);
    (void)pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q);
}

/*
 * Wait on `cond` until `ready` holds for q (or closed, or deadline). `sleepers` is the counter
 * the other side checks before signalling. Returns 0 when ready, else a JOBQ_E* code.
 * Called and returns with q->lock held.
 */
enum wait_kind { WAIT_BLOCK, WAIT_TRY, WAIT_TIMED };

static int
can_push(const jobq_queue *q)
{
    return q->count < q->capacity;
}

static int
can_pop(const jobq_queue *q)
{
    return q->count > 0;
}

static int
wait_until(jobq_queue *q, int (*ready)(const jobq_queue *), pthread_cond_t *cond,
           unsigned *sleepers, enum wait_kind kind, const struct timespec *deadline)
{
    int r = 0;

    while (!ready(q)) {
        /* A push after close must fail; a pop after close only fails once drained. */
        if (q->closed)
            return JOBQ_ECLOSED;
        if (kind == WAIT_TRY)
            return JOBQ_EAGAIN;
        (*sleepers)++;
        if (kind == WAIT_TIMED)
            r = pthread_cond_timedwait(cond, &q->lock, deadline);
        else
            (void)pthread_cond_wait(cond, &q->lock);
        (*sleepers)--;
        if (r == ETIMEDOUT && !ready(q))
            return q->closed ? JOBQ_ECLOSED : JOBQ_ETIMEDOUT;
    }
    return 0;
}

static int
queue_push(jobq_queue *q, const void *elem, enum wait_kind kind, uint64_t timeout_ns)
{
    struct timespec deadline = {0, 0};
    size_t tail;
    int r;

    if (q == NULL || elem == NULL)
        return JOBQ_EINVAL;
    if (kind == WAIT_TIMED)
        deadline = jobq__deadline(timeout_ns);
    (void)pthread_mutex_lock(&q->lock);
    if (q->closed) {
        r = JOBQ_ECLOSED;
        goto out;
    }
    r = wait_until(q, can_push, &q->not_full, &q->push_sleepers, kind, &deadline);
    if (r != 0)
        goto out;
    if (q->closed) {
        r = JOBQ_ECLOSED;
        goto out;
    }
    tail = (q->head + q->count) % q->capacity;
    memcpy(q->slots + tail * q->elem_size, elem, q->elem_size);
    q->count++;
    atomic_store_explicit(&q->count_mirror, q->count, memory_order_relaxed);
    if (q->pop_sleepers > 0)
        (void)pthread_cond_signal(&q->not_empty);
out:
    (void)pthread_mutex_unlock(&q->lock);
    return r;
}

static int
queue_pop(jobq_queue *q, void *ret_elem, enum wait_kind kind, uint64_t timeout_ns)
{
    struct timespec deadline = {0, 0};
    int r;

    if (q == NULL || ret_elem == NULL)
        return JOBQ_EINVAL;
    if (kind == WAIT_TIMED)
        deadline = jobq__deadline(timeout_ns);
    (void)pthread_mutex_lock(&q->lock);
    r = wait_until(q, can_pop, &q->not_empty, &q->pop_sleepers, kind, &deadline);
    if (r == 0) {
        memcpy(ret_elem, q->slots + q->head * q->elem_size, q->elem_size);
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        atomic_store_explicit(&q->count_mirror, q->count, memory_order_relaxed);
        if (q->push_sleepers > 0)
            (void)pthread_cond_signal(&q->not_full);
    }
    (void)pthread_mutex_unlock(&q->lock);
    return r;
}

int
jobq_queue_push(jobq_queue *q, const void *elem)
{
    return queue_push(q, elem, WAIT_BLOCK, 0);
}

int
jobq_queue_try_push(jobq_queue *q, const void *elem)
{
    return queue_push(q, elem, WAIT_TRY, 0);
}

int
jobq_queue_timed_push(jobq_queue *q, const void *elem, uint64_t timeout_ns)
{
    return queue_push(q, elem, WAIT_TIMED, timeout_ns);
}

int
jobq_queue_pop(jobq_queue *q, void *ret_elem)
{
    return queue_pop(q, ret_elem, WAIT_BLOCK, 0);
}

int
jobq_queue_try_pop(jobq_queue *q, void *ret_elem)
{
    return queue_pop(q, ret_elem, WAIT_TRY, 0);
}

int
jobq_queue_timed_pop(jobq_queue *q, void *ret_elem, uint64_t timeout_ns)
{
    return queue_pop(q, ret_elem, WAIT_TIMED, timeout_ns);
}

void
jobq_queue_close(jobq_queue *q)
{
    if (q == NULL)
        return;
    (void)pthread_mutex_lock(&q->lock);
    q->closed = 1;
    (void)pthread_cond_broadcast(&q->not_empty);
    (void)pthread_cond_broadcast(&q->not_full);
    (void)pthread_mutex_unlock(&q->lock);
}

size_t
jobq_queue_size(const jobq_queue *q)
{
    if (q == NULL)
        return 0;
    return atomic_load_explicit(&q->count_mirror, memory_order_relaxed);
}

size_t
jobq_queue_capacity(const jobq_queue *q)
{
    return q == NULL ? 0 : q->capacity;
}
