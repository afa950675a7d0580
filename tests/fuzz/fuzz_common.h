/* Shared set-up of the libFuzzer targets: MPI on one process, one tcorex
 * context and a private temporary folder, created once per fuzzing process
 * and released at exit. */
#ifndef TCX_FUZZ_COMMON_H
#define TCX_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "tcorex/ctx.h"

/* Initialises MPI (one process, no mpirun), creates the context with
 * logging off and the temporary folder. Call from LLVMFuzzerInitialize. */
void tcx_fuzz_init(void);

/* Returns the context of tcx_fuzz_init(). */
tcx_ctx *tcx_fuzz_ctx(void);

/* Writes name inside the temporary folder into path. */
void tcx_fuzz_path(const char *name, char *path, size_t size);

/* Writes size bytes of data to path, replacing the file. Aborts when the
 * file cannot be written, because every later input would be wrong too. */
void tcx_fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* Aborts when an HDF5 identifier (file, dataset, dataspace, type,
 * attribute or group) is still open, so that a handle tcorex forgot to
 * close on an error path fails the input that took that path. */
void tcx_fuzz_check_hdf5_closed(void);

#endif
