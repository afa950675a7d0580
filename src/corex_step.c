/* One quasi-Newton iteration of linear CorEx with a backtracking line search
 * that updates the moments incrementally.
 *
 * Along the step U(eta) = U + eta d the sums over variables are polynomials
 * in eta: Y(eta) = Y + eta x d^T and
 * U(eta) U(eta)^T = U U^T + eta (d U^T + U d^T) + eta^2 d d^T, and locally
 * rho(eta) = rho + eta d Sigma_eps. One reduction before the search supplies
 * the sums from which x d^T, d U^T and d d^T follow on every rank. A trial
 * then needs only the per-variable terms: one reduction of H (m x m) and the
 * per-variable part of TC.
 *
 * Numerical stability. The gradient factor is g = U / r + g', rows scaled by
 * 1 / r_j (r_j = 1 - u_j), and the step is d = -r g' + e U with
 * e_j = r_j c_j - 1 = r_j (2 <rho_j, g'_j> - 1) / (2 - r_j). The reduction
 * carries x g'^T, so x d^T = -r x g'^T + e Y takes the carried Y only through
 * the factor e_j, and an error in the carried Y grows by |1 + eta e_j| per
 * accepted step, which is close to 1 when u_j is close to 1. Reducing x g^T
 * instead hides a fresh x U^T / r in it, and the carried error then grows by
 * 1 + eta r_j c_j, about 2 per step when u_j is close to 1.
 *
 * Fresh trials. The carried moments still collect rounding, and |1 + eta e_j|
 * can exceed 1 (up to 1.12 in the runs measured for docs/METHOD.md). A trial
 * is therefore evaluated from scratch, with an extra reduction of x U(eta)^T
 * and U(eta) U(eta)^T (n m + m^2 doubles), in three cases. It would become
 * the refresh_interval-th accepted point since the last fresh evaluation.
 * The product of the growth factors since then would exceed refresh_growth.
 * Or its carried u_j is within refresh_margin of 1, where the validity test
 * u_j < 1 and the term 1/2 log(1 - u_j) of TC are most sensitive to errors
 * in u_j. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "checkpoint_internal.h"
#include "corex_impl.h"

/* Sufficient-decrease constant of the Armijo test. */
#define TCX_COREX_ARMIJO 0.1

/* Reduction A: x g'^T (n x m), then the upper triangles of g' g'^T and
 * U U^T and the full g' U^T (m x m each), with g' = g - U / r, then the
 * checkpoint votes, which ride along so that agreeing on a stop request
 * costs no extra reduction. Leaves g' in work->direction. */
static int tcx_corex_reduce_gradient(tcx_corex_work *work)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  double *buffer = work->reduce;
  double *gg = buffer + n * m;
  double *gu = gg + m * m;
  double *uu = gu + m * m;
  double *votes = uu + m * m;
  int rc = TCX_OK;

  tcx_corex_gradient_remainder(work);
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
  tcx_checkpoint_vote(work->ctx, work->checkpoint, votes);
  TCX_TRY(tcx_corex_allreduce(work->ctx, buffer,
                              n * m + 3 * m * m + TCX_CHECKPOINT_N_VOTES));
  tcx_checkpoint_tally(work->checkpoint, votes);
  tcx_corex_symmetrize(m, gg, gg);
  tcx_corex_symmetrize(m, uu, work->now.gram);

cleanup:
  return rc;
}

/* Derives the step d = -r g' + e U (rows scaled by r_j = 1 - u_j and by
 * e_j = r_j c_j - 1, c_j = 2 b_j / (2 - r_j), b_j = <rho_j, g_j>) from the
 * reduced sums, and returns the slope <g Sigma_eps, d>. Fills
 * work->coefficient with e, work->x_direction, work->cross_gram and
 * work->direction_gram. */
static double tcx_corex_direction_sums(tcx_corex_work *work)
{
  const int64_t n = work->n, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;
  const tcx_corex_moments *moments = &work->now;
  const double *xg = work->reduce; /* x g'^T */
  const double *gg = xg + n * m;   /* g' g'^T */
  const double *gu = gg + m * m;   /* g' U^T */
  const double *uu = moments->gram;
  double *e = work->coefficient;
  double *xd = work->x_direction;
  double slope = 0.0;

  /* <rho_j, g'_j> = (1 - eps^2) (x g'^T)_j . Y_j / n + eps^2 (g' U^T)_jj, and
   * b_j = <rho_j, g'_j> + u_j / r_j, so that r_j c_j - 1 =
   * r_j (2 <rho_j, g'_j> - 1) / (2 - r_j) without cancellation. */
  for (int64_t j = 0; j < m; j++)
    e[j] = 0.0;
  for (int64_t row = 0; row < n; row++)
    for (int64_t j = 0; j < m; j++)
      e[j] += xg[row * m + j] * moments->y[row * m + j];
  for (int64_t j = 0; j < m; j++) {
    const double r = 1.0 - moments->u[j];
    const double rho_g = signal * e[j] / (double)n + noise * gu[j * m + j];

    e[j] = r * (2.0 * rho_g - 1.0) / (2.0 - r);
  }

  /* With r and e scaling rows of U, g' and d (columns of x d^T):
   *   x d^T = -r x g'^T + e Y,
   *   d U^T = -r g' U^T + e U U^T,
   *   d d^T = r r^T g' g'^T - r e^T g' U^T - e r^T U g'^T + e e^T U U^T. */
  for (int64_t row = 0; row < n; row++)
    for (int64_t j = 0; j < m; j++) {
      const double r = 1.0 - moments->u[j];

      xd[row * m + j] = -r * xg[row * m + j] + e[j] * moments->y[row * m + j];
    }
  for (int64_t j = 0; j < m; j++) {
    const double r_j = 1.0 - moments->u[j];

    for (int64_t k = 0; k < m; k++) {
      const double r_k = 1.0 - moments->u[k];

      work->cross_gram[j * m + k] =
          -r_j * gu[j * m + k] + e[j] * uu[j * m + k];
      work->direction_gram[j * m + k] =
          r_j * r_k * gg[j * m + k] - r_j * e[k] * gu[j * m + k] -
          e[j] * r_k * gu[k * m + j] + e[j] * e[k] * uu[j * m + k];
    }
  }

  /* slope = <g Sigma_eps, d> with g = g' + U / r:
   * (1 - eps^2) <x g^T, x d^T> / n + eps^2 <g, d>, where
   * <g_j, d_j> = -r_j (g' g'^T)_jj + e_j (g' U^T)_jj + (d U^T)_jj / r_j. */
  for (int64_t j = 0; j < m; j++) {
    const double r = 1.0 - moments->u[j];
    double xg_dot_xd = 0.0;

    for (int64_t row = 0; row < n; row++)
      xg_dot_xd += (xg[row * m + j] + moments->y[row * m + j] / r) *
                   xd[row * m + j];
    slope += signal * xg_dot_xd / (double)n +
             noise * (-r * gg[j * m + j] + e[j] * gu[j * m + j] +
                      work->cross_gram[j * m + j] / r);
  }
  return slope;
}

/* Turns g' in work->direction into d = -r g' + e U in place. Local. */
static void tcx_corex_direction_local(tcx_corex_work *work)
{
  const int64_t n_local = work->n_local, m = work->m;

  for (int64_t j = 0; j < m; j++) {
    const double r = 1.0 - work->now.u[j];
    const double e = work->coefficient[j];
    const double *weights = work->weights + j * n_local;
    double *d = work->direction + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      d[i] = -r * d[i] + e * weights[i];
  }
  work->direction_sigma_ready = 0;
}

/* Computes d Sigma_eps = (1 - eps^2) (x d^T)^T x / n + eps^2 d once per
 * iteration, for the first incremental trial. Local. */
static void tcx_corex_direction_sigma(tcx_corex_work *work)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  const double noise = work->eps * work->eps;
  const double signal = 1.0 - noise;

  if (work->direction_sigma_ready)
    return;
  memcpy(work->direction_sigma, work->direction,
         (size_t)(m * n_local) * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n_local,
              (int)n, signal / (double)n, work->x_direction, (int)m, work->x,
              (int)n_local, noise, work->direction_sigma, (int)n_local);
  work->direction_sigma_ready = 1;
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

/* Evaluates TC at the valid trial point of step length eta from the carried
 * moments (one reduction of m^2 + 1 doubles). Collective. */
static int tcx_corex_trial_objective(tcx_corex_work *work, double eta)
{
  const int64_t n_local = work->n_local, m = work->m;
  const tcx_corex_moments *now = &work->now;
  tcx_corex_moments *trial = &work->trial;
  double *buffer = work->reduce;
  int rc = TCX_OK;

  tcx_corex_direction_sigma(work);
  for (int64_t k = 0; k < m * n_local; k++)
    trial->rho[k] = now->rho[k] + eta * work->direction_sigma[k];
  buffer[m * m] = tcx_corex_local_terms(work, trial, buffer);
  TCX_TRY(tcx_corex_allreduce(work->ctx, buffer, m * m + 1));
  tcx_corex_finish_objective(work, buffer, trial);

cleanup:
  return rc;
}

/* Returns max_j |1 + eta e_j|, the factor by which an error in the carried
 * Y can grow in a step of length eta. */
static double tcx_corex_step_growth(const tcx_corex_work *work, double eta)
{
  double growth = 0.0;

  for (int64_t j = 0; j < work->m; j++)
    growth = fmax(growth, fabs(1.0 + eta * work->coefficient[j]));
  return growth;
}

/* Returns 1 when the trial of step length eta, whose carried moments are in
 * work->trial, must be evaluated from scratch. Replicated. */
static int tcx_corex_trial_needs_fresh(const tcx_corex_work *work,
                                       double eta)
{
  if (work->steps_since_fresh + 1 >= work->refresh_interval)
    return 1;
  if (work->carried_growth * tcx_corex_step_growth(work, eta) >
      work->refresh_growth)
    return 1;
  for (int64_t j = 0; j < work->m; j++)
    if (1.0 - work->trial.u[j] < work->refresh_margin)
      return 1;
  return 0;
}

/* Evaluates the trial U + eta d from scratch into work->trial_weights and
 * work->trial: one reduction of n m + m^2 doubles, then, when the fresh u
 * is valid, one of m^2 + 1. Sets *valid and stores in *u_drift the largest
 * difference between the carried and the fresh u_j. Collective. */
static int tcx_corex_trial_fresh(tcx_corex_work *work, double eta, int *valid,
                                 double *u_drift)
{
  const int64_t m = work->m;
  tcx_corex_moments *trial = &work->trial;
  int rc = TCX_OK;

  for (int64_t k = 0; k < m * work->n_local; k++)
    work->trial_weights[k] = work->weights[k] + eta * work->direction[k];
  TCX_TRY(tcx_corex_reduce_projections(work, work->trial_weights));

  memcpy(work->carried_u, trial->u, (size_t)m * sizeof(double));
  tcx_corex_take_projections(work, trial);
  *u_drift = 0.0;
  *valid = 1;
  for (int64_t j = 0; j < m; j++) {
    *u_drift = fmax(*u_drift, fabs(work->carried_u[j] - trial->u[j]));
    if (!(trial->u[j] < 1.0)) /* also rejects NaN */
      *valid = 0;
  }
  if (*valid)
    TCX_TRY(tcx_corex_finish_evaluation(work, work->trial_weights, trial));

cleanup:
  return rc;
}

/* Makes the trial point current: U moves to U + eta d (computed here for an
 * incremental trial, taken from work->trial_weights for a fresh one) and the
 * trial moments become work->now. */
static void tcx_corex_accept(tcx_corex_work *work, double eta, int fresh)
{
  const tcx_corex_moments previous = work->now;

  if (fresh) {
    double *weights = work->weights;

    work->weights = work->trial_weights;
    work->trial_weights = weights;
    work->steps_since_fresh = 0;
    work->carried_growth = 1.0;
  } else {
    for (int64_t k = 0; k < work->m * work->n_local; k++)
      work->weights[k] += eta * work->direction[k];
    work->steps_since_fresh++;
    work->carried_growth *= tcx_corex_step_growth(work, eta);
  }
  work->now = work->trial;
  work->trial = previous;
}

int tcx_corex_step(tcx_corex_work *work, double min_step,
                   tcx_corex_step_info *info)
{
  double eta = 1.0;
  int rc = TCX_OK;

  memset(info, 0, sizeof(*info));
  info->u_drift = NAN;
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

    /* A trial whose carried u is invalid is rejected without a fresh
     * evaluation. That is safe even when the true u_j is slightly below 1,
     * because the search then tries a shorter step. */
    if (tcx_corex_trial_replicated(work, eta)) {
      const int fresh = tcx_corex_trial_needs_fresh(work, eta);
      int valid = 1;

      if (fresh) {
        TCX_TRY(tcx_corex_trial_fresh(work, eta, &valid, &info->u_drift));
        info->n_fresh_trials++;
      } else {
        TCX_TRY(tcx_corex_trial_objective(work, eta));
      }
      info->n_trials++;
      if (valid && -work->trial.tc <=
                       -work->now.tc + TCX_COREX_ARMIJO * eta * info->slope) {
        tcx_corex_accept(work, eta, fresh);
        info->outcome = TCX_COREX_STEP_MOVED;
        break;
      }
    }
    eta *= 0.5;
  }

cleanup:
  return rc;
}
