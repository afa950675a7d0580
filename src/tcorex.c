/* T-CorEx public entry points: options, objective and fit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/corex.h"
#include "tcorex/prep.h"
#include "tcorex/rng.h"
#include "checkpoint_internal.h"
#include "tcorex_internal.h"

/* Random stream of the initial T-CorEx weights; the index of W_t[j, i] is
 * (t p + global column) m + j. */
#define TCX_TCOREX_INIT_STREAM UINT64_C(0x7C0E5)

void tcx_tcorex_options_default(tcx_tcorex_options *options)
{
  memset(options, 0, sizeof(*options));
  options->n_factors = 10;
  options->gamma = 0.5;
  options->l1 = 0.0;
  options->l2 = 0.0;
  options->reg_type = TCX_TCOREX_REG_W;
  options->weighted_objective = 0;
  options->max_samples = INT64_C(1) << 30;
  options->max_iter = 1000;
  /* Windows of 10 steps let the rule end the annealing stages of the
   * published schedule once they level off (docs/TCOREX.md). */
  options->tol = 1e-4;
  options->stopping_window = 10;
  options->anneal = 1;
  options->reanneal = 1;
  options->init = TCX_TCOREX_INIT_LINEAR;
  options->optimizer = TCX_TCOREX_ADAM;
  options->learning_rate = 1e-3;
  options->seed = 0;
  options->precision = TCX_TCOREX_DOUBLE;
  options->init_max_iter = 0;
  options->validation = NULL;
  options->validation_every = 10;
  options->patience = 3;
}

int tcx_tcorex_check_options(tcx_ctx *ctx, const tcx_tcorex_options *options)
{
  int rc = TCX_OK;

  TCX_CHECK(options->n_factors >= 1, ctx, TCX_ERR_USAGE,
            "invalid number of factors %lld: it must be at least 1",
            (long long)options->n_factors);
  TCX_CHECK(options->gamma > 0.0 && options->gamma <= 1.0, ctx, TCX_ERR_USAGE,
            "invalid gamma %g: the sample weight decay must be in (0, 1]",
            options->gamma);
  TCX_CHECK(options->l1 >= 0.0 && isfinite(options->l1), ctx, TCX_ERR_USAGE,
            "invalid l1 %g: the L1 weight must be finite and >= 0",
            options->l1);
  TCX_CHECK(options->l2 >= 0.0 && isfinite(options->l2), ctx, TCX_ERR_USAGE,
            "invalid l2 %g: the L2 weight must be finite and >= 0",
            options->l2);
  TCX_CHECK(options->reg_type == TCX_TCOREX_REG_W ||
                options->reg_type == TCX_TCOREX_REG_MI ||
                options->reg_type == TCX_TCOREX_REG_SIGMA,
            ctx, TCX_ERR_USAGE, "invalid regulariser type %d",
            (int)options->reg_type);
  TCX_CHECK(options->reg_type != TCX_TCOREX_REG_SIGMA || options->l1 == 0.0,
            ctx, TCX_ERR_UNSUPPORTED,
            "the L1 penalty on covariance differences (reg_type Sigma, l1 = "
            "%g) needs all p^2 entries, O(p^2 m) per pair of periods; use "
            "l1 = 0 with reg_type Sigma, or reg_type W or MI",
            options->l1);
  TCX_CHECK(options->max_samples >= 1, ctx, TCX_ERR_USAGE,
            "invalid max_samples %lld: it must be at least 1",
            (long long)options->max_samples);
  TCX_CHECK(options->max_iter >= 1, ctx, TCX_ERR_USAGE,
            "invalid max_iter %lld: it must be at least 1",
            (long long)options->max_iter);
  TCX_CHECK(options->init_max_iter >= 0, ctx, TCX_ERR_USAGE,
            "invalid init_max_iter %lld: it must be >= 0 (0: max_iter)",
            (long long)options->init_max_iter);
  TCX_CHECK(options->stopping_window >= 1 &&
                options->stopping_window <= TCX_TCOREX_MAX_STOPPING_WINDOW,
            ctx, TCX_ERR_USAGE,
            "invalid stopping_window %lld: it must be in 1..%d",
            (long long)options->stopping_window,
            TCX_TCOREX_MAX_STOPPING_WINDOW);
  TCX_CHECK(options->tol >= 0.0, ctx, TCX_ERR_USAGE,
            "invalid tol %g: it must be >= 0", options->tol);
  TCX_CHECK(options->validation_every >= 1, ctx, TCX_ERR_USAGE,
            "invalid validation_every %lld: it must be at least 1",
            (long long)options->validation_every);
  TCX_CHECK(options->patience >= 1, ctx, TCX_ERR_USAGE,
            "invalid patience %lld: it must be at least 1",
            (long long)options->patience);
  TCX_CHECK(options->learning_rate > 0.0 && isfinite(options->learning_rate),
            ctx, TCX_ERR_USAGE,
            "invalid learning rate %g: it must be finite and > 0",
            options->learning_rate);
  TCX_CHECK(options->init == TCX_TCOREX_INIT_LINEAR ||
                options->init == TCX_TCOREX_INIT_RANDOM ||
                options->init == TCX_TCOREX_INIT_GIVEN,
            ctx, TCX_ERR_USAGE, "invalid initialisation mode %d",
            (int)options->init);
  TCX_CHECK(options->optimizer == TCX_TCOREX_ADAM ||
                options->optimizer == TCX_TCOREX_FISTA,
            ctx, TCX_ERR_USAGE, "invalid optimizer %d",
            (int)options->optimizer);
  TCX_CHECK(options->optimizer != TCX_TCOREX_FISTA || options->l1 == 0.0 ||
                options->reg_type == TCX_TCOREX_REG_W,
            ctx, TCX_ERR_UNSUPPORTED,
            "FISTA's proximal step handles the L1 penalty of reg_type W "
            "only; use Adam, or l1 = 0, for reg_type MI or Sigma");
  TCX_CHECK(options->precision == TCX_TCOREX_DOUBLE ||
                options->precision == TCX_TCOREX_SINGLE,
            ctx, TCX_ERR_USAGE, "invalid precision %d",
            (int)options->precision);

cleanup:
  return rc;
}

int tcx_tcorex_objective(tcx_ctx *ctx, const tcx_tcorex_options *options,
                         const tcx_block *standardized, double eps,
                         const double *weights, tcx_tcorex_value *value,
                         double *gradient)
{
  tcx_tcorex_plan *plan = NULL;
  int rc;

  rc = tcx_tcorex_plan_create(ctx, options, standardized, &plan);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc == TCX_OK)
    rc = tcx_tcorex_evaluate(
        ctx, plan, eps, weights,
        gradient ? TCX_TCOREX_EVAL_GRADIENT : TCX_TCOREX_EVAL_VALUE, NULL, 0,
        NULL, value, gradient);
  tcx_tcorex_plan_destroy(&plan);
  return rc;
}

/* Allocates the arrays of result. */
static int result_allocate(tcx_ctx *ctx, int nt, int64_t m, int64_t nl,
                           tcx_tcorex_result *result)
{
  int rc = TCX_OK;

  result->n_periods = nt;
  result->n_factors = m;
  result->n_local = nl;
  TCX_TRY(tcx_calloc(ctx, nt * m * nl, sizeof(double), "T-CorEx weights",
                     &result->weights));
  TCX_TRY(tcx_calloc(ctx, nt * m * nl, sizeof(double), "T-CorEx factors",
                     &result->factors));
  TCX_TRY(tcx_calloc(ctx, nt * m * nl, sizeof(double), "T-CorEx MI",
                     &result->mi));
  TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(int32_t), "T-CorEx clusters",
                     &result->clusters));
  TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(double), "T-CorEx priors",
                     &result->mean));
  TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(double), "T-CorEx priors",
                     &result->std));
  TCX_TRY(tcx_calloc(ctx, nt * m, sizeof(double), "T-CorEx TCs",
                     &result->tcs));

cleanup:
  return rc;
}

/* Fills W_t ~ N(0, 1/p) for every period, drawn per global column. */
static void init_random(const tcx_tcorex_options *options,
                        const tcx_block *block, double *weights)
{
  const int64_t m = options->n_factors, nl = block->n_local;
  const double scale = 1.0 / sqrt((double)block->n_vars);

  for (int t = 0; t < block->n_periods; t++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t i = 0; i < nl; i++) {
        const uint64_t column = (uint64_t)(block->col_begin + i);
        const uint64_t index =
            ((uint64_t)t * (uint64_t)block->n_vars + column) * (uint64_t)m +
            (uint64_t)j;

        weights[(t * m + j) * nl + i] =
            scale * tcx_rng_normal(options->seed, TCX_TCOREX_INIT_STREAM,
                                   index);
      }
}

/* Fits linear CorEx with the same m, annealing and seed, and init_max_iter
 * (or max_iter) iterations per stage, to the
 * rows of all periods pooled and standardised again as one sample, and
 * copies its weights W = U / sqrt(1 - u) to every period. Collective. */
static int init_linear(tcx_ctx *ctx, const tcx_tcorex_options *options,
                       const tcx_block *x, double *weights)
{
  const int64_t nl = x->n_local, count = options->n_factors * nl;
  double *pooled = NULL, *mean = NULL, *std = NULL;
  tcx_corex_options linear_options;
  tcx_corex_result linear = {0};
  int64_t n_constant = 0;
  int rc = TCX_OK;

  /* NOTE: the published code pools at most max_sample_cnt rows, drawn at
   * random; this pools every row. */
  rc = tcx_calloc(ctx, x->n_rows * nl, sizeof(double), "pooled data",
                  &pooled);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, nl, sizeof(double), "pooled means", &mean);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, nl, sizeof(double), "pooled deviations", &std);
  if (rc == TCX_OK) {
    memcpy(pooled, x->data, (size_t)(x->n_rows * nl) * sizeof(double));
    rc = tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD, x->n_rows, nl,
                              x->col_begin, pooled, mean, std, &n_constant);
  }
  TCX_TRY(tcx_ctx_agree(ctx, rc));

  tcx_corex_options_default(&linear_options);
  linear_options.n_factors = options->n_factors;
  linear_options.max_iter =
      options->init_max_iter > 0 ? options->init_max_iter : options->max_iter;
  linear_options.anneal = options->anneal;
  linear_options.seed = options->seed;
  linear_options.checkpoint = options->checkpoint;
  linear_options.quiet_max_iter = 1;
  TCX_TRY(tcx_corex_fit(ctx, &linear_options, pooled, x->n_rows, nl,
                        x->col_begin, x->n_vars, &linear));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "T-CorEx: linear CorEx start: %lld iterations, TC %.8g, %s",
          (long long)linear.iterations, linear.tc,
          linear.converged ? "every stage converged"
                           : "some stages reached --init-max-iter or "
                             "--max-iter (a start need not converge)");
  for (int t = 0; t < x->n_periods; t++)
    memcpy(weights + t * count, linear.weights,
           (size_t)count * sizeof(double));

cleanup:
  tcx_corex_result_free(&linear);
  free(pooled);
  free(mean);
  free(std);
  return rc;
}

/* Sets the initial weights of every period. Collective for init LINEAR. */
static int init_weights_all(tcx_ctx *ctx, const tcx_tcorex_options *options,
                            const tcx_block *x, const double *given,
                            double *weights)
{
  const int64_t count = options->n_factors * x->n_local;
  int rc = TCX_OK;

  switch (options->init) {
  case TCX_TCOREX_INIT_GIVEN:
    for (int t = 0; t < x->n_periods; t++)
      memcpy(weights + t * count, given, (size_t)count * sizeof(double));
    break;
  case TCX_TCOREX_INIT_RANDOM:
    init_random(options, x, weights);
    break;
  default:
    rc = init_linear(ctx, options, x, weights);
    break;
  }
  return rc;
}

/* Checks the inputs and builds the standardised data and the plan. Local. */
static int fit_setup(tcx_ctx *ctx, const tcx_tcorex_options *options,
                     const tcx_block *block, const double *init_weights,
                     tcx_tcorex_result *result, tcx_block **x,
                     tcx_tcorex_plan **plan)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_tcorex_check_options(ctx, options));
  TCX_CHECK((options->init == TCX_TCOREX_INIT_GIVEN) == (init_weights != NULL),
            ctx, TCX_ERR_USAGE,
            "init_weights is %s but the initialisation mode is %d; pass "
            "weights exactly when init is TCX_TCOREX_INIT_GIVEN",
            init_weights ? "given" : "NULL", (int)options->init);
  TCX_TRY(result_allocate(ctx, block->n_periods, options->n_factors,
                          block->n_local, result));
  TCX_TRY(tcx_tcorex_standardize(ctx, options, block, result->mean,
                                 result->std, x));
  TCX_TRY(tcx_tcorex_plan_create(ctx, options, *x, plan));
  (*plan)->col_begin = block->col_begin;

cleanup:
  return rc;
}

int tcx_tcorex_fit(tcx_ctx *ctx, const tcx_tcorex_options *options,
                   const tcx_block *block, const double *init_weights,
                   tcx_tcorex_result *result)
{
  tcx_block *x = NULL;
  tcx_tcorex_plan *plan = NULL;
  tcx_tcorex_validation *validation = NULL;
  tcx_tcorex_options schedule;
  double start = tcx_time();
  int began = 0, rc;

  memset(result, 0, sizeof(*result));
  result->validation_nll = NAN;
  result->validation_iteration = -1;
  rc = fit_setup(ctx, options, block, init_weights, result, &x, &plan);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK)
    goto cleanup;
  if (options->validation) {
    TCX_TRY(tcx_tcorex_validation_create(ctx, options, block, result,
                                         &validation));
    plan->validation = validation;
  }
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "T-CorEx: %d periods, %lld rows, %lld variables, %lld factors, "
          "%s windows",
          block->n_periods, (long long)block->n_rows,
          (long long)block->n_vars, (long long)options->n_factors,
          plan->full_windows ? "whole-series" : "partial");

  began = 1;
  TCX_TRY(tcx_tcorex_checkpoint_begin(ctx, options, plan));
  /* A checkpoint of the main fit contains the weights, so the initialisation
   * is skipped; a checkpoint of the initialisation resumes inside it. */
  if (!tcx_tcorex_checkpoint_pending(options))
    TCX_TRY(init_weights_all(ctx, options, x, init_weights,
                             result->weights));
  result->init_seconds = tcx_time() - start;

  /* The linear CorEx initialisation has been annealed already. */
  schedule = *options;
  if (options->init == TCX_TCOREX_INIT_LINEAR && !options->reanneal)
    schedule.anneal = 0;
  TCX_TRY(tcx_tcorex_optimize(ctx, &schedule, plan, result->weights, result));
  result->optimize_seconds = tcx_time() - start - result->init_seconds;
  TCX_TRY(tcx_tcorex_outputs(ctx, plan, result->weights, result));
  TCX_TRY(tcx_tcorex_evaluate(ctx, plan, 0.0, result->weights,
                              TCX_TCOREX_EVAL_VALUE, NULL, 0, NULL,
                              &result->value, NULL));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "T-CorEx: %lld steps in %.2f s after a start of %.2f s, objective "
          "%.8g, %s",
          (long long)result->iterations, result->optimize_seconds,
          result->init_seconds,
          result->value.main + result->value.reg_l1 + result->value.reg_l2,
          result->stopped_early ? "stopped by the validation rows"
          : result->converged   ? "converged"
                                : "not converged (a stage reached --max-iter)");

cleanup:
  if (began)
    tcx_checkpoint_end_fit(options->checkpoint);
  tcx_tcorex_plan_destroy(&plan);
  tcx_tcorex_validation_destroy(&validation);
  tcx_block_destroy(&x);
  return rc;
}

void tcx_tcorex_result_free(tcx_tcorex_result *result)
{
  if (!result)
    return;
  free(result->weights);
  free(result->factors);
  free(result->mi);
  free(result->clusters);
  free(result->mean);
  free(result->std);
  free(result->tcs);
  free(result->history_main);
  free(result->history_reg);
  memset(result, 0, sizeof(*result));
}
