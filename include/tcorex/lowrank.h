/* Low-rank plus diagonal covariance algebra, Sigma = diag(d) + L^T L with L
 * of size m x p split over ranks in column blocks. Nothing p x p is formed.
 * Collective on the context's communicator. */
#ifndef TCOREX_LOWRANK_H
#define TCOREX_LOWRANK_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the covariance in original units from a model's factors F
 * ([m, n_local]) and standard deviations: L = F diag(std), d_i = std_i^2 (1 -
 * ||F_:i||^2). Local. Fails with TCX_ERR_NUMERIC when some d_i <= 0. */
int tcx_lowrank_from_factors(tcx_ctx *ctx, int64_t m, int64_t n_local,
                             const double *factors, const double *std,
                             double *l, double *d);

/* Computes the mean Gaussian negative log-likelihood per row of x (n_rows x
 * n_local row-major, already centred) under N(0, diag(d) + L^T L), with the
 * Woodbury identity and the matrix determinant lemma: O(n p m + p m^2). */
int tcx_lowrank_nll(tcx_ctx *ctx, int64_t m, int64_t n_local, const double *l,
                    const double *d, int64_t n_rows, const double *x,
                    double *nll);

#ifdef __cplusplus
}
#endif

#endif
