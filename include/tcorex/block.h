/* Column blocks: how the p variables are split across ranks and the piece of
 * a data set that one rank keeps. */
#ifndef TCOREX_BLOCK_H
#define TCOREX_BLOCK_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Computes the contiguous column range of rank out of size ranks for n_vars
 * variables: the first n_vars % size ranks get one column more. Not
 * collective. Returns TCX_ERR_USAGE when size > n_vars. */
int tcx_partition(tcx_ctx *ctx, int64_t n_vars, int size, int rank,
                  int64_t *col_begin, int64_t *n_local);

/* One rank's columns of a data set, all rows. Rows of period t are rows
 * period_begin[t] .. period_begin[t + 1] - 1. Storage is row-major:
 * data[row * n_local + j] is variable col_begin + j. Missing values are NaN. */
typedef struct tcx_block {
  int64_t n_rows;        /* total rows over all periods */
  int64_t n_vars;        /* p, the global number of variables */
  int64_t col_begin;     /* global index of the first local column */
  int64_t n_local;       /* number of local columns */
  int n_periods;         /* 1 for a 2-D input [T, p] */
  int64_t *period_begin; /* n_periods + 1 row offsets */
  double *data;          /* n_rows x n_local, row-major */
} tcx_block;

/* Allocates a block with the given shape; period_rows[t] rows in period t.
 * Data are zero. The caller frees it with tcx_block_destroy(). */
int tcx_block_create(tcx_ctx *ctx, int n_periods, const int64_t *period_rows,
                     int64_t n_vars, int64_t col_begin, int64_t n_local,
                     tcx_block **block);

/* Re-splits the rows of a one-period block into periods of consecutive rows:
 * n_periods > 0 gives n_periods equal blocks of floor(T / n_periods) rows,
 * the last one taking the remainder; otherwise period_length > 0 gives
 * blocks of period_length rows, and the rows left over (fewer than
 * period_length) form a last, shorter period. Not collective. Fails with
 * TCX_ERR_USAGE when a period would have no rows or the block already has
 * periods. */
int tcx_block_split_periods(tcx_ctx *ctx, tcx_block *block, int64_t n_periods,
                            int64_t period_length);

/* Moves the last n_held rows of every period of block into a new block
 * *held_out with the same periods and columns, and shrinks block to the
 * rows before them. Not collective. Fails with TCX_ERR_USAGE, block
 * unchanged, when a period would keep fewer than 2 rows. The caller frees
 * *held_out with tcx_block_destroy(). */
int tcx_block_hold_out(tcx_ctx *ctx, tcx_block *block, int64_t n_held,
                       tcx_block **held_out);

/* Frees *block and sets it to NULL. Accepts NULL. */
void tcx_block_destroy(tcx_block **block);

#ifdef __cplusplus
}
#endif

#endif
