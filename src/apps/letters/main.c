/*
 * main.c - jobq-letters: how often does each Russian letter occur in these files?
 *
 * Parses the options into an lt_config, runs the engine (engine.c), prints the report (output.c)
 * and turns the outcome into the documented exit status: 0 everything named was read, 1 some
 * inputs failed but others were counted, 2 a usage error or nothing could be read.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lt.h"

#define EXIT_SOME_FAILED 1
#define EXIT_USAGE 2

/* jobq-letters-mpi compiles this file too (rename-cli.h defines LT_HELP_MPI): its help names
 * it and says what --mode means there; everything else is the same. */
#ifdef LT_HELP_MPI
#define LT_HELP_USAGE "Usage: mpirun [MPI OPTION]... jobq-letters-mpi [OPTION]... PATH...\n"
#define LT_HELP_MPI_MODES                                                                       \
    "                        Under MPI rank 0 walks the paths and every rank counts its\n"      \
    "                          share with its own pool: chunks splits every file, any\n"        \
    "                          other mode counts as pool.\n"
#else
#define LT_HELP_USAGE "Usage: " LT_PROG " [OPTION]... PATH...\n"
#define LT_HELP_MPI_MODES ""
#endif

static void
usage(FILE *out)
{
    fputs(LT_HELP_USAGE
          "Count the 33 Russian letters (case-insensitive) in files and directory trees.\n"
          "\n"
          "  -m, --mode MODE       pool (default): a fixed jobq pool, one task per file, files\n"
          "                          over 8 MiB split into chunks counted by the whole pool;\n"
          "                        sequential: no threads, the same walk;\n"
          "                        thread-per-file: one thread per file (at most 256 alive at\n"
          "                          once: the exercise has no cap, the OS has one; -j ignored);\n"
          "                        queues: -j workers fed paths by one jobq_queue, returning\n"
          "                          results on a second one, stopped by one sentinel each;\n"
          "                        chunks: every file split across the pool (about 4 chunks per\n"
          "                          thread, at least 64 KiB each)\n"
          "                        All modes print identical results.\n" LT_HELP_MPI_MODES
          "  -j, --jobs N          worker threads (default: usable CPUs)\n"
          "  -e, --encoding ENC    auto (default: per file, UTF-8 if valid, else cp1251 or\n"
          "                          koi8-r by letter statistics), utf-8, cp1251, koi8-r\n"
          "      --yo MODE         separate (default: 33 letters), merge (ё counted as е),\n"
          "                          ignore (the 32 letters а..я)\n"
          "      --binary          also count files with NUL bytes in their first 64 KiB\n"
          "                          (skipped with a note by default)\n"
          "  -L, --follow          follow symbolic links inside directories (loops are detected\n"
          "                          by device+inode; a file reached twice is counted once).\n"
          "                          Paths named on the command line are always followed.\n"
          "  -x, --exclude GLOB    skip directory entries whose name matches GLOB (repeatable;\n"
          "                          e.g. --exclude '*.dat')\n"
          "      --per-file        also report every file (table and json)\n"
          "  -f, --format FMT      table (default), json, csv\n"
          "      --sort KEY        alpha (default) or count (table and csv)\n"
          "      --chunk-size N    chunk size in bytes for splitting files (K, M, G suffixes;\n"
          "                          default: 2M in pool mode, automatic in chunks mode)\n"
          "  -q, --quiet           no notes (skipped files) and no progress; errors still shown\n"
          "  -h, --help            this help\n"
          "  -V, --version         version\n"
          "\n"
          "Only regular files are read; FIFOs, sockets and devices are skipped with a note and\n"
          "never opened. Progress (files, MB, MB/s, ETA) goes to stderr when it is a terminal\n"
          "and the run takes over half a second. UTF-16 files (byte-order mark) are reported as\n"
          "unsupported.\n"
          "\n"
          "JSON: {\"files\": N, \"bytes\": B, \"total\": T, \"letters\": {\"а\": n, ...},\n"
          "\"errors\": [{\"path\": P, \"error\": E}]} (+ \"per_file\": [{\"path\",\n"
          "\"encoding\", \"bytes\", \"total\", \"letters\"}] with --per-file), errors and\n"
          "files sorted by path. Paths that are not valid UTF-8 are escaped: an invalid byte\n"
          "decodes to the 4 characters \\xNN and a backslash to \\\\, so the JSON stays valid\n"
          "UTF-8 and the original is recoverable.\n"
          "\n"
          "Exit status: 0 every input was read; 1 some inputs failed (each named on stderr\n"
          "with the reason; the rest is counted and printed); 2 usage error, nothing could\n"
          "be read, or the output could not be written. A PATH named on the command line\n"
          "that is not read (not a regular file, binary without --binary) is an input that\n"
          "failed; the same files found inside a directory are notes and leave the status.\n",
          out);
}

/* 0, or EXIT_USAGE with a message if stdout could not be written (a full disk, a closed pipe):
 * a --help that did not reach its reader did not succeed. */
static int
flushed_stdout(void)
{
    int e;

    /* errno is cleared first: when only ferror() reports the failure (an earlier write's), a
     * stale errno from some unrelated call must not be printed as its reason. */
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    e = errno;
    if (e != 0)
        fprintf(stderr, "%s: error writing the output: %s\n", LT_PROG, strerror(e));
    else
        fprintf(stderr, "%s: error writing the output\n", LT_PROG);
    return EXIT_USAGE;
}

static int
bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", LT_PROG);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", LT_PROG);
    return EXIT_USAGE;
}

static int
parse_u64(const char *s, uint64_t *ret, int suffixes)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    if (suffixes && *end != '\0' && end[1] == '\0') {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024 * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
    }
    if (*end != '\0' || v > UINT64_MAX / mul)
        return -1;
    *ret = (uint64_t)v * mul;
    return 0;
}

enum {
    OPT_YO = 256,
    OPT_BINARY,
    OPT_PER_FILE,
    OPT_SORT,
    OPT_CHUNK_SIZE,
};

static const struct option long_options[] = {
    {"mode", required_argument, NULL, 'm'},
    {"jobs", required_argument, NULL, 'j'},
    {"encoding", required_argument, NULL, 'e'},
    {"yo", required_argument, NULL, OPT_YO},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"follow", no_argument, NULL, 'L'},
    {"exclude", required_argument, NULL, 'x'},
    {"per-file", no_argument, NULL, OPT_PER_FILE},
    {"format", required_argument, NULL, 'f'},
    {"sort", required_argument, NULL, OPT_SORT},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, else an exit status. */
static int
parse_args(int argc, char **argv, lt_config *cfg)
{
    int c;
    uint64_t v;
    char **ex;

    for (;;) {
        c = getopt_long(argc, argv, "m:j:e:Lx:f:qhV", long_options, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'm':
            if (strcmp(optarg, "pool") == 0)
                cfg->mode = LT_MODE_POOL;
            else if (strcmp(optarg, "sequential") == 0)
                cfg->mode = LT_MODE_SEQUENTIAL;
            else if (strcmp(optarg, "thread-per-file") == 0)
                cfg->mode = LT_MODE_THREAD_PER_FILE;
            else if (strcmp(optarg, "queues") == 0)
                cfg->mode = LT_MODE_QUEUES;
            else if (strcmp(optarg, "chunks") == 0)
                cfg->mode = LT_MODE_CHUNKS;
            else
                return bad_usage("unknown mode '%s' (pool, sequential, thread-per-file, queues, "
                                 "chunks)",
                                 optarg);
            break;
        case 'j':
            if (parse_u64(optarg, &v, 0) != 0 || v < 1 || v > 4096)
                return bad_usage("-j wants a thread count from 1 to 4096, not '%s'", optarg);
            cfg->threads = (unsigned)v;
            cfg->threads_given = 1;
            break;
        case 'e':
            if (jobq_letters_encoding_parse(optarg, &cfg->encoding) != 0 ||
                cfg->encoding == JOBQ_LETTERS_UTF16LE || cfg->encoding == JOBQ_LETTERS_UTF16BE)
                return bad_usage("unknown encoding '%s' (auto, utf-8, cp1251, koi8-r)", optarg);
            break;
        case OPT_YO:
            if (strcmp(optarg, "separate") == 0)
                cfg->yo = JOBQ_LETTERS_YO_SEPARATE;
            else if (strcmp(optarg, "merge") == 0)
                cfg->yo = JOBQ_LETTERS_YO_MERGE;
            else if (strcmp(optarg, "ignore") == 0)
                cfg->yo = JOBQ_LETTERS_YO_IGNORE;
            else
                return bad_usage("--yo wants separate, merge or ignore, not '%s'", optarg);
            break;
        case OPT_BINARY:
            cfg->binary = 1;
            break;
        case 'L':
            cfg->follow = 1;
            break;
        case 'x':
            ex = realloc(cfg->excludes, (cfg->n_excludes + 1) * sizeof *ex);
            if (ex == NULL)
                return bad_usage("%s", "out of memory");
            cfg->excludes = ex;
            cfg->excludes[cfg->n_excludes++] = optarg;
            break;
        case OPT_PER_FILE:
            cfg->per_file = 1;
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0)
                cfg->format = LT_FORMAT_TABLE;
            else if (strcmp(optarg, "json") == 0)
                cfg->format = LT_FORMAT_JSON;
            else if (strcmp(optarg, "csv") == 0)
                cfg->format = LT_FORMAT_CSV;
            else
                return bad_usage("unknown format '%s' (table, json, csv)", optarg);
            break;
        case OPT_SORT:
            if (strcmp(optarg, "alpha") == 0)
                cfg->sort = LT_SORT_ALPHA;
            else if (strcmp(optarg, "count") == 0)
                cfg->sort = LT_SORT_COUNT;
            else
                return bad_usage("--sort wants alpha or count, not '%s'", optarg);
            break;
        case OPT_CHUNK_SIZE:
            if (parse_u64(optarg, &v, 1) != 0 || v < 1)
                return bad_usage("--chunk-size wants a positive byte count, not '%s'", optarg);
            cfg->chunk_size = v;
            break;
        case 'q':
            cfg->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return flushed_stdout();
        case 'V':
            printf("%s (jobq) %s\n", LT_PROG, JOBQ_VERSION_STRING);
            return flushed_stdout();
        default:
            /* getopt_long has printed what was wrong. */
            fprintf(stderr, "Try '%s --help' for more information.\n", LT_PROG);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return bad_usage("%s", "no PATH given");
    cfg->paths = argv + optind;
    cfg->n_paths = (size_t)(argc - optind);
    return -1;
}

int
main(int argc, char **argv)
{
    lt_config cfg;
    lt_report rep;
    int status, err;

    memset(&cfg, 0, sizeof cfg);
    cfg.threads = jobq_cpu_count();
    status = parse_args(argc, argv, &cfg);
    if (status >= 0) {
        free(cfg.excludes);
        return status;
    }
    err = lt_run(&cfg, &rep);
    free(cfg.excludes);
    if (err != 0)
        return EXIT_USAGE;
    lt_print_report(stdout, &cfg, &rep);
    if (flushed_stdout() != 0) {
        lt_report_free(&rep);
        return EXIT_USAGE;
    }
    if (rep.n_errors == 0)
        status = EXIT_SUCCESS;
    else if (rep.files == 0)
        status = EXIT_USAGE; /* nothing readable */
    else
        status = EXIT_SOME_FAILED;
    lt_report_free(&rep);
    return status;
}
