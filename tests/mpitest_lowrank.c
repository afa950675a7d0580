/* Checks the distributed low-rank algebra against dense LAPACK computations
 * of the same p x p matrices. Every rank builds the same random case, keeps
 * its column slice for the library calls and computes the dense reference
 * itself. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/lowrank.h"
#include "tcx_test.h"

enum {
  P = 37, /* variables: 2, 3 and 4 ranks split them unevenly */
  M1 = 4, /* factors of the first model */
  M2 = 3, /* factors of the second model */
  N = 9   /* scored rows */
};

/* Relative error allowed against the dense computation: the O(p m^2) forms
 * and the dense Cholesky round differently, by far less than this. */
static const double tolerance = 1e-9;

/* A model Sigma = diag(d) + L^T L on all P columns, and this rank's slice. */
typedef struct model {
  int64_t m;
  double l[M1 * P];
  double d[P];
  double l_local[M1 * P];
  double d_local[P];
} model;

typedef struct slice {
  int64_t col_begin;
  int64_t n_local;
} slice;

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

/* Copies columns s of a rows x P row-major matrix. */
static void take_columns(int64_t rows, const double *full, slice s,
                         double *local)
{
  for (int64_t r = 0; r < rows; r++)
    memcpy(local + r * s.n_local, full + r * P + s.col_begin,
           (size_t)s.n_local * sizeof(double));
}

/* Draws L with N(0, 0.5) entries and d in [0.3, 1.3) from the test's own
 * generator, so every rank builds the same model. */
static void make_model(uint64_t seed, int64_t m, slice s, model *out)
{
  double draws[P];

  memset(out, 0, sizeof(*out));
  out->m = m;
  tcx_test_randn(seed, out->l, m * P);
  for (int64_t k = 0; k < m * P; k++)
    out->l[k] *= sqrt(0.5);
  tcx_test_randn(seed + 1000, draws, P);
  for (int64_t i = 0; i < P; i++)
    out->d[i] = 0.3 + fabs(draws[i]) / (1.0 + fabs(draws[i]));
  take_columns(m, out->l, s, out->l_local);
  take_columns(1, out->d, s, out->d_local);
}

/* sigma = diag(d) + L^T L, P x P row-major. */
static void dense_covariance(const model *a, double *sigma)
{
  for (int64_t i = 0; i < P; i++) {
    for (int64_t k = 0; k < P; k++) {
      double sum = i == k ? a->d[i] : 0.0;

      for (int64_t j = 0; j < a->m; j++)
        sum += a->l[j * P + i] * a->l[j * P + k];
      sigma[i * P + k] = sum;
    }
  }
}

/* inverse = Sigma^{-1} by Cholesky (dpotrf, dpotri), both triangles. */
static void dense_precision(const model *a, double *inverse)
{
  dense_covariance(a, inverse);
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  for (int64_t i = 0; i < P; i++) {
    for (int64_t k = i + 1; k < P; k++)
      inverse[i * P + k] = inverse[k * P + i];
  }
}

/* Asserts error <= tolerance * scale on every rank. */
static void assert_error_all(double error, double scale, const char *label)
{
  int ok = error <= tolerance * scale;

  if (!ok)
    fprintf(stderr, "[rank %d] %s: error %.3g, scale %.3g, tolerance %.3g\n",
            tcx_ctx_rank(tcx_test_ctx()), label, error, scale, tolerance);
  assert_true(tcx_test_all_ok(ok, label));
}

/* Asserts |actual - expected| <= tolerance |expected| on every rank. */
static void assert_relative_all(double actual, double expected,
                                const char *label)
{
  if (fabs(actual - expected) > tolerance * fabs(expected))
    fprintf(stderr, "[rank %d] %s: got %.17g, expected %.17g\n",
            tcx_ctx_rank(tcx_test_ctx()), label, actual, expected);
  assert_error_all(fabs(actual - expected), fabs(expected), label);
}

/* Gathers the local m x n_local blocks into the full m x P matrix on every
 * rank. Test-only: the library never exchanges p-sized data. */
static void gather_columns(int64_t m, const double *local, slice s,
                           double *full)
{
  memset(full, 0, (size_t)(m * P) * sizeof(double));
  for (int64_t j = 0; j < m; j++)
    memcpy(full + j * P + s.col_begin, local + j * s.n_local,
           (size_t)s.n_local * sizeof(double));
  assert_int_equal(MPI_Allreduce(MPI_IN_PLACE, full, (int)(m * P),
                                 MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                   MPI_SUCCESS);
}

static double frobenius_of_difference(const double *a, const double *b)
{
  double sum = 0.0;

  for (int64_t k = 0; k < P * P; k++)
    sum += (a[k] - b[k]) * (a[k] - b[k]);
  return sqrt(sum);
}

static double row_norm_of_difference(const double *a, const double *b,
                                     int64_t row)
{
  double sum = 0.0;

  for (int64_t k = 0; k < P; k++) {
    const double diff = a[row * P + k] - b[row * P + k];

    sum += diff * diff;
  }
  return sqrt(sum);
}

/* Compares this rank's row norms with the dense rows of a - b, then agrees
 * once, because ranks own different numbers of rows. */
static void assert_rows_match(const double *norms, const double *a,
                              const double *b, slice s, const char *label)
{
  int ok = 1;

  for (int64_t i = 0; i < s.n_local; i++) {
    const double expected = row_norm_of_difference(a, b, s.col_begin + i);

    if (fabs(norms[i] - expected) > tolerance * expected) {
      fprintf(stderr, "[rank %d] %s: variable %lld: got %.17g, expected "
              "%.17g\n", tcx_ctx_rank(tcx_test_ctx()), label,
              (long long)(s.col_begin + i), norms[i], expected);
      ok = 0;
    }
  }
  assert_true(tcx_test_all_ok(ok, label));
}

static void nll_matches_dense(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  model a;
  double x[N * P], x_local[N * P], sigma[P * P], solved[P * N];
  double log_det = 0.0, quad_sum = 0.0, expected, nll = 0.0;

  (void)state;
  make_model(11, M1, s, &a);
  tcx_test_randn(12, x, N * P);
  take_columns(N, x, s, x_local);

  /* Dense: Sigma = C C^T, log det = 2 sum log C_ii, quad_r = x_r Sigma^-1 x_r^T. */
  dense_covariance(&a, sigma);
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, sigma, P), 0);
  for (int64_t i = 0; i < P; i++)
    log_det += 2.0 * log(sigma[i * P + i]);
  for (int64_t i = 0; i < P; i++) {
    for (int64_t r = 0; r < N; r++)
      solved[i * N + r] = x[r * P + i];
  }
  assert_int_equal(
      LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', P, N, sigma, P, solved, N), 0);
  for (int64_t r = 0; r < N; r++) {
    for (int64_t i = 0; i < P; i++)
      quad_sum += x[r * P + i] * solved[i * N + r];
  }
  expected = 0.5 * (P * log(2.0 * M_PI) + log_det + quad_sum / N);

  assert_int_equal(tcx_lowrank_nll(ctx, M1, s.n_local, a.l_local, a.d_local,
                                   N, x_local, &nll),
                   TCX_OK);
  assert_relative_all(nll, expected, "low-rank NLL vs dense");
}

/* d = 0 in the last column, which lives on the last rank: every rank must
 * return the error instead of waiting in the reduction. */
static void nll_rejects_zero_noise_on_one_rank(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  model a;
  double x[N * P], x_local[N * P], nll = 0.0;

  (void)state;
  make_model(21, M1, s, &a);
  if (s.col_begin + s.n_local == P)
    a.d_local[s.n_local - 1] = 0.0;
  tcx_test_randn(22, x, N * P);
  take_columns(N, x, s, x_local);
  assert_int_equal(tcx_lowrank_nll(ctx, M1, s.n_local, a.l_local, a.d_local,
                                   N, x_local, &nll),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "not positive"));
}

static void nll_rejects_nan_in_data(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  model a;
  double x[N * P], x_local[N * P], nll = 0.0;

  (void)state;
  make_model(23, M1, s, &a);
  tcx_test_randn(24, x, N * P);
  x[3 * P + 0] = NAN; /* row 3, column 0: on rank 0 */
  take_columns(N, x, s, x_local);
  assert_int_equal(tcx_lowrank_nll(ctx, M1, s.n_local, a.l_local, a.d_local,
                                   N, x_local, &nll),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "row 3"));
}

static void precision_matches_dense_inverse(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  model a;
  double e_local[P], v_local[M1 * P], e[P], v[M1 * P], inverse[P * P];
  double max_error = 0.0, max_entry = 0.0;

  (void)state;
  make_model(31, M1, s, &a);
  assert_int_equal(tcx_lowrank_precision(ctx, M1, s.n_local, a.l_local,
                                         a.d_local, e_local, v_local),
                   TCX_OK);
  gather_columns(1, e_local, s, e);
  gather_columns(M1, v_local, s, v);
  dense_precision(&a, inverse);

  for (int64_t i = 0; i < P; i++) {
    for (int64_t k = 0; k < P; k++) {
      double entry = i == k ? e[i] : 0.0;

      for (int64_t j = 0; j < M1; j++)
        entry -= v[j * P + i] * v[j * P + k];
      max_error = fmax(max_error, fabs(entry - inverse[i * P + k]));
      max_entry = fmax(max_entry, fabs(inverse[i * P + k]));
    }
  }
  assert_error_all(max_error, max_entry,
                   "max |diag(e) - V^T V - dense inverse| vs max |inverse|");
}

/* Precision factors of two models with different numbers of factors. */
static void two_precisions(slice s, model *a, model *b, double *e1,
                           double *v1, double *e2, double *v2)
{
  tcx_ctx *ctx = tcx_test_ctx();

  make_model(41, M1, s, a);
  make_model(42, M2, s, b);
  assert_int_equal(tcx_lowrank_precision(ctx, M1, s.n_local, a->l_local,
                                         a->d_local, e1, v1),
                   TCX_OK);
  assert_int_equal(tcx_lowrank_precision(ctx, M2, s.n_local, b->l_local,
                                         b->d_local, e2, v2),
                   TCX_OK);
}

static void diff_frobenius_of_precisions(void **state)
{
  const slice s = local_slice();
  model a, b;
  double e1[P], v1[M1 * P], e2[P], v2[M2 * P];
  double inverse1[P * P], inverse2[P * P], norm = -1.0;

  (void)state;
  two_precisions(s, &a, &b, e1, v1, e2, v2);
  dense_precision(&a, inverse1);
  dense_precision(&b, inverse2);
  assert_int_equal(tcx_lowrank_diff_frobenius(tcx_test_ctx(), s.n_local, M1,
                                              e1, v1, M2, e2, v2, &norm),
                   TCX_OK);
  assert_relative_all(norm, frobenius_of_difference(inverse1, inverse2),
                      "||P1 - P2||_F vs dense");
}

/* Covariances diag(d_k) + L_k^T L_k go in as (d1, L2, d2, L1). */
static void diff_frobenius_of_covariances(void **state)
{
  const slice s = local_slice();
  model a, b;
  double sigma1[P * P], sigma2[P * P], norm = -1.0;

  (void)state;
  make_model(51, M1, s, &a);
  make_model(52, M2, s, &b);
  dense_covariance(&a, sigma1);
  dense_covariance(&b, sigma2);
  assert_int_equal(tcx_lowrank_diff_frobenius(tcx_test_ctx(), s.n_local, M2,
                                              a.d_local, b.l_local, M1,
                                              b.d_local, a.l_local, &norm),
                   TCX_OK);
  assert_relative_all(norm, frobenius_of_difference(sigma1, sigma2),
                      "||Sigma1 - Sigma2||_F vs dense");
}

/* The difference of a precision with itself is zero up to the cancellation
 * documented in the header: about 1e-8 of ||V^T V||_F. */
static void diff_frobenius_of_equal_matrices(void **state)
{
  const slice s = local_slice();
  model a;
  double e[P], v[M1 * P], inverse[P * P], norm = -1.0;
  const double zero[P * P] = {0};
  int ok;

  (void)state;
  make_model(61, M1, s, &a);
  assert_int_equal(tcx_lowrank_precision(tcx_test_ctx(), M1, s.n_local,
                                         a.l_local, a.d_local, e, v),
                   TCX_OK);
  dense_precision(&a, inverse);
  assert_int_equal(tcx_lowrank_diff_frobenius(tcx_test_ctx(), s.n_local, M1,
                                              e, v, M1, e, v, &norm),
                   TCX_OK);
  ok = norm >= 0.0 && norm <= 1e-6 * frobenius_of_difference(inverse, zero);
  if (!ok)
    fprintf(stderr, "[rank %d] ||P - P||_F = %.3g\n",
            tcx_ctx_rank(tcx_test_ctx()), norm);
  assert_true(tcx_test_all_ok(ok, "||P - P||_F is about zero"));
}

static void diff_row_norms_of_precisions(void **state)
{
  const slice s = local_slice();
  model a, b;
  double e1[P], v1[M1 * P], e2[P], v2[M2 * P], norms[P];
  double inverse1[P * P], inverse2[P * P];

  (void)state;
  two_precisions(s, &a, &b, e1, v1, e2, v2);
  dense_precision(&a, inverse1);
  dense_precision(&b, inverse2);
  assert_int_equal(tcx_lowrank_diff_row_norms(tcx_test_ctx(), s.n_local, M1,
                                              e1, v1, M2, e2, v2, norms),
                   TCX_OK);
  assert_rows_match(norms, inverse1, inverse2, s, "precision row norms vs dense");
}

static void diff_row_norms_of_covariances(void **state)
{
  const slice s = local_slice();
  model a, b;
  double sigma1[P * P], sigma2[P * P], norms[P];

  (void)state;
  make_model(71, M1, s, &a);
  make_model(72, M2, s, &b);
  dense_covariance(&a, sigma1);
  dense_covariance(&b, sigma2);
  assert_int_equal(tcx_lowrank_diff_row_norms(tcx_test_ctx(), s.n_local, M2,
                                              a.d_local, b.l_local, M1,
                                              b.d_local, a.l_local, norms),
                   TCX_OK);
  assert_rows_match(norms, sigma1, sigma2, s, "covariance row norms vs dense");
}

/* Returns max |lambda| of the symmetric P x P matrix a - b from LAPACK's
 * dense symmetric eigensolver. */
static double dense_spectral_norm_of_difference(const double *a,
                                                const double *b)
{
  double difference[P * P], eigenvalues[P];

  for (int64_t k = 0; k < P * P; k++)
    difference[k] = a[k] - b[k];
  assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', P, difference, P,
                                 eigenvalues),
                   0);
  /* dsyev sorts the eigenvalues in ascending order. */
  return fmax(fabs(eigenvalues[0]), fabs(eigenvalues[P - 1]));
}

/* Lanczos tolerance for the tests: far below the 1e-9 checked, because
 * the eigenvalue error is at most the residual. */
static const double lanczos_tolerance = 1e-12;

static void diff_spectral_of_precisions(void **state)
{
  const slice s = local_slice();
  model a, b;
  double e1[P], v1[M1 * P], e2[P], v2[M2 * P];
  double inverse1[P * P], inverse2[P * P], norm = -1.0;
  int64_t iterations = 0;

  (void)state;
  two_precisions(s, &a, &b, e1, v1, e2, v2);
  dense_precision(&a, inverse1);
  dense_precision(&b, inverse2);
  assert_int_equal(tcx_lowrank_diff_spectral(
                       tcx_test_ctx(), s.n_local, s.col_begin, M1, e1, v1, M2,
                       e2, v2, P, lanczos_tolerance, &norm, &iterations),
                   TCX_OK);
  assert_relative_all(norm, dense_spectral_norm_of_difference(inverse1,
                                                              inverse2),
                      "||P1 - P2||_2 vs dsyev");
  assert_true(tcx_test_all_ok(iterations >= 1 && iterations <= P,
                              "Lanczos steps within [1, p]"));
}

static void diff_spectral_of_covariances(void **state)
{
  const slice s = local_slice();
  model a, b;
  double sigma1[P * P], sigma2[P * P], norm = -1.0;

  (void)state;
  make_model(53, M1, s, &a);
  make_model(54, M2, s, &b);
  dense_covariance(&a, sigma1);
  dense_covariance(&b, sigma2);
  assert_int_equal(tcx_lowrank_diff_spectral(
                       tcx_test_ctx(), s.n_local, s.col_begin, M2, a.d_local,
                       b.l_local, M1, b.d_local, a.l_local, P,
                       lanczos_tolerance, &norm, NULL),
                   TCX_OK);
  assert_relative_all(norm, dense_spectral_norm_of_difference(sigma1, sigma2),
                      "||Sigma1 - Sigma2||_2 vs dsyev");
}

/* Two covariances with the same diagonal: the difference is low-rank and
 * indefinite, so the largest eigenvalue in magnitude may be negative. */
static void diff_spectral_of_low_rank_difference(void **state)
{
  const slice s = local_slice();
  model a, b;
  double sigma1[P * P], sigma2[P * P], norm = -1.0;

  (void)state;
  make_model(55, M1, s, &a);
  make_model(56, M2, s, &b);
  memcpy(b.d, a.d, sizeof(a.d));
  memcpy(b.d_local, a.d_local, sizeof(a.d_local));
  dense_covariance(&a, sigma1);
  dense_covariance(&b, sigma2);
  assert_int_equal(tcx_lowrank_diff_spectral(
                       tcx_test_ctx(), s.n_local, s.col_begin, M2, a.d_local,
                       b.l_local, M1, b.d_local, a.l_local, P,
                       lanczos_tolerance, &norm, NULL),
                   TCX_OK);
  assert_relative_all(norm, dense_spectral_norm_of_difference(sigma1, sigma2),
                      "||L1^T L1 - L2^T L2||_2 vs dsyev");
}

static void diff_spectral_of_equal_matrices(void **state)
{
  const slice s = local_slice();
  model a;
  double e[P], v[M1 * P], inverse[P * P], norm = -1.0;
  const double zero[P * P] = {0};
  int ok;

  (void)state;
  make_model(62, M1, s, &a);
  assert_int_equal(tcx_lowrank_precision(tcx_test_ctx(), M1, s.n_local,
                                         a.l_local, a.d_local, e, v),
                   TCX_OK);
  dense_precision(&a, inverse);
  assert_int_equal(tcx_lowrank_diff_spectral(tcx_test_ctx(), s.n_local,
                                             s.col_begin, M1, e, v, M1, e, v,
                                             P, lanczos_tolerance, &norm,
                                             NULL),
                   TCX_OK);
  ok = norm >= 0.0 &&
       norm <= 1e-12 * dense_spectral_norm_of_difference(inverse, zero);
  if (!ok)
    fprintf(stderr, "[rank %d] ||P - P||_2 = %.3g\n",
            tcx_ctx_rank(tcx_test_ctx()), norm);
  assert_true(tcx_test_all_ok(ok, "||P - P||_2 is about zero"));
}

/* Too few Lanczos steps for the tolerance fail on every rank with a
 * numerical error that names the limit. */
static void diff_spectral_reports_no_convergence(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  model a, b;
  double e1[P], v1[M1 * P], e2[P], v2[M2 * P], norm = -1.0;

  (void)state;
  two_precisions(s, &a, &b, e1, v1, e2, v2);
  assert_int_equal(tcx_lowrank_diff_spectral(ctx, s.n_local, s.col_begin, M1,
                                             e1, v1, M2, e2, v2, 2, 1e-14,
                                             &norm, NULL),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "2 Lanczos steps"));
  assert_int_equal(tcx_lowrank_diff_spectral(ctx, s.n_local, s.col_begin, M1,
                                             e1, v1, M2, e2, v2, 0, 1e-8,
                                             &norm, NULL),
                   TCX_ERR_USAGE);
}

/* L = F diag(std) and d = std^2 (1 - ||F_:i||^2), entry by entry. */
static void from_factors_scales_columns(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double factors[M1 * P], std[P], l[M1 * P], d[P];

  (void)state;
  tcx_test_randn(81, factors, M1 * s.n_local);
  for (int64_t k = 0; k < M1 * s.n_local; k++)
    factors[k] *= 0.25; /* squared column norms well below 1 */
  tcx_test_randn(82, std, s.n_local);
  for (int64_t i = 0; i < s.n_local; i++)
    std[i] = 0.5 + fabs(std[i]);
  assert_int_equal(tcx_lowrank_from_factors(ctx, M1, s.n_local, factors, std,
                                            l, d),
                   TCX_OK);
  for (int64_t i = 0; i < s.n_local; i++) {
    double norm2 = 0.0;

    for (int64_t j = 0; j < M1; j++) {
      const double f = factors[j * s.n_local + i];

      norm2 += f * f;
      assert_true(fabs(l[j * s.n_local + i] - f * std[i]) <=
                  1e-15 * fabs(f * std[i]));
    }
    assert_true(fabs(d[i] - std[i] * std[i] * (1.0 - norm2)) <=
                1e-14 * d[i]);
  }
}

static void from_factors_rejects_unit_norm(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const double factors[2 * 3] = {0.8, 0.1, 0.0, 0.8, 0.1, 0.0};
  const double std[3] = {2.0, 1.0, 1.0};
  double l[2 * 3], d[3];

  (void)state;
  /* Column 0 has factors (0.8, 0.8): squared norm 1.28, so d_0 < 0. */
  assert_int_equal(tcx_lowrank_from_factors(ctx, 2, 3, factors, std, l, d),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx), "local column 0"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nll_matches_dense),
      cmocka_unit_test(nll_rejects_zero_noise_on_one_rank),
      cmocka_unit_test(nll_rejects_nan_in_data),
      cmocka_unit_test(precision_matches_dense_inverse),
      cmocka_unit_test(diff_frobenius_of_precisions),
      cmocka_unit_test(diff_frobenius_of_covariances),
      cmocka_unit_test(diff_frobenius_of_equal_matrices),
      cmocka_unit_test(diff_row_norms_of_precisions),
      cmocka_unit_test(diff_row_norms_of_covariances),
      cmocka_unit_test(diff_spectral_of_precisions),
      cmocka_unit_test(diff_spectral_of_covariances),
      cmocka_unit_test(diff_spectral_of_low_rank_difference),
      cmocka_unit_test(diff_spectral_of_equal_matrices),
      cmocka_unit_test(diff_spectral_reports_no_convergence),
      cmocka_unit_test(from_factors_scales_columns),
      cmocka_unit_test(from_factors_rejects_unit_norm),
  };

  return tcx_test_run(argc, argv, "lowrank", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
