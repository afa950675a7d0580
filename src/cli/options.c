#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static const tcx_option_spec *find_option(const tcx_option_spec *options,
                                          const char *name, size_t length)
{
  for (const tcx_option_spec *spec = options; spec->name; spec++)
    if (strlen(spec->name) == length && strncmp(spec->name, name, length) == 0)
      return spec;
  return NULL;
}

static void format_range(const tcx_option_spec *spec, char *text, size_t size)
{
  if (spec->kind == TCX_OPT_INT) {
    if (spec->max >= 1e15) /* an upper bound only against overflow */
      snprintf(text, size, "an integer >= %.0f", spec->min);
    else
      snprintf(text, size, "an integer in [%.0f, %.0f]", spec->min, spec->max);
    return;
  }
  if (isinf(spec->max) && isinf(spec->min))
    snprintf(text, size, "a finite number");
  else if (isinf(spec->max))
    snprintf(text, size, "a number %s %g", spec->min_open ? ">" : ">=",
             spec->min);
  else
    snprintf(text, size, "a number in %c%g, %g%c", spec->min_open ? '(' : '[',
             spec->min, spec->max, spec->max_open ? ')' : ']');
}

static int choice_matches(const char *choices, const char *value)
{
  const size_t length = strlen(value);
  const char *start = choices;

  while (*start) {
    const char *end = strchr(start, '|');
    const size_t choice_length = end ? (size_t)(end - start) : strlen(start);

    if (choice_length == length && strncmp(start, value, length) == 0)
      return 1;
    if (!end)
      break;
    start = end + 1;
  }
  return 0;
}

const tcx_option_spec *tcx_options_find(const tcx_option_spec *options,
                                        const char *name)
{
  return find_option(options, name, strlen(name));
}

int tcx_options_parse_number(tcx_ctx *ctx, const tcx_option_spec *spec,
                             const char *text, double *number)
{
  char range[128];
  char *end = NULL;
  double value;

  format_range(spec, range, sizeof(range));
  errno = 0;
  if (spec->kind == TCX_OPT_INT) {
    long long integer = strtoll(text, &end, 10);

    value = (double)integer;
    if (end == text || *end != '\0')
      return tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid value for %s: '%s' is not an integer; "
                       "expected %s",
                       spec->name, text, range);
    if (errno == ERANGE)
      return tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid value for %s: %s is out of range; expected %s",
                       spec->name, text, range);
  } else {
    value = strtod(text, &end);
    if (end == text || *end != '\0')
      return tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid value for %s: '%s' is not a number; expected "
                       "%s",
                       spec->name, text, range);
    if (!isfinite(value))
      return tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid value for %s: %s is not finite; expected %s",
                       spec->name, text, range);
    /* strtod sets ERANGE on underflow too (1e-400 becomes 0 or a
     * subnormal), so only an overflow is out of range here. */
    if (errno == ERANGE && fabs(value) > 1.0)
      return tcx_error(ctx, TCX_ERR_USAGE,
                       "invalid value for %s: %s is out of range; expected %s",
                       spec->name, text, range);
  }
  if (value < spec->min || (spec->min_open && value == spec->min) ||
      value > spec->max || (spec->max_open && value == spec->max))
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "invalid value for %s: %s is out of range; expected %s",
                     spec->name, text, range);
  *number = value;
  return TCX_OK;
}

static int store_value(tcx_ctx *ctx, const tcx_option_spec *spec,
                       const char *text, void *values)
{
  char *field = (char *)values + spec->offset;
  double number = 0;
  int rc = TCX_OK;

  switch (spec->kind) {
  case TCX_OPT_FLAG:
    *(int *)field = 1;
    break;
  case TCX_OPT_INT:
    TCX_TRY(tcx_options_parse_number(ctx, spec, text, &number));
    *(int64_t *)field = (int64_t)number;
    break;
  case TCX_OPT_DOUBLE:
    TCX_TRY(tcx_options_parse_number(ctx, spec, text, &number));
    *(double *)field = number;
    break;
  case TCX_OPT_CHOICE:
    TCX_CHECK(choice_matches(spec->choices, text), ctx, TCX_ERR_USAGE,
              "invalid value for %s: '%s'; expected one of %s", spec->name,
              text, spec->choices);
    *(const char **)field = text;
    break;
  case TCX_OPT_STRING:
    TCX_CHECK(text[0] != '\0', ctx, TCX_ERR_USAGE,
              "invalid value for %s: the value is empty", spec->name);
    *(const char **)field = text;
    break;
  }

cleanup:
  return rc;
}

static int parse_common(const char *arg, tcx_common_options *common)
{
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
    common->help = 1;
  else if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0)
    common->quiet = 1;
  else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0)
    common->verbose++;
  else
    return 0;
  return 1;
}

static ptrdiff_t table_size(const tcx_option_spec *table)
{
  ptrdiff_t count = 0;

  while (table && table[count].name)
    count++;
  return count;
}

/* Finds an option of the command: its own table first, then the shared one.
 * *shared is set to 1 when the entry comes from the shared table. */
static const tcx_option_spec *find_command_option(const tcx_command *command,
                                                  const char *name,
                                                  size_t length, int *shared)
{
  const tcx_option_spec *spec = find_option(command->options, name, length);

  *shared = 0;
  if (spec || !command->shared_options)
    return spec;
  *shared = 1;
  return find_option(command->shared_options, name, length);
}

/* Checks the required options of one table; seen is indexed like table. A
 * shared option that the command's own table shadows is not checked. */
static int check_required(tcx_ctx *ctx, const tcx_command *command,
                          const tcx_option_spec *table,
                          const unsigned char *seen)
{
  int rc = TCX_OK;

  for (const tcx_option_spec *spec = table; spec->name; spec++)
    TCX_CHECK(!spec->required || seen[spec - table] ||
                  (table != command->options &&
                   tcx_options_find(command->options, spec->name)),
              ctx, TCX_ERR_USAGE,
              "missing required option %s %s; see 'tcorex %s --help'",
              spec->name, spec->metavar, command->name);

cleanup:
  return rc;
}

int tcx_options_parse(tcx_ctx *ctx, const tcx_command *command, int argc,
                      char **argv, void *values, tcx_common_options *common)
{
  /* seen[0..63]: the command's own options; seen[64..127]: shared ones. */
  unsigned char seen[128] = {0};
  int rc = TCX_OK;

  TCX_CHECK(table_size(command->options) < 64 &&
                table_size(command->shared_options) < 64,
            ctx, TCX_ERR_INTERNAL,
            "option tables of 'tcorex %s' have 64 entries or more; enlarge "
            "seen[] in tcx_options_parse",
            command->name);
  for (int k = 0; k < argc; k++)
    if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
      common->help = 1;
      return TCX_OK;
    }

  for (int k = 0; k < argc; k++) {
    const char *arg = argv[k];
    const char *equals = strchr(arg, '=');
    const size_t name_length = equals ? (size_t)(equals - arg) : strlen(arg);
    const tcx_option_spec *spec;
    const char *text = NULL;
    int shared = 0;

    if (parse_common(arg, common))
      continue;
    TCX_CHECK(arg[0] != '-' || arg[1] == '-', ctx, TCX_ERR_USAGE,
              "unknown option '%s' for 'tcorex %s'; see 'tcorex %s --help'",
              arg, command->name, command->name);
    TCX_CHECK(strncmp(arg, "--", 2) == 0, ctx, TCX_ERR_USAGE,
              "unexpected argument '%s'; options start with --, see "
              "'tcorex %s --help'",
              arg, command->name);
    spec = find_command_option(command, arg, name_length, &shared);
    TCX_CHECK(spec, ctx, TCX_ERR_USAGE,
              "unknown option '%.*s' for 'tcorex %s'; see 'tcorex %s --help'",
              (int)name_length, arg, command->name, command->name);
    if (spec->kind == TCX_OPT_FLAG) {
      TCX_CHECK(!equals, ctx, TCX_ERR_USAGE,
                "option %s takes no value, got '%s'", spec->name, arg);
    } else if (equals) {
      text = equals + 1;
    } else {
      TCX_CHECK(k + 1 < argc, ctx, TCX_ERR_USAGE,
                "option %s needs a value (%s)", spec->name, spec->metavar);
      text = argv[++k];
    }
    if (shared) {
      TCX_TRY(store_value(ctx, spec, text,
                          (char *)values + command->shared_offset));
      seen[64 + (spec - command->shared_options)] = 1;
    } else {
      TCX_TRY(store_value(ctx, spec, text, values));
      seen[spec - command->options] = 1;
    }
  }

  TCX_CHECK(!(common->quiet && common->verbose), ctx, TCX_ERR_USAGE,
            "give at most one of --quiet and --verbose");
  TCX_TRY(check_required(ctx, command, command->options, seen));
  if (command->shared_options)
    TCX_TRY(check_required(ctx, command, command->shared_options, seen + 64));

cleanup:
  return rc;
}

static void print_option(const tcx_option_spec *spec)
{
  char left[64];

  if (spec->kind == TCX_OPT_FLAG)
    snprintf(left, sizeof(left), "%s", spec->name);
  else
    snprintf(left, sizeof(left), "%s %s", spec->name, spec->metavar);
  printf("  %-24s %s%s\n", left, spec->help,
         spec->required ? " (required)" : "");
}

void tcx_options_print_help(const tcx_command *command)
{
  printf("Usage: %s\n\n%s\n\nOptions:\n", command->usage, command->summary);
  for (const tcx_option_spec *spec = command->options; spec->name; spec++)
    print_option(spec);
  if (command->shared_options)
    for (const tcx_option_spec *spec = command->shared_options; spec->name;
         spec++)
      if (!tcx_options_find(command->options, spec->name))
        print_option(spec);
  printf("  %-24s %s\n", "-q, --quiet", "print errors only (default: progress at most once a second)");
  printf("  %-24s %s\n", "-v, --verbose",
         "also print per-iteration detail");
  printf("  %-24s %s\n", "-h, --help", "print this help and exit");
}
