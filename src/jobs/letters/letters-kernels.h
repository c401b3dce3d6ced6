/*
 * letters-kernels.h - private interface between the letter counter (letters.c) and its kernels.
 *
 * Every kernel produces "raw" counts that are independent of the encoding's letter order:
 *   bin[k]  bytes b >= 0xC0 with (b & 0x1F) == k (single-byte encodings: both cases fold onto the
 *           same k; UTF-8 kernels first map each Cyrillic letter to its cp1251 byte),
 *   yo      bytes equal to yo_byte or yo_byte ^ 0x10 (cp1251 0xA8/0xB8, koi8-r 0xA3/0xB3),
 *   comb_i  и/И followed by U+0306 (UTF-8 only), comb_e  е/Е followed by U+0308 (UTF-8 only).
 * letters.c maps bins to letter indices per encoding. A UTF-8 kernel counts exactly the "events"
 * that lie wholly inside its buffer: a letter is a 2-byte sequence D0/D1 + continuation, which is
 * context-free (D0/D1 is never a continuation byte), and a combination is the 4 bytes
 * letter + CC 86/88. The streaming layer counts the events that straddle two buffers.
 */
#ifndef JOBQ_LETTERS_KERNELS_H
#define JOBQ_LETTERS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq__letters_raw {
    uint64_t bin[32];
    uint64_t yo;
    uint64_t comb_i;
    uint64_t comb_e;
} jobq__letters_raw;

typedef void jobq__letters_sb_fn(const uint8_t *p, size_t n, unsigned yo_byte,
                                 jobq__letters_raw *raw);
typedef void jobq__letters_utf8_fn(const uint8_t *p, size_t n, jobq__letters_raw *raw);

/* cp1251 byte (0 when none) of the letter whose 2-byte UTF-8 sequence is (lead, next). */
static inline unsigned
jobq__letters_utf8_pair(unsigned lead, unsigned next)
{
    if (lead == 0xD0) {
        if (next >= 0x90 && next <= 0xBF)
            return next + 0x30;
        return next == 0x81 ? 0xA8u : 0u;
    }
    if (lead == 0xD1) {
        if (next >= 0x80 && next <= 0x8F)
            return next + 0x70;
        return next == 0x91 ? 0xB8u : 0u;
    }
    return 0;
}

/* Count the combining marks U+0306 (after и/И) and U+0308 (after е/Е) whose CC byte lies at a
 * position c in [from, to) of p[0, n), the whole 4-byte combination inside p. */
void jobq__letters_utf8_combos(const uint8_t *p, size_t n, size_t from, size_t to,
                               jobq__letters_raw *raw);

/*
 * Encoding detection over a sample. Every byte position gets a UTF-8 error flag from the byte
 * and the three before it (the rules of Keiser & Lemire's "lookup" validator: a flag marks a
 * too-short or too-long sequence, an overlong form, a surrogate, a value above U+10FFFF, or a
 * missing continuation), so a sequence cut by the end of the sample is never flagged and the
 * flags do not depend on how the sample is split. Besides the flags, the kernels count the
 * Russian letters that are valid UTF-8 (the pairs jobq__letters_utf8_pair() accepts, the lead
 * possibly in prev) and the bytes E0-FF / C0-DF (small letters in cp1251 / in koi8-r). score[]
 * belongs to letters.c (the letter-pair costs of the single-byte readings): kernels leave it
 * alone. prev[0..2] are the three bytes before p (prev[2] next to p[0]; zeros at the start).
 */
typedef struct jobq__letters_det {
    uint64_t errors;
    uint64_t utf8_letters;
    uint64_t lower[2];
    uint64_t score[2];
} jobq__letters_det;

typedef void jobq__letters_det_fn(const uint8_t *p, size_t n, const uint8_t prev[3],
                                  jobq__letters_det *d);

/* Flag bits (as in simdjson/simdutf): 0x01 too short (a lead byte without its continuation),
 * 0x02 too long (a continuation after ASCII), 0x04 overlong 3-byte form (E0 80..9F), 0x08 too
 * large (F4 90.., F5..), 0x10 surrogate (ED A0..BF), 0x20 overlong 2-byte form (C0, C1), 0x40
 * overlong 4-byte form (F0 80..8F) or too large (F5.. 80..8F), 0x80 two continuations in a row
 * (an error unless the byte two or three back is a 3- or 4-byte lead); 0x83 is "any previous
 * low nibble" for the first three. */

/* Indexed by the high nibble of the previous byte, its low nibble, and the high nibble of the
 * current byte; the AND of the three lookups is the byte's special-case flags. */
static const uint8_t jobq__det_prev_hi[16] = {
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x80, 0x80, 0x80, 0x80,
    0x01 | 0x20, 0x01, 0x01 | 0x04 | 0x10, 0x01 | 0x08 | 0x40,
};
static const uint8_t jobq__det_prev_lo[16] = {
    0x83 | 0x04 | 0x20 | 0x40, 0x83 | 0x20, 0x83, 0x83,
    0x83 | 0x08, 0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40,
    0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40,
    0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40 | 0x10, 0x83 | 0x08 | 0x40, 0x83 | 0x08 | 0x40,
};
static const uint8_t jobq__det_cur_hi[16] = {
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x02 | 0x20 | 0x80 | 0x04 | 0x40, 0x02 | 0x20 | 0x80 | 0x04 | 0x08,
    0x02 | 0x20 | 0x80 | 0x10 | 0x08, 0x02 | 0x20 | 0x80 | 0x10 | 0x08,
    0x01, 0x01, 0x01, 0x01,
};

void jobq__letters_det_scalar(const uint8_t *p, size_t n, const uint8_t prev[3],
                              jobq__letters_det *d);
void jobq__letters_det_avx2(const uint8_t *p, size_t n, const uint8_t prev[3],
                            jobq__letters_det *d);
void jobq__letters_det_avx512(const uint8_t *p, size_t n, const uint8_t prev[3],
                              jobq__letters_det *d);

void jobq__letters_sb_scalar(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw);
void jobq__letters_utf8_scalar(const uint8_t *p, size_t n, jobq__letters_raw *raw);
void jobq__letters_sb_avx2(const uint8_t *p, size_t n, unsigned yo_byte, jobq__letters_raw *raw);
void jobq__letters_utf8_avx2(const uint8_t *p, size_t n, jobq__letters_raw *raw);
void jobq__letters_sb_avx512(const uint8_t *p, size_t n, unsigned yo_byte,
                             jobq__letters_raw *raw);
void jobq__letters_utf8_avx512(const uint8_t *p, size_t n, jobq__letters_raw *raw);

#endif /* JOBQ_LETTERS_KERNELS_H */
