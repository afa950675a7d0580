/* Low-rank plus diagonal covariance algebra, Sigma = diag(d) + L^T L with L
 * of size m x p split over ranks in column blocks. Nothing p x p is formed.
 *
 * Every array is this rank's columns only: a p-vector is its n_local entries
 * and an m x p matrix is m x n_local, row-major (l[j * n_local + i] is factor
 * j of local column i). The collective functions exchange only m x m, n x m
 * and scalar sums, so their results do not depend on the number of ranks
 * beyond rounding. A collective function fails on every rank when any rank
 * detects an error, with that rank's message. */
#ifndef TCOREX_LOWRANK_H
#define TCOREX_LOWRANK_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the covariance in original units from a model's factors F
 * ([m, n_local]) and standard deviations: L = F diag(std), d_i = std_i^2 (1 -
 * ||F_:i||^2). Local. Fails with TCX_ERR_NUMERIC when some d_i <= 0 and
 * with TCX_ERR_USAGE when m < 1 or n_local < 1. */
int tcx_lowrank_from_factors(tcx_ctx *ctx, int64_t m, int64_t n_local,
                             const double *factors, const double *std,
                             double *l, double *d);

/* Computes the mean Gaussian negative log-likelihood per row of x (n_rows x
 * n_local row-major, already centred) under N(0, diag(d) + L^T L), with the
 * Woodbury identity and the matrix determinant lemma: O(n p m + p m^2).
 * The result includes the (p/2) log(2 pi) term and is the same on every rank.
 * Collective. Fails with TCX_ERR_NUMERIC when some d_i <= 0 or x contains a NaN
 * or infinity (impute missing values first), TCX_ERR_USAGE when m < 1,
 * n_local < 1 or n_rows < 1. */
int tcx_lowrank_nll(tcx_ctx *ctx, int64_t m, int64_t n_local, const double *l,
                    const double *d, int64_t n_rows, const double *x,
                    double *nll);

/* Computes the factors of the precision matrix
 *   Sigma^{-1} = diag(e) - V^T V,  e = 1 / d,  V = K^{-1} L diag(1 / d),
 * where K K^T = I + L diag(1 / d) L^T is a Cholesky factorisation. e has
 * n_local entries and v is m x n_local like l. V is unique only up to a left
 * orthogonal factor, so compare V^T V, not V. O(p m^2); collective (one m x m
 * reduction). Fails with TCX_ERR_NUMERIC when some d_i <= 0. */
int tcx_lowrank_precision(tcx_ctx *ctx, int64_t m, int64_t n_local,
                          const double *l, const double *d, double *e,
                          double *v);

/* Computes ||A_1 - A_2||_F for two matrices of the form
 *   A_k = diag(e_k) - V_k^T V_k,  V_k of size m_k x p (m_1 and m_2 may differ),
 * as returned by tcx_lowrank_precision(), in O(p (m_1 + m_2)^2). For two
 * covariances diag(d_k) + F_k^T F_k pass (e_1, v_1, e_2, v_2) = (d_1, F_2,
 * d_2, F_1): the plus signs then come from swapping the factors. Collective
 * (one reduction of m_1^2 + m_2^2 + m_1 m_2 + 2 doubles); *norm is the same on
 * every rank. Fails with TCX_ERR_USAGE when m_1 < 1, m_2 < 1 or n_local < 1.
 * NOTE: the squared norm is a difference of terms of size ||V_k^T V_k||_F^2,
 * so its absolute error is about 1e-16 times those; when A_1 and A_2 are
 * nearly equal the relative error of the result grows accordingly. */
int tcx_lowrank_diff_frobenius(tcx_ctx *ctx, int64_t n_local, int64_t m1,
                               const double *e1, const double *v1, int64_t m2,
                               const double *e2, const double *v2,
                               double *norm);

/* Computes the Euclidean norm of each local row of A_1 - A_2, with the
 * matrices and argument roles of tcx_lowrank_diff_frobenius(). row_norms[i]
 * is the norm of the row of local column i, and the squared norms summed over
 * all ranks equal the squared Frobenius norm. Row i is
 *   ||row_i||^2 = delta_i^2 + 2 delta_i (nu2_i - nu1_i) + v1_i^T (V1 V1^T) v1_i
 *                 - 2 v1_i^T (V1 V2^T) v2_i + v2_i^T (V2 V2^T) v2_i,
 * with delta = e_1 - e_2, nu_k = column sums of V_k squared and v_k_i column
 * i of V_k. Negative rounding results are clipped to 0. O(p (m_1 + m_2)^2);
 * collective (the Gram matrices are reduced, the rest is local). */
int tcx_lowrank_diff_row_norms(tcx_ctx *ctx, int64_t n_local, int64_t m1,
                               const double *e1, const double *v1, int64_t m2,
                               const double *e2, const double *v2,
                               double *row_norms);

/* Default stopping rule of tcx_lowrank_diff_spectral(): the Lanczos
 * residual of the largest Ritz value in magnitude, relative to that value,
 * and the maximum number of Lanczos steps. The eigenvalue error is at most
 * the residual and usually close to its square. */
#define TCX_LOWRANK_SPECTRAL_TOLERANCE 1e-8
#define TCX_LOWRANK_SPECTRAL_MAX_ITER 300

/* Computes the spectral norm ||A_1 - A_2||_2 = max |lambda| of the symmetric
 * difference, with the matrices and argument roles of
 * tcx_lowrank_diff_frobenius(), by the Lanczos method with full
 * reorthogonalisation on the mat-vec
 *   x -> delta o x - V1^T (V1 x) + V2^T (V2 x),   O(p (m_1 + m_2)) per step.
 * col_begin is the global index of the first local column: the start vector
 * is a fixed pseudo-random vector of the global index, so the result does not
 * depend on the number of ranks beyond rounding. Stops when the residual of
 * the Ritz value of largest magnitude is at most tolerance times that value,
 * or when the Krylov space is invariant. The Lanczos basis takes up to
 * (max_iter + 1) n_local doubles. Collective (m_1 + m_2 and up to max_iter
 * + 2 doubles reduced per step); *norm and *iterations (may be NULL) are the
 * same on every rank. Fails with TCX_ERR_NUMERIC when max_iter steps do not
 * reach the tolerance, TCX_ERR_USAGE on invalid sizes, max_iter < 1 or
 * tolerance <= 0. */
int tcx_lowrank_diff_spectral(tcx_ctx *ctx, int64_t n_local,
                              int64_t col_begin, int64_t m1, const double *e1,
                              const double *v1, int64_t m2, const double *e2,
                              const double *v2, int64_t max_iter,
                              double tolerance, double *norm,
                              int64_t *iterations);

#ifdef __cplusplus
}
#endif

#endif
