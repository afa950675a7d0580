/* Dense matrices distributed over a 2-D BLACS process grid in ScaLAPACK's
 * block-cyclic layout, for the products that need the whole p x p matrix:
 * the exported covariance, the standard estimators (sample covariance,
 * Ledoit-Wolf, OAS, diagonal) and their held-out likelihood.
 *
 * A matrix of n_rows x n_cols is cut into block_size x block_size blocks.
 * Block (I, J) lives on grid process (I mod n_prow, J mod n_pcol). Each
 * rank stores its blocks column-major in one local array, so a rank holds
 * about n_rows n_cols / ranks entries. Inputs that come from the rest of
 * tcorex (data rows, low-rank factors, diagonals) are split over ranks by
 * columns as in tcx_partition(). The functions here move them into the
 * block-cyclic layout with one MPI_Alltoallv of their own size (p m or
 * p n entries in all, never p^2). Every function is collective on the
 * context's communicator unless its comment states otherwise, and fails on
 * every rank when any rank detects an error. */
#ifndef TCOREX_DENSE_H
#define TCOREX_DENSE_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default block size of the block-cyclic layout, in rows and columns. 64
 * keeps the local DGEMM and the panel factorisation of PDPOTRF efficient,
 * while p = 1000 on 16 ranks still gives every rank several blocks. */
enum { TCX_DENSE_BLOCK_SIZE = 64 };

/* A BLACS process grid of n_prow x n_pcol ranks over the context's
 * communicator, with one block size for every matrix on it. */
typedef struct tcx_grid tcx_grid;

/* Creates the grid of the context's ranks, as square as the rank count
 * allows: n_prow is the largest divisor of the rank count not above its
 * square root (1 x 1, 1 x 2, 1 x 3, 2 x 2, 2 x 3, ...). block_size must
 * lie in [1, 65536]. The caller frees *grid with tcx_grid_destroy() before
 * the context. */
int tcx_grid_create(tcx_ctx *ctx, int64_t block_size, tcx_grid **grid);

/* Releases the BLACS grid and sets *grid to NULL. Accepts NULL. Collective
 * when *grid is not NULL. */
void tcx_grid_destroy(tcx_grid **grid);

/* Stores the grid shape and this rank's grid coordinates. Not collective. */
void tcx_grid_shape(const tcx_grid *grid, int *n_prow, int *n_pcol,
                    int *my_row, int *my_col);

/* A distributed matrix. local has local_rows x local_cols entries stored
 * column-major with leading dimension leading_dim >= max(1, local_rows);
 * desc is its ScaLAPACK descriptor. The grid is borrowed and must outlive
 * the matrix. */
typedef struct tcx_dense {
  const tcx_grid *grid;
  int64_t n_rows, n_cols;
  int64_t block_size;
  int64_t local_rows, local_cols;
  int64_t leading_dim;
  int desc[9];
  double *local;
} tcx_dense;

/* Allocates a zero n_rows x n_cols matrix on grid. Fails with
 * TCX_ERR_USAGE when a dimension is below 1 or above INT_MAX. The caller
 * frees *matrix with tcx_dense_destroy(). */
int tcx_dense_create(tcx_ctx *ctx, const tcx_grid *grid, int64_t n_rows,
                     int64_t n_cols, tcx_dense **matrix);

/* Frees *matrix and sets it to NULL. Accepts NULL. Not collective. */
void tcx_dense_destroy(tcx_dense **matrix);

/* Returns the global row (column) index of a local row (column) of a.
 * Not collective. */
int64_t tcx_dense_global_row(const tcx_dense *a, int64_t local_row);
int64_t tcx_dense_global_col(const tcx_dense *a, int64_t local_col);

/* Sets the p x p matrix a to diag(d) + sign L^T L, where L is m x p and d
 * has p entries. Both are split by columns as tcx_partition() splits p over
 * the ranks. l is this rank's m x n_local block, row-major (l[j * n_local +
 * i] is row j of local column i) as in tcorex/lowrank.h. sign is +1 for a
 * covariance diag(d) + L^T L and -1 for a precision diag(e) - V^T V from
 * tcx_lowrank_precision(). The product is one PDGEMM of 2 p^2 m flops. */
int tcx_dense_from_lowrank(tcx_ctx *ctx, int64_t m, int64_t n_local,
                           const double *l, const double *d, double sign,
                           tcx_dense *a);

/* Sets the p x p matrix a to the sample covariance X^T X / n_rows of data
 * rows that the caller has already centred: x is this rank's n_rows x
 * n_local column block, row-major, as in tcx_block. One PDGEMM of 2 p^2
 * n_rows flops. Fails with TCX_ERR_NUMERIC when x has a NaN or an
 * infinity. */
int tcx_dense_sample_covariance(tcx_ctx *ctx, int64_t n_rows,
                                int64_t n_local, const double *x,
                                tcx_dense *a);

/* Adds the p entries of d, split by columns as in tcx_partition(), to the
 * diagonal of the p x p matrix a. */
int tcx_dense_add_diagonal(tcx_ctx *ctx, int64_t n_local, const double *d,
                           tcx_dense *a);

/* Computes the trace and the squared Frobenius norm of a square matrix a.
 * Either output may be NULL. The results are the same on every rank. */
int tcx_dense_trace_frobenius(tcx_ctx *ctx, const tcx_dense *a,
                              double *trace, double *frobenius2);

/* Shrinkage estimators of a p x p covariance from n samples. */
typedef enum tcx_shrinkage_method {
  TCX_SHRINKAGE_LEDOIT_WOLF, /* Ledoit and Wolf, J. Multivar. Anal. 2004 */
  TCX_SHRINKAGE_OAS          /* Chen et al., IEEE Trans. Signal Process. 2010 */
} tcx_shrinkage_method;

/* Computes the shrinkage intensity rho in [0, 1] of the estimate
 *   (1 - rho) S + rho mu I,   mu = trace(S) / p,
 * from the sample covariance s (from tcx_dense_sample_covariance()) and,
 * for Ledoit-Wolf, the same centred rows x (n_rows x n_local). With the
 * Frobenius norm scaled by 1/p as in the paper:
 *   Ledoit-Wolf: d^2 = ||S - mu I||^2, b^2 = min(d^2, (1/n^2) sum_k
 *   ||x_k x_k^T - S||^2), rho = b^2 / d^2 (0 when d^2 = 0).
 *   OAS: rho = min(1, ((1 - 2/p) tr(S^2) + tr(S)^2) /
 *   ((n + 1 - 2/p) (tr(S^2) - tr(S)^2 / p))) (1 when the denominator is 0).
 * The OAS form is eq. 23 of Chen et al.; scikit-learn's oas() leaves out
 * both 2/p terms (its documentation says so), so it differs by O(1/p).
 * *mu receives trace(S) / p. */
int tcx_dense_shrinkage(tcx_ctx *ctx, tcx_shrinkage_method method,
                        int64_t n_rows, int64_t n_local, const double *x,
                        const tcx_dense *s, double *rho, double *mu);

/* Replaces the square matrix a by (1 - rho) a + rho mu I. Not collective:
 * every rank scales its own blocks. */
void tcx_dense_shrink(tcx_dense *a, double rho, double mu);

/* Computes the mean Gaussian negative log-likelihood per row of x under
 * N(0, Sigma):
 *   NLL = (1/2) (p log(2 pi) + log det Sigma + mean_n x_n^T Sigma^{-1} x_n),
 * the same definition as tcx_lowrank_nll(). x is this rank's n_rows x
 * n_local column block, row-major, already centred. Sigma is factorised in
 * place by PDPOTRF (a is overwritten by its lower Cholesky factor), and the
 * quadratic forms come from one PDTRSM. Fails with TCX_ERR_NUMERIC when
 * Sigma is not positive definite or x has a NaN or an infinity. */
int tcx_dense_nll(tcx_ctx *ctx, tcx_dense *a, int64_t n_rows,
                  int64_t n_local, const double *x, double *nll);

#ifdef __cplusplus
}
#endif

#endif
