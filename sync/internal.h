/* internal.h — the parts of `latchkey sync` (not for other modules).
 *
 * main.c       flags, start-up and shutdown, the metrics/health listener
 * queue.c      the work queue: de-duplication, delayed adds, per-item backoff
 * stores.c     SecretStore / ClusterSecretStore: backend clients, logins, budgets,
 *              coalesced reads
 * remote.c     reading one remoteRef or extract: paths, properties, decoding
 * template.c   spec.target.template data: {{ .key }} substitution
 * externalsecret.c  the ExternalSecret reconciler
 * status.c     conditions, status writes and Events
 * metrics.c    the latchkey_sync_ metrics
 * docs/internals/sync.md describes the design.
 */
#ifndef LK_SYNC_INTERNAL_H
#define LK_SYNC_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"
#include "k8s/k8s.h"
#include "manifest/manifest.h"
#include "sync/sync.h"
#include "vault/vault.h"

/* ---- limits and defaults ------------------------------------------------------------ */

/* Most --namespace flags. */
#define SYNC_NAMESPACES_MAX 64
/* Most worker threads. */
#define SYNC_WORKERS_MAX 64
/* Worker threads unless --workers says. */
#define SYNC_WORKERS_DEFAULT 4
/* The longest refresh interval given as a number of seconds (a year). */
#define SYNC_REFRESH_MAX_S (366 * 24 * 3600LL)
/* Refresh interval when an ExternalSecret names none (ESO's default). */
#define SYNC_REFRESH_DEFAULT_MS (3600 * 1000LL)
/* How long a backend read may be reused by another ExternalSecret of the same path, at
 * most (--coalesce-window); never more than a tenth of the reader's refresh interval. */
#define SYNC_COALESCE_DEFAULT_MS (30 * 1000LL)
/* How often a worker looks whether the caches are synced, before its first reconcile. */
#define SYNC_CACHE_WAIT_MS 20L
/* A new sealing key this often unless --key-rotation says (Bitnami's 30 days). */
#define SYNC_KEY_ROTATION_DEFAULT_MS (30 * 24 * 3600 * 1000LL)
/* Per-item retry backoff after a failed reconcile. */
#define SYNC_BACKOFF_BASE_MS 1000
#define SYNC_BACKOFF_CAP_MS (5 * 60 * 1000LL)
/* Per-store backend budget unless --store-qps / --store-burst say. */
#define SYNC_STORE_QPS_DEFAULT 50.0
#define SYNC_STORE_BURST_DEFAULT 100
/* Attempts at a Secret write that meets a conflict (re-read and re-apply between). */
#define SYNC_CONFLICT_RETRIES 5
/* Longest queue key ("es/NAMESPACE/NAME"). */
#define SYNC_KEY_MAX 384
/* Longest message kept for a condition or an Event. */
#define SYNC_MESSAGE_MAX 512
/* Most data[] and dataFrom[] entries of one ExternalSecret. */
#define SYNC_REFS_MAX 1024
/* Backend reads kept for coalescing, at most. */
#define SYNC_CACHE_MAX 65536
/* The Secret holding the content-hash key, in the controller's namespace. */
#define SYNC_HASH_SECRET "latchkey-sync-hash-key"

/* Labels and annotations on the Secrets the controller writes. */
#define SYNC_LABEL_MANAGED "latchkey.io/managed"
#define SYNC_LABEL_OWNER "latchkey.io/external-secret"
#define SYNC_LABEL_SEALED_OWNER "latchkey.io/sealed-secret"
/* The keyed hash of the SealedSecret a Secret was last opened from (spec and scope). */
#define SYNC_ANNOT_SEALED "latchkey.io/sealed-hash"
#define SYNC_ANNOT_CONTENT "latchkey.io/content-hash"
#define SYNC_ANNOT_DATA "latchkey.io/data-hash"
#define SYNC_LABEL_ESO_MANAGED "reconcile.external-secrets.io/managed"
#define SYNC_ANNOT_FORCE "force-sync"
#define SYNC_ANNOT_ESO_FORCE "external-secrets.io/force-sync"
/* The id of the lk1 key a Secret's values are sealed to (encryption at source). */
#define SYNC_ANNOT_RECIPIENT "latchkey.io/recipient"
/* On an existing Secret: a SealedSecret of the same name may replace it (Bitnami's). */
#define SYNC_ANNOT_BITNAMI_MANAGED "sealedsecrets.bitnami.com/managed"

/* ---- options ------------------------------------------------------------------------ */

struct sync_options {
	const char *kubeconfig;
	const char *namespaces[SYNC_NAMESPACES_MAX];
	size_t nnamespaces;             /* 0: every namespace */
	const char *selector;           /* ExternalSecrets (and SealedSecrets) with these labels */
	unsigned workers;
	double qps;
	unsigned burst;
	bool leader_elect;
	const char *lease_ns;           /* default: the controller namespace */
	const char *lease_name;
	const char *metrics_addr;       /* NULL: no listener */
	bool compat_eso;                /* external-secrets.io resources instead of latchkey.io */
	bool compat_sealed;             /* bitnami.com/v1alpha1 SealedSecrets too */
	unsigned key_bits;              /* RSA size of the sealing keys made */
	int64_t key_rotation_ms;        /* a new sealing key this often; 0: never */
	const char *controller_ns;
	int64_t coalesce_ms;
	double store_qps;
	unsigned store_burst;
	int64_t lease_ms, renew_deadline_ms, retry_ms;
};

/* ---- the work queue (queue.c) ------------------------------------------------------- */

struct sync_queue;

struct sync_queue *sync_queue_new(void);
void sync_queue_free(struct sync_queue *q);
/* Adds key now (a key already waiting is not added twice; one being processed is
 * processed again once it is done). */
void sync_queue_add(struct sync_queue *q, const char *key);
/* Adds key after delay_ms (the earlier of two pending delays wins). */
void sync_queue_add_after(struct sync_queue *q, const char *key, int64_t delay_ms);
/* Adds key after its backoff (doubling per failure since the last forget). */
void sync_queue_add_backoff(struct sync_queue *q, const char *key);
/* Forgets key's failures. */
void sync_queue_forget(struct sync_queue *q, const char *key);
/* Blocks for the next key (copied into out); false once the queue is shut down. */
bool sync_queue_get(struct sync_queue *q, char *out, size_t outlen);
/* Marks key done: it may be handed out again. */
void sync_queue_done(struct sync_queue *q, const char *key);
/* Wakes every waiting get, which then returns false. */
void sync_queue_shutdown(struct sync_queue *q);
/* Keys waiting now (not the delayed ones), for the queue depth metric. */
size_t sync_queue_len(struct sync_queue *q);

/* ---- metrics (metrics.c) ------------------------------------------------------------ */

struct sync_metrics {
	struct lk_metrics *reg;
	struct lk_metric *reconciles, *errors, *duration, *queue_depth, *backend_requests,
		*backend_duration, *api_requests, *api_duration, *leader, *secret_writes,
		*coalesced, *stores, *key_uses, *key_age;
};

int sync_metrics_init(struct sync_metrics *m);
void sync_metrics_free(struct sync_metrics *m);
/* The observer of the Kubernetes client (lk_k8s_observe_fn). */
void sync_metrics_observe_api(void *arg, const char *verb, const char *resource, long status,
			      double seconds);
void sync_metrics_backend(struct sync_metrics *m, long status, double seconds);

/* ---- the controller ----------------------------------------------------------------- */

struct sync_stores;
struct sync_ctx;

/* The resource types served: latchkey.io/v1, or with --compat external-secrets ESO's;
 * SealedSecrets of latchkey.io/v1 and with --compat sealed-secrets Bitnami's. */
struct sync_kinds {
	struct lk_k8s_resource es, ss, css;
	struct lk_k8s_resource sealed[2];   /* latchkey.io, bitnami.com */
	size_t nsealed;                     /* 0: SealedSecrets are not served */
};

struct sync_ctx {
	struct sync_options opt;
	struct sync_kinds kinds;
	struct lk_k8s_client *k8s;
	struct sync_queue *queue;
	struct sync_stores *stores;
	struct sync_recipients *recipients;
	struct sync_metrics metrics;
	struct lk_k8s_leader *leader;

	/* One informer per watched namespace (or one for all). */
	struct lk_k8s_informer *es_inf[SYNC_NAMESPACES_MAX];
	struct lk_k8s_informer *ss_inf[SYNC_NAMESPACES_MAX];
	struct lk_k8s_informer *secret_inf[SYNC_NAMESPACES_MAX];
	struct lk_k8s_informer *css_inf;
	size_t ninf;
	/* SealedSecrets per watched namespace and served kind; the key Secrets. */
	struct lk_k8s_informer *sealed_inf[2][SYNC_NAMESPACES_MAX];
	struct lk_k8s_informer *keys_inf;
	struct sync_keys *keys;
	struct sync_sealed_arg { struct sync_ctx *ctx; size_t kind; } sealed_arg[2];

	unsigned char hash_key[32];     /* keys the content hashes (SYNC_HASH_SECRET) */
	atomic_bool hash_key_loaded;
	atomic_bool leading;
	atomic_bool stopping;
	pthread_mutex_t state_lock;
	char not_ready[SYNC_MESSAGE_MAX]; /* why /readyz says 503; "" when ready */
};

/* The informer of kind ("es", "ss", "secret") for ns (NULL when that namespace is not
 * watched). */
struct lk_k8s_informer *sync_informer_for(struct sync_ctx *ctx, const char *kind, const char *ns);
/* The cached object (new reference) or NULL. */
json_t *sync_cached(struct sync_ctx *ctx, const char *kind, const char *ns, const char *name);
/* Whether writes are allowed now: the leader (or no election), not stopping. */
bool sync_may_write(struct sync_ctx *ctx);

/* ---- stores (stores.c) -------------------------------------------------------------- */

struct sync_stores *sync_stores_new(struct sync_ctx *ctx);
void sync_stores_free(struct sync_stores *s);

/* The store an ExternalSecret in namespace ns names (kind "SecretStore" or
 * "ClusterSecretStore"), logged in: *ret is a reference (sync_store_release). -ENOENT
 * when it does not exist, -EACCES when a ClusterSecretStore does not admit the namespace,
 * -EINVAL when its spec is unusable, -EAGAIN when its login fails; err says why (never a
 * credential). */
struct sync_store;
int sync_store_resolve(struct sync_stores *s, const char *kind, const char *ns,
		       const char *name, struct sync_store **ret, struct lk_error *err);
void sync_store_release(struct sync_store *st);

/* Reads the KV secret at key (an ESO remoteRef.key, resolved as ESO does against the
 * store's path and version), version NULL or a number, into *ret (an object of the
 * secret's data, or with metadata its KV v2 custom_metadata: new reference). Reads of the same key within max_age_ms are coalesced
 * (one backend request); concurrent ones wait for the one in flight. -ENOENT when the
 * backend has no such secret. */
int sync_store_read(struct sync_store *st, const char *key, const char *version,
		    bool metadata, int64_t max_age_ms, json_t **ret, struct lk_error *err);

/* The store's reconcile: validates the spec, logs in, writes the store's Ready condition.
 * kind "SecretStore" or "ClusterSecretStore", ns "" for the latter. 0, or < 0 to retry
 * with backoff. */
int sync_store_reconcile(struct sync_stores *s, const char *kind, const char *ns,
			 const char *name);
/* Forgets a store that was deleted or changed (its client and token go). */
void sync_store_forget(struct sync_stores *s, const char *kind, const char *ns, const char *name);
/* Counts stores by state for the metrics. */
void sync_stores_metrics(struct sync_stores *s);

/* ---- remote data (remote.c) --------------------------------------------------------- */

/* The value of property in a KV secret's data: an exact top-level key first, else a
 * dotted path; NULL or "" property: the whole data as JSON. *ret: new secret. -ENOENT when
 * absent. */
int sync_remote_property(const json_t *data, const char *property, struct lk_secret **ret);
/* A value as its bytes: strings as they are, anything else as compact JSON. */
struct lk_secret *sync_remote_value(const json_t *v);
/* decodingStrategy: "None" / "" (as is), "Base64", "Base64URL", "Auto" (base64 of either
 * alphabet when it decodes, else as is). Replaces *io on success. -EINVAL with a reason. */
int sync_remote_decode(const char *strategy, struct lk_secret **io);

/* ---- templates (template.c) --------------------------------------------------------- */

/* Renders tpl with the fetched data (an object of key -> base64 string). Supported:
 * {{ .key }} and {{ index . "key" }} with optional spaces. An unknown key or any other
 * action is -EINVAL with err naming it (never a value). *ret: new secret. */
int sync_template_render(const char *tpl, const json_t *data_b64, struct lk_secret **ret,
			 struct lk_error *err);

/* ---- ExternalSecrets (externalsecret.c) --------------------------------------------- */

/* Reconciles "es/NS/NAME". 0 on success (the next refresh is scheduled), < 0 to retry
 * with backoff. */
int sync_externalsecret_reconcile(struct sync_ctx *ctx, const char *ns, const char *name);

/* Checks an ExternalSecret's spec as the reconciler reads it: 0, or -EINVAL with the
 * field and what was expected in err. */
int sync_externalsecret_check(const json_t *es, struct lk_error *err);

/* ---- encryption at source (encrypt.c) --------------------------------------------- */

/* ConfigMap recipients read lately, shared by the workers. */
struct sync_recipients;
struct sync_recipients *sync_recipients_new(void);
void sync_recipients_free(struct sync_recipients *r);

/* Checks an `encryption` object (NULL: none) found at field: exactly one of recipient (an
 * lk1 public key) and recipientFrom.configMapKeyRef (name, key). -EINVAL with err. */
int sync_encryption_check(const json_t *enc, const char *field, struct lk_error *err);
/* The recipient enc names for a resource of namespace ns: the literal key, or the one in
 * the ConfigMap (read again when the last read is older than max_age_ms). A private key
 * is refused, never held. *ret: owned, lk_key_free. */
int sync_encryption_recipient(struct sync_ctx *ctx, const json_t *enc, const char *field,
			      const char *ns, int64_t max_age_ms, struct lk_key **ret,
			      struct lk_error *err);
/* Seals every value of data (key -> base64 of the plaintext, replaced in place by the
 * base64 of its `lk1:` text) to recipient, bound to ns/name/key. */
int sync_encryption_seal(const struct lk_key *recipient, const char *ns, const char *name,
			 json_t *data, struct lk_error *err);

/* ---- writing Secrets (secret.c) ---------------------------------------------------- */

/* Which existing Secret a write may replace. */
enum sync_adopt {
	SYNC_ADOPT_ANY,         /* any not controlled by another resource (ESO's rule) */
	SYNC_ADOPT_MANAGED,     /* only its own, or one annotated SYNC_ANNOT_BITNAMI_MANAGED
				 * "true" (Bitnami's rule) */
};

/* A Secret as the controller wants it. */
struct sync_secret_want {
	const char *kind;               /* the owner's kind: metrics and messages */
	const char *ns, *name;
	const json_t *owner;            /* the resource the Secret is written for */
	bool owner_ref;                 /* with a controller ownerReference to owner */
	const char *owner_label;        /* the label in labels naming owner (may be NULL) */
	enum sync_adopt adopt;
	const char *type;
	const json_t *data;             /* key -> base64, as written */
	const json_t *labels;           /* set on the Secret; others' labels stay */
	const json_t *annotations;      /* likewise, with the content and data hashes */
	const json_t *finalizers;       /* NULL: the current ones stay */
	bool immutable;
	const char *content_hash;       /* compared with SYNC_ANNOT_CONTENT */
};

/* Creates or replaces the Secret unless it already is what w says (its content hash, its
 * data as last written, type, labels, controller). 0 written, 1 nothing to write, < 0
 * with err (-EPERM: owned by another or immutable; -EEXIST: not ours to take). */
int sync_secret_put(struct sync_ctx *ctx, const struct sync_secret_want *w, struct lk_error *err);
/* The current Secret ns/name with its data's keyed hash under "x-latchkey-data-hash": from
 * the cache of managed Secrets, or with from_api (or no cache for ns) from the API (then
 * with its data). *ret NULL when there is none. */
int sync_secret_current(struct sync_ctx *ctx, const char *ns, const char *name, bool from_api,
			json_t **ret, struct lk_error *err);
/* The Secret informer's transform (arg: the sync_ctx): what the cache of managed Secrets
 * keeps, metadata, type, immutable and the keyed hash of the data under
 * "x-latchkey-data-hash" instead of the data (no values kept between syncs). */
json_t *sync_secret_transform(void *arg, json_t *obj);
/* A label value naming a resource: its name when it fits a label (63 characters), else
 * a hash of it; out holds 64 bytes at least. */
void sync_owner_label(const char *name, char *out, size_t outlen);
/* A controller ownerReference to obj (new reference). */
json_t *sync_owner_ref(const json_t *obj);
/* The uid of obj's controller ownerReference, or NULL (borrowed). */
const char *sync_controller_uid(const json_t *obj);
/* Counts a Secret written for a resource of kind. */
void sync_count_write(struct sync_ctx *ctx, const char *kind);

/* ---- sealing keys (keys.c) --------------------------------------------------------- */

/* What the ring knows of one key. */
struct sync_key_info {
	char id[LK_KEY_ID_HEX + 1];
	char secret[LK_MANIFEST_NAME_MAX + 1];  /* the key Secret it came from */
	enum lk_key_kind kind;
	time_t not_before;                      /* its certificate's (lk1: its Secret's RSA key's) */
	bool has_private;
};

/* Every sealing key at one moment: readers hold a reference (sync_keys_acquire). */
struct sync_keyring {
	atomic_int refs;
	struct lk_keyset *ks;
	struct sync_key_info *info;             /* oldest first */
	size_t ninfo;
	char *cert_pem;                         /* the newest RSA key's certificate, or NULL */
	char *lk1_pub;                          /* the newest lk1 public key line, or NULL */
	char newest_rsa[LK_KEY_ID_HEX + 1], newest_lk1[LK_KEY_ID_HEX + 1];
	time_t newest_not_before;
};

struct sync_keys;
struct sync_keys *sync_keys_new(struct sync_ctx *ctx);
/* Starts the thread that makes the first key and rotates (it acts while leading). */
int sync_keys_start(struct sync_keys *k);
/* Stops that thread (before the informers stop); sync_keys_free stops it too. */
void sync_keys_stop(struct sync_keys *k);
void sync_keys_free(struct sync_keys *k);
/* Makes the key thread look again now (leadership changed). */
void sync_keys_wake(struct sync_keys *k);
/* The key Secrets' informer: the transform moves the keys into secure memory and caches
 * metadata only; on_delete drops a Secret's keys. */
json_t *sync_keys_transform(void *arg, json_t *obj);
void sync_keys_on_delete(void *arg, const json_t *obj);
/* The current ring (a reference, or NULL before the first key Secret is seen). */
struct sync_keyring *sync_keys_acquire(struct sync_keys *k);
void sync_keyring_release(struct sync_keyring *r);
/* Counts the rings built so far. */
uint64_t sync_keys_generation(struct sync_keys *k);
/* Remembers which keys open the SealedSecret of queue key ss_key: ids comma-separated
 * (at most SYNC_USE_IDS_MAX bytes), NULL to forget it. */
#define SYNC_USE_IDS_MAX (4 * (LK_KEY_ID_HEX + 1))
void sync_keys_note_use(struct sync_keys *k, const char *ss_key, const char *ids);
/* The first key that opened the SealedSecret ss_key last time, into out; false if none. */
bool sync_keys_last_use(struct sync_keys *k, const char *ss_key, char *out, size_t outlen);
/* Sets the inventory metrics: SealedSecrets per key, age per key. */
void sync_keys_metrics(struct sync_keys *k);

/* ---- SealedSecrets (sealedsecret.c) ------------------------------------------------ */

/* Reconciles "sealed/I/NS/NAME" (I: the index in kinds.sealed). 0 done, < 0 to retry. */
int sync_sealedsecret_reconcile(struct sync_ctx *ctx, size_t kind, const char *ns, const char *name);
/* Enqueues the SealedSecrets that are not Synced (a key came). */
void sync_sealedsecrets_retry(struct sync_ctx *ctx);
/* The informer of SealedSecrets of kind index i for ns, or NULL. */
struct lk_k8s_informer *sync_sealed_informer(struct sync_ctx *ctx, size_t i, const char *ns);

/* ---- status and events (status.c) --------------------------------------------------- */

/* Sets the Ready condition (Synced for SealedSecrets) of obj (a resource of res) and
 * writes the status when it changed: ready, reason, message (no values), plus extra status
 * members (NULL allowed; merged in). An Event (Warning when not ready) goes out when the condition's status,
 * reason or message changed. */
int sync_status_write(struct sync_ctx *ctx, const struct lk_k8s_resource *res,
		      const json_t *obj, bool ready, const char *reason, const char *message,
		      const json_t *extra);

/* ---- hashing (externalsecret.c) ----------------------------------------------------- */

/* Keyed BLAKE2b-256 (the controller's hash key) of a canonical form of type, labels,
 * annotations and data (key -> base64): hex into out (65 bytes). */
void sync_content_hash(const struct sync_ctx *ctx, const char *type, const json_t *labels,
		       const json_t *annotations, const json_t *data, char *out);

#endif
