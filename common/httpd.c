/* httpd.c — the HTTP/1.1 server of httpd.h over libmicrohttpd 0.9.75.
 *
 * The design (two-call pattern, suspend/resume race, limits, stop) is described in
 * docs/internals/httpd.md.
 */
#include "common/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/clock.h"

/* Longest "host:port" accepted in tcp_addr. */
#define HTTPD_ADDR_MAX 256
/* Pending connections the kernel queues before accept(). */
#define HTTPD_BACKLOG SOMAXCONN
/* Longest name or value accepted by lk_http_add_header. */
#define HTTPD_RESP_HEADER_VALUE_MAX 1024
/* Connection memory beyond twice max_header (the request as read, then kept while it is
 * handled): parsed header records, room for body reads, and the response header with up to
 * LK_HTTP_RESP_HEADERS_MAX extra fields. */
#define HTTPD_POOL_SLACK ((4u << 10) + LK_HTTP_RESP_HEADERS_MAX * 2 * HTTPD_RESP_HEADER_VALUE_MAX)
/* How long lk_httpd_stop waits for resumed requests to be answered and sent. */
#define HTTPD_STOP_DRAIN_MS 5000
/* Body bytes past max_body read and thrown away so that a chunked upload still gets its
 * 413 (the library cannot answer in the middle of a body); past this it is closed. */
#define HTTPD_DISCARD_MAX (1u << 20)
/* First allocation of a request body buffer; it doubles up to max_body. */
#define HTTPD_BODY_INITIAL 1024
/* How long the acceptor pauses when the process is out of descriptors or memory, so that
 * a pending connection does not spin it. */
#define HTTPD_ACCEPT_PAUSE_MS 100

enum req_outcome {
	REQ_NONE = 0,   /* the handler did nothing (yet) */
	REQ_ANSWERED,
	REQ_SUSPEND,
	REQ_DROP,
};

struct http_conn;

struct lk_http_req {
	struct lk_httpd *srv;
	struct http_conn *conn;
	struct MHD_Connection *mhd;
	const char *method;           /* borrowed from MHD, valid for the request */
	const char *path;
	bool in_use;
	bool in_handler;              /* answering is allowed only inside the handler */
	bool too_big;                 /* body passed max_body: 413 */
	size_t discarded;             /* body bytes thrown away past max_body */
	enum req_outcome outcome;

	char *body;                   /* owned, wiped on free; NULL when empty */
	size_t body_len;
	size_t body_cap;

	unsigned nheaders;
	char *header_name[LK_HTTP_RESP_HEADERS_MAX];
	char *header_value[LK_HTTP_RESP_HEADERS_MAX];

	void *state;
	void (*state_cleanup)(void *state);

	/* Guarded by srv->lock. */
	bool suspended;               /* suspended (see wake()), not yet resumed */
	bool resume_early;            /* lk_http_resume came before the suspension happened */
	bool stop_resumed;            /* resumed by lk_httpd_stop, counted in srv->draining
				       * until the request ends (its answer sent) */
	struct lk_http_req *prev, *next;  /* srv->suspended list */
};

/* One per connection (MHD's socket context); a connection carries one request at a time,
 * so the request lives here and is reused across keep-alive requests. */
struct http_conn {
	bool bad_escape;              /* the request's URL decodes to a NUL byte */
	struct lk_peer peer;
	char remote[INET6_ADDRSTRLEN];
	struct lk_http_req req;
};

struct lk_httpd {
	struct MHD_Daemon *daemon;
	lk_http_handler handler;
	void *ctx;
	size_t max_body;
	size_t max_header;
	enum lk_httpd_error_style error_style;
	bool is_unix;
	bool thread_per_conn;         /* suspension blocks the connection's own thread */
	int port;

	/* The acceptor thread owns the listening socket and hands connections to the
	 * library (docs/internals/httpd.md, "Listening sockets"). */
	int listen_fd;
	int stop_fd;                  /* eventfd: the acceptor returns when it is readable */
	pthread_t acceptor;
	bool acceptor_running;

	char *unix_path;              /* owned; NULL on TCP */
	dev_t unix_dev;               /* identity of the socket file we created */
	ino_t unix_ino;

	pthread_mutex_t lock;
	pthread_cond_t drained;
	pthread_cond_t resumed;       /* thread-per-connection: a suspended request may go on */
	bool quiesced;
	bool stopping;
	unsigned draining;            /* requests resumed by stop, not ended yet */
	struct lk_http_req *suspended;
};

/* ---- small helpers ---- */

static void
wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return true;
		if (*s == 0x7f)
			return true;
	}
	return false;
}

static void
req_clear_headers(struct lk_http_req *req)
{
	for (unsigned i = 0; i < req->nheaders; i++) {
		free(req->header_name[i]);
		free(req->header_value[i]);
		req->header_name[i] = NULL;
		req->header_value[i] = NULL;
	}
	req->nheaders = 0;
}

static int
body_append(struct lk_http_req *req, const char *data, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > req->srv->max_body - req->body_len)
		return -E2BIG;
	need = req->body_len + n + 1;
	if (need > req->body_cap) {
		cap = req->body_cap ? req->body_cap : HTTPD_BODY_INITIAL;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (cap > req->srv->max_body + 1)
			cap = req->srv->max_body + 1;
		/* Not realloc: the old block may hold secret material and must be wiped. */
		if ((p = malloc(cap)) == NULL)
			return -ENOMEM;
		if (req->body != NULL) {
			memcpy(p, req->body, req->body_len);
			wipe_free(req->body, req->body_cap);
		}
		req->body = p;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return 0;
}

/* ---- responses ---- */

/* A response body owned by MHD until it frees the response; wiped then. */
struct owned_body {
	size_t len;
	char data[];
};

static void
owned_body_free(void *cls)
{
	struct owned_body *o = cls;

	explicit_bzero(o->data, o->len);
	free(o);
}

/* Queues resp (consumed) with the request's headers. */
static int
queue(struct lk_http_req *req, unsigned status, const char *content_type,
      struct MHD_Response *resp)
{
	int r = 0;

	if (content_type != NULL &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
		r = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < req->nheaders; i++) {
		if (MHD_add_response_header(resp, req->header_name[i],
					    req->header_value[i]) != MHD_YES) {
			r = -EINVAL;
			goto out;
		}
	}
	if (MHD_queue_response(req->mhd, status, resp) != MHD_YES) {
		r = -EIO;
		goto out;
	}
	req->outcome = REQ_ANSWERED;
	req_clear_headers(req);
out:
	MHD_destroy_response(resp);
	return r;
}

static int
check_answerable(const struct lk_http_req *req, unsigned status, const char *content_type)
{
	if (!req->in_handler || req->outcome != REQ_NONE)
		return -EALREADY;
	if (status < 100 || status > 999)
		return -EINVAL;
	if (content_type != NULL && has_ctl(content_type))
		return -EINVAL;
	return 0;
}

/* Answers with o (owned; freed on every path). */
static int
respond_owned(struct lk_http_req *req, unsigned status, const char *content_type,
	      struct owned_body *o)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(o->len, o->data,
								      owned_body_free, o);
	if (resp == NULL) {
		owned_body_free(o);
		return -ENOMEM;
	}
	return queue(req, status, content_type, resp);
}

int
lk_http_respond(struct lk_http_req *req, unsigned status, const char *content_type,
		const void *body, size_t len)
{
	struct owned_body *o;
	int r;

	if ((r = check_answerable(req, status, content_type)) < 0)
		return r;
	if (body == NULL && len > 0)
		return -EINVAL;
	if (len > SIZE_MAX - sizeof(*o))
		return -E2BIG;
	if ((o = malloc(sizeof(*o) + len)) == NULL)
		return -ENOMEM;
	o->len = len;
	if (len > 0)
		memcpy(o->data, body, len);
	return respond_owned(req, status, content_type, o);
}

int
lk_http_respond_borrowed(struct lk_http_req *req, unsigned status, const char *content_type,
			 const void *body, size_t len, void (*release)(void *cls), void *cls)
{
	struct MHD_Response *resp;
	int r;

	/* release runs exactly once, also when the answer could not be queued. */
	if ((r = check_answerable(req, status, content_type)) < 0)
		goto fail;
	if (body == NULL && len > 0) {
		r = -EINVAL;
		goto fail;
	}
	resp = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)body,
								      release, cls);
	if (resp == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	return queue(req, status, content_type, resp);
fail:
	if (release != NULL)
		release(cls);
	return r;
}

int
lk_http_respond_json(struct lk_http_req *req, unsigned status, const json_t *value)
{
	struct owned_body *o;
	size_t len;
	int r;

	if ((r = check_answerable(req, status, NULL)) < 0)
		return r;
	if (value == NULL)
		return -EINVAL;
	if ((len = json_dumpb(value, NULL, 0, JSON_COMPACT)) == 0)
		return -EINVAL;
	if ((o = malloc(sizeof(*o) + len)) == NULL)
		return -ENOMEM;
	o->len = len;
	if (json_dumpb(value, o->data, len, JSON_COMPACT) != len) {
		owned_body_free(o);
		return -EINVAL;
	}
	return respond_owned(req, status, "application/json", o);
}

/* A JSON string of s; bytes that are not UTF-8 text become '?' (a reason may quote a
 * decoded path). New reference or NULL. */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy;

	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

int
lk_http_respond_error(struct lk_http_req *req, unsigned status, const char *error,
		      const char *reason)
{
	json_t *obj;
	int r;

	if ((obj = json_object()) == NULL)
		return -ENOMEM;
	r = -ENOMEM;
	if (json_object_set_new(obj, "error", json_text(error != NULL ? error : "error")) < 0)
		goto out;
	if (reason != NULL && json_object_set_new(obj, "reason", json_text(reason)) < 0)
		goto out;
	r = lk_http_respond_json(req, status, obj);
out:
	json_decref(obj);
	return r;
}

int
lk_http_add_header(struct lk_http_req *req, const char *name, const char *value)
{
	char *n = NULL, *v = NULL;

	if (name == NULL || value == NULL || name[0] == '\0' ||
	    strlen(name) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    strlen(value) > HTTPD_RESP_HEADER_VALUE_MAX ||
	    has_ctl(name) || has_ctl(value) || strchr(name, ':') != NULL ||
	    strchr(name, ' ') != NULL || strchr(name, '\t') != NULL)
		return -EINVAL;
	if (req->nheaders >= LK_HTTP_RESP_HEADERS_MAX)
		return -E2BIG;
	if ((n = strdup(name)) == NULL || (v = strdup(value)) == NULL) {
		free(n);
		return -ENOMEM;
	}
	req->header_name[req->nheaders] = n;
	req->header_value[req->nheaders] = v;
	req->nheaders++;
	return 0;
}

/* An answer the server gives by itself (413, 431, 500, 503): outside the handler. */
static enum MHD_Result
answer_self(struct lk_http_req *req, unsigned status, const char *error, const char *reason)
{
	int r;

	req_clear_headers(req);
	req->outcome = REQ_NONE;
	req->in_handler = true;
	if (req->srv->error_style == LK_HTTPD_ERRORS_VAULT) {
		char text[512];
		json_t *body;

		snprintf(text, sizeof(text), "%s%s%s", error, reason != NULL ? ": " : "",
			 reason != NULL ? reason : "");
		body = json_pack("{s:[o]}", "errors", json_text(text));
		r = body != NULL ? lk_http_respond_json(req, status, body) : -ENOMEM;
		json_decref(body);
	} else {
		r = lk_http_respond_error(req, status, error, reason);
	}
	req->in_handler = false;
	return r == 0 ? MHD_YES : MHD_NO;
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
		return answer_self(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server stopping",
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
		ret = answer_self(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error",
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

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL)
		return;     /* the access handler drops a connection without context */
	if (srv->is_unix) {
		strcpy(conn->remote, "unix");
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (info != NULL &&
		    getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
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
	wipe_free(req->body, req->body_cap);
	req->body = NULL;
	req->body_len = req->body_cap = 0;
	req_clear_headers(req);
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
		*req_cls = req;

		if (conn->bad_escape) {
			conn->bad_escape = false;
			return answer_self(req, MHD_HTTP_BAD_REQUEST, "bad request",
					   "the URL holds an encoded NUL byte");
		}
		info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
		if (info != NULL && info->header_size > srv->max_header) {
			snprintf(reason, sizeof(reason), "the limit is %zu bytes", srv->max_header);
			return answer_self(req, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
					   "request header too large", reason);
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && parse_content_length(cl, &clen) && clen > srv->max_body) {
			snprintf(reason, sizeof(reason), "the limit is %zu bytes", srv->max_body);
			return answer_self(req, MHD_HTTP_CONTENT_TOO_LARGE,
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
			wipe_free(req->body, req->body_cap);
			req->body = NULL;
			req->body_len = req->body_cap = 0;
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
		return answer_self(req, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large",
				   reason);
	}
	return run_handler(srv, req);
}

/* ---- listening sockets ---- */

static int
unix_listen(struct lk_httpd *srv, const struct lk_httpd_config *cfg, int *ret_fd,
	    struct lk_error *err)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t mode = cfg->unix_mode ? cfg->unix_mode & 07777 : 0600;
	int fd = -1, probe = -1, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cfg->unix_path) >= sizeof(sun.sun_path)) {
		r = lk_error_set(err, -ENAMETOOLONG, "%s: socket path longer than %zu bytes",
				 cfg->unix_path, sizeof(sun.sun_path) - 1);
		goto out;
	}
	memcpy(sun.sun_path, cfg->unix_path, strlen(cfg->unix_path));

	if (lstat(cfg->unix_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = lk_error_set(err, -EEXIST, "%s: exists and is not a socket; not replacing it",
					 cfg->unix_path);
			goto out;
		}
		/* A socket file: replace it only when nobody listens on it. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe < 0) {
			r = lk_error_set(err, -errno, "%s: socket: %s", cfg->unix_path,
					 strerror(errno));
			goto out;
		}
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    (errno != ECONNREFUSED && errno != ENOENT)) {
			r = lk_error_set(err, -EADDRINUSE,
					 "%s: another server is listening on this socket",
					 cfg->unix_path);
			goto out;
		}
		if (unlink(cfg->unix_path) < 0 && errno != ENOENT) {
			r = lk_error_set(err, -errno, "%s: removing the stale socket: %s",
					 cfg->unix_path, strerror(errno));
			goto out;
		}
	} else if (errno != ENOENT) {
		r = lk_error_set(err, -errno, "%s: %s", cfg->unix_path, strerror(errno));
		goto out;
	}

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		r = lk_error_set(err, -errno, "%s: socket: %s", cfg->unix_path, strerror(errno));
		goto out;
	}
	/* Linux creates the file with the socket inode's mode minus the umask: narrowing
	 * it first means the file is never more open than asked, even for an instant. */
	(void)fchmod(fd, mode & 0777);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = lk_error_set(err, -errno, "%s: bind: %s", cfg->unix_path, strerror(errno));
		goto out;
	}
	if (stat(cfg->unix_path, &st) < 0) {
		r = lk_error_set(err, -errno, "%s: stat: %s", cfg->unix_path, strerror(errno));
		unlink(cfg->unix_path);
		goto out;
	}
	srv->unix_dev = st.st_dev;
	srv->unix_ino = st.st_ino;
	if ((cfg->unix_owner != (uid_t)-1 || cfg->unix_group != (gid_t)-1) &&
	    chown(cfg->unix_path, cfg->unix_owner, cfg->unix_group) < 0) {
		r = lk_error_set(err, -errno, "%s: chown to %ld:%ld: %s", cfg->unix_path,
				 (long)(int)cfg->unix_owner, (long)(int)cfg->unix_group,
				 strerror(errno));
		unlink(cfg->unix_path);
		goto out;
	}
	if (chmod(cfg->unix_path, mode) < 0) {
		r = lk_error_set(err, -errno, "%s: chmod %04o: %s", cfg->unix_path,
				 (unsigned)mode, strerror(errno));
		unlink(cfg->unix_path);
		goto out;
	}
	if (listen(fd, HTTPD_BACKLOG) < 0) {
		r = lk_error_set(err, -errno, "%s: listen: %s", cfg->unix_path, strerror(errno));
		unlink(cfg->unix_path);
		goto out;
	}
	*ret_fd = fd;
	fd = -1;
	r = 0;
out:
	if (probe >= 0)
		close(probe);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Splits "host:port" or "[v6]:port" into host and port. */
static int
split_hostport(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon, *end;
	size_t n;

	if (strlen(addr) >= HTTPD_ADDR_MAX)
		return -ENAMETOOLONG;
	if (addr[0] == '[') {
		if ((end = strchr(addr, ']')) == NULL || end[1] != ':')
			return -EINVAL;
		n = (size_t)(end - addr - 1);
		if (n == 0 || n >= hostlen)
			return -EINVAL;
		memcpy(host, addr + 1, n);
		host[n] = '\0';
		colon = end + 1;
	} else {
		if ((colon = strrchr(addr, ':')) == NULL || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL;
		n = (size_t)(colon - addr);
		if (n == 0 || n >= hostlen)
			return -EINVAL;
		memcpy(host, addr, n);
		host[n] = '\0';
	}
	n = strlen(colon + 1);
	if (n == 0 || n > 5 || n >= portlen || strspn(colon + 1, "0123456789") != n)
		return -EINVAL;
	memcpy(port, colon + 1, n + 1);
	if (atoi(port) > 65535)
		return -EINVAL;
	return 0;
}

static int
tcp_listen(struct lk_httpd *srv, const char *addr, int *ret_fd, struct lk_error *err)
{
	char host[HTTPD_ADDR_MAX], port[8];
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, r, gai, one = 1, saved = 0;

	if ((r = split_hostport(addr, host, sizeof(host), port, sizeof(port))) < 0) {
		r = lk_error_set(err, r, "%s: not a \"host:port\" or \"[v6]:port\" address", addr);
		goto out;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
		r = lk_error_set(err, -EINVAL, "%s: %s", addr, gai_strerror(gai));
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		r = lk_error_set(err, -saved, "%s: bind: %s", addr, strerror(saved));
		goto out;
	}
	if (listen(fd, HTTPD_BACKLOG) < 0) {
		r = lk_error_set(err, -errno, "%s: listen: %s", addr, strerror(errno));
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		r = lk_error_set(err, -errno, "%s: getsockname: %s", addr, strerror(errno));
		goto out;
	}
	if (ss.ss_family == AF_INET)
		srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else
		srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	*ret_fd = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	return r;
}

/* ---- the acceptor ---- */

/* Accepts connections until stop_fd is signalled and gives each to the library. The
 * library never sees the listening socket: MHD_quiesce_daemon with a thread pool races
 * its own worker threads over the socket's epoll registration and panics (0.9.75), and
 * closing the socket it hands back while a worker still uses it is a second race. */
static void *
acceptor_run(void *arg)
{
	struct lk_httpd *srv = arg;
	struct pollfd pfd[2] = {
		{ .fd = srv->listen_fd, .events = POLLIN },
		{ .fd = srv->stop_fd, .events = POLLIN },
	};
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, timeout = -1;

	for (;;) {
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		timeout = -1;
		if ((pfd[0].revents & POLLIN) == 0)
			continue;
		sslen = sizeof(ss);
		fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sslen,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				timeout = HTTPD_ACCEPT_PAUSE_MS;
			continue;
		}
		/* The library closes the socket itself when it cannot take it (connection
		 * limit, memory). */
		(void)MHD_add_connection(srv->daemon, fd, (struct sockaddr *)&ss, sslen);
	}
	return NULL;
}

/* Stops the acceptor and closes the listening socket: new clients are refused. */
static void
acceptor_stop(struct lk_httpd *srv)
{
	uint64_t one = 1;

	if (srv->acceptor_running) {
		while (write(srv->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(srv->acceptor, NULL);
		srv->acceptor_running = false;
	}
	if (srv->listen_fd >= 0) {
		close(srv->listen_fd);
		srv->listen_fd = -1;
	}
}

/* ---- the server ---- */

static void
unix_remove(struct lk_httpd *srv)
{
	struct stat st;

	/* Only the file we created: another server may have taken the path since. */
	if (srv->unix_path != NULL && lstat(srv->unix_path, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == srv->unix_dev && st.st_ino == srv->unix_ino)
		unlink(srv->unix_path);
}

static void
srv_free(struct lk_httpd *srv)
{
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
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
	sync_ready = true;
	srv->handler = cfg->handler;
	srv->ctx = cfg->ctx;
	srv->max_body = cfg->max_body ? cfg->max_body : LK_HTTPD_MAX_BODY_DEFAULT;
	srv->max_header = cfg->max_header ? cfg->max_header : LK_HTTPD_MAX_HEADER_DEFAULT;
	srv->error_style = cfg->error_style;
	if (srv->max_body >= SIZE_MAX / 2 || srv->max_header >= SIZE_MAX / 4) {
		r = lk_error_set(err, -EINVAL, "%s: limits out of range", where);
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
		if ((r = unix_listen(srv, cfg, &srv->listen_fd, err)) < 0) {
			free(srv->unix_path);
			srv->unix_path = NULL;   /* nothing of ours to remove */
			goto out;
		}
	} else if ((r = tcp_listen(srv, cfg->tcp_addr, &srv->listen_fd, err)) < 0) {
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
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)(cfg->max_connections ? cfg->max_connections : LK_HTTPD_MAX_CONN_DEFAULT),
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)(cfg->timeout_s ? cfg->timeout_s : LK_HTTPD_TIMEOUT_DEFAULT),
		MHD_OPTION_THREAD_POOL_SIZE, pool,
		MHD_OPTION_END);
	if (srv->daemon == NULL) {
		r = lk_error_set(err, -EIO, "%s: the HTTP server did not start", where);
		goto out;
	}
	if ((r = pthread_create(&srv->acceptor, NULL, acceptor_run, srv)) != 0) {
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
			unix_remove(srv);
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
		acceptor_stop(srv);
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
	unix_remove(srv);
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
		*ret_len = req->body_len;
	return req->body != NULL ? req->body : "";
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
