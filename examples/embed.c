/*
 * embed.c - the smallest useful program with jobq: a pool, jobs, a parallel loop, wait, stats.
 * Build: cc embed.c $(pkg-config --cflags --libs jobq)
 */
#include <stdio.h>

#include <jobq.h>

static int
square(void *arg)
{
    long *x = arg;

    *x *= *x; /* each job owns its element: no locking */
    return 0;
}

static int
add_range(void *ctx, size_t begin, size_t end)
{
    long *v = ctx;

    for (size_t i = begin; i < end; i++)
        v[i] += 1;
    return 0;
}

int
main(void)
{
    long v[1000];
    jobq_pool *pool;
    jobq_pool_stats st;
    long sum = 0;
    int err;

    for (size_t i = 0; i < 1000; i++)
        v[i] = (long)i;
    err = jobq_pool_create(&pool, NULL); /* one worker per usable CPU, queue of 1024 */
    if (err != 0) {
        fprintf(stderr, "embed: %s\n", jobq_strerror(err));
        return 1;
    }
    for (size_t i = 0; i < 1000; i++) {
        jobq_job job = {square, NULL, &v[i]};
        (void)jobq_pool_submit(pool, &job); /* blocks while the queue is full */
    }
    err = jobq_pool_wait(pool); /* all jobs done; first job error, if any */
    if (err == 0)
        err = jobq_pool_parallel_for(pool, 0, 1000, 0, add_range, v);
    (void)jobq_pool_get_stats(pool, &st, NULL, 0);
    jobq_pool_destroy(pool);
    for (size_t i = 0; i < 1000; i++)
        sum += v[i];
    printf("sum %ld (expected %ld), %u workers, %llu jobs\n", sum, 332833500L + 1000L, st.threads,
           (unsigned long long)st.completed);
    return err != 0 || sum != 332833500L + 1000L;
}
