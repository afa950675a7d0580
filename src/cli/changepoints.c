/* tcorex changepoints: scores each pair of consecutive periods of a T-CorEx
 * model by the norm of the difference of their partial correlation,
 * precision or correlation matrices and flags the pairs that stand out. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/changepoints.h"
#include "tcorex/h5io.h"
#include "tcorex/lowrank.h"
#include "tcorex/model.h"

typedef struct changepoints_values {
  const char *model;
  const char *norm;
  const char *matrices; /* NULL: not given */
  int no_inverse;
  double threshold;
  double spectral_tolerance;
  int64_t spectral_max_iter;
  const char *output;
  const char *csv;
  const char *plot;
} changepoints_values;

static const tcx_option_spec changepoints_options[] = {
    {"--model", TCX_OPT_STRING, offsetof(changepoints_values, model), "FILE",
     "T-CorEx model file written by 'tcorex fit' (2 or more periods)", 0, 0,
     0, 0, NULL, 1},
    {"--norm", TCX_OPT_CHOICE, offsetof(changepoints_values, norm), "NORM",
     "norm of the difference of consecutive periods (default frobenius)", 0,
     0, 0, 0, "frobenius|spectral", 0},
    {"--matrices", TCX_OPT_CHOICE, offsetof(changepoints_values, matrices),
     "KIND",
     "matrices compared: partial-correlation (the precision matrix scaled "
     "to unit diagonal), precision (the inverse correlation matrix) or "
     "correlation (default partial-correlation)",
     0, 0, 0, 0, "partial-correlation|precision|correlation", 0},
    {"--no-inverse", TCX_OPT_FLAG, offsetof(changepoints_values, no_inverse),
     NULL, "compare the correlation matrices: same as --matrices correlation",
     0, 0, 0, 0, NULL, 0},
    {"--threshold", TCX_OPT_DOUBLE, offsetof(changepoints_values, threshold),
     "K",
     "flag a pair when its score exceeds median + K * 1.4826 * MAD of all "
     "scores (default 5)",
     0, 1e6, 0, 0, NULL, 0},
    {"--spectral-tol", TCX_OPT_DOUBLE,
     offsetof(changepoints_values, spectral_tolerance), "TOL",
     "relative Lanczos residual at which the spectral norm has converged "
     "(default 1e-8)",
     0, 1, 1, 1, NULL, 0},
    {"--spectral-max-iter", TCX_OPT_INT,
     offsetof(changepoints_values, spectral_max_iter), "N",
     "maximum Lanczos steps per spectral norm; the basis takes N + 1 "
     "vectors of the local columns (default 300)",
     1, 1e6, 0, 0, NULL, 0},
    {"--output", TCX_OPT_STRING, offsetof(changepoints_values, output),
     "FILE", "HDF5 file to write: scores, flags and per-variable row norms",
     0, 0, 0, 0, NULL, 1},
    {"--csv", TCX_OPT_STRING, offsetof(changepoints_values, csv), "FILE",
     "also write one CSV line per pair: left_period,right_period,score,change",
     0, 0, 0, 0, NULL, 0},
    {"--plot", TCX_OPT_STRING, offsetof(changepoints_values, plot), "FILE",
     "also draw the score series with the detected changes as a PNG image",
     0, 0, 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void changepoints_defaults(void *values)
{
  changepoints_values *v = values;

  v->norm = "frobenius";
  v->threshold = TCX_CHANGEPOINTS_THRESHOLD;
  v->spectral_tolerance = TCX_LOWRANK_SPECTRAL_TOLERANCE;
  v->spectral_max_iter = TCX_LOWRANK_SPECTRAL_MAX_ITER;
}

/* Rejects outputs that would overwrite the model or each other, and
 * output folders that cannot take a file, before any work. */
static int check_paths(tcx_ctx *ctx, const changepoints_values *v)
{
  const char *flags[3] = {"--output", "--csv", "--plot"};
  const char *paths[3] = {v->output, v->csv, v->plot};
  int rc = TCX_OK;

  TCX_TRY(tcx_cli_check_input(ctx, "--model", v->model, "model file"));
  for (int k = 0; k < 3; k++) {
    if (!paths[k])
      continue;
    TCX_TRY(tcx_cli_check_distinct(ctx, "--model", v->model, flags[k],
                                   paths[k]));
    for (int j = 0; j < k; j++)
      TCX_TRY(tcx_cli_check_distinct(ctx, flags[j], paths[j], flags[k],
                                     paths[k]));
    TCX_TRY(tcx_h5_check_output_path(ctx, paths[k]));
  }
  TCX_TRY(tcx_cli_check_model_file(ctx, v->model));

cleanup:
  return rc;
}

/* Resolves --matrices and --no-inverse into options->matrices. */
static int set_matrices(tcx_ctx *ctx, const changepoints_values *v,
                        tcx_changepoints_options *options)
{
  int rc = TCX_OK;

  if (v->no_inverse) {
    TCX_CHECK(!v->matrices || strcmp(v->matrices, "correlation") == 0, ctx,
              TCX_ERR_USAGE,
              "--no-inverse compares correlation matrices, but --matrices "
              "%s was given; pass only one of them",
              v->matrices);
    options->matrices = TCX_CHANGEPOINTS_CORRELATION;
  } else if (v->matrices && strcmp(v->matrices, "precision") == 0) {
    options->matrices = TCX_CHANGEPOINTS_PRECISION;
  } else if (v->matrices && strcmp(v->matrices, "correlation") == 0) {
    options->matrices = TCX_CHANGEPOINTS_CORRELATION;
  } else {
    options->matrices = TCX_CHANGEPOINTS_PARTIAL_CORRELATION;
  }

cleanup:
  return rc;
}

/* Prints the table of pairs to stdout on rank 0 and the summary to the
 * log. */
static void report(tcx_ctx *ctx, const tcx_changepoints_result *result)
{
  int n_changes = 0;

  if (tcx_ctx_rank(ctx) == 0) {
    printf("left_period\tright_period\tscore\tchange\n");
    for (int k = 0; k < result->n_pairs; k++)
      printf("%d\t%d\t%.9g\t%d\n", k, k + 1, result->scores[k],
             (int)result->changes[k]);
    fflush(stdout);
  }
  for (int k = 0; k < result->n_pairs; k++)
    n_changes += result->changes[k];
  tcx_log(ctx, TCX_LOG_WARNING,
          "changepoints: %d of %d pair(s) flagged; threshold %.6g = median "
          "%.6g + %g * 1.4826 * MAD %.6g",
          n_changes, result->n_pairs, result->cutoff, result->median,
          result->options.threshold, result->mad);
  if (result->options.norm == TCX_CHANGEPOINTS_SPECTRAL)
    tcx_log(ctx, TCX_LOG_PROGRESS,
            "changepoints: the spectral norms took at most %lld Lanczos "
            "steps",
            (long long)result->max_lanczos_steps);
}

static int run_changepoints(tcx_ctx *ctx, void *values)
{
  const changepoints_values *v = values;
  tcx_changepoints_options options;
  tcx_changepoints_result result = {0};
  tcx_model *model = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, check_paths(ctx, v)));
  tcx_changepoints_options_default(&options);
  options.norm = strcmp(v->norm, "spectral") == 0
                     ? TCX_CHANGEPOINTS_SPECTRAL
                     : TCX_CHANGEPOINTS_FROBENIUS;
  TCX_TRY(set_matrices(ctx, v, &options));
  options.threshold = v->threshold;
  options.spectral_tolerance = v->spectral_tolerance;
  options.spectral_max_iter = v->spectral_max_iter;

  TCX_TRY(tcx_model_read(ctx, v->model, &model));
  TCX_TRY(tcx_changepoints_compute(ctx, &options, model->n_periods,
                                   model->n_factors, model->n_vars,
                                   model->col_begin, model->n_local,
                                   model->factors, &result));
  TCX_TRY(tcx_changepoints_write(ctx, v->output, v->model, &result));
  if (v->csv)
    TCX_TRY(tcx_changepoints_write_csv(ctx, v->csv, &result));
  if (v->plot)
    TCX_TRY(tcx_changepoints_plot(ctx, v->plot, &result));
  report(ctx, &result);

cleanup:
  tcx_changepoints_result_free(&result);
  tcx_model_destroy(&model);
  return rc;
}

const tcx_command tcx_command_changepoints = {
    "changepoints",
    "Score changes between consecutive periods of a T-CorEx model.",
    "mpirun -n N tcorex changepoints --model MODEL.h5 [--norm "
    "frobenius|spectral] [--matrices KIND | --no-inverse] [--threshold K] "
    "--output CP.h5 [--csv CP.csv] [--plot CP.png]",
    changepoints_options,
    run_changepoints,
    sizeof(changepoints_values),
    changepoints_defaults,
    NULL,
    0,
};
