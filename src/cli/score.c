/* tcorex score: mean Gaussian negative log-likelihood per sample of held-out
 * data under each period's low-rank plus diagonal covariance. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "score.h"
#include "tcorex/block.h"
#include "tcorex/dense.h"
#include "tcorex/h5io.h"
#include "tcorex/lowrank.h"
#include "tcorex/model.h"

typedef struct score_values {
  const char *model;
  const char *input;
  const char *dataset;
  double missing; /* NaN: no marker */
  int zero_mean;
  int64_t periods;
  int64_t period_length;
} score_values;

static const tcx_option_spec score_options[] = {
    {"--model", TCX_OPT_STRING, offsetof(score_values, model), "FILE",
     "model file written by 'tcorex fit'", 0, 0, 0, 0, NULL, 1},
    {"--input", TCX_OPT_STRING, offsetof(score_values, input), "FILE",
     "HDF5 file with held-out data, [T, p] or [nt, ns, p]", 0, 0, 0, 0, NULL,
     1},
    {"--dataset", TCX_OPT_STRING, offsetof(score_values, dataset), "NAME",
     "dataset inside the input file (default /data)", 0, 0, 0, 0, NULL, 0},
    {"--missing", TCX_OPT_DOUBLE, offsetof(score_values, missing), "V",
     "treat values equal to V as missing (NaN is always missing); missing "
     "values are replaced by the model's mean",
     -INFINITY, INFINITY, 0, 0, NULL, 0},
    {"--periods", TCX_OPT_INT, offsetof(score_values, periods), "NT",
     "split a [T, p] input into NT periods as 'tcorex fit --periods' does "
     "(default: the split the model was fitted with)",
     1, 1e9, 0, 0, NULL, 0},
    {"--period-length", TCX_OPT_INT, offsetof(score_values, period_length),
     "L", "split a [T, p] input into periods of L rows", 1, 1e15, 0, 0, NULL,
     0},
    {"--zero-mean", TCX_OPT_FLAG, offsetof(score_values, zero_mean), NULL,
     "score the data as zero-mean instead of subtracting the model's means",
     0, 0, 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void score_defaults(void *values)
{
  score_values *v = values;

  v->dataset = "/data";
  v->missing = NAN;
}

/* Centres the rows of one period in place: subtracts the model's mean (or
 * nothing with --zero-mean). A missing value becomes the model's mean, which
 * makes the NLL optimistic; returns how many there were. */
static int64_t center_rows(double *rows, int64_t n_rows, int64_t n_local,
                           const double *mean, int zero_mean)
{
  int64_t n_missing = 0;

  for (int64_t r = 0; r < n_rows; r++)
    for (int64_t j = 0; j < n_local; j++) {
      double *value = &rows[r * n_local + j];

      if (isnan(*value)) {
        *value = zero_mean ? mean[j] : 0.0;
        n_missing++;
      } else if (!zero_mean) {
        *value -= mean[j];
      }
    }
  return n_missing;
}

int tcx_cli_score_split(tcx_ctx *ctx, int n_periods, int64_t period_length,
                        tcx_block *block)
{
  if (block->n_periods > 1 || n_periods == 1)
    return TCX_OK;
  if (period_length > 0)
    return tcx_block_split_periods(ctx, block, 0, period_length);
  return tcx_block_split_periods(ctx, block, n_periods, 0);
}

/* Splits a [T, p] input of a model with several periods: by --periods or
 * --period-length when given, otherwise as the model's fit split its input
 * (its period_length attribute, or equal blocks). */
static int split_input(tcx_ctx *ctx, const score_values *v, int n_periods,
                       tcx_block *block)
{
  double fitted_length = 0.0;
  int rc = TCX_OK;

  if (v->periods > 0 || v->period_length > 0) {
    TCX_CHECK(!(v->periods > 0 && v->period_length > 0), ctx, TCX_ERR_USAGE,
              "give at most one of --periods and --period-length");
    return tcx_block_split_periods(ctx, block, v->periods, v->period_length);
  }
  if (block->n_periods > 1 || n_periods == 1)
    return TCX_OK;
  if (tcx_h5_read_attr_double(ctx, v->model, "period_length",
                              &fitted_length) != TCX_OK)
    fitted_length = 0.0;
  return tcx_cli_score_split(ctx, n_periods, (int64_t)fitted_length, block);

cleanup:
  return rc;
}

int tcx_cli_score_check(tcx_ctx *ctx, int n_periods, int64_t n_vars,
                        const char *model_name, const tcx_block *block,
                        const char *input, const char *dataset)
{
  int rc = TCX_OK;

  TCX_CHECK(block->n_vars == n_vars, ctx, TCX_ERR_INPUT,
            "%s:%s has %lld variables but the model %s has %lld; score data "
            "with the variables the model was fitted on",
            input, dataset, (long long)block->n_vars, model_name,
            (long long)n_vars);
  TCX_CHECK(n_periods == 1 || n_periods == block->n_periods, ctx,
            TCX_ERR_INPUT,
            "%s:%s has %d period(s) but the model %s has %d; give the held-out "
            "data as [nt, ns, p] with one block per model period",
            input, dataset, block->n_periods, model_name, n_periods);

cleanup:
  return rc;
}

int tcx_cli_score_block(tcx_ctx *ctx, const tcx_model *model, int zero_mean,
                        tcx_block *block, double *period_nll,
                        double *mean_nll, int64_t *n_missing)
{
  const int64_t m = model->n_factors, n_local = model->n_local;
  int64_t missing = 0;
  double *l = NULL, *d = NULL;
  double total = 0.0;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "covariance factor",
                     &l));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "diagonal", &d));
  for (int t = 0; t < block->n_periods; t++) {
    const int s = model->n_periods == 1 ? 0 : t;
    const int64_t first = block->period_begin[t];
    const int64_t n_rows = block->period_begin[t + 1] - first;
    double *rows = block->data + first * n_local;

    missing += center_rows(rows, n_rows, n_local, model->mean + s * n_local,
                           zero_mean);
    rc = tcx_lowrank_from_factors(ctx, m, n_local,
                                  model->factors + s * m * n_local,
                                  model->std + s * n_local, l, d);
    TCX_TRY(tcx_ctx_agree(ctx, rc));
    TCX_TRY(tcx_lowrank_nll(ctx, m, n_local, l, d, n_rows, rows,
                            &period_nll[t]));
    total += period_nll[t];
  }
  *mean_nll = total / block->n_periods;
  TCX_TRY_MPI(ctx, MPI_Allreduce(&missing, n_missing, 1, MPI_INT64_T, MPI_SUM,
                                 tcx_ctx_comm(ctx)));

cleanup:
  free(l);
  free(d);
  return rc;
}

/* Returns 1 when path is a dense model written by 'tcorex baseline'. A
 * missing or unreadable file returns 0, and the low-rank path reports it. */
static int is_dense_model(tcx_ctx *ctx, const char *path)
{
  char format[64] = "";

  if (tcx_h5_read_attr_string(ctx, path, "format", format, sizeof(format)) !=
      TCX_OK)
    return 0;
  return strcmp(format, "tcorex-dense-model") == 0;
}

/* Reads the period count, variable count and this rank's columns of /mean
 * of a dense model. */
static int read_dense_header(tcx_ctx *ctx, const char *path, int *n_periods,
                             int64_t *n_vars, int64_t *col_begin,
                             int64_t *n_local, double **mean)
{
  double periods = 0.0, vars = 0.0;
  int64_t dims[2];
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_attr_double(ctx, path, "n_periods", &periods));
  TCX_TRY(tcx_h5_read_attr_double(ctx, path, "n_vars", &vars));
  TCX_CHECK(periods >= 1 && vars >= 1, ctx, TCX_ERR_INPUT,
            "dense model %s has n_periods = %g and n_vars = %g; rewrite it "
            "with 'tcorex baseline'",
            path, periods, vars);
  *n_periods = (int)periods;
  *n_vars = (int64_t)vars;
  TCX_TRY(tcx_partition(ctx, *n_vars, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                        col_begin, n_local));
  dims[0] = *n_periods;
  dims[1] = *n_vars;
  TCX_TRY(tcx_h5_read_columns(ctx, path, "/mean", 2, dims, *col_begin,
                              *n_local, mean));

cleanup:
  return rc;
}

/* Scores held-out data under a dense model: per period, the covariance is
 * read into the block-cyclic layout and factorised with PDPOTRF. */
static int run_score_dense(tcx_ctx *ctx, const score_values *v)
{
  const tcx_read_options read = {v->dataset, !isnan(v->missing), v->missing};
  int64_t n_vars = 0, col_begin = 0, n_local = 0;
  int64_t n_missing = 0, n_missing_all = 0;
  int n_periods = 0;
  tcx_block *block = NULL;
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;
  double *mean = NULL, total = 0.0;
  int rc = TCX_OK;

  TCX_TRY(read_dense_header(ctx, v->model, &n_periods, &n_vars, &col_begin,
                            &n_local, &mean));
  TCX_TRY(tcx_h5_read_block(ctx, v->input, &read, &block));
  TCX_TRY(tcx_ctx_agree(ctx, split_input(ctx, v, n_periods, block)));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_score_check(ctx, n_periods, n_vars, v->model,
                                                 block, v->input, v->dataset)));
  TCX_TRY(tcx_grid_create(ctx, TCX_DENSE_BLOCK_SIZE, &grid));
  TCX_TRY(tcx_dense_create(ctx, grid, n_vars, n_vars, &a));

  if (tcx_ctx_rank(ctx) == 0)
    printf("period\tsamples\tnll\n");
  for (int t = 0; t < block->n_periods; t++) {
    const int s = n_periods == 1 ? 0 : t;
    const int64_t first = block->period_begin[t];
    const int64_t n_rows = block->period_begin[t + 1] - first;
    double *rows = block->data + first * n_local;
    double nll = 0.0;

    n_missing += center_rows(rows, n_rows, n_local, mean + s * n_local,
                             v->zero_mean);
    TCX_TRY(tcx_h5_read_dense(ctx, v->model, "/covariance", s, a));
    TCX_TRY(tcx_dense_nll(ctx, a, n_rows, n_local, rows, &nll));
    total += nll;
    if (tcx_ctx_rank(ctx) == 0)
      printf("%d\t%lld\t%.6f\n", t, (long long)n_rows, nll);
  }
  TCX_TRY_MPI(ctx, MPI_Allreduce(&n_missing, &n_missing_all, 1, MPI_INT64_T,
                                 MPI_SUM, tcx_ctx_comm(ctx)));
  if (n_missing_all > 0)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %lld missing value(s) in %s:%s were replaced by "
            "the model's mean; the NLL is then lower than on complete data",
            (long long)n_missing_all, v->input, v->dataset);
  if (tcx_ctx_rank(ctx) == 0) {
    printf("mean\t%lld\t%.6f\n", (long long)block->n_rows,
           total / block->n_periods);
    fflush(stdout);
  }

cleanup:
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
  tcx_block_destroy(&block);
  free(mean);
  return rc;
}

static int run_score(tcx_ctx *ctx, void *values)
{
  const score_values *v = values;
  const tcx_read_options read = {v->dataset, !isnan(v->missing), v->missing};
  int64_t n_missing = 0;
  tcx_model *model = NULL;
  tcx_block *block = NULL;
  double *period_nll = NULL;
  double mean_nll = 0.0;
  int rc = TCX_OK;

  if (is_dense_model(ctx, v->model))
    return run_score_dense(ctx, v);
  TCX_TRY(tcx_model_read(ctx, v->model, &model));
  TCX_TRY(tcx_h5_read_block(ctx, v->input, &read, &block));
  TCX_TRY(tcx_ctx_agree(ctx, split_input(ctx, v, model->n_periods, block)));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_score_check(
                                 ctx, model->n_periods, model->n_vars, v->model,
                                 block, v->input, v->dataset)));
  TCX_TRY(tcx_calloc(ctx, block->n_periods, sizeof(double), "period NLL",
                     &period_nll));
  TCX_TRY(tcx_cli_score_block(ctx, model, v->zero_mean, block, period_nll,
                              &mean_nll, &n_missing));

  if (tcx_ctx_rank(ctx) == 0) {
    printf("period\tsamples\tnll\n");
    for (int t = 0; t < block->n_periods; t++)
      printf("%d\t%lld\t%.6f\n", t,
             (long long)(block->period_begin[t + 1] - block->period_begin[t]),
             period_nll[t]);
  }
  if (n_missing > 0)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %lld missing value(s) in %s:%s were replaced by "
            "the model's mean; the NLL is then lower than on complete data",
            (long long)n_missing, v->input, v->dataset);
  if (tcx_ctx_rank(ctx) == 0) {
    printf("mean\t%lld\t%.6f\n", (long long)block->n_rows, mean_nll);
    fflush(stdout);
  }

cleanup:
  free(period_nll);
  tcx_block_destroy(&block);
  tcx_model_destroy(&model);
  return rc;
}

const tcx_command tcx_command_score = {
    "score",
    "Print the mean negative log-likelihood per sample of held-out data.",
    "mpirun -n N tcorex score --model MODEL.h5 --input D.h5 [--dataset NAME] "
    "[--missing V] [--periods NT | --period-length L] [--zero-mean]",
    score_options,
    run_score,
    sizeof(score_values),
    score_defaults,
    NULL,
    0,
};
