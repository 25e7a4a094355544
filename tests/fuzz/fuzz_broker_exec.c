/* fuzz_broker_exec.c — the launcher's parse of the message that carries the command and
 * its environment (broker_exec_blob_parse): the counts, the NUL-terminated strings, the
 * exact length, NAME=value for every variable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *argv[BROKER_EXEC_ARGS_MAX + 1];
	static char *envp[BROKER_EXEC_STRINGS_MAX + 1];
	char *buf;

	if (size > BROKER_EXEC_MESSAGE_MAX)
		return 0;
	/* A copy of exactly size bytes: a read past the end is caught. */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	if (broker_exec_blob_parse(buf, size, argv, BROKER_EXEC_ARGS_MAX + 1, envp,
				   BROKER_EXEC_STRINGS_MAX + 1) == 0) {
		/* Every string ends inside the buffer; every variable has a name and '='. */
		for (char **a = argv; *a != NULL; a++)
			if (*a < buf || *a + strlen(*a) >= buf + size)
				abort();
		for (char **e = envp; *e != NULL; e++)
			if (strchr(*e, '=') == NULL || **e == '=')
				abort();
		if (argv[0] == NULL || argv[0][0] == '\0')
			abort();
	}
	free(buf);
	return 0;
}
