/*
 * bench-letters.c - how fast is each letter-counting kernel, relative to just reading the bytes?
 *
 * Builds a file of >= 256 MiB (JOBQ_BENCH_MB) in a temp dir by repeating the corpus texts
 * (../shared/corpus/ru, or /usr/share/games/fortunes/ru when absent) in a fixed order, once per
 * encoding (UTF-8, and cp1251 / koi8-r via iconv(3) with unconvertible characters replaced).
 * In the same run, single thread, page cache warm (each file is read once before timing), one
 * CSV row per measurement, named by its first column:
 *   read           read() into a 256 KiB buffer and discard (the peer every ratio refers to);
 *   count_fd       jobq_letters_count_fd with the file's encoding given, the best kernel the
 *                  CPU supports (kernel column "best": what jobq-letters users get);
 *   count_fd_auto  the same with JOBQ_LETTERS_AUTO: the encoding detected, then counted;
 *   memory         jobq_letters_count_buffer_with(k) over the file already in memory, one row
 *                  per kernel k the CPU supports (kernel column: its name);
 *   cached         the same kernels over one 256 KiB block counted again and again (as many
 *                  bytes as the file): L2-resident data, like count_fd's blocks (its read()
 *                  ratio scales the file's read time to those bytes);
 *   fgetc          a naive fgetc() + switch counter (cp1251 only; the exercise's C baseline).
 * Each measurement is the best of JOBQ_BENCH_REPS (3) runs. Prints '#' lines (bench.h: cores,
 * compiler, build type, commit, date), then CSV:
 *   name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read
 *
 * Usage: bench-letters [--help]; settings come from the environment (see usage()), each
 * checked strictly: a typo or 0 is an error (exit 2), not a silent default or an empty run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>
#include <jobq/letters.h>

#include "../bench.h"

#ifndef JOBQ_CORPUS_DIR
#define JOBQ_CORPUS_DIR "../shared/corpus"
#endif

/* Bounds on the environment settings: three files of MB MiB go to /tmp and one is loaded into
 * memory, so 16 GiB is already far past a sensible run; the reps bound only catches typos. */
#define MB_DEFAULT 256
#define MB_MAX 16384
#define REPS_DEFAULT 3
#define REPS_MAX 1000

static void
usage(FILE *f)
{
    fprintf(f, "usage: bench-letters [--help]\n"
               "Letter counting per kernel and encoding as GB/s and as a ratio to read() of the "
               "same file,\n1 thread, page cache warm. Prints '#' lines, then CSV:\n"
               "  name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read\n"
               "Environment:\n"
               "  JOBQ_BENCH_MB     MiB of text per encoding, 1..%d (default %d)\n"
               "  JOBQ_BENCH_REPS   runs per measurement, the best is reported, 1..%d "
               "(default %d)\n"
               "  JOBQ_CORPUS_DIR   corpus root holding ru/ (default %s; "
               "else /usr/share/games/fortunes/ru)\n"
               "  JOBQ_BENCH_KEEP   if set, keep the UTF-8 file and print its path\n"
               "Exit status: 0 done; 1 I/O error; 2 bad argument or setting; 77 no Russian "
               "text.\n",
            MB_MAX, MB_DEFAULT, REPS_MAX, REPS_DEFAULT, JOBQ_CORPUS_DIR);
}

/* A positive decimal integer <= max from environment variable `name`, or def when unset;
 * anything else is a usage error (bench_parse_range: exits 2 naming the variable - a silent
 * fallback would publish rows measured with settings nobody asked for). */
static unsigned long
env_count(const char *name, unsigned long def, unsigned long max)
{
    const char *s = getenv(name);

    return s == NULL ? def : (unsigned long)bench_parse_range("bench-letters", name, s, 1, max);
}

static int
open_in(const char *path)
{
    int fd;

    fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "bench-letters: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

/* Read exactly len bytes: one read() stops at 2 GiB on Linux, and JOBQ_BENCH_MB may exceed it. */
static int
read_full(int fd, char *buf, size_t len)
{
    ssize_t r;

    while (len > 0) {
        r = read(fd, buf, len);
        if (r <= 0)
            return -1;
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Concatenate the regular files of dir (sorted by name) into a malloc'd buffer. */
static char *
load_dir(const char *dir, size_t *ret_len)
{
    DIR *d;
    struct dirent *e;
    char *names[4096], path[4096], *buf;
    size_t n, len, cap, i;
    FILE *f;
    size_t r;

    d = opendir(dir);
    if (d == NULL)
        return NULL;
    n = 0;
    while ((e = readdir(d)) != NULL && n < 4096)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    cap = 1 << 20;
    buf = malloc(cap);
    len = 0;
    for (i = 0; i < n; i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        free(names[i]);
        f = fopen(path, "rb");
        if (f == NULL)
            continue;
        for (;;) {
            if (cap - len < 65536) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            r = fread(buf + len, 1, cap - len, f);
            if (r == 0)
                break;
            len += r;
        }
        fclose(f);
    }
    *ret_len = len;
    return buf;
}

static char *
convert(const char *src, size_t len, const char *to, size_t *ret_len)
{
    iconv_t cd;
    char *in, *out, *o;
    size_t inleft, outleft;

    cd = iconv_open(to, "UTF-8");
    out = malloc(len + 1);
    if (cd == (iconv_t)-1 || out == NULL) {
        fprintf(stderr, "bench-letters: cannot convert the text to %s\n", to);
        exit(1);
    }
    in = (char *)(uintptr_t)src;
    inleft = len;
    o = out;
    outleft = len + 1;
    while (inleft > 0) {
        if (iconv(cd, &in, &inleft, &o, &outleft) != (size_t)-1)
            break;
        *o++ = '?';
        outleft--;
        do {
            in++;
            inleft--;
        } while (inleft > 0 && ((unsigned char)*in & 0xC0) == 0x80);
    }
    iconv_close(cd);
    *ret_len = (size_t)(o - out);
    return out;
}

/* Write text repeated up to at least want bytes; returns the size. */
static uint64_t
write_repeated(const char *path, const char *text, size_t len, uint64_t want)
{
    FILE *f;
    uint64_t done;

    f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "bench-letters: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    /* A short file (disk full) would be timed as if it had `want` bytes: fail instead. */
    for (done = 0; done < want; done += len)
        if (fwrite(text, 1, len, f) != len)
            break;
    if (fclose(f) != 0 || done < want) {
        fprintf(stderr, "bench-letters: writing %s failed\n", path);
        exit(1);
    }
    return done;
}

static double
time_read(const char *path)
{
    static char buf[256 * 1024];
    double t0;
    int fd;

    fd = open_in(path);
    t0 = now();
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    t0 = now() - t0;
    close(fd);
    return t0;
}

static double
time_fd(const char *path, jobq_letters_encoding enc, uint64_t *total)
{
    jobq_letters_result r;
    double t0;
    int fd;

    fd = open_in(path);
    t0 = now();
    (void)jobq_letters_count_fd(fd, 0, UINT64_MAX, enc, JOBQ_LETTERS_YO_SEPARATE, 0, &r);
    t0 = now() - t0;
    close(fd);
    *total = jobq_letters_total(&r.counts);
    return t0;
}

/* The exercise's naive C: fgetc and a switch on the byte. */
static double
time_fgetc(const char *path, uint64_t *total)
{
    uint64_t n[256];
    FILE *f;
    int c;
    double t0;
    unsigned b;

    memset(n, 0, sizeof(n));
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench-letters: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    t0 = now();
    while ((c = fgetc(f)) != EOF)
        n[c]++;
    t0 = now() - t0;
    fclose(f);
    *total = 0;
    for (b = 0xC0; b < 0x100; b++)
        *total += n[b];
    *total += n[0xA8] + n[0xB8];
    return t0;
}

int
main(int argc, char **argv)
{
    static const struct {
        jobq_letters_encoding enc;
        const char *iconv;
        const char *tag;
    } encs[] = {{JOBQ_LETTERS_UTF8, NULL, "utf-8"},
                {JOBQ_LETTERS_CP1251, "CP1251", "cp1251"},
                {JOBQ_LETTERS_KOI8R, "KOI8-R", "koi8-r"}};
    const char *src_dir, *env;
    char dir[] = "/tmp/bench-letters-XXXXXX", path[3][4096], corpus[4096], what[128];
    char *text, *conv, *mem;
    size_t tlen, clen;
    uint64_t want, size[3], total, t_ref;
    double t, best, t_read[3];
    unsigned e, k, rep, reps;
    jobq_letters_counts c;
    int fd, i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "bench-letters: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    /* Settings first: a bad one must not cost a corpus load and 3 files in /tmp. */
    want = (uint64_t)env_count("JOBQ_BENCH_MB", MB_DEFAULT, MB_MAX) << 20;
    reps = (unsigned)env_count("JOBQ_BENCH_REPS", REPS_DEFAULT, REPS_MAX);
    env = getenv("JOBQ_CORPUS_DIR");
    (void)snprintf(corpus, sizeof(corpus), "%s/ru", env != NULL ? env : JOBQ_CORPUS_DIR);
    src_dir = corpus;
    text = load_dir(src_dir, &tlen);
    if (text == NULL || tlen == 0) {
        src_dir = "/usr/share/games/fortunes/ru";
        text = load_dir(src_dir, &tlen);
    }
    if (text == NULL || tlen == 0) {
        fprintf(stderr, "bench-letters: no Russian text (corpus or fortunes-ru)\n");
        return 77;
    }
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench-letters: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* Compiler and build type come from the build (bench/meson.build's BENCH_COMPILER and
     * BENCH_BUILDTYPE): NDEBUG says nothing about -Dbuildtype, which does not define it. */
    (void)snprintf(what, sizeof(what),
                   "bench-letters: letter counting, 1 thread, page cache warm, best of %u", reps);
    bench_print_env(what, NULL);
    printf("# text: %s (%zu bytes) repeated to >= %llu MiB per encoding in %s\n", src_dir, tlen,
           (unsigned long long)(want >> 20), dir);
    printf("# kernels: avx2 %s, avx512 %s\n",
           jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX2) ? "yes" : "no",
           jobq_letters_kernel_supported(JOBQ_LETTERS_KERNEL_AVX512) ? "yes" : "no");
    for (e = 0; e < 3; e++) {
        (void)snprintf(path[e], sizeof(path[e]), "%s/text.%s", dir, encs[e].tag);
        conv = encs[e].iconv != NULL ? convert(text, tlen, encs[e].iconv, &clen) : text;
        if (encs[e].iconv == NULL)
            clen = tlen;
        size[e] = write_repeated(path[e], conv, clen, want);
        if (conv != text)
            free(conv);
        (void)time_read(path[e]); /* warm the page cache */
    }
    printf("name,encoding,kernel,bytes,seconds,gb_per_s,ratio_to_read\n");
    for (e = 0; e < 3; e++) {
        best = 1e9;
        for (rep = 0; rep < reps; rep++)
            if ((t = time_read(path[e])) < best)
                best = t;
        t_read[e] = best;
        printf("read,%s,-,%llu,%.4f,%.3f,1.000\n", encs[e].tag, (unsigned long long)size[e],
               best, (double)size[e] / best / 1e9);
        best = 1e9;
        t_ref = 0;
        for (rep = 0; rep < reps; rep++)
            if ((t = time_fd(path[e], encs[e].enc, &t_ref)) < best)
                best = t;
        printf("count_fd,%s,best,%llu,%.4f,%.3f,%.3f\n", encs[e].tag,
               (unsigned long long)size[e], best, (double)size[e] / best / 1e9, t_read[e] / best);
        best = 1e9;
        for (rep = 0; rep < reps; rep++)
            if ((t = time_fd(path[e], JOBQ_LETTERS_AUTO, &total)) < best)
                best = t;
        if (total != t_ref)
            fprintf(stderr, "bench-letters: AUTO total %llu != %llu\n",
                    (unsigned long long)total, (unsigned long long)t_ref);
        printf("count_fd_auto,%s,best,%llu,%.4f,%.3f,%.3f\n", encs[e].tag,
               (unsigned long long)size[e], best, (double)size[e] / best / 1e9, t_read[e] / best);
        /* In-memory kernels over the same bytes. */
        mem = malloc((size_t)size[e]);
        fd = open_in(path[e]);
        if (mem == NULL || read_full(fd, mem, (size_t)size[e]) != 0) {
            fprintf(stderr, "bench-letters: cannot load %s\n", path[e]);
            return 1;
        }
        close(fd);
        for (k = JOBQ_LETTERS_KERNEL_SCALAR; k < JOBQ_LETTERS_KERNEL_COUNT; k++) {
            if (!jobq_letters_kernel_supported((jobq_letters_kernel)k))
                continue;
            best = 1e9;
            for (rep = 0; rep < reps; rep++) {
                memset(&c, 0, sizeof(c));
                t = now();
                (void)jobq_letters_count_buffer_with((jobq_letters_kernel)k, encs[e].enc, mem,
                                                     (size_t)size[e], &c);
                t = now() - t;
                if (t < best)
                    best = t;
            }
            if (jobq_letters_total(&c) != t_ref)
                fprintf(stderr, "bench-letters: kernel %s total differs\n",
                        jobq_letters_kernel_name((jobq_letters_kernel)k));
            printf("memory,%s,%s,%llu,%.4f,%.3f,%.3f\n", encs[e].tag,
                   jobq_letters_kernel_name((jobq_letters_kernel)k), (unsigned long long)size[e],
                   best, (double)size[e] / best / 1e9, t_read[e] / best);
        }
        /* The same kernels on one 256 KiB block counted over and over (as many bytes as the
         * file, rounded down): the block stays in L2, as count_fd's blocks do, where streaming
         * the whole file from DRAM ranks the kernels differently on some CPUs. */
        for (k = JOBQ_LETTERS_KERNEL_SCALAR; k < JOBQ_LETTERS_KERNEL_COUNT; k++) {
            const size_t blk = (size_t)256 << 10;
            size_t passes = (size_t)(size[e] / blk), pass;

            if (!jobq_letters_kernel_supported((jobq_letters_kernel)k) || passes == 0)
                continue;
            best = 1e9;
            for (rep = 0; rep < reps; rep++) {
                memset(&c, 0, sizeof(c));
                t = now();
                for (pass = 0; pass < passes; pass++)
                    (void)jobq_letters_count_buffer_with((jobq_letters_kernel)k, encs[e].enc,
                                                         mem, blk, &c);
                t = now() - t;
                if (t < best)
                    best = t;
            }
            printf("cached,%s,%s,%llu,%.4f,%.3f,%.3f\n", encs[e].tag,
                   jobq_letters_kernel_name((jobq_letters_kernel)k),
                   (unsigned long long)(passes * blk), best, (double)(passes * blk) / best / 1e9,
                   t_read[e] * ((double)(passes * blk) / (double)size[e]) / best);
        }
        free(mem);
        if (encs[e].enc == JOBQ_LETTERS_CP1251) {
            best = 1e9;
            for (rep = 0; rep < reps; rep++)
                if ((t = time_fgetc(path[e], &total)) < best)
                    best = t;
            if (total != t_ref)
                fprintf(stderr, "bench-letters: fgetc total %llu != %llu\n",
                        (unsigned long long)total, (unsigned long long)t_ref);
            printf("fgetc,%s,naive,%llu,%.4f,%.3f,%.3f\n", encs[e].tag,
                   (unsigned long long)size[e], best, (double)size[e] / best / 1e9,
                   t_read[e] / best);
        }
    }
    fflush(stdout);
    /* Leave the UTF-8 file for the Python baseline when asked (bench-letters-python.sh). */
    env = getenv("JOBQ_BENCH_KEEP");
    for (e = 0; e < 3; e++)
        if (env == NULL || e != 0)
            (void)unlink(path[e]);
    if (env == NULL)
        (void)rmdir(dir);
    else
        printf("# kept %s\n", path[0]);
    free(text);
    return 0;
}
