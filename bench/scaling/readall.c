/*
 * readall.c - the limit for letter counting: read() every byte of the given files (or every
 * regular file under the given directories) with N threads and throw the bytes away.
 *
 * The scaling harness runs it beside jobq-letters over the same inputs: a counter cannot be
 * faster than reading its input, so "our time / readall time" says how close to I/O-bound (or
 * page-cache-bound) the counter is. Same block size as the counter (256 KiB).
 *
 * Usage: jobq-readall [-j THREADS] PATH...    prints "bytes=<n> wall_s=<s>" on stdout.
 * Exit: 0 ok, 1 some file unreadable (reported on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jobq.h>

#define BLOCK (256u * 1024u)

struct files {
    char **paths;
    size_t n, cap;
};

struct ctx {
    struct files *files;
    atomic_ullong bytes;
    atomic_int failed;
};

static int
add_path(struct files *f, const char *path)
{
    char **p;

    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        p = realloc(f->paths, f->cap * sizeof(*p));
        if (p == NULL)
            return -1;
        f->paths = p;
    }
    f->paths[f->n] = strdup(path);
    return f->paths[f->n++] == NULL ? -1 : 0;
}

/* Collect regular files under path (no symlinks followed), in directory order. */
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
        return add_path(f, path) == 0 ? 0 : 2;
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
            r = 2;
            break;
        }
        r |= walk(f, sub);
        free(sub);
    }
    closedir(d);
    return r;
}

static int
read_one(void *arg, size_t b, size_t e)
{
    struct ctx *c = arg;
    char *buf = malloc(BLOCK);
    size_t i;

    if (buf == NULL)
        return JOBQ_ENOMEM;
    for (i = b; i < e; i++) {
        int fd = open(c->files->paths[i], O_RDONLY | O_CLOEXEC);
        ssize_t got;
        unsigned long long total = 0;

        if (fd < 0) {
            fprintf(stderr, "jobq-readall: %s: %s\n", c->files->paths[i], strerror(errno));
            atomic_store(&c->failed, 1);
            continue;
        }
        while ((got = read(fd, buf, BLOCK)) > 0)
            total += (unsigned long long)got;
        if (got < 0) {
            fprintf(stderr, "jobq-readall: %s: %s\n", c->files->paths[i], strerror(errno));
            atomic_store(&c->failed, 1);
        }
        close(fd);
        atomic_fetch_add(&c->bytes, total);
    }
    free(buf);
    return 0;
}

int
main(int argc, char **argv)
{
    struct files files = {NULL, 0, 0};
    struct ctx c;
    jobq_pool_options opts;
    jobq_pool *pool;
    struct timespec t0, t1;
    int opt, r = 0, err;
    size_t i;

    jobq_pool_options_init(&opts);
    while ((opt = getopt(argc, argv, "j:h")) != -1) {
        switch (opt) {
        case 'j':
            opts.threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: jobq-readall [-j THREADS] PATH...\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc || opts.threads == 0) {
        fprintf(stderr, "usage: jobq-readall [-j THREADS] PATH...\n");
        return 2;
    }
    for (; optind < argc; optind++)
        r |= walk(&files, argv[optind]);
    if (r & 2) {
        fprintf(stderr, "jobq-readall: out of memory\n");
        return 2;
    }
    c.files = &files;
    atomic_init(&c.bytes, 0);
    atomic_init(&c.failed, 0);
    err = jobq_pool_create(&pool, &opts);
    if (err != 0) {
        fprintf(stderr, "jobq-readall: %s\n", jobq_strerror(err));
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    err = jobq_pool_parallel_for(pool, 0, files.n, 1, read_one, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    jobq_pool_destroy(pool);
    if (err != 0)
        fprintf(stderr, "jobq-readall: %s\n", jobq_strerror(err));
    printf("bytes=%llu wall_s=%.6f\n", (unsigned long long)atomic_load(&c.bytes),
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    for (i = 0; i < files.n; i++)
        free(files.paths[i]);
    free(files.paths);
    return err != 0 ? 2 : (r != 0 || atomic_load(&c.failed)) ? 1 : 0;
}
