/* seal_output.c — where the sealing subcommands write: stdout, a new file, or a file
 * replaced atomically (seal.h). */
#include "cli/seal.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"

int
seal_write_output(const char *path, const char *data, size_t len, mode_t mode, bool exclusive,
		  struct lk_error *err)
{
	int r;

	if (lk_file_is_std(path)) {
		if ((r = lk_write_all(STDOUT_FILENO, data, len)) < 0)
			return lk_error_set(err, r, "stdout: %s", strerror(-r));
		return 0;
	}
	if (exclusive)
		return lk_file_write_new(path, data, len, mode, err);
	return lk_file_write_atomic(path, data, len, mode, (uid_t)-1, (gid_t)-1, err);
}

int
seal_write_manifest(const char *path, const json_t *root, enum lk_manifest_format format,
		    mode_t mode, bool exclusive, struct lk_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = lk_manifest_dump(root, format, &text, &len, err);
	if (r < 0)
		return r;
	r = seal_write_output(path, text, len, mode, exclusive, err);
	sodium_memzero(text, len);
	free(text);
	return r;
}
