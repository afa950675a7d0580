/* Products, estimators and the Gaussian likelihood on block-cyclic
 * matrices: PDGEMM for L^T L and X^T X / n, closed-form shrinkage, and
 * PDPOTRF with PDTRSM for the held-out NLL. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "dense_internal.h"

/* Rejects a matrix that is not p x p, or input columns that do not fit
 * 32-bit ScaLAPACK sizes. Local. */
static int check_square(tcx_ctx *ctx, const tcx_dense *a, int64_t k,
                        const char *what)
{
  if (a->n_rows != a->n_cols)
    return tcx_error(ctx, TCX_ERR_INTERNAL,
                     "%s needs a square matrix, got %lld x %lld", what,
                     (long long)a->n_rows, (long long)a->n_cols);
  if (k < 1 || k > INT_MAX)
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid inner dimension %lld for %s: it must lie in "
                     "[1, %d]",
                     (long long)k, what, INT_MAX);
  return TCX_OK;
}

/* Fails on a NaN or infinite entry of count values. Local. */
static int check_finite(tcx_ctx *ctx, const double *x, int64_t n_rows,
                        int64_t n_local)
{
  for (int64_t r = 0; r < n_rows; r++)
    for (int64_t j = 0; j < n_local; j++)
      if (!isfinite(x[r * n_local + j]))
        return tcx_error(ctx, TCX_ERR_NUMERIC,
                         "row %lld, local column %lld of the data is %g; "
                         "dense estimates need complete data, so impute or "
                         "drop missing values first",
                         (long long)r, (long long)j, x[r * n_local + j]);
  return TCX_OK;
}

/* Sets c = alpha B B^T with one PDGEMM, where B is p x k. */
static void dense_gram(double alpha, const tcx_dense *b, tcx_dense *c)
{
  const int p = (int)c->n_rows, k = (int)b->n_cols, one = 1;
  const double zero = 0.0;

  pdgemm_("N", "T", &p, &p, &k, &alpha, b->local, &one, &one, b->desc,
          b->local, &one, &one, b->desc, &zero, c->local, &one, &one,
          c->desc);
}

/* Moves the column-split rows into a new p x k block-cyclic matrix. */
static int scatter_new(tcx_ctx *ctx, const tcx_dense *like, int64_t k,
                       int64_t n_local, const double *local, tcx_dense **b)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_dense_create(ctx, like->grid, like->n_rows, k, b));
  TCX_TRY(tcx_dense_scatter_rows(ctx, n_local, local, *b));

cleanup:
  if (rc != TCX_OK)
    tcx_dense_destroy(b);
  return rc;
}

int tcx_dense_from_lowrank(tcx_ctx *ctx, int64_t m, int64_t n_local,
                           const double *l, const double *d, double sign,
                           tcx_dense *a)
{
  tcx_dense *lt = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, check_square(ctx, a, m, "the low-rank "
                                                      "product")));
  /* l is m x n_local row-major, which is the n_local x m column-major
   * block of L^T. */
  TCX_TRY(scatter_new(ctx, a, m, n_local, l, &lt));
  dense_gram(sign, lt, a);
  TCX_TRY(tcx_dense_add_diagonal(ctx, n_local, d, a));

cleanup:
  tcx_dense_destroy(&lt);
  return rc;
}

int tcx_dense_sample_covariance(tcx_ctx *ctx, int64_t n_rows,
                                int64_t n_local, const double *x,
                                tcx_dense *a)
{
  tcx_dense *xt = NULL;
  int rc = check_square(ctx, a, n_rows, "the sample covariance");

  if (rc == TCX_OK)
    rc = check_finite(ctx, x, n_rows, n_local);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  /* x is n_rows x n_local row-major: the n_local x n_rows column-major
   * block of X^T. */
  TCX_TRY(scatter_new(ctx, a, n_rows, n_local, x, &xt));
  dense_gram(1.0 / (double)n_rows, xt, a);

cleanup:
  tcx_dense_destroy(&xt);
  return rc;
}

/* Returns the offset in a->local of the diagonal entry in local column
 * local_col, or -1 when this rank does not store it. */
static int64_t diagonal_offset(const tcx_dense *a, int64_t local_col)
{
  const int64_t g = tcx_dense_global_col(a, local_col);

  if (tcx_dense_owner(g, a->block_size, a->grid->n_prow) != a->grid->my_row)
    return -1;
  return local_col * a->leading_dim +
         tcx_dense_local_index(g, a->block_size, a->grid->n_prow);
}

int tcx_dense_trace_frobenius(tcx_ctx *ctx, const tcx_dense *a,
                              double *trace, double *frobenius2)
{
  double sums[2] = {0.0, 0.0};
  int rc = TCX_OK;

  for (int64_t lc = 0; lc < a->local_cols; lc++)
    for (int64_t lr = 0; lr < a->local_rows; lr++) {
      const double value = a->local[lc * a->leading_dim + lr];

      sums[1] += value * value;
    }
  for (int64_t lc = 0; lc < a->local_cols; lc++)
    if (diagonal_offset(a, lc) >= 0)
      sums[0] += a->local[diagonal_offset(a, lc)];
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM,
                                 tcx_ctx_comm(ctx)));
  if (trace)
    *trace = sums[0];
  if (frobenius2)
    *frobenius2 = sums[1];

cleanup:
  return rc;
}

void tcx_dense_shrink(tcx_dense *a, double rho, double mu)
{
  for (int64_t lc = 0; lc < a->local_cols; lc++)
    for (int64_t lr = 0; lr < a->local_rows; lr++)
      a->local[lc * a->leading_dim + lr] *= 1.0 - rho;
  for (int64_t lc = 0; lc < a->local_cols; lc++)
    if (diagonal_offset(a, lc) >= 0)
      a->local[diagonal_offset(a, lc)] += rho * mu;
}

/* Computes sum_k ||x_k||^4 over the rows of the centred data. One
 * reduction of n_rows doubles. */
static int sum_row_norms4(tcx_ctx *ctx, int64_t n_rows, int64_t n_local,
                          const double *x, double *sum)
{
  double *norms = NULL;
  int rc = TCX_OK;

  TCX_CHECK(n_rows <= INT_MAX, ctx, TCX_ERR_UNSUPPORTED,
            "cannot reduce the norms of %lld rows in one MPI_Allreduce "
            "(limit %d); split the data into shorter periods",
            (long long)n_rows, INT_MAX);
  TCX_TRY(tcx_calloc(ctx, n_rows, sizeof(double), "row norms", &norms));
  for (int64_t r = 0; r < n_rows; r++)
    for (int64_t j = 0; j < n_local; j++)
      norms[r] += x[r * n_local + j] * x[r * n_local + j];
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, norms, (int)n_rows,
                                 MPI_DOUBLE, MPI_SUM, tcx_ctx_comm(ctx)));
  *sum = 0.0;
  for (int64_t r = 0; r < n_rows; r++)
    *sum += norms[r] * norms[r];

cleanup:
  free(norms);
  return rc;
}

int tcx_dense_shrinkage(tcx_ctx *ctx, tcx_shrinkage_method method,
                        int64_t n_rows, int64_t n_local, const double *x,
                        const tcx_dense *s, double *rho, double *mu)
{
  const double p = (double)s->n_rows, n = (double)n_rows;
  double trace = 0.0, trace_s2 = 0.0, row_norms4 = 0.0;
  int rc = TCX_OK;

  /* S is symmetric, so tr(S^2) = ||S||_F^2. */
  TCX_TRY(tcx_dense_trace_frobenius(ctx, s, &trace, &trace_s2));
  *mu = trace / p;
  if (method == TCX_SHRINKAGE_LEDOIT_WOLF) {
    /* With <A, B> = tr(A B^T) / p: d^2 = ||S - mu I||^2 and
     * (1/n^2) sum_k ||x_k x_k^T - S||^2 = (sum_k ||x_k||^4 - n tr(S^2))
     * / (p n^2), because sum_k x_k^T S x_k = n tr(S^2). */
    const double d2 = (trace_s2 - trace * trace / p) / p;
    double b2;

    TCX_TRY(sum_row_norms4(ctx, n_rows, n_local, x, &row_norms4));
    b2 = (row_norms4 - n * trace_s2) / (p * n * n);
    b2 = fmin(fmax(b2, 0.0), d2);
    *rho = d2 > 0.0 ? b2 / d2 : 0.0;
  } else {
    const double numerator = (1.0 - 2.0 / p) * trace_s2 + trace * trace;
    const double denominator =
        (n + 1.0 - 2.0 / p) * (trace_s2 - trace * trace / p);

    *rho = denominator > 0.0 ? fmin(1.0, numerator / denominator) : 1.0;
  }

cleanup:
  return rc;
}

/* Factorises a = L L^T in place and returns log det a = 2 sum log L_gg,
 * the same on every rank. */
static int dense_cholesky(tcx_ctx *ctx, tcx_dense *a, double *log_det)
{
  const int p = (int)a->n_rows, one = 1;
  int info = 0;
  int rc = TCX_OK;

  pdpotrf_("L", &p, a->local, &one, &one, a->desc, &info, 1);
  if (info < 0)
    rc = tcx_error(ctx, TCX_ERR_INTERNAL,
                   "PDPOTRF rejected argument %d (info = %d); this is a bug "
                   "in tcorex, please report it",
                   -info, info);
  else if (info > 0)
    rc = tcx_error(ctx, TCX_ERR_NUMERIC,
                   "PDPOTRF failed with info = %d: the %d x %d covariance is "
                   "not positive definite (its leading minor of order %d is "
                   "not). A sample covariance from fewer samples than "
                   "variables is singular; use a shrinkage estimate such as "
                   "--method ledoit-wolf",
                   info, p, p, info);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  *log_det = 0.0;
  for (int64_t lc = 0; lc < a->local_cols; lc++)
    if (diagonal_offset(a, lc) >= 0)
      *log_det += 2.0 * log(a->local[diagonal_offset(a, lc)]);
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, log_det, 1, MPI_DOUBLE,
                                 MPI_SUM, tcx_ctx_comm(ctx)));

cleanup:
  return rc;
}

int tcx_dense_nll(tcx_ctx *ctx, tcx_dense *a, int64_t n_rows,
                  int64_t n_local, const double *x, double *nll)
{
  const double pi = 3.14159265358979323846;
  tcx_dense *z = NULL;
  double log_det = 0.0, quadratic = 0.0;
  int rc = check_square(ctx, a, n_rows, "the Gaussian NLL");

  if (rc == TCX_OK)
    rc = check_finite(ctx, x, n_rows, n_local);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(dense_cholesky(ctx, a, &log_det));

  /* Z = L^{-1} X^T (p x n): quad_n = ||Z_:n||^2 = x_n^T Sigma^{-1} x_n. */
  TCX_TRY(scatter_new(ctx, a, n_rows, n_local, x, &z));
  {
    const int p = (int)a->n_rows, n = (int)n_rows, one = 1;
    const double alpha = 1.0;

    pdtrsm_("L", "L", "N", "N", &p, &n, &alpha, a->local, &one, &one,
            a->desc, z->local, &one, &one, z->desc);
  }
  for (int64_t lc = 0; lc < z->local_cols; lc++)
    for (int64_t lr = 0; lr < z->local_rows; lr++) {
      const double value = z->local[lc * z->leading_dim + lr];

      quadratic += value * value;
    }
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &quadratic, 1, MPI_DOUBLE,
                                 MPI_SUM, tcx_ctx_comm(ctx)));
  *nll = 0.5 * ((double)a->n_rows * log(2.0 * pi) + log_det +
                quadratic / (double)n_rows);

cleanup:
  tcx_dense_destroy(&z);
  return rc;
}
