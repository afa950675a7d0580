#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tcx_slurm.h"

enum { COMMAND_MAX = 4096 };

/* Seconds between two polls of squeue or of a log file. */
static const double poll_seconds = 0.5;

static void pause_poll(void)
{
  struct timespec pause = {0, (long)(poll_seconds * 1e9)};

  nanosleep(&pause, NULL);
}

int tcx_slurm_shell(const char *command, char *output, size_t size)
{
  char full[COMMAND_MAX + 16];
  char discard[1024];
  size_t length = 0;
  FILE *pipe;
  int status;

  snprintf(full, sizeof(full), "%s 2>&1", command);
  pipe = popen(full, "r");
  if (!pipe)
    return -1;
  if (output && size > 0) {
    while (length + 1 < size &&
           fgets(output + length, (int)(size - length), pipe))
      length += strlen(output + length);
    output[length] = '\0';
  }
  while (fgets(discard, sizeof(discard), pipe))
    ;
  status = pclose(pipe);
  if (status == -1)
    return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int tcx_slurm_file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Returns 1 when every program in the space-separated list is on PATH. */
static int programs_installed(const char *programs)
{
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command), "for p in %s; do command -v $p; done",
           programs);
  return tcx_slurm_shell(command, NULL, 0) == 0;
}

int tcx_slurm_setup(void **state)
{
  tcx_slurm *slurm = calloc(1, sizeof(*slurm));
  char command[COMMAND_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  if (!slurm)
    return -1;
  *state = slurm;
  if (!programs_installed("slurmctld slurmd sbatch srun squeue scontrol")) {
    snprintf(slurm->skip_reason, sizeof(slurm->skip_reason),
             "SLURM is not installed; install the Debian packages slurmctld "
             "slurmd slurm-client (scripts/setup.sh does) to run this test");
    return 0;
  }
  if (geteuid() != 0) {
    snprintf(slurm->skip_reason, sizeof(slurm->skip_reason),
             "the private SLURM runs as root only (slurmd starts job steps "
             "as the submitting user); run this test as root");
    return 0;
  }
  snprintf(slurm->dir, sizeof(slurm->dir), "%s/tcx_slurm_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(slurm->dir)) {
    fprintf(stderr, "cannot create a temporary folder %s\n", slurm->dir);
    return -1;
  }
  /* The owner PID makes slurm_up.sh stop the daemons should this test be
   * killed before its teardown. */
  snprintf(command, sizeof(command),
           "SLURM_UP_OWNER_PID=%ld %s/tests/slurm/slurm_up.sh '%s' 4",
           (long)getpid(), TCX_SOURCE_DIR, slurm->dir);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0) {
    fprintf(stderr, "slurm_up.sh failed with exit code %d:\n%s\n", rc, output);
    return -1;
  }
  snprintf(command, sizeof(command), "%s/slurm.conf", slurm->dir);
  setenv("SLURM_CONF", command, 1);
  setenv("TCOREX", TCX_CLI_PATH, 1);
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  /* The jobs inherit this environment. Open MPI ranks started by srun
   * busy-poll while they wait in a collective. On a test machine whose few
   * cores are shared, a polling rank loses its time slice, and a T-CorEx
   * fit ran 9 times slower (18 s against 2 s). mpirun sets this itself
   * when it oversubscribes. */
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 1);
  slurm->running = 1;
  return 0;
}

int tcx_slurm_teardown(void **state)
{
  tcx_slurm *slurm = *state;
  char command[COMMAND_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc = 0;

  if (slurm->dir[0]) {
    snprintf(command, sizeof(command), "%s/tests/slurm/slurm_down.sh '%s'",
             TCX_SOURCE_DIR, slurm->dir);
    if (tcx_slurm_shell(command, output, sizeof(output)) != 0) {
      fprintf(stderr, "slurm_down.sh failed:\n%s\n", output);
      rc = -1;
    }
    snprintf(command, sizeof(command), "rm -rf '%s'", slurm->dir);
    if (tcx_slurm_shell(command, NULL, 0) != 0)
      fprintf(stderr, "cannot remove %s\n", slurm->dir);
  }
  free(slurm);
  return rc;
}

void tcx_slurm_folder(const tcx_slurm *slurm, const char *name, char *path,
                      size_t size)
{
  snprintf(path, size, "%s/%s", slurm->dir, name);
  assert_int_equal(mkdir(path, 0755), 0);
}

void tcx_slurm_submit(const char *folder, const char *arguments, char *job_id,
                      size_t size)
{
  char command[COMMAND_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  snprintf(command, sizeof(command), "cd '%s' && sbatch --parsable %s",
           folder, arguments);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\nfailed with exit code %d:\n%s\n", command, rc,
            output);
  assert_int_equal(rc, 0);
  /* --parsable prints "ID" or "ID;CLUSTER". */
  output[strcspn(output, ";\n")] = '\0';
  assert_true(output[0] != '\0');
  snprintf(job_id, size, "%s", output);
}

int tcx_slurm_read_text(const char *path, char *text, size_t size)
{
  FILE *file = fopen(path, "r");
  size_t length;

  if (!file)
    return 0;
  length = fread(text, 1, size - 1, file);
  text[length] = '\0';
  fclose(file);
  return 1;
}

/* Returns 1 when squeue no longer lists job_id. */
static int job_left_queue(const char *job_id)
{
  char command[COMMAND_MAX], output[1024];

  snprintf(command, sizeof(command), "squeue -h -j %s -o %%T", job_id);
  return tcx_slurm_shell(command, output, sizeof(output)) == 0 &&
         output[0] == '\0';
}

int tcx_slurm_wait(const char *job_id, int timeout_s)
{
  char command[COMMAND_MAX];
  const time_t deadline = time(NULL) + timeout_s;

  while (time(NULL) < deadline) {
    if (job_left_queue(job_id))
      return 1;
    pause_poll();
  }
  fprintf(stderr, "job %s still queued or running after %d s; cancelling\n",
          job_id, timeout_s);
  snprintf(command, sizeof(command), "scancel %s", job_id);
  tcx_slurm_shell(command, NULL, 0);
  return 0;
}

int tcx_slurm_wait_for_text(const char *job_id, const char *path,
                            const char *text, int timeout_s)
{
  static char content[TCX_SLURM_TEXT_MAX];
  const time_t deadline = time(NULL) + timeout_s;

  while (time(NULL) < deadline) {
    const int left = job_left_queue(job_id);

    if (tcx_slurm_read_text(path, content, sizeof(content)) &&
        strstr(content, text))
      return 1;
    if (left)
      return 0;
    pause_poll();
  }
  return 0;
}

/* Finds " FIELD=" in a one-line job record and copies its value, which ends
 * at the next space. Returns 1 when found. */
static int record_field(const char *record, const char *field, char *value,
                        size_t size)
{
  char key[128];
  const char *start;
  size_t length;

  snprintf(key, sizeof(key), " %s=", field);
  start = strstr(record, key);
  if (!start)
    return 0;
  start += strlen(key);
  length = strcspn(start, " \n");
  if (length >= size)
    length = size - 1;
  memcpy(value, start, length);
  value[length] = '\0';
  return 1;
}

int tcx_slurm_count_field(const char *job_id, const char *field,
                          const char *value)
{
  static char output[TCX_SLURM_TEXT_MAX];
  char command[COMMAND_MAX], found[256];
  char *line, *save = NULL;
  int count = 0;

  snprintf(command, sizeof(command), "scontrol show job -o %s", job_id);
  if (tcx_slurm_shell(command, output, sizeof(output)) != 0)
    return -1;
  for (line = strtok_r(output, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save))
    if (record_field(line, field, found, sizeof(found)) &&
        strcmp(found, value) == 0)
      count++;
  return count;
}

int tcx_slurm_job_field(const char *job_id, const char *field, char *value,
                        size_t size)
{
  static char output[TCX_SLURM_TEXT_MAX];
  char command[COMMAND_MAX];

  snprintf(command, sizeof(command), "scontrol show job -o %s", job_id);
  if (tcx_slurm_shell(command, output, sizeof(output)) != 0)
    return 0;
  return record_field(output, field, value, size);
}

void tcx_slurm_report(const tcx_slurm *slurm, const char *job_id,
                      const char *log_path)
{
  char command[COMMAND_MAX];

  fprintf(stderr, "---- job %s\n", job_id);
  snprintf(command, sizeof(command),
           "scontrol show job %s >&2; echo '---- %s' >&2; cat '%s' >&2; "
           "echo '---- slurmctld.log' >&2; tail -n 20 '%s/log/slurmctld.log' "
           ">&2; echo '---- slurmd.log' >&2; tail -n 20 '%s/log/slurmd.log' "
           ">&2",
           job_id, log_path, log_path, slurm->dir, slurm->dir);
  if (system(command) == -1)
    fprintf(stderr, "cannot run: %s\n", command);
}

double *tcx_slurm_read_dataset(const char *path, const char *name,
                               int64_t *count)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset, space;
  hssize_t points;
  double *values;

  if (file < 0)
    fprintf(stderr, "cannot open %s\n", path);
  assert_true(file >= 0);
  dataset = H5Dopen2(file, name, H5P_DEFAULT);
  if (dataset < 0)
    fprintf(stderr, "no dataset %s in %s\n", name, path);
  assert_true(dataset >= 0);
  space = H5Dget_space(dataset);
  assert_true(space >= 0);
  points = H5Sget_simple_extent_npoints(space);
  assert_true(points > 0);
  values = calloc((size_t)points, sizeof(double));
  assert_non_null(values);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, values) >= 0);
  assert_true(H5Sclose(space) >= 0);
  assert_true(H5Dclose(dataset) >= 0);
  assert_true(H5Fclose(file) >= 0);
  *count = (int64_t)points;
  return values;
}
