/* The T-CorEx path of 'tcorex fit'. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fit.h"
#include "tcorex/tcorex.h"

static int to_tcorex_options(const fit_values *v, tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = v->factors;
  options->seed = (uint64_t)v->seed;
  if (v->max_iter > 0)
    options->max_iter = v->max_iter;
  if (!isnan(v->tol))
    options->tol = v->tol;
  options->anneal = !v->no_anneal;
  options->l1 = v->l1;
  options->l2 = v->l2;
  options->gamma = v->gamma;
  options->reg_type = strcmp(v->reg_type, "mi") == 0      ? TCX_TCOREX_REG_MI
                      : strcmp(v->reg_type, "sigma") == 0 ? TCX_TCOREX_REG_SIGMA
                                                          : TCX_TCOREX_REG_W;
  options->weighted_objective = v->weighted_objective;
  if (v->max_samples > 0)
    options->max_samples = v->max_samples;
  options->init = v->no_init ? TCX_TCOREX_INIT_RANDOM : TCX_TCOREX_INIT_LINEAR;
  options->optimizer =
      strcmp(v->optimizer, "fista") == 0 ? TCX_TCOREX_FISTA : TCX_TCOREX_ADAM;
  if (!isnan(v->learning_rate))
    options->learning_rate = v->learning_rate;
  options->checkpoint = v->checkpoint;
  options->reanneal = !v->no_reanneal;
  options->init_max_iter = v->init_max_iter;
  if (v->stopping_window > 0)
    options->stopping_window = v->stopping_window;
  options->precision = strcmp(v->precision, "single") == 0
                           ? TCX_TCOREX_SINGLE
                           : TCX_TCOREX_DOUBLE;
  options->validation = v->validation;
  if (v->validation_every > 0)
    options->validation_every = v->validation_every;
  if (v->patience > 0)
    options->patience = v->patience;
  return TCX_OK;
}

static int fill_model(tcx_ctx *ctx, const tcx_tcorex_result *result,
                      tcx_model *model)
{
  const int64_t nt = result->n_periods, m = result->n_factors;
  const int64_t n_local = result->n_local;
  int rc = TCX_OK;

  memcpy(model->mean, result->mean, (size_t)(nt * n_local) * sizeof(double));
  memcpy(model->std, result->std, (size_t)(nt * n_local) * sizeof(double));
  memcpy(model->weights, result->weights,
         (size_t)(nt * m * n_local) * sizeof(double));
  memcpy(model->factors, result->factors,
         (size_t)(nt * m * n_local) * sizeof(double));
  memcpy(model->mi, result->mi, (size_t)(nt * m * n_local) * sizeof(double));
  memcpy(model->clusters, result->clusters,
         (size_t)(nt * n_local) * sizeof(int32_t));
  memcpy(model->tcs, result->tcs, (size_t)(nt * m) * sizeof(double));
  TCX_TRY(tcx_model_set_objective_parts(ctx, model, result->history_main,
                                        result->history_reg,
                                        result->n_history));
  TCX_TRY(tcx_model_set_string(ctx, model, "method", "t-corex"));
  TCX_TRY(tcx_model_set_int(ctx, model, "iterations", result->iterations));
  TCX_TRY(tcx_model_set_int(ctx, model, "converged", result->converged));
  TCX_TRY(tcx_model_set_double(ctx, model, "objective_main",
                               result->value.main));
  TCX_TRY(tcx_model_set_double(ctx, model, "objective_l1",
                               result->value.reg_l1));
  TCX_TRY(tcx_model_set_double(ctx, model, "objective_l2",
                               result->value.reg_l2));
  if (!isnan(result->validation_nll)) {
    TCX_TRY(tcx_model_set_double(ctx, model, "early_stopping_nll",
                                 result->validation_nll));
    TCX_TRY(tcx_model_set_int(ctx, model, "early_stopping_step",
                              result->validation_iteration));
    TCX_TRY(tcx_model_set_int(ctx, model, "stopped_early",
                              result->stopped_early));
  }

cleanup:
  return rc;
}

static int set_tcorex_attributes(tcx_ctx *ctx, const fit_values *v,
                                 const tcx_tcorex_options *options,
                                 tcx_model *model)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_model_set_int(ctx, model, "max_iter", options->max_iter));
  TCX_TRY(tcx_model_set_double(ctx, model, "tol", options->tol));
  TCX_TRY(tcx_model_set_double(ctx, model, "l1", options->l1));
  TCX_TRY(tcx_model_set_double(ctx, model, "l2", options->l2));
  TCX_TRY(tcx_model_set_double(ctx, model, "gamma", options->gamma));
  TCX_TRY(tcx_model_set_string(ctx, model, "reg_type", v->reg_type));
  TCX_TRY(tcx_model_set_int(ctx, model, "weighted_objective",
                            options->weighted_objective));
  TCX_TRY(tcx_model_set_int(ctx, model, "max_samples", options->max_samples));
  TCX_TRY(tcx_model_set_int(ctx, model, "init_linear_corex",
                            options->init == TCX_TCOREX_INIT_LINEAR));
  TCX_TRY(tcx_model_set_string(ctx, model, "optimizer", v->optimizer));
  TCX_TRY(tcx_model_set_double(ctx, model, "learning_rate",
                               options->learning_rate));
  TCX_TRY(tcx_model_set_int(ctx, model, "reanneal", options->reanneal));
  TCX_TRY(tcx_model_set_int(ctx, model, "stopping_window",
                            options->stopping_window));
  TCX_TRY(tcx_model_set_int(ctx, model, "init_max_iter",
                            options->init_max_iter > 0
                                ? options->init_max_iter
                                : options->max_iter));
  TCX_TRY(tcx_model_set_string(ctx, model, "precision", v->precision));
  if (options->validation) {
    /* tcorex select records its validation file as validation_input.
     * --holdout takes the rows from the input itself. */
    const char *path = v->validation_path ? v->validation_path
                       : v->holdout > 0   ? v->input
                                          : "(select)";

    TCX_TRY(tcx_model_set_string(ctx, model, "early_stopping_input", path));
    if (v->validation_path)
      TCX_TRY(tcx_model_set_string(ctx, model, "early_stopping_dataset",
                                   tcx_cli_fit_validation_dataset(v)));
    if (v->holdout > 0) {
      TCX_TRY(tcx_model_set_string(ctx, model, "early_stopping_dataset",
                                   v->dataset));
      TCX_TRY(tcx_model_set_int(ctx, model, "holdout", v->holdout));
    }
    TCX_TRY(tcx_model_set_int(ctx, model, "validation_every",
                              options->validation_every));
    TCX_TRY(tcx_model_set_int(ctx, model, "patience", options->patience));
  }

cleanup:
  return rc;
}

int tcx_cli_fit_tcorex(tcx_ctx *ctx, const fit_values *v,
                       const tcx_block *block, tcx_model **model)
{
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  int rc = TCX_OK;

  *model = NULL;
  TCX_CHECK(strcmp(v->gaussianize, "standard") == 0, ctx, TCX_ERR_USAGE,
            "--gaussianize %s applies to linear CorEx only; T-CorEx "
            "standardises each period with its weighted window",
            v->gaussianize);
  to_tcorex_options(v, &options);
  TCX_TRY(tcx_tcorex_fit(ctx, &options, block, NULL, &result));

  TCX_TRY(tcx_model_create(ctx, block->n_periods, v->factors, block->n_vars,
                           block->col_begin, block->n_local, model));
  TCX_TRY(fill_model(ctx, &result, *model));
  TCX_TRY(set_tcorex_attributes(ctx, v, &options, *model));
  tcx_log(ctx, TCX_LOG_WARNING,
          "fit: T-CorEx, %d periods, %lld variables, %lld samples, %lld "
          "factors: objective %.6g (main %.6g, l1 %.3g, l2 %.3g) after %lld "
          "iterations (%s)",
          block->n_periods, (long long)block->n_vars,
          (long long)block->n_rows, (long long)v->factors,
          result.value.main + result.value.reg_l1 + result.value.reg_l2,
          result.value.main, result.value.reg_l1, result.value.reg_l2,
          (long long)result.iterations,
          result.stopped_early ? "stopped early on the validation rows"
          : result.converged   ? "converged"
                               : "stopped at --max-iter");
  if (options.validation)
    tcx_log(ctx, TCX_LOG_WARNING,
            "fit: validation NLL %.6g at step %lld, the lowest of the checks "
            "(%s)",
            result.validation_nll, (long long)result.validation_iteration,
            result.stopped_early ? "stopped early" : "ran to the end");

cleanup:
  if (rc != TCX_OK)
    tcx_model_destroy(model);
  tcx_tcorex_result_free(&result);
  return rc;
}
