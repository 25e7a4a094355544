/* main.c — build/fake-apiserver: options, the files clients need (kubeconfig, CA, token,
 * service-account public key), signals, and restarts (the restart fault stops the server,
 * keeps the state, and listens again on the same port). See docs/test-apiserver.md. */
#include "fake.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:6443"
#define DEFAULT_ISSUER "https://kubernetes.default.svc.cluster.local"
/* Default BOOKMARK interval; kube-apiserver sends one about every minute. */
#define DEFAULT_BOOKMARK_MS 10000
/* Length of a generated admin token. */
#define TOKEN_LEN 32

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: fake-apiserver --dir DIR [OPTIONS]\n"
	    "\n"
	    "A Kubernetes API server for tests and demos, in memory. Writes DIR/kubeconfig,\n"
	    "DIR/ca.crt, DIR/token and DIR/sa.pub. See docs/test-apiserver.md.\n"
	    "\n"
	    "  --listen ADDR          address to listen on (default " DEFAULT_LISTEN "; port 0 picks one)\n"
	    "  --dir DIR              where the kubeconfig and keys go (created if missing)\n"
	    "  --token T              the admin bearer token (default: random)\n"
	    "  --user TOKEN:NAME[:GROUPS]  another bearer token, authorized by RBAC (repeatable)\n"
	    "  --issuer URL           service-account token issuer and audience (default\n"
	    "                         " DEFAULT_ISSUER ")\n"
	    "  --audit FILE           append one JSON line per request\n"
	    "  --log-level L          debug, info, warn or error (default info)\n"
	    "  --max-objects N        stored objects (default %d)\n"
	    "  --history N            writes kept for watches and consistent lists (default %d)\n"
	    "  --max-watches N        open watch streams (default %d)\n"
	    "  --max-connections N    open connections (default %d)\n"
	    "  --bookmark-interval MS BOOKMARK events every MS milliseconds (default %d)\n"
	    "  --fault JSON           faults at start, as POST /fake/faults takes (repeatable)\n"
	    "  --latency MS           delay every request by MS milliseconds\n"
	    "  -h, --help             this text\n",
	    FK_OBJECTS_DEFAULT, FK_HISTORY_DEFAULT, FK_WATCHES_DEFAULT, FK_CONNECTIONS_DEFAULT,
	    DEFAULT_BOOKMARK_MS);
}

static int
parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	size_t len = strlen(text), off = 0;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int
write_files(struct fk_state *st, const struct fk_config *cfg)
{
	char *ca = fk_b64_encode((const unsigned char *)st->keys.ca_pem, strlen(st->keys.ca_pem));
	char *kc = NULL, token[sizeof(cfg->token) + 1];
	int r = -ENOMEM;

	if (ca == NULL)
		return -ENOMEM;
	if (asprintf(&kc,
		     "apiVersion: v1\n"
		     "kind: Config\n"
		     "clusters:\n"
		     "- name: fake\n"
		     "  cluster:\n"
		     "    server: %s\n"
		     "    certificate-authority-data: %s\n"
		     "contexts:\n"
		     "- name: fake\n"
		     "  context:\n"
		     "    cluster: fake\n"
		     "    user: admin\n"
		     "    namespace: default\n"
		     "current-context: fake\n"
		     "users:\n"
		     "- name: admin\n"
		     "  user:\n"
		     "    token: %s\n"
		     "preferences: {}\n", st->addr, ca, cfg->token) < 0) {
		kc = NULL;
		goto out;
	}
	snprintf(token, sizeof(token), "%s", cfg->token);
	if ((r = write_file(cfg->dir, "ca.crt", st->keys.ca_pem, 0644)) < 0 ||
	    (r = write_file(cfg->dir, "sa.pub", st->keys.sa_pub_pem, 0644)) < 0 ||
	    (r = write_file(cfg->dir, "token", token, 0600)) < 0 ||
	    (r = write_file(cfg->dir, "kubeconfig", kc, 0600)) < 0)
		goto out;
out:
	free(ca);
	free(kc);
	return r;
}

/* "127.0.0.1:0" -> "127.0.0.1"; "[::1]:0" -> "::1" */
static void
listen_host(const char *listen, char *out, size_t len)
{
	const char *colon = strrchr(listen, ':');

	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');

		snprintf(out, len, "%.*s", end != NULL ? (int)(end - listen - 1) : 0, listen + 1);
		return;
	}
	snprintf(out, len, "%.*s", colon != NULL ? (int)(colon - listen) : (int)strlen(listen), listen);
}

static void
set_addr(struct fk_state *st, const struct fk_config *cfg)
{
	const char *h = cfg->host;

	if (h[0] == '\0' || strcmp(h, "0.0.0.0") == 0)
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	if (strchr(h, ':') != NULL)
		snprintf(st->addr, sizeof(st->addr), "https://[%s]:%d", h, st->port);
	else
		snprintf(st->addr, sizeof(st->addr), "https://%s:%d", h, st->port);
}

static int
parse_user(const char *s, struct fk_config *cfg)
{
	struct fk_user_token *u;
	const char *c1 = strchr(s, ':'), *c2;

	if (cfg->nusers >= FK_USERS_MAX || c1 == NULL || c1 == s || (size_t)(c1 - s) >= sizeof(u->token))
		return -EINVAL;
	u = &cfg->users[cfg->nusers];
	memset(u, 0, sizeof(*u));
	snprintf(u->token, sizeof(u->token), "%.*s", (int)(c1 - s), s);
	c2 = strchr(c1 + 1, ':');
	snprintf(u->name, sizeof(u->name), "%.*s", c2 != NULL ? (int)(c2 - c1 - 1) : (int)strlen(c1 + 1), c1 + 1);
	if (c2 != NULL)
		snprintf(u->groups, sizeof(u->groups), "%s", c2 + 1);
	if (u->name[0] == '\0')
		return -EINVAL;
	cfg->nusers++;
	return 0;
}

static int
state_init(struct fk_state *st, const struct fk_config *cfg)
{
	memset(st, 0, sizeof(*st));
	st->cfg = cfg;
	st->restart_fd = -1;
	if (pthread_mutex_init(&st->lock, NULL) != 0 || pthread_cond_init(&st->changed, NULL) != 0 ||
	    pthread_cond_init(&st->gc_wake, NULL) != 0 || pthread_mutex_init(&st->audit_lock, NULL) != 0)
		return -ENOMEM;
	if (fk_keys_generate(&st->keys, cfg->host) < 0)
		return -EIO;
	if (fk_stats_init(&st->stats) < 0 || fk_registry_init(st) < 0 || fk_store_init(st) < 0 ||
	    fk_seed(st) < 0)
		return -ENOMEM;
	return 0;
}

static void
state_clear(struct fk_state *st)
{
	fk_store_clear(st);
	fk_registry_clear(&st->reg);
	fk_stats_clear(&st->stats);
	fk_keys_clear(&st->keys);
	if (st->audit != NULL)
		fclose(st->audit);
	if (st->restart_fd >= 0)
		close(st->restart_fd);
}

/* Stops serving: streams end, handlers waiting return, connections close. */
static void
server_down(struct fk_state *st, struct fk_server **srv)
{
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	pthread_cond_broadcast(&st->changed);
	pthread_mutex_unlock(&st->lock);
	fk_server_stop(*srv);
	*srv = NULL;
	pthread_mutex_lock(&st->lock);
	st->stopping = false;
	pthread_mutex_unlock(&st->lock);
}

int
main(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_DIR, O_TOKEN, O_USER, O_ISSUER, O_AUDIT, O_LEVEL, O_OBJECTS,
	       O_HISTORY, O_WATCHES, O_CONNS, O_BOOKMARK, O_FAULT, O_LATENCY };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "dir", required_argument, NULL, O_DIR },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "user", required_argument, NULL, O_USER },
		{ "issuer", required_argument, NULL, O_ISSUER },
		{ "audit", required_argument, NULL, O_AUDIT },
		{ "log-level", required_argument, NULL, O_LEVEL },
		{ "max-objects", required_argument, NULL, O_OBJECTS },
		{ "history", required_argument, NULL, O_HISTORY },
		{ "max-watches", required_argument, NULL, O_WATCHES },
		{ "max-connections", required_argument, NULL, O_CONNS },
		{ "bookmark-interval", required_argument, NULL, O_BOOKMARK },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "latency", required_argument, NULL, O_LATENCY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fk_config cfg;
	static struct fk_state st;
	struct fk_server *srv = NULL;
	enum fk_level level = FK_INFO;
	pthread_t gc;
	bool gc_running = false;
	sigset_t sigs;
	struct pollfd pfd[2];
	char err[512];
	long n, latency = -1;
	int opt, rc = 1, sfd = -1;

	snprintf(cfg.listen, sizeof(cfg.listen), "%s", DEFAULT_LISTEN);
	snprintf(cfg.issuer, sizeof(cfg.issuer), "%s", DEFAULT_ISSUER);
	cfg.max_objects = FK_OBJECTS_DEFAULT;
	cfg.history = FK_HISTORY_DEFAULT;
	cfg.max_watches = FK_WATCHES_DEFAULT;
	cfg.max_connections = FK_CONNECTIONS_DEFAULT;
	cfg.bookmark_ms = DEFAULT_BOOKMARK_MS;
	cfg.start_faults = json_array();
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case O_LISTEN:
			snprintf(cfg.listen, sizeof(cfg.listen), "%s", optarg);
			break;
		case O_DIR:
			snprintf(cfg.dir, sizeof(cfg.dir), "%s", optarg);
			break;
		case O_TOKEN:
			if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg.token) ||
			    strpbrk(optarg, " \t\r\n") != NULL) {
				fprintf(stderr, "fake-apiserver: --token: 1 to %zu characters, no spaces\n", sizeof(cfg.token) - 1);
				return 2;
			}
			snprintf(cfg.token, sizeof(cfg.token), "%s", optarg);
			break;
		case O_USER:
			if (parse_user(optarg, &cfg) < 0) {
				fprintf(stderr, "fake-apiserver: --user: expected TOKEN:NAME[:GROUP,...] (at most %d)\n", FK_USERS_MAX);
				return 2;
			}
			break;
		case O_ISSUER:
			snprintf(cfg.issuer, sizeof(cfg.issuer), "%s", optarg);
			break;
		case O_AUDIT:
			snprintf(cfg.audit_path, sizeof(cfg.audit_path), "%s", optarg);
			break;
		case O_LEVEL:
			if (strcmp(optarg, "debug") == 0)
				level = FK_DEBUG;
			else if (strcmp(optarg, "info") == 0)
				level = FK_INFO;
			else if (strcmp(optarg, "warn") == 0)
				level = FK_WARN;
			else if (strcmp(optarg, "error") == 0)
				level = FK_ERROR;
			else {
				fprintf(stderr, "fake-apiserver: --log-level: expected debug, info, warn or error\n");
				return 2;
			}
			break;
		case O_OBJECTS:
		case O_HISTORY:
		case O_WATCHES:
		case O_CONNS:
		case O_BOOKMARK:
		case O_LATENCY:
			if (parse_long(optarg, opt == O_LATENCY ? 0 : 1, opt == O_LATENCY ? FK_LATENCY_MAX_MS : 10000000, &n) < 0) {
				fprintf(stderr, "fake-apiserver: %s: expected a number in range\n", argv[optind - 1]);
				return 2;
			}
			if (opt == O_OBJECTS)
				cfg.max_objects = n;
			else if (opt == O_HISTORY)
				cfg.history = n;
			else if (opt == O_WATCHES)
				cfg.max_watches = (unsigned)n;
			else if (opt == O_CONNS)
				cfg.max_connections = (unsigned)n;
			else if (opt == O_BOOKMARK)
				cfg.bookmark_ms = n;
			else
				latency = n;
			break;
		case O_FAULT: {
			json_t *f = json_loads(optarg, JSON_REJECT_DUPLICATES, NULL);

			if (!json_is_object(f) || json_object_get(f, "restart_ms") != NULL) {
				fprintf(stderr, "fake-apiserver: --fault: expected a JSON object of faults (restart_ms only at run time)\n");
				json_decref(f);
				return 2;
			}
			json_array_append_new(cfg.start_faults, f);
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "fake-apiserver: option '%s' needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "fake-apiserver: unknown option '%s' (see --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc || cfg.dir[0] == '\0') {
		fprintf(stderr, "fake-apiserver: %s (see --help)\n",
			optind < argc ? "unexpected argument" : "--dir DIR is required");
		return 2;
	}
	if (cfg.token[0] == '\0')
		fk_random_alnum(cfg.token, TOKEN_LEN);
	listen_host(cfg.listen, cfg.host, sizeof(cfg.host));
	fk_log_setup(level);
	if (mkdir(cfg.dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "fake-apiserver: %s: %s\n", cfg.dir, strerror(errno));
		return 1;
	}

	/* Signals are read from a signalfd: block them before any thread starts. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((n = state_init(&st, &cfg)) < 0) {
		fprintf(stderr, "fake-apiserver: %s\n", n == -EIO ? "generating the keys failed" : "out of memory");
		goto out;
	}
	if (cfg.audit_path[0] != '\0' && (st.audit = fopen(cfg.audit_path, "ae")) == NULL) {
		fprintf(stderr, "fake-apiserver: --audit %s: %s\n", cfg.audit_path, strerror(errno));
		goto out;
	}
	{
		size_t i;
		json_t *f;

		if (latency >= 0)
			st.faults.latency_ms = latency;
		json_array_foreach(cfg.start_faults, i, f) {
			if (fk_faults_apply(&st, f, err, sizeof(err)) < 0) {
				fprintf(stderr, "fake-apiserver: --fault: %s\n", err);
				rc = 2;
				goto out;
			}
		}
	}
	if ((st.restart_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "fake-apiserver: %s\n", strerror(errno));
		goto out;
	}
	if (fk_gc_start(&st, &gc) < 0) {
		fprintf(stderr, "fake-apiserver: cannot start the collector thread\n");
		goto out;
	}
	gc_running = true;
	if (fk_server_start(&st, &srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "fake-apiserver: %s\n", err);
		goto out;
	}
	set_addr(&st, &cfg);
	if (write_files(&st, &cfg) < 0) {
		fprintf(stderr, "fake-apiserver: writing the files in %s failed: %s\n", cfg.dir, strerror(errno));
		goto out;
	}
	fk_log(FK_INFO, "listening", json_pack("{s:s,s:s}", "addr", st.addr, "dir", cfg.dir));

	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = st.restart_fd, .events = POLLIN };
	for (;;) {
		uint64_t v;
		long down;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents != 0) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				fk_log(FK_INFO, "stopping", json_pack("{s:s}", "signal",
					si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM"));
			break;
		}
		if (pfd[1].revents == 0 || read(st.restart_fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
			continue;
		pthread_mutex_lock(&st.lock);
		down = st.restart_ms > 0 ? st.restart_ms - 1 : 0;
		st.restart_ms = 0;
		pthread_mutex_unlock(&st.lock);
		fk_log(FK_INFO, "restarting", json_pack("{s:I}", "down_ms", (json_int_t)down));
		server_down(&st, &srv);
		if (down > 0) {
			struct timespec ts = { down / 1000, (down % 1000) * 1000000L };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		if (fk_server_start(&st, &srv, err, sizeof(err)) < 0) {
			fk_log(FK_ERROR, "restart failed", json_pack("{s:s}", "error", err));
			goto out;
		}
		fk_log(FK_INFO, "listening", json_pack("{s:s,s:s}", "addr", st.addr, "dir", cfg.dir));
	}
	rc = 0;
out:
	if (srv != NULL)
		server_down(&st, &srv);
	if (gc_running)
		fk_gc_stop(&st, gc);
	if (sfd >= 0)
		close(sfd);
	state_clear(&st);
	json_decref(cfg.start_faults);
	return rc;
}
