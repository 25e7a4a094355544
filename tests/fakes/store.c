/* store.c — the objects of every resource, the global resourceVersion (an etcd revision:
 * one per write), and the event history that watches replay and consistent lists read
 * the past from. All under st->lock.
 *
 * The history is a ring of the last cfg->history writes. A version older than the oldest
 * write it still holds is "compacted": watches from it get 410 and list snapshots at it
 * (continue tokens, resourceVersionMatch=Exact) too. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
fk_store_init(struct fk_state *st)
{
	struct fk_history *h = &st->hist;

	memset(h, 0, sizeof(*h));
	h->cap = (size_t)st->cfg->history;
	if (h->cap == 0)
		h->cap = 1;
	if ((h->ring = calloc(h->cap, sizeof(*h->ring))) == NULL)
		return -ENOMEM;
	return 0;
}

static void
event_clear(struct fk_event *ev)
{
	json_decref(ev->obj);
	json_decref(ev->prev);
	free(ev->key);
	memset(ev, 0, sizeof(*ev));
}

void
fk_store_clear(struct fk_state *st)
{
	struct fk_history *h = &st->hist;

	for (uint64_t s = h->first_seq; s < h->end_seq; s++)
		event_clear(&h->ring[s % h->cap]);
	free(h->ring);
	h->ring = NULL;
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_bucket *b = &st->reg.types[i]->bucket;

		for (size_t j = 0; j < b->n; j++) {
			free(b->objs[j].key);
			json_decref(b->objs[j].obj);
		}
		b->n = 0;
	}
}

void
fk_obj_key(const struct fk_rtype *t, const char *ns, const char *name, char out[FK_KEY_MAX])
{
	if (t->namespaced)
		snprintf(out, FK_KEY_MAX, "%s/%s", ns != NULL ? ns : "", name);
	else
		snprintf(out, FK_KEY_MAX, "%s", name);
}

/* Binary search: the index of key, or where it would go (and *found false). */
static size_t
find(const struct fk_bucket *b, const char *key, bool *found)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(b->objs[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct fk_obj *
fk_store_get(struct fk_state *st, struct fk_rtype *t, const char *key)
{
	struct fk_bucket *b = &fk_rtype_storage(t)->bucket;
	bool found;
	size_t i = find(b, key, &found);

	(void)st;
	return found ? &b->objs[i] : NULL;
}

static void
record(struct fk_state *st, enum fk_event_type type, uint32_t bucket, const char *key,
       json_t *obj, json_t *prev)
{
	struct fk_history *h = &st->hist;
	struct fk_event *ev;

	if (h->end_seq - h->first_seq == h->cap) {
		ev = &h->ring[h->first_seq % h->cap];
		h->compact_rv = ev->rv;
		event_clear(ev);
		h->first_seq++;
	}
	ev = &h->ring[h->end_seq % h->cap];
	ev->rv = st->rv;
	ev->type = type;
	ev->bucket = bucket;
	ev->key = strdup(key);
	ev->obj = json_incref(obj);
	ev->prev = json_incref(prev);
	h->end_seq++;
	pthread_cond_broadcast(&st->changed);
}

static void
set_rv(json_t *obj, uint64_t rv)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rv);
	json_object_set_new(fk_meta(obj), "resourceVersion", json_string(buf));
}

int
fk_store_create(struct fk_state *st, struct fk_rtype *t, const char *key, json_t *obj)
{
	struct fk_rtype *s = fk_rtype_storage(t);
	struct fk_bucket *b = &s->bucket;
	bool found;
	size_t i = find(b, key, &found);
	char *k;

	if (found) {
		json_decref(obj);
		return -EEXIST;
	}
	if ((long)st->nobjects >= st->cfg->max_objects) {
		json_decref(obj);
		return -ENOSPC;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct fk_obj *n = realloc(b->objs, cap * sizeof(*n));

		if (n == NULL) {
			json_decref(obj);
			return -ENOMEM;
		}
		b->objs = n;
		b->cap = cap;
	}
	if ((k = strdup(key)) == NULL) {
		json_decref(obj);
		return -ENOMEM;
	}
	st->rv++;
	set_rv(obj, st->rv);
	memmove(&b->objs[i + 1], &b->objs[i], (b->n - i) * sizeof(b->objs[0]));
	b->objs[i] = (struct fk_obj){ .key = k, .obj = obj, .rv = st->rv, .created_rv = st->rv };
	b->n++;
	st->nobjects++;
	record(st, FK_ADDED, b->id, key, obj, NULL);
	return 0;
}

int
fk_store_update(struct fk_state *st, struct fk_rtype *t, const char *key, json_t *obj)
{
	struct fk_bucket *b = &fk_rtype_storage(t)->bucket;
	bool found;
	size_t i = find(b, key, &found);
	json_t *old;

	if (!found) {
		json_decref(obj);
		return -ENOENT;
	}
	st->rv++;
	set_rv(obj, st->rv);
	old = b->objs[i].obj;
	b->objs[i].obj = obj;
	b->objs[i].rv = st->rv;
	record(st, FK_MODIFIED, b->id, key, obj, old);
	json_decref(old);
	return 0;
}

int
fk_store_delete(struct fk_state *st, struct fk_rtype *t, const char *key)
{
	struct fk_bucket *b = &fk_rtype_storage(t)->bucket;
	bool found;
	size_t i = find(b, key, &found);
	json_t *old, *last;
	char *k;

	if (!found)
		return -ENOENT;
	old = b->objs[i].obj;
	k = b->objs[i].key;
	memmove(&b->objs[i], &b->objs[i + 1], (b->n - i - 1) * sizeof(b->objs[0]));
	b->n--;
	st->nobjects--;
	st->rv++;
	/* The DELETED event carries the last state at the deletion's own version. */
	last = json_deep_copy(old);
	if (last != NULL)
		set_rv(last, st->rv);
	record(st, FK_DELETED, b->id, key, last != NULL ? last : old, old);
	json_decref(last);
	json_decref(old);
	free(k);
	return 0;
}

void
fk_store_drop_bucket(struct fk_state *st, struct fk_rtype *t)
{
	struct fk_bucket *b = &t->bucket;

	while (b->n > 0)
		fk_store_delete(st, t, b->objs[b->n - 1].key);
}

void
fk_store_compact(struct fk_state *st)
{
	struct fk_history *h = &st->hist;

	for (uint64_t s = h->first_seq; s < h->end_seq; s++)
		event_clear(&h->ring[s % h->cap]);
	h->first_seq = h->end_seq;
	h->compact_rv = st->rv;
	pthread_cond_broadcast(&st->changed);
}

/* ---- snapshots ---- */

struct snap {
	struct fk_snap_item *v;
	size_t n, cap;
};

static long
snap_find(const struct snap *s, const char *key, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].key, key);

		if (c == 0) {
			*found = true;
			return (long)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return (long)lo;
}

static int
snap_put(struct snap *s, const char *key, json_t *obj)
{
	bool found;
	long i = snap_find(s, key, &found);

	if (found) {
		json_decref(s->v[i].obj);
		s->v[i].obj = json_incref(obj);
		s->v[i].key = key;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct fk_snap_item *n = realloc(s->v, cap * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		s->v = n;
		s->cap = cap;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - (size_t)i) * sizeof(s->v[0]));
	s->v[i] = (struct fk_snap_item){ .key = key, .obj = json_incref(obj) };
	s->n++;
	return 0;
}

static void
snap_remove(struct snap *s, const char *key)
{
	bool found;
	long i = snap_find(s, key, &found);

	if (!found)
		return;
	json_decref(s->v[i].obj);
	memmove(&s->v[i], &s->v[i + 1], (s->n - (size_t)i - 1) * sizeof(s->v[0]));
	s->n--;
}

void
fk_snapshot_free(struct fk_snap_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(items[i].obj);
	free(items);
}

int
fk_store_snapshot(struct fk_state *st, struct fk_rtype *t, uint64_t rv, const char *ns,
		  struct fk_snap_item **ret, size_t *ret_n)
{
	struct fk_rtype *s = fk_rtype_storage(t);
	struct fk_bucket *b = &s->bucket;
	struct fk_history *h = &st->hist;
	struct snap snap = { 0 };
	size_t nslen = ns != NULL ? strlen(ns) : 0, o = 0;
	int r = -ENOMEM;

	if (rv != 0 && rv < st->rv && rv < h->compact_rv)
		return -ESTALE;
	if (b->n > 0 && (snap.v = malloc(b->n * sizeof(*snap.v))) == NULL)
		return -ENOMEM;
	snap.cap = b->n;
	for (size_t i = 0; i < b->n; i++)
		snap.v[snap.n++] = (struct fk_snap_item){ .key = b->objs[i].key,
							  .obj = json_incref(b->objs[i].obj) };
	/* Undo the writes after rv, newest first. */
	if (rv != 0 && rv < st->rv) {
		for (uint64_t q = h->end_seq; q-- > h->first_seq;) {
			struct fk_event *ev = &h->ring[q % h->cap];

			if (ev->rv <= rv)
				break;
			if (ev->bucket != b->id)
				continue;
			if (ev->type == FK_ADDED)
				snap_remove(&snap, ev->key);
			else if (snap_put(&snap, ev->key, ev->prev) < 0)
				goto out;
		}
	}
	/* Only one namespace: keys "ns/..." */
	for (size_t i = 0; i < snap.n; i++) {
		if (ns != NULL && t->namespaced &&
		    (strncmp(snap.v[i].key, ns, nslen) != 0 || snap.v[i].key[nslen] != '/')) {
			json_decref(snap.v[i].obj);
			continue;
		}
		snap.v[o++] = snap.v[i];
	}
	snap.n = o;
	*ret = snap.v;
	*ret_n = snap.n;
	return 0;
out:
	fk_snapshot_free(snap.v, snap.n);
	return r;
}
