/* exit.h — the exit statuses of every `latchkey` subcommand.
 *
 * 0 success, 1 a runtime failure (the backend, a file, a crypto operation), 2 a usage or
 * configuration error (the message says which flag, file or key). Scripts and probes rely
 * on the difference.
 */
#ifndef LK_EXIT_H
#define LK_EXIT_H

#define LK_EXIT_OK      0
#define LK_EXIT_FAILURE 1
#define LK_EXIT_USAGE   2

#endif
