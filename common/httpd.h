/* httpd.h — an HTTP/1.1 server of our own, on a Unix socket or a TCP address.
 *
 * The server calls one handler per request, once the whole body has arrived. The handler
 * either answers (lk_http_respond*), suspends the request (lk_http_suspend, to answer
 * later from another thread: long polls), or drops the connection (lk_http_drop, for
 * fault injection). A handler that does none of these gets a 500 answered for it.
 *
 * Keep-alive and pipelining work: a client reuses its connection across requests.
 *
 * Limits: request bodies over max_body get 413 and headers over max_header 431 before the
 * handler runs (a chunked body is answered 413 as soon as it passes max_body, and the
 * connection closed). The peer's credentials (SO_PEERCRED)
 * are read once per Unix-socket connection, when it is accepted: a uid over its connection
 * cap is refused there, and slots are kept for named uids (a readiness probe). A header
 * deadline closes connections that dribble their request or sit idle.
 */
#ifndef LK_HTTPD_H
#define LK_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Defaults when the config leaves a limit at 0. */
#define LK_HTTPD_MAX_BODY_DEFAULT   (1u << 20)  /* request body bytes */
#define LK_HTTPD_MAX_HEADER_DEFAULT (16u << 10) /* request line + headers bytes */
#define LK_HTTPD_MAX_CONN_DEFAULT   1024        /* open connections */
#define LK_HTTPD_TIMEOUT_DEFAULT    60          /* idle seconds before a connection is closed */
/* Connections kept for reserved_uids out of max_connections unless the config says. */
#define LK_HTTPD_RESERVED_DEFAULT   16
/* The longest poll_us. */
#define LK_HTTPD_POLL_US_MAX        1000
/* Most extra headers one response may carry. */
#define LK_HTTP_RESP_HEADERS_MAX 8

struct lk_httpd;
struct lk_http_req;

/* Who is on the other end of a Unix-socket connection. known is false on TCP. */
struct lk_peer {
	bool known;
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

typedef void (*lk_http_handler)(void *ctx, struct lk_http_req *req);

/* The body of an answer the server gives by itself (400, 413, 431, 500, 503): a new
 * reference, or NULL when out of memory. The default (NULL) is latchkey's shape,
 * {"error": error, "reason": reason}; `latchkey dev` gives Vault's. reason may be NULL. */
typedef json_t *(*lk_httpd_error_body)(unsigned status, const char *error, const char *reason);

struct lk_httpd_config {
	/* Exactly one of unix_path and tcp_addr. */
	const char *unix_path;   /* created (a stale socket file is replaced), removed on stop */
	mode_t unix_mode;        /* e.g. 0660; 0 means 0600 */
	uid_t unix_owner;        /* (uid_t)-1 leaves it */
	gid_t unix_group;        /* (gid_t)-1 leaves it */
	const char *tcp_addr;    /* "127.0.0.1:8200", "[::1]:0", "0.0.0.0:9102"; port 0 picks one */

	unsigned threads;        /* worker threads (epoll thread pool); 0 = a thread per connection */
	size_t max_body;
	size_t max_header;
	unsigned max_connections;
	unsigned timeout_s;

	/* Connection admission, decided when a connection is accepted, before it is served
	 * (docs/internals/httpd.md, "Connection limits"). A refused peer gets a 503
	 * in the server's error shape and the connection is closed. */
	unsigned max_per_uid;    /* Unix socket: most connections one uid holds; 0: no cap */
	unsigned reserved;       /* slots of max_connections only reserved_uids may take;
				  * 0: LK_HTTPD_RESERVED_DEFAULT when reserved_uids are named */
	const uid_t *reserved_uids; /* copied: exempt from max_per_uid, may use the reserve */
	size_t nreserved_uids;
	/* A connection must deliver the headers of its next request within this many
	 * milliseconds of being accepted or of its previous answer, or it is closed (a
	 * slowloris client, or an idle keep-alive connection). 0: no deadline. */
	unsigned header_timeout_ms;
	/* Epoll workers: after serving, poll for the next request up to this many
	 * microseconds before sleeping, adapting the span to the gaps seen (docs/internals/
	 * httpd.md, "Polling before sleeping"). 0: sleep at once. */
	unsigned poll_us;        /* at most LK_HTTPD_POLL_US_MAX */

	lk_httpd_error_body error_body; /* NULL: {"error","reason"} */

	lk_http_handler handler;
	void *ctx;               /* handed to the handler */
};

/* Binds, listens and starts serving. *ret is owned: stop with lk_httpd_stop; it is set
 * before the first connection is accepted, so a handler may read it. On error, *ret is
 * left as it was and err names the address and what failed (bind, permissions, ...). */
int lk_httpd_start(const struct lk_httpd_config *cfg, struct lk_httpd **ret,
		   struct lk_error *err) __attribute__((warn_unused_result));

/* The TCP port actually bound (useful with port 0); 0 for a Unix socket. */
int lk_httpd_port(const struct lk_httpd *srv);

/* What admission and the header deadline did, for metrics. */
struct lk_httpd_stats {
	unsigned connections;       /* open now */
	unsigned long long refused_per_uid;  /* the peer's uid held max_per_uid already */
	unsigned long long refused_full;     /* no slot left for the peer */
	unsigned long long header_timeouts;  /* closed by the header deadline */
	unsigned long long poll_hits;        /* polls that ended with events to serve */
	unsigned long long poll_ns;          /* time the workers spent polling (monotonic) */
};

/* Fills *ret (NULL srv: zeroes). Thread-safe, but not during lk_httpd_stop of srv. */
void lk_httpd_stats(struct lk_httpd *srv, struct lk_httpd_stats *ret);

/* Stops accepting new connections (new clients are refused once it returns); requests in
 * flight go on, and connections are still closed at their header deadline. */
void lk_httpd_quiesce(struct lk_httpd *srv);

/* Stops the server: resumes suspended requests (their handler is called again and must
 * answer), waits for handlers to return, closes connections, removes the Unix socket
 * file. NULL allowed. */
void lk_httpd_stop(struct lk_httpd *srv);

/* ---- the request, valid only inside the handler (or until resumed) ---- */

const char *lk_http_method(const struct lk_http_req *req);    /* "GET", "LIST", ... */
/* The path without the query, percent-decoded (%2F becomes /; not normalised). A URL that decodes to a NUL byte is answered 400 before the handler. */
const char *lk_http_path(const struct lk_http_req *req);
/* A query value; NULL when absent, or when the key is given without '='. */
const char *lk_http_query(const struct lk_http_req *req, const char *key);
const char *lk_http_header(const struct lk_http_req *req, const char *name); /* case-insensitive */
/* The body, NUL-terminated (len excludes the NUL); "" when there is none. Borrowed. */
const char *lk_http_body(const struct lk_http_req *req, size_t *ret_len);
const struct lk_peer *lk_http_peer(const struct lk_http_req *req);
/* The connection's remote address as text ("127.0.0.1", "unix"). */
const char *lk_http_remote(const struct lk_http_req *req);

/* A per-request slot for the handler's own state, kept across suspend and resume.
 * cleanup (may be NULL) is called with it when the request ends, however it ends. */
void *lk_http_state(const struct lk_http_req *req);
void lk_http_set_state(struct lk_http_req *req, void *state, void (*cleanup)(void *state));

/* ---- answering ---- */

/* Adds a response header (copied). At most LK_HTTP_RESP_HEADERS_MAX; returns 0 or -E2BIG. */
int lk_http_add_header(struct lk_http_req *req, const char *name, const char *value);

/* Answers with a copy of body (len bytes; body may be NULL when len is 0). The copy is
 * zeroed when the response is done. */
int lk_http_respond(struct lk_http_req *req, unsigned status, const char *content_type,
		    const void *body, size_t len);

/* Answers with body borrowed, not copied: release(cls) is called once the server has
 * sent it (or dropped it). release runs exactly once, also when the answer fails (the
 * function then returns < 0). For pre-rendered, reference-counted payloads. */
int lk_http_respond_borrowed(struct lk_http_req *req, unsigned status, const char *content_type,
			     const void *body, size_t len,
			     void (*release)(void *cls), void *cls);

/* Answers with a compact JSON rendering of value (not stolen). */
int lk_http_respond_json(struct lk_http_req *req, unsigned status, const json_t *value);

/* Answers {"error": error, "reason": reason} with the status: latchkey's own error shape. */
int lk_http_respond_error(struct lk_http_req *req, unsigned status, const char *error,
			  const char *reason);

/* Suspends the request: the handler returns without answering, and lk_http_resume (from
 * any thread) makes the server call the handler again for the same request. Never resume
 * after the state cleanup has run: unregister the request there, under the same lock the
 * resuming thread holds. Do not call lk_httpd_stop from a handler. */
void lk_http_suspend(struct lk_http_req *req);
void lk_http_resume(struct lk_http_req *req);

/* Closes the connection without an answer. */
void lk_http_drop(struct lk_http_req *req);

#endif
