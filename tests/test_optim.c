#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tcorex/optim.h"

#include "tcx_test.h"

enum { MAX_LENGTH = 24 };

/* Solves the same 1-D total-variation problem through its dual,
 * min_u 1/2 |y - D^T u|^2 subject to |u_k| <= lambda with (D x)_k = x_{k+1} -
 * x_k, by projected gradient with step 1/4 (|D D^T| <= 4), run until the dual
 * variables stop moving. The primal solution is x = y - D^T u. */
static void tv_prox_by_dual(int n, const double *y, double lambda, double *x)
{
  double u[MAX_LENGTH] = {0};

  for (long iter = 0; iter < 20000000; iter++) {
    double change = 0.0;

    for (int i = 0; i < n; i++)
      x[i] = y[i] - ((i > 0 ? u[i - 1] : 0.0) - (i < n - 1 ? u[i] : 0.0));
    for (int k = 0; k < n - 1; k++) {
      double next = u[k] + 0.25 * (x[k + 1] - x[k]);

      next = next > lambda ? lambda : (next < -lambda ? -lambda : next);
      change = fmax(change, fabs(next - u[k]));
      u[k] = next;
    }
    if (change < 1e-16)
      break;
  }
  for (int i = 0; i < n; i++)
    x[i] = y[i] - ((i > 0 ? u[i - 1] : 0.0) - (i < n - 1 ? u[i] : 0.0));
}

static void tv_prox_matches_dual_solver(void **state)
{
  const double lambdas[] = {1e-3, 0.05, 0.3, 1.0, 4.0};
  double y[MAX_LENGTH], expected[MAX_LENGTH];
  double x[2 * MAX_LENGTH];

  (void)state;
  for (int n = 1; n <= 17; n++) {
    for (size_t l = 0; l < sizeof(lambdas) / sizeof(lambdas[0]); l++) {
      tcx_test_randn(100 * n + l, y, n);
      /* A step in the middle makes jumps survive at small lambda. */
      for (int i = n / 2; i < n; i++)
        y[i] += 1.5;
      tv_prox_by_dual(n, y, lambdas[l], expected);
      tcx_optim_tv_prox(n, y, 1, lambdas[l], x, 2);
      for (int i = 0; i < n; i++) {
        if (fabs(x[2 * i] - expected[i]) > 1e-9)
          fprintf(stderr, "n %d lambda %g entry %d: %.15g vs %.15g\n", n,
                  lambdas[l], i, x[2 * i], expected[i]);
        assert_true(fabs(x[2 * i] - expected[i]) <= 1e-9);
      }
    }
  }
}

/* With a strided input the prox must read every stride-th entry. */
static void tv_prox_reads_strided_input(void **state)
{
  const int n = 9, stride = 3;
  double packed[9], strided[27], from_packed[9], from_strided[9];

  (void)state;
  tcx_test_randn(7, packed, n);
  for (int i = 0; i < n; i++) {
    strided[stride * i] = packed[i];
    strided[stride * i + 1] = 1e6;
    strided[stride * i + 2] = -1e6;
  }
  tcx_optim_tv_prox(n, packed, 1, 0.2, from_packed, 1);
  tcx_optim_tv_prox(n, strided, stride, 0.2, from_strided, 1);
  for (int i = 0; i < n; i++)
    assert_true(fabs(from_packed[i] - from_strided[i]) <= 1e-15);
}

/* A large enough lambda flattens the signal to its mean, and lambda = 0
 * returns the input. */
static void tv_prox_limits(void **state)
{
  const int n = 11;
  double y[11], x[11], mean = 0.0;

  (void)state;
  tcx_test_randn(3, y, n);
  for (int i = 0; i < n; i++)
    mean += y[i] / n;
  tcx_optim_tv_prox(n, y, 1, 1e3, x, 1);
  for (int i = 0; i < n; i++)
    assert_true(fabs(x[i] - mean) <= 1e-12);
  tcx_optim_tv_prox(n, y, 1, 0.0, x, 1);
  for (int i = 0; i < n; i++)
    assert_true(x[i] == y[i]);
}

/* For a gradient of constant sign pattern, every bias-corrected Adam step
 * moves each coordinate by learning_rate * g / (|g| + epsilon); with a
 * changing gradient the second step follows the moment recursion written
 * out by hand. */
static void adam_steps_follow_bias_corrected_moments(void **state)
{
  const double g1[3] = {0.5, -2.0, 1e-3};
  const double g2[3] = {-0.25, 1.0, 3.0};
  double x[3] = {1.0, 2.0, 3.0};
  double m[3] = {0}, v[3] = {0};
  tcx_adam adam;

  (void)state;
  tcx_adam_init(&adam, 0.01);
  tcx_adam_step(&adam, 3, x, g1, m, v);
  for (int k = 0; k < 3; k++) {
    double start = 1.0 + k;
    double expected = start - 0.01 * g1[k] / (fabs(g1[k]) + 1e-8);

    assert_true(fabs(x[k] - expected) <= 1e-15);
  }
  {
    double before[3] = {x[0], x[1], x[2]};

    tcx_adam_step(&adam, 3, x, g2, m, v);
    assert_int_equal(adam.step, 2);
    for (int k = 0; k < 3; k++) {
      double m2 = 0.9 * 0.1 * g1[k] + 0.1 * g2[k];
      double v2 = 0.999 * 0.001 * g1[k] * g1[k] + 0.001 * g2[k] * g2[k];
      double m_hat = m2 / (1.0 - 0.81);
      double v_hat = v2 / (1.0 - 0.999 * 0.999);
      double expected = before[k] - 0.01 * m_hat / (sqrt(v_hat) + 1e-8);

      assert_true(fabs(x[k] - expected) <= 1e-14);
    }
  }
}

static void plateau_needs_two_flat_windows(void **state)
{
  double history[200];

  (void)state;
  for (int k = 0; k < 200; k++)
    history[k] = -1.0 - 1e-3 * k;
  /* Falling by 0.05 per 50 steps: relative change about 4e-2. */
  assert_false(tcx_optim_plateau(history, 200, 50, 1e-5));
  for (int k = 0; k < 200; k++)
    history[k] = -1.0 + (k % 2 ? 1e-9 : -1e-9);
  assert_true(tcx_optim_plateau(history, 100, 50, 1e-5));
  assert_false(tcx_optim_plateau(history, 99, 50, 1e-5));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tv_prox_matches_dual_solver),
      cmocka_unit_test(tv_prox_reads_strided_input),
      cmocka_unit_test(tv_prox_limits),
      cmocka_unit_test(adam_steps_follow_bias_corrected_moments),
      cmocka_unit_test(plateau_needs_two_flat_windows),
  };

  return tcx_test_run(argc, argv, "optim", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
