#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

/* State of the fuzzing process. libFuzzer calls the target once per input
 * in one process, so the context lives from initialisation to exit. */
static tcx_ctx *fuzz_ctx;
static char fuzz_dir[64];

static void tcx_fuzz_finish(void)
{
  char command[128];

  snprintf(command, sizeof(command), "rm -rf '%s'", fuzz_dir);
  if (fuzz_dir[0] != '\0' && system(command) != 0)
    fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir);
  tcx_ctx_destroy(&fuzz_ctx);
  MPI_Finalize();
}

void tcx_fuzz_init(void)
{
  int argc = 0;
  char **argv = NULL;

  if (MPI_Init(&argc, &argv) != MPI_SUCCESS ||
      tcx_ctx_create(MPI_COMM_WORLD, &fuzz_ctx) != TCX_OK) {
    fprintf(stderr, "fuzz: MPI_Init or tcx_ctx_create failed\n");
    abort();
  }
  tcx_ctx_set_log_level(fuzz_ctx, TCX_LOG_QUIET);
  snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/tcx_fuzz_XXXXXX");
  if (!mkdtemp(fuzz_dir)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(tcx_fuzz_finish);
}

tcx_ctx *tcx_fuzz_ctx(void) { return fuzz_ctx; }

void tcx_fuzz_path(const char *name, char *path, size_t size)
{
  snprintf(path, size, "%s/%s", fuzz_dir, name);
}

void tcx_fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
  FILE *file = fopen(path, "wb");

  if (!file || fwrite(data, 1, size, file) != size || fclose(file) != 0) {
    perror(path);
    abort();
  }
}

void tcx_fuzz_check_hdf5_closed(void)
{
  const ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);

  if (open_ids != 0) {
    fprintf(stderr, "fuzz: %zd HDF5 identifier(s) left open\n", open_ids);
    abort();
  }
}
