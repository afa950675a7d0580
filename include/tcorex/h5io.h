/* Parallel HDF5 input and output. Every function here is collective on the
 * context's communicator unless its comment states otherwise. Files open with the MPI-IO
 * driver; HDF5's automatic error printing is off and each failure becomes one
 * tcorex error naming the file and dataset. */
#ifndef TCOREX_H5IO_H
#define TCOREX_H5IO_H

#include "tcorex/block.h"
#include "tcorex/dense.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How to read a data set. */
typedef struct tcx_read_options {
  const char *dataset; /* dataset path, "/data" when NULL */
  int has_missing;     /* nonzero: values equal to missing_value are missing */
  double missing_value;
} tcx_read_options;

/* Reads this rank's column block of a [T, p] or [nt, ns, p] dataset of any
 * float or integer type, converted to double. The columns are split with
 * tcx_partition() over the context's ranks; each rank reads only its own
 * hyperslab, with collective MPI-IO. A 2-D dataset gives one period. NaN and
 * values equal to the missing marker become NaN; an infinite value is an
 * error naming its row and column. The caller frees *block. */
int tcx_h5_read_block(tcx_ctx *ctx, const char *path,
                      const tcx_read_options *options, tcx_block **block);

/* Reads the shape of a dataset without reading data. dims has room for 3
 * entries; *rank_out is set to the dataset's rank (number of dimensions). */
int tcx_h5_dataset_shape(tcx_ctx *ctx, const char *path, const char *dataset,
                         int *rank_out, int64_t dims[3]);

/* An output file being written. It lives under a temporary name, "PATH.tmp",
 * until tcx_h5_commit() renames it to PATH, so that an interrupted run never
 * leaves a file under the final name. */
typedef struct tcx_h5_output tcx_h5_output;

/* Checks that the folder that will hold path exists and is writable and that
 * path is not a folder, so that a run can fail before long work. Not
 * collective. */
int tcx_h5_check_output_path(tcx_ctx *ctx, const char *path);

/* Creates PATH.tmp (replacing an old one). Fails with TCX_ERR_OUTPUT and a
 * message naming the folder when it does not exist or is not writable.
 * The write functions below allocate the file's disk blocks before HDF5
 * writes to them. A full disk or quota then fails on every rank with
 * TCX_ERR_OUTPUT and a message naming PATH and the system error, and the
 * caller calls tcx_h5_discard(). */
int tcx_h5_create(tcx_ctx *ctx, const char *path, tcx_h5_output **out);

/* Writes a dataset whose last dimension is split over ranks in the column
 * blocks of tcx_partition(). dims has n_dims entries (1 to 3) and
 * dims[n_dims - 1] = p; local contains this rank's [dims[0], ..., n_local]
 * slab in row-major order. type is TCX_H5_DOUBLE, TCX_H5_FLOAT or
 * TCX_H5_INT32 and gives both the memory and the file type. Intermediate
 * groups in name are created. */
enum { TCX_H5_DOUBLE = 0, TCX_H5_FLOAT = 1, TCX_H5_INT32 = 2 };
int tcx_h5_write_columns(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                         int type, int n_dims, const int64_t *dims,
                         int64_t col_begin, int64_t n_local,
                         const void *local);

/* Writes a small dataset of which every rank has an identical copy (only rank 0's
 * copy is written). */
int tcx_h5_write_replicated(tcx_ctx *ctx, tcx_h5_output *out,
                            const char *name, int type, int n_dims,
                            const int64_t *dims, const void *data);

/* Attributes on the root group. */
int tcx_h5_write_attr_string(tcx_ctx *ctx, tcx_h5_output *out,
                             const char *name, const char *value);
int tcx_h5_write_attr_int(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                          int64_t value);
int tcx_h5_write_attr_double(tcx_ctx *ctx, tcx_h5_output *out,
                             const char *name, double value);

/* Closes the file and renames PATH.tmp to PATH (replacing an old PATH only
 * now). Frees *out and sets it to NULL. */
int tcx_h5_commit(tcx_ctx *ctx, tcx_h5_output **out);

/* Closes and deletes PATH.tmp, leaving any old PATH untouched. Accepts NULL.
 * Used on every failure path after tcx_h5_create(). */
void tcx_h5_discard(tcx_ctx *ctx, tcx_h5_output **out);

/* Reads a dataset whose last dimension is split over ranks like
 * tcx_h5_write_columns(): this rank's [dims[0], ..., n_local] slab as double.
 * Checks that the dataset's leading dimensions equal expected_dims (n_dims
 * entries, last one p). The caller frees *local. */
int tcx_h5_read_columns(tcx_ctx *ctx, const char *path, const char *name,
                        int n_dims, const int64_t *expected_dims,
                        int64_t col_begin, int64_t n_local, double **local);

/* Reads a whole small dataset on every rank as double. dims receives up to 3
 * entries. The caller frees *data. */
int tcx_h5_read_replicated(tcx_ctx *ctx, const char *path, const char *name,
                           int *n_dims, int64_t dims[3], double **data);

/* Reads a string or numeric attribute of the root group on every rank.
 * value_size is the capacity of value for strings. */
int tcx_h5_read_attr_string(tcx_ctx *ctx, const char *path, const char *name,
                            char *value, size_t value_size);
int tcx_h5_read_attr_double(tcx_ctx *ctx, const char *path, const char *name,
                            double *value);

/* Writes the block-cyclic matrix a as dataset name of a parallel output:
 * shape [n_rows, n_cols] when n_slices is 0, otherwise slice slice of
 * [n_slices, n_rows, n_cols], created (contiguous, float64) when slice is
 * 0 and reopened for the later slices. Each rank writes its own blocks
 * with collective hyperslab writes. The file stores entry (i, j) at
 * position [j, i], the order of ScaLAPACK's column-major local arrays.
 * Every matrix tcorex writes is symmetric, so this is the matrix itself.
 * a is not changed (it is not const because HDF5 takes the buffer). */
int tcx_h5_write_dense(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                       int64_t n_slices, int64_t slice, tcx_dense *a);

/* Reads slice slice (0 for a 2-D dataset) of a dataset written by
 * tcx_h5_write_dense() into a, which fixes the shape that the file must
 * have. Any block size and rank count can read the file. */
int tcx_h5_read_dense(tcx_ctx *ctx, const char *path, const char *name,
                      int64_t slice, tcx_dense *a);

#ifdef __cplusplus
}
#endif

#endif
