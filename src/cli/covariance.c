/* tcorex covariance: writes the dense p x p covariance, correlation or
 * precision of one period of a model, built on a BLACS grid with PDGEMM
 * and written block by block with parallel HDF5. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/dense.h"
#include "tcorex/h5io.h"
#include "tcorex/lowrank.h"
#include "tcorex/model.h"

typedef struct covariance_values {
  const char *model;
  int64_t period;
  int correlation;
  int precision;
  int64_t block_size;
  const char *output;
} covariance_values;

static const tcx_option_spec covariance_options[] = {
    {"--model", TCX_OPT_STRING, offsetof(covariance_values, model), "FILE",
     "model file written by 'tcorex fit'", 0, 0, 0, 0, NULL, 1},
    {"--period", TCX_OPT_INT, offsetof(covariance_values, period), "T",
     "period of the model, 0-based (default 0)", 0, 1e9, 0, 0, NULL, 0},
    {"--correlation", TCX_OPT_FLAG, offsetof(covariance_values, correlation),
     NULL, "write the correlation matrix F^T F with unit diagonal instead",
     0, 0, 0, 0, NULL, 0},
    {"--precision", TCX_OPT_FLAG, offsetof(covariance_values, precision),
     NULL, "write the inverse covariance instead", 0, 0, 0, 0, NULL, 0},
    {"--block-size", TCX_OPT_INT, offsetof(covariance_values, block_size),
     "NB", "rows and columns per block of the ScaLAPACK layout (default 64)",
     1, 65536, 0, 0, NULL, 0},
    {"--output", TCX_OPT_STRING, offsetof(covariance_values, output), "FILE",
     "HDF5 file to write", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void covariance_defaults(void *values)
{
  covariance_values *v = values;

  v->block_size = TCX_DENSE_BLOCK_SIZE;
}

static int check_request(tcx_ctx *ctx, const covariance_values *v)
{
  char format[64] = "";
  int rc = TCX_OK;

  TCX_CHECK(!(v->correlation && v->precision), ctx, TCX_ERR_USAGE,
            "give at most one of --correlation and --precision");
  TCX_TRY(tcx_cli_check_distinct(ctx, "--model", v->model, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_input(ctx, "--model", v->model, "model file"));
  rc = tcx_h5_read_attr_string(ctx, v->model, "format", format,
                               sizeof(format));
  TCX_CHECK(rc == TCX_OK && strcmp(format, "tcorex-model") == 0, ctx,
            TCX_ERR_INPUT,
            "model file %s is not a model written by 'tcorex fit' (no root "
            "attribute format = \"tcorex-model\"); pass the --output of a fit",
            v->model);

cleanup:
  return rc;
}

/* Builds L and d of the requested matrix for one period, in this rank's
 * columns: the covariance factors, the correlation factors (unit standard
 * deviations) or the precision factors (V, e) with sign -1. */
static int period_factors(tcx_ctx *ctx, const covariance_values *v,
                          const tcx_model *model, double *l, double *d,
                          double *sign)
{
  const int64_t m = model->n_factors, n_local = model->n_local;
  const double *factors = model->factors + v->period * m * n_local;
  double *ones = NULL, *cov_l = NULL, *cov_d = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "unit scales", &ones));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "factors", &cov_l));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "diagonal", &cov_d));
  for (int64_t i = 0; i < n_local; i++)
    ones[i] = 1.0;
  rc = tcx_lowrank_from_factors(
      ctx, m, n_local, factors,
      v->correlation ? ones : model->std + v->period * n_local, cov_l, cov_d);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  *sign = 1.0;
  if (v->precision) {
    TCX_TRY(tcx_lowrank_precision(ctx, m, n_local, cov_l, cov_d, d, l));
    *sign = -1.0;
  } else {
    memcpy(l, cov_l, (size_t)(m * n_local) * sizeof(double));
    memcpy(d, cov_d, (size_t)n_local * sizeof(double));
  }

cleanup:
  free(ones);
  free(cov_l);
  free(cov_d);
  return rc;
}

/* Writes the matrix and the facts a reader needs to PATH atomically. */
static int write_matrix(tcx_ctx *ctx, const covariance_values *v,
                        const char *name, const char *kind,
                        const tcx_grid *grid, tcx_dense *a)
{
  tcx_h5_output *out = NULL;
  int n_prow, n_pcol, my_row, my_col;
  int rc = TCX_OK;

  tcx_grid_shape(grid, &n_prow, &n_pcol, &my_row, &my_col);
  TCX_TRY(tcx_h5_create(ctx, v->output, &out));
  TCX_TRY(tcx_h5_write_dense(ctx, out, name, 0, 0, a));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "format", "tcorex-matrix"));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "format_version", 1));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "kind", kind));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "model", v->model));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "period", v->period));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_vars", a->n_rows));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "block_size", a->block_size));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "grid_rows", n_prow));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "grid_cols", n_pcol));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "version", TCX_VERSION));
  TCX_TRY(tcx_h5_commit(ctx, &out));

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

static int run_covariance(tcx_ctx *ctx, void *values)
{
  const covariance_values *v = values;
  const char *kind = v->precision     ? "precision"
                     : v->correlation ? "correlation"
                                      : "covariance";
  char name[32];
  tcx_model *model = NULL;
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;
  double *l = NULL, *d = NULL, sign = 1.0, seconds = tcx_time();
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, check_request(ctx, v)));
  TCX_TRY(tcx_model_read(ctx, v->model, &model));
  TCX_CHECK(v->period < model->n_periods, ctx, TCX_ERR_USAGE,
            "invalid value for --period: %lld; the model %s has %d "
            "period(s), numbered from 0",
            (long long)v->period, v->model, model->n_periods);
  TCX_TRY(tcx_calloc(ctx, model->n_factors * model->n_local, sizeof(double),
                     "factors", &l));
  TCX_TRY(tcx_calloc(ctx, model->n_local, sizeof(double), "diagonal", &d));
  TCX_TRY(period_factors(ctx, v, model, l, d, &sign));

  TCX_TRY(tcx_grid_create(ctx, v->block_size, &grid));
  TCX_TRY(tcx_dense_create(ctx, grid, model->n_vars, model->n_vars, &a));
  TCX_TRY(tcx_dense_from_lowrank(ctx, model->n_factors, model->n_local, l, d,
                                 sign, a));
  snprintf(name, sizeof(name), "/%s", kind);
  TCX_TRY(write_matrix(ctx, v, name, kind, grid, a));
  tcx_log(ctx, TCX_LOG_WARNING,
          "covariance: wrote the %lld x %lld %s of period %lld to %s:%s in "
          "%.2f s",
          (long long)model->n_vars, (long long)model->n_vars, kind,
          (long long)v->period, v->output, name, tcx_time() - seconds);

cleanup:
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
  free(l);
  free(d);
  tcx_model_destroy(&model);
  return rc;
}

const tcx_command tcx_command_covariance = {
    "covariance",
    "Write the dense covariance, correlation or precision of a period.",
    "mpirun -n N tcorex covariance --model MODEL.h5 [--period T] "
    "[--correlation | --precision] [--block-size NB] --output COV.h5",
    covariance_options,
    run_covariance,
    sizeof(covariance_values),
    covariance_defaults,
    NULL,
    0,
};
