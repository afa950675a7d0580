/* Low-rank plus diagonal algebra on column-split matrices. Every sum over the
 * p variables is computed on the local columns and completed by one
 * MPI_Allreduce of m x m, n x m or scalar quantities. Every rank then repeats
 * the small m x m factorisations. */
#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/lowrank.h"

/* Rejects sizes that are empty or do not fit the 32-bit dimensions of BLAS
 * and LAPACK. Local. */
static int check_sizes(tcx_ctx *ctx, int64_t m, int64_t n_local)
{
  if (m < 1 || m > INT_MAX)
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid number of factors m = %lld: it must be between "
                     "1 and %d",
                     (long long)m, INT_MAX);
  if (n_local < 1 || n_local > INT_MAX)
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid number of local columns %lld: every rank needs "
                     "between 1 and %d columns; use at most as many ranks as "
                     "variables",
                     (long long)n_local, INT_MAX);
  return TCX_OK;
}

/* Checks that every diagonal entry is positive and finite. Local. */
static int check_diagonal(tcx_ctx *ctx, int64_t n_local, const double *d)
{
  for (int64_t i = 0; i < n_local; i++) {
    if (!(d[i] > 0.0) || !isfinite(d[i]))
      return tcx_error(ctx, TCX_ERR_NUMERIC,
                       "diagonal entry d = %g of local column %lld is not "
                       "positive and finite, so diag(d) + L^T L is not a "
                       "valid covariance; check the model that produced d",
                       d[i], (long long)i);
  }
  return TCX_OK;
}

/* Sums count doubles over all ranks in place. Collective. */
static int allreduce_sum(tcx_ctx *ctx, double *buffer, int64_t count)
{
  int rc = TCX_OK;

  TCX_CHECK(count <= INT_MAX, ctx, TCX_ERR_UNSUPPORTED,
            "cannot reduce %lld doubles in one MPI_Allreduce (limit %d); "
            "score fewer rows at a time",
            (long long)count, INT_MAX);
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_DOUBLE,
                                 MPI_SUM, tcx_ctx_comm(ctx)));

cleanup:
  return rc;
}

/* scaled = L diag(1 / d), shape [m, n_local]. */
static void scale_columns(int64_t m, int64_t n_local, const double *l,
                          const double *d, double *scaled)
{
  for (int64_t j = 0; j < m; j++) {
    for (int64_t i = 0; i < n_local; i++)
      scaled[j * n_local + i] = l[j * n_local + i] / d[i];
  }
}

/* inner = this rank's part of L diag(1 / d) L^T, shape [m, m]. */
static void inner_local(int64_t m, int64_t n_local, const double *scaled,
                        const double *l, double *inner)
{
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
              (int)n_local, 1.0, scaled, (int)n_local, l, (int)n_local, 0.0,
              inner, (int)m);
}

/* Turns the reduced L diag(1 / d) L^T into its Cholesky factor K (lower
 * triangle, row-major) of M = I + L diag(1 / d) L^T. */
static int factor_inner(tcx_ctx *ctx, int64_t m, double *inner)
{
  int rc = TCX_OK;

  for (int64_t j = 0; j < m; j++)
    inner[j * m + j] += 1.0;
  TCX_TRY_LAPACK(ctx,
                 LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (int)m, inner, (int)m),
                 "LAPACKE_dpotrf (I + L diag(1/d) L^T)");

cleanup:
  return rc;
}

int tcx_lowrank_from_factors(tcx_ctx *ctx, int64_t m, int64_t n_local,
                             const double *factors, const double *std,
                             double *l, double *d)
{
  int rc = TCX_OK;

  TCX_TRY(check_sizes(ctx, m, n_local));
  for (int64_t i = 0; i < n_local; i++) {
    double norm2 = 0.0;

    for (int64_t j = 0; j < m; j++) {
      const double f = factors[j * n_local + i];

      norm2 += f * f;
      l[j * n_local + i] = f * std[i];
    }
    d[i] = std[i] * std[i] * (1.0 - norm2);
    TCX_CHECK(d[i] > 0.0 && isfinite(d[i]), ctx, TCX_ERR_NUMERIC,
              "local column %lld has squared factor norm %.17g and standard "
              "deviation %g, so its noise variance std^2 (1 - norm^2) = %g "
              "is not positive; the model is degenerate for this variable",
              (long long)i, norm2, std[i], d[i]);
  }

cleanup:
  return rc;
}

/* Local sums for the NLL, laid out in one buffer for a single reduction:
 * inner [m, m] = L diag(1/d) L^T, a [n_rows, m] = (x / d) L^T,
 * rowsum [n_rows] = sum_i x_ri^2 / d_i, then sum_i log d_i and n_local. */
static int nll_local_sums(tcx_ctx *ctx, int64_t m, int64_t n_local,
                          const double *l, const double *d, int64_t n_rows,
                          const double *x, double *scaled, double *buffer)
{
  double *inner = buffer;
  double *a = inner + m * m;
  double *rowsum = a + n_rows * m;
  double *scalars = rowsum + n_rows;
  double sum_log_d = 0.0;

  scale_columns(m, n_local, l, d, scaled);
  inner_local(m, n_local, scaled, l, inner);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_rows, (int)m,
              (int)n_local, 1.0, x, (int)n_local, scaled, (int)n_local, 0.0, a,
              (int)m);
  for (int64_t r = 0; r < n_rows; r++) {
    const double *row = x + r * n_local;
    double sum = 0.0;

    for (int64_t i = 0; i < n_local; i++)
      sum += row[i] * row[i] / d[i];
    if (!isfinite(sum))
      return tcx_error(ctx, TCX_ERR_NUMERIC,
                       "row %lld of the scored data contains a NaN or "
                       "infinite value; impute or drop missing values "
                       "before computing the likelihood",
                       (long long)r);
    rowsum[r] = sum;
  }
  for (int64_t i = 0; i < n_local; i++)
    sum_log_d += log(d[i]);
  scalars[0] = sum_log_d;
  scalars[1] = (double)n_local;
  return TCX_OK;
}

int tcx_lowrank_nll(tcx_ctx *ctx, int64_t m, int64_t n_local, const double *l,
                    const double *d, int64_t n_rows, const double *x,
                    double *nll)
{
  const double log_two_pi = log(2.0 * M_PI);
  double *scaled = NULL;
  double *buffer = NULL;
  int64_t count = 0;
  int status;
  int rc = TCX_OK;

  status = check_sizes(ctx, m, n_local);
  if (status == TCX_OK && (n_rows < 1 || n_rows > INT_MAX))
    status = tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid number of rows to score: %lld; pass between "
                       "1 and %d rows",
                       (long long)n_rows, INT_MAX);
  if (status == TCX_OK)
    status = check_diagonal(ctx, n_local, d);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, m * n_local, sizeof(double),
                        "scaled low-rank factors", &scaled);
  if (status == TCX_OK) {
    count = m * m + n_rows * m + n_rows + 2;
    status = tcx_calloc(ctx, count, sizeof(double), "likelihood sums",
                        &buffer);
  }
  if (status == TCX_OK)
    status = nll_local_sums(ctx, m, n_local, l, d, n_rows, x, scaled, buffer);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  TCX_TRY(allreduce_sum(ctx, buffer, count));

  {
    double *inner = buffer;
    double *a = inner + m * m;
    const double *rowsum = a + n_rows * m;
    const double sum_log_d = rowsum[n_rows];
    const double n_vars = rowsum[n_rows + 1];
    double log_det = sum_log_d;
    double quad_sum = 0.0;

    /* log det Sigma = sum_i log d_i + log det M, with M = K K^T. */
    TCX_TRY(factor_inner(ctx, m, inner));
    for (int64_t j = 0; j < m; j++)
      log_det += 2.0 * log(inner[j * m + j]);

    /* Row r of a becomes z_r = a_r K^{-T}, so that ||z_r||^2 is the
     * Woodbury correction a_r M^{-1} a_r^T. */
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans,
                CblasNonUnit, (int)n_rows, (int)m, 1.0, inner, (int)m, a,
                (int)m);
    for (int64_t r = 0; r < n_rows; r++) {
      double correction = 0.0;

      for (int64_t j = 0; j < m; j++)
        correction += a[r * m + j] * a[r * m + j];
      quad_sum += rowsum[r] - correction;
    }
    *nll = 0.5 * (n_vars * log_two_pi + log_det + quad_sum / (double)n_rows);
  }

cleanup:
  free(buffer);
  free(scaled);
  return rc;
}

int tcx_lowrank_precision(tcx_ctx *ctx, int64_t m, int64_t n_local,
                          const double *l, const double *d, double *e,
                          double *v)
{
  double *inner = NULL;
  int status;
  int rc = TCX_OK;

  status = check_sizes(ctx, m, n_local);
  if (status == TCX_OK)
    status = check_diagonal(ctx, n_local, d);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, m * m, sizeof(double), "precision inner matrix",
                        &inner);
  TCX_TRY(tcx_ctx_agree(ctx, status));

  /* v contains L diag(1/d) until the triangular solve turns it into V. */
  scale_columns(m, n_local, l, d, v);
  inner_local(m, n_local, v, l, inner);
  TCX_TRY(allreduce_sum(ctx, inner, m * m));
  TCX_TRY(factor_inner(ctx, m, inner));
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans,
              CblasNonUnit, (int)m, (int)n_local, 1.0, inner, (int)m, v,
              (int)n_local);
  for (int64_t i = 0; i < n_local; i++)
    e[i] = 1.0 / d[i];

cleanup:
  free(inner);
  return rc;
}

/* Reduced quantities shared by the Frobenius and row norms of
 * A_1 - A_2 = diag(delta) - V1^T V1 + V2^T V2, in one buffer:
 * g11 [m1, m1] = V1 V1^T, g22 [m2, m2] = V2 V2^T, g12 [m1, m2] = V1 V2^T,
 * then ||delta||^2 and <delta, nu2 - nu1>. */
typedef struct diff_sums {
  double *buffer;
  double *g11;
  double *g22;
  double *g12;
  double *scalars;
  int64_t count;
  double *nu1; /* [n_local], local column sums of V1 squared */
  double *nu2; /* [n_local], the same for V2 */
} diff_sums;

/* nu[i] = sum_j v[j, i]^2 for v of shape [m, n_local]. */
static void column_square_sums(int64_t m, int64_t n_local, const double *v,
                               double *nu)
{
  memset(nu, 0, (size_t)n_local * sizeof(double));
  for (int64_t j = 0; j < m; j++) {
    const double *row = v + j * n_local;

    for (int64_t i = 0; i < n_local; i++)
      nu[i] += row[i] * row[i];
  }
}

static void diff_sums_free(diff_sums *sums)
{
  free(sums->buffer);
  free(sums->nu1);
  free(sums->nu2);
  memset(sums, 0, sizeof(*sums));
}

static int diff_sums_create(tcx_ctx *ctx, int64_t n_local, int64_t m1,
                            const double *e1, const double *v1, int64_t m2,
                            const double *e2, const double *v2,
                            diff_sums *sums)
{
  double delta_norm2 = 0.0;
  double delta_dot_nu = 0.0;
  int status;
  int rc = TCX_OK;

  memset(sums, 0, sizeof(*sums));
  status = check_sizes(ctx, m1, n_local);
  if (status == TCX_OK)
    status = check_sizes(ctx, m2, n_local);
  if (status == TCX_OK) {
    sums->count = m1 * m1 + m2 * m2 + m1 * m2 + 2;
    status = tcx_calloc(ctx, sums->count, sizeof(double),
                        "Gram matrices of the difference", &sums->buffer);
  }
  if (status == TCX_OK)
    status = tcx_calloc(ctx, n_local, sizeof(double), "column sums",
                        &sums->nu1);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, n_local, sizeof(double), "column sums",
                        &sums->nu2);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  sums->g11 = sums->buffer;
  sums->g22 = sums->g11 + m1 * m1;
  sums->g12 = sums->g22 + m2 * m2;
  sums->scalars = sums->g12 + m1 * m2;

  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m1, (int)m1,
              (int)n_local, 1.0, v1, (int)n_local, v1, (int)n_local, 0.0,
              sums->g11, (int)m1);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m2, (int)m2,
              (int)n_local, 1.0, v2, (int)n_local, v2, (int)n_local, 0.0,
              sums->g22, (int)m2);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m1, (int)m2,
              (int)n_local, 1.0, v1, (int)n_local, v2, (int)n_local, 0.0,
              sums->g12, (int)m2);
  /* nu_k = column sums of V_k squared, accumulated row by row of V_k so
   * that the loops run along contiguous memory. */
  column_square_sums(m1, n_local, v1, sums->nu1);
  column_square_sums(m2, n_local, v2, sums->nu2);
  for (int64_t i = 0; i < n_local; i++) {
    const double delta = e1[i] - e2[i];

    delta_norm2 += delta * delta;
    delta_dot_nu += delta * (sums->nu2[i] - sums->nu1[i]);
  }
  sums->scalars[0] = delta_norm2;
  sums->scalars[1] = delta_dot_nu;
  TCX_TRY(allreduce_sum(ctx, sums->buffer, sums->count));

cleanup:
  return rc;
}

static double frobenius_norm2(int64_t rows, int64_t cols, const double *a)
{
  double sum = 0.0;

  for (int64_t k = 0; k < rows * cols; k++)
    sum += a[k] * a[k];
  return sum;
}

int tcx_lowrank_diff_frobenius(tcx_ctx *ctx, int64_t n_local, int64_t m1,
                               const double *e1, const double *v1, int64_t m2,
                               const double *e2, const double *v2,
                               double *norm)
{
  diff_sums sums = {0};
  int rc = TCX_OK;

  TCX_TRY(diff_sums_create(ctx, n_local, m1, e1, v1, m2, e2, v2, &sums));

  /* ||d||^2 + 2 <d, nu2 - nu1> + ||V1 V1^T||^2 - 2 ||V1 V2^T||^2
   * + ||V2 V2^T||^2, clipped at 0 against rounding. */
  {
    const double norm2 = sums.scalars[0] + 2.0 * sums.scalars[1] +
                         frobenius_norm2(m1, m1, sums.g11) -
                         2.0 * frobenius_norm2(m1, m2, sums.g12) +
                         frobenius_norm2(m2, m2, sums.g22);

    *norm = norm2 > 0.0 ? sqrt(norm2) : 0.0;
  }

cleanup:
  diff_sums_free(&sums);
  return rc;
}

int tcx_lowrank_diff_row_norms(tcx_ctx *ctx, int64_t n_local, int64_t m1,
                               const double *e1, const double *v1, int64_t m2,
                               const double *e2, const double *v2,
                               double *row_norms)
{
  diff_sums sums = {0};
  double *p1 = NULL;
  double *p2 = NULL;
  int status;
  int rc = TCX_OK;

  TCX_TRY(diff_sums_create(ctx, n_local, m1, e1, v1, m2, e2, v2, &sums));
  status = tcx_calloc(ctx, m1 * n_local, sizeof(double), "row-norm work",
                      &p1);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, m2 * n_local, sizeof(double), "row-norm work",
                        &p2);
  TCX_TRY(tcx_ctx_agree(ctx, status));

  /* p1 = (V1 V1^T) V1 - 2 (V1 V2^T) V2 and p2 = (V2 V2^T) V2, so that the
   * three quadratic terms of row i are v1_i . p1_i + v2_i . p2_i. */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m1,
              (int)n_local, (int)m1, 1.0, sums.g11, (int)m1, v1, (int)n_local,
              0.0, p1, (int)n_local);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m1,
              (int)n_local, (int)m2, -2.0, sums.g12, (int)m2, v2,
              (int)n_local, 1.0, p1, (int)n_local);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m2,
              (int)n_local, (int)m2, 1.0, sums.g22, (int)m2, v2, (int)n_local,
              0.0, p2, (int)n_local);
  /* row_norms first contains the quadratic terms v1_i . p1_i + v2_i . p2_i,
   * accumulated along contiguous rows. */
  memset(row_norms, 0, (size_t)n_local * sizeof(double));
  for (int64_t j = 0; j < m1; j++)
    for (int64_t i = 0; i < n_local; i++)
      row_norms[i] += v1[j * n_local + i] * p1[j * n_local + i];
  for (int64_t j = 0; j < m2; j++)
    for (int64_t i = 0; i < n_local; i++)
      row_norms[i] += v2[j * n_local + i] * p2[j * n_local + i];
  for (int64_t i = 0; i < n_local; i++) {
    const double delta = e1[i] - e2[i];
    const double norm2 = delta * delta +
                         2.0 * delta * (sums.nu2[i] - sums.nu1[i]) +
                         row_norms[i];

    row_norms[i] = norm2 > 0.0 ? sqrt(norm2) : 0.0;
  }

cleanup:
  free(p2);
  free(p1);
  diff_sums_free(&sums);
  return rc;
}
