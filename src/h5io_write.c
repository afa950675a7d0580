/* Output files: created as PATH.tmp, filled with column and replicated
 * datasets and root attributes, then renamed to PATH or deleted. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5io_internal.h"

/* In serial mode one rank works alone and has no other rank to agree with. */
int tcx_h5_output_agree(tcx_ctx *ctx, const tcx_h5_output *out, int rc)
{
  return out->serial ? rc : tcx_ctx_agree(ctx, rc);
}

/* Rejects a write to an output that tcx_h5_create() did not return. */
static int tcx_h5_check_output(tcx_ctx *ctx, const tcx_h5_output *out,
                               const char *name)
{
  if (out && out->file >= 0)
    return TCX_OK;
  return tcx_error(ctx, TCX_ERR_INTERNAL,
                   "\"%s\" written to an output file that is not open",
                   name ? name : "(unnamed)");
}

/* The rank that writes replicated datasets, attributes and the rename. */
static int tcx_h5_is_writer(const tcx_ctx *ctx, const tcx_h5_output *out)
{
  return out->serial || tcx_ctx_rank(ctx) == 0;
}

static void tcx_h5_output_free(tcx_h5_output **out)
{
  if (!*out)
    return;
  free((*out)->path);
  free((*out)->temp_path);
  free(*out);
  *out = NULL;
}

/* Allocates an output record for path; the file is not created yet. */
static int tcx_h5_output_new(tcx_ctx *ctx, const char *path, int serial,
                             tcx_h5_output **out)
{
  const int64_t length = (int64_t)strlen(path);
  tcx_h5_output *record = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*record), "output file record",
                     &record));
  record->file = -1;
  record->transfer = -1;
  record->serial = serial;
  record->max_transfer_bytes = TCX_H5_TRANSFER_BYTES;
  TCX_TRY(tcx_calloc(ctx, length + 1, 1, "output path", &record->path));
  TCX_TRY(tcx_calloc(ctx, length + 5, 1, "output path", &record->temp_path));
  memcpy(record->path, path, (size_t)length);
  snprintf(record->temp_path, (size_t)length + 5, "%s.tmp", path);
  *out = record;
  record = NULL;

cleanup:
  tcx_h5_output_free(&record);
  return rc;
}

/* Creates (or truncates) the temporary file and the transfer list. */
static int tcx_h5_output_open(tcx_ctx *ctx, tcx_h5_output *out)
{
  hid_t access_list = H5Pcreate(H5P_FILE_ACCESS);
  int rc = TCX_OK;

  TCX_CHECK(access_list >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Pcreate failed for a file access list for %s", out->path);
  if (!out->serial)
    TCX_CHECK(H5Pset_fapl_mpio(access_list, tcx_ctx_comm(ctx),
                               MPI_INFO_NULL) >= 0,
              ctx, TCX_ERR_INTERNAL,
              "H5Pset_fapl_mpio failed for %s; check that HDF5 is built "
              "with MPI-IO",
              out->path);
  out->file =
      H5Fcreate(out->temp_path, H5F_ACC_TRUNC, H5P_DEFAULT, access_list);
  if (out->file < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                   "HDF5 cannot create %s (%s); check the free space and "
                   "quota of its folder and that no other program has the "
                   "file open",
                   out->temp_path, detail);
    goto cleanup;
  }
  TCX_TRY(tcx_h5_create_transfer(ctx, out->serial, out->temp_path,
                                 &out->transfer));

cleanup:
  return tcx_h5_close(ctx, rc, access_list, out->path);
}

/* Reserves disk space on the writer rank (see tcx_h5_reserve_space()),
 * then agrees. Collective unless serial. */
int tcx_h5_reserve_and_agree(tcx_ctx *ctx, tcx_h5_output *out,
                             hid_t dataset, const char *name, int64_t extra,
                             int rc)
{
  if (rc == TCX_OK && tcx_h5_is_writer(ctx, out))
    rc = tcx_h5_reserve_space(ctx, out, dataset, name, extra);
  return tcx_h5_output_agree(ctx, out, rc);
}

/* Closes the file of out and deletes it, ignoring failures, because the
 * caller has already stored an error and only cleans up. Every rank of a
 * parallel output calls it. */
static void tcx_h5_output_abandon(tcx_ctx *ctx, tcx_h5_output *out)
{
  const int writer = tcx_h5_is_writer(ctx, out);

  /* H5Fclose still flushes the metadata, and in parallel each rank writes
   * part of it. Normally it all lies in reserved blocks. When it does not,
   * truncating the discarded file frees its blocks first, so that the
   * flush finds room. The barrier keeps the other ranks from writing
   * before the truncation. */
  if (writer && out->file >= 0 && !out->covered)
    (void)truncate(out->temp_path, 0);
  if (!out->serial)
    (void)MPI_Barrier(tcx_ctx_comm(ctx));
  if (out->transfer >= 0)
    (void)H5Pclose(out->transfer);
  /* NOTE: when this close fails all the same, HDF5 1.10.8 keeps the file's
   * id but frees the file, and crashes when MPI_Finalize closes it again. */
  if (out->file >= 0)
    (void)H5Fclose(out->file);
  if (writer)
    (void)unlink(out->temp_path);
  out->transfer = -1;
  out->file = -1;
}

static int tcx_h5_create_output(tcx_ctx *ctx, const char *path, int serial,
                                tcx_h5_output **out)
{
  tcx_h5_output *record = NULL;
  int rc = TCX_OK;

  *out = NULL;
  rc = tcx_h5_silence_errors(ctx);
  if (rc == TCX_OK && (serial || tcx_ctx_rank(ctx) == 0))
    rc = tcx_h5_check_output_path(ctx, path);
  if (rc == TCX_OK)
    rc = tcx_h5_output_new(ctx, path, serial, &record);
  if (rc == TCX_OK && tcx_h5_is_writer(ctx, record))
    rc = tcx_h5_probe_space(ctx, record);
  if (!serial)
    rc = tcx_ctx_agree(ctx, rc);
  if (rc != TCX_OK) {
    tcx_h5_output_free(&record);
    return rc;
  }
  rc = tcx_h5_output_agree(ctx, record, tcx_h5_output_open(ctx, record));
  TCX_TRY(tcx_h5_reserve_and_agree(ctx, record, -1, NULL, 0, rc));
  *out = record;
  record = NULL;

cleanup:
  if (record)
    tcx_h5_output_abandon(ctx, record);
  tcx_h5_output_free(&record);
  return rc;
}

int tcx_h5_create(tcx_ctx *ctx, const char *path, tcx_h5_output **out)
{
  return tcx_h5_create_output(ctx, path, 0, out);
}

int tcx_h5_create_serial(tcx_ctx *ctx, const char *path, tcx_h5_output **out)
{
  return tcx_h5_create_output(ctx, path, 1, out);
}

/* Picks chunk dimensions for a column dataset: at most
 * TCX_H5_CHUNK_COLUMNS columns, then leading dimensions from the innermost
 * outwards while the chunk stays under TCX_H5_CHUNK_BYTES. */
static void tcx_h5_choose_chunk(int n_dims, const int64_t *dims,
                                size_t element, hsize_t *chunk)
{
  const int64_t columns = dims[n_dims - 1] < TCX_H5_CHUNK_COLUMNS
                              ? dims[n_dims - 1]
                              : TCX_H5_CHUNK_COLUMNS;
  int64_t budget = TCX_H5_CHUNK_BYTES / ((int64_t)element * columns);

  chunk[n_dims - 1] = (hsize_t)columns;
  for (int d = n_dims - 2; d >= 0; d--) {
    const int64_t rows = dims[d] < budget ? dims[d] : budget;

    chunk[d] = (hsize_t)(rows > 0 ? rows : 1);
    budget = budget / (int64_t)chunk[d] > 0 ? budget / (int64_t)chunk[d] : 1;
  }
}

/* Creates the link and creation property lists of dataset name. chunk
 * receives the chunk shape when chunked. Not collective. */
static int tcx_h5_dataset_lists(tcx_ctx *ctx, const tcx_h5_output *out,
                                const char *name, hid_t file_type,
                                int n_dims, const int64_t *dims, int chunked,
                                hsize_t *chunk, hid_t *link_list,
                                hid_t *create_list)
{
  int rc = TCX_OK;

  TCX_CHECK(H5Lexists(out->file, name, H5P_DEFAULT) <= 0, ctx,
            TCX_ERR_INTERNAL, "dataset \"%s\" is written twice to %s", name,
            out->path);
  *link_list = H5Pcreate(H5P_LINK_CREATE);
  *create_list = H5Pcreate(H5P_DATASET_CREATE);
  TCX_CHECK(*link_list >= 0 && *create_list >= 0 &&
                H5Pset_create_intermediate_group(*link_list, 1) >= 0 &&
                H5Pset_fill_time(*create_list, H5D_FILL_TIME_NEVER) >= 0 &&
                H5Pset_alloc_time(*create_list, H5D_ALLOC_TIME_EARLY) >= 0,
            ctx, TCX_ERR_INTERNAL,
            "HDF5 cannot set up dataset \"%s\" of %s", name, out->path);
  if (chunked) {
    tcx_h5_choose_chunk(n_dims, dims, H5Tget_size(file_type), chunk);
    TCX_CHECK(H5Pset_chunk(*create_list, n_dims, chunk) >= 0, ctx,
              TCX_ERR_INTERNAL, "H5Pset_chunk failed for \"%s\" of %s", name,
              out->path);
  }

cleanup:
  return rc;
}

/* Creates dataset name with intermediate groups. Chunked layout applies
 * only to non-empty column datasets; the others are contiguous. File space
 * is allocated at once (H5D_ALLOC_TIME_EARLY), and disk space for it is
 * reserved before, so that the dataset's header and chunk index land in
 * reserved blocks. Collective unless serial. */
int tcx_h5_create_dataset(tcx_ctx *ctx, tcx_h5_output *out,
                          const char *name, hid_t file_type, int n_dims,
                          const int64_t *dims, int chunked, hid_t *dataset)
{
  hsize_t extent[3], chunk[3];
  hid_t space = -1, link_list = -1, create_list = -1;
  int64_t total = 1;
  int rc = TCX_OK;

  *dataset = -1;
  for (int d = 0; d < n_dims; d++) {
    extent[d] = (hsize_t)dims[d];
    total *= dims[d];
  }
  chunked = chunked && total > 0;
  rc = tcx_h5_dataset_lists(ctx, out, name, file_type, n_dims, dims, chunked,
                            chunk, &link_list, &create_list);
  if (rc == TCX_OK) {
    space = H5Screate_simple(n_dims, extent, NULL);
    if (space < 0)
      rc = tcx_error(ctx, TCX_ERR_INTERNAL,
                     "H5Screate_simple failed for \"%s\" of %s", name,
                     out->path);
  }
  TCX_TRY(tcx_h5_reserve_and_agree(
      ctx, out, -1, name,
      tcx_h5_dataset_bytes(n_dims, dims, H5Tget_size(file_type),
                           chunked ? chunk : NULL),
      rc));
  *dataset = H5Dcreate2(out->file, name, file_type, space, link_list,
                        create_list, H5P_DEFAULT);
  if (*dataset < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                   "HDF5 cannot create dataset \"%s\" in %s (%s); check the "
                   "free space and quota of its folder",
                   name, out->temp_path, detail);
  }

cleanup:
  rc = tcx_h5_close(ctx, rc, create_list, out->path);
  rc = tcx_h5_close(ctx, rc, link_list, out->path);
  return tcx_h5_close(ctx, rc, space, out->path);
}

/* Closes a dataset of the output. Closing flushes cached chunks and
 * metadata, so a failure means that data may be missing from the file: an
 * output error. */
int tcx_h5_close_dataset(tcx_ctx *ctx, int rc, hid_t dataset,
                         const tcx_h5_output *out, const char *name)
{
  char detail[256];

  if (dataset < 0 || H5Dclose(dataset) >= 0)
    return rc;
  if (rc != TCX_OK)
    return rc;
  tcx_h5_error_detail(detail, sizeof(detail));
  return tcx_error(ctx, TCX_ERR_OUTPUT,
                   "HDF5 failed to close dataset \"%s\" of %s (%s), so its "
                   "data may be incomplete; check the free space and quota "
                   "of its folder",
                   name, out->temp_path, detail);
}

/* Checks the arguments of a dataset write. Not collective. */
static int tcx_h5_check_write(tcx_ctx *ctx, const tcx_h5_output *out,
                              const char *name, int type, int n_dims,
                              const int64_t *dims)
{
  int rc = TCX_OK;

  TCX_CHECK(name && name[0] != '\0', ctx, TCX_ERR_INTERNAL,
            "dataset without a name written to %s", out->path);
  TCX_CHECK(tcx_h5_memory_type(type) >= 0, ctx, TCX_ERR_INTERNAL,
            "dataset \"%s\" of %s has unknown type code %d", name, out->path,
            type);
  TCX_CHECK(n_dims >= 1 && n_dims <= 3, ctx, TCX_ERR_INTERNAL,
            "dataset \"%s\" of %s has %d dimensions; 1 to 3 are supported",
            name, out->path, n_dims);
  for (int d = 0; d < n_dims; d++)
    TCX_CHECK(dims[d] >= 0, ctx, TCX_ERR_INTERNAL,
              "dataset \"%s\" of %s has negative dimension %lld", name,
              out->path, (long long)dims[d]);

cleanup:
  return rc;
}

int tcx_h5_write_columns(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                         int type, int n_dims, const int64_t *dims,
                         int64_t col_begin, int64_t n_local,
                         const void *local)
{
  int64_t max_local = n_local;
  hid_t dataset = -1;
  int rc = TCX_OK;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  rc = tcx_h5_check_write(ctx, out, name, type, n_dims, dims);
  if (rc == TCX_OK &&
      (col_begin < 0 || n_local < 0 || col_begin + n_local > dims[n_dims - 1]))
    rc = tcx_error(ctx, TCX_ERR_INTERNAL,
                   "columns %lld..%lld of dataset \"%s\" lie outside its %lld "
                   "columns",
                   (long long)col_begin, (long long)(col_begin + n_local - 1),
                   name, (long long)dims[n_dims - 1]);
  if (rc == TCX_OK && !out->serial)
    rc = MPI_Allreduce(&n_local, &max_local, 1, MPI_INT64_T, MPI_MAX,
                       tcx_ctx_comm(ctx)) == MPI_SUCCESS
             ? TCX_OK
             : tcx_error(ctx, TCX_ERR_MPI,
                         "MPI_Allreduce of the column counts of \"%s\" failed",
                         name);
  TCX_TRY(tcx_h5_output_agree(ctx, out, rc));
  rc = tcx_h5_create_dataset(ctx, out, name, tcx_h5_file_type(type), n_dims,
                             dims, 1, &dataset);
  TCX_TRY(tcx_h5_reserve_and_agree(ctx, out, dataset, name, 0, rc));
  rc = tcx_h5_transfer_columns(ctx, dataset, out->transfer,
                               tcx_h5_memory_type(type), 1, n_dims, dims,
                               col_begin, n_local, max_local,
                               out->max_transfer_bytes, (void *)local,
                               out->temp_path, name);

cleanup:
  rc = tcx_h5_close_dataset(ctx, rc, dataset, out, name);
  return tcx_h5_output_agree(ctx, out, rc);
}

/* Writes all of data from the writer rank; the other ranks select nothing
 * but take part in the collective H5Dwrite. */
static int tcx_h5_write_from_writer(tcx_ctx *ctx, tcx_h5_output *out,
                                    hid_t dataset, hid_t memory_type,
                                    const void *data, const char *name)
{
  const int writer = tcx_h5_is_writer(ctx, out);
  hid_t file_space = H5Dget_space(dataset);
  hid_t memory_space = file_space >= 0 ? H5Scopy(file_space) : -1;
  double dummy = 0;
  int rc = TCX_OK;

  TCX_CHECK(file_space >= 0 && memory_space >= 0, ctx, TCX_ERR_INTERNAL,
            "HDF5 cannot create dataspaces for \"%s\" of %s", name,
            out->path);
  if (!writer)
    TCX_CHECK(H5Sselect_none(file_space) >= 0 &&
                  H5Sselect_none(memory_space) >= 0,
              ctx, TCX_ERR_INTERNAL,
              "H5Sselect_none failed for \"%s\" of %s", name, out->path);
  if (H5Dwrite(dataset, memory_type, memory_space, file_space,
               out->transfer, writer ? data : &dummy) < 0) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                   "HDF5 failed to write dataset \"%s\" to %s (%s); check "
                   "the free space and quota of its folder",
                   name, out->temp_path, detail);
  }

cleanup:
  rc = tcx_h5_close(ctx, rc, memory_space, out->path);
  return tcx_h5_close(ctx, rc, file_space, out->path);
}

int tcx_h5_write_replicated(tcx_ctx *ctx, tcx_h5_output *out,
                            const char *name, int type, int n_dims,
                            const int64_t *dims, const void *data)
{
  hid_t dataset = -1;
  int64_t total = 1;
  int rc = TCX_OK;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  TCX_TRY(tcx_h5_output_agree(ctx, out, tcx_h5_check_write(ctx, out, name,
                                                           type, n_dims,
                                                           dims)));
  rc = tcx_h5_create_dataset(ctx, out, name, tcx_h5_file_type(type), n_dims,
                             dims, 0, &dataset);
  TCX_TRY(tcx_h5_reserve_and_agree(ctx, out, dataset, name, 0, rc));
  for (int d = 0; d < n_dims; d++)
    total *= dims[d];
  if (total > 0)
    rc = tcx_h5_write_from_writer(ctx, out, dataset, tcx_h5_memory_type(type),
                                  data, name);

cleanup:
  rc = tcx_h5_close_dataset(ctx, rc, dataset, out, name);
  return tcx_h5_output_agree(ctx, out, rc);
}

/* Creates a fixed-length, null-terminated UTF-8 string type of length
 * characters. */
static int tcx_h5_string_type(tcx_ctx *ctx, size_t length, const char *path,
                              hid_t *type)
{
  int rc = TCX_OK;

  *type = H5Tcopy(H5T_C_S1);
  TCX_CHECK(*type >= 0 && H5Tset_size(*type, length + 1) >= 0 &&
                H5Tset_strpad(*type, H5T_STR_NULLTERM) >= 0 &&
                H5Tset_cset(*type, H5T_CSET_UTF8) >= 0,
            ctx, TCX_ERR_INTERNAL,
            "HDF5 cannot create a string type of %zu characters for %s",
            length, path);

cleanup:
  return rc;
}

/* Packs strings into count records of width bytes, zero-padded. */
static int tcx_h5_pack_strings(tcx_ctx *ctx, int64_t count,
                               char *const *strings, size_t width,
                               char **packed)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, count > 0 ? count : 1, width, "string table",
                     packed));
  for (int64_t k = 0; k < count; k++)
    memcpy(*packed + (size_t)k * width, strings[k], strlen(strings[k]));

cleanup:
  return rc;
}

int tcx_h5_write_strings(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                         int64_t count, char *const *strings)
{
  const int64_t dims[1] = {count};
  size_t longest = 0;
  hid_t type = -1, dataset = -1;
  char *packed = NULL;
  int rc = TCX_OK;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  for (int64_t k = 0; k < count; k++)
    longest = strlen(strings[k]) > longest ? strlen(strings[k]) : longest;
  /* Any valid type code passes the shape check; the string type is made
   * below. */
  rc = tcx_h5_check_write(ctx, out, name, TCX_H5_INT32, 1, dims);
  if (rc == TCX_OK)
    rc = tcx_h5_string_type(ctx, longest, out->path, &type);
  if (rc == TCX_OK)
    rc = tcx_h5_pack_strings(ctx, count, strings, longest + 1, &packed);
  TCX_TRY(tcx_h5_output_agree(ctx, out, rc));
  rc = tcx_h5_create_dataset(ctx, out, name, type, 1, dims, 0, &dataset);
  TCX_TRY(tcx_h5_reserve_and_agree(ctx, out, dataset, name, 0, rc));
  if (count > 0)
    rc = tcx_h5_write_from_writer(ctx, out, dataset, type, packed, name);

cleanup:
  free(packed);
  rc = tcx_h5_close_dataset(ctx, rc, dataset, out, name);
  rc = tcx_h5_close(ctx, rc, type, out->path);
  return tcx_h5_output_agree(ctx, out, rc);
}

/* Writes (or replaces) a scalar root attribute. Every rank passes the same
 * value, as HDF5 requires for attribute writes in parallel. */
static int tcx_h5_write_attr(tcx_ctx *ctx, tcx_h5_output *out,
                             const char *name, hid_t file_type,
                             hid_t memory_type, const void *value)
{
  hid_t space = -1, attr = -1;
  htri_t exists;
  int rc = TCX_OK;

  TCX_CHECK(name[0] != '\0', ctx, TCX_ERR_INTERNAL,
            "attribute without a name written to %s", out->path);
  exists = H5Aexists(out->file, name);
  TCX_CHECK(exists >= 0, ctx, TCX_ERR_OUTPUT,
            "HDF5 cannot look up attribute \"%s\" in %s", name,
            out->temp_path);
  if (exists)
    TCX_CHECK(H5Adelete(out->file, name) >= 0, ctx, TCX_ERR_OUTPUT,
              "HDF5 cannot replace attribute \"%s\" in %s", name,
              out->temp_path);
  space = H5Screate(H5S_SCALAR);
  TCX_CHECK(space >= 0, ctx, TCX_ERR_INTERNAL,
            "H5Screate failed for attribute \"%s\"", name);
  attr = H5Acreate2(out->file, name, file_type, space, H5P_DEFAULT,
                    H5P_DEFAULT);
  TCX_CHECK(attr >= 0 && H5Awrite(attr, memory_type, value) >= 0, ctx,
            TCX_ERR_OUTPUT, "HDF5 cannot write attribute \"%s\" to %s", name,
            out->temp_path);

cleanup:
  rc = tcx_h5_close(ctx, rc, attr, out->path);
  return tcx_h5_close(ctx, rc, space, out->path);
}

int tcx_h5_write_attr_string(tcx_ctx *ctx, tcx_h5_output *out,
                             const char *name, const char *value)
{
  hid_t type = -1;
  int rc = TCX_OK;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  rc = tcx_h5_string_type(ctx, strlen(value), out->path, &type);
  if (rc == TCX_OK)
    rc = tcx_h5_write_attr(ctx, out, name, type, type, value);
  rc = tcx_h5_close(ctx, rc, type, out->path);
  return tcx_h5_output_agree(ctx, out, rc);
}

int tcx_h5_write_attr_int(tcx_ctx *ctx, tcx_h5_output *out, const char *name,
                          int64_t value)
{
  int rc;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  rc = tcx_h5_write_attr(ctx, out, name, H5T_STD_I64LE, H5T_NATIVE_INT64,
                         &value);
  return tcx_h5_output_agree(ctx, out, rc);
}

int tcx_h5_write_attr_double(tcx_ctx *ctx, tcx_h5_output *out,
                             const char *name, double value)
{
  int rc;

  if (tcx_h5_check_output(ctx, out, name) != TCX_OK)
    return TCX_ERR_INTERNAL;
  rc = tcx_h5_write_attr(ctx, out, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                         &value);
  return tcx_h5_output_agree(ctx, out, rc);
}

int tcx_h5_publish(tcx_ctx *ctx, const char *temp_path, const char *path)
{
  int descriptor = open(temp_path, O_RDONLY);
  int rc = TCX_OK;

  TCX_CHECK(descriptor >= 0, ctx, TCX_ERR_OUTPUT,
            "cannot reopen %s to flush it: %s", temp_path, strerror(errno));
  TCX_CHECK(fsync(descriptor) == 0, ctx, TCX_ERR_OUTPUT,
            "cannot flush %s to disk: %s", temp_path, strerror(errno));
  TCX_CHECK(rename(temp_path, path) == 0, ctx, TCX_ERR_OUTPUT,
            "cannot rename %s to %s: %s", temp_path, path, strerror(errno));

cleanup:
  if (descriptor >= 0 && close(descriptor) != 0 && rc == TCX_OK)
    rc = tcx_error(ctx, TCX_ERR_OUTPUT, "cannot close %s: %s", temp_path,
                   strerror(errno));
  return rc;
}

/* Closes the transfer list and the file; a failed close means that data
 * may be missing from the file. */
static int tcx_h5_output_close(tcx_ctx *ctx, tcx_h5_output *out)
{
  int rc = tcx_h5_close(ctx, TCX_OK, out->transfer, out->path);

  out->transfer = -1;
  if (out->file >= 0 && H5Fclose(out->file) < 0 && rc == TCX_OK) {
    char detail[256];

    tcx_h5_error_detail(detail, sizeof(detail));
    rc = tcx_error(ctx, TCX_ERR_OUTPUT,
                   "HDF5 failed to close %s (%s), so its contents may be "
                   "incomplete; check the free space and quota of its folder",
                   out->temp_path, detail);
  }
  out->file = -1;
  return rc;
}

/* Cuts the closed temporary file back to its end of allocated space
 * (EOA) when the disk reservation left it longer. HDF5 shrinks the EOA in
 * H5Fclose, but its sec2 driver then truncates the file only when the file
 * size it has seen differs from the EOA. Writer rank only. */
static int tcx_h5_trim(tcx_ctx *ctx, const tcx_h5_output *out)
{
  hid_t file = H5Fopen(out->temp_path, H5F_ACC_RDONLY, H5P_DEFAULT);
  haddr_t eoa = 0;
  struct stat info;
  int rc = TCX_OK;

  TCX_CHECK(file >= 0 && H5Fget_eoa(file, &eoa) >= 0, ctx, TCX_ERR_OUTPUT,
            "HDF5 cannot reopen %s to check its size", out->temp_path);
  TCX_CHECK(stat(out->temp_path, &info) == 0, ctx, TCX_ERR_OUTPUT,
            "cannot read the size of %s: %s (errno %d)", out->temp_path,
            strerror(errno), errno);
  if ((int64_t)info.st_size > (int64_t)eoa)
    TCX_CHECK(truncate(out->temp_path, (off_t)eoa) == 0, ctx,
              TCX_ERR_OUTPUT, "cannot cut %s to %lld bytes: %s (errno %d)",
              out->temp_path, (long long)eoa, strerror(errno), errno);

cleanup:
  return tcx_h5_close(ctx, rc, file, out->temp_path);
}

int tcx_h5_commit(tcx_ctx *ctx, tcx_h5_output **out)
{
  tcx_h5_output *record = out ? *out : NULL;
  int writer;
  int rc = TCX_OK;

  if (!record)
    return tcx_error(ctx, TCX_ERR_INTERNAL,
                     "tcx_h5_commit called without an open output file");
  *out = NULL;
  writer = tcx_h5_is_writer(ctx, record);
  /* Disk space for the metadata allocated since the last dataset, which
   * H5Fclose flushes. */
  rc = tcx_h5_reserve_and_agree(ctx, record, -1, NULL, 0, TCX_OK);
  if (rc != TCX_OK) {
    tcx_h5_output_abandon(ctx, record);
    tcx_h5_output_free(&record);
    return rc;
  }
  rc = tcx_h5_output_agree(ctx, record, tcx_h5_output_close(ctx, record));
  if (rc == TCX_OK && writer)
    rc = tcx_h5_trim(ctx, record);
  if (rc == TCX_OK && writer)
    rc = tcx_h5_publish(ctx, record->temp_path, record->path);
  rc = tcx_h5_output_agree(ctx, record, rc);
  if (rc != TCX_OK && writer)
    (void)unlink(record->temp_path);
  tcx_h5_output_free(&record);
  return rc;
}

void tcx_h5_discard(tcx_ctx *ctx, tcx_h5_output **out)
{
  tcx_h5_output *record = out ? *out : NULL;

  if (!record)
    return;
  *out = NULL;
  tcx_h5_output_abandon(ctx, record);
  /* The barrier only keeps the other ranks until the file is gone. The
   * caller has already stored an error, so a failed barrier is ignored. */
  if (!record->serial)
    (void)MPI_Barrier(tcx_ctx_comm(ctx));
  tcx_h5_output_free(&record);
}
