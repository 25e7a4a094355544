/* loadgen.c — an HTTP/1.1 keep-alive load generator for Unix sockets and TCP, and a
 * start-to-ready timer.
 *
 *   loadgen [run] (--unix PATH | --tcp HOST:PORT) [--path P] [-c CONNS] [-d SECS] [-w SECS]
 *           [-n MAX_REQUESTS] [--timeout-ms MS] [--expect-file FILE] [--label NAME] [--cpu N]
 *           [--shape epoll|threads] [--rate REQ_PER_S]
 *   loadgen ready (--unix PATH | --tcp HOST:PORT) [--path P] [--timeout-ms MS] [--log FILE]
 *           -- COMMAND [ARGS...]
 *
 * run: one thread drives every connection from one epoll loop (--shape epoll, the
 * default), or (--shape threads) each connection has a thread of its own making blocking
 * calls, the other way applications are written. On a small machine the
 * server under test shares the cores with the client, and one client thread takes at most
 * one core and adds no lock or scheduler traffic of its own, where a thread per connection
 * would compete with the server's threads for both cores. Each connection sends the same
 * GET, waits for the whole response (no pipelining), checks it and sends the next. The run
 * ends by itself when the measured duration has passed or the request count is reached,
 * whichever comes first. Requests sent during the warm-up are not measured.
 *
 * --rate (with --shape threads) paces the load instead: each connection sends its
 * requests on a fixed schedule, rate/conns a second, and waits for the next slot after
 * each answer; one that falls behind sends at once and keeps the schedule. This is the
 * steady, open load of a deployment, for measuring what a server spends at a given rate
 * (latencies are from each request's write, not from its slot).
 *
 * A response counts as good when its status is 200, it has a Content-Length and the whole
 * body arrived (and equals the expected bytes when --expect-file is given). Anything else
 * is an error of one kind: connect, closed (the peer closed the connection or announced
 * Connection: close), status, protocol, body, timeout. After an error that leaves the
 * connection unusable the connection is opened again.
 *
 * Latencies go to a log-linear histogram (128 sub-buckets per power of two, under 0.8 %
 * relative error), from the request's write to the last byte of its response.
 *
 * Output: one JSON line (flat, for scripts) then one line for people, both on stdout.
 * Exit status: 0 when the run had no error, 1 when it had errors or could not run, 2 on
 * usage errors.
 *
 * ready: starts COMMAND, polls PATH (default /v1/ready) as fast as the server answers
 * until it returns 200, prints the time from the fork to that answer, then stops the
 * command with SIGTERM and prints how long it took to exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Most connections one run opens. */
#define LG_MAX_CONNS 1024
/* Longest request path accepted. */
#define LG_MAX_PATH 1024
/* Largest response header block (status line and headers) accepted. */
#define LG_MAX_HEADER (16u << 10)
/* Largest response body accepted, and largest --expect-file. */
#define LG_MAX_BODY (1u << 20)
/* First size of a connection's receive buffer; it grows up to header + body maxima. */
#define LG_RBUF_INITIAL 4096
/* Longest measured duration and warm-up, seconds. */
#define LG_MAX_SECONDS 3600
/* Errors after which a run gives up (a server that refuses everything). */
#define LG_MAX_ERRORS 1000
/* Events taken per epoll_wait call. */
#define LG_EVENTS 64
/* Pause before opening a connection again after a failed connect, ms. */
#define LG_RECONNECT_PAUSE_MS 10
/* How long a stopped command may take to exit after SIGTERM before SIGKILL, ms. */
#define LG_STOP_GRACE_MS 10000
/* Pause between two readiness polls, µs: short against the 100 ms being measured. */
#define LG_READY_POLL_US 200

/* ---- histogram ---- */

#define HIST_SUB_BITS 7                 /* 128 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40                 /* values clamp below 2^40 ns, about 18 minutes */
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	long double sum;
	uint64_t bucket[HIST_BUCKETS];
};

static size_t
hist_index(uint64_t v)
{
	unsigned msb;

	if (v >= (1ull << HIST_MAX_EXP))
		v = (1ull << HIST_MAX_EXP) - 1;
	if (v < HIST_SUB)
		return (size_t)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return HIST_SUB + (size_t)(msb - HIST_SUB_BITS) * HIST_SUB +
	    (size_t)((v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The highest value that lands in bucket i. */
static uint64_t
hist_bucket_high(size_t i)
{
	unsigned msb;
	uint64_t sub, low;

	if (i < HIST_SUB)
		return i;
	msb = (unsigned)((i - HIST_SUB) / HIST_SUB) + HIST_SUB_BITS;
	sub = (i - HIST_SUB) % HIST_SUB;
	low = (1ull << msb) | (sub << (msb - HIST_SUB_BITS));
	return low + (1ull << (msb - HIST_SUB_BITS)) - 1;
}

static void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static void
hist_record(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* The value at percentile p (0 < p <= 100): the highest value of the bucket holding the
 * ceil(p% of count)-th sample, never above the exact maximum. */
static uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);

			/* The last bucket also holds the clamped values above it. */
			return v < h->max && i != HIST_BUCKETS - 1 ? v : h->max;
		}
	}
	return h->max;
}

/* ---- time ---- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- target and HTTP response parsing ---- */

struct target {
	bool is_unix;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[LG_MAX_PATH + 8];     /* "unix:PATH" or "tcp:HOST:PORT", for output */
};

static int
target_parse_unix(struct target *t, const char *path)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&t->addr;

	if (strlen(path) >= sizeof(sun->sun_path)) {
		fprintf(stderr, "loadgen: --unix: path longer than %zu bytes\n",
		    sizeof(sun->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memset(t, 0, sizeof(*t));
	t->is_unix = true;
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	t->addrlen = (socklen_t)sizeof(*sun);
	snprintf(t->name, sizeof(t->name), "unix:%s", path);
	return 0;
}

static int
target_parse_tcp(struct target *t, const char *hostport)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *res = NULL;
	size_t hostlen;
	int rc;

	colon = strrchr(hostport, ':');
	if (colon == NULL || colon[1] == '\0') {
		fprintf(stderr, "loadgen: --tcp: expected HOST:PORT\n");
		return -EINVAL;
	}
	port = colon + 1;
	hostlen = (size_t)(colon - hostport);
	if (hostlen >= 2 && hostport[0] == '[' && hostport[hostlen - 1] == ']') {
		hostport++;
		hostlen -= 2;
	}
	if (hostlen == 0 || hostlen >= sizeof(host)) {
		fprintf(stderr, "loadgen: --tcp: bad host\n");
		return -EINVAL;
	}
	memcpy(host, hostport, hostlen);
	host[hostlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "loadgen: --tcp: %s\n", gai_strerror(rc));
		return -EINVAL;
	}
	memset(t, 0, sizeof(*t));
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	snprintf(t->name, sizeof(t->name), "tcp:%s:%s", host, port);
	freeaddrinfo(res);
	return 0;
}

/* A connected, blocking socket to t, or -errno. */
static int
target_connect(const struct target *t)
{
	int fd, one = 1;

	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) == -1) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!t->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

enum parse_result {
	PARSE_MORE = 0,     /* the response is not complete yet */
	PARSE_DONE,         /* a complete response; fields filled */
	PARSE_BAD,          /* malformed, unsupported or over a limit */
};

struct response {
	int status;
	size_t header_len;      /* bytes up to and including the blank line */
	size_t body_len;
	bool close;             /* the server announced Connection: close */
};

/* Case-insensitive header-name match at the start of line (line_len bytes). */
static bool
header_is(const char *line, size_t line_len, const char *name)
{
	size_t n = strlen(name);

	return line_len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* The header value after "Name:", trimmed; *ret_len is its length. */
static const char *
header_value(const char *line, size_t line_len, size_t name_len, size_t *ret_len)
{
	const char *v = line + name_len + 1, *end = line + line_len;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*ret_len = (size_t)(end - v);
	return v;
}

/* Parses the response at buf[0..len). Requires a Content-Length; chunked bodies are not
 * supported (the servers measured here never send them for a static answer). Bytes past
 * the end of the response are a protocol error, since requests are not pipelined. */
static enum parse_result
parse_response(const char *buf, size_t len, struct response *r)
{
	const char *p, *end, *hdr_end = NULL;
	bool have_length = false;
	unsigned long long clen = 0;

	for (size_t i = 3; i < len && i < LG_MAX_HEADER; i++) {
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
			hdr_end = buf + i + 1;
			break;
		}
	}
	if (hdr_end == NULL)
		return len >= LG_MAX_HEADER ? PARSE_BAD : PARSE_MORE;

	memset(r, 0, sizeof(*r));
	r->header_len = (size_t)(hdr_end - buf);
	/* Status line: HTTP/1.x SSS */
	if (r->header_len < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return PARSE_BAD;
	if (buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r'))
		return PARSE_BAD;
	r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (buf[7] == '0')
		r->close = true;        /* HTTP/1.0 closes unless told otherwise */

	p = (const char *)memchr(buf, '\n', r->header_len) + 1;
	end = hdr_end - 2;              /* the blank line */
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t line_len, vlen;
		const char *v;

		if (eol == NULL || eol == p || eol[-1] != '\r')
			return PARSE_BAD;
		line_len = (size_t)(eol - 1 - p);
		if (header_is(p, line_len, "Content-Length")) {
			char num[24];
			char *nend;

			v = header_value(p, line_len, strlen("Content-Length"), &vlen);
			if (vlen == 0 || vlen >= sizeof(num) || have_length)
				return PARSE_BAD;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			if (num[0] < '0' || num[0] > '9')
				return PARSE_BAD;
			errno = 0;
			clen = strtoull(num, &nend, 10);
			if (errno != 0 || *nend != '\0' || clen > LG_MAX_BODY)
				return PARSE_BAD;
			have_length = true;
		} else if (header_is(p, line_len, "Transfer-Encoding")) {
			return PARSE_BAD;
		} else if (header_is(p, line_len, "Connection")) {
			v = header_value(p, line_len, strlen("Connection"), &vlen);
			if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
				r->close = true;
			else if (vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0)
				r->close = false;
		}
		p = eol + 1;
	}
	if (!have_length)
		return PARSE_BAD;
	r->body_len = (size_t)clen;
	if (len < r->header_len + r->body_len)
		return PARSE_MORE;
	if (len > r->header_len + r->body_len)
		return PARSE_BAD;
	return PARSE_DONE;
}

/* ---- the run ---- */

enum err_kind { ERR_CONNECT, ERR_CLOSED, ERR_STATUS, ERR_PROTOCOL, ERR_BODY, ERR_TIMEOUT, ERR_KINDS };

static const char *const err_names[ERR_KINDS] = {
	"connect", "closed", "status", "protocol", "body", "timeout",
};

struct conn {
	int fd;                 /* -1 when closed */
	bool busy;              /* a request is in flight */
	size_t woff;            /* bytes of the request written */
	char *rbuf;
	size_t rlen, rcap;
	uint64_t t_sent;        /* when the request's first byte was written */
	uint64_t retry_at;      /* when to connect again after a failed connect */
};

struct run_opts {
	struct target target;
	const char *path;
	const char *label;
	const char *expect_file;
	unsigned conns;
	double warmup_s;
	double duration_s;
	uint64_t max_requests;
	unsigned timeout_ms;
	int cpu;
	bool threads;           /* --shape threads: a blocking thread per connection */
	double rate;            /* --rate: requests per second in all; 0: as fast as answered */
};

struct run {
	const struct run_opts *o;
	int ep;
	struct conn *conns;
	char *req;
	size_t req_len;
	char *expect;           /* expected body, or NULL */
	size_t expect_len;

	uint64_t t_begin;       /* first connect */
	uint64_t t_measure;     /* end of the warm-up */
	uint64_t t_end;         /* end of the measured duration */
	uint64_t t_last;        /* last measured completion */
	bool stopping;          /* no new requests */
	uint64_t issued;        /* requests sent since t_measure */
	uint64_t completed;     /* measured requests answered or failed */
	uint64_t ok;
	uint64_t warmup_ok;
	uint64_t errors;
	uint64_t err[ERR_KINDS];
	bool aborted;
	double client_cpu;      /* this process's CPU time over the run's wall time, percent */
	struct hist hist;
};

static void
conn_close(struct run *r, struct conn *c)
{
	if (c->fd != -1) {
		epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->busy = false;
	c->rlen = 0;
	c->woff = 0;
}

/* Counts an error of a request sent at t_sent (warm-up errors count too: a server that
 * fails during warm-up is failing). */
static void
count_error(struct run *r, enum err_kind k, uint64_t t_sent)
{
	r->err[k]++;
	r->errors++;
	if (t_sent >= r->t_measure && t_sent != 0)
		r->completed++;
	if (r->errors >= LG_MAX_ERRORS) {
		r->aborted = true;
		r->stopping = true;
	}
}

static int
conn_open(struct run *r, struct conn *c, uint64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	int fd;

	fd = target_connect(&r->o->target);
	if (fd < 0) {
		count_error(r, ERR_CONNECT, 0);
		c->retry_at = now + LG_RECONNECT_PAUSE_MS * 1000000ull;
		return fd;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
	    epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		int e = errno;
		close(fd);
		return -e;
	}
	c->fd = fd;
	c->retry_at = 0;
	return 0;
}

/* Writes what is left of the request; asks for EPOLLOUT when the socket is full. */
static void
conn_flush(struct run *r, struct conn *c)
{
	while (c->woff < r->req_len) {
		ssize_t n = send(c->fd, r->req + c->woff, r->req_len - c->woff, MSG_NOSIGNAL);

		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
			epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
			return;
		}
		count_error(r, ERR_CLOSED, c->t_sent);
		conn_close(r, c);
		return;
	}
}

/* Starts the next request on c, unless the run is stopping. */
static void
conn_send(struct run *r, struct conn *c, uint64_t now)
{
	if (r->stopping)
		return;
	if (now >= r->t_measure) {
		if (now >= r->t_end || r->issued >= r->o->max_requests) {
			r->stopping = true;
			return;
		}
		r->issued++;
	}
	if (c->fd == -1 && conn_open(r, c, now) != 0)
		return;
	c->busy = true;
	c->woff = 0;
	c->rlen = 0;
	c->t_sent = now;
	conn_flush(r, c);
}

static void
response_done(struct run *r, struct conn *c, const struct response *resp, uint64_t now)
{
	bool measured = c->t_sent >= r->t_measure;
	const char *body = c->rbuf + resp->header_len;

	c->busy = false;
	if (resp->status != 200) {
		count_error(r, ERR_STATUS, c->t_sent);
	} else if (r->expect != NULL && (resp->body_len != r->expect_len ||
	    memcmp(body, r->expect, r->expect_len) != 0)) {
		count_error(r, ERR_BODY, c->t_sent);
	} else if (resp->close) {
		/* Keep-alive is part of what is measured: a server that drops it fails. */
		count_error(r, ERR_CLOSED, c->t_sent);
	} else if (measured) {
		hist_record(&r->hist, now - c->t_sent);
		r->ok++;
		r->completed++;
		r->t_last = now;
	} else {
		r->warmup_ok++;
	}
	if (measured)
		r->t_last = now;
	c->rlen = 0;
	if (resp->close)
		conn_close(r, c);
}

static void
conn_readable(struct run *r, struct conn *c)
{
	for (;;) {
		struct response resp;
		enum parse_result pr;
		ssize_t n;
		uint64_t now;

		if (c->rcap - c->rlen < 1024 && c->rcap < LG_MAX_HEADER + LG_MAX_BODY + 1) {
			size_t ncap = c->rcap * 2;
			char *nb;

			if (ncap > LG_MAX_HEADER + LG_MAX_BODY + 1)
				ncap = LG_MAX_HEADER + LG_MAX_BODY + 1;
			nb = realloc(c->rbuf, ncap);
			if (nb == NULL) {
				count_error(r, ERR_PROTOCOL, c->t_sent);
				conn_close(r, c);
				return;
			}
			c->rbuf = nb;
			c->rcap = ncap;
		}
		if (c->rlen == c->rcap) {
			count_error(r, ERR_PROTOCOL, c->t_sent);
			conn_close(r, c);
			return;
		}
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || !c->busy) {
			/* Closed or reset, or bytes nobody asked for. */
			if (c->busy || n > 0)
				count_error(r, n > 0 ? ERR_PROTOCOL : ERR_CLOSED, c->t_sent);
			conn_close(r, c);
			return;
		}
		c->rlen += (size_t)n;
		pr = parse_response(c->rbuf, c->rlen, &resp);
		if (pr == PARSE_MORE)
			continue;
		if (pr == PARSE_BAD) {
			count_error(r, ERR_PROTOCOL, c->t_sent);
			conn_close(r, c);
			return;
		}
		now = now_ns();
		response_done(r, c, &resp, now);
		conn_send(r, c, now);
		return;
	}
}

static int
read_expect(struct run *r, const char *path)
{
	struct stat st;
	int fd, rc = -1;
	size_t off = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > LG_MAX_BODY) {
		fprintf(stderr, "loadgen: %s: larger than %u bytes\n", path, LG_MAX_BODY);
		goto out;
	}
	r->expect_len = (size_t)st.st_size;
	r->expect = malloc(r->expect_len + 1);
	if (r->expect == NULL)
		goto out;
	while (off < r->expect_len) {
		ssize_t n = read(fd, r->expect + off, r->expect_len - off);
		if (n <= 0) {
			fprintf(stderr, "loadgen: %s: short read\n", path);
			goto out;
		}
		off += (size_t)n;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

static double
us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void
print_report(const struct run *r, uint64_t elapsed_ns)
{
	const struct run_opts *o = r->o;
	const struct hist *h = &r->hist;
	double secs = (double)elapsed_ns / 1e9;
	double rps = secs > 0 ? (double)r->ok / secs : 0;
	double mean = h->count ? (double)(h->sum / (long double)h->count) : 0;

	/* The label and path come from the command line; keep the JSON valid whatever they hold. */
	printf("{\"label\":\"");
	for (const char *s = o->label; *s; s++)
		if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
			putchar(*s);
	printf("\",\"shape\":\"%s\",\"connections\":%u,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
	    "\"requests\":%llu,\"ok\":%llu,\"warmup_ok\":%llu,\"errors\":%llu",
	    o->threads ? "threads" : "epoll", o->conns, o->warmup_s, secs, (unsigned long long)r->completed,
	    (unsigned long long)r->ok, (unsigned long long)r->warmup_ok,
	    (unsigned long long)r->errors);
	for (int k = 0; k < ERR_KINDS; k++)
		printf(",\"err_%s\":%llu", err_names[k], (unsigned long long)r->err[k]);
	printf(",\"aborted\":%s,\"rps\":%.1f,\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,"
	    "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"body_bytes\":%zu,"
	    "\"client_cpu_pct\":%.1f}\n",
	    r->aborted ? "true" : "false", rps, h->count ? us(h->min) : 0.0, mean / 1000.0,
	    us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
	    us(hist_percentile(h, 99.9)), us(h->max), r->expect_len, r->client_cpu);
	printf("%s: %.0f req/s, latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f, "
	    "%llu errors%s (%u connections%s, %.2f s, %llu requests, client CPU %.0f %%, %s%s)\n",
	    o->label, rps, us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
	    us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max),
	    (unsigned long long)r->errors, r->aborted ? ", ABORTED" : "", o->conns,
	    o->threads ? " on blocking threads" : "", secs,
	    (unsigned long long)r->completed, r->client_cpu, o->target.name, o->path);
	fflush(stdout);
}

/* CPU seconds (user + system) this process has used. */
static double
cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
run_load(const struct run_opts *o)
{
	struct run *r;
	struct epoll_event events[LG_EVENTS];
	uint64_t now, drain_deadline = 0, elapsed;
	double cpu0;
	int rc = 1;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return 1;
	r->o = o;
	r->ep = -1;
	hist_init(&r->hist);
	if (o->expect_file != NULL && read_expect(r, o->expect_file) != 0)
		goto out;
	r->req_len = strlen(o->path) + 128;
	r->req = malloc(r->req_len);
	r->conns = calloc(o->conns, sizeof(*r->conns));
	if (r->req == NULL || r->conns == NULL)
		goto out;
	r->req_len = (size_t)snprintf(r->req, r->req_len,
	    "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: latchkey-loadgen\r\n"
	    "Accept: */*\r\n\r\n", o->path);
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->ep == -1) {
		perror("loadgen: epoll_create1");
		goto out;
	}
	for (unsigned i = 0; i < o->conns; i++) {
		struct conn *c = &r->conns[i];

		c->fd = -1;
		c->rcap = LG_RBUF_INITIAL;
		c->rbuf = malloc(c->rcap);
		if (c->rbuf == NULL)
			goto out;
	}

	cpu0 = cpu_seconds();
	r->t_begin = now_ns();
	r->t_measure = r->t_begin + (uint64_t)(o->warmup_s * 1e9);
	r->t_end = r->t_measure + (uint64_t)(o->duration_s * 1e9);
	r->t_last = r->t_measure;
	for (unsigned i = 0; i < o->conns; i++) {
		int e = conn_open(r, &r->conns[i], r->t_begin);

		if (e != 0 && i == 0) {
			/* Nothing listens there: say so rather than report a run of errors. */
			fprintf(stderr, "loadgen: %s: %s\n", o->target.name, strerror(-e));
			goto out;
		}
	}
	now = now_ns();
	for (unsigned i = 0; i < o->conns; i++)
		if (r->conns[i].fd != -1)
			conn_send(r, &r->conns[i], now);

	for (;;) {
		unsigned busy = 0;
		int n, wait_ms = 10;

		now = now_ns();
		if (!r->stopping && now >= r->t_measure &&
		    (now >= r->t_end || r->issued >= o->max_requests))
			r->stopping = true;
		if (r->stopping && drain_deadline == 0)
			drain_deadline = now + (uint64_t)o->timeout_ms * 1000000ull;
		for (unsigned i = 0; i < o->conns; i++) {
			struct conn *c = &r->conns[i];

			if (c->busy && now - c->t_sent > (uint64_t)o->timeout_ms * 1000000ull) {
				count_error(r, ERR_TIMEOUT, c->t_sent);
				conn_close(r, c);
			}
			if (!c->busy && !r->stopping && c->retry_at != 0 && now >= c->retry_at)
				conn_send(r, c, now);
			if (!c->busy && !r->stopping && c->fd == -1 && c->retry_at == 0)
				conn_send(r, c, now);
			if (c->busy)
				busy++;
		}
		if (r->stopping && (busy == 0 || now >= drain_deadline))
			break;
		n = epoll_wait(r->ep, events, LG_EVENTS, wait_ms);
		if (n == -1 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			if (c->fd == -1)
				continue;
			if (events[i].events & EPOLLOUT) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
				conn_flush(r, c);
				if (c->fd == -1)
					continue;
			}
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(r, c);
		}
	}
	/* Requests still out at the drain deadline are timeouts. */
	for (unsigned i = 0; i < o->conns; i++) {
		if (r->conns[i].busy) {
			count_error(r, ERR_TIMEOUT, r->conns[i].t_sent);
			conn_close(r, &r->conns[i]);
		}
	}
	elapsed = r->t_last > r->t_measure ? r->t_last - r->t_measure : 0;
	now = now_ns();
	if (now > r->t_begin)
		r->client_cpu = 100.0 * (cpu_seconds() - cpu0) / ((double)(now - r->t_begin) / 1e9);
	print_report(r, elapsed);
	rc = (r->errors == 0 && !r->aborted && r->ok > 0) ? 0 : 1;
out:
	if (r->conns != NULL) {
		for (unsigned i = 0; i < o->conns; i++) {
			if (r->conns[i].fd != -1)
				close(r->conns[i].fd);
			free(r->conns[i].rbuf);
		}
	}
	if (r->ep != -1)
		close(r->ep);
	free(r->conns);
	free(r->req);
	free(r->expect);
	free(r);
	return rc;
}

/* ---- the run on blocking threads ---- */

/* One connection driven by its own thread with blocking calls: the other way
 * applications are written. Each thread keeps its own counters and histogram in a struct
 * run of its own (no shared state on the request path); they are added up at the end. */
struct worker {
	struct run r;
	pthread_t thread;
	uint64_t max_requests;
	uint64_t interval_ns;   /* --rate: between this connection's sends; 0: none */
	uint64_t next_ns;       /* --rate: the next send's slot */
	char *rbuf;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = &w->r;
	const struct run_opts *o = r->o;
	struct timeval tv = { .tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000 };
	struct conn c = { .fd = -1, .rbuf = w->rbuf, .rcap = LG_MAX_HEADER + LG_MAX_BODY + 1 };

	for (;;) {
		struct response resp;
		enum parse_result pr = PARSE_MORE;
		uint64_t now = now_ns();
		size_t off = 0;
		int fail = -1;

		if (r->stopping)
			break;
		if (w->interval_ns > 0) {
			if (now < w->next_ns) {
				struct timespec ts = {
					.tv_sec = (time_t)(w->next_ns / 1000000000ull),
					.tv_nsec = (long)(w->next_ns % 1000000000ull),
				};

				while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
					;
				now = now_ns();
			}
			w->next_ns += w->interval_ns;
		}
		if (now >= r->t_measure) {
			if (now >= r->t_end || r->issued >= w->max_requests)
				break;
			r->issued++;
		}
		if (c.fd == -1) {
			c.fd = target_connect(&o->target);
			if (c.fd < 0) {
				c.fd = -1;
				count_error(r, ERR_CONNECT, 0);
				sleep_us(LG_RECONNECT_PAUSE_MS * 1000);
				continue;
			}
			setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		c.t_sent = now_ns();
		c.busy = true;
		while (off < r->req_len) {
			ssize_t n = send(c.fd, r->req + off, r->req_len - off, MSG_NOSIGNAL);

			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0) {
				fail = ERR_CLOSED;
				break;
			}
			off += (size_t)n;
		}
		c.rlen = 0;
		while (fail < 0 && pr == PARSE_MORE) {
			ssize_t n = recv(c.fd, c.rbuf + c.rlen, c.rcap - c.rlen, 0);

			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
				fail = ERR_TIMEOUT;
			else if (n <= 0)
				fail = ERR_CLOSED;
			else if ((c.rlen += (size_t)n) == c.rcap)
				fail = ERR_PROTOCOL;
			else if ((pr = parse_response(c.rbuf, c.rlen, &resp)) == PARSE_BAD)
				fail = ERR_PROTOCOL;
		}
		if (fail >= 0) {
			count_error(r, (enum err_kind)fail, c.t_sent);
			close(c.fd);
			c.fd = -1;
			c.busy = false;
			continue;
		}
		{
			/* response_done closes through conn_close only when the server
			 * announced close; this connection is not in an epoll set. */
			int fd = c.fd;

			c.fd = -1;
			response_done(r, &c, &resp, now_ns());
			c.fd = fd;
			if (resp.close) {
				close(c.fd);
				c.fd = -1;
			}
		}
	}
	if (c.fd != -1)
		close(c.fd);
	return NULL;
}

static int
run_load_threads(const struct run_opts *o)
{
	struct run *total;
	struct worker *w;
	uint64_t t_begin, now, t_last = 0, elapsed;
	double cpu0;
	unsigned started = 0;
	int rc = 1;

	total = calloc(1, sizeof(*total));
	w = calloc(o->conns, sizeof(*w));
	if (total == NULL || w == NULL)
		goto out;
	total->o = o;
	total->ep = -1;
	hist_init(&total->hist);
	if (o->expect_file != NULL && read_expect(total, o->expect_file) != 0)
		goto out;
	total->req_len = strlen(o->path) + 128;
	if ((total->req = malloc(total->req_len)) == NULL)
		goto out;
	total->req_len = (size_t)snprintf(total->req, total->req_len,
	    "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: latchkey-loadgen\r\n"
	    "Accept: */*\r\n\r\n", o->path);
	{
		/* Nothing listens there: say so rather than report a run of errors. */
		int fd = target_connect(&o->target);

		if (fd < 0) {
			fprintf(stderr, "loadgen: %s: %s\n", o->target.name, strerror(-fd));
			goto out;
		}
		close(fd);
	}
	cpu0 = cpu_seconds();
	t_begin = now_ns();
	for (unsigned i = 0; i < o->conns; i++) {
		struct run *r = &w[i].r;

		r->o = o;
		r->ep = -1;
		hist_init(&r->hist);
		r->req = total->req;
		r->req_len = total->req_len;
		r->expect = total->expect;
		r->expect_len = total->expect_len;
		r->t_begin = t_begin;
		r->t_measure = t_begin + (uint64_t)(o->warmup_s * 1e9);
		r->t_end = r->t_measure + (uint64_t)(o->duration_s * 1e9);
		r->t_last = r->t_measure;
		w[i].max_requests = (o->max_requests + o->conns - 1) / o->conns;
		if (o->rate > 0) {
			w[i].interval_ns = (uint64_t)(1e9 * o->conns / o->rate);
			/* The connections' slots spread over one interval. */
			w[i].next_ns = t_begin + w[i].interval_ns * i / o->conns;
		}
		if ((w[i].rbuf = malloc(LG_MAX_HEADER + LG_MAX_BODY + 1)) == NULL)
			break;
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			free(w[i].rbuf);
			w[i].rbuf = NULL;
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	if (started < o->conns) {
		fprintf(stderr, "loadgen: could not start %u threads\n", o->conns);
		goto out;
	}
	total->t_measure = w[0].r.t_measure;
	for (unsigned i = 0; i < started; i++) {
		const struct run *r = &w[i].r;

		total->completed += r->completed;
		total->ok += r->ok;
		total->warmup_ok += r->warmup_ok;
		total->errors += r->errors;
		for (int k = 0; k < ERR_KINDS; k++)
			total->err[k] += r->err[k];
		total->aborted = total->aborted || r->aborted;
		for (size_t b = 0; b < HIST_BUCKETS; b++)
			total->hist.bucket[b] += r->hist.bucket[b];
		total->hist.count += r->hist.count;
		total->hist.sum += r->hist.sum;
		if (r->hist.min < total->hist.min)
			total->hist.min = r->hist.min;
		if (r->hist.max > total->hist.max)
			total->hist.max = r->hist.max;
		if (r->t_last > t_last)
			t_last = r->t_last;
	}
	elapsed = t_last > total->t_measure ? t_last - total->t_measure : 0;
	now = now_ns();
	if (now > t_begin)
		total->client_cpu = 100.0 * (cpu_seconds() - cpu0) / ((double)(now - t_begin) / 1e9);
	print_report(total, elapsed);
	rc = (total->errors == 0 && !total->aborted && total->ok > 0) ? 0 : 1;
out:
	if (w != NULL)
		for (unsigned i = 0; i < o->conns; i++)
			free(w[i].rbuf);
	free(w);
	if (total != NULL) {
		free(total->req);
		free(total->expect);
	}
	free(total);
	return rc;
}

/* ---- ready ---- */

/* One blocking GET on a fresh connection; returns the status, 0 when there was no
 * complete answer (not listening yet, closed, malformed) before deadline_ns. */
static int
probe_once(const struct target *t, const char *req, size_t req_len, uint64_t deadline_ns)
{
	char buf[LG_MAX_HEADER + 4096];
	struct response resp;
	size_t len = 0, off = 0;
	int fd, status = 0;
	struct timeval tv;
	uint64_t now = now_ns(), left;

	if (now >= deadline_ns)
		return 0;
	left = deadline_ns - now;
	tv.tv_sec = (time_t)(left / 1000000000ull);
	tv.tv_usec = (suseconds_t)((left % 1000000000ull) / 1000);
	fd = target_connect(t);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (off < req_len) {
		ssize_t n = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	for (;;) {
		enum parse_result pr;
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);

		if (n <= 0)
			goto out;
		len += (size_t)n;
		memset(&resp, 0, sizeof(resp));
		pr = parse_response(buf, len, &resp);
		/* Once the headers are in, the status is the answer; the body (a readiness
		 * report may name every secret) need not fit the buffer. */
		if (pr == PARSE_DONE || (pr == PARSE_MORE && resp.status != 0)) {
			status = resp.status;
			goto out;
		}
		if (pr == PARSE_BAD || len == sizeof(buf))
			goto out;
	}
out:
	close(fd);
	return status;
}

struct ready_opts {
	struct target target;
	const char *path;
	const char *log;
	unsigned timeout_ms;
	char **argv;
};

/* Sends sig to pid and waits for it up to grace_ms, then SIGKILL. Returns the wait
 * status and sets *ret_ms to the time it took to exit after sig. */
static int
stop_child(pid_t pid, int sig, double *ret_ms)
{
	uint64_t t0 = now_ns(), deadline = t0 + LG_STOP_GRACE_MS * 1000000ull;
	int status = 0;
	bool killed = false;

	kill(pid, sig);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid || (w == -1 && errno == ECHILD))
			break;
		if (!killed && now_ns() >= deadline) {
			kill(pid, SIGKILL);
			killed = true;
		}
		sleep_us(1000);
	}
	*ret_ms = (double)(now_ns() - t0) / 1e6;
	return killed ? -1 : status;
}

static int
run_ready(const struct ready_opts *o)
{
	char req[LG_MAX_PATH + 128];
	size_t req_len;
	uint64_t t0, deadline, t_ready = 0;
	unsigned long polls = 0;
	int status = 0, wstatus = 0, exit_status, rc = 1;
	double stop_ms = 0;
	pid_t pid;
	bool exited = false;

	req_len = (size_t)snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: latchkey-loadgen\r\n"
	    "Connection: close\r\n\r\n", o->path);
	t0 = now_ns();
	pid = fork();
	if (pid == -1) {
		perror("loadgen: fork");
		return 1;
	}
	if (pid == 0) {
		int fd = open(o->log != NULL ? o->log : "/dev/null",
		    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* The command gets the signal dispositions of a plain start, and does not
		 * outlive this process if it is killed. */
		signal(SIGPIPE, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execvp(o->argv[0], o->argv);
		_exit(127);
	}
	deadline = t0 + (uint64_t)o->timeout_ms * 1000000ull;
	while (now_ns() < deadline) {
		pid_t w;

		polls++;
		status = probe_once(&o->target, req, req_len, deadline);
		if (status == 200) {
			t_ready = now_ns();
			break;
		}
		w = waitpid(pid, &wstatus, WNOHANG);
		if (w == pid) {
			exited = true;
			break;
		}
		sleep_us(LG_READY_POLL_US);
	}
	if (exited) {
		fprintf(stderr, "loadgen: %s exited (status %d) before it was ready\n",
		    o->argv[0], WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
		return 1;
	}
	exit_status = stop_child(pid, SIGTERM, &stop_ms);
	if (t_ready == 0) {
		fprintf(stderr, "loadgen: %s%s: no 200 within %u ms (last status %d)\n",
		    o->target.name, o->path, o->timeout_ms, status);
		return 1;
	}
	printf("{\"ready_ms\":%.2f,\"polls\":%lu,\"stop_ms\":%.2f,\"exit_status\":%d}\n",
	    (double)(t_ready - t0) / 1e6, polls, stop_ms,
	    exit_status >= 0 && WIFEXITED(exit_status) ? WEXITSTATUS(exit_status) : -1);
	printf("ready after %.2f ms (%lu polls of %s%s); exited %.1f ms after SIGTERM\n",
	    (double)(t_ready - t0) / 1e6, polls, o->target.name, o->path, stop_ms);
	rc = 0;
	return rc;
}

/* ---- command line ---- */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen [run] (--unix PATH | --tcp HOST:PORT) [--path P] [-c CONNS] [-d SECS]\n"
	    "               [-w SECS] [-n MAX_REQUESTS] [--timeout-ms MS] [--expect-file FILE]\n"
	    "               [--label NAME] [--cpu N] [--shape epoll|threads] [--rate REQ_PER_S]\n"
	    "       loadgen ready (--unix PATH | --tcp HOST:PORT) [--path P] [--timeout-ms MS]\n"
	    "               [--log FILE] -- COMMAND [ARGS...]\n"
	    "defaults: --path / -c 4 -d 5 -w 1 -n 100000000 --timeout-ms 5000 (ready: --path /v1/ready,\n"
	    "          --timeout-ms 10000)\n");
}

static int
parse_seconds(const char *flag, const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > LG_MAX_SECONDS) {
		fprintf(stderr, "loadgen: %s: expected seconds between 0 and %d\n", flag, LG_MAX_SECONDS);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int
parse_uint(const char *flag, const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*ret = v;
	return 0;
bad:
	fprintf(stderr, "loadgen: %s: expected an integer between %llu and %llu\n", flag, min, max);
	return -EINVAL;
}

int
main(int argc, char **argv)
{
	struct run_opts ro = {
		.path = "/", .label = "loadgen", .conns = 4, .warmup_s = 1, .duration_s = 5,
		.max_requests = 100000000ull, .timeout_ms = 5000, .cpu = -1,
	};
	struct ready_opts rd = { .path = "/v1/ready", .timeout_ms = 10000 };
	bool ready_mode = false, have_target = false;
	struct target *t;
	int i = 1;

	if (argc > 1 && strcmp(argv[1], "ready") == 0) {
		ready_mode = true;
		i = 2;
	} else if (argc > 1 && strcmp(argv[1], "run") == 0) {
		i = 2;
	}
	t = ready_mode ? &rd.target : &ro.target;
	for (; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long long n;

		if (strcmp(a, "--") == 0 && ready_mode) {
			rd.argv = argv + i + 1;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		}
		if (v == NULL) {
			fprintf(stderr, "loadgen: %s: missing value or unknown flag\n", a);
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--unix") == 0) {
			if (target_parse_unix(t, v) != 0)
				return 2;
			have_target = true;
		} else if (strcmp(a, "--tcp") == 0) {
			if (target_parse_tcp(t, v) != 0)
				return 2;
			have_target = true;
		} else if (strcmp(a, "--path") == 0) {
			if (v[0] != '/' || strlen(v) > LG_MAX_PATH || strpbrk(v, " \r\n\t") != NULL) {
				fprintf(stderr, "loadgen: --path: expected /PATH without spaces, "
				    "at most %d bytes\n", LG_MAX_PATH);
				return 2;
			}
			ro.path = rd.path = v;
		} else if (strcmp(a, "--timeout-ms") == 0) {
			if (parse_uint(a, v, 1, (unsigned long long)LG_MAX_SECONDS * 1000, &n) != 0)
				return 2;
			ro.timeout_ms = rd.timeout_ms = (unsigned)n;
		} else if (!ready_mode && (strcmp(a, "-c") == 0 || strcmp(a, "--connections") == 0)) {
			if (parse_uint(a, v, 1, LG_MAX_CONNS, &n) != 0)
				return 2;
			ro.conns = (unsigned)n;
		} else if (!ready_mode && (strcmp(a, "-d") == 0 || strcmp(a, "--duration") == 0)) {
			if (parse_seconds(a, v, &ro.duration_s) != 0)
				return 2;
		} else if (!ready_mode && (strcmp(a, "-w") == 0 || strcmp(a, "--warmup") == 0)) {
			if (parse_seconds(a, v, &ro.warmup_s) != 0)
				return 2;
		} else if (!ready_mode && (strcmp(a, "-n") == 0 || strcmp(a, "--requests") == 0)) {
			if (parse_uint(a, v, 1, 1000000000000ull, &n) != 0)
				return 2;
			ro.max_requests = n;
		} else if (!ready_mode && strcmp(a, "--expect-file") == 0) {
			ro.expect_file = v;
		} else if (!ready_mode && strcmp(a, "--label") == 0) {
			if (strlen(v) > 64) {
				fprintf(stderr, "loadgen: --label: at most 64 bytes\n");
				return 2;
			}
			ro.label = v;
		} else if (!ready_mode && strcmp(a, "--shape") == 0) {
			if (strcmp(v, "epoll") != 0 && strcmp(v, "threads") != 0) {
				fprintf(stderr, "loadgen: --shape: expected epoll or threads\n");
				return 2;
			}
			ro.threads = strcmp(v, "threads") == 0;
		} else if (!ready_mode && strcmp(a, "--rate") == 0) {
			char *end;

			errno = 0;
			ro.rate = strtod(v, &end);
			if (errno != 0 || end == v || *end != '\0' || !(ro.rate > 0) || ro.rate > 1e7) {
				fprintf(stderr, "loadgen: --rate: expected requests per second, above 0 "
					"and at most 10000000\n");
				return 2;
			}
		} else if (!ready_mode && strcmp(a, "--cpu") == 0) {
			if (parse_uint(a, v, 0, CPU_SETSIZE - 1, &n) != 0)
				return 2;
			ro.cpu = (int)n;
		} else if (ready_mode && strcmp(a, "--log") == 0) {
			rd.log = v;
		} else {
			fprintf(stderr, "loadgen: %s: unknown flag\n", a);
			usage();
			return 2;
		}
	}
	if (!have_target) {
		fprintf(stderr, "loadgen: one of --unix or --tcp is required\n");
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (ready_mode) {
		if (rd.argv == NULL || rd.argv[0] == NULL) {
			fprintf(stderr, "loadgen: ready: the command to start follows --\n");
			return 2;
		}
		return run_ready(&rd);
	}
	if (ro.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(ro.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == -1) {
			perror("loadgen: sched_setaffinity");
			return 1;
		}
	}
	if (ro.rate > 0 && !ro.threads) {
		fprintf(stderr, "loadgen: --rate needs --shape threads\n");
		return 2;
	}
	return ro.threads ? run_load_threads(&ro) : run_load(&ro);
}
