#include "testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *
t_latchkey_bin(void)
{
	const char *b = getenv("LATCHKEY_BIN");

	return b != NULL && *b != '\0' ? b : "build/latchkey";
}

char *
t_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&p, "%s/latchkey-test.XXXXXX", base) < 0)
		return NULL;
	if (mkdtemp(p) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void
t_rmrf(const char *path)
{
	if (path != NULL)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
t_path(const char *dir, const char *name)
{
	static char bufs[T_PATH_SLOTS][1024];
	static unsigned next;
	char *b = bufs[next++ % T_PATH_SLOTS];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

int
t_spawn(struct t_proc *p, const char *const argv[], const char *const env_extra[],
	const char *log_path)
{
	pid_t parent = getpid();
	pid_t pid;

	memset(p, 0, sizeof(*p));
	snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd;

		/* Die with the test, even when it fails before stopping us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setpgid(0, 0);
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		for (size_t i = 0; env_extra != NULL && env_extra[i] != NULL; i++)
			putenv((char *)env_extra[i]);
		execve(argv[0], (char *const *)argv, environ);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	p->pid = pid;
	return 0;
}

int
t_run(const char *const argv[], const char *const env_extra[], const char *in_path,
      const char *out_path, const char *err_path)
{
	pid_t parent = getpid();
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		fd = open(in_path != NULL ? in_path : "/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(out_path != NULL ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 1);
		fd = open(err_path != NULL ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		for (size_t i = 0; env_extra != NULL && env_extra[i] != NULL; i++)
			putenv((char *)env_extra[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool
t_alive(struct t_proc *p)
{
	int status;

	if (p->pid <= 0)
		return false;
	if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
		p->pid = -status - 1; /* remember the status, negative */
		return false;
	}
	return true;
}

int
t_stop(struct t_proc *p, int sig, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;
	int status;

	if (p->pid == 0)
		return -1;
	if (p->pid < 0)
		return -(p->pid + 1);
	kill(p->pid, sig);
	while (mono_ms() < deadline) {
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid) {
			p->pid = -status - 1;
			return status;
		}
		nap_ms(5);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	p->pid = -status - 1;
	return status;
}

bool
t_wait_log(struct t_proc *p, const char *needle, int timeout_ms, char *ret_line, size_t linelen)
{
	long deadline = mono_ms() + timeout_ms;

	do {
		char *text = t_read_file(p->log_path);
		char *hit = text != NULL ? strstr(text, needle) : NULL;

		if (hit != NULL) {
			if (ret_line != NULL && linelen > 0) {
				char *start = hit, *end = strchr(hit, '\n');
				size_t n;

				while (start > text && start[-1] != '\n')
					start--;
				n = end != NULL ? (size_t)(end - start) : strlen(start);
				if (n >= linelen)
					n = linelen - 1;
				memcpy(ret_line, start, n);
				ret_line[n] = '\0';
			}
			free(text);
			return true;
		}
		free(text);
		nap_ms(10);
	} while (mono_ms() < deadline);
	return false;
}

bool
t_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	long deadline = mono_ms() + timeout_ms;

	do {
		if (cond(arg))
			return true;
		nap_ms(10);
	} while (mono_ms() < deadline);
	return cond(arg);
}

char *
t_read_bytes(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	/* A file that opens but cannot be read (a directory) is an error, not empty. */
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[len] = '\0';
	fclose(f);
	*ret_len = len;
	return buf;
}

char *
t_read_file(const char *path)
{
	size_t len;

	return t_read_bytes(path, &len);
}

int
t_write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text), off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		off += (size_t)n;
	}
	fchmod(fd, mode);
	close(fd);
	return 0;
}

struct body {
	char *data;
	size_t len;
};

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;
	char *nd = realloc(b->data, b->len + n + 1);

	if (nd == NULL)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

long
t_http(const char *method, const char *url, const char *unix_socket, const char *token,
       const char *body, char **ret_body)
{
	struct curl_slist *headers = NULL;
	struct body b = { 0 };
	char hdr[512];
	long status = 0;
	CURL *c = curl_easy_init();

	if (c == NULL)
		return 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (unix_socket != NULL)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_socket);
	if (token != NULL) {
		snprintf(hdr, sizeof(hdr), "X-Vault-Token: %s", token);
		headers = curl_slist_append(headers, hdr);
	}
	if (body != NULL) {
		headers = curl_slist_append(headers, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	if (ret_body != NULL)
		*ret_body = b.data;
	else
		free(b.data);
	return status;
}

int
t_dev_start(struct t_dev *d, const char *const extra_args[])
{
	const char *argv[32];
	char line[1024], log[600];
	size_t n = 0;
	char *at;
	int r;

	memset(d, 0, sizeof(*d));
	d->dir = t_tmpdir();
	if (d->dir == NULL)
		return -errno;
	snprintf(log, sizeof(log), "%s/dev.log", d->dir);
	/* A long random token unless the caller names one: a short word such as "root"
	 * could not show that a log or a message leaves the token out. */
	{
		unsigned char raw[16];
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw)) {
			if (fd >= 0)
				close(fd);
			return -EIO;
		}
		close(fd);
		n = (size_t)snprintf(d->token, sizeof(d->token), "hvs.test-");
		for (size_t i = 0; i < sizeof(raw); i++)
			n += (size_t)snprintf(d->token + n, sizeof(d->token) - n, "%02x", raw[i]);
		n = 0;
	}
	for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
		if (strcmp(extra_args[i], "--root-token") == 0 && extra_args[i + 1] != NULL)
			snprintf(d->token, sizeof(d->token), "%s", extra_args[i + 1]);
	}
	argv[n++] = t_latchkey_bin();
	argv[n++] = "dev";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--root-token";
	argv[n++] = d->token;
	for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL && n < 31; i++) {
		if (strcmp(extra_args[i], "--root-token") == 0 && extra_args[i + 1] != NULL) {
			i++;
			continue;
		}
		argv[n++] = extra_args[i];
	}
	argv[n] = NULL;
	r = t_spawn(&d->proc, argv, NULL, log);
	if (r < 0)
		return r;
	if (!t_wait_log(&d->proc, "\"msg\":\"listening\"", T_DEADLINE_MS, line, sizeof(line)))
		return -ETIMEDOUT;
	at = strstr(line, "\"addr\":\"127.0.0.1:");
	if (at == NULL)
		return -EPROTO;
	d->port = atoi(at + strlen("\"addr\":\"127.0.0.1:"));
	snprintf(d->addr, sizeof(d->addr), "http://127.0.0.1:%d", d->port);
	return d->port > 0 ? 0 : -EPROTO;
}

void
t_dev_stop(struct t_dev *d)
{
	if (d->proc.pid != 0)
		t_stop(&d->proc, SIGTERM, 5000);
	t_rmrf(d->dir);
	free(d->dir);
	d->dir = NULL;
}

void
t_skip(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "SKIP: %s\n", line);
	fflush(stderr);
}

bool
t_have_program(const char *prog)
{
	const char *path = getenv("PATH");
	char full[1024];
	const char *p, *end;
	size_t n;

	if (strchr(prog, '/') != NULL)
		return access(prog, X_OK) == 0;
	for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		n = (size_t)(end - p);
		if (n == 0 || n + strlen(prog) + 2 > sizeof(full))
			continue;
		memcpy(full, p, n);
		full[n] = '/';
		strcpy(full + n + 1, prog);
		if (access(full, X_OK) == 0)
			return true;
	}
	return false;
}
