/* Fuzzes the CSV reader through 'tcorex convert --csv'. The first byte
 * picks the header mode (detect, yes or no); the rest is the table. */
#include "fuzz_common.h"
#include "tcorex/csv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char table_path[128], output_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  tcx_fuzz_init();
  tcx_fuzz_path("table.csv", table_path, sizeof(table_path));
  tcx_fuzz_path("converted.h5", output_path, sizeof(output_path));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int has_header;

  if (size == 0)
    return 0;
  has_header = data[0] % 3 - 1; /* -1 detect, 0 no, 1 yes */
  tcx_fuzz_write_file(table_path, data + 1, size - 1);
  (void)tcx_csv_convert(tcx_fuzz_ctx(), table_path, output_path, has_header);
  tcx_fuzz_check_hdf5_closed();
  return 0;
}
