/* Benchmark of T-CorEx on simulated data with a sudden change: whole-fit
 * seconds, seconds per optimiser step, achieved GFLOP/s and the held-out
 * NLL next to the true covariance's. Prints a table; asserts nothing.
 *
 * Usage: mpirun -n N tcorex_bench_tcorex [--iterations 100]
 *          [--init-iterations K] [--tol E] [--window L]
 *          [--validation V | --holdout H] [--every K] [--patience P]
 *          [--no-anneal] [--no-reanneal] [--single] [--fista] [--verbose]
 *          P [P ...]
 *        mpirun -n N tcorex_bench_tcorex [--single] [--repeats R]
 *          --evaluations P
 * The second form times R (10) evaluations with gradient: double and single
 * precision (only single with --single), batched GEMMs and one GEMM per
 * window.
 * Settings: nt = 10 periods of 16 samples, m = min(p / 16, 64), l1 = 0.1,
 * gamma = 0.8, annealing on, initialised from linear CorEx, 500 test rows
 * per period. The flags change the fit options of the P that follow them.
 * --validation V adds V held-out rows per period, the simulator's
 * validation part, for early stopping every K (--every) steps with
 * patience P.
 * --holdout H takes the last H of the 16 training rows per period as those
 * rows instead, so the fit trains on 16 - H rows per period. "kept" is the step
 * whose weights the fit keeps (-1 without validation rows).
 * "CPU s" is the largest CPU time of a rank during the fit: on a shared
 * machine it varies less than the wall time, but it also counts MPI's busy
 * waiting.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tcorex/block.h"
#include "tcorex/lowrank.h"
#include "tcorex/simulate.h"
#include "tcorex/tcorex.h"

/* The evaluation timings switch the batching of a plan. */
#include "../src/tcorex_internal.h"

/* Mean over periods of the test NLL under covariances given per period as
 * factors F_t [m, n_local] and standard deviations. */
static int mean_nll(tcx_ctx *ctx, const tcx_block *test, int64_t m,
                    const double *factors, const double *std,
                    const double *loading, const double *noise_var,
                    const int32_t *factor_of, int truth, double *nll)
{
  const int64_t n_local = test->n_local;
  double *l = NULL, *d = NULL;
  int rc = TCX_OK;

  *nll = 0.0;
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "factor", &l));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "diagonal", &d));
  for (int t = 0; t < test->n_periods; t++) {
    const int64_t first = test->period_begin[t];
    const int64_t rows = test->period_begin[t + 1] - first;
    double value = 0.0;

    if (truth) {
      memset(l, 0, (size_t)(m * n_local) * sizeof(double));
      for (int64_t j = 0; j < n_local; j++) {
        l[factor_of[t * n_local + j] * n_local + j] = loading[t * n_local + j];
        d[j] = noise_var[t * n_local + j];
      }
    } else {
      TCX_TRY(tcx_lowrank_from_factors(ctx, m, n_local,
                                       factors + t * m * n_local,
                                       std + t * n_local, l, d));
    }
    TCX_TRY(tcx_lowrank_nll(ctx, m, n_local, l, d, rows,
                            test->data + first * n_local, &value));
    *nll += value / test->n_periods;
  }

cleanup:
  free(l);
  free(d);
  return rc;
}

/* Fit settings that the command line can change. */
typedef struct bench_settings {
  int64_t iterations; /* max_iter, optimiser steps per annealing stage */
  double tol;         /* plateau tolerance of the stopping rule */
  int64_t window;     /* steps per window of the stopping rule */
  int anneal;
  int reanneal;
  int64_t init_iterations; /* init_max_iter, 0: iterations */
  tcx_tcorex_optimizer optimizer;
  tcx_tcorex_precision precision;
  int64_t eval_repeats; /* evaluations timed per variant */
  int64_t validation_rows; /* held-out rows per period for early stopping,
                              0: none */
  int64_t holdout_rows;    /* training rows per period held out for early
                              stopping instead, 0: none */
  int64_t validation_every;
  int64_t patience;
} bench_settings;

/* Returns the CPU seconds (user and system) of this process so far. */
static double cpu_seconds(void)
{
  struct rusage usage;

  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + 1e-6 * (double)usage.ru_utime.tv_usec +
         (double)usage.ru_stime.tv_sec + 1e-6 * (double)usage.ru_stime.tv_usec;
}

static int bench_one(tcx_ctx *ctx, int64_t p, const bench_settings *settings)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  int64_t m = p / 16;
  tcx_simulate_options sim;
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_block *train = NULL, *test = NULL, *validation = NULL;
  double *loading = NULL, *noise_var = NULL;
  int32_t *factor_of = NULL;
  int64_t col_begin = 0, n_local = 0;
  double start, seconds, flops, nll = 0.0, truth_nll = 0.0;
  double memory, memory_max = 0.0, cpu, cpu_max = 0.0;
  struct rusage usage;
  int rc = TCX_OK;

  if (m < 1)
    m = 1;
  if (m > 64)
    m = 64;
  tcx_simulate_options_default(&sim);
  sim.n_vars = p;
  sim.n_factors = m;
  sim.n_periods = 10;
  sim.train_rows = 16;
  sim.test_rows = 500;
  /* The validation part has its own random streams, so the training and
   * test rows are the same with and without it. */
  sim.validation_rows = settings->validation_rows;
  TCX_TRY(tcx_partition(ctx, p, size, rank, &col_begin, &n_local));
  TCX_TRY(tcx_simulate_block(ctx, &sim, TCX_SIMULATE_TRAIN, col_begin,
                             n_local, &train));
  TCX_TRY(tcx_simulate_block(ctx, &sim, TCX_SIMULATE_TEST, col_begin,
                             n_local, &test));
  if (settings->validation_rows > 0)
    TCX_TRY(tcx_simulate_block(ctx, &sim, TCX_SIMULATE_VALIDATION, col_begin,
                               n_local, &validation));
  if (settings->holdout_rows > 0) {
    TCX_CHECK(settings->validation_rows == 0 &&
                  settings->holdout_rows < sim.train_rows,
              ctx, TCX_ERR_USAGE,
              "--holdout K needs K < %lld and no --validation",
              (long long)sim.train_rows);
    TCX_TRY(tcx_block_hold_out(ctx, train, settings->holdout_rows,
                               &validation));
  }
  TCX_TRY(tcx_calloc(ctx, 10 * n_local, sizeof(double), "loadings",
                     &loading));
  TCX_TRY(tcx_calloc(ctx, 10 * n_local, sizeof(double), "noise", &noise_var));
  TCX_TRY(tcx_calloc(ctx, 10 * n_local, sizeof(int32_t), "factors",
                     &factor_of));
  for (int t = 0; t < 10; t++)
    TCX_TRY(tcx_simulate_truth(ctx, &sim, t, col_begin, n_local,
                               loading + t * n_local, noise_var + t * n_local,
                               factor_of + t * n_local));

  tcx_tcorex_options_default(&options);
  options.n_factors = m;
  options.l1 = 0.1;
  options.gamma = 0.8;
  options.max_iter = settings->iterations;
  options.tol = settings->tol;
  options.stopping_window = settings->window;
  options.anneal = settings->anneal;
  options.optimizer = settings->optimizer;
  options.reanneal = settings->reanneal;
  options.init_max_iter = settings->init_iterations;
  options.precision = settings->precision;
  options.validation = validation;
  options.validation_every = settings->validation_every;
  options.patience = settings->patience;
  MPI_Barrier(tcx_ctx_comm(ctx));
  start = MPI_Wtime();
  cpu = cpu_seconds();
  TCX_TRY(tcx_tcorex_fit(ctx, &options, train, NULL, &result));
  seconds = MPI_Wtime() - start;
  cpu = cpu_seconds() - cpu;
  TCX_TRY_MPI(ctx, MPI_Reduce(&cpu, &cpu_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                              tcx_ctx_comm(ctx)));

  TCX_TRY(mean_nll(ctx, test, m, result.factors, result.std, NULL, NULL,
                   NULL, 0, &nll));
  TCX_TRY(mean_nll(ctx, test, m, NULL, NULL, loading, noise_var, factor_of, 1,
                   &truth_nll));
  /* Flop model of one step with whole-series windows: 8 T N p m for the
   * four large products and 6 T p m^2 for the m x m ones. */
  flops = (8.0 * 10 * (double)train->n_rows * (double)p * (double)m +
           6.0 * 10 * (double)p * (double)m * (double)m) *
          (double)result.iterations;
  getrusage(RUSAGE_SELF, &usage);
  memory = (double)usage.ru_maxrss / 1024.0;
  TCX_TRY_MPI(ctx, MPI_Reduce(&memory, &memory_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                              tcx_ctx_comm(ctx)));
  if (rank == 0)
    printf("%7lld %5d %4lld %6lld %6lld %9.2f %9.2f %9.2f %9.4f %9.2f "
           "%9.3f %9.3f %9.1f\n",
           (long long)p, size, (long long)m, (long long)result.iterations,
           (long long)result.validation_iteration, seconds, cpu_max,
           result.init_seconds,
           result.optimize_seconds / (double)result.iterations,
           flops / result.optimize_seconds / 1e9, nll, truth_nll,
           memory_max);

cleanup:
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&train);
  tcx_block_destroy(&test);
  tcx_block_destroy(&validation);
  free(loading);
  free(noise_var);
  free(factor_of);
  return rc;
}

/* Times evaluations of the objective with gradient at eps = 0 on the
 * benchmark's training data, for double (unless only_single) and single
 * precision, batched and per window. Weights are small deterministic values, the same for every
 * rank count. */
static int bench_evaluations(tcx_ctx *ctx, int64_t p, int64_t repeats,
                             int only_single)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  const int64_t m = p / 16 < 1 ? 1 : (p / 16 > 64 ? 64 : p / 16);
  tcx_simulate_options sim;
  tcx_tcorex_options options;
  tcx_block *train = NULL, *x = NULL;
  tcx_tcorex_plan *plan = NULL;
  double *weights = NULL, *gradient = NULL, *mean = NULL, *std = NULL;
  int64_t col_begin = 0, n_local = 0;
  tcx_tcorex_value value;
  int rc = TCX_OK;

  tcx_simulate_options_default(&sim);
  sim.n_vars = p;
  sim.n_factors = m;
  sim.n_periods = 10;
  sim.train_rows = 16;
  TCX_TRY(tcx_partition(ctx, p, size, rank, &col_begin, &n_local));
  TCX_TRY(tcx_simulate_block(ctx, &sim, TCX_SIMULATE_TRAIN, col_begin,
                             n_local, &train));
  tcx_tcorex_options_default(&options);
  options.n_factors = m;
  options.l1 = 0.1;
  options.gamma = 0.8;
  TCX_TRY(tcx_calloc(ctx, 10 * m * n_local, sizeof(double), "weights",
                     &weights));
  TCX_TRY(tcx_calloc(ctx, 10 * m * n_local, sizeof(double), "gradient",
                     &gradient));
  TCX_TRY(tcx_calloc(ctx, 10 * n_local, sizeof(double), "priors", &mean));
  TCX_TRY(tcx_calloc(ctx, 10 * n_local, sizeof(double), "priors", &std));
  for (int t = 0; t < 10; t++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t i = 0; i < n_local; i++)
        weights[(t * m + j) * n_local + i] =
            sin(0.37 * (double)(col_begin + i) + 1.3 * (double)j + 0.1 * t) /
            sqrt((double)p);
  TCX_TRY(tcx_tcorex_standardize(ctx, &options, train, mean, std, &x));

  for (int single = only_single; single <= 1; single++)
    for (int batched = 1; batched >= 0; batched--) {
      double start, seconds, cpu, cpu_max = 0.0, flops;

      options.precision = single ? TCX_TCOREX_SINGLE : TCX_TCOREX_DOUBLE;
      TCX_TRY(tcx_tcorex_plan_create(ctx, &options, x, &plan));
      TCX_TRY(tcx_tcorex_plan_set_batched(ctx, plan, batched));
      TCX_TRY(tcx_tcorex_evaluate(ctx, plan, 0.0, weights,
                                  TCX_TCOREX_EVAL_GRADIENT, NULL, 0, NULL,
                                  &value, gradient));
      MPI_Barrier(tcx_ctx_comm(ctx));
      start = MPI_Wtime();
      cpu = cpu_seconds();
      for (int64_t k = 0; k < repeats; k++)
        TCX_TRY(tcx_tcorex_evaluate(ctx, plan, 0.0, weights,
                                    TCX_TCOREX_EVAL_GRADIENT, NULL, 0, NULL,
                                    &value, gradient));
      seconds = (MPI_Wtime() - start) / (double)repeats;
      cpu = (cpu_seconds() - cpu) / (double)repeats;
      TCX_TRY_MPI(ctx, MPI_Reduce(&cpu, &cpu_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                                  tcx_ctx_comm(ctx)));
      flops = 8.0 * 10 * 160 * (double)p * (double)m +
              6.0 * 10 * (double)p * (double)m * (double)m;
      if (rank == 0)
        printf("%7lld %5d %4lld %9s %8s %10.5f %10.5f %9.2f %14.10f\n",
               (long long)p, size, (long long)m, single ? "single" : "double",
               batched ? "yes" : "no", seconds, cpu_max, flops / seconds / 1e9,
               value.main + value.reg_l1 + value.reg_l2);
      tcx_tcorex_plan_destroy(&plan);
    }

cleanup:
  tcx_tcorex_plan_destroy(&plan);
  tcx_block_destroy(&train);
  tcx_block_destroy(&x);
  free(weights);
  free(gradient);
  free(mean);
  free(std);
  return rc;
}

int main(int argc, char **argv)
{
  tcx_ctx *ctx = NULL;
  bench_settings settings = {100, 1e-5, 50, 1, 1, 0, TCX_TCOREX_ADAM,
                             TCX_TCOREX_DOUBLE, 10, 0, 0, 10, 3};
  int fit_header = 0, rc = TCX_OK;

  MPI_Init(&argc, &argv);
  if (tcx_ctx_create(MPI_COMM_WORLD, &ctx) != TCX_OK)
    MPI_Abort(MPI_COMM_WORLD, 1);
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  for (int k = 1; k < argc && rc == TCX_OK; k++) {
    if (strcmp(argv[k], "--iterations") == 0 && k + 1 < argc)
      settings.iterations = atoll(argv[++k]);
    else if (strcmp(argv[k], "--init-iterations") == 0 && k + 1 < argc)
      settings.init_iterations = atoll(argv[++k]);
    else if (strcmp(argv[k], "--repeats") == 0 && k + 1 < argc)
      settings.eval_repeats = atoll(argv[++k]);
    else if (strcmp(argv[k], "--window") == 0 && k + 1 < argc)
      settings.window = atoll(argv[++k]);
    else if (strcmp(argv[k], "--tol") == 0 && k + 1 < argc)
      settings.tol = atof(argv[++k]);
    else if (strcmp(argv[k], "--validation") == 0 && k + 1 < argc)
      settings.validation_rows = atoll(argv[++k]);
    else if (strcmp(argv[k], "--holdout") == 0 && k + 1 < argc)
      settings.holdout_rows = atoll(argv[++k]);
    else if (strcmp(argv[k], "--every") == 0 && k + 1 < argc)
      settings.validation_every = atoll(argv[++k]);
    else if (strcmp(argv[k], "--patience") == 0 && k + 1 < argc)
      settings.patience = atoll(argv[++k]);
    else if (strcmp(argv[k], "--no-anneal") == 0)
      settings.anneal = 0;
    else if (strcmp(argv[k], "--no-reanneal") == 0)
      settings.reanneal = 0;
    else if (strcmp(argv[k], "--single") == 0)
      settings.precision = TCX_TCOREX_SINGLE;
    else if (strcmp(argv[k], "--fista") == 0)
      settings.optimizer = TCX_TCOREX_FISTA;
    else if (strcmp(argv[k], "--evaluations") == 0 && k + 1 < argc) {
      if (tcx_ctx_rank(ctx) == 0)
        printf("%7s %5s %4s %9s %8s %10s %10s %9s %14s\n", "p", "ranks", "m",
               "precision", "batched", "s/eval", "CPU s/eval", "GFLOP/s",
               "objective");
      rc = bench_evaluations(
          ctx, atoll(argv[++k]), settings.eval_repeats,
          settings.precision == TCX_TCOREX_SINGLE);
    } else if (strcmp(argv[k], "--verbose") == 0)
      tcx_ctx_set_log_level(ctx, TCX_LOG_PROGRESS);
    else {
      if (!fit_header && tcx_ctx_rank(ctx) == 0)
        printf("%7s %5s %4s %6s %6s %9s %9s %9s %9s %9s %9s %9s %9s\n",
               "p", "ranks", "m", "steps", "kept", "fit s", "CPU s",
               "init s", "s/step", "GFLOP/s", "test NLL", "truth",
               "peak MiB");
      fit_header = 1;
      rc = bench_one(ctx, atoll(argv[k]), &settings);
    }
  }
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0)
    fprintf(stderr, "tcorex_bench_tcorex: error: %s\n", tcx_ctx_message(ctx));
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return rc == TCX_OK ? 0 : 1;
}
