/*
 * test-util.h - small helpers shared by the core tests (header-only, static functions).
 *
 * Why a gate and not sleeps: tests must not depend on timing, so a job that has to stay busy
 * "while something else happens" blocks on a gate the test opens once it has checked what it
 * wanted; a bug then shows as a Criterion timeout, never as a flaky pass.
 */
#ifndef JOBQ_TEST_UTIL_H
#define JOBQ_TEST_UTIL_H

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

/* Sanitized builds run the same tests with smaller counts so the suite stays fast. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define JOBQ_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define JOBQ_TEST_SANITIZED 1
#endif
#endif
#ifndef JOBQ_TEST_SANITIZED
#define JOBQ_TEST_SANITIZED 0
#endif

/* n in a plain build, n / div under a sanitizer (at least 1). */
static inline size_t
test_scaled(size_t n, size_t div)
{
    if (!JOBQ_TEST_SANITIZED)
        return n;
    return n / div > 0 ? n / div : 1;
}

/* A one-shot gate: waiters block until it is opened. */
struct test_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int open;
    unsigned arrived; /* threads that reached test_gate_wait */
};

static inline void
test_gate_init(struct test_gate *g)
{
    (void)pthread_mutex_init(&g->lock, NULL);
    (void)pthread_cond_init(&g->cond, NULL);
    g->open = 0;
    g->arrived = 0;
}

static inline void
test_gate_fini(struct test_gate *g)
{
    (void)pthread_cond_destroy(&g->cond);
    (void)pthread_mutex_destroy(&g->lock);
}

static inline void
test_gate_wait(struct test_gate *g)
{
    (void)pthread_mutex_lock(&g->lock);
    g->arrived++;
    (void)pthread_cond_broadcast(&g->cond);
    while (!g->open)
        (void)pthread_cond_wait(&g->cond, &g->lock);
    (void)pthread_mutex_unlock(&g->lock);
}

static inline void
test_gate_open(struct test_gate *g)
{
    (void)pthread_mutex_lock(&g->lock);
    g->open = 1;
    (void)pthread_cond_broadcast(&g->cond);
    (void)pthread_mutex_unlock(&g->lock);
}

/* Block until n threads are waiting at the gate. */
static inline void
test_gate_await_arrivals(struct test_gate *g, unsigned n)
{
    (void)pthread_mutex_lock(&g->lock);
    while (g->arrived < n)
        (void)pthread_cond_wait(&g->cond, &g->lock);
    (void)pthread_mutex_unlock(&g->lock);
}

static inline void
test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static inline unsigned long long
test_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Kernel thread id of this process's thread named `name` (e.g. "jobq-0"), or -1. */
static inline pid_t
test_thread_tid(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    pid_t tid = -1;
    size_t len = strlen(name);

    if (d == NULL)
        return -1;
    while (tid < 0 && (e = readdir(d)) != NULL) {
        char path[300], comm[32] = "";
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        (void)snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, name, len) == 0 &&
            comm[len] == '\n')
            tid = (pid_t)atoi(e->d_name);
        (void)fclose(f);
    }
    (void)closedir(d);
    return tid;
}

/* The CPU thread `tid` of this process last ran on (field 39 of its stat line), or -1. */
static inline int
test_thread_cpu(pid_t tid)
{
    char path[64], line[1024], *p;
    int field = 2, cpu = -1;
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(line, sizeof(line), f) != NULL && (p = strrchr(line, ')')) != NULL)
        for (; *p != '\0' && cpu < 0; p++) /* after the name, which may hold spaces */
            if (*p == ' ' && ++field == 39)
                cpu = atoi(p + 1);
    (void)fclose(f);
    return cpu;
}

#ifdef __linux__
#include <sched.h>

/* For the placement tests: *all = this thread's affinity mask, *one = {its first CPU}. Returns
 * that CPU, or -1 when the mask cannot be read or allows fewer than 2 CPUs. */
static inline int
test_first_of_two_cpus(cpu_set_t *all, cpu_set_t *one)
{
    int cpu;

    if (sched_getaffinity(0, sizeof(*all), all) != 0 || CPU_COUNT(all) < 2)
        return -1;
    for (cpu = 0; !CPU_ISSET(cpu, all); cpu++)
        ;
    CPU_ZERO(one);
    CPU_SET(cpu, one);
    return cpu;
}

/* Move thread `tid` (parked) onto the CPU in `one`, then give it `all` back: that CPU is then
 * its last one, where the kernel is likely to wake it. 0 or -1. */
static inline int
test_place_thread(pid_t tid, const cpu_set_t *one, const cpu_set_t *all)
{
    if (sched_setaffinity(tid, sizeof(*one), one) != 0)
        return -1;
    return sched_setaffinity(tid, sizeof(*all), all);
}
#endif

/* Threads of this process now (entries of /proc/self/task), or -1 when unknown. */
static inline int
test_thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    (void)closedir(d);
    return n;
}

/*
 * Threads of this process once those that are exiting are gone, or -1 when unknown. A joined
 * thread can still be listed in /proc/self/task for a moment after pthread_join returned (the
 * kernel wakes the joiner when the thread releases its memory, before the thread is reaped),
 * so a single reading right after a join can count it. This polls (up to ~2 s) until
 * the count is at most `want` (want >= 0), or until two readings 5 ms apart agree (want < 0).
 */
static inline int
test_thread_count_settled(int want)
{
    int n = test_thread_count(), i, m;

    for (i = 0; i < 400 && n > 0; i++) {
        if (want >= 0 && n <= want)
            break;
        test_sleep_ms(5);
        m = test_thread_count();
        if (want < 0 && m == n)
            break;
        n = m;
    }
    return n;
}

#endif /* JOBQ_TEST_UTIL_H */
