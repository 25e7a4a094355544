/* snapshot.c — immutable, reference-counted versions of a secret.
 *
 * Everything a read needs is rendered once per version into one arena block: the response
 * body of GET /v1/secrets/{name}, whose "data" member is the canonical data JSON (for
 * digests and relabelling, pointed into rather than copied), and a sorted table of key ->
 * value for GET /v1/secrets/{name}/{key}. The data is capped at LK_SECRET_MAX, the most a
 * backend answer can carry; the block holds it about twice. A read takes a
 * reference and hands the body to the HTTP server as a borrowed response; the block is
 * zeroed when the last reference goes.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

int
broker_data_digest(struct broker_arena *a, const json_t *data, unsigned char out[32])
{
	size_t n = json_dumpb(data, NULL, 0, DUMP_FLAGS);
	char *tmp;

	if (n == 0)
		return -EINVAL;
	if (n > LK_SECRET_MAX)
		return -E2BIG;
	tmp = broker_arena_alloc(a, n);
	if (tmp == NULL)
		return errno == ENOLCK ? -ENOLCK : -ENOMEM;
	json_dumpb(data, tmp, n, DUMP_FLAGS);
	crypto_generichash(out, 32, (const unsigned char *)tmp, n, NULL, 0);
	broker_arena_release(a, tmp);
	return 0;
}

struct key_ref {
	const char *key;
	json_t *value;
};

static int
key_cmp(const void *x, const void *y)
{
	return strcmp(((const struct key_ref *)x)->key, ((const struct key_ref *)y)->key);
}

static size_t
value_len(json_t *v)
{
	if (json_is_string(v))
		return json_string_length(v);
	return json_dumpb(v, NULL, 0, DUMP_FLAGS);
}

int
broker_snapshot_new(struct broker_arena *a, const char *name, uint64_t version,
		    const json_t *data, const struct broker_lease_info *lease,
		    struct broker_snapshot **ret)
{
	char prefix[BROKER_NAME_MAX + 96], suffix[160], expires[LK_RFC3339_LEN + 2];
	struct broker_snapshot *s = NULL;
	struct key_ref *refs = NULL;
	size_t nkeys, data_len, plen, slen, total, off, i = 0;
	const char *key;
	json_t *v;
	char *mem;
	int rc = 0;

	if (!json_is_object(data) || !broker_name_valid(name))
		return -EINVAL;
	nkeys = json_object_size(data);
	if (nkeys > BROKER_KEYS_MAX)
		return -E2BIG;
	data_len = json_dumpb(data, NULL, 0, DUMP_FLAGS);
	if (data_len == 0)
		return -EINVAL;
	if (data_len > LK_SECRET_MAX)
		return -E2BIG;
	plen = (size_t)snprintf(prefix, sizeof(prefix), "{\"name\":\"%s\",\"version\":%llu,\"data\":",
				name, (unsigned long long)version);
	if (lease->expires_real_ms > 0) {
		expires[0] = '"';
		lk_rfc3339_ms(lease->expires_real_ms, expires + 1);
		strcat(expires, "\"");
	} else {
		strcpy(expires, "null");
	}
	slen = (size_t)snprintf(suffix, sizeof(suffix),
				",\"lease\":{\"renewable\":%s,\"ttl\":%lld,\"expires_at\":%s}}\n",
				lease->renewable ? "true" : "false", (long long)lease->ttl_s, expires);

	refs = calloc(nkeys ? nkeys : 1, sizeof(*refs));
	if (refs == NULL)
		return -ENOMEM;
	json_object_foreach((json_t *)data, key, v) {
		refs[i].key = key;
		refs[i].value = v;
		i++;
	}
	qsort(refs, nkeys, sizeof(*refs), key_cmp);

	/* body + NUL, padding, table, then key and value strings. */
	total = plen + data_len + slen + 1;
	total = (total + 15) & ~(size_t)15;
	off = total;
	total += nkeys * sizeof(struct broker_kv);
	for (i = 0; i < nkeys; i++)
		total += strlen(refs[i].key) + 1 + value_len(refs[i].value) + 1;
	/* Values are no longer than their JSON in data: the bound holds by construction. */
	if (total > BROKER_SNAPSHOT_BLOCK_MAX) {
		rc = -E2BIG;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	errno = 0;
	mem = s != NULL ? broker_arena_alloc(a, total) : NULL;
	if (mem == NULL) {
		rc = errno == ENOLCK ? -ENOLCK : -ENOMEM;
		goto out;
	}
	s->mem = mem;
	s->arena = a;
	atomic_init(&s->refs, 1);
	s->version = version;
	s->lease = *lease;

	memcpy(mem, prefix, plen);
	json_dumpb(data, mem + plen, data_len, DUMP_FLAGS);
	memcpy(mem + plen + data_len, suffix, slen);
	s->body = mem;
	s->body_len = plen + data_len + slen;
	mem[s->body_len] = '\0';
	s->data_json = mem + plen;
	s->data_len = data_len;
	crypto_generichash(s->digest, sizeof(s->digest), (const unsigned char *)s->data_json,
			   data_len, NULL, 0);

	s->keys = (struct broker_kv *)(void *)(mem + off);
	s->nkeys = nkeys;
	{
		char *p = mem + off + nkeys * sizeof(struct broker_kv);

		for (i = 0; i < nkeys; i++) {
			size_t kl = strlen(refs[i].key), vl = value_len(refs[i].value);

			memcpy(p, refs[i].key, kl + 1);
			s->keys[i].key = p;
			p += kl + 1;
			if (json_is_string(refs[i].value))
				memcpy(p, json_string_value(refs[i].value), vl);
			else
				json_dumpb(refs[i].value, p, vl, DUMP_FLAGS);
			p[vl] = '\0';
			s->keys[i].value = p;
			s->keys[i].value_len = vl;
			p += vl + 1;
		}
	}
	*ret = s;
	s = NULL;
out:
	free(refs);
	free(s);
	return rc;
}

int
broker_snapshot_relabel(const struct broker_snapshot *old, const char *name,
			const struct broker_lease_info *lease, struct broker_snapshot **ret)
{
	json_t *data;
	int rc;

	/* A value may hold a NUL byte (render.c reads the data the same way). */
	data = json_loadb(old->data_json, old->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (data == NULL)
		return -ENOMEM;
	rc = broker_snapshot_new(old->arena, name, old->version, data, lease, ret);
	json_decref(data);
	return rc;
}

struct broker_snapshot *
broker_snapshot_ref(struct broker_snapshot *s)
{
	if (s != NULL)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void
broker_snapshot_unref(struct broker_snapshot *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	broker_arena_release(s->arena, s->mem);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

void
broker_snapshot_release(void *s)
{
	broker_snapshot_unref(s);
}

const struct broker_kv *
broker_snapshot_key(const struct broker_snapshot *s, const char *key)
{
	size_t lo = 0, hi = s->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, s->keys[mid].key);

		if (c == 0)
			return &s->keys[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool
broker_snapshot_expired(const struct broker_snapshot *s, int64_t now_mono_ms)
{
	int64_t left, left_real;

	if (s->lease.expires_mono_ms <= 0)
		return false;
	left = s->lease.expires_mono_ms - now_mono_ms;
	if (left <= 0)
		return true;
	if (s->lease.expires_real_ms <= 0 || left > BROKER_CLOCK_DRIFT_MAX_MS)
		return false;
	/* The expiry it states (expires_at, wall clock) counts too: the two clocks drift
	 * apart by a little while a lease runs (NTP slews the wall clock), and a credential is
	 * not served with a stated expiry in the past. A wall clock that jumped (a step, a
	 * resumed machine) moves the end by BROKER_CLOCK_DRIFT_MAX_MS at the most. */
	left_real = s->lease.expires_real_ms - lk_now_real_ms();
	return left_real <= 0;
}
