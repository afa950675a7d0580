/* Checks the simulator against its own ground truth by statistics of many
 * rows, and checks where the sudden change falls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/simulate.h"
#include "tcx_test.h"

/* Statistical checks allow this many standard errors. With about 500
 * checked moments, a correct generator fails one with probability about
 * 3e-4 for a given seed. */
static const double z_limit = 5.0;

enum { SMALL_P = 10 };

static tcx_simulate_options small_options(void)
{
  tcx_simulate_options opts;

  tcx_simulate_options_default(&opts);
  opts.n_vars = SMALL_P;
  opts.n_factors = 3;
  opts.n_periods = 2;
  opts.train_rows = 20000;
  opts.test_rows = 20000;
  opts.validation_rows = 20000;
  opts.seed = 7;
  return opts;
}

/* sigma = diag(noise_var) + L^T L of one period, dense SMALL_P x SMALL_P. */
static void truth_covariance(const tcx_simulate_options *opts, int period,
                             double *sigma)
{
  double loading[SMALL_P], noise_var[SMALL_P];
  int32_t factor[SMALL_P];

  assert_int_equal(tcx_simulate_truth(tcx_test_ctx(), opts, period, 0,
                                      SMALL_P, loading, noise_var, factor),
                   TCX_OK);
  for (int i = 0; i < SMALL_P; i++) {
    for (int k = 0; k < SMALL_P; k++) {
      double value = factor[i] == factor[k] ? loading[i] * loading[k] : 0.0;

      if (i == k)
        value += noise_var[i];
      sigma[i * SMALL_P + k] = value;
    }
  }
}

/* Compares the sample means and second moments of one period of a block
 * with the truth: for zero-mean Gaussian x, the mean of x_i x_k over n rows
 * has variance (S_ii S_kk + S_ik^2) / n. */
static void assert_period_matches_truth(const tcx_simulate_options *opts,
                                        const tcx_block *block, int period)
{
  const int64_t begin = block->period_begin[period];
  const int64_t n = block->period_begin[period + 1] - begin;
  double sigma[SMALL_P * SMALL_P];

  truth_covariance(opts, period, sigma);
  for (int i = 0; i < SMALL_P; i++) {
    double mean = 0.0;

    for (int64_t r = begin; r < begin + n; r++)
      mean += block->data[r * SMALL_P + i] / (double)n;
    if (fabs(mean) > z_limit * sqrt(sigma[i * SMALL_P + i] / (double)n))
      fail_msg("period %d: mean of variable %d is %g, expected 0 (variance "
               "%g)",
               period, i, mean, sigma[i * SMALL_P + i]);
  }
  for (int i = 0; i < SMALL_P; i++) {
    for (int k = i; k < SMALL_P; k++) {
      const double expected = sigma[i * SMALL_P + k];
      const double standard_error =
          sqrt((sigma[i * SMALL_P + i] * sigma[k * SMALL_P + k] +
                expected * expected) /
               (double)n);
      double moment = 0.0;

      for (int64_t r = begin; r < begin + n; r++)
        moment += block->data[r * SMALL_P + i] * block->data[r * SMALL_P + k];
      moment /= (double)n;
      if (fabs(moment - expected) > z_limit * standard_error)
        fail_msg("period %d: sample covariance (%d, %d) is %g, expected %g "
                 "(standard error %g)",
                 period, i, k, moment, expected, standard_error);
    }
  }
}

/* The check above is only meaningful when some pair of variables is
 * strongly correlated. */
static void assert_truth_has_structure(const tcx_simulate_options *opts,
                                       int period)
{
  double sigma[SMALL_P * SMALL_P];
  double largest = 0.0;

  truth_covariance(opts, period, sigma);
  for (int i = 0; i < SMALL_P; i++) {
    for (int k = 0; k < i; k++)
      largest = fmax(largest, fabs(sigma[i * SMALL_P + k]) /
                                  sqrt(sigma[i * SMALL_P + i] *
                                       sigma[k * SMALL_P + k]));
  }
  assert_true(largest > 0.5);
}

static void sample_covariance_matches_truth(const tcx_simulate_options *opts)
{
  for (int part = TCX_SIMULATE_TRAIN; part <= TCX_SIMULATE_VALIDATION;
       part++) {
    tcx_block *block = NULL;

    assert_int_equal(tcx_simulate_block(tcx_test_ctx(), opts, part, 0,
                                        SMALL_P, &block),
                     TCX_OK);
    for (int t = 0; t < opts->n_periods; t++) {
      assert_truth_has_structure(opts, t);
      assert_period_matches_truth(opts, block, t);
    }
    tcx_block_destroy(&block);
  }
}

static void sample_covariance_random_sudden(void **state)
{
  const tcx_simulate_options opts = small_options();

  (void)state;
  sample_covariance_matches_truth(&opts);
}

static void sample_covariance_blocks_none(void **state)
{
  tcx_simulate_options opts = small_options();

  (void)state;
  opts.assignment = TCX_SIMULATE_ASSIGN_BLOCKS;
  opts.change = TCX_SIMULATE_CHANGE_NONE;
  opts.snr_min = 1.0;
  opts.scale_min = 0.5;
  opts.scale_max = 2.0;
  sample_covariance_matches_truth(&opts);
}

static void block_has_requested_shape(void **state)
{
  tcx_simulate_options opts = small_options();
  tcx_block *block = NULL;

  (void)state;
  opts.n_periods = 3;
  opts.train_rows = 5;
  opts.test_rows = 7;
  assert_int_equal(tcx_simulate_block(tcx_test_ctx(), &opts,
                                      TCX_SIMULATE_TEST, 2, 4, &block),
                   TCX_OK);
  assert_int_equal(block->n_rows, 21);
  assert_int_equal(block->n_vars, SMALL_P);
  assert_int_equal(block->col_begin, 2);
  assert_int_equal(block->n_local, 4);
  assert_int_equal(block->n_periods, 3);
  for (int t = 0; t <= 3; t++)
    assert_int_equal(block->period_begin[t], 7 * t);
  tcx_block_destroy(&block);
}

/* Truth of all variables of one period, for comparisons between periods. */
typedef struct period_truth {
  double loading[64];
  double noise_var[64];
  int32_t factor[64];
} period_truth;

static void get_truth(const tcx_simulate_options *opts, int period,
                      period_truth *truth)
{
  assert_true(opts->n_vars <= 64);
  assert_int_equal(tcx_simulate_truth(tcx_test_ctx(), opts, period, 0,
                                      opts->n_vars, truth->loading,
                                      truth->noise_var, truth->factor),
                   TCX_OK);
}

static int truths_equal(const tcx_simulate_options *opts,
                        const period_truth *a, const period_truth *b)
{
  for (int64_t i = 0; i < opts->n_vars; i++) {
    if (a->loading[i] != b->loading[i] || a->noise_var[i] != b->noise_var[i] ||
        a->factor[i] != b->factor[i])
      return 0;
  }
  return 1;
}

/* Counts variables whose loading and noise variance both changed. */
static int64_t changed_variables(const tcx_simulate_options *opts,
                                 const period_truth *a, const period_truth *b)
{
  int64_t count = 0;

  for (int64_t i = 0; i < opts->n_vars; i++) {
    if (a->loading[i] != b->loading[i] && a->noise_var[i] != b->noise_var[i])
      count++;
  }
  return count;
}

/* With nt = 5 the change falls between periods 1 and 2 (nt / 2 = 2). */
static void sudden_changes_only_at_middle(void **state)
{
  tcx_simulate_options opts;
  period_truth before, after;

  (void)state;
  tcx_simulate_options_default(&opts);
  opts.n_vars = 50;
  opts.n_factors = 4;
  opts.n_periods = 5;
  get_truth(&opts, 1, &before);
  get_truth(&opts, 2, &after);
  assert_int_equal(changed_variables(&opts, &before, &after), 50);
  for (int t = 0; t < 5; t++) {
    period_truth truth;

    get_truth(&opts, t, &truth);
    assert_true(truths_equal(&opts, &truth, t < 2 ? &before : &after));
  }
}

/* Block assignment keeps each variable's factor across the change. */
static void sudden_blocks_keep_factors(void **state)
{
  tcx_simulate_options opts;
  period_truth before, after;
  const int32_t expected[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};

  (void)state;
  tcx_simulate_options_default(&opts);
  opts.n_vars = 10;
  opts.n_factors = 3;
  opts.n_periods = 4;
  opts.assignment = TCX_SIMULATE_ASSIGN_BLOCKS;
  get_truth(&opts, 1, &before);
  get_truth(&opts, 2, &after);
  assert_int_equal(changed_variables(&opts, &before, &after), 10);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(before.factor[i], expected[i]);
    assert_int_equal(after.factor[i], expected[i]);
  }
}

static void none_keeps_truth_constant(void **state)
{
  tcx_simulate_options opts;
  period_truth first;

  (void)state;
  tcx_simulate_options_default(&opts);
  opts.n_vars = 50;
  opts.n_factors = 4;
  opts.n_periods = 4;
  opts.change = TCX_SIMULATE_CHANGE_NONE;
  get_truth(&opts, 0, &first);
  for (int t = 1; t < 4; t++) {
    period_truth truth;

    get_truth(&opts, t, &truth);
    assert_true(truths_equal(&opts, &first, &truth));
  }
}

/* Draws 20000 variables and checks ranges and the first moments of the
 * scale (uniform), the sign (fair) and the factor (uniform). */
static void parameters_follow_options(void **state)
{
  enum { COUNT = 20000, FACTORS = 5 };
  tcx_simulate_options opts;
  double *loading = NULL, *noise_var = NULL;
  int32_t *factor = NULL;
  int64_t negative = 0, per_factor[FACTORS] = {0};
  double scale_sum = 0.0;

  (void)state;
  tcx_simulate_options_default(&opts);
  opts.n_vars = COUNT;
  opts.n_factors = FACTORS;
  opts.snr_min = 1.0;
  opts.snr_max = 3.0;
  opts.scale_min = 0.5;
  opts.scale_max = 2.0;
  loading = calloc(COUNT, sizeof(double));
  noise_var = calloc(COUNT, sizeof(double));
  factor = calloc(COUNT, sizeof(int32_t));
  assert_non_null(loading);
  assert_non_null(noise_var);
  assert_non_null(factor);
  assert_int_equal(tcx_simulate_truth(tcx_test_ctx(), &opts, 0, 0, COUNT,
                                      loading, noise_var, factor),
                   TCX_OK);
  for (int64_t i = 0; i < COUNT; i++) {
    const double scale = sqrt(loading[i] * loading[i] + noise_var[i]);
    const double snr = loading[i] * loading[i] / noise_var[i];

    assert_true(scale >= 0.5 * (1 - 1e-12) && scale <= 2.0 * (1 + 1e-12));
    assert_true(snr >= 1.0 * (1 - 1e-12) && snr <= 3.0 * (1 + 1e-12));
    assert_true(factor[i] >= 0 && factor[i] < FACTORS);
    scale_sum += scale;
    negative += loading[i] < 0.0;
    per_factor[factor[i]]++;
  }

  /* U[0.5, 2] has mean 1.25 and standard deviation 1.5 / sqrt(12). */
  assert_true(fabs(scale_sum / COUNT - 1.25) <=
              z_limit * 1.5 / sqrt(12.0 * COUNT));
  assert_true(fabs((double)negative - COUNT / 2.0) <=
              z_limit * sqrt(COUNT / 4.0));
  for (int j = 0; j < FACTORS; j++)
    assert_true(fabs((double)per_factor[j] - (double)COUNT / FACTORS) <=
                z_limit * sqrt(COUNT * 0.2 * 0.8));
  free(loading);
  free(noise_var);
  free(factor);
}

/* Truth and data of the last columns of p = 10^8 variables cost only those
 * columns: nothing p-sized is allocated. */
static void large_p_slice_is_cheap(void **state)
{
  tcx_simulate_options opts;
  double loading[10], noise_var[10];
  int32_t factor[10];
  tcx_block *block = NULL;
  const int64_t p = 100000000;

  (void)state;
  tcx_simulate_options_default(&opts);
  opts.n_vars = p;
  opts.n_factors = 7;
  opts.assignment = TCX_SIMULATE_ASSIGN_BLOCKS;
  assert_int_equal(tcx_simulate_truth(tcx_test_ctx(), &opts, 9, p - 10, 10,
                                      loading, noise_var, factor),
                   TCX_OK);
  for (int i = 0; i < 10; i++)
    assert_int_equal(factor[i], 6);
  assert_int_equal(tcx_simulate_block(tcx_test_ctx(), &opts,
                                      TCX_SIMULATE_TEST, p - 10, 10, &block),
                   TCX_OK);
  assert_int_equal(block->n_rows, 10 * 1000);
  assert_int_equal(block->col_begin, p - 10);
  tcx_block_destroy(&block);
}

static int blocks_equal(const tcx_block *a, const tcx_block *b)
{
  return a->n_rows == b->n_rows && a->n_local == b->n_local &&
         memcmp(a->data, b->data,
                (size_t)(a->n_rows * a->n_local) * sizeof(double)) == 0;
}

/* The same seed repeats the data bit for bit. Another seed and the other
 * parts give independent data, and a part's rows do not change with the
 * row counts of the other parts. */
static void seed_and_part_select_data(void **state)
{
  tcx_simulate_options opts = small_options();
  tcx_block *first = NULL, *again = NULL, *reseeded = NULL, *test = NULL;
  tcx_block *validation = NULL, *train_other_counts = NULL;
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  opts.train_rows = 4;
  opts.test_rows = 4;
  opts.validation_rows = 4;
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TRAIN, 0,
                                      SMALL_P, &first),
                   TCX_OK);
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TRAIN, 0,
                                      SMALL_P, &again),
                   TCX_OK);
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TEST, 0,
                                      SMALL_P, &test),
                   TCX_OK);
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_VALIDATION, 0,
                                      SMALL_P, &validation),
                   TCX_OK);
  opts.test_rows = 9;
  opts.validation_rows = 0;
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TRAIN, 0,
                                      SMALL_P, &train_other_counts),
                   TCX_OK);
  assert_true(blocks_equal(first, train_other_counts));
  opts.test_rows = 4;
  opts.validation_rows = 4;
  opts.seed++;
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TRAIN, 0,
                                      SMALL_P, &reseeded),
                   TCX_OK);
  assert_true(blocks_equal(first, again));
  for (int64_t k = 0; k < first->n_rows * SMALL_P; k++) {
    assert_true(first->data[k] != reseeded->data[k]);
    assert_true(first->data[k] != test->data[k]);
    assert_true(first->data[k] != validation->data[k]);
    assert_true(test->data[k] != validation->data[k]);
  }
  tcx_block_destroy(&first);
  tcx_block_destroy(&again);
  tcx_block_destroy(&reseeded);
  tcx_block_destroy(&test);
  tcx_block_destroy(&validation);
  tcx_block_destroy(&train_other_counts);
}

static void assert_rejected(const tcx_simulate_options *opts,
                            const char *expected_text)
{
  tcx_ctx *ctx = tcx_test_ctx();

  assert_int_equal(tcx_simulate_validate(ctx, opts), TCX_ERR_USAGE);
  if (!strstr(tcx_ctx_message(ctx), expected_text))
    fail_msg("message \"%s\" does not contain \"%s\"",
             tcx_ctx_message(ctx), expected_text);
}

/* Each invalid option is rejected with a message that names it. */
static void invalid_options_rejected(void **state)
{
  tcx_simulate_options valid, opts;

  (void)state;
  tcx_simulate_options_default(&valid);
  assert_int_equal(tcx_simulate_validate(tcx_test_ctx(), &valid), TCX_OK);

  opts = valid;
  opts.n_vars = 0;
  assert_rejected(&opts, "n_vars = 0");
  opts = valid;
  opts.n_factors = 0;
  assert_rejected(&opts, "n_factors = 0");
  opts = valid;
  opts.n_periods = 0;
  assert_rejected(&opts, "n_periods = 0");
  opts = valid;
  opts.train_rows = -1;
  assert_rejected(&opts, "train_rows = -1");
  opts = valid;
  opts.test_rows = INT64_C(1) << 47;
  assert_rejected(&opts, "2^48 rows");
  opts = valid;
  opts.validation_rows = -2;
  assert_rejected(&opts, "validation_rows = -2");
  opts = valid;
  opts.validation_rows = INT64_C(1) << 47;
  assert_rejected(&opts, "2^48 rows");
  opts = valid;
  opts.change = 7;
  assert_rejected(&opts, "change = 7");
  opts = valid;
  opts.n_periods = 1;
  assert_rejected(&opts, "at least 2 periods");
  opts = valid;
  opts.assignment = 9;
  assert_rejected(&opts, "assignment = 9");
  opts = valid;
  opts.assignment = TCX_SIMULATE_ASSIGN_BLOCKS;
  opts.n_vars = 5;
  assert_rejected(&opts, "n_vars = 5 and n_factors = 8");
  opts = valid;
  opts.snr_min = -1.0;
  assert_rejected(&opts, "signal-to-noise range [-1, 5]");
  opts = valid;
  opts.snr_max = INFINITY;
  assert_rejected(&opts, "signal-to-noise range [0, inf]");
  opts = valid;
  opts.scale_min = 0.0;
  assert_rejected(&opts, "scale range [0, 4]");
  opts = valid;
  opts.scale_max = 0.1;
  assert_rejected(&opts, "scale range [0.25, 0.1]");
}

static void invalid_requests_rejected(void **state)
{
  tcx_simulate_options opts;
  tcx_block *block = NULL;
  double loading[4], noise_var[4];
  int32_t factor[4];
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  tcx_simulate_options_default(&opts);
  assert_int_equal(tcx_simulate_block(ctx, &opts, 3, 0, 4, &block),
                   TCX_ERR_USAGE);
  assert_null(block);
  assert_non_null(strstr(tcx_ctx_message(ctx), "part 3"));
  assert_int_equal(tcx_simulate_block(ctx, &opts, TCX_SIMULATE_TRAIN, 126, 4,
                                      &block),
                   TCX_ERR_USAGE);
  assert_null(block);
  assert_non_null(strstr(tcx_ctx_message(ctx), "from column 126 of 128"));
  assert_int_equal(tcx_simulate_truth(ctx, &opts, 10, 0, 4, loading,
                                      noise_var, factor),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "period 10"));
  assert_int_equal(tcx_simulate_truth(ctx, &opts, 0, -1, 4, loading,
                                      noise_var, factor),
                   TCX_ERR_USAGE);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sample_covariance_random_sudden),
      cmocka_unit_test(sample_covariance_blocks_none),
      cmocka_unit_test(block_has_requested_shape),
      cmocka_unit_test(sudden_changes_only_at_middle),
      cmocka_unit_test(sudden_blocks_keep_factors),
      cmocka_unit_test(none_keeps_truth_constant),
      cmocka_unit_test(parameters_follow_options),
      cmocka_unit_test(large_p_slice_is_cheap),
      cmocka_unit_test(seed_and_part_select_data),
      cmocka_unit_test(invalid_options_rejected),
      cmocka_unit_test(invalid_requests_rejected),
  };

  return tcx_test_run(argc, argv, "simulate", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
