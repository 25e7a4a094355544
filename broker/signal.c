/* signal.c — the signal to the process named by a pidfile, after checking that it is the
 * process meant.
 *
 * A pidfile is a claim written by someone: a broker running as root that signalled
 * whatever pid it found could be made to signal any process. So, before signalling:
 *   - the pidfile is a regular file (not followed through a symbolic link), owned by the
 *     expected uid and writable by nobody else;
 *   - the process's real uid is the expected uid, and its command name (comm) or the name
 *     of its executable is the one configured;
 *   - the pid is held through a pidfd from before those checks: if the process died and
 *     the pid was reused meanwhile, the signal goes nowhere (ESRCH) instead of to the new
 *     process. Without pidfds (Linux < 5.3) the start time is compared before and after.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "broker/internal.h"

/* Longest /proc/PID/stat read: the fields up to the start time fit well within it. */
#define SIGNAL_STAT_MAX 1024
/* The kernel keeps 15 bytes of a command name (TASK_COMM_LEN - 1). */
#define SIGNAL_COMM_MAX 15

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int
pidfd_send_signal_(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Reads /proc/PID/<what> into buf (NUL-terminated, cut to fit). 0 or -errno. */
static int
proc_read(pid_t pid, const char *what, char *buf, size_t n)
{
	char path[64];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, what);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	got = read(fd, buf, n - 1);
	close(fd);
	if (got < 0)
		return -errno;
	buf[got] = '\0';
	return 0;
}

/* The process's start time (field 22 of /proc/PID/stat, after the comm in parentheses). */
static int
proc_start_time(pid_t pid, unsigned long long *ret)
{
	char buf[SIGNAL_STAT_MAX], *p;
	int rc, field;

	if ((rc = proc_read(pid, "stat", buf, sizeof(buf))) < 0)
		return rc;
	if ((p = strrchr(buf, ')')) == NULL)
		return -EINVAL;
	/* After ") " comes field 3 (state); the start time is field 22. */
	for (field = 2; field < 21 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", ret) != 1)
		return -EINVAL;
	return 0;
}

/* The real uid of the process (the first number of the "Uid:" line). */
static int
proc_uid(pid_t pid, uid_t *ret)
{
	char buf[4096], *p;
	unsigned long uid;
	int rc;

	if ((rc = proc_read(pid, "status", buf, sizeof(buf))) < 0)
		return rc;
	if ((p = strstr(buf, "\nUid:")) == NULL || sscanf(p + 5, "%lu", &uid) != 1)
		return -EINVAL;
	*ret = (uid_t)uid;
	return 0;
}

/* True when the process's comm, or the last part of its executable's path, is name. */
static bool
proc_name_is(pid_t pid, const char *name)
{
	char comm[64], path[64], exe[PATH_MAX];
	ssize_t n;
	size_t len;

	if (proc_read(pid, "comm", comm, sizeof(comm)) == 0) {
		len = strcspn(comm, "\n");
		comm[len] = '\0';
		if (strcmp(comm, name) == 0 ||
		    (strlen(name) > SIGNAL_COMM_MAX && len == SIGNAL_COMM_MAX &&
		     strncmp(comm, name, SIGNAL_COMM_MAX) == 0))
			return true;
	}
	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	if ((n = readlink(path, exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		return strcmp(basename(exe), name) == 0;
	}
	return false;
}

/* The pid in the pidfile, after checking the file itself. */
static int
read_pidfile(const struct broker_file_spec *fs, uid_t uid, pid_t *ret, struct lk_error *err)
{
	char text[BROKER_PIDFILE_MAX + 1], *end;
	struct stat st;
	ssize_t n;
	long pid;
	int fd;

	fd = open(fs->pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return lk_error_set(err, -errno, "%s: %s", fs->pidfile, strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return lk_error_set(err, -errno, "%s: %s", fs->pidfile, strerror(errno));
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != uid || (st.st_mode & 022) != 0) {
		close(fd);
		return lk_error_set(err, -EPERM, "%s: not signalling: the pidfile must be a regular "
				    "file owned by uid %ld and writable by nobody else (it is %s, "
				    "owned by uid %ld, mode %04o)", fs->pidfile, (long)uid,
				    S_ISREG(st.st_mode) ? "a file" : "not a regular file",
				    (long)st.st_uid, (unsigned)(st.st_mode & 07777));
	}
	n = read(fd, text, BROKER_PIDFILE_MAX);
	close(fd);
	if (n <= 0)
		return lk_error_set(err, -EINVAL, "%s: empty", fs->pidfile);
	text[n] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno != 0 || *end != '\0' || pid <= 1 || pid > INT_MAX)
		return lk_error_set(err, -EINVAL, "%s: not a process id", fs->pidfile);
	*ret = (pid_t)pid;
	return 0;
}

int
broker_signal_pidfile(const struct broker_file_spec *fs, struct lk_error *err)
{
	uid_t want = fs->process_uid != (uid_t)-1 ? fs->process_uid :
		     fs->owner != (uid_t)-1 ? fs->owner : geteuid();
	unsigned long long start = 0, start_after = 0;
	pid_t pid = 0;
	uid_t uid = 0;
	int pidfd = -1, rc;

	if ((rc = read_pidfile(fs, want, &pid, err)) < 0)
		return rc;
	/* Held from before the checks: a pid reused after them cannot be signalled. */
	pidfd = pidfd_open_(pid);
	if (pidfd < 0 && errno != ENOSYS)
		return lk_error_set(err, -errno, "%s: process %ld: %s", fs->pidfile, (long)pid,
				    strerror(errno));
	if (pidfd < 0 && (rc = proc_start_time(pid, &start)) < 0) {
		rc = lk_error_set(err, rc, "%s: process %ld: %s", fs->pidfile, (long)pid,
				  strerror(-rc));
		goto out;
	}
	if ((rc = proc_uid(pid, &uid)) < 0) {
		rc = lk_error_set(err, rc, "%s: process %ld: %s", fs->pidfile, (long)pid,
				  strerror(-rc));
		goto out;
	}
	if (uid != want) {
		rc = lk_error_set(err, -EPERM, "%s: not signalling process %ld: it runs as uid %ld, "
				  "not %ld", fs->pidfile, (long)pid, (long)uid, (long)want);
		goto out;
	}
	if (!proc_name_is(pid, fs->process)) {
		rc = lk_error_set(err, -EPERM, "%s: not signalling process %ld: it is not \"%s\"",
				  fs->pidfile, (long)pid, fs->process);
		goto out;
	}
	if (pidfd >= 0) {
		rc = pidfd_send_signal_(pidfd, fs->signal);
	} else {
		rc = proc_start_time(pid, &start_after);
		if (rc == 0 && start_after != start) {
			errno = ESRCH;
			rc = -1;
		} else if (rc == 0) {
			rc = kill(pid, fs->signal);
		}
	}
	if (rc < 0) {
		rc = lk_error_set(err, -errno, "%s: signal to %ld: %s", fs->pidfile, (long)pid,
				  strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}
