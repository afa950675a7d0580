/* Disk space for output files, allocated ahead of HDF5's writes.
 *
 * A write that fails for lack of space inside a collective HDF5 call can
 * fail on some ranks only, and the others then wait forever in the next
 * collective step. When the metadata flush of H5Fclose fails, HDF5 1.10.8
 * frees the file but keeps its id, and crashes when MPI_Finalize closes
 * the id again. So the writer rank allocates the blocks of the temporary
 * file with posix_fallocate before HDF5 writes to them. A full disk or
 * quota then fails there, on one rank and with the system error, and all
 * ranks agree on the failure before the next HDF5 call. POSIX promises
 * that after a successful posix_fallocate, writes to the allocated range
 * do not fail for lack of free space. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "h5io_internal.h"

/* Allocates bytes [out->reserved, end) of the temporary file. */
static int tcx_h5_allocate(tcx_ctx *ctx, tcx_h5_output *out, int flags,
                           int64_t end)
{
  int descriptor = open(out->temp_path, flags, 0666);
  int code;
  int rc = TCX_OK;

  TCX_CHECK(descriptor >= 0, ctx, TCX_ERR_OUTPUT,
            "cannot open %s to allocate disk space for it: %s (errno %d); "
            "check that its folder is writable",
            out->temp_path, strerror(errno), errno);
  code = posix_fallocate(descriptor, (off_t)out->reserved,
                         (off_t)(end - out->reserved));
  /* NOTE: where neither the file system nor the C library implements
   * fallocate, nothing is reserved, and a full disk shows up as a failed
   * HDF5 write or close instead. */
  if (code == EINVAL || code == EOPNOTSUPP)
    goto cleanup;
  TCX_CHECK(code == 0, ctx, TCX_ERR_OUTPUT,
            "cannot write %s: allocating %lld bytes of disk space for it "
            "failed: %s (errno %d); free space or quota in its folder, or "
            "choose another output path",
            out->path, (long long)end, strerror(code), code);
  out->reserved = end;

cleanup:
  if (descriptor >= 0)
    (void)close(descriptor);
  return rc;
}

int tcx_h5_probe_space(tcx_ctx *ctx, tcx_h5_output *out)
{
  int rc;

  out->reserved = 0;
  rc = tcx_h5_allocate(ctx, out, O_WRONLY | O_CREAT | O_TRUNC,
                       TCX_H5_METADATA_ROOM);
  if (rc != TCX_OK)
    (void)unlink(out->temp_path);
  /* H5Fcreate truncates the file and so frees these blocks again. */
  out->reserved = 0;
  return rc;
}

/* Stores in *end the file address just past the raw data of dataset,
 * which HDF5 allocated when it created the dataset (0 when it has none).
 * Not collective. */
static int tcx_h5_raw_data_end(tcx_ctx *ctx, hid_t dataset, const char *path,
                               const char *name, int64_t *end)
{
  hid_t create = H5Dget_create_plist(dataset);
  hid_t space = H5Dget_space(dataset);
  hsize_t dims[3], chunk[3], offset[3];
  int n_dims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  int rc = TCX_OK;

  *end = 0;
  TCX_CHECK(create >= 0 && n_dims >= 1 && n_dims <= 3 &&
                H5Sget_simple_extent_dims(space, dims, NULL) == n_dims,
            ctx, TCX_ERR_INTERNAL,
            "HDF5 cannot read the layout of dataset \"%s\" of %s", name,
            path);
  if (H5Pget_layout(create) != H5D_CHUNKED) {
    const haddr_t address = H5Dget_offset(dataset);

    if (address != HADDR_UNDEF)
      *end = (int64_t)address + (int64_t)H5Dget_storage_size(dataset);
    goto cleanup;
  }
  TCX_CHECK(H5Pget_chunk(create, n_dims, chunk) == n_dims, ctx,
            TCX_ERR_INTERNAL, "H5Pget_chunk failed for \"%s\" of %s", name,
            path);
  /* Visits every chunk: offset runs over the chunk grid like an odometer. */
  memset(offset, 0, sizeof(offset));
  for (;;) {
    haddr_t address = HADDR_UNDEF;
    hsize_t size = 0;
    unsigned filter_mask = 0;
    int d = n_dims - 1;

    TCX_CHECK(H5Dget_chunk_info_by_coord(dataset, offset, &filter_mask,
                                         &address, &size) >= 0,
              ctx, TCX_ERR_INTERNAL,
              "H5Dget_chunk_info_by_coord failed for \"%s\" of %s", name,
              path);
    if (address != HADDR_UNDEF && (int64_t)(address + size) > *end)
      *end = (int64_t)(address + size);
    while (d >= 0 && offset[d] + chunk[d] >= dims[d])
      offset[d--] = 0;
    if (d < 0)
      break;
    offset[d] += chunk[d];
  }

cleanup:
  rc = tcx_h5_close(ctx, rc, space, path);
  return tcx_h5_close(ctx, rc, create, path);
}

/* Stores in *end the end of the file space that HDF5 has allocated, as far
 * as it is known. A serial file reads HDF5's end of allocated space (EOA).
 * H5Fget_eoa rejects the MPI-IO driver in HDF5 1.10.8, and H5Fget_filesize
 * fails there after a write, so a parallel file takes the end of the raw
 * data of the datasets seen so far. HDF5 fills a new file from its start
 * onwards, and the metadata allocated after the last raw data fits in
 * TCX_H5_METADATA_ROOM. Not collective. */
static int tcx_h5_allocated_end(tcx_ctx *ctx, tcx_h5_output *out,
                                hid_t dataset, const char *name,
                                int64_t *end)
{
  haddr_t eoa = 0;
  int64_t data_end = 0;
  int rc = TCX_OK;

  if (out->serial) {
    TCX_CHECK(H5Fget_eoa(out->file, &eoa) >= 0, ctx, TCX_ERR_INTERNAL,
              "H5Fget_eoa failed for %s", out->temp_path);
    *end = (int64_t)eoa;
    return TCX_OK;
  }
  if (dataset >= 0)
    TCX_TRY(tcx_h5_raw_data_end(ctx, dataset, out->temp_path, name,
                                &data_end));
  if (data_end > out->data_end)
    out->data_end = data_end;
  *end = out->data_end;

cleanup:
  return rc;
}

int tcx_h5_reserve_space(tcx_ctx *ctx, tcx_h5_output *out, hid_t dataset,
                         const char *name, int64_t extra)
{
  int64_t end = 0, room;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_allocated_end(ctx, out, dataset, name, &end));
  /* The EOA of a serial file is exact and is reserved again before the
   * close, so it needs no room for metadata to come. */
  room = out->serial ? 0 : TCX_H5_METADATA_ROOM;
  if (end + extra + room > out->reserved)
    rc = tcx_h5_allocate(ctx, out, O_WRONLY, end + extra + room);
  out->covered = end <= out->reserved;

cleanup:
  return rc;
}

int64_t tcx_h5_dataset_bytes(int n_dims, const int64_t *dims, size_t element,
                             const hsize_t *chunk)
{
  int64_t elements = 1, chunks = 1;

  for (int d = 0; d < n_dims; d++) {
    const int64_t per_chunk = chunk ? (int64_t)chunk[d] : dims[d];
    const int64_t count =
        per_chunk > 0 ? (dims[d] + per_chunk - 1) / per_chunk : 0;

    elements *= count * per_chunk;
    chunks *= count;
  }
  /* 4 KiB cover the object header and the first node of the chunk index.
   * A v1 B-tree node indexes up to 64 chunks of 3 dimensions in about 3
   * KiB, so that nodes after splits, half full, take about 100 bytes a
   * chunk. */
  return elements * (int64_t)element + 4096 + (chunk ? 128 * chunks : 0);
}
