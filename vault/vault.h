/* vault.h — the client of a Vault-compatible backend (HashiCorp Vault, OpenBao).
 *
 * One `struct lk_vault_client` holds the settings, one kept libcurl handle (connections
 * are reused) and the current token. Every call is synchronous, bounded by the connect
 * and total timeouts of the configuration, and serialised by a mutex inside the client:
 * several threads may share a client, but calls never overlap (the broker's scheduler
 * thread is expected to make all backend calls; the sync workers may each have one).
 *
 * Secrets: the token lives in a `struct lk_secret` (crypto/secret.h). Response bodies are
 * collected in a wipe-on-free buffer of at most LK_VAULT_RESPONSE_MAX bytes (a larger body
 * is an error, never a truncation). Request bodies that carry credentials or secret data
 * are built in guarded memory and zeroed after the call. Returned secret data is jansson
 * `json_t`; call lk_json_wipe_on_free() (common/json.h) at start-up so that jansson
 * zeroes every block it frees.
 *
 * Program start-up, in this order, before any thread starts:
 *   lk_secret_init();
 *   lk_json_wipe_on_free();
 *   lk_http_global_init();   (http/http.h)
 *
 * Errors: every call that can fail returns 0 or a negative errno-style code and, when the
 * caller passes one, fills a `struct lk_vault_error` (kind, HTTP status, retryable,
 * Retry-After, not-found reason, message). Failed calls leave `ret` out-parameters
 * untouched. Library code never logs: warnings from the backend are handed back in each
 * result's `warnings` member for the caller to log.
 *
 * Paths: `mount` and `path` arguments are Vault paths without the "/v1/" prefix, e.g.
 * mount "secret", path "app/db". Leading and trailing slashes are ignored; characters
 * outside [A-Za-z0-9-._~/] are percent-encoded. Empty segments, "." and ".." are refused.
 */
#ifndef LK_VAULT_H
#define LK_VAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "crypto/secret.h"

/* Largest response body accepted from the backend; a larger one is LK_VAULT_ERR_TOO_LARGE. */
#define LK_VAULT_RESPONSE_MAX (1u << 20)
/* Longest Vault path (mount + path + query) accepted in a request URL. */
#define LK_VAULT_PATH_MAX 1024
/* Most extra request headers a configuration may add. */
#define LK_VAULT_EXTRA_HEADERS_MAX 8
/* Longest VAULT_ADDR / Location URL accepted. */
#define LK_VAULT_URL_MAX 2048
/* Largest credential file read at login (token, role_id, secret_id, service-account JWT). */
#define LK_VAULT_CREDENTIAL_FILE_MAX (64u << 10)
/* Default timeouts: connecting, and the whole request including the body. */
#define LK_VAULT_CONNECT_TIMEOUT_MS_DEFAULT 5000
#define LK_VAULT_TIMEOUT_MS_DEFAULT 30000

#define LK_VAULT_ADDR_DEFAULT "https://127.0.0.1:8200"
#define LK_VAULT_K8S_JWT_PATH_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define LK_VAULT_K8S_MOUNT_DEFAULT "kubernetes"
#define LK_VAULT_APPROLE_MOUNT_DEFAULT "approle"

/* ---- errors ------------------------------------------------------------------------ */

enum lk_vault_error_kind {
	LK_VAULT_ERR_NONE = 0,
	LK_VAULT_ERR_TRANSPORT,   /* no answer: refused, reset, DNS, TLS, truncated transfer */
	LK_VAULT_ERR_TIMEOUT,     /* connect or total timeout passed */
	LK_VAULT_ERR_HTTP,        /* the backend answered with a status >= 300 */
	LK_VAULT_ERR_INVALID,     /* a 2xx body that is not JSON or lacks/mistypes a field */
	LK_VAULT_ERR_TOO_LARGE,   /* body larger than LK_VAULT_RESPONSE_MAX */
	LK_VAULT_ERR_CONFIG,      /* bad settings or arguments, unreadable credential file */
};

/* Why a read found nothing (only set with status 404, or a KV v2 200 whose data is null). */
enum lk_vault_not_found {
	LK_VAULT_NF_NONE = 0,
	LK_VAULT_NF_MISSING,      /* 404 {"errors":[]}: no such secret, key or version */
	LK_VAULT_NF_DELETED,      /* KV v2: the version is soft-deleted (data.data null) */
	LK_VAULT_NF_DESTROYED,    /* KV v2: the version is destroyed (data.data null) */
	LK_VAULT_NF_NO_ROUTE,     /* 404 with a message, e.g. "no handler for route": no mount */
};

/*
 * Return codes (base.code) by kind:
 *   TRANSPORT  -ECONNREFUSED (refused), -EIO (anything else)
 *   TIMEOUT    -ETIMEDOUT
 *   HTTP       -EACCES (403), -ENOENT (404), -EAGAIN (412, 429, 503), -EREMOTEIO (other)
 *   INVALID    -EBADMSG
 *   TOO_LARGE  -EMSGSIZE
 *   CONFIG     -EINVAL, -ENOMEM, or the errno of an unreadable file
 * retryable: TRANSPORT (but not TLS verification failures), TIMEOUT, HTTP 412, 429 and
 * every 5xx; not 307 (after the one replay), 400, 403, 404, 405, 413, INVALID, TOO_LARGE,
 * CONFIG.
 */
struct lk_vault_error {
	struct lk_error base;       /* code and a one-line message naming method and path */
	enum lk_vault_error_kind kind;
	long status;                /* HTTP status, 0 when there was no response */
	bool retryable;
	int64_t retry_after_ms;     /* from a Retry-After header, -1 when absent */
	enum lk_vault_not_found not_found;
	int64_t version;            /* KV v2 DELETED/DESTROYED: that version; else 0 */
};

/* Empties err (NULL allowed): kind NONE, retry_after_ms -1. */
void lk_vault_error_clear(struct lk_vault_error *err);

/* The kind's name: "transport", "timeout", "http", "invalid-response", "too-large",
 * "config", or "none". Static string. */
const char *lk_vault_error_kind_name(enum lk_vault_error_kind kind);

/* "missing", "deleted", "destroyed", "no-route" or "none". Static string. */
const char *lk_vault_not_found_name(enum lk_vault_not_found nf);

/* ---- start-up ---------------------------------------------------------------------- */


/* ---- configuration ----------------------------------------------------------------- */

enum lk_vault_auth_method {
	LK_VAULT_AUTH_NONE = 0,   /* unset: token if one is configured */
	LK_VAULT_AUTH_TOKEN,      /* token_file (re-read at each login), else token */
	LK_VAULT_AUTH_APPROLE,    /* role_id_file + secret_id_file (re-read at each login) */
	LK_VAULT_AUTH_KUBERNETES, /* role + jwt_file (re-read at each login) */
};

/* Every string is owned by the struct (malloc'd; lk_vault_config_clear frees them).
 * NULL means unset; numbers <= 0 mean unset. A config file fills what it names
 * (lk_vault_config_from_json), then lk_vault_config_from_env fills what is still unset,
 * then lk_vault_client_new applies the defaults. */
struct lk_vault_config {
	char *addr;                 /* VAULT_ADDR, default LK_VAULT_ADDR_DEFAULT */
	char *cacert;               /* VAULT_CACERT: PEM bundle file */
	char *ca_pem;               /* an inline PEM bundle (a SecretStore's caBundle) */
	char *client_cert_pem;      /* an inline client certificate (PEM), with ... */
	struct lk_secret *client_key_pem; /* ... its key, in secure memory */
	char *headers[LK_VAULT_EXTRA_HEADERS_MAX + 1]; /* extra "Name: value" lines, NULL-ended */
	char *capath;               /* VAULT_CAPATH: directory of hashed CA certificates */
	char *client_cert;          /* VAULT_CLIENT_CERT: PEM */
	char *client_key;           /* VAULT_CLIENT_KEY: PEM */
	char *namespace;            /* VAULT_NAMESPACE: sent as X-Vault-Namespace */
	struct lk_secret *token;    /* VAULT_TOKEN; owned */
	int64_t connect_timeout_ms; /* default LK_VAULT_CONNECT_TIMEOUT_MS_DEFAULT */
	int64_t timeout_ms;         /* default LK_VAULT_TIMEOUT_MS_DEFAULT */
	struct {
		enum lk_vault_auth_method method;
		char *mount;            /* default "approle" / "kubernetes" by method */
		char *role;             /* kubernetes: the Vault role */
		char *jwt_file;         /* kubernetes: default LK_VAULT_K8S_JWT_PATH_DEFAULT */
		char *role_id_file;     /* approle */
		char *secret_id_file;   /* approle; NULL when the role has bind_secret_id=false */
		char *token_file;       /* token */
	} auth;
};

/* Zeroes cfg (everything unset). */
void lk_vault_config_init(struct lk_vault_config *cfg);

/* Frees every member (the token is zeroed) and leaves cfg as after init. NULL allowed. */
void lk_vault_config_clear(struct lk_vault_config *cfg);

/* Fills the members still unset from VAULT_ADDR, VAULT_CACERT, VAULT_CAPATH,
 * VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_NAMESPACE and VAULT_TOKEN (empty variables
 * count as unset; VAULT_TOKEN is not taken when auth.token_file is set). Returns 0, or
 * -ENOMEM with err set. */
int lk_vault_config_from_env(struct lk_vault_config *cfg, struct lk_vault_error *err);

/* Erases VAULT_TOKEN from the process's environment: every entry's value is overwritten
 * in place (zeroes), then the variable is unset, so that /proc/PID/environ, which shows
 * the block the process was started with, no longer holds the token. For a long-lived
 * process, after lk_vault_config_from_env took the token (and whether or not it did), and
 * while it has one thread: the environment is not locked against a concurrent getenv.
 * The other VAULT_ variables name an address, files and a namespace, and stay. */
void lk_vault_config_env_erase(void);

/* Fills cfg from a "vault" object of a config file (common/config.h reports where):
 *   { "address" (or "addr"), "cacert", "capath", "client_cert", "client_key", "namespace",
 *     "connect_timeout": "5s", "timeout": "30s",
 *     "auth": { "method": "token"|"approle"|"kubernetes", "mount", "role", "jwt_file",
 *               "role_id_file", "secret_id_file", "token_file" } }
 * A token value is deliberately not accepted in a file (use token_file). Members present in
 * obj replace those in cfg. Returns 0 or -EINVAL (c's err names file and key). */
struct lk_cfg;
int lk_vault_config_from_json(struct lk_vault_config *cfg, struct lk_cfg *c, const json_t *obj);

/* ---- the client -------------------------------------------------------------------- */

struct lk_vault_client;

/* A client for cfg (copied: cfg may be cleared afterwards; a configured token is copied
 * into the client). Checks the address (http:// or https://) and that files named for TLS
 * exist. owned: free with lk_vault_client_free. Returns 0 or -EINVAL/-ENOMEM. */
int lk_vault_client_new(const struct lk_vault_config *cfg, struct lk_vault_client **ret,
			struct lk_vault_error *err) __attribute__((warn_unused_result));

/* Frees the client; the token is zeroed. Does not revoke it. NULL allowed; returns NULL. */
struct lk_vault_client *lk_vault_client_free(struct lk_vault_client *c);

/* Replaces the client's token with a copy of token (NULL: forget it). 0 or -ENOMEM. */
int lk_vault_client_set_token(struct lk_vault_client *c, const struct lk_secret *token);

/* A copy of the current token, or NULL when none (or out of memory).
 * owned: free with lk_secret_free. */
struct lk_secret *lk_vault_client_token_dup(struct lk_vault_client *c);

bool lk_vault_client_has_token(struct lk_vault_client *c);

/* Changes the timeouts for later calls (values <= 0 keep the current one). */
void lk_vault_client_set_timeouts(struct lk_vault_client *c, int64_t connect_timeout_ms,
				  int64_t timeout_ms);

/* The standard response envelope (REFERENCE.md 1.2), validated: lease_id a string,
 * lease_duration a non-negative integer, renewable a boolean, warnings null or strings,
 * data and auth null or objects. Members are owned by the struct: lk_vault_response_clear. */
struct lk_vault_response {
	long status;                /* the 2xx status (200, or 204 without a body) */
	char *lease_id;             /* NULL when "" or absent */
	int64_t lease_duration_s;
	bool renewable;
	json_t *data;               /* NULL when null or absent (e.g. 204) */
	json_t *auth;               /* NULL when null or absent */
	json_t *wrap_info;          /* NULL when null or absent */
	json_t *warnings;           /* array of strings, NULL when none */
};

void lk_vault_response_clear(struct lk_vault_response *r);

/* A request to any path: method "GET", "POST", "PUT", "DELETE" or "LIST"; body NULL or a
 * JSON value (serialised into guarded memory, zeroed afterwards); the client's token is
 * sent when it has one. Success is a 2xx status, parsed into *ret (owned by the caller:
 * lk_vault_response_clear). Any other status is an LK_VAULT_ERR_HTTP error. For the
 * operations below, prefer their functions: they validate the fields they return. */
int lk_vault_client_request(struct lk_vault_client *c, const char *method, const char *path,
			    const json_t *body, struct lk_vault_response *ret,
			    struct lk_vault_error *err) __attribute__((warn_unused_result));

/* ---- auth (vault/auth.c) ----------------------------------------------------------- */

/* What a login, lookup-self or renew-self says about the token. Owned by the struct:
 * lk_vault_token_info_clear. The token itself is never in here: it stays in the client. */
struct lk_vault_token_info {
	char *accessor;             /* NULL when absent */
	int64_t lease_duration_s;   /* login/renew: auth.lease_duration; lookup: data.ttl */
	bool renewable;
	json_t *policies;           /* array of strings (new reference), never NULL on success */
	char *token_type;           /* "service", "batch"; NULL when absent */
	bool orphan;
	int64_t expire_time_ms;     /* lookup only: epoch ms of expire_time, 0 when null/absent */
	/* login and lookup: the token never expires (a ttl of 0 and no expire_time: a root
	 * token). A ttl of 0 on any other token means it has no time left: it has expired. */
	bool never_expires;
	int64_t period_s;           /* lookup only: 0 unless periodic */
	bool capped;                /* renew only: granted < requested increment (or warning) */
	json_t *warnings;           /* array of strings, NULL when none */
	char *role_name;            /* login: auth.metadata.role_name (AppRole), NULL when absent */
};

void lk_vault_token_info_clear(struct lk_vault_token_info *t);

/* Logs in with the configured method: TOKEN (or NONE with a token) re-reads auth.token_file
 * when set, installs the token and checks it with lookup-self; APPROLE re-reads the role_id
 * and secret_id files; KUBERNETES re-reads the JWT file. On success the new token is kept
 * in the client and *ret describes it (clear with lk_vault_token_info_clear). On failure
 * the client keeps its previous token. A login that grants a lease_duration of 0 is
 * followed by a lookup-self, which alone tells a token that never expires from one with
 * no time left (ret->never_expires). */
int lk_vault_auth_login(struct lk_vault_client *c, struct lk_vault_token_info *ret,
			struct lk_vault_error *err) __attribute__((warn_unused_result));

/* POST auth/<mount>/login {"role_id","secret_id"}; secret_id may be NULL. mount NULL:
 * "approle". Credentials are borrowed. Keeps the token like lk_vault_auth_login. */
int lk_vault_auth_login_approle(struct lk_vault_client *c, const char *mount,
				const struct lk_secret *role_id, const struct lk_secret *secret_id,
				struct lk_vault_token_info *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* POST auth/<mount>/login {"role","jwt"}. mount NULL: "kubernetes". jwt is borrowed. */
int lk_vault_auth_login_kubernetes(struct lk_vault_client *c, const char *mount,
				   const char *role, const struct lk_secret *jwt,
				   struct lk_vault_token_info *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* GET auth/token/lookup-self with the client's token. */
int lk_vault_auth_lookup_self(struct lk_vault_client *c, struct lk_vault_token_info *ret,
			      struct lk_vault_error *err) __attribute__((warn_unused_result));

/* POST auth/token/renew-self {"increment": increment_s} (no body when increment_s <= 0).
 * ret->capped is set when the granted duration is below increment_s or a warning says the
 * TTL was capped: plan a new login rather than another renew. */
int lk_vault_auth_renew_self(struct lk_vault_client *c, int64_t increment_s,
			     struct lk_vault_token_info *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* POST auth/token/revoke-self; on success the client forgets its token. ret_warnings
 * (NULL allowed) receives the warnings array or NULL (owned: json_decref). */
int lk_vault_auth_revoke_self(struct lk_vault_client *c, json_t **ret_warnings,
			      struct lk_vault_error *err) __attribute__((warn_unused_result));

/* True when err says the token itself is not valid (revoked, expired, unknown): a 403
 * whose errors name an invalid token. A 403 "permission denied" alone is a policy that
 * denies this path to a valid token, not this. */
bool lk_vault_error_token_invalid(const struct lk_vault_error *err);

/* ---- KV (vault/kv.c) --------------------------------------------------------------- */

/* One KV secret. Owned by the struct: lk_vault_kv_secret_clear. */
struct lk_vault_kv_secret {
	json_t *data;               /* object of key -> any JSON value; secret; never NULL */
	int64_t version;            /* KV v2 metadata.version; 0 for KV v1 */
	char *created_time;         /* KV v2 RFC 3339 text; NULL for KV v1 */
	char *deletion_time;        /* KV v2; NULL when "" (not scheduled for deletion) */
	bool destroyed;
	json_t *custom_metadata;    /* KV v2 object, NULL when null */
	int64_t lease_duration_s;   /* KV v1: the "ttl" hint; 0 otherwise */
	json_t *warnings;           /* array of strings, NULL when none */
};

void lk_vault_kv_secret_clear(struct lk_vault_kv_secret *s);

/* GET <mount>/<path>. Not found: -ENOENT with err->not_found MISSING or NO_ROUTE. */
int lk_vault_kv_read_v1(struct lk_vault_client *c, const char *mount, const char *path,
			struct lk_vault_kv_secret *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* GET <mount>/data/<path>[?version=N] (version <= 0: the latest). Not found: -ENOENT with
 * err->not_found MISSING (404 {"errors":[]}), NO_ROUTE, or DELETED/DESTROYED (404 or 200
 * with data.data null; err->version names the version). */
int lk_vault_kv_read_v2(struct lk_vault_client *c, const char *mount, const char *path,
			int64_t version, struct lk_vault_kv_secret *ret,
			struct lk_vault_error *err) __attribute__((warn_unused_result));

/* POST <mount>/data/<path> {"data": data[, "options": {"cas": cas}]} (cas < 0: none).
 * data (borrowed) must be an object. The serialised body is zeroed after the call.
 * *ret_version: the new version; *ret_warnings (NULL allowed): owned array or NULL. */
int lk_vault_kv_write_v2(struct lk_vault_client *c, const char *mount, const char *path,
			 const json_t *data, int64_t cas, int64_t *ret_version,
			 json_t **ret_warnings, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* ---- dynamic secrets and leases (vault/lease.c) ------------------------------------ */

/* A logical read of a dynamic engine, e.g. "database/creds/app". Owned by the struct:
 * lk_vault_lease_secret_clear. */
struct lk_vault_lease_secret {
	char *lease_id;             /* NULL when the response has no lease */
	int64_t lease_duration_s;
	bool renewable;
	json_t *data;               /* object; secret; never NULL on success */
	json_t *warnings;           /* array of strings, NULL when none */
};

void lk_vault_lease_secret_clear(struct lk_vault_lease_secret *s);

/* GET <path>. A 404 is -ENOENT like the KV reads; a 2xx without a data object is INVALID. */
int lk_vault_lease_read(struct lk_vault_client *c, const char *path,
			struct lk_vault_lease_secret *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* The outcome of a lease renewal. Owned by the struct: lk_vault_lease_renewal_clear. */
struct lk_vault_lease_renewal {
	char *lease_id;             /* as the backend returned it */
	int64_t lease_duration_s;   /* granted */
	bool renewable;
	bool capped;                /* granted < increment, or a "capped" warning: re-issue */
	json_t *warnings;
};

void lk_vault_lease_renewal_clear(struct lk_vault_lease_renewal *r);

/* PUT sys/leases/renew {"lease_id", "increment": increment_s} (no increment when <= 0). */
int lk_vault_lease_renew(struct lk_vault_client *c, const char *lease_id, int64_t increment_s,
			 struct lk_vault_lease_renewal *ret, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* PUT sys/leases/revoke {"lease_id"}; 204 (or 200 with warnings). ret_warnings as above. */
int lk_vault_lease_revoke(struct lk_vault_client *c, const char *lease_id,
			  json_t **ret_warnings, struct lk_vault_error *err)
	__attribute__((warn_unused_result));

/* True when a renewal that asked for increment_s and got granted_s was capped by a max
 * TTL: granted_s < increment_s, or a warning contains "capped". Pure; for the broker's
 * scheduler and for tests. */
bool lk_vault_renewal_capped(int64_t increment_s, int64_t granted_s, const json_t *warnings);

#endif
