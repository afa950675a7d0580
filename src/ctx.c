#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcorex/ctx.h"

enum { TCX_MESSAGE_MAX = 2048 };

struct tcx_ctx {
  MPI_Comm comm; /* duplicate of the caller's communicator */
  int rank;
  int size;
  int log_level;
  char message[TCX_MESSAGE_MAX];
};

const char *tcx_status_name(int status)
{
  switch (status) {
  case TCX_OK: return "TCX_OK";
  case TCX_ERR_USAGE: return "TCX_ERR_USAGE";
  case TCX_ERR_INPUT: return "TCX_ERR_INPUT";
  case TCX_ERR_OUTPUT: return "TCX_ERR_OUTPUT";
  case TCX_ERR_NUMERIC: return "TCX_ERR_NUMERIC";
  case TCX_ERR_INTERRUPTED: return "TCX_ERR_INTERRUPTED";
  case TCX_ERR_MEMORY: return "TCX_ERR_MEMORY";
  case TCX_ERR_MPI: return "TCX_ERR_MPI";
  case TCX_ERR_UNSUPPORTED: return "TCX_ERR_UNSUPPORTED";
  case TCX_ERR_INTERNAL: return "TCX_ERR_INTERNAL";
  default: return "TCX_ERR_UNKNOWN";
  }
}

int tcx_status_exit_code(int status)
{
  switch (status) {
  case TCX_OK: return TCX_EXIT_OK;
  case TCX_ERR_USAGE: return TCX_EXIT_USAGE;
  case TCX_ERR_INPUT: return TCX_EXIT_INPUT;
  case TCX_ERR_OUTPUT: return TCX_EXIT_OUTPUT;
  case TCX_ERR_NUMERIC: return TCX_EXIT_NUMERIC;
  case TCX_ERR_INTERRUPTED: return TCX_EXIT_INTERRUPTED;
  default: return TCX_EXIT_INTERNAL;
  }
}

int tcx_ctx_create(MPI_Comm comm, tcx_ctx **ctx)
{
  tcx_ctx *c = calloc(1, sizeof(*c));
  int code;

  *ctx = NULL;
  if (!c)
    return TCX_ERR_MEMORY;
  c->log_level = TCX_LOG_WARNING;
  code = MPI_Comm_dup(comm, &c->comm);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_rank(c->comm, &c->rank);
  if (code == MPI_SUCCESS)
    code = MPI_Comm_size(c->comm, &c->size);
  if (code != MPI_SUCCESS) {
    free(c);
    return TCX_ERR_MPI;
  }
  *ctx = c;
  return TCX_OK;
}

int tcx_ctx_destroy(tcx_ctx **ctx)
{
  int code = MPI_SUCCESS;

  if (!ctx || !*ctx)
    return TCX_OK;
  code = MPI_Comm_free(&(*ctx)->comm);
  free(*ctx);
  *ctx = NULL;
  return code == MPI_SUCCESS ? TCX_OK : TCX_ERR_MPI;
}

MPI_Comm tcx_ctx_comm(const tcx_ctx *ctx) { return ctx->comm; }
int tcx_ctx_rank(const tcx_ctx *ctx) { return ctx->rank; }
int tcx_ctx_size(const tcx_ctx *ctx) { return ctx->size; }
void tcx_ctx_set_log_level(tcx_ctx *ctx, int level) { ctx->log_level = level; }
int tcx_ctx_log_level(const tcx_ctx *ctx) { return ctx->log_level; }
const char *tcx_ctx_message(const tcx_ctx *ctx) { return ctx->message; }

int tcx_error(tcx_ctx *ctx, int status, const char *fmt, ...)
{
  va_list args;

  va_start(args, fmt);
  vsnprintf(ctx->message, sizeof(ctx->message), fmt, args);
  va_end(args);
  return status;
}

int tcx_error_mpi(tcx_ctx *ctx, int mpi_code, const char *call,
                  const char *file, int line)
{
  char text[MPI_MAX_ERROR_STRING] = "";
  int length = 0;

  if (MPI_Error_string(mpi_code, text, &length) != MPI_SUCCESS)
    snprintf(text, sizeof(text), "unknown MPI error");
  return tcx_error(ctx, TCX_ERR_MPI,
                   "MPI call %s failed with code %d (%s) at %s:%d; check "
                   "the MPI launcher and the network between ranks",
                   call, mpi_code, text, file, line);
}

int tcx_ctx_agree(tcx_ctx *ctx, int status)
{
  int mine = status != TCX_OK ? ctx->rank : ctx->size;
  int first = ctx->size;
  int code;

  code = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, ctx->comm);
  if (code != MPI_SUCCESS)
    return tcx_error_mpi(ctx, code, "MPI_Allreduce", __FILE__, __LINE__);
  if (first == ctx->size)
    return TCX_OK;

  /* Every rank takes the status and message of the lowest failing rank, so
   * that rank 0 can print one message and all ranks exit the same way. */
  {
    int shared_status = status;
    char text[TCX_MESSAGE_MAX];

    int prefix = 0;

    if (ctx->rank == first && first > 0)
      prefix = snprintf(text, sizeof(text), "[rank %d] ", first);
    memcpy(text + prefix, ctx->message, sizeof(text) - (size_t)prefix - 1);
    text[sizeof(text) - 1] = '\0';
    code = MPI_Bcast(&shared_status, 1, MPI_INT, first, ctx->comm);
    if (code == MPI_SUCCESS)
      code = MPI_Bcast(text, TCX_MESSAGE_MAX, MPI_CHAR, first, ctx->comm);
    if (code != MPI_SUCCESS)
      return tcx_error_mpi(ctx, code, "MPI_Bcast", __FILE__, __LINE__);
    memcpy(ctx->message, text, sizeof(text));
    return shared_status;
  }
}

void tcx_log(const tcx_ctx *ctx, int level, const char *fmt, ...)
{
  va_list args;

  if (ctx->rank != 0 || level > ctx->log_level)
    return;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  fflush(stderr);
}

int tcx_calloc(tcx_ctx *ctx, int64_t count, size_t size, const char *what,
               void *ptr)
{
  void *memory;

  *(void **)ptr = NULL;
  if (count < 0 || (size > 0 && (uint64_t)count > SIZE_MAX / size))
    return tcx_error(ctx, TCX_ERR_MEMORY,
                     "cannot allocate %s: %lld elements of %zu bytes "
                     "overflow the address space",
                     what, (long long)count, size);
  memory = calloc(count > 0 ? (size_t)count : 1, size > 0 ? size : 1);
  if (!memory)
    return tcx_error(ctx, TCX_ERR_MEMORY,
                     "out of memory allocating %s (%lld x %zu bytes); run on "
                     "more ranks or nodes to split the variables further",
                     what, (long long)count, size);
  *(void **)ptr = memory;
  return TCX_OK;
}

double tcx_time(void) { return MPI_Wtime(); }
