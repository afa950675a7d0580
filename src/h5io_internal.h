/* HDF5 helpers shared by the storage modules (h5io_*.c, model.c, nifti.c,
 * csv.c). Not part of the public interface. */
#ifndef TCX_H5IO_INTERNAL_H
#define TCX_H5IO_INTERNAL_H

#include <hdf5.h>

#include "tcorex/h5io.h"

/* Maximum columns per chunk of a column dataset. A rank's contiguous column
 * block then spans few chunks, and a chunk stays small even for long rows. */
#define TCX_H5_CHUNK_COLUMNS 1024

/* Maximum bytes per chunk. The leading dimensions fill the chunk up to this
 * size. */
#define TCX_H5_CHUNK_BYTES (4 << 20)

/* Maximum bytes one rank moves in one H5Dread or H5Dwrite call. Larger
 * transfers are split into batches along the leading dimensions, because
 * MPI counts are int, so one MPI-IO request cannot exceed 2^31 - 1
 * elements of its datatype. */
#define TCX_H5_TRANSFER_BYTES ((int64_t)256 << 20)

/* Disk space that a parallel output reserves beyond the end of its raw
 * data, for the metadata that HDF5 allocates later (object headers and the
 * attributes written after the last dataset). Every output also checks
 * that this much is free before HDF5 creates the file. tcx_h5_commit()
 * cuts the file back to its real size. */
#define TCX_H5_METADATA_ROOM ((int64_t)64 << 10)

struct tcx_h5_output {
  hid_t file;
  hid_t transfer;    /* dataset transfer property list */
  int serial;        /* one rank alone writes, through the sec2 driver */
  int64_t max_transfer_bytes;
  /* Writer rank only: bytes of temp_path allocated on disk, the end of the
   * raw data written so far (parallel files), and whether every byte that
   * HDF5 has allocated lies below reserved. */
  int64_t reserved;
  int64_t data_end;
  int covered;
  char *path;        /* final name */
  char *temp_path;   /* path + ".tmp" */
};

/* Turns off HDF5's automatic printing of its error stack, so that each
 * failure reaches the user once, as a tcorex message. Process-wide. Not
 * collective. */
int tcx_h5_silence_errors(tcx_ctx *ctx);

/* Closes an HDF5 id of any kind that tcorex created; a negative id is
 * skipped. Returns rc, or a new error when rc is TCX_OK and the close
 * fails, so that a cleanup path keeps the first error. Not collective,
 * except that closing a file opened with the MPI-IO driver is. */
int tcx_h5_close(tcx_ctx *ctx, int rc, hid_t id, const char *path);

/* Copies into text the description of the innermost entry of HDF5's
 * default error stack, or "" when the stack is empty. For a failed write
 * the HDF5 file driver usually puts the system error there, with errno.
 * Call it right after the failed HDF5 call, because the next HDF5 call
 * clears the stack. Not collective. */
void tcx_h5_error_detail(char *text, size_t size);

/* Returns the HDF5 memory type and the file type of a TCX_H5_* type code,
 * or a negative id for an unknown code. */
hid_t tcx_h5_memory_type(int type);
hid_t tcx_h5_file_type(int type);


/* Checks on the calling rank that path exists and is a readable HDF5
 * file. Messages call the file role ("input file", "model file"), and hint
 * tells what to pass instead of a file that is not HDF5. Not collective. */
int tcx_h5_check_file(tcx_ctx *ctx, const char *path, const char *role,
                      const char *hint);

/* Checks that path exists and is an HDF5 file, then opens it read-only.
 * serial = 0: collective, with the MPI-IO driver; every rank gets the same
 * status. serial != 0: on the calling rank alone with the default driver. */
int tcx_h5_open(tcx_ctx *ctx, const char *path, int serial, hid_t *file);

/* Opens the dataset name of an open file. When it does not exist, the
 * message lists the datasets of the file with 2 or 3 dimensions, which are
 * the values that --dataset accepts. Not collective. */
int tcx_h5_open_dataset(tcx_ctx *ctx, hid_t file, const char *path,
                        const char *name, hid_t *dataset);

/* Fails unless the dataset contains integers or floating-point numbers,
 * and unless its compact or contiguous storage, when allocated, contains
 * as many bytes as its shape needs (HDF5 1.10 reads such a corrupt dataset
 * through a NULL pointer). Not collective. */
int tcx_h5_check_numeric(tcx_ctx *ctx, hid_t dataset, const char *path,
                         const char *name);

/* Creates a dataset transfer list: collective MPI-IO unless serial. */
int tcx_h5_create_transfer(tcx_ctx *ctx, int serial, const char *path,
                           hid_t *transfer);

/* Writes a shape as "[d0 x d1 x d2]" into text. */
void tcx_h5_format_shape(char *text, size_t size, int n_dims,
                         const int64_t *dims);

/* Reads the rank and up to 3 dimensions of an open dataset. Fails when the
 * rank exceeds 3. Not collective. */
int tcx_h5_get_shape(tcx_ctx *ctx, hid_t dataset, const char *path,
                     const char *name, int *n_dims, int64_t dims[3]);

/* Moves this rank's column slab [dims[0], ..., n_local] between memory
 * (row-major, type memory_type) and columns col_begin .. col_begin +
 * n_local - 1 of a dataset whose last dimension is dims[n_dims - 1].
 * write != 0 writes, else reads. Batches keep each call under
 * max_transfer_bytes for max_local columns, so that every rank makes the
 * same number of H5Dread or H5Dwrite calls when all pass the same
 * max_local. Collective when transfer is a collective list. */
int tcx_h5_transfer_columns(tcx_ctx *ctx, hid_t dataset, hid_t transfer,
                            hid_t memory_type, int write, int n_dims,
                            const int64_t *dims, int64_t col_begin,
                            int64_t n_local, int64_t max_local,
                            int64_t max_transfer_bytes, void *buffer,
                            const char *path, const char *name);

/* Reads a whole dataset of an open file as double. Collective when transfer
 * is a collective list. The caller frees *data. */
int tcx_h5_read_whole(tcx_ctx *ctx, hid_t file, hid_t transfer,
                      const char *path, const char *name, int *n_dims,
                      int64_t dims[3], double **data);

/* Reads a numeric root attribute as double, or a string root attribute
 * (fixed or variable length) into value. Not collective. */
int tcx_h5_get_attr_double(tcx_ctx *ctx, hid_t file, const char *path,
                           const char *name, double *value);
int tcx_h5_get_attr_string(tcx_ctx *ctx, hid_t file, const char *path,
                           const char *name, char *value, size_t value_size);

/* Creates PATH.tmp on the calling rank alone with HDF5's default (sec2)
 * driver. Not collective. The write functions of h5io.h, tcx_h5_commit()
 * and tcx_h5_discard() then act on this rank alone and do not agree with
 * other ranks. This rank writes the replicated datasets and attributes
 * whatever its rank number. The converters use it on rank 0. */
int tcx_h5_create_serial(tcx_ctx *ctx, const char *path,
                         tcx_h5_output **out);

/* Creates temp_path and allocates TCX_H5_METADATA_ROOM bytes of disk for
 * it, so that a full disk fails before HDF5 creates the file. Deletes the
 * file again on failure. Writer rank only. Not collective. */
int tcx_h5_probe_space(tcx_ctx *ctx, tcx_h5_output *out);

/* Allocates the disk blocks of out's temporary file up to the end of what
 * HDF5 has allocated so far, plus extra bytes for what comes next, plus
 * TCX_H5_METADATA_ROOM (see h5io_space.c for why). dataset, when not
 * negative, was just created and its raw data counts. Fails with
 * TCX_ERR_OUTPUT and the system error when the disk or quota is full.
 * Writer rank only. Not collective. */
int tcx_h5_reserve_space(tcx_ctx *ctx, tcx_h5_output *out, hid_t dataset,
                         const char *name, int64_t extra);

/* Returns an estimate of the file space a new dataset takes: its raw
 * data, in whole chunks when chunk is not NULL, its object header and its
 * chunk index. A larger dataset is still covered, by the reservation that
 * follows its creation. */
int64_t tcx_h5_dataset_bytes(int n_dims, const int64_t *dims, size_t element,
                             const hsize_t *chunk);

/* Flushes temp_path to disk and renames it to path, replacing an old file.
 * Not collective. */
int tcx_h5_publish(tcx_ctx *ctx, const char *temp_path, const char *path);

/* Writes a 1-D dataset of count fixed-length UTF-8 strings, as
 * tcx_h5_write_replicated() does for numbers. */
int tcx_h5_write_strings(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                         int64_t count, char *const *strings);

/* Reads this rank's column block like tcx_h5_read_block(), moving at most
 * max_transfer_bytes per rank and call. Collective. */
int tcx_h5_read_block_batched(tcx_ctx *ctx, const char *path,
                              const tcx_read_options *options,
                              int64_t max_transfer_bytes, tcx_block **block);

/* The write steps of h5io_write.c, shared with h5io_dense.c. The
 * comments at their definitions give the details. Collective unless the
 * output is serial. */
int tcx_h5_output_agree(tcx_ctx *ctx, const tcx_h5_output *out, int rc);
int tcx_h5_reserve_and_agree(tcx_ctx *ctx, tcx_h5_output *out,
                             hid_t dataset, const char *name, int64_t extra,
                             int rc);
int tcx_h5_create_dataset(tcx_ctx *ctx, tcx_h5_output *out,
                          const char *name, hid_t file_type, int n_dims,
                          const int64_t *dims, int chunked, hid_t *dataset);
int tcx_h5_close_dataset(tcx_ctx *ctx, int rc, hid_t dataset,
                         const tcx_h5_output *out, const char *name);

#endif
