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
/* Slots a table starts with; it doubles as reads arrive, up to the bound given. */
#define AUDIT_CAP_INITIAL 16

/* Entries are small and their names live in one allocation each, made at the first read
 * (which writes a log line anyway): a table sized for the bound would cost ~300 bytes a
 * slot, touched in full at every flush. */
struct audit_entry {
	uint64_t hash;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool used;
	bool peer_known;
	bool has_key;
	bool key_cut;                /* key longer than AUDIT_KEY_MAX: logged cut, with "..." */
	uint64_t version;
	const char *result;          /* a static string */
	char *names;                 /* owned: "secret\0key\0", both as cut for the log */
	size_t secret_len;
	size_t key_len;              /* bytes of the key kept (before the "...") */
	unsigned long long repeats;  /* since the last line */
};

struct broker_audit {
	pthread_mutex_t lock;
	struct audit_entry *table;
	size_t cap;                  /* a power of two */
	size_t max_cap;              /* the bound: at most half of it used */
	size_t used;
	int64_t interval_ms;
	int64_t next_flush_mono_ms;
	unsigned long long overflow; /* reads not itemised since the last line */
};

struct broker_audit *
broker_audit_new(size_t max_entries, int64_t interval_ms)
{
	struct broker_audit *a = calloc(1, sizeof(*a));
	size_t max_cap = 4;

	if (a == NULL)
		return NULL;
	/* Open addressing at most half full. */
	while (max_cap < 2 * max_entries)
		max_cap *= 2;
	a->max_cap = max_cap;
	a->cap = max_cap < AUDIT_CAP_INITIAL ? max_cap : AUDIT_CAP_INITIAL;
	a->table = calloc(a->cap, sizeof(*a->table));
	if (a->table == NULL || pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a->table);
		free(a);
		return NULL;
	}
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
	for (size_t i = 0; i < a->cap; i++)
		free(a->table[i].names);
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
	char key[AUDIT_KEY_MAX + 1];
	const char *secret = e->names;

	if (e->has_key)
		snprintf(key, sizeof(key), "%s%s", e->names + e->secret_len + 1,
			 e->key_cut ? "..." : "");
	if (!summary) {
		lk_log(LK_INFO, "read", LK_INT("pid", e->peer_known ? e->pid : -1),
		       LK_INT("uid", e->peer_known ? (int64_t)e->uid : -1),
		       LK_INT("gid", e->peer_known ? (int64_t)e->gid : -1), LK_STR("secret", secret),
		       LK_STR("key", e->has_key ? key : NULL), LK_INT("version", e->version),
		       LK_STR("result", e->result));
		return;
	}
	lk_log(LK_INFO, "read", LK_INT("pid", e->peer_known ? e->pid : -1),
	       LK_INT("uid", e->peer_known ? (int64_t)e->uid : -1),
	       LK_INT("gid", e->peer_known ? (int64_t)e->gid : -1), LK_STR("secret", secret),
	       LK_STR("key", e->has_key ? key : NULL), LK_INT("version", e->version),
	       LK_STR("result", e->result), LK_INT("repeats", e->repeats),
	       LK_INT("interval_ms", interval_ms));
}

/* The slot for hash h: the entry equal to probe, or the free slot where it would go.
 * a->lock held; the table is never full. */
static struct audit_entry *
table_find(struct audit_entry *table, size_t cap, const struct audit_entry *probe,
	   const char *secret, const char *key)
{
	for (size_t i = probe->hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
		struct audit_entry *t = &table[i];

		if (!t->used)
			return t;
		if (t->hash == probe->hash && t->pid == probe->pid && t->uid == probe->uid &&
		    t->gid == probe->gid && t->peer_known == probe->peer_known &&
		    t->version == probe->version && t->result == probe->result &&
		    t->has_key == probe->has_key && t->key_cut == probe->key_cut &&
		    t->secret_len == probe->secret_len && t->key_len == probe->key_len &&
		    memcmp(t->names, secret, probe->secret_len) == 0 &&
		    (!probe->has_key || memcmp(t->names + t->secret_len + 1, key, probe->key_len) == 0))
			return t;
	}
}

/* Moves the used entries of old (old_cap slots) into table (cap slots, zeroed). */
static void
table_move(struct audit_entry *table, size_t cap, const struct audit_entry *old, size_t old_cap)
{
	for (size_t k = 0; k < old_cap; k++) {
		size_t i;

		if (!old[k].used)
			continue;
		for (i = old[k].hash & (cap - 1); table[i].used; i = (i + 1) & (cap - 1))
			;
		table[i] = old[k];
	}
}

void
broker_audit_read(struct broker_audit *a, const struct lk_peer *peer, const char *secret,
		  const char *key, uint64_t version, const char *result)
{
	struct audit_entry probe = { 0 }, *e;
	uint64_t h = 1469598103934665603ULL;
	size_t secret_len = secret != NULL ? strlen(secret) : 0;
	size_t key_len = key != NULL ? strlen(key) : 0;

	if (secret == NULL)
		secret = "";
	probe.peer_known = peer != NULL && peer->known;
	if (probe.peer_known) {
		probe.pid = peer->pid;
		probe.uid = peer->uid;
		probe.gid = peer->gid;
	}
	probe.version = version;
	probe.result = result;
	probe.secret_len = secret_len > BROKER_NAME_MAX ? BROKER_NAME_MAX : secret_len;
	probe.has_key = key != NULL;
	if (key_len > AUDIT_KEY_MAX) {
		probe.key_cut = true;
		key_len = AUDIT_KEY_MAX - 3;
	}
	probe.key_len = key_len;

	h = mix(h, &probe.pid, sizeof(probe.pid));
	h = mix(h, &probe.uid, sizeof(probe.uid));
	h = mix(h, &probe.gid, sizeof(probe.gid));
	h = mix(h, &probe.version, sizeof(probe.version));
	h = mix(h, result, strlen(result));
	h = mix(h, secret, probe.secret_len);
	h = mix(h, &probe.has_key, 1);
	h = mix(h, &probe.key_cut, 1);
	if (probe.has_key)
		h = mix(h, key, probe.key_len);
	probe.hash = h;

	pthread_mutex_lock(&a->lock);
	e = table_find(a->table, a->cap, &probe, secret, key);
	if (e->used) {
		e->repeats++;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	if (2 * (a->used + 1) > a->cap) {
		struct audit_entry *grown = NULL;

		if (a->cap < a->max_cap)
			grown = calloc(a->cap * 2, sizeof(*grown));
		if (grown == NULL) {
			/* At the bound, or no memory to grow: counted, not itemised. */
			a->overflow++;
			pthread_mutex_unlock(&a->lock);
			return;
		}
		table_move(grown, a->cap * 2, a->table, a->cap);
		free(a->table);
		a->table = grown;
		a->cap *= 2;
		e = table_find(a->table, a->cap, &probe, secret, key);
	}
	probe.names = malloc(probe.secret_len + probe.key_len + 2);
	if (probe.names == NULL) {
		a->overflow++;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	memcpy(probe.names, secret, probe.secret_len);
	probe.names[probe.secret_len] = '\0';
	if (probe.has_key)
		memcpy(probe.names + probe.secret_len + 1, key, probe.key_len);
	probe.names[probe.secret_len + 1 + probe.key_len] = '\0';
	probe.used = true;
	*e = probe;
	a->used++;
	pthread_mutex_unlock(&a->lock);
	/* Outside the lock: a log line is a write(2). The entry may be flushed meanwhile;
	 * the probe keeps no reference to its names. */
	{
		struct audit_entry line = probe;
		char names[BROKER_NAME_MAX + AUDIT_KEY_MAX + 2];

		memcpy(names, secret, probe.secret_len);
		names[probe.secret_len] = '\0';
		if (probe.has_key)
			memcpy(names + probe.secret_len + 1, key, probe.key_len);
		names[probe.secret_len + 1 + probe.key_len] = '\0';
		line.names = names;
		log_entry(&line, false, 0);
	}
}

static char *
names_copy(const struct audit_entry *e)
{
	size_t n = e->secret_len + e->key_len + 2;
	char *p = malloc(n);

	if (p != NULL)
		memcpy(p, e->names, n);
	return p;
}

int64_t
broker_audit_flush(struct broker_audit *a, int64_t now_mono_ms, bool all)
{
	struct audit_entry *lines = NULL, *table = NULL;
	unsigned long long overflow;
	size_t nlines = 0, cap, kept = 0;
	int64_t next;

	pthread_mutex_lock(&a->lock);
	if (!all && now_mono_ms < a->next_flush_mono_ms) {
		next = a->next_flush_mono_ms;
		pthread_mutex_unlock(&a->lock);
		return next;
	}
	/* What stays: the entries read again in this interval (none at the end). A table
	 * a quarter full or less shrinks, down to its first size. */
	if (!all)
		for (size_t i = 0; i < a->cap; i++)
			kept += a->table[i].used && a->table[i].repeats > 0;
	cap = a->cap;
	while (cap > AUDIT_CAP_INITIAL && 4 * kept <= cap / 2)
		cap /= 2;
	/* The summaries are logged outside the lock; without memory for them, the next
	 * flush tries again (nothing is counted twice or dropped). */
	lines = calloc(a->used + 1, sizeof(*lines));
	table = calloc(cap, sizeof(*table));
	if (lines == NULL || table == NULL) {
		free(lines);
		free(table);
		next = a->next_flush_mono_ms = now_mono_ms + a->interval_ms;
		pthread_mutex_unlock(&a->lock);
		return next;
	}
	for (size_t i = 0; i < a->cap; i++) {
		struct audit_entry *t = &a->table[i];

		if (!t->used)
			continue;
		if (t->repeats == 0 || all) {
			/* Idle for a whole interval (its next read is logged at once), or the
			 * end: the entry leaves, its names go with its line if it has one. */
			if (t->repeats > 0)
				lines[nlines++] = *t;
			else
				free(t->names);
			t->names = NULL;
			t->used = false;
			continue;
		}
		lines[nlines] = *t;
		lines[nlines].names = names_copy(t);
		if (lines[nlines].names == NULL)
			continue;       /* counted on: logged at the next flush */
		nlines++;
		t->repeats = 0;
	}
	table_move(table, cap, a->table, a->cap);
	free(a->table);
	a->table = table;
	a->cap = cap;
	a->used = kept;
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
	for (size_t i = 0; i < nlines; i++)
		free(lines[i].names);
	free(lines);
	return next;
}
