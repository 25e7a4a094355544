/* httpd.c — the HTTP/1.1 server of httpd.h: connections (reading, dispatching, writing),
 * the epoll workers and the thread-per-connection loop, suspend and resume, start and stop.
 *
 * The design (acceptor, workers, the connection's states, the suspend/resume race,
 * limits, stop) is described in docs/internals/httpd.md.
 */
#include "common/httpd_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

/* What a connection waits for after a step of its state machine. */
enum step {
	STEP_READ,      /* readable */
	STEP_WRITE,     /* writable */
	STEP_PARKED,    /* nothing: a suspended request, until lk_http_resume */
	STEP_CLOSE,     /* close it */
};

/* Internal outcomes of one state's work, besides the steps. */
#define STEP_CONTINUE (-1)
#define STEP_NEED_READ (-2)

static const char *const HTTP_CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";

static void
wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

static void
signal_fd(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
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

/* Lets a suspended request go on; srv->lock held and req->suspended just cleared. A
 * worker's request goes on its resumed queue: the worker runs the handler again. */
static void
wake(struct lk_httpd *srv, struct lk_http_req *req)
{
	struct httpd_worker *w = req->conn->worker;

	if (w == NULL) {
		pthread_cond_broadcast(&srv->resumed);
		return;
	}
	req->prev = NULL;
	req->next = w->resumed;
	w->resumed = req;
	signal_fd(w->wake_fd);
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

/* Calls the handler and acts on what it did: REQ_ANSWERED (an answer is set), REQ_SUSPEND
 * (a worker's request, parked) or REQ_DROP. */
static enum req_outcome
run_handler(struct http_conn *c)
{
	struct lk_httpd *srv = c->srv;
	struct lk_http_req *req = &c->req;

again:
	req->outcome = REQ_NONE;
	req->in_handler = true;
	srv->handler(srv->ctx, req);
	req->in_handler = false;

	if (req->outcome == REQ_SUSPEND) {
		pthread_mutex_lock(&srv->lock);
		if (req->resume_early) {
			req->resume_early = false;
			pthread_mutex_unlock(&srv->lock);
			goto again;
		}
		if (!atomic_load(&srv->stopping)) {
			req->suspended = true;
			req->prev = NULL;
			req->next = srv->suspended;
			if (srv->suspended != NULL)
				srv->suspended->prev = req;
			srv->suspended = req;
			if (c->worker != NULL) {
				/* The worker parks the connection; a resume queues it back. */
				pthread_mutex_unlock(&srv->lock);
				return REQ_SUSPEND;
			}
			/* The thread is the connection's own: wait here. */
			while (req->suspended)
				pthread_cond_wait(&srv->resumed, &srv->lock);
			pthread_mutex_unlock(&srv->lock);
			goto again;
		}
		pthread_mutex_unlock(&srv->lock);
		c->close_after = true;
		if (httpd_answer_self(req, 503, "server stopping", "the server is shutting down") < 0)
			return REQ_DROP;
		return REQ_ANSWERED;
	}
	if (atomic_load(&srv->stopping))
		c->close_after = true;
	switch (req->outcome) {
	case REQ_ANSWERED:
		return REQ_ANSWERED;
	case REQ_DROP:
		return REQ_DROP;
	default:
		if (httpd_answer_self(req, 500, "internal error", "the request was not answered") < 0)
			return REQ_DROP;
		return REQ_ANSWERED;
	}
}

/* ---- a request's life on its connection ---- */

static void
request_begin(struct http_conn *c)
{
	struct lk_http_req *req = &c->req;

	c->has_request = true;
	req->srv = c->srv;
	req->conn = c;
	req->in_handler = false;
	req->outcome = REQ_NONE;
	req->state = NULL;
	req->state_cleanup = NULL;
	req->resume_early = false;
	req->suspended = false;
	req->stop_resumed = false;
	req->prev = req->next = NULL;
}

/* The worker loop's time, read once per wake-up (a blocking connection's: now). */
static int64_t
conn_now(const struct http_conn *c)
{
	return c->worker != NULL ? c->worker->now_ms : lk_now_mono_ms();
}

/* Ends the current request, however it ended: the handler's cleanup, the answer released,
 * the body and the request's bytes wiped, pipelined bytes moved to the front. */
static void
request_end(struct http_conn *c)
{
	struct lk_httpd *srv = c->srv;
	struct lk_http_req *req = &c->req;
	size_t leftover;

	if (!c->has_request)
		return;
	c->has_request = false;
	/* The clock now, not the worker's reading at its wake-up: the handler and the batch's
	 * other events since then are not the client's time. */
	if (srv->header_timeout_ms > 0)
		atomic_store_explicit(&c->ready_ms, lk_now_mono_ms(), memory_order_relaxed);
	/* Release: the acceptor that sees busy false (acquire) sees this ready_ms too. */
	atomic_store_explicit(&c->busy, false, memory_order_release);
	/* Set only on a suspended request's path, whose hand-over went through srv->lock. */
	if (req->suspended || req->stop_resumed || req->resume_early) {
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
		req->resume_early = false;
		pthread_mutex_unlock(&srv->lock);
	}
	/* The handler's cleanup runs first: it unregisters the request from whatever may
	 * still call lk_http_resume on it. */
	if (req->state_cleanup != NULL)
		req->state_cleanup(req->state);
	req->state = NULL;
	req->state_cleanup = NULL;
	httpd_answer_clear(c);
	httpd_req_clear_headers(req);
	if (c->body.cap > HTTPD_OUT_KEEP)
		lk_buf_free(&c->body);
	else
		lk_buf_reset(&c->body);

	/* The request's bytes may carry tokens: wipe them (only what was used). */
	if (c->consumed > c->in_len)
		c->consumed = c->in_len;
	leftover = c->in_len - c->consumed;
	wipe(c->in, c->consumed);
	if (leftover > 0) {
		memmove(c->in, c->in + c->consumed, leftover);
		wipe(c->in + leftover, c->consumed);
	}
	c->in_len = leftover;
	c->consumed = 0;
	c->scanned = 0;
	c->is_head = false;
	c->linger = false;
	c->state = CS_HEAD;
}

/* Doubles the read buffer (up to in_max), moving its bytes by hand and wiping the old
 * block. Only while no parsed head points into it. */
static int
in_grow(struct http_conn *c)
{
	size_t ncap;
	char *p;

	if (c->in_cap >= c->in_max)
		return -E2BIG;
	ncap = c->in_cap * 2 < c->in_max ? c->in_cap * 2 : c->in_max;
	if ((p = malloc(ncap)) == NULL)
		return -ENOMEM;
	memcpy(p, c->in, c->in_len);
	wipe(c->in, c->in_len);
	free(c->in);
	c->in = p;
	c->in_cap = ncap;
	return 0;
}

/* Reads into the free part of the buffer: > 0 bytes read, 0 the peer closed, -EAGAIN
 * (nothing now, or a blocking socket's idle timeout), other < 0 errors. */
static ssize_t
conn_fill(struct http_conn *c)
{
	size_t room = c->in_cap - c->in_len;
	ssize_t n;

	if (room == 0)
		return -ENOBUFS;
	do
		n = recv(c->fd, c->in + c->in_len, room, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	c->in_len += (size_t)n;
	if (c->worker != NULL)
		c->active_ms = c->worker->now_ms;
	return n;
}

/* Answers an error found before the handler ran, and closes after it. */
static int
answer_early(struct http_conn *c, unsigned status, const char *error, const char *reason)
{
	if (!c->has_request)
		request_begin(c);
	/* Answering: the header deadline no longer runs for this connection. */
	atomic_store_explicit(&c->busy, true, memory_order_relaxed);
	c->close_after = true;
	c->linger = true;
	if (httpd_answer_self(&c->req, status, error, reason) < 0)
		return STEP_CLOSE;
	c->state = CS_WRITE;
	return STEP_CONTINUE;
}

static int
answer_too_large(struct http_conn *c)
{
	char reason[64];

	snprintf(reason, sizeof(reason), "the limit is %zu bytes", c->srv->max_body);
	return answer_early(c, 413, "request body too large", reason);
}

static int
head_step(struct http_conn *c)
{
	struct lk_httpd *srv = c->srv;
	enum httpd_parse_result pr;
	const char *reason = "";
	char text[96];
	size_t end;

	if (c->in_len == 0)
		return STEP_NEED_READ;
	end = httpd_head_end(c->in, c->in_len, &c->scanned);
	if (end == 0 && c->in_len <= srv->max_header) {
		if (c->in_len == c->in_cap && in_grow(c) < 0)
			return STEP_CLOSE;
		return STEP_NEED_READ;
	}
	/* Room for the body after the head, before pointers into the buffer exist. */
	if (end != 0 && c->in_cap - end < HTTPD_READ_INITIAL / 2 && c->in_cap < c->in_max)
		(void)in_grow(c);
	pr = httpd_parse_head(c->in, c->in_len, srv->max_header, &c->head, &reason);
	switch (pr) {
	case HTTPD_PARSE_OK:
		break;
	case HTTPD_PARSE_INCOMPLETE:
		return STEP_NEED_READ;
	case HTTPD_PARSE_TOO_LARGE:
		snprintf(text, sizeof(text), "%s; the limit is %zu bytes", reason, srv->max_header);
		return answer_early(c, 431, "request header too large", text);
	case HTTPD_PARSE_URI_TOO_LONG:
		return answer_early(c, 414, "request URI too long", reason);
	case HTTPD_PARSE_NOT_IMPLEMENTED:
		return answer_early(c, 501, "not implemented", reason);
	case HTTPD_PARSE_VERSION:
		return answer_early(c, 505, "HTTP version not supported", reason);
	default:
		return answer_early(c, 400, "bad request", reason);
	}
	request_begin(c);
	c->consumed = c->head.head_len;
	c->close_after = !c->head.keep_alive;
	c->is_head = strcmp(c->head.method, "HEAD") == 0;
	if (c->head.has_length && c->head.content_length > srv->max_body)
		return answer_too_large(c);
	if (c->head.chunked) {
		httpd_chunked_init(&c->chunked);
		c->state = CS_BODY;
	} else if (c->head.has_length && c->head.content_length > 0) {
		c->body_left = c->head.content_length;
		c->state = CS_BODY;
	} else {
		c->state = CS_DISPATCH;
		return STEP_CONTINUE;
	}
	if (c->head.expect_continue && !c->head.http10 && c->in_len == c->consumed)
		(void)!send(c->fd, HTTP_CONTINUE, strlen(HTTP_CONTINUE), MSG_NOSIGNAL | MSG_DONTWAIT);
	return STEP_CONTINUE;
}

static int
body_step(struct http_conn *c)
{
	size_t avail = c->in_len - c->consumed, used;
	int r;

	if (avail == 0)
		return STEP_NEED_READ;
	if (c->head.chunked) {
		r = httpd_chunked_feed(&c->chunked, c->in + c->consumed, avail, &used, &c->body);
		if (r == -E2BIG)
			return answer_too_large(c);
		if (r == -EINVAL)
			return answer_early(c, 400, "bad request", "malformed chunked body");
		if (r < 0)
			return STEP_CLOSE;
		if (r == 1) {
			c->consumed += used;
			c->state = CS_DISPATCH;
			return STEP_CONTINUE;
		}
	} else {
		used = avail < c->body_left ? avail : (size_t)c->body_left;
		if (lk_buf_append(&c->body, c->in + c->consumed, used) < 0)
			return STEP_CLOSE;
		c->body_left -= used;
		if (c->body_left == 0) {
			c->consumed += used;
			c->state = CS_DISPATCH;
			return STEP_CONTINUE;
		}
	}
	/* All of it went into the body: the window after the head is free again. */
	wipe(c->in + c->consumed, avail);
	c->in_len = c->consumed;
	return STEP_NEED_READ;
}

static int
dispatch_step(struct http_conn *c)
{
	/* The whole request (head and body) is in: from here until it ends, the header
	 * deadline does not run, so a long poll or a slow handler is never cut; until here
	 * it does, so a body that dribbles in is bounded like a head. */
	atomic_store_explicit(&c->busy, true, memory_order_relaxed);
	switch (run_handler(c)) {
	case REQ_ANSWERED:
		c->state = CS_WRITE;
		return STEP_CONTINUE;
	case REQ_SUSPEND:
		c->state = CS_SUSPENDED;
		return STEP_PARKED;
	default:
		return STEP_CLOSE;
	}
}

/* The answer's last head lines: whether the connection stays, and the empty line. */
static void
head_finish(struct http_conn *c)
{
	static const char close_line[] = "Connection: close\r\n\r\n";
	static const char keep_line[] = "Connection: keep-alive\r\n\r\n";
	const char *tail = "\r\n";

	/* A server that is stopping closes each connection after its answer. */
	if (atomic_load(&c->srv->stopping))
		c->close_after = true;
	if (c->close_after)
		tail = close_line;
	else if (c->head.http10)
		tail = keep_line;
	/* httpd_respond.c keeps room for the longest tail. */
	memcpy(c->out_head + c->out_head_len, tail, strlen(tail));
	c->out_head_len += strlen(tail);
	c->head_done = true;
}

static int
write_step(struct http_conn *c)
{
	struct iovec iov[2];
	struct msghdr msg = { .msg_iov = iov };
	size_t body_len = c->is_head || c->out_no_body ? 0 : c->out_body_len, total;
	ssize_t n;

	if (!c->head_done)
		head_finish(c);
	total = c->out_head_len + body_len;
	while (c->sent < total) {
		msg.msg_iovlen = 0;
		if (c->sent < c->out_head_len) {
			iov[0].iov_base = c->out_head + c->sent;
			iov[0].iov_len = c->out_head_len - c->sent;
			msg.msg_iovlen = 1;
			if (body_len > 0) {
				iov[1].iov_base = (void *)c->out_body;
				iov[1].iov_len = body_len;
				msg.msg_iovlen = 2;
			}
		} else {
			iov[0].iov_base = (void *)(c->out_body + (c->sent - c->out_head_len));
			iov[0].iov_len = total - c->sent;
			msg.msg_iovlen = 1;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) && !c->blocking)
				return STEP_WRITE;
			return STEP_CLOSE;
		}
		c->sent += (size_t)n;
		if (c->worker != NULL)
			c->active_ms = c->worker->now_ms;
		if (c->sent < total && !c->blocking)
			return STEP_WRITE;
	}
	if (c->close_after) {
		bool linger = c->linger || c->in_len > c->consumed;

		request_end(c);
		if (!linger)
			return STEP_CLOSE;
		shutdown(c->fd, SHUT_WR);
		/* Pipelined bytes left after the answer are never served: wipe them now. */
		wipe(c->in, c->in_len);
		c->in_len = 0;
		c->state = CS_LINGER;
		c->lingered = 0;
		c->linger_until_ms = conn_now(c) + HTTPD_LINGER_MS;
		return STEP_CONTINUE;
	}
	request_end(c);
	return STEP_CONTINUE;
}

/* Reads and throws away what the client still sends after an answer that closes. */
static int
linger_step(struct http_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int64_t left;

	for (;;) {
		if (c->blocking) {
			left = c->linger_until_ms - lk_now_mono_ms();
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				return STEP_CLOSE;
		}
		n = recv(c->fd, c->in, c->in_cap, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return c->blocking ? STEP_CONTINUE : STEP_READ;
		if (n <= 0)
			return STEP_CLOSE;
		wipe(c->in, (size_t)n);
		c->lingered += (size_t)n;
		if (c->lingered > HTTPD_LINGER_MAX)
			return STEP_CLOSE;
	}
}

/* Runs the connection's state machine until it must wait. may_read: a non-blocking
 * connection reads at most once per call, and only when its socket was reported ready
 * (epoll is level-triggered: it says so again when more is there). */
static enum step
conn_advance(struct http_conn *c, bool may_read)
{
	ssize_t n;
	int r;

	for (;;) {
		switch (c->state) {
		case CS_HEAD:
			r = head_step(c);
			break;
		case CS_BODY:
			r = body_step(c);
			break;
		case CS_DISPATCH:
			r = dispatch_step(c);
			break;
		case CS_WRITE:
			r = write_step(c);
			break;
		case CS_LINGER:
			r = linger_step(c);
			break;
		default:
			return STEP_PARKED;
		}
		if (r == STEP_CONTINUE)
			continue;
		if (r != STEP_NEED_READ)
			return (enum step)r;
		if (!c->blocking && !may_read)
			return STEP_READ;
		may_read = false;
		n = conn_fill(c);
		if (n > 0)
			continue;
		if (n == -EAGAIN && !c->blocking)
			return STEP_READ;
		return STEP_CLOSE;
	}
}

/* ---- connections ---- */

int
httpd_conn_new(struct lk_httpd *srv, int fd, const struct sockaddr *sa,
	       const struct ucred *cred, struct http_conn **ret_conn)
{
	struct http_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	if ((c->in = malloc(HTTPD_READ_INITIAL)) == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->srv = srv;
	c->fd = fd;
	c->in_cap = HTTPD_READ_INITIAL;
	c->in_max = srv->max_header + HTTPD_READ_BODY_WINDOW;
	lk_buf_init(&c->body, srv->max_body, true);
	atomic_init(&c->busy, false);
	atomic_init(&c->ready_ms, lk_now_mono_ms());
	c->req.srv = srv;
	c->req.conn = c;
	if (cred != NULL) {
		c->peer.known = true;
		c->peer.pid = cred->pid;
		c->peer.uid = cred->uid;
		c->peer.gid = cred->gid;
	}
	if (srv->is_unix)
		strcpy(c->remote, "unix");
	else if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
			  c->remote, sizeof(c->remote));
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  c->remote, sizeof(c->remote));
	else
		strcpy(c->remote, "unknown");
	*ret_conn = c;
	return 0;
}

void
httpd_conn_free(struct http_conn *c)
{
	wipe(c->in, c->in_len);
	free(c->in);
	lk_buf_free(&c->body);
	httpd_answer_clear(c);
	free(c->out_copy);
	free(c->out_head);
	free(c->extra);
	free(c);
}

/* Ends a worker's connection: request, admission slot, descriptor, memory. */
static void
worker_conn_close(struct httpd_worker *w, struct http_conn *c)
{
	request_end(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	httpd_conn_closed(c->srv, c->fd);
	close(c->fd);
	httpd_conn_free(c);
}

/* Makes the worker's epoll set watch what c waits for (0: nothing, out of the set). */
static int
conn_watch(struct httpd_worker *w, struct http_conn *c, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	int op;

	if (events == c->ep_events)
		return 0;
	op = c->ep_events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
	if (epoll_ctl(w->epfd, op, c->fd, &ev) < 0)
		return -errno;
	c->ep_events = events;
	return 0;
}

static void
conn_apply(struct httpd_worker *w, struct http_conn *c, enum step step)
{
	int r = 0;

	switch (step) {
	case STEP_READ:
		r = conn_watch(w, c, EPOLLIN);
		break;
	case STEP_WRITE:
		r = conn_watch(w, c, EPOLLOUT);
		break;
	case STEP_PARKED:
		r = conn_watch(w, c, 0);
		break;
	default:
		r = -1;
		break;
	}
	if (r < 0)
		worker_conn_close(w, c);
}

/* New connections from the acceptor, and requests resumed from any thread. */
static void
worker_wake(struct httpd_worker *w, bool *ret_stop)
{
	struct lk_httpd *srv = w->srv;
	struct http_conn *in, *c;
	struct lk_http_req *req, *next;
	uint64_t v;

	(void)!read(w->wake_fd, &v, sizeof(v));
	pthread_mutex_lock(&w->lock);
	in = w->incoming;
	w->incoming = NULL;
	*ret_stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	while ((c = in) != NULL) {
		in = c->next;
		c->prev = NULL;
		c->next = w->conns;
		if (w->conns != NULL)
			w->conns->prev = c;
		w->conns = c;
		c->active_ms = w->now_ms;
		conn_apply(w, c, STEP_READ);
	}
	pthread_mutex_lock(&srv->lock);
	req = w->resumed;
	w->resumed = NULL;
	pthread_mutex_unlock(&srv->lock);
	for (; req != NULL; req = next) {
		next = req->next;
		req->next = req->prev = NULL;
		c = req->conn;
		c->state = CS_DISPATCH;
		conn_apply(w, c, conn_advance(c, false));
	}
}

/* Closes the connections idle past timeout_s, and those whose linger ended. */
static void
worker_scan_idle(struct httpd_worker *w)
{
	struct http_conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CS_LINGER ? w->now_ms >= c->linger_until_ms :
		    (c->state == CS_HEAD || c->state == CS_BODY || c->state == CS_WRITE) &&
		    w->now_ms - c->active_ms >= w->srv->idle_ms)
			worker_conn_close(w, c);
	}
}

/* Polling before sleeping (docs/internals/httpd.md). A worker that goes to sleep in
 * epoll_wait may leave its CPU idle, and a request that then arrives pays for waking the
 * CPU as well as the thread; where waking an idle CPU is dear (a virtual machine without
 * guest halt-polling: tens of microseconds) a closed-loop client's throughput is set by
 * it. So after serving, the worker polls its set for a span before sleeping. The span
 * adapts as cpuidle's haltpoll governor does: a request that came within poll_us of the
 * poll's start, but after the span, doubles it; one that came later, or none, halves it,
 * down to nothing, so a worker whose requests are far apart soon does not poll at all.
 * Between polls the worker yields: a yield that ran another task shows that this CPU is
 * not going idle (the client may be on it, and polling would only take its time), and
 * the worker then sleeps at once after each of its next HTTPD_POLL_SKIP batches. A yield
 * that returns within HTTPD_POLL_YIELD_RAN_NS ran nothing worth counting; a longer one
 * may have been an interrupt or the hypervisor, so the thread's context switches say
 * whether another task ran. */
#define HTTPD_POLL_YIELD_RAN_NS 2000
#define HTTPD_POLL_SKIP 64

/* The context switches of the calling thread so far. */
static long
thread_switches(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) < 0)
		return -1;
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

enum poll_result {
	POLL_NONE,     /* not polled and nothing to learn: sleep */
	POLL_MISSED,   /* polled the span (perhaps 0) for nothing: sleep, then adapt */
};

/* Returns the events found (> 0), an epoll_wait error (< 0), or a poll_result. */
static int
worker_poll(struct httpd_worker *w, struct epoll_event *ev, enum poll_result *ret)
{
	int64_t start, t, after;
	long switches = -1;
	int n = 0;

	*ret = POLL_NONE;
	if (w->poll_max_ns == 0)
		return 0;
	if (w->poll_skip > 0) {
		w->poll_skip--;
		return 0;
	}
	*ret = POLL_MISSED;
	if (w->poll_span_ns == 0)
		return 0;
	start = t = lk_now_mono_ns();
	for (;;) {
		if ((n = epoll_wait(w->epfd, ev, HTTPD_EVENTS_MAX, 0)) != 0)
			break;
		if (t - start >= w->poll_span_ns)
			break;
		if (switches < 0)
			switches = thread_switches();
		sched_yield();
		after = lk_now_mono_ns();
		if (after - t >= HTTPD_POLL_YIELD_RAN_NS) {
			long now_switches = thread_switches();

			if (now_switches != switches) {
				w->poll_skip = HTTPD_POLL_SKIP;
				*ret = POLL_NONE;
				break;
			}
		}
		t = after;
	}
	atomic_fetch_add_explicit(&w->poll_ns, (unsigned long long)(t - start),
				  memory_order_relaxed);
	if (n > 0)
		atomic_fetch_add_explicit(&w->poll_hits, 1, memory_order_relaxed);
	return n;
}

int64_t
httpd_poll_span_next(int64_t span_ns, int64_t max_ns, int64_t slept_ns)
{
	int64_t floor_ns = max_ns / 4;

	if (span_ns + slept_ns < max_ns) {
		span_ns = span_ns == 0 ? floor_ns : span_ns * 2;
		return span_ns > max_ns ? max_ns : span_ns;
	}
	return span_ns / 2 < floor_ns ? 0 : span_ns / 2;
}

static void *
worker_run(void *arg)
{
	struct httpd_worker *w = arg;
	struct epoll_event ev[HTTPD_EVENTS_MAX];
	int64_t next_scan = lk_now_mono_ms() + HTTPD_IDLE_SCAN_MS;
	enum poll_result polled = POLL_NONE;
	bool stop = false, served = false;
	int n;

	while (!stop) {
		n = served ? worker_poll(w, ev, &polled) : 0;
		if (n == 0) {
			int64_t slept = polled == POLL_MISSED ? lk_now_mono_ns() : 0;

			n = epoll_wait(w->epfd, ev, HTTPD_EVENTS_MAX, HTTPD_IDLE_SCAN_MS);
			if (polled == POLL_MISSED)
				w->poll_span_ns = httpd_poll_span_next(w->poll_span_ns, w->poll_max_ns,
								       lk_now_mono_ns() - slept);
			polled = POLL_NONE;
		}
		served = n > 0;
		w->now_ms = lk_now_mono_ms();
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct http_conn *c = ev[i].data.ptr;

			if (c == NULL)
				worker_wake(w, &stop);
			else
				conn_apply(w, c, conn_advance(c, true));
		}
		if (w->now_ms >= next_scan) {
			worker_scan_idle(w);
			next_scan = w->now_ms + HTTPD_IDLE_SCAN_MS;
		}
	}
	return NULL;
}

/* A connection's own thread: a blocking loop. */
static void *
tpc_run(void *arg)
{
	struct http_conn *c = arg;
	struct lk_httpd *srv = c->srv;

	while (conn_advance(c, true) != STEP_CLOSE)
		;
	request_end(c);
	httpd_conn_closed(srv, c->fd);
	pthread_mutex_lock(&srv->tpc_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->tpc_conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	/* Under the lock: stop shuts down the descriptors of the listed connections. */
	close(c->fd);
	c->fd = -1;
	c->prev = NULL;
	c->next = srv->tpc_done;
	srv->tpc_done = c;
	if (--srv->tpc_live == 0)
		pthread_cond_broadcast(&srv->tpc_gone);
	pthread_mutex_unlock(&srv->tpc_lock);
	return NULL;
}

void
httpd_tpc_reap(struct lk_httpd *srv)
{
	struct http_conn *done, *c;

	pthread_mutex_lock(&srv->tpc_lock);
	done = srv->tpc_done;
	srv->tpc_done = NULL;
	pthread_mutex_unlock(&srv->tpc_lock);
	while ((c = done) != NULL) {
		done = c->next;
		pthread_join(c->thread, NULL);
		httpd_conn_free(c);
	}
}

int
httpd_conn_hand(struct lk_httpd *srv, struct http_conn *c)
{
	struct httpd_worker *w;
	struct timeval tv;
	int r, flags;

	if (!srv->thread_per_conn) {
		w = &srv->workers[srv->next_worker++ % srv->nworkers];
		c->worker = w;
		pthread_mutex_lock(&w->lock);
		c->next = w->incoming;
		w->incoming = c;
		pthread_mutex_unlock(&w->lock);
		signal_fd(w->wake_fd);
		return 0;
	}
	/* Blocking, with the idle timeout as the socket's own: set once per connection. */
	c->blocking = true;
	if ((flags = fcntl(c->fd, F_GETFL)) >= 0)
		(void)fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
	tv.tv_sec = (time_t)(srv->idle_ms / 1000);
	tv.tv_usec = 0;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&srv->tpc_lock);
	c->prev = NULL;
	c->next = srv->tpc_conns;
	if (srv->tpc_conns != NULL)
		srv->tpc_conns->prev = c;
	srv->tpc_conns = c;
	srv->tpc_live++;
	r = pthread_create(&c->thread, NULL, tpc_run, c);
	if (r != 0) {
		srv->tpc_conns = c->next;
		if (c->next != NULL)
			c->next->prev = NULL;
		srv->tpc_live--;
	}
	pthread_mutex_unlock(&srv->tpc_lock);
	if (r != 0) {
		httpd_conn_closed(srv, c->fd);
		close(c->fd);
		httpd_conn_free(c);
		return -r;
	}
	return 0;
}

/* ---- the server ---- */

static void
workers_free(struct lk_httpd *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct httpd_worker *w = &srv->workers[i];

		if (w->epfd >= 0)
			close(w->epfd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		pthread_mutex_destroy(&w->lock);
	}
	free(srv->workers);
	srv->workers = NULL;
	srv->nworkers = 0;
}

/* Stops and joins the workers, then closes every connection they held. */
static void
workers_stop(struct lk_httpd *srv)
{
	struct http_conn *c;

	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct httpd_worker *w = &srv->workers[i];

		if (!w->started)
			continue;
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_mutex_unlock(&w->lock);
		signal_fd(w->wake_fd);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct httpd_worker *w = &srv->workers[i];

		while ((c = w->incoming) != NULL) {
			w->incoming = c->next;
			c->next = c->prev = NULL;
			httpd_conn_closed(srv, c->fd);
			close(c->fd);
			httpd_conn_free(c);
		}
		while (w->conns != NULL)
			worker_conn_close(w, w->conns);
	}
}

static int
workers_start(struct lk_httpd *srv, unsigned n, unsigned poll_us, const char *where,
	      struct lk_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int r;

	if ((srv->workers = calloc(n, sizeof(*srv->workers))) == NULL)
		return lk_error_set(err, -ENOMEM, "%s: out of memory", where);
	for (unsigned i = 0; i < n; i++) {
		struct httpd_worker *w = &srv->workers[i];

		w->srv = srv;
		w->epfd = w->wake_fd = -1;
		if (pthread_mutex_init(&w->lock, NULL) != 0)
			return lk_error_set(err, -ENOMEM, "%s: mutex", where);
		srv->nworkers = i + 1;
		if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    (w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0)
			return lk_error_set(err, -errno, "%s: epoll: %s", where, strerror(errno));
		w->now_ms = lk_now_mono_ms();
		w->poll_max_ns = (int64_t)poll_us * 1000;
		w->poll_span_ns = w->poll_max_ns / 4;
		atomic_init(&w->poll_hits, 0);
		atomic_init(&w->poll_ns, 0);
	}
	for (unsigned i = 0; i < n; i++) {
		struct httpd_worker *w = &srv->workers[i];

		if ((r = pthread_create(&w->thread, NULL, worker_run, w)) != 0)
			return lk_error_set(err, -r, "%s: worker thread: %s", where, strerror(r));
		w->started = true;
	}
	return 0;
}

static void
srv_free(struct lk_httpd *srv)
{
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	if (srv->quiesce_fd >= 0)
		close(srv->quiesce_fd);
	workers_free(srv);
	httpd_admission_free(srv);
	pthread_mutex_destroy(&srv->conns_lock);
	pthread_mutex_destroy(&srv->tpc_lock);
	pthread_cond_destroy(&srv->tpc_gone);
	pthread_cond_destroy(&srv->resumed);
	pthread_cond_destroy(&srv->drained);
	pthread_cond_destroy(&srv->listen_closed);
	pthread_mutex_destroy(&srv->lock);
	free(srv->unix_path);
	free(srv);
}

int
lk_httpd_start(const struct lk_httpd_config *cfg, struct lk_httpd **ret,
	       struct lk_error *err)
{
	struct lk_httpd *srv = NULL, *saved;
	const char *where;
	int r;

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
	srv->quiesce_fd = -1;
	if (pthread_mutex_init(&srv->lock, NULL) != 0 ||
	    pthread_cond_init(&srv->drained, NULL) != 0 ||
	    pthread_cond_init(&srv->listen_closed, NULL) != 0 ||
	    pthread_cond_init(&srv->resumed, NULL) != 0 ||
	    pthread_cond_init(&srv->tpc_gone, NULL) != 0 ||
	    pthread_mutex_init(&srv->tpc_lock, NULL) != 0 ||
	    pthread_mutex_init(&srv->conns_lock, NULL) != 0) {
		/* glibc's initialisers of default attributes do not fail. */
		free(srv);
		return lk_error_set(err, -ENOMEM, "%s: mutex", where);
	}
	atomic_init(&srv->stopping, false);
	srv->handler = cfg->handler;
	srv->ctx = cfg->ctx;
	srv->max_body = cfg->max_body ? cfg->max_body : LK_HTTPD_MAX_BODY_DEFAULT;
	srv->max_header = cfg->max_header ? cfg->max_header : LK_HTTPD_MAX_HEADER_DEFAULT;
	srv->error_body = cfg->error_body;
	srv->idle_ms = (int64_t)(cfg->timeout_s ? cfg->timeout_s : LK_HTTPD_TIMEOUT_DEFAULT) * 1000;
	if (srv->max_body >= SIZE_MAX / 2 || srv->max_header >= SIZE_MAX / 4) {
		r = lk_error_set(err, -EINVAL, "%s: limits out of range", where);
		goto out;
	}
	if (cfg->poll_us > LK_HTTPD_POLL_US_MAX) {
		r = lk_error_set(err, -EINVAL, "%s: poll_us %u: expected at most %u", where,
				 cfg->poll_us, LK_HTTPD_POLL_US_MAX);
		goto out;
	}
	srv->is_unix = cfg->unix_path != NULL;
	if (httpd_admission_init(srv, cfg) < 0) {
		r = lk_error_set(err, -ENOMEM, "%s: out of memory", where);
		goto out;
	}
	if ((srv->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    (srv->quiesce_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		r = lk_error_set(err, -errno, "%s: eventfd: %s", where, strerror(errno));
		goto out;
	}

	if (cfg->unix_path != NULL) {
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

	srv->thread_per_conn = cfg->threads == 0;
	if (!srv->thread_per_conn && (r = workers_start(srv, cfg->threads, cfg->poll_us, where, err)) < 0)
		goto out;
	/* *ret is set before the first connection can be accepted: a handler may read it
	 * (the broker's metrics do), and the thread's creation orders the two. */
	saved = *ret;
	*ret = srv;
	if ((r = pthread_create(&srv->acceptor, NULL, httpd_acceptor_run, srv)) != 0) {
		*ret = saved;
		r = lk_error_set(err, -r, "%s: acceptor thread: %s", where, strerror(r));
		goto out;
	}
	srv->acceptor_running = true;
	srv = NULL;
	r = 0;
out:
	if (srv != NULL) {
		workers_stop(srv);
		if (srv->unix_path != NULL)
			httpd_unix_remove(srv);
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
		httpd_acceptor_quiesce(srv);
	}
	pthread_mutex_unlock(&srv->lock);
}

void
lk_httpd_stop(struct lk_httpd *srv)
{
	struct lk_http_req *req;
	struct http_conn *c;
	struct timespec deadline;

	if (srv == NULL)
		return;
	lk_httpd_quiesce(srv);

	pthread_mutex_lock(&srv->lock);
	atomic_store(&srv->stopping, true);
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
	/* The header deadlines ran through the drain; from here every connection that is not
	 * answering is shut down anyway. */
	httpd_acceptor_stop(srv);

	/* Every connection closes; a handler in progress finishes first and its answer is
	 * still written (only the reading side of a busy connection is shut), then its
	 * thread reads the end of the stream. */
	pthread_mutex_lock(&srv->tpc_lock);
	for (c = srv->tpc_conns; c != NULL; c = c->next)
		shutdown(c->fd, atomic_load_explicit(&c->busy, memory_order_acquire) ? SHUT_RD :
			 SHUT_RDWR);
	/* An answer a client does not read could block its thread for ever: after the drain
	 * time every connection is shut both ways. */
	deadline = lk_timespec_in_ms(CLOCK_REALTIME, HTTPD_STOP_DRAIN_MS);
	while (srv->tpc_live > 0) {
		if (pthread_cond_timedwait(&srv->tpc_gone, &srv->tpc_lock, &deadline) == ETIMEDOUT) {
			for (c = srv->tpc_conns; c != NULL; c = c->next)
				shutdown(c->fd, SHUT_RDWR);
			while (srv->tpc_live > 0)
				pthread_cond_wait(&srv->tpc_gone, &srv->tpc_lock);
		}
	}
	pthread_mutex_unlock(&srv->tpc_lock);
	httpd_tpc_reap(srv);
	workers_stop(srv);
	httpd_unix_remove(srv);
	srv_free(srv);
}

/* ---- request accessors ---- */

const char *
lk_http_method(const struct lk_http_req *req)
{
	return req->conn->head.method;
}

const char *
lk_http_path(const struct lk_http_req *req)
{
	return req->conn->head.path;
}

const char *
lk_http_query(const struct lk_http_req *req, const char *key)
{
	return httpd_head_query(&req->conn->head, key);
}

const char *
lk_http_header(const struct lk_http_req *req, const char *name)
{
	return httpd_head_field(&req->conn->head, name);
}

const char *
lk_http_body(const struct lk_http_req *req, size_t *ret_len)
{
	const struct http_conn *c = req->conn;

	if (ret_len != NULL)
		*ret_len = c->body.len;
	return c->body.data != NULL ? c->body.data : "";
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
