/* cmd_get.c — `latchkey get`: one secret or one value from the broker socket. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/commands.h"
#include "common/clock.h"
#include "http/http.h"

/* How long --wait waits for the broker to serve the secret unless told. */
#define GET_WAIT_DEFAULT_MS (30 * 1000LL)
/* How long --after blocks unless --wait says: the broker's own default wait. */
#define GET_AFTER_DEFAULT_MS (5 * 60 * 1000LL)
/* Pause between attempts while waiting. */
#define GET_RETRY_MS 100
/* Longest request path built. */
#define GET_PATH_MAX 2048
/* Timeout of a single request that does not block. */
#define GET_REQUEST_TIMEOUT_MS 10000L
/* Pauses between tries while the broker is busy: doubling from the first to the last. */
#define CLIENT_BUSY_PAUSE_MIN_MS 10L
#define CLIENT_BUSY_PAUSE_MAX_MS 200L

const char *
client_socket_path(const char *flag)
{
	const char *env = getenv("LATCHKEY_SOCKET");

	if (flag != NULL)
		return flag;
	if (env != NULL && env[0] != '\0')
		return env;
	return CLIENT_SOCKET_DEFAULT;
}

/* Why nothing answered on socket: the words the user needs and a code of its own for
 * each case (a missing socket, a file that is not one, a permission, nobody listening).
 * -EBUSY (its listen queue is full) and -EIO (it accepted this probe) mean a broker is
 * there: worth another try. The probe never blocks. */
static int
client_diagnose(const char *sock_path, char *msg, size_t msglen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc, e;

	if (lstat(sock_path, &st) < 0) {
		e = errno;
		if (e == ENOENT || e == ENOTDIR) {
			snprintf(msg, msglen, "%s: no such socket: is the broker running, and is this "
				 "its socket (--socket, or LATCHKEY_SOCKET)?", sock_path);
			return -ENOENT;
		}
		snprintf(msg, msglen, "%s: %s", sock_path, strerror(e));
		return e == EACCES ? -EACCES : -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(msg, msglen, "%s: not a socket (it is a %s): is this the broker's socket?",
			 sock_path, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ?
			 "regular file" : "special file");
		return -ENOTSOCK;
	}
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		snprintf(msg, msglen, "%s: path too long for a socket", sock_path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, sock_path, strlen(sock_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(msg, msglen, "%s: %s", sock_path, strerror(errno));
		return -errno;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	close(fd);
	if (rc == 0) {
		snprintf(msg, msglen, "%s: the broker accepted a connection but did not answer",
			 sock_path);
		return -EIO;
	}
	if (e == EAGAIN) {
		snprintf(msg, msglen, "%s: the broker is busy: its queue of new connections stayed "
			 "full", sock_path);
		return -EBUSY;
	}
	if (e == EACCES || e == EPERM) {
		snprintf(msg, msglen, "%s: permission denied: this user (uid %ld) may not connect; "
			 "the socket's mode, owner and group (listen.mode, owner, group) decide who "
			 "may", sock_path, (long)geteuid());
		return -EACCES;
	}
	if (e == ECONNREFUSED) {
		snprintf(msg, msglen, "%s: nobody is listening: the broker is not running (a socket "
			 "file is left from an earlier run)", sock_path);
		return -ECONNREFUSED;
	}
	snprintf(msg, msglen, "%s: %s", sock_path, strerror(e));
	return -e;
}

/* One GET within timeout_ms. */
static int
client_get_once(const char *socket, const char *url, long timeout_ms, long *ret_status,
		struct lk_buf *out, char *msg, size_t msglen)
{
	const struct lk_http_client_config cfg = {
		.unix_socket = socket, .timeout_ms = timeout_ms,
	};
	struct lk_http_client *c = NULL;
	struct lk_http_response resp = { 0 };
	struct lk_error err;
	int rc;

	if ((rc = lk_http_client_new(&cfg, &c, &err)) < 0) {
		snprintf(msg, msglen, "%s", err.msg);
		return rc;
	}
	{
		const struct lk_http_request req = {
			.method = "GET", .url = url, .max_body = out->max, .wipe = out->wipe,
		};

		rc = lk_http_perform(c, &req, &resp, &err);
	}
	if (rc < 0) {
		if (resp.failure == LK_HTTP_FAIL_CONNECT || resp.failure == LK_HTTP_FAIL_TRANSPORT) {
			/* A transport failure with nothing received is how a connect into a
			 * full queue ends: the probe says which it was. */
			if (resp.failure == LK_HTTP_FAIL_CONNECT || resp.status == 0)
				rc = client_diagnose(socket, msg, msglen);
			else
				rc = -EIO;
			if (rc == -EIO && resp.failure == LK_HTTP_FAIL_TRANSPORT)
				snprintf(msg, msglen, "%s: %s", socket, err.msg);
		} else {
			snprintf(msg, msglen, "%s: %s", socket, err.msg);
			rc = resp.failure == LK_HTTP_FAIL_NOMEM ? -ENOMEM : -EIO;
		}
		goto out;
	}
	if ((rc = lk_buf_append(out, resp.body.data, resp.body.len)) < 0) {
		snprintf(msg, msglen, "answer too large");
		goto out;
	}
	*ret_status = resp.status;
out:
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
	return rc;
}

int
client_get(const char *socket, const char *path, long timeout_ms, long *ret_status,
	   struct lk_buf *out, char *msg, size_t msglen)
{
	const int64_t deadline = lk_now_mono_ms() + timeout_ms;
	long pause_ms = CLIENT_BUSY_PAUSE_MIN_MS;
	char url[GET_PATH_MAX + 32];
	int rc;

	if (strlen(path) > GET_PATH_MAX) {
		snprintf(msg, msglen, "request path too long");
		return -EINVAL;
	}
	snprintf(url, sizeof(url), "http://localhost%s", path);
	for (;;) {
		int64_t left = deadline - lk_now_mono_ms();

		rc = client_get_once(socket, url, left > 1 ? (long)left : 1, ret_status, out, msg,
				     msglen);
		/* A broker that is there but busy (a flood of connections from elsewhere
		 * fills its queue) gets another try until the deadline. */
		if ((rc != -EBUSY && rc != -EIO) ||
		    lk_now_mono_ms() + pause_ms >= deadline)
			return rc;
		lk_buf_reset(out);
		{
			struct timespec ts = { pause_ms / 1000, (pause_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		if (pause_ms < CLIENT_BUSY_PAUSE_MAX_MS)
			pause_ms *= 2;
	}
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: latchkey get NAME[/KEY] [--socket PATH] [--wait[=DURATION]] [--after VERSION]\n"
		"\n"
		"Prints the secret NAME as JSON, or the value of one KEY as text.\n"
		"  --socket PATH     the broker socket (default $LATCHKEY_SOCKET, else %s)\n"
		"  --wait[=D]        retry until the broker serves the secret (default 30s)\n"
		"  --after VERSION   block until the version is newer than VERSION (a rotation);\n"
		"                    --wait sets how long (default 5m)\n",
		CLIENT_SOCKET_DEFAULT);
}

/* Prints the broker's {"error","reason"} answer. */
static void
print_error(const char *what, long status, const struct lk_buf *body)
{
	json_t *j = body->len > 0 ? json_loadb(body->data, body->len, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(j, "error"));
	const char *r = json_string_value(json_object_get(j, "reason"));

	fprintf(stderr, "latchkey get: %s: %ld %s%s%s\n", what, status, e != NULL ? e : "error",
		r != NULL ? ": " : "", r != NULL ? r : "");
	json_decref(j);
}

int
cmd_get(int argc, char **argv)
{
	const char *target = NULL, *socket_flag = NULL, *after = NULL, *wait_text = NULL;
	char path[GET_PATH_MAX], msg[512];
	bool wait = false;
	int64_t wait_ms = GET_WAIT_DEFAULT_MS, deadline, block_ms = 0;
	struct lk_buf body;
	long status = 0;
	int rc, exit_status = LK_EXIT_FAILURE;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return LK_EXIT_OK;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			socket_flag = argv[++i];
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			socket_flag = argv[i] + 9;
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait = true;
		} else if (strncmp(argv[i], "--wait=", 7) == 0) {
			wait = true;
			wait_text = argv[i] + 7;
		} else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc) {
			after = argv[++i];
		} else if (argv[i][0] != '-' && target == NULL) {
			target = argv[i];
		} else {
			fprintf(stderr, "latchkey get: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	if (target == NULL || target[0] == '\0' || target[0] == '/') {
		usage(stderr);
		return LK_EXIT_USAGE;
	}
	if (wait_text != NULL && lk_duration_parse(wait_text, &wait_ms) < 0) {
		fprintf(stderr, "latchkey get: --wait: expected a duration such as 30s\n");
		return LK_EXIT_USAGE;
	}
	if (after != NULL && (after[0] == '\0' || strlen(after) > 20 ||
			      strspn(after, "0123456789") != strlen(after))) {
		fprintf(stderr, "latchkey get: --after: expected a version number\n");
		return LK_EXIT_USAGE;
	}
	{
		const char *slash = strchr(target, '/');
		char key[GET_PATH_MAX];

		if (slash != NULL && lk_http_escape(slash + 1, key, sizeof(key)) < 0) {
			fprintf(stderr, "latchkey get: name too long\n");
			return LK_EXIT_USAGE;
		}
		if ((size_t)snprintf(path, sizeof(path), "/v1/secrets/%.*s%s%s",
				     (int)(slash != NULL ? (size_t)(slash - target) : strlen(target)),
				     target, slash != NULL ? "/" : "", slash != NULL ? key : "") >=
		    sizeof(path)) {
			fprintf(stderr, "latchkey get: name too long\n");
			return LK_EXIT_USAGE;
		}
		if (after != NULL) {
			char q[96];

			/* In milliseconds: whole seconds would turn --wait=500ms into no wait at
			 * all. The request's own timeout below is this wait plus a margin. */
			block_ms = wait_text != NULL ? wait_ms : GET_AFTER_DEFAULT_MS;
			snprintf(q, sizeof(q), "?index=%s&wait=%lldms", after, (long long)block_ms);
			if (strlen(path) + strlen(q) >= sizeof(path)) {
				fprintf(stderr, "latchkey get: name too long\n");
				return LK_EXIT_USAGE;
			}
			strcat(path, q);
		}
	}
	lk_buf_init(&body, CLIENT_RESPONSE_MAX, true);
	deadline = lk_now_mono_ms() + wait_ms;
	for (;;) {
		long timeout = after != NULL ? (long)(block_ms + GET_REQUEST_TIMEOUT_MS) :
			       GET_REQUEST_TIMEOUT_MS;

		lk_buf_reset(&body);
		rc = client_get(client_socket_path(socket_flag), path, timeout, &status, &body,
				msg, sizeof(msg));
		if (rc == 0 && status == 200)
			break;
		if (!wait || after != NULL || lk_now_mono_ms() >= deadline ||
		    (rc == 0 && status != 503)) {
			if (rc < 0)
				fprintf(stderr, "latchkey get: %s\n", msg);
			else
				print_error(target, status, &body);
			goto out;
		}
		{
			struct timespec ts = { 0, GET_RETRY_MS * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	if (fwrite(body.data, 1, body.len, stdout) != body.len)
		goto out;
	if (strchr(target, '/') != NULL && isatty(1))
		fputc('\n', stdout);
	if (fflush(stdout) != 0)
		goto out;
	exit_status = LK_EXIT_OK;
out:
	lk_buf_free(&body);
	return exit_status;
}
