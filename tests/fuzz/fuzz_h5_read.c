/* Fuzzes the HDF5 input path with MPI-IO on one process. The bytes become
 * a file whose /data shape is read as 'convert' reads it, and whose /data
 * block is then read as 'tcorex fit' reads it, with a missing-value
 * marker. Last, its root attribute "format" is read as 'export' does. */
#include <stdint.h>
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

/* Largest dataset, in values, whose block the target reads. A few bytes
 * of HDF5 can declare a dataset of any size whose chunks are not stored
 * (they read as the fill value). tcorex allocates the declared size, and
 * HDF5 keeps a node per chunk of the selection: a dataset of 2^21 values in
 * chunks of 2 took more than 10 s to read under AddressSanitizer. Larger
 * ones would only hit libFuzzer's memory or time limit. */
#define MAX_VALUES ((int64_t)1 << 16)

/* Returns 1 when the shape has at most MAX_VALUES elements. */
static int fits_in_memory_limit(int n_dims, const int64_t *dims)
{
  int64_t count = 1;

  for (int d = 0; d < n_dims && d < 3; d++) {
    if (dims[d] < 0 || (dims[d] > 0 && count > MAX_VALUES / dims[d]))
      return 0;
    count *= dims[d];
  }
  return 1;
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
  if (tcx_h5_dataset_shape(ctx, input_path, "/data", &n_dims, dims) ==
          TCX_OK &&
      fits_in_memory_limit(n_dims, dims) &&
      tcx_h5_read_block(ctx, input_path, &options, &block) == TCX_OK)
    tcx_block_destroy(&block);
  (void)tcx_h5_read_attr_string(ctx, input_path, "format", format,
                                sizeof(format));
  tcx_fuzz_check_hdf5_closed();
  return 0;
}
