/* Submits the job scripts of jobs/ with small inputs to a private
 * single-node SLURM (tests/slurm/slurm_up.sh). The tests cover the fMRI
 * pipeline, the same job interrupted by the walltime warning and requeued,
 * and the grid search as a job array with its dependent selection job.
 * They need tcorex fit
 * --checkpoint/--resume, tcorex changepoints, tcorex export --what changes
 * and tcorex select. Skips when SLURM is not installed. */
#include <math.h>
#include <nifti1_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcx_slurm.h"

enum { ARGS_MAX = 4096, COLUMNS_MAX = 32 };

/* Jobs of these tests finish in well under a minute on 2 cores; the limit
 * only stops a hang. */
static const int job_timeout_s = 240;

static const char bold_path[] = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";

/* Fits with the pipeline's fit options on 2 ranks through mpirun, without
 * checkpoints: the reference for the job's model. */
static void fit_reference(const char *scan, const char *fit_options,
                          const char *model)
{
  char command[ARGS_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  snprintf(command, sizeof(command),
           "%s -n 2 %s %s fit --input %s --periods 4 --factors 4 --l1 0.3 "
           "--gamma 0.5 --seed 3 %s --quiet --output %s",
           TCX_MPIEXEC, TCX_MPIEXEC_FLAGS, TCX_CLI_PATH, scan, fit_options,
           model);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n%s\n", command, output);
  assert_int_equal(rc, 0);
}

/* Asserts that two models have bit-identical /weights. */
static void assert_same_weights(const char *model, const char *reference)
{
  int64_t count = 0, reference_count = 0, differing = 0;
  double *weights = tcx_slurm_read_dataset(model, "/weights", &count);
  double *expected =
      tcx_slurm_read_dataset(reference, "/weights", &reference_count);

  assert_int_equal(count, reference_count);
  for (int64_t k = 0; k < count; k++)
    if (memcmp(&weights[k], &expected[k], sizeof(double)) != 0)
      differing++;
  if (differing > 0)
    fprintf(stderr, "%lld of %lld weights of %s differ from %s\n",
            (long long)differing, (long long)count, model, reference);
  assert_int_equal(differing, 0);
  free(weights);
  free(expected);
}

/* Splits a CSV line at commas in place; returns the number of fields. */
static int split_csv(char *line, char *fields[], int max_fields)
{
  int count = 0;
  char *save = NULL;

  line[strcspn(line, "\r\n")] = '\0';
  for (char *field = strtok_r(line, ",", &save); field && count < max_fields;
       field = strtok_r(NULL, ",", &save))
    fields[count++] = field;
  return count;
}

/* Returns the index of the column named name, or -1. */
static int column_index(char *fields[], int count, const char *name)
{
  for (int k = 0; k < count; k++)
    if (strcmp(fields[k], name) == 0)
      return k;
  return -1;
}

/* Asserts that an image has the BOLD scan's 3-D grid. */
static void assert_image_on_bold_grid(const char *path)
{
  nifti_image *bold = nifti_image_read(bold_path, 0);
  nifti_image *image = nifti_image_read(path, 0);

  if (!image)
    fprintf(stderr, "cannot read the image %s\n", path);
  assert_non_null(bold);
  assert_non_null(image);
  assert_int_equal(image->nx, bold->nx);
  assert_int_equal(image->ny, bold->ny);
  assert_int_equal(image->nz, bold->nz);
  nifti_image_free(bold);
  nifti_image_free(image);
}

/* Checks changepoints.csv (one row per pair of consecutive periods, at
 * least the columns left_period, right_period, score, change) and that an
 * image changes_T.nii.gz exists for each flagged pair, or for the pair with
 * the top score when none is flagged. */
static void check_change_outputs(const char *out, int periods)
{
  char path[TCX_SLURM_PATH_MAX], line[1024];
  char *fields[COLUMNS_MAX];
  int left_column, right_column, score_column, change_column, columns;
  int rows = 0, flagged = 0, top_pair = -1;
  double top_score = -INFINITY;
  FILE *file;

  snprintf(path, sizeof(path), "%s/changepoints.h5", out);
  assert_true(tcx_slurm_file_exists(path));
  snprintf(path, sizeof(path), "%s/changepoints.csv", out);
  file = fopen(path, "r");
  assert_non_null(file);
  assert_non_null(fgets(line, sizeof(line), file));
  columns = split_csv(line, fields, COLUMNS_MAX);
  left_column = column_index(fields, columns, "left_period");
  right_column = column_index(fields, columns, "right_period");
  score_column = column_index(fields, columns, "score");
  change_column = column_index(fields, columns, "change");
  assert_true(left_column >= 0);
  assert_true(right_column >= 0);
  assert_true(score_column >= 0);
  assert_true(change_column >= 0);
  while (fgets(line, sizeof(line), file)) {
    const int count = split_csv(line, fields, COLUMNS_MAX);
    int left, right, change;
    double score;

    assert_int_equal(count, columns);
    left = atoi(fields[left_column]);
    right = atoi(fields[right_column]);
    score = strtod(fields[score_column], NULL);
    change = atoi(fields[change_column]);
    assert_int_equal(right, left + 1);
    assert_true(isfinite(score));
    assert_true(change == 0 || change == 1);
    if (change == 1) {
      snprintf(path, sizeof(path), "%s/changes_%d.nii.gz", out, left);
      assert_true(tcx_slurm_file_exists(path));
      assert_image_on_bold_grid(path);
      flagged++;
    }
    if (score > top_score) {
      top_score = score;
      top_pair = left;
    }
    rows++;
  }
  fclose(file);
  assert_int_equal(rows, periods - 1);
  if (flagged == 0) {
    snprintf(path, sizeof(path), "%s/changes_%d.nii.gz", out, top_pair);
    assert_true(tcx_slurm_file_exists(path));
    assert_image_on_bold_grid(path);
  }
}

/* Submits jobs/fmri_pipeline.sbatch on 2 tasks with 4 factors and 4
 * periods; the job id goes into job and its log is folder/job.out. */
static void submit_pipeline(const char *folder, const char *fit_options,
                            char *job, size_t size)
{
  char arguments[ARGS_MAX];

  snprintf(arguments, sizeof(arguments),
           "--ntasks=2 --output=%s/job.out --export=ALL,SEED=3,"
           "FIT_OPTIONS='%s' %s/jobs/fmri_pipeline.sbatch %s %s/out 4 4",
           folder, fit_options, TCX_SOURCE_DIR, bold_path, folder);
  tcx_slurm_submit(folder, arguments, job, size);
}

static void assert_completed(const tcx_slurm *slurm, const char *job,
                             const char *log)
{
  char value[64] = "";

  assert_true(tcx_slurm_job_field(job, "JobState", value, sizeof(value)));
  if (strcmp(value, "COMPLETED") != 0)
    tcx_slurm_report(slurm, job, log);
  assert_string_equal(value, "COMPLETED");
}

/* The whole pipeline: converted scan, a model equal bit for bit to a fit
 * by mpirun with the same options, no checkpoint left, change points and
 * the images of the clusters and the changes. */
static void fmri_pipeline_job_outputs(void **state)
{
  static const char fit_options[] = "--max-iter 200";
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], out[TCX_SLURM_DIR_MAX + 8];
  char path[TCX_SLURM_PATH_MAX], reference[TCX_SLURM_PATH_MAX];
  char log[TCX_SLURM_PATH_MAX], job[64];

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "pipeline", folder, sizeof(folder));
  snprintf(out, sizeof(out), "%s/out", folder);
  snprintf(log, sizeof(log), "%s/job.out", folder);
  submit_pipeline(folder, fit_options, job, sizeof(job));
  assert_true(tcx_slurm_wait(job, job_timeout_s));
  assert_completed(slurm, job, log);

  snprintf(path, sizeof(path), "%s/fit.ckpt", out);
  assert_false(tcx_slurm_file_exists(path));
  snprintf(path, sizeof(path), "%s/scan.h5", out);
  snprintf(reference, sizeof(reference), "%s/reference.h5", folder);
  fit_reference(path, fit_options, reference);
  snprintf(path, sizeof(path), "%s/model.h5", out);
  assert_same_weights(path, reference);

  snprintf(path, sizeof(path), "%s/clusters.nii.gz", out);
  assert_image_on_bold_grid(path);
  check_change_outputs(out, 4);
}

static int count_occurrences(const char *text, const char *word)
{
  int count = 0;

  for (const char *at = strstr(text, word); at; at = strstr(at + 1, word))
    count++;
  return count;
}

/* The walltime warning, delivered as "scancel -b -s USR1" while the fit
 * runs, reaches the fit's ranks through the script. They checkpoint and
 * exit 75. The job requeues itself, resumes the fit and ends with the
 * model of an uninterrupted fit, bit for bit. */
static void fmri_job_resumes_after_warning(void **state)
{
  /* 7 stages of 500 steps: the fit runs for seconds after it logged that
   * it read its input, so the warning arrives during it. */
  /* Long enough (about 4 s) that the warning reaches a running fit: --tol
   * 1e-12 keeps the stopping rule from ending a stage early. */
  static const char fit_options[] = "--max-iter 3000 --tol 1e-12";
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], out[TCX_SLURM_DIR_MAX + 8];
  char path[TCX_SLURM_PATH_MAX], reference[TCX_SLURM_PATH_MAX];
  char log[TCX_SLURM_PATH_MAX], job[64], command[ARGS_MAX], value[64];
  static char text[TCX_SLURM_TEXT_MAX];

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "resume", folder, sizeof(folder));
  snprintf(out, sizeof(out), "%s/out", folder);
  snprintf(log, sizeof(log), "%s/job.out", folder);
  submit_pipeline(folder, fit_options, job, sizeof(job));

  /* fit logs "... from FILE:/data on 2 rank(s)" once it read its input. */
  if (!tcx_slurm_wait_for_text(job, log, "/data on 2 rank(s)",
                               job_timeout_s)) {
    tcx_slurm_report(slurm, job, log);
    fail_msg("the fit of job %s did not start", job);
  }
  snprintf(command, sizeof(command), "scancel -b -s USR1 %s", job);
  assert_int_equal(tcx_slurm_shell(command, NULL, 0), 0);
  assert_true(tcx_slurm_wait(job, job_timeout_s));
  assert_completed(slurm, job, log);

  assert_true(tcx_slurm_job_field(job, "Restarts", value, sizeof(value)));
  assert_string_equal(value, "1");
  assert_true(tcx_slurm_read_text(log, text, sizeof(text)));
  if (count_occurrences(text, "resuming the fit from") != 1)
    tcx_slurm_report(slurm, job, log);
  assert_int_equal(count_occurrences(text, "walltime warning (USR1)"), 1);
  assert_int_equal(count_occurrences(text, "the fit wrote"), 1);
  assert_int_equal(count_occurrences(text, "resuming the fit from"), 1);
  snprintf(path, sizeof(path), "%s/fit.ckpt", out);
  assert_false(tcx_slurm_file_exists(path));

  snprintf(path, sizeof(path), "%s/scan.h5", out);
  snprintf(reference, sizeof(reference), "%s/reference.h5", folder);
  fit_reference(path, fit_options, reference);
  snprintf(path, sizeof(path), "%s/model.h5", out);
  assert_same_weights(path, reference);
  check_change_outputs(out, 4);
}

/* Writes simulated data with 3 periods and 37 variables: /train into
 * folder/train.h5:/data and /test into folder/validation.h5:/data. */
static void write_grid_data(const char *folder)
{
  char command[ARGS_MAX], output[TCX_SLURM_TEXT_MAX];
  int rc;

  snprintf(command, sizeof(command),
           "cd %s && %s simulate --quiet --variables 37 --factors 2 "
           "--periods 3 --train-samples 16 --test-samples 16 --seed 5 "
           "--output sim.h5 && h5copy -i sim.h5 -o train.h5 -s /train "
           "-d /data && h5copy -i sim.h5 -o validation.h5 -s /test -d /data",
           folder, TCX_CLI_PATH);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n", output);
  assert_int_equal(rc, 0);
}

/* Reads the header and the single row of a point table. Stores the
 * validation NLL, from the first column whose name contains "nll", and the
 * factor count, from the column "factors". */
static void read_point(const char *path, double *nll, int *factors)
{
  char header[1024], row[1024];
  char *names[COLUMNS_MAX], *values[COLUMNS_MAX];
  int nll_column = -1, factors_column, columns;
  FILE *file = fopen(path, "r");

  if (!file)
    fprintf(stderr, "missing table %s\n", path);
  assert_non_null(file);
  assert_non_null(fgets(header, sizeof(header), file));
  assert_non_null(fgets(row, sizeof(row), file));
  assert_null(fgets(row + strlen(row), (int)(sizeof(row) - strlen(row)),
                    file));
  fclose(file);
  columns = split_csv(header, names, COLUMNS_MAX);
  assert_int_equal(split_csv(row, values, COLUMNS_MAX), columns);
  for (int k = 0; k < columns && nll_column < 0; k++)
    if (strstr(names[k], "nll"))
      nll_column = k;
  factors_column = column_index(names, columns, "factors");
  assert_true(nll_column >= 0);
  assert_true(factors_column >= 0);
  *nll = strtod(values[nll_column], NULL);
  *factors = atoi(values[factors_column]);
}

/* jobs/grid_submit.sh: a job array of 4 grid points and the selection job,
 * which starts after every point, lists all 4 points in grid.csv and
 * refits the point with the lowest validation NLL, found here from the
 * point tables. */
static void grid_array_selects_best(void **state)
{
  enum { POINTS = 4 };
  static const char grid[] = "factors=1,2 l1=0,0.1";
  tcx_slurm *slurm;
  char folder[TCX_SLURM_DIR_MAX], out[TCX_SLURM_DIR_MAX + 8];
  char command[ARGS_MAX], output[TCX_SLURM_TEXT_MAX];
  char path[TCX_SLURM_PATH_MAX], array[64], selection[64];
  char start[64], end[64], line[1024];
  double best_nll = INFINITY;
  int best_factors = 0, rows = 0, rc;
  int64_t count = 0;
  double *weights;
  FILE *file;

  TCX_SLURM_REQUIRE(state, slurm);
  tcx_slurm_folder(slurm, "grid", folder, sizeof(folder));
  write_grid_data(folder);
  snprintf(out, sizeof(out), "%s/out", folder);
  snprintf(command, sizeof(command),
           "cd %s && %s/jobs/grid_submit.sh '%s' train.h5 validation.h5 %s "
           "--ntasks=2",
           folder, TCX_SOURCE_DIR, grid, out);
  rc = tcx_slurm_shell(command, output, sizeof(output));
  if (rc != 0)
    fprintf(stderr, "%s\n", output);
  assert_int_equal(rc, 0);
  /* stdout ends with "ARRAY_ID SELECT_ID"; stderr has a sentence. */
  array[0] = '\0';
  for (char *save = NULL, *text = strtok_r(output, "\n", &save); text;
       text = strtok_r(NULL, "\n", &save)) {
    unsigned long first, second;

    if (sscanf(text, "%lu %lu", &first, &second) == 2) {
      snprintf(array, sizeof(array), "%lu", first);
      snprintf(selection, sizeof(selection), "%lu", second);
    }
  }
  assert_true(array[0] != '\0');

  /* When a point fails, the selection job never starts: stop early. */
  assert_true(tcx_slurm_wait(array, job_timeout_s));
  snprintf(path, sizeof(path), "%s/logs/point_0.out", out);
  if (tcx_slurm_count_field(array, "JobState", "COMPLETED") != POINTS)
    tcx_slurm_report(slurm, array, path);
  assert_int_equal(tcx_slurm_count_field(array, "JobState", "COMPLETED"),
                   POINTS);
  assert_true(tcx_slurm_wait(selection, job_timeout_s));
  snprintf(path, sizeof(path), "%s/logs/select.out", out);
  if (tcx_slurm_count_field(selection, "JobState", "COMPLETED") != 1)
    tcx_slurm_report(slurm, selection, path);
  assert_int_equal(tcx_slurm_count_field(selection, "JobState", "COMPLETED"),
                   1);

  /* Times have the form 2026-12-04T18:20:49, so they sort as strings. */
  assert_true(tcx_slurm_job_field(selection, "StartTime", start,
                                  sizeof(start)));
  for (int k = 0; k < POINTS; k++) {
    char task[96];
    double nll;
    int factors;

    snprintf(task, sizeof(task), "%s_%d", array, k);
    assert_true(tcx_slurm_job_field(task, "EndTime", end, sizeof(end)));
    assert_true(strcmp(end, start) <= 0);
    snprintf(path, sizeof(path), "%s/point_%d.csv", out, k);
    read_point(path, &nll, &factors);
    assert_true(isfinite(nll));
    assert_true(factors == 1 || factors == 2);
    if (nll < best_nll) {
      best_nll = nll;
      best_factors = factors;
    }
  }

  /* grid.csv repeats the point tables' rows in point order. */
  snprintf(path, sizeof(path), "%s/grid.csv", out);
  file = fopen(path, "r");
  assert_non_null(file);
  assert_non_null(fgets(line, sizeof(line), file));
  while (fgets(line, sizeof(line), file)) {
    char point_path[TCX_SLURM_PATH_MAX], point_text[2048];
    const char *point_row;

    snprintf(point_path, sizeof(point_path), "%s/point_%d.csv", out, rows);
    assert_true(tcx_slurm_read_text(point_path, point_text,
                                    sizeof(point_text)));
    point_row = strchr(point_text, '\n');
    assert_non_null(point_row);
    assert_string_equal(line, point_row + 1);
    rows++;
  }
  fclose(file);
  assert_int_equal(rows, POINTS);

  /* The model's /weights hold periods x factors x variables values. */
  snprintf(path, sizeof(path), "%s/best.h5", out);
  weights = tcx_slurm_read_dataset(path, "/weights", &count);
  assert_int_equal(count, 3 * best_factors * 37);
  free(weights);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fmri_pipeline_job_outputs),
      cmocka_unit_test(fmri_job_resumes_after_warning),
      cmocka_unit_test(grid_array_selects_best),
  };

  return cmocka_run_group_tests_name("slurm_jobs", tests, tcx_slurm_setup,
                                     tcx_slurm_teardown);
}
