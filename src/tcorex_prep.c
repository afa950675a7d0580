/* T-CorEx windows and per-period priors. */
#include <math.h>
#include <stdlib.h>

#include "tcorex_internal.h"

int tcx_tcorex_window_half_length(int n_periods, const int64_t *period_begin,
                                  int64_t max_samples, int t)
{
  for (int k = 0; k <= n_periods; k++) {
    const int first = t - k > 0 ? t - k : 0;
    const int last = t + k < n_periods - 1 ? t + k : n_periods - 1;

    if (period_begin[last + 1] - period_begin[first] >= max_samples)
      return k;
  }
  return n_periods + 1;
}

/* Computes the prior of period t: weighted mean and standard deviation of
 * every column over the observed entries of t's full window. */
static int period_prior(tcx_ctx *ctx, const tcx_tcorex_options *options,
                        const tcx_block *block, int t, double *mean,
                        double *std, double *weight_sum)
{
  const int64_t nl = block->n_local;
  const int nt = block->n_periods;
  const int half = tcx_tcorex_window_half_length(
      nt, block->period_begin, options->max_samples, t);
  const int first = t - half > 0 ? t - half : 0;
  const int last = t + half < nt - 1 ? t + half : nt - 1;
  int rc = TCX_OK;

  for (int64_t i = 0; i < nl; i++) {
    mean[i] = 0.0;
    std[i] = 0.0;
    weight_sum[i] = 0.0;
  }
  for (int s = first; s <= last; s++) {
    const double w = pow(options->gamma, abs(s - t));

    for (int64_t row = block->period_begin[s]; row < block->period_begin[s + 1];
         row++) {
      const double *x = block->data + row * nl;

      for (int64_t i = 0; i < nl; i++) {
        if (!isnan(x[i])) {
          mean[i] += w * x[i];
          weight_sum[i] += w;
        }
      }
    }
  }
  for (int64_t i = 0; i < nl; i++) {
    TCX_CHECK(weight_sum[i] > 0.0, ctx, TCX_ERR_INPUT,
              "variable %lld has no observed value in periods %d..%d, the "
              "window of period %d; remove the variable or fill it in",
              (long long)(block->col_begin + i), first, last, t);
    mean[i] /= weight_sum[i];
  }

  /* Second pass for the variance, around the final mean. */
  for (int s = first; s <= last; s++) {
    const double w = pow(options->gamma, abs(s - t));

    for (int64_t row = block->period_begin[s]; row < block->period_begin[s + 1];
         row++) {
      const double *x = block->data + row * nl;

      for (int64_t i = 0; i < nl; i++) {
        if (!isnan(x[i]))
          std[i] += w * (x[i] - mean[i]) * (x[i] - mean[i]);
      }
    }
  }
  for (int64_t i = 0; i < nl; i++)
    std[i] = fmax(sqrt(std[i] / weight_sum[i]), 1e-10);

cleanup:
  return rc;
}

int tcx_tcorex_standardize(tcx_ctx *ctx, const tcx_tcorex_options *options,
                           const tcx_block *block, double *mean, double *std,
                           tcx_block **standardized)
{
  const int nt = block->n_periods;
  const int64_t nl = block->n_local;
  int64_t *period_rows = NULL;
  double *weight_sum = NULL;
  tcx_block *out = NULL;
  int rc = TCX_OK;

  *standardized = NULL;
  TCX_TRY(tcx_tcorex_check_options(ctx, options));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int64_t), "period sizes", &period_rows));
  for (int t = 0; t < nt; t++) {
    period_rows[t] = block->period_begin[t + 1] - block->period_begin[t];
    TCX_CHECK(period_rows[t] > 0, ctx, TCX_ERR_INPUT,
              "period %d has no rows; T-CorEx needs at least one sample in "
              "every period",
              t);
  }
  TCX_TRY(tcx_block_create(ctx, nt, period_rows, block->n_vars,
                           block->col_begin, nl, &out));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "prior weights", &weight_sum));

  for (int t = 0; t < nt; t++) {
    double *mean_t = mean + (int64_t)t * nl;
    double *std_t = std + (int64_t)t * nl;

    TCX_TRY(period_prior(ctx, options, block, t, mean_t, std_t, weight_sum));
    for (int64_t row = block->period_begin[t]; row < block->period_begin[t + 1];
         row++) {
      const double *x = block->data + row * nl;
      double *z = out->data + row * nl;

      /* A missing value takes the prior mean, so it standardises to 0. */
      for (int64_t i = 0; i < nl; i++)
        z[i] = isnan(x[i]) ? 0.0 : (x[i] - mean_t[i]) / std_t[i];
    }
  }
  *standardized = out;
  out = NULL;

cleanup:
  tcx_block_destroy(&out);
  free(period_rows);
  free(weight_sum);
  return rc;
}
