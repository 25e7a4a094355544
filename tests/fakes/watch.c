/* watch.c — watch streams: newline-delimited JSON events (ADDED, MODIFIED, DELETED,
 * BOOKMARK, ERROR) replayed from the history from a resourceVersion on, then live, over
 * a chunked response (REFERENCE.md §2.7).
 *
 * From "" or "0" a watch first sends ADDED for what exists. From a compacted version it
 * sends one ERROR event carrying a 410 Expired Status and ends, as kube-apiserver does;
 * the watch_gone fault answers with a plain HTTP 410 instead. With selectors, an object
 * that stops matching arrives as DELETED and one that starts matching as ADDED. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Default watch length when timeoutSeconds is not given (kube-apiserver picks 30-60 min). */
#define WATCH_DEFAULT_TIMEOUT_S 1800
/* Longest timeoutSeconds honoured. */
#define WATCH_TIMEOUT_MAX_S 86400
/* How often a waiting stream checks whether its client has gone. */
#define WATCH_POLL_MS 500

struct fk_watch {
	struct fk_state *st;
	struct fk_request *r;           /* borrowed: the connection's request, for hang-ups */
	char group[FK_GROUP_MAX];
	char plural[128];
	char version[64];
	char ns[FK_NAME_MAX];           /* "" for all namespaces */
	char name[FK_NAME_MAX];         /* "" for every name */
	struct fk_selector labels, fields;
	bool bookmarks;
	bool table;
	bool columns_sent;
	char include_object[16];
	uint64_t seq;                   /* next history entry */
	uint64_t after_rv;              /* only events newer than this */
	long deadline;                  /* monotonic ms */
	long next_bookmark;
	uint64_t epoch;
	long sent;
	struct fk_snap_item *init;      /* initial ADDED events still to send */
	size_t ninit, init_pos;
	bool init_end_bookmark;         /* sendInitialEvents: the closing BOOKMARK */
	bool ended;
	bool cut;                       /* end by closing the connection, not with an EOF */
	char *buf;                      /* serialized events not sent yet */
	size_t len, off, cap;
	bool counted;
};

static int
buf_add(struct fk_watch *w, const char *s)
{
	size_t n = strlen(s);

	if (w->off > 0 && w->off == w->len)
		w->off = w->len = 0;
	if (w->len + n + 2 > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		char *nb;

		while (cap < w->len + n + 2)
			cap *= 2;
		if ((nb = realloc(w->buf, cap)) == NULL)
			return -ENOMEM;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len++] = '\n';
	return 0;
}

/* Queues {"type":type,"object":obj}; obj borrowed, stored form; converted here. */
static void
emit(struct fk_watch *w, struct fk_rtype *t, unsigned vi, const char *type, json_t *obj,
     uint64_t rv_override)
{
	json_t *copy = json_deep_copy(obj), *ev, *shown;
	char *text;

	if (copy == NULL)
		return;
	if (rv_override != 0) {
		char rv[32];

		snprintf(rv, sizeof(rv), "%llu", (unsigned long long)rv_override);
		json_object_set_new(fk_meta(copy), "resourceVersion", json_string(rv));
	}
	fk_to_version(t, vi, copy);
	if (w->table) {
		shown = fk_table(w->st, t, vi, &copy, 1, w->include_object, !w->columns_sent);
		w->columns_sent = true;
		json_decref(copy);
	} else {
		shown = copy;
	}
	ev = json_pack("{s:s,s:o}", "type", type, "object", shown);
	if (ev != NULL && (text = fk_json_dump(ev)) != NULL) {
		buf_add(w, text);
		free(text);
	}
	json_decref(ev);
	w->sent++;
}

static void
emit_bookmark(struct fk_watch *w, struct fk_rtype *t, unsigned vi, uint64_t rv, bool init_end)
{
	char gv[400], rvs[32], *text;
	json_t *ev;

	snprintf(gv, sizeof(gv), "%s%s%s", t->group, t->group[0] ? "/" : "", t->versions[vi].name);
	snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
	ev = json_pack("{s:s,s:{s:s,s:s,s:{s:s,s:n}}}", "type", "BOOKMARK", "object", "kind", t->kind,
		       "apiVersion", gv, "metadata", "resourceVersion", rvs, "creationTimestamp");
	if (ev == NULL)
		return;
	if (init_end)
		json_object_set_new(json_object_get(json_object_get(ev, "object"), "metadata"),
				    "annotations", json_pack("{s:s}", "k8s.io/initial-events-end", "true"));
	if ((text = fk_json_dump(ev)) != NULL) {
		buf_add(w, text);
		free(text);
	}
	json_decref(ev);
}

static void
emit_gone(struct fk_watch *w, uint64_t rv, uint64_t oldest)
{
	char msg[128], *text;
	json_t *ev;

	snprintf(msg, sizeof(msg), "too old resource version: %llu (%llu)", (unsigned long long)rv,
		 (unsigned long long)oldest);
	ev = json_pack("{s:s,s:o}", "type", "ERROR", "object", fk_status_new(410, "Expired", msg, NULL));
	if (ev != NULL && (text = fk_json_dump(ev)) != NULL) {
		buf_add(w, text);
		free(text);
	}
	json_decref(ev);
}

static bool
passes(struct fk_watch *w, const char *key, json_t *obj)
{
	size_t n = strlen(w->ns);

	if (obj == NULL)
		return false;
	if (n > 0 && (strncmp(key, w->ns, n) != 0 || key[n] != '/'))
		return false;
	if (w->name[0] != '\0' && strcmp(fk_meta_str(obj, "name") ? fk_meta_str(obj, "name") : "", w->name) != 0)
		return false;
	if (!fk_labels_match(&w->labels, json_object_get(json_object_get(obj, "metadata"), "labels")))
		return false;
	return fk_fields_match(&w->fields, obj);
}

void
fk_watch_start(struct fk_state *st, struct fk_request *r, struct fk_rtype *t, unsigned version,
	       const char *ns, const char *name_filter)
{
	const char *rvs = fk_req_query(r, "resourceVersion");
	const char *ls = fk_req_query(r, "labelSelector"), *fs = fk_req_query(r, "fieldSelector");
	const char *to = fk_req_query(r, "timeoutSeconds"), *sie = fk_req_query(r, "sendInitialEvents");
	const char *bm = fk_req_query(r, "allowWatchBookmarks"), *inc = fk_req_query(r, "includeObject");
	struct fk_history *h = &st->hist;
	struct fk_watch *w;
	char err[512];
	uint64_t rv = 0;
	long timeout = WATCH_DEFAULT_TIMEOUT_S;
	bool from_now = rvs == NULL || rvs[0] == '\0' || strcmp(rvs, "0") == 0;
	bool initial;

	if (st->watches >= st->cfg->max_watches) {
		fk_reply_text(r, 429, "text/plain; charset=utf-8", "Too many requests, please try again later.\n");
		r->retry_after = 1;
		return;
	}
	if (!from_now) {
		char *end;

		rv = strtoull(rvs, &end, 10);
		if (*end != '\0' || end == rvs) {
			fk_reply_bad_request(r, "invalid resource version: %s", rvs);
			return;
		}
	}
	if (fk_faults_watch_gone(st)) {
		fk_reply_status(r, 410, "Expired", NULL, "too old resource version: %llu (%llu)",
				(unsigned long long)rv, (unsigned long long)st->rv);
		return;
	}
	if (to != NULL) {
		char *end;

		timeout = strtol(to, &end, 10);
		if (*end != '\0' || end == to || timeout < 0) {
			fk_reply_bad_request(r, "invalid timeoutSeconds: %s", to);
			return;
		}
		if (timeout == 0 || timeout > WATCH_TIMEOUT_MAX_S)
			timeout = timeout == 0 ? WATCH_DEFAULT_TIMEOUT_S : WATCH_TIMEOUT_MAX_S;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		fk_reply_status(r, 500, "InternalError", NULL, "out of memory");
		return;
	}
	w->st = st;
	w->r = r;
	if (ls != NULL && fk_label_selector_parse(ls, &w->labels, err, sizeof(err)) < 0) {
		fk_reply_bad_request(r, "unable to parse requirement: %s", err);
		goto fail;
	}
	if (fs != NULL && (fk_field_selector_parse(fs, &w->fields, err, sizeof(err)) < 0 ||
			   fk_fields_supported(t, &w->fields, err, sizeof(err)) < 0)) {
		fk_reply_bad_request(r, "%s", err);
		goto fail;
	}
	snprintf(w->group, sizeof(w->group), "%s", t->group);
	snprintf(w->plural, sizeof(w->plural), "%s", t->plural);
	snprintf(w->version, sizeof(w->version), "%s", t->versions[version].name);
	snprintf(w->ns, sizeof(w->ns), "%s", t->namespaced && ns != NULL ? ns : "");
	snprintf(w->name, sizeof(w->name), "%s", name_filter != NULL ? name_filter : "");
	w->bookmarks = bm != NULL && (strcmp(bm, "true") == 0 || strcmp(bm, "1") == 0);
	w->table = fk_wants_table(r);
	snprintf(w->include_object, sizeof(w->include_object), "%s", inc != NULL ? inc : "Metadata");
	w->deadline = fk_mono_ms() + timeout * 1000;
	w->next_bookmark = fk_mono_ms() + st->cfg->bookmark_ms;
	w->epoch = st->watch_epoch;
	initial = sie != NULL ? (strcmp(sie, "true") == 0 || strcmp(sie, "1") == 0) : from_now;
	w->seq = h->end_seq;
	if (!from_now && rv < h->compact_rv && rv < st->rv) {
		emit_gone(w, rv, h->compact_rv);
		w->ended = true;
	} else if (initial) {
		struct fk_snap_item *items = NULL;
		size_t n = 0;

		if (fk_store_snapshot(st, t, 0, w->ns[0] ? w->ns : NULL, &items, &n) < 0) {
			fk_reply_status(r, 500, "InternalError", NULL, "out of memory");
			goto fail;
		}
		w->init = items;
		w->ninit = n;
		w->after_rv = st->rv;
		w->init_end_bookmark = sie != NULL && w->bookmarks;
	} else {
		/* events after rv: back up the cursor to the first one newer */
		w->after_rv = rv;
		while (w->seq > h->first_seq && h->ring[(w->seq - 1) % h->cap].rv > rv)
			w->seq--;
	}
	st->watches++;
	w->counted = true;
	r->status = 200;
	r->resp_type = "application/json";
	r->watch = w;
	return;
fail:
	fk_watch_free(w);
}

/* Turns one history entry into what this watch sees. */
static void
consider(struct fk_watch *w, struct fk_rtype *t, unsigned vi, const struct fk_event *ev)
{
	bool now, before;

	if (ev->rv <= w->after_rv || ev->bucket != fk_rtype_storage(t)->bucket.id)
		return;
	switch (ev->type) {
	case FK_ADDED:
		if (passes(w, ev->key, ev->obj))
			emit(w, t, vi, "ADDED", ev->obj, 0);
		break;
	case FK_MODIFIED:
		now = passes(w, ev->key, ev->obj);
		before = passes(w, ev->key, ev->prev);
		if (now && before)
			emit(w, t, vi, "MODIFIED", ev->obj, 0);
		else if (now)
			emit(w, t, vi, "ADDED", ev->obj, 0);
		else if (before)
			emit(w, t, vi, "DELETED", ev->prev, ev->rv);
		break;
	case FK_DELETED:
		if (passes(w, ev->key, ev->prev))
			emit(w, t, vi, "DELETED", ev->obj, 0);
		break;
	}
}

long
fk_watch_read(struct fk_watch *w, char *buf, size_t max)
{
	struct fk_state *st = w->st;
	struct fk_history *h = &st->hist;
	long n = 0;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		struct fk_rtype *t;
		unsigned vi = 0;
		long now;

		if (w->len > w->off) {
			size_t k = w->len - w->off < max ? w->len - w->off : max;

			memcpy(buf, w->buf + w->off, k);
			w->off += k;
			n = (long)k;
			break;
		}
		if (w->ended) {
			n = w->cut ? -1 : 0;
			break;
		}
		if (st->stopping) {
			w->ended = w->cut = true;
			continue;
		}
		if (w->epoch != st->watch_epoch) {
			w->ended = true;
			w->cut = st->watch_abort;
			continue;
		}
		now = fk_mono_ms();
		if (now >= w->deadline ||
		    (st->faults.watch_max_events > 0 && w->sent >= st->faults.watch_max_events)) {
			w->ended = true;
			continue;
		}
		t = fk_rtype_find(st, w->group, w->version, w->plural, &vi);
		if (t == NULL) {
			w->ended = true;        /* the CRD went away */
			continue;
		}
		if (w->init_pos < w->ninit) {
			struct fk_snap_item *it = &w->init[w->init_pos++];

			if (passes(w, it->key, it->obj))
				emit(w, t, vi, "ADDED", it->obj, 0);
			json_decref(it->obj);
			it->obj = NULL;
			continue;
		}
		if (w->init_end_bookmark) {
			w->init_end_bookmark = false;
			emit_bookmark(w, t, vi, w->after_rv, true);
			continue;
		}
		if (w->seq < h->first_seq) {
			w->ended = true;        /* fell behind the history: the client re-watches */
			continue;
		}
		if (w->seq < h->end_seq) {
			consider(w, t, vi, &h->ring[w->seq % h->cap]);
			w->seq++;
			continue;
		}
		if (w->bookmarks && now >= w->next_bookmark) {
			w->next_bookmark = now + st->cfg->bookmark_ms;
			emit_bookmark(w, t, vi, st->rv, false);
			continue;
		}
		if (fk_req_peer_closed(w->r)) {
			w->ended = w->cut = true;
			continue;
		}
		{
			long until = w->deadline;
			struct timespec ts;

			if (w->bookmarks && w->next_bookmark < until)
				until = w->next_bookmark;
			if (now + WATCH_POLL_MS < until)
				until = now + WATCH_POLL_MS;
			clock_gettime(CLOCK_REALTIME, &ts);
			long wait = until - now;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&st->changed, &st->lock, &ts);
		}
	}
	pthread_mutex_unlock(&st->lock);
	return n;
}

void
fk_watch_free(struct fk_watch *w)
{
	if (w == NULL)
		return;
	if (w->counted) {
		pthread_mutex_lock(&w->st->lock);
		w->st->watches--;
		pthread_mutex_unlock(&w->st->lock);
	}
	for (size_t i = w->init_pos; i < w->ninit; i++)
		json_decref(w->init[i].obj);
	free(w->init);
	fk_selector_clear(&w->labels);
	fk_selector_clear(&w->fields);
	free(w->buf);
	free(w);
}
