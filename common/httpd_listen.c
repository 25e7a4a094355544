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

/* ---- the acceptor ---- */

/* Accepts connections until stop_fd is signalled and gives each to the library. The
 * library never sees the listening socket: MHD_quiesce_daemon with a thread pool races
 * its own worker threads over the socket's epoll registration and panics (0.9.75), and
 * closing the socket it hands back while a worker still uses it is a second race. */
void *
httpd_acceptor_run(void *arg)
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

