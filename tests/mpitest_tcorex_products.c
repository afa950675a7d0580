/* T-CorEx speed options. The batched GEMMs over all periods are compared
 * with one GEMM per window, and single with double precision. The schedule
 * that skips the T-CorEx annealing stages after an annealed linear CorEx
 * start, the length of that start and the window of the stopping rule are
 * checked by their step counts.
 * Data: 4 periods of 5, 9, 6 and 8 rows, p = 37 or 701 variables, m = 3
 * factors, whole-series windows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/tcorex.h"

/* The plan is internal: the tests switch its batching off. */
#include "../src/tcorex_internal.h"

#include "tcx_test.h"

enum { NT = 4, M = 3, N_ROWS = 28 };

static const int64_t period_rows[NT] = {5, 9, 6, 8};
static const int64_t period_begin[NT + 1] = {0, 5, 14, 20, 28};

/* Fills this rank's columns of a [N_ROWS, p] data set from a 3-factor model
 * whose loadings, means and scales change over time. Column i depends on i
 * only, so every rank count gets the same data. */
static tcx_block *make_block(tcx_ctx *ctx, int64_t p)
{
  double *z = malloc(sizeof(double) * N_ROWS * M);
  double *noise = malloc(sizeof(double) * N_ROWS * p);
  int64_t begin, count;
  tcx_block *block = NULL;

  assert_int_equal(tcx_partition(ctx, p, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &count),
                   TCX_OK);
  assert_int_equal(tcx_block_create(ctx, NT, period_rows, p, begin, count,
                                    &block),
                   TCX_OK);
  tcx_test_randn(11, z, N_ROWS * M);
  tcx_test_randn(12, noise, N_ROWS * p);
  for (int t = 0; t < NT; t++)
    for (int64_t row = period_begin[t]; row < period_begin[t + 1]; row++)
      for (int64_t k = 0; k < count; k++) {
        const int64_t i = begin + k;
        const int factor = (int)((i + (t >= 2 ? 1 : 0)) % M);
        const double loading = 0.6 + 0.01 * (double)(i % 40) + 0.1 * t;

        block->data[row * count + k] =
            (1.0 + 0.3 * t + 0.01 * (double)(i % 50)) *
                (loading * z[row * M + factor] + 0.7 * noise[row * p + i]) +
            0.5 * t - 0.02 * (double)(i % 30);
      }
  free(z);
  free(noise);
  return block;
}

/* Fills this rank's columns of weights [NT, M, n_local] with N(0, 0.16 / p
 * * 37) entries drawn per global column. */
static void make_weights(const tcx_block *block, uint64_t seed, double *w)
{
  const int64_t p = block->n_vars, nl = block->n_local;
  double *full = malloc(sizeof(double) * NT * M * p);
  const double scale = 0.4 * sqrt(37.0 / (double)p);

  tcx_test_randn(seed, full, NT * M * p);
  for (int64_t r = 0; r < NT * M; r++)
    for (int64_t k = 0; k < nl; k++)
      w[r * nl + k] = scale * full[r * p + block->col_begin + k];
  free(full);
}

static void base_options(tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = M;
  options->gamma = 0.6;
  options->l1 = 0.3;
  options->l2 = 0.5;
}

static double total(const tcx_tcorex_value *value)
{
  return value->main + value->reg_l1 + value->reg_l2;
}

/* Scale of a value that does not vanish when its parts cancel. */
static double magnitude(const tcx_tcorex_value *value)
{
  return fabs(value->main) + fabs(value->reg_l1) + fabs(value->reg_l2);
}

static double global_max(double value)
{
  double result = value;

  MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return result;
}

/* Evaluation of one plan: value and gradient [NT, M, n_local]. */
typedef struct evaluation {
  tcx_tcorex_value value;
  double *gradient;
} evaluation;

/* Evaluates the objective and gradient at eps for weights w on a plan in
 * the given precision, batched or per window. */
static void evaluate(const tcx_tcorex_options *base,
                     const tcx_block *standardized, tcx_tcorex_precision type,
                     int batched, double eps, const double *w,
                     evaluation *out)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_tcorex_options options = *base;
  tcx_tcorex_plan *plan = NULL;

  options.precision = type;
  assert_int_equal(tcx_tcorex_plan_create(ctx, &options, standardized, &plan),
                   TCX_OK);
  /* Whole-series windows are batched unless switched off. */
  assert_int_equal(plan->batched, 1);
  assert_int_equal(plan->single, type == TCX_TCOREX_SINGLE);
  assert_int_equal(tcx_tcorex_plan_set_batched(ctx, plan, batched), TCX_OK);
  assert_int_equal(plan->batched, batched);
  assert_int_equal(tcx_tcorex_evaluate(ctx, plan, eps, w,
                                       TCX_TCOREX_EVAL_GRADIENT, NULL, 0, NULL,
                                       &out->value, out->gradient),
                   TCX_OK);
  tcx_tcorex_plan_destroy(&plan);
}

/* Returns max |a - b| / max |b| over the gradients of all ranks. */
static double gradient_difference(const evaluation *a, const evaluation *b,
                                  int64_t count)
{
  double difference = 0.0, scale = 0.0;

  for (int64_t k = 0; k < count; k++) {
    difference = fmax(difference, fabs(a->gradient[k] - b->gradient[k]));
    scale = fmax(scale, fabs(b->gradient[k]));
  }
  return global_max(difference) / global_max(scale);
}

/* Compares a plan in the given precision and batching with the double
 * per-window plan over regularisers, objective variants and noise levels.
 * value_tol and gradient_tol bound the relative differences. The gradient
 * difference must exceed min_difference (-1: no lower bound), which shows
 * that the rounding under test happened. */
static void compare_plans(int64_t p, tcx_tcorex_precision type, int batched,
                          double value_tol, double gradient_tol,
                          double min_difference)
{
  const tcx_tcorex_reg regs[] = {TCX_TCOREX_REG_W, TCX_TCOREX_REG_MI,
                                 TCX_TCOREX_REG_SIGMA};
  const double levels[] = {0.0, 0.36};
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = make_block(ctx, p), *standardized = NULL;
  const int64_t nl = block->n_local, count = NT * M * nl;
  double *w = calloc((size_t)count, sizeof(double));
  double *mean = calloc((size_t)(NT * nl), sizeof(double));
  double *std = calloc((size_t)(NT * nl), sizeof(double));
  evaluation tested, reference;

  tested.gradient = calloc((size_t)count, sizeof(double));
  reference.gradient = calloc((size_t)count, sizeof(double));
  make_weights(block, 31, w);
  for (int r = 0; r < 3; r++)
    for (int weighted = 0; weighted <= 1; weighted++)
      for (int e = 0; e < 2; e++) {
        tcx_tcorex_options options;
        char label[160];
        double value_error, gradient_error;

        base_options(&options);
        options.reg_type = regs[r];
        options.weighted_objective = weighted;
        if (regs[r] == TCX_TCOREX_REG_SIGMA)
          options.l1 = 0.0;
        assert_int_equal(tcx_tcorex_standardize(ctx, &options, block, mean,
                                                std, &standardized),
                         TCX_OK);
        evaluate(&options, standardized, type, batched, levels[e], w,
                 &tested);
        evaluate(&options, standardized, TCX_TCOREX_DOUBLE, 0, levels[e], w,
                 &reference);
        tcx_block_destroy(&standardized);

        value_error = fabs(total(&tested.value) - total(&reference.value)) /
                      magnitude(&reference.value);
        gradient_error = gradient_difference(&tested, &reference, count);
        snprintf(label, sizeof(label),
                 "p %lld precision %d batched %d reg %d weighted %d eps %g: "
                 "value error %.3g, gradient error %.3g",
                 (long long)p, (int)type, batched, (int)regs[r], weighted,
                 levels[e], value_error, gradient_error);
                assert_true(tcx_test_all_ok(value_error <= value_tol, label));
        assert_true(tcx_test_all_ok(gradient_error <= gradient_tol, label));
        assert_true(
            tcx_test_all_ok(gradient_error > min_difference, label));
      }
  free(tested.gradient);
  free(reference.gradient);
  free(w);
  free(mean);
  free(std);
  tcx_block_destroy(&block);
}

/* The batched GEMMs sum the same products as the per-window ones, in a
 * different order only. */
static void batched_matches_per_window(void **state)
{
  (void)state;
  compare_plans(37, TCX_TCOREX_DOUBLE, 1, 1e-12, 1e-10, -1.0);
  compare_plans(701, TCX_TCOREX_DOUBLE, 1, 1e-12, 1e-10, -1.0);
}

/* Single precision rounds the data and the factors to float (unit
 * roundoff u = 6e-8) and sums up to p products of standardised, O(1)
 * entries in float. With random rounding the relative error of such a sum
 * is about u sqrt(p), 1.6e-6 at p = 701; the worst case is u p = 4e-5. The
 * objective averages logarithms of these moments over variables and
 * factors, so the errors partly cancel (measured: at most 1e-7 of the
 * parts' magnitude |main| + |reg|); the bound is 1e-6. The gradient passes
 * through divisions by 1 - R^2 and e_i, so it gets 1e-5 of its largest entry
 * (measured: at most 6e-7), about 6 u sqrt(p). The lower bound 1e-9 shows
 * that the float path ran: the double paths differ by about 1e-15. */
static void single_precision_close_to_double(void **state)
{
  (void)state;
  compare_plans(37, TCX_TCOREX_SINGLE, 1, 1e-6, 1e-5, 1e-9);
  compare_plans(37, TCX_TCOREX_SINGLE, 0, 1e-6, 1e-5, 1e-9);
  compare_plans(701, TCX_TCOREX_SINGLE, 1, 1e-6, 1e-5, 1e-9);
}

/* The plan refuses to batch windows that are not the whole series. */
static void partial_windows_not_batched(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = make_block(ctx, 37), *standardized = NULL;
  double mean[NT * 37], std[NT * 37];
  tcx_tcorex_options options;
  tcx_tcorex_plan *plan = NULL;

  (void)state;
  base_options(&options);
  options.max_samples = 12;
  assert_int_equal(tcx_tcorex_standardize(ctx, &options, block, mean, std,
                                          &standardized),
                   TCX_OK);
  assert_int_equal(tcx_tcorex_plan_create(ctx, &options, standardized, &plan),
                   TCX_OK);
  assert_int_equal(plan->full_windows, 0);
  assert_int_equal(plan->batched, 0);
  assert_int_equal(tcx_tcorex_plan_set_batched(ctx, plan, 1), TCX_ERR_USAGE);
  tcx_tcorex_plan_destroy(&plan);
  tcx_block_destroy(&standardized);
  tcx_block_destroy(&block);
}

/* Runs a fit with init LINEAR, annealing, tol 0 and max_iter steps per
 * stage, and checks the number of steps and the history. */
static void check_schedule(int reanneal, int64_t max_iter,
                           int64_t expected_steps)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = make_block(ctx, 37);
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  char label[96];

  base_options(&options);
  options.max_iter = max_iter;
  options.tol = 0.0;
  options.reanneal = reanneal;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_OK);
  snprintf(label, sizeof(label), "reanneal %d: %lld steps, expected %lld",
           reanneal, (long long)result.iterations, (long long)expected_steps);
  assert_true(tcx_test_all_ok(result.iterations == expected_steps, label));
  assert_true(tcx_test_all_ok(result.n_history == expected_steps, label));
  assert_true(tcx_test_all_ok(result.init_seconds >= 0.0, label));
  assert_true(tcx_test_all_ok(result.optimize_seconds >= 0.0, label));
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&block);
}

/* Without reannealing only the final stage (eps = 0) follows the annealed
 * linear CorEx start; with it, all 7 stages run again. */
static void reanneal_sets_stage_count(void **state)
{
  (void)state;
  check_schedule(1, 6, 7 * 6);
  check_schedule(0, 6, 6);
}

/* With tol 1 the plateau rule fires as soon as it can be evaluated, after
 * two windows of stopping_window steps; windows outside 1..50 are
 * invalid. */
static void stopping_window_sets_first_stop(void **state)
{
  const int64_t windows[3] = {1, 3, 50};
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = make_block(ctx, 37);
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};

  (void)state;
  for (int k = 0; k < 3; k++) {
    char label[96];

    base_options(&options);
    options.init = TCX_TCOREX_INIT_RANDOM;
    options.anneal = 0;
    options.max_iter = 1000;
    options.tol = 1.0;
    options.stopping_window = windows[k];
    assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                     TCX_OK);
    snprintf(label, sizeof(label), "window %lld: %lld steps",
             (long long)windows[k], (long long)result.iterations);
    assert_true(
        tcx_test_all_ok(result.iterations == 2 * windows[k], label));
    assert_true(tcx_test_all_ok(result.converged == 1, label));
    tcx_tcorex_result_free(&result);
  }
  options.stopping_window = 0;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_USAGE);
  tcx_tcorex_result_free(&result);
  options.stopping_window = 51;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_USAGE);
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&block);
}

/* Returns the largest |weights of a - weights of b| over all ranks. */
static double weight_difference(const tcx_tcorex_result *a,
                                const tcx_tcorex_result *b)
{
  const int64_t count = a->n_periods * a->n_factors * a->n_local;
  double difference = 0.0;

  for (int64_t k = 0; k < count; k++)
    difference = fmax(difference, fabs(a->weights[k] - b->weights[k]));
  return global_max(difference);
}

/* init_max_iter 0 means max_iter iterations per stage of the linear CorEx
 * start; another count changes the start, and a negative one is invalid. */
static void init_max_iter_sets_linear_fit(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = make_block(ctx, 37);
  tcx_tcorex_options options;
  tcx_tcorex_result fits[3];
  const int64_t init_iterations[3] = {0, 8, 2};

  (void)state;
  for (int k = 0; k < 3; k++) {
    base_options(&options);
    options.max_iter = 8;
    options.reanneal = 0;
    options.init_max_iter = init_iterations[k];
    assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &fits[k]),
                     TCX_OK);
  }
  assert_true(tcx_test_all_ok(weight_difference(&fits[0], &fits[1]) == 0.0,
                              "init_max_iter 0 differs from max_iter"));
  assert_true(tcx_test_all_ok(weight_difference(&fits[0], &fits[2]) > 1e-6,
                              "init_max_iter 2 gives the same weights as 8"));
  for (int k = 0; k < 3; k++)
    tcx_tcorex_result_free(&fits[k]);
  options.init_max_iter = -1;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &fits[0]),
                   TCX_ERR_USAGE);
  tcx_tcorex_result_free(&fits[0]);
  tcx_block_destroy(&block);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(batched_matches_per_window),
      cmocka_unit_test(single_precision_close_to_double),
      cmocka_unit_test(partial_windows_not_batched),
      cmocka_unit_test(reanneal_sets_stage_count),
      cmocka_unit_test(init_max_iter_sets_linear_fit),
      cmocka_unit_test(stopping_window_sets_first_stop),
  };

  return tcx_test_run(argc, argv, "tcorex_products", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
