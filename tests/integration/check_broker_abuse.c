/* check_broker_abuse.c — the broker's socket used by a hostile local user: 2,000
 * connections from one uid, a slowloris, 64 KiB headers, long paths, odd encodings and
 * wrong methods. Each gets a clear answer (or is closed), the broker stays up, the
 * readiness probe gets in, and a well-behaved client of another uid keeps being answered
 * meanwhile; its latency percentiles are printed as "FIGURE:" lines (docs/reliability.md).
 */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "brokerutil.h"
#include "common/clock.h"

/* The uids of the abuser and of the well-behaved client (neither is an admin). */
#define ABUSER_UID 65534
#define GOOD_UID 65532
/* Connections the abuser opens, and reads the good client makes. */
#define FLOOD_CONNECTIONS 2000
#define GOOD_READS 2000

static int
unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
become(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
		_exit(100);
}

/* Reads one HTTP answer with a Content-Length body; its status, or -1. */
static int
read_answer(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	char *end, *cl;
	long want = -1;

	for (;;) {
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
		buf[got] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		if (want < 0) {
			cl = strcasestr(buf, "\r\nContent-Length:");
			want = cl != NULL && cl < end ? atol(cl + 17) : 0;
		}
		if ((long)(got - (size_t)(end + 4 - buf)) >= want)
			return atoi(buf + 9);
	}
}

/* The good client: GOOD_READS keep-alive reads as GOOD_UID; their latencies (us), one a
 * line, into path; exit status 0 when every one was a 200. */
static pid_t
good_client(struct bf *f, const char *path)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static const char req[] = "GET /v1/secrets/api/password HTTP/1.1\r\nHost: b\r\n\r\n";
		FILE *out = fopen(path, "w");
		char buf[4096];
		int fd = -1, bad = 0;

		become(GOOD_UID);
		for (int i = 0; i < GOOD_READS && out != NULL; i++) {
			struct timespec a, b;

			clock_gettime(CLOCK_MONOTONIC, &a);
			/* A client reconnects when the broker closes an idle connection. */
			if (fd < 0 && (fd = unix_connect(f->sock)) < 0) {
				bad++;
				continue;
			}
			if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 ||
			    read_answer(fd, buf, sizeof(buf)) != 200) {
				close(fd);
				fd = -1;
				bad++;
				continue;
			}
			clock_gettime(CLOCK_MONOTONIC, &b);
			fprintf(out, "%lld\n", (long long)((b.tv_sec - a.tv_sec) * 1000000LL +
							   (b.tv_nsec - a.tv_nsec) / 1000));
		}
		if (out != NULL)
			fclose(out);
		_exit(bad > 0 ? 1 : 0);
	}
	return pid;
}

/* p50, p99 and max of the latencies in path (us), printed under label; returns p99. */
static double
latency_figure(const char *path, const char *label)
{
	char *text = t_read_file(path), *p, *nl;
	double *v = calloc(GOOD_READS + 1, sizeof(*v)), p50, p99, max;
	size_t n = 0;

	ck_assert_ptr_nonnull(text);
	for (p = text; *p != '\0' && n < GOOD_READS; p = nl + 1) {
		v[n++] = atof(p);
		if ((nl = strchr(p, '\n')) == NULL)
			break;
	}
	p50 = bf_percentile(v, n, 50);
	p99 = bf_percentile(v, n, 99);
	max = bf_percentile(v, n, 100);
	printf("FIGURE: %s: %zu reads by another uid, p50 %.0f us, p99 %.0f us, max %.0f us\n",
	       label, n, p50, p99, max);
	free(v);
	free(text);
	return p99;
}

static long
metric(struct bf *f, const char *name)
{
	char *body = NULL, *p, needle[256];
	long v = -1;

	long status = 0;

	snprintf(needle, sizeof(needle), "\n%s ", name);
	/* During a flood the socket's queue of new connections may be full for a moment:
	 * a connect that fails (no status) is tried again until the deadline. */
	for (int64_t end = lk_now_mono_ms() + T_DEADLINE_MS;
	     (status = bf_get(f, "/metrics", &body)) == 0 && lk_now_mono_ms() < end;) {
		struct timespec ts = { 0, 20 * 1000000L };

		free(body);
		body = NULL;
		nanosleep(&ts, NULL);
	}
	if (status == 200 && (p = strstr(body, needle)) != NULL)
		v = atol(p + strlen(needle));
	free(body);
	return v;
}

static bool
api_served(void *arg)
{
	return bf_get(arg, "/v1/secrets/api/password", NULL) == 200;
}

/* The broker, ready and serving api (which is not required: ready does not wait for it). */
static void
start(struct bf *f, const char *extra)
{
	bf_dev(f, "1h", "2h");
	bf_config(f, "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true},"
		  "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}", extra);
	ck_assert(bf_start(f));
	ck_assert(bf_wait_ready(f, T_DEADLINE_MS));
	ck_assert(t_wait_until(api_served, f, T_DEADLINE_MS));
}

static int
wait_child(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* 2,000 connections from one uid, then a loop of new ones: it holds its 64 and the rest
 * are refused with a 503; the probe (the broker's own uid) and another uid are answered
 * meanwhile. */
START_TEST(test_connection_flood)
{
	char lat_path[700], ready_path[700];
	pid_t abuser, good;
	int pipefd[2], status;
	char c;
	struct bf f;

	start(&f, NULL);
	snprintf(lat_path, sizeof(lat_path), "%s/latencies", f.dir);
	snprintf(ready_path, sizeof(ready_path), "%s/base", f.dir);
	/* The good client alone first: the baseline. */
	ck_assert_int_eq(wait_child(good_client(&f, ready_path)), 0);
	latency_figure(ready_path, "no abuse");

	ck_assert_int_eq(pipe(pipefd), 0);
	abuser = fork();
	ck_assert_int_ge(abuser, 0);
	if (abuser == 0) {
		struct rlimit rl = { FLOOD_CONNECTIONS + 64, FLOOD_CONNECTIONS + 64 };
		static int fds[FLOOD_CONNECTIONS];

		close(pipefd[0]);
		setrlimit(RLIMIT_NOFILE, &rl);
		become(ABUSER_UID);
		for (int i = 0; i < FLOOD_CONNECTIONS; i++)
			fds[i] = unix_connect(f.sock);
		/* Holding what it got (the refused ones closed by the broker, the others
		 * idle), tell the test, then keep the acceptor busy: connect, close, again,
		 * until killed. */
		(void)fds;
		(void)!write(pipefd[1], "x", 1);
		for (;;) {
			int k = unix_connect(f.sock);

			if (k >= 0)
				close(k);
		}
	}
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
	good = good_client(&f, lat_path);
	/* The readiness probe, as the broker's own uid. */
	{
		char flag[700], err_path[700], *err;
		const char *argv[] = { t_latchkey_bin(), "status", flag, NULL };
		int rc;

		snprintf(flag, sizeof(flag), "--socket=%s", f.sock);
		snprintf(err_path, sizeof(err_path), "%s/status.err", f.dir);
		rc = t_run(argv, NULL, NULL, NULL, err_path);
		err = t_read_file(err_path);
		ck_assert_msg(rc == 0, "latchkey status during the flood: %d: %s", rc,
			      err != NULL ? err : "");
		free(err);
	}
	status = wait_child(good);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the other uid's reads failed during the flood");
	latency_figure(lat_path, "2,000 connections from one uid");
	ck_assert_int_ge(metric(&f, "latchkey_broker_connections_refused_total{reason=\"per_uid\"}"),
			 FLOOD_CONNECTIONS - 64 - 8);
	printf("FIGURE: connections held by the flooding uid: %ld of %d\n",
	       metric(&f, "latchkey_broker_connections") - 1, FLOOD_CONNECTIONS);
	kill(abuser, SIGKILL);
	wait_child(abuser);
	close(pipefd[0]);
	ck_assert(t_alive(&f.broker));
	bf_stop(&f);
}
END_TEST

/* A slowloris: connections that send a byte now and then are closed at the header
 * deadline, counted; another uid is answered meanwhile. */
START_TEST(test_slowloris)
{
	char lat_path[700];
	pid_t slow, good;
	int status;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	bf_config_listen(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}",
			 "\"header_timeout\": \"2s\"", NULL);
	ck_assert(bf_start(&f));
	ck_assert(t_wait_until(api_served, &f, T_DEADLINE_MS));
	snprintf(lat_path, sizeof(lat_path), "%s/latencies", f.dir);
	slow = fork();
	ck_assert_int_ge(slow, 0);
	if (slow == 0) {
		static int fds[100];
		int closed = 0;

		become(ABUSER_UID);
		for (int i = 0; i < 100; i++)
			if ((fds[i] = unix_connect(f.sock)) >= 0)
				(void)!send(fds[i], "GET /v1/secrets/api HTTP/1.1\r\n", 30, MSG_NOSIGNAL);
		/* A byte per connection every 200 ms, for 6 s: three times the deadline. */
		for (int round = 0; round < 30; round++) {
			struct timespec ts = { 0, 200 * 1000000L };

			for (int i = 0; i < 100; i++)
				if (fds[i] >= 0 && send(fds[i], "X", 1, MSG_NOSIGNAL) < 0) {
					close(fds[i]);
					fds[i] = -1;
					closed++;
				}
			nanosleep(&ts, NULL);
		}
		_exit(closed >= 99 ? 0 : 1);
	}
	good = good_client(&f, lat_path);
	status = wait_child(good);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the other uid's reads failed during the slowloris");
	latency_figure(lat_path, "slowloris of 100 connections");
	status = wait_child(slow);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the dribbling connections were not all closed");
	ck_assert_int_ge(metric(&f, "latchkey_broker_header_timeouts_total"), 60);
	ck_assert(t_alive(&f.broker));
	bf_stop(&f);
}
END_TEST

/* Sends raw bytes on a fresh connection; the status of the answer, 0 when the broker
 * closed the connection without one. */
static int
raw_status(struct bf *f, const char *data, size_t len)
{
	char buf[8192];
	int fd = unix_connect(f->sock), st = 0;
	size_t got = 0;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	while (len > 0 && (n = send(fd, data, len, MSG_NOSIGNAL)) > 0) {
		data += n;
		len -= (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	while (got + 1 < sizeof(buf) && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	if (got > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		st = atoi(buf + 9);
	close(fd);
	return st;
}

static int
raw_get(struct bf *f, const char *method, const char *target)
{
	char *req;
	int st;

	ck_assert_int_ge(asprintf(&req, "%s %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
				  method, target), 0);
	st = raw_status(f, req, strlen(req));
	free(req);
	return st;
}

/* Oversized, malformed and unexpected requests: each gets a clear status (or, for bytes
 * that are not HTTP, a closed connection), and the broker goes on serving. */
START_TEST(test_bad_requests)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH", "LIST",
					       "OPTIONS", "HEAD" };
	char *big, *req;
	size_t n;
	struct bf f;
	int st;

	start(&f, NULL);
	/* 64 KiB of headers. */
	big = malloc(70000);
	ck_assert_ptr_nonnull(big);
	n = (size_t)sprintf(big, "GET /v1/secrets/api HTTP/1.1\r\nHost: b\r\nX-Big: ");
	memset(big + n, 'h', 65536);
	n += 65536;
	n += (size_t)sprintf(big + n, "\r\n\r\n");
	st = raw_status(&f, big, n);
	ck_assert_msg(st == 431, "64 KiB of headers: %d", st);
	/* A 40 KiB path: longer than the whole request buffer. */
	n = (size_t)sprintf(big, "GET /v1/secrets/");
	memset(big + n, 'p', 40000);
	n += 40000;
	n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: b\r\n\r\n");
	st = raw_status(&f, big, n);
	ck_assert_msg(st == 414 || st == 431, "a 40 KiB path: %d", st);
	/* A 3 KiB path fits, and names no secret. */
	memcpy(big, "/v1/secrets/", 12);
	memset(big + 12, 'q', 3000);
	big[3012] = '\0';
	ck_assert_int_eq(raw_get(&f, "GET", big), 404);
	free(big);
	/* Encodings. */
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/api%00x"), 400);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/%2e%2e/%2e%2e/etc/passwd"), 404);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/../v1/secrets/api"), 404);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/%ff%fe"), 404);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/api%2Fpassword"), 200);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/api?index=%31&wait=%2531"), 400);
	ck_assert_int_eq(raw_get(&f, "GET", "/v1/secrets/api?index=1&index=2&wait=1ms"), 200);
	/* Methods. */
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		st = raw_get(&f, methods[i], "/v1/secrets/api");
		ck_assert_msg(st == 405, "%s: %d", methods[i], st);
	}
	/* A body over 4 KiB. */
	ck_assert_int_ge(asprintf(&req, "POST /v1/secrets/api HTTP/1.1\r\nHost: b\r\n"
				  "Content-Length: 100000\r\n\r\n"), 0);
	ck_assert_int_eq(raw_status(&f, req, strlen(req)), 413);
	free(req);
	/* Not HTTP at all: a TLS hello. */
	st = raw_status(&f, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
	ck_assert_msg(st == 0 || st == 400, "a TLS hello: %d", st);
	/* HTTP/1.0. */
	req = "GET /v1/secrets/api/password HTTP/1.0\r\n\r\n";
	ck_assert_int_eq(raw_status(&f, req, strlen(req)), 200);
	ck_assert(t_alive(&f.broker));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api/password", NULL), 200);
	bf_stop(&f);
}
END_TEST

#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 120); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
abuse_suite(void)
{
	Suite *s = suite_create("broker-abuse");

	ADD(s, test_connection_flood);
	ADD(s, test_slowloris);
	ADD(s, test_bad_requests);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(abuse_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
