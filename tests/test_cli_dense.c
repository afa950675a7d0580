/* End-to-end tests of 'tcorex covariance', 'tcorex baseline' and 'tcorex
 * score' on dense models at 1, 2 and 4 ranks (BLACS grids 1 x 1, 1 x 2 and
 * 2 x 2). The expected matrices and likelihoods are computed here from the
 * files with plain loops and LAPACKE. This program does not initialise MPI
 * itself, because it launches mpirun. */
#include <hdf5.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_test.h"

enum {
  P = 37,       /* variables: 2 and 4 ranks split them unevenly */
  M = 3,        /* factors */
  NT = 3,       /* periods */
  N_TRAIN = 20, /* training rows per period, fewer than P */
  N_TEST = 50   /* held-out rows per period */
};

typedef struct fixture {
  char dir[256];
  char data[512];  /* simulated /train and /test */
  char model[512]; /* short T-CorEx fit of /train; its quality is not tested */
} fixture;

static void write_matrix(const char *path, const char *name, hsize_t rows,
                         hsize_t cols, const double *values)
{
  const hsize_t dims[2] = {rows, cols};
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t dataset = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT);

  assert_true(file >= 0 && space >= 0 && dataset >= 0);
  assert_true(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                       H5P_DEFAULT, values) >= 0);
  H5Dclose(dataset);
  H5Sclose(space);
  H5Fclose(file);
}

static double max_relative_error(const double *actual, const double *expected,
                                 int64_t count)
{
  double error = 0.0, scale = 0.0;

  for (int64_t k = 0; k < count; k++) {
    error = fmax(error, fabs(actual[k] - expected[k]));
    scale = fmax(scale, fabs(expected[k]));
  }
  return error / scale;
}

/* Parses the "period samples nll" line of period t from score output. */
static double score_period(const char *text, int t)
{
  char prefix[32];
  const char *line;
  long long rows = 0;
  double nll = NAN;

  snprintf(prefix, sizeof(prefix), "\n%d\t", t);
  line = strstr(text, prefix);
  assert_non_null(line);
  assert_int_equal(sscanf(line + 1, "%*d\t%lld\t%lf", &rows, &nll), 2);
  return nll;
}

static int setup_group(void **state)
{
  fixture *f = calloc(1, sizeof(*f));
  char args[ARGS_MAX];
  run_output *out = malloc(sizeof(*out));

  if (!f || !out)
    return -1;
  snprintf(f->dir, sizeof(f->dir), "%s/tcx_dense_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->data, sizeof(f->data), "%s/sim.h5", f->dir);
  snprintf(f->model, sizeof(f->model), "%s/model.h5", f->dir);
  snprintf(args, sizeof(args),
           "simulate --variables %d --factors %d --periods %d "
           "--train-samples %d --test-samples %d --seed 17 --output %s",
           P, M, NT, N_TRAIN, N_TEST, f->data);
  run_mpi(1, args, out);
  if (out->exit_code != 0)
    return -1;
  snprintf(args, sizeof(args),
           "fit --input %s --dataset /train --factors %d --max-iter 50 "
           "--no-anneal --output %s",
           f->data, M, f->model);
  run_mpi(2, args, out);
  if (out->exit_code != 0)
    return -1;
  free(out);
  *state = f;
  return 0;
}

static int teardown_group(void **state)
{
  fixture *f = *state;
  char command[512];

  snprintf(command, sizeof(command), "rm -rf '%s'", f->dir);
  if (system(command) != 0)
    fprintf(stderr, "cannot remove %s\n", f->dir);
  free(f);
  return 0;
}

/* Builds period t's covariance (or correlation) of the model in plain
 * loops: Sigma = diag(std) C diag(std), C = F^T F with unit diagonal. */
static void model_matrix(const char *model, int t, int correlation,
                         double *sigma)
{
  hsize_t count = 0;
  double *factors = read_dataset(model, "/factors", &count);
  double *std = read_dataset(model, "/std", &count);
  const double *f = factors + (size_t)t * M * P, *s = std + (size_t)t * P;

  for (int i = 0; i < P; i++)
    for (int k = 0; k < P; k++) {
      double c = 0.0;

      for (int j = 0; j < M; j++)
        c += f[j * P + i] * f[j * P + k];
      if (i == k)
        c = 1.0;
      sigma[i * P + k] = correlation ? c : s[i] * c * s[k];
    }
  free(factors);
  free(std);
}

static void covariance_matches_model(void **state)
{
  fixture *f = *state;
  static const int ranks[] = {1, 2, 4};
  double sigma[P * P], correlation[P * P], inverse[P * P];
  char args[ARGS_MAX], output[512];
  run_output out;

  model_matrix(f->model, 1, 0, sigma);
  model_matrix(f->model, 1, 1, correlation);
  memcpy(inverse, sigma, sizeof(sigma));
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  for (int i = 0; i < P; i++)
    for (int k = i + 1; k < P; k++)
      inverse[i * P + k] = inverse[k * P + i];

  for (int r = 0; r < 3; r++) {
    static const char *flags[] = {"", "--correlation", "--precision"};
    static const char *names[] = {"/covariance", "/correlation",
                                  "/precision"};
    const double *expected[] = {sigma, correlation, inverse};
    const double tolerance[] = {1e-12, 1e-12, 1e-10};

    for (int k = 0; k < 3; k++) {
      hsize_t count = 0;
      double *stored;

      snprintf(output, sizeof(output), "%s/cov_%d_%d.h5", f->dir, ranks[r],
               k);
      snprintf(args, sizeof(args),
               "covariance --model %s --period 1 %s --block-size 5 --output "
               "%s -q",
               f->model, flags[k], output);
      run_mpi(ranks[r], args, &out);
      assert_int_equal(out.exit_code, 0);
      stored = read_dataset(output, names[k], &count);
      assert_int_equal(count, P * P);
      if (max_relative_error(stored, expected[k], P * P) > tolerance[k])
        fprintf(stderr, "%s on %d ranks: relative error %.3g\n", names[k],
                ranks[r], max_relative_error(stored, expected[k], P * P));
      assert_true(max_relative_error(stored, expected[k], P * P) <=
                  tolerance[k]);
      free(stored);
    }
  }
}

/* Mean NLL per row of rows (n x P) centred by mean under sigma, with a
 * dense Cholesky: (1/2) (p log 2 pi + log det + mean x^T Sigma^-1 x). */
static double dense_nll(const double *sigma, const double *mean,
                        const double *rows, int n)
{
  double factor[P * P], x[P], log_det = 0.0, quadratic = 0.0;

  memcpy(factor, sigma, sizeof(factor));
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, factor, P), 0);
  for (int i = 0; i < P; i++)
    log_det += 2.0 * log(factor[i * P + i]);
  for (int r = 0; r < n; r++) {
    for (int i = 0; i < P; i++)
      x[i] = rows[r * P + i] - mean[i];
    assert_int_equal(LAPACKE_dtrtrs(LAPACK_ROW_MAJOR, 'L', 'N', 'N', P, 1,
                                    factor, P, x, 1),
                     0);
    for (int i = 0; i < P; i++)
      quadratic += x[i] * x[i];
  }
  return 0.5 * (P * log(2.0 * 3.14159265358979323846) + log_det +
                quadratic / n);
}

static void baseline_scores_like_dense_lapack(void **state)
{
  fixture *f = *state;
  char args[ARGS_MAX], output[512];
  hsize_t count = 0;
  double *covariance, *mean, *shrinkage, *test;
  run_output out;

  snprintf(output, sizeof(output), "%s/lw.h5", f->dir);
  snprintf(args, sizeof(args),
           "baseline --method ledoit-wolf --input %s --dataset /train "
           "--block-size 5 --output %s -q",
           f->data, output);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 0);
  covariance = read_dataset(output, "/covariance", &count);
  assert_int_equal(count, NT * P * P);
  mean = read_dataset(output, "/mean", &count);
  assert_int_equal(count, NT * P);
  shrinkage = read_dataset(output, "/shrinkage", &count);
  assert_int_equal(count, NT);
  test = read_dataset(f->data, "/test", &count);
  assert_int_equal(count, NT * N_TEST * P);

  snprintf(args, sizeof(args), "score --model %s --input %s --dataset /test",
           output, f->data);
  run_mpi(4, args, &out);
  assert_int_equal(out.exit_code, 0);
  for (int t = 0; t < NT; t++) {
    const double expected =
        dense_nll(covariance + (size_t)t * P * P, mean + (size_t)t * P,
                  test + (size_t)t * N_TEST * P, N_TEST);

    assert_true(shrinkage[t] > 0.0 && shrinkage[t] < 1.0);
    /* score prints six decimals. */
    assert_float_equal(score_period(out.text, t), expected, 2e-6);
  }
  free(covariance);
  free(mean);
  free(shrinkage);
  free(test);
}

static void baseline_splits_two_dimensional_input(void **state)
{
  fixture *f = *state;
  enum { T = 2 * N_TRAIN + 3, FIRST = T / 2 };
  double rows[T * P], sample[P * P], mean[P];
  char args[ARGS_MAX], input[512], output[512];
  hsize_t count = 0;
  double *covariance;
  run_output out;

  /* --periods 2 gives floor(43 / 2) = 21 rows to the first period, so
   * rows 21..42 form the second. */
  for (int k = 0; k < T * P; k++)
    rows[k] = sin(0.7 * k) + 0.01 * (k % 13);
  snprintf(input, sizeof(input), "%s/rows.h5", f->dir);
  snprintf(output, sizeof(output), "%s/sample.h5", f->dir);
  write_matrix(input, "/data", T, P, rows);
  snprintf(args, sizeof(args),
           "baseline --method sample --input %s --periods 2 --block-size 5 "
           "--output %s -q",
           input, output);
  run_mpi(4, args, &out);
  assert_int_equal(out.exit_code, 0);
  covariance = read_dataset(output, "/covariance", &count);
  assert_int_equal(count, 2 * P * P);

  for (int i = 0; i < P; i++) {
    mean[i] = 0.0;
    for (int r = FIRST; r < T; r++)
      mean[i] += rows[r * P + i] / (T - FIRST);
  }
  for (int i = 0; i < P; i++)
    for (int k = 0; k < P; k++) {
      double sum = 0.0;

      for (int r = FIRST; r < T; r++)
        sum += (rows[r * P + i] - mean[i]) * (rows[r * P + k] - mean[k]);
      sample[i * P + k] = sum / (T - FIRST);
    }
  assert_true(max_relative_error(covariance + P * P, sample, P * P) <= 1e-12);
  free(covariance);

  /* The sample covariance of 22 rows in 37 variables is singular. */
  snprintf(args, sizeof(args), "score --model %s --input %s --periods 2",
           output, input);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 5);
  assert_non_null(strstr(out.text, "PDPOTRF failed with info"));
}

static void bad_options_exit_with_usage(void **state)
{
  fixture *f = *state;
  char args[ARGS_MAX], output[512];
  run_output out;

  snprintf(output, sizeof(output), "%s/bad.h5", f->dir);
  snprintf(args, sizeof(args),
           "covariance --model %s --correlation --precision --output %s",
           f->model, output);
  run_mpi(1, args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "at most one of --correlation and "
                                   "--precision"));

  snprintf(args, sizeof(args), "covariance --model %s --period %d --output %s",
           f->model, NT, output);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "invalid value for --period"));

  snprintf(args, sizeof(args),
           "covariance --model %s --block-size 0 --output %s", f->model,
           output);
  run_mpi(1, args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "--block-size"));

  snprintf(args, sizeof(args), "covariance --model %s --output %s", f->data,
           output);
  run_mpi(1, args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "is not a model written by"));

  snprintf(args, sizeof(args),
           "baseline --method median --input %s --dataset /train --output %s",
           f->data, output);
  run_mpi(1, args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_non_null(strstr(out.text, "--method"));

  snprintf(args, sizeof(args),
           "baseline --method oas --input %s --periods 2 --period-length 5 "
           "--output %s",
           f->data, output);
  run_mpi(1, args, &out);
  assert_int_equal(out.exit_code, 2);
  assert_int_equal(access(output, F_OK), -1);
}

static void baseline_rejects_missing_values(void **state)
{
  fixture *f = *state;
  double rows[10 * P];
  char args[ARGS_MAX], input[512], output[512];
  run_output out;

  for (int k = 0; k < 10 * P; k++)
    rows[k] = cos(0.3 * k);
  rows[4 * P + 30] = NAN;
  snprintf(input, sizeof(input), "%s/missing.h5", f->dir);
  snprintf(output, sizeof(output), "%s/missing_out.h5", f->dir);
  write_matrix(input, "/data", 10, P, rows);
  snprintf(args, sizeof(args),
           "baseline --method diagonal --input %s --output %s", input, output);
  run_mpi(2, args, &out);
  assert_int_equal(out.exit_code, 3);
  assert_non_null(strstr(out.text, "missing value in row 4, column 30"));
  assert_int_equal(access(output, F_OK), -1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(covariance_matches_model),
      cmocka_unit_test(baseline_scores_like_dense_lapack),
      cmocka_unit_test(baseline_splits_two_dimensional_input),
      cmocka_unit_test(bad_options_exit_with_usage),
      cmocka_unit_test(baseline_rejects_missing_values),
  };

  return cmocka_run_group_tests_name("cli_dense", tests, setup_group,
                                     teardown_group);
}
