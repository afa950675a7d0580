/* One quasi-Newton iteration of linear CorEx with a backtracking line search
 * that updates the moments incrementally.
 *
 * Along the step U(eta) = U + eta d the sums over variables are polynomials
 * in eta: Y(eta) = Y + eta x d^T and
 * U(eta) U(eta)^T = U U^T + eta (d U^T + U d^T) + eta^2 d d^T, and locally
 * rho(eta) = rho + eta d Sigma_eps. One reduction before the search supplies
 * x g^T, g g^T, g U^T and U U^T, from which x d^T, d U^T and d d^T follow on
 * every rank. A trial then needs only the per-variable terms: one reduction
 * of H (m x m) and the per-variable part of TC. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "corex_impl.h"

/* Sufficient-decrease constant of the Armijo test. */
#define TCX_COREX_ARMIJO 0.1

/* Reduction A: x g^T (n x m), then the upper triangles of g g^T and U U^T
 * and the full g U^T (m x m each). The gradient factor g is in
 * work->direction. */
static int tcx_corex_reduce_gradient(tcx_corex_work *work)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  double *buffer = work->reduce;
  double *gg = buffer + n * m;
  double *gu = gg + m * m;
  double *uu = gu + m * m;
  int rc = TCX_OK;

  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m,
              (int)n_local, 1.0, work->x, (int)n_local, work->direction,
              (int)n_local, 0.0, buffer, (int)m);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)n_local,
              1.0, work->direction, (int)n_local, 0.0, gg, (int)m);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
              (int)n_local, 1.0, work->direction, (int)n_local,
              work->weights, (int)n_local, 0.0, gu, (int)m);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)n_local,
              1.0, work->weights, (int)n_local, 0.0, uu, (int)m);
  TCX_TRY(tcx_corex_allreduce(work->ctx, buffer, n * m + 3 * m * m));
  tcx_corex_symmetrize(m, gg, gg);
  tcx_corex_symmetrize(m, uu, work->now.gram);

cleanup:
  return rc;
}

/* Derives the step d = -r (g - c U) (rows scaled by r_j = 1 - u_j and
 * c_j = 2 b_j / (2 - r_j), b_j = <rho_j, g_j>) from the reduced sums, and
 * returns the slope <g Sigma_eps, d>. Fills work->coefficient,
 * work->x_direction, work->cross_gram and work->direction_gram. */
static double tcx_corex_direction_sums(tcx_corex_work *work)
{
  const int64_t n = work->n, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;
  const tcx_corex_moments *moments = &work->now;
  const double *xg = work->reduce;
  const double *gg = xg + n * m;
  const double *gu = gg + m * m;
  const double *uu = moments->gram;
  double *c = work->coefficient;
  double *xd = work->x_direction;
  double g_dot_d = 0.0, xg_dot_xd = 0.0;

  /* b_j = (g rho^T)_jj = (1 - eps^2) (x g^T)_j . Y_j / n + eps^2 (g U^T)_jj. */
  for (int64_t j = 0; j < m; j++)
    c[j] = 0.0;
  for (int64_t row = 0; row < n; row++)
    for (int64_t j = 0; j < m; j++)
      c[j] += xg[row * m + j] * moments->y[row * m + j];
  for (int64_t j = 0; j < m; j++) {
    const double b = signal * c[j] / (double)n + noise * gu[j * m + j];
    const double r = 1.0 - moments->u[j];

    c[j] = 2.0 * b / (2.0 - r);
    g_dot_d -= r * (gg[j * m + j] - c[j] * gu[j * m + j]);
  }

  for (int64_t row = 0; row < n; row++)
    for (int64_t j = 0; j < m; j++) {
      const double r = 1.0 - moments->u[j];
      const double value =
          -r * (xg[row * m + j] - c[j] * moments->y[row * m + j]);

      xd[row * m + j] = value;
      xg_dot_xd += xg[row * m + j] * value;
    }

  /* d U^T = -r (g U^T - c U U^T) and
   * d d^T = r r^T (g g^T - (g U^T) c - c (U g^T) + c c^T U U^T). */
  for (int64_t j = 0; j < m; j++) {
    const double r_j = 1.0 - moments->u[j];

    for (int64_t k = 0; k < m; k++) {
      const double r_k = 1.0 - moments->u[k];

      work->cross_gram[j * m + k] =
          -r_j * (gu[j * m + k] - c[j] * uu[j * m + k]);
      work->direction_gram[j * m + k] =
          r_j * r_k *
          (gg[j * m + k] - c[k] * gu[j * m + k] - c[j] * gu[k * m + j] +
           c[j] * c[k] * uu[j * m + k]);
    }
  }
  return signal * xg_dot_xd / (double)n + noise * g_dot_d;
}

/* Turns g in work->direction into d in place and computes
 * d Sigma_eps = (1 - eps^2) (x d^T)^T x / n + eps^2 d. Local. */
static void tcx_corex_direction_local(tcx_corex_work *work)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;

  for (int64_t j = 0; j < m; j++) {
    const double r = 1.0 - work->now.u[j];
    const double c = work->coefficient[j];
    const double *weights = work->weights + j * n_local;
    double *d = work->direction + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      d[i] = -r * (d[i] - c * weights[i]);
  }
  memcpy(work->direction_sigma, work->direction,
         (size_t)(m * n_local) * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n_local,
              (int)n, signal / (double)n, work->x_direction, (int)m, work->x,
              (int)n_local, noise, work->direction_sigma, (int)n_local);
}

/* Sets the replicated trial moments at step length eta and returns 1 when
 * the trial point is valid (every u_j < 1). No communication. */
static int tcx_corex_trial_replicated(tcx_corex_work *work, double eta)
{
  const int64_t n = work->n, m = work->m;
  const tcx_corex_moments *now = &work->now;
  tcx_corex_moments *trial = &work->trial;
  int valid = 1;

  for (int64_t k = 0; k < n * m; k++)
    trial->y[k] = now->y[k] + eta * work->x_direction[k];
  for (int64_t j = 0; j < m; j++)
    for (int64_t k = 0; k < m; k++)
      trial->gram[j * m + k] =
          now->gram[j * m + k] +
          eta * (work->cross_gram[j * m + k] + work->cross_gram[k * m + j]) +
          eta * eta * work->direction_gram[j * m + k];
  tcx_corex_replicated_moments(work, trial);
  for (int64_t j = 0; j < m; j++)
    if (!(trial->u[j] < 1.0)) /* also rejects NaN */
      valid = 0;
  return valid;
}

/* Evaluates TC at the valid trial point of step length eta (one reduction
 * of m^2 + 1 doubles). Collective. */
static int tcx_corex_trial_objective(tcx_corex_work *work, double eta)
{
  const int64_t n_local = work->n_local, m = work->m;
  const tcx_corex_moments *now = &work->now;
  tcx_corex_moments *trial = &work->trial;
  double *buffer = work->reduce;
  int rc = TCX_OK;

  for (int64_t k = 0; k < m * n_local; k++)
    trial->rho[k] = now->rho[k] + eta * work->direction_sigma[k];
  buffer[m * m] = tcx_corex_local_terms(work, trial, buffer);
  TCX_TRY(tcx_corex_allreduce(work->ctx, buffer, m * m + 1));
  tcx_corex_finish_objective(work, buffer, trial);

cleanup:
  return rc;
}

/* Moves U to U + eta d and makes the trial moments current. */
static void tcx_corex_accept(tcx_corex_work *work, double eta)
{
  const tcx_corex_moments previous = work->now;

  for (int64_t k = 0; k < work->m * work->n_local; k++)
    work->weights[k] += eta * work->direction[k];
  work->now = work->trial;
  work->trial = previous;
}

int tcx_corex_step(tcx_corex_work *work, double min_step,
                   tcx_corex_step_info *info)
{
  double eta = 1.0;
  int rc = TCX_OK;

  memset(info, 0, sizeof(*info));
  tcx_corex_gradient_factor(work);
  TCX_TRY(tcx_corex_reduce_gradient(work));
  info->slope = tcx_corex_direction_sums(work);
  if (!isfinite(info->slope)) {
    info->outcome = TCX_COREX_STEP_BREAKDOWN;
    goto cleanup;
  }
  if (info->slope >= 0.0) {
    info->outcome = TCX_COREX_STEP_NO_DESCENT;
    goto cleanup;
  }
  tcx_corex_direction_local(work);

  /* Backtracking: halve eta until the trial is valid and satisfies
   * -TC(U + eta d) <= -TC(U) + 0.1 eta slope. A NaN objective fails the
   * test. Every rank takes the same branches because the tested values are
   * replicated.
   * NOTE: this needs MPI_Allreduce to return bitwise identical sums on all
   * ranks, which MPI does not guarantee. With an MPI library that differs,
   * ranks could disagree here and hang in the next reduction. */
  info->outcome = TCX_COREX_STEP_TOO_SMALL;
  while (eta >= min_step) {
    info->step_length = eta;
    if (tcx_corex_trial_replicated(work, eta)) {
      TCX_TRY(tcx_corex_trial_objective(work, eta));
      info->n_trials++;
      if (-work->trial.tc <=
          -work->now.tc + TCX_COREX_ARMIJO * eta * info->slope) {
        tcx_corex_accept(work, eta);
        info->outcome = TCX_COREX_STEP_MOVED;
        break;
      }
    }
    eta *= 0.5;
  }

cleanup:
  return rc;
}
