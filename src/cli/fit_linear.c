/* The linear CorEx path of 'tcorex fit'. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fit.h"
#include "tcorex/corex.h"
#include "tcorex/prep.h"

static tcx_gaussianize gaussianize_mode(const char *name)
{
  if (strcmp(name, "outliers") == 0)
    return TCX_GAUSSIANIZE_OUTLIERS;
  if (strcmp(name, "none") == 0)
    return TCX_GAUSSIANIZE_NONE;
  return TCX_GAUSSIANIZE_STANDARD;
}

/* Copies the fit result and preprocessing into a one-period model. */
static int fill_model(tcx_ctx *ctx, const tcx_corex_result *result,
                      const double *mean, const double *std, tcx_model *model)
{
  const int64_t m = result->n_factors;
  const int64_t n_local = model->n_local;
  const int64_t matrix = m * n_local;
  int rc = TCX_OK;

  memcpy(model->mean, mean, (size_t)n_local * sizeof(double));
  memcpy(model->std, std, (size_t)n_local * sizeof(double));
  memcpy(model->weights, result->weights, (size_t)matrix * sizeof(double));
  memcpy(model->factors, result->factors, (size_t)matrix * sizeof(double));
  memcpy(model->mi, result->mi, (size_t)matrix * sizeof(double));
  memcpy(model->tcs, result->tcs, (size_t)m * sizeof(double));

  /* The file stores argmax_j MI_ji, the definition T-CorEx uses too; the
   * fit's own labels (argmax_j |U_ji|) agree except for near ties. */
  for (int64_t i = 0; i < n_local; i++) {
    int32_t best = 0;

    for (int64_t j = 1; j < m; j++)
      if (result->mi[j * n_local + i] > result->mi[best * n_local + i])
        best = (int32_t)j;
    model->clusters[i] = best;
  }
  TCX_TRY(tcx_model_set_objective(ctx, model, result->history,
                                  result->n_history));
  TCX_TRY(tcx_model_set_string(ctx, model, "method", "linear-corex"));
  TCX_TRY(tcx_model_set_int(ctx, model, "iterations", result->iterations));
  TCX_TRY(tcx_model_set_int(ctx, model, "converged", result->converged));
  TCX_TRY(tcx_model_set_double(ctx, model, "tc", result->tc));

cleanup:
  return rc;
}

int tcx_cli_fit_linear(tcx_ctx *ctx, const fit_values *v, tcx_block *block,
                       tcx_model **model)
{
  tcx_corex_options options;
  tcx_corex_result result = {0};
  double *mean = NULL, *std = NULL;
  int64_t n_constant = 0, n_constant_all = 0;
  int rc = TCX_OK;

  *model = NULL;
  TCX_TRY(tcx_calloc(ctx, block->n_local, sizeof(double), "means", &mean));
  TCX_TRY(tcx_calloc(ctx, block->n_local, sizeof(double), "std", &std));
  rc = tcx_prep_standardize(ctx, gaussianize_mode(v->gaussianize),
                            block->n_rows, block->n_local, block->col_begin,
                            block->data, mean, std, &n_constant);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY_MPI(ctx, MPI_Allreduce(&n_constant, &n_constant_all, 1, MPI_INT64_T,
                                 MPI_SUM, tcx_ctx_comm(ctx)));
  if (n_constant_all > 0)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %lld constant variable(s) in %s:%s are kept; "
            "they carry no correlation",
            (long long)n_constant_all, v->input, v->dataset);

  tcx_corex_options_default(&options);
  options.n_factors = v->factors;
  options.seed = (uint64_t)v->seed;
  if (v->max_iter > 0)
    options.max_iter = v->max_iter;
  if (!isnan(v->tol))
    options.tol = v->tol;
  options.anneal = !v->no_anneal;
  options.checkpoint = v->checkpoint;
  TCX_TRY(tcx_corex_fit(ctx, &options, block->data, block->n_rows,
                        block->n_local, block->col_begin, block->n_vars,
                        &result));

  TCX_TRY(tcx_model_create(ctx, 1, v->factors, block->n_vars,
                           block->col_begin, block->n_local, model));
  TCX_TRY(fill_model(ctx, &result, mean, std, *model));
  TCX_TRY(tcx_model_set_int(ctx, *model, "max_iter", options.max_iter));
  TCX_TRY(tcx_model_set_double(ctx, *model, "tol", options.tol));
  TCX_TRY(tcx_model_set_string(ctx, *model, "gaussianize", v->gaussianize));
  tcx_log(ctx, TCX_LOG_WARNING,
          "fit: linear CorEx, %lld variables, %lld samples, %lld factors: TC "
          "%.6g after %lld iterations (%s)",
          (long long)block->n_vars, (long long)block->n_rows,
          (long long)v->factors, result.tc, (long long)result.iterations,
          result.converged ? "converged" : "stopped at --max-iter");

cleanup:
  if (rc != TCX_OK)
    tcx_model_destroy(model);
  tcx_corex_result_free(&result);
  free(mean);
  free(std);
  return rc;
}
