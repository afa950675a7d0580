#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "tcorex/h5io.h"

int tcx_cli_check_input(tcx_ctx *ctx, const char *flag, const char *path,
                        const char *what)
{
  struct stat info;

  if (stat(path, &info) != 0)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s %s not found (%s %s); check the path", what, path,
                     flag, path);
  if (S_ISDIR(info.st_mode))
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "%s %s is a folder (%s); pass a file", what, path, flag);
  return TCX_OK;
}

int tcx_cli_same_file(const char *a, const char *b)
{
  struct stat a_info, b_info;

  if (stat(a, &a_info) == 0 && stat(b, &b_info) == 0)
    return a_info.st_dev == b_info.st_dev && a_info.st_ino == b_info.st_ino;
  return strcmp(a, b) == 0;
}

int tcx_cli_check_distinct(tcx_ctx *ctx, const char *input_flag,
                           const char *input, const char *output_flag,
                           const char *output)
{
  if (!input || !output)
    return TCX_OK;
  if (tcx_cli_same_file(input, output))
    return tcx_error(ctx, TCX_ERR_USAGE,
                     "%s %s and %s %s name the same file, so writing %s "
                     "would overwrite it. Give %s another path",
                     output_flag, output, input_flag, input, output_flag,
                     output_flag);
  return TCX_OK;
}

int tcx_cli_check_model_file(tcx_ctx *ctx, const char *path)
{
  char format[64] = "";
  int rc = tcx_h5_read_attr_string(ctx, path, "format", format,
                                   sizeof(format));

  if (rc != TCX_OK || strcmp(format, "tcorex-model") != 0)
    return tcx_error(ctx, TCX_ERR_INPUT,
                     "model file %s is not a model written by 'tcorex fit' "
                     "(no root attribute format = \"tcorex-model\"); pass "
                     "the --output of a fit",
                     path);
  return TCX_OK;
}
