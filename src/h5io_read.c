/* Collective reads: the input data set in column blocks, column datasets of
 * a model, small replicated datasets and root attributes. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5io_internal.h"

/* Opens the input dataset and checks its schema: [T, p] or [nt, ns, p]
 * numbers with at least one row and one column. Not collective. */
static int tcx_h5_open_input(tcx_ctx *ctx, hid_t file, const char *path,
                             const char *name, hid_t *dataset, int *n_dims,
                             int64_t dims[3])
{
  char shape[128];
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open_dataset(ctx, file, path, name, dataset));
  TCX_TRY(tcx_h5_get_shape(ctx, *dataset, path, name, n_dims, dims));
  tcx_h5_format_shape(shape, sizeof(shape), *n_dims, dims);
  TCX_CHECK(*n_dims == 2 || *n_dims == 3, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" has shape %s; expected 2 dimensions [T, p] "
            "(rows are samples, columns are variables) or 3 dimensions "
            "[nt, ns, p] (periods, samples per period, variables)",
            path, name, shape);
  TCX_TRY(tcx_h5_check_numeric(ctx, *dataset, path, name));
  TCX_CHECK(dims[0] > 0 && dims[1] > 0 && (*n_dims == 2 || dims[2] > 0), ctx,
            TCX_ERR_INPUT,
            "%s: dataset \"%s\" has shape %s: it has no %s", path, name,
            shape,
            dims[*n_dims - 1] == 0 ? "columns (variables)"
                                   : "rows (samples)");

cleanup:
  return rc;
}

/* Allocates this rank's block for an input of shape dims. */
static int tcx_h5_create_input_block(tcx_ctx *ctx, int n_dims,
                                     const int64_t dims[3], const char *path,
                                     const char *name, tcx_block **block)
{
  const int64_t n_periods = n_dims == 3 ? dims[0] : 1;
  const int64_t period_length = n_dims == 3 ? dims[1] : dims[0];
  const int64_t n_vars = dims[n_dims - 1];
  const int size = tcx_ctx_size(ctx);
  int64_t *period_rows = NULL;
  int64_t col_begin, n_local;
  int rc = TCX_OK;

  TCX_CHECK(n_periods <= INT_MAX, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" has %lld periods, more than tcorex supports "
            "(%d)",
            path, name, (long long)n_periods, INT_MAX);
  if (tcx_partition(ctx, n_vars, size, tcx_ctx_rank(ctx), &col_begin,
                    &n_local) != TCX_OK) {
    rc = tcx_error(ctx, TCX_ERR_USAGE,
                   "%s: dataset \"%s\" has %lld variables (columns), fewer "
                   "than the %d ranks of this run; every rank needs at least "
                   "one variable, so run with at most %lld ranks",
                   path, name, (long long)n_vars, size, (long long)n_vars);
    goto cleanup;
  }
  TCX_TRY(tcx_calloc(ctx, n_periods, sizeof(int64_t), "period lengths",
                     &period_rows));
  for (int64_t t = 0; t < n_periods; t++)
    period_rows[t] = period_length;
  TCX_TRY(tcx_block_create(ctx, (int)n_periods, period_rows, n_vars,
                           col_begin, n_local, block));

cleanup:
  free(period_rows);
  return rc;
}

/* Returns the missing-value marker as it compares after conversion. A
 * float32 dataset stores the marker rounded to float32, so the marker is
 * rounded the same way before the comparison. */
static int tcx_h5_marker_in_file_type(tcx_ctx *ctx, hid_t dataset,
                                      const char *path, double marker,
                                      double *converted)
{
  hid_t type = H5Dget_type(dataset);
  int rc = TCX_OK;

  TCX_CHECK(type >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the type of the input dataset", path);
  *converted = marker;
  if (H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == sizeof(float))
    *converted = (double)(float)marker;

cleanup:
  return tcx_h5_close(ctx, rc, type, path);
}

/* Stores the error for an infinite value at index k of the block. */
static int tcx_h5_infinite_value(tcx_ctx *ctx, const tcx_block *block,
                                 int64_t k, const char *path,
                                 const char *name)
{
  const int64_t row = k / block->n_local;
  const int64_t column = block->col_begin + k % block->n_local;
  const double value = block->data[k];

  if (block->n_periods == 1)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s: dataset \"%s\" has an infinite value (%g) at row "
                     "%lld, column %lld (0-based); replace it with NaN or a "
                     "missing-value marker",
                     path, name, value, (long long)row, (long long)column);
  {
    const int64_t period_length = block->period_begin[1];

    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s: dataset \"%s\" has an infinite value (%g) in "
                     "period %lld, row %lld of that period, column %lld "
                     "(0-based); replace it with NaN or a missing-value "
                     "marker",
                     path, name, value, (long long)(row / period_length),
                     (long long)(row % period_length), (long long)column);
  }
}

/* Turns marker values into NaN and rejects infinite values. */
static int tcx_h5_clean_block(tcx_ctx *ctx, tcx_block *block,
                              int has_missing, double marker,
                              const char *path, const char *name)
{
  const int64_t count = block->n_rows * block->n_local;

  for (int64_t k = 0; k < count; k++) {
    if (has_missing && block->data[k] == marker)
      block->data[k] = NAN;
    else if (isinf(block->data[k]))
      return tcx_h5_infinite_value(ctx, block, k, path, name);
  }
  return TCX_OK;
}

/* Returns the native memory type of a numeric dataset's stored type, at
 * most 8 bytes wide. The caller closes *stored. */
static int tcx_h5_stored_type(tcx_ctx *ctx, hid_t dataset, const char *path,
                              const char *name, hid_t *stored)
{
  hid_t file_type = H5Dget_type(dataset);
  int rc = TCX_OK;

  *stored = -1;
  TCX_CHECK(file_type >= 0, ctx, TCX_ERR_INPUT,
            "%s: cannot read the type of dataset \"%s\"", path, name);
  *stored = H5Tget_native_type(file_type, H5T_DIR_ASCEND);
  TCX_CHECK(*stored >= 0, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" has a type with no native equivalent; store "
            "it as float32, float64 or an integer type",
            path, name);
  if (H5Tget_size(*stored) > sizeof(double)) {
    H5Tclose(*stored);
    *stored = H5Tcopy(H5T_NATIVE_DOUBLE);
    TCX_CHECK(*stored >= 0, ctx, TCX_ERR_INTERNAL,
              "%s: H5Tcopy failed while reading \"%s\"", path, name);
  }

cleanup:
  if (file_type >= 0)
    H5Tclose(file_type);
  return rc;
}

/* Reads the rank's columns of an open input dataset into block. */
static int tcx_h5_fill_block(tcx_ctx *ctx, hid_t dataset, int n_dims,
                             const int64_t dims[3],
                             const tcx_read_options *options,
                             int64_t max_transfer_bytes, tcx_block *block,
                             const char *path, const char *name)
{
  const int size = tcx_ctx_size(ctx);
  const int64_t n_vars = block->n_vars;
  const int64_t max_local = n_vars / size + (n_vars % size != 0);
  hid_t transfer = -1, stored = -1;
  double marker = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_create_transfer(ctx, 0, path,
                                                     &transfer)));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_stored_type(ctx, dataset, path, name,
                                                 &stored)));
  /* Reading in the stored type keeps the MPI-IO transfer collective: HDF5
   * 1.10 falls back to independent I/O when it converts types during a
   * collective read. The block is then widened to double in place, which
   * fits because no stored type is wider than 8 bytes. */
  rc = tcx_h5_transfer_columns(ctx, dataset, transfer, stored, 0, n_dims,
                               dims, block->col_begin, block->n_local,
                               max_local, max_transfer_bytes, block->data,
                               path, name);
  if (rc == TCX_OK && H5Tequal(stored, H5T_NATIVE_DOUBLE) <= 0 &&
      H5Tconvert(stored, H5T_NATIVE_DOUBLE,
                 (size_t)(block->n_rows * block->n_local), block->data, NULL,
                 H5P_DEFAULT) < 0)
    rc = tcx_error(ctx, TCX_ERR_INPUT,
                   "%s: converting dataset \"%s\" to double failed; store it "
                   "as float32, float64 or an integer type",
                   path, name);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  if (options && options->has_missing)
    rc = tcx_h5_marker_in_file_type(ctx, dataset, path,
                                    options->missing_value, &marker);
  if (rc == TCX_OK)
    rc = tcx_h5_clean_block(ctx, block, options && options->has_missing,
                            marker, path, name);

cleanup:
  rc = tcx_h5_close(ctx, rc, stored, path);
  rc = tcx_h5_close(ctx, rc, transfer, path);
  return tcx_ctx_agree(ctx, rc);
}

int tcx_h5_read_block_batched(tcx_ctx *ctx, const char *path,
                              const tcx_read_options *options,
                              int64_t max_transfer_bytes, tcx_block **block)
{
  const char *name = options && options->dataset ? options->dataset : "/data";
  hid_t file = -1, dataset = -1;
  tcx_block *result = NULL;
  int n_dims = 0;
  int64_t dims[3] = {0, 0, 0};
  int rc = TCX_OK;

  *block = NULL;
  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_h5_open_input(ctx, file, path, name, &dataset, &n_dims, dims);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  rc = tcx_h5_create_input_block(ctx, n_dims, dims, path, name, &result);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_h5_fill_block(ctx, dataset, n_dims, dims, options,
                            max_transfer_bytes, result, path, name));

cleanup:
  rc = tcx_h5_close(ctx, rc, dataset, path);
  rc = tcx_h5_close(ctx, rc, file, path);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc == TCX_OK)
    *block = result;
  else
    tcx_block_destroy(&result);
  return rc;
}

int tcx_h5_read_block(tcx_ctx *ctx, const char *path,
                      const tcx_read_options *options, tcx_block **block)
{
  return tcx_h5_read_block_batched(ctx, path, options, TCX_H5_TRANSFER_BYTES,
                                   block);
}

int tcx_h5_dataset_shape(tcx_ctx *ctx, const char *path, const char *dataset,
                         int *rank_out, int64_t dims[3])
{
  const char *name = dataset ? dataset : "/data";
  hid_t file = -1, object = -1;
  int rc = TCX_OK;

  *rank_out = 0;
  dims[0] = dims[1] = dims[2] = 0;
  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_open_dataset(ctx, file, path, name,
                                                 &object)));
  rc = tcx_h5_get_shape(ctx, object, path, name, rank_out, dims);

cleanup:
  rc = tcx_h5_close(ctx, rc, object, path);
  rc = tcx_h5_close(ctx, rc, file, path);
  return tcx_ctx_agree(ctx, rc);
}

/* Opens a column dataset and checks that its shape is expected_dims. */
static int tcx_h5_open_columns(tcx_ctx *ctx, hid_t file, const char *path,
                               const char *name, int n_dims,
                               const int64_t *expected_dims, hid_t *dataset)
{
  char found[128], expected[128];
  int found_dims = 0;
  int64_t dims[3];
  int same;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open_dataset(ctx, file, path, name, dataset));
  TCX_TRY(tcx_h5_get_shape(ctx, *dataset, path, name, &found_dims, dims));
  TCX_TRY(tcx_h5_check_numeric(ctx, *dataset, path, name));
  same = found_dims == n_dims;
  for (int d = 0; same && d < n_dims; d++)
    same = dims[d] == expected_dims[d];
  tcx_h5_format_shape(found, sizeof(found), found_dims, dims);
  tcx_h5_format_shape(expected, sizeof(expected), n_dims, expected_dims);
  TCX_CHECK(same, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" has shape %s, expected %s; the file does "
            "not match the sizes in its attributes",
            path, name, found, expected);

cleanup:
  return rc;
}

/* Reads this rank's slab of an open column dataset. */
static int tcx_h5_read_open_columns(tcx_ctx *ctx, hid_t dataset, int n_dims,
                                    const int64_t *dims, int64_t col_begin,
                                    int64_t n_local, double *local,
                                    const char *path, const char *name)
{
  int64_t max_local = n_local;
  hid_t transfer = -1;
  int rc = TCX_OK;

  TCX_TRY_MPI(ctx, MPI_Allreduce(&n_local, &max_local, 1, MPI_INT64_T,
                                 MPI_MAX, tcx_ctx_comm(ctx)));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_create_transfer(ctx, 0, path,
                                                     &transfer)));
  rc = tcx_h5_transfer_columns(ctx, dataset, transfer, H5T_NATIVE_DOUBLE, 0,
                               n_dims, dims, col_begin, n_local, max_local,
                               TCX_H5_TRANSFER_BYTES, local, path, name);

cleanup:
  rc = tcx_h5_close(ctx, rc, transfer, path);
  return tcx_ctx_agree(ctx, rc);
}

int tcx_h5_read_columns(tcx_ctx *ctx, const char *path, const char *name,
                        int n_dims, const int64_t *expected_dims,
                        int64_t col_begin, int64_t n_local, double **local)
{
  hid_t file = -1, dataset = -1;
  int64_t count = n_local;
  int rc = TCX_OK;

  *local = NULL;
  rc = n_dims >= 1 && n_dims <= 3 && col_begin >= 0 && n_local >= 0 &&
               col_begin + n_local <= expected_dims[n_dims - 1]
           ? TCX_OK
           : tcx_error(ctx, TCX_ERR_INTERNAL,
                       "invalid request for columns %lld..%lld of \"%s\" in "
                       "%s",
                       (long long)col_begin,
                       (long long)(col_begin + n_local - 1), name, path);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_h5_open_columns(ctx, file, path, name, n_dims, expected_dims,
                           &dataset);
  for (int d = 0; d + 1 < n_dims; d++)
    count *= expected_dims[d];
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, count, sizeof(double), name, local);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(tcx_h5_read_open_columns(ctx, dataset, n_dims, expected_dims,
                                   col_begin, n_local, *local, path, name));

cleanup:
  rc = tcx_h5_close(ctx, rc, dataset, path);
  rc = tcx_h5_close(ctx, rc, file, path);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK) {
    free(*local);
    *local = NULL;
  }
  return rc;
}

int tcx_h5_read_replicated(tcx_ctx *ctx, const char *path, const char *name,
                           int *n_dims, int64_t dims[3], double **data)
{
  hid_t file = -1, transfer = -1;
  int rc = TCX_OK;

  *data = NULL;
  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_create_transfer(ctx, 0, path,
                                                     &transfer)));
  rc = tcx_h5_read_whole(ctx, file, transfer, path, name, n_dims, dims, data);

cleanup:
  rc = tcx_h5_close(ctx, rc, transfer, path);
  rc = tcx_h5_close(ctx, rc, file, path);
  rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK) {
    free(*data);
    *data = NULL;
  }
  return rc;
}

int tcx_h5_read_attr_string(tcx_ctx *ctx, const char *path, const char *name,
                            char *value, size_t value_size)
{
  hid_t file = -1;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_h5_get_attr_string(ctx, file, path, name, value, value_size);

cleanup:
  rc = tcx_h5_close(ctx, rc, file, path);
  return tcx_ctx_agree(ctx, rc);
}

int tcx_h5_read_attr_double(tcx_ctx *ctx, const char *path, const char *name,
                            double *value)
{
  hid_t file = -1;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_h5_get_attr_double(ctx, file, path, name, value);

cleanup:
  rc = tcx_h5_close(ctx, rc, file, path);
  return tcx_ctx_agree(ctx, rc);
}
