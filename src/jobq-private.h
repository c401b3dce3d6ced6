/*
 * jobq-private.h - helpers shared by the core's .c files only (never installed).
 */
#ifndef JOBQ_PRIVATE_H
#define JOBQ_PRIVATE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Cache line size used to keep hot fields of different threads apart (false sharing). */
#define JOBQ__CACHE_LINE 64

/* Initialise a condition variable that measures timeouts on CLOCK_MONOTONIC, so timed waits
 * are immune to wall-clock jumps. Returns 0 or a positive errno. */
int jobq__cond_init_monotonic(pthread_cond_t *cond);

/* Absolute CLOCK_MONOTONIC deadline timeout_ns from now (saturating). */
struct timespec jobq__deadline(uint64_t timeout_ns);

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t jobq__now_ns(void);

/* CPUs (rounded up) that the cgroup CPU quota allows: the smallest quota from the process's
 * cgroup, as named in the file proc_cgroup (/proc/self/cgroup), up to the root of the cgroup
 * file system mounted at sysfs_cgroup (/sys/fs/cgroup; v2, or v1's cpu controller in cpu/).
 * 0 when there is no quota or it cannot be read. Parameters so that tests can use a fake tree. */
unsigned jobq__cgroup_quota_cpus(const char *sysfs_cgroup, const char *proc_cgroup);

#endif /* JOBQ_PRIVATE_H */
