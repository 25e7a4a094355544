/* informer.c — a watched, cached set of objects: list, then watch from the list's
 * resourceVersion with bookmarks; resume after a closed watch from the last version seen;
 * relist on 410 (the HTTP status or an ERROR event), on other errors after a capped
 * backoff (k8s.h).
 *
 * The cache holds each object as compact JSON text (a parsed json_t costs several times
 * more memory, and ten thousand objects is a normal controller's load), keyed by
 * "namespace/name", with its resourceVersion.
 */
#include "k8s/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/backoff.h"
#include "common/buf.h"
#include "common/clock.h"

/* Buckets of the cache's hash table (grows by doubling past 3/4 full). */
#define CACHE_BUCKETS_INITIAL 256
/* Longest "namespace/name" key. */
#define KEY_MAX 384
/* Longest resourceVersion kept. */
#define RV_MAX 64
/* Backoff after a failed list or watch. */
#define RETRY_BASE_MS 200
#define RETRY_CAP_MS 10000
/* Slack past the server-side watch timeout before the client gives up on the stream. */
#define WATCH_SLACK_MS 30000

struct entry {
	struct entry *next;
	char *key;
	char *text;          /* compact JSON */
	size_t len;
	char rv[RV_MAX];
};

struct cache {
	struct entry **buckets;
	size_t nbuckets;
	size_t n;
};

struct lk_k8s_informer {
	struct lk_k8s_client *client;
	const struct lk_k8s_resource *res;
	char *ns;
	char *selector;
	json_t *(*transform)(void *arg, json_t *obj);
	void *transform_arg;
	struct lk_k8s_informer_handlers h;
	int64_t watch_timeout_s;

	pthread_t thread;
	volatile bool stop;
	atomic_bool synced;
	pthread_mutex_t lock;       /* the cache */
	struct cache cache;
	char rv[RV_MAX];            /* where the next watch starts; "" relists */
	_Atomic uint64_t lists, watches, expired, events;
};

/* ---- the cache ---------------------------------------------------------------------- */

static uint64_t
hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int
cache_init(struct cache *c)
{
	c->nbuckets = CACHE_BUCKETS_INITIAL;
	c->n = 0;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	return c->buckets != NULL ? 0 : -ENOMEM;
}

static void
entry_free(struct entry *e)
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
cache_clear(struct cache *c)
{
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	free(c->buckets);
	memset(c, 0, sizeof(*c));
}

static struct entry **
cache_slot(struct cache *c, const char *key)
{
	struct entry **p = &c->buckets[hash_key(key) & (c->nbuckets - 1)];

	while (*p != NULL && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

static void
cache_grow(struct cache *c)
{
	size_t n = c->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));

	if (b == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[hash_key(e->key) & (n - 1)];
			b[hash_key(e->key) & (n - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

/* Puts e (taken) in place of an entry with its key; returns the replaced one (caller
 * frees) or NULL. */
static struct entry *
cache_put(struct cache *c, struct entry *e)
{
	struct entry **p = cache_slot(c, e->key), *old = *p;

	if (old != NULL) {
		e->next = old->next;
		*p = e;
		return old;
	}
	e->next = NULL;
	*p = e;
	if (++c->n > c->nbuckets / 4 * 3)
		cache_grow(c);
	return NULL;
}

/* Takes the entry out (caller frees) or NULL. */
static struct entry *
cache_take(struct cache *c, const char *key)
{
	struct entry **p = cache_slot(c, key), *e = *p;

	if (e != NULL) {
		*p = e->next;
		c->n--;
	}
	return e;
}

static void
object_key(const json_t *obj, char *out, size_t outlen)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));

	snprintf(out, outlen, "%s/%s", ns != NULL ? ns : "", name != NULL ? name : "");
}

/* The object to cache: transformed, or without managedFields. New reference or NULL. */
static json_t *
prepare(struct lk_k8s_informer *inf, json_t *obj)
{
	json_t *copy;

	if (inf->transform != NULL)
		return inf->transform(inf->transform_arg, obj);
	if ((copy = json_copy(obj)) == NULL)
		return NULL;
	if (json_is_object(json_object_get(copy, "metadata"))) {
		json_t *meta = json_copy(json_object_get(copy, "metadata"));

		json_object_del(meta, "managedFields");
		json_object_set_new(copy, "metadata", meta);
	}
	return copy;
}

static struct entry *
entry_new(const json_t *obj)
{
	struct entry *e = calloc(1, sizeof(*e));
	char key[KEY_MAX];
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"),
							   "resourceVersion"));

	if (e == NULL)
		return NULL;
	object_key(obj, key, sizeof(key));
	e->key = strdup(key);
	e->text = json_dumps(obj, JSON_COMPACT);
	if (e->key == NULL || e->text == NULL) {
		entry_free(e);
		return NULL;
	}
	e->len = strlen(e->text);
	snprintf(e->rv, sizeof(e->rv), "%s", rv != NULL ? rv : "");
	return e;
}

static json_t *
entry_object(const struct entry *e)
{
	return json_loadb(e->text, e->len, 0, NULL);
}

/* ---- list and watch ----------------------------------------------------------------- */

struct relist {
	struct lk_k8s_informer *inf;
	struct cache fresh;
	int rc;
};

static int
relist_item(void *arg, json_t *item)
{
	struct relist *rl = arg;
	json_t *obj = prepare(rl->inf, item);
	struct entry *e;

	if (obj == NULL)
		return 0;
	e = entry_new(obj);
	json_decref(obj);
	if (e == NULL)
		return -ENOMEM;
	entry_free(cache_put(&rl->fresh, e));
	return 0;
}

/* A full list: the new cache replaces the old, and the handlers hear the difference. */
static int
relist(struct lk_k8s_informer *inf, struct lk_k8s_error *err)
{
	struct relist rl = { .inf = inf };
	struct cache old;
	char rv[RV_MAX] = "";
	int rc;

	if (cache_init(&rl.fresh) < 0)
		return -ENOMEM;
	atomic_fetch_add(&inf->lists, 1);
	rc = lk_k8s_list(inf->client, inf->res, inf->ns, inf->selector, relist_item, &rl, rv,
			 sizeof(rv), err);
	if (rc < 0) {
		cache_clear(&rl.fresh);
		return rc;
	}
	pthread_mutex_lock(&inf->lock);
	old = inf->cache;
	inf->cache = rl.fresh;
	pthread_mutex_unlock(&inf->lock);
	/* Handlers run outside the lock: they may read the cache. */
	for (size_t i = 0; i < inf->cache.nbuckets; i++) {
		for (struct entry *e = inf->cache.buckets[i]; e != NULL; e = e->next) {
			struct entry **o = cache_slot(&old, e->key);
			json_t *now, *before;

			if (*o != NULL && strcmp((*o)->rv, e->rv) == 0)
				continue;
			now = entry_object(e);
			before = *o != NULL ? entry_object(*o) : NULL;
			if (before != NULL && inf->h.on_update != NULL)
				inf->h.on_update(inf->h.arg, before, now);
			else if (before == NULL && inf->h.on_add != NULL)
				inf->h.on_add(inf->h.arg, now);
			json_decref(now);
			json_decref(before);
		}
	}
	for (size_t i = 0; i < old.nbuckets; i++) {
		for (struct entry *e = old.buckets[i]; e != NULL; e = e->next) {
			if (*cache_slot(&inf->cache, e->key) == NULL && inf->h.on_delete != NULL) {
				json_t *gone = entry_object(e);

				inf->h.on_delete(inf->h.arg, gone);
				json_decref(gone);
			}
		}
	}
	cache_clear(&old);
	snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
	atomic_store(&inf->synced, true);
	if (inf->h.on_synced != NULL)
		inf->h.on_synced(inf->h.arg);
	return 0;
}

struct stream {
	struct lk_k8s_informer *inf;
	struct lk_buf line;
	bool expired;               /* an ERROR event with a 410 Status */
	bool failed;                /* another ERROR, or an event that could not be read */
};

static void
apply_event(struct stream *st, const char *type, json_t *raw)
{
	struct lk_k8s_informer *inf = st->inf;
	const char *rv = json_string_value(json_object_get(json_object_get(raw, "metadata"),
							   "resourceVersion"));
	struct entry *e, *old;
	json_t *obj, *before;
	char key[KEY_MAX];

	if (rv != NULL)
		snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
	if (strcmp(type, "BOOKMARK") == 0)
		return;
	atomic_fetch_add(&inf->events, 1);
	if (strcmp(type, "DELETED") == 0) {
		object_key(raw, key, sizeof(key));
		pthread_mutex_lock(&inf->lock);
		old = cache_take(&inf->cache, key);
		pthread_mutex_unlock(&inf->lock);
		if (old != NULL) {
			before = entry_object(old);
			if (inf->h.on_delete != NULL && before != NULL)
				inf->h.on_delete(inf->h.arg, before);
			json_decref(before);
			entry_free(old);
		}
		return;
	}
	if ((obj = prepare(inf, raw)) == NULL)
		return;
	if ((e = entry_new(obj)) == NULL) {
		json_decref(obj);
		st->failed = true;
		return;
	}
	pthread_mutex_lock(&inf->lock);
	old = cache_put(&inf->cache, e);
	pthread_mutex_unlock(&inf->lock);
	before = old != NULL ? entry_object(old) : NULL;
	if (before != NULL && inf->h.on_update != NULL)
		inf->h.on_update(inf->h.arg, before, obj);
	else if (before == NULL && inf->h.on_add != NULL)
		inf->h.on_add(inf->h.arg, obj);
	json_decref(before);
	entry_free(old);
	json_decref(obj);
}

static void
stream_line(struct stream *st, const char *p, size_t n)
{
	json_t *ev = json_loadb(p, n, 0, NULL), *obj;
	const char *type;

	if (ev == NULL) {
		st->failed = true;
		return;
	}
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (type == NULL || !json_is_object(obj)) {
		st->failed = true;
	} else if (strcmp(type, "ERROR") == 0) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));

		if (code == 410)
			st->expired = true;
		else
			st->failed = true;
	} else {
		apply_event(st, type, obj);
	}
	json_decref(ev);
}

/* The watch body, a JSON object per line. */
static int
on_stream(void *arg, const char *p, size_t n)
{
	struct stream *st = arg;

	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) : n;

		if (lk_buf_append(&st->line, p, take) < 0) {
			st->failed = true;
			return 1;
		}
		if (nl == NULL)
			break;
		if (st->line.len > 0)
			stream_line(st, st->line.data, st->line.len);
		lk_buf_reset(&st->line);
		if (st->expired || st->failed || st->inf->stop)
			return 1;
		p = nl + 1;
		n -= take + 1;
	}
	return 0;
}

/* One watch from inf->rv until the server ends it: 0 on a clean end (watch again from the
 * last version), -ESTALE when the version is too old (relist), another error otherwise. */
static int
watch(struct lk_k8s_informer *inf, struct lk_k8s_error *err)
{
	char query[LK_K8S_URL_MAX], sel[2048] = "", rv[RV_MAX * 3];
	struct stream st = { .inf = inf };
	int rc;

	if (inf->selector != NULL && lk_http_escape(inf->selector, sel, sizeof(sel)) < 0)
		return -ENAMETOOLONG;
	if (lk_http_escape(inf->rv, rv, sizeof(rv)) < 0)
		return -ENAMETOOLONG;
	snprintf(query, sizeof(query),
		 "watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%lld%s%s", rv,
		 (long long)inf->watch_timeout_s, sel[0] ? "&labelSelector=" : "", sel);
	{
		const struct k8s_call call = {
			.verb = "watch", .method = "GET", .res = inf->res, .ns = inf->ns,
			.query = query, .wipe = true, .no_retry = true,
			.timeout_ms = inf->watch_timeout_s * 1000 + WATCH_SLACK_MS,
			.on_data = on_stream, .arg = &st, .cancel = &inf->stop,
		};

		lk_buf_init(&st.line, LK_K8S_EVENT_MAX, true);
		atomic_fetch_add(&inf->watches, 1);
		rc = k8s_call(inf->client, &call, NULL, err);
		lk_buf_free(&st.line);
	}
	if (st.expired || (rc < 0 && err != NULL && err->status == 410)) {
		atomic_fetch_add(&inf->expired, 1);
		return -ESTALE;
	}
	if (inf->stop)
		return 0;
	if (st.failed)
		return -EBADMSG;
	return rc;
}

static void *
informer_main(void *arg)
{
	struct lk_k8s_informer *inf = arg;
	struct lk_backoff bo;
	struct lk_k8s_error err;

	lk_backoff_init(&bo, RETRY_BASE_MS, RETRY_CAP_MS);
	while (!inf->stop) {
		int rc;

		if (inf->rv[0] == '\0') {
			rc = relist(inf, &err);
			if (rc < 0) {
				k8s_sleep_ms(lk_backoff_next(&bo), &inf->stop);
				continue;
			}
		}
		rc = watch(inf, &err);
		if (rc == -ESTALE) {
			inf->rv[0] = '\0';
			continue;
		}
		if (rc < 0 && !inf->stop) {
			/* The API server is away or answered oddly: relist after a pause, as the
			 * events missed meanwhile are not replayed. */
			inf->rv[0] = '\0';
			k8s_sleep_ms(lk_backoff_next(&bo), &inf->stop);
			continue;
		}
		lk_backoff_reset(&bo);
	}
	return NULL;
}

/* ---- the public face ---------------------------------------------------------------- */

int
lk_k8s_informer_start(struct lk_k8s_client *c, const struct lk_k8s_informer_config *cfg,
		      struct lk_k8s_informer **ret, struct lk_error *err)
{
	struct lk_k8s_informer *inf;
	int r;

	if ((inf = calloc(1, sizeof(*inf))) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	inf->client = c;
	inf->res = cfg->resource;
	inf->transform = cfg->transform;
	inf->transform_arg = cfg->transform_arg;
	inf->h = cfg->handlers;
	inf->watch_timeout_s = cfg->watch_timeout_s > 0 ? cfg->watch_timeout_s : 300;
	if ((cfg->ns != NULL && (inf->ns = strdup(cfg->ns)) == NULL) ||
	    (cfg->label_selector != NULL && (inf->selector = strdup(cfg->label_selector)) == NULL) ||
	    cache_init(&inf->cache) < 0) {
		free(inf->ns);
		free(inf->selector);
		free(inf);
		return lk_error_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&inf->lock, NULL);
	atomic_init(&inf->synced, false);
	if ((r = pthread_create(&inf->thread, NULL, informer_main, inf)) != 0) {
		cache_clear(&inf->cache);
		pthread_mutex_destroy(&inf->lock);
		free(inf->ns);
		free(inf->selector);
		free(inf);
		return lk_error_set(err, -r, "cannot start a thread: %s", strerror(r));
	}
	*ret = inf;
	return 0;
}

void
lk_k8s_informer_stop(struct lk_k8s_informer *inf)
{
	if (inf == NULL)
		return;
	inf->stop = true;
	pthread_join(inf->thread, NULL);
	cache_clear(&inf->cache);
	pthread_mutex_destroy(&inf->lock);
	free(inf->ns);
	free(inf->selector);
	free(inf);
}

bool
lk_k8s_informer_synced(const struct lk_k8s_informer *inf)
{
	return atomic_load(&((struct lk_k8s_informer *)inf)->synced);
}

json_t *
lk_k8s_informer_get(struct lk_k8s_informer *inf, const char *ns, const char *name)
{
	char key[KEY_MAX];
	struct entry *e;
	json_t *obj = NULL;

	snprintf(key, sizeof(key), "%s/%s", ns != NULL ? ns : "", name);
	pthread_mutex_lock(&inf->lock);
	e = *cache_slot(&inf->cache, key);
	if (e != NULL)
		obj = entry_object(e);
	pthread_mutex_unlock(&inf->lock);
	return obj;
}

void
lk_k8s_informer_foreach(struct lk_k8s_informer *inf, void (*fn)(void *arg, const json_t *obj),
			void *arg)
{
	pthread_mutex_lock(&inf->lock);
	for (size_t i = 0; i < inf->cache.nbuckets; i++) {
		for (struct entry *e = inf->cache.buckets[i]; e != NULL; e = e->next) {
			json_t *obj = entry_object(e);

			if (obj != NULL)
				fn(arg, obj);
			json_decref(obj);
		}
	}
	pthread_mutex_unlock(&inf->lock);
}

size_t
lk_k8s_informer_count(struct lk_k8s_informer *inf)
{
	size_t n;

	pthread_mutex_lock(&inf->lock);
	n = inf->cache.n;
	pthread_mutex_unlock(&inf->lock);
	return n;
}

void
lk_k8s_informer_stats(struct lk_k8s_informer *inf, struct lk_k8s_informer_stats *ret)
{
	ret->lists = atomic_load(&inf->lists);
	ret->watches = atomic_load(&inf->watches);
	ret->expired = atomic_load(&inf->expired);
	ret->events = atomic_load(&inf->events);
}

/* ---- the stream alone, for the fuzz target ------------------------------------------ */

int
k8s_informer_feed(const struct lk_k8s_informer_config *cfg, const char *p, size_t n,
		  size_t chunk, size_t *ret_cached)
{
	struct lk_k8s_informer inf = { .res = cfg != NULL ? cfg->resource : NULL };
	struct stream st = { .inf = &inf };
	int rc = 0;

	if (cfg != NULL) {
		inf.transform = cfg->transform;
		inf.transform_arg = cfg->transform_arg;
		inf.h = cfg->handlers;
	}
	if (cache_init(&inf.cache) < 0)
		return -ENOMEM;
	pthread_mutex_init(&inf.lock, NULL);
	atomic_init(&inf.synced, false);
	/* The same line buffer as watch(): its cap and its wiping. */
	lk_buf_init(&st.line, LK_K8S_EVENT_MAX, true);
	if (chunk == 0)
		chunk = n > 0 ? n : 1;
	while (n > 0) {
		size_t take = n < chunk ? n : chunk;

		/* Non-zero ends the transfer, as it makes libcurl do. */
		if (on_stream(&st, p, take) != 0)
			break;
		p += take;
		n -= take;
	}
	lk_buf_free(&st.line);
	if (st.expired)
		rc = -ESTALE;
	else if (st.failed)
		rc = -EBADMSG;
	if (ret_cached != NULL)
		*ret_cached = inf.cache.n;
	cache_clear(&inf.cache);
	pthread_mutex_destroy(&inf.lock);
	return rc;
}
