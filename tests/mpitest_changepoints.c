/* Checks change-point scores, row norms, detections and outputs against
 * dense LAPACK computations of the same p x p matrices. Every rank builds
 * the same factors, keeps its column slice for the library calls and
 * computes the dense reference itself. */
#include <hdf5.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tcorex/block.h"
#include "tcorex/changepoints.h"
#include "tcx_test.h"

enum {
  P = 37, /* variables: 2, 3 and 4 ranks split them unevenly */
  M = 3,  /* factors */
  NT = 7, /* periods; the structure changes between periods 3 and 4 */
  PAIRS = NT - 1
};

/* Relative error allowed against the dense computation. */
static const double tolerance = 1e-9;

typedef struct slice {
  int64_t col_begin;
  int64_t n_local;
} slice;

/* The factors of all periods [NT, M, P] and this rank's [NT, M, n_local]. */
typedef struct factors {
  double full[NT * M * P];
  double local[NT * M * P];
} factors;

static slice local_slice(void)
{
  tcx_ctx *ctx = tcx_test_ctx();
  slice s = {0, 0};

  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &s.col_begin,
                                 &s.n_local),
                   TCX_OK);
  return s;
}

/* Periods 0-3 share one base model and periods 4-6 another, each period
 * adding its own small perturbation. Squared column norms stay below 0.8. */
static void make_factors(slice s, factors *out)
{
  double base[2][M * P], noise[NT * M * P];

  tcx_test_randn(101, base[0], M * P);
  tcx_test_randn(102, base[1], M * P);
  tcx_test_randn(103, noise, NT * M * P);
  for (int t = 0; t < NT; t++) {
    const double *b = base[t < 4 ? 0 : 1];
    double *f = out->full + t * M * P;

    for (int64_t k = 0; k < M * P; k++)
      f[k] = 0.3 * b[k] + 0.03 * noise[t * M * P + k];
    for (int64_t i = 0; i < P; i++) {
      double norm2 = 0.0;

      for (int j = 0; j < M; j++)
        norm2 += f[j * P + i] * f[j * P + i];
      if (norm2 > 0.8)
        for (int j = 0; j < M; j++)
          f[j * P + i] *= sqrt(0.8 / norm2);
    }
    for (int j = 0; j < M; j++)
      memcpy(out->local + (t * M + j) * s.n_local,
             f + j * P + s.col_begin, (size_t)s.n_local * sizeof(double));
  }
}

/* a = the matrix of period t of the given kind, P x P row-major: the
 * correlation F^T F with unit diagonal, its inverse (dpotrf, dpotri), or
 * that inverse scaled to unit diagonal. */
static void dense_matrix(const factors *f, int t, int matrices, double *a)
{
  const double *factor = f->full + t * M * P;

  for (int64_t i = 0; i < P; i++)
    for (int64_t k = 0; k < P; k++) {
      double sum = 0.0;

      for (int j = 0; j < M; j++)
        sum += factor[j * P + i] * factor[j * P + k];
      a[i * P + k] = i == k ? 1.0 : sum;
    }
  if (matrices == TCX_CHANGEPOINTS_CORRELATION)
    return;
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, a, P), 0);
  assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', P, a, P), 0);
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = i + 1; k < P; k++)
      a[i * P + k] = a[k * P + i];
  if (matrices == TCX_CHANGEPOINTS_PRECISION)
    return;
  {
    double scale[P];

    for (int64_t i = 0; i < P; i++)
      scale[i] = 1.0 / sqrt(a[i * P + i]);
    for (int64_t i = 0; i < P; i++)
      for (int64_t k = 0; k < P; k++)
        a[i * P + k] *= scale[i] * scale[k];
  }
}

/* Dense scores and row norms [PAIRS, P] of consecutive differences. */
static void dense_changes(const factors *f, int matrices, int norm,
                          double *scores, double *row_norms)
{
  static double a[P * P], b[P * P], difference[P * P];
  double eigenvalues[P];

  for (int t = 0; t < PAIRS; t++) {
    double sum = 0.0;

    dense_matrix(f, t, matrices, a);
    dense_matrix(f, t + 1, matrices, b);
    for (int64_t i = 0; i < P; i++) {
      double row = 0.0;

      for (int64_t k = 0; k < P; k++) {
        const double d = a[i * P + k] - b[i * P + k];

        difference[i * P + k] = d;
        row += d * d;
      }
      row_norms[t * P + i] = sqrt(row);
      sum += row;
    }
    scores[t] = sqrt(sum);
    if (norm == TCX_CHANGEPOINTS_SPECTRAL) {
      assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', P,
                                     difference, P, eigenvalues),
                       0);
      scores[t] = fmax(fabs(eigenvalues[0]), fabs(eigenvalues[P - 1]));
    }
  }
}

static int compare(const void *a, const void *b)
{
  const double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* Median of count values: the mean of the two middle ones for an even
 * count. */
static double median_of(int count, const double *values)
{
  double sorted[PAIRS];

  memcpy(sorted, values, (size_t)count * sizeof(double));
  qsort(sorted, (size_t)count, sizeof(double), compare);
  if (count % 2 == 0)
    return 0.5 * (sorted[count / 2 - 1] + sorted[count / 2]);
  return sorted[count / 2];
}

/* Flags of the rule score > median + K * 1.4826 * MAD, computed here. */
static void expected_flags(const double *scores, double k, int32_t *flags)
{
  double deviations[PAIRS], median, mad;

  median = median_of(PAIRS, scores);
  for (int t = 0; t < PAIRS; t++)
    deviations[t] = fabs(scores[t] - median);
  mad = median_of(PAIRS, deviations);
  for (int t = 0; t < PAIRS; t++)
    flags[t] = scores[t] > median + k * 1.482602218505602 * mad;
}

static int close_to(double actual, double expected)
{
  return fabs(actual - expected) <= tolerance * fabs(expected);
}

/* Compares scores, this rank's row norms and the flags with the dense
 * computation, then agrees once. */
static void assert_result_matches(const tcx_changepoints_result *result,
                                  const factors *f, slice s, int matrices,
                                  int norm, const char *label)
{
  double scores[PAIRS], rows[PAIRS * P];
  int32_t flags[PAIRS];
  int ok = result->n_pairs == PAIRS;

  dense_changes(f, matrices, norm, scores, rows);
  expected_flags(scores, result->options.threshold, flags);
  for (int t = 0; ok && t < PAIRS; t++) {
    if (!close_to(result->scores[t], scores[t])) {
      fprintf(stderr, "[rank %d] %s: pair %d score %.17g, dense %.17g\n",
              tcx_ctx_rank(tcx_test_ctx()), label, t, result->scores[t],
              scores[t]);
      ok = 0;
    }
    if (result->changes[t] != flags[t]) {
      fprintf(stderr, "[rank %d] %s: pair %d flag %d, expected %d\n",
              tcx_ctx_rank(tcx_test_ctx()), label, t, result->changes[t],
              flags[t]);
      ok = 0;
    }
    for (int64_t i = 0; i < s.n_local; i++) {
      const double expected = rows[t * P + s.col_begin + i];
      const double actual = result->row_norms[t * s.n_local + i];

      if (!close_to(actual, expected)) {
        fprintf(stderr, "[rank %d] %s: pair %d variable %lld row norm "
                "%.17g, dense %.17g\n", tcx_ctx_rank(tcx_test_ctx()), label,
                t, (long long)(s.col_begin + i), actual, expected);
        ok = 0;
      }
    }
  }
  assert_true(tcx_test_all_ok(ok, label));
}

static void compute_case(int matrices, int norm, const char *label)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_options options;
  tcx_changepoints_result result = {0};

  make_factors(s, &f);
  tcx_changepoints_options_default(&options);
  options.matrices = matrices;
  options.norm = norm;
  options.spectral_tolerance = 1e-12;
  assert_int_equal(tcx_changepoints_compute(tcx_test_ctx(), &options, NT, M,
                                            P, s.col_begin, s.n_local,
                                            f.local, &result),
                   TCX_OK);
  assert_result_matches(&result, &f, s, matrices, norm, label);
  tcx_changepoints_result_free(&result);
}

static void partial_correlation_frobenius(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_PARTIAL_CORRELATION,
               TCX_CHANGEPOINTS_FROBENIUS, "partial correlation, Frobenius");
}

static void partial_correlation_spectral(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_PARTIAL_CORRELATION,
               TCX_CHANGEPOINTS_SPECTRAL, "partial correlation, spectral");
}

static void precision_frobenius(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_PRECISION, TCX_CHANGEPOINTS_FROBENIUS,
               "precision, Frobenius");
}

static void precision_spectral(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_PRECISION, TCX_CHANGEPOINTS_SPECTRAL,
               "precision, spectral");
}

static void correlation_frobenius(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_CORRELATION, TCX_CHANGEPOINTS_FROBENIUS,
               "correlation, Frobenius");
}

static void correlation_spectral(void **state)
{
  (void)state;
  compute_case(TCX_CHANGEPOINTS_CORRELATION, TCX_CHANGEPOINTS_SPECTRAL,
               "correlation, spectral");
}

/* The planted change between periods 3 and 4 is the only flagged pair. */
static void planted_change_is_only_flag(void **state)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_options options;
  tcx_changepoints_result result = {0};
  int ok = 1;

  (void)state;
  make_factors(s, &f);
  tcx_changepoints_options_default(&options);
  assert_int_equal(tcx_changepoints_compute(tcx_test_ctx(), &options, NT, M,
                                            P, s.col_begin, s.n_local,
                                            f.local, &result),
                   TCX_OK);
  for (int t = 0; t < PAIRS; t++)
    ok &= result.changes[t] == (t == 3);
  assert_true(tcx_test_all_ok(ok, "only pair (3, 4) flagged"));
  tcx_changepoints_result_free(&result);
}

static void pair_row_norms_match_dense(void **state)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_options options;
  double norms[P], scores[PAIRS], rows[PAIRS * P];
  int ok = 1;

  (void)state;
  make_factors(s, &f);
  tcx_changepoints_options_default(&options);
  assert_int_equal(tcx_changepoints_pair_row_norms(
                       tcx_test_ctx(), &options, M, s.n_local,
                       f.local + 2 * M * s.n_local,
                       f.local + 3 * M * s.n_local, norms),
                   TCX_OK);
  dense_changes(&f, TCX_CHANGEPOINTS_PARTIAL_CORRELATION,
                TCX_CHANGEPOINTS_FROBENIUS, scores, rows);
  for (int64_t i = 0; i < s.n_local; i++)
    ok &= close_to(norms[i], rows[2 * P + s.col_begin + i]);
  assert_true(tcx_test_all_ok(ok, "pair (2, 3) row norms vs dense"));
}

static void compute_rejects_bad_requests(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_options options;
  tcx_changepoints_result result = {0};

  (void)state;
  make_factors(s, &f);
  tcx_changepoints_options_default(&options);
  assert_int_equal(tcx_changepoints_compute(ctx, &options, 1, M, P,
                                            s.col_begin, s.n_local, f.local,
                                            &result),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "at least 2 periods"));
  options.threshold = -1.0;
  assert_int_equal(tcx_changepoints_compute(ctx, &options, NT, M, P,
                                            s.col_begin, s.n_local, f.local,
                                            &result),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "K = -1"));
  assert_null(result.scores);
}

/* Reads a whole dataset of doubles with serial HDF5 and returns its size,
 * or -1 on failure. */
static hssize_t read_doubles(const char *path, const char *name,
                             double *out, hssize_t capacity)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset = file >= 0 ? H5Dopen2(file, name, H5P_DEFAULT) : -1;
  hid_t space = dataset >= 0 ? H5Dget_space(dataset) : -1;
  hssize_t count = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;

  if (count < 0 || count > capacity ||
      H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
              out) < 0)
    count = -1;
  if (space >= 0)
    H5Sclose(space);
  if (dataset >= 0)
    H5Dclose(dataset);
  if (file >= 0)
    H5Fclose(file);
  return count;
}

/* Reads a string attribute of the root group into value. */
static int read_string_attribute(const char *path, const char *name,
                                 char *value, size_t size)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t attribute = file >= 0 ? H5Aopen(file, name, H5P_DEFAULT) : -1;
  hid_t type = attribute >= 0 ? H5Aget_type(attribute) : -1;
  int ok = 0;

  memset(value, 0, size);
  if (type >= 0 && H5Tget_size(type) < size)
    ok = H5Aread(attribute, type, value) >= 0;
  if (type >= 0)
    H5Tclose(type);
  if (attribute >= 0)
    H5Aclose(attribute);
  if (file >= 0)
    H5Fclose(file);
  return ok;
}

/* Computes the default result on the test's factors. */
static void default_result(slice s, factors *f,
                           tcx_changepoints_result *result)
{
  tcx_changepoints_options options;

  make_factors(s, f);
  tcx_changepoints_options_default(&options);
  assert_int_equal(tcx_changepoints_compute(tcx_test_ctx(), &options, NT, M,
                                            P, s.col_begin, s.n_local,
                                            f->local, result),
                   TCX_OK);
}

static void write_hdf5_round_trip(void **state)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_result result = {0};
  char path[256], text[64];
  double scores[PAIRS], rows[PAIRS * P], read_rows[PAIRS * P];
  double read_scores[PAIRS], read_flags[PAIRS], left[PAIRS], right[PAIRS];
  int32_t flags[PAIRS];
  int ok = 1;

  (void)state;
  default_result(s, &f, &result);
  tcx_test_temp_path(".h5", path, sizeof(path));
  assert_int_equal(tcx_changepoints_write(tcx_test_ctx(), path, "model.h5",
                                          &result),
                   TCX_OK);
  dense_changes(&f, TCX_CHANGEPOINTS_PARTIAL_CORRELATION,
                TCX_CHANGEPOINTS_FROBENIUS, scores, rows);
  expected_flags(scores, TCX_CHANGEPOINTS_THRESHOLD, flags);

  ok &= read_doubles(path, "/scores", read_scores, PAIRS) == PAIRS;
  ok &= read_doubles(path, "/changes", read_flags, PAIRS) == PAIRS;
  ok &= read_doubles(path, "/left_period", left, PAIRS) == PAIRS;
  ok &= read_doubles(path, "/right_period", right, PAIRS) == PAIRS;
  ok &= read_doubles(path, "/row_norms", read_rows, PAIRS * P) == PAIRS * P;
  assert_true(tcx_test_all_ok(ok, "datasets of the change-point file"));
  for (int t = 0; t < PAIRS; t++) {
    ok &= close_to(read_scores[t], scores[t]);
    ok &= read_flags[t] == flags[t];
    ok &= left[t] == t && right[t] == t + 1;
  }
  for (int64_t k = 0; k < PAIRS * P; k++)
    ok &= close_to(read_rows[k], rows[k]);
  assert_true(tcx_test_all_ok(ok, "file values vs dense"));

  ok = read_string_attribute(path, "format", text, sizeof(text)) &&
       strcmp(text, "tcorex-changepoints") == 0;
  ok &= read_string_attribute(path, "matrices", text, sizeof(text)) &&
        strcmp(text, "partial-correlation") == 0;
  ok &= read_string_attribute(path, "norm", text, sizeof(text)) &&
        strcmp(text, "frobenius") == 0;
  assert_true(tcx_test_all_ok(ok, "attributes of the change-point file"));

  MPI_Barrier(MPI_COMM_WORLD);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    remove(path);
  tcx_changepoints_result_free(&result);
}

static void csv_lists_each_pair(void **state)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_result result = {0};
  double scores[PAIRS], rows[PAIRS * P];
  int32_t flags[PAIRS];
  char path[256], line[256];
  int ok = 1;

  (void)state;
  default_result(s, &f, &result);
  tcx_test_temp_path(".csv", path, sizeof(path));
  assert_int_equal(tcx_changepoints_write_csv(tcx_test_ctx(), path, &result),
                   TCX_OK);
  dense_changes(&f, TCX_CHANGEPOINTS_PARTIAL_CORRELATION,
                TCX_CHANGEPOINTS_FROBENIUS, scores, rows);
  expected_flags(scores, TCX_CHANGEPOINTS_THRESHOLD, flags);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    FILE *file = fopen(path, "r");
    int lines = 0;

    ok = file != NULL;
    if (file && fgets(line, sizeof(line), file))
      ok &= strcmp(line, "left_period,right_period,score,change\n") == 0;
    while (ok && file && fgets(line, sizeof(line), file)) {
      int left = -1, right = -1, change = -1;
      double score = NAN;

      ok &= sscanf(line, "%d,%d,%lf,%d", &left, &right, &score, &change) ==
            4;
      ok &= left == lines && right == lines + 1 && lines < PAIRS;
      ok &= lines < PAIRS && close_to(score, scores[lines]) &&
            change == flags[lines];
      if (!ok)
        fprintf(stderr, "unexpected CSV line %d: %s", lines + 1, line);
      lines++;
    }
    ok &= lines == PAIRS;
    if (file)
      fclose(file);
    remove(path);
  }
  assert_true(tcx_test_all_ok(ok, "CSV header and rows"));
  tcx_changepoints_result_free(&result);
}

static void plot_writes_png(void **state)
{
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_result result = {0};
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a,
                                      '\n'};
  char path[256], temporary[300];
  int ok = 1;

  (void)state;
  default_result(s, &f, &result);
  tcx_test_temp_path(".png", path, sizeof(path));
  assert_int_equal(tcx_changepoints_plot(tcx_test_ctx(), path, &result),
                   TCX_OK);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0) {
    unsigned char header[8] = {0};
    struct stat info;
    FILE *file = fopen(path, "rb");

    ok = file && fread(header, 1, 8, file) == 8 &&
         memcmp(header, signature, 8) == 0;
    ok &= stat(path, &info) == 0 && info.st_size > 1000;
    snprintf(temporary, sizeof(temporary), "%s.tmp.png", path);
    ok &= stat(temporary, &info) != 0;
    if (file)
      fclose(file);
    remove(path);
  }
  assert_true(tcx_test_all_ok(ok, "plot is a PNG file"));
  tcx_changepoints_result_free(&result);
}

static void plot_rejects_missing_folder(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  static factors f;
  tcx_changepoints_result result = {0};

  (void)state;
  default_result(s, &f, &result);
  assert_int_equal(tcx_changepoints_plot(ctx, "/nonexistent/cp.png",
                                         &result),
                   TCX_ERR_OUTPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "/nonexistent/cp.png"));
  tcx_changepoints_result_free(&result);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(partial_correlation_frobenius),
      cmocka_unit_test(partial_correlation_spectral),
      cmocka_unit_test(precision_frobenius),
      cmocka_unit_test(precision_spectral),
      cmocka_unit_test(correlation_frobenius),
      cmocka_unit_test(correlation_spectral),
      cmocka_unit_test(planted_change_is_only_flag),
      cmocka_unit_test(pair_row_norms_match_dense),
      cmocka_unit_test(compute_rejects_bad_requests),
      cmocka_unit_test(write_hdf5_round_trip),
      cmocka_unit_test(csv_lists_each_pair),
      cmocka_unit_test(plot_writes_png),
      cmocka_unit_test(plot_rejects_missing_folder),
  };

  return tcx_test_run(argc, argv, "changepoints", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
