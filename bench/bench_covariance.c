/* Benchmark of the dense covariance export: diag(d) + L^T L for random
 * low-rank factors, built with PDGEMM on the BLACS grid of all ranks, and
 * optionally written to HDF5 with collective hyperslab writes. Prints the
 * seconds and GFLOP/s of a first and a repeated export, next to the
 * single-core DGEMM rate of a product of the same inner dimension. The
 * GFLOP/s count 2 p^2 m flops over the whole export, which includes the
 * move of L into the block-cyclic layout and the diagonal. Asserts
 * nothing.
 *
 * Usage: mpirun -n N tcorex_bench_covariance [--factors M] [--block-size NB]
 *                                            [--output FILE] P
 * Defaults: m = 64, NB = 64. Run with OPENBLAS_NUM_THREADS=1 so that each
 * rank uses one core.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/dense.h"
#include "tcorex/h5io.h"
#include "tcorex/rng.h"

typedef struct bench_options {
  int64_t p, m, block_size;
  const char *output;
} bench_options;

static int parse(int argc, char **argv, bench_options *options)
{
  options->p = 0;
  options->m = 64;
  options->block_size = TCX_DENSE_BLOCK_SIZE;
  options->output = NULL;
  for (int k = 1; k < argc; k++) {
    if (strcmp(argv[k], "--factors") == 0 && k + 1 < argc)
      options->m = atoll(argv[++k]);
    else if (strcmp(argv[k], "--block-size") == 0 && k + 1 < argc)
      options->block_size = atoll(argv[++k]);
    else if (strcmp(argv[k], "--output") == 0 && k + 1 < argc)
      options->output = argv[++k];
    else
      options->p = atoll(argv[k]);
  }
  return options->p > 0 && options->m > 0 && options->block_size > 0;
}

/* GFLOP/s of DGEMM C = A^T A with A of size m x n, the shape of the local
 * products inside PDGEMM, on the OpenBLAS threads of rank 0 (one with
 * OPENBLAS_NUM_THREADS=1). Rank 0 only. */
static double dgemm_rate(int64_t n, int64_t m)
{
  double *a = calloc((size_t)(m * n), sizeof(double));
  double *c = calloc((size_t)(n * n), sizeof(double));
  double seconds, rate = 0.0;

  if (!a || !c)
    goto cleanup;
  for (int64_t k = 0; k < m * n; k++)
    a[k] = tcx_rng_normal(7, 0, (uint64_t)k);
  /* The first call touches c's pages and starts OpenBLAS; time the second. */
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n,
              (int)m, 1.0, a, (int)n, a, (int)n, 0.0, c, (int)n);
  seconds = tcx_time();
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)n,
              (int)m, 1.0, a, (int)n, a, (int)n, 0.0, c, (int)n);
  seconds = tcx_time() - seconds;
  rate = 2.0 * (double)n * (double)n * (double)m / seconds / 1e9;

cleanup:
  free(a);
  free(c);
  return rate;
}

/* Writes the matrix to options->output and returns the seconds taken. */
static int write_output(tcx_ctx *ctx, const bench_options *options,
                        tcx_dense *a, double *seconds)
{
  tcx_h5_output *out = NULL;
  int rc = TCX_OK;

  *seconds = tcx_time();
  TCX_TRY(tcx_h5_create(ctx, options->output, &out));
  TCX_TRY(tcx_h5_write_dense(ctx, out, "/covariance", 0, 0, a));
  TCX_TRY(tcx_h5_commit(ctx, &out));
  *seconds = tcx_time() - *seconds;

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

static int run(tcx_ctx *ctx, const bench_options *options)
{
  const int64_t p = options->p, m = options->m;
  int64_t col_begin = 0, n_local = 0;
  double *l = NULL, *d = NULL;
  double seconds[2], write_seconds = 0.0;
  tcx_grid *grid = NULL;
  tcx_dense *a = NULL;
  int n_prow, n_pcol, my_row, my_col;
  int rc = TCX_OK;

  TCX_TRY(tcx_partition(ctx, p, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                        &col_begin, &n_local));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "factors", &l));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "diagonal", &d));
  for (int64_t j = 0; j < m; j++)
    for (int64_t i = 0; i < n_local; i++)
      l[j * n_local + i] =
          0.1 * tcx_rng_normal(1, (uint64_t)j, (uint64_t)(col_begin + i));
  for (int64_t i = 0; i < n_local; i++)
    d[i] = 1.0 + tcx_rng_uniform(2, 0, (uint64_t)(col_begin + i));
  TCX_TRY(tcx_grid_create(ctx, options->block_size, &grid));
  TCX_TRY(tcx_dense_create(ctx, grid, p, p, &a));
  tcx_grid_shape(grid, &n_prow, &n_pcol, &my_row, &my_col);

  /* The first export also faults in the pages of the p x p array; the
   * second runs on memory that is already mapped. */
  for (int k = 0; k < 2; k++) {
    TCX_TRY_MPI(ctx, MPI_Barrier(tcx_ctx_comm(ctx)));
    seconds[k] = tcx_time();
    TCX_TRY(tcx_dense_from_lowrank(ctx, m, n_local, l, d, 1.0, a));
    TCX_TRY_MPI(ctx, MPI_Barrier(tcx_ctx_comm(ctx)));
    seconds[k] = tcx_time() - seconds[k];
  }
  if (options->output)
    TCX_TRY(write_output(ctx, options, a, &write_seconds));

  if (tcx_ctx_rank(ctx) == 0) {
    const double flops = 2.0 * (double)p * (double)p * (double)m;
    const double bytes = 8.0 * (double)p * (double)p;

    printf("ranks\tgrid\tp\tm\tnb\tfirst_s\tfirst_gflops\trepeat_s"
           "\trepeat_gflops\tdgemm_1core_gflops\twrite_s\twrite_MBps\n");
    printf("%d\t%dx%d\t%lld\t%lld\t%lld\t%.3f\t%.2f\t%.3f\t%.2f\t%.2f\t%.3f"
           "\t%.0f\n",
           tcx_ctx_size(ctx), n_prow, n_pcol, (long long)p, (long long)m,
           (long long)options->block_size, seconds[0],
           flops / seconds[0] / 1e9, seconds[1], flops / seconds[1] / 1e9,
           dgemm_rate(p < 4096 ? p : 4096, m), write_seconds,
           write_seconds > 0 ? bytes / write_seconds / 1e6 : 0.0);
    fflush(stdout);
  }

cleanup:
  tcx_dense_destroy(&a);
  tcx_grid_destroy(&grid);
  free(l);
  free(d);
  return rc;
}

int main(int argc, char **argv)
{
  bench_options options;
  tcx_ctx *ctx = NULL;
  int rc;

  if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
    return 1;
  if (!parse(argc, argv, &options)) {
    fprintf(stderr, "usage: tcorex_bench_covariance [--factors M] "
                    "[--block-size NB] [--output FILE] P\n");
    MPI_Finalize();
    return 2;
  }
  rc = tcx_ctx_create(MPI_COMM_WORLD, &ctx);
  if (rc == TCX_OK)
    rc = run(ctx, &options);
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0)
    fprintf(stderr, "bench_covariance: %s\n", tcx_ctx_message(ctx));
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return rc == TCX_OK ? 0 : 1;
}
