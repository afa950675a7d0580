/* The subcommands of the tcorex program. */
#ifndef TCX_CLI_COMMANDS_H
#define TCX_CLI_COMMANDS_H

#include "options.h"

extern const tcx_command tcx_command_fit;
extern const tcx_command tcx_command_score;
extern const tcx_command tcx_command_convert;
extern const tcx_command tcx_command_export;
extern const tcx_command tcx_command_simulate;


#endif
