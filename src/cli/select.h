/* The hyperparameter grid of 'tcorex select' and its CSV table. */
#ifndef TCX_CLI_SELECT_H
#define TCX_CLI_SELECT_H

#include <stdint.h>

#include "fit.h"

enum { TCX_GRID_MAX_KEYS = 8, TCX_GRID_MAX_POINTS = 1000000 };

/* One key of the grid: the fit option it sets and its values in the order
 * given. */
typedef struct tcx_grid_key {
  char name[32]; /* "l1", the fit option without its leading "--" */
  const tcx_option_spec *spec;
  int64_t n_values;
  double *values;
} tcx_grid_key;

/* The Cartesian product of the keys' values. Point k has value index
 * (k / stride_j) % n_values_j for key j, where stride_j is the product of the
 * value counts of the keys after j: the last key varies fastest. */
typedef struct tcx_grid {
  int n_keys;
  tcx_grid_key keys[TCX_GRID_MAX_KEYS];
  int64_t n_points;
} tcx_grid;

/* One row of the table: the result of one grid point. */
typedef struct tcx_grid_row {
  int64_t point;
  double nll;         /* mean validation NLL per sample; NaN: failed fit */
  int64_t iterations; /* optimiser iterations of the fit, all stages */
  double seconds;     /* fit plus scoring, wall clock */
} tcx_grid_row;

/* Parses a grid such as "l1=0,0.1 gamma=0.3,0.5 factors=16,32": items
 * separated by spaces, each KEY=V1,V2,... where KEY names a numeric fit
 * option of tcx_grid_key_names() and every value is checked against that
 * option's range. Fails with TCX_ERR_USAGE naming the item. The caller
 * frees the grid with tcx_grid_free(), also after a failure. Not
 * collective. */
int tcx_grid_parse(tcx_ctx *ctx, const char *text, tcx_grid *grid);

/* Frees the value arrays of grid and zeroes it. */
void tcx_grid_free(tcx_grid *grid);

/* Returns the accepted keys as one string, "factors, l1, ...". */
const char *tcx_grid_key_names(void);

/* Returns the index of key name in grid, or -1. */
int tcx_grid_find(const tcx_grid *grid, const char *name);

/* Returns the value of key j at grid point point. */
double tcx_grid_value(const tcx_grid *grid, int j, int64_t point);

/* Sets the options of fit point point in v. */
void tcx_grid_apply(const tcx_grid *grid, int64_t point, fit_values *v);

/* Writes "l1=0.1 gamma=0.5" for point into text. */
void tcx_grid_describe(const tcx_grid *grid, int64_t point, char *text,
                       size_t size);

/* Writes the value of key j at point as text: an integer, or the shortest
 * decimal form that reads back as the same double, so that --from-tables
 * can compare values exactly. */
void tcx_grid_format_value(const tcx_grid *grid, int j, int64_t point,
                           char *text, size_t size);

/* Writes the table header "point,KEY...,validation_nll,iterations,seconds"
 * into text. */
void tcx_grid_format_header(const tcx_grid *grid, char *text, size_t size);

/* Writes the table of rows (n_rows of them, any points of grid) to path
 * atomically through path.tmp: a header "point,KEY...,validation_nll,
 * iterations,seconds" and one line per row. Not collective: rank 0 calls
 * it. Fails with TCX_ERR_OUTPUT naming the path. */
int tcx_grid_write_table(tcx_ctx *ctx, const char *path, const tcx_grid *grid,
                         const tcx_grid_row *rows, int64_t n_rows);

/* Reads the rows of every file matching the glob(3) pattern into rows
 * (grid->n_points entries, rows[k] for point k). Each row must carry the
 * grid's parameter values of its point, and a point read twice must have
 * the same result both times. With present NULL, every point must have a
 * row. Otherwise points may be missing, and present[k] is set to 1 for the
 * points read, 0 for the others. Fails with TCX_ERR_INPUT naming the file
 * and line, or naming the points that no file has. Not collective: rank 0
 * calls it. */
int tcx_grid_read_tables(tcx_ctx *ctx, const char *pattern,
                         const tcx_grid *grid, tcx_grid_row *rows,
                         int *present);

/* Copies a block: its periods and data. The caller frees *copy with
 * tcx_block_destroy(). Not collective. */
int tcx_select_copy_block(tcx_ctx *ctx, const tcx_block *source,
                          tcx_block **copy);

/* Joins training and validation data for --refit. For linear CorEx (as
 * tcx_cli_fit_is_linear() decides for v and train) the result has one
 * period: every training row, then every validation row. For T-CorEx,
 * period t contains the training rows of period t, then the validation rows
 * of period t. A [T, p] validation block is first split with v's --periods
 * or --period-length. Fails with TCX_ERR_INPUT when the two period counts
 * then differ. train is already split. The caller frees *combined with
 * tcx_block_destroy(). Not collective. */
int tcx_select_combine(tcx_ctx *ctx, const fit_values *v,
                       const tcx_block *train, const tcx_block *validation,
                       const char *validation_name, tcx_block **combined);

#endif
