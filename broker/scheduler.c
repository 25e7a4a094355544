/* scheduler.c — the one thread that talks to the backend.
 *
 * It logs in, renews the token, reads every secret, renews leases, rotates credentials
 * before they expire, re-reads KV secrets and revokes replaced leases after their grace
 * period. Serving threads never wait on it: they read whatever snapshot is current, and
 * check its expiry themselves. The timings are in docs/internals/broker.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/log.h"

/* The longest the scheduler sleeps without looking at its timers again. */
#define SCHED_IDLE_MAX_MS (60 * 1000LL)
/* Revocations due while the backend fails are retried this often. */
#define SCHED_REVOKE_RETRY_MS 1000
/* Backend timeouts during the shutdown revocations. */
#define SCHED_SHUTDOWN_CONNECT_MS 500
#define SCHED_SHUTDOWN_TIMEOUT_MS 1000
/* A 403 from the backend brings a new login forward at most this often. */
#define SCHED_RELOGIN_MIN_MS 5000
/* Most replaced leases waiting for revocation; beyond, a replaced lease is revoked at once. */
#define SCHED_REVOCATIONS_MAX (2 * BROKER_SECRETS_MAX)

int64_t
broker_renew_at(int64_t now_ms, int64_t ttl_ms, struct lk_backoff *rng)
{
	int64_t base = ttl_ms * 2 / 3, jitter = base / 10;

	if (ttl_ms <= 0)
		return now_ms;
	return now_ms + base - jitter + (int64_t)lk_backoff_random(rng, (uint64_t)(2 * jitter));
}

int64_t
broker_rotate_at(int64_t now_ms, int64_t issued_ms, int64_t expires_ms, struct lk_backoff *rng)
{
	int64_t life = expires_ms - issued_ms, at;

	if (life <= 0)
		return now_ms;
	at = expires_ms - life / 4 - (int64_t)lk_backoff_random(rng, (uint64_t)(life / 20));
	return at < now_ms ? now_ms : at;
}

int64_t
broker_revoke_at(int64_t now_ms, int64_t grace_ms, int64_t expires_ms)
{
	int64_t at = now_ms + (grace_ms > 0 ? grace_ms : 0);

	if (expires_ms > 0 && at > expires_ms - BROKER_REVOKE_MARGIN_MS)
		at = expires_ms - BROKER_REVOKE_MARGIN_MS;
	return at < now_ms ? now_ms : at;
}

int64_t
broker_expires_at(int64_t sent_ms, int64_t ttl_s)
{
	if (ttl_s <= 0)
		return sent_ms;
	if (ttl_s > BROKER_TTL_MAX_S)
		ttl_s = BROKER_TTL_MAX_S;
	return sent_ms + ttl_s * 1000;
}

int64_t
broker_retry_delay(struct lk_backoff *bo, bool urgent)
{
	int64_t cap = bo->cap_ms, d;

	if (urgent && bo->cap_ms > BROKER_RETRY_URGENT_CAP_MS)
		bo->cap_ms = BROKER_RETRY_URGENT_CAP_MS > bo->base_ms ? BROKER_RETRY_URGENT_CAP_MS :
			     bo->base_ms;
	d = lk_backoff_next(bo);
	bo->cap_ms = cap;
	return d;
}

int64_t
broker_refresh_at(int64_t now_ms, int64_t refresh_ms, struct lk_backoff *rng)
{
	int64_t jitter = refresh_ms / 10;

	return now_ms + refresh_ms - jitter + (int64_t)lk_backoff_random(rng, (uint64_t)(2 * jitter));
}

/* ---- entry status, shared with the server ---- */

static void
entry_schedule(struct broker_entry *e, int64_t at, enum broker_action act)
{
	pthread_mutex_lock(&e->lock);
	e->next_mono_ms = at;
	e->next_action = act;
	pthread_mutex_unlock(&e->lock);
}

static void
entry_set_failing(struct broker_entry *e, bool failing, const char *reason)
{
	pthread_mutex_lock(&e->lock);
	e->failing = failing;
	broker_copy_text(e->reason, sizeof(e->reason), reason);
	pthread_mutex_unlock(&e->lock);
}

/* Installs s (reference handed over) as the current snapshot. */
static void
entry_swap(struct broker_entry *e, struct broker_snapshot *s, bool renewed)
{
	struct broker_snapshot *old;
	char *shown = e->lease_id != NULL ? strdup(e->lease_id) : NULL, *old_shown;

	pthread_mutex_lock(&e->lock);
	old_shown = e->shown_lease_id;
	e->shown_lease_id = shown;
	old = e->current;
	e->current = s;
	e->revoked = false;
	e->failing = false;
	e->reason[0] = '\0';
	if (renewed)
		e->last_renewal_real_ms = lk_now_real_ms();
	pthread_mutex_unlock(&e->lock);
	broker_snapshot_unref(old);
	free(old_shown);
}

/* The backend's state; entry names the secret whose call failed (SIZE_MAX: the token's
 * own calls), so that peers who may not read it are not shown its path. */
static void
set_backend_for(struct broker *b, bool ok, const char *reason, size_t entry)
{
	bool recovered;

	pthread_mutex_lock(&b->lock);
	recovered = ok && !b->backend_ok;
	b->backend_ok = ok;
	broker_copy_text(b->backend_reason, sizeof(b->backend_reason), ok ? "" : reason);
	b->backend_reason_entry = entry;
	pthread_mutex_unlock(&b->lock);
	if (recovered) {
		/* The backend answers again: the secrets waiting out a backoff go now. */
		int64_t now = lk_now_mono_ms();

		for (size_t i = 0; i < b->n; i++) {
			struct broker_entry *e = &b->entries[i];

			pthread_mutex_lock(&e->lock);
			if (e->failing && e->next_mono_ms > now)
				e->next_mono_ms = now;
			pthread_mutex_unlock(&e->lock);
		}
	}
}

static void
set_backend(struct broker *b, bool ok, const char *reason)
{
	set_backend_for(b, ok, reason, SIZE_MAX);
}

static void
maybe_announce_ready(struct broker *b)
{
	char reason[BROKER_REASON_MAX];

	if (atomic_load(&b->announced_ready))
		return;
	if (!broker_ready(b, reason, sizeof(reason)))
		return;
	atomic_store(&b->announced_ready, true);
	lk_log(LK_INFO, "ready", LK_INT("secrets", b->n),
	       LK_INT("elapsed_ms", lk_now_mono_ms() - b->started_mono_ms));
}

static void token_lost(struct broker *b, const char *why, int64_t now);

/* A failed backend call: a 403 may mean the token is gone, so log in again soon; one that
 * says the token is invalid means it is gone, and its leases with it. */
static void
note_backend_failure(struct broker *b, const struct lk_vault_error *verr, size_t entry,
		     int64_t now)
{
	if (lk_vault_error_token_invalid(verr)) {
		token_lost(b, verr->base.msg, now);
		return;
	}
	set_backend_for(b, verr->status == 403 || verr->status == 404 || verr->status == 400,
			verr->base.msg, entry);
	/* Once per SCHED_RELOGIN_MIN_MS at most, and not while logins are failing anyway:
	 * a policy that denies a thousand secrets must not cause a thousand logins. */
	if (verr->status == 403) {
		pthread_mutex_lock(&b->lock);
		if (b->token_next_mono_ms > now && b->token_backoff.attempt == 0 &&
		    now - b->last_login_mono_ms >= SCHED_RELOGIN_MIN_MS)
			b->token_next_mono_ms = now;
		pthread_mutex_unlock(&b->lock);
	}
}

/* ---- revocations ---- */

/* The name a revocation is logged under. */
static const char *
rev_name(const struct broker_revocation *r)
{
	return r->secret != NULL ? r->secret : "";
}

/* Revokes lease_id now; 0 or the client's code. */
static int
revoke_now(struct broker *b, const char *lease_id, const char *secret, size_t entry,
	   const char *why)
{
	struct lk_vault_error verr;
	int64_t t0 = lk_now_mono_ms();
	int rc;

	lk_vault_error_clear(&verr);
	rc = lk_vault_lease_revoke(b->vault, lease_id, NULL, &verr);
	broker_metrics_backend(b->metrics, "revoke", lk_now_mono_ms() - t0);
	if (rc < 0) {
		broker_metrics_event(b->metrics, entry, BROKER_EV_REVOCATION_FAILURE);
		lk_log(LK_WARN, "lease revocation failed", LK_STR("secret", secret),
		       LK_STR("why", why), LK_STR("error", verr.base.msg));
		return rc;
	}
	broker_metrics_event(b->metrics, entry, BROKER_EV_REVOCATION);
	lk_log(LK_INFO, "lease revoked", LK_STR("secret", secret), LK_STR("why", why));
	return 0;
}

/* Queues lease_id (handed over) for revocation at `at`. secret is borrowed from the
 * configuration, or (entry SIZE_MAX: a secret the configuration no longer has) copied. */
static void
add_revocation(struct broker *b, char *lease_id, size_t entry, const char *secret, uint64_t gen,
	       int64_t at, int64_t expires_mono, int64_t expires_real)
{
	struct broker_revocation *r, *n;

	if (b->nrevocations >= SCHED_REVOCATIONS_MAX) {
		revoke_now(b, lease_id, secret, entry, "too many pending revocations");
		free(lease_id);
		return;
	}
	r = realloc(b->revocations, (b->nrevocations + 1) * sizeof(*r));
	if (r == NULL) {
		revoke_now(b, lease_id, secret, entry, "out of memory");
		free(lease_id);
		return;
	}
	b->revocations = r;
	n = &r[b->nrevocations];
	memset(n, 0, sizeof(*n));
	n->lease_id = lease_id;
	n->entry = entry;
	if (entry < b->n) {
		n->secret = b->entries[entry].spec->name;
	} else {
		n->owned_secret = strdup(secret != NULL ? secret : "");
		n->secret = n->owned_secret;
	}
	n->gen = gen;
	n->at_mono_ms = at;
	n->expires_mono_ms = expires_mono;
	n->expires_real_ms = expires_real;
	b->nrevocations++;
	b->journal_dirty = true;
}

static void
remove_revocation(struct broker *b, size_t i)
{
	free(b->revocations[i].lease_id);
	free(b->revocations[i].owned_secret);
	b->revocations[i] = b->revocations[b->nrevocations - 1];
	b->nrevocations--;
	b->journal_dirty = true;
}

static void
do_revocation(struct broker *b, size_t i, int64_t now)
{
	struct broker_revocation *r = &b->revocations[i];
	const char *why = r->gen == 0 ? "left by an earlier run" :
			  r->retired ? "removed or changed by a reload" : "replaced";
	struct lk_vault_error verr;
	int64_t t0 = lk_now_mono_ms();
	int rc;

	if (r->expires_mono_ms > 0 && now >= r->expires_mono_ms) {
		/* Expired leases are the backend's to clean up. */
		broker_metrics_event(b->metrics, r->entry, BROKER_EV_REVOCATION_FAILURE);
		lk_log(LK_WARN, "lease expired before it could be revoked",
		       LK_STR("secret", rev_name(r)), LK_STR("why", why));
		remove_revocation(b, i);
		return;
	}
	lk_vault_error_clear(&verr);
	rc = lk_vault_lease_revoke(b->vault, r->lease_id, NULL, &verr);
	broker_metrics_backend(b->metrics, "revoke", lk_now_mono_ms() - t0);
	if (rc < 0 && verr.retryable) {
		broker_metrics_event(b->metrics, r->entry, BROKER_EV_REVOCATION_FAILURE);
		note_backend_failure(b, &verr, r->entry, now);
		lk_log(LK_WARN, "lease revocation failed, will retry",
		       LK_STR("secret", rev_name(r)), LK_STR("why", why),
		       LK_STR("error", verr.base.msg));
		r->at_mono_ms = now + SCHED_REVOKE_RETRY_MS;
		if (r->expires_mono_ms > 0 && r->at_mono_ms > r->expires_mono_ms)
			r->at_mono_ms = r->expires_mono_ms;
		return;
	}
	if (rc < 0) {
		broker_metrics_event(b->metrics, r->entry, BROKER_EV_REVOCATION_FAILURE);
		lk_log(LK_WARN, "lease revocation failed", LK_STR("secret", rev_name(r)),
		       LK_STR("why", why), LK_STR("error", verr.base.msg));
	} else {
		broker_metrics_event(b->metrics, r->entry, BROKER_EV_REVOCATION);
		lk_log(LK_INFO, "lease revoked", LK_STR("secret", rev_name(r)), LK_STR("why", why));
	}
	remove_revocation(b, i);
	/* After the removal: losing the token drops revocations from the array. */
	if (rc < 0 && lk_vault_error_token_invalid(&verr))
		token_lost(b, verr.base.msg, now);
}

/* The leases an earlier run's journal names: revoked first thing after the first login
 * (they sort before everything else), unless they have expired already. */
int
broker_inherit_journal(struct broker *b, struct lk_error *err)
{
	struct broker_journal_lease *l = NULL;
	int64_t now_real = lk_now_real_ms(), now = lk_now_mono_ms();
	size_t n = 0, kept = 0;
	int rc;

	if ((rc = broker_journal_load(b->cfg, &l, &n, err)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct broker_entry *e = broker_find(b, l[i].secret);
		int64_t exp_mono = l[i].expires_real_ms > 0 ?
				   now + (l[i].expires_real_ms - now_real) : 0;

		if (l[i].expires_real_ms > 0 && l[i].expires_real_ms <= now_real)
			continue;
		add_revocation(b, l[i].lease_id, e != NULL ? e->index : SIZE_MAX, l[i].secret, 0,
			       -1, exp_mono, l[i].expires_real_ms);
		l[i].lease_id = NULL;
		kept++;
	}
	broker_journal_leases_free(l, n);
	if (kept > 0)
		lk_log(LK_INFO, "revoking the leases an earlier run left", LK_INT("leases", kept));
	return 0;
}

/* Writes the journal when the set of leases or an expiry changed; a failure is logged
 * (the broker goes on: the journal only narrows what a crash can leave behind). */
static void
journal_sync(struct broker *b)
{
	struct lk_error err;

	if (!b->journal_dirty || b->cfg->state_dir == NULL)
		return;
	b->journal_dirty = false;
	lk_error_clear(&err);
	if (broker_journal_save(b, &err) < 0) {
		if (!b->journal_failing)
			lk_log(LK_WARN, "lease journal not written", LK_STR("error", err.msg));
		b->journal_failing = true;
		b->journal_dirty = true;
	} else {
		b->journal_failing = false;
	}
}

/* ---- token ---- */

/* Withdraws what the backend revoked with the token: a dynamic lease dies with the token
 * that read it, so every credential read with the lost one stops being served (503
 * "secret revoked"), its pending revocations are dropped, and a new login is due at once;
 * the secrets are read again after it. Static (KV) secrets are not leased and stay. */
static void
token_lost(struct broker *b, const char *why, int64_t now)
{
	uint64_t gen;
	int64_t withdrawn = 0;

	pthread_mutex_lock(&b->lock);
	if (!b->logged_in) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	b->logged_in = false;
	gen = b->token_gen;
	if (b->token_next_mono_ms > now)
		b->token_next_mono_ms = now;
	pthread_mutex_unlock(&b->lock);
	set_backend(b, false, why);
	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];
		struct broker_snapshot *old;

		if (e->lease_id == NULL || e->lease_gen != gen)
			continue;
		pthread_mutex_lock(&e->lock);
		old = e->current;
		e->current = NULL;
		free(e->shown_lease_id);
		e->shown_lease_id = NULL;
		e->revoked = true;
		e->failing = true;
		broker_copy_text(e->reason, sizeof(e->reason), "its lease went with the backend "
				 "token, which is no longer valid; a new credential is read after "
				 "the next login");
		e->next_mono_ms = now;
		e->next_action = BROKER_ACT_FETCH;
		pthread_mutex_unlock(&e->lock);
		broker_snapshot_unref(old);
		free(e->lease_id);
		e->lease_id = NULL;
		e->expires_mono_ms = 0;
		b->journal_dirty = true;
		broker_server_notify(b, i);
		withdrawn++;
	}
	for (size_t i = 0; i < b->nrevocations;) {
		if (b->revocations[i].gen == gen)
			remove_revocation(b, i);
		else
			i++;
	}
	broker_metrics_token_lost(b->metrics);
	lk_log(LK_WARN, "backend token lost: the credentials read with it are withdrawn",
	       LK_STR("error", why), LK_INT("withdrawn", withdrawn));
}

/* The periodic lookup-self: a token revoked behind the broker's back (and every lease it
 * read with it) is found within token_check, not only at the next renewal. */
static void
token_check(struct broker *b, int64_t now)
{
	struct lk_vault_token_info ti;
	struct lk_vault_error verr;
	int64_t t0 = lk_now_mono_ms(), next;
	int rc;

	memset(&ti, 0, sizeof(ti));
	lk_vault_error_clear(&verr);
	rc = lk_vault_auth_lookup_self(b->vault, &ti, &verr);
	broker_metrics_backend(b->metrics, "lookup-self", lk_now_mono_ms() - t0);
	now = lk_now_mono_ms();
	next = broker_refresh_at(now, b->cfg->token_check_ms, &b->token_backoff);
	pthread_mutex_lock(&b->lock);
	b->token_check_next_mono_ms = next;
	pthread_mutex_unlock(&b->lock);
	if (rc < 0) {
		if (lk_vault_error_token_invalid(&verr)) {
			token_lost(b, verr.base.msg, now);
		} else if (verr.status == 403) {
			/* A policy without lookup-self: renewals and reads still tell. */
			pthread_mutex_lock(&b->lock);
			b->token_check_off = true;
			pthread_mutex_unlock(&b->lock);
			lk_log(LK_WARN, "the token may not look itself up: revocations are found "
			       "at the next renewal or read only", LK_STR("error", verr.base.msg));
		} else {
			note_backend_failure(b, &verr, SIZE_MAX, now);
		}
		return;
	}
	set_backend(b, true, NULL);
	if (ti.lease_duration_s <= 0 && !ti.never_expires) {
		token_lost(b, "lookup-self: the token has no time left", now);
	} else if (ti.lease_duration_s > 0) {
		int64_t exp = broker_expires_at(t0, ti.lease_duration_s);

		/* The backend's view wins when it is shorter (a token whose TTL was cut). */
		pthread_mutex_lock(&b->lock);
		if (b->token_expires_mono_ms == 0 || exp < b->token_expires_mono_ms) {
			b->token_expires_mono_ms = exp;
			if (b->token_next_mono_ms > broker_renew_at(t0, exp - t0, &b->token_backoff))
				b->token_next_mono_ms = broker_renew_at(t0, exp - t0,
									&b->token_backoff);
		}
		pthread_mutex_unlock(&b->lock);
	}
	lk_vault_token_info_clear(&ti);
}

static void
token_login(struct broker *b, int64_t now)
{
	struct lk_vault_token_info ti;
	struct lk_vault_error verr;
	int64_t t0 = lk_now_mono_ms(), next, old_expires, ttl_ms;
	bool zero_left = false;
	int rc;

	memset(&ti, 0, sizeof(ti));
	lk_vault_error_clear(&verr);
	rc = lk_vault_auth_login(b->vault, &ti, &verr);
	broker_metrics_backend(b->metrics, "login", lk_now_mono_ms() - t0);
	if (rc == 0 && ti.lease_duration_s <= 0 && !ti.never_expires) {
		/* A ttl of 0 on a token that has an expiry: none of it is left. Taking it for
		 * a token that never expires would keep serving what died with it. */
		lk_vault_token_info_clear(&ti);
		rc = -ESTALE;
		zero_left = true;
		snprintf(verr.base.msg, sizeof(verr.base.msg), "%s", "the backend token has no "
			 "time left (ttl 0 with an expire_time): it has expired");
	}
	broker_metrics_login(b->metrics, rc == 0);
	now = lk_now_mono_ms();
	if (rc < 0) {
		bool expired, kept, renewing = false;

		next = now + lk_backoff_next(&b->token_backoff);
		if (verr.retry_after_ms > 0 && next < now + verr.retry_after_ms)
			next = now + verr.retry_after_ms;
		set_backend(b, false, verr.base.msg);
		lk_log(LK_WARN, "login failed", LK_STR("error", verr.base.msg),
		       LK_INT("retry_in_ms", next - now));
		pthread_mutex_lock(&b->lock);
		expired = b->token_expires_mono_ms > 0 && now >= b->token_expires_mono_ms;
		pthread_mutex_unlock(&b->lock);
		if (zero_left || expired)
			token_lost(b, zero_left ? verr.base.msg : "the token expired and no new "
				   "login succeeded", now);
		pthread_mutex_lock(&b->lock);
		/* The login a reload asked for: the token held is valid, and goes on serving
		 * with its renewals as before; the new credentials are tried at the next
		 * login. */
		kept = b->reload_login && b->logged_in && !zero_left && !expired;
		b->reload_login = false;
		if (kept) {
			broker_copy_text(b->login_reason, sizeof(b->login_reason), verr.base.msg);
			b->token_capped = b->reload_prev_capped;
			renewing = !b->token_capped;
			if (!b->token_capped && b->reload_prev_next_mono_ms > now)
				next = b->reload_prev_next_mono_ms;
		}
		b->token_next_mono_ms = next;
		pthread_mutex_unlock(&b->lock);
		if (kept)
			lk_log(LK_WARN, "the login a reload asked for failed: the token held goes on "
			       "serving", LK_STR("error", verr.base.msg),
			       LK_BOOL("renewing", renewing));
		return;
	}
	lk_backoff_reset(&b->token_backoff);
	set_backend(b, true, NULL);
	pthread_mutex_lock(&b->lock);
	old_expires = b->logged_in ? b->token_expires_mono_ms : 0;
	b->logged_in = true;
	b->token_gen++;
	b->token_check_off = false;
	b->token_check_next_mono_ms = b->cfg->token_check_ms > 0 ?
	    broker_refresh_at(now, b->cfg->token_check_ms, &b->token_backoff) : INT64_MAX;
	b->last_login_mono_ms = now;
	b->token_ttl_s = ti.lease_duration_s;
	b->token_renewable = ti.renewable && ti.lease_duration_s > 0;
	b->token_capped = false;
	b->reload_login = false;
	b->login_reason[0] = '\0';
	/* From when the login was sent: the backend's TTL runs from its answer. */
	ttl_ms = broker_expires_at(t0, ti.lease_duration_s) - t0;
	b->token_expires_mono_ms = ti.lease_duration_s > 0 ? t0 + ttl_ms : 0;
	b->token_next_mono_ms = ti.lease_duration_s > 0 ?
	    broker_renew_at(t0, ttl_ms, &b->token_backoff) : INT64_MAX;
	pthread_mutex_unlock(&b->lock);
	lk_log(LK_INFO, "logged in", LK_INT("ttl_s", ti.lease_duration_s),
	       LK_BOOL("renewable", ti.renewable), LK_BOOL("never_expires", ti.never_expires));
	lk_vault_token_info_clear(&ti);
	/* Leases belong to the token that read them: the backend revokes them when that
	 * token expires. Those that would outlive the old token are replaced now. */
	if (old_expires > 0) {
		for (size_t i = 0; i < b->n; i++) {
			struct broker_entry *e = &b->entries[i];

			if (e->lease_id != NULL &&
			    (e->expires_mono_ms == 0 || e->expires_mono_ms > old_expires - 1000)) {
				entry_schedule(e, now, BROKER_ACT_FETCH);
				lk_log(LK_INFO, "rotating a lease of the previous token",
				       LK_STR("secret", e->spec->name));
			}
		}
	}
}

static void
token_renew(struct broker *b, int64_t now)
{
	struct lk_vault_token_info ti;
	struct lk_vault_error verr;
	int64_t t0 = lk_now_mono_ms(), ttl_ms;
	int rc;

	memset(&ti, 0, sizeof(ti));
	lk_vault_error_clear(&verr);
	rc = lk_vault_auth_renew_self(b->vault, b->token_ttl_s, &ti, &verr);
	broker_metrics_backend(b->metrics, "renew-self", lk_now_mono_ms() - t0);
	broker_metrics_token_renewal(b->metrics, rc == 0);
	now = lk_now_mono_ms();
	if (rc == 0 && ti.lease_duration_s <= 0) {
		lk_vault_token_info_clear(&ti);
		lk_log(LK_WARN, "token renewal granted no time: the token has expired");
		token_lost(b, "renew-self granted a ttl of 0: the token has expired", now);
		token_login(b, now);
		return;
	}
	if (rc < 0) {
		lk_log(LK_WARN, "token renewal failed, logging in again",
		       LK_STR("error", verr.base.msg));
		if (lk_vault_error_token_invalid(&verr))
			token_lost(b, verr.base.msg, now);
		token_login(b, now);
		return;
	}
	ttl_ms = broker_expires_at(t0, ti.lease_duration_s) - t0;
	pthread_mutex_lock(&b->lock);
	b->token_expires_mono_ms = t0 + ttl_ms;
	b->token_capped = ti.capped || !ti.renewable;
	/* A capped token is near its max TTL: log in again at 2/3 of what is left. */
	b->token_next_mono_ms = broker_renew_at(t0, ttl_ms, &b->token_backoff);
	pthread_mutex_unlock(&b->lock);
	lk_log(LK_DEBUG, "token renewed", LK_INT("ttl_s", ti.lease_duration_s),
	       LK_BOOL("capped", ti.capped));
	lk_vault_token_info_clear(&ti);
}

static void
token_action(struct broker *b, int64_t now)
{
	bool renew;

	pthread_mutex_lock(&b->lock);
	renew = b->logged_in && b->token_renewable && !b->token_capped &&
		(b->token_expires_mono_ms == 0 || now < b->token_expires_mono_ms);
	pthread_mutex_unlock(&b->lock);
	if (renew)
		token_renew(b, now);
	else
		token_login(b, now);
}

/* ---- secrets ---- */

/* A KV v2 read through the logical path answers {"data": {...}, "metadata": {...}}. */
const json_t *
broker_secret_data(const struct broker_secret_spec *sp, const struct lk_vault_lease_secret *ls)
{
	json_t *inner = json_object_get(ls->data, "data");
	json_t *meta = json_object_get(ls->data, "metadata");

	if (sp->kind == BROKER_KIND_KV2)
		return json_is_object(inner) ? inner : NULL;
	if (sp->kind == BROKER_KIND_AUTO && ls->lease_id == NULL && json_is_object(meta) &&
	    json_object_size(ls->data) == 2 && json_object_get(meta, "version") != NULL) {
		/* data.data null: the version is deleted or destroyed. */
		return json_is_object(inner) ? inner : NULL;
	}
	return ls->data;
}

/* Why a snapshot could not be made, in words a reader of /v1/ready can act on. */
static void
snapshot_failure_reason(struct broker *b, int rc, const json_t *data, char *out, size_t outlen)
{
	if (rc == -E2BIG && json_object_size(data) > BROKER_KEYS_MAX)
		snprintf(out, outlen, "the secret has %zu keys; at most %d keys are served",
			 json_object_size(data), BROKER_KEYS_MAX);
	else if (rc == -E2BIG)
		snprintf(out, outlen, "the secret's data is larger than %u bytes, the most served",
			 (unsigned)LK_SECRET_MAX);
	else if (rc == -ENOLCK)
		snprintf(out, outlen, "its memory cannot be locked (require_mlock; RLIMIT_MEMLOCK "
			 "is %zu bytes): raise the limit or give the broker CAP_IPC_LOCK",
			 b->memlock.limit);
	else
		snprintf(out, outlen, "%s", "out of memory");
}

/* Once: secret memory past the memory lock limit is held unlocked (it may be swapped). */
static void
maybe_warn_unlocked(struct broker *b)
{
	struct broker_arena_stats st;

	if (atomic_load(&b->warned_unlocked))
		return;
	broker_arena_stats(b->arena, &st);
	if (st.unlocked == 0)
		return;
	atomic_store(&b->warned_unlocked, true);
	lk_log(LK_WARN, "memory lock limit reached: some secret memory is not locked and may "
	       "be swapped; raise RLIMIT_MEMLOCK, or set require_mlock to refuse it",
	       LK_INT("memlock_limit_bytes", b->memlock.limit),
	       LK_INT("locked_bytes", st.locked), LK_INT("unlocked_bytes", st.unlocked));
}

static void
entry_failure_after(struct broker *b, struct broker_entry *e, const char *what,
		    const char *reason, enum broker_event ev, enum broker_action retry_action,
		    int64_t retry_after_ms, int64_t now)
{
	enum broker_state st = broker_entry_state(e, now);
	bool urgent = e->spec->required && st != BROKER_STATE_VALID && st != BROKER_STATE_STALE;
	int64_t next = now + broker_retry_delay(&e->backoff, urgent);

	/* The backend said when to come back (a 429 or 503 with Retry-After). */
	if (retry_after_ms > 0 && next < now + retry_after_ms)
		next = now + retry_after_ms;

	/* Not later than the expiry of what is served: from then on it is urgent. */
	if (e->expires_mono_ms > now && next > e->expires_mono_ms)
		next = e->expires_mono_ms;

	broker_metrics_event(b->metrics, e->index, ev);
	entry_set_failing(e, true, reason);
	/* A renewal retried past the point of rotation becomes a rotation. */
	if (retry_action == BROKER_ACT_RENEW && e->expires_mono_ms > 0 &&
	    next > e->expires_mono_ms - (e->expires_mono_ms - e->issued_mono_ms) / 5)
		retry_action = BROKER_ACT_FETCH;
	entry_schedule(e, next, retry_action);
	lk_log(LK_WARN, what, LK_STR("secret", e->spec->name), LK_STR("error", reason),
	       LK_INT("retry_in_ms", next - now));
}

static void
entry_failure(struct broker *b, struct broker_entry *e, const char *what, const char *reason,
	      enum broker_event ev, enum broker_action retry_action, int64_t now)
{
	entry_failure_after(b, e, what, reason, ev, retry_action, -1, now);
}

/* The next renewal of a renewable lease, or its rotation when the max TTL learnt from an
 * earlier credential of the same secret says the lease will be capped before then. */
static void
schedule_renewal(struct broker_entry *e, int64_t now, int64_t ttl_s)
{
	int64_t at = broker_renew_at(now, broker_expires_at(now, ttl_s) - now, &e->backoff), rotate;

	if (e->learned_life_ms > 0) {
		rotate = broker_rotate_at(now, e->issued_mono_ms,
					  e->issued_mono_ms + e->learned_life_ms, &e->backoff);
		if (rotate <= at) {
			entry_schedule(e, rotate, BROKER_ACT_FETCH);
			return;
		}
	}
	entry_schedule(e, at, BROKER_ACT_RENEW);
}

static void
entry_fetch(struct broker *b, struct broker_entry *e, int64_t now)
{
	const struct broker_secret_spec *sp = e->spec;
	struct lk_vault_lease_secret ls;
	struct lk_vault_error verr;
	struct broker_lease_info li;
	struct broker_snapshot *s = NULL;
	unsigned char digest[32];
	const json_t *data;
	bool changed, leased, first = !e->loaded;
	int64_t t0 = lk_now_mono_ms(), t0_real = lk_now_real_ms();
	int64_t replaced_left_ms = -1, replaced_life_ms = -1;
	uint64_t gen = b->token_gen;    /* the token this read is made with */
	char why[BROKER_REASON_MAX];
	enum broker_event fail_ev = e->lease_id != NULL ? BROKER_EV_ROTATION_FAILURE :
				    BROKER_EV_REFRESH_FAILURE;
	int rc;

	memset(&ls, 0, sizeof(ls));
	lk_vault_error_clear(&verr);
	rc = lk_vault_lease_read(b->vault, sp->path, &ls, &verr);
	broker_metrics_backend(b->metrics, "read", lk_now_mono_ms() - t0);
	now = lk_now_mono_ms();
	if (rc < 0) {
		note_backend_failure(b, &verr, e->index, now);
		entry_failure_after(b, e, "secret read failed", verr.base.msg, fail_ev,
				    BROKER_ACT_FETCH, verr.retry_after_ms, now);
		return;
	}
	set_backend(b, true, NULL);
	data = broker_secret_data(sp, &ls);
	if (data == NULL) {
		entry_failure(b, e, "secret read failed", "the KV version has no data (deleted or "
			      "destroyed)", fail_ev, BROKER_ACT_FETCH, now);
		goto out;
	}
	if ((rc = broker_data_digest(b->arena, data, digest)) < 0) {
		snapshot_failure_reason(b, rc, data, why, sizeof(why));
		entry_failure(b, e, "secret read failed", why, fail_ev, BROKER_ACT_FETCH, now);
		goto out;
	}
	{
		struct broker_snapshot *cur = broker_entry_snapshot(e);

		changed = cur == NULL || sodium_memcmp(cur->digest, digest, sizeof(digest)) != 0;
		broker_snapshot_unref(cur);
	}
	leased = ls.lease_id != NULL && sp->kind != BROKER_KIND_KV1 && sp->kind != BROKER_KIND_KV2;
	memset(&li, 0, sizeof(li));
	li.leased = leased;
	li.renewable = leased && ls.renewable;
	li.ttl_s = ls.lease_duration_s;
	/* The lease's TTL started when the backend answered: counted from the moment the
	 * request left, the expiry served is never later than the backend's. */
	if (leased && ls.lease_duration_s > 0) {
		li.expires_mono_ms = broker_expires_at(t0, ls.lease_duration_s);
		li.expires_real_ms = broker_expires_at(t0_real, ls.lease_duration_s);
	}
	rc = broker_snapshot_new(b->arena, sp->name, changed ? e->version + 1 : e->version, data,
				 &li, &s);
	if (rc < 0) {
		snapshot_failure_reason(b, rc, data, why, sizeof(why));
		entry_failure(b, e, "secret read failed", why, fail_ev, BROKER_ACT_FETCH, now);
		goto out;
	}
	if (changed)
		e->version++;
	if (e->lease_id != NULL && e->expires_mono_ms > 0) {
		replaced_left_ms = e->expires_mono_ms - now;
		replaced_life_ms = e->expires_mono_ms - e->issued_mono_ms;
	}
	/* The replaced lease stays valid for the grace period, for readers that took it. */
	if (e->lease_id != NULL && (ls.lease_id == NULL || strcmp(e->lease_id, ls.lease_id) != 0)) {
		add_revocation(b, e->lease_id, e->index, NULL, e->lease_gen,
			       broker_revoke_at(now, sp->grace_ms, e->expires_mono_ms),
			       e->expires_mono_ms, e->expires_real_ms);
		e->lease_id = NULL;
	}
	free(e->lease_id);
	e->lease_id = NULL;
	if (leased) {
		e->lease_id = ls.lease_id;
		e->lease_gen = gen;
		ls.lease_id = NULL;
	}
	e->issued_mono_ms = t0;
	e->expires_mono_ms = li.expires_mono_ms;
	e->expires_real_ms = li.expires_real_ms;
	if (leased)
		b->journal_dirty = true;
	e->lease_duration_s = ls.lease_duration_s;
	e->renewable = li.renewable;
	e->loaded = true;
	entry_swap(e, s, false);
	lk_backoff_reset(&e->backoff);
	maybe_warn_unlocked(b);

	if (leased && li.renewable && ls.lease_duration_s > 0)
		schedule_renewal(e, t0, ls.lease_duration_s);
	else if (leased && ls.lease_duration_s > 0)
		entry_schedule(e, broker_rotate_at(now, t0, li.expires_mono_ms, &e->backoff),
			       BROKER_ACT_FETCH);
	else
		entry_schedule(e, broker_refresh_at(now, sp->refresh_ms, &e->backoff),
			       BROKER_ACT_FETCH);

	if (first) {
		lk_log(LK_INFO, "secret loaded", LK_STR("secret", sp->name),
		       LK_INT("version", e->version), LK_BOOL("leased", leased),
		       LK_INT("ttl_s", ls.lease_duration_s));
	} else if (changed) {
		broker_metrics_event(b->metrics, e->index, leased ? BROKER_EV_ROTATION :
				     BROKER_EV_REFRESH);
		lk_log(LK_INFO, leased ? "secret rotated" : "secret changed",
		       LK_STR("secret", sp->name), LK_INT("version", e->version),
		       LK_INT("ttl_s", ls.lease_duration_s),
		       LK_INT("replaced_left_ms", replaced_left_ms),
		       LK_INT("replaced_life_ms", replaced_life_ms));
	} else {
		broker_metrics_event(b->metrics, e->index, BROKER_EV_REFRESH);
	}
	if (changed) {
		broker_server_notify(b, e->index);
		broker_render_outputs(b, e->index);
		broker_exec_notify(b, e->index);
	}
	maybe_announce_ready(b);
out:
	if (ls.warnings != NULL && json_array_size(ls.warnings) > 0)
		lk_log(LK_WARN, "backend warnings", LK_STR("secret", sp->name),
		       LK_STR("warning", json_string_value(json_array_get(ls.warnings, 0))));
	lk_vault_lease_secret_clear(&ls);
}

static void
entry_renew(struct broker *b, struct broker_entry *e, int64_t now)
{
	const struct broker_secret_spec *sp = e->spec;
	struct lk_vault_lease_renewal rr;
	struct lk_vault_error verr;
	struct broker_lease_info li;
	struct broker_snapshot *cur, *s = NULL;
	int64_t t0 = lk_now_mono_ms(), t0_real = lk_now_real_ms();
	int rc;

	memset(&rr, 0, sizeof(rr));
	lk_vault_error_clear(&verr);
	rc = lk_vault_lease_renew(b->vault, e->lease_id, e->lease_duration_s, &rr, &verr);
	broker_metrics_backend(b->metrics, "renew", lk_now_mono_ms() - t0);
	now = lk_now_mono_ms();
	if (rc < 0) {
		note_backend_failure(b, &verr, e->index, now);
		if (!verr.retryable) {
			/* lease expired, invalid or past its max TTL: get a new credential. */
			broker_metrics_event(b->metrics, e->index, BROKER_EV_RENEWAL_FAILURE);
			lk_log(LK_WARN, "lease renewal refused, rotating", LK_STR("secret", sp->name),
			       LK_STR("error", verr.base.msg));
			entry_schedule(e, now, BROKER_ACT_FETCH);
			return;
		}
		entry_failure_after(b, e, "lease renewal failed", verr.base.msg,
				    BROKER_EV_RENEWAL_FAILURE, BROKER_ACT_RENEW,
				    verr.retry_after_ms, now);
		return;
	}
	set_backend(b, true, NULL);
	broker_metrics_event(b->metrics, e->index, BROKER_EV_RENEWAL);
	memset(&li, 0, sizeof(li));
	li.leased = true;
	li.renewable = rr.renewable;
	li.ttl_s = rr.lease_duration_s;
	/* From when the renewal was sent, as for a read (entry_fetch). */
	li.expires_mono_ms = broker_expires_at(t0, rr.lease_duration_s);
	li.expires_real_ms = broker_expires_at(t0_real, rr.lease_duration_s);
	e->expires_mono_ms = li.expires_mono_ms;
	e->expires_real_ms = li.expires_real_ms;
	b->journal_dirty = true;
	cur = broker_entry_snapshot(e);
	if (cur != NULL && broker_snapshot_relabel(cur, sp->name, &li, &s) == 0)
		entry_swap(e, s, true);
	broker_snapshot_unref(cur);
	lk_backoff_reset(&e->backoff);
	if (rr.capped || !rr.renewable) {
		/* The max TTL is near: fetch a replacement while enough of this one is left. */
		int64_t at = broker_rotate_at(now, e->issued_mono_ms, e->expires_mono_ms, &e->backoff);

		/* Remembered so that the next credential is replaced in time, before its own
		 * renewal is capped (the first one can only learn it now). */
		if (rr.capped)
			e->learned_life_ms = e->expires_mono_ms - e->issued_mono_ms;
		entry_schedule(e, at, BROKER_ACT_FETCH);
		lk_log(LK_INFO, "lease renewal capped, rotation planned", LK_STR("secret", sp->name),
		       LK_INT("ttl_s", rr.lease_duration_s), LK_INT("rotate_in_ms", at - now));
	} else {
		schedule_renewal(e, t0, rr.lease_duration_s);
		lk_log(LK_DEBUG, "lease renewed", LK_STR("secret", sp->name),
		       LK_INT("ttl_s", rr.lease_duration_s));
	}
	lk_vault_lease_renewal_clear(&rr);
}

/* ---- the loop ---- */

/* A lease the shutdown could not revoke: said with when it stays live until. */
static void
lease_left(struct broker *b, const char *secret, int64_t expires_real_ms, const char *why)
{
	char ts[LK_RFC3339_LEN];

	b->shutdown_left++;
	lk_log(LK_WARN, "lease left live", LK_STR("secret", secret),
	       LK_STR("expires_at", expires_real_ms > 0 ? lk_rfc3339_ms(expires_real_ms, ts) : NULL),
	       LK_STR("why", why));
}

static void
shutdown_revocations(struct broker *b)
{
	int64_t deadline = lk_now_mono_ms() + BROKER_SHUTDOWN_BUDGET_MS - 1000;
	int64_t now_real = lk_now_real_ms();

	lk_vault_client_set_timeouts(b->vault, SCHED_SHUTDOWN_CONNECT_MS, SCHED_SHUTDOWN_TIMEOUT_MS);
	for (size_t i = 0; i < b->nrevocations;) {
		struct broker_revocation *r = &b->revocations[i];

		if (r->expires_real_ms > 0 && r->expires_real_ms <= now_real) {
			remove_revocation(b, i);
			continue;
		}
		if (lk_now_mono_ms() < deadline &&
		    revoke_now(b, r->lease_id, rev_name(r), r->entry, "shutdown") == 0) {
			remove_revocation(b, i);
			continue;
		}
		lease_left(b, rev_name(r), r->expires_real_ms, lk_now_mono_ms() < deadline ?
			   "the revocation failed" : "the shutdown budget was spent");
		i++;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];

		if (e->lease_id == NULL)
			continue;
		if (lk_now_mono_ms() < deadline &&
		    revoke_now(b, e->lease_id, e->spec->name, i, "shutdown") == 0) {
			free(e->lease_id);
			e->lease_id = NULL;
			b->journal_dirty = true;
			continue;
		}
		lease_left(b, e->spec->name, e->expires_real_ms, lk_now_mono_ms() < deadline ?
			   "the revocation failed" : "the shutdown budget was spent");
	}
	/* What is left stays in the journal: the next start revokes it. */
	journal_sync(b);
	if (b->shutdown_left > 0)
		lk_log(LK_ERROR, "leases stay live until they expire",
		       LK_INT("leases", b->shutdown_left),
		       LK_STR("then", b->cfg->state_dir != NULL ?
			      "the next start revokes them (lease journal)" :
			      "nothing revokes them: set state_dir to keep a lease journal"));
}

/* revoke_on_shutdown false: the leases are left to expire on purpose, and the next start
 * must not revoke them either. */
static void
shutdown_keep_leases(struct broker *b)
{
	while (b->nrevocations > 0)
		remove_revocation(b, 0);
	for (size_t i = 0; i < b->n; i++) {
		free(b->entries[i].lease_id);
		b->entries[i].lease_id = NULL;
	}
	b->journal_dirty = true;
	journal_sync(b);
}

static void *
scheduler_main(void *arg)
{
	struct broker *b = arg;

	for (;;) {
		int64_t now, next, token_next, check_next, token_expires;
		struct broker_entry *due = NULL;
		size_t due_rev = SIZE_MAX;
		bool logged_in;

		/* One round under the generation lock: a reload swaps between rounds. */
		pthread_rwlock_rdlock(&b->gen_lock);
		/* After every action: a crash from here on leaves nothing unjournaled. */
		journal_sync(b);
		now = lk_now_mono_ms();
		pthread_mutex_lock(&b->lock);
		if (b->stopping) {
			pthread_mutex_unlock(&b->lock);
			pthread_rwlock_unlock(&b->gen_lock);
			break;
		}
		token_next = b->token_next_mono_ms;
		logged_in = b->logged_in;
		token_expires = b->token_expires_mono_ms;
		check_next = logged_in && !b->token_check_off && b->cfg->token_check_ms > 0 ?
			     b->token_check_next_mono_ms : INT64_MAX;
		pthread_mutex_unlock(&b->lock);

		/* Renewals and logins failed until the token ran out: the backend has revoked
		 * its leases. */
		if (logged_in && token_expires > 0 && now >= token_expires) {
			token_lost(b, "the token expired: its renewal and new logins failed", now);
			goto round_done;
		}
		if (token_next <= now) {
			token_action(b, now);
			goto round_done;
		}
		if (check_next <= now) {
			token_check(b, now);
			goto round_done;
		}
		next = token_next < check_next ? token_next : check_next;
		if (logged_in) {
			/* A scan, not a heap: a few thousand entries cost microseconds, and
			 * events are seconds apart. Of those due, a lease (its renewal or
			 * replacement runs against an expiry) or a first read goes before a
			 * KV re-read: one slow backend call at a time must not starve them. */
			bool due_urgent = false;
			/* Decryption keys in the backend (broker/decrypt.c) come first: file
			 * sources wait on them. */
			int64_t keys_at = broker_keyring_due(b);

			if (keys_at <= now) {
				broker_keyring_fetch(b, now);
				goto round_done;
			}
			if (keys_at < next)
				next = keys_at;
			for (size_t i = 0; i < b->n; i++) {
				struct broker_entry *e = &b->entries[i];
				bool urgent;

				/* Read from files by broker/source_file.c, not from here (and
				 * their loaded and version are that thread's). */
				if (e->spec->from_file != NULL)
					continue;
				urgent = e->lease_id != NULL || !e->loaded;
				if (e->next_mono_ms <= now && (urgent && !due_urgent)) {
					next = e->next_mono_ms;
					due = e;
					due_urgent = true;
				} else if (e->next_mono_ms < next && (urgent || !due_urgent)) {
					next = e->next_mono_ms;
					due = e;
				}
			}
			for (size_t i = 0; i < b->nrevocations; i++) {
				if (b->revocations[i].at_mono_ms < next) {
					next = b->revocations[i].at_mono_ms;
					due_rev = i;
					due = NULL;
				}
			}
		}
		if (next <= now) {
			if (due_rev != SIZE_MAX)
				do_revocation(b, due_rev, now);
			else if (due != NULL && due->next_action == BROKER_ACT_RENEW &&
				 due->lease_id != NULL)
				entry_renew(b, due, now);
			else if (due != NULL)
				entry_fetch(b, due, now);
			goto round_done;
		}
		if (next - now > SCHED_IDLE_MAX_MS)
			next = now + SCHED_IDLE_MAX_MS;
		{
			struct timespec ts = lk_timespec_in_ms(CLOCK_MONOTONIC, next - now);

			/* The generation lock is let go under b->lock: a reload's broadcast
			 * (under b->lock too) cannot fall between the two. */
			pthread_mutex_lock(&b->lock);
			pthread_rwlock_unlock(&b->gen_lock);
			if (!b->stopping)
				pthread_cond_timedwait(&b->cond, &b->lock, &ts);
			pthread_mutex_unlock(&b->lock);
		}
		continue;
round_done:
		pthread_rwlock_unlock(&b->gen_lock);
	}
	if (b->cfg->revoke_on_shutdown)
		shutdown_revocations(b);
	else
		shutdown_keep_leases(b);
	pthread_mutex_lock(&b->lock);
	b->shutdown_done = true;
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

int
broker_scheduler_start(struct broker *b)
{
	int rc = pthread_create(&b->thread, NULL, scheduler_main, b);

	if (rc != 0)
		return -rc;
	b->thread_running = true;
	return 0;
}

void
broker_scheduler_stop(struct broker *b)
{
	struct timespec ts;

	if (!b->thread_running)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	/* A backend call in flight is bounded by the client's timeouts; past the budget the
	 * thread is left behind (the process is about to exit). */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += BROKER_SHUTDOWN_BUDGET_MS / 1000;
	if (pthread_timedjoin_np(b->thread, NULL, &ts) != 0) {
		lk_log(LK_WARN, "the scheduler did not stop within the shutdown budget");
		pthread_detach(b->thread);
		b->thread_abandoned = true;
	}
	b->thread_running = false;
}
