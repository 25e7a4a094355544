/* exec.c — exec mode: the broker starts a command with chosen secrets in its environment,
 * restarts or signals it when they change, forwards signals to it, and exits with its
 * status.
 *
 * Why a launcher process: the system-call allow-list (broker/seccomp.c) kills execve and
 * fork, and it is in place long before the secrets are loaded, which is when the command
 * may start. Exempting exec mode from that rule would give a compromised broker the very
 * call the list exists to take away. So at start-up, while the broker is still one thread
 * and before the list is installed, it forks a launcher that holds no secret yet and does
 * one thing: wait on a SOCK_SEQPACKET pair for a message (the command and its complete
 * environment), fork and execve it, report its pid and its exit status, and pass signals
 * on to it. The broker keeps the filter and sends only bytes. If the broker goes away, the
 * launcher sees the pair close, stops the command (SIGTERM, then SIGKILL after
 * kill_timeout) and exits.
 *
 * The command stays in the broker's process group (as Vault Agent's child does), so that
 * it keeps the terminal for job control and reads from it; signals sent to the broker's
 * pid are forwarded.
 *
 * The environment is the broker's minus everything the broker reads for the backend
 * (VAULT_*, among them VAULT_TOKEN) and latchkey's own LATCHKEY_*, plus exec.env; never a
 * value of another secret. The message is built in a wipe buffer and zeroed once sent;
 * the launcher zeroes its copy once the command is started.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/exit.h"
#include "common/log.h"

extern char **environ;

/* Messages on the pair: a header, then exactly len bytes. */
enum exec_msg_type {
	EXEC_MSG_START = 1,         /* broker: the blob (broker_exec_blob_parse) */
	EXEC_MSG_SIGNAL,            /* broker: int32 signal for the command */
	EXEC_MSG_STARTED,           /* launcher: int32 pid */
	EXEC_MSG_FAILED,            /* launcher: int32 errno; the command did not start */
	EXEC_MSG_EXITED,            /* launcher: int32 wait status */
};

struct exec_msg_hdr {
	uint32_t type;
	uint32_t len;
};

#define EXEC_PACKET_MAX (sizeof(struct exec_msg_hdr) + BROKER_EXEC_MESSAGE_MAX)

enum exec_state {
	EXEC_WAITING = 0,           /* for the secrets: nothing runs */
	EXEC_STARTING,              /* START sent, no answer yet */
	EXEC_RUNNING,
	EXEC_RESTARTING,            /* SIGTERM sent for a restart: started anew once it exits */
	EXEC_STOPPING,              /* the broker's signal forwarded: the broker stops after */
	EXEC_DONE,
};

struct broker_exec {
	int fd;                     /* the broker's end of the pair */
	pid_t launcher;
	int wake[2];                /* a byte wakes the supervisor thread */
	pthread_t thread, main_thread;
	bool thread_running;

	pthread_mutex_t lock;       /* guards the requests below */
	bool changed;               /* a secret got a new version */
	bool quit;
	int stop_signal;            /* 0: none asked */
	uint64_t forward;           /* bit n: forward signal n */

	atomic_bool done;
	int status;                 /* the broker's exit status, set before done */

	/* supervisor thread only */
	enum exec_state state;
	bool stop_handled;
	pid_t child;
	int64_t kill_at_mono_ms;    /* 0: none */
	uint64_t *versions;         /* per secret: the version the command was started with */
};

/* ---- the message, shared by both sides ---- */

int
broker_exec_blob_parse(char *buf, size_t len, char **argv, size_t argv_cap, char **envp,
		       size_t envp_cap)
{
	uint32_t argc, envc;
	char *p, *end = buf + len;

	if (len < 8)
		return -EINVAL;
	memcpy(&argc, buf, 4);
	memcpy(&envc, buf + 4, 4);
	if (argc == 0 || argc >= argv_cap || envc >= envp_cap)
		return -E2BIG;
	p = buf + 8;
	for (size_t i = 0; i < (size_t)argc + envc; i++) {
		char *z = memchr(p, '\0', (size_t)(end - p));
		char *eq;

		if (z == NULL)
			return -EINVAL;
		if (i < argc) {
			if (i == 0 && z == p)
				return -EINVAL;
			argv[i] = p;
		} else {
			/* NAME=value with a name */
			eq = memchr(p, '=', (size_t)(z - p));
			if (eq == NULL || eq == p)
				return -EINVAL;
			envp[i - argc] = p;
		}
		p = z + 1;
	}
	if (p != end)
		return -EINVAL;
	argv[argc] = NULL;
	envp[envc] = NULL;
	return 0;
}

static int
send_msg(int fd, uint32_t type, const void *payload, size_t len)
{
	struct exec_msg_hdr h = { type, (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr m;

	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = len > 0 ? 2 : 1;
	while (sendmsg(fd, &m, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int
send_int(int fd, uint32_t type, int32_t v)
{
	return send_msg(fd, type, &v, sizeof(v));
}

/* One message into buf (cap bytes): its type and payload length. 0, -EPIPE at the end,
 * -EAGAIN when nothing is there, -EBADMSG for a packet of a size that does not add up. */
static int
recv_msg(int fd, char *buf, size_t cap, uint32_t *ret_type, size_t *ret_len)
{
	struct exec_msg_hdr h;
	ssize_t n;

	n = recv(fd, buf, cap, MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n == 0)
		return -EPIPE;
	if ((size_t)n > cap || (size_t)n < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.len != (size_t)n - sizeof(h))
		return -EBADMSG;
	*ret_type = h.type;
	*ret_len = h.len;
	return 0;
}

/* Whatever the broker reads for the backend, and latchkey's own settings. */
static bool
env_withheld(const char *var)
{
	return strncmp(var, "VAULT_", 6) == 0 || strncmp(var, "LATCHKEY_", 9) == 0;
}

/* ---- the launcher process (no allow-list, no secret but the one message) ---- */

static void __attribute__((noreturn))
launcher_exec(char **argv, char **envp, const struct broker_exec_inherit *inh, int errfd)
{
	sigset_t none;
	int e;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* What the broker's hardening changed is the broker's, not the command's. */
	umask(inh->umask);
	setrlimit(RLIMIT_CORE, &inh->core);
	execvpe(argv[0], argv, envp);
	e = errno;
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* Starts the command in buf; the pid, or -errno. */
static pid_t
launcher_start(char *buf, size_t len, const struct broker_exec_inherit *inh)
{
	static char *argv[BROKER_EXEC_ARGS_MAX + 1];
	static char *envp[BROKER_EXEC_STRINGS_MAX + 1];
	int ep[2], e = 0, rc;
	ssize_t n;
	pid_t pid;

	if ((rc = broker_exec_blob_parse(buf, len, argv, BROKER_EXEC_ARGS_MAX + 1, envp,
					 BROKER_EXEC_STRINGS_MAX + 1)) < 0)
		return rc;
	if (pipe2(ep, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(ep[0]);
		close(ep[1]);
		return rc;
	}
	if (pid == 0) {
		close(ep[0]);
		launcher_exec(argv, envp, inh, ep[1]);
	}
	close(ep[1]);
	/* The pipe closes on a successful execve; an errno comes through it otherwise. */
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		return -e;
	}
	return pid;
}

static void __attribute__((noreturn))
launcher_main(int fd, int64_t kill_timeout_ms, const struct broker_exec_inherit *inh)
{
	sigset_t all, chld;
	char *buf;
	pid_t child = 0;
	bool eof = false;
	int64_t kill_at = 0;
	int sfd;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	prctl(PR_SET_NAME, "latchkey-exec", 0, 0, 0);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	buf = sodium_malloc(EXEC_PACKET_MAX);
	if (sfd < 0 || buf == NULL)
		_exit(LK_EXIT_FAILURE);
	for (;;) {
		struct pollfd p[2] = { { eof ? -1 : fd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
		int timeout = -1;
		int64_t now;

		if (eof && child == 0)
			_exit(0);
		if (kill_at != 0) {
			int64_t left = kill_at - lk_now_mono_ms();

			timeout = left > 0 ? (int)left : 0;
		}
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			_exit(LK_EXIT_FAILURE);
		now = lk_now_mono_ms();
		if (kill_at != 0 && now >= kill_at) {
			if (child != 0)
				kill(child, SIGKILL);
			kill_at = 0;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			pid_t w;
			int st;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
				if (w == child) {
					child = 0;
					kill_at = 0;
					if (!eof)
						send_int(fd, EXEC_MSG_EXITED, st);
				}
			}
		}
		if (!eof && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			uint32_t type = 0;
			size_t len = 0;
			int rc = recv_msg(fd, buf, EXEC_PACKET_MAX, &type, &len);

			if (rc == -EAGAIN)
				continue;
			if (rc < 0) {
				/* The broker is gone: so goes the command. */
				eof = true;
				if (child != 0) {
					kill(child, SIGTERM);
					kill_at = now + kill_timeout_ms;
				}
				continue;
			}
			if (type == EXEC_MSG_START) {
				pid_t pid = child != 0 ? -EBUSY :
					    launcher_start(buf + sizeof(struct exec_msg_hdr), len, inh);

				sodium_memzero(buf, EXEC_PACKET_MAX);
				if (pid > 0) {
					child = pid;
					send_int(fd, EXEC_MSG_STARTED, pid);
				} else {
					send_int(fd, EXEC_MSG_FAILED, -pid);
				}
			} else if (type == EXEC_MSG_SIGNAL && len == sizeof(int32_t)) {
				int32_t sig;

				memcpy(&sig, buf + sizeof(struct exec_msg_hdr), sizeof(sig));
				if (child != 0 && sig > 0 && sig < NSIG)
					kill(child, sig);
			}
		}
	}
}

int
broker_exec_launcher_start(struct broker_config *cfg,
			   const struct broker_exec_inherit *inh, struct broker_exec **ret,
			   struct lk_error *err)
{
	struct broker_exec *x;
	int sv[2], bufsize = (int)(2 * EXEC_PACKET_MAX);
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return lk_error_set(err, -errno, "exec: socketpair: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return lk_error_set(err, -e, "exec: starting the launcher: %s", strerror(e));
	}
	if (pid == 0) {
		int64_t kill_timeout_ms = cfg->exec->kill_timeout_ms;

		close(sv[0]);
		/* The launcher needs none of it, the backend token least. */
		broker_config_clear(cfg);
		for (char **e = environ; e != NULL && *e != NULL; e++)
			if (env_withheld(*e))
				sodium_memzero(*e + strcspn(*e, "="), strlen(*e + strcspn(*e, "=")));
		launcher_main(sv[1], kill_timeout_ms, inh);
	}
	close(sv[1]);
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		close(sv[0]);
		return lk_error_set(err, -ENOMEM, "out of memory");
	}
	x->fd = sv[0];
	x->launcher = pid;
	x->wake[0] = x->wake[1] = -1;
	pthread_mutex_init(&x->lock, NULL);
	atomic_init(&x->done, false);
	if (pipe2(x->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;

		broker_exec_free(x);
		return lk_error_set(err, -e, "exec: pipe: %s", strerror(e));
	}
	*ret = x;
	return 0;
}

/* ---- the supervisor thread, in the broker ---- */

static void
wake(struct broker_exec *x)
{
	char c = 1;

	/* A full pipe already holds a wake-up. */
	if (write(x->wake[1], &c, 1) < 0)
		return;
}

static bool
entry_used(const struct broker *b, size_t entry)
{
	const struct broker_exec_spec *xs = b->cfg->exec;

	for (size_t i = 0; i < xs->nenv; i++)
		if (xs->env[i].secret == entry)
			return true;
	return false;
}

static bool
env_named(const struct broker_exec_spec *xs, const char *var)
{
	size_t n = strcspn(var, "=");

	for (size_t i = 0; i < xs->nenv; i++)
		if (strlen(xs->env[i].name) == n && strncmp(xs->env[i].name, var, n) == 0)
			return true;
	return false;
}

static int
blob_string(struct lk_buf *out, const char *s, size_t n)
{
	int rc = lk_buf_append(out, s, n);

	if (rc == 0)
		rc = lk_buf_append(out, "", 1);
	return rc;
}

int
broker_exec_env_build(struct broker *b, struct lk_buf *out, uint64_t *versions,
		      struct lk_error *err)
{
	const struct broker_exec_spec *xs = b->cfg->exec;
	uint32_t argc = (uint32_t)xs->ncommand, envc = 0;
	int rc;

	if ((rc = lk_buf_append(out, "\0\0\0\0\0\0\0\0", 8)) < 0)
		goto big;
	for (size_t i = 0; i < xs->ncommand; i++)
		if ((rc = blob_string(out, xs->command[i], strlen(xs->command[i]))) < 0)
			goto big;
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (env_withheld(*e) || env_named(xs, *e))
			continue;
		if (envc + xs->nenv >= BROKER_EXEC_STRINGS_MAX)
			return lk_error_set(err, -E2BIG, "exec: more than %d environment variables",
					    BROKER_EXEC_STRINGS_MAX);
		if ((rc = blob_string(out, *e, strlen(*e))) < 0)
			goto big;
		envc++;
	}
	for (size_t i = 0; i < xs->nenv; i++) {
		const struct broker_exec_env *ev = &xs->env[i];
		struct broker_entry *e = &b->entries[ev->secret];
		struct broker_snapshot *s = broker_entry_snapshot(e);
		const struct broker_kv *kv = s != NULL ? broker_snapshot_key(s, ev->key) : NULL;

		if (s == NULL) {
			rc = lk_error_set(err, -ENOENT, "exec.env.%s: secret %s is not loaded",
					  ev->name, e->spec->name);
		} else if (kv == NULL) {
			rc = lk_error_set(err, -ENOENT, "exec.env.%s: secret %s (version %llu) has "
					  "no key \"%s\"", ev->name, e->spec->name,
					  (unsigned long long)s->version, ev->key);
		} else if (memchr(kv->value, '\0', kv->value_len) != NULL) {
			rc = lk_error_set(err, -EINVAL, "exec.env.%s: the value of %s.%s (version "
					  "%llu) holds a NUL byte, which an environment variable "
					  "cannot carry", ev->name, e->spec->name, ev->key,
					  (unsigned long long)s->version);
		} else {
			rc = lk_buf_printf(out, "%s=", ev->name);
			if (rc == 0)
				rc = blob_string(out, kv->value, kv->value_len);
			if (versions != NULL)
				versions[ev->secret] = s->version;
		}
		broker_snapshot_unref(s);
		if (rc == -E2BIG)
			goto big;
		if (rc < 0)
			return rc;
		envc++;
	}
	memcpy(out->data, &argc, 4);
	memcpy(out->data + 4, &envc, 4);
	return 0;
big:
	if (rc == -E2BIG)
		return lk_error_set(err, rc, "exec: the command and its environment exceed %u bytes",
				    BROKER_EXEC_MESSAGE_MAX);
	return lk_error_set(err, rc, "out of memory");
}

/* Every required secret and every secret exec.env names has a valid version. */
static bool
secrets_ready(struct broker *b)
{
	char reason[BROKER_REASON_MAX];
	int64_t now = lk_now_mono_ms();

	if (!broker_ready(b, reason, sizeof(reason)))
		return false;
	for (size_t i = 0; i < b->n; i++) {
		enum broker_state st;

		if (!entry_used(b, i))
			continue;
		st = broker_entry_state(&b->entries[i], now);
		if (st != BROKER_STATE_VALID && st != BROKER_STATE_STALE)
			return false;
	}
	return true;
}

/* A used secret has a version other than the one the command started with. */
static bool
versions_changed(struct broker *b)
{
	struct broker_exec *x = b->exec;
	bool changed = false;

	for (size_t i = 0; i < b->n; i++) {
		struct broker_snapshot *s;

		if (!entry_used(b, i))
			continue;
		s = broker_entry_snapshot(&b->entries[i]);
		if (s != NULL && s->version != x->versions[i]) {
			changed = true;
			x->versions[i] = s->version;
		}
		broker_snapshot_unref(s);
	}
	return changed;
}

/* The shell's convention: the code of a normal exit, 128 + the signal of a killed one. */
static int
exit_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return LK_EXIT_FAILURE;
}

static void
finish(struct broker *b, int status)
{
	struct broker_exec *x = b->exec;

	x->state = EXEC_DONE;
	x->child = 0;
	x->kill_at_mono_ms = 0;
	broker_metrics_exec(b->metrics, false, false);
	x->status = status;
	atomic_store(&x->done, true);
	/* The main thread waits in sigwait: this is its wake-up. */
	pthread_kill(x->main_thread, SIGUSR1);
}

static void
signal_child(struct broker *b, int sig)
{
	struct broker_exec *x = b->exec;

	if (x->child != 0 && send_int(x->fd, EXEC_MSG_SIGNAL, sig) < 0)
		lk_log(LK_WARN, "exec: the launcher did not take a signal");
}

static void
start_command(struct broker *b)
{
	struct broker_exec *x = b->exec;
	struct lk_error err;
	struct lk_buf blob;
	int rc;

	lk_error_clear(&err);
	lk_buf_init(&blob, BROKER_EXEC_MESSAGE_MAX, true);
	rc = broker_exec_env_build(b, &blob, x->versions, &err);
	if (rc == 0 && (rc = send_msg(x->fd, EXEC_MSG_START, blob.data, blob.len)) < 0)
		lk_error_set(&err, rc, "exec: handing the command to the launcher: %s",
			     strerror(-rc));
	lk_buf_free(&blob);
	if (rc < 0) {
		lk_log(LK_ERROR, "cannot start the command", LK_STR("command", b->cfg->exec->command[0]),
		       LK_STR("error", err.msg));
		finish(b, LK_EXIT_FAILURE);
		return;
	}
	x->state = EXEC_STARTING;
}

/* A used secret changed while the command runs. */
static void
on_change(struct broker *b)
{
	const struct broker_exec_spec *xs = b->cfg->exec;
	struct broker_exec *x = b->exec;

	if (!versions_changed(b))
		return;
	if (xs->restart == BROKER_RESTART_NEVER) {
		lk_log(LK_INFO, "exec: a secret of the command changed; restart_on_change is "
		       "never: left running", LK_INT("pid", x->child));
		return;
	}
	if (xs->restart_signal != 0) {
		lk_log(LK_INFO, "exec: a secret of the command changed: signalling it",
		       LK_INT("pid", x->child), LK_STR("signal", sigabbrev_np(xs->restart_signal)));
		signal_child(b, xs->restart_signal);
		return;
	}
	{
		/* Restart only into an environment that can be built. */
		struct lk_error err;
		struct lk_buf blob;
		int rc;

		lk_error_clear(&err);
		lk_buf_init(&blob, BROKER_EXEC_MESSAGE_MAX, true);
		rc = broker_exec_env_build(b, &blob, NULL, &err);
		lk_buf_free(&blob);
		if (rc < 0) {
			lk_log(LK_ERROR, "exec: a secret of the command changed, but the new "
			       "environment cannot be built: the command keeps running",
			       LK_STR("error", err.msg));
			return;
		}
	}
	lk_log(LK_INFO, "exec: a secret of the command changed: restarting it",
	       LK_INT("pid", x->child));
	signal_child(b, SIGTERM);
	x->state = EXEC_RESTARTING;
	x->kill_at_mono_ms = lk_now_mono_ms() + xs->kill_timeout_ms;
}

static void
on_message(struct broker *b, uint32_t type, const char *payload, size_t len)
{
	struct broker_exec *x = b->exec;
	int32_t v;

	if (len != sizeof(v))
		return;
	memcpy(&v, payload, sizeof(v));
	switch (type) {
	case EXEC_MSG_STARTED:
		x->child = (pid_t)v;
		lk_log(LK_INFO, "command started", LK_STR("command", b->cfg->exec->command[0]),
		       LK_INT("pid", v));
		broker_metrics_exec(b->metrics, true, false);
		if (x->state == EXEC_STOPPING) {
			/* The broker was asked to stop while it started. */
			signal_child(b, x->stop_signal);
			x->kill_at_mono_ms = lk_now_mono_ms() + b->cfg->exec->kill_timeout_ms;
		} else {
			x->state = EXEC_RUNNING;
			/* A change may have come while it started: on_change compares versions. */
			pthread_mutex_lock(&x->lock);
			x->changed = true;
			pthread_mutex_unlock(&x->lock);
		}
		break;
	case EXEC_MSG_FAILED:
		lk_log(LK_ERROR, "cannot start the command", LK_STR("command",
		       b->cfg->exec->command[0]), LK_STR("error", strerror(v)));
		finish(b, v == ENOENT ? 127 : 126);
		break;
	case EXEC_MSG_EXITED:
		broker_metrics_exec(b->metrics, false, false);
		x->child = 0;
		x->kill_at_mono_ms = 0;
		if (x->state == EXEC_RESTARTING) {
			broker_metrics_exec(b->metrics, false, true);
			x->state = EXEC_WAITING;
			break;
		}
		lk_log(x->state == EXEC_STOPPING ? LK_INFO : LK_WARN, x->state == EXEC_STOPPING ?
		       "the command stopped" : "the command exited: stopping the broker",
		       LK_INT("exit_code", exit_code(v)));
		finish(b, exit_code(v));
		break;
	default:
		break;
	}
}

static void *
supervise(void *arg)
{
	struct broker *b = arg;
	struct broker_exec *x = b->exec;
	const struct broker_exec_spec *xs = b->cfg->exec;
	char *buf = malloc(sizeof(struct exec_msg_hdr) + 64);

	if (buf == NULL) {
		finish(b, LK_EXIT_FAILURE);
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = { { x->fd, POLLIN, 0 }, { x->wake[0], POLLIN, 0 } };
		bool changed, quit;
		int stop, timeout = -1;
		uint64_t forward;

		pthread_mutex_lock(&x->lock);
		changed = x->changed;
		quit = x->quit;
		stop = x->stop_signal;
		forward = x->forward;
		x->changed = false;
		x->forward = 0;
		pthread_mutex_unlock(&x->lock);
		if (quit || x->state == EXEC_DONE)
			break;
		for (int sig = 1; sig < 64; sig++)
			if (forward & (1ull << sig))
				signal_child(b, sig);
		if (stop != 0 && !x->stop_handled) {
			x->stop_handled = true;
			if (x->state == EXEC_WAITING) {
				finish(b, LK_EXIT_OK);
				break;
			}
			if (x->state != EXEC_STARTING) {
				signal_child(b, stop);
				x->kill_at_mono_ms = lk_now_mono_ms() + xs->kill_timeout_ms;
			}
			x->state = EXEC_STOPPING;
		}
		if (changed && x->state == EXEC_RUNNING)
			on_change(b);
		if (x->state == EXEC_WAITING && secrets_ready(b))
			start_command(b);
		if (x->state == EXEC_DONE)
			break;
		if (x->kill_at_mono_ms != 0) {
			int64_t left = x->kill_at_mono_ms - lk_now_mono_ms();

			if (left <= 0) {
				lk_log(LK_WARN, "exec: the command outlived kill_timeout: SIGKILL",
				       LK_INT("pid", x->child));
				signal_child(b, SIGKILL);
				x->kill_at_mono_ms = 0;
			} else {
				timeout = (int)left;
			}
		}
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			continue;
		if (p[1].revents & POLLIN) {
			char drain[64];

			while (read(x->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			uint32_t type = 0;
			size_t len = 0;
			int rc = recv_msg(x->fd, buf, sizeof(struct exec_msg_hdr) + 64, &type, &len);

			if (rc == 0) {
				on_message(b, type, buf + sizeof(struct exec_msg_hdr), len);
			} else if (rc != -EAGAIN) {
				lk_log(LK_ERROR, "exec: the launcher is gone: stopping the broker");
				finish(b, LK_EXIT_FAILURE);
			}
		}
	}
	free(buf);
	return NULL;
}

int
broker_exec_start(struct broker *b)
{
	struct broker_exec *x = b->exec;
	int rc;

	x->main_thread = pthread_self();
	x->versions = calloc(b->n + 1, sizeof(*x->versions));
	if (x->versions == NULL)
		return -ENOMEM;
	broker_metrics_exec(b->metrics, false, false);
	if ((rc = pthread_create(&x->thread, NULL, supervise, b)) != 0)
		return -rc;
	x->thread_running = true;
	return 0;
}

void
broker_exec_notify(struct broker *b, size_t entry)
{
	struct broker_exec *x = b->exec;

	if (x == NULL)
		return;
	pthread_mutex_lock(&x->lock);
	x->changed = true;
	pthread_mutex_unlock(&x->lock);
	wake(x);
}

void
broker_exec_forward(struct broker *b, int sig)
{
	struct broker_exec *x = b->exec;

	if (x == NULL || sig <= 0 || sig >= 64)
		return;
	pthread_mutex_lock(&x->lock);
	x->forward |= 1ull << sig;
	pthread_mutex_unlock(&x->lock);
	wake(x);
}

void
broker_exec_stop(struct broker *b, int sig)
{
	struct broker_exec *x = b->exec;

	if (x == NULL)
		return;
	pthread_mutex_lock(&x->lock);
	if (x->stop_signal == 0)
		x->stop_signal = sig;
	else
		x->forward |= 1ull << sig;  /* asked again: passed on again */
	pthread_mutex_unlock(&x->lock);
	wake(x);
}

bool
broker_exec_done(struct broker *b, int *ret_status)
{
	struct broker_exec *x = b->exec;

	if (x == NULL || !atomic_load(&x->done))
		return false;
	*ret_status = x->status;
	return true;
}

struct broker_exec *
broker_exec_free(struct broker_exec *x)
{
	if (x == NULL)
		return NULL;
	if (x->thread_running) {
		pthread_mutex_lock(&x->lock);
		x->quit = true;
		pthread_mutex_unlock(&x->lock);
		wake(x);
		pthread_join(x->thread, NULL);
	}
	/* The launcher sees the pair close, stops what still runs, and exits. It is not
	 * waited for: wait4 is outside the allow-list, and the broker is exiting. */
	if (x->fd >= 0)
		close(x->fd);
	if (x->wake[0] >= 0)
		close(x->wake[0]);
	if (x->wake[1] >= 0)
		close(x->wake[1]);
	free(x->versions);
	pthread_mutex_destroy(&x->lock);
	free(x);
	return NULL;
}
