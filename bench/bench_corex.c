/* Benchmark of distributed linear CorEx: seconds per iteration, achieved
 * GFLOP/s of the fit next to the DGEMM rate of this machine, and peak memory
 * per rank. Prints a table; it asserts nothing and is not a ctest test.
 *
 * Usage: mpirun -n N tcorex_bench [--samples 160] [--factors 64]
 *            [--iterations 50] P [P ...]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tcorex/block.h"
#include "tcorex/corex.h"
#include "tcorex/prep.h"
#include "tcorex/rng.h"

/* Fills this rank's columns with data from a modular latent factor model, so
 * that the fit has structure to find: column i loads on factor i % m. */
static void fill_data(int64_t n, int64_t m, int64_t col_begin,
                      int64_t n_local, double *x)
{
  for (int64_t r = 0; r < n; r++)
    for (int64_t j = 0; j < n_local; j++) {
      const int64_t i = col_begin + j;
      const double z = tcx_rng_normal(7, (uint64_t)(i % m), (uint64_t)r);
      const double noise = tcx_rng_normal(8, (uint64_t)i, (uint64_t)r);

      x[r * n_local + j] = 0.8 * z + 0.6 * noise;
    }
}

/* Single-core DGEMM rate in GFLOP/s for the fit's typical product shape:
 * [m x n] times [n x p_local]. */
static double measure_dgemm_rate(int64_t n, int64_t m, int64_t n_local)
{
  double *a = calloc((size_t)(m * n), sizeof(double));
  double *b = calloc((size_t)(n * n_local), sizeof(double));
  double *c = calloc((size_t)(m * n_local), sizeof(double));
  double seconds = 0.0, rate = 0.0;
  int repeats = 0;

  if (!a || !b || !c)
    goto cleanup;
  for (int64_t k = 0; k < m * n; k++)
    a[k] = 1.0 / (double)(k + 1);
  for (int64_t k = 0; k < n * n_local; k++)
    b[k] = 1.0 / (double)(k + 2);
  while (seconds < 0.5) {
    const double start = MPI_Wtime();

    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                (int)n_local, (int)n, 1.0, a, (int)n, b, (int)n_local, 0.0, c,
                (int)n_local);
    seconds += MPI_Wtime() - start;
    repeats++;
  }
  rate = 2.0 * (double)m * (double)n * (double)n_local * repeats / seconds /
         1e9;

cleanup:
  free(a);
  free(b);
  free(c);
  return rate;
}

static double peak_memory_mib(void)
{
  struct rusage usage;

  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static int bench_one(tcx_ctx *ctx, int64_t p, int64_t n, int64_t m,
                     int64_t iterations)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  tcx_corex_options options;
  tcx_corex_result result = {0};
  int64_t col_begin = 0, n_local = 0, n_constant = 0;
  double *x = NULL, *mean = NULL, *std = NULL;
  double seconds, flops, dgemm_rate, memory, memory_max = 0.0;
  double start;
  int rc = TCX_OK;

  TCX_TRY(tcx_partition(ctx, p, size, rank, &col_begin, &n_local));
  TCX_TRY(tcx_calloc(ctx, n * n_local, sizeof(double), "data", &x));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "means", &mean));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "std", &std));
  fill_data(n, m, col_begin, n_local, x);
  TCX_TRY(tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD, n, n_local,
                               col_begin, x, mean, std, &n_constant));

  tcx_corex_options_default(&options);
  options.n_factors = m;
  options.max_iter = iterations;
  options.tol = 0.0; /* run exactly max_iter iterations */
  options.anneal = 0;
  MPI_Barrier(tcx_ctx_comm(ctx));
  start = MPI_Wtime();
  TCX_TRY(tcx_corex_fit(ctx, &options, x, n, n_local, col_begin, p, &result));
  seconds = MPI_Wtime() - start;

  /* Flop model of the incremental line search: 4 n p m + 8 p m^2 per
   * iteration plus 4 p m^2 + 2 n m^2 per trial, with trials counted by the
   * fit. */
  flops = (4.0 * n * p * m + 8.0 * p * m * m) * (double)result.iterations +
          (4.0 * p * m * m + 2.0 * n * m * m) * (double)result.trials;
  dgemm_rate = measure_dgemm_rate(n, m, n_local);
  memory = peak_memory_mib();
  TCX_TRY_MPI(ctx, MPI_Reduce(&memory, &memory_max, 1, MPI_DOUBLE, MPI_MAX, 0,
                              tcx_ctx_comm(ctx)));
  if (rank == 0)
    printf("%8lld %5d %6lld %4lld %6lld %10.4f %9.2f %9.2f %7.1f%% %10.1f\n",
           (long long)p, size, (long long)n, (long long)m,
           (long long)result.iterations,
           seconds / (double)result.iterations, flops / seconds / 1e9 / size,
           dgemm_rate, 100.0 * flops / seconds / 1e9 / size / dgemm_rate,
           memory_max);

cleanup:
  tcx_corex_result_free(&result);
  free(x);
  free(mean);
  free(std);
  return rc;
}

int main(int argc, char **argv)
{
  tcx_ctx *ctx = NULL;
  int64_t n = 160, m = 64, iterations = 50;
  int rc = TCX_OK;

  MPI_Init(&argc, &argv);
  if (tcx_ctx_create(MPI_COMM_WORLD, &ctx) != TCX_OK)
    MPI_Abort(MPI_COMM_WORLD, 1);
  tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  if (tcx_ctx_rank(ctx) == 0)
    printf("%8s %5s %6s %4s %6s %10s %9s %9s %8s %10s\n", "p", "ranks", "n",
           "m", "iters", "s/iter", "GFLOP/s", "DGEMM", "of DGEMM",
           "peak MiB");
  for (int k = 1; k < argc && rc == TCX_OK; k++) {
    if (strcmp(argv[k], "--samples") == 0 && k + 1 < argc)
      n = atoll(argv[++k]);
    else if (strcmp(argv[k], "--factors") == 0 && k + 1 < argc)
      m = atoll(argv[++k]);
    else if (strcmp(argv[k], "--iterations") == 0 && k + 1 < argc)
      iterations = atoll(argv[++k]);
    else
      rc = bench_one(ctx, atoll(argv[k]), n, m, iterations);
  }
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0)
    fprintf(stderr, "tcorex_bench: error: %s\n", tcx_ctx_message(ctx));
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return rc == TCX_OK ? 0 : 1;
}
