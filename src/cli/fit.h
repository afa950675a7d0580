/* Options of 'tcorex fit' and the two fitting paths behind it. */
#ifndef TCX_CLI_FIT_H
#define TCX_CLI_FIT_H

#include "options.h"
#include "tcorex/block.h"
#include "tcorex/checkpoint.h"
#include "tcorex/model.h"

typedef struct fit_values {
  const char *input;
  const char *dataset;
  const char *output;
  const char *method; /* auto, linear or tcorex */
  int64_t factors;
  int64_t seed;
  int64_t max_iter; /* 0: the method's default */
  double tol;
  const char *gaussianize;
  double missing; /* NaN: no marker */
  int no_anneal;
  /* Periods of a [T, p] input (0: not split). */
  int64_t periods;
  int64_t period_length;
  /* T-CorEx. */
  double l1;
  double l2;
  double gamma;
  const char *reg_type;
  int weighted_objective;
  int64_t max_samples;
  int no_init;
  const char *optimizer;
  double learning_rate;
  int no_reanneal;
  int64_t stopping_window; /* 0: the default */
  int64_t init_max_iter; /* 0: --max-iter */
  const char *precision; /* double or single */
  /* Early stopping on held-out rows (T-CorEx). */
  const char *validation_path;
  const char *validation_dataset; /* NULL: the dataset of the input */
  int64_t validation_every; /* 0: the library's default */
  int64_t patience;         /* 0: the library's default */
  int64_t holdout; /* rows per period held out of the input; 0: none */
  /* Set by the command from validation_path, holdout (or select's
   * validation file), not an option itself: the held-out rows split into
   * the data's periods. */
  tcx_block *validation;
  /* Checkpoint and restart. */
  const char *checkpoint_path;
  double checkpoint_every; /* seconds; NaN: only when stopped by a signal */
  const char *resume;
  /* Set by run_fit from the three options above, not an option itself. */
  tcx_checkpoint *checkpoint;
} fit_values;

/* The fit options that 'tcorex select' accepts too: every option of 'tcorex
 * fit' except the input, output and checkpoint files. Offsets are into
 * fit_values. */
extern const tcx_option_spec tcx_cli_fit_options[];

/* Sets the defaults of the fit options in a fit_values struct. */
void tcx_cli_fit_defaults(void *values);

/* Checks the fit options that need no data (option clashes). Returns
 * TCX_OK or TCX_ERR_USAGE. Not collective. */
int tcx_cli_fit_check_options(tcx_ctx *ctx, const fit_values *v);

/* Checks the fit options against the data read into block (before any
 * --periods split): the factor count, the sample count, and periods for
 * --method tcorex. Not collective. */
int tcx_cli_fit_check_data(tcx_ctx *ctx, const fit_values *v,
                           const tcx_block *block);

/* Returns 1 when v and the periods of block select linear CorEx. */
int tcx_cli_fit_is_linear(const fit_values *v, const tcx_block *block);

/* Returns the dataset of v's validation file: --validation-dataset, or the
 * input's dataset name. */
const char *tcx_cli_fit_validation_dataset(const fit_values *v);

/* Reads the held-out rows of path (validation dataset and missing marker of
 * v) and splits a [T, p] dataset into the periods of block as 'tcorex
 * score' does. Fails with TCX_ERR_INPUT when the rows have other variables
 * or periods than block. Collective. */
int tcx_cli_fit_read_validation(tcx_ctx *ctx, const fit_values *v,
                                const char *path, const tcx_block *block,
                                tcx_block **validation);

/* Fits linear CorEx or T-CorEx, as tcx_cli_fit_is_linear() selects, to the
 * (already split) block and records the fit options as model attributes.
 * Linear CorEx standardises block in place. On success the caller frees
 * *model with tcx_model_destroy(). Collective. */
int tcx_cli_fit_block(tcx_ctx *ctx, const fit_values *v, tcx_block *block,
                      tcx_model **model);

/* Fits linear CorEx to all rows of block (periods pooled), standardising
 * block in place, and returns a one-period model. */
int tcx_cli_fit_linear(tcx_ctx *ctx, const fit_values *v, tcx_block *block,
                       tcx_model **model);

/* Fits T-CorEx to the periods of block and returns an nt-period model. */
int tcx_cli_fit_tcorex(tcx_ctx *ctx, const fit_values *v,
                       const tcx_block *block, tcx_model **model);

/* Records the options shared by both methods as model attributes. */
int tcx_cli_fit_attributes(tcx_ctx *ctx, const fit_values *v,
                           const tcx_block *block, tcx_model *model);

#endif
