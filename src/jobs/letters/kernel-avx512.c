/*
 * kernel-avx512.c - AVX-512BW letter-counting kernels (compiled with -mavx512bw -mavx512vl; only
 * called after letters.c has checked the CPU at run time).
 *
 * Single-byte histogram of the 32 bins b & 0x1F over bytes b >= 0xC0, without a per-byte scalar
 * store: x = b + 0x40 puts the letters at 0x00..0x3F; idx_h = adds_u8((x & 0xDF) - 16h, 0x70)
 * keeps the low nibble of letters whose bit 4 equals h and sets bit 7 (pshufb's "write zero")
 * for everything else. Eight 16-entry tables T_j (1 at nibble 2j, 0x10 at nibble 2j+1) turn one
 * pshufb + one add into an increment of two 4-bit counters per byte lane, so 16 shuffles and 16
 * adds count all 32 bins of 64 bytes. The 4-bit counters are drained every 15 iterations with
 * psadbw into 64-bit sums. ё (two bytes differing in bit 4) is a compare under a mask.
 *
 * UTF-8 is transcoded block by block into the cp1251 byte of the letter starting at each
 * position (0 elsewhere) with masked compares, then counted by the same histogram. A block that
 * contains a 0xCC lead byte goes through the scalar combining-mark check.
 */
#include <immintrin.h>
#include <string.h>

#include "letters-kernels.h"

#define ITER_MAX 15

static void
hist_avx512(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw)
{
    __m512i tbl[8], acc[8], sum[33];
    __m512i c40, cdf, c10, c70, c0f, zero, yoc, hsub, s, idx, t, yacc;
    __mmask64 k;
    size_t i, it, run;
    unsigned j, h;

    for (j = 0; j < 8; j++) {
        uint8_t b[16];
        memset(b, 0, sizeof(b));
        b[2 * j] = 0x01;
        b[2 * j + 1] = 0x10;
        tbl[j] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)b));
    }
    for (j = 0; j < 33; j++)
        sum[j] = _mm512_setzero_si512();
    c40 = _mm512_set1_epi8(0x40);
    cdf = _mm512_set1_epi8((char)0xDF);
    c10 = _mm512_set1_epi8(0x10);
    c70 = _mm512_set1_epi8(0x70);
    c0f = _mm512_set1_epi8(0x0F);
    zero = _mm512_setzero_si512();
    yoc = _mm512_set1_epi8((char)(yo_byte | 0x10));
    i = 0;
    while (n - i >= 64) {
        run = (n - i) / 64 < ITER_MAX ? (n - i) / 64 : ITER_MAX;
        /* Two sweeps over the run (960 bytes at most, in L1), one per half of the bins, so
         * that 8 tables and 8 accumulators stay in registers: with all 16 accumulators live
         * the compiler spilled and the kernel ran at half speed. */
        for (h = 0; h < 2; h++) {
            hsub = h ? c10 : zero;
            for (j = 0; j < 8; j++)
                acc[j] = zero;
            yacc = zero;
            for (it = 0; it < run; it++) {
                s = _mm512_loadu_si512((const void *)(p + i + 64 * it));
                idx = _mm512_adds_epu8(
                    _mm512_sub_epi8(_mm512_and_si512(_mm512_add_epi8(s, c40), cdf), hsub), c70);
                for (j = 0; j < 8; j++)
                    acc[j] = _mm512_add_epi8(acc[j], _mm512_shuffle_epi8(tbl[j], idx));
                if (h == 0) {
                    k = _mm512_cmpeq_epi8_mask(_mm512_or_si512(s, c10), yoc);
                    yacc = _mm512_mask_sub_epi8(yacc, k, yacc, _mm512_set1_epi8(-1));
                }
            }
            for (j = 0; j < 8; j++) {
                t = _mm512_and_si512(acc[j], c0f);
                sum[16 * h + 2 * j] = _mm512_add_epi64(sum[16 * h + 2 * j], _mm512_sad_epu8(t, zero));
                t = _mm512_and_si512(_mm512_srli_epi16(acc[j], 4), c0f);
                sum[16 * h + 2 * j + 1] =
                    _mm512_add_epi64(sum[16 * h + 2 * j + 1], _mm512_sad_epu8(t, zero));
            }
            if (h == 0)
                sum[32] = _mm512_add_epi64(sum[32], _mm512_sad_epu8(yacc, zero));
        }
        i += 64 * run;
    }
    for (j = 0; j < 32; j++)
        raw->bin[j] += (uint64_t)_mm512_reduce_add_epi64(sum[j]);
    raw->yo += (uint64_t)_mm512_reduce_add_epi64(sum[32]);
    if (i < n)
        jobq__letters_sb_scalar(p + i, n - i, yo_byte, raw);
}

void
jobq__letters_sb_avx512(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw)
{
    hist_avx512(p, n, yo_byte, raw);
}

#define BLOCK 16384

/* Transcode p[pos, pos + blk) (letter starts; the byte after each is readable) into the cp1251
 * byte of each letter. With VBMI2 only the letters are kept (vpcompressb into a register, then
 * a plain store: the memory form is microcoded on some CPUs), so the histogram sees about 40 %
 * of the bytes of Russian UTF-8 text; without it every position is kept, 0 for non-letters.
 * Returns the number of bytes written to syn. Combining marks (a CC lead byte, rare: stress
 * accents are CC 81) are checked where the vector compare finds one, so a block with a single
 * accent no longer goes through a scalar scan of all its positions. */
#define TRANSCODE_BODY(STORE)                                                                      \
    size_t i, j, m = 0;                                                                            \
    __mmask64 k0, k1, kv0, kv1, ky, kany = 0, ccm[BLOCK / 64];                                     \
    __m512i lead, next, s;                                                                         \
    const __m512i cd0 = _mm512_set1_epi8((char)0xD0), cd1 = _mm512_set1_epi8((char)0xD1),          \
                  c90 = _mm512_set1_epi8((char)0x90), c80 = _mm512_set1_epi8((char)0x80),          \
                  c30 = _mm512_set1_epi8(0x30), c10 = _mm512_set1_epi8(0x10),                      \
                  c70 = _mm512_set1_epi8(0x70), c81 = _mm512_set1_epi8((char)0x81),                \
                  c91 = _mm512_set1_epi8((char)0x91), cb8 = _mm512_set1_epi8((char)0xB8),          \
                  ccc = _mm512_set1_epi8((char)0xCC);                                              \
    for (i = 0; i + 64 <= blk; i += 64) {                                                          \
        lead = _mm512_loadu_si512((const void *)(p + pos + i));                                    \
        next = _mm512_loadu_si512((const void *)(p + pos + i + 1));                                \
        k0 = _mm512_cmpeq_epi8_mask(lead, cd0);                                                    \
        k1 = _mm512_cmpeq_epi8_mask(lead, cd1);                                                    \
        kv0 = _mm512_mask_cmplt_epu8_mask(k0, _mm512_sub_epi8(next, c90), c30);                    \
        kv1 = _mm512_mask_cmplt_epu8_mask(k1, _mm512_sub_epi8(next, c80), c10);                    \
        ky = _mm512_mask_cmpeq_epi8_mask(k0, next, c81) |                                          \
             _mm512_mask_cmpeq_epi8_mask(k1, next, c91);                                           \
        s = _mm512_maskz_add_epi8(kv0, next, c30);                                                 \
        s = _mm512_mask_add_epi8(s, kv1, next, c70);                                               \
        s = _mm512_mask_mov_epi8(s, ky, cb8);                                                      \
        STORE;                                                                                     \
        ccm[i / 64] = _mm512_cmpeq_epi8_mask(lead, ccc);                                           \
        kany |= ccm[i / 64];                                                                       \
    }                                                                                              \
    /* After the loop: a call inside it would make every vector constant a reload. */              \
    for (j = 0; kany != 0 && j < i; j += 64)                                                       \
        for (k0 = ccm[j / 64]; k0 != 0; k0 &= k0 - 1)                                              \
            jobq__letters_utf8_combos(p, n, pos + j + (size_t)__builtin_ctzll(k0),                 \
                                      pos + j + (size_t)__builtin_ctzll(k0) + 1, raw);             \
    for (; i < blk; i++) {                                                                         \
        unsigned l = jobq__letters_utf8_pair(p[pos + i], p[pos + i + 1]);                          \
        if (l != 0)                                                                                \
            syn[m++] = (uint8_t)l;                                                                 \
        if (p[pos + i] == 0xCC)                                                                    \
            jobq__letters_utf8_combos(p, n, pos + i, pos + i + 1, raw);                            \
    }                                                                                              \
    return m

static size_t
transcode(const uint8_t *p, size_t n, size_t pos, size_t blk, uint8_t *syn, jobq__letters_raw *raw)
{
    TRANSCODE_BODY((_mm512_storeu_si512((void *)(syn + m), s), m += 64));
}

__attribute__((target("avx512vbmi2"))) static size_t
transcode_compress(const uint8_t *p, size_t n, size_t pos, size_t blk, uint8_t *syn,
                   jobq__letters_raw *raw)
{
    TRANSCODE_BODY((_mm512_storeu_si512((void *)(syn + m),
                                        _mm512_maskz_compress_epi8(kv0 | kv1 | ky, s)),
                    m += (size_t)__builtin_popcountll(kv0 | kv1 | ky)));
}

void
jobq__letters_utf8_avx512(const uint8_t *p, size_t n, jobq__letters_raw *raw)
{
    _Alignas(64) uint8_t syn[BLOCK + 64];
    size_t pos, npos, blk, m;
    int vbmi2;

    if (n < 2)
        return;
    vbmi2 = __builtin_cpu_supports("avx512vbmi2") != 0;
    /* Positions 0 .. n-2 can start a letter (a letter needs the byte after it). */
    npos = n - 1;
    for (pos = 0; pos < npos; pos += blk) {
        blk = npos - pos < BLOCK ? npos - pos : BLOCK;
        m = vbmi2 ? transcode_compress(p, n, pos, blk, syn, raw)
                  : transcode(p, n, pos, blk, syn, raw);
        hist_avx512(syn, m, 0xB8, raw);
    }
}

static inline __m512i
tbl16(const uint8_t t[16])
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)t));
}

/* The AVX2 scan's rules on 64 bytes at a time; the bytes 1-3 back come from unaligned loads
 * (the first vector from a copy with prev in front), the counts from mask popcounts. */
void
jobq__letters_det_avx512(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
    uint8_t first[67], tail[3];
    const uint8_t *q;
    __m512i t1, t2, t3, c0f, ce0, cc0, sat2, sat3, c80, cd0, cd1, cm112, cm64, c81, c91, cur, p1,
        p2, p3, hi, sc, must;
    __mmask64 k0, k1, ka, kb, let, yo;
    uint64_t err = 0, u8 = 0, l0 = 0, l1 = 0;
    size_t i;

    if (n < 64) {
        jobq__letters_det_scalar(p, n, prev, d);
        return;
    }
    t1 = tbl16(jobq__det_prev_hi);
    t2 = tbl16(jobq__det_prev_lo);
    t3 = tbl16(jobq__det_cur_hi);
    c0f = _mm512_set1_epi8(0x0F);
    ce0 = _mm512_set1_epi8((char)0xE0);
    cc0 = _mm512_set1_epi8((char)0xC0);
    c80 = _mm512_set1_epi8((char)0x80);
    sat2 = _mm512_set1_epi8((char)(0xE0 - 0x80));
    sat3 = _mm512_set1_epi8((char)(0xF0 - 0x80));
    cd0 = _mm512_set1_epi8((char)0xD0);
    cd1 = _mm512_set1_epi8((char)0xD1);
    cm112 = _mm512_set1_epi8(-112);
    cm64 = _mm512_set1_epi8(-64);
    c81 = _mm512_set1_epi8((char)0x81);
    c91 = _mm512_set1_epi8((char)0x91);
    memcpy(first, prev, 3);
    memcpy(first + 3, p, 64);
    for (i = 0; i + 64 <= n; i += 64) {
        /* q + 3 is the current vector, q + 2 .. q the bytes one to three back */
        q = i == 0 ? first : p + i - 3;
        cur = _mm512_loadu_si512((const void *)(q + 3));
        p1 = _mm512_loadu_si512((const void *)(q + 2));
        p2 = _mm512_loadu_si512((const void *)(q + 1));
        p3 = _mm512_loadu_si512((const void *)q);
        hi = _mm512_and_si512(_mm512_srli_epi16(cur, 4), c0f);
        sc = _mm512_and_si512(
            _mm512_and_si512(
                _mm512_shuffle_epi8(t1, _mm512_and_si512(_mm512_srli_epi16(p1, 4), c0f)),
                _mm512_shuffle_epi8(t2, _mm512_and_si512(p1, c0f))),
            _mm512_shuffle_epi8(t3, hi));
        must = _mm512_and_si512(
            _mm512_or_si512(_mm512_subs_epu8(p2, sat2), _mm512_subs_epu8(p3, sat3)), c80);
        err += (uint64_t)__builtin_popcountll(
            _mm512_test_epi8_mask(_mm512_xor_si512(sc, must), _mm512_xor_si512(sc, must)));
        /* The AVX2 letter test on masks: ka = cur in 80..8F, kb = 80..BF (as signed bytes). */
        k0 = _mm512_cmpeq_epi8_mask(p1, cd0);
        k1 = _mm512_cmpeq_epi8_mask(p1, cd1);
        ka = _mm512_cmplt_epi8_mask(cur, cm112);
        kb = _mm512_cmplt_epi8_mask(cur, cm64);
        let = (k0 & ~ka & kb) | (k1 & ka);
        yo = (k0 & _mm512_cmpeq_epi8_mask(cur, c81)) | (k1 & _mm512_cmpeq_epi8_mask(cur, c91));
        u8 += (uint64_t)__builtin_popcountll(let | yo);
        l0 += (uint64_t)__builtin_popcountll(_mm512_cmpge_epu8_mask(cur, ce0));
        l1 += (uint64_t)__builtin_popcountll(
            _mm512_cmpeq_epi8_mask(_mm512_and_si512(cur, ce0), cc0));
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
