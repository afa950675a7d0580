/* Column preprocessing: mean imputation, standardisation and the outlier
 * transform. The loops run over rows with per-column accumulators, so the
 * row-major block is read in memory order. */
#include <math.h>
#include <stdlib.h>

#include "tcorex/prep.h"

/* Lower clip of the standard deviation. A column whose population standard
 * deviation is at or below it counts as constant. */
#define TCX_PREP_STD_MIN 1e-10

/* Values beyond this many standard deviations are squashed by the outlier
 * transform. */
#define TCX_PREP_OUTLIER_LIMIT 4.0

/* Rejects infinite values and columns without an observed value, stores the
 * mean of the observed entries of each column in mean and replaces missing
 * entries by it. */
static int tcx_prep_impute(tcx_ctx *ctx, int64_t n_rows, int64_t n_local,
                           int64_t col_begin, double *x, double *mean)
{
  int64_t *n_observed = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(*n_observed),
                     "observed-value counts", &n_observed));
  for (int64_t j = 0; j < n_local; j++)
    mean[j] = 0.0;
  for (int64_t row = 0; row < n_rows; row++) {
    const double *x_row = x + row * n_local;

    for (int64_t j = 0; j < n_local; j++) {
      TCX_CHECK(!isinf(x_row[j]), ctx, TCX_ERR_INPUT,
                "variable %lld (0-based input column) has an infinite value "
                "in row %lld; replace it by a finite value, or by NaN to "
                "mark it missing",
                (long long)(col_begin + j), (long long)row);
      if (!isnan(x_row[j])) {
        mean[j] += x_row[j];
        n_observed[j]++;
      }
    }
  }
  for (int64_t j = 0; j < n_local; j++) {
    TCX_CHECK(n_observed[j] > 0, ctx, TCX_ERR_INPUT,
              "variable %lld (0-based input column) has no observed value: "
              "all %lld rows are missing (NaN); remove the variable from the "
              "input or mask it out",
              (long long)(col_begin + j), (long long)n_rows);
    mean[j] /= (double)n_observed[j];
  }
  for (int64_t row = 0; row < n_rows; row++) {
    double *x_row = x + row * n_local;

    for (int64_t j = 0; j < n_local; j++)
      if (isnan(x_row[j]))
        x_row[j] = mean[j];
  }

cleanup:
  free(n_observed);
  return rc;
}

/* Stores the population standard deviation of each column about mean in std
 * (divisor n_rows, clipped below at TCX_PREP_STD_MIN) and returns the number
 * of clipped columns. */
static int64_t tcx_prep_column_std(int64_t n_rows, int64_t n_local,
                                   const double *x, const double *mean,
                                   double *std)
{
  int64_t n_constant = 0;

  for (int64_t j = 0; j < n_local; j++)
    std[j] = 0.0;
  for (int64_t row = 0; row < n_rows; row++) {
    const double *x_row = x + row * n_local;

    for (int64_t j = 0; j < n_local; j++) {
      const double centred = x_row[j] - mean[j];

      std[j] += centred * centred;
    }
  }
  for (int64_t j = 0; j < n_local; j++) {
    std[j] = sqrt(std[j] / (double)n_rows);
    if (std[j] <= TCX_PREP_STD_MIN) {
      std[j] = TCX_PREP_STD_MIN;
      n_constant++;
    }
  }
  return n_constant;
}

/* Squashes a standardised value: the part beyond +-TCX_PREP_OUTLIER_LIMIT is
 * replaced by its tanh, so outputs stay within the limit +- 1. */
static double tcx_prep_squash(double value)
{
  if (value > TCX_PREP_OUTLIER_LIMIT)
    return TCX_PREP_OUTLIER_LIMIT + tanh(value - TCX_PREP_OUTLIER_LIMIT);
  if (value < -TCX_PREP_OUTLIER_LIMIT)
    return -TCX_PREP_OUTLIER_LIMIT + tanh(value + TCX_PREP_OUTLIER_LIMIT);
  return value;
}

int tcx_prep_standardize(tcx_ctx *ctx, tcx_gaussianize mode, int64_t n_rows,
                         int64_t n_local, int64_t col_begin, double *x,
                         double *mean, double *std, int64_t *n_constant)
{
  int rc = TCX_OK;

  *n_constant = 0;
  TCX_CHECK(mode == TCX_GAUSSIANIZE_STANDARD ||
                mode == TCX_GAUSSIANIZE_OUTLIERS ||
                mode == TCX_GAUSSIANIZE_NONE,
            ctx, TCX_ERR_USAGE,
            "invalid preprocessing mode %d; use standard, outliers or none",
            (int)mode);
  TCX_CHECK(n_rows >= 1 && n_local >= 0, ctx, TCX_ERR_INPUT,
            "cannot preprocess a block of %lld rows and %lld columns; the "
            "input needs at least one sample",
            (long long)n_rows, (long long)n_local);

  TCX_TRY(tcx_prep_impute(ctx, n_rows, n_local, col_begin, x, mean));
  *n_constant = tcx_prep_column_std(n_rows, n_local, x, mean, std);
  if (mode == TCX_GAUSSIANIZE_NONE) {
    for (int64_t j = 0; j < n_local; j++) {
      mean[j] = 0.0;
      std[j] = 1.0;
    }
    goto cleanup;
  }

  for (int64_t row = 0; row < n_rows; row++) {
    double *x_row = x + row * n_local;

    for (int64_t j = 0; j < n_local; j++)
      x_row[j] = (x_row[j] - mean[j]) / std[j];
  }
  if (mode == TCX_GAUSSIANIZE_OUTLIERS)
    for (int64_t k = 0; k < n_rows * n_local; k++)
      x[k] = tcx_prep_squash(x[k]);

cleanup:
  return rc;
}
