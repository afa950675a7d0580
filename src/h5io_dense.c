/* Block-cyclic matrices to and from HDF5. Each rank selects the blocks it
 * stores with a union of regular hyperslabs (one for its full blocks, one
 * for a partial last block, per dimension). All ranks then move their parts
 * in collective H5Dwrite or H5Dread calls. */
#include <limits.h>
#include <stdlib.h>

#include "dense_internal.h"
#include "h5io_internal.h"

/* A regular set of blocks along one dimension, as H5Sselect_hyperslab
 * takes it. */
typedef struct cyclic_run {
  hsize_t start, stride, count, block;
} cyclic_run;

/* Describes the global indices of local blocks [k0, k1) of process proc
 * along a dimension of n indices in runs: the full blocks, then the
 * partial last block when it is among them. Returns the number of runs. */
static int cyclic_runs(int64_t n, int64_t block_size, int n_procs, int proc,
                       int64_t k0, int64_t k1, cyclic_run runs[2])
{
  const int64_t n_blocks = (n + block_size - 1) / block_size;
  int64_t full = 0, partial = -1;
  int count = 0;

  for (int64_t k = k0; k < k1; k++) {
    const int64_t global_block = k * n_procs + proc;

    if (global_block >= n_blocks)
      break;
    if ((global_block + 1) * block_size <= n)
      full++;
    else
      partial = global_block;
  }
  if (full > 0)
    runs[count++] = (cyclic_run){
        (hsize_t)((k0 * n_procs + proc) * block_size),
        (hsize_t)(n_procs * block_size), (hsize_t)full, (hsize_t)block_size};
  if (partial >= 0)
    runs[count++] = (cyclic_run){(hsize_t)(partial * block_size), 1, 1,
                                 (hsize_t)(n - partial * block_size)};
  return count;
}

/* Selects in file_space the entries of local column blocks [k0, k1) of a:
 * file dimension n_dims - 2 is the global column and n_dims - 1 the global
 * row, so that the file's row-major order matches the column-major local
 * array. Returns the number of selected entries in *selected. */
static int select_file_blocks(tcx_ctx *ctx, const tcx_dense *a, int n_dims,
                              int64_t slice, int64_t k0, int64_t k1,
                              hid_t file_space, int64_t *selected)
{
  const tcx_grid *grid = a->grid;
  cyclic_run cols[2], rows[2];
  const int n_col_runs = cyclic_runs(a->n_cols, a->block_size, grid->n_pcol,
                                     grid->my_col, k0, k1, cols);
  const int n_row_runs =
      cyclic_runs(a->n_rows, a->block_size, grid->n_prow, grid->my_row, 0,
                  (a->local_rows + a->block_size - 1) / a->block_size, rows);
  H5S_seloper_t operation = H5S_SELECT_SET;
  int rc = TCX_OK;

  *selected = 0;
  TCX_CHECK(H5Sselect_none(file_space) >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Sselect_none failed for a dense matrix");
  for (int c = 0; c < n_col_runs; c++)
    for (int r = 0; r < n_row_runs; r++) {
      const int lead = n_dims - 2;
      hsize_t start[3] = {(hsize_t)slice, 0, 0}, stride[3] = {1, 1, 1};
      hsize_t count[3] = {1, 1, 1}, block[3] = {1, 1, 1};

      start[lead] = cols[c].start;
      stride[lead] = cols[c].stride;
      count[lead] = cols[c].count;
      block[lead] = cols[c].block;
      start[lead + 1] = rows[r].start;
      stride[lead + 1] = rows[r].stride;
      count[lead + 1] = rows[r].count;
      block[lead + 1] = rows[r].block;
      TCX_CHECK(H5Sselect_hyperslab(file_space, operation, start, stride,
                                    count, block) >= 0,
                ctx, TCX_ERR_INTERNAL,
                "H5Sselect_hyperslab failed for the blocks of a dense "
                "matrix");
      operation = H5S_SELECT_OR;
      *selected += (int64_t)(cols[c].count * cols[c].block * rows[r].count *
                             rows[r].block);
    }

cleanup:
  return rc;
}

/* Moves local column blocks [k0, k1) of a between memory and the file. */
static int transfer_blocks(tcx_ctx *ctx, hid_t dataset, hid_t transfer,
                           int write, int n_dims, int64_t slice,
                           int64_t k0, int64_t k1, tcx_dense *a,
                           const char *path, const char *name)
{
  const hsize_t memory_dims[2] = {
      (hsize_t)(a->local_cols > 1 ? a->local_cols : 1),
      (hsize_t)a->leading_dim};
  hid_t file_space = H5Dget_space(dataset);
  hid_t memory_space = H5Screate_simple(2, memory_dims, NULL);
  int64_t selected = 0;
  herr_t status;
  int rc = TCX_OK;

  TCX_CHECK(file_space >= 0 && memory_space >= 0, ctx, TCX_ERR_INTERNAL,
            "HDF5 cannot create dataspaces for \"%s\" of %s", name, path);
  TCX_TRY(select_file_blocks(ctx, a, n_dims, slice, k0, k1, file_space,
                             &selected));
  if (selected == 0) {
    TCX_CHECK(H5Sselect_none(memory_space) >= 0, ctx, TCX_ERR_INTERNAL,
              "H5Sselect_none failed for \"%s\" of %s", name, path);
  } else {
    const int64_t first = k0 * a->block_size;
    const int64_t last = k1 * a->block_size < a->local_cols
                             ? k1 * a->block_size
                             : a->local_cols;
    const hsize_t start[2] = {(hsize_t)first, 0};
    const hsize_t count[2] = {(hsize_t)(last - first),
                              (hsize_t)a->local_rows};

    TCX_CHECK((last - first) * a->local_rows == selected, ctx,
              TCX_ERR_INTERNAL,
              "%lld local entries of \"%s\" but %lld selected in %s",
              (long long)((last - first) * a->local_rows), name,
              (long long)selected, path);
    TCX_CHECK(H5Sselect_hyperslab(memory_space, H5S_SELECT_SET, start, NULL,
                                  count, NULL) >= 0,
              ctx, TCX_ERR_INTERNAL,
              "H5Sselect_hyperslab failed for \"%s\" of %s", name, path);
  }
  if (write)
    status = H5Dwrite(dataset, H5T_NATIVE_DOUBLE, memory_space, file_space,
                      transfer, a->local);
  else
    status = H5Dread(dataset, H5T_NATIVE_DOUBLE, memory_space, file_space,
                     transfer, a->local);
  if (status < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, write ? TCX_ERR_OUTPUT : TCX_ERR_INPUT,
                   "HDF5 failed to %s the blocks of dataset \"%s\" %s %s "
                   "(%s)%s",
                   write ? "write" : "read", name, write ? "to" : "from", path,
                   detail,
                   write ? "; check the free space and quota of its folder"
                         : "");
  }

cleanup:
  rc = tcx_h5_close(ctx, rc, memory_space, path);
  return tcx_h5_close(ctx, rc, file_space, path);
}

/* Moves all of a in batches of whole local column blocks, each under
 * TCX_H5_TRANSFER_BYTES for the rank with the most local rows. Every rank
 * makes the same number of collective calls. */
static int transfer_dense(tcx_ctx *ctx, hid_t dataset, hid_t transfer,
                          int write, int n_dims, int64_t slice, tcx_dense *a,
                          const char *path, const char *name)
{
  int64_t most[2] = {a->local_rows,
                     (a->local_cols + a->block_size - 1) / a->block_size};
  int64_t batch_blocks;
  int rc = TCX_OK;

  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, most, 2, MPI_INT64_T, MPI_MAX,
                                 tcx_ctx_comm(ctx)));
  batch_blocks = TCX_H5_TRANSFER_BYTES /
                 ((int64_t)sizeof(double) * a->block_size *
                  (most[0] > 1 ? most[0] : 1));
  if (batch_blocks < 1)
    batch_blocks = 1;
  for (int64_t k0 = 0; k0 < most[1]; k0 += batch_blocks) {
    rc = transfer_blocks(ctx, dataset, transfer, write, n_dims, slice, k0,
                         k0 + batch_blocks, a, path, name);
    TCX_TRY(tcx_ctx_agree(ctx, rc));
  }

cleanup:
  return rc;
}

int tcx_h5_write_dense(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                       int64_t n_slices, int64_t slice, tcx_dense *a)
{
  const int n_dims = n_slices > 0 ? 3 : 2;
  const int64_t dims[3] = {n_slices > 0 ? n_slices : a->n_rows,
                           n_slices > 0 ? a->n_rows : a->n_cols, a->n_cols};
  hid_t dataset = -1;
  int rc = TCX_OK;

  if (!out || out->file < 0 || out->serial)
    return tcx_error(ctx, TCX_ERR_INTERNAL,
                     "dense dataset \"%s\" written to an output that is not "
                     "an open parallel file",
                     name);
  TCX_TRY(tcx_ctx_agree(
      ctx, slice >= 0 && (n_slices == 0 ? slice == 0 : slice < n_slices)
               ? TCX_OK
               : tcx_error(ctx, TCX_ERR_INTERNAL,
                           "slice %lld of dense dataset \"%s\" with %lld "
                           "slices",
                           (long long)slice, name, (long long)n_slices)));
  if (slice == 0) {
    rc = tcx_h5_create_dataset(ctx, out, name, H5T_IEEE_F64LE, n_dims, dims,
                               0, &dataset);
    TCX_TRY(tcx_h5_reserve_and_agree(ctx, out, dataset, name, 0, rc));
  } else {
    dataset = H5Dopen2(out->file, name, H5P_DEFAULT);
    TCX_TRY(tcx_ctx_agree(
        ctx, dataset >= 0 ? TCX_OK
                          : tcx_error(ctx, TCX_ERR_INTERNAL,
                                      "dense dataset \"%s\" of %s must be "
                                      "created by writing slice 0 first",
                                      name, out->path)));
  }
  rc = transfer_dense(ctx, dataset, out->transfer, 1, n_dims, slice, a,
                      out->temp_path, name);

cleanup:
  rc = tcx_h5_close_dataset(ctx, rc, dataset, out, name);
  return tcx_h5_output_agree(ctx, out, rc);
}

/* Checks that the dataset is [p, p], or [nt, p, p] with slice < nt. */
static int check_dense_shape(tcx_ctx *ctx, hid_t dataset, const char *path,
                             const char *name, int64_t slice,
                             const tcx_dense *a, int *n_dims)
{
  int64_t dims[3] = {0, 0, 0};
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_get_shape(ctx, dataset, path, name, n_dims, dims));
  TCX_CHECK(*n_dims >= 2 && dims[*n_dims - 2] == a->n_rows &&
                dims[*n_dims - 1] == a->n_cols,
            ctx, TCX_ERR_INPUT,
            "%s:%s is not a [%lld, %lld] matrix or a stack of them; check "
            "that the file matches the model and data",
            path, name, (long long)a->n_rows, (long long)a->n_cols);
  TCX_CHECK(*n_dims == 2 ? slice == 0 : slice >= 0 && slice < dims[0], ctx,
            TCX_ERR_INPUT, "%s:%s has %lld matrices, so period %lld is invalid",
            path, name, (long long)(*n_dims == 2 ? 1 : dims[0]),
            (long long)slice);

cleanup:
  return rc;
}

int tcx_h5_read_dense(tcx_ctx *ctx, const char *path, const char *name,
                      int64_t slice, tcx_dense *a)
{
  hid_t file = -1, dataset = -1, transfer = -1;
  int n_dims = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open(ctx, path, 0, &file));
  rc = tcx_h5_open_dataset(ctx, file, path, name, &dataset);
  if (rc == TCX_OK)
    rc = check_dense_shape(ctx, dataset, path, name, slice, a, &n_dims);
  if (rc == TCX_OK)
    rc = tcx_h5_create_transfer(ctx, 0, path, &transfer);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  rc = transfer_dense(ctx, dataset, transfer, 0, n_dims, slice, a, path,
                      name);

cleanup:
  rc = tcx_h5_close(ctx, rc, transfer, path);
  rc = tcx_h5_close(ctx, rc, dataset, path);
  rc = tcx_h5_close(ctx, rc, file, path);
  return tcx_ctx_agree(ctx, rc);
}
