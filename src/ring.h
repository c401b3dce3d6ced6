/*
 * ring.h - the pool's job FIFO: a bounded lock-free MPMC ring (private to src/).
 *
 * Producers race on `tail` and consumers on `head` with one CAS each, as in Dmitry Vyukov's
 * bounded MPMC queue, and every cell carries a sequence number: the producer that claimed
 * position p stores p + 1 once the entry is in, which is what a consumer waits for. A consumer
 * may claim k consecutive ready cells with one CAS (batch dequeue), dividing the traffic on
 * `head` by k when the queue is long. A producer pre-empted between its claim and its store
 * holds up the consumers at that cell; a consumer pre-empted between its announcement (below)
 * and the end of its copy holds the producers at its announced position + limit.
 *
 * Where this differs from Vyukov's: consumers do not hand cells back by storing a sequence
 * number into each one (a store per job into a line the producer's core wrote last, which the
 * next lap's producer must then fetch back; on the 2-vCPU Xeon VM, 1 us jobs, 2 workers,
 * 8 alternating pairs, this scheme took single submit from 0.909 to 0.926 of the ideal, batch
 * submit from 0.918 to 0.930, empty jobs from 36 to 42 M/s). Instead each consumer announces,
 * in a line of its own, the position its claim
 * starts at before it claims (`busy_from`), and clears it once its copy is done. Every position
 * below both `head` and every announcement has been copied out, so a producer may fill cells up
 * to that low mark + limit; producers cache the mark (`free_below`) and recompute it (a load of
 * `head` and of every consumer's line) only when a push reaches it.
 *
 * Closing sets a bit in `tail` (see JOBQ__RING_CLOSED), after which only forced pushes (the
 * pool's shutdown sentinels) succeed, so they are guaranteed to land behind every real entry.
 *
 * Any capacity works (positions are reduced modulo capacity; a power of two uses a mask).
 * Parking (sleeping when empty or full) is the pool's business, not the ring's.
 */
#ifndef JOBQ_RING_H
#define JOBQ_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jobq.h>

#include "jobq-private.h"

struct jobq__entry {
    jobq_job job;
    jobq_group *group;
};

/* One cell per cache line: the producer filling cell p+1 must not invalidate the line the
 * consumer is reading cell p from. */
struct jobq__cell {
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t seq;
    struct jobq__entry e;
};

/* High bit of `tail`: the ring is closed to ordinary pushes. Living in `tail` makes the closed
 * check part of the push's own CAS: a push either lands before jobq__ring_close() or fails. */
#define JOBQ__RING_CLOSED ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* A consumer's announcement: JOBQ__RING_IDLE, or a position at or before the first cell of the
 * claim it is making or copying out. */
#define JOBQ__RING_IDLE SIZE_MAX

struct jobq__ring_consumer {
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t busy_from;
};

struct jobq__ring {
    /* Producers and consumers each get their own cache line: no false sharing between them. */
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t tail;
    /* Producers only: every position below this may be filled (see jobq__ring_free_below). */
    atomic_size_t free_below;
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t head;
    _Alignas(JOBQ__CACHE_LINE) struct jobq__cell *cells;
    struct jobq__ring_consumer *consumers;
    unsigned nconsumers;
    size_t capacity; /* cells; at least 2, so that a cell's sequence numbers never repeat */
    size_t limit;    /* entries allowed: the requested capacity (only 1 is below `capacity`) */
    size_t mask;     /* capacity - 1 when capacity is a power of two, else 0 */
};

/* A ring for `capacity` entries popped by consumers 0 .. nconsumers - 1 (each index used by one
 * thread at a time). */
int jobq__ring_init(struct jobq__ring *r, size_t capacity, unsigned nconsumers);
void jobq__ring_fini(struct jobq__ring *r);

static inline struct jobq__cell *
jobq__ring_cell(const struct jobq__ring *r, size_t pos)
{
    return &r->cells[r->mask != 0 ? pos & r->mask : pos % r->capacity];
}

/*
 * Positions below the returned value may be filled: recompute the low mark of what consumers
 * have copied out (see the top of this file) and raise the cached `free_below` to it.
 *
 * Why it is safe: a consumer announces `busy_from` = p (seq_cst) before its CAS of `head` from p,
 * and we load `head` before the announcements (seq_cst). If our load of `head` saw its claim,
 * the announcement precedes that load in the total order, so we see it, or a later store of
 * that consumer, which comes only after its copy is done (release; our loads acquire). If it
 * did not, the claim starts at or above the `head` we saw. Either way no position at or above
 * a claim still being copied is below the mark, and cell p - capacity is free once p is below
 * mark + limit (limit <= capacity).
 */
static inline size_t
jobq__ring_free_below(struct jobq__ring *r, size_t pos)
{
    size_t lo = atomic_load(&r->head), cur, f;
    unsigned i;

    /* A full ring needs no scan: the answer only matters if it is above pos, and then it is
     * not (nor is it cached: announcements may hold the mark lower). The scan costs a load
     * per consumer, ~150 us for 65 537 of them (a reviewer's measurement). */
    if (lo + r->limit <= pos)
        return lo + r->limit;
    for (i = 0; i < r->nconsumers; i++) {
        size_t b = atomic_load(&r->consumers[i].busy_from);

        if (b < lo) {
            lo = b;
            if (lo + r->limit <= pos)
                return lo + r->limit;
        }
    }
    f = lo + r->limit;
    /* release: a producer that reads the raised mark (acquire) may write the cells it frees,
     * so it must see the consumers' copies as done, as we do. acquire: when another producer
     * raised it further, we return its value and write cells on its word. */
    cur = atomic_load_explicit(&r->free_below, memory_order_acquire);
    while (f > cur && !atomic_compare_exchange_weak_explicit(&r->free_below, &cur, f,
                                                             memory_order_acq_rel,
                                                             memory_order_acquire))
        ;
    return f > cur ? f : cur;
}

/* Append *e. Returns 0, JOBQ_EAGAIN when full, or JOBQ_ECLOSED when closed (unless force). */
static inline int
jobq__ring_try_push(struct jobq__ring *r, const struct jobq__entry *e, int force)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t pos;
    struct jobq__cell *c;

    for (;;) {
        if ((tail & JOBQ__RING_CLOSED) != 0 && !force)
            return JOBQ_ECLOSED;
        pos = tail & ~JOBQ__RING_CLOSED;
        /* Full, or a consumer still copying out the cell of the previous lap: EAGAIN. */
        if (pos >= atomic_load_explicit(&r->free_below, memory_order_acquire) &&
            pos >= jobq__ring_free_below(r, pos))
            return JOBQ_EAGAIN;
        /* seq_cst: the pool's wake-up protocol pairs this with a parking worker's seq_cst
         * sleeper increment followed by its load of `tail` (a Dekker handshake). */
        if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, tail + 1,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    c = jobq__ring_cell(r, pos);
    c->e = *e;
    /* release: publishes the entry to the consumer that acquires seq == pos + 1. */
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    /* A cell's line was last written by the consumer that emptied it, a lap ago; fetching it
     * for writing a few pushes ahead hides that cross-core miss from the next pushes. (Until
     * 2026-12-02 GCC turned this into a read prefetch; the real PREFETCHW measured the same on
     * the 2-vCPU Xeon VM, 1 us single submit 0.905 vs 0.905, so the miss is mostly hidden.) */
    JOBQ__PREFETCH_W(jobq__ring_cell(r, pos + 8));
    return 0;
}

/*
 * Append up to n entries from src[] with one CAS (the free run of cells at the tail, up to n).
 * Returns how many were appended (0: full), or JOBQ_ECLOSED as a negative value via *ret_err.
 */
static inline size_t
jobq__ring_try_push_n(struct jobq__ring *r, const struct jobq__entry *src, size_t n,
                      int *ret_err)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t pos, k = 0, i, free;

    *ret_err = 0;
    if (n == 0)
        return 0;
    for (;;) {
        if ((tail & JOBQ__RING_CLOSED) != 0) {
            *ret_err = JOBQ_ECLOSED;
            return 0;
        }
        pos = tail & ~JOBQ__RING_CLOSED;
        free = atomic_load_explicit(&r->free_below, memory_order_acquire);
        if (pos + n > free)
            free = jobq__ring_free_below(r, pos);
        if (pos >= free) {
            *ret_err = JOBQ_EAGAIN;
            return 0;
        }
        k = free - pos < n ? free - pos : n;
        /* seq_cst: see jobq__ring_try_push. */
        if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, tail + k,
                                                  memory_order_seq_cst, memory_order_relaxed))
            break;
    }
    for (i = 0; i < k; i++) {
        struct jobq__cell *c = jobq__ring_cell(r, pos + i);
        c->e = src[i];
        atomic_store_explicit(&c->seq, pos + i + 1, memory_order_release);
    }
    return k;
}

/* Refuse ordinary pushes from now on. Idempotent. */
static inline void
jobq__ring_close(struct jobq__ring *r)
{
    atomic_fetch_or(&r->tail, JOBQ__RING_CLOSED);
}

static inline int
jobq__ring_closed(const struct jobq__ring *r)
{
    return (atomic_load(&r->tail) & JOBQ__RING_CLOSED) != 0;
}

/* Entries ever pushed (including forced ones). */
static inline size_t
jobq__ring_pushed(const struct jobq__ring *r)
{
    return atomic_load(&r->tail) & ~JOBQ__RING_CLOSED;
}

/* Take up to max (>= 1) entries from the head into out[], as consumer `consumer`; with `half`,
 * only half (rounded up) of the run of ready entries found. Returns how many (0 = empty);
 * *ret_found (if not NULL) gets the length of that run (at most max): more than the return
 * value means ready entries were left behind. */
static inline size_t
jobq__ring_try_pop(struct jobq__ring *r, unsigned consumer, struct jobq__entry *out, size_t max,
                   int half, size_t *ret_found)
{
    atomic_size_t *busy = &r->consumers[consumer].busy_from;
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t k, i, found;
    int announced = 0;

    for (;;) {
        struct jobq__cell *c = jobq__ring_cell(r, pos);
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)(pos + 1);

        if (diff == 0) {
            /* Extend the claim over the following cells that are ready too. */
            for (k = 1; k < max; k++) {
                c = jobq__ring_cell(r, pos + k);
                if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + k + 1)
                    break;
            }
            found = k;
            if (half)
                k = (k + 1) / 2;
            /* Right before the claim (see jobq__ring_free_below): an announcement older than
             * `head` holds producers back until we move on, so the window between the two is
             * kept to these instructions. release, not seq_cst (an xchg on x86): a producer
             * whose load of `head` (acquire) sees our CAS (a release) sees this store or a
             * later one, and one that reads this store also sees our previous copy done. */
            atomic_store_explicit(busy, pos, memory_order_release);
            announced = 1;
            /* seq_cst: pairs with a parked submitter's sleeper increment (see try_push). */
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + k,
                                                      memory_order_seq_cst, memory_order_relaxed))
                break;
        } else if (diff < 0) {
            /* Empty: the cell still holds the previous lap's number. */
            if (announced)
                atomic_store_explicit(busy, JOBQ__RING_IDLE, memory_order_release);
            return 0;
        } else {
            /* A later lap's number: `head` moved on since we read it. */
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
    if (ret_found != NULL)
        *ret_found = found;
    for (i = 0; i < k; i++)
        out[i] = jobq__ring_cell(r, pos + i)->e;
    /* release: our reads of the entries happen before the next lap's producers write them. */
    atomic_store_explicit(busy, JOBQ__RING_IDLE, memory_order_release);
    return k;
}

/* Whether the head cell holds an entry: a consumer-side poll that, unlike ring_size(), does
 * not pull the producers' `tail` cache line. */
static inline int
jobq__ring_ready(const struct jobq__ring *r)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);

    return atomic_load_explicit(&jobq__ring_cell(r, pos)->seq, memory_order_relaxed) == pos + 1;
}

/* Approximate number of queued entries (exact when nobody is pushing or popping). */
static inline size_t
jobq__ring_size(const struct jobq__ring *r)
{
    size_t head = atomic_load(&r->head);
    size_t tail = atomic_load(&r->tail) & ~JOBQ__RING_CLOSED;

    return tail > head ? tail - head : 0;
}

#endif /* JOBQ_RING_H */
