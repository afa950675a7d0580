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

/* Periods of 5, 7 and 6 rows with 2 held out: the kept rows are 0-2, 5-9
 * and 12-15 of the input, the held-out rows 3-4, 10-11 and 16-17. Every
 * entry encodes its input row and column, so a moved row shows where it
 * came from. */
static void hold_out_moves_last_rows_of_each_period(void **state)
{
  const int64_t rows[3] = {5, 7, 6};
  const int64_t kept_rows[] = {0, 1, 2, 5, 6, 7, 8, 9, 12, 13, 14, 15};
  const int64_t held_rows[] = {3, 4, 10, 11, 16, 17};
  const int64_t kept_begin[] = {0, 3, 8, 12};
  const int64_t nl = 3;
  tcx_ctx *ctx = tcx_test_ctx();
  tcx_block *block = NULL, *held = NULL;

  (void)state;
  assert_int_equal(tcx_block_create(ctx, 3, rows, 7, 4, nl, &block), TCX_OK);
  for (int64_t r = 0; r < 18; r++)
    for (int64_t j = 0; j < nl; j++)
      block->data[r * nl + j] = (double)(100 * r + j);

  /* Period 0 would keep 1 row: refused, block unchanged. */
  assert_int_equal(tcx_block_hold_out(ctx, block, 4, &held), TCX_ERR_USAGE);
  assert_non_null(strstr(tcx_ctx_message(ctx), "hold out at most 3"));
  assert_null(held);
  assert_int_equal(tcx_block_hold_out(ctx, block, 0, &held), TCX_ERR_USAGE);
  assert_int_equal(block->n_rows, 18);
  assert_int_equal(block->period_begin[3], 18);
  assert_true(block->data[17 * nl + 2] == 1702.0);
  tcx_block_destroy(&block);
  /* The shortest period sets the bound; one of 2 rows admits none. */
  {
    const int64_t uneven[3] = {7, 4, 6}, tiny[3] = {5, 2, 11};

    assert_int_equal(tcx_block_create(ctx, 3, uneven, 7, 4, nl, &block),
                     TCX_OK);
    assert_int_equal(tcx_block_hold_out(ctx, block, 3, &held),
                     TCX_ERR_USAGE);
    assert_non_null(
        strstr(tcx_ctx_message(ctx), "period 1 has 4 rows and must keep"));
    assert_non_null(strstr(tcx_ctx_message(ctx), "hold out at most 2"));
    tcx_block_destroy(&block);
    assert_int_equal(tcx_block_create(ctx, 3, tiny, 7, 4, nl, &block),
                     TCX_OK);
    assert_int_equal(tcx_block_hold_out(ctx, block, 1, &held),
                     TCX_ERR_USAGE);
    assert_non_null(strstr(tcx_ctx_message(ctx), "choose longer periods"));
    tcx_block_destroy(&block);
  }
  assert_int_equal(tcx_block_create(ctx, 3, rows, 7, 4, nl, &block), TCX_OK);
  for (int64_t r = 0; r < 18; r++)
    for (int64_t j = 0; j < nl; j++)
      block->data[r * nl + j] = (double)(100 * r + j);

  assert_int_equal(tcx_block_hold_out(ctx, block, 2, &held), TCX_OK);
  assert_int_equal(block->n_periods, 3);
  assert_int_equal(block->n_rows, 12);
  for (int t = 0; t <= 3; t++)
    assert_int_equal(block->period_begin[t], kept_begin[t]);
  assert_int_equal(held->n_periods, 3);
  assert_int_equal(held->n_rows, 6);
  assert_int_equal(held->n_vars, 7);
  assert_int_equal(held->col_begin, 4);
  assert_int_equal(held->n_local, nl);
  for (int t = 0; t <= 3; t++)
    assert_int_equal(held->period_begin[t], 2 * t);
  for (int64_t r = 0; r < 12; r++)
    for (int64_t j = 0; j < nl; j++)
      assert_true(block->data[r * nl + j] ==
                  (double)(100 * kept_rows[r] + j));
  for (int64_t r = 0; r < 6; r++)
    for (int64_t j = 0; j < nl; j++)
      assert_true(held->data[r * nl + j] == (double)(100 * held_rows[r] + j));
  tcx_block_destroy(&held);
  tcx_block_destroy(&block);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(partition_covers_all_columns),
      cmocka_unit_test(partition_rejects_more_ranks_than_variables),
      cmocka_unit_test(agree_shares_lowest_failure),
      cmocka_unit_test(split_periods_by_count_and_length),
      cmocka_unit_test(hold_out_moves_last_rows_of_each_period),
  };

  return tcx_test_run(argc, argv, "block", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
