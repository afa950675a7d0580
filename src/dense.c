/* The BLACS grid, block-cyclic matrices, and the moves of column-split
 * tcorex arrays into the block-cyclic layout. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense_internal.h"
#include "tcorex/block.h"

enum { TCX_DENSE_MAX_BLOCK_SIZE = 65536 };

/* The largest divisor of size that is at most sqrt(size). */
static int grid_rows_for(int size)
{
  int rows = 1;

  for (int r = 1; (int64_t)r * r <= size; r++)
    if (size % r == 0)
      rows = r;
  return rows;
}

/* Records which rank of the context each grid position is, and checks
 * that BLACS numbered the processes as the context's communicator does. */
static int grid_map_ranks(tcx_ctx *ctx, tcx_grid *grid)
{
  const int size = grid->n_prow * grid->n_pcol;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, size, sizeof(int), "BLACS rank map",
                     &grid->rank_of));
  for (int r = 0; r < grid->n_prow; r++)
    for (int c = 0; c < grid->n_pcol; c++)
      grid->rank_of[r * grid->n_pcol + c] = Cblacs_pnum(grid->context, r, c);
  TCX_CHECK(grid->rank_of[grid->my_row * grid->n_pcol + grid->my_col] ==
                tcx_ctx_rank(ctx),
            ctx, TCX_ERR_INTERNAL,
            "BLACS placed rank %d at grid position (%d, %d), which it numbers "
            "%d; the BLACS library does not follow the communicator's ranks",
            tcx_ctx_rank(ctx), grid->my_row, grid->my_col,
            grid->rank_of[grid->my_row * grid->n_pcol + grid->my_col]);

cleanup:
  return rc;
}

int tcx_grid_create(tcx_ctx *ctx, int64_t block_size, tcx_grid **grid)
{
  const int size = tcx_ctx_size(ctx);
  tcx_grid *record = NULL;
  int n_prow = 0, n_pcol = 0;
  int rc = TCX_OK;

  *grid = NULL;
  TCX_CHECK(block_size >= 1 && block_size <= TCX_DENSE_MAX_BLOCK_SIZE, ctx,
            TCX_ERR_USAGE,
            "invalid block size %lld: it must lie in [1, %d]; %d is the "
            "default",
            (long long)block_size, TCX_DENSE_MAX_BLOCK_SIZE,
            TCX_DENSE_BLOCK_SIZE);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*record), "BLACS grid", &record));
  record->block_size = block_size;
  record->comm = MPI_COMM_NULL;
  /* Csys2blacs_handle returns the same handle for the same communicator,
   * and freeing it twice makes BLACS complain, so every grid gets its own
   * duplicate. */
  TCX_TRY_MPI(ctx, MPI_Comm_dup(tcx_ctx_comm(ctx), &record->comm));
  record->system_handle = Csys2blacs_handle(record->comm);
  record->has_handle = 1;
  record->context = record->system_handle;
  record->n_prow = grid_rows_for(size);
  record->n_pcol = size / record->n_prow;
  Cblacs_gridinit(&record->context, "Row", record->n_prow, record->n_pcol);
  record->has_grid = 1;
  Cblacs_gridinfo(record->context, &n_prow, &n_pcol, &record->my_row,
                  &record->my_col);
  rc = n_prow == record->n_prow && n_pcol == record->n_pcol &&
               record->my_row >= 0 && record->my_col >= 0
           ? TCX_OK
           : tcx_error(ctx, TCX_ERR_INTERNAL,
                       "Cblacs_gridinit did not build the %d x %d grid for "
                       "%d ranks (got %d x %d, position %d, %d); check that "
                       "ScaLAPACK uses the same MPI as tcorex",
                       record->n_prow, record->n_pcol, size, n_prow, n_pcol,
                       record->my_row, record->my_col);
  if (rc == TCX_OK)
    rc = grid_map_ranks(ctx, record);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  *grid = record;
  record = NULL;

cleanup:
  tcx_grid_destroy(&record);
  return rc;
}

void tcx_grid_destroy(tcx_grid **grid)
{
  if (!grid || !*grid)
    return;
  if ((*grid)->has_grid)
    Cblacs_gridexit((*grid)->context);
  if ((*grid)->has_handle)
    Cfree_blacs_system_handle((*grid)->system_handle);
  if ((*grid)->comm != MPI_COMM_NULL)
    (void)MPI_Comm_free(&(*grid)->comm);
  free((*grid)->rank_of);
  free(*grid);
  *grid = NULL;
}

void tcx_grid_shape(const tcx_grid *grid, int *n_prow, int *n_pcol,
                    int *my_row, int *my_col)
{
  *n_prow = grid->n_prow;
  *n_pcol = grid->n_pcol;
  *my_row = grid->my_row;
  *my_col = grid->my_col;
}

int64_t tcx_dense_owner(int64_t global, int64_t block_size, int n_procs)
{
  return (global / block_size) % n_procs;
}

int64_t tcx_dense_local_index(int64_t global, int64_t block_size,
                              int n_procs)
{
  return global / (block_size * n_procs) * block_size + global % block_size;
}

static int64_t global_index(int64_t local, int64_t block_size, int n_procs,
                            int my_proc)
{
  return (local / block_size * n_procs + my_proc) * block_size +
         local % block_size;
}

int64_t tcx_dense_global_row(const tcx_dense *a, int64_t local_row)
{
  return global_index(local_row, a->block_size, a->grid->n_prow,
                      a->grid->my_row);
}

int64_t tcx_dense_global_col(const tcx_dense *a, int64_t local_col)
{
  return global_index(local_col, a->block_size, a->grid->n_pcol,
                      a->grid->my_col);
}

/* Fills the descriptor of a; descinit_ checks it against the grid. */
static int dense_describe(tcx_ctx *ctx, tcx_dense *a)
{
  const int n_rows = (int)a->n_rows, n_cols = (int)a->n_cols;
  const int block = (int)a->block_size, source = 0;
  const int context = a->grid->context, leading = (int)a->leading_dim;
  int info = 0;
  int rc = TCX_OK;

  descinit_(a->desc, &n_rows, &n_cols, &block, &block, &source, &source,
            &context, &leading, &info);
  TCX_TRY_LAPACK(ctx, info, "descinit_");

cleanup:
  return rc;
}

int tcx_dense_create(tcx_ctx *ctx, const tcx_grid *grid, int64_t n_rows,
                     int64_t n_cols, tcx_dense **matrix)
{
  tcx_dense *a = NULL;
  int rc = TCX_OK;

  *matrix = NULL;
  TCX_CHECK(n_rows >= 1 && n_rows <= INT_MAX && n_cols >= 1 &&
                n_cols <= INT_MAX,
            ctx, TCX_ERR_USAGE,
            "invalid dense matrix shape %lld x %lld: ScaLAPACK needs both "
            "dimensions in [1, %d]",
            (long long)n_rows, (long long)n_cols, INT_MAX);
  TCX_TRY(tcx_calloc(ctx, 1, sizeof(*a), "dense matrix", &a));
  a->grid = grid;
  a->n_rows = n_rows;
  a->n_cols = n_cols;
  a->block_size = grid->block_size;
  {
    const int rows = (int)n_rows, cols = (int)n_cols;
    const int block = (int)grid->block_size, source = 0;

    a->local_rows =
        numroc_(&rows, &block, &grid->my_row, &source, &grid->n_prow);
    a->local_cols =
        numroc_(&cols, &block, &grid->my_col, &source, &grid->n_pcol);
  }
  a->leading_dim = a->local_rows > 1 ? a->local_rows : 1;
  rc = tcx_calloc(ctx, a->leading_dim * (a->local_cols > 1 ? a->local_cols : 1),
                  sizeof(double), "local blocks of a dense matrix", &a->local);
  if (rc == TCX_OK)
    rc = dense_describe(ctx, a);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  *matrix = a;
  a = NULL;

cleanup:
  tcx_dense_destroy(&a);
  return rc;
}

void tcx_dense_destroy(tcx_dense **matrix)
{
  if (!matrix || !*matrix)
    return;
  free((*matrix)->local);
  free(*matrix);
  *matrix = NULL;
}

/* Computes element displacements from counts and checks that every count and
 * displacement fits MPI's int. Local. */
static int exchange_offsets(tcx_ctx *ctx, const int64_t *counts, int size,
                            int *int_counts, int *offsets)
{
  int64_t total = 0;
  int rc = TCX_OK;

  for (int q = 0; q < size; q++) {
    TCX_CHECK(total + counts[q] <= INT_MAX, ctx, TCX_ERR_UNSUPPORTED,
              "one rank would exchange %lld values in one MPI_Alltoallv "
              "(limit %d); use more ranks or fewer rows per call",
              (long long)(total + counts[q]), INT_MAX);
    int_counts[q] = (int)counts[q];
    offsets[q] = (int)total;
    total += counts[q];
  }

cleanup:
  return rc;
}

int tcx_dense_exchange(tcx_ctx *ctx, const double *send,
                       const int64_t *send_counts, double *receive,
                       const int64_t *receive_counts)
{
  const int size = tcx_ctx_size(ctx);
  int *buffer = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, 4 * (int64_t)size, sizeof(int), "exchange counts",
                     &buffer));
  rc = exchange_offsets(ctx, send_counts, size, buffer, buffer + size);
  if (rc == TCX_OK)
    rc = exchange_offsets(ctx, receive_counts, size, buffer + 2 * size,
                          buffer + 3 * size);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY_MPI(ctx, MPI_Alltoallv(send, buffer, buffer + size, MPI_DOUBLE,
                                 receive, buffer + 2 * size,
                                 buffer + 3 * size, MPI_DOUBLE,
                                 tcx_ctx_comm(ctx)));

cleanup:
  free(buffer);
  return rc;
}

/* Counts the indices in [begin, begin + count) that process proc of
 * n_procs owns in the block-cyclic layout. Local. */
static int64_t owned_count(int64_t begin, int64_t count, int64_t block_size,
                           int n_procs, int proc)
{
  int64_t owned = 0;

  for (int64_t g = begin; g < begin + count; g++)
    owned += tcx_dense_owner(g, block_size, n_procs) == proc;
  return owned;
}

/* Packs rows [col_begin, col_begin + n_local) of a p x k matrix, stored
 * column-major with leading dimension n_local, in the order that
 * scatter_unpack() expects: per destination rank, columns then rows in
 * increasing order. */
static void scatter_pack(const tcx_dense *b, int64_t col_begin,
                         int64_t n_local, const double *local,
                         int64_t *offsets, double *send)
{
  const tcx_grid *grid = b->grid;

  for (int64_t j = 0; j < b->n_cols; j++) {
    const int pc = (int)tcx_dense_owner(j, b->block_size, grid->n_pcol);

    for (int64_t i = 0; i < n_local; i++) {
      const int pr = (int)tcx_dense_owner(col_begin + i, b->block_size,
                                          grid->n_prow);
      const int q = grid->rank_of[pr * grid->n_pcol + pc];

      send[offsets[q]++] = local[j * n_local + i];
    }
  }
}

/* Stores what rank s sent in scatter_pack() order into b's local blocks. */
static const double *scatter_unpack(tcx_dense *b, int64_t s_begin,
                                    int64_t s_count, const double *received)
{
  const tcx_grid *grid = b->grid;

  for (int64_t j = 0; j < b->n_cols; j++) {
    if (tcx_dense_owner(j, b->block_size, grid->n_pcol) != grid->my_col)
      continue;
    const int64_t lj = tcx_dense_local_index(j, b->block_size, grid->n_pcol);

    for (int64_t g = s_begin; g < s_begin + s_count; g++) {
      if (tcx_dense_owner(g, b->block_size, grid->n_prow) != grid->my_row)
        continue;
      b->local[lj * b->leading_dim +
               tcx_dense_local_index(g, b->block_size, grid->n_prow)] =
          *received++;
    }
  }
  return received;
}

/* Per-rank counts of a scatter: what this rank sends to each rank and what
 * it receives from each. Local. */
static int scatter_counts(tcx_ctx *ctx, const tcx_dense *b, int64_t col_begin,
                          int64_t n_local, int64_t *send_counts,
                          int64_t *receive_counts)
{
  const tcx_grid *grid = b->grid;
  int rc = TCX_OK;

  for (int pr = 0; pr < grid->n_prow; pr++)
    for (int pc = 0; pc < grid->n_pcol; pc++)
      send_counts[grid->rank_of[pr * grid->n_pcol + pc]] =
          owned_count(col_begin, n_local, b->block_size, grid->n_prow, pr) *
          owned_count(0, b->n_cols, b->block_size, grid->n_pcol, pc);
  for (int s = 0; s < tcx_ctx_size(ctx); s++) {
    int64_t s_begin = 0, s_count = 0;

    TCX_TRY(tcx_partition(ctx, b->n_rows, tcx_ctx_size(ctx), s, &s_begin,
                          &s_count));
    receive_counts[s] = owned_count(s_begin, s_count, b->block_size,
                                    grid->n_prow, grid->my_row) *
                        b->local_cols;
  }

cleanup:
  return rc;
}

int tcx_dense_scatter_rows(tcx_ctx *ctx, int64_t n_local, const double *local,
                           tcx_dense *b)
{
  const int size = tcx_ctx_size(ctx);
  int64_t col_begin = 0, expected_local = 0;
  int64_t *counts = NULL;
  double *send = NULL, *receive = NULL;
  int rc = TCX_OK;

  rc = tcx_partition(ctx, b->n_rows, size, tcx_ctx_rank(ctx), &col_begin,
                     &expected_local);
  if (rc == TCX_OK && expected_local != n_local)
    rc = tcx_error(ctx, TCX_ERR_INTERNAL,
                   "rank %d has %lld of %lld variables but tcx_partition "
                   "gives it %lld",
                   tcx_ctx_rank(ctx), (long long)n_local,
                   (long long)b->n_rows, (long long)expected_local);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, 3 * (int64_t)size, sizeof(int64_t), "scatter counts",
                    &counts);
  if (rc == TCX_OK)
    rc = scatter_counts(ctx, b, col_begin, n_local, counts, counts + size);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, n_local * b->n_cols + 1, sizeof(double),
                    "scatter send buffer", &send);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, b->local_rows * b->local_cols + 1, sizeof(double),
                    "scatter receive buffer", &receive);
  TCX_TRY(tcx_ctx_agree(ctx, rc));

  /* counts + 2 size: running send offsets, advanced by scatter_pack(). */
  for (int64_t q = 0, offset = 0; q < size; offset += counts[q], q++)
    counts[2 * size + q] = offset;
  scatter_pack(b, col_begin, n_local, local, counts + 2 * size, send);
  TCX_TRY(tcx_dense_exchange(ctx, send, counts, receive, counts + size));
  {
    const double *next = receive;

    for (int s = 0; s < size; s++) {
      int64_t s_begin = 0, s_count = 0;

      TCX_TRY(tcx_partition(ctx, b->n_rows, size, s, &s_begin, &s_count));
      next = scatter_unpack(b, s_begin, s_count, next);
    }
  }

cleanup:
  free(counts);
  free(send);
  free(receive);
  return rc;
}

/* Returns the rank that stores diagonal entry (g, g) of a. */
static int diagonal_owner(const tcx_dense *a, int64_t g)
{
  const tcx_grid *grid = a->grid;
  const int64_t pr = tcx_dense_owner(g, a->block_size, grid->n_prow);
  const int64_t pc = tcx_dense_owner(g, a->block_size, grid->n_pcol);

  return grid->rank_of[pr * grid->n_pcol + pc];
}

/* Packs the local diagonal entries per owner rank, in increasing g, and
 * fills send_counts. offsets has size entries of scratch. Local. */
static void diagonal_pack(const tcx_dense *a, int size, int64_t col_begin,
                          int64_t n_local, const double *d,
                          int64_t *send_counts, int64_t *offsets,
                          double *send)
{
  for (int64_t i = 0; i < n_local; i++)
    send_counts[diagonal_owner(a, col_begin + i)]++;
  for (int64_t q = 0, offset = 0; q < size; offset += send_counts[q], q++)
    offsets[q] = offset;
  for (int64_t i = 0; i < n_local; i++)
    send[offsets[diagonal_owner(a, col_begin + i)]++] = d[i];
}

/* Counts the diagonal entries that each rank sends to this one and their
 * total. Local. */
static int diagonal_receive_counts(tcx_ctx *ctx, const tcx_dense *a,
                                   int64_t *receive_counts, int64_t *total)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  int rc = TCX_OK;

  *total = 0;
  for (int s = 0; s < size; s++) {
    int64_t s_begin = 0, s_count = 0;

    TCX_TRY(tcx_partition(ctx, a->n_rows, size, s, &s_begin, &s_count));
    receive_counts[s] = 0;
    for (int64_t g = s_begin; g < s_begin + s_count; g++)
      receive_counts[s] += diagonal_owner(a, g) == rank;
    *total += receive_counts[s];
  }

cleanup:
  return rc;
}

int tcx_dense_add_diagonal(tcx_ctx *ctx, int64_t n_local, const double *d,
                           tcx_dense *a)
{
  const int size = tcx_ctx_size(ctx), rank = tcx_ctx_rank(ctx);
  int64_t col_begin = 0, count = 0, received_total = 0;
  int64_t *counts = NULL;
  double *send = NULL, *receive = NULL;
  int rc = TCX_OK;

  rc = tcx_partition(ctx, a->n_rows, size, rank, &col_begin, &count);
  if (rc == TCX_OK && count != n_local)
    rc = tcx_error(ctx, TCX_ERR_INTERNAL,
                   "diagonal of %lld local entries, but rank %d owns %lld",
                   (long long)n_local, rank, (long long)count);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, 3 * (int64_t)size, sizeof(int64_t),
                    "diagonal counts", &counts);
  if (rc == TCX_OK)
    rc = diagonal_receive_counts(ctx, a, counts + size, &received_total);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, n_local + 1, sizeof(double), "diagonal send buffer",
                    &send);
  if (rc == TCX_OK)
    rc = tcx_calloc(ctx, received_total + 1, sizeof(double),
                    "diagonal receive buffer", &receive);
  TCX_TRY(tcx_ctx_agree(ctx, rc));

  /* Entry g of the diagonal goes to the owner of position (g, g). */
  diagonal_pack(a, size, col_begin, n_local, d, counts, counts + 2 * size,
                send);
  TCX_TRY(tcx_dense_exchange(ctx, send, counts, receive, counts + size));

  /* The received entries arrive in increasing g, because the ranks' column
   * ranges increase with the rank. */
  for (int64_t g = 0, k = 0; g < a->n_rows; g++) {
    if (diagonal_owner(a, g) != rank)
      continue;
    a->local[tcx_dense_local_index(g, a->block_size, a->grid->n_pcol) *
                 a->leading_dim +
             tcx_dense_local_index(g, a->block_size, a->grid->n_prow)] +=
        receive[k++];
  }

cleanup:
  free(counts);
  free(send);
  free(receive);
  return rc;
}
