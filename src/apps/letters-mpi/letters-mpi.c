/*
 * letters-mpi.c - jobq-letters-mpi: the letter counter spread over Open MPI ranks, each rank
 * counting its share with its own jobq pool.
 *
 * Why this shape. The single-machine tool (src/apps/letters) defines the behaviour, and the
 * output must be byte-identical to it, so as much as possible is literally its code: main.c
 * parses the options and turns the report into output and exit status, engine.c walks the tree,
 * count.c counts a file, output.c prints. Only the middle is new:
 *
 *   1. rank 0 runs the single tool's walk (libuv, --mode sequential, so messages about links,
 *      special files and unreadable directories are exactly the single tool's), but with
 *      lt_count_file replaced by lt_mpi_scan_file, which only records path, identity and size;
 *   2. rank 0 broadcasts the run settings and builds a work list balanced by bytes: a file
 *      above the split threshold (8 MiB in --mode pool, one chunk in --mode chunks) has its head
 *      read once here to fix the encoding exactly as count.c does, and becomes --chunk-size
 *      byte ranges; everything else is one whole-file item. Items go largest first to the least
 *      loaded rank (LPT), so one 3 GB file and 10,000 small ones finish together;
 *   3. the lists are scattered (MPI_Scatterv); every rank, rank 0 included, counts its items
 *      on a jobq pool of its own (-j, default that rank's usable CPUs): whole files with the
 *      single tool's lt_count_file, ranges with jobq_letters_count_fd, whose ranges over a
 *      partition of a file sum to the whole-file count;
 *   4. totals of plainly counted files are combined with MPI_Reduce; everything that needs a
 *      decision on rank 0 (errors, notes, ranges, per-file records for --per-file / --follow) is
 *      gathered (MPI_Gatherv) and merged exactly as engine.c aggregates (errors sorted by path,
 *      records sorted, --follow duplicates dropped by device+inode), then main.c prints.
 *
 * Threads and MPI: MPI_THREAD_FUNNELED; only the main thread of each rank calls MPI, the pool's
 * workers never do. Failure: a rank that dies makes mpirun kill the job with a non-zero exit;
 * rank 0 prints nothing to stdout before every rank's results are in (the reduce and gather are
 * collective), and checks that the number of items reported equals the number handed out. An
 * internal failure on any rank (out of memory, no pool) calls MPI_Abort: loud, never partial.
 *
 * Wire format: native byte order and type sizes; all ranks must run the same build on the same
 * architecture (as with any MPI program shipping structs as bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "lt-mpi.h"

/* Weight of opening a file, in bytes, when balancing (many tiny files are not free). */
#define MPI_FILE_OVERHEAD (16u * 1024)

enum { ITEM_FILE = 0, ITEM_RANGE = 1 };

/* Run settings rank 0 sends to all (the walk's options stay on rank 0). */
typedef struct run_header {
    int32_t go; /* 0: nothing to do (usage error, --help, walk failed) */
    int32_t encoding, yo, binary, mode, keep_records;
    uint32_t threads; /* 0: each rank uses its own usable CPU count */
    uint32_t pad;
    uint64_t chunk_size;
} run_header;

/* A file found by the walk (rank 0). */
typedef struct mpi_file {
    char *path;
    uint64_t dev, ino, size; /* size: the walk's stat, or lstat, or (split) fstat */
    int nofollow;
    int operand; /* named on the command line: a skip is an error (as in engine.c) */
    /* split into ranges */
    int split;
    jobq_letters_encoding enc;
    uint64_t chunk; /* range size, from lt_chunk_size() as the single tool splits */
    uint64_t nranges, ranges_done;
    jobq_letters_counts counts;
    char *err; /* message of the failed range with the smallest offset */
    uint64_t err_begin;
} mpi_file;

/* A unit of work and its outcome (every rank). */
typedef struct mpi_item {
    uint64_t id; /* index into rank 0's file list */
    uint64_t begin, end, size;
    uint32_t kind, enc, nofollow, path_len;
    const char *path; /* NUL-terminated, inside the received buffer */
    const lt_config *cfg;
    /* result */
    lt_status status;
    char *msg;
    jobq_letters_encoding renc;
    uint64_t bytes;
    jobq_letters_counts counts;
} mpi_item;

/* Fixed part of an item on the wire, then path_len + 1 bytes of path. */
typedef struct wire_item {
    uint64_t id, begin, end, size;
    uint32_t kind, enc, nofollow, path_len;
} wire_item;

/* Fixed part of a result on the wire, then msg_len bytes of message (no NUL). */
typedef struct wire_result {
    uint64_t id, begin, bytes;
    uint32_t kind, status, enc, msg_len; /* msg_len UINT32_MAX: no message */
    jobq_letters_counts counts;
} wire_result;

/* MPI_Reduce'd per rank: totals of files needing no decision on rank 0, and the item count. */
enum { TOT_FILES = 0, TOT_BYTES, TOT_ITEMS, TOT_LETTERS, TOT_LEN = TOT_LETTERS + JOBQ_LETTERS_COUNT };

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static int g_rank, g_size;
static int g_header_sent;

/* Filled by lt_mpi_scan_file during rank 0's walk. */
static mpi_file *g_files;
static size_t g_n_files, g_cap_files;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

static _Noreturn void
fatal(const char *what, int err)
{
    fprintf(stderr, "%s: rank %d: %s: %s; aborting the whole job\n", LT_PROG, g_rank, what,
            err < 0 ? jobq_strerror(err) : strerror(err));
    MPI_Abort(MPI_COMM_WORLD, 2);
    abort(); /* not reached */
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        fatal("allocation", ENOMEM);
    return p;
}

static void
buf_put(buf *b, const void *src, size_t n)
{
    size_t cap;
    unsigned char *p;

    if (b->cap - b->len < n) {
        cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                fatal("work list", JOBQ_EOVERFLOW);
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL)
            fatal("allocation", ENOMEM);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static int
mpi_int(size_t n)
{
    if (n > INT_MAX)
        fatal("a message over 2 GiB (too many files for one scatter/gather)", JOBQ_EOVERFLOW);
    return (int)n;
}

static void
note(const lt_config *cfg, const char *path, const char *msg)
{
    if (cfg->quiet)
        return;
    fprintf(stderr, "%s: ", LT_PROG);
    lt_fputs_escaped(stderr, path);
    fprintf(stderr, ": %s\n", msg);
}

/* As engine.c's add_error: print now, keep for the report. */
static void
add_error(lt_report *rep, size_t *cap, const char *path, const char *msg)
{
    lt_error *e;

    if (msg == NULL)
        msg = "out of memory";
    fprintf(stderr, "%s: ", LT_PROG);
    lt_fputs_escaped(stderr, path);
    fprintf(stderr, ": %s\n", msg);
    if (rep->n_errors == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        e = realloc(rep->errors, *cap * sizeof *e);
        if (e == NULL)
            fatal("allocation", ENOMEM);
        rep->errors = e;
    }
    e = &rep->errors[rep->n_errors++];
    e->path = strdup(path);
    e->msg = strdup(msg);
    if (e->path == NULL || e->msg == NULL)
        fatal("allocation", ENOMEM);
}

/*
 * Test hook, compiled only into jobq-letters-mpi-hooked (never installed) for
 * tests/letters-mpi: JOBQ_LETTERS_MPI_TEST_HOOK=die:R makes rank R kill itself with SIGKILL
 * after receiving its work; stall:R:FILE makes it write its pid to FILE and sleep up to 60 s,
 * so a test can kill it from outside.
 */
#ifndef LT_TEST_HOOKS
static void
test_hook(void)
{
}
#else
static void
test_hook(void)
{
    const char *spec = getenv("JOBQ_LETTERS_MPI_TEST_HOOK");
    struct timespec ts = {0, 10 * 1000 * 1000};
    char *end;
    long r;
    FILE *f;
    int i;

    if (spec == NULL)
        return;
    if (strncmp(spec, "die:", 4) == 0) {
        r = strtol(spec + 4, &end, 10);
        if (r == g_rank && *end == '\0')
            (void)raise(SIGKILL);
    } else if (strncmp(spec, "stall:", 6) == 0) {
        r = strtol(spec + 6, &end, 10);
        if (r != g_rank || *end != ':')
            return;
        f = fopen(end + 1, "w");
        if (f != NULL) {
            fprintf(f, "%ld\n", (long)getpid());
            (void)fclose(f);
        }
        for (i = 0; i < 6000; i++)
            (void)nanosleep(&ts, NULL);
    }
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Rank 0: the walk and the plan                                                               */
/* ------------------------------------------------------------------------------------------ */

void
lt_mpi_scan_file(const lt_config *cfg, lt_file *f, jobq_pool *pool, uint64_t split_above,
                 void (*progress)(void *ctx, uint64_t bytes), void *progress_ctx)
{
    mpi_file *m;
    struct stat st;
    size_t cap;

    (void)cfg;
    (void)pool;
    (void)split_above;
    (void)progress;
    (void)progress_ctx;
    if (g_n_files == g_cap_files) {
        cap = g_cap_files ? 2 * g_cap_files : 256;
        m = realloc(g_files, cap * sizeof *m);
        if (m == NULL)
            fatal("allocation", ENOMEM);
        g_files = m;
        g_cap_files = cap;
    }
    m = &g_files[g_n_files];
    memset(m, 0, sizeof *m);
    m->path = strdup(f->path);
    if (m->path == NULL)
        fatal("allocation", ENOMEM);
    m->dev = f->dev;
    m->ino = f->ino;
    m->size = f->size;
    m->nofollow = f->nofollow;
    m->operand = f->operand;
    /* The walk knew only the dirent type: the size is a hint for balancing and splitting
     * candidates; whoever counts the file re-checks everything. */
    if (m->size == 0 && m->dev == 0 && m->ino == 0 && lstat(m->path, &st) == 0 &&
        S_ISREG(st.st_mode))
        m->size = (uint64_t)st.st_size;
    g_n_files++;
    /* A placeholder result for the walk's own bookkeeping, which rank 0 discards. */
    f->status = LT_OK;
    f->enc = JOBQ_LETTERS_AUTO;
    f->bytes = 0;
    memset(&f->counts, 0, sizeof f->counts);
}

/*
 * Decide, as count.c would, whether m is counted in ranges and in which encoding: open it the
 * same way, read the same head, apply the same UTF-16 / binary / ASCII rules. Anything unusual
 * (cannot open, not regular, binary, UTF-16, pure-ASCII head, small after all) leaves the file
 * whole, and the rank that counts it with count.c reports it exactly as the single tool does.
 */
static void
probe_split(const lt_config *cfg, mpi_file *m, uint64_t split_above, unsigned char *head)
{
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    struct stat st;
    jobq_letters_encoding enc, detected;
    uint64_t size, chunk;
    ssize_t n;
    int fd;

    if (m->nofollow)
        flags |= O_NOFOLLOW;
    fd = open(m->path, flags);
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    size = (uint64_t)st.st_size;
    n = lt_read_head(fd, head, LT_HEAD_SIZE);
    if (n < 0)
        goto out;
    enc = cfg->encoding;
    detected = jobq_letters_detect(head, (size_t)n);
    if (enc == JOBQ_LETTERS_AUTO &&
        (detected == JOBQ_LETTERS_UTF16LE || detected == JOBQ_LETTERS_UTF16BE))
        goto out;
    if (!cfg->binary && memchr(head, 0, (size_t)n) != NULL)
        goto out;
    if (enc == JOBQ_LETTERS_AUTO)
        enc = detected;
    chunk = lt_chunk_size(cfg, size, split_above);
    if (enc == JOBQ_LETTERS_AUTO || size <= split_above || size <= chunk)
        goto out;
    m->split = 1;
    m->enc = enc;
    m->size = size;
    m->chunk = chunk;
    m->nranges = (size + chunk - 1) / chunk;
out:
    (void)close(fd);
}

typedef struct plan_item {
    uint64_t file, begin, end, weight;
} plan_item;

static int
cmp_weight_desc(const void *a, const void *b)
{
    const plan_item *x = a, *y = b;

    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->file < y->file ? -1 : x->file > y->file; /* deterministic */
}

/* Build one serialized work list per rank into out[0..g_size); returns the item count. */
static uint64_t
plan(const lt_config *cfg, buf *out)
{
    uint64_t split_above = cfg->mode == LT_MODE_CHUNKS ? 0 : LT_BIG_FILE;
    unsigned char *head = xmalloc(LT_HEAD_SIZE);
    plan_item *items;
    uint64_t *load, n_items = 0, k, b;
    size_t i, j;
    int r, best;
    const mpi_file *m;
    wire_item w;

    for (i = 0; i < g_n_files; i++) {
        if (g_files[i].size > split_above)
            probe_split(cfg, &g_files[i], split_above, head);
        n_items += g_files[i].split ? g_files[i].nranges : 1;
    }
    free(head);
    if (n_items > SIZE_MAX / sizeof *items)
        fatal("work list", JOBQ_EOVERFLOW);
    items = xmalloc((size_t)n_items * sizeof *items);
    for (i = j = 0; i < g_n_files; i++) {
        m = &g_files[i];
        if (!m->split) {
            items[j].file = i;
            items[j].begin = 0;
            items[j].end = 0;
            items[j].weight = m->size + MPI_FILE_OVERHEAD;
            j++;
            continue;
        }
        for (k = 0; k < m->nranges; k++) {
            b = k * m->chunk;
            items[j].file = i;
            items[j].begin = b;
            items[j].end = m->size - b > m->chunk ? b + m->chunk : m->size;
            items[j].weight = items[j].end - b + MPI_FILE_OVERHEAD;
            j++;
        }
    }
    /* Longest processing time first: largest item to the least loaded rank. */
    qsort(items, (size_t)n_items, sizeof *items, cmp_weight_desc);
    load = calloc((size_t)g_size, sizeof *load);
    if (load == NULL)
        fatal("allocation", ENOMEM);
    for (k = 0; k < n_items; k++) {
        best = 0;
        for (r = 1; r < g_size; r++) {
            if (load[r] < load[best])
                best = r;
        }
        load[best] += items[k].weight;
        m = &g_files[items[k].file];
        memset(&w, 0, sizeof w);
        w.id = items[k].file;
        w.kind = m->split ? ITEM_RANGE : ITEM_FILE;
        w.begin = items[k].begin;
        w.end = items[k].end;
        w.size = m->size;
        w.enc = (uint32_t)m->enc;
        w.nofollow = (uint32_t)m->nofollow;
        w.path_len = (uint32_t)strlen(m->path);
        buf_put(&out[best], &w, sizeof w);
        buf_put(&out[best], m->path, (size_t)w.path_len + 1);
    }
    free(load);
    free(items);
    return n_items;
}

/* ------------------------------------------------------------------------------------------ */
/* Every rank: count the items                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void
item_fail(mpi_item *it, char *msg)
{
    it->status = LT_FAILED;
    it->msg = msg;
}

/* A byte range of a file split by rank 0; the messages are count.c's. */
static void
count_range(mpi_item *it)
{
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    struct stat st;
    jobq_letters_result r;
    int fd, err;

    if (it->nofollow)
        flags |= O_NOFOLLOW;
    fd = open(it->path, flags);
    if (fd < 0) {
        if (errno == ENOENT)
            item_fail(it, lt_strdupf("vanished before it could be read (%s)", strerror(ENOENT)));
        else if (errno == ELOOP && it->nofollow)
            item_fail(it, lt_strdupf("replaced by a symbolic link during the scan"));
        else
            item_fail(it, lt_strdupf("%s", strerror(errno)));
        return;
    }
    if (fstat(fd, &st) != 0) {
        item_fail(it, lt_strdupf("%s", strerror(errno)));
    } else if (!S_ISREG(st.st_mode)) {
        item_fail(it, lt_strdupf("no longer a regular file (it changed during the scan)"));
    } else {
        err = jobq_letters_count_fd(fd, it->begin, it->end, (jobq_letters_encoding)it->enc,
                                    it->cfg->yo, 0, &r);
        it->counts = r.counts;
        it->bytes = it->end - it->begin;
        it->renc = (jobq_letters_encoding)it->enc;
        if (err == 0)
            it->status = LT_OK;
        else if (err == JOBQ_EIO && fstat(fd, &st) == 0 && (uint64_t)st.st_size < it->size)
            item_fail(it, lt_strdupf("file shrank while it was being read (from %llu to %llu "
                                     "bytes)",
                                     (unsigned long long)it->size,
                                     (unsigned long long)st.st_size));
        else
            item_fail(it, lt_strdupf("read error: %s", strerror(-err)));
    }
    (void)close(fd);
}

static int
item_run(void *arg)
{
    mpi_item *it = arg;
    lt_file f;

    if (it->kind == ITEM_RANGE) {
        count_range(it);
        return 0;
    }
    memset(&f, 0, sizeof f);
    f.path = (char *)it->path; /* lt_count_file only reads it */
    f.nofollow = (int)it->nofollow;
    lt_count_file(it->cfg, &f, NULL, 0, NULL, NULL);
    it->status = f.status;
    it->msg = f.msg;
    it->renc = f.enc;
    it->bytes = f.bytes;
    it->counts = f.counts;
    return 0;
}

/* Parse the received list into items (pointing into data). */
static mpi_item *
parse_items(const lt_config *cfg, const unsigned char *data, size_t len, size_t *ret_n)
{
    size_t off, n = 0, cap = 0;
    mpi_item *items = NULL, *it;
    wire_item w;

    for (off = 0; off < len;) {
        if (len - off < sizeof w)
            fatal("corrupt work list", EPROTO);
        memcpy(&w, data + off, sizeof w);
        off += sizeof w;
        if (len - off < (size_t)w.path_len + 1 || data[off + w.path_len] != '\0')
            fatal("corrupt work list", EPROTO);
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            it = realloc(items, cap * sizeof *items);
            if (it == NULL)
                fatal("allocation", ENOMEM);
            items = it;
        }
        it = &items[n++];
        memset(it, 0, sizeof *it);
        it->id = w.id;
        it->begin = w.begin;
        it->end = w.end;
        it->size = w.size;
        it->kind = w.kind;
        it->enc = w.enc;
        it->nofollow = w.nofollow;
        it->path_len = w.path_len;
        it->path = (const char *)data + off;
        it->cfg = cfg;
        off += (size_t)w.path_len + 1;
    }
    *ret_n = n;
    return items;
}

static void
count_items(mpi_item *items, size_t n, unsigned threads)
{
    jobq_pool_options opts;
    jobq_pool *pool;
    jobq_job job;
    size_t i;
    int err;

    if (n == 0)
        return;
    jobq_pool_options_init(&opts);
    opts.threads = threads;
    opts.capacity = threads * 4u < 64 ? 64 : threads * 4u;
    opts.name = "letters-mpi";
    err = jobq_pool_create(&pool, &opts);
    if (err != 0)
        fatal("cannot start the counting pool", err);
    for (i = 0; i < n; i++) {
        job.run = item_run;
        job.done = NULL;
        job.arg = &items[i];
        err = jobq_pool_submit(pool, &job);
        if (err != 0)
            fatal("cannot submit to the counting pool", err);
    }
    (void)jobq_pool_wait(pool);
    jobq_pool_destroy(pool);
}

/*
 * Count this rank's share of `data`, reduce the plain totals to rank 0 and gather the rest.
 * On rank 0, *ret_totals and *ret_results and *ret_len receive the combined data.
 */
static void
count_and_combine(const lt_config *cfg, unsigned threads, int keep_records,
                  const unsigned char *data, size_t len, uint64_t *ret_totals,
                  unsigned char **ret_results, size_t *ret_len)
{
    mpi_item *items, *it;
    size_t n, i;
    uint64_t tot[TOT_LEN];
    buf out = {NULL, 0, 0};
    wire_result w;
    int my_len, *lens = NULL, *displs = NULL, r;
    size_t sum = 0, mlen;
    unsigned char *all = NULL;

    items = parse_items(cfg, data, len, &n);
    test_hook();
    count_items(items, n, threads);

    memset(tot, 0, sizeof tot);
    tot[TOT_ITEMS] = n;
    for (i = 0; i < n; i++) {
        it = &items[i];
        if (it->kind == ITEM_FILE && it->status == LT_OK && it->msg == NULL && !keep_records) {
            tot[TOT_FILES]++;
            tot[TOT_BYTES] += it->bytes;
            for (r = 0; r < JOBQ_LETTERS_COUNT; r++)
                tot[TOT_LETTERS + r] += it->counts.n[r];
            continue;
        }
        memset(&w, 0, sizeof w);
        w.id = it->id;
        w.begin = it->begin;
        w.bytes = it->bytes;
        w.kind = it->kind;
        w.status = (uint32_t)it->status;
        w.enc = (uint32_t)it->renc;
        mlen = it->msg != NULL ? strlen(it->msg) : 0;
        w.msg_len = it->msg != NULL ? (uint32_t)mlen : UINT32_MAX;
        w.counts = it->counts;
        buf_put(&out, &w, sizeof w);
        if (mlen > 0)
            buf_put(&out, it->msg, mlen);
        free(it->msg);
    }
    free(items);

    MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : tot, tot, TOT_LEN, MPI_UINT64_T, MPI_SUM, 0,
               MPI_COMM_WORLD);
    my_len = mpi_int(out.len);
    if (g_rank == 0) {
        lens = xmalloc((size_t)g_size * sizeof *lens);
        displs = xmalloc((size_t)g_size * sizeof *displs);
    }
    MPI_Gather(&my_len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (g_rank == 0) {
        for (r = 0; r < g_size; r++) {
            displs[r] = mpi_int(sum);
            sum += (size_t)lens[r];
        }
        (void)mpi_int(sum);
        all = xmalloc(sum);
    }
    MPI_Gatherv(out.p, my_len, MPI_BYTE, all, lens, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(out.p);
    free(lens);
    free(displs);
    if (g_rank == 0) {
        memcpy(ret_totals, tot, sizeof tot);
        *ret_results = all;
        *ret_len = sum;
    }
}

/* Send the list of each rank (rank 0: lists != NULL) and receive this rank's own. */
static unsigned char *
scatter_work(buf *lists, size_t *ret_len)
{
    int *lens = NULL, *displs = NULL, my_len = 0, r;
    size_t sum = 0;
    unsigned char *all = NULL, *mine;
    buf packed = {NULL, 0, 0};

    if (g_rank == 0) {
        lens = xmalloc((size_t)g_size * sizeof *lens);
        displs = xmalloc((size_t)g_size * sizeof *displs);
        for (r = 0; r < g_size; r++) {
            lens[r] = mpi_int(lists[r].len);
            displs[r] = mpi_int(sum);
            sum += lists[r].len;
            if (lists[r].len > 0)
                buf_put(&packed, lists[r].p, lists[r].len);
        }
        (void)mpi_int(sum);
        all = packed.p;
    }
    MPI_Scatter(lens, 1, MPI_INT, &my_len, 1, MPI_INT, 0, MPI_COMM_WORLD);
    mine = xmalloc((size_t)my_len);
    MPI_Scatterv(all, lens, displs, MPI_BYTE, mine, my_len, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(all);
    free(lens);
    free(displs);
    *ret_len = (size_t)my_len;
    return mine;
}

/* ------------------------------------------------------------------------------------------ */
/* Rank 0: merging, as engine.c aggregates                                                     */
/* ------------------------------------------------------------------------------------------ */

static int
cmp_record(const void *a, const void *b)
{
    return strcmp(((const lt_record *)a)->path, ((const lt_record *)b)->path);
}

static int
cmp_error(const void *a, const void *b)
{
    const lt_error *x = a, *y = b;
    int c = strcmp(x->path, y->path);

    return c != 0 ? c : strcmp(x->msg, y->msg);
}

static int
cmp_ident(const void *a, const void *b)
{
    const lt_record *x = a, *y = b;

    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return strcmp(x->path, y->path);
}

typedef struct merge {
    const lt_config *cfg;
    lt_report *rep;
    size_t cap_errors;
    lt_record *records;
    size_t n_records, cap_records;
    int keep_records;
} merge;

static void
file_ok(merge *mg, const mpi_file *m, jobq_letters_encoding enc, uint64_t bytes,
        const jobq_letters_counts *counts)
{
    lt_record *r;

    if (!mg->keep_records) {
        mg->rep->files++;
        mg->rep->bytes += bytes;
        jobq_letters_add(&mg->rep->counts, counts);
        return;
    }
    if (mg->n_records == mg->cap_records) {
        mg->cap_records = mg->cap_records ? 2 * mg->cap_records : 64;
        r = realloc(mg->records, mg->cap_records * sizeof *r);
        if (r == NULL)
            fatal("allocation", ENOMEM);
        mg->records = r;
    }
    r = &mg->records[mg->n_records++];
    r->path = strdup(m->path);
    if (r->path == NULL)
        fatal("allocation", ENOMEM);
    r->dev = m->dev;
    r->ino = m->ino;
    r->enc = enc;
    r->bytes = bytes;
    r->counts = *counts;
}

static void
merge_results(merge *mg, const unsigned char *data, size_t len)
{
    size_t off;
    wire_result w;
    mpi_file *m;
    char *msg;

    for (off = 0; off < len;) {
        if (len - off < sizeof w)
            fatal("corrupt results", EPROTO);
        memcpy(&w, data + off, sizeof w);
        off += sizeof w;
        msg = NULL;
        if (w.msg_len != UINT32_MAX) {
            if (len - off < w.msg_len || w.id >= g_n_files)
                fatal("corrupt results", EPROTO);
            msg = xmalloc((size_t)w.msg_len + 1);
            memcpy(msg, data + off, w.msg_len);
            msg[w.msg_len] = '\0';
            off += w.msg_len;
        }
        if (w.id >= g_n_files)
            fatal("corrupt results", EPROTO);
        m = &g_files[w.id];
        if (w.kind == ITEM_RANGE) {
            m->ranges_done++;
            if (w.status == LT_FAILED) {
                if (m->err == NULL || w.begin < m->err_begin) {
                    free(m->err);
                    m->err = msg;
                    m->err_begin = w.begin;
                    msg = NULL;
                }
            } else {
                jobq_letters_add(&m->counts, &w.counts);
            }
            free(msg);
            continue;
        }
        switch ((lt_status)w.status) {
        case LT_OK:
            if (msg != NULL)
                note(mg->cfg, m->path, msg);
            file_ok(mg, m, (jobq_letters_encoding)w.enc, w.bytes, &w.counts);
            break;
        case LT_SKIPPED:
            if (m->operand) {
                add_error(mg->rep, &mg->cap_errors, m->path, msg);
                break;
            }
            mg->rep->skipped++;
            note(mg->cfg, m->path, msg != NULL ? msg : "skipped");
            break;
        default:
            add_error(mg->rep, &mg->cap_errors, m->path, msg);
            break;
        }
        free(msg);
    }
}

static void
finish_split_files(merge *mg)
{
    size_t i;
    mpi_file *m;

    for (i = 0; i < g_n_files; i++) {
        m = &g_files[i];
        if (!m->split)
            continue;
        if (m->ranges_done != m->nranges) {
            fprintf(stderr, "%s: internal error: %llu of %llu ranges of a file came back\n",
                    LT_PROG, (unsigned long long)m->ranges_done,
                    (unsigned long long)m->nranges);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        if (m->err != NULL)
            add_error(mg->rep, &mg->cap_errors, m->path, m->err);
        else
            file_ok(mg, m, m->enc, m->size, &m->counts);
    }
}

static void
finalize(merge *mg)
{
    lt_report *rep = mg->rep;
    size_t i, j;

    if (rep->n_errors > 1)
        qsort(rep->errors, rep->n_errors, sizeof *rep->errors, cmp_error);
    if (!mg->keep_records)
        return;
    if (mg->cfg->follow && mg->n_records > 1) {
        /* A file reached by several paths counts once, under its smallest path. */
        qsort(mg->records, mg->n_records, sizeof *mg->records, cmp_ident);
        for (i = j = 0; i < mg->n_records; i++) {
            if (j > 0 && mg->records[i].dev == mg->records[j - 1].dev &&
                mg->records[i].ino == mg->records[j - 1].ino)
                free(mg->records[i].path);
            else
                mg->records[j++] = mg->records[i];
        }
        mg->n_records = j;
    }
    if (mg->n_records > 1)
        qsort(mg->records, mg->n_records, sizeof *mg->records, cmp_record);
    for (i = 0; i < mg->n_records; i++) {
        rep->files++;
        rep->bytes += mg->records[i].bytes;
        jobq_letters_add(&rep->counts, &mg->records[i].counts);
    }
    if (mg->cfg->per_file) {
        rep->records = mg->records;
        rep->n_records = mg->n_records;
    } else {
        for (i = 0; i < mg->n_records; i++)
            free(mg->records[i].path);
        free(mg->records);
    }
    mg->records = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void
send_header(run_header *h)
{
    MPI_Bcast(h, (int)sizeof *h, MPI_BYTE, 0, MPI_COMM_WORLD);
    g_header_sent = 1;
}

static void
config_from_header(const run_header *h, lt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->encoding = (jobq_letters_encoding)h->encoding;
    cfg->yo = (jobq_letters_yo)h->yo;
    cfg->binary = h->binary;
    cfg->mode = (lt_mode)h->mode;
    cfg->chunk_size = h->chunk_size;
    cfg->quiet = 1;
}

int
lt_mpi_run(const lt_config *cfg, lt_report *rep)
{
    lt_config wcfg = *cfg;
    lt_report wrep;
    run_header h;
    buf *lists;
    merge mg;
    uint64_t n_items, tot[TOT_LEN];
    unsigned char *mine, *results = NULL;
    size_t len, rlen = 0, i;
    int err, r;

    memset(rep, 0, sizeof *rep);
    memset(&h, 0, sizeof h);
    /* The walk alone, synchronously: files are recorded by lt_mpi_scan_file. */
    wcfg.mode = LT_MODE_SEQUENTIAL;
    err = lt_mpi_walk(&wcfg, &wrep);
    if (err != 0) {
        send_header(&h); /* go = 0 */
        return err;
    }
    h.go = 1;
    h.encoding = cfg->encoding;
    h.yo = cfg->yo;
    h.binary = cfg->binary;
    h.mode = cfg->mode;
    h.keep_records = cfg->per_file || cfg->follow;
    /* -j applies to every rank; without it each rank uses its own usable CPUs. */
    h.threads = cfg->threads_given ? cfg->threads : 0;
    h.chunk_size = cfg->chunk_size;
    send_header(&h);

    lists = calloc((size_t)g_size, sizeof *lists);
    if (lists == NULL)
        fatal("allocation", ENOMEM);
    n_items = plan(cfg, lists);
    mine = scatter_work(lists, &len);
    for (r = 0; r < g_size; r++)
        free(lists[r].p);
    free(lists);
    count_and_combine(cfg, cfg->threads, h.keep_records, mine, len, tot, &results, &rlen);
    free(mine);

    /* Every rank has answered (the reduce and gather are collective). */
    if (tot[TOT_ITEMS] != n_items) {
        fprintf(stderr, "%s: internal error: %llu of %llu work items were counted\n", LT_PROG,
                (unsigned long long)tot[TOT_ITEMS], (unsigned long long)n_items);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    memset(&mg, 0, sizeof mg);
    mg.cfg = cfg;
    mg.rep = rep;
    mg.keep_records = h.keep_records;
    /* The walk's errors (already printed) and notes count as the single tool's do. */
    rep->errors = wrep.errors;
    rep->n_errors = mg.cap_errors = wrep.n_errors;
    rep->skipped = wrep.skipped;
    wrep.errors = NULL;
    wrep.n_errors = 0;
    lt_report_free(&wrep);
    rep->files = tot[TOT_FILES];
    rep->bytes = tot[TOT_BYTES];
    for (r = 0; r < JOBQ_LETTERS_COUNT; r++)
        rep->counts.n[r] = tot[TOT_LETTERS + r];
    merge_results(&mg, results, rlen);
    free(results);
    finish_split_files(&mg);
    finalize(&mg);
    for (i = 0; i < g_n_files; i++) {
        free(g_files[i].path);
        free(g_files[i].err);
    }
    free(g_files);
    g_files = NULL;
    g_n_files = g_cap_files = 0;
    return 0;
}

static int
worker_main(void)
{
    run_header h;
    lt_config cfg;
    unsigned char *mine;
    size_t len;

    MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!h.go)
        return 0;
    config_from_header(&h, &cfg);
    mine = scatter_work(NULL, &len);
    count_and_combine(&cfg, h.threads ? h.threads : jobq_cpu_count(), h.keep_records, mine, len,
                      NULL, NULL, NULL);
    free(mine);
    return 0;
}

int
main(int argc, char **argv)
{
    int provided = 0, status;
    run_header h;

    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init_thread failed\n", LT_PROG);
        return 2;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED) {
        /* The counting pool runs threads; MPI must at least tolerate them. */
        if (g_rank == 0)
            fprintf(stderr, "%s: this MPI library does not support threads "
                            "(MPI_THREAD_FUNNELED)\n", LT_PROG);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (g_rank == 0) {
        /* main.c: options, lt_mpi_run(), output, exit status. */
        status = lt_mpi_cli_main(argc, argv);
        if (!g_header_sent) {
            /* --help, --version or a usage error: release the other ranks. */
            memset(&h, 0, sizeof h);
            send_header(&h);
        }
    } else {
        status = worker_main();
    }
    MPI_Finalize();
    return status;
}
