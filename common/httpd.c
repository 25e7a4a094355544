/* httpd.c — the HTTP/1.1 server of httpd.h over libmicrohttpd 0.9.75: requests, suspend
 * and resume, the library's callbacks, start and stop.
 *
 * The design (acceptor, two-call pattern, suspend/resume race, limits, stop) is described
 * in docs/internals/httpd.md.
 */
#include "common/httpd_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

static int
body_append(struct lk_http_req *req, const char *data, size_t n)
{
	return lk_buf_append(&req->body, data, n);
}

/* ---- suspend and resume ---- */

static void
list_remove(struct lk_httpd *srv, struct lk_http_req *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		srv->suspended = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

/* Lets a suspended request go on; srv->lock held and req->suspended just cleared. */
static void
wake(struct lk_httpd *srv, struct lk_http_req *req)
{
	if (srv->thread_per_conn)
		pthread_cond_broadcast(&srv->resumed);
	else
		MHD_resume_connection(req->mhd);
}

void
lk_http_suspend(struct lk_http_req *req)
{
	if (req->in_handler && req->outcome == REQ_NONE)
		req->outcome = REQ_SUSPEND;
}

void
lk_http_resume(struct lk_http_req *req)
{
	struct lk_httpd *srv = req->srv;

	pthread_mutex_lock(&srv->lock);
	if (req->suspended) {
		req->suspended = false;
		list_remove(srv, req);
		wake(srv, req);
	} else {
		/* The handler has not returned yet: the wrapper sees this and calls it again
		 * instead of suspending. */
		req->resume_early = true;
	}
	pthread_mutex_unlock(&srv->lock);
}

void
lk_http_drop(struct lk_http_req *req)
{
	if (req->in_handler && req->outcome == REQ_NONE)
		req->outcome = REQ_DROP;
}

/* Calls the handler and acts on what it did. */
static enum MHD_Result
run_handler(struct lk_httpd *srv, struct lk_http_req *req)
{
	enum MHD_Result ret;

again:
	req->outcome = REQ_NONE;
	req->in_handler = true;
	srv->handler(srv->ctx, req);
	req->in_handler = false;

	pthread_mutex_lock(&srv->lock);
	req->resume_early = req->resume_early && req->outcome == REQ_SUSPEND;
	if (req->outcome == REQ_SUSPEND) {
		if (req->resume_early) {
			req->resume_early = false;
			pthread_mutex_unlock(&srv->lock);
			goto again;
		}
		if (!srv->stopping) {
			req->suspended = true;
			req->prev = NULL;
			req->next = srv->suspended;
			if (srv->suspended != NULL)
				srv->suspended->prev = req;
			srv->suspended = req;
			if (!srv->thread_per_conn) {
				/* Under the lock: lk_http_resume cannot come between. */
				MHD_suspend_connection(req->mhd);
				pthread_mutex_unlock(&srv->lock);
				return MHD_YES;
			}
			/* The library does not suspend in this mode, but the thread is the
			 * connection's own: wait here for lk_http_resume or stop. */
			while (req->suspended)
				pthread_cond_wait(&srv->resumed, &srv->lock);
			pthread_mutex_unlock(&srv->lock);
			goto again;
		}
		pthread_mutex_unlock(&srv->lock);
		return httpd_answer_self(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server stopping",
				   "the server is shutting down");
	}
	pthread_mutex_unlock(&srv->lock);

	switch (req->outcome) {
	case REQ_ANSWERED:
		ret = MHD_YES;
		break;
	case REQ_DROP:
		ret = MHD_NO;
		break;
	default:
		ret = httpd_answer_self(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error",
				  "the request was not answered");
		break;
	}
	return ret;
}

/* ---- MHD callbacks ---- */

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
	      enum MHD_ConnectionNotificationCode toe)
{
	struct lk_httpd *srv = cls;
	struct http_conn *conn;
	const union MHD_ConnectionInfo *info;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	const struct sockaddr *sa;

	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (info != NULL)
			httpd_conn_closed(srv, info->connect_fd);
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL)
		return;     /* the access handler drops a connection without context */
	conn->fd = info != NULL ? info->connect_fd : -1;
	if (srv->is_unix) {
		strcpy(conn->remote, "unix");
		if (conn->fd >= 0 &&
		    getsockopt(conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
		    clen == sizeof(cred)) {
			conn->peer.known = true;
			conn->peer.pid = cred.pid;
			conn->peer.uid = cred.uid;
			conn->peer.gid = cred.gid;
		}
	} else {
		strcpy(conn->remote, "unknown");
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		sa = info != NULL ? info->client_addr : NULL;
		if (sa != NULL && sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
				  conn->remote, sizeof(conn->remote));
		else if (sa != NULL && sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
				  conn->remote, sizeof(conn->remote));
	}
	*socket_context = conn;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct lk_httpd *srv = cls;
	struct lk_http_req *req = *req_cls;

	if (req == NULL)
		return;
	*req_cls = NULL;
	/* The next request's header deadline starts now. */
	httpd_conn_busy(srv, req->conn->fd, false);
	pthread_mutex_lock(&srv->lock);
	if (req->suspended) {
		req->suspended = false;
		list_remove(srv, req);
	}
	if (req->stop_resumed) {
		req->stop_resumed = false;
		if (--srv->draining == 0)
			pthread_cond_broadcast(&srv->drained);
	}
	pthread_mutex_unlock(&srv->lock);
	/* The handler's cleanup runs first: it unregisters the request from whatever may
	 * still call lk_http_resume on it. */
	if (req->state_cleanup != NULL)
		req->state_cleanup(req->state);
	req->state = NULL;
	req->state_cleanup = NULL;
	lk_buf_free(&req->body);
	httpd_req_clear_headers(req);
	req->resume_early = false;
	req->in_use = false;
}

/* Percent-decodes the path and query arguments as the library does, and marks the request
 * when the result holds a NUL, which would cut the C string short: "/v1/a%00b" must not
 * reach a handler as "/v1/a". */
static size_t
on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	const union MHD_ConnectionInfo *info;
	struct http_conn *conn;
	size_t n;

	n = MHD_http_unescape(s);
	if (memchr(s, '\0', n) != NULL) {
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (info != NULL && (conn = info->socket_context) != NULL)
			conn->bad_escape = true;
	}
	return n;
}

static bool
parse_content_length(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return true;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	  const char *version, const char *upload_data, size_t *upload_data_size,
	  void **req_cls)
{
	struct lk_httpd *srv = cls;
	struct lk_http_req *req = *req_cls;
	const union MHD_ConnectionInfo *info;
	struct http_conn *conn;
	const char *cl;
	uint64_t clen;
	char reason[128];
	size_t len;
	int r;

	if (req == NULL) {
		/* First call: headers only. Answering now would make MHD close the
		 * connection, so only the requests that must fail are answered here. */
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (info == NULL || (conn = info->socket_context) == NULL)
			return MHD_NO;
		req = &conn->req;
		if (req->in_use)
			return MHD_NO;
		memset(req, 0, sizeof(*req));
		req->srv = srv;
		req->conn = conn;
		req->mhd = c;
		req->method = method;
		req->path = url;
		req->in_use = true;
		lk_buf_init(&req->body, srv->max_body, true);
		*req_cls = req;
		httpd_conn_busy(srv, conn->fd, true);

		if (conn->bad_escape) {
			conn->bad_escape = false;
			return httpd_answer_self(req, MHD_HTTP_BAD_REQUEST, "bad request",
					   "the URL holds an encoded NUL byte");
		}
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
		if (info != NULL && info->header_size > srv->max_header) {
			snprintf(reason, sizeof(reason), "the limit is %zu bytes", srv->max_header);
			return httpd_answer_self(req, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
					   "request header too large", reason);
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && parse_content_length(cl, &clen) && clen > srv->max_body) {
			snprintf(reason, sizeof(reason), "the limit is %zu bytes", srv->max_body);
			return httpd_answer_self(req, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large", reason);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		len = *upload_data_size;
		*upload_data_size = 0;
		if (req->outcome == REQ_ANSWERED)
			return MHD_YES;       /* answered on the first call: skip the rest */
		if (!req->too_big) {
			if ((r = body_append(req, upload_data, len)) == 0)
				return MHD_YES;
			if (r != -E2BIG)
				return MHD_NO;    /* out of memory: nothing better to do */
			/* A body without Content-Length grew past the limit. The library
			 * cannot answer before the body ends: throw the rest away, up to a
			 * bound, and answer 413 then. */
			req->too_big = true;
			lk_buf_free(&req->body);
		}
		if (len > HTTPD_DISCARD_MAX - req->discarded)
			return MHD_NO;
		req->discarded += len;
		return MHD_YES;
	}
	if (req->outcome == REQ_ANSWERED)
		return MHD_YES;
	if (req->too_big) {
		snprintf(reason, sizeof(reason), "the limit is %zu bytes", srv->max_body);
		return httpd_answer_self(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large",
				   reason);
	}
	return run_handler(srv, req);
}

/* ---- the server ---- */

static void
srv_free(struct lk_httpd *srv)
{
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	httpd_admission_free(srv);
	pthread_mutex_destroy(&srv->conns_lock);
	pthread_cond_destroy(&srv->resumed);
	pthread_cond_destroy(&srv->drained);
	pthread_mutex_destroy(&srv->lock);
	free(srv->unix_path);
	free(srv);
}

int
lk_httpd_start(const struct lk_httpd_config *cfg, struct lk_httpd **ret,
	       struct lk_error *err)
{
	struct lk_httpd *srv = NULL;
	const char *where;
	unsigned flags, pool;
	size_t mem;
	int r;
	bool sync_ready = false;

	if (cfg == NULL || ret == NULL || cfg->handler == NULL)
		return lk_error_set(err, -EINVAL, "httpd: no configuration or no handler");
	if ((cfg->unix_path == NULL) == (cfg->tcp_addr == NULL))
		return lk_error_set(err, -EINVAL, "httpd: exactly one of a Unix socket path and a TCP address is needed");
	where = cfg->unix_path != NULL ? cfg->unix_path : cfg->tcp_addr;
	if (where[0] == '\0')
		return lk_error_set(err, -EINVAL, "httpd: empty listen address");

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return lk_error_set(err, -ENOMEM, "%s: out of memory", where);
	srv->listen_fd = -1;
	srv->stop_fd = -1;
	if (pthread_mutex_init(&srv->lock, NULL) != 0) {
		free(srv);
		return lk_error_set(err, -ENOMEM, "%s: mutex", where);
	}
	if (pthread_cond_init(&srv->drained, NULL) != 0) {
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		return lk_error_set(err, -ENOMEM, "%s: condition variable", where);
	}
	if (pthread_cond_init(&srv->resumed, NULL) != 0) {
		pthread_cond_destroy(&srv->drained);
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		return lk_error_set(err, -ENOMEM, "%s: condition variable", where);
	}
	if (pthread_mutex_init(&srv->conns_lock, NULL) != 0) {
		pthread_cond_destroy(&srv->resumed);
		pthread_cond_destroy(&srv->drained);
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		return lk_error_set(err, -ENOMEM, "%s: mutex", where);
	}
	sync_ready = true;
	srv->handler = cfg->handler;
	srv->ctx = cfg->ctx;
	srv->max_body = cfg->max_body ? cfg->max_body : LK_HTTPD_MAX_BODY_DEFAULT;
	srv->max_header = cfg->max_header ? cfg->max_header : LK_HTTPD_MAX_HEADER_DEFAULT;
	srv->error_body = cfg->error_body;
	if (srv->max_body >= SIZE_MAX / 2 || srv->max_header >= SIZE_MAX / 4) {
		r = lk_error_set(err, -EINVAL, "%s: limits out of range", where);
		goto out;
	}
	srv->is_unix = cfg->unix_path != NULL;
	if (httpd_admission_init(srv, cfg) < 0) {
		r = lk_error_set(err, -ENOMEM, "%s: out of memory", where);
		goto out;
	}
	if ((srv->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = lk_error_set(err, -errno, "%s: eventfd: %s", where, strerror(errno));
		goto out;
	}

	if (cfg->unix_path != NULL) {
		srv->is_unix = true;
		if ((srv->unix_path = strdup(cfg->unix_path)) == NULL) {
			r = lk_error_set(err, -ENOMEM, "%s: out of memory", where);
			goto out;
		}
		if ((r = httpd_unix_listen(srv, cfg, &srv->listen_fd, err)) < 0) {
			free(srv->unix_path);
			srv->unix_path = NULL;   /* nothing of ours to remove */
			goto out;
		}
	} else if ((r = httpd_tcp_listen(srv, cfg->tcp_addr, &srv->listen_fd, err)) < 0) {
		goto out;
	}

	/* No listening socket for the library: the acceptor below hands it connections,
	 * and MHD_USE_ITC wakes the worker that gets one. */
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
		MHD_USE_NO_LISTEN_SOCKET;
	if (cfg->threads > 0) {
		flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ?
			MHD_USE_EPOLL : MHD_USE_POLL;
		pool = cfg->threads > 1 ? cfg->threads : 0;
	} else {
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
		pool = 0;
		srv->thread_per_conn = true;
	}
	mem = srv->max_header * 2 + HTTPD_POOL_SLACK;
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, srv,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
		/* Admission is the acceptor's (httpd_listen.c); this is a backstop. */
		MHD_OPTION_CONNECTION_LIMIT, srv->max_connections + HTTPD_LIBRARY_CONN_SLACK,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)(cfg->timeout_s ? cfg->timeout_s : LK_HTTPD_TIMEOUT_DEFAULT),
		MHD_OPTION_THREAD_POOL_SIZE, pool,
		MHD_OPTION_END);
	if (srv->daemon == NULL) {
		r = lk_error_set(err, -EIO, "%s: the HTTP server did not start", where);
		goto out;
	}
	if ((r = pthread_create(&srv->acceptor, NULL, httpd_acceptor_run, srv)) != 0) {
		r = lk_error_set(err, -r, "%s: acceptor thread: %s", where, strerror(r));
		MHD_stop_daemon(srv->daemon);
		srv->daemon = NULL;
		goto out;
	}
	srv->acceptor_running = true;
	*ret = srv;
	srv = NULL;
	r = 0;
out:
	if (srv != NULL) {
		if (srv->unix_path != NULL)
			httpd_unix_remove(srv);
		if (sync_ready)
			srv_free(srv);
	}
	return r;
}

int
lk_httpd_port(const struct lk_httpd *srv)
{
	return srv != NULL ? srv->port : 0;
}

void
lk_httpd_quiesce(struct lk_httpd *srv)
{
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->lock);
	if (!srv->quiesced) {
		srv->quiesced = true;
		httpd_acceptor_stop(srv);
	}
	pthread_mutex_unlock(&srv->lock);
}

void
lk_httpd_stop(struct lk_httpd *srv)
{
	struct lk_http_req *req;
	struct timespec deadline;

	if (srv == NULL)
		return;
	lk_httpd_quiesce(srv);

	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	while ((req = srv->suspended) != NULL) {
		list_remove(srv, req);
		req->suspended = false;
		req->stop_resumed = true;
		srv->draining++;
		wake(srv, req);
	}
	deadline = lk_timespec_in_ms(CLOCK_REALTIME, HTTPD_STOP_DRAIN_MS);
	while (srv->draining > 0) {
		if (pthread_cond_timedwait(&srv->drained, &srv->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&srv->lock);

	MHD_stop_daemon(srv->daemon);
	srv->daemon = NULL;
	httpd_unix_remove(srv);
	srv_free(srv);
}

/* ---- request accessors ---- */

const char *
lk_http_method(const struct lk_http_req *req)
{
	return req->method;
}

const char *
lk_http_path(const struct lk_http_req *req)
{
	return req->path;
}

const char *
lk_http_query(const struct lk_http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->mhd, MHD_GET_ARGUMENT_KIND, key);
}

const char *
lk_http_header(const struct lk_http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->mhd, MHD_HEADER_KIND, name);
}

const char *
lk_http_body(const struct lk_http_req *req, size_t *ret_len)
{
	if (ret_len != NULL)
		*ret_len = req->body.len;
	return req->body.data != NULL ? req->body.data : "";
}

const struct lk_peer *
lk_http_peer(const struct lk_http_req *req)
{
	return &req->conn->peer;
}

const char *
lk_http_remote(const struct lk_http_req *req)
{
	return req->conn->remote;
}

void *
lk_http_state(const struct lk_http_req *req)
{
	return req->state;
}

void
lk_http_set_state(struct lk_http_req *req, void *state, void (*cleanup)(void *state))
{
	req->state = state;
	req->state_cleanup = cleanup;
}

