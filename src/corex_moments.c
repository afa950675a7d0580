/* Linear CorEx moments, objective and gradient at a fixed annealing level.
 *
 * The annealed data x~ = sqrt(1 - eps^2) x + eps xi (xi standard normal
 * noise) enter only through their second moment
 * Sigma_eps = (1 - eps^2) x^T x / n + eps^2 I, which is never formed: every
 * product with it is two GEMMs with x. Shapes are given in corex_impl.h. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"
#include "corex_impl.h"

static int tcx_corex_alloc(tcx_ctx *ctx, int64_t count, const char *what,
                           double **array)
{
  return tcx_calloc(ctx, count, sizeof(double), what, array);
}

static int tcx_corex_moments_alloc(tcx_ctx *ctx, int64_t n, int64_t n_local,
                                   int64_t m, tcx_corex_moments *moments)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx rho", &moments->rho));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx rho-tilde",
                          &moments->rho_tilde));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx Q", &moments->q));
  TCX_TRY(tcx_corex_alloc(ctx, n_local, "CorEx S", &moments->s));
  TCX_TRY(tcx_corex_alloc(ctx, n_local, "CorEx Delta", &moments->delta));
  TCX_TRY(tcx_corex_alloc(ctx, n * m, "CorEx projections", &moments->y));
  TCX_TRY(tcx_corex_alloc(ctx, m * m, "CorEx Gram matrix", &moments->gram));
  TCX_TRY(tcx_corex_alloc(ctx, m, "CorEx u", &moments->u));
  TCX_TRY(tcx_corex_alloc(ctx, m * m, "CorEx factor correlation",
                          &moments->ry));
  TCX_TRY(tcx_corex_alloc(ctx, m * m, "CorEx H", &moments->h));

cleanup:
  return rc;
}

static void tcx_corex_moments_free(tcx_corex_moments *moments)
{
  free(moments->rho);
  free(moments->rho_tilde);
  free(moments->q);
  free(moments->s);
  free(moments->delta);
  free(moments->y);
  free(moments->gram);
  free(moments->u);
  free(moments->ry);
  free(moments->h);
  memset(moments, 0, sizeof(*moments));
}

int tcx_corex_work_create(tcx_ctx *ctx, const double *x, int64_t n,
                          int64_t n_local, int64_t m, tcx_corex_work **work)
{
  tcx_corex_work *w = NULL;
  int rc = TCX_OK;

  *work = NULL;
  /* CBLAS takes int dimensions. */
  TCX_CHECK(n >= 1 && n <= INT_MAX && n_local >= 1 && n_local <= INT_MAX &&
                m >= 1 && m <= INT_MAX,
            ctx, TCX_ERR_USAGE,
            "linear CorEx cannot work on %lld samples, %lld local variables "
            "and %lld factors: each must be between 1 and %d",
            (long long)n, (long long)n_local, (long long)m, INT_MAX);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*w), "CorEx work space", &w));
  w->ctx = ctx;
  w->x = x;
  w->n = n;
  w->n_local = n_local;
  w->m = m;
  w->refresh_interval = TCX_COREX_REFRESH_INTERVAL;
  w->refresh_margin = TCX_COREX_REFRESH_MARGIN;
  w->refresh_growth = TCX_COREX_REFRESH_GROWTH;
  w->carried_growth = 1.0;
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx weights", &w->weights));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx trial weights",
                          &w->trial_weights));
  TCX_TRY(tcx_corex_moments_alloc(ctx, n, n_local, m, &w->now));
  TCX_TRY(tcx_corex_moments_alloc(ctx, n, n_local, m, &w->trial));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx step", &w->direction));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx step times Sigma",
                          &w->direction_sigma));
  TCX_TRY(tcx_corex_alloc(ctx, m * n_local, "CorEx scratch", &w->scaled));
  TCX_TRY(tcx_corex_alloc(ctx, n_local, "CorEx scratch",
                          &w->column_scratch));
  TCX_TRY(tcx_corex_alloc(ctx, n_local, "CorEx scratch",
                          &w->column_scratch2));
  /* The largest reduction is the gradient's, with the checkpoint votes;
   * TCX_CHECKPOINT_N_VOTES >= 1 also covers the trial's m^2 + 1. */
  TCX_TRY(tcx_corex_alloc(ctx, n * m + 3 * m * m + TCX_CHECKPOINT_N_VOTES,
                          "CorEx reduction buffer", &w->reduce));
  TCX_TRY(tcx_corex_alloc(ctx, n * m, "CorEx step projections",
                          &w->x_direction));
  TCX_TRY(tcx_corex_alloc(ctx, m * m, "CorEx step Gram matrix",
                          &w->cross_gram));
  TCX_TRY(tcx_corex_alloc(ctx, m * m, "CorEx step Gram matrix",
                          &w->direction_gram));
  TCX_TRY(tcx_corex_alloc(ctx, m, "CorEx step coefficients",
                          &w->coefficient));
  TCX_TRY(tcx_corex_alloc(ctx, m, "CorEx carried u", &w->carried_u));
  *work = w;
  w = NULL;

cleanup:
  tcx_corex_work_destroy(&w);
  return rc;
}

void tcx_corex_work_destroy(tcx_corex_work **work)
{
  tcx_corex_work *w;

  if (!work || !*work)
    return;
  w = *work;
  free(w->weights);
  free(w->trial_weights);
  tcx_corex_moments_free(&w->now);
  tcx_corex_moments_free(&w->trial);
  free(w->direction);
  free(w->direction_sigma);
  free(w->scaled);
  free(w->column_scratch);
  free(w->column_scratch2);
  free(w->reduce);
  free(w->x_direction);
  free(w->cross_gram);
  free(w->direction_gram);
  free(w->coefficient);
  free(w->carried_u);
  free(w);
  *work = NULL;
}

int tcx_corex_allreduce(tcx_ctx *ctx, double *buffer, int64_t count)
{
  int rc = TCX_OK;

  TCX_CHECK(count <= INT_MAX, ctx, TCX_ERR_USAGE,
            "a CorEx reduction of %lld doubles exceeds the MPI count limit "
            "%d; use fewer samples or factors",
            (long long)count, INT_MAX);
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count,
                                 MPI_DOUBLE, MPI_SUM, tcx_ctx_comm(ctx)));

cleanup:
  return rc;
}

void tcx_corex_symmetrize(int64_t m, const double *upper, double *full)
{
  for (int64_t j = 0; j < m; j++)
    for (int64_t k = j; k < m; k++) {
      full[j * m + k] = upper[j * m + k];
      full[k * m + j] = upper[j * m + k];
    }
}

void tcx_corex_replicated_moments(const tcx_corex_work *work,
                                  tcx_corex_moments *moments)
{
  const int64_t n = work->n, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;

  /* Ry = (1 - eps^2) Y^T Y / n + eps^2 U U^T, which equals U rho^T. Its
   * diagonal is u before it is set to 1. */
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)m, (int)n,
              signal / (double)n, moments->y, (int)m, 0.0, moments->ry,
              (int)m);
  for (int64_t j = 0; j < m; j++)
    for (int64_t k = j; k < m; k++) {
      const double value = moments->ry[j * m + k] +
                           noise * moments->gram[j * m + k];

      moments->ry[j * m + k] = value;
      moments->ry[k * m + j] = value;
    }
  for (int64_t j = 0; j < m; j++) {
    moments->u[j] = moments->ry[j * m + j];
    moments->ry[j * m + j] = 1.0;
  }
}

double tcx_corex_local_terms(tcx_corex_work *work, tcx_corex_moments *moments,
                             double *h_partial)
{
  const int64_t n_local = work->n_local, m = work->m;
  double *s = moments->s;
  double *delta = moments->delta;
  double *inverse_sqrt = work->column_scratch;
  double partial = 0.0;

  for (int64_t i = 0; i < n_local; i++) {
    s[i] = 0.0;
    delta[i] = 0.0;
  }
  for (int64_t j = 0; j < m; j++) {
    const double *rho = moments->rho + j * n_local;
    double *rho_tilde = moments->rho_tilde + j * n_local;

    for (int64_t i = 0; i < n_local; i++) {
      const double tilde = rho[i] / (1.0 - rho[i] * rho[i]);

      rho_tilde[i] = tilde;
      s[i] += rho[i] * tilde;
    }
  }

  /* Q = Ry rho_tilde (m x n_local). */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
              (int)n_local, (int)m, 1.0, moments->ry, (int)m,
              moments->rho_tilde, (int)n_local, 0.0, moments->q,
              (int)n_local);
  for (int64_t j = 0; j < m; j++) {
    const double *rho = moments->rho + j * n_local;
    const double *rho_tilde = moments->rho_tilde + j * n_local;
    const double *q = moments->q + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      delta[i] += rho_tilde[i] * (q[i] - s[i] * rho[i]);
  }
  for (int64_t i = 0; i < n_local; i++) {
    partial += log1p(s[i]) - 0.5 * log1p(delta[i]);
    inverse_sqrt[i] = 1.0 / sqrt(1.0 + delta[i]);
  }

  /* H = (rho_tilde / (1 + Delta)) rho_tilde^T as one SYRK of
   * rho_tilde / sqrt(1 + Delta). A point with 1 + Delta <= 0 has a NaN
   * objective and is never accepted, so the square root is safe where H is
   * used. */
  for (int64_t j = 0; j < m; j++) {
    const double *rho_tilde = moments->rho_tilde + j * n_local;
    double *scaled = work->scaled + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      scaled[i] = rho_tilde[i] * inverse_sqrt[i];
  }
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)n_local,
              1.0, work->scaled, (int)n_local, 0.0, h_partial, (int)m);
  return partial;
}

void tcx_corex_finish_objective(const tcx_corex_work *work,
                                const double *reduced,
                                tcx_corex_moments *moments)
{
  const int64_t m = work->m;
  double tc = reduced[m * m];

  tcx_corex_symmetrize(m, reduced, moments->h);
  for (int64_t j = 0; j < m; j++) {
    moments->h[j * m + j] = 0.0;
    tc += 0.5 * log1p(-moments->u[j]);
  }
  moments->tc = tc;
}

int tcx_corex_reduce_projections(tcx_corex_work *work, const double *weights)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  double *buffer = work->reduce;

  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m,
              (int)n_local, 1.0, work->x, (int)n_local, weights, (int)n_local,
              0.0, buffer, (int)m);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)n_local,
              1.0, weights, (int)n_local, 0.0, buffer + n * m, (int)m);
  return tcx_corex_allreduce(work->ctx, buffer, n * m + m * m);
}

void tcx_corex_take_projections(tcx_corex_work *work,
                                tcx_corex_moments *moments)
{
  const int64_t n = work->n, m = work->m;

  memcpy(moments->y, work->reduce, (size_t)(n * m) * sizeof(double));
  tcx_corex_symmetrize(m, work->reduce + n * m, moments->gram);
  tcx_corex_replicated_moments(work, moments);
}

int tcx_corex_finish_evaluation(tcx_corex_work *work, const double *weights,
                                tcx_corex_moments *moments)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;
  double *buffer = work->reduce;
  int rc = TCX_OK;

  /* rho = (1 - eps^2) Y^T x / n + eps^2 U, this rank's columns. */
  memcpy(moments->rho, weights, (size_t)(m * n_local) * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n_local,
              (int)n, signal / (double)n, moments->y, (int)m, work->x,
              (int)n_local, noise, moments->rho, (int)n_local);

  /* H and the per-variable part of TC. */
  buffer[m * m] = tcx_corex_local_terms(work, moments, buffer);
  TCX_TRY(tcx_corex_allreduce(work->ctx, buffer, m * m + 1));
  tcx_corex_finish_objective(work, buffer, moments);

cleanup:
  return rc;
}

int tcx_corex_evaluate(tcx_corex_work *work, double eps)
{
  int rc = TCX_OK;

  work->eps = eps;
  TCX_TRY(tcx_corex_reduce_projections(work, work->weights));
  tcx_corex_take_projections(work, &work->now);
  TCX_TRY(tcx_corex_finish_evaluation(work, work->weights, &work->now));
  work->steps_since_fresh = 0;
  work->carried_growth = 1.0;

cleanup:
  return rc;
}

void tcx_corex_gradient_remainder(tcx_corex_work *work)
{
  const int64_t n_local = work->n_local, m = work->m;
  const tcx_corex_moments *moments = &work->now;
  double *inverse_s = work->column_scratch;
  double *inverse_delta = work->column_scratch2;

  for (int64_t i = 0; i < n_local; i++) {
    inverse_s[i] = 1.0 / (1.0 + moments->s[i]);
    inverse_delta[i] = 1.0 / (1.0 + moments->delta[i]);
  }

  /* g - U / r = - 2 a rho~ / (1 + S) + a^2 ((1 + rho^2) Q - 2 rho S) /
   * (1 + Delta) + H U, with a = 1 / (1 - rho^2). */
  for (int64_t j = 0; j < m; j++) {
    const double *rho = moments->rho + j * n_local;
    const double *rho_tilde = moments->rho_tilde + j * n_local;
    const double *q = moments->q + j * n_local;
    double *g = work->direction + j * n_local;

    for (int64_t i = 0; i < n_local; i++) {
      const double rho2 = rho[i] * rho[i];
      const double a = 1.0 / (1.0 - rho2);

      g[i] = -2.0 * a * rho_tilde[i] * inverse_s[i] +
             a * a * ((1.0 + rho2) * q[i] - 2.0 * rho[i] * moments->s[i]) *
                 inverse_delta[i];
    }
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
              (int)n_local, (int)m, 1.0, moments->h, (int)m, work->weights,
              (int)n_local, 1.0, work->direction, (int)n_local);
}

void tcx_corex_gradient_factor(tcx_corex_work *work)
{
  const int64_t n_local = work->n_local, m = work->m;

  /* g = U / r + (g - U / r), with r_j = 1 - u_j. */
  tcx_corex_gradient_remainder(work);
  for (int64_t j = 0; j < m; j++)
    cblas_daxpy((int)n_local, 1.0 / (1.0 - work->now.u[j]),
                work->weights + j * n_local, 1, work->direction + j * n_local,
                1);
}

int tcx_corex_objective_gradient(tcx_ctx *ctx, const double *x, int64_t n,
                                 int64_t n_local, int64_t m, double eps,
                                 const double *weights, double *tc,
                                 double *gradient)
{
  const double noise = eps * eps;
  const double signal = 1.0 - noise;
  tcx_corex_work *work = NULL;
  int rc = TCX_OK;

  rc = tcx_corex_work_create(ctx, x, n, n_local, m, &work);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  memcpy(work->weights, weights, (size_t)(m * n_local) * sizeof(double));
  TCX_TRY(tcx_corex_evaluate(work, eps));
  tcx_corex_gradient_factor(work);

  /* grad(-TC) = g Sigma_eps = (1 - eps^2) (x g^T)^T x / n + eps^2 g. */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m,
              (int)n_local, 1.0, x, (int)n_local, work->direction,
              (int)n_local, 0.0, work->reduce, (int)m);
  TCX_TRY(tcx_corex_allreduce(ctx, work->reduce, n * m));
  memcpy(gradient, work->direction, (size_t)(m * n_local) * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n_local,
              (int)n, signal / (double)n, work->reduce, (int)m, x,
              (int)n_local, noise, gradient, (int)n_local);
  *tc = work->now.tc;

cleanup:
  tcx_corex_work_destroy(&work);
  return rc;
}
