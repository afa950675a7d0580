/* NIfTI-1 input and output through nifticlib (nifti1_io.h). Rank 0 reads
 * the whole BOLD image, so it needs about the image's size plus 4 T p bytes
 * of memory. The other ranks only agree on the outcome. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nifti1_io.h>

#include "h5io_internal.h"
#include "tcorex/nifti.h"

/* Geometry of a voxel grid: everything a NIfTI header needs to place a
 * 3-D image exactly where the converted image was. */
typedef struct tcx_nifti_geometry {
  int grid[3];            /* nx, ny, nz */
  double voxel_size[3];   /* pixdim[1..3] */
  double sform[4][4];     /* srow_x, srow_y, srow_z and 0 0 0 1 */
  double qform[4][4];     /* the matrix nifticlib derives from the qform */
  double quatern[3];      /* quatern_b, quatern_c, quatern_d */
  double qoffset[3];      /* qoffset_x, qoffset_y, qoffset_z */
  double qfac;
  int sform_code, qform_code, xyz_units;
} tcx_nifti_geometry;

/* Names of the root attributes that hold the qform parameters. */
static const char *const tcx_nifti_quatern_names[3] = {
    "quatern_b", "quatern_c", "quatern_d"};
static const char *const tcx_nifti_qoffset_names[3] = {
    "qoffset_x", "qoffset_y", "qoffset_z"};

/* Returns 1 for the real scalar types that tcorex converts. */
static int tcx_nifti_is_supported_type(int datatype)
{
  switch (datatype) {
  case DT_UINT8: case DT_INT8: case DT_INT16: case DT_UINT16:
  case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
  case DT_FLOAT32: case DT_FLOAT64:
    return 1;
  default:
    return 0;
  }
}

/* Returns element index of the image data as double, before scaling. */
static double tcx_nifti_raw_value(const nifti_image *image, size_t index)
{
  const void *data = image->data;

  switch (image->datatype) {
  case DT_UINT8: return ((const uint8_t *)data)[index];
  case DT_INT8: return ((const int8_t *)data)[index];
  case DT_INT16: return ((const int16_t *)data)[index];
  case DT_UINT16: return ((const uint16_t *)data)[index];
  case DT_INT32: return ((const int32_t *)data)[index];
  case DT_UINT32: return ((const uint32_t *)data)[index];
  case DT_INT64: return (double)((const int64_t *)data)[index];
  case DT_UINT64: return (double)((const uint64_t *)data)[index];
  case DT_FLOAT32: return ((const float *)data)[index];
  default: return ((const double *)data)[index];
  }
}

/* Returns element index scaled by scl_slope and scl_inter. In NIfTI-1 a
 * slope of 0 means no scaling. */
static double tcx_nifti_value(const nifti_image *image, size_t index)
{
  const double raw = tcx_nifti_raw_value(image, index);

  if (image->scl_slope == 0 || !isfinite(image->scl_slope))
    return raw;
  return raw * image->scl_slope + image->scl_inter;
}

/* First allocation for voxel data. The buffer then grows by doubling, so a
 * header that declares more voxels than the file contains fails at the end
 * of the file, after allocating at most 64 MiB or twice the bytes present. */
#define TCX_NIFTI_READ_CHUNK ((size_t)64 << 20)

/* Returns the voxel data size that the header of image declares, or 0 when
 * a dimension is not positive or the product overflows. */
static size_t tcx_nifti_declared_bytes(const nifti_image *image)
{
  size_t bytes = image->nbyper > 0 ? (size_t)image->nbyper : 0;

  if (image->dim[0] < 1 || image->dim[0] > 7)
    return 0;
  for (int d = 1; d <= image->dim[0]; d++) {
    if (image->dim[d] < 1 || bytes > SIZE_MAX / (size_t)image->dim[d])
      return 0;
    bytes *= (size_t)image->dim[d];
  }
  return bytes;
}

/* Reads up to bytes bytes from file into a buffer that grows as data
 * arrive. *got receives the count read. The caller frees *data. */
static int tcx_nifti_read_growing(tcx_ctx *ctx, znzFile file, size_t bytes,
                                  char **data, size_t *got)
{
  size_t capacity = 0;
  int rc = TCX_OK;

  *data = NULL;
  *got = 0;
  while (*got < bytes) {
    size_t count;

    if (*got == capacity) {
      const size_t doubled = capacity == 0 ? TCX_NIFTI_READ_CHUNK
                             : capacity > SIZE_MAX / 2 ? SIZE_MAX
                                                        : 2 * capacity;
      const size_t grown = doubled < bytes ? doubled : bytes;
      char *larger = realloc(*data, grown);

      TCX_CHECK(larger != NULL, ctx, TCX_ERR_MEMORY,
                "out of memory reading NIfTI voxel data (%zu bytes); run on "
                "a node with more memory",
                grown);
      *data = larger;
      capacity = grown;
    }
    count = znzread(*data + *got, 1, capacity - *got, file);
    if (count == 0 || count == (size_t)-1)
      break;
    *got += count;
  }

cleanup:
  return rc;
}

/* Reads the voxel data of image from its file as stored, in the CPU's
 * byte order. nifti_image_load() would do it too, but nifticlib 3.0.1
 * there replaces NaN and infinite floats by 0, which would hide missing
 * values and let infinite ones pass. */
static int tcx_nifti_load_data(tcx_ctx *ctx, nifti_image *image,
                               const char *path, const char *role)
{
  const size_t bytes = tcx_nifti_declared_bytes(image);
  znzFile file = NULL;
  char *data = NULL;
  size_t got = 0;
  int rc = TCX_OK;

  TCX_CHECK(bytes > 0 && bytes == nifti_get_volsize(image), ctx,
            TCX_ERR_INPUT,
            "%s %s has a corrupt header: dimensions %d x %d x %d x %d "
            "(dim[0] = %d) of %d-byte voxels give no valid data size; "
            "rewrite the file with a NIfTI tool",
            role, path, image->dim[1], image->dim[2], image->dim[3],
            image->dim[4], image->dim[0], image->nbyper);
  TCX_CHECK(image->iname && image->iname_offset >= 0, ctx, TCX_ERR_INPUT,
            "%s %s has no usable voxel data offset (vox_offset %d)", role,
            path, image->iname_offset);
  file = znzopen(image->iname, "rb", nifti_is_gzfile(image->iname));
  TCX_CHECK(!znz_isnull(file), ctx, TCX_ERR_INPUT,
            "cannot open the voxel data of %s %s (%s): %s", role, path,
            image->iname, strerror(errno));
  TCX_CHECK(znzseek(file, (znz_off_t)image->iname_offset, SEEK_SET) >= 0,
            ctx, TCX_ERR_INPUT,
            "%s %s is truncated: its voxel data should start at byte %d",
            role, path, image->iname_offset);
  TCX_TRY(tcx_nifti_read_growing(ctx, file, bytes, &data, &got));
  TCX_CHECK(got == bytes, ctx, TCX_ERR_INPUT,
            "%s %s is truncated or corrupt: its header declares %d x %d x "
            "%d x %d voxels of %d bytes, %zu bytes from byte %d on, but "
            "only %zu could be read; copy or rewrite the file",
            role, path, image->dim[1], image->dim[2], image->dim[3],
            image->dim[0] >= 4 ? image->dim[4] : 1, image->nbyper, bytes,
            image->iname_offset, got);
  image->data = data;
  data = NULL;
  if (image->swapsize > 1 && image->byteorder != nifti_short_order())
    nifti_swap_Nbytes(bytes / (size_t)image->swapsize, image->swapsize,
                      image->data);

cleanup:
  free(data);
  if (!znz_isnull(file))
    (void)znzclose(file);
  return rc;
}

/* Returns 1 when header is in the other byte order, 0 when it is in this
 * CPU's, or -1 when neither gives dim[0] in 1..7 (or, when dim[0] is 0, a
 * header size of 348). This is the rule nifti_read_header() applies. */
static int tcx_nifti_needs_swap(const nifti_1_header *header)
{
  int16_t dim0 = header->dim[0];
  int32_t size = header->sizeof_hdr;

  if (dim0 != 0) {
    if (dim0 >= 1 && dim0 <= 7)
      return 0;
    nifti_swap_2bytes(1, &dim0);
    return dim0 >= 1 && dim0 <= 7 ? 1 : -1;
  }
  if (size == (int32_t)sizeof(*header))
    return 0;
  nifti_swap_4bytes(1, &size);
  return size == (int32_t)sizeof(*header) ? 1 : -1;
}

/* Fails unless the first 348 bytes of path are a valid NIfTI-1 header.
 * nifticlib 3.0.1 prints "** ERROR" lines to stderr, whatever its debug
 * level, when nifti_image_read() or nifti_read_header() meets an invalid
 * header. nifti_hdr_looks_good() is silent at debug level 0, so checking
 * the header with it first makes each error reach the user once. */
static int tcx_nifti_check_header(tcx_ctx *ctx, const char *path,
                                  const char *role)
{
  nifti_1_header header;
  znzFile file = znzopen(path, "rb", nifti_is_gzfile(path));
  size_t got = 0;
  int swap;
  int rc = TCX_OK;

  TCX_CHECK(!znz_isnull(file), ctx, TCX_ERR_INPUT, "cannot open %s %s: %s",
            role, path, strerror(errno));
  got = znzread(&header, 1, sizeof(header), file);
  TCX_CHECK(got == sizeof(header), ctx, TCX_ERR_INPUT,
            "%s %s is truncated: it has %zu bytes, fewer than the %zu of a "
            "NIfTI-1 header",
            role, path, got == (size_t)-1 ? (size_t)0 : got, sizeof(header));
  swap = tcx_nifti_needs_swap(&header);
  TCX_CHECK(swap >= 0, ctx, TCX_ERR_INPUT,
            "%s %s has a corrupt NIfTI-1 header: dim[0] is %d and the header "
            "size %d, in either byte order; rewrite the file with a NIfTI "
            "tool",
            role, path, header.dim[0], header.sizeof_hdr);
  if (swap)
    swap_nifti_header(&header, 1);
  /* nifti_convert_nhdr2nim() prints when dim[0], dim[1] or the datatype
   * is invalid, and nifti_datatype_is_valid() accepts DT_UNKNOWN, so the
   * datatype is checked against the types tcorex reads. */
  TCX_CHECK(tcx_nifti_is_supported_type(header.datatype), ctx,
            TCX_ERR_INPUT,
            "%s %s has voxel type %s (NIfTI datatype code %d); tcorex reads "
            "real integer and floating-point types only",
            role, path, nifti_datatype_to_string(header.datatype),
            header.datatype);
  TCX_CHECK(header.dim[0] >= 1 && header.dim[0] <= 7 && header.dim[1] > 0 &&
                nifti_hdr_looks_good(&header),
            ctx, TCX_ERR_INPUT,
            "%s %s has a corrupt NIfTI-1 header (invalid dimensions, voxel "
            "type or header size); rewrite the file with a NIfTI tool",
            role, path);

cleanup:
  if (!znz_isnull(file))
    (void)znzclose(file);
  return rc;
}

/* Reads a NIfTI-1 image with its data; role names it in messages. */
static int tcx_nifti_read(tcx_ctx *ctx, const char *path, const char *role,
                          nifti_image **image)
{
  struct stat info;
  int kind;
  int rc = TCX_OK;

  *image = NULL;
  nifti_set_debug_level(0); /* nifticlib prints to stderr otherwise */
  TCX_CHECK(stat(path, &info) == 0, ctx, TCX_ERR_INPUT, "%s %s %s (%s)",
            role, path,
            errno == ENOENT ? "not found" : "cannot be accessed",
            strerror(errno));
  kind = is_nifti_file(path);
  TCX_CHECK(kind != 0, ctx, TCX_ERR_INPUT,
            "%s %s is an ANALYZE 7.5 file without orientation; convert it "
            "to NIfTI-1 (.nii or .nii.gz) first",
            role, path);
  TCX_CHECK(kind > 0, ctx, TCX_ERR_INPUT,
            "%s %s is not a NIfTI-1 file (.nii or .nii.gz) or cannot be "
            "read; NIfTI-2 files are not supported",
            role, path);
  TCX_TRY(tcx_nifti_check_header(ctx, path, role));
  *image = nifti_image_read(path, 0);
  TCX_CHECK(*image, ctx, TCX_ERR_INPUT,
            "nifticlib failed to read the header of %s %s; the file may be "
            "truncated, or memory ran out",
            role, path);
  TCX_CHECK(tcx_nifti_is_supported_type((*image)->datatype), ctx,
            TCX_ERR_INPUT,
            "%s %s has voxel type %s; tcorex reads real integer and "
            "floating-point types only",
            role, path, nifti_datatype_to_string((*image)->datatype));
  TCX_TRY(tcx_nifti_load_data(ctx, *image, path, role));

cleanup:
  if (rc != TCX_OK && *image) {
    nifti_image_free(*image);
    *image = NULL;
  }
  return rc;
}

/* Fails unless image is 4-D: extra dimensions of length 1 are allowed. */
static int tcx_nifti_check_bold(tcx_ctx *ctx, const nifti_image *image,
                                const char *path)
{
  int extra = 1;

  for (int d = 5; d <= image->dim[0] && d <= 7; d++)
    extra *= image->dim[d];
  if (image->dim[0] >= 4 && extra == 1 && image->nt >= 1)
    return TCX_OK;
  return tcx_error(ctx, TCX_ERR_INPUT,
                   "BOLD image %s has %d dimensions (%d x %d x %d x %d); "
                   "expected a 4-D time series x, y, z, time",
                   path, image->dim[0], image->nx, image->ny, image->nz,
                   image->dim[0] >= 4 ? image->nt : 1);
}

/* Returns the number of voxels of one volume. */
static size_t tcx_nifti_volume_size(const nifti_image *image)
{
  return (size_t)image->nx * (size_t)image->ny * (size_t)image->nz;
}

/* Logs a warning when mask and BOLD affines differ by more than 1e-3 mm:
 * the grids match, so the mask is used, but it may come from elsewhere. */
static void tcx_nifti_compare_affines(tcx_ctx *ctx, const nifti_image *bold,
                                      const nifti_image *mask,
                                      const char *mask_path)
{
  const mat44 *a = bold->sform_code > 0 ? &bold->sto_xyz : &bold->qto_xyz;
  const mat44 *b = mask->sform_code > 0 ? &mask->sto_xyz : &mask->qto_xyz;
  double largest = 0;

  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 4; c++)
      largest = fmax(largest, fabs((double)a->m[r][c] - b->m[r][c]));
  if (largest > 1e-3)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: mask %s has the grid of the BOLD image but "
            "its affine differs by up to %g mm; check that both are in the "
            "same space",
            mask_path, largest);
}

/* Marks the voxels inside the mask image: nonzero and not NaN. */
static int tcx_nifti_mask_from_file(tcx_ctx *ctx, const nifti_image *bold,
                                    const char *mask_path, uint8_t *selected)
{
  nifti_image *mask = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_nifti_read(ctx, mask_path, "mask", &mask));
  TCX_CHECK(mask->dim[0] == 3 || (mask->dim[0] >= 4 && mask->nvox ==
                                  tcx_nifti_volume_size(mask)),
            ctx, TCX_ERR_INPUT,
            "mask %s has %d dimensions; expected a 3-D image", mask_path,
            mask->dim[0]);
  TCX_CHECK(mask->nx == bold->nx && mask->ny == bold->ny &&
                mask->nz == bold->nz,
            ctx, TCX_ERR_INPUT,
            "mask %s has grid %d x %d x %d but the BOLD image has %d x %d x "
            "%d; resample the mask to the BOLD grid",
            mask_path, mask->nx, mask->ny, mask->nz, bold->nx, bold->ny,
            bold->nz);
  tcx_nifti_compare_affines(ctx, bold, mask, mask_path);
  for (size_t v = 0; v < tcx_nifti_volume_size(mask); v++) {
    const double value = tcx_nifti_raw_value(mask, v);

    selected[v] = value != 0 && !isnan(value);
  }

cleanup:
  if (mask)
    nifti_image_free(mask);
  return rc;
}

/* Marks the voxels with at least two distinct finite values over time,
 * NaN (missing) aside, and the voxels with an infinite value, so that
 * tcx_nifti_gather() reports those instead of dropping them. */
static void tcx_nifti_mask_varying(const nifti_image *bold,
                                   uint8_t *selected)
{
  const size_t volume = tcx_nifti_volume_size(bold);

  for (size_t v = 0; v < volume; v++) {
    double first = NAN;

    selected[v] = 0;
    for (size_t t = 0; t < (size_t)bold->nt && !selected[v]; t++) {
      const double value = tcx_nifti_value(bold, t * volume + v);

      if (isnan(value))
        continue;
      if (isinf(value) || (!isnan(first) && value != first))
        selected[v] = 1;
      first = value;
    }
  }
}

/* Lists the selected voxels in storage order: index[c] is the linear index
 * within a volume, ijk[3 c .. 3 c + 2] its (i, j, k). */
static int tcx_nifti_list_voxels(tcx_ctx *ctx, const nifti_image *bold,
                                 const uint8_t *selected, int64_t **index,
                                 int32_t **ijk, int64_t *p)
{
  const size_t volume = tcx_nifti_volume_size(bold);
  int64_t count = 0;
  int rc = TCX_OK;

  for (size_t v = 0; v < volume; v++)
    count += selected[v];
  *p = count;
  TCX_TRY(tcx_calloc(ctx, count, sizeof(int64_t), "voxel list", index));
  TCX_TRY(tcx_calloc(ctx, 3 * count, sizeof(int32_t), "voxel coordinates",
                     ijk));
  count = 0;
  for (size_t v = 0; v < volume; v++) {
    if (!selected[v])
      continue;
    (*index)[count] = (int64_t)v;
    (*ijk)[3 * count] = (int32_t)(v % (size_t)bold->nx);
    (*ijk)[3 * count + 1] = (int32_t)(v / (size_t)bold->nx % (size_t)bold->ny);
    (*ijk)[3 * count + 2] =
        (int32_t)(v / ((size_t)bold->nx * (size_t)bold->ny));
    count++;
  }

cleanup:
  return rc;
}

/* Gathers the scaled time series of the listed voxels into data [T, p]
 * float32, rejecting values that are infinite or overflow float32. */
static int tcx_nifti_gather(tcx_ctx *ctx, const nifti_image *bold,
                            const int64_t *index, const int32_t *ijk,
                            int64_t p, const char *path, float **data)
{
  const size_t volume = tcx_nifti_volume_size(bold);
  const int64_t periods = bold->nt;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, periods * p, sizeof(float), "BOLD data", data));
  for (int64_t t = 0; t < periods; t++)
    for (int64_t c = 0; c < p; c++) {
      const double value =
          tcx_nifti_value(bold, (size_t)t * volume + (size_t)index[c]);

      TCX_CHECK(isnan(value) || fabs(value) <= FLT_MAX, ctx, TCX_ERR_INPUT,
                "BOLD image %s: voxel (i, j, k) = (%d, %d, %d) has value %g "
                "in volume %lld (0-based), which is infinite or does not "
                "fit float32; mask the voxel out or fix the image",
                path, ijk[3 * c], ijk[3 * c + 1], ijk[3 * c + 2], value,
                (long long)t);
      (*data)[t * p + c] = (float)value;
    }

cleanup:
  return rc;
}

/* Returns the repetition time in seconds from pixdim[4] and the time unit
 * of xyzt_units, or NaN with a warning when it is unknown. */
static double tcx_nifti_repetition_time(tcx_ctx *ctx,
                                        const nifti_image *bold,
                                        const char *path)
{
  const double step = bold->dt;

  if (!(step > 0)) {
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %s has no repetition time (pixdim[4] = %g); "
            "storing NaN",
            path, step);
    return NAN;
  }
  switch (bold->time_units) {
  case NIFTI_UNITS_SEC: return step;
  case NIFTI_UNITS_MSEC: return step * 1e-3;
  case NIFTI_UNITS_USEC: return step * 1e-6;
  case NIFTI_UNITS_UNKNOWN:
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %s gives no time unit; taking the repetition "
            "time %g as seconds",
            path, step);
    return step;
  default:
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %s has time unit code %d, which is not a "
            "time; storing NaN as the repetition time",
            path, bold->time_units);
    return NAN;
  }
}

/* Copies the grid and both spatial transforms of image into geometry. */
static void tcx_nifti_geometry_from_image(const nifti_image *image,
                                          tcx_nifti_geometry *geometry)
{
  const float quatern[3] = {image->quatern_b, image->quatern_c,
                            image->quatern_d};
  const float qoffset[3] = {image->qoffset_x, image->qoffset_y,
                            image->qoffset_z};

  memset(geometry, 0, sizeof(*geometry));
  geometry->grid[0] = image->nx;
  geometry->grid[1] = image->ny;
  geometry->grid[2] = image->nz;
  geometry->voxel_size[0] = image->dx;
  geometry->voxel_size[1] = image->dy;
  geometry->voxel_size[2] = image->dz;
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      geometry->sform[r][c] = image->sto_xyz.m[r][c];
      geometry->qform[r][c] = image->qto_xyz.m[r][c];
    }
  for (int d = 0; d < 3; d++) {
    geometry->quatern[d] = quatern[d];
    geometry->qoffset[d] = qoffset[d];
  }
  geometry->qfac = image->qfac;
  geometry->sform_code = image->sform_code;
  geometry->qform_code = image->qform_code;
  geometry->xyz_units = image->xyz_units;
}

/* Writes the geometry datasets and attributes of a converted file. */
static int tcx_nifti_write_geometry(tcx_ctx *ctx, tcx_h5_output *out,
                                    const tcx_nifti_geometry *geometry)
{
  const int64_t matrix[2] = {4, 4}, triple[1] = {3};
  const int32_t grid[3] = {geometry->grid[0], geometry->grid[1],
                           geometry->grid[2]};
  const double(*affine)[4] =
      geometry->sform_code > 0 ? geometry->sform : geometry->qform;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/affine", TCX_H5_DOUBLE, 2,
                                  matrix, affine));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/sform", TCX_H5_DOUBLE, 2,
                                  matrix, geometry->sform));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/qform", TCX_H5_DOUBLE, 2,
                                  matrix, geometry->qform));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/grid", TCX_H5_INT32, 1, triple,
                                  grid));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/voxel_size", TCX_H5_DOUBLE, 1,
                                  triple, geometry->voxel_size));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "sform_code", geometry->sform_code));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "qform_code", geometry->qform_code));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "xyz_units", geometry->xyz_units));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "qfac", geometry->qfac));
  for (int d = 0; d < 3; d++) {
    TCX_TRY(tcx_h5_write_attr_double(ctx, out, tcx_nifti_quatern_names[d],
                                     geometry->quatern[d]));
    TCX_TRY(tcx_h5_write_attr_double(ctx, out, tcx_nifti_qoffset_names[d],
                                     geometry->qoffset[d]));
  }

cleanup:
  return rc;
}

/* The selected voxels of a BOLD image and their time series. */
typedef struct tcx_nifti_selection {
  int64_t p;
  int64_t *index; /* [p] linear index within a volume */
  int32_t *ijk;   /* [p, 3] voxel coordinates */
  float *data;    /* [T, p] scaled time series */
} tcx_nifti_selection;

static void tcx_nifti_selection_free(tcx_nifti_selection *selection)
{
  free(selection->index);
  free(selection->ijk);
  free(selection->data);
  memset(selection, 0, sizeof(*selection));
}

/* Writes the converted file on this rank alone, atomically. */
static int tcx_nifti_write_converted(tcx_ctx *ctx, const char *out_path,
                                     const nifti_image *bold,
                                     const tcx_nifti_selection *selection,
                                     const char *bold_path,
                                     const char *mask_path)
{
  const int64_t data_dims[2] = {bold->nt, selection->p};
  const int64_t voxel_dims[2] = {selection->p, 3};
  tcx_nifti_geometry geometry;
  tcx_h5_output *out = NULL;
  int rc = TCX_OK;

  tcx_nifti_geometry_from_image(bold, &geometry);
  TCX_TRY(tcx_h5_create_serial(ctx, out_path, &out));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/data", TCX_H5_FLOAT, 2, data_dims,
                               0, selection->p, selection->data));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/voxels", TCX_H5_INT32, 2,
                                  voxel_dims, selection->ijk));
  TCX_TRY(tcx_nifti_write_geometry(ctx, out, &geometry));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "repetition_time",
                                   tcx_nifti_repetition_time(ctx, bold,
                                                             bold_path)));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "source_file", bold_path));
  TCX_TRY(tcx_h5_write_attr_string(
      ctx, out, "mask", mask_path ? mask_path : "voxels that vary over time"));
  TCX_TRY(tcx_h5_commit(ctx, &out));

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

/* Selects the voxels of bold and gathers their time series. */
static int tcx_nifti_select(tcx_ctx *ctx, const nifti_image *bold,
                            const char *bold_path, const char *mask_path,
                            tcx_nifti_selection *selection)
{
  uint8_t *selected = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, (int64_t)tcx_nifti_volume_size(bold), 1,
                     "voxel mask", &selected));
  if (mask_path)
    TCX_TRY(tcx_nifti_mask_from_file(ctx, bold, mask_path, selected));
  else
    tcx_nifti_mask_varying(bold, selected);
  TCX_TRY(tcx_nifti_list_voxels(ctx, bold, selected, &selection->index,
                                &selection->ijk, &selection->p));
  if (mask_path)
    TCX_CHECK(selection->p > 0, ctx, TCX_ERR_INPUT,
              "mask %s selects no voxel: all its values are 0 or NaN",
              mask_path);
  else
    TCX_CHECK(selection->p > 0, ctx, TCX_ERR_INPUT,
              "no voxel of %s varies over time, so there is nothing to "
              "model; pass a mask to choose voxels",
              bold_path);
  TCX_TRY(tcx_nifti_gather(ctx, bold, selection->index, selection->ijk,
                           selection->p, bold_path, &selection->data));

cleanup:
  free(selected);
  return rc;
}

/* The whole conversion, on this rank alone. */
static int tcx_nifti_convert_here(tcx_ctx *ctx, const char *bold_path,
                                  const char *mask_path, const char *out_path)
{
  tcx_nifti_selection selection = {0, NULL, NULL, NULL};
  nifti_image *bold = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_check_output_path(ctx, out_path));
  TCX_TRY(tcx_nifti_read(ctx, bold_path, "BOLD image", &bold));
  TCX_TRY(tcx_nifti_check_bold(ctx, bold, bold_path));
  TCX_TRY(tcx_nifti_select(ctx, bold, bold_path, mask_path, &selection));
  TCX_TRY(tcx_nifti_write_converted(ctx, out_path, bold, &selection,
                                    bold_path, mask_path));

cleanup:
  tcx_nifti_selection_free(&selection);
  if (bold)
    nifti_image_free(bold);
  return rc;
}

int tcx_nifti_convert(tcx_ctx *ctx, const char *bold_path,
                      const char *mask_path, const char *out_path)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_nifti_convert_here(ctx, bold_path, mask_path, out_path);
  return tcx_ctx_agree(ctx, rc);
}

/* Fails unless file has the datasets that tcx_nifti_convert() writes and
 * the export needs. */
static int tcx_nifti_check_reference(tcx_ctx *ctx, hid_t file,
                                     const char *path)
{
  static const char *const names[] = {"/grid", "/sform", "/voxel_size",
                                      "/voxels"};
  int rc = TCX_OK;

  for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
    TCX_CHECK(H5Lexists(file, names[k], H5P_DEFAULT) > 0, ctx,
              TCX_ERR_INPUT,
              "reference %s is not a file written by 'tcorex convert "
              "--nifti': it has no dataset %s. Pass the file that convert "
              "wrote from the image the model was fitted on",
              path, names[k]);

cleanup:
  return rc;
}

/* Reads the geometry of a converted file, on this rank alone. */
static int tcx_nifti_read_geometry(tcx_ctx *ctx, hid_t file, const char *path,
                                   tcx_nifti_geometry *geometry)
{
  double *grid = NULL, *sform = NULL, *voxel_size = NULL, number = 0;
  int64_t dims[3];
  int n_dims = 0;
  int rc = TCX_OK;

  memset(geometry, 0, sizeof(*geometry));
  TCX_TRY(tcx_h5_read_whole(ctx, file, H5P_DEFAULT, path, "/grid", &n_dims,
                            dims, &grid));
  TCX_CHECK(n_dims == 1 && dims[0] == 3, ctx, TCX_ERR_INPUT,
            "%s: /grid should hold 3 numbers; is this a file that tcorex "
            "converted from NIfTI?",
            path);
  TCX_TRY(tcx_h5_read_whole(ctx, file, H5P_DEFAULT, path, "/sform", &n_dims,
                            dims, &sform));
  TCX_CHECK(n_dims == 2 && dims[0] == 4 && dims[1] == 4, ctx, TCX_ERR_INPUT,
            "%s: /sform should be a 4 x 4 matrix", path);
  TCX_TRY(tcx_h5_read_whole(ctx, file, H5P_DEFAULT, path, "/voxel_size",
                            &n_dims, dims, &voxel_size));
  TCX_CHECK(n_dims == 1 && dims[0] == 3, ctx, TCX_ERR_INPUT,
            "%s: /voxel_size should hold 3 numbers", path);
  for (int d = 0; d < 3; d++) {
    geometry->grid[d] = (int)grid[d];
    geometry->voxel_size[d] = voxel_size[d];
  }
  memcpy(geometry->sform, sform, sizeof(geometry->sform));
  TCX_TRY(tcx_h5_get_attr_double(ctx, file, path, "sform_code", &number));
  geometry->sform_code = (int)number;
  TCX_TRY(tcx_h5_get_attr_double(ctx, file, path, "qform_code", &number));
  geometry->qform_code = (int)number;
  TCX_TRY(tcx_h5_get_attr_double(ctx, file, path, "xyz_units", &number));
  geometry->xyz_units = (int)number;
  TCX_TRY(tcx_h5_get_attr_double(ctx, file, path, "qfac", &geometry->qfac));
  for (int d = 0; d < 3; d++) {
    TCX_TRY(tcx_h5_get_attr_double(ctx, file, path,
                                   tcx_nifti_quatern_names[d],
                                   &geometry->quatern[d]));
    TCX_TRY(tcx_h5_get_attr_double(ctx, file, path,
                                   tcx_nifti_qoffset_names[d],
                                   &geometry->qoffset[d]));
  }

cleanup:
  free(grid);
  free(sform);
  free(voxel_size);
  return rc;
}

/* Reads the voxel coordinates of a converted file and checks them against
 * p and the grid. */
static int tcx_nifti_read_voxels(tcx_ctx *ctx, hid_t file, const char *path,
                                 const tcx_nifti_geometry *geometry,
                                 int64_t p, double **ijk)
{
  int64_t dims[3];
  int n_dims = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_read_whole(ctx, file, H5P_DEFAULT, path, "/voxels", &n_dims,
                            dims, ijk));
  TCX_CHECK(n_dims == 2 && dims[1] == 3, ctx, TCX_ERR_INPUT,
            "%s: /voxels should have shape [p x 3]", path);
  TCX_CHECK(dims[0] == p, ctx, TCX_ERR_INPUT,
            "the model has %lld variables but the reference %s has %lld "
            "voxels; use the converted file the model was fitted on",
            (long long)p, path, (long long)dims[0]);
  for (int64_t c = 0; c < 3 * p; c++)
    TCX_CHECK((*ijk)[c] >= 0 && (*ijk)[c] < geometry->grid[c % 3], ctx,
              TCX_ERR_INPUT,
              "%s: voxel %lld has coordinate %g outside the grid %d x %d x "
              "%d",
              path, (long long)(c / 3), (*ijk)[c], geometry->grid[0],
              geometry->grid[1], geometry->grid[2]);

cleanup:
  return rc;
}

/* Sets the grid, sform and qform of a new image from geometry, so that the
 * header fields equal those of the converted image. */
static void tcx_nifti_apply_geometry(nifti_image *image,
                                     const tcx_nifti_geometry *geometry)
{
  image->dx = image->pixdim[1] = (float)geometry->voxel_size[0];
  image->dy = image->pixdim[2] = (float)geometry->voxel_size[1];
  image->dz = image->pixdim[3] = (float)geometry->voxel_size[2];
  image->xyz_units = geometry->xyz_units;
  image->sform_code = geometry->sform_code;
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++)
      image->sto_xyz.m[r][c] = (float)geometry->sform[r][c];
  image->sto_ijk = nifti_mat44_inverse(image->sto_xyz);
  image->qform_code = geometry->qform_code;
  image->quatern_b = (float)geometry->quatern[0];
  image->quatern_c = (float)geometry->quatern[1];
  image->quatern_d = (float)geometry->quatern[2];
  image->qoffset_x = (float)geometry->qoffset[0];
  image->qoffset_y = (float)geometry->qoffset[1];
  image->qoffset_z = (float)geometry->qoffset[2];
  image->qfac = (float)geometry->qfac;
  if (image->qform_code > 0)
    image->qto_xyz = nifti_quatern_to_mat44(
        image->quatern_b, image->quatern_c, image->quatern_d,
        image->qoffset_x, image->qoffset_y, image->qoffset_z, image->dx,
        image->dy, image->dz, image->qfac);
  else {
    /* Without a qform, NIfTI-1 readers scale by the voxel size. */
    memset(&image->qto_xyz, 0, sizeof(image->qto_xyz));
    image->qto_xyz.m[0][0] = image->dx;
    image->qto_xyz.m[1][1] = image->dy;
    image->qto_xyz.m[2][2] = image->dz;
    image->qto_xyz.m[3][3] = 1;
  }
  image->qto_ijk = nifti_mat44_inverse(image->qto_xyz);
}

/* Returns the length of the NIfTI extension of path (".nii" or ".nii.gz"),
 * or 0 when it has neither. */
static size_t tcx_nifti_extension_length(const char *path)
{
  const size_t length = strlen(path);

  if (length > 7 && strcmp(path + length - 7, ".nii.gz") == 0)
    return 7;
  if (length > 4 && strcmp(path + length - 4, ".nii") == 0)
    return 4;
  return 0;
}

/* Makes the temporary name: ".tmp" goes before the extension, so that
 * nifticlib still picks the format (and compression) from the name. */
static int tcx_nifti_temp_path(tcx_ctx *ctx, const char *path, char **temp)
{
  const size_t extension = tcx_nifti_extension_length(path);
  const size_t stem = strlen(path) - extension;
  int rc = TCX_OK;

  TCX_CHECK(extension > 0, ctx, TCX_ERR_USAGE,
            "output image %s must end in .nii or .nii.gz", path);
  TCX_TRY(tcx_calloc(ctx, (int64_t)strlen(path) + 5, 1, "output path", temp));
  memcpy(*temp, path, stem);
  memcpy(*temp + stem, ".tmp", 4);
  memcpy(*temp + stem + 4, path + stem, extension);

cleanup:
  return rc;
}

/* Writes image to temp as a single-file NIfTI-1 image (gzip-compressed
 * when temp ends in .gz): the header, an empty extension block and the
 * voxel data. nifti_image_write() does the same, but it reports no failure
 * to its caller and prints its own errors to stderr. path is the final
 * name, for messages. */
static int tcx_nifti_write_file(tcx_ctx *ctx, nifti_image *image,
                                const char *temp, const char *path)
{
  const size_t bytes = nifti_get_volsize(image);
  const char extension_block[4] = {0, 0, 0, 0};
  struct nifti_1_header header;
  znzFile file = NULL;
  int written, error = 0;
  int rc = TCX_OK;

  TCX_CHECK(nifti_set_filenames(image, temp, 0, 1) == 0 &&
                image->nifti_type == NIFTI_FTYPE_NIFTI1_1,
            ctx, TCX_ERR_OUTPUT, "nifticlib rejected the output name %s",
            temp);
  nifti_set_iname_offset(image); /* 352: header and extension block */
  header = nifti_convert_nim2nhdr(image);
  errno = 0;
  file = znzopen(temp, "wb", nifti_is_gzfile(temp));
  TCX_CHECK(!znz_isnull(file), ctx, TCX_ERR_OUTPUT,
            "cannot create %s: %s (errno %d); check the free space and "
            "quota of its folder",
            temp, strerror(errno), errno);
  written = znzwrite(&header, 1, sizeof(header), file) == sizeof(header) &&
            znzwrite(extension_block, 1, 4, file) == 4 &&
            znzseek(file, image->iname_offset, SEEK_SET) >= 0 &&
            znzwrite(image->data, 1, bytes, file) == bytes;
  error = written ? 0 : errno;
  /* Buffered bytes reach the disk in the close, which can fail too. */
  if (znzclose(file) != 0 && written) {
    written = 0;
    error = errno;
  }
  TCX_CHECK(written, ctx, TCX_ERR_OUTPUT,
            "writing %s failed: %s (errno %d) while writing %s; free space "
            "or quota in its folder, or choose another output path",
            path, strerror(error), error, temp);

cleanup:
  return rc;
}

/* Writes image to out_path through a temporary name, then renames it. */
static int tcx_nifti_write_atomic(tcx_ctx *ctx, nifti_image *image,
                                  const char *out_path)
{
  char *temp = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_nifti_temp_path(ctx, out_path, &temp));
  TCX_TRY(tcx_nifti_write_file(ctx, image, temp, out_path));
  TCX_TRY(tcx_h5_publish(ctx, temp, out_path));

cleanup:
  if (rc != TCX_OK && temp)
    (void)unlink(temp);
  free(temp);
  return rc;
}

/* Builds a 3-D image of datatype on the reference grid and fills it from
 * values (int32 labels or double values) at the reference voxels. */
static int tcx_nifti_build_image(tcx_ctx *ctx,
                                 const tcx_nifti_geometry *geometry,
                                 const double *ijk, int64_t p, int datatype,
                                 const void *values, nifti_image **image)
{
  const int dims[8] = {3, geometry->grid[0], geometry->grid[1],
                       geometry->grid[2], 1, 1, 1, 1};
  int rc = TCX_OK;

  *image = nifti_make_new_nim(dims, datatype, 1);
  TCX_CHECK(*image != NULL, ctx, TCX_ERR_MEMORY,
            "nifticlib cannot allocate a %d x %d x %d image", dims[1],
            dims[2], dims[3]);
  tcx_nifti_apply_geometry(*image, geometry);
  for (int64_t c = 0; c < p; c++) {
    const size_t v = (size_t)ijk[3 * c] +
                     (size_t)dims[1] * ((size_t)ijk[3 * c + 1] +
                                        (size_t)dims[2] * (size_t)ijk[3 * c + 2]);

    if (datatype == DT_INT32)
      ((int32_t *)(*image)->data)[v] = ((const int32_t *)values)[c];
    else
      ((float *)(*image)->data)[v] = (float)((const double *)values)[c];
  }

cleanup:
  return rc;
}

/* Sets the intent, description and display range of an exported image. */
static void tcx_nifti_describe(nifti_image *image, const void *values,
                               int64_t p)
{
  double low = 0, high = 0;

  for (int64_t c = 0; c < p; c++) {
    const double value = image->datatype == DT_INT32
                             ? ((const int32_t *)values)[c]
                             : ((const double *)values)[c];

    if (isfinite(value)) {
      low = fmin(low, value);
      high = fmax(high, value);
    }
  }
  image->cal_min = (float)low;
  image->cal_max = (float)high;
  if (image->datatype == DT_INT32) {
    image->intent_code = NIFTI_INTENT_LABEL;
    snprintf(image->descrip, sizeof(image->descrip),
             "tcorex labels, 0 outside the mask");
  } else {
    snprintf(image->descrip, sizeof(image->descrip),
             "tcorex per-voxel values, 0 outside the mask");
  }
}

/* The whole export, on this rank alone. */
static int tcx_nifti_export_here(tcx_ctx *ctx, const char *reference_h5,
                                 int datatype, const void *values, int64_t p,
                                 const char *out_path)
{
  tcx_nifti_geometry geometry;
  nifti_image *image = NULL;
  double *ijk = NULL;
  hid_t file = -1;
  int rc = TCX_OK;

  nifti_set_debug_level(0);
  TCX_CHECK(tcx_nifti_extension_length(out_path) > 0, ctx, TCX_ERR_USAGE,
            "output image %s must end in .nii or .nii.gz", out_path);
  TCX_TRY(tcx_h5_check_output_path(ctx, out_path));
  TCX_TRY(tcx_h5_check_file(ctx, reference_h5, "reference file",
                            "pass the file that 'tcorex convert --nifti' "
                            "wrote"));
  TCX_TRY(tcx_h5_open(ctx, reference_h5, 1, &file));
  TCX_TRY(tcx_nifti_check_reference(ctx, file, reference_h5));
  TCX_TRY(tcx_nifti_read_geometry(ctx, file, reference_h5, &geometry));
  TCX_TRY(tcx_nifti_read_voxels(ctx, file, reference_h5, &geometry, p, &ijk));
  TCX_TRY(tcx_nifti_build_image(ctx, &geometry, ijk, p, datatype, values,
                                &image));
  tcx_nifti_describe(image, values, p);
  TCX_TRY(tcx_nifti_write_atomic(ctx, image, out_path));

cleanup:
  if (image)
    nifti_image_free(image);
  free(ijk);
  return tcx_h5_close(ctx, rc, file, reference_h5);
}

int tcx_nifti_export_labels(tcx_ctx *ctx, const char *reference_h5,
                            const int32_t *labels, int64_t p,
                            const char *out_path)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_nifti_export_here(ctx, reference_h5, DT_INT32, labels, p,
                               out_path);
  return tcx_ctx_agree(ctx, rc);
}

int tcx_nifti_export_values(tcx_ctx *ctx, const char *reference_h5,
                            const double *values, int64_t p,
                            const char *out_path)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_nifti_export_here(ctx, reference_h5, DT_FLOAT32, values, p,
                               out_path);
  return tcx_ctx_agree(ctx, rc);
}
