/*
 * kernel-scalar.c - portable letter-counting kernels (the reference the SIMD kernels must match).
 *
 * Single-byte encodings: a 256-entry byte histogram in four interleaved copies (so consecutive
 * equal bytes do not serialise on one counter), folded into raw bins at the end. UTF-8: a walk
 * over lead bytes; after a letter the next position can be skipped because a continuation byte is
 * never a lead, which keeps the walk in step with any (even invalid) input.
 */
#include <string.h>

#include "letters-kernels.h"

void
jobq__letters_utf8_combos(const uint8_t *p, size_t n, size_t from, size_t to,
                          jobq__letters_raw *raw)
{
    size_t c;
    unsigned l;

    if (from < 2)
        from = 2;
    if (n < 1 || to > n - 1)
        to = n >= 1 ? n - 1 : 0;
    for (c = from; c < to; c++) {
        if (p[c] != 0xCC || (p[c + 1] != 0x86 && p[c + 1] != 0x88))
            continue;
        l = jobq__letters_utf8_pair(p[c - 2], p[c - 1]);
        /* и/И are cp1251 0xE8/0xC8, е/Е are 0xE5/0xC5. */
        if (p[c + 1] == 0x86 && (l | 0x20) == 0xE8)
            raw->comb_i++;
        else if (p[c + 1] == 0x88 && (l | 0x20) == 0xE5)
            raw->comb_e++;
    }
}

void
jobq__letters_sb_scalar(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw)
{
    uint64_t h[4][256];
    size_t i;
    unsigned b;

    if (n < 512) {
        /* Short buffers (small feeds, kernel tails): clearing 8 KiB of counters would cost more
         * than the counting. */
        for (i = 0; i < n; i++) {
            b = p[i];
            if (b >= 0xC0)
                raw->bin[b & 0x1F]++;
            else if ((b | 0x10) == (yo_byte | 0x10))
                raw->yo++;
        }
        return;
    }
    memset(h, 0, sizeof(h));
    for (i = 0; i + 4 <= n; i += 4) {
        h[0][p[i]]++;
        h[1][p[i + 1]]++;
        h[2][p[i + 2]]++;
        h[3][p[i + 3]]++;
    }
    for (; i < n; i++)
        h[0][p[i]]++;
    for (b = 0xC0; b < 0x100; b++)
        raw->bin[b & 0x1F] += h[0][b] + h[1][b] + h[2][b] + h[3][b];
    for (b = yo_byte & 0xEF; b <= (yo_byte | 0x10); b += 0x10)
        raw->yo += h[0][b] + h[1][b] + h[2][b] + h[3][b];
}

void
jobq__letters_utf8_scalar(const uint8_t *p, size_t n, jobq__letters_raw *raw)
{
    size_t i;
    unsigned s;

    if (n < 2)
        return;
    for (i = 0; i + 1 < n; i++) {
        if ((p[i] & 0xFE) != 0xD0) {
            if (p[i] == 0xCC)
                jobq__letters_utf8_combos(p, n, i, i + 1, raw);
            continue;
        }
        s = jobq__letters_utf8_pair(p[i], p[i + 1]);
        if (s >= 0xC0)
            raw->bin[s & 0x1F]++;
        else if (s != 0)
            raw->yo++;
        if (s != 0)
            i++;
    }
}

void
jobq__letters_det_scalar(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
    unsigned p1, p2, p3, b, sc, must;
    size_t i;

    p3 = prev[0];
    p2 = prev[1];
    p1 = prev[2];
    for (i = 0; i < n; i++) {
        b = p[i];
        sc = jobq__det_prev_hi[p1 >> 4] & jobq__det_prev_lo[p1 & 15] & jobq__det_cur_hi[b >> 4];
        must = p2 >= 0xE0 || p3 >= 0xF0 ? 0x80u : 0u;
        d->errors += (sc ^ must) != 0;
        d->utf8_letters += jobq__letters_utf8_pair(p1, b) != 0;
        d->lower[0] += b >= 0xE0;
        d->lower[1] += (b & 0xE0) == 0xC0;
        p3 = p2;
        p2 = p1;
        p1 = b;
    }
}
