/* T-CorEx optimisers over the annealing schedule: Adam with the published
 * settings, or FISTA with the exact total-variation prox. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/optim.h"
#include "tcorex_internal.h"

enum { MAX_STAGES = 7 };

/* FISTA: the step halves until the sufficient-decrease test passes, and the
 * next iteration first tries the accepted step times FISTA_STEP_GROWTH. */
#define FISTA_STEP_GROWTH 1.25
#define FISTA_MIN_STEP 1e-300

/* Fills the noise levels of the annealing stages; returns their count. */
static int anneal_schedule(int anneal, double *levels)
{
  int count = 0;

  if (anneal) {
    double level = 1.0;

    for (int k = 1; k <= 6; k++) {
      level *= 0.6;
      levels[count++] = level;
    }
  }
  levels[count++] = 0.0;
  return count;
}

static double total(const tcx_tcorex_value *value)
{
  return value->main + value->reg_l1 + value->reg_l2;
}

/* Appends one entry to the objective history of result. */
static int history_append(tcx_ctx *ctx, tcx_tcorex_result *result,
                          int64_t *capacity, const tcx_tcorex_value *value)
{
  int rc = TCX_OK;

  if (result->n_history == *capacity) {
    const int64_t grown = *capacity ? 2 * *capacity : 1024;
    double *main_part = realloc(result->history_main,
                                (size_t)grown * sizeof(double));

    TCX_CHECK(main_part, ctx, TCX_ERR_MEMORY,
              "cannot grow the objective history to %lld entries",
              (long long)grown);
    result->history_main = main_part;
    {
      double *reg_part = realloc(result->history_reg,
                                 (size_t)grown * sizeof(double));

      TCX_CHECK(reg_part, ctx, TCX_ERR_MEMORY,
                "cannot grow the objective history to %lld entries",
                (long long)grown);
      result->history_reg = reg_part;
    }
    *capacity = grown;
  }
  result->history_main[result->n_history] = value->main;
  result->history_reg[result->n_history] = value->reg_l1 + value->reg_l2;
  result->n_history++;

cleanup:
  return rc;
}

/* The last 2 * stopping_window objective values of a stage: all that the
 * stopping rule reads, whatever max_iter is. */
typedef struct recent_values {
  double values[2 * TCX_TCOREX_MAX_STOPPING_WINDOW];
  int64_t count;
} recent_values;

/* Appends value, dropping the oldest one when full, and returns whether the
 * stage has reached a plateau: the means of the last two windows of
 * options->stopping_window values differ by less than options->tol
 * relative. */
static int recent_push(recent_values *recent, double value,
                       const tcx_tcorex_options *options)
{
  const int64_t capacity = 2 * options->stopping_window;

  if (recent->count == capacity) {
    memmove(recent->values, recent->values + 1,
            (size_t)(capacity - 1) * sizeof(double));
    recent->count--;
  }
  recent->values[recent->count++] = value;
  return tcx_optim_plateau(recent->values, recent->count,
                           options->stopping_window, options->tol);
}

/* Logs the state of a stage at most once a second, and always at its end. */
static void log_progress(tcx_ctx *ctx, double *last_time, int force, int stage,
                         double eps, int64_t iteration,
                         const tcx_tcorex_value *value)
{
  const double now = tcx_time();

  if (!force && now - *last_time < 1.0)
    return;
  *last_time = now;
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "T-CorEx stage %d (eps %.4g) step %lld: objective %.8g (main %.8g, "
          "regulariser %.8g)",
          stage, eps, (long long)iteration, total(value), value->main,
          value->reg_l1 + value->reg_l2);
}

static int optimize_adam(tcx_ctx *ctx, const tcx_tcorex_options *options,
                         tcx_tcorex_plan *plan, double *weights,
                         tcx_tcorex_result *result)
{
  const int64_t n = (int64_t)plan->nt * plan->m * plan->n_local;
  double levels[MAX_STAGES];
  const int n_stages = anneal_schedule(options->anneal, levels);
  double *grad = NULL, *first = NULL, *second = NULL;
  int64_t capacity = result->n_history;
  double last_log = tcx_time();
  tcx_tcorex_value value = {0};
  tcx_adam adam;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "gradient", &grad));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "Adam moments", &first));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "Adam moments", &second));
  tcx_adam_init(&adam, options->learning_rate);
  result->converged = 1;

  /* The moments and the step counter carry over from stage to stage. */
  for (int stage = 0; stage < n_stages; stage++) {
    recent_values recent = {{0}, 0};
    int64_t steps = 0;
    int plateau = 0;

    while (steps < options->max_iter && !plateau) {
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, levels[stage], weights,
                                  TCX_TCOREX_EVAL_GRADIENT, NULL, 0, NULL,
                                  &value, grad));
      TCX_CHECK(isfinite(total(&value)), ctx, TCX_ERR_NUMERIC,
                "the T-CorEx objective is %g at stage %d step %lld; lower "
                "the learning rate (now %g)",
                total(&value), stage, (long long)steps,
                options->learning_rate);
      TCX_TRY(history_append(ctx, result, &capacity, &value));
      tcx_adam_step(&adam, n, weights, grad, first, second);
      steps++;
      result->iterations++;
      plateau = recent_push(&recent, total(&value), options);
      log_progress(ctx, &last_log, 0, stage, levels[stage], steps, &value);
    }
    log_progress(ctx, &last_log, 1, stage, levels[stage], steps, &value);
    if (!plateau)
      result->converged = 0;
  }

cleanup:
  free(grad);
  free(first);
  free(second);
  return rc;
}

/* Applies the prox of step * l1 / (nt p) sum_t |W_{t+1} - W_t|_1 to every
 * weight entry's series over t: z = prox(y - step * grad). */
static void fista_prox(const tcx_tcorex_plan *plan, double step, double l1,
                       const double *y, const double *grad, double *work,
                       double *z)
{
  const int64_t count = plan->m * plan->n_local;
  const int64_t n = plan->nt * count;
  const double lambda =
      step * l1 / ((double)plan->nt * (double)plan->n_vars);

  for (int64_t k = 0; k < n; k++)
    work[k] = y[k] - step * grad[k];
  for (int64_t k = 0; k < count; k++)
    tcx_optim_tv_prox(plan->nt, work + k, count, lambda, z + k, count);
}

/* FISTA state for one run. */
typedef struct fista_state {
  double *x;      /* current iterate (the caller's weights) */
  double *x_prev; /* previous iterate */
  double *y;      /* extrapolated point */
  double *grad;   /* smooth gradient at y */
  double *z;      /* trial point */
  double *work;   /* gradient step before the prox */
  double step;
} fista_state;

/* Finds the next iterate z from y by backtracking on the step until
 * f(z) <= f(y) + <grad, z - y> + |z - y|^2 / (2 step), with f the smooth
 * part. Returns in *found 0 when the step underflowed. */
static int fista_search(tcx_ctx *ctx, tcx_tcorex_plan *plan, double eps,
                        double l1, fista_state *st, double smooth_y,
                        tcx_tcorex_value *value_z, int *found)
{
  const int64_t n = (int64_t)plan->nt * plan->m * plan->n_local;
  int rc = TCX_OK;

  *found = 0;
  while (st->step > FISTA_MIN_STEP) {
    double local[2] = {0.0, 0.0}, sums[2];
    double smooth_z, bound;

    fista_prox(plan, st->step, l1, st->y, st->grad, st->work, st->z);
    for (int64_t k = 0; k < n; k++) {
      const double d = st->z[k] - st->y[k];

      local[0] += st->grad[k] * d;
      local[1] += d * d;
    }
    TCX_TRY(tcx_tcorex_evaluate(ctx, plan, eps, st->z, TCX_TCOREX_EVAL_VALUE,
                                local, 2, sums, value_z, NULL));
    smooth_z = value_z->main + value_z->reg_l2;
    bound = smooth_y + sums[0] + sums[1] / (2.0 * st->step);
    /* The slack absorbs rounding once the steps become tiny. */
    if (isfinite(smooth_z) &&
        smooth_z <= bound + 1e-13 * fabs(smooth_y)) {
      *found = 1;
      break;
    }
    st->step *= 0.5;
  }

cleanup:
  return rc;
}

static int optimize_fista(tcx_ctx *ctx, const tcx_tcorex_options *options,
                          tcx_tcorex_plan *plan, double *weights,
                          tcx_tcorex_result *result)
{
  const int64_t n = (int64_t)plan->nt * plan->m * plan->n_local;
  double levels[MAX_STAGES];
  const int n_stages = anneal_schedule(options->anneal, levels);
  int64_t capacity = result->n_history;
  double last_log = tcx_time();
  fista_state st = {0};
  int rc = TCX_OK;

  st.x = weights;
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.x_prev));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.y));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA gradient", &st.grad));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.z));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA work space", &st.work));
  st.step = options->learning_rate * (double)plan->nt * (double)plan->n_vars;
  result->converged = 1;

  /* Momentum restarts at every stage because the objective changes. */
  for (int stage = 0; stage < n_stages; stage++) {
    const double eps = levels[stage];
    tcx_tcorex_value value_x, value_y, value_z;
    recent_values recent = {{0}, 0};
    double momentum = 1.0;
    int64_t steps = 0;
    int plateau = 0, found = 1;

    memcpy(st.y, st.x, (size_t)n * sizeof(double));
    TCX_TRY(tcx_tcorex_evaluate(ctx, plan, eps, st.y,
                                TCX_TCOREX_EVAL_SMOOTH_GRADIENT, NULL, 0, NULL,
                                &value_y, st.grad));
    value_x = value_y;
    while (steps < options->max_iter && !plateau && found) {
      const double before = total(&value_x);
      double next_momentum, beta;

      TCX_TRY(history_append(ctx, result, &capacity, &value_x));
      TCX_TRY(fista_search(ctx, plan, eps, options->l1, &st,
                           value_y.main + value_y.reg_l2, &value_z, &found));
      steps++;
      result->iterations++;
      if (!found)
        break;

      /* Restart the momentum when the objective went up (O'Donoghue and
       * Candes' function restart). */
      if (total(&value_z) > total(&value_x))
        momentum = 1.0;
      next_momentum = 0.5 * (1.0 + sqrt(1.0 + 4.0 * momentum * momentum));
      beta = (momentum - 1.0) / next_momentum;
      momentum = next_momentum;
      memcpy(st.x_prev, st.x, (size_t)n * sizeof(double));
      memcpy(st.x, st.z, (size_t)n * sizeof(double));
      for (int64_t k = 0; k < n; k++)
        st.y[k] = st.x[k] + beta * (st.x[k] - st.x_prev[k]);
      value_x = value_z;
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, eps, st.y,
                                  TCX_TCOREX_EVAL_SMOOTH_GRADIENT, NULL, 0,
                                  NULL, &value_y, st.grad));
      st.step *= FISTA_STEP_GROWTH;
      plateau = recent_push(&recent, before, options);
      log_progress(ctx, &last_log, 0, stage, eps, steps, &value_x);
    }
    log_progress(ctx, &last_log, 1, stage, eps, steps, &value_x);
    if (!found)
      tcx_log(ctx, TCX_LOG_WARNING,
              "FISTA stage %d (eps %.4g) stopped after %lld steps: no step "
              "size decreases the objective",
              stage, eps, (long long)steps);
    if (!plateau)
      result->converged = 0;
  }

cleanup:
  free(st.x_prev);
  free(st.y);
  free(st.grad);
  free(st.z);
  free(st.work);
  return rc;
}

int tcx_tcorex_optimize(tcx_ctx *ctx, const tcx_tcorex_options *options,
                        tcx_tcorex_plan *plan, double *weights,
                        tcx_tcorex_result *result)
{
  if (options->optimizer == TCX_TCOREX_FISTA)
    return optimize_fista(ctx, options, plan, weights, result);
  return optimize_adam(ctx, options, plan, weights, result);
}
