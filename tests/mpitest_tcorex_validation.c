/* Early stopping of T-CorEx on held-out rows. The kept weights must be the
 * weights after the step that scored lowest. A fit without validation rows
 * that stops at that step must give them bit for bit. Their NLL on the
 * validation rows, computed densely with LAPACK, must equal the reported
 * one. The stop must come patience checks after that step, the fit must
 * not depend on the number of ranks, and a stopped and resumed fit must
 * equal the uninterrupted one bit for bit. Data: tcx_simulate with 4
 * periods of 10 training and 60 validation rows, p = 37, m = 3. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/checkpoint.h"
#include "tcorex/simulate.h"
#include "tcorex/tcorex.h"

#include "tcx_test.h"

enum { NT = 4, P = 37, M = 3, TRAIN_ROWS = 10, VALIDATION_ROWS = 60 };
enum { EVERY = 5, PATIENCE = 3 };

static tcx_simulate_options simulation(void)
{
  tcx_simulate_options opts;

  tcx_simulate_options_default(&opts);
  opts.n_vars = P;
  opts.n_factors = M;
  opts.n_periods = NT;
  opts.train_rows = TRAIN_ROWS;
  opts.test_rows = 1;
  opts.validation_rows = VALIDATION_ROWS;
  opts.seed = 77;
  return opts;
}

/* Generates one part of the simulation for columns begin .. begin + count
 * - 1 on ctx. */
static tcx_block *simulate_part(tcx_ctx *ctx, int part, int64_t begin,
                                int64_t count)
{
  const tcx_simulate_options opts = simulation();
  tcx_block *block = NULL;

  assert_int_equal(tcx_simulate_block(ctx, &opts, part, begin, count, &block),
                   TCX_OK);
  return block;
}

/* Adam from the linear CorEx start, one stage at noise 0, no plateau rule:
 * with 10 rows per period the validation NLL rises after some steps. The
 * start has its own iteration count, because by default it takes
 * max_iter, which the reference fits below change. */
static void fit_options(tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = M;
  options->gamma = 0.5;
  options->l1 = 0.05;
  options->reanneal = 0;
  options->tol = 0.0;
  options->max_iter = 600;
  options->init_max_iter = 200;
  options->learning_rate = 1e-2;
  options->validation_every = EVERY;
  options->patience = PATIENCE;
}

/* Gathers the [rows, n_local] blocks of every rank into a [rows, P] matrix
 * on every rank. Collective. */
static void gather_columns(const double *local, int64_t rows, int64_t n_local,
                           double *full)
{
  int size = 0, counts[64], offsets[64], local_count = (int)n_local;
  double *gathered = malloc((size_t)(rows * P) * sizeof(double));

  MPI_Comm_size(MPI_COMM_WORLD, &size);
  assert_true(size <= 64);
  MPI_Allgather(&local_count, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
  offsets[0] = 0;
  for (int r = 1; r < size; r++)
    offsets[r] = offsets[r - 1] + counts[r - 1];
  /* Rank r's columns come out as a [rows, counts[r]] panel at
   * rows * offsets[r]. */
  for (int r = 0; r < size; r++) {
    counts[r] *= (int)rows;
    offsets[r] *= (int)rows;
  }
  MPI_Allgatherv(local, (int)(rows * n_local), MPI_DOUBLE, gathered, counts,
                 offsets, MPI_DOUBLE, MPI_COMM_WORLD);
  for (int r = 0, column = 0; r < size; r++) {
    const int width = counts[r] / (int)rows;

    for (int64_t row = 0; row < rows; row++)
      for (int i = 0; i < width; i++)
        full[row * P + column + i] =
            gathered[offsets[r] + row * width + i];
    column += width;
  }
  free(gathered);
}

/* Mean over periods of the Gaussian NLL per validation row, with the
 * covariance diag(s) (F^T F + diag(1 - |f_i|^2)) diag(s) of each period
 * built densely and factored by LAPACK. Collective. */
static double dense_validation_nll(const tcx_tcorex_result *result,
                                   const tcx_block *validation)
{
  const int64_t nl = result->n_local;
  double *factors = malloc((size_t)(NT * M * P) * sizeof(double));
  double *std = malloc((size_t)(NT * P) * sizeof(double));
  double *mean = malloc((size_t)(NT * P) * sizeof(double));
  double *rows = malloc((size_t)(NT * VALIDATION_ROWS * P) * sizeof(double));
  double sigma[P * P], centred[P];
  double total = 0.0;

  gather_columns(result->factors, NT * M, nl, factors);
  gather_columns(result->std, NT, nl, std);
  gather_columns(result->mean, NT, nl, mean);
  gather_columns(validation->data, NT * VALIDATION_ROWS, nl, rows);
  for (int t = 0; t < NT; t++) {
    const double *f = factors + t * M * P, *s = std + t * P;
    double log_det = 0.0, quadratic = 0.0;

    for (int i = 0; i < P; i++)
      for (int k = 0; k < P; k++) {
        double value = 0.0;

        for (int j = 0; j < M; j++)
          value += f[j * P + i] * f[j * P + k];
        if (i == k)
          value = 1.0;
        sigma[i * P + k] = s[i] * s[k] * value;
      }
    assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, sigma, P), 0);
    for (int i = 0; i < P; i++)
      log_det += 2.0 * log(sigma[i * P + i]);
    for (int r = 0; r < VALIDATION_ROWS; r++) {
      const double *x = rows + (t * VALIDATION_ROWS + r) * P;

      for (int i = 0; i < P; i++)
        centred[i] = x[i] - mean[t * P + i];
      assert_int_equal(LAPACKE_dtrtrs(LAPACK_ROW_MAJOR, 'L', 'N', 'N', P, 1,
                                      sigma, P, centred, 1),
                       0);
      for (int i = 0; i < P; i++)
        quadratic += centred[i] * centred[i];
    }
    total += 0.5 * (P * log(2.0 * M_PI) + log_det +
                    quadratic / VALIDATION_ROWS);
  }
  free(factors);
  free(std);
  free(mean);
  free(rows);
  return total / NT;
}

/* Returns 1 when the first count doubles of a and b are identical. */
static int same_doubles(const double *a, const double *b, int64_t count)
{
  return memcmp(a, b, (size_t)count * sizeof(double)) == 0;
}

static void local_columns(tcx_ctx *ctx, int64_t *begin, int64_t *count)
{
  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 begin, count),
                   TCX_OK);
}

static void early_stop_keeps_lowest_check(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_tcorex_options options;
  tcx_tcorex_result stopped = {0}, to_best = {0}, to_end = {0};
  tcx_block *train, *validation;
  int64_t begin, nl, count;
  double end_nll;

  (void)state;
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  local_columns(ctx, &begin, &nl);
  train = simulate_part(ctx, TCX_SIMULATE_TRAIN, begin, nl);
  validation = simulate_part(ctx, TCX_SIMULATE_VALIDATION, begin, nl);
  count = NT * M * nl;
  fit_options(&options);
  options.validation = validation;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &stopped),
                   TCX_OK);
  assert_true(stopped.stopped_early);
  assert_true(stopped.validation_iteration > 0);
  assert_int_equal(stopped.validation_iteration % EVERY, 0);
  assert_int_equal(stopped.iterations,
                   stopped.validation_iteration + PATIENCE * EVERY);
  tcx_test_assert_close_all(stopped.validation_nll,
                            dense_validation_nll(&stopped, validation), 1e-10,
                            "validation NLL against the dense NLL");

  /* The same fit without validation rows, to the lowest step and to the
   * stop. */
  options.validation = NULL;
  options.max_iter = stopped.validation_iteration;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &to_best),
                   TCX_OK);
  assert_int_equal(to_best.iterations, stopped.validation_iteration);
  assert_true(isnan(to_best.validation_nll));
  assert_true(tcx_test_all_ok(
      same_doubles(to_best.weights, stopped.weights, count),
      "kept weights equal the fit to the lowest step"));
  assert_true(tcx_test_all_ok(
      same_doubles(to_best.factors, stopped.factors, count),
      "kept factors equal the fit to the lowest step"));
  options.max_iter = stopped.iterations;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &to_end),
                   TCX_OK);
  end_nll = dense_validation_nll(&to_end, validation);
  assert_true(tcx_test_all_ok(end_nll >= stopped.validation_nll,
                              "the NLL at the stop is not lower"));

  tcx_tcorex_result_free(&stopped);
  tcx_tcorex_result_free(&to_best);
  tcx_tcorex_result_free(&to_end);
  tcx_block_destroy(&train);
  tcx_block_destroy(&validation);
}

/* A run that ends at max_iter scores the final weights too: with patience
 * above the number of checks, the lowest check is the minimum over every
 * EVERY-th step and the last one. */
static void run_to_end_scores_last_step(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0}, step = {0};
  tcx_block *train, *validation;
  int64_t begin, nl;
  static const int64_t checked[] = {5, 10, 15, 20, 23};
  double lowest = INFINITY;
  int64_t lowest_step = -1;

  (void)state;
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  local_columns(ctx, &begin, &nl);
  train = simulate_part(ctx, TCX_SIMULATE_TRAIN, begin, nl);
  validation = simulate_part(ctx, TCX_SIMULATE_VALIDATION, begin, nl);
  fit_options(&options);
  options.max_iter = 23;
  options.patience = 100;
  options.validation = validation;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &result),
                   TCX_OK);
  assert_false(result.stopped_early);
  assert_int_equal(result.iterations, 23);

  /* Steps 5, 10, 15, 20 and the last, 23, each from a fit of that length.
   * Step 0, the linear CorEx start, is checked too. */
  options.validation = NULL;
  for (size_t s = 0; s < sizeof(checked) / sizeof(checked[0]); s++) {
    double nll;

    options.max_iter = checked[s];
    assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &step),
                     TCX_OK);
    nll = dense_validation_nll(&step, validation);
    if (nll < lowest) {
      lowest = nll;
      lowest_step = checked[s];
    }
    tcx_tcorex_result_free(&step);
  }
  /* When step 0 scored lowest, no later check may be lower. */
  if (result.validation_iteration == 0) {
    assert_true(result.validation_nll <= lowest);
  } else {
    assert_int_equal(result.validation_iteration, lowest_step);
    tcx_test_assert_close_all(result.validation_nll, lowest, 1e-10,
                              "lowest check against the dense NLL");
  }

  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&train);
  tcx_block_destroy(&validation);
}

/* The fit on the world communicator against the same fit on this rank alone
 * with all columns. */
static void early_stop_independent_of_ranks(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx(), *self = NULL;
  tcx_tcorex_options options;
  tcx_tcorex_result split = {0}, single = {0};
  tcx_block *train, *validation, *train_all, *validation_all;
  int64_t begin, nl;
  double worst = 0.0;

  (void)state;
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  local_columns(ctx, &begin, &nl);
  assert_int_equal(tcx_ctx_create(MPI_COMM_SELF, &self), TCX_OK);
  tcx_ctx_set_log_level(self, TCX_LOG_ERROR);
  train = simulate_part(ctx, TCX_SIMULATE_TRAIN, begin, nl);
  validation = simulate_part(ctx, TCX_SIMULATE_VALIDATION, begin, nl);
  train_all = simulate_part(self, TCX_SIMULATE_TRAIN, 0, P);
  validation_all = simulate_part(self, TCX_SIMULATE_VALIDATION, 0, P);
  fit_options(&options);
  options.validation = validation;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &split),
                   TCX_OK);
  options.validation = validation_all;
  assert_int_equal(tcx_tcorex_fit(self, &options, train_all, NULL, &single),
                   TCX_OK);

  assert_true(tcx_test_all_ok(split.iterations == single.iterations,
                              "same number of steps"));
  assert_true(tcx_test_all_ok(
      split.validation_iteration == single.validation_iteration,
      "same lowest step"));
  tcx_test_assert_close_all(split.validation_nll, single.validation_nll,
                            1e-10, "same lowest NLL");
  for (int t = 0; t < NT; t++)
    for (int j = 0; j < M; j++)
      for (int64_t i = 0; i < nl; i++)
        worst = fmax(worst, fabs(split.weights[(t * M + j) * nl + i] -
                                 single.weights[(t * M + j) * P + begin + i]));
  tcx_test_assert_close_all(worst, 0.0, 1e-8, "same kept weights");

  tcx_tcorex_result_free(&split);
  tcx_tcorex_result_free(&single);
  tcx_block_destroy(&train);
  tcx_block_destroy(&validation);
  tcx_block_destroy(&train_all);
  tcx_block_destroy(&validation_all);
  tcx_ctx_destroy(&self);
}

/* Stopped at a boundary after some checks, written, and resumed: the
 * result equals the uninterrupted fit bit for bit. */
static void early_stop_resumes_bitwise(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_tcorex_options options;
  tcx_tcorex_result full = {0}, stopped = {0}, resumed = {0};
  tcx_checkpoint *checkpoint = NULL;
  tcx_block *train, *validation;
  int64_t begin, nl, boundaries, count;
  char path[256];
  int ok;

  (void)state;
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  local_columns(ctx, &begin, &nl);
  count = NT * M * nl;
  train = simulate_part(ctx, TCX_SIMULATE_TRAIN, begin, nl);
  validation = simulate_part(ctx, TCX_SIMULATE_VALIDATION, begin, nl);
  fit_options(&options);
  options.validation = validation;
  tcx_test_temp_path("validation_ckpt.h5", path, sizeof(path));

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &full), TCX_OK);
  boundaries = tcx_checkpoint_boundary_count(checkpoint);
  tcx_checkpoint_destroy(&checkpoint);
  assert_true(full.stopped_early);

  /* Each step has one boundary, and the last one is the stop, PATIENCE
   * checks after the lowest. Stopping 7 boundaries earlier falls between
   * the first and the second check after the lowest, so the state carries
   * the kept weights and one check without improvement. */
  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 0.0),
                   TCX_OK);
  tcx_checkpoint_set_stop_at(checkpoint, boundaries - EVERY - 2);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &stopped),
                   TCX_ERR_INTERRUPTED);
  tcx_tcorex_result_free(&stopped);
  tcx_checkpoint_destroy(&checkpoint);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_resume(ctx, checkpoint, path), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &resumed),
                   TCX_OK);
  tcx_checkpoint_destroy(&checkpoint);

  ok = resumed.iterations == full.iterations &&
       resumed.stopped_early == full.stopped_early &&
       resumed.validation_iteration == full.validation_iteration &&
       memcmp(&resumed.validation_nll, &full.validation_nll,
              sizeof(double)) == 0 &&
       same_doubles(resumed.weights, full.weights, count) &&
       same_doubles(resumed.factors, full.factors, count);
  assert_true(tcx_test_all_ok(ok, "resumed fit equals the uninterrupted one"));

  MPI_Barrier(MPI_COMM_WORLD);
  if (tcx_ctx_rank(ctx) == 0)
    remove(path);
  tcx_tcorex_result_free(&full);
  tcx_tcorex_result_free(&resumed);
  tcx_block_destroy(&train);
  tcx_block_destroy(&validation);
}

/* Validation rows of other periods, or a period without rows. */
static void mismatched_rows_rejected(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_block *train, *rows = NULL;
  int64_t begin, nl;
  const int64_t three_periods[3] = {5, 5, 5};
  const int64_t empty_period[NT] = {5, 0, 5, 5};

  (void)state;
  tcx_ctx_set_log_level(ctx, TCX_LOG_QUIET);
  local_columns(ctx, &begin, &nl);
  train = simulate_part(ctx, TCX_SIMULATE_TRAIN, begin, nl);
  fit_options(&options);

  assert_int_equal(tcx_block_create(ctx, 3, three_periods, P, begin, nl,
                                    &rows),
                   TCX_OK);
  options.validation = rows;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &result),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "3 periods but the data have 4"));
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&rows);

  assert_int_equal(tcx_block_create(ctx, NT, empty_period, P, begin, nl,
                                    &rows),
                   TCX_OK);
  options.validation = rows;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &result),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "validation period 1 has no rows"));
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&rows);

  options.validation = NULL;
  options.validation_every = 0;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, train, NULL, &result),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "invalid validation_every 0"));
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&train);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(early_stop_keeps_lowest_check),
      cmocka_unit_test(run_to_end_scores_last_step),
      cmocka_unit_test(early_stop_independent_of_ranks),
      cmocka_unit_test(early_stop_resumes_bitwise),
      cmocka_unit_test(mismatched_rows_rejected),
  };

  return tcx_test_run(argc, argv, "tcorex validation", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
