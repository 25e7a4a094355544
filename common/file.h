/* file.h — whole-file reads with a cap, and writes that never leave a half-written file.
 *
 * Reads go through a file descriptor, so standard input may be a pipe, a terminal or a
 * socket (a child process of Node gets a socket; /dev/stdin cannot be opened on one).
 * Messages name the file ("stdin" for standard input) and never quote its content.
 */
#ifndef LK_FILE_H
#define LK_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/error.h"

/* True for NULL or "-": the conventional name of standard input or output. */
bool lk_file_is_std(const char *path);

/* The name used in messages: "stdin" for NULL or "-", else path. Borrowed. */
const char *lk_file_shown(const char *path);

/* Reads everything from fd into b (set up by the caller: its cap and wipe flag decide the
 * limit and whether memory is zeroed). Returns 0, -E2BIG when more than the cap arrives
 * (b then holds a prefix), or -errno. */
int lk_fd_read_all(int fd, struct lk_buf *b) __attribute__((warn_unused_result));

/* Reads a whole file, or standard input when path is NULL or "-", into b (see
 * lk_fd_read_all). O_NOFOLLOW when nofollow. On error err says "FILE: cannot open: why",
 * "FILE: cannot read: why" or "FILE: larger than N bytes". */
int lk_file_read(const char *path, bool nofollow, struct lk_buf *b, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Writes all n bytes, retrying short writes and EINTR. Returns 0 or -errno. */
int lk_write_all(int fd, const void *p, size_t n) __attribute__((warn_unused_result));

/* Replaces path atomically: a temporary file beside it ("PATH.tmp.XXXXXX") is created
 * with exactly mode (the umask does not narrow it) and, unless (uid_t)-1 / (gid_t)-1,
 * owner and group, written, fsynced and renamed over path, so a reader sees the old
 * content or the new, never a mix. The temporary is removed on failure. */
int lk_file_write_atomic(const char *path, const void *data, size_t n, mode_t mode,
			 uid_t owner, gid_t group, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Creates path, which must not exist (-EEXIST: "already exists; not overwritten"), with
 * exactly mode, writes and fsyncs it; removed again on failure. For private key files. */
int lk_file_write_new(const char *path, const void *data, size_t n, mode_t mode,
		      struct lk_error *err) __attribute__((warn_unused_result));

#endif
