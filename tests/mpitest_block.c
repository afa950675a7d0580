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

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(partition_covers_all_columns),
      cmocka_unit_test(partition_rejects_more_ranks_than_variables),
      cmocka_unit_test(agree_shares_lowest_failure),
  };

  return tcx_test_run(argc, argv, "block", tests,
                      sizeof(tests) / sizeof(tests[0]));
}
