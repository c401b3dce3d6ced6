/*
 * lt-mpi.h - what jobq-letters-mpi adds to the single-machine tool's internals (lt.h).
 *
 * The executable reuses src/apps/letters/ as it is: main.c (options, exit codes) is compiled with
 * `main` renamed to lt_mpi_cli_main and its call of lt_run() routed to lt_mpi_run(); engine.c
 * (the libuv walk) is compiled a second time with lt_run renamed to lt_mpi_walk and its call of
 * lt_count_file() routed to lt_mpi_scan_file(), which records each file instead of counting it.
 * The renames live in rename-cli.h and rename-walk.h (forced includes, see meson.build).
 */
#ifndef JOBQ_LT_MPI_H
#define JOBQ_LT_MPI_H

#include "lt.h"

/* main.c's main(), renamed: options, run, print, exit status (rank 0 only). */
int lt_mpi_cli_main(int argc, char **argv);
/* What main.c calls instead of lt_run(): the distributed run (rank 0 side). */
int lt_mpi_run(const lt_config *cfg, lt_report *report);
/* engine.c's lt_run(), renamed: the walk, calling lt_mpi_scan_file() for every regular file. */
int lt_mpi_walk(const lt_config *cfg, lt_report *report);
/* Replaces lt_count_file() in the walk: remember f for distribution, count nothing. */
void lt_mpi_scan_file(const lt_config *cfg, lt_file *f, jobq_pool *pool, uint64_t split_above,
                      void (*progress)(void *ctx, uint64_t bytes), void *progress_ctx);

#endif /* JOBQ_LT_MPI_H */
