/* file.c — capped reads and atomic writes (file.h). */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read per read(2) call. */
#define FILE_CHUNK 65536

bool
lk_file_is_std(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0;
}

const char *
lk_file_shown(const char *path)
{
	return lk_file_is_std(path) ? "stdin" : path;
}

int
lk_fd_read_all(int fd, struct lk_buf *b)
{
	char chunk[FILE_CHUNK];
	ssize_t n;
	int r;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			/* An empty input still reads as "" (data is never NULL on success). */
			r = b->data == NULL ? lk_buf_append(b, "", 0) : 0;
			break;
		}
		if ((r = lk_buf_append(b, chunk, (size_t)n)) < 0)
			break;
	}
	explicit_bzero(chunk, sizeof(chunk));
	return r;
}

int
lk_file_read(const char *path, bool nofollow, struct lk_buf *b, struct lk_error *err)
{
	const char *shown = lk_file_shown(path);
	int fd = STDIN_FILENO, r;

	if (!lk_file_is_std(path)) {
		fd = open(path, O_RDONLY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
		if (fd < 0)
			return lk_error_set(err, -errno, "%s: cannot open: %s", shown,
					    strerror(errno));
	}
	r = lk_fd_read_all(fd, b);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r == -E2BIG)
		return lk_error_set(err, r, "%s: larger than %zu bytes", shown, b->max);
	if (r < 0)
		return lk_error_set(err, r, "%s: cannot read: %s", shown, strerror(-r));
	return 0;
}

int
lk_write_all(int fd, const void *p, size_t n)
{
	const char *q = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, q, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes, fsyncs and closes fd (always closed). */
static int
write_sync_close(int fd, const void *data, size_t n)
{
	int r;

	r = lk_write_all(fd, data, n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

int
lk_file_write_atomic(const char *path, const void *data, size_t n, mode_t mode, uid_t owner,
		     gid_t group, struct lk_error *err)
{
	char *tmp = NULL;
	int fd, r;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return lk_error_set(err, -ENOMEM, "%s: out of memory", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = lk_error_set(err, -errno, "%s: cannot create a temporary file: %s", path,
				 strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0 ||
	    ((owner != (uid_t)-1 || group != (gid_t)-1) && fchown(fd, owner, group) < 0)) {
		r = lk_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if ((r = write_sync_close(fd, data, n)) < 0) {
		lk_error_set(err, r, "%s: write: %s", tmp, strerror(-r));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		r = lk_error_set(err, -errno, "%s: rename: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	r = 0;
out:
	free(tmp);
	return r;
}

int
lk_file_write_new(const char *path, const void *data, size_t n, mode_t mode,
		  struct lk_error *err)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		if (errno == EEXIST)
			return lk_error_set(err, -EEXIST, "%s: already exists; not overwritten", path);
		return lk_error_set(err, -errno, "%s: %s", path, strerror(errno));
	}
	/* The umask may have narrowed it; private key files must be exactly mode. */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		close(fd);
		unlink(path);
		return lk_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	if ((r = write_sync_close(fd, data, n)) < 0) {
		unlink(path);
		return lk_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	return 0;
}
