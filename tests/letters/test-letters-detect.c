/*
 * test-letters-detect.c - the encoding detector's scan (letters-kernels.h, private): its UTF-8
 * error flags against an independent strict decoder (Unicode 15, table 3-7), its count of valid
 * UTF-8 letters against the UTF-8 counting kernel, the AVX2 and AVX-512 scans against the scalar
 * one, split independence, and the decisions it leads to.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jobq/letters.h>

#include "letters-kernels.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Length of the well-formed sequence at p[0, n): 1-4, 0 when ill-formed, -1 when it is a valid
 * prefix cut by the end. Written from the standard's table, not from the lookup rules. */
static int
wf_len(const uint8_t *p, size_t n)
{
    unsigned b = p[0], lo = 0x80, hi = 0xBF;
    int len, i;

    if (b < 0x80)
        return 1;
    /* The rules judge a byte >= 0xC0 (even C0, C1, F5-FF) by the byte after it: a cut. */
    if (b >= 0xC0 && n == 1)
        return -1;
    if (b >= 0xC2 && b <= 0xDF)
        len = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        len = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        len = 4;
    else
        return 0;
    if (b == 0xE0)
        lo = 0xA0;
    else if (b == 0xED)
        hi = 0x9F;
    else if (b == 0xF0)
        lo = 0x90;
    else if (b == 0xF4)
        hi = 0x8F;
    for (i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        if (p[i] < lo || p[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

/* 1 if p[0, n) is well-formed UTF-8 apart from a valid prefix cut by the end. */
static int
ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    int l;

    while (i < n) {
        l = wf_len(p + i, n - i);
        if (l == 0)
            return 0;
        if (l < 0)
            return 1;
        i += (size_t)l;
    }
    return 1;
}

/* Mostly well-formed text with the bytes the rules are about: every length, the edges of the
 * second-byte ranges, then a few random byte edits. */
static size_t
gen(uint8_t *p, size_t cap, unsigned edits)
{
    static const uint32_t cps[] = {0x41, 0x7F, 0x80, 0x430, 0x451, 0x7FF, 0x800, 0xFFF, 0xD7FF,
                                   0xE000, 0xFFFD, 0x10000, 0x3FFFF, 0x40000, 0x10FFFF, 0x20};
    size_t n = 0;
    uint32_t c;
    unsigned i;

    while (n + 4 <= cap) {
        c = rnd() % 4 ? cps[rnd() % (sizeof(cps) / sizeof(cps[0]))] : rnd() % 0x110000;
        if (c >= 0xD800 && c <= 0xDFFF)
            c = 0x44F;
        if (c < 0x80) {
            p[n++] = (uint8_t)c;
        } else if (c < 0x800) {
            p[n++] = (uint8_t)(0xC0 | c >> 6);
            p[n++] = (uint8_t)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            p[n++] = (uint8_t)(0xE0 | c >> 12);
            p[n++] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
            p[n++] = (uint8_t)(0x80 | (c & 0x3F));
        } else {
            p[n++] = (uint8_t)(0xF0 | c >> 18);
            p[n++] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
            p[n++] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
            p[n++] = (uint8_t)(0x80 | (c & 0x3F));
        }
    }
    for (i = 0; i < edits && n > 0; i++)
        p[rnd() % n] = (uint8_t)rnd();
    return n;
}

/* kernel: 0 scalar, 1 AVX2, 2 AVX-512 (callers check have()). */
static void
scan(int kernel, const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
    memset(d, 0, sizeof(*d));
#ifdef JOBQ_LETTERS_HAVE_AVX2
    if (kernel == 1) {
        jobq__letters_det_avx2(p, n, prev, d);
        return;
    }
#endif
#ifdef JOBQ_LETTERS_HAVE_AVX512
    if (kernel == 2) {
        jobq__letters_det_avx512(p, n, prev, d);
        return;
    }
#endif
    (void)kernel;
    jobq__letters_det_scalar(p, n, prev, d);
}

static int
have(int kernel)
{
#ifdef JOBQ_LETTERS_HAVE_AVX2
    if (kernel == 1)
        return jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX2);
#endif
#ifdef JOBQ_LETTERS_HAVE_AVX512
    if (kernel == 2)
        return jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX512);
#endif
    return kernel == 0;
}

static const char *const kernel_names[] = {"scalar", "AVX2", "AVX-512"};

Test(letters_detect, flags_match_a_strict_decoder)
{
    static const uint8_t zeros[3] = {0, 0, 0};
    uint8_t buf[300];
    jobq__letters_det d;
    size_t n;
    unsigned iter, valid = 0;
    int v, k;

    for (iter = 0; iter < 40000; iter++) {
        n = gen(buf, 4 + rnd() % (sizeof(buf) - 4), iter % 3 == 0 ? 0 : rnd() % 3);
        n -= n > 0 ? rnd() % (n < 4 ? n : 4) : 0; /* sometimes cut a sequence */
        v = ref_valid(buf, n);
        valid += (unsigned)v;
        for (k = 0; k < 3; k++) {
            if (!have(k))
                continue;
            scan(k, buf, n, zeros, &d);
            cr_assert_eq(d.errors == 0, v, "%s scan: %llu flags, decoder says %s (n=%zu)",
                         kernel_names[k], (unsigned long long)d.errors,
                         v ? "valid" : "invalid", n);
        }
    }
    /* Both outcomes must have been exercised for the comparison to mean anything. */
    cr_assert_gt(valid, 10000);
    cr_assert_lt(valid, 35000);
}

/* The stream takes utf8_letters from its UTF-8 counts (letters.c, det_load), so the scan must
 * count exactly the letters the UTF-8 kernel does, prev included. */
Test(letters_detect, utf8_letters_match_the_utf8_kernel)
{
    static const uint8_t zeros[3] = {0, 0, 0};
    uint8_t buf[700], prev[3];
    jobq__letters_det d;
    jobq_letters_counts c;
    size_t n, i;
    unsigned iter;
    int k;

    for (iter = 0; iter < 5000; iter++) {
        n = iter % 2 ? gen(buf, rnd() % sizeof(buf), rnd() % 8) : rnd() % sizeof(buf);
        if (iter % 2 == 0)
            for (i = 0; i < n; i++)
                buf[i] = (uint8_t)(rnd() % 2 ? 0xD0 + rnd() % 2 : 0x80 + rnd() % 64);
        memset(&c, 0, sizeof(c));
        cr_assert_eq(jobq_letters_count_buffer_with(JOBQ_LETTERS_KERNEL_SCALAR,
                                                    JOBQ_LETTERS_UTF8, buf, n, &c), 0);
        for (k = 0; k < 3; k++) {
            if (!have(k))
                continue;
            scan(k, buf, n, zeros, &d);
            cr_assert_eq(d.utf8_letters, jobq_letters_total(&c), "%s scan (n=%zu)",
                         kernel_names[k], n);
        }
        /* A lead in prev pairs with p[0]. */
        if (n > 0 && buf[0] >= 0x80 && buf[0] <= 0x8F) {
            memcpy(prev, (const uint8_t[3]){0x20, 0x20, 0xD1}, 3);
            scan(0, buf, n, prev, &d);
            cr_assert_eq(d.utf8_letters, jobq_letters_total(&c) + 1);
        }
    }
}

Test(letters_detect, vector_scans_equal_scalar_and_splits_add_up)
{
    uint8_t buf[700], prev[3], mid[3];
    jobq__letters_det a, b, c;
    size_t n, k, i;
    unsigned iter;
    int kern, best = have(2) ? 2 : have(1) ? 1 : 0;

    for (iter = 0; iter < 5000; iter++) {
        n = iter % 2 ? gen(buf, rnd() % sizeof(buf), rnd() % 8) : rnd() % sizeof(buf);
        if (iter % 2 == 0)
            for (i = 0; i < n; i++)
                buf[i] = (uint8_t)(rnd() % 3 ? 0xC0 + rnd() % 64 : rnd());
        for (i = 0; i < 3; i++)
            prev[i] = (uint8_t)rnd();
        scan(0, buf, n, prev, &a);
        for (kern = 1; kern < 3; kern++) {
            if (!have(kern))
                continue;
            scan(kern, buf, n, prev, &b);
            cr_assert(memcmp(&a, &b, sizeof(a)) == 0, "%s and scalar scans differ (n=%zu)",
                      kernel_names[kern], n);
        }
        /* scan(p[0,k)) + scan(p[k,n)) with the three bytes before k as prev == scan(p[0,n)) */
        k = n > 0 ? rnd() % (n + 1) : 0;
        for (i = 0; i < 3; i++)
            mid[i] = k + i >= 3 ? buf[k + i - 3] : prev[k + i];
        scan(best, buf, k, prev, &b);
        scan(best, buf + k, n - k, mid, &c);
        cr_assert_eq(b.errors + c.errors, a.errors, "split at %zu of %zu", k, n);
        cr_assert_eq(b.utf8_letters + c.utf8_letters, a.utf8_letters);
        cr_assert_eq(b.lower[0] + c.lower[0], a.lower[0]);
        cr_assert_eq(b.lower[1] + c.lower[1], a.lower[1]);
    }
}

/* "Съешь же ещё этих мягких французских булок" in each encoding, repeated past 64 bytes so the
 * vector path runs. */
static size_t
repeat(uint8_t *dst, size_t cap, const char *s)
{
    size_t n = 0, l = strlen(s);

    while (n + l <= cap) {
        memcpy(dst + n, s, l);
        n += l;
    }
    return n;
}

Test(letters_detect, decisions)
{
    static const char u8[] = "\xD0\xA1\xD1\x8A\xD0\xB5\xD1\x88\xD1\x8C \xD0\xB6\xD0\xB5 "
                             "\xD0\xB5\xD1\x89\xD1\x91 \xD1\x8D\xD1\x82\xD0\xB8\xD1\x85 "
                             "\xD0\xBC\xD1\x8F\xD0\xB3\xD0\xBA\xD0\xB8\xD1\x85 bulok. ";
    static const char cp[] = "\xD1\xFA\xE5\xF8\xFC \xE6\xE5 \xE5\xF9\xB8 \xFD\xF2\xE8\xF5 "
                             "\xEC\xFF\xE3\xEA\xE8\xF5 bulok. ";
    static const char koi[] = "\xF3\xDF\xC5\xDB\xD8 \xD6\xC5 \xC5\xDD\xA3 \xDC\xD4\xC9\xC8 "
                              "\xCD\xD1\xC7\xCB\xC9\xC8 bulok. ";
    uint8_t buf[4096];
    size_t n;

    n = repeat(buf, sizeof(buf), u8);
    cr_assert_eq(jobq_letters_detect(buf, n), JOBQ_LETTERS_UTF8);
    cr_assert_eq(jobq_letters_detect(buf, n - 1), JOBQ_LETTERS_UTF8, "a cut letter is no error");
    buf[100] = 0xFF; /* one stray byte in ~4 KiB of UTF-8 */
    buf[2000] = 0xD0;
    cr_assert_eq(jobq_letters_detect(buf, n), JOBQ_LETTERS_UTF8);
    n = repeat(buf, sizeof(buf), cp);
    cr_assert_eq(jobq_letters_detect(buf, n), JOBQ_LETTERS_CP1251);
    cr_assert_eq(jobq_letters_detect(buf, 20), JOBQ_LETTERS_CP1251, "scalar path");
    n = repeat(buf, sizeof(buf), koi);
    cr_assert_eq(jobq_letters_detect(buf, n), JOBQ_LETTERS_KOI8R);
    cr_assert_eq(jobq_letters_detect(buf, 20), JOBQ_LETTERS_KOI8R, "scalar path");
}
