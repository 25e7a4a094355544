/* httpd_listen.c — the listening sockets and the acceptor thread (httpd.h). */
#include "common/httpd_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"

/* ---- listening sockets ---- */

int
httpd_unix_listen(struct lk_httpd *srv, const struct lk_httpd_config *cfg, int *ret_fd,
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

int
httpd_tcp_listen(struct lk_httpd *srv, const char *addr, int *ret_fd, struct lk_error *err)
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

void
httpd_unix_remove(struct lk_httpd *srv)
{
	struct stat st;

	/* Only the file we created: another server may have taken the path since. */
	if (srv->unix_path != NULL && lstat(srv->unix_path, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == srv->unix_dev && st.st_ino == srv->unix_ino)
		unlink(srv->unix_path);
}

/* ---- admission ---- */

static const char *const refusal_reason[2] = {
	"this uid holds as many connections as one uid may: close one, or reuse it (keep-alive)",
	"the server holds as many connections as it may",
};

/* The canned 503 of a refused connection, in the server's error shape. */
static int
refusal_render(struct lk_httpd *srv, int which, char **ret, size_t *ret_len)
{
	json_t *body;
	char *text = NULL, *out;
	size_t n;
	int len;

	body = srv->error_body != NULL ?
		srv->error_body(503, "too many connections", refusal_reason[which]) :
		json_pack("{s:s, s:s}", "error", "too many connections", "reason",
			  refusal_reason[which]);
	if (body == NULL)
		return -ENOMEM;
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return -ENOMEM;
	n = strlen(text) + 1;
	len = snprintf(NULL, 0, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
		       "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n", n,
		       text);
	if (len < 0 || (out = malloc((size_t)len + 1)) == NULL) {
		free(text);
		return -ENOMEM;
	}
	snprintf(out, (size_t)len + 1, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n", n, text);
	free(text);
	*ret = out;
	*ret_len = (size_t)len;
	return 0;
}

int
httpd_admission_init(struct lk_httpd *srv, const struct lk_httpd_config *cfg)
{
	srv->max_connections = cfg->max_connections ? cfg->max_connections :
			       LK_HTTPD_MAX_CONN_DEFAULT;
	srv->max_per_uid = srv->is_unix ? cfg->max_per_uid : 0;
	srv->header_timeout_ms = cfg->header_timeout_ms;
	if (srv->is_unix && cfg->nreserved_uids > 0) {
		srv->reserved_uids = calloc(cfg->nreserved_uids, sizeof(uid_t));
		if (srv->reserved_uids == NULL)
			return -ENOMEM;
		memcpy(srv->reserved_uids, cfg->reserved_uids, cfg->nreserved_uids * sizeof(uid_t));
		srv->nreserved_uids = cfg->nreserved_uids;
		srv->reserved = cfg->reserved ? cfg->reserved : LK_HTTPD_RESERVED_DEFAULT;
	}
	/* At least one slot stays open to everyone. */
	if (srv->reserved >= srv->max_connections)
		srv->reserved = srv->max_connections - 1;
	for (int i = 0; i < 2; i++)
		if (refusal_render(srv, i, &srv->refusal[i], &srv->refusal_len[i]) < 0)
			return -ENOMEM;
	return 0;
}

void
httpd_admission_free(struct lk_httpd *srv)
{
	free(srv->slots);
	srv->slots = NULL;
	free(srv->uids);
	srv->uids = NULL;
	free(srv->reserved_uids);
	srv->reserved_uids = NULL;
	for (int i = 0; i < 2; i++) {
		free(srv->refusal[i]);
		srv->refusal[i] = NULL;
	}
}

static struct httpd_uid_count *
uid_find(struct lk_httpd *srv, uid_t uid)
{
	for (size_t i = 0; i < srv->nuids; i++)
		if (srv->uids[i].uid == uid)
			return &srv->uids[i];
	return NULL;
}

static bool
uid_reserved(const struct lk_httpd *srv, uid_t uid)
{
	for (size_t i = 0; i < srv->nreserved_uids; i++)
		if (srv->reserved_uids[i] == uid)
			return true;
	return false;
}

/* Frees fd's slot; conns_lock held. */
static void
slot_release_locked(struct lk_httpd *srv, int fd)
{
	struct httpd_slot *s;
	struct httpd_uid_count *u;

	if (fd < 0 || (size_t)fd >= srv->nslots || !srv->slots[fd].live)
		return;
	s = &srv->slots[fd];
	if (s->has_uid && (u = uid_find(srv, s->uid)) != NULL && --u->n == 0)
		*u = srv->uids[--srv->nuids];
	memset(s, 0, sizeof(*s));
	srv->nconns--;
}

/* Makes room for slot fd and one more uid; conns_lock held. 0 or -ENOMEM. */
static int
slot_reserve_locked(struct lk_httpd *srv, int fd)
{
	if ((size_t)fd >= srv->nslots) {
		size_t n = srv->nslots ? srv->nslots : 64;
		struct httpd_slot *p;

		while (n <= (size_t)fd)
			n *= 2;
		if ((p = realloc(srv->slots, n * sizeof(*p))) == NULL)
			return -ENOMEM;
		memset(p + srv->nslots, 0, (n - srv->nslots) * sizeof(*p));
		srv->slots = p;
		srv->nslots = n;
	}
	if (srv->nuids == srv->uids_cap) {
		size_t n = srv->uids_cap ? srv->uids_cap * 2 : 16;
		struct httpd_uid_count *p = realloc(srv->uids, n * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		srv->uids = p;
		srv->uids_cap = n;
	}
	return 0;
}

enum admission { ADMIT = -1, REFUSE_PER_UID = 0, REFUSE_FULL = 1 };

/* Whether a new connection of this peer may be admitted; conns_lock held. Reserved uids
 * have no per-uid cap and may use every slot; the others stop at their cap and leave the
 * reserve free. */
static enum admission
admit_locked(const struct lk_httpd *srv, bool has_uid, uid_t uid)
{
	const struct httpd_uid_count *u;

	if (has_uid && uid_reserved(srv, uid))
		return srv->nconns < srv->max_connections ? ADMIT : REFUSE_FULL;
	if (has_uid && srv->max_per_uid > 0 &&
	    (u = uid_find((struct lk_httpd *)srv, uid)) != NULL && u->n >= srv->max_per_uid)
		return REFUSE_PER_UID;
	return srv->nconns + srv->reserved < srv->max_connections ? ADMIT : REFUSE_FULL;
}

/* Answers a refused connection with its 503 and closes it. The request (if it came
 * already) is read and dropped first: closing with unread bytes would reset the
 * connection, and the client could lose the answer. */
static void
refuse(struct lk_httpd *srv, int fd, enum admission why)
{
	char sink[1024];
	size_t drained = 0;
	ssize_t n;

	(void)!send(fd, srv->refusal[why], srv->refusal_len[why], MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(fd, SHUT_WR);
	while (drained < HTTPD_REFUSE_DRAIN_MAX &&
	       (n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0)
		drained += (size_t)n;
	explicit_bzero(sink, sizeof(sink));  /* it may have held a token */
	close(fd);
}

void
httpd_conn_closed(struct lk_httpd *srv, int fd)
{
	/* Called before the descriptor is closed: the number cannot have been handed to a
	 * new connection yet. */
	pthread_mutex_lock(&srv->conns_lock);
	slot_release_locked(srv, fd);
	pthread_mutex_unlock(&srv->conns_lock);
}

void
lk_httpd_stats(struct lk_httpd *srv, struct lk_httpd_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->conns_lock);
	ret->connections = srv->nconns;
	ret->refused_per_uid = srv->refused_per_uid;
	ret->refused_full = srv->refused_full;
	ret->header_timeouts = srv->header_timeouts;
	pthread_mutex_unlock(&srv->conns_lock);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		ret->poll_hits += atomic_load_explicit(&srv->workers[i].poll_hits,
						       memory_order_relaxed);
		ret->poll_ns += atomic_load_explicit(&srv->workers[i].poll_ns,
						     memory_order_relaxed);
	}
}

/* Shuts down the connections whose header deadline passed: their thread then sees the end
 * of the stream and closes them. */
static void
deadlines_enforce(struct lk_httpd *srv, int64_t now)
{

	pthread_mutex_lock(&srv->conns_lock);
	for (size_t fd = 0; fd < srv->nslots; fd++) {
		struct httpd_slot *s = &srv->slots[fd];

		if (!s->live || s->conn == NULL || s->timed_out ||
		    atomic_load_explicit(&s->conn->busy, memory_order_acquire))
			continue;
		if (atomic_load_explicit(&s->conn->ready_ms, memory_order_relaxed) +
		    srv->header_timeout_ms <= now) {
			shutdown((int)fd, SHUT_RDWR);
			s->timed_out = true;
			srv->header_timeouts++;
		}
	}
	pthread_mutex_unlock(&srv->conns_lock);
}

/* ---- the acceptor ---- */

/* Accepts one connection, decides whether to admit it, and hands it to a worker (or a
 * thread of its own). */
static void
accept_one(struct lk_httpd *srv, int *io_timeout)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct http_conn *conn = NULL;
	enum admission verdict;
	bool has_uid = false;
	int fd;

	fd = accept4(srv->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			*io_timeout = HTTPD_ACCEPT_PAUSE_MS;
		return;
	}
	if (srv->is_unix && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
	    clen == sizeof(cred))
		has_uid = true;
	/* TCP: an answer is one write, so Nagle's algorithm could only hold back the second
	 * of two (100 Continue, then the answer) until the client's delayed ACK. Set once
	 * per connection; a failure only costs that delay. */
	if (!srv->is_unix) {
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (httpd_conn_new(srv, fd, (struct sockaddr *)&ss, has_uid ? &cred : NULL, &conn) < 0) {
		close(fd);
		*io_timeout = HTTPD_ACCEPT_PAUSE_MS;
		return;
	}

	pthread_mutex_lock(&srv->conns_lock);
	if (slot_reserve_locked(srv, fd) < 0) {
		pthread_mutex_unlock(&srv->conns_lock);
		httpd_conn_free(conn);
		close(fd);
		*io_timeout = HTTPD_ACCEPT_PAUSE_MS;
		return;
	}
	verdict = admit_locked(srv, has_uid, has_uid ? cred.uid : 0);
	if (verdict == ADMIT) {
		struct httpd_slot *s = &srv->slots[fd];

		s->live = true;
		s->has_uid = has_uid;
		s->uid = has_uid ? cred.uid : 0;
		s->conn = conn;
		srv->nconns++;
		if (has_uid) {
			struct httpd_uid_count *u = uid_find(srv, cred.uid);

			if (u == NULL) {
				u = &srv->uids[srv->nuids++];
				u->uid = cred.uid;
				u->n = 0;
			}
			u->n++;
		}
	} else if (verdict == REFUSE_PER_UID) {
		srv->refused_per_uid++;
	} else {
		srv->refused_full++;
	}
	pthread_mutex_unlock(&srv->conns_lock);
	if (verdict != ADMIT) {
		httpd_conn_free(conn);
		refuse(srv, fd, verdict);
		return;
	}
	/* On failure the connection is closed and its slot freed there. */
	(void)httpd_conn_hand(srv, conn);
	httpd_tpc_reap(srv);
}

/* Closes the listening socket when quiesce_fd is signalled; the quiescer waits for it. */
static void
acceptor_quiesce_now(struct lk_httpd *srv)
{
	/* Closed before the quiescer is told: once it returns, a new client is refused. */
	pthread_mutex_lock(&srv->conns_lock);
	close(srv->listen_fd);
	srv->listen_fd = -1;
	pthread_cond_broadcast(&srv->listen_closed);
	pthread_mutex_unlock(&srv->conns_lock);
}

/* Accepts connections and hands each to a worker; with a header deadline it also looks
 * at the connections every scan interval. Once quiesce_fd is signalled it closes the
 * listening socket and only looks at the deadlines, until stop_fd is signalled. */
void *
httpd_acceptor_run(void *arg)
{
	struct lk_httpd *srv = arg;
	struct pollfd pfd[3] = {
		{ .fd = srv->listen_fd, .events = POLLIN },
		{ .fd = srv->stop_fd, .events = POLLIN },
		{ .fd = srv->quiesce_fd, .events = POLLIN },
	};
	int64_t scan_ms = srv->header_timeout_ms / 4, next_scan = 0, now;
	int timeout, pause = -1;

	if (scan_ms > HTTPD_DEADLINE_SCAN_MS)
		scan_ms = HTTPD_DEADLINE_SCAN_MS;
	if (scan_ms < 10)
		scan_ms = 10;
	for (;;) {
		timeout = pause;
		if (srv->header_timeout_ms > 0) {
			int64_t wait = next_scan - lk_now_mono_ms();

			if (wait < 0)
				wait = 0;
			if (timeout < 0 || wait < timeout)
				timeout = (int)wait;
		}
		if (poll(pfd, 3, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents != 0)
			break;
		if (pfd[2].revents != 0) {
			/* poll skips negative descriptors: from now on only the deadlines. */
			acceptor_quiesce_now(srv);
			pfd[0].fd = pfd[2].fd = -1;
			pfd[0].revents = 0;
		}
		pause = -1;
		if (srv->header_timeout_ms > 0 && (now = lk_now_mono_ms()) >= next_scan) {
			deadlines_enforce(srv, now);
			next_scan = now + scan_ms;
		}
		if ((pfd[0].revents & POLLIN) != 0)
			accept_one(srv, &pause);
	}
	/* Leaving (stop, or poll failed): nobody accepts any more, and a quiescer waits for
	 * the socket to be closed. */
	if (pfd[0].fd >= 0)
		acceptor_quiesce_now(srv);
	return NULL;
}

void
httpd_acceptor_quiesce(struct lk_httpd *srv)
{
	uint64_t one = 1;

	if (!srv->acceptor_running) {
		httpd_acceptor_stop(srv);
		return;
	}
	while (write(srv->quiesce_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&srv->conns_lock);
	while (srv->listen_fd >= 0)
		pthread_cond_wait(&srv->listen_closed, &srv->conns_lock);
	pthread_mutex_unlock(&srv->conns_lock);
}

void
httpd_acceptor_stop(struct lk_httpd *srv)
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

