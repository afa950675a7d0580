/* The change-point threshold rule on hand-made score series, whose median,
 * MAD and cutoff are worked out by hand in the comments. */
#include <math.h>
#include <string.h>

#include "tcorex/changepoints.h"
#include "tcx_test.h"

/* Series 1.0, 1.2, 0.9, 1.1, 5.0, 1.0, 0.95: sorted 0.9 0.95 1.0 1.0 1.1
 * 1.2 5.0, median 1.0. Deviations 0, 0.2, 0.1, 0.1, 4, 0, 0.05: sorted 0 0
 * 0.05 0.1 0.1 0.2 4, MAD 0.1. Cutoff for K = 5: 1 + 5 * 1.4826 * 0.1 =
 * 1.7413. */
static const double spike[7] = {1.0, 1.2, 0.9, 1.1, 5.0, 1.0, 0.95};

static void detect_flags_single_spike(void **state)
{
  int32_t changes[7];
  double median = 0.0, mad = 0.0, cutoff = 0.0;

  (void)state;
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 7, spike, 5.0,
                                           changes, &median, &mad, &cutoff),
                   TCX_OK);
  assert_float_equal(median, 1.0, 1e-15);
  assert_float_equal(mad, 0.1, 1e-15);
  assert_float_equal(cutoff, 1.0 + 5.0 * 1.482602218505602 * 0.1, 1e-15);
  for (int k = 0; k < 7; k++)
    assert_int_equal(changes[k], k == 4);
}

/* K = 1: cutoff 1 + 0.14826 = 1.14826, so 1.2 at index 1 is flagged too. */
static void detect_smaller_threshold_flags_more(void **state)
{
  int32_t changes[7];

  (void)state;
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 7, spike, 1.0,
                                           changes, NULL, NULL, NULL),
                   TCX_OK);
  for (int k = 0; k < 7; k++)
    assert_int_equal(changes[k], k == 1 || k == 4);
}

/* Even count: 3, 1, 2, 10 sorted 1 2 3 10, median 2.5. Deviations 0.5,
 * 1.5, 0.5, 7.5 sorted 0.5 0.5 1.5 7.5, MAD 1.0. Cutoff for K = 3: 2.5 +
 * 4.4478 = 6.9478. */
static void detect_even_count_uses_middle_mean(void **state)
{
  const double scores[4] = {3.0, 1.0, 2.0, 10.0};
  int32_t changes[4];
  double median = 0.0, mad = 0.0, cutoff = 0.0;

  (void)state;
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 4, scores, 3.0,
                                           changes, &median, &mad, &cutoff),
                   TCX_OK);
  assert_float_equal(median, 2.5, 1e-15);
  assert_float_equal(mad, 1.0, 1e-15);
  assert_float_equal(cutoff, 2.5 + 3.0 * 1.482602218505602, 1e-14);
  assert_int_equal(changes[0], 0);
  assert_int_equal(changes[1], 0);
  assert_int_equal(changes[2], 0);
  assert_int_equal(changes[3], 1);
}

/* Scores 2, 2, 3, 2: MAD 0, so every score above the median 2 is flagged
 * whatever K. Equal scores are never flagged. */
static void detect_zero_mad_flags_above_median(void **state)
{
  const double scores[4] = {2.0, 2.0, 3.0, 2.0};
  const double flat[3] = {4.0, 4.0, 4.0};
  int32_t changes[4];

  (void)state;
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 4, scores, 100.0,
                                           changes, NULL, NULL, NULL),
                   TCX_OK);
  assert_int_equal(changes[0], 0);
  assert_int_equal(changes[1], 0);
  assert_int_equal(changes[2], 1);
  assert_int_equal(changes[3], 0);
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 3, flat, 0.0,
                                           changes, NULL, NULL, NULL),
                   TCX_OK);
  assert_int_equal(changes[0] + changes[1] + changes[2], 0);
}

/* One pair cannot stand out from the others. */
static void detect_single_score_flags_nothing(void **state)
{
  const double scores[1] = {7.0};
  int32_t changes[1] = {-1};

  (void)state;
  assert_int_equal(tcx_changepoints_detect(tcx_test_ctx(), 1, scores, 5.0,
                                           changes, NULL, NULL, NULL),
                   TCX_OK);
  assert_int_equal(changes[0], 0);
}

static void detect_rejects_bad_input(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const double with_nan[3] = {1.0, NAN, 2.0};
  int32_t changes[7];

  (void)state;
  assert_int_equal(tcx_changepoints_detect(ctx, 7, spike, -0.5, changes,
                                           NULL, NULL, NULL),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "K = -0.5"));
  assert_int_equal(tcx_changepoints_detect(ctx, 0, spike, 5.0, changes, NULL,
                                           NULL, NULL),
                   TCX_ERR_USAGE);
  assert_int_equal(tcx_changepoints_detect(ctx, 3, with_nan, 5.0, changes,
                                           NULL, NULL, NULL),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "change score 1"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(detect_flags_single_spike),
      cmocka_unit_test(detect_smaller_threshold_flags_more),
      cmocka_unit_test(detect_even_count_uses_middle_mean),
      cmocka_unit_test(detect_zero_mad_flags_above_median),
      cmocka_unit_test(detect_single_score_flags_nothing),
      cmocka_unit_test(detect_rejects_bad_input),
  };

  return tcx_test_run(argc, argv, "changepoints_detect", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
