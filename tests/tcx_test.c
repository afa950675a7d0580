#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcx_test.h"

/* One context per test program; tests are single-threaded. */
static tcx_ctx *test_ctx;

int tcx_test_run(int argc, char **argv, const char *group_name,
                 const struct CMUnitTest *tests, size_t count)
{
  int rank = 0;
  int failed;

  (void)argc;
  (void)argv;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (tcx_ctx_create(MPI_COMM_WORLD, &test_ctx) != TCX_OK) {
    fprintf(stderr, "[rank %d] cannot create a tcorex context\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank != 0 && !freopen("/dev/null", "w", stdout))
    fprintf(stderr, "[rank %d] cannot silence stdout\n", rank);
  failed = _cmocka_run_group_tests(group_name, tests, count, NULL, NULL);
  tcx_ctx_destroy(&test_ctx);
  MPI_Finalize();
  return failed ? 1 : 0;
}

tcx_ctx *tcx_test_ctx(void) { return test_ctx; }

int tcx_test_all_ok(int ok, const char *label)
{
  int mine = ok ? 1 : 0;
  int all = 0;
  int rank = tcx_ctx_rank(test_ctx);

  if (!mine)
    fprintf(stderr, "[rank %d] check failed: %s\n", rank, label);
  if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) !=
      MPI_SUCCESS) {
    fprintf(stderr, "[rank %d] MPI_Allreduce failed in a test\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return all;
}

void tcx_test_assert_close_all(double actual, double expected, double tol,
                               const char *label)
{
  double scale = fabs(expected) > 1.0 ? fabs(expected) : 1.0;
  int ok = fabs(actual - expected) <= tol * scale;

  if (!ok)
    fprintf(stderr, "[rank %d] %s: got %.17g, expected %.17g (tol %.3g)\n",
            tcx_ctx_rank(test_ctx), label, actual, expected, tol);
  assert_true(tcx_test_all_ok(ok, label));
}

void tcx_test_temp_path(const char *suffix, char *buffer, size_t size)
{
  int token = 0;

  if (tcx_ctx_rank(test_ctx) == 0)
    token = (int)getpid();
  MPI_Bcast(&token, 1, MPI_INT, 0, MPI_COMM_WORLD);
  {
    const char *dir = getenv("TMPDIR");
    static int counter; /* distinct names within one test program */

    snprintf(buffer, size, "%s/tcx_test_%d_%d%s", dir ? dir : "/tmp", token,
             counter++, suffix);
  }
}

int tcx_test_system(const char *command)
{
  int status = system(command);

  if (status == -1)
    return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int tcx_test_mount_small_disk(int64_t size_kib, char *buffer, size_t size)
{
  char options[64];
  int mounted = 0;

  snprintf(buffer, size, "/tmp/tcx_disk_XXXXXX");
  snprintf(options, sizeof(options), "size=%lldk", (long long)size_kib);
  if (tcx_ctx_rank(test_ctx) == 0) {
    if (!mkdtemp(buffer))
      fprintf(stderr, "skipped: cannot create a folder under /tmp for a "
                      "small disk: %s\n", strerror(errno));
    else if (mount("tmpfs", buffer, "tmpfs", 0, options) != 0) {
      fprintf(stderr, "skipped: cannot mount a %lld KiB tmpfs at %s to "
                      "test a full disk: %s (run the tests as root to "
                      "include them)\n",
              (long long)size_kib, buffer, strerror(errno));
      rmdir(buffer);
    } else {
      mounted = 1;
    }
  }
  MPI_Bcast(&mounted, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Bcast(buffer, (int)size, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!mounted)
    buffer[0] = '\0';
  return mounted;
}

void tcx_test_unmount_small_disk(const char *folder)
{
  MPI_Barrier(MPI_COMM_WORLD);
  if (tcx_ctx_rank(test_ctx) == 0 && folder[0] != '\0') {
    if (umount(folder) != 0)
      fprintf(stderr, "cannot unmount the small disk %s: %s\n", folder,
              strerror(errno));
    else
      rmdir(folder);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

int tcx_test_fill_disk(const char *folder)
{
  static const char block[4096];
  char path[512];
  int descriptor, error;

  snprintf(path, sizeof(path), "%s/filler", folder);
  descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (descriptor < 0)
    return 0;
  while (write(descriptor, block, sizeof(block)) > 0)
    ;
  while (write(descriptor, block, 1) == 1)
    ;
  error = errno;
  close(descriptor);
  return error == ENOSPC;
}

void tcx_test_randn(uint64_t seed, double *a, int64_t count)
{
  /* xorshift64* and Box-Muller: small, fixed and unrelated to tcorex's
   * counter-based generator. */
  uint64_t state = seed * 2654435761u + 88172645463325252ull;

  for (int64_t k = 0; k < count; k += 2) {
    double u1, u2, radius;

    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    u1 = ((state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    u2 = ((state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
    radius = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-300));
    a[k] = radius * cos(2.0 * M_PI * u2);
    if (k + 1 < count)
      a[k + 1] = radius * sin(2.0 * M_PI * u2);
  }
}
