/* The subcommands of the tcorex program. */
#ifndef TCX_CLI_COMMANDS_H
#define TCX_CLI_COMMANDS_H

#include "options.h"

extern const tcx_command tcx_command_fit;
extern const tcx_command tcx_command_score;
extern const tcx_command tcx_command_convert;
extern const tcx_command tcx_command_export;
extern const tcx_command tcx_command_simulate;
extern const tcx_command tcx_command_covariance;
extern const tcx_command tcx_command_baseline;
extern const tcx_command tcx_command_select;
extern const tcx_command tcx_command_changepoints;


/* Fails with TCX_ERR_INPUT, naming the file as what ("model file") and the
 * flag, when path does not exist or is a folder. Not collective. */
int tcx_cli_check_input(tcx_ctx *ctx, const char *flag, const char *path,
                        const char *what);

/* Returns 1 when a and b name the same file: the same device and inode, or
 * the same path when either does not exist. Not collective. */
int tcx_cli_same_file(const char *a, const char *b);

/* Fails with TCX_ERR_USAGE when output is the same file as input (see
 * tcx_cli_same_file()), so that a run never overwrites its own input. Not
 * collective. */
int tcx_cli_check_distinct(tcx_ctx *ctx, const char *input_flag,
                           const char *input, const char *output_flag,
                           const char *output);

/* Fails with TCX_ERR_INPUT unless path has the root attribute format =
 * "tcorex-model" of a file written by 'tcorex fit'. Collective. */
int tcx_cli_check_model_file(tcx_ctx *ctx, const char *path);

#endif
