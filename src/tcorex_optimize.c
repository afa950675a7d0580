/* T-CorEx optimisers over the annealing schedule: Adam with the published
 * settings, or FISTA with the exact total-variation prox. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"
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

/* Logs the state of a stage at most once a second, and always at its end.
 * The message numbers stages from 1, like the linear CorEx and checkpoint
 * messages, although stage counts from 0. */
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
          stage + 1, eps, (long long)iteration, total(value), value->main,
          value->reg_l1 + value->reg_l2);
}

/* Points snapshot at the state of the optimiser: the arrays, the stopping
 * window and room for the scalars. */
static void snapshot_init(tcx_tcorex_snapshot *snapshot, int n_stages,
                          recent_values *recent)
{
  memset(snapshot, 0, sizeof(*snapshot));
  snapshot->n_stages = n_stages;
  snapshot->recent = recent->values;
  snapshot->recent_capacity = 2 * TCX_TCOREX_MAX_STOPPING_WINDOW;
  snapshot->recent_count = &recent->count;
}

/* Runs the validation check before the next step, if any; sets *stop when
 * the fit is to end there. Collective. */
static int validation_boundary(tcx_ctx *ctx, tcx_tcorex_plan *plan,
                               const double *weights,
                               tcx_tcorex_result *result, int *stop)
{
  *stop = 0;
  if (!plan->validation)
    return TCX_OK;
  return tcx_tcorex_validation_check(ctx, plan->validation, plan, weights,
                                     result, 0, stop);
}

static void snapshot_add(tcx_tcorex_snapshot *snapshot, const char *name,
                         double *array)
{
  snapshot->array_names[snapshot->n_arrays] = name;
  snapshot->arrays[snapshot->n_arrays++] = array;
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
  double votes[TCX_CHECKPOINT_N_VOTES];
  tcx_tcorex_value value = {0};
  recent_values recent = {{0}, 0};
  tcx_tcorex_snapshot snapshot;
  int first_stage = 0, resumed = 0, stop = 0;
  tcx_adam adam;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "gradient", &grad));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "Adam moments", &first));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "Adam moments", &second));
  tcx_adam_init(&adam, options->learning_rate);
  result->converged = 1;

  /* A checkpoint contains W, the moments, Adam's step counter, the stage
   * position and the stopping window. */
  snapshot_init(&snapshot, n_stages, &recent);
  snapshot.validation = plan->validation;
  snapshot_add(&snapshot, "weights", weights);
  snapshot_add(&snapshot, "adam_first_moment", first);
  snapshot_add(&snapshot, "adam_second_moment", second);
  snapshot.gradient = grad;
  snapshot.n_scalars = 1;
  if (tcx_tcorex_checkpoint_pending(options)) {
    TCX_TRY(tcx_tcorex_checkpoint_restore(ctx, options, plan, &snapshot,
                                          result));
    adam.step = (int64_t)snapshot.scalars[0];
    capacity = result->n_history;
    first_stage = snapshot.stage;
    resumed = 1;
  }

  /* The moments and the step counter carry over from stage to stage. */
  for (int stage = first_stage; stage < n_stages && !stop; stage++) {
    int64_t steps = 0;
    int plateau = 0;

    if (resumed && stage == first_stage)
      steps = snapshot.steps;
    else
      recent.count = 0;
    while (steps < options->max_iter && !plateau) {
      /* The checkpoint votes ride on the objective's reduction. */
      tcx_checkpoint_vote(ctx, options->checkpoint, votes);
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, levels[stage], weights,
                                  TCX_TCOREX_EVAL_GRADIENT, votes,
                                  TCX_CHECKPOINT_N_VOTES, votes, &value,
                                  grad));
      tcx_checkpoint_tally(options->checkpoint, votes);
      snapshot.stage = stage;
      snapshot.steps = steps;
      snapshot.objective = total(&value);
      snapshot.scalars[0] = (double)adam.step;
      TCX_TRY(tcx_tcorex_checkpoint_boundary(ctx, options, plan, &snapshot,
                                             result));
      TCX_TRY(validation_boundary(ctx, plan, weights, result, &stop));
      if (stop)
        break;
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

/* The scalars of FISTA's checkpoint: the step, the momentum, and the parts
 * of the objective at x and at y. */
enum {
  FISTA_STEP,
  FISTA_MOMENTUM,
  FISTA_VALUE_X,
  FISTA_VALUE_Y = FISTA_VALUE_X + 3,
  FISTA_N_SCALARS = FISTA_VALUE_Y + 3
};

static void fista_pack(const fista_state *st, double momentum,
                       const tcx_tcorex_value *value_x,
                       const tcx_tcorex_value *value_y,
                       tcx_tcorex_snapshot *snapshot)
{
  double *scalars = snapshot->scalars;

  scalars[FISTA_STEP] = st->step;
  scalars[FISTA_MOMENTUM] = momentum;
  scalars[FISTA_VALUE_X] = value_x->main;
  scalars[FISTA_VALUE_X + 1] = value_x->reg_l1;
  scalars[FISTA_VALUE_X + 2] = value_x->reg_l2;
  scalars[FISTA_VALUE_Y] = value_y->main;
  scalars[FISTA_VALUE_Y + 1] = value_y->reg_l1;
  scalars[FISTA_VALUE_Y + 2] = value_y->reg_l2;
}

static void fista_unpack(const tcx_tcorex_snapshot *snapshot, fista_state *st,
                         double *momentum, tcx_tcorex_value *value_x,
                         tcx_tcorex_value *value_y)
{
  const double *scalars = snapshot->scalars;

  st->step = scalars[FISTA_STEP];
  *momentum = scalars[FISTA_MOMENTUM];
  value_x->main = scalars[FISTA_VALUE_X];
  value_x->reg_l1 = scalars[FISTA_VALUE_X + 1];
  value_x->reg_l2 = scalars[FISTA_VALUE_X + 2];
  value_y->main = scalars[FISTA_VALUE_Y];
  value_y->reg_l1 = scalars[FISTA_VALUE_Y + 1];
  value_y->reg_l2 = scalars[FISTA_VALUE_Y + 2];
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
  double votes[TCX_CHECKPOINT_N_VOTES];
  recent_values recent = {{0}, 0};
  tcx_tcorex_snapshot snapshot;
  fista_state st = {0};
  int first_stage = 0, resumed = 0, stop = 0;
  int rc = TCX_OK;

  st.x = weights;
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.x_prev));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.y));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA gradient", &st.grad));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA iterate", &st.z));
  TCX_TRY(tcx_calloc(ctx, n, sizeof(double), "FISTA work space", &st.work));
  st.step = options->learning_rate * (double)plan->nt * (double)plan->n_vars;
  result->converged = 1;

  /* A checkpoint contains x, y and the gradient at y, the step, the
   * momentum, both objective values, the stage position and the stopping
   * window. */
  snapshot_init(&snapshot, n_stages, &recent);
  snapshot.validation = plan->validation;
  snapshot_add(&snapshot, "weights", st.x);
  snapshot_add(&snapshot, "fista_extrapolated", st.y);
  snapshot_add(&snapshot, "fista_gradient", st.grad);
  snapshot.gradient = st.grad;
  snapshot.n_scalars = FISTA_N_SCALARS;
  if (tcx_tcorex_checkpoint_pending(options)) {
    TCX_TRY(tcx_tcorex_checkpoint_restore(ctx, options, plan, &snapshot,
                                          result));
    capacity = result->n_history;
    first_stage = snapshot.stage;
    resumed = 1;
  }

  /* Momentum restarts at every stage because the objective changes. */
  for (int stage = first_stage; stage < n_stages && !stop; stage++) {
    const double eps = levels[stage];
    tcx_tcorex_value value_x, value_y, value_z;
    double momentum = 1.0;
    int64_t steps = 0;
    int plateau = 0, found = 1;

    if (resumed && stage == first_stage) {
      fista_unpack(&snapshot, &st, &momentum, &value_x, &value_y);
      steps = snapshot.steps;
    } else {
      recent.count = 0;
      memcpy(st.y, st.x, (size_t)n * sizeof(double));
      tcx_checkpoint_vote(ctx, options->checkpoint, votes);
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, eps, st.y,
                                  TCX_TCOREX_EVAL_SMOOTH_GRADIENT, votes,
                                  TCX_CHECKPOINT_N_VOTES, votes, &value_y,
                                  st.grad));
      tcx_checkpoint_tally(options->checkpoint, votes);
      value_x = value_y;
    }
    while (steps < options->max_iter && !plateau && found) {
      const double before = total(&value_x);
      double next_momentum, beta;

      fista_pack(&st, momentum, &value_x, &value_y, &snapshot);
      snapshot.stage = stage;
      snapshot.steps = steps;
      snapshot.objective = before;
      TCX_TRY(tcx_tcorex_checkpoint_boundary(ctx, options, plan, &snapshot,
                                             result));
      TCX_TRY(validation_boundary(ctx, plan, st.x, result, &stop));
      if (stop)
        break;
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
      /* The checkpoint votes ride on this reduction. */
      tcx_checkpoint_vote(ctx, options->checkpoint, votes);
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, eps, st.y,
                                  TCX_TCOREX_EVAL_SMOOTH_GRADIENT, votes,
                                  TCX_CHECKPOINT_N_VOTES, votes, &value_y,
                                  st.grad));
      tcx_checkpoint_tally(options->checkpoint, votes);
      st.step *= FISTA_STEP_GROWTH;
      plateau = recent_push(&recent, before, options);
      log_progress(ctx, &last_log, 0, stage, eps, steps, &value_x);
    }
    log_progress(ctx, &last_log, 1, stage, eps, steps, &value_x);
    if (!found)
      tcx_log(ctx, TCX_LOG_WARNING,
              "FISTA stage %d (eps %.4g) stopped after %lld steps: no step "
              "size decreases the objective",
              stage + 1, eps, (long long)steps);
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
  tcx_tcorex_validation *v = plan->validation;
  int stop = 0, rc;

  if (options->optimizer == TCX_TCOREX_FISTA)
    rc = optimize_fista(ctx, options, plan, weights, result);
  else
    rc = optimize_adam(ctx, options, plan, weights, result);
  if (rc != TCX_OK || !v)
    return rc;

  /* The weights after the last step have not been scored yet, unless the
   * rule stopped the fit before that step. */
  result->stopped_early = v->state[TCX_VALIDATION_STOPPED] != 0.0;
  if (!result->stopped_early) {
    TCX_TRY(tcx_tcorex_validation_check(ctx, v, plan, weights, result, 1,
                                        &stop));
    v->state[TCX_VALIDATION_STOPPED] = 0.0;
  }
  memcpy(weights, v->best_weights,
         (size_t)((int64_t)v->nt * v->m * v->n_local) * sizeof(double));
  result->validation_nll = v->state[TCX_VALIDATION_BEST_NLL];
  result->validation_iteration =
      (int64_t)v->state[TCX_VALIDATION_BEST_ITERATION];
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "T-CorEx: %s after %lld steps; keeping the weights of step %lld, "
          "validation NLL %.8g",
          result->stopped_early ? "validation NLL stopped improving"
                                : "no early stop",
          (long long)result->iterations,
          (long long)result->validation_iteration, result->validation_nll);

cleanup:
  return rc;
}
