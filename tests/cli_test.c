/* Helpers of the tests that run the tcorex program (cli_test.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_test.h"

void run(const char *command, run_output *out)
{
  char full[COMMAND_MAX + 16];
  FILE *pipe;
  size_t length = 0;
  int status;

  snprintf(full, sizeof(full), "%s 2>&1", command);
  pipe = popen(full, "r");
  assert_non_null(pipe);
  while (length + 1 < sizeof(out->text) &&
         fgets(out->text + length, (int)(sizeof(out->text) - length), pipe))
    length += strlen(out->text + length);
  out->text[length] = '\0';
  status = pclose(pipe);
  out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

void run_cli(const char *args, run_output *out)
{
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command), "%s %s", TCX_CLI_PATH, args);
  run(command, out);
}

void run_mpi(int ranks, const char *args, run_output *out)
{
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command),
           "OPENBLAS_NUM_THREADS=1 %s -n %d %s %s %s", TCX_MPIEXEC, ranks,
           TCX_MPIEXEC_FLAGS, TCX_CLI_PATH, args);
  run(command, out);
}

int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

int setup_dir(void **state)
{
  cli_fixture *fixture = calloc(1, sizeof(*fixture));

  if (!fixture)
    return -1;
  snprintf(fixture->dir, sizeof(fixture->dir), "%s/tcx_cli_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(fixture->dir))
    return -1;
  *state = fixture;
  return 0;
}

int teardown_dir(void **state)
{
  cli_fixture *fixture = *state;
  char command[512];

  snprintf(command, sizeof(command), "rm -rf '%s'", fixture->dir);
  if (system(command) != 0)
    fprintf(stderr, "cannot remove %s\n", fixture->dir);
  free(fixture);
  return 0;
}

double *read_dataset(const char *path, const char *name,
                            hsize_t *count)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset, space;
  double *values;
  hssize_t points;

  assert_true(file >= 0);
  dataset = H5Dopen2(file, name, H5P_DEFAULT);
  assert_true(dataset >= 0);
  space = H5Dget_space(dataset);
  points = H5Sget_simple_extent_npoints(space);
  assert_true(points > 0);
  values = calloc((size_t)points, sizeof(double));
  assert_non_null(values);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, values) >= 0);
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  *count = (hsize_t)points;
  return values;
}

double score_mean(const char *text)
{
  const char *line = strstr(text, "mean\t");
  double nll = NAN;
  long long rows = 0;

  assert_non_null(line);
  assert_int_equal(sscanf(line, "mean\t%lld\t%lf", &rows, &nll), 2);
  return nll;
}
