/* Entry point of the tcorex program: MPI start-up, subcommand dispatch,
 * one error message per failed run and the documented exit codes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const tcx_command *const commands[] = {
    &tcx_command_fit,         &tcx_command_score,    &tcx_command_convert,
    &tcx_command_export,      &tcx_command_simulate, &tcx_command_changepoints,
    &tcx_command_covariance,  &tcx_command_baseline, &tcx_command_select,
};
enum { N_COMMANDS = sizeof(commands) / sizeof(commands[0]) };

static void print_main_help(void)
{
  printf("Usage: tcorex COMMAND [OPTIONS]\n"
         "       mpirun -n N tcorex COMMAND [OPTIONS]\n\n"
         "Covariance estimation for high-dimensional time series with linear "
         "CorEx\nand T-CorEx, distributed over MPI ranks by blocks of "
         "variables.\n\nCommands:\n");
  for (int k = 0; k < N_COMMANDS; k++)
    printf("  %-13s %s\n", commands[k]->name, commands[k]->summary);
  printf("\nRun 'tcorex COMMAND --help' for the options of a command.\n"
         "Options: --help, --version.\n\n"
         "Exit codes: 0 success, 1 internal or MPI error, 2 usage error, 3 "
         "input error,\n4 output error, 5 numerical failure, 75 stopped by "
         "SIGTERM or SIGUSR1\n(state saved when --checkpoint is given; "
         "resume with --resume).\n");
}

static const tcx_command *find_command(const char *name)
{
  for (int k = 0; k < N_COMMANDS; k++)
    if (strcmp(commands[k]->name, name) == 0)
      return commands[k];
  return NULL;
}

static int run_command(tcx_ctx *ctx, const tcx_command *command, int argc,
                       char **argv)
{
  tcx_common_options common = {0};
  void *values = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, 1, command->values_size, "options", &values));
  command->set_defaults(values);
  rc = tcx_options_parse(ctx, command, argc, argv, values, &common);
  if (rc == TCX_OK && common.help) {
    if (tcx_ctx_rank(ctx) == 0)
      tcx_options_print_help(command);
    goto cleanup;
  }
  TCX_TRY(rc);
  /* The program shows progress by default; the library alone is quieter. */
  if (common.quiet)
    tcx_ctx_set_log_level(ctx, TCX_LOG_ERROR);
  else if (common.verbose)
    tcx_ctx_set_log_level(ctx, TCX_LOG_DEBUG);
  else
    tcx_ctx_set_log_level(ctx, TCX_LOG_PROGRESS);
  rc = command->run(ctx, values);

cleanup:
  free(values);
  return rc;
}

int main(int argc, char **argv)
{
  tcx_ctx *ctx = NULL;
  const tcx_command *command;
  int rc = TCX_OK;
  int exit_code;

  if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
    fprintf(stderr, "tcorex: error: MPI_Init failed; check the MPI "
                    "installation and launcher\n");
    return TCX_EXIT_INTERNAL;
  }
  if (tcx_ctx_create(MPI_COMM_WORLD, &ctx) != TCX_OK) {
    fprintf(stderr, "tcorex: error: cannot create the MPI context\n");
    MPI_Abort(MPI_COMM_WORLD, TCX_EXIT_INTERNAL);
  }

  if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    if (tcx_ctx_rank(ctx) == 0)
      print_main_help();
    rc = argc < 2 ? tcx_error(ctx, TCX_ERR_USAGE, "no command given") : 0;
  } else if (strcmp(argv[1], "--version") == 0) {
    if (tcx_ctx_rank(ctx) == 0)
      printf("tcorex %s\n", TCX_VERSION);
  } else if (!(command = find_command(argv[1]))) {
    rc = tcx_error(ctx, TCX_ERR_USAGE,
                   "unknown command '%s'; run 'tcorex --help' for the list",
                   argv[1]);
  } else {
    rc = run_command(ctx, command, argc - 2, argv + 2);
  }

  rc = tcx_ctx_agree(ctx, rc);
  /* A stop requested by a signal is the expected end of a walltime, not a
   * failure, so it is reported without the error prefix. */
  if (rc != TCX_OK && tcx_ctx_rank(ctx) == 0 &&
      tcx_ctx_message(ctx)[0] != '\0')
    fprintf(stderr, "tcorex: %s%s\n",
            rc == TCX_ERR_INTERRUPTED ? "" : "error: ", tcx_ctx_message(ctx));
  exit_code = tcx_status_exit_code(rc);
  tcx_ctx_destroy(&ctx);
  MPI_Finalize();
  return exit_code;
}
