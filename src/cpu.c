/*
 * cpu.c - jobq_cpu_count(): how many CPUs this process may really use.
 *
 * nproc of the host overstates it in containers and under taskset: the affinity mask limits
 * which CPUs we may run on, and a cgroup CPU quota (cpu.max in v2, cfs_quota_us/cfs_period_us in
 * v1) limits how much of them we get. We take the smaller, rounding a fractional quota up so a
 * 1.5-CPU quota still gets 2 workers (each gets 75 %), and never return 0.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jobq.h>

/* Quota in CPUs (rounded up) from the cgroup files, or 0 when unlimited or unknown. */
static unsigned
cgroup_quota_cpus(void)
{
    FILE *f;
    char max[32];
    long long quota = -1, period = 0;
    unsigned cpus = 0;

    f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f != NULL) {
        if (fscanf(f, "%31s %lld", max, &period) == 2 && max[0] != 'm')
            quota = atoll(max);
        (void)fclose(f);
    } else {
        f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r");
        if (f != NULL) {
            if (fscanf(f, "%lld", &quota) != 1)
                quota = -1;
            (void)fclose(f);
        }
        f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r");
        if (f != NULL) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            (void)fclose(f);
        }
    }
    if (quota > 0 && period > 0)
        cpus = (unsigned)((quota + period - 1) / period);
    return cpus;
}

unsigned
jobq_cpu_count(void)
{
    cpu_set_t set;
    long online;
    unsigned n = 0, quota;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = (unsigned)CPU_COUNT(&set);
    if (n == 0) {
        online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (unsigned)online : 1;
    }
    quota = cgroup_quota_cpus();
    if (quota > 0 && quota < n)
        n = quota;
    return n > 0 ? n : 1;
}
