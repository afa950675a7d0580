/* tcorex convert: NIfTI or CSV input to the HDF5 input schema. */
#include <stddef.h>
#include <string.h>

#include "commands.h"
#include "tcorex/csv.h"
#include "tcorex/h5io.h"
#include "tcorex/nifti.h"

typedef struct convert_values {
  const char *nifti;
  const char *mask;
  const char *csv;
  const char *header;
  const char *output;
} convert_values;

static const tcx_option_spec convert_options[] = {
    {"--nifti", TCX_OPT_STRING, offsetof(convert_values, nifti), "BOLD",
     "4-D NIfTI-1 image (.nii or .nii.gz), one volume per time point", 0, 0, 0,
     0, NULL, 0},
    {"--mask", TCX_OPT_STRING, offsetof(convert_values, mask), "MASK",
     "3-D NIfTI mask on the same grid, nonzero inside (default: voxels whose "
     "time series varies)",
     0, 0, 0, 0, NULL, 0},
    {"--csv", TCX_OPT_STRING, offsetof(convert_values, csv), "FILE",
     "comma-separated table, one row per time point; empty or NA is missing",
     0, 0, 0, 0, NULL, 0},
    {"--header", TCX_OPT_CHOICE, offsetof(convert_values, header), "WHEN",
     "whether the CSV's first line holds column names: auto, yes or no "
     "(default auto)",
     0, 0, 0, 0, "auto|yes|no", 0},
    {"--output", TCX_OPT_STRING, offsetof(convert_values, output), "FILE",
     "HDF5 file to write; /data is [T, p]", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void convert_defaults(void *values)
{
  convert_values *v = values;

  v->header = "auto";
}

static int run_convert(tcx_ctx *ctx, void *values)
{
  const convert_values *v = values;
  int64_t dims[3] = {0, 0, 0};
  int n_dims = 0;
  int rc = TCX_OK;

  TCX_CHECK((v->nifti != NULL) != (v->csv != NULL), ctx, TCX_ERR_USAGE,
            "give exactly one of --nifti and --csv");
  TCX_CHECK(!v->mask || v->nifti, ctx, TCX_ERR_USAGE,
            "--mask applies to --nifti input only");
  TCX_TRY(tcx_cli_check_distinct(ctx, "--nifti", v->nifti, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--mask", v->mask, "--output",
                                 v->output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--csv", v->csv, "--output",
                                 v->output));
  if (v->nifti) {
    TCX_TRY(tcx_nifti_convert(ctx, v->nifti, v->mask, v->output));
  } else {
    const int has_header = strcmp(v->header, "yes") == 0   ? 1
                           : strcmp(v->header, "no") == 0 ? 0
                                                          : -1;

    TCX_TRY(tcx_csv_convert(ctx, v->csv, v->output, has_header));
  }
  TCX_TRY(tcx_h5_dataset_shape(ctx, v->output, "/data", &n_dims, dims));
  tcx_log(ctx, TCX_LOG_WARNING,
          "convert: wrote %s from %s: /data has %lld sample%s of %lld "
          "variable%s",
          v->output, v->nifti ? v->nifti : v->csv, (long long)dims[0],
          dims[0] == 1 ? "" : "s", (long long)dims[1],
          dims[1] == 1 ? "" : "s");

cleanup:
  return rc;
}

const tcx_command tcx_command_convert = {
    "convert",
    "Convert a 4-D NIfTI image or a CSV table into the HDF5 input schema.",
    "tcorex convert (--nifti BOLD.nii[.gz] [--mask MASK.nii[.gz]] | --csv "
    "FILE [--header auto|yes|no]) --output OUT.h5",
    convert_options,
    run_convert,
    sizeof(convert_values),
    convert_defaults,
    NULL,
    0,
};
