/*
 * test-queue.c - jobq_queue: FIFO order, backpressure, try/timed variants, close semantics,
 * MPMC stress (every item exactly once, per-producer order kept), element sizes, bad arguments.
 *
 * Blocking is observed without timing: a thread that must block reports progress through an
 * atomic the test reads after making sure the thread had every chance to run past the call
 * (it is the only runnable thread work left), and then unblocks it by the operation under test.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jobq.h>

#include "test-util.h"

Test(queue, fifo_single_consumer, .timeout = 10)
{
    jobq_queue *q = NULL;
    int i, v;

    cr_assert_eq(jobq_queue_create(&q, 64, sizeof(int)), 0);
    cr_assert_not_null(q);
    cr_assert_eq(jobq_queue_capacity(q), 64);
    /* Several wrap-arounds of the ring, with varying fill levels. */
    for (int round = 0; round < 10; round++) {
        for (i = 0; i < 50; i++)
            cr_assert_eq(jobq_queue_push(q, &i), 0);
        cr_assert_eq(jobq_queue_size(q), 50);
        for (i = 0; i < 50; i++) {
            cr_assert_eq(jobq_queue_pop(q, &v), 0);
            cr_assert_eq(v, i, "round %d: popped %d, expected %d", round, v, i);
        }
        cr_assert_eq(jobq_queue_size(q), 0);
    }
    jobq_queue_destroy(q);
}

Test(queue, try_variants, .timeout = 10)
{
    jobq_queue *q;
    int v = 7, out = -1;

    cr_assert_eq(jobq_queue_create(&q, 2, sizeof(int)), 0);
    cr_assert_eq(jobq_queue_try_pop(q, &out), JOBQ_EAGAIN);
    cr_assert_eq(out, -1, "try_pop wrote its out-parameter on failure");
    cr_assert_eq(jobq_queue_try_push(q, &v), 0);
    v = 8;
    cr_assert_eq(jobq_queue_try_push(q, &v), 0);
    v = 9;
    cr_assert_eq(jobq_queue_try_push(q, &v), JOBQ_EAGAIN);
    cr_assert_eq(jobq_queue_size(q), 2);
    cr_assert_eq(jobq_queue_try_pop(q, &out), 0);
    cr_assert_eq(out, 7);
    cr_assert_eq(jobq_queue_try_pop(q, &out), 0);
    cr_assert_eq(out, 8);
    cr_assert_eq(jobq_queue_try_pop(q, &out), JOBQ_EAGAIN);
    jobq_queue_destroy(q);
}

Test(queue, timed_variants_time_out, .timeout = 10)
{
    jobq_queue *q;
    int v = 1, out = -1;
    unsigned long long t0, dt;

    cr_assert_eq(jobq_queue_create(&q, 1, sizeof(int)), 0);
    t0 = test_now_ns();
    cr_assert_eq(jobq_queue_timed_pop(q, &out, 20000000u), JOBQ_ETIMEDOUT);
    dt = test_now_ns() - t0;
    cr_assert_geq(dt, 20000000ull, "timed_pop returned after %llu ns, before its timeout", dt);
    cr_assert_eq(out, -1);

    cr_assert_eq(jobq_queue_timed_push(q, &v, 1000000u), 0);
    t0 = test_now_ns();
    cr_assert_eq(jobq_queue_timed_push(q, &v, 20000000u), JOBQ_ETIMEDOUT);
    dt = test_now_ns() - t0;
    cr_assert_geq(dt, 20000000ull, "timed_push returned after %llu ns, before its timeout", dt);

    /* Zero timeout behaves like try. */
    cr_assert_eq(jobq_queue_timed_push(q, &v, 0), JOBQ_ETIMEDOUT);
    cr_assert_eq(jobq_queue_timed_pop(q, &out, 0), 0);
    cr_assert_eq(out, 1);
    cr_assert_eq(jobq_queue_timed_pop(q, &out, 0), JOBQ_ETIMEDOUT);
    jobq_queue_destroy(q);
}

struct blocker {
    jobq_queue *q;
    atomic_int state; /* 0 before the call, 1 after it returned */
    int result;
    int value;
    uint64_t timeout_ns; /* 0: blocking variant */
};

static void *
push_thread(void *arg)
{
    struct blocker *b = arg;

    b->result = b->timeout_ns ? jobq_queue_timed_push(b->q, &b->value, b->timeout_ns)
                              : jobq_queue_push(b->q, &b->value);
    atomic_store(&b->state, 1);
    return NULL;
}

static void *
pop_thread(void *arg)
{
    struct blocker *b = arg;

    b->result = b->timeout_ns ? jobq_queue_timed_pop(b->q, &b->value, b->timeout_ns)
                              : jobq_queue_pop(b->q, &b->value);
    atomic_store(&b->state, 1);
    return NULL;
}

/* Run fn (push_thread or pop_thread) on a new thread *t, with *b set up for q. */
static void
start_blocker(struct blocker *b, pthread_t *t, jobq_queue *q, int value, uint64_t timeout_ns,
              void *(*fn)(void *))
{
    memset(b, 0, sizeof(*b));
    b->q = q;
    b->value = value;
    b->timeout_ns = timeout_ns;
    cr_assert_eq(pthread_create(t, NULL, fn, b), 0);
}

Test(queue, producer_blocks_at_capacity_and_resumes, .timeout = 10)
{
    jobq_queue *q;
    struct blocker b;
    pthread_t t;
    int i, out;

    cr_assert_eq(jobq_queue_create(&q, 4, sizeof(int)), 0);
    for (i = 0; i < 4; i++)
        cr_assert_eq(jobq_queue_push(q, &i), 0);
    start_blocker(&b, &t, q, 4, 0, push_thread);
    /* It cannot complete while the queue is full, however long we give it. */
    test_sleep_ms(50);
    cr_assert_eq(atomic_load(&b.state), 0, "push returned although the queue was full");
    cr_assert_eq(jobq_queue_size(q), 4);
    cr_assert_eq(jobq_queue_pop(q, &out), 0);
    cr_assert_eq(out, 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(b.result, 0);
    for (i = 1; i <= 4; i++) {
        cr_assert_eq(jobq_queue_pop(q, &out), 0);
        cr_assert_eq(out, i, "the resumed push is last in FIFO order");
    }
    jobq_queue_destroy(q);
}

Test(queue, consumer_blocks_when_empty_and_resumes, .timeout = 10)
{
    jobq_queue *q;
    struct blocker b;
    pthread_t t;
    int v = 42;

    cr_assert_eq(jobq_queue_create(&q, 4, sizeof(int)), 0);
    start_blocker(&b, &t, q, -1, 0, pop_thread);
    test_sleep_ms(50);
    cr_assert_eq(atomic_load(&b.state), 0, "pop returned from an empty open queue");
    cr_assert_eq(jobq_queue_push(q, &v), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(b.result, 0);
    cr_assert_eq(b.value, 42);
    jobq_queue_destroy(q);
}

/* Timed variants that block and then succeed: room or an item that appears before the deadline
 * ends the wait with 0 (not JOBQ_ETIMEDOUT, which the 10 s deadline would give), in FIFO order. */
Test(queue, timed_variants_succeed_after_blocking, .timeout = 20)
{
    jobq_queue *q;
    struct blocker b;
    pthread_t t;
    int i, out, v = 7;

    cr_assert_eq(jobq_queue_create(&q, 2, sizeof(int)), 0);
    for (i = 0; i < 2; i++)
        cr_assert_eq(jobq_queue_push(q, &i), 0);
    start_blocker(&b, &t, q, 2, 10000000000ull, push_thread);
    test_sleep_ms(50);
    cr_assert_eq(atomic_load(&b.state), 0, "timed push returned although the queue was full");
    cr_assert_eq(jobq_queue_pop(q, &out), 0);
    cr_assert_eq(out, 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(b.result, 0, "timed push: %s", jobq_strerror(b.result));
    for (i = 1; i <= 2; i++) {
        cr_assert_eq(jobq_queue_pop(q, &out), 0);
        cr_assert_eq(out, i);
    }

    start_blocker(&b, &t, q, -1, 10000000000ull, pop_thread);
    test_sleep_ms(50);
    cr_assert_eq(atomic_load(&b.state), 0, "timed pop returned from an empty open queue");
    cr_assert_eq(jobq_queue_push(q, &v), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(b.result, 0, "timed pop: %s", jobq_strerror(b.result));
    cr_assert_eq(b.value, 7);
    jobq_queue_destroy(q);
}

Test(queue, close_semantics, .timeout = 10)
{
    jobq_queue *q;
    int i, v = 0, out = -1;

    cr_assert_eq(jobq_queue_create(&q, 8, sizeof(int)), 0);
    for (i = 0; i < 3; i++)
        cr_assert_eq(jobq_queue_push(q, &i), 0);
    jobq_queue_close(q);
    jobq_queue_close(q); /* idempotent */
    cr_assert_eq(jobq_queue_push(q, &v), JOBQ_ECLOSED);
    cr_assert_eq(jobq_queue_try_push(q, &v), JOBQ_ECLOSED);
    cr_assert_eq(jobq_queue_timed_push(q, &v, 1000000u), JOBQ_ECLOSED);
    /* Pops drain what is left, in order... */
    cr_assert_eq(jobq_queue_pop(q, &out), 0);
    cr_assert_eq(out, 0);
    cr_assert_eq(jobq_queue_try_pop(q, &out), 0);
    cr_assert_eq(out, 1);
    cr_assert_eq(jobq_queue_timed_pop(q, &out, 1000000u), 0);
    cr_assert_eq(out, 2);
    /* ...then report closed (not "empty", not a timeout), without blocking. */
    out = -1;
    cr_assert_eq(jobq_queue_pop(q, &out), JOBQ_ECLOSED);
    cr_assert_eq(jobq_queue_try_pop(q, &out), JOBQ_ECLOSED);
    cr_assert_eq(jobq_queue_timed_pop(q, &out, 1000000000u), JOBQ_ECLOSED);
    cr_assert_eq(out, -1);
    jobq_queue_destroy(q);
}

/* Close wakes every blocked pusher and popper, blocking and timed alike. */
Test(queue, close_wakes_blocked_threads, .timeout = 20)
{
    jobq_queue *full, *empty;
    struct blocker b[8];
    pthread_t t[8];
    int i, v = 1;

    cr_assert_eq(jobq_queue_create(&full, 1, sizeof(int)), 0);
    cr_assert_eq(jobq_queue_create(&empty, 1, sizeof(int)), 0);
    cr_assert_eq(jobq_queue_push(full, &v), 0);
    memset(b, 0, sizeof(b));
    for (i = 0; i < 8; i++) {
        b[i].q = i < 4 ? full : empty;
        b[i].value = -1;
        /* Timed ones get an hour: they must be woken by close, not by their timeout. */
        b[i].timeout_ns = (i % 2) ? 3600ull * 1000000000ull : 0;
        cr_assert_eq(pthread_create(&t[i], NULL, i < 4 ? push_thread : pop_thread, &b[i]), 0);
    }
    test_sleep_ms(50);
    for (i = 0; i < 8; i++)
        cr_assert_eq(atomic_load(&b[i].state), 0, "thread %d did not block", i);
    jobq_queue_close(full);
    jobq_queue_close(empty);
    for (i = 0; i < 8; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(b[i].result, JOBQ_ECLOSED, "thread %d: %d", i, b[i].result);
    }
    /* The element queued before close is still there. */
    cr_assert_eq(jobq_queue_pop(full, &v), 0);
    cr_assert_eq(v, 1);
    jobq_queue_destroy(full);
    jobq_queue_destroy(empty);
}

/* Elements wider than a word, and of odd sizes, are copied whole. */
struct wide {
    uint64_t seq;
    unsigned char pad[27];
    uint32_t check;
};

Test(queue, wide_elements, .timeout = 10)
{
    jobq_queue *q;
    struct wide w, out;
    unsigned char odd[13], odd_out[13];
    int i, j;

    cr_assert_eq(jobq_queue_create(&q, 5, sizeof(struct wide)), 0);
    for (i = 0; i < 100; i++) {
        memset(&w, 0, sizeof(w));
        w.seq = (uint64_t)i * 0x9E3779B97F4A7C15ull;
        for (j = 0; j < 27; j++)
            w.pad[j] = (unsigned char)(i + j);
        w.check = (uint32_t)~i;
        cr_assert_eq(jobq_queue_push(q, &w), 0);
        memset(&out, 0xAA, sizeof(out));
        cr_assert_eq(jobq_queue_pop(q, &out), 0);
        cr_assert_eq(memcmp(&w, &out, sizeof(w)), 0, "element %d changed in the queue", i);
    }
    jobq_queue_destroy(q);

    cr_assert_eq(jobq_queue_create(&q, 3, sizeof(odd)), 0);
    for (i = 0; i < 10; i++) {
        for (j = 0; j < 13; j++)
            odd[j] = (unsigned char)(i * 13 + j);
        cr_assert_eq(jobq_queue_push(q, odd), 0);
        if (i % 3 == 2) {
            for (int k = i - 2; k <= i; k++) {
                cr_assert_eq(jobq_queue_pop(q, odd_out), 0);
                for (j = 0; j < 13; j++)
                    cr_assert_eq(odd_out[j], (unsigned char)(k * 13 + j));
            }
        }
    }
    jobq_queue_destroy(q);
}

Test(queue, bad_arguments, .timeout = 10)
{
    jobq_queue *q = (jobq_queue *)(uintptr_t)1;

    cr_assert_eq(jobq_queue_create(NULL, 4, 4), JOBQ_EINVAL);
    cr_assert_eq(jobq_queue_create(&q, 0, 4), JOBQ_EINVAL);
    cr_assert_eq(jobq_queue_create(&q, 4, 0), JOBQ_EINVAL);
    cr_assert_eq(jobq_queue_create(&q, SIZE_MAX / 2, 3), JOBQ_EOVERFLOW);
    cr_assert_eq(q, (jobq_queue *)(uintptr_t)1, "ret_queue written on failure");
    jobq_queue_destroy(NULL);
}

/* ---- MPMC stress ------------------------------------------------------------------------- */

#define STRESS_PRODUCERS 4
#define STRESS_CONSUMERS 4

struct stress {
    jobq_queue *q;
    size_t per_producer;
    atomic_uchar *seen;           /* [producer * per_producer + seq] */
    atomic_uint_fast64_t sum_in;  /* of item values pushed */
    atomic_uint_fast64_t sum_out; /* of item values popped */
    atomic_size_t popped;
    atomic_int order_errors; /* a consumer saw a producer's items out of order */
    atomic_int unknown;      /* a value no producer pushed */
};

struct stress_arg {
    struct stress *s;
    unsigned id;
};

static void *
stress_producer(void *arg)
{
    struct stress_arg *a = arg;
    struct stress *s = a->s;
    uint64_t item, sum = 0;
    size_t i;

    for (i = 0; i < s->per_producer; i++) {
        item = ((uint64_t)a->id << 32) | i;
        if (jobq_queue_push(s->q, &item) != 0)
            break;
        sum += item;
    }
    atomic_fetch_add(&s->sum_in, sum);
    return NULL;
}

static void *
stress_consumer(void *arg)
{
    struct stress_arg *a = arg;
    struct stress *s = a->s;
    uint64_t item, sum = 0;
    int64_t last[STRESS_PRODUCERS];
    size_t n = 0;
    unsigned p, i;

    for (i = 0; i < STRESS_PRODUCERS; i++)
        last[i] = -1;
    while (jobq_queue_pop(s->q, &item) == 0) {
        p = (unsigned)(item >> 32);
        i = (unsigned)(item & 0xffffffffu);
        if (p >= STRESS_PRODUCERS || i >= s->per_producer) {
            atomic_fetch_add(&s->unknown, 1);
            continue;
        }
        /* FIFO: one consumer sees each producer's items in increasing order. */
        if ((int64_t)i <= last[p])
            atomic_fetch_add(&s->order_errors, 1);
        last[p] = i;
        atomic_fetch_add_explicit(&s->seen[(size_t)p * s->per_producer + i], 1,
                                  memory_order_relaxed);
        sum += item;
        n++;
    }
    atomic_fetch_add(&s->sum_out, sum);
    atomic_fetch_add(&s->popped, n);
    return NULL;
}

static void
run_stress(size_t capacity, size_t per_producer)
{
    struct stress s;
    struct stress_arg pa[STRESS_PRODUCERS], ca[STRESS_CONSUMERS];
    pthread_t pt[STRESS_PRODUCERS], ct[STRESS_CONSUMERS];
    size_t total = per_producer * STRESS_PRODUCERS, i, missing = 0, dup = 0;
    unsigned k;

    memset(&s, 0, sizeof(s));
    s.per_producer = per_producer;
    s.seen = calloc(total, sizeof(*s.seen));
    cr_assert_not_null(s.seen);
    cr_assert_eq(jobq_queue_create(&s.q, capacity, sizeof(uint64_t)), 0);
    for (k = 0; k < STRESS_CONSUMERS; k++) {
        ca[k].s = &s;
        ca[k].id = k;
        cr_assert_eq(pthread_create(&ct[k], NULL, stress_consumer, &ca[k]), 0);
    }
    for (k = 0; k < STRESS_PRODUCERS; k++) {
        pa[k].s = &s;
        pa[k].id = k;
        cr_assert_eq(pthread_create(&pt[k], NULL, stress_producer, &pa[k]), 0);
    }
    for (k = 0; k < STRESS_PRODUCERS; k++)
        cr_assert_eq(pthread_join(pt[k], NULL), 0);
    /* Close = sentinel: consumers drain what is left and stop. */
    jobq_queue_close(s.q);
    for (k = 0; k < STRESS_CONSUMERS; k++)
        cr_assert_eq(pthread_join(ct[k], NULL), 0);

    for (i = 0; i < total; i++) {
        unsigned char c = atomic_load(&s.seen[i]);
        missing += c == 0;
        dup += c > 1;
    }
    cr_expect_eq(atomic_load(&s.unknown), 0, "%d values nobody pushed", atomic_load(&s.unknown));
    cr_expect_eq(missing, 0, "%zu of %zu items never popped", missing, total);
    cr_expect_eq(dup, 0, "%zu items popped more than once", dup);
    cr_expect_eq(atomic_load(&s.popped), total);
    cr_expect_eq(atomic_load(&s.sum_in), atomic_load(&s.sum_out), "checksum differs");
    cr_expect_eq(atomic_load(&s.order_errors), 0, "a consumer saw a producer's items reordered");
    cr_expect_eq(jobq_queue_size(s.q), 0);
    jobq_queue_destroy(s.q);
    free(s.seen);
}

/* 4 producers x 4 consumers x 1 M items (fewer under sanitizers). */
Test(queue, mpmc_stress, .timeout = 100)
{
    run_stress(1024, test_scaled(1000000, 20));
}

/* Capacity 1: every operation hands over between threads; the blocking paths dominate. */
Test(queue, mpmc_stress_capacity_1, .timeout = 60)
{
    run_stress(1, test_scaled(20000, 4));
}
