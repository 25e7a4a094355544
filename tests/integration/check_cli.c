/* check_cli.c — the `latchkey` command itself: help, version, unknown subcommands and flags,
 * and that the shipped example configuration validates. */
#include <check.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "testutil.h"

static const char *const subcommands[] = {
	"broker", "sync", "get", "status", "seal", "unseal", "reseal", "keygen", "push", "scan", "dev", NULL,
};

static char *dir;

static void
setup(void)
{
	dir = t_tmpdir();
	ck_assert_ptr_nonnull(dir);
}

static void
teardown(void)
{
	t_rmrf(dir);
	free(dir);
}

/* Runs latchkey with up to three arguments; returns the exit status, output in *ret_out
 * and *ret_err (malloc'd). */
static int
lk(const char *a1, const char *a2, const char *a3, char **ret_out, char **ret_err)
{
	const char *argv[] = { t_latchkey_bin(), a1, a2, a3, NULL };
	char out[600], err[600];
	int status;

	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	status = t_run(argv, NULL, NULL, out, err);
	*ret_out = t_read_file(out);
	*ret_err = t_read_file(err);
	ck_assert_ptr_nonnull(*ret_out);
	ck_assert_ptr_nonnull(*ret_err);
	return status;
}

START_TEST(test_help_lists_every_subcommand)
{
	char *out, *err;

	ck_assert_int_eq(lk("help", NULL, NULL, &out, &err), 0);
	for (size_t i = 0; subcommands[i] != NULL; i++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "\n  %s ", subcommands[i]);
		ck_assert_msg(strstr(out, needle) != NULL, "help does not list %s", subcommands[i]);
	}
	free(out);
	free(err);
	ck_assert_int_eq(lk("version", NULL, NULL, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "latchkey "));
	free(out);
	free(err);
	/* No subcommand: usage on stderr, exit 2. */
	ck_assert_int_eq(lk(NULL, NULL, NULL, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "usage: latchkey"));
	free(out);
	free(err);
}
END_TEST

START_TEST(test_unknown_subcommand)
{
	char *out, *err;

	ck_assert_int_eq(lk("sael", NULL, NULL, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "unknown subcommand 'sael'"));
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
}
END_TEST

/* Every subcommand answers --help with exit 0 and an unknown flag with exit 2 and a message. */
START_TEST(test_subcommand_help_and_unknown_flag)
{
	const char *cmd = subcommands[_i];
	char *out, *err;

	ck_assert_msg(lk(cmd, "--help", NULL, &out, &err) == 0, "%s --help: %s", cmd, err);
	ck_assert_msg(strstr(out, "usage") != NULL || strstr(out, "Usage") != NULL,
		      "%s --help prints no usage", cmd);
	free(out);
	free(err);
	ck_assert_msg(lk(cmd, "--no-such-flag", NULL, &out, &err) == 2, "%s --no-such-flag", cmd);
	ck_assert_msg(err[0] != '\0', "%s: an unknown flag must say why", cmd);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_shipped_broker_config_validates)
{
	const char *src = getenv("LATCHKEY_SRC");
	char path[600], *out, *err;

	snprintf(path, sizeof(path), "%s/deploy/broker/broker.json", src != NULL ? src : ".");
	ck_assert_msg(lk("broker", "--check-config", path, &out, &err) == 0, "%s: %s", path, err);
	free(out);
	free(err);
}
END_TEST

/* The project keeps no plaintext secret in its own sources: its fixtures carry the
 * `latchkey-scan: allow` marker where they must look like one. */
/* The files of the tree: what Git tracks when it is a checkout (files a local run left
 * behind are not the project's), else everything at the top but build output. */
static size_t
source_paths(const char *src, char **paths, size_t max)
{
	char cmd[700], line[1024];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "git -C '%s' ls-files 2>/dev/null", src);
	if ((f = popen(cmd, "r")) != NULL) {
		while (n < max && fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] != '\0' && asprintf(&paths[n], "%s/%s", src, line) >= 0)
				n++;
		}
		if (pclose(f) == 0 && n > 0)
			return n;
		while (n > 0)
			free(paths[--n]);
	}
	{
		char pattern[600];
		glob_t g;

		snprintf(pattern, sizeof(pattern), "%s/*", src);
		if (glob(pattern, 0, NULL, &g) != 0)
			return 0;
		for (size_t i = 0; i < g.gl_pathc && n < max; i++) {
			const char *base = strrchr(g.gl_pathv[i], '/') + 1;

			if (strncmp(base, "build", 5) != 0)
				paths[n++] = strdup(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	return n;
}

/* The most files scanned. */
#define SOURCES_MAX 4096

START_TEST(test_sources_scan_clean)
{
	const char *src = getenv("LATCHKEY_SRC");
	static char *paths[SOURCES_MAX];
	static const char *argv[SOURCES_MAX + 3];
	char out[600], err[600];
	size_t n = 0, np;

	/* Every file, so that a module or a folder added later is scanned without anyone
	 * remembering to list it. */
	np = source_paths(src != NULL ? src : ".", paths, SOURCES_MAX);
	argv[n++] = t_latchkey_bin();
	argv[n++] = "scan";
	for (size_t i = 0; i < np; i++)
		argv[n++] = paths[i];
	argv[n] = NULL;
	/* The module folders are among them. */
	ck_assert_uint_gt(np, 100);
	snprintf(out, sizeof(out), "%s/scan.out", dir);
	snprintf(err, sizeof(err), "%s/scan.err", dir);
	if (t_run(argv, NULL, NULL, out, err) != 0) {
		char *text = t_read_file(out), *etext = t_read_file(err);
		ck_abort_msg("latchkey scan found something in the sources:\n%s%s", text ? text : "",
			     etext ? etext : "");
	}
	for (size_t i = 0; i < np; i++)
		free(paths[i]);
}
END_TEST

/* A running subcommand (here `latchkey dev`) has core dumps off: it holds secrets. */
START_TEST(test_no_core_dumps)
{
	struct t_dev dev;
	char path[64], *limits, *line;

	ck_assert_int_eq(t_dev_start(&dev, NULL), 0);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)dev.proc.pid);
	limits = t_read_file(path);
	t_dev_stop(&dev);
	ck_assert_ptr_nonnull(limits);
	line = strstr(limits, "Max core file size");
	ck_assert_ptr_nonnull(line);
	{
		char soft[32], hard[32];
		/* Both limits: a soft 0 alone is many shells' default and proves nothing. */
		ck_assert_int_eq(sscanf(line, "Max core file size %31s %31s", soft, hard), 2);
		ck_assert_msg(strcmp(soft, "0") == 0 && strcmp(hard, "0") == 0,
			      "core dumps are on: soft %s, hard %s", soft, hard);
	}
	free(limits);
}
END_TEST

/* A Unix socket at path: bound, listening when listen_too (else only bound: a stale
 * socket file nobody answers on). Returns the descriptor. */
static int
unix_socket_at(const char *path, bool listen_too)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (listen_too)
		ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

/* get and status tell a missing socket, a file that is not a socket, a socket nobody
 * listens on and one this user may not connect to apart, and say what to check. */
START_TEST(test_client_socket_messages)
{
	char missing[700], plain[600], stale[600], closed[600], flag[700], *out, *err;
	int fd_stale, fd_closed, status;
	pid_t pid;

	snprintf(missing, sizeof(missing), "--socket=%s/none.sock", dir);
	snprintf(plain, sizeof(plain), "%s/plain", dir);
	ck_assert_int_eq(t_write_file(plain, "x", 0666), 0);
	ck_assert_int_eq(lk("get", "db", missing, &out, &err), 1);
	ck_assert_msg(strstr(err, "no such socket: is the broker running") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(lk("status", missing, NULL, &out, &err), 1);
	ck_assert_msg(strstr(err, "no such socket") != NULL, "%s", err);
	free(out);
	free(err);

	snprintf(flag, sizeof(flag), "--socket=%s", plain);
	ck_assert_int_eq(lk("get", "db", flag, &out, &err), 1);
	ck_assert_msg(strstr(err, "not a socket (it is a regular file)") != NULL, "%s", err);
	free(out);
	free(err);

	snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
	fd_stale = unix_socket_at(stale, false);
	snprintf(flag, sizeof(flag), "--socket=%s", stale);
	ck_assert_int_eq(lk("get", "db", flag, &out, &err), 1);
	ck_assert_msg(strstr(err, "nobody is listening") != NULL, "%s", err);
	free(out);
	free(err);

	/* A live socket only its owner may use, tried by another uid. */
	snprintf(closed, sizeof(closed), "%s/closed.sock", dir);
	fd_closed = unix_socket_at(closed, true);
	ck_assert_int_eq(chmod(closed, 0600), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	snprintf(plain, sizeof(plain), "%s/err-other", dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char sock_flag[700];
		const char *argv[] = { t_latchkey_bin(), "get", "db", sock_flag, NULL };
		int e = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0666);

		snprintf(sock_flag, sizeof(sock_flag), "--socket=%s", closed);
		if (e < 0 || dup2(e, 2) < 0 || setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
		    setuid(65534) < 0)
			_exit(100);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	err = t_read_file(plain);
	ck_assert_msg(err != NULL && strstr(err, "permission denied: this user (uid 65534) may "
					     "not connect") != NULL, "%s", err);
	free(err);
	close(fd_stale);
	close(fd_closed);
}
END_TEST

/* True while the process sleeps in a timed pause (the client's wait between tries). */
static bool
pausing(void *arg)
{
	const struct t_proc *p = arg;
	char path[64], wchan[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/wchan", (long)p->pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	if (fgets(wchan, sizeof(wchan), f) == NULL)
		wchan[0] = '\0';
	fclose(f);
	return strstr(wchan, "nanosleep") != NULL;
}

/* A broker whose queue of new connections is full (a flood from another uid) is busy,
 * not gone: status tries again until it is answered, within its timeout. */
START_TEST(test_client_waits_out_a_full_queue)
{
	static const char answer[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 49\r\n"
		"Connection: close\r\n\r\n{\"ready\":true,\"backend\":{\"ok\":true},\"secrets\":[]}";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char sock[600], flag[700], *log;
	const char *argv[] = { t_latchkey_bin(), "status", "--json", flag, NULL };
	int lfd, fillers[16], nfill = 0, status = -1;
	struct t_proc client;

	snprintf(sock, sizeof(sock), "%s/busy.sock", dir);
	snprintf(flag, sizeof(flag), "--socket=%s", sock);
	ck_assert_int_lt(strlen(sock), sizeof(sun.sun_path));
	memcpy(sun.sun_path, sock, strlen(sock));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	/* Fill the queue: a connect that would wait says so. */
	for (; nfill < 16; nfill++) {
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		ck_assert_int_ge(c, 0);
		if (connect(c, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			ck_assert_int_eq(errno, EAGAIN);
			close(c);
			break;
		}
		fillers[nfill] = c;
	}
	ck_assert_int_lt(nfill, 16);
	ck_assert_int_eq(t_spawn(&client, argv, NULL, t_path(dir, "client.log")), 0);
	/* It found the queue full and is pausing before another try. */
	ck_assert_msg(t_wait_until(pausing, &client, T_DEADLINE_MS),
		      "the client did not wait for the busy socket");
	for (int i = 0; i < nfill; i++)
		close(fillers[i]);
	/* Answer every try from now on until the client is done (the fillers' connections,
	 * closed, are accepted and dropped on the way). */
	for (int64_t end = lk_now_mono_ms() + T_DEADLINE_MS; t_alive(&client) && lk_now_mono_ms() < end;) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		char req[4096];
		int a;

		if (poll(&pfd, 1, 100) <= 0 || (a = accept(lfd, NULL, NULL)) < 0)
			continue;
		if (recv(a, req, sizeof(req), 0) > 0)
			(void)!write(a, answer, sizeof(answer) - 1);
		close(a);
	}
	status = t_stop(&client, SIGTERM, T_DEADLINE_MS);
	log = t_read_file(client.log_path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status: %s", log);
	ck_assert_msg(strstr(log, "\"ready\":true") != NULL, "%s", log);
	free(log);
	close(lfd);
}
END_TEST

static Suite *
cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");
	size_t n = 0;

	/* Room for the deadline of a wait on a busy machine. */
	tcase_set_timeout(tc, 60);

	while (subcommands[n] != NULL)
		n++;
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_help_lists_every_subcommand);
	tcase_add_test(tc, test_unknown_subcommand);
	tcase_add_loop_test(tc, test_subcommand_help_and_unknown_flag, 0, (int)n);
	tcase_add_test(tc, test_shipped_broker_config_validates);
	tcase_add_test(tc, test_no_core_dumps);
	tcase_add_test(tc, test_client_socket_messages);
	tcase_add_test(tc, test_client_waits_out_a_full_queue);
	tcase_add_test(tc, test_sources_scan_clean);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
