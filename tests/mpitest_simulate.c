/* Checks that simulated data and truth do not depend on the number of ranks:
 * each rank's slice must equal the same columns of a block generated for all
 * columns by one call. */
#include <stdio.h>
#include <string.h>

#include "tcorex/simulate.h"
#include "tcx_test.h"

static tcx_simulate_options options_37(void)
{
  tcx_simulate_options opts;

  tcx_simulate_options_default(&opts);
  opts.n_vars = 37; /* 2, 3 and 4 ranks split it unevenly */
  opts.n_factors = 4;
  opts.n_periods = 4;
  opts.train_rows = 5;
  opts.test_rows = 7;
  opts.validation_rows = 6;
  opts.seed = 2024;
  return opts;
}

/* Compares block with columns col_begin .. of full, bit for bit: both must
 * come from the same draws, so no tolerance applies. */
static int slice_matches(const tcx_block *block, const tcx_block *full)
{
  if (block->n_rows != full->n_rows || block->n_periods != full->n_periods ||
      block->n_vars != full->n_vars)
    return 0;
  for (int t = 0; t <= block->n_periods; t++) {
    if (block->period_begin[t] != full->period_begin[t])
      return 0;
  }
  for (int64_t r = 0; r < block->n_rows; r++) {
    if (memcmp(block->data + r * block->n_local,
               full->data + r * full->n_local + block->col_begin,
               (size_t)block->n_local * sizeof(double)) != 0)
      return 0;
  }
  return 1;
}

static void block_independent_of_ranks(const tcx_simulate_options *opts)
{
  tcx_ctx *ctx = tcx_test_ctx();
  int64_t col_begin = 0, n_local = 0;

  assert_int_equal(tcx_partition(ctx, opts->n_vars, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &col_begin, &n_local),
                   TCX_OK);
  for (int part = TCX_SIMULATE_TRAIN; part <= TCX_SIMULATE_VALIDATION;
       part++) {
    static const char *labels[] = {"training slice equals full block",
                                   "test slice equals full block",
                                   "validation slice equals full block"};
    tcx_block *block = NULL, *full = NULL;
    int ok;

    assert_int_equal(tcx_simulate_block(ctx, opts, part, col_begin, n_local,
                                        &block),
                     TCX_OK);
    assert_int_equal(tcx_simulate_block(ctx, opts, part, 0, opts->n_vars,
                                        &full),
                     TCX_OK);
    ok = block->col_begin == col_begin && block->n_local == n_local &&
         slice_matches(block, full);
    tcx_block_destroy(&block);
    tcx_block_destroy(&full);
    assert_true(tcx_test_all_ok(ok, labels[part]));
  }
}

static void slices_match_full_random(void **state)
{
  const tcx_simulate_options opts = options_37();

  (void)state;
  block_independent_of_ranks(&opts);
}

static void slices_match_full_blocks(void **state)
{
  tcx_simulate_options opts = options_37();

  (void)state;
  opts.assignment = TCX_SIMULATE_ASSIGN_BLOCKS;
  opts.change = TCX_SIMULATE_CHANGE_NONE;
  block_independent_of_ranks(&opts);
}

static void truth_independent_of_ranks(void **state)
{
  const tcx_simulate_options opts = options_37();
  tcx_ctx *ctx = tcx_test_ctx();
  int64_t col_begin = 0, n_local = 0;
  int ok = 1;

  (void)state;
  assert_int_equal(tcx_partition(ctx, opts.n_vars, tcx_ctx_size(ctx),
                                 tcx_ctx_rank(ctx), &col_begin, &n_local),
                   TCX_OK);
  for (int t = 0; t < opts.n_periods; t++) {
    double loading[37], noise_var[37], full_loading[37], full_noise_var[37];
    int32_t factor[37], full_factor[37];

    assert_int_equal(tcx_simulate_truth(ctx, &opts, t, col_begin, n_local,
                                        loading, noise_var, factor),
                     TCX_OK);
    assert_int_equal(tcx_simulate_truth(ctx, &opts, t, 0, 37, full_loading,
                                        full_noise_var, full_factor),
                     TCX_OK);
    for (int64_t i = 0; i < n_local; i++) {
      if (loading[i] != full_loading[col_begin + i] ||
          noise_var[i] != full_noise_var[col_begin + i] ||
          factor[i] != full_factor[col_begin + i]) {
        fprintf(stderr, "[rank %d] period %d: truth of variable %lld "
                "differs from the full-range truth\n",
                tcx_ctx_rank(ctx), t, (long long)(col_begin + i));
        ok = 0;
      }
    }
  }
  assert_true(tcx_test_all_ok(ok, "truth slice equals full truth"));
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(slices_match_full_random),
      cmocka_unit_test(slices_match_full_blocks),
      cmocka_unit_test(truth_independent_of_ranks),
  };

  return tcx_test_run(argc, argv, "simulate_ranks", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
