/* tcorex simulate: modular latent factor data with ground truth, written in
 * the input schema by every rank for its own columns. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tcorex/block.h"
#include "tcorex/h5io.h"
#include "tcorex/lowrank.h"
#include "tcorex/simulate.h"

typedef struct simulate_values {
  int64_t variables;
  int64_t factors;
  int64_t periods;
  int64_t train_samples;
  int64_t test_samples;
  int64_t validation_samples;
  const char *change;
  const char *assignment;
  int64_t seed;
  double snr_min, snr_max;
  double scale_min, scale_max;
  const char *output;
} simulate_values;

#define SIM_FIELD(name) offsetof(simulate_values, name)

static const tcx_option_spec simulate_options[] = {
    {"--variables", TCX_OPT_INT, SIM_FIELD(variables), "P",
     "number of variables p (default 128)", 1, 1e15, 0, 0, NULL, 0},
    {"--factors", TCX_OPT_INT, SIM_FIELD(factors), "M",
     "number of latent factors (default 8)", 1, 1e9, 0, 0, NULL, 0},
    {"--periods", TCX_OPT_INT, SIM_FIELD(periods), "NT",
     "number of time periods (default 10)", 1, 1e6, 0, 0, NULL, 0},
    {"--train-samples", TCX_OPT_INT, SIM_FIELD(train_samples), "N",
     "training samples per period, dataset /train (default 16)", 1, 1e12, 0,
     0, NULL, 0},
    {"--test-samples", TCX_OPT_INT, SIM_FIELD(test_samples), "N",
     "test samples per period, dataset /test (default 1000)", 1, 1e12, 0, 0,
     NULL, 0},
    {"--validation-samples", TCX_OPT_INT, SIM_FIELD(validation_samples),
     "N",
     "validation samples per period, dataset /validation, for 'fit "
     "--validation' and 'select' (default 0: none)",
     0, 1e12, 0, 0, NULL, 0},
    {"--change", TCX_OPT_CHOICE, SIM_FIELD(change), "KIND",
     "none, or sudden: fresh parameters from period NT/2 on (default sudden "
     "when NT >= 2, else none)",
     0, 0, 0, 0, "none|sudden", 0},
    {"--assignment", TCX_OPT_CHOICE, SIM_FIELD(assignment), "HOW",
     "variables to factors: random, or blocks of equal size (default random)",
     0, 0, 0, 0, "random|blocks", 0},
    {"--seed", TCX_OPT_INT, SIM_FIELD(seed), "S", "random seed (default 42)",
     0, 9.2e18, 0, 0, NULL, 0},
    {"--snr-min", TCX_OPT_DOUBLE, SIM_FIELD(snr_min), "R",
     "smallest signal-to-noise ratio of a variable (default 0)", 0, INFINITY,
     0, 0, NULL, 0},
    {"--snr-max", TCX_OPT_DOUBLE, SIM_FIELD(snr_max), "R",
     "largest signal-to-noise ratio of a variable (default 5)", 0, INFINITY,
     0, 0, NULL, 0},
    {"--scale-min", TCX_OPT_DOUBLE, SIM_FIELD(scale_min), "S",
     "smallest standard deviation of a variable (default 0.25)", 0, INFINITY,
     1, 0, NULL, 0},
    {"--scale-max", TCX_OPT_DOUBLE, SIM_FIELD(scale_max), "S",
     "largest standard deviation of a variable (default 4)", 0, INFINITY, 1,
     0, NULL, 0},
    {"--output", TCX_OPT_STRING, SIM_FIELD(output), "FILE",
     "HDF5 file to write", 0, 0, 0, 0, NULL, 1},
    {NULL, 0, 0, NULL, NULL, 0, 0, 0, 0, NULL, 0},
};

static void simulate_defaults(void *values)
{
  simulate_values *v = values;
  tcx_simulate_options defaults;

  tcx_simulate_options_default(&defaults);
  v->variables = defaults.n_vars;
  v->factors = defaults.n_factors;
  v->periods = defaults.n_periods;
  v->train_samples = defaults.train_rows;
  v->test_samples = defaults.test_rows;
  v->change = NULL; /* sudden for several periods, none for one */
  v->assignment =
      defaults.assignment == TCX_SIMULATE_ASSIGN_BLOCKS ? "blocks" : "random";
  v->seed = (int64_t)defaults.seed;
  v->snr_min = defaults.snr_min;
  v->snr_max = defaults.snr_max;
  v->scale_min = defaults.scale_min;
  v->scale_max = defaults.scale_max;
}

static void to_simulate_options(const simulate_values *v,
                                tcx_simulate_options *opts)
{
  tcx_simulate_options_default(opts);
  opts->n_vars = v->variables;
  opts->n_factors = v->factors;
  opts->n_periods = (int)v->periods;
  opts->train_rows = v->train_samples;
  opts->test_rows = v->test_samples;
  opts->validation_rows = v->validation_samples;
  if (v->change)
    opts->change = strcmp(v->change, "none") == 0 ? TCX_SIMULATE_CHANGE_NONE
                                                  : TCX_SIMULATE_CHANGE_SUDDEN;
  else
    opts->change = v->periods >= 2 ? TCX_SIMULATE_CHANGE_SUDDEN
                                   : TCX_SIMULATE_CHANGE_NONE;
  opts->assignment = strcmp(v->assignment, "blocks") == 0
                         ? TCX_SIMULATE_ASSIGN_BLOCKS
                         : TCX_SIMULATE_ASSIGN_RANDOM;
  opts->seed = (uint64_t)v->seed;
  opts->snr_min = v->snr_min;
  opts->snr_max = v->snr_max;
  opts->scale_min = v->scale_min;
  opts->scale_max = v->scale_max;
}

/* Generates one part (train, test or validation) for this rank's columns
 * and writes it as [nt, rows, p]. Keeps the block when block_out is not
 * NULL. */
static int write_part(tcx_ctx *ctx, tcx_h5_output *out,
                      const tcx_simulate_options *opts, int part,
                      int64_t col_begin, int64_t n_local,
                      tcx_block **block_out)
{
  const int64_t rows = part == TCX_SIMULATE_TRAIN  ? opts->train_rows
                       : part == TCX_SIMULATE_TEST ? opts->test_rows
                                                   : opts->validation_rows;
  const char *name = part == TCX_SIMULATE_TRAIN  ? "/train"
                     : part == TCX_SIMULATE_TEST ? "/test"
                                                 : "/validation";
  const int64_t dims[3] = {opts->n_periods, rows, opts->n_vars};
  tcx_block *block = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_simulate_block(ctx, opts, part, col_begin, n_local, &block));
  TCX_TRY(tcx_h5_write_columns(ctx, out, name, TCX_H5_DOUBLE, 3, dims,
                               col_begin, n_local, block->data));
  if (block_out) {
    *block_out = block;
    block = NULL;
  }

cleanup:
  tcx_block_destroy(&block);
  return rc;
}

/* Writes /truth/{factor,loading,noise_var} [nt, p] and /truth/test_nll [nt]:
 * the NLL of the test rows under the true covariance, diag(noise_var) +
 * L^T L with one nonzero loading per column. */
static int write_truth(tcx_ctx *ctx, tcx_h5_output *out,
                       const tcx_simulate_options *opts, int64_t col_begin,
                       int64_t n_local, const tcx_block *test)
{
  const int nt = opts->n_periods;
  const int64_t m = opts->n_factors;
  const int64_t dims[2] = {nt, opts->n_vars};
  const int64_t nll_dims[1] = {nt};
  double *loading = NULL, *noise_var = NULL, *l = NULL, *nll = NULL;
  int32_t *factor = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, nt * n_local, sizeof(double), "loadings",
                     &loading));
  TCX_TRY(tcx_calloc(ctx, nt * n_local, sizeof(double), "noise", &noise_var));
  TCX_TRY(tcx_calloc(ctx, nt * n_local, sizeof(int32_t), "factors", &factor));
  TCX_TRY(tcx_calloc(ctx, m * n_local, sizeof(double), "loading matrix", &l));
  TCX_TRY(tcx_calloc(ctx, nt, sizeof(double), "test NLL", &nll));
  for (int t = 0; t < nt; t++) {
    const int64_t first = test->period_begin[t];
    const int64_t rows = test->period_begin[t + 1] - first;

    TCX_TRY(tcx_simulate_truth(ctx, opts, t, col_begin, n_local,
                               loading + t * n_local, noise_var + t * n_local,
                               factor + t * n_local));
    memset(l, 0, (size_t)(m * n_local) * sizeof(double));
    for (int64_t j = 0; j < n_local; j++)
      l[factor[t * n_local + j] * n_local + j] = loading[t * n_local + j];
    TCX_TRY(tcx_lowrank_nll(ctx, m, n_local, l, noise_var + t * n_local, rows,
                            test->data + first * n_local, &nll[t]));
  }
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/truth/factor", TCX_H5_INT32, 2,
                               dims, col_begin, n_local, factor));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/truth/loading", TCX_H5_DOUBLE, 2,
                               dims, col_begin, n_local, loading));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/truth/noise_var", TCX_H5_DOUBLE,
                               2, dims, col_begin, n_local, noise_var));
  TCX_TRY(tcx_h5_write_replicated(ctx, out, "/truth/test_nll", TCX_H5_DOUBLE,
                                  1, nll_dims, nll));
  {
    double mean = 0.0;

    for (int t = 0; t < nt; t++)
      mean += nll[t] / nt;
    TCX_TRY(tcx_h5_write_attr_double(ctx, out, "truth_test_nll", mean));
    tcx_log(ctx, TCX_LOG_PROGRESS,
            "simulate: test NLL under the true covariance %.4f (mean over "
            "%d periods)",
            mean, nt);
  }

cleanup:
  free(loading);
  free(noise_var);
  free(factor);
  free(l);
  free(nll);
  return rc;
}

static int write_attributes(tcx_ctx *ctx, tcx_h5_output *out,
                            const simulate_values *v,
                            const tcx_simulate_options *opts)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "generator",
                                   "tcorex simulate " TCX_VERSION));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "variables", v->variables));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "factors", v->factors));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "periods", v->periods));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "train_samples", v->train_samples));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "test_samples", v->test_samples));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "validation_samples",
                                v->validation_samples));
  TCX_TRY(tcx_h5_write_attr_string(
      ctx, out, "change",
      opts->change == TCX_SIMULATE_CHANGE_NONE ? "none" : "sudden"));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "assignment", v->assignment));
  TCX_TRY(tcx_h5_write_attr_int(ctx, out, "seed", v->seed));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "snr_min", v->snr_min));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "snr_max", v->snr_max));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "scale_min", v->scale_min));
  TCX_TRY(tcx_h5_write_attr_double(ctx, out, "scale_max", v->scale_max));

cleanup:
  return rc;
}

static int run_simulate(tcx_ctx *ctx, void *values)
{
  const simulate_values *v = values;
  tcx_simulate_options opts;
  tcx_h5_output *out = NULL;
  tcx_block *test = NULL;
  int64_t col_begin = 0, n_local = 0;
  int rc = TCX_OK;

  to_simulate_options(v, &opts);
  TCX_TRY(tcx_ctx_agree(ctx, tcx_h5_check_output_path(ctx, v->output)));
  TCX_TRY(tcx_simulate_validate(ctx, &opts));
  TCX_TRY(tcx_partition(ctx, opts.n_vars, tcx_ctx_size(ctx),
                        tcx_ctx_rank(ctx), &col_begin, &n_local));
  TCX_TRY(tcx_h5_create(ctx, v->output, &out));
  TCX_TRY(write_attributes(ctx, out, v, &opts));
  TCX_TRY(write_part(ctx, out, &opts, TCX_SIMULATE_TRAIN, col_begin, n_local,
                     NULL));
  TCX_TRY(write_part(ctx, out, &opts, TCX_SIMULATE_TEST, col_begin, n_local,
                     &test));
  if (opts.validation_rows > 0)
    TCX_TRY(write_part(ctx, out, &opts, TCX_SIMULATE_VALIDATION, col_begin,
                       n_local, NULL));
  TCX_TRY(write_truth(ctx, out, &opts, col_begin, n_local, test));
  TCX_TRY(tcx_h5_commit(ctx, &out));
  tcx_log(ctx, TCX_LOG_WARNING,
          "simulate: wrote %s: /train [%d, %lld, %lld], /test [%d, %lld, "
          "%lld]%s and /truth",
          v->output, opts.n_periods, (long long)opts.train_rows,
          (long long)opts.n_vars, opts.n_periods, (long long)opts.test_rows,
          (long long)opts.n_vars,
          opts.validation_rows > 0 ? ", /validation" : "");

cleanup:
  tcx_h5_discard(ctx, &out);
  tcx_block_destroy(&test);
  return rc;
}

const tcx_command tcx_command_simulate = {
    "simulate",
    "Write modular latent factor data with ground truth (train, test, truth).",
    "mpirun -n N tcorex simulate [--variables P] [--factors M] [--periods NT] "
    "[--train-samples N] [--test-samples N] [--change none|sudden] --output "
    "SIM.h5",
    simulate_options,
    run_simulate,
    sizeof(simulate_values),
    simulate_defaults,
    NULL,
    0,
};
