/* Linear CorEx fit: initialisation, annealing stages, stopping rule and the
 * final outputs. The moments and the iteration are in corex_moments.c and
 * corex_step.c, and docs/METHOD.md writes out the method. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint_internal.h"
#include "corex_impl.h"
#include "tcorex/corex.h"
#include "tcorex/rng.h"

/* Published LinearCorex defaults. */
#define TCX_COREX_DEFAULT_FACTORS 10
#define TCX_COREX_DEFAULT_MAX_ITER 10000
#define TCX_COREX_DEFAULT_TOL 1e-5

/* Annealing: eps_k = 0.6^k for k = 1..6, then a final stage at eps = 0. */
#define TCX_COREX_ANNEAL_BASE 0.6
#define TCX_COREX_ANNEAL_STEPS 6

/* The initial weights give every factor u_j = 0.01 at eps = 0, that is a
 * projection of standard deviation 1/10. */
#define TCX_COREX_INITIAL_SCALE 10.0

/* The line search gives up below min(tol, this step length). */
#define TCX_COREX_MIN_STEP 1e-10

/* A standardised variable has second moment 1 up to rounding. The
 * breakdown message calls the input unstandardised above 1 + this. */
#define TCX_COREX_SECOND_MOMENT_SLACK 1e-6

/* Seconds between two progress lines. */
#define TCX_COREX_PROGRESS_INTERVAL 1.0

void tcx_corex_options_default(tcx_corex_options *options)
{
  memset(options, 0, sizeof(*options));
  options->n_factors = TCX_COREX_DEFAULT_FACTORS;
  options->seed = 0;
  options->max_iter = TCX_COREX_DEFAULT_MAX_ITER;
  options->tol = TCX_COREX_DEFAULT_TOL;
  options->anneal = 1;
}

void tcx_corex_result_free(tcx_corex_result *result)
{
  if (!result)
    return;
  free(result->u);
  free(result->weights);
  free(result->factors);
  free(result->mi);
  free(result->clusters);
  free(result->tcs);
  free(result->history);
  memset(result, 0, sizeof(*result));
}

static int tcx_corex_check_arguments(tcx_ctx *ctx,
                                     const tcx_corex_options *options,
                                     const double *x, int64_t n_rows,
                                     int64_t n_local, int64_t col_begin,
                                     int64_t n_vars)
{
  int rc = TCX_OK;

  TCX_CHECK(options->n_factors >= 1, ctx, TCX_ERR_USAGE,
            "invalid number of factors %lld; linear CorEx needs at least 1",
            (long long)options->n_factors);
  TCX_CHECK(options->max_iter >= 1, ctx, TCX_ERR_USAGE,
            "invalid max_iter %lld; use at least 1 iteration per stage",
            (long long)options->max_iter);
  TCX_CHECK(isfinite(options->tol) && options->tol >= 0.0, ctx,
            TCX_ERR_USAGE,
            "invalid tolerance %g; use a finite value >= 0 (default 1e-5)",
            options->tol);
  TCX_CHECK(n_rows >= 1 && n_local >= 1 && col_begin >= 0 &&
                col_begin + n_local <= n_vars,
            ctx, TCX_ERR_INTERNAL,
            "invalid CorEx block: %lld rows, columns %lld..%lld of %lld",
            (long long)n_rows, (long long)col_begin,
            (long long)(col_begin + n_local - 1), (long long)n_vars);
  for (int64_t k = 0; k < n_rows * n_local; k++)
    TCX_CHECK(isfinite(x[k]), ctx, TCX_ERR_INPUT,
              "variable %lld, row %lld is %g after preprocessing; linear "
              "CorEx needs finite values (missing values must be imputed)",
              (long long)(col_begin + k % n_local), (long long)(k / n_local),
              x[k]);

cleanup:
  return rc;
}

/* Checks that the column blocks of all ranks tile 0..n_vars-1 and that the
 * ranks agree on the number of rows. Collective. */
static int tcx_corex_check_layout(tcx_ctx *ctx, int64_t n_rows,
                                  int64_t n_local, int64_t n_vars)
{
  int64_t total = n_local;
  int64_t rows[2] = {n_rows, -n_rows};
  int rc = TCX_OK;

  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T,
                                 MPI_SUM, tcx_ctx_comm(ctx)));
  TCX_TRY_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, rows, 2, MPI_INT64_T, MPI_MAX,
                                 tcx_ctx_comm(ctx)));
  TCX_CHECK(total == n_vars, ctx, TCX_ERR_INTERNAL,
            "the ranks hold %lld columns in total but n_vars is %lld; every "
            "rank must pass its block from tcx_partition()",
            (long long)total, (long long)n_vars);
  TCX_CHECK(rows[0] == -rows[1], ctx, TCX_ERR_INTERNAL,
            "the ranks disagree on the number of rows (%lld to %lld)",
            (long long)-rows[1], (long long)rows[0]);

cleanup:
  return rc;
}

/* Draws U_ji ~ N(0, 1) keyed by (seed, factor j, global column) and scales
 * each row so that u_j = 0.01 at eps = 0. One reduction of n m doubles.
 * Collective. */
static int tcx_corex_initialize(tcx_corex_work *work, uint64_t seed,
                                int64_t col_begin)
{
  const int64_t n = work->n, n_local = work->n_local, m = work->m;
  double *y = work->reduce;
  int rc = TCX_OK;

  for (int64_t j = 0; j < m; j++)
    for (int64_t i = 0; i < n_local; i++)
      work->weights[j * n_local + i] =
          tcx_rng_normal(seed, (uint64_t)j, (uint64_t)(col_begin + i));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m,
              (int)n_local, 1.0, work->x, (int)n_local, work->weights,
              (int)n_local, 0.0, y, (int)m);
  TCX_TRY(tcx_corex_allreduce(work->ctx, y, n * m));
  for (int64_t j = 0; j < m; j++) {
    double norm = 0.0;

    for (int64_t row = 0; row < n; row++)
      norm += y[row * m + j] * y[row * m + j];
    norm = sqrt(norm / (double)n);
    TCX_CHECK(norm > 0.0 && isfinite(norm), work->ctx, TCX_ERR_NUMERIC,
              "linear CorEx cannot start: the projection of the data on "
              "random weights has standard deviation %g; the standardised "
              "data are all zero (every variable constant?)",
              norm);
    cblas_dscal((int)n_local, 1.0 / (TCX_COREX_INITIAL_SCALE * norm),
                work->weights + j * n_local, 1);
  }

cleanup:
  return rc;
}

/* Rescales U on entering a stage at level eps from level previous_eps, using
 * u and U U^T freshly evaluated at the end of the previous stage, so that u_j
 * keeps its value. The factor is truncated to 3 decimals, which keeps u_j < 1
 * under rounding. Local. */
static void tcx_corex_rescale(tcx_corex_work *work, double previous_eps,
                              double eps)
{
  const int64_t n_local = work->n_local, m = work->m;
  const double e2 = eps * eps, previous_e2 = previous_eps * previous_eps;

  for (int64_t j = 0; j < m; j++) {
    const double u = work->now.u[j];
    const double norm2 = work->now.gram[j * m + j];
    const double delta = (e2 - previous_e2) / (1.0 - e2) * norm2 / u;
    const double a = sqrt((1.0 - previous_e2) / ((1.0 - e2) * (1.0 + delta)));

    cblas_dscal((int)n_local, 0.001 * floor(1000.0 * a),
                work->weights + j * n_local, 1);
  }
}

static double tcx_corex_stage_eps(const tcx_corex_run *run, int stage)
{
  if (stage + 1 == run->n_stages)
    return 0.0;
  return pow(TCX_COREX_ANNEAL_BASE, stage + 1);
}

/* Appends tc to the history. Growth happens at the same iteration on every
 * rank, so the ranks agree on an allocation failure there. Collective. */
static int tcx_corex_record(tcx_ctx *ctx, tcx_corex_run *run, double tc,
                            tcx_corex_result *result)
{
  int rc = TCX_OK;

  if (result->n_history == run->history_capacity) {
    const int64_t capacity = 2 * run->history_capacity + 64;
    double *grown = NULL;

    if ((uint64_t)capacity <= SIZE_MAX / sizeof(double))
      grown = realloc(result->history, (size_t)capacity * sizeof(double));
    if (!grown)
      rc = tcx_error(ctx, TCX_ERR_MEMORY,
                     "out of memory growing the CorEx history to %lld "
                     "entries; lower max_iter",
                     (long long)capacity);
    TCX_TRY(tcx_ctx_agree(ctx, rc));
    result->history = grown;
    run->history_capacity = capacity;
  }
  result->history[result->n_history++] = tc;

cleanup:
  return rc;
}

/* Logs the state at most once per TCX_COREX_PROGRESS_INTERVAL. The time
 * left is an estimate of the maximum, which assumes that every remaining
 * stage runs max_iter iterations at the mean speed so far. */
static void tcx_corex_log_progress(tcx_ctx *ctx, tcx_corex_run *run,
                                   double eps, double tc,
                                   const tcx_corex_result *result)
{
  const double now = tcx_time();
  const double elapsed = now - run->start_time;
  double per_iteration, iterations_left, bound;

  if (now - run->last_log_time < TCX_COREX_PROGRESS_INTERVAL)
    return;
  run->last_log_time = now;
  per_iteration = elapsed / (double)(result->n_history > 0
                                         ? result->n_history
                                         : 1);
  iterations_left =
      (double)(run->options->max_iter - run->iteration) +
      (double)(run->n_stages - run->stage - 1) * (double)run->options->max_iter;
  bound = per_iteration * iterations_left;
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "corex: stage %d/%d eps %.6g iteration %lld TC %.8g elapsed %.1f s, "
          "at most %.0f s left",
          run->stage + 1, run->n_stages, eps, (long long)run->iteration, tc,
          elapsed, bound);
}

static const char *tcx_corex_outcome_text(tcx_corex_step_outcome outcome)
{
  switch (outcome) {
  case TCX_COREX_STEP_MOVED: return "moved";
  case TCX_COREX_STEP_NO_DESCENT: return "no descent direction";
  case TCX_COREX_STEP_TOO_SMALL: return "step too small";
  default: return "breakdown";
  }
}

/* Stores the error for a fit that broke down. The text what names the place
 * and the offending value, and the message adds the iterations so far, the
 * last objective and what to try. The advice depends on whether the input
 * is standardised, so the largest second moment of a variable is reduced
 * over the ranks (one reduction of 1 double). Collective. */
static int tcx_corex_breakdown(tcx_corex_work *work, const char *what,
                               const tcx_corex_result *result)
{
  const int64_t n = work->n, n_local = work->n_local;
  char progress[96] = "before the first iteration";
  double largest = 0.0;
  int rc = TCX_OK;

  for (int64_t i = 0; i < n_local; i++) {
    double second_moment = 0.0;

    for (int64_t row = 0; row < n; row++)
      second_moment += work->x[row * n_local + i] * work->x[row * n_local + i];
    largest = fmax(largest, second_moment / (double)n);
  }
  TCX_TRY_MPI(work->ctx,
              MPI_Allreduce(MPI_IN_PLACE, &largest, 1, MPI_DOUBLE, MPI_MAX,
                            tcx_ctx_comm(work->ctx)));
  if (result->n_history > 0)
    snprintf(progress, sizeof(progress),
             "after %lld iterations (last objective TC = %.10g)",
             (long long)result->n_history,
             result->history[result->n_history - 1]);
  if (largest > 1.0 + TCX_COREX_SECOND_MOMENT_SLACK)
    rc = tcx_error(work->ctx, TCX_ERR_NUMERIC,
                   "linear CorEx broke down %s, %s. The input is not "
                   "standardised: a variable has second moment %g, above 1. "
                   "Standardise every variable (the standard preprocessing "
                   "does)",
                   what, progress, largest);
  else
    rc = tcx_error(work->ctx, TCX_ERR_NUMERIC,
                   "linear CorEx broke down %s, %s. The input is "
                   "standardised, so this is a numerical failure of the fit "
                   "(near-duplicate variables can cause it): try fewer "
                   "factors or no annealing (--no-anneal), and if it "
                   "persists, report it as a bug with the data dimensions "
                   "and options",
                   what, progress);

cleanup:
  return rc;
}

/* Runs one annealing stage at level eps from the current moments, from
 * iteration first_iteration on (1 unless resumed from a checkpoint). Sets
 * *converged when the stage stopped before max_iter. Collective. */
static int tcx_corex_run_stage(tcx_corex_work *work, tcx_corex_run *run,
                               double eps, int64_t first_iteration,
                               tcx_corex_result *result, int *converged)
{
  tcx_ctx *ctx = work->ctx;
  const tcx_corex_options *options = run->options;
  const double min_step = options->tol > 0.0
                              ? fmin(options->tol, TCX_COREX_MIN_STEP)
                              : TCX_COREX_MIN_STEP;
  int rc = TCX_OK;

  *converged = 0;
  for (run->iteration = first_iteration; run->iteration <= options->max_iter;
       run->iteration++) {
    const double last_tc = work->now.tc;
    tcx_corex_step_info info;
    double change;

    TCX_TRY(tcx_corex_checkpoint_boundary(work, run, result));
    TCX_TRY(tcx_corex_step(work, min_step, &info));
    if (info.outcome == TCX_COREX_STEP_BREAKDOWN) {
      char what[160];

      snprintf(what, sizeof(what),
               "in annealing stage %d of %d (eps %g) at iteration %lld: the "
               "gradient slope is %g",
               run->stage + 1, run->n_stages, eps, (long long)run->iteration,
               info.slope);
      rc = tcx_corex_breakdown(work, what, result);
      goto cleanup;
    }
    TCX_TRY(tcx_corex_record(ctx, run, work->now.tc, result));
    result->trials += info.n_trials;
    change = fabs(work->now.tc - last_tc);
    tcx_log(ctx, TCX_LOG_DEBUG,
            "corex: stage %d iteration %lld TC %.12g change %.3g slope %.3g "
            "step %.3g trials %d, fresh %d (u drift %.3g) (%s)",
            run->stage + 1, (long long)run->iteration, work->now.tc, change,
            info.slope, info.step_length, info.n_trials, info.n_fresh_trials,
            info.u_drift, tcx_corex_outcome_text(info.outcome));
    if (info.outcome == TCX_COREX_STEP_NO_DESCENT)
      tcx_log(ctx, TCX_LOG_WARNING,
              "corex: stage %d iteration %lld: no ascent direction (slope "
              "%g); the weights stay where they are. Near-duplicate "
              "variables make the problem nearly singular",
              run->stage + 1, (long long)run->iteration, info.slope);
    else if (info.outcome == TCX_COREX_STEP_TOO_SMALL)
      tcx_log(ctx, TCX_LOG_WARNING,
              "corex: stage %d iteration %lld: the line search found no "
              "step above %g; the weights stay where they are",
              run->stage + 1, (long long)run->iteration, min_step);
    tcx_corex_log_progress(ctx, run, eps, work->now.tc, result);

    /* A step that did not move ends the stage even with tol = 0, because
     * every further iteration would repeat it. */
    if (change < options->tol || info.outcome != TCX_COREX_STEP_MOVED) {
      *converged = 1;
      break;
    }
  }
  tcx_log(ctx, TCX_LOG_DEBUG,
          "corex: stage %d (eps %g) ended after %lld iterations, TC %.10g%s",
          run->stage + 1, eps,
          (long long)(*converged ? run->iteration : options->max_iter),
          work->now.tc, *converged ? "" : " (max_iter reached)");

cleanup:
  return rc;
}

/* Stores the outputs of the final (sorted, eps = 0) moments in result. */
static void tcx_corex_store_outputs(const tcx_corex_work *work,
                                    tcx_corex_result *result)
{
  const int64_t n_local = work->n_local, m = work->m;
  const tcx_corex_moments *moments = &work->now;

  memcpy(result->u, work->weights, (size_t)(m * n_local) * sizeof(double));
  for (int64_t j = 0; j < m; j++) {
    const double weight_scale = 1.0 / sqrt(1.0 - moments->u[j]);

    for (int64_t i = 0; i < n_local; i++) {
      const int64_t k = j * n_local + i;
      const double rho = moments->rho[k];

      result->weights[k] = work->weights[k] * weight_scale;
      result->factors[k] = moments->rho_tilde[k] / (1.0 + moments->s[i]);
      result->mi[k] = -0.5 * log1p(-rho * rho);
    }
  }
  for (int64_t i = 0; i < n_local; i++) {
    int32_t best = 0;

    for (int64_t j = 1; j < m; j++)
      if (fabs(work->weights[j * n_local + i]) >
          fabs(work->weights[best * n_local + i]))
        best = (int32_t)j;
    result->clusters[i] = best;
  }
  result->tc = moments->tc;
}

/* Recomputes the moments at eps = 0, orders the factors by decreasing
 * TCs_j = sum_i MI_ji + 1/2 log(1 - u_j), recomputes and stores the
 * outputs. Collective. */
static int tcx_corex_finalize(tcx_corex_work *work, tcx_corex_result *result)
{
  const int64_t n_local = work->n_local, m = work->m;
  double *tcs = work->reduce;
  int64_t *order = NULL;
  double *sorted = NULL;
  int rc = TCX_OK, status;

  status = tcx_calloc(work->ctx, m, sizeof(*order), "factor order", &order);
  if (status == TCX_OK)
    status = tcx_calloc(work->ctx, m * n_local, sizeof(*sorted),
                        "sorted weights", &sorted);
  TCX_TRY(tcx_ctx_agree(work->ctx, status));

  TCX_TRY(tcx_corex_evaluate(work, 0.0));
  if (!isfinite(work->now.tc)) {
    char what[96];

    snprintf(what, sizeof(what),
             "in the final evaluation (eps 0): the objective is %g",
             work->now.tc);
    rc = tcx_corex_breakdown(work, what, result);
    goto cleanup;
  }
  for (int64_t j = 0; j < m; j++) {
    const double *rho = work->now.rho + j * n_local;

    tcs[j] = 0.0;
    for (int64_t i = 0; i < n_local; i++)
      tcs[j] -= 0.5 * log1p(-rho[i] * rho[i]);
  }
  TCX_TRY(tcx_corex_allreduce(work->ctx, tcs, m));
  for (int64_t j = 0; j < m; j++)
    tcs[j] += 0.5 * log1p(-work->now.u[j]);

  /* Insertion sort by decreasing TCs, so ties keep their order. */
  for (int64_t j = 0; j < m; j++) {
    int64_t k = j;

    while (k > 0 && tcs[order[k - 1]] < tcs[j]) {
      order[k] = order[k - 1];
      k--;
    }
    order[k] = j;
  }
  for (int64_t j = 0; j < m; j++) {
    memcpy(sorted + j * n_local, work->weights + order[j] * n_local,
           (size_t)n_local * sizeof(double));
    result->tcs[j] = tcs[order[j]];
  }
  memcpy(work->weights, sorted, (size_t)(m * n_local) * sizeof(double));
  TCX_TRY(tcx_corex_evaluate(work, 0.0));
  tcx_corex_store_outputs(work, result);

cleanup:
  free(sorted);
  free(order);
  return rc;
}

static int tcx_corex_result_alloc(tcx_ctx *ctx, int64_t m, int64_t n_local,
                                  tcx_corex_result *result)
{
  int rc = TCX_OK;

  result->n_factors = m;
  result->n_local = n_local;
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "CorEx result U",
                     &result->u));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "CorEx result W",
                     &result->weights));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "CorEx result F",
                     &result->factors));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "CorEx result MI",
                     &result->mi));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(int32_t), "CorEx clusters",
                     &result->clusters));
  TCX_TRY(tcx_calloc(ctx, m, sizeof(double), "CorEx result TCs",
                     &result->tcs));

cleanup:
  return rc;
}

/* Moves the weights from level previous_eps to the stage at level eps and
 * evaluates them there. Collective. */
static int tcx_corex_enter_stage(tcx_corex_work *work, tcx_corex_run *run,
                                 double previous_eps, double eps,
                                 tcx_corex_result *result)
{
  int rc = TCX_OK;

  /* The rescale needs the fresh u and U U^T of the previous stage's last
   * point, which the stage may have reached incrementally. */
  if (run->stage > 0) {
    if (work->steps_since_fresh > 0)
      TCX_TRY(tcx_corex_evaluate(work, previous_eps));
    tcx_corex_rescale(work, previous_eps, eps);
  }
  TCX_TRY(tcx_corex_evaluate(work, eps));
  if (!isfinite(work->now.tc)) {
    char what[160];

    snprintf(what, sizeof(what),
             "entering annealing stage %d of %d (eps %g): the objective of "
             "the %s weights is %g",
             run->stage + 1, run->n_stages, eps,
             run->stage > 0 ? "rescaled" : "initial", work->now.tc);
    rc = tcx_corex_breakdown(work, what, result);
  }

cleanup:
  return rc;
}

/* Runs every annealing stage from the initialised weights, or from the
 * stage and iteration restored from a checkpoint. Collective. */
static int tcx_corex_anneal(tcx_corex_work *work, tcx_corex_run *run,
                            tcx_corex_result *result)
{
  const int first_stage = run->resumed ? run->stage : 0;
  double previous_eps = first_stage > 0
                            ? tcx_corex_stage_eps(run, first_stage - 1)
                            : 0.0;
  int rc = TCX_OK;

  if (!run->resumed)
    result->converged = 1;
  for (run->stage = first_stage; run->stage < run->n_stages; run->stage++) {
    const double eps = tcx_corex_stage_eps(run, run->stage);
    int64_t first_iteration = 1;
    int converged = 0;

    /* A resumed stage continues from the restored weights and moments. */
    if (run->resumed && run->stage == first_stage)
      first_iteration = run->iteration;
    else
      TCX_TRY(tcx_corex_enter_stage(work, run, previous_eps, eps, result));
    TCX_TRY(tcx_corex_run_stage(work, run, eps, first_iteration, result,
                                &converged));
    if (!converged) {
      result->converged = 0;
      tcx_log(work->ctx,
              run->options->quiet_max_iter ? TCX_LOG_DEBUG
                                           : TCX_LOG_WARNING,
              "corex: annealing stage %d (eps %g) reached max_iter = %lld "
              "before the TC change fell below tol = %g",
              run->stage + 1, eps, (long long)run->options->max_iter,
              run->options->tol);
    }
    previous_eps = eps;
  }
  result->iterations = result->n_history;

cleanup:
  return rc;
}

int tcx_corex_fit(tcx_ctx *ctx, const tcx_corex_options *options,
                  const double *x, int64_t n_rows, int64_t n_local,
                  int64_t col_begin, int64_t n_vars, tcx_corex_result *result)
{
  tcx_corex_work *work = NULL;
  tcx_corex_run run;
  int began = 0, rc = TCX_OK, status;

  memset(result, 0, sizeof(*result));
  memset(&run, 0, sizeof(run));
  run.options = options;
  run.col_begin = col_begin;
  run.n_vars = n_vars;
  run.n_stages = options->anneal ? TCX_COREX_ANNEAL_STEPS + 1 : 1;
  run.start_time = tcx_time();
  run.last_log_time = run.start_time;

  status = tcx_corex_check_arguments(ctx, options, x, n_rows, n_local,
                                     col_begin, n_vars);
  TCX_TRY(tcx_ctx_agree(ctx, status));
  TCX_TRY(tcx_corex_check_layout(ctx, n_rows, n_local, n_vars));
  status = tcx_corex_work_create(ctx, x, n_rows, n_local,
                                 options->n_factors, &work);
  if (status == TCX_OK)
    status = tcx_corex_result_alloc(ctx, options->n_factors, n_local, result);
  TCX_TRY(tcx_ctx_agree(ctx, status));

  tcx_log(ctx, TCX_LOG_PROGRESS,
          "corex: %lld samples, %lld variables on %d rank(s), %lld factors, "
          "%d annealing stages, max_iter %lld, tol %g",
          (long long)n_rows, (long long)n_vars, tcx_ctx_size(ctx),
          (long long)options->n_factors, run.n_stages,
          (long long)options->max_iter, options->tol);
  work->checkpoint = options->checkpoint;
  began = 1;
  TCX_TRY(tcx_corex_checkpoint_begin(work, &run, result));
  if (!run.resumed)
    TCX_TRY(tcx_corex_initialize(work, options->seed, col_begin));
  TCX_TRY(tcx_corex_anneal(work, &run, result));
  TCX_TRY(tcx_corex_finalize(work, result));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "corex: done in %.2f s after %lld iterations, TC %.10g%s",
          tcx_time() - run.start_time, (long long)result->iterations,
          result->tc, result->converged ? "" : " (some stages hit max_iter)");

cleanup:
  if (began)
    tcx_checkpoint_end_fit(options->checkpoint);
  tcx_corex_work_destroy(&work);
  if (rc != TCX_OK)
    tcx_corex_result_free(result);
  return rc;
}
