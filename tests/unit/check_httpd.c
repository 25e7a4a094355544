/* check_httpd.c — the HTTP server over real sockets: TCP and Unix listeners, keep-alive,
 * peer credentials, limits, suspend and resume, drop, borrowed responses, concurrency and
 * stopping. */
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <grp.h>
#include <sys/wait.h>

#include "common/clock.h"
#include "common/httpd.h"
#include "common/httpd_internal.h"
#include "testutil.h"

/* Size of the response of /big: far more than a socket buffer holds. */
#define BIG_BODY (8u << 20)
/* Longest response a test client collects. */
#define CLIENT_BODY_MAX (16u << 20)

/* ---- the test server ---- */

struct tsrv {
	struct lk_httpd *srv;
	char *dir;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char base[128];        /* "http://127.0.0.1:PORT" or "http://x" */
	bool is_unix;

	atomic_int calls;          /* handler calls */
	atomic_int releases;       /* release callbacks of /borrowed */
	atomic_int suspended;      /* /hold requests suspended so far */
	atomic_int cleanups;       /* state cleanups */
	atomic_int resumed_by_stop;
	atomic_int add_header_rc;  /* what the 9th lk_http_add_header returned */
	atomic_int respond_again_rc;
	atomic_int slow_started;   /* /slow handlers entered */
	atomic_int slow_go;        /* set: /slow handlers answer */
	struct lk_peer peer;       /* the last /peer request's */
	char remote[64];
	pthread_mutex_t lock;
	struct lk_http_req *held; /* a /hold request waiting to be resumed */
};

static const char borrowed_body[] = "borrowed bytes";

static void
release_count(void *cls)
{
	struct tsrv *t = cls;

	atomic_fetch_add(&t->releases, 1);
}

static void *
resume_now(void *arg)
{
	lk_http_resume(arg);
	return NULL;
}

static void
hold_cleanup(void *state)
{
	struct tsrv *t = state;

	pthread_mutex_lock(&t->lock);
	t->held = NULL;
	pthread_mutex_unlock(&t->lock);
	atomic_fetch_add(&t->cleanups, 1);
}

static bool
slow_go_set(void *arg)
{
	return atomic_load(&((struct tsrv *)arg)->slow_go) != 0;
}

static void
handler(void *ctx, struct lk_http_req *req)
{
	struct tsrv *t = ctx;
	const char *path = lk_http_path(req);
	char text[4096];
	const char *q1, *q2, *body;
	size_t len;
	pthread_t th;
	char *big;

	atomic_fetch_add(&t->calls, 1);
	if (strncmp(path, "/echo", 5) == 0) {
		q1 = lk_http_query(req, "a");
		q2 = lk_http_query(req, "b");
		body = lk_http_body(req, &len);
		snprintf(text, sizeof(text), "%s %s a=%s b=%s h=%s len=%zu body=%s",
			 lk_http_method(req), path, q1 ? q1 : "-", q2 ? q2 : "-",
			 lk_http_header(req, "x-test") ? lk_http_header(req, "X-TEST") : "-",
			 len, body);
		ck_assert_int_eq(lk_http_respond(req, 200, "text/plain", text, strlen(text)), 0);
	} else if (strcmp(path, "/peer") == 0) {
		/* Under the lock: the test thread reads them once the answer arrived, and a
		 * socket is no ordering ThreadSanitizer can see. */
		pthread_mutex_lock(&t->lock);
		t->peer = *lk_http_peer(req);
		snprintf(t->remote, sizeof(t->remote), "%s", lk_http_remote(req));
		pthread_mutex_unlock(&t->lock);
		lk_http_respond(req, 204, NULL, NULL, 0);
	} else if (strcmp(path, "/nothing") == 0) {
		/* neither answers nor suspends */
	} else if (strcmp(path, "/drop") == 0) {
		lk_http_drop(req);
	} else if (strcmp(path, "/borrowed") == 0) {
		lk_http_respond_borrowed(req, 200, "text/plain", borrowed_body,
					 sizeof(borrowed_body) - 1, release_count, t);
	} else if (strcmp(path, "/borrowed-bad") == 0) {
		/* An invalid status: the answer fails, release still runs once. */
		ck_assert_int_lt(lk_http_respond_borrowed(req, 7, "text/plain", borrowed_body,
							  3, release_count, t), 0);
	} else if (strcmp(path, "/headers") == 0) {
		int rc = 0;
		char name[32];

		for (int i = 0; i < LK_HTTP_RESP_HEADERS_MAX && rc == 0; i++) {
			snprintf(name, sizeof(name), "X-H%d", i);
			rc = lk_http_add_header(req, name, "v");
		}
		ck_assert_int_eq(rc, 0);
		atomic_store(&t->add_header_rc, lk_http_add_header(req, "X-Over", "v"));
		ck_assert_int_eq(lk_http_add_header(req, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
		json_t *j = json_pack("{s:i}", "n", 1);

		lk_http_respond_json(req, 200, j);
		json_decref(j);
	} else if (strcmp(path, "/headers-big") == 0) {
		char name[32], value[1001];

		memset(value, 'w', sizeof(value) - 1);
		value[sizeof(value) - 1] = '\0';
		for (int i = 0; i < LK_HTTP_RESP_HEADERS_MAX; i++) {
			snprintf(name, sizeof(name), "X-Big%d", i);
			ck_assert_int_eq(lk_http_add_header(req, name, value), 0);
		}
		lk_http_respond(req, 200, "text/plain", "ok", 2);
	} else if (strcmp(path, "/twice") == 0) {
		ck_assert_int_eq(lk_http_respond(req, 200, NULL, "one", 3), 0);
		atomic_store(&t->respond_again_rc, lk_http_respond(req, 201, NULL, "two", 3));
	} else if (strcmp(path, "/error") == 0) {
		lk_http_respond_error(req, 404, "not found", "no such thing");
	} else if (strcmp(path, "/big") == 0) {
		big = malloc(BIG_BODY);
		ck_assert_ptr_nonnull(big);
		memset(big, 'b', BIG_BODY);
		lk_http_respond(req, 200, "application/octet-stream", big, BIG_BODY);
		free(big);
	} else if (strcmp(path, "/race") == 0) {
		/* Resumed from another thread at once: often before this handler returns. */
		if (lk_http_state(req) == NULL) {
			lk_http_set_state(req, t, NULL);
			ck_assert_int_eq(pthread_create(&th, NULL, resume_now, req), 0);
			pthread_detach(th);
			lk_http_suspend(req);
		} else {
			lk_http_respond(req, 200, "text/plain", "resumed", 7);
		}
	} else if (strcmp(path, "/slow") == 0) {
		/* A handler in progress: it answers once the test says so (or after the
		 * deadline). */
		atomic_fetch_add(&t->slow_started, 1);
		(void)t_wait_until(slow_go_set, t, T_DEADLINE_MS);
		lk_http_respond(req, 200, "text/plain", "slow done", 9);
	} else if (strcmp(path, "/hold") == 0 || strcmp(path, "/hold-again") == 0) {
		/* Waits until the test resumes it (t->held) or the server stops. */
		if (lk_http_state(req) == NULL) {
			lk_http_set_state(req, t, hold_cleanup);
			pthread_mutex_lock(&t->lock);
			t->held = req;
			pthread_mutex_unlock(&t->lock);
			lk_http_suspend(req);
			atomic_fetch_add(&t->suspended, 1);
		} else if (strcmp(path, "/hold-again") == 0) {
			atomic_fetch_add(&t->resumed_by_stop, 1);
			lk_http_suspend(req);
		} else {
			atomic_fetch_add(&t->resumed_by_stop, 1);
			lk_http_respond(req, 200, "text/plain", "released", 8);
		}
	} else if (strcmp(path, "/hold-gate") == 0) {
		/* Suspends; resumed by stop, it answers only once the test says so (slow_go),
		 * so that the stop's drain lasts as long as the test needs. */
		if (lk_http_state(req) == NULL) {
			lk_http_set_state(req, t, NULL);
			lk_http_suspend(req);
			atomic_fetch_add(&t->suspended, 1);
		} else {
			atomic_fetch_add(&t->resumed_by_stop, 1);
			(void)t_wait_until(slow_go_set, t, 3 * T_DEADLINE_MS);
			lk_http_respond(req, 200, "text/plain", "released", 8);
		}
	} else {
		lk_http_respond_error(req, 404, "not found", path);
	}
}

static void
tsrv_init(struct tsrv *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->dir = t_tmpdir();
	ck_assert_ptr_nonnull(t->dir);
	ck_assert_int_lt(snprintf(t->sock, sizeof(t->sock), "%s/s.sock", t->dir), (int)sizeof(t->sock));
}

static void
tsrv_start_cfg(struct tsrv *t, struct lk_httpd_config *cfg)
{
	struct lk_error err = { 0 };
	int r;

	cfg->handler = handler;
	cfg->ctx = t;
	r = lk_httpd_start(cfg, &t->srv, &err);
	ck_assert_msg(r == 0, "start: %d %s", r, err.msg);
	t->is_unix = cfg->unix_path != NULL;
	if (t->is_unix) {
		snprintf(t->base, sizeof(t->base), "http://x");
		ck_assert_int_eq(lk_httpd_port(t->srv), 0);
	} else {
		ck_assert_int_gt(lk_httpd_port(t->srv), 0);
		snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%d", lk_httpd_port(t->srv));
	}
}

/* Starts on TCP 127.0.0.1:0 (unix false) or on t->sock. */
static void
tsrv_start(struct tsrv *t, bool unix_socket, unsigned threads)
{
	struct lk_httpd_config cfg = {
		.unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .threads = threads,
	};

	if (unix_socket)
		cfg.unix_path = t->sock;
	else
		cfg.tcp_addr = "127.0.0.1:0";
	tsrv_start_cfg(t, &cfg);
}

static void
tsrv_stop(struct tsrv *t)
{
	lk_httpd_stop(t->srv);
	t->srv = NULL;
	t_rmrf(t->dir);
	free(t->dir);
	t->dir = NULL;
}

/* ---- a libcurl client that can keep its connection ---- */

struct reply {
	long status;
	CURLcode code;
	long connects;          /* new connections this request opened */
	char *body;
	size_t len;
	char headers[16384];
	size_t hlen;
};

static size_t
collect_body(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > CLIENT_BODY_MAX)
		return 0;
	if ((nb = realloc(r->body, r->len + add + 1)) == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, add);
	r->len += add;
	r->body[r->len] = '\0';
	return add;
}

static size_t
collect_header(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t add = size * n;

	if (r->hlen + add < sizeof(r->headers)) {
		memcpy(r->headers + r->hlen, p, add);
		r->hlen += add;
		r->headers[r->hlen] = '\0';
	}
	return add;
}

static CURL *
client_new(const struct tsrv *t)
{
	CURL *c = curl_easy_init();

	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (t->is_unix)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, t->sock);
	return c;
}

static void
reply_free(struct reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* One request on c (reusing its connection when it can). extra_header may be NULL. */
static void
request(CURL *c, const struct tsrv *t, const char *method, const char *path,
	const char *body, long body_len, const char *extra_header, struct reply *r)
{
	struct curl_slist *hs = NULL;
	char url[1024];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", t->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	hs = curl_slist_append(hs, "Expect:");
	if (extra_header != NULL)
		hs = curl_slist_append(hs, extra_header);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len);
	} else {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	r->code = curl_easy_perform(c);
	if (r->code == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
	curl_slist_free_all(hs);
}

/* A one-off request on a fresh connection. */
static void
request1(const struct tsrv *t, const char *method, const char *path, const char *body,
	 struct reply *r)
{
	CURL *c = client_new(t);

	request(c, t, method, path, body, body != NULL ? (long)strlen(body) : 0, NULL, r);
	curl_easy_cleanup(c);
}

/* ---- raw sockets ---- */

static int
raw_connect(const struct tsrv *t)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd;

	if (t->is_unix) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->sock);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	} else {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		sin.sin_port = htons((uint16_t)lk_httpd_port(t->srv));
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	}
	return fd;
}

static void
raw_write(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

static void
raw_puts(int fd, const char *text)
{
	raw_write(fd, text, strlen(text));
}

/* Reads until the peer closes or the deadline; returns the bytes read (NUL-terminated
 * in buf). */
static size_t
raw_read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got + 1 < cap) {
		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

/* Reads until needle has appeared count times (or the peer closes); returns the count. */
static int
raw_read_until(int fd, char *buf, size_t cap, const char *needle, int count)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;
	int seen = 0;
	const char *s;

	buf[0] = '\0';
	while (got + 1 < cap) {
		seen = 0;
		for (s = buf; (s = strstr(s, needle)) != NULL; s += strlen(needle))
			seen++;
		if (seen >= count)
			break;
		if (poll(&p, 1, T_DEADLINE_MS) <= 0)
			break;
		n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
	return seen;
}

/* ---- conditions to wait on ---- */

struct wait_int {
	atomic_int *v;
	int want;
};

static bool
reached(void *arg)
{
	struct wait_int *w = arg;

	return atomic_load(w->v) >= w->want;
}

static bool
wait_count(atomic_int *v, int want)
{
	struct wait_int w = { v, want };

	return t_wait_until(reached, &w, T_DEADLINE_MS);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- TCP ---- */

START_TEST(tcp_port0_answers)
{
	struct tsrv t;
	struct reply r;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	request1(&t, "GET", "/echo/x%20y?a=1&b=two%20words", NULL, &r);
	ck_assert_int_eq(r.code, CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "GET /echo/x y a=1 b=two words h=- len=0 body=");
	ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: text/plain"));
	reply_free(&r);

	request1(&t, "GET", "/peer", NULL, &r);
	ck_assert_int_eq(r.status, 204);
	pthread_mutex_lock(&t.lock);
	ck_assert(!t.peer.known);
	ck_assert_str_eq(t.remote, "127.0.0.1");
	pthread_mutex_unlock(&t.lock);
	reply_free(&r);

	request1(&t, "GET", "/error", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(r.body, "{\"error\":\"not found\",\"reason\":\"no such thing\"}");
	ck_assert_ptr_nonnull(strstr(r.headers, "Content-Type: application/json"));
	reply_free(&r);
	tsrv_stop(&t);
}
END_TEST

START_TEST(tcp_bad_addresses)
{
	static const char *const bad[] = {
		"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:http",
		":8200", "[::1]", "[::1:0", "::1:0", "[]:0",
	};
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };
	struct tsrv t;

	tsrv_init(&t);
	cfg.handler = handler;
	cfg.ctx = &t;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.tcp_addr = bad[i];
		ck_assert_int_lt(lk_httpd_start(&cfg, &srv, &err), 0);
		ck_assert_ptr_null(srv);
		ck_assert_msg(strstr(err.msg, bad[i]) != NULL, "message names the address: %s",
			      err.msg);
	}
	/* Both or neither of unix_path and tcp_addr. */
	cfg.tcp_addr = "127.0.0.1:0";
	cfg.unix_path = t.sock;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EINVAL);
	cfg.tcp_addr = NULL;
	cfg.unix_path = NULL;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EINVAL);
	ck_assert_ptr_null(srv);
	lk_httpd_stop(NULL);
	tsrv_stop(&t);
}
END_TEST

START_TEST(tcp_port_in_use)
{
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };
	char addr[64];
	struct tsrv t;

	tsrv_init(&t);
	tsrv_start(&t, false, 1);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lk_httpd_port(t.srv));
	cfg.tcp_addr = addr;
	cfg.handler = handler;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EADDRINUSE);
	ck_assert_ptr_nonnull(strstr(err.msg, addr));
	ck_assert_ptr_nonnull(strstr(err.msg, "bind"));
	tsrv_stop(&t);
}
END_TEST

START_TEST(tcp_ipv6)
{
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_error err = { 0 };
	struct reply r;
	struct tsrv t;
	CURL *c;
	int probe;
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

	/* Only where the machine has an IPv6 loopback. */
	probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe < 0 || bind(probe, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		t_skip("tcp_ipv6: this machine has no IPv6 loopback (::1): %s", strerror(errno));
		if (probe >= 0)
			close(probe);
		return;
	}
	close(probe);
	tsrv_init(&t);
	cfg.tcp_addr = "[::1]:0";
	cfg.handler = handler;
	cfg.ctx = &t;
	ck_assert_int_eq(lk_httpd_start(&cfg, &t.srv, &err), 0);
	ck_assert_int_gt(lk_httpd_port(t.srv), 0);
	snprintf(t.base, sizeof(t.base), "http://[::1]:%d", lk_httpd_port(t.srv));
	c = client_new(&t);
	request(c, &t, "GET", "/peer", NULL, 0, NULL, &r);
	ck_assert_int_eq(r.status, 204);
	pthread_mutex_lock(&t.lock);
	ck_assert_str_eq(t.remote, "::1");
	pthread_mutex_unlock(&t.lock);
	reply_free(&r);
	curl_easy_cleanup(c);
	tsrv_stop(&t);
}
END_TEST

/* ---- Unix sockets ---- */

START_TEST(unix_mode_and_removal)
{
	struct lk_httpd_config cfg = {
		.unix_mode = 0660, .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .threads = 2,
	};
	struct stat st;
	struct reply r;
	struct tsrv t;

	tsrv_init(&t);
	cfg.unix_path = t.sock;
	tsrv_start_cfg(&t, &cfg);
	ck_assert_int_eq(lstat(t.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0660);
	request1(&t, "GET", "/echo", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	lk_httpd_stop(t.srv);
	t.srv = NULL;
	ck_assert_int_eq(lstat(t.sock, &st), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* 0 means 0600, whatever the umask; owner and group given as ours. */
	cfg.unix_mode = 0;
	cfg.unix_owner = getuid();
	cfg.unix_group = getgid();
	tsrv_start_cfg(&t, &cfg);
	ck_assert_int_eq(lstat(t.sock, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(st.st_uid, getuid());
	ck_assert_int_eq(st.st_gid, getgid());
	tsrv_stop(&t);
}
END_TEST

START_TEST(unix_stale_socket_replaced)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	struct reply r;
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	/* A socket file nobody listens on, as a crashed server leaves it. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t.sock);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	ck_assert_int_eq(lstat(t.sock, &st), 0);

	tsrv_start(&t, true, 1);
	request1(&t, "GET", "/echo", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	tsrv_stop(&t);
}
END_TEST

START_TEST(unix_live_socket_kept)
{
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };
	struct reply r;
	struct tsrv t;

	tsrv_init(&t);
	tsrv_start(&t, true, 1);
	cfg.unix_path = t.sock;
	cfg.handler = handler;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EADDRINUSE);
	ck_assert_ptr_null(srv);
	ck_assert_ptr_nonnull(strstr(err.msg, t.sock));
	/* The first server still answers on its socket. */
	request1(&t, "GET", "/echo", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	tsrv_stop(&t);
}
END_TEST

START_TEST(unix_non_socket_refused)
{
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };
	struct tsrv t;
	char *text;

	tsrv_init(&t);
	ck_assert_int_eq(t_write_file(t.sock, "precious\n", 0600), 0);
	cfg.unix_path = t.sock;
	cfg.handler = handler;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EEXIST);
	ck_assert_ptr_null(srv);
	ck_assert_ptr_nonnull(strstr(err.msg, t.sock));
	ck_assert_ptr_nonnull(strstr(err.msg, "not a socket"));
	text = t_read_file(t.sock);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "precious\n");
	free(text);

	/* A path too long for sun_path. */
	char longpath[200];
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	cfg.unix_path = longpath;
	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -ENAMETOOLONG);
	tsrv_stop(&t);
}
END_TEST

/* ---- keep-alive ---- */

static void
check_keepalive(bool unix_socket, unsigned threads)
{
	struct reply r1, r2, r3;
	struct tsrv t;
	CURL *c;

	tsrv_init(&t);
	tsrv_start(&t, unix_socket, threads);
	c = client_new(&t);
	request(c, &t, "GET", "/echo/a", NULL, 0, NULL, &r1);
	request(c, &t, "POST", "/echo/b", "{\"k\":1}", 7, NULL, &r2);
	request(c, &t, "GET", "/echo/c", NULL, 0, NULL, &r3);
	ck_assert_int_eq(r1.status, 200);
	ck_assert_int_eq(r2.status, 200);
	ck_assert_int_eq(r3.status, 200);
	ck_assert_int_eq(r1.connects, 1);
	ck_assert_int_eq(r2.connects, 0);   /* the same connection */
	ck_assert_int_eq(r3.connects, 0);
	ck_assert_str_eq(r2.body, "POST /echo/b a=- b=- h=- len=7 body={\"k\":1}");
	ck_assert_ptr_null(strstr(r1.headers, "Connection: close"));
	reply_free(&r1);
	reply_free(&r2);
	reply_free(&r3);
	curl_easy_cleanup(c);
	tsrv_stop(&t);
}

START_TEST(keepalive_tcp_pool)
{
	check_keepalive(false, 2);
}
END_TEST

START_TEST(keepalive_unix_thread_per_connection)
{
	check_keepalive(true, 0);
}
END_TEST

START_TEST(keepalive_raw_pipelined)
{
	static const char two[] =
		"GET /echo/1 HTTP/1.1\r\nHost: x\r\n\r\n"
		"LIST /echo/2?a=z HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\n";
	char buf[8192];
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, true, 1);
	fd = raw_connect(&t);
	raw_write(fd, two, sizeof(two) - 1);
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "HTTP/1.1 200", 2), 2);
	ck_assert_ptr_nonnull(strstr(buf, "GET /echo/1 a=- b=- h=- len=0"));
	ck_assert_ptr_nonnull(strstr(buf, "LIST /echo/2 a=z b=- h=yes len=0"));
	/* And the connection is still open for a third. */
	raw_puts(fd, "GET /echo/3 HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "HTTP/1.1 200", 1), 1);
	ck_assert_ptr_nonnull(strstr(buf, "GET /echo/3"));
	close(fd);
	tsrv_stop(&t);
}
END_TEST

/* ---- the protocol: pipelining, framing, HTTP/1.0, HEAD, 100-continue ---- */

/* Offset of the n-th (0-based) occurrence of needle in hay, or -1. */
static long
nth_offset(const char *hay, const char *needle, int n)
{
	const char *at = hay;

	for (int i = 0; (at = strstr(at, needle)) != NULL; i++, at++)
		if (i == n)
			return (long)(at - hay);
	return -1;
}

/* Five requests in one write, one with a body in the middle: answered one at a time, in
 * the order they came, on the same connection. */
START_TEST(pipelined_in_order)
{
	static const char five[] =
		"GET /echo/p0 HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /echo/p1?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
		"POST /echo/p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		"GET /echo/p3 HTTP/1.1\r\nHost: x\r\n\r\n"
		"GET /echo/p4 HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[16384], want[32];
	long prev = -1, at;
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	fd = raw_connect(&t);
	raw_write(fd, five, sizeof(five) - 1);
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "HTTP/1.1 200 OK\r\n", 5), 5);
	for (int i = 0; i < 5; i++) {
		snprintf(want, sizeof(want), "/echo/p%d ", i);
		at = nth_offset(buf, want, 0);
		ck_assert_msg(at > prev, "answer %d out of order", i);
		prev = at;
	}
	ck_assert_ptr_nonnull(strstr(buf, "POST /echo/p2 a=- b=- h=- len=5 body=hello"));
	ck_assert_ptr_nonnull(strstr(buf, "GET /echo/p1 a=1"));
	ck_assert_ptr_null(strstr(buf, "Connection: close"));
	ck_assert_int_eq(atomic_load(&t.calls), 5);
	close(fd);
	tsrv_stop(&t);
}
END_TEST

/* A request (head and body) sent three bytes at a time, each write its own segment. */
START_TEST(request_in_small_writes)
{
	static const char req[] =
		"PUT /echo/split?b=two%20words HTTP/1.1\r\nHost: x\r\nX-Test: pieces\r\n"
		"Content-Length: 11\r\n\r\nhello world";
	char buf[4096];
	struct tsrv t;
	int fd, one = 1;
	struct timespec gap = { 0, 2 * 1000000L };

	for (unsigned threads = 0; threads <= 2; threads += 2) {
		tsrv_init(&t);
		tsrv_start(&t, false, threads);
		fd = raw_connect(&t);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (size_t i = 0; i < sizeof(req) - 1; i += 3) {
			raw_write(fd, req + i, sizeof(req) - 1 - i < 3 ? sizeof(req) - 1 - i : 3);
			nanosleep(&gap, NULL);
		}
		ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=hello world", 1), 1);
		ck_assert_ptr_nonnull(strstr(buf, "PUT /echo/split a=- b=two words h=pieces len=11"));
		ck_assert_int_eq(atomic_load(&t.calls), 1);
		close(fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* Chunk extensions and trailer fields are read and ignored; the body is the data, and the
 * connection serves the next request. */
START_TEST(chunked_extensions_trailers)
{
	char buf[8192];
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, true, 2);
	fd = raw_connect(&t);
	raw_puts(fd, "POST /echo/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "3;name=value;flag\r\nabc\r\n2 ; x=\"q\"\r\nde\r\nA\r\n0123456789\r\n"
		 "0;last\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n"
		 "GET /echo/after HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "HTTP/1.1 200", 2), 2);
	ck_assert_ptr_nonnull(strstr(buf, "POST /echo/ch a=- b=- h=- len=15 body=abcde0123456789"));
	ck_assert_ptr_nonnull(strstr(buf, "GET /echo/after"));
	/* A malformed chunk size: 400, and the handler never runs. */
	close(fd);
	fd = raw_connect(&t);
	raw_puts(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
	raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 400", 12) == 0, "got: %.80s", buf);
	close(fd);
	ck_assert_int_eq(atomic_load(&t.calls), 2);
	tsrv_stop(&t);
}
END_TEST

/* Framing a smuggler could play with: Content-Length with Transfer-Encoding, two
 * different Content-Lengths, a folded header, a coding other than chunked. */
START_TEST(ambiguous_framing_refused)
{
	static const struct { const char *req; const char *status; } cases[] = {
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
		  "abcd", "HTTP/1.1 400" },
		{ "GET /echo HTTP/1.1\r\nHost: x\r\nX-Test: a\r\n b\r\n\r\n", "HTTP/1.1 400" },
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		  "HTTP/1.1 501" },
		{ "GET /echo HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.1 505" },
		{ "GET /echo HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400" },
		/* A "trailer" that is a request line smuggled after the last chunk. */
		{ "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "0\r\nGET /smuggled HTTP/1.1\r\n\r\n", "HTTP/1.1 400" },
	};
	char buf[4096];
	struct tsrv t;
	json_t *j;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fd = raw_connect(&t);
		raw_puts(fd, cases[i].req);
		raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
		close(fd);
		ck_assert_msg(strncmp(buf, cases[i].status, strlen(cases[i].status)) == 0,
			      "case %zu: got %.80s", i, buf);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		/* The server's error shape. */
		ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\n"));
		j = json_loads(strstr(buf, "\r\n\r\n") + 4, 0, NULL);
		ck_assert_msg(j != NULL && json_is_string(json_object_get(j, "error")),
			      "case %zu: body %s", i, strstr(buf, "\r\n\r\n") + 4);
		json_decref(j);
	}
	ck_assert_int_eq(atomic_load(&t.calls), 0);
	tsrv_stop(&t);
}
END_TEST

/* Every line of the chunked framing must end in CRLF (RFC 9112 section 7.1): a bare LF
 * in a size line, after a chunk's data, in a trailer or as the last line is 400, the
 * handler never runs, and what follows is not read as a request. The head may end its
 * lines in a bare LF (RFC 9112 section 2.2): that is served. */
START_TEST(chunked_bare_lf_refused)
{
	static const char *const bodies[] = {
		"3\nabc\r\n0\r\n\r\n",             /* the size line */
		"3;ext=1\nabc\r\n0\r\n\r\n",       /* a size line with an extension */
		"3 \nabc\r\n0\r\n\r\n",            /* whitespace before the line end */
		"3\r\nabc\n0\r\n\r\n",             /* after the data */
		"3\r\nabc\r\n0\n\r\n",             /* the last chunk's size line */
		"3\r\nabc\r\n0\r\nX-T: 1\n\r\n",   /* a trailer field */
		"3\r\nabc\r\n0\r\n\n",             /* the final empty line */
		/* A bare LF that another parser could read as part of the size line: here
		 * it would end the body and serve the smuggled request after it. */
		"0\n\r\nGET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
	};
	static const char head[] = "POST /echo/ch HTTP/1.1\r\nHost: x\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	char buf[4096], req[512];
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(req, sizeof(req), "%s%s", head, bodies[i]);
		fd = raw_connect(&t);
		raw_puts(fd, req);
		raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
		close(fd);
		ck_assert_msg(strncmp(buf, "HTTP/1.1 400", 12) == 0, "case %zu: got %.80s", i, buf);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		ck_assert_ptr_nonnull(strstr(buf, "malformed chunked body"));
		ck_assert_msg(strstr(buf, "HTTP/1.1 200") == NULL, "case %zu: a second answer", i);
		ck_assert_int_eq(atomic_load(&t.calls), 0);
	}
	/* The same framing with CRLF is served, under a head whose lines end in bare LF. */
	fd = raw_connect(&t);
	raw_puts(fd, "POST /echo/lf HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
		 "3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=abc", 1), 1);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "got: %.80s", buf);
	close(fd);
	ck_assert_int_eq(atomic_load(&t.calls), 1);
	tsrv_stop(&t);
}
END_TEST

/* Expect: 100-continue gets its interim answer before the body is sent. */
START_TEST(expect_continue)
{
	char buf[4096];
	struct tsrv t;
	int fd;

	for (unsigned threads = 0; threads <= 2; threads += 2) {
		tsrv_init(&t);
		tsrv_start(&t, true, threads);
		fd = raw_connect(&t);
		raw_puts(fd, "PUT /echo/c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
			 "Content-Length: 4\r\n\r\n");
		ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1), 1);
		ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
		ck_assert_int_eq(atomic_load(&t.calls), 0);
		raw_puts(fd, "data");
		ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=data", 1), 1);
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "got: %.80s", buf);
		close(fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* HEAD: the head of what GET would answer, Content-Length included, and no body bytes;
 * the next answer on the connection starts right after it. */
START_TEST(head_has_no_body)
{
	char buf[4096], *end;
	struct tsrv t;
	int fd;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	fd = raw_connect(&t);
	raw_puts(fd, "HEAD /echo/h HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/g HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=", 1), 1);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "got: %.80s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "Content-Length: 36\r\n"));  /* "HEAD /echo/h a=- ..." */
	ck_assert_ptr_nonnull(strstr(buf, "\r\nDate: "));
	end = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(end);
	ck_assert_msg(strncmp(end + 4, "HTTP/1.1 200 OK\r\n", 17) == 0, "after the HEAD: %.40s",
		      end + 4);
	ck_assert_ptr_nonnull(strstr(end, "GET /echo/g a=- b=- h=- len=0 body="));
	close(fd);
	tsrv_stop(&t);
}
END_TEST

/* HTTP/1.0: closed after the answer unless it asks to keep the connection. */
START_TEST(http10_close)
{
	char buf[4096];
	struct tsrv t;
	int fd;

	for (unsigned threads = 0; threads <= 2; threads += 2) {
		tsrv_init(&t);
		tsrv_start(&t, false, threads);
		fd = raw_connect(&t);
		raw_puts(fd, "GET /echo/old HTTP/1.0\r\n\r\n");
		/* raw_read_all returns when the server closes, well before its deadline. */
		long start = now_ms();

		raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
		ck_assert_msg(now_ms() - start < T_DEADLINE_MS / 2, "the connection stayed open");
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "got: %.80s", buf);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		ck_assert_ptr_nonnull(strstr(buf, "GET /echo/old a=-"));
		close(fd);

		fd = raw_connect(&t);
		raw_puts(fd, "GET /echo/k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
		ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=", 1), 1);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: keep-alive\r\n"));
		raw_puts(fd, "GET /echo/k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
		ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "GET /echo/k2", 1), 1);
		close(fd);

		/* A transfer coding in an HTTP/1.0 request: answered, then closed, even when
		 * it asks for keep-alive (RFC 9112 6.1). */
		fd = raw_connect(&t);
		raw_puts(fd, "POST /echo/te HTTP/1.0\r\nConnection: keep-alive\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
		start = now_ms();
		raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
		ck_assert_msg(now_ms() - start < T_DEADLINE_MS / 2, "the connection stayed open");
		ck_assert_ptr_nonnull(strstr(buf, "POST /echo/te a=- b=- h=- len=3 body=abc"));
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		close(fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* ---- peer credentials ---- */

START_TEST(peer_credentials)
{
	struct reply r;
	struct tsrv t;

	tsrv_init(&t);
	tsrv_start(&t, true, 2);
	request1(&t, "GET", "/peer", NULL, &r);
	ck_assert_int_eq(r.status, 204);
	pthread_mutex_lock(&t.lock);
	ck_assert(t.peer.known);
	ck_assert_int_eq(t.peer.pid, getpid());
	ck_assert_int_eq(t.peer.uid, getuid());
	ck_assert_int_eq(t.peer.gid, getgid());
	ck_assert_str_eq(t.remote, "unix");
	pthread_mutex_unlock(&t.lock);
	reply_free(&r);
	tsrv_stop(&t);
}
END_TEST

/* ---- limits ---- */

START_TEST(body_limit)
{
	struct lk_httpd_config cfg = {
		.unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .threads = 2, .max_body = 100,
	};
	char body[301], buf[8192];
	struct reply r;
	struct tsrv t;
	json_t *j;
	int fd;

	tsrv_init(&t);
	cfg.unix_path = t.sock;
	tsrv_start_cfg(&t, &cfg);
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';

	/* Exactly at the limit: served. */
	body[100] = '\0';
	request1(&t, "PUT", "/echo", body, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "len=100 body=xxxx"));
	ck_assert_int_eq(atomic_load(&t.calls), 1);
	reply_free(&r);

	/* One byte over, declared in Content-Length: 413 without the handler. */
	body[100] = 'x';
	body[101] = '\0';
	request1(&t, "PUT", "/echo", body, &r);
	ck_assert_int_eq(r.status, 413);
	j = json_loads(r.body, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "request body too large");
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "reason")));
	json_decref(j);
	reply_free(&r);
	ck_assert_int_eq(atomic_load(&t.calls), 1);

	/* A chunked body that grows past the limit. */
	fd = raw_connect(&t);
	/* One write: the server may close before it would read a later one. */
	raw_puts(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "40\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
		 "40\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
		 "40\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
		 "0\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "request body too large", 1), 1);
	close(fd);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 413", 12) == 0, "got: %.80s", buf);
	ck_assert_int_eq(atomic_load(&t.calls), 1);

	/* One that goes on far past the limit is cut off: the connection closes. */
	fd = raw_connect(&t);
	raw_puts(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	{
		char chunk[8192 + 16];
		size_t sent = 0;
		ssize_t n = 0;

		memset(chunk, 'y', sizeof(chunk));
		memcpy(chunk, "2000\r\n", 6);
		memcpy(chunk + 6 + 8192, "\r\n", 2);
		while (sent < (4u << 20) && (n = send(fd, chunk, 6 + 8192 + 2, MSG_NOSIGNAL)) > 0)
			sent += (size_t)n;
		ck_assert_msg(n < 0, "the server read %zu bytes and kept the connection", sent);
	}
	raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
	ck_assert_ptr_null(strstr(buf, "HTTP/1.1 2"));
	close(fd);
	ck_assert_int_eq(atomic_load(&t.calls), 1);

	/* A chunked body within the limit reaches the handler whole. */
	fd = raw_connect(&t);
	raw_puts(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
	ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "body=abcde", 1), 1);
	close(fd);
	ck_assert_int_eq(atomic_load(&t.calls), 2);
	tsrv_stop(&t);
}
END_TEST

START_TEST(header_limit)
{
	struct lk_httpd_config cfg = {
		.unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .threads = 2, .max_header = 1024,
	};
	char *hdr;
	size_t sizes[] = { 1100, 4000, 64000 };
	struct reply r;
	struct tsrv t;
	CURL *c;

	tsrv_init(&t);
	cfg.tcp_addr = "127.0.0.1:0";
	tsrv_start_cfg(&t, &cfg);
	hdr = malloc(70000);
	ck_assert_ptr_nonnull(hdr);

	/* Under the limit: served. */
	c = client_new(&t);
	memset(hdr, 'v', 800);
	memcpy(hdr, "X-Test: ", 8);
	hdr[800] = '\0';
	request(c, &t, "GET", "/echo", NULL, 0, hdr, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	curl_easy_cleanup(c);

	/* Just over the limit (the whole head arrived) and far over it (answered once the
	 * first max_header bytes came without an end): 431 either way, the handler never
	 * runs. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		c = client_new(&t);
		memset(hdr, 'v', sizes[i]);
		memcpy(hdr, "X-Test: ", 8);
		hdr[sizes[i]] = '\0';
		request(c, &t, "GET", "/echo", NULL, 0, hdr, &r);
		ck_assert_msg(r.status == 431, "size %zu: status %ld", sizes[i], r.status);
		reply_free(&r);
		curl_easy_cleanup(c);
	}
	ck_assert_int_eq(atomic_load(&t.calls), 1);
	free(hdr);
	tsrv_stop(&t);
}
END_TEST

START_TEST(big_headers_both_ways)
{
	struct reply r;
	struct tsrv t;
	char *hdr, *at;
	int n = 0;
	CURL *c;

	/* A request header just under the default limit, answered with the most and the
	 * longest extra headers: it all fits in the connection's memory. */
	tsrv_init(&t);
	tsrv_start(&t, true, 2);
	hdr = malloc(LK_HTTPD_MAX_HEADER_DEFAULT);
	ck_assert_ptr_nonnull(hdr);
	memset(hdr, 'v', LK_HTTPD_MAX_HEADER_DEFAULT - 200);
	memcpy(hdr, "X-Test: ", 8);
	hdr[LK_HTTPD_MAX_HEADER_DEFAULT - 200] = '\0';
	c = client_new(&t);
	for (int i = 0; i < 3; i++) {
		request(c, &t, "GET", "/headers-big", NULL, 0, hdr, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, "ok");
		for (at = r.headers, n = 0; (at = strstr(at, "X-Big")) != NULL; at++)
			n++;
		ck_assert_int_eq(n, LK_HTTP_RESP_HEADERS_MAX);
		ck_assert_int_eq(r.connects, i == 0 ? 1 : 0);
		reply_free(&r);
	}
	curl_easy_cleanup(c);
	free(hdr);
	tsrv_stop(&t);
}
END_TEST

/* ---- what handlers do ---- */

START_TEST(handler_outcomes)
{
	struct reply r;
	struct tsrv t;
	json_t *j;

	tsrv_init(&t);
	tsrv_start(&t, true, 2);

	request1(&t, "GET", "/nothing", NULL, &r);
	ck_assert_int_eq(r.status, 500);
	j = json_loads(r.body, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "error")));
	json_decref(j);
	reply_free(&r);

	request1(&t, "GET", "/drop", NULL, &r);
	ck_assert_int_eq(r.code, CURLE_GOT_NOTHING);
	ck_assert_int_eq(r.status, 0);
	reply_free(&r);

	request1(&t, "GET", "/twice", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "one");
	ck_assert_int_eq(atomic_load(&t.respond_again_rc), -EALREADY);
	reply_free(&r);

	request1(&t, "GET", "/headers", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"n\":1}");
	ck_assert_ptr_nonnull(strstr(r.headers, "X-H0: v"));
	ck_assert_ptr_nonnull(strstr(r.headers, "X-H7: v"));
	ck_assert_ptr_null(strstr(r.headers, "X-Over"));
	ck_assert_ptr_null(strstr(r.headers, "Injected"));
	ck_assert_int_eq(atomic_load(&t.add_header_rc), -E2BIG);
	reply_free(&r);

	/* An encoded NUL in the path or a query argument never reaches the handler. */
	request1(&t, "GET", "/echo/a%00b", NULL, &r);
	ck_assert_int_eq(r.status, 400);
	reply_free(&r);
	request1(&t, "GET", "/echo/ab?a=x%00y", NULL, &r);
	ck_assert_int_eq(r.status, 400);
	reply_free(&r);
	request1(&t, "GET", "/echo/a+b%2Fc?a=x+y&b=%C3%A9", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "GET /echo/a+b/c a=x y b=\xc3\xa9 h=- len=0 body=");
	reply_free(&r);
	/* A reason that is not UTF-8 still gives a JSON answer. */
	request1(&t, "GET", "/nowhere/%FF", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(r.body, "{\"error\":\"not found\",\"reason\":\"/nowhere/?\"}");
	reply_free(&r);
	ck_assert_int_eq(atomic_load(&t.calls), 6);

	/* Any method token reaches the handler. */
	request1(&t, "LIST", "/echo/list", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "LIST /echo/list a=- b=- h=- len=0 body=");
	reply_free(&r);
	tsrv_stop(&t);
}
END_TEST

START_TEST(borrowed_released_once)
{
	struct reply r;
	struct tsrv t;
	CURL *c;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	c = client_new(&t);
	for (int i = 1; i <= 3; i++) {
		request(c, &t, "GET", "/borrowed", NULL, 0, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, borrowed_body);
		reply_free(&r);
		ck_assert(wait_count(&t.releases, i));
	}
	request(c, &t, "GET", "/borrowed-bad", NULL, 0, NULL, &r);
	ck_assert_int_eq(r.status, 500);
	reply_free(&r);
	ck_assert(wait_count(&t.releases, 4));
	curl_easy_cleanup(c);
	tsrv_stop(&t);
	ck_assert_int_eq(atomic_load(&t.releases), 4);
}
END_TEST

/* ---- suspend and resume ---- */

struct hold_client {
	struct tsrv *t;
	const char *path;
	struct reply r;
};

static void *
hold_client_run(void *arg)
{
	struct hold_client *h = arg;

	request1(h->t, "GET", h->path, NULL, &h->r);
	return NULL;
}

static void
check_suspend_resume(unsigned threads)
{
	struct hold_client h;
	struct reply r;
	struct tsrv t;
	pthread_t th;
	CURL *c;

	tsrv_init(&t);
	tsrv_start(&t, true, threads);

	/* Resumed from another thread while the server is busy with something else. */
	memset(&h, 0, sizeof(h));
	h.t = &t;
	h.path = "/hold";
	ck_assert_int_eq(pthread_create(&th, NULL, hold_client_run, &h), 0);
	ck_assert(wait_count(&t.suspended, 1));
	request1(&t, "GET", "/echo/meanwhile", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	pthread_mutex_lock(&t.lock);
	ck_assert_ptr_nonnull(t.held);
	lk_http_resume(t.held);
	pthread_mutex_unlock(&t.lock);
	pthread_join(th, NULL);
	ck_assert_int_eq(h.r.status, 200);
	ck_assert_str_eq(h.r.body, "released");
	reply_free(&h.r);
	ck_assert(wait_count(&t.cleanups, 1));

	/* Resumed at once, racing the handler's return, many times over one connection. */
	c = client_new(&t);
	for (int i = 0; i < 200; i++) {
		request(c, &t, "GET", "/race", NULL, 0, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, "resumed");
		ck_assert_int_eq(r.connects, i == 0 ? 1 : 0);
		reply_free(&r);
	}
	curl_easy_cleanup(c);
	tsrv_stop(&t);
}

START_TEST(suspend_resume_pool)
{
	check_suspend_resume(2);
}
END_TEST

START_TEST(suspend_resume_thread_per_connection)
{
	check_suspend_resume(0);
}
END_TEST

static void
check_stop_with_suspended(const char *path, unsigned threads, long want_status)
{
	struct hold_client h[3];
	pthread_t th[3];
	struct tsrv t;
	long start, took;

	tsrv_init(&t);
	tsrv_start(&t, true, threads);
	for (int i = 0; i < 3; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].t = &t;
		h[i].path = path;
		ck_assert_int_eq(pthread_create(&th[i], NULL, hold_client_run, &h[i]), 0);
	}
	ck_assert(wait_count(&t.suspended, 3));
	start = now_ms();
	lk_httpd_stop(t.srv);
	took = now_ms() - start;
	t.srv = NULL;
	ck_assert_msg(took < 3000, "stop took %ld ms", took);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(h[i].r.status, want_status);
		reply_free(&h[i].r);
	}
	/* Each suspended handler was called again, and each request ended. */
	ck_assert_int_eq(atomic_load(&t.resumed_by_stop), 3);
	ck_assert_int_eq(atomic_load(&t.cleanups), 3);
	t_rmrf(t.dir);
	free(t.dir);
}

START_TEST(stop_with_suspended)
{
	check_stop_with_suspended("/hold", 2, 200);
}
END_TEST

START_TEST(stop_with_suspended_again)
{
	/* The handler suspends once more when resumed by stop: the server answers 503. */
	check_stop_with_suspended("/hold-again", 2, 503);
}
END_TEST

START_TEST(stop_with_suspended_thread_per_connection)
{
	check_stop_with_suspended("/hold", 0, 200);
}
END_TEST

struct stop_arg {
	struct tsrv *t;
	atomic_bool stopped;
};

static void *
stop_run(void *arg)
{
	struct stop_arg *a = arg;

	lk_httpd_stop(a->t->srv);
	atomic_store(&a->stopped, true);
	return NULL;
}

static bool
slow_entered(void *arg)
{
	return atomic_load(&((struct tsrv *)arg)->slow_started) > 0;
}

/* True once a new client is refused: the stop has quiesced the server. */
static bool
refused_now(void *arg)
{
	struct tsrv *t = arg;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool refused;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->sock);
	refused = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0;
	if (fd >= 0)
		close(fd);
	return refused;
}

/* A handler still running when the server stops finishes, and its answer reaches the
 * client (with Connection: close), in both threading modes. */
START_TEST(stop_answers_in_flight)
{
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		struct stop_arg a = { 0 };
		char buf[4096];
		pthread_t th;
		struct tsrv t;
		int fd;

		tsrv_init(&t);
		tsrv_start(&t, true, threads);
		fd = raw_connect(&t);
		raw_puts(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
		ck_assert(t_wait_until(slow_entered, &t, T_DEADLINE_MS));
		a.t = &t;
		ck_assert_int_eq(pthread_create(&th, NULL, stop_run, &a), 0);
		ck_assert(t_wait_until(refused_now, &t, T_DEADLINE_MS));
		atomic_store(&t.slow_go, 1);
		raw_read_all(fd, buf, sizeof(buf), T_DEADLINE_MS);
		pthread_join(th, NULL);
		ck_assert(atomic_load(&a.stopped));
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "threads %u: got %.80s", threads, buf);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		ck_assert_ptr_nonnull(strstr(buf, "slow done"));
		close(fd);
		t.srv = NULL;
		t_rmrf(t.dir);
		free(t.dir);
	}
}
END_TEST

/* ---- robustness ---- */

START_TEST(client_disconnect_mid_response)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	static const char req[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[256];
	struct reply r;
	struct tsrv t;
	int fd;

	/* SIGPIPE keeps its default action here: a write to the closed socket would end
	 * the process. */
	signal(SIGPIPE, SIG_DFL);
	for (int unix_socket = 0; unix_socket <= 1; unix_socket++) {
		tsrv_init(&t);
		tsrv_start(&t, unix_socket, 2);
		for (int i = 0; i < 5; i++) {
			fd = raw_connect(&t);
			raw_write(fd, req, sizeof(req) - 1);
			ck_assert_int_gt(recv(fd, buf, sizeof(buf), 0), 0);
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
		}
		request1(&t, "GET", "/echo/alive", NULL, &r);
		ck_assert_int_eq(r.status, 200);
		reply_free(&r);
		tsrv_stop(&t);
	}
}
END_TEST

START_TEST(quiesce_refuses_new)
{
	struct reply r;
	struct tsrv t;
	CURL *c;

	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	c = client_new(&t);
	request(c, &t, "GET", "/echo/1", NULL, 0, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	reply_free(&r);
	lk_httpd_quiesce(t.srv);
	lk_httpd_quiesce(t.srv);
	/* The open connection goes on; a new one is refused. */
	request(c, &t, "GET", "/echo/2", NULL, 0, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.connects, 0);
	reply_free(&r);
	request1(&t, "GET", "/echo/3", NULL, &r);
	ck_assert_int_eq(r.code, CURLE_COULDNT_CONNECT);
	reply_free(&r);
	curl_easy_cleanup(c);
	tsrv_stop(&t);
}
END_TEST

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

START_TEST(no_descriptor_leak)
{
	struct lk_httpd_config cfg = { .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1 };
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };
	struct reply r;
	struct tsrv t;
	int before;

	/* Warm up libcurl and the resolver once: they keep descriptors of their own. */
	tsrv_init(&t);
	tsrv_start(&t, false, 2);
	request1(&t, "GET", "/echo", NULL, &r);
	reply_free(&r);
	tsrv_stop(&t);

	before = count_fds();
	for (int i = 0; i < 4; i++) {
		tsrv_init(&t);
		tsrv_start(&t, i & 1, i < 2 ? 2 : 0);
		request1(&t, "GET", "/echo", NULL, &r);
		ck_assert_int_eq(r.status, 200);
		reply_free(&r);
		/* A start that fails on a taken address. */
		cfg.unix_path = t.is_unix ? t.sock : NULL;
		cfg.tcp_addr = t.is_unix ? NULL : "127.0.0.1:0";
		cfg.handler = handler;
		if (t.is_unix)
			ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EADDRINUSE);
		if (i == 1)
			lk_httpd_quiesce(t.srv);
		tsrv_stop(&t);
	}
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- concurrency ---- */

#define CONC_CLIENTS 8
#define CONC_REQUESTS 200

struct conc_client {
	struct tsrv *t;
	int id;
	int ok;
};

static void *
conc_run(void *arg)
{
	struct conc_client *cc = arg;
	char path[64], want[128];
	struct reply r;
	CURL *c = curl_easy_init();

	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (cc->t->is_unix)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, cc->t->sock);
	for (int i = 0; i < CONC_REQUESTS; i++) {
		snprintf(path, sizeof(path), "/echo/%d/%d?a=%d", cc->id, i, i * 7);
		snprintf(want, sizeof(want), "GET /echo/%d/%d a=%d b=- h=- len=0 body=",
			 cc->id, i, i * 7);
		memset(&r, 0, sizeof(r));
		request(c, cc->t, "GET", path, NULL, 0, NULL, &r);
		if (r.status == 200 && r.body != NULL && strcmp(r.body, want) == 0)
			cc->ok++;
		reply_free(&r);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void
check_concurrent(bool unix_socket, unsigned threads)
{
	struct conc_client cc[CONC_CLIENTS];
	pthread_t th[CONC_CLIENTS];
	struct tsrv t;

	tsrv_init(&t);
	tsrv_start(&t, unix_socket, threads);
	for (int i = 0; i < CONC_CLIENTS; i++) {
		cc[i] = (struct conc_client){ .t = &t, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, conc_run, &cc[i]), 0);
	}
	for (int i = 0; i < CONC_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(cc[i].ok, CONC_REQUESTS);
	}
	ck_assert_int_eq(atomic_load(&t.calls), CONC_CLIENTS * CONC_REQUESTS);
	tsrv_stop(&t);
}

START_TEST(concurrent_pool_unix)
{
	check_concurrent(true, 2);
}
END_TEST

START_TEST(concurrent_pool_tcp)
{
	check_concurrent(false, 2);
}
END_TEST

START_TEST(concurrent_thread_per_connection)
{
	check_concurrent(true, 0);
}
END_TEST

/* ---- admission: per-uid cap, reserve, header deadline ---- */

/* The uid other peers run as in these tests. */
#define OTHER_UID 65534

struct conns_wait {
	struct lk_httpd *srv;
	unsigned want;
};

static bool
conns_reached(void *arg)
{
	struct conns_wait *w = arg;
	struct lk_httpd_stats st;

	lk_httpd_stats(w->srv, &st);
	return st.connections == w->want;
}

/* Waits until the server holds exactly n connections. */
static void
wait_conns(struct tsrv *t, unsigned n)
{
	struct conns_wait w = { t->srv, n };

	ck_assert_msg(t_wait_until(conns_reached, &w, T_DEADLINE_MS),
		      "the server never held %u connections", n);
}

/* One request on a fresh raw connection; the answer (NUL-terminated) in buf. */
static void
raw_request(const struct tsrv *t, const char *path, char *buf, size_t cap)
{
	char req[256];
	int fd = raw_connect(t);

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	/* A refused connection may already be closed for writing. */
	(void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
	raw_read_all(fd, buf, cap, T_DEADLINE_MS);
	close(fd);
}

/* Runs one request as uid in a child process. Exit status: 0 answered 200, 3 refused
 * with the 503 of too many connections, 1 anything else, 2 the uid could not be taken. */
static int
child_request(const struct tsrv *t, uid_t uid, const char *path)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		char req[256], buf[4096];
		size_t got = 0;
		ssize_t n;
		int fd;

		if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
			_exit(2);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t->sock);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			_exit(1);
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 path);
		(void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
		while (got + 1 < sizeof(buf) && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		if (strncmp(buf, "HTTP/1.1 200", 12) == 0)
			_exit(0);
		if (strncmp(buf, "HTTP/1.1 503", 12) == 0 && strstr(buf, "too many connections") != NULL)
			_exit(3);
		_exit(1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
tsrv_start_admission(struct tsrv *t, unsigned max_connections, unsigned max_per_uid,
		     const uid_t *reserved_uids, size_t nreserved, unsigned reserved,
		     unsigned header_timeout_ms)
{
	struct lk_httpd_config cfg = {
		.unix_path = t->sock, .unix_mode = 0666, .unix_owner = (uid_t)-1,
		.unix_group = (gid_t)-1, .threads = 2, .max_connections = max_connections,
		.max_per_uid = max_per_uid, .reserved_uids = reserved_uids,
		.nreserved_uids = nreserved, .reserved = reserved,
		.header_timeout_ms = header_timeout_ms,
	};

	/* Others may reach the socket (its directory is private otherwise). */
	ck_assert_int_eq(chmod(t->dir, 0711), 0);
	tsrv_start_cfg(t, &cfg);
}

/* One uid holding its cap of idle connections does not lock others out: it is refused
 * with a 503 of its own, another uid is answered, and the refusal is counted. */
START_TEST(admission_per_uid_cap)
{
	struct lk_httpd_stats st;
	struct tsrv t;
	char buf[4096];
	int fds[4];

	tsrv_init(&t);
	tsrv_start_admission(&t, 64, 4, NULL, 0, 0, 0);
	for (int i = 0; i < 4; i++)
		fds[i] = raw_connect(&t);
	wait_conns(&t, 4);
	raw_request(&t, "/echo", buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "HTTP/1.1 503", 12) == 0, "got: %s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "\"error\":\"too many connections\""));
	ck_assert_ptr_nonnull(strstr(buf, "Retry-After: 1"));
	ck_assert_int_eq(child_request(&t, OTHER_UID, "/echo"), 0);
	lk_httpd_stats(t.srv, &st);
	ck_assert_uint_eq(st.refused_per_uid, 1);
	ck_assert_uint_eq(st.refused_full, 0);
	/* Closing one makes room again. */
	close(fds[0]);
	wait_conns(&t, 3);
	raw_request(&t, "/echo", buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "got: %s", buf);
	for (int i = 1; i < 4; i++)
		close(fds[i]);
	wait_conns(&t, 0);
	tsrv_stop(&t);
}
END_TEST

/* The last slots are kept for the reserved uids (a readiness probe): everyone else stops
 * short of them, and a reserved uid has no per-uid cap. */
START_TEST(admission_reserve)
{
	const uid_t probe = OTHER_UID;
	struct lk_httpd_stats st;
	struct tsrv t;
	char buf[4096];
	int fds[4];

	tsrv_init(&t);
	tsrv_start_admission(&t, 6, 0, &probe, 1, 2, 0);
	for (int i = 0; i < 4; i++)
		fds[i] = raw_connect(&t);
	wait_conns(&t, 4);
	raw_request(&t, "/echo", buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "HTTP/1.1 503", 12) == 0, "got: %s", buf);
	ck_assert_int_eq(child_request(&t, OTHER_UID, "/echo"), 0);
	lk_httpd_stats(t.srv, &st);
	ck_assert_uint_eq(st.refused_full, 1);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	wait_conns(&t, 0);
	tsrv_stop(&t);
}
END_TEST

struct closed_wait {
	int fd;
};

/* True once the peer has closed fd (a read returns 0 or an error). */
static bool
peer_closed(void *arg)
{
	struct closed_wait *w = arg;
	char c;
	ssize_t n = recv(w->fd, &c, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* A client that dribbles its headers, or sits idle between requests, is closed at the
 * header deadline; a request being answered (a long poll) is not. */
START_TEST(header_deadline)
{
	struct closed_wait slow, idle;
	struct lk_httpd_stats st;
	struct reply r;
	struct tsrv t;
	char buf[4096];
	int held, dribbled = 0;

	tsrv_init(&t);
	tsrv_start_admission(&t, 64, 0, NULL, 0, 0, 400);
	/* A long poll, suspended until the test resumes it. */
	held = raw_connect(&t);
	raw_puts(held, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
	ck_assert(wait_count(&t.suspended, 1));
	/* Headers a byte at a time: never complete. */
	slow.fd = raw_connect(&t);
	idle.fd = raw_connect(&t);
	raw_puts(slow.fd, "GET /echo HTTP/1.1\r\n");
	while (!peer_closed(&slow)) {
		struct timespec ts = { 0, 50 * 1000000L };

		ck_assert_msg(dribbled < T_DEADLINE_MS / 50, "the dribbling client was never closed");
		if (send(slow.fd, "X", 1, MSG_NOSIGNAL) == 1)
			dribbled++;
		nanosleep(&ts, NULL);
	}
	ck_assert(t_wait_until(peer_closed, &idle, T_DEADLINE_MS));
	/* A whole head, then a body a byte at a time: the deadline covers the body too. */
	{
		struct closed_wait body;

		body.fd = raw_connect(&t);
		raw_puts(body.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n");
		dribbled = 0;
		while (!peer_closed(&body)) {
			struct timespec ts = { 0, 50 * 1000000L };

			ck_assert_msg(dribbled < T_DEADLINE_MS / 50,
				      "the client dribbling its body was never closed");
			if (send(body.fd, "b", 1, MSG_NOSIGNAL) == 1)
				dribbled++;
			nanosleep(&ts, NULL);
		}
		close(body.fd);
	}
	lk_httpd_stats(t.srv, &st);
	ck_assert_uint_ge(st.header_timeouts, 3);
	/* Both deadlines passed while the long poll waited: it is still there. */
	pthread_mutex_lock(&t.lock);
	ck_assert_ptr_nonnull(t.held);
	lk_http_resume(t.held);
	pthread_mutex_unlock(&t.lock);
	ck_assert_int_eq(raw_read_until(held, buf, sizeof(buf), "released", 1), 1);
	/* A keep-alive client that asks again within the deadline keeps its connection. */
	{
		CURL *c = client_new(&t);

		for (int i = 0; i < 3; i++) {
			request(c, &t, "GET", "/echo", NULL, 0, NULL, &r);
			ck_assert_int_eq(r.status, 200);
			ck_assert_int_eq(r.connects, i == 0 ? 1 : 0);
			reply_free(&r);
		}
		curl_easy_cleanup(c);
	}
	close(held);
	close(slow.fd);
	close(idle.fd);
	tsrv_stop(&t);
}
END_TEST

/* A Unix-socket server with a header deadline of ms, threads 0 (a thread per connection)
 * or a pool. */
static void
tsrv_start_deadline(struct tsrv *t, unsigned threads, unsigned ms)
{
	struct lk_httpd_config cfg = {
		.unix_path = t->sock, .unix_owner = (uid_t)-1, .unix_group = (gid_t)-1,
		.threads = threads, .header_timeout_ms = ms,
	};

	tsrv_start_cfg(t, &cfg);
}

/* The header deadline used below: long enough that the test quiesces or stops the server
 * well before it passes, however busy the machine. */
#define QUIESCED_DEADLINE_MS 1500

/* A quiesced server still closes connections at their header deadline: one that never
 * finishes its head and an idle one are closed, while new clients are refused. */
START_TEST(header_deadline_while_quiesced)
{
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		struct closed_wait slow, idle;
		struct lk_httpd_stats st;
		struct tsrv t;

		tsrv_init(&t);
		tsrv_start_deadline(&t, threads, QUIESCED_DEADLINE_MS);
		slow.fd = raw_connect(&t);
		idle.fd = raw_connect(&t);
		raw_puts(slow.fd, "GET /echo HTTP/1.1\r\nHost: x\r\n");
		wait_conns(&t, 2);
		lk_httpd_quiesce(t.srv);
		ck_assert(refused_now(&t));
		/* Both deadlines are still ahead: what closes them below is the quiesced
		 * server's deadline. */
		lk_httpd_stats(t.srv, &st);
		ck_assert_uint_eq(st.header_timeouts, 0);
		ck_assert(!peer_closed(&slow));
		ck_assert_msg(t_wait_until(peer_closed, &slow, T_DEADLINE_MS),
			      "threads %u: a quiesced server kept a head that never ended", threads);
		ck_assert_msg(t_wait_until(peer_closed, &idle, T_DEADLINE_MS),
			      "threads %u: a quiesced server kept an idle connection", threads);
		lk_httpd_stats(t.srv, &st);
		ck_assert_uint_eq(st.header_timeouts, 2);
		close(slow.fd);
		close(idle.fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* While stop drains (a long poll it resumed has not answered yet), the header deadline
 * still closes a client that never finishes its head; the long poll's answer still
 * arrives, and the stop ends once it is sent. */
START_TEST(header_deadline_during_stop)
{
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		struct stop_arg a = { 0 };
		struct closed_wait slow;
		struct lk_httpd_stats st;
		char buf[4096];
		struct tsrv t;
		pthread_t th;
		int held;

		tsrv_init(&t);
		tsrv_start_deadline(&t, threads, QUIESCED_DEADLINE_MS);
		held = raw_connect(&t);
		raw_puts(held, "GET /hold-gate HTTP/1.1\r\nHost: x\r\n\r\n");
		ck_assert(wait_count(&t.suspended, 1));
		slow.fd = raw_connect(&t);
		raw_puts(slow.fd, "GET /echo HTTP/1.1\r\nHost: x\r\n");
		wait_conns(&t, 2);
		a.t = &t;
		ck_assert_int_eq(pthread_create(&th, NULL, stop_run, &a), 0);
		/* The drain is on: the resumed handler waits for slow_go, and the server
		 * (stopping, not freed) cannot end before it answers. */
		ck_assert(wait_count(&t.resumed_by_stop, 1));
		lk_httpd_stats(t.srv, &st);
		ck_assert_uint_eq(st.header_timeouts, 0);
		ck_assert_msg(t_wait_until(peer_closed, &slow, T_DEADLINE_MS),
			      "threads %u: the head that never ended was kept through the drain",
			      threads);
		lk_httpd_stats(t.srv, &st);
		ck_assert_msg(st.header_timeouts == 1,
			      "threads %u: closed by the stop, not by the deadline", threads);
		ck_assert(!atomic_load(&a.stopped));
		atomic_store(&t.slow_go, 1);
		raw_read_all(held, buf, sizeof(buf), T_DEADLINE_MS);
		pthread_join(th, NULL);
		ck_assert(atomic_load(&a.stopped));
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "threads %u: got %.80s",
			      threads, buf);
		ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
		ck_assert_ptr_nonnull(strstr(buf, "released"));
		close(held);
		close(slow.fd);
		t.srv = NULL;
		t_rmrf(t.dir);
		free(t.dir);
	}
}
END_TEST

/* ---- stopping under load ---- */

/* Start/stop cycles of the stop-under-load test, and client threads hammering each one. */
#define STOP_CYCLES 300
#define STOP_CLIENTS 3

struct stop_client {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	atomic_bool done;
	atomic_int answers;
};

/* Opens connections in a loop and sends a few keep-alive requests on each, until done.
 * Every failure (refused, reset, closed) is expected while the server stops. */
static void *
stop_client_run(void *arg)
{
	static const char req[] = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	struct stop_client *sc = arg;
	struct timeval tv = { .tv_sec = 2 };
	char buf[512];
	int fd;

	while (!atomic_load(&sc->done)) {
		fd = socket(sc->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sc->addr, sc->addrlen) == 0) {
			for (int i = 0; i < 3; i++) {
				if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 ||
				    recv(fd, buf, sizeof(buf), 0) <= 0)
					break;
				atomic_fetch_add(&sc->answers, 1);
			}
		}
		close(fd);
	}
	return NULL;
}

static bool
stop_client_answered(void *arg)
{
	struct stop_client *sc = arg;

	return atomic_load(&sc->answers) > 0;
}

/* Stopping a server while clients connect and send must neither crash nor hang: the
 * acceptor, the workers and the connection threads all end, every connection closed. */
START_TEST(stop_under_load)
{
	struct stop_client sc[STOP_CLIENTS];
	pthread_t th[STOP_CLIENTS];
	struct sockaddr_un *sun;
	struct sockaddr_in *sin;
	struct tsrv t;

	for (int cycle = 0; cycle < STOP_CYCLES; cycle++) {
		bool unix_socket = cycle % 2 == 0;
		unsigned threads = cycle % 3 == 0 ? 0 : 2;

		tsrv_init(&t);
		tsrv_start(&t, unix_socket, threads);
		for (int i = 0; i < STOP_CLIENTS; i++) {
			memset(&sc[i], 0, sizeof(sc[i]));
			if (unix_socket) {
				sun = (struct sockaddr_un *)&sc[i].addr;
				sun->sun_family = AF_UNIX;
				snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", t.sock);
				sc[i].addrlen = sizeof(*sun);
			} else {
				sin = (struct sockaddr_in *)&sc[i].addr;
				sin->sin_family = AF_INET;
				sin->sin_port = htons((uint16_t)lk_httpd_port(t.srv));
				sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
				sc[i].addrlen = sizeof(*sin);
			}
			ck_assert_int_eq(pthread_create(&th[i], NULL, stop_client_run, &sc[i]), 0);
		}
		/* Stop only once requests are flowing, so connections are in flight. */
		ck_assert_msg(t_wait_until(stop_client_answered, &sc[0], T_DEADLINE_MS),
			      "cycle %d: no answer", cycle);
		if (cycle % 4 == 1)
			lk_httpd_quiesce(t.srv);
		tsrv_stop(&t);
		for (int i = 0; i < STOP_CLIENTS; i++) {
			atomic_store(&sc[i].done, true);
			pthread_join(th[i], NULL);
		}
	}
}
END_TEST

/* One case per test, so that CK_RUN_CASE=name runs one. */
#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 120); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

/* The header deadline of header_deadline_after_slow_handler, and how long its client stays
 * idle after an answer: two of the acceptor's deadline scans (every HTTPD_DEADLINE_SCAN_MS
 * at most) and a margin, well inside the deadline. */
#define SLOW_HANDLER_DEADLINE_MS 2000
#define SLOW_HANDLER_IDLE_MS (2 * HTTPD_DEADLINE_SCAN_MS + 100)

/* A keep-alive client whose request took the handler longer than the header deadline stays
 * idle after the answer, then asks again: it is answered, since its deadline runs from the
 * answer, not from when the worker last woke up. */
START_TEST(header_deadline_after_slow_handler)
{
	for (unsigned threads = 0; threads <= 2; threads += 2) {
		struct closed_wait conn, probe;
		struct tsrv t;
		char buf[4096];

		tsrv_init(&t);
		tsrv_start_deadline(&t, threads, SLOW_HANDLER_DEADLINE_MS);
		conn.fd = raw_connect(&t);
		raw_puts(conn.fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
		ck_assert(t_wait_until(slow_entered, &t, T_DEADLINE_MS));
		/* A connection that sends nothing, opened once the handler runs: when its deadline
		 * closes it, the handler has run longer than the deadline. */
		probe.fd = raw_connect(&t);
		ck_assert(t_wait_until(peer_closed, &probe, T_DEADLINE_MS));
		atomic_store(&t.slow_go, 1);
		ck_assert_int_eq(raw_read_until(conn.fd, buf, sizeof(buf), "slow done", 1), 1);
		/* A deadline counted from before the handler ran is long past: the acceptor's next
		 * scan would close the connection. */
		ck_assert_msg(!t_wait_until(peer_closed, &conn, SLOW_HANDLER_IDLE_MS),
			      "threads=%u: keep-alive connection closed right after its answer", threads);
		if (send(conn.fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 31, MSG_NOSIGNAL) < 0)
			buf[0] = '\0';
		else
			raw_read_until(conn.fd, buf, sizeof(buf), "GET /echo", 1);
		ck_assert_msg(strstr(buf, "GET /echo") != NULL,
			      "threads=%u: the request after a slow answer was not served", threads);
		close(probe.fd);
		close(conn.fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* The poll's span: doubled by a request that came within poll_us of the poll's start, up to
 * poll_us; halved by one that came later, and nothing below a quarter of poll_us. */
START_TEST(poll_span_adapts)
{
	const int64_t max = 20000;

	/* From nothing, a quick request starts it at a quarter. */
	ck_assert_int_eq(httpd_poll_span_next(0, max, 1000), 5000);
	ck_assert_int_eq(httpd_poll_span_next(5000, max, 1000), 10000);
	ck_assert_int_eq(httpd_poll_span_next(10000, max, 9999), 20000);
	/* Capped at poll_us. */
	ck_assert_int_eq(httpd_poll_span_next(15000, max, 1000), 20000);
	ck_assert_int_eq(httpd_poll_span_next(15000, max, 4999), 20000);
	/* The request came at poll_us or later: halved, then nothing. */
	ck_assert_int_eq(httpd_poll_span_next(15000, max, 5000), 7500);
	ck_assert_int_eq(httpd_poll_span_next(20000, max, 0), 10000);
	ck_assert_int_eq(httpd_poll_span_next(10000, max, 10000), 5000);
	ck_assert_int_eq(httpd_poll_span_next(5000, max, 1000000), 0);
	ck_assert_int_eq(httpd_poll_span_next(0, max, 1000000), 0);
	ck_assert_int_eq(httpd_poll_span_next(0, max, max), 0);
}
END_TEST

/* CPU time this process used (user and system), in microseconds. */
static int64_t
cpu_used_us(void)
{
	struct rusage ru;

	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

#define POLL_REQUESTS 200
#define POLL_IDLE_MS 1000

/* Polling before sleeping: with the longest poll_us, answers come as before, the time
 * counted as polling is within the time the workers ran, and once requests stop the
 * workers sleep: an idle second (a measuring window, not a wait) costs next to no CPU.
 * With poll_us 0 nothing polls. */
START_TEST(poll_bounded_and_sleeps_when_idle)
{
	const unsigned spans[] = { 0, LK_HTTPD_POLL_US_MAX };

	for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
		struct lk_httpd_config cfg = {
			.unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .threads = 2,
			.poll_us = spans[i],
		};
		struct lk_httpd_stats st;
		struct tsrv t;
		char buf[4096];
		int64_t cpu0, cpu1, wall0, wall1;
		int fd;

		tsrv_init(&t);
		cfg.unix_path = t.sock;
		tsrv_start_cfg(&t, &cfg);
		wall0 = lk_now_mono_ns();
		fd = raw_connect(&t);
		for (int n = 0; n < POLL_REQUESTS; n++) {
			raw_puts(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
			ck_assert_int_eq(raw_read_until(fd, buf, sizeof(buf), "GET /echo", 1), 1);
		}
		cpu0 = cpu_used_us();
		lk_sleep_ms(POLL_IDLE_MS);
		cpu1 = cpu_used_us();
		lk_httpd_stats(t.srv, &st);
		wall1 = lk_now_mono_ns();
		ck_assert_msg(cpu1 - cpu0 < POLL_IDLE_MS * 1000 / 10,
			      "poll_us=%u: %lld us of CPU in an idle %d ms", spans[i],
			      (long long)(cpu1 - cpu0), POLL_IDLE_MS);
		ck_assert_msg(st.poll_ns <= (unsigned long long)(wall1 - wall0) * cfg.threads,
			      "poll_us=%u: polled %llu ns in %lld ns", spans[i], st.poll_ns,
			      (long long)(wall1 - wall0));
		if (spans[i] == 0) {
			ck_assert_uint_eq(st.poll_ns, 0);
			ck_assert_uint_eq(st.poll_hits, 0);
		}
		close(fd);
		tsrv_stop(&t);
	}
}
END_TEST

/* poll_us past LK_HTTPD_POLL_US_MAX is refused. */
START_TEST(poll_span_limit)
{
	struct lk_httpd_config cfg = {
		.tcp_addr = "127.0.0.1:0", .threads = 1, .poll_us = LK_HTTPD_POLL_US_MAX + 1,
		.handler = handler,
	};
	struct lk_httpd *srv = NULL;
	struct lk_error err = { 0 };

	ck_assert_int_eq(lk_httpd_start(&cfg, &srv, &err), -EINVAL);
	ck_assert_ptr_null(srv);
	ck_assert_ptr_nonnull(strstr(err.msg, "poll_us 1001: expected at most 1000"));
}
END_TEST

static Suite *
httpd_suite(void)
{
	Suite *s = suite_create("httpd");

	ADD(s, tcp_port0_answers);
	ADD(s, poll_span_adapts);
	ADD(s, poll_bounded_and_sleeps_when_idle);
	ADD(s, poll_span_limit);
	ADD(s, tcp_bad_addresses);
	ADD(s, tcp_port_in_use);
	ADD(s, tcp_ipv6);
	ADD(s, unix_mode_and_removal);
	ADD(s, unix_stale_socket_replaced);
	ADD(s, unix_live_socket_kept);
	ADD(s, unix_non_socket_refused);
	ADD(s, keepalive_tcp_pool);
	ADD(s, keepalive_unix_thread_per_connection);
	ADD(s, keepalive_raw_pipelined);
	ADD(s, pipelined_in_order);
	ADD(s, request_in_small_writes);
	ADD(s, chunked_extensions_trailers);
	ADD(s, ambiguous_framing_refused);
	ADD(s, chunked_bare_lf_refused);
	ADD(s, expect_continue);
	ADD(s, head_has_no_body);
	ADD(s, http10_close);
	ADD(s, peer_credentials);
	ADD(s, body_limit);
	ADD(s, header_limit);
	ADD(s, big_headers_both_ways);
	ADD(s, handler_outcomes);
	ADD(s, borrowed_released_once);
	ADD(s, suspend_resume_pool);
	ADD(s, suspend_resume_thread_per_connection);
	ADD(s, stop_with_suspended);
	ADD(s, stop_with_suspended_again);
	ADD(s, stop_with_suspended_thread_per_connection);
	ADD(s, stop_answers_in_flight);
	ADD(s, client_disconnect_mid_response);
	ADD(s, quiesce_refuses_new);
	ADD(s, no_descriptor_leak);
	ADD(s, concurrent_pool_unix);
	ADD(s, concurrent_pool_tcp);
	ADD(s, concurrent_thread_per_connection);
	ADD(s, stop_under_load);
	ADD(s, admission_per_uid_cap);
	ADD(s, admission_reserve);
	ADD(s, header_deadline);
	ADD(s, header_deadline_while_quiesced);
	ADD(s, header_deadline_during_stop);
	ADD(s, header_deadline_after_slow_handler);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(httpd_suite());
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
