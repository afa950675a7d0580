/* Helpers of the tests that run the tcorex program: launching it serially
 * or under mpiexec with its output captured, temporary folders, and reading
 * datasets and score output back. */
#ifndef TCX_CLI_TEST_H
#define TCX_CLI_TEST_H

#include <hdf5.h>

enum { ARGS_MAX = 2048, COMMAND_MAX = 4096, OUTPUT_MAX = 65536 };

typedef struct run_output {
  int exit_code;
  char text[OUTPUT_MAX]; /* stdout and stderr together */
} run_output;

typedef struct cli_fixture {
  char dir[256];
} cli_fixture;

/* Runs a shell command, capturing its output and exit code. */
void run(const char *command, run_output *out);

/* Runs the tcorex program with args as one process, or under mpiexec on
 * ranks processes. */
void run_cli(const char *args, run_output *out);
void run_mpi(int ranks, const char *args, run_output *out);

int file_exists(const char *path);

/* cmocka setup and teardown: a fresh temporary folder in a cli_fixture. */
int setup_dir(void **state);
int teardown_dir(void **state);

/* Reads a whole dataset of a small HDF5 file as double; the caller frees
 * the array. */
double *read_dataset(const char *path, const char *name, hsize_t *count);

/* Returns the value in the last line "mean<TAB>rows<TAB>nll" of score's
 * output. */
double score_mean(const char *text);

#endif
