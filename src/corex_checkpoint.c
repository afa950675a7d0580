/* Checkpoints of a linear CorEx fit. The state at the boundary before an
 * iteration is the weights U, the moments that the line search carries from
 * step to step, the refresh counters and the history. The moments are
 * updated incrementally, so recomputing them from U would change the
 * rounding of the continued fit. Restoring all of it makes a resumed fit
 * repeat the uninterrupted one bit for bit on the same ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"
#include "corex_impl.h"

/* Indices into the "scalars" and "counters" fields. */
enum { SCALAR_TC, SCALAR_CARRIED_GROWTH, SCALAR_EPS, N_SCALARS };
enum {
  COUNTER_STEPS_SINCE_FRESH,
  COUNTER_TRIALS,
  COUNTER_CONVERGED,
  N_COUNTERS
};

/* Staging copies of the scalar parts of the state. */
typedef struct corex_scalars {
  double scalars[N_SCALARS];
  int64_t counters[N_COUNTERS];
  int64_t history_length;
} corex_scalars;

/* Describes the state of the fit. staging receives the scalars on a write
 * and delivers them on a restore. */
static void corex_describe(tcx_corex_work *work, tcx_corex_run *run,
                           tcx_corex_result *result, corex_scalars *staging,
                           tcx_checkpoint_state *state)
{
  const int64_t n = work->n, m = work->m;
  tcx_corex_moments *now = &work->now;

  memset(state, 0, sizeof(*state));
  state->phase = "linear";
  state->stage = run->stage;
  state->n_stages = run->n_stages;
  state->iteration = run->iteration;
  state->objective = now->tc;
  state->last_objective =
      result->n_history > 0 ? result->history[result->n_history - 1] : NAN;
  state->objective_name = "TC";
  state->col_begin = run->col_begin;
  state->n_local = work->n_local;
  state->n_vars = run->n_vars;
  tcx_checkpoint_add(state, "weights", TCX_CHECKPOINT_COLUMNS, work->weights,
                     m);
  tcx_checkpoint_add(state, "rho", TCX_CHECKPOINT_COLUMNS, now->rho, m);
  tcx_checkpoint_add(state, "rho_tilde", TCX_CHECKPOINT_COLUMNS,
                     now->rho_tilde, m);
  tcx_checkpoint_add(state, "q", TCX_CHECKPOINT_COLUMNS, now->q, m);
  tcx_checkpoint_add(state, "s", TCX_CHECKPOINT_COLUMNS, now->s, 1);
  tcx_checkpoint_add(state, "delta", TCX_CHECKPOINT_COLUMNS, now->delta, 1);
  tcx_checkpoint_add(state, "projections", TCX_CHECKPOINT_DOUBLES, now->y,
                     n * m);
  tcx_checkpoint_add(state, "gram", TCX_CHECKPOINT_DOUBLES, now->gram, m * m);
  tcx_checkpoint_add(state, "u", TCX_CHECKPOINT_DOUBLES, now->u, m);
  tcx_checkpoint_add(state, "ry", TCX_CHECKPOINT_DOUBLES, now->ry, m * m);
  tcx_checkpoint_add(state, "h", TCX_CHECKPOINT_DOUBLES, now->h, m * m);
  tcx_checkpoint_add(state, "scalars", TCX_CHECKPOINT_DOUBLES,
                     staging->scalars, N_SCALARS);
  tcx_checkpoint_add(state, "counters", TCX_CHECKPOINT_INTEGERS,
                     staging->counters, N_COUNTERS);
  tcx_checkpoint_add(state, "history_length", TCX_CHECKPOINT_INTEGERS,
                     &staging->history_length, 1);
  tcx_checkpoint_add(state, "history", TCX_CHECKPOINT_DOUBLES,
                     result->history, staging->history_length);
}

int tcx_corex_checkpoint_begin(tcx_corex_work *work, tcx_corex_run *run,
                               tcx_corex_result *result)
{
  const tcx_corex_options *options = run->options;
  tcx_checkpoint *checkpoint = options->checkpoint;
  const char *pending = tcx_checkpoint_pending_phase(checkpoint);
  char signature[512], tol[32];
  corex_scalars staging = {{0}, {0}, 0};
  tcx_checkpoint_state state;
  int rc = TCX_OK;

  tcx_checkpoint_format_double(options->tol, tol, sizeof(tol));
  snprintf(signature, sizeof(signature),
           "method=linear-corex\nsamples=%lld\nvariables=%lld\nfactors=%lld\n"
           "seed=%llu\nmax_iter=%lld\ntol=%s\nanneal=%d\n",
           (long long)work->n, (long long)run->n_vars,
           (long long)options->n_factors, (unsigned long long)options->seed,
           (long long)options->max_iter, tol, options->anneal);
  TCX_TRY(tcx_checkpoint_begin_fit(work->ctx, checkpoint, signature));
  if (!pending || strcmp(pending, "linear") != 0)
    goto cleanup;

  TCX_TRY(tcx_checkpoint_read_integer(work->ctx, checkpoint, "history_length",
                                      &staging.history_length));
  rc = tcx_calloc(work->ctx, staging.history_length + 64, sizeof(double),
                  "CorEx history", &result->history);
  TCX_TRY(tcx_ctx_agree(work->ctx, rc));
  run->history_capacity = staging.history_length + 64;
  corex_describe(work, run, result, &staging, &state);
  TCX_TRY(tcx_checkpoint_restore(work->ctx, checkpoint, &state));

  work->now.tc = staging.scalars[SCALAR_TC];
  work->carried_growth = staging.scalars[SCALAR_CARRIED_GROWTH];
  work->eps = staging.scalars[SCALAR_EPS];
  work->steps_since_fresh = staging.counters[COUNTER_STEPS_SINCE_FRESH];
  result->trials = staging.counters[COUNTER_TRIALS];
  result->converged = (int)staging.counters[COUNTER_CONVERGED];
  result->n_history = staging.history_length;
  run->stage = state.stage;
  run->iteration = state.iteration;
  run->resumed = 1;

cleanup:
  return rc;
}

int tcx_corex_checkpoint_boundary(tcx_corex_work *work, tcx_corex_run *run,
                                  tcx_corex_result *result)
{
  corex_scalars staging;
  tcx_checkpoint_state state;

  staging.scalars[SCALAR_TC] = work->now.tc;
  staging.scalars[SCALAR_CARRIED_GROWTH] = work->carried_growth;
  staging.scalars[SCALAR_EPS] = work->eps;
  staging.counters[COUNTER_STEPS_SINCE_FRESH] = work->steps_since_fresh;
  staging.counters[COUNTER_TRIALS] = result->trials;
  staging.counters[COUNTER_CONVERGED] = result->converged;
  staging.history_length = result->n_history;
  corex_describe(work, run, result, &staging, &state);
  return tcx_checkpoint_boundary(work->ctx, work->checkpoint, &state);
}
