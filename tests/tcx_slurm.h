/* Helpers for the tests that submit jobs to a private single-node SLURM
 * (tests/slurm/slurm_up.sh): start and stop it, submit, wait, read job
 * fields and outputs. The tests run as one process and do not initialise
 * MPI; srun starts the tcorex ranks. */
#ifndef TCX_SLURM_H
#define TCX_SLURM_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

enum {
  TCX_SLURM_DIR_MAX = 256,  /* folders */
  TCX_SLURM_PATH_MAX = 512, /* files inside them */
  TCX_SLURM_TEXT_MAX = 65536
};

/* The scheduler of one test program. */
typedef struct tcx_slurm {
  char dir[TCX_SLURM_DIR_MAX];   /* slurm.conf, state, spool, logs, jobs */
  int running;                  /* 1 once the node is idle */
  char skip_reason[256];        /* why the tests skip, when not running */
} tcx_slurm;

/* cmocka group setup: starts the scheduler with 4 CPUs in a new temporary
 * folder and points SLURM_CONF at it; sets TCOREX to the built program.
 * When slurm-wlm is not installed or the test does not run as root, it
 * records why and returns 0, so that every test skips with that reason.
 * Returns -1 (the group fails) when the scheduler is installed but does
 * not start. */
int tcx_slurm_setup(void **state);

/* cmocka group teardown: stops the daemons and removes the folder. */
int tcx_slurm_teardown(void **state);

/* Returns the scheduler of the group state, or skips the calling test with
 * the recorded reason when there is none. */
#define TCX_SLURM_REQUIRE(state, slurm)                                        \
  do {                                                                         \
    (slurm) = *(state);                                                        \
    if (!(slurm)->running) {                                                   \
      fprintf(stderr, "skipped: %s\n", (slurm)->skip_reason);                  \
      skip();                                                                  \
    }                                                                          \
  } while (0)

/* Runs a shell command and returns its exit code (128 + signal when killed,
 * -1 when it could not run). Stores stdout and stderr together in output
 * when output is not NULL. */
int tcx_slurm_shell(const char *command, char *output, size_t size);

/* Makes a new empty folder DIR/name for one test's files and writes its
 * path into path. */
void tcx_slurm_folder(const tcx_slurm *slurm, const char *name, char *path,
                      size_t size);

/* Runs "sbatch --parsable ARGUMENTS" in folder and writes the job id into
 * job_id; fails the test when sbatch fails. */
void tcx_slurm_submit(const char *folder, const char *arguments, char *job_id,
                      size_t size);

/* Waits until squeue no longer lists job_id (every task of an array) or
 * timeout_s seconds pass. Returns 1 when the job left the queue, 0 on
 * timeout, after cancelling it. */
int tcx_slurm_wait(const char *job_id, int timeout_s);

/* Waits until the file at path contains text, job_id has left the queue
 * or timeout_s seconds pass. Returns 1 when the text was found. */
int tcx_slurm_wait_for_text(const char *job_id, const char *path,
                            const char *text, int timeout_s);

/* Counts the records of job_id (one per array task) whose field
 * (e.g. "JobState") has the given value in "scontrol show job -o". */
int tcx_slurm_count_field(const char *job_id, const char *field,
                          const char *value);

/* Writes the value of field of the first record of job_id into value;
 * returns 1 when found. */
int tcx_slurm_job_field(const char *job_id, const char *field, char *value,
                        size_t size);

/* Prints a job's log, the job record and the daemons' last log lines to
 * stderr, for a failing test. */
void tcx_slurm_report(const tcx_slurm *slurm, const char *job_id,
                      const char *log_path);

/* Returns 1 when path exists. */
int tcx_slurm_file_exists(const char *path);

/* Reads a whole text file into text (NUL-terminated, truncated at size);
 * returns 1 on success. */
int tcx_slurm_read_text(const char *path, char *text, size_t size);

/* Reads a double dataset of an HDF5 file; the caller frees the result.
 * Fails the test when the file or dataset cannot be read. */
double *tcx_slurm_read_dataset(const char *path, const char *name,
                               int64_t *count);

#endif
