/* Table-driven command-line parsing shared by the subcommands, so that the
 * parser and --help are generated from one table and cannot drift. */
#ifndef TCX_CLI_OPTIONS_H
#define TCX_CLI_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "tcorex/ctx.h"

typedef enum tcx_option_kind {
  TCX_OPT_FLAG,   /* no value; sets an int to 1 */
  TCX_OPT_INT,    /* int64_t within [min, max] */
  TCX_OPT_DOUBLE, /* double within the range given by min, max and openness */
  TCX_OPT_STRING, /* const char * */
  TCX_OPT_CHOICE  /* const char *, one of the '|'-separated choices */
} tcx_option_kind;

typedef struct tcx_option_spec {
  const char *name;    /* "--factors" */
  tcx_option_kind kind;
  size_t offset;       /* offsetof the field in the subcommand's struct */
  const char *metavar; /* "M", shown in --help */
  const char *help;    /* what the option sets, with its unit and default */
  double min, max;     /* accepted range for numbers */
  int min_open;        /* nonzero: min itself is rejected */
  int max_open;        /* nonzero: max itself is rejected */
  const char *choices; /* for TCX_OPT_CHOICE: "standard|outliers|none" */
  int required;
} tcx_option_spec;

/* A subcommand: its name, one line of purpose, the usage line and its
 * option table (terminated by an entry with name NULL). shared_options is
 * NULL or a second table that several commands accept, such as the fit
 * options. Its offsets are relative to shared_offset inside the command's
 * value struct. An entry of options with the same name takes precedence. */
typedef struct tcx_command {
  const char *name;
  const char *summary;
  const char *usage;
  const tcx_option_spec *options;
  int (*run)(tcx_ctx *ctx, void *values);
  size_t values_size;
  void (*set_defaults)(void *values);
  const tcx_option_spec *shared_options;
  size_t shared_offset;
} tcx_command;

/* Options every subcommand accepts. */
typedef struct tcx_common_options {
  int quiet;
  int verbose;
  int help;
} tcx_common_options;

/* Parses argv (after the subcommand name) into values. Returns TCX_OK,
 * or TCX_ERR_USAGE with a message naming the flag and the accepted values.
 * Sets common->help when --help was given (then nothing is validated). */
int tcx_options_parse(tcx_ctx *ctx, const tcx_command *command, int argc,
                      char **argv, void *values, tcx_common_options *common);

/* Returns the entry of the NULL-terminated table options named name (such
 * as "--l1"), or NULL. */
const tcx_option_spec *tcx_options_find(const tcx_option_spec *options,
                                        const char *name);

/* Parses text as the value of the numeric option spec (TCX_OPT_INT or
 * TCX_OPT_DOUBLE) and checks its range. Returns TCX_OK, or TCX_ERR_USAGE
 * with a message naming the option and the accepted range. */
int tcx_options_parse_number(tcx_ctx *ctx, const tcx_option_spec *spec,
                             const char *text, double *number);

/* Prints the subcommand's usage and option table to stdout. */
void tcx_options_print_help(const tcx_command *command);

/* Number of bytes needed for a subcommand's value struct is in
 * command->values_size; the run function receives that struct. */

#endif
