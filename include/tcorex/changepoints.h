/* Change points of a T-CorEx model: how much the dependence structure moves
 * between consecutive periods, which variables carry the move, and which
 * pairs of periods stand out from the rest.
 *
 * For each period t the normalised covariance is the correlation matrix
 *   C_t = diag(1 - colsum(F_t^2)) + F_t^T F_t
 * of the model's factors F_t ([m, p], split over ranks in column blocks).
 * The score of the pair (t, t + 1) is a norm of A_t - A_{t+1}, where A_t is
 * C_t^{-1} scaled to unit diagonal (default), C_t^{-1} itself or C_t,
 * computed in low-rank plus diagonal form in O(p m^2) without forming a
 * p x p matrix. The row norms of the same difference show which variables
 * changed. */
#ifndef TCOREX_CHANGEPOINTS_H
#define TCOREX_CHANGEPOINTS_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Norm of the difference used as the score of a pair of periods. */
typedef enum tcx_changepoints_norm {
  TCX_CHANGEPOINTS_FROBENIUS = 0,
  TCX_CHANGEPOINTS_SPECTRAL = 1
} tcx_changepoints_norm;

/* The matrix A_t compared between periods. PARTIAL_CORRELATION is the
 * precision matrix scaled to unit diagonal, D^{-1/2} C^{-1} D^{-1/2} with
 * D = diag(C^{-1}); its off-diagonal entries are minus the partial
 * correlations. The scaling removes the inverse noise variances 1 / (1 -
 * R_i^2) from the diagonal, which dominate the unscaled precision
 * difference and vary between periods with the sampling noise of each
 * variable's fit rather than with the dependence structure. */
typedef enum tcx_changepoints_matrices {
  TCX_CHANGEPOINTS_PARTIAL_CORRELATION = 0,
  TCX_CHANGEPOINTS_PRECISION = 1,
  TCX_CHANGEPOINTS_CORRELATION = 2
} tcx_changepoints_matrices;

/* Default K of the detection rule score > median + K * 1.4826 * MAD. */
#define TCX_CHANGEPOINTS_THRESHOLD 5.0

/* Scale that makes the median absolute deviation a consistent estimate of
 * the standard deviation of normal data: 1 / Phi^{-1}(3/4). */
#define TCX_CHANGEPOINTS_MAD_SCALE 1.482602218505602

/* Settings of tcx_changepoints_compute(). */
typedef struct tcx_changepoints_options {
  int norm;                  /* a tcx_changepoints_norm */
  int matrices;              /* a tcx_changepoints_matrices */
  double threshold;          /* K of the detection rule, >= 0 */
  int64_t spectral_max_iter; /* Lanczos step limit for the spectral norm */
  double spectral_tolerance; /* relative Lanczos residual for convergence */
} tcx_changepoints_options;

/* Returns "partial-correlation", "precision" or "correlation", the names
 * that the CLI and the output files use, or "unknown". */
const char *tcx_changepoints_matrices_name(int matrices);

/* Sets the defaults: Frobenius norm of the difference of partial
 * correlation matrices, K =
 * TCX_CHANGEPOINTS_THRESHOLD and the Lanczos defaults of lowrank.h. */
void tcx_changepoints_options_default(tcx_changepoints_options *options);

/* Scores and detections of nt - 1 consecutive pairs of periods. Pair k is
 * (k, k + 1). */
typedef struct tcx_changepoints_result {
  int n_pairs;
  int64_t n_vars;    /* p */
  int64_t n_factors; /* m */
  int64_t col_begin; /* global index of the first local column */
  int64_t n_local;
  tcx_changepoints_options options;
  double *scores;    /* [n_pairs], the same on every rank */
  double *row_norms; /* [n_pairs, n_local], Euclidean row norms */
  int32_t *changes;  /* [n_pairs], 1 for a detected change, else 0 */
  double median;     /* median of the scores */
  double mad;        /* median absolute deviation of the scores, unscaled */
  double cutoff;     /* median + K * TCX_CHANGEPOINTS_MAD_SCALE * mad */
  int64_t max_lanczos_steps; /* spectral norm: most steps of any pair */
} tcx_changepoints_result;

/* Computes the Euclidean row norms of A_1 - A_2 for a pair of factor
 * matrices F_1, F_2 ([m, n_local] each), with the matrices of
 * options->matrices, into row_norms [n_local]. Collective. Fails with
 * TCX_ERR_NUMERIC when a variable has squared factor norm >= 1 in either
 * period. */
int tcx_changepoints_pair_row_norms(tcx_ctx *ctx,
                                    const tcx_changepoints_options *options,
                                    int64_t m, int64_t n_local,
                                    const double *factors1,
                                    const double *factors2,
                                    double *row_norms);

/* Scores every pair of consecutive periods of factors ([n_periods, m,
 * n_local], this rank's columns starting at global column col_begin of
 * n_vars), computes the row norms and applies tcx_changepoints_detect().
 * Collective. O(n_periods p m^2) flops; the memory beyond the result is
 * 2 (m + 1) n_local doubles, plus the Lanczos basis with the spectral norm.
 * The caller frees the result with tcx_changepoints_result_free(). Fails
 * with TCX_ERR_USAGE when n_periods < 2 or an option is out of range. */
int tcx_changepoints_compute(tcx_ctx *ctx,
                             const tcx_changepoints_options *options,
                             int n_periods, int64_t m, int64_t n_vars,
                             int64_t col_begin, int64_t n_local,
                             const double *factors,
                             tcx_changepoints_result *result);

/* Flags the scores above median + threshold * TCX_CHANGEPOINTS_MAD_SCALE *
 * MAD, where MAD = median_k |score_k - median|. The median of an even count
 * is the mean of the two middle values. With MAD = 0 every score above the
 * median is flagged. Writes changes[count] (1 or 0), and median, mad and
 * cutoff when not NULL. Not collective; count >= 1 and threshold >= 0, else
 * TCX_ERR_USAGE. */
int tcx_changepoints_detect(tcx_ctx *ctx, int64_t count, const double *scores,
                            double threshold, int32_t *changes,
                            double *median, double *mad, double *cutoff);

/* Writes the result to the HDF5 file path atomically (path.tmp, then
 * rename): /scores, /changes, /left_period, /right_period [n_pairs] and
 * /row_norms [n_pairs, p] written by every rank in its column block, with
 * the settings as root attributes (docs/FORMATS.md). model_path is stored
 * as an attribute. Collective. */
int tcx_changepoints_write(tcx_ctx *ctx, const char *path,
                           const char *model_path,
                           const tcx_changepoints_result *result);

/* Writes one CSV line per pair, with the header
 * left_period,right_period,score,change, atomically (path.tmp, then
 * rename). Rank 0 writes; collective in that every rank returns its
 * status. */
int tcx_changepoints_write_csv(tcx_ctx *ctx, const char *path,
                               const tcx_changepoints_result *result);

/* Draws the score series as a PNG image with PLplot's pngcairo device: one
 * point per pair, the cutoff as a dashed line and the detected changes as
 * red rings. Rank 0 draws; collective in that every rank returns its
 * status. Fails with TCX_ERR_UNSUPPORTED when PLplot lacks the pngcairo
 * device (Debian package plplot-driver-cairo). */
int tcx_changepoints_plot(tcx_ctx *ctx, const char *path,
                          const tcx_changepoints_result *result);

/* Frees the arrays of result and zeroes it. Accepts a zeroed result. */
void tcx_changepoints_result_free(tcx_changepoints_result *result);

#ifdef __cplusplus
}
#endif

#endif
