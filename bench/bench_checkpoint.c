/* Benchmark of checkpoints in T-CorEx: seconds per Adam step with and
 * without a checkpoint object (which writes nothing), three runs each, and
 * the time of one checkpoint write. Prints a table; asserts nothing.
 *
 * Usage: mpirun -n N tcorex_bench_checkpoint P CHECKPOINT_FILE
 * Settings: 5 periods of 30 samples from 7 shared factors plus noise,
 * m = 16, random initialisation, no annealing, 200 Adam steps.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tcorex/block.h"
#include "tcorex/checkpoint.h"
#include "tcorex/rng.h"
#include "tcorex/tcorex.h"

enum { N_PERIODS = 5, PERIOD_ROWS = 30, FACTORS = 16, STEPS = 200 };

static void bench_options(tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = FACTORS;
  options->init = TCX_TCOREX_INIT_RANDOM;
  options->anneal = 0;
  options->max_iter = STEPS;
  options->tol = 1e-12;
}

/* Fills this rank's columns: standard normal noise plus half of one of 7
 * shared signals per variable. */
static void fill_block(tcx_block *block)
{
  const int64_t p = block->n_vars, n_local = block->n_local;

  for (int64_t row = 0; row < block->n_rows; row++)
    for (int64_t i = 0; i < n_local; i++) {
      const int64_t column = block->col_begin + i;

      block->data[row * n_local + i] =
          tcx_rng_normal(1, 0, (uint64_t)(row * p + column)) +
          0.5 * tcx_rng_normal(2, 0, (uint64_t)(row * 7 + column % 7));
    }
}

/* Runs one fit and prints its time per step. with_object attaches a
 * checkpoint object that writes nothing. */
static int time_fit(tcx_ctx *ctx, const tcx_block *block, int with_object)
{
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_checkpoint *checkpoint = NULL;
  volatile sig_atomic_t flag = 0;
  double start, seconds;
  int rc = TCX_OK;

  bench_options(&options);
  if (with_object) {
    TCX_TRY(tcx_checkpoint_create(ctx, &checkpoint));
    tcx_checkpoint_set_stop_flag(checkpoint, &flag);
    options.checkpoint = checkpoint;
  }
  TCX_TRY_MPI(ctx, MPI_Barrier(tcx_ctx_comm(ctx)));
  start = tcx_time();
  TCX_TRY(tcx_tcorex_fit(ctx, &options, block, NULL, &result));
  seconds = tcx_time() - start;
  if (tcx_ctx_rank(ctx) == 0)
    printf("%-24s %8.3f s %10.3f ms/step\n",
           with_object ? "with checkpoint object" : "without", seconds,
           1e3 * seconds / (double)result.iterations);

cleanup:
  tcx_tcorex_result_free(&result);
  tcx_checkpoint_destroy(&checkpoint);
  return rc;
}

/* Stops a fit at its first boundary with a checkpoint, which logs the
 * write time. */
static int time_write(tcx_ctx *ctx, const tcx_block *block, const char *path)
{
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_checkpoint *checkpoint = NULL;
  int rc = TCX_OK;

  bench_options(&options);
  TCX_TRY(tcx_checkpoint_create(ctx, &checkpoint));
  TCX_TRY(tcx_checkpoint_set_output(ctx, checkpoint, path, 0.0));
  tcx_checkpoint_set_stop_at(checkpoint, 1);
  options.checkpoint = checkpoint;
  tcx_ctx_set_log_level(ctx, TCX_LOG_PROGRESS);
  rc = tcx_tcorex_fit(ctx, &options, block, NULL, &result);
  if (rc == TCX_ERR_INTERRUPTED)
    rc = TCX_OK;

cleanup:
  tcx_tcorex_result_free(&result);
  tcx_checkpoint_destroy(&checkpoint);
  return rc;
}

int main(int argc, char **argv)
{
  const int64_t rows[N_PERIODS] = {PERIOD_ROWS, PERIOD_ROWS, PERIOD_ROWS,
                                   PERIOD_ROWS, PERIOD_ROWS};
  tcx_ctx *ctx = NULL;
  tcx_block *block = NULL;
  int64_t p, begin, count;
  int rc = TCX_OK;

  MPI_Init(&argc, &argv);
  if (tcx_ctx_create(MPI_COMM_WORLD, &ctx) != TCX_OK)
    MPI_Abort(MPI_COMM_WORLD, 1);
  if (argc != 3) {
    rc = tcx_error(ctx, TCX_ERR_USAGE,
                   "usage: tcorex_bench_checkpoint P CHECKPOINT_FILE");
    goto cleanup;
  }
  p = atoll(argv[1]);
  TCX_TRY(tcx_partition(ctx, p, tcx_ctx_size(ctx), tcx_ctx_rank(ctx), &begin,
                        &count));
  TCX_TRY(tcx_block_create(ctx, N_PERIODS, rows, p, begin, count, &block));
  fill_block(block);
  for (int run = 0; run < 6; run++)
    TCX_TRY(time_fit(ctx, block, run % 2));
  TCX_TRY(time_write(ctx, block, argv[2]));

cleanup:
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0)
    fprintf(stderr, "tcorex_bench_checkpoint: %s\n", tcx_ctx_message(ctx));
  tcx_block_destroy(&block);
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return rc == TCX_OK ? 0 : 1;
}
