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

/* The detector's scan: the vector versions are worth it because the letter counter runs it over the
 * first 64 KiB of every file, which for a tree of small files is a large share of all bytes. */
static void
det_scan(const uint8_t *p, size_t n, const uint8_t prev[3], jobq__letters_det *d)
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

/* UTF-8 unless more than one byte position in 32 bytes >= 0xC0 breaks its rules: a few stray
 * bytes (a file cut mid-character, one bad byte) do not make UTF-8 text cp1251, while Russian
 * text in a single-byte encoding breaks them at nearly every letter (a lower-case letter is a
 * lead byte followed by another letter, not by a continuation). Otherwise cp1251 vs koi8-r by
 * which one makes more bytes the frequent lower-case letters, then by lower-case share. */
static jobq_letters_encoding
det_decide(const jobq__letters_det *d)
{
    uint64_t leads = d->lower[0] + d->lower[1];

    if (leads > 0 && d->errors * 32 <= leads)
        return JOBQ_LETTERS_UTF8;
    if (d->score[0] != d->score[1])
        return d->score[0] > d->score[1] ? JOBQ_LETTERS_CP1251 : JOBQ_LETTERS_KOI8R;
    if (d->lower[0] != d->lower[1])
        return d->lower[0] > d->lower[1] ? JOBQ_LETTERS_CP1251 : JOBQ_LETTERS_KOI8R;
    return JOBQ_LETTERS_CP1251;
}

static jobq_letters_encoding
bom_encoding(const unsigned char *h, size_t n)
{
    if (n >= 2 && h[0] == 0xFF && h[1] == 0xFE)
        return JOBQ_LETTERS_UTF16LE;
    if (n >= 2 && h[0] == 0xFE && h[1] == 0xFF)
        return JOBQ_LETTERS_UTF16BE;
    if (n >= 3 && h[0] == 0xEF && h[1] == 0xBB && h[2] == 0xBF)
        return JOBQ_LETTERS_UTF8;
    return JOBQ_LETTERS_AUTO;
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

jobq_letters_encoding
jobq_letters_detect(const void *buf, size_t len)
{
    static const uint8_t zeros[3] = {0, 0, 0};
    jobq__letters_det d;
    const uint8_t *p;
    jobq_letters_encoding enc;
    size_t i;

    p = (const uint8_t *)buf;
    if (p == NULL)
        return JOBQ_LETTERS_AUTO;
    enc = bom_encoding(p, len);
    if (enc != JOBQ_LETTERS_AUTO)
        return enc;
    i = first_high(p, len);
    if (i == len)
        return JOBQ_LETTERS_AUTO;
    /* Every byte before i is ASCII, which the rules treat like the zeros of a fresh start. */
    memset(&d, 0, sizeof(d));
    det_scan(p + i, len - i, zeros, &d);
    return det_decide(&d);
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

/* The detector's counts live in the public state struct (which cannot name private types). */
static void
det_load(const jobq_letters_state *st, jobq__letters_det *d)
{
    d->errors = st->det_errors;
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

static jobq_letters_encoding
det_decide_state(const jobq_letters_state *st)
{
    jobq__letters_det d;

    det_load(st, &d);
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
    size_t n;

    if (st == NULL || (buf == NULL && len > 0))
        return JOBQ_EINVAL;
    p = (const uint8_t *)buf;
    while (len > 0) {
        if (st->enc == JOBQ_LETTERS_UTF16LE || st->enc == JOBQ_LETTERS_UTF16BE ||
            (unsigned)st->enc >= JOBQ_LETTERS_ENCODING_COUNT)
            return JOBQ_EINVAL;
        if (!st->decided && st->head_len < 3) {
            /* Byte by byte until the BOM question is settled (at most 3 bytes). */
            n = 1;
            st->head[st->head_len++] = p[0];
            bom = bom_encoding(st->head, st->head_len);
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
                decide(st, det_decide_state(st));
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
 * range's end): they belong to the range. Only the UTF-8 counts can change. */
static void
feed_lookahead(jobq_letters_state *st, const uint8_t *look, size_t n)
{
    jobq__letters_raw raw;
    uint8_t w[8];

    if (n > 3)
        n = 3;
    if (st->enc != JOBQ_LETTERS_UTF8 && st->enc != JOBQ_LETTERS_AUTO)
        return;
    if (st->enc == JOBQ_LETTERS_AUTO && st->det_first_high == UINT64_MAX)
        return;
    memset(&raw, 0, sizeof(raw));
    memcpy(w, st->pending, st->pending_len);
    memcpy(w + st->pending_len, look, n);
    stitch(w, st->pending_len, st->pending_len + n, &raw);
    add_raw(&st->counts, &raw, JOBQ_LETTERS_UTF8);
}

jobq_letters_encoding
jobq_letters_finish(jobq_letters_state *st, jobq_letters_yo yo, jobq_letters_counts *ret_counts)
{
    jobq_letters_counts c;

    if (!st->decided && st->det_first_high != UINT64_MAX) {
        decide(st, det_decide_state(st));
    }
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
        if (r > 0)
            feed_lookahead(&st, look, (size_t)r);
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
