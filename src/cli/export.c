/* tcorex export: writes per-variable results of a model into an image with
 * the geometry of the converted input. */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/block.h"
#include "tcorex/changepoints.h"
#include "tcorex/h5io.h"
#include "tcorex/model.h"
#include "tcorex/nifti.h"

typedef struct export_values {
  const char *model;
  const char *changes;
  const char *reference;
  const char *what;
  int64_t period;
  int64_t pair; /* -1: not given */
  const char *matrices;
  const char *output;
} export_values;

static const tcx_option_spec export_options[] = {
    {"--model", TCX_OPT_STRING, offsetof(export_values, model), "FILE",
     "model file written by 'tcorex fit'", 0, 0, 0, 0, NULL, 0},
    {"--changes", TCX_OPT_STRING, offsetof(export_values, changes), "FILE",
     "with --what changes: file written by 'tcorex changepoints', read "
     "instead of computing the row norms from --model",
     0, 0, 0, 0, NULL, 0},
    {"--reference", TCX_OPT_STRING, offsetof(export_values, reference),
     "FILE", "HDF5 file written by 'tcorex convert --nifti' (the geometry)", 0,
     0, 0, 0, NULL, 1},
    {"--what", TCX_OPT_CHOICE, offsetof(export_values, what), "WHAT",
     "what to export: clusters (1-based factor label, 0 outside the mask) or "
     "changes (row norm of the difference of the matrices of the pair of "
     "periods --pair, float32)",
     0, 0, 0, 0, "clusters|changes", 0},
    {"--period", TCX_OPT_INT, offsetof(export_values, period), "T",
     "period of the model to export, 0-based (default 0)", 0, 1e9, 0, 0, NULL,
     0},
    {"--pair", TCX_OPT_INT, offsetof(export_values, pair), "T",
     "with --what changes: the pair of periods (T, T+1) to export, 0-based",
     0, 1e9, 0, 0, NULL, 0},
    {"--matrices", TCX_OPT_CHOICE, offsetof(export_values, matrices), "KIND",
     "with --what changes --model: matrices whose difference gives the row "
     "norms, as in 'tcorex changepoints' (default partial-correlation)",
     0, 0, 0, 0, "partial-correlation|precision|correlation", 0},
    {"--output", TCX_OPT_STRING, offsetof(export_values, output), "FILE",
     "NIfTI image to write (.nii or .nii.gz)", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void export_defaults(void *values)
{
  export_values *v = values;

  v->what = "clusters";
  v->pair = -1;
  v->matrices = "partial-correlation";
}

/* Reads the labels of one period on every rank (p int32 values: the image
 * is written by one rank anyway) and makes them 1-based. */
static int read_cluster_labels(tcx_ctx *ctx, const export_values *v,
                               int32_t **labels, int64_t *n_vars)
{
  double *clusters = NULL;
  int64_t dims[3] = {0, 0, 0};
  int n_dims = 0;
  int rc = TCX_OK;

  *labels = NULL;
  TCX_TRY(tcx_h5_read_replicated(ctx, v->model, "/clusters", &n_dims, dims,
                                 &clusters));
  TCX_CHECK(n_dims == 2, ctx, TCX_ERR_INPUT,
            "%s: /clusters has %d dimensions, expected [nt, p]; is this a "
            "tcorex model file?",
            v->model, n_dims);
  TCX_CHECK(v->period < dims[0], ctx, TCX_ERR_USAGE,
            "invalid value for --period: %lld; the model %s has %lld "
            "period(s), numbered from 0",
            (long long)v->period, v->model, (long long)dims[0]);
  TCX_TRY(tcx_calloc(ctx, dims[1], sizeof(int32_t), "labels", labels));
  for (int64_t i = 0; i < dims[1]; i++)
    (*labels)[i] = (int32_t)clusters[v->period * dims[1] + i] + 1;
  *n_vars = dims[1];

cleanup:
  free(clusters);
  return rc;
}

/* Checks the combination of options for --what: clusters need --model,
 * changes need --pair and exactly one of --model and --changes. */
static int check_what(tcx_ctx *ctx, const export_values *v)
{
  const int changes = strcmp(v->what, "changes") == 0;
  int rc = TCX_OK;

  if (!changes) {
    TCX_CHECK(v->model, ctx, TCX_ERR_USAGE,
              "missing --model: --what clusters exports a model's labels");
    TCX_CHECK(!v->changes && v->pair < 0, ctx, TCX_ERR_USAGE,
              "--changes and --pair apply to --what changes only; remove "
              "them or pass --what changes");
    return TCX_OK;
  }
  TCX_CHECK((v->model != NULL) != (v->changes != NULL), ctx, TCX_ERR_USAGE,
            "--what changes needs exactly one of --model (compute the row "
            "norms) and --changes (read them from 'tcorex changepoints')");
  TCX_CHECK(v->pair >= 0, ctx, TCX_ERR_USAGE,
            "missing --pair T: --what changes exports the change of the "
            "pair of periods (T, T+1)");

cleanup:
  return rc;
}

/* Gathers the column blocks of a p-vector on rank 0 into *full (NULL on the
 * other ranks). The image is written by rank 0 alone, so rank 0 needs all
 * p values once. Collective. */
static int gather_on_root(tcx_ctx *ctx, int64_t n_vars, int64_t n_local,
                          const double *local, double **full)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  int *counts = NULL, *offsets = NULL;
  int status = TCX_OK;
  int rc = TCX_OK;

  *full = NULL;
  if (n_vars > INT_MAX)
    status = tcx_error(ctx, TCX_ERR_UNSUPPORTED,
                       "cannot export %lld variables in one image (limit "
                       "%d)",
                       (long long)n_vars, INT_MAX);
  if (status == TCX_OK && rank == 0)
    status = tcx_calloc(ctx, n_vars, sizeof(double), "exported values", full);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, size, sizeof(int), "gather counts", &counts);
  if (status == TCX_OK)
    status = tcx_calloc(ctx, size, sizeof(int), "gather offsets", &offsets);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  for (int r = 0; r < size; r++) {
    int64_t begin = 0, count = 0;

    TCX_TRY(tcx_partition(ctx, n_vars, size, r, &begin, &count));
    counts[r] = (int)count;
    offsets[r] = (int)begin;
  }
  TCX_TRY_MPI(ctx, MPI_Gatherv(local, (int)n_local, MPI_DOUBLE, *full, counts,
                               offsets, MPI_DOUBLE, 0, tcx_ctx_comm(ctx)));

cleanup:
  free(offsets);
  free(counts);
  if (rc != TCX_OK) {
    free(*full);
    *full = NULL;
  }
  return rc;
}

/* Computes the row norms of the pair (v->pair, v->pair + 1) from the
 * model's factors and gathers them on rank 0. */
static int change_from_model(tcx_ctx *ctx, const export_values *v,
                             int64_t *n_vars, double **full)
{
  tcx_changepoints_options options;
  tcx_model *model = NULL;
  double *local = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_cli_check_model_file(ctx, v->model));
  TCX_TRY(tcx_model_read(ctx, v->model, &model));
  TCX_CHECK(v->pair + 1 < model->n_periods, ctx, TCX_ERR_USAGE,
            "invalid value for --pair: %lld; the model %s has %d period(s), "
            "so pairs are numbered 0 to %d",
            (long long)v->pair, v->model, model->n_periods,
            model->n_periods - 2);
  TCX_TRY(tcx_ctx_agree(ctx, tcx_calloc(ctx, model->n_local, sizeof(double),
                                        "row norms", &local)));
  tcx_changepoints_options_default(&options);
  if (strcmp(v->matrices, "precision") == 0)
    options.matrices = TCX_CHANGEPOINTS_PRECISION;
  else if (strcmp(v->matrices, "correlation") == 0)
    options.matrices = TCX_CHANGEPOINTS_CORRELATION;
  {
    const int64_t block = model->n_factors * model->n_local;

    TCX_TRY(tcx_changepoints_pair_row_norms(
        ctx, &options, model->n_factors, model->n_local,
        model->factors + v->pair * block,
        model->factors + (v->pair + 1) * block, local));
  }
  *n_vars = model->n_vars;
  TCX_TRY(gather_on_root(ctx, model->n_vars, model->n_local, local, full));

cleanup:
  free(local);
  tcx_model_destroy(&model);
  return rc;
}

/* Reads row v->pair of /row_norms in a file of 'tcorex changepoints', each
 * rank its columns, and gathers it on rank 0. */
static int change_from_file(tcx_ctx *ctx, const export_values *v,
                            int64_t *n_vars, double **full)
{
  char format[64] = "";
  int64_t dims[3] = {0, 0, 0}, col_begin = 0, n_local = 0;
  double *local = NULL;
  int n_dims = 0;
  int rc = TCX_OK;

  if (tcx_h5_read_attr_string(ctx, v->changes, "format", format,
                              sizeof(format)) != TCX_OK ||
      strcmp(format, "tcorex-changepoints") != 0)
    TCX_CHECK(0, ctx, TCX_ERR_INPUT,
              "%s is not a file written by 'tcorex changepoints' (no root "
              "attribute format = \"tcorex-changepoints\"); pass its "
              "--output",
              v->changes);
  TCX_TRY(tcx_h5_dataset_shape(ctx, v->changes, "/row_norms", &n_dims, dims));
  TCX_CHECK(n_dims == 2, ctx, TCX_ERR_INPUT,
            "%s: /row_norms has %d dimensions, expected [nt - 1, p]",
            v->changes, n_dims);
  TCX_CHECK(v->pair < dims[0], ctx, TCX_ERR_USAGE,
            "invalid value for --pair: %lld; %s has %lld pair(s), numbered "
            "from 0",
            (long long)v->pair, v->changes, (long long)dims[0]);
  TCX_TRY(tcx_partition(ctx, dims[1], tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                        &col_begin, &n_local));
  TCX_TRY(tcx_h5_read_columns(ctx, v->changes, "/row_norms", 2, dims,
                              col_begin, n_local, &local));
  *n_vars = dims[1];
  TCX_TRY(gather_on_root(ctx, dims[1], n_local, local + v->pair * n_local,
                         full));

cleanup:
  free(local);
  return rc;
}

static int export_changes(tcx_ctx *ctx, const export_values *v)
{
  double *values = NULL;
  int64_t n_vars = 0;
  int rc = TCX_OK;

  if (v->changes) {
    TCX_TRY(tcx_cli_check_distinct(ctx, "--changes", v->changes, "--output",
                                   v->output));
    TCX_TRY(tcx_cli_check_input(ctx, "--changes", v->changes,
                                "change-point file"));
    TCX_TRY(change_from_file(ctx, v, &n_vars, &values));
  } else {
    TCX_TRY(change_from_model(ctx, v, &n_vars, &values));
  }
  /* Only rank 0 reads values; the other ranks pass NULL. */
  TCX_TRY(tcx_nifti_export_values(ctx, v->reference, values, n_vars,
                                  v->output));
  tcx_log(ctx, TCX_LOG_WARNING,
          "export: wrote the changes of periods (%lld, %lld) to %s",
          (long long)v->pair, (long long)v->pair + 1, v->output);

cleanup:
  free(values);
  return rc;
}

static int run_export(tcx_ctx *ctx, void *values)
{
  const export_values *v = values;
  int32_t *labels = NULL;
  int64_t n_vars = 0;
  int rc = TCX_OK;

  TCX_TRY(check_what(ctx, v));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--model", v->model, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--reference", v->reference,
                                 "--output", v->output));
  if (v->model)
    TCX_TRY(tcx_cli_check_input(ctx, "--model", v->model, "model file"));
  TCX_TRY(tcx_cli_check_input(ctx, "--reference", v->reference,
                              "reference file"));
  if (strcmp(v->what, "changes") == 0)
    return export_changes(ctx, v);

  TCX_TRY(tcx_cli_check_model_file(ctx, v->model));
  TCX_TRY(read_cluster_labels(ctx, v, &labels, &n_vars));
  TCX_TRY(tcx_nifti_export_labels(ctx, v->reference, labels, n_vars,
                                  v->output));
  tcx_log(ctx, TCX_LOG_WARNING, "export: wrote %s of period %lld to %s",
          v->what, (long long)v->period, v->output);

cleanup:
  free(labels);
  return rc;
}

const tcx_command tcx_command_export = {
    "export",
    "Write per-variable model results as a NIfTI image of the input's grid.",
    "tcorex export --model MODEL.h5 --reference CONVERTED.h5 --what clusters "
    "[--period T] --output OUT.nii[.gz]\n"
    "       tcorex export (--model MODEL.h5 | --changes CP.h5) --reference "
    "CONVERTED.h5 --what changes --pair T --output OUT.nii[.gz]",
    export_options,
    run_export,
    sizeof(export_values),
    export_defaults,
    NULL,
    0,
};
