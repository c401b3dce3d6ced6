/*
 * ring.c - set-up and tear-down of the pool's lock-free ring (the algorithm is in ring.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ring.h"

int
jobq__ring_init(struct jobq__ring *r, size_t capacity)
{
    size_t i;

    if (capacity == 0)
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
    memset(r->cells, 0, capacity * sizeof(struct jobq__cell));
    for (i = 0; i < capacity; i++)
        atomic_init(&r->cells[i].seq, i);
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
}
