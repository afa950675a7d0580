/* Tests on a private single-node SLURM (tests/slurm/slurm_up.sh) with the
 * commands that every branch has: srun --mpi=pmix starting tcorex ranks,
 * the scaling job of jobs/ including its walltime-warning requeue, and a
 * job array followed by a dependent job. The job scripts that need
 * checkpoints, tcorex select or tcorex changepoints are tested in
 * test_slurm_jobs.c. Skips when SLURM is not installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcx_slurm.h"

enum { ARGS_MAX = 4096 };

/* Jobs of these tests finish in seconds; the limit only stops a hang. */
static const int job_timeout_s = 120;

/* The bundled fMRI sample has 1071 varying voxels. */
static const int64_t fmri_variables = 1071;

/* Converts the bundled fMRI sample into folder/scan.h5. */
static void convert_fmri(const char *folder, char *scan, size_t size)
{
  char command[ARGS_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  snprintf(scan, size, "%s/scan.h5", folder);
  snprintf(command, sizeof(command), "%s convert --quiet --nifti "
           "%s/datasets/fmri_functional.nii --output %s",
           TCX_CLI_PATH, TCX_SOURCE_DIR, scan);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n", output);
  assert_int_equal(rc, 0);
}

/* Returns the largest absolute difference between two models' /factors. */
static double factor_difference(const char *model_a, const char *model_b,
                                int64_t expected_count)
{
  int64_t count_a = 0, count_b = 0;
  double *a = tcx_slurm_read_dataset(model_a, "/factors", &count_a);
  double *b = tcx_slurm_read_dataset(model_b, "/factors", &count_b);
  double difference = 0.0;

  assert_int_equal(count_a, expected_count);
  assert_int_equal(count_b, expected_count);
  for (int64_t k = 0; k < count_a; k++)
    difference = fmax(difference, fabs(a[k] - b[k]));
  free(a);
  free(b);
  return difference;
}

static int count_occurrences(const char *text, const char *word)
{
  int count = 0;

  for (const char *at = strstr(text, word); at; at = strstr(at + 1, word))
    count++;
  return count;
}

/* srun --mpi=pmix wires the tasks into one MPI job of 2 ranks (two
 * singletons would each report 1 rank), and the model equals the one that
 * mpirun gives on 2 ranks bit for bit. */
static void srun_pmix_fit_matches_mpirun(void **state)
{
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], scan[TCX_SLURM_PATH_MAX];
  char command[ARGS_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "srun", folder, sizeof(folder));
  convert_fmri(folder, scan, sizeof(scan));

  snprintf(command, sizeof(command),
           "cd %s && srun --ntasks=2 --mpi=pmix %s fit --input %s "
           "--factors 4 --seed 3 --max-iter 200 --output srun.h5",
           folder, TCX_CLI_PATH, scan);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n", output);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(output, "on 2 rank(s)"));

  snprintf(command, sizeof(command),
           "cd %s && %s -n 2 %s %s fit --input %s --factors 4 --seed 3 "
           "--max-iter 200 --quiet --output mpirun.h5",
           folder, TCX_MPIEXEC, TCX_MPIEXEC_FLAGS, TCX_CLI_PATH, scan);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n", output);
  assert_int_equal(rc, 0);

  snprintf(command, sizeof(command), "%s/srun.h5", folder);
  snprintf(output, sizeof(output), "%s/mpirun.h5", folder);
  assert_true(factor_difference(command, output, 4 * fmri_variables) == 0.0);
}

/* Reads scaling.csv: the header, then rows "ranks,seconds,speedup,
 * efficiency". Returns the number of rows read. */
static int read_scaling_table(const char *path, int ranks[],
                              double columns[][3], int max_rows)
{
  char line[256];
  int rows = 0;
  FILE *file = fopen(path, "r");

  assert_non_null(file);
  assert_non_null(fgets(line, sizeof(line), file));
  assert_string_equal(line, "ranks,seconds,speedup,efficiency\n");
  while (rows < max_rows && fgets(line, sizeof(line), file)) {
    assert_int_equal(sscanf(line, "%d,%lf,%lf,%lf", &ranks[rows],
                            &columns[rows][0], &columns[rows][1],
                            &columns[rows][2]),
                     4);
    rows++;
  }
  fclose(file);
  return rows;
}

/* Checks the table of a scaling run over 1 and 2 ranks: speedup and
 * efficiency recomputed from the seconds (the table rounds to 0.001), and,
 * when compare_models is 1, the two models equal to rounding. */
static void check_scaling_outputs(const char *out, int compare_models)
{
  char path[TCX_SLURM_PATH_MAX], other[TCX_SLURM_PATH_MAX];
  int ranks[4];
  double columns[4][3];
  double difference;

  snprintf(path, sizeof(path), "%s/scaling.csv", out);
  assert_int_equal(read_scaling_table(path, ranks, columns, 4), 2);
  assert_int_equal(ranks[0], 1);
  assert_int_equal(ranks[1], 2);
  for (int row = 0; row < 2; row++) {
    const double speedup = columns[0][0] / columns[row][0];

    assert_true(columns[row][0] > 0.0);
    assert_true(fabs(columns[row][1] - speedup) <= 2e-3 * fmax(1, speedup));
    assert_true(fabs(columns[row][2] - speedup * ranks[0] / ranks[row]) <=
                2e-3 * fmax(1, speedup));
  }
  snprintf(path, sizeof(path), "%s/model_1.h5", out);
  snprintf(other, sizeof(other), "%s/model_2.h5", out);
  assert_true(tcx_slurm_file_exists(path));
  assert_true(tcx_slurm_file_exists(other));
  if (!compare_models)
    return;
  difference = factor_difference(path, other, 4 * fmri_variables);
  if (difference > 1e-8)
    fprintf(stderr, "factors on 1 and 2 ranks differ by %g\n", difference);
  assert_true(difference <= 1e-8);
}

/* jobs/scaling.sbatch over 1 and 2 ranks writes the timing table. */
static void scaling_job_writes_table(void **state)
{
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], scan[TCX_SLURM_PATH_MAX];
  char arguments[ARGS_MAX], job[64], state_value[64], log[TCX_SLURM_PATH_MAX];

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "scaling", folder, sizeof(folder));
  convert_fmri(folder, scan, sizeof(scan));
  snprintf(log, sizeof(log), "%s/job.out", folder);
  snprintf(arguments, sizeof(arguments),
           "--ntasks=2 --output=%s --export=ALL,RANKS='1 2',"
           "FIT_OPTIONS='--seed 3 --max-iter 200' %s/jobs/scaling.sbatch "
           "%s %s/out 4",
           log, TCX_SOURCE_DIR, scan, folder);
  tcx_slurm_submit(folder, arguments, job, sizeof(job));
  assert_true(tcx_slurm_wait(job, job_timeout_s));
  assert_true(tcx_slurm_job_field(job, "JobState", state_value,
                                  sizeof(state_value)));
  if (strcmp(state_value, "COMPLETED") != 0)
    tcx_slurm_report(slurm, job, log);
  assert_string_equal(state_value, "COMPLETED");

  snprintf(arguments, sizeof(arguments), "%s/out", folder);
  check_scaling_outputs(arguments, 1);
}

/* The walltime warning, delivered as the documented equivalent
 * "scancel -b -s USR1" while the 2-rank fit runs, makes jobs/scaling.sbatch
 * stop that fit and requeue itself. The second run keeps the 1-rank timing
 * and times 2 ranks again. */
static void scaling_job_requeues_on_warning(void **state)
{
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], scan[TCX_SLURM_PATH_MAX];
  char arguments[ARGS_MAX], job[64], value[64], log[TCX_SLURM_PATH_MAX];
  static char text[TCX_SLURM_TEXT_MAX];

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "requeue", folder, sizeof(folder));
  convert_fmri(folder, scan, sizeof(scan));
  snprintf(log, sizeof(log), "%s/job.out", folder);
  /* A tolerance no fit reaches keeps every stage at --max-iter, so that the
   * 2-rank fit runs for seconds. */
  snprintf(arguments, sizeof(arguments),
           "--ntasks=2 --output=%s --export=ALL,RANKS='1 2',"
           "FIT_OPTIONS='--seed 3 --max-iter 1500 --tol 1e-300' "
           "%s/jobs/scaling.sbatch %s %s/out 4",
           log, TCX_SOURCE_DIR, scan, folder);
  tcx_slurm_submit(folder, arguments, job, sizeof(job));

  if (!tcx_slurm_wait_for_text(job, log, "/data on 2 rank(s)",
                               job_timeout_s)) {
    tcx_slurm_report(slurm, job, log);
    fail_msg("the 2-rank fit of job %s did not start", job);
  }
  snprintf(arguments, sizeof(arguments), "scancel -b -s USR1 %s", job);
  assert_int_equal(tcx_slurm_shell(arguments, NULL, 0), 0);

  assert_true(tcx_slurm_wait(job, job_timeout_s));
  assert_true(tcx_slurm_job_field(job, "JobState", value, sizeof(value)));
  if (strcmp(value, "COMPLETED") != 0)
    tcx_slurm_report(slurm, job, log);
  assert_string_equal(value, "COMPLETED");
  assert_true(tcx_slurm_job_field(job, "Restarts", value, sizeof(value)));
  assert_string_equal(value, "1");

  /* --open-mode=append keeps both runs in one log. */
  assert_true(tcx_slurm_read_text(log, text, sizeof(text)));
  if (count_occurrences(text, "/data on 2 rank(s)") != 2)
    tcx_slurm_report(slurm, job, log);
  assert_int_equal(count_occurrences(text, "walltime warning (USR1)"), 1);
  assert_int_equal(count_occurrences(text, "requeueing job"), 1);
  /* fit logs "... from FILE:/data on N rank(s)" once it read its input. */
  assert_int_equal(count_occurrences(text, "/data on 1 rank(s)"), 1);
  assert_int_equal(count_occurrences(text, "/data on 2 rank(s)"), 2);
  /* Stopped at --max-iter far from convergence, fits on 1 and 2 ranks
   * drift apart by more than rounding, so the models are not compared. */
  snprintf(arguments, sizeof(arguments), "%s/out", folder);
  check_scaling_outputs(arguments, 0);
}

/* Reads the row "point,factors,nll" of a one-row table. */
static void read_point_table(const char *path, int *point, int *factors,
                             double *nll)
{
  char line[256];
  FILE *file = fopen(path, "r");

  if (!file)
    fprintf(stderr, "missing table %s\n", path);
  assert_non_null(file);
  assert_non_null(fgets(line, sizeof(line), file));
  assert_string_equal(line, "point,factors,nll\n");
  assert_non_null(fgets(line, sizeof(line), file));
  assert_int_equal(sscanf(line, "%d,%d,%lf", point, factors, nll), 3);
  assert_null(fgets(line, sizeof(line), file));
  fclose(file);
}

/* A job array with one task per factor count, and a job submitted with
 * --dependency=afterok on the array that starts only after every task
 * completed and picks the row with the lowest NLL, which the test finds
 * in the tables itself. */
static void array_then_dependent_job(void **state)
{
  static const int factor_list[] = {2, 3, 4};
  enum { POINTS = 3 };
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], scan[TCX_SLURM_PATH_MAX];
  char arguments[ARGS_MAX], array[64], dependent[64], path[TCX_SLURM_PATH_MAX];
  char start[64], end[64], log[TCX_SLURM_PATH_MAX];
  int best_point = -1;
  double best_nll = INFINITY;

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "array", folder, sizeof(folder));
  convert_fmri(folder, scan, sizeof(scan));
  snprintf(log, sizeof(log), "%s/select.out", folder);
  snprintf(arguments, sizeof(arguments),
           "--array=0-%d --output=%s/point_%%a.out "
           "%s/tests/slurm/fit_point.sbatch %s %s '2 3 4'",
           POINTS - 1, folder, TCX_SOURCE_DIR, scan, folder);
  tcx_slurm_submit(folder, arguments, array, sizeof(array));
  snprintf(arguments, sizeof(arguments),
           "--dependency=afterok:%s --output=%s "
           "%s/tests/slurm/pick_best.sbatch %s",
           array, log, TCX_SOURCE_DIR, folder);
  tcx_slurm_submit(folder, arguments, dependent, sizeof(dependent));

  assert_true(tcx_slurm_wait(dependent, job_timeout_s));
  if (tcx_slurm_count_field(array, "JobState", "COMPLETED") != POINTS)
    tcx_slurm_report(slurm, array, log);
  assert_int_equal(tcx_slurm_count_field(array, "JobState", "COMPLETED"),
                   POINTS);
  assert_int_equal(tcx_slurm_count_field(dependent, "JobState", "COMPLETED"),
                   1);

  /* Times have the form 2026-12-04T18:20:49, so they sort as strings. */
  assert_true(tcx_slurm_job_field(dependent, "StartTime", start,
                                  sizeof(start)));
  for (int k = 0; k < POINTS; k++) {
    char task[96];
    int point = -1, factors = 0;
    double nll = NAN;

    snprintf(task, sizeof(task), "%s_%d", array, k);
    assert_true(tcx_slurm_job_field(task, "EndTime", end, sizeof(end)));
    assert_true(strcmp(end, start) <= 0);

    snprintf(path, sizeof(path), "%s/point_%d.csv", folder, k);
    read_point_table(path, &point, &factors, &nll);
    assert_int_equal(point, k);
    assert_int_equal(factors, factor_list[k]);
    assert_true(isfinite(nll));
    if (nll < best_nll) {
      best_nll = nll;
      best_point = k;
    }
  }

  {
    int point = -1, factors = 0;
    double nll = NAN;

    snprintf(path, sizeof(path), "%s/best.csv", folder);
    read_point_table(path, &point, &factors, &nll);
    assert_int_equal(point, best_point);
    assert_true(nll == best_nll);
  }
}

/* afterok is not satisfied when a task fails: the dependent job never
 * starts (the selection job of a grid must not run on missing points). */
static void dependent_job_waits_on_failure(void **state)
{
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], scan[TCX_SLURM_PATH_MAX];
  char arguments[ARGS_MAX], array[64], dependent[64], reason[128];

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "failing", folder, sizeof(folder));
  convert_fmri(folder, scan, sizeof(scan));
  /* Task 1 requests 0 factors, which fit rejects with exit code 2. */
  snprintf(arguments, sizeof(arguments),
           "--array=0-1 --output=%s/point_%%a.out "
           "%s/tests/slurm/fit_point.sbatch %s %s '2 0'",
           folder, TCX_SOURCE_DIR, scan, folder);
  tcx_slurm_submit(folder, arguments, array, sizeof(array));
  snprintf(arguments, sizeof(arguments),
           "--dependency=afterok:%s --output=%s/select.out "
           "%s/tests/slurm/pick_best.sbatch %s",
           array, folder, TCX_SOURCE_DIR, folder);
  tcx_slurm_submit(folder, arguments, dependent, sizeof(dependent));

  assert_true(tcx_slurm_wait(array, job_timeout_s));
  assert_int_equal(tcx_slurm_count_field(array, "JobState", "COMPLETED"), 1);
  assert_int_equal(tcx_slurm_count_field(array, "JobState", "FAILED"), 1);
  /* slurmctld re-evaluates dependencies on its scheduling pass. */
  for (int k = 0; k < 20; k++) {
    assert_true(tcx_slurm_job_field(dependent, "Reason", reason,
                                    sizeof(reason)));
    if (strcmp(reason, "DependencyNeverSatisfied") == 0)
      break;
    sleep(1);
  }
  assert_string_equal(reason, "DependencyNeverSatisfied");
  assert_int_equal(tcx_slurm_count_field(dependent, "JobState", "PENDING"), 1);
  snprintf(arguments, sizeof(arguments), "%s/best.csv", folder);
  assert_false(tcx_slurm_file_exists(arguments));
  snprintf(arguments, sizeof(arguments), "scancel %s", dependent);
  assert_int_equal(tcx_slurm_shell(arguments, NULL, 0), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(srun_pmix_fit_matches_mpirun),
      cmocka_unit_test(scaling_job_writes_table),
      cmocka_unit_test(scaling_job_requeues_on_warning),
      cmocka_unit_test(array_then_dependent_job),
      cmocka_unit_test(dependent_job_waits_on_failure),
  };

  return cmocka_run_group_tests_name("slurm_scheduler", tests,
                                     tcx_slurm_setup, tcx_slurm_teardown);
}
