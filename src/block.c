#include <stdlib.h>

#include "tcorex/block.h"

int tcx_partition(tcx_ctx *ctx, int64_t n_vars, int size, int rank,
                  int64_t *col_begin, int64_t *n_local)
{
  int rc = TCX_OK;

  TCX_CHECK(size > 0 && rank >= 0 && rank < size, ctx, TCX_ERR_INTERNAL,
            "invalid partition request: rank %d of %d", rank, size);
  TCX_CHECK(n_vars >= size, ctx, TCX_ERR_USAGE,
            "cannot split %lld variables over %d ranks: every rank needs at "
            "least one variable; run with at most %lld ranks",
            (long long)n_vars, size, (long long)n_vars);
  {
    const int64_t base = n_vars / size;
    const int64_t extra = n_vars % size;

    *n_local = base + (rank < extra ? 1 : 0);
    *col_begin = base * rank + (rank < extra ? rank : extra);
  }

cleanup:
  return rc;
}

int tcx_block_create(tcx_ctx *ctx, int n_periods, const int64_t *period_rows,
                     int64_t n_vars, int64_t col_begin, int64_t n_local,
                     tcx_block **block)
{
  tcx_block *b = NULL;
  int rc = TCX_OK;

  *block = NULL;
  TCX_CHECK(n_periods >= 1, ctx, TCX_ERR_INTERNAL,
            "a block needs at least one period, got %d", n_periods);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*b), "data block", &b));
  TCX_TRY(tcx_calloc(ctx, n_periods + 1, sizeof(int64_t), "period offsets",
                     &b->period_begin));
  b->n_periods = n_periods;
  for (int t = 0; t < n_periods; t++)
    b->period_begin[t + 1] = b->period_begin[t] + period_rows[t];
  b->n_rows = b->period_begin[n_periods];
  b->n_vars = n_vars;
  b->col_begin = col_begin;
  b->n_local = n_local;
  TCX_TRY(tcx_calloc(ctx, b->n_rows * n_local, sizeof(double), "data block",
                     &b->data));
  *block = b;
  b = NULL;

cleanup:
  tcx_block_destroy(&b);
  return rc;
}

void tcx_block_destroy(tcx_block **block)
{
  if (!block || !*block)
    return;
  free((*block)->period_begin);
  free((*block)->data);
  free(*block);
  *block = NULL;
}
