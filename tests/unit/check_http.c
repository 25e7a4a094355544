/* check_http.c — the HTTP client transport (http/) against real servers over loopback and
 * Unix sockets: a scripted raw server for keep-alive, caps, truncation, stalls, Retry-After,
 * redirects and streams; `openssl s_server` (a real TLS server) for CA files, inline CAs,
 * server names and client certificates; and a redacted trace. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "crypto/secret.h"
#include "http/http.h"
#include "testutil.h"

/* ---- a scripted raw HTTP server ---- */

/* Bytes of one request kept for inspection. */
#define RAW_REQ_MAX 8192

struct raw {
	int lfd;
	int port;
	char sock[108];          /* a Unix socket path instead of TCP when set */
	pthread_t th;
	atomic_bool stop;
	atomic_int accepts;      /* connections accepted */
	atomic_int requests;
	pthread_mutex_t lock;
	char last[RAW_REQ_MAX];  /* the last request's head */
};

static void
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Answers one request by its path; false when the connection must close. */
static bool
raw_answer(struct raw *rs, int fd, const char *head)
{
	char path[256] = "", out[4096];
	int n;

	sscanf(head, "%*s %255s", path);
	if (strcmp(path, "/ok") == 0) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			     "Content-Length: 5\r\n\r\nhello");
		send_all(fd, out, (size_t)n);
		return true;
	}
	if (strcmp(path, "/big") == 0) {
		char body[2048];

		memset(body, 'x', sizeof(body));
		n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
			     sizeof(body));
		send_all(fd, out, (size_t)n);
		send_all(fd, body, sizeof(body));
		return true;
	}
	if (strcmp(path, "/empty") == 0) {
		send_all(fd, "HTTP/1.1 204 No Content\r\n\r\n", 27);
		return true;
	}
	if (strcmp(path, "/retry") == 0) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
			     "Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nslow");
		send_all(fd, out, (size_t)n);
		return true;
	}
	if (strcmp(path, "/redirect") == 0) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 302 Found\r\nLocation: /ok\r\n"
			     "Content-Length: 0\r\n\r\n");
		send_all(fd, out, (size_t)n);
		return true;
	}
	if (strcmp(path, "/truncated") == 0) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
		send_all(fd, out, (size_t)n);
		return false;
	}
	if (strcmp(path, "/stream") == 0) {
		n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			     "6\r\nline1\n\r\n6\r\nline2\n\r\n6\r\nline3\n\r\n0\r\n\r\n");
		send_all(fd, out, (size_t)n);
		return true;
	}
	if (strcmp(path, "/stall") == 0) {
		/* Never answers: the client's timeout must end it. */
		while (!atomic_load(&rs->stop)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			char b[64];

			if (poll(&p, 1, 50) > 0 && recv(fd, b, sizeof(b), 0) <= 0)
				break;
		}
		return false;
	}
	send_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45);
	return true;
}

static void
raw_serve(struct raw *rs, int fd)
{
	char buf[RAW_REQ_MAX];
	size_t len = 0;

	for (;;) {
		char *end = len > 0 ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t head, body = 0;
		const char *cl;
		ssize_t n;

		if (end != NULL) {
			head = (size_t)(end - buf) + 4;
			buf[head - 1] = '\0';
			cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl != NULL)
				body = strtoul(cl + 17, NULL, 10);
			if (len >= head + body) {
				pthread_mutex_lock(&rs->lock);
				snprintf(rs->last, sizeof(rs->last), "%s", buf);
				pthread_mutex_unlock(&rs->lock);
				atomic_fetch_add(&rs->requests, 1);
				if (!raw_answer(rs, fd, buf))
					return;
				memmove(buf, buf + head + body, len - head - body);
				len -= head + body;
				continue;
			}
			buf[head - 1] = '\n';
		}
		if (len == sizeof(buf) || atomic_load(&rs->stop))
			return;
		if (poll(&p, 1, 50) == 0)
			continue;
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return;
		len += (size_t)n;
	}
}

static void *
raw_main(void *arg)
{
	struct raw *rs = arg;

	while (!atomic_load(&rs->stop)) {
		struct pollfd p = { .fd = rs->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((fd = accept(rs->lfd, NULL, NULL)) < 0)
			continue;
		atomic_fetch_add(&rs->accepts, 1);
		/* One connection at a time is all these tests need. */
		raw_serve(rs, fd);
		close(fd);
	}
	return NULL;
}

static void
raw_start(struct raw *rs, const char *unix_path)
{
	memset(rs, 0, sizeof(*rs));
	pthread_mutex_init(&rs->lock, NULL);
	if (unix_path != NULL) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(rs->sock, sizeof(rs->sock), "%s", unix_path);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", unix_path);
		rs->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(bind(rs->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sin);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(bind(rs->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		ck_assert_int_eq(getsockname(rs->lfd, (struct sockaddr *)&sin, &sl), 0);
		rs->port = ntohs(sin.sin_port);
	}
	ck_assert_int_eq(listen(rs->lfd, 16), 0);
	ck_assert_int_eq(pthread_create(&rs->th, NULL, raw_main, rs), 0);
}

static void
raw_stop(struct raw *rs)
{
	atomic_store(&rs->stop, true);
	pthread_join(rs->th, NULL);
	close(rs->lfd);
	if (rs->sock[0] != '\0')
		unlink(rs->sock);
	pthread_mutex_destroy(&rs->lock);
}

static const char *
url(const struct raw *rs, const char *path)
{
	static char u[4][256];
	static int slot;

	slot = (slot + 1) % 4;
	if (rs->sock[0] != '\0')
		snprintf(u[slot], sizeof(u[slot]), "http://localhost%s", path);
	else
		snprintf(u[slot], sizeof(u[slot]), "http://127.0.0.1:%d%s", rs->port, path);
	return u[slot];
}

static struct lk_http_client *
client(const struct lk_http_client_config *cfg)
{
	struct lk_http_client *c = NULL;
	struct lk_error err = { 0 };

	ck_assert_msg(lk_http_client_new(cfg, &c, &err) == 0, "%s", err.msg);
	return c;
}

static int
get(struct lk_http_client *c, const char *u, struct lk_http_response *resp, struct lk_error *err)
{
	const struct lk_http_request req = { .method = "GET", .url = u };

	return lk_http_perform(c, &req, resp, err);
}

/* ---- tests ---- */

START_TEST(keepalive_and_headers)
{
	const struct lk_http_client_config cfg = { 0 };
	const char *headers[] = { "X-One: 1", "Accept: application/json", NULL };
	struct lk_secret *token = lk_secret_from_str("Authorization: Bearer t0ken-value-1234");
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c;
	struct raw rs;

	raw_start(&rs, NULL);
	c = client(&cfg);
	for (int i = 0; i < 3; i++) {
		const struct lk_http_request req = {
			.method = "GET", .url = url(&rs, "/ok"), .headers = headers,
			.secret_header = token,
		};

		ck_assert_int_eq(lk_http_perform(c, &req, &resp, &err), 0);
		ck_assert_int_eq(resp.status, 200);
		ck_assert_str_eq(resp.body.data, "hello");
		ck_assert_str_eq(resp.content_type, "text/plain");
		ck_assert_int_eq(resp.retry_after_ms, -1);
	}
	/* One connection for all three: it was kept. */
	ck_assert_int_eq(atomic_load(&rs.accepts), 1);
	pthread_mutex_lock(&rs.lock);
	ck_assert_ptr_nonnull(strstr(rs.last, "X-One: 1\r\n"));
	ck_assert_ptr_nonnull(strstr(rs.last, "Authorization: Bearer t0ken-value-1234\r\n"));
	ck_assert_ptr_null(strstr(rs.last, "Expect:"));
	pthread_mutex_unlock(&rs.lock);
	/* An empty body reads as "". */
	ck_assert_int_eq(get(c, url(&rs, "/empty"), &resp, &err), 0);
	ck_assert_int_eq(resp.status, 204);
	ck_assert_str_eq(resp.body.data, "");
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	lk_secret_free(token);
	raw_stop(&rs);
}
END_TEST

START_TEST(bad_headers_refused)
{
	const struct lk_http_client_config cfg = { 0 };
	const char *injected[] = { "X-A: 1\r\nX-Injected: 2", NULL };
	const char *noname[] = { ": v", NULL };
	struct lk_secret *bad = lk_secret_from_str("X-Vault-Token: a\nb");
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c = client(&cfg);
	struct raw rs;

	raw_start(&rs, NULL);
	{
		const struct lk_http_request a = { .method = "GET", .url = url(&rs, "/ok"), .headers = injected };
		const struct lk_http_request b = { .method = "GET", .url = url(&rs, "/ok"), .headers = noname };
		const struct lk_http_request s = { .method = "GET", .url = url(&rs, "/ok"), .secret_header = bad };
		const struct lk_http_request f = { .method = "GET", .url = "ftp://127.0.0.1/x" };

		ck_assert_int_eq(lk_http_perform(c, &a, &resp, &err), -EINVAL);
		ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_CONFIG);
		ck_assert_int_eq(lk_http_perform(c, &b, &resp, &err), -EINVAL);
		ck_assert_int_eq(lk_http_perform(c, &s, &resp, &err), -EINVAL);
		/* The message never holds the header's value. */
		ck_assert_ptr_null(strstr(err.msg, "X-Vault-Token: a"));
		ck_assert_int_eq(lk_http_perform(c, &f, &resp, &err), -EINVAL);
	}
	ck_assert_int_eq(atomic_load(&rs.requests), 0);
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	lk_secret_free(bad);
	raw_stop(&rs);
}
END_TEST

START_TEST(body_cap_truncation_and_timeout)
{
	const struct lk_http_client_config cfg = { .timeout_ms = 400 };
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c = client(&cfg);
	struct raw rs;

	raw_start(&rs, NULL);
	{
		const struct lk_http_request at = { .method = "GET", .url = url(&rs, "/big"), .max_body = 2048 };
		const struct lk_http_request over = { .method = "GET", .url = url(&rs, "/big"), .max_body = 2047, .wipe = true };

		ck_assert_int_eq(lk_http_perform(c, &at, &resp, &err), 0);
		ck_assert_int_eq(resp.body.len, 2048);
		ck_assert_int_eq(lk_http_perform(c, &over, &resp, &err), -EMSGSIZE);
		ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_TOO_LARGE);
		ck_assert(!resp.retryable);
		ck_assert_ptr_nonnull(strstr(err.msg, "2047"));
	}
	ck_assert_int_eq(get(c, url(&rs, "/truncated"), &resp, &err), -EIO);
	ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_TRANSPORT);
	ck_assert(resp.retryable);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_int_eq(get(c, url(&rs, "/stall"), &resp, &err), -ETIMEDOUT);
	ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_TIMEOUT);
	ck_assert(resp.retryable);
	/* The client still works after failures. */
	ck_assert_int_eq(get(c, url(&rs, "/ok"), &resp, &err), 0);
	ck_assert_str_eq(resp.body.data, "hello");
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	raw_stop(&rs);
}
END_TEST

START_TEST(retry_after_and_redirects)
{
	const struct lk_http_client_config none = { 0 }, follow = { .redirects = 2 };
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c = client(&none), *f = client(&follow);
	struct raw rs;

	raw_start(&rs, NULL);
	ck_assert_int_eq(get(c, url(&rs, "/retry"), &resp, &err), 0);
	ck_assert_int_eq(resp.status, 429);
	ck_assert_int_eq(resp.retry_after_ms, 7000);
	ck_assert_str_eq(resp.body.data, "slow");
	/* Not followed unless asked. */
	ck_assert_int_eq(get(c, url(&rs, "/redirect"), &resp, &err), 0);
	ck_assert_int_eq(resp.status, 302);
	ck_assert_str_eq(resp.location, "/ok");
	/* The raw server serves one connection at a time: let this one go. */
	c = lk_http_client_free(c);
	ck_assert_int_eq(get(f, url(&rs, "/redirect"), &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_str_eq(resp.body.data, "hello");
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	lk_http_client_free(f);
	raw_stop(&rs);
}
END_TEST

struct lines {
	char text[256];
	int calls;
	int stop_after;
};

static int
on_data(void *arg, const char *p, size_t n)
{
	struct lines *l = arg;

	strncat(l->text, p, n < sizeof(l->text) - strlen(l->text) - 1 ? n :
		sizeof(l->text) - strlen(l->text) - 1);
	return ++l->calls >= l->stop_after && l->stop_after > 0;
}

START_TEST(stream_and_abort)
{
	const struct lk_http_client_config cfg = { 0 };
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c = client(&cfg);
	struct lines all = { .stop_after = 0 }, first = { .stop_after = 1 };
	struct raw rs;

	raw_start(&rs, NULL);
	{
		const struct lk_http_request req = {
			.method = "GET", .url = url(&rs, "/stream"), .on_data = on_data, .arg = &all,
			.max_body = 4,   /* does not apply to a stream */
		};
		const struct lk_http_request stop = {
			.method = "GET", .url = url(&rs, "/stream"), .on_data = on_data, .arg = &first,
		};

		ck_assert_int_eq(lk_http_perform(c, &req, &resp, &err), 0);
		ck_assert_str_eq(all.text, "line1\nline2\nline3\n");
		ck_assert_int_eq(resp.body.len, 0);
		ck_assert_int_eq(lk_http_perform(c, &stop, &resp, &err), -ECANCELED);
		ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_ABORTED);
		ck_assert_int_eq(first.calls, 1);
	}
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	raw_stop(&rs);
}
END_TEST

START_TEST(unix_socket_and_refused)
{
	char *dir = t_tmpdir();
	const struct lk_http_client_config cfg = { .unix_socket = t_path(dir, "s.sock") };
	const struct lk_http_client_config missing = { .unix_socket = t_path(dir, "none.sock") };
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c, *m;
	struct raw rs;

	raw_start(&rs, t_path(dir, "s.sock"));
	c = client(&cfg);
	m = client(&missing);
	ck_assert_int_eq(get(c, url(&rs, "/ok"), &resp, &err), 0);
	ck_assert_str_eq(resp.body.data, "hello");
	/* A socket nobody made: refused, and retryable (it may appear). */
	ck_assert_int_eq(get(m, url(&rs, "/ok"), &resp, &err), -ECONNREFUSED);
	ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_CONNECT);
	ck_assert(resp.retryable);
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	lk_http_client_free(m);
	raw_stop(&rs);
	t_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(trace_is_redacted)
{
	char *dir = t_tmpdir();
	const char *log = t_path(dir, "trace");
	const struct lk_http_client_config cfg = { 0 };
	struct lk_secret *token = lk_secret_from_str("X-Vault-Token: hvs.trace-me-not-0123456789");
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c;
	struct raw rs;
	char *text;
	int saved;

	raw_start(&rs, NULL);
	setenv("LATCHKEY_HTTP_TRACE", "1", 1);
	c = client(&cfg);
	unsetenv("LATCHKEY_HTTP_TRACE");
	saved = dup(STDERR_FILENO);
	ck_assert(freopen(log, "w", stderr) != NULL);
	{
		const struct lk_http_request req = {
			.method = "POST", .url = url(&rs, "/ok"), .secret_header = token,
			.body = "body-secret-42", .body_len = 14, .has_body = true,
		};

		ck_assert_int_eq(lk_http_perform(c, &req, &resp, &err), 0);
	}
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	text = t_read_file(log);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "X-Vault-Token: [redacted]"));
	ck_assert_ptr_nonnull(strstr(text, "[14 body bytes]"));
	ck_assert_ptr_null(strstr(text, "trace-me-not"));
	ck_assert_ptr_null(strstr(text, "body-secret"));
	ck_assert_ptr_null(strstr(text, "hello"));
	free(text);
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	lk_secret_free(token);
	raw_stop(&rs);
	t_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(escape)
{
	char out[32];

	ck_assert_int_eq(lk_http_escape("a b/c=d&e~f", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "a%20b%2Fc%3Dd%26e~f");
	ck_assert_int_eq(lk_http_escape("0123456789", out, 10), -ENAMETOOLONG);
	ck_assert_int_eq(lk_http_escape("012345678", out, 10), 0);
}
END_TEST

START_TEST(retry_after_values)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const int64_t t0 = 784111777000LL;
	int64_t ms = -7;

	ck_assert_int_eq(lk_http_retry_after_parse("5", t0, &ms), 0);
	ck_assert_int_eq(ms, 5000);
	ck_assert_int_eq(lk_http_retry_after_parse("  120 \r\n", t0, &ms), 0);
	ck_assert_int_eq(ms, 120000);
	ck_assert_int_eq(lk_http_retry_after_parse("0", t0, &ms), 0);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(lk_http_retry_after_parse("Sun, 06 Nov 1994 08:49:47 GMT", t0, &ms), 0);
	ck_assert_int_eq(ms, 10000);
	ck_assert_int_eq(lk_http_retry_after_parse("Sun, 06 Nov 1994 08:49:00 GMT", t0, &ms), 0);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(lk_http_retry_after_parse("99999999999999999999999", t0, &ms), 0);
	ck_assert_int_eq(ms, LK_HTTP_RETRY_AFTER_MAX_MS);
	ms = -7;
	ck_assert_int_eq(lk_http_retry_after_parse("", t0, &ms), -EINVAL);
	ck_assert_int_eq(lk_http_retry_after_parse("-5", t0, &ms), -EINVAL);
	ck_assert_int_eq(lk_http_retry_after_parse("5s", t0, &ms), -EINVAL);
	ck_assert_int_eq(lk_http_retry_after_parse("soon", t0, &ms), -EINVAL);
	ck_assert_int_eq(lk_http_retry_after_parse("Sun, 06 Nov 1994 08:49:47 GMT x", t0, &ms),
	    -EINVAL);
	ck_assert_int_eq(ms, -7);
}
END_TEST

/* ---- TLS against openssl s_server ---- */

struct tls {
	char *dir;
	struct t_proc server;
	int port;
};

static int
openssl(const char *dir, const char *const args[])
{
	const char *argv[32] = { "/usr/bin/openssl" };
	size_t n = 1;

	for (; args[n - 1] != NULL && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	return t_run(argv, NULL, NULL, NULL, t_path(dir, "openssl.err"));
}

/* A CA, a server certificate for "kube.test" (and no IP), a client certificate; then
 * s_server on a free port, requiring a client certificate when need_client. */
static bool
tls_start(struct tls *t, bool need_client)
{
	char ext[256];
	const char *d;

	memset(t, 0, sizeof(*t));
	if (access("/usr/bin/openssl", X_OK) != 0) {
		t_skip("TLS tests: /usr/bin/openssl not found (Debian package openssl)");
		return false;
	}
	t->dir = t_tmpdir();
	d = t->dir;
	snprintf(ext, sizeof(ext), "subjectAltName=DNS:kube.test");
	ck_assert_int_eq(t_write_file(t_path(d, "ext"), ext, 0600), 0);
	ck_assert_int_eq(openssl(d, (const char *const[]){ "req", "-x509", "-newkey", "rsa:2048",
		"-nodes", "-keyout", t_path(d, "ca.key"), "-out", t_path(d, "ca.crt"), "-days", "2",
		"-subj", "/CN=test-ca", NULL }), 0);
	ck_assert_int_eq(openssl(d, (const char *const[]){ "req", "-newkey", "rsa:2048", "-nodes",
		"-keyout", t_path(d, "srv.key"), "-out", t_path(d, "srv.csr"), "-subj", "/CN=kube.test",
		NULL }), 0);
	ck_assert_int_eq(openssl(d, (const char *const[]){ "x509", "-req", "-in", t_path(d, "srv.csr"),
		"-CA", t_path(d, "ca.crt"), "-CAkey", t_path(d, "ca.key"), "-CAcreateserial", "-out",
		t_path(d, "srv.crt"), "-days", "2", "-extfile", t_path(d, "ext"), NULL }), 0);
	ck_assert_int_eq(openssl(d, (const char *const[]){ "req", "-newkey", "rsa:2048", "-nodes",
		"-keyout", t_path(d, "cli.key"), "-out", t_path(d, "cli.csr"), "-subj", "/CN=client",
		NULL }), 0);
	ck_assert_int_eq(openssl(d, (const char *const[]){ "x509", "-req", "-in", t_path(d, "cli.csr"),
		"-CA", t_path(d, "ca.crt"), "-CAkey", t_path(d, "ca.key"), "-CAcreateserial", "-out",
		t_path(d, "cli.crt"), "-days", "2", NULL }), 0);
	{
		const char *argv[] = { "/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:0",
			"-cert", t_path(d, "srv.crt"), "-key", t_path(d, "srv.key"),
			"-CAfile", t_path(d, "ca.crt"), "-www", "-naccept", "100",
			"-verify", "1", NULL, NULL };
		char line[256], *colon;

		/* -Verify makes the client certificate required. */
		if (need_client) {
			argv[13] = "-Verify";
			argv[15] = "-verify_return_error";
		}
		ck_assert_int_eq(t_spawn(&t->server, argv, NULL, t_path(d, "server.log")), 0);
		/* "ACCEPT 127.0.0.1:PORT": port 0 picked a free one. */
		ck_assert_msg(t_wait_log(&t->server, "ACCEPT 127.0.0.1:", T_DEADLINE_MS, line,
					 sizeof(line)), "openssl s_server did not start");
		colon = strrchr(line, ':');
		t->port = colon != NULL ? atoi(colon + 1) : 0;
		ck_assert_int_gt(t->port, 0);
	}
	return true;
}

static void
tls_stop(struct tls *t)
{
	t_stop(&t->server, SIGTERM, 5000);
	t_rmrf(t->dir);
	free(t->dir);
}

START_TEST(tls_ca_server_name_and_client_cert)
{
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c;
	char u[64], *ca_pem, *cli_pem;
	struct lk_secret *cli_key;
	struct tls t;

	if (!tls_start(&t, true))
		return;
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/", t.port);
	ca_pem = t_read_file(t_path(t.dir, "ca.crt"));
	cli_pem = t_read_file(t_path(t.dir, "cli.crt"));
	ck_assert_int_eq(lk_secret_read_file(t_path(t.dir, "cli.key"), 0, false, &cli_key), 0);

	/* The certificate names kube.test, not 127.0.0.1: refused, and not worth a retry. */
	{
		const struct lk_http_client_config cfg = {
			.tls = { .ca_file = t_path(t.dir, "ca.crt"), .cert_file = t_path(t.dir, "cli.crt"),
				 .key_file = t_path(t.dir, "cli.key") },
		};

		c = client(&cfg);
		ck_assert_int_eq(get(c, u, &resp, &err), -EIO);
		ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_TLS);
		ck_assert(!resp.retryable);
		lk_http_client_free(c);
	}
	/* With the server name, files for everything. */
	{
		const struct lk_http_client_config cfg = {
			.tls = { .ca_file = t_path(t.dir, "ca.crt"), .cert_file = t_path(t.dir, "cli.crt"),
				 .key_file = t_path(t.dir, "cli.key"), .server_name = "kube.test" },
		};

		c = client(&cfg);
		ck_assert_msg(get(c, u, &resp, &err) == 0, "%s", err.msg);
		ck_assert_int_eq(resp.status, 200);
		/* s_server -www describes the session, client certificate included. */
		ck_assert_ptr_nonnull(strstr(resp.body.data, "Subject: CN=client"));
		lk_http_client_free(c);
	}
	/* Inline PEM for the CA, the certificate and the key (a kubeconfig's *-data). */
	{
		const struct lk_http_client_config cfg = {
			.tls = { .ca_pem = ca_pem, .ca_pem_len = strlen(ca_pem), .cert_pem = cli_pem,
				 .cert_pem_len = strlen(cli_pem), .key_pem = cli_key,
				 .server_name = "kube.test" },
		};

		c = client(&cfg);
		ck_assert_msg(get(c, u, &resp, &err) == 0, "%s", err.msg);
		ck_assert_ptr_nonnull(strstr(resp.body.data, "Subject: CN=client"));
		lk_http_client_free(c);
	}
	/* No client certificate: the server refuses the handshake. */
	{
		const struct lk_http_client_config cfg = {
			.tls = { .ca_pem = ca_pem, .ca_pem_len = strlen(ca_pem), .server_name = "kube.test" },
		};

		c = client(&cfg);
		ck_assert_int_lt(get(c, u, &resp, &err), 0);
		lk_http_client_free(c);
	}
	/* insecure: no verification at all. */
	{
		const struct lk_http_client_config cfg = {
			.tls = { .insecure = true, .cert_file = t_path(t.dir, "cli.crt"),
				 .key_file = t_path(t.dir, "cli.key") },
		};

		c = client(&cfg);
		ck_assert_msg(get(c, u, &resp, &err) == 0, "%s", err.msg);
		lk_http_client_free(c);
	}
	lk_http_response_clear(&resp);
	lk_secret_free(cli_key);
	free(ca_pem);
	free(cli_pem);
	tls_stop(&t);
}
END_TEST

/* An https server that redirects to plain http: the transport must not follow. */
static const char redirect_py[] =
	"import http.server, ssl, sys\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def do_GET(self):\n"
	"        self.send_response(302)\n"
	"        self.send_header('Location', sys.argv[3])\n"
	"        self.send_header('Content-Length', '0')\n"
	"        self.end_headers()\n"
	"    def log_message(self, *a):\n"
	"        pass\n"
	"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
	"c.load_cert_chain(sys.argv[1], sys.argv[2])\n"
	"s.socket = c.wrap_socket(s.socket, server_side=True)\n"
	"print('PORT', s.server_address[1], flush=True)\n"
	"s.serve_forever()\n";

START_TEST(https_never_redirects_to_http)
{
	struct lk_http_response resp = { 0 };
	struct lk_error err = { 0 };
	struct lk_http_client *c;
	struct t_proc py;
	struct raw rs;
	struct tls t;
	char line[128], u[64], target[128];

	if (!tls_start(&t, false))
		return;
	if (access("/usr/bin/python3", X_OK) != 0) {
		t_skip("https_never_redirects_to_http: /usr/bin/python3 not found");
		tls_stop(&t);
		return;
	}
	raw_start(&rs, NULL);
	snprintf(target, sizeof(target), "http://127.0.0.1:%d/ok", rs.port);
	ck_assert_int_eq(t_write_file(t_path(t.dir, "redirect.py"), redirect_py, 0600), 0);
	{
		const char *argv[] = { "/usr/bin/python3", t_path(t.dir, "redirect.py"),
			t_path(t.dir, "srv.crt"), t_path(t.dir, "srv.key"), target, NULL };

		ck_assert_int_eq(t_spawn(&py, argv, NULL, t_path(t.dir, "py.log")), 0);
	}
	ck_assert(t_wait_log(&py, "PORT ", T_DEADLINE_MS, line, sizeof(line)));
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/cert.pem", atoi(line + 5));
	{
		const struct lk_http_client_config cfg = {
			.tls = { .ca_file = t_path(t.dir, "ca.crt"), .server_name = "kube.test" },
			.redirects = 3,
		};

		c = client(&cfg);
		ck_assert_int_lt(get(c, u, &resp, &err), 0);
		ck_assert_int_eq(resp.failure, LK_HTTP_FAIL_CONFIG);
		lk_http_client_free(c);
	}
	/* The plain server never saw the request. */
	ck_assert_int_eq(atomic_load(&rs.requests), 0);
	lk_http_response_clear(&resp);
	t_stop(&py, SIGTERM, 5000);
	raw_stop(&rs);
	tls_stop(&t);
}
END_TEST

START_TEST(config_errors)
{
	struct lk_http_client *c = NULL;
	struct lk_error err = { 0 };
	const struct lk_http_client_config half = { .tls = { .cert_file = "/x.crt" } };
	const struct lk_http_client_config bad_name = { .tls = { .server_name = "a:443" } };

	ck_assert_int_eq(lk_http_client_new(&half, &c, &err), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(lk_http_client_new(&bad_name, &c, &err), -EINVAL);
	ck_assert_ptr_null(lk_http_client_free(NULL));
}
END_TEST

#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 120); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");

	ADD(s, keepalive_and_headers);
	ADD(s, bad_headers_refused);
	ADD(s, body_cap_truncation_and_timeout);
	ADD(s, retry_after_and_redirects);
	ADD(s, stream_and_abort);
	ADD(s, unix_socket_and_refused);
	ADD(s, trace_is_redacted);
	ADD(s, escape);
	ADD(s, retry_after_values);
	ADD(s, tls_ca_server_name_and_client_cert);
	ADD(s, https_never_redirects_to_http);
	ADD(s, config_errors);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	if (lk_secret_init() < 0 || lk_http_global_init() < 0)
		return EXIT_FAILURE;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	lk_http_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
