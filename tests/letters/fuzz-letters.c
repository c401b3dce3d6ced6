/*
 * fuzz-letters.c - libFuzzer differential target for the letters job.
 *
 * For each input: every supported kernel must equal the scalar kernel in every encoding; the
 * streaming counter fed in pieces (split points taken from the input's first bytes) must equal
 * one feed, also under AUTO (same decision); and for UTF-8 an independent code-point decoder
 * written here (maximal-subpart error handling, as iconv-style decoders do) must agree. Any
 * difference aborts, which libFuzzer reports as a crash with the input saved.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jobq/letters.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

/* Independent UTF-8 reference: decode code points, fold Cyrillic case, handle U+0306/U+0308. */
static void
ref_utf8(const uint8_t *p, size_t n, jobq_letters_counts *c)
{
    size_t i, len, k;
    uint32_t cp, prev;
    unsigned b, lo, hi;

    memset(c, 0, sizeof(*c));
    prev = 0;
    for (i = 0; i < n; i += len) {
        b = p[i];
        lo = 0x80;
        hi = 0xBF;
        len = 1;
        cp = 0xFFFD;
        if (b < 0x80) {
            cp = b;
        } else if (b >= 0xC2 && b <= 0xF4) {
            size_t need = b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
            if (b == 0xE0)
                lo = 0xA0;
            if (b == 0xED)
                hi = 0x9F;
            if (b == 0xF0)
                lo = 0x90;
            if (b == 0xF4)
                hi = 0x8F;
            cp = b & (need == 1 ? 0x1F : need == 2 ? 0x0F : 0x07);
            for (k = 1; k <= need; k++) {
                if (i + k >= n || p[i + k] < lo || p[i + k] > hi) {
                    cp = 0xFFFD;
                    break;
                }
                cp = (cp << 6) | (p[i + k] & 0x3F);
                lo = 0x80;
                hi = 0xBF;
            }
            len = k > need ? need + 1 : k; /* maximal subpart on error */
            if (cp == 0xFFFD && len > 1)
                len = k; /* the bytes that were valid so far form one error */
        }
        if (cp >= 0x410 && cp <= 0x42F)
            cp += 0x20;
        if (cp == 0x401)
            cp = 0x451;
        if (cp == 0x306 && prev == 0x438) {
            c->n[9]--;
            c->n[10]++;
        } else if (cp == 0x308 && prev == 0x435) {
            c->n[5]--;
            c->n[6]++;
        } else if (cp >= 0x430 && cp <= 0x44F) {
            c->n[cp - 0x430 + (cp >= 0x436)]++;
        } else if (cp == 0x451) {
            c->n[6]++;
        }
        prev = (cp == 0x306 || cp == 0x308) ? 0 : cp;
    }
}

static void
stream(jobq_letters_encoding enc, const uint8_t *p, size_t n, const uint8_t *cuts, size_t ncuts,
       jobq_letters_counts *c, jobq_letters_encoding *ret_enc)
{
    jobq_letters_state st;
    size_t pos, step, k;

    jobq_letters_init(&st, enc);
    pos = 0;
    for (k = 0; pos < n; k++) {
        step = n;
        if (ncuts > 0)
            step = cuts[k % ncuts] & 1 ? (size_t)cuts[k % ncuts] % 17 + 1
                                       : (size_t)cuts[k % ncuts] * 4 + 1;
        if (k % 5 == 4)
            step = 3000; /* now and then a bigger block, so the SIMD paths run */
        if (step > n - pos)
            step = n - pos;
        if (jobq_letters_feed(&st, p + pos, step) != 0)
            break;
        pos += step;
    }
    *ret_enc = jobq_letters_finish(&st, JOBQ_LETTERS_YO_SEPARATE, c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const jobq_letters_encoding encs[3] = {JOBQ_LETTERS_UTF8, JOBQ_LETTERS_CP1251,
                                                  JOBQ_LETTERS_KOI8R};
    jobq_letters_counts scalar, other, ref;
    jobq_letters_encoding e1, e2;
    const uint8_t *cuts, *p;
    size_t ncuts, n;
    unsigned e, k;

    ncuts = size > 0 ? data[0] % 8 : 0;
    if (ncuts + 1 > size)
        ncuts = 0;
    cuts = data + 1;
    p = size > 0 ? data + 1 + ncuts : data;
    n = size > 0 ? size - 1 - ncuts : 0;
    for (e = 0; e < 3; e++) {
        memset(&scalar, 0, sizeof(scalar));
        check(jobq_letters_count_buffer_with(JOBQ_LETTERS_KERNEL_SCALAR, encs[e], p, n,
                                             &scalar) == 0);
        for (k = JOBQ_LETTERS_KERNEL_BEST; k < JOBQ_LETTERS_KERNEL_COUNT; k++) {
            if (!jobq_letters_kernel_supported((jobq_letters_kernel)k))
                continue;
            memset(&other, 0, sizeof(other));
            check(jobq_letters_count_buffer_with((jobq_letters_kernel)k, encs[e], p, n,
                                                 &other) == 0);
            check(memcmp(&scalar, &other, sizeof(other)) == 0);
        }
        stream(encs[e], p, n, cuts, ncuts, &other, &e1);
        check(e1 == encs[e]);
        check(memcmp(&scalar, &other, sizeof(other)) == 0);
        if (encs[e] == JOBQ_LETTERS_UTF8) {
            ref_utf8(p, n, &ref);
            check(memcmp(&scalar, &ref, sizeof(ref)) == 0);
        }
    }
    stream(JOBQ_LETTERS_AUTO, p, n, NULL, 0, &ref, &e1);
    stream(JOBQ_LETTERS_AUTO, p, n, cuts, ncuts, &other, &e2);
    check(e1 == e2);
    check(memcmp(&ref, &other, sizeof(other)) == 0);
    return 0;
}
