/* Context, status codes, error reporting and logging shared by every tcorex
 * module. A context carries the duplicated communicator, the log level and
 * the last error message; tcorex keeps no other mutable state. */
#ifndef TCOREX_CTX_H
#define TCOREX_CTX_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TCX_PRINTF(fmt_index, first_arg) \
  __attribute__((format(printf, fmt_index, first_arg)))
#else
#define TCX_PRINTF(fmt_index, first_arg)
#endif

/* Status returned by every library function. The command-line program maps
 * each status to an exit code with tcx_status_exit_code(). */
typedef enum tcx_status {
  TCX_OK = 0,
  TCX_ERR_USAGE,       /* invalid option, flag value or argument */
  TCX_ERR_INPUT,       /* input file missing, unreadable or invalid */
  TCX_ERR_OUTPUT,      /* output could not be created or written */
  TCX_ERR_NUMERIC,     /* numerical breakdown during a computation */
  TCX_ERR_INTERRUPTED, /* stopped by a signal at an iteration boundary */
  TCX_ERR_MEMORY,      /* allocation failed or a size overflowed */
  TCX_ERR_MPI,         /* an MPI call failed */
  TCX_ERR_UNSUPPORTED, /* valid request that this build does not implement */
  TCX_ERR_INTERNAL     /* a bug: an invariant of tcorex itself failed */
} tcx_status;

/* Exit codes of the tcorex program. */
enum {
  TCX_EXIT_OK = 0,
  TCX_EXIT_INTERNAL = 1,    /* MPI failure, out of memory, bug */
  TCX_EXIT_USAGE = 2,       /* bad command line */
  TCX_EXIT_INPUT = 3,       /* bad or unreadable input */
  TCX_EXIT_OUTPUT = 4,      /* output could not be written */
  TCX_EXIT_NUMERIC = 5,     /* numerical failure */
  TCX_EXIT_INTERRUPTED = 75 /* interrupted after a checkpoint (EX_TEMPFAIL) */
};

/* Log levels: a message is printed when its level <= the context's level. */
enum {
  TCX_LOG_QUIET = 0,
  TCX_LOG_ERROR = 1,
  TCX_LOG_WARNING = 2, /* warnings and the result summary (default) */
  TCX_LOG_PROGRESS = 3,
  TCX_LOG_DEBUG = 4
};

typedef struct tcx_ctx tcx_ctx;

/* Returns the upper-case name of a status, such as "TCX_ERR_INPUT". */
const char *tcx_status_name(int status);

/* Returns the documented program exit code for a status. */
int tcx_status_exit_code(int status);

/* Creates a context on a duplicate of comm and sets MPI_ERRORS_RETURN on the
 * duplicate so that failed MPI calls return codes. Collective on comm. The
 * caller releases *ctx with tcx_ctx_destroy(). */
int tcx_ctx_create(MPI_Comm comm, tcx_ctx **ctx);

/* Frees *ctx and its communicator and sets *ctx to NULL. Accepts NULL.
 * Collective on the context's communicator. */
int tcx_ctx_destroy(tcx_ctx **ctx);

MPI_Comm tcx_ctx_comm(const tcx_ctx *ctx);
int tcx_ctx_rank(const tcx_ctx *ctx);
int tcx_ctx_size(const tcx_ctx *ctx);

void tcx_ctx_set_log_level(tcx_ctx *ctx, int level);
int tcx_ctx_log_level(const tcx_ctx *ctx);

/* Stores a formatted error message in ctx and returns status. The message
 * should name the file, dataset, variable or value involved and the fix. */
int tcx_error(tcx_ctx *ctx, int status, const char *fmt, ...)
    TCX_PRINTF(3, 4);

/* Stores an error for a failed MPI call, with MPI's own error text. */
int tcx_error_mpi(tcx_ctx *ctx, int mpi_code, const char *call,
                  const char *file, int line);

/* Returns the last stored error message ("" when none). */
const char *tcx_ctx_message(const tcx_ctx *ctx);

/* Makes every rank agree on the outcome of a step. Collective. Returns
 * TCX_OK when status is TCX_OK on every rank. Otherwise every rank returns
 * the status of the lowest failing rank, and its message (prefixed with
 * "[rank R]" when R > 0) replaces the message stored in every context. */
int tcx_ctx_agree(tcx_ctx *ctx, int status);

/* Prints a message to stderr on rank 0 when level <= the context's level.
 * Not collective. */
void tcx_log(const tcx_ctx *ctx, int level, const char *fmt, ...)
    TCX_PRINTF(3, 4);

/* Allocates count elements of size bytes each, zero-filled, checking the
 * product for overflow. On failure stores an error naming what and returns
 * TCX_ERR_MEMORY. The caller frees *ptr with free(). */
int tcx_calloc(tcx_ctx *ctx, int64_t count, size_t size, const char *what,
               void *ptr);

/* Seconds since an arbitrary origin (MPI_Wtime). */
double tcx_time(void);

/* Stores rc and jumps to the function's cleanup label when expr fails. The
 * enclosing function declares int rc and a label named cleanup. */
#define TCX_TRY(expr)        \
  do {                       \
    rc = (expr);             \
    if (rc != TCX_OK)        \
      goto cleanup;          \
  } while (0)

/* Checks an MPI return code. */
#define TCX_TRY_MPI(ctx, call)                                          \
  do {                                                                  \
    int tcx_mpi_code_ = (call);                                         \
    if (tcx_mpi_code_ != MPI_SUCCESS) {                                 \
      rc = tcx_error_mpi((ctx), tcx_mpi_code_, #call, __FILE__, __LINE__); \
      goto cleanup;                                                     \
    }                                                                   \
  } while (0)

/* Fails with status and a formatted message unless cond holds. */
#define TCX_CHECK(cond, ctx, status, ...)          \
  do {                                             \
    if (!(cond)) {                                 \
      rc = tcx_error((ctx), (status), __VA_ARGS__); \
      goto cleanup;                                \
    }                                              \
  } while (0)

/* Checks a LAPACKE return value: negative info is a bug in the caller's
 * arguments, positive info a numerical failure. */
#define TCX_TRY_LAPACK(ctx, info, routine)                                 \
  do {                                                                     \
    int tcx_info_ = (int)(info);                                           \
    if (tcx_info_ < 0) {                                                   \
      rc = tcx_error((ctx), TCX_ERR_INTERNAL,                              \
                     "%s rejected argument %d (%s:%d); this is a bug in "  \
                     "tcorex, please report it",                           \
                     (routine), -tcx_info_, __FILE__, __LINE__);           \
      goto cleanup;                                                        \
    }                                                                      \
    if (tcx_info_ > 0) {                                                   \
      rc = tcx_error((ctx), TCX_ERR_NUMERIC,                               \
                     "%s failed with info = %d (%s:%d): the matrix is "    \
                     "singular or not positive definite",                  \
                     (routine), tcx_info_, __FILE__, __LINE__);            \
      goto cleanup;                                                        \
    }                                                                      \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif
