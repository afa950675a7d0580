/* Linear CorEx (Ver Steeg et al., NeurIPS 2019): the quasi-Newton,
 * non-synergistic update with analytic annealing noise, distributed over
 * column blocks. Collective on the context's communicator. */
#ifndef TCOREX_COREX_H
#define TCOREX_COREX_H

#include "tcorex/checkpoint.h"
#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tcx_corex_options {
  int64_t n_factors; /* m >= 1 */
  uint64_t seed;     /* initial weights, drawn per global column */
  int64_t max_iter;  /* per annealing stage */
  double tol;        /* stop a stage when |TC change| < tol */
  int anneal;        /* nonzero: eps = 0.6^k, k = 1..6, then 0 */
  tcx_checkpoint *checkpoint; /* NULL, or checkpoints and stop requests
                                 (borrowed, see tcorex/checkpoint.h) */
  int quiet_max_iter; /* nonzero: a stage that reaches max_iter is logged
                         at TCX_LOG_DEBUG, not as a warning (a start that
                         need not converge, such as T-CorEx's) */
} tcx_corex_options;

/* Sets the published defaults: 10 factors, max_iter 10000, tol 1e-5, anneal
 * on, seed 0, no checkpoint, a warning for a stage that reaches max_iter. */
void tcx_corex_options_default(tcx_corex_options *options);

/* Result of a fit, in this rank's columns (row-major [m, n_local]). Factors
 * are ordered by decreasing tcs. */
typedef struct tcx_corex_result {
  int64_t n_factors;
  int64_t n_local;
  double *u;         /* U: normalised weights, rows w_j / sqrt(E z_j^2) */
  double *weights;   /* W = U / sqrt(1 - u_j): unit latent noise */
  double *factors;   /* F = rho~ / (1 + S): correlation = F^T F, diag 1 */
  double *mi;        /* MI_ji = -1/2 log(1 - rho_ji^2) */
  int32_t *clusters; /* argmax_j |U_ji| (0-based factor index) */
  double *tcs;       /* [m], replicated */
  double tc;         /* final objective (TC lower bound, maximised) */
  double *history;   /* TC after every iteration, all stages, replicated */
  int64_t n_history;
  int64_t iterations; /* total over stages */
  int64_t trials;     /* line-search trials that evaluated TC, total */
  int converged;      /* every stage ended before max_iter: its TC change
                         fell below tol, or no step was possible */
} tcx_corex_result;

/* Fits linear CorEx to this rank's standardised columns x (n_rows x n_local,
 * row-major, no missing values), global columns col_begin .. col_begin +
 * n_local - 1 of n_vars. Per iteration only reductions of n x m, m x m, m or
 * scalar size cross ranks. Logs a start line, an end line and in between at
 * most one progress line per second at TCX_LOG_PROGRESS. With
 * options->checkpoint set, writes checkpoints and resumes as that object is
 * set up to, and returns TCX_ERR_INTERRUPTED when it stops the fit. Returns
 * TCX_ERR_NUMERIC when the fit breaks down. The caller frees the result
 * with tcx_corex_result_free(), also after a failure. */
int tcx_corex_fit(tcx_ctx *ctx, const tcx_corex_options *options,
                  const double *x, int64_t n_rows, int64_t n_local,
                  int64_t col_begin, int64_t n_vars, tcx_corex_result *result);

/* Frees the arrays of result and zeroes it. Accepts NULL. */
void tcx_corex_result_free(tcx_corex_result *result);

#ifdef __cplusplus
}
#endif

#endif
