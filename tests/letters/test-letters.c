/*
 * test-letters.c - the letter-counting job (src/jobs/letters) against an independent reference.
 *
 * The reference decodes with iconv(3) into wchar_t and folds case with towlower() under a UTF-8
 * locale (C.UTF-8), skipping one byte on each invalid sequence (and breaking any combining
 * sequence there), so it shares no code or tables with the kernels. Property tests feed biased
 * random bytes (lots of D0/D1/CC, continuation bytes, letters and ё bytes of every encoding)
 * through every kernel, random feed splits, and random partitions of a temp file into ranges.
 * The corpus tests check ../shared/corpus/expected.json (produced by an independent Python
 * counter) for every text, as UTF-8 and converted to cp1251 and koi8-r (as written and in
 * capitals) at test time. The detection tests at the end use generated inputs only.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include <jobq/letters.h>

#ifndef JOBQ_CORPUS_DIR
#define JOBQ_CORPUS_DIR "../shared/corpus"
#endif

/* The alphabet as the test knows it (independent of jobq_letters_name). */
static const wchar_t alphabet[JOBQ_LETTERS_COUNT + 1] = L"абвгдеёжзийклмнопрстуфхцчшщъыьэюя";

static int
letter_of(wchar_t w)
{
    const wchar_t *p;

    if (w == 0)
        return -1;
    p = wcschr(alphabet, w);
    return p == NULL ? -1 : (int)(p - alphabet);
}

static const char *
iconv_name(jobq_letters_encoding enc)
{
    return enc == JOBQ_LETTERS_UTF8 ? "UTF-8" : enc == JOBQ_LETTERS_CP1251 ? "CP1251" : "KOI8-R";
}

/* Reference: iconv -> wchar_t, towlower, decomposed й/ё folded. */
static void
ref_count(jobq_letters_encoding enc, const uint8_t *buf, size_t len, jobq_letters_counts *c)
{
    iconv_t cd;
    wchar_t out[256];
    char *in, *op;
    size_t inleft, outleft, r, k, n;
    wchar_t prev, w;
    int li;

    memset(c, 0, sizeof(*c));
    cr_assert_not_null(setlocale(LC_CTYPE, "C.UTF-8"), "C.UTF-8 locale missing");
    cd = iconv_open("WCHAR_T", iconv_name(enc));
    cr_assert(cd != (iconv_t)-1, "iconv_open(%s): %s", iconv_name(enc), strerror(errno));
    in = (char *)(uintptr_t)buf;
    inleft = len;
    prev = 0;
    while (inleft > 0) {
        op = (char *)out;
        outleft = sizeof(out);
        r = iconv(cd, &in, &inleft, &op, &outleft);
        n = (sizeof(out) - outleft) / sizeof(wchar_t);
        for (k = 0; k < n; k++) {
            w = (wchar_t)towlower((wint_t)out[k]);
            if (out[k] == 0x306 && prev == L'и') {
                c->n[9]--;
                c->n[10]++;
            } else if (out[k] == 0x308 && prev == L'е') {
                c->n[5]--;
                c->n[6]++;
            } else {
                li = letter_of(w);
                if (li >= 0)
                    c->n[li]++;
            }
            prev = (out[k] == 0x306 || out[k] == 0x308) ? 0 : w;
        }
        if (r == (size_t)-1 && errno != E2BIG) {
            /* EILSEQ or EINVAL (cut at the end): skip one byte, break combining sequences. */
            in++;
            inleft--;
            prev = 0;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    iconv_close(cd);
}

static void
assert_counts_eq(const jobq_letters_counts *a, const jobq_letters_counts *b, const char *what)
{
    unsigned i;

    for (i = 0; i < JOBQ_LETTERS_COUNT; i++)
        cr_assert_eq(a->n[i], b->n[i], "%s: letter %u (%s): %llu != %llu", what, i,
                     jobq_letters_name(i), (unsigned long long)a->n[i],
                     (unsigned long long)b->n[i]);
}

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t
rnd(uint64_t *s)
{
    uint64_t z;

    z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Random bytes biased towards what matters to the kernels. */
static void
fill_random(uint8_t *p, size_t n, uint64_t *s)
{
    static const uint8_t hot[] = {0xD0, 0xD1, 0xCC, 0x86, 0x88, 0x81, 0x91, 0xB8, 0xB5, 0x98,
                                  0x95, 0xA8, 0xA3, 0xB3, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xDF,
                                  0xE0, 0xFF, 0xEF, 0xBB, 0xBF, 0x20, 0x0A, 0x00, 0xF0, 0xE5};
    size_t i;
    uint64_t r;

    for (i = 0; i < n; i++) {
        r = rnd(s);
        switch (r % 4) {
        case 0:
            p[i] = hot[(r >> 8) % sizeof(hot)];
            break;
        case 1: /* a UTF-8 letter or combining mark */
            if (i + 1 < n) {
                unsigned k = (unsigned)((r >> 8) % 70);
                if (k < 48) {
                    p[i] = 0xD0;
                    p[i + 1] = (uint8_t)(0x90 + k);
                } else if (k < 64) {
                    p[i] = 0xD1;
                    p[i + 1] = (uint8_t)(0x80 + k - 48);
                } else {
                    p[i] = 0xCC;
                    p[i + 1] = (k & 1) ? 0x86 : 0x88;
                }
                i++;
            } else {
                p[i] = 0xD0;
            }
            break;
        case 2:
            p[i] = (uint8_t)(0xC0 + ((r >> 8) & 0x3F));
            break;
        default:
            p[i] = (uint8_t)(r >> 8);
        }
    }
}

static const jobq_letters_encoding encs[3] = {JOBQ_LETTERS_UTF8, JOBQ_LETTERS_CP1251,
                                              JOBQ_LETTERS_KOI8R};

Test(letters, names_and_encodings)
{
    jobq_letters_encoding e;
    unsigned i;
    char buf[8];

    for (i = 0; i < JOBQ_LETTERS_COUNT; i++) {
        cr_assert_not_null(jobq_letters_name(i));
        (void)snprintf(buf, sizeof(buf), "%s", jobq_letters_name(i));
        cr_assert_eq(strlen(buf), 2, "letter %u is a 2-byte UTF-8 sequence", i);
    }
    cr_assert_null(jobq_letters_name(JOBQ_LETTERS_COUNT));
    cr_assert_str_eq(jobq_letters_name(JOBQ_LETTERS_YO_INDEX), "ё");
    for (e = JOBQ_LETTERS_AUTO; e < JOBQ_LETTERS_ENCODING_COUNT; e++) {
        jobq_letters_encoding back;
        cr_assert_eq(jobq_letters_encoding_parse(jobq_letters_encoding_name(e), &back), 0);
        cr_assert_eq(back, e);
    }
    cr_assert_eq(jobq_letters_encoding_parse("Windows-1251", &e), 0);
    cr_assert_eq(e, JOBQ_LETTERS_CP1251);
    cr_assert_eq(jobq_letters_encoding_parse("KOI8R", &e), 0);
    cr_assert_eq(e, JOBQ_LETTERS_KOI8R);
    cr_assert_eq(jobq_letters_encoding_parse("latin1", &e), JOBQ_EINVAL);
    cr_assert_null(jobq_letters_encoding_name(JOBQ_LETTERS_ENCODING_COUNT));
}

Test(letters, hand_checked_strings)
{
    /* Hand-counted below. */
    static const char s[] = "Ёлка, ёж, йод, Йошкар-Ола; ЪЭЮЯ abc ё";
    jobq_letters_counts c;
    jobq_letters_state st;

    memset(&c, 0, sizeof(c));
    jobq_letters_count_buffer(JOBQ_LETTERS_UTF8, s, strlen(s), &c);
    cr_assert_eq(c.n[6], 3);  /* ё: Ё ё ё */
    cr_assert_eq(c.n[10], 2); /* й: й Й */
    cr_assert_eq(c.n[0], 3);  /* а: Ёлка, Йошкар, Ола */
    cr_assert_eq(c.n[27] + c.n[30] + c.n[31] + c.n[32], 4);
    cr_assert_eq(jobq_letters_total(&c), 23); /* 4 + 2 + 3 + 6 + 3 + 4 + 1 */
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    cr_assert_eq(jobq_letters_feed(&st, s, strlen(s)), 0);
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_MERGE, &c), JOBQ_LETTERS_UTF8);
    cr_assert_eq(c.n[6], 0);
    cr_assert_eq(c.n[5], 3);
    cr_assert_eq(jobq_letters_total(&c), 23);
    jobq_letters_init(&st, JOBQ_LETTERS_UTF8);
    cr_assert_eq(jobq_letters_feed(&st, s, strlen(s)), 0);
    (void)jobq_letters_finish(&st, JOBQ_LETTERS_YO_IGNORE, &c);
    cr_assert_eq(jobq_letters_total(&c), 20);
    /* Not Russian letters: Ukrainian і ї є ґ, Belarusian ў, ѣ, Latin look-alikes. */
    memset(&c, 0, sizeof(c));
    jobq_letters_count_buffer(JOBQ_LETTERS_UTF8, "іїєґўѣ aeopcx ÀÉ", strlen("іїєґўѣ aeopcx ÀÉ"),
                              &c);
    cr_assert_eq(jobq_letters_total(&c), 0);
}

Test(letters, decomposed_split_everywhere)
{
    /* й and Ё decomposed, between letters, and a mark after a non-letter (not counted). */
    static const char s[] = "ми\xcc\x86 Е\xcc\x88ж x\xcc\x86 и\xcc\x86\xcc\x86";
    jobq_letters_counts whole, part, ref;
    jobq_letters_state st;
    size_t n, a, b;

    n = strlen(s);
    ref_count(JOBQ_LETTERS_UTF8, (const uint8_t *)s, n, &ref);
    cr_assert_eq(ref.n[10], 2);
    cr_assert_eq(ref.n[9], 0);
    cr_assert_eq(ref.n[6], 1);
    cr_assert_eq(ref.n[5], 0);
    memset(&whole, 0, sizeof(whole));
    jobq_letters_count_buffer(JOBQ_LETTERS_UTF8, s, n, &whole);
    assert_counts_eq(&whole, &ref, "one buffer");
    for (a = 0; a <= n; a++) {
        for (b = a; b <= n; b++) {
            jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
            cr_assert_eq(jobq_letters_feed(&st, s, a), 0);
            cr_assert_eq(jobq_letters_feed(&st, s + a, b - a), 0);
            cr_assert_eq(jobq_letters_feed(&st, s + b, n - b), 0);
            cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &part),
                         JOBQ_LETTERS_UTF8);
            assert_counts_eq(&part, &ref, "three feeds");
        }
    }
}

Test(letters, kernels_equal_reference_on_random_bytes, .timeout = 120)
{
    uint64_t seed;
    uint8_t *buf;
    size_t len, off;
    unsigned iter, e, k;
    jobq_letters_counts ref, got;
    char what[96];

    seed = 12345;
    buf = malloc(20000 + 64);
    cr_assert_not_null(buf);
    for (iter = 0; iter < 300; iter++) {
        len = (size_t)(rnd(&seed) % (iter < 100 ? 300 : 20000));
        off = (size_t)(rnd(&seed) % 64);
        fill_random(buf + off, len, &seed);
        for (e = 0; e < 3; e++) {
            ref_count(encs[e], buf + off, len, &ref);
            for (k = JOBQ_LETTERS_KERNEL_BEST; k < JOBQ_LETTERS_KERNEL_COUNT; k++) {
                if (!jobq_letters_kernel_supported((jobq_letters_kernel)k))
                    continue;
                memset(&got, 0, sizeof(got));
                cr_assert_eq(jobq_letters_count_buffer_with((jobq_letters_kernel)k, encs[e],
                                                            buf + off, len, &got), 0);
                (void)snprintf(what, sizeof(what), "iter %u len %zu off %zu %s kernel %s", iter,
                               len, off, iconv_name(encs[e]),
                               jobq_letters_kernel_name((jobq_letters_kernel)k));
                assert_counts_eq(&got, &ref, what);
            }
        }
    }
    free(buf);
}

Test(letters, kernels_on_this_cpu)
{
    cr_assert(jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_SCALAR));
    cr_assert_eq(jobq_letters_count_buffer_with(JOBQ_LETTERS_KERNEL_COUNT, JOBQ_LETTERS_UTF8, "",
                                                0, &(jobq_letters_counts){{0}}), JOBQ_EINVAL);
    cr_assert_eq(jobq_letters_count_buffer_with(JOBQ_LETTERS_KERNEL_SCALAR, JOBQ_LETTERS_UTF16LE,
                                                "", 0, &(jobq_letters_counts){{0}}), JOBQ_EINVAL);
    cr_log_info("kernels: avx2 %d, avx512 %d",
                jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX2),
                jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX512));
}

Test(letters, random_feed_splits_equal_one_shot, .timeout = 120)
{
    uint64_t seed;
    uint8_t *buf;
    size_t len, pos, step;
    unsigned iter, e;
    jobq_letters_counts ref, got;
    jobq_letters_state st;
    jobq_letters_encoding want;

    seed = 777;
    buf = malloc(200000);
    cr_assert_not_null(buf);
    for (iter = 0; iter < 60; iter++) {
        len = (size_t)(rnd(&seed) % (iter < 30 ? 2000 : 200000));
        fill_random(buf, len, &seed);
        for (e = 0; e < 4; e++) {
            jobq_letters_encoding enc = e < 3 ? encs[e] : JOBQ_LETTERS_AUTO;
            /* One feed is the baseline; AUTO's choice must not depend on the split. */
            jobq_letters_init(&st, enc);
            cr_assert_eq(jobq_letters_feed(&st, buf, len), 0);
            want = jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &ref);
            if (enc != JOBQ_LETTERS_AUTO) {
                jobq_letters_counts r2;
                ref_count(enc, buf, len, &r2);
                assert_counts_eq(&ref, &r2, "stream vs reference");
            }
            jobq_letters_init(&st, enc);
            for (pos = 0; pos < len; pos += step) {
                step = (size_t)(rnd(&seed) % (rnd(&seed) % 2 ? 8 : 70000)) + 1;
                if (step > len - pos)
                    step = len - pos;
                cr_assert_eq(jobq_letters_feed(&st, buf + pos, step), 0);
            }
            cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &got), want,
                         "iter %u enc %u", iter, e);
            assert_counts_eq(&got, &ref, "random splits");
        }
    }
    free(buf);
}

static int
temp_file(const uint8_t *p, size_t n)
{
    char path[] = "/tmp/jobq-letters-XXXXXX";
    int fd;

    fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    (void)unlink(path);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    return fd;
}

Test(letters, count_fd_random_partitions, .timeout = 120)
{
    uint64_t seed, b, e, size;
    uint8_t *buf;
    unsigned iter, ei;
    int fd;
    jobq_letters_result r;
    jobq_letters_counts ref, sum;

    seed = 99;
    size = 300000;
    buf = malloc(size);
    cr_assert_not_null(buf);
    fill_random(buf, size, &seed);
    fd = temp_file(buf, size);
    for (ei = 0; ei < 3; ei++) {
        ref_count(encs[ei], buf, size, &ref);
        cr_assert_eq(jobq_letters_count_fd(fd, 0, UINT64_MAX, encs[ei], JOBQ_LETTERS_YO_SEPARATE,
                                           0, &r), 0);
        cr_assert_eq(r.bytes, size);
        cr_assert_eq(r.binary, 1);
        assert_counts_eq(&r.counts, &ref, "whole file");
        for (iter = 0; iter < 40; iter++) {
            memset(&sum, 0, sizeof(sum));
            for (b = 0; b < size; b = e) {
                e = b + 1 + rnd(&seed) % (iter % 2 ? 7 : 40000);
                if (e > size || rnd(&seed) % 50 == 0)
                    e = size;
                cr_assert_eq(jobq_letters_count_fd(fd, b, e, encs[ei], JOBQ_LETTERS_YO_SEPARATE,
                                                   1 + rnd(&seed) % 5000, &r), 0);
                cr_assert_eq(r.bytes, e - b);
                jobq_letters_add(&sum, &r.counts);
            }
            assert_counts_eq(&sum, &ref, "partition");
        }
    }
    /* A range past the end: the file "shrank". AUTO with begin > 0 is refused. */
    cr_assert_eq(jobq_letters_count_fd(fd, size - 10, size + 10, JOBQ_LETTERS_CP1251,
                                       JOBQ_LETTERS_YO_SEPARATE, 0, &r), JOBQ_EIO);
    cr_assert_eq(r.err, JOBQ_EIO);
    cr_assert_eq(r.bytes, 10);
    cr_assert_eq(jobq_letters_count_fd(fd, 5, 10, JOBQ_LETTERS_AUTO, JOBQ_LETTERS_YO_SEPARATE, 0,
                                       &r), JOBQ_EINVAL);
    cr_assert_eq(jobq_letters_count_fd(-1, 0, 10, JOBQ_LETTERS_UTF8, JOBQ_LETTERS_YO_SEPARATE, 0,
                                       &r), JOBQ_EINVAL);
    close(fd);
    free(buf);
}

/* count_fd_from: any head length (the head taken from the file itself) and any buffer size give
 * the whole-file count, for every encoding and for AUTO; bad heads and buffers are refused. */
Test(letters, count_fd_from_any_head_equals_whole_file, .timeout = 120)
{
    static const jobq_letters_encoding all[] = {JOBQ_LETTERS_UTF8, JOBQ_LETTERS_CP1251,
                                                JOBQ_LETTERS_KOI8R, JOBQ_LETTERS_AUTO};
    uint64_t seed = 7, size = 100000, head, block;
    uint8_t *buf, *work;
    unsigned ei, iter;
    int fd;
    jobq_letters_result whole, r;

    buf = malloc(size);
    cr_assert_not_null(buf);
    fill_random(buf, size, &seed);
    work = malloc(size + 70000);
    cr_assert_not_null(work);
    fd = temp_file(buf, size);
    for (ei = 0; ei < 4; ei++) {
        cr_assert_eq(jobq_letters_count_fd(fd, 0, size, all[ei], JOBQ_LETTERS_YO_SEPARATE, 0,
                                           &whole), 0);
        for (iter = 0; iter < 30; iter++) {
            head = iter == 0 ? 0 : iter == 1 ? size : rnd(&seed) % size;
            block = head + 1 + rnd(&seed) % 70000;
            memcpy(work, buf, (size_t)head);
            cr_assert_eq(jobq_letters_count_fd_from(fd, work, (size_t)block, (size_t)head,
                                                    iter % 3 ? size : UINT64_MAX, all[ei],
                                                    JOBQ_LETTERS_YO_SEPARATE, &r), 0);
            cr_assert_eq(r.bytes, size);
            cr_assert_eq(r.enc, whole.enc);
            assert_counts_eq(&r.counts, &whole.counts, "head of the file");
        }
    }
    cr_assert_eq(jobq_letters_count_fd_from(fd, work, 100, 11, 10, JOBQ_LETTERS_UTF8,
                                            JOBQ_LETTERS_YO_SEPARATE, &r), JOBQ_EINVAL);
    cr_assert_eq(jobq_letters_count_fd_from(fd, work, 10, 11, size, JOBQ_LETTERS_UTF8,
                                            JOBQ_LETTERS_YO_SEPARATE, &r), JOBQ_EINVAL);
    cr_assert_eq(jobq_letters_count_fd_from(fd, NULL, 10, 0, size, JOBQ_LETTERS_UTF8,
                                            JOBQ_LETTERS_YO_SEPARATE, &r), JOBQ_EINVAL);
    close(fd);
    free(work);
    free(buf);
}

Test(letters, boms_and_detection)
{
    static const uint8_t u16[] = {0xFF, 0xFE, 0x30, 0x04, 0x31, 0x04};
    static const uint8_t u8bom[] = {0xEF, 0xBB, 0xBF, 0xD0, 0xB0};
    jobq_letters_state st;
    jobq_letters_counts c;
    size_t i;

    cr_assert_eq(jobq_letters_detect(u16, sizeof(u16)), JOBQ_LETTERS_UTF16LE);
    cr_assert_eq(jobq_letters_detect("\xFE\xFF\x04\x30", 4), JOBQ_LETTERS_UTF16BE);
    cr_assert_eq(jobq_letters_detect(u8bom, sizeof(u8bom)), JOBQ_LETTERS_UTF8);
    cr_assert_eq(jobq_letters_detect("plain ascii", 11), JOBQ_LETTERS_AUTO);
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    for (i = 0; i < sizeof(u16); i++)
        if (jobq_letters_feed(&st, u16 + i, 1) != 0)
            break;
    /* FF FE 30 is still "яю0" in cp1251; the 04 of the first code unit makes it UTF-16. */
    cr_assert_eq(i, 3, "UTF-16 is refused once the code unit after its BOM confirms it");
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c), JOBQ_LETTERS_UTF16LE);
    cr_assert_eq(jobq_letters_total(&c), 0);
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    cr_assert_eq(jobq_letters_feed(&st, "ascii only", 10), 0);
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c), JOBQ_LETTERS_AUTO);
    cr_assert_eq(jobq_letters_total(&c), 0);
}

/* ---- corpus ---------------------------------------------------------------------------- */

static const char *
corpus_dir(void)
{
    const char *d;

    d = getenv("JOBQ_CORPUS_DIR");
    return d != NULL && *d != '\0' ? d : JOBQ_CORPUS_DIR;
}

static char *
slurp(const char *path, size_t *ret_len)
{
    FILE *f;
    char *p;
    long n;

    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    p = malloc((size_t)n + 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    *ret_len = (size_t)n;
    return p;
}

/* Parse `"letters": { "а": n, ... }` following *pp; advance *pp past it. */
static void
parse_letters(char **pp, jobq_letters_counts *c)
{
    char *p, *q;
    wchar_t w;
    int li, got;

    memset(c, 0, sizeof(*c));
    p = strstr(*pp, "\"letters\"");
    cr_assert_not_null(p, "expected.json: no letters object");
    p = strchr(p, '{');
    got = 0;
    for (;;) {
        p += strspn(p, "{ \t\r\n,");
        if (*p == '}')
            break;
        cr_assert_eq(*p, '"', "expected.json: bad letters object");
        q = strchr(p + 1, '"');
        cr_assert_eq(mbtowc(&w, p + 1, (size_t)(q - p - 1)), (int)(q - p - 1));
        li = letter_of(w);
        cr_assert(li >= 0, "expected.json: unknown letter");
        p = strchr(q, ':') + 1;
        c->n[li] = strtoull(p, &p, 10);
        got++;
    }
    cr_assert_eq(got, JOBQ_LETTERS_COUNT);
    *pp = p + 1;
}

/* iconv UTF-8 -> enc; characters the target lacks become '?'. Russian letters all exist in
 * both targets, so letter counts are unchanged: the conversion is lossless for what we count. */
static uint8_t *
convert(const char *src, size_t len, jobq_letters_encoding enc, size_t *ret_len, size_t *subst)
{
    iconv_t cd;
    char *in, *out, *o;
    size_t inleft, outleft;

    cd = iconv_open(iconv_name(enc), "UTF-8");
    cr_assert(cd != (iconv_t)-1);
    out = malloc(len + 1);
    cr_assert_not_null(out);
    in = (char *)(uintptr_t)src;
    inleft = len;
    o = out;
    outleft = len + 1;
    *subst = 0;
    while (inleft > 0) {
        if (iconv(cd, &in, &inleft, &o, &outleft) != (size_t)-1)
            break;
        cr_assert(errno == EILSEQ || errno == EINVAL, "iconv: %s", strerror(errno));
        *o++ = '?';
        outleft--;
        (*subst)++;
        do {
            in++;
            inleft--;
        } while (inleft > 0 && ((unsigned char)*in & 0xC0) == 0x80);
    }
    iconv_close(cd);
    *ret_len = (size_t)(o - out);
    return (uint8_t *)out;
}

/* s[0, len) (UTF-8, NUL-terminated) in capitals, by towupper() under C.UTF-8; malloc'd. */
static char *
upper_utf8(const char *s, size_t len, size_t *ret_len)
{
    wchar_t *w;
    char *out;
    size_t n, i, cap;

    cr_assert_not_null(setlocale(LC_CTYPE, "C.UTF-8"));
    w = malloc((len + 1) * sizeof(*w));
    cr_assert_not_null(w);
    n = mbstowcs(w, s, len + 1);
    cr_assert(n != (size_t)-1, "not UTF-8");
    for (i = 0; i < n; i++)
        w[i] = (wchar_t)towupper((wint_t)w[i]);
    cap = n * MB_CUR_MAX + 1;
    out = malloc(cap);
    cr_assert_not_null(out);
    *ret_len = wcstombs(out, w, cap);
    cr_assert(*ret_len != (size_t)-1);
    free(w);
    return out;
}

static void
count_mem_file(const uint8_t *p, size_t n, jobq_letters_encoding enc, jobq_letters_result *r)
{
    int fd;

    fd = temp_file(p, n);
    cr_assert_eq(jobq_letters_count_fd(fd, 0, UINT64_MAX, enc, JOBQ_LETTERS_YO_SEPARATE, 0, r),
                 0);
    close(fd);
}

Test(letters, corpus_matches_expected_json, .timeout = 300)
{
    char path[4096], *json, *p, *name_end, *text, *dir, *caps;
    size_t jlen, tlen, clen, subst, caps_len;
    jobq_letters_counts want, total, dir_want;
    jobq_letters_result r;
    uint8_t *conv;
    unsigned files, e, lossless[3];
    uint64_t want_total;

    cr_assert_not_null(setlocale(LC_CTYPE, "C.UTF-8"));
    (void)snprintf(path, sizeof(path), "%s/expected.json", corpus_dir());
    json = slurp(path, &jlen);
    if (json == NULL) {
        cr_skip_test("corpus not found at %s (set JOBQ_CORPUS_DIR; CI has ../shared/corpus)",
                     corpus_dir());
    }
    dir = strstr(json, "\"dir\"");
    cr_assert_not_null(dir, "expected.json: no dir object");
    memset(&total, 0, sizeof(total));
    memset(lossless, 0, sizeof(lossless));
    files = 0;
    p = strstr(json, "\"files\"");
    cr_assert_not_null(p);
    while ((p = strstr(p, "\"ru/")) != NULL && p < dir) {
        name_end = strchr(p + 1, '"');
        *name_end = '\0';
        (void)snprintf(path, sizeof(path), "%s/%s", corpus_dir(), p + 1);
        p = name_end + 1;
        parse_letters(&p, &want);
        p = strstr(p, "\"total\"");
        cr_assert_not_null(p);
        want_total = strtoull(strchr(p, ':') + 1, &p, 10);
        cr_assert_eq(jobq_letters_total(&want), want_total, "%s: expected.json total", path);
        text = slurp(path, &tlen);
        cr_assert_not_null(text, "%s listed in expected.json is missing", path);
        count_mem_file((const uint8_t *)text, tlen, JOBQ_LETTERS_AUTO, &r);
        cr_assert_eq(r.enc, JOBQ_LETTERS_UTF8, "%s: detected %s", path,
                     jobq_letters_encoding_name(r.enc));
        assert_counts_eq(&r.counts, &want, path);
        count_mem_file((const uint8_t *)text, tlen, JOBQ_LETTERS_UTF8, &r);
        assert_counts_eq(&r.counts, &want, path);
        jobq_letters_add(&total, &r.counts);
        /* In capitals too (the counts are case-folded): cp1251's capitals are koi8-r's small
         * letters and the other way round, so case alone cannot tell the two apart. */
        caps = upper_utf8(text, tlen, &caps_len);
        for (e = 1; e < 3; e++) {
            conv = convert(text, tlen, encs[e], &clen, &subst);
            lossless[e] += subst == 0;
            count_mem_file(conv, clen, JOBQ_LETTERS_AUTO, &r);
            cr_assert_eq(r.enc, encs[e], "%s as %s: detected %s", path, iconv_name(encs[e]),
                         jobq_letters_encoding_name(r.enc));
            assert_counts_eq(&r.counts, &want, path);
            count_mem_file(conv, clen, encs[e], &r);
            assert_counts_eq(&r.counts, &want, path);
            free(conv);
            conv = convert(caps, caps_len, encs[e], &clen, &subst);
            count_mem_file(conv, clen, JOBQ_LETTERS_AUTO, &r);
            cr_assert_eq(r.enc, encs[e], "%s in capitals as %s: detected %s", path,
                         iconv_name(encs[e]), jobq_letters_encoding_name(r.enc));
            assert_counts_eq(&r.counts, &want, path);
            free(conv);
        }
        free(caps);
        free(text);
        files++;
    }
    parse_letters(&dir, &dir_want);
    assert_counts_eq(&total, &dir_want, "directory total");
    cr_assert_gt(files, 0);
    cr_log_info("corpus: %u files; lossless conversions: cp1251 %u, koi8-r %u (others had only "
                "non-letters replaced)", files, lossless[1], lossless[2]);
    free(json);
}

/* ---- detection ------------------------------------------------------------------------- */

/* Ordinary Russian prose (written for this test), for generated inputs. */
static const char prose[] =
    "Утром мы вышли из дома рано, пока на улице было тихо и пусто. Дорога шла через лес к "
    "реке, где у старого моста нас уже ждали друзья. Мы долго сидели на берегу, говорили о "
    "работе, о детях и о том, как быстро прошло лето. Потом пошёл дождь, и все побежали к "
    "машине.\n";

/* s (UTF-8) in cp1251 / koi8-r must be detected as such by jobq_letters_detect() and by the
 * stream (a whole file, AUTO), and counted as the reference counts it. */
static void
assert_detected(const char *s, jobq_letters_encoding enc, const char *what)
{
    jobq_letters_counts ref;
    jobq_letters_result r;
    uint8_t *conv;
    size_t clen, subst;

    conv = convert(s, strlen(s), enc, &clen, &subst);
    cr_assert_eq(subst, 0);
    cr_assert_eq(jobq_letters_detect(conv, clen), enc, "%s as %s: detect() says %s", what,
                 iconv_name(enc), jobq_letters_encoding_name(jobq_letters_detect(conv, clen)));
    count_mem_file(conv, clen, JOBQ_LETTERS_AUTO, &r);
    cr_assert_eq(r.enc, enc, "%s as %s: the stream says %s", what, iconv_name(enc),
                 jobq_letters_encoding_name(r.enc));
    ref_count(enc, conv, clen, &ref);
    assert_counts_eq(&r.counts, &ref, what);
    free(conv);
}

/* cp1251 capitals are koi8-r small letters and back: text in capitals used to be taken for the
 * other encoding, and every count was wrong. Mixed case must stay right. */
Test(letters, capitals_detected_in_both_encodings)
{
    char *caps, *mix;
    size_t caps_len, i, k, words;
    unsigned e;

    caps = upper_utf8(prose, strlen(prose), &caps_len);
    cr_assert_eq(caps_len, strlen(prose), "Russian capitals take as many bytes as small letters");
    /* Three words in four in capitals: every fourth one back in small letters. */
    mix = strdup(caps);
    cr_assert_not_null(mix);
    for (i = 0, words = 0; prose[i] != '\0'; i += k, words++) {
        k = strcspn(prose + i, " ");
        if (words % 4 == 3)
            memcpy(mix + i, prose + i, k);
        k += strspn(prose + i + k, " ");
    }
    for (e = 1; e < 3; e++) {
        assert_detected(prose, encs[e], "prose");
        assert_detected(caps, encs[e], "prose in capitals");
        assert_detected(mix, encs[e], "prose, 3 words in 4 in capitals");
        assert_detected("ПРИВЕТ", encs[e], "ПРИВЕТ");
        assert_detected("Привет", encs[e], "Привет");
        assert_detected("ГЛАВА ПЕРВАЯ", encs[e], "ГЛАВА ПЕРВАЯ");
    }
    free(mix);
    free(caps);
}

/* A UTF-8 file with a little Russian and one stray Latin-1 byte: one break of UTF-8's rules
 * against nine valid letters is UTF-8 with a bad byte, not single-byte text (the rule used to
 * want 32 bytes >= 0xC0 per break, and this file has 10). */
Test(letters, utf8_with_a_stray_byte_stays_utf8)
{
    char buf[512];
    jobq_letters_result r;
    jobq_letters_counts ref;
    size_t n;
    unsigned i;

    n = 0;
    for (i = 0; i < 20; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "Hello world. ");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "Привет, мир! Caf\xe9\n");
    cr_assert_eq(jobq_letters_detect(buf, n), JOBQ_LETTERS_UTF8);
    count_mem_file((const uint8_t *)buf, n, JOBQ_LETTERS_AUTO, &r);
    cr_assert_eq(r.enc, JOBQ_LETTERS_UTF8, "detected %s", jobq_letters_encoding_name(r.enc));
    ref_count(JOBQ_LETTERS_UTF8, (const uint8_t *)buf, n, &ref);
    assert_counts_eq(&r.counts, &ref, "UTF-8 with a stray byte");
    cr_assert_eq(jobq_letters_total(&r.counts), 9);
}

/* A sequence cut by the end of the input is an error there, and a byte that starts no UTF-8
 * sequence is one wherever a sample ends: "Total: 5 я" in cp1251 used to be UTF-8 with no
 * letters. jobq_letters_detect() cannot know that its sample is the whole input, so a byte
 * that could still start a sequence (E0) counts only in the stream. */
/* The whole input given to the detector: its end is the end, as for the stream; the same bytes
 * as a sample of something longer stay UTF-8 (the sequence may go on). */
Test(letters, detect_all_judges_the_end_as_the_end)
{
    static const char total_a[] = "Total: 5 \xe0";

    cr_assert_eq(jobq_letters_detect_all(total_a, 10), JOBQ_LETTERS_CP1251);
    cr_assert_eq(jobq_letters_detect(total_a, 10), JOBQ_LETTERS_UTF8);
    cr_assert_eq(jobq_letters_detect_all("x\xd0\xbf", 3), JOBQ_LETTERS_UTF8, "a whole letter");
    cr_assert_eq(jobq_letters_detect_all("abc", 3), JOBQ_LETTERS_AUTO, "ASCII");
    cr_assert_eq(jobq_letters_detect_all(NULL, 0), JOBQ_LETTERS_AUTO);
}

Test(letters, a_high_byte_at_the_end_is_a_letter)
{
    static const char total_a[] = "Total: 5 \xe0";
    jobq_letters_result r;
    jobq_letters_state st;
    jobq_letters_counts c;
    size_t i;
    int fd;

    cr_assert_eq(jobq_letters_detect("Total: 5 \xff", 10), JOBQ_LETTERS_CP1251);
    count_mem_file((const uint8_t *)"Total: 5 \xff", 10, JOBQ_LETTERS_AUTO, &r);
    cr_assert_eq(r.enc, JOBQ_LETTERS_CP1251, "detected %s", jobq_letters_encoding_name(r.enc));
    cr_assert_eq(r.counts.n[32], 1, "я");
    cr_assert_eq(jobq_letters_total(&r.counts), 1);
    cr_assert_eq(jobq_letters_detect(total_a, 10), JOBQ_LETTERS_UTF8, "may be cut");
    count_mem_file((const uint8_t *)total_a, 10, JOBQ_LETTERS_AUTO, &r);
    cr_assert_eq(r.enc, JOBQ_LETTERS_CP1251, "detected %s", jobq_letters_encoding_name(r.enc));
    cr_assert_eq(r.counts.n[0], 1, "а");
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    for (i = 0; i < 10; i++)
        cr_assert_eq(jobq_letters_feed(&st, total_a + i, 1), 0);
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c), JOBQ_LETTERS_CP1251);
    cr_assert_eq(jobq_letters_total(&c), 1);
    /* A range that ends inside the file ends at a cut: the letter it starts is still UTF-8 and
     * its own, as in the whole file. */
    fd = temp_file((const uint8_t *)"x\xd0\xbf", 3);
    cr_assert_eq(jobq_letters_count_fd(fd, 0, 2, JOBQ_LETTERS_AUTO, JOBQ_LETTERS_YO_SEPARATE, 0,
                                       &r), 0);
    cr_assert_eq(r.enc, JOBQ_LETTERS_UTF8, "detected %s", jobq_letters_encoding_name(r.enc));
    cr_assert_eq(r.counts.n[16], 1, "п");
    cr_assert_eq(jobq_letters_count_fd(fd, 0, UINT64_MAX, JOBQ_LETTERS_AUTO,
                                       JOBQ_LETTERS_YO_SEPARATE, 0, &r), 0);
    cr_assert_eq(r.enc, JOBQ_LETTERS_UTF8);
    cr_assert_eq(r.counts.n[16], 1, "п");
    close(fd);
}

/* FF FE is "яю" in cp1251 and FE FF "ЧЪ" in koi8-r: such text used to be refused as UTF-16.
 * The mark means UTF-16 only when the code unit after it looks like UTF-16, or nothing
 * follows it. */
Test(letters, bom_bytes_that_begin_cp1251_or_koi8r_text)
{
    static const uint8_t le_ascii[] = {0xFF, 0xFE, 'H', 0, 'i', 0};
    static const uint8_t be_cyrillic[] = {0xFE, 0xFF, 0x04, 0x1F, 0x04, 0x40};
    static const uint8_t le_dash[] = {0xFF, 0xFE, 0x14, 0x20, ' ', 0};
    jobq_letters_state st;
    jobq_letters_counts c;
    jobq_letters_result r;
    uint8_t *conv;
    size_t clen, subst, i;
    int fd;

    assert_detected("яюшка и кошка, сказала она", JOBQ_LETTERS_CP1251, "яюшка");
    assert_detected("ЧЪ, ЧЪ, сказала она и ушла домой", JOBQ_LETTERS_KOI8R, "ЧЪ");
    /* Byte by byte: the stream must not decide on the mark alone. */
    conv = convert("яюшка и кошка", strlen("яюшка и кошка"), JOBQ_LETTERS_CP1251, &clen, &subst);
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    for (i = 0; i < clen; i++)
        cr_assert_eq(jobq_letters_feed(&st, conv + i, 1), 0, "byte %zu", i);
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c), JOBQ_LETTERS_CP1251);
    cr_assert_eq(jobq_letters_total(&c), 11);
    free(conv);
    cr_assert_eq(jobq_letters_detect("\xff\xfe\x41", 3), JOBQ_LETTERS_CP1251, "яюA");
    /* UTF-16 itself, starting with ASCII, Cyrillic or a dash, and a mark with nothing after. */
    cr_assert_eq(jobq_letters_detect(le_ascii, sizeof(le_ascii)), JOBQ_LETTERS_UTF16LE);
    cr_assert_eq(jobq_letters_detect(be_cyrillic, sizeof(be_cyrillic)), JOBQ_LETTERS_UTF16BE);
    cr_assert_eq(jobq_letters_detect(le_dash, sizeof(le_dash)), JOBQ_LETTERS_UTF16LE);
    cr_assert_eq(jobq_letters_detect("\xfe\xff", 2), JOBQ_LETTERS_UTF16BE);
    jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
    cr_assert_eq(jobq_letters_feed(&st, "\xfe\xff", 2), 0);
    cr_assert_eq(jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c), JOBQ_LETTERS_UTF16BE);
    cr_assert_eq(jobq_letters_total(&c), 0);
    fd = temp_file(be_cyrillic, sizeof(be_cyrillic));
    cr_assert_eq(jobq_letters_count_fd(fd, 0, UINT64_MAX, JOBQ_LETTERS_AUTO,
                                       JOBQ_LETTERS_YO_SEPARATE, 0, &r), JOBQ_EINVAL);
    cr_assert_eq(r.enc, JOBQ_LETTERS_UTF16BE);
    /* A range [0, 2) decides on the code unit past its end. */
    cr_assert_eq(jobq_letters_count_fd(fd, 0, 2, JOBQ_LETTERS_AUTO, JOBQ_LETTERS_YO_SEPARATE, 0,
                                       &r), JOBQ_EINVAL);
    cr_assert_eq(r.enc, JOBQ_LETTERS_UTF16BE);
    close(fd);
    conv = convert("яюшка", strlen("яюшка"), JOBQ_LETTERS_CP1251, &clen, &subst);
    fd = temp_file(conv, clen);
    cr_assert_eq(jobq_letters_count_fd(fd, 0, 2, JOBQ_LETTERS_AUTO, JOBQ_LETTERS_YO_SEPARATE, 0,
                                       &r), 0);
    cr_assert_eq(r.enc, JOBQ_LETTERS_CP1251, "detected %s", jobq_letters_encoding_name(r.enc));
    cr_assert_eq(jobq_letters_total(&r.counts), 2);
    close(fd);
    free(conv);
}

/* jobq_letters_detect() decides as the stream does on an input it holds whole: shorter than
 * the window, and ending in ASCII, so that nothing is cut (the stream's utf8_letters comes from
 * its UTF-8 counts, the sample's from the kernels). */
Test(letters, detect_agrees_with_the_stream, .timeout = 120)
{
    uint64_t seed = 4242;
    uint8_t buf[6000];
    jobq_letters_state st;
    jobq_letters_counts c;
    jobq_letters_encoding want;
    size_t len;
    unsigned iter;

    for (iter = 0; iter < 3000; iter++) {
        len = (size_t)(rnd(&seed) % (iter < 2000 ? 40 : sizeof(buf) - 3));
        fill_random(buf, len, &seed);
        memcpy(buf + len, "\n\n\n", 3);
        len += 3;
        jobq_letters_init(&st, JOBQ_LETTERS_AUTO);
        (void)jobq_letters_feed(&st, buf, len); /* JOBQ_EINVAL for UTF-16 */
        want = jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, &c);
        cr_assert_eq(jobq_letters_detect(buf, len), want, "iter %u len %zu: stream says %s",
                     iter, len, jobq_letters_encoding_name(want));
    }
}
