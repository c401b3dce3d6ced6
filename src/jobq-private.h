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

/* Fetch the cache line at p in the exclusive state, ahead of a store to it. GCC's
 * __builtin_prefetch(p, 1) emits a plain read prefetch (prefetcht0) unless the target enables
 * PRFCHW, and a line fetched shared still needs a second cross-core round trip when the store
 * comes. x86-64 CPUs without PREFETCHW execute its opcode (0F 0D /1) as a no-op. */
#if defined(__x86_64__) && !defined(JOBQ_NO_PREFETCHW)
#define JOBQ__PREFETCH_W(p) __asm__ volatile("prefetchw %0" : : "m"(*(const char *)(p)))
#else
#define JOBQ__PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#endif

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
