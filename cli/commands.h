/* commands.h — the subcommands `latchkey` dispatches to.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the subcommand) and
 * returns the process exit status (common/exit.h).
 */
#ifndef LK_COMMANDS_H
#define LK_COMMANDS_H

#include "common/exit.h"

struct lk_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

#endif
