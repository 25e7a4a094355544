/* internal.h — the broker's own contracts between its files (config, arena, snapshot,
 * scheduler, server, render, metrics). Nothing outside broker/ and its tests includes it;
 * the module's public face is broker.h. The design is in docs/internals/broker.md. */
#ifndef LK_BROKER_INTERNAL_H
#define LK_BROKER_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "broker/template.h"
#include "common/backoff.h"
#include "common/error.h"
#include "common/httpd.h"
#include "common/metrics.h"
#include "vault/vault.h"

/* ---- limits and defaults ----------------------------------------------------------- */

/* Most secrets one broker serves. */
#define BROKER_SECRETS_MAX 4096
/* Longest secret name (URL-safe: letters, digits, '-', '_', '.'). */
#define BROKER_NAME_MAX 128
/* Most entries in one allow.uids or allow.gids list. */
#define BROKER_ALLOW_MAX 256
/* Largest inline template or template file. */
#define BROKER_TEMPLATE_MAX (64u << 10)
/* Most entries in the templates array. */
#define BROKER_TEMPLATES_MAX 256
/* Longest file path in the configuration. */
#define BROKER_FILE_PATH_MAX 1024
/* Largest pidfile read before signalling. */
#define BROKER_PIDFILE_MAX 64
/* Most long-poll readers suspended at once; more get 503. */
#define BROKER_WAITERS_MAX 4096
/* Longest wait a blocking read may ask for. */
#define BROKER_WAIT_MAX_MS (10 * 60 * 1000LL)
/* The wait of a blocking read that names an index but no wait. */
#define BROKER_WAIT_DEFAULT_MS (5 * 60 * 1000LL)
/* Longest error text kept for status and readiness. */
#define BROKER_REASON_MAX 256
/* Most keys one secret may have (each gets a text/plain route). */
#define BROKER_KEYS_MAX 1024
/* The largest snapshot block: the body around data of LK_SECRET_MAX, the key table, and
 * the values again as raw strings. */
#define BROKER_SNAPSHOT_BLOCK_MAX (2 * (size_t)LK_SECRET_MAX + \
				   BROKER_KEYS_MAX * (sizeof(struct broker_kv) + 2) + 4096)
/* The highest metrics_series_max the config accepts (series per metric). */
#define BROKER_METRICS_SERIES_MAX_LIMIT 1000000

#define BROKER_SOCKET_DEFAULT "/run/latchkey/broker.sock"
#define BROKER_REFRESH_DEFAULT_MS (5 * 60 * 1000LL)
#define BROKER_GRACE_DEFAULT_MS (30 * 1000LL)
#define BROKER_RETRY_BASE_DEFAULT_MS 500
#define BROKER_RETRY_CAP_DEFAULT_MS (30 * 1000LL)
/* The retry cap of a required secret that has nothing valid to serve: readiness waits on
 * it, so it is read again within this long of the backend answering again. */
#define BROKER_RETRY_URGENT_CAP_MS 2000
/* How often the token is looked up (lookup-self, +-10%) to learn that it was revoked
 * behind the broker's back, unless token_check says otherwise; 0 turns it off. */
#define BROKER_TOKEN_CHECK_DEFAULT_MS (30 * 1000LL)
/* How often repeated reads are summarised in the audit log unless audit_interval says. */
#define BROKER_AUDIT_INTERVAL_DEFAULT_MS (10 * 1000LL)
/* Distinct (peer, secret, key, version, result) kept by the audit between summaries. */
#define BROKER_AUDIT_ENTRIES_MAX 4096
/* Shortest token_check accepted (other than 0). */
#define BROKER_TOKEN_CHECK_MIN_MS 1000
/* Backend timeouts unless the vault object sets them: short, so that a stuck backend
 * cannot hold the scheduler (and shutdown) for long. */
#define BROKER_VAULT_CONNECT_TIMEOUT_MS 2000
#define BROKER_VAULT_TIMEOUT_MS 4000
/* Shortest refresh interval accepted. */
#define BROKER_REFRESH_MIN_MS 1000
/* Longest refresh, grace or retry duration accepted (30 days): the scheduler adds them to
 * monotonic times, which a duration near INT64_MAX would overflow. */
#define BROKER_DURATION_MAX_MS (30 * 24 * 3600 * 1000LL)
/* Longest lease or token TTL taken from the backend as it is (10 years); a longer one is
 * cut to this, so that expiry arithmetic cannot overflow. */
#define BROKER_TTL_MAX_S (10 * 366 * 24 * 3600LL)
/* Serving threads unless listen.threads gives a number ("auto", the default): this many,
 * or as many as the CPUs the broker may run on (its affinity mask) when they are fewer. More
 * threads than CPUs take turns on one: on one CPU, one thread measured 70,000-75,000 req/s
 * against 62,000-65,000 for two with a four-thread client, the same (51,000-53,000) with
 * an epoll client, and 228,000-233,000 against 98,000-99,000 on a guest that halt-polls
 * (docs/benchmarks.md, "Where polling pays"). */
#define BROKER_THREADS_DEFAULT 2
#define BROKER_THREADS_AUTO 0
#define BROKER_THREADS_MAX 64
/* How long a serving thread may poll for the next request before sleeping where that
 * pays (common/cpuidle.h; docs/internals/httpd.md, "Polling before sleeping"), unless
 * listen.poll_us gives a number. */
#define BROKER_POLL_US_DEFAULT 20
/* listen.poll_us "auto", the default: BROKER_POLL_US_DEFAULT where polling pays, else 0. */
#define BROKER_POLL_US_AUTO UINT_MAX
/* Socket connections, in all and per uid, unless listen says otherwise: one uid holding its
 * cap leaves room for 15 others at theirs. */
#define BROKER_CONNECTIONS_DEFAULT 1024
#define BROKER_CONNECTIONS_PER_UID_DEFAULT 64
/* How long a connection may take to send a request's headers (from being accepted or from
 * its previous answer) unless listen.header_timeout says otherwise. */
#define BROKER_HEADER_TIMEOUT_DEFAULT_MS 10000
/* A lease is revoked at least this long before its expiry (or not at all). */
#define BROKER_REVOKE_MARGIN_MS 500
/* Shutdown must be over within this time (the 5 s, with room for exit). */
#define BROKER_SHUTDOWN_BUDGET_MS 4000
/* Exec mode: most arguments of the command, and most variables exec.env may name. */
#define BROKER_EXEC_ARGS_MAX 256
#define BROKER_EXEC_ENV_MAX 256
/* Longest variable name in exec.env. */
#define BROKER_EXEC_ENV_NAME_MAX 128
/* Most strings (arguments and variables, inherited ones too) handed to the launcher. */
#define BROKER_EXEC_STRINGS_MAX 4096
/* Largest command and environment handed to the launcher, in one message: well under the
 * socket buffer of a Unix SOCK_SEQPACKET pair. */
#define BROKER_EXEC_MESSAGE_MAX (128u << 10)
/* How long a command has to exit after SIGTERM before SIGKILL, unless kill_timeout says. */
#define BROKER_EXEC_KILL_TIMEOUT_DEFAULT_MS (10 * 1000LL)

/* ---- configuration (broker/config.c) ----------------------------------------------- */

enum broker_kind { BROKER_KIND_AUTO = 0, BROKER_KIND_KV1, BROKER_KIND_KV2, BROKER_KIND_DYNAMIC };
enum broker_format { BROKER_FORMAT_JSON = 0, BROKER_FORMAT_ENV, BROKER_FORMAT_TEMPLATE };
/* Who reads an env file: both docker --env-file and systemd's EnvironmentFile (values they
 * read the same, written bare; others refused), systemd (double-quoted where needed,
 * line breaks kept), or docker (bare; only line breaks and NUL refused). */
enum broker_env_dialect { BROKER_ENV_PORTABLE = 0, BROKER_ENV_SYSTEMD, BROKER_ENV_DOCKER };

/* A secret read from a file or a mounted Secret volume, and the key that opens it: see the
 * file sources section below. */
struct broker_source_file;
struct broker_key_spec;

struct broker_file_spec {
	char *path;                 /* owned */
	enum broker_format format;
	enum broker_env_dialect dialect; /* format env only */
	char *template_text;        /* owned; the template, read from template_file if given */
	size_t template_len;
	char *origin;               /* owned: the template's name in messages: its
				     * template_file, or "FILE: KEY.PATH" of an inline one */
	struct broker_template *template; /* owned; compiled at load (format template) */
	size_t secret;              /* the secret whose file this is; SIZE_MAX: a template of
				     * its own (templates[]), which may read several */
	mode_t mode;                /* default 0400 */
	uid_t owner;                /* (uid_t)-1: leave */
	gid_t group;                /* (gid_t)-1: leave */
	char *pidfile;              /* owned; NULL: no signal */
	int signal;                 /* default SIGHUP */
	char *process;              /* owned: the command name the signalled process must have */
	uid_t process_uid;          /* its uid and the pidfile's owner; (uid_t)-1: owner, else
				     * the broker's own */
};

struct broker_secret_spec {
	char *name;                 /* owned */
	char *path;                 /* owned: the Vault path, e.g. "database/creds/app" */
	enum broker_kind kind;
	bool required;
	int64_t refresh_ms;         /* KV re-read interval */
	int64_t grace_ms;           /* old lease revoked this long after a rotation */
	bool restricted;            /* an allow object was given */
	uid_t *uids;                /* owned */
	size_t nuids;
	gid_t *gids;                /* owned */
	size_t ngids;
	struct broker_file_spec *file; /* owned; NULL: no file */
	struct broker_source_file *from_file; /* owned; NULL: read from the backend at path */
};

/* Exec mode: the command the broker starts once its secrets are loaded (broker/exec.c). */
enum broker_exec_restart { BROKER_RESTART_ALWAYS = 0, BROKER_RESTART_NEVER };

struct broker_exec_env {
	char *name;                 /* owned: the variable */
	size_t secret;              /* index into broker_config.secrets */
	char *key;                  /* owned: the key of that secret */
};

struct broker_exec_spec {
	char **command;             /* owned, NULL-terminated; ncommand 0 until given */
	size_t ncommand;
	struct broker_exec_env *env; /* owned */
	size_t nenv;
	enum broker_exec_restart restart;
	int restart_signal;         /* 0: restart on change; else send this signal instead */
	int64_t kill_timeout_ms;
};

struct broker_config {
	char *file;                 /* owned: the file name used in messages */
	struct lk_vault_config vault;
	char *socket_path;          /* owned */
	mode_t socket_mode;         /* default 0660 */
	uid_t socket_owner;         /* (uid_t)-1: leave */
	gid_t socket_group;         /* (gid_t)-1: leave */
	char *metrics_addr;         /* owned; NULL: no TCP metrics listener */
	unsigned threads;           /* BROKER_THREADS_AUTO: decided at start */
	unsigned poll_us;           /* BROKER_POLL_US_AUTO: decided at start */
	unsigned max_connections;
	unsigned max_connections_per_uid;
	int64_t header_timeout_ms;
	uid_t *admin_uids;          /* owned: the full view of /metrics and /v1/ready */
	size_t nadmin_uids;
	int64_t grace_ms;
	int64_t token_check_ms;     /* 0: no periodic lookup-self */
	int64_t audit_interval_ms;
	bool revoke_on_shutdown;
	bool require_mlock;         /* secret memory that cannot be locked is an error */
	bool seccomp;               /* the system-call allow-list after start-up */
	bool seccomp_set;           /* given in the file (else LATCHKEY_SECCOMP decides) */
	size_t metrics_series_max;  /* per metric (common/metrics.h) */
	int64_t retry_base_ms;
	int64_t retry_cap_ms;
	char *log_level;            /* owned; NULL: info */
	char *state_dir;            /* owned; NULL: no lease journal */
	struct broker_exec_spec *exec; /* owned; NULL: not in exec mode */
	struct broker_secret_spec *secrets; /* owned */
	size_t nsecrets;
	struct broker_key_spec *decryption_key; /* owned; NULL: none at the top level */
	bool backend;               /* something is read from the backend (a secret's path, a
				     * key's vault_path): without, there is no vault object to
				     * need, no login and no scheduler thread */
	struct broker_file_spec **templates; /* owned: the templates[] array */
	size_t ntemplates;
};

/* Fills cfg (which must be zeroed) from a parsed document; file names it in messages.
 * On error err says "FILE: KEY.PATH: what" and cfg is cleared. Does not read the
 * environment. */
int broker_config_parse(struct broker_config *cfg, const char *file, const json_t *root,
			struct lk_error *err) __attribute__((warn_unused_result));

/* Reads file, parses it, then fills unset vault settings from VAULT_* variables. */
int broker_config_load(struct broker_config *cfg, const char *file, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Frees everything; cfg is zeroed. NULL allowed. */
void broker_config_clear(struct broker_config *cfg);

/* Sets the exec command to argv[0..argc) (the words after "--"), turning exec mode on
 * with the defaults when the file has no "exec". 0, -ENOMEM or -E2BIG with err set. */
int broker_config_set_command(struct broker_config *cfg, char *const argv[], size_t argc,
			      struct lk_error *err) __attribute__((warn_unused_result));

/* Exec mode without a command (neither exec.command nor "--") is an error naming it. */
int broker_config_check_exec(const struct broker_config *cfg, struct lk_error *err)
	__attribute__((warn_unused_result));

/* True when name is a valid secret name. */
bool broker_name_valid(const char *name);

/* ---- resident code (broker/footprint.c) --------------------------------------------- */

struct broker_footprint_stats {
	size_t mappings;            /* executable file mappings whose pages were dropped */
	long long dropped_kb;       /* their resident kB before */
};

/* Drops the resident pages of the process's file-backed executable mappings that hold no
 * private page (MADV_DONTNEED): code that runs again faults back in from the page cache.
 * Returns 0, or -errno when /proc/self/smaps could not be read (nothing was dropped). */
int broker_footprint_drop_text(struct broker_footprint_stats *ret);

/* ---- guarded arena (broker/arena.c) ------------------------------------------------ */

/* Small blocks carved from large sodium_malloc regions (guard pages, mlock, no dump),
 * so a thousand small secrets cost a few locked pages, not a page each. Thread-safe. */
struct broker_arena;

/* How much memory the process may lock (broker_memlock_probe). */
struct broker_memlock {
	bool limited;               /* RLIMIT_MEMLOCK applies: finite, and no CAP_IPC_LOCK */
	size_t limit;               /* its soft value in bytes, when limited */
	bool require;               /* require_mlock: memory that cannot be locked is refused */
};

/* Reads RLIMIT_MEMLOCK and whether CAP_IPC_LOCK lifts it. */
void broker_memlock_probe(struct broker_memlock *ret);

/* The region size for a limit: 64 KiB, or less (down to 16 KiB, the largest block
 * class) so that several regions fit under a small limit. */
size_t broker_arena_region_size(const struct broker_memlock *ml);

/* owned: free with broker_arena_free (every block must have been released). ml NULL: no
 * limit known, nothing required. */
struct broker_arena *broker_arena_new(void);
struct broker_arena *broker_arena_new_with(const struct broker_memlock *ml);
void broker_arena_free(struct broker_arena *a);
/* A zeroed block of n bytes, or NULL (n == 0, n > LK_SECRET_MAX, no memory; errno ENOLCK
 * when the memory could not be locked and the arena requires it). Release with
 * broker_arena_release, which zeroes it. */
void *broker_arena_alloc(struct broker_arena *a, size_t n);
void broker_arena_release(struct broker_arena *a, void *p);
/* Bytes held in regions (for tests and metrics). */
size_t broker_arena_bytes(struct broker_arena *a);

struct broker_arena_stats {
	size_t region_size;
	size_t locked;              /* bytes of regions and large blocks mlock took */
	size_t unlocked;            /* bytes it refused: held, but they may be swapped */
	unsigned long long refused; /* allocations refused because they could not be locked */
};
void broker_arena_stats(struct broker_arena *a, struct broker_arena_stats *ret);

/* True when ms (probe) allows locking one region now: for require_mlock at start. */
bool broker_memlock_can_lock(const struct broker_memlock *ml);

/* ---- snapshots (broker/snapshot.c) ------------------------------------------------- */

/* One immutable version of a secret: the pre-rendered response body, the value of each
 * key, and lease facts. Reference-counted; the payload lives in the arena and is zeroed
 * when the last reference goes. */
struct broker_kv {
	const char *key;            /* NUL-terminated */
	const char *value;          /* the string value, or compact JSON for other types */
	size_t value_len;
};

struct broker_lease_info {
	bool leased;                /* a lease_id came with it */
	bool renewable;
	int64_t ttl_s;              /* granted by the last read or renewal */
	int64_t expires_mono_ms;    /* 0: never */
	int64_t expires_real_ms;    /* 0: never */
};

struct broker_snapshot {
	atomic_uint refs;
	struct broker_arena *arena; /* borrowed */
	uint64_t version;
	struct broker_lease_info lease;
	unsigned char digest[32];   /* BLAKE2b of the canonical data */
	char *mem;                  /* the arena block */
	const char *body;           /* {"name","version","data","lease"} + "\n" */
	size_t body_len;
	const char *data_json;      /* compact, sorted keys; inside body, not NUL-terminated */
	size_t data_len;
	struct broker_kv *keys;     /* sorted by key */
	size_t nkeys;
};

/* Digest of the canonical (compact, sorted) form of data. 0 or -ENOMEM/-E2BIG/-ENOLCK
 * (memory that could not be locked, under require_mlock). */
int broker_data_digest(struct broker_arena *a, const json_t *data, unsigned char out[32])
	__attribute__((warn_unused_result));

/* A new snapshot with one reference. data (borrowed) must be an object. owned: release
 * with broker_snapshot_unref. 0, -EINVAL, -E2BIG, -ENOMEM or -ENOLCK. */
int broker_snapshot_new(struct broker_arena *a, const char *name, uint64_t version,
			const json_t *data, const struct broker_lease_info *lease,
			struct broker_snapshot **ret) __attribute__((warn_unused_result));

/* The same data and version with new lease facts (after a renewal). */
int broker_snapshot_relabel(const struct broker_snapshot *old, const char *name,
			    const struct broker_lease_info *lease, struct broker_snapshot **ret)
	__attribute__((warn_unused_result));

struct broker_snapshot *broker_snapshot_ref(struct broker_snapshot *s);
/* Drops a reference; the last one zeroes and frees. NULL allowed. Usable as a release
 * callback (void *). */
void broker_snapshot_unref(struct broker_snapshot *s);
void broker_snapshot_release(void *s);

/* The value of key, borrowed from s, or NULL. */
const struct broker_kv *broker_snapshot_key(const struct broker_snapshot *s, const char *key);

/* How much earlier than the monotonic clock says the wall clock may end a lease. */
#define BROKER_CLOCK_DRIFT_MAX_MS 1000
/* True when the snapshot's credential has expired at now_mono_ms, or, within the last
 * BROKER_CLOCK_DRIFT_MAX_MS of it, the expiry it states (wall clock) has passed. */
bool broker_snapshot_expired(const struct broker_snapshot *s, int64_t now_mono_ms);

/* ---- scheduling math (broker/scheduler.c; pure, for tests) ------------------------- */

/* When to renew a lease or token granted ttl_ms at now: 2/3 of ttl, +-10% jitter from b. */
int64_t broker_renew_at(int64_t now_ms, int64_t ttl_ms, struct lk_backoff *rng);
/* When to fetch a replacement for a credential issued at issued_ms that expires at
 * expires_ms: while at least 1/5 of its lifetime is left (aims at 1/4..3/10 left); never
 * before now. */
int64_t broker_rotate_at(int64_t now_ms, int64_t issued_ms, int64_t expires_ms,
			 struct lk_backoff *rng);
/* How long to wait before retrying a failed read or renewal: the next step of bo (capped
 * exponential backoff, full jitter), with its cap cut to BROKER_RETRY_URGENT_CAP_MS when
 * urgent (a required secret with nothing valid to serve). */
int64_t broker_retry_delay(struct lk_backoff *bo, bool urgent);
/* When to revoke a replaced lease: now + grace, but never past expires_ms minus
 * BROKER_REVOKE_MARGIN_MS (never before now); expires_ms 0 means no expiry. */
int64_t broker_revoke_at(int64_t now_ms, int64_t grace_ms, int64_t expires_ms);
/* The next KV re-read: refresh +-10%. */
int64_t broker_refresh_at(int64_t now_ms, int64_t refresh_ms, struct lk_backoff *rng);
/* When a lease or token granted ttl_s seconds expires, for a request sent at sent_ms: the
 * backend starts the TTL when it answers, which is after the request left, so counting
 * from the send time never places the expiry later than the backend's. ttl_s is cut to
 * BROKER_TTL_MAX_S; 0 or less gives sent_ms. */
int64_t broker_expires_at(int64_t sent_ms, int64_t ttl_s);

/* The secret's data in a read's answer (borrowed from ls): the inner data of a KV v2
 * answer, else the answer's data; NULL when a KV v2 version has none (deleted or
 * destroyed). */
const json_t *broker_secret_data(const struct broker_secret_spec *sp,
				 const struct lk_vault_lease_secret *ls);

/* ---- live state -------------------------------------------------------------------- */

enum broker_state {
	BROKER_STATE_PENDING = 0,   /* not loaded yet */
	BROKER_STATE_VALID,         /* loaded, unexpired, backend answering */
	BROKER_STATE_STALE,         /* loaded and unexpired, but the last backend call failed */
	BROKER_STATE_EXPIRED,       /* loaded but expired: never served */
	BROKER_STATE_REVOKED,       /* its lease went with the backend token: never served */
	BROKER_STATE_FAILED,        /* never loaded, the backend call failed */
};
#define BROKER_STATE_COUNT 6

const char *broker_state_name(enum broker_state s);

/* Copies src (NULL: "") into dst of size n, cut to fit, always NUL-terminated. */
void broker_copy_text(char *dst, size_t n, const char *src);

enum broker_action {
	BROKER_ACT_FETCH = 0,       /* first read, rotation or KV refresh */
	BROKER_ACT_RENEW,           /* lease renewal */
};

struct broker_metrics;

struct broker_entry {
	const struct broker_secret_spec *spec; /* borrowed from the config */
	size_t index;

	pthread_mutex_t lock;       /* guards the members down to next_mono_ms */
	struct broker_snapshot *current;
	bool revoked;               /* current was withdrawn: its lease went with the token */
	char *shown_lease_id;       /* owned: current's lease id, for admins' /v1/ready */
	bool failing;               /* the last backend call for it failed */
	char reason[BROKER_REASON_MAX];
	int64_t last_renewal_real_ms;
	int64_t next_mono_ms;
	enum broker_action next_action;

	/* scheduler thread only */
	uint64_t version;
	char *lease_id;             /* owned */
	uint64_t lease_gen;         /* the login (broker.token_gen) that read the lease */
	int64_t issued_mono_ms;
	int64_t expires_mono_ms;
	int64_t expires_real_ms;    /* for the journal */
	int64_t lease_duration_s;   /* as first granted: the renewal increment */
	int64_t learned_life_ms;    /* issue to capped expiry of an earlier credential; 0: unknown */
	bool renewable;
	bool loaded;
	struct lk_backoff backoff;
};

struct broker_revocation {
	char *lease_id;             /* owned */
	size_t entry;               /* which secret it belonged to; SIZE_MAX: one the
				     * configuration no longer has (from the journal) */
	const char *secret;         /* its name: the spec's, or owned_secret */
	char *owned_secret;         /* owned; NULL when the spec's name is used */
	uint64_t gen;               /* the login that read it; 0: an earlier run */
	bool retired;               /* its secret left the configuration (broker/reload.c) */
	int64_t at_mono_ms;
	int64_t expires_mono_ms;    /* 0: unknown */
	int64_t expires_real_ms;    /* for the journal; 0: unknown */
};

struct broker_waiter;
struct broker_exec;

/* What became of a file's last render. */
enum broker_output_state {
	BROKER_OUTPUT_PENDING = 0,  /* a secret it reads is not loaded yet */
	BROKER_OUTPUT_WRITTEN,      /* the last render is in the file */
	BROKER_OUTPUT_FAILED,       /* the last render failed: the file keeps what it had */
};

/* A file the broker writes: a secret's file, or an entry of templates[]. */
struct broker_output {
	const struct broker_file_spec *fs; /* borrowed from the config */
	pthread_mutex_t lock;       /* guards state, reason and written_real_ms */
	enum broker_output_state state;
	char reason[BROKER_REASON_MAX]; /* why it failed: origin:line and key, never a value */
	int64_t written_real_ms;    /* 0: never written by this run */
	/* under broker.render_lock */
	bool written;
	unsigned char digest[32];   /* BLAKE2b of the bytes last written */
};

struct broker {
	struct broker_config *cfg;  /* borrowed; a reload swaps its contents (broker/reload.c) */
	/* The generation lock: whatever reads entries, the config or the vault client (request
	 * handlers, the sweeper, the scheduler's and the file thread's each round) holds it for
	 * reading; a reload holds it for writing while it swaps them. Taken before any other
	 * broker lock, and never twice by one thread. */
	pthread_rwlock_t gen_lock;
	struct lk_vault_client *vault;
	struct broker_arena *arena;
	struct broker_entry *entries;
	size_t n;
	size_t *by_name;            /* entries' indices sorted by name, for broker_find */
	struct broker_output *outputs; /* the secrets' files, then templates[] */
	size_t noutputs;
	pthread_mutex_t render_lock; /* one render of the outputs at a time */
	struct broker_metrics *metrics;
	struct broker_audit *audit;
	int64_t started_mono_ms;
	struct broker_memlock memlock;
	atomic_bool warned_unlocked;

	/* scheduler */
	pthread_t thread;
	bool thread_running;
	bool thread_abandoned;      /* still in a backend call at exit: state not freed */
	pthread_mutex_t lock;       /* guards stopping and the token status below */
	pthread_cond_t cond;
	bool stopping;
	bool shutdown_done;         /* the scheduler finished its shutdown revocations */
	bool logged_in;             /* holds a token it believes valid */
	uint64_t token_gen;         /* bumped at every login: which token read a lease */
	int64_t token_check_next_mono_ms;
	bool token_check_off;       /* lookup-self is denied to this token */
	int64_t last_login_mono_ms;
	int64_t token_next_mono_ms;
	int64_t token_expires_mono_ms; /* 0: never */
	bool token_renewable;
	int64_t token_ttl_s;
	bool token_capped;
	struct lk_backoff token_backoff;
	bool backend_ok;
	char backend_reason[BROKER_REASON_MAX];
	size_t backend_reason_entry; /* the secret whose call failed; SIZE_MAX: the token's */
	/* A new login a reload asked for (broker/reload.c): until it succeeds the token held
	 * goes on serving, and when it fails the token's timers are put back as they were. */
	bool reload_login;
	bool reload_prev_capped;
	int64_t reload_prev_next_mono_ms;
	char login_reason[BROKER_REASON_MAX]; /* why the reload's login failed; "" */
	/* main thread: BLAKE2b of the auth method's credential files (AppRole role_id and
	 * secret_id, Kubernetes JWT) as the last start or reload read them */
	unsigned char credentials_digest[32];
	atomic_bool announced_ready;

	struct broker_revocation *revocations; /* scheduler thread only */
	size_t nrevocations;
	bool journal_dirty;         /* scheduler thread only: the journal is behind */
	bool journal_failing;
	size_t shutdown_left;       /* leases the shutdown could not revoke */

	/* server */
	struct lk_httpd *httpd;
	struct lk_httpd *metrics_httpd;
	unsigned threads;           /* serving threads (listen.threads, decided) */
	unsigned poll_us;           /* what the serving threads poll (listen.poll_us, decided) */
	const char *poll_why;       /* static: what decided it */
	pthread_mutex_t waiters_lock;
	struct broker_waiter *waiters;
	size_t nwaiters;
	pthread_t sweeper;
	bool sweeper_running;
	pthread_cond_t sweeper_cond;
	bool sweeper_stop;

	/* file sources and their decryption keys (broker/source_file.c, broker/decrypt.c) */
	struct broker_keyring *keyring;
	struct broker_files *files;
	struct broker_exec *exec;   /* owned (broker_exec_free); NULL: not in exec mode */
};

/* Sets up b for cfg (borrowed, must outlive b): entries, arena, metrics, vault client.
 * 0 or a negative errno with err set. */
int broker_init(struct broker *b, struct broker_config *cfg, struct lk_error *err)
	__attribute__((warn_unused_result));
void broker_fini(struct broker *b);

/* Current snapshot with a reference (NULL when none); the caller unrefs. */
struct broker_snapshot *broker_entry_snapshot(struct broker_entry *e);
/* The entry's state at now. */
enum broker_state broker_entry_state(struct broker_entry *e, int64_t now_mono_ms);
/* True when every required secret is loaded and unexpired; reason says why not, naming
 * the secret only when peer may read it (peer NULL, or an admin: always). */
bool broker_ready(struct broker *b, char *reason, size_t reasonlen);
bool broker_ready_for(struct broker *b, const struct lk_peer *peer, char *reason,
		      size_t reasonlen);
/* True when peer is one of listen.admin_uids: it sees every secret's metadata. */
bool broker_peer_admin(const struct broker *b, const struct lk_peer *peer);
struct broker_entry *broker_find(struct broker *b, const char *name);
/* The indices 0..n-1 sorted by secrets[i].name (owned: free), for b->by_name; NULL when out
 * of memory. */
size_t *broker_name_index(const struct broker_secret_spec *secrets, size_t n);

/* SIGHUP (broker/reload.c): reads b->cfg->file again and applies it: secrets added are
 * read, those removed have their leases revoked and their memory wiped, those whose source
 * changed are read anew (file sources too: watched, or no longer); the vault client is made
 * again (TLS files re-read) and logs in again when the auth settings, the token file or
 * the contents of the AppRole or Kubernetes credential files changed, the token held
 * serving until that login succeeds (and on when it fails). A file that does not parse, or
 * that changes a setting only a restart can change, is refused: err names the file and
 * the key, and the running configuration goes on serving. Main thread only. */
int broker_reload(struct broker *b, struct lk_error *err) __attribute__((warn_unused_result));

/* The BLAKE2b digest of the contents of the credential files vc's auth method reads at a
 * login (AppRole role_id_file and secret_id_file, Kubernetes jwt_file; none for a token,
 * whose file a reload compares itself); a file that cannot be read counts with its error.
 * The contents go nowhere else. */
void broker_credentials_digest(const struct lk_vault_config *vc, unsigned char out[32]);

/* The scheduler thread (broker/scheduler.c). */
int broker_scheduler_start(struct broker *b) __attribute__((warn_unused_result));
/* Asks the scheduler to stop, lets it revoke leases (when configured) within the budget,
 * and joins it. */
void broker_scheduler_stop(struct broker *b);

/* ---- server (broker/server.c) ------------------------------------------------------ */

int broker_server_start(struct broker *b, struct lk_error *err) __attribute__((warn_unused_result));
/* Stops accepting, answers what is in flight (suspended readers get the current
 * snapshot), removes the socket. */
void broker_server_stop(struct broker *b);
/* Wakes the blocking readers of entry (its version changed). */
void broker_server_notify(struct broker *b, size_t entry);
/* Reload, under the generation lock held for writing: moves each blocking reader to
 * new_of_old[its entry]; one whose secret is gone (SIZE_MAX) is woken to answer 404. */
void broker_server_remap(struct broker *b, const size_t *new_of_old);
/* True when peer may read spec. */
bool broker_peer_allowed(const struct broker_secret_spec *spec, const struct lk_peer *peer);

/* ---- the online check (broker/online.c) --------------------------------------------- */

/* `--check-config FILE --online`: logs in with cfg's method, asks sys/capabilities-self
 * about every secret's path, reads each once (revoking a lease the read creates, and the
 * token when the check logged in for it) and prints, to out, a table or (as_json) a JSON
 * document with the fix for each failure; never a value. Returns the exit status: 0 when
 * every secret could be read, 1 otherwise, 2 when the vault settings are invalid. */
int broker_check_online(struct broker_config *cfg, bool as_json, FILE *out);

/* The namespace and name of the service account a Kubernetes JWT (len bytes, not
 * NUL-terminated) names in its claims (projected or legacy form); the signature is not
 * checked. 0, -EINVAL (not a JWT, no such claims, or a claim with control characters or
 * quotes), -ENAMETOOLONG or -ENOMEM. The ret_ buffers are set only on success. */
int broker_jwt_service_account(const char *jwt, size_t len, char *ret_namespace, size_t nslen,
			       char *ret_name, size_t namelen) __attribute__((warn_unused_result));

/* ---- the system-call allow-list (broker/seccomp.c) ---------------------------------- */

/* Installs the allow-list on every thread (no_new_privs first); from then on a call
 * outside it kills the process (SIGSYS), or is only logged in a sanitizer build. */
int broker_seccomp_install(struct lk_error *err) __attribute__((warn_unused_result));
/* False in sanitizer builds: calls outside the list are logged, not killed. */
bool broker_seccomp_enforcing(void);

/* ---- exec mode (broker/exec.c) ----------------------------------------------------- */

/* What the broker's hardening changes and the command gets back as it was. */
struct broker_exec_inherit {
	mode_t umask;
	struct rlimit core;
};

/* Forks the launcher: call while the broker is one thread, before the allow-list. In the
 * launcher cfg is cleared and the call never returns. *ret owned: broker_exec_free. */
int broker_exec_launcher_start(struct broker_config *cfg,
			       const struct broker_exec_inherit *inh, struct broker_exec **ret,
			       struct lk_error *err) __attribute__((warn_unused_result));
/* Starts the supervisor thread of b->exec (set right after broker_init, before the
 * scheduler starts, since the scheduler calls broker_exec_notify): it starts the command
 * once the secrets are loaded. Call from the thread that waits for signals: it is woken
 * with SIGUSR1 when broker_exec_done. */
int broker_exec_start(struct broker *b) __attribute__((warn_unused_result));
/* A secret got a new version (the scheduler and the file sources' thread, where they
 * render files). No-op outside exec mode. */
void broker_exec_notify(struct broker *b, size_t entry);
/* Passes sig on to the command, if it runs. */
void broker_exec_forward(struct broker *b, int sig);
/* The broker was asked to stop with sig: forwarded, then SIGKILL after kill_timeout;
 * broker_exec_done says when the command is gone. */
void broker_exec_stop(struct broker *b, int sig);
/* True once the command is over for good (it exited, or could not start, or the broker
 * stopped before it started); *ret_status is the broker's exit status then: the
 * command's exit code, or 128 + its signal. */
bool broker_exec_done(struct broker *b, int *ret_status);
/* Stops the thread and closes the pair (the launcher then exits). NULL allowed; returns
 * NULL. */
struct broker_exec *broker_exec_free(struct broker_exec *x);
/* Appends the launcher's message for the command to out (a wipe buffer): the command,
 * the environment without VAULT_* and LATCHKEY_*, and exec.env from the current
 * snapshots; versions (b->n, may be NULL) get the version of each secret used. err names
 * the variable, the secret and the key, never a value. */
int broker_exec_env_build(struct broker *b, struct lk_buf *out, uint64_t *versions,
			  struct lk_error *err) __attribute__((warn_unused_result));
/* Parses a launcher message in place: argv and envp (capacities counted with their NULL
 * terminator) point into buf. 0, -EINVAL (malformed) or -E2BIG. Pure; for the fuzz
 * target. */
int broker_exec_blob_parse(char *buf, size_t len, char **argv, size_t argv_cap, char **envp,
			   size_t envp_cap) __attribute__((warn_unused_result));

/* ---- the lease journal (broker/journal.c) ------------------------------------------ */

/* A lease an earlier run left, from the journal. */
struct broker_journal_lease {
	char *lease_id;             /* owned */
	char *secret;               /* owned; "" when unnamed */
	int64_t expires_real_ms;    /* 0: unknown */
};

/* state_dir/leases.json into out; -ENOENT without a state_dir. */
int broker_journal_path(const struct broker_config *cfg, char *out, size_t outlen);
/* The journal's leases (none when there is no journal). *ret owned:
 * broker_journal_leases_free. An unreadable entry is skipped; an unreadable file is an
 * error naming it. */
int broker_journal_load(const struct broker_config *cfg, struct broker_journal_lease **ret,
			size_t *ret_n, struct lk_error *err) __attribute__((warn_unused_result));
void broker_journal_leases_free(struct broker_journal_lease *l, size_t n);
/* Writes the leases b holds (current and waiting for revocation), atomically, mode 0600. */
int broker_journal_save(struct broker *b, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Loads the journal into b's revocations (scheduler not started yet). */
int broker_inherit_journal(struct broker *b, struct lk_error *err)
	__attribute__((warn_unused_result));

/* ---- the audit log (broker/audit.c) ------------------------------------------------ */

/* Logs the first read of each (peer, secret, key, version, result) at once and counts the
 * repeats, summarised once per interval; bounded by max_entries (reads past it are counted
 * as not itemised). Thread-safe. owned: broker_audit_free. */
struct broker_audit;
struct broker_audit *broker_audit_new(size_t max_entries, int64_t interval_ms);
void broker_audit_free(struct broker_audit *a);
/* result is a static string ("ok", "forbidden", ...); key may be NULL. */
void broker_audit_read(struct broker_audit *a, const struct lk_peer *peer, const char *secret,
		       const char *key, uint64_t version, const char *result);
/* Logs the summaries due at now (all: every count, at shutdown); returns when the next
 * is due. */
int64_t broker_audit_flush(struct broker_audit *a, int64_t now_mono_ms, bool all);

/* ---- files (broker/render.c) ------------------------------------------------------- */

/* Renders o from the current snapshots of the secrets it reads and, when the bytes differ
 * from what it last wrote, writes them to its path atomically (temporary file in the same
 * directory, fsync, rename) with its mode, then signals the pidfile's process when one is
 * named; unchanged bytes are neither written nor signalled. Records the outcome in o.
 * Returns 1 (written), 0 (unchanged), -EAGAIN (a secret it reads is not loaded: nothing
 * written) or another negative errno with err naming the file or the template's
 * origin:line and key, never a value; the file then keeps what it had. Under
 * render_lock. */
int broker_output_render(struct broker *b, struct broker_output *o, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Renders every output that reads entry (its version just changed) with
 * broker_output_render, logging failures; takes render_lock. Any thread. */
void broker_render_outputs(struct broker *b, size_t entry);
/* Renders every output once (after a reload); takes render_lock. */
void broker_render_all(struct broker *b);
/* The outputs of cfg, each secret's file then templates[], borrowing cfg's file specs
 * (owned: broker_outputs_free). 0 or -ENOMEM. */
int broker_outputs_new(const struct broker_config *cfg, struct broker_output **ret,
		       size_t *ret_n) __attribute__((warn_unused_result));
void broker_outputs_free(struct broker_output *o, size_t n);
/* For each of o whose path one of old has: what old knew of it (its state and the digest
 * of the bytes last written), so that unchanged bytes are not written again. */
void broker_outputs_carry(struct broker_output *o, size_t n, const struct broker_output *old,
			  size_t oldn);
/* True when o's content comes from secret entry. */
bool broker_output_reads(const struct broker_output *o, size_t entry);
/* The name of o's state ("pending", "written", "failed"). */
const char *broker_output_state_name(enum broker_output_state st);
/* Sends fs->signal to the process of fs->pidfile once the pidfile and the process are
 * checked (broker/signal.c): refused with -EPERM and err saying why otherwise. */
int broker_signal_pidfile(const struct broker_file_spec *fs, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Renders s into out (a wipe buffer) in fs->format; a template is rendered with s as the
 * secret fs->secret (and no other loaded). For tests. */
int broker_render(const struct broker_file_spec *fs, const struct broker_snapshot *s,
		  struct lk_buf *out, struct lk_error *err) __attribute__((warn_unused_result));

/* ---- metrics (broker/metrics.c) ---------------------------------------------------- */

enum broker_route {
	BROKER_ROUTE_LIST = 0, BROKER_ROUTE_SECRET, BROKER_ROUTE_KEY, BROKER_ROUTE_HEALTH,
	BROKER_ROUTE_READY, BROKER_ROUTE_METRICS, BROKER_ROUTE_OTHER,
};
#define BROKER_ROUTE_COUNT 7

enum broker_event {
	BROKER_EV_RENEWAL = 0, BROKER_EV_RENEWAL_FAILURE, BROKER_EV_ROTATION,
	BROKER_EV_ROTATION_FAILURE, BROKER_EV_REVOCATION, BROKER_EV_REVOCATION_FAILURE,
	BROKER_EV_REFRESH, BROKER_EV_REFRESH_FAILURE,
};
#define BROKER_EV_COUNT 8

struct broker_metrics *broker_metrics_new(struct broker *b);
void broker_metrics_free(struct broker_metrics *m);
void broker_metrics_request(struct broker_metrics *m, enum broker_route route, unsigned code,
			    int64_t elapsed_ns);
void broker_metrics_event(struct broker_metrics *m, size_t entry, enum broker_event ev);
void broker_metrics_login(struct broker_metrics *m, bool ok);
void broker_metrics_token_renewal(struct broker_metrics *m, bool ok);
void broker_metrics_token_lost(struct broker_metrics *m);
void broker_metrics_backend(struct broker_metrics *m, const char *op, int64_t elapsed_ms);
/* Exec mode: whether the command runs, and one restart more when restarted. */
void broker_metrics_exec(struct broker_metrics *m, bool up, bool restarted);
/* A SIGHUP reload's outcome (latchkey_broker_reloads_total{result}). */
void broker_metrics_reload(struct broker_metrics *m, bool ok);
/* Reload, under the generation lock held for writing, after b->entries became the new
 * array of new_n entries: old_of_new[i] is the old index of entry i (SIZE_MAX: new); the
 * series of the secrets no longer there (old_names[j] for every old j no new entry takes)
 * are removed. 0 or -ENOMEM (nothing changed). */
int broker_metrics_remap(struct broker_metrics *m, const size_t *old_of_new, size_t new_n,
			 const char *const *old_names, size_t old_n)
	__attribute__((warn_unused_result));
/* Renders the registry (refreshing the per-secret gauges first). */
int broker_metrics_render(struct broker_metrics *m, struct lk_buf *out);
/* Copies the lines of the text format in (len bytes) to out, leaving out every sample
 * whose secret="NAME" label names a secret keep(arg, NAME) refuses. Pure; for the socket's
 * /metrics, which shows a peer only the secrets it may read. */
int broker_metrics_filter(const char *in, size_t len, bool (*keep)(void *arg, const char *name),
			  void *arg, struct lk_buf *out);

/* ---- requests (broker/route.c; pure, for the fuzz target) ---------------------------- */

/* What a path asks for. name and key point into, or are cut from, the path. */
struct broker_route_req {
	enum broker_route route;
	char name[BROKER_NAME_MAX + 1]; /* secret and key routes: the name as asked, cut */
	bool name_ok;               /* 1 to BROKER_NAME_MAX bytes */
	const char *key;            /* key route: into the path; NULL otherwise */
	bool key_ok;                /* not empty */
};

/* Classifies a (percent-decoded) path; returns the route, also in ret->route. */
enum broker_route broker_route_parse(const char *path, struct broker_route_req *ret);
/* ?index=N&wait=D: 0 (a blocking read), 1 (no index: a plain read) or -EINVAL. The wait
 * defaults to BROKER_WAIT_DEFAULT_MS and is cut to BROKER_WAIT_MAX_MS. */
int broker_parse_blocking(const char *index, const char *wait, uint64_t *ret_index,
			  int64_t *ret_wait_ms);
/* True when an If-None-Match header value matches the ETag "<version>" (or is "*"). */
bool broker_etag_matches(const char *if_none_match, uint64_t version);

/* ---- file sources (broker/source_file.c) and their keys (broker/decrypt.c) ---------- */

/* A secret can be read from a file or from a directory (a mounted Kubernetes Secret
 * volume) instead of the backend, and its values opened there: the sync controller's
 * encryption at source writes every value as lk1 text bound to "namespace/name/key".
 * One thread watches every source with inotify. docs/broker.md, "File sources". */

/* Directory entries looked at in one read (the keys themselves are capped at
 * BROKER_KEYS_MAX): a directory of junk cannot make a read long. */
#define BROKER_FILE_ENTRIES_MAX (4 * BROKER_KEYS_MAX)
/* A change seen is read this much later, so that a burst of events is one read. */
#define BROKER_FILE_SETTLE_MS 20
/* A read that met an update in progress (a file gone between the listing and the open)
 * is tried again this soon, at most BROKER_FILE_AGAIN_MAX times in a row before it counts
 * as a failure. */
#define BROKER_FILE_AGAIN_MS 50
#define BROKER_FILE_AGAIN_MAX 100
/* How often a source that cannot be watched (no inotify instance or watch to be had) is
 * read instead. */
#define BROKER_FILE_POLL_MS 2000
/* The kubelet's atomic writer: the link to the timestamped directory that holds the
 * current files of a Secret volume. */
#define BROKER_KUBELET_DATA "..data"

/* A decryption key: an lk1 private key file (mode 0600 or stricter), or a field of a KV
 * secret in the backend, read once at start. */
struct broker_key_spec {
	char *file;                 /* owned; NULL: from the backend */
	char *vault_path;           /* owned; NULL: from a file */
	char *field;                /* owned: the KV field holding the key file's text */
	char *where;                /* owned: its key path in the configuration, for messages
				     * ("decryption_key", "secrets[2].decryption_key") */
};

struct broker_source_file {
	char *path;                 /* owned: absolute; a directory or a single file */
	char *key;                  /* owned; NULL: a single file's key is its base name */
	bool decrypt;               /* every value is lk1 text bound to k8s_namespace/k8s_name/key */
	char *k8s_namespace;        /* owned (decrypt only); broker_source_file_resolve fills it
				     * from $POD_NAMESPACE when the file does not say */
	char *k8s_name;             /* owned (decrypt only); default: the secret's name */
	struct broker_key_spec *decryption_key; /* owned; NULL: the top-level one */
};

struct lk_cfg;
struct lk_keyset;

/* The file-source members of secret obj (from_file, decrypt, k8s_secret, key and
 * decryption_key) into sp->from_file (owned by sp); 0 and nothing set when obj has no
 * from_file. The top-level decryption_key must have been parsed into cfg already. */
int broker_source_file_parse(struct lk_cfg *c, const struct broker_config *cfg,
			     const json_t *obj, struct broker_secret_spec *sp)
	__attribute__((warn_unused_result));
/* Frees; NULL allowed. */
void broker_source_file_free(struct broker_source_file *fs);
/* What only all the secrets together say, once they are parsed: sets cfg->backend, and
 * fails on a top-level decryption_key that no secret uses. */
int broker_source_file_check_all(struct lk_cfg *c, struct broker_config *cfg)
	__attribute__((warn_unused_result));
/* Fills in what the environment decides ($POD_NAMESPACE); err "FILE: secrets[i]...: why". */
int broker_source_file_resolve(struct broker_config *cfg, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Reads fs once: a directory gives one key per regular file (in the kubelet's layout the
 * files of the directory ..data points to, read through one descriptor so that a swap
 * cannot mix two versions; in a plain directory the entries not beginning with '.'), a
 * file one key. With decrypt, every value must be lk1 text that opens with ks under the
 * label "namespace/name/key". *ret_data: a new object holding the values (plaintext:
 * jansson must wipe on free). On failure reason (cut to reasonlen) names the file, the
 * key and why, never a value. Returns 0, -EAGAIN (an update in progress: read again
 * soon), -ENOENT (the path is not there), or another negative errno. */
int broker_source_file_read(const struct broker_source_file *fs, const struct lk_keyset *ks,
			    json_t **ret_data, char *reason, size_t reasonlen)
	__attribute__((warn_unused_result));

/* The watcher thread: reads every file source, then again on inotify events (a write, a
 * rename such as the kubelet's ..data swap, a creation or removal in the directory),
 * every refresh as a safety net, and after a failure with the entry's backoff. Loads the
 * key files first: an unreadable one, or one others may read, is an error (exit 2). The
 * inotify instance is made also without a file source (before the allow-list, which does
 * not let one be made), and the thread started then only if there is one: the reload
 * that adds the first starts it (broker_files_prepare). */
int broker_files_start(struct broker *b, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Stops and joins the thread; broker_files_free (from broker_fini) frees its state. */
void broker_files_stop(struct broker *b);
void broker_files_free(struct broker *b);
/* A decryption key came in from the backend: the sources waiting for it are read. */
void broker_files_wake(struct broker *b);
/* Reload, while the running configuration serves: the watches and the keys of nc (the
 * new configuration), its key files read, and its keys in the backend named as before read
 * again through client (borrowed; NULL: not read again), as broker_keyring_prepare says.
 * *ret owned: handed to broker_files_remap, or broker_files_next_free. */
struct broker_files_next;
int broker_files_prepare(struct broker *b, const struct broker_config *nc,
			 struct lk_vault_client *client, struct broker_files_next **ret,
			 struct lk_error *err) __attribute__((warn_unused_result));
void broker_files_next_free(struct broker_files_next *next);
/* Reload, under the generation lock held for writing (b->cfg and b->entries already the
 * new ones, new_n of them): a file source whose entry moved (moved[i], from old_of_new[i])
 * keeps its watch and timers (but is read at once when its decryption key was replaced);
 * a new one, or one whose source changed, is read at once; the watch of one removed goes.
 * next is taken. */
void broker_files_remap(struct broker *b, const size_t *old_of_new, const bool *moved,
			size_t new_n, struct broker_files_next *next);

/* decryption_key-shaped obj[key] into *ret (owned: broker_key_spec_free); where is its
 * key path for later messages. 0 with *ret untouched when obj has no such member. */
int broker_key_spec_parse(struct lk_cfg *c, const json_t *obj, const char *key,
			  struct broker_key_spec **ret) __attribute__((warn_unused_result));
void broker_key_spec_free(struct broker_key_spec *k);
/* The length of a key file's BLAKE2b digest, kept to tell a changed file at a reload. */
#define BROKER_KEY_DIGEST_LEN 32
/* Reads an lk1 private key file: a regular file no one but its owner may read (mode 0600
 * or stricter) holding "lk1priv:...". *ret owned (lk_keyset_free): the key in sodium
 * memory; ret_digest (NULL: not wanted) the BLAKE2b digest of the file's bytes. why says
 * what is wrong, naming the file and never its content. */
int broker_key_file_load(const char *path, struct lk_keyset **ret,
			 unsigned char ret_digest[BROKER_KEY_DIGEST_LEN], char *why,
			 size_t whylen) __attribute__((warn_unused_result));
/* For --check-config: every key file the secrets use is loaded and dropped again. */
int broker_keys_check(const struct broker_config *cfg, struct lk_error *err)
	__attribute__((warn_unused_result));

/* The keys the file sources use (b->keyring): key files loaded now (errors name the
 * config key: "FILE: decryption_key.file: why"), backend keys read by the scheduler. */
int broker_keyring_new(struct broker *b, struct lk_error *err) __attribute__((warn_unused_result));
void broker_keyring_free(struct broker *b);
/* The key sp's values open with (borrowed from cfg): its own, else the top-level one;
 * NULL when it does not decrypt. */
const struct broker_key_spec *broker_key_of(const struct broker_config *cfg,
					    const struct broker_secret_spec *sp);
/* True when a and b name the same key (file, or vault_path and field); NULL equals NULL. */
bool broker_key_spec_equal(const struct broker_key_spec *a, const struct broker_key_spec *b);
/* broker_files_prepare's and broker_files_remap's parts in broker/decrypt.c: the keyring of
 * nc, each key named as before taking over the old one's (at remap), every key file read
 * now: a new one is loaded, and one named as before replaces the old key when its bytes
 * changed (an unreadable or invalid one is an error: "FILE: KEY.file: why"). A key in the
 * backend named as before that holds a key is read again through client (borrowed; NULL:
 * not read again) by the same rules ("FILE: KEY.vault_path: the decryption key (PATH,
 * field F) could not be read: why"); a new one, or one still waited for, is read by the
 * scheduler once the reload is applied. *ret owned: broker_keyring_remap takes it, or
 * broker_keyring_next_free. */
struct broker_keyring_next;
int broker_keyring_prepare(struct broker *b, const struct broker_config *nc,
			   struct lk_vault_client *client, struct broker_keyring_next **ret,
			   struct lk_error *err) __attribute__((warn_unused_result));
void broker_keyring_next_free(struct broker_keyring_next *next);
/* Under the generation lock held for writing; next is taken. ret_rekeyed[i] (new_n of
 * them) says whether new entry i opens with a key that replaced the one it had. */
void broker_keyring_remap(struct broker *b, struct broker_keyring_next *next, size_t new_n,
			  bool *ret_rekeyed);
/* The key set that opens entry's values, borrowed (valid while the caller holds the
 * generation lock: only a reload, holding it for writing, replaces or frees it), or NULL
 * while it is not loaded: why then says what it waits for and *ret_failed whether reading
 * it has failed. */
const struct lk_keyset *broker_keyring_for(struct broker *b, size_t entry, char *why,
					   size_t whylen, bool *ret_failed);
/* Scheduler thread: when the next backend key read is due (INT64_MAX: none waits), and
 * that read (one key; logged in). */
int64_t broker_keyring_due(struct broker *b);
void broker_keyring_fetch(struct broker *b, int64_t now);

#endif
