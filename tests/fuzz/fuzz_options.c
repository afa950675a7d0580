/* Fuzzes the option parser of the tcorex program with the option table of
 * each subcommand. The first byte picks the subcommand; the rest is split
 * at newlines into the arguments. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fuzz_common.h"

enum { MAX_ARGS = 64 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  tcx_fuzz_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const tcx_command *const commands[] = {
      &tcx_command_fit,    &tcx_command_score,    &tcx_command_convert,
      &tcx_command_export, &tcx_command_simulate,
  };
  const tcx_command *command;
  tcx_common_options common = {0};
  char *text, *args[MAX_ARGS];
  void *values;
  int argc = 0;

  if (size == 0)
    return 0;
  command = commands[data[0] % (sizeof(commands) / sizeof(commands[0]))];
  /* The parser keeps pointers into the arguments, as into argv. */
  text = malloc(size);
  values = calloc(1, command->values_size);
  if (!text || !values)
    abort();
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  for (char *start = text; argc < MAX_ARGS;) {
    char *end = strchr(start, '\n');

    args[argc++] = start;
    if (!end)
      break;
    *end = '\0';
    start = end + 1;
  }
  command->set_defaults(values);
  (void)tcx_options_parse(tcx_fuzz_ctx(), command, argc, args, values,
                          &common);
  free(values);
  free(text);
  return 0;
}
