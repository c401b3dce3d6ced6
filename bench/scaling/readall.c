/*
 * readall.c - the limit for letter counting: read every byte of the given files (or of every
 * regular file under the given directories) with exactly N threads and throw the bytes away.
 *
 * The scaling harness runs it beside jobq-letters over the same inputs and the same -j and
 * --mode: a counter cannot be faster than reading its input, so "readall time / our time" says
 * how close to I/O-bound (or page-cache-bound) the counter is. For that ratio to compare equal
 * thread counts, the work is cut the way jobq-letters cuts it (src/apps/letters/count.c,
 * lt_chunk_size and count_open_file):
 *   --mode pool    (default) one item per file, except files over 8 MiB (LT_BIG_FILE), which
 *                  are split into 2 MiB ranges (LT_CHUNK_DEFAULT);
 *   --mode chunks  every file split into size / (4 N) + 1 byte ranges, none under 64 KiB
 *                  (LT_CHUNK_MIN), a file of one such range staying whole;
 *   --chunk-size   overrides the range size, as jobq-letters' --chunk-size does.
 * A whole file is read() to EOF in 256 KiB blocks (LT_BLOCK_SIZE); a range is pread() in blocks
 * of 256 KiB or the range size if smaller, as jobq_letters_count_fd is called there.
 *
 * Mechanism: the walk (before the clock) builds the item list in walk order; N threads are
 * started and each takes the next item from one atomic index until none is left; the main
 * thread only starts and joins them, so exactly N threads read (jobq-letters' loop thread
 * walks and merges but reads nothing either). A thread keeps the descriptor of its last file
 * open while its next items are ranges of the same file, so a split file costs one open per
 * thread that reads it, like the one shared descriptor of jobq-letters. The timed interval runs
 * from before the first thread starts to after the last one is joined.
 *
 * Usage: jobq-readall [-j THREADS] [-m pool|chunks] [--chunk-size BYTES] PATH...
 * Prints "bytes=<n> wall_s=<s> threads=<N> items=<n>" on stdout.
 * Exit: 0 ok, 1 some file unreadable (reported on stderr), 2 usage or out of resources.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

/* The constants of src/apps/letters/lt.h, copied: the app's header is private to it. */
#define BLOCK (256u * 1024u)
#define BIG_FILE (8u * 1024u * 1024u)
#define CHUNK_DEFAULT (2u * 1024u * 1024u)
#define CHUNK_MIN (64u * 1024u)

#define USAGE                                                                                  \
    "usage: jobq-readall [-j THREADS] [-m pool|chunks] [--chunk-size BYTES] PATH...\n"         \
    "Read every byte of PATH (files, or the regular files under directories) with exactly\n"   \
    "THREADS threads (default: the usable cores) and discard it; big files are split into\n"   \
    "byte ranges as jobq-letters --mode pool (default: files over 8 MiB, 2 MiB ranges) or\n"    \
    "--mode chunks (every file, about 4 ranges per thread, at least 64 KiB) splits them.\n"    \
    "Prints bytes=<n> wall_s=<s> threads=<n> items=<n>. Exit 0 ok, 1 unreadable file, 2 usage.\n"

enum mode { MODE_POOL, MODE_CHUNKS };

struct files {
    char **paths;
    uint64_t *sizes;
    size_t n, cap;
};

/* One unit of work: a whole file (whole = 1, read() to EOF) or the range [begin, end). */
struct item {
    size_t file;
    uint64_t begin, end;
    size_t block; /* pread size for a range: min(range size, BLOCK), as in count_chunks */
    int whole;
};

struct items {
    struct item *v;
    size_t n, cap;
};

struct ctx {
    const struct files *files;
    const struct items *items;
    atomic_size_t next;    /* next item to take; relaxed: items are read-only, no data flows */
    atomic_ullong bytes;   /* relaxed sums, read after pthread_join (which orders them) */
    atomic_int failed;
};

static int
add_path(struct files *f, const char *path, uint64_t size)
{
    char **p;
    uint64_t *s;

    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        p = realloc(f->paths, f->cap * sizeof(*p));
        if (p == NULL)
            return -1;
        f->paths = p;
        s = realloc(f->sizes, f->cap * sizeof(*s));
        if (s == NULL)
            return -1;
        f->sizes = s;
    }
    f->sizes[f->n] = size;
    f->paths[f->n] = strdup(path);
    return f->paths[f->n++] == NULL ? -1 : 0;
}

/* Collect regular files under path (no symlinks followed), in directory order. Returns a mask:
 * 1 something unreadable (reported), 2 out of memory. */
static int
walk(struct files *f, const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    char *sub;
    int r = 0;

    if (lstat(path, &st) != 0) {
        fprintf(stderr, "jobq-readall: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (S_ISREG(st.st_mode))
        return add_path(f, path, (uint64_t)st.st_size) == 0 ? 0 : 2;
    if (!S_ISDIR(st.st_mode))
        return 0;
    d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "jobq-readall: %s: %s\n", path, strerror(errno));
        return 1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) {
            r |= 2;
            break;
        }
        r |= walk(f, sub);
        free(sub);
    }
    closedir(d);
    return r;
}

static int
add_item(struct items *it, size_t file, uint64_t begin, uint64_t end, uint64_t chunk, int whole)
{
    struct item *p;

    if (it->n == it->cap) {
        it->cap = it->cap ? 2 * it->cap : 1024;
        p = realloc(it->v, it->cap * sizeof(*p));
        if (p == NULL)
            return -1;
        it->v = p;
    }
    it->v[it->n].file = file;
    it->v[it->n].begin = begin;
    it->v[it->n].end = end;
    it->v[it->n].block = chunk < BLOCK ? (size_t)chunk : BLOCK;
    it->v[it->n].whole = whole;
    it->n++;
    return 0;
}

/* jobq-letters' lt_chunk_size(): the explicit size, else ~4 ranges per thread (chunks) or
 * 2 MiB (pool). Never 0. */
static uint64_t
chunk_size(enum mode mode, uint64_t explicit_size, uint64_t size, unsigned threads)
{
    uint64_t chunk = explicit_size;

    if (chunk == 0 && mode == MODE_CHUNKS) {
        chunk = size / (4u * (uint64_t)threads) + 1;
        if (chunk < CHUNK_MIN)
            chunk = CHUNK_MIN;
    } else if (chunk == 0) {
        chunk = CHUNK_DEFAULT;
    }
    return chunk;
}

/* The item list, in walk order; a split file's ranges are consecutive, as the chunks of
 * jobq-letters' parallel_for are. */
static int
make_items(const struct files *f, enum mode mode, uint64_t explicit_size, unsigned threads,
           struct items *it)
{
    uint64_t split_above = mode == MODE_CHUNKS ? 0 : BIG_FILE;
    uint64_t size, chunk, nchunks, b;
    size_t i;

    for (i = 0; i < f->n; i++) {
        size = f->sizes[i];
        chunk = chunk_size(mode, explicit_size, size, threads);
        nchunks = (size + chunk - 1) / chunk;
        if (size > split_above && nchunks > 1) {
            for (b = 0; b < size; b += chunk)
                if (add_item(it, i, b, size - b > chunk ? b + chunk : size, chunk, 0) != 0)
                    return -1;
        } else if (add_item(it, i, 0, 0, BLOCK, 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static void
report(struct ctx *c, size_t file, int err)
{
    fprintf(stderr, "jobq-readall: %s: %s\n", c->files->paths[file], strerror(err));
    atomic_store(&c->failed, 1);
}

/* Bytes read from one item; a failure is reported and counted in c->failed. */
static unsigned long long
read_item(struct ctx *c, const struct item *it, int fd, char *buf)
{
    unsigned long long total = 0;
    uint64_t off;
    size_t want;
    ssize_t got;

    if (it->whole) {
        while ((got = read(fd, buf, BLOCK)) != 0) {
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                report(c, it->file, errno);
                break;
            }
            total += (unsigned long long)got;
        }
        return total;
    }
    for (off = it->begin; off < it->end;) {
        want = it->end - off < it->block ? (size_t)(it->end - off) : it->block;
        got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            /* EOF before the size the walk saw: the file shrank. */
            report(c, it->file, got < 0 ? errno : EIO);
            break;
        }
        off += (uint64_t)got;
        total += (unsigned long long)got;
    }
    return total;
}

static void *
reader(void *arg)
{
    struct ctx *c = arg;
    const struct item *it;
    char *buf;
    size_t i, fd_file = SIZE_MAX;
    int fd = -1;
    unsigned long long total = 0;

    buf = malloc(BLOCK);
    if (buf == NULL) {
        fprintf(stderr, "jobq-readall: out of memory\n");
        atomic_store(&c->failed, 2);
        return NULL;
    }
    for (;;) {
        i = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (i >= c->items->n)
            break;
        it = &c->items->v[i];
        /* A whole file is always opened afresh; a range reuses the descriptor of the file
         * this thread read last (its previous range), else opens the file. */
        if (fd >= 0 && (it->whole || fd_file != it->file)) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            fd = open(c->files->paths[it->file], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) {
                report(c, it->file, errno);
                continue;
            }
            fd_file = it->file;
        }
        total += read_item(c, it, fd, buf);
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    atomic_fetch_add_explicit(&c->bytes, total, memory_order_relaxed);
    return NULL;
}

/* Bytes with an optional K, M or G suffix (powers of 1024); -1 when malformed or 0. */
static int
parse_bytes(const char *s, uint64_t *ret)
{
    char *end;
    unsigned long long v;
    int shift = 0;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || *s == '-')
        return -1;
    if (*end != '\0') {
        if (end[1] != '\0')
            return -1;
        if (*end == 'K' || *end == 'k')
            shift = 10;
        else if (*end == 'M' || *end == 'm')
            shift = 20;
        else if (*end == 'G' || *end == 'g')
            shift = 30;
        else
            return -1;
    }
    if (v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *ret = (uint64_t)v << shift;
    return 0;
}

static int
bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "jobq-readall: %s '%s'\n%s", what, arg, USAGE);
    return 2;
}

int
main(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"threads", required_argument, NULL, 'j'},
        {"mode", required_argument, NULL, 'm'},
        {"chunk-size", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct files files = {NULL, NULL, 0, 0};
    struct items items = {NULL, 0, 0};
    struct ctx c;
    pthread_t *tids;
    struct timespec t0, t1;
    enum mode mode = MODE_POOL;
    uint64_t explicit_size = 0, v;
    unsigned threads, started = 0, k;
    int opt, r = 0, err = 0;
    size_t i;
    char *end;

    threads = jobq_cpu_count();
    while ((opt = getopt_long(argc, argv, "j:m:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'j':
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (end == optarg || *end != '\0' || errno != 0 || v < 1 || v > 4096)
                return bad_usage("-j wants a thread count from 1 to 4096, not", optarg);
            threads = (unsigned)v;
            break;
        case 'm':
            if (strcmp(optarg, "pool") == 0)
                mode = MODE_POOL;
            else if (strcmp(optarg, "chunks") == 0)
                mode = MODE_CHUNKS;
            else
                return bad_usage("--mode wants pool or chunks, not", optarg);
            break;
        case 'c':
            if (parse_bytes(optarg, &explicit_size) != 0)
                return bad_usage("--chunk-size wants a positive byte count, not", optarg);
            break;
        case 'h':
            fputs(USAGE, stdout);
            return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
        default:
            /* getopt_long has said what was wrong. */
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "jobq-readall: no PATH given\n%s", USAGE);
        return 2;
    }
    for (; optind < argc; optind++)
        r |= walk(&files, argv[optind]);
    if ((r & 2) || make_items(&files, mode, explicit_size, threads, &items) != 0) {
        fprintf(stderr, "jobq-readall: out of memory\n");
        return 2;
    }
    c.files = &files;
    c.items = &items;
    atomic_init(&c.next, 0);
    atomic_init(&c.bytes, 0);
    atomic_init(&c.failed, 0);
    tids = calloc(threads, sizeof(*tids));
    if (tids == NULL) {
        fprintf(stderr, "jobq-readall: out of memory\n");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (k = 0; k < threads; k++) {
        err = pthread_create(&tids[k], NULL, reader, &c);
        if (err != 0)
            break;
        started++;
    }
    for (k = 0; k < started; k++)
        (void)pthread_join(tids[k], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(tids);
    if (err != 0)
        fprintf(stderr, "jobq-readall: started %u of %u threads: %s\n", started, threads,
                strerror(err));
    printf("bytes=%llu wall_s=%.6f threads=%u items=%zu\n",
           (unsigned long long)atomic_load(&c.bytes),
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, started,
           items.n);
    for (i = 0; i < files.n; i++)
        free(files.paths[i]);
    free(files.paths);
    free(files.sizes);
    free(items.v);
    if (err != 0 || atomic_load(&c.failed) == 2)
        return 2;
    return (r != 0 || atomic_load(&c.failed)) ? 1 : 0;
}
