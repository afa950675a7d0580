/* tcorex fit: reads a column block per rank, preprocesses it, fits linear
 * CorEx and writes the model atomically. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/block.h"
#include "tcorex/corex.h"
#include "tcorex/h5io.h"
#include "tcorex/model.h"
#include "tcorex/prep.h"

typedef struct fit_values {
  const char *input;
  const char *dataset;
  const char *output;
  int64_t factors;
  int64_t seed;
  int64_t max_iter;
  double tol;
  const char *gaussianize;
  double missing;
  int no_anneal;
} fit_values;

static const tcx_option_spec fit_options[] = {
    {"--input", TCX_OPT_STRING, offsetof(fit_values, input), "FILE",
     "HDF5 file with the data, [T, p] or [nt, ns, p]", 0, 0, 0, 0, NULL, 1},
    {"--dataset", TCX_OPT_STRING, offsetof(fit_values, dataset), "NAME",
     "dataset inside the input file (default /data)", 0, 0, 0, 0, NULL, 0},
    {"--output", TCX_OPT_STRING, offsetof(fit_values, output), "FILE",
     "model file to write (HDF5)", 0, 0, 0, 0, NULL, 1},
    {"--factors", TCX_OPT_INT, offsetof(fit_values, factors), "M",
     "number of latent factors, 1 <= M <= number of variables", 1, 1e18, 0, 0,
     NULL, 1},
    {"--seed", TCX_OPT_INT, offsetof(fit_values, seed), "S",
     "seed of the initial weights (default 0)", 0, 9.2e18, 0, 0, NULL, 0},
    {"--max-iter", TCX_OPT_INT, offsetof(fit_values, max_iter), "K",
     "maximum iterations per annealing stage (default 10000)", 1, 1e12, 0, 0,
     NULL, 0},
    {"--tol", TCX_OPT_DOUBLE, offsetof(fit_values, tol), "E",
     "stop a stage when the objective changes by less than E (default 1e-5)",
     0, INFINITY, 1, 0, NULL, 0},
    {"--gaussianize", TCX_OPT_CHOICE, offsetof(fit_values, gaussianize),
     "MODE",
     "preprocessing: standard, outliers (squash |z| > 4) or none (default "
     "standard)",
     0, 0, 0, 0, "standard|outliers|none", 0},
    {"--missing", TCX_OPT_DOUBLE, offsetof(fit_values, missing), "V",
     "treat values equal to V as missing (NaN is always missing)", -INFINITY,
     INFINITY, 0, 0, NULL, 0},
    {"--no-anneal", TCX_OPT_FLAG, offsetof(fit_values, no_anneal), NULL,
     "fit at noise level 0 only, without the annealing stages", 0, 0, 0, 0,
     NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void fit_defaults(void *values)
{
  fit_values *v = values;
  tcx_corex_options defaults;

  tcx_corex_options_default(&defaults);
  v->dataset = "/data";
  v->seed = (int64_t)defaults.seed;
  v->max_iter = defaults.max_iter;
  v->tol = defaults.tol;
  v->gaussianize = "standard";
  v->missing = NAN;
}

static tcx_gaussianize gaussianize_mode(const char *name)
{
  if (strcmp(name, "outliers") == 0)
    return TCX_GAUSSIANIZE_OUTLIERS;
  if (strcmp(name, "none") == 0)
    return TCX_GAUSSIANIZE_NONE;
  return TCX_GAUSSIANIZE_STANDARD;
}

/* Copies the fit result and preprocessing into a one-period model and
 * records every option and run fact as attributes. */
static int fill_model(tcx_ctx *ctx, const fit_values *v,
                      const tcx_block *block, const double *mean,
                      const double *std, const tcx_corex_result *result,
                      double seconds, tcx_model *model)
{
  const int64_t m = result->n_factors;
  const int64_t n_local = block->n_local;
  const int64_t matrix = m * n_local;
  int rc = TCX_OK;

  memcpy(model->mean, mean, (size_t)n_local * sizeof(double));
  memcpy(model->std, std, (size_t)n_local * sizeof(double));
  memcpy(model->weights, result->weights, (size_t)matrix * sizeof(double));
  memcpy(model->factors, result->factors, (size_t)matrix * sizeof(double));
  memcpy(model->mi, result->mi, (size_t)matrix * sizeof(double));
  /* The file stores argmax_j MI_ji, the definition T-CorEx uses too; the
   * fit's own labels (argmax_j |U_ji|) agree except for near ties. */
  for (int64_t i = 0; i < n_local; i++) {
    int32_t best = 0;

    for (int64_t j = 1; j < m; j++)
      if (result->mi[j * n_local + i] > result->mi[best * n_local + i])
        best = (int32_t)j;
    model->clusters[i] = best;
  }
  memcpy(model->tcs, result->tcs, (size_t)m * sizeof(double));
  TCX_TRY(tcx_model_set_objective(ctx, model, result->history,
                                  result->n_history));

  TCX_TRY(tcx_model_set_string(ctx, model, "method", "linear-corex"));
  TCX_TRY(tcx_model_set_string(ctx, model, "version", TCX_VERSION));
  TCX_TRY(tcx_model_set_string(ctx, model, "input", v->input));
  TCX_TRY(tcx_model_set_string(ctx, model, "dataset", v->dataset));
  TCX_TRY(tcx_model_set_int(ctx, model, "factors", m));
  TCX_TRY(tcx_model_set_int(ctx, model, "seed", v->seed));
  TCX_TRY(tcx_model_set_int(ctx, model, "max_iter", v->max_iter));
  TCX_TRY(tcx_model_set_double(ctx, model, "tol", v->tol));
  TCX_TRY(tcx_model_set_string(ctx, model, "gaussianize", v->gaussianize));
  TCX_TRY(tcx_model_set_int(ctx, model, "anneal", !v->no_anneal));
  TCX_TRY(tcx_model_set_double(ctx, model, "missing", v->missing));
  TCX_TRY(tcx_model_set_int(ctx, model, "samples", block->n_rows));
  TCX_TRY(tcx_model_set_int(ctx, model, "ranks", tcx_ctx_size(ctx)));
  TCX_TRY(tcx_model_set_int(ctx, model, "iterations", result->iterations));
  TCX_TRY(tcx_model_set_int(ctx, model, "converged", result->converged));
  TCX_TRY(tcx_model_set_double(ctx, model, "tc", result->tc));
  TCX_TRY(tcx_model_set_double(ctx, model, "seconds", seconds));

cleanup:
  return rc;
}

static int check_fit_request(tcx_ctx *ctx, const fit_values *v,
                             const tcx_block *block)
{
  int rc = TCX_OK;

  TCX_CHECK(v->factors <= block->n_vars, ctx, TCX_ERR_USAGE,
            "invalid value for --factors: %lld is more than the %lld "
            "variables of %s:%s",
            (long long)v->factors, (long long)block->n_vars, v->input,
            v->dataset);
  TCX_CHECK(block->n_rows >= 2, ctx, TCX_ERR_INPUT,
            "%s:%s has %lld row(s); linear CorEx needs at least 2 samples",
            v->input, v->dataset, (long long)block->n_rows);

cleanup:
  return rc;
}

static int run_fit(tcx_ctx *ctx, void *values)
{
  const fit_values *v = values;
  const tcx_read_options read = {v->dataset, !isnan(v->missing), v->missing};
  tcx_corex_options options;
  tcx_corex_result result = {0};
  tcx_block *block = NULL;
  tcx_model *model = NULL;
  double *mean = NULL, *std = NULL;
  int64_t n_constant = 0, n_constant_all = 0;
  const double start = tcx_time();
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_check_output_path(ctx, v->output)));
  TCX_TRY(tcx_h5_read_block(ctx, v->input, &read, &block));
  TCX_TRY(tcx_ctx_agree(ctx, check_fit_request(ctx, v, block)));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "fit: read %lld samples x %lld variables from %s:%s on %d rank(s)",
          (long long)block->n_rows, (long long)block->n_vars, v->input,
          v->dataset, tcx_ctx_size(ctx));

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
  options.max_iter = v->max_iter;
  options.tol = v->tol;
  options.anneal = !v->no_anneal;
  TCX_TRY(tcx_corex_fit(ctx, &options, block->data, block->n_rows,
                        block->n_local, block->col_begin, block->n_vars,
                        &result));

  TCX_TRY(tcx_model_create(ctx, 1, v->factors, block->n_vars,
                           block->col_begin, block->n_local, &model));
  TCX_TRY(fill_model(ctx, v, block, mean, std, &result, tcx_time() - start,
                     model));
  TCX_TRY(tcx_model_write(ctx, v->output, model));
  tcx_log(ctx, TCX_LOG_WARNING,
          "fit: linear CorEx, %lld variables, %lld samples, %lld factors: TC "
          "%.6g after %lld iterations (%s) in %.2f s; model written to %s",
          (long long)block->n_vars, (long long)block->n_rows,
          (long long)v->factors, result.tc, (long long)result.iterations,
          result.converged ? "converged" : "stopped at --max-iter",
          tcx_time() - start, v->output);

cleanup:
  tcx_model_destroy(&model);
  tcx_corex_result_free(&result);
  free(mean);
  free(std);
  tcx_block_destroy(&block);
  return rc;
}

const tcx_command tcx_command_fit = {
    "fit",
    "Fit linear CorEx to an HDF5 dataset and write the model.",
    "mpirun -n N tcorex fit --input D.h5 [--dataset /data] --factors M "
    "--output MODEL.h5 [options]",
    fit_options,
    run_fit,
    sizeof(fit_values),
    fit_defaults,
};
