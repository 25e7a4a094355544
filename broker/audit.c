/* audit.c — the audit lines of reads, bounded.
 *
 * Every read is audited, never its value. One line per read grew the log by ~150 bytes a
 * read (47 MB in 8 s under load), so the first read of each (peer, secret, key, version,
 * result) is logged at once and the repeats are counted: once per interval a line with
 * "repeats" says how many more there were. A key idle for a whole interval is forgotten,
 * and its next read is logged at once again. The table is bounded; reads that find it full
 * are counted in one "reads not itemised" line per interval, so nothing goes unaudited.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/log.h"

/* Longest key name kept in an audit entry (longer ones are cut, and say so). */
#define AUDIT_KEY_MAX 128

struct audit_entry {
	bool used;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool peer_known;
	uint64_t version;
	const char *result;          /* a static string */
	char secret[BROKER_NAME_MAX + 1];
	char key[AUDIT_KEY_MAX + 1];
	bool has_key;
	unsigned long long repeats;  /* since the last line */
};

struct broker_audit {
	pthread_mutex_t lock;
	struct audit_entry *table;
	size_t cap;                  /* a power of two */
	size_t used;
	int64_t interval_ms;
	int64_t next_flush_mono_ms;
	unsigned long long overflow; /* reads not itemised since the last line */
};

struct broker_audit *
broker_audit_new(size_t max_entries, int64_t interval_ms)
{
	struct broker_audit *a = calloc(1, sizeof(*a));
	size_t cap = 4;

	if (a == NULL)
		return NULL;
	/* Open addressing at most half full. */
	while (cap < 2 * max_entries)
		cap *= 2;
	a->table = calloc(cap, sizeof(*a->table));
	if (a->table == NULL || pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a->table);
		free(a);
		return NULL;
	}
	a->cap = cap;
	a->interval_ms = interval_ms;
	a->next_flush_mono_ms = lk_now_mono_ms() + interval_ms;
	return a;
}

void
broker_audit_free(struct broker_audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->table);
	free(a);
}

static uint64_t
mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void
log_entry(const struct audit_entry *e, bool summary, int64_t interval_ms)
{
	const char *key = e->has_key ? e->key : NULL;

	if (!summary) {
		lk_log(LK_INFO, "read", LK_INT("pid", e->peer_known ? e->pid : -1),
		       LK_INT("uid", e->peer_known ? (int64_t)e->uid : -1),
		       LK_INT("gid", e->peer_known ? (int64_t)e->gid : -1), LK_STR("secret", e->secret),
		       LK_STR("key", key), LK_INT("version", e->version), LK_STR("result", e->result));
		return;
	}
	lk_log(LK_INFO, "read", LK_INT("pid", e->peer_known ? e->pid : -1),
	       LK_INT("uid", e->peer_known ? (int64_t)e->uid : -1),
	       LK_INT("gid", e->peer_known ? (int64_t)e->gid : -1), LK_STR("secret", e->secret),
	       LK_STR("key", key), LK_INT("version", e->version), LK_STR("result", e->result),
	       LK_INT("repeats", e->repeats), LK_INT("interval_ms", interval_ms));
}

void
broker_audit_read(struct broker_audit *a, const struct lk_peer *peer, const char *secret,
		  const char *key, uint64_t version, const char *result)
{
	struct audit_entry probe, *e = NULL;
	uint64_t h = 1469598103934665603ULL;
	size_t i, keylen = key != NULL ? strlen(key) : 0;

	memset(&probe, 0, sizeof(probe));
	probe.peer_known = peer != NULL && peer->known;
	if (probe.peer_known) {
		probe.pid = peer->pid;
		probe.uid = peer->uid;
		probe.gid = peer->gid;
	}
	probe.version = version;
	probe.result = result;
	broker_copy_text(probe.secret, sizeof(probe.secret), secret);
	probe.has_key = key != NULL;
	if (keylen > AUDIT_KEY_MAX)
		snprintf(probe.key, sizeof(probe.key), "%.*s...", AUDIT_KEY_MAX - 3, key);
	else
		broker_copy_text(probe.key, sizeof(probe.key), key);

	h = mix(h, &probe.pid, sizeof(probe.pid));
	h = mix(h, &probe.uid, sizeof(probe.uid));
	h = mix(h, &probe.gid, sizeof(probe.gid));
	h = mix(h, &probe.version, sizeof(probe.version));
	h = mix(h, result, strlen(result));
	h = mix(h, probe.secret, strlen(probe.secret));
	h = mix(h, probe.key, strlen(probe.key) + probe.has_key);

	pthread_mutex_lock(&a->lock);
	for (i = h & (a->cap - 1);; i = (i + 1) & (a->cap - 1)) {
		struct audit_entry *t = &a->table[i];

		if (!t->used)
			break;
		if (t->pid == probe.pid && t->uid == probe.uid && t->gid == probe.gid &&
		    t->peer_known == probe.peer_known && t->version == probe.version &&
		    strcmp(t->result, probe.result) == 0 && t->has_key == probe.has_key &&
		    strcmp(t->secret, probe.secret) == 0 && strcmp(t->key, probe.key) == 0) {
			e = t;
			break;
		}
	}
	if (e != NULL) {
		e->repeats++;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	if (2 * (a->used + 1) > a->cap) {
		a->overflow++;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	probe.used = true;
	a->table[i] = probe;
	a->used++;
	pthread_mutex_unlock(&a->lock);
	/* Outside the lock: a log line is a write(2). */
	log_entry(&probe, false, 0);
}

/* Rebuilds the table without the entries marked unused (open addressing cannot just
 * clear a slot in the middle of a probe run). a->lock held. */
static void
rehash(struct broker_audit *a, struct audit_entry *old)
{
	memset(a->table, 0, a->cap * sizeof(*a->table));
	a->used = 0;
	for (size_t k = 0; k < a->cap; k++) {
		uint64_t h = 1469598103934665603ULL;
		size_t i;

		if (!old[k].used)
			continue;
		h = mix(h, &old[k].pid, sizeof(old[k].pid));
		h = mix(h, &old[k].uid, sizeof(old[k].uid));
		h = mix(h, &old[k].gid, sizeof(old[k].gid));
		h = mix(h, &old[k].version, sizeof(old[k].version));
		h = mix(h, old[k].result, strlen(old[k].result));
		h = mix(h, old[k].secret, strlen(old[k].secret));
		h = mix(h, old[k].key, strlen(old[k].key) + old[k].has_key);
		for (i = h & (a->cap - 1); a->table[i].used; i = (i + 1) & (a->cap - 1))
			;
		a->table[i] = old[k];
		a->used++;
	}
}

int64_t
broker_audit_flush(struct broker_audit *a, int64_t now_mono_ms, bool all)
{
	struct audit_entry *lines = NULL, *old = NULL;
	unsigned long long overflow;
	size_t nlines = 0;
	int64_t next;

	pthread_mutex_lock(&a->lock);
	if (!all && now_mono_ms < a->next_flush_mono_ms) {
		next = a->next_flush_mono_ms;
		pthread_mutex_unlock(&a->lock);
		return next;
	}
	/* The summaries are logged outside the lock; without memory for them, the next
	 * flush tries again (nothing is counted twice or dropped). */
	lines = calloc(a->used + 1, sizeof(*lines));
	old = calloc(a->cap, sizeof(*old));
	if (lines == NULL || old == NULL) {
		free(lines);
		free(old);
		next = a->next_flush_mono_ms = now_mono_ms + a->interval_ms;
		pthread_mutex_unlock(&a->lock);
		return next;
	}
	for (size_t i = 0; i < a->cap; i++) {
		struct audit_entry *t = &a->table[i];

		if (!t->used)
			continue;
		if (t->repeats > 0) {
			lines[nlines++] = *t;
			t->repeats = 0;
			if (all)
				t->used = false;
		} else {
			/* Idle for a whole interval: its next read is logged at once. */
			t->used = false;
		}
	}
	memcpy(old, a->table, a->cap * sizeof(*old));
	rehash(a, old);
	overflow = a->overflow;
	a->overflow = 0;
	next = a->next_flush_mono_ms = now_mono_ms + a->interval_ms;
	pthread_mutex_unlock(&a->lock);

	for (size_t i = 0; i < nlines; i++)
		log_entry(&lines[i], true, a->interval_ms);
	if (overflow > 0)
		lk_log(LK_INFO, "reads not itemised", LK_INT("reads", overflow),
		       LK_INT("interval_ms", a->interval_ms),
		       LK_STR("why", "the audit table was full"));
	free(lines);
	free(old);
	return next;
}
