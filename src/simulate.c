/* Modular latent factor simulator. Every random number is a counter-based
 * draw keyed by (seed, stream, index), where the stream names what is drawn
 * and the index is a global column or factor number, so that any rank can
 * generate any columns on its own. docs/SIMULATE.md gives the model. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "tcorex/rng.h"
#include "tcorex/simulate.h"

/* Purpose of a random stream. It fills the top 8 bits of the stream number,
 * the segment or part the next 8 bits and the row the low 48 bits. */
enum stream_purpose {
  STREAM_SCALE = 1,  /* standard deviation of a variable */
  STREAM_SNR = 2,    /* signal-to-noise ratio of a variable */
  STREAM_SIGN = 3,   /* sign of a loading */
  STREAM_FACTOR = 4, /* factor of a variable (random assignment) */
  STREAM_LATENT = 5, /* factor values z of one row */
  STREAM_NOISE = 6   /* noise of one row */
};

/* Rows per part are limited by the 48 bits of the stream number that hold
 * the row. */
#define MAX_ROWS_PER_PART (INT64_C(1) << 48)

void tcx_simulate_options_default(tcx_simulate_options *opts)
{
  opts->n_vars = 128;
  opts->n_factors = 8;
  opts->n_periods = 10;
  opts->train_rows = 16;
  opts->test_rows = 1000;
  opts->validation_rows = 0;
  opts->change = TCX_SIMULATE_CHANGE_SUDDEN;
  opts->assignment = TCX_SIMULATE_ASSIGN_RANDOM;
  opts->seed = 42;
  opts->snr_min = 0.0;
  opts->snr_max = 5.0;
  opts->scale_min = 0.25;
  opts->scale_max = 4.0;
}

static int check_counts(tcx_ctx *ctx, const tcx_simulate_options *opts)
{
  int rc = TCX_OK;

  TCX_CHECK(opts->n_vars >= 1, ctx, TCX_ERR_USAGE,
            "invalid simulation option n_vars = %lld: at least one variable "
            "is needed",
            (long long)opts->n_vars);
  TCX_CHECK(opts->n_factors >= 1 && opts->n_factors <= INT32_MAX, ctx,
            TCX_ERR_USAGE,
            "invalid simulation option n_factors = %lld: it must be between "
            "1 and %d",
            (long long)opts->n_factors, (int)INT32_MAX);
  TCX_CHECK(opts->n_periods >= 1, ctx, TCX_ERR_USAGE,
            "invalid simulation option n_periods = %d: at least one period "
            "is needed",
            opts->n_periods);
  TCX_CHECK(opts->train_rows >= 0 && opts->test_rows >= 0 &&
                opts->validation_rows >= 0,
            ctx, TCX_ERR_USAGE,
            "invalid simulation rows per period: train_rows = %lld, "
            "test_rows = %lld, validation_rows = %lld; all must be >= 0",
            (long long)opts->train_rows, (long long)opts->test_rows,
            (long long)opts->validation_rows);
  TCX_CHECK(opts->train_rows <= MAX_ROWS_PER_PART / opts->n_periods &&
                opts->test_rows <= MAX_ROWS_PER_PART / opts->n_periods &&
                opts->validation_rows <= MAX_ROWS_PER_PART / opts->n_periods,
            ctx, TCX_ERR_USAGE,
            "too many simulated rows: %d periods of %lld training, %lld "
            "test and %lld validation rows; each part is limited to 2^48 "
            "rows",
            opts->n_periods, (long long)opts->train_rows,
            (long long)opts->test_rows, (long long)opts->validation_rows);

cleanup:
  return rc;
}

static int check_model(tcx_ctx *ctx, const tcx_simulate_options *opts)
{
  int rc = TCX_OK;

  TCX_CHECK(opts->change == TCX_SIMULATE_CHANGE_NONE ||
                opts->change == TCX_SIMULATE_CHANGE_SUDDEN,
            ctx, TCX_ERR_USAGE,
            "invalid simulation option change = %d: use "
            "TCX_SIMULATE_CHANGE_NONE or TCX_SIMULATE_CHANGE_SUDDEN",
            opts->change);
  TCX_CHECK(opts->change != TCX_SIMULATE_CHANGE_SUDDEN ||
                opts->n_periods >= 2,
            ctx, TCX_ERR_USAGE,
            "invalid simulation options: a sudden change needs at least 2 "
            "periods, but n_periods = %d",
            opts->n_periods);
  TCX_CHECK(opts->assignment == TCX_SIMULATE_ASSIGN_RANDOM ||
                opts->assignment == TCX_SIMULATE_ASSIGN_BLOCKS,
            ctx, TCX_ERR_USAGE,
            "invalid simulation option assignment = %d: use "
            "TCX_SIMULATE_ASSIGN_RANDOM or TCX_SIMULATE_ASSIGN_BLOCKS",
            opts->assignment);
  TCX_CHECK(opts->assignment != TCX_SIMULATE_ASSIGN_BLOCKS ||
                opts->n_vars >= opts->n_factors,
            ctx, TCX_ERR_USAGE,
            "invalid simulation options: block assignment needs n_vars >= "
            "n_factors, but n_vars = %lld and n_factors = %lld",
            (long long)opts->n_vars, (long long)opts->n_factors);
  TCX_CHECK(isfinite(opts->snr_min) && isfinite(opts->snr_max) &&
                opts->snr_min >= 0.0 && opts->snr_max >= opts->snr_min,
            ctx, TCX_ERR_USAGE,
            "invalid simulation signal-to-noise range [%g, %g]: it needs "
            "0 <= snr_min <= snr_max < infinity",
            opts->snr_min, opts->snr_max);
  TCX_CHECK(isfinite(opts->scale_min) && isfinite(opts->scale_max) &&
                opts->scale_min > 0.0 && opts->scale_max >= opts->scale_min,
            ctx, TCX_ERR_USAGE,
            "invalid simulation scale range [%g, %g]: it needs "
            "0 < scale_min <= scale_max < infinity",
            opts->scale_min, opts->scale_max);

cleanup:
  return rc;
}

int tcx_simulate_validate(tcx_ctx *ctx, const tcx_simulate_options *opts)
{
  int rc = TCX_OK;

  TCX_TRY(check_counts(ctx, opts));
  TCX_TRY(check_model(ctx, opts));

cleanup:
  return rc;
}

static int check_columns(tcx_ctx *ctx, const tcx_simulate_options *opts,
                         int64_t col_begin, int64_t n_local)
{
  int rc = TCX_OK;

  TCX_CHECK(col_begin >= 0 && n_local >= 1 &&
                n_local <= opts->n_vars - col_begin,
            ctx, TCX_ERR_USAGE,
            "invalid simulated column range: %lld columns from column %lld "
            "of %lld variables",
            (long long)n_local, (long long)col_begin,
            (long long)opts->n_vars);

cleanup:
  return rc;
}

/* Returns 0 for periods of the first model, 1 for those after a sudden
 * change (period >= nt / 2). */
static int segment_of(const tcx_simulate_options *opts, int period)
{
  if (opts->change == TCX_SIMULATE_CHANGE_SUDDEN &&
      period >= opts->n_periods / 2)
    return 1;
  return 0;
}

static uint64_t parameter_stream(enum stream_purpose purpose, int segment)
{
  return ((uint64_t)purpose << 56) | ((uint64_t)segment << 48);
}

static uint64_t row_stream(enum stream_purpose purpose, int part, int64_t row)
{
  return ((uint64_t)purpose << 56) | ((uint64_t)part << 48) | (uint64_t)row;
}

/* Returns the factor of column in m contiguous blocks of near-equal size,
 * the first p % m of them one column longer. */
static int32_t block_factor(int64_t n_vars, int64_t n_factors, int64_t column)
{
  const int64_t base = n_vars / n_factors;
  const int64_t extra = n_vars % n_factors;
  const int64_t long_blocks_end = extra * (base + 1);

  if (column < long_blocks_end)
    return (int32_t)(column / (base + 1));
  return (int32_t)(extra + (column - long_blocks_end) / base);
}

/* Draws the parameters of one variable in one segment:
 * scale ~ U[scale_min, scale_max], snr ~ U[snr_min, snr_max], a fair sign,
 * loading = sign scale sqrt(snr / (1 + snr)), noise_var = scale^2 / (1 +
 * snr), so that loading^2 + noise_var = scale^2. */
static void draw_variable(const tcx_simulate_options *opts, int segment,
                          int64_t column, double *loading, double *noise_var,
                          int32_t *factor)
{
  const uint64_t index = (uint64_t)column;
  const double scale =
      opts->scale_min +
      (opts->scale_max - opts->scale_min) *
          tcx_rng_uniform(opts->seed, parameter_stream(STREAM_SCALE, segment),
                          index);
  const double snr =
      opts->snr_min +
      (opts->snr_max - opts->snr_min) *
          tcx_rng_uniform(opts->seed, parameter_stream(STREAM_SNR, segment),
                          index);
  const double sign =
      tcx_rng_uniform(opts->seed, parameter_stream(STREAM_SIGN, segment),
                      index) < 0.5
          ? -1.0
          : 1.0;

  *loading = sign * scale * sqrt(snr / (1.0 + snr));
  *noise_var = scale * scale / (1.0 + snr);
  if (opts->assignment == TCX_SIMULATE_ASSIGN_BLOCKS) {
    *factor = block_factor(opts->n_vars, opts->n_factors, column);
  } else {
    const double u = tcx_rng_uniform(
        opts->seed, parameter_stream(STREAM_FACTOR, segment), index);
    const int64_t drawn = (int64_t)(u * (double)opts->n_factors);

    /* u < 1, but u * m can round up to m for large m. */
    *factor = (int32_t)(drawn < opts->n_factors ? drawn : opts->n_factors - 1);
  }
}

int tcx_simulate_truth(tcx_ctx *ctx, const tcx_simulate_options *opts,
                       int period, int64_t col_begin, int64_t n_local,
                       double *loading, double *noise_var, int32_t *factor)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_simulate_validate(ctx, opts));
  TCX_CHECK(period >= 0 && period < opts->n_periods, ctx, TCX_ERR_USAGE,
            "invalid simulated period %d: periods are 0 .. %d", period,
            opts->n_periods - 1);
  TCX_TRY(check_columns(ctx, opts, col_begin, n_local));
  for (int64_t i = 0; i < n_local; i++)
    draw_variable(opts, segment_of(opts, period), col_begin + i,
                  &loading[i], &noise_var[i], &factor[i]);

cleanup:
  return rc;
}

/* Parameters of the local columns for each segment, [segment][n_local]. */
typedef struct column_models {
  double *loading;
  double *noise_sd;
  int32_t *factor;
} column_models;

static int column_models_create(tcx_ctx *ctx, const tcx_simulate_options *opts,
                                int64_t col_begin, int64_t n_local,
                                column_models *models)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, 2 * n_local, sizeof(double), "simulated loadings",
                     &models->loading));
  TCX_TRY(tcx_calloc(ctx, 2 * n_local, sizeof(double),
                     "simulated noise deviations", &models->noise_sd));
  TCX_TRY(tcx_calloc(ctx, 2 * n_local, sizeof(int32_t), "simulated factors",
                     &models->factor));
  for (int segment = 0; segment <= segment_of(opts, opts->n_periods - 1);
       segment++) {
    for (int64_t i = 0; i < n_local; i++) {
      const int64_t k = segment * n_local + i;
      double noise_var;

      draw_variable(opts, segment, col_begin + i, &models->loading[k],
                    &noise_var, &models->factor[k]);
      models->noise_sd[k] = sqrt(noise_var);
    }
  }

cleanup:
  return rc;
}

static void column_models_free(column_models *models)
{
  free(models->loading);
  free(models->noise_sd);
  free(models->factor);
}

/* Fills the rows of one period: x = loading z[factor] + noise_sd eps, with z
 * keyed by (part, global row, factor) and eps by (part, global row, global
 * column). */
static void fill_period(const tcx_simulate_options *opts, int part,
                        int period, const column_models *models,
                        tcx_block *block, double *z)
{
  const int64_t n_local = block->n_local;
  const int64_t offset = segment_of(opts, period) * n_local;
  const double *loading = models->loading + offset;
  const double *noise_sd = models->noise_sd + offset;
  const int32_t *factor = models->factor + offset;

  for (int64_t row = block->period_begin[period];
       row < block->period_begin[period + 1]; row++) {
    const uint64_t latent = row_stream(STREAM_LATENT, part, row);
    const uint64_t noise = row_stream(STREAM_NOISE, part, row);
    double *x = block->data + row * n_local;

    for (int64_t j = 0; j < opts->n_factors; j++)
      z[j] = tcx_rng_normal(opts->seed, latent, (uint64_t)j);
    for (int64_t i = 0; i < n_local; i++)
      x[i] = loading[i] * z[factor[i]] +
             noise_sd[i] * tcx_rng_normal(opts->seed, noise,
                                          (uint64_t)(block->col_begin + i));
  }
}

int tcx_simulate_block(tcx_ctx *ctx, const tcx_simulate_options *opts,
                       int part, int64_t col_begin, int64_t n_local,
                       tcx_block **block)
{
  column_models models = {NULL, NULL, NULL};
  int64_t *period_rows = NULL;
  double *z = NULL;
  tcx_block *b = NULL;
  int rc = TCX_OK;

  *block = NULL;
  TCX_TRY(tcx_simulate_validate(ctx, opts));
  TCX_CHECK(part == TCX_SIMULATE_TRAIN || part == TCX_SIMULATE_TEST ||
                part == TCX_SIMULATE_VALIDATION,
            ctx, TCX_ERR_USAGE,
            "invalid simulated part %d: use TCX_SIMULATE_TRAIN, "
            "TCX_SIMULATE_TEST or TCX_SIMULATE_VALIDATION",
            part);
  TCX_TRY(check_columns(ctx, opts, col_begin, n_local));

  TCX_TRY(tcx_calloc(ctx, opts->n_periods, sizeof(int64_t),
                     "simulated period lengths", &period_rows));
  for (int t = 0; t < opts->n_periods; t++)
    period_rows[t] = part == TCX_SIMULATE_TRAIN  ? opts->train_rows
                     : part == TCX_SIMULATE_TEST ? opts->test_rows
                                                 : opts->validation_rows;
  TCX_TRY(tcx_block_create(ctx, opts->n_periods, period_rows, opts->n_vars,
                           col_begin, n_local, &b));
  TCX_TRY(column_models_create(ctx, opts, col_begin, n_local, &models));
  TCX_TRY(tcx_calloc(ctx, opts->n_factors, sizeof(double),
                     "simulated factor values", &z));
  for (int t = 0; t < opts->n_periods; t++)
    fill_period(opts, part, t, &models, b, z);
  *block = b;
  b = NULL;

cleanup:
  free(z);
  column_models_free(&models);
  tcx_block_destroy(&b);
  free(period_rows);
  return rc;
}
