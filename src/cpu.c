/*
 * cpu.c - jobq_cpu_count(): how many CPUs this process may really use.
 *
 * nproc of the host overstates it in containers and under taskset: the affinity mask limits
 * which CPUs we may run on, and a cgroup CPU quota (cpu.max in v2, cfs_quota_us/cfs_period_us in
 * v1) limits how much of them we get. We take the smaller, rounding a fractional quota up so a
 * 1.5-CPU quota still gets 2 workers (each gets 75 %), and never return 0.
 *
 * The quota that binds is the smallest on the way from this process's own cgroup (named in
 * /proc/self/cgroup) up to the root: a systemd service with CPUQuota= sits a few levels below
 * the root, where a look at the root alone sees no limit. Inside a container with its own
 * cgroup namespace the path is "/" and the mount root is the container's cgroup; where the
 * named path is not under the mount (a container without a namespace sees the host's path),
 * only the mount root is read, as before.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jobq.h>

#include "jobq-private.h"

/* Quota in CPUs (rounded up) set in the cgroup directory dir, or 0 when unlimited or unknown. */
static unsigned
quota_in(const char *dir, int v2)
{
    char path[PATH_MAX + 32], max[32];
    long long quota = -1, period = 0;
    FILE *f;

    if (v2) {
        (void)snprintf(path, sizeof(path), "%s/cpu.max", dir);
        f = fopen(path, "r");
        if (f != NULL) {
            if (fscanf(f, "%31s %lld", max, &period) == 2 && max[0] != 'm')
                quota = atoll(max);
            (void)fclose(f);
        }
    } else {
        (void)snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
        f = fopen(path, "r");
        if (f != NULL) {
            if (fscanf(f, "%lld", &quota) != 1)
                quota = -1;
            (void)fclose(f);
        }
        (void)snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
        f = fopen(path, "r");
        if (f != NULL) {
            if (fscanf(f, "%lld", &period) != 1)
                period = 0;
            (void)fclose(f);
        }
    }
    if (quota > 0 && period > 0)
        return (unsigned)((quota + period - 1) / period);
    return 0;
}

static int
is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The smallest quota from mount/cg up to mount (0: none); just mount's if mount/cg is absent. */
static unsigned
smallest_quota(const char *mount, const char *cg, int v2)
{
    char dir[PATH_MAX];
    size_t root_len = strlen(mount);
    unsigned q, best = 0;
    char *slash;
    int n;

    n = snprintf(dir, sizeof(dir), "%s%s", mount, cg[0] == '/' ? cg : "/");
    if (n < 0 || (size_t)n >= sizeof(dir) || !is_dir(dir))
        return quota_in(mount, v2);
    while (dir[root_len] != '\0' && dir[strlen(dir) - 1] == '/')
        dir[strlen(dir) - 1] = '\0'; /* "/sys/fs/cgroup/" from cg "/": the root itself */
    for (;;) {
        q = quota_in(dir, v2);
        if (q > 0 && (best == 0 || q < best))
            best = q;
        if (strlen(dir) <= root_len)
            break;
        slash = strrchr(dir + root_len, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
    }
    return best;
}

/* Whether the comma-separated controller list ctl names "cpu". */
static int
has_cpu_controller(const char *ctl)
{
    const char *p = ctl;
    size_t len;

    while (*p != '\0') {
        len = strcspn(p, ",");
        if (len == 3 && strncmp(p, "cpu", 3) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

unsigned
jobq__cgroup_quota_cpus(const char *sysfs_cgroup, const char *proc_cgroup)
{
    char line[PATH_MAX + 128], v1[PATH_MAX], v2[PATH_MAX], mount[PATH_MAX + 32];
    char *ctl, *cg;
    FILE *f;
    int have_v1 = 0, have_v2 = 0;

    f = fopen(proc_cgroup, "r");
    if (f != NULL) {
        /* Lines are "hierarchy-ID:controller-list:path"; v2's is "0::path". */
        while (fgets(line, sizeof(line), f) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            ctl = strchr(line, ':');
            cg = ctl != NULL ? strchr(ctl + 1, ':') : NULL;
            if (cg == NULL)
                continue;
            *cg++ = '\0';
            *ctl++ = '\0';
            if (strcmp(line, "0") == 0 && ctl[0] == '\0' && strlen(cg) < sizeof(v2)) {
                (void)snprintf(v2, sizeof(v2), "%s", cg);
                have_v2 = 1;
            } else if (has_cpu_controller(ctl) && strlen(cg) < sizeof(v1)) {
                (void)snprintf(v1, sizeof(v1), "%s", cg);
                have_v1 = 1;
            }
        }
        (void)fclose(f);
    }
    /* v2 is mounted at the root of sysfs_cgroup when its cpu.max files exist there or below;
     * v1's cpu controller at sysfs_cgroup/cpu (often a link to cpu,cpuacct). */
    (void)snprintf(mount, sizeof(mount), "%s/cgroup.controllers", sysfs_cgroup);
    if (access(mount, F_OK) == 0)
        return smallest_quota(sysfs_cgroup, have_v2 ? v2 : "/", 1);
    (void)snprintf(mount, sizeof(mount), "%s/cpu", sysfs_cgroup);
    return smallest_quota(mount, have_v1 ? v1 : "/", 0);
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
    quota = jobq__cgroup_quota_cpus("/sys/fs/cgroup", "/proc/self/cgroup");
    if (quota > 0 && quota < n)
        n = quota;
    return n > 0 ? n : 1;
}
