/* Helpers shared by the cmocka tests: MPI start-up, agreement of all ranks
 * on a check, dense reference algebra and temporary paths. */
#ifndef TCX_TEST_H
#define TCX_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tcorex/ctx.h"

/* Initialises MPI, runs the cmocka group and finalises MPI. Every rank runs
 * every test; ranks other than 0 send cmocka's report to /dev/null. */
int tcx_test_run(int argc, char **argv, const char *group_name,
                 const struct CMUnitTest *tests, size_t count);

/* Returns a context on MPI_COMM_WORLD (created once per test program). */
tcx_ctx *tcx_test_ctx(void);

/* Collective: returns 1 when ok is nonzero on every rank. A rank whose check
 * failed prints label with its rank first, so that the failure is visible
 * even though all ranks then fail together. */
int tcx_test_all_ok(int ok, const char *label);

/* Asserts that |actual - expected| <= tol * max(1, |expected|) on every rank;
 * prints both values and the label on the ranks where it fails. */
void tcx_test_assert_close_all(double actual, double expected, double tol,
                               const char *label);

/* Writes a unique temporary path (shared by all ranks) with the given suffix
 * into buffer. Collective. */
void tcx_test_temp_path(const char *suffix, char *buffer, size_t size);

/* Runs a shell command (on rank 0 only when called collectively by the
 * caller's choice) and returns its exit status, or -1 when it could not run. */
int tcx_test_system(const char *command);

/* Mounts a tmpfs of size_kib KiB at a new folder under /tmp, so that a
 * test can fill a disk, and writes the folder into buffer. Collective: rank
 * 0 mounts and every rank receives the outcome, so all ranks must run on one
 * machine. Returns 1 when mounted, or 0 when mounting is not permitted
 * (not root), after rank 0 printed why the test is skipped. */
int tcx_test_mount_small_disk(int64_t size_kib, char *buffer, size_t size);

/* Unmounts and removes a folder of tcx_test_mount_small_disk(); accepts
 * "". Collective. */
void tcx_test_unmount_small_disk(const char *folder);

/* Fills the file system of folder to the last byte with the file
 * folder/filler on the calling rank. Returns 1 on success. */
int tcx_test_fill_disk(const char *folder);

/* Fills a with count draws of N(0, 1) from a fixed-seed generator that is
 * independent of tcorex's own generator. */
void tcx_test_randn(uint64_t seed, double *a, int64_t count);

#endif
