/* The grid of 'tcorex select': parsing, point order and value formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "select.h"

/* Numeric fit options that a grid may vary. */
static const char *const grid_keys[] = {
    "factors",       "l1",          "l2",       "gamma",
    "learning-rate", "max-samples", "max-iter", "seed",
};
enum { N_GRID_KEYS = sizeof(grid_keys) / sizeof(grid_keys[0]) };

const char *tcx_grid_key_names(void)
{
  return "factors, l1, l2, gamma, learning-rate, max-samples, max-iter, seed";
}

void tcx_grid_free(tcx_grid *grid)
{
  for (int j = 0; j < grid->n_keys; j++)
    free(grid->keys[j].values);
  memset(grid, 0, sizeof(*grid));
}

int tcx_grid_find(const tcx_grid *grid, const char *name)
{
  for (int j = 0; j < grid->n_keys; j++)
    if (strcmp(grid->keys[j].name, name) == 0)
      return j;
  return -1;
}

static const tcx_option_spec *grid_key_spec(const char *key, size_t length)
{
  char option[40];

  for (int k = 0; k < N_GRID_KEYS; k++)
    if (strlen(grid_keys[k]) == length &&
        strncmp(grid_keys[k], key, length) == 0) {
      snprintf(option, sizeof(option), "--%s", grid_keys[k]);
      return tcx_options_find(tcx_cli_fit_options, option);
    }
  return NULL;
}

/* Parses the comma-separated values of one item into key->values. */
static int parse_values(tcx_ctx *ctx, const char *item, const char *list,
                        tcx_grid_key *key)
{
  char inner[1024];
  const char *start = list;
  int64_t count = 1;
  int rc = TCX_OK;

  TCX_CHECK(list[0] != '\0', ctx, TCX_ERR_USAGE,
            "--grid key %s has no values; give at least one, such as %s=1,2",
            key->name, key->name);
  for (const char *c = list; *c; c++)
    count += *c == ',';
  TCX_TRY(tcx_calloc(ctx, count, sizeof(double), "grid values", &key->values));
  for (int64_t k = 0; k < count; k++) {
    const char *end = strchr(start, ',');
    const size_t length = end ? (size_t)(end - start) : strlen(start);
    char token[128];

    TCX_CHECK(length > 0, ctx, TCX_ERR_USAGE,
              "--grid item '%s' has an empty value; separate values by "
              "single commas, such as %s=1,2",
              item, key->name);
    TCX_CHECK(length < sizeof(token), ctx, TCX_ERR_USAGE,
              "--grid item '%s' has a value of %zu characters; write numbers "
              "in at most %zu",
              item, length, sizeof(token) - 1);
    memcpy(token, start, length);
    token[length] = '\0';
    rc = tcx_options_parse_number(ctx, key->spec, token, &key->values[k]);
    if (rc != TCX_OK) {
      snprintf(inner, sizeof(inner), "%s", tcx_ctx_message(ctx));
      TCX_CHECK(0, ctx, TCX_ERR_USAGE, "in --grid item '%s': %s", item, inner);
    }
    key->n_values++;
    start = end ? end + 1 : start + length;
  }

cleanup:
  return rc;
}

static int parse_item(tcx_ctx *ctx, const char *item, tcx_grid *grid)
{
  const char *equals = strchr(item, '=');
  tcx_grid_key *key;
  size_t length;
  int rc = TCX_OK;

  TCX_CHECK(equals && equals != item, ctx, TCX_ERR_USAGE,
            "invalid --grid item '%s': expected KEY=V1,V2,... such as "
            "l1=0,0.1",
            item);
  length = (size_t)(equals - item);
  TCX_CHECK(grid_key_spec(item, length), ctx, TCX_ERR_USAGE,
            "unknown --grid key '%.*s' in '%s'; accepted keys: %s", (int)length,
            item, item, tcx_grid_key_names());
  TCX_CHECK(grid->n_keys < TCX_GRID_MAX_KEYS, ctx, TCX_ERR_USAGE,
            "--grid has more than %d keys", TCX_GRID_MAX_KEYS);
  key = &grid->keys[grid->n_keys];
  snprintf(key->name, sizeof(key->name), "%.*s", (int)length, item);
  TCX_CHECK(tcx_grid_find(grid, key->name) < 0, ctx, TCX_ERR_USAGE,
            "--grid sets key %s twice; give each key once with all its "
            "values",
            key->name);
  key->spec = grid_key_spec(item, length);
  grid->n_keys++;
  TCX_TRY(parse_values(ctx, item, equals + 1, key));
  TCX_CHECK(grid->n_points <= TCX_GRID_MAX_POINTS / key->n_values, ctx,
            TCX_ERR_USAGE, "--grid has more than %d points; split the search",
            TCX_GRID_MAX_POINTS);
  grid->n_points *= key->n_values;

cleanup:
  return rc;
}

int tcx_grid_parse(tcx_ctx *ctx, const char *text, tcx_grid *grid)
{
  char *copy = NULL, *save = NULL;
  int rc = TCX_OK;

  memset(grid, 0, sizeof(*grid));
  grid->n_points = 1;
  TCX_TRY(tcx_calloc(ctx, (int64_t)strlen(text) + 1, 1, "grid text", &copy));
  memcpy(copy, text, strlen(text) + 1);
  for (char *item = strtok_r(copy, " \t\n", &save); item;
       item = strtok_r(NULL, " \t\n", &save))
    TCX_TRY(parse_item(ctx, item, grid));
  TCX_CHECK(grid->n_keys > 0, ctx, TCX_ERR_USAGE,
            "--grid is empty; give items KEY=V1,V2,... separated by spaces, "
            "such as 'l1=0,0.1 gamma=0.3,0.5'");

cleanup:
  free(copy);
  return rc;
}

double tcx_grid_value(const tcx_grid *grid, int j, int64_t point)
{
  int64_t stride = 1;

  for (int i = j + 1; i < grid->n_keys; i++)
    stride *= grid->keys[i].n_values;
  return grid->keys[j].values[(point / stride) % grid->keys[j].n_values];
}

void tcx_grid_apply(const tcx_grid *grid, int64_t point, fit_values *v)
{
  for (int j = 0; j < grid->n_keys; j++) {
    const tcx_option_spec *spec = grid->keys[j].spec;
    char *field = (char *)v + spec->offset;
    const double value = tcx_grid_value(grid, j, point);

    if (spec->kind == TCX_OPT_INT)
      *(int64_t *)field = (int64_t)value;
    else
      *(double *)field = value;
  }
}

void tcx_grid_format_value(const tcx_grid *grid, int j, int64_t point,
                           char *text, size_t size)
{
  const tcx_grid_key *key = &grid->keys[j];
  const double value = tcx_grid_value(grid, j, point);

  if (key->spec->kind == TCX_OPT_INT) {
    snprintf(text, size, "%lld", (long long)value);
    return;
  }
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, size, "%.*g", digits, value);
    if (strtod(text, NULL) == value)
      return;
  }
}

void tcx_grid_describe(const tcx_grid *grid, int64_t point, char *text,
                       size_t size)
{
  size_t used = 0;

  text[0] = '\0';
  for (int j = 0; j < grid->n_keys && used < size; j++) {
    char value[40];

    tcx_grid_format_value(grid, j, point, value, sizeof(value));
    used += (size_t)snprintf(text + used, size - used, "%s%s=%s",
                             j > 0 ? " " : "", grid->keys[j].name, value);
  }
}

void tcx_grid_format_header(const tcx_grid *grid, char *text, size_t size)
{
  size_t used = (size_t)snprintf(text, size, "point");

  for (int j = 0; j < grid->n_keys && used < size; j++)
    used +=
        (size_t)snprintf(text + used, size - used, ",%s", grid->keys[j].name);
  if (used < size)
    snprintf(text + used, size - used, ",validation_nll,iterations,seconds");
}
