/* Numeric CSV tables converted to HDF5 on rank 0. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h5io_internal.h"
#include "tcorex/csv.h"

/* A table being read: values grow row by row. */
typedef struct tcx_csv_table {
  const char *path;
  int64_t n_rows;
  int64_t n_cols;     /* 0 until the first line is read */
  int64_t first_line; /* line number that fixed n_cols */
  double *values;     /* [n_rows, n_cols] */
  int64_t capacity;   /* rows that values has room for */
  char **names;       /* n_cols header names, or NULL without a header */
  char separator;     /* tab or semicolon of a first line without commas */
} tcx_csv_table;

/* The fields of one line, pointing into the line's own buffer. */
typedef struct tcx_csv_fields {
  char **field;
  int64_t count;
  int64_t capacity;
} tcx_csv_fields;

static void tcx_csv_table_free(tcx_csv_table *table)
{
  for (int64_t c = 0; table->names && c < table->n_cols; c++)
    free(table->names[c]);
  free(table->names);
  free(table->values);
  table->names = NULL;
  table->values = NULL;
}

/* Appends a field to fields, growing the array. */
static int tcx_csv_push(tcx_ctx *ctx, tcx_csv_fields *fields, char *field)
{
  if (fields->count == fields->capacity) {
    const int64_t capacity = fields->capacity ? 2 * fields->capacity : 16;
    char **grown = realloc(fields->field, (size_t)capacity * sizeof(char *));

    if (!grown)
      return tcx_error(ctx, TCX_ERR_MEMORY,
                       "out of memory splitting a CSV line into %lld fields",
                       (long long)capacity);
    fields->field = grown;
    fields->capacity = capacity;
  }
  fields->field[fields->count++] = field;
  return TCX_OK;
}

static int tcx_csv_is_blank(char c) { return c == ' ' || c == '\t'; }

/* Reads a quoted field starting at *cursor (on the opening quote) and
 * writes its text, with "" turned into ", at out. Leaves *cursor after the
 * closing quote. */
static int tcx_csv_unquote(tcx_ctx *ctx, char **cursor, char *out,
                           const char *path, int64_t line, int64_t column)
{
  char *in = *cursor + 1;

  for (;;) {
    if (*in == '\0')
      return tcx_error(ctx, TCX_ERR_INPUT,
                       "%s line %lld, column %lld: the quote is not closed; "
                       "fields that span lines are not supported",
                       path, (long long)line, (long long)column);
    if (*in == '"' && in[1] == '"') {
      *out++ = '"';
      in += 2;
    } else if (*in == '"') {
      *out = '\0';
      *cursor = in + 1;
      return TCX_OK;
    } else {
      *out++ = *in++;
    }
  }
}

/* Splits line in place at commas into trimmed, unquoted fields. */
static int tcx_csv_split(tcx_ctx *ctx, char *line, const char *path,
                         int64_t line_number, tcx_csv_fields *fields)
{
  char *cursor = line;
  int rc = TCX_OK;

  fields->count = 0;
  for (;;) {
    char *start, *end = NULL;
    int last;

    while (tcx_csv_is_blank(*cursor))
      cursor++;
    start = cursor;
    if (*cursor == '"') {
      /* The unquoted text is written, terminated, from start on. */
      TCX_TRY(tcx_csv_unquote(ctx, &cursor, start, path, line_number,
                              fields->count + 1));
      while (tcx_csv_is_blank(*cursor))
        cursor++;
      TCX_CHECK(*cursor == ',' || *cursor == '\0', ctx, TCX_ERR_INPUT,
                "%s line %lld, column %lld: text after the closing quote",
                path, (long long)line_number,
                (long long)(fields->count + 1));
    } else {
      while (*cursor != ',' && *cursor != '\0')
        cursor++;
      end = cursor;
      while (end > start && tcx_csv_is_blank(end[-1]))
        end--;
    }
    last = *cursor == '\0';
    if (end)
      *end = '\0'; /* may overwrite the comma at cursor */
    TCX_TRY(tcx_csv_push(ctx, fields, start));
    if (last)
      break;
    cursor++;
  }

cleanup:
  return rc;
}

/* Returns 1 when field marks a missing value: empty, NA or NaN. */
static int tcx_csv_is_missing(const char *field)
{
  return field[0] == '\0' || strcasecmp(field, "na") == 0 ||
         strcasecmp(field, "nan") == 0;
}

/* Returns 1 when the whole field is a number. */
static int tcx_csv_is_number(const char *field, double *value)
{
  char *end;

  if (field[0] == '\0')
    return 0;
  *value = strtod(field, &end);
  return *end == '\0';
}

/* Returns 1 when one field of the line is neither a number nor missing. */
static int tcx_csv_looks_like_header(const tcx_csv_fields *fields)
{
  double value;

  for (int64_t c = 0; c < fields->count; c++)
    if (!tcx_csv_is_missing(fields->field[c]) &&
        !tcx_csv_is_number(fields->field[c], &value))
      return 1;
  return 0;
}

/* Copies the header fields into table->names. */
static int tcx_csv_keep_names(tcx_ctx *ctx, tcx_csv_table *table,
                              const tcx_csv_fields *fields)
{
  int rc = TCX_OK;

  TCX_TRY(tcx_calloc(ctx, fields->count, sizeof(char *), "column names",
                     &table->names));
  for (int64_t c = 0; c < fields->count; c++) {
    const size_t length = strlen(fields->field[c]);

    TCX_TRY(tcx_calloc(ctx, (int64_t)length + 1, 1, "column name",
                       &table->names[c]));
    memcpy(table->names[c], fields->field[c], length);
  }

cleanup:
  return rc;
}

/* Makes room for one more row, doubling the capacity when full. */
static int tcx_csv_grow(tcx_ctx *ctx, tcx_csv_table *table)
{
  int64_t capacity;
  double *grown;

  if (table->n_rows < table->capacity)
    return TCX_OK;
  capacity = table->capacity ? 2 * table->capacity : 64;
  if ((uint64_t)capacity * (uint64_t)table->n_cols >
      SIZE_MAX / sizeof(double))
    return tcx_error(ctx, TCX_ERR_MEMORY,
                     "%s: %lld rows of %lld columns overflow the address "
                     "space",
                     table->path, (long long)capacity,
                     (long long)table->n_cols);
  grown = realloc(table->values,
                  (size_t)(capacity * table->n_cols) * sizeof(double));
  if (!grown)
    return tcx_error(ctx, TCX_ERR_MEMORY,
                     "out of memory reading %s: %lld rows of %lld columns",
                     table->path, (long long)capacity,
                     (long long)table->n_cols);
  table->values = grown;
  table->capacity = capacity;
  return TCX_OK;
}

/* Parses one field of a data line into *value. */
static int tcx_csv_parse_field(tcx_ctx *ctx, const tcx_csv_table *table,
                               const char *field, int64_t line, int64_t c,
                               double *value)
{
  const char *name = table->names ? table->names[c] : NULL;
  int rc = TCX_OK;

  if (tcx_csv_is_missing(field)) {
    *value = NAN;
    return TCX_OK;
  }
  TCX_CHECK(tcx_csv_is_number(field, value), ctx, TCX_ERR_INPUT,
            "%s line %lld, column %lld%s%s%s: \"%s\" is not a number; write "
            "a number, or leave the field empty or write NA for a missing "
            "value%s",
            table->path, (long long)line, (long long)(c + 1),
            name ? " (\"" : "", name ? name : "", name ? "\")" : "", field,
            table->separator == '\t'
                ? ". The first line has tabs but no commas: only commas "
                  "separate fields, so replace the tabs with commas"
            : table->separator == ';'
                ? ". The first line has semicolons but no commas: only "
                  "commas separate fields, so replace the semicolons with "
                  "commas"
                : "");
  TCX_CHECK(!isinf(*value), ctx, TCX_ERR_INPUT,
            "%s line %lld, column %lld%s%s%s: \"%s\" is infinite or out of "
            "the range of float64; write a finite number or NA",
            table->path, (long long)line, (long long)(c + 1),
            name ? " (\"" : "", name ? name : "", name ? "\")" : "", field);

cleanup:
  return rc;
}

/* Appends a data line to the table. */
static int tcx_csv_add_row(tcx_ctx *ctx, tcx_csv_table *table,
                           const tcx_csv_fields *fields, int64_t line)
{
  double *row;
  int rc = TCX_OK;

  TCX_CHECK(fields->count == table->n_cols, ctx, TCX_ERR_INPUT,
            "%s line %lld has %lld fields but line %lld has %lld; every line "
            "needs the same number of comma-separated fields",
            table->path, (long long)line, (long long)fields->count,
            (long long)table->first_line, (long long)table->n_cols);
  TCX_TRY(tcx_csv_grow(ctx, table));
  row = table->values + table->n_rows * table->n_cols;
  for (int64_t c = 0; c < fields->count; c++)
    TCX_TRY(tcx_csv_parse_field(ctx, table, fields->field[c], line, c,
                                &row[c]));
  table->n_rows++;

cleanup:
  return rc;
}

/* Strips the line ending and, on the first line, a UTF-8 byte order mark.
 * Returns the start of the text. */
static char *tcx_csv_trim_line(char *line, ssize_t length, int64_t number)
{
  while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
    line[--length] = '\0';
  if (number == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
    return line + 3;
  return line;
}

/* Returns the index of the first byte of line that cannot occur in a text
 * table (a control character other than tab, carriage return, line feed,
 * form feed and vertical tab), or -1 when there is none. */
static ssize_t tcx_csv_find_control(const char *line, ssize_t length)
{
  for (ssize_t k = 0; k < length; k++) {
    const unsigned char c = (unsigned char)line[k];
    const int blank = c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
                      c == '\v';

    if ((c < 0x20 && !blank) || c == 0x7f)
      return k;
  }
  return -1;
}

/* Handles one non-blank line: the header or a data row. */
static int tcx_csv_take_line(tcx_ctx *ctx, tcx_csv_table *table,
                             const tcx_csv_fields *fields, int64_t number,
                             int has_header)
{
  int rc = TCX_OK;

  if (table->n_cols == 0) {
    table->n_cols = fields->count;
    table->first_line = number;
    if (fields->count == 1 && strchr(fields->field[0], '\t'))
      table->separator = '\t';
    else if (fields->count == 1 && strchr(fields->field[0], ';'))
      table->separator = ';';
    if (has_header == 1 ||
        (has_header < 0 && tcx_csv_looks_like_header(fields)))
      return tcx_csv_keep_names(ctx, table, fields);
  }
  TCX_TRY(tcx_csv_add_row(ctx, table, fields, number));

cleanup:
  return rc;
}

/* Reads the whole table from file. */
static int tcx_csv_read_table(tcx_ctx *ctx, FILE *file, int has_header,
                              tcx_csv_table *table)
{
  tcx_csv_fields fields = {NULL, 0, 0};
  char *line = NULL;
  size_t size = 0;
  ssize_t length;
  int64_t number = 0;
  int rc = TCX_OK;

  errno = 0;
  while ((length = getline(&line, &size, file)) >= 0) {
    const ssize_t control = tcx_csv_find_control(line, length);
    char *text;

    TCX_CHECK(control < 0, ctx, TCX_ERR_INPUT,
              "%s line %lld contains the control byte 0x%02x, so it is not "
              "a text table (a binary or compressed file?); pass a "
              "comma-separated text file",
              table->path, (long long)number + 1,
              (unsigned)(unsigned char)line[control < 0 ? 0 : control]);
    text = tcx_csv_trim_line(line, length, ++number);

    if (text[strspn(text, " \t")] == '\0')
      continue;
    TCX_TRY(tcx_csv_split(ctx, text, table->path, number, &fields));
    TCX_TRY(tcx_csv_take_line(ctx, table, &fields, number, has_header));
  }
  TCX_CHECK(!ferror(file), ctx, TCX_ERR_INPUT, "reading %s failed: %s",
            table->path, strerror(errno));
  TCX_CHECK(table->n_rows > 0, ctx, TCX_ERR_INPUT,
            "%s has no data lines; a table needs at least one row of "
            "numbers",
            table->path);

cleanup:
  free(fields.field);
  free(line);
  return rc;
}

/* Writes the table to out_path on this rank alone, atomically. */
static int tcx_csv_write(tcx_ctx *ctx, const tcx_csv_table *table,
                         const char *out_path)
{
  const int64_t dims[2] = {table->n_rows, table->n_cols};
  tcx_h5_output *out = NULL;
  int rc = TCX_OK;

  TCX_TRY(tcx_h5_create_serial(ctx, out_path, &out));
  TCX_TRY(tcx_h5_write_columns(ctx, out, "/data", TCX_H5_DOUBLE, 2, dims, 0,
                               table->n_cols, table->values));
  if (table->names)
    TCX_TRY(tcx_h5_write_strings(ctx, out, "/columns", table->n_cols,
                                 table->names));
  TCX_TRY(tcx_h5_write_attr_string(ctx, out, "source_file", table->path));
  TCX_TRY(tcx_h5_commit(ctx, &out));

cleanup:
  tcx_h5_discard(ctx, &out);
  return rc;
}

/* The whole conversion, on this rank alone. */
static int tcx_csv_convert_here(tcx_ctx *ctx, const char *csv_path,
                                const char *out_path, int has_header)
{
  tcx_csv_table table = {csv_path, 0, 0, 0, NULL, 0, NULL, '\0'};
  FILE *file = NULL;
  int rc = TCX_OK;

  TCX_CHECK(has_header >= -1 && has_header <= 1, ctx, TCX_ERR_INTERNAL,
            "has_header is %d; pass 1, 0 or -1 (detect)", has_header);
  TCX_TRY(tcx_h5_check_output_path(ctx, out_path));
  file = fopen(csv_path, "r");
  TCX_CHECK(file != NULL, ctx, TCX_ERR_INPUT, "%s CSV file %s: %s",
            errno == ENOENT ? "cannot find" : "cannot open", csv_path,
            strerror(errno));
  TCX_TRY(tcx_csv_read_table(ctx, file, has_header, &table));
  TCX_TRY(tcx_csv_write(ctx, &table, out_path));

cleanup:
  if (file)
    fclose(file);
  tcx_csv_table_free(&table);
  return rc;
}

int tcx_csv_convert(tcx_ctx *ctx, const char *csv_path, const char *out_path,
                    int has_header)
{
  int rc = TCX_OK;

  if (tcx_ctx_rank(ctx) == 0)
    rc = tcx_csv_convert_here(ctx, csv_path, out_path, has_header);
  return tcx_ctx_agree(ctx, rc);
}
