/* tcorex export: writes per-variable results of a model into an image with
 * the geometry of the converted input. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/h5io.h"
#include "tcorex/nifti.h"

typedef struct export_values {
  const char *model;
  const char *reference;
  const char *what;
  int64_t period;
  const char *output;
} export_values;

static const tcx_option_spec export_options[] = {
    {"--model", TCX_OPT_STRING, offsetof(export_values, model), "FILE",
     "model file written by 'tcorex fit'", 0, 0, 0, 0, NULL, 1},
    {"--reference", TCX_OPT_STRING, offsetof(export_values, reference),
     "FILE", "HDF5 file written by 'tcorex convert --nifti' (the geometry)", 0,
     0, 0, 0, NULL, 1},
    {"--what", TCX_OPT_CHOICE, offsetof(export_values, what), "WHAT",
     "what to export: clusters (1-based factor label, 0 outside the mask)", 0,
     0, 0, 0, "clusters", 0},
    {"--period", TCX_OPT_INT, offsetof(export_values, period), "T",
     "period of the model to export, 0-based (default 0)", 0, 1e9, 0, 0, NULL,
     0},
    {"--output", TCX_OPT_STRING, offsetof(export_values, output), "FILE",
     "NIfTI image to write (.nii or .nii.gz)", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void export_defaults(void *values)
{
  export_values *v = values;

  v->what = "clusters";
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

/* Fails unless path carries the root attribute format = "tcorex-model". */
static int check_model_file(tcx_ctx *ctx, const char *path)
{
  char format[64] = "";
  int rc = tcx_h5_read_attr_string(ctx, path, "format", format,
                                   sizeof(format));

  if (rc != TCX_OK || strcmp(format, "tcorex-model") != 0)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "model file %s is not a model written by 'tcorex fit' "
                     "(no root attribute format = \"tcorex-model\"); pass "
                     "the --output of a fit",
                     path);
  return TCX_OK;
}

static int run_export(tcx_ctx *ctx, void *values)
{
  const export_values *v = values;
  int32_t *labels = NULL;
  int64_t n_vars = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_cli_check_distinct(ctx, "--model", v->model, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--reference", v->reference,
                                 "--output", v->output));
  TCX_TRY(tcx_cli_check_input(ctx, "--model", v->model, "model file"));
  TCX_TRY(tcx_cli_check_input(ctx, "--reference", v->reference,
                              "reference file"));
  TCX_TRY(check_model_file(ctx, v->model));
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
    "[--period T] --output OUT.nii[.gz]",
    export_options,
    run_export,
    sizeof(export_values),
    export_defaults,
    NULL,
    0,
};
