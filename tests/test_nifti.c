/* NIfTI conversion and export. Expected values come from nifticlib's own
 * reading of the input images and from synthetic images built here with
 * known values and geometry; HDF5 output is read with plain HDF5 calls. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <nifti1_io.h>

#include "tcorex/nifti.h"
#include "tcx_test.h"

/* The synthetic BOLD image: NX x NY x NZ voxels, NT volumes. */
enum { NX = 5, NY = 4, NZ = 3, NT = 6, NVOX = NX * NY * NZ };

static int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Raw int16 value of voxel v in volume t: voxels with v % 3 == 0 are
 * constant over time, the others vary. */
static int16_t synthetic_raw(int v, int t)
{
  return (int16_t)((v * 7 + t * (v % 3)) % 1000 - 500);
}

/* Scaled value of voxel v in volume t (slope 0.5, intercept 10). */
static float synthetic_value(int v, int t)
{
  return (float)(synthetic_raw(v, t) * 0.5 + 10.0);
}

/* Fills the geometry fields of image: voxel size 2 x 3 x 4 mm, a qform
 * from the unit quaternion (0.5, 0.5, 0.5) with qfac -1, and an sform with
 * a shear that no qform can express. */
static void set_synthetic_geometry(nifti_image *image)
{
  const float sform[3][4] = {{-2, 0.5f, 0, 90.25f},
                             {0, 3, 0.25f, -126},
                             {0, 0, 4, -72.5f}};

  image->dx = image->pixdim[1] = 2;
  image->dy = image->pixdim[2] = 3;
  image->dz = image->pixdim[3] = 4;
  image->xyz_units = NIFTI_UNITS_MM;
  image->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  image->quatern_b = image->quatern_c = image->quatern_d = 0.5f;
  image->qoffset_x = -10.5f;
  image->qoffset_y = 20.25f;
  image->qoffset_z = 3;
  image->qfac = -1;
  image->sform_code = NIFTI_XFORM_MNI_152;
  memset(&image->sto_xyz, 0, sizeof(image->sto_xyz));
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 4; c++)
      image->sto_xyz.m[r][c] = sform[r][c];
  image->sto_xyz.m[3][3] = 1;
}

/* Writes the synthetic 4-D int16 image to path with nifticlib. */
static void write_synthetic_bold(const char *path)
{
  const int dims[8] = {4, NX, NY, NZ, NT, 1, 1, 1};
  nifti_image *image = nifti_make_new_nim(dims, DT_INT16, 1);
  int16_t *data;

  assert_non_null(image);
  data = image->data;
  for (int t = 0; t < NT; t++)
    for (int v = 0; v < NVOX; v++)
      data[t * NVOX + v] = synthetic_raw(v, t);
  image->scl_slope = 0.5f;
  image->scl_inter = 10;
  image->dt = image->pixdim[4] = 1500;
  image->time_units = NIFTI_UNITS_MSEC;
  set_synthetic_geometry(image);
  assert_int_equal(nifti_set_filenames(image, path, 0, 1), 0);
  nifti_image_write(image);
  nifti_image_free(image);
  assert_true(file_exists(path));
}

/* Writes a 3-D uint8 mask (or another grid when nz differs) to path. */
static void write_mask(const char *path, int nz, const uint8_t *inside)
{
  const int dims[8] = {3, NX, NY, nz, 1, 1, 1, 1};
  nifti_image *image = nifti_make_new_nim(dims, DT_UINT8, 1);

  assert_non_null(image);
  memcpy(image->data, inside, (size_t)(NX * NY * nz));
  set_synthetic_geometry(image);
  assert_int_equal(nifti_set_filenames(image, path, 0, 1), 0);
  nifti_image_write(image);
  nifti_image_free(image);
}

/* Reads a whole numeric dataset as double and checks its shape. */
static double *read_h5(const char *path, const char *name, int n_dims,
                       const hsize_t *dims)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t space = H5Dget_space(set);
  hsize_t found[3] = {0, 0, 0};
  hsize_t count = 1;
  double *values;

  assert_true(set >= 0);
  assert_int_equal(H5Sget_simple_extent_ndims(space), n_dims);
  H5Sget_simple_extent_dims(space, found, NULL);
  for (int d = 0; d < n_dims; d++) {
    assert_int_equal(found[d], dims[d]);
    count *= dims[d];
  }
  values = calloc(count, sizeof(double));
  assert_non_null(values);
  assert_true(H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      values) >= 0);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
  return values;
}

/* Reads a numeric root attribute as double. */
static double read_attr(const char *path, const char *name)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  double value = NAN;

  assert_true(attr >= 0);
  assert_true(H5Aread(attr, H5T_NATIVE_DOUBLE, &value) >= 0);
  H5Aclose(attr);
  H5Fclose(file);
  return value;
}

/* Returns the storage type of /data. */
static H5T_class_t data_class_and_size(const char *path, size_t *size)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, "/data", H5P_DEFAULT);
  hid_t type = H5Dget_type(set);
  const H5T_class_t type_class = H5Tget_class(type);

  *size = H5Tget_size(type);
  H5Tclose(type);
  H5Dclose(set);
  H5Fclose(file);
  return type_class;
}

/* Checks that a converted file contains the voxels listed in index (linear
 * indices in NIfTI order) of the image at bold_path, with the values that
 * nifticlib reads there, scaled by the header's slope and intercept. */
static void check_converted(const char *out, const char *bold_path,
                            const int *index, int p)
{
  nifti_image *bold = nifti_image_read(bold_path, 1);
  const int volume = bold->nx * bold->ny * bold->nz;
  const hsize_t data_dims[2] = {(hsize_t)bold->nt, (hsize_t)p};
  const hsize_t voxel_dims[2] = {(hsize_t)p, 3};
  double *data = read_h5(out, "/data", 2, data_dims);
  double *voxels = read_h5(out, "/voxels", 2, voxel_dims);
  size_t size = 0;

  assert_int_equal(data_class_and_size(out, &size), H5T_FLOAT);
  assert_int_equal(size, 4);
  for (int c = 0; c < p; c++) {
    assert_true(voxels[3 * c] == index[c] % bold->nx);
    assert_true(voxels[3 * c + 1] == index[c] / bold->nx % bold->ny);
    assert_true(voxels[3 * c + 2] == index[c] / (bold->nx * bold->ny));
    for (int t = 0; t < bold->nt; t++) {
      const int16_t raw = ((const int16_t *)bold->data)[t * volume + index[c]];
      const float expected =
          (float)(raw * (double)bold->scl_slope + bold->scl_inter);

      assert_true(data[(size_t)t * p + c] == expected);
    }
  }
  free(data);
  free(voxels);
  nifti_image_free(bold);
}

/* Checks /affine, /sform, /qform and /grid against nifticlib's reading of
 * the input. */
static void check_geometry(const char *out, const char *bold_path)
{
  nifti_image *bold = nifti_image_read(bold_path, 0);
  const hsize_t matrix[2] = {4, 4}, triple[1] = {3};
  double *affine = read_h5(out, "/affine", 2, matrix);
  double *sform = read_h5(out, "/sform", 2, matrix);
  double *qform = read_h5(out, "/qform", 2, matrix);
  double *grid = read_h5(out, "/grid", 1, triple);
  const mat44 *chosen = bold->sform_code > 0 ? &bold->sto_xyz : &bold->qto_xyz;

  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      assert_true(affine[4 * r + c] == chosen->m[r][c]);
      assert_true(sform[4 * r + c] == bold->sto_xyz.m[r][c]);
      assert_true(qform[4 * r + c] == bold->qto_xyz.m[r][c]);
    }
  assert_true(grid[0] == bold->nx);
  assert_true(grid[1] == bold->ny);
  assert_true(grid[2] == bold->nz);
  assert_true(read_attr(out, "sform_code") == bold->sform_code);
  assert_true(read_attr(out, "qform_code") == bold->qform_code);
  free(affine);
  free(sform);
  free(qform);
  free(grid);
  nifti_image_free(bold);
}

/* The real fMRI example: the varying voxels are found here from the raw
 * int16 values read by nifticlib. */
static void nifti_convert_real_dataset(void **state)
{
  const char *bold_path = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  nifti_image *bold = nifti_image_read(bold_path, 1);
  const int volume = 17 * 21 * 3;
  int *index = calloc(volume, sizeof(int));
  char out[256], temp[300];
  int p = 0;

  (void)state;
  assert_non_null(bold);
  assert_non_null(index);
  assert_int_equal(bold->datatype, DT_INT16);
  for (int v = 0; v < volume; v++) {
    const int16_t *raw = bold->data;
    int varies = 0;

    for (int t = 1; t < bold->nt; t++)
      varies |= raw[t * volume + v] != raw[v];
    if (varies)
      index[p++] = v;
  }
  nifti_image_free(bold);
  assert_int_equal(p, 1071);

  tcx_test_temp_path(".h5", out, sizeof(out));
  snprintf(temp, sizeof(temp), "%s.tmp", out);
  assert_int_equal(tcx_nifti_convert(tcx_test_ctx(), bold_path, NULL, out),
                   TCX_OK);
  assert_false(file_exists(temp));
  {
    const hsize_t triple[1] = {3};
    double *grid = read_h5(out, "/grid", 1, triple);

    assert_true(grid[0] == 17);
    assert_true(grid[1] == 21);
    assert_true(grid[2] == 3);
    free(grid);
  }
  assert_true(read_attr(out, "repetition_time") == 2.0);
  check_converted(out, bold_path, index, p);
  check_geometry(out, bold_path);
  free(index);
  unlink(out);
}

/* Linear indices of the synthetic voxels that vary: v % 3 != 0. */
static int synthetic_varying(int *index)
{
  int p = 0;

  for (int v = 0; v < NVOX; v++)
    if (v % 3 != 0)
      index[p++] = v;
  return p;
}

static void nifti_convert_synthetic_exact(void **state)
{
  int index[NVOX];
  const int p = synthetic_varying(index);
  char bold[256], out[256];

  (void)state;
  tcx_test_temp_path(".nii.gz", bold, sizeof(bold));
  tcx_test_temp_path(".h5", out, sizeof(out));
  write_synthetic_bold(bold);
  assert_int_equal(tcx_nifti_convert(tcx_test_ctx(), bold, NULL, out),
                   TCX_OK);
  check_converted(out, bold, index, p);
  check_geometry(out, bold);
  assert_true(read_attr(out, "repetition_time") == 1.5);
  {
    const hsize_t dims[2] = {NT, (hsize_t)p};
    double *data = read_h5(out, "/data", 2, dims);

    /* The same values from the formula, independent of nifticlib. */
    for (int c = 0; c < p; c++)
      for (int t = 0; t < NT; t++)
        assert_true(data[t * p + c] == synthetic_value(index[c], t));
    free(data);
  }
  unlink(bold);
  unlink(out);
}

static void nifti_convert_with_mask(void **state)
{
  const int chosen[4] = {0, 7, 21, 59}; /* 0 and 21 are constant voxels */
  uint8_t inside[NVOX] = {0};
  char bold[256], mask[256], out[256];

  (void)state;
  for (int k = 0; k < 4; k++)
    inside[chosen[k]] = (uint8_t)(k + 1);
  tcx_test_temp_path(".nii", bold, sizeof(bold));
  tcx_test_temp_path("_mask.nii", mask, sizeof(mask));
  tcx_test_temp_path(".h5", out, sizeof(out));
  write_synthetic_bold(bold);
  write_mask(mask, NZ, inside);
  assert_int_equal(tcx_nifti_convert(tcx_test_ctx(), bold, mask, out),
                   TCX_OK);
  check_converted(out, bold, chosen, 4);
  unlink(bold);
  unlink(mask);
  unlink(out);
}

/* Converts expecting failure and checks the message and the output. */
static void expect_convert_error(const char *bold, const char *mask,
                                 const char *fragment)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char out[256], temp[300];
  int rc;

  tcx_test_temp_path(".h5", out, sizeof(out));
  snprintf(temp, sizeof(temp), "%s.tmp", out);
  rc = tcx_nifti_convert(ctx, bold, mask, out);
  if (!strstr(tcx_ctx_message(ctx), fragment))
    fprintf(stderr, "message: %s\nexpected: %s\n", tcx_ctx_message(ctx),
            fragment);
  assert_int_equal(rc, TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), fragment));
  assert_false(file_exists(out));
  assert_false(file_exists(temp));
}

static void nifti_convert_rejects_bad_inputs(void **state)
{
  uint8_t inside[NVOX] = {0};
  char bold[256], mask[256], small[256], empty[256], text[256];
  FILE *file;

  (void)state;
  inside[3] = 1;
  tcx_test_temp_path(".nii", bold, sizeof(bold));
  tcx_test_temp_path("_mask.nii", mask, sizeof(mask));
  tcx_test_temp_path("_small.nii", small, sizeof(small));
  tcx_test_temp_path("_empty.nii", empty, sizeof(empty));
  tcx_test_temp_path(".nii", text, sizeof(text));
  write_synthetic_bold(bold);
  write_mask(mask, NZ, inside);
  write_mask(small, NZ - 1, inside);
  memset(inside, 0, sizeof(inside));
  write_mask(empty, NZ, inside);
  file = fopen(text, "w");
  assert_non_null(file);
  fputs("this is not an image\n", file);
  fclose(file);

  expect_convert_error("/nonexistent/bold.nii", NULL,
                       "BOLD image /nonexistent/bold.nii not found");
  expect_convert_error(text, NULL, "is not a NIfTI-1 file");
  expect_convert_error(mask, NULL, "expected a 4-D time series");
  expect_convert_error(bold, small,
                       "has grid 5 x 4 x 2 but the BOLD image has 5 x 4 x 3");
  expect_convert_error(bold, empty, "selects no voxel");
  unlink(bold);
  unlink(mask);
  unlink(small);
  unlink(empty);
  unlink(text);
}

/* Reads back an exported image with nifticlib and checks that its grid,
 * codes and both transforms equal those of the original BOLD image. */
static nifti_image *read_exported(const char *path, const char *bold_path,
                                  int datatype)
{
  nifti_image *image = nifti_image_read(path, 1);
  nifti_image *bold = nifti_image_read(bold_path, 0);

  assert_non_null(image);
  assert_int_equal(image->dim[0], 3);
  assert_int_equal(image->nx, bold->nx);
  assert_int_equal(image->ny, bold->ny);
  assert_int_equal(image->nz, bold->nz);
  assert_int_equal(image->datatype, datatype);
  assert_int_equal(image->sform_code, bold->sform_code);
  assert_int_equal(image->qform_code, bold->qform_code);
  assert_true(image->dx == bold->dx);
  assert_true(image->dy == bold->dy);
  assert_true(image->dz == bold->dz);
  assert_memory_equal(&image->sto_xyz, &bold->sto_xyz, sizeof(mat44));
  assert_memory_equal(&image->qto_xyz, &bold->qto_xyz, sizeof(mat44));
  nifti_image_free(bold);
  return image;
}

static void nifti_export_labels_round_trip(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  int index[NVOX];
  const int p = synthetic_varying(index);
  int32_t labels[NVOX];
  char bold[256], converted[256], out[256], temp[300];
  nifti_image *image;

  (void)state;
  for (int c = 0; c < p; c++)
    labels[c] = c % 4 + 1;
  tcx_test_temp_path(".nii", bold, sizeof(bold));
  tcx_test_temp_path(".h5", converted, sizeof(converted));
  tcx_test_temp_path("_labels.nii.gz", out, sizeof(out));
  snprintf(temp, sizeof(temp), "%.*s.tmp.nii.gz",
           (int)(strlen(out) - strlen(".nii.gz")), out);
  write_synthetic_bold(bold);
  assert_int_equal(tcx_nifti_convert(ctx, bold, NULL, converted), TCX_OK);
  assert_int_equal(tcx_nifti_export_labels(ctx, converted, labels, p, out),
                   TCX_OK);
  assert_false(file_exists(temp));
  image = read_exported(out, bold, DT_INT32);
  assert_int_equal(image->intent_code, NIFTI_INTENT_LABEL);
  {
    const int32_t *data = image->data;
    int c = 0;

    for (int v = 0; v < NVOX; v++) {
      const int selected = c < p && index[c] == v;

      assert_int_equal(data[v], selected ? labels[c] : 0);
      c += selected;
    }
  }
  nifti_image_free(image);
  unlink(bold);
  unlink(converted);
  unlink(out);
}

static void nifti_export_values_round_trip(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  int index[NVOX];
  const int p = synthetic_varying(index);
  double values[NVOX];
  char bold[256], converted[256], out[256];
  nifti_image *image;

  (void)state;
  for (int c = 0; c < p; c++)
    values[c] = 0.25 * c - 3;
  tcx_test_temp_path(".nii.gz", bold, sizeof(bold));
  tcx_test_temp_path(".h5", converted, sizeof(converted));
  tcx_test_temp_path("_values.nii", out, sizeof(out));
  write_synthetic_bold(bold);
  assert_int_equal(tcx_nifti_convert(ctx, bold, NULL, converted), TCX_OK);
  assert_int_equal(tcx_nifti_export_values(ctx, converted, values, p, out),
                   TCX_OK);
  image = read_exported(out, bold, DT_FLOAT32);
  {
    const float *data = image->data;
    int c = 0;

    for (int v = 0; v < NVOX; v++) {
      const int selected = c < p && index[c] == v;

      assert_true(data[v] == (selected ? (float)values[c] : 0.0f));
      c += selected;
    }
  }
  nifti_image_free(image);
  unlink(bold);
  unlink(converted);
  unlink(out);
}

/* The real example's qform (quaternion 0, 1, 0 with qfac -1) survives the
 * round trip too. */
static void nifti_export_real_geometry(void **state)
{
  const char *bold_path = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  tcx_ctx *ctx = tcx_test_ctx();
  int32_t *labels = calloc(1071, sizeof(int32_t));
  char converted[256], out[256];
  nifti_image *image;
  int64_t inside = 0;

  (void)state;
  assert_non_null(labels);
  for (int c = 0; c < 1071; c++)
    labels[c] = c % 7 + 1;
  tcx_test_temp_path(".h5", converted, sizeof(converted));
  tcx_test_temp_path("_labels.nii", out, sizeof(out));
  assert_int_equal(tcx_nifti_convert(ctx, bold_path, NULL, converted),
                   TCX_OK);
  assert_int_equal(tcx_nifti_export_labels(ctx, converted, labels, 1071, out),
                   TCX_OK);
  image = read_exported(out, bold_path, DT_INT32);
  for (size_t v = 0; v < image->nvox; v++)
    inside += ((const int32_t *)image->data)[v] != 0;
  assert_int_equal(inside, 1071);
  nifti_image_free(image);
  free(labels);
  unlink(converted);
  unlink(out);
}

static void nifti_export_rejects_bad_requests(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  int32_t labels[NVOX] = {0};
  char bold[256], converted[256], out[256];

  (void)state;
  tcx_test_temp_path(".nii", bold, sizeof(bold));
  tcx_test_temp_path(".h5", converted, sizeof(converted));
  tcx_test_temp_path(".nii", out, sizeof(out));
  write_synthetic_bold(bold);
  assert_int_equal(tcx_nifti_convert(ctx, bold, NULL, converted), TCX_OK);
  assert_int_equal(tcx_nifti_export_labels(ctx, converted, labels, 3, out),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "the model has 3 variables "
                                                "but the reference "));
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         " has 40 voxels; use the converted file the model "
                         "was fitted on"));
  assert_false(file_exists(out));
  assert_int_equal(tcx_nifti_export_labels(ctx,
                                           TCX_TEST_DATA_DIR
                                           "/corex_chunks_p128.h5",
                                           labels, 40, out),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "corex_chunks_p128.h5 is not a file written by "
                         "'tcorex convert --nifti': it has no dataset "
                         "/grid"));
  assert_null(strstr(tcx_ctx_message(ctx), "--dataset"));
  assert_false(file_exists(out));
  assert_int_equal(tcx_nifti_export_labels(ctx, converted, labels, 40,
                                           "/tmp/labels.img"),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "must end in .nii or .nii.gz"));
  assert_int_equal(tcx_nifti_export_labels(ctx, "/nonexistent/ref.h5", labels,
                                           40, out),
                   TCX_ERR_INPUT);
  assert_string_equal(tcx_ctx_message(ctx),
                      "reference file /nonexistent/ref.h5 not found; check "
                      "the path");
  unlink(bold);
  unlink(converted);
}

/* Whether voxel v of the float32 image is missing (NaN) in volume t.
 * Voxel 41 is seen twice with different values, voxel 43 once and voxel
 * 44 never. */
static int float_missing(int v, int t)
{
  if (v == 41)
    return t != 2 && t != 4;
  if (v == 43)
    return t != 2;
  if (v == 44)
    return 1;
  return v % 7 == 1 && t % 2 == 0;
}

/* Value of voxel v in volume t of the float32 image; voxels with v % 3 ==
 * 0 are constant over time. */
static float float_value(int v, int t)
{
  if (float_missing(v, t))
    return NAN;
  return (float)(0.5 * v - 3 + 0.125 * t * (v % 3));
}

/* Fills data [NT, NVOX] with float_value(). */
static void fill_float_data(float *data)
{
  for (int t = 0; t < NT; t++)
    for (int v = 0; v < NVOX; v++)
      data[t * NVOX + v] = float_value(v, t);
}

/* Writes a 4-D float32 image holding data [NT, NVOX] with nifticlib. */
static void write_float_bold(const char *path, const float *data)
{
  const int dims[8] = {4, NX, NY, NZ, NT, 1, 1, 1};
  nifti_image *image = nifti_make_new_nim(dims, DT_FLOAT32, 1);

  assert_non_null(image);
  memcpy(image->data, data, sizeof(float) * NT * NVOX);
  set_synthetic_geometry(image);
  assert_int_equal(nifti_set_filenames(image, path, 0, 1), 0);
  nifti_image_write(image);
  nifti_image_free(image);
  assert_true(file_exists(path));
}

/* Stores the size bytes of value at buffer + offset, most significant
 * byte first. */
static void put_big_endian(unsigned char *buffer, size_t offset,
                           const void *value, size_t size)
{
  const uint16_t probe = 1;
  const int little = *(const unsigned char *)&probe == 1;
  const unsigned char *bytes = value;

  for (size_t k = 0; k < size; k++)
    buffer[offset + k] = little ? bytes[size - 1 - k] : bytes[k];
}

/* Writes data [NT, NVOX] as a big-endian float32 NIfTI-1 file. The header
 * is built here at the offsets of the NIfTI-1 standard, so that nifticlib
 * has to swap every field and every voxel when it reads the file. */
static void write_big_endian_bold(const char *path, const float *data)
{
  unsigned char header[352] = {0};
  const int32_t header_size = 348;
  const int16_t dims[8] = {4, NX, NY, NZ, NT, 1, 1, 1};
  const int16_t datatype = DT_FLOAT32, bits = 32;
  const float pixdim[8] = {1, 1, 1, 1, 1, 0, 0, 0}, offset = 352;
  FILE *file = fopen(path, "wb");

  assert_non_null(file);
  put_big_endian(header, 0, &header_size, 4);
  for (int d = 0; d < 8; d++) {
    put_big_endian(header, 40 + 2 * (size_t)d, &dims[d], 2);
    put_big_endian(header, 76 + 4 * (size_t)d, &pixdim[d], 4);
  }
  put_big_endian(header, 70, &datatype, 2);
  put_big_endian(header, 72, &bits, 2);
  put_big_endian(header, 108, &offset, 4);
  memcpy(header + 344, "n+1", 4);
  assert_int_equal(fwrite(header, 1, sizeof(header), file), sizeof(header));
  for (int k = 0; k < NT * NVOX; k++) {
    unsigned char bytes[4];

    put_big_endian(bytes, 0, &data[k], 4);
    assert_int_equal(fwrite(bytes, 1, 4, file), 4);
  }
  assert_int_equal(fclose(file), 0);
}

/* Lists in index the voxels of data [NT, NVOX] that take at least two
 * distinct values, NaN aside, or an infinite one; returns their count. */
static int varying_or_infinite(const float *data, int *index)
{
  int p = 0;

  for (int v = 0; v < NVOX; v++) {
    int selected = 0;

    for (int t = 0; t < NT; t++)
      for (int u = 0; u < NT; u++)
        selected |= isinf(data[t * NVOX + v]) ||
                    (!isnan(data[t * NVOX + v]) &&
                     !isnan(data[u * NVOX + v]) &&
                     data[t * NVOX + v] != data[u * NVOX + v]);
    if (selected)
      index[p++] = v;
  }
  return p;
}

/* Converts bold and checks that /data contains data at the selected
 * voxels, NaN where data is NaN. */
static void check_float_conversion(const char *bold, const float *data)
{
  int index[NVOX];
  const int p = varying_or_infinite(data, index);
  const hsize_t dims[2] = {NT, (hsize_t)p};
  char out[256];
  double *converted;

  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_nifti_convert(tcx_test_ctx(), bold, NULL, out),
                   TCX_OK);
  converted = read_h5(out, "/data", 2, dims);
  for (int c = 0; c < p; c++)
    for (int t = 0; t < NT; t++) {
      const float expected = data[t * NVOX + index[c]];

      if (isnan(expected))
        assert_true(isnan(converted[t * p + c]));
      else
        assert_true(converted[t * p + c] == expected);
    }
  free(converted);
  unlink(out);
}

/* NaN in a float32 image is a missing value: it reaches /data as NaN and
 * does not keep a voxel out of the default mask. nifticlib's own reading
 * would turn it into 0. */
static void nifti_float_nan_is_missing(void **state)
{
  float data[NT * NVOX];
  int index[NVOX];
  char native[256], swapped[256];
  int p;

  (void)state;
  fill_float_data(data);
  p = varying_or_infinite(data, index);
  /* Of the 40 voxels with v % 3 != 0, 43 (one value seen) and 44 (none)
   * are out; 41 (two values seen) and 1, 8, 22, ... (NaN in even volumes)
   * are in. */
  assert_int_equal(p, 38);
  tcx_test_temp_path("_float.nii.gz", native, sizeof(native));
  tcx_test_temp_path("_big_endian.nii", swapped, sizeof(swapped));
  write_float_bold(native, data);
  write_big_endian_bold(swapped, data);
  check_float_conversion(native, data);
  check_float_conversion(swapped, data);
  unlink(native);
  unlink(swapped);
}

/* An infinite value is an error that names the voxel and the volume, also
 * in a voxel that is otherwise constant. */
static void nifti_float_infinity_is_error(void **state)
{
  float data[NT * NVOX];
  char bold[256];

  (void)state;
  tcx_test_temp_path("_inf.nii", bold, sizeof(bold));
  fill_float_data(data);
  data[3 * NVOX + 7] = INFINITY; /* voxel 7 = (2, 1, 0), varying */
  write_float_bold(bold, data);
  expect_convert_error(bold, NULL,
                       "voxel (i, j, k) = (2, 1, 0) has value inf in volume "
                       "3 (0-based)");
  fill_float_data(data);
  data[0 * NVOX + 33] = -INFINITY; /* voxel 33 = (3, 2, 1), constant */
  write_float_bold(bold, data);
  expect_convert_error(bold, NULL,
                       "voxel (i, j, k) = (3, 2, 1) has value -inf in volume "
                       "0 (0-based)");
  write_big_endian_bold(bold, data);
  expect_convert_error(bold, NULL,
                       "voxel (i, j, k) = (3, 2, 1) has value -inf in volume "
                       "0 (0-based)");
  unlink(bold);
}

/* The folder of a small tmpfs, "" when mounting was not permitted. */
static char small_disk[256];

static int mount_small_disk(void **state)
{
  *state = tcx_test_mount_small_disk(256, small_disk, sizeof(small_disk))
               ? small_disk
               : NULL;
  return 0;
}

static int unmount_small_disk(void **state)
{
  (void)state;
  tcx_test_unmount_small_disk(small_disk);
  return 0;
}

/* Runs an export of labels to out with stderr sent to a file; returns the
 * status and stores in *printed how many bytes reached stderr. */
static int export_capturing_stderr(const char *converted,
                                   const int32_t *labels, int64_t p,
                                   const char *out, long *printed)
{
  char capture[256];
  int saved, descriptor, rc;
  struct stat info;

  tcx_test_temp_path(".stderr", capture, sizeof(capture));
  fflush(stderr);
  saved = dup(STDERR_FILENO);
  descriptor = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(saved >= 0 && descriptor >= 0);
  assert_true(dup2(descriptor, STDERR_FILENO) >= 0);
  rc = tcx_nifti_export_labels(tcx_test_ctx(), converted, labels, p, out);
  fflush(stderr);
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  close(descriptor);
  assert_int_equal(stat(capture, &info), 0);
  *printed = (long)info.st_size;
  unlink(capture);
  return rc;
}

/* Conversion and export to a full disk fail with an output error that
 * names the file and the system error, print nothing and keep the old
 * files. The real example's label image (4284 bytes of data) is larger
 * than the C library's write buffer, so the data write itself fails. */
static void nifti_full_disk_keeps_old_files(void **state)
{
  const char *bold = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  tcx_ctx *ctx = tcx_test_ctx();
  int32_t *labels = calloc(1071, sizeof(int32_t));
  char converted[320], image[320], temp[330];
  nifti_image *old;
  long printed = -1;
  int rc;

  if (!*state)
    skip();
  assert_non_null(labels);
  snprintf(converted, sizeof(converted), "%s/converted.h5",
           (const char *)*state);
  snprintf(image, sizeof(image), "%s/labels.nii", (const char *)*state);
  snprintf(temp, sizeof(temp), "%s/labels.tmp.nii", (const char *)*state);
  for (int c = 0; c < 1071; c++)
    labels[c] = c % 5 + 1;
  assert_int_equal(tcx_nifti_convert(ctx, bold, NULL, converted), TCX_OK);
  assert_int_equal(export_capturing_stderr(converted, labels, 1071, image,
                                           &printed),
                   TCX_OK);
  assert_int_equal(printed, 0);
  assert_true(tcx_test_fill_disk(*state));

  for (int c = 0; c < 1071; c++)
    labels[c] = 7;
  rc = export_capturing_stderr(converted, labels, 1071, image, &printed);
  if (!strstr(tcx_ctx_message(ctx), "No space left on device (errno 28)"))
    fprintf(stderr, "message: %s\n", tcx_ctx_message(ctx));
  assert_int_equal(rc, TCX_ERR_OUTPUT);
  assert_int_equal(printed, 0);
  assert_non_null(strstr(tcx_ctx_message(ctx), image));
  assert_non_null(
      strstr(tcx_ctx_message(ctx), "No space left on device (errno 28)"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "free space"));
  assert_false(file_exists(temp));
  old = nifti_image_read(image, 1);
  assert_non_null(old);
  for (int v = 0, c = 0; v < (int)old->nvox; v++)
    if (((const int32_t *)old->data)[v] != 0)
      assert_int_equal(((const int32_t *)old->data)[v], c++ % 5 + 1);
  nifti_image_free(old);

  rc = tcx_nifti_convert(ctx, bold, NULL, converted);
  if (!strstr(tcx_ctx_message(ctx), "No space left on device (errno 28)"))
    fprintf(stderr, "message: %s\n", tcx_ctx_message(ctx));
  assert_int_equal(rc, TCX_ERR_OUTPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), converted));
  snprintf(temp, sizeof(temp), "%s.tmp", converted);
  assert_false(file_exists(temp));
  assert_true(read_attr(converted, "repetition_time") == 2.0);
  assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
  free(labels);
}

/* Runs last: every HDF5 object opened by the tests above, on success and
 * error paths alike, has been closed. */
static void hdf5_objects_all_closed(void **state)
{
  const ssize_t open_objects = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);

  (void)state;
  if (open_objects != 0)
    fprintf(stderr, "%zd HDF5 objects are still open\n", open_objects);
  assert_int_equal(open_objects, 0);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nifti_convert_real_dataset),
      cmocka_unit_test(nifti_convert_synthetic_exact),
      cmocka_unit_test(nifti_convert_with_mask),
      cmocka_unit_test(nifti_convert_rejects_bad_inputs),
      cmocka_unit_test(nifti_export_labels_round_trip),
      cmocka_unit_test(nifti_export_values_round_trip),
      cmocka_unit_test(nifti_export_real_geometry),
      cmocka_unit_test(nifti_export_rejects_bad_requests),
      cmocka_unit_test(nifti_float_nan_is_missing),
      cmocka_unit_test(nifti_float_infinity_is_error),
      cmocka_unit_test_setup_teardown(nifti_full_disk_keeps_old_files,
                                      mount_small_disk, unmount_small_disk),
      cmocka_unit_test(hdf5_objects_all_closed),
  };

  return tcx_test_run(argc, argv, "nifti", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
