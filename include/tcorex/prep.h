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
  TCX_GAUSSIANIZE_OUTLIERS,     /* standard, then x -> c + tanh(x - c) with
                                   c = clip(x, -4, 4); not standardised again,
                                   as in LinearCorex 'outliers' */
  TCX_GAUSSIANIZE_NONE          /* leave the values as they are */
} tcx_gaussianize;

/* Standardises each column of x (n_rows x n_local, row-major) in place.
 * Missing entries (NaN) are first replaced by the mean of the column's
 * observed entries. mean and std receive the column mean and the population
 * standard deviation in the original units (divisor n_rows, counting imputed
 * entries, clipped below at 1e-10). With TCX_GAUSSIANIZE_NONE they are 0 and
 * 1, and only the imputation changes x. Fails with TCX_ERR_INPUT naming the
 * global column (col_begin + j) when a column has no observed value or holds
 * an infinite value. n_constant receives the number of constant columns
 * (standard deviation at or below 1e-10), in every mode. Not collective: the
 * caller makes the ranks agree on the status. */
int tcx_prep_standardize(tcx_ctx *ctx, tcx_gaussianize mode, int64_t n_rows,
                         int64_t n_local, int64_t col_begin, double *x,
                         double *mean, double *std, int64_t *n_constant);

#ifdef __cplusplus
}
#endif

#endif
