/* Shared between the T-CorEx source files; not installed. */
#ifndef TCOREX_TCOREX_INTERNAL_H
#define TCOREX_TCOREX_INTERNAL_H

#include "tcorex/tcorex.h"

/* Periods whose weight gamma^|s - t| falls below this value are left out of
 * period t's objective window (but not out of its priors). */
#define TCX_TCOREX_WEIGHT_CUT 1e-6

/* Lower and upper guards of the published objective: 1 - R^2 is clamped to
 * [1e-8, 1 - 1e-8] or [1e-8, 1], and the residual variance to >= 1e-8. */
#define TCX_TCOREX_CLAMP 1e-8

/* Largest number of steps in each of the two windows of the plateau
 * stopping rule (options.stopping_window). */
#define TCX_TCOREX_MAX_STOPPING_WINDOW 50

/* Validates options. Not collective: ranks with the same options get the
 * same status. */
int tcx_tcorex_check_options(tcx_ctx *ctx, const tcx_tcorex_options *options);

/* Computes the window half-length L_t: the smallest k >= 0 such that
 * periods max(0, t - k) .. min(nt - 1, t + k) contain >= max_samples rows, or
 * nt + 1 when no k <= nt does. */
int tcx_tcorex_window_half_length(int n_periods, const int64_t *period_begin,
                                  int64_t max_samples, int t);

/* What tcx_tcorex_evaluate() computes besides the value. */
typedef enum tcx_tcorex_eval_mode {
  TCX_TCOREX_EVAL_VALUE = 0,      /* value only */
  TCX_TCOREX_EVAL_GRADIENT,       /* gradient of main + reg_l1 + reg_l2 */
  TCX_TCOREX_EVAL_SMOOTH_GRADIENT /* gradient of main + reg_l2 */
} tcx_tcorex_eval_mode;

enum { TCX_TCOREX_MAX_EXTRA = 4 };

/* Precomputed windows and work space for evaluating the objective on one
 * standardised data block. The data are borrowed, not copied. */
typedef struct tcx_tcorex_plan {
  int nt;
  int64_t m, n_vars, n_local, n_rows;
  int64_t col_begin;           /* first global column of this rank; set by
                                  tcx_tcorex_fit() for checkpoints */
  const double *x;             /* [n_rows, n_local] standardised data */
  const int64_t *period_begin; /* [nt + 1] row offsets */
  double l1, l2;
  tcx_tcorex_reg reg_type;
  int weighted;
  int full_windows;        /* every objective window is the whole series */
  int batched;             /* the nt windows' products are single GEMMs
                              (full_windows only; see
                              tcx_tcorex_plan_set_batched()) */
  int single;              /* precision SINGLE: the four large products use
                              sgemm on x32 */
  float *x32;              /* [n_rows, n_local] x rounded to float, or NULL */
  float *factors32;        /* [nt, m, n_local] float work space, or NULL */
  float *y32;              /* y_count floats of work space, or NULL */
  int *window_first;       /* [nt] first period of t's objective window */
  int *window_last;        /* [nt] last period of t's objective window */
  double *period_weight;   /* [nt, nt] weight c of one row of period s in
                              window t, 0 outside; rows of a window sum to 1 */
  int64_t y_ld;            /* row stride of the samples x factors buffers */
  int64_t *y_offset;       /* [nt] offset of Y^w_t in those buffers */
  int64_t y_count;         /* sum_t N_t m */
  double *own_square;      /* [nt, n_local] mean of x^2 over period t */
  double *window_square;   /* [nt, n_local] sum of c x^2 over t's window */

  /* Work space, overwritten by every evaluation. */
  double *reduce1;     /* Y^w for every t, then W_t W_t^T: y_count + nt m^2 */
  double *scaled;      /* c o Y^w, later Phi (same layout as Y^w) */
  double *gram;        /* [nt, m, m] G_t */
  double *gram_own;    /* [nt, m, m] G'_t (unweighted objective only) */
  double *z2;          /* [nt, m] diag(G_t) */
  double *p_window;    /* [nt, m, n_local] P_t = W_t Sigma^w_t */
  double *p_own;       /* [nt, m, n_local] P'_t = W_t C_t (unweighted) */
  double *dp_window;   /* [nt, m, n_local] df_t/dP_t */
  double *dp_own;      /* [nt, m, n_local] df_t/dP'_t */
  float *dp_own32;     /* [nt, m, n_local] dP' rounded to float (single,
                          unweighted), or NULL */
  float *p_own32;      /* [nt, m, n_local] P'_t (P_t weighted) rounded to
                          float by the forward pass (single), or NULL */
  float *gram32;       /* [m, m] an m x m factor of a product in float */
  float *work_mm32;    /* [m, m] one tile's B sqrt(g) (B sqrt(g))^T */
  float *work_b32;     /* [m, n_local] B, then B sqrt(g), in float */
  float *work_gb32;    /* [m, n_local] G'B in float */
  int dp_in_float;     /* this evaluation keeps dP and dP' only in float:
                          precision single at eps = 0, where the gradient
                          needs them only in the float products */
  double *reg_matrix;  /* [nt, m, n_local] MI_t or F_t (reg MI, SIGMA) */
  double *reg_grad;    /* [nt, m, n_local] nt p d reg / d reg_matrix */
  double *sigma_gram;  /* [2 nt - 1, m, m] F_t F_t^T, F_t F_{t+1}^T */
  double *work_b;      /* [m, n_local] B */
  double *work_gb;     /* [m, n_local] G' B, then dB, then dF */
  double *work_dp_own; /* [m, n_local] dP' (weighted objective, or with
                          dp_in_float) */
  double *work_dp;     /* [m, n_local] dP with dp_in_float (single) */
  double *work_scaled; /* [m, n_local] B o sqrt(g) */
  double *work_q;      /* [m, n_local] 1 / clamp(1 - R^2, 1e-8, 1) */
  double *vec_r;       /* [n_local] r_i */
  double *vec_inv;     /* [n_local] 1 / (1 + r_i) */
  double *vec_e;       /* [n_local] e_i, then g_i */
  double *vec_dr;      /* [n_local] df/dr_i */
  double *vec_root;    /* [n_local] sqrt(g_i) */
  double *vec_norm;    /* [nt, n_local] |F_t:i|^2 (reg SIGMA) */
  double *reduce2;     /* scalars, dG', ds, psi, X dP^T */
  int64_t reduce2_size;
  struct tcx_tcorex_validation *validation; /* early stopping, or NULL
                                               (borrowed) */
} tcx_tcorex_plan;

/* Builds a plan for the standardised block x. Local: no communication. */
int tcx_tcorex_plan_create(tcx_ctx *ctx, const tcx_tcorex_options *options,
                           const tcx_block *x, tcx_tcorex_plan **plan);
void tcx_tcorex_plan_destroy(tcx_tcorex_plan **plan);

/* Switches the products of a plan between batched GEMMs over all periods
 * (the default when every window is the whole series) and one GEMM per
 * window. Both give the same values to rounding; the switch exists so that
 * tests can compare them. Fails with TCX_ERR_USAGE when batched is nonzero
 * but some window is not the whole series. Local. */
int tcx_tcorex_plan_set_batched(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                                int batched);

/* Evaluates the objective at noise level eps for weights [nt, m, n_local].
 * gradient ([nt, m, n_local]) is written unless mode is VALUE. extra[0 ..
 * n_extra - 1] (n_extra <= TCX_TCOREX_MAX_EXTRA) are local partial sums that
 * are summed over ranks into extra_sum in the same reduction. Two
 * MPI_Allreduce calls, three with reg SIGMA. Collective. */
int tcx_tcorex_evaluate(tcx_ctx *ctx, tcx_tcorex_plan *plan, double eps,
                        const double *weights, tcx_tcorex_eval_mode mode,
                        const double *extra, int n_extra, double *extra_sum,
                        tcx_tcorex_value *value, double *gradient);

/* Computes factors, mi, clusters and tcs of result at eps = 0 for the given
 * weights. Collective. */
int tcx_tcorex_outputs(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                       const double *weights, tcx_tcorex_result *result);

/* Entries of tcx_tcorex_validation.state, kept in checkpoints. */
enum {
  TCX_VALIDATION_BEST_NLL,
  TCX_VALIDATION_BEST_ITERATION, /* -1 before the first check */
  TCX_VALIDATION_SINCE_BEST,     /* checks since the lowest NLL */
  TCX_VALIDATION_STOPPED,
  TCX_VALIDATION_STATE
};

/* Early stopping on held-out rows: every `every` optimiser steps the model
 * at the current weights (noise 0) scores the rows, and the weights with
 * the lowest mean NLL per sample are kept. */
typedef struct tcx_tcorex_validation {
  int64_t every, patience;
  int nt;
  int64_t m, n_local;
  const int64_t *period_begin; /* [nt + 1] row offsets of the rows */
  double *centered;     /* [rows, n_local] minus period t's prior mean, 0
                           where missing */
  double *l, *d;        /* [m, n_local], [n_local] work space */
  double *best_weights; /* [nt, m, n_local] */
  double state[TCX_VALIDATION_STATE]; /* the same on every rank */
} tcx_tcorex_validation;

/* Checks the rows of options->validation against the data block and centres
 * them with the prior means of result. Collective: fails on every rank when
 * one fails. */
int tcx_tcorex_validation_create(tcx_ctx *ctx,
                                 const tcx_tcorex_options *options,
                                 const tcx_block *block,
                                 const tcx_tcorex_result *result,
                                 tcx_tcorex_validation **validation);
void tcx_tcorex_validation_destroy(tcx_tcorex_validation **validation);

/* At every multiple of `every` optimiser steps (result->iterations), or
 * always when force is nonzero, scores the weights and updates the state;
 * sets *stop once patience checks in a row found no lower NLL. Overwrites
 * the factors, mi, clusters and tcs of result. Collective. */
int tcx_tcorex_validation_check(tcx_ctx *ctx,
                                tcx_tcorex_validation *validation,
                                tcx_tcorex_plan *plan, const double *weights,
                                tcx_tcorex_result *result, int force,
                                int *stop);

/* Most arrays and scalars an optimiser keeps in a checkpoint. */
enum { TCX_TCOREX_SNAPSHOT_ARRAYS = 4, TCX_TCOREX_SNAPSHOT_SCALARS = 8 };

/* The state of a T-CorEx optimiser at an iteration boundary, as pointers
 * into the optimiser's own variables. A checkpoint stores it together with
 * the history, the step count and the convergence flag of the result. */
typedef struct tcx_tcorex_snapshot {
  int stage;              /* 0-based annealing stage */
  int n_stages;
  int64_t steps;          /* steps already taken in the stage */
  double objective;       /* total objective at this boundary */
  const double *gradient; /* [nt, m, n_local] at this boundary, or NULL */
  int n_arrays;
  const char *array_names[TCX_TCOREX_SNAPSHOT_ARRAYS];
  double *arrays[TCX_TCOREX_SNAPSHOT_ARRAYS]; /* [nt, m, n_local] each */
  int64_t n_scalars;
  double scalars[TCX_TCOREX_SNAPSHOT_SCALARS]; /* the same on every rank */
  double *recent;        /* values of the stopping rule's window */
  int64_t recent_capacity;
  int64_t *recent_count;
  tcx_tcorex_validation *validation; /* its best weights and state, or
                                        NULL */
} tcx_tcorex_snapshot;

/* Records the fit's signature for the checkpoint of options. Pair with
 * tcx_checkpoint_end_fit(). Not collective. */
int tcx_tcorex_checkpoint_begin(tcx_ctx *ctx,
                                const tcx_tcorex_options *options,
                                const tcx_tcorex_plan *plan);

/* Returns 1 when the checkpoint of options contains a pending state of the
 * main T-CorEx fit. */
int tcx_tcorex_checkpoint_pending(const tcx_tcorex_options *options);

/* Restores the snapshot's arrays, scalars and window, its stage and steps,
 * and the history, iterations and convergence flag of result (allocating
 * the history). Collective. */
int tcx_tcorex_checkpoint_restore(tcx_ctx *ctx,
                                  const tcx_tcorex_options *options,
                                  const tcx_tcorex_plan *plan,
                                  tcx_tcorex_snapshot *snapshot,
                                  tcx_tcorex_result *result);

/* The iteration boundary before step snapshot->steps + 1 of the stage:
 * checks the objective and the gradient, and writes a checkpoint or stops
 * as the checkpoint of options decides. Collective. */
int tcx_tcorex_checkpoint_boundary(tcx_ctx *ctx,
                                   const tcx_tcorex_options *options,
                                   const tcx_tcorex_plan *plan,
                                    const tcx_tcorex_snapshot *snapshot,
                                   tcx_tcorex_result *result);

/* Runs the optimiser selected in options on weights [nt, m, n_local] in
 * place, appending to the history of result. Collective. */
int tcx_tcorex_optimize(tcx_ctx *ctx, const tcx_tcorex_options *options,
                        tcx_tcorex_plan *plan, double *weights,
                        tcx_tcorex_result *result);

#endif
