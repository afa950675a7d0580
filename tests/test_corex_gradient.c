/* Linear CorEx objective and gradient against a dense reference: the test
 * forms the p x p second moment Sigma_eps explicitly, evaluates the
 * closed-form TC bound with plain loops and differentiates it by central
 * finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/corex_impl.h"
#include "tcx_test.h"

enum { N_ROWS = 20, N_VARS = 12, N_FACTORS = 3 };

/* Central-difference step and the accepted norm-wise relative error. */
#define FD_STEP 1e-5
#define GRADIENT_TOL 1e-6
#define OBJECTIVE_TOL 1e-12

/* Standardised data with three planted factors, so that the objective has
 * structure, plus the dense Sigma_eps of that data. */
typedef struct dense_problem {
  double x[N_ROWS * N_VARS];
  double sigma[N_VARS * N_VARS];
  double eps;
} dense_problem;

static void make_data(uint64_t seed, double *x)
{
  double latent[N_ROWS * N_FACTORS];
  double noise[N_ROWS * N_VARS];

  tcx_test_randn(seed, latent, N_ROWS * N_FACTORS);
  tcx_test_randn(seed + 1, noise, N_ROWS * N_VARS);
  for (int row = 0; row < N_ROWS; row++)
    for (int i = 0; i < N_VARS; i++)
      x[row * N_VARS + i] = latent[row * N_FACTORS + i % N_FACTORS] +
                            0.7 * noise[row * N_VARS + i];
  for (int i = 0; i < N_VARS; i++) {
    double mean = 0.0, variance = 0.0;

    for (int row = 0; row < N_ROWS; row++)
      mean += x[row * N_VARS + i] / N_ROWS;
    for (int row = 0; row < N_ROWS; row++) {
      x[row * N_VARS + i] -= mean;
      variance += x[row * N_VARS + i] * x[row * N_VARS + i] / N_ROWS;
    }
    for (int row = 0; row < N_ROWS; row++)
      x[row * N_VARS + i] /= sqrt(variance);
  }
}

static void make_problem(uint64_t seed, double eps, dense_problem *problem)
{
  make_data(seed, problem->x);
  problem->eps = eps;
  for (int i = 0; i < N_VARS; i++)
    for (int k = 0; k < N_VARS; k++) {
      double sum = 0.0;

      for (int row = 0; row < N_ROWS; row++)
        sum += problem->x[row * N_VARS + i] * problem->x[row * N_VARS + k];
      problem->sigma[i * N_VARS + k] =
          (1.0 - eps * eps) * sum / N_ROWS + (i == k ? eps * eps : 0.0);
    }
}

/* u_j = U_j Sigma U_j^T with dense loops. */
static double dense_u(const dense_problem *problem, const double *weights,
                      int j)
{
  double u = 0.0;

  for (int i = 0; i < N_VARS; i++)
    for (int k = 0; k < N_VARS; k++)
      u += weights[j * N_VARS + i] * problem->sigma[i * N_VARS + k] *
           weights[j * N_VARS + k];
  return u;
}

/* TC(U) = sum_i log(1 + S_i) - 1/2 sum_i log(1 + rho~_i^T Ry rho~_i - S_i^2)
 *         + 1/2 sum_j log(1 - u_j), with rho = U Sigma and Ry = U Sigma U^T
 * with unit diagonal. */
static double dense_tc(const dense_problem *problem, const double *weights)
{
  double rho[N_FACTORS * N_VARS], tilde[N_FACTORS * N_VARS];
  double ry[N_FACTORS * N_FACTORS];
  double tc = 0.0;

  for (int j = 0; j < N_FACTORS; j++)
    for (int i = 0; i < N_VARS; i++) {
      double sum = 0.0;

      for (int k = 0; k < N_VARS; k++)
        sum += weights[j * N_VARS + k] * problem->sigma[k * N_VARS + i];
      rho[j * N_VARS + i] = sum;
      tilde[j * N_VARS + i] = sum / (1.0 - sum * sum);
    }
  for (int j = 0; j < N_FACTORS; j++)
    for (int l = 0; l < N_FACTORS; l++) {
      double sum = 0.0;

      for (int i = 0; i < N_VARS; i++)
        sum += weights[j * N_VARS + i] * rho[l * N_VARS + i];
      ry[j * N_FACTORS + l] = j == l ? 1.0 : sum;
    }
  for (int i = 0; i < N_VARS; i++) {
    double s = 0.0, quadratic = 0.0;

    for (int j = 0; j < N_FACTORS; j++) {
      s += rho[j * N_VARS + i] * tilde[j * N_VARS + i];
      for (int l = 0; l < N_FACTORS; l++)
        quadratic += tilde[j * N_VARS + i] * ry[j * N_FACTORS + l] *
                     tilde[l * N_VARS + i];
    }
    tc += log(1.0 + s) - 0.5 * log(1.0 + quadratic - s * s);
  }
  for (int j = 0; j < N_FACTORS; j++)
    tc += 0.5 * log(1.0 - dense_u(problem, weights, j));
  return tc;
}

/* Random weights with every u_j at the given level. */
static void make_weights(const dense_problem *problem, uint64_t seed,
                         double level, double *weights)
{
  tcx_test_randn(seed, weights, N_FACTORS * N_VARS);
  for (int j = 0; j < N_FACTORS; j++) {
    const double scale = sqrt(level / dense_u(problem, weights, j));

    for (int i = 0; i < N_VARS; i++)
      weights[j * N_VARS + i] *= scale;
  }
}

static void check_gradient_at(double eps, double level, uint64_t seed)
{
  dense_problem problem;
  double weights[N_FACTORS * N_VARS], gradient[N_FACTORS * N_VARS];
  double numeric[N_FACTORS * N_VARS];
  double tc = NAN, largest = 0.0, worst = 0.0;
  char label[128];

  make_problem(seed, eps, &problem);
  make_weights(&problem, seed + 7, level, weights);
  assert_int_equal(tcx_corex_objective_gradient(
                       tcx_test_ctx(), problem.x, N_ROWS, N_VARS, N_FACTORS,
                       eps, weights, &tc, gradient),
                   TCX_OK);

  snprintf(label, sizeof(label), "TC at eps %g", eps);
  tcx_test_assert_close_all(tc, dense_tc(&problem, weights), OBJECTIVE_TOL,
                            label);

  /* The implementation returns the gradient of -TC. */
  for (int k = 0; k < N_FACTORS * N_VARS; k++) {
    double plus[N_FACTORS * N_VARS], minus[N_FACTORS * N_VARS];

    memcpy(plus, weights, sizeof(plus));
    memcpy(minus, weights, sizeof(minus));
    plus[k] += FD_STEP;
    minus[k] -= FD_STEP;
    numeric[k] = -(dense_tc(&problem, plus) - dense_tc(&problem, minus)) /
                 (2.0 * FD_STEP);
    largest = fmax(largest, fabs(numeric[k]));
  }
  for (int k = 0; k < N_FACTORS * N_VARS; k++) {
    const double error = fabs(gradient[k] - numeric[k]) / largest;

    worst = fmax(worst, error);
    if (error > GRADIENT_TOL)
      fprintf(stderr, "eps %g entry (%d, %d): gradient %.12g, finite "
              "difference %.12g\n", eps, k / N_VARS, k % N_VARS, gradient[k],
              numeric[k]);
  }
  assert_true(largest > 0.0);
  assert_true(worst <= GRADIENT_TOL);
}

static void gradient_matches_fd_eps0(void **state)
{
  (void)state;
  check_gradient_at(0.0, 0.3, 11);
  check_gradient_at(0.0, 0.8, 12);
}

static void gradient_matches_fd_eps06(void **state)
{
  (void)state;
  check_gradient_at(0.6, 0.3, 21);
  check_gradient_at(0.6, 0.8, 22);
}

/* After several quasi-Newton iterations with incrementally updated moments,
 * the objective held by the implementation equals the dense objective of
 * its current weights, and it never decreased. */
static void incremental_step_matches_dense(void **state)
{
  const double levels[] = {0.0, 0.36};
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  for (size_t e = 0; e < sizeof(levels) / sizeof(levels[0]); e++) {
    dense_problem problem;
    tcx_corex_work *work = NULL;
    double previous;
    int moved = 0;

    make_problem(31, levels[e], &problem);
    assert_int_equal(tcx_corex_work_create(ctx, problem.x, N_ROWS, N_VARS,
                                           N_FACTORS, &work),
                     TCX_OK);
    make_weights(&problem, 37, 0.05, work->weights);
    assert_int_equal(tcx_corex_evaluate(work, levels[e]), TCX_OK);
    tcx_test_assert_close_all(work->now.tc,
                              dense_tc(&problem, work->weights),
                              OBJECTIVE_TOL, "TC before the steps");
    previous = work->now.tc;
    for (int iteration = 0; iteration < 8; iteration++) {
      tcx_corex_step_info info;

      assert_int_equal(tcx_corex_step(work, 1e-10, &info), TCX_OK);
      assert_true(info.outcome == TCX_COREX_STEP_MOVED ||
                  info.outcome == TCX_COREX_STEP_NO_DESCENT);
      moved += info.outcome == TCX_COREX_STEP_MOVED;
      assert_true(work->now.tc >= previous);
      previous = work->now.tc;
      tcx_test_assert_close_all(work->now.tc,
                                dense_tc(&problem, work->weights), 1e-10,
                                "incrementally updated TC");
      for (int j = 0; j < N_FACTORS; j++)
        tcx_test_assert_close_all(work->now.u[j],
                                  dense_u(&problem, work->weights, j), 1e-10,
                                  "incrementally updated u_j");
    }
    assert_true(moved >= 1);
    tcx_corex_work_destroy(&work);
  }
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gradient_matches_fd_eps0),
      cmocka_unit_test(gradient_matches_fd_eps06),
      cmocka_unit_test(incremental_step_matches_dense),
  };

  return tcx_test_run(argc, argv, "corex_gradient", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
