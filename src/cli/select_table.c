/* The CSV table of 'tcorex select': written by --table, read back and
 * checked against the grid by --from-tables. */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "select.h"

static int write_rows(FILE *file, const tcx_grid *grid,
                      const tcx_grid_row *rows, int64_t n_rows)
{
  char header[512];

  tcx_grid_format_header(grid, header, sizeof(header));
  fprintf(file, "%s\n", header);
  for (int64_t r = 0; r < n_rows; r++) {
    fprintf(file, "%lld", (long long)rows[r].point);
    for (int j = 0; j < grid->n_keys; j++) {
      char value[40];

      tcx_grid_format_value(grid, j, rows[r].point, value, sizeof(value));
      fprintf(file, ",%s", value);
    }
    fprintf(file, ",%.17g,%lld,%.3f\n", rows[r].nll,
            (long long)rows[r].iterations, rows[r].seconds);
  }
  if (fflush(file) != 0 || ferror(file) || fsync(fileno(file)) != 0)
    return -1;
  return 0;
}

int tcx_grid_write_table(tcx_ctx *ctx, const char *path, const tcx_grid *grid,
                         const tcx_grid_row *rows, int64_t n_rows)
{
  char temporary[4096];
  FILE *file = NULL;
  int written;
  int rc = TCX_OK;

  TCX_CHECK(snprintf(temporary, sizeof(temporary), "%s.tmp", path) <
                (int)sizeof(temporary),
            ctx, TCX_ERR_USAGE, "table path %.80s... is too long", path);
  file = fopen(temporary, "w");
  TCX_CHECK(file, ctx, TCX_ERR_OUTPUT,
            "cannot create table %s: %s; check that its folder exists and is "
            "writable",
            temporary, strerror(errno));
  written = write_rows(file, grid, rows, n_rows) == 0;
  written = fclose(file) == 0 && written;
  file = NULL;
  TCX_CHECK(written, ctx, TCX_ERR_OUTPUT,
            "cannot write table %s: %s; check the free space of its folder",
            temporary, strerror(errno));
  TCX_CHECK(rename(temporary, path) == 0, ctx, TCX_ERR_OUTPUT,
            "cannot rename table %s to %s: %s", temporary, path,
            strerror(errno));

cleanup:
  if (file)
    fclose(file);
  if (rc != TCX_OK)
    remove(temporary);
  return rc;
}

/* Where each point's row was read, for messages about duplicates. */
typedef struct table_source {
  int *file; /* glob index of the file, -1: not read yet */
  int64_t *line;
} table_source;

/* Splits line at commas in place; returns the number of fields, at most
 * max_fields (a further field is counted but not stored). */
static int split_fields(char *line, char **fields, int max_fields)
{
  int count = 0;
  char *start = line;

  for (;;) {
    char *comma = strchr(start, ',');

    if (count < max_fields)
      fields[count] = start;
    count++;
    if (!comma)
      return count;
    *comma = '\0';
    start = comma + 1;
  }
}

static int parse_integer(const char *text, int64_t *value)
{
  char *end = NULL;

  errno = 0;
  *value = strtoll(text, &end, 10);
  return end != text && *end == '\0' && errno == 0;
}

static int parse_double(const char *text, double *value)
{
  char *end = NULL;

  *value = strtod(text, &end);
  return end != text && *end == '\0';
}

/* Parses one data line of path into row, checking it against the grid. */
static int parse_row(tcx_ctx *ctx, const tcx_grid *grid, const char *path,
                     int64_t line_number, char *line, tcx_grid_row *row)
{
  const int n_fields = grid->n_keys + 4;
  char *fields[TCX_GRID_MAX_KEYS + 4];
  int count;
  int rc = TCX_OK;

  count = split_fields(line, fields, n_fields);
  TCX_CHECK(count == n_fields, ctx, TCX_ERR_INPUT,
            "%s line %lld has %d field%s, expected %d (point, %d grid "
            "parameters, validation_nll, iterations, seconds)",
            path, (long long)line_number, count, count == 1 ? "" : "s",
            n_fields, grid->n_keys);
  TCX_CHECK(parse_integer(fields[0], &row->point) && row->point >= 0 &&
                row->point < grid->n_points,
            ctx, TCX_ERR_INPUT,
            "%s line %lld: point '%s' is not an index of the grid's %lld "
            "points (0 to %lld)",
            path, (long long)line_number, fields[0], (long long)grid->n_points,
            (long long)grid->n_points - 1);
  for (int j = 0; j < grid->n_keys; j++) {
    char expected[40];
    double value;

    tcx_grid_format_value(grid, j, row->point, expected, sizeof(expected));
    TCX_CHECK(parse_double(fields[1 + j], &value) &&
                  value == tcx_grid_value(grid, j, row->point),
              ctx, TCX_ERR_INPUT,
              "%s line %lld: point %lld has %s=%s but the grid gives %s=%s; "
              "the table was written for another --grid",
              path, (long long)line_number, (long long)row->point,
              grid->keys[j].name, fields[1 + j], grid->keys[j].name, expected);
  }
  TCX_CHECK(parse_double(fields[grid->n_keys + 1], &row->nll) &&
                parse_integer(fields[grid->n_keys + 2], &row->iterations) &&
                parse_double(fields[grid->n_keys + 3], &row->seconds),
            ctx, TCX_ERR_INPUT,
            "%s line %lld: validation_nll, iterations or seconds ('%s', '%s', "
            "'%s') is not a number",
            path, (long long)line_number, fields[grid->n_keys + 1],
            fields[grid->n_keys + 2], fields[grid->n_keys + 3]);

cleanup:
  return rc;
}

/* Stores row unless its point was read before; a repeated point must have
 * the same result. */
static int store_row(tcx_ctx *ctx, const glob_t *files, int file,
                     int64_t line_number, const tcx_grid_row *row,
                     tcx_grid_row *rows, table_source *source)
{
  const int64_t k = row->point;
  int same;
  int rc = TCX_OK;

  if (source->file[k] < 0) {
    rows[k] = *row;
    source->file[k] = file;
    source->line[k] = line_number;
    return TCX_OK;
  }
  same = (rows[k].nll == row->nll || (isnan(rows[k].nll) && isnan(row->nll))) &&
         rows[k].iterations == row->iterations;
  TCX_CHECK(same, ctx, TCX_ERR_INPUT,
            "point %lld has different results in %s line %lld and %s line "
            "%lld; remove the stale row, or with --from-tables the stale "
            "file, or narrow the pattern",
            (long long)k, files->gl_pathv[source->file[k]],
            (long long)source->line[k], files->gl_pathv[file],
            (long long)line_number);

cleanup:
  return rc;
}

/* Copies text into printable for a message: at most size - 4 characters,
 * each one that is not printable ASCII replaced by '?', and "..." when cut. */
static void show_text(const char *text, char *printable, size_t size)
{
  size_t n = 0;

  for (; text[n] && n + 4 < size; n++)
    printable[n] = text[n] >= 0x20 && text[n] < 0x7f ? text[n] : '?';
  if (text[n]) {
    memcpy(printable + n, "...", 3);
    n += 3;
  }
  printable[n] = '\0';
}

static int read_table(tcx_ctx *ctx, const tcx_grid *grid, const glob_t *files,
                      int file, tcx_grid_row *rows, table_source *source)
{
  const char *path = files->gl_pathv[file];
  char header[512];
  char *line = NULL;
  size_t capacity = 0;
  ssize_t length;
  int64_t line_number = 0;
  FILE *stream = NULL;
  int rc = TCX_OK;

  tcx_grid_format_header(grid, header, sizeof(header));
  stream = fopen(path, "r");
  TCX_CHECK(stream, ctx, TCX_ERR_INPUT, "cannot open table %s: %s", path,
            strerror(errno));
  while ((length = getline(&line, &capacity, stream)) >= 0) {
    tcx_grid_row row;

    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
      line[--length] = '\0';
    line_number++;
    if (line_number == 1) {
      char printable[64];

      show_text(line, printable, sizeof(printable));
      TCX_CHECK(strcmp(line, header) == 0, ctx, TCX_ERR_INPUT,
                "%s starts with '%s' but the grid's table header is '%s'; "
                "give the --grid of the runs that wrote it, keys in the same "
                "order, or check that the file is a table of 'tcorex select'",
                path, printable, header);
      continue;
    }
    if (length == 0)
      continue;
    TCX_TRY(parse_row(ctx, grid, path, line_number, line, &row));
    TCX_TRY(store_row(ctx, files, file, line_number, &row, rows, source));
  }
  TCX_CHECK(!ferror(stream), ctx, TCX_ERR_INPUT, "cannot read table %s: %s",
            path, strerror(errno));
  TCX_CHECK(line_number > 0, ctx, TCX_ERR_INPUT,
            "table %s is empty; it should start with the header '%s'", path,
            header);

cleanup:
  free(line);
  if (stream)
    fclose(stream);
  return rc;
}

/* Lists the points that no table had, as "3, 7-9", into text. */
static int64_t list_missing(const table_source *source, int64_t n_points,
                            char *text, size_t size)
{
  size_t used = 0;
  int64_t missing = 0;
  int truncated = 0;

  text[0] = '\0';
  for (int64_t k = 0; k < n_points; k++) {
    int64_t last = k;

    if (source->file[k] >= 0)
      continue;
    while (last + 1 < n_points && source->file[last + 1] < 0)
      last++;
    missing += last - k + 1;
    if (used + 48 < size) {
      if (last == k)
        used += (size_t)snprintf(text + used, size - used, "%s%lld",
                                 used ? ", " : "", (long long)k);
      else
        used +=
            (size_t)snprintf(text + used, size - used, "%s%lld-%lld",
                             used ? ", " : "", (long long)k, (long long)last);
    } else if (!truncated) {
      used += (size_t)snprintf(text + used, size - used, ", ...");
      truncated = 1;
    }
    k = last;
  }
  return missing;
}

int tcx_grid_read_tables(tcx_ctx *ctx, const char *pattern,
                         const tcx_grid *grid, tcx_grid_row *rows,
                         int *present)
{
  glob_t files = {0};
  table_source source = {NULL, NULL};
  char missing_text[1024];
  int64_t n_missing;
  int found;
  int rc = TCX_OK;

  found = glob(pattern, 0, NULL, &files);
  TCX_CHECK(found != GLOB_NOMATCH, ctx, TCX_ERR_INPUT,
            "no file matches --from-tables '%s'; check the pattern and that "
            "the --point runs wrote their tables",
            pattern);
  TCX_CHECK(found == 0, ctx, TCX_ERR_INPUT,
            "cannot expand --from-tables '%s' (glob error %d); check that the "
            "folder is readable",
            pattern, found);
  TCX_TRY(tcx_calloc(ctx, grid->n_points, sizeof(int), "table sources",
                     &source.file));
  TCX_TRY(tcx_calloc(ctx, grid->n_points, sizeof(int64_t), "table lines",
                     &source.line));
  for (int64_t k = 0; k < grid->n_points; k++)
    source.file[k] = -1;
  for (size_t f = 0; f < files.gl_pathc; f++)
    TCX_TRY(read_table(ctx, grid, &files, (int)f, rows, &source));

  if (present) {
    for (int64_t k = 0; k < grid->n_points; k++)
      present[k] = source.file[k] >= 0;
    goto cleanup;
  }
  n_missing =
      list_missing(&source, grid->n_points, missing_text, sizeof(missing_text));
  TCX_CHECK(n_missing == 0, ctx, TCX_ERR_INPUT,
            "the %zu table(s) matching '%s' have no row for %lld of the %lld "
            "grid points: %s (counted from 0); run 'tcorex select --point K' "
            "for each",
            files.gl_pathc, pattern, (long long)n_missing,
            (long long)grid->n_points, missing_text);

cleanup:
  free(source.file);
  free(source.line);
  globfree(&files);
  return rc;
}
