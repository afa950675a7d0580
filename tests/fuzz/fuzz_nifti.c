/* Fuzzes the NIfTI-1 reader through 'tcorex convert --nifti': the bytes
 * become bold.nii, or bold.nii.gz when they start with the gzip magic
 * bytes, and a valid image is converted to HDF5. */
#include "fuzz_common.h"
#include "tcorex/nifti.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char plain_path[128], gzip_path[128], output_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  tcx_fuzz_init();
  tcx_fuzz_path("bold.nii", plain_path, sizeof(plain_path));
  tcx_fuzz_path("bold.nii.gz", gzip_path, sizeof(gzip_path));
  tcx_fuzz_path("converted.h5", output_path, sizeof(output_path));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const int gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const char *path = gzip ? gzip_path : plain_path;

  tcx_fuzz_write_file(path, data, size);
  (void)tcx_nifti_convert(tcx_fuzz_ctx(), path, NULL, output_path);
  tcx_fuzz_check_hdf5_closed();
  return 0;
}
