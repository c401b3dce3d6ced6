/*
 * ring.h - the pool's job FIFO: a bounded lock-free MPMC ring (private to src/).
 *
 * The algorithm is Dmitry Vyukov's bounded MPMC queue: every cell carries a sequence number
 * that says whose turn it is. A cell at position p is free for the producer that claims p when
 * seq == p, holds data for the consumer that claims p when seq == p + 1, and is handed back to
 * the producer of the next lap by storing p + capacity. Producers race on `tail` and consumers on
 * `head` with one CAS each; neither side ever waits for the other, so a pre-empted thread blocks
 * nobody except the cell it owns.
 *
 * Extension: a consumer may claim k consecutive ready cells with one CAS (batch dequeue), which
 * divides the traffic on `head` by k when the queue is long.
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

struct jobq__ring {
    /* Producers and consumers each get their own cache line: no false sharing between them. */
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t tail;
    _Alignas(JOBQ__CACHE_LINE) atomic_size_t head;
    _Alignas(JOBQ__CACHE_LINE) struct jobq__cell *cells;
    size_t capacity; /* cells; at least 2, which the sequence scheme needs */
    size_t limit;    /* entries allowed: the requested capacity (only 1 is below `capacity`) */
    size_t mask;     /* capacity - 1 when capacity is a power of two, else 0 */
};

int jobq__ring_init(struct jobq__ring *r, size_t capacity);
void jobq__ring_fini(struct jobq__ring *r);

static inline struct jobq__cell *
jobq__ring_cell(const struct jobq__ring *r, size_t pos)
{
    return &r->cells[r->mask != 0 ? pos & r->mask : pos % r->capacity];
}

/* Append *e. Returns 0, JOBQ_EAGAIN when full, or JOBQ_ECLOSED when closed (unless force). */
static inline int
jobq__ring_try_push(struct jobq__ring *r, const struct jobq__entry *e, int force)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t pos;
    struct jobq__cell *c;

    for (;;) {
        size_t seq;
        intptr_t diff;

        if ((tail & JOBQ__RING_CLOSED) != 0 && !force)
            return JOBQ_ECLOSED;
        pos = tail & ~JOBQ__RING_CLOSED;
        c = jobq__ring_cell(r, pos);
        /* acquire: pairs with the consumer's release that handed the cell back to us. */
        seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            /* Capacity 1 runs on 2 cells; a stale head only makes this check stricter. */
            if (r->limit < r->capacity &&
                pos - atomic_load_explicit(&r->head, memory_order_acquire) >= r->limit)
                return JOBQ_EAGAIN;
            /* seq_cst: the pool's wake-up protocol pairs this with a parking worker's seq_cst
             * sleeper increment followed by its load of `tail` (a Dekker handshake). */
            if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, tail + 1,
                                                      memory_order_seq_cst, memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return JOBQ_EAGAIN;
        } else {
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
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
    size_t pos, k, i;

    *ret_err = 0;
    if (r->limit < r->capacity) {
        /* Capacity 1: no runs to claim. */
        *ret_err = jobq__ring_try_push(r, src, 0);
        return *ret_err == 0 ? 1 : 0;
    }
    for (;;) {
        intptr_t diff;

        if ((tail & JOBQ__RING_CLOSED) != 0) {
            *ret_err = JOBQ_ECLOSED;
            return 0;
        }
        pos = tail & ~JOBQ__RING_CLOSED;
        diff = (intptr_t)atomic_load_explicit(&jobq__ring_cell(r, pos)->seq,
                                              memory_order_acquire) - (intptr_t)pos;
        if (diff == 0) {
            for (k = 1; k < n && k < r->capacity; k++)
                if (atomic_load_explicit(&jobq__ring_cell(r, pos + k)->seq,
                                         memory_order_acquire) != pos + k)
                    break;
            /* seq_cst: see jobq__ring_try_push. */
            if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, tail + k,
                                                      memory_order_seq_cst, memory_order_relaxed))
                break;
        } else if (diff < 0) {
            *ret_err = JOBQ_EAGAIN;
            return 0;
        } else {
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
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

/* Take up to max (>= 1) entries from the head into out[]; with `half`, only half (rounded up)
 * of the run of ready entries found. Returns how many (0 = empty); *ret_found (if not NULL)
 * gets the length of that run (at most max): more than the return value means ready entries
 * were left behind. */
static inline size_t
jobq__ring_try_pop(struct jobq__ring *r, struct jobq__entry *out, size_t max, int half,
                   size_t *ret_found)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t k, i, found;

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
            /* seq_cst: pairs with a parked submitter's sleeper increment (see try_push). */
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + k,
                                                      memory_order_seq_cst, memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return 0;
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
    if (ret_found != NULL)
        *ret_found = found;
    for (i = 0; i < k; i++) {
        struct jobq__cell *c = jobq__ring_cell(r, pos + i);
        out[i] = c->e;
        /* release: our reads of the entry happen before the next lap's producer writes it. */
        atomic_store_explicit(&c->seq, pos + i + r->capacity, memory_order_release);
    }
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
