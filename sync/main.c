/* main.c — `latchkey sync`: flags, start-up and shutdown, informers, workers, leader
 * election, and the listener serving /metrics, /healthz and /readyz (sync.h).
 */
#include "sync/internal.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/exit.h"
#include "common/httpd.h"
#include "common/json.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "http/http.h"
#include "manifest/manifest.h"
#include "sealing/sealing.h"

/* Largest /metrics page rendered. */
#define METRICS_PAGE_MAX (8u << 20)
/* Backoff while the hash key cannot be read or made. */
#define HASH_KEY_RETRY_MS 2000
/* The default listener of /metrics, /healthz, /readyz. */
#define METRICS_ADDR_DEFAULT "0.0.0.0:8080"
/* How long a connection to the metrics and health endpoints may take to send its request. */
#define SYNC_HEADER_TIMEOUT_MS 10000

static const char usage_text[] =
	"usage: latchkey sync [--kubeconfig FILE] [--namespace NS]... [--selector LABELS]\n"
	"                     [--workers N] [--qps N] [--burst N] [--leader-elect=true|false]\n"
	"                     [--lease-namespace NS] [--lease-name NAME] [--metrics ADDR]\n"
	"                     [--compat external-secrets,sealed-secrets] [--controller-namespace NS]\n"
	"                     [--coalesce-window D] [--store-qps N] [--store-burst N]\n"
	"                     [--lease-duration D] [--renew-deadline D] [--retry-period D]\n"
	"                     [--key-rotation D] [--key-size BITS] [--log-level L]\n"
	"Reconciles ExternalSecrets into Secrets from the backend each SecretStore names, and\n"
	"SealedSecrets into Secrets with the sealing keys it keeps in --controller-namespace.\n"
	"Every flag has an environment equivalent: LATCHKEY_SYNC_ and the flag's name in capitals\n"
	"with '_' for '-' (LATCHKEY_SYNC_NAMESPACE takes a comma-separated list). docs/sync.md\n"
	"describes them.\n";

/* ---- the informers' handlers -------------------------------------------------------- */

static const char *
mstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

static void
enqueue_es(struct sync_ctx *ctx, const json_t *obj)
{
	char key[SYNC_KEY_MAX];

	snprintf(key, sizeof(key), "es/%s/%s", mstr(obj, "namespace") ? mstr(obj, "namespace") : "",
		 mstr(obj, "name") ? mstr(obj, "name") : "");
	sync_queue_add(ctx->queue, key);
}

static void
es_add(void *arg, const json_t *obj)
{
	enqueue_es(arg, obj);
}

/* Our own status writes change the resourceVersion: only the spec and the metadata a
 * force-sync annotation lives in are reasons to reconcile. */
static void
es_update(void *arg, const json_t *old, const json_t *obj)
{
	const json_t *om = json_object_get(old, "metadata"), *nm = json_object_get(obj, "metadata");

	if (!json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")) ||
	    !json_equal(json_object_get(om, "labels"), json_object_get(nm, "labels")) ||
	    !json_equal(json_object_get(om, "annotations"), json_object_get(nm, "annotations")) ||
	    !json_equal(json_object_get(om, "deletionTimestamp"), json_object_get(nm, "deletionTimestamp")))
		enqueue_es(arg, obj);
}

struct store_match {
	struct sync_ctx *ctx;
	const char *kind, *ns, *name;
};

static void
es_if_uses(void *arg, const json_t *es)
{
	struct store_match *m = arg;
	const json_t *ref = json_object_get(json_object_get(es, "spec"), "secretStoreRef");
	const char *kind = json_string_value(json_object_get(ref, "kind"));
	const char *name = json_string_value(json_object_get(ref, "name"));

	if (kind == NULL)
		kind = "SecretStore";
	if (name == NULL || strcmp(name, m->name) != 0 || strcmp(kind, m->kind) != 0)
		return;
	if (strcmp(kind, "SecretStore") == 0 && mstr(es, "namespace") != NULL &&
	    strcmp(mstr(es, "namespace"), m->ns) != 0)
		return;
	enqueue_es(m->ctx, es);
}

static void
store_changed(struct sync_ctx *ctx, const char *kind, const json_t *obj)
{
	const char *ns = strcmp(kind, "ClusterSecretStore") == 0 ? "" :
		(mstr(obj, "namespace") ? mstr(obj, "namespace") : "");
	struct store_match m = { ctx, kind, ns, mstr(obj, "name") };
	char key[SYNC_KEY_MAX];

	if (m.name == NULL)
		return;
	snprintf(key, sizeof(key), "store/%s/%s/%s", kind, ns, m.name);
	sync_queue_add(ctx->queue, key);
	for (size_t i = 0; i < ctx->ninf; i++)
		lk_k8s_informer_foreach(ctx->es_inf[i], es_if_uses, &m);
}

static void ss_add(void *arg, const json_t *obj) { store_changed(arg, "SecretStore", obj); }
static void css_add(void *arg, const json_t *obj) { store_changed(arg, "ClusterSecretStore", obj); }

static void
ss_update(void *arg, const json_t *old, const json_t *obj)
{
	if (!json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")))
		store_changed(arg, "SecretStore", obj);
}

static void
css_update(void *arg, const json_t *old, const json_t *obj)
{
	if (!json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")))
		store_changed(arg, "ClusterSecretStore", obj);
}

static void
ss_delete(void *arg, const json_t *obj)
{
	struct sync_ctx *ctx = arg;

	sync_store_forget(ctx->stores, "SecretStore", mstr(obj, "namespace") ? mstr(obj, "namespace") : "",
			  mstr(obj, "name") ? mstr(obj, "name") : "");
	store_changed(ctx, "SecretStore", obj);
}

static void
css_delete(void *arg, const json_t *obj)
{
	struct sync_ctx *ctx = arg;

	sync_store_forget(ctx->stores, "ClusterSecretStore", "", mstr(obj, "name") ? mstr(obj, "name") : "");
	store_changed(ctx, "ClusterSecretStore", obj);
}

/* A managed Secret edited (its data no longer what was written) or deleted: reconcile
 * the ExternalSecret that owns it. */
static void
secret_owner(struct sync_ctx *ctx, const json_t *obj)
{
	const char *owner = json_string_value(json_object_get(json_object_get(json_object_get(obj,
		"metadata"), "labels"), SYNC_LABEL_OWNER));
	char key[SYNC_KEY_MAX];

	if (owner == NULL || mstr(obj, "namespace") == NULL)
		return;
	snprintf(key, sizeof(key), "es/%s/%s", mstr(obj, "namespace"), owner);
	sync_queue_add(ctx->queue, key);
}

static void secret_sealed_owner(struct sync_ctx *ctx, const json_t *obj);

static void
secret_update(void *arg, const json_t *old, const json_t *obj)
{
	const json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	const char *written = json_string_value(json_object_get(ann, SYNC_ANNOT_DATA));
	const char *now = json_string_value(json_object_get(obj, "x-latchkey-data-hash"));

	(void)old;
	if (written == NULL || now == NULL || strcmp(written, now) != 0) {
		secret_owner(arg, obj);
		secret_sealed_owner(arg, obj);
	}
}

static void
secret_delete(void *arg, const json_t *obj)
{
	secret_owner(arg, obj);
	secret_sealed_owner(arg, obj);
}

static void
enqueue_sealed(struct sync_ctx *ctx, size_t kind, const json_t *obj)
{
	char key[SYNC_KEY_MAX];

	if (mstr(obj, "namespace") == NULL || mstr(obj, "name") == NULL)
		return;
	snprintf(key, sizeof(key), "sealed/%zu/%s/%s", kind, mstr(obj, "namespace"), mstr(obj, "name"));
	sync_queue_add(ctx->queue, key);
}

static void
sealed_add(void *arg, const json_t *obj)
{
	struct sync_sealed_arg *a = arg;

	enqueue_sealed(a->ctx, a->kind, obj);
}

/* As for ExternalSecrets: our status writes are no reason to reconcile. */
static void
sealed_update(void *arg, const json_t *old, const json_t *obj)
{
	struct sync_sealed_arg *a = arg;
	const json_t *om = json_object_get(old, "metadata"), *nm = json_object_get(obj, "metadata");

	if (!json_equal(json_object_get(old, "spec"), json_object_get(obj, "spec")) ||
	    !json_equal(json_object_get(om, "annotations"), json_object_get(nm, "annotations")) ||
	    !json_equal(json_object_get(om, "deletionTimestamp"), json_object_get(nm, "deletionTimestamp")))
		enqueue_sealed(a->ctx, a->kind, obj);
}

static void
sealed_delete(void *arg, const json_t *obj)
{
	struct sync_sealed_arg *a = arg;

	enqueue_sealed(a->ctx, a->kind, obj);
}

/* A Secret a SealedSecret wrote (same name) edited or deleted: that SealedSecret, of
 * whichever kind, puts it back. */
static void
secret_sealed_owner(struct sync_ctx *ctx, const json_t *obj)
{
	const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");

	if (json_object_get(labels, SYNC_LABEL_SEALED_OWNER) == NULL)
		return;
	for (size_t i = 0; i < ctx->kinds.nsealed; i++)
		enqueue_sealed(ctx, i, obj);
}

/* ---- the context -------------------------------------------------------------------- */

struct lk_k8s_informer *
sync_informer_for(struct sync_ctx *ctx, const char *kind, const char *ns)
{
	struct lk_k8s_informer **arr;

	if (strcmp(kind, "css") == 0)
		return ctx->css_inf;
	arr = strcmp(kind, "es") == 0 ? ctx->es_inf : strcmp(kind, "ss") == 0 ? ctx->ss_inf :
	      ctx->secret_inf;
	if (ctx->opt.nnamespaces == 0)
		return arr[0];
	for (size_t i = 0; i < ctx->opt.nnamespaces; i++) {
		if (strcmp(ctx->opt.namespaces[i], ns) == 0)
			return arr[i];
	}
	return NULL;
}

json_t *
sync_cached(struct sync_ctx *ctx, const char *kind, const char *ns, const char *name)
{
	struct lk_k8s_informer *inf = sync_informer_for(ctx, kind, ns);

	return inf != NULL ? lk_k8s_informer_get(inf, strcmp(kind, "css") == 0 ? "" : ns, name) : NULL;
}

bool
sync_may_write(struct sync_ctx *ctx)
{
	return atomic_load(&ctx->leading) && !atomic_load(&ctx->stopping);
}

static void
set_not_ready(struct sync_ctx *ctx, const char *why)
{
	pthread_mutex_lock(&ctx->state_lock);
	snprintf(ctx->not_ready, sizeof(ctx->not_ready), "%s", why != NULL ? why : "");
	pthread_mutex_unlock(&ctx->state_lock);
}

static bool
caches_synced(struct sync_ctx *ctx)
{
	for (size_t i = 0; i < ctx->ninf; i++) {
		if (!lk_k8s_informer_synced(ctx->es_inf[i]) || !lk_k8s_informer_synced(ctx->ss_inf[i]) ||
		    !lk_k8s_informer_synced(ctx->secret_inf[i]))
			return false;
	}
	for (size_t k = 0; k < ctx->kinds.nsealed; k++)
		for (size_t i = 0; i < ctx->ninf; i++)
			if (!lk_k8s_informer_synced(ctx->sealed_inf[k][i]))
				return false;
	if (ctx->keys_inf != NULL && !lk_k8s_informer_synced(ctx->keys_inf))
		return false;
	return ctx->css_inf == NULL || lk_k8s_informer_synced(ctx->css_inf);
}

static void
enqueue_all_es(void *arg, const json_t *obj)
{
	enqueue_es(arg, obj);
}

static void
enqueue_ss(void *arg, const json_t *obj)
{
	char key[SYNC_KEY_MAX];

	if (mstr(obj, "name") != NULL && mstr(obj, "namespace") != NULL) {
		snprintf(key, sizeof(key), "store/SecretStore/%s/%s", mstr(obj, "namespace"), mstr(obj, "name"));
		sync_queue_add(((struct sync_ctx *)arg)->queue, key);
	}
}

static void
enqueue_css(void *arg, const json_t *obj)
{
	char key[SYNC_KEY_MAX];

	if (mstr(obj, "name") != NULL) {
		snprintf(key, sizeof(key), "store/ClusterSecretStore//%s", mstr(obj, "name"));
		sync_queue_add(((struct sync_ctx *)arg)->queue, key);
	}
}

/* Everything, once: at start without election, and when this replica starts leading (a
 * standby reconciled nothing, stores included). */
static void
enqueue_all(struct sync_ctx *ctx)
{
	lk_k8s_informer_foreach(ctx->css_inf, enqueue_css, ctx);
	for (size_t i = 0; i < ctx->ninf; i++) {
		lk_k8s_informer_foreach(ctx->ss_inf[i], enqueue_ss, ctx);
		lk_k8s_informer_foreach(ctx->es_inf[i], enqueue_all_es, ctx);
	}
	for (size_t k = 0; k < ctx->kinds.nsealed; k++)
		for (size_t i = 0; i < ctx->ninf; i++)
			lk_k8s_informer_foreach(ctx->sealed_inf[k][i], sealed_add, &ctx->sealed_arg[k]);
}

static void
on_leader(void *arg, bool leading)
{
	struct sync_ctx *ctx = arg;

	atomic_store(&ctx->leading, leading);
	lk_metric_set(ctx->metrics.leader, NULL, leading ? 1 : 0);
	lk_log(LK_INFO, leading ? "leading: writes start" : "not leading: writes stop",
	       LK_STR("identity", lk_k8s_leader_identity(ctx->leader)));
	if (leading)
		enqueue_all(ctx);
	if (ctx->keys != NULL)
		sync_keys_wake(ctx->keys);
}

/* ---- the workers -------------------------------------------------------------------- */

static int
reconcile_key(struct sync_ctx *ctx, const char *key, const char **ret_kind)
{
	char copy[SYNC_KEY_MAX], *parts[4] = { NULL }, *save = NULL, *p;
	size_t n = 0;

	snprintf(copy, sizeof(copy), "%s", key);
	/* Empty fields count: "store/ClusterSecretStore//name". */
	for (p = copy; n < 4; n++) {
		parts[n] = p;
		if ((p = strchr(p, '/')) == NULL)
			break;
		*p++ = '\0';
	}
	(void)save;
	if (strcmp(parts[0], "es") == 0 && n >= 2) {
		*ret_kind = "ExternalSecret";
		return sync_externalsecret_reconcile(ctx, parts[1], parts[2]);
	}
	if (strcmp(parts[0], "sealed") == 0 && n >= 3) {
		*ret_kind = "SealedSecret";
		return sync_sealedsecret_reconcile(ctx, (size_t)(parts[1][0] - '0'), parts[2], parts[3]);
	}
	if (strcmp(parts[0], "store") == 0 && n >= 3) {
		/* A literal, not parts[1]: the kind outlives this frame (the metrics). */
		*ret_kind = strcmp(parts[1], "ClusterSecretStore") == 0 ? "ClusterSecretStore" : "SecretStore";
		return sync_store_reconcile(ctx->stores, parts[1], parts[2], parts[3]);
	}
	*ret_kind = "unknown";
	return 0;
}

static void *
worker_main(void *arg)
{
	struct sync_ctx *ctx = arg;
	char key[SYNC_KEY_MAX];

	/* As client-go's WaitForCacheSync: nothing is reconciled before every cache holds
	 * what the API server has. Against half-filled caches a restart would judge objects
	 * wrongly (a Secret not seen yet, no sealing key yet) and write a status, and an
	 * Event, that the next pass takes back. */
	while (!caches_synced(ctx) && !atomic_load(&ctx->stopping)) {
		struct timespec ts = { 0, SYNC_CACHE_WAIT_MS * 1000000L };

		nanosleep(&ts, NULL);
	}
	while (sync_queue_get(ctx->queue, key, sizeof(key))) {
		const char *kind = "unknown";
		int64_t t0 = lk_now_mono_ms();
		int r;

		if (!sync_may_write(ctx)) {
			/* A standby keeps its caches warm; the leader does the work. A new leader
			 * enqueues everything again. */
			sync_queue_done(ctx->queue, key);
			continue;
		}
		r = reconcile_key(ctx, key, &kind);
		lk_metric_add(ctx->metrics.reconciles, (const char *const[]){ kind }, 1);
		lk_metric_observe(ctx->metrics.duration, (const char *const[]){ kind },
				  (double)(lk_now_mono_ms() - t0) / 1000.0);
		if (r < 0) {
			lk_metric_add(ctx->metrics.errors, (const char *const[]){ kind }, 1);
			sync_queue_add_backoff(ctx->queue, key);
		} else {
			sync_queue_forget(ctx->queue, key);
		}
		sync_queue_done(ctx->queue, key);
	}
	return NULL;
}

/* ---- the hash key ------------------------------------------------------------------- */

/* Reads the content-hash key from its Secret, or makes it (the first controller to start
 * does; a second one reads what the first made). */
static int
load_hash_key(struct sync_ctx *ctx, struct lk_error *err)
{
	const char *ns = ctx->opt.controller_ns;
	struct lk_k8s_error kerr;
	struct lk_secret *key = NULL;
	json_t *obj = NULL, *body;
	unsigned char fresh[32];
	char *b64 = NULL;
	const char *v;
	int r;

	r = lk_k8s_get(ctx->k8s, &lk_k8s_secrets, ns, SYNC_HASH_SECRET, &obj, &kerr);
	if (r == -ENOENT) {
		randombytes_buf(fresh, sizeof(fresh));
		if ((r = lk_b64_encode(fresh, sizeof(fresh), LK_B64_STD, &b64)) < 0)
			return lk_error_set(err, r, "out of memory");
		sodium_memzero(fresh, sizeof(fresh));
		body = json_pack("{s:{s:s, s:s, s:{s:s}}, s:s, s:{s:s}}", "metadata", "name",
				 SYNC_HASH_SECRET, "namespace", ns, "labels",
				 "app.kubernetes.io/managed-by", "latchkey", "type", "Opaque", "data",
				 "key", b64);
		sodium_memzero(b64, strlen(b64));
		free(b64);
		r = body != NULL ? lk_k8s_create(ctx->k8s, &lk_k8s_secrets, ns, body, NULL, &kerr) : -ENOMEM;
		json_decref(body);
		if (r < 0 && r != -EEXIST)
			return lk_error_set(err, r, "the hash key Secret %s/%s: %s", ns, SYNC_HASH_SECRET,
					    kerr.base.msg);
		r = lk_k8s_get(ctx->k8s, &lk_k8s_secrets, ns, SYNC_HASH_SECRET, &obj, &kerr);
	}
	if (r < 0)
		return lk_error_set(err, r, "the hash key Secret %s/%s: %s", ns, SYNC_HASH_SECRET,
				    kerr.base.msg);
	v = json_string_value(json_object_get(json_object_get(obj, "data"), "key"));
	r = v != NULL ? lk_b64_decode(v, strlen(v), LK_B64_STD, &key) : -ENOENT;
	json_decref(obj);
	if (r < 0 || lk_secret_len(key) != sizeof(ctx->hash_key)) {
		lk_secret_free(key);
		return lk_error_set(err, -EINVAL, "the hash key Secret %s/%s: data.key is not 32 bytes "
				    "of base64", ns, SYNC_HASH_SECRET);
	}
	memcpy(ctx->hash_key, lk_secret_bytes(key), sizeof(ctx->hash_key));
	lk_secret_free(key);
	atomic_store(&ctx->hash_key_loaded, true);
	return 0;
}

/* ---- the listener ------------------------------------------------------------------- */

static void
handle(void *arg, struct lk_http_req *req)
{
	struct sync_ctx *ctx = arg;
	const char *path = lk_http_path(req);
	char why[SYNC_MESSAGE_MAX];

	if (strcmp(lk_http_method(req), "GET") != 0 && strcmp(lk_http_method(req), "HEAD") != 0) {
		lk_http_respond_error(req, 405, "method not allowed", "GET only");
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		lk_http_respond(req, 200, "text/plain", "ok\n", 3);
	} else if (strcmp(path, "/readyz") == 0) {
		pthread_mutex_lock(&ctx->state_lock);
		snprintf(why, sizeof(why), "%s", ctx->not_ready);
		pthread_mutex_unlock(&ctx->state_lock);
		if (why[0] == '\0' && !caches_synced(ctx))
			snprintf(why, sizeof(why), "the caches are not synced with the API server yet");
		if (why[0] == '\0')
			lk_http_respond(req, 200, "text/plain", "ok\n", 3);
		else
			lk_http_respond_error(req, 503, "not ready", why);
	} else if (strcmp(path, "/v1/cert.pem") == 0 || strcmp(path, "/v1/lk1.pub") == 0) {
		/* The public halves of the newest sealing keys, for `latchkey seal --cert URL`
		 * and `kubeseal --cert URL`. */
		struct sync_keyring *ring = ctx->keys != NULL ? sync_keys_acquire(ctx->keys) : NULL;
		bool pem = strcmp(path, "/v1/cert.pem") == 0;
		const char *text = ring == NULL ? NULL : pem ? ring->cert_pem : ring->lk1_pub;

		if (text != NULL)
			lk_http_respond(req, 200, pem ? "application/x-pem-file" : "text/plain", text,
					strlen(text));
		else
			lk_http_respond_error(req, ctx->keys == NULL ? 404 : 503, "no key",
					      ctx->keys == NULL ? "SealedSecrets are not served by this cluster" :
					      "no sealing key yet");
		sync_keyring_release(ring);
	} else if (strcmp(path, "/metrics") == 0) {
		struct lk_buf out;

		lk_metric_set(ctx->metrics.queue_depth, NULL, (double)sync_queue_len(ctx->queue));
		sync_stores_metrics(ctx->stores);
		if (ctx->keys != NULL)
			sync_keys_metrics(ctx->keys);
		lk_buf_init(&out, METRICS_PAGE_MAX, false);
		if (lk_metrics_render(ctx->metrics.reg, &out) == 0)
			lk_http_respond(req, 200, LK_METRICS_CONTENT_TYPE, out.data, out.len);
		else
			lk_http_respond_error(req, 500, "internal error", "metrics page too large");
		lk_buf_free(&out);
	} else {
		lk_http_respond_error(req, 404, "not found", "GET /metrics, /healthz, /readyz, "
				      "/v1/cert.pem or /v1/lk1.pub");
	}
}

/* ---- flags -------------------------------------------------------------------------- */

enum {
	OPT_KUBECONFIG = 256, OPT_NAMESPACE, OPT_SELECTOR, OPT_WORKERS, OPT_QPS, OPT_BURST,
	OPT_LEADER_ELECT, OPT_LEASE_NS, OPT_LEASE_NAME, OPT_METRICS, OPT_COMPAT, OPT_CONTROLLER_NS,
	OPT_COALESCE, OPT_STORE_QPS, OPT_STORE_BURST, OPT_LOG_LEVEL, OPT_LEASE_DURATION,
	OPT_RENEW_DEADLINE, OPT_RETRY_PERIOD, OPT_KEY_ROTATION, OPT_KEY_SIZE,
};

static const struct option longopts[] = {
	{ "kubeconfig", required_argument, NULL, OPT_KUBECONFIG },
	{ "namespace", required_argument, NULL, OPT_NAMESPACE },
	{ "selector", required_argument, NULL, OPT_SELECTOR },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "qps", required_argument, NULL, OPT_QPS },
	{ "burst", required_argument, NULL, OPT_BURST },
	{ "leader-elect", optional_argument, NULL, OPT_LEADER_ELECT },
	{ "lease-namespace", required_argument, NULL, OPT_LEASE_NS },
	{ "lease-name", required_argument, NULL, OPT_LEASE_NAME },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "compat", required_argument, NULL, OPT_COMPAT },
	{ "controller-namespace", required_argument, NULL, OPT_CONTROLLER_NS },
	{ "coalesce-window", required_argument, NULL, OPT_COALESCE },
	{ "store-qps", required_argument, NULL, OPT_STORE_QPS },
	{ "store-burst", required_argument, NULL, OPT_STORE_BURST },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "lease-duration", required_argument, NULL, OPT_LEASE_DURATION },
	{ "renew-deadline", required_argument, NULL, OPT_RENEW_DEADLINE },
	{ "retry-period", required_argument, NULL, OPT_RETRY_PERIOD },
	{ "key-rotation", required_argument, NULL, OPT_KEY_ROTATION },
	{ "key-size", required_argument, NULL, OPT_KEY_SIZE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The argument list with LATCHKEY_SYNC_* variables first, so that flags win. Strings of
 * the environment are borrowed; the list is owned (free). */
static char **
with_env(int argc, char **argv, int *ret_argc, char **ret_nsbuf)
{
	char **out = calloc((size_t)argc + 2 * (sizeof(longopts) / sizeof(longopts[0])) +
			    2 * SYNC_NAMESPACES_MAX + 1, sizeof(*out));
	char env[96], *nsbuf = NULL;
	int n = 0;

	if (out == NULL)
		return NULL;
	out[n++] = argv[0];
	for (size_t i = 0; longopts[i].name != NULL; i++) {
		const char *v;
		size_t j;

		if (longopts[i].val == 'h')
			continue;
		snprintf(env, sizeof(env), "LATCHKEY_SYNC_");
		for (j = 0; longopts[i].name[j] != '\0' && j + 15 < sizeof(env); j++)
			env[14 + j] = longopts[i].name[j] == '-' ? '_' :
				      (char)(longopts[i].name[j] - ('a' <= longopts[i].name[j] &&
								    longopts[i].name[j] <= 'z' ? 32 : 0));
		env[14 + j] = '\0';
		if ((v = getenv(env)) == NULL || v[0] == '\0')
			continue;
		if (longopts[i].val == OPT_NAMESPACE) {
			/* A comma-separated list. */
			char *p, *save = NULL;

			free(nsbuf);
			if ((nsbuf = strdup(v)) == NULL)
				continue;
			for (p = strtok_r(nsbuf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
				if (n >= (int)(2 * SYNC_NAMESPACES_MAX))
					break;
				out[n++] = "--namespace";
				out[n++] = p;
			}
			continue;
		}
		if (asprintf(&out[n], "--%s=%s", longopts[i].name, v) >= 0)
			n++;
	}
	for (int i = 1; i < argc; i++)
		out[n++] = argv[i];
	out[n] = NULL;
	*ret_argc = n;
	*ret_nsbuf = nsbuf;
	return out;
}

static int
parse_duration_flag(const char *flag, const char *v, int64_t *ret)
{
	if (lk_duration_parse(v, ret) < 0 || *ret <= 0) {
		fprintf(stderr, "latchkey sync: --%s: expected a duration such as 15s\n", flag);
		return -1;
	}
	return 0;
}

static int
parse_flags(int argc, char **argv, struct sync_options *o, enum lk_log_level *level)
{
	const char *pod_ns = getenv("POD_NAMESPACE");
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->workers = SYNC_WORKERS_DEFAULT;
	o->leader_elect = true;
	o->lease_name = "latchkey-sync";
	o->metrics_addr = METRICS_ADDR_DEFAULT;
	o->controller_ns = pod_ns != NULL && pod_ns[0] != '\0' ? pod_ns : "latchkey-system";
	o->coalesce_ms = SYNC_COALESCE_DEFAULT_MS;
	o->store_qps = SYNC_STORE_QPS_DEFAULT;
	o->store_burst = SYNC_STORE_BURST_DEFAULT;
	o->key_bits = LK_RSA_BITS_DEFAULT;
	o->key_rotation_ms = SYNC_KEY_ROTATION_DEFAULT_MS;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_KUBECONFIG: o->kubeconfig = optarg; break;
		case OPT_NAMESPACE:
			if (o->nnamespaces >= SYNC_NAMESPACES_MAX || !lk_manifest_label_valid(optarg)) {
				fprintf(stderr, "latchkey sync: --namespace %s: expected a namespace (at most %d)\n",
					optarg, SYNC_NAMESPACES_MAX);
				return -1;
			}
			o->namespaces[o->nnamespaces++] = optarg;
			break;
		case OPT_SELECTOR: o->selector = optarg; break;
		case OPT_WORKERS:
			o->workers = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o->workers == 0 || o->workers > SYNC_WORKERS_MAX) {
				fprintf(stderr, "latchkey sync: --workers: expected 1 to %d\n", SYNC_WORKERS_MAX);
				return -1;
			}
			break;
		case OPT_QPS:
			o->qps = strtod(optarg, &end);
			if (*end != '\0' || o->qps <= 0) {
				fprintf(stderr, "latchkey sync: --qps: expected a positive number\n");
				return -1;
			}
			break;
		case OPT_BURST:
			o->burst = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o->burst == 0) {
				fprintf(stderr, "latchkey sync: --burst: expected a positive integer\n");
				return -1;
			}
			break;
		case OPT_LEADER_ELECT:
			if (optarg == NULL || strcmp(optarg, "true") == 0) {
				o->leader_elect = true;
			} else if (strcmp(optarg, "false") == 0) {
				o->leader_elect = false;
			} else {
				fprintf(stderr, "latchkey sync: --leader-elect: expected true or false\n");
				return -1;
			}
			break;
		case OPT_LEASE_NS: o->lease_ns = optarg; break;
		case OPT_LEASE_NAME: o->lease_name = optarg; break;
		case OPT_METRICS: o->metrics_addr = strcmp(optarg, "0") == 0 ? NULL : optarg; break;
		case OPT_COMPAT: {
			char copy[128], *p, *save = NULL;

			snprintf(copy, sizeof(copy), "%s", optarg);
			for (p = strtok_r(copy, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
				if (strcmp(p, "external-secrets") == 0) {
					o->compat_eso = true;
				} else if (strcmp(p, "sealed-secrets") == 0) {
					o->compat_sealed = true;
				} else {
					fprintf(stderr, "latchkey sync: --compat: expected external-secrets and/or "
						"sealed-secrets (comma-separated)\n");
					return -1;
				}
			}
			break;
		}
		case OPT_CONTROLLER_NS:
			if (!lk_manifest_label_valid(optarg)) {
				fprintf(stderr, "latchkey sync: --controller-namespace: expected a namespace\n");
				return -1;
			}
			o->controller_ns = optarg;
			break;
		case OPT_COALESCE:
			if (lk_duration_parse(optarg, &o->coalesce_ms) < 0) {
				fprintf(stderr, "latchkey sync: --coalesce-window: expected a duration such as 30s\n");
				return -1;
			}
			break;
		case OPT_STORE_QPS:
			o->store_qps = strtod(optarg, &end);
			if (*end != '\0' || o->store_qps <= 0) {
				fprintf(stderr, "latchkey sync: --store-qps: expected a positive number\n");
				return -1;
			}
			break;
		case OPT_STORE_BURST:
			o->store_burst = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o->store_burst == 0) {
				fprintf(stderr, "latchkey sync: --store-burst: expected a positive integer\n");
				return -1;
			}
			break;
		case OPT_LOG_LEVEL:
			if (lk_log_level_parse(optarg, level) < 0) {
				fprintf(stderr, "latchkey sync: --log-level: expected debug, info, warn or error\n");
				return -1;
			}
			break;
		case OPT_LEASE_DURATION:
			if (parse_duration_flag("lease-duration", optarg, &o->lease_ms) < 0)
				return -1;
			break;
		case OPT_RENEW_DEADLINE:
			if (parse_duration_flag("renew-deadline", optarg, &o->renew_deadline_ms) < 0)
				return -1;
			break;
		case OPT_RETRY_PERIOD:
			if (parse_duration_flag("retry-period", optarg, &o->retry_ms) < 0)
				return -1;
			break;
		case OPT_KEY_ROTATION:
			if (lk_duration_parse(optarg, &o->key_rotation_ms) < 0 || o->key_rotation_ms < 0 ||
			    (o->key_rotation_ms > 0 && o->key_rotation_ms < 1000)) {
				fprintf(stderr, "latchkey sync: --key-rotation: expected a duration such as "
					"720h (at least 1s), or 0 (never)\n");
				return -1;
			}
			break;
		case OPT_KEY_SIZE:
			o->key_bits = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o->key_bits < LK_RSA_BITS_MIN || o->key_bits > LK_RSA_BITS_MAX ||
			    o->key_bits % 1024 != 0) {
				fprintf(stderr, "latchkey sync: --key-size: expected a multiple of 1024 from %d "
					"to %d\n", LK_RSA_BITS_MIN, LK_RSA_BITS_MAX);
				return -1;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		default:
			fputs(usage_text, stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "latchkey sync: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->lease_ns == NULL)
		o->lease_ns = o->controller_ns;
	return 0;
}

/* ---- start and stop ----------------------------------------------------------------- */

static void
kinds_init(struct sync_kinds *k, bool eso, const char *version)
{
	const char *g = eso ? "external-secrets.io" : "latchkey.io";

	k->es = (struct lk_k8s_resource){ g, version, "externalsecrets", "ExternalSecret", true };
	k->ss = (struct lk_k8s_resource){ g, version, "secretstores", "SecretStore", true };
	k->css = (struct lk_k8s_resource){ g, version, "clustersecretstores", "ClusterSecretStore", false };
}

/* The SealedSecret kinds the API server serves, of latchkey.io/v1 and (with --compat
 * sealed-secrets) bitnami.com/v1alpha1. */
static void
sealed_kinds_init(struct sync_ctx *ctx)
{
	const struct lk_k8s_resource all[2] = {
		{ "latchkey.io", "v1", "sealedsecrets", "SealedSecret", true },
		{ "bitnami.com", "v1alpha1", "sealedsecrets", "SealedSecret", true },
	};
	struct lk_k8s_error kerr;

	ctx->kinds.nsealed = 0;
	for (size_t i = 0; i < 2; i++) {
		if (i == 1 && !ctx->opt.compat_sealed)
			break;
		if (lk_k8s_served(ctx->k8s, &all[i], &kerr) == -ENOENT) {
			lk_log(i == 0 ? LK_INFO : LK_WARN, "SealedSecrets of this group are not served: not "
			       "reconciled", LK_STR("group", all[i].group), LK_STR("version", all[i].version));
			continue;
		}
		ctx->kinds.sealed[ctx->kinds.nsealed] = all[i];
		ctx->sealed_arg[ctx->kinds.nsealed] = (struct sync_sealed_arg){ ctx, ctx->kinds.nsealed };
		ctx->kinds.nsealed++;
	}
}

static int
start_informers(struct sync_ctx *ctx, struct lk_error *err)
{
	size_t n = ctx->opt.nnamespaces > 0 ? ctx->opt.nnamespaces : 1;
	int r;

	{
		const struct lk_k8s_informer_config css = {
			.resource = &ctx->kinds.css,
			.handlers = { .on_add = css_add, .on_update = css_update, .on_delete = css_delete, .arg = ctx },
		};

		if ((r = lk_k8s_informer_start(ctx->k8s, &css, &ctx->css_inf, err)) < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		const char *ns = ctx->opt.nnamespaces > 0 ? ctx->opt.namespaces[i] : NULL;
		const struct lk_k8s_informer_config es = {
			.resource = &ctx->kinds.es, .ns = ns, .label_selector = ctx->opt.selector,
			.handlers = { .on_add = es_add, .on_update = es_update, .arg = ctx },
		};
		const struct lk_k8s_informer_config ss = {
			.resource = &ctx->kinds.ss, .ns = ns,
			.handlers = { .on_add = ss_add, .on_update = ss_update, .on_delete = ss_delete, .arg = ctx },
		};
		const struct lk_k8s_informer_config sec = {
			.resource = &lk_k8s_secrets, .ns = ns, .label_selector = SYNC_LABEL_MANAGED "=true",
			.transform = sync_secret_transform, .transform_arg = ctx,
			.handlers = { .on_update = secret_update, .on_delete = secret_delete, .arg = ctx },
		};

		/* Stores and Secrets first: the ExternalSecrets' first reconciles look them up. */
		if ((r = lk_k8s_informer_start(ctx->k8s, &ss, &ctx->ss_inf[i], err)) < 0 ||
		    (r = lk_k8s_informer_start(ctx->k8s, &sec, &ctx->secret_inf[i], err)) < 0 ||
		    (r = lk_k8s_informer_start(ctx->k8s, &es, &ctx->es_inf[i], err)) < 0)
			return r;
		for (size_t k = 0; k < ctx->kinds.nsealed; k++) {
			const struct lk_k8s_informer_config sealed = {
				.resource = &ctx->kinds.sealed[k], .ns = ns, .label_selector = ctx->opt.selector,
				.handlers = { .on_add = sealed_add, .on_update = sealed_update,
					      .on_delete = sealed_delete, .arg = &ctx->sealed_arg[k] },
			};

			if ((r = lk_k8s_informer_start(ctx->k8s, &sealed, &ctx->sealed_inf[k][i], err)) < 0)
				return r;
		}
		ctx->ninf = i + 1;
	}
	return 0;
}

/* The sealing key Secrets of the controller's namespace (before the SealedSecrets). */
static int
start_keys(struct sync_ctx *ctx, struct lk_error *err)
{
	const struct lk_k8s_informer_config keys = {
		.resource = &lk_k8s_secrets, .ns = ctx->opt.controller_ns,
		.label_selector = LK_SEALING_KEY_LABEL "=active",
		.transform = sync_keys_transform, .transform_arg = ctx->keys,
		.handlers = { .on_delete = sync_keys_on_delete, .arg = ctx->keys },
	};
	int r;

	if ((r = lk_k8s_informer_start(ctx->k8s, &keys, &ctx->keys_inf, err)) < 0)
		return r;
	if ((r = sync_keys_start(ctx->keys)) < 0)
		return lk_error_set(err, r, "cannot start the sealing key thread");
	return 0;
}

static void
stop_informers(struct sync_ctx *ctx)
{
	for (size_t i = 0; i < SYNC_NAMESPACES_MAX; i++) {
		lk_k8s_informer_stop(ctx->es_inf[i]);
		lk_k8s_informer_stop(ctx->ss_inf[i]);
		lk_k8s_informer_stop(ctx->secret_inf[i]);
		ctx->es_inf[i] = ctx->ss_inf[i] = ctx->secret_inf[i] = NULL;
	}
	lk_k8s_informer_stop(ctx->css_inf);
	ctx->css_inf = NULL;
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < SYNC_NAMESPACES_MAX; i++) {
			lk_k8s_informer_stop(ctx->sealed_inf[k][i]);
			ctx->sealed_inf[k][i] = NULL;
		}
	}
	sync_keys_stop(ctx->keys);
	lk_k8s_informer_stop(ctx->keys_inf);
	ctx->keys_inf = NULL;
	ctx->ninf = 0;
}

static void
harden(void)
{
	const struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
sync_main(int argc, char **argv)
{
	enum lk_log_level level = LK_INFO;
	struct sync_ctx *ctx = NULL;
	struct lk_k8s_config kcfg;
	struct lk_httpd *httpd = NULL;
	struct lk_error err = { 0 };
	struct lk_k8s_error kerr;
	pthread_t workers[SYNC_WORKERS_MAX];
	unsigned nworkers = 0;
	char **args = NULL, *nsbuf = NULL;
	int nargs, r, rc = LK_EXIT_FAILURE, sig;
	sigset_t sigs;

	lk_k8s_config_init(&kcfg);
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL || (args = with_env(argc, argv, &nargs, &nsbuf)) == NULL) {
		fprintf(stderr, "latchkey sync: out of memory\n");
		free(ctx);
		return LK_EXIT_FAILURE;
	}
	r = parse_flags(nargs, args, &ctx->opt, &level);
	if (r != 0) {
		rc = r > 0 ? LK_EXIT_OK : LK_EXIT_USAGE;
		goto out_args;
	}
	harden();
	if (lk_secret_init() < 0 || lk_http_global_init() < 0) {
		fprintf(stderr, "latchkey sync: libsodium or libcurl failed to start\n");
		goto out_args;
	}
	lk_json_wipe_on_free();
	lk_log_setup(2, level);
	pthread_mutex_init(&ctx->state_lock, NULL);
	atomic_init(&ctx->leading, false);
	atomic_init(&ctx->stopping, false);
	atomic_init(&ctx->hash_key_loaded, false);
	set_not_ready(ctx, "starting");

	if (lk_k8s_config_load(ctx->opt.kubeconfig, &kcfg, &err) < 0) {
		fprintf(stderr, "latchkey sync: %s\n", err.msg);
		rc = LK_EXIT_USAGE;
		goto out;
	}
	if (kcfg.insecure)
		lk_log(LK_WARN, "the API server's certificate is not verified (insecure-skip-tls-verify)",
		       LK_STR("source", kcfg.source));
	if (ctx->opt.qps > 0)
		kcfg.qps = ctx->opt.qps;
	if (ctx->opt.burst > 0)
		kcfg.burst = ctx->opt.burst;
	if (sync_metrics_init(&ctx->metrics) < 0 || (ctx->queue = sync_queue_new()) == NULL ||
	    (ctx->stores = sync_stores_new(ctx)) == NULL ||
	    (ctx->recipients = sync_recipients_new()) == NULL) {
		fprintf(stderr, "latchkey sync: out of memory\n");
		goto out;
	}
	if (lk_k8s_client_new(&kcfg, &ctx->k8s, &err) < 0) {
		fprintf(stderr, "latchkey sync: %s\n", err.msg);
		rc = LK_EXIT_USAGE;
		goto out;
	}
	lk_k8s_client_set_observer(ctx->k8s, sync_metrics_observe_api, &ctx->metrics);

	/* Signals are taken by sigwait in this thread: block them before any thread starts. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (ctx->opt.metrics_addr != NULL) {
		struct lk_httpd_config hc = {
			.tcp_addr = ctx->opt.metrics_addr, .threads = 1, .handler = handle, .ctx = ctx,
			.unix_owner = (uid_t)-1, .unix_group = (gid_t)-1, .max_body = 4096,
			.max_header = 8192, .max_connections = 64,
			/* Probes and scrapers send their request at once; 64 peers dribbling
			 * theirs must not keep /healthz from answering. */
			.header_timeout_ms = SYNC_HEADER_TIMEOUT_MS,
		};

		if (lk_httpd_start(&hc, &httpd, &err) < 0) {
			fprintf(stderr, "latchkey sync: --metrics: %s\n", err.msg);
			rc = LK_EXIT_USAGE;
			goto out;
		}
	}
	lk_log(LK_INFO, "starting", LK_STR("api", kcfg.server), LK_STR("source", kcfg.source),
	       LK_INT("metrics_port", lk_httpd_port(httpd)), LK_BOOL("leader_elect", ctx->opt.leader_elect),
	       LK_STR("controller_namespace", ctx->opt.controller_ns));

	/* Which resources: latchkey.io/v1, or ESO's v1 (v1beta1 on older installs). */
	kinds_init(&ctx->kinds, ctx->opt.compat_eso, "v1");
	if (ctx->opt.compat_eso && lk_k8s_served(ctx->k8s, &ctx->kinds.es, &kerr) == -ENOENT) {
		kinds_init(&ctx->kinds, true, "v1beta1");
		lk_log(LK_INFO, "external-secrets.io/v1 is not served: using v1beta1");
	}

	/* The hash key before the Secret cache: the cache hashes what it sees. */
	while (load_hash_key(ctx, &err) < 0) {
		set_not_ready(ctx, err.msg);
		lk_log(LK_WARN, "cannot read the content-hash key yet", LK_STR("error", err.msg));
		if (sigtimedwait(&sigs, NULL, &(struct timespec){ HASH_KEY_RETRY_MS / 1000, 0 }) > 0) {
			rc = LK_EXIT_OK;
			goto out;
		}
	}
	set_not_ready(ctx, NULL);
	sealed_kinds_init(ctx);
	if (ctx->kinds.nsealed > 0) {
		if ((ctx->keys = sync_keys_new(ctx)) == NULL) {
			fprintf(stderr, "latchkey sync: out of memory\n");
			goto out;
		}
		if (start_keys(ctx, &err) < 0) {
			fprintf(stderr, "latchkey sync: %s\n", err.msg);
			goto out_stop;
		}
	}
	if (start_informers(ctx, &err) < 0) {
		fprintf(stderr, "latchkey sync: %s\n", err.msg);
		goto out;
	}
	for (nworkers = 0; nworkers < ctx->opt.workers; nworkers++) {
		if (pthread_create(&workers[nworkers], NULL, worker_main, ctx) != 0) {
			fprintf(stderr, "latchkey sync: cannot start a worker thread\n");
			goto out_stop;
		}
	}
	if (ctx->opt.leader_elect) {
		const struct lk_k8s_leader_config lc = {
			.ns = ctx->opt.lease_ns, .name = ctx->opt.lease_name,
			.lease_ms = ctx->opt.lease_ms, .renew_deadline_ms = ctx->opt.renew_deadline_ms,
			.retry_ms = ctx->opt.retry_ms, .on_change = on_leader, .arg = ctx,
		};

		if (lk_k8s_leader_start(ctx->k8s, &lc, &ctx->leader, &err) < 0) {
			fprintf(stderr, "latchkey sync: %s\n", err.msg);
			rc = LK_EXIT_USAGE;
			goto out_stop;
		}
	} else {
		atomic_store(&ctx->leading, true);
		lk_metric_set(ctx->metrics.leader, NULL, 1);
		enqueue_all(ctx);
	}
	lk_log(LK_INFO, "running", LK_INT("workers", ctx->opt.workers),
	       LK_INT("namespaces", ctx->opt.nnamespaces));

	for (;;) {
		if (sigwait(&sigs, &sig) == 0 && (sig == SIGTERM || sig == SIGINT))
			break;
	}
	lk_log(LK_INFO, "stopping");
	rc = LK_EXIT_OK;
out_stop:
	atomic_store(&ctx->stopping, true);
	/* The lease first: a standby takes over while this one winds down. */
	lk_k8s_leader_stop(ctx->leader);
	ctx->leader = NULL;
	sync_queue_shutdown(ctx->queue);
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	stop_informers(ctx);
out:
	lk_httpd_stop(httpd);
	sync_keys_free(ctx->keys);
	ctx->keys = NULL;
	sync_stores_free(ctx->stores);
	sync_recipients_free(ctx->recipients);
	sync_queue_free(ctx->queue);
	lk_k8s_client_free(ctx->k8s);
	sync_metrics_free(&ctx->metrics);
	sodium_memzero(ctx->hash_key, sizeof(ctx->hash_key));
	lk_k8s_config_clear(&kcfg);
	pthread_mutex_destroy(&ctx->state_lock);
	lk_http_global_cleanup();
out_args:
	for (int i = 1; args != NULL && i < nargs; i++) {
		/* The "--flag=value" strings made from the environment. */
		bool from_argv = false;

		for (int j = 1; j < argc; j++)
			from_argv = from_argv || args[i] == argv[j];
		if (!from_argv && strncmp(args[i], "--", 2) == 0 && strchr(args[i], '=') != NULL)
			free(args[i]);
	}
	free(args);
	free(nsbuf);
	free(ctx);
	return rc;
}
