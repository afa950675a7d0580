/* Model files: written from column blocks, read back on the same or a
 * different number of ranks. Every array entry is a formula of its global
 * indices, so expected values never come from the code under test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "tcorex/block.h"
#include "tcorex/model.h"
#include "tcx_test.h"

enum { P = 37, M = 4, NT = 3, N_OBJECTIVE = 5 };

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

/* Entry of per-factor array kind (0 weights, 1 factors, 2 mi) for period
 * t, factor j and global column i. */
static double factor_value(int kind, int64_t t, int64_t j, int64_t i)
{
  return kind * 10000.0 + t * 1000.0 + j * 100.0 + i + 0.25;
}

/* Entry of per-period array kind (0 mean, 1 std) for period t, column i. */
static double period_value(int kind, int64_t t, int64_t i)
{
  return kind ? 1.0 + 0.5 * t + 0.125 * i : -3.0 * t + i;
}

static int32_t cluster_value(int64_t t, int64_t i)
{
  return (int32_t)((t + i) % M);
}

/* Fills a model created for columns col_begin .. col_begin + n_local - 1
 * with the formulas above, plus tcs, objective and attributes. Returns 1
 * on success. */
static int fill_model(tcx_ctx *ctx, tcx_model *model)
{
  const double objective[N_OBJECTIVE] = {10, 8.5, 7.25, 7, 6.875};
  const int64_t n = model->n_local;
  int ok = 1;

  for (int64_t t = 0; t < NT; t++) {
    for (int64_t c = 0; c < n; c++) {
      const int64_t i = model->col_begin + c;

      model->mean[t * n + c] = period_value(0, t, i);
      model->std[t * n + c] = period_value(1, t, i);
      model->clusters[t * n + c] = cluster_value(t, i);
      for (int64_t j = 0; j < M; j++) {
        model->weights[(t * M + j) * n + c] = factor_value(0, t, j, i);
        model->factors[(t * M + j) * n + c] = factor_value(1, t, j, i);
        model->mi[(t * M + j) * n + c] = factor_value(2, t, j, i);
      }
    }
    for (int64_t j = 0; j < M; j++)
      model->tcs[t * M + j] = 0.5 * (double)(t * M + j);
  }
  CHECK(ok, tcx_model_set_objective(ctx, model, objective, N_OBJECTIVE) ==
                TCX_OK);
  CHECK(ok, tcx_model_set_string(ctx, model, "method", "tcorex") == TCX_OK);
  CHECK(ok, tcx_model_set_int(ctx, model, "seed", 42) == TCX_OK);
  CHECK(ok, tcx_model_set_double(ctx, model, "gamma", 0.4) == TCX_OK);
  CHECK(ok, tcx_model_set_double(ctx, model, "gamma", 0.5) == TCX_OK);
  return ok;
}

/* Counts the entries of model that differ from the formulas. */
static int64_t count_mismatches(const tcx_model *model)
{
  const int64_t n = model->n_local;
  int64_t wrong = 0;

  for (int64_t t = 0; t < NT; t++) {
    for (int64_t c = 0; c < n; c++) {
      const int64_t i = model->col_begin + c;

      wrong += model->mean[t * n + c] != period_value(0, t, i);
      wrong += model->std[t * n + c] != period_value(1, t, i);
      wrong += model->clusters[t * n + c] != cluster_value(t, i);
      for (int64_t j = 0; j < M; j++) {
        wrong += model->weights[(t * M + j) * n + c] != factor_value(0, t, j, i);
        wrong += model->factors[(t * M + j) * n + c] != factor_value(1, t, j, i);
        wrong += model->mi[(t * M + j) * n + c] != factor_value(2, t, j, i);
      }
    }
    for (int64_t j = 0; j < M; j++)
      wrong += model->tcs[t * M + j] != 0.5 * (double)(t * M + j);
  }
  wrong += model->n_objective != N_OBJECTIVE;
  wrong += model->n_objective == N_OBJECTIVE && model->objective[4] != 6.875;
  return wrong;
}

/* Writes a model whose columns are split over the ranks of ctx; returns 1
 * on success. */
static int write_model_on(tcx_ctx *ctx, const char *path)
{
  tcx_model *model = NULL;
  int64_t begin = -1, n = -1;
  int ok = 1;

  CHECK(ok, tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                          &begin, &n) == TCX_OK);
  CHECK(ok, tcx_model_create(ctx, NT, M, P, begin, n, &model) == TCX_OK);
  if (!model)
    return 0;
  ok = fill_model(ctx, model) && ok;
  CHECK(ok, tcx_model_write(ctx, path, model) == TCX_OK);
  tcx_model_destroy(&model);
  CHECK(ok, model == NULL);
  return ok;
}

/* Writes a model from all ranks of ctx, which must all succeed. */
static void write_model(tcx_ctx *ctx, const char *path)
{
  assert_true(tcx_test_all_ok(write_model_on(ctx, path),
                              "writing the model"));
}

/* Reads path on the ranks of ctx; returns 1 when every entry and the
 * split are right on this rank. */
static int check_model(tcx_ctx *ctx, const char *path)
{
  tcx_model *model = NULL;
  int64_t begin = -1, n = -1;
  int ok = 1;

  CHECK(ok, tcx_model_read(ctx, path, &model) == TCX_OK);
  CHECK(ok, tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                          &begin, &n) == TCX_OK);
  if (!model)
    return 0;
  CHECK(ok, model->n_periods == NT);
  CHECK(ok, model->n_factors == M);
  CHECK(ok, model->n_vars == P);
  CHECK(ok, model->col_begin == begin);
  CHECK(ok, model->n_local == n);
  CHECK(ok, count_mismatches(model) == 0);
  tcx_model_destroy(&model);
  return ok;
}

/* Reads a numeric root attribute of a finished file with serial HDF5. */
static double read_number_attr(hid_t file, const char *name)
{
  hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  double value = NAN;

  if (attr >= 0 && H5Aread(attr, H5T_NATIVE_DOUBLE, &value) < 0)
    value = NAN;
  if (attr >= 0)
    H5Aclose(attr);
  return value;
}

/* Returns the rank of a dataset of a finished file and fills dims, or -1
 * when it cannot be opened. */
static int dataset_shape(hid_t file, const char *name, hsize_t *dims)
{
  hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  hid_t space = set >= 0 ? H5Dget_space(set) : -1;
  int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;

  if (rank >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) != rank)
    rank = -1;
  if (space >= 0)
    H5Sclose(space);
  if (set >= 0)
    H5Dclose(set);
  return rank;
}

/* Returns 1 when the "method" string attribute is "tcorex". */
static int method_attr_is_tcorex(hid_t file)
{
  hid_t attr = H5Aopen(file, "method", H5P_DEFAULT);
  hid_t string = attr >= 0 ? H5Aget_type(attr) : -1;
  char text[16] = "";
  int ok = string >= 0 && H5Tget_size(string) < sizeof(text) &&
           H5Aread(attr, string, text) >= 0 && strcmp(text, "tcorex") == 0;

  if (string >= 0)
    H5Tclose(string);
  if (attr >= 0)
    H5Aclose(attr);
  return ok;
}

/* Returns 1 when /clusters is stored as little-endian int32. */
static int clusters_are_int32(hid_t file)
{
  hid_t set = H5Dopen2(file, "/clusters", H5P_DEFAULT);
  hid_t type = set >= 0 ? H5Dget_type(set) : -1;
  const int ok = type >= 0 && H5Tequal(type, H5T_STD_I32LE) > 0;

  if (type >= 0)
    H5Tclose(type);
  if (set >= 0)
    H5Dclose(set);
  return ok;
}

/* Checks the layout of a model file with plain HDF5; returns 1 when right. */
static int check_file_layout(const char *path)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hsize_t dims[3] = {0, 0, 0};
  int ok = 1;

  CHECK(ok, file >= 0);
  if (file < 0)
    return 0;
  CHECK(ok, read_number_attr(file, "n_periods") == NT);
  CHECK(ok, read_number_attr(file, "n_factors") == M);
  CHECK(ok, read_number_attr(file, "n_vars") == P);
  CHECK(ok, read_number_attr(file, "seed") == 42);
  CHECK(ok, read_number_attr(file, "gamma") == 0.5);
  CHECK(ok, read_number_attr(file, "format_version") == 1);
  CHECK(ok, dataset_shape(file, "/weights", dims) == 3);
  CHECK(ok, dims[0] == NT);
  CHECK(ok, dims[1] == M);
  CHECK(ok, dims[2] == P);
  CHECK(ok, dataset_shape(file, "/mean", dims) == 2);
  CHECK(ok, dims[0] == NT);
  CHECK(ok, dims[1] == P);
  CHECK(ok, dataset_shape(file, "/tcs", dims) == 2);
  CHECK(ok, dims[0] == NT);
  CHECK(ok, dims[1] == M);
  CHECK(ok, dataset_shape(file, "/objective", dims) == 1);
  CHECK(ok, dims[0] == N_OBJECTIVE);
  CHECK(ok, clusters_are_int32(file));
  CHECK(ok, method_attr_is_tcorex(file));
  H5Fclose(file);
  return ok;
}

static void model_round_trip_same_ranks(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char path[256];
  int ok = 1;

  (void)state;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_model(ctx, path);
  if (tcx_ctx_rank(ctx) == 0)
    ok = check_file_layout(path);
  assert_true(tcx_test_all_ok(ok, "model file layout"));
  assert_true(tcx_test_all_ok(check_model(ctx, path), "model read back"));
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

/* Rank 0 alone writes; all ranks read. Then all write and every rank
 * reads the whole model alone. */
static void model_read_on_other_rank_count(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_ctx *alone = NULL;
  char path[256];
  int ok = 1;

  (void)state;
  assert_int_equal(tcx_ctx_create(MPI_COMM_SELF, &alone), TCX_OK);
  tcx_test_temp_path(".h5", path, sizeof(path));
  if (tcx_ctx_rank(ctx) == 0)
    ok = write_model_on(alone, path);
  assert_true(tcx_test_all_ok(ok, "rank 0 wrote the model alone"));
  assert_true(tcx_test_all_ok(check_model(ctx, path),
                              "model written by one rank, read by all"));

  write_model(ctx, path);
  assert_true(tcx_test_all_ok(check_model(alone, path),
                              "model written by all ranks, read by one"));
  assert_int_equal(tcx_ctx_destroy(&alone), TCX_OK);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
}

static void model_attrs_replace_and_limit(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_model *model = NULL;
  char name[32], long_value[300];

  (void)state;
  assert_int_equal(tcx_model_create(ctx, 1, 2, 5, 0, 5, &model), TCX_OK);
  assert_int_equal(tcx_model_set_int(ctx, model, "a", 1), TCX_OK);
  assert_int_equal(tcx_model_set_string(ctx, model, "a", "text"), TCX_OK);
  assert_int_equal(model->n_attrs, 1);
  assert_int_equal(model->attrs[0].type, -1);
  assert_string_equal(model->attrs[0].text, "text");
  memset(long_value, 'x', sizeof(long_value) - 1);
  long_value[sizeof(long_value) - 1] = '\0';
  assert_int_equal(tcx_model_set_string(ctx, model, "b", long_value),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "at most 255 fit"));
  for (int k = 1; k < TCX_MODEL_MAX_ATTRS; k++) {
    snprintf(name, sizeof(name), "attr%d", k);
    assert_int_equal(tcx_model_set_double(ctx, model, name, k), TCX_OK);
  }
  assert_int_equal(tcx_model_set_double(ctx, model, "one_more", 1),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "at most 64"));
  tcx_model_destroy(&model);
  tcx_model_destroy(&model);
}

static void model_read_rejects_other_files(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_model *model = NULL;
  const char *path = TCX_TEST_DATA_DIR "/corex_chunks_p128.h5";

  (void)state;
  assert_int_equal(tcx_model_read(ctx, path, &model), TCX_ERR_INPUT);
  assert_null(model);
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "root attribute \"n_periods\" not found"));
}

/* tcx_model_read names the model file when it is missing or not HDF5. */
static void model_read_names_model_file(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_model *model = NULL;
  const char *text = TCX_SOURCE_DIR "/README.md";

  (void)state;
  assert_int_equal(tcx_model_read(ctx, "/nonexistent/model.h5", &model),
                   TCX_ERR_INPUT);
  assert_null(model);
  assert_string_equal(tcx_ctx_message(ctx),
                      "model file /nonexistent/model.h5 not found; check the "
                      "path");
  assert_int_equal(tcx_model_read(ctx, text, &model), TCX_ERR_INPUT);
  assert_null(model);
  assert_non_null(strstr(tcx_ctx_message(ctx), "model file "));
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "README.md is not an HDF5 file; pass a model file "
                         "written by 'tcorex fit'"));
}

/* The folder of a small tmpfs, "" when mounting was not permitted. */
static char small_disk[256];

/* The NT x M x P model (about 12 KiB) and the room that a parallel write
 * reserves fit on a 256 KiB disk, but a model of 20 periods and 40
 * factors (about 700 KiB) does not. */
enum { SMALL_DISK_KIB = 256, BIG_NT = 20, BIG_M = 40 };

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

/* A model too large for the disk fails on every rank with an output error
 * that names the file and the system error. The old model stays readable,
 * and no HDF5 object stays open, so MPI_Finalize does not crash in HDF5. */
static void model_write_to_full_disk_keeps_old(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_model *model = NULL;
  int64_t begin = -1, n = -1;
  char path[320], temp[330];
  int ok = 1, rc;

  if (!*state)
    skip();
  snprintf(path, sizeof(path), "%s/model.h5", (const char *)*state);
  snprintf(temp, sizeof(temp), "%s.tmp", path);
  write_model(ctx, path);
  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &n),
                   TCX_OK);
  assert_int_equal(tcx_model_create(ctx, BIG_NT, BIG_M, P, begin, n, &model),
                   TCX_OK);
  rc = tcx_model_write(ctx, path, model);
  tcx_model_destroy(&model);
  CHECK(ok, rc == TCX_ERR_OUTPUT);
  CHECK(ok, strstr(tcx_ctx_message(ctx), path) != NULL);
  CHECK(ok, strstr(tcx_ctx_message(ctx), "No space left on device") != NULL);
  CHECK(ok, strstr(tcx_ctx_message(ctx), "free space") != NULL);
  if (!ok)
    fprintf(stderr, "[rank %d] message: %s\n", tcx_ctx_rank(ctx),
            tcx_ctx_message(ctx));
  assert_true(tcx_test_all_ok(ok, "output error with its cause"));
  assert_true(tcx_test_all_ok(access(temp, F_OK) != 0, "PATH.tmp removed"));
  assert_true(tcx_test_all_ok(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0,
                              "no HDF5 object left open"));
  assert_true(tcx_test_all_ok(check_model(ctx, path), "old model unchanged"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(model_round_trip_same_ranks),
      cmocka_unit_test(model_read_on_other_rank_count),
      cmocka_unit_test(model_attrs_replace_and_limit),
      cmocka_unit_test(model_read_rejects_other_files),
      cmocka_unit_test(model_read_names_model_file),
      cmocka_unit_test_setup_teardown(model_write_to_full_disk_keeps_old,
                                      mount_small_disk, unmount_small_disk),
  };

  return tcx_test_run(argc, argv, "model", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
