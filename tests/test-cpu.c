/*
 * test-cpu.c - jobq_cpu_count(): at least 1, at most the affinity mask, and it follows a
 * narrowed mask. Criterion runs each test in its own process, so narrowing this process's
 * affinity does not leak into other tests. The cgroup quota is read from fake cgroup trees
 * built in a temporary directory (v1 and v2, nested quotas, paths outside the mount).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jobq.h>

#include "jobq-private.h"

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

/* ---- the cgroup quota --------------------------------------------------------------------- */

static char cg_root[64];

static void
cg_setup(void)
{
    (void)snprintf(cg_root, sizeof(cg_root), "/tmp/jobq-test-cgroup-XXXXXX");
    cr_assert_not_null(mkdtemp(cg_root));
}

static void
cg_teardown(void)
{
    char cmd[128];

    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cg_root);
    (void)system(cmd);
}

/* Write text to cg_root/rel, creating the directories on the way. */
static void
cg_write(const char *rel, const char *text)
{
    char path[256], *p;
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", cg_root, rel);
    for (p = path + strlen(cg_root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        (void)mkdir(path, 0755);
        *p = '/';
    }
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static unsigned
cg_quota(void)
{
    char sys[128], proc[128];

    (void)snprintf(sys, sizeof(sys), "%s/sys", cg_root);
    (void)snprintf(proc, sizeof(proc), "%s/proc-cgroup", cg_root);
    return jobq__cgroup_quota_cpus(sys, proc);
}

Test(cpu, cgroup_v2_smallest_quota_on_the_way_up, .init = cg_setup, .fini = cg_teardown)
{
    cg_write("proc-cgroup", "0::/system.slice/app.service\n");
    cg_write("sys/cgroup.controllers", "cpu memory\n");
    cg_write("sys/system.slice/app.service/cpu.max", "max 100000\n");
    cr_expect_eq(cg_quota(), 0, "no quota anywhere");
    /* A quota two levels up binds (the root's own look saw none before the walk). */
    cg_write("sys/system.slice/cpu.max", "150000 100000\n");
    cr_expect_eq(cg_quota(), 2, "1.5 CPUs round up to 2");
    cg_write("sys/system.slice/app.service/cpu.max", "300000 100000\n");
    cr_expect_eq(cg_quota(), 2, "the parent's 1.5 is smaller than the leaf's 3");
    cg_write("sys/system.slice/app.service/cpu.max", "50000 100000\n");
    cr_expect_eq(cg_quota(), 1, "the leaf's 0.5 is smaller");
}

Test(cpu, cgroup_v2_namespaced_root_and_foreign_path, .init = cg_setup, .fini = cg_teardown)
{
    char path[128];

    /* In a container with its own namespace the path is "/": the mount root is read. */
    cg_write("proc-cgroup", "0::/\n");
    cg_write("sys/cgroup.controllers", "cpu\n");
    cg_write("sys/cpu.max", "400000 100000\n");
    cr_expect_eq(cg_quota(), 4);
    /* A path that is not under the mount (the host's path, seen from a container without a
     * namespace): the mount root still is. */
    cg_write("proc-cgroup", "0::/docker/0123abcd\n");
    cr_expect_eq(cg_quota(), 4);
    /* No /proc/self/cgroup at all: the root. */
    (void)snprintf(path, sizeof(path), "%s/proc-cgroup", cg_root);
    cr_assert_eq(unlink(path), 0);
    cr_expect_eq(cg_quota(), 4);
}

Test(cpu, cgroup_v1_cpu_controller, .init = cg_setup, .fini = cg_teardown)
{
    cg_write("proc-cgroup", "5:memory:/x\n4:cpuacct,cpu:/batch/job7\n0::/\n");
    cg_write("sys/cpu/cpu.cfs_quota_us", "-1\n");
    cg_write("sys/cpu/cpu.cfs_period_us", "100000\n");
    cg_write("sys/cpu/batch/job7/cpu.cfs_quota_us", "-1\n");
    cg_write("sys/cpu/batch/job7/cpu.cfs_period_us", "100000\n");
    cr_expect_eq(cg_quota(), 0);
    cg_write("sys/cpu/batch/cpu.cfs_quota_us", "250000\n");
    cg_write("sys/cpu/batch/cpu.cfs_period_us", "100000\n");
    cr_expect_eq(cg_quota(), 3, "2.5 CPUs on the parent round up to 3");
    /* "cpuacct" alone is not "cpu": a line naming only it does not count. */
    cg_write("proc-cgroup", "4:cpuacct:/batch/job7\n");
    cr_expect_eq(cg_quota(), 0, "the root has no quota");
}
