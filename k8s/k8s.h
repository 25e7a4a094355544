/* k8s.h — the Kubernetes API client: configuration (in-cluster, kubeconfig), REST verbs
 * on core and custom resources, patches and server-side apply, list with pagination,
 * informers (list + watch with bookmarks, resume and relist on 410), and leader election
 * on a coordination.k8s.io/v1 Lease.
 *
 * Transport: http/ (TLS from files or inline PEM, capped bodies, Retry-After, connection
 * reuse). A client keeps a small pool of connections so that worker threads do not wait
 * for each other, a token bucket (QPS and burst) shared by all its requests, and the
 * bearer token: re-read from its file at most every LK_K8S_TOKEN_REREAD_MS and after a
 * 401 (bound service-account tokens rotate), sent from guarded memory.
 *
 * Retries inside one call: 429 (whether the body is a Status or plain text, as API
 * Priority and Fairness sends it) and 5xx that carry Retry-After, honouring it, up to
 * LK_K8S_RETRIES_MAX times within the call's deadline; a 401 once after re-reading the
 * token. Everything else is the caller's to retry (conflicts: re-read and re-apply).
 *
 * Errors: a non-2xx answer's Status body is parsed into struct lk_k8s_error (status,
 * reason, message, the first cause's field); the message names the verb, the resource and
 * the object, never a body or a token. Library code does not log.
 *
 * Objects are jansson values; what a call returns is a new reference unless said
 * otherwise. Threads: a client may be shared by any number of threads.
 */
#ifndef LK_K8S_H
#define LK_K8S_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "crypto/secret.h"

/* Largest response body read for one request (a list page is kept under it by halving
 * the page size when it is not). */
#define LK_K8S_RESPONSE_MAX (32u << 20)
/* Largest single watch event line: an object of the API server's 1.5 MiB request limit,
 * with room for the envelope. */
#define LK_K8S_EVENT_MAX (3u << 20)
/* Items asked for per list page. */
#define LK_K8S_PAGE_DEFAULT 500
/* How often the token file is re-read at most (client-go's cached token source). */
#define LK_K8S_TOKEN_REREAD_MS (60 * 1000)
/* Retries of one call on 429 and 5xx with Retry-After (client-go's default). */
#define LK_K8S_RETRIES_MAX 10
/* Default client-side rate limit. */
#define LK_K8S_QPS_DEFAULT 50.0
#define LK_K8S_BURST_DEFAULT 100
/* Default timeout of one call (each retry included). */
#define LK_K8S_TIMEOUT_MS_DEFAULT 30000
/* Most connections one client keeps open at once. */
#define LK_K8S_POOL_MAX 16
/* Longest server URL, path or query built. */
#define LK_K8S_URL_MAX 4096
/* The service-account directory of a pod. */
#define LK_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* The field manager latchkey writes with. */
#define LK_K8S_FIELD_MANAGER "latchkey"

/* ---- configuration ------------------------------------------------------------------ */

struct lk_k8s_config {
	char *server;               /* "https://host:port", no trailing slash */
	char *ca_file;              /* PEM bundle file, or */
	char *ca_pem;               /* inline PEM (certificate-authority-data, decoded) */
	size_t ca_pem_len;
	char *cert_file, *key_file; /* client certificate and key files, or */
	char *cert_pem;             /* inline certificate ... */
	size_t cert_pem_len;
	struct lk_secret *key_pem;  /* ... and key (secure memory) */
	char *token_file;           /* bearer token file, re-read as it rotates, or */
	struct lk_secret *token;    /* a fixed bearer token */
	char *server_name;          /* tls-server-name */
	bool insecure;              /* insecure-skip-tls-verify (the caller warns) */
	char *namespace;            /* the pod's (in-cluster) or the context's; may be NULL */
	char *source;               /* "in-cluster" or the kubeconfig file, for messages */
	double qps;                 /* requests per second; 0: LK_K8S_QPS_DEFAULT; < 0: none */
	unsigned burst;             /* 0: LK_K8S_BURST_DEFAULT */
	int64_t timeout_ms;         /* one call; 0: LK_K8S_TIMEOUT_MS_DEFAULT */
};

/* An empty configuration. */
void lk_k8s_config_init(struct lk_k8s_config *cfg);
/* Frees what it holds (the key and token wiped); leaves it empty. */
void lk_k8s_config_clear(struct lk_k8s_config *cfg);

/* The configuration of a pod: KUBERNETES_SERVICE_HOST and _PORT (IPv6 in brackets), the
 * token, ca.crt and namespace files in sa_dir (NULL: LK_K8S_SA_DIR). -ENOENT with a
 * message when the environment is not a pod's. */
int lk_k8s_config_in_cluster(const char *sa_dir, struct lk_k8s_config *cfg,
			     struct lk_error *err) __attribute__((warn_unused_result));

/* A kubeconfig: path (a list separated by ':' as $KUBECONFIG allows; the first file that
 * names an entry wins), the context (NULL: current-context). Certificates and keys as
 * files (relative paths from the kubeconfig's folder) or inline *-data; token or
 * tokenFile. exec and auth-provider plugins are refused with a clear message. */
int lk_k8s_config_kubeconfig(const char *path, const char *context, struct lk_k8s_config *cfg,
			     struct lk_error *err) __attribute__((warn_unused_result));

/* What a command does: --kubeconfig FILE if given, else $KUBECONFIG if set, else the
 * in-cluster configuration. */
int lk_k8s_config_load(const char *kubeconfig, struct lk_k8s_config *cfg, struct lk_error *err)
	__attribute__((warn_unused_result));

/* ---- the client --------------------------------------------------------------------- */

struct lk_k8s_client;

/* Copies cfg. *ret owned: lk_k8s_client_free. */
int lk_k8s_client_new(const struct lk_k8s_config *cfg, struct lk_k8s_client **ret,
		      struct lk_error *err) __attribute__((warn_unused_result));
struct lk_k8s_client *lk_k8s_client_free(struct lk_k8s_client *c);

/* Counts of what the client did, for metrics: called after every request (any thread,
 * concurrently) with the verb ("get", "list", "watch", "create", "update", "patch",
 * "delete"), the resource's plural, the HTTP status (0: no answer) and the time it took. */
typedef void (*lk_k8s_observe_fn)(void *arg, const char *verb, const char *resource,
				  long status, double seconds);
void lk_k8s_client_set_observer(struct lk_k8s_client *c, lk_k8s_observe_fn fn, void *arg);

struct lk_k8s_error {
	struct lk_error base;       /* "VERB RESOURCE NS/NAME: message" */
	long status;                /* HTTP status; 0 when no answer came */
	char reason[48];            /* the Status reason: NotFound, Conflict, Invalid, ... */
	char field[128];            /* the first cause's field, e.g. "spec.target.name" */
	bool retryable;             /* transport errors, timeouts, 429, 5xx */
	int64_t retry_after_ms;     /* from Retry-After or details.retryAfterSeconds; -1 */
};

void lk_k8s_error_clear(struct lk_k8s_error *err);

/* A resource type. */
struct lk_k8s_resource {
	const char *group;          /* "" for the core group */
	const char *version;        /* "v1", "v1beta1" */
	const char *plural;         /* "secrets", "externalsecrets" */
	const char *kind;           /* "Secret", "ExternalSecret" */
	bool namespaced;
};

extern const struct lk_k8s_resource lk_k8s_secrets, lk_k8s_configmaps, lk_k8s_events,
	lk_k8s_leases, lk_k8s_serviceaccounts, lk_k8s_namespaces;

/* "apiVersion" of a resource: "v1" or "group/version". Static or borrowed storage: out
 * must hold 128 bytes. */
const char *lk_k8s_api_version(const struct lk_k8s_resource *r, char *out, size_t outlen);

enum lk_k8s_patch {
	LK_K8S_PATCH_MERGE,         /* application/merge-patch+json */
	LK_K8S_PATCH_JSON,          /* application/json-patch+json */
	LK_K8S_PATCH_APPLY,         /* server-side apply, field manager latchkey */
	LK_K8S_PATCH_APPLY_FORCE,   /* the same, taking conflicting fields */
};

/* ns is NULL for cluster-scoped resources (and lists across namespaces); sub is NULL or a
 * subresource ("status", "token"). Each returns 0 with *ret set (when ret is not NULL)
 * or a negative code: -ENOENT (404), -EEXIST (409 AlreadyExists), -ESTALE (409 Conflict),
 * -EACCES (401, 403), -EINVAL (400, 422), -EAGAIN (429, 5xx), -EIO (no answer), ... */
int lk_k8s_get(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	       const char *name, json_t **ret, struct lk_k8s_error *err);
int lk_k8s_create(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		  const json_t *obj, json_t **ret, struct lk_k8s_error *err);
/* PUT: obj carries metadata.resourceVersion for optimistic concurrency (-ESTALE on a
 * stale one). sub "status" replaces only the status. */
int lk_k8s_replace(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		   const char *name, const char *sub, const json_t *obj, json_t **ret,
		   struct lk_k8s_error *err);
int lk_k8s_patch(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		 const char *name, const char *sub, enum lk_k8s_patch type, const json_t *patch,
		 json_t **ret, struct lk_k8s_error *err);
/* propagation: NULL (the server's default), "Background", "Foreground" or "Orphan";
 * uid: NULL, or a precondition (the delete fails with -ESTALE when it is another object). */
int lk_k8s_delete(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		  const char *name, const char *propagation, const char *uid,
		  struct lk_k8s_error *err);
/* POST to a subresource (the TokenRequest API: serviceaccounts/NAME/token). */
int lk_k8s_create_sub(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		      const char *name, const char *sub, const json_t *obj, json_t **ret,
		      struct lk_k8s_error *err);

/* Whether the API server serves r (its group/version's discovery lists the plural):
 * 0, or -ENOENT. */
int lk_k8s_served(struct lk_k8s_client *c, const struct lk_k8s_resource *r,
		  struct lk_k8s_error *err);

/* Lists every page (limit/continue; a page too large is asked for again at half the
 * size; an expired continue token starts over) and calls fn for each item (borrowed,
 * with kind and apiVersion filled in). A non-zero return from fn stops and is returned.
 * *ret_rv (when not NULL, size 64) gets the list's resourceVersion for a watch. */
int lk_k8s_list(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		const char *label_selector, int (*fn)(void *arg, json_t *item), void *arg,
		char *ret_rv, size_t rvlen, struct lk_k8s_error *err);

/* Creates an Event (core v1) about an object: type "Normal" or "Warning", reason and
 * message (the caller keeps values out of it), source component "latchkey-sync". */
int lk_k8s_event(struct lk_k8s_client *c, const json_t *about, const char *type,
		 const char *reason, const char *message, struct lk_k8s_error *err);

/* ---- informers: a watched, cached set of objects ------------------------------------ */

struct lk_k8s_informer;

struct lk_k8s_informer_handlers {
	/* Called from the informer's thread, in order. Objects are borrowed for the call. */
	void (*on_add)(void *arg, const json_t *obj);
	void (*on_update)(void *arg, const json_t *old, const json_t *obj);
	void (*on_delete)(void *arg, const json_t *obj);
	/* After each full list (the first one and every relist): the cache is complete. */
	void (*on_synced)(void *arg);
	void *arg;
};

struct lk_k8s_informer_config {
	const struct lk_k8s_resource *resource;
	const char *ns;                 /* NULL: all namespaces */
	const char *label_selector;     /* NULL: all */
	/* Replaces what is cached (and handed to handlers) with a smaller object; NULL keeps
	 * the object without metadata.managedFields. Returns a new reference or NULL (skip). */
	json_t *(*transform)(void *arg, json_t *obj);
	void *transform_arg;
	struct lk_k8s_informer_handlers handlers;
	int64_t watch_timeout_s;        /* asked of the server per watch; 0: 300 */
};

/* Starts the informer's thread (a client of its own for the watch). */
int lk_k8s_informer_start(struct lk_k8s_client *c, const struct lk_k8s_informer_config *cfg,
			  struct lk_k8s_informer **ret, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Stops the thread (the watch is cut) and frees the cache. NULL allowed. */
void lk_k8s_informer_stop(struct lk_k8s_informer *inf);
/* True once the first full list has been cached. */
bool lk_k8s_informer_synced(const struct lk_k8s_informer *inf);
/* The cached object ns/name (ns "" for cluster-scoped): new reference, or NULL. */
json_t *lk_k8s_informer_get(struct lk_k8s_informer *inf, const char *ns, const char *name);
/* Calls fn for each cached object (borrowed; the cache is locked meanwhile: do not call
 * back into the informer). */
void lk_k8s_informer_foreach(struct lk_k8s_informer *inf, void (*fn)(void *arg, const json_t *obj),
			     void *arg);
size_t lk_k8s_informer_count(struct lk_k8s_informer *inf);
/* Counts for metrics and tests: lists made, watches started, 410s seen. */
struct lk_k8s_informer_stats {
	uint64_t lists, watches, expired, events;
};
void lk_k8s_informer_stats(struct lk_k8s_informer *inf, struct lk_k8s_informer_stats *ret);

/* ---- leader election ---------------------------------------------------------------- */

struct lk_k8s_leader_config {
	const char *ns;                 /* the Lease's namespace */
	const char *name;               /* the Lease's name */
	const char *identity;           /* NULL: $POD_NAME, else hostname + "_" + random */
	int64_t lease_ms;               /* 0: 15 s */
	int64_t renew_deadline_ms;      /* 0: 10 s */
	int64_t retry_ms;               /* 0: 2 s */
	/* Called from the election thread when leadership starts and when it ends (lost,
	 * not renewed within the deadline, or released at stop). */
	void (*on_change)(void *arg, bool leading);
	void *arg;
};

struct lk_k8s_leader;

int lk_k8s_leader_start(struct lk_k8s_client *c, const struct lk_k8s_leader_config *cfg,
			struct lk_k8s_leader **ret, struct lk_error *err)
	__attribute__((warn_unused_result));
/* Whether this process leads now (its last renewal is within the renew deadline). */
bool lk_k8s_leader_is_leading(const struct lk_k8s_leader *l);
/* The identity written into the Lease. Borrowed. */
const char *lk_k8s_leader_identity(const struct lk_k8s_leader *l);
/* Stops the thread; a leader releases the Lease (holder "" and a 1 s duration) so that a
 * standby takes over at once. NULL allowed. */
void lk_k8s_leader_stop(struct lk_k8s_leader *l);

/* MicroTime as the API server wants it: RFC 3339 UTC with exactly six fractional digits.
 * out must hold 32 bytes. */
char *lk_k8s_microtime(int64_t epoch_us, char *out);

#endif
