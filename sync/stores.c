/* stores.c — SecretStores and ClusterSecretStores with the Vault provider: one backend
 * client and one token per store (logged in with a Secret's token, AppRole, or Kubernetes
 * auth with a token from the TokenRequest API), renewed at two thirds of its TTL and
 * replaced by a new login when it runs out or the backend refuses it; a request budget
 * per store; and reads of the same secret coalesced (internal.h).
 */
#include "sync/internal.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/clock.h"
#include "crypto/crypto.h"

/* Buckets of one store's read cache. */
#define CACHE_BUCKETS 1024
/* Lifetime of a TokenRequest token asked for Kubernetes auth (ESO's). */
#define TOKEN_REQUEST_SECONDS 600
/* Longest credential read from a Secret. */
#define CREDENTIAL_MAX (64u << 10)
/* How long a namespace's labels are trusted for a ClusterSecretStore's selector. */
#define NAMESPACE_LABELS_TTL_MS (60 * 1000)
/* A failed login is not tried again sooner than this. */
#define LOGIN_RETRY_MS 2000
/* Retries of a failed backend read unless spec.retrySettings says (and at most). */
#define STORE_RETRIES_DEFAULT 3
#define STORE_RETRIES_MAX 10
/* The first wait between them unless retrySettings.retryInterval says. */
#define STORE_RETRY_INTERVAL_MS 1000
/* How often a store is checked again unless spec.refreshInterval says. */
#define STORE_RECHECK_MS (5 * 60 * 1000LL)
/* Backend timeouts for a store's client. */
#define STORE_CONNECT_TIMEOUT_MS 5000
#define STORE_TIMEOUT_MS 15000

struct cache_entry {
	struct cache_entry *next;
	char *key;                  /* mount \x1f path \x1f version */
	char *text;                 /* the data as compact JSON (wiped when freed) */
	size_t len;
	int rc;                     /* 0, or the read's error (-ENOENT: not found) */
	char msg[LK_ERROR_MSG_MAX];
	int64_t fetched_ms;         /* monotonic */
	bool inflight;
};

struct sync_store {
	atomic_int refs;
	struct sync_stores *owner;
	char kind[24];
	char ns[64];
	char name[256];
	char *spec_text;            /* the spec this client was made from */
	json_t *spec;               /* provider.vault and the rest (new reference) */
	char *mount;                /* provider.vault.path; NULL: the key's first segment */
	int kv_version;             /* 1 or 2 */
	bool removed;               /* replaced or deleted: no new users */

	pthread_mutex_t lock;       /* the login state */
	struct lk_vault_client *vault;
	bool logged_in;
	bool renewable;
	int64_t renew_at_ms;        /* monotonic; 0: never */
	int64_t expires_ms;         /* monotonic; 0: never */
	int64_t login_failed_ms;
	char login_error[LK_ERROR_MSG_MAX];

	pthread_mutex_t rate_lock;
	double tokens;
	int64_t rate_ms;
	int max_retries;            /* spec.retrySettings */
	int64_t retry_ms;

	pthread_mutex_t cache_lock;
	pthread_cond_t cache_cond;
	struct cache_entry *cache[CACHE_BUCKETS];
	size_t ncache;
};

struct ns_labels {
	struct ns_labels *next;
	char *ns;
	json_t *labels;
	int64_t read_ms;
};

struct sync_stores {
	struct sync_ctx *ctx;
	pthread_mutex_t lock;
	struct sync_store **list;
	size_t n, cap;
	struct ns_labels *namespaces;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* ---- store objects ------------------------------------------------------------------ */

static void
cache_entry_free(struct cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->key);
	if (e->text != NULL)
		explicit_bzero(e->text, e->len);
	free(e->text);
	free(e);
}

static void
store_free(struct sync_store *st)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct cache_entry *e = st->cache[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			cache_entry_free(e);
		}
	}
	lk_vault_client_free(st->vault);
	json_decref(st->spec);
	free(st->spec_text);
	free(st->mount);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->rate_lock);
	pthread_mutex_destroy(&st->cache_lock);
	pthread_cond_destroy(&st->cache_cond);
	free(st);
}

void
sync_store_release(struct sync_store *st)
{
	if (st != NULL && atomic_fetch_sub(&st->refs, 1) == 1)
		store_free(st);
}

struct sync_stores *
sync_stores_new(struct sync_ctx *ctx)
{
	struct sync_stores *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void
sync_stores_free(struct sync_stores *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		sync_store_release(s->list[i]);
	for (struct ns_labels *n = s->namespaces, *next; n != NULL; n = next) {
		next = n->next;
		free(n->ns);
		json_decref(n->labels);
		free(n);
	}
	free(s->list);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* ---- credentials from Secrets -------------------------------------------------------- */

/* data[key] of Secret ref in namespace ns (a ClusterSecretStore's ref must name its own
 * namespace), decoded. */
static int
secret_value(struct sync_store *st, const json_t *ref, const char *field,
	     const char *default_key, struct lk_secret **ret, struct lk_error *err)
{
	const char *name = str(ref, "name"), *key = str(ref, "key");
	const char *ns = str(ref, "namespace");
	struct lk_k8s_error kerr;
	json_t *secret = NULL;
	const char *b64;
	int r;

	if (key == NULL)
		key = default_key;
	if (strcmp(st->kind, "SecretStore") == 0) {
		/* ESO's rule: a namespaced store reads Secrets of its own namespace only. */
		if (ns != NULL && strcmp(ns, st->ns) != 0)
			return lk_error_set(err, -EINVAL, "%s %s: %s.namespace: a SecretStore may only "
					    "read Secrets of its own namespace", st->kind, st->name, field);
		ns = st->ns;
	}
	if (ns == NULL || ns[0] == '\0')
		return lk_error_set(err, -EINVAL, "%s %s: %s.namespace: required in a "
				    "ClusterSecretStore", st->kind, st->name, field);
	if (name == NULL || key == NULL)
		return lk_error_set(err, -EINVAL, "%s %s: %s: expected name and key", st->kind,
				    st->name, field);
	r = lk_k8s_get(st->owner->ctx->k8s, &lk_k8s_secrets, ns, name, &secret, &kerr);
	if (r < 0)
		return lk_error_set(err, r, "%s %s: %s: %s", st->kind, st->name, field, kerr.base.msg);
	b64 = str(json_object_get(secret, "data"), key);
	if (b64 == NULL) {
		json_decref(secret);
		return lk_error_set(err, -ENOENT, "%s %s: %s: Secret %s/%s has no key %s", st->kind,
				    st->name, field, ns, name, key);
	}
	r = lk_b64_decode(b64, strlen(b64), LK_B64_STD, ret);
	json_decref(secret);
	if (r < 0)
		return lk_error_set(err, r, "%s %s: %s: Secret %s/%s key %s is not base64", st->kind,
				    st->name, field, ns, name, key);
	/* A trailing newline is not part of a token or an ID (files made with echo). */
	if (lk_secret_len(*ret) > 0 && lk_secret_cstr(*ret)[lk_secret_len(*ret) - 1] == '\n') {
		struct lk_secret *t = lk_secret_new(lk_secret_bytes(*ret), lk_secret_len(*ret) - 1);

		lk_secret_free(*ret);
		*ret = t;
		if (t == NULL)
			return lk_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* A service-account token for Vault's Kubernetes auth, from the TokenRequest API. */
static int
token_request(struct sync_store *st, const json_t *sa, struct lk_secret **ret,
	      struct lk_error *err)
{
	const char *name = str(sa, "name"), *ns = str(sa, "namespace");
	const json_t *aud = json_object_get(sa, "audiences");
	struct lk_k8s_error kerr;
	json_t *req, *resp = NULL;
	const char *tok;
	int r;

	if (strcmp(st->kind, "SecretStore") == 0 || ns == NULL)
		ns = st->ns;
	if (name == NULL || ns[0] == '\0')
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.auth.kubernetes."
				    "serviceAccountRef: expected name (and namespace for a "
				    "ClusterSecretStore)", st->kind, st->name);
	req = json_pack("{s:s, s:s, s:{s:I}}", "apiVersion", "authentication.k8s.io/v1", "kind",
			"TokenRequest", "spec", "expirationSeconds", (json_int_t)TOKEN_REQUEST_SECONDS);
	if (req == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (json_is_array(aud) && json_array_size(aud) > 0)
		json_object_set(json_object_get(req, "spec"), "audiences", (json_t *)aud);
	r = lk_k8s_create_sub(st->owner->ctx->k8s, &lk_k8s_serviceaccounts, ns, name, "token", req,
			      &resp, &kerr);
	json_decref(req);
	if (r < 0)
		return lk_error_set(err, r, "%s %s: a token for service account %s/%s: %s", st->kind,
				    st->name, ns, name, kerr.base.msg);
	tok = str(json_object_get(resp, "status"), "token");
	*ret = tok != NULL ? lk_secret_from_str(tok) : NULL;
	json_decref(resp);
	if (*ret == NULL)
		return lk_error_set(err, -EBADMSG, "%s %s: the TokenRequest answer has no token",
				    st->kind, st->name);
	return 0;
}

/* A ConfigMap's or Secret's value for caProvider. */
static int
ca_from_provider(struct sync_store *st, const json_t *cp, char **ret, struct lk_error *err)
{
	const char *type = str(cp, "type"), *name = str(cp, "name"), *key = str(cp, "key");
	const char *ns = str(cp, "namespace");
	struct lk_k8s_error kerr;
	struct lk_secret *v = NULL;
	json_t *cm = NULL;
	const char *text;
	int r;

	if (type != NULL && strcmp(type, "Secret") == 0) {
		if ((r = secret_value(st, cp, "spec.provider.vault.caProvider", NULL, &v, err)) < 0)
			return r;
		*ret = strndup(lk_secret_cstr(v), lk_secret_len(v));
		lk_secret_free(v);
		return *ret != NULL ? 0 : lk_error_set(err, -ENOMEM, "out of memory");
	}
	if (type == NULL || strcmp(type, "ConfigMap") != 0 || name == NULL || key == NULL)
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.caProvider: expected type "
				    "Secret or ConfigMap, name and key", st->kind, st->name);
	if (strcmp(st->kind, "SecretStore") == 0) {
		if (ns != NULL && strcmp(ns, st->ns) != 0)
			return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.caProvider.namespace: "
					    "a SecretStore may only read its own namespace", st->kind, st->name);
		ns = st->ns;
	}
	if (ns == NULL || ns[0] == '\0')
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.caProvider.namespace: "
				    "required in a ClusterSecretStore", st->kind, st->name);
	if ((r = lk_k8s_get(st->owner->ctx->k8s, &lk_k8s_configmaps, ns, name, &cm, &kerr)) < 0)
		return lk_error_set(err, r, "%s %s: spec.provider.vault.caProvider: %s", st->kind,
				    st->name, kerr.base.msg);
	text = str(json_object_get(cm, "data"), key);
	*ret = text != NULL ? strdup(text) : NULL;
	json_decref(cm);
	if (text == NULL)
		return lk_error_set(err, -ENOENT, "%s %s: spec.provider.vault.caProvider: ConfigMap %s/%s "
				    "has no key %s", st->kind, st->name, ns, name, key);
	return *ret != NULL ? 0 : lk_error_set(err, -ENOMEM, "out of memory");
}

/* The backend client of a store: server, namespace, CA, client certificate, headers. */
static int
store_client(struct sync_store *st, const json_t *vault, struct lk_error *err)
{
	const json_t *tls = json_object_get(vault, "tls"), *headers = json_object_get(vault, "headers");
	const json_t *auth = json_object_get(vault, "auth");
	struct lk_vault_config vc;
	struct lk_vault_error verr;
	size_t nh = 0;
	const char *k;
	json_t *v;
	int r;

	if (str(auth, "namespace") != NULL &&
	    (str(vault, "namespace") == NULL || strcmp(str(auth, "namespace"), str(vault, "namespace")) != 0))
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.auth.namespace: a login "
				    "namespace other than spec.provider.vault.namespace is not supported",
				    st->kind, st->name);
	lk_vault_config_init(&vc);
	vc.addr = strdup(str(vault, "server"));
	vc.namespace = str(vault, "namespace") != NULL ? strdup(str(vault, "namespace")) : NULL;
	vc.connect_timeout_ms = STORE_CONNECT_TIMEOUT_MS;
	vc.timeout_ms = STORE_TIMEOUT_MS;
	r = 0;
	if (str(vault, "caBundle") != NULL) {
		const char *b64 = str(vault, "caBundle");
		unsigned char *pem = NULL;
		size_t n = 0;

		if (lk_b64_decode_raw(b64, strlen(b64), LK_B64_STD, &pem, &n) < 0) {
			r = lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.caBundle: expected "
					 "base64 of PEM certificates", st->kind, st->name);
			goto out;
		}
		vc.ca_pem = strndup((const char *)pem, n);
		free(pem);
	} else if (json_is_object(json_object_get(vault, "caProvider"))) {
		if ((r = ca_from_provider(st, json_object_get(vault, "caProvider"), &vc.ca_pem, err)) < 0)
			goto out;
	}
	if (json_is_object(tls)) {
		struct lk_secret *cert = NULL;

		if ((r = secret_value(st, json_object_get(tls, "certSecretRef"),
				      "spec.provider.vault.tls.certSecretRef", "tls.crt", &cert, err)) < 0 ||
		    (r = secret_value(st, json_object_get(tls, "keySecretRef"),
				      "spec.provider.vault.tls.keySecretRef", "tls.key", &vc.client_key_pem,
				      err)) < 0) {
			lk_secret_free(cert);
			goto out;
		}
		vc.client_cert_pem = strndup(lk_secret_cstr(cert), lk_secret_len(cert));
		lk_secret_free(cert);
	}
	json_object_foreach((json_t *)headers, k, v) {
		if (nh >= LK_VAULT_EXTRA_HEADERS_MAX || !json_is_string(v) || strpbrk(k, ": \t\r\n") != NULL ||
		    strcasecmp(k, "X-Vault-Token") == 0 || strcasecmp(k, "X-Vault-Namespace") == 0 ||
		    strcasecmp(k, "Authorization") == 0) {
			r = lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.headers: at most %d "
					 "headers, none of them the token, the namespace or Authorization",
					 st->kind, st->name, LK_VAULT_EXTRA_HEADERS_MAX);
			goto out;
		}
		if (asprintf(&vc.headers[nh], "%s: %s", k, json_string_value(v)) < 0) {
			vc.headers[nh] = NULL;
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		nh++;
	}
	if (json_is_true(json_object_get(vault, "forwardInconsistent")) && nh < LK_VAULT_EXTRA_HEADERS_MAX)
		vc.headers[nh++] = strdup("X-Vault-Inconsistent: forward-active-node");
	if ((r = lk_vault_client_new(&vc, &st->vault, &verr)) < 0)
		r = lk_error_set(err, r, "%s %s: %s", st->kind, st->name, verr.base.msg);
out:
	lk_vault_config_clear(&vc);
	return r;
}

/* A new store object from a (Cluster)SecretStore; -EINVAL with err naming the field. */
static int
store_new(struct sync_stores *s, const char *kind, const char *ns, const json_t *obj,
	  struct sync_store **ret, struct lk_error *err)
{
	const json_t *spec = json_object_get(obj, "spec");
	const json_t *vault = json_object_get(json_object_get(spec, "provider"), "vault");
	const json_t *retry = json_object_get(spec, "retrySettings");
	const char *name = str(json_object_get(obj, "metadata"), "name");
	const char *server = str(vault, "server"), *version = str(vault, "version");
	struct sync_store *st;
	int r;

	if (!json_is_object(vault))
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault: expected the Vault "
				    "provider (the only one latchkey serves)", kind, name);
	if (server == NULL || (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0))
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.server: expected an "
				    "http:// or https:// URL", kind, name);
	if (version != NULL && strcmp(version, "v1") != 0 && strcmp(version, "v2") != 0)
		return lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.version: expected v1 or v2",
				    kind, name);
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	atomic_init(&st->refs, 1);
	st->owner = s;
	snprintf(st->kind, sizeof(st->kind), "%s", kind);
	snprintf(st->ns, sizeof(st->ns), "%s", ns);
	snprintf(st->name, sizeof(st->name), "%s", name);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->rate_lock, NULL);
	pthread_mutex_init(&st->cache_lock, NULL);
	pthread_cond_init(&st->cache_cond, NULL);
	st->spec_text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
	st->spec = json_incref((json_t *)spec);
	st->kv_version = version != NULL && strcmp(version, "v1") == 0 ? 1 : 2;
	if (str(vault, "path") != NULL && str(vault, "path")[0] != '\0')
		st->mount = strdup(str(vault, "path"));
	st->tokens = s->ctx->opt.store_burst;
	st->rate_ms = lk_now_mono_ms();
	st->max_retries = json_is_integer(json_object_get(retry, "maxRetries")) ?
		(int)json_integer_value(json_object_get(retry, "maxRetries")) : STORE_RETRIES_DEFAULT;
	if (st->max_retries < 0 || st->max_retries > STORE_RETRIES_MAX)
		st->max_retries = STORE_RETRIES_MAX;
	st->retry_ms = STORE_RETRY_INTERVAL_MS;
	if (str(retry, "retryInterval") != NULL &&
	    (lk_duration_parse(str(retry, "retryInterval"), &st->retry_ms) < 0 || st->retry_ms <= 0)) {
		store_free(st);
		return lk_error_set(err, -EINVAL, "%s %s: spec.retrySettings.retryInterval: expected a "
				    "duration such as 1s", kind, name);
	}
	if (st->spec_text == NULL) {
		store_free(st);
		return lk_error_set(err, -ENOMEM, "out of memory");
	}
	if ((r = store_client(st, vault, err)) < 0) {
		store_free(st);
		return r;
	}
	*ret = st;
	return 0;
}

/* ---- the budget and the login ------------------------------------------------------- */

static void
budget_wait(struct sync_store *st)
{
	const struct sync_options *o = &st->owner->ctx->opt;
	int64_t wait = 0, now;

	if (o->store_qps <= 0)
		return;
	pthread_mutex_lock(&st->rate_lock);
	now = lk_now_mono_ms();
	st->tokens += (double)(now - st->rate_ms) * o->store_qps / 1000.0;
	if (st->tokens > (double)o->store_burst)
		st->tokens = (double)o->store_burst;
	st->rate_ms = now;
	st->tokens -= 1.0;
	if (st->tokens < 0)
		wait = (int64_t)(-st->tokens * 1000.0 / o->store_qps) + 1;
	pthread_mutex_unlock(&st->rate_lock);
	if (wait > 0)
		lk_sleep_ms(wait);
}

static void
note_backend(struct sync_store *st, int64_t t0, int rc, const struct lk_vault_error *verr)
{
	long status = rc == 0 ? 200 : verr->status;

	sync_metrics_backend(&st->owner->ctx->metrics, status,
			     (double)(lk_now_mono_ms() - t0) / 1000.0);
}

static void
token_times(struct sync_store *st, const struct lk_vault_token_info *t)
{
	int64_t now = lk_now_mono_ms();

	st->renewable = t->renewable;
	if (t->lease_duration_s > 0) {
		st->expires_ms = now + t->lease_duration_s * 1000;
		st->renew_at_ms = now + t->lease_duration_s * 1000 * 2 / 3;
	} else {
		/* ttl 0 from a login means a token that does not expire (a root token). */
		st->expires_ms = 0;
		st->renew_at_ms = 0;
	}
}

/* Logs in with the store's auth; st->lock held. */
static int
login_locked(struct sync_store *st, struct lk_error *err)
{
	const json_t *auth = json_object_get(json_object_get(json_object_get(st->spec, "provider"),
							     "vault"), "auth");
	const json_t *tok_ref = json_object_get(auth, "tokenSecretRef");
	const json_t *approle = json_object_get(auth, "appRole");
	const json_t *kube = json_object_get(auth, "kubernetes");
	struct lk_vault_token_info info;
	struct lk_vault_error verr;
	struct lk_secret *a = NULL, *b = NULL;
	int64_t t0;
	int r;

	memset(&info, 0, sizeof(info));
	lk_vault_error_clear(&verr);
	if ((tok_ref != NULL) + (approle != NULL) + (kube != NULL) != 1) {
		r = lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.auth: expected exactly one of "
				 "tokenSecretRef, appRole and kubernetes", st->kind, st->name);
		goto out;
	}
	if (tok_ref != NULL) {
		if ((r = secret_value(st, tok_ref, "spec.provider.vault.auth.tokenSecretRef", NULL, &a, err)) < 0)
			goto out;
		if ((r = lk_vault_client_set_token(st->vault, a)) < 0) {
			r = lk_error_set(err, r, "%s %s: the token is not printable ASCII", st->kind, st->name);
			goto out;
		}
		budget_wait(st);
		t0 = lk_now_mono_ms();
		r = lk_vault_auth_lookup_self(st->vault, &info, &verr);
		note_backend(st, t0, r, &verr);
		/* A token reports the time it has left, not a lease to count from. */
		if (r == 0 && info.expire_time_ms == 0)
			info.lease_duration_s = 0;
	} else if (approle != NULL) {
		const char *role_id = str(approle, "roleId");

		if (role_id != NULL) {
			a = lk_secret_from_str(role_id);
		} else if (json_is_object(json_object_get(approle, "roleRef"))) {
			if ((r = secret_value(st, json_object_get(approle, "roleRef"),
					      "spec.provider.vault.auth.appRole.roleRef", NULL, &a, err)) < 0)
				goto out;
		} else {
			r = lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.auth.appRole: expected "
					 "roleId or roleRef", st->kind, st->name);
			goto out;
		}
		if (json_is_object(json_object_get(approle, "secretRef")) &&
		    (r = secret_value(st, json_object_get(approle, "secretRef"),
				      "spec.provider.vault.auth.appRole.secretRef", NULL, &b, err)) < 0)
			goto out;
		budget_wait(st);
		t0 = lk_now_mono_ms();
		r = lk_vault_auth_login_approle(st->vault, str(approle, "path"), a, b, &info, &verr);
		note_backend(st, t0, r, &verr);
	} else {
		const char *role = str(kube, "role");

		if (role == NULL) {
			r = lk_error_set(err, -EINVAL, "%s %s: spec.provider.vault.auth.kubernetes.role: "
					 "required", st->kind, st->name);
			goto out;
		}
		if (json_is_object(json_object_get(kube, "serviceAccountRef")))
			r = token_request(st, json_object_get(kube, "serviceAccountRef"), &a, err);
		else if (json_is_object(json_object_get(kube, "secretRef")))
			r = secret_value(st, json_object_get(kube, "secretRef"),
					 "spec.provider.vault.auth.kubernetes.secretRef", "token", &a, err);
		else
			r = lk_secret_read_file(LK_K8S_SA_DIR "/token", CREDENTIAL_MAX, true, &a) < 0 ?
				lk_error_set(err, -ENOENT, "%s %s: no serviceAccountRef or secretRef, and "
					     "no service-account token of the controller's own",
					     st->kind, st->name) : 0;
		if (r < 0)
			goto out;
		budget_wait(st);
		t0 = lk_now_mono_ms();
		r = lk_vault_auth_login_kubernetes(st->vault, str(kube, "mountPath"), role, a, &info,
						   &verr);
		note_backend(st, t0, r, &verr);
	}
	if (r < 0 && verr.kind != LK_VAULT_ERR_NONE) {
		r = lk_error_set(err, r, "%s %s: login: %s", st->kind, st->name, verr.base.msg);
		goto out;
	}
	if (r < 0)
		goto out;
	token_times(st, &info);
	st->logged_in = true;
	st->login_error[0] = '\0';
out:
	if (r < 0) {
		st->logged_in = false;
		st->login_failed_ms = lk_now_mono_ms();
		snprintf(st->login_error, sizeof(st->login_error), "%s", err != NULL ? err->msg : "");
	}
	lk_vault_token_info_clear(&info);
	lk_secret_free(a);
	lk_secret_free(b);
	return r;
}

/* A usable token: logs in when there is none or it ran out, renews at 2/3 of its TTL. */
static int
ensure_token(struct sync_store *st, bool force_login, struct lk_error *err)
{
	struct lk_vault_token_info info;
	struct lk_vault_error verr;
	int64_t now = lk_now_mono_ms(), t0;
	int r = 0;

	pthread_mutex_lock(&st->lock);
	if (st->logged_in && !force_login) {
		if (st->expires_ms != 0 && now >= st->expires_ms) {
			st->logged_in = false;
		} else if (st->renew_at_ms != 0 && now >= st->renew_at_ms) {
			memset(&info, 0, sizeof(info));
			if (st->renewable) {
				budget_wait(st);
				t0 = lk_now_mono_ms();
				r = lk_vault_auth_renew_self(st->vault, 0, &info, &verr);
				note_backend(st, t0, r, &verr);
			}
			if (st->renewable && r == 0 && !info.capped)
				token_times(st, &info);
			else
				st->logged_in = false;   /* log in afresh below */
			lk_vault_token_info_clear(&info);
			r = 0;
		}
	}
	if (!st->logged_in || force_login) {
		if (!force_login && st->login_failed_ms != 0 &&
		    now - st->login_failed_ms < LOGIN_RETRY_MS) {
			r = lk_error_set(err, -EAGAIN, "%s", st->login_error);
		} else {
			r = login_locked(st, err);
		}
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* ---- ClusterSecretStore conditions -------------------------------------------------- */

/* The labels of namespace ns, cached for a while. New reference or NULL. */
static json_t *
namespace_labels(struct sync_stores *s, const char *ns)
{
	struct lk_k8s_error kerr;
	struct ns_labels *n;
	json_t *obj = NULL, *labels = NULL;

	pthread_mutex_lock(&s->lock);
	for (n = s->namespaces; n != NULL; n = n->next) {
		if (strcmp(n->ns, ns) == 0 && lk_now_mono_ms() - n->read_ms < NAMESPACE_LABELS_TTL_MS) {
			labels = json_incref(n->labels);
			pthread_mutex_unlock(&s->lock);
			return labels;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (lk_k8s_get(s->ctx->k8s, &lk_k8s_namespaces, NULL, ns, &obj, &kerr) < 0)
		return NULL;
	labels = json_incref(json_object_get(json_object_get(obj, "metadata"), "labels"));
	if (labels == NULL)
		labels = json_object();
	json_decref(obj);
	pthread_mutex_lock(&s->lock);
	for (n = s->namespaces; n != NULL && strcmp(n->ns, ns) != 0; n = n->next)
		;
	if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL && (n->ns = strdup(ns)) != NULL) {
		n->next = s->namespaces;
		s->namespaces = n;
	}
	if (n != NULL && n->ns != NULL) {
		json_decref(n->labels);
		n->labels = json_incref(labels);
		n->read_ms = lk_now_mono_ms();
	}
	pthread_mutex_unlock(&s->lock);
	return labels;
}

static bool
condition_admits(struct sync_stores *s, const json_t *cond, const char *ns)
{
	const json_t *names = json_object_get(cond, "namespaces");
	const json_t *regexes = json_object_get(cond, "namespaceRegexes");
	const json_t *sel = json_object_get(json_object_get(cond, "namespaceSelector"), "matchLabels");
	json_t *v;
	size_t i;

	json_array_foreach(names, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), ns) == 0)
			return true;
	}
	json_array_foreach(regexes, i, v) {
		regex_t re;
		bool ok;

		if (!json_is_string(v) || regcomp(&re, json_string_value(v), REG_EXTENDED | REG_NOSUB) != 0)
			continue;
		ok = regexec(&re, ns, 0, NULL, 0) == 0;
		regfree(&re);
		if (ok)
			return true;
	}
	if (json_is_object(sel)) {
		json_t *labels = namespace_labels(s, ns);
		const char *k;
		bool all = labels != NULL;

		json_object_foreach((json_t *)sel, k, v) {
			const char *have = str(labels, k);

			if (have == NULL || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0)
				all = false;
		}
		json_decref(labels);
		if (all)
			return true;
	}
	return false;
}

static bool
admits(struct sync_stores *s, const json_t *spec, const char *ns)
{
	const json_t *conds = json_object_get(spec, "conditions");
	json_t *c;
	size_t i;

	if (!json_is_array(conds) || json_array_size(conds) == 0)
		return true;
	json_array_foreach(conds, i, c) {
		if (condition_admits(s, c, ns))
			return true;
	}
	return false;
}

/* ---- resolving ---------------------------------------------------------------------- */

/* The store object for the current spec: kept when the spec is the same, replaced when it
 * changed (the old one lives on until its last user lets go). */
static int
store_for(struct sync_stores *s, const char *kind, const char *ns, const json_t *obj,
	  struct sync_store **ret, struct lk_error *err)
{
	const char *name = str(json_object_get(obj, "metadata"), "name");
	char *spec_text = json_dumps(json_object_get(obj, "spec"), JSON_COMPACT | JSON_SORT_KEYS);
	struct sync_store *st = NULL, *fresh = NULL;
	size_t i;
	int r = 0;

	if (spec_text == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n; i++) {
		struct sync_store *c = s->list[i];

		if (strcmp(c->kind, kind) == 0 && strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0)
			break;
	}
	if (i < s->n && strcmp(s->list[i]->spec_text, spec_text) == 0) {
		st = s->list[i];
		atomic_fetch_add(&st->refs, 1);
	}
	pthread_mutex_unlock(&s->lock);
	if (st != NULL) {
		free(spec_text);
		*ret = st;
		return 0;
	}
	/* Made outside the lock: it reads nothing, but building a client takes a moment. */
	if ((r = store_new(s, kind, ns, obj, &fresh, err)) < 0) {
		free(spec_text);
		return r;
	}
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n; i++) {
		struct sync_store *c = s->list[i];

		if (strcmp(c->kind, kind) == 0 && strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0)
			break;
	}
	if (i < s->n && strcmp(s->list[i]->spec_text, spec_text) == 0) {
		/* Another worker made it meanwhile. */
		st = s->list[i];
		atomic_fetch_add(&st->refs, 1);
	} else if (i < s->n) {
		s->list[i]->removed = true;
		sync_store_release(s->list[i]);
		s->list[i] = fresh;
		st = fresh;
		fresh = NULL;
		atomic_fetch_add(&st->refs, 1);
	} else {
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 16;
			struct sync_store **l = realloc(s->list, cap * sizeof(*l));

			if (l != NULL) {
				s->list = l;
				s->cap = cap;
			}
		}
		if (s->n < s->cap) {
			s->list[s->n++] = fresh;
			st = fresh;
			fresh = NULL;
			atomic_fetch_add(&st->refs, 1);
		} else {
			r = lk_error_set(err, -ENOMEM, "out of memory");
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (fresh != NULL)
		sync_store_release(fresh);
	free(spec_text);
	if (r == 0)
		*ret = st;
	return r;
}

int
sync_store_resolve(struct sync_stores *s, const char *kind, const char *ns, const char *name,
		   struct sync_store **ret, struct lk_error *err)
{
	bool cluster = strcmp(kind, "ClusterSecretStore") == 0;
	json_t *obj;
	struct sync_store *st = NULL;
	int r;

	obj = cluster ? sync_cached(s->ctx, "css", "", name) : sync_cached(s->ctx, "ss", ns, name);
	if (obj == NULL)
		return lk_error_set(err, -ENOENT, "%s \"%s\" not found%s%s", kind, name,
				    cluster ? "" : " in namespace ", cluster ? "" : ns);
	if (cluster && !admits(s, json_object_get(obj, "spec"), ns)) {
		json_decref(obj);
		return lk_error_set(err, -EACCES, "ClusterSecretStore \"%s\" does not admit namespace %s "
				    "(spec.conditions)", name, ns);
	}
	r = store_for(s, kind, cluster ? "" : ns, obj, &st, err);
	json_decref(obj);
	if (r < 0)
		return r;
	if ((r = ensure_token(st, false, err)) < 0) {
		sync_store_release(st);
		return r == -EINVAL ? r : -EAGAIN;
	}
	*ret = st;
	return 0;
}

void
sync_store_forget(struct sync_stores *s, const char *kind, const char *ns, const char *name)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++) {
		struct sync_store *c = s->list[i];

		if (strcmp(c->kind, kind) == 0 && strcmp(c->ns, ns) == 0 && strcmp(c->name, name) == 0) {
			c->removed = true;
			s->list[i] = s->list[--s->n];
			sync_store_release(c);
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

void
sync_stores_metrics(struct sync_stores *s)
{
	size_t ready = 0, failed = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++) {
		if (s->list[i]->logged_in)
			ready++;
		else
			failed++;
	}
	pthread_mutex_unlock(&s->lock);
	lk_metric_set(s->ctx->metrics.stores, (const char *const[]){ "ready" }, (double)ready);
	lk_metric_set(s->ctx->metrics.stores, (const char *const[]){ "not-ready" }, (double)failed);
}

/* ---- reading ------------------------------------------------------------------------ */

/* ESO's buildPath: the mount and the path under it for key. */
static int
split_key(const struct sync_store *st, const char *key, char *mount, size_t mlen, char *path,
	  size_t plen)
{
	const char *rest;
	size_t n;

	while (*key == '/')
		key++;
	if (st->mount != NULL) {
		n = strlen(st->mount);
		snprintf(mount, mlen, "%s", st->mount);
		rest = key;
		if (strncmp(rest, st->mount, n) == 0 && rest[n] == '/')
			rest += n + 1;
	} else {
		const char *slash = strchr(key, '/');

		if (slash == NULL || slash == key || slash[1] == '\0')
			return -EINVAL;
		n = (size_t)(slash - key);
		if (n >= mlen)
			return -ENAMETOOLONG;
		memcpy(mount, key, n);
		mount[n] = '\0';
		rest = slash + 1;
	}
	if (st->kv_version == 2 && strncmp(rest, "data/", 5) == 0)
		rest += 5;
	if (rest[0] == '\0')
		return -EINVAL;
	if ((size_t)snprintf(path, plen, "%s", rest) >= plen)
		return -ENAMETOOLONG;
	return 0;
}

/* One backend read, with a single re-login when the token was refused and the retries of
 * retrySettings (full jitter) when the backend did not answer or was busy. */
static int
backend_read(struct sync_store *st, const char *mount, const char *path, int64_t version,
	     bool metadata, json_t **ret, struct lk_error *err)
{
	struct lk_vault_kv_secret kv;
	struct lk_vault_error verr;
	bool relogged = false;
	int64_t t0, wait = st->retry_ms;
	int r, tries = 0;

	for (;;) {
		memset(&kv, 0, sizeof(kv));
		lk_vault_error_clear(&verr);
		budget_wait(st);
		t0 = lk_now_mono_ms();
		if (st->kv_version == 1)
			r = lk_vault_kv_read_v1(st->vault, mount, path, &kv, &verr);
		else
			r = lk_vault_kv_read_v2(st->vault, mount, path, version, &kv, &verr);
		note_backend(st, t0, r, &verr);
		if (r == -EACCES && !relogged) {
			/* A revoked or expired token looks the same as a missing policy: log in
			 * again once and see. */
			relogged = true;
			if (ensure_token(st, true, err) == 0)
				continue;
			return r;
		}
		if (r < 0 && verr.retryable && tries < st->max_retries && !atomic_load(&st->owner->ctx->stopping)) {
			tries++;
			lk_sleep_ms(verr.retry_after_ms > 0 ? verr.retry_after_ms :
				    (int64_t)randombytes_uniform((uint32_t)(wait < 60000 ? wait : 60000)) + 1);
			wait *= 2;
			continue;
		}
		break;
	}
	if (r == -ENOENT)
		return lk_error_set(err, r, "%s/%s: not found in the backend (%s)", mount, path,
				    lk_vault_not_found_name(verr.not_found));
	if (r < 0)
		return lk_error_set(err, r, "%s", verr.base.msg);
	if (metadata)
		*ret = kv.custom_metadata != NULL ? json_incref(kv.custom_metadata) : json_object();
	else
		*ret = json_incref(kv.data);
	lk_vault_kv_secret_clear(&kv);
	return 0;
}

static struct cache_entry **
cache_slot(struct sync_store *st, const char *key)
{
	struct cache_entry **p = &st->cache[hash_str(key) & (CACHE_BUCKETS - 1)];

	while (*p != NULL && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

/* Drops entries older than max_ms; cache_lock held. */
static void
cache_sweep(struct sync_store *st, int64_t max_ms)
{
	int64_t now = lk_now_mono_ms();

	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct cache_entry **p = &st->cache[i];

		while (*p != NULL) {
			struct cache_entry *e = *p;

			if (!e->inflight && now - e->fetched_ms > max_ms) {
				*p = e->next;
				cache_entry_free(e);
				st->ncache--;
			} else {
				p = &e->next;
			}
		}
	}
}

int
sync_store_read(struct sync_store *st, const char *key, const char *version, bool metadata,
		int64_t max_age_ms, json_t **ret, struct lk_error *err)
{
	char mount[256], path[LK_VAULT_PATH_MAX], ckey[LK_VAULT_PATH_MAX + 300];
	struct cache_entry *e;
	int64_t v = 0;
	json_t *data = NULL;
	int r;

	if (split_key(st, key, mount, sizeof(mount), path, sizeof(path)) < 0)
		return lk_error_set(err, -EINVAL, "remoteRef.key %.200s: expected MOUNT/PATH (or a "
				    "path under the store's spec.provider.vault.path)", key);
	if (version != NULL && version[0] != '\0') {
		char *end;

		v = strtoll(version, &end, 10);
		if (*end != '\0' || v <= 0)
			return lk_error_set(err, -EINVAL, "remoteRef.version %.40s: expected a version "
					    "number", version);
		if (st->kv_version == 1)
			return lk_error_set(err, -EINVAL, "remoteRef.version: KV v1 has no versions");
	}
	if (metadata && st->kv_version == 1)
		return lk_error_set(err, -EINVAL, "remoteRef.metadataPolicy: Fetch needs KV v2");
	snprintf(ckey, sizeof(ckey), "%s\x1f%s\x1f%lld%s", mount, path, (long long)v,
		 metadata ? "\x1fmetadata" : "");
	pthread_mutex_lock(&st->cache_lock);
	for (;;) {
		e = *cache_slot(st, ckey);
		if (e == NULL || (!e->inflight && lk_now_mono_ms() - e->fetched_ms > max_age_ms))
			break;
		if (!e->inflight) {
			/* Fresh enough: the read another ExternalSecret made serves this one. */
			r = e->rc;
			if (r == 0) {
				/* As the backend's answer was read: a value may hold NUL. */
				data = json_loadb(e->text, e->len, JSON_ALLOW_NUL, NULL);
				r = data != NULL ? 0 :
				    lk_error_set(err, -ENOMEM, "%s: the cached answer of another read "
						 "could not be used", path);
			} else {
				lk_error_set(err, r, "%s", e->msg);
			}
			pthread_mutex_unlock(&st->cache_lock);
			lk_metric_add(st->owner->ctx->metrics.coalesced, NULL, 1);
			if (r == 0)
				*ret = data;
			return r;
		}
		/* The same read is in flight: wait for it. */
		pthread_cond_wait(&st->cache_cond, &st->cache_lock);
	}
	if (e == NULL) {
		if (st->ncache >= SYNC_CACHE_MAX)
			cache_sweep(st, 0);
		if ((e = calloc(1, sizeof(*e))) == NULL || (e->key = strdup(ckey)) == NULL) {
			free(e);
			pthread_mutex_unlock(&st->cache_lock);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		*cache_slot(st, ckey) = e;
		st->ncache++;
	}
	e->inflight = true;
	pthread_mutex_unlock(&st->cache_lock);

	r = backend_read(st, mount, path, v, metadata, &data, err);

	pthread_mutex_lock(&st->cache_lock);
	if (e->text != NULL) {
		explicit_bzero(e->text, e->len);
		free(e->text);
		e->text = NULL;
	}
	e->rc = r;
	snprintf(e->msg, sizeof(e->msg), "%s", r < 0 && err != NULL ? err->msg : "");
	if (r == 0 && (e->text = json_dumps(data, JSON_COMPACT)) != NULL)
		e->len = strlen(e->text);
	else if (r == 0)
		e->rc = -ENOMEM;
	/* A transport failure is not worth sharing: the next reader tries again. */
	e->fetched_ms = r == 0 || r == -ENOENT ? lk_now_mono_ms() : 0;
	e->inflight = false;
	pthread_cond_broadcast(&st->cache_cond);
	pthread_mutex_unlock(&st->cache_lock);
	if (r == 0)
		*ret = data;
	return r;
}

/* ---- the store's own reconcile ------------------------------------------------------ */

int
sync_store_reconcile(struct sync_stores *s, const char *kind, const char *ns, const char *name)
{
	const struct lk_k8s_resource *res = strcmp(kind, "ClusterSecretStore") == 0 ?
		&s->ctx->kinds.css : &s->ctx->kinds.ss;
	bool cluster = res == &s->ctx->kinds.css;
	struct sync_store *st = NULL;
	struct lk_error err = { 0 };
	json_t *obj;
	int r;

	obj = cluster ? sync_cached(s->ctx, "css", "", name) : sync_cached(s->ctx, "ss", ns, name);
	if (obj == NULL) {
		sync_store_forget(s, kind, ns, name);
		return 0;
	}
	r = store_for(s, kind, cluster ? "" : ns, obj, &st, &err);
	if (r == 0)
		r = ensure_token(st, false, &err);
	if (sync_may_write(s->ctx)) {
		json_t *extra = json_pack("{s:s}", "capabilities", "ReadOnly");

		(void)sync_status_write(s->ctx, res, obj, r == 0, r == 0 ? "Valid" :
					r == -EINVAL ? "InvalidProviderConfig" : "ValidationFailed",
					r == 0 ? "store validated" : err.msg, extra);
		json_decref(extra);
	}
	if (r == 0) {
		/* Checked again every spec.refreshInterval (a login or a token lookup). */
		const json_t *ri = json_object_get(json_object_get(obj, "spec"), "refreshInterval");
		int64_t every = STORE_RECHECK_MS;
		char key[SYNC_KEY_MAX];

		if (json_is_integer(ri) && json_integer_value(ri) > 0)
			every = json_integer_value(ri) * 1000;
		else if (json_is_string(ri) && lk_duration_parse(json_string_value(ri), &every) < 0)
			every = STORE_RECHECK_MS;
		snprintf(key, sizeof(key), "store/%s/%s/%s", kind, ns, name);
		sync_queue_add_after(s->ctx->queue, key, every > 0 ? every : STORE_RECHECK_MS);
	}
	sync_store_release(st);
	json_decref(obj);
	sync_stores_metrics(s);
	return r == -EINVAL ? 0 : r;
}
