/* CSV conversion: small tables written here, the HDF5 output read back with
 * plain HDF5 calls and compared with the values typed in the table. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "tcorex/csv.h"
#include "tcx_test.h"

static int file_exists(const char *path)
{
  struct stat info;

  return stat(path, &info) == 0;
}

/* Writes text to a new temporary file named into path. */
static void write_text(const char *text, char *path, size_t size)
{
  FILE *file;

  tcx_test_temp_path(".csv", path, size);
  file = fopen(path, "wb");
  assert_non_null(file);
  assert_int_equal(fputs(text, file) >= 0, 1);
  assert_int_equal(fclose(file), 0);
}

/* Reads /data of a converted file; checks its shape first. */
static double *read_data(const char *path, hsize_t rows, hsize_t cols)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, "/data", H5P_DEFAULT);
  hid_t space = H5Dget_space(set);
  hid_t type = H5Dget_type(set);
  hsize_t dims[2] = {0, 0};
  double *values = calloc(rows * cols, sizeof(double));

  assert_non_null(values);
  assert_int_equal(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, NULL);
  assert_int_equal(dims[0], rows);
  assert_int_equal(dims[1], cols);
  assert_int_equal(H5Tget_class(type), H5T_FLOAT);
  assert_int_equal(H5Tget_size(type), 8);
  assert_true(H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      values) >= 0);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
  return values;
}

/* Returns 1 when the converted file has a /columns dataset. */
static int has_columns(const char *path)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  const htri_t exists = H5Lexists(file, "/columns", H5P_DEFAULT);

  H5Fclose(file);
  return exists > 0;
}

/* Checks /columns of a converted file against names. */
static void check_columns(const char *path, const char *const *names,
                          int count)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t set = H5Dopen2(file, "/columns", H5P_DEFAULT);
  hid_t type = H5Dget_type(set);
  const size_t width = H5Tget_size(type);
  char *text = calloc((size_t)count, width);

  assert_non_null(text);
  assert_int_equal(H5Tget_class(type), H5T_STRING);
  assert_true(H5Dread(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
  for (int c = 0; c < count; c++)
    assert_string_equal(text + (size_t)c * width, names[c]);
  free(text);
  H5Tclose(type);
  H5Dclose(set);
  H5Fclose(file);
}

/* Compares values with expected, where NaN matches only NaN. */
static void check_values(const double *values, const double *expected,
                         int count)
{
  for (int k = 0; k < count; k++) {
    if (isnan(expected[k]))
      assert_true(isnan(values[k]));
    else
      assert_true(values[k] == expected[k]);
  }
}

static void csv_header_quotes_and_missing(void **state)
{
  const char *text = "\"time\",\"a b\", c\n"
                     "1, 2.5 ,NA\n"
                     "\n"
                     "-3e2, ,nan\n"
                     "4,\"5\",\"6\"\n";
  const double expected[9] = {1, 2.5, NAN, -300, NAN, NAN, 4, 5, 6};
  const char *names[3] = {"time", "a b", "c"};
  char csv[256], out[256], temp[300];
  double *values;

  (void)state;
  write_text(text, csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  snprintf(temp, sizeof(temp), "%s.tmp", out);
  assert_int_equal(tcx_csv_convert(tcx_test_ctx(), csv, out, -1), TCX_OK);
  assert_false(file_exists(temp));
  values = read_data(out, 3, 3);
  check_values(values, expected, 9);
  check_columns(out, names, 3);
  free(values);
  unlink(csv);
  unlink(out);
}

static void csv_numeric_first_line_is_data(void **state)
{
  const char *text = "1,2\r\n3,4\r\n\r\n";
  const double expected[4] = {1, 2, 3, 4};
  char csv[256], out[256];
  double *values;

  (void)state;
  write_text(text, csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_csv_convert(tcx_test_ctx(), csv, out, -1), TCX_OK);
  values = read_data(out, 2, 2);
  check_values(values, expected, 4);
  assert_false(has_columns(out));
  free(values);
  unlink(csv);
  unlink(out);
}

static void csv_forced_header_and_bom(void **state)
{
  const char *text = "\xEF\xBB\xBF" "10,20\n3,4\n";
  const double expected[2] = {3, 4};
  const char *names[2] = {"10", "20"};
  char csv[256], out[256];
  double *values;

  (void)state;
  write_text(text, csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_csv_convert(tcx_test_ctx(), csv, out, 1), TCX_OK);
  values = read_data(out, 1, 2);
  check_values(values, expected, 2);
  check_columns(out, names, 2);
  free(values);
  unlink(csv);
  unlink(out);
}

/* Converts text expecting failure; checks the message, and that neither
 * the output nor its temporary file exists. */
static void expect_csv_error(const char *text, int has_header,
                             const char *fragment)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char csv[256], out[256], temp[300];
  int rc;

  write_text(text, csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  snprintf(temp, sizeof(temp), "%s.tmp", out);
  rc = tcx_csv_convert(ctx, csv, out, has_header);
  if (!strstr(tcx_ctx_message(ctx), fragment))
    fprintf(stderr, "message: %s\nexpected: %s\n", tcx_ctx_message(ctx),
            fragment);
  assert_int_equal(rc, TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), fragment));
  assert_non_null(strstr(tcx_ctx_message(ctx), csv));
  assert_false(file_exists(out));
  assert_false(file_exists(temp));
  unlink(csv);
}

static void csv_bad_field_names_line_column(void **state)
{
  (void)state;
  expect_csv_error("x,y\n1,2\n3,abc\n", -1,
                   "line 3, column 2 (\"y\"): \"abc\" is not a number");
  expect_csv_error("1,2\n3,4x\n", 0, "line 2, column 2: \"4x\"");
  expect_csv_error("a,b\n1,2\n", 0, "line 1, column 1: \"a\"");
}

static void csv_rejects_malformed_tables(void **state)
{
  (void)state;
  expect_csv_error("1,2\n3\n", -1, "line 2 has 1 fields but line 1 has 2");
  expect_csv_error("1,inf\n", -1, "line 1, column 2: \"inf\" is infinite");
  expect_csv_error("1,1e999\n", -1, "\"1e999\" is infinite");
  expect_csv_error("\"a,b\n1,2\n", -1, "line 1, column 1: the quote is not "
                                       "closed");
  expect_csv_error("\"a\"x,b\n", -1, "line 1, column 1: text after the "
                                     "closing quote");
  expect_csv_error("a,b\n\n", -1, "has no data lines");
}

/* Writes length bytes, NUL bytes included, to a new temporary file named
 * into path. */
static void write_bytes(const char *bytes, size_t length, char *path,
                        size_t size)
{
  FILE *file;

  tcx_test_temp_path(".csv", path, size);
  file = fopen(path, "wb");
  assert_non_null(file);
  assert_int_equal(fwrite(bytes, 1, length, file), length);
  assert_int_equal(fclose(file), 0);
}

static void csv_rejects_binary_input(void **state)
{
  static const char nul[] = "a,b\n1,\0\n";
  static const char gzip[] = "\x1f\x8b\x08\x00\x00\x00";
  const char *const expected[2] = {
      "line 2 contains the control byte 0x00, so it is not a text table",
      "line 1 contains the control byte 0x1f, so it is not a text table"};
  const char *const bytes[2] = {nul, gzip};
  const size_t lengths[2] = {sizeof(nul) - 1, sizeof(gzip) - 1};
  tcx_ctx *ctx = tcx_test_ctx();
  char csv[256], out[256];

  (void)state;
  for (int k = 0; k < 2; k++) {
    write_bytes(bytes[k], lengths[k], csv, sizeof(csv));
    tcx_test_temp_path(".h5", out, sizeof(out));
    assert_int_equal(tcx_csv_convert(ctx, csv, out, -1), TCX_ERR_INPUT);
    if (!strstr(tcx_ctx_message(ctx), expected[k]))
      fprintf(stderr, "message: %s\n", tcx_ctx_message(ctx));
    assert_non_null(strstr(tcx_ctx_message(ctx), expected[k]));
    assert_false(file_exists(out));
    unlink(csv);
  }
}

/* Tables separated by semicolons or tabs fail with a hint; a table with
 * commas gets none. */
static void csv_other_separators_get_hint(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char csv[256], out[256];

  (void)state;
  expect_csv_error("a;b;c\n1;2;3\n", -1,
                   "\"1;2;3\" is not a number; write a number, or leave the "
                   "field empty or write NA for a missing value. The first "
                   "line has semicolons but no commas: only commas separate "
                   "fields, so replace the semicolons with commas");
  expect_csv_error("1\t2\n3\t4\n", 0,
                   "The first line has tabs but no commas: only commas "
                   "separate fields, so replace the tabs with commas");
  write_text("a,b\n1;2,3\n", csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_csv_convert(ctx, csv, out, -1), TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "\"1;2\" is not a number"));
  assert_null(strstr(tcx_ctx_message(ctx), "only commas"));
  unlink(csv);
}

/* The folder of a small tmpfs, "" when mounting was not permitted. */
static char small_disk[256];

/* 256 KiB hold the 3 x 2 table, not the 200 x 200 one (313 KiB). */
enum { SMALL_DISK_KIB = 256, BIG_SIDE = 200 };

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

/* Checks a failed conversion to out on a full disk: an output error naming
 * out and the system error, no out.tmp, and out still holding the 3 x 2
 * table of csv_full_disk_keeps_old_file. */
static void check_full_disk_error(tcx_ctx *ctx, int rc, const char *out)
{
  const double expected[6] = {1, 2, 3, 4, 5, 6};
  char temp[320];
  double *values;

  snprintf(temp, sizeof(temp), "%s.tmp", out);
  if (!strstr(tcx_ctx_message(ctx), "No space left on device (errno 28)"))
    fprintf(stderr, "message: %s\n", tcx_ctx_message(ctx));
  assert_int_equal(rc, TCX_ERR_OUTPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), out));
  assert_non_null(
      strstr(tcx_ctx_message(ctx), "No space left on device (errno 28)"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "free space"));
  assert_false(file_exists(temp));
  values = read_data(out, 3, 2);
  check_values(values, expected, 6);
  free(values);
  assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* A table too large for the disk, then a disk full before the output is
 * created: both fail with an output error and keep the old output. */
static void csv_full_disk_keeps_old_file(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char small[256], big[256], out[320];
  FILE *file;

  if (!*state)
    skip();
  snprintf(out, sizeof(out), "%s/table.h5", (const char *)*state);
  write_text("1,2\n3,4\n5,6\n", small, sizeof(small));
  tcx_test_temp_path(".csv", big, sizeof(big));
  file = fopen(big, "w");
  assert_non_null(file);
  for (int r = 0; r < BIG_SIDE; r++)
    for (int c = 0; c < BIG_SIDE; c++)
      fprintf(file, "%d.25%c", r * BIG_SIDE + c, c + 1 < BIG_SIDE ? ',' : '\n');
  assert_int_equal(fclose(file), 0);

  assert_int_equal(tcx_csv_convert(ctx, small, out, 0), TCX_OK);
  check_full_disk_error(ctx, tcx_csv_convert(ctx, big, out, 0), out);
  assert_true(tcx_test_fill_disk(*state));
  check_full_disk_error(ctx, tcx_csv_convert(ctx, small, out, 0), out);
  unlink(small);
  unlink(big);
}

/* The library reports no result, even at TCX_LOG_PROGRESS: the program
 * prints one line for a conversion. */
static void csv_convert_logs_nothing(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int level = tcx_ctx_log_level(ctx);
  char csv[256], out[256], capture[256];
  struct stat info;
  int saved, descriptor, rc;

  (void)state;
  write_text("a,b\n1,2\n3,4\n", csv, sizeof(csv));
  tcx_test_temp_path(".h5", out, sizeof(out));
  tcx_test_temp_path(".stderr", capture, sizeof(capture));
  tcx_ctx_set_log_level(ctx, TCX_LOG_PROGRESS);
  fflush(stderr);
  saved = dup(STDERR_FILENO);
  descriptor = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(saved >= 0);
  assert_true(descriptor >= 0);
  assert_true(dup2(descriptor, STDERR_FILENO) >= 0);
  rc = tcx_csv_convert(ctx, csv, out, -1);
  fflush(stderr);
  assert_true(dup2(saved, STDERR_FILENO) >= 0);
  close(saved);
  close(descriptor);
  tcx_ctx_set_log_level(ctx, level);
  assert_int_equal(rc, TCX_OK);
  assert_int_equal(stat(capture, &info), 0);
  assert_int_equal(info.st_size, 0);
  unlink(capture);
  unlink(csv);
  unlink(out);
}

static void csv_missing_file(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  char out[256];

  (void)state;
  tcx_test_temp_path(".h5", out, sizeof(out));
  assert_int_equal(tcx_csv_convert(ctx, "/nonexistent/table.csv", out, -1),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "cannot find CSV file /nonexistent/table.csv"));
  assert_false(file_exists(out));
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
      cmocka_unit_test(csv_header_quotes_and_missing),
      cmocka_unit_test(csv_numeric_first_line_is_data),
      cmocka_unit_test(csv_forced_header_and_bom),
      cmocka_unit_test(csv_bad_field_names_line_column),
      cmocka_unit_test(csv_rejects_malformed_tables),
      cmocka_unit_test(csv_missing_file),
      cmocka_unit_test(csv_convert_logs_nothing),
      cmocka_unit_test(csv_rejects_binary_input),
      cmocka_unit_test(csv_other_separators_get_hint),
      cmocka_unit_test_setup_teardown(csv_full_disk_keeps_old_file,
                                      mount_small_disk, unmount_small_disk),
      cmocka_unit_test(hdf5_objects_all_closed),
  };

  return tcx_test_run(argc, argv, "csv", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
