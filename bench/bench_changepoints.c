/* Benchmark of change-point scoring on synthetic factors (no fit). It prints
 * wall and CPU seconds for all nt - 1 pairs and the CPU time of all ranks
 * divided by nt p m^2, which is constant when the cost scales as nt p m^2.
 * It also prints the flop rate per CPU second. CPU time is reported next to wall time because
 * it does not count the time a loaded machine gives to other processes.
 * Prints a table; asserts nothing.
 *
 * Usage: mpirun -n N tcorex_bench_changepoints [--periods 20] [--factors 50]
 *            [--norm frobenius|spectral] [--spectral-tol 1e-8] P [P ...]
 *        tcorex_bench_changepoints --false-alarms
 *
 * Factors: F_t[j, i] = sqrt(0.32 / m) z, z standard normal from tcorex's
 * counter-based generator keyed by (t, j, i), so every rank count gets the
 * same matrices. The squared column norms are then 0.32 on average for any
 * m, far from 1. The default partial-correlation matrices are compared.
 *
 * --false-alarms estimates, by Monte Carlo, the probability that the
 * detection rule flags at least one pair of a series without any change,
 * for series of 9, 19 and 99 scores and K = 3 to 6, with scores drawn
 * i.i.d. from a normal law and from a chi law with 8 degrees of freedom
 * (skewed, like a norm). It runs on one rank.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tcorex/block.h"
#include "tcorex/changepoints.h"
#include "tcorex/lowrank.h"
#include "tcorex/rng.h"

enum { SEED = 2026 };

/* Flop model of tcx_changepoints_compute with the Frobenius norm: per
 * period the precision (L diag(1/d) L^T and the triangular solve, 3 p m^2),
 * per pair the three Gram matrices and three products of the row norms
 * (12 p m^2). */
static double flop_model(int64_t p, int64_t m, int n_periods)
{
  return 3.0 * n_periods * p * m * m + 12.0 * (n_periods - 1) * p * m * m;
}

/* User plus system CPU seconds of the process. */
static double cpu_seconds(const struct rusage *usage)
{
  return usage->ru_utime.tv_sec + 1e-6 * usage->ru_utime.tv_usec +
         usage->ru_stime.tv_sec + 1e-6 * usage->ru_stime.tv_usec;
}

static int bench_one(tcx_ctx *ctx, int64_t p, int64_t m, int n_periods,
                     int norm, double spectral_tolerance)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  const double scale = sqrt(0.32 / (double)m);
  tcx_changepoints_options options;
  tcx_changepoints_result result = {0};
  double *factors = NULL;
  int64_t col_begin = 0, n_local = 0;
  double start, seconds, cpu, cpu_max = 0.0, memory, memory_max = 0.0;
  struct rusage usage;
  int rc = TCX_OK;

  TCX_TRY(tcx_partition(ctx, p, size, rank, &col_begin, &n_local));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_calloc(ctx, n_periods * m * n_local,
                                        sizeof(double), "factors",
                                        &factors)));
  for (int t = 0; t < n_periods; t++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t i = 0; i < n_local; i++)
        factors[(t * m + j) * n_local + i] =
            scale * tcx_rng_normal(SEED, (uint64_t)(t * m + j),
                                 (uint64_t)(col_begin + i));

  tcx_changepoints_options_default(&options);
  options.norm = norm;
  options.spectral_tolerance = spectral_tolerance;
  TCX_TRY_MPI(ctx, MPI_Barrier(tcx_ctx_comm(ctx)));
  getrusage(RUSAGE_SELF, &usage);
  cpu = -cpu_seconds(&usage);
  start = tcx_time();
  TCX_TRY(tcx_changepoints_compute(ctx, &options, n_periods, m, p, col_begin,
                                   n_local, factors, &result));
  TCX_TRY_MPI(ctx, MPI_Barrier(tcx_ctx_comm(ctx)));
  seconds = tcx_time() - start;

  getrusage(RUSAGE_SELF, &usage);
  cpu += cpu_seconds(&usage);
  memory = usage.ru_maxrss / 1024.0;
  TCX_TRY_MPI(ctx, MPI_Reduce(&cpu, &cpu_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                              tcx_ctx_comm(ctx)));
  TCX_TRY_MPI(ctx, MPI_Reduce(&memory, &memory_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                              tcx_ctx_comm(ctx)));
  if (rank == 0) {
    char rate[48];

    if (norm != TCX_CHANGEPOINTS_SPECTRAL)
      snprintf(rate, sizeof(rate), "%.1f",
               flop_model(p, m, n_periods) / size / cpu_max / 1e9);
    else
      snprintf(rate, sizeof(rate), "- (up to %lld Lanczos steps)",
               (long long)result.max_lanczos_steps);
    printf("| %lld | %d | %d | %lld | %s | %.3f | %.3f | %.2f | %s | %.0f "
           "MiB |\n",
           (long long)p, size, n_periods, (long long)m,
           norm == TCX_CHANGEPOINTS_SPECTRAL ? "spectral" : "frobenius",
           seconds, cpu_max,
           1e9 * cpu_max * size / ((double)n_periods * p * m * m), rate,
           memory_max);
    fflush(stdout);
  }

cleanup:
  tcx_changepoints_result_free(&result);
  free(factors);
  return rc;
}

/* One score drawn from the named law, keyed by (series, index). */
static double draw_score(int chi, uint64_t series, uint64_t index)
{
  double sum = 0.0;

  if (!chi)
    return tcx_rng_normal(SEED, series, index);
  for (uint64_t k = 0; k < 8; k++) {
    const double z = tcx_rng_normal(SEED, series, 8 * index + k);

    sum += z * z;
  }
  return sqrt(sum);
}

static int false_alarms(tcx_ctx *ctx)
{
  const int lengths[3] = {9, 19, 99};
  const double thresholds[4] = {3.0, 4.0, 5.0, 6.0};
  const int trials = 20000;
  double scores[99];
  int32_t changes[99];
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) != 0)
    return TCX_OK;
  printf("| scores | law | K = 3 | K = 4 | K = 5 | K = 6 |\n"
         "|---|---|---|---|---|---|\n");
  for (int l = 0; l < 3; l++)
    for (int chi = 0; chi < 2; chi++) {
      int alarms[4] = {0, 0, 0, 0};

      for (int trial = 0; trial < trials; trial++) {
        const uint64_t series = (uint64_t)(((l * 2 + chi) * trials) + trial);

        for (int k = 0; k < lengths[l]; k++)
          scores[k] = draw_score(chi, series, (uint64_t)k);
        for (int h = 0; h < 4; h++) {
          int any = 0;

          TCX_TRY(tcx_changepoints_detect(ctx, lengths[l], scores,
                                          thresholds[h], changes, NULL, NULL,
                                          NULL));
          for (int k = 0; k < lengths[l]; k++)
            any |= changes[k];
          alarms[h] += any;
        }
      }
      printf("| %d | %s | %.3f | %.3f | %.3f | %.3f |\n", lengths[l],
             chi ? "chi, 8 d.o.f." : "normal", (double)alarms[0] / trials,
             (double)alarms[1] / trials, (double)alarms[2] / trials,
             (double)alarms[3] / trials);
    }

cleanup:
  return rc;
}

int main(int argc, char **argv)
{
  tcx_ctx *ctx = NULL;
  int64_t m = 50;
  int n_periods = 20, norm = TCX_CHANGEPOINTS_FROBENIUS, first = 1;
  double spectral_tolerance = TCX_LOWRANK_SPECTRAL_TOLERANCE;
  int rc = TCX_OK;

  MPI_Init(&argc, &argv);
  if (tcx_ctx_create(MPI_COMM_WORLD, &ctx) != TCX_OK) {
    fprintf(stderr, "cannot create a tcorex context\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  while (first + 1 < argc && strncmp(argv[first], "--", 2) == 0) {
    if (strcmp(argv[first], "--periods") == 0)
      n_periods = atoi(argv[first + 1]);
    else if (strcmp(argv[first], "--factors") == 0)
      m = atoll(argv[first + 1]);
    else if (strcmp(argv[first], "--spectral-tol") == 0)
      spectral_tolerance = atof(argv[first + 1]);
    else if (strcmp(argv[first], "--norm") == 0)
      norm = strcmp(argv[first + 1], "spectral") == 0
                 ? TCX_CHANGEPOINTS_SPECTRAL
                 : TCX_CHANGEPOINTS_FROBENIUS;
    else
      break;
    first += 2;
  }
  if (first < argc && strcmp(argv[first], "--false-alarms") == 0) {
    rc = false_alarms(ctx);
  } else {
    if (tcx_ctx_rank(ctx) == 0)
      printf("| p | ranks | nt | m | norm | wall s | CPU s per rank | "
             "CPU ns / (nt p m^2) | GFLOP/s per CPU s | peak memory per "
             "rank |\n"
             "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int k = first; k < argc && rc == TCX_OK; k++)
      rc = bench_one(ctx, atoll(argv[k]), m, n_periods, norm,
                     spectral_tolerance);
  }
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0)
    fprintf(stderr, "benchmark failed: %s\n", tcx_ctx_message(ctx));
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return rc == TCX_OK ? 0 : 1;
}
