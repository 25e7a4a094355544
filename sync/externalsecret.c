/* externalsecret.c — the ExternalSecret reconciler (internal.h; docs/internals/sync.md).
 *
 * One pass: read the ExternalSecret from the cache; decide whether a refresh is due
 * (never synced, the spec or its labels changed, the interval passed, the Secret was
 * edited or removed by someone else); resolve the store; read every remote reference
 * (coalesced with other ExternalSecrets of the same path); build the desired Secret
 * (template, labels, ownerReference, content hashes); write it only when its content
 * hash or the Secret's own data differ; write the status; schedule the next refresh on
 * a grid that ExternalSecrets of the same store and paths share.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "crypto/crypto.h"
#include "manifest/manifest.h"

struct es_spec {
	const char *store_kind;
	const char *store_name;
	const char *target;
	const char *creation;       /* Owner, Orphan, Merge, None, CreateOrMerge */
	const char *deletion;       /* Retain, Delete, Merge */
	const char *policy;         /* Periodic, OnChange, CreatedOnce */
	int64_t refresh_ms;         /* 0: once */
	const json_t *data;         /* spec.data (array or NULL) */
	const json_t *data_from;
	const json_t *tmpl;         /* spec.target.template (object or NULL) */
	const json_t *encryption;   /* spec.target.encryption (object or NULL) */
	bool immutable;
};

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool
one_of(const char *s, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(s, *allowed) == 0)
			return true;
	return false;
}

/* ---- hashes ------------------------------------------------------------------------- */

static void
hash_map(crypto_generichash_state *h, char tag, const json_t *obj)
{
	const char **keys;
	size_t n = json_object_size(obj), i = 0;
	const char *k;
	json_t *v;

	if (n == 0 || (keys = calloc(n, sizeof(*keys))) == NULL)
		return;
	json_object_foreach((json_t *)obj, k, v)
		keys[i++] = k;
	for (size_t a = 1; a < n; a++) {
		for (size_t b = a; b > 0 && strcmp(keys[b - 1], keys[b]) > 0; b--) {
			const char *t = keys[b];

			keys[b] = keys[b - 1];
			keys[b - 1] = t;
		}
	}
	for (i = 0; i < n; i++) {
		const char *val = json_string_value(json_object_get(obj, keys[i]));
		uint64_t len = val != NULL ? strlen(val) : 0;

		crypto_generichash_update(h, (const unsigned char *)&tag, 1);
		crypto_generichash_update(h, (const unsigned char *)keys[i], strlen(keys[i]) + 1);
		crypto_generichash_update(h, (const unsigned char *)&len, sizeof(len));
		if (val != NULL)
			crypto_generichash_update(h, (const unsigned char *)val, len);
	}
	free(keys);
}

void
sync_content_hash(const struct sync_ctx *ctx, const char *type, const json_t *labels,
		  const json_t *annotations, const json_t *data, char *out)
{
	crypto_generichash_state h;
	unsigned char d[32];

	crypto_generichash_init(&h, ctx->hash_key, sizeof(ctx->hash_key), sizeof(d));
	crypto_generichash_update(&h, (const unsigned char *)(type != NULL ? type : ""),
				  strlen(type != NULL ? type : "") + 1);
	hash_map(&h, 'l', labels);
	hash_map(&h, 'a', annotations);
	hash_map(&h, 'd', data);
	crypto_generichash_final(&h, d, sizeof(d));
	(void)lk_hex_encode(d, sizeof(d), out, 65);
	sodium_memzero(&h, sizeof(h));
}

/* "GENERATION-HASH(labels, annotations)": changes with the spec and with the metadata a
 * force-sync annotation lives in (ESO's syncedResourceVersion, its hash ours). */
static void
synced_version(const json_t *es, char *out, size_t outlen)
{
	const json_t *meta = json_object_get(es, "metadata");
	crypto_generichash_state h;
	unsigned char d[16];
	char hex[33];

	crypto_generichash_init(&h, NULL, 0, sizeof(d));
	hash_map(&h, 'l', json_object_get(meta, "labels"));
	hash_map(&h, 'a', json_object_get(meta, "annotations"));
	crypto_generichash_final(&h, d, sizeof(d));
	(void)lk_hex_encode(d, sizeof(d), hex, sizeof(hex));
	snprintf(out, outlen, "%lld-%s",
		 (long long)json_integer_value(json_object_get(meta, "generation")), hex);
}

/* The refresh grid of an ExternalSecret: points `interval` apart, shifted by a phase in
 * [0, interval) hashed from the store (with the namespace of a SecretStore) and the
 * remote keys. ExternalSecrets that read the same paths through the same store share the
 * grid, whenever each was created or last synced, so that their reads meet within the
 * coalescing window; other paths and stores spread over the interval. */
static int64_t
phase_of(const struct es_spec *s, const char *ns)
{
	crypto_generichash_state h;
	uint32_t v;
	json_t *it;
	size_t i;

	crypto_generichash_init(&h, NULL, 0, sizeof(v));
	crypto_generichash_update(&h, (const unsigned char *)s->store_kind, strlen(s->store_kind) + 1);
	if (strcmp(s->store_kind, "ClusterSecretStore") != 0)
		crypto_generichash_update(&h, (const unsigned char *)ns, strlen(ns) + 1);
	crypto_generichash_update(&h, (const unsigned char *)s->store_name, strlen(s->store_name) + 1);
	json_array_foreach(s->data, i, it) {
		const char *k = str(json_object_get(it, "remoteRef"), "key");

		if (k != NULL)
			crypto_generichash_update(&h, (const unsigned char *)k, strlen(k) + 1);
	}
	json_array_foreach(s->data_from, i, it) {
		const char *k = str(json_object_get(it, "extract"), "key");

		if (k != NULL)
			crypto_generichash_update(&h, (const unsigned char *)k, strlen(k) + 1);
	}
	crypto_generichash_final(&h, (unsigned char *)&v, sizeof(v));
	return (int64_t)((double)v / 4294967296.0 * (double)s->refresh_ms);
}

/* The first grid point after t (ms, real time): in (t, t + interval]. The first interval
 * after a create, a spec change or a failure is shorter than refreshInterval, never
 * longer; every later one is refreshInterval exactly, without drift. */
static int64_t
next_refresh(const struct es_spec *s, const char *ns, int64_t t)
{
	int64_t phase = phase_of(s, ns), d = t - phase, k;

	k = d >= 0 ? d / s->refresh_ms : -((-d + s->refresh_ms - 1) / s->refresh_ms);
	return phase + (k + 1) * s->refresh_ms;
}

/* ---- the spec ----------------------------------------------------------------------- */

static int
spec_fail(struct lk_error *err, const char *field, const char *what)
{
	return lk_error_set(err, -EINVAL, "%s: %s", field, what);
}

static int
parse_spec(const json_t *es, struct es_spec *s, struct lk_error *err)
{
	static const char *const creations[] = { "Owner", "Orphan", "Merge", "None", "CreateOrMerge", NULL };
	static const char *const deletions[] = { "Retain", "Delete", "Merge", NULL };
	static const char *const policies[] = { "Periodic", "OnChange", "CreatedOnce", NULL };
	static const char *const decodings[] = { "", "None", "Auto", "Base64", "Base64URL", NULL };
	const json_t *spec = json_object_get(es, "spec"), *ref, *target, *it, *ri;
	const char *name = str(json_object_get(es, "metadata"), "name"), *v;
	char field[96];
	size_t i;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(spec))
		return spec_fail(err, "spec", "required");
	ref = json_object_get(spec, "secretStoreRef");
	s->store_name = str(ref, "name");
	s->store_kind = str(ref, "kind") != NULL ? str(ref, "kind") : "SecretStore";
	if (s->store_name == NULL || s->store_name[0] == '\0')
		return spec_fail(err, "spec.secretStoreRef.name", "required");
	if (strcmp(s->store_kind, "SecretStore") != 0 && strcmp(s->store_kind, "ClusterSecretStore") != 0)
		return spec_fail(err, "spec.secretStoreRef.kind", "expected SecretStore or ClusterSecretStore");
	target = json_object_get(spec, "target");
	s->target = str(target, "name") != NULL ? str(target, "name") : name;
	if (!lk_manifest_subdomain_valid(s->target))
		return spec_fail(err, "spec.target.name", "expected a DNS-1123 subdomain (lowercase "
				 "letters, digits, '-' and '.', at most 253 characters)");
	s->creation = str(target, "creationPolicy") != NULL ? str(target, "creationPolicy") : "Owner";
	if (!one_of(s->creation, creations))
		return spec_fail(err, "spec.target.creationPolicy", "expected Owner, Orphan, Merge, None or CreateOrMerge");
	s->deletion = str(target, "deletionPolicy") != NULL ? str(target, "deletionPolicy") : "Retain";
	if (!one_of(s->deletion, deletions))
		return spec_fail(err, "spec.target.deletionPolicy", "expected Retain, Delete or Merge");
	s->immutable = json_is_true(json_object_get(target, "immutable"));
	s->encryption = json_object_get(target, "encryption");
	if (sync_encryption_check(s->encryption, "spec.target.encryption", err) < 0)
		return -EINVAL;
	s->tmpl = json_object_get(target, "template");
	if (s->tmpl != NULL && !json_is_object(s->tmpl))
		return spec_fail(err, "spec.target.template", "expected an object");
	if (s->tmpl != NULL && json_object_get(s->tmpl, "templateFrom") != NULL)
		return spec_fail(err, "spec.target.template.templateFrom", "not supported: put the "
				 "templates in spec.target.template.data");
	if ((v = str(s->tmpl, "mergePolicy")) != NULL && strcmp(v, "Replace") != 0 && strcmp(v, "Merge") != 0)
		return spec_fail(err, "spec.target.template.mergePolicy", "expected Replace or Merge");
	s->policy = str(spec, "refreshPolicy") != NULL ? str(spec, "refreshPolicy") : "Periodic";
	if (!one_of(s->policy, policies))
		return spec_fail(err, "spec.refreshPolicy", "expected Periodic, OnChange or CreatedOnce");
	s->refresh_ms = SYNC_REFRESH_DEFAULT_MS;
	if ((v = str(spec, "refreshInterval")) != NULL) {
		if (lk_duration_parse(v, &s->refresh_ms) < 0)
			return spec_fail(err, "spec.refreshInterval", "expected a duration such as 1h or 15m (0: once)");
	} else if (json_is_integer(json_object_get(spec, "refreshInterval"))) {
		s->refresh_ms = json_integer_value(json_object_get(spec, "refreshInterval")) * 1000;
	}
	if (s->refresh_ms < 0)
		return spec_fail(err, "spec.refreshInterval", "must not be negative");
	s->data = json_object_get(spec, "data");
	s->data_from = json_object_get(spec, "dataFrom");
	if ((s->data != NULL && !json_is_array(s->data)) ||
	    (s->data_from != NULL && !json_is_array(s->data_from)))
		return spec_fail(err, "spec.data", "data and dataFrom must be lists");
	if (json_array_size(s->data) + json_array_size(s->data_from) == 0)
		return spec_fail(err, "spec", "expected data or dataFrom");
	if (json_array_size(s->data) + json_array_size(s->data_from) > SYNC_REFS_MAX)
		return spec_fail(err, "spec.data", "more than 1024 references");
	json_array_foreach(s->data, i, it) {
		const char *sk = str(it, "secretKey");

		ri = json_object_get(it, "remoteRef");
		snprintf(field, sizeof(field), "spec.data[%zu]", i);
		if (sk == NULL || !lk_manifest_secret_key_valid(sk, strlen(sk))) {
			snprintf(field, sizeof(field), "spec.data[%zu].secretKey", i);
			return spec_fail(err, field, "expected a Secret key ([-._a-zA-Z0-9]+)");
		}
		if (str(ri, "key") == NULL || str(ri, "key")[0] == '\0') {
			snprintf(field, sizeof(field), "spec.data[%zu].remoteRef.key", i);
			return spec_fail(err, field, "required");
		}
		if ((v = str(ri, "decodingStrategy")) != NULL && !one_of(v, decodings)) {
			snprintf(field, sizeof(field), "spec.data[%zu].remoteRef.decodingStrategy", i);
			return spec_fail(err, field, "expected None, Auto, Base64 or Base64URL");
		}
		if (json_object_get(it, "sourceRef") != NULL) {
			snprintf(field, sizeof(field), "spec.data[%zu].sourceRef", i);
			return spec_fail(err, field, "not supported: one store per ExternalSecret");
		}
	}
	json_array_foreach(s->data_from, i, it) {
		ri = json_object_get(it, "extract");
		if (ri == NULL) {
			snprintf(field, sizeof(field), "spec.dataFrom[%zu]", i);
			return spec_fail(err, field, json_object_get(it, "find") != NULL ?
					 "find is not supported: use extract" : "expected extract");
		}
		if (json_object_get(it, "rewrite") != NULL) {
			snprintf(field, sizeof(field), "spec.dataFrom[%zu].rewrite", i);
			return spec_fail(err, field, "not supported");
		}
		if (str(ri, "key") == NULL || str(ri, "key")[0] == '\0') {
			snprintf(field, sizeof(field), "spec.dataFrom[%zu].extract.key", i);
			return spec_fail(err, field, "required");
		}
		if ((v = str(ri, "decodingStrategy")) != NULL && !one_of(v, decodings)) {
			snprintf(field, sizeof(field), "spec.dataFrom[%zu].extract.decodingStrategy", i);
			return spec_fail(err, field, "expected None, Auto, Base64 or Base64URL");
		}
	}
	return 0;
}

int
sync_externalsecret_check(const json_t *es, struct lk_error *err)
{
	struct es_spec s;

	return parse_spec(es, &s, err);
}

/* ---- fetching ----------------------------------------------------------------------- */

/* The refresh interval's tenth, capped by --coalesce-window: how old a read another
 * ExternalSecret made may be to serve this one. */
static int64_t
max_age(const struct sync_ctx *ctx, const struct es_spec *s)
{
	int64_t m = s->refresh_ms > 0 ? s->refresh_ms / 10 : ctx->opt.coalesce_ms;

	return m < ctx->opt.coalesce_ms ? m : ctx->opt.coalesce_ms;
}

/* Puts value (taken) into data as base64 under key. */
static int
put_b64(json_t *data, const char *key, struct lk_secret *value)
{
	char *b64 = NULL;
	int r;

	r = lk_b64_encode(lk_secret_bytes(value), lk_secret_len(value), LK_B64_STD, &b64);
	lk_secret_free(value);
	if (r < 0)
		return r;
	r = json_object_set_new(data, key, json_string(b64)) == 0 ? 0 : -ENOMEM;
	sodium_memzero(b64, strlen(b64));
	free(b64);
	return r;
}

/* conversionStrategy Unicode: "_UXXXX_" in a key name stands for that character. */
static int
convert_key(const char *strategy, const char *k, char *out, size_t outlen)
{
	size_t o = 0;

	if (strategy == NULL || strategy[0] == '\0' || strcmp(strategy, "Default") == 0) {
		if ((size_t)snprintf(out, outlen, "%s", k) >= outlen)
			return -ENAMETOOLONG;
		return 0;
	}
	if (strcmp(strategy, "Unicode") != 0)
		return -EINVAL;
	while (*k != '\0') {
		unsigned cp;

		if (k[0] == '_' && k[1] == 'U' && sscanf(k + 2, "%4x", &cp) == 1 &&
		    strspn(k + 2, "0123456789abcdefABCDEF") >= 4 && k[6] == '_') {
			/* UTF-8 of the code point (the BMP: four hex digits). */
			if (o + 4 >= outlen)
				return -ENAMETOOLONG;
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | (cp >> 6));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xe0 | (cp >> 12));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			k += 7;
		} else {
			if (o + 1 >= outlen)
				return -ENAMETOOLONG;
			out[o++] = *k++;
		}
	}
	out[o] = '\0';
	return 0;
}

/* Decodes and checks one value for a reference ri (remoteRef or extract). */
static int
finish_value(const json_t *ri, struct lk_secret **v)
{
	const char *nb = str(ri, "nullBytePolicy");
	int r;

	if ((r = sync_remote_decode(str(ri, "decodingStrategy"), v)) < 0)
		return r;
	if (nb != NULL && strcmp(nb, "Fail") == 0 &&
	    memchr(lk_secret_bytes(*v), '\0', lk_secret_len(*v)) != NULL)
		return -EILSEQ;
	return 0;
}

static bool
fetch_metadata(const json_t *ri)
{
	const char *mp = str(ri, "metadataPolicy");

	return mp != NULL && strcmp(mp, "Fetch") == 0;
}

/* Reads every reference into *ret (key -> base64): dataFrom in order, then data, later
 * ones winning over earlier ones. *ret_missing counts the references the backend does
 * not have; with every one missing, 0 is returned with an empty map. */
static int
fetch(struct sync_ctx *ctx, struct sync_store *st, const struct es_spec *s, json_t **ret,
      size_t *ret_missing, struct lk_error *err)
{
	json_t *out = json_object(), *it, *remote = NULL;
	size_t i, refs = 0, missing = 0;
	int r = 0;

	if (out == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	json_array_foreach(s->data_from, i, it) {
		const json_t *ex = json_object_get(it, "extract");
		const json_t *obj;
		const char *k;
		json_t *val;

		refs++;
		r = sync_store_read(st, str(ex, "key"), str(ex, "version"), fetch_metadata(ex),
				    max_age(ctx, s), &remote, err);
		if (r == -ENOENT) {
			missing++;
			r = 0;
			continue;
		}
		if (r < 0)
			goto fail;
		obj = remote;
		if (str(ex, "property") != NULL && str(ex, "property")[0] != '\0')
			obj = json_object_get(remote, str(ex, "property"));
		if (!json_is_object(obj)) {
			r = lk_error_set(err, -EINVAL, "spec.dataFrom[%zu].extract: the backend secret "
					 "%.200s%s%.100s is not a map of keys", i, str(ex, "key"),
					 str(ex, "property") != NULL ? " property " : "",
					 str(ex, "property") != NULL ? str(ex, "property") : "");
			goto fail;
		}
		json_object_foreach((json_t *)obj, k, val) {
			struct lk_secret *v = sync_remote_value(val);
			char key[LK_MANIFEST_NAME_MAX + 1];

			if (convert_key(str(ex, "conversionStrategy"), k, key, sizeof(key)) < 0 ||
			    !lk_manifest_secret_key_valid(key, strlen(key))) {
				lk_secret_free(v);
				r = lk_error_set(err, -EINVAL, "spec.dataFrom[%zu].extract: the backend "
						 "key '%.100s' is not a valid Secret key", i, k);
				goto fail;
			}
			if (v == NULL || (r = finish_value(ex, &v)) < 0) {
				lk_secret_free(v);
				r = lk_error_set(err, v == NULL ? -ENOMEM : -EINVAL,
						 "spec.dataFrom[%zu].extract: key %.100s: %s", i, key,
						 r == -EILSEQ ? "a NUL byte (nullBytePolicy Fail)" : "cannot decode");
				goto fail;
			}
			if ((r = put_b64(out, key, v)) < 0) {
				r = lk_error_set(err, r, "out of memory");
				goto fail;
			}
		}
		json_decref(remote);
		remote = NULL;
	}
	json_array_foreach(s->data, i, it) {
		const json_t *ri = json_object_get(it, "remoteRef");
		struct lk_secret *v = NULL;

		refs++;
		r = sync_store_read(st, str(ri, "key"), str(ri, "version"), fetch_metadata(ri),
				    max_age(ctx, s), &remote, err);
		if (r == -ENOENT) {
			missing++;
			r = 0;
			continue;
		}
		if (r < 0)
			goto fail;
		r = sync_remote_property(remote, str(ri, "property"), &v);
		json_decref(remote);
		remote = NULL;
		if (r == -ENOENT) {
			r = lk_error_set(err, -ENOENT, "spec.data[%zu]: the backend secret %.200s has no "
					 "property %.100s", i, str(ri, "key"), str(ri, "property"));
			goto fail;
		}
		if (r == 0 && (r = finish_value(ri, &v)) < 0) {
			lk_secret_free(v);
			r = lk_error_set(err, -EINVAL, "spec.data[%zu]: %s", i, r == -EILSEQ ?
					 "the value holds a NUL byte (nullBytePolicy Fail)" :
					 "the value does not decode with its decodingStrategy");
			goto fail;
		}
		if (r < 0 || (r = put_b64(out, str(it, "secretKey"), v)) < 0) {
			r = lk_error_set(err, r, "out of memory");
			goto fail;
		}
	}
	if (missing > 0 && missing < refs) {
		r = lk_error_set(err, -ENOENT, "could not get secret data from provider: %zu of %zu "
				 "references are not in the backend", missing, refs);
		goto fail;
	}
	*ret = out;
	*ret_missing = missing;
	return 0;
fail:
	json_decref(remote);
	json_decref(out);
	return r;
}

/* ---- the desired Secret ------------------------------------------------------------- */

struct desired {
	const char *type;
	json_t *data;               /* key -> base64, as written */
	json_t *labels;             /* all the labels the controller sets */
	json_t *annotations;        /* all the annotations it sets */
	json_t *tmpl_labels, *tmpl_annotations;
	json_t *finalizers;         /* template finalizers, or NULL */
	char content_hash[65];
	char data_hash[65];
};

static void
desired_clear(struct desired *d)
{
	json_decref(d->data);
	json_decref(d->labels);
	json_decref(d->annotations);
	json_decref(d->tmpl_labels);
	json_decref(d->tmpl_annotations);
	json_decref(d->finalizers);
	memset(d, 0, sizeof(*d));
}

static int
build_desired(struct sync_ctx *ctx, const json_t *es, const struct es_spec *s, json_t *fetched,
	      struct desired *d, struct lk_error *err)
{
	const json_t *tmeta = json_object_get(s->tmpl, "metadata");
	const json_t *tdata = json_object_get(s->tmpl, "data");
	const char *merge = str(s->tmpl, "mergePolicy");
	char owner[80];
	const char *k;
	json_t *v;
	int r;

	memset(d, 0, sizeof(*d));
	d->type = str(s->tmpl, "type") != NULL ? str(s->tmpl, "type") : "Opaque";
	/* Types whose Secrets Kubernetes fills or acts on by itself. */
	if (strcmp(d->type, "bootstrap.kubernetes.io/token") == 0 ||
	    (strcmp(d->type, "kubernetes.io/service-account-token") == 0 &&
	     json_object_get(json_object_get(tmeta, "annotations"), "kubernetes.io/service-account.name") != NULL))
		return lk_error_set(err, -EINVAL, "spec.target.template.type: %s Secrets are not "
				    "written by latchkey", d->type);
	d->finalizers = json_is_array(json_object_get(tmeta, "finalizers")) ?
		json_incref(json_object_get(tmeta, "finalizers")) : NULL;
	d->tmpl_labels = json_is_object(json_object_get(tmeta, "labels")) ?
		json_deep_copy(json_object_get(tmeta, "labels")) : json_object();
	d->tmpl_annotations = json_is_object(json_object_get(tmeta, "annotations")) ?
		json_deep_copy(json_object_get(tmeta, "annotations")) : json_object();
	if (json_is_object(tdata) && json_object_size(tdata) > 0) {
		/* Replace (the default): the template's keys only; Merge: the fetched data
		 * with the template's keys over it. */
		d->data = merge != NULL && strcmp(merge, "Merge") == 0 ? json_deep_copy(fetched) :
			  json_object();
		json_object_foreach((json_t *)tdata, k, v) {
			struct lk_secret *out = NULL;

			if (!json_is_string(v) || !lk_manifest_secret_key_valid(k, strlen(k))) {
				r = lk_error_set(err, -EINVAL, "spec.target.template.data.%.100s: expected a "
						 "text under a valid Secret key", k);
				goto fail;
			}
			if ((r = sync_template_render(json_string_value(v), fetched, &out, err)) < 0) {
				lk_error_prefix(err, "spec.target.template.data.%.100s", k);
				goto fail;
			}
			if ((r = put_b64(d->data, k, out)) < 0) {
				r = lk_error_set(err, r, "out of memory");
				goto fail;
			}
		}
	} else {
		d->data = json_incref(fetched);
	}
	d->labels = json_deep_copy(d->tmpl_labels);
	d->annotations = json_deep_copy(d->tmpl_annotations);
	if (d->data == NULL || d->labels == NULL || d->annotations == NULL ||
	    d->tmpl_labels == NULL || d->tmpl_annotations == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	json_object_foreach(d->labels, k, v) {
		if (!json_is_string(v)) {
			r = lk_error_set(err, -EINVAL, "spec.target.template.metadata.labels.%.100s: expected a string", k);
			goto fail;
		}
	}
	json_object_foreach(d->annotations, k, v) {
		if (!json_is_string(v)) {
			r = lk_error_set(err, -EINVAL, "spec.target.template.metadata.annotations.%.100s: expected a string", k);
			goto fail;
		}
	}
	if (strcmp(s->creation, "Merge") != 0 && strcmp(s->creation, "CreateOrMerge") != 0) {
		sync_owner_label(str(json_object_get(es, "metadata"), "name"), owner, sizeof(owner));
		json_object_set_new(d->labels, SYNC_LABEL_MANAGED, json_string("true"));
		json_object_set_new(d->labels, SYNC_LABEL_OWNER, json_string(owner));
		if (ctx->opt.compat_eso)
			json_object_set_new(d->labels, SYNC_LABEL_ESO_MANAGED, json_string("true"));
	}
	if (s->encryption != NULL) {
		/* The recipient's id is in the content hash (a new recipient re-encrypts), which
		 * is over the plaintext: lk1 sealing is randomised, the hash says when the
		 * values changed. */
		struct lk_key *rcpt = NULL;
		const char *ns = str(json_object_get(es, "metadata"), "namespace");
		json_t *own = json_deep_copy(d->data);   /* sealed in place: not the fetched data */

		json_decref(d->data);
		if ((d->data = own) == NULL) {
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		if ((r = sync_encryption_recipient(ctx, s->encryption, "spec.target.encryption",
						   ns, max_age(ctx, s), &rcpt, err)) < 0)
			goto fail;
		json_object_set_new(d->tmpl_annotations, SYNC_ANNOT_RECIPIENT, json_string(lk_key_id(rcpt)));
		json_object_set_new(d->annotations, SYNC_ANNOT_RECIPIENT, json_string(lk_key_id(rcpt)));
		sync_content_hash(ctx, d->type, d->tmpl_labels, d->tmpl_annotations, d->data,
				  d->content_hash);
		r = sync_encryption_seal(rcpt, ns, s->target, d->data, err);
		lk_key_free(rcpt);
		if (r < 0) {
			lk_error_prefix(err, "spec.target.encryption");
			goto fail;
		}
	} else {
		sync_content_hash(ctx, d->type, d->tmpl_labels, d->tmpl_annotations, d->data,
				  d->content_hash);
	}
	sync_content_hash(ctx, NULL, NULL, NULL, d->data, d->data_hash);
	json_object_set_new(d->annotations, SYNC_ANNOT_CONTENT, json_string(d->content_hash));
	json_object_set_new(d->annotations, SYNC_ANNOT_DATA, json_string(d->data_hash));
	return 0;
fail:
	desired_clear(d);
	return r;
}

/* ---- writing the Secret ------------------------------------------------------------- */

/* The current Secret with its data's hash: from the cache of managed Secrets, else from
 * the API (Merge targets are not labelled as ours). *ret NULL when there is none. */
static int
current_secret(struct sync_ctx *ctx, const char *ns, const struct es_spec *s, bool from_api,
	       json_t **ret, struct lk_error *err)
{
	return sync_secret_current(ctx, ns, s->target, from_api || strcmp(s->creation, "Merge") == 0,
				   ret, err);
}

static void
count_write(struct sync_ctx *ctx)
{
	sync_count_write(ctx, "ExternalSecret");
}

/* Creates or replaces the target Secret (Owner, Orphan, CreateOrMerge). Returns 0,
 * 1 when nothing needed writing, or < 0 with err. */
static int
write_owned(struct sync_ctx *ctx, const json_t *es, const char *ns, const struct es_spec *s,
	    const struct desired *d, struct lk_error *err)
{
	const struct sync_secret_want w = {
		.kind = "ExternalSecret", .ns = ns, .name = s->target, .owner = es,
		.owner_ref = strcmp(s->creation, "Owner") == 0, .owner_label = SYNC_LABEL_OWNER,
		.adopt = SYNC_ADOPT_ANY, .type = d->type, .data = d->data, .labels = d->labels,
		.annotations = d->annotations, .finalizers = d->finalizers,
		.immutable = s->immutable, .content_hash = d->content_hash,
	};

	return sync_secret_put(ctx, &w, err);
}

/* Creation policy Merge: only the keys and annotations of this ExternalSecret go into an
 * existing Secret (merge patch, optimistic on its resourceVersion). */
static int
write_merge(struct sync_ctx *ctx, const char *ns, const struct es_spec *s,
	    const struct desired *d, bool remove_keys, struct lk_error *err)
{
	struct lk_k8s_error kerr;
	json_t *cur = NULL, *patch, *data;
	const char *k;
	json_t *v;
	int r = 0;

	for (int attempt = 0; attempt < SYNC_CONFLICT_RETRIES; attempt++) {
		const json_t *cdata, *cann;
		bool same = true;

		json_decref(cur);
		cur = NULL;
		if ((r = current_secret(ctx, ns, s, true, &cur, err)) < 0)
			return r;
		if (cur == NULL)
			return remove_keys ? 1 : lk_error_set(err, -ENOENT, "secret will not be created "
							       "due to CreationPolicy=Merge (Secret %s/%s)",
							       ns, s->target);
		cdata = json_object_get(cur, "data");
		cann = json_object_get(json_object_get(cur, "metadata"), "annotations");
		json_object_foreach(d->data, k, v) {
			if (!json_equal(json_object_get(cdata, k), remove_keys ? NULL : v))
				same = false;
		}
		if (!remove_keys && str(cann, SYNC_ANNOT_CONTENT) != NULL &&
		    strcmp(str(cann, SYNC_ANNOT_CONTENT), d->content_hash) != 0)
			same = false;
		if (same && (remove_keys || str(cann, SYNC_ANNOT_CONTENT) != NULL)) {
			json_decref(cur);
			return 1;
		}
		if (json_is_true(json_object_get(cur, "immutable"))) {
			json_decref(cur);
			return lk_error_set(err, -EPERM, "could not update secret, target is immutable "
					    "(Secret %s/%s)", ns, s->target);
		}
		if (!sync_may_write(ctx)) {
			json_decref(cur);
			return lk_error_set(err, -EAGAIN, "not the leader: the Secret is not written");
		}
		data = json_object();
		json_object_foreach(d->data, k, v)
			json_object_set(data, k, remove_keys ? json_null() : v);
		patch = json_pack("{s:{s:O, s:{s:s, s:s}}, s:o}", "metadata", "resourceVersion",
				  json_object_get(json_object_get(cur, "metadata"), "resourceVersion"),
				  "annotations", SYNC_ANNOT_CONTENT, d->content_hash,
				  SYNC_ANNOT_DATA, d->data_hash, "data", data);
		if (patch == NULL) {
			json_decref(cur);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		r = lk_k8s_patch(ctx->k8s, &lk_k8s_secrets, ns, s->target, NULL, LK_K8S_PATCH_MERGE,
				 patch, NULL, &kerr);
		json_decref(patch);
		if (r == 0) {
			count_write(ctx);
			break;
		}
		if (r != -ESTALE)
			break;
	}
	json_decref(cur);
	if (r < 0)
		return lk_error_set(err, r, "could not update secret: %s", kerr.base.msg);
	return 0;
}

/* The backend has none of the secrets: what deletionPolicy says. Sets *ret_message. */
static int
apply_deletion(struct sync_ctx *ctx, const json_t *es, const char *ns, const struct es_spec *s,
	       const char **ret_message, struct lk_error *err)
{
	struct lk_k8s_error kerr;
	json_t *cur = NULL;
	int r;

	if (strcmp(s->deletion, "Retain") == 0) {
		*ret_message = "secret retained due to DeletionPolicy=Retain";
		return 0;
	}
	if (strcmp(s->deletion, "Merge") == 0 || strcmp(s->creation, "Merge") == 0) {
		/* Remove the keys this ExternalSecret put there: they are the current Secret's
		 * keys named by the spec. */
		struct desired d;
		json_t *keys = json_object();
		json_t *it;
		size_t i;

		memset(&d, 0, sizeof(d));
		json_array_foreach(s->data, i, it)
			json_object_set_new(keys, str(it, "secretKey"), json_null());
		d.data = keys;
		d.type = "Opaque";
		r = write_merge(ctx, ns, s, &d, true, err);
		json_decref(keys);
		*ret_message = "secret keys removed due to DeletionPolicy=Merge";
		return r < 0 ? r : 0;
	}
	if ((r = current_secret(ctx, ns, s, true, &cur, err)) < 0)
		return r;
	if (cur != NULL) {
		const char *uid = sync_controller_uid(cur);
		const char *es_uid = str(json_object_get(es, "metadata"), "uid");

		/* Only a Secret this ExternalSecret made. */
		if (uid == NULL || es_uid == NULL || strcmp(uid, es_uid) == 0 ||
		    strcmp(s->creation, "Orphan") == 0) {
			r = lk_k8s_delete(ctx->k8s, &lk_k8s_secrets, ns, s->target, NULL, NULL, &kerr);
			if (r == 0)
				count_write(ctx);
			if (r < 0 && r != -ENOENT) {
				json_decref(cur);
				return lk_error_set(err, r, "could not delete secret: %s", kerr.base.msg);
			}
		}
		json_decref(cur);
	}
	*ret_message = "secret deleted due to DeletionPolicy=Delete";
	return 0;
}

/* ---- due or not --------------------------------------------------------------------- */

/* Whether to refresh now; otherwise *ret_wait_ms (0: no refresh is scheduled). */
static bool
refresh_due(struct sync_ctx *ctx, const json_t *es, const char *ns, const struct es_spec *s,
	    const char *synced_rv, int64_t *ret_wait_ms)
{
	const json_t *status = json_object_get(es, "status");
	const char *rt = str(status, "refreshTime"), *srv = str(status, "syncedResourceVersion");
	const json_t *ready = NULL, *c;
	int64_t refreshed = 0, next;
	json_t *cur = NULL;
	size_t i;
	bool drift = false;

	*ret_wait_ms = 0;
	json_array_foreach(json_object_get(status, "conditions"), i, c) {
		if (str(c, "type") != NULL && strcmp(str(c, "type"), "Ready") == 0)
			ready = c;
	}
	if (rt == NULL || lk_rfc3339_parse(rt, &refreshed) < 0 || srv == NULL ||
	    strcmp(srv, synced_rv) != 0 || ready == NULL || str(ready, "status") == NULL ||
	    strcmp(str(ready, "status"), "True") != 0)
		return true;
	/* The Secret gone or edited: put back whatever the interval says. */
	if (strcmp(s->creation, "Owner") == 0 || strcmp(s->creation, "Orphan") == 0) {
		json_t *sec = sync_cached(ctx, "secret", ns, s->target);
		const json_t *ann = json_object_get(json_object_get(sec, "metadata"), "annotations");

		if (sync_informer_for(ctx, "secret", ns) != NULL &&
		    (sec == NULL || str(ann, SYNC_ANNOT_DATA) == NULL ||
		     str(sec, "x-latchkey-data-hash") == NULL ||
		     strcmp(str(ann, SYNC_ANNOT_DATA), str(sec, "x-latchkey-data-hash")) != 0))
			drift = true;
		json_decref(sec);
	}
	json_decref(cur);
	if (drift)
		return strcmp(s->policy, "CreatedOnce") != 0;
	if (strcmp(s->policy, "Periodic") != 0 || s->refresh_ms == 0)
		return false;
	/* refreshTime is to the second: the refresh was at most 999 ms after it. */
	next = next_refresh(s, ns, refreshed + 999);
	if (next <= lk_now_real_ms())
		return true;
	*ret_wait_ms = next - lk_now_real_ms();
	return false;
}

static void
schedule(struct sync_ctx *ctx, const char *key, const char *ns, const struct es_spec *s)
{
	int64_t now = lk_now_real_ms();

	if (strcmp(s->policy, "Periodic") == 0 && s->refresh_ms > 0)
		sync_queue_add_after(ctx->queue, key, next_refresh(s, ns, now) - now);
}

/* ---- the reconcile ------------------------------------------------------------------ */

int
sync_externalsecret_reconcile(struct sync_ctx *ctx, const char *ns, const char *name)
{
	struct lk_error err = { 0 };
	struct sync_store *st = NULL;
	struct desired d;
	struct es_spec s;
	const char *message = "secret synced", *reason_ok = "SecretSynced";
	const char *reason_fail = "SecretSyncedError";
	char synced_rv[64], key[SYNC_KEY_MAX], now[LK_RFC3339_LEN];
	json_t *es, *fetched = NULL, *extra;
	size_t missing = 0;
	int64_t wait = 0;
	int r;

	memset(&d, 0, sizeof(d));
	if ((es = sync_cached(ctx, "es", ns, name)) == NULL)
		return 0;   /* deleted: an owned Secret goes with it (ownerReferences) */
	if (json_object_get(json_object_get(es, "metadata"), "deletionTimestamp") != NULL) {
		json_decref(es);
		return 0;
	}
	snprintf(key, sizeof(key), "es/%s/%s", ns, name);
	if ((r = parse_spec(es, &s, &err)) < 0) {
		/* Not worth retrying until the spec changes (that enqueues it again). */
		(void)sync_status_write(ctx, &ctx->kinds.es, es, false, "SecretSyncedError", err.msg, NULL);
		json_decref(es);
		return 0;
	}
	synced_version(es, synced_rv, sizeof(synced_rv));
	if (!refresh_due(ctx, es, ns, &s, synced_rv, &wait)) {
		if (wait > 0)
			sync_queue_add_after(ctx->queue, key, wait);
		json_decref(es);
		return 0;
	}
	if ((r = sync_store_resolve(ctx->stores, s.store_kind, ns, s.store_name, &st, &err)) < 0)
		goto fail;
	if ((r = fetch(ctx, st, &s, &fetched, &missing, &err)) < 0)
		goto fail;
	if (missing > 0) {
		if ((r = apply_deletion(ctx, es, ns, &s, &message, &err)) < 0)
			goto fail;
		if (strcmp(s.deletion, "Delete") == 0)
			reason_ok = "SecretDeleted";
	} else {
		if ((r = build_desired(ctx, es, &s, fetched, &d, &err)) < 0)
			goto fail;
		if (strcmp(s.creation, "Merge") == 0) {
			r = write_merge(ctx, ns, &s, &d, false, &err);
			if (r == -ENOENT)
				reason_fail = "SecretMissing";
		} else if (strcmp(s.creation, "CreateOrMerge") == 0) {
			/* Merged into a Secret that exists, made (without an owner) when not. */
			json_t *cur = NULL;

			if ((r = current_secret(ctx, ns, &s, true, &cur, &err)) == 0)
				r = cur != NULL ? write_merge(ctx, ns, &s, &d, false, &err) :
						  write_owned(ctx, es, ns, &s, &d, &err);
			json_decref(cur);
		} else if (strcmp(s.creation, "None") != 0) {
			r = write_owned(ctx, es, ns, &s, &d, &err);
		}
		if (r < 0)
			goto fail;
	}
	lk_rfc3339_ms(lk_now_real_ms(), now);
	snprintf(now + 19, sizeof(now) - 19, "Z");
	extra = json_pack("{s:s, s:s, s:{s:s}}", "refreshTime", now, "syncedResourceVersion",
			  synced_rv, "binding", "name", s.target);
	(void)sync_status_write(ctx, &ctx->kinds.es, es, true, reason_ok, message, extra);
	json_decref(extra);
	schedule(ctx, key, ns, &s);
	r = 0;
	goto out;
fail:
	(void)sync_status_write(ctx, &ctx->kinds.es, es, false, reason_fail, err.msg, NULL);
out:
	desired_clear(&d);
	json_decref(fetched);
	sync_store_release(st);
	json_decref(es);
	return r;
}
