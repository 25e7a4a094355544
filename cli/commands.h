/* commands.h — the subcommands `latchkey` dispatches to.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the subcommand) and
 * returns the process exit status: 0 success, 1 runtime failure, 2 usage or config error.
 */
#ifndef LK_COMMANDS_H
#define LK_COMMANDS_H

#define LK_EXIT_OK      0
#define LK_EXIT_FAILURE 1
#define LK_EXIT_USAGE   2

struct lk_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

#endif
