/* Closed-form expected T-CorEx objective and its exact gradient, on column
 * blocks. Notation: period t has n_t own rows and a window of N_t rows with
 * row weights c (summing to 1); W_t, P_t, B, R are m x n_local (this rank's
 * columns), Y^w_t = X^w W_t^T is N_t x m. With a2 = 1 - eps^2, e2 = eps^2:
 *
 *   P  = a2 (c o Y^w)^T X^w + e2 W      G  = a2 (c o Y^w)^T Y^w + e2 W W^T + I
 *   P' = a2 Y^t^T X_t / n_t + e2 W      G' = a2 Y^t^T Y^t / n_t + e2 W W^T + I
 *   z2 = diag(G), R = P / sqrt(z2)
 *   r_i = sum_j R^2 / clamp(1 - R^2, 1e-8, 1 - 1e-8)
 *   F = R / clamp(1 - R^2, 1e-8, 1) / (1 + r), B = F / sqrt(z2)
 *   e_i = c'_i - 2 sum_j B P' + sum_j B (G' B)
 *   f_t = 1/2 sum_i log max(e_i, 1e-8) + 1/2 sum_j log z2_j
 *
 * With the weighted objective, P' = P, G' = G and c' is the window second
 * moment. Sums over variables (Y^w, W W^T, dG', ds, X dP^T, log e) are the
 * only quantities reduced over ranks. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex_internal.h"

/* GCC keeps branches for the clamps below unless trapping math is off. The
 * clamped loops neither raise nor test floating-point exceptions, so they
 * are compiled without it (Clang's default) and then vectorise. */
#if defined(__GNUC__) && !defined(__clang__)
#define TCX_VECTORIZE __attribute__((optimize("no-trapping-math")))
#else
#define TCX_VECTORIZE
#endif

/* Offsets of the pieces of the second reduction buffer. */
enum { SLOT_LOG_E = 0, SLOT_L1, SLOT_L2, SLOT_EXTRA, SLOT_GRADIENT = 8 };

static int64_t window_rows(const tcx_tcorex_plan *plan, int t)
{
  return plan->period_begin[plan->window_last[t] + 1] -
         plan->period_begin[plan->window_first[t]];
}

static int64_t window_row_begin(const tcx_tcorex_plan *plan, int t)
{
  return plan->period_begin[plan->window_first[t]];
}

static int64_t own_rows(const tcx_tcorex_plan *plan, int t)
{
  return plan->period_begin[t + 1] - plan->period_begin[t];
}

/* Offsets in the second reduction buffer after the scalars. */
static int64_t dgram_offset(const tcx_tcorex_plan *plan)
{
  (void)plan;
  return SLOT_GRADIENT;
}

static int64_t ds_offset(const tcx_tcorex_plan *plan)
{
  return dgram_offset(plan) + (int64_t)plan->nt * plan->m * plan->m;
}

static int64_t psi_offset(const tcx_tcorex_plan *plan)
{
  return ds_offset(plan) + (int64_t)plan->nt * plan->m;
}

static int64_t xdp_offset(const tcx_tcorex_plan *plan)
{
  return psi_offset(plan) + (plan->weighted ? 0 : plan->n_rows * plan->m);
}

static int allreduce_sum(tcx_ctx *ctx, double *buffer, int64_t count)
{
  int rc = TCX_OK;

  TCX_CHECK(count <= INT_MAX, ctx, TCX_ERR_UNSUPPORTED,
            "a reduction of %lld doubles exceeds the MPI count limit; use "
            "fewer rows per window (max_samples) or fewer factors",
            (long long)count);
  if (count > 0)
    TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count,
                                   MPI_DOUBLE, MPI_SUM, tcx_ctx_comm(ctx)));

cleanup:
  return rc;
}

/* Sets the layout of the samples x factors buffers. Batched (whole-series
 * windows only), the nt projections form one N x (nt m) matrix, so that each
 * large product is one GEMM; otherwise each window's N_t x m block is stored
 * after the previous one. Both layouts hold y_count values. */
static void plan_layout(tcx_tcorex_plan *plan, int batched)
{
  plan->batched = batched;
  plan->y_count = 0;
  for (int t = 0; t < plan->nt; t++) {
    plan->y_offset[t] = batched ? (int64_t)t * plan->m : plan->y_count;
    plan->y_count += window_rows(plan, t) * plan->m;
  }
  plan->y_ld = batched ? (int64_t)plan->nt * plan->m : plan->m;
}

int tcx_tcorex_plan_set_batched(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                                int batched)
{
  int rc = TCX_OK;

  TCX_CHECK(!batched || plan->full_windows, ctx, TCX_ERR_USAGE,
            "the products of partial windows cannot be batched; batch only "
            "when every window is the whole series");
  plan_layout(plan, batched);

cleanup:
  return rc;
}

/* Computes the objective windows and their row weights. */
static void plan_windows(const tcx_tcorex_options *options,
                         tcx_tcorex_plan *plan)
{
  const int nt = plan->nt;
  const double gamma = options->gamma;

  plan->full_windows = 1;
  for (int t = 0; t < nt; t++) {
    const int half = tcx_tcorex_window_half_length(
        nt, plan->period_begin, options->max_samples, t);
    int first = t - half > 0 ? t - half : 0;
    int last = t + half < nt - 1 ? t + half : nt - 1;
    double total = 0.0;

    while (pow(gamma, t - first) < TCX_TCOREX_WEIGHT_CUT)
      first++;
    while (pow(gamma, last - t) < TCX_TCOREX_WEIGHT_CUT)
      last--;
    plan->window_first[t] = first;
    plan->window_last[t] = last;
    if (first != 0 || last != nt - 1)
      plan->full_windows = 0;
    for (int s = first; s <= last; s++)
      total += (double)(plan->period_begin[s + 1] - plan->period_begin[s]) *
               pow(gamma, abs(s - t));
    for (int s = first; s <= last; s++)
      plan->period_weight[t * nt + s] = pow(gamma, abs(s - t)) / total;
  }

  plan_layout(plan, plan->full_windows);
}

/* Computes the per-column second moments that do not depend on W. */
static void plan_moments(tcx_tcorex_plan *plan)
{
  const int64_t nl = plan->n_local;

  for (int t = 0; t < plan->nt; t++) {
    double *own = plan->own_square + (int64_t)t * nl;
    double *window = plan->window_square + (int64_t)t * nl;

    for (int s = plan->window_first[t]; s <= plan->window_last[t]; s++) {
      const double c = plan->period_weight[t * plan->nt + s];

      for (int64_t row = plan->period_begin[s]; row < plan->period_begin[s + 1];
           row++) {
        const double *x = plan->x + row * nl;

        for (int64_t i = 0; i < nl; i++) {
          window[i] += c * x[i] * x[i];
          if (s == t)
            own[i] += x[i] * x[i];
        }
      }
    }
    for (int64_t i = 0; i < nl; i++)
      own[i] /= (double)own_rows(plan, t);
  }
}

int tcx_tcorex_plan_create(tcx_ctx *ctx, const tcx_tcorex_options *options,
                           const tcx_block *x, tcx_tcorex_plan **plan)
{
  tcx_tcorex_plan *p = NULL;
  int64_t nt, m, nl, per_period;
  int rc = TCX_OK;

  *plan = NULL;
  TCX_TRY(tcx_tcorex_check_options(ctx, options));
  for (int t = 0; t < x->n_periods; t++)
    TCX_CHECK(x->period_begin[t + 1] > x->period_begin[t], ctx, TCX_ERR_INPUT,
              "period %d has no rows; T-CorEx needs at least one sample in "
              "every period",
              t);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*p), "T-CorEx plan", &p));
  p->nt = x->n_periods;
  p->m = options->n_factors;
  p->n_vars = x->n_vars;
  p->n_local = x->n_local;
  p->n_rows = x->n_rows;
  p->x = x->data;
  p->period_begin = x->period_begin;
  p->l1 = options->l1;
  p->l2 = options->l2;
  p->reg_type = options->reg_type;
  p->weighted = options->weighted_objective != 0;
  nt = p->nt;
  m = p->m;
  nl = p->n_local;
  per_period = nt * m * nl;

  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int), "windows", &p->window_first));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int), "windows", &p->window_last));
  TCX_TRY(tcx_calloc(ctx, nt * nt, sizeof(double), "window weights",
                     &p->period_weight));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int64_t), "window offsets",
                     &p->y_offset));
  plan_windows(options, p);
  TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(double), "second moments",
                     &p->own_square));
  TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(double), "second moments",
                     &p->window_square));
  plan_moments(p);

  if (options->precision == TCX_TCOREX_SINGLE) {
    const int64_t count = p->n_rows * nl;

    p->single = 1;
    TCX_TRY(tcx_calloc(ctx, count, sizeof(float), "single-precision data",
                       &p->x32));
    for (int64_t k = 0; k < count; k++)
      p->x32[k] = (float)p->x[k];
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(float),
                       "single-precision factors", &p->factors32));
    TCX_TRY(tcx_calloc(ctx, p->y_count, sizeof(float),
                       "single-precision projections", &p->y32));
  }
  TCX_TRY(tcx_calloc(ctx, p->y_count + nt * m * m, sizeof(double),
                     "projections", &p->reduce1));
  TCX_TRY(tcx_calloc(ctx, p->y_count, sizeof(double), "projections",
                     &p->scaled));
  TCX_TRY(tcx_calloc(ctx, nt * m * m, sizeof(double), "factor moments",
                     &p->gram));
  TCX_TRY(tcx_calloc(ctx, nt * m, sizeof(double), "factor moments", &p->z2));
  TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "cross moments",
                     &p->p_window));
  TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "gradient work space",
                     &p->dp_window));
  if (!p->weighted) {
    TCX_TRY(tcx_calloc(ctx, nt * m * m, sizeof(double), "factor moments",
                       &p->gram_own));
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "cross moments",
                       &p->p_own));
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "gradient work space",
                       &p->dp_own));
  }
  if (p->weighted || p->single)
    TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "gradient work space",
                       &p->work_dp_own));
  if (p->single) {
    TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "gradient work space",
                       &p->work_dp));
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(float),
                       "single-precision cross moments", &p->p_own32));
    TCX_TRY(tcx_calloc(ctx, m * m, sizeof(float), "work space", &p->gram32));
    TCX_TRY(tcx_calloc(ctx, m * m, sizeof(float), "work space",
                       &p->work_mm32));
    TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(float), "work space",
                       &p->work_b32));
    TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(float), "work space",
                       &p->work_gb32));
    if (!p->weighted)
      TCX_TRY(tcx_calloc(ctx, per_period, sizeof(float),
                         "single-precision gradient work space",
                         &p->dp_own32));
  }
  if (p->reg_type != TCX_TCOREX_REG_W) {
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "regulariser",
                       &p->reg_matrix));
    TCX_TRY(tcx_calloc(ctx, per_period, sizeof(double), "regulariser",
                       &p->reg_grad));
  }
  if (p->reg_type == TCX_TCOREX_REG_SIGMA) {
    TCX_TRY(tcx_calloc(ctx, (2 * nt - 1) * m * m, sizeof(double),
                       "regulariser", &p->sigma_gram));
    TCX_TRY(tcx_calloc(ctx, nt * nl, sizeof(double), "regulariser",
                       &p->vec_norm));
  }
  TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "work space", &p->work_b));
  TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "work space", &p->work_gb));
  TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "work space",
                     &p->work_scaled));
  TCX_TRY(tcx_calloc(ctx, m * nl, sizeof(double), "work space", &p->work_q));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "work space", &p->vec_r));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "work space", &p->vec_inv));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "work space", &p->vec_e));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "work space", &p->vec_dr));
  TCX_TRY(tcx_calloc(ctx, nl, sizeof(double), "work space", &p->vec_root));
  p->reduce2_size = xdp_offset(p) + p->y_count;
  TCX_TRY(tcx_calloc(ctx, p->reduce2_size, sizeof(double), "reductions",
                     &p->reduce2));
  *plan = p;
  p = NULL;

cleanup:
  tcx_tcorex_plan_destroy(&p);
  return rc;
}

void tcx_tcorex_plan_destroy(tcx_tcorex_plan **plan)
{
  tcx_tcorex_plan *p;

  if (!plan || !*plan)
    return;
  p = *plan;
  free(p->window_first);
  free(p->window_last);
  free(p->period_weight);
  free(p->y_offset);
  free(p->own_square);
  free(p->window_square);
  free(p->reduce1);
  free(p->scaled);
  free(p->gram);
  free(p->gram_own);
  free(p->z2);
  free(p->p_window);
  free(p->p_own);
  free(p->dp_window);
  free(p->dp_own);
  free(p->reg_matrix);
  free(p->reg_grad);
  free(p->sigma_gram);
  free(p->work_b);
  free(p->work_gb);
  free(p->work_scaled);
  free(p->work_q);
  free(p->work_dp_own);
  free(p->work_dp);
  free(p->dp_own32);
  free(p->p_own32);
  free(p->gram32);
  free(p->work_mm32);
  free(p->work_b32);
  free(p->work_gb32);
  free(p->vec_r);
  free(p->vec_inv);
  free(p->vec_e);
  free(p->vec_dr);
  free(p->vec_root);
  free(p->vec_norm);
  free(p->reduce2);
  free(p->x32);
  free(p->factors32);
  free(p->y32);
  free(p);
  *plan = NULL;
}

/* Copies the upper triangle of an m x m matrix into its lower triangle. */
static void symmetrize_upper(int64_t m, double *a)
{
  for (int64_t j = 1; j < m; j++)
    for (int64_t k = 0; k < j; k++)
      a[j * m + k] = a[k * m + j];
}

/* Computes this rank's part of X^w_t S_t^T for every t from factors S
 * [nt, m, n_local] into out, in the layout of Y^w. In single precision the
 * factors are rounded to float, unless rounded is nonzero because factors32
 * already contains them, and the float product is widened to double. */
static void data_times_factors(tcx_tcorex_plan *plan, const double *factors,
                               int rounded, double *out)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;

  if (plan->single) {
    float *factors32 = plan->factors32, *out32 = plan->y32;

    if (!rounded)
      for (int64_t k = 0; k < nt * m * nl; k++)
        factors32[k] = (float)factors[k];
    if (plan->batched) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)plan->n_rows,
                  (int)(nt * m), (int)nl, 1.0f, plan->x32, (int)nl, factors32,
                  (int)nl, 0.0f, out32, (int)plan->y_ld);
    } else {
      for (int t = 0; t < nt; t++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    (int)window_rows(plan, t), (int)m, (int)nl, 1.0f,
                    plan->x32 + window_row_begin(plan, t) * nl, (int)nl,
                    factors32 + t * m * nl, (int)nl, 0.0f,
                    out32 + plan->y_offset[t], (int)m);
    }
    for (int64_t k = 0; k < plan->y_count; k++)
      out[k] = (double)out32[k];
    return;
  }
  if (plan->batched) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)plan->n_rows,
                (int)(nt * m), (int)nl, 1.0, plan->x, (int)nl, factors,
                (int)nl, 0.0, out, (int)plan->y_ld);
  } else {
    for (int t = 0; t < nt; t++)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                  (int)window_rows(plan, t), (int)m, (int)nl, 1.0,
                  plan->x + window_row_begin(plan, t) * nl, (int)nl,
                  factors + t * m * nl, (int)nl, 0.0, out + plan->y_offset[t],
                  (int)m);
  }
}

/* Single precision: computes A_t^T X^w_t for every t in float into
 * factors32 [nt, m, n_local], with A in the layout of Y^w rounded to float. */
static void factors_times_data32(tcx_tcorex_plan *plan, const double *a)
{
  const int64_t m = plan->m, nl = plan->n_local, ld = plan->y_ld;
  const int nt = plan->nt;
  float *a32 = plan->y32, *out32 = plan->factors32;

  for (int64_t k = 0; k < plan->y_count; k++)
    a32[k] = (float)a[k];
  if (plan->batched) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(nt * m),
                (int)nl, (int)plan->n_rows, 1.0f, a32, (int)ld, plan->x32,
                (int)nl, 0.0f, out32, (int)nl);
  } else {
    for (int t = 0; t < nt; t++)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)nl,
                  (int)window_rows(plan, t), 1.0f, a32 + plan->y_offset[t],
                  (int)ld, plan->x32 + window_row_begin(plan, t) * nl,
                  (int)nl, 0.0f, out32 + t * m * nl, (int)nl);
  }
}

/* Computes out_t = alpha A_t^T X^w_t + beta out_t for every t, with A in
 * the layout of Y^w and out [nt, m, n_local]. out is not read when beta is
 * 0. In single precision A is rounded to float and the float product is
 * widened to double before alpha and beta are applied. */
static void factors_times_data(tcx_tcorex_plan *plan, double alpha,
                               const double *a, double beta, double *out)
{
  const int64_t m = plan->m, nl = plan->n_local, ld = plan->y_ld;
  const int nt = plan->nt;

  if (plan->single) {
    const float *out32 = plan->factors32;

    factors_times_data32(plan, a);
    if (beta == 0.0)
      for (int64_t k = 0; k < nt * m * nl; k++)
        out[k] = alpha * (double)out32[k];
    else
      for (int64_t k = 0; k < nt * m * nl; k++)
        out[k] = alpha * (double)out32[k] + beta * out[k];
    return;
  }
  if (plan->batched) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(nt * m),
                (int)nl, (int)plan->n_rows, alpha, a, (int)ld, plan->x,
                (int)nl, beta, out, (int)nl);
  } else {
    for (int t = 0; t < nt; t++)
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)nl,
                  (int)window_rows(plan, t), alpha, a + plan->y_offset[t],
                  (int)ld, plan->x + window_row_begin(plan, t) * nl, (int)nl,
                  beta, out + t * m * nl, (int)nl);
  }
}

/* Computes this rank's part of Y^w_t = X^w W_t^T for every t into reduce1,
 * followed by W_t W_t^T when eps > 0. Returns the number of doubles. */
static int64_t local_projections(tcx_tcorex_plan *plan, double eps,
                                 const double *weights)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;
  double *y = plan->reduce1;

  data_times_factors(plan, weights, 0, y);
  if (eps == 0.0)
    return plan->y_count;
  for (int t = 0; t < nt; t++) {
    double *ww = y + plan->y_count + t * m * m;

    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)nl, 1.0,
                weights + t * m * nl, (int)nl, 0.0, ww, (int)m);
    symmetrize_upper(m, ww);
  }
  return plan->y_count + nt * m * m;
}

/* Adds e2 W W^T + I to an m x m moment (W W^T is absent when eps = 0). */
static void add_noise_moment(int64_t m, double e2, const double *ww,
                             double *gram)
{
  for (int64_t j = 0; j < m; j++) {
    for (int64_t k = 0; k < m; k++)
      gram[j * m + k] += e2 > 0.0 ? e2 * ww[j * m + k] : 0.0;
    gram[j * m + j] += 1.0;
  }
}

/* Computes c o Y^w, G_t, G'_t and z2 from the reduced projections. The same
 * on every rank. */
static void factor_moments(tcx_tcorex_plan *plan, double eps)
{
  const int64_t m = plan->m, ld = plan->y_ld;
  const int nt = plan->nt;
  const double a2 = 1.0 - eps * eps, e2 = eps * eps;
  const double *ww = plan->reduce1 + plan->y_count;

  for (int t = 0; t < nt; t++) {
    const double *y = plan->reduce1 + plan->y_offset[t];
    double *scaled = plan->scaled + plan->y_offset[t];
    double *gram = plan->gram + t * m * m;
    int64_t r = 0;

    for (int s = plan->window_first[t]; s <= plan->window_last[t]; s++) {
      const double c = plan->period_weight[t * nt + s];
      const int64_t end = r + own_rows(plan, s);

      for (; r < end; r++)
        for (int64_t j = 0; j < m; j++)
          scaled[r * ld + j] = c * y[r * ld + j];
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m,
                (int)window_rows(plan, t), a2, scaled, (int)ld, y, (int)ld, 0.0,
                gram, (int)m);
    add_noise_moment(m, e2, ww + t * m * m, gram);
    for (int64_t j = 0; j < m; j++)
      plan->z2[t * m + j] = gram[j * m + j];

    if (!plan->weighted) {
      const int64_t n_own = own_rows(plan, t);
      const double *y_own =
          y + (plan->period_begin[t] - window_row_begin(plan, t)) * ld;
      double *gram_own = plan->gram_own + t * m * m;

      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m,
                  (int)n_own, a2 / (double)n_own, y_own, (int)ld, y_own,
                  (int)ld, 0.0, gram_own, (int)m);
      add_noise_moment(m, e2, ww + t * m * m, gram_own);
    }
  }
}

/* Computes P_t (and P'_t) on this rank's columns. */
static void cross_moments(tcx_tcorex_plan *plan, double eps,
                          const double *weights)
{
  const int64_t m = plan->m, nl = plan->n_local, ld = plan->y_ld;
  const int nt = plan->nt;
  const double a2 = 1.0 - eps * eps, e2 = eps * eps;

  /* The GEMMs add e2 W to their product; with e2 = 0 BLAS does not read C. */
  if (e2 > 0.0)
    memcpy(plan->p_window, weights, (size_t)(nt * m * nl) * sizeof(double));
  factors_times_data(plan, a2, plan->scaled, e2, plan->p_window);
  if (plan->weighted)
    return;
  if (e2 > 0.0)
    memcpy(plan->p_own, weights, (size_t)(nt * m * nl) * sizeof(double));
  for (int t = 0; t < nt; t++) {
    const int64_t n_own = own_rows(plan, t);
    const int64_t own_offset =
        (plan->period_begin[t] - window_row_begin(plan, t)) * ld;
    const double *y_own = plan->reduce1 + plan->y_offset[t] + own_offset;

    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)nl,
                (int)n_own, a2 / (double)n_own, y_own, (int)ld,
                plan->x + plan->period_begin[t] * nl, (int)nl, e2,
                plan->p_own + t * m * nl, (int)nl);
  }
}

/* Adds sum over one row j of R^2 / clamp(1 - R^2, 1e-8, 1 - 1e-8), R = p s,
 * to r, and writes 1 / clamp(1 - R^2, 1e-8, 1) to q. Where 1 - R^2 < 1 -
 * 1e-8 both clamps give the same divisor, so one division serves both. */
TCX_VECTORIZE static void r_row(int64_t n, double s, const double *restrict p,
                                double *restrict r, double *restrict q)
{
  const double low = TCX_TCOREX_CLAMP, high = 1.0 - TCX_TCOREX_CLAMP;
  const double inv_high = 1.0 / high;

  for (int64_t i = 0; i < n; i++) {
    const double rr = p[i] * s;
    const double kappa = 1.0 - rr * rr;
    const double inv_q2 = 1.0 / (kappa > low ? kappa : low);
    const double inv_q1 = kappa < high ? inv_q2 : inv_high;

    q[i] = inv_q2;
    r[i] += rr * rr * inv_q1;
  }
}

/* Writes one row of scale R / clamp(1 - R^2, 1e-8, 1) / (1 + r), with the
 * inverse divisor q from r_row(). */
TCX_VECTORIZE static void factor_row(int64_t n, double s, double scale,
                                     const double *restrict p,
                                     const double *restrict inv,
                                     const double *restrict q,
                                     double *restrict f)
{
  for (int64_t i = 0; i < n; i++)
    f[i] = scale * p[i] * s * q[i] * inv[i];
}

/* Computes r_i and 1 / (1 + r_i) of period t for columns i0 .. i1 - 1 into
 * vec_r and vec_inv, and 1 / clamp(1 - R^2, 1e-8, 1) into work_q. */
static void period_r(tcx_tcorex_plan *plan, int t, int64_t i0, int64_t i1)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const double *p = plan->p_window + t * m * nl;
  double *r = plan->vec_r;

  for (int64_t i = i0; i < i1; i++)
    r[i] = 0.0;
  for (int64_t j = 0; j < m; j++)
    r_row(i1 - i0, 1.0 / sqrt(plan->z2[t * m + j]), p + j * nl + i0, r + i0,
          plan->work_q + j * nl + i0);
  for (int64_t i = i0; i < i1; i++)
    plan->vec_inv[i] = 1.0 / (1.0 + r[i]);
}

/* Writes F_t = rho~ / (1 + r) for columns i0 .. i1 - 1 into factors (m x
 * n_local), times 1 / sqrt(z2_j) (which gives B) when scaled; needs
 * period_r() on the same columns. */
static void period_factors(const tcx_tcorex_plan *plan, int t, int64_t i0,
                           int64_t i1, int scaled, double *factors)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const double *p = plan->p_window + t * m * nl;

  for (int64_t j = 0; j < m; j++) {
    const double s = 1.0 / sqrt(plan->z2[t * m + j]);

    factor_row(i1 - i0, s, scaled ? s : 1.0, p + j * nl + i0,
               plan->vec_inv + i0, plan->work_q + j * nl + i0,
               factors + j * nl + i0);
  }
}

/* MI_ji = -1/2 log(1 - clamp(R_ji^2, 0, 1 - 1e-8)) of period t. */
static void period_mi(const tcx_tcorex_plan *plan, int t, double *mi)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const double *p = plan->p_window + t * m * nl;

  for (int64_t j = 0; j < m; j++) {
    const double s = 1.0 / sqrt(plan->z2[t * m + j]);

    for (int64_t i = 0; i < nl; i++) {
      const double rr = p[j * nl + i] * s;

      mi[j * nl + i] = -0.5 * log1p(-fmin(rr * rr, 1.0 - TCX_TCOREX_CLAMP));
    }
  }
}

static double penalty_derivative(double d, double l1, double l2)
{
  return l1 * (double)((d > 0.0) - (d < 0.0)) + 2.0 * l2 * d;
}

/* Adds the sums of |D_t| and D_t^2 over the consecutive differences D_t =
 * M_{t+1} - M_t of matrices M [nt, count] to *l1_sum and *l2_sum. When grad
 * is not NULL, writes scale times the derivative of sum_t l1 |D_t|_1 + l2
 * |D_t|_F^2 into grad [nt, count], with sign(0) = 0 and without the l1 part
 * unless with_l1. */
static void difference_penalty(int nt, int64_t count, const double *matrices,
                               double l1, double l2, int with_l1,
                               double scale, double *l1_sum, double *l2_sum,
                               double *grad)
{
  /* Columns in chunks, periods inside, so that M_{t+1} is still in cache
   * as M_t of the next period. Eight partial sums per chunk shorten the
   * chain of additions. */
  enum { CHUNK = 1024, LANES = 8 };
  const double l1_grad = with_l1 ? l1 : 0.0;
  double sum1 = 0.0, sum2 = 0.0;

  for (int64_t k0 = 0; k0 < count; k0 += CHUNK) {
    const int64_t k1 = k0 + CHUNK < count ? k0 + CHUNK : count;

    for (int t = 0; t < nt; t++) {
      const double *mt = matrices + t * count;
      const double *previous = t > 0 ? mt - count : NULL;
      const double *next = t + 1 < nt ? mt + count : NULL;
      double *g = grad ? grad + t * count : NULL;
      double part1[LANES] = {0.0}, part2[LANES] = {0.0};
      int64_t k = k0;

      if (next) {
        for (; k + LANES <= k1; k += LANES)
          for (int lane = 0; lane < LANES; lane++) {
            const double d = next[k + lane] - mt[k + lane];

            part1[lane] += fabs(d);
            part2[lane] += d * d;
          }
        for (; k < k1; k++) {
          const double d = next[k] - mt[k];

          part1[0] += fabs(d);
          part2[0] += d * d;
        }
        for (int lane = 0; lane < LANES; lane++) {
          sum1 += part1[lane];
          sum2 += part2[lane];
        }
      }
      if (g)
        for (k = k0; k < k1; k++) {
          const double d_next = next ? next[k] - mt[k] : 0.0;
          const double d_previous = previous ? mt[k] - previous[k] : 0.0;

          g[k] = scale * (penalty_derivative(d_previous, l1_grad, l2) -
                          penalty_derivative(d_next, l1_grad, l2));
        }
    }
  }
  *l1_sum += sum1;
  *l2_sum += sum2;
}

/* The Sigma regulariser: l2 sum_t |offdiag(F_{t+1}^T F_{t+1} - F_t^T
 * F_t)|_F^2 through the m x m Gram matrices, with the identity
 *   |offdiag(A1 - A2)|^2 = |F1 F1^T|^2 - 2 |F1 F2^T|^2 + |F2 F2^T|^2
 *                          - sum_i (|F1_:i|^2 - |F2_:i|^2)^2.
 * Needs reg_matrix = F_t for all t. Adds the rank-local part of the value to
 * *local_l2 and returns the replicated part; fills reg_grad with nt p
 * d reg / dF_t when grad is nonzero. One reduction. */
static int sigma_penalty(tcx_ctx *ctx, tcx_tcorex_plan *plan, int grad,
                         double *local_l2, double *replicated_l2)
{
  const int64_t m = plan->m, nl = plan->n_local, mm = m * m;
  const int nt = plan->nt;
  const double *f = plan->reg_matrix;
  double *gram = plan->sigma_gram;
  double *norm = plan->vec_norm;
  double total = 0.0;
  int rc = TCX_OK;

  *replicated_l2 = 0.0;
  if (nt < 2)
    return TCX_OK;
  for (int t = 0; t < nt; t++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
                (int)nl, 1.0, f + t * m * nl, (int)nl, f + t * m * nl, (int)nl,
                0.0, gram + t * mm, (int)m);
  for (int t = 0; t + 1 < nt; t++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
                (int)nl, 1.0, f + t * m * nl, (int)nl, f + (t + 1) * m * nl,
                (int)nl, 0.0, gram + (nt + t) * mm, (int)m);
  TCX_TRY(allreduce_sum(ctx, gram, (2 * nt - 1) * mm));

  for (int t = 0; t < nt; t++) {
    for (int64_t i = 0; i < nl; i++)
      norm[t * nl + i] = 0.0;
    for (int64_t j = 0; j < m; j++)
      for (int64_t i = 0; i < nl; i++)
        norm[t * nl + i] += f[(t * m + j) * nl + i] * f[(t * m + j) * nl + i];
  }
  for (int t = 0; t + 1 < nt; t++) {
    for (int64_t k = 0; k < mm; k++)
      total += gram[t * mm + k] * gram[t * mm + k] -
               2.0 * gram[(nt + t) * mm + k] * gram[(nt + t) * mm + k] +
               gram[(t + 1) * mm + k] * gram[(t + 1) * mm + k];
    for (int64_t i = 0; i < nl; i++) {
      const double d = norm[t * nl + i] - norm[(t + 1) * nl + i];

      *local_l2 -= d * d;
    }
  }
  *replicated_l2 = total;
  if (!grad)
    goto cleanup;

  /* d/dF1 of the pair (F1, F2) = 4 A11 F1 - 4 A12 F2 - 4 (n1 - n2) o F1, and
   * d/dF2 = 4 A22 F2 - 4 A12^T F1 + 4 (n1 - n2) o F2. */
  memset(plan->reg_grad, 0, (size_t)(nt * m * nl) * sizeof(double));
  for (int t = 0; t < nt; t++) {
    double *g = plan->reg_grad + t * m * nl;
    const double *ft = f + t * m * nl;
    const int neighbours = (t > 0) + (t + 1 < nt);

    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nl,
                (int)m, 4.0 * plan->l2 * neighbours, gram + t * mm, (int)m, ft,
                (int)nl, 1.0, g, (int)nl);
    if (t + 1 < nt) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nl,
                  (int)m, -4.0 * plan->l2, gram + (nt + t) * mm, (int)m,
                  f + (t + 1) * m * nl, (int)nl, 1.0, g, (int)nl);
      for (int64_t j = 0; j < m; j++)
        for (int64_t i = 0; i < nl; i++)
          g[j * nl + i] -= 4.0 * plan->l2 *
                           (norm[t * nl + i] - norm[(t + 1) * nl + i]) *
                           ft[j * nl + i];
    }
    if (t > 0) {
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)nl,
                  (int)m, -4.0 * plan->l2, gram + (nt + t - 1) * mm, (int)m,
                  f + (t - 1) * m * nl, (int)nl, 1.0, g, (int)nl);
      for (int64_t j = 0; j < m; j++)
        for (int64_t i = 0; i < nl; i++)
          g[j * nl + i] += 4.0 * plan->l2 *
                           (norm[(t - 1) * nl + i] - norm[t * nl + i]) *
                           ft[j * nl + i];
    }
  }

cleanup:
  return rc;
}

/* Computes the regulariser matrices MI_t or F_t for every period, their
 * penalty value and, with a gradient, nt p d reg / dM_t into reg_grad. */
static int matrix_penalty(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                          tcx_tcorex_eval_mode mode, double *scalars,
                          double *replicated_l2)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;
  const int grad = mode != TCX_TCOREX_EVAL_VALUE;
  int rc = TCX_OK;

  *replicated_l2 = 0.0;
  for (int t = 0; t < nt; t++) {
    if (plan->reg_type == TCX_TCOREX_REG_MI) {
      period_mi(plan, t, plan->reg_matrix + t * m * nl);
    } else {
      period_r(plan, t, 0, nl);
      period_factors(plan, t, 0, nl, 0, plan->reg_matrix + t * m * nl);
    }
  }
  if (plan->reg_type == TCX_TCOREX_REG_MI) {
    difference_penalty(nt, m * nl, plan->reg_matrix, plan->l1, plan->l2,
                       mode == TCX_TCOREX_EVAL_GRADIENT, 1.0,
                       &scalars[SLOT_L1], &scalars[SLOT_L2],
                       grad ? plan->reg_grad : NULL);
  } else {
    TCX_TRY(sigma_penalty(ctx, plan, grad, &scalars[SLOT_L2], replicated_l2));
  }

cleanup:
  return rc;
}

/* Pointers and constants of one period's pass. */
typedef struct period_state {
  int64_t m, nl;
  double a2, e2;
  const double *p;        /* P_t */
  const double *p_own;    /* P'_t, or P_t with the weighted objective */
  const double *gram_own; /* G'_t, or G_t */
  const double *square;   /* c'_i before the noise terms */
  const double *z2;
  const double *dm;       /* nt p d reg / dM_t, or NULL */
  double *dp, *dp_own, *dgram, *ds;
  float *dp32;            /* dP_t rounded to float (single), or NULL */
  float *dp_own32;        /* dP'_t rounded to float (single, unweighted), or
                             NULL */
  float *p_own32;         /* P'_t rounded to float (single), or NULL */
} period_state;

/* Forward pass on columns i0 .. i1 - 1: B, G'B, e_i and g_i = 1/2 / e_i
 * (0 where e_i is clamped) into vec_e. Returns 1/2 sum_i log max(e_i, 1e-8)
 * over the tile. */
static double tile_forward(tcx_tcorex_plan *plan, int t,
                           const period_state *ps, int64_t i0, int64_t i1)
{
  const int64_t m = ps->m, nl = ps->nl;
  double *b = plan->work_b, *gb = plan->work_gb, *e = plan->vec_e;
  double log_sum = 0.0;

  period_r(plan, t, i0, i1);
  period_factors(plan, t, i0, i1, 1, b);
  if (plan->single) {
    /* G'B in float, with G' in gram32 (set by period_pass()). */
    float *b32 = plan->work_b32, *gb32 = plan->work_gb32;

    for (int64_t j = 0; j < m; j++)
      for (int64_t i = i0; i < i1; i++)
        b32[j * nl + i] = (float)b[j * nl + i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                (int)(i1 - i0), (int)m, 1.0f, plan->gram32, (int)m, b32 + i0,
                (int)nl, 0.0f, gb32 + i0, (int)nl);
    for (int64_t j = 0; j < m; j++)
      for (int64_t i = i0; i < i1; i++) {
        gb[j * nl + i] = (double)gb32[j * nl + i];
        ps->p_own32[j * nl + i] = (float)ps->p_own[j * nl + i];
      }
  } else {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                (int)(i1 - i0), (int)m, 1.0, ps->gram_own, (int)m, b + i0,
                (int)nl, 0.0, gb + i0, (int)nl);
  }
  for (int64_t i = i0; i < i1; i++)
    e[i] = ps->a2 * ps->square[i] + ps->e2;
  for (int64_t j = 0; j < m; j++)
    for (int64_t i = i0; i < i1; i++)
      e[i] += b[j * nl + i] * (gb[j * nl + i] - 2.0 * ps->p_own[j * nl + i]);
  for (int64_t i = i0; i < i1; i++) {
    log_sum += 0.5 * log(fmax(e[i], TCX_TCOREX_CLAMP));
    e[i] = e[i] > TCX_TCOREX_CLAMP ? 0.5 / e[i] : 0.0;
  }
  return log_sum;
}

/* One row j of the first backward step over a tile of n columns. */
static void backward_b_row(int64_t n, const double *restrict b,
                           const double *restrict p_own,
                           const double *restrict g,
                           const double *restrict root_g,
                           double *restrict gb, double *restrict dp_own,
                           double *restrict bs)
{
  for (int64_t i = 0; i < n; i++) {
    gb[i] = 2.0 * (gb[i] - p_own[i]) * g[i];
    dp_own[i] = -2.0 * b[i] * g[i];
    bs[i] = b[i] * root_g[i];
  }
}

/* One row j of dP = s dR with dR from dF (in df) and dr, over n columns,
 * with the inverse divisor q from r_row(). */
TCX_VECTORIZE static void backward_r_row(int64_t n, double s,
                                        const double *restrict p,
                                        const double *restrict df,
                                        const double *restrict inv,
                                        const double *restrict dr,
                                        const double *restrict q,
                                        double *restrict dp)
{
  const double low = TCX_TCOREX_CLAMP, high = 1.0 - TCX_TCOREX_CLAMP;
  const double inv_high = 1.0 / high;

  for (int64_t i = 0; i < n; i++) {
    const double rr = p[i] * s;
    const double kappa = 1.0 - rr * rr;
    const double inv_q2 = q[i];
    const double inv_q1 = kappa < high ? inv_q2 : inv_high;
    const double free1 = kappa > low && kappa < high ? 1.0 : 0.0;
    const double free2 = kappa > low && kappa < 1.0 ? 1.0 : 0.0;
    const double from_f =
        df[i] * inv[i] * inv_q2 * (1.0 + free2 * 2.0 * rr * rr * inv_q2);
    const double from_r =
        dr[i] * 2.0 * rr * inv_q1 * (1.0 + free1 * rr * rr * inv_q1);

    dp[i] = s * (from_f + from_r);
  }
}

/* Backward pass on columns i0 .. i1 - 1, after tile_forward(). The loops
 * are kept free of sums over i so that the compiler can vectorise them; the
 * sums over columns are dot products. */
static void tile_backward(tcx_tcorex_plan *plan, const period_state *ps,
                          int64_t i0, int64_t i1, int first_tile)
{
  const int64_t m = ps->m, nl = ps->nl, width = i1 - i0;
  const int sigma = plan->reg_type == TCX_TCOREX_REG_SIGMA;
  const int mi = plan->reg_type == TCX_TCOREX_REG_MI;
  const double *restrict g = plan->vec_e + i0;
  const double *restrict inv = plan->vec_inv + i0;
  double *restrict root_g = plan->vec_root + i0;
  double *restrict dr = plan->vec_dr + i0;

  for (int64_t i = 0; i < width; i++) {
    root_g[i] = sqrt(g[i]);
    dr[i] = 0.0;
  }

  /* dB = 2 (G'B - P') g into gb, dP' = -2 B g, and dG' = (B g) B^T as the
   * symmetric product of B sqrt(g) (g >= 0). */
  for (int64_t j = 0; j < m; j++)
    backward_b_row(width, plan->work_b + j * nl + i0,
                   ps->p_own + j * nl + i0, g, root_g,
                   plan->work_gb + j * nl + i0, ps->dp_own + j * nl + i0,
                   plan->work_scaled + j * nl + i0);
  if (plan->single) {
    /* One tile's B sqrt(g) (B sqrt(g))^T in float, added to dG' in
     * double. */
    float *bs32 = plan->work_b32, *mm32 = plan->work_mm32;

    for (int64_t j = 0; j < m; j++)
      for (int64_t i = i0; i < i1; i++)
        bs32[j * nl + i] = (float)plan->work_scaled[j * nl + i];
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)width,
                1.0f, bs32 + i0, (int)nl, 0.0f, mm32, (int)m);
    for (int64_t j = 0; j < m; j++)
      for (int64_t k = j; k < m; k++)
        ps->dgram[j * m + k] = (first_tile ? 0.0 : ps->dgram[j * m + k]) +
                               (double)mm32[j * m + k];
  } else {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, (int)width,
                1.0, plan->work_scaled + i0, (int)nl, first_tile ? 0.0 : 1.0,
                ps->dgram, (int)m);
  }

  /* B = s F: ds_j gets sum_i dB F = sqrt(z2_j) sum_i dB B, dF = s dB (+ the
   * Sigma regulariser's dF) replaces dB, and dr_i = -sum_j dF F / (1 + r_i). */
  for (int64_t j = 0; j < m; j++) {
    const double root = sqrt(ps->z2[j]), s = 1.0 / root;
    const double *restrict b = plan->work_b + j * nl + i0;
    const double *restrict dm = sigma ? ps->dm + j * nl + i0 : NULL;
    double *restrict gb = plan->work_gb + j * nl + i0;

    ps->ds[j] += root * cblas_ddot((int)width, gb, 1, b, 1);
    if (sigma)
      for (int64_t i = 0; i < width; i++)
        gb[i] = s * gb[i] + dm[i];
    else
      for (int64_t i = 0; i < width; i++)
        gb[i] = s * gb[i];
    for (int64_t i = 0; i < width; i++)
      dr[i] -= gb[i] * root * b[i] * inv[i];
  }

  /* dR through F = R / q2 / (1 + r) and r = sum_j R^2 / q1, then dP = s dR
   * and ds_j += sum_i dR P = sqrt(z2_j) sum_i dP P. Derivatives vanish
   * where a clamp is active. */
  for (int64_t j = 0; j < m; j++) {
    const double root = sqrt(ps->z2[j]), s = 1.0 / root;
    const double *restrict p = ps->p + j * nl + i0;
    const double *restrict gb = plan->work_gb + j * nl + i0;
    const double *restrict dm = mi ? ps->dm + j * nl + i0 : NULL;
    double *restrict dp = ps->dp + j * nl + i0;

    backward_r_row(width, s, p, gb, inv, dr, plan->work_q + j * nl + i0, dp);
    if (mi)
      for (int64_t i = 0; i < width; i++) {
        const double rr = p[i] * s;

        if (rr * rr < 1.0 - TCX_TCOREX_CLAMP)
          dp[i] += s * dm[i] * rr / (1.0 - rr * rr);
      }
    ps->ds[j] += root * cblas_ddot((int)width, dp, 1, p, 1);
  }
  if (plan->weighted)
    for (int64_t j = 0; j < m; j++) {
      const double *restrict dp_own = ps->dp_own + j * nl + i0;
      double *restrict dp = ps->dp + j * nl + i0;

      for (int64_t i = 0; i < width; i++)
        dp[i] += dp_own[i];
    }
  if (ps->dp32)
    for (int64_t j = 0; j < m; j++) {
      const double *restrict dp = ps->dp + j * nl + i0;
      float *restrict dp32 = ps->dp32 + j * nl + i0;

      for (int64_t i = 0; i < width; i++)
        dp32[i] = (float)dp[i];
    }
  if (ps->dp_own32)
    for (int64_t j = 0; j < m; j++) {
      const double *restrict dp_own = ps->dp_own + j * nl + i0;
      float *restrict dp_own32 = ps->dp_own32 + j * nl + i0;

      for (int64_t i = 0; i < width; i++)
        dp_own32[i] = (float)dp_own[i];
    }
}

/* Forward pass of period t on this rank's columns: returns 1/2 sum_i log
 * max(e_i, 1e-8). With a gradient, also the backward pass: dP_t (plus dP'_t
 * with the weighted objective) into dp_window, dP'_t into dp_own, and the
 * partial sums dG'_t and ds_t into the second reduction buffer. In single
 * precision dP_t also goes to factors32 and dP'_t to dp_own32 as floats, and
 * with dp_in_float only there. Columns are
 * processed in tiles of about 128 KiB per m x tile array, so that the
 * elementwise passes over one tile stay in cache. */
static double period_pass(tcx_tcorex_plan *plan, int t, double eps, int grad)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int64_t tile = m >= 256 ? 64 : (m > 4 ? 16384 / m : 4096);
  period_state ps;
  double log_sum = 0.0;

  ps.m = m;
  ps.nl = nl;
  ps.a2 = 1.0 - eps * eps;
  ps.e2 = eps * eps;
  ps.p = plan->p_window + t * m * nl;
  ps.p_own = plan->weighted ? ps.p : plan->p_own + t * m * nl;
  ps.gram_own =
      plan->weighted ? plan->gram + t * m * m : plan->gram_own + t * m * m;
  ps.square = plan->weighted ? plan->window_square + t * nl
                             : plan->own_square + t * nl;
  ps.z2 = plan->z2 + t * m;
  ps.dm = plan->reg_type == TCX_TCOREX_REG_W ? NULL
                                             : plan->reg_grad + t * m * nl;
  /* With dp_in_float, dP and dP' live only in the tile's work space and
   * leave it rounded to float. */
  ps.dp = plan->dp_in_float ? plan->work_dp : plan->dp_window + t * m * nl;
  ps.dp_own = plan->weighted || plan->dp_in_float
                  ? plan->work_dp_own
                  : plan->dp_own + t * m * nl;
  ps.dgram = plan->reduce2 + dgram_offset(plan) + t * m * m;
  ps.ds = plan->reduce2 + ds_offset(plan) + t * m;
  ps.dp32 = plan->single ? plan->factors32 + t * m * nl : NULL;
  ps.dp_own32 = plan->dp_own32 ? plan->dp_own32 + t * m * nl : NULL;
  ps.p_own32 = plan->single ? plan->p_own32 + t * m * nl : NULL;
  if (plan->single)
    for (int64_t k = 0; k < m * m; k++)
      plan->gram32[k] = (float)ps.gram_own[k];

  for (int64_t i0 = 0; i0 < nl; i0 += tile) {
    const int64_t i1 = i0 + tile < nl ? i0 + tile : nl;

    log_sum += tile_forward(plan, t, &ps, i0, i1);
    if (grad)
      tile_backward(plan, &ps, i0, i1, i0 == 0);
  }
  if (grad)
    symmetrize_upper(m, ps.dgram);
  return log_sum;
}

/* Computes this rank's part of X^w dP_t^T and x_t dP'_t^T (psi). */
static void local_back_projections(tcx_tcorex_plan *plan)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;
  double *xdp = plan->reduce2 + xdp_offset(plan);
  double *psi = plan->reduce2 + psi_offset(plan);

  /* In single precision period_pass() has left dP rounded in factors32, and
   * dP' in dp_own32. */
  data_times_factors(plan, plan->dp_window, 1, xdp);
  if (plan->weighted)
    return;
  if (plan->single) {
    float *psi32 = plan->y32; /* n_rows m <= y_count */

    for (int t = 0; t < nt; t++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                  (int)own_rows(plan, t), (int)m, (int)nl, 1.0f,
                  plan->x32 + plan->period_begin[t] * nl, (int)nl,
                  plan->dp_own32 + t * m * nl, (int)nl, 0.0f,
                  psi32 + plan->period_begin[t] * m, (int)m);
    for (int64_t k = 0; k < plan->n_rows * m; k++)
      psi[k] = (double)psi32[k];
    return;
  }
  for (int t = 0; t < nt; t++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)own_rows(plan, t),
                (int)m, (int)nl, 1.0, plan->x + plan->period_begin[t] * nl,
                (int)nl, plan->dp_own + t * m * nl, (int)nl, 0.0,
                psi + plan->period_begin[t] * m, (int)m);
}

/* Adds scale times the derivative of l1 |D|_1 + l2 |D|_F^2 with respect to
 * w, for D = w - w_prev and D = w_next - w, to one row g of n entries.
 * w_prev or w_next is NULL at the ends. sign(0) = 0. */
TCX_VECTORIZE static void penalty_row(int64_t n, double scale, double l1,
                                      double l2, const double *restrict w_prev,
                                      const double *restrict w,
                                      const double *restrict w_next,
                                      double *restrict g)
{
  const double a = scale * l1, b = 2.0 * scale * l2;

  if (w_prev)
    for (int64_t i = 0; i < n; i++) {
      const double d = w[i] - w_prev[i];

      g[i] += a * ((d > 0.0 ? 1.0 : 0.0) - (d < 0.0 ? 1.0 : 0.0)) + b * d;
    }
  if (w_next)
    for (int64_t i = 0; i < n; i++) {
      const double d = w_next[i] - w[i];

      g[i] -= a * ((d > 0.0 ? 1.0 : 0.0) - (d < 0.0 ? 1.0 : 0.0)) + b * d;
    }
}

/* Writes scale times df_t/dW_t, assembled from the reduced sums, into
 * gradient:
 *   a2 Phi^T X^w + e2 (dP + dP') + 2 dz2 o P + 2 dG' P',
 * Phi = c o (X^w dP^T), plus (x_t dP'^T) / n_t on period t's own rows.
 * With weights (reg W) it adds scale times the gradient of the difference
 * penalty on weights, without its l1 part unless with_l1. The GEMMs write
 * the gradient first. Then one sweep per row adds the elementwise terms
 * while the row is in cache. */
static void assemble_gradient(tcx_tcorex_plan *plan, double eps, double scale,
                              const double *weights, int with_l1,
                              double *gradient)
{
  const int64_t m = plan->m, nl = plan->n_local, ld = plan->y_ld;
  const int nt = plan->nt;
  const double a2 = 1.0 - eps * eps, e2 = eps * eps;
  const double *xdp = plan->reduce2 + xdp_offset(plan);
  const double *psi = plan->reduce2 + psi_offset(plan);

  for (int t = 0; t < nt; t++) {
    double *phi = plan->scaled + plan->y_offset[t];
    int64_t r = 0;

    for (int s = plan->window_first[t]; s <= plan->window_last[t]; s++) {
      const double c = plan->period_weight[t * nt + s];
      const int64_t end = r + own_rows(plan, s);
      const double own_scale = 1.0 / (double)own_rows(plan, s);

      for (; r < end; r++) {
        const int64_t row = window_row_begin(plan, t) + r;

        for (int64_t j = 0; j < m; j++) {
          phi[r * ld + j] = c * xdp[plan->y_offset[t] + r * ld + j];
          if (s == t && !plan->weighted)
            phi[r * ld + j] += own_scale * psi[row * m + j];
        }
      }
    }
  }
  /* In single precision Phi^T X^w + (2 / a2) dG' P' is summed in float in
   * factors32 and widened row by row below. */
  if (plan->single) {
    factors_times_data32(plan, plan->scaled);
    for (int t = 0; t < nt; t++) {
      const double *dgram = plan->reduce2 + dgram_offset(plan) + t * m * m;

      for (int64_t k = 0; k < m * m; k++)
        plan->gram32[k] = (float)(2.0 / a2 * dgram[k]);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nl,
                  (int)m, 1.0f, plan->gram32, (int)m,
                  plan->p_own32 + t * m * nl, (int)nl, 1.0f,
                  plan->factors32 + t * m * nl, (int)nl);
    }
  }
  for (int t = 0; t < nt && !plan->single; t++) {
    const double *dgram = plan->reduce2 + dgram_offset(plan) + t * m * m;
    const double *p_own =
        plan->weighted ? plan->p_window + t * m * nl : plan->p_own + t * m * nl;

    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nl,
                (int)m, 2.0 * scale, dgram, (int)m, p_own, (int)nl, 0.0,
                gradient + t * m * nl, (int)nl);
  }
  if (!plan->single)
    factors_times_data(plan, scale * a2, plan->scaled, 1.0, gradient);

  /* Row j of every period in turn: the penalty reads row j of W_{t-1}, W_t
   * and W_{t+1}, which the previous rows of the sweep have brought into
   * cache. */
  for (int64_t j = 0; j < m; j++)
    for (int t = 0; t < nt; t++) {
      const double *ds = plan->reduce2 + ds_offset(plan) + t * m;
      const double *p = plan->p_window + t * m * nl;
      const double *dp = plan->dp_window + t * m * nl;
      const int64_t row = (t * m + j) * nl;
      const double z2 = plan->z2[t * m + j];
      const double dz2 = 0.5 / z2 - 0.5 * ds[j] / (z2 * sqrt(z2));
      const double pw = 2.0 * scale * dz2, dw = scale * e2;
      double *restrict g_row = gradient + row;

      if (plan->single) {
        const float *restrict phi_x = plan->factors32 + row;
        const double phiw = scale * a2;

        for (int64_t i = 0; i < nl; i++)
          g_row[i] = phiw * (double)phi_x[i];
      }
      if (e2 > 0.0)
        for (int64_t i = 0; i < nl; i++)
          g_row[i] += dw * dp[j * nl + i] + pw * p[j * nl + i];
      else
        for (int64_t i = 0; i < nl; i++)
          g_row[i] += pw * p[j * nl + i];
      if (!plan->weighted && e2 > 0.0) {
        const double *restrict dp_own = plan->dp_own + row;

        for (int64_t i = 0; i < nl; i++)
          g_row[i] += dw * dp_own[i];
      }
      if (weights)
        penalty_row(nl, scale, with_l1 ? plan->l1 : 0.0, plan->l2,
                    t > 0 ? weights + row - m * nl : NULL, weights + row,
                    t + 1 < nt ? weights + row + m * nl : NULL, g_row);
    }
}

int tcx_tcorex_evaluate(tcx_ctx *ctx, tcx_tcorex_plan *plan, double eps,
                        const double *weights, tcx_tcorex_eval_mode mode,
                        const double *extra, int n_extra, double *extra_sum,
                        tcx_tcorex_value *value, double *gradient)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;
  const int grad = mode != TCX_TCOREX_EVAL_VALUE;
  const double scale = 1.0 / ((double)nt * (double)plan->n_vars);
  double *scalars = plan->reduce2;
  double replicated_l2 = 0.0, log_z2 = 0.0;
  int rc = TCX_OK;

  TCX_CHECK(n_extra >= 0 && n_extra <= TCX_TCOREX_MAX_EXTRA, ctx,
            TCX_ERR_INTERNAL, "invalid number of extra sums: %d", n_extra);
  TCX_CHECK(eps >= 0.0 && eps < 1.0, ctx, TCX_ERR_USAGE,
            "annealing noise level %g is outside [0, 1)", eps);

  /* Reduction 1: the projections Y^w_t and W_t W_t^T. */
  TCX_TRY(allreduce_sum(ctx, plan->reduce1,
                        local_projections(plan, eps, weights)));
  factor_moments(plan, eps);
  cross_moments(plan, eps, weights);

  memset(plan->reduce2, 0, (size_t)plan->reduce2_size * sizeof(double));
  for (int k = 0; k < n_extra; k++)
    scalars[SLOT_EXTRA + k] = extra[k];
  /* With reg W the penalty's gradient is added in assemble_gradient(). */
  if (plan->reg_type == TCX_TCOREX_REG_W)
    difference_penalty(nt, m * nl, weights, plan->l1, plan->l2, 0, scale,
                       &scalars[SLOT_L1], &scalars[SLOT_L2], NULL);
  else
    TCX_TRY(matrix_penalty(ctx, plan, mode, scalars, &replicated_l2));
  plan->dp_in_float = plan->single && eps == 0.0;
  for (int t = 0; t < nt; t++)
    scalars[SLOT_LOG_E] += period_pass(plan, t, eps, grad);
  if (grad)
    local_back_projections(plan);

  /* Reduction 2: scalars, then dG', ds, psi and X dP^T. */
  TCX_TRY(allreduce_sum(ctx, plan->reduce2,
                        grad ? plan->reduce2_size : SLOT_EXTRA + n_extra));
  for (int64_t k = 0; k < nt * m; k++)
    log_z2 += 0.5 * log(plan->z2[k]);
  value->main = scale * (scalars[SLOT_LOG_E] + log_z2);
  value->reg_l1 = scale * plan->l1 * scalars[SLOT_L1];
  value->reg_l2 = scale * plan->l2 * (scalars[SLOT_L2] + replicated_l2);
  for (int k = 0; k < n_extra; k++)
    extra_sum[k] = scalars[SLOT_EXTRA + k];
  if (!grad)
    goto cleanup;

  assemble_gradient(plan, eps, scale,
                    plan->reg_type == TCX_TCOREX_REG_W ? weights : NULL,
                    mode == TCX_TCOREX_EVAL_GRADIENT, gradient);

cleanup:
  return rc;
}

int tcx_tcorex_outputs(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                       const double *weights, tcx_tcorex_result *result)
{
  const int64_t m = plan->m, nl = plan->n_local;
  const int nt = plan->nt;
  int rc = TCX_OK;

  TCX_TRY(allreduce_sum(ctx, plan->reduce1,
                        local_projections(plan, 0.0, weights)));
  factor_moments(plan, 0.0);
  cross_moments(plan, 0.0, weights);
  for (int t = 0; t < nt; t++) {
    double *mi = result->mi + t * m * nl;
    int32_t *clusters = result->clusters + t * nl;

    period_r(plan, t, 0, nl);
    period_factors(plan, t, 0, nl, 0, result->factors + t * m * nl);
    period_mi(plan, t, mi);
    for (int64_t i = 0; i < nl; i++) {
      int32_t best = 0;

      for (int64_t j = 1; j < m; j++)
        if (mi[j * nl + i] > mi[best * nl + i])
          best = (int32_t)j;
      clusters[i] = best;
    }
    for (int64_t j = 0; j < m; j++) {
      double sum = 0.0;

      for (int64_t i = 0; i < nl; i++)
        sum += mi[j * nl + i];
      result->tcs[t * m + j] = sum;
    }
  }

  /* tcs_j = sum_i MI_ji - I(z_j; x), and I(z_j; x) = 1/2 log E[z_j^2] with
   * unit latent noise. */
  TCX_TRY(allreduce_sum(ctx, result->tcs, nt * m));
  for (int64_t k = 0; k < nt * m; k++)
    result->tcs[k] -= 0.5 * log(plan->z2[k]);

cleanup:
  return rc;
}
