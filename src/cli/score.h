/* The scoring steps of 'tcorex score' that 'tcorex select' reuses. */
#ifndef TCX_CLI_SCORE_H
#define TCX_CLI_SCORE_H

#include "tcorex/block.h"
#include "tcorex/model.h"

/* Splits a [T, p] block of held-out data for a model with several periods
 * the way 'tcorex fit' split its input: into periods of period_length rows
 * when period_length > 0, otherwise into n_periods (the model's period
 * count) equal blocks. Leaves block unchanged when it already has periods or
 * n_periods is 1.
 * Not collective. */
int tcx_cli_score_split(tcx_ctx *ctx, int n_periods, int64_t period_length,
                        tcx_block *block);

/* Checks that block (input:dataset) has the model's variable count n_vars
 * and, for a model with n_periods > 1, that many periods. Returns TCX_OK or
 * TCX_ERR_INPUT. Not collective. */
int tcx_cli_score_check(tcx_ctx *ctx, int n_periods, int64_t n_vars,
                        const char *model_name, const tcx_block *block,
                        const char *input, const char *dataset);

/* Computes the mean Gaussian negative log-likelihood per sample of each
 * period of block (period_nll has block->n_periods entries) under the
 * model's period of the same index, or its only period, and their
 * unweighted mean over periods. Centres block in place with the model's
 * means, or not at all with zero_mean. A missing value becomes the model's
 * mean, and *n_missing counts them over all ranks. Collective. */
int tcx_cli_score_block(tcx_ctx *ctx, const tcx_model *model, int zero_mean,
                        tcx_block *block, double *period_nll, double *mean_nll,
                        int64_t *n_missing);

#endif
