/*
 * engine.c - the directory walk (libuv), the five execution modes and the aggregation.
 *
 * Threads. One loop thread owns everything in `engine` except where noted: it runs the walk,
 * hands files to the mode's executor, and receives every result. Workers (pool workers, the
 * per-file threads, the queue workers) only touch the lt_file they were handed, then post it
 * back: onto `results` under `res_lock` (pool, chunks, thread-per-file) or onto the `q_out`
 * jobq_queue (queues), followed by uv_async_send(). The async callback drains the results,
 * aggregates them and pumps the walk again. --mode sequential uses no threads at all: the same
 * walk runs with synchronous uv_fs calls and files are counted inline.
 *
 * The walk. `pending` is a stack of paths still to be stat'ed; a directory's scandir pushes its
 * entries. A stat'ed regular file becomes an lt_file on the `ready` list, and pump() offers ready
 * files to the executor with non-blocking calls only (jobq_pool_try_submit, jobq_queue_try_push,
 * a thread cap). When the executor is full the walk pauses: no new fs request starts while a
 * ready file waits, so memory stays bounded by the fs request cap plus the executor's queue; it
 * resumes from the async callback as completions free space. The loop thread never blocks on a
 * full queue.
 *
 * Links and loops. Paths named on the command line are stat'ed (followed, like find -H); inside
 * directories entries are lstat'ed and symbolic links are skipped with a note unless --follow.
 * With --follow, a directory whose device+inode equals one of its ancestors' is a cycle and is
 * not entered; a file reached by several paths is counted once (under its smallest path), which
 * keeps the output independent of walk order.
 *
 * Determinism. Results arrive in any order; errors and per-file records are sorted by path
 * (byte order) before printing, and totals are sums, so every mode prints the same bytes.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "lt.h"

/* Outstanding uv_fs requests in asynchronous mode (bounds memory and libuv's queue). */
#define FS_MAX_INFLIGHT 32

typedef struct walk_dir {
    struct walk_dir *parent;
    uint64_t dev, ino;
    char *path;
    unsigned refs; /* entries and child dirs pointing here, plus the scandir in flight */
} walk_dir;

typedef struct walk_entry {
    struct walk_entry *next;
    char *path;
    walk_dir *parent; /* NULL for command-line paths */
    int is_file;      /* scandir said "regular file" and links are not followed: no stat */
} walk_entry;

typedef struct engine engine;

typedef struct fs_req {
    uv_fs_t req;
    engine *eng;
    walk_entry *entry; /* stat */
    walk_dir *dir;     /* scandir */
} fs_req;

struct engine {
    const lt_config *cfg;
    lt_report *rep;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t timer;
    int sync; /* --mode sequential: synchronous fs calls, inline counting */
    int handles_open;

    /* walk */
    walk_entry *pending;
    unsigned fs_inflight;
    lt_file *ready_head, *ready_tail;
    int pumping, pump_again;
    int finished;

    /* executors */
    jobq_pool *pool;
    uint64_t split_above;
    jobq_queue *q_in, *q_out;
    pthread_t *workers;
    unsigned n_workers;
    unsigned sentinels_sent;
    unsigned threads_alive;
    size_t inflight; /* handed to a worker, result not drained yet */
    /* Handed to a worker and not finished: workers decrement it as they post results and wake
     * the loop only when it is at most wake_at (the executor is half empty, so the walk should
     * go on) or the posted results would otherwise wait too long. A wake-up per file cost a
     * syscall on each side and a context switch that pre-empted a worker on small machines. */
    _Atomic size_t unfinished;
    size_t wake_at;
    _Atomic unsigned unannounced; /* results posted since the last wake-up */

    /* results posted by workers; guarded by res_lock */
    pthread_mutex_t res_lock;
    lt_file *res_head, *res_tail;

    /* aggregation */
    lt_record *records;
    size_t n_records, cap_records;
    size_t cap_errors;
    int keep_records;

    /* progress (loop thread, except live_bytes which workers add to) */
    _Atomic uint64_t live_bytes;
    uint64_t files_found, bytes_found, files_done;
    int sizes_unknown; /* some files were queued from their dirent type alone */
    uint64_t t_start, t_last;
    int tty, progress_shown;
};

static void pump(engine *eng);

/* ------------------------------------------------------------------------------------------ */
/* Messages (loop thread only)                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void
clear_progress(engine *eng)
{
    if (eng->progress_shown) {
        fputs("\r\033[K", stderr);
        eng->progress_shown = 0;
    }
}

static void
note(engine *eng, const char *path, const char *msg)
{
    if (eng->cfg->quiet)
        return;
    clear_progress(eng);
    fprintf(stderr, "%s: ", LT_PROG);
    lt_fputs_escaped(stderr, path);
    fprintf(stderr, ": %s\n", msg);
}

static void
add_error(engine *eng, const char *path, const char *msg)
{
    lt_report *rep = eng->rep;
    lt_error *e;
    size_t cap;

    clear_progress(eng);
    fprintf(stderr, "%s: ", LT_PROG);
    lt_fputs_escaped(stderr, path);
    fprintf(stderr, ": %s\n", msg != NULL ? msg : "out of memory");
    if (rep->n_errors == eng->cap_errors) {
        cap = eng->cap_errors ? 2 * eng->cap_errors : 16;
        e = realloc(rep->errors, cap * sizeof *e);
        if (e == NULL)
            return;
        rep->errors = e;
        eng->cap_errors = cap;
    }
    e = &rep->errors[rep->n_errors];
    e->path = strdup(path);
    e->msg = strdup(msg != NULL ? msg : "out of memory");
    if (e->path == NULL || e->msg == NULL) {
        free(e->path);
        free(e->msg);
        return;
    }
    rep->n_errors++;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void
progress_tick(engine *eng, int force)
{
    uint64_t now = uv_hrtime();
    uint64_t bytes = atomic_load_explicit(&eng->live_bytes, memory_order_relaxed);
    double secs, rate, eta;
    int walking;

    if (!eng->tty || eng->cfg->quiet)
        return;
    if (now - eng->t_start < 500000000u)
        return;
    if (!force && now - eng->t_last < 100000000u)
        return;
    eng->t_last = now;
    secs = (double)(now - eng->t_start) / 1e9;
    rate = (double)bytes / secs;
    walking = eng->pending != NULL || eng->fs_inflight > 0;
    fprintf(stderr, "\r%llu/%llu%s files, %.1f MB, %.1f MB/s", (unsigned long long)eng->files_done,
            (unsigned long long)eng->files_found, walking ? "+" : "", (double)bytes / 1e6,
            rate / 1e6);
    if (!walking && !eng->sizes_unknown && rate > 0 && eng->bytes_found >= bytes) {
        eta = (double)(eng->bytes_found - bytes) / rate;
        fprintf(stderr, ", ETA %.0f s", eta);
    } else if (!walking && eng->files_done > 0) {
        /* Sizes unknown (files queued from dirent types): estimate by file count. */
        eta = secs * (double)(eng->files_found - eng->files_done) / (double)eng->files_done;
        fprintf(stderr, ", ETA %.0f s", eta);
    }
    fputs("\033[K", stderr);
    eng->progress_shown = 1;
}

static void
on_timer(uv_timer_t *timer)
{
    progress_tick(timer->data, 0);
}

/* Called by workers (any thread) as they finish ranges. */
static void
add_live_bytes(void *ctx, uint64_t bytes)
{
    engine *eng = ctx;

    atomic_fetch_add_explicit(&eng->live_bytes, bytes, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------ */
/* Results (loop thread)                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void
file_free(lt_file *f)
{
    if (f == NULL)
        return;
    free(f->path);
    free(f->msg);
    free(f);
}

static void
keep_record(engine *eng, const lt_file *f)
{
    lt_record *r;
    size_t cap;

    if (eng->n_records == eng->cap_records) {
        cap = eng->cap_records ? 2 * eng->cap_records : 64;
        r = realloc(eng->records, cap * sizeof *r);
        if (r == NULL) {
            add_error((engine *)eng, f->path, "out of memory");
            return;
        }
        eng->records = r;
        eng->cap_records = cap;
    }
    r = &eng->records[eng->n_records];
    r->path = strdup(f->path);
    if (r->path == NULL) {
        add_error(eng, f->path, "out of memory");
        return;
    }
    r->dev = f->dev;
    r->ino = f->ino;
    r->enc = f->enc;
    r->bytes = f->bytes;
    r->counts = f->counts;
    eng->n_records++;
}

static void
handle_result(engine *eng, lt_file *f)
{
    lt_report *rep = eng->rep;

    eng->files_done++;
    switch (f->status) {
    case LT_OK:
        if (f->msg != NULL)
            note(eng, f->path, f->msg);
        if (eng->keep_records) {
            keep_record(eng, f);
        } else {
            rep->files++;
            rep->bytes += f->bytes;
            jobq_letters_add(&rep->counts, &f->counts);
        }
        break;
    case LT_SKIPPED:
        /* A file the user named is one they asked for: not counting it fails the run. */
        if (f->operand) {
            add_error(eng, f->path, f->msg);
            break;
        }
        rep->skipped++;
        note(eng, f->path, f->msg != NULL ? f->msg : "skipped");
        break;
    case LT_FAILED:
        add_error(eng, f->path, f->msg);
        break;
    }
    file_free(f);
    if (eng->sync)
        progress_tick(eng, 0);
}

/* Worker side, after a result is where the loop will find it. */
static void
announce_result(engine *eng)
{
    size_t left = atomic_fetch_sub(&eng->unfinished, 1) - 1;

    if (left <= eng->wake_at || atomic_fetch_add(&eng->unannounced, 1) + 1 >= LT_WAKE_BATCH) {
        atomic_store(&eng->unannounced, 0);
        (void)uv_async_send(&eng->async);
    }
}

/* Worker side: hand f back to the loop thread. */
static void
post_result(engine *eng, lt_file *f)
{
    f->next = NULL;
    (void)pthread_mutex_lock(&eng->res_lock);
    if (eng->res_tail != NULL)
        eng->res_tail->next = f;
    else
        eng->res_head = f;
    eng->res_tail = f;
    (void)pthread_mutex_unlock(&eng->res_lock);
    announce_result(eng);
}

static void
on_async(uv_async_t *async)
{
    engine *eng = async->data;
    lt_file *f, *next;

    (void)pthread_mutex_lock(&eng->res_lock);
    f = eng->res_head;
    eng->res_head = eng->res_tail = NULL;
    (void)pthread_mutex_unlock(&eng->res_lock);
    for (; f != NULL; f = next) {
        next = f->next;
        eng->inflight--;
        if (eng->cfg->mode == LT_MODE_THREAD_PER_FILE) {
            /* The thread posted f as its last act; joining waits only for its return. */
            (void)pthread_join(f->thread, NULL);
            eng->threads_alive--;
        }
        handle_result(eng, f);
    }
    if (eng->q_out != NULL) {
        while (jobq_queue_try_pop(eng->q_out, &f) == 0) {
            eng->inflight--;
            handle_result(eng, f);
        }
    }
    pump(eng);
}

/* ------------------------------------------------------------------------------------------ */
/* Executors                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static int
pool_job_run(void *arg)
{
    lt_file *f = arg;
    engine *eng = f->owner_engine;

    lt_count_file(eng->cfg, f, eng->pool, eng->split_above, add_live_bytes, eng);
    return 0;
}

static void
pool_job_done(void *arg, int err)
{
    lt_file *f = arg;

    /* Runs right after pool_job_run on the same worker; the pool is done with f now. */
    if (err == JOBQ_ECANCELED) {
        f->status = LT_FAILED;
        free(f->msg);
        f->msg = strdup("canceled");
    }
    post_result(f->owner_engine, f);
}

static void *
file_thread_main(void *arg)
{
    lt_file *f = arg;
    engine *eng = f->owner_engine;

    lt_count_file(eng->cfg, f, NULL, 0, add_live_bytes, eng);
    post_result(eng, f);
    return NULL;
}

static void *
queue_worker_main(void *arg)
{
    engine *eng = arg;
    lt_file *f;

    for (;;) {
        if (jobq_queue_pop(eng->q_in, &f) != 0 || f == NULL)
            break; /* NULL is the sentinel: one per worker */
        lt_count_file(eng->cfg, f, NULL, 0, add_live_bytes, eng);
        /* q_out can hold every file in flight (see engine_setup), so this never waits long.
         * It fails only if q_out is unusable; the result list the other modes use still
         * reaches the loop (on_async drains both), so the file is neither lost nor waited for
         * forever. */
        if (jobq_queue_push(eng->q_out, &f) != 0) {
            post_result(eng, f);
            continue;
        }
        announce_result(eng);
    }
    return NULL;
}

/* Offer f to the executor: 0 taken (or counted inline), JOBQ_EAGAIN full, else failed. */
static int
offer(engine *eng, lt_file *f)
{
    jobq_job job;
    int err;

    f->owner_engine = eng;
    if (eng->cfg->mode == LT_MODE_SEQUENTIAL) {
        lt_count_file(eng->cfg, f, NULL, 0, add_live_bytes, eng);
        handle_result(eng, f);
        return 0;
    }
    /* Before the hand-over: the worker may finish f before we return. */
    atomic_fetch_add(&eng->unfinished, 1);
    switch (eng->cfg->mode) {
    case LT_MODE_POOL:
    case LT_MODE_CHUNKS:
        job.run = pool_job_run;
        job.done = pool_job_done;
        job.arg = f;
        err = jobq_pool_try_submit(eng->pool, &job);
        break;
    case LT_MODE_THREAD_PER_FILE:
        if (eng->threads_alive >= LT_MAX_FILE_THREADS)
            return JOBQ_EAGAIN;
        err = pthread_create(&f->thread, NULL, file_thread_main, f);
        if (err == EAGAIN && eng->threads_alive > 0)
            return JOBQ_EAGAIN; /* out of threads for now: retry when one ends */
        if (err != 0)
            return -err;
        eng->threads_alive++;
        break;
    case LT_MODE_QUEUES:
        err = jobq_queue_try_push(eng->q_in, &f);
        break;
    default:
        err = JOBQ_EINVAL;
    }
    if (err == 0)
        eng->inflight++;
    else
        atomic_fetch_sub(&eng->unfinished, 1);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* The walk                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void
dir_unref(walk_dir *d)
{
    walk_dir *parent;

    while (d != NULL && --d->refs == 0) {
        parent = d->parent;
        free(d->path);
        free(d);
        d = parent;
    }
}

static void
entry_free(walk_entry *e)
{
    if (e == NULL)
        return;
    dir_unref(e->parent);
    free(e->path);
    free(e);
}

static int
push_entry(engine *eng, char *path, walk_dir *parent, int is_file)
{
    walk_entry *e = malloc(sizeof *e);

    if (e == NULL) {
        free(path);
        return JOBQ_ENOMEM;
    }
    e->path = path;
    e->parent = parent;
    e->is_file = is_file;
    if (parent != NULL)
        parent->refs++;
    e->next = eng->pending;
    eng->pending = e;
    return 0;
}

static const char *
kind_name(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    return "not a regular file";
}

static const char *
fs_error(int uverr)
{
    if (uverr == UV_ELOOP)
        return "too many levels of symbolic links (a symlink loop)";
    return uv_strerror(uverr);
}

static const char *
dirent_skip_msg(uv_dirent_type_t type)
{
    switch (type) {
    case UV_DIRENT_LINK:
        return "symbolic link, not followed (--follow follows links)";
    case UV_DIRENT_FIFO:
        return "a FIFO, skipped (only regular files are read)";
    case UV_DIRENT_SOCKET:
        return "a socket, skipped (only regular files are read)";
    case UV_DIRENT_CHAR:
        return "a character device, skipped (only regular files are read)";
    case UV_DIRENT_BLOCK:
        return "a block device, skipped (only regular files are read)";
    default:
        return "not a regular file, skipped";
    }
}

static void start_scandir(engine *eng, walk_dir *dir);
static void add_ready(engine *eng, const walk_entry *e, const uv_stat_t *st);

static void
on_scandir_done(engine *eng, walk_dir *dir, uv_fs_t *req)
{
    uv_dirent_t ent;
    char *path;
    size_t n, k;
    int sep, excluded;

    if (req->result < 0) {
        add_error(eng, dir->path, fs_error((int)req->result));
        return;
    }
    n = strlen(dir->path);
    sep = n > 0 && dir->path[n - 1] != '/';
    while (uv_fs_scandir_next(req, &ent) != UV_EOF) {
        excluded = 0;
        for (k = 0; k < eng->cfg->n_excludes && !excluded; k++)
            excluded = fnmatch(eng->cfg->excludes[k], ent.name, 0) == 0;
        if (excluded)
            continue;
        path = lt_strdupf("%s%s%s", dir->path, sep ? "/" : "", ent.name);
        /* Without --follow the dirent type is enough for everything but directories (whose
         * device+inode the cycle check needs): no lstat round trip per file. A file swapped
         * for something else later is caught by O_NOFOLLOW | O_NONBLOCK and fstat at open. */
        if (!eng->cfg->follow && ent.type != UV_DIRENT_FILE && ent.type != UV_DIRENT_DIR &&
            ent.type != UV_DIRENT_UNKNOWN) {
            eng->rep->skipped++;
            if (path != NULL)
                note(eng, path, dirent_skip_msg(ent.type));
            free(path);
            continue;
        }
        if (path == NULL ||
            push_entry(eng, path, dir, !eng->cfg->follow && ent.type == UV_DIRENT_FILE) != 0) {
            add_error(eng, dir->path, "out of memory");
            break;
        }
    }
}

static void
on_stat_done(engine *eng, walk_entry *e, uv_fs_t *req)
{
    const uv_stat_t *st = &req->statbuf;
    walk_dir *d, *a;
    char *msg;
    mode_t m;

    if (req->result < 0) {
        add_error(eng, e->path, fs_error((int)req->result));
        return;
    }
    m = (mode_t)st->st_mode;
    if (S_ISLNK(m)) {
        eng->rep->skipped++;
        note(eng, e->path, "symbolic link, not followed (--follow follows links)");
        return;
    }
    if (S_ISDIR(m)) {
        for (a = e->parent; a != NULL; a = a->parent) {
            if (a->dev == st->st_dev && a->ino == st->st_ino)
                break;
        }
        if (a != NULL) {
            eng->rep->skipped++;
            msg = lt_strdupf("directory cycle (same directory as an ancestor), not entered");
            note(eng, e->path, msg != NULL ? msg : "directory cycle");
            free(msg);
            return;
        }
        d = calloc(1, sizeof *d);
        if (d == NULL || (d->path = strdup(e->path)) == NULL) {
            free(d);
            add_error(eng, e->path, "out of memory");
            return;
        }
        d->dev = st->st_dev;
        d->ino = st->st_ino;
        d->parent = e->parent;
        if (d->parent != NULL)
            d->parent->refs++;
        d->refs = 1; /* the scandir */
        start_scandir(eng, d);
        return;
    }
    if (!S_ISREG(m)) {
        msg = lt_strdupf("%s, %s (only regular files are read)", kind_name(m),
                         e->parent == NULL ? "not read" : "skipped");
        if (e->parent == NULL) { /* named on the command line: an error, as above */
            add_error(eng, e->path, msg);
        } else {
            eng->rep->skipped++;
            note(eng, e->path, msg != NULL ? msg : "skipped");
        }
        free(msg);
        return;
    }
    add_ready(eng, e, st);
}

/* Queue the regular file e for counting; st is NULL when only the dirent type is known. */
static void
add_ready(engine *eng, const walk_entry *e, const uv_stat_t *st)
{
    lt_file *f = calloc(1, sizeof *f);

    if (f == NULL || (f->path = strdup(e->path)) == NULL) {
        free(f);
        add_error(eng, e->path, "out of memory");
        return;
    }
    if (st != NULL) {
        f->dev = st->st_dev;
        f->ino = st->st_ino;
        f->size = st->st_size;
        eng->bytes_found += f->size;
    } else {
        eng->sizes_unknown = 1;
    }
    /* Inside a directory without --follow the entry is a regular file, not a link: refuse a
     * symlink swapped in before the open. Command-line paths and --follow follow links. */
    f->nofollow = e->parent != NULL && !eng->cfg->follow;
    f->operand = e->parent == NULL;
    eng->files_found++;
    if (eng->ready_tail != NULL)
        eng->ready_tail->next = f;
    else
        eng->ready_head = f;
    eng->ready_tail = f;
}

static void
on_fs_cb(uv_fs_t *req)
{
    fs_req *r = (fs_req *)req;
    engine *eng = r->eng;

    if (req->fs_type == UV_FS_SCANDIR) {
        on_scandir_done(eng, r->dir, req);
        dir_unref(r->dir);
    } else {
        on_stat_done(eng, r->entry, req);
        entry_free(r->entry);
    }
    uv_fs_req_cleanup(req);
    free(r);
    eng->fs_inflight--;
    pump(eng);
}

static void
start_scandir(engine *eng, walk_dir *dir)
{
    fs_req *r = calloc(1, sizeof *r);
    int err;

    if (r == NULL) {
        add_error(eng, dir->path, "out of memory");
        dir_unref(dir);
        return;
    }
    r->eng = eng;
    r->dir = dir;
    eng->fs_inflight++;
    err = uv_fs_scandir(&eng->loop, &r->req, dir->path, 0, eng->sync ? NULL : on_fs_cb);
    if (eng->sync || err < 0) {
        if (err < 0)
            r->req.result = err;
        on_fs_cb(&r->req);
    }
}

static void
start_stat(engine *eng, walk_entry *e)
{
    fs_req *r = calloc(1, sizeof *r);
    uv_fs_cb cb = eng->sync ? NULL : on_fs_cb;
    int err;

    if (r == NULL) {
        add_error(eng, e->path, "out of memory");
        entry_free(e);
        return;
    }
    r->eng = eng;
    r->entry = e;
    eng->fs_inflight++;
    if (e->parent == NULL || eng->cfg->follow)
        err = uv_fs_stat(&eng->loop, &r->req, e->path, cb);
    else
        err = uv_fs_lstat(&eng->loop, &r->req, e->path, cb);
    if (eng->sync || err < 0) {
        if (err < 0) {
            r->req.result = err;
            r->req.fs_type = UV_FS_STAT;
        }
        on_fs_cb(&r->req);
    }
}

static void
close_handles(engine *eng)
{
    if (!eng->handles_open)
        return;
    eng->handles_open = 0;
    uv_close((uv_handle_t *)&eng->async, NULL);
    uv_close((uv_handle_t *)&eng->timer, NULL);
}

static void
stop_workers(engine *eng)
{
    unsigned i;

    if (eng->pool != NULL) {
        jobq_pool_destroy(eng->pool);
        eng->pool = NULL;
    }
    if (eng->workers != NULL) {
        /* Sentinels are queued already when the walk ended; close() covers setup failures. */
        if (eng->sentinels_sent < eng->n_workers)
            jobq_queue_close(eng->q_in);
        for (i = 0; i < eng->n_workers; i++)
            (void)pthread_join(eng->workers[i], NULL);
        free(eng->workers);
        eng->workers = NULL;
        eng->n_workers = 0;
    }
}

/*
 * Offer ready files, then start fs requests while nothing waits for the executor. Re-entrant
 * calls (from synchronous fs callbacks or inline counting) only ask the outer call to go on.
 */
static void
pump(engine *eng)
{
    lt_file *f;
    walk_entry *e;
    int err, moved;

    if (eng->pumping) {
        eng->pump_again = 1;
        return;
    }
    eng->pumping = 1;
    for (;;) {
        moved = 0;
        while ((f = eng->ready_head) != NULL) {
            /* Unlink before offering: once taken, f->next belongs to the worker. */
            eng->ready_head = f->next;
            if (eng->ready_head == NULL)
                eng->ready_tail = NULL;
            f->next = NULL;
            err = offer(eng, f);
            if (err == JOBQ_EAGAIN) {
                f->next = eng->ready_head;
                eng->ready_head = f;
                if (eng->ready_tail == NULL)
                    eng->ready_tail = f;
                break;
            }
            moved = 1;
            if (err != 0) {
                add_error(eng, f->path, jobq_strerror(err));
                file_free(f);
            }
        }
        if (eng->ready_head == NULL && eng->pending != NULL &&
            (eng->sync || eng->fs_inflight < FS_MAX_INFLIGHT)) {
            e = eng->pending;
            eng->pending = e->next;
            if (e->is_file) {
                add_ready(eng, e, NULL);
                entry_free(e);
            } else {
                start_stat(eng, e);
            }
            continue;
        }
        if (!moved && !eng->pump_again)
            break;
        eng->pump_again = 0;
    }
    eng->pumping = 0;

    if (eng->ready_head != NULL || eng->pending != NULL || eng->fs_inflight > 0)
        return;
    /* The walk is over: send the queue workers their sentinels, then wait for the rest. */
    while (eng->q_in != NULL && eng->sentinels_sent < eng->n_workers) {
        f = NULL;
        if (jobq_queue_try_push(eng->q_in, &f) != 0)
            break;
        eng->sentinels_sent++;
    }
    if (eng->inflight == 0 && (eng->q_in == NULL || eng->sentinels_sent == eng->n_workers)) {
        eng->finished = 1;
        /* Workers may still be inside uv_async_send() for results we already drained: stop
         * them all before the async handle goes away (quick: every job has finished). */
        stop_workers(eng);
        close_handles(eng);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Set-up, run, results                                                                        */
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

/* Indices into records, ordered by (dev, ino, path): the first of each run is kept. */
static const lt_record *dedup_base;

static int
cmp_ident(const void *a, const void *b)
{
    const lt_record *x = &dedup_base[*(const size_t *)a], *y = &dedup_base[*(const size_t *)b];

    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return strcmp(x->path, y->path);
}

static void
dedup_records(engine *eng)
{
    size_t *idx, i, j;
    unsigned char *drop;

    idx = malloc(eng->n_records * sizeof *idx);
    drop = calloc(eng->n_records, 1);
    if (idx == NULL || drop == NULL) {
        free(idx);
        free(drop);
        return; /* counting duplicates twice beats failing */
    }
    for (i = 0; i < eng->n_records; i++)
        idx[i] = i;
    dedup_base = eng->records;
    qsort(idx, eng->n_records, sizeof *idx, cmp_ident);
    for (i = 1; i < eng->n_records; i++) {
        if (eng->records[idx[i]].dev == eng->records[idx[i - 1]].dev &&
            eng->records[idx[i]].ino == eng->records[idx[i - 1]].ino)
            drop[idx[i]] = 1;
    }
    for (i = j = 0; i < eng->n_records; i++) {
        if (drop[i])
            free(eng->records[i].path);
        else
            eng->records[j++] = eng->records[i];
    }
    eng->n_records = j;
    free(idx);
    free(drop);
}

static void
finalize(engine *eng)
{
    lt_report *rep = eng->rep;
    size_t i;

    if (rep->n_errors > 1)
        qsort(rep->errors, rep->n_errors, sizeof *rep->errors, cmp_error);
    if (!eng->keep_records)
        return;
    if (eng->n_records > 1)
        qsort(eng->records, eng->n_records, sizeof *eng->records, cmp_record);
    if (eng->cfg->follow && eng->n_records > 1)
        dedup_records(eng);
    for (i = 0; i < eng->n_records; i++) {
        rep->files++;
        rep->bytes += eng->records[i].bytes;
        jobq_letters_add(&rep->counts, &eng->records[i].counts);
    }
    if (eng->cfg->per_file) {
        rep->records = eng->records;
        rep->n_records = eng->n_records;
    } else {
        for (i = 0; i < eng->n_records; i++)
            free(eng->records[i].path);
        free(eng->records);
    }
    eng->records = NULL;
    eng->n_records = 0;
}

static int
setup_executor(engine *eng)
{
    const lt_config *cfg = eng->cfg;
    jobq_pool_options opts;
    size_t cap = cfg->threads * 8u < 64 ? 64 : cfg->threads * 8u;
    unsigned i;
    int err;

    eng->wake_at = cfg->mode == LT_MODE_THREAD_PER_FILE ? LT_MAX_FILE_THREADS / 2 : cap / 2;

    switch (cfg->mode) {
    case LT_MODE_POOL:
    case LT_MODE_CHUNKS:
        jobq_pool_options_init(&opts);
        opts.threads = cfg->threads;
        opts.capacity = cap;
        opts.name = "letters";
        err = jobq_pool_create(&eng->pool, &opts);
        if (err != 0) {
            fprintf(stderr, "%s: cannot start a pool of %u threads: %s\n", LT_PROG,
                    cfg->threads, jobq_strerror(err));
            return err;
        }
        /* chunks: every file larger than one chunk is split; pool: only big files. */
        eng->split_above = cfg->mode == LT_MODE_CHUNKS ? 0 : LT_BIG_FILE;
        return 0;
    case LT_MODE_QUEUES:
        err = jobq_queue_create(&eng->q_in, cap, sizeof(lt_file *));
        if (err == 0)
            err = jobq_queue_create(&eng->q_out, 2 * cap, sizeof(lt_file *));
        if (err == 0) {
            eng->workers = calloc(cfg->threads, sizeof *eng->workers);
            if (eng->workers == NULL)
                err = JOBQ_ENOMEM;
        }
        for (i = 0; err == 0 && i < cfg->threads; i++) {
            err = -pthread_create(&eng->workers[i], NULL, queue_worker_main, eng);
            if (err == 0)
                eng->n_workers++;
        }
        if (err != 0) {
            fprintf(stderr, "%s: cannot start %u queue workers: %s\n", LT_PROG, cfg->threads,
                    err == JOBQ_ENOMEM ? jobq_strerror(err) : strerror(-err));
            return err;
        }
        return 0;
    default:
        return 0;
    }
}

int
lt_run(const lt_config *cfg, lt_report *rep)
{
    engine *eng;
    size_t i;
    char *path;
    int err;

    memset(rep, 0, sizeof *rep);
    eng = calloc(1, sizeof *eng);
    if (eng == NULL)
        return JOBQ_ENOMEM;
    eng->cfg = cfg;
    eng->rep = rep;
    eng->sync = cfg->mode == LT_MODE_SEQUENTIAL;
    eng->keep_records = cfg->per_file || cfg->follow;
    eng->tty = isatty(STDERR_FILENO);
    atomic_init(&eng->live_bytes, 0);
    err = uv_loop_init(&eng->loop);
    if (err != 0) {
        fprintf(stderr, "%s: cannot start the event loop: %s\n", LT_PROG, uv_strerror(err));
        free(eng);
        return JOBQ_ENOMEM;
    }
    (void)pthread_mutex_init(&eng->res_lock, NULL);
    if (!eng->sync) {
        (void)uv_async_init(&eng->loop, &eng->async, on_async);
        eng->async.data = eng;
        (void)uv_timer_init(&eng->loop, &eng->timer);
        eng->timer.data = eng;
        (void)uv_timer_start(&eng->timer, on_timer, 100, 100);
        eng->handles_open = 1;
    }
    err = setup_executor(eng);
    eng->t_start = uv_hrtime();
    /* Pushed in reverse so the stack starts with the first path (only affects the order of
     * messages; the output is sorted). */
    for (i = cfg->n_paths; err == 0 && i-- > 0;) {
        path = strdup(cfg->paths[i]);
        if (path == NULL || push_entry(eng, path, NULL, 0) != 0)
            err = JOBQ_ENOMEM;
    }
    if (err == 0) {
        pump(eng);
        if (!eng->sync)
            (void)uv_run(&eng->loop, UV_RUN_DEFAULT);
    } else {
        while (eng->pending != NULL) {
            walk_entry *e = eng->pending;

            eng->pending = e->next;
            entry_free(e);
        }
        stop_workers(eng);
        close_handles(eng);
        (void)uv_run(&eng->loop, UV_RUN_DEFAULT);
    }
    if (eng->progress_shown) {
        progress_tick(eng, 1);
        clear_progress(eng);
    }
    stop_workers(eng);
    jobq_queue_destroy(eng->q_in);
    jobq_queue_destroy(eng->q_out);
    (void)uv_loop_close(&eng->loop);
    (void)pthread_mutex_destroy(&eng->res_lock);
    if (err == 0)
        finalize(eng);
    for (i = 0; i < eng->n_records; i++)
        free(eng->records[i].path);
    free(eng->records);
    free(eng);
    return err;
}

void
lt_report_free(lt_report *rep)
{
    size_t i;

    for (i = 0; i < rep->n_records; i++)
        free(rep->records[i].path);
    free(rep->records);
    for (i = 0; i < rep->n_errors; i++) {
        free(rep->errors[i].path);
        free(rep->errors[i].msg);
    }
    free(rep->errors);
    memset(rep, 0, sizeof *rep);
}
