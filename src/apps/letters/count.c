/*
 * count.c - count the letters of one file, on whichever thread the execution mode chose.
 *
 * Every mode calls lt_count_file(), and the procedure is the same in all of them, which is what
 * makes their output byte-identical:
 *   1. open with O_NONBLOCK (a FIFO swapped in after the scan must not block us) and O_NOFOLLOW
 *      when the walk saw a regular file (a symlink swapped in is refused), then fstat: only
 *      regular files are read;
 *   2. read the first block (LT_BLOCK_SIZE bytes, or the whole file when smaller): a UTF-16
 *      byte-order mark is reported as unsupported, a NUL byte in the first LT_HEAD_SIZE bytes
 *      marks a binary file (skipped unless --binary), and with --encoding auto those bytes
 *      decide the encoding (jobq_letters_detect);
 *   3. count [0, size) either as one input that starts with the block already read
 *      (jobq_letters_count_fd_from, so no byte is read twice) or, when a pool is given and the file
 *      is larger than split_above, as chunks spread over the pool with jobq_pool_parallel_for
 *      and jobq_letters_count_fd (the library guarantees that any partition sums to the
 *      whole-file count). A head of pure ASCII decides nothing, so such a file is counted as
 *      one stream with AUTO and the library decides on its first non-ASCII block.
 * Memory per call is one block buffer (plus the library's for chunks), whatever the file size:
 * jobq_letters_count_fd_from reads into the head buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lt.h"

typedef struct chunk_ctx {
    int fd;
    jobq_letters_encoding enc;
    jobq_letters_yo yo;
    uint64_t size;
    uint64_t chunk;
    pthread_mutex_t lock; /* guards counts, err */
    jobq_letters_counts counts;
    int err;
    void (*progress)(void *ctx, uint64_t bytes);
    void *progress_ctx;
} chunk_ctx;

char *
lt_strdupf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    (void)vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void
set_result(lt_file *f, lt_status status, char *msg)
{
    f->status = status;
    free(f->msg);
    f->msg = msg;
}

static void
fail_errno(lt_file *f, const char *what, int err)
{
    set_result(f, LT_FAILED, lt_strdupf("%s%s", what, strerror(err)));
}

/*
 * Test hook, compiled only into jobq-letters-hooked, a copy of the tool that tests/letters-cli
 * runs and nobody installs (the installed tool reads no environment variables): with
 * JOBQ_LETTERS_TEST_HOOK=stage:prefix, a worker reaching `stage` ("open": before open, "read":
 * after fstat) creates prefix.ready and waits up to 20 s for prefix.go, so a test can delete or
 * truncate the file at a known point.
 */
#ifndef LT_TEST_HOOKS
static void
test_hook(const char *stage)
{
    (void)stage;
}
#else
static void
test_hook(const char *stage)
{
    const char *spec = getenv("JOBQ_LETTERS_TEST_HOOK");
    size_t n = strlen(stage);
    char *ready, *go;
    struct timespec ts = {0, 10 * 1000 * 1000};
    int fd, i;

    if (spec == NULL || strncmp(spec, stage, n) != 0 || spec[n] != ':')
        return;
    ready = lt_strdupf("%s.ready", spec + n + 1);
    go = lt_strdupf("%s.go", spec + n + 1);
    if (ready != NULL && go != NULL) {
        fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            (void)close(fd);
        for (i = 0; i < 2000 && access(go, F_OK) != 0; i++)
            (void)nanosleep(&ts, NULL);
    }
    free(ready);
    free(go);
}
#endif

static int
count_chunks(void *arg, size_t begin, size_t end)
{
    chunk_ctx *c = arg;
    jobq_letters_counts sum;
    jobq_letters_result r;
    size_t i;
    int err = 0;
    uint64_t b, e;

    memset(&sum, 0, sizeof sum);
    for (i = begin; i < end && err == 0; i++) {
        b = (uint64_t)i * c->chunk;
        e = c->size - b > c->chunk ? b + c->chunk : c->size;
        /* A block no bigger than the chunk: small chunks need no 256 KiB buffer each. */
        err = jobq_letters_count_fd(c->fd, b, e, c->enc, c->yo,
                                    c->chunk < LT_BLOCK_SIZE ? (size_t)c->chunk : LT_BLOCK_SIZE,
                                    &r);
        jobq_letters_add(&sum, &r.counts);
        if (c->progress != NULL)
            c->progress(c->progress_ctx, e - b);
    }
    (void)pthread_mutex_lock(&c->lock);
    jobq_letters_add(&c->counts, &sum);
    if (c->err == 0)
        c->err = err;
    (void)pthread_mutex_unlock(&c->lock);
    /* Stop the other chunks early: the file is reported as failed anyway. */
    return err;
}

ssize_t
lt_read_head(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static void
count_open_file(const lt_config *cfg, lt_file *f, int fd, jobq_pool *pool, uint64_t split_above,
                void (*progress)(void *ctx, uint64_t bytes), void *progress_ctx)
{
    struct stat st;
    unsigned char *head;
    ssize_t n;
    size_t sample;
    jobq_letters_encoding enc, detected;
    jobq_letters_result r;
    uint64_t size, end, chunk, nchunks;
    chunk_ctx cc;
    int err, split = 0;
    struct stat st2;

    if (fstat(fd, &st) != 0) {
        fail_errno(f, "", errno);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        set_result(f, LT_FAILED,
                   lt_strdupf("no longer a regular file (it changed during the scan)"));
        return;
    }
    test_hook("read");
    size = (uint64_t)st.st_size;
    /* The head is the first block of the count as well, so a small file is read once, with
     * one pread, and no byte is read twice. */
    head = malloc(LT_BLOCK_SIZE);
    if (head == NULL) {
        fail_errno(f, "", ENOMEM);
        return;
    }
    n = lt_read_head(fd, head, size == 0 ? LT_HEAD_SIZE
                                          : size < LT_BLOCK_SIZE ? (size_t)size : LT_BLOCK_SIZE);
    if (n < 0) {
        fail_errno(f, "", errno);
        free(head);
        return;
    }
    enc = cfg->encoding;
    /* An explicit encoding needs no detection (UTF-16 is only reported under auto). */
    sample = (size_t)n < LT_HEAD_SIZE ? (size_t)n : LT_HEAD_SIZE;
    /* A sample that is the whole file is judged as such: a sequence cut by its end is no
     * UTF-8 (a lead byte at the very end of a small file is a single-byte letter). */
    if (enc != JOBQ_LETTERS_AUTO)
        detected = JOBQ_LETTERS_AUTO;
    else if (size > 0 && (uint64_t)sample == size)
        detected = jobq_letters_detect_all(head, sample);
    else
        detected = jobq_letters_detect(head, sample);
    /* The detector calls a mark UTF-16 only when the code unit after it has a control byte,
     * which text starting with CJK or U+2026 lacks; a NUL further on settles it, since
     * single-byte Russian text holds none. */
    if (enc == JOBQ_LETTERS_AUTO && detected != JOBQ_LETTERS_UTF16LE &&
        detected != JOBQ_LETTERS_UTF16BE && sample >= 2 && memchr(head, 0, sample) != NULL) {
        if (head[0] == 0xFF && head[1] == 0xFE)
            detected = JOBQ_LETTERS_UTF16LE;
        else if (head[0] == 0xFE && head[1] == 0xFF)
            detected = JOBQ_LETTERS_UTF16BE;
    }
    if (enc == JOBQ_LETTERS_AUTO &&
        (detected == JOBQ_LETTERS_UTF16LE || detected == JOBQ_LETTERS_UTF16BE)) {
        set_result(f, LT_FAILED,
                   lt_strdupf("%s text (byte-order mark) is not supported; convert it to UTF-8",
                              detected == JOBQ_LETTERS_UTF16LE ? "UTF-16LE" : "UTF-16BE"));
        free(head);
        return;
    }
    if (!cfg->binary && memchr(head, 0, sample) != NULL) {
        set_result(f, LT_SKIPPED,
                   lt_strdupf("binary file (NUL byte in the first %u KiB), skipped; "
                              "--binary counts it",
                              (unsigned)(LT_HEAD_SIZE / 1024)));
        free(head);
        return;
    }
    if (enc == JOBQ_LETTERS_AUTO)
        enc = detected; /* still AUTO when the head is pure ASCII */
    if (n == 0 && size == 0) {
        free(head);
        f->status = LT_OK;
        f->enc = enc;
        f->bytes = 0;
        set_result(f, LT_OK, lt_strdupf("empty file"));
        return;
    }
    /* Files that report size 0 but have data (procfs and the like) are read to EOF. */
    end = size == 0 ? UINT64_MAX : size;
    chunk = lt_chunk_size(cfg, size, split_above);
    nchunks = chunk > 0 ? (size + chunk - 1) / chunk : 1;
    if (pool != NULL && enc != JOBQ_LETTERS_AUTO && size > split_above && nchunks > 1 &&
        nchunks <= SIZE_MAX) {
        split = 1;
        memset(&cc, 0, sizeof cc);
        cc.fd = fd;
        cc.enc = enc;
        cc.yo = cfg->yo;
        cc.size = size;
        cc.chunk = chunk;
        cc.progress = progress;
        cc.progress_ctx = progress_ctx;
        (void)pthread_mutex_init(&cc.lock, NULL);
        free(head);
        err = jobq_pool_parallel_for(pool, 0, (size_t)nchunks, 1, count_chunks, &cc);
        (void)pthread_mutex_destroy(&cc.lock);
        if (err == 0)
            err = cc.err;
        memset(&r, 0, sizeof r);
        r.counts = cc.counts;
        r.enc = enc;
        r.bytes = size;
        r.err = err;
    } else {
        err = jobq_letters_count_fd_from(fd, head, LT_BLOCK_SIZE, (size_t)n, end, enc, cfg->yo,
                                         &r);
        free(head);
        if (progress != NULL)
            progress(progress_ctx, end == UINT64_MAX ? r.bytes : size);
    }
    f->enc = r.enc;
    f->bytes = r.bytes;
    f->counts = r.counts;
    if (err == 0) {
        set_result(f, LT_OK, NULL);
        return;
    }
    if (err == JOBQ_EIO && fstat(fd, &st2) != 0)
        st2.st_size = 0; /* treated as shrunk */
    if (err == JOBQ_EIO && (uint64_t)st2.st_size < size) {
        set_result(f, LT_FAILED,
                   lt_strdupf("file shrank while it was being read (from %llu to %llu bytes)",
                              (unsigned long long)size, (unsigned long long)st2.st_size));
        return;
    }
    /* EOF before the size that stat still reports: no disk file does that, but sysfs files
     * report 4096 bytes whatever they hold. What the file gave is all there is to count
     * (as cat would). Only the unsplit path can get here: such files are one page. */
    if (err == JOBQ_EIO && !split) {
        set_result(f, LT_OK,
                   lt_strdupf("ended after %llu of the %llu bytes its size says; counted those",
                              (unsigned long long)r.bytes, (unsigned long long)size));
        return;
    }
    fail_errno(f, "read error: ", -err);
}

uint64_t
lt_chunk_size(const lt_config *cfg, uint64_t size, uint64_t split_above)
{
    uint64_t chunk = cfg->chunk_size, threads = cfg->threads > 0 ? cfg->threads : 1;

    if (chunk == 0 && split_above == 0) {
        /* --mode chunks: about four chunks per thread, so that every file is shared. */
        chunk = size / (4u * threads) + 1;
        if (chunk < LT_CHUNK_MIN)
            chunk = LT_CHUNK_MIN;
    } else if (chunk == 0) {
        chunk = LT_CHUNK_DEFAULT;
    }
    return chunk;
}

void
lt_count_file(const lt_config *cfg, lt_file *f, jobq_pool *pool, uint64_t split_above,
              void (*progress)(void *ctx, uint64_t bytes), void *progress_ctx)
{
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    int fd;

    f->enc = JOBQ_LETTERS_AUTO;
    f->bytes = 0;
    memset(&f->counts, 0, sizeof f->counts);
    test_hook("open");
    if (f->nofollow)
        flags |= O_NOFOLLOW;
    fd = open(f->path, flags);
    if (fd < 0) {
        if (errno == ENOENT)
            set_result(f, LT_FAILED, lt_strdupf("vanished before it could be read (%s)",
                                                strerror(ENOENT)));
        else if (errno == ELOOP && f->nofollow)
            set_result(f, LT_FAILED, lt_strdupf("replaced by a symbolic link during the scan"));
        else
            fail_errno(f, "", errno);
        return;
    }
    count_open_file(cfg, f, fd, pool, split_above, progress, progress_ctx);
    (void)close(fd);
}
