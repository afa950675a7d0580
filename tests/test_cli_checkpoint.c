/* Checkpoint and restart through the tcorex program under mpirun -n 2. A
 * real SIGTERM to the ranks and a SIGUSR1 to mpirun stop the fit with exit
 * code 75, a checkpoint and no model. The resumed fit writes the same model
 * as an uninterrupted one, bit for bit. SIGKILL leaves a checkpoint that
 * resumes and no model. A breakdown exits with code 5 and keeps the
 * last checkpoint. Mismatching resumes are rejected. This program does not
 * initialise MPI itself, because it launches mpirun. */
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

enum { COMMAND_MAX = 8192, OUTPUT_MAX = 65536, PATH_MAX_LENGTH = 512 };

/* Seconds to wait for a progress line or a checkpoint file before the test
 * fails, far above the second or so that either takes. */
#define WAIT_SECONDS 120.0

/* Fit options shared by every run: about 4 s at 2 ranks on an idle machine
 * (1001 variables, 7 stages of 1000 steps), long enough to be signalled
 * after its first progress line. */
#define FIT_OPTIONS                                                          \
  "--dataset /train --factors 3 --l1 0.1 --max-iter 1000 --tol 1e-12"

typedef struct cli_fixture {
  char dir[256];
  char data[PATH_MAX_LENGTH];
} cli_fixture;

static void join(char *buffer, size_t size, const char *dir, const char *name)
{
  snprintf(buffer, size, "%s/%s", dir, name);
}

static int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Runs a shell command with stdout and stderr into log and returns its
 * exit code. */
static int run_logged(const char *command, const char *log)
{
  char full[COMMAND_MAX + 600];
  int status;

  snprintf(full, sizeof(full), "%s > '%s' 2>&1", command, log);
  status = system(full);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Writes the mpirun -n 2 command line of a fit with extra options. */
static void fit_command(const cli_fixture *fixture, const char *extra,
                        char *command, size_t size)
{
  snprintf(command, size,
           "OPENBLAS_NUM_THREADS=1 exec %s -n 2 %s %s fit --input '%s' "
           FIT_OPTIONS " %s",
           TCX_MPIEXEC, TCX_MPIEXEC_FLAGS, TCX_CLI_PATH, fixture->data, extra);
}

/* Starts a command in the background through sh, whose exec makes the
 * returned process id that of mpirun. */
static pid_t start_logged(const char *command, const char *log)
{
  char full[COMMAND_MAX + 600];
  pid_t pid;

  snprintf(full, sizeof(full), "%s > '%s' 2>&1", command, log);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", full, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int wait_exit_code(pid_t pid)
{
  int status = 0;

  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Reads a text file into text (truncated to size - 1 bytes). */
static void read_text(const char *path, char *text, size_t size)
{
  FILE *file = fopen(path, "r");
  size_t length = 0;

  text[0] = '\0';
  if (!file)
    return;
  length = fread(text, 1, size - 1, file);
  text[length] = '\0';
  fclose(file);
}

static void sleep_briefly(void)
{
  const struct timespec pause = {0, 50 * 1000 * 1000};

  nanosleep(&pause, NULL);
}

/* Waits until the log contains phrase, or path exists when phrase is NULL.
 * Fails when the process ends first or after WAIT_SECONDS. */
static void wait_for(pid_t pid, const char *log, const char *phrase,
                     const char *path)
{
  static char text[OUTPUT_MAX];
  double waited = 0.0;

  for (;;) {
    int status;

    if (phrase) {
      read_text(log, text, sizeof(text));
      if (strstr(text, phrase))
        return;
    } else if (file_exists(path)) {
      return;
    }
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
    assert_true(waited < WAIT_SECONDS);
    sleep_briefly();
    waited += 0.05;
  }
}

/* Sends signal to the processes whose parent is pid: the ranks that mpirun
 * started. */
static void signal_children(pid_t pid, const char *signal_name)
{
  char command[128];

  snprintf(command, sizeof(command), "pkill -%s -P %d", signal_name,
           (int)pid);
  assert_int_equal(system(command), 0);
}

/* Reads a dataset of an HDF5 file as doubles. */
static double *read_dataset(const char *path, const char *name,
                            hssize_t *count)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset, space;
  double *values;

  assert_true(file >= 0);
  dataset = H5Dopen2(file, name, H5P_DEFAULT);
  assert_true(dataset >= 0);
  space = H5Dget_space(dataset);
  *count = H5Sget_simple_extent_npoints(space);
  assert_true(*count > 0);
  values = calloc((size_t)*count, sizeof(double));
  assert_non_null(values);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, values) >= 0);
  H5Sclose(space);
  H5Dclose(dataset);
  H5Fclose(file);
  return values;
}

/* Checks that two model files hold the same fit, bit for bit. */
static void assert_same_model(const char *expected, const char *actual)
{
  const char *names[] = {"/weights", "/factors", "/mi", "/tcs", "/mean",
                         "/std", "/objective_main",
                         "/objective_regularization"};

  for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
    hssize_t expected_count, actual_count;
    double *a = read_dataset(expected, names[k], &expected_count);
    double *b = read_dataset(actual, names[k], &actual_count);

    assert_int_equal(actual_count, expected_count);
    if (memcmp(a, b, (size_t)expected_count * sizeof(double)) != 0)
      fprintf(stderr, "dataset %s of %s differs from %s\n", names[k], actual,
              expected);
    assert_memory_equal(a, b, (size_t)expected_count * sizeof(double));
    free(a);
    free(b);
  }
}

/* Simulates the data and fits the uninterrupted reference model. */
static int setup_fixture(void **state)
{
  cli_fixture *fixture = calloc(1, sizeof(*fixture));
  char command[COMMAND_MAX], log[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];

  if (!fixture)
    return -1;
  snprintf(fixture->dir, sizeof(fixture->dir), "%s/tcx_ckpt_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(fixture->dir))
    return -1;
  join(fixture->data, sizeof(fixture->data), fixture->dir, "sim.h5");
  join(log, sizeof(log), fixture->dir, "setup.log");
  join(model, sizeof(model), fixture->dir, "full.h5");
  snprintf(command, sizeof(command),
           "%s simulate --variables 1001 --factors 3 --periods 5 "
           "--train-samples 30 --test-samples 10 --seed 3 --output '%s'",
           TCX_CLI_PATH, fixture->data);
  if (run_logged(command, log) != 0)
    return -1;
  {
    char extra[PATH_MAX_LENGTH + 16];

    snprintf(extra, sizeof(extra), "--output '%s'", model);
    fit_command(fixture, extra, command, sizeof(command));
  }
  if (run_logged(command, log) != 0)
    return -1;
  *state = fixture;
  return 0;
}

static int teardown_fixture(void **state)
{
  cli_fixture *fixture = *state;
  char command[512];

  snprintf(command, sizeof(command), "rm -rf '%s'", fixture->dir);
  if (system(command) != 0)
    fprintf(stderr, "cannot remove %s\n", fixture->dir);
  free(fixture);
  return 0;
}

/* Resumes from checkpoint into model and checks it against the
 * uninterrupted model. */
static void resume_and_compare(const cli_fixture *fixture,
                               const char *checkpoint, const char *model)
{
  char command[COMMAND_MAX], extra[3 * PATH_MAX_LENGTH], log[PATH_MAX_LENGTH];
  char reference[PATH_MAX_LENGTH], text[OUTPUT_MAX];
  int code;

  join(log, sizeof(log), fixture->dir, "resume.log");
  join(reference, sizeof(reference), fixture->dir, "full.h5");
  snprintf(extra, sizeof(extra),
           "--checkpoint '%s' --resume '%s' --output '%s'", checkpoint,
           checkpoint, model);
  fit_command(fixture, extra, command, sizeof(command));
  code = run_logged(command, log);
  read_text(log, text, sizeof(text));
  if (code != 0)
    fprintf(stderr, "%s\n", text);
  assert_int_equal(code, 0);
  assert_non_null(strstr(text, "checkpoint: resumed"));
  assert_same_model(reference, model);
}

/* Starts a fit that checkpoints to checkpoint and writes model, with extra
 * options, and returns mpirun's process id. */
static pid_t start_fit(const cli_fixture *fixture, const char *checkpoint,
                       const char *model, const char *extra_options,
                       const char *log)
{
  char command[COMMAND_MAX], extra[3 * PATH_MAX_LENGTH];

  snprintf(extra, sizeof(extra), "--checkpoint '%s' --output '%s' %s",
           checkpoint, model, extra_options);
  fit_command(fixture, extra, command, sizeof(command));
  return start_logged(command, log);
}

/* Checks the outcome of a fit stopped by a signal. */
static void assert_stopped(const char *log, const char *checkpoint,
                           const char *model, int code)
{
  char text[OUTPUT_MAX], temporary[PATH_MAX_LENGTH + 8];

  read_text(log, text, sizeof(text));
  if (code != 75)
    fprintf(stderr, "%s\n", text);
  assert_int_equal(code, 75);
  assert_non_null(strstr(text, "stopped on request"));
  assert_true(file_exists(checkpoint));
  assert_false(file_exists(model));
  snprintf(temporary, sizeof(temporary), "%s.tmp", model);
  assert_false(file_exists(temporary));
}

static void sigterm_to_ranks_resumes_bitwise(void **state)
{
  cli_fixture *fixture = *state;
  char checkpoint[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];
  char resumed[PATH_MAX_LENGTH], log[PATH_MAX_LENGTH];
  pid_t pid;

  join(checkpoint, sizeof(checkpoint), fixture->dir, "term.ckpt.h5");
  join(model, sizeof(model), fixture->dir, "term.h5");
  join(resumed, sizeof(resumed), fixture->dir, "term_resumed.h5");
  join(log, sizeof(log), fixture->dir, "term.log");
  pid = start_fit(fixture, checkpoint, model, "", log);
  /* Batch systems send SIGTERM to every rank, as here. */
  wait_for(pid, log, "T-CorEx stage", NULL);
  signal_children(pid, "TERM");
  assert_stopped(log, checkpoint, model, wait_exit_code(pid));
  resume_and_compare(fixture, checkpoint, resumed);
}

static void sigusr1_to_mpirun_resumes_bitwise(void **state)
{
  cli_fixture *fixture = *state;
  char checkpoint[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];
  char resumed[PATH_MAX_LENGTH], log[PATH_MAX_LENGTH];
  pid_t pid;

  join(checkpoint, sizeof(checkpoint), fixture->dir, "usr1.ckpt.h5");
  join(model, sizeof(model), fixture->dir, "usr1.h5");
  join(resumed, sizeof(resumed), fixture->dir, "usr1_resumed.h5");
  join(log, sizeof(log), fixture->dir, "usr1.log");
  pid = start_fit(fixture, checkpoint, model, "", log);
  /* Open MPI's mpirun forwards SIGUSR1 to the ranks. */
  wait_for(pid, log, "T-CorEx stage", NULL);
  assert_int_equal(kill(pid, SIGUSR1), 0);
  assert_stopped(log, checkpoint, model, wait_exit_code(pid));
  resume_and_compare(fixture, checkpoint, resumed);
}

static void sigkill_leaves_loadable_checkpoint(void **state)
{
  cli_fixture *fixture = *state;
  char checkpoint[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];
  char resumed[PATH_MAX_LENGTH], log[PATH_MAX_LENGTH];
  char temporary[PATH_MAX_LENGTH + 8];
  pid_t pid;

  join(checkpoint, sizeof(checkpoint), fixture->dir, "kill.ckpt.h5");
  join(model, sizeof(model), fixture->dir, "kill.h5");
  join(resumed, sizeof(resumed), fixture->dir, "kill_resumed.h5");
  join(log, sizeof(log), fixture->dir, "kill.log");
  pid = start_fit(fixture, checkpoint, model, "--checkpoint-every 0.2", log);
  wait_for(pid, log, NULL, checkpoint);
  signal_children(pid, "KILL");
  assert_int_equal(kill(pid, SIGKILL), 0);
  wait_exit_code(pid);
  assert_false(file_exists(model));
  snprintf(temporary, sizeof(temporary), "%s.tmp", model);
  assert_false(file_exists(temporary));
  resume_and_compare(fixture, checkpoint, resumed);
}

/* Reads a whole file into a new buffer. */
static char *read_bytes(const char *path, long *size)
{
  FILE *file = fopen(path, "rb");
  char *data;

  assert_non_null(file);
  assert_int_equal(fseek(file, 0, SEEK_END), 0);
  *size = ftell(file);
  rewind(file);
  data = malloc((size_t)*size);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, (size_t)*size, file), (size_t)*size);
  fclose(file);
  return data;
}

/* An Adam step size of 1e200 makes the objective NaN at iteration 2. */
static void breakdown_exits_5_and_keeps_checkpoint(void **state)
{
  cli_fixture *fixture = *state;
  const char *bad = "--no-init --learning-rate 1e200";
  char checkpoint[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];
  char log[PATH_MAX_LENGTH], command[COMMAND_MAX];
  char extra[4 * PATH_MAX_LENGTH], text[OUTPUT_MAX];
  char *before, *after;
  long before_size, after_size;
  int code;

  join(checkpoint, sizeof(checkpoint), fixture->dir, "bad.ckpt.h5");
  join(model, sizeof(model), fixture->dir, "bad.h5");
  join(log, sizeof(log), fixture->dir, "bad.log");

  /* Timed writes keep the state of iteration 1. */
  snprintf(extra, sizeof(extra),
           "%s --checkpoint '%s' --checkpoint-every 1e-9 --output '%s'", bad,
           checkpoint, model);
  fit_command(fixture, extra, command, sizeof(command));
  code = run_logged(command, log);
  read_text(log, text, sizeof(text));
  if (code != 5)
    fprintf(stderr, "%s\n", text);
  assert_int_equal(code, 5);
  assert_non_null(strstr(text, "numerical breakdown in the tcorex fit at "
                               "iteration 2 of annealing stage 1 of 7"));
  assert_non_null(strstr(text, "last finite objective"));
  assert_non_null(strstr(text, "is kept"));
  assert_false(file_exists(model));
  assert_true(file_exists(checkpoint));

  /* Resuming it breaks down again, and a breakdown without timed writes
   * leaves the checkpoint byte for byte. */
  before = read_bytes(checkpoint, &before_size);
  snprintf(extra, sizeof(extra),
           "%s --checkpoint '%s' --resume '%s' --output '%s'", bad,
           checkpoint, checkpoint, model);
  fit_command(fixture, extra, command, sizeof(command));
  code = run_logged(command, log);
  read_text(log, text, sizeof(text));
  assert_int_equal(code, 5);
  assert_non_null(strstr(text, "checkpoint: resumed"));
  assert_non_null(strstr(text, "iteration 2 of annealing stage 1 of 7"));
  after = read_bytes(checkpoint, &after_size);
  assert_int_equal(after_size, before_size);
  assert_memory_equal(after, before, (size_t)before_size);
  assert_false(file_exists(model));
  free(before);
  free(after);
}

static void mismatched_resume_exits_2(void **state)
{
  cli_fixture *fixture = *state;
  char checkpoint[PATH_MAX_LENGTH], model[PATH_MAX_LENGTH];
  char log[PATH_MAX_LENGTH], command[COMMAND_MAX];
  char extra[4 * PATH_MAX_LENGTH], text[OUTPUT_MAX];
  pid_t pid;

  join(checkpoint, sizeof(checkpoint), fixture->dir, "mismatch.ckpt.h5");
  join(model, sizeof(model), fixture->dir, "mismatch.h5");
  join(log, sizeof(log), fixture->dir, "mismatch.log");
  pid = start_fit(fixture, checkpoint, model, "", log);
  wait_for(pid, log, "T-CorEx stage", NULL);
  assert_int_equal(kill(pid, SIGUSR1), 0);
  assert_int_equal(wait_exit_code(pid), 75);

  snprintf(extra, sizeof(extra), "--resume '%s' --output '%s' --l1 0.2",
           checkpoint, model);
  fit_command(fixture, extra, command, sizeof(command));
  assert_int_equal(run_logged(command, log), 2);
  read_text(log, text, sizeof(text));
  assert_non_null(strstr(text, "it was written with l1 = 0.1, but this run "
                               "has l1 = 0.2"));

  snprintf(extra, sizeof(extra),
           "--resume '%s' --output '%s' --missing -999", checkpoint, model);
  fit_command(fixture, extra, command, sizeof(command));
  assert_int_equal(run_logged(command, log), 2);
  read_text(log, text, sizeof(text));
  assert_non_null(strstr(text, "missing = nan"));
  assert_non_null(strstr(text, "missing = -999"));
  assert_false(file_exists(model));
}

static void help_lists_checkpoint_options(void **state)
{
  char command[COMMAND_MAX], log[PATH_MAX_LENGTH], text[OUTPUT_MAX];
  cli_fixture *fixture = *state;

  join(log, sizeof(log), fixture->dir, "help.log");
  snprintf(command, sizeof(command), "%s fit --help", TCX_CLI_PATH);
  assert_int_equal(run_logged(command, log), 0);
  read_text(log, text, sizeof(text));
  assert_non_null(strstr(text, "--checkpoint FILE"));
  assert_non_null(strstr(text, "--checkpoint-every S"));
  assert_non_null(strstr(text, "--resume FILE"));
  snprintf(command, sizeof(command), "%s --help", TCX_CLI_PATH);
  assert_int_equal(run_logged(command, log), 0);
  read_text(log, text, sizeof(text));
  assert_non_null(strstr(text, "75 stopped by"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_lists_checkpoint_options),
      cmocka_unit_test(sigterm_to_ranks_resumes_bitwise),
      cmocka_unit_test(sigusr1_to_mpirun_resumes_bitwise),
      cmocka_unit_test(sigkill_leaves_loadable_checkpoint),
      cmocka_unit_test(breakdown_exits_5_and_keeps_checkpoint),
      cmocka_unit_test(mismatched_resume_exits_2),
  };

  return cmocka_run_group_tests_name("cli_checkpoint", tests, setup_fixture,
                                     teardown_fixture);
}
