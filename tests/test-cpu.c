/*
 * test-cpu.c - jobq_cpu_count(): at least 1, at most the affinity mask, and it follows a
 * narrowed mask. Criterion runs each test in its own process, so narrowing this process's
 * affinity does not leak into other tests.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>

#include <jobq.h>

Test(cpu, within_affinity_mask, .timeout = 10)
{
    cpu_set_t set;
    unsigned n = jobq_cpu_count();

    cr_assert_geq(n, 1);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cr_expect_leq(n, (unsigned)CPU_COUNT(&set), "jobq_cpu_count %u > affinity mask %d", n,
                  CPU_COUNT(&set));
}

Test(cpu, follows_narrowed_mask, .timeout = 10)
{
    cpu_set_t set, one;
    int cpu, chosen = -1;

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    for (cpu = 0; cpu < CPU_SETSIZE && chosen < 0; cpu++)
        if (CPU_ISSET(cpu, &set))
            chosen = cpu;
    cr_assert_geq(chosen, 0);
    CPU_ZERO(&one);
    CPU_SET(chosen, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    cr_expect_eq(jobq_cpu_count(), 1, "one CPU allowed, jobq_cpu_count says %u",
                 jobq_cpu_count());
    /* ...and the pool default follows it. */
    {
        jobq_pool_options o;

        jobq_pool_options_init(&o);
        cr_expect_eq(o.threads, 1);
    }
}

struct cpu_thread {
    unsigned n;
};

static void *
count_thread(void *arg)
{
    struct cpu_thread *t = arg;

    t->n = jobq_cpu_count();
    return NULL;
}

/* Thread-safe: concurrent calls agree. */
Test(cpu, concurrent_calls_agree, .timeout = 10)
{
    struct cpu_thread t[4];
    pthread_t th[4];
    int i;

    for (i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, count_thread, &t[i]), 0);
    for (i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_expect_eq(t[i].n, jobq_cpu_count());
    }
}
