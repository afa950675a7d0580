/* Column preprocessing against values worked out by hand (small matrices)
 * and against plain dense loops written in this file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tcorex/prep.h"
#include "tcx_test.h"

#define EXACT_TOL 1e-14

/* Asserts |actual - expected| <= tol * max(1, |expected|), printing both. */
#define assert_close(actual, expected, tol) \
  tcx_test_assert_close_all((actual), (expected), (tol), #actual)

enum { N_ROWS = 5, N_COLS = 4 };

/* Column 0 has two missing entries, column 1 is constant, column 2 has one
 * missing entry, column 3 is complete. */
static void fill_small(double *x)
{
  const double values[N_ROWS * N_COLS] = {
      1.0, 7.0, 2.0,  -1.0, /* row 0 */
      NAN, 7.0, 4.0,  0.0,  /* row 1 */
      3.0, 7.0, NAN,  1.0,  /* row 2 */
      5.0, 7.0, 6.0,  2.0,  /* row 3 */
      NAN, 7.0, 8.0,  3.0,  /* row 4 */
  };

  memcpy(x, values, sizeof(values));
}

/* By hand: column 0 observes 1, 3, 5 (mean 3), imputed to 1 3 3 5 3 with
 * squared deviations 4 0 0 4 0, so std = sqrt(8/5). Column 2 observes
 * 2 4 6 8 (mean 5), imputed to 2 4 5 6 8, std = sqrt((9+1+0+1+9)/5) = 2.
 * Column 3: mean 1, std = sqrt((4+1+0+1+4)/5) = sqrt(2). */
static void standard_matches_hand_values(void **state)
{
  double x[N_ROWS * N_COLS], mean[N_COLS], std[N_COLS];
  const double expected_mean[N_COLS] = {3.0, 7.0, 5.0, 1.0};
  const double expected_std[N_COLS] = {sqrt(1.6), 1e-10, 2.0, sqrt(2.0)};
  const double imputed[N_ROWS * N_COLS] = {
      1.0, 7.0, 2.0, -1.0, 3.0, 7.0, 4.0, 0.0, 3.0, 7.0,
      5.0, 1.0, 5.0, 7.0, 6.0, 2.0, 3.0, 7.0, 8.0, 3.0,
  };
  int64_t n_constant = -1;

  (void)state;
  fill_small(x);
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(),
                                        TCX_GAUSSIANIZE_STANDARD, N_ROWS,
                                        N_COLS, 0, x, mean, std, &n_constant),
                   TCX_OK);
  assert_int_equal(n_constant, 1);
  for (int j = 0; j < N_COLS; j++) {
    assert_close(mean[j], expected_mean[j], EXACT_TOL);
    assert_close(std[j], expected_std[j], EXACT_TOL);
  }
  for (int k = 0; k < N_ROWS * N_COLS; k++) {
    const int j = k % N_COLS;
    const double want = (imputed[k] - expected_mean[j]) / expected_std[j];

    assert_close(x[k], want, EXACT_TOL);
  }
}

/* Every standardised column has mean 0 and second moment 1, except the
 * constant one, which becomes 0. */
static void standard_gives_unit_moments(void **state)
{
  double x[N_ROWS * N_COLS], mean[N_COLS], std[N_COLS];
  int64_t n_constant = -1;

  (void)state;
  fill_small(x);
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(),
                                        TCX_GAUSSIANIZE_STANDARD, N_ROWS,
                                        N_COLS, 0, x, mean, std, &n_constant),
                   TCX_OK);
  for (int j = 0; j < N_COLS; j++) {
    double first = 0.0, second = 0.0;

    for (int row = 0; row < N_ROWS; row++) {
      first += x[row * N_COLS + j] / N_ROWS;
      second += x[row * N_COLS + j] * x[row * N_COLS + j] / N_ROWS;
    }
    assert_close(first, 0.0, 1e-14);
    assert_close(second, j == 1 ? 0.0 : 1.0, 1e-14);
  }
}

static void none_only_imputes(void **state)
{
  double x[N_ROWS * N_COLS], mean[N_COLS], std[N_COLS];
  int64_t n_constant = -1;

  (void)state;
  fill_small(x);
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(), TCX_GAUSSIANIZE_NONE,
                                        N_ROWS, N_COLS, 0, x, mean, std,
                                        &n_constant),
                   TCX_OK);
  assert_int_equal(n_constant, 1);
  for (int j = 0; j < N_COLS; j++) {
    assert_close(mean[j], 0.0, 0.0);
    assert_close(std[j], 1.0, 0.0);
  }
  assert_close(x[1 * N_COLS + 0], 3.0, EXACT_TOL);
  assert_close(x[4 * N_COLS + 0], 3.0, EXACT_TOL);
  assert_close(x[2 * N_COLS + 2], 5.0, EXACT_TOL);
  assert_close(x[3 * N_COLS + 3], 2.0, 0.0);
}

/* Outliers mode on a column of 19 zeros and one 100: mean 5, population
 * std sqrt((19 * 25 + 95^2) / 20) = sqrt(475). The large value standardises
 * to 95 / sqrt(475) = 4.3589 > 4, which becomes 4 + tanh(0.3589). The zeros
 * standardise to -5 / sqrt(475) and stay. */
static void outliers_squashes_large_values(void **state)
{
  enum { ROWS = 20 };
  double x[ROWS], mean, std;
  const double expected_std = sqrt(475.0);
  const double large = 95.0 / expected_std;
  int64_t n_constant = -1;

  (void)state;
  for (int row = 0; row < ROWS; row++)
    x[row] = row == 7 ? 100.0 : 0.0;
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(),
                                        TCX_GAUSSIANIZE_OUTLIERS, ROWS, 1, 0,
                                        x, &mean, &std, &n_constant),
                   TCX_OK);
  assert_int_equal(n_constant, 0);
  assert_close(mean, 5.0, EXACT_TOL);
  assert_close(std, expected_std, EXACT_TOL);
  assert_true(large > 4.0);
  assert_close(x[7], 4.0 + tanh(large - 4.0), EXACT_TOL);
  for (int row = 0; row < ROWS; row++)
    if (row != 7)
      assert_close(x[row], -5.0 / expected_std, EXACT_TOL);
}

/* A symmetric case: the negative tail is squashed with the mirrored rule. */
static void outliers_squashes_negative_tail(void **state)
{
  enum { ROWS = 20 };
  double x[ROWS], mean, std;
  const double expected_std = sqrt(475.0);
  const double large = 95.0 / expected_std;
  int64_t n_constant = -1;

  (void)state;
  for (int row = 0; row < ROWS; row++)
    x[row] = row == 3 ? -100.0 : 0.0;
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(),
                                        TCX_GAUSSIANIZE_OUTLIERS, ROWS, 1, 0,
                                        x, &mean, &std, &n_constant),
                   TCX_OK);
  assert_close(mean, -5.0, EXACT_TOL);
  assert_close(x[3], -4.0 - tanh(large - 4.0), EXACT_TOL);
  assert_close(x[0], 5.0 / expected_std, EXACT_TOL);
}

/* Larger random block with scattered NaN against a dense two-pass loop. */
static void standard_matches_dense_loop(void **state)
{
  enum { ROWS = 33, COLS = 17 };
  double x[ROWS * COLS], original[ROWS * COLS], mean[COLS], std[COLS];
  int64_t n_constant = -1;

  (void)state;
  tcx_test_randn(5, original, ROWS * COLS);
  for (int k = 0; k < ROWS * COLS; k++) {
    original[k] = 3.0 + 2.5 * original[k];
    if (k % 7 == 3)
      original[k] = NAN;
  }
  memcpy(x, original, sizeof(x));
  assert_int_equal(tcx_prep_standardize(tcx_test_ctx(),
                                        TCX_GAUSSIANIZE_STANDARD, ROWS, COLS,
                                        0, x, mean, std, &n_constant),
                   TCX_OK);
  assert_int_equal(n_constant, 0);
  for (int j = 0; j < COLS; j++) {
    double sum = 0.0, squares = 0.0;
    int count = 0;

    for (int row = 0; row < ROWS; row++)
      if (!isnan(original[row * COLS + j])) {
        sum += original[row * COLS + j];
        count++;
      }
    assert_close(mean[j], sum / count, 1e-12);
    for (int row = 0; row < ROWS; row++)
      if (!isnan(original[row * COLS + j]))
        squares += pow(original[row * COLS + j] - sum / count, 2);
    assert_close(std[j], sqrt(squares / ROWS), 1e-12);
    for (int row = 0; row < ROWS; row++) {
      const double raw = isnan(original[row * COLS + j])
                             ? sum / count
                             : original[row * COLS + j];

      assert_close(x[row * COLS + j],
                          (raw - sum / count) / sqrt(squares / ROWS), 1e-12);
    }
  }
}

/* The message names the global column: local column 2 of a block that
 * starts at global column 5. */
static void all_missing_column_is_rejected(void **state)
{
  enum { ROWS = 3, COLS = 3 };
  double x[ROWS * COLS] = {1.0, 2.0, NAN, 3.0, 4.0, NAN, 5.0, 6.0, NAN};
  double mean[COLS], std[COLS];
  int64_t n_constant = -1;
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  assert_int_equal(tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD, ROWS,
                                        COLS, 5, x, mean, std, &n_constant),
                   TCX_ERR_INPUT);
  assert_string_equal(tcx_ctx_message(ctx),
                      "variable 7 (0-based input column) has no observed "
                      "value: all 3 rows are missing (NaN); remove the "
                      "variable from the input or mask it out");
}

static void infinite_value_is_rejected(void **state)
{
  double x[4] = {1.0, 2.0, INFINITY, 4.0};
  double mean[2], std[2];
  int64_t n_constant = -1;
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  assert_int_equal(tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD, 2, 2,
                                        10, x, mean, std, &n_constant),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "variable 10 "));
  assert_non_null(strstr(tcx_ctx_message(ctx), "row 1"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(standard_matches_hand_values),
      cmocka_unit_test(standard_gives_unit_moments),
      cmocka_unit_test(none_only_imputes),
      cmocka_unit_test(outliers_squashes_large_values),
      cmocka_unit_test(outliers_squashes_negative_tail),
      cmocka_unit_test(standard_matches_dense_loop),
      cmocka_unit_test(all_missing_column_is_rejected),
      cmocka_unit_test(infinite_value_is_rejected),
  };

  return tcx_test_run(argc, argv, "prep", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
