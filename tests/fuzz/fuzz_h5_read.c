/* Fuzzes the HDF5 input path with MPI-IO on one process. The bytes become
 * a file whose /data block is read as 'tcorex fit' reads it, with a
 * missing-value marker. Its shape is then read as 'convert' does, and its
 * root attribute "format" as 'export' does. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "tcorex/h5io.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char input_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  tcx_fuzz_init();
  tcx_fuzz_path("input.h5", input_path, sizeof(input_path));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  tcx_ctx *ctx = tcx_fuzz_ctx();
  const tcx_read_options options = {"/data", 1, -9999.0};
  tcx_block *block = NULL;
  int64_t dims[3];
  int n_dims = 0;
  char format[64];

  tcx_fuzz_write_file(input_path, data, size);
  if (tcx_h5_read_block(ctx, input_path, &options, &block) == TCX_OK)
    tcx_block_destroy(&block);
  (void)tcx_h5_dataset_shape(ctx, input_path, "/data", &n_dims, dims);
  (void)tcx_h5_read_attr_string(ctx, input_path, "format", format,
                                sizeof(format));
  tcx_fuzz_check_hdf5_closed();
  return 0;
}
