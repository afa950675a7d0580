/* tcorex fit: reads a column block per rank, fits linear CorEx (one period)
 * or T-CorEx (several periods) and writes the model atomically. With
 * --checkpoint it saves the optimiser state as it goes, with --resume it
 * continues from such a state, and SIGTERM or SIGUSR1 stop it at the next
 * iteration boundary with exit code 75. */
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fit.h"
#include "score.h"
#include "tcorex/h5io.h"

#define FIT_FIELD(name) offsetof(fit_values, name)

/* The options of 'tcorex fit' that 'tcorex select' does not take: the input
 * and output files and the checkpoint files. */
static const tcx_option_spec fit_file_options[] = {
    {"--input", TCX_OPT_STRING, FIT_FIELD(input), "FILE",
     "HDF5 file with the data, [T, p] or [nt, ns, p]", 0, 0, 0, 0, NULL, 1},
    {"--dataset", TCX_OPT_STRING, FIT_FIELD(dataset), "NAME",
     "dataset inside the input file (default /data)", 0, 0, 0, 0, NULL, 0},
    {"--output", TCX_OPT_STRING, FIT_FIELD(output), "FILE",
     "model file to write (HDF5)", 0, 0, 0, 0, NULL, 1},
    {"--checkpoint", TCX_OPT_STRING, FIT_FIELD(checkpoint_path), "FILE",
     "write the optimiser state to FILE (through FILE.tmp and a rename) "
     "every --checkpoint-every seconds and when SIGTERM or SIGUSR1 stops "
     "the fit",
     0, 0, 0, 0, NULL, 0},
    {"--checkpoint-every", TCX_OPT_DOUBLE, FIT_FIELD(checkpoint_every), "S",
     "seconds between two checkpoints, on rank 0's clock (default: write "
     "only when stopped by a signal)",
     0, INFINITY, 1, 0, NULL, 0},
    {"--resume", TCX_OPT_STRING, FIT_FIELD(resume), "FILE",
     "continue from the checkpoint FILE, written by a run with the same "
     "input and options (it may also be the --checkpoint FILE)",
     0, 0, 0, 0, NULL, 0},
    {"--validation", TCX_OPT_STRING, FIT_FIELD(validation_path), "FILE",
     "T-CorEx: held-out rows of the same variables, split into the data's "
     "periods; the fit keeps the weights with the lowest validation NLL "
     "and stops once it no longer falls",
     0, 0, 0, 0, NULL, 0},
    {"--validation-dataset", TCX_OPT_STRING, FIT_FIELD(validation_dataset),
     "NAME",
     "dataset inside the --validation file (default: the --dataset name)",
     0, 0, 0, 0, NULL, 0},
    {"--holdout", TCX_OPT_INT, FIT_FIELD(holdout), "H",
     "T-CorEx: use the last H rows of every period of the input as the "
     "validation rows instead of a --validation file; the fit sees the "
     "rows before them",
     1, 1e12, 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

const tcx_option_spec tcx_cli_fit_options[] = {
    {"--factors", TCX_OPT_INT, FIT_FIELD(factors), "M",
     "number of latent factors, 1 <= M <= number of variables", 1, 1e18, 0, 0,
     NULL, 1},
    {"--method", TCX_OPT_CHOICE, FIT_FIELD(method), "NAME",
     "auto (T-CorEx when the data have several periods), linear or tcorex "
     "(default auto)",
     0, 0, 0, 0, "auto|linear|tcorex", 0},
    {"--seed", TCX_OPT_INT, FIT_FIELD(seed), "S",
     "seed of the initial weights (default 0)", 0, 9.2e18, 0, 0, NULL, 0},
    {"--max-iter", TCX_OPT_INT, FIT_FIELD(max_iter), "K",
     "maximum iterations per annealing stage (default 10000 for linear "
     "CorEx, 1000 for T-CorEx)",
     1, 1e12, 0, 0, NULL, 0},
    {"--tol", TCX_OPT_DOUBLE, FIT_FIELD(tol), "E",
     "stop a stage when the objective changes by less than E (default "
     "1e-5; T-CorEx: relative change of the windowed mean, default 1e-4)",
     0, INFINITY, 1, 0, NULL, 0},
    {"--no-anneal", TCX_OPT_FLAG, FIT_FIELD(no_anneal), NULL,
     "fit at noise level 0 only, without the annealing stages", 0, 0, 0, 0,
     NULL, 0},
    {"--gaussianize", TCX_OPT_CHOICE, FIT_FIELD(gaussianize), "MODE",
     "linear CorEx preprocessing: standard, outliers (squash |z| > 4) or "
     "none, for data already standardised to unit variance (default "
     "standard)",
     0, 0, 0, 0, "standard|outliers|none", 0},
    {"--missing", TCX_OPT_DOUBLE, FIT_FIELD(missing), "V",
     "treat values equal to V as missing (NaN is always missing)", -INFINITY,
     INFINITY, 0, 0, NULL, 0},
    {"--periods", TCX_OPT_INT, FIT_FIELD(periods), "NT",
     "split a [T, p] input into NT periods of equal length, the last one "
     "taking the remainder",
     1, 1e9, 0, 0, NULL, 0},
    {"--period-length", TCX_OPT_INT, FIT_FIELD(period_length), "L",
     "split a [T, p] input into periods of L rows (the rest forms a last, "
     "shorter period)",
     1, 1e15, 0, 0, NULL, 0},
    {"--l1", TCX_OPT_DOUBLE, FIT_FIELD(l1), "A",
     "T-CorEx: weight of the L1 penalty on differences of consecutive "
     "periods (default 0)",
     0, INFINITY, 0, 0, NULL, 0},
    {"--l2", TCX_OPT_DOUBLE, FIT_FIELD(l2), "B",
     "T-CorEx: weight of the squared L2 penalty on those differences "
     "(default 0)",
     0, INFINITY, 0, 0, NULL, 0},
    {"--gamma", TCX_OPT_DOUBLE, FIT_FIELD(gamma), "G",
     "T-CorEx: period s gets sample weight G^|s-t| in the window of period "
     "t, G in (0, 1] (default 0.5)",
     0, 1, 1, 0, NULL, 0},
    {"--reg-type", TCX_OPT_CHOICE, FIT_FIELD(reg_type), "TYPE",
     "T-CorEx: what the penalties compare: weights, mi or sigma (l2 only) "
     "(default weights)",
     0, 0, 0, 0, "weights|mi|sigma", 0},
    {"--weighted-objective", TCX_OPT_FLAG, FIT_FIELD(weighted_objective), NULL,
     "T-CorEx: measure the reconstruction error on the weighted window "
     "instead of the period's own samples",
     0, 0, 0, 0, NULL, 0},
    {"--max-samples", TCX_OPT_INT, FIT_FIELD(max_samples), "N",
     "T-CorEx: widen a period's window only until it holds N samples "
     "(default: no limit)",
     1, 1e18, 0, 0, NULL, 0},
    {"--no-init", TCX_OPT_FLAG, FIT_FIELD(no_init), NULL,
     "T-CorEx: start from random weights instead of a linear CorEx fit of "
     "all periods pooled",
     0, 0, 0, 0, NULL, 0},
    {"--optimizer", TCX_OPT_CHOICE, FIT_FIELD(optimizer), "NAME",
     "T-CorEx: adam or fista (proximal gradient, exact L1 prox; weights "
     "penalty only) (default adam)",
     0, 0, 0, 0, "adam|fista", 0},
    {"--learning-rate", TCX_OPT_DOUBLE, FIT_FIELD(learning_rate), "R",
     "T-CorEx: Adam step size, or FISTA's first trial step (default 1e-3)",
     0, INFINITY, 1, 0, NULL, 0},
    {"--no-reanneal", TCX_OPT_FLAG, FIT_FIELD(no_reanneal), NULL,
     "T-CorEx: after the annealed linear CorEx initialisation, run only the "
     "final stage at noise level 0",
     0, 0, 0, 0, NULL, 0},
    {"--stopping-window", TCX_OPT_INT, FIT_FIELD(stopping_window), "L",
     "T-CorEx: steps per window of the --tol rule, which compares the mean "
     "objective of the last two windows, 1 <= L <= 50 (default 10)",
     1, 50, 0, 0, NULL, 0},
    {"--init-max-iter", TCX_OPT_INT, FIT_FIELD(init_max_iter), "K",
     "T-CorEx: iterations per annealing stage of the linear CorEx "
     "initialisation (default: --max-iter)",
     1, 1e12, 0, 0, NULL, 0},
    {"--precision", TCX_OPT_CHOICE, FIT_FIELD(precision), "TYPE",
     "T-CorEx: floating-point type of the large matrix products, double or "
     "single (default double)",
     0, 0, 0, 0, "double|single", 0},
    {"--validation-every", TCX_OPT_INT, FIT_FIELD(validation_every), "K",
     "T-CorEx with validation rows: optimiser steps between two validation "
     "checks (default 10)",
     1, 1e12, 0, 0, NULL, 0},
    {"--patience", TCX_OPT_INT, FIT_FIELD(patience), "P",
     "T-CorEx with validation rows: stop after P checks in a row without a "
     "lower validation NLL (default 3)",
     1, 1e12, 0, 0, NULL, 0},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

void tcx_cli_fit_defaults(void *values)
{
  fit_values *v = values;

  v->dataset = "/data";
  v->method = "auto";
  v->tol = NAN;
  v->gaussianize = "standard";
  v->missing = NAN;
  v->gamma = 0.5;
  v->reg_type = "weights";
  v->optimizer = "adam";
  v->learning_rate = NAN;
  v->checkpoint_every = NAN;
  v->precision = "double";
}

/* Set by the handler of SIGTERM and SIGUSR1. A handler receives only the
 * signal number, so it can report only through an object of static storage
 * duration. The C standard allows a handler to store to such an object only
 * when it is a volatile sig_atomic_t or a lock-free atomic. This flag
 * is therefore the one piece of global mutable state in tcorex. It lives in
 * the program, and the library reads it only through the pointer given to
 * tcx_checkpoint_set_stop_flag(). */
static volatile sig_atomic_t fit_stop_requested = 0;

static void fit_request_stop(int signal_number)
{
  (void)signal_number;
  fit_stop_requested = 1;
}

/* Installs fit_request_stop() for SIGTERM (sent by batch systems at the
 * walltime) and SIGUSR1 (their warning signal, forwarded by mpirun). */
static int install_stop_handlers(tcx_ctx *ctx)
{
  const int signals[] = {SIGTERM, SIGUSR1};
  struct sigaction action;

  memset(&action, 0, sizeof(action));
  action.sa_handler = fit_request_stop;
  sigemptyset(&action.sa_mask);
  for (size_t k = 0; k < sizeof(signals) / sizeof(signals[0]); k++)
    if (sigaction(signals[k], &action, NULL) != 0)
      return tcx_error(ctx, TCX_ERR_INTERNAL,
                       "cannot install the handler of signal %d, which "
                       "stops a fit cleanly",
                       signals[k]);
  return TCX_OK;
}

/* Writes the lines of key=value that tie a checkpoint to the input and the
 * preprocessing. The library adds the fit options itself. The input is
 * named by its absolute path, so that a job that resumes from another
 * working folder, or names the file another way, still matches. */
static void format_identity(const fit_values *v, const tcx_block *block,
                            char *text, size_t size)
{
  char *absolute = realpath(v->input, NULL);
  char *held_out =
      v->validation_path ? realpath(v->validation_path, NULL) : NULL;
  const char *validation = held_out            ? held_out
                           : v->validation_path ? v->validation_path
                                                : "";

  snprintf(text, size,
           "input=%s\ndataset=%s\nholdout=%lld\nsamples=%lld\n"
           "variables=%lld\n"
           "periods=%d\nmethod=%s\ngaussianize=%s\nmissing=%.17g\n"
           "split_periods=%lld\nperiod_length=%lld\nvalidation=%s\n"
           "validation_dataset=%s\n",
           absolute ? absolute : v->input, v->dataset, (long long)v->holdout,
           (long long)block->n_rows, (long long)block->n_vars,
           block->n_periods, v->method, v->gaussianize, v->missing,
           (long long)v->periods, (long long)v->period_length, validation,
           v->validation_path ? tcx_cli_fit_validation_dataset(v) : "");
  free(absolute);
  free(held_out);
}

/* Creates the checkpoint object of a fit: output file, resume file and the
 * stop flag of the signal handlers. Collective. */
static int setup_checkpoint(tcx_ctx *ctx, fit_values *v,
                            const tcx_block *block)
{
  char identity[4096];
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, tcx_checkpoint_create(ctx, &v->checkpoint)));
  format_identity(v, block, identity, sizeof(identity));
  TCX_TRY(tcx_checkpoint_set_identity(ctx, v->checkpoint, identity));
  tcx_checkpoint_set_stop_flag(v->checkpoint, &fit_stop_requested);
  if (v->checkpoint_path)
    TCX_TRY(tcx_checkpoint_set_output(
        ctx, v->checkpoint, v->checkpoint_path,
        isnan(v->checkpoint_every) ? 0.0 : v->checkpoint_every));
  if (v->resume)
    TCX_TRY(tcx_checkpoint_set_resume(ctx, v->checkpoint, v->resume));
  TCX_TRY(install_stop_handlers(ctx));

cleanup:
  return rc;
}

int tcx_cli_fit_attributes(tcx_ctx *ctx, const fit_values *v,
                           const tcx_block *block, tcx_model *model)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_model_set_string(ctx, model, "version", TCX_VERSION));
  TCX_TRY(tcx_model_set_string(ctx, model, "input", v->input));
  TCX_TRY(tcx_model_set_string(ctx, model, "dataset", v->dataset));
  TCX_TRY(tcx_model_set_int(ctx, model, "factors", v->factors));
  TCX_TRY(tcx_model_set_int(ctx, model, "seed", v->seed));
  TCX_TRY(tcx_model_set_int(ctx, model, "anneal", !v->no_anneal));
  TCX_TRY(tcx_model_set_double(ctx, model, "missing", v->missing));
  TCX_TRY(tcx_model_set_int(ctx, model, "periods", block->n_periods));
  TCX_TRY(tcx_model_set_int(ctx, model, "period_length", v->period_length));
  TCX_TRY(tcx_model_set_int(ctx, model, "samples", block->n_rows));
  TCX_TRY(tcx_model_set_int(ctx, model, "ranks", tcx_ctx_size(ctx)));

cleanup:
  return rc;
}

int tcx_cli_fit_check_data(tcx_ctx *ctx, const fit_values *v,
                           const tcx_block *block)
{
  int rc = TCX_OK;

  TCX_CHECK(v->factors <= block->n_vars, ctx, TCX_ERR_USAGE,
            "invalid value for --factors: %lld is more than the %lld "
            "variables of %s:%s",
            (long long)v->factors, (long long)block->n_vars, v->input,
            v->dataset);
  TCX_CHECK(block->n_rows >= 2, ctx, TCX_ERR_INPUT,
            "%s:%s has %lld row(s); a fit needs at least 2 samples",
            v->input, v->dataset, (long long)block->n_rows);
  TCX_CHECK(strcmp(v->method, "tcorex") != 0 || block->n_periods > 1 ||
                v->periods > 1 ||
                (v->period_length > 0 && v->period_length < block->n_rows),
            ctx, TCX_ERR_USAGE,
            "--method tcorex needs at least 2 periods: give a [nt, ns, p] "
            "dataset, --periods NT with NT >= 2 or a --period-length shorter "
            "than the %lld rows",
            (long long)block->n_rows);

cleanup:
  return rc;
}

int tcx_cli_fit_check_options(tcx_ctx *ctx, const fit_values *v)
{
  int rc = TCX_OK;

  TCX_CHECK(!(v->periods > 0 && v->period_length > 0), ctx, TCX_ERR_USAGE,
            "give at most one of --periods and --period-length");
  TCX_CHECK(!(strcmp(v->reg_type, "sigma") == 0 && v->l1 > 0), ctx,
            TCX_ERR_USAGE,
            "--reg-type sigma supports --l2 only: its L1 penalty needs all "
            "p^2 covariance entries. Use --l1 0, or --reg-type weights or mi");
  TCX_CHECK(!(strcmp(v->optimizer, "fista") == 0 && v->l1 > 0 &&
              strcmp(v->reg_type, "weights") != 0),
            ctx, TCX_ERR_USAGE,
            "--optimizer fista handles --l1 only with --reg-type weights; use "
            "--optimizer adam, or --l1 0");

cleanup:
  return rc;
}

/* Checks that need no data, so that they fail before any file is read. */
static int check_fit_options(tcx_ctx *ctx, const fit_values *v)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_cli_fit_check_options(ctx, v));
  TCX_TRY(tcx_cli_check_distinct(ctx, "--input", v->input, "--output",
                                 v->output));
  TCX_TRY(tcx_h5_check_output_path(ctx, v->output));
  TCX_CHECK(v->checkpoint_path || isnan(v->checkpoint_every), ctx,
            TCX_ERR_USAGE,
            "--checkpoint-every needs --checkpoint FILE to write to");
  if (v->checkpoint_path) {
    TCX_TRY(tcx_cli_check_distinct(ctx, "--input", v->input, "--checkpoint",
                                   v->checkpoint_path));
    TCX_TRY(tcx_cli_check_distinct(ctx, "--output", v->output,
                                   "--checkpoint", v->checkpoint_path));
    TCX_TRY(tcx_h5_check_output_path(ctx, v->checkpoint_path));
  }
  if (v->resume)
    TCX_TRY(tcx_cli_check_input(ctx, "--resume", v->resume,
                                "checkpoint file"));
  TCX_CHECK(!(v->validation_path && v->holdout > 0), ctx, TCX_ERR_USAGE,
            "--validation and --holdout both give validation rows; use one "
            "of them");
  TCX_CHECK(!v->validation_dataset || v->validation_path, ctx, TCX_ERR_USAGE,
            "--validation-dataset needs --validation FILE with held-out "
            "rows");
  TCX_CHECK(v->validation_path || v->holdout > 0 ||
                (v->validation_every == 0 && v->patience == 0),
            ctx, TCX_ERR_USAGE,
            "--validation-every and --patience need --validation FILE or "
            "--holdout H with held-out rows");
  if (v->validation_path) {
    TCX_TRY(tcx_cli_check_input(ctx, "--validation", v->validation_path,
                                "validation file"));
    TCX_TRY(tcx_cli_check_distinct(ctx, "--validation", v->validation_path,
                                   "--output", v->output));
    TCX_CHECK(!tcx_cli_same_file(v->validation_path, v->input) ||
                  strcmp(tcx_cli_fit_validation_dataset(v), v->dataset) != 0,
              ctx, TCX_ERR_USAGE,
              "--validation %s:%s names the training rows (--input %s, "
              "--dataset %s); give the held-out rows with "
              "--validation-dataset, such as /validation of 'tcorex "
              "simulate'",
              v->validation_path, tcx_cli_fit_validation_dataset(v),
              v->input, v->dataset);
  }

cleanup:
  return rc;
}

const char *tcx_cli_fit_validation_dataset(const fit_values *v)
{
  return v->validation_dataset ? v->validation_dataset : v->dataset;
}

int tcx_cli_fit_read_validation(tcx_ctx *ctx, const fit_values *v,
                                const char *path, const tcx_block *block,
                                tcx_block **validation)
{
  const char *dataset = tcx_cli_fit_validation_dataset(v);
  const tcx_read_options read = {dataset, !isnan(v->missing), v->missing};
  tcx_block *rows = NULL;
  int rc = TCX_OK;

  *validation = NULL;
  TCX_TRY(tcx_h5_read_block(ctx, path, &read, &rows));
  /* The rows are split into periods as 'tcorex score' splits them. */
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_score_split(ctx, block->n_periods,
                                                 v->period_length, rows)));
  TCX_TRY(tcx_ctx_agree(
      ctx, tcx_cli_score_check(ctx, block->n_periods, block->n_vars,
                               "of the training data", rows, path, dataset)));
  *validation = rows;
  rows = NULL;

cleanup:
  tcx_block_destroy(&rows);
  return rc;
}

/* Fails when a column of this rank's block has no observed value, naming
 * it, and counts in *n_constant the columns whose observed values are all
 * equal. Not collective. */
static int check_columns(tcx_ctx *ctx, const fit_values *v,
                         const tcx_block *block, int64_t *n_constant)
{
  const int64_t n_local = block->n_local;
  int64_t *n_observed = NULL;
  double *low = NULL, *high = NULL;
  int rc = TCX_OK;

  *n_constant = 0;
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(int64_t), "observed counts",
                     &n_observed));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "column minima", &low));
  TCX_TRY(tcx_calloc(ctx, n_local, sizeof(double), "column maxima", &high));
  for (int64_t row = 0; row < block->n_rows; row++) {
    const double *x = block->data + row * n_local;

    for (int64_t j = 0; j < n_local; j++) {
      if (isnan(x[j]))
        continue;
      if (n_observed[j] == 0 || x[j] < low[j])
        low[j] = x[j];
      if (n_observed[j] == 0 || x[j] > high[j])
        high[j] = x[j];
      n_observed[j]++;
    }
  }
  for (int64_t j = 0; j < n_local; j++) {
    TCX_CHECK(n_observed[j] > 0, ctx, TCX_ERR_INPUT,
              "%s: dataset \"%s\": column %lld (0-based) has no observed "
              "value: all %lld rows are missing (NaN%s); remove the column "
              "from the input or fill it in",
              v->input, v->dataset, (long long)(block->col_begin + j),
              (long long)block->n_rows,
              isnan(v->missing) ? "" : " or the --missing value");
    if (low[j] == high[j])
      (*n_constant)++;
  }

cleanup:
  free(n_observed);
  free(low);
  free(high);
  return rc;
}

/* Warns when options that only T-CorEx reads were given to a linear fit. */
static void warn_unused_tcorex_options(tcx_ctx *ctx, const fit_values *v)
{
  if (v->l1 > 0 || v->l2 > 0 || v->gamma != 0.5 ||
      strcmp(v->reg_type, "weights") != 0 || v->weighted_objective ||
      v->max_samples > 0 || v->no_init || strcmp(v->optimizer, "adam") != 0 ||
      !isnan(v->learning_rate) || v->no_reanneal || v->init_max_iter > 0 ||
      v->stopping_window > 0 ||
      strcmp(v->precision, "double") != 0)
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: fitting linear CorEx (one period), so --l1, "
            "--l2, --gamma, --reg-type, --weighted-objective, --max-samples, "
            "--no-init, --optimizer, --learning-rate, --no-reanneal, "
            "--stopping-window, --init-max-iter and --precision have no "
            "effect");
}

int tcx_cli_fit_is_linear(const fit_values *v, const tcx_block *block)
{
  return strcmp(v->method, "linear") == 0 || block->n_periods == 1;
}

int tcx_cli_fit_block(tcx_ctx *ctx, const fit_values *v, tcx_block *block,
                      tcx_model **model)
{
  int rc = TCX_OK;

  *model = NULL;
  if (tcx_cli_fit_is_linear(v, block)) {
    TCX_CHECK(!v->validation || block->n_periods > 1, ctx, TCX_ERR_USAGE,
              "validation rows stop T-CorEx fits only, and these data "
              "select linear CorEx (one period); split them into periods "
              "with --periods or --period-length, or leave out the "
              "validation rows");
    TCX_CHECK(!v->validation, ctx, TCX_ERR_USAGE,
              "validation rows stop T-CorEx fits only, and --method linear "
              "fits linear CorEx to the %d periods pooled; use --method "
              "tcorex (or auto), or leave out the validation rows",
              block->n_periods);
    warn_unused_tcorex_options(ctx, v);
    if (block->n_periods > 1)
      tcx_log(ctx, TCX_LOG_WARNING,
              "tcorex: warning: linear CorEx pools the %d periods into one",
              block->n_periods);
    TCX_TRY(tcx_cli_fit_linear(ctx, v, block, model));
  } else
    TCX_TRY(tcx_cli_fit_tcorex(ctx, v, block, model));
  TCX_TRY(tcx_cli_fit_attributes(ctx, v, block, *model));

cleanup:
  if (rc != TCX_OK)
    tcx_model_destroy(model);
  return rc;
}

static int run_fit(tcx_ctx *ctx, void *values)
{
  fit_values *v = values;
  const tcx_read_options read = {v->dataset, !isnan(v->missing), v->missing};
  tcx_block *block = NULL;
  tcx_model *model = NULL;
  const double start = tcx_time();
  int64_t n_constant = 0, n_constant_all = 0;
  int rc = TCX_OK;

  TCX_TRY(tcx_ctx_agree(ctx, check_fit_options(ctx, v)));
  TCX_TRY(tcx_h5_read_block(ctx, v->input, &read, &block));
  TCX_TRY(tcx_ctx_agree(ctx, tcx_cli_fit_check_data(ctx, v, block)));
  TCX_TRY(tcx_ctx_agree(ctx, check_columns(ctx, v, block, &n_constant)));
  TCX_TRY_MPI(ctx, MPI_Allreduce(&n_constant, &n_constant_all, 1, MPI_INT64_T,
                                 MPI_SUM, tcx_ctx_comm(ctx)));
  if (v->periods > 0 || v->period_length > 0)
    TCX_TRY(tcx_block_split_periods(ctx, block, v->periods,
                                    v->period_length));
  tcx_log(ctx, TCX_LOG_PROGRESS,
          "fit: read %lld samples x %lld variables in %d period(s) from "
          "%s:%s on %d rank(s)",
          (long long)block->n_rows, (long long)block->n_vars,
          block->n_periods, v->input, v->dataset, tcx_ctx_size(ctx));
  if (v->validation_path)
    TCX_TRY(tcx_cli_fit_read_validation(ctx, v, v->validation_path, block,
                                        &v->validation));
  if (v->holdout > 0) {
    TCX_TRY(tcx_block_hold_out(ctx, block, v->holdout, &v->validation));
    tcx_log(ctx, TCX_LOG_PROGRESS,
            "fit: the last %lld rows of every period are validation rows; "
            "%lld rows remain for the fit",
            (long long)v->holdout, (long long)block->n_rows);
  }
  TCX_TRY(setup_checkpoint(ctx, v, block));

  /* The linear path warns from its own standardisation. */
  if (n_constant_all > 0 && !tcx_cli_fit_is_linear(v, block))
    tcx_log(ctx, TCX_LOG_WARNING,
            "tcorex: warning: %lld constant variable(s) in %s:%s are kept; "
            "they carry no correlation",
            (long long)n_constant_all, v->input, v->dataset);
  TCX_TRY(tcx_cli_fit_block(ctx, v, block, &model));
  TCX_TRY(tcx_model_set_double(ctx, model, "seconds", tcx_time() - start));
  TCX_TRY(tcx_model_write(ctx, v->output, model));
  tcx_log(ctx, TCX_LOG_WARNING, "fit: model written to %s after %.2f s",
          v->output, tcx_time() - start);

cleanup:
  tcx_checkpoint_destroy(&v->checkpoint);
  tcx_block_destroy(&v->validation);
  tcx_model_destroy(&model);
  tcx_block_destroy(&block);
  return rc;
}

const tcx_command tcx_command_fit = {
    "fit",
    "Fit linear CorEx or T-CorEx to an HDF5 dataset and write the model.",
    "mpirun -n N tcorex fit --input D.h5 [--dataset /data] --factors M "
    "--output MODEL.h5 [--periods NT | --period-length L] [--l1 A] [--gamma "
    "G] [--validation FILE | --holdout H] [--checkpoint FILE "
    "[--checkpoint-every S]] "
    "[--resume FILE] "
    "[options]",
    fit_file_options,
    run_fit,
    sizeof(fit_values),
    tcx_cli_fit_defaults,
    tcx_cli_fit_options,
    0,
};
