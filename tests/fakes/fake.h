/* fake.h — the internal interfaces of the test Kubernetes API server (build/fake-apiserver).
 *
 * One process, one state (struct fk_state) guarded by one mutex: every request takes the
 * lock for the whole of its read or write, so the server behaves as if it had a single
 * etcd member with a strictly increasing revision. Watch streams hold a cursor into the
 * event history and wait on the state's condition variable outside the lock.
 *
 * Files along seams: main.c (options, files, signals, restarts), server.c (HTTP/TLS over
 * libmicrohttpd), router.c (URLs, authentication, dispatch), registry.c (resource types,
 * CRDs, discovery), openapi.c and openapi_v2.c, store.c (objects, resourceVersion,
 * history, snapshots), watch.c, objects.c (per-kind rules), crud.c (the verbs), tokens.c
 * (TokenRequest, the reviews), patch.c, apply.c (server-side apply), schema.c (CRD
 * validation), selector.c, gc.c (owners, finalizers, namespaces), rbac.c, table.c,
 * faults.c (faults, stats, audit, /fake/), tls.c (keys, certificates, JWTs), proto.c
 * (protobuf bodies), yaml.c, status.c, util.c. docs/test-apiserver.md describes what it
 * serves.
 */
#ifndef FK_FAKE_H
#define FK_FAKE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* ---- limits ---- */
#define FK_BODY_MAX (3u << 20)          /* request body bytes, as kube-apiserver's 3 MiB */
#define FK_HEADER_MAX (64u << 10)       /* request line and headers */
#define FK_NAME_MAX 254                 /* object names (DNS subdomain) plus NUL */
#define FK_GROUP_MAX 254                /* API group names plus NUL */
#define FK_KEY_MAX 512                  /* "namespace/name" plus NUL */
#define FK_VERSIONS_MAX 8               /* served versions of one CRD */
#define FK_RTYPES_MAX 512               /* resource types: built-ins plus CRDs */
#define FK_OBJECTS_DEFAULT 20000        /* stored objects (--max-objects) */
#define FK_HISTORY_DEFAULT 20000        /* watch events kept (--history) */
#define FK_WATCHES_DEFAULT 200          /* open watch streams (--max-watches) */
#define FK_CONNECTIONS_DEFAULT 400      /* open connections (--max-connections) */
#define FK_LATENCY_MAX_MS 60000         /* injected latency */
#define FK_RESTART_MAX_MS 60000         /* injected restart downtime */
#define FK_RULES_MAX 32                 /* fault rules of each kind */
#define FK_STATS_ROWS_MAX 4096          /* distinct request counter rows */
#define FK_SECRET_MAX (1u << 20)        /* bytes of all values of a Secret or ConfigMap */
#define FK_TOKEN_MAX 16384              /* bearer token bytes */
#define FK_USERS_MAX 32                 /* --user static tokens */
#define FK_WARNINGS_MAX 8               /* Warning headers on one response */
#define FK_MANAGERS_MAX 64              /* managedFields entries on one object */

/* ---- logging (stderr, JSON lines) ---- */
enum fk_level { FK_DEBUG = 0, FK_INFO, FK_WARN, FK_ERROR };
void fk_log_setup(enum fk_level level);
/* Logs {"ts","level","msg", fields...}; fields (stolen, may be NULL) is an object. */
void fk_log(enum fk_level level, const char *msg, json_t *fields);
bool fk_log_enabled(enum fk_level level);

/* ---- configuration (immutable after start) ---- */
struct fk_user_token {
	char token[128];
	char name[128];
	char groups[256];               /* comma-separated */
};

struct fk_config {
	char listen[256];               /* "127.0.0.1:0" */
	char host[256];                 /* the host part, for the certificate and kubeconfig */
	char dir[1024];
	char token[128];                /* the admin token (system:masters) */
	char issuer[256];               /* service-account token issuer and default audience */
	char audit_path[1024];
	long max_objects;
	long history;
	unsigned max_watches;
	unsigned max_connections;
	long bookmark_ms;               /* periodic BOOKMARK interval */
	unsigned nusers;
	struct fk_user_token users[FK_USERS_MAX];
	json_t *start_faults;           /* --fault JSON objects, applied at start (array) */
};

/* ---- keys, certificates and tokens (tls.c) ---- */
struct fk_keys {
	char *ca_pem;                   /* CA certificate */
	char *cert_pem;                 /* server certificate */
	char *key_pem;                  /* server private key (PKCS#8) */
	char *sa_pub_pem;               /* service-account signing public key */
	void *sa_key;                   /* EVP_PKEY *, RSA 2048 */
	char sa_kid[64];
};
/* Generates a CA, a server certificate for host (IP or DNS name, plus localhost,
 * 127.0.0.1 and ::1) and an RSA service-account key. Owned: fk_keys_clear. */
int fk_keys_generate(struct fk_keys *k, const char *host);
void fk_keys_clear(struct fk_keys *k);
/* Signs claims (borrowed) as an RS256 JWT. *ret owned: free(). */
int fk_jwt_sign(const struct fk_keys *k, const json_t *claims, char **ret);
/* Verifies an RS256 JWT made by fk_jwt_sign; *ret_claims new reference on success. */
int fk_jwt_verify(const struct fk_keys *k, const char *jwt, json_t **ret_claims);

/* ---- small helpers (util.c) ---- */
void fk_time_rfc3339(time_t t, char out[32]);         /* 2026-01-02T03:04:05Z */
void fk_now_rfc3339(char out[32]);
void fk_now_micro(char out[40]);                      /* 2026-01-02T03:04:05.123456Z */
int fk_parse_rfc3339(const char *s, time_t *ret);     /* seconds, fractions and offsets */
/* MicroTime: exactly six fractional digits, then Z or an offset; *ret normalised to UTC. */
int fk_parse_micro(const char *s, char out[40]);
void fk_human_age(time_t since, char out[32]);        /* 5m10s, 3h, 2d ... as kubectl */
void fk_uuid(char out[37]);
void fk_random_alnum(char *out, size_t n);            /* n chars and a NUL, [a-z0-9] */
long fk_mono_ms(void);
/* base64 (std, padded) into a malloc'd string; decoding checks padding and alphabet. */
char *fk_b64_encode(const unsigned char *data, size_t len);
int fk_b64_decode(const char *s, unsigned char **ret, size_t *ret_len);
char *fk_b64url_encode(const unsigned char *data, size_t len);
int fk_b64url_decode(const char *s, unsigned char **ret, size_t *ret_len);
/* JSON helpers: lookups that tolerate wrong types. */
const char *fk_jstr(const json_t *obj, const char *key);
json_t *fk_jobj(json_t *obj, const char *key);        /* the member if it is an object */
json_t *fk_jpath(json_t *root, const char *dotted);   /* "metadata.name" */
const char *fk_meta_str(const json_t *obj, const char *key); /* metadata.<key> as string */
json_t *fk_meta(json_t *obj);                         /* metadata, created when missing */
/* Sets obj[key] to a new object when it is not an object; returns it. */
json_t *fk_jobj_ensure(json_t *obj, const char *key);
char *fk_json_dump(const json_t *v);                  /* compact; malloc'd */
bool fk_json_equal(const json_t *a, const json_t *b); /* NULL-safe deep equality */
bool fk_valid_dns1123_subdomain(const char *s);
bool fk_valid_dns1123_label(const char *s);
/* Appends printf output to a growing buffer (*buf malloc'd, *len kept). 0 or -ENOMEM. */
int fk_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- resource types (registry.c) ---- */
enum fk_flags {
	FK_STATUS = 1u << 0,            /* has a /status subresource */
	FK_GENERATION = 1u << 1,        /* metadata.generation counts spec changes */
	FK_RV_REQUIRED = 1u << 2,       /* PUT needs metadata.resourceVersion */
	FK_SMP = 1u << 3,               /* strategic merge patch accepted (built-ins) */
	FK_TOKEN = 1u << 4,             /* /token subresource (serviceaccounts) */
	FK_CRD = 1u << 5,               /* a custom resource */
	FK_NO_DELETECOLLECTION = 1u << 6,
	FK_FINALIZE = 1u << 7,          /* /finalize subresource (namespaces) */
	FK_VIRTUAL = 1u << 8,           /* create-only, answered and not stored (reviews) */
};

struct fk_version {
	char name[64];
	bool served;
	bool storage;
	bool status;                    /* subresources.status */
	json_t *schema;                 /* openAPIV3Schema; borrowed from rtype->crd */
	json_t *columns;                /* additionalPrinterColumns; borrowed */
	json_t *selectable;             /* selectableFields; borrowed */
};

struct fk_bucket {                      /* the stored objects of one resource */
	uint32_t id;                    /* unique per registration, carried by events */
	struct fk_obj *objs;            /* sorted by key */
	size_t n, cap;
};

enum fk_hook {                          /* per-kind rules in objects.c */
	FK_HOOK_NONE = 0,
	FK_HOOK_NAMESPACE,
	FK_HOOK_SECRET,
	FK_HOOK_CONFIGMAP,
	FK_HOOK_SERVICEACCOUNT,
	FK_HOOK_EVENT,
	FK_HOOK_SERVICE,
	FK_HOOK_POD,
	FK_HOOK_DEPLOYMENT,
	FK_HOOK_LEASE,
	FK_HOOK_CRD,
	FK_HOOK_RBAC,
	FK_HOOK_PDB,
	FK_HOOK_NETPOL,
	FK_HOOK_EVENTS_V1,              /* events.k8s.io view of core events */
	FK_HOOK_TOKENREVIEW,
	FK_HOOK_SELFSUBJECTREVIEW,
	FK_HOOK_ACCESSREVIEW,
};

struct fk_rtype {
	char group[FK_GROUP_MAX];
	char plural[128];
	char singular[128];
	char kind[128];
	char list_kind[136];
	bool namespaced;
	unsigned flags;
	enum fk_hook hook;
	json_t *short_names;            /* owned array of strings */
	json_t *categories;             /* owned array of strings */
	json_t *verbs;                  /* owned array of strings */
	unsigned nversions;
	struct fk_version versions[FK_VERSIONS_MAX];
	json_t *crd;                    /* owned copy of the CRD object (CRDs) */
	struct fk_rtype *storage;       /* objects live in this type's bucket (events.k8s.io) */
	struct fk_bucket bucket;
	unsigned order;                 /* discovery order of its group */
};

struct fk_registry {
	struct fk_rtype *types[FK_RTYPES_MAX];
	unsigned n;
	uint32_t next_bucket_id;
	uint64_t generation;            /* bumped on every CRD change (discovery hashes) */
};

struct fk_state;
int fk_registry_init(struct fk_state *st);
void fk_registry_clear(struct fk_registry *reg);
/* The type serving group/version/plural, or NULL; *ret_version the version's index. */
struct fk_rtype *fk_rtype_find(struct fk_state *st, const char *group, const char *version,
			       const char *plural, unsigned *ret_version);
struct fk_rtype *fk_rtype_by_kind(struct fk_state *st, const char *group, const char *kind);
struct fk_rtype *fk_rtype_storage(struct fk_rtype *t);
const char *fk_rtype_storage_version(const struct fk_rtype *t);
bool fk_rtype_served(const struct fk_rtype *t, const char *version, unsigned *ret_index);
/* "secrets" or "widgets.example.com", as in error messages. */
void fk_rtype_qualified(const struct fk_rtype *t, char *out, size_t outlen);
/* Registers, updates or removes the type of a CRD object (borrowed). err: a message. */
int fk_registry_crd_sync(struct fk_state *st, json_t *crd, bool deleted);
/* The discovery documents. New references. */
json_t *fk_discovery_api_versions(struct fk_state *st);
json_t *fk_discovery_groups(struct fk_state *st);
json_t *fk_discovery_group(struct fk_state *st, const char *group);
json_t *fk_discovery_resources(struct fk_state *st, const char *group, const char *version);
/* Aggregated discovery: core (legacy) or the named groups, for apidiscovery version v. */
json_t *fk_discovery_aggregated(struct fk_state *st, bool legacy, const char *v);

/* ---- OpenAPI (openapi.c) ---- */
json_t *fk_openapi_v3_root(struct fk_state *st);
/* The document of "api/v1" or "apis/group/version"; NULL when not served. */
json_t *fk_openapi_v3_doc(struct fk_state *st, const char *gvpath);
json_t *fk_openapi_v2(struct fk_state *st);
/* The same in gnostic's protobuf form; *ret owned (free). */
int fk_openapi_v2_protobuf(struct fk_state *st, char **ret, size_t *ret_len);

/* ---- the store (store.c) ---- */
struct fk_obj {
	char *key;                      /* "namespace/name" or "name"; owned */
	json_t *obj;                    /* owned; never modified once stored */
	uint64_t rv;
	uint64_t created_rv;
};

enum fk_event_type { FK_ADDED = 1, FK_MODIFIED, FK_DELETED };

struct fk_event {
	uint64_t rv;
	enum fk_event_type type;
	uint32_t bucket;
	char *key;                      /* owned */
	json_t *obj;                    /* the new state; DELETED: the last state */
	json_t *prev;                   /* the state before (MODIFIED, DELETED) */
};

struct fk_history {
	struct fk_event *ring;
	size_t cap;
	uint64_t first_seq;             /* sequence number of the oldest event kept */
	uint64_t end_seq;               /* one past the newest */
	uint64_t compact_rv;            /* versions before this are forgotten */
};

/* ---- faults, stats and audit (faults.c) ---- */
struct fk_match {                       /* empty fields match anything */
	char verb[24];
	char resource[160];             /* "secrets" or "widgets.example.com" */
	char namespace[FK_NAME_MAX];
	char name[FK_NAME_MAX];
};

struct fk_rule {
	struct fk_match match;
	long remaining;
	int code;
	int retry_after;
};

struct fk_faults {
	long latency_ms;
	struct fk_match latency_match;
	unsigned nconflicts;
	struct fk_rule conflicts[FK_RULES_MAX];   /* next N updates get 409 */
	unsigned nerrors;
	struct fk_rule errors[FK_RULES_MAX];      /* next N requests get code */
	unsigned nthrottle;
	struct fk_rule throttle[FK_RULES_MAX];    /* next N requests get 429 text */
	long watch_max_events;                    /* 0: unlimited */
	long watch_gone;                          /* next N watches get HTTP 410 */
};

struct fk_stat_row {
	char verb[24];
	char group[FK_GROUP_MAX];
	char resource[128];
	char subresource[32];
	char namespace[FK_NAME_MAX];
	int code;
	bool system;                    /* written by the server itself (collector) */
	uint64_t count;
};

struct fk_stats {
	pthread_mutex_t lock;
	uint64_t total;
	size_t nrows;
	struct fk_stat_row *rows;                 /* FK_STATS_ROWS_MAX */
	size_t nwrites;
	struct fk_stat_row *writes;               /* verb, resource, namespace; code unused */
};

/* ---- the state ---- */
struct fk_state {
	const struct fk_config *cfg;
	struct fk_keys keys;
	pthread_mutex_t lock;           /* guards everything below except stats and audit */
	pthread_cond_t changed;         /* broadcast on commits, fault changes and stops */
	uint64_t rv;                    /* the last resourceVersion handed out */
	size_t nobjects;
	struct fk_registry reg;
	struct fk_history hist;
	struct fk_faults faults;
	unsigned watches;               /* open watch streams */
	uint64_t watch_epoch;           /* bumped to end every open watch stream */
	bool watch_abort;               /* ... by cutting the connection, not with an EOF */
	bool stopping;                  /* stop or restart under way */
	bool gc_pending;                /* the collector has work */
	bool gc_quit;
	pthread_cond_t gc_wake;
	uint32_t next_cluster_ip;
	struct fk_stats stats;
	pthread_mutex_t audit_lock;
	FILE *audit;
	int restart_fd;                 /* eventfd: the main thread restarts the server */
	long restart_ms;                /* downtime of the pending restart */
	char addr[300];                 /* "https://127.0.0.1:PORT" */
	int port;
};

/* ---- requests (server.c provides the accessors; router.c the handling) ---- */
struct fk_user {
	char name[256];                 /* "admin", "system:serviceaccount:ns:sa" */
	char groups[512];               /* comma-separated */
	char token_id[64];              /* for the audit log */
	char uid[40];                   /* service accounts: their uid */
	bool admin;
};

struct fk_watch;

struct fk_request {
	void *conn;                     /* the library's connection; server.c only */
	const char *method;
	const char *path;
	const char *body;               /* NUL-terminated; "" when none */
	size_t body_len;
	struct fk_user user;
	/* what the request is, for stats, audit and faults */
	char verb[24];
	char group[FK_GROUP_MAX];
	char version[FK_NAME_MAX];
	char resource[FK_NAME_MAX];
	char subresource[FK_NAME_MAX];
	char namespace[FK_NAME_MAX];
	char name[FK_NAME_MAX];
	/* the answer */
	unsigned status;
	char *resp;                     /* owned */
	size_t resp_len;
	const char *resp_type;          /* static string */
	unsigned nwarnings;
	char *warnings[FK_WARNINGS_MAX];
	int retry_after;                /* > 0: a Retry-After header */
	char etag[80];
	bool drop;                      /* close the connection without an answer */
	bool restart_after;             /* ask for a restart once this answer is sent */
	struct fk_watch *watch;         /* a stream instead of resp; owned by server.c after */
};

const char *fk_req_query(const struct fk_request *r, const char *key);
const char *fk_req_header(const struct fk_request *r, const char *name);
/* Whether the client hung up (watch streams poll it between events). */
bool fk_req_peer_closed(const struct fk_request *r);

void fk_handle(struct fk_state *st, struct fk_request *r);
/* Answers with value (stolen) as JSON. */
void fk_reply_json(struct fk_request *r, unsigned status, json_t *value);
void fk_reply_text(struct fk_request *r, unsigned status, const char *type, const char *text);
/* Answers with data (stolen, malloc'd) of len bytes. */
void fk_reply_bytes(struct fk_request *r, unsigned status, const char *type, char *data, size_t len);
void fk_warn(struct fk_request *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fk_request_clear(struct fk_request *r);

/* ---- Status bodies (status.c) ---- */
/* A Status; details (stolen) may be NULL. New reference. */
json_t *fk_status_new(int code, const char *reason, const char *message, json_t *details);
json_t *fk_details(const struct fk_rtype *t, const char *name, bool kind_is_kind);
void fk_reply_status(struct fk_request *r, int code, const char *reason, json_t *details,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void fk_reply_not_found(struct fk_request *r, const struct fk_rtype *t, const char *name);
void fk_reply_already_exists(struct fk_request *r, const struct fk_rtype *t, const char *name);
void fk_reply_conflict(struct fk_request *r, const struct fk_rtype *t, const char *name,
		       const char *why);
void fk_reply_bad_request(struct fk_request *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fk_reply_method_not_allowed(struct fk_request *r);
void fk_reply_unsupported_patch(struct fk_request *r, const struct fk_rtype *t);
/* Field errors collected for one 422 answer. */
struct fk_errors {
	json_t *causes;                 /* array of {reason, message, field} */
	char first[512];
};
void fk_errors_init(struct fk_errors *e);
void fk_errors_clear(struct fk_errors *e);
void fk_error_add(struct fk_errors *e, const char *reason, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool fk_errors_any(const struct fk_errors *e);
/* Answers 422 Invalid "<Kind> \"name\" is invalid: ..." and clears e. */
void fk_reply_invalid(struct fk_request *r, const struct fk_rtype *t, const char *name,
		      struct fk_errors *e);

/* ---- objects and history (store.c; lock held for all) ---- */
int fk_store_init(struct fk_state *st);
void fk_store_clear(struct fk_state *st);
void fk_obj_key(const struct fk_rtype *t, const char *ns, const char *name, char out[FK_KEY_MAX]);
struct fk_obj *fk_store_get(struct fk_state *st, struct fk_rtype *t, const char *key);
/* Stores obj (stolen) as new, with a new resourceVersion set in it. */
int fk_store_create(struct fk_state *st, struct fk_rtype *t, const char *key, json_t *obj);
/* Replaces the object at key with obj (stolen), a new resourceVersion set in it. */
int fk_store_update(struct fk_state *st, struct fk_rtype *t, const char *key, json_t *obj);
/* Removes the object; the DELETED event carries its last state at a new version. */
int fk_store_delete(struct fk_state *st, struct fk_rtype *t, const char *key);
/* Drops a bucket's objects with DELETED events (a CRD going away). */
void fk_store_drop_bucket(struct fk_state *st, struct fk_rtype *t);
/* Forgets history up to now: older versions then get 410. */
void fk_store_compact(struct fk_state *st);

/* The objects of a bucket as they were at rv (0: now), sorted by key, from start (a key,
 * exclusive; NULL: the beginning). ns restricts to one namespace (NULL: all). *ret is an
 * array of new references, *ret_n its length. -ESTALE when rv is compacted. */
struct fk_snap_item {
	const char *key;                /* borrowed from obj or store */
	json_t *obj;                    /* new reference */
};
int fk_store_snapshot(struct fk_state *st, struct fk_rtype *t, uint64_t rv, const char *ns,
		      struct fk_snap_item **ret, size_t *ret_n);
void fk_snapshot_free(struct fk_snap_item *items, size_t n);

/* ---- selectors (selector.c) ---- */
enum fk_sel_op { FK_SEL_EQ, FK_SEL_NE, FK_SEL_IN, FK_SEL_NOTIN, FK_SEL_EXISTS, FK_SEL_NOTEXISTS,
		 FK_SEL_GT, FK_SEL_LT };
#define FK_SEL_REQS_MAX 64          /* requirements in one selector */
#define FK_SEL_VALUES_MAX 64        /* values of one in/notin set */
struct fk_sel_req {
	char key[320];
	enum fk_sel_op op;
	unsigned nvalues;
	char *values[FK_SEL_VALUES_MAX];  /* owned */
};
struct fk_selector {
	unsigned n;
	struct fk_sel_req reqs[FK_SEL_REQS_MAX];
};
/* Parses a label selector; err (256 bytes) tells why it failed. */
int fk_label_selector_parse(const char *s, struct fk_selector *sel, char *err, size_t errlen);
int fk_field_selector_parse(const char *s, struct fk_selector *sel, char *err, size_t errlen);
void fk_selector_clear(struct fk_selector *sel);
bool fk_labels_match(const struct fk_selector *sel, const json_t *labels);
/* Whether obj matches a field selector; the fields it may name were checked before. */
bool fk_fields_match(const struct fk_selector *sel, json_t *obj);
/* Checks that each field of sel is one the type supports; err names the first that is not. */
int fk_fields_supported(const struct fk_rtype *t, const struct fk_selector *sel, char *err,
			size_t errlen);

/* ---- per-kind rules (objects.c) ---- */
struct fk_ctx {                         /* what a write needs to know */
	struct fk_state *st;
	struct fk_request *r;
	struct fk_rtype *t;
	unsigned version;               /* index into t->versions */
	const char *ns;
	const char *name;
	bool dry_run;
	bool status_only;               /* /status subresource */
	char manager[128];              /* fieldManager */
	const char *validation;         /* "Strict", "Warn", "Ignore" */
};
/* Prepares obj (borrowed, modified) for creation: defaults and per-kind fields. */
void fk_prepare_create(struct fk_ctx *c, json_t *obj);
/* Carries what an update may not change from old (borrowed) into obj (modified). */
void fk_prepare_update(struct fk_ctx *c, const json_t *old, json_t *obj);
/* Checks obj; old is NULL on create. Errors go to e (422) or, for decoding errors, the
 * function answers 400 itself and returns -EINVAL. */
int fk_validate(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e);
/* Side effects once obj is stored (namespaces get their default objects, CRDs are
 * registered). */
void fk_after_write(struct fk_ctx *c, json_t *obj, bool created);
/* Converts between the stored form and the served version in place. */
void fk_to_version(const struct fk_rtype *t, unsigned version, json_t *obj);
void fk_from_version(const struct fk_rtype *t, unsigned version, json_t *obj);
/* Seeds the namespaces and objects a fresh cluster has. */
int fk_seed(struct fk_state *st);

/* ---- the verbs (crud.c) ---- */
/* The request body as JSON (JSON, YAML or protobuf); answers 400/415 itself. New ref. */
json_t *fk_decode_body(struct fk_ctx *c, bool allow_yaml);
void fk_crud(struct fk_state *st, struct fk_request *r, struct fk_rtype *t, unsigned version);
/* Deletes the object at key now or marks it (finalizers); lock held. policy: "Background",
 * "Foreground", "Orphan" or NULL. *ret_obj (new reference, may be NULL) is the object as
 * it stands after. Returns 0, or -EAGAIN when only marked. */
int fk_delete_object(struct fk_state *st, struct fk_rtype *t, const char *key, const char *policy,
		     json_t **ret_obj);

/* ---- protobuf request bodies (proto.c) ---- */
/* Decodes "k8s\0" + runtime.Unknown of the kinds kubectl's typed clients send.
 * -ENOTSUP for other kinds (answer 415), -EINVAL when malformed. */
int fk_proto_decode(const char *body, size_t len, json_t **ret, char *err, size_t errlen);

/* ---- tokens and reviews (tokens.c; lock held) ---- */
/* Who a bearer token is: 0 and *u filled, or -EACCES. */
int fk_token_user(struct fk_state *st, const char *token, struct fk_user *u);
void fk_token_request(struct fk_ctx *c, const char *key);
void fk_review(struct fk_ctx *c);

/* ---- patches (patch.c) ---- */
/* RFC 7386 merge: returns a new value (target borrowed, patch borrowed). */
json_t *fk_merge_patch(const json_t *target, const json_t *patch);
/* RFC 6902 on doc (modified in place, may be replaced: *doc). err explains a failure. */
int fk_json_patch(json_t **doc, const json_t *ops, char *err, size_t errlen);
/* Strategic merge patch, approximated (docs/test-apiserver.md); new value. */
json_t *fk_strategic_merge(const json_t *target, const json_t *patch, char *err, size_t errlen);
/* The merge key of a list field at a path of field names ("spec.template.spec.containers"),
 * for built-in types; NULL when the list is atomic. *ret_set: a list merged as a set. */
const char *fk_smp_merge_key(const char *path, bool *ret_set);

/* ---- server-side apply and managedFields (apply.c) ---- */
/* Applies config (borrowed) over live (borrowed; NULL to create) for manager; new object
 * in *ret. On conflicts, answers 409 itself and returns -EBUSY. */
int fk_apply(struct fk_ctx *c, const json_t *live, const json_t *config, bool force, json_t **ret);
/* Records an Update by manager on obj (modified) given the old state (NULL: create). */
void fk_managed_update(struct fk_ctx *c, const json_t *old, json_t *obj);

/* ---- CRD schemas (schema.c) ---- */
/* Validates obj against schema: type errors and missing required fields go to e; unknown
 * fields are dropped and listed in *unknown (new array of paths, may be NULL). */
void fk_schema_check(const json_t *schema, json_t *obj, struct fk_errors *e, json_t *unknown);
/* The list type of an array at a schema node: "atomic", "set", "map" (keys in *ret_keys,
 * borrowed). */
const char *fk_schema_list_type(const json_t *node, const json_t **ret_keys);
/* The schema node of a property path below node (NULL when unknown). */
const json_t *fk_schema_child(const json_t *node, const char *field);
const json_t *fk_schema_items(const json_t *node);

/* ---- garbage collection, finalizers, namespaces (gc.c) ---- */
int fk_gc_start(struct fk_state *st, pthread_t *ret);
void fk_gc_stop(struct fk_state *st, pthread_t th);
void fk_gc_kick(struct fk_state *st);   /* lock held */

/* ---- authorization (rbac.c) ---- */
/* Whether the user may do what r describes (RBAC; the admin may do anything); lock held. */
bool fk_authorized(struct fk_state *st, const struct fk_request *r);

/* ---- tables (table.c) ---- */
bool fk_wants_table(const struct fk_request *r);
/* A Table of items (borrowed objects) as the server renders them. New reference. */
json_t *fk_table(struct fk_state *st, const struct fk_rtype *t, unsigned version, json_t *const *items,
		 size_t n, const char *include_object, bool with_columns);
/* A JSONPath subset (.a.b, [n], [*], [?(@.k=="v")]) over obj; results appended to out. */
int fk_jsonpath(json_t *obj, const char *expr, json_t *out);

/* ---- faults, stats, audit (faults.c) ---- */
int fk_faults_apply(struct fk_state *st, const json_t *spec, char *err, size_t errlen);
json_t *fk_faults_dump(struct fk_state *st);
/* Before a request runs, lock held: may answer it (throttle, errors, restart). */
bool fk_faults_intercept(struct fk_state *st, struct fk_request *r, long *ret_latency_ms);
/* Whether the next update of this object should fail with 409; consumes a count. */
bool fk_faults_conflict(struct fk_state *st, const struct fk_request *r);
bool fk_faults_watch_gone(struct fk_state *st);
int fk_stats_init(struct fk_stats *s);
void fk_stats_clear(struct fk_stats *s);
void fk_stats_reset(struct fk_stats *s);
void fk_stats_request(struct fk_stats *s, const struct fk_request *r);
void fk_stats_write(struct fk_stats *s, const char *verb, const struct fk_rtype *t, const char *sub,
		    const char *ns, bool system);
json_t *fk_stats_dump(struct fk_state *st);
void fk_audit(struct fk_state *st, const struct fk_request *r);
/* The /fake/ admin endpoints. */
void fk_admin(struct fk_state *st, struct fk_request *r);

/* ---- watch streams (watch.c) ---- */
/* Starts a watch for r (lock held); sets r->watch or answers an error. */
void fk_watch_start(struct fk_state *st, struct fk_request *r, struct fk_rtype *t, unsigned version,
		    const char *ns, const char *name_filter);
/* Fills buf with up to max bytes of the stream; blocks until there is something to send.
 * Returns the bytes written, 0 at the end of the stream, -1 to cut the connection. */
long fk_watch_read(struct fk_watch *w, char *buf, size_t max);
void fk_watch_free(struct fk_watch *w);

/* ---- YAML (yaml.c) ---- */
/* Parses one YAML (or JSON) document into JSON values. err (with line) on failure. */
int fk_yaml_parse(const char *text, size_t len, json_t **ret, char *err, size_t errlen);

/* ---- the HTTP server (server.c) ---- */
struct fk_server;
/* Listens on cfg->listen (port reused from st->port when restarting). */
int fk_server_start(struct fk_state *st, struct fk_server **ret, char *err, size_t errlen);
void fk_server_stop(struct fk_server *srv);

#endif
