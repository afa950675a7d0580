/* End-to-end tests of the tcorex program: help, usage errors and exit codes,
 * and the fMRI pipeline convert -> fit (2 and 3 ranks) -> export -> score.
 * This program does not initialise MPI itself, because it launches mpirun. */
#include <hdf5.h>
#include <math.h>
#include <nifti1_io.h>
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

static void help_lists_commands(void **state)
{
  run_output out;

  (void)state;
  run_cli("--help", &out);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "fit"));
  assert_non_null(strstr(out.text, "convert"));
  assert_non_null(strstr(out.text, "Exit codes"));
  run_cli("fit --help", &out);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "--factors M"));
  assert_non_null(strstr(out.text, "--gaussianize MODE"));
  run_cli("--version", &out);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "tcorex " TCX_VERSION));
}

/* Each bad command line exits with 2 and names the flag and what is
 * accepted. */
static void usage_errors_name_flag(void **state)
{
  static const struct {
    const char *args;
    const char *phrase;
  } cases[] = {
      {"", "no command given"},
      {"frobnicate", "unknown command 'frobnicate'"},
      {"fit --input a.h5 --output b.h5 --factors 0", "--factors: 0 is out of "
                                                     "range; expected an "
                                                     "integer >= 1"},
      {"fit --input a.h5 --output b.h5 --factors abc",
       "'abc' is not an integer"},
      {"fit --input a.h5 --output b.h5 --factors 3 --tol -1",
       "--tol: -1 is out of range"},
      {"fit --input a.h5 --output b.h5 --factors 3 --gaussianize maybe",
       "expected one of standard|outliers|none"},
      {"fit --input a.h5 --output b.h5 --factors 3 --bogus",
       "unknown option '--bogus'"},
      {"fit --input a.h5 --factors 3", "missing required option --output"},
      {"fit --input a.h5 --output b.h5 --factors", "--factors needs a value"},
      {"convert --output x.h5", "exactly one of --nifti and --csv"},
      {"fit --input same.h5 --output same.h5 --factors 2",
       "name the same file"},
      {"convert --csv t.csv --output t.csv", "name the same file"},
      {"fit -x", "unknown option '-x'"},
      {"fit --input a.h5 --output b.h5 --factors 2 -q -v",
       "at most one of --quiet and --verbose"},
      {"fit --input a.h5 --output b.h5 --factors 2 --missing inf",
       "inf is not finite; expected a finite number"},
      {"fit --input a.h5 --output b.h5 --factors 2 --reg-type sigma --l1 1",
       "--reg-type sigma supports --l2 only"},
      {"fit --input a.h5 --output b.h5 --factors 2 --optimizer fista "
       "--reg-type mi --l1 1",
       "--optimizer fista handles --l1 only with --reg-type weights"},
      {"fit --input a.h5 --output b.h5 --factors 99999999999999999999",
       "is out of range"},
      {"fit --input a.h5 --output b.h5 --factors 2 --gamma 0",
       "--gamma: 0 is out of range; expected a number in (0, 1]"},
      {"fit --input a.h5 --output b.h5 --factors 2 --l1 -0.1",
       "--l1: -0.1 is out of range"},
      {"fit --input a.h5 --output b.h5 --factors 2 --periods 2 "
       "--period-length 3",
       "at most one of --periods and --period-length"},
      {"changepoints --model a.h5 --output b.h5 --norm nuclear",
       "invalid value for --norm: 'nuclear'; expected one of "
       "frobenius|spectral"},
      {"changepoints --model a.h5 --output b.h5 --threshold -1",
       "--threshold: -1 is out of range"},
      {"changepoints --model a.h5 --output b.h5 --matrices covariance",
       "expected one of partial-correlation|precision|correlation"},
      {"changepoints --model a.h5 --threshold 3", "--output"},
      {"export --what changes --pair 0 --reference r.h5 --output x.nii",
       "exactly one of --model"},
  };

  (void)state;
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    run_output out;

    run_cli(cases[k].args, &out);
    if (out.exit_code != 2 || !strstr(out.text, cases[k].phrase))
      fprintf(stderr, "args '%s' gave exit %d and output:\n%s\n",
              cases[k].args, out.exit_code, out.text);
    assert_int_equal(out.exit_code, 2);
    assert_non_null(strstr(out.text, cases[k].phrase));
  }
}

static void missing_model_named_in_export(void **state)
{
  cli_fixture *fixture = *state;
  char args[ARGS_MAX];
  run_output out;

  snprintf(args, sizeof(args),
           "export --model %s/absent.h5 --reference %s/ref.h5 --output "
           "%s/x.nii.gz",
           fixture->dir, fixture->dir, fixture->dir);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "model file"));
  assert_non_null(strstr(out.text, "absent.h5 not found"));
}

/* A [T, p] input fitted with --periods is scored with the same split, read
 * from the model: 30 rows in 4 periods are 7, 7, 7 and 9 rows. */
static void score_reuses_fit_periods(void **state)
{
  cli_fixture *fixture = *state;
  char args[ARGS_MAX], csv[512], data[512], model[512];
  FILE *file;
  run_output out;

  snprintf(csv, sizeof(csv), "%s/table.csv", fixture->dir);
  snprintf(data, sizeof(data), "%s/table.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/model.h5", fixture->dir);
  file = fopen(csv, "w");
  assert_non_null(file);
  fprintf(file, "a,b,c,d,e\n");
  for (int r = 0; r < 30; r++)
    fprintf(file, "%d,%d,%d,%d,%d\n", (r * 7) % 11, (r * 5) % 13 + r % 3,
            (r * r) % 17, (r * 3) % 7 + (r * 7) % 11, r % 5);
  fclose(file);

  snprintf(args, sizeof(args), "convert --csv %s --output %s", csv, data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "fit --input %s --factors 2 --periods 4 --max-iter 50 --output %s",
           data, model);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args), "score --model %s --input %s", model, data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "\n2\t7\t"));
  assert_non_null(strstr(out.text, "\n3\t9\t"));
  assert_non_null(strstr(out.text, "mean\t30\t"));

  snprintf(args, sizeof(args), "export --model %s --reference %s --output "
           "%s/x.nii", data, data, fixture->dir);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "is not a model written by 'tcorex fit'"));
}

static void missing_input_is_input_error(void **state)
{
  cli_fixture *fixture = *state;
  char args[ARGS_MAX], output[512];
  run_output out;

  snprintf(output, sizeof(output), "%s/model.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "fit --input %s/absent.h5 --factors 2 --output %s", fixture->dir,
           output);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "absent.h5"));
  assert_false(file_exists(output));
}

/* Checks the exported label image against the input scan, read with
 * nifticlib here: same grid and affine, labels exactly on the voxels whose
 * time series varies, and each label a valid 1-based factor. */
static void check_label_image(const char *bold_path, const char *label_path,
                              int factors)
{
  nifti_image *bold = nifti_image_read(bold_path, 1);
  nifti_image *labels = nifti_image_read(label_path, 1);
  int64_t inside = 0;

  assert_non_null(bold);
  assert_non_null(labels);
  assert_int_equal(labels->nx, bold->nx);
  assert_int_equal(labels->ny, bold->ny);
  assert_int_equal(labels->nz, bold->nz);
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      assert_float_equal(labels->sto_xyz.m[r][c], bold->sto_xyz.m[r][c],
                         1e-4);
      assert_float_equal(labels->qto_xyz.m[r][c], bold->qto_xyz.m[r][c],
                         1e-4);
    }

  assert_true(nifti_image_load(bold) == 0);
  assert_true(nifti_image_load(labels) == 0);
  {
    const size_t n_voxels = (size_t)bold->nx * bold->ny * bold->nz;
    const int n_volumes = bold->nt;
    const short *series = bold->data; /* int16 storage */
    int label_value;

    assert_int_equal(bold->datatype, DT_INT16);
    for (size_t v = 0; v < n_voxels; v++) {
      int varies = 0;

      for (int t = 1; t < n_volumes; t++)
        if (series[t * n_voxels + v] != series[v])
          varies = 1;
      if (labels->datatype == DT_INT32)
        label_value = ((const int32_t *)labels->data)[v];
      else if (labels->datatype == DT_INT16)
        label_value = ((const int16_t *)labels->data)[v];
      else
        fail_msg("unexpected label datatype %d", labels->datatype);
      if (varies) {
        inside++;
        assert_true(label_value >= 1 && label_value <= factors);
      } else {
        assert_int_equal(label_value, 0);
      }
    }
  }
  assert_int_equal(inside, 1071);
  nifti_image_free(bold);
  nifti_image_free(labels);
}

static void fmri_pipeline_two_and_three_ranks(void **state)
{
  cli_fixture *fixture = *state;
  const char *bold = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  char args[ARGS_MAX], converted[512], model2[512], model3[512],
      labels[512], expected[ARGS_MAX];
  double *factors2, *factors3, max_difference = 0.0;
  hsize_t count2, count3;
  run_output out;

  snprintf(converted, sizeof(converted), "%s/fmri.h5", fixture->dir);
  snprintf(model2, sizeof(model2), "%s/model2.h5", fixture->dir);
  snprintf(model3, sizeof(model3), "%s/model3.h5", fixture->dir);
  snprintf(labels, sizeof(labels), "%s/labels.nii.gz", fixture->dir);

  snprintf(args, sizeof(args), "convert --nifti %s --output %s", bold,
           converted);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  /* The result is reported once, by the program; the library adds none. */
  snprintf(expected, sizeof(expected),
           "convert: wrote %s from %s: /data has 20 samples of 1071 "
           "variables\n",
           converted, bold);
  assert_string_equal(out.text, expected);

  snprintf(args, sizeof(args),
           "fit --input %s --factors 4 --seed 3 --max-iter 200 --output %s",
           converted, model2);
  run_mpi(2, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "fit --input %s --factors 4 --seed 3 --max-iter 200 --output %s",
           converted, model3);
  run_mpi(3, args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_false(file_exists(strcat(strcpy(args, model3), ".tmp")));

  factors2 = read_dataset(model2, "/factors", &count2);
  factors3 = read_dataset(model3, "/factors", &count3);
  assert_int_equal(count2, 4 * 1071);
  assert_int_equal(count3, count2);
  for (hsize_t k = 0; k < count2; k++)
    max_difference = fmax(max_difference, fabs(factors2[k] - factors3[k]));
  if (max_difference > 1e-8)
    fprintf(stderr, "factors differ between 2 and 3 ranks by %g\n",
            max_difference);
  assert_true(max_difference <= 1e-8);
  free(factors2);
  free(factors3);

  snprintf(args, sizeof(args),
           "export --model %s --reference %s --what clusters --output %s",
           model3, converted, labels);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  check_label_image(bold, labels, 4);

  snprintf(args, sizeof(args), "score --model %s --input %s", model2,
           converted);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "mean\t20\t"));
}

/* Checks a change image against row pair of /row_norms [pairs, 1071] in
 * the change-point file: float32 values on the voxels whose time series
 * varies, in NIfTI storage order, and 0 elsewhere. */
static void check_change_image(const char *bold_path, const char *image_path,
                               const char *changes_path, int pair)
{
  nifti_image *bold = nifti_image_read(bold_path, 1);
  nifti_image *image = nifti_image_read(image_path, 1);
  hsize_t count = 0;
  double *rows = read_dataset(changes_path, "/row_norms", &count);
  const double *expected = rows + (size_t)pair * 1071;
  int64_t inside = 0;

  assert_non_null(bold);
  assert_non_null(image);
  assert_true(count >= (hsize_t)(pair + 1) * 1071);
  assert_int_equal(image->datatype, DT_FLOAT32);
  assert_int_equal(image->nx, bold->nx);
  assert_int_equal(image->ny, bold->ny);
  assert_int_equal(image->nz, bold->nz);
  {
    const size_t n_voxels = (size_t)bold->nx * bold->ny * bold->nz;
    const short *series = bold->data;
    const float *values = image->data;

    for (size_t v = 0; v < n_voxels; v++) {
      int varies = 0;

      for (int t = 1; t < bold->nt; t++)
        if (series[t * n_voxels + v] != series[v])
          varies = 1;
      if (!varies) {
        assert_float_equal(values[v], 0.0, 0.0);
        continue;
      }
      if (fabs(values[v] - expected[inside]) >
          1e-6 * fabs(expected[inside]))
        fail_msg("voxel %zu (variable %lld): image %.9g, row norm %.9g", v,
                 (long long)inside, values[v], expected[inside]);
      inside++;
    }
  }
  assert_int_equal(inside, 1071);
  free(rows);
  nifti_image_free(bold);
  nifti_image_free(image);
}

/* convert -> T-CorEx fit with 4 periods -> changepoints at 3 ranks (HDF5,
 * CSV, PNG) -> export of the changes of pair (1, 2), read from the
 * change-point file and computed from the model at 2 ranks. */
static void fmri_changepoints_export(void **state)
{
  cli_fixture *fixture = *state;
  const char *bold = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  char args[ARGS_MAX], converted[300], model[300], changes[300], csv[300],
      plot[300], image[300], image_model[300];
  hsize_t count = 0;
  double *scores;
  run_output out;

  snprintf(converted, sizeof(converted), "%s/fmri.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/model.h5", fixture->dir);
  snprintf(changes, sizeof(changes), "%s/cp.h5", fixture->dir);
  snprintf(csv, sizeof(csv), "%s/cp.csv", fixture->dir);
  snprintf(plot, sizeof(plot), "%s/cp.png", fixture->dir);
  snprintf(image, sizeof(image), "%s/changes.nii", fixture->dir);
  snprintf(image_model, sizeof(image_model), "%s/changes_model.nii.gz",
           fixture->dir);

  snprintf(args, sizeof(args), "convert --nifti %s --output %s", bold,
           converted);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "fit -q --input %s --factors 2 --periods 4 --max-iter 50 --output "
           "%s",
           converted, model);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);

  snprintf(args, sizeof(args),
           "changepoints --model %s --output %s --csv %s --plot %s", model,
           changes, csv, plot);
  run_mpi(3, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  assert_non_null(strstr(out.text, "left_period\tright_period\tscore"));
  assert_true(file_exists(csv));
  assert_true(file_exists(plot));
  scores = read_dataset(changes, "/scores", &count);
  assert_int_equal(count, 3);
  free(scores);

  snprintf(args, sizeof(args),
           "export --what changes --pair 1 --changes %s --reference %s "
           "--output %s",
           changes, converted, image);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  check_change_image(bold, image, changes, 1);

  snprintf(args, sizeof(args),
           "export --what changes --pair 1 --model %s --reference %s "
           "--output %s",
           model, converted, image_model);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  check_change_image(bold, image_model, changes, 1);

  /* Usage errors: no pair, a pair past the last one, both sources. */
  snprintf(args, sizeof(args),
           "export --what changes --changes %s --reference %s --output %s",
           changes, converted, image);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "missing --pair T"));
  snprintf(args, sizeof(args),
           "export --what changes --pair 3 --changes %s --reference %s "
           "--output %s",
           changes, converted, image);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "has 3 pair(s)"));
  snprintf(args, sizeof(args),
           "export --what changes --pair 0 --changes %s --model %s "
           "--reference %s --output %s",
           changes, model, converted, image);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "exactly one of --model"));
}

/* A linear CorEx model has one period, so there is no pair to score. */
static void changepoints_rejects_one_period(void **state)
{
  cli_fixture *fixture = *state;
  const char *bold = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  char args[ARGS_MAX], converted[300], model[300], changes[300];
  run_output out;

  snprintf(converted, sizeof(converted), "%s/fmri.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/linear.h5", fixture->dir);
  snprintf(changes, sizeof(changes), "%s/cp.h5", fixture->dir);
  snprintf(args, sizeof(args), "convert --nifti %s --output %s", bold,
           converted);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "fit -q --input %s --factors 2 --max-iter 20 --output %s",
           converted, model);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args), "changepoints --model %s --output %s", model,
           changes);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "at least 2 periods"));
  assert_false(file_exists(changes));
  snprintf(args, sizeof(args),
           "changepoints --model %s --output %s --no-inverse --matrices "
           "precision",
           model, changes);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "pass only one of them"));
}

/* Reads a double dataset's mean, for the truth's test NLL per period. */
static double dataset_mean(const char *path, const char *name)
{
  hsize_t count = 0;
  double *values = read_dataset(path, name, &count);
  double sum = 0.0;

  for (hsize_t k = 0; k < count; k++)
    sum += values[k];
  free(values);
  return sum / (double)count;
}

/* Simulated data with a sudden change: T-CorEx (periods from the 3-D input)
 * must beat linear CorEx pooled over the periods on held-out data, stay
 * within 15% of the true covariance's NLL (computed by the simulator from
 * the truth), and give the same factors on 1, 2 and 3 ranks. */
static void tcorex_simulated_three_rank_counts(void **state)
{
  cli_fixture *fixture = *state;
  char args[ARGS_MAX], data[512], model[3][512], pooled[512];
  double tcorex_nll[3], pooled_nll, truth_nll;
  run_output out;

  snprintf(data, sizeof(data), "%s/sim.h5", fixture->dir);
  snprintf(pooled, sizeof(pooled), "%s/pooled.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "simulate --variables 61 --factors 4 --periods 6 --train-samples "
           "20 --test-samples 300 --seed 5 --output %s",
           data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  truth_nll = dataset_mean(data, "/truth/test_nll");

  for (int k = 0; k < 3; k++) {
    snprintf(model[k], sizeof(model[k]), "%s/tcorex%d.h5", fixture->dir, k);
    snprintf(args, sizeof(args),
             "fit --input %s --dataset /train --factors 4 --l1 0.3 --gamma "
             "0.4 --max-iter 200 --output %s",
             data, model[k]);
    run_mpi(k + 1, args, &out);
    if (out.exit_code != 0)
      fprintf(stderr, "%s\n", out.text);
    assert_int_equal(out.exit_code, 0);
    snprintf(args, sizeof(args),
             "score --model %s --input %s --dataset /test --zero-mean",
             model[k], data);
    run_mpi(k + 1, args, &out);
    assert_int_equal(out.exit_code, 0);
    tcorex_nll[k] = score_mean(out.text);
  }
  for (int k = 1; k < 3; k++) {
    hsize_t count0, count;
    double *factors0 = read_dataset(model[0], "/factors", &count0);
    double *factors = read_dataset(model[k], "/factors", &count);
    double max_difference = 0.0;

    assert_int_equal(count0, 6 * 4 * 61);
    assert_int_equal(count, count0);
    for (hsize_t i = 0; i < count; i++)
      max_difference = fmax(max_difference, fabs(factors[i] - factors0[i]));
    /* The L1 subgradient sign(W_{t+1} - W_t) starts at exact ties (every
     * period starts from the same weights), so Adam turns rounding
     * differences between rank counts into differences near 1e-7 after
     * 1400 steps; 1e-6 still catches any real dependence on the split. */
    if (max_difference > 1e-6)
      fprintf(stderr, "factors differ between 1 and %d ranks by %g\n", k + 1,
              max_difference);
    assert_true(max_difference <= 1e-6);
    assert_float_equal(tcorex_nll[k], tcorex_nll[0], 1e-6 * tcorex_nll[0]);
    free(factors0);
    free(factors);
  }

  snprintf(args, sizeof(args),
           "fit --method linear --input %s --dataset /train --factors 4 "
           "--output %s",
           data, pooled);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "score --model %s --input %s --dataset /test --zero-mean", pooled,
           data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  pooled_nll = score_mean(out.text);
  fprintf(stderr, "test NLL: truth %.3f, T-CorEx %.3f, pooled linear %.3f\n",
          truth_nll, tcorex_nll[0], pooled_nll);
  assert_true(tcorex_nll[0] < pooled_nll);
  assert_true(tcorex_nll[0] > truth_nll);
  assert_true(tcorex_nll[0] < 1.15 * truth_nll);
}

/* The published sudden-change case through the program: fit on /train with
 * the published settings and score /test. The published PyTorch T-CorEx
 * scored 220.68 and the true covariance 200.00. */
static void tcorex_reference_case_nll(void **state)
{
  cli_fixture *fixture = *state;
  const char *data = TCX_TEST_DATA_DIR "/tcorex_sudden_p128.h5";
  char args[ARGS_MAX], model[512];
  run_output out;
  double nll;

  if (!file_exists(data)) {
    fprintf(stderr, "reference file %s not found\n", data);
    fail();
  }
  snprintf(model, sizeof(model), "%s/reference.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "fit --input %s --dataset /train --factors 8 --l1 0.3 --gamma 0.4 "
           "--max-iter 500 --output %s",
           data, model);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "score --model %s --input %s --dataset /test --zero-mean", model,
           data);
  run_mpi(3, args, &out);
  assert_int_equal(out.exit_code, 0);
  nll = score_mean(out.text);
  fprintf(stderr, "reference case test NLL %.4f\n", nll);
  assert_true(nll <= 218.0);
  assert_true(nll > 200.0);
}

/* Reads an int64 attribute of the root group of path. */
static long long int_attribute(const char *path, const char *name)
{
  long long value = -1;
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attribute;

  assert_true(file >= 0);
  attribute = H5Aopen_by_name(file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(attribute >= 0);
  assert_true(H5Aread(attribute, H5T_NATIVE_LLONG, &value) >= 0);
  H5Aclose(attribute);
  H5Fclose(file);
  return value;
}

/* Reads a fixed-length string attribute of the root group of path into
 * text (size bytes, NUL-terminated). */
static void string_attribute(const char *path, const char *name, char *text,
                             size_t size)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attribute, type;

  assert_true(file >= 0);
  attribute = H5Aopen_by_name(file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(attribute >= 0);
  type = H5Aget_type(attribute);
  assert_true(type >= 0);
  assert_true(H5Tget_size(type) < size);
  memset(text, 0, size);
  assert_true(H5Aread(attribute, type, text) >= 0);
  H5Tclose(type);
  H5Aclose(attribute);
  H5Fclose(file);
}

/* The T-CorEx speed options reach the fit and are recorded in the model:
 * --no-reanneal leaves one stage of at most --max-iter steps. */
static void tcorex_speed_options_recorded(void **state)
{
  cli_fixture *fixture = *state;
  const char *data = TCX_TEST_DATA_DIR "/tcorex_sudden_p128.h5";
  char args[ARGS_MAX], model[512], text[64];
  run_output out;

  snprintf(model, sizeof(model), "%s/fast.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "fit --input %s --dataset /train --factors 8 --l1 0.3 --gamma 0.4 "
           "--max-iter 40 --no-reanneal --precision single --stopping-window "
           "5 --init-max-iter 7 --output %s",
           data, model);
  run_mpi(2, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(int_attribute(model, "reanneal"), 0);
  assert_int_equal(int_attribute(model, "stopping_window"), 5);
  assert_int_equal(int_attribute(model, "init_max_iter"), 7);
  assert_true(int_attribute(model, "iterations") <= 40);
  assert_true(int_attribute(model, "iterations") >= 10);
  string_attribute(model, "precision", text, sizeof(text));
  assert_string_equal(text, "single");

  run_cli("fit --input a.h5 --output b.h5 --factors 2 --precision half",
          &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "expected one of double|single"));
  run_cli("fit --input a.h5 --output b.h5 --factors 2 --stopping-window 51",
          &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "--stopping-window: 51 is out of range"));
}

/* Reads a double attribute of the root group of path. */
static double double_attribute(const char *path, const char *name)
{
  double value = NAN;
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attribute;

  assert_true(file >= 0);
  attribute = H5Aopen_by_name(file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(attribute >= 0);
  assert_true(H5Aread(attribute, H5T_NATIVE_DOUBLE, &value) >= 0);
  H5Aclose(attribute);
  H5Fclose(file);
  return value;
}

/* fit --validation on simulated /validation rows: the recorded NLL equals
 * 'tcorex score' of the model on those rows (3 ranks), the stop comes
 * --patience checks after the kept step, and a fit without validation rows
 * stopped at that step by --max-iter gives the same model. Also the usage
 * and input errors of the options. */
static void tcorex_fit_validation_stops_early(void **state)
{
  cli_fixture *fixture = *state;
  char args[ARGS_MAX], data[320], model[320], plain[320], narrow[320];
  const char *fit = "fit -q --input %s --dataset /train --factors 4 --l1 "
                    "0.1 --gamma 0.5 --no-reanneal --init-max-iter 100 "
                    "--learning-rate 0.01 --tol 1e-12";
  char common[640];
  long long step, iterations;
  run_output out;

  snprintf(data, sizeof(data), "%s/sim.h5", fixture->dir);
  snprintf(model, sizeof(model), "%s/stopped.h5", fixture->dir);
  snprintf(plain, sizeof(plain), "%s/plain.h5", fixture->dir);
  snprintf(narrow, sizeof(narrow), "%s/narrow.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "simulate -q --variables 41 --factors 4 --periods 5 "
           "--train-samples 10 --test-samples 20 --validation-samples 60 "
           "--seed 8 --output %s",
           data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(int_attribute(data, "validation_samples"), 60);
  snprintf(common, sizeof(common), fit, data);

  snprintf(args, sizeof(args),
           "%s --max-iter 500 --validation %s --validation-dataset "
           "/validation --validation-every 5 --patience 3 --output %s",
           common, data, model);
  run_mpi(2, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(int_attribute(model, "stopped_early"), 1);
  assert_int_equal(int_attribute(model, "validation_every"), 5);
  assert_int_equal(int_attribute(model, "patience"), 3);
  step = int_attribute(model, "early_stopping_step");
  iterations = int_attribute(model, "iterations");
  assert_true(step > 0);
  assert_int_equal(step % 5, 0);
  assert_int_equal(iterations, step + 3 * 5);

  snprintf(args, sizeof(args),
           "score -q --model %s --input %s --dataset /validation", model,
           data);
  run_mpi(3, args, &out);
  assert_int_equal(out.exit_code, 0);
  /* score prints 6 decimals. */
  assert_float_equal(score_mean(out.text),
                     double_attribute(model, "early_stopping_nll"), 1e-6);

  snprintf(args, sizeof(args), "%s --max-iter %lld --output %s", common, step,
           plain);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(int_attribute(plain, "iterations"), step);
  {
    hsize_t count_a = 0, count_b = 0;
    double *a = read_dataset(model, "/weights", &count_a);
    double *b = read_dataset(plain, "/weights", &count_b);

    assert_int_equal(count_a, count_b);
    assert_memory_equal(a, b, count_a * sizeof(double));
    free(a);
    free(b);
  }

  /* The validation rows may not be the training rows. */
  snprintf(args, sizeof(args), "%s --validation %s --output %s", common,
           data, plain);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "names the training rows"));
  snprintf(args, sizeof(args), "%s --patience 2 --output %s", common, plain);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "need --validation FILE"));
  /* Rows of other variables. */
  snprintf(args, sizeof(args),
           "simulate -q --variables 40 --factors 4 --periods 5 "
           "--train-samples 10 --test-samples 20 --output %s",
           narrow);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args),
           "%s --validation %s --validation-dataset /test --output %s",
           common, narrow, plain);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "has 40 variables"));
}

/* Writes a [nt, ns, p] double dataset name into the HDF5 file path,
 * creating the file when create is set. */
static void write_3d(const char *path, const char *name, const double *data,
                     hsize_t nt, hsize_t ns, hsize_t p, int create)
{
  const hsize_t dims[3] = {nt, ns, p};
  hid_t file = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT,
                                  H5P_DEFAULT)
                      : H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t space, set;

  assert_true(file >= 0);
  space = H5Screate_simple(3, dims, NULL);
  assert_true(space >= 0);
  set = H5Dcreate2(file, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT,
                   H5P_DEFAULT, H5P_DEFAULT);
  assert_true(set >= 0);
  assert_true(H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                       data) >= 0);
  H5Dclose(set);
  H5Sclose(space);
  H5Fclose(file);
}

/* fit --holdout 3 on 10 rows per period equals fit --validation with the
 * first 7 and the last 3 rows of every period written to two datasets by
 * this test, bit for bit on 2 ranks. Holding out too many rows, or giving
 * both kinds of validation rows, is a usage error. */
static void tcorex_fit_holdout_equals_split_files(void **state)
{
  enum { NT = 5, NS = 10, P = 41, HELD = 3 };
  cli_fixture *fixture = *state;
  char args[ARGS_MAX], data[320], split[320], held[320], separate[320];
  const char *fit = "fit -q --factors 4 --l1 0.1 --gamma 0.5 --no-reanneal "
                    "--init-max-iter 50 --learning-rate 0.01 --max-iter 300 "
                    "--validation-every 5 --patience 2";
  double *all, *first, *last;
  hsize_t count = 0;
  run_output out;

  snprintf(data, sizeof(data), "%s/sim.h5", fixture->dir);
  snprintf(split, sizeof(split), "%s/split.h5", fixture->dir);
  snprintf(held, sizeof(held), "%s/held.h5", fixture->dir);
  snprintf(separate, sizeof(separate), "%s/separate.h5", fixture->dir);
  snprintf(args, sizeof(args),
           "simulate -q --variables %d --factors 4 --periods %d "
           "--train-samples %d --test-samples 20 --seed 12 --output %s",
           P, NT, NS, data);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 0);

  all = read_dataset(data, "/train", &count);
  assert_int_equal(count, NT * NS * P);
  first = malloc(sizeof(double) * NT * (NS - HELD) * P);
  last = malloc(sizeof(double) * NT * HELD * P);
  assert_non_null(first);
  assert_non_null(last);
  for (int t = 0; t < NT; t++) {
    memcpy(first + t * (NS - HELD) * P, all + t * NS * P,
           sizeof(double) * (NS - HELD) * P);
    memcpy(last + t * HELD * P, all + (t * NS + NS - HELD) * P,
           sizeof(double) * HELD * P);
  }
  write_3d(split, "/first", first, NT, NS - HELD, P, 1);
  write_3d(split, "/last", last, NT, HELD, P, 0);
  free(all);
  free(first);
  free(last);

  snprintf(args, sizeof(args), "%s --input %s --dataset /train --holdout %d "
           "--output %s", fit, data, HELD, held);
  run_mpi(2, args, &out);
  if (out.exit_code != 0)
    fprintf(stderr, "%s\n", out.text);
  assert_int_equal(out.exit_code, 0);
  snprintf(args, sizeof(args), "%s --input %s --dataset /first --validation "
           "%s --validation-dataset /last --output %s", fit, split, split,
           separate);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  assert_int_equal(int_attribute(held, "holdout"), HELD);
  assert_int_equal(int_attribute(held, "early_stopping_step"),
                   int_attribute(separate, "early_stopping_step"));
  assert_true(double_attribute(held, "early_stopping_nll") ==
              double_attribute(separate, "early_stopping_nll"));
  {
    const char *names[] = {"/weights", "/mean", "/std"};

    for (int k = 0; k < 3; k++) {
      hsize_t count_a = 0, count_b = 0;
      double *a = read_dataset(held, names[k], &count_a);
      double *b = read_dataset(separate, names[k], &count_b);

      assert_int_equal(count_a, count_b);
      assert_memory_equal(a, b, count_a * sizeof(double));
      free(a);
      free(b);
    }
  }

  snprintf(args, sizeof(args), "%s --input %s --dataset /train --holdout 9 "
           "--output %s", fit, data, held);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "hold out at most 8"));
  snprintf(args, sizeof(args), "%s --input %s --dataset /first --holdout 2 "
           "--validation %s --validation-dataset /last --output %s", fit,
           split, split, held);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "use one of them"));
  snprintf(args, sizeof(args), "%s --input %s --dataset /train --holdout 2 "
           "--method linear --output %s", fit, data, held);
  run_cli(args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "to the 5 periods pooled"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_lists_commands),
      cmocka_unit_test(usage_errors_name_flag),
      cmocka_unit_test_setup_teardown(missing_input_is_input_error, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(missing_model_named_in_export,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(score_reuses_fit_periods, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(fmri_pipeline_two_and_three_ranks,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(fmri_changepoints_export, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(changepoints_rejects_one_period,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(tcorex_simulated_three_rank_counts,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(tcorex_speed_options_recorded,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(tcorex_fit_validation_stops_early,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(tcorex_fit_holdout_equals_split_files,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(tcorex_reference_case_nll, setup_dir,
                                      teardown_dir),
  };

  return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
