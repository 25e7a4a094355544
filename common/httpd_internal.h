/* httpd_internal.h — what the files of the HTTP server share (common/httpd*.c only).
 *
 * httpd.c: connections (reading, dispatching, writing), worker threads, suspend and
 * resume, start and stop; httpd_respond.c: answers; httpd_listen.c: the listening sockets,
 * admission and the acceptor; httpd_parse.c: the request parser.
 */
#ifndef LK_HTTPD_INTERNAL_H
#define LK_HTTPD_INTERNAL_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/httpd.h"
#include "common/httpd_parse.h"

/* Longest "host:port" accepted in tcp_addr. */
#define HTTPD_ADDR_MAX 256
/* Pending connections the kernel queues before accept(). */
#define HTTPD_BACKLOG SOMAXCONN
/* Longest name or value accepted by lk_http_add_header. */
#define HTTPD_RESP_HEADER_VALUE_MAX 1024
/* How long lk_httpd_stop waits for resumed requests to be answered and sent. */
#define HTTPD_STOP_DRAIN_MS 5000
/* How long the acceptor pauses when the process is out of descriptors or memory, so that
 * a pending connection does not spin it. */
#define HTTPD_ACCEPT_PAUSE_MS 100
/* The longest the acceptor waits between two looks at the header deadlines. */
#define HTTPD_DEADLINE_SCAN_MS 250
/* Request bytes read and thrown away from a refused connection before it is closed, so
 * that the close does not reset the connection under the 503 it was sent. */
#define HTTPD_REFUSE_DRAIN_MAX 8192
/* First size of a connection's read buffer; it doubles up to max_header + this. */
#define HTTPD_READ_INITIAL 4096
/* Room past max_header in the read buffer: body bytes stream through it. */
#define HTTPD_READ_BODY_WINDOW (16u << 10)
/* A response body copy buffer larger than this is freed after its answer, not kept. */
#define HTTPD_OUT_KEEP (64u << 10)
/* After an answer that closes the connection, request bytes still arriving are read and
 * thrown away, up to this many and for this long, so that the close does not reset the
 * connection under the answer. */
#define HTTPD_LINGER_MAX (256u << 10)
#define HTTPD_LINGER_MS 2000
/* Events one epoll_wait returns at most. */
#define HTTPD_EVENTS_MAX 64
/* How often a worker looks for idle connections (timeout_s). */
#define HTTPD_IDLE_SCAN_MS 1000

enum req_outcome {
	REQ_NONE = 0,   /* the handler did nothing (yet) */
	REQ_ANSWERED,
	REQ_SUSPEND,
	REQ_DROP,
};

/* Where a connection is. */
enum conn_state {
	CS_HEAD = 0,    /* reading a request head */
	CS_BODY,        /* reading its body */
	CS_DISPATCH,    /* ready for the handler (again, after a resume) */
	CS_SUSPENDED,   /* the handler suspended it: parked until lk_http_resume */
	CS_WRITE,       /* sending the answer */
	CS_LINGER,      /* answered, closing: reading what the client still sends */
};

struct http_conn;
struct httpd_worker;

struct lk_http_req {
	struct lk_httpd *srv;
	struct http_conn *conn;
	bool in_handler;              /* answering is allowed only inside the handler */
	enum req_outcome outcome;

	void *state;
	void (*state_cleanup)(void *state);

	/* Guarded by srv->lock. */
	bool suspended;               /* suspended, not yet resumed */
	bool resume_early;            /* lk_http_resume came before the suspension happened */
	bool stop_resumed;            /* resumed by lk_httpd_stop, counted in srv->draining
				       * until the request ends (its answer sent) */
	struct lk_http_req *prev, *next;  /* srv->suspended list, or a worker's resumed queue */
};

/* One per connection; a connection carries one request at a time, so the request lives
 * here and its buffers are reused across keep-alive requests. */
struct http_conn {
	struct lk_httpd *srv;
	struct httpd_worker *worker;  /* NULL: a thread of its own */
	int fd;
	struct lk_peer peer;
	char remote[INET6_ADDRSTRLEN];
	enum conn_state state;
	bool blocking;                /* thread per connection: blocking socket */
	bool has_request;             /* a request started (its head parsed) and not ended */
	bool is_head;                 /* a HEAD request: the answer carries no body */
	bool close_after;             /* close once the answer is sent */
	bool linger;                  /* answered before the request was read whole */
	bool head_done;               /* the answer's head has its last lines */
	unsigned ep_events;           /* what the worker's epoll set watches; 0: not in it */

	/* Header deadline (httpd_listen.c): written by the connection's thread, read by the
	 * acceptor's scan. */
	atomic_bool busy;             /* a request's head arrived; not answered yet */
	atomic_llong ready_ms;        /* accepted, or the previous request ended (monotonic) */
	int64_t active_ms;            /* last read or write (worker: idle timeout) */

	/* The read buffer: the request head (parsed in place), then body bytes streaming
	 * through, or the next pipelined request. Wiped as each request ends. */
	char *in;
	size_t in_len, in_cap, in_max;
	size_t scanned;               /* httpd_head_end's resume point */
	size_t consumed;              /* bytes of the current request, framing included */
	struct httpd_head head;
	uint64_t body_left;           /* Content-Length bytes still to read */
	struct httpd_chunked chunked;
	struct lk_buf body;           /* wiped; capped at srv->max_body */
	size_t lingered;              /* bytes thrown away in CS_LINGER */
	int64_t linger_until_ms;

	/* The answer: head text, then the body (a reused copy, or borrowed). */
	char *out_head;
	size_t out_head_len, out_head_cap;
	char *out_copy;               /* the body copy buffer, wiped after each answer */
	size_t out_copy_len, out_copy_cap;
	const char *out_body;
	size_t out_body_len;
	bool out_no_body;             /* 1xx, 204, 304: no body, no Content-Length */
	void (*release)(void *cls);   /* a borrowed body's */
	void *release_cls;
	size_t sent;                  /* bytes of head + body sent */
	/* Headers the handler added, as "Name: value\r\n" lines. */
	char *extra;
	size_t extra_len, extra_cap;
	unsigned nextra;
	bool extra_framed;            /* the handler gave Transfer-Encoding itself */

	struct lk_http_req req;

	/* worker->conns or srv->tpc_conns, under their lock. */
	struct http_conn *prev, *next;
	pthread_t thread;             /* thread per connection */
};

/* A thread of the epoll pool. */
struct httpd_worker {
	struct lk_httpd *srv;
	pthread_t thread;
	bool started;
	int epfd;
	int wake_fd;                  /* eventfd: new connections, resumed requests, stop */
	int64_t now_ms;
	/* Polling before sleeping (httpd.c, worker_poll); the worker's own. */
	int64_t poll_max_ns;          /* poll_us; 0: never */
	int64_t poll_span_ns;         /* the span the next poll may take, 0 to poll_max_ns */
	unsigned poll_skip;           /* batches to sleep at once after: the CPU had work */
	atomic_ullong poll_hits;      /* read by lk_httpd_stats */
	atomic_ullong poll_ns;
	pthread_mutex_t lock;         /* conns, incoming, stop */
	struct http_conn *conns;      /* every connection of this worker */
	struct http_conn *incoming;   /* handed over by the acceptor, not yet in epfd */
	bool stop;
	struct lk_http_req *resumed;  /* under srv->lock: to run again */
};

struct lk_httpd {
	lk_http_handler handler;
	void *ctx;
	size_t max_body;
	size_t max_header;
	lk_httpd_error_body error_body; /* NULL: latchkey's shape */
	bool is_unix;
	bool thread_per_conn;         /* suspension blocks the connection's own thread */
	int port;
	int64_t idle_ms;              /* timeout_s */

	struct httpd_worker *workers;
	unsigned nworkers;
	unsigned next_worker;         /* round robin; the acceptor's */

	/* Thread per connection: the live ones and those whose thread ended (to join). */
	pthread_mutex_t tpc_lock;
	pthread_cond_t tpc_gone;
	struct http_conn *tpc_conns;
	struct http_conn *tpc_done;
	unsigned tpc_live;

	/* The acceptor thread owns the listening socket and hands connections to workers
	 * (docs/internals/httpd.md, "Listening sockets"); it also enforces the header
	 * deadlines, from start until lk_httpd_stop's drain has ended. */
	int listen_fd;                /* -1 once quiesced; set to -1 under conns_lock */
	int stop_fd;                  /* eventfd: the acceptor returns when it is readable */
	int quiesce_fd;               /* eventfd: the acceptor closes listen_fd and goes on
				       * with the deadlines alone */
	pthread_cond_t listen_closed; /* under conns_lock: listen_fd became -1 */
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
	atomic_bool stopping;         /* written under lock; read without it on the fast path */
	unsigned draining;            /* requests resumed by stop, not ended yet */
	struct lk_http_req *suspended;
};

/* An admitted connection, indexed by its descriptor number. */
struct httpd_slot {
	bool live;                    /* admitted, not closed yet */
	bool has_uid;
	bool timed_out;               /* shut down by the header deadline */
	uid_t uid;
	struct http_conn *conn;       /* freed only after its slot is released */
};

struct httpd_uid_count {
	uid_t uid;
	unsigned n;
};

/* True when s holds a control character other than a tab. */
bool httpd_has_ctl(const char *s);

/* Forgets the response headers the handler added. */
void httpd_req_clear_headers(struct lk_http_req *req);

/* An answer the server gives by itself (400, 413, 431, 500, 503), outside the handler, in
 * the server's error shape. 0 or < 0 (nothing queued). */
int httpd_answer_self(struct lk_http_req *req, unsigned status, const char *error,
		      const char *reason);

/* Ends the answer: the body copy wiped (and freed when large), a borrowed body released. */
void httpd_answer_clear(struct http_conn *conn);

/* Creates, binds and listens on the Unix socket of cfg (see httpd.h for the rules on an
 * existing path); *ret_fd is the listening socket, srv->unix_dev/ino its file. */
int httpd_unix_listen(struct lk_httpd *srv, const struct lk_httpd_config *cfg, int *ret_fd,
		      struct lk_error *err);

/* Binds and listens on "host:port" or "[v6]:port"; sets srv->port. */
int httpd_tcp_listen(struct lk_httpd *srv, const char *addr, int *ret_fd, struct lk_error *err);

/* Removes the Unix socket file if it is still the one created. */
void httpd_unix_remove(struct lk_httpd *srv);

/* The acceptor thread: accepts on srv->listen_fd until srv->quiesce_fd is signalled, and
 * enforces the header deadlines until srv->stop_fd is. */
void *httpd_acceptor_run(void *arg);

/* Has the acceptor close the listening socket (new clients are refused once this
 * returns); it goes on enforcing the header deadlines until httpd_acceptor_stop. */
void httpd_acceptor_quiesce(struct lk_httpd *srv);

/* Stops and joins the acceptor, then closes the listening socket if it is still open. */
void httpd_acceptor_stop(struct lk_httpd *srv);

/* Admission set-up from cfg (limits, reserved uids, the 503 answers); 0 or -ENOMEM. */
int httpd_admission_init(struct lk_httpd *srv, const struct lk_httpd_config *cfg);
void httpd_admission_free(struct lk_httpd *srv);

/* A new admitted connection (httpd.c): its state, for fd (not yet owned), with the
 * peer's credentials (NULL on TCP) and address. 0 or -ENOMEM. */
int httpd_conn_new(struct lk_httpd *srv, int fd, const struct sockaddr *sa,
		   const struct ucred *cred, struct http_conn **ret_conn);
/* Frees a connection's memory (not its descriptor, not its slot). */
void httpd_conn_free(struct http_conn *conn);
/* Hands conn to a worker or to a thread of its own; from now on it owns fd. On failure
 * the connection is closed (slot freed, fd closed, memory freed) and < 0 returned. */
int httpd_conn_hand(struct lk_httpd *srv, struct http_conn *conn);
/* Joins the threads of connections that ended (thread per connection). */
void httpd_tpc_reap(struct lk_httpd *srv);

/* The connection on fd closes: its admission slot is freed (before the descriptor is). */
void httpd_conn_closed(struct lk_httpd *srv, int fd);

/* Polling before sleeping (httpd.c): the span of a worker's next poll, after a poll of
 * span_ns that found nothing and a sleep of slept_ns. A request that came within max_ns
 * of the poll's start doubles the span (from nothing: a quarter of max_ns), up to max_ns;
 * a later one, or none, halves it, and below a quarter of max_ns it is nothing. */
int64_t httpd_poll_span_next(int64_t span_ns, int64_t max_ns, int64_t slept_ns);

#endif
