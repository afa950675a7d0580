#include "tcorex/block.h"
#include <string.h>

#include "tcx_test.h"

/* The split must cover 0..p-1 exactly once, in rank order, with sizes that
 * differ by at most one. */
static void partition_covers_all_columns(void **state)
{
  const int64_t sizes[] = {1, 4, 37, 100000};
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    for (int size = 1; size <= 5 && size <= sizes[k]; size++) {
      int64_t next = 0;
      int64_t smallest = sizes[k], largest = 0;

      for (int rank = 0; rank < size; rank++) {
        int64_t begin = -1, count = -1;

        assert_int_equal(tcx_partition(ctx, sizes[k], size, rank, &begin,
                                       &count), TCX_OK);
        assert_int_equal(begin, next);
        next = begin + count;
        smallest = count < smallest ? count : smallest;
        largest = count > largest ? count : largest;
      }
      assert_int_equal(next, sizes[k]);
      assert_true(largest - smallest <= 1);
    }
  }
}

static void partition_rejects_more_ranks_than_variables(void **state)
{
  int64_t begin, count;
  tcx_ctx *ctx = tcx_test_ctx();

  (void)state;
  assert_int_equal(tcx_partition(ctx, 3, 4, 0, &begin, &count),
                   TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "at most 3 ranks"));
}

/* A failure on one rank reaches every rank with that rank's message. */
static void agree_shares_lowest_failure(void **state)
{
  tcx_ctx *ctx = tcx_test_ctx();
  const int size = tcx_ctx_size(ctx);
  const int rank = tcx_ctx_rank(ctx);
  const int failing = size - 1;
  int status = TCX_OK;

  (void)state;
  assert_int_equal(tcx_ctx_agree(ctx, TCX_OK), TCX_OK);
  if (rank == failing)
    status = tcx_error(ctx, TCX_ERR_INPUT, "bad value on the last rank");
  status = tcx_ctx_agree(ctx, status);
  assert_int_equal(status, TCX_ERR_INPUT);
  assert_non_null(strstr(tcx_ctx_message(ctx), "bad value on the last rank"));
  if (failing > 0)
    assert_non_null(strstr(tcx_ctx_message(ctx), "[rank"));
}

/* 10 rows in 3 periods: 3, 3 and the remainder 4; in periods of 4 rows: 4,
 * 4 and the 2 left over. */
static void split_periods_by_count_and_length(void **state)
{
  const int64_t rows[1] = {10};
  const int64_t by_count[] = {0, 3, 6, 10};
  const int64_t by_length[] = {0, 4, 8, 10};
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = NULL;

  (void)state;
  assert_int_equal(tcx_block_create(ctx, 1, rows, 5, 0, 5, &block), TCX_OK);
  assert_int_equal(tcx_block_split_periods(ctx, block, 3, 0), TCX_OK);
  assert_int_equal(block->n_periods, 3);
  for (int t = 0; t <= 3; t++)
    assert_int_equal(block->period_begin[t], by_count[t]);
  assert_int_equal(tcx_block_split_periods(ctx, block, 2, 0), TCX_ERR_USAGE);
  tcx_block_destroy(&block);

  assert_int_equal(tcx_block_create(ctx, 1, rows, 5, 0, 5, &block), TCX_OK);
  assert_int_equal(tcx_block_split_periods(ctx, block, 0, 4), TCX_OK);
  assert_int_equal(block->n_periods, 3);
  for (int t = 0; t <= 3; t++)
    assert_int_equal(block->period_begin[t], by_length[t]);
  tcx_block_destroy(&block);

  assert_int_equal(tcx_block_create(ctx, 1, rows, 5, 0, 5, &block), TCX_OK);
  assert_int_equal(tcx_block_split_periods(ctx, block, 11, 0), TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "at least 11 rows"));
  assert_int_equal(tcx_block_split_periods(ctx, block, 0, 11), TCX_ERR_USAGE);
  tcx_block_destroy(&block);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(partition_covers_all_columns),
      cmocka_unit_test(partition_rejects_more_ranks_than_variables),
      cmocka_unit_test(agree_shares_lowest_failure),
      cmocka_unit_test(split_periods_by_count_and_length),
  };

  return tcx_test_run(argc, argv, "block", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
