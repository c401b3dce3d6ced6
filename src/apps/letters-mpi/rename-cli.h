/* Forced include for src/apps/letters/main.c in jobq-letters-mpi: see lt-mpi.h. */
#define main lt_mpi_cli_main
#define lt_run lt_mpi_run
#define LT_HELP_MPI 1 /* --help names jobq-letters-mpi and says what --mode does under MPI */
int main(int argc, char **argv);
