/* Early stopping of the T-CorEx optimiser on held-out rows. Every few steps
 * the model at the current weights scores them and the weights with the
 * lowest NLL are kept. The fit stops once the NLL has not improved for a
 * given number of checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/lowrank.h"
#include "tcorex_internal.h"

/* Compares the shape of the held-out rows with the data's. Local. */
static int check_shape(tcx_ctx *ctx, const tcx_block *rows,
                       const tcx_block *block)
{
  int rc = TCX_OK;

  TCX_CHECK(rows->n_periods == block->n_periods, ctx, TCX_ERR_USAGE,
            "the validation rows have %d periods but the data have %d; split "
            "both into the same periods",
            rows->n_periods, block->n_periods);
  TCX_CHECK(rows->n_vars == block->n_vars, ctx, TCX_ERR_USAGE,
            "the validation rows have %lld variables but the data have "
            "%lld; use rows of the same variables",
            (long long)rows->n_vars, (long long)block->n_vars);
  TCX_CHECK(rows->col_begin == block->col_begin &&
                rows->n_local == block->n_local,
            ctx, TCX_ERR_USAGE,
            "the validation rows hold columns %lld..%lld on this rank but "
            "the data hold %lld..%lld; read both with the same column "
            "split",
            (long long)rows->col_begin,
            (long long)(rows->col_begin + rows->n_local - 1),
            (long long)block->col_begin,
            (long long)(block->col_begin + block->n_local - 1));
  for (int t = 0; t < rows->n_periods; t++)
    TCX_CHECK(rows->period_begin[t + 1] > rows->period_begin[t], ctx,
              TCX_ERR_USAGE,
              "validation period %d has no rows; every period needs at "
              "least one held-out row",
              t);

cleanup:
  return rc;
}

int tcx_tcorex_validation_create(tcx_ctx *ctx,
                                 const tcx_tcorex_options *options,
                                 const tcx_block *block,
                                 const tcx_tcorex_result *result,
                                 tcx_tcorex_validation **validation)
{
  const tcx_block *rows = options->validation;
  const int64_t m = options->n_factors, nl = block->n_local;
  tcx_tcorex_validation *v = NULL;
  int rc;

  *validation = NULL;
  rc = check_shape(ctx, rows, block);
  if (rc == TCX_OK) {
    v = calloc(1, sizeof(*v));
    if (!v)
      rc = tcx_error(ctx, TCX_ERR_MEMORY,
                     "cannot allocate the validation state");
  }
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, rows->n_rows * nl, sizeof(double),
                    "centred validation rows", &v->centered);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, m * nl, sizeof(double), "validation factor",
                    &v->l);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, nl, sizeof(double), "validation diagonal", &v->d);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, (int64_t)block->n_periods * m * nl, sizeof(double),
                    "best validation weights", &v->best_weights);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK) {
    tcx_tcorex_validation_destroy(&v);
    return rc;
  }

  v->every = options->validation_every;
  v->patience = options->patience;
  v->nt = block->n_periods;
  v->m = m;
  v->n_local = nl;
  v->period_begin = rows->period_begin;
  /* Missing values become the period's mean, as in tcorex score. */
  for (int t = 0; t < v->nt; t++)
    for (int64_t r = rows->period_begin[t]; r < rows->period_begin[t + 1];
         r++)
      for (int64_t i = 0; i < nl; i++) {
        const double value = rows->data[r * nl + i];

        v->centered[r * nl + i] =
            isnan(value) ? 0.0 : value - result->mean[t * nl + i];
      }
  v->state[TCX_VALIDATION_BEST_NLL] = INFINITY;
  v->state[TCX_VALIDATION_BEST_ITERATION] = -1.0;
  v->state[TCX_VALIDATION_SINCE_BEST] = 0.0;
  v->state[TCX_VALIDATION_STOPPED] = 0.0;
  *validation = v;
  return TCX_OK;
}

void tcx_tcorex_validation_destroy(tcx_tcorex_validation **validation)
{
  if (!validation || !*validation)
    return;
  free((*validation)->centered);
  free((*validation)->l);
  free((*validation)->d);
  free((*validation)->best_weights);
  free(*validation);
  *validation = NULL;
}

/* Mean over periods of the NLL per held-out row under the factors and
 * standard deviations of result, or +infinity when some period's model has
 * a variance that is not positive. Collective. */
static int score(tcx_ctx *ctx, tcx_tcorex_validation *v,
                 const tcx_tcorex_result *result, double *nll)
{
  const int64_t m = v->m, nl = v->n_local;
  int valid = 1, rc = TCX_OK;

  *nll = 0.0;
  for (int64_t k = 0; k < (int64_t)v->nt * nl && valid; k++) {
    const int t = (int)(k / nl);
    const int64_t i = k % nl;
    double norm = 0.0;

    for (int64_t j = 0; j < m; j++) {
      const double f = result->factors[(t * m + j) * nl + i];

      norm += f * f;
    }
    valid = isfinite(norm) && norm < 1.0 && result->std[k] > 0.0;
  }
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &valid, 1, MPI_INT, MPI_MIN,
                                 tcx_ctx_comm(ctx)));
  if (!valid) {
    *nll = INFINITY;
    goto cleanup;
  }
  for (int t = 0; t < v->nt; t++) {
    const int64_t first = v->period_begin[t];
    const double *factors = result->factors + t * m * nl;
    const double *std = result->std + t * nl;
    double value = 0.0;

    for (int64_t i = 0; i < nl; i++) {
      double norm = 0.0;

      for (int64_t j = 0; j < m; j++) {
        v->l[j * nl + i] = factors[j * nl + i] * std[i];
        norm += factors[j * nl + i] * factors[j * nl + i];
      }
      v->d[i] = std[i] * std[i] * (1.0 - norm);
    }
    TCX_TRY(tcx_lowrank_nll(ctx, m, nl, v->l, v->d,
                            v->period_begin[t + 1] - first,
                            v->centered + first * nl, &value));
    *nll += value / v->nt;
  }

cleanup:
  return rc;
}

int tcx_tcorex_validation_check(tcx_ctx *ctx,
                                tcx_tcorex_validation *v,
                                tcx_tcorex_plan *plan, const double *weights,
                                tcx_tcorex_result *result, int force,
                                int *stop)
{
  const int64_t count = (int64_t)v->nt * v->m * v->n_local;
  double nll;
  int rc = TCX_OK;

  *stop = v->state[TCX_VALIDATION_STOPPED] != 0.0;
  if (*stop || (!force && result->iterations % v->every != 0))
    return TCX_OK;
  TCX_TRY(tcx_tcorex_outputs(ctx, plan, weights, result));
  TCX_TRY(score(ctx, v, result, &nll));
  if (nll < v->state[TCX_VALIDATION_BEST_NLL]) {
    v->state[TCX_VALIDATION_BEST_NLL] = nll;
    v->state[TCX_VALIDATION_BEST_ITERATION] = (double)result->iterations;
    v->state[TCX_VALIDATION_SINCE_BEST] = 0.0;
    memcpy(v->best_weights, weights, (size_t)count * sizeof(double));
  } else {
    v->state[TCX_VALIDATION_SINCE_BEST] += 1.0;
  }
  tcx_log(ctx, TCX_LOG_DEBUG,
          "T-CorEx step %lld: validation NLL %.8g (lowest %.8g at step %lld)",
          (long long)result->iterations, nll,
          v->state[TCX_VALIDATION_BEST_NLL],
          (long long)v->state[TCX_VALIDATION_BEST_ITERATION]);
  if (v->state[TCX_VALIDATION_SINCE_BEST] >= (double)v->patience) {
    v->state[TCX_VALIDATION_STOPPED] = 1.0;
    *stop = 1;
  }

cleanup:
  return rc;
}
