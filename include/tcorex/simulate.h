/* Synthetic data with a known covariance: a modular latent factor model in
 * which every variable loads on exactly one of m independent standard normal
 * factors, after the synthetic experiments of the published T-CorEx code
 * (github.com/hrayrhar/T-CorEx, tcorex/experiments/data.py). The model is
 * either the same in every period or changes abruptly in the middle period.
 * docs/SIMULATE.md gives the model in formulas.
 *
 * Every value is a pure function of the options and of global indices (row,
 * column, factor): a rank can generate any column range without the others,
 * and the data do not depend on the number of ranks. Nothing here is
 * collective and nothing of size p x p is formed. */
#ifndef TCOREX_SIMULATE_H
#define TCOREX_SIMULATE_H

#include "tcorex/block.h"
#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the model changes over the periods. */
typedef enum tcx_simulate_change {
  TCX_SIMULATE_CHANGE_NONE = 0, /* the same model in every period */
  TCX_SIMULATE_CHANGE_SUDDEN    /* fresh parameters from period nt / 2 on */
} tcx_simulate_change;

/* How variables are assigned to factors. */
typedef enum tcx_simulate_assignment {
  /* Each variable draws its factor uniformly, afresh after a sudden change. */
  TCX_SIMULATE_ASSIGN_RANDOM = 0,
  /* Contiguous blocks of near-equal size (the first p % m blocks have one
   * variable more), the same in every period: the default of the published
   * T-CorEx experiments. Needs p >= m. */
  TCX_SIMULATE_ASSIGN_BLOCKS
} tcx_simulate_assignment;

/* The independent data sets of a simulation. */
typedef enum tcx_simulate_part {
  TCX_SIMULATE_TRAIN = 0,
  TCX_SIMULATE_TEST = 1,
  TCX_SIMULATE_VALIDATION = 2
} tcx_simulate_part;

/* Options of a simulation. tcx_simulate_options_default() sets every field,
 * with the sizes of the sudden-change benchmark of the T-CorEx experiments. */
typedef struct tcx_simulate_options {
  int64_t n_vars;     /* p, default 128 */
  int64_t n_factors;  /* m, default 8 */
  int n_periods;      /* nt, default 10 */
  int64_t train_rows; /* training rows per period, default 16 */
  int64_t test_rows;  /* test rows per period, default 1000 */
  int64_t validation_rows; /* validation rows per period, default 0 */
  int change;         /* tcx_simulate_change, default SUDDEN */
  int assignment;     /* tcx_simulate_assignment, default RANDOM */
  uint64_t seed;      /* default 42 */
  /* Signal-to-noise ratio of each variable, loading^2 / noise variance,
   * drawn uniformly from [snr_min, snr_max]; default [0, 5]. */
  double snr_min;
  double snr_max;
  /* Standard deviation of each variable drawn uniformly from
   * [scale_min, scale_max]; default [0.25, 4]. */
  double scale_min;
  double scale_max;
} tcx_simulate_options;

/* Sets every field of opts to its default. */
void tcx_simulate_options_default(tcx_simulate_options *opts);

/* Checks the options. Returns TCX_OK, or TCX_ERR_USAGE with a message that
 * names the invalid field and its value. Not collective. */
int tcx_simulate_validate(tcx_ctx *ctx, const tcx_simulate_options *opts);

/* Generates columns col_begin .. col_begin + n_local - 1 of all periods of
 * one part (TCX_SIMULATE_TRAIN, TCX_SIMULATE_TEST or
 * TCX_SIMULATE_VALIDATION): opts->train_rows, opts->test_rows or
 * opts->validation_rows rows per period, with block->n_vars = opts->n_vars.
 * A part's rows do not depend on the other parts' row counts. The
 * values are identical whatever column range is requested. Not collective.
 * The caller frees *block with tcx_block_destroy(). Returns TCX_ERR_USAGE for
 * invalid options, part or column range, TCX_ERR_MEMORY when the block does
 * not fit. */
int tcx_simulate_block(tcx_ctx *ctx, const tcx_simulate_options *opts,
                       int part, int64_t col_begin, int64_t n_local,
                       tcx_block **block);

/* Writes the true model of the given period for columns col_begin ..
 * col_begin + n_local - 1: the covariance of the period is
 *   Sigma = diag(noise_var) + L^T L,  L[factor_i, i] = loading_i,
 * with one nonzero per column of the m x p matrix L. Each output array has
 * n_local entries, and factor_i is in 0 .. m - 1. Not collective. Returns
 * TCX_ERR_USAGE for invalid options, period or column range. */
int tcx_simulate_truth(tcx_ctx *ctx, const tcx_simulate_options *opts,
                       int period, int64_t col_begin, int64_t n_local,
                       double *loading, double *noise_var, int32_t *factor);

#ifdef __cplusplus
}
#endif

#endif
