/* tcorex baseline: standard dense covariance estimates per period (sample,
 * Ledoit-Wolf, OAS, diagonal), computed on a BLACS grid and stored as a
 * dense model that 'tcorex score' reads. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/block.h"
#include "tcorex/dense.h"
#include "tcorex/h5io.h"

typedef struct baseline_values {
  const char *method;
  const char *input;
  const char *dataset;
  int64_t periods;
  int64_t period_length;
  int64_t block_size;
  const char *output;
} baseline_values;

static const tcx_option_spec baseline_options[] = {
    {"--method", TCX_OPT_CHOICE, offsetof(baseline_values, method), "NAME",
     "estimator: sample (X^T X / n of the centred rows), ledoit-wolf, oas "
     "(both shrink the sample covariance towards a multiple of the identity) "
     "or diagonal (the sample variances only)",
     0, 0, 0, 0, "sample|ledoit-wolf|oas|diagonal", 1},
    {"--input", TCX_OPT_STRING, offsetof(baseline_values, input), "FILE",
     "HDF5 file with training data, [T, p] or [nt, ns, p]", 0, 0, 0, 0, NULL,
     1},
    {"--dataset", TCX_OPT_STRING, offsetof(baseline_values, dataset), "NAME",
     "dataset inside the input file (default /data)", 0, 0, 0, 0, NULL, 0},
    {"--periods", TCX_OPT_INT, offsetof(baseline_values, periods), "NT",
     "split a [T, p] input into NT periods of equal length, the last one "
     "taking the remainder",
     1, 1e9, 0, 0, NULL, 0},
    {"--period-length", TCX_OPT_INT, offsetof(baseline_values, period_length),
     "L",
     "split a [T, p] input into periods of L rows (the rest forms a last, "
     "shorter period)",
     1, 1e15, 0, 0, NULL, 0},
    {"--block-size", TCX_OPT_INT, offsetof(baseline_values, block_size), "NB",
     "rows and columns per block of the ScaLAPACK layout (default 64)", 1,
     65536, 0, 0, NULL, 0},
    {"--output", TCX_OPT_STRING, offsetof(baseline_values, output), "FILE",
     "dense model file to write", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void baseline_defaults(void *values)
{
  baseline_values *v = values;

  v->dataset = "/data";
  v->block_size = TCX_DENSE_BLOCK_SIZE;
}

/* Rejects missing values, which a dense estimate cannot use. Local. */
static int check_complete(tcx_ctx *ctx, const baseline_values *v,
                          const tcx_block *block)
{
  for (int64_t r = 0; r < block->n_rows; r++)
    for (int64_t j = 0; j < block->n_local; j++)
      if (isnan(block->data[r * block->n_local + j]))
        return tcx_error(ctx, TCX_ERR_INPUT,
                         "%s:%s has a missing value in row %lld, column "
                         "%lld (both from 0); the dense estimators need "
                         "complete data, so impute or drop it first",
                         v->input, v->dataset, (long long)r,
                         (long long)(block->col_begin + j));
  return TCX_OK;
}

/* Subtracts each period's column means in place and stores them in mean
 * ([nt, n_local]). Local. */
static void center_periods(tcx_block *block, double *mean)
{
  const int64_t n_local = block->n_local;

  for (int t = 0; t < block->n_periods; t++) {
    const int64_t first = block->period_begin[t];
    const int64_t n_rows = block->period_begin[t + 1] - first;
    double *rows = block->data + first * n_local;
    double *period_mean = mean + t * n_local;

    for (int64_t r = 0; r < n_rows; r++)
      for (int64_t j = 0; j < n_local; j++)
        period_mean[j] += rows[r * n_local + j] / (double)n_rows;
    for (int64_t r = 0; r < n_rows; r++)
      for (int64_t j = 0; j < n_local; j++)
        rows[r * n_local + j] -= period_mean[j];
  }
}

/* Sets a to diag(sample variances) of the centred rows. */
static int diagonal_estimate(tcx_ctx *ctx, int64_t n_rows, int64_t n_local,
                             const double *rows, tcx_dense *a)
{
  double *variance = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "variances", &variance));
  for (int64_t r = 0; r < n_rows; r++)
    for (int64_t j = 0; j < n_local; j++)
      variance[j] += rows[r * n_local + j] * rows[r * n_local + j] /
                     (double)n_rows;
  memset(a->local, 0,
         (size_t)(a->leading_dim * a->local_cols) * sizeof(double));
  TCX_TRY(tcx_dense_add_diagonal(ctx, n_local, variance, a));

cleanup:
  free(variance);
  return rc;
}

/* Computes the estimate of one period into a; *rho receives the shrinkage
 * intensity (0 for the sample covariance, NaN for the diagonal one). */
static int estimate_period(tcx_ctx *ctx, const char *method, int64_t n_rows,
                           int64_t n_local, const double *rows, tcx_dense *a,
                           double *rho)
{
  double mu = 0.0;
  int rc = TCX_OK;

  *rho = 0.0;
  if (strcmp(method, "diagonal") == 0) {
    *rho = NAN;
    return diagonal_estimate(ctx, n_rows, n_local, rows, a);
  }
  TCX_TRY(tcx_dense_sample_covariance(ctx, n_rows, n_local, rows, a));
  if (strcmp(method, "sample") == 0)
    return TCX_OK;
  TCX_TRY(tcx_dense_shrinkage(ctx,
                              strcmp(method, "oas") == 0
                                  ? TCX_SHRINKAGE_OAS
                                  : TCX_SHRINKAGE_LEDOIT_WOLF,
                              n_rows, n_local, rows, a, rho, &mu));
  tcx_dense_shrink(a, *rho, mu);

cleanup:
  return rc;
}

/* Writes every option and run fact as a root attribute. */
static int write_attributes(tcx_ctx *ctx, tcx_h5_output *out,
                            const baseline_values *v, const tcx_block *block)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "format", "tcorex-dense-model"));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "format_version", 1));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "method", v->method));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_periods", block->n_periods));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_vars", block->n_vars));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "input", v->input));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "dataset", v->dataset));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "periods", v->periods));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "period_length", v->period_length));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "block_size", v->block_size));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "ranks", tcx_ctx_size(ctx)));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "version", TCX_VERSION));

cleanup:
  return rc;
}

/* Estimates every period and writes /covariance slice by slice, then
 * /mean, /shrinkage and /samples. */
static int estimate_and_write(tcx_ctx *ctx, const baseline_values *v,
                              tcx_block *block, tcx_h5_output *out)
{
  const int nt = block->n_periods;
  const int64_t n_local = block->n_local;
  const int64_t mean_dims[2] = {nt, block->n_vars}, period_dims[1] = {nt};
  double *mean = NULL, *rho = NULL;
  int32_t *samples = NULL;
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, nt * n_local, sizeof(double), "period means",
                     &mean));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(double), "shrinkage", &rho));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int32_t), "sample counts", &samples));
  center_periods(block, mean);
  TCX_TRY(tcx_grid_create(ctx, v->block_size, &grid));
  TCX_TRY(tcx_dense_create(ctx, grid, block->n_vars, block->n_vars, &a));
  for (int t = 0; t < nt; t++) {
    const int64_t first = block->period_begin[t];
    const int64_t n_rows = block->period_begin[t + 1] - first;

    TCX_CHECK(n_rows <= INT32_MAX, ctx, TCX_ERR_UNSUPPORTED,
              "period %d of %s has %lld rows; split it into periods of at "
              "most %d rows",
              t, v->input, (long long)n_rows, INT32_MAX);
    samples[t] = (int32_t)n_rows;
    TCX_TRY(estimate_period(ctx, v->method, n_rows, n_local,
                            block->data + first * n_local, a, &rho[t]));
    TCX_TRY(tcx_h5_write_dense(ctx, out, "/covariance", nt, t, a));
    tcx_log(ctx, TCX_LOG_PROGRESS,
            "baseline: period %d: %lld samples, shrinkage %.6g", t,
            (long long)n_rows, rho[t]);
  }
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/mean", TCX_H5_DOUBLE, 2, mean_dims,
                               block->col_begin, n_local, mean));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/shrinkage", TCX_H5_DOUBLE, 1,
                                  period_dims, rho));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/samples", TCX_H5_INT32, 1,
                                  period_dims, samples));

cleanup:
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
  free(mean);
  free(rho);
  free(samples);
  return rc;
}

static int run_baseline(tcx_ctx *ctx, void *values)
{
  const baseline_values *v = values;
  const tcx_read_options read = {v->dataset, 0, 0.0};
  tcx_block *block = NULL;
  tcx_h5_output *out = NULL;
  double seconds = tcx_time();
  int rc = TCX_OK;

  TCX_CHECK(!(v->periods > 0 && v->period_length > 0), ctx, TCX_ERR_USAGE,
            "give at most one of --periods and --period-length");
  TCX_TRY(tcx_cli_check_distinct(ctx, "--input", v->input, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_input(ctx, "--input", v->input, "input file"));
  TCX_TRY(tcx_h5_read_block(ctx, v->input, &read, &block));
  if (v->periods > 0 || v->period_length > 0)
    TCX_TRY(tcx_ctx_agree(ctx, tcx_block_split_periods(ctx, block, v->periods,
                                                       v->period_length)));
  TCX_TRY(tcx_ctx_agree(ctx, check_complete(ctx, v, block)));
  TCX_TRY(tcx_h5_create(ctx, v->output, &out));
  TCX_TRY(estimate_and_write(ctx, v, block, out));
  TCX_TRY(write_attributes(ctx, out, v, block));
  TCX_TRY(tcx_h5_commit(ctx, &out));
  tcx_log(ctx, TCX_LOG_WARNING,
          "baseline: wrote %s estimates of %d period(s) of %lld variables to "
          "%s in %.2f s",
          v->method, block->n_periods, (long long)block->n_vars, v->output,
          tcx_time() - seconds);

cleanup:
  tcx_h5_discard(ctx, &out);
  tcx_block_destroy(&block);
  return rc;
}

const tcx_command tcx_command_baseline = {
    "baseline",
    "Estimate dense per-period covariances with a standard estimator.",
    "mpirun -n N tcorex baseline --method sample|ledoit-wolf|oas|diagonal "
    "--input D.h5 [--dataset NAME] [--periods NT | --period-length L] "
    "[--block-size NB] --output B.h5",
    baseline_options,
    run_baseline,
    sizeof(baseline_values),
    baseline_defaults,
    NULL,
    0,
};
