/* Checkpoints of the main T-CorEx fit (phase "tcorex"): the optimiser's
 * arrays in global column layout, its scalars, the stopping rule's window
 * and the history. The linear CorEx initialisation checkpoints itself as
 * phase "linear" (corex_checkpoint.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"
#include "tcorex_internal.h"

/* Indices into the "counters" field. */
enum {
  COUNTER_STEPS,
  COUNTER_ITERATIONS,
  COUNTER_CONVERGED,
  COUNTER_RECENT,
  N_COUNTERS
};

/* Staging copies of the integer parts of the state. */
typedef struct tcorex_counters {
  int64_t counters[N_COUNTERS];
  int64_t history_length;
} tcorex_counters;

static void tcorex_describe(const tcx_tcorex_plan *plan,
                            const tcx_tcorex_snapshot *snapshot,
                            tcx_tcorex_result *result,
                            tcorex_counters *staging,
                            tcx_checkpoint_state *state)
{
  memset(state, 0, sizeof(*state));
  state->phase = "tcorex";
  state->stage = snapshot->stage;
  state->n_stages = snapshot->n_stages;
  state->iteration = snapshot->steps + 1;
  state->objective = snapshot->objective;
  state->last_objective =
      result->n_history > 0 ? result->history_main[result->n_history - 1] +
                                  result->history_reg[result->n_history - 1]
                            : NAN;
  state->objective_name = "objective";
  state->col_begin = plan->col_begin;
  state->n_local = plan->n_local;
  state->n_vars = plan->n_vars;
  state->gradient = snapshot->gradient;
  state->gradient_count =
      snapshot->gradient ? (int64_t)plan->nt * plan->m * plan->n_local : 0;
  for (int k = 0; k < snapshot->n_arrays; k++)
    tcx_checkpoint_add(state, snapshot->array_names[k],
                       TCX_CHECKPOINT_COLUMNS, snapshot->arrays[k],
                       (int64_t)plan->nt * plan->m);
  tcx_checkpoint_add(state, "scalars", TCX_CHECKPOINT_DOUBLES,
                     (void *)snapshot->scalars, snapshot->n_scalars);
  tcx_checkpoint_add(state, "stopping_window", TCX_CHECKPOINT_DOUBLES,
                     snapshot->recent, snapshot->recent_capacity);
  if (snapshot->validation) {
    tcx_checkpoint_add(state, "validation_best_weights",
                       TCX_CHECKPOINT_COLUMNS,
                       snapshot->validation->best_weights,
                       (int64_t)plan->nt * plan->m);
    tcx_checkpoint_add(state, "validation_state", TCX_CHECKPOINT_DOUBLES,
                       snapshot->validation->state, TCX_VALIDATION_STATE);
  }
  tcx_checkpoint_add(state, "counters", TCX_CHECKPOINT_INTEGERS,
                     staging->counters, N_COUNTERS);
  tcx_checkpoint_add(state, "history_length", TCX_CHECKPOINT_INTEGERS,
                     &staging->history_length, 1);
  tcx_checkpoint_add(state, "history_main", TCX_CHECKPOINT_DOUBLES,
                     result->history_main, staging->history_length);
  tcx_checkpoint_add(state, "history_reg", TCX_CHECKPOINT_DOUBLES,
                     result->history_reg, staging->history_length);
}

int tcx_tcorex_checkpoint_begin(tcx_ctx *ctx,
                                const tcx_tcorex_options *options,
                                const tcx_tcorex_plan *plan)
{
  static const char *const reg_names[] = {"weights", "mi", "sigma"};
  static const char *const init_names[] = {"linear", "random", "given"};
  static const char *const optimizer_names[] = {"adam", "fista"};
  char signature[1024], gamma[32], l1[32], l2[32], tol[32], rate[32];

  tcx_checkpoint_format_double(options->gamma, gamma, sizeof(gamma));
  tcx_checkpoint_format_double(options->l1, l1, sizeof(l1));
  tcx_checkpoint_format_double(options->l2, l2, sizeof(l2));
  tcx_checkpoint_format_double(options->tol, tol, sizeof(tol));
  tcx_checkpoint_format_double(options->learning_rate, rate, sizeof(rate));
  snprintf(signature, sizeof(signature),
           "method=t-corex\nsamples=%lld\nvariables=%lld\nperiods=%d\n"
           "factors=%lld\ngamma=%s\nl1=%s\nl2=%s\nreg_type=%s\n"
           "weighted_objective=%d\nmax_samples=%lld\nmax_iter=%lld\n"
           "tol=%s\nanneal=%d\ninit=%s\noptimizer=%s\nlearning_rate=%s\n"
           "seed=%llu\nreanneal=%d\nstopping_window=%lld\n"
           "init_max_iter=%lld\nprecision=%s\nvalidation_rows=%lld\n"
           "validation_every=%lld\npatience=%lld\n",
           (long long)plan->n_rows, (long long)plan->n_vars, plan->nt,
           (long long)options->n_factors, gamma, l1, l2,
           reg_names[options->reg_type], options->weighted_objective,
           (long long)options->max_samples, (long long)options->max_iter, tol,
           options->anneal, init_names[options->init],
           optimizer_names[options->optimizer], rate,
           (unsigned long long)options->seed, options->reanneal,
           (long long)options->stopping_window,
           (long long)options->init_max_iter,
           options->precision == TCX_TCOREX_SINGLE ? "single" : "double",
           options->validation ? (long long)options->validation->n_rows : 0LL,
           (long long)options->validation_every,
           (long long)options->patience);
  return tcx_checkpoint_begin_fit(ctx, options->checkpoint, signature);
}

int tcx_tcorex_checkpoint_pending(const tcx_tcorex_options *options)
{
  const char *phase = tcx_checkpoint_pending_phase(options->checkpoint);

  return phase && strcmp(phase, "tcorex") == 0;
}

int tcx_tcorex_checkpoint_restore(tcx_ctx *ctx,
                                  const tcx_tcorex_options *options,
                                  const tcx_tcorex_plan *plan,
                                  tcx_tcorex_snapshot *snapshot,
                                  tcx_tcorex_result *result)
{
  tcorex_counters staging = {{0}, 0};
  tcx_checkpoint_state state;
  int64_t capacity;
  int rc = TCX_OK;

  TCX_TRY(tcx_checkpoint_read_integer(ctx, options->checkpoint,
                                      "history_length",
                                      &staging.history_length));
  capacity = staging.history_length > 0 ? staging.history_length : 1;
  free(result->history_main);
  free(result->history_reg);
  result->history_main = NULL;
  result->history_reg = NULL;
  rc = tcx_calloc(ctx, capacity, sizeof(double), "T-CorEx history",
                  &result->history_main);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, capacity, sizeof(double), "T-CorEx history",
                    &result->history_reg);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  tcorex_describe(plan, snapshot, result, &staging, &state);
  TCX_TRY(tcx_checkpoint_restore(ctx, options->checkpoint, &state));
  TCX_CHECK(staging.counters[COUNTER_RECENT] >= 0 &&
                staging.counters[COUNTER_RECENT] <= snapshot->recent_capacity,
            ctx, TCX_ERR_INPUT,
            "the checkpoint's stopping window holds %lld values, more than "
            "its capacity %lld; the file is not a valid checkpoint of this "
            "fit",
            (long long)staging.counters[COUNTER_RECENT],
            (long long)snapshot->recent_capacity);
  snapshot->stage = state.stage;
  snapshot->steps = staging.counters[COUNTER_STEPS];
  *snapshot->recent_count = staging.counters[COUNTER_RECENT];
  result->iterations = staging.counters[COUNTER_ITERATIONS];
  result->converged = (int)staging.counters[COUNTER_CONVERGED];
  result->n_history = staging.history_length;

cleanup:
  return rc;
}

int tcx_tcorex_checkpoint_boundary(tcx_ctx *ctx,
                                   const tcx_tcorex_options *options,
                                   const tcx_tcorex_plan *plan,
                                   const tcx_tcorex_snapshot *snapshot,
                                   tcx_tcorex_result *result)
{
  tcorex_counters staging;
  tcx_checkpoint_state state;

  staging.counters[COUNTER_STEPS] = snapshot->steps;
  staging.counters[COUNTER_ITERATIONS] = result->iterations;
  staging.counters[COUNTER_CONVERGED] = result->converged;
  staging.counters[COUNTER_RECENT] = *snapshot->recent_count;
  staging.history_length = result->n_history;
  tcorex_describe(plan, snapshot, result, &staging, &state);
  return tcx_checkpoint_boundary(ctx, options->checkpoint, &state);
}
