/* Per-column preprocessing of a data block: missing values, standardisation
 * and the optional outlier-suppressing transform. Purely local: no MPI. */
#ifndef TCOREX_PREP_H
#define TCOREX_PREP_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tcx_gaussianize {
  TCX_GAUSSIANIZE_STANDARD = 0, /* subtract the mean, divide by the std */
  TCX_GAUSSIANIZE_OUTLIERS,     /* standard, then squash |x| > 4 with tanh,
                                   then standardise again (LinearCorex) */
  TCX_GAUSSIANIZE_NONE          /* leave the values as they are */
} tcx_gaussianize;

/* Standardises each column of x (n_rows x n_local, row-major) in place.
 * Missing entries (NaN) are first replaced by the mean of the column's
 * observed entries. mean and std receive the column mean and the population
 * standard deviation (divisor n, clipped below at 1e-10) in the original
 * units; with TCX_GAUSSIANIZE_NONE they are 0 and 1. Fails with TCX_ERR_INPUT
 * naming the global column (col_begin + j) when a column has no observed
 * value. n_constant receives the number of constant columns (std clipped). */
int tcx_prep_standardize(tcx_ctx *ctx, tcx_gaussianize mode, int64_t n_rows,
                         int64_t n_local, int64_t col_begin, double *x,
                         double *mean, double *std, int64_t *n_constant);

#ifdef __cplusplus
}
#endif

#endif
