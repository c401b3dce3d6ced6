/*
 * kernel-avx2.c - AVX2 letter-counting kernels (compiled with -mavx2; only called after
 * letters.c has checked the CPU at run time).
 *
 * The same nibble-table histogram as kernel-avx512.c (see there), on 32-byte vectors. AVX2 has
 * only 16 vector registers, too few for 16 accumulators plus 8 tables, so each run of up to 15
 * vectors (480 bytes, in L1) is swept four times, each sweep counting 8 of the 32 bins with 4
 * tables and 4 accumulators held in registers.
 */
#include <immintrin.h>
#include <string.h>

#include "letters-kernels.h"

#define ITER_MAX 15

static void
hist_avx2(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw)
{
    __m256i tbl[8], sum[33];
    __m256i c40, cdf, c70, c0f, zero, yoc, c10, s, m, idx, a0, a1, a2, a3, t0, t1, t2, t3, hsub,
        yacc;
    size_t i, it, run;
    unsigned j, pass;
    uint64_t tmp[4];

    for (j = 0; j < 8; j++) {
        uint8_t b[16];
        memset(b, 0, sizeof(b));
        b[2 * j] = 0x01;
        b[2 * j + 1] = 0x10;
        tbl[j] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)b));
    }
    for (j = 0; j < 33; j++)
        sum[j] = _mm256_setzero_si256();
    c40 = _mm256_set1_epi8(0x40);
    cdf = _mm256_set1_epi8((char)0xDF);
    c70 = _mm256_set1_epi8(0x70);
    c0f = _mm256_set1_epi8(0x0F);
    c10 = _mm256_set1_epi8(0x10);
    zero = _mm256_setzero_si256();
    yoc = _mm256_set1_epi8((char)(yo_byte | 0x10));
    i = 0;
    while (n - i >= 32) {
        run = (n - i) / 32 < ITER_MAX ? (n - i) / 32 : ITER_MAX;
        for (pass = 0; pass < 4; pass++) {
            /* pass: bins h*16 + 8*(pass & 1) .. +8, h = pass >> 1 */
            hsub = _mm256_set1_epi8((char)(pass >> 1 ? 0x10 : 0));
            t0 = tbl[4 * (pass & 1)];
            t1 = tbl[4 * (pass & 1) + 1];
            t2 = tbl[4 * (pass & 1) + 2];
            t3 = tbl[4 * (pass & 1) + 3];
            a0 = a1 = a2 = a3 = zero;
            for (it = 0; it < run; it++) {
                s = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32 * it));
                m = _mm256_and_si256(_mm256_add_epi8(s, c40), cdf);
                idx = _mm256_adds_epu8(_mm256_sub_epi8(m, hsub), c70);
                a0 = _mm256_add_epi8(a0, _mm256_shuffle_epi8(t0, idx));
                a1 = _mm256_add_epi8(a1, _mm256_shuffle_epi8(t1, idx));
                a2 = _mm256_add_epi8(a2, _mm256_shuffle_epi8(t2, idx));
                a3 = _mm256_add_epi8(a3, _mm256_shuffle_epi8(t3, idx));
            }
            j = (pass >> 1) * 16 + (pass & 1) * 8;
#define DRAIN(a, b)                                                                                \
    sum[b] = _mm256_add_epi64(sum[b], _mm256_sad_epu8(_mm256_and_si256(a, c0f), zero));            \
    sum[b + 1] = _mm256_add_epi64(                                                                 \
        sum[b + 1], _mm256_sad_epu8(_mm256_and_si256(_mm256_srli_epi16(a, 4), c0f), zero))
            DRAIN(a0, j);
            DRAIN(a1, j + 2);
            DRAIN(a2, j + 4);
            DRAIN(a3, j + 6);
#undef DRAIN
        }
        yacc = zero;
        for (it = 0; it < run; it++) {
            s = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32 * it));
            yacc = _mm256_sub_epi8(yacc, _mm256_cmpeq_epi8(_mm256_or_si256(s, c10), yoc));
        }
        sum[32] = _mm256_add_epi64(sum[32], _mm256_sad_epu8(yacc, zero));
        i += 32 * run;
    }
    for (j = 0; j < 33; j++) {
        _mm256_storeu_si256((__m256i *)(void *)tmp, sum[j]);
        if (j < 32)
            raw->bin[j] += tmp[0] + tmp[1] + tmp[2] + tmp[3];
        else
            raw->yo += tmp[0] + tmp[1] + tmp[2] + tmp[3];
    }
    if (i < n)
        jobq__letters_sb_scalar(p + i, n - i, yo_byte, raw);
}

void
jobq__letters_sb_avx2(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw)
{
    hist_avx2(p, n, yo_byte, raw);
}

#define BLOCK 4096

/* The UTF-8 letter test of 32 lead bytes and the bytes after them: *let marks а..я/А..Я (D0 90..BF,
 * D1 80..8F), *yo ё/Ё (D1 91, D0 81); returns the lead == D0 mask. Shared by the counter and the
 * detector so that they agree on what a UTF-8 letter is. */
static inline __m256i
utf8_letters32(__m256i lead, __m256i next, __m256i *let, __m256i *yo)
{
    const __m256i d0 = _mm256_cmpeq_epi8(lead, _mm256_set1_epi8((char)0xD0));
    const __m256i d1 = _mm256_cmpeq_epi8(lead, _mm256_set1_epi8((char)0xD1));
    /* As signed bytes: a = next in 0x80..0x8F, b = next in 0x80..0xBF. */
    const __m256i a = _mm256_cmpgt_epi8(_mm256_set1_epi8(-112), next);
    const __m256i b = _mm256_cmpgt_epi8(_mm256_set1_epi8(-64), next);

    *let = _mm256_or_si256(_mm256_and_si256(d0, _mm256_andnot_si256(a, b)),
                           _mm256_and_si256(d1, a));
    *yo = _mm256_or_si256(
        _mm256_and_si256(d0, _mm256_cmpeq_epi8(next, _mm256_set1_epi8((char)0x81))),
        _mm256_and_si256(d1, _mm256_cmpeq_epi8(next, _mm256_set1_epi8((char)0x91))));
    return d0;
}

void
jobq__letters_utf8_avx2(const uint8_t *p, size_t n, jobq__letters_raw *raw)
{
    _Alignas(32) uint8_t syn[BLOCK];
    __m256i ccc, cc0, c70, cb8, lead, next, d0, let, yo, s, anycc;
    size_t pos, npos, blk, i;
    int cc;

    if (n < 2)
        return;
    ccc = _mm256_set1_epi8((char)0xCC);
    cc0 = _mm256_set1_epi8((char)0xC0);
    c70 = _mm256_set1_epi8(0x70);
    cb8 = _mm256_set1_epi8((char)0xB8);
    npos = n - 1;
    for (pos = 0; pos < npos; pos += blk) {
        blk = npos - pos < BLOCK ? npos - pos : BLOCK;
        anycc = _mm256_setzero_si256();
        for (i = 0; i + 32 <= blk; i += 32) {
            lead = _mm256_loadu_si256((const __m256i *)(const void *)(p + pos + i));
            next = _mm256_loadu_si256((const __m256i *)(const void *)(p + pos + i + 1));
            d0 = utf8_letters32(lead, next, &let, &yo);
            /* D0 xx -> xx + 0x30, D1 xx -> xx + 0x70 (the cp1251 byte). */
            s = _mm256_add_epi8(_mm256_add_epi8(next, c70), _mm256_and_si256(d0, cc0));
            s = _mm256_and_si256(s, let);
            s = _mm256_or_si256(s, _mm256_and_si256(yo, cb8));
            _mm256_store_si256((__m256i *)(void *)(syn + i), s);
            anycc = _mm256_or_si256(anycc, _mm256_cmpeq_epi8(lead, ccc));
        }
        cc = !_mm256_testz_si256(anycc, anycc);
        for (; i < blk; i++) {
            syn[i] = (uint8_t)jobq__letters_utf8_pair(p[pos + i], p[pos + i + 1]);
            if (p[pos + i] == 0xCC)
                cc = 1;
        }
        hist_avx2(syn, blk, 0xB8, raw);
        if (cc)
            jobq__letters_utf8_combos(p, n, pos, pos + blk, raw);
    }
}

static inline __m256i
tbl16(const uint8_t t[16])
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)t));
}

/* The vector before `cur` shifted in by k bytes: bytes i-k of the 64-byte window prev|cur. */
#define PREV_K(cur, prv, k)                                                                        \
    _mm256_alignr_epi8(cur, _mm256_permute2x128_si256(prv, cur, 0x21), 16 - (k))

static inline unsigned
nonzero_bytes(__m256i v)
{
    return 32u - (unsigned)__builtin_popcount(
                     (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())));
}

void
jobq__letters_det_avx2(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
    __m256i t1, t2, t3, c0f, ce0, cc0, sat2, sat3, cur, prv, p1, p2, p3, sc, must, let, yo;
    uint8_t last[32], tail[3];
    uint64_t err, u8, l0, l1;
    size_t i;

    if (n < 32) {
        jobq__letters_det_scalar(p, n, prev, d);
        return;
    }
    t1 = tbl16(jobq__det_prev_hi);
    t2 = tbl16(jobq__det_prev_lo);
    t3 = tbl16(jobq__det_cur_hi);
    c0f = _mm256_set1_epi8(0x0F);
    ce0 = _mm256_set1_epi8((char)0xE0);
    cc0 = _mm256_set1_epi8((char)0xC0);
    sat2 = _mm256_set1_epi8((char)(0xE0 - 0x80));
    sat3 = _mm256_set1_epi8((char)(0xF0 - 0x80));
    memset(last, 0, sizeof(last));
    memcpy(last + 29, prev, 3);
    prv = _mm256_loadu_si256((const __m256i *)(const void *)last);
    err = u8 = l0 = l1 = 0;
    for (i = 0; i + 32 <= n; i += 32) {
        cur = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        p1 = PREV_K(cur, prv, 1);
        p2 = PREV_K(cur, prv, 2);
        p3 = PREV_K(cur, prv, 3);
        sc = _mm256_and_si256(
            _mm256_and_si256(
                _mm256_shuffle_epi8(t1, _mm256_and_si256(_mm256_srli_epi16(p1, 4), c0f)),
                _mm256_shuffle_epi8(t2, _mm256_and_si256(p1, c0f))),
            _mm256_shuffle_epi8(t3, _mm256_and_si256(_mm256_srli_epi16(cur, 4), c0f)));
        /* saturating p2 - 0x60 has bit 7 set exactly when p2 >= 0xE0 (p3 - 0x70: p3 >= 0xF0) */
        must = _mm256_and_si256(
            _mm256_or_si256(_mm256_subs_epu8(p2, sat2), _mm256_subs_epu8(p3, sat3)),
            _mm256_set1_epi8((char)0x80));
        err += nonzero_bytes(_mm256_xor_si256(sc, must));
        /* The UTF-8 kernel's letter test with p1 as the lead. */
        (void)utf8_letters32(p1, cur, &let, &yo);
        u8 += (unsigned)__builtin_popcount(
            (unsigned)_mm256_movemask_epi8(_mm256_or_si256(let, yo)));
        l0 += (unsigned)__builtin_popcount(
            (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(cur, ce0), cur)));
        l1 += (unsigned)__builtin_popcount((unsigned)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(_mm256_and_si256(cur, ce0), cc0)));
        prv = cur;
    }
    d->errors += err;
    d->utf8_letters += u8;
    d->lower[0] += l0;
    d->lower[1] += l1;
    if (i < n) {
        memcpy(tail, p + i - 3, 3);
        jobq__letters_det_scalar(p + i, n - i, tail, d);
    }
}
