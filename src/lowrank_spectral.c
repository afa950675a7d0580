/* Spectral norm of a difference of two low-rank plus diagonal matrices by
 * the Lanczos method. The difference diag(delta) - V1^T V1 + V2^T V2 is
 * symmetric and indefinite and has no closed-form norm, but its mat-vec
 * costs only O(p (m1 + m2)). Lanczos approximates both ends of the spectrum
 * at once, so it also converges when the largest eigenvalues in magnitude
 * have opposite signs, where a power iteration on the matrix oscillates.
 * Full reorthogonalisation keeps the basis orthonormal, so no spurious
 * copies of converged Ritz values appear; it costs O(p j) at step j. */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/lowrank.h"
#include "tcorex/rng.h"

/* Seed and stream of the start vector. Any fixed pair works. */
enum { START_SEED = 20261204, START_STREAM = 7 };

/* Basis vectors allocated at first. The basis doubles when it fills. */
enum { INITIAL_BASIS = 32 };

/* The operator and the Lanczos state of one call. */
typedef struct lanczos {
  tcx_ctx *ctx;
  int64_t n_local, m1, m2;
  const double *v1, *v2;
  double *delta;    /* [n_local], e1 - e2 */
  double *basis;    /* [capacity, n_local], orthonormal rows q_0, q_1, ... */
  int64_t capacity; /* rows allocated in basis */
  double *small;    /* [m1 + m2 + capacity + 1] reduction buffer */
  double *alpha;    /* [capacity] diagonal of the tridiagonal matrix */
  double *beta;     /* [capacity] its off-diagonal */
  double *work;     /* [capacity] eigenvector of the tridiagonal matrix */
  double *diagonal; /* [capacity] copy of alpha that LAPACK may scale */
  double *off;      /* [capacity] copy of beta that LAPACK may scale */
} lanczos;

static int sum_over_ranks(tcx_ctx *ctx, double *buffer, int64_t count)
{
  int rc = TCX_OK;

  TCX_CHECK(count <= INT_MAX, ctx, TCX_ERR_UNSUPPORTED,
            "cannot reduce %lld doubles in one MPI_Allreduce (limit %d); "
            "lower the Lanczos iteration limit",
            (long long)count, INT_MAX);
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_DOUBLE,
                                 MPI_SUM, tcx_ctx_comm(ctx)));

cleanup:
  return rc;
}

/* Resizes *array to count doubles, keeping its contents. Local. */
static int grow(tcx_ctx *ctx, double **array, int64_t count, const char *what)
{
  double *grown = realloc(*array, (size_t)count * sizeof(double));

  if (!grown)
    return tcx_error(ctx, TCX_ERR_MEMORY,
                     "out of memory for the %s (%lld doubles); lower the "
                     "Lanczos iteration limit or use more ranks",
                     what, (long long)count);
  *array = grown;
  return TCX_OK;
}

/* Grows every per-step array to hold at least rows basis vectors, doubling
 * the capacity. Collective, so that a failure on one rank stops all. */
static int reserve(lanczos *state, int64_t rows)
{
  tcx_ctx *ctx = state->ctx;
  int64_t capacity = state->capacity > 0 ? state->capacity : INITIAL_BASIS;
  int status = TCX_OK;

  if (rows <= state->capacity)
    return TCX_OK;
  while (capacity < rows)
    capacity *= 2;
  if (capacity > INT64_MAX / 8 / state->n_local)
    status = tcx_error(ctx, TCX_ERR_MEMORY,
                       "a Lanczos basis of %lld vectors of %lld entries "
                       "overflows the address space",
                       (long long)capacity, (long long)state->n_local);
  if (status == TCX_OK)
    status = grow(ctx, &state->basis, capacity * state->n_local,
                  "Lanczos basis");
  if (status == TCX_OK)
    status = grow(ctx, &state->small, state->m1 + state->m2 + capacity + 1,
                  "Lanczos sums");
  if (status == TCX_OK)
    status = grow(ctx, &state->alpha, capacity, "Lanczos diagonal");
  if (status == TCX_OK)
    status = grow(ctx, &state->beta, capacity, "Lanczos off-diagonal");
  if (status == TCX_OK)
    status = grow(ctx, &state->work, capacity, "Ritz vector");
  if (status == TCX_OK)
    status = grow(ctx, &state->diagonal, capacity, "tridiagonal copy");
  if (status == TCX_OK)
    status = grow(ctx, &state->off, capacity, "tridiagonal copy");
  if (status == TCX_OK)
    state->capacity = capacity;
  return tcx_ctx_agree(ctx, status);
}

/* y = (diag(delta) - V1^T V1 + V2^T V2) x on the local columns. Collective:
 * V1 x and V2 x are summed over ranks. */
static int apply(lanczos *state, const double *x, double *y)
{
  const int n = (int)state->n_local, m1 = (int)state->m1, m2 = (int)state->m2;
  double *a1 = state->small, *a2 = state->small + m1;
  int rc = TCX_OK;

  cblas_dgemv(CblasRowMajor, CblasNoTrans, m1, n, 1.0, state->v1, n, x, 1,
              0.0, a1, 1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, m2, n, 1.0, state->v2, n, x, 1,
              0.0, a2, 1);
  TCX_TRY(sum_over_ranks(state->ctx, state->small, state->m1 + state->m2));
  for (int64_t i = 0; i < state->n_local; i++)
    y[i] = state->delta[i] * x[i];
  cblas_dgemv(CblasRowMajor, CblasTrans, m1, n, -1.0, state->v1, n, a1, 1,
              1.0, y, 1);
  cblas_dgemv(CblasRowMajor, CblasTrans, m2, n, 1.0, state->v2, n, a2, 1, 1.0,
              y, 1);

cleanup:
  return rc;
}

/* Removes from w its components along the first rows basis vectors, one
 * classical Gram-Schmidt pass; coefficients receives them. Collective. */
static int orthogonalise(lanczos *state, int64_t rows, double *w,
                         double *coefficients)
{
  const int n = (int)state->n_local;
  int rc = TCX_OK;

  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)rows, n, 1.0, state->basis, n,
              w, 1, 0.0, coefficients, 1);
  TCX_TRY(sum_over_ranks(state->ctx, coefficients, rows));
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)rows, n, -1.0, state->basis, n,
              coefficients, 1, 1.0, w, 1);

cleanup:
  return rc;
}

/* Returns the global Euclidean norm of x. Collective. */
static int global_norm(lanczos *state, const double *x, double *norm)
{
  double sum = 0.0;
  int rc = TCX_OK;

  for (int64_t i = 0; i < state->n_local; i++)
    sum += x[i] * x[i];
  TCX_TRY(sum_over_ranks(state->ctx, &sum, 1));
  *norm = sqrt(sum);

cleanup:
  return rc;
}

/* Computes one extreme eigenpair (index 1: smallest, index n: largest) of the
 * n x n tridiagonal matrix with diagonal alpha and off-diagonal beta, and
 * the Lanczos residual |beta_last * z_last| of that Ritz pair. Local. */
static int ritz_pair(lanczos *state, int64_t n, int64_t index,
                     double beta_last, double *value, double *residual)
{
  double eigenvalue[1] = {0.0};
  lapack_int found = 0, failed[1] = {0};
  int rc = TCX_OK;

  memcpy(state->diagonal, state->alpha, (size_t)n * sizeof(double));
  memcpy(state->off, state->beta, (size_t)n * sizeof(double));
  TCX_TRY_LAPACK(state->ctx,
                 LAPACKE_dstevx(LAPACK_COL_MAJOR, 'V', 'I', (lapack_int)n,
                                state->diagonal, state->off, 0.0, 0.0,
                                (lapack_int)index, (lapack_int)index,
                                2.0 * LAPACKE_dlamch('S'), &found, eigenvalue,
                                state->work, (lapack_int)n, failed),
                 "LAPACKE_dstevx (Lanczos tridiagonal matrix)");
  *value = eigenvalue[0];
  *residual = fabs(beta_last * state->work[n - 1]);

cleanup:
  return rc;
}

/* Fills q_0 with the normalised start vector. Collective. */
static int start_vector(lanczos *state, int64_t col_begin)
{
  double norm = 0.0;
  int rc = TCX_OK;

  for (int64_t i = 0; i < state->n_local; i++)
    state->basis[i] =
        tcx_rng_normal(START_SEED, START_STREAM, (uint64_t)(col_begin + i));
  TCX_TRY(global_norm(state, state->basis, &norm));
  for (int64_t i = 0; i < state->n_local; i++)
    state->basis[i] /= norm;

cleanup:
  return rc;
}

/* Runs Lanczos steps until the Ritz value of largest magnitude converges.
 * Collective; every rank takes the same decisions because every tested
 * quantity has been reduced. */
static int iterate(lanczos *state, int64_t n_vars, int64_t max_iter,
                   double tolerance, double *norm, int64_t *steps_taken)
{
  const int64_t max_steps = max_iter < n_vars ? max_iter : n_vars;
  double *coefficients = NULL, *w;
  int rc = TCX_OK;

  for (int64_t j = 0; j < max_steps; j++) {
    double beta = 0.0, low = 0.0, high = 0.0, low_res = 0.0, high_res = 0.0;
    double best, best_res, other, other_res;

    TCX_TRY(reserve(state, j + 2));
    coefficients = state->small + state->m1 + state->m2;
    w = state->basis + (j + 1) * state->n_local;
    TCX_TRY(apply(state, state->basis + j * state->n_local, w));

    /* Two Gram-Schmidt passes against q_0 .. q_j ("twice is enough"); the
     * j-th coefficient summed over both passes is alpha_j. */
    TCX_TRY(orthogonalise(state, j + 1, w, coefficients));
    state->alpha[j] = coefficients[j];
    TCX_TRY(orthogonalise(state, j + 1, w, coefficients));
    state->alpha[j] += coefficients[j];
    TCX_TRY(global_norm(state, w, &beta));
    state->beta[j] = beta;

    TCX_TRY(ritz_pair(state, j + 1, 1, beta, &low, &low_res));
    TCX_TRY(ritz_pair(state, j + 1, j + 1, beta, &high, &high_res));
    best = fabs(high) >= fabs(low) ? fabs(high) : fabs(low);
    best_res = fabs(high) >= fabs(low) ? high_res : low_res;
    other = fabs(high) >= fabs(low) ? fabs(low) : fabs(high);
    other_res = fabs(high) >= fabs(low) ? low_res : high_res;
    *steps_taken = j + 1;
    *norm = best;

    /* An invariant Krylov space (beta ~ 0, including A = 0) gives exact
     * eigenvalues; otherwise the extreme Ritz value must have converged and
     * the other end must not be able to overtake it. */
    if (beta <= 1e-14 * (best > 0.0 ? best : 1.0) || j + 1 == n_vars)
      return TCX_OK;
    if (best_res <= tolerance * best && other + other_res <= best)
      return TCX_OK;
    for (int64_t i = 0; i < state->n_local; i++)
      w[i] /= beta;
  }
  TCX_CHECK(0, state->ctx, TCX_ERR_NUMERIC,
            "the spectral norm did not converge in %lld Lanczos steps "
            "(estimate %.6g); raise the iteration limit or the tolerance "
            "%.3g",
            (long long)max_steps, *norm, tolerance);

cleanup:
  return rc;
}

int tcx_lowrank_diff_spectral(tcx_ctx *ctx, int64_t n_local,
                              int64_t col_begin, int64_t m1, const double *e1,
                              const double *v1, int64_t m2, const double *e2,
                              const double *v2, int64_t max_iter,
                              double tolerance, double *norm,
                              int64_t *iterations)
{
  lanczos state = {0};
  double n_vars = (double)n_local;
  int64_t steps = 0;
  int status = TCX_OK;
  int rc = TCX_OK;

  state.ctx = ctx;
  state.n_local = n_local;
  state.m1 = m1;
  state.m2 = m2;
  state.v1 = v1;
  state.v2 = v2;
  if (m1 < 1 || m2 < 1 || m1 > INT_MAX || m2 > INT_MAX || n_local < 1 ||
      n_local > INT_MAX)
    status = tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid sizes for a spectral norm: m1 = %lld, m2 = "
                       "%lld, %lld local columns; each must be between 1 "
                       "and %d",
                       (long long)m1, (long long)m2, (long long)n_local,
                       INT_MAX);
  else if (max_iter < 1 || !(tolerance > 0.0))
    status = tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid Lanczos settings: iteration limit %lld and "
                       "tolerance %g must both be positive",
                       (long long)max_iter, tolerance);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, n_local, sizeof(double), "diagonal difference",
                        &state.delta);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  TCX_TRY(reserve(&state, 2));

  for (int64_t i = 0; i < n_local; i++)
    state.delta[i] = e1[i] - e2[i];
  TCX_TRY(sum_over_ranks(ctx, &n_vars, 1));
  TCX_TRY(start_vector(&state, col_begin));
  TCX_TRY(iterate(&state, (int64_t)n_vars, max_iter, tolerance, norm,
                  &steps));
  if (iterations)
    *iterations = steps;

cleanup:
  free(state.off);
  free(state.diagonal);
  free(state.work);
  free(state.beta);
  free(state.alpha);
  free(state.small);
  free(state.basis);
  free(state.delta);
  return rc;
}
