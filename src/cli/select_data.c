/* Data handling of 'tcorex select': working copies of the column blocks and
 * the training plus validation data of --refit. */
#include <stdlib.h>
#include <string.h>

#include "select.h"

int tcx_select_copy_block(tcx_ctx *ctx, const tcx_block *source,
                          tcx_block **copy)
{
  int64_t *period_rows = NULL;
  int rc = TCX_OK;

  *copy = NULL;
  TCX_TRY(tcx_calloc(ctx, source->n_periods, sizeof(int64_t), "period rows",
                     &period_rows));
  for (int t = 0; t < source->n_periods; t++)
    period_rows[t] = source->period_begin[t + 1] - source->period_begin[t];
  TCX_TRY(tcx_block_create(ctx, source->n_periods, period_rows, source->n_vars,
                           source->col_begin, source->n_local, copy));
  memcpy((*copy)->data, source->data,
         (size_t)(source->n_rows * source->n_local) * sizeof(double));

cleanup:
  free(period_rows);
  return rc;
}

/* Appends the rows of period t of source (all rows when t < 0) at *row of
 * target and advances *row. */
static void append_rows(const tcx_block *source, int t, tcx_block *target,
                        int64_t *row)
{
  const int64_t first = t < 0 ? 0 : source->period_begin[t];
  const int64_t end = t < 0 ? source->n_rows : source->period_begin[t + 1];

  memcpy(target->data + *row * target->n_local,
         source->data + first * source->n_local,
         (size_t)((end - first) * source->n_local) * sizeof(double));
  *row += end - first;
}

int tcx_select_combine(tcx_ctx *ctx, const fit_values *v,
                       const tcx_block *train, const tcx_block *validation,
                       const char *validation_name, tcx_block **combined)
{
  const int linear = tcx_cli_fit_is_linear(v, train);
  tcx_block *validation_copy = NULL;
  int64_t *period_rows = NULL;
  int64_t row = 0;
  int rc = TCX_OK;

  *combined = NULL;
  TCX_TRY(tcx_select_copy_block(ctx, validation, &validation_copy));
  if (!linear && validation_copy->n_periods == 1 &&
      (v->periods > 0 || v->period_length > 0))
    TCX_TRY(tcx_block_split_periods(ctx, validation_copy, v->periods,
                                    v->period_length));
  TCX_CHECK(linear || validation_copy->n_periods == train->n_periods, ctx,
            TCX_ERR_INPUT,
            "--refit joins training and validation data period by period, "
            "but %s has %d period(s) and %s:%s %d; give both as [nt, ns, p] "
            "with the same nt, or [T, p] split with --periods",
            validation_name, validation_copy->n_periods, v->input, v->dataset,
            train->n_periods);

  if (linear) {
    const int64_t rows = train->n_rows + validation_copy->n_rows;

    TCX_TRY(tcx_block_create(ctx, 1, &rows, train->n_vars, train->col_begin,
                             train->n_local, combined));
    append_rows(train, -1, *combined, &row);
    append_rows(validation_copy, -1, *combined, &row);
  } else {
    TCX_TRY(tcx_calloc(ctx, train->n_periods, sizeof(int64_t), "period rows",
                       &period_rows));
    for (int t = 0; t < train->n_periods; t++)
      period_rows[t] = train->period_begin[t + 1] - train->period_begin[t] +
                       validation_copy->period_begin[t + 1] -
                       validation_copy->period_begin[t];
    TCX_TRY(tcx_block_create(ctx, train->n_periods, period_rows, train->n_vars,
                             train->col_begin, train->n_local, combined));
    for (int t = 0; t < train->n_periods; t++) {
      append_rows(train, t, *combined, &row);
      append_rows(validation_copy, t, *combined, &row);
    }
  }

cleanup:
  free(period_rows);
  tcx_block_destroy(&validation_copy);
  return rc;
}
