/* Parallel HDF5 input and output: every rank reads and writes its own
 * column block. Input files are written here with plain serial HDF5 calls
 * on rank 0 and output files are checked the same way, so that the
 * expected values never come from the code under test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <nifti1_io.h>

#include "tcorex/block.h"
#include "tcorex/csv.h"
#include "tcorex/h5io.h"
#include "tcorex/nifti.h"
#include "tcx_test.h"
#include "../src/h5io_internal.h"

enum { P = 37 }; /* 2, 3 and 4 ranks split it unevenly */

/* Clears ok and prints the failed condition, for checks that may fail on
 * one rank only: the caller then passes ok to tcx_test_all_ok(). */
#define CHECK(ok, cond)                                                      \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "[rank %d] %s:%d: check failed: %s\n",                 \
              tcx_ctx_rank(tcx_test_ctx()), __FILE__, __LINE__, #cond);      \
      (ok) = 0;                                                              \
    }                                                                        \
  } while (0)

/* Value of row r, column c of the 2-D test inputs; exact in float32. */
static double value_2d(int64_t r, int64_t c) { return 100.0 * r + c + 0.5; }

/* Value of period t, row s, column c of the 3-D test inputs. */
static double value_3d(int64_t t, int64_t s, int64_t c)
{
  return 1000.0 * t + 50.0 * s + c;
}

static int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Rank 0 writes one dataset with serial HDF5; every rank then waits. The
 * values are converted from double to type by HDF5. */
static void write_input(const char *path, const char *name, hid_t type,
                        int n_dims, const hsize_t *dims, const double *data)
{
  int ok = 1;

  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t links = H5Pcreate(H5P_LINK_CREATE);
    hid_t space = H5Screate_simple(n_dims, dims, NULL);
    hid_t set;

    H5Pset_create_intermediate_group(links, 1);
    set = H5Dcreate2(file, name, type, space, links, H5P_DEFAULT,
                     H5P_DEFAULT);
    ok = file >= 0 && space >= 0 && set >= 0 &&
         H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                  data) >= 0;
    ok = H5Dclose(set) >= 0 && ok;
    ok = H5Sclose(space) >= 0 && ok;
    ok = H5Pclose(links) >= 0 && ok;
    ok = H5Fclose(file) >= 0 && ok;
  }
  assert_true(tcx_test_all_ok(ok, "writing a test input with serial HDF5"));
}

/* Fills a [rows, P] input with value_2d. */
static double *make_2d(int64_t rows)
{
  double *data = calloc((size_t)(rows * P), sizeof(double));

  assert_non_null(data);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < P; c++)
      data[r * P + c] = value_2d(r, c);
  return data;
}

/* Fills a [periods, rows, P] input with value_3d. */
static double *make_3d(int64_t periods, int64_t rows)
{
  double *data = calloc((size_t)(periods * rows * P), sizeof(double));

  assert_non_null(data);
  for (int64_t t = 0; t < periods; t++)
    for (int64_t s = 0; s < rows; s++)
      for (int64_t c = 0; c < P; c++)
        data[(t * rows + s) * P + c] = value_3d(t, s, c);
  return data;
}

/* Checks that block holds this rank's tcx_partition() columns of a
 * [periods, rows, P] input. */
static int block_has_partition(const tcx_block *block, int periods,
                               int64_t rows)
{
  tcx_ctx *ctx = tcx_test_ctx();
  int64_t begin = -1, count = -1;
  int ok;

  ok = tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx), &begin,
                     &count) == TCX_OK;
  ok = ok && block->n_vars == P && block->col_begin == begin &&
       block->n_local == count && block->n_periods == periods &&
       block->n_rows == periods * rows;
  for (int t = 0; ok && t <= periods; t++)
    ok = block->period_begin[t] == t * rows;
  return ok;
}

/* Counts entries of the block that differ from value_2d. */
static int64_t count_2d_mismatches(const tcx_block *block)
{
  int64_t wrong = 0;

  for (int64_t r = 0; r < block->n_rows; r++)
    for (int64_t j = 0; j < block->n_local; j++)
      wrong += block->data[r * block->n_local + j] !=
               value_2d(r, block->col_begin + j);
  return wrong;
}

/* Counts entries of the block that differ from value_3d. */
static int64_t count_3d_mismatches(const tcx_block *block, int64_t rows)
{
  int64_t wrong = 0;

  for (int64_t r = 0; r < block->n_rows; r++)
    for (int64_t j = 0; j < block->n_local; j++)
      wrong += block->data[r * block->n_local + j] !=
               value_3d(r / rows, r % rows, block->col_begin + j);
  return wrong;
}

static void read_block_2d_double(void **state)
{
  const hsize_t dims[2] = {11, P};
  double *data = make_2d(11);
  tcx_block *block = NULL;
  char path[256];

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/data", H5T_IEEE_F64LE, 2, dims, data);
  assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, NULL, &block),
                   TCX_OK);
  assert_true(tcx_test_all_ok(block_has_partition(block, 1, 11),
                              "block shape of a [11, 37] input"));
  assert_true(tcx_test_all_ok(count_2d_mismatches(block) == 0,
                              "values of a [11, 37] float64 input"));
  tcx_block_destroy(&block);
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

static void read_block_3d_int16_periods(void **state)
{
  const hsize_t dims[3] = {3, 5, P};
  double *data = make_3d(3, 5);
  tcx_read_options options = {"/group/bold", 0, 0};
  tcx_block *block = NULL;
  char path[256];

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/group/bold", H5T_STD_I16LE, 3, dims, data);
  assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, &options, &block),
                   TCX_OK);
  assert_true(tcx_test_all_ok(block_has_partition(block, 3, 5),
                              "block shape of a [3, 5, 37] input"));
  assert_true(tcx_test_all_ok(count_3d_mismatches(block, 5) == 0,
                              "values of a [3, 5, 37] int16 input"));
  tcx_block_destroy(&block);
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* A float32 input with the marker 0.1, which float32 cannot store exactly,
 * and one NaN: both must come back as NaN and nothing else may. */
static void read_block_float32_missing_marker(void **state)
{
  const hsize_t dims[2] = {6, P};
  const double marker = 0.1;
  double *data = make_2d(6);
  tcx_read_options options = {NULL, 1, marker};
  tcx_block *block = NULL;
  int64_t wrong = 0;
  char path[256];

  (void)state;
  data[2 * P + 5] = marker;
  data[4 * P + 30] = marker;
  data[5 * P + 36] = NAN;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/data", H5T_IEEE_F32LE, 2, dims, data);
  assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, &options, &block),
                   TCX_OK);
  for (int64_t r = 0; r < 6; r++)
    for (int64_t j = 0; j < block->n_local; j++) {
      const int64_t c = block->col_begin + j;
      const double got = block->data[r * block->n_local + j];
      const int missing =
          (r == 2 && c == 5) || (r == 4 && c == 30) || (r == 5 && c == 36);

      wrong += missing ? !isnan(got) : got != value_2d(r, c);
    }
  assert_true(tcx_test_all_ok(wrong == 0, "float32 marker and NaN to NaN"));
  tcx_block_destroy(&block);
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* An int32 input with negative values and the marker -1. */
static void read_block_int32_missing_marker(void **state)
{
  const hsize_t dims[2] = {4, P};
  double *data = calloc(4 * P, sizeof(double));
  tcx_read_options options = {NULL, 1, -1};
  tcx_block *block = NULL;
  int64_t wrong = 0;
  char path[256];

  (void)state;
  assert_non_null(data);
  for (int64_t k = 0; k < 4 * P; k++)
    data[k] = k % 7 == 3 ? -1.0 : (double)(k % 11) - 5.0;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/data", H5T_STD_I32LE, 2, dims, data);
  assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, &options, &block),
                   TCX_OK);
  for (int64_t r = 0; r < 4; r++)
    for (int64_t j = 0; j < block->n_local; j++) {
      const int64_t k = r * P + block->col_begin + j;
      const double got = block->data[r * block->n_local + j];

      wrong += data[k] == -1.0 ? !isnan(got) : got != data[k];
    }
  assert_true(tcx_test_all_ok(wrong == 0, "int32 values and marker -1"));
  tcx_block_destroy(&block);
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* Reads a file expected to fail and checks status and message fragments
 * on every rank. */
static void expect_read_error(const char *path,
                              const tcx_read_options *options, int status,
                              const char *const *fragments, int count)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = NULL;
  const int got = tcx_h5_read_block(ctx, path, options, &block);
  int ok = got == status && block == NULL;

  for (int k = 0; ok && k < count; k++)
    ok = strstr(tcx_ctx_message(ctx), fragments[k]) != NULL;
  if (!ok)
    fprintf(stderr, "[rank %d] status %s, message: %s\n", tcx_ctx_rank(ctx),
            tcx_status_name(got), tcx_ctx_message(ctx));
  assert_true(tcx_test_all_ok(ok, "error status and message"));
}

static void read_block_infinite_value_names_cell(void **state)
{
  const hsize_t dims2[2] = {6, P}, dims3[3] = {3, 4, P};
  double *data2 = make_2d(6), *data3 = make_3d(3, 4);
  const char *in_2d[] = {"infinite value", "row 4, column 29", "/data"};
  const char *in_3d[] = {"period 1, row 2 of that period, column 3"};
  char path2[256], path3[256];

  (void)state;
  data2[4 * P + 29] = INFINITY;
  data3[(1 * 4 + 2) * P + 3] = -INFINITY;
  tcx_test_temp_path(".h5", path2, sizeof(path2));
  tcx_test_temp_path(".h5", path3, sizeof(path3));
  write_input(path2, "/data", H5T_IEEE_F64LE, 2, dims2, data2);
  write_input(path3, "/data", H5T_IEEE_F32LE, 3, dims3, data3);
  expect_read_error(path2, NULL, TCX_ERR_INPUT, in_2d, 3);
  expect_read_error(path3, NULL, TCX_ERR_INPUT, in_3d, 1);
  free(data2);
  free(data3);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    unlink(path2);
    unlink(path3);
  }
}

static void read_block_missing_file(void **state)
{
  const char *fragments[] = {"/nonexistent/tcx_input.h5", "not found"};

  (void)state;
  expect_read_error("/nonexistent/tcx_input.h5", NULL, TCX_ERR_INPUT,
                    fragments, 2);
}

static void read_block_rejects_text_file(void **state)
{
  const char *fragments[] = {"is not an HDF5 file"};
  char path[256];
  int ok = 1;

  (void)state;

  tcx_test_temp_path(".csv", path, sizeof(path));
  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    FILE *file = fopen(path, "w");

    CHECK(ok, file != NULL);
    CHECK(ok, file && fputs("a,b\n1,2\n", file) >= 0);
    CHECK(ok, file && fclose(file) == 0);
  }
  assert_true(tcx_test_all_ok(ok, "text input written"));
  expect_read_error(path, NULL, TCX_ERR_INPUT, fragments, 1);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* A missing dataset: the message lists the 2-D and 3-D datasets only. */
static void read_block_missing_dataset_lists_others(void **state)
{
  const hsize_t dims2[2] = {4, P}, dims3[3] = {2, 3, P}, dims1[1] = {5};
  double *data = make_3d(2, 3);
  tcx_read_options options = {"/bold", 0, 0};
  const char *fragments[] = {"dataset \"/bold\" not found", "/data2 [4 x 37]",
                             "/grp/x [2 x 3 x 37]", "--dataset"};
  tcx_ctx *ctx = tcx_test_ctx();
  char path[256];
  int ok = 1;

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  if (tcx_ctx_rank(ctx) == 0) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t links = H5Pcreate(H5P_LINK_CREATE);
    const hsize_t *shapes[3] = {dims2, dims3, dims1};
    const int ranks[3] = {2, 3, 1};
    const char *names[3] = {"/data2", "/grp/x", "/vector"};

    CHECK(ok, H5Pset_create_intermediate_group(links, 1) >= 0);
    for (int k = 0; k < 3; k++) {
      hid_t space = H5Screate_simple(ranks[k], shapes[k], NULL);
      hid_t set = H5Dcreate2(file, names[k], H5T_IEEE_F64LE, space, links,
                             H5P_DEFAULT, H5P_DEFAULT);

      CHECK(ok, H5Dwrite(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                         H5P_DEFAULT, data) >= 0);
      CHECK(ok, H5Dclose(set) >= 0);
      CHECK(ok, H5Sclose(space) >= 0);
    }
    CHECK(ok, H5Pclose(links) >= 0);
    CHECK(ok, H5Fclose(file) >= 0);
  }
  assert_true(tcx_test_all_ok(ok, "file with three datasets written"));
  expect_read_error(path, &options, TCX_ERR_INPUT, fragments, 4);
  assert_true(tcx_test_all_ok(!strstr(tcx_ctx_message(ctx), "/vector"),
                              "1-D dataset left out of the list"));
  options.dataset = "/grp/missing/deeper";
  expect_read_error(path, &options, TCX_ERR_INPUT, fragments + 1, 1);
  free(data);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

static void read_block_rejects_bad_shapes(void **state)
{
  const hsize_t vector[1] = {P}, empty[2] = {0, P}, four[4] = {1, 2, 3, P};
  double *data = make_3d(2, 3);
  const char *rank_text[] = {"has shape [37]", "expected 2 dimensions"};
  const char *rows_text[] = {"has shape [0 x 37]", "no rows"};
  const char *four_text[] = {"has 4 dimensions"};
  char path[256];

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/data", H5T_IEEE_F64LE, 1, vector, data);
  expect_read_error(path, NULL, TCX_ERR_INPUT, rank_text, 2);
  write_input(path, "/data", H5T_IEEE_F64LE, 2, empty, data);
  expect_read_error(path, NULL, TCX_ERR_INPUT, rows_text, 2);
  write_input(path, "/data", H5T_IEEE_F64LE, 4, four, data);
  expect_read_error(path, NULL, TCX_ERR_INPUT, four_text, 1);
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* p = size - 1 columns cannot be split; at one rank, p = 1 reads fine. */
static void read_block_rejects_more_ranks_than_columns(void **state)
{
  const int size = tcx_ctx_size(tcx_test_ctx());
  const hsize_t dims[2] = {3, size > 1 ? (hsize_t)size - 1 : 1};
  double data[3 * 4] = {0};
  char expected[64];
  const char *fragments[] = {expected, "variables (columns)"};
  tcx_block *block = NULL;
  char path[256];

  (void)state;
  snprintf(expected, sizeof(expected), "at most %d ranks",
           size > 1 ? size - 1 : 1);
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/data", H5T_IEEE_F64LE, 2, dims, data);
  if (size == 1) {
    assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, NULL, &block),
                     TCX_OK);
    tcx_block_destroy(&block);
  } else {
    expect_read_error(path, NULL, TCX_ERR_USAGE, fragments, 2);
  }
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* Transfers small enough to split rows and periods give the same block. */
static void read_block_batches_give_same_values(void **state)
{
  const hsize_t dims2[2] = {11, P}, dims3[3] = {3, 5, P};
  const int64_t limits[] = {1, 8 * 10 * 3, 8 * 10 * 7, 8 * 37 * 11};
  double *data2 = make_2d(11), *data3 = make_3d(3, 5);
  char path2[256], path3[256];

  (void)state;
  tcx_test_temp_path(".h5", path2, sizeof(path2));
  tcx_test_temp_path(".h5", path3, sizeof(path3));
  write_input(path2, "/data", H5T_IEEE_F64LE, 2, dims2, data2);
  write_input(path3, "/data", H5T_IEEE_F64LE, 3, dims3, data3);
  for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
    tcx_block *block = NULL;

    assert_int_equal(tcx_h5_read_block_batched(tcx_test_ctx(), path2, NULL,
                                               limits[k], &block),
                     TCX_OK);
    assert_true(tcx_test_all_ok(count_2d_mismatches(block) == 0,
                                "2-D values read in batches"));
    tcx_block_destroy(&block);
    assert_int_equal(tcx_h5_read_block_batched(tcx_test_ctx(), path3, NULL,
                                               limits[k], &block),
                     TCX_OK);
    assert_true(tcx_test_all_ok(count_3d_mismatches(block, 5) == 0,
                                "3-D values read in batches"));
    tcx_block_destroy(&block);
  }
  free(data2);
  free(data3);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    unlink(path2);
    unlink(path3);
  }
}

/* The reference input read in blocks equals a whole read by plain HDF5. */
static void read_block_matches_reference_file(void **state)
{
  const char *path = TCX_TEST_DATA_DIR "/corex_chunks_p128.h5";
  double *whole = calloc(160 * 128, sizeof(double));
  tcx_block *block = NULL;
  hid_t file, set;
  int ok = whole != NULL;

  (void)state;
  file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  set = H5Dopen2(file, "/data", H5P_DEFAULT);
  CHECK(ok, whole && H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                             H5P_DEFAULT, whole) >= 0);
  CHECK(ok, H5Dclose(set) >= 0);
  CHECK(ok, H5Fclose(file) >= 0);
  assert_true(tcx_test_all_ok(ok, "reference file read with plain HDF5"));
  assert_int_equal(tcx_h5_read_block(tcx_test_ctx(), path, NULL, &block),
                   TCX_OK);
  CHECK(ok, block->n_rows == 160);
  for (int64_t r = 0; ok && r < 160; r++)
    for (int64_t j = 0; j < block->n_local; j++)
      CHECK(ok, block->data[r * block->n_local + j] ==
                    whole[r * 128 + block->col_begin + j]);
  assert_true(tcx_test_all_ok(ok, "reference file values"));
  tcx_block_destroy(&block);
  free(whole);
}

static void dataset_shape_reports_dims(void **state)
{
  const hsize_t dims[3] = {3, 5, P};
  double *data = make_3d(3, 5);
  int64_t shape[3] = {0, 0, 0};
  int rank = 0;
  char path[256];

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_input(path, "/x", H5T_IEEE_F32LE, 3, dims, data);
  assert_int_equal(tcx_h5_dataset_shape(tcx_test_ctx(), path, "/x", &rank,
                                        shape),
                   TCX_OK);
  assert_true(tcx_test_all_ok(rank == 3 && shape[0] == 3 && shape[1] == 5 &&
                                  shape[2] == P,
                              "shape [3, 5, 37]"));
  free(data);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    unlink(path);
}

/* Reads a whole dataset of a finished file with serial HDF5 and returns
 * its values as double (NULL on failure) plus its chunk shape (0 when
 * contiguous). */
static double *read_output(const char *path, const char *name, int n_dims,
                           hsize_t *chunk)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t space = H5Dget_space(set);
  hid_t create = H5Dget_create_plist(set);
  hssize_t count = H5Sget_simple_extent_npoints(space);
  double *values = calloc(count > 0 ? (size_t)count : 1, sizeof(double));
  int ok = set >= 0 && create >= 0 && values != NULL;

  memset(chunk, 0, (size_t)n_dims * sizeof(hsize_t));
  CHECK(ok, ok && H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                          H5P_DEFAULT, values) >= 0);
  if (ok && H5Pget_layout(create) == H5D_CHUNKED)
    CHECK(ok, H5Pget_chunk(create, n_dims, chunk) == n_dims);
  H5Pclose(create);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
  if (!ok) {
    free(values);
    return NULL;
  }
  return values;
}

/* Returns 1 when the size of a finished file equals its end of allocated
 * space (EOA): the disk space reserved while writing was given back. */
static int size_is_eoa(const char *path)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  haddr_t eoa = 0;
  struct stat info;
  int ok = file >= 0 && H5Fget_eoa(file, &eoa) >= 0 &&
           stat(path, &info) == 0 && (haddr_t)info.st_size == eoa;

  if (file >= 0)
    H5Fclose(file);
  return ok;
}

/* Checks on rank 0 the datasets written by write_columns_round_trip; returns
 * 1 when all are right. */
static int check_round_trip_file(const char *path, const double *replicated)
{
  hsize_t chunk[3];
  double *a = read_output(path, "/a", 2, chunk);
  double *b, *c, *s;
  int ok = a != NULL;

  CHECK(ok, chunk[0] == 4);
  CHECK(ok, chunk[1] == P);
  for (int64_t k = 0; a && k < 4 * P; k++)
    CHECK(ok, a[k] == value_2d(k / P, k % P));
  b = read_output(path, "/g/b", 3, chunk);
  CHECK(ok, b != NULL);
  CHECK(ok, chunk[0] == 2);
  CHECK(ok, chunk[1] == 3);
  CHECK(ok, chunk[2] == P);
  for (int64_t k = 0; b && k < 6 * P; k++)
    CHECK(ok, b[k] == value_3d(k / (3 * P), (k / P) % 3, k % P));
  c = read_output(path, "/c", 1, chunk);
  CHECK(ok, c != NULL);
  CHECK(ok, chunk[0] == P);
  for (int64_t k = 0; c && k < P; k++)
    CHECK(ok, c[k] == 3.0 * k - 50);
  s = read_output(path, "/small", 2, chunk);
  CHECK(ok, s != NULL);
  CHECK(ok, chunk[0] == 0); /* contiguous */
  CHECK(ok, s && memcmp(s, replicated, 6 * sizeof(double)) == 0);
  CHECK(ok, size_is_eoa(path));
  free(a);
  free(b);
  free(c);
  free(s);
  return ok;
}

/* Each rank writes its part of [4, P], [2, 3, P] and [P] column datasets
 * and a replicated [2, 3] one. The file must contain the global arrays. */
static void write_columns_round_trip(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t dims2[2] = {4, P}, dims3[3] = {2, 3, P}, dims1[1] = {P};
  const int64_t small[2] = {2, 3}, wrong_dims[2] = {5, P};
  const double replicated[6] = {1.5, -2, 3, 4, 5, 6.25};
  int64_t begin, n;
  double *local2, *local3;
  float *local3f;
  int32_t *local1;
  tcx_h5_output *out = NULL;
  char path[256], temp[300];

  (void)state;
  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &n),
                   TCX_OK);
  local2 = calloc((size_t)(4 * n), sizeof(double));
  local3 = calloc((size_t)(6 * n), sizeof(double));
  local3f = calloc((size_t)(6 * n), sizeof(float));
  local1 = calloc((size_t)n, sizeof(int32_t));
  assert_true(local2 && local3 && local3f && local1);
  for (int64_t j = 0; j < n; j++) {
    local1[j] = (int32_t)(3 * (begin + j) - 50);
    for (int64_t r = 0; r < 4; r++)
      local2[r * n + j] = value_2d(r, begin + j);
    for (int64_t r = 0; r < 6; r++) {
      local3[r * n + j] = value_3d(r / 3, r % 3, begin + j);
      local3f[r * n + j] = (float)local3[r * n + j];
    }
  }
  tcx_test_temp_path(".h5", path, sizeof(path));
  snprintf(temp, sizeof(temp), "%s.tmp", path);
  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_true(tcx_test_all_ok(file_exists(temp) && !file_exists(path),
                              "only PATH.tmp exists while writing"));
  assert_int_equal(tcx_h5_write_columns(ctx, out, "/a", TCX_H5_DOUBLE, 2,
                                        dims2, begin, n, local2),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_columns(ctx, out, "/g/b", TCX_H5_FLOAT, 3,
                                        dims3, begin, n, local3f),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_columns(ctx, out, "/c", TCX_H5_INT32, 1,
                                        dims1, begin, n, local1),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_replicated(ctx, out, "/small", TCX_H5_DOUBLE,
                                           2, small, replicated),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_attr_string(ctx, out, "note", "written"),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_attr_int(ctx, out, "count", 1234567890123),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_attr_double(ctx, out, "scale", 0.125),
                   TCX_OK);
  assert_int_equal(tcx_h5_write_attr_double(ctx, out, "scale", 0.25),
                   TCX_OK);
  assert_int_equal(tcx_h5_commit(ctx, &out), TCX_OK);
  assert_true(tcx_test_all_ok(out == NULL, "commit sets the handle to NULL"));
  assert_true(tcx_test_all_ok(!file_exists(temp) && file_exists(path),
                              "PATH present and PATH.tmp gone after commit"));

  {
    int ok = 1;

    if (tcx_ctx_rank(ctx) == 0)
      ok = check_round_trip_file(path, replicated);
    assert_true(tcx_test_all_ok(ok, "file checked with plain HDF5"));
  }

  {
    double *back = NULL, *whole = NULL, number = 0;
    int64_t shape[3];
    int n_dims = 0;
    char text[32];
    int ok = 1;

    assert_int_equal(tcx_h5_read_columns(ctx, path, "/g/b", 3, dims3, begin,
                                         n, &back),
                     TCX_OK);
    for (int64_t k = 0; k < 6 * n; k++)
      CHECK(ok, back[k] == local3[k]);
    assert_true(tcx_test_all_ok(ok, "read_columns of /g/b"));
    assert_int_equal(tcx_h5_read_replicated(ctx, path, "/small", &n_dims,
                                            shape, &whole),
                     TCX_OK);
    CHECK(ok, n_dims == 2);
    CHECK(ok, shape[0] == 2);
    CHECK(ok, shape[1] == 3);
    CHECK(ok, memcmp(whole, replicated, sizeof(replicated)) == 0);
    assert_true(tcx_test_all_ok(ok, "read_replicated of /small"));
    assert_int_equal(tcx_h5_read_attr_string(ctx, path, "note", text,
                                             sizeof(text)),
                     TCX_OK);
    CHECK(ok, strcmp(text, "written") == 0);
    assert_int_equal(tcx_h5_read_attr_double(ctx, path, "count", &number),
                     TCX_OK);
    CHECK(ok, number == 1234567890123.0);
    assert_int_equal(tcx_h5_read_attr_double(ctx, path, "scale", &number),
                     TCX_OK);
    CHECK(ok, number == 0.25);
    assert_true(tcx_test_all_ok(ok, "attributes read back"));
    free(back);
    assert_int_equal(tcx_h5_read_columns(ctx, path, "/a", 2, wrong_dims,
                                         begin, n, &back),
                     TCX_ERR_INPUT);
    CHECK(ok, back == NULL);
    CHECK(ok, strstr(tcx_ctx_message(ctx),
                     "has shape [4 x 37], expected [5 x 37]") != NULL);
    assert_true(tcx_test_all_ok(ok, "shape mismatch reported"));
    free(back);
    free(whole);
  }
  free(local1);
  free(local2);
  free(local3);
  free(local3f);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

/* Returns 1 when path has root attribute version = 1 and no /new
 * dataset, read with serial HDF5. */
static int is_first_version(const char *path)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attr = H5Aopen(file, "version", H5P_DEFAULT);
  double version = -1;
  int ok = attr >= 0;

  CHECK(ok, ok && H5Aread(attr, H5T_NATIVE_DOUBLE, &version) >= 0);
  CHECK(ok, version == 1.0);
  CHECK(ok, H5Lexists(file, "/new", H5P_DEFAULT) == 0);
  H5Aclose(attr);
  H5Fclose(file);
  return ok;
}

/* A discarded rewrite leaves neither PATH.tmp nor changes to an old PATH. */
static void discard_keeps_old_file(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t dims[1] = {3};
  const double values[3] = {1, 2, 3};
  tcx_h5_output *out = NULL;
  char path[256], temp[300];
  int ok = 1;

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  snprintf(temp, sizeof(temp), "%s.tmp", path);

  /* A stale PATH.tmp from a killed run is replaced; a discarded first
   * write leaves nothing behind. */
  if (tcx_ctx_rank(ctx) == 0) {
    FILE *stale = fopen(temp, "w");

    CHECK(ok, stale != NULL && fputs("stale\n", stale) >= 0);
    CHECK(ok, stale && fclose(stale) == 0);
  }
  assert_true(tcx_test_all_ok(ok, "stale PATH.tmp written"));
  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  tcx_h5_discard(ctx, &out);
  assert_true(tcx_test_all_ok(!file_exists(temp) && !file_exists(path),
                              "discarded first write leaves no file"));

  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_int_equal(tcx_h5_write_attr_int(ctx, out, "version", 1), TCX_OK);
  assert_int_equal(tcx_h5_commit(ctx, &out), TCX_OK);

  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_int_equal(tcx_h5_write_attr_int(ctx, out, "version", 2), TCX_OK);
  assert_int_equal(tcx_h5_write_replicated(ctx, out, "/new", TCX_H5_DOUBLE,
                                           1, dims, values),
                   TCX_OK);
  tcx_h5_discard(ctx, &out);
  assert_true(tcx_test_all_ok(out == NULL, "discard sets the handle to NULL"));
  tcx_h5_discard(ctx, &out);
  assert_true(tcx_test_all_ok(!file_exists(temp) && file_exists(path),
                              "discard removes PATH.tmp and keeps PATH"));
  assert_true(tcx_test_all_ok(tcx_ctx_rank(ctx) != 0 || is_first_version(path),
                              "old file unchanged"));
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

static void create_rejects_missing_folder(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_h5_output *out = NULL;
  const int rc = tcx_h5_create(ctx, "/nonexistent-tcx-folder/out.h5", &out);

  (void)state;
  assert_int_equal(rc, TCX_ERR_OUTPUT);
  assert_null(out);
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "folder /nonexistent-tcx-folder does not exist"));
}

/* Column writes split into many small transfers give the same file. */
static void write_columns_in_batches(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t dims3[3] = {2, 3, P};
  int64_t begin, n, wrong = 0;
  double *local, *back = NULL;
  tcx_h5_output *out = NULL;
  char path[256];

  (void)state;
  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &n),
                   TCX_OK);
  local = calloc((size_t)(6 * n), sizeof(double));
  assert_non_null(local);
  for (int64_t r = 0; r < 6; r++)
    for (int64_t j = 0; j < n; j++)
      local[r * n + j] = value_3d(r / 3, r % 3, begin + j);
  tcx_test_temp_path(".h5", path, sizeof(path));
  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  out->max_transfer_bytes = 1;
  assert_int_equal(tcx_h5_write_columns(ctx, out, "/b", TCX_H5_DOUBLE, 3,
                                        dims3, begin, n, local),
                   TCX_OK);
  assert_int_equal(tcx_h5_commit(ctx, &out), TCX_OK);
  if (tcx_ctx_rank(ctx) == 0) {
    hsize_t chunk[3];
    double *whole = read_output(path, "/b", 3, chunk);

    wrong = whole ? 0 : 1;
    for (int64_t k = 0; whole && k < 6 * P; k++)
      wrong += whole[k] != value_3d(k / (3 * P), (k / P) % 3, k % P);
    free(whole);
  }
  assert_true(tcx_test_all_ok(wrong == 0, "file written in batches"));
  assert_int_equal(tcx_h5_read_columns(ctx, path, "/b", 3, dims3, begin, n,
                                       &back),
                   TCX_OK);
  assert_true(tcx_test_all_ok(
      memcmp(back, local, (size_t)(6 * n) * sizeof(double)) == 0,
      "batched file read back in columns"));
  free(back);
  free(local);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

/* A CSV table converted on rank 0 is read in blocks by every rank. */
static void csv_convert_then_read_blocks(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = NULL;
  char csv[256], out[256];
  int ok = 1;

  (void)state;
  tcx_test_temp_path(".csv", csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  if (tcx_ctx_rank(ctx) == 0) {
    FILE *file = fopen(csv, "w");

    CHECK(ok, file != NULL);
    for (int64_t r = -1; file && r < 6; r++)
      for (int64_t c = 0; c < P; c++) {
        if (r < 0)
          fprintf(file, "v%lld%s", (long long)c, c + 1 < P ? "," : "\n");
        else if (r == 3 && c == 20)
          fprintf(file, "NA%s", c + 1 < P ? "," : "\n");
        else
          fprintf(file, "%.17g%s", value_2d(r, c), c + 1 < P ? "," : "\n");
      }
    CHECK(ok, file && fclose(file) == 0);
  }
  assert_true(tcx_test_all_ok(ok, "CSV input written"));
  assert_int_equal(tcx_csv_convert(ctx, csv, out, -1), TCX_OK);
  assert_true(tcx_test_all_ok(tcx_ctx_rank(ctx) != 0 || size_is_eoa(out),
                              "converted file as long as its EOA"));
  assert_int_equal(tcx_h5_read_block(ctx, out, NULL, &block), TCX_OK);
  CHECK(ok, block_has_partition(block, 1, 6));
  for (int64_t r = 0; ok && r < 6; r++)
    for (int64_t j = 0; j < block->n_local; j++) {
      const int64_t c = block->col_begin + j;
      const double got = block->data[r * block->n_local + j];

      CHECK(ok, r == 3 && c == 20 ? isnan(got) : got == value_2d(r, c));
    }
  assert_true(tcx_test_all_ok(ok, "CSV values read in blocks"));
  tcx_block_destroy(&block);
  if (tcx_ctx_rank(ctx) == 0) {
    unlink(csv);
    unlink(out);
  }
}

/* The real fMRI example converted on rank 0 and read in blocks equals
 * nifticlib's own reading of the varying voxels, scaled. */
static void nifti_convert_then_read_blocks(void **state)
{
  const char *bold_path = TCX_SOURCE_DIR "/datasets/fmri_functional.nii";
  tcx_ctx *ctx = tcx_test_ctx();
  nifti_image *bold = nifti_image_read(bold_path, 1);
  int64_t *voxel = calloc(17 * 21 * 3, sizeof(int64_t));
  tcx_block *block = NULL;
  int64_t p = 0;
  char out[256];
  int ok = bold != NULL && voxel != NULL;

  (void)state;
  assert_true(tcx_test_all_ok(ok, "nifticlib reads the example"));
  for (int64_t v = 0; v < 17 * 21 * 3; v++) {
    const int16_t *raw = bold->data;
    int varies = 0;

    for (int64_t t = 1; t < 20; t++)
      varies |= raw[t * 17 * 21 * 3 + v] != raw[v];
    if (varies)
      voxel[p++] = v;
  }
  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_nifti_convert(ctx, bold_path, NULL, out), TCX_OK);
  assert_int_equal(tcx_h5_read_block(ctx, out, NULL, &block), TCX_OK);
  CHECK(ok, block->n_vars == p);
  CHECK(ok, block->n_rows == 20);
  for (int64_t t = 0; ok && t < 20; t++)
    for (int64_t j = 0; j < block->n_local; j++) {
      const int16_t raw = ((const int16_t *)bold->data)
          [t * 17 * 21 * 3 + voxel[block->col_begin + j]];
      const float expected =
          (float)(raw * (double)bold->scl_slope + bold->scl_inter);

      CHECK(ok, block->data[t * block->n_local + j] == expected);
    }
  assert_true(tcx_test_all_ok(ok, "NIfTI values read in blocks"));
  tcx_block_destroy(&block);
  nifti_image_free(bold);
  free(voxel);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(out);
}

/* The folder of a small tmpfs, "" when mounting was not permitted. */
static char small_disk[256];

/* Size of the small disk: the old file and the reserved room of a
 * parallel output fit, the [2000 x P] float64 dataset (578 KiB) does not. */
enum { SMALL_DISK_KIB = 256, BIG_ROWS = 2000 };

static int mount_small_disk(void **state)
{
  *state = tcx_test_mount_small_disk(SMALL_DISK_KIB, small_disk,
                                     sizeof(small_disk))
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

/* Writes PATH with root attribute version = 1 and a [3] dataset. */
static void write_first_version(tcx_ctx *ctx, const char *path)
{
  const int64_t dims[1] = {3};
  const double values[3] = {1, 2, 3};
  tcx_h5_output *out = NULL;

  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_int_equal(tcx_h5_write_attr_int(ctx, out, "version", 1), TCX_OK);
  assert_int_equal(tcx_h5_write_replicated(ctx, out, "/old", TCX_H5_DOUBLE,
                                           1, dims, values),
                   TCX_OK);
  assert_int_equal(tcx_h5_commit(ctx, &out), TCX_OK);
}

/* Checks the state after a failed write to path: every rank got rc =
 * TCX_ERR_OUTPUT with a message that names path and the system error, no
 * PATH.tmp is left, the old PATH is unchanged and no HDF5 object is open
 * (an object left open would also crash HDF5 in MPI_Finalize). */
static void check_failed_write(tcx_ctx *ctx, int rc, const char *path)
{
  const char *message = tcx_ctx_message(ctx);
  char temp[320];
  int ok = 1;

  snprintf(temp, sizeof(temp), "%s.tmp", path);
  CHECK(ok, rc == TCX_ERR_OUTPUT);
  CHECK(ok, strstr(message, path) != NULL);
  CHECK(ok, strstr(message, "No space left on device (errno 28)") != NULL);
  CHECK(ok, strstr(message, "free space") != NULL);
  if (!ok)
    fprintf(stderr, "[rank %d] message: %s\n", tcx_ctx_rank(ctx), message);
  assert_true(tcx_test_all_ok(ok, "output error with its cause"));
  assert_true(tcx_test_all_ok(!file_exists(temp), "PATH.tmp removed"));
  assert_true(tcx_test_all_ok(tcx_ctx_rank(ctx) != 0 || is_first_version(path),
                              "old PATH unchanged"));
  assert_true(tcx_test_all_ok(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0,
                              "no HDF5 object left open"));
}

/* Writes that do not fit on the disk: a first dataset too large, a second
 * one too large after a small one, and a disk full before the file is
 * created. Each fails cleanly on every rank. */
static void write_to_full_disk_fails_cleanly(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t big[2] = {BIG_ROWS, P}, small[2] = {4, P};
  int64_t begin, n;
  double *local;
  tcx_h5_output *out = NULL;
  char path[320];
  int rc;

  if (!*state)
    skip();
  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &n),
                   TCX_OK);
  local = calloc((size_t)(BIG_ROWS * n), sizeof(double));
  assert_non_null(local);
  for (int64_t k = 0; k < BIG_ROWS * n; k++)
    local[k] = value_2d(k / n, begin + k % n);
  snprintf(path, sizeof(path), "%s/out.h5", (const char *)*state);
  write_first_version(ctx, path);

  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  rc = tcx_h5_write_columns(ctx, out, "/big", TCX_H5_DOUBLE, 2, big, begin,
                            n, local);
  tcx_h5_discard(ctx, &out);
  check_failed_write(ctx, rc, path);

  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_int_equal(tcx_h5_write_columns(ctx, out, "/small", TCX_H5_DOUBLE, 2,
                                        small, begin, n, local),
                   TCX_OK);
  rc = tcx_h5_write_columns(ctx, out, "/big", TCX_H5_DOUBLE, 2, big, begin,
                            n, local);
  tcx_h5_discard(ctx, &out);
  check_failed_write(ctx, rc, path);

  assert_true(tcx_test_all_ok(tcx_ctx_rank(ctx) != 0 ||
                                  tcx_test_fill_disk(*state),
                              "disk filled"));
  rc = tcx_h5_create(ctx, path, &out);
  assert_true(tcx_test_all_ok(out == NULL, "no output on a full disk"));
  check_failed_write(ctx, rc, path);
  free(local);
}

/* Runs last: every HDF5 object opened by the tests above, on success and
 * error paths alike, has been closed. */
static void hdf5_objects_all_closed(void **state)
{
  const ssize_t open_objects = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);

  (void)state;
  if (open_objects != 0)
    fprintf(stderr, "%zd HDF5 objects are still open\n", open_objects);
  assert_true(tcx_test_all_ok(open_objects == 0, "HDF5 objects closed"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(read_block_2d_double),
      cmocka_unit_test(read_block_3d_int16_periods),
      cmocka_unit_test(read_block_float32_missing_marker),
      cmocka_unit_test(read_block_int32_missing_marker),
      cmocka_unit_test(read_block_infinite_value_names_cell),
      cmocka_unit_test(read_block_missing_file),
      cmocka_unit_test(read_block_rejects_text_file),
      cmocka_unit_test(read_block_missing_dataset_lists_others),
      cmocka_unit_test(read_block_rejects_bad_shapes),
      cmocka_unit_test(read_block_rejects_more_ranks_than_columns),
      cmocka_unit_test(read_block_batches_give_same_values),
      cmocka_unit_test(read_block_matches_reference_file),
      cmocka_unit_test(dataset_shape_reports_dims),
      cmocka_unit_test(write_columns_round_trip),
      cmocka_unit_test(discard_keeps_old_file),
      cmocka_unit_test(create_rejects_missing_folder),
      cmocka_unit_test(write_columns_in_batches),
      cmocka_unit_test_setup_teardown(write_to_full_disk_fails_cleanly,
                                      mount_small_disk, unmount_small_disk),
      cmocka_unit_test(csv_convert_then_read_blocks),
      cmocka_unit_test(nifti_convert_then_read_blocks),
      cmocka_unit_test(hdf5_objects_all_closed),
  };

  return tcx_test_run(argc, argv, "h5io", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
