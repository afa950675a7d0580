/* Outputs of change-point detection. All ranks write the HDF5 file through
 * h5io. The CSV table and the PLplot drawing of the score series are small
 * (one entry per pair of periods), so rank 0 writes them under a temporary
 * name and then renames them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plplot/plplot.h>

#include "tcorex/changepoints.h"
#include "tcorex/h5io.h"

/* Returns path + suffix in a new string, or NULL when out of memory. */
static char *with_suffix(const char *path, const char *suffix)
{
  const size_t length = strlen(path) + strlen(suffix) + 1;
  char *joined = malloc(length);

  if (joined)
    snprintf(joined, length, "%s%s", path, suffix);
  return joined;
}

/* Renames the finished temporary file onto path. Local. */
static int commit_file(tcx_ctx *ctx, const char *temporary, const char *path)
{
  if (rename(temporary, path) != 0) {
    const int error = errno;

    remove(temporary);
    return tcx_error(ctx, TCX_ERR_OUTPUT,
                     "cannot rename %s to %s: %s; check the permissions of "
                     "the output folder",
                     temporary, path, strerror(error));
  }
  return TCX_OK;
}

static int write_csv_here(tcx_ctx *ctx, const char *path,
                          const tcx_changepoints_result *result)
{
  char *temporary = with_suffix(path, ".tmp");
  FILE *file = NULL;
  int failed = 0;
  int rc = TCX_OK;

  TCX_CHECK(temporary, ctx, TCX_ERR_MEMORY, "out of memory for a file name");
  file = fopen(temporary, "w");
  TCX_CHECK(file, ctx, TCX_ERR_OUTPUT,
            "cannot create %s: %s; check that the folder exists and is "
            "writable",
            temporary, strerror(errno));
  failed |= fprintf(file, "left_period,right_period,score,change\n") < 0;
  for (int k = 0; k < result->n_pairs; k++)
    failed |= fprintf(file, "%d,%d,%.17g,%d\n", k, k + 1, result->scores[k],
                      (int)result->changes[k]) < 0;
  failed |= fclose(file) != 0;
  file = NULL;
  if (failed) {
    const int error = errno;

    remove(temporary);
    TCX_CHECK(0, ctx, TCX_ERR_OUTPUT,
              "cannot write %s: %s; check the free space of its folder",
              temporary, strerror(error));
  }
  TCX_TRY(commit_file(ctx, temporary, path));

cleanup:
  if (file)
    fclose(file);
  free(temporary);
  return rc;
}

int tcx_changepoints_write_csv(tcx_ctx *ctx, const char *path,
                               const tcx_changepoints_result *result)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = write_csv_here(ctx, path, result);
  return tcx_ctx_agree(ctx, rc);
}

/* Returns 1 when this PLplot build has the pngcairo device. PLplot prompts
 * on standard input for a device when the requested one is missing, so the
 * list is checked before plinit(). */
static int has_pngcairo(void)
{
  const char *menus[128], *names[128];
  const char **menu_list = menus, **name_list = names;
  int count = 128;

  /* count is the capacity on entry and the number of devices on return. */
  plgDevs(&menu_list, &name_list, &count);
  for (int k = 0; k < count; k++)
    if (strcmp(names[k], "pngcairo") == 0)
      return 1;
  return 0;
}

/* Checks that the folder of path accepts a new file, because PLplot ends
 * the process when it cannot open its output. */
static int check_writable(tcx_ctx *ctx, const char *temporary)
{
  FILE *probe = fopen(temporary, "w");

  if (!probe)
    return tcx_error(ctx, TCX_ERR_OUTPUT,
                     "cannot create %s: %s; check that the folder exists "
                     "and is writable",
                     temporary, strerror(errno));
  fclose(probe);
  return TCX_OK;
}

/* Draws the series on a PLplot stream of its own. PLplot keeps its state
 * in library globals, which is why only rank 0 draws and the stream is
 * ended before returning. */
static void draw(const char *temporary, const tcx_changepoints_result *result,
                 const double *x)
{
  const int n = result->n_pairs;
  double top = result->cutoff, line_x[2], line_y[2];
  PLINT stream = 0, previous = 0;
  char title[160];

  for (int k = 0; k < n; k++)
    top = result->scores[k] > top ? result->scores[k] : top;
  top = top > 0.0 ? 1.1 * top : 1.0;
  snprintf(title, sizeof(title), "%s norm of the %s difference",
           result->options.norm == TCX_CHANGEPOINTS_SPECTRAL ? "spectral"
                                                             : "Frobenius",
           tcx_changepoints_matrices_name(result->options.matrices));

  plgstrm(&previous);
  plmkstrm(&stream);
  plsdev("pngcairo");
  plsfnam(temporary);
  plsetopt("geometry", "800x480");
  plscolbg(255, 255, 255);
  plinit();
  /* Colour 15 of PLplot's default map 0 is white, invisible on the white
   * background, so it is redefined as black for the axes and labels. */
  plscol0(15, 0, 0, 0);
  plcol0(15);
  plenv(-0.5, n - 0.5, 0.0, top, 0, 0);
  pllab("pair (t, t+1), labelled by t", "change score", title);

  plcol0(9);
  plline(n, x, result->scores);
  plpoin(n, x, result->scores, 17);

  pllsty(2);
  plcol0(3);
  line_x[0] = -0.5;
  line_x[1] = n - 0.5;
  line_y[0] = line_y[1] = result->cutoff;
  plline(2, line_x, line_y);
  pllsty(1);

  plcol0(1);
  plwidth(2.0);
  for (int k = 0; k < n; k++)
    if (result->changes[k])
      plpoin(1, &x[k], &result->scores[k], 4);
  plend1();
  plsstrm(previous);
}

static int plot_here(tcx_ctx *ctx, const char *path,
                     const tcx_changepoints_result *result)
{
  char *temporary = with_suffix(path, ".tmp.png");
  double *x = NULL;
  int rc = TCX_OK;

  TCX_CHECK(temporary, ctx, TCX_ERR_MEMORY, "out of memory for a file name");
  TCX_CHECK(has_pngcairo(), ctx, TCX_ERR_UNSUPPORTED,
            "PLplot has no pngcairo device, so %s cannot be drawn; install "
            "the Debian package plplot-driver-cairo",
            path);
  TCX_TRY(check_writable(ctx, temporary));
  TCX_TRY(tcx_calloc(ctx, result->n_pairs, sizeof(double), "plot abscissae",
                     &x));
  for (int k = 0; k < result->n_pairs; k++)
    x[k] = k;
  draw(temporary, result, x);
  TCX_TRY(commit_file(ctx, temporary, path));

cleanup:
  free(x);
  free(temporary);
  return rc;
}

int tcx_changepoints_plot(tcx_ctx *ctx, const char *path,
                          const tcx_changepoints_result *result)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = plot_here(ctx, path, result);
  return tcx_ctx_agree(ctx, rc);
}

static int write_arrays(tcx_ctx *ctx, tcx_h5_output *out,
                        const tcx_changepoints_result *result)
{
  const int64_t pairs[1] = {result->n_pairs};
  const int64_t norms[2] = {result->n_pairs, result->n_vars};
  int32_t *periods = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, 2 * (int64_t)result->n_pairs, sizeof(int32_t),
                     "period indices", &periods));
  for (int k = 0; k < result->n_pairs; k++) {
    periods[k] = k;
    periods[result->n_pairs + k] = k + 1;
  }
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/scores", TCX_H5_DOUBLE, 1,
                                  pairs, result->scores));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/changes", TCX_H5_INT32, 1,
                                  pairs, result->changes));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/left_period", TCX_H5_INT32, 1,
                                  pairs, periods));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/right_period", TCX_H5_INT32, 1,
                                  pairs, periods + result->n_pairs));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/row_norms", TCX_H5_DOUBLE, 2,
                               norms, result->col_begin, result->n_local,
                               result->row_norms));

cleanup:
  free(periods);
  return rc;
}

static int write_attrs(tcx_ctx *ctx, tcx_h5_output *out,
                       const char *model_path,
                       const tcx_changepoints_result *result)
{
  const tcx_changepoints_options *o = &result->options;
  const int spectral = o->norm == TCX_CHANGEPOINTS_SPECTRAL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "format",
                                   "tcorex-changepoints"));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "format_version", 1));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "model",
                                   model_path ? model_path : ""));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "norm",
                                   spectral ? "spectral" : "frobenius"));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "matrices",
                                   tcx_changepoints_matrices_name(o->matrices)));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "threshold_rule",
                                   "score > median + K * 1.4826 * MAD"));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "threshold_k", o->threshold));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "threshold", result->cutoff));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "median", result->median));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "mad", result->mad));
  if (spectral) {
    TCX_TRY(tcx_h5_write_attr_double(ctx, out, "spectral_tolerance",
                                     o->spectral_tolerance));
    TCX_TRY(tcx_h5_write_attr_int(ctx, out, "spectral_max_iter",
                                  o->spectral_max_iter));
  }
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_periods", result->n_pairs + 1));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_factors", result->n_factors));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "n_vars", result->n_vars));

cleanup:
  return rc;
}

int tcx_changepoints_write(tcx_ctx *ctx, const char *path,
                           const char *model_path,
                           const tcx_changepoints_result *result)
{
  tcx_h5_output *out = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_create(ctx, path, &out));
  TCX_TRY(write_arrays(ctx, out, result));
  TCX_TRY(write_attrs(ctx, out, model_path, result));
  TCX_TRY(tcx_h5_commit(ctx, &out));

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}
