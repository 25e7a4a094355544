/* keys.c — the sealing keys of the SealedSecret controller (internal.h; docs/sync.md
 * "Sealing keys").
 *
 * Keys live as Secrets in the controller's namespace in Bitnami's shape (label
 * sealedsecrets.bitnami.com/sealed-secrets-key=active, type kubernetes.io/tls, tls.key and
 * tls.crt, and latchkey's lk1.key beside them), so an existing sealed-secrets key works as
 * it is. An informer watches them; its transform takes the key material out of the object
 * into secure memory and leaves only metadata in the cache. Every change builds a new key
 * ring (all keys, the newest of each kind to seal with, the certificate to serve) that
 * readers hold by reference, so a new key is used without a restart. The leader makes the
 * first key when there is none and a new one every --key-rotation; old keys stay for
 * opening. Which key opened each SealedSecret is kept for the inventory metrics.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "sealing/sealing.h"

/* Key Secrets taken into account, at most. */
#define KEY_SECRETS_MAX 128
/* SealedSecrets whose key is remembered for the inventory, at most. */
#define USES_MAX 65536
/* How often the key thread looks whether a key is due, at most this long apart. */
#define KEY_CHECK_MS (60 * 1000LL)
/* Keys with inventory series, at most. */
#define EXPORTED_MAX 256
/* Backoff after a failed key creation. */
#define KEY_RETRY_MS (10 * 1000LL)

struct key_secret {
	char name[LK_MANIFEST_NAME_MAX + 1];
	char rv[64];
	struct lk_secret *text;         /* the Secret as JSON: private keys, secure memory */
};

struct use {
	char key[SYNC_KEY_MAX];         /* the SealedSecret's queue key */
	char ids[SYNC_USE_IDS_MAX];     /* the keys that opened its values, comma-separated */
};

struct sync_keys {
	struct sync_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct key_secret secrets[KEY_SECRETS_MAX];
	size_t nsecrets;
	struct sync_keyring *ring;      /* the current one; a reference held */
	uint64_t generation;            /* bumped per ring */
	struct use *uses;
	size_t nuses;
	char exported[EXPORTED_MAX][LK_KEY_ID_HEX + 1]; /* key ids with metric series */
	size_t nexported;
	bool stop;
	pthread_t thread;
	bool thread_started;
};

static const char *
mstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* ---- rings -------------------------------------------------------------------------- */

static void
ring_free(struct sync_keyring *r)
{
	if (r == NULL)
		return;
	lk_keyset_free(r->ks);
	free(r->cert_pem);
	free(r->lk1_pub);
	free(r->info);
	free(r);
}

void
sync_keyring_release(struct sync_keyring *r)
{
	if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
		ring_free(r);
}

struct sync_keyring *
sync_keys_acquire(struct sync_keys *k)
{
	struct sync_keyring *r;

	pthread_mutex_lock(&k->lock);
	r = k->ring;
	if (r != NULL)
		atomic_fetch_add(&r->refs, 1);
	pthread_mutex_unlock(&k->lock);
	return r;
}

static int
cmp_created(const void *a, const void *b)
{
	const struct sync_key_info *x = a, *y = b;

	return x->not_before < y->not_before ? -1 : x->not_before > y->not_before;
}

/* A ring from the key Secrets (lock held). Secrets that hold no usable key are logged and
 * left out; the others still serve. */
static struct sync_keyring *
ring_build(struct sync_keys *k)
{
	struct sync_keyring *r = calloc(1, sizeof(*r));
	struct lk_error err;
	size_t cap = 0;

	if (r == NULL || (r->ks = lk_keyset_new()) == NULL) {
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	for (size_t i = 0; i < k->nsecrets; i++) {
		size_t before = lk_keyset_count(r->ks);
		json_t *root;

		lk_error_clear(&err);
		root = lk_json_parse(lk_secret_cstr(k->secrets[i].text), lk_secret_len(k->secrets[i].text),
				     0, k->secrets[i].name, &err);
		if (root == NULL || lk_sealing_import_key_manifest(r->ks, root, k->secrets[i].name, &err) < 0)
			lk_log(LK_WARN, "a sealing key Secret holds no usable key: left out",
			       LK_STR("secret", k->secrets[i].name), LK_STR("error", err.msg));
		json_decref(root);
		for (size_t j = before; j < lk_keyset_count(r->ks); j++) {
			const struct lk_key *key = lk_keyset_get(r->ks, j);
			struct sync_key_info *in;

			if (r->ninfo == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct sync_key_info *n = realloc(r->info, ncap * sizeof(*n));

				if (n == NULL) {
					ring_free(r);
					return NULL;
				}
				r->info = n;
				cap = ncap;
			}
			in = &r->info[r->ninfo++];
			memset(in, 0, sizeof(*in));
			snprintf(in->id, sizeof(in->id), "%s", lk_key_id(key));
			snprintf(in->secret, sizeof(in->secret), "%s", k->secrets[i].name);
			in->kind = lk_key_kind(key);
			in->not_before = lk_key_not_before(key);
			in->has_private = lk_key_has_private(key);
		}
	}
	/* lk1 keys carry no date: a key's date is its RSA sibling's (same Secret). */
	for (size_t i = 0; i < r->ninfo; i++) {
		if (r->info[i].kind != LK_KEY_X25519)
			continue;
		for (size_t j = 0; j < r->ninfo; j++)
			if (r->info[j].kind == LK_KEY_RSA && strcmp(r->info[j].secret, r->info[i].secret) == 0)
				r->info[i].not_before = r->info[j].not_before;
	}
	if (r->ninfo > 1)
		qsort(r->info, r->ninfo, sizeof(*r->info), cmp_created);
	{
		const struct lk_key *rsa = lk_keyset_newest(r->ks, LK_KEY_RSA);
		const struct lk_key *x = NULL;
		time_t best = 0;

		/* The newest lk1 key: the one of the newest Secret that has one. */
		for (size_t i = 0; i < lk_keyset_count(r->ks); i++) {
			const struct lk_key *c = lk_keyset_get(r->ks, i);

			for (size_t j = 0; j < r->ninfo; j++) {
				if (r->info[j].kind == LK_KEY_X25519 && strcmp(r->info[j].id, lk_key_id(c)) == 0 &&
				    lk_key_kind(c) == LK_KEY_X25519 && (x == NULL || r->info[j].not_before >= best)) {
					x = c;
					best = r->info[j].not_before;
				}
			}
		}
		if (rsa != NULL) {
			lk_error_clear(&err);
			if (lk_key_rsa_cert_pem(rsa, &r->cert_pem, &err) < 0)
				r->cert_pem = NULL;
			snprintf(r->newest_rsa, sizeof(r->newest_rsa), "%s", lk_key_id(rsa));
			r->newest_not_before = lk_key_not_before(rsa);
		}
		if (x != NULL) {
			if (lk_key_x25519_public_text(x, &r->lk1_pub) < 0)
				r->lk1_pub = NULL;
			snprintf(r->newest_lk1, sizeof(r->newest_lk1), "%s", lk_key_id(x));
		}
	}
	return r;
}

/* Builds and installs a new ring (lock held). Returns whether it did. */
static bool
ring_swap(struct sync_keys *k)
{
	struct sync_keyring *r = ring_build(k), *old;

	if (r == NULL) {
		lk_log(LK_ERROR, "out of memory building the sealing key ring");
		return false;
	}
	old = k->ring;
	k->ring = r;
	k->generation++;
	pthread_cond_broadcast(&k->wake);
	sync_keyring_release(old);
	lk_log(LK_INFO, "sealing keys", LK_INT("keys", r->ninfo),
	       LK_STR("newest", r->newest_rsa[0] ? r->newest_rsa : "none"));
	return true;
}

/* ---- the informer's side ------------------------------------------------------------ */

json_t *
sync_keys_transform(void *arg, json_t *obj)
{
	struct sync_keys *k = arg;
	const char *name = mstr(obj, "name"), *rv = mstr(obj, "resourceVersion");
	struct key_secret *slot = NULL;
	struct lk_secret *text = NULL;
	bool swapped = false;
	json_t *out;
	char *dump;

	if (name == NULL || rv == NULL || strlen(name) > LK_MANIFEST_NAME_MAX)
		return NULL;
	dump = json_dumps(obj, JSON_COMPACT);
	text = dump != NULL ? lk_secret_new(dump, strlen(dump)) : NULL;
	lk_free_wiped(dump);
	if (text == NULL)
		return NULL;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nsecrets; i++)
		if (strcmp(k->secrets[i].name, name) == 0)
			slot = &k->secrets[i];
	if (slot != NULL && strcmp(slot->rv, rv) == 0) {
		lk_secret_free(text);   /* the same version again (a relist) */
	} else if (slot == NULL && k->nsecrets == KEY_SECRETS_MAX) {
		lk_secret_free(text);
		lk_log(LK_WARN, "too many sealing key Secrets: left out", LK_STR("secret", name),
		       LK_INT("max", KEY_SECRETS_MAX));
	} else {
		if (slot == NULL)
			slot = &k->secrets[k->nsecrets++];
		lk_secret_free(slot->text);
		snprintf(slot->name, sizeof(slot->name), "%s", name);
		snprintf(slot->rv, sizeof(slot->rv), "%s", rv);
		slot->text = text;
		swapped = ring_swap(k);
	}
	pthread_mutex_unlock(&k->lock);
	/* SealedSecrets that did not open may open now. */
	if (swapped)
		sync_sealedsecrets_retry(k->ctx);
	/* The cache keeps the metadata only. */
	out = json_pack("{s:{s:s, s:O?, s:s, s:O?, s:O?}}", "metadata", "name", name,
			"namespace", json_object_get(json_object_get(obj, "metadata"), "namespace"),
			"resourceVersion", rv, "uid", json_object_get(json_object_get(obj, "metadata"), "uid"),
			"creationTimestamp", json_object_get(json_object_get(obj, "metadata"), "creationTimestamp"));
	return out;
}

void
sync_keys_on_delete(void *arg, const json_t *obj)
{
	struct sync_keys *k = arg;
	const char *name = mstr(obj, "name");

	if (name == NULL)
		return;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nsecrets; i++) {
		if (strcmp(k->secrets[i].name, name) != 0)
			continue;
		lk_secret_free(k->secrets[i].text);
		k->secrets[i] = k->secrets[--k->nsecrets];
		memset(&k->secrets[k->nsecrets], 0, sizeof(k->secrets[0]));
		(void)ring_swap(k);
		break;
	}
	pthread_mutex_unlock(&k->lock);
	/* A key gone: the leader may have to make one. */
}

/* ---- the inventory ------------------------------------------------------------------ */

void
sync_keys_note_use(struct sync_keys *k, const char *ss_key, const char *ids)
{
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nuses; i++) {
		if (strcmp(k->uses[i].key, ss_key) != 0)
			continue;
		if (ids == NULL)
			k->uses[i] = k->uses[--k->nuses];
		else
			snprintf(k->uses[i].ids, sizeof(k->uses[i].ids), "%s", ids);
		pthread_mutex_unlock(&k->lock);
		return;
	}
	if (ids != NULL && k->nuses < USES_MAX) {
		snprintf(k->uses[k->nuses].key, sizeof(k->uses[0].key), "%s", ss_key);
		snprintf(k->uses[k->nuses].ids, sizeof(k->uses[0].ids), "%s", ids);
		k->nuses++;
	}
	pthread_mutex_unlock(&k->lock);
}

bool
sync_keys_last_use(struct sync_keys *k, const char *ss_key, char *out, size_t outlen)
{
	bool found = false;

	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nuses && !found; i++) {
		if (strcmp(k->uses[i].key, ss_key) == 0) {
			snprintf(out, outlen, "%.*s", (int)strcspn(k->uses[i].ids, ","), k->uses[i].ids);
			found = true;
		}
	}
	pthread_mutex_unlock(&k->lock);
	return found;
}

void
sync_keys_metrics(struct sync_keys *k)
{
	struct sync_metrics *m = &k->ctx->metrics;
	struct sync_keyring *r = sync_keys_acquire(k);
	double now = (double)time(NULL);

	pthread_mutex_lock(&k->lock);
	/* Series of keys no longer in the ring go. */
	for (size_t i = 0; i < k->nexported; i++) {
		bool present = false;

		for (size_t j = 0; r != NULL && j < r->ninfo && !present; j++)
			present = strcmp(r->info[j].id, k->exported[i]) == 0;
		if (!present) {
			const char *labels[] = { k->exported[i], NULL };

			lk_metric_remove(m->key_uses, labels);
			lk_metric_remove(m->key_age, labels);
		}
	}
	k->nexported = 0;
	for (size_t i = 0; r != NULL && i < r->ninfo; i++) {
		const char *labels[] = { r->info[i].id, NULL };
		size_t n = 0;

		for (size_t j = 0; j < k->nuses; j++)
			n += strstr(k->uses[j].ids, r->info[i].id) != NULL;
		lk_metric_set(m->key_uses, labels, (double)n);
		if (r->info[i].not_before > 0)
			lk_metric_set(m->key_age, labels, now - (double)r->info[i].not_before);
		if (k->nexported < EXPORTED_MAX)
			snprintf(k->exported[k->nexported++], sizeof(k->exported[0]), "%s", r->info[i].id);
	}
	pthread_mutex_unlock(&k->lock);
	sync_keyring_release(r);
}

/* ---- making keys -------------------------------------------------------------------- */

/* Makes a key pair (RSA for the Bitnami format, X25519 for lk1) and its Secret. */
static int
make_key(struct sync_keys *k, struct lk_error *err)
{
	struct sync_ctx *ctx = k->ctx;
	struct lk_key *rsa = NULL, *x = NULL;
	struct lk_k8s_error kerr;
	json_t *manifest = NULL;
	int r;

	if ((r = lk_key_rsa_generate(ctx->opt.key_bits, "", LK_CERT_DAYS_DEFAULT, &rsa, err)) < 0)
		return r;
	if ((r = lk_key_x25519_generate(&x)) < 0) {
		lk_key_free(rsa);
		return lk_error_set(err, r, "cannot make an lk1 key");
	}
	if ((r = lk_sealing_key_manifest(rsa, x, ctx->opt.controller_ns, &manifest, err)) < 0)
		goto out;
	if (!sync_may_write(ctx)) {
		r = lk_error_set(err, -EAGAIN, "not the leader");
		goto out;
	}
	r = lk_k8s_create(ctx->k8s, &lk_k8s_secrets, ctx->opt.controller_ns, manifest, NULL, &kerr);
	if (r < 0) {
		lk_error_set(err, r, "creating Secret %s/%s: %s", ctx->opt.controller_ns,
			     mstr(manifest, "name"), kerr.base.msg);
		goto out;
	}
	lk_log(LK_INFO, "made a sealing key", LK_STR("secret", mstr(manifest, "name")),
	       LK_STR("rsa_id", lk_key_id(rsa)), LK_STR("lk1_id", lk_key_id(x)),
	       LK_INT("bits", ctx->opt.key_bits));
out:
	json_decref(manifest);
	lk_key_free(rsa);
	lk_key_free(x);
	return r;
}

/* How long until a key is due (0: now; -1: never). Lock held. */
static int64_t
key_due_in(struct sync_keys *k)
{
	const struct sync_keyring *r = k->ring;
	int64_t age_ms;

	if (r == NULL || r->newest_rsa[0] == '\0')
		return 0;
	if (k->ctx->opt.key_rotation_ms == 0)
		return -1;
	age_ms = lk_now_real_ms() - (int64_t)r->newest_not_before * 1000;
	return age_ms >= k->ctx->opt.key_rotation_ms ? 0 : k->ctx->opt.key_rotation_ms - age_ms;
}

static void *
keys_main(void *arg)
{
	struct sync_keys *k = arg;
	struct sync_ctx *ctx = k->ctx;
	struct lk_error err;

	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		int64_t wait = KEY_CHECK_MS, due;
		struct timespec ts;

		/* Only the leader makes keys, and only once it has seen the ones there are. */
		due = key_due_in(k);
		if (sync_may_write(ctx) && ctx->keys_inf != NULL && lk_k8s_informer_synced(ctx->keys_inf) &&
		    due == 0) {
			uint64_t gen = k->generation;

			pthread_mutex_unlock(&k->lock);
			lk_error_clear(&err);
			if (make_key(k, &err) < 0) {
				lk_log(LK_WARN, "cannot make a sealing key yet", LK_STR("error", err.msg));
				wait = KEY_RETRY_MS;
			} else {
				wait = KEY_RETRY_MS; /* until the informer brings the new Secret */
			}
			pthread_mutex_lock(&k->lock);
			if (k->generation != gen)
				continue;
		} else if (due > 0 && due < wait) {
			wait = due;
		} else if (ctx->keys_inf == NULL || !lk_k8s_informer_synced(ctx->keys_inf) ||
			   !sync_may_write(ctx)) {
			wait = 1000;
		}
		ts = lk_timespec_in_ms(CLOCK_MONOTONIC, wait);
		(void)pthread_cond_timedwait(&k->wake, &k->lock, &ts);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* ---- life --------------------------------------------------------------------------- */

struct sync_keys *
sync_keys_new(struct sync_ctx *ctx)
{
	struct sync_keys *k = calloc(1, sizeof(*k));

	if (k == NULL || (k->uses = calloc(USES_MAX, sizeof(*k->uses))) == NULL) {
		free(k);
		return NULL;
	}
	k->ctx = ctx;
	pthread_mutex_init(&k->lock, NULL);
	lk_cond_init_monotonic(&k->wake);
	return k;
}

int
sync_keys_start(struct sync_keys *k)
{
	if (pthread_create(&k->thread, NULL, keys_main, k) != 0)
		return -EAGAIN;
	k->thread_started = true;
	return 0;
}

void
sync_keys_wake(struct sync_keys *k)
{
	pthread_mutex_lock(&k->lock);
	pthread_cond_broadcast(&k->wake);
	pthread_mutex_unlock(&k->lock);
}

void
sync_keys_stop(struct sync_keys *k)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_cond_broadcast(&k->wake);
	pthread_mutex_unlock(&k->lock);
	if (k->thread_started)
		pthread_join(k->thread, NULL);
	k->thread_started = false;
}

void
sync_keys_free(struct sync_keys *k)
{
	if (k == NULL)
		return;
	sync_keys_stop(k);
	for (size_t i = 0; i < k->nsecrets; i++)
		lk_secret_free(k->secrets[i].text);
	sync_keyring_release(k->ring);
	pthread_mutex_destroy(&k->lock);
	pthread_cond_destroy(&k->wake);
	free(k->uses);
	free(k);
}

uint64_t
sync_keys_generation(struct sync_keys *k)
{
	uint64_t g;

	pthread_mutex_lock(&k->lock);
	g = k->generation;
	pthread_mutex_unlock(&k->lock);
	return g;
}
