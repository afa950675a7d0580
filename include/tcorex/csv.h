/* Numeric CSV tables in, converted to the HDF5 input schema. */
#ifndef TCOREX_CSV_H
#define TCOREX_CSV_H

#include "tcorex/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts the comma-separated table csv_path (one sample per line, one
 * variable per column) to the HDF5 file out_path: /data [T, p] float64,
 * and /columns [p] (fixed-length UTF-8 strings) when the table has a
 * header line. An empty field, NA or NaN (any case) is a missing value and
 * becomes NaN; any other field must be a finite number. Fields may be
 * quoted with double quotes; blank lines are skipped. has_header is 1 or 0,
 * or -1 to treat the first line as a header when one of its fields is
 * neither a number nor a missing value. Runs on rank 0, which keeps the
 * whole table in memory, and every rank returns the same status. Written
 * atomically through out_path.tmp. */
int tcx_csv_convert(tcx_ctx *ctx, const char *csv_path, const char *out_path,
                    int has_header);

#ifdef __cplusplus
}
#endif

#endif
