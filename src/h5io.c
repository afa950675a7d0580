/* HDF5 helpers shared by the reading and writing halves of h5io: error
 * handling, file and dataset opening, and batched column transfers. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5io_internal.h"

enum {
  TCX_H5_LISTED_MAX = 12,
  TCX_H5_LISTING_CHARS = 1024,
  TCX_H5_DETAIL_CHARS = 512
};

int tcx_h5_silence_errors(tcx_ctx *ctx)
{
  if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0)
    return tcx_error(ctx, TCX_ERR_INTERNAL,
                     "H5Eset_auto2 failed: cannot turn off HDF5 error "
                     "printing; the HDF5 library may be broken");
  return TCX_OK;
}

/* Keeps the description of the first entry that H5Ewalk2 visits. An
 * H5E_walk2_t callback: returns 0 to go on. */
static herr_t tcx_h5_keep_first_error(unsigned n, const H5E_error2_t *entry,
                                      void *data)
{
  char *text = data;

  if (n == 0 && entry->desc)
    snprintf(text, TCX_H5_DETAIL_CHARS, "%s", entry->desc);
  return 0;
}

void tcx_h5_error_detail(char *text, size_t size)
{
  char innermost[TCX_H5_DETAIL_CHARS] = "";
  const char *message, *number;

  if (size == 0)
    return;
  text[0] = '\0';
  if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, tcx_h5_keep_first_error,
               innermost) < 0)
    return;
  /* The sec2 driver writes "... errno = 28, error message = 'No space left
   * on device', ..." together with buffer addresses and offsets. Only the
   * system error is kept from such a text. */
  message = strstr(innermost, "error message = '");
  number = strstr(innermost, "errno = ");
  if (message && number) {
    const char *start = message + strlen("error message = '");
    const char *end = strchr(start, '\'');

    snprintf(text, size, "%.*s, errno %d",
             (int)(end ? end - start : (ptrdiff_t)strlen(start)), start,
             atoi(number + strlen("errno = ")));
    return;
  }
  snprintf(text, size, "%s", innermost);
}

int tcx_h5_close(tcx_ctx *ctx, int rc, hid_t id, const char *path)
{
  herr_t status;

  if (id < 0)
    return rc;
  switch (H5Iget_type(id)) {
  case H5I_FILE: status = H5Fclose(id); break;
  case H5I_GROUP: status = H5Gclose(id); break;
  case H5I_DATASET: status = H5Dclose(id); break;
  case H5I_DATASPACE: status = H5Sclose(id); break;
  case H5I_DATATYPE: status = H5Tclose(id); break;
  case H5I_ATTR: status = H5Aclose(id); break;
  case H5I_GENPROP_LST: status = H5Pclose(id); break;
  default: status = -1; break;
  }
  if (status < 0 && rc == TCX_OK)
    return tcx_error(ctx, TCX_ERR_INTERNAL,
                     "HDF5 failed to close an object (id %lld) of %s",
                     (long long)id, path);
  return rc;
}

hid_t tcx_h5_memory_type(int type)
{
  switch (type) {
  case TCX_H5_DOUBLE: return H5T_NATIVE_DOUBLE;
  case TCX_H5_FLOAT: return H5T_NATIVE_FLOAT;
  case TCX_H5_INT32: return H5T_NATIVE_INT32;
  default: return -1;
  }
}

hid_t tcx_h5_file_type(int type)
{
  switch (type) {
  case TCX_H5_DOUBLE: return H5T_IEEE_F64LE;
  case TCX_H5_FLOAT: return H5T_IEEE_F32LE;
  case TCX_H5_INT32: return H5T_STD_I32LE;
  default: return -1;
  }
}

/* Copies the folder part of path into *folder ("." when path has none). */
static int tcx_h5_path_folder(tcx_ctx *ctx, const char *path, char **folder)
{
  const char *slash = strrchr(path, '/');
  size_t length = slash ? (size_t)(slash - path) : 1;
  int rc = TCX_OK;

  if (slash == path)
    length = 1;
  TCX_TRY(tcx_calloc(ctx, (int64_t)length + 1, 1, "folder name", folder));
  memcpy(*folder, slash ? path : ".", length);

cleanup:
  return rc;
}

int tcx_h5_check_output_path(tcx_ctx *ctx, const char *path)
{
  struct stat info;
  char *folder = NULL;
  int rc = TCX_OK;

  TCX_CHECK(path[0] != '\0' && path[strlen(path) - 1] != '/', ctx,
            TCX_ERR_USAGE,
            "output path \"%s\" names no file; pass a file name", path);
  TCX_TRY(tcx_h5_path_folder(ctx, path, &folder));
  if (stat(folder, &info) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                     "cannot write %s: folder %s does not exist (%s); create "
                     "it or choose another output path",
                     path, folder, strerror(errno));
    else
      rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                     "cannot write %s: folder %s cannot be accessed (%s); "
                     "choose a folder you can write to",
                     path, folder, strerror(errno));
    goto cleanup;
  }
  TCX_CHECK(S_ISDIR(info.st_mode), ctx, TCX_ERR_OUTPUT,
            "cannot write %s: %s is not a folder", path, folder);
  TCX_CHECK(access(folder, W_OK | X_OK) == 0, ctx, TCX_ERR_OUTPUT,
            "cannot write %s: folder %s is not writable (%s); choose a "
            "folder you can write to",
            path, folder, strerror(errno));
  TCX_CHECK(stat(path, &info) != 0 || !S_ISDIR(info.st_mode), ctx,
            TCX_ERR_OUTPUT,
            "cannot write %s: a folder of that name exists; pass a file "
            "name",
            path);

cleanup:
  free(folder);
  return rc;
}

int tcx_h5_check_file(tcx_ctx *ctx, const char *path, const char *role,
                      const char *hint)
{
  struct stat info;
  htri_t is_hdf5;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_silence_errors(ctx));
  if (stat(path, &info) != 0) {
    if (errno == ENOENT)
      return tcx_error(ctx, TCX_ERR_INPUT, "%s %s not found; check the path",
                       role, path);
    return tcx_error(ctx, TCX_ERR_INPUT, "cannot access %s %s: %s", role,
                     path, strerror(errno));
  }
  TCX_CHECK(!S_ISDIR(info.st_mode), ctx, TCX_ERR_INPUT,
            "%s %s is a folder, not an HDF5 file", role, path);
  TCX_CHECK(access(path, R_OK) == 0, ctx, TCX_ERR_INPUT,
            "%s %s is not readable: %s", role, path, strerror(errno));
  is_hdf5 = H5Fis_hdf5(path);
  TCX_CHECK(is_hdf5 >= 0, ctx, TCX_ERR_INPUT,
            "cannot read %s %s: HDF5 failed to inspect it", role, path);
  TCX_CHECK(is_hdf5 > 0, ctx, TCX_ERR_INPUT,
            "%s %s is not an HDF5 file; %s", role, path, hint);

cleanup:
  return rc;
}

/* Opens path read-only on the calling rank, or on every rank with MPI-IO. */
static int tcx_h5_open_file(tcx_ctx *ctx, const char *path, int serial,
                            hid_t *file)
{
  hid_t access_list = -1;
  int rc = TCX_OK;

  access_list = H5Pcreate(H5P_FILE_ACCESS);
  TCX_CHECK(access_list >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Pcreate failed for a file access list for %s", path);
  if (!serial)
    TCX_CHECK(H5Pset_fapl_mpio(access_list, tcx_ctx_comm(ctx),
                               MPI_INFO_NULL) >= 0,
              ctx, TCX_ERR_INTERNAL,
              "H5Pset_fapl_mpio failed for %s; check that HDF5 is built "
              "with MPI-IO",
              path);
  *file = H5Fopen(path, H5F_ACC_RDONLY, access_list);
  if (*file < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, TCX_ERR_INPUT,
                   "HDF5 cannot open %s for reading (%s). The file is "
                   "truncated or corrupt, or another program is still "
                   "writing it: copy it again or rewrite it, or wait until "
                   "the writer finishes (HDF5_USE_FILE_LOCKING=FALSE turns "
                   "off HDF5's file locks on file systems without locking)",
                   path, detail);
    goto cleanup;
  }

cleanup:
  return tcx_h5_close(ctx, rc, access_list, path);
}

int tcx_h5_open(tcx_ctx *ctx, const char *path, int serial, hid_t *file)
{
  int rc = TCX_OK;

  *file = -1;
  rc = tcx_h5_silence_errors(ctx);
  if (rc == TCX_OK && (serial || tcx_ctx_rank(ctx) == 0))
    rc = tcx_h5_check_file(ctx, path, "input file",
                           "tcorex reads HDF5 and converts NIfTI and CSV "
                           "files to HDF5 first");
  if (!serial)
    rc = tcx_ctx_agree(ctx, rc);
  if (rc == TCX_OK)
    rc = tcx_h5_open_file(ctx, path, serial, file);
  if (!serial)
    rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK) {
    tcx_h5_close(ctx, rc, *file, path);
    *file = -1;
  }
  return rc;
}

/* Returns 1 when every link on the way to name exists. H5Lexists fails
 * rather than returning 0 when an intermediate group is missing. */
static int tcx_h5_path_exists(hid_t file, const char *name)
{
  char prefix[1024];
  size_t length = strlen(name);

  if (length == 0 || length >= sizeof(prefix))
    return 0;
  for (size_t end = 1; end <= length; end++) {
    if (end < length && name[end] != '/')
      continue;
    memcpy(prefix, name, end);
    prefix[end] = '\0';
    if (strcmp(prefix, "/") != 0 && H5Lexists(file, prefix, H5P_DEFAULT) <= 0)
      return 0;
  }
  return 1;
}

typedef struct tcx_h5_listing {
  char text[TCX_H5_LISTING_CHARS];
  size_t used;
  int count;
} tcx_h5_listing;

/* Appends "/name [d0 x d1]" to the listing when name is a dataset of rank 2
 * or 3. An H5Lvisit callback: returns 0 to go on. */
static herr_t tcx_h5_list_candidate(hid_t group, const char *name,
                                    const H5L_info_t *info, void *data)
{
  tcx_h5_listing *listing = data;
  hid_t object, space;
  hsize_t dims[3];
  int rank;

  if (info->type != H5L_TYPE_HARD)
    return 0;
  object = H5Oopen(group, name, H5P_DEFAULT);
  if (object < 0)
    return 0;
  space = H5Iget_type(object) == H5I_DATASET ? H5Dget_space(object) : -1;
  rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if ((rank == 2 || rank == 3) &&
      H5Sget_simple_extent_dims(space, dims, NULL) == rank &&
      listing->used < sizeof(listing->text)) {
    size_t room = sizeof(listing->text) - listing->used;
    int written;

    if (listing->count == TCX_H5_LISTED_MAX)
      written = snprintf(listing->text + listing->used, room, ", ...");
    else if (listing->count > TCX_H5_LISTED_MAX)
      written = 0;
    else if (rank == 2)
      written = snprintf(listing->text + listing->used, room,
                         "%s/%s [%llu x %llu]", listing->count ? ", " : "",
                         name, (unsigned long long)dims[0],
                         (unsigned long long)dims[1]);
    else
      written = snprintf(listing->text + listing->used, room,
                         "%s/%s [%llu x %llu x %llu]",
                         listing->count ? ", " : "", name,
                         (unsigned long long)dims[0],
                         (unsigned long long)dims[1],
                         (unsigned long long)dims[2]);
    listing->used += written > 0 ? (size_t)written : 0;
    listing->count++;
  }
  if (space >= 0)
    H5Sclose(space);
  H5Oclose(object);
  return 0;
}

/* Stores the "dataset not found" error with the datasets that would do. */
static int tcx_h5_missing_dataset(tcx_ctx *ctx, hid_t file, const char *path,
                                  const char *name)
{
  tcx_h5_listing listing;

  memset(&listing, 0, sizeof(listing));
  if (H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, tcx_h5_list_candidate,
               &listing) < 0 ||
      listing.count == 0)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s: dataset \"%s\" not found, and the file has no "
                     "dataset with 2 or 3 dimensions",
                     path, name);
  return tcx_error(ctx, TCX_ERR_INPUT,
                   "%s: dataset \"%s\" not found; datasets with 2 or 3 "
                   "dimensions in this file: %s. Pass one with --dataset",
                   path, name, listing.text);
}

int tcx_h5_open_dataset(tcx_ctx *ctx, hid_t file, const char *path,
                        const char *name, hid_t *dataset)
{
  hid_t object = -1;
  int rc = TCX_OK;

  *dataset = -1;
  if (!tcx_h5_path_exists(file, name))
    return tcx_h5_missing_dataset(ctx, file, path, name);
  object = H5Oopen(file, name, H5P_DEFAULT);
  TCX_CHECK(object >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot open object \"%s\"", path, name);
  TCX_CHECK(H5Iget_type(object) == H5I_DATASET, ctx, TCX_ERR_INPUT,
            "%s: \"%s\" is a group or a named type, not a dataset", path,
            name);
  *dataset = object;
  object = -1;

cleanup:
  return tcx_h5_close(ctx, rc, object, path);
}

int tcx_h5_get_shape(tcx_ctx *ctx, hid_t dataset, const char *path,
                     const char *name, int *n_dims, int64_t dims[3])
{
  hid_t space = -1;
  hsize_t extent[H5S_MAX_RANK];
  int rank;
  int rc = TCX_OK;

  space = H5Dget_space(dataset);
  TCX_CHECK(space >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the shape of dataset \"%s\"", path, name);
  rank = H5Sget_simple_extent_ndims(space);
  TCX_CHECK(rank >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the rank of dataset \"%s\"", path, name);
  *n_dims = rank;
  TCX_CHECK(rank <= 3, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" has %d dimensions; tcorex datasets have at "
            "most 3",
            path, name, rank);
  TCX_CHECK(H5Sget_simple_extent_dims(space, extent, NULL) == rank, ctx,
            TCX_ERR_INPUT, "%s: HDF5 cannot read the dimensions of \"%s\"",
            path, name);
  for (int d = 0; d < 3; d++)
    dims[d] = d < rank ? (int64_t)extent[d] : 0;

cleanup:
  return tcx_h5_close(ctx, rc, space, path);
}

int tcx_h5_create_transfer(tcx_ctx *ctx, int serial, const char *path,
                           hid_t *transfer)
{
  int rc = TCX_OK;

  *transfer = H5Pcreate(H5P_DATASET_XFER);
  TCX_CHECK(*transfer >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Pcreate failed for a transfer list for %s", path);
  if (!serial)
    TCX_CHECK(H5Pset_dxpl_mpio(*transfer, H5FD_MPIO_COLLECTIVE) >= 0, ctx,
              TCX_ERR_INTERNAL, "H5Pset_dxpl_mpio failed for %s", path);

cleanup:
  if (rc != TCX_OK) {
    tcx_h5_close(ctx, rc, *transfer, path);
    *transfer = -1;
  }
  return rc;
}

void tcx_h5_format_shape(char *text, size_t size, int n_dims,
                         const int64_t *dims)
{
  size_t used = 0;

  for (int d = 0; d < n_dims && used < size; d++) {
    int written = snprintf(text + used, size - used, "%s%lld",
                           d == 0 ? "[" : " x ", (long long)dims[d]);

    used += written > 0 ? (size_t)written : 0;
  }
  if (used < size)
    snprintf(text + used, size - used, n_dims > 0 ? "]" : "[]");
}

/* Moves one batch: leading rows [outer_begin, +outer_count) x [inner_begin,
 * +inner_count) of the slab. A rank without columns selects nothing but
 * still takes part in the collective call. */
static int tcx_h5_transfer_batch(tcx_ctx *ctx, hid_t dataset, hid_t transfer,
                                 hid_t memory_type, int write, int n_dims,
                                 const int64_t range[4], int64_t col_begin,
                                 int64_t n_local, void *batch,
                                 const char *path, const char *name)
{
  const int64_t count = range[1] * range[3] * n_local;
  hsize_t start[3], extent[3], memory_extent = count > 0 ? (hsize_t)count : 1;
  hid_t file_space = -1, memory_space = -1;
  double dummy = 0;
  herr_t status;
  int rc = TCX_OK;

  start[n_dims - 1] = (hsize_t)col_begin;
  extent[n_dims - 1] = (hsize_t)n_local;
  if (n_dims == 3) {
    start[0] = (hsize_t)range[0], extent[0] = (hsize_t)range[1];
    start[1] = (hsize_t)range[2], extent[1] = (hsize_t)range[3];
  } else if (n_dims == 2) {
    start[0] = (hsize_t)range[2], extent[0] = (hsize_t)range[3];
  }
  file_space = H5Dget_space(dataset);
  /* The memory space has the selection's own shape: with a flat 1-D one,
   * a chunked read at one rank was about 6 times slower in HDF5 1.10.8. */
  if (count > 0)
    memory_space = H5Screate_simple(n_dims, extent, NULL);
  else
    memory_space = H5Screate_simple(1, &memory_extent, NULL);
  TCX_CHECK(file_space >= 0 && memory_space >= 0, ctx, TCX_ERR_INTERNAL,
            "%s: HDF5 cannot create dataspaces for \"%s\"", path, name);
  if (count > 0)
    status = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL,
                                 extent, NULL);
  else
    status = H5Sselect_none(file_space) < 0 ? -1
                                            : H5Sselect_none(memory_space);
  TCX_CHECK(status >= 0, ctx, TCX_ERR_INTERNAL,
            "%s: HDF5 cannot select columns %lld..%lld of \"%s\"", path,
            (long long)col_begin, (long long)(col_begin + n_local - 1), name);
  if (write)
    status = H5Dwrite(dataset, memory_type, memory_space, file_space,
                      transfer, count > 0 ? batch : &dummy);
  else
    status = H5Dread(dataset, memory_type, memory_space, file_space,
                     transfer, count > 0 ? batch : &dummy);
  if (status < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, write ? TCX_ERR_OUTPUT : TCX_ERR_INPUT,
                   "%s: HDF5 failed to %s columns %lld..%lld of dataset "
                   "\"%s\" (%s)%s",
                   path, write ? "write" : "read", (long long)col_begin,
                   (long long)(col_begin + n_local - 1), name, detail,
                   write ? "; check the free space and quota of its folder"
                         : "; the file is corrupt or truncated, so copy or "
                           "rewrite it");
  }

cleanup:
  rc = tcx_h5_close(ctx, rc, memory_space, path);
  return tcx_h5_close(ctx, rc, file_space, path);
}

int tcx_h5_transfer_columns(tcx_ctx *ctx, hid_t dataset, hid_t transfer,
                            hid_t memory_type, int write, int n_dims,
                            const int64_t *dims, int64_t col_begin,
                            int64_t n_local, int64_t max_local,
                            int64_t max_transfer_bytes, void *buffer,
                            const char *path, const char *name)
{
  /* The slab is [outer, inner, n_local]; missing leading dimensions are 1. */
  const int64_t outer = n_dims == 3 ? dims[0] : 1;
  const int64_t inner = n_dims >= 2 ? dims[n_dims - 2] : 1;
  const size_t element = H5Tget_size(memory_type);
  const int64_t row_bytes = (max_local > 0 ? max_local : 1) * (int64_t)element;
  const int64_t rows_per_batch =
      max_transfer_bytes / row_bytes > 0 ? max_transfer_bytes / row_bytes : 1;
  char *bytes = buffer;
  int rc = TCX_OK;

  TCX_CHECK(element > 0 && n_dims >= 1 && n_dims <= 3, ctx, TCX_ERR_INTERNAL,
            "invalid column transfer for \"%s\" in %s", name, path);
  if (inner == 0 || outer == 0)
    return TCX_OK;

  if (inner <= rows_per_batch) {
    /* Whole [inner, n_local] slices, as many per batch as fit. */
    const int64_t step = rows_per_batch / inner;

    for (int64_t o = 0; o < outer; o += step) {
      const int64_t range[4] = {o, outer - o < step ? outer - o : step, 0,
                                inner};
      const int64_t offset = o * inner * n_local * (int64_t)element;

      TCX_TRY(tcx_h5_transfer_batch(ctx, dataset, transfer, memory_type,
                                    write, n_dims, range, col_begin, n_local,
                                    bytes + offset, path, name));
    }
    return TCX_OK;
  }

  /* One slice is too large: split its rows. */
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i += rows_per_batch) {
      const int64_t count =
          inner - i < rows_per_batch ? inner - i : rows_per_batch;
      const int64_t range[4] = {o, 1, i, count};
      const int64_t offset = (o * inner + i) * n_local * (int64_t)element;

      TCX_TRY(tcx_h5_transfer_batch(ctx, dataset, transfer, memory_type,
                                    write, n_dims, range, col_begin, n_local,
                                    bytes + offset, path, name));
    }

cleanup:
  return rc;
}

/* Widest integer or floating-point type read: 16 bytes (long double). */
#define TCX_H5_MAX_NUMBER_BYTES 16

/* Compares the bytes stored in the chunks of a dataset with the size of
 * its file, which contains them all. */
static int tcx_h5_check_chunk_storage(tcx_ctx *ctx, hid_t dataset,
                                      hsize_t stored, const char *path,
                                      const char *name)
{
  hid_t file = H5Iget_file_id(dataset);
  hsize_t file_size = 0;
  int rc = TCX_OK;

  TCX_CHECK(file >= 0, ctx, TCX_ERR_INTERNAL,
            "%s: H5Iget_file_id failed for dataset \"%s\"", path, name);
  TCX_CHECK(H5Fget_filesize(file, &file_size) >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the size of the file of dataset \"%s\"",
            path, name);
  TCX_CHECK(stored <= file_size, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" is corrupt: its chunks claim %llu bytes but "
            "the file holds %llu; write the file again",
            path, name, (unsigned long long)stored,
            (unsigned long long)file_size);

cleanup:
  return tcx_h5_close(ctx, rc, file, path);
}

/* Compares the bytes stored for a compact or contiguous dataset with the
 * bytes its shape and type need, and the bytes of a chunked dataset's
 * chunks with the size of the file. Unallocated contiguous storage reads as
 * fill values. HDF5 1.10.8 trusts the chunk sizes of a corrupt chunk index
 * and allocates them before it reads, gigabytes for a file of a few
 * kilobytes. */
static int tcx_h5_check_storage(tcx_ctx *ctx, hid_t dataset, hid_t type,
                                const char *path, const char *name)
{
  hid_t space = -1, create = -1;
  H5D_layout_t layout;
  hssize_t count;
  size_t type_size;
  hsize_t stored, needed;
  int rc = TCX_OK;

  space = H5Dget_space(dataset);
  TCX_CHECK(space >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the shape of dataset \"%s\"", path, name);
  count = H5Sget_simple_extent_npoints(space);
  TCX_CHECK(count >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot count the values of dataset \"%s\"", path,
            name);
  type_size = H5Tget_size(type);
  TCX_CHECK(type_size > 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the type size of dataset \"%s\"", path,
            name);
  create = H5Dget_create_plist(dataset);
  TCX_CHECK(create >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the storage properties of dataset \"%s\"",
            path, name);
  layout = H5Pget_layout(create);
  TCX_CHECK(layout >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the storage layout of dataset \"%s\"",
            path, name);
  stored = H5Dget_storage_size(dataset);
  if (layout == H5D_CHUNKED) {
    TCX_TRY(tcx_h5_check_chunk_storage(ctx, dataset, stored, path, name));
    goto cleanup;
  }
  if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS)
    goto cleanup;
  needed = (hsize_t)count * (hsize_t)type_size;
  if (layout == H5D_CONTIGUOUS && stored == 0)
    goto cleanup;
  TCX_CHECK(stored == needed, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" is corrupt: its %s storage holds %llu bytes "
            "but %lld values of %zu bytes need %llu; write the file again",
            path, name, layout == H5D_COMPACT ? "compact" : "contiguous",
            (unsigned long long)stored, (long long)count, type_size,
            (unsigned long long)needed);

cleanup:
  rc = tcx_h5_close(ctx, rc, create, path);
  return tcx_h5_close(ctx, rc, space, path);
}

int tcx_h5_check_numeric(tcx_ctx *ctx, hid_t dataset, const char *path,
                         const char *name)
{
  hid_t type = H5Dget_type(dataset);
  H5T_class_t type_class = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
  int rc = TCX_OK;

  TCX_CHECK(type >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the type of dataset \"%s\"", path, name);
  TCX_CHECK(type_class == H5T_INTEGER || type_class == H5T_FLOAT, ctx,
            TCX_ERR_INPUT,
            "%s: dataset \"%s\" does not hold numbers (HDF5 type class %d); "
            "store integers or floating-point values",
            path, name, (int)type_class);
  /* A corrupt type message can declare numbers of gigabytes, which HDF5
   * would convert one by one. */
  TCX_CHECK(H5Tget_size(type) <= TCX_H5_MAX_NUMBER_BYTES, ctx, TCX_ERR_INPUT,
            "%s: dataset \"%s\" holds %zu-byte numbers; tcorex reads "
            "integers and floating-point values of at most %d bytes",
            path, name, H5Tget_size(type), TCX_H5_MAX_NUMBER_BYTES);

  TCX_TRY(tcx_h5_check_storage(ctx, dataset, type, path, name));

cleanup:
  return tcx_h5_close(ctx, rc, type, path);
}

int tcx_h5_read_whole(tcx_ctx *ctx, hid_t file, hid_t transfer,
                      const char *path, const char *name, int *n_dims,
                      int64_t dims[3], double **data)
{
  hid_t dataset = -1;
  int64_t count = 1;
  int rc = TCX_OK;

  *data = NULL;
  TCX_TRY(tcx_h5_open_dataset(ctx, file, path, name, &dataset));
  TCX_TRY(tcx_h5_get_shape(ctx, dataset, path, name, n_dims, dims));
  TCX_TRY(tcx_h5_check_numeric(ctx, dataset, path, name));
  for (int d = 0; d < *n_dims; d++)
    count *= dims[d];
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), name, data));
  if (count > 0)
    TCX_CHECK(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, transfer,
                      *data) >= 0,
              ctx, TCX_ERR_INPUT, "%s: HDF5 failed to read dataset \"%s\"",
              path, name);

cleanup:
  if (rc != TCX_OK) {
    free(*data);
    *data = NULL;
  }
  return tcx_h5_close(ctx, rc, dataset, path);
}

/* Opens root attribute name of file, with a message naming it when absent. */
static int tcx_h5_open_attr(tcx_ctx *ctx, hid_t file, const char *path,
                            const char *name, hid_t *attr)
{
  htri_t exists = H5Aexists(file, name);
  int rc = TCX_OK;

  *attr = -1;
  TCX_CHECK(exists >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot look up root attribute \"%s\"", path, name);
  TCX_CHECK(exists > 0, ctx, TCX_ERR_INPUT,
            "%s: root attribute \"%s\" not found; was this file written by "
            "tcorex?",
            path, name);
  *attr = H5Aopen(file, name, H5P_DEFAULT);
  TCX_CHECK(*attr >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot open root attribute \"%s\"", path, name);

cleanup:
  return rc;
}

int tcx_h5_get_attr_double(tcx_ctx *ctx, hid_t file, const char *path,
                           const char *name, double *value)
{
  hid_t attr = -1, type = -1, space = -1;
  H5T_class_t type_class;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_open_attr(ctx, file, path, name, &attr));
  type = H5Aget_type(attr);
  space = H5Aget_space(attr);
  TCX_CHECK(type >= 0 && space >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot read the type of root attribute \"%s\"", path,
            name);
  type_class = H5Tget_class(type);
  TCX_CHECK((type_class == H5T_INTEGER || type_class == H5T_FLOAT) &&
                H5Sget_simple_extent_npoints(space) == 1,
            ctx, TCX_ERR_INPUT,
            "%s: root attribute \"%s\" is not a single number", path, name);
  TCX_CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, value) >= 0, ctx,
            TCX_ERR_INPUT, "%s: HDF5 failed to read root attribute \"%s\"",
            path, name);

cleanup:
  rc = tcx_h5_close(ctx, rc, space, path);
  rc = tcx_h5_close(ctx, rc, type, path);
  return tcx_h5_close(ctx, rc, attr, path);
}

/* Copies text into value or fails when value_size is too small. */
static int tcx_h5_copy_attr_text(tcx_ctx *ctx, const char *text,
                                 size_t length, char *value,
                                 size_t value_size, const char *path,
                                 const char *name)
{
  if (length >= value_size)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s: root attribute \"%s\" has %zu characters, more "
                     "than the %zu that fit",
                     path, name, length, value_size - 1);
  memcpy(value, text, length);
  value[length] = '\0';
  return TCX_OK;
}

/* Reads a string attribute whose type is a variable-length string. */
static int tcx_h5_read_attr_variable(tcx_ctx *ctx, hid_t attr, hid_t type,
                                     char *value, size_t value_size,
                                     const char *path, const char *name)
{
  hid_t memory_type = H5Tcopy(H5T_C_S1);
  char *text = NULL;
  int rc = TCX_OK;

  /* HDF5 does not convert between ASCII and UTF-8, so the memory type
   * takes the character set of the file type. */
  TCX_CHECK(memory_type >= 0 && H5Tset_size(memory_type, H5T_VARIABLE) >= 0 &&
                H5Tset_cset(memory_type, H5Tget_cset(type)) >= 0,
            ctx, TCX_ERR_INTERNAL, "H5Tcopy or H5Tset_size failed for %s",
            path);
  TCX_CHECK(H5Aread(attr, memory_type, &text) >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 failed to read root attribute \"%s\"", path, name);
  TCX_TRY(tcx_h5_copy_attr_text(ctx, text ? text : "", text ? strlen(text) : 0,
                                value, value_size, path, name));

cleanup:
  if (text && H5free_memory(text) < 0 && rc == TCX_OK)
    rc = tcx_error(ctx, TCX_ERR_INTERNAL, "H5free_memory failed for %s", path);
  return tcx_h5_close(ctx, rc, memory_type, path);
}

/* Reads a string attribute whose type is a fixed-length string. */
static int tcx_h5_read_attr_fixed(tcx_ctx *ctx, hid_t attr, hid_t type,
                                  char *value, size_t value_size,
                                  const char *path, const char *name)
{
  const size_t size = H5Tget_size(type);
  hid_t memory_type = H5Tcopy(type); /* same size and character set */
  char *text = NULL;
  int rc = TCX_OK;

  TCX_CHECK(size > 0 && memory_type >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Tcopy failed for a string attribute of %s", path);
  TCX_TRY(tcx_calloc(ctx, (int64_t)size + 1, 1, name, &text));
  TCX_CHECK(H5Aread(attr, memory_type, text) >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 failed to read root attribute \"%s\"", path, name);
  TCX_TRY(tcx_h5_copy_attr_text(ctx, text, strlen(text), value, value_size,
                                path, name));

cleanup:
  free(text);
  return tcx_h5_close(ctx, rc, memory_type, path);
}

int tcx_h5_get_attr_string(tcx_ctx *ctx, hid_t file, const char *path,
                           const char *name, char *value, size_t value_size)
{
  hid_t attr = -1, type = -1;
  htri_t variable;
  int rc = TCX_OK;

  TCX_CHECK(value_size > 0, ctx, TCX_ERR_INTERNAL,
            "no room to read root attribute \"%s\" of %s", name, path);
  TCX_TRY(tcx_h5_open_attr(ctx, file, path, name, &attr));
  type = H5Aget_type(attr);
  TCX_CHECK(type >= 0 && H5Tget_class(type) == H5T_STRING, ctx,
            TCX_ERR_INPUT, "%s: root attribute \"%s\" is not a string", path,
            name);
  variable = H5Tis_variable_str(type);
  TCX_CHECK(variable >= 0, ctx, TCX_ERR_INPUT,
            "%s: HDF5 cannot inspect the string type of attribute \"%s\"",
            path, name);
  if (variable)
    rc = tcx_h5_read_attr_variable(ctx, attr, type, value, value_size, path,
                                   name);
  else
    rc = tcx_h5_read_attr_fixed(ctx, attr, type, value, value_size, path,
                                name);

cleanup:
  rc = tcx_h5_close(ctx, rc, type, path);
  return tcx_h5_close(ctx, rc, attr, path);
}
