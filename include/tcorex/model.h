/* The fitted model of linear CorEx (one period) or T-CorEx (nt periods), in
 * this rank's columns, and its HDF5 file. */
#ifndef TCOREX_MODEL_H
#define TCOREX_MODEL_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { TCX_MODEL_MAX_ATTRS = 64, TCX_MODEL_ATTR_LENGTH = 256 };

/* A root attribute of the model file: every option and run fact. */
typedef struct tcx_model_attr {
  char name[TCX_MODEL_ATTR_LENGTH];
  int type; /* TCX_H5_DOUBLE, TCX_H5_INT32 (stored as int64) or -1: string */
  double number;
  int64_t integer;
  char text[TCX_MODEL_ATTR_LENGTH];
} tcx_model_attr;

/* Arrays are this rank's columns, row-major, with p split as in
 * tcx_partition(). Per-period arrays come first in the period index. */
typedef struct tcx_model {
  int n_periods;     /* nt; 1 for linear CorEx */
  int64_t n_factors; /* m */
  int64_t n_vars;    /* p */
  int64_t col_begin;
  int64_t n_local;
  double *mean;      /* [nt, n_local], original units */
  double *std;       /* [nt, n_local], original units */
  double *weights;   /* [nt, m, n_local], W in standardised space */
  double *factors;   /* [nt, m, n_local], F: correlation = F^T F, unit diag */
  double *mi;        /* [nt, m, n_local] */
  int32_t *clusters; /* [nt, n_local], argmax over factors of mi */
  double *tcs;       /* [nt, m], replicated */
  double *objective; /* [n_objective], replicated history */
  int64_t n_objective;
  /* T-CorEx only (NULL otherwise): the two parts of /objective, the main
   * term and the temporal regularisation, [n_objective] each. */
  double *objective_main;
  double *objective_regularization;
  int n_attrs;
  tcx_model_attr attrs[TCX_MODEL_MAX_ATTRS];
} tcx_model;

/* Allocates a zeroed model. The caller frees it with tcx_model_destroy(). */
int tcx_model_create(tcx_ctx *ctx, int n_periods, int64_t n_factors,
                     int64_t n_vars, int64_t col_begin, int64_t n_local,
                     tcx_model **model);
void tcx_model_destroy(tcx_model **model);

/* Replaces the objective history with a copy of values (count entries).
 * Not collective. */
int tcx_model_set_objective(tcx_ctx *ctx, tcx_model *model,
                            const double *values, int64_t count);

/* Sets the objective history from its main and regularisation parts:
 * /objective is their sum and both parts are written too. Copies the
 * arrays. Not collective. */
int tcx_model_set_objective_parts(tcx_ctx *ctx, tcx_model *model,
                                  const double *main_part,
                                  const double *regularization, int64_t count);

/* Adds or replaces a root attribute. Not collective. */
int tcx_model_set_string(tcx_ctx *ctx, tcx_model *model, const char *name,
                         const char *value);
int tcx_model_set_int(tcx_ctx *ctx, tcx_model *model, const char *name,
                      int64_t value);
int tcx_model_set_double(tcx_ctx *ctx, tcx_model *model, const char *name,
                         double value);

/* Writes the model to PATH atomically (PATH.tmp, then rename). */
int tcx_model_write(tcx_ctx *ctx, const char *path, const tcx_model *model);

/* Reads a model, split over the context's ranks. Attributes are not read
 * back. The caller frees *model. */
int tcx_model_read(tcx_ctx *ctx, const char *path, tcx_model **model);

#ifdef __cplusplus
}
#endif

#endif
