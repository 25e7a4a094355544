/* server.c — the socket API: routes, peer authorization, audit lines, blocking reads.
 *
 * A read takes a reference to the current snapshot and hands its pre-rendered body to the
 * HTTP server as a borrowed response; the reference goes when the body has been sent.
 * A blocking read (?index=N&wait=D) registers a waiter, then suspends; the scheduler's
 * notify or the sweeper's deadline resumes it, and the handler runs again to answer with
 * whatever is current. Registering before checking the version closes the race with a
 * rotation that lands in between.
 */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/cpuidle.h"
#include "common/json.h"
#include "common/log.h"

/* Largest /metrics page rendered. */
#define SERVER_METRICS_MAX (8u << 20)
/* The sweeper looks at deadlines at least this often. */
#define SERVER_SWEEP_MAX_MS 1000

struct broker_waiter {
	struct broker_waiter *prev, *next;
	struct broker *b;
	struct lk_http_req *req;
	size_t entry;               /* for the wake-ups; remapped by a reload */
	char *name;                 /* owned: what it reads, found again when it runs */
	uint64_t index;
	int64_t deadline_mono_ms;
	bool linked;
	int64_t started_ns;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* now_ns's reading in lk_now_mono_ms's unit (the same clock). */
static int64_t
t_ms(int64_t ns)
{
	return ns / 1000000;
}

bool
broker_peer_allowed(const struct broker_secret_spec *spec, const struct lk_peer *peer)
{
	if (!spec->restricted)
		return true;
	if (peer == NULL || !peer->known)
		return false;
	for (size_t i = 0; i < spec->nuids; i++)
		if (spec->uids[i] == peer->uid)
			return true;
	for (size_t i = 0; i < spec->ngids; i++)
		if (spec->gids[i] == peer->gid)
			return true;
	return false;
}

#define audit(peer, secret, key, version, result) \
	broker_audit_read(b->audit, (peer), (secret), (key), (version), (result))

/* ---- waiters ---- */

static void
waiter_unlink_locked(struct broker *b, struct broker_waiter *w)
{
	if (!w->linked)
		return;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		b->waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->linked = false;
	b->nwaiters--;
}

static void
waiter_cleanup(void *state)
{
	struct broker_waiter *w = state;

	pthread_mutex_lock(&w->b->waiters_lock);
	waiter_unlink_locked(w->b, w);
	pthread_mutex_unlock(&w->b->waiters_lock);
	free(w->name);
	free(w);
}

void
broker_server_notify(struct broker *b, size_t entry)
{
	struct broker_waiter *w, *next;

	pthread_mutex_lock(&b->waiters_lock);
	for (w = b->waiters; w != NULL; w = next) {
		next = w->next;
		if (w->entry != entry)
			continue;
		waiter_unlink_locked(b, w);
		lk_http_resume(w->req);
	}
	pthread_mutex_unlock(&b->waiters_lock);
}

void
broker_server_remap(struct broker *b, const size_t *new_of_old)
{
	struct broker_waiter *w, *next;

	pthread_mutex_lock(&b->waiters_lock);
	for (w = b->waiters; w != NULL; w = next) {
		next = w->next;
		w->entry = new_of_old[w->entry];
		if (w->entry != SIZE_MAX)
			continue;
		/* Its secret is gone: woken, it answers 404. */
		waiter_unlink_locked(b, w);
		lk_http_resume(w->req);
	}
	pthread_mutex_unlock(&b->waiters_lock);
}

/* When the credential e serves expires (monotonic ms); 0: never, or nothing served. */
static int64_t
entry_expiry(struct broker_entry *e)
{
	int64_t at = 0;

	pthread_mutex_lock(&e->lock);
	if (e->current != NULL)
		at = e->current->lease.expires_mono_ms;
	pthread_mutex_unlock(&e->lock);
	return at;
}

/* Once everything is loaded, the code that ran only to start (library constructors, the
 * first login's TLS set-up) leaves the resident set (broker/footprint.c). */
static void
drop_start_text(void)
{
	struct broker_footprint_stats fs;
	int rc = broker_footprint_drop_text(&fs);

	if (rc < 0)
		lk_log(LK_DEBUG, "start-up code kept resident", LK_STR("error", strerror(-rc)));
	else
		lk_log(LK_INFO, "start-up code dropped from the resident set",
		       LK_INT("mappings", (int64_t)fs.mappings), LK_INT("kb", fs.dropped_kb));
}

static void *
sweeper_main(void *arg)
{
	struct broker *b = arg;
	int64_t audit_due = 0;
	bool trimmed_at_ready = false;

	pthread_rwlock_rdlock(&b->gen_lock);
	pthread_mutex_lock(&b->waiters_lock);
	while (!b->sweeper_stop) {
		int64_t now = lk_now_mono_ms(), next = now + SERVER_SWEEP_MAX_MS;
		struct broker_waiter *w, *nw;
		struct timespec ts;

		for (w = b->waiters; w != NULL; w = nw) {
			/* A reader is answered at its deadline, or when the credential it waits
			 * on expires (it gets the 503 then, not at the end of its wait). */
			int64_t wake = w->deadline_mono_ms, expires = entry_expiry(&b->entries[w->entry]);

			nw = w->next;
			if (expires > 0 && expires < wake)
				wake = expires;
			if (wake <= now) {
				waiter_unlink_locked(b, w);
				lk_http_resume(w->req);
			} else if (wake < next) {
				next = wake;
			}
		}
		{
			/* Outside the waiters' lock: the audit logs. */
			int64_t audit_next;

			pthread_mutex_unlock(&b->waiters_lock);
			audit_next = broker_audit_flush(b->audit, now, false);
			/* glibc keeps freed memory mapped in each thread's arena: the backend
			 * responses and parsed documents of the first load, the audit's old
			 * tables. Handed back once all is loaded and after each audit interval
			 * (1,000 secrets: RssAnon 5.0 -> 3.2 MiB); a pass over heaps this
			 * size takes microseconds. */
			if ((!trimmed_at_ready && atomic_load(&b->announced_ready)) ||
			    (audit_due != 0 && audit_next != audit_due)) {
				malloc_trim(0);
				if (!trimmed_at_ready && atomic_load(&b->announced_ready))
					drop_start_text();
				trimmed_at_ready = trimmed_at_ready || atomic_load(&b->announced_ready);
			}
			audit_due = audit_next;
			pthread_mutex_lock(&b->waiters_lock);
			if (audit_next < next)
				next = audit_next;
		}
		if (b->sweeper_stop)
			break;
		ts = lk_timespec_in_ms(CLOCK_MONOTONIC, next - now);
		/* Not asleep under the generation lock: a reload may swap meanwhile. */
		pthread_rwlock_unlock(&b->gen_lock);
		pthread_cond_timedwait(&b->sweeper_cond, &b->waiters_lock, &ts);
		pthread_mutex_unlock(&b->waiters_lock);
		pthread_rwlock_rdlock(&b->gen_lock);
		pthread_mutex_lock(&b->waiters_lock);
	}
	pthread_mutex_unlock(&b->waiters_lock);
	pthread_rwlock_unlock(&b->gen_lock);
	return NULL;
}

/* ---- answers ---- */

static unsigned
answer_error(struct lk_http_req *req, unsigned status, const char *error, const char *reason)
{
	lk_http_respond_error(req, status, error, reason);
	return status;
}

/* Writes "\"V\"", the ETag of version v, NUL-terminated (at most LK_U64_DIGITS + 3
 * bytes). */
static void
etag_format(char *out, uint64_t v)
{
	*out++ = '"';
	out = lk_put_u64(out, v);
	*out++ = '"';
	*out = '\0';
}

/* Serves the current snapshot of e (or one key of it) at now (monotonic ms). Returns the
 * status. */
static unsigned
serve(struct broker *b, struct lk_http_req *req, struct broker_entry *e, const char *key,
      int64_t now)
{
	const struct lk_peer *peer = lk_http_peer(req);
	struct broker_snapshot *s = broker_entry_snapshot(e);
	char reason[BROKER_REASON_MAX + 64], etag[32];

	if (s == NULL) {
		bool revoked;

		pthread_mutex_lock(&e->lock);
		revoked = e->revoked;
		snprintf(reason, sizeof(reason), "%s", e->failing ? e->reason :
			 "the secret has not been read from the backend yet");
		pthread_mutex_unlock(&e->lock);
		audit(peer, e->spec->name, key, 0, revoked ? "revoked" : "unavailable");
		return answer_error(req, 503, revoked ? "secret revoked" : "secret not available",
				    reason);
	}
	if (broker_snapshot_expired(s, now)) {
		uint64_t v = s->version;

		broker_snapshot_unref(s);
		pthread_mutex_lock(&e->lock);
		snprintf(reason, sizeof(reason), "the credential expired and no replacement could be "
			 "read%s%s", e->failing ? ": " : "", e->failing ? e->reason : "");
		pthread_mutex_unlock(&e->lock);
		audit(peer, e->spec->name, key, v, "expired");
		return answer_error(req, 503, "secret expired", reason);
	}
	etag_format(etag, s->version);
	if (lk_http_add_header(req, "ETag", etag) < 0 ||
	    lk_http_add_header(req, "Cache-Control", "no-store") < 0) {
		broker_snapshot_unref(s);
		return answer_error(req, 500, "internal error", "too many headers");
	}
	if (broker_etag_matches(lk_http_header(req, "If-None-Match"), s->version)) {
		/* The client has this version: no body, no value on the wire. */
		uint64_t v = s->version;

		broker_snapshot_unref(s);
		audit(peer, e->spec->name, key, v, "not-modified");
		lk_http_respond(req, 304, NULL, NULL, 0);
		return 304;
	}
	if (key != NULL) {
		const struct broker_kv *kv = broker_snapshot_key(s, key);

		if (kv == NULL) {
			uint64_t v = s->version;

			broker_snapshot_unref(s);
			audit(peer, e->spec->name, key, v, "no-such-key");
			return answer_error(req, 404, "no such key", "the secret has no key by that name");
		}
		audit(peer, e->spec->name, key, s->version, "ok");
		lk_http_respond_borrowed(req, 200, "text/plain; charset=utf-8", kv->value,
					 kv->value_len, broker_snapshot_release, s);
		return 200;
	}
	audit(peer, e->spec->name, NULL, s->version, "ok");
	lk_http_respond_borrowed(req, 200, "application/json", s->body, s->body_len,
				 broker_snapshot_release, s);
	return 200;
}

static unsigned
route_list(struct broker *b, struct lk_http_req *req)
{
	const struct lk_peer *peer = lk_http_peer(req);
	json_t *obj = json_object(), *arr = json_array();
	unsigned status = 200;

	if (obj == NULL || arr == NULL || json_object_set(obj, "secrets", arr) < 0) {
		status = answer_error(req, 500, "internal error", "out of memory");
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (broker_peer_allowed(b->entries[i].spec, peer) &&
		    json_array_append_new(arr, json_string(b->entries[i].spec->name)) < 0) {
			status = answer_error(req, 500, "internal error", "out of memory");
			goto out;
		}
	}
	lk_http_add_header(req, "Cache-Control", "no-store");
	lk_http_respond_json(req, 200, obj);
out:
	json_decref(arr);
	json_decref(obj);
	return status;
}

static json_t *
entry_status_json(struct broker *b, struct broker_entry *e, int64_t now, int64_t now_real,
		  bool admin)
{
	struct broker_snapshot *s = broker_entry_snapshot(e);
	enum broker_state st = broker_entry_state(e, now);
	json_t *o = json_object();
	char ts[LK_RFC3339_LEN];

	(void)b;
	if (o == NULL) {
		broker_snapshot_unref(s);
		return NULL;
	}
	json_object_set_new(o, "name", json_string(e->spec->name));
	json_object_set_new(o, "version", json_integer(s != NULL ? (json_int_t)s->version : 0));
	json_object_set_new(o, "state", json_string(broker_state_name(st)));
	json_object_set_new(o, "required", json_boolean(e->spec->required));
	json_object_set_new(o, "source", json_string(e->spec->from_file != NULL ? "file" :
						     "backend"));
	if (s != NULL && s->lease.expires_mono_ms > 0) {
		int64_t left = s->lease.expires_mono_ms - now;

		json_object_set_new(o, "ttl", json_integer(left > 0 ? left / 1000 : 0));
		json_object_set_new(o, "expires_at",
				    json_string(lk_rfc3339_ms(s->lease.expires_real_ms, ts)));
	} else {
		json_object_set_new(o, "ttl", json_null());
		json_object_set_new(o, "expires_at", json_null());
	}
	json_object_set_new(o, "leased", json_boolean(s != NULL && s->lease.leased));
	pthread_mutex_lock(&e->lock);
	if (e->last_renewal_real_ms > 0)
		json_object_set_new(o, "last_renewal",
				    json_string(lk_rfc3339_ms(e->last_renewal_real_ms, ts)));
	else
		json_object_set_new(o, "last_renewal", json_null());
	json_object_set_new(o, "next_action", json_string(
	    e->next_action == BROKER_ACT_RENEW ? "renew" :
	    s == NULL ? "read" : s->lease.leased ? "rotate" : "refresh"));
	json_object_set_new(o, "next_in", json_integer(e->next_mono_ms > now ?
			    (e->next_mono_ms - now) / 1000 : 0));
	json_object_set_new(o, "next_at", json_string(lk_rfc3339_ms(
	    now_real + (e->next_mono_ms > now ? e->next_mono_ms - now : 0), ts)));
	if (e->failing)
		json_object_set_new(o, "reason", lk_json_string_lossy(e->reason));
	if (admin && e->shown_lease_id != NULL)
		json_object_set_new(o, "lease_id", json_string(e->shown_lease_id));
	pthread_mutex_unlock(&e->lock);
	broker_snapshot_unref(s);
	return o;
}

/* A file's render status: its path, what it is made from, its state and, when the last
 * render failed, why (origin:line and key, never a value). */
static json_t *
output_status_json(struct broker *b, struct broker_output *o)
{
	const struct broker_file_spec *fs = o->fs;
	json_t *obj = json_object(), *reads = json_array();
	char ts[LK_RFC3339_LEN];

	if (obj == NULL || reads == NULL) {
		json_decref(obj);
		json_decref(reads);
		return NULL;
	}
	json_object_set_new(obj, "path", json_string(fs->path));
	if (fs->secret != SIZE_MAX)
		json_object_set_new(obj, "secret", json_string(b->entries[fs->secret].spec->name));
	if (fs->origin != NULL)
		json_object_set_new(obj, "template", json_string(fs->origin));
	for (size_t i = 0; i < b->n; i++)
		if (broker_output_reads(o, i))
			json_array_append_new(reads, json_string(b->entries[i].spec->name));
	json_object_set_new(obj, "reads", reads);
	pthread_mutex_lock(&o->lock);
	json_object_set_new(obj, "state", json_string(broker_output_state_name(o->state)));
	json_object_set_new(obj, "written_at", o->written_real_ms > 0 ?
			    json_string(lk_rfc3339_ms(o->written_real_ms, ts)) : json_null());
	if (o->state == BROKER_OUTPUT_FAILED)
		json_object_set_new(obj, "error", lk_json_string_lossy(o->reason));
	pthread_mutex_unlock(&o->lock);
	return obj;
}

/* True when peer may read every secret o is made from. */
static bool
peer_may_see_output(struct broker *b, const struct broker_output *o, const struct lk_peer *peer)
{
	for (size_t i = 0; i < b->n; i++)
		if (broker_output_reads(o, i) && !broker_peer_allowed(b->entries[i].spec, peer))
			return false;
	return true;
}

static unsigned
route_ready(struct broker *b, struct lk_http_req *req)
{
	const struct lk_peer *peer = lk_http_peer(req);
	char reason[BROKER_REASON_MAX + 64];
	bool ready = broker_ready_for(b, peer, reason, sizeof(reason)), up;
	bool admin = broker_peer_admin(b, peer);
	int64_t now = lk_now_mono_ms(), now_real = lk_now_real_ms();
	json_t *obj = json_object(), *arr = json_array(), *backend = json_object();
	json_t *files = json_array();
	unsigned status = ready ? 200 : 503;

	if (obj == NULL || arr == NULL || backend == NULL || files == NULL) {
		status = answer_error(req, 500, "internal error", "out of memory");
		goto out;
	}
	if (!ready) {
		json_object_set_new(obj, "error", json_string("not ready"));
		json_object_set_new(obj, "reason", lk_json_string_lossy(reason));
	}
	json_object_set_new(obj, "ready", json_boolean(ready));
	pthread_mutex_lock(&b->lock);
	up = b->backend_ok;
	json_object_set_new(backend, "ok", json_boolean(up));
	if (!up && (admin || b->backend_reason_entry == SIZE_MAX ||
		    broker_peer_allowed(b->entries[b->backend_reason_entry].spec, peer)))
		json_object_set_new(backend, "reason", lk_json_string_lossy(b->backend_reason));
	else if (!up)
		json_object_set_new(backend, "reason", json_string(
			"a backend call for a secret this peer may not read failed"));
	json_object_set_new(backend, "logged_in", json_boolean(b->logged_in));
	if (b->login_reason[0] != '\0')
		json_object_set_new(backend, "login_error", lk_json_string_lossy(b->login_reason));
	json_object_set_new(backend, "configured", json_boolean(b->cfg->backend));
	pthread_mutex_unlock(&b->lock);
	json_object_set(obj, "backend", backend);
	for (size_t i = 0; i < b->n; i++) {
		json_t *o;

		if (!admin && !broker_peer_allowed(b->entries[i].spec, peer))
			continue;
		o = entry_status_json(b, &b->entries[i], now, now_real, admin);
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	json_object_set(obj, "secrets", arr);
	for (size_t i = 0; i < b->noutputs; i++) {
		json_t *o;

		if (!admin && !peer_may_see_output(b, &b->outputs[i], peer))
			continue;
		if ((o = output_status_json(b, &b->outputs[i])) != NULL)
			json_array_append_new(files, o);
	}
	json_object_set(obj, "files", files);
	lk_http_add_header(req, "Cache-Control", "no-store");
	lk_http_respond_json(req, status, obj);
out:
	json_decref(files);
	json_decref(backend);
	json_decref(arr);
	json_decref(obj);
	return status;
}

struct peer_view {
	struct broker *b;
	const struct lk_peer *peer;
};

static bool
peer_may_see(void *arg, const char *name)
{
	struct peer_view *v = arg;
	struct broker_entry *e = broker_find(v->b, name);

	return e != NULL && broker_peer_allowed(e->spec, v->peer);
}

/* The metrics page; peer NULL (the metrics listener) or an admin sees all of it, another
 * peer only the series of the secrets it may read. */
static unsigned
route_metrics(struct broker *b, struct lk_http_req *req, const struct lk_peer *peer)
{
	struct lk_buf out, shown;
	struct peer_view view = { b, peer };
	unsigned status = 200;

	lk_buf_init(&out, SERVER_METRICS_MAX, false);
	lk_buf_init(&shown, SERVER_METRICS_MAX, false);
	if (broker_metrics_render(b->metrics, &out) < 0) {
		status = answer_error(req, 500, "internal error", "metrics page too large");
	} else if (peer == NULL || broker_peer_admin(b, peer)) {
		lk_http_respond(req, 200, LK_METRICS_CONTENT_TYPE, out.data, out.len);
	} else if (broker_metrics_filter(out.data, out.len, peer_may_see, &view, &shown) < 0) {
		status = answer_error(req, 500, "internal error", "metrics page too large");
	} else {
		lk_http_respond(req, 200, LK_METRICS_CONTENT_TYPE, shown.data, shown.len);
	}
	lk_buf_free(&shown);
	lk_buf_free(&out);
	return status;
}

static unsigned
route_secret(struct broker *b, struct lk_http_req *req, const struct broker_route_req *rr,
	     int64_t now, bool *suspended)
{
	const struct lk_peer *peer = lk_http_peer(req);
	const char *key = rr->key;
	struct broker_entry *e;
	struct broker_waiter *w;
	struct broker_snapshot *s;
	uint64_t index;
	int64_t wait_ms;
	int r;

	e = rr->name_ok ? broker_find(b, rr->name) : NULL;
	if (e == NULL) {
		/* Reads of names that do not exist are audited too: they are probes. */
		audit(peer, rr->name, key, 0, "no-such-secret");
		return answer_error(req, 404, "not found", "no such secret");
	}
	if (key != NULL && !rr->key_ok)
		return answer_error(req, 404, "not found", "empty key name");
	if (!broker_peer_allowed(e->spec, peer)) {
		audit(peer, e->spec->name, key, 0, "forbidden");
		return answer_error(req, 403, "forbidden",
				    "this peer's uid and gid are not allowed to read the secret");
	}
	r = key == NULL ? broker_parse_blocking(lk_http_query(req, "index"),
						lk_http_query(req, "wait"), &index, &wait_ms) : 1;
	if (r < 0)
		return answer_error(req, 400, "bad request",
				    "index must be a non-negative integer and wait a duration such as 30s");
	if (r == 1)
		return serve(b, req, e, key, now);

	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->name = strdup(e->spec->name)) == NULL) {
		free(w);
		return answer_error(req, 503, "unavailable", "out of memory");
	}
	w->b = b;
	w->req = req;
	w->entry = e->index;
	w->index = index;
	w->deadline_mono_ms = lk_now_mono_ms() + wait_ms;
	w->started_ns = now_ns();
	pthread_mutex_lock(&b->waiters_lock);
	if (b->nwaiters >= BROKER_WAITERS_MAX) {
		pthread_mutex_unlock(&b->waiters_lock);
		free(w->name);
		free(w);
		return answer_error(req, 503, "unavailable", "too many blocking reads");
	}
	w->next = b->waiters;
	if (b->waiters != NULL)
		b->waiters->prev = w;
	b->waiters = w;
	w->linked = true;
	b->nwaiters++;
	lk_http_set_state(req, w, waiter_cleanup);
	/* Registered first, checked second: a rotation in between finds the waiter. */
	s = broker_entry_snapshot(e);
	if (wait_ms == 0 || (s != NULL && s->version > index)) {
		waiter_unlink_locked(b, w);
		pthread_mutex_unlock(&b->waiters_lock);
		broker_snapshot_unref(s);
		return serve(b, req, e, NULL, lk_now_mono_ms());
	}
	{
		int64_t soon = lk_now_mono_ms() + SERVER_SWEEP_MAX_MS;

		if (w->deadline_mono_ms < soon ||
		    (s != NULL && s->lease.expires_mono_ms > 0 && s->lease.expires_mono_ms < soon))
			pthread_cond_signal(&b->sweeper_cond);
	}
	broker_snapshot_unref(s);
	lk_http_suspend(req);
	pthread_mutex_unlock(&b->waiters_lock);
	*suspended = true;
	return 0;
}

static void handler_locked(struct broker *b, struct lk_http_req *req);

static void
handler(void *ctx, struct lk_http_req *req)
{
	struct broker *b = ctx;

	pthread_rwlock_rdlock(&b->gen_lock);
	handler_locked(b, req);
	pthread_rwlock_unlock(&b->gen_lock);
}

static void
handler_locked(struct broker *b, struct lk_http_req *req)
{
	struct broker_waiter *w = lk_http_state(req);
	const char *method = lk_http_method(req), *path = lk_http_path(req);
	struct broker_route_req rr;
	enum broker_route route;
	int64_t t0 = now_ns();
	bool suspended = false;
	unsigned status;

	if (w != NULL) {
		/* Resumed: by a rotation, the deadline, or the server stopping. */
		pthread_mutex_lock(&b->waiters_lock);
		waiter_unlink_locked(b, w);
		pthread_mutex_unlock(&b->waiters_lock);
		t0 = w->started_ns;
		/* By name, and allowed again: a reload between the wake-up and now may have
		 * moved, removed or re-permitted the secret. */
		{
			struct broker_entry *e = broker_find(b, w->name);
			const struct lk_peer *peer = lk_http_peer(req);

			if (e == NULL) {
				status = answer_error(req, 404, "not found", "no such secret (removed "
						      "by a configuration reload)");
			} else if (!broker_peer_allowed(e->spec, peer)) {
				audit(peer, e->spec->name, NULL, 0, "forbidden");
				status = answer_error(req, 403, "forbidden", "this peer's uid and gid "
						      "are not allowed to read the secret");
			} else {
				status = serve(b, req, e, NULL, t_ms(now_ns()));
			}
		}
		broker_metrics_request(b->metrics, BROKER_ROUTE_SECRET, status, now_ns() - t0);
		return;
	}
	route = broker_route_parse(path, &rr);
	if (route == BROKER_ROUTE_OTHER) {
		status = answer_error(req, 404, "not found", "no such route");
	} else if (strcmp(method, "GET") != 0) {
		lk_http_add_header(req, "Allow", "GET");
		status = answer_error(req, 405, "method not allowed", "only GET is served");
	} else {
		switch (route) {
		case BROKER_ROUTE_LIST:
			status = route_list(b, req);
			break;
		case BROKER_ROUTE_SECRET:
		case BROKER_ROUTE_KEY:
			status = route_secret(b, req, &rr, t_ms(t0), &suspended);
			break;
		case BROKER_ROUTE_HEALTH:
			lk_http_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
			status = 200;
			break;
		case BROKER_ROUTE_READY:
			status = route_ready(b, req);
			break;
		case BROKER_ROUTE_METRICS:
			status = route_metrics(b, req, lk_http_peer(req));
			break;
		default:
			status = answer_error(req, 404, "not found", "no such route");
			break;
		}
	}
	if (!suspended)
		broker_metrics_request(b->metrics, route, status, now_ns() - t0);
}

/* The optional TCP listener serves only metrics and health: it has no peer credentials. */
static void
metrics_handler(void *ctx, struct lk_http_req *req)
{
	struct broker *b = ctx;
	const char *path = lk_http_path(req);

	if (strcmp(lk_http_method(req), "GET") != 0)
		lk_http_respond_error(req, 405, "method not allowed", "only GET is served");
	else if (strcmp(path, "/metrics") == 0) {
		pthread_rwlock_rdlock(&b->gen_lock);
		route_metrics(b, req, NULL);
		pthread_rwlock_unlock(&b->gen_lock);
	} else if (strcmp(path, "/v1/health") == 0)
		lk_http_respond(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
	else
		lk_http_respond_error(req, 404, "not found", "this listener serves /metrics only");
}

/* listen.threads and listen.poll_us as the serving threads run them: a number as it is;
 * "auto" decided from the CPUs this process may run on and from what an idle CPU does
 * (common/cpuidle.h). *why (static) says what decided the poll. */
static unsigned
broker_threads_decide(unsigned configured)
{
	int n = 0;

	if (configured != BROKER_THREADS_AUTO)
		return configured;
	/* A mask as large as the kernel's possible CPUs: past CPU_SETSIZE (1024), a cpu_set_t
	 * is too small and sched_getaffinity fails with EINVAL. */
	for (int ncpus = CPU_SETSIZE; ncpus <= (1 << 20); ncpus *= 2) {
		cpu_set_t *set = CPU_ALLOC(ncpus);
		size_t size = CPU_ALLOC_SIZE(ncpus);
		int rc, e;

		if (set == NULL)
			break;
		rc = sched_getaffinity(0, size, set);
		e = errno;
		if (rc == 0)
			n = CPU_COUNT_S(size, set);
		CPU_FREE(set);
		if (rc == 0 || e != EINVAL)
			break;
	}
	return n >= 1 && n < BROKER_THREADS_DEFAULT ? (unsigned)n : BROKER_THREADS_DEFAULT;
}

static unsigned
broker_poll_us_decide(unsigned configured, const char **why)
{
	struct lk_cpuidle idle;

	if (configured != BROKER_POLL_US_AUTO) {
		*why = "listen.poll_us";
		return configured;
	}
	lk_cpuidle_probe("", &idle);
	return lk_cpuidle_poll_pays(&idle, why) ? BROKER_POLL_US_DEFAULT : 0;
}

int
broker_server_start(struct broker *b, struct lk_error *err)
{
	struct lk_httpd_config hc;
	uid_t *reserved;
	int rc;

	if ((rc = lk_cond_init_monotonic(&b->sweeper_cond)) != 0)
		return lk_error_set(err, -rc, "condition variable: %s", strerror(rc));
	rc = pthread_create(&b->sweeper, NULL, sweeper_main, b);
	if (rc != 0)
		return lk_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	b->sweeper_running = true;

	memset(&hc, 0, sizeof(hc));
	hc.unix_path = b->cfg->socket_path;
	hc.unix_mode = b->cfg->socket_mode;
	hc.unix_owner = b->cfg->socket_owner;
	hc.unix_group = b->cfg->socket_group;
	b->threads = broker_threads_decide(b->cfg->threads);
	hc.threads = b->threads;
	b->poll_us = broker_poll_us_decide(b->cfg->poll_us, &b->poll_why);
	hc.poll_us = b->poll_us;
	/* Requests here are a line and a few headers. The library zeroes a connection's whole
	 * memory pool (about twice max_header) before every request, so a small limit is
	 * work saved on every read: 64 KiB to 28 KiB per request measured 15.5-16.8 against
	 * 16.1-21.8 us of server CPU per request (docs/benchmarks.md). */
	hc.max_body = 4096;
	hc.max_header = 4096;
	/* One uid cannot hold every connection, a client cannot dribble its request or sit
	 * idle on a connection for ever, and the broker's own uid (the readiness probe) and
	 * the admin uids always find a slot. */
	hc.max_connections = b->cfg->max_connections;
	hc.max_per_uid = b->cfg->max_connections_per_uid;
	hc.header_timeout_ms = (unsigned)b->cfg->header_timeout_ms;
	reserved = calloc(b->cfg->nadmin_uids + 1, sizeof(*reserved));
	if (reserved == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	reserved[0] = geteuid();
	if (b->cfg->nadmin_uids > 0)
		memcpy(reserved + 1, b->cfg->admin_uids, b->cfg->nadmin_uids * sizeof(*reserved));
	hc.reserved_uids = reserved;
	hc.nreserved_uids = b->cfg->nadmin_uids + 1;
	hc.handler = handler;
	hc.ctx = b;
	rc = lk_httpd_start(&hc, &b->httpd, err);
	free(reserved);
	if (rc < 0)
		return rc;
	if (b->cfg->metrics_addr != NULL) {
		memset(&hc, 0, sizeof(hc));
		hc.tcp_addr = b->cfg->metrics_addr;
		hc.threads = 1;
		hc.max_body = 4096;
		hc.max_connections = 64;
		/* A scraper sends its request at once: a peer that dribbles one cannot hold the
		 * 64 connections and keep the metrics from being read. */
		hc.header_timeout_ms = BROKER_HEADER_TIMEOUT_DEFAULT_MS;
		hc.handler = metrics_handler;
		hc.ctx = b;
		if ((rc = lk_httpd_start(&hc, &b->metrics_httpd, err)) < 0)
			return rc;
	}
	return 0;
}

void
broker_server_stop(struct broker *b)
{
	if (b->httpd != NULL)
		lk_httpd_quiesce(b->httpd);
	if (b->metrics_httpd != NULL)
		lk_httpd_quiesce(b->metrics_httpd);
	/* The metrics listener first: its answers read the socket server's figures
	 * (lk_httpd_stats), which must not be freed under them. */
	lk_httpd_stop(b->metrics_httpd);
	b->metrics_httpd = NULL;
	lk_httpd_stop(b->httpd);
	b->httpd = NULL;
	if (b->sweeper_running) {
		pthread_mutex_lock(&b->waiters_lock);
		b->sweeper_stop = true;
		pthread_cond_signal(&b->sweeper_cond);
		pthread_mutex_unlock(&b->waiters_lock);
		pthread_join(b->sweeper, NULL);
		b->sweeper_running = false;
		pthread_cond_destroy(&b->sweeper_cond);
	}
	/* The repeats counted since the last summary. */
	if (b->audit != NULL)
		broker_audit_flush(b->audit, lk_now_mono_ms(), true);
}
