/* metrics.c — the broker's Prometheus metrics, all named latchkey_broker_*.
 *
 * Series used on hot paths (requests by route and code, per-secret events) are looked up
 * once and kept; gauges that depend on time (seconds until expiry, secrets by state,
 * readiness) are refreshed when the registry is rendered. Labels carry secret names,
 * routes and codes, never values.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"

/* The status codes the server answers with; any other is counted as "other". */
static const unsigned codes[] = { 200, 304, 400, 403, 404, 405, 413, 431, 500, 503 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static const char *const route_names[BROKER_ROUTE_COUNT] = {
	"list", "secret", "key", "health", "ready", "metrics", "other",
};

static const char *const event_names[BROKER_EV_COUNT] = {
	"renewals_total", "renewal_failures_total", "rotations_total",
	"rotation_failures_total", "revocations_total", "revocation_failures_total",
	"refreshes_total", "refresh_failures_total",
};

static const char *const event_help[BROKER_EV_COUNT] = {
	"Lease renewals that succeeded, per secret.",
	"Lease renewals that failed, per secret.",
	"Credentials replaced by a new one before expiry, per secret.",
	"Reads of a replacement credential that failed, per secret.",
	"Replaced or shutdown leases revoked, per secret.",
	"Lease revocations that failed, per secret.",
	"Re-reads of static (KV) secrets, per secret.",
	"Re-reads of static (KV) secrets that failed, per secret.",
};

/* Backend request latency buckets, seconds. */
static const double backend_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

struct broker_metrics {
	struct broker *b;
	struct lk_metrics *reg;
	struct lk_metric *request_family, *latency_family, *expiry_family;
	/* Created on first use (so unused pairs stay out of the output), then kept. */
	_Atomic(struct lk_series *) requests[BROKER_ROUTE_COUNT][NCODES + 1];
	_Atomic(struct lk_series *) latency[BROKER_ROUTE_COUNT];
	/* Per-secret series are created on first use: a thousand KV secrets that are never
	 * renewed should not carry a thousand idle renewal counters. */
	struct lk_metric *event_family[BROKER_EV_COUNT], *version_family;
	_Atomic(struct lk_series *) *events; /* n * BROKER_EV_COUNT */
	struct lk_series **expiry;          /* n; under render_lock */
	struct lk_series **version;         /* n; under render_lock */
	struct lk_series *states[BROKER_STATE_COUNT];
	struct lk_series *logins, *login_failures, *token_renewals, *token_renewal_failures;
	struct lk_series *token_lost, *logged_in;
	struct lk_series *locked_bytes, *unlocked_bytes, *memlock_limit;
	struct lk_series *ready, *backend_up;
	struct lk_series *connections, *refused_per_uid, *refused_full, *header_timeouts;
	struct lk_series *poll_hits, *poll_seconds;
	struct lk_series *reloads_ok, *reloads_error;
	struct lk_metric *backend_latency;
	struct lk_series *exec_up, *exec_restarts; /* exec mode only; NULL otherwise */
	pthread_mutex_t render_lock;        /* one render at a time: it creates expiry series */
};

/* VmLck of /proc/self/status, in bytes; 0 when it cannot be read. */
static long long
vm_locked_bytes(void)
{
	char line[256];
	long long kb = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmLck: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

struct broker_metrics *
broker_metrics_new(struct broker *b)
{
	static const char *const route_code[] = { "route", "code", NULL };
	static const char *const route[] = { "route", NULL };
	static const char *const secret[] = { "secret", NULL };
	static const char *const state[] = { "state", NULL };
	static const char *const op[] = { "op", NULL };
	struct broker_metrics *m;
	struct lk_metric *req, *lat, *ev[BROKER_EV_COUNT], *exp, *ver, *st, *lg, *lgf, *tr, *trf;
	struct lk_metric *rd, *up, *conn, *refused, *hto;
	static const char *const reason[] = { "reason", NULL };
	static const char *const result[] = { "result", NULL };
	char name[96];

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->b = b;
	pthread_mutex_init(&m->render_lock, NULL);
	m->reg = lk_metrics_new();
	if (m->reg != NULL)
		lk_metrics_set_series_max(m->reg, b->cfg->metrics_series_max);
	m->events = calloc(b->n * BROKER_EV_COUNT + 1, sizeof(*m->events));
	m->expiry = calloc(b->n + 1, sizeof(*m->expiry));
	m->version = calloc(b->n + 1, sizeof(*m->version));
	if (m->reg == NULL || m->events == NULL || m->expiry == NULL || m->version == NULL)
		goto fail;
	req = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_requests_total",
			     "Socket API requests by route and status code.", route_code, NULL, 0);
	lat = lk_metrics_add(m->reg, LK_HISTOGRAM, "latchkey_broker_request_duration_seconds",
			     "Time to answer a socket API request.", route, NULL, 0);
	for (size_t i = 0; i < BROKER_EV_COUNT; i++) {
		strcpy(name, "latchkey_broker_");
		strcat(name, event_names[i]);
		ev[i] = lk_metrics_add(m->reg, LK_COUNTER, name, event_help[i], secret, NULL, 0);
		if (ev[i] == NULL)
			goto fail;
	}
	exp = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_secret_expiry_seconds",
			     "Seconds until the served credential expires (absent: never).",
			     secret, NULL, 0);
	ver = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_secret_version",
			     "Version of the served snapshot (bumps when the content changes).",
			     secret, NULL, 0);
	st = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_secrets",
			    "Secrets by state: pending, valid, stale, expired, failed.", state, NULL, 0);
	lg = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_logins_total",
			    "Logins to the backend that succeeded.", NULL, NULL, 0);
	lgf = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_login_failures_total",
			     "Logins to the backend that failed.", NULL, NULL, 0);
	tr = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_token_renewals_total",
			    "Token renewals that succeeded.", NULL, NULL, 0);
	trf = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_token_renewal_failures_total",
			     "Token renewals that failed.", NULL, NULL, 0);
	rd = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_ready",
			    "1 when every required secret is loaded and unexpired.", NULL, NULL, 0);
	up = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_backend_up",
			    "1 while the backend answers: 0 after a transport error, timeout, 429 or 5xx.", NULL, NULL, 0);
	conn = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_connections",
			      "Open socket connections.", NULL, NULL, 0);
	refused = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_connections_refused_total",
				 "Socket connections refused: per_uid (the uid held its cap), "
				 "full (no slot left for it).", reason, NULL, 0);
	hto = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_header_timeouts_total",
			     "Socket connections closed because a request's headers did not "
			     "arrive within listen.header_timeout.", NULL, NULL, 0);
	if (conn == NULL || refused == NULL || hto == NULL)
		goto fail;
	{
		struct lk_metric *ph, *ps;

		ph = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_poll_hits_total",
				    "Polls before sleeping (listen.poll_us) that ended with something "
				    "to serve: a request, a new connection or a close.", NULL, NULL, 0);
		ps = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_poll_seconds_total",
				    "Time the serving threads spent polling before they slept "
				    "(listen.poll_us); they run meanwhile.", NULL, NULL, 0);
		if (ph == NULL || ps == NULL)
			goto fail;
		m->poll_hits = lk_metric_series(ph, NULL);
		m->poll_seconds = lk_metric_series(ps, NULL);
	}
	{
		const char *ok[1] = { "ok" }, *error[1] = { "error" };
		struct lk_metric *rl;

		rl = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_reloads_total",
				    "Configuration reloads on SIGHUP: ok (applied), error (refused: "
				    "the running configuration kept serving).", result, NULL, 0);
		if (rl == NULL)
			goto fail;
		m->reloads_ok = lk_metric_series(rl, ok);
		m->reloads_error = lk_metric_series(rl, error);
		if (m->reloads_ok == NULL || m->reloads_error == NULL)
			goto fail;
	}
	{
		struct lk_metric *tl, *li;

		tl = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_token_lost_total",
				    "Backend tokens found revoked or expired: the dynamic credentials "
				    "read with them were withdrawn.", NULL, NULL, 0);
		li = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_logged_in",
				    "1 while the broker holds a backend token it believes valid.",
				    NULL, NULL, 0);
		if (tl == NULL || li == NULL)
			goto fail;
		m->token_lost = lk_metric_series(tl, NULL);
		m->logged_in = lk_metric_series(li, NULL);
	}
	{
		struct lk_metric *lb, *ub, *ml;

		lb = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_memory_locked_bytes",
				    "Memory the process holds locked (VmLck).", NULL, NULL, 0);
		ub = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_secret_memory_unlocked_bytes",
				    "Secret memory held unlocked because the memory lock limit was "
				    "reached (it may be swapped).", NULL, NULL, 0);
		ml = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_memlock_limit_bytes",
				    "RLIMIT_MEMLOCK as it applies to the broker (+Inf: no limit, or "
				    "CAP_IPC_LOCK).", NULL, NULL, 0);
		if (lb == NULL || ub == NULL || ml == NULL)
			goto fail;
		m->locked_bytes = lk_metric_series(lb, NULL);
		m->unlocked_bytes = lk_metric_series(ub, NULL);
		m->memlock_limit = lk_metric_series(ml, NULL);
	}
	{
		const char *per_uid[1] = { "per_uid" }, *full[1] = { "full" };

		m->connections = lk_metric_series(conn, NULL);
		m->refused_per_uid = lk_metric_series(refused, per_uid);
		m->refused_full = lk_metric_series(refused, full);
		m->header_timeouts = lk_metric_series(hto, NULL);
	}
	m->backend_latency = lk_metrics_add(m->reg, LK_HISTOGRAM,
					    "latchkey_broker_backend_request_duration_seconds",
					    "Backend calls by operation.", op, backend_buckets,
					    sizeof(backend_buckets) / sizeof(backend_buckets[0]));
	if (req == NULL || lat == NULL || exp == NULL || ver == NULL || st == NULL || lg == NULL ||
	    lgf == NULL || tr == NULL || trf == NULL || rd == NULL || up == NULL ||
	    m->backend_latency == NULL)
		goto fail;
	if (b->cfg->exec != NULL) {
		struct lk_metric *xu, *xr;

		xu = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_broker_exec_child_up",
				    "1 while the command of exec mode runs.", NULL, NULL, 0);
		xr = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_broker_exec_restarts_total",
				    "Restarts of the command of exec mode because a secret it uses "
				    "changed.", NULL, NULL, 0);
		if (xu == NULL || xr == NULL ||
		    (m->exec_up = lk_metric_series(xu, NULL)) == NULL ||
		    (m->exec_restarts = lk_metric_series(xr, NULL)) == NULL)
			goto fail;
	}
	m->request_family = req;
	m->latency_family = lat;
	m->expiry_family = exp;
	for (size_t e = 0; e < BROKER_EV_COUNT; e++)
		m->event_family[e] = ev[e];
	m->version_family = ver;
	for (size_t i = 0; i < b->n * BROKER_EV_COUNT; i++)
		atomic_init(&m->events[i], NULL);
	for (size_t s = 0; s < BROKER_STATE_COUNT; s++) {
		const char *vals[1] = { broker_state_name((enum broker_state)s) };

		if ((m->states[s] = lk_metric_series(st, vals)) == NULL)
			goto fail;
	}
	m->logins = lk_metric_series(lg, NULL);
	m->login_failures = lk_metric_series(lgf, NULL);
	m->token_renewals = lk_metric_series(tr, NULL);
	m->token_renewal_failures = lk_metric_series(trf, NULL);
	m->ready = lk_metric_series(rd, NULL);
	m->backend_up = lk_metric_series(up, NULL);
	if (m->logins == NULL || m->login_failures == NULL || m->token_renewals == NULL ||
	    m->token_renewal_failures == NULL || m->ready == NULL || m->backend_up == NULL)
		goto fail;
	return m;
fail:
	broker_metrics_free(m);
	return NULL;
}

void
broker_metrics_exec(struct broker_metrics *m, bool up, bool restarted)
{
	if (m == NULL || m->exec_up == NULL)
		return;
	lk_series_set(m->exec_up, up ? 1 : 0);
	if (restarted)
		lk_series_add(m->exec_restarts, 1);
}

void
broker_metrics_free(struct broker_metrics *m)
{
	if (m == NULL)
		return;
	lk_metrics_free(m->reg);
	pthread_mutex_destroy(&m->render_lock);
	free(m->events);
	free(m->expiry);
	free(m->version);
	free(m);
}

void
broker_metrics_request(struct broker_metrics *m, enum broker_route route, unsigned code,
		       int64_t elapsed_ns)
{
	struct lk_series *req, *lat;
	size_t c;

	if (m == NULL || route >= BROKER_ROUTE_COUNT)
		return;
	for (c = 0; c < NCODES && codes[c] != code; c++)
		;
	req = atomic_load_explicit(&m->requests[route][c], memory_order_acquire);
	if (req == NULL) {
		char text[16];
		const char *vals[2] = { route_names[route], text };

		if (c < NCODES)
			snprintf(text, sizeof(text), "%u", codes[c]);
		else
			strcpy(text, "other");
		req = lk_metric_series(m->request_family, vals);
		if (req == NULL)
			return;
		atomic_store_explicit(&m->requests[route][c], req, memory_order_release);
	}
	lat = atomic_load_explicit(&m->latency[route], memory_order_acquire);
	if (lat == NULL) {
		const char *vals[1] = { route_names[route] };

		lat = lk_metric_series(m->latency_family, vals);
		if (lat == NULL)
			return;
		atomic_store_explicit(&m->latency[route], lat, memory_order_release);
	}
	lk_series_add(req, 1);
	lk_series_observe(lat, (double)elapsed_ns / 1e9);
}

void
broker_metrics_event(struct broker_metrics *m, size_t entry, enum broker_event ev)
{
	struct lk_series *s;

	if (m == NULL || entry >= m->b->n || (unsigned)ev >= BROKER_EV_COUNT)
		return;
	s = atomic_load_explicit(&m->events[entry * BROKER_EV_COUNT + ev], memory_order_acquire);
	if (s == NULL) {
		const char *vals[1] = { m->b->entries[entry].spec->name };

		s = lk_metric_series(m->event_family[ev], vals);
		if (s == NULL)
			return;
		atomic_store_explicit(&m->events[entry * BROKER_EV_COUNT + ev], s,
				      memory_order_release);
	}
	lk_series_add(s, 1);
}

void
broker_metrics_login(struct broker_metrics *m, bool ok)
{
	if (m != NULL)
		lk_series_add(ok ? m->logins : m->login_failures, 1);
}

void
broker_metrics_token_renewal(struct broker_metrics *m, bool ok)
{
	if (m != NULL)
		lk_series_add(ok ? m->token_renewals : m->token_renewal_failures, 1);
}

void
broker_metrics_token_lost(struct broker_metrics *m)
{
	if (m != NULL)
		lk_series_add(m->token_lost, 1);
}

void
broker_metrics_backend(struct broker_metrics *m, const char *op, int64_t elapsed_ms)
{
	const char *vals[1] = { op };

	if (m != NULL)
		lk_metric_observe(m->backend_latency, vals, (double)elapsed_ms / 1e3);
}

void
broker_metrics_reload(struct broker_metrics *m, bool ok)
{
	if (m != NULL)
		lk_series_add(ok ? m->reloads_ok : m->reloads_error, 1);
}

int
broker_metrics_remap(struct broker_metrics *m, const size_t *old_of_new, size_t new_n,
		     const char *const *old_names, size_t old_n)
{
	_Atomic(struct lk_series *) *events;
	struct lk_series **expiry, **version;
	bool *kept;

	events = calloc(new_n * BROKER_EV_COUNT + 1, sizeof(*events));
	expiry = calloc(new_n + 1, sizeof(*expiry));
	version = calloc(new_n + 1, sizeof(*version));
	kept = calloc(old_n + 1, sizeof(*kept));
	if (events == NULL || expiry == NULL || version == NULL || kept == NULL) {
		free(events);
		free(expiry);
		free(version);
		free(kept);
		return -ENOMEM;
	}
	for (size_t i = 0; i < new_n; i++) {
		size_t o = old_of_new[i];

		for (size_t ev = 0; ev < BROKER_EV_COUNT; ev++)
			atomic_init(&events[i * BROKER_EV_COUNT + ev], o == SIZE_MAX ? NULL :
				    atomic_load(&m->events[o * BROKER_EV_COUNT + ev]));
		if (o == SIZE_MAX)
			continue;
		expiry[i] = m->expiry[o];
		version[i] = m->version[o];
		kept[o] = true;
	}
	/* A secret no longer served leaves no series behind (its counters would otherwise
	 * linger under a name the broker no longer knows). */
	for (size_t o = 0; o < old_n; o++) {
		const char *vals[1] = { old_names[o] };

		if (kept[o])
			continue;
		for (size_t ev = 0; ev < BROKER_EV_COUNT; ev++)
			lk_metric_remove(m->event_family[ev], vals);
		lk_metric_remove(m->expiry_family, vals);
		lk_metric_remove(m->version_family, vals);
	}
	free(kept);
	free(m->events);
	free(m->expiry);
	free(m->version);
	m->events = events;
	m->expiry = expiry;
	m->version = version;
	return 0;
}

int
broker_metrics_render(struct broker_metrics *m, struct lk_buf *out)
{
	struct broker *b = m->b;
	int64_t now = lk_now_mono_ms();
	double counts[BROKER_STATE_COUNT] = { 0 };
	char reason[BROKER_REASON_MAX];
	bool up;
	int rc;

	pthread_mutex_lock(&m->render_lock);
	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];
		struct broker_snapshot *s = broker_entry_snapshot(e);
		enum broker_state st = broker_entry_state(e, now);

		counts[st]++;
		if (s != NULL) {
			const char *names[1] = { e->spec->name };

			if (m->version[i] == NULL)
				m->version[i] = lk_metric_series(m->version_family, names);
			if (m->version[i] != NULL)
				lk_series_set(m->version[i], (double)s->version);
			if (s->lease.expires_mono_ms > 0) {
				const char *vals[1] = { e->spec->name };
				double left = (double)(s->lease.expires_mono_ms - now) / 1e3;

				if (m->expiry[i] == NULL)
					m->expiry[i] = lk_metric_series(m->expiry_family, vals);
				if (m->expiry[i] != NULL)
					lk_series_set(m->expiry[i], left > 0 ? left : 0);
			}
		}
		broker_snapshot_unref(s);
	}
	for (size_t s = 0; s < BROKER_STATE_COUNT; s++)
		lk_series_set(m->states[s], counts[s]);
	lk_series_set(m->ready, broker_ready(b, reason, sizeof(reason)) ? 1 : 0);
	pthread_mutex_lock(&b->lock);
	up = b->backend_ok;
	lk_series_set(m->logged_in, b->logged_in ? 1 : 0);
	pthread_mutex_unlock(&b->lock);
	lk_series_set(m->backend_up, up ? 1 : 0);
	{
		struct lk_httpd_stats hs;

		lk_httpd_stats(b->httpd, &hs);
		lk_series_set(m->connections, hs.connections);
		lk_series_set(m->refused_per_uid, (double)hs.refused_per_uid);
		lk_series_set(m->refused_full, (double)hs.refused_full);
		lk_series_set(m->header_timeouts, (double)hs.header_timeouts);
		lk_series_set(m->poll_hits, (double)hs.poll_hits);
		lk_series_set(m->poll_seconds, (double)hs.poll_ns / 1e9);
	}
	{
		struct broker_arena_stats as;

		broker_arena_stats(b->arena, &as);
		lk_series_set(m->locked_bytes, (double)vm_locked_bytes());
		lk_series_set(m->unlocked_bytes, (double)as.unlocked);
		lk_series_set(m->memlock_limit, b->memlock.limited ? (double)b->memlock.limit :
			      INFINITY);
	}
	rc = lk_metrics_render(m->reg, out);
	pthread_mutex_unlock(&m->render_lock);
	return rc;
}

/* The value of the secret label of a sample line (NUL-terminated into name), or false. */
static bool
line_secret(const char *line, size_t n, char *name, size_t namelen)
{
	const char *open = memchr(line, '{', n), *end = line + n, *p;
	size_t len;

	if (open == NULL || line[0] == '#')
		return false;
	for (p = open; p != NULL && p < end; p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
		if ((size_t)(end - p) > 9 && memcmp(p + 1, "secret=\"", 8) == 0) {
			const char *v = p + 9, *q = memchr(v, '"', (size_t)(end - v));

			if (q == NULL)
				return false;
			len = (size_t)(q - v);
			if (len >= namelen)
				len = namelen - 1;
			memcpy(name, v, len);
			name[len] = '\0';
			return true;
		}
		if (p + 1 >= end)
			break;
	}
	return false;
}

int
broker_metrics_filter(const char *in, size_t len, bool (*keep)(void *arg, const char *name),
		      void *arg, struct lk_buf *out)
{
	const char *p = in, *end = in + len;
	char name[BROKER_NAME_MAX + 1];
	int rc;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		if (!line_secret(p, n, name, sizeof(name)) || keep(arg, name)) {
			if ((rc = lk_buf_append(out, p, n)) < 0)
				return rc;
		}
		p += n;
	}
	return 0;
}
