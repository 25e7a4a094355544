/* kubeletvol.c — the kubelet's atomic writer, as tests need it (kubeletvol.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kubeletvol.h"
#include "testutil.h"

static int
fail(const char *what, const char *path)
{
	int rc = -errno;

	fprintf(stderr, "t_kubelet_write: %s %s: %s\n", what, path, strerror(errno));
	return rc;
}

int
t_kubelet_current(const char *dir, char *out, size_t outlen)
{
	char link[1024];
	ssize_t n;

	snprintf(link, sizeof(link), "%s/..data", dir);
	n = readlink(link, out, outlen - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/* True when the directory ..data names holds exactly these keys and values: the
 * kubelet's shouldWritePayload, which makes an unchanged Secret no write at all. */
static bool
unchanged(const char *dir, const char *cur, const char *const keys[],
	  const char *const values[], size_t n)
{
	char path[1024];
	size_t files = 0;
	struct dirent *de;
	DIR *d;

	for (size_t i = 0; i < n; i++) {
		char *text;
		bool same;

		snprintf(path, sizeof(path), "%s/%s/%s", dir, cur, keys[i]);
		if ((text = t_read_file(path)) == NULL)
			return false;
		same = strcmp(text, values[i]) == 0;
		free(text);
		if (!same)
			return false;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, cur);
	if ((d = opendir(path)) == NULL)
		return false;
	while ((de = readdir(d)) != NULL)
		files += de->d_name[0] != '.';
	closedir(d);
	return files == n;
}

static bool
in_keys(const char *name, const char *const keys[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], name) == 0)
			return true;
	return false;
}

int
t_kubelet_write(const char *dir, const char *const keys[], const char *const values[], size_t n)
{
	static atomic_uint seq;
	char old[256] = "", ts[128], path[1024], tmp[1024], data[1024];
	struct timespec now;
	struct tm tm;
	DIR *d;
	struct dirent *de;
	bool had_old;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return fail("mkdir", dir);
	had_old = t_kubelet_current(dir, old, sizeof(old)) == 0;
	if (had_old && unchanged(dir, old, keys, values, n))
		return 1;
	/* The writer's name: the UTC time to the second, then a unique suffix (Go's
	 * MkdirTemp adds random digits); a sequence number keeps names apart here. */
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "..%04d_%02d_%02d_%02d_%02d_%02d.%09u", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(atomic_fetch_add(&seq, 1) * 1000 + (unsigned)getpid() % 1000));
	snprintf(path, sizeof(path), "%s/%s", dir, ts);
	if (mkdir(path, 0755) < 0)
		return fail("mkdir", path);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", dir, ts, keys[i]);
		if (t_write_file(path, values[i], 0644) < 0)
			return fail("write", path);
	}
	/* The one atomic step: ..data_tmp renamed over ..data. */
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(data, sizeof(data), "%s/..data", dir);
	if (symlink(ts, tmp) < 0)
		return fail("symlink", tmp);
	if (rename(tmp, data) < 0)
		return fail("rename", tmp);
	/* The links of new keys, then those of keys gone. */
	for (size_t i = 0; i < n; i++) {
		char target[1024];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, keys[i]);
		snprintf(target, sizeof(target), "..data/%s", keys[i]);
		if (lstat(path, &st) < 0 && symlink(target, path) < 0)
			return fail("symlink", path);
	}
	if ((d = opendir(dir)) == NULL)
		return fail("opendir", dir);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || in_keys(de->d_name, keys, n))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0) {
			closedir(d);
			return fail("unlink", path);
		}
	}
	closedir(d);
	if (had_old) {
		snprintf(path, sizeof(path), "%s/%s", dir, old);
		t_rmrf(path);
	}
	return 0;
}
