/*
 * A minimal Criterion-compatible test runner for the ThreadSanitizer build only.
 *
 * Why: Criterion's sandbox cannot start in a TSan process - its inheritable arena looks for a
 * free address range that TSan has already reserved for its shadow memory, and aborts with
 * "Could not initialize inheritable arena" (Snaipe/Criterion issue #274, open). So that the
 * same test sources still run under TSan, this header provides the subset of Criterion's API
 * our tests use, with the same meaning: each Test() runs in its own forked process with its
 * .init/.fini/.timeout, cr_assert_* stop the test, cr_expect_* mark it failed and continue,
 * cr_skip_test() skips it; the runner prints a synthesis and exits non-zero on any failure.
 * Normal and ASan builds use the real Criterion.
 */
#ifndef JOBQ_TSAN_SHIM_CRITERION_H
#define JOBQ_TSAN_SHIM_CRITERION_H

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct criterion_test_extra_data {
    int sentinel_;
    double timeout;
    void (*init)(void);
    void (*fini)(void);
    bool disabled;
    int signal;
    int exit_code;
    const char *description;
};

struct shim_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct criterion_test_extra_data data;
    struct shim_test *next;
};

struct shim_suite {
    const char *name;
    struct criterion_test_extra_data data;
    struct shim_suite *next;
};

void shim_register_test(struct shim_test *t);
void shim_register_suite(struct shim_suite *s);
void shim_check(int fatal, int ok, const char *file, int line, const char *what,
                const char *fmt, ...);
void shim_skip(const char *fmt, ...);
void shim_log(const char *level, const char *fmt, ...);

#define SHIM_TEST_(suite, name, ...)                                                             \
    static void suite##_##name##_impl(void);                                                     \
    static struct shim_test suite##_##name##_desc = {#suite, #name, suite##_##name##_impl,       \
                                                     {__VA_ARGS__}, NULL};                      \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                          \
    {                                                                                            \
        shim_register_test(&suite##_##name##_desc);                                              \
    }                                                                                            \
    static void suite##_##name##_impl(void)
#define Test(...) SHIM_TEST_(__VA_ARGS__, .sentinel_ = 0)

#define SHIM_SUITE_(name, ...)                                                                   \
    static struct shim_suite shim_suite_##name;                                                  \
    __attribute__((constructor)) static void shim_suite_reg_##name(void)                         \
    {                                                                                            \
        shim_register_suite(&shim_suite_##name);                                                 \
    }                                                                                            \
    static struct shim_suite shim_suite_##name = {#name, {__VA_ARGS__}, NULL}
#define TestSuite(...) SHIM_SUITE_(__VA_ARGS__, .sentinel_ = 0)

/* Unary and binary checks; the optional trailing arguments are a printf format and values. */
#define SHIM_UN_(fatal, cond, ...) shim_check(fatal, !!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
#define SHIM_BIN_(fatal, op, a, b, ...)                                                          \
    shim_check(fatal, (a)op(b), __FILE__, __LINE__, #a " " #op " " #b, __VA_ARGS__)
#define SHIM_STR_(fatal, op, a, b, ...)                                                          \
    shim_check(fatal, strcmp((a), (b)) op 0, __FILE__, __LINE__, "strcmp(" #a ", " #b ") " #op " 0", \
               __VA_ARGS__)
#define SHIM_ARR_(fatal, op, a, b, n, ...)                                                       \
    shim_check(fatal, memcmp((a), (b), (n)) op 0, __FILE__, __LINE__,                          \
               "memcmp(" #a ", " #b ", " #n ") " #op " 0", __VA_ARGS__)
#define SHIM_FLT_(fatal, a, b, eps, ...)                                                         \
    shim_check(fatal, fabs((double)(a) - (double)(b)) <= (double)(eps), __FILE__, __LINE__,     \
               "|" #a " - " #b "| <= " #eps, __VA_ARGS__)

#define cr_assert(...) SHIM_UN_(1, __VA_ARGS__, "")
#define cr_expect(...) SHIM_UN_(0, __VA_ARGS__, "")
#define cr_assert_not(...) SHIM_UN_(1, !(__VA_ARGS__), "")
#define cr_expect_not(...) SHIM_UN_(0, !(__VA_ARGS__), "")
#define SHIM_PTR_(fatal, op, p, ...)                                                             \
    shim_check(fatal, (p)op NULL, __FILE__, __LINE__, #p " " #op " NULL", __VA_ARGS__)
#define cr_assert_null(...) SHIM_PTR_(1, ==, __VA_ARGS__, "")
#define cr_assert_not_null(...) SHIM_PTR_(1, !=, __VA_ARGS__, "")
#define cr_expect_null(...) SHIM_PTR_(0, ==, __VA_ARGS__, "")
#define cr_expect_not_null(...) SHIM_PTR_(0, !=, __VA_ARGS__, "")
#define cr_assert_eq(...) SHIM_BIN_(1, ==, __VA_ARGS__, "")
#define cr_assert_neq(...) SHIM_BIN_(1, !=, __VA_ARGS__, "")
#define cr_assert_lt(...) SHIM_BIN_(1, <, __VA_ARGS__, "")
#define cr_assert_leq(...) SHIM_BIN_(1, <=, __VA_ARGS__, "")
#define cr_assert_gt(...) SHIM_BIN_(1, >, __VA_ARGS__, "")
#define cr_assert_geq(...) SHIM_BIN_(1, >=, __VA_ARGS__, "")
#define cr_expect_eq(...) SHIM_BIN_(0, ==, __VA_ARGS__, "")
#define cr_expect_neq(...) SHIM_BIN_(0, !=, __VA_ARGS__, "")
#define cr_expect_lt(...) SHIM_BIN_(0, <, __VA_ARGS__, "")
#define cr_expect_leq(...) SHIM_BIN_(0, <=, __VA_ARGS__, "")
#define cr_expect_gt(...) SHIM_BIN_(0, >, __VA_ARGS__, "")
#define cr_expect_geq(...) SHIM_BIN_(0, >=, __VA_ARGS__, "")
#define SHIM_ZERO_(fatal, x, ...)                                                                \
    shim_check(fatal, (x) == 0, __FILE__, __LINE__, #x " == 0", __VA_ARGS__)
#define cr_assert_zero(...) SHIM_ZERO_(1, __VA_ARGS__, "")
#define cr_expect_zero(...) SHIM_ZERO_(0, __VA_ARGS__, "")
#define cr_assert_str_eq(...) SHIM_STR_(1, ==, __VA_ARGS__, "")
#define cr_assert_str_neq(...) SHIM_STR_(1, !=, __VA_ARGS__, "")
#define cr_expect_str_eq(...) SHIM_STR_(0, ==, __VA_ARGS__, "")
#define cr_expect_str_neq(...) SHIM_STR_(0, !=, __VA_ARGS__, "")
#define cr_assert_arr_eq(...) SHIM_ARR_(1, ==, __VA_ARGS__, "")
#define cr_assert_arr_neq(...) SHIM_ARR_(1, !=, __VA_ARGS__, "")
#define cr_expect_arr_eq(...) SHIM_ARR_(0, ==, __VA_ARGS__, "")
#define cr_assert_float_eq(...) SHIM_FLT_(1, __VA_ARGS__, "")
#define cr_expect_float_eq(...) SHIM_FLT_(0, __VA_ARGS__, "")
#define cr_assert_fail(...) shim_check(1, 0, __FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
#define cr_expect_fail(...) shim_check(0, 0, __FILE__, __LINE__, "cr_expect_fail", "" __VA_ARGS__)
#define cr_fail(...) cr_assert_fail(__VA_ARGS__)
#define cr_skip_test(...) shim_skip("" __VA_ARGS__)
#define cr_log_info(...) shim_log("info", __VA_ARGS__)
#define cr_log_warn(...) shim_log("warn", __VA_ARGS__)
#define cr_log_error(...) shim_log("error", __VA_ARGS__)

#endif /* JOBQ_TSAN_SHIM_CRITERION_H */
