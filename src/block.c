#include <stdlib.h>
#include <string.h>

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

int tcx_block_split_periods(tcx_ctx *ctx, tcx_block *block, int64_t n_periods,
                            int64_t period_length)
{
  const int64_t n_rows = block->n_rows;
  int64_t *offsets = NULL;
  int64_t count;
  int rc = TCX_OK;

  TCX_CHECK(block->n_periods == 1, ctx, TCX_ERR_USAGE,
            "the input already has %d periods ([nt, ns, p]); --periods and "
            "--period-length apply to [T, p] input only",
            block->n_periods);
  if (n_periods > 0) {
    TCX_CHECK(n_periods <= n_rows, ctx, TCX_ERR_USAGE,
              "invalid value for --periods: %lld periods need at least %lld "
              "rows, but the input has %lld",
              (long long)n_periods, (long long)n_periods, (long long)n_rows);
    count = n_periods;
  } else {
    TCX_CHECK(period_length > 0 && period_length <= n_rows, ctx,
              TCX_ERR_USAGE,
              "invalid value for --period-length: %lld; expected 1 to %lld, "
              "the number of input rows",
              (long long)period_length, (long long)n_rows);
    count = (n_rows + period_length - 1) / period_length;
  }
  TCX_CHECK(count <= INT32_MAX, ctx, TCX_ERR_USAGE,
            "%lld periods are too many; use longer periods",
            (long long)count);
  TCX_TRY(tcx_calloc(ctx, count + 1, sizeof(int64_t), "period offsets",
                     &offsets));
  for (int64_t t = 0; t < count; t++)
    offsets[t] = n_periods > 0 ? t * (n_rows / n_periods) : t * period_length;
  offsets[count] = n_rows;
  free(block->period_begin);
  block->period_begin = offsets;
  block->n_periods = (int)count;

cleanup:
  return rc;
}

int tcx_block_hold_out(tcx_ctx *ctx, tcx_block *block, int64_t n_held,
                       tcx_block **held_out)
{
  const int nt = block->n_periods;
  const int64_t nl = block->n_local;
  int64_t *held_rows = NULL, min_rows = 0;
  tcx_block *held_block = NULL;
  int shortest = 0;
  int rc = TCX_OK;

  *held_out = NULL;
  TCX_CHECK(n_held > 0, ctx, TCX_ERR_USAGE,
            "invalid value for --holdout: %lld; expected a number of rows "
            "per period of at least 1",
            (long long)n_held);
  /* The shortest period bounds what can be held out. */
  for (int t = 0; t < nt; t++) {
    const int64_t rows = block->period_begin[t + 1] - block->period_begin[t];

    if (t == 0 || rows < min_rows) {
      min_rows = rows;
      shortest = t;
    }
  }
  TCX_CHECK(min_rows - n_held >= 2 || min_rows > 2, ctx, TCX_ERR_USAGE,
            "invalid value for --holdout: %lld; period %d has only %lld "
            "rows and must keep at least 2 for the fit; choose longer "
            "periods (--periods, --period-length) to hold out rows",
            (long long)n_held, shortest, (long long)min_rows);
  TCX_CHECK(min_rows - n_held >= 2, ctx, TCX_ERR_USAGE,
            "invalid value for --holdout: %lld; period %d has %lld rows and "
            "must keep at least 2 for the fit; hold out at most %lld rows "
            "per period",
            (long long)n_held, shortest, (long long)min_rows,
            (long long)(min_rows - 2));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(int64_t), "held-out row counts",
                     &held_rows));
  for (int t = 0; t < nt; t++)
    held_rows[t] = n_held;
  TCX_TRY(tcx_block_create(ctx, nt, held_rows, block->n_vars,
                           block->col_begin, nl, &held_block));
  /* The kept rows move towards the front in place: period t's rows end up
   * at or before where they were, so a forward pass never overwrites rows
   * it still has to read. */
  for (int t = 0; t < nt; t++) {
    const int64_t begin = block->period_begin[t];
    const int64_t kept_rows = block->period_begin[t + 1] - begin - n_held;
    const int64_t new_begin = begin - (int64_t)t * n_held;

    memcpy(held_block->data + held_block->period_begin[t] * nl,
           block->data + (begin + kept_rows) * nl,
           (size_t)(n_held * nl) * sizeof(double));
    memmove(block->data + new_begin * nl, block->data + begin * nl,
            (size_t)(kept_rows * nl) * sizeof(double));
  }
  for (int t = 1; t <= nt; t++)
    block->period_begin[t] -= (int64_t)t * n_held;
  block->n_rows = block->period_begin[nt];
  *held_out = held_block;
  held_block = NULL;

cleanup:
  free(held_rows);
  tcx_block_destroy(&held_block);
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
