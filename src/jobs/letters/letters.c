/*
 * letters.c - the letter-counting job: names, encodings, the streaming counter, AUTO detection,
 * kernel dispatch and the file/range helpers. Uses only the public jobq API (error codes).
 *
 * Design. The kernels (kernel-*.c) count "raw" bins that do not depend on an encoding's letter
 * order (see letters-kernels.h); this file maps them onto the 33 letters. Counting is defined by
 * events that are context-free, so any split of the input gives the same sum:
 *   - single-byte encodings: every byte is its own event;
 *   - UTF-8: a letter is the pair (D0|D1, continuation) wherever it occurs (D0/D1 can never be a
 *     continuation byte, so invalid bytes before it cannot swallow it); a decomposed й/ё is the
 *     4-byte event (и|е pair, CC 86|88) and moves one count from и to й / е to ё.
 * A kernel counts the events wholly inside its buffer; the stream keeps the last 3 bytes (the
 * longest event is 4 bytes) and counts the events that straddle the seam between two buffers.
 * A file range owns the events that start in it, so only look-ahead past its end is needed.
 *
 * AUTO keeps the three candidate counts (UTF-8 in st->counts, cp1251 and koi8-r in st->alt[])
 * and the detector's counts until a fixed stream offset (JOBQ_LETTERS_DETECT_WINDOW bytes after the
 * first non-ASCII byte), so the decision, like the counts, is independent of block sizes, and
 * memory stays constant. Before the first non-ASCII byte there is nothing to count at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jobq/letters.h>

#include "letters-kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define LETTERS_X86 1
#else
#define LETTERS_X86 0
#endif

static const char *const letter_names[JOBQ_LETTERS_COUNT] = {
    "а", "б", "в", "г", "д", "е", "ё", "ж", "з", "и", "й", "к", "л", "м", "н", "о", "п",
    "р", "с", "т", "у", "ф", "х", "ц", "ч", "ш", "щ", "ъ", "ы", "ь", "э", "ю", "я",
};

/* Raw bin (b & 0x1F of a byte >= 0xC0) -> letter index. cp1251 is alphabetical with ё left
 * out; koi8-r is in its own order: ю а б ц д е ф г х и й к л м н о п я р с т у ж в ь ы з ш э щ
 * ч ъ. */
static const uint8_t cp1251_bin_letter[32] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
static const uint8_t koi8r_bin_letter[32] = {
    31, 0, 1, 23, 4, 5, 21, 3, 22, 9, 10, 11, 12, 13, 14, 15,
    16, 32, 17, 18, 19, 20, 7, 2, 29, 28, 8, 25, 30, 26, 24, 27,
};

#define L_E 5
#define L_YO 6
#define L_I 9
#define L_SHORT_I 10

const char *
jobq_letters_encoding_name(jobq_letters_encoding enc)
{
    switch (enc) {
    case JOBQ_LETTERS_AUTO:
        return "auto";
    case JOBQ_LETTERS_UTF8:
        return "utf-8";
    case JOBQ_LETTERS_CP1251:
        return "cp1251";
    case JOBQ_LETTERS_KOI8R:
        return "koi8-r";
    case JOBQ_LETTERS_UTF16LE:
        return "utf-16le";
    case JOBQ_LETTERS_UTF16BE:
        return "utf-16be";
    default:
        return NULL;
    }
}

int
jobq_letters_encoding_parse(const char *name, jobq_letters_encoding *ret_enc)
{
    static const struct {
        const char *name;
        jobq_letters_encoding enc;
    } names[] = {
        {"auto", JOBQ_LETTERS_AUTO},         {"utf-8", JOBQ_LETTERS_UTF8},
        {"utf8", JOBQ_LETTERS_UTF8},         {"cp1251", JOBQ_LETTERS_CP1251},
        {"windows-1251", JOBQ_LETTERS_CP1251}, {"koi8-r", JOBQ_LETTERS_KOI8R},
        {"koi8r", JOBQ_LETTERS_KOI8R},       {"utf-16le", JOBQ_LETTERS_UTF16LE},
        {"utf-16be", JOBQ_LETTERS_UTF16BE},
    };
    size_t i;

    if (name == NULL || ret_enc == NULL)
        return JOBQ_EINVAL;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *ret_enc = names[i].enc;
            return 0;
        }
    }
    return JOBQ_EINVAL;
}

const char *
jobq_letters_name(unsigned i)
{
    return i < JOBQ_LETTERS_COUNT ? letter_names[i] : NULL;
}

uint64_t
jobq_letters_total(const jobq_letters_counts *c)
{
    uint64_t t;
    unsigned i;

    t = 0;
    for (i = 0; i < JOBQ_LETTERS_COUNT; i++)
        t += c->n[i];
    return t;
}

void
jobq_letters_add(jobq_letters_counts *dst, const jobq_letters_counts *src)
{
    unsigned i;

    for (i = 0; i < JOBQ_LETTERS_COUNT; i++)
        dst->n[i] += src->n[i];
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels and dispatch                                                                        */
/* ------------------------------------------------------------------------------------------ */

int
jobq_letters_kernel_supported(jobq_letters_kernel k)
{
    switch (k) {
    case JOBQ_LETTERS_KERNEL_BEST:
    case JOBQ_LETTERS_KERNEL_SCALAR:
        return 1;
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX2)
    case JOBQ_LETTERS_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
#endif
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX512)
    case JOBQ_LETTERS_KERNEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
#endif
    default:
        return 0;
    }
}

const char *
jobq_letters_kernel_name(jobq_letters_kernel k)
{
    switch (k) {
    case JOBQ_LETTERS_KERNEL_BEST:
        return "best";
    case JOBQ_LETTERS_KERNEL_SCALAR:
        return "scalar";
    case JOBQ_LETTERS_KERNEL_AVX2:
        return "avx2";
    case JOBQ_LETTERS_KERNEL_AVX512:
        return "avx512";
    default:
        return NULL;
    }
}

/* The CPU check is a few loads from libgcc's cached cpuid data: cheap enough per call, and it
 * keeps this file free of global state. */
static jobq_letters_kernel
best_kernel(void)
{
    if (jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX512))
        return JOBQ_LETTERS_KERNEL_AVX512;
    if (jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX2))
        return JOBQ_LETTERS_KERNEL_AVX2;
    return JOBQ_LETTERS_KERNEL_SCALAR;
}

static void
run_kernel(jobq_letters_kernel k, jobq_letters_encoding enc, const uint8_t *p, size_t n,
           jobq__letters_raw *raw)
{
    jobq__letters_sb_fn *sb;
    jobq__letters_utf8_fn *u8;

    sb = jobq__letters_sb_scalar;
    u8 = jobq__letters_utf8_scalar;
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX2)
    if (k == JOBQ_LETTERS_KERNEL_AVX2) {
        sb = jobq__letters_sb_avx2;
        u8 = jobq__letters_utf8_avx2;
    }
#endif
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX512)
    if (k == JOBQ_LETTERS_KERNEL_AVX512) {
        sb = jobq__letters_sb_avx512;
        u8 = jobq__letters_utf8_avx512;
    }
#endif
    if (enc == JOBQ_LETTERS_UTF8)
        u8(p, n, raw);
    else
        sb(p, n, enc == JOBQ_LETTERS_KOI8R ? 0xB3u : 0xB8u, raw);
}

/* The kernel for a streaming block: small feeds go scalar, a vector kernel's setup (tables,
 * 33 accumulators) costs more than it saves there. */
static jobq_letters_kernel
stream_kernel(size_t n)
{
    return n < 256 ? JOBQ_LETTERS_KERNEL_SCALAR : best_kernel();
}

/* counts += raw, mapped through enc's letter order. */
static void
add_raw(jobq_letters_counts *c, const jobq__letters_raw *raw, jobq_letters_encoding enc)
{
    const uint8_t *map;
    unsigned k;

    map = enc == JOBQ_LETTERS_KOI8R ? koi8r_bin_letter : cp1251_bin_letter;
    for (k = 0; k < 32; k++)
        c->n[map[k]] += raw->bin[k];
    c->n[L_YO] += raw->yo;
    /* A combination's letter was counted in the same buffer or an earlier one, so the
     * subtraction cannot wrap in a whole stream or in a range (ranges own whole events). */
    c->n[L_I] -= raw->comb_i;
    c->n[L_SHORT_I] += raw->comb_i;
    c->n[L_E] -= raw->comb_e;
    c->n[L_YO] += raw->comb_e;
}

static int
supported_enc(jobq_letters_encoding enc)
{
    return enc == JOBQ_LETTERS_UTF8 || enc == JOBQ_LETTERS_CP1251 || enc == JOBQ_LETTERS_KOI8R;
}

int
jobq_letters_count_buffer_with(jobq_letters_kernel k, jobq_letters_encoding enc, const void *buf,
                               size_t len, jobq_letters_counts *counts)
{
    jobq__letters_raw raw;

    if ((unsigned)k >= JOBQ_LETTERS_KERNEL_COUNT || !jobq_letters_kernel_supported(k) ||
        !supported_enc(enc) || counts == NULL || (buf == NULL && len > 0))
        return JOBQ_EINVAL;
    if (k == JOBQ_LETTERS_KERNEL_BEST)
        k = best_kernel();
    memset(&raw, 0, sizeof(raw));
    if (len > 0)
        run_kernel(k, enc, (const uint8_t *)buf, len, &raw);
    add_raw(counts, &raw, enc);
    return 0;
}

void
jobq_letters_count_buffer(jobq_letters_encoding enc, const void *buf, size_t len,
                          jobq_letters_counts *counts)
{
    if (enc == JOBQ_LETTERS_AUTO && buf != NULL)
        enc = jobq_letters_detect(buf, len);
    (void)jobq_letters_count_buffer_with(JOBQ_LETTERS_KERNEL_BEST, enc, buf, len, counts);
}

/* ------------------------------------------------------------------------------------------ */
/* Detection                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * cp1251 or koi8-r. Both put the 32 letters (ё apart) at C0-FF in both cases, but cp1251 has the
 * capitals at C0-DF and koi8-r at E0-FF, so text in capitals in one is text in small letters in
 * the other, and neither the case of the bytes nor a count of frequent small letters tells them
 * apart there. det_score() rates the case-folded letters instead: the cost in bits of each letter
 * given the one before it (or given a non-letter, so that word starts and ends count), summed for
 * each reading over the first DET_SCORE_LETTERS bytes >= 0xC0. Russian text costs about 4.3 bits
 * a letter in its own encoding and 8.8 in the other, so a line decides by tens of bits. In a word
 * or two both readings can be plausible, and the case decides: a small letter followed by a
 * capital costs DET_FLIP_BITS (it is how the wrong reading spells a capitalised word), and as most
 * text is in small letters, the reading that makes most letters small is DET_CASE_BITS ahead (a
 * prior of one sample in sixteen set in capitals). Measured on 1-3-word and one-line samples of
 * the corpus, these values get fewer mixed-case samples wrong than the old count of frequent
 * small letters did, and most all-capitals ones right, which it got all wrong.
 */
#define DET_NOT_LETTER 33
#define DET_SCORE_LETTERS 256
#define DET_CASE_BITS 4
#define DET_FLIP_BITS 8

/* pair_bits[a][b]: round(-log2 P(b | a)) for case-folded letters a, b (indices as letter_names;
 * DET_NOT_LETTER for anything else, a run of which counts once), at most 15, as a hex digit. From
 * the 13.5 M pairs of the project's corpus (../shared/corpus, 46 texts), 0.5 added to each count;
 * a non-letter after a non-letter costs nothing. */
static const char pair_bits[34][35] = {
    "e74756f64964344d6544a86a668ffff652", /* а */
    "4c8c93fcd4f74863f47b4f8b9b6728dc55", /* б */
    "3caa63ff64f8685376486fab96cc48ff73", /* в */
    "4eaf45fff5f74b61f49b5fff9cfffffff4", /* г */
    "2a5ca3e9c3f7584384674d9798f965ea65", /* д */
    "b65455e66956443864449c78667ffff882", /* е */
    "dda89dd79db9776d9696dbbdb9ddddddd0", /* ё */
    "38fa41daf3f69a38fc8a5ffb9ffff8fbf5", /* ж */
    "164546f7a5f76635f68a6ffc9bf955f953", /* з */
    "a75755f8576534498654cb56579ffff852", /* и */
    "fcdf6cffeff7785afb45fdf866efffffe0", /* й */
    "2f7fc6fbc3fc6e52f4764ffbdcfffefef3", /* к */
    "3aa893d7c3f78c739f595dff8def63f552", /* л */
    "3af9f3ffc3f97a43898b3dfbabbf59fb62", /* м */
    "2bca72fbc3f8ff43fa774bf78c9f45f854", /* н */
    "f54445f6775644496444a98a669fffc772", /* о */
    "4ffef3fff5f85f8182b85cba9cdf77fd69", /* п */
    "287763f7a3f797629b764a8997af55f855", /* р */
    "5a5b848bb5f4456458626d8a79fb74f844", /* с */
    "3c4c93efd4f78b62946a5dc98dcb53f973", /* т */
    "a55447f46b75447d5544eb6c557fffb592", /* у */
    "3ffff2fff2fb5984e38757ffbcee75ea94", /* ф */
    "3f5de7fff5ff5762e6796fffeafdffdff1", /* х */
    "2e6bf2fff4f5dab3ffff3dfbfeff4cfdc3", /* ц */
    "3fcff2dff3f59b48f7f24ffff7fff6fef5", /* ч */
    "3f8ff2eff2f449458ce75ffdfefff4fdf6", /* ш */
    "3fdff1bff2ffff6af9ff5ffffefff7fff7", /* щ */
    "ddddd1addbdaddbdddbdddddddddddd318", /* ъ */
    "f64774f98a36346f7645bf4a65afffffd2", /* ы */
    "f8a895de77f4f64aef47fde885bfffe651", /* ь */
    "efa99fffaf86688e8880f97efaffffeff7", /* э */
    "f3ca4cf99ee8777fb754fb8a664ffff7f1", /* ю */
    "fa6757f65986465f9854ee79797ffff781", /* я */
    "653545f654f465343534587958bfff6b60", /* not a letter */
};

static unsigned
pair_cost(unsigned a, unsigned b)
{
    unsigned c = (unsigned char)pair_bits[a][b];

    /* '0'-'9' are 0x30-0x39, 'a'-'f' 0x61-0x66: no branch in the hot loop. */
    return (c & 0x0F) + 9 * (c >> 6);
}

/* Offset of the first byte >= 0x80 in p[0, n), or n. */
static size_t
first_high(const uint8_t *p, size_t n)
{
    size_t i;
    uint64_t w;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
    }
    for (; i < n; i++)
        if (p[i] & 0x80)
            return i;
    return n;
}

/* The letter index of byte b read as cp1251 (koi8r 0) or as koi8-r, or DET_NOT_LETTER. */
static unsigned
det_letter(unsigned b, int koi8r)
{
    if (b >= 0xC0)
        return koi8r ? koi8r_bin_letter[b & 0x1F] : cp1251_bin_letter[b & 0x1F];
    return (b | 0x10) == (koi8r ? 0xB3u : 0xB8u) ? L_YO : DET_NOT_LETTER;
}

/* d->score[] += the pair costs of p[0, n) (prev: the byte before p[0]) up to and including the
 * DET_SCORE_LETTERS-th byte >= 0xC0 of the scan, of which `letters` lie before p: a stream
 * offset, so the scores do not depend on how the scan is split, and the scalar work is bounded. */
static void
det_score(const uint8_t *p, size_t n, unsigned prev, uint64_t letters, jobq__letters_det *d)
{
    unsigned a0, a1, b0, b1, b;
    size_t i;

    a0 = det_letter(prev, 0);
    a1 = det_letter(prev, 1);
    for (i = 0; i < n && letters < DET_SCORE_LETTERS; i++) {
        /* ASCII after a non-letter costs nothing: skip it (text with a little Cyrillic). The
         * flip test below needs no update: prev stays below 0xC0, as the skipped bytes are. */
        if (a0 == DET_NOT_LETTER && a1 == DET_NOT_LETTER) {
            i += first_high(p + i, n - i);
            if (i == n)
                break;
        }
        b = p[i];
        b0 = det_letter(b, 0);
        b1 = det_letter(b, 1);
        d->score[0] += pair_cost(a0, b0);
        d->score[1] += pair_cost(a1, b1);
        /* A small letter then a capital is rare in text and is what the wrong reading makes of
         * a capitalised word ("пРИВЕТ"): in cp1251 small is E0-FF, in koi8-r C0-DF. */
        if (prev >= 0xC0 && b >= 0xC0 && ((prev ^ b) & 0x20) != 0)
            d->score[prev >= 0xE0 ? 0 : 1] += DET_FLIP_BITS;
        letters += b >= 0xC0;
        a0 = b0;
        a1 = b1;
        prev = b;
    }
}

/* The detector's kernel scan: the vector versions are worth it because the letter counter runs it
 * over the first 64 KiB of every file, which for a tree of small files is a large share of all
 * bytes. */
static void
det_kernel(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX512)
    if (n >= 64 && jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX512)) {
        jobq__letters_det_avx512(p, n, prev, d);
        return;
    }
#endif
#if LETTERS_X86 && defined(JOBQ_LETTERS_HAVE_AVX2)
    if (n >= 64 && jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX2)) {
        jobq__letters_det_avx2(p, n, prev, d);
        return;
    }
#endif
    jobq__letters_det_scalar(p, n, prev, d);
}

/* The stream's scan of p[0, n), which continues the scan so far in *d. */
static void
det_scan(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
{
    det_score(p, n, prev[2], d->lower[0] + d->lower[1], d);
    det_kernel(p, n, prev, d);
}

/* The rules flag a byte by the bytes after it, so the last bytes of a scan (t[0..2], t[2] last,
 * zeros before the start) are judged only by what follows them. At the end of the input nothing
 * does: a sequence cut there is an error, the flag the rules give one more ASCII byte. At the end
 * of a sample or of the window more may follow, and only a last byte that every next byte would
 * flag is an error: C0, C1 and F5-FF start no UTF-8 sequence. */
static uint64_t
det_tail_errors(const uint8_t t[3], int at_end)
{
    static const uint8_t nul = 0;
    jobq__letters_det d;

    if (!at_end)
        return t[2] == 0xC0 || t[2] == 0xC1 || t[2] >= 0xF5;
    memset(&d, 0, sizeof(d));
    jobq__letters_det_scalar(&nul, 1, t, &d);
    return d.errors;
}

/* UTF-8 when at most one byte position in 32 bytes >= 0xC0 breaks its rules, or when valid UTF-8
 * Russian letters outnumber the breaks more than twice: a few stray bytes (a file cut
 * mid-character, a Latin-1 "é" beside a little Russian) do not make UTF-8 text cp1251, while
 * Russian text in a single-byte encoding breaks the rules at nearly every letter and holds a valid
 * UTF-8 letter once in a thousand breaks or less. */
static int
det_utf8(const jobq__letters_det *d)
{
    uint64_t leads = d->lower[0] + d->lower[1];

    return leads > 0 && (d->errors * 32 <= leads || d->utf8_letters > 2 * d->errors);
}

/* UTF-8 (det_utf8), else the cheaper reading of det_score() with the case allowance, then the
 * reading with more small letters, then cp1251. */
static jobq_letters_encoding
det_decide(const jobq__letters_det *d)
{
    int64_t margin;

    if (det_utf8(d))
        return JOBQ_LETTERS_UTF8;
    /* Bits by which cp1251 is the better reading (the scores stay far below 2^63). */
    margin = (int64_t)d->score[1] - (int64_t)d->score[0];
    if (d->lower[0] != d->lower[1])
        margin += d->lower[0] > d->lower[1] ? DET_CASE_BITS : -DET_CASE_BITS;
    if (margin != 0)
        return margin > 0 ? JOBQ_LETTERS_CP1251 : JOBQ_LETTERS_KOI8R;
    if (d->lower[0] != d->lower[1])
        return d->lower[0] > d->lower[1] ? JOBQ_LETTERS_CP1251 : JOBQ_LETTERS_KOI8R;
    return JOBQ_LETTERS_CP1251;
}

/* t[0..2] = the last three of p[0, n), zeros in front when n < 3. */
static void
last3(const uint8_t *p, size_t n, uint8_t t[3])
{
    size_t k = n < 3 ? n : 3;

    memset(t, 0, 3);
    memcpy(t + 3 - k, p + n - k, k);
}

/* A byte that text in cp1251 or koi8-r does not hold: a C0 control other than TAB, LF and CR. */
static int
is_control(unsigned b)
{
    return b < 0x20 && b != '\t' && b != '\n' && b != '\r';
}

/* The byte-order mark that the first n bytes h[] of an input show: UTF8, UTF16LE, UTF16BE, or
 * AUTO. FF FE and FE FF are also "яю" in cp1251 and "ЧЪ" in koi8-r, so they mean UTF-16 only when
 * the code unit after them has a control byte, as the first character of UTF-16 text nearly always
 * has (00 in ASCII and Latin-1, 04 in Cyrillic, 10-1F in the dashes and quotes U+2010-201F) and
 * text in those encodings never does, or when the input ends right after the mark (end: nothing
 * follows h[n - 1]). Before the end, AUTO for such a mark means "not yet", up to n == 4. */
static jobq_letters_encoding
bom_encoding(const unsigned char *h, size_t n, int end)
{
    jobq_letters_encoding u16;

    if (n >= 3 && h[0] == 0xEF && h[1] == 0xBB && h[2] == 0xBF)
        return JOBQ_LETTERS_UTF8;
    if (n >= 2 && h[0] == 0xFF && h[1] == 0xFE)
        u16 = JOBQ_LETTERS_UTF16LE;
    else if (n >= 2 && h[0] == 0xFE && h[1] == 0xFF)
        u16 = JOBQ_LETTERS_UTF16BE;
    else
        return JOBQ_LETTERS_AUTO;
    if ((n >= 3 && is_control(h[2])) || (n >= 4 && is_control(h[3])) || (n == 2 && end))
        return u16;
    return JOBQ_LETTERS_AUTO;
}

/* at_end: nothing follows buf[len - 1] (see det_tail_errors). */
static jobq_letters_encoding
detect(const void *buf, size_t len, int at_end)
{
    static const uint8_t zeros[3] = {0, 0, 0};
    jobq__letters_det d;
    const uint8_t *p;
    jobq_letters_encoding enc;
    uint8_t t[3];
    size_t i;

    p = (const uint8_t *)buf;
    if (p == NULL)
        return JOBQ_LETTERS_AUTO;
    enc = bom_encoding(p, len, 1);
    if (enc != JOBQ_LETTERS_AUTO)
        return enc;
    i = first_high(p, len);
    if (i == len)
        return JOBQ_LETTERS_AUTO;
    /* Every byte before i is ASCII, which the rules treat like the zeros of a fresh start. */
    memset(&d, 0, sizeof(d));
    det_kernel(p + i, len - i, zeros, &d);
    /* A sample's end is a cut (more may follow); the whole input's end is the end. */
    last3(p, len, t);
    d.errors += det_tail_errors(t, at_end);
    /* Scores are for single-byte text only: UTF-8, the common case, need not pay for them. */
    if (!det_utf8(&d))
        det_score(p + i, len - i, 0, 0, &d);
    return det_decide(&d);
}

jobq_letters_encoding
jobq_letters_detect(const void *buf, size_t len)
{
    return detect(buf, len, 0);
}

jobq_letters_encoding
jobq_letters_detect_all(const void *buf, size_t len)
{
    return detect(buf, len, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Streaming                                                                                   */
/* ------------------------------------------------------------------------------------------ */

void
jobq_letters_init(jobq_letters_state *st, jobq_letters_encoding enc)
{
    memset(st, 0, sizeof(*st));
    st->enc = enc;
    st->decided = enc != JOBQ_LETTERS_AUTO;
    st->prev_letter = -1;
    st->skip_bom = 1;
    st->det_first_high = UINT64_MAX;
}

/* UTF-8 events that start in w[0, tlen) and end in w[tlen, wlen): the seam between the stream's
 * last bytes and a new buffer (or a range's look-ahead). */
static void
stitch(const uint8_t *w, size_t tlen, size_t wlen, jobq__letters_raw *raw)
{
    size_t s;
    unsigned l;

    for (s = 0; s < tlen; s++) {
        l = s + 1 < wlen ? jobq__letters_utf8_pair(w[s], w[s + 1]) : 0;
        if (l != 0 && s + 1 >= tlen) {
            if (l >= 0xC0)
                raw->bin[l & 0x1F]++;
            else
                raw->yo++;
        }
        if (l != 0 && s + 3 < wlen && s + 3 >= tlen && w[s + 2] == 0xCC) {
            if (w[s + 3] == 0x86 && (l | 0x20) == 0xE8)
                raw->comb_i++;
            else if (w[s + 3] == 0x88 && (l | 0x20) == 0xE5)
                raw->comb_e++;
        }
    }
}

/* UTF-8 counting of a buffer continuing the stream: seam, then the buffer, then the new tail
 * (the last 3 bytes of the stream) in st->pending. */
static void
utf8_stream(jobq_letters_state *st, const uint8_t *p, size_t n, jobq_letters_counts *c)
{
    jobq__letters_raw raw;
    uint8_t w[8];
    size_t h, keep;

    memset(&raw, 0, sizeof(raw));
    h = n < 3 ? n : 3;
    memcpy(w, st->pending, st->pending_len);
    memcpy(w + st->pending_len, p, h);
    stitch(w, st->pending_len, st->pending_len + h, &raw);
    if (n >= 2)
        run_kernel(stream_kernel(n), JOBQ_LETTERS_UTF8, p, n, &raw);
    add_raw(c, &raw, JOBQ_LETTERS_UTF8);
    if (n >= 3) {
        memcpy(st->pending, p + n - 3, 3);
        st->pending_len = 3;
    } else {
        keep = st->pending_len + n > 3 ? 3 - n : st->pending_len;
        memmove(st->pending, st->pending + st->pending_len - keep, keep);
        memcpy(st->pending + keep, p, n);
        st->pending_len = (unsigned)(keep + n);
    }
}

static void
decide(jobq_letters_state *st, jobq_letters_encoding enc)
{
    st->enc = enc;
    st->decided = 1;
    if (enc == JOBQ_LETTERS_CP1251)
        st->counts = st->alt[0];
    else if (enc == JOBQ_LETTERS_KOI8R)
        st->counts = st->alt[1];
    else if (enc != JOBQ_LETTERS_UTF8)
        memset(&st->counts, 0, sizeof(st->counts));
}

/* The detector's counts live in the public state struct (which cannot name private types). The
 * UTF-8 candidate's letter count is the kernels' utf8_letters over the same bytes (both count the
 * letters wholly inside them, and there are none before the first non-ASCII byte), so that one
 * need not be stored. */
static void
det_load(const jobq_letters_state *st, jobq__letters_det *d)
{
    d->errors = st->det_errors;
    d->utf8_letters = jobq_letters_total(&st->counts);
    d->score[0] = st->det_score[0];
    d->score[1] = st->det_score[1];
    d->lower[0] = st->det_lower[0];
    d->lower[1] = st->det_lower[1];
}

static void
det_store(jobq_letters_state *st, const jobq__letters_det *d)
{
    st->det_errors = d->errors;
    st->det_score[0] = d->score[0];
    st->det_score[1] = d->score[1];
    st->det_lower[0] = d->lower[0];
    st->det_lower[1] = d->lower[1];
}

/* at_end: the stream ends here (see det_tail_errors); its last bytes are the UTF-8 tail. */
static jobq_letters_encoding
det_decide_state(const jobq_letters_state *st, int at_end)
{
    jobq__letters_det d;
    uint8_t t[3];

    det_load(st, &d);
    last3(st->pending, st->pending_len, t);
    d.errors += det_tail_errors(t, at_end);
    return det_decide(&d);
}

/* Undecided: count every candidate over p[0, n), which lies before the decision point. */
static void
feed_undecided(jobq_letters_state *st, const uint8_t *p, size_t n)
{
    jobq__letters_det d;
    uint8_t prev[3];
    jobq__letters_raw raw;
    uint64_t koi_yo;
    size_t i, h;

    h = 0;
    if (st->det_first_high == UINT64_MAX) {
        h = first_high(p, n);
        if (h < n)
            st->det_first_high = st->bytes + h;
    }
    if (h < n) {
        /* The three stream bytes before p + h: the UTF-8 candidate's tail, zeros before it. */
        memset(prev, 0, sizeof(prev));
        if (h == 0)
            memcpy(prev + 3 - st->pending_len, st->pending, st->pending_len);
        det_load(st, &d);
        det_scan(p + h, n - h, prev, &d);
        det_store(st, &d);
        koi_yo = 0;
        for (i = h; i < n; i++)
            koi_yo += (p[i] | 0x10) == 0xB3;
        memset(&raw, 0, sizeof(raw));
        run_kernel(stream_kernel(n - h), JOBQ_LETTERS_CP1251, p + h, n - h, &raw);
        add_raw(&st->alt[0], &raw, JOBQ_LETTERS_CP1251);
        raw.yo = koi_yo;
        add_raw(&st->alt[1], &raw, JOBQ_LETTERS_KOI8R);
    }
    /* The UTF-8 candidate needs the seam bookkeeping even over ASCII. */
    utf8_stream(st, p, n, &st->counts);
}

int
jobq_letters_feed(jobq_letters_state *st, const void *buf, size_t len)
{
    const uint8_t *p;
    jobq__letters_raw raw;
    jobq_letters_encoding bom;
    uint64_t limit;
    uint8_t h[4];
    size_t n, hn;

    if (st == NULL || (buf == NULL && len > 0))
        return JOBQ_EINVAL;
    p = (const uint8_t *)buf;
    while (len > 0) {
        if (st->enc == JOBQ_LETTERS_UTF16LE || st->enc == JOBQ_LETTERS_UTF16BE ||
            (unsigned)st->enc >= JOBQ_LETTERS_ENCODING_COUNT)
            return JOBQ_EINVAL;
        if (!st->decided && st->bytes < 4) {
            /* Byte by byte until the BOM question is settled: a UTF-8 mark takes 3 bytes, a
             * UTF-16 one the code unit after it as well (head[] holds 3, p[0] is the 4th). */
            n = 1;
            memcpy(h, st->head, st->head_len);
            h[st->head_len] = p[0];
            hn = st->head_len + 1;
            if (st->head_len < sizeof(st->head))
                st->head[st->head_len++] = p[0];
            bom = bom_encoding(h, hn, 0);
            feed_undecided(st, p, n);
            st->bytes += n;
            if (bom != JOBQ_LETTERS_AUTO)
                decide(st, bom);
            if (bom == JOBQ_LETTERS_UTF16LE || bom == JOBQ_LETTERS_UTF16BE)
                return JOBQ_EINVAL;
        } else if (!st->decided) {
            n = len;
            if (st->det_first_high != UINT64_MAX) {
                limit = st->det_first_high + JOBQ_LETTERS_DETECT_WINDOW;
                if (limit - st->bytes < n)
                    n = (size_t)(limit - st->bytes);
            }
            feed_undecided(st, p, n);
            st->bytes += n;
            if (st->det_first_high != UINT64_MAX &&
                st->bytes >= st->det_first_high + JOBQ_LETTERS_DETECT_WINDOW)
                decide(st, det_decide_state(st, 0));
        } else {
            n = len;
            if (st->enc == JOBQ_LETTERS_UTF8) {
                utf8_stream(st, p, n, &st->counts);
            } else {
                memset(&raw, 0, sizeof(raw));
                run_kernel(stream_kernel(n), st->enc, p, n, &raw);
                add_raw(&st->counts, &raw, st->enc);
            }
            st->bytes += n;
        }
        p += n;
        len -= n;
    }
    return 0;
}

/* Count the UTF-8 events that start in the stream's tail and end in look[0, n) (bytes after a
 * range's end): they belong to the range. Only the UTF-8 counts can change. Under AUTO the
 * input goes on past the range, so the look-ahead settles a BOM that waited for its code unit,
 * and the detector takes the range's end for a cut, not for the end (det_tail_errors). Returns
 * JOBQ_EINVAL for UTF-16, as jobq_letters_feed does. */
static int
feed_lookahead(jobq_letters_state *st, const uint8_t *look, size_t n)
{
    jobq__letters_raw raw;
    jobq_letters_encoding bom;
    uint8_t w[8];
    size_t k;

    if (n > 3)
        n = 3;
    if (!st->decided && st->bytes > 0 && st->bytes < 4) {
        /* head[] holds the whole range; 4 bytes in all, or the file ends before. */
        k = 4 - st->head_len < n ? 4 - st->head_len : n;
        memcpy(w, st->head, st->head_len);
        memcpy(w + st->head_len, look, k);
        bom = bom_encoding(w, st->head_len + k, 1);
        if (bom != JOBQ_LETTERS_AUTO)
            decide(st, bom);
        if (bom == JOBQ_LETTERS_UTF16LE || bom == JOBQ_LETTERS_UTF16BE)
            return JOBQ_EINVAL;
    }
    if (!st->decided && st->det_first_high != UINT64_MAX)
        decide(st, det_decide_state(st, 0));
    if (st->enc != JOBQ_LETTERS_UTF8 && st->enc != JOBQ_LETTERS_AUTO)
        return 0;
    if (st->enc == JOBQ_LETTERS_AUTO && st->det_first_high == UINT64_MAX)
        return 0;
    memset(&raw, 0, sizeof(raw));
    memcpy(w, st->pending, st->pending_len);
    memcpy(w + st->pending_len, look, n);
    stitch(w, st->pending_len, st->pending_len + n, &raw);
    add_raw(&st->counts, &raw, JOBQ_LETTERS_UTF8);
    return 0;
}

jobq_letters_encoding
jobq_letters_finish(jobq_letters_state *st, jobq_letters_yo yo, jobq_letters_counts *ret_counts)
{
    jobq_letters_encoding bom;
    jobq_letters_counts c;

    if (!st->decided && st->bytes == st->head_len) {
        /* At most 3 bytes in all: a UTF-16 mark with nothing after it is one. */
        bom = bom_encoding(st->head, st->head_len, 1);
        if (bom != JOBQ_LETTERS_AUTO)
            decide(st, bom);
    }
    if (!st->decided && st->det_first_high != UINT64_MAX)
        decide(st, det_decide_state(st, 1));
    if (!st->decided || st->enc == JOBQ_LETTERS_UTF16LE || st->enc == JOBQ_LETTERS_UTF16BE)
        memset(&c, 0, sizeof(c));
    else
        c = st->counts;
    if (yo == JOBQ_LETTERS_YO_MERGE) {
        c.n[L_E] += c.n[L_YO];
        c.n[L_YO] = 0;
    } else if (yo == JOBQ_LETTERS_YO_IGNORE) {
        c.n[L_YO] = 0;
    }
    if (ret_counts != NULL)
        *ret_counts = c;
    return st->enc;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static ssize_t
pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t r;

    do
        r = pread(fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r;
}

/* count_fd and count_fd_from: [begin, end) of fd, of which the first head_len bytes are already
 * in buf (the caller's, block_size bytes; NULL: allocate one here); look-ahead past `end` only
 * for a range (lookahead != 0). */
static int
count_range(int fd, uint8_t *buf, size_t head_len, uint64_t begin, uint64_t end,
            jobq_letters_encoding enc, jobq_letters_yo yo, size_t block_size, int lookahead,
            jobq_letters_result *result)
{
    jobq_letters_state st;
    uint8_t *own = NULL;
    uint8_t look[3];
    uint64_t off, want;
    ssize_t r;
    int err, first;

    if (result == NULL)
        return JOBQ_EINVAL;
    memset(result, 0, sizeof(*result));
    result->enc = enc;
    if (fd < 0 || begin > end || (unsigned)enc >= JOBQ_LETTERS_ENCODING_COUNT ||
        (enc == JOBQ_LETTERS_AUTO && begin > 0) || (unsigned)yo > JOBQ_LETTERS_YO_IGNORE ||
        head_len > end - begin || (buf != NULL && (block_size == 0 || head_len > block_size)) ||
        (sizeof(off_t) < 8 && end != UINT64_MAX && end > (uint64_t)INT32_MAX)) {
        result->err = JOBQ_EINVAL;
        return result->err;
    }
    if (buf == NULL) {
        if (block_size == 0)
            block_size = 256 * 1024;
        buf = own = malloc(block_size);
        if (buf == NULL) {
            result->err = JOBQ_ENOMEM;
            return result->err;
        }
    }
    jobq_letters_init(&st, enc);
    err = 0;
    first = 1;
    off = begin;
    if (head_len > 0) {
        result->binary = memchr(buf, 0, head_len) != NULL;
        first = 0;
        if (jobq_letters_feed(&st, buf, head_len) != 0)
            err = JOBQ_EINVAL; /* UTF-16: unsupported */
        off += head_len;
    }
    while (err == 0 && off < end) {
        want = end - off < block_size ? end - off : block_size;
        r = pread_full(fd, buf, (size_t)want, off);
        if (r < 0) {
            err = -errno;
            break;
        }
        if (r == 0) {
            if (end != UINT64_MAX)
                err = JOBQ_EIO; /* the file is shorter than the range: it shrank */
            break;
        }
        if (first && memchr(buf, 0, (size_t)r) != NULL)
            result->binary = 1;
        first = 0;
        if (jobq_letters_feed(&st, buf, (size_t)r) != 0)
            err = JOBQ_EINVAL; /* UTF-16: unsupported */
        off += (uint64_t)r;
    }
    if (err == 0 && lookahead && end != UINT64_MAX) {
        r = pread_full(fd, look, sizeof(look), end);
        if (r > 0 && feed_lookahead(&st, look, (size_t)r) != 0)
            err = JOBQ_EINVAL; /* UTF-16: unsupported */
    }
    free(own);
    result->enc = jobq_letters_finish(&st, yo, &result->counts);
    result->bytes = off - begin;
    result->err = err;
    return err;
}

int
jobq_letters_count_fd(int fd, uint64_t begin, uint64_t end, jobq_letters_encoding enc,
                      jobq_letters_yo yo, size_t block_size, jobq_letters_result *result)
{
    return count_range(fd, NULL, 0, begin, end, enc, yo, block_size, 1, result);
}

int
jobq_letters_count_fd_from(int fd, void *buf, size_t buf_size, size_t head_len, uint64_t end,
                           jobq_letters_encoding enc, jobq_letters_yo yo,
                           jobq_letters_result *result)
{
    if (buf == NULL)
        return result != NULL ? (result->err = JOBQ_EINVAL) : JOBQ_EINVAL;
    return count_range(fd, buf, head_len, 0, end, enc, yo, buf_size, 0, result);
}
