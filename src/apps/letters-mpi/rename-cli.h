/* Forced include for src/apps/letters/main.c in jobq-letters-mpi: see lt-mpi.h. */
#define main lt_mpi_cli_main
#define lt_run lt_mpi_run
int main(int argc, char **argv);
