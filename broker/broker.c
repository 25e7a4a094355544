/* broker.c — `latchkey broker`: flags, hardening, start-up order, signals, shutdown. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include "common/json.h"
#include "http/http.h"
#include "broker/broker.h"
#include "broker/internal.h"
#include "common/exit.h"
#include "common/clock.h"
#include "common/log.h"
#include "crypto/secret.h"

static const char *const state_names[BROKER_STATE_COUNT] = {
	"pending", "valid", "stale", "expired", "revoked", "failed",
};

const char *
broker_state_name(enum broker_state s)
{
	return (unsigned)s < BROKER_STATE_COUNT ? state_names[s] : "unknown";
}

void
broker_copy_text(char *dst, size_t n, const char *src)
{
	size_t len = src != NULL ? strlen(src) : 0;

	if (n == 0)
		return;
	if (len >= n)
		len = n - 1;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

struct broker_snapshot *
broker_entry_snapshot(struct broker_entry *e)
{
	struct broker_snapshot *s;

	pthread_mutex_lock(&e->lock);
	s = broker_snapshot_ref(e->current);
	pthread_mutex_unlock(&e->lock);
	return s;
}

enum broker_state
broker_entry_state(struct broker_entry *e, int64_t now_mono_ms)
{
	enum broker_state st;

	pthread_mutex_lock(&e->lock);
	if (e->current == NULL)
		st = e->revoked ? BROKER_STATE_REVOKED : e->failing ? BROKER_STATE_FAILED :
		     BROKER_STATE_PENDING;
	else if (broker_snapshot_expired(e->current, now_mono_ms))
		st = BROKER_STATE_EXPIRED;
	else
		st = e->failing ? BROKER_STATE_STALE : BROKER_STATE_VALID;
	pthread_mutex_unlock(&e->lock);
	return st;
}

bool
broker_peer_admin(const struct broker *b, const struct lk_peer *peer)
{
	if (peer == NULL || !peer->known)
		return false;
	for (size_t i = 0; i < b->cfg->nadmin_uids; i++)
		if (b->cfg->admin_uids[i] == peer->uid)
			return true;
	return false;
}

bool
broker_ready_for(struct broker *b, const struct lk_peer *peer, char *reason, size_t reasonlen)
{
	int64_t now = lk_now_mono_ms();
	bool full = peer == NULL || broker_peer_admin(b, peer);

	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];
		enum broker_state st;

		if (!e->spec->required)
			continue;
		st = broker_entry_state(e, now);
		if (st == BROKER_STATE_VALID || st == BROKER_STATE_STALE)
			continue;
		if (!full && !broker_peer_allowed(e->spec, peer)) {
			/* Neither its name nor its backend path: this peer may not read it. */
			snprintf(reason, reasonlen, "a required secret this peer may not read is %s",
				 broker_state_name(st));
			return false;
		}
		pthread_mutex_lock(&e->lock);
		snprintf(reason, reasonlen, "required secret %s is %s%s%s", e->spec->name,
			 broker_state_name(st), e->failing ? ": " : "", e->failing ? e->reason : "");
		pthread_mutex_unlock(&e->lock);
		return false;
	}
	snprintf(reason, reasonlen, "%s", "");
	return true;
}

bool
broker_ready(struct broker *b, char *reason, size_t reasonlen)
{
	return broker_ready_for(b, NULL, reason, reasonlen);
}

struct broker_entry *
broker_find(struct broker *b, const char *name)
{
	size_t lo = 0, hi = b->n;

	/* Binary search over the sorted indices: a read costs log n comparisons, not n. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, i = b->by_name[mid];
		int c = strcmp(name, b->entries[i].spec->name);

		if (c == 0)
			return &b->entries[i];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
name_order(const void *x, const void *y, void *arg)
{
	const struct broker_secret_spec *secrets = arg;

	return strcmp(secrets[*(const size_t *)x].name, secrets[*(const size_t *)y].name);
}

size_t *
broker_name_index(const struct broker_secret_spec *secrets, size_t n)
{
	size_t *idx = malloc((n + 1) * sizeof(*idx));

	if (idx == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), name_order, (void *)secrets);
	return idx;
}

int
broker_init(struct broker *b, struct broker_config *cfg, struct lk_error *err)
{
	struct lk_vault_error verr;
	int rc;

	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->started_mono_ms = lk_now_mono_ms();
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->waiters_lock, NULL);
	pthread_mutex_init(&b->render_lock, NULL);
	pthread_rwlock_init(&b->gen_lock, NULL);
	lk_cond_init_monotonic(&b->cond);
	lk_backoff_init(&b->token_backoff, cfg->retry_base_ms, cfg->retry_cap_ms);
	b->backend_ok = true;
	b->backend_reason_entry = SIZE_MAX;
	atomic_init(&b->announced_ready, false);
	broker_memlock_probe(&b->memlock);
	b->memlock.require = cfg->require_mlock;
	atomic_init(&b->warned_unlocked, false);
	b->arena = broker_arena_new_with(&b->memlock);
	b->entries = calloc(cfg->nsecrets, sizeof(*b->entries));
	b->by_name = broker_name_index(cfg->secrets, cfg->nsecrets);
	if (b->arena == NULL || b->entries == NULL || b->by_name == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (cfg->require_mlock && !broker_memlock_can_lock(&b->memlock))
		return lk_error_set(err, -ENOLCK, "%s: require_mlock: memory cannot be locked "
				    "(RLIMIT_MEMLOCK is %zu bytes and there is no CAP_IPC_LOCK): "
				    "raise the limit or give the broker CAP_IPC_LOCK", cfg->file,
				    b->memlock.limit);
	b->n = cfg->nsecrets;
	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];

		e->spec = &cfg->secrets[i];
		e->index = i;
		pthread_mutex_init(&e->lock, NULL);
		lk_backoff_init(&e->backoff, cfg->retry_base_ms, cfg->retry_cap_ms);
	}
	if (broker_outputs_new(cfg, &b->outputs, &b->noutputs) < 0)
		return lk_error_set(err, -ENOMEM, "out of memory");
	b->metrics = broker_metrics_new(b);
	if (b->metrics == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory (metrics)");
	b->audit = broker_audit_new(BROKER_AUDIT_ENTRIES_MAX, cfg->audit_interval_ms);
	if (b->audit == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory (audit)");
	/* Only file sources: nothing talks to a backend. */
	if (!cfg->backend)
		return 0;
	broker_credentials_digest(&cfg->vault, b->credentials_digest);
	if (cfg->vault.connect_timeout_ms <= 0)
		cfg->vault.connect_timeout_ms = BROKER_VAULT_CONNECT_TIMEOUT_MS;
	if (cfg->vault.timeout_ms <= 0)
		cfg->vault.timeout_ms = BROKER_VAULT_TIMEOUT_MS;
	lk_vault_error_clear(&verr);
	rc = lk_vault_client_new(&cfg->vault, &b->vault, &verr);
	if (rc < 0)
		return lk_error_set(err, rc, "%s: vault: %s", cfg->file, verr.base.msg);
	return 0;
}

void
broker_fini(struct broker *b)
{
	if (b->thread_abandoned)
		return;
	broker_files_free(b);
	for (size_t i = 0; i < b->nrevocations; i++) {
		free(b->revocations[i].lease_id);
		free(b->revocations[i].owned_secret);
	}
	free(b->revocations);
	b->revocations = NULL;
	for (size_t i = 0; b->entries != NULL && i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];

		broker_snapshot_unref(e->current);
		e->current = NULL;
		free(e->shown_lease_id);
		e->shown_lease_id = NULL;
		free(e->lease_id);
		pthread_mutex_destroy(&e->lock);
	}
	free(b->entries);
	b->entries = NULL;
	free(b->by_name);
	b->by_name = NULL;
	broker_outputs_free(b->outputs, b->noutputs);
	b->outputs = NULL;
	b->noutputs = 0;
	broker_metrics_free(b->metrics);
	b->metrics = NULL;
	broker_audit_free(b->audit);
	b->audit = NULL;
	b->vault = lk_vault_client_free(b->vault);
	broker_arena_free(b->arena);
	b->arena = NULL;
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->waiters_lock);
	pthread_mutex_destroy(&b->render_lock);
	pthread_rwlock_destroy(&b->gen_lock);
}

/* ---- the command ---- */

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: latchkey broker --config FILE [--log-level LEVEL] [-- COMMAND [ARG...]]\n"
		"       latchkey broker --check-config FILE [--online [--json]] [-- COMMAND [ARG...]]\n"
		"\n"
		"Caches secrets from a Vault-compatible backend in locked memory, renews and\n"
		"rotates them, and serves them over a Unix socket (see docs/broker.md).\n"
		"With a command (after --, or \"exec\" in the configuration) the broker runs it\n"
		"once the secrets are loaded, with the secrets exec.env names in its environment,\n"
		"restarts or signals it when they change, and exits with its exit status.\n"
		"\n"
		"  --config FILE        the JSON configuration\n"
		"  --check-config FILE  validate FILE and exit (0 valid, 2 invalid)\n"
		"  --online             with --check-config: log in, and check that each secret\n"
		"                       can be read (0 all can, 1 some cannot, 2 invalid FILE)\n"
		"  --json               with --online: the result as JSON\n"
		"  --log-level LEVEL    debug, info, warn or error (default info)\n"
		"  --help               this text\n"
		"  -- COMMAND [ARG...]  exec mode: the command (replaces exec.command)\n");
}

/* No core dumps (they would hold secrets), files private by default. */
static int
harden(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		return -errno;
	umask(077);
	return 0;
}

/* The socket's directory must exist (it is created if its parent does) and must not be
 * writable by others, who could replace the socket with their own. */
static int
check_socket_dir(const char *socket_path, struct lk_error *err)
{
	char copy[PATH_MAX], *dir;
	struct stat st;

	if (strlen(socket_path) >= sizeof(copy))
		return lk_error_set(err, -ENAMETOOLONG, "%s: path too long", socket_path);
	strcpy(copy, socket_path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0) {
		/* chmod: the umask (077) would leave it closed to the application's user. */
		if (errno != ENOENT || mkdir(dir, 0755) < 0 || chmod(dir, 0755) < 0 ||
		    stat(dir, &st) < 0)
			return lk_error_set(err, -errno, "socket directory %s: %s", dir,
					    strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return lk_error_set(err, -ENOTDIR, "socket directory %s: not a directory", dir);
	if (st.st_mode & S_IWOTH)
		return lk_error_set(err, -EPERM, "socket directory %s is writable by others "
				    "(mode %04o): refusing to serve secrets there", dir,
				    (unsigned)(st.st_mode & 07777));
	return 0;
}

/* The state directory holds the lease journal: created (0700) when missing, refused when
 * others may write to it (they could plant a journal, or remove it). */
static int
check_state_dir(const char *dir, struct lk_error *err)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT || mkdir(dir, 0700) < 0 || stat(dir, &st) < 0)
			return lk_error_set(err, -errno, "state_dir %s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return lk_error_set(err, -ENOTDIR, "state_dir %s: not a directory", dir);
	if (st.st_mode & (S_IWOTH | S_IWGRP))
		return lk_error_set(err, -EPERM, "state_dir %s is writable by others (mode %04o): "
				    "refusing to keep the lease journal there", dir,
				    (unsigned)(st.st_mode & 07777));
	return 0;
}

int
broker_main(int argc, char **argv)
{
	const char *config = NULL, *check = NULL, *level_text = NULL;
	enum lk_log_level level = LK_INFO;
	struct broker_config cfg;
	struct broker b;
	struct broker_exec *exec = NULL;
	struct broker_exec_inherit inherit;
	struct lk_error err;
	sigset_t set;
	bool started = false, online = false, as_json = false;
	char **command = NULL;
	size_t ncommand = 0;
	int rc, status = LK_EXIT_FAILURE;

	memset(&cfg, 0, sizeof(cfg));
	memset(&b, 0, sizeof(b));
	lk_error_clear(&err);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			command = argv + i + 1;
			ncommand = (size_t)(argc - i - 1);
			if (ncommand == 0) {
				fprintf(stderr, "latchkey broker: expected a command after \"--\"\n");
				usage(stderr);
				return LK_EXIT_USAGE;
			}
			break;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return LK_EXIT_OK;
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			config = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			config = a + 9;
		} else if (strcmp(a, "--check-config") == 0 && i + 1 < argc) {
			check = argv[++i];
		} else if (strncmp(a, "--check-config=", 15) == 0) {
			check = a + 15;
		} else if (strcmp(a, "--online") == 0) {
			online = true;
		} else if (strcmp(a, "--json") == 0) {
			as_json = true;
		} else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
			level_text = argv[++i];
		} else if (strncmp(a, "--log-level=", 12) == 0) {
			level_text = a + 12;
		} else {
			fprintf(stderr, "latchkey broker: unexpected argument '%s'\n", a);
			usage(stderr);
			return LK_EXIT_USAGE;
		}
	}
	if ((config == NULL) == (check == NULL)) {
		fprintf(stderr, "latchkey broker: give --config FILE or --check-config FILE\n");
		usage(stderr);
		return LK_EXIT_USAGE;
	}
	if ((online && check == NULL) || (as_json && !online)) {
		fprintf(stderr, "latchkey broker: %s goes with %s\n", online ? "--online" : "--json",
			online ? "--check-config FILE" : "--check-config FILE --online");
		usage(stderr);
		return LK_EXIT_USAGE;
	}
	if (level_text != NULL && lk_log_level_parse(level_text, &level) < 0) {
		fprintf(stderr, "latchkey broker: --log-level: expected debug, info, warn or error\n");
		return LK_EXIT_USAGE;
	}
	/* Before any json_t exists and before any thread starts. */
	if (lk_secret_init() < 0) {
		fprintf(stderr, "latchkey broker: libsodium failed to initialise\n");
		return LK_EXIT_FAILURE;
	}
	lk_json_wipe_on_free();
	if (lk_http_global_init() < 0) {
		fprintf(stderr, "latchkey broker: libcurl failed to initialise\n");
		return LK_EXIT_FAILURE;
	}
	if (check != NULL) {
		if (broker_config_load(&cfg, check, &err) < 0 ||
		    (command != NULL && broker_config_set_command(&cfg, command, ncommand, &err) < 0) ||
		    broker_config_check_exec(&cfg, &err) < 0) {
			fprintf(stderr, "latchkey broker: %s\n", err.msg);
			broker_config_clear(&cfg);
			lk_http_global_cleanup();
			return LK_EXIT_USAGE;
		}
		if (online) {
			if (cfg.backend)
				status = broker_check_online(&cfg, as_json, stdout);
			else {
				fprintf(stderr, "latchkey broker: %s: no secret is read from the "
					"backend: --online has nothing to check\n", check);
				status = LK_EXIT_OK;
			}
			broker_config_clear(&cfg);
			lk_http_global_cleanup();
			return status;
		}
		if (cfg.backend) {
			/* The client checks what only it knows (the address's scheme, TLS files);
			 * it makes no request. */
			struct lk_vault_client *client = NULL;
			struct lk_vault_error verr;

			lk_vault_error_clear(&verr);
			if (lk_vault_client_new(&cfg.vault, &client, &verr) < 0) {
				fprintf(stderr, "latchkey broker: %s: vault: %s\n", check, verr.base.msg);
				broker_config_clear(&cfg);
				lk_http_global_cleanup();
				return LK_EXIT_USAGE;
			}
			lk_vault_client_free(client);
		}
		if (broker_keys_check(&cfg, &err) < 0) {
			fprintf(stderr, "latchkey broker: %s\n", err.msg);
			broker_config_clear(&cfg);
			lk_http_global_cleanup();
			return LK_EXIT_USAGE;
		}
		printf("%s: ok (%zu secrets)\n", check, cfg.nsecrets);
		broker_config_clear(&cfg);
		lk_http_global_cleanup();
		return LK_EXIT_OK;
	}
	if (broker_config_load(&cfg, config, &err) < 0 ||
	    (command != NULL && broker_config_set_command(&cfg, command, ncommand, &err) < 0) ||
	    broker_config_check_exec(&cfg, &err) < 0 || broker_keys_check(&cfg, &err) < 0) {
		fprintf(stderr, "latchkey broker: %s\n", err.msg);
		broker_config_clear(&cfg);
		lk_http_global_cleanup();
		return LK_EXIT_USAGE;
	}
	/* The token is in secure memory now; left in the environment, /proc/PID/environ would
	 * show it for as long as the broker runs. Still one thread, and before exec mode's
	 * launcher is forked. A reload reads the environment again and finds no token: the
	 * new client carries on the one in use (broker/reload.c). */
	lk_vault_config_env_erase();
	if (level_text == NULL && cfg.log_level != NULL)
		lk_log_level_parse(cfg.log_level, &level);
	lk_log_setup(2, level);

	/* The command gets the umask and core limit the broker was given, not its own. */
	inherit.umask = umask(077);
	umask(inherit.umask);
	if (getrlimit(RLIMIT_CORE, &inherit.core) < 0)
		inherit.core = (struct rlimit){ 0, 0 };
	if ((rc = harden()) < 0) {
		lk_log(LK_ERROR, "hardening failed", LK_STR("error", strerror(-rc)));
		goto out;
	}
	if (geteuid() == 0)
		lk_log(LK_WARN, "running as root: prefer a dedicated user and group for the broker");
	if (check_socket_dir(cfg.socket_path, &err) < 0) {
		lk_log(LK_ERROR, "cannot serve", LK_STR("error", err.msg));
		goto out_cfg;
	}
	if (cfg.state_dir != NULL && check_state_dir(cfg.state_dir, &err) < 0) {
		lk_log(LK_ERROR, "cannot start", LK_STR("error", err.msg));
		status = LK_EXIT_USAGE;
		goto out_cfg;
	}

	/* Signals go to this thread only: every thread started below inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (cfg.exec != NULL)
		sigaddset(&set, SIGUSR1);   /* the exec supervisor's wake-up */
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	/* While the broker is one thread and before the allow-list: broker/exec.c says why. */
	if (cfg.exec != NULL && broker_exec_launcher_start(&cfg, &inherit, &exec, &err) < 0) {
		lk_log(LK_ERROR, "cannot start", LK_STR("error", err.msg));
		goto out_cfg;
	}
	signal(SIGPIPE, SIG_IGN);

	if (broker_init(&b, &cfg, &err) < 0) {
		lk_log(LK_ERROR, "cannot start", LK_STR("error", err.msg));
		broker_fini(&b);
		status = LK_EXIT_USAGE;
		goto out_cfg;
	}
	started = true;
	/* Before the scheduler starts: it tells exec mode of every new version. */
	b.exec = exec;
	exec = NULL;
	if (broker_inherit_journal(&b, &err) < 0) {
		/* An unreadable journal is said, not fatal: new leases are journaled anew. */
		lk_log(LK_WARN, "the lease journal could not be read; leases an earlier run left "
		       "expire on their own", LK_STR("error", err.msg));
		lk_error_clear(&err);
	}
	{
		struct broker_arena_stats as;

		broker_arena_stats(b.arena, &as);
		lk_log(LK_INFO, "memory locking", LK_BOOL("limited", b.memlock.limited),
		       LK_INT("memlock_limit_bytes", b.memlock.limited ? (int64_t)b.memlock.limit : -1),
		       LK_INT("region_bytes", as.region_size),
		       LK_BOOL("require_mlock", cfg.require_mlock));
	}
	/* File sources and their keys (broker/source_file.c): a key file that cannot be
	 * loaded is a configuration error. */
	if (broker_files_start(&b, &err) < 0) {
		lk_log(LK_ERROR, "cannot start", LK_STR("error", err.msg));
		status = LK_EXIT_USAGE;
		goto out;
	}
	if (cfg.backend && (rc = broker_scheduler_start(&b)) < 0) {
		lk_log(LK_ERROR, "cannot start the scheduler", LK_STR("error", strerror(-rc)));
		goto out;
	}
	if (broker_server_start(&b, &err) < 0) {
		lk_log(LK_ERROR, "cannot serve", LK_STR("error", err.msg));
		goto out;
	}
	/* Everything that needs more than reading, writing and waiting is done: from here on
	 * the allow-list holds (broker/seccomp.c). */
	if (cfg.seccomp) {
		if (broker_seccomp_install(&err) < 0) {
			lk_log(LK_ERROR, "cannot start", LK_STR("error", err.msg));
			goto out;
		}
		lk_log(LK_INFO, "system-call allow-list on",
		       LK_STR("outside_it", broker_seccomp_enforcing() ? "killed" : "logged"));
	}
	if (b.exec != NULL) {
		if ((rc = broker_exec_start(&b)) < 0) {
			lk_log(LK_ERROR, "cannot start the exec supervisor",
			       LK_STR("error", strerror(-rc)));
			goto out;
		}
	}
	lk_log(LK_INFO, "serving", LK_STR("socket", cfg.socket_path),
	       LK_STR("metrics", cfg.metrics_addr), LK_INT("secrets", cfg.nsecrets),
	       LK_BOOL("exec", cfg.exec != NULL), LK_INT("threads", b.threads),
	       LK_INT("poll_us", b.poll_us),
	       LK_STR("poll_us_because", b.poll_why));
	status = LK_EXIT_OK;
	for (;;) {
		int sig = 0;

		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			/* The command is over: the broker goes with it, with its status. */
			if (broker_exec_done(&b, &status))
				break;
			continue;
		}
		if (sig == SIGHUP) {
			if (b.exec != NULL) {
				/* Exec mode: the signal is the command's, and the configuration
				 * is read at start only (the supervisor holds it unlocked). */
				broker_exec_forward(&b, SIGHUP);
				lk_log(LK_INFO, "SIGHUP forwarded to the command; in exec mode the "
				       "broker's configuration is not reloaded: restart the broker "
				       "to change it");
			} else if (broker_reload(&b, &err) < 0) {
				/* broker/reload.c: a refused file leaves the running one. */
				lk_log(LK_ERROR, "configuration reload refused",
				       LK_STR("error", err.msg));
				lk_error_clear(&err);
			}
			continue;
		}
		if (b.exec != NULL) {
			/* Forwarded; the broker stops once the command is gone. */
			lk_log(LK_INFO, "stopping the command", LK_STR("signal", sigabbrev_np(sig)));
			broker_exec_stop(&b, sig);
			continue;
		}
		lk_log(LK_INFO, "shutting down", LK_STR("signal", sig == SIGTERM ? "TERM" : "INT"));
		break;
	}
	if (b.exec != NULL)
		lk_log(LK_INFO, "shutting down", LK_INT("exit_code", status));
out:
	if (started) {
		broker_server_stop(&b);
		broker_files_stop(&b);
		broker_scheduler_stop(&b);
		/* The command is gone by now (or never started): the launcher exits with it. */
		b.exec = broker_exec_free(b.exec);
		/* A lease the backend still holds after we are gone is a failure to report. */
		if (status == LK_EXIT_OK && (b.thread_abandoned ? cfg.revoke_on_shutdown :
					     b.shutdown_left > 0))
			status = LK_EXIT_FAILURE;
		if (b.thread_abandoned) {
			/* The scheduler is still inside a backend call, and will use the
			 * configuration (secret names), the client and libcurl when it returns:
			 * free none of them, and do not run libcurl's or OpenSSL's exit handlers
			 * under it. The kernel takes the memory back. */
			fflush(NULL);
			_exit(status);
		}
		broker_fini(&b);
		if (status == LK_EXIT_OK)
			lk_log(LK_INFO, "stopped");
		else if (b.shutdown_left > 0)
			lk_log(LK_WARN, "stopped, with leases left live");
	}
out_cfg:
	broker_exec_free(exec);
	broker_config_clear(&cfg);
	lk_http_global_cleanup();
	return status;
}
