/* Checks the block-cyclic ScaLAPACK matrices against dense computations in
 * plain loops and LAPACK: the low-rank covariance and precision, the HDF5
 * round trip, the sample covariance with Ledoit-Wolf and OAS shrinkage
 * from the formulas of their papers, and the Gaussian NLL. Every rank
 * builds the same random case and compares the blocks it stores. */
#include <hdf5.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcorex/block.h"
#include "tcorex/dense.h"
#include "tcorex/h5io.h"
#include "tcorex/lowrank.h"
#include "tcx_test.h"

enum {
  P = 37, /* variables: 2, 3 and 4 ranks split them unevenly */
  M = 4,  /* factors */
  N = 11  /* samples, fewer than P so that shrinkage matters */
};

/* Block sizes: 5 leaves a partial block of 2 (37 = 7 * 5 + 2), 1 is the
 * finest split and 64 puts the whole matrix in one block. */
static const int64_t block_sizes[] = {5, 1, 64};
enum { N_BLOCK_SIZES = sizeof(block_sizes) / sizeof(block_sizes[0]) };

/* Relative tolerance of the products against plain loops: both sum the
 * same m or n terms per entry in a different order. */
static const double product_tolerance = 1e-12;

/* Relative tolerance of the NLL against the low-rank form (Woodbury and
 * the determinant lemma round differently from a dense Cholesky). */
static const double nll_tolerance = 1e-9;

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

/* L with N(0, 0.5) entries and d in [0.3, 1.3). */
static void make_lowrank(uint64_t seed, double *l, double *d)
{
  double draws[P];

  tcx_test_randn(seed, l, M * P);
  for (int64_t k = 0; k < M * P; k++)
    l[k] *= sqrt(0.5);
  tcx_test_randn(seed + 1000, draws, P);
  for (int64_t i = 0; i < P; i++)
    d[i] = 0.3 + fabs(draws[i]) / (1.0 + fabs(draws[i]));
}

/* sigma = diag(d) + L^T L in plain loops, P x P row-major. */
static void dense_covariance(const double *l, const double *d, double *sigma)
{
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = 0; k < P; k++) {
      double sum = i == k ? d[i] : 0.0;

      for (int64_t j = 0; j < M; j++)
        sum += l[j * P + i] * l[j * P + k];
      sigma[i * P + k] = sum;
    }
}

static double max_abs(const double *a, int64_t count)
{
  double largest = 0.0;

  for (int64_t k = 0; k < count; k++)
    largest = fmax(largest, fabs(a[k]));
  return largest;
}

/* Compares every local entry of a with full (P x P row-major) relative to
 * the largest entry of full, and agrees over the ranks. */
static void assert_dense_equals(const tcx_dense *a, const double *full,
                                double tolerance, const char *label)
{
  const double scale = max_abs(full, P * P);
  double worst = 0.0;
  int64_t checked = 0;
  int ok;

  for (int64_t lc = 0; lc < a->local_cols; lc++)
    for (int64_t lr = 0; lr < a->local_rows; lr++) {
      const int64_t i = tcx_dense_global_row(a, lr);
      const int64_t k = tcx_dense_global_col(a, lc);

      worst = fmax(worst, fabs(a->local[lc * a->leading_dim + lr] -
                               full[i * P + k]));
      checked++;
    }
  ok = worst <= tolerance * scale;
  if (!ok)
    fprintf(stderr, "[rank %d] %s: max error %.3g, scale %.3g\n",
            tcx_ctx_rank(tcx_test_ctx()), label, worst, scale);
  assert_true(tcx_test_all_ok(ok, label));

  /* The ranks together hold every entry exactly once. */
  assert_int_equal(MPI_Allreduce(MPI_IN_PLACE, &checked, 1, MPI_INT64_T,
                                 MPI_SUM, MPI_COMM_WORLD),
                   MPI_SUCCESS);
  assert_int_equal(checked, P * P);
}

/* Sets the local blocks of a from full. */
static void fill_dense(tcx_dense *a, const double *full)
{
  for (int64_t lc = 0; lc < a->local_cols; lc++)
    for (int64_t lr = 0; lr < a->local_rows; lr++)
      a->local[lc * a->leading_dim + lr] =
          full[tcx_dense_global_row(a, lr) * P + tcx_dense_global_col(a, lc)];
}

static void grid_is_nearly_square(void **state)
{
  static const int expected_rows[] = {0, 1, 1, 1, 2};
  tcx_ctx *ctx = tcx_test_ctx();
  const int size = tcx_ctx_size(ctx);
  tcx_grid *grid = NULL;
  int n_prow, n_pcol, my_row, my_col;

  (void)state;
  assert_int_equal(tcx_grid_create(ctx, 5, &grid), TCX_OK);
  tcx_grid_shape(grid, &n_prow, &n_pcol, &my_row, &my_col);
  if (size <= 4)
    assert_int_equal(n_prow, expected_rows[size]);
  assert_int_equal(n_prow * n_pcol, size);
  assert_int_equal(my_row * n_pcol + my_col, tcx_ctx_rank(ctx));
  tcx_grid_destroy(&grid);
  assert_null(grid);
  assert_int_equal(tcx_grid_create(ctx, 0, &grid), TCX_ERR_USAGE);
  assert_null(grid);
}

static void lowrank_export_matches_loops(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double l[M * P], d[P], l_local[M * P], d_local[P], sigma[P * P];

  (void)state;
  make_lowrank(21, l, d);
  take_columns(M, l, s, l_local);
  take_columns(1, d, s, d_local);
  dense_covariance(l, d, sigma);
  for (int b = 0; b < N_BLOCK_SIZES; b++) {
    tcx_grid *grid = NULL;
    tcx_dense *a = NULL;

    assert_int_equal(tcx_grid_create(ctx, block_sizes[b], &grid), TCX_OK);
    assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
    assert_int_equal(
        tcx_dense_from_lowrank(ctx, M, s.n_local, l_local, d_local, 1.0, a),
        TCX_OK);
    assert_dense_equals(a, sigma, product_tolerance, "covariance export");
    tcx_dense_destroy(&a);
    tcx_grid_destroy(&grid);
  }
}

static void precision_matches_dpotri(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double l[M * P], d[P], l_local[M * P], d_local[P], inverse[P * P];
  double e[P], v[M * P];
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;

  (void)state;
  make_lowrank(31, l, d);
  take_columns(M, l, s, l_local);
  take_columns(1, d, s, d_local);
  dense_covariance(l, d, inverse);
  assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', P, inverse, P), 0);
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = i + 1; k < P; k++)
      inverse[i * P + k] = inverse[k * P + i];

  assert_int_equal(
      tcx_lowrank_precision(ctx, M, s.n_local, l_local, d_local, e, v),
      TCX_OK);
  assert_int_equal(tcx_grid_create(ctx, 5, &grid), TCX_OK);
  assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
  assert_int_equal(tcx_dense_from_lowrank(ctx, M, s.n_local, v, e, -1.0, a),
                   TCX_OK);
  /* The inverse has condition number below 100 here; dpotri and the
   * Woodbury form then agree to about 1e-14. */
  assert_dense_equals(a, inverse, 1e-11, "precision");
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
}

/* Reads all of dataset name (count doubles) with serial HDF5. */
static void read_whole(const char *path, const char *name, double *data)
{
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);

  assert_true(file >= 0);
  assert_true(dataset >= 0);
  assert_true(H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, data) >= 0);
  H5Dclose(dataset);
  H5Fclose(file);
}

static void hdf5_round_trip(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double l[M * P], d[P], l_local[M * P], d_local[P], sigma[P * P];
  double twice[P * P], file_sigma[P * P], file_twice[P * P], worst = 0.0;
  double *stored = malloc(2 * P * P * sizeof(double));
  tcx_grid *grid = NULL, *other_grid = NULL;
  tcx_dense *a = NULL, *b = NULL;
  tcx_h5_output *out = NULL;
  char path[512], temp[600];

  (void)state;
  assert_non_null(stored);
  make_lowrank(41, l, d);
  take_columns(M, l, s, l_local);
  take_columns(1, d, s, d_local);
  dense_covariance(l, d, sigma);
  tcx_test_temp_path(".h5", path, sizeof(path));

  assert_int_equal(tcx_grid_create(ctx, 5, &grid), TCX_OK);
  assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
  assert_int_equal(
      tcx_dense_from_lowrank(ctx, M, s.n_local, l_local, d_local, 1.0, a),
      TCX_OK);
  assert_int_equal(tcx_h5_create(ctx, path, &out), TCX_OK);
  assert_int_equal(tcx_h5_write_dense(ctx, out, "/covariance", 2, 0, a),
                   TCX_OK);
  for (int64_t k = 0; k < a->leading_dim * a->local_cols; k++)
    a->local[k] *= 2.0;
  assert_int_equal(tcx_h5_write_dense(ctx, out, "/covariance", 2, 1, a),
                   TCX_OK);
  snprintf(temp, sizeof(temp), "%s.tmp", path);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(tcx_h5_commit(ctx, &out), TCX_OK);
  assert_int_equal(access(temp, F_OK), -1);

  /* Every rank reads the whole file serially, an independent reader. The
   * file stores entry (i, k) at [k, i]; each rank's blocks must be there
   * bit for bit, and the matrices must equal the loops' ones. */
  read_whole(path, "/covariance", stored);
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = 0; k < P; k++) {
      file_sigma[i * P + k] = stored[k * P + i];
      file_twice[i * P + k] = stored[P * P + k * P + i];
    }
  assert_dense_equals(a, file_twice, 0.0, "second slice of the file");
  for (int64_t k = 0; k < P * P; k++)
    twice[k] = 2.0 * file_sigma[k];
  assert_true(tcx_test_all_ok(memcmp(twice, file_twice, sizeof(twice)) == 0,
                              "second slice is twice the first"));
  for (int64_t k = 0; k < P * P; k++)
    worst = fmax(worst, fabs(file_sigma[k] - sigma[k]));
  assert_true(worst <= product_tolerance * max_abs(sigma, P * P));

  /* Another block size reads it back. */
  assert_int_equal(tcx_grid_create(ctx, 3, &other_grid), TCX_OK);
  assert_int_equal(tcx_dense_create(ctx, other_grid, P, P, &b), TCX_OK);
  assert_int_equal(tcx_h5_read_dense(ctx, path, "/covariance", 1, b), TCX_OK);
  assert_dense_equals(b, file_twice, 0.0, "read back with block size 3");
  assert_int_equal(tcx_h5_read_dense(ctx, path, "/covariance", 2, b),
                   TCX_ERR_INPUT);

  tcx_dense_destroy(&a);
  tcx_dense_destroy(&b);
  tcx_grid_destroy(&grid);
  tcx_grid_destroy(&other_grid);
  if (tcx_ctx_rank(ctx) == 0)
    unlink(path);
  free(stored);
}

/* Centred random rows, N x P row-major, with unequal column scales. */
static void make_rows(uint64_t seed, double *x)
{
  tcx_test_randn(seed, x, N * P);
  for (int64_t i = 0; i < P; i++) {
    double mean = 0.0;

    for (int64_t r = 0; r < N; r++)
      mean += x[r * P + i] / N;
    for (int64_t r = 0; r < N; r++)
      x[r * P + i] = (x[r * P + i] - mean) * (1.0 + 0.1 * (double)(i % 7));
  }
}

/* S = X^T X / n in plain loops. */
static void dense_sample(const double *x, double *s)
{
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = 0; k < P; k++) {
      double sum = 0.0;

      for (int64_t r = 0; r < N; r++)
        sum += x[r * P + i] * x[r * P + k];
      s[i * P + k] = sum / N;
    }
}

/* The Ledoit-Wolf intensity as the 2004 paper writes it, with the scaled
 * norm ||A||^2 = tr(A A^T) / p: m = tr(S) / p, d^2 = ||S - m I||^2,
 * b-bar^2 = (1/n^2) sum_k ||x_k x_k^T - S||^2, b^2 = min(b-bar^2, d^2),
 * rho = b^2 / d^2. The outer products are formed explicitly. */
static double ledoit_wolf_rho(const double *x, const double *s)
{
  double trace = 0.0, d2 = 0.0, b_bar2 = 0.0;

  for (int64_t i = 0; i < P; i++)
    trace += s[i * P + i];
  for (int64_t i = 0; i < P; i++)
    for (int64_t k = 0; k < P; k++) {
      const double entry = s[i * P + k] - (i == k ? trace / P : 0.0);

      d2 += entry * entry / P;
    }
  for (int64_t r = 0; r < N; r++)
    for (int64_t i = 0; i < P; i++)
      for (int64_t k = 0; k < P; k++) {
        const double entry = x[r * P + i] * x[r * P + k] - s[i * P + k];

        b_bar2 += entry * entry / P / ((double)N * N);
      }
  return fmin(b_bar2, d2) / d2;
}

/* The OAS intensity of Chen et al. (2010), eq. 23, with tr(S^2) from the
 * explicit matrix product. */
static double oas_rho(const double *s)
{
  double trace = 0.0, trace_s2 = 0.0;

  for (int64_t i = 0; i < P; i++) {
    trace += s[i * P + i];
    for (int64_t k = 0; k < P; k++)
      trace_s2 += s[i * P + k] * s[k * P + i];
  }
  return fmin(1.0, ((1.0 - 2.0 / P) * trace_s2 + trace * trace) /
                       ((N + 1.0 - 2.0 / P) * (trace_s2 - trace * trace / P)));
}

static void shrinkage_matches_closed_forms(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double x[N * P], x_local[N * P], sample[P * P], shrunk[P * P];
  const tcx_shrinkage_method methods[2] = {TCX_SHRINKAGE_LEDOIT_WOLF,
                                           TCX_SHRINKAGE_OAS};
  const char *labels[2] = {"Ledoit-Wolf", "OAS"};
  double expected_rho[2], trace = 0.0;

  (void)state;
  make_rows(51, x);
  take_columns(N, x, s, x_local);
  dense_sample(x, sample);
  for (int64_t i = 0; i < P; i++)
    trace += sample[i * P + i];
  expected_rho[0] = ledoit_wolf_rho(x, sample);
  expected_rho[1] = oas_rho(sample);
  /* Both intensities lie strictly inside (0, 1) here, so the clipping does
   * not hide an error in the formula. */
  assert_true(expected_rho[0] > 0.01 && expected_rho[0] < 0.99);
  assert_true(expected_rho[1] > 0.01 && expected_rho[1] < 0.99);

  for (int b = 0; b < N_BLOCK_SIZES; b++)
    for (int k = 0; k < 2; k++) {
      tcx_grid *grid = NULL;
      tcx_dense *a = NULL;
      double rho = -1.0, mu = -1.0;

      assert_int_equal(tcx_grid_create(ctx, block_sizes[b], &grid), TCX_OK);
      assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
      assert_int_equal(
          tcx_dense_sample_covariance(ctx, N, s.n_local, x_local, a), TCX_OK);
      assert_dense_equals(a, sample, product_tolerance, "sample covariance");
      assert_int_equal(tcx_dense_shrinkage(ctx, methods[k], N, s.n_local,
                                           x_local, a, &rho, &mu),
                       TCX_OK);
      tcx_test_assert_close_all(rho, expected_rho[k], 1e-12, labels[k]);
      tcx_test_assert_close_all(mu, trace / P, 1e-13, "mu = tr(S) / p");
      tcx_dense_shrink(a, rho, mu);
      for (int64_t i = 0; i < P; i++)
        for (int64_t j = 0; j < P; j++)
          shrunk[i * P + j] = (1.0 - expected_rho[k]) * sample[i * P + j] +
                              (i == j ? expected_rho[k] * trace / P : 0.0);
      assert_dense_equals(a, shrunk, product_tolerance, labels[k]);
      tcx_dense_destroy(&a);
      tcx_grid_destroy(&grid);
    }
}

static void nll_equals_lowrank(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double l[M * P], d[P], l_local[M * P], d_local[P], sigma[P * P];
  double x[N * P], x_local[N * P];

  (void)state;
  make_lowrank(61, l, d);
  take_columns(M, l, s, l_local);
  take_columns(1, d, s, d_local);
  dense_covariance(l, d, sigma);
  tcx_test_randn(62, x, N * P);
  take_columns(N, x, s, x_local);

  for (int b = 0; b < N_BLOCK_SIZES; b++) {
    tcx_grid *grid = NULL;
    tcx_dense *a = NULL;
    double dense_nll = 0.0, lowrank_nll = 0.0;

    assert_int_equal(tcx_grid_create(ctx, block_sizes[b], &grid), TCX_OK);
    assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
    fill_dense(a, sigma);
    assert_int_equal(tcx_dense_nll(ctx, a, N, s.n_local, x_local, &dense_nll),
                     TCX_OK);
    assert_int_equal(tcx_lowrank_nll(ctx, M, s.n_local, l_local, d_local, N,
                                     x_local, &lowrank_nll),
                     TCX_OK);
    tcx_test_assert_close_all(dense_nll, lowrank_nll, nll_tolerance,
                              "dense NLL against low-rank NLL");
    tcx_dense_destroy(&a);
    tcx_grid_destroy(&grid);
  }
}

static void nll_rejects_indefinite_matrix(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const slice s = local_slice();
  double sigma[P * P], x[N * P], x_local[N * P], nll = 0.0;
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;

  (void)state;
  memset(sigma, 0, sizeof(sigma));
  for (int64_t i = 0; i < P; i++)
    sigma[i * P + i] = i == 20 ? -1.0 : 1.0;
  tcx_test_randn(71, x, N * P);
  take_columns(N, x, s, x_local);
  assert_int_equal(tcx_grid_create(ctx, 5, &grid), TCX_OK);
  assert_int_equal(tcx_dense_create(ctx, grid, P, P, &a), TCX_OK);
  fill_dense(a, sigma);
  assert_int_equal(tcx_dense_nll(ctx, a, N, s.n_local, x_local, &nll),
                   TCX_ERR_NUMERIC);
  assert_non_null(
      strstr(tcx_ctx_message(ctx), "PDPOTRF failed with info = 21"));

  x_local[0] = NAN;
  fill_dense(a, sigma);
  assert_int_equal(tcx_dense_sample_covariance(ctx, N, s.n_local, x_local, a),
                   TCX_ERR_NUMERIC);
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(grid_is_nearly_square),
      cmocka_unit_test(lowrank_export_matches_loops),
      cmocka_unit_test(precision_matches_dpotri),
      cmocka_unit_test(hdf5_round_trip),
      cmocka_unit_test(shrinkage_matches_closed_forms),
      cmocka_unit_test(nll_equals_lowrank),
      cmocka_unit_test(nll_rejects_indefinite_matrix),
  };

  return tcx_test_run(argc, argv, "dense", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
