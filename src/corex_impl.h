/* Internals of linear CorEx shared by src/corex*.c and the tests: the moment
 * evaluation, the exact gradient and one quasi-Newton iteration.
 *
 * Notation (n samples, m factors, n_local columns on this rank, eps the
 * annealing level): x is the standardised data block (n x n_local), U the
 * normalised weights (m x n_local). Arrays named "local" hold this rank's
 * columns; arrays named "replicated" are sums over all columns and are
 * identical on every rank after an MPI_Allreduce. All storage is row-major. */
#ifndef TCOREX_COREX_IMPL_H
#define TCOREX_COREX_IMPL_H

#include "tcorex/corex.h"
#include "tcorex/ctx.h"

/* Defaults of tcx_corex_work.refresh_interval, refresh_margin and
 * refresh_growth. */
#define TCX_COREX_REFRESH_INTERVAL 50
#define TCX_COREX_REFRESH_MARGIN 1e-6
#define TCX_COREX_REFRESH_GROWTH 100.0

/* The moments of one weight matrix U at one annealing level. */
typedef struct tcx_corex_moments {
  /* Local, m x n_local. */
  double *rho;       /* U Sigma_eps: correlation of x~_i with z_j */
  double *rho_tilde; /* rho / (1 - rho^2) */
  double *q;         /* Ry rho_tilde */
  /* Local, n_local. */
  double *s;     /* S_i = sum_j rho_ji rho_tilde_ji */
  double *delta; /* Delta_i = sum_j rho_tilde_ji (Q_ji - S_i rho_ji) */
  /* Replicated. */
  double *y;    /* x U^T, n x m */
  double *gram; /* U U^T, m x m */
  double *u;    /* u_j = (U Sigma_eps U^T)_jj, m; valid while all < 1 */
  double *ry;   /* U Sigma_eps U^T with unit diagonal, m x m */
  double *h;    /* (rho_tilde / (1 + Delta)) rho_tilde^T, zero diagonal */
  double tc;    /* objective TC(U), maximised */
} tcx_corex_moments;

/* Outcome of one quasi-Newton iteration. */
typedef enum tcx_corex_step_outcome {
  TCX_COREX_STEP_MOVED = 0,  /* a trial passed the sufficient-decrease test */
  TCX_COREX_STEP_NO_DESCENT, /* slope >= 0: U unchanged */
  TCX_COREX_STEP_TOO_SMALL,  /* step length fell below its minimum: U kept */
  TCX_COREX_STEP_BREAKDOWN   /* the slope is NaN or infinite: U kept */
} tcx_corex_step_outcome;

typedef struct tcx_corex_step_info {
  tcx_corex_step_outcome outcome;
  double step_length; /* eta of the accepted trial, else the last one tried */
  double slope;       /* <grad(-TC), d> */
  int n_trials;       /* trials that needed a reduction */
  int n_fresh_trials; /* trials evaluated from scratch (among n_trials) */
  /* max_j |u_j carried - u_j fresh| at the last fresh trial; NaN if none. */
  double u_drift;
} tcx_corex_step_info;

/* Work space of one fit on one rank. */
typedef struct tcx_corex_work {
  tcx_ctx *ctx;
  tcx_checkpoint *checkpoint; /* borrowed, or NULL */
  const double *x; /* borrowed, n x n_local */
  int64_t n;
  int64_t n_local;
  int64_t m;
  double eps;

  double *weights; /* U, local, m x n_local */
  tcx_corex_moments now;
  tcx_corex_moments trial;

  /* Fresh evaluation of line-search trials (corex_step.c). A trial is
   * evaluated from scratch instead of incrementally when it would be the
   * refresh_interval-th accepted point since the last fresh evaluation,
   * when some u_j > 1 - refresh_margin, or when the bound on the growth of
   * carried errors since then would exceed refresh_growth. Set by
   * tcx_corex_work_create; tests may change them. */
  int64_t refresh_interval;
  double refresh_margin;
  double refresh_growth;
  int64_t steps_since_fresh; /* accepted incremental steps since then */
  double carried_growth;     /* product of max_j |1 + eta e_j| since then */

  /* Scratch of the iteration. */
  double *direction;       /* g, then the step d; local, m x n_local */
  double *direction_sigma; /* d Sigma_eps; local, m x n_local */
  int direction_sigma_ready;
  double *trial_weights;   /* U + eta d of a fresh trial; local */
  double *scaled;          /* rho_tilde / sqrt(1 + Delta); local */
  double *column_scratch;  /* n_local */
  double *column_scratch2; /* n_local */
  double *reduce;          /* reduction buffer, n m + 3 m^2 + votes */
  double *x_direction;     /* x d^T, replicated, n x m */
  double *cross_gram;      /* d U^T, replicated, m x m */
  double *direction_gram;  /* d d^T, replicated, m x m */
  double *coefficient;     /* e_j = r_j c_j - 1, c_j = 2 b_j / (2 - r_j), m */
  double *carried_u;       /* carried u of a fresh trial, m */
} tcx_corex_work;

/* Progress and bookkeeping of one fit. */
typedef struct tcx_corex_run {
  const tcx_corex_options *options;
  int n_stages;
  int stage;      /* 0-based */
  int64_t iteration; /* within the stage, 1-based after the first step */
  int64_t history_capacity;
  double start_time;
  double last_log_time;
  /* Global position of this rank's columns, for checkpoints. */
  int64_t col_begin;
  int64_t n_vars;
  int resumed; /* the first stage continues from a checkpoint */
} tcx_corex_run;

/* Allocates the work space of a fit over x (borrowed, n x n_local). Not
 * collective: the caller makes the ranks agree on the status. The caller
 * frees *work with tcx_corex_work_destroy(). */
int tcx_corex_work_create(tcx_ctx *ctx, const double *x, int64_t n,
                          int64_t n_local, int64_t m, tcx_corex_work **work);

/* Frees *work and sets it to NULL. Accepts NULL. */
void tcx_corex_work_destroy(tcx_corex_work **work);

/* Sums count doubles over the ranks in place. Collective. */
int tcx_corex_allreduce(tcx_ctx *ctx, double *buffer, int64_t count);

/* Computes all moments of work->weights at annealing level eps from scratch
 * into work->now (two reductions: n m + m^2 and m^2 + 1 doubles) and resets
 * work->steps_since_fresh. No validity test: with some u_j >= 1 the
 * objective is NaN. Collective. */
int tcx_corex_evaluate(tcx_corex_work *work, double eps);

/* Sums the projections x W^T (n x m) and the upper triangle of W W^T
 * (m x m) of weights W (local, m x n_local) over the ranks into
 * work->reduce (one reduction of n m + m^2 doubles). Collective. */
int tcx_corex_reduce_projections(tcx_corex_work *work, const double *weights);

/* Copies the reduced projections from work->reduce into moments->y and
 * moments->gram and computes u and ry at level work->eps. No
 * communication. */
void tcx_corex_take_projections(tcx_corex_work *work,
                                tcx_corex_moments *moments);

/* Completes moments whose y, gram, u and ry are set for the weights they
 * belong to: rho from scratch, the local terms, then H and TC (one reduction
 * of m^2 + 1 doubles). Collective. */
int tcx_corex_finish_evaluation(tcx_corex_work *work, const double *weights,
                                tcx_corex_moments *moments);

/* Writes the factor g of the gradient (grad(-TC) = g Sigma_eps) of the
 * current moments into work->direction. Local. */
void tcx_corex_gradient_factor(tcx_corex_work *work);

/* Writes g - U / r (rows scaled by 1 / r_j, r_j = 1 - u_j), the gradient
 * factor without its weight term, into work->direction. Local. */
void tcx_corex_gradient_remainder(tcx_corex_work *work);

/* Computes u and ry of moments from its y and gram at level work->eps.
 * Replicated, no communication. */
void tcx_corex_replicated_moments(const tcx_corex_work *work,
                                  tcx_corex_moments *moments);

/* Computes the local terms of moments whose rho and ry are set: rho_tilde,
 * q, s, delta and this rank's part of h into the upper triangle of
 * h_partial (m x m). Returns this rank's part of
 * sum_i log(1 + S_i) - 1/2 sum_i log(1 + Delta_i). Local. */
double tcx_corex_local_terms(tcx_corex_work *work, tcx_corex_moments *moments,
                             double *h_partial);

/* Sets moments->h from the reduced upper triangle reduced[0 .. m^2) with a
 * zero diagonal, and moments->tc from the reduced per-variable sum
 * reduced[m^2] and u. Replicated, no communication. */
void tcx_corex_finish_objective(const tcx_corex_work *work,
                                const double *reduced,
                                tcx_corex_moments *moments);

/* Copies the upper triangle of the m x m matrix upper into both triangles of
 * full. */
void tcx_corex_symmetrize(int64_t m, const double *upper, double *full);

/* Takes one quasi-Newton iteration with backtracking line search from
 * work->now at level work->eps. On TCX_COREX_STEP_MOVED, work->weights and
 * work->now hold the accepted point. The step length stops at min_step.
 * Reductions: n m + 3 m^2 doubles once, m^2 + 1 per trial, and n m + m^2
 * more per fresh trial. Collective. */
int tcx_corex_step(tcx_corex_work *work, double min_step,
                   tcx_corex_step_info *info);

/* Computes TC(U) and the exact gradient of -TC (m x n_local) at annealing
 * level eps for this rank's weights U (m x n_local) and standardised data x
 * (n x n_local). Collective. Used by the tests. */
int tcx_corex_objective_gradient(tcx_ctx *ctx, const double *x, int64_t n,
                                 int64_t n_local, int64_t m, double eps,
                                 const double *weights, double *tc,
                                 double *gradient);

/* Starts the checkpoint bookkeeping of a fit: records its signature and,
 * when a checkpoint of phase "linear" is pending, restores the weights, the
 * moments, the position and the history from it and sets run->resumed.
 * Pair with tcx_checkpoint_end_fit(). Collective. */
int tcx_corex_checkpoint_begin(tcx_corex_work *work, tcx_corex_run *run,
                               tcx_corex_result *result);

/* The iteration boundary before iteration run->iteration of stage
 * run->stage: checks the objective, and writes a checkpoint or stops as
 * work->checkpoint decides. Collective. */
int tcx_corex_checkpoint_boundary(tcx_corex_work *work, tcx_corex_run *run,
                                  tcx_corex_result *result);

#endif
