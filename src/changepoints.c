/* Change-point scores of a T-CorEx model: norms and row norms of the
 * difference of consecutive partial correlation, precision or correlation
 * matrices in low-rank plus diagonal form, and the robust detection rule.
 * The files are written in changepoints_output.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/changepoints.h"
#include "tcorex/lowrank.h"

/* A period's matrix as diag(e) - V^T V. A precision matrix has that form
 * (lowrank.h), and so has its scaled version. For a correlation C = diag(d)
 * + F^T F, e = d and V = F, and the minus sign is undone by swapping V
 * between the two periods of a pair (see diff_arguments()). */
typedef struct period_form {
  double *e; /* [n_local] */
  double *v; /* [m, n_local] */
} period_form;

const char *tcx_changepoints_matrices_name(int matrices)
{
  switch (matrices) {
  case TCX_CHANGEPOINTS_PARTIAL_CORRELATION:
    return "partial-correlation";
  case TCX_CHANGEPOINTS_PRECISION:
    return "precision";
  case TCX_CHANGEPOINTS_CORRELATION:
    return "correlation";
  default:
    return "unknown";
  }
}

void tcx_changepoints_options_default(tcx_changepoints_options *options)
{
  options->norm = TCX_CHANGEPOINTS_FROBENIUS;
  options->matrices = TCX_CHANGEPOINTS_PARTIAL_CORRELATION;
  options->threshold = TCX_CHANGEPOINTS_THRESHOLD;
  options->spectral_max_iter = TCX_LOWRANK_SPECTRAL_MAX_ITER;
  options->spectral_tolerance = TCX_LOWRANK_SPECTRAL_TOLERANCE;
}

static int check_options(tcx_ctx *ctx, const tcx_changepoints_options *o)
{
  if (o->norm != TCX_CHANGEPOINTS_FROBENIUS &&
      o->norm != TCX_CHANGEPOINTS_SPECTRAL)
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid change-point norm %d; use frobenius or "
                     "spectral",
                     o->norm);
  if (o->matrices != TCX_CHANGEPOINTS_PARTIAL_CORRELATION &&
      o->matrices != TCX_CHANGEPOINTS_PRECISION &&
      o->matrices != TCX_CHANGEPOINTS_CORRELATION)
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid change-point matrices %d; use "
                     "partial-correlation, precision or correlation",
                     o->matrices);
  if (!(o->threshold >= 0.0) || !isfinite(o->threshold))
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid change-point threshold K = %g; it must be a "
                     "finite number >= 0",
                     o->threshold);
  if (o->spectral_max_iter < 1 || !(o->spectral_tolerance > 0.0))
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid Lanczos settings: iteration limit %lld and "
                     "tolerance %g must both be positive",
                     (long long)o->spectral_max_iter, o->spectral_tolerance);
  return TCX_OK;
}

static void period_form_free(period_form *form)
{
  free(form->e);
  free(form->v);
  form->e = form->v = NULL;
}

static int period_form_alloc(tcx_ctx *ctx, int64_t m, int64_t n_local,
                             period_form *form)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "period diagonal",
                     &form->e));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "period factors",
                     &form->v));

cleanup:
  return rc;
}

/* Scales diag(e) - V^T V to unit diagonal: with s_i = e_i - ||v_i||^2,
 * e_i <- e_i / s_i and column i of V is divided by sqrt(s_i). diagonal is
 * n_local doubles of work space. Local. */
static int scale_to_unit_diagonal(tcx_ctx *ctx, int64_t m, int64_t n_local,
                                  double *diagonal, period_form *form)
{
  memcpy(diagonal, form->e, (size_t)n_local * sizeof(double));
  for (int64_t j = 0; j < m; j++) {
    const double *row = form->v + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      diagonal[i] -= row[i] * row[i];
  }
  for (int64_t i = 0; i < n_local; i++) {
    if (!(diagonal[i] > 0.0) || !isfinite(diagonal[i]))
      return tcx_error(ctx, TCX_ERR_NUMERIC,
                       "precision diagonal %g of local column %lld is not "
                       "positive, so the precision cannot be scaled to unit "
                       "diagonal; the model is degenerate for this variable",
                       diagonal[i], (long long)i);
    form->e[i] /= diagonal[i];
    diagonal[i] = 1.0 / sqrt(diagonal[i]);
  }
  for (int64_t j = 0; j < m; j++) {
    double *row = form->v + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      row[i] *= diagonal[i];
  }
  return TCX_OK;
}

/* Builds the form of one period from its factors F [m, n_local]. l is
 * [m, n_local] work space. Collective. */
static int period_form_build(tcx_ctx *ctx, int matrices, int64_t m,
                             int64_t n_local, const double *factors,
                             const double *ones, double *l,
                             period_form *form)
{
  double *d = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, tcx_lowrank_from_factors(ctx, m, n_local,
                                                       factors, ones, l,
                                                       form->e)));
  if (matrices == TCX_CHANGEPOINTS_CORRELATION) {
    memcpy(form->v, l, (size_t)(m * n_local) * sizeof(double));
    goto cleanup;
  }

  /* tcx_lowrank_precision() reads d while it writes e. */
  TCX_TRY(tcx_ctx_agree(ctx, tcx_calloc(ctx, n_local, sizeof(double),
                                        "noise variances", &d)));
  memcpy(d, form->e, (size_t)n_local * sizeof(double));
  TCX_TRY(tcx_lowrank_precision(ctx, m, n_local, l, d, form->e, form->v));
  /* l is free again once the precision factors exist. */
  if (matrices == TCX_CHANGEPOINTS_PARTIAL_CORRELATION)
    TCX_TRY(tcx_ctx_agree(ctx,
                          scale_to_unit_diagonal(ctx, m, n_local, l, form)));

cleanup:
  free(d);
  return rc;
}

/* Orders the arguments of the lowrank difference functions so that they
 * compute the difference of the two periods' matrices. (Scaled) precisions
 * go in as (e1, V1, e2, V2) and correlations as (d1, F2, d2, F1). */
static void diff_arguments(int matrices, const period_form *first,
                           const period_form *second, const double **v1,
                           const double **v2)
{
  const int swap = matrices == TCX_CHANGEPOINTS_CORRELATION;

  *v1 = swap ? second->v : first->v;
  *v2 = swap ? first->v : second->v;
}

int tcx_changepoints_pair_row_norms(tcx_ctx *ctx,
                                    const tcx_changepoints_options *options,
                                    int64_t m, int64_t n_local,
                                    const double *factors1,
                                    const double *factors2, double *row_norms)
{
  period_form first = {0}, second = {0};
  double *ones = NULL, *l = NULL;
  const double *v1, *v2;
  int status;
  int rc = TCX_OK;

  status = period_form_alloc(ctx, m, n_local, &first);
  if (status == TCX_OK)
    status = period_form_alloc(ctx, m, n_local, &second);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, n_local, sizeof(double), "unit scales", &ones);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, m * n_local, sizeof(double), "factor work",
                        &l);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  for (int64_t i = 0; i < n_local; i++)
    ones[i] = 1.0;

  TCX_TRY(period_form_build(ctx, options->matrices, m, n_local, factors1, ones,
                            l, &first));
  TCX_TRY(period_form_build(ctx, options->matrices, m, n_local, factors2, ones,
                            l, &second));
  diff_arguments(options->matrices, &first, &second, &v1, &v2);
  TCX_TRY(tcx_lowrank_diff_row_norms(ctx, n_local, m, first.e, v1, m,
                                     second.e, v2, row_norms));

cleanup:
  free(l);
  free(ones);
  period_form_free(&second);
  period_form_free(&first);
  return rc;
}

static int compare_doubles(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* Median of count values, sorting the array in place. */
static double median_in_place(int64_t count, double *values)
{
  qsort(values, (size_t)count, sizeof(double), compare_doubles);
  if (count % 2 == 1)
    return values[count / 2];
  return 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

int tcx_changepoints_detect(tcx_ctx *ctx, int64_t count, const double *scores,
                            double threshold, int32_t *changes,
                            double *median, double *mad, double *cutoff)
{
  double *sorted = NULL;
  double center, spread, limit;
  int rc = TCX_OK;

  TCX_CHECK(count >= 1, ctx, TCX_ERR_USAGE,
            "cannot detect change points in %lld scores; a model needs at "
            "least 2 periods",
            (long long)count);
  TCX_CHECK(threshold >= 0.0 && isfinite(threshold), ctx, TCX_ERR_USAGE,
            "invalid change-point threshold K = %g; it must be a finite "
            "number >= 0",
            threshold);
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "sorted scores", &sorted));
  for (int64_t k = 0; k < count; k++) {
    TCX_CHECK(isfinite(scores[k]), ctx, TCX_ERR_NUMERIC,
              "change score %lld is %g; the model's factors are invalid",
              (long long)k, scores[k]);
    sorted[k] = scores[k];
  }
  center = median_in_place(count, sorted);
  for (int64_t k = 0; k < count; k++)
    sorted[k] = fabs(scores[k] - center);
  spread = median_in_place(count, sorted);
  limit = center + threshold * TCX_CHANGEPOINTS_MAD_SCALE * spread;
  for (int64_t k = 0; k < count; k++)
    changes[k] = scores[k] > limit ? 1 : 0;
  if (median)
    *median = center;
  if (mad)
    *mad = spread;
  if (cutoff)
    *cutoff = limit;

cleanup:
  free(sorted);
  return rc;
}

static int result_alloc(tcx_ctx *ctx, int n_pairs, int64_t n_local,
                        tcx_changepoints_result *result)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n_pairs, sizeof(double), "change scores",
                     &result->scores));
  TCX_TRY(tcx_calloc(ctx, n_pairs * n_local, sizeof(double),
                     "change row norms", &result->row_norms));
  TCX_TRY(tcx_calloc(ctx, n_pairs, sizeof(int32_t), "change flags",
                     &result->changes));

cleanup:
  return rc;
}

/* Scores one pair into result->scores[k] and its row norms. The squared
 * row norms sum to the squared Frobenius norm, so that norm costs one
 * scalar reduction more. Collective. */
static int score_pair(tcx_ctx *ctx, tcx_changepoints_result *result, int k,
                      const period_form *first, const period_form *second)
{
  const tcx_changepoints_options *o = &result->options;
  const int64_t m = result->n_factors, n_local = result->n_local;
  double *rows = result->row_norms + k * n_local;
  const double *v1, *v2;
  int rc = TCX_OK;

  diff_arguments(o->matrices, first, second, &v1, &v2);
  TCX_TRY(tcx_lowrank_diff_row_norms(ctx, n_local, m, first->e, v1, m,
                                     second->e, v2, rows));
  if (o->norm == TCX_CHANGEPOINTS_SPECTRAL) {
    int64_t steps = 0;

    TCX_TRY(tcx_lowrank_diff_spectral(
        ctx, n_local, result->col_begin, m, first->e, v1, m, second->e, v2,
        o->spectral_max_iter, o->spectral_tolerance, &result->scores[k],
        &steps));
    if (steps > result->max_lanczos_steps)
      result->max_lanczos_steps = steps;
  } else {
    double sum = 0.0;

    for (int64_t i = 0; i < n_local; i++)
      sum += rows[i] * rows[i];
    TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE,
                                   MPI_SUM, tcx_ctx_comm(ctx)));
    result->scores[k] = sqrt(sum);
  }

cleanup:
  return rc;
}

int tcx_changepoints_compute(tcx_ctx *ctx,
                             const tcx_changepoints_options *options,
                             int n_periods, int64_t m, int64_t n_vars,
                             int64_t col_begin, int64_t n_local,
                             const double *factors,
                             tcx_changepoints_result *result)
{
  period_form forms[2] = {{0}, {0}};
  double *ones = NULL, *l = NULL;
  int status;
  int rc = TCX_OK;

  memset(result, 0, sizeof(*result));
  status = check_options(ctx, options);
  if (status == TCX_OK && n_periods < 2)
    status = tcx_error(ctx, TCX_ERR_USAGE,
                       "the model has %d period(s); change points need a "
                       "T-CorEx model with at least 2 periods",
                       n_periods);
  if (status == TCX_OK)
    status = result_alloc(ctx, n_periods - 1, n_local, result);
  if (status == TCX_OK)
    status = period_form_alloc(ctx, m, n_local, &forms[0]);
  if (status == TCX_OK)
    status = period_form_alloc(ctx, m, n_local, &forms[1]);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, n_local, sizeof(double), "unit scales", &ones);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, m * n_local, sizeof(double), "factor work",
                        &l);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  result->n_pairs = n_periods - 1;
  result->n_vars = n_vars;
  result->n_factors = m;
  result->col_begin = col_begin;
  result->n_local = n_local;
  result->options = *options;
  for (int64_t i = 0; i < n_local; i++)
    ones[i] = 1.0;

  /* forms[t % 2] contains period t; each period is factorised once. */
  TCX_TRY(period_form_build(ctx, options->matrices, m, n_local, factors, ones,
                            l, &forms[0]));
  for (int t = 0; t + 1 < n_periods; t++) {
    period_form *first = &forms[t % 2], *second = &forms[(t + 1) % 2];

    TCX_TRY(period_form_build(ctx, options->matrices, m, n_local,
                              factors + (int64_t)(t + 1) * m * n_local, ones,
                              l, second));
    TCX_TRY(score_pair(ctx, result, t, first, second));
  }
  TCX_TRY(tcx_changepoints_detect(ctx, result->n_pairs, result->scores,
                                  options->threshold, result->changes,
                                  &result->median, &result->mad,
                                  &result->cutoff));

cleanup:
  free(l);
  free(ones);
  period_form_free(&forms[1]);
  period_form_free(&forms[0]);
  if (rc != TCX_OK)
    tcx_changepoints_result_free(result);
  return rc;
}

void tcx_changepoints_result_free(tcx_changepoints_result *result)
{
  free(result->scores);
  free(result->row_norms);
  free(result->changes);
  memset(result, 0, sizeof(*result));
}
