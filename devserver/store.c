/* store.c — tokens and leases: creation, expiry, revocation, TTL arithmetic. */
#include "devserver/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"

struct dev_token *
dev_token_find(struct dev_server *s, const char *id)
{
	for (struct dev_token *t = s->tokens; t != NULL; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

struct dev_token *
dev_token_new(struct dev_server *s, int64_t now_ms, json_t *policies)
{
	struct dev_token *t;
	char rnd[32];

	if (s->ntokens >= DEV_TOKENS_MAX || policies == NULL) {
		json_decref(policies);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		json_decref(policies);
		return NULL;
	}
	dev_random_alnum(rnd, 24);
	snprintf(t->id, sizeof(t->id), "s.%s", rnd);
	dev_random_alnum(t->accessor, 24);
	t->policies = policies;
	t->issue_ms = now_ms;
	t->renewable = true;
	t->next = s->tokens;
	s->tokens = t;
	s->ntokens++;
	return t;
}

static void
token_unlink(struct dev_server *s, struct dev_token *t)
{
	for (struct dev_token **pp = &s->tokens; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			s->ntokens--;
			break;
		}
	}
	json_decref(t->policies);
	json_decref(t->meta);
	free(t);
}

/* Ends an active lease: what the engine that minted it undoes (a database user dropped)
 * runs first, as Vault's expiration manager revokes through the backend. */
static void
lease_end(struct dev_server *s, struct dev_lease *l, enum dev_lease_state state, int64_t end_ms)
{
	struct dev_mount *m = dev_mount_lookup(s->mounts, s->nmounts, l->id);

	if (m != NULL && m->type == DEV_MOUNT_DATABASE)
		dev_db_lease_end(s, m, l);
	l->state = state;
	l->end_ms = end_ms;
}

void
dev_token_revoke(struct dev_server *s, struct dev_token *t, int64_t now_ms)
{
	struct dev_token *child;

	do {
		child = NULL;
		for (struct dev_token *o = s->tokens; o != NULL; o = o->next) {
			if (o != t && o->parent[0] != '\0' && strcmp(o->parent, t->id) == 0) {
				child = o;
				break;
			}
		}
		if (child != NULL)
			dev_token_revoke(s, child, now_ms);
	} while (child != NULL);
	for (struct dev_lease *l = s->leases; l != NULL; l = l->next)
		if (l->state == DEV_LEASE_ACTIVE && strcmp(l->owner, t->id) == 0)
			dev_lease_revoke(s, l, now_ms);
	token_unlink(s, t);
}

bool
dev_token_descends(struct dev_server *s, const struct dev_token *t, const struct dev_token *ancestor)
{
	/* Bounded by the number of tokens: a parent chain cannot be longer. */
	for (size_t hops = 0; t != NULL && hops <= s->ntokens; hops++) {
		if (t == ancestor)
			return true;
		t = t->parent[0] != '\0' ? dev_token_find(s, t->parent) : NULL;
	}
	return false;
}

/* Whole seconds left, rounded up: a token that expires never shows 0, which clients read
 * as "never expires" (only a token without expire time reports 0). */
static int64_t
token_ttl_s(const struct dev_token *t, int64_t now_ms)
{
	if (t->expire_ms == 0)
		return 0;
	return t->expire_ms > now_ms ? (t->expire_ms - now_ms + 999) / 1000 : 1;
}

json_t *
dev_token_auth(const struct dev_server *s, const struct dev_token *t, int64_t now_ms)
{
	json_t *auth = json_pack("{s:s, s:s, s:O, s:O}", "client_token", t->id, "accessor",
	    t->accessor, "policies", t->policies, "token_policies", t->policies);

	(void)s;
	json_object_set_new(auth, "metadata", t->meta != NULL ? json_deep_copy(t->meta) : json_null());
	json_object_set_new(auth, "lease_duration", json_integer(token_ttl_s(t, now_ms)));
	json_object_set_new(auth, "renewable", json_boolean(t->renewable));
	json_object_set_new(auth, "entity_id", json_string(""));
	json_object_set_new(auth, "token_type", json_string("service"));
	json_object_set_new(auth, "orphan", json_boolean(t->orphan));
	json_object_set_new(auth, "mfa_requirement", json_null());
	json_object_set_new(auth, "num_uses", json_integer(t->num_uses));
	return auth;
}

json_t *
dev_token_lookup(const struct dev_token *t, int64_t now_ms)
{
	char issue[40], expire[40], renew[40];
	json_t *d = json_object();

	json_object_set_new(d, "accessor", json_string(t->accessor));
	json_object_set_new(d, "creation_time", json_integer(t->issue_ms / 1000));
	json_object_set_new(d, "creation_ttl", json_integer(t->creation_ttl_s));
	json_object_set_new(d, "display_name", json_string(t->display_name));
	json_object_set_new(d, "entity_id", json_string(""));
	json_object_set_new(d, "expire_time", t->expire_ms != 0 ?
	    json_string(dev_time_str(t->expire_ms, expire)) : json_null());
	json_object_set_new(d, "explicit_max_ttl", json_integer(t->explicit_max_s));
	json_object_set_new(d, "id", json_string(t->id));
	json_object_set_new(d, "issue_time", json_string(dev_time_str(t->issue_ms, issue)));
	if (t->last_renew_ms != 0)
		json_object_set_new(d, "last_renewal_time",
		    json_string(dev_time_str(t->last_renew_ms, renew)));
	json_object_set_new(d, "meta", t->meta != NULL ? json_deep_copy(t->meta) : json_null());
	json_object_set_new(d, "num_uses", json_integer(t->num_uses));
	json_object_set_new(d, "orphan", json_boolean(t->orphan));
	json_object_set_new(d, "path", json_string(t->path));
	if (t->period_s > 0)
		json_object_set_new(d, "period", json_integer(t->period_s));
	json_object_set_new(d, "policies", json_deep_copy(t->policies));
	json_object_set_new(d, "renewable", json_boolean(t->renewable));
	json_object_set_new(d, "ttl", json_integer(token_ttl_s(t, now_ms)));
	json_object_set_new(d, "type", json_string("service"));
	return d;
}

void
dev_sweep(struct dev_server *s, int64_t now_ms)
{
	struct dev_token *t;

	do {
		for (t = s->tokens; t != NULL; t = t->next)
			if (t->expire_ms != 0 && t->expire_ms <= now_ms)
				break;
		if (t != NULL)
			dev_token_revoke(s, t, now_ms);
	} while (t != NULL);
	for (struct dev_lease *l = s->leases; l != NULL; l = l->next)
		if (l->state == DEV_LEASE_ACTIVE && l->expire_ms <= now_ms)
			lease_end(s, l, DEV_LEASE_EXPIRED, l->expire_ms);
}

static void *
sweeper_main(void *arg)
{
	struct dev_server *s = arg;
	struct timespec at;

	pthread_mutex_lock(&s->lock);
	while (!s->sweeper_stop) {
		dev_sweep(s, lk_now_real_ms());
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += DEV_SWEEP_INTERVAL_MS * 1000000L;
		at.tv_sec += at.tv_nsec / 1000000000L;
		at.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->sweeper_wake, &s->lock, &at);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int
dev_sweeper_start(struct dev_server *s)
{
	pthread_condattr_t attr;
	int r;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	r = pthread_cond_init(&s->sweeper_wake, &attr);
	pthread_condattr_destroy(&attr);
	if (r != 0)
		return -r;
	s->sweeper_stop = false;
	r = pthread_create(&s->sweeper, NULL, sweeper_main, s);
	if (r != 0) {
		pthread_cond_destroy(&s->sweeper_wake);
		return -r;
	}
	s->sweeper_running = true;
	return 0;
}

void
dev_sweeper_stop(struct dev_server *s)
{
	if (!s->sweeper_running)
		return;
	pthread_mutex_lock(&s->lock);
	s->sweeper_stop = true;
	pthread_cond_signal(&s->sweeper_wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->sweeper, NULL);
	pthread_cond_destroy(&s->sweeper_wake);
	s->sweeper_running = false;
}

void
dev_lease_revoke(struct dev_server *s, struct dev_lease *l, int64_t now_ms)
{
	if (l->state == DEV_LEASE_ACTIVE)
		lease_end(s, l, DEV_LEASE_REVOKED, now_ms);
}

void
dev_lease_revoke_prefix(struct dev_server *s, const char *prefix, int64_t now_ms)
{
	size_t n = strlen(prefix);

	for (struct dev_lease *l = s->leases; l != NULL; l = l->next)
		if (l->state == DEV_LEASE_ACTIVE && strncmp(l->id, prefix, n) == 0)
			dev_lease_revoke(s, l, now_ms);
}

void
dev_lease_free(struct dev_lease *l)
{
	if (l == NULL)
		return;
	json_decref(l->data);
	free(l);
}

struct dev_lease *
dev_lease_find(struct dev_server *s, const char *id)
{
	for (struct dev_lease *l = s->leases; l != NULL; l = l->next)
		if (strcmp(l->id, id) == 0)
			return l;
	return NULL;
}

/* Drops the oldest lease that has ended; false when every lease is active. */
static bool
lease_drop_ended(struct dev_server *s)
{
	struct dev_lease **victim = NULL;

	/* The list is newest first, so the last ended one is the oldest. */
	for (struct dev_lease **pp = &s->leases; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->state != DEV_LEASE_ACTIVE)
			victim = pp;
	if (victim == NULL)
		return false;
	struct dev_lease *l = *victim;
	*victim = l->next;
	dev_lease_free(l);
	s->nleases--;
	return true;
}

bool
dev_lease_count_full(const struct dev_server *s)
{
	if (s->nleases < DEV_LEASES_MAX)
		return false;
	for (const struct dev_lease *l = s->leases; l != NULL; l = l->next)
		if (l->state != DEV_LEASE_ACTIVE)
			return false;
	return true;
}

struct dev_lease *
dev_lease_new(struct dev_server *s, const char *id, const char *owner, int64_t now_ms,
	      int64_t ttl_s, int64_t max_ttl_s, bool renewable)
{
	struct dev_lease *l;

	if (s->nleases >= DEV_LEASES_MAX && !lease_drop_ended(s))
		return NULL;
	if (strlen(id) >= sizeof(l->id))
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	snprintf(l->id, sizeof(l->id), "%s", id);
	snprintf(l->owner, sizeof(l->owner), "%s", owner);
	l->issue_ms = now_ms;
	l->expire_ms = now_ms + ttl_s * 1000;
	l->default_ttl_s = ttl_s;
	l->max_ttl_s = max_ttl_s;
	l->renewable = renewable;
	l->state = DEV_LEASE_ACTIVE;
	l->next = s->leases;
	s->leases = l;
	s->nleases++;
	return l;
}

int
dev_calculate_ttl(int64_t now_ms, int64_t issue_ms, int64_t increment_s, int64_t default_s,
		  int64_t max_s, int64_t *ret_ttl_s, char *ret_warning, size_t warnlen)
{
	int64_t ttl = increment_s > 0 ? increment_s : default_s;
	int64_t left_ms = issue_ms + max_s * 1000 - now_ms;
	char want[32], left[32];

	if (warnlen > 0)
		ret_warning[0] = '\0';
	if (left_ms <= 0)
		return -ERANGE;
	if (left_ms < ttl * 1000) {
		snprintf(ret_warning, warnlen,
		    "TTL of \"%s\" exceeded the effective max_ttl of \"%s\"; TTL value is capped accordingly",
		    dev_duration_str(ttl, want, sizeof(want)),
		    dev_duration_str(left_ms / 1000, left, sizeof(left)));
		ttl = left_ms / 1000;
	}
	*ret_ttl_s = ttl;
	return 0;
}
