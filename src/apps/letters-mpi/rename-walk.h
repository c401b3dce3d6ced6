/* Forced include for src/apps/letters/engine.c in jobq-letters-mpi: see lt-mpi.h. */
#define lt_run lt_mpi_walk
#define lt_count_file lt_mpi_scan_file
