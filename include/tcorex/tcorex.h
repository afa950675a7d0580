/* T-CorEx (Harutyunyan et al., "Efficient Covariance Estimation from Temporal
 * Data", arXiv:1905.13276): one linear CorEx model per time period, fitted
 * jointly with a penalty on the change between consecutive periods. tcorex
 * minimises the closed-form expectation of the published stochastic
 * objective over the annealing and latent noise, so every objective value and
 * gradient is deterministic. Variables are split over ranks in column blocks;
 * per iteration only reductions of size samples x factors cross ranks.
 * Collective on the context's communicator unless stated otherwise. */
#ifndef TCOREX_TCOREX_H
#define TCOREX_TCOREX_H

#include "tcorex/block.h"
#include "tcorex/checkpoint.h"
#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The matrices M_t whose consecutive differences the regulariser penalises. */
typedef enum tcx_tcorex_reg {
  TCX_TCOREX_REG_W = 0, /* the weights W_t (m x p) */
  TCX_TCOREX_REG_MI,    /* MI_t = -1/2 log(1 - R_t^2), elementwise (m x p) */
  TCX_TCOREX_REG_SIGMA  /* normalised covariance F_t^T F_t (p x p); only the
                           l2 term is supported, in O(p m^2) */
} tcx_tcorex_reg;

/* Starting weights W_t. */
typedef enum tcx_tcorex_init {
  TCX_TCOREX_INIT_LINEAR = 0, /* linear CorEx on all periods pooled, the same
                                 weights for every period (published default) */
  TCX_TCOREX_INIT_RANDOM,     /* W_t ~ N(0, 1/p) i.i.d., drawn from seed per
                                 global column, so independent of the ranks */
  TCX_TCOREX_INIT_GIVEN       /* the init_weights argument of tcx_tcorex_fit(),
                                 copied to every period */
} tcx_tcorex_init;

typedef enum tcx_tcorex_optimizer {
  TCX_TCOREX_ADAM = 0, /* published schedule: Adam, state kept across stages */
  TCX_TCOREX_FISTA     /* accelerated proximal gradient with an exact 1-D
                          total-variation prox for the l1 term (reg W only) */
} tcx_tcorex_optimizer;

/* Floating-point type of the four large products per evaluation (the data
 * times the weights, times the cross-moment and gradient factors). Everything
 * else, the reductions included, stays in double precision. */
typedef enum tcx_tcorex_precision {
  TCX_TCOREX_DOUBLE = 0, /* dgemm on the data as given */
  TCX_TCOREX_SINGLE      /* sgemm on float copies of the data and factors */
} tcx_tcorex_precision;

typedef struct tcx_tcorex_options {
  int64_t n_factors;     /* m >= 1 */
  double gamma;          /* in (0, 1]: period s gets weight gamma^|s - t| in
                            the window of period t */
  double l1;             /* >= 0, weight of sum_t |M_{t+1} - M_t|_1 */
  double l2;             /* >= 0, weight of sum_t |M_{t+1} - M_t|_F^2 */
  tcx_tcorex_reg reg_type;
  int weighted_objective; /* nonzero: reconstruction error measured on the
                             weighted window instead of period t's samples */
  int64_t max_samples;   /* a window grows until it contains this many
                            rows */
  int64_t max_iter;      /* optimiser steps per annealing stage, >= 1 */
  double tol;            /* stage ends when the relative change of the mean
                            objective over two windows of stopping_window
                            steps < tol */
  int64_t stopping_window; /* steps per window of the stopping rule, in
                              1 .. 50; the rule can fire after 2 windows */
  int anneal;            /* nonzero: noise eps = 0.6^k, k = 1..6, then 0 */
  int reanneal;          /* with anneal and init LINEAR: nonzero runs the
                            T-CorEx annealing stages again after the annealed
                            linear CorEx fit (published schedule); zero runs
                            the final stage at eps = 0 only */
  tcx_tcorex_init init;
  tcx_tcorex_optimizer optimizer;
  double learning_rate;  /* Adam step size; FISTA's first trial step is
                            learning_rate * nt * p, because the objective
                            is divided by nt p */
  uint64_t seed;         /* random initial weights, and the linear CorEx fit */
  tcx_tcorex_precision precision;
  int64_t init_max_iter; /* iterations per annealing stage of the linear
                            CorEx initialisation; 0: max_iter */
  tcx_checkpoint *checkpoint; /* NULL, or checkpoints and stop requests for
                                 the initialisation and the main fit
                                 (borrowed, see tcorex/checkpoint.h) */
  const tcx_block *validation; /* NULL, or held-out rows of the same periods
                                  and columns as the data, in original units
                                  (NaN: missing; borrowed). The optimiser
                                  then scores the model on them every
                                  validation_every steps, keeps the weights
                                  with the lowest NLL and stops after
                                  patience checks without a new lowest */
  int64_t validation_every; /* optimiser steps between validation checks */
  int64_t patience;         /* checks without improvement before stopping */
} tcx_tcorex_options;

/* Sets the published defaults: 10 factors, gamma 0.5, l1 = l2 = 0, reg W,
 * unweighted objective, max_samples 2^30 (whole series), max_iter 1000, tol
 * 1e-4 over windows of 10 steps (the published code: 1e-5 over 50), anneal
 * and reanneal on, init LINEAR with max_iter iterations per stage. The
 * optimiser is Adam with learning rate 1e-3, seed 0, double precision, no
 * checkpoint and no validation rows. With validation rows the defaults are
 * a check every 10 steps and patience 3. Not collective. */
void tcx_tcorex_options_default(tcx_tcorex_options *options);

/* Objective value split into its parts (all minimised, replicated). The
 * total is main + reg_l1 + reg_l2. */
typedef struct tcx_tcorex_value {
  double main;   /* (1 / (nt p)) sum_t f_t */
  double reg_l1; /* (l1 / (nt p)) sum_t |M_{t+1} - M_t|_1 */
  double reg_l2; /* (l2 / (nt p)) sum_t |M_{t+1} - M_t|_F^2 */
} tcx_tcorex_value;

/* Result of a fit in this rank's columns, row-major. Per-period arrays have
 * the period index first: weights[(t * m + j) * n_local + i]. */
typedef struct tcx_tcorex_result {
  int n_periods;      /* nt */
  int64_t n_factors;  /* m */
  int64_t n_local;
  double *weights;    /* [nt, m, n_local] W_t, standardised units, unit
                         latent noise */
  double *factors;    /* [nt, m, n_local] F_t: correlation = F_t^T F_t with
                         unit diagonal */
  double *mi;         /* [nt, m, n_local] -1/2 log(1 - R_t^2) */
  int32_t *clusters;  /* [nt, n_local] argmax over factors of mi */
  double *mean;       /* [nt, n_local] weighted prior means, original units */
  double *std;        /* [nt, n_local] weighted prior standard deviations */
  double *tcs;        /* [nt, m] replicated: sum_i mi_ji - 1/2 log E[z_j^2] */
  tcx_tcorex_value value; /* at the final weights, noise eps = 0 */
  double *history_main;   /* [n_history] main part before every step */
  double *history_reg;    /* [n_history] reg_l1 + reg_l2 before every step */
  int64_t n_history;
  int64_t iterations; /* optimiser steps over all stages */
  int converged;      /* every stage ended on tol rather than max_iter */
  double validation_nll;        /* lowest mean validation NLL per sample
                                   seen, or NaN without validation rows */
  int64_t validation_iteration; /* optimiser steps taken before the weights
                                   that scored it, or -1 */
  int stopped_early;            /* the validation rule ended the fit */
  double init_seconds;     /* wall time of the standardisation, the setup
                              and the initial weights (linear CorEx) */
  double optimize_seconds; /* wall time of the optimiser stages */
} tcx_tcorex_result;

/* Computes the per-period priors and standardises every period. For each
 * period t the prior mean and standard deviation of variable i are the
 * gamma^|s-t|-weighted mean and population standard deviation of the rows of
 * every period s in t's window (the window grows symmetrically until it
 * contains options->max_samples rows). Period t's rows are then standardised
 * with period t's prior. Missing values (NaN) are left out of the priors and
 * set to the prior mean, which is 0 after standardisation. mean and std have
 * [nt, n_local] entries, and std is clipped below at 1e-10. On success the
 * caller frees *standardized with tcx_block_destroy(). Fails with
 * TCX_ERR_INPUT naming the column and period when a window has no observed
 * value of a column. Local: no communication. */
int tcx_tcorex_standardize(tcx_ctx *ctx, const tcx_tcorex_options *options,
                           const tcx_block *block, double *mean, double *std,
                           tcx_block **standardized);

/* Evaluates the closed-form objective at annealing noise level eps in [0, 1)
 * for the weights [nt, m, n_local] of this rank's columns of standardized (an
 * output of tcx_tcorex_standardize()). When gradient is not NULL it receives
 * the gradient of the total, [nt, m, n_local], using sign(0) = 0 for the l1
 * term. After one agreement on the setup, uses two MPI_Allreduce calls
 * (three with reg_type SIGMA). Fails with TCX_ERR_UNSUPPORTED for reg_type
 * SIGMA with l1 > 0. */
int tcx_tcorex_objective(tcx_ctx *ctx, const tcx_tcorex_options *options,
                         const tcx_block *standardized, double eps,
                         const double *weights, tcx_tcorex_value *value,
                         double *gradient);

/* Fits T-CorEx to block (raw data, all periods, this rank's columns).
 * init_weights is NULL, or [m, n_local] in standardised units when
 * options->init is TCX_TCOREX_INIT_GIVEN. Logs progress at TCX_LOG_PROGRESS
 * at most once a second within a stage, and at the end of every stage. With
 * options->checkpoint set, writes checkpoints and resumes as that object is
 * set up to, and returns TCX_ERR_INTERRUPTED when it stops the fit. Returns
 * TCX_ERR_NUMERIC when the objective stops being finite; a non-finite
 * gradient is caught one step later (at once with a checkpoint object).
 * The caller frees the result with tcx_tcorex_result_free(), also after a
 * failure. */
int tcx_tcorex_fit(tcx_ctx *ctx, const tcx_tcorex_options *options,
                   const tcx_block *block, const double *init_weights,
                   tcx_tcorex_result *result);

/* Frees the arrays of result and zeroes it. Accepts a zeroed result. */
void tcx_tcorex_result_free(tcx_tcorex_result *result);

#ifdef __cplusplus
}
#endif

#endif
