/* Options of 'tcorex fit' and the two fitting paths behind it. */
#ifndef TCX_CLI_FIT_H
#define TCX_CLI_FIT_H

#include "tcorex/block.h"
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
} fit_values;

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
