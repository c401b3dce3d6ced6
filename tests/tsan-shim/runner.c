/*
 * runner.c - main() of the Criterion-compatible shim used in the ThreadSanitizer build (see
 * criterion/criterion.h for why). Runs every registered test in a forked child, in suite/name
 * order, honouring .init, .fini, .timeout, .disabled, .signal and .exit_code, and prints a
 * Criterion-like synthesis. Exit status 1 when any test failed.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP_STATUS 77

static struct shim_test *tests;
static struct shim_suite *suites;
static int expect_failed;

void
shim_register_test(struct shim_test *t)
{
    struct shim_test **p = &tests;
    int c;

    /* Keep the list sorted by suite, then name, so runs are reproducible. */
    while (*p != NULL && ((c = strcmp((*p)->suite, t->suite)) < 0 ||
                          (c == 0 && strcmp((*p)->name, t->name) < 0)))
        p = &(*p)->next;
    t->next = *p;
    *p = t;
}

void
shim_register_suite(struct shim_suite *s)
{
    s->next = suites;
    suites = s;
}

void
shim_check(int fatal, int ok, const char *file, int line, const char *what, const char *fmt,
           ...)
{
    va_list ap;

    if (ok)
        return;
    fprintf(stderr, "[----] %s:%d: %s: %s", file, line, fatal ? "Assertion failed" : "Expectation failed",
            what);
    if (fmt != NULL && fmt[0] != '\0') {
        fputs(": ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    fflush(stderr);
    if (fatal)
        _exit(1);
    expect_failed = 1;
}

void
shim_skip(const char *fmt, ...)
{
    va_list ap;

    fputs("[SKIP] ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(SKIP_STATUS);
}

void
shim_log(const char *level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "[%s] ", level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const struct criterion_test_extra_data *
suite_of(const char *name)
{
    const struct shim_suite *s;

    for (s = suites; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return &s->data;
    return NULL;
}

int
main(int argc, char **argv)
{
    const struct shim_test *t;
    int tested = 0, passed = 0, failed = 0, skipped = 0;

    (void)argc;
    (void)argv;
    for (t = tests; t != NULL; t = t->next) {
        const struct criterion_test_extra_data *sd = suite_of(t->suite);
        struct criterion_test_extra_data d = t->data;
        struct timespec t0, t1;
        double secs;
        pid_t pid;
        int status, ok;

        if (sd != NULL) {
            if (d.init == NULL)
                d.init = sd->init;
            if (d.fini == NULL)
                d.fini = sd->fini;
            if (d.timeout == 0)
                d.timeout = sd->timeout;
            d.disabled = d.disabled || sd->disabled;
        }
        if (d.disabled) {
            skipped++;
            continue;
        }
        tested++;
        fflush(NULL);
        (void)clock_gettime(CLOCK_MONOTONIC, &t0);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            if (d.timeout > 0)
                alarm((unsigned)(d.timeout + 0.999));
            if (d.init != NULL)
                d.init();
            t->fn();
            if (d.fini != NULL)
                d.fini();
            fflush(NULL);
            _exit(expect_failed ? 1 : 0);
        }
        while (waitpid(pid, &status, 0) < 0)
            ;
        (void)clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS) {
            tested--;
            skipped++;
            fprintf(stderr, "[SKIP] %s::%s\n", t->suite, t->name);
            continue;
        }
        if (d.signal != 0)
            ok = WIFSIGNALED(status) && WTERMSIG(status) == d.signal;
        else
            ok = WIFEXITED(status) && WEXITSTATUS(status) == d.exit_code;
        if (ok) {
            passed++;
            /* With the time, like Criterion's verbose runner: it shows which tests a timeout
             * is close to. */
            fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", t->suite, t->name, secs);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "[FAIL] %s::%s: %s%s\n", t->suite, t->name,
                        strsignal(WTERMSIG(status)),
                        WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
            else
                fprintf(stderr, "[FAIL] %s::%s: exit %d\n", t->suite, t->name,
                        WEXITSTATUS(status));
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n",
            tested, passed, failed, skipped);
    return failed > 0 ? 1 : 0;
}
