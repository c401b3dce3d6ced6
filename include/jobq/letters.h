/*
 * jobq/letters.h - the letter-counting job: how often each of the 33 Russian letters occurs.
 *
 * A client of the public jobq API only (it is not part of libjobq's core). Three layers:
 *   1. a streaming counter (jobq_letters_state): feed it blocks of any size, in order; letters
 *      split across blocks are counted once; memory is constant;
 *   2. encoding detection (UTF-8 / cp1251 / koi8-r, BOMs);
 *   3. file-level helpers that read a whole file or a byte range of it in bounded blocks, so that
 *      counting any partition of a file into ranges and summing gives exactly the whole-file count.
 *
 * Letters are indexed alphabetically with ё in 7th place:
 *   а б в г д е ё ж з и й к л м н о п р с т у ф х ц ч ш щ ъ ы ь э ю я   (index 0..32)
 * Upper and lower case are folded. Decomposed й (и + U+0306) and ё (е + U+0308) count as й / ё.
 * Everything else (Latin look-alikes, Ukrainian і ї є ґ, Belarusian ў, pre-reform ѣ, invalid
 * bytes) is not a letter.
 */
#ifndef JOBQ_LETTERS_H
#define JOBQ_LETTERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jobq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JOBQ_LETTERS_COUNT 33
#define JOBQ_LETTERS_YO_INDEX 6

typedef enum jobq_letters_encoding {
    JOBQ_LETTERS_AUTO = 0, /* decide per input: see jobq_letters_state */
    JOBQ_LETTERS_UTF8,
    JOBQ_LETTERS_CP1251,
    JOBQ_LETTERS_KOI8R,
    JOBQ_LETTERS_UTF16LE, /* recognised by BOM only */
    JOBQ_LETTERS_UTF16BE, /* recognised by BOM only */
    JOBQ_LETTERS_ENCODING_COUNT
} jobq_letters_encoding;

/* How ё is reported. The counter always counts ё separately; these apply in _finish. */
typedef enum jobq_letters_yo {
    JOBQ_LETTERS_YO_SEPARATE = 0, /* 33 letters */
    JOBQ_LETTERS_YO_MERGE,        /* ё added to е, ё reported as 0 */
    JOBQ_LETTERS_YO_IGNORE,       /* ё dropped (the 32 letters а..я), reported as 0 */
} jobq_letters_yo;

/* "utf-8", "cp1251", "koi8-r", "utf-16le", "utf-16be", "auto"; NULL for out-of-range values. */
const char *jobq_letters_encoding_name(jobq_letters_encoding enc);
/* Parse the names above (case-insensitive; also "utf8", "windows-1251", "koi8r").
 * Returns 0 or JOBQ_EINVAL. */
int jobq_letters_encoding_parse(const char *name, jobq_letters_encoding *ret_enc);
/* UTF-8 spelling of letter i (lower case), e.g. "а"; NULL when out of range. */
const char *jobq_letters_name(unsigned i);

typedef struct jobq_letters_counts {
    uint64_t n[JOBQ_LETTERS_COUNT];
} jobq_letters_counts;

/* Sum of all 33 entries. */
uint64_t jobq_letters_total(const jobq_letters_counts *c);
/* dst += src. */
void jobq_letters_add(jobq_letters_counts *dst, const jobq_letters_counts *src);

/*
 * Streaming counter, caller-allocated (put it on the stack or in per-worker state).
 * With JOBQ_LETTERS_AUTO, the state stays undecided while only ASCII has been seen (ASCII holds
 * no Russian letters in any supported encoding). A UTF-8 BOM decides UTF-8 at once. FF FE / FE FF as
 * the first two bytes decide UTF-16 (unsupported: _feed returns JOBQ_EINVAL from then on) only
 * when the code unit after them holds a C0 control byte other than TAB, LF or CR, as UTF-16
 * ASCII, Latin-1, Cyrillic and U+2010-201F do, or when the input ends right after them;
 * otherwise they are "яю" (cp1251) or "ЧЪ" (koi8-r) and detection goes on. Otherwise the state
 * counts every candidate interpretation in parallel and decides JOBQ_LETTERS_DETECT_WINDOW bytes
 * after the first non-ASCII byte (or at _finish): UTF-8 if at most one byte breaks UTF-8's rules
 * per 32 bytes >= 0xC0, or if valid UTF-8 Russian letters outnumber the breaks more than twice
 * (a sequence cut by the end of the window does not count, one cut by the end of the input
 * does, and a last byte C0, C1 or F5-FF always does); else cp1251 vs koi8-r by a case-folded
 * letter-pair model over the first 256 letters, so text in capitals is detected too, with the
 * case of the letters deciding very short samples. Because the decision point is a fixed stream
 * offset, the result never depends on how the input was split into _feed calls.
 * Invalid sequences are skipped without desynchronising the stream.
 * The fields are private; they are visible only so the struct can live on the stack.
 * Not thread-safe: one state per thread (states share nothing).
 */
typedef struct jobq_letters_state {
    jobq_letters_encoding enc; /* requested or decided; AUTO while undecided */
    int decided;
    int prev_letter;           /* index of the last letter counted, -1 if none (for U+0306/8) */
    unsigned char pending[8];  /* bytes of a sequence split across _feed calls */
    unsigned pending_len;
    unsigned skip_bom;         /* 1 while a leading BOM may still be skipped */
    uint64_t bytes;            /* bytes fed so far */
    jobq_letters_counts counts;
    /* Private AUTO-detection state (added; see letters.c). */
    jobq_letters_counts alt[2];   /* cp1251 and koi8-r interpretations while undecided */
    uint64_t det_first_high;      /* stream offset of the first non-ASCII byte, or UINT64_MAX */
    uint64_t det_errors;          /* byte positions that break UTF-8's rules */
    uint64_t det_score[2];        /* letter-pair cost in bits of the first 256 letters,
                                   * as cp1251 / as koi8-r */
    uint64_t det_lower[2];        /* bytes 0xE0-0xFF / 0xC0-0xDF (lower case in cp1251 / koi8-r) */
    unsigned char head[3];        /* first bytes of the stream (BOM check) */
    unsigned head_len;
} jobq_letters_state;

/* AUTO decides this many bytes after the first non-ASCII byte (see jobq_letters_state). */
#define JOBQ_LETTERS_DETECT_WINDOW 65536

/* Reset *st for a new input in encoding enc (AUTO allowed). */
void jobq_letters_init(jobq_letters_state *st, jobq_letters_encoding enc);
/* Count len bytes. Returns 0, or JOBQ_EINVAL for UTF-16 input (see above). */
int jobq_letters_feed(jobq_letters_state *st, const void *buf, size_t len);
/* End of input: a dangling partial sequence is invalid (not a letter). Writes the counts with
 * the yo rule applied and returns the (possibly still AUTO when all-ASCII) encoding. */
jobq_letters_encoding jobq_letters_finish(jobq_letters_state *st, jobq_letters_yo yo,
                                          jobq_letters_counts *ret_counts);

/*
 * One-shot counting of a buffer in a known encoding (UTF8/CP1251/KOI8R), using the fastest
 * kernel this CPU supports (AVX-512 / AVX2 / scalar, chosen once at run time). Adds to *counts.
 * Bytes of a multibyte sequence cut by the end of the buffer are not counted.
 */
void jobq_letters_count_buffer(jobq_letters_encoding enc, const void *buf, size_t len,
                               jobq_letters_counts *counts);

/* Kernels, for tests and benchmarks: JOBQ_LETTERS_KERNEL_BEST picks as count_buffer does. */
typedef enum jobq_letters_kernel {
    JOBQ_LETTERS_KERNEL_BEST = 0,
    JOBQ_LETTERS_KERNEL_SCALAR,
    JOBQ_LETTERS_KERNEL_AVX2,
    JOBQ_LETTERS_KERNEL_AVX512,
    JOBQ_LETTERS_KERNEL_COUNT
} jobq_letters_kernel;
/* 1 if the kernel can run on this CPU. */
int jobq_letters_kernel_supported(jobq_letters_kernel k);
const char *jobq_letters_kernel_name(jobq_letters_kernel k);
/* As count_buffer with a given kernel. Returns JOBQ_EINVAL if unsupported. */
int jobq_letters_count_buffer_with(jobq_letters_kernel k, jobq_letters_encoding enc,
                                   const void *buf, size_t len, jobq_letters_counts *counts);

/*
 * Detect the encoding of a sample (e.g. the first 64 KiB of a file) by the rules of the AUTO
 * state above. The sample may be the head of a longer input, so a multibyte sequence cut by its
 * end is not held against UTF-8 (a last byte C0, C1 or F5-FF is), and a UTF-16 mark with
 * nothing after it counts as UTF-16; only the stream (_finish, jobq_letters_count_fd_from)
 * knows where an input ends.
 * Returns AUTO when the sample is pure ASCII (nothing to decide), never fails. Thread-safe.
 */
jobq_letters_encoding jobq_letters_detect(const void *buf, size_t len);
/* As jobq_letters_detect, for a buffer that holds the whole input: a multibyte sequence cut by
 * its end is held against UTF-8, as the stream's _finish holds it (a lead byte at the very end
 * of a small cp1251 file is a letter). Thread-safe. */
jobq_letters_encoding jobq_letters_detect_all(const void *buf, size_t len);

/* Result of counting one file or range. */
typedef struct jobq_letters_result {
    jobq_letters_counts counts;
    jobq_letters_encoding enc; /* what was used (AUTO: the file held only ASCII) */
    uint64_t bytes;            /* bytes read */
    int err;                   /* 0, or negated errno / JOBQ_E* code of the failure */
    int binary;                /* 1 if a NUL byte was seen in the first block */
} jobq_letters_result;

/*
 * Count the bytes [begin, end) of an open file (end == UINT64_MAX: to EOF), reading with
 * pread() in blocks of block_size bytes (0 = 256 KiB), never the whole file. The range owns every
 * character whose first byte lies in it: it reads up to 3 bytes after `end` (nothing before
 * `begin`) to finish a character (or a combining mark following an и / е) that starts in the
 * range and straddles its end, so the counts over any partition of the file sum to the
 * whole-file count. enc must not be AUTO when
 * begin > 0 (detect once for the whole file first). The result's err is set on a read error or
 * when the file shrinks below `end` (JOBQ_EIO); counts read so far are kept. Ownership in
 * detail: a letter belongs to the range holding its first byte, and a decomposed й / ё to the
 * range holding the first byte of its и / е, so only look-ahead (at most 3 bytes past `end`) is
 * needed; a partition never counts a letter twice or makes a range's count negative.
 * Memory: one block buffer (malloc'd per call; JOBQ_ENOMEM if that fails). Thread-safe on
 * distinct or shared fds (pread only).
 * Returns result->err.
 */
int jobq_letters_count_fd(int fd, uint64_t begin, uint64_t end, jobq_letters_encoding enc,
                          jobq_letters_yo yo, size_t block_size, jobq_letters_result *result);

/*
 * The first `end` bytes of fd as one whole input (end == UINT64_MAX: to EOF), read into the
 * caller's buffer buf (buf_size bytes), which already holds the file's first head_len bytes
 * (e.g. read to detect the encoding): those are counted, not read again, reading goes on at
 * offset head_len, and buf is reused for every block, so nothing is allocated. No look-ahead past
 * `end`. Otherwise as jobq_letters_count_fd with begin = 0 (AUTO allowed). JOBQ_EINVAL also for
 * buf NULL, buf_size 0, head_len > buf_size or head_len > end. result->binary looks at the
 * head when head_len > 0.
 */
int jobq_letters_count_fd_from(int fd, void *buf, size_t buf_size, size_t head_len, uint64_t end,
                               jobq_letters_encoding enc, jobq_letters_yo yo,
                               jobq_letters_result *result);

#ifdef __cplusplus
}
#endif

#endif /* JOBQ_LETTERS_H */
