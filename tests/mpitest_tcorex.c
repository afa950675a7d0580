/* T-CorEx on column blocks: priors, the closed-form objective against a dense
 * computation from its definition, the gradient against central finite
 * differences, and fits that must not depend on the number of ranks. Data:
 * 4 periods of 5, 9, 6 and 8 rows, p = 13 variables, m = 3 factors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/tcorex.h"

#include "tcx_test.h"

enum { NT = 4, P = 13, M = 3, N_ROWS = 28 };

/* Every MPI_Allreduce of this process, counted through the MPI profiling
 * interface; the call itself goes to PMPI_Allreduce. */
static long allreduce_calls;

int MPI_Allreduce(const void *send, void *receive, int count,
                  MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
  allreduce_calls++;
  return PMPI_Allreduce(send, receive, count, type, op, comm);
}

static const int64_t period_rows[NT] = {5, 9, 6, 8};
static const int64_t period_begin[NT + 1] = {0, 5, 14, 20, 28};

/* Fills x [N_ROWS, P] from a 3-factor model whose loadings, means and scales
 * change over time; with_missing puts NaN at a few entries. */
static void make_data(int with_missing, double *x)
{
  double z[N_ROWS * M], noise[N_ROWS * P];

  tcx_test_randn(11, z, N_ROWS * M);
  tcx_test_randn(12, noise, N_ROWS * P);
  for (int t = 0; t < NT; t++)
    for (int64_t row = period_begin[t]; row < period_begin[t + 1]; row++)
      for (int i = 0; i < P; i++) {
        const int factor = (i + (t >= 2 ? 1 : 0)) % M;
        const double loading = 0.6 + 0.05 * i + 0.1 * t;

        x[row * P + i] = (1.0 + 0.3 * t + 0.1 * i) *
                             (loading * z[row * M + factor] +
                              0.7 * noise[row * P + i]) +
                         0.5 * t - 0.2 * i;
      }
  if (with_missing) {
    x[2 * P + 4] = NAN;
    x[10 * P + 7] = NAN;
    x[11 * P + 7] = NAN;
    x[27 * P + 12] = NAN;
  }
}

/* Creates this rank's block of the columns of x_full [N_ROWS, P]. */
static tcx_block *make_block(tcx_ctx *ctx, const double *x_full)
{
  int64_t begin, count;
  tcx_block *block = NULL;

  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &count),
                   TCX_OK);
  assert_int_equal(tcx_block_create(ctx, NT, period_rows, P, begin, count,
                                    &block),
                   TCX_OK);
  for (int64_t row = 0; row < N_ROWS; row++)
    for (int64_t i = 0; i < count; i++)
      block->data[row * count + i] = x_full[row * P + begin + i];
  return block;
}

/* Copies columns begin .. begin + count - 1 of a [rows, P] matrix. */
static void take_columns(const double *full, int64_t rows, int64_t begin,
                         int64_t count, double *local)
{
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < count; i++)
      local[r * count + i] = full[r * P + begin + i];
}

static void make_weights(uint64_t seed, double *w)
{
  tcx_test_randn(seed, w, NT * M * P);
  for (int k = 0; k < NT * M * P; k++)
    w[k] *= 0.4;
}

static void base_options(tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = M;
  options->gamma = 0.6;
  options->l1 = 0.3;
  options->l2 = 0.5;
}

/* ---- Dense reference, straight from the definitions. ---- */

/* Window half-length: smallest k whose periods hold max_samples rows. */
static int dense_half_length(int t, int64_t max_samples)
{
  for (int k = 0; k <= NT; k++) {
    int64_t rows = 0;

    for (int s = 0; s < NT; s++)
      if (abs(s - t) <= k)
        rows += period_rows[s];
    if (rows >= max_samples)
      return k;
  }
  return NT + 1;
}

/* Weighted mean and population std per period over the full window,
 * skipping NaN; then period t standardised with its own prior and NaN set
 * to 0. */
static void dense_priors(const double *x, double gamma, int64_t max_samples,
                         double *mean, double *std, double *xs)
{
  for (int t = 0; t < NT; t++) {
    const int half = dense_half_length(t, max_samples);

    for (int i = 0; i < P; i++) {
      double sum = 0.0, weight = 0.0, square = 0.0;

      for (int s = 0; s < NT; s++) {
        if (abs(s - t) > half)
          continue;
        for (int64_t row = period_begin[s]; row < period_begin[s + 1]; row++)
          if (!isnan(x[row * P + i])) {
            sum += pow(gamma, abs(s - t)) * x[row * P + i];
            weight += pow(gamma, abs(s - t));
          }
      }
      mean[t * P + i] = sum / weight;
      for (int s = 0; s < NT; s++) {
        if (abs(s - t) > half)
          continue;
        for (int64_t row = period_begin[s]; row < period_begin[s + 1]; row++)
          if (!isnan(x[row * P + i])) {
            const double d = x[row * P + i] - mean[t * P + i];

            square += pow(gamma, abs(s - t)) * d * d;
          }
      }
      std[t * P + i] = sqrt(square / weight);
      for (int64_t row = period_begin[t]; row < period_begin[t + 1]; row++)
        xs[row * P + i] = isnan(x[row * P + i])
                              ? 0.0
                              : (x[row * P + i] - mean[t * P + i]) /
                                    std[t * P + i];
    }
  }
}

static double clampd(double v, double low, double high)
{
  return v < low ? low : (v > high ? high : v);
}

/* Dense objective parts for standardised data xs [N_ROWS, P] and weights w
 * [NT, M, P]. Forms Sigma^w_t and C_t as P x P matrices. */
static void dense_objective(const double *xs, const tcx_tcorex_options *o,
                            double eps, const double *w, double *main_part,
                            double *l1_part, double *l2_part)
{
  const double a2 = 1.0 - eps * eps, e2 = eps * eps;
  static double mats[NT][P * P]; /* the regularised matrices M_t */
  int64_t mat_size = o->reg_type == TCX_TCOREX_REG_SIGMA ? P * P : M * P;
  double sum_f = 0.0, l1 = 0.0, l2 = 0.0;

  for (int t = 0; t < NT; t++) {
    const double *wt = w + t * M * P;
    const int half = dense_half_length(t, o->max_samples);
    double sw[P * P] = {0}, ct[P * P] = {0};
    double pw[M * P] = {0}, g[M * M] = {0}, pp[M * P] = {0}, gp[M * M] = {0};
    double r_mat[M * P], b[M * P], f_mat[M * P], cdiag[P], z2[M];
    double total_weight = 0.0, f_t = 0.0;

    /* Sigma^w: weighted window second moment; C_t: own second moment. */
    for (int s = 0; s < NT; s++)
      if (abs(s - t) <= half && pow(o->gamma, abs(s - t)) >= 1e-6)
        total_weight += pow(o->gamma, abs(s - t)) * period_rows[s];
    for (int s = 0; s < NT; s++) {
      double c;

      if (abs(s - t) > half || pow(o->gamma, abs(s - t)) < 1e-6)
        continue;
      c = pow(o->gamma, abs(s - t)) / total_weight;
      for (int64_t row = period_begin[s]; row < period_begin[s + 1]; row++)
        for (int i = 0; i < P; i++)
          for (int k = 0; k < P; k++)
            sw[i * P + k] += a2 * c * xs[row * P + i] * xs[row * P + k];
    }
    for (int64_t row = period_begin[t]; row < period_begin[t + 1]; row++)
      for (int i = 0; i < P; i++)
        for (int k = 0; k < P; k++)
          ct[i * P + k] +=
              a2 * xs[row * P + i] * xs[row * P + k] / period_rows[t];
    for (int i = 0; i < P; i++) {
      sw[i * P + i] += e2;
      ct[i * P + i] += e2;
    }

    /* P = W Sigma^w, G = W Sigma^w W^T + I; P' and G' with C_t. */
    for (int j = 0; j < M; j++)
      for (int i = 0; i < P; i++)
        for (int k = 0; k < P; k++) {
          pw[j * P + i] += wt[j * P + k] * sw[k * P + i];
          pp[j * P + i] += wt[j * P + k] * ct[k * P + i];
        }
    for (int j = 0; j < M; j++)
      for (int l = 0; l < M; l++) {
        for (int i = 0; i < P; i++) {
          g[j * M + l] += pw[j * P + i] * wt[l * P + i];
          gp[j * M + l] += pp[j * P + i] * wt[l * P + i];
        }
        g[j * M + l] += j == l;
        gp[j * M + l] += j == l;
      }
    for (int j = 0; j < M; j++)
      z2[j] = g[j * M + j];

    for (int i = 0; i < P; i++) {
      double r_i = 0.0;

      for (int j = 0; j < M; j++) {
        const double rr = pw[j * P + i] / sqrt(z2[j]);

        r_mat[j * P + i] = rr;
        r_i += rr * rr / clampd(1.0 - rr * rr, 1e-8, 1.0 - 1e-8);
      }
      for (int j = 0; j < M; j++) {
        const double rr = r_mat[j * P + i];
        const double rho_tilde = rr / clampd(1.0 - rr * rr, 1e-8, 1.0);

        b[j * P + i] = rho_tilde / (sqrt(z2[j]) * (1.0 + r_i));
        f_mat[j * P + i] = rho_tilde / (1.0 + r_i);
      }
      cdiag[i] = o->weighted_objective ? sw[i * P + i] : ct[i * P + i];
    }

    /* e_i = c'_i - 2 sum_j B P' + sum_jk B_ji G'_jk B_ki. */
    for (int i = 0; i < P; i++) {
      const double *p_use = o->weighted_objective ? pw : pp;
      const double *g_use = o->weighted_objective ? g : gp;
      double e = cdiag[i];

      for (int j = 0; j < M; j++) {
        e -= 2.0 * b[j * P + i] * p_use[j * P + i];
        for (int k = 0; k < M; k++)
          e += b[j * P + i] * g_use[j * M + k] * b[k * P + i];
      }
      f_t += 0.5 * log(fmax(e, 1e-8));
    }
    for (int j = 0; j < M; j++)
      f_t += 0.5 * log(z2[j]);
    sum_f += f_t;

    if (o->reg_type == TCX_TCOREX_REG_W) {
      memcpy(mats[t], wt, sizeof(double) * M * P);
    } else if (o->reg_type == TCX_TCOREX_REG_MI) {
      for (int k = 0; k < M * P; k++)
        mats[t][k] = -0.5 * log(1.0 - clampd(r_mat[k] * r_mat[k], 0.0,
                                             1.0 - 1e-8));
    } else {
      for (int i = 0; i < P; i++)
        for (int k = 0; k < P; k++) {
          double v = 0.0;

          for (int j = 0; j < M; j++)
            v += f_mat[j * P + i] * f_mat[j * P + k];
          mats[t][i * P + k] = i == k ? 1.0 : v;
        }
    }
  }
  for (int t = 0; t + 1 < NT; t++)
    for (int64_t k = 0; k < mat_size; k++) {
      const double d = mats[t + 1][k] - mats[t][k];

      l1 += fabs(d);
      l2 += d * d;
    }
  *main_part = sum_f / (NT * P);
  *l1_part = o->l1 * l1 / (NT * P);
  *l2_part = o->l2 * l2 / (NT * P);
}

/* ---- Tests ---- */

static double global_max(double v)
{
  double out = 0.0;

  assert_int_equal(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX,
                                 MPI_COMM_WORLD),
                   MPI_SUCCESS);
  return out;
}

/* Priors over windows cut by max_samples, with missing values. */
static void standardize_matches_weighted_moments(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int64_t max_samples_cases[] = {INT64_C(1) << 30, 12, 1};
  double x[N_ROWS * P], mean[NT * P], std[NT * P], xs[N_ROWS * P];

  (void)state;
  make_data(1, x);
  for (size_t c = 0; c < 3; c++) {
    tcx_tcorex_options options;
    tcx_block *block = make_block(ctx, x), *standardized = NULL;
    const int64_t nl = block->n_local, begin = block->col_begin;
    double *got_mean = calloc(NT * nl, sizeof(double));
    double *got_std = calloc(NT * nl, sizeof(double));
    double worst = 0.0;

    base_options(&options);
    options.gamma = 0.45;
    options.max_samples = max_samples_cases[c];
    dense_priors(x, options.gamma, options.max_samples, mean, std, xs);
    assert_int_equal(tcx_tcorex_standardize(ctx, &options, block, got_mean,
                                            got_std, &standardized),
                     TCX_OK);
    for (int t = 0; t < NT; t++)
      for (int64_t i = 0; i < nl; i++) {
        worst = fmax(worst, fabs(got_mean[t * nl + i] -
                                 mean[t * P + begin + i]) /
                                fmax(1.0, fabs(mean[t * P + begin + i])));
        worst = fmax(worst, fabs(got_std[t * nl + i] - std[t * P + begin + i]) /
                                std[t * P + begin + i]);
      }
    for (int64_t row = 0; row < N_ROWS; row++)
      for (int64_t i = 0; i < nl; i++)
        worst = fmax(worst, fabs(standardized->data[row * nl + i] -
                                 xs[row * P + begin + i]));
    tcx_test_assert_close_all(worst, 0.0, 1e-12, "prior mismatch");
    free(got_mean);
    free(got_std);
    tcx_block_destroy(&standardized);
    tcx_block_destroy(&block);
  }
}

/* One closed-form objective configuration against the dense computation. */
static void check_dense_case(const tcx_tcorex_options *options, double eps,
                             const char *label)
{
  tcx_ctx *ctx = tcx_test_ctx();
  double x[N_ROWS * P], mean[NT * P], std[NT * P], xs[N_ROWS * P];
  double w[NT * M * P], expected_main, expected_l1, expected_l2;
  tcx_block *block, *standardized = NULL;
  tcx_tcorex_value value;
  double *w_local, *scratch_mean, *scratch_std;
  int64_t nl;

  make_data(1, x);
  make_weights(21, w);
  dense_priors(x, options->gamma, options->max_samples, mean, std, xs);
  dense_objective(xs, options, eps, w, &expected_main, &expected_l1,
                  &expected_l2);

  block = make_block(ctx, x);
  nl = block->n_local;
  w_local = calloc(NT * M * nl, sizeof(double));
  scratch_mean = calloc(NT * nl, sizeof(double));
  scratch_std = calloc(NT * nl, sizeof(double));
  take_columns(w, NT * M, block->col_begin, nl, w_local);
  assert_int_equal(tcx_tcorex_standardize(ctx, options, block, scratch_mean,
                                          scratch_std, &standardized),
                   TCX_OK);
  assert_int_equal(tcx_tcorex_objective(ctx, options, standardized, eps,
                                        w_local, &value, NULL),
                   TCX_OK);
  tcx_test_assert_close_all(value.main, expected_main, 1e-12, label);
  tcx_test_assert_close_all(value.reg_l1, expected_l1, 1e-12, label);
  tcx_test_assert_close_all(value.reg_l2, expected_l2, 1e-12, label);
  free(w_local);
  free(scratch_mean);
  free(scratch_std);
  tcx_block_destroy(&standardized);
  tcx_block_destroy(&block);
}

static void objective_matches_dense_definition(void **state)
{
  const tcx_tcorex_reg regs[] = {TCX_TCOREX_REG_W, TCX_TCOREX_REG_MI,
                                 TCX_TCOREX_REG_SIGMA};
  const double levels[] = {0.0, 0.36};
  const int64_t max_samples_cases[] = {INT64_C(1) << 30, 12};

  (void)state;
  for (int r = 0; r < 3; r++)
    for (int weighted = 0; weighted <= 1; weighted++)
      for (int e = 0; e < 2; e++)
        for (int c = 0; c < 2; c++) {
          tcx_tcorex_options options;
          char label[128];

          base_options(&options);
          options.reg_type = regs[r];
          options.weighted_objective = weighted;
          options.max_samples = max_samples_cases[c];
          if (regs[r] == TCX_TCOREX_REG_SIGMA)
            options.l1 = 0.0;
          snprintf(label, sizeof(label),
                   "objective reg %d weighted %d eps %g max_samples %lld",
                   (int)regs[r], weighted, levels[e],
                   (long long)options.max_samples);
          check_dense_case(&options, levels[e], label);
        }
}

/* With gamma = 0.002 the 1e-6 cut keeps only periods at distance <= 2
 * (gamma^2 = 4e-6, gamma^3 = 8e-9). */
static void objective_applies_weight_cut(void **state)
{
  tcx_tcorex_options options;

  (void)state;
  base_options(&options);
  options.gamma = 0.002;
  check_dense_case(&options, 0.0, "objective with gamma 0.002");
  options.weighted_objective = 1;
  check_dense_case(&options, 0.36, "weighted objective with gamma 0.002");
}

/* Compares the analytic gradient with central differences of the value
 * over every global coordinate; returns max |error| / max |gradient|. */
static double gradient_error(const tcx_tcorex_options *options, double eps,
                             const double *w, double h)
{
  tcx_ctx *ctx = tcx_test_ctx();
  double x[N_ROWS * P];
  tcx_block *block, *standardized = NULL;
  tcx_tcorex_value value, plus, minus;
  double *w_local, *grad, *mean, *std;
  double max_error = 0.0, max_grad = 0.0;
  int64_t nl, begin;

  make_data(1, x);
  block = make_block(ctx, x);
  nl = block->n_local;
  begin = block->col_begin;
  w_local = calloc(NT * M * nl, sizeof(double));
  grad = calloc(NT * M * nl, sizeof(double));
  mean = calloc(NT * nl, sizeof(double));
  std = calloc(NT * nl, sizeof(double));
  take_columns(w, NT * M, begin, nl, w_local);
  assert_int_equal(tcx_tcorex_standardize(ctx, options, block, mean, std,
                                          &standardized),
                   TCX_OK);
  assert_int_equal(tcx_tcorex_objective(ctx, options, standardized, eps,
                                        w_local, &value, grad),
                   TCX_OK);

  for (int t = 0; t < NT; t++)
    for (int j = 0; j < M; j++)
      for (int64_t col = 0; col < P; col++) {
        const int mine = col >= begin && col < begin + nl;
        const int64_t k = (t * M + j) * nl + (col - begin);
        double saved = 0.0, fd;

        if (mine) {
          saved = w_local[k];
          w_local[k] = saved + h;
        }
        assert_int_equal(tcx_tcorex_objective(ctx, options, standardized, eps,
                                              w_local, &plus, NULL),
                         TCX_OK);
        if (mine)
          w_local[k] = saved - h;
        assert_int_equal(tcx_tcorex_objective(ctx, options, standardized, eps,
                                              w_local, &minus, NULL),
                         TCX_OK);
        if (!mine)
          continue;
        w_local[k] = saved;
        fd = ((plus.main + plus.reg_l1 + plus.reg_l2) -
              (minus.main + minus.reg_l1 + minus.reg_l2)) /
             (2.0 * h);
        max_error = fmax(max_error, fabs(fd - grad[k]));
        max_grad = fmax(max_grad, fabs(grad[k]));
      }
  max_error = global_max(max_error);
  max_grad = global_max(max_grad);
  free(w_local);
  free(grad);
  free(mean);
  free(std);
  tcx_block_destroy(&standardized);
  tcx_block_destroy(&block);
  return max_error / max_grad;
}

static void gradient_matches_finite_differences(void **state)
{
  const tcx_tcorex_reg regs[] = {TCX_TCOREX_REG_W, TCX_TCOREX_REG_MI,
                                 TCX_TCOREX_REG_SIGMA};
  const double levels[] = {0.0, 0.36};
  double w[NT * M * P];

  (void)state;
  make_weights(31, w);
  for (int r = 0; r < 3; r++)
    for (int weighted = 0; weighted <= 1; weighted++)
      for (int e = 0; e < 2; e++) {
        tcx_tcorex_options options;
        char label[128];
        double error;

        base_options(&options);
        options.reg_type = regs[r];
        options.weighted_objective = weighted;
        if (regs[r] == TCX_TCOREX_REG_SIGMA)
          options.l1 = 0.0;
        error = gradient_error(&options, levels[e], w, 1e-5);
        snprintf(label, sizeof(label),
                 "gradient reg %d weighted %d eps %g: relative error %.3g",
                 (int)regs[r], weighted, levels[e], error);
        assert_true(tcx_test_all_ok(error <= 1e-6, label));
      }
}

/* Partial windows use per-period GEMMs instead of the batched ones. */
static void gradient_with_partial_windows(void **state)
{
  double w[NT * M * P];

  (void)state;
  make_weights(32, w);
  for (int weighted = 0; weighted <= 1; weighted++) {
    tcx_tcorex_options options;
    char label[128];
    double error;

    base_options(&options);
    options.max_samples = 12;
    options.reg_type = TCX_TCOREX_REG_MI;
    options.weighted_objective = weighted;
    error = gradient_error(&options, 0.36, w, 1e-5);
    snprintf(label, sizeof(label),
             "gradient with max_samples 12, weighted %d: relative error %.3g",
             weighted, error);
    assert_true(tcx_test_all_ok(error <= 1e-6, label));
  }
}

/* Weighted second moment of variable i over the objective window of t. */
static double dense_window_square(const double *xs, double gamma, int t, int i)
{
  double total_weight = 0.0, sum = 0.0;

  for (int s = 0; s < NT; s++)
    if (pow(gamma, abs(s - t)) >= 1e-6)
      total_weight += pow(gamma, abs(s - t)) * period_rows[s];
  for (int s = 0; s < NT; s++) {
    if (pow(gamma, abs(s - t)) < 1e-6)
      continue;
    for (int64_t row = period_begin[s]; row < period_begin[s + 1]; row++)
      sum += pow(gamma, abs(s - t)) / total_weight * xs[row * P + i] *
             xs[row * P + i];
  }
  return sum;
}

/* In periods 2 and 3, variable 10 has a window second moment S > 1, so a
 * factor W_1 = 20 e_10 gives R^2 = 400 S^2 / (400 S + 1) > 1: the clamps on
 * 1 - R^2 are active there and their zero derivative must show. */
static void gradient_with_active_clamps(void **state)
{
  double w[NT * M * P], x[N_ROWS * P], mean[NT * P], std[NT * P];
  double xs[N_ROWS * P];
  tcx_tcorex_options options;
  char label[128];
  double error;

  (void)state;
  base_options(&options);
  options.l1 = 0.0;
  make_data(1, x);
  dense_priors(x, options.gamma, options.max_samples, mean, std, xs);
  make_weights(33, w);
  for (int t = 2; t < NT; t++) {
    const double square = dense_window_square(xs, options.gamma, t, 10);

    assert_true(square > 1.01);
    assert_true(400.0 * square * square / (400.0 * square + 1.0) > 1.0);
    w[(t * M + 1) * P + 10] = 20.0;
  }
  error = gradient_error(&options, 0.0, w, 1e-5);
  snprintf(label, sizeof(label),
           "gradient with active clamps: relative error %.3g", error);
  assert_true(tcx_test_all_ok(error <= 1e-6, label));
}

/* Directional derivatives on p = 12000 variables, where each rank's columns
 * are processed in several cache-sized tiles: g . v against (f(W + h v) -
 * f(W - h v)) / 2h for random directions v. */
static void gradient_directions_on_many_columns(void **state)
{
  enum { BIG_P = 12000 };
  tcx_ctx *ctx = tcx_test_ctx();
  const tcx_tcorex_reg regs[] = {TCX_TCOREX_REG_W, TCX_TCOREX_REG_MI};
  const int64_t rows = N_ROWS * BIG_P, weights = NT * M * BIG_P;
  double *x = malloc(sizeof(double) * rows);
  double *w = malloc(sizeof(double) * weights);
  double *v = malloc(sizeof(double) * weights);
  double *z = malloc(sizeof(double) * N_ROWS * M);
  int64_t begin, nl;
  tcx_block *block = NULL, *standardized = NULL;

  (void)state;
  assert_int_equal(tcx_partition(ctx, BIG_P, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &begin, &nl),
                   TCX_OK);
  tcx_test_randn(51, x, rows);
  tcx_test_randn(52, z, N_ROWS * M);
  for (int64_t r = 0; r < N_ROWS; r++)
    for (int64_t i = 0; i < BIG_P; i++)
      x[r * BIG_P + i] = 0.8 * x[r * BIG_P + i] + z[r * M + i % M];
  tcx_test_randn(53, w, weights);
  for (int64_t k = 0; k < weights; k++)
    w[k] *= 3.0 / sqrt((double)BIG_P);
  assert_int_equal(tcx_block_create(ctx, NT, period_rows, BIG_P, begin, nl,
                                    &block),
                   TCX_OK);
  for (int64_t r = 0; r < N_ROWS; r++)
    for (int64_t i = 0; i < nl; i++)
      block->data[r * nl + i] = x[r * BIG_P + begin + i];

  for (int c = 0; c < 4; c++) {
    tcx_tcorex_options options;
    tcx_tcorex_value value, plus, minus;
    double *w_local = calloc(NT * M * nl, sizeof(double));
    double *v_local = calloc(NT * M * nl, sizeof(double));
    double *grad = calloc(NT * M * nl, sizeof(double));
    double *mean = calloc(NT * nl, sizeof(double));
    double *std = calloc(NT * nl, sizeof(double));
    const double h = 1e-5;
    double local = 0.0, slope = 0.0, fd;
    char label[128];

    base_options(&options);
    options.l1 = 0.0;
    options.reg_type = regs[c % 2];
    options.weighted_objective = c / 2;
    assert_int_equal(tcx_tcorex_standardize(ctx, &options, block, mean, std,
                                            &standardized),
                     TCX_OK);
    /* |v| is about 1, so that h v is a small step. */
    tcx_test_randn(60 + c, v, weights);
    for (int64_t k = 0; k < weights; k++)
      v[k] /= sqrt((double)weights);
    for (int t = 0; t < NT * M; t++)
      for (int64_t i = 0; i < nl; i++) {
        w_local[t * nl + i] = w[t * BIG_P + begin + i];
        v_local[t * nl + i] = v[t * BIG_P + begin + i];
      }
    assert_int_equal(tcx_tcorex_objective(ctx, &options, standardized, 0.36,
                                          w_local, &value, grad),
                     TCX_OK);
    for (int64_t k = 0; k < NT * M * nl; k++) {
      local += grad[k] * v_local[k];
      w_local[k] += h * v_local[k];
    }
    assert_int_equal(MPI_Allreduce(&local, &slope, 1, MPI_DOUBLE, MPI_SUM,
                                   MPI_COMM_WORLD),
                     MPI_SUCCESS);
    assert_int_equal(tcx_tcorex_objective(ctx, &options, standardized, 0.36,
                                          w_local, &plus, NULL),
                     TCX_OK);
    for (int64_t k = 0; k < NT * M * nl; k++)
      w_local[k] -= 2.0 * h * v_local[k];
    assert_int_equal(tcx_tcorex_objective(ctx, &options, standardized, 0.36,
                                          w_local, &minus, NULL),
                     TCX_OK);
    fd = ((plus.main + plus.reg_l2) - (minus.main + minus.reg_l2)) / (2 * h);
    snprintf(label, sizeof(label),
             "directional derivative, reg %d, weighted %d: %.12g vs %.12g",
             (int)options.reg_type, options.weighted_objective, slope, fd);
    assert_true(tcx_test_all_ok(fabs(slope - fd) <= 1e-6 * fabs(fd), label));
    free(w_local);
    free(v_local);
    free(grad);
    free(mean);
    free(std);
    tcx_block_destroy(&standardized);
  }
  tcx_block_destroy(&block);
  free(x);
  free(w);
  free(v);
  free(z);
}

/* Returns the number of MPI_Allreduce calls of an Adam fit. */
static long count_fit_reductions(const tcx_tcorex_options *options)
{
  tcx_ctx *ctx = tcx_test_ctx();
  double x[N_ROWS * P];
  tcx_block *block;
  tcx_tcorex_result result = {0};
  long before;

  make_data(0, x);
  block = make_block(ctx, x);
  before = allreduce_calls;
  assert_int_equal(tcx_tcorex_fit(ctx, options, block, NULL, &result),
                   TCX_OK);
  assert_int_equal(result.iterations, options->max_iter);
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&block);
  return allreduce_calls - before;
}

/* Ten more Adam steps cost exactly 20 reductions (30 with reg Sigma). The
 * stopping rule cannot end a stage before 100 steps. */
static void adam_step_uses_two_reductions(void **state)
{
  const tcx_tcorex_reg regs[] = {TCX_TCOREX_REG_W, TCX_TCOREX_REG_MI,
                                 TCX_TCOREX_REG_SIGMA};

  (void)state;
  for (int r = 0; r < 3; r++) {
    tcx_tcorex_options options;
    long short_fit, long_fit;

    base_options(&options);
    options.init = TCX_TCOREX_INIT_RANDOM;
    options.anneal = 0;
    options.reg_type = regs[r];
    if (regs[r] == TCX_TCOREX_REG_SIGMA)
      options.l1 = 0.0;
    options.max_iter = 20;
    short_fit = count_fit_reductions(&options);
    options.max_iter = 30;
    long_fit = count_fit_reductions(&options);
    assert_int_equal(long_fit - short_fit,
                     regs[r] == TCX_TCOREX_REG_SIGMA ? 30 : 20);
  }
}

static void options_reject_unsupported_penalties(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  double x[N_ROWS * P], w[NT * M * P];
  tcx_block *block;
  tcx_tcorex_options options;
  tcx_tcorex_result result;

  (void)state;
  make_data(0, x);
  make_weights(1, w);
  block = make_block(ctx, x);
  base_options(&options);
  options.reg_type = TCX_TCOREX_REG_SIGMA;
  options.init = TCX_TCOREX_INIT_RANDOM;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_UNSUPPORTED);
  assert_non_null(strstr(tcx_ctx_message(ctx), "reg_type Sigma"));
  tcx_tcorex_result_free(&result);

  options.reg_type = TCX_TCOREX_REG_MI;
  options.optimizer = TCX_TCOREX_FISTA;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_UNSUPPORTED);
  assert_non_null(strstr(tcx_ctx_message(ctx), "FISTA"));
  tcx_tcorex_result_free(&result);

  options.reg_type = TCX_TCOREX_REG_W;
  options.optimizer = TCX_TCOREX_ADAM;
  options.init = TCX_TCOREX_INIT_GIVEN;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_USAGE);
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&block);
}

/* Runs the fit on the world communicator and on this rank alone with all
 * columns, and compares this rank's columns of every output. */
static void check_rank_invariance(const tcx_tcorex_options *options,
                                  const char *label)
{
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_ctx *self = NULL;
  double x[N_ROWS * P], w_init[NT * M * P];
  tcx_block *block, *whole;
  tcx_tcorex_result split = {0}, single = {0};
  const double *init_split = NULL, *init_single = NULL;
  double *init_local = NULL;
  double worst = 0.0;
  int same_clusters = 1, same_shape;
  int64_t nl, begin;

  make_data(1, x);
  make_weights(41, w_init);
  block = make_block(ctx, x);
  nl = block->n_local;
  begin = block->col_begin;
  assert_int_equal(tcx_ctx_create(MPI_COMM_SELF, &self), TCX_OK);
  assert_int_equal(tcx_block_create(self, NT, period_rows, P, 0, P, &whole),
                   TCX_OK);
  memcpy(whole->data, x, sizeof(x));
  if (options->init == TCX_TCOREX_INIT_GIVEN) {
    init_local = calloc(M * nl, sizeof(double));
    take_columns(w_init, M, begin, nl, init_local);
    init_split = init_local;
    init_single = w_init;
  }

  assert_int_equal(tcx_tcorex_fit(ctx, options, block, init_split, &split),
                   TCX_OK);
  assert_int_equal(tcx_tcorex_fit(self, options, whole, init_single, &single),
                   TCX_OK);
  same_shape = split.n_history == single.n_history &&
               split.iterations == single.iterations &&
               split.converged == single.converged;
  for (int t = 0; t < NT; t++)
    for (int64_t i = 0; i < nl; i++) {
      for (int j = 0; j < M; j++) {
        const int64_t a = (t * M + j) * nl + i, b = (t * M + j) * P + begin + i;

        worst = fmax(worst, fabs(split.weights[a] - single.weights[b]));
        worst = fmax(worst, fabs(split.factors[a] - single.factors[b]));
        worst = fmax(worst, fabs(split.mi[a] - single.mi[b]));
      }
      worst = fmax(worst, fabs(split.mean[t * nl + i] -
                               single.mean[t * P + begin + i]));
      worst = fmax(worst, fabs(split.std[t * nl + i] -
                               single.std[t * P + begin + i]));
      same_clusters &= split.clusters[t * nl + i] ==
                       single.clusters[t * P + begin + i];
    }
  for (int k = 0; k < NT * M; k++)
    worst = fmax(worst, fabs(split.tcs[k] - single.tcs[k]));
  if (same_shape)
    for (int64_t k = 0; k < split.n_history; k++) {
      worst = fmax(worst, fabs(split.history_main[k] - single.history_main[k]));
      worst = fmax(worst, fabs(split.history_reg[k] - single.history_reg[k]));
    }
  assert_true(tcx_test_all_ok(same_shape, label));
  assert_true(tcx_test_all_ok(same_clusters, label));
  tcx_test_assert_close_all(worst, 0.0, 1e-8, label);

  /* Without annealing every step evaluates the final objective, which the
   * fit must have lowered. */
  if (!options->anneal)
    assert_true(tcx_test_all_ok(
        split.value.main + split.value.reg_l1 + split.value.reg_l2 <
            split.history_main[0] + split.history_reg[0],
        label));
  free(init_local);
  tcx_tcorex_result_free(&split);
  tcx_tcorex_result_free(&single);
  tcx_block_destroy(&whole);
  tcx_block_destroy(&block);
  tcx_ctx_destroy(&self);
}

static void fit_independent_of_rank_count(void **state)
{
  tcx_tcorex_options options;

  (void)state;
  base_options(&options);
  options.max_iter = 60;
  options.init = TCX_TCOREX_INIT_RANDOM;
  options.seed = 5;
  options.learning_rate = 1e-2;
  check_rank_invariance(&options, "Adam fit, random start");

  options.init = TCX_TCOREX_INIT_GIVEN;
  options.reg_type = TCX_TCOREX_REG_MI;
  options.weighted_objective = 1;
  check_rank_invariance(&options, "Adam fit, given start, reg MI");

  options.init = TCX_TCOREX_INIT_LINEAR;
  options.reg_type = TCX_TCOREX_REG_W;
  options.weighted_objective = 0;
  check_rank_invariance(&options, "Adam fit, linear CorEx start");

  options.init = TCX_TCOREX_INIT_GIVEN;
  options.optimizer = TCX_TCOREX_FISTA;
  options.anneal = 0;
  check_rank_invariance(&options, "FISTA fit");
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(standardize_matches_weighted_moments),
      cmocka_unit_test(objective_matches_dense_definition),
      cmocka_unit_test(objective_applies_weight_cut),
      cmocka_unit_test(gradient_matches_finite_differences),
      cmocka_unit_test(gradient_with_partial_windows),
      cmocka_unit_test(gradient_with_active_clamps),
      cmocka_unit_test(gradient_directions_on_many_columns),
      cmocka_unit_test(adam_step_uses_two_reductions),
      cmocka_unit_test(options_reject_unsupported_penalties),
      cmocka_unit_test(fit_independent_of_rank_count),
  };

  return tcx_test_run(argc, argv, "tcorex", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
