/*
 * ring.c - set-up and tear-down of the pool's lock-free ring (the algorithm is in ring.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ring.h"

int
jobq__ring_init(struct jobq__ring *r, size_t capacity, unsigned nconsumers)
{
    size_t i;

    if (capacity == 0 || nconsumers == 0)
        return JOBQ_EINVAL;
    if (capacity > SIZE_MAX / 4 / sizeof(struct jobq__cell))
        return JOBQ_EOVERFLOW;
    r->limit = capacity;
    if (capacity < 2)
        capacity = 2;
    /* Cache-line aligned: calloc's 16-byte alignment would split every cell over two lines. */
    r->cells = aligned_alloc(JOBQ__CACHE_LINE, capacity * sizeof(struct jobq__cell));
    if (r->cells == NULL)
        return JOBQ_ENOMEM;
    r->consumers = aligned_alloc(JOBQ__CACHE_LINE, nconsumers * sizeof(*r->consumers));
    if (r->consumers == NULL) {
        free(r->cells);
        r->cells = NULL;
        return JOBQ_ENOMEM;
    }
    memset(r->cells, 0, capacity * sizeof(struct jobq__cell));
    /* Cell i starts with number i, which no consumer waits for (position i waits for i + 1). */
    for (i = 0; i < capacity; i++)
        atomic_init(&r->cells[i].seq, i);
    for (i = 0; i < nconsumers; i++)
        atomic_init(&r->consumers[i].busy_from, JOBQ__RING_IDLE);
    r->nconsumers = nconsumers;
    atomic_init(&r->free_below, r->limit);
    r->capacity = capacity;
    r->mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

void
jobq__ring_fini(struct jobq__ring *r)
{
    free(r->cells);
    r->cells = NULL;
    free(r->consumers);
    r->consumers = NULL;
}
