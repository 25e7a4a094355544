/* seal.c — Secret → SealedSecret (sealing.h). */
#include "sealing/sealing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
lk_sealing_seal_value(const struct lk_key *recipient, enum lk_scope scope, const char *ns,
		      const char *name, const char *key, const struct lk_secret *value,
		      char **ret_text, struct lk_error *err)
{
	char label[LK_LABEL_MAX + 1];
	bool lk1 = lk_key_kind(recipient) == LK_KEY_X25519;
	int r;

	r = lk_scope_label(scope, ns, name, lk1 ? key : NULL, label, sizeof(label), err);
	if (r < 0)
		return r;
	return lk_key_seal(recipient, label, lk_secret_bytes(value), lk_secret_len(value),
			   ret_text, err);
}

/* Seals one value for key; sets out[key]. */
static int
seal_into(const struct lk_key *recipient, enum lk_scope scope, const char *ns, const char *name,
	  const char *key, const struct lk_secret *value, json_t *out, struct lk_error *err)
{
	char *ct = NULL;
	int r;

	r = lk_sealing_seal_value(recipient, scope, ns, name, key, value, &ct, err);
	if (r < 0)
		return lk_error_prefix(err, "key %s", key);
	r = json_object_set_new(out, key, json_string(ct)) == 0 ? 0 : -ENOMEM;
	free(ct);
	if (r < 0)
		return lk_error_set(err, r, "out of memory");
	return 0;
}

static int
cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Seals data (base64) and stringData (plain, wins over data) of a Secret into enc, in key
 * order. */
static int
seal_values(const json_t *secret, const char *src, const struct lk_key *recipient,
	    enum lk_scope scope, const char *ns, const char *name, json_t *enc,
	    struct lk_error *err)
{
	const json_t *data = json_object_get(secret, "data");
	const json_t *sdata = json_object_get(secret, "stringData");
	const char **keys = NULL;
	size_t n = 0;
	const char *k;
	json_t *v;
	int r = 0;

	if ((data != NULL && !json_is_object(data) && !json_is_null(data)) ||
	    (sdata != NULL && !json_is_object(sdata) && !json_is_null(sdata)))
		return lk_error_set(err, -EINVAL, "%s: data and stringData must be mappings", src);
	if (json_object_size(data) + json_object_size(sdata) > LK_SEALING_KEYS_MAX)
		return lk_error_set(err, -E2BIG, "%s: more than %d keys", src, LK_SEALING_KEYS_MAX);
	keys = calloc(json_object_size(data) + json_object_size(sdata) + 1, sizeof(*keys));
	if (keys == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)data, k, v) {
		if (json_object_get(sdata, k) == NULL)
			keys[n++] = k;
	}
	json_object_foreach((json_t *)sdata, k, v)
		keys[n++] = k;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (size_t i = 0; i < n; i++) {
		const json_t *sv = json_object_get(sdata, keys[i]);
		bool from_string = sv != NULL;
		struct lk_secret *value = NULL;

		if (!lk_manifest_secret_key_valid(keys[i], strlen(keys[i]))) {
			r = lk_error_set(err, -EINVAL,
					 "%s: key '%.100s' is not a valid Secret key ([-._a-zA-Z0-9]+)",
					 src, keys[i]);
			goto out;
		}
		if (!from_string)
			sv = json_object_get(data, keys[i]);
		if (!json_is_string(sv)) {
			r = lk_error_set(err, -EINVAL, "%s: %s.%s is not a string", src,
					 from_string ? "stringData" : "data", keys[i]);
			goto out;
		}
		if (from_string) {
			value = lk_secret_new(json_string_value(sv), json_string_length(sv));
			r = value == NULL ? -ENOMEM : 0;
		} else {
			r = lk_b64_decode(json_string_value(sv), json_string_length(sv), LK_B64_STD_GO,
					  &value);
		}
		if (r < 0) {
			lk_error_set(err, r, "%s: %s.%s %s", src, from_string ? "stringData" : "data",
				     keys[i], r == -EINVAL ? "is not valid base64" : "is too large");
			goto out;
		}
		r = seal_into(recipient, scope, ns, name, keys[i], value, enc, err);
		lk_secret_free(value);
		if (r < 0)
			goto out;
	}
out:
	free(keys);
	return r;
}

/* The template's metadata: name, namespace, labels, and annotations without the
 * last-applied ones (they hold the whole object, plaintext included). New reference. */
static json_t *
template_metadata(const json_t *meta, const char *name, const char *ns)
{
	json_t *out = json_object(), *ann;
	const json_t *labels = json_object_get(meta, "labels");

	if (out == NULL)
		return NULL;
	if (name != NULL)
		json_object_set_new(out, "name", json_string(name));
	if (ns != NULL)
		json_object_set_new(out, "namespace", json_string(ns));
	if (json_is_object(labels) && json_object_size(labels) > 0)
		json_object_set_new(out, "labels", json_deep_copy(labels));
	ann = json_deep_copy(json_object_get(meta, "annotations"));
	if (json_is_object(ann)) {
		json_object_del(ann, "kubectl.kubernetes.io/last-applied-configuration");
		json_object_del(ann, "kubecfg.ksonnet.io/last-applied-configuration");
		if (json_object_size(ann) > 0)
			json_object_set(out, "annotations", ann);
	}
	json_decref(ann);
	return out;
}

static const char *
str_or(const char *a, const char *b)
{
	return a != NULL ? a : b;
}

/* The Secret's name and namespace, checked against the options and completed by them. */
static int
secret_identity(const json_t *secret, const char *src, const struct lk_seal_options *o,
		const char **ret_name, const char **ret_ns, struct lk_error *err)
{
	const char *kind = lk_sealing_str(secret, "kind");
	const char *name = lk_sealing_str2(secret, "metadata", "name");
	const char *ns = lk_sealing_str2(secret, "metadata", "namespace");

	if (kind == NULL || strcmp(kind, "Secret") != 0)
		return lk_error_set(err, -EINVAL, "%s: kind is '%.60s', not Secret; refusing to seal",
				    src, kind ? kind : "(none)");
	if (o->name != NULL && name != NULL && strcmp(o->name, name) != 0)
		return lk_error_set(err, -EINVAL, "%s: --name %s differs from metadata.name %s", src,
				    o->name, name);
	if (o->ns != NULL && ns != NULL && strcmp(o->ns, ns) != 0)
		return lk_error_set(err, -EINVAL,
				    "%s: --namespace %s differs from metadata.namespace %s", src,
				    o->ns, ns);
	*ret_name = str_or(name, o->name);
	*ret_ns = str_or(ns, o->ns);
	return 0;
}

static int
check_strict(enum lk_scope scope, const char *ns, const char *name, const char *src,
	     struct lk_error *err)
{
	if (scope == LK_SCOPE_STRICT && (ns == NULL || ns[0] == '\0'))
		return lk_error_set(err, -EINVAL, "%s: strict scope needs a namespace: set "
				    "metadata.namespace or --namespace (or use --scope cluster-wide)",
				    src);
	if (scope == LK_SCOPE_STRICT && (name == NULL || name[0] == '\0'))
		return lk_error_set(err, -EINVAL, "%s: strict scope needs a name: set metadata.name "
				    "or --name", src);
	return 0;
}

int
lk_sealing_seal_secret(const json_t *secret, const char *src, const struct lk_key *recipient,
		       const struct lk_seal_options *o, json_t **ret, struct lk_error *err)
{
	json_t *out = NULL, *enc, *meta, *tmpl, *tm;
	const char *name, *ns, *type;
	enum lk_scope scope;
	int r;

	if ((r = secret_identity(secret, src, o, &name, &ns, err)) < 0)
		return r;
	scope = o->scope_given ? o->scope : lk_sealing_scope_of(secret);
	if ((r = check_strict(scope, ns, name, src, err)) < 0)
		return r;
	out = json_pack("{s:s, s:s, s:{}, s:{s:{}}}", "apiVersion",
			o->compat ? LK_SEALING_API_BITNAMI : LK_SEALING_API_LATCHKEY,
			"kind", "SealedSecret", "metadata", "spec", "encryptedData");
	if (out == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	meta = json_object_get(out, "metadata");
	enc = json_object_get(json_object_get(out, "spec"), "encryptedData");
	if ((name != NULL && json_object_set_new(meta, "name", json_string(name)) < 0) ||
	    (ns != NULL && json_object_set_new(meta, "namespace", json_string(ns)) < 0) ||
	    lk_sealing_set_scope_annotations(meta, scope) < 0) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = seal_values(secret, src, recipient, scope, ns, name, enc, err)) < 0)
		goto out;
	tmpl = json_object();
	tm = template_metadata(json_object_get(secret, "metadata"), name, ns);
	if (tmpl == NULL || tm == NULL ||
	    json_object_set_new(json_object_get(out, "spec"), "template", tmpl) < 0 ||
	    json_object_set_new(tmpl, "metadata", tm) < 0) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	type = lk_sealing_str(secret, "type");
	if (type != NULL)
		json_object_set_new(tmpl, "type", json_string(type));
	if (json_is_boolean(json_object_get(secret, "immutable")))
		json_object_set(tmpl, "immutable", json_object_get(secret, "immutable"));
	*ret = out;
	out = NULL;
	r = 0;
out:
	json_decref(out);
	return r;
}

int
lk_sealing_merge(json_t *target, const char *target_src, const json_t *secret, const char *src,
		 const struct lk_key *recipient, const struct lk_seal_options *o,
		 struct lk_error *err)
{
	const char *name, *ns, *tname, *tns;
	enum lk_scope scope;
	json_t *enc;
	int r;

	if ((r = secret_identity(secret, src, o, &name, &ns, err)) < 0)
		return r;
	if (lk_sealing_str(target, "kind") == NULL ||
	    strcmp(lk_sealing_str(target, "kind"), "SealedSecret") != 0)
		return lk_error_set(err, -EINVAL, "%s: not a SealedSecret", target_src);
	tname = lk_sealing_str2(target, "metadata", "name");
	tns = lk_sealing_str2(target, "metadata", "namespace");
	if ((name != NULL && tname != NULL && strcmp(name, tname) != 0) ||
	    (ns != NULL && tns != NULL && strcmp(ns, tns) != 0))
		return lk_error_set(err, -EINVAL, "%s: the Secret is %s/%s but the SealedSecret is %s/%s",
				    target_src, str_or(ns, "-"), str_or(name, "-"), str_or(tns, "-"),
				    str_or(tname, "-"));
	scope = lk_sealing_scope_of(target);
	if (o->scope_given && o->scope != scope)
		return lk_error_set(err, -EINVAL, "%s: --scope %s differs from the file's scope %s",
				    target_src, lk_scope_name(o->scope), lk_scope_name(scope));
	name = str_or(tname, name);
	ns = str_or(tns, ns);
	enc = json_object_get(json_object_get(target, "spec"), "encryptedData");
	if (!json_is_object(enc))
		return lk_error_set(err, -EINVAL, "%s: spec.encryptedData is missing", target_src);
	if ((r = check_strict(scope, ns, name, src, err)) < 0)
		return r;
	return seal_values(secret, src, recipient, scope, ns, name, enc, err);
}
