/* httpd_internal.h — what the files of the HTTP server share (common/httpd*.c only).
 *
 * httpd.c: requests, suspend and resume, the library's callbacks, start and stop;
 * httpd_respond.c: answers; httpd_listen.c: the listening sockets and the acceptor.
 */
#ifndef LK_HTTPD_INTERNAL_H
#define LK_HTTPD_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "common/buf.h"
#include "common/httpd.h"

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
/* Connections the library may hold beyond max_connections: admission is ours, the
 * library's own limit is only a backstop. */
#define HTTPD_LIBRARY_CONN_SLACK 64
/* The longest the acceptor waits between two looks at the header deadlines. */
#define HTTPD_DEADLINE_SCAN_MS 250
/* Request bytes read and thrown away from a refused connection before it is closed, so
 * that the close does not reset the connection under the 503 it was sent. */
#define HTTPD_REFUSE_DRAIN_MAX 8192

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

	struct lk_buf body;           /* wiped; capped at srv->max_body */

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
	int fd;                       /* the connection's socket, for its admission slot */
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
	lk_httpd_error_body error_body; /* NULL: latchkey's shape */
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

	/* Admission and header deadlines (httpd_listen.c), under conns_lock: one slot per
	 * descriptor number of an admitted connection, and the connections per uid. */
	pthread_mutex_t conns_lock;
	struct httpd_slot *slots;
	size_t nslots;
	struct httpd_uid_count *uids;
	size_t nuids;
	size_t uids_cap;
	unsigned nconns;
	unsigned max_connections;
	unsigned max_per_uid;
	unsigned reserved;
	uid_t *reserved_uids;         /* owned */
	size_t nreserved_uids;
	int64_t header_timeout_ms;
	unsigned long long refused_per_uid, refused_full, header_timeouts;
	char *refusal[2];             /* owned: the 503 answers (per uid, full) */
	size_t refusal_len[2];

	pthread_mutex_t lock;
	pthread_cond_t drained;
	pthread_cond_t resumed;       /* thread-per-connection: a suspended request may go on */
	bool quiesced;
	bool stopping;
	unsigned draining;            /* requests resumed by stop, not ended yet */
	struct lk_http_req *suspended;
};

/* An admitted connection, indexed by its descriptor number. */
struct httpd_slot {
	bool live;                    /* admitted, not closed yet */
	bool busy;                    /* a request's headers arrived; not answered yet */
	bool has_uid;
	bool timed_out;               /* shut down by the header deadline */
	uid_t uid;
	int64_t ready_ms;             /* accepted, or the previous request ended (monotonic) */
};

struct httpd_uid_count {
	uid_t uid;
	unsigned n;
};

/* Frees p after zeroing len bytes; NULL allowed. */
void httpd_wipe_free(void *p, size_t len);

/* True when s holds a control character other than a tab. */
bool httpd_has_ctl(const char *s);

/* Frees the response headers the handler added. */
void httpd_req_clear_headers(struct lk_http_req *req);

/* An answer the server gives by itself (400, 413, 431, 500, 503), outside the handler, in
 * the server's error shape. */
enum MHD_Result httpd_answer_self(struct lk_http_req *req, unsigned status, const char *error,
				  const char *reason);

/* Creates, binds and listens on the Unix socket of cfg (see httpd.h for the rules on an
 * existing path); *ret_fd is the listening socket, srv->unix_dev/ino its file. */
int httpd_unix_listen(struct lk_httpd *srv, const struct lk_httpd_config *cfg, int *ret_fd,
		      struct lk_error *err);

/* Binds and listens on "host:port" or "[v6]:port"; sets srv->port. */
int httpd_tcp_listen(struct lk_httpd *srv, const char *addr, int *ret_fd, struct lk_error *err);

/* Removes the Unix socket file if it is still the one created. */
void httpd_unix_remove(struct lk_httpd *srv);

/* The acceptor thread: accepts on srv->listen_fd until srv->stop_fd is signalled. */
void *httpd_acceptor_run(void *arg);

/* Stops and joins the acceptor, then closes the listening socket. */
void httpd_acceptor_stop(struct lk_httpd *srv);

/* Admission set-up from cfg (limits, reserved uids, the 503 answers); 0 or -ENOMEM. */
int httpd_admission_init(struct lk_httpd *srv, const struct lk_httpd_config *cfg);
void httpd_admission_free(struct lk_httpd *srv);

/* The library's callbacks tell admission what a connection is doing: its request's headers
 * arrived (busy), its request ended (not busy: the header deadline starts again), or it
 * closed (the slot is freed). fd is the connection's socket. */
void httpd_conn_busy(struct lk_httpd *srv, int fd, bool busy);
void httpd_conn_closed(struct lk_httpd *srv, int fd);

#endif
