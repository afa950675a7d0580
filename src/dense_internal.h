/* Internals of the block-cyclic matrices shared by dense*.c and
 * h5io_dense.c. Not part of the public interface. */
#ifndef TCX_DENSE_INTERNAL_H
#define TCX_DENSE_INTERNAL_H

#include "scalapack.h"
#include "tcorex/dense.h"

struct tcx_grid {
  MPI_Comm comm;     /* duplicate of the context's communicator */
  int system_handle; /* from Csys2blacs_handle() on comm */
  int has_handle;
  int context;  /* BLACS grid context */
  int has_grid; /* nonzero once Cblacs_gridinit has run */
  int n_prow, n_pcol, my_row, my_col;
  int64_t block_size;
  int *rank_of; /* [n_prow * n_pcol]: rank of grid position (r, c) */
};

/* Returns the process (row or column of the grid, out of n_procs) that
 * owns global index global. Not collective. */
int64_t tcx_dense_owner(int64_t global, int64_t block_size, int n_procs);

/* Returns the local index of global index global on its owner. */
int64_t tcx_dense_local_index(int64_t global, int64_t block_size,
                              int n_procs);

/* Sends send_counts[q] doubles of send to each rank q and receives
 * receive_counts[s] doubles from each rank s into receive, both packed in
 * rank order, with one MPI_Alltoallv. Collective. */
int tcx_dense_exchange(tcx_ctx *ctx, const double *send,
                       const int64_t *send_counts, double *receive,
                       const int64_t *receive_counts);

/* Fills the p x k matrix b (p = b->n_rows, k = b->n_cols) from rows that
 * are split over ranks as tcx_partition() splits p: local contains this
 * rank's n_local x k rows column-major with leading dimension n_local.
 * An m x p matrix in tcorex's row-major column-split storage is exactly
 * such a local block of its transpose. Collective. */
int tcx_dense_scatter_rows(tcx_ctx *ctx, int64_t n_local, const double *local,
                           tcx_dense *b);

#endif
