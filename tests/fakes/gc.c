/* gc.c — the controllers a stand-in needs: the garbage collector (ownerReferences with
 * background, foreground and orphan propagation) and the namespace controller (a
 * terminating namespace's contents are deleted, then the namespace). One thread, woken
 * after deletions and owner changes; each pass reads the whole store under the lock,
 * decides, then acts, until nothing changes. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Passes run for one wake-up before the collector lets others have the lock. */
#define GC_PASSES_MAX 64
/* The least rest between two rounds of passes (see gc_run). */
#define GC_REST_MIN_NS (5 * 1000000LL)

struct item {
	const char *uid;
	struct fk_rtype *t;
	struct fk_obj *o;
};

struct ref {
	const char *owner_uid;
	bool blocking;
};

enum action_kind { ACT_DELETE, ACT_DROP_REF, ACT_UNFINALIZE, ACT_NS_DONE };

struct action {
	enum action_kind kind;
	struct fk_rtype *t;
	char key[FK_KEY_MAX];
	char arg[64];                   /* the owner uid, the finalizer, or the policy */
};

struct pass {
	struct item *items;
	size_t n, cap;
	struct ref *refs;               /* sorted by owner uid */
	size_t nrefs, refcap;
	struct action *acts;
	size_t nacts, actcap;
};

static int
cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->uid, ((const struct item *)b)->uid);
}

static int
cmp_ref(const void *a, const void *b)
{
	return strcmp(((const struct ref *)a)->owner_uid, ((const struct ref *)b)->owner_uid);
}

static struct item *
by_uid(struct pass *p, const char *uid)
{
	struct item key = { .uid = uid };

	return p->n > 0 ? bsearch(&key, p->items, p->n, sizeof(*p->items), cmp_item) : NULL;
}

/* Dependents of uid: how many, and how many block its deletion. */
static void
dependents(struct pass *p, const char *uid, size_t *ret_all, size_t *ret_blocking)
{
	struct ref key = { .owner_uid = uid };
	struct ref *r = p->nrefs > 0 ? bsearch(&key, p->refs, p->nrefs, sizeof(*p->refs), cmp_ref) : NULL;
	size_t all = 0, blocking = 0;

	if (r != NULL) {
		while (r > p->refs && strcmp(r[-1].owner_uid, uid) == 0)
			r--;
		for (; r < p->refs + p->nrefs && strcmp(r->owner_uid, uid) == 0; r++) {
			all++;
			blocking += r->blocking;
		}
	}
	*ret_all = all;
	*ret_blocking = blocking;
}

static void
act(struct pass *p, enum action_kind kind, struct fk_rtype *t, const char *key, const char *arg)
{
	if (p->nacts == p->actcap) {
		size_t cap = p->actcap ? p->actcap * 2 : 64;
		struct action *n = realloc(p->acts, cap * sizeof(*n));

		if (n == NULL)
			return;
		p->acts = n;
		p->actcap = cap;
	}
	struct action *a = &p->acts[p->nacts++];
	a->kind = kind;
	a->t = t;
	snprintf(a->key, sizeof(a->key), "%s", key);
	snprintf(a->arg, sizeof(a->arg), "%s", arg != NULL ? arg : "");
}

static bool
has_finalizer(const json_t *obj, const char *f)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(json_object_get((json_t *)obj, "metadata"), "finalizers"), i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), f) == 0)
			return true;
	}
	return false;
}

static int
collect(struct fk_state *st, struct pass *p)
{
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		if (t->storage != NULL)
			continue;
		for (size_t j = 0; j < t->bucket.n; j++) {
			struct fk_obj *o = &t->bucket.objs[j];
			const char *uid = fk_meta_str(o->obj, "uid");
			size_t k;
			json_t *ref;

			if (uid == NULL)
				continue;
			if (p->n == p->cap) {
				size_t cap = p->cap ? p->cap * 2 : 256;
				struct item *n = realloc(p->items, cap * sizeof(*n));

				if (n == NULL)
					return -ENOMEM;
				p->items = n;
				p->cap = cap;
			}
			p->items[p->n++] = (struct item){ uid, t, o };
			json_array_foreach(json_object_get(json_object_get(o->obj, "metadata"), "ownerReferences"), k, ref) {
				const char *ouid = fk_jstr(ref, "uid");

				if (ouid == NULL)
					continue;
				if (p->nrefs == p->refcap) {
					size_t cap = p->refcap ? p->refcap * 2 : 64;
					struct ref *n = realloc(p->refs, cap * sizeof(*n));

					if (n == NULL)
						return -ENOMEM;
					p->refs = n;
					p->refcap = cap;
				}
				p->refs[p->nrefs++] = (struct ref){ ouid, json_is_true(json_object_get(ref, "blockOwnerDeletion")) };
			}
		}
	}
	if (p->n > 0)
		qsort(p->items, p->n, sizeof(*p->items), cmp_item);
	if (p->nrefs > 0)
		qsort(p->refs, p->nrefs, sizeof(*p->refs), cmp_ref);
	return 0;
}

/* What to do about one object. */
static void
decide(struct fk_state *st, struct pass *p, struct item *it)
{
	json_t *obj = it->o->obj, *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *ref;
	bool deleting = fk_meta_str(obj, "deletionTimestamp") != NULL;
	size_t i, nrefs = json_array_size(refs), dangling = 0, solid = 0, all, blocking;
	const char *foreground_owner = NULL;

	json_array_foreach(refs, i, ref) {
		const char *ouid = fk_jstr(ref, "uid");
		struct item *owner = ouid != NULL ? by_uid(p, ouid) : NULL;

		if (owner == NULL) {
			dangling++;
			continue;
		}
		if (fk_meta_str(owner->o->obj, "deletionTimestamp") != NULL) {
			if (has_finalizer(owner->o->obj, "orphan")) {
				act(p, ACT_DROP_REF, it->t, it->o->key, ouid);
				continue;
			}
			if (has_finalizer(owner->o->obj, "foregroundDeletion")) {
				foreground_owner = ouid;
				continue;
			}
		}
		solid++;
	}
	if (nrefs > 0 && !deleting) {
		if (foreground_owner != NULL && solid == 0)
			act(p, ACT_DELETE, it->t, it->o->key, "Foreground");
		else if (dangling == nrefs)
			act(p, ACT_DELETE, it->t, it->o->key, "Background");
		else if (dangling > 0 && solid > 0) {
			json_array_foreach(refs, i, ref) {
				if (fk_jstr(ref, "uid") != NULL && by_uid(p, fk_jstr(ref, "uid")) == NULL)
					act(p, ACT_DROP_REF, it->t, it->o->key, fk_jstr(ref, "uid"));
			}
		}
	}
	if (!deleting)
		return;
	dependents(p, it->uid, &all, &blocking);
	if (has_finalizer(obj, "orphan") && all == 0)
		act(p, ACT_UNFINALIZE, it->t, it->o->key, "orphan");
	if (has_finalizer(obj, "foregroundDeletion") && blocking == 0)
		act(p, ACT_UNFINALIZE, it->t, it->o->key, "foregroundDeletion");
	if (it->t->hook == FK_HOOK_NAMESPACE) {
		const char *ns = fk_meta_str(obj, "name");
		size_t nslen = strlen(ns), left = 0;

		for (unsigned k = 0; k < st->reg.n; k++) {
			struct fk_rtype *t = st->reg.types[k];

			if (t->storage != NULL || !t->namespaced)
				continue;
			for (size_t j = 0; j < t->bucket.n; j++) {
				struct fk_obj *o = &t->bucket.objs[j];

				if (strncmp(o->key, ns, nslen) != 0 || o->key[nslen] != '/')
					continue;
				left++;
				if (fk_meta_str(o->obj, "deletionTimestamp") == NULL)
					act(p, ACT_DELETE, t, o->key, "Background");
			}
		}
		if (left == 0)
			act(p, ACT_NS_DONE, it->t, it->o->key, NULL);
	}
}

/* Removes the finalizer; the object goes when it was the last and it is being deleted. */
static bool
unfinalize(struct fk_state *st, struct fk_rtype *t, const char *key, const char *fin)
{
	struct fk_obj *o = fk_store_get(st, t, key);
	json_t *obj, *fins;

	if (o == NULL || !has_finalizer(o->obj, fin))
		return false;
	obj = json_deep_copy(o->obj);
	fins = json_object_get(fk_meta(obj), "finalizers");
	for (size_t i = json_array_size(fins); i-- > 0;) {
		if (strcmp(json_string_value(json_array_get(fins, i)) ? json_string_value(json_array_get(fins, i)) : "", fin) == 0)
			json_array_remove(fins, i);
	}
	if (json_array_size(fins) == 0)
		json_object_del(fk_meta(obj), "finalizers");
	if (json_array_size(fins) == 0 && fk_meta_str(obj, "deletionTimestamp") != NULL) {
		json_decref(obj);
		obj = json_incref(o->obj);
		fk_store_delete(st, t, key);
		fk_stats_write(&st->stats, "delete", t, NULL, fk_meta_str(obj, "namespace"), true);
		if (t->hook == FK_HOOK_CRD)
			fk_registry_crd_sync(st, obj, true);
		json_decref(obj);
		return true;
	}
	fk_store_update(st, t, key, obj);
	fk_stats_write(&st->stats, "update", t, NULL, fk_meta_str(o->obj, "namespace"), true);
	return true;
}

static bool
drop_ref(struct fk_state *st, struct fk_rtype *t, const char *key, const char *uid)
{
	struct fk_obj *o = fk_store_get(st, t, key);
	json_t *obj, *refs;
	bool changed = false;

	if (o == NULL)
		return false;
	obj = json_deep_copy(o->obj);
	refs = json_object_get(fk_meta(obj), "ownerReferences");
	for (size_t i = json_array_size(refs); i-- > 0;) {
		const char *u = fk_jstr(json_array_get(refs, i), "uid");

		if (u != NULL && strcmp(u, uid) == 0) {
			json_array_remove(refs, i);
			changed = true;
		}
	}
	if (!changed) {
		json_decref(obj);
		return false;
	}
	if (json_array_size(refs) == 0)
		json_object_del(fk_meta(obj), "ownerReferences");
	fk_store_update(st, t, key, obj);
	fk_stats_write(&st->stats, "update", t, NULL, fk_meta_str(o->obj, "namespace"), true);
	return true;
}

static bool
namespace_done(struct fk_state *st, struct fk_rtype *t, const char *key)
{
	struct fk_obj *o = fk_store_get(st, t, key);
	json_t *obj;

	if (o == NULL)
		return false;
	if (json_array_size(json_object_get(json_object_get(o->obj, "metadata"), "finalizers")) == 0) {
		fk_store_delete(st, t, key);
		fk_stats_write(&st->stats, "delete", t, NULL, NULL, true);
		return true;
	}
	/* someone else's finalizer remains: only the "kubernetes" one goes */
	if (json_array_size(json_object_get(fk_jobj(o->obj, "spec"), "finalizers")) == 0)
		return false;
	obj = json_deep_copy(o->obj);
	json_object_set_new(fk_jobj_ensure(obj, "spec"), "finalizers", json_array());
	fk_store_update(st, t, key, obj);
	fk_stats_write(&st->stats, "update", t, "finalize", NULL, true);
	return true;
}

static bool
gc_pass(struct fk_state *st)
{
	struct pass p = { 0 };
	bool changed = false;

	if (collect(st, &p) < 0)
		goto out;
	for (size_t i = 0; i < p.n; i++)
		decide(st, &p, &p.items[i]);
	/* decisions made on a consistent view; now act (objects may move) */
	for (size_t i = 0; i < p.nacts; i++) {
		struct action *a = &p.acts[i];

		switch (a->kind) {
		case ACT_DELETE: {
			struct fk_obj *o = fk_store_get(st, a->t, a->key);
			char ns[FK_NAME_MAX];
			int r;

			if (o == NULL || fk_meta_str(o->obj, "deletionTimestamp") != NULL)
				break;
			snprintf(ns, sizeof(ns), "%s", fk_meta_str(o->obj, "namespace") ? fk_meta_str(o->obj, "namespace") : "");
			r = fk_delete_object(st, a->t, a->key, a->arg, NULL);
			fk_stats_write(&st->stats, r == 0 ? "delete" : "update", a->t, NULL, ns, true);
			changed = true;
			break;
		}
		case ACT_DROP_REF:
			changed |= drop_ref(st, a->t, a->key, a->arg);
			break;
		case ACT_UNFINALIZE:
			changed |= unfinalize(st, a->t, a->key, a->arg);
			break;
		case ACT_NS_DONE:
			changed |= namespace_done(st, a->t, a->key);
			break;
		}
	}
out:
	free(p.items);
	free(p.refs);
	free(p.acts);
	return changed;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
nap_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *
gc_run(void *arg)
{
	struct fk_state *st = arg;
	int64_t t0, rest;

	pthread_mutex_lock(&st->lock);
	while (!st->gc_quit) {
		while (!st->gc_pending && !st->gc_quit)
			pthread_cond_wait(&st->gc_wake, &st->lock);
		if (st->gc_quit)
			break;
		st->gc_pending = false;
		t0 = now_ns();
		for (int i = 0; i < GC_PASSES_MAX && gc_pass(st); i++)
			;
		/* A pass reads the whole store: under a stream of creates with owners (every
		 * kick) the collector would hold the lock most of the time. It rests twice as
		 * long as it worked (at least GC_REST_MIN_NS), lock released; kicks meanwhile
		 * are taken together by the next pass. */
		rest = (now_ns() - t0) * 2;
		if (rest < GC_REST_MIN_NS)
			rest = GC_REST_MIN_NS;
		pthread_mutex_unlock(&st->lock);
		nap_ns(rest);
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

void
fk_gc_kick(struct fk_state *st)
{
	st->gc_pending = true;
	pthread_cond_signal(&st->gc_wake);
}

int
fk_gc_start(struct fk_state *st, pthread_t *ret)
{
	int r = pthread_create(ret, NULL, gc_run, st);

	return r == 0 ? 0 : -r;
}

void
fk_gc_stop(struct fk_state *st, pthread_t th)
{
	pthread_mutex_lock(&st->lock);
	st->gc_quit = true;
	pthread_cond_signal(&st->gc_wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(th, NULL);
}
