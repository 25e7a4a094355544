/* server.c — HTTPS over libmicrohttpd (GnuTLS), a thread per connection: a watch stream
 * blocks its own thread while it waits for events, and injected latency delays only the
 * request it applies to.
 *
 * Keep-alive needs the library's two-call pattern: the answer is queued on a later call
 * than the first for a request (../shared/NOTES.md). Bodies are collected up to
 * FK_BODY_MAX; a longer one gets 413 as kube-apiserver answers it. */
#include "fake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

/* Idle seconds before a keep-alive connection is closed. */
#define SERVER_IDLE_S 300
/* Pending connections the kernel queues. */
#define SERVER_BACKLOG 128
/* Block size of watch stream reads. */
#define SERVER_STREAM_BLOCK (32u << 10)
/* Body bytes past FK_BODY_MAX read and dropped before the 413 (then the connection closes). */
#define SERVER_DISCARD_MAX (1u << 20)
/* Connection memory: the request head (twice, as the library keeps it) and slack. */
#define SERVER_CONN_MEMORY (FK_HEADER_MAX * 2 + (64u << 10))

struct fk_server {
	struct fk_state *st;
	struct MHD_Daemon *daemon;
};

/* One per connection; a connection carries one request at a time. */
struct conn {
	struct fk_server *srv;
	struct MHD_Connection *mhd;
	bool in_use;
	bool too_big;
	bool early;                     /* answered on the first call */
	size_t discarded;
	char *body;
	size_t len, cap;
	struct fk_request req;
};

const char *
fk_req_query(const struct fk_request *r, const char *key)
{
	const struct conn *c = r->conn;

	return c != NULL ? MHD_lookup_connection_value(c->mhd, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

const char *
fk_req_header(const struct fk_request *r, const char *name)
{
	const struct conn *c = r->conn;

	return c != NULL ? MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, name) : NULL;
}

static int
conn_fd(struct MHD_Connection *mhd)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);

	return info != NULL ? info->connect_fd : -1;
}

bool
fk_req_peer_closed(const struct fk_request *r)
{
	const struct conn *c = r->conn;
	struct pollfd p;
	int fd = c != NULL ? conn_fd(c->mhd) : -1;

	if (fd < 0)
		return true;
	p.fd = fd;
	p.events = POLLRDHUP;
	p.revents = 0;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void
fk_request_clear(struct fk_request *r)
{
	free(r->resp);
	r->resp = NULL;
	for (unsigned i = 0; i < r->nwarnings; i++)
		free(r->warnings[i]);
	r->nwarnings = 0;
	if (r->watch != NULL)
		fk_watch_free(r->watch);
	r->watch = NULL;
}

/* ---- streams ---- */

struct stream {
	struct fk_watch *w;
};

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	long n = fk_watch_read(s->w, buf, max);

	(void)pos;
	if (n > 0)
		return n;
	return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	fk_watch_free(s->w);
	free(s);
}

/* ---- answers ---- */

static void
add_headers(struct MHD_Response *resp, const struct fk_request *r)
{
	char id[37], value[1200];

	fk_uuid(id);
	MHD_add_response_header(resp, "Audit-Id", id);
	MHD_add_response_header(resp, "Cache-Control", "no-cache, private");
	MHD_add_response_header(resp, "X-Kubernetes-Pf-Flowschema-Uid", "00000000-0000-0000-0000-00000000f5f5");
	MHD_add_response_header(resp, "X-Kubernetes-Pf-Prioritylevel-Uid", "00000000-0000-0000-0000-00000000f1f1");
	if (r->resp_type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp_type);
	for (unsigned i = 0; i < r->nwarnings; i++) {
		/* a quoted-string: quotes and backslashes escaped (RFC 7234 §5.5) */
		size_t o = 0;

		o += (size_t)snprintf(value, sizeof(value), "299 - \"");
		for (const char *p = r->warnings[i]; *p != '\0' && o + 3 < sizeof(value); p++) {
			if (*p == '"' || *p == '\\')
				value[o++] = '\\';
			value[o++] = *p;
		}
		value[o++] = '"';
		value[o] = '\0';
		MHD_add_response_header(resp, "Warning", value);
	}
	if (r->retry_after > 0) {
		snprintf(value, sizeof(value), "%d", r->retry_after);
		MHD_add_response_header(resp, "Retry-After", value);
	}
	if (r->etag[0] != '\0')
		MHD_add_response_header(resp, "Etag", r->etag);
}

static enum MHD_Result
queue(struct conn *c)
{
	struct fk_request *r = &c->req;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (r->drop)
		return MHD_NO;
	if (r->watch != NULL) {
		struct stream *s = malloc(sizeof(*s));

		if (s == NULL)
			return MHD_NO;
		s->w = r->watch;
		r->watch = NULL;
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SERVER_STREAM_BLOCK,
							 stream_read, s, stream_free);
		if (resp == NULL) {
			stream_free(s);
			return MHD_NO;
		}
	} else {
		resp = MHD_create_response_from_buffer(r->resp_len, r->resp != NULL ? r->resp : "",
						       MHD_RESPMEM_MUST_COPY);
		if (resp == NULL)
			return MHD_NO;
	}
	add_headers(resp, r);
	ret = MHD_queue_response(c->mhd, r->status ? r->status : 500, resp);
	MHD_destroy_response(resp);
	free(r->resp);
	r->resp = NULL;
	return ret;
}

static enum MHD_Result
too_large(struct conn *c)
{
	fk_reply_status(&c->req, 413, "RequestEntityTooLarge", NULL,
			"Request entity too large: limit is %u", FK_BODY_MAX);
	return queue(c);
}

/* ---- library callbacks ---- */

static void
on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
	      enum MHD_ConnectionNotificationCode toe)
{
	struct fk_server *srv = cls;
	struct conn *c;
	int one = 1, fd;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		c = *socket_context;
		if (c != NULL) {
			fk_request_clear(&c->req);
			free(c->body);
			free(c);
		}
		*socket_context = NULL;
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->srv = srv;
	c->mhd = mhd;
	/* Watch events go out as they happen. */
	if ((fd = conn_fd(mhd)) >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*socket_context = c;
}

static void
on_completed(void *cls, struct MHD_Connection *mhd, void **req_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct fk_server *srv = cls;
	struct conn *c = *req_cls;
	uint64_t one = 1;

	(void)mhd;
	if (c == NULL)
		return;
	*req_cls = NULL;
	/* A restart asked for by this request starts once its answer is out. */
	if (c->req.restart_after && srv->st->restart_fd >= 0)
		(void)!write(srv->st->restart_fd, &one, sizeof(one));
	(void)toe;
	fk_request_clear(&c->req);
	free(c->body);
	c->body = NULL;
	c->len = c->cap = 0;
	c->in_use = false;
}

static int
body_append(struct conn *c, const char *data, size_t n)
{
	if (n > FK_BODY_MAX - c->len)
		return -E2BIG;
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *nb;

		while (cap < c->len + n + 1)
			cap *= 2;
		if ((nb = realloc(c->body, cap)) == NULL)
			return -ENOMEM;
		c->body = nb;
		c->cap = cap;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
	c->body[c->len] = '\0';
	return 0;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *mhd, const char *url, const char *method,
	  const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct fk_server *srv = cls;
	struct conn *c = *req_cls;
	const union MHD_ConnectionInfo *info;
	const char *cl;

	(void)version;
	if (c == NULL) {
		info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (info == NULL || (c = info->socket_context) == NULL || c->in_use)
			return MHD_NO;
		c->in_use = true;
		c->too_big = c->early = false;
		c->discarded = 0;
		fk_request_clear(&c->req);
		memset(&c->req, 0, sizeof(c->req));
		c->req.conn = c;
		c->req.method = method;
		c->req.path = url;
		*req_cls = c;
		info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
		if (info != NULL && info->header_size > FK_HEADER_MAX) {
			c->early = true;
			/* as Go's net/http answers it, before the apiserver's handlers */
			fk_reply_text(&c->req, 431, "text/plain; charset=utf-8",
				      "431 Request Header Fields Too Large");
			return queue(c);
		}
		cl = MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > FK_BODY_MAX) {
			c->early = true;
			return too_large(c);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (c->early)
			return MHD_YES;
		if (!c->too_big) {
			int r = body_append(c, upload_data, n);

			if (r == 0)
				return MHD_YES;
			if (r != -E2BIG)
				return MHD_NO;
			c->too_big = true;
		}
		if (n > SERVER_DISCARD_MAX - c->discarded)
			return MHD_NO;
		c->discarded += n;
		return MHD_YES;
	}
	if (c->early)
		return MHD_YES;
	if (c->too_big)
		return too_large(c);
	c->req.body = c->body != NULL ? c->body : "";
	c->req.body_len = c->len;
	fk_handle(srv->st, &c->req);
	return queue(c);
}

/* Query values: '+' is a space (Go's url.Values.Encode writes spaces so), then %XX. */
static size_t
on_unescape(void *cls, struct MHD_Connection *mhd, char *s)
{
	(void)cls;
	(void)mhd;
	for (char *p = s; *p != '\0'; p++) {
		if (*p == '+')
			*p = ' ';
	}
	return MHD_http_unescape(s);
}

/* ---- listening ---- */

static int
listen_on(const char *listen_addr, int port_override, int *ret_fd, int *ret_port, char *err,
	  size_t errlen)
{
	char host[256], port[16];
	const char *colon;
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, one = 1, gai, saved = 0;

	if (listen_addr[0] == '[') {
		const char *end = strchr(listen_addr, ']');

		if (end == NULL || end[1] != ':') {
			snprintf(err, errlen, "%s: not host:port", listen_addr);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(end - listen_addr - 1), listen_addr + 1);
		colon = end + 1;
	} else {
		if ((colon = strrchr(listen_addr, ':')) == NULL) {
			snprintf(err, errlen, "%s: not host:port", listen_addr);
			return -EINVAL;
		}
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen_addr), listen_addr);
	}
	if (port_override > 0)
		snprintf(port, sizeof(port), "%d", port_override);
	else
		snprintf(port, sizeof(port), "%s", colon + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", listen_addr, gai_strerror(gai));
		return -EINVAL;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0) {
			saved = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SERVER_BACKLOG) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", listen_addr, strerror(saved));
		return -saved;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		*ret_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	*ret_fd = fd;
	return 0;
}

int
fk_server_start(struct fk_state *st, struct fk_server **ret, char *err, size_t errlen)
{
	struct fk_server *srv = calloc(1, sizeof(*srv));
	int fd = -1, port = 0, r;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	srv->st = st;
	if ((r = listen_on(st->cfg->listen, st->port, &fd, &port, err, errlen)) < 0) {
		free(srv);
		return r;
	}
	srv->daemon = MHD_start_daemon(
		MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_POLL | MHD_USE_ITC,
		0, NULL, NULL, on_access, srv,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_HTTPS_MEM_KEY, st->keys.key_pem,
		MHD_OPTION_HTTPS_MEM_CERT, st->keys.cert_pem,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, srv,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_CONN_MEMORY,
		MHD_OPTION_CONNECTION_LIMIT, st->cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVER_IDLE_S,
		MHD_OPTION_END);
	if (srv->daemon == NULL) {
		close(fd);
		free(srv);
		snprintf(err, errlen, "%s: the HTTPS server did not start", st->cfg->listen);
		return -EIO;
	}
	st->port = port;
	*ret = srv;
	return 0;
}

void
fk_server_stop(struct fk_server *srv)
{
	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
