/* bare_server.c — the floor of the socket benchmark: an epoll loop per thread that answers
 * every request on a Unix socket with the same canned bytes.
 *
 *   bare_server --unix PATH --response FILE [--threads N]
 *
 * FILE holds a whole HTTP response (status line, headers, blank line, body), as another
 * server sent it; it is written as is for every request. A request ends at its blank line
 * (the benchmark's GETs have no body); nothing else of it is parsed. Requests may be
 * pipelined. An acceptor thread hands the connections to the serving threads in turn,
 * each with an epoll set of its own, so that a few connections spread over every thread
 * (with a shared listening socket one thread may take them all). It serves until SIGTERM
 * or SIGINT; it prints "listening" on stdout once the socket accepts.
 *
 * Exit status: 0 after a signal, 1 when it could not start, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Largest response file accepted. */
#define BARE_MAX_RESPONSE (64u << 10)
/* Bytes of request kept per connection: a request line and headers must fit. */
#define BARE_RBUF 8192
/* Most serving threads. */
#define BARE_MAX_THREADS 64
/* Events taken per epoll_wait call. */
#define BARE_EVENTS 64

struct bare_conn {
	int fd;
	char rbuf[BARE_RBUF];
	size_t rlen;
	size_t owed;                /* responses not yet written in full */
	size_t woff;                /* bytes written of the first owed response */
};

static const char *response;
static size_t response_len;
static int listen_fd = -1;
static int epolls[BARE_MAX_THREADS];
static long nthreads = 2;

/* Writes what is owed; 0 when done or the socket is full, -1 when the connection broke. */
static int
conn_write(struct bare_conn *c)
{
	while (c->owed > 0) {
		ssize_t n = send(c->fd, response + c->woff, response_len - c->woff, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		c->woff += (size_t)n;
		if (c->woff == response_len) {
			c->woff = 0;
			c->owed--;
		}
	}
	return 0;
}

/* Reads what has arrived and counts the requests that ended; -1: closed or too long. */
static int
conn_read(struct bare_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
		char *end;

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		c->rlen += (size_t)n;
		while ((end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4)) != NULL) {
			size_t used = (size_t)(end + 4 - c->rbuf);

			memmove(c->rbuf, c->rbuf + used, c->rlen - used);
			c->rlen -= used;
			c->owed++;
		}
		if (c->rlen == sizeof(c->rbuf))
			return -1;
	}
}

static void
conn_close(int ep, struct bare_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Accepts connections and gives each to the next serving thread's epoll set. */
static void *
accept_loop(void *arg)
{
	unsigned long next = 0;

	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event cev = { .events = EPOLLIN };
		struct bare_conn *c;

		if (fd == -1)
			continue;
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		cev.data.ptr = c;
		if (epoll_ctl(epolls[next++ % (unsigned long)nthreads], EPOLL_CTL_ADD, fd, &cev) == -1) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

static void *
serve(void *arg)
{
	struct epoll_event events[BARE_EVENTS];
	int ep = *(int *)arg;

	for (;;) {
		int n = epoll_wait(ep, events, BARE_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct bare_conn *c = events[i].data.ptr;

			if ((events[i].events & (EPOLLHUP | EPOLLERR)) && !(events[i].events & EPOLLIN)) {
				conn_close(ep, c);
				continue;
			}
			if (((events[i].events & EPOLLIN) && conn_read(c) < 0) || conn_write(c) < 0) {
				conn_close(ep, c);
				continue;
			}
			{
				/* Ask for EPOLLOUT only while a response is left half written. */
				struct epoll_event mev = {
					.events = EPOLLIN | (c->owed > 0 ? EPOLLOUT : 0), .data.ptr = c,
				};

				if (c->owed > 0 || (events[i].events & EPOLLOUT))
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &mev);
			}
		}
	}
	return NULL;
}

static char *
read_response(const char *path, size_t *ret_len)
{
	struct stat st;
	char *buf = NULL;
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "bare_server: %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (st.st_size <= 0 || (size_t)st.st_size > BARE_MAX_RESPONSE) {
		fprintf(stderr, "bare_server: %s: expected a response of 1 to %u bytes\n", path,
			BARE_MAX_RESPONSE);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL)
		goto fail;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n <= 0) {
			fprintf(stderr, "bare_server: %s: short read\n", path);
			goto fail;
		}
		off += (size_t)n;
	}
	if (memmem(buf, off, "\r\n\r\n", 4) == NULL || memcmp(buf, "HTTP/1.", 7) != 0) {
		fprintf(stderr, "bare_server: %s: expected an HTTP/1.x response with its headers\n",
			path);
		goto fail;
	}
	close(fd);
	*ret_len = off;
	return buf;
fail:
	if (fd != -1)
		close(fd);
	free(buf);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bare_server --unix PATH --response FILE [--threads N]\n");
}

int
main(int argc, char **argv)
{
	const char *path = NULL, *file = NULL;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	pthread_t threads[BARE_MAX_THREADS + 1];
	sigset_t set;
	int sig;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (strcmp(argv[i], "--unix") == 0) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--response") == 0) {
			file = argv[++i];
		} else if (strcmp(argv[i], "--threads") == 0) {
			char *end;

			nthreads = strtol(argv[++i], &end, 10);
			if (*end != '\0' || nthreads < 1 || nthreads > BARE_MAX_THREADS) {
				fprintf(stderr, "bare_server: --threads: expected 1 to %d\n",
					BARE_MAX_THREADS);
				return 2;
			}
		} else {
			usage();
			return 2;
		}
	}
	if (path == NULL || file == NULL) {
		usage();
		return 2;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "bare_server: --unix: path longer than %zu bytes\n",
			sizeof(sun.sun_path) - 1);
		return 2;
	}
	if ((response = read_response(file, &response_len)) == NULL)
		return 1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* The signals are taken by the main thread alone, with sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	unlink(path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd == -1 || bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0600) == -1 || listen(listen_fd, 1024) == -1) {
		fprintf(stderr, "bare_server: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (long i = 0; i < nthreads; i++) {
		if ((epolls[i] = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
		    pthread_create(&threads[i], NULL, serve, &epolls[i]) != 0) {
			fprintf(stderr, "bare_server: could not start thread %ld\n", i);
			unlink(path);
			return 1;
		}
	}
	if (pthread_create(&threads[nthreads], NULL, accept_loop, NULL) != 0) {
		fprintf(stderr, "bare_server: could not start the acceptor\n");
		unlink(path);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	sigwait(&set, &sig);
	unlink(path);
	return 0;
}
