/* tcorex select: a hyperparameter search. Each grid point is fitted to the
 * training data by the code of 'tcorex fit' and scored on the validation
 * data by the code of 'tcorex score'. The table and the model of the point
 * with the lowest validation NLL are written. Every point runs on all ranks
 * in turn. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "score.h"
#include "select.h"
#include "tcorex/h5io.h"

typedef struct select_values {
  fit_values fit; /* fit options; --dataset and --output are set here too */
  const char *grid;
  const char *train;
  const char *validation;
  const char *validation_dataset; /* NULL: fit.dataset */
  const char *table;
  const char *from_tables;
  int64_t point; /* -1: every point */
  int refit;
  int zero_mean;
  int early_stopping;
  int resume_table; /* --continue */
} select_values;

/* The training and validation blocks, read once for all points. */
typedef struct select_data {
  tcx_block *train;      /* split into periods as 'tcorex fit' splits */
  tcx_block *validation; /* as read */
} select_data;

#define SELECT_FIELD(name) offsetof(select_values, name)

static const tcx_option_spec select_options[] = {
    {"--grid", TCX_OPT_STRING, SELECT_FIELD(grid), "GRID",
     "grid of fit options, such as 'l1=0,0.1 gamma=0.3,0.5 factors=16,32'; "
     "keys: factors, l1, l2, gamma, learning-rate, max-samples, max-iter, "
     "seed; a key overrides the option of the same name",
     0, 0, 0, 0, NULL, 1},
    {"--train", TCX_OPT_STRING, SELECT_FIELD(train), "FILE",
     "HDF5 file with the training data, [T, p] or [nt, ns, p]", 0, 0, 0, 0,
     NULL, 0},
    {"--dataset", TCX_OPT_STRING, SELECT_FIELD(fit.dataset), "NAME",
     "dataset inside the training file (default /data)", 0, 0, 0, 0, NULL, 0},
    {"--validation", TCX_OPT_STRING, SELECT_FIELD(validation), "FILE",
     "HDF5 file with the validation data, scored as 'tcorex score' scores", 0,
     0, 0, 0, NULL, 0},
    {"--validation-dataset", TCX_OPT_STRING, SELECT_FIELD(validation_dataset),
     "NAME", "dataset inside the validation file (default: as --dataset)", 0, 0,
     0, 0, NULL, 0},
    {"--table", TCX_OPT_STRING, SELECT_FIELD(table), "FILE",
     "CSV table to write: point, grid keys, validation_nll, iterations, "
     "seconds",
     0, 0, 0, 0, NULL, 1},
    {"--output", TCX_OPT_STRING, SELECT_FIELD(fit.output), "FILE",
     "model file (HDF5) of the point with the lowest validation NLL "
     "(default: none)",
     0, 0, 0, 0, NULL, 0},
    {"--point", TCX_OPT_INT, SELECT_FIELD(point), "K",
     "evaluate grid point K only, counted from 0 (for a job array task)", 0,
     1e15, 0, 0, NULL, 0},
    {"--from-tables", TCX_OPT_STRING, SELECT_FIELD(from_tables), "PATTERN",
     "instead of fitting, merge the tables of --point runs whose paths match "
     "this glob(3) pattern (quote it)",
     0, 0, 0, 0, NULL, 0},
    {"--continue", TCX_OPT_FLAG, SELECT_FIELD(resume_table), NULL,
     "keep the rows of an existing --table, written by an interrupted run "
     "with the same grid, data and options, and evaluate only the points "
     "it lacks (no table yet: start from the first point)",
     0, 0, 0, 0, NULL, 0},
    {"--refit", TCX_OPT_FLAG, SELECT_FIELD(refit), NULL,
     "fit the --output model to the training and validation data together", 0,
     0, 0, 0, NULL, 0},
    {"--early-stopping", TCX_OPT_FLAG, SELECT_FIELD(early_stopping), NULL,
     "stop each T-CorEx fit of the grid on the validation data, as 'tcorex "
     "fit --validation' does (--validation-every, --patience); a --refit "
     "runs the whole schedule",
     0, 0, 0, 0, NULL, 0},
    {"--zero-mean", TCX_OPT_FLAG, SELECT_FIELD(zero_mean), NULL,
     "score the validation data as zero-mean, as 'tcorex score --zero-mean'", 0,
     0, 0, 0, NULL, 0},
    {"--factors", TCX_OPT_INT, SELECT_FIELD(fit.factors), "M",
     "number of latent factors (required unless the grid sets factors)", 1,
     1e18, 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void select_defaults(void *values)
{
  select_values *v = values;

  tcx_cli_fit_defaults(&v->fit);
  v->point = -1;
}

static const char *validation_dataset(const select_values *v)
{
  return v->validation_dataset ? v->validation_dataset : v->fit.dataset;
}

/* Checks that every grid point passes the fit's option checks, naming the
 * first point that does not. */
static int check_points(tcx_ctx *ctx, const select_values *v,
                        const tcx_grid *grid)
{
  char inner[1024], description[256];
  int rc = TCX_OK;

  for (int64_t k = 0; k < grid->n_points; k++) {
    fit_values point = v->fit;

    tcx_grid_apply(grid, k, &point);
    if (tcx_cli_fit_check_options(ctx, &point) == TCX_OK)
      continue;
    snprintf(inner, sizeof(inner), "%s", tcx_ctx_message(ctx));
    tcx_grid_describe(grid, k, description, sizeof(description));
    TCX_CHECK(0, ctx, TCX_ERR_USAGE, "grid point %lld (%s): %s", (long long)k,
              description, inner);
  }

cleanup:
  return rc;
}

static int check_files(tcx_ctx *ctx, const select_values *v)
{
  int rc = TCX_OK;

  TCX_TRY(
      tcx_cli_check_distinct(ctx, "--train", v->train, "--table", v->table));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--validation", v->validation, "--table",
                                 v->table));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--train", v->train, "--output",
                                 v->fit.output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--validation", v->validation, "--output",
                                 v->fit.output));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--table", v->table, "--output",
                                 v->fit.output));
  TCX_TRY(tcx_h5_check_output_path(ctx, v->table));
  if (v->fit.output)
    TCX_TRY(tcx_h5_check_output_path(ctx, v->fit.output));

cleanup:
  return rc;
}

/* --from-tables needs the training data only to fit the output model, and
 * the validation data only to refit it. */
static int needs_train(const select_values *v)
{
  return !v->from_tables || v->fit.output;
}

static int needs_validation(const select_values *v)
{
  return !v->from_tables ||
         (v->fit.output && (v->refit || v->early_stopping));
}

/* Checks the command line before any file is read. Not collective. */
static int check_request(tcx_ctx *ctx, const select_values *v,
                         const tcx_grid *grid)
{
  const int need_train = needs_train(v);
  const int need_validation = needs_validation(v);
  int rc = TCX_OK;

  TCX_CHECK(!(v->point >= 0 && v->from_tables), ctx, TCX_ERR_USAGE,
            "give at most one of --point and --from-tables");
  TCX_CHECK(!(v->resume_table && v->from_tables), ctx, TCX_ERR_USAGE,
            "--continue fits the points that --table lacks, and "
            "--from-tables fits none; give one of them");
  TCX_CHECK(!v->resume_table || strpbrk(v->table, "*?[") == NULL, ctx,
            TCX_ERR_USAGE,
            "--table %s contains * ? or [, which --continue cannot read; "
            "choose a table path without them",
            v->table);
  TCX_CHECK(v->point < grid->n_points, ctx, TCX_ERR_USAGE,
            "invalid value for --point: %lld, but the grid has %lld points "
            "(0 to %lld)",
            (long long)v->point, (long long)grid->n_points,
            (long long)grid->n_points - 1);
  TCX_CHECK(!v->refit || v->fit.output, ctx, TCX_ERR_USAGE,
            "--refit applies to the --output model; give --output FILE");
  TCX_CHECK(v->early_stopping ||
                (v->fit.validation_every == 0 && v->fit.patience == 0),
            ctx, TCX_ERR_USAGE,
            "--validation-every and --patience apply with --early-stopping");
  TCX_CHECK(!need_train || v->train, ctx, TCX_ERR_USAGE,
            "missing required option --train FILE%s; see 'tcorex select "
            "--help'",
            v->from_tables ? " (--output fits the best point to it)" : "");
  TCX_CHECK(!need_validation || v->validation, ctx, TCX_ERR_USAGE,
            "missing required option --validation FILE%s; see 'tcorex "
            "select --help'",
            v->from_tables ? " (--refit fits to it, and --early-stopping "
                             "stops on it)"
                           : "");
  TCX_CHECK(v->fit.factors > 0 || tcx_grid_find(grid, "factors") >= 0, ctx,
            TCX_ERR_USAGE,
            "missing --factors M; give it, or add factors to --grid");
  TCX_TRY(check_points(ctx, v, grid));
  TCX_TRY(check_files(ctx, v));

cleanup:
  return rc;
}

/* Rejects grid keys that linear CorEx ignores, because their points would
 * repeat the same fit. */
static int check_linear_keys(tcx_ctx *ctx, const select_values *v,
                             const tcx_grid *grid)
{
  static const char *const tcorex_keys[] = {"l1", "l2", "gamma",
                                            "learning-rate", "max-samples"};
  int rc = TCX_OK;

  for (size_t k = 0; k < sizeof(tcorex_keys) / sizeof(tcorex_keys[0]); k++)
    TCX_CHECK(tcx_grid_find(grid, tcorex_keys[k]) < 0, ctx, TCX_ERR_USAGE,
              "--grid key %s has no effect on linear CorEx, which %s:%s "
              "gets (%s); split the data into periods with --periods NT or "
              "--period-length L, or drop %s from --grid",
              tcorex_keys[k], v->train, v->fit.dataset,
              strcmp(v->fit.method, "linear") == 0 ? "--method linear"
                                                   : "one period",
              tcorex_keys[k]);

cleanup:
  return rc;
}

/* Reads the training data (split as 'tcorex fit' splits it) and the
 * validation data, each when the mode needs it. Collective. */
static int read_data(tcx_ctx *ctx, const select_values *v, const tcx_grid *grid,
                     select_data *data)
{
  const tcx_read_options train = {v->fit.dataset, !isnan(v->fit.missing),
                                  v->fit.missing};
  const tcx_read_options validation = {validation_dataset(v),
                                       !isnan(v->fit.missing), v->fit.missing};
  int rc = TCX_OK;

  if (needs_train(v)) {
    TCX_TRY(tcx_h5_read_block(ctx, v->train, &train, &data->train));
    for (int64_t k = 0; k < grid->n_points && rc == TCX_OK; k++) {
      fit_values point = v->fit;

      tcx_grid_apply(grid, k, &point);
      rc = tcx_cli_fit_check_data(ctx, &point, data->train);
    }
    TCX_TRY(tcx_ctx_agree(ctx, rc));
    if (v->fit.periods > 0 || v->fit.period_length > 0)
      TCX_TRY(tcx_ctx_agree(
          ctx, tcx_block_split_periods(ctx, data->train, v->fit.periods,
                                       v->fit.period_length)));
    if (tcx_cli_fit_is_linear(&v->fit, data->train))
      TCX_TRY(tcx_ctx_agree(ctx, check_linear_keys(ctx, v, grid)));
  }
  if (needs_validation(v)) {
    TCX_TRY(
        tcx_h5_read_block(ctx, v->validation, &validation, &data->validation));
    TCX_CHECK(!data->train || data->validation->n_vars == data->train->n_vars,
              ctx, TCX_ERR_INPUT,
              "%s:%s has %lld variables but %s:%s has %lld; validation data "
              "need the variables of the training data",
              v->validation, validation_dataset(v),
              (long long)data->validation->n_vars, v->train, v->fit.dataset,
              (long long)data->train->n_vars);
  }

cleanup:
  return rc;
}

static int64_t model_iterations(const tcx_model *model)
{
  for (int k = 0; k < model->n_attrs; k++)
    if (strcmp(model->attrs[k].name, "iterations") == 0)
      return model->attrs[k].integer;
  return -1;
}

/* Scores model on a working copy of the validation data, exactly as 'tcorex
 * score' scores a model file. Collective. */
static int score_point(tcx_ctx *ctx, const select_values *v,
                       const fit_values *point, const select_data *data,
                       const tcx_model *model, double *nll, int64_t *n_missing)
{
  tcx_block *validation_copy = NULL;
  double *period_nll = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_select_copy_block(ctx, data->validation, &validation_copy));
  TCX_TRY(
      tcx_ctx_agree(ctx, tcx_cli_score_split(ctx, model->n_periods,
                                             point->period_length,
                                             validation_copy)));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_score_check(ctx, model->n_periods,
                                                 model->n_vars, "of the point",
                                                 validation_copy, v->validation,
                                                 validation_dataset(v))));
  TCX_TRY(tcx_calloc(ctx, validation_copy->n_periods, sizeof(double),
                     "period NLL", &period_nll));
  TCX_TRY(tcx_cli_score_block(ctx, model, v->zero_mean, validation_copy,
                              period_nll, nll, n_missing));

cleanup:
  free(period_nll);
  tcx_block_destroy(&validation_copy);
  return rc;
}

/* Fits point k to the training data. Linear CorEx standardises its block in
 * place, so it gets a working copy. Collective. */
static int fit_point(tcx_ctx *ctx, const select_values *v, const tcx_grid *grid,
                     int64_t k, tcx_block *train,
                     const tcx_block *data_validation, tcx_model **model)
{
  fit_values point = v->fit;
  tcx_block *copy = NULL, *held_out = NULL;
  int rc = TCX_OK;

  tcx_grid_apply(grid, k, &point);
  if (tcx_cli_fit_is_linear(&point, train)) {
    TCX_TRY(tcx_select_copy_block(ctx, train, &copy));
    train = copy;
  } else if (v->early_stopping) {
    /* The rows are split into periods as the scoring splits them. */
    TCX_TRY(tcx_select_copy_block(ctx, data_validation, &held_out));
    TCX_TRY(tcx_ctx_agree(ctx,
                          tcx_cli_score_split(ctx, train->n_periods,
                                              point.period_length, held_out)));
    TCX_TRY(tcx_ctx_agree(
        ctx, tcx_cli_score_check(ctx, train->n_periods, train->n_vars,
                                 "of the training data", held_out,
                                 v->validation, validation_dataset(v))));
    point.validation = held_out;
  }
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_fit_block(ctx, &point, train, model)));

cleanup:
  tcx_block_destroy(&copy);
  tcx_block_destroy(&held_out);
  return rc;
}

/* Fits and scores point k into row. A numerical failure of the fit or the
 * scoring gives NaN and a warning instead of an error, so that one bad
 * point does not end the search. Collective. */
static int evaluate_point(tcx_ctx *ctx, const select_values *v,
                          const tcx_grid *grid, const select_data *data,
                          int64_t k, tcx_grid_row *row, tcx_model **model)
{
  const double start = tcx_time();
  char description[256];
  fit_values point = v->fit;
  int64_t n_missing = 0;
  int rc = TCX_OK;

  tcx_grid_apply(grid, k, &point);
  tcx_grid_describe(grid, k, description, sizeof(description));
  row->point = k;
  row->nll = NAN;
  row->iterations = -1;
  rc = fit_point(ctx, v, grid, k, data->train, data->validation, model);
  if (rc == TCX_OK) {
    row->iterations = model_iterations(*model);
    rc = score_point(ctx, v, &point, data, *model, &row->nll, &n_missing);
  }
  row->seconds = tcx_time() - start;
  /* NOTE: no test makes a point fail numerically, so this branch has only
   * been read, not run. */
  if (rc == TCX_ERR_NUMERIC) {
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: grid point %lld (%s) failed and gets NLL nan: "
            "%s",
            (long long)k, description, tcx_ctx_message(ctx));
    row->nll = NAN;
    rc = TCX_OK;
  }
  TCX_TRY(rc);
  if (n_missing > 0)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %lld missing value(s) in %s:%s were replaced by "
            "the model's mean; the NLL is then lower than on complete data",
            (long long)n_missing, v->validation, validation_dataset(v));
  tcx_log(ctx, TCX_LOG_WARNING,
          "select: point %lld of %lld (%s): validation NLL %.6f after %lld "
          "iterations, %.2f s",
          (long long)k, (long long)grid->n_points, description, row->nll,
          (long long)row->iterations, row->seconds);

cleanup:
  if (rc != TCX_OK || isnan(row->nll))
    tcx_model_destroy(model);
  return rc;
}

/* Writes the table on rank 0. Collective. */
static int write_table(tcx_ctx *ctx, const select_values *v,
                       const tcx_grid *grid, const tcx_grid_row *rows,
                       int64_t n_rows)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_grid_write_table(ctx, v->table, grid, rows, n_rows);
  return tcx_ctx_agree(ctx, rc);
}

/* Returns the row with the lowest NLL, the first of equal ones, or -1 when
 * every NLL is NaN. */
static int64_t best_row(const tcx_grid_row *rows, int64_t n_rows)
{
  int64_t best = -1;

  for (int64_t r = 0; r < n_rows; r++)
    if (!isnan(rows[r].nll) && (best < 0 || rows[r].nll < rows[best].nll))
      best = r;
  return best;
}

/* With --continue and an existing --table, reads its rows on rank 0 into
 * by_point and marks them in done, on every rank. Collective. */
static int read_previous_rows(tcx_ctx *ctx, const select_values *v,
                              const tcx_grid *grid, int64_t first, int64_t end,
                              tcx_grid_row *by_point, int *done)
{
  int exists = 0, count = 0, left = 0;
  int rc = TCX_OK;

  if (!v->resume_table)
    return TCX_OK;
  if (tcx_ctx_rank(ctx) == 0) {
    exists = access(v->table, F_OK) == 0;
    if (exists)
      rc = tcx_grid_read_tables(ctx, v->table, grid, by_point, done);
  }
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY_MPI(ctx, MPI_Bcast(&exists, 1, MPI_INT, 0, tcx_ctx_comm(ctx)));
  if (!exists) {
    tcx_log(ctx, TCX_LOG_PROGRESS,
            "select: --continue: no table %s yet; evaluating every point",
            v->table);
    return TCX_OK;
  }
  TCX_TRY_MPI(ctx, MPI_Bcast(done, (int)grid->n_points, MPI_INT, 0,
                             tcx_ctx_comm(ctx)));
  TCX_TRY_MPI(ctx, MPI_Bcast(by_point,
                             (int)(grid->n_points * sizeof(*by_point)),
                             MPI_BYTE, 0, tcx_ctx_comm(ctx)));
  for (int64_t k = 0; k < grid->n_points; k++)
    count += done[k];
  for (int64_t k = first; k < end; k++)
    left += !done[k];
  tcx_log(ctx, TCX_LOG_WARNING,
          "select: --continue: keeping %d row(s) of %s; %d point(s) to fit",
          count, v->table, left);

cleanup:
  return rc;
}

/* Copies the rows of the points in [first, end) that are done into rows, in
 * point order. Returns their count. The table gets the rows of all points,
 * so that --point K --continue keeps the rows of other points too. */
static int64_t collect_rows(const tcx_grid_row *by_point, const int *done,
                            int64_t first, int64_t end, tcx_grid_row *rows)
{
  int64_t n = 0;

  for (int64_t k = first; k < end; k++)
    if (done[k])
      rows[n++] = by_point[k];
  return n;
}

/* Evaluates every point, or only --point, and rewrites the table after
 * each, so that finished points survive an interrupted job. With
 * --continue, the points of the existing table are kept instead of
 * evaluated again. Keeps the model of the best point in *best unless best
 * is NULL. Leaves *best NULL when the best row is a kept one. Collective. */
static int evaluate_grid(tcx_ctx *ctx, const select_values *v,
                         const tcx_grid *grid, const select_data *data,
                         tcx_grid_row *rows, int64_t *n_rows, tcx_model **best)
{
  const int64_t first = v->point >= 0 ? v->point : 0;
  const int64_t end = v->point >= 0 ? v->point + 1 : grid->n_points;
  tcx_grid_row *by_point = NULL, *table_rows = NULL;
  int *done = NULL;
  tcx_model *model = NULL;
  int64_t best_point = -1, r;
  int rc = TCX_OK;

  *n_rows = 0;
  TCX_TRY(tcx_calloc(ctx, grid->n_points, sizeof(*by_point), "table rows",
                     &by_point));
  TCX_TRY(tcx_calloc(ctx, grid->n_points, sizeof(*table_rows), "table rows",
                     &table_rows));
  TCX_TRY(tcx_calloc(ctx, grid->n_points, sizeof(*done), "table flags",
                     &done));
  TCX_TRY(read_previous_rows(ctx, v, grid, first, end, by_point, done));
  for (int64_t k = first; k < end; k++) {
    if (done[k])
      continue;
    TCX_TRY(evaluate_point(ctx, v, grid, data, k, &by_point[k], &model));
    done[k] = 1;
    *n_rows = collect_rows(by_point, done, first, end, rows);
    r = best_row(rows, *n_rows);
    if (best && model && r >= 0 && rows[r].point == k) {
      tcx_model_destroy(best);
      *best = model;
      model = NULL;
      best_point = k;
    }
    tcx_model_destroy(&model);
    TCX_TRY(write_table(ctx, v, grid, table_rows,
                        collect_rows(by_point, done, 0, grid->n_points,
                                     table_rows)));
  }
  *n_rows = collect_rows(by_point, done, first, end, rows);
  /* A kept row may beat every point fitted here. */
  r = best_row(rows, *n_rows);
  if (best && (r < 0 || rows[r].point != best_point))
    tcx_model_destroy(best);

cleanup:
  tcx_model_destroy(&model);
  free(by_point);
  free(table_rows);
  free(done);
  return rc;
}

/* Reads the tables of --point runs on rank 0, writes the merged table and
 * gives every rank the rows. Collective. */
static int merge_tables(tcx_ctx *ctx, const select_values *v,
                        const tcx_grid *grid, tcx_grid_row *rows)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_grid_read_tables(ctx, v->from_tables, grid, rows, NULL);
  TCX_TRY(tcx_ctx_agree(ctx, rc));
  TCX_TRY(write_table(ctx, v, grid, rows, grid->n_points));
  TCX_TRY_MPI(ctx, MPI_Bcast(rows, (int)(grid->n_points * sizeof(*rows)),
                             MPI_BYTE, 0, tcx_ctx_comm(ctx)));
  tcx_log(ctx, TCX_LOG_PROGRESS, "select: merged %lld rows from %s into %s",
          (long long)grid->n_points, v->from_tables, v->table);

cleanup:
  return rc;
}

/* Fits the output model of point k: to the training data, or with --refit
 * to the training and validation data together. Collective. */
static int fit_output(tcx_ctx *ctx, const select_values *v,
                      const tcx_grid *grid, const select_data *data, int64_t k,
                      tcx_model **model)
{
  fit_values point = v->fit;
  tcx_block *combined = NULL;
  int rc = TCX_OK;

  if (!v->refit)
    return fit_point(ctx, v, grid, k, data->train, data->validation, model);
  tcx_grid_apply(grid, k, &point);
  TCX_TRY(tcx_ctx_agree(ctx, tcx_select_combine(ctx, &point, data->train,
                                                data->validation, v->validation,
                                                &combined)));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "select: refitting point %lld to %lld training and validation "
          "samples",
          (long long)k, (long long)combined->n_rows);
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_fit_block(ctx, &point, combined, model)));

cleanup:
  tcx_block_destroy(&combined);
  return rc;
}

/* Writes the output model of the chosen row, fitting it first unless the
 * search kept it in *model. Collective. */
static int write_output(tcx_ctx *ctx, const select_values *v,
                        const tcx_grid *grid, const select_data *data,
                        const tcx_grid_row *row, tcx_model **model)
{
  const double start = tcx_time();
  char description[256];
  int rc = TCX_OK;

  tcx_grid_describe(grid, row->point, description, sizeof(description));
  if (*model) {
    TCX_TRY(tcx_model_set_double(ctx, *model, "seconds", row->seconds));
  } else {
    if (!v->refit)
      tcx_log(ctx, TCX_LOG_PROGRESS,
              "select: fitting point %lld again for --output; this run did "
              "not keep its model",
              (long long)row->point);
    TCX_TRY(fit_output(ctx, v, grid, data, row->point, model));
    TCX_TRY(tcx_model_set_double(ctx, *model, "seconds", tcx_time() - start));
  }
  TCX_TRY(tcx_model_set_int(ctx, *model, "select_point", row->point));
  TCX_TRY(tcx_model_set_string(ctx, *model, "select_parameters", description));
  TCX_TRY(tcx_model_set_double(ctx, *model, "validation_nll", row->nll));
  TCX_TRY(tcx_model_set_string(ctx, *model, "validation_input",
                               v->validation ? v->validation : ""));
  TCX_TRY(tcx_model_set_int(ctx, *model, "refit", v->refit));
  TCX_TRY(tcx_model_write(ctx, v->fit.output, *model));
  tcx_log(ctx, TCX_LOG_WARNING,
          "select: model of point %lld (%s)%s written "
          "to %s",
          (long long)row->point, description,
          v->refit ? ", refitted to training and validation data," : "",
          v->fit.output);

cleanup:
  return rc;
}

/* NOTE: select installs no signal handler, so SIGTERM or SIGUSR1 ends it at
 * once. The table on disk then contains the rows finished so far. */
static int run_select(tcx_ctx *ctx, void *values)
{
  select_values *v = values;
  select_data data = {NULL, NULL};
  tcx_grid grid = {0};
  tcx_grid_row *rows = NULL;
  tcx_model *model = NULL;
  int64_t n_rows = 0, best = -1;
  char description[256];
  int rc = TCX_OK;

  v->fit.input = v->train;
  TCX_TRY(tcx_ctx_agree(ctx, tcx_grid_parse(ctx, v->grid, &grid)));
  TCX_TRY(tcx_ctx_agree(ctx, check_request(ctx, v, &grid)));
  TCX_TRY(tcx_calloc(ctx, grid.n_points, sizeof(*rows), "table rows", &rows));
  tcx_log(ctx, TCX_LOG_PROGRESS, "select: %lld grid point(s) on %d rank(s)",
          (long long)grid.n_points, tcx_ctx_size(ctx));
  TCX_TRY(read_data(ctx, v, &grid, &data));
  if (v->from_tables) {
    TCX_TRY(merge_tables(ctx, v, &grid, rows));
    n_rows = grid.n_points;
  } else {
    TCX_TRY(evaluate_grid(ctx, v, &grid, &data, rows, &n_rows,
                          v->refit || !v->fit.output ? NULL : &model));
  }

  best = best_row(rows, n_rows);
  if (best < 0 && v->point >= 0 && !v->fit.output)
    goto cleanup; /* the table records the failed point */
  TCX_CHECK(best >= 0, ctx, TCX_ERR_NUMERIC,
            "every grid point failed numerically (validation NLL nan in %s); "
            "try fewer factors or other options",
            v->table);
  tcx_grid_describe(&grid, rows[best].point, description, sizeof(description));
  tcx_log(ctx, TCX_LOG_WARNING,
          "select: best point %lld (%s): validation NLL %.6f; table written "
          "to %s",
          (long long)rows[best].point, description, rows[best].nll, v->table);
  if (v->fit.output)
    TCX_TRY(write_output(ctx, v, &grid, &data, &rows[best], &model));

cleanup:
  tcx_model_destroy(&model);
  tcx_block_destroy(&data.train);
  tcx_block_destroy(&data.validation);
  free(rows);
  tcx_grid_free(&grid);
  return rc;
}

const tcx_command tcx_command_select = {
    "select",
    "Fit a grid of options, score each on validation data, keep the best.",
    "mpirun -n N tcorex select --grid 'l1=0,0.1 gamma=0.3,0.5 factors=16,32' "
    "--train T.h5 --validation V.h5 --table grid.csv [--output BEST.h5] "
    "[--refit] [--point K | --from-tables 'DIR/point_*.csv'] [fit options]",
    select_options,
    run_select,
    sizeof(select_values),
    select_defaults,
    tcx_cli_fit_options,
    offsetof(select_values, fit),
};
