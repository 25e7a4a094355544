/* internal.h — the state and helpers shared by the files of `latchkey dev`.
 *
 * One mutex (dev_server.lock) guards everything below it in the struct; the request
 * handler takes it once per request, after fault injection and before routing, and the
 * route handlers run under it; so does the sweeper thread when it ends what expired.
 * Statements on a real database (pg.c) run under it too, bounded by libpq's timeouts.
 * Route handlers fill a struct dev_call's reply and never talk to the HTTP layer
 * themselves.
 */
#ifndef LK_DEVSERVER_INTERNAL_H
#define LK_DEVSERVER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/httpd.h"
#include "devserver/policy.h"

/* Request bodies larger than this get 413 (Vault allows 32 MiB; a dev server needs less). */
#define DEV_BODY_MAX (1u << 20)
/* Most live tokens. */
#define DEV_TOKENS_MAX 4096
/* Most leases kept, live or ended (ended ones are dropped first when full). */
#define DEV_LEASES_MAX 4096
/* Most secrets (paths) in one KV mount, and most database roles. */
#define DEV_SECRETS_MAX 4096
/* Versions a KV v2 secret keeps when its max_versions is 0. */
#define DEV_KV_VERSIONS_DEFAULT 10
/* Most secret engine mounts and auth mounts. */
#define DEV_MOUNTS_MAX 64
/* Most ACL policies. */
#define DEV_POLICIES_MAX 256
/* Most policies one token or role may carry. */
#define DEV_TOKEN_POLICIES_MAX 64
/* Most AppRole or Kubernetes roles per mount, and secret IDs per AppRole role. */
#define DEV_ROLES_MAX 1024
/* Longest path (after /v1/) routed. */
#define DEV_PATH_MAX 1024
/* Longest token, lease ID, role name or mount path accepted from a request. */
#define DEV_NAME_MAX 512
/* The system default and maximum TTL, as Vault's: 32 days. */
#define DEV_SYSTEM_TTL_S 2764800
/* How often the sweeper revokes what has expired while no request came. */
#define DEV_SWEEP_INTERVAL_MS 200
/* Longest artificial latency (ms). */
#define DEV_LATENCY_MAX_MS 60000

#define DEV_ID_LEN 64
/* The media type a PATCH body must have. */
#define DEV_MERGE_PATCH_TYPE "application/merge-patch+json"

enum dev_op { DEV_OP_READ, DEV_OP_WRITE, DEV_OP_DELETE, DEV_OP_LIST, DEV_OP_PATCH };

struct dev_faults {
	int64_t latency_ms;
	double error_rate;
	unsigned error_status;
	double drop_rate;
	double cut_rate;            /* answers cut mid-body: headers and half the body, then closed */
	bool sealed;
	char paths[DEV_PATH_MAX];   /* only paths under this prefix (after /v1/); "" = all */
	int64_t retry_after_s;      /* Retry-After on injected 429s */
};
/* Longest Retry-After (s) an injected 429 may carry. */
#define DEV_RETRY_AFTER_MAX_S 3600

struct dev_token {
	struct dev_token *next;
	char id[DEV_ID_LEN];
	char accessor[DEV_ID_LEN];
	char parent[DEV_ID_LEN];    /* "" for orphans */
	json_t *policies;           /* owned: array of strings, sorted, "default" included */
	json_t *meta;               /* owned: object, or NULL */
	char path[128];             /* the path it was created on */
	char display_name[128];
	int64_t issue_ms;
	int64_t expire_ms;          /* 0: never */
	int64_t last_renew_ms;
	int64_t creation_ttl_s;
	int64_t explicit_max_s;     /* 0: none */
	int64_t max_ttl_s;          /* the role's max TTL; 0: the system's */
	int64_t period_s;           /* 0: not periodic */
	int64_t num_uses;           /* 0: unlimited */
	bool renewable;
	bool orphan;
	bool root;
};

enum dev_lease_state { DEV_LEASE_ACTIVE, DEV_LEASE_REVOKED, DEV_LEASE_EXPIRED };

struct dev_lease {
	struct dev_lease *next;
	char id[DEV_NAME_MAX + DEV_ID_LEN];
	char owner[DEV_ID_LEN];     /* the token that created it */
	int64_t issue_ms;
	int64_t expire_ms;
	int64_t last_renew_ms;      /* 0: never renewed */
	int64_t default_ttl_s;      /* what a renewal without increment grants */
	int64_t max_ttl_s;
	int64_t end_ms;             /* when it was revoked or expired */
	bool renewable;
	enum dev_lease_state state;
	json_t *data;               /* owned: what the engine needs to revoke it, or NULL */
};

enum dev_mount_type { DEV_MOUNT_KV1, DEV_MOUNT_KV2, DEV_MOUNT_DATABASE, DEV_MOUNT_SYSTEM,
		      DEV_AUTH_TOKEN, DEV_AUTH_APPROLE, DEV_AUTH_KUBERNETES };

struct dev_mount {
	char path[DEV_NAME_MAX];    /* with the trailing slash: "secret/", "approle/" */
	enum dev_mount_type type;
	char accessor[DEV_ID_LEN];
	char uuid[40];
	char description[256];
	int64_t default_ttl_s;      /* 0: system */
	int64_t max_ttl_s;          /* 0: system */
	json_t *state;              /* owned: the engine's data */
};

struct dev_policy_entry {
	char *name;                 /* owned */
	char *text;                 /* owned */
	struct dev_policy *parsed;  /* owned */
};

struct dev_server {
	char root_token[DEV_ID_LEN * 4];  /* immutable after start */
	char unseal_key[DEV_ID_LEN];
	char cluster_name[64];
	char cluster_id[40];
	bool quiet_jwt_warning;

	pthread_mutex_t lock;
	/* The sweeper thread: wakes every DEV_SWEEP_INTERVAL_MS, or at once to stop. */
	pthread_t sweeper;
	pthread_cond_t sweeper_wake;
	bool sweeper_running;
	bool sweeper_stop;
	struct dev_faults faults;
	struct dev_mount *mounts[DEV_MOUNTS_MAX];      /* secret engines */
	size_t nmounts;
	struct dev_mount *auths[DEV_MOUNTS_MAX];       /* auth methods */
	size_t nauths;
	struct dev_policy_entry policies[DEV_POLICIES_MAX];
	size_t npolicies;
	struct dev_token *tokens;
	size_t ntokens;
	struct dev_lease *leases;
	size_t nleases;
};

/* One request as the route handlers see it. */
struct dev_call {
	struct dev_server *srv;
	struct lk_http_req *req;    /* borrowed */
	enum dev_op op;
	const char *path;           /* after /v1/, no leading slash */
	json_t *body;               /* borrowed: the JSON object sent ({} when none) */
	struct dev_token *token;    /* borrowed, valid under the lock; NULL when none */
	int64_t now_ms;
	/* the reply */
	unsigned status;
	json_t *reply;              /* owned: NULL sends no body */
	bool revoke_token_after;    /* a use-limited token used up */
	bool cut;                   /* fault: send the answer cut mid-body */
};

/* ---- replies (util.c) ---- */
/* {"errors":[msg]} ({"errors":[]} when msg is NULL) with status. */
void dev_reply_error(struct dev_call *c, unsigned status, const char *msg);
void dev_reply_errorf(struct dev_call *c, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 200 with the standard envelope around data (stolen; NULL gives "data": null). */
void dev_reply_data(struct dev_call *c, json_t *data);
/* 204. */
void dev_reply_empty(struct dev_call *c);
/* 405 unsupported operation. */
void dev_reply_bad_method(struct dev_call *c);
/* 404 no handler for route. */
void dev_reply_no_route(struct dev_call *c);
/* A new envelope object with data stolen (NULL: null). */
json_t *dev_envelope(json_t *data);
/* The READ and DELETE of a named role in a role table (AppRole, Kubernetes auth, the
 * database engine): answers and returns true for those two operations, false for any
 * other. view renders a role for a READ (a new reference); NULL shows a deep copy. */
bool dev_reply_role(struct dev_call *c, json_t *roles, const char *name, const json_t *role,
		    json_t *(*view)(const json_t *role));
/* {"keys":[...]} 200 reply for a LIST, or 404 {"errors":[]} when keys is empty; steals keys. */
void dev_reply_keys(struct dev_call *c, json_t *keys);

/* ---- helpers (util.c) ---- */
void dev_random_uuid(char out[40]);
/* n random characters from [A-Za-z0-9] then NUL; out holds n + 1. */
void dev_random_alnum(char *out, size_t n);
/* RFC 3339 with nanoseconds from epoch ms. out holds 40 bytes. */
char *dev_time_str(int64_t ms, char *out);
/* A duration as Vault prints it in warnings: "1h2m3s" with "h0m"/"m0s" trimmed. */
char *dev_duration_str(int64_t s, char *out, size_t outlen);
/* A TTL field: an integer of seconds or a duration string. 0, or -EINVAL when malformed.
 * Leaves *ret_s untouched when v is NULL. */
int dev_json_ttl(const json_t *v, int64_t *ret_s);
/* The body's key as a string; NULL when absent, not a string, or holding a NUL byte.
 * Borrowed. */
const char *dev_body_str(const struct dev_call *c, const char *key);
/* A list of strings from an array or a comma-separated string; new reference, sorted
 * and deduplicated when sort is set, or NULL when malformed. */
json_t *dev_json_strlist(const json_t *v, bool sort);
/* True when the array holds the string. */
bool dev_strlist_has(const json_t *list, const char *s);
/* Keys in the object under prefix, one level deep ("a", "dir/"), sorted; new reference. */
json_t *dev_list_children(const json_t *obj, const char *prefix);
/* Random in [0, 1). */
double dev_random_unit(void);
/* What went wrong in a JSON text, in fixed words: jansson's own text quotes the input near
 * the error ("invalid token near 'hunter2'"), and a body may carry a secret. Static. */
const char *dev_json_error_words(const json_error_t *jerr);
/* RFC 7386 JSON merge patch of target (may be NULL) with patch: null members delete, objects
 * merge member by member, anything else replaces. New reference; NULL when out of memory. */
json_t *dev_json_merge_patch(const json_t *target, const json_t *patch);
/* True when path is prefix itself or prefix followed by '/'; *ret_rest is what follows. */
bool dev_path_starts(const char *path, const char *prefix, const char **ret_rest);

/* ---- tokens and leases (store.c) ---- */
/* Looks a token up by ID (expired ones are gone). */
struct dev_token *dev_token_find(struct dev_server *s, const char *id);
/* A new token, linked in. policies: stolen. NULL when full or out of memory. */
struct dev_token *dev_token_new(struct dev_server *s, int64_t now_ms, json_t *policies);
/* True when t is ancestor or descends from it through parent links. */
bool dev_token_descends(struct dev_server *s, const struct dev_token *t,
			const struct dev_token *ancestor);
/* Revokes a token, its children and their leases. */
void dev_token_revoke(struct dev_server *s, struct dev_token *t, int64_t now_ms);
/* The "auth" block for a token. New reference. */
json_t *dev_token_auth(const struct dev_server *s, const struct dev_token *t, int64_t now_ms);
/* The lookup-self data. New reference. */
json_t *dev_token_lookup(const struct dev_token *t, int64_t now_ms);
/* Drops expired tokens (revoking what they own) and ends expired leases. Under the lock. */
void dev_sweep(struct dev_server *s, int64_t now_ms);
/* A thread that sweeps every DEV_SWEEP_INTERVAL_MS, so that what expires is revoked even
 * when no request comes (Vault's expiration manager does the same). 0 or -errno. */
int dev_sweeper_start(struct dev_server *s);
/* Stops and joins it; without the lock held. Nothing when it was not started. */
void dev_sweeper_stop(struct dev_server *s);
/* Frees a lease and its data; NULL allowed. */
void dev_lease_free(struct dev_lease *l);
/* A new active lease; NULL when full. */
struct dev_lease *dev_lease_new(struct dev_server *s, const char *id, const char *owner,
				int64_t now_ms, int64_t ttl_s, int64_t max_ttl_s, bool renewable);
struct dev_lease *dev_lease_find(struct dev_server *s, const char *id);
/* True when no lease can be added (DEV_LEASES_MAX, every one active). */
bool dev_lease_count_full(const struct dev_server *s);
/* Ends an active lease (nothing for one that has ended). */
void dev_lease_revoke(struct dev_server *s, struct dev_lease *l, int64_t now_ms);
/* Revokes every active lease whose ID starts with prefix. */
void dev_lease_revoke_prefix(struct dev_server *s, const char *prefix, int64_t now_ms);

/* Vault's CalculateTTL: the granted TTL for a renewal asking increment_s (0: default_s)
 * within issue_ms + max_s. Returns 0 and sets *ret_ttl_s, with *ret_warning filled
 * ("" when not capped), or -ERANGE when past the max TTL. */
int dev_calculate_ttl(int64_t now_ms, int64_t issue_ms, int64_t increment_s, int64_t default_s,
		      int64_t max_s, int64_t *ret_ttl_s, char *ret_warning, size_t warnlen);

/* ---- policies (sys_policy.c) ---- */
/* The capabilities the token has on path. */
unsigned dev_token_caps(struct dev_server *s, const struct dev_token *t, const char *path);
int dev_policy_set(struct dev_server *s, const char *name, const char *text,
		   struct lk_error *err);
/* Installs the built-in default policy. 0 or -ENOMEM. */
int dev_policy_init_default(struct dev_server *s);

/* ---- mounts (sys_mounts.c) ---- */
struct dev_mount *dev_mount_new(const char *path, enum dev_mount_type type);
void dev_mount_free(struct dev_mount *m);
/* The mount whose path is the longest prefix of path, from the list; NULL when none. */
struct dev_mount *dev_mount_lookup(struct dev_mount *const *list, size_t n, const char *path);
/* The part of path below m, a mount dev_mount_lookup found for it: "" when path names the
 * mount itself without its trailing slash ("secret" for "secret/"). Points into path. */
const char *dev_mount_rest(const struct dev_mount *m, const char *path);

/* ---- route handlers; rest is the path below the mount ---- */
void dev_sys_handle(struct dev_call *c, const char *rest);
/* sys/mounts[/<path>] (auth false) and sys/auth[/<path>]; rest is what follows. */
void dev_sys_mounts(struct dev_call *c, const char *rest, bool auth);
/* sys/policy[/<name>] (acl false) and sys/policies/acl[/<name>]. */
void dev_sys_policy(struct dev_call *c, const char *name, bool acl);
/* POST sys/capabilities-self {"paths": [...]}: the token's capabilities on each path. */
void dev_sys_capabilities_self(struct dev_call *c);
/* The lease endpoints under sys/ (rest after "sys/"); false when rest is none of them. */
bool dev_sys_leases(struct dev_call *c, const char *rest);
void dev_kv1_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
void dev_kv2_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
void dev_db_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
/* A database/config entry as a write of body makes it, in the shape Vault stores it
 * (DatabaseConfig: plugin_name, plugin_version, connection_details — every member of body
 * that is not Vault's own —, allowed_roles, root_credentials_rotate_statements,
 * password_policy, verify_connection): old (NULL: a new entry) with body's members over
 * it. *ret is owned (json_decref). 0, or -EINVAL / -ENOMEM with err set to a message
 * naming the field, that holds no value from body but the plugin name. */
int dev_db_config_new(const json_t *old, const json_t *body, json_t **ret, char *err,
		      size_t errlen) __attribute__((warn_unused_result));
/* What a read of a database/config entry shows (Vault's connectionReadHandler): no
 * password, private_key or service_account_json in connection_details, and the password
 * of a scheme://user:pass@host connection_url replaced by "xxxxx". New reference. */
json_t *dev_db_config_view(const json_t *cfg);
/* A database/roles entry as a write of body makes it (Vault's pathRoleCreateUpdate):
 * old (NULL: a new role) with the fields body carries; statements are lists (a string is
 * one statement). *ret is owned. 0, or -EINVAL / -ENOMEM with err set. */
int dev_db_role_new(const json_t *old, const json_t *body, json_t **ret, char *err,
		    size_t errlen) __attribute__((warn_unused_result));
/* What a read of a role shows (Vault's pathRoleRead). New reference. */
json_t *dev_db_role_view(const json_t *role);
/* Before a creds lease of mount m is renewed to expire_ms: the role's renew_statements run
 * on a real database. 0, or -errno with the reply set (502). */
int dev_db_lease_renew(struct dev_call *c, struct dev_mount *m, struct dev_lease *l,
		       int64_t expire_ms);
/* Undoes what a creds lease of mount m made (drops the database user) as it ends. */
void dev_db_lease_end(struct dev_server *s, struct dev_mount *m, struct dev_lease *l);
/* The current default and max TTL of the database role a lease (an ID under mount m) was
 * minted for, read at renewal time as Vault's database backend does. 0, or -ENOENT when
 * the role is gone or the ID is not a creds lease. */
int dev_db_lease_limits(const struct dev_mount *m, const char *lease_id, int64_t *ret_def,
			int64_t *ret_max);
void dev_token_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
void dev_approle_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
void dev_k8s_handle(struct dev_call *c, struct dev_mount *m, const char *rest);
/* True for the unauthenticated paths of an auth mount (login). */
bool dev_auth_is_login(const struct dev_mount *m, const char *rest);

/* ---- what the auth methods share (auth.c) ---- */
/* What a new token gets; policies and meta are borrowed. */
struct dev_token_opts {
	const json_t *policies;
	bool no_default_policy;
	int64_t ttl_s, max_ttl_s, explicit_max_s, period_s, num_uses;
	const json_t *meta;
	const char *path;
	const char *display_name;
	const char *parent;      /* NULL: orphan */
	bool renewable;
};
/* A new token for a login or create on mount m (NULL: no mount limits), linked in;
 * borrowed, valid under the lock. NULL when full or out of memory. */
struct dev_token *dev_token_issue(struct dev_call *c, const struct dev_mount *m,
				  const struct dev_token_opts *o);
/* 200 with the token's auth block, and warning (NULL or "" for none). */
void dev_reply_auth(struct dev_call *c, struct dev_token *t, const char *warning);
/* True for the root token and tokens with the root policy. */
bool dev_token_is_rootish(const struct dev_token *t);
/* Role names: 1 to 128 of [A-Za-z0-9-_.@]. */
bool dev_role_name_ok(const char *name);
/* Updates role from the body's token_* fields; false (with a 400 reply) when one is bad. */
bool dev_role_token_fields(struct dev_call *c, json_t *role);
/* The token_* fields of a new role. New reference. */
json_t *dev_role_token_defaults(void);
/* The token options a login with role gets (borrowing from role). */
void dev_role_login_opts(const json_t *role, struct dev_token_opts *o);
/* Splits "role/<name>[/<sub>]"; false when rest is not under role/. */
bool dev_role_path(const char *rest, char *name, size_t namelen, const char **ret_sub);

/* The request handler (router.c), and the admin endpoints. */
void dev_handle_request(void *ctx, struct lk_http_req *req);
/* Initial state: mounts, policies, the root token. 0 or -ENOMEM. */
int dev_server_init(struct dev_server *s, const char *root_token);
void dev_server_clear(struct dev_server *s);

#endif
