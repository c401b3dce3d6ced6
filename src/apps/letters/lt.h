/*
 * lt.h - internals of the jobq-letters demo shared between its source files (not installed).
 *
 *   main.c    options, exit codes, --help
 *   engine.c  the libuv directory walk, the five execution modes, aggregation, progress
 *   count.c   counting one file (runs on whatever thread the mode chooses)
 *   output.c  table / json / csv, path escaping
 */
#ifndef JOBQ_LT_H
#define JOBQ_LT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jobq.h>
#include <jobq/letters.h>

#define LT_PROG "jobq-letters"
/* Bytes read from the head of every file to detect its encoding and spot binary data. */
#define LT_HEAD_SIZE (64 * 1024)
/* Read size when counting a file (the first read is also the head). */
#define LT_BLOCK_SIZE (256 * 1024)
/* In --mode pool, files larger than this are split into chunks counted by the whole pool. */
#define LT_BIG_FILE (8u * 1024 * 1024)
/* Chunk size for splitting big files in --mode pool. */
#define LT_CHUNK_DEFAULT (2u * 1024 * 1024)
/* --mode chunks splits every file into about 4 chunks per thread, none smaller than this. */
#define LT_CHUNK_MIN (64u * 1024)
/* Workers wake the loop thread at least once per this many results (see engine.c). */
#define LT_WAKE_BATCH 32
/* --mode thread-per-file: at most this many threads alive at once (see --help). */
#define LT_MAX_FILE_THREADS 256

typedef enum lt_mode {
    LT_MODE_POOL = 0,
    LT_MODE_SEQUENTIAL,
    LT_MODE_THREAD_PER_FILE,
    LT_MODE_QUEUES,
    LT_MODE_CHUNKS,
} lt_mode;

typedef enum lt_format { LT_FORMAT_TABLE = 0, LT_FORMAT_JSON, LT_FORMAT_CSV } lt_format;
typedef enum lt_sort { LT_SORT_ALPHA = 0, LT_SORT_COUNT } lt_sort;

typedef struct lt_config {
    lt_mode mode;
    unsigned threads;
    int threads_given; /* -j was on the command line (the MPI tool passes it to every rank) */
    jobq_letters_encoding encoding; /* AUTO: per file */
    jobq_letters_yo yo;
    int binary;   /* count files with NUL bytes in their head */
    int follow;   /* follow symbolic links found while walking */
    int per_file; /* report every file */
    lt_format format;
    lt_sort sort;
    int quiet;
    uint64_t chunk_size; /* 0: automatic (see LT_CHUNK_*) */
    char **excludes; /* glob patterns matched against base names found while walking */
    size_t n_excludes;
    char **paths;
    size_t n_paths;
} lt_config;

/* Outcome of one file. */
typedef enum lt_status {
    LT_OK = 0,  /* counted */
    LT_SKIPPED, /* deliberately not counted (binary file): a note, or an error for an operand */
    LT_FAILED,  /* could not be counted: an error */
} lt_status;

/*
 * One regular file found by the walk. Created and destroyed on the loop thread; between hand-off
 * and return it belongs to exactly one worker, which fills the result fields.
 */
typedef struct lt_file {
    struct lt_file *next; /* intrusive list link (ready list, result list) */
    char *path;
    uint64_t dev, ino; /* from the walk's stat */
    uint64_t size;     /* from the walk's stat (a hint for progress; the worker re-checks) */
    int nofollow;      /* open with O_NOFOLLOW: the walk saw a regular file, not a link */
    int operand;       /* named on the command line: not counting it is an error, not a note */
    /* result */
    lt_status status;
    char *msg; /* reason for LT_SKIPPED / LT_FAILED (malloc'd) */
    jobq_letters_encoding enc;
    uint64_t bytes;
    jobq_letters_counts counts;
    /* mode-specific */
    void *owner_engine; /* the engine that walks it */
    pthread_t thread;   /* --mode thread-per-file */
} lt_file;

/* A per-file report kept for output (--per-file) or de-duplication (--follow). */
typedef struct lt_record {
    char *path;
    uint64_t dev, ino;
    jobq_letters_encoding enc;
    uint64_t bytes;
    jobq_letters_counts counts;
} lt_record;

typedef struct lt_error {
    char *path;
    char *msg;
} lt_error;

/* What the run produced; output.c prints it. */
typedef struct lt_report {
    uint64_t files;
    uint64_t bytes;
    jobq_letters_counts counts;
    lt_record *records; /* sorted by path; only with --per-file */
    size_t n_records;
    lt_error *errors; /* sorted by path */
    size_t n_errors;
    uint64_t skipped; /* notes: binary files, links, special files */
} lt_report;

/* count.c: read up to len bytes from the start of fd (pread, EINTR retried); returns the
 * count (short only at EOF) or -1 with errno set. */
ssize_t lt_read_head(int fd, unsigned char *buf, size_t len);
/* count.c: the chunk size for splitting a file of `size` bytes (cfg->chunk_size, or the
 * automatic choice when it is 0; split_above 0 means --mode chunks). Never 0. */
uint64_t lt_chunk_size(const lt_config *cfg, uint64_t size, uint64_t split_above);
/* count.c: count f (path, nofollow) into its result fields. pool may be NULL (no chunks). */
void lt_count_file(const lt_config *cfg, lt_file *f, jobq_pool *pool, uint64_t split_above,
                   void (*progress)(void *ctx, uint64_t bytes), void *progress_ctx);

/* engine.c: walk cfg->paths in cfg->mode and fill *report. Returns 0 or a JOBQ_E* code when
 * the run could not be set up (the message has been printed). */
int lt_run(const lt_config *cfg, lt_report *report);
void lt_report_free(lt_report *report);

/* output.c */
void lt_print_report(FILE *out, const lt_config *cfg, const lt_report *report);
/* Write s for humans (stderr, table): printable UTF-8 as is, control characters as \n, \t or
 * \xNN, invalid UTF-8 bytes as \xNN, backslash as \\. */
void lt_fputs_escaped(FILE *out, const char *s);
/* Write s as the inside of a JSON string (see --help for the scheme). */
void lt_fputs_json(FILE *out, const char *s);

/* A malloc'd printf; NULL on allocation failure. */
char *lt_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* JOBQ_LT_H */
