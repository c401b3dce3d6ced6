/*
 * test-error.c - jobq_strerror / jobq_err_name for every code of JOBQ_ERRNO_MAP, 0, and
 * unknown codes; codes are negative and distinct.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <jobq.h>

struct code {
    int value;
    const char *name;
    const char *msg;
};

#define AS_CODE(name, value, msg) {value, "JOBQ_E" #name, msg},
static const struct code codes[] = {JOBQ_ERRNO_MAP(AS_CODE)};
#undef AS_CODE
#define N_CODES (sizeof(codes) / sizeof(codes[0]))

Test(error, every_code_has_its_name_and_message, .timeout = 10)
{
    size_t i, j;

    cr_assert_gt(N_CODES, 0);
    for (i = 0; i < N_CODES; i++) {
        cr_expect_lt(codes[i].value, 0, "%s is not negative", codes[i].name);
        cr_expect_str_eq(jobq_err_name(codes[i].value), codes[i].name);
        cr_expect_str_eq(jobq_strerror(codes[i].value), codes[i].msg);
        for (j = 0; j < i; j++)
            cr_expect_neq(codes[i].value, codes[j].value, "%s and %s share a value",
                          codes[i].name, codes[j].name);
    }
}

Test(error, enumerators_match_the_map, .timeout = 10)
{
    cr_expect_eq(JOBQ_EINVAL, -EINVAL);
    cr_expect_eq(JOBQ_ECLOSED, -EPIPE);
    cr_expect_str_eq(jobq_err_name(JOBQ_ETIMEDOUT), "JOBQ_ETIMEDOUT");
    cr_expect_str_eq(jobq_err_name(JOBQ_EDEADLK), "JOBQ_EDEADLK");
}

Test(error, zero_and_unknown_codes, .timeout = 10)
{
    static const int unknown[] = {1, 12345, -12345, -1000000, 2147483647, -2147483647 - 1};
    size_t i;

    cr_expect_not_null(jobq_strerror(0));
    cr_expect_not_null(jobq_err_name(0));
    cr_expect_neq(strcmp(jobq_strerror(0), "unknown error"), 0, "0 is success, not unknown");
    for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        cr_expect_str_eq(jobq_strerror(unknown[i]), "unknown error", "code %d", unknown[i]);
        cr_expect_str_eq(jobq_err_name(unknown[i]), "JOBQ_UNKNOWN", "code %d", unknown[i]);
    }
    /* A positive errno is not silently taken for its negated JOBQ_ code. */
    cr_expect_str_eq(jobq_err_name(EINVAL), "JOBQ_UNKNOWN");
}
