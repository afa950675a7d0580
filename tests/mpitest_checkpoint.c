/* Checkpoint and restart. A fit stopped at iteration boundary k (through
 * tcx_checkpoint_set_stop_at, not a timer) and resumed from its checkpoint
 * must equal the uninterrupted fit bit for bit on the same ranks. It must
 * equal it to rounding when the checkpoint was written on another number of
 * ranks.
 * Also: mismatching resumes are rejected, a breakdown keeps the last good
 * checkpoint, a stop flag on one rank stops every rank, and checkpoints add
 * no reduction per iteration. Data: 4 periods of 12 rows, p = 37, m = 3. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/block.h"
#include "tcorex/checkpoint.h"
#include "tcorex/corex.h"
#include "tcorex/h5io.h"
#include "tcorex/prep.h"
#include "tcorex/tcorex.h"

#include "tcx_test.h"

enum { NT = 4, ROWS_PER_PERIOD = 12, N_ROWS = NT * ROWS_PER_PERIOD, P = 37,
       M = 3 };

/* Relative tolerance between a fit resumed on another number of ranks and
 * the uninterrupted one, whose reductions sum in another order. Measured
 * differences were at most 4e-15 at 2 to 4 ranks. Adam steps can amplify
 * rounding, so the bound leaves a factor of 250. */
#define RANK_CHANGE_TOLERANCE 1e-12

/* Every MPI_Allreduce of this process, counted through the MPI profiling
 * interface. The call itself goes to PMPI_Allreduce. */
static long allreduce_calls;

int MPI_Allreduce(const void *send, void *receive, int count,
                  MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
  allreduce_calls++;
  return PMPI_Allreduce(send, receive, count, type, op, comm);
}

/* Returns the test context with warnings off: the short fits below stop
 * at max_iter on purpose. */
static tcx_ctx *quiet_ctx(void)
{
  tcx_ctx_set_log_level(tcx_test_ctx(), TCX_LOG_ERROR);
  return tcx_test_ctx();
}

/* Fills x [N_ROWS, P] from 3 factors whose loadings change after period 1. */
static void make_data(double *x)
{
  double z[N_ROWS * M], noise[N_ROWS * P];

  tcx_test_randn(21, z, N_ROWS * M);
  tcx_test_randn(22, noise, N_ROWS * P);
  for (int64_t row = 0; row < N_ROWS; row++)
    for (int i = 0; i < P; i++) {
      const int factor = (i + (row >= 2 * ROWS_PER_PERIOD ? 1 : 0)) % M;

      x[row * P + i] = (0.5 + 0.02 * i) * z[row * M + factor] +
                       0.8 * noise[row * P + i] + 0.1 * i;
    }
}

/* Creates the block of the calling rank of ctx from x [N_ROWS, P]. */
static tcx_block *make_block(tcx_ctx *ctx, const double *x)
{
  const int64_t period_rows[NT] = {ROWS_PER_PERIOD, ROWS_PER_PERIOD,
                                   ROWS_PER_PERIOD, ROWS_PER_PERIOD};
  int64_t begin, count;
  tcx_block *block = NULL;

  assert_int_equal(tcx_partition(ctx, P, tcx_ctx_size(ctx), tcx_ctx_rank(ctx),
                                 &begin, &count),
                   TCX_OK);
  assert_int_equal(tcx_block_create(ctx, NT, period_rows, P, begin, count,
                                    &block),
                   TCX_OK);
  for (int64_t row = 0; row < N_ROWS; row++)
    for (int64_t i = 0; i < count; i++)
      block->data[row * count + i] = x[row * P + begin + i];
  return block;
}

static void tcorex_options(tcx_tcorex_options *options)
{
  tcx_tcorex_options_default(options);
  options->n_factors = M;
  options->l1 = 0.1;
  options->l2 = 0.2;
  options->max_iter = 30;
  options->learning_rate = 0.01;
}

/* Returns 1 when the two byte ranges are identical. */
static int same_bytes(const void *a, const void *b, size_t count)
{
  return (count == 0) || (a && b && memcmp(a, b, count) == 0);
}

/* Checks on every rank that two T-CorEx results are identical bit for bit
 * and agrees on the outcome. */
static void assert_tcorex_identical(const tcx_tcorex_result *a,
                                    const tcx_tcorex_result *b,
                                    const char *label)
{
  const size_t matrix = (size_t)(NT * M * a->n_local) * sizeof(double);
  int ok = a->n_history == b->n_history && a->iterations == b->iterations &&
           a->converged == b->converged && a->n_local == b->n_local;

  ok = ok && same_bytes(a->weights, b->weights, matrix);
  ok = ok && same_bytes(a->factors, b->factors, matrix);
  ok = ok && same_bytes(a->mi, b->mi, matrix);
  ok = ok && same_bytes(a->tcs, b->tcs, (size_t)(NT * M) * sizeof(double));
  ok = ok && same_bytes(&a->value, &b->value, sizeof(a->value));
  ok = ok && same_bytes(a->history_main, b->history_main,
                        (size_t)a->n_history * sizeof(double));
  ok = ok && same_bytes(a->history_reg, b->history_reg,
                        (size_t)a->n_history * sizeof(double));
  assert_true(tcx_test_all_ok(ok, label));
}

/* Reads the root attribute "phase" of a checkpoint. Collective. */
static void read_phase(const char *path, char *phase, size_t size)
{
  assert_int_equal(tcx_h5_read_attr_string(tcx_test_ctx(), path, "phase",
                                           phase, size),
                   TCX_OK);
}

static void remove_file(const char *path)
{
  MPI_Barrier(MPI_COMM_WORLD);
  if (tcx_ctx_rank(tcx_test_ctx()) == 0)
    remove(path);
  MPI_Barrier(MPI_COMM_WORLD);
}

/* Fits with a checkpoint that stops at boundary stop_at and writes path,
 * then resumes from path. Returns the resumed result in *resumed and the
 * phase of the checkpoint in phase. Collective on ctx. */
static void stop_and_resume(tcx_ctx *ctx, const tcx_tcorex_options *base,
                            const tcx_block *block, int64_t stop_at,
                            const char *path, char *phase, size_t size,
                            tcx_tcorex_result *resumed)
{
  tcx_tcorex_options options = *base;
  tcx_tcorex_result stopped = {0};
  tcx_checkpoint *checkpoint = NULL;

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 0.0),
                   TCX_OK);
  tcx_checkpoint_set_stop_at(checkpoint, stop_at);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &stopped),
                   TCX_ERR_INTERRUPTED);
  assert_non_null(strstr(tcx_ctx_message(ctx), path));
  assert_int_equal(tcx_checkpoint_boundary_count(checkpoint), stop_at);
  assert_int_equal(tcx_checkpoint_write_count(checkpoint), 1);
  tcx_tcorex_result_free(&stopped);
  tcx_checkpoint_destroy(&checkpoint);
  read_phase(path, phase, size);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_resume(ctx, checkpoint, path), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, resumed),
                   TCX_OK);
  tcx_checkpoint_destroy(&checkpoint);
}

/* Fits without stopping and returns the number of boundaries passed. */
static int64_t fit_counting(tcx_ctx *ctx, const tcx_tcorex_options *base,
                            const tcx_block *block, tcx_tcorex_result *result)
{
  tcx_tcorex_options options = *base;
  tcx_checkpoint *checkpoint = NULL;
  int64_t count;

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, result),
                   TCX_OK);
  count = tcx_checkpoint_boundary_count(checkpoint);
  tcx_checkpoint_destroy(&checkpoint);
  return count;
}

/* Adam after a linear CorEx initialisation, stopped once inside the
 * initialisation and once in the main fit. */
static void tcorex_adam_resume_bitwise(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result full = {0}, resumed = {0};
  char path[256], phase[32];
  tcx_block *block;
  int64_t total;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  tcx_test_temp_path(".h5", path, sizeof(path));
  total = fit_counting(ctx, &options, block, &full);

  stop_and_resume(ctx, &options, block, 3, path, phase, sizeof(phase),
                  &resumed);
  assert_string_equal(phase, "linear");
  assert_tcorex_identical(&full, &resumed, "adam, stopped in linear phase");
  tcx_tcorex_result_free(&resumed);

  stop_and_resume(ctx, &options, block, total - 17, path, phase,
                  sizeof(phase), &resumed);
  assert_string_equal(phase, "tcorex");
  assert_tcorex_identical(&full, &resumed, "adam, stopped in main phase");
  tcx_tcorex_result_free(&resumed);

  remove_file(path);
  tcx_tcorex_result_free(&full);
  tcx_block_destroy(&block);
}

static void tcorex_fista_resume_bitwise(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result full = {0}, resumed = {0};
  char path[256], phase[32];
  tcx_block *block;
  int64_t total;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  options.optimizer = TCX_TCOREX_FISTA;
  options.init = TCX_TCOREX_INIT_RANDOM;
  tcx_test_temp_path(".h5", path, sizeof(path));
  total = fit_counting(ctx, &options, block, &full);
  assert_true(total > 20);

  stop_and_resume(ctx, &options, block, total / 2, path, phase,
                  sizeof(phase), &resumed);
  assert_string_equal(phase, "tcorex");
  assert_tcorex_identical(&full, &resumed, "fista");

  remove_file(path);
  tcx_tcorex_result_free(&resumed);
  tcx_tcorex_result_free(&full);
  tcx_block_destroy(&block);
}

/* Linear CorEx on its own, with its incrementally carried moments. */
static void corex_resume_bitwise(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_corex_options options;
  tcx_corex_result full = {0}, stopped = {0}, resumed = {0};
  tcx_checkpoint *checkpoint = NULL;
  double *mean, *std;
  char path[256];
  tcx_block *block;
  int64_t total, n_constant = 0;
  size_t matrix;
  int ok;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  mean = calloc((size_t)block->n_local, sizeof(double));
  std = calloc((size_t)block->n_local, sizeof(double));
  assert_int_equal(tcx_prep_standardize(ctx, TCX_GAUSSIANIZE_STANDARD,
                                        block->n_rows, block->n_local,
                                        block->col_begin, block->data, mean,
                                        std, &n_constant),
                   TCX_OK);
  tcx_corex_options_default(&options);
  options.n_factors = M;
  options.max_iter = 40;
  tcx_test_temp_path(".h5", path, sizeof(path));
  matrix = (size_t)(M * block->n_local) * sizeof(double);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_corex_fit(ctx, &options, block->data, block->n_rows,
                                 block->n_local, block->col_begin, P, &full),
                   TCX_OK);
  total = tcx_checkpoint_boundary_count(checkpoint);
  assert_true(total > 10);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 0.0),
                   TCX_OK);
  tcx_checkpoint_set_stop_at(checkpoint, total + total / 2);
  assert_int_equal(tcx_corex_fit(ctx, &options, block->data, block->n_rows,
                                 block->n_local, block->col_begin, P,
                                 &stopped),
                   TCX_ERR_INTERRUPTED);
  tcx_checkpoint_destroy(&checkpoint);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_resume(ctx, checkpoint, path), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_corex_fit(ctx, &options, block->data, block->n_rows,
                                 block->n_local, block->col_begin, P,
                                 &resumed),
                   TCX_OK);
  ok = full.n_history == resumed.n_history && full.tc == resumed.tc &&
       full.trials == resumed.trials && full.converged == resumed.converged &&
       same_bytes(full.u, resumed.u, matrix) &&
       same_bytes(full.weights, resumed.weights, matrix) &&
       same_bytes(full.factors, resumed.factors, matrix) &&
       same_bytes(full.tcs, resumed.tcs, M * sizeof(double)) &&
       same_bytes(full.history, resumed.history,
                  (size_t)full.n_history * sizeof(double));
  assert_true(tcx_test_all_ok(ok, "linear CorEx resumed bit for bit"));

  remove_file(path);
  tcx_checkpoint_destroy(&checkpoint);
  tcx_corex_result_free(&full);
  tcx_corex_result_free(&stopped);
  tcx_corex_result_free(&resumed);
  free(mean);
  free(std);
  tcx_block_destroy(&block);
}

/* Timed checkpoints at every boundary, as after a SIGKILL: the last one
 * written continues to the uninterrupted result. */
static void timed_checkpoint_resume_bitwise(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result full = {0}, timed = {0}, resumed = {0};
  tcx_checkpoint *checkpoint = NULL;
  char path[256];
  tcx_block *block;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  options.init = TCX_TCOREX_INIT_RANDOM;
  options.anneal = 0;
  options.max_iter = 6;
  tcx_test_temp_path(".h5", path, sizeof(path));
  fit_counting(ctx, &options, block, &full);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 1e-9),
                   TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &timed),
                   TCX_OK);
  /* Rank 0 votes at every reduction after 1 ns, so every boundary writes. */
  assert_int_equal(tcx_checkpoint_write_count(checkpoint), 6);
  tcx_checkpoint_destroy(&checkpoint);
  assert_tcorex_identical(&full, &timed, "fit with timed checkpoints");

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_resume(ctx, checkpoint, path), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &resumed),
                   TCX_OK);
  assert_tcorex_identical(&full, &resumed, "resumed from a timed checkpoint");

  remove_file(path);
  tcx_checkpoint_destroy(&checkpoint);
  tcx_tcorex_result_free(&full);
  tcx_tcorex_result_free(&timed);
  tcx_tcorex_result_free(&resumed);
  tcx_block_destroy(&block);
}

/* Writes the checkpoint on a sub-communicator of 2 ranks (1 at 2 ranks) and
 * resumes on all ranks. */
static void resume_on_other_rank_count(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  const int writers = size >= 3 ? 2 : 1;
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result full = {0}, stopped = {0}, resumed = {0};
  tcx_checkpoint *checkpoint = NULL;
  MPI_Comm sub = MPI_COMM_NULL;
  char path[256];
  tcx_block *block;
  double largest = 0.0;
  int64_t total;

  (void)state;
  if (size == 1)
    skip();
  make_data(x);
  tcorex_options(&options);
  tcx_test_temp_path(".h5", path, sizeof(path));
  block = make_block(ctx, x);
  total = fit_counting(ctx, &options, block, &full);

  assert_int_equal(MPI_Comm_split(MPI_COMM_WORLD, rank < writers ? 0 : 1,
                                  rank, &sub),
                   MPI_SUCCESS);
  if (rank < writers) {
    tcx_ctx *sub_ctx = NULL;
    tcx_block *sub_block;
    tcx_tcorex_options stop_options = options;

    assert_int_equal(tcx_ctx_create(sub, &sub_ctx), TCX_OK);
    tcx_ctx_set_log_level(sub_ctx, TCX_LOG_ERROR);
    sub_block = make_block(sub_ctx, x);
    assert_int_equal(tcx_checkpoint_create(sub_ctx, &checkpoint), TCX_OK);
    assert_int_equal(tcx_checkpoint_set_output(sub_ctx, checkpoint, path, 0),
                     TCX_OK);
    tcx_checkpoint_set_stop_at(checkpoint, total - 40);
    stop_options.checkpoint = checkpoint;
    assert_int_equal(tcx_tcorex_fit(sub_ctx, &stop_options, sub_block, NULL,
                                    &stopped),
                     TCX_ERR_INTERRUPTED);
    tcx_checkpoint_destroy(&checkpoint);
    tcx_block_destroy(&sub_block);
    tcx_ctx_destroy(&sub_ctx);
  }
  MPI_Comm_free(&sub);
  /* The other ranks look for the file only once the writers are done. */
  MPI_Barrier(MPI_COMM_WORLD);

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_resume(ctx, checkpoint, path), TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &resumed),
                   TCX_OK);
  assert_int_equal(resumed.n_history, full.n_history);
  for (int64_t k = 0; k < NT * M * block->n_local; k++)
    largest = fmax(largest, fabs(resumed.weights[k] - full.weights[k]) /
                                fmax(1.0, fabs(full.weights[k])));
  for (int64_t k = 0; k < full.n_history; k++)
    largest = fmax(largest, fabs(resumed.history_main[k] -
                                 full.history_main[k]) /
                                fmax(1.0, fabs(full.history_main[k])));
  if (largest > RANK_CHANGE_TOLERANCE)
    fprintf(stderr, "[rank %d] resumed on %d ranks from %d: difference %g\n",
            rank, size, writers, largest);
  assert_true(tcx_test_all_ok(largest <= RANK_CHANGE_TOLERANCE,
                              "resumed on another rank count"));

  remove_file(path);
  tcx_checkpoint_destroy(&checkpoint);
  tcx_tcorex_result_free(&full);
  tcx_tcorex_result_free(&stopped);
  tcx_tcorex_result_free(&resumed);
  tcx_block_destroy(&block);
}

/* Writes a checkpoint at boundary 5 of a fit with the given options. */
static void write_checkpoint(const tcx_tcorex_options *base,
                             const tcx_block *block, const char *identity,
                             const char *path)
{
  tcx_ctx *ctx = quiet_ctx();
  tcx_tcorex_options options = *base;
  tcx_tcorex_result stopped = {0};
  tcx_checkpoint *checkpoint = NULL;

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_identity(ctx, checkpoint, identity),
                   TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 0),
                   TCX_OK);
  tcx_checkpoint_set_stop_at(checkpoint, 5);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &stopped),
                   TCX_ERR_INTERRUPTED);
  tcx_tcorex_result_free(&stopped);
  tcx_checkpoint_destroy(&checkpoint);
}

/* Resumes path with the given identity and options and returns the fit's
 * status; nonzero set_resume_status receives set_resume's status. */
static int try_resume(const tcx_tcorex_options *base, const tcx_block *block,
                      const char *identity, const char *path,
                      int *set_resume_status)
{
  tcx_ctx *ctx = quiet_ctx();
  tcx_tcorex_options options = *base;
  tcx_tcorex_result result = {0};
  tcx_checkpoint *checkpoint = NULL;
  int rc;

  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_identity(ctx, checkpoint, identity),
                   TCX_OK);
  *set_resume_status = tcx_checkpoint_set_resume(ctx, checkpoint, path);
  rc = *set_resume_status;
  if (rc == TCX_OK) {
    options.checkpoint = checkpoint;
    rc = tcx_tcorex_fit(ctx, &options, block, NULL, &result);
  }
  tcx_tcorex_result_free(&result);
  tcx_checkpoint_destroy(&checkpoint);
  return rc;
}

static void mismatched_resume_rejected(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  const char *identity = "input=a.h5\nsamples=48\n";
  double x[N_ROWS * P];
  tcx_tcorex_options options, other;
  char path[256], missing[300];
  tcx_block *block;
  int set_status;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  options.init = TCX_TCOREX_INIT_RANDOM;
  tcx_test_temp_path(".h5", path, sizeof(path));
  write_checkpoint(&options, block, identity, path);

  other = options;
  other.l1 = 0.3;
  assert_int_equal(try_resume(&other, block, identity, path, &set_status),
                   TCX_ERR_USAGE);
  assert_int_equal(set_status, TCX_OK);
  assert_non_null(strstr(tcx_ctx_message(ctx), "l1 = 0.1"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "l1 = 0.3"));

  other = options;
  other.optimizer = TCX_TCOREX_FISTA;
  assert_int_equal(try_resume(&other, block, identity, path, &set_status),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "optimizer"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "optimizer = fista"));

  assert_int_equal(try_resume(&options, block, "input=b.h5\nsamples=48\n",
                              path, &set_status),
                   TCX_ERR_USAGE);
  assert_int_equal(set_status, TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "input = a.h5"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "input = b.h5"));

  snprintf(missing, sizeof(missing), "%s.missing", path);
  assert_int_equal(try_resume(&options, block, identity, missing,
                              &set_status),
                   TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "not found"));

  /* The same inputs and options resume. */
  assert_int_equal(try_resume(&options, block, identity, path, &set_status),
                   TCX_OK);

  remove_file(path);
  tcx_block_destroy(&block);
}

/* Reads the whole file at path on rank 0 into a new buffer. */
static char *read_file(const char *path, long *size)
{
  FILE *file = fopen(path, "rb");
  char *data;

  assert_non_null(file);
  assert_int_equal(fseek(file, 0, SEEK_END), 0);
  *size = ftell(file);
  rewind(file);
  data = malloc((size_t)*size);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, (size_t)*size, file), (size_t)*size);
  fclose(file);
  return data;
}

/* An Adam step of 1e200 overflows the objective at iteration 2. */
static void breakdown_keeps_checkpoint(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  const int rank = tcx_ctx_rank(ctx);
  double x[N_ROWS * P], objective = 0.0;
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_checkpoint *checkpoint = NULL;
  char path[256], *before = NULL, *after = NULL;
  long before_size = 0, after_size = 0;
  tcx_block *block;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  options.init = TCX_TCOREX_INIT_RANDOM;
  options.learning_rate = 1e200;
  tcx_test_temp_path(".h5", path, sizeof(path));

  /* Timed writes at every boundary: the checkpoint of iteration 1 is the
   * last good state. */
  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 1e-9),
                   TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_NUMERIC);
  assert_non_null(strstr(tcx_ctx_message(ctx),
                         "at iteration 2 of annealing stage 1 of 7"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "last finite objective"));
  assert_non_null(strstr(tcx_ctx_message(ctx), "is kept"));
  assert_int_equal(tcx_checkpoint_write_count(checkpoint), 1);
  tcx_checkpoint_destroy(&checkpoint);
  tcx_tcorex_result_free(&result);
  assert_int_equal(tcx_h5_read_attr_double(ctx, path, "objective",
                                           &objective),
                   TCX_OK);
  assert_true(isfinite(objective));

  /* Without timed writes, a breakdown leaves the file byte for byte. */
  if (rank == 0)
    before = read_file(path, &before_size);
  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  assert_int_equal(tcx_checkpoint_set_output(ctx, checkpoint, path, 0.0),
                   TCX_OK);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_NUMERIC);
  assert_int_equal(tcx_checkpoint_write_count(checkpoint), 0);
  tcx_checkpoint_destroy(&checkpoint);
  tcx_tcorex_result_free(&result);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    after = read_file(path, &after_size);
    assert_int_equal(after_size, before_size);
    assert_memory_equal(after, before, (size_t)before_size);
  }

  free(before);
  free(after);
  remove_file(path);
  tcx_block_destroy(&block);
}

/* A flag raised on the last rank alone stops every rank; without an output
 * file nothing is written. */
static void stop_flag_on_one_rank_stops_all(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result result = {0};
  tcx_checkpoint *checkpoint = NULL;
  volatile sig_atomic_t flag = 0;
  tcx_block *block;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  if (tcx_ctx_rank(ctx) == tcx_ctx_size(ctx) - 1)
    flag = 1;
  assert_int_equal(tcx_checkpoint_create(ctx, &checkpoint), TCX_OK);
  tcx_checkpoint_set_stop_flag(checkpoint, &flag);
  options.checkpoint = checkpoint;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &result),
                   TCX_ERR_INTERRUPTED);
  /* Linear CorEx votes in its first iteration's reduction, so the fit
   * stops at the boundary before its second iteration. */
  assert_int_equal(tcx_checkpoint_boundary_count(checkpoint), 2);
  assert_int_equal(tcx_checkpoint_write_count(checkpoint), 0);
  assert_non_null(strstr(tcx_ctx_message(ctx), "progress is lost"));
  tcx_checkpoint_destroy(&checkpoint);
  tcx_tcorex_result_free(&result);
  tcx_block_destroy(&block);
}

/* A checkpoint object that writes nothing adds no MPI_Allreduce. */
static void checkpoint_adds_no_reduction(void **state)
{
  tcx_ctx *ctx = quiet_ctx();
  double x[N_ROWS * P];
  tcx_tcorex_options options;
  tcx_tcorex_result plain = {0}, checked = {0};
  tcx_block *block;
  long without, with;

  (void)state;
  make_data(x);
  block = make_block(ctx, x);
  tcorex_options(&options);
  allreduce_calls = 0;
  assert_int_equal(tcx_tcorex_fit(ctx, &options, block, NULL, &plain),
                   TCX_OK);
  without = allreduce_calls;
  allreduce_calls = 0;
  fit_counting(ctx, &options, block, &checked);
  with = allreduce_calls;
  assert_int_equal(with, without);
  assert_tcorex_identical(&plain, &checked, "fit with a checkpoint object");
  tcx_tcorex_result_free(&plain);
  tcx_tcorex_result_free(&checked);
  tcx_block_destroy(&block);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tcorex_adam_resume_bitwise),
      cmocka_unit_test(tcorex_fista_resume_bitwise),
      cmocka_unit_test(corex_resume_bitwise),
      cmocka_unit_test(timed_checkpoint_resume_bitwise),
      cmocka_unit_test(resume_on_other_rank_count),
      cmocka_unit_test(mismatched_resume_rejected),
      cmocka_unit_test(breakdown_keeps_checkpoint),
      cmocka_unit_test(stop_flag_on_one_rank_stops_all),
      cmocka_unit_test(checkpoint_adds_no_reduction),
  };

  return tcx_test_run(argc, argv, "checkpoint", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
