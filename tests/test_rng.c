/* Counter-based generator: determinism per key and the first moments of the
 * distributions within statistical bounds. Bounds are 6 standard errors, so
 * a correct generator fails a check with probability below 1e-8. */
#include <math.h>
#include <stdio.h>

#include "tcorex/rng.h"
#include "tcx_test.h"

enum { N_DRAWS = 400000 };

/* Number of standard errors allowed in a moment check. */
#define SIGMAS 6.0

static void check_moment(double value, double expected, double std_error,
                         const char *what)
{
  if (fabs(value - expected) > SIGMAS * std_error)
    fprintf(stderr, "%s: %.6g, expected %.6g +- %.3g\n", what, value,
            expected, SIGMAS * std_error);
  assert_true(fabs(value - expected) <= SIGMAS * std_error);
}

static void same_key_same_value(void **state)
{
  (void)state;
  for (uint64_t k = 0; k < 1000; k++) {
    assert_true(tcx_rng_normal(42, 3, k) == tcx_rng_normal(42, 3, k));
    assert_true(tcx_rng_uniform(42, 3, k) == tcx_rng_uniform(42, 3, k));
  }
}

/* Changing any part of the key changes the draw. */
static void distinct_keys_differ(void **state)
{
  int same_stream = 0, same_seed = 0, same_index = 0;

  (void)state;
  for (uint64_t k = 0; k < 10000; k++) {
    const double base = tcx_rng_normal(7, 0, k);

    same_stream += tcx_rng_normal(7, 1, k) == base;
    same_seed += tcx_rng_normal(8, 0, k) == base;
    same_index += tcx_rng_normal(7, 0, k + 1) == base;
  }
  assert_int_equal(same_stream, 0);
  assert_int_equal(same_seed, 0);
  assert_int_equal(same_index, 0);
}

/* Uniform draws lie in (0, 1) with mean 1/2 and variance 1/12. */
static void uniform_moments(void **state)
{
  double sum = 0.0, squares = 0.0, low = 1.0, high = 0.0;

  (void)state;
  for (uint64_t k = 0; k < N_DRAWS; k++) {
    const double u = tcx_rng_uniform(1, 2, k);

    sum += u;
    squares += (u - 0.5) * (u - 0.5);
    low = fmin(low, u);
    high = fmax(high, u);
  }
  assert_true(low > 0.0);
  assert_true(high < 1.0);
  /* Var(u) = 1/12; Var((u - 1/2)^2) = 1/80 - 1/144 = 1/180. */
  check_moment(sum / N_DRAWS, 0.5, sqrt(1.0 / 12.0 / N_DRAWS),
               "uniform mean");
  check_moment(squares / N_DRAWS, 1.0 / 12.0, sqrt(1.0 / 180.0 / N_DRAWS),
               "uniform variance");
}

/* Normal draws: mean 0, variance 1, fourth moment 3 (standard errors from
 * Var(z) = 1, Var(z^2) = 2, Var(z^4) = 105 - 9 = 96), and the fraction
 * beyond 2 standard deviations 0.0455. */
static void normal_moments(void **state)
{
  double sum = 0.0, squares = 0.0, fourth = 0.0, tail = 0.0;
  const double tail_probability = erfc(2.0 / sqrt(2.0));

  (void)state;
  for (uint64_t k = 0; k < N_DRAWS; k++) {
    const double z = tcx_rng_normal(3, 5, k);

    sum += z;
    squares += z * z;
    fourth += z * z * z * z;
    tail += fabs(z) > 2.0;
  }
  check_moment(sum / N_DRAWS, 0.0, sqrt(1.0 / N_DRAWS), "normal mean");
  check_moment(squares / N_DRAWS, 1.0, sqrt(2.0 / N_DRAWS),
               "normal variance");
  check_moment(fourth / N_DRAWS, 3.0, sqrt(96.0 / N_DRAWS),
               "normal fourth moment");
  check_moment(tail / N_DRAWS, tail_probability,
               sqrt(tail_probability * (1.0 - tail_probability) / N_DRAWS),
               "normal tail fraction");
}

/* Draws of neighbouring indices and of neighbouring streams at the same
 * index are uncorrelated: the sample correlation has standard error
 * 1/sqrt(N). */
static void normal_draws_uncorrelated(void **state)
{
  double lag = 0.0, across = 0.0;

  (void)state;
  for (uint64_t k = 0; k < N_DRAWS; k++) {
    lag += tcx_rng_normal(9, 0, k) * tcx_rng_normal(9, 0, k + 1);
    across += tcx_rng_normal(9, 0, k) * tcx_rng_normal(9, 1, k);
  }
  check_moment(lag / N_DRAWS, 0.0, sqrt(1.0 / N_DRAWS),
               "correlation of neighbouring indices");
  check_moment(across / N_DRAWS, 0.0, sqrt(1.0 / N_DRAWS),
               "correlation of neighbouring streams");
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(same_key_same_value),
      cmocka_unit_test(distinct_keys_differ),
      cmocka_unit_test(uniform_moments),
      cmocka_unit_test(normal_moments),
      cmocka_unit_test(normal_draws_uncorrelated),
  };

  return tcx_test_run(argc, argv, "rng", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
