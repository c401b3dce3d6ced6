/*
 * test-letters.c - the letter-counting job (src/jobs/letters) against an independent reference.
 *
 * The reference decodes with iconv(3) into wchar_t and folds case with towlower() under a UTF-8
 * locale (C.UTF-8), skipping one byte on each invalid sequence (and breaking any combining
 * sequence there), so it shares no code or tables with the kernels. Property tests feed biased
 * random bytes (lots of D0/D1/CC, continuation bytes, letters and ё bytes of every encoding)
 * through every kernel, random feed splits, and random partitions of a temp file into ranges.
 * The corpus tests check ../shared/corpus/expected.json (produced by an independent Python
 * counter) for every text, as UTF-8 and converted to cp1251 and koi8-r at test time.
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
    cr_assert_eq(i, 1, "UTF-16 is refused once its BOM is complete");
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
    char path[4096], *json, *p, *name_end, *text, *dir;
    size_t jlen, tlen, clen, subst;
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
        }
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
