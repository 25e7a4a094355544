/* unseal.c — SealedSecret → Secret, and resealing in place (sealing.h). */
#include "sealing/sealing.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int
lk_sealing_check_sealed(const json_t *root, const char *src, struct lk_error *err)
{
	const char *kind = lk_sealing_str(root, "kind");
	const char *api = lk_sealing_str(root, "apiVersion");

	if (kind == NULL || strcmp(kind, "SealedSecret") != 0 || api == NULL ||
	    (strcmp(api, LK_SEALING_API_LATCHKEY) != 0 && strcmp(api, LK_SEALING_API_BITNAMI) != 0))
		return lk_error_set(err, -EINVAL, "%s: not a SealedSecret (%s or %s)", src,
				    LK_SEALING_API_LATCHKEY, LK_SEALING_API_BITNAMI);
	if (!json_is_object(json_object_get(json_object_get(root, "spec"), "encryptedData")))
		return lk_error_set(err, -EINVAL, "%s: spec.encryptedData is missing", src);
	return 0;
}

static bool
is_lk1(const json_t *v)
{
	return strncmp(json_string_value(v), LK_LK1_TEXT_PREFIX, strlen(LK_LK1_TEXT_PREFIX)) == 0;
}

int
lk_sealing_open_value(const struct lk_keyset *ks, const json_t *sealed, const char *key,
		      const json_t *v, struct lk_secret **ret, struct lk_error *err)
{
	return lk_sealing_open_value_with(ks, sealed, key, v, NULL, ret, NULL, err);
}

int
lk_sealing_open_value_with(const struct lk_keyset *ks, const json_t *sealed, const char *key,
			   const json_t *v, const char *prefer_id, struct lk_secret **ret,
			   const struct lk_key **ret_key, struct lk_error *err)
{
	const char *name = lk_sealing_str2(sealed, "metadata", "name");
	const char *ns = lk_sealing_str2(sealed, "metadata", "namespace");
	enum lk_scope scope = lk_sealing_scope_of(sealed);
	char label[LK_LABEL_MAX + 1];
	int r;

	if (ret_key != NULL)
		*ret_key = NULL;
	if (!json_is_string(v))
		return lk_error_set(err, -EINVAL, "encryptedData.%s is not a string", key);
	r = lk_scope_label(scope, ns, name, is_lk1(v) ? key : NULL, label, sizeof(label), err);
	if (r < 0)
		return lk_error_prefix(err, "encryptedData.%s (scope %s)", key, lk_scope_name(scope));
	r = lk_keyset_open_with(ks, label, json_string_value(v), json_string_length(v), prefer_id,
				ret, ret_key, err);
	if (r < 0)
		return lk_error_prefix(err, "encryptedData.%s (scope %s)", key, lk_scope_name(scope));
	return 0;
}

static const char *
str_or_empty(const char *a, const char *b)
{
	return a != NULL ? a : b != NULL ? b : "";
}

int
lk_sealing_unseal(const struct lk_keyset *ks, const json_t *sealed, json_t **ret,
		  bool *ret_skipped_template_data, struct lk_error *err)
{
	const json_t *tmpl = json_object_get(json_object_get(sealed, "spec"), "template");
	const json_t *tmeta = json_object_get(tmpl, "metadata");
	const char *ns = lk_sealing_str2(sealed, "metadata", "namespace");
	json_t *secret, *meta, *data, *v;
	const char *key;
	int r;

	secret = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Secret",
			   "metadata", "name", str_or_empty(lk_sealing_str2(sealed, "metadata", "name"),
							    lk_sealing_str(tmeta, "name")));
	if (secret == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	meta = json_object_get(secret, "metadata");
	if (ns != NULL || lk_sealing_str(tmeta, "namespace") != NULL)
		json_object_set_new(meta, "namespace",
				    json_string(str_or_empty(ns, lk_sealing_str(tmeta, "namespace"))));
	if (json_is_object(json_object_get(tmeta, "labels")))
		json_object_set(meta, "labels", json_object_get(tmeta, "labels"));
	if (json_is_object(json_object_get(tmeta, "annotations")))
		json_object_set(meta, "annotations", json_object_get(tmeta, "annotations"));
	json_object_set_new(secret, "type", json_string(lk_sealing_str(tmpl, "type") != NULL ?
							lk_sealing_str(tmpl, "type") : "Opaque"));
	if (json_is_boolean(json_object_get(tmpl, "immutable")))
		json_object_set(secret, "immutable", json_object_get(tmpl, "immutable"));
	if ((data = json_object()) == NULL || json_object_set_new(secret, "data", data) < 0) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(json_object_get(json_object_get(sealed, "spec"), "encryptedData"), key, v) {
		struct lk_secret *pt = NULL;
		char *b64 = NULL;

		if ((r = lk_sealing_open_value(ks, sealed, key, v, &pt, err)) < 0)
			goto out;
		r = lk_b64_encode(lk_secret_bytes(pt), lk_secret_len(pt), LK_B64_STD, &b64);
		lk_secret_free(pt);
		if (r < 0) {
			lk_error_set(err, r, "encryptedData.%s: cannot encode", key);
			goto out;
		}
		r = json_object_set_new(data, key, json_string(b64)) == 0 ? 0 : -ENOMEM;
		sodium_memzero(b64, strlen(b64));
		free(b64);
		if (r < 0) {
			lk_error_set(err, r, "out of memory");
			goto out;
		}
	}
	if (ret_skipped_template_data != NULL)
		*ret_skipped_template_data = json_object_get(tmpl, "data") != NULL;
	*ret = secret;
	secret = NULL;
	r = 0;
out:
	json_decref(secret);
	return r;
}

int
lk_sealing_reseal(const struct lk_keyset *ks, json_t *sealed, size_t *ret_changed,
		  struct lk_error *err)
{
	const struct lk_key *newest_rsa = lk_keyset_newest(ks, LK_KEY_RSA);
	const struct lk_key *newest_x = lk_keyset_newest(ks, LK_KEY_X25519);
	const char *name = lk_sealing_str2(sealed, "metadata", "name");
	const char *ns = lk_sealing_str2(sealed, "metadata", "namespace");
	enum lk_scope scope = lk_sealing_scope_of(sealed);
	json_t *enc = json_object_get(json_object_get(sealed, "spec"), "encryptedData");
	const char *key;
	size_t changed = 0;
	json_t *v;
	int r;

	json_object_foreach(enc, key, v) {
		const struct lk_key *to, *used = NULL;
		struct lk_secret *pt = NULL;
		char *ct = NULL;
		bool lk1;

		if ((r = lk_sealing_open_value_with(ks, sealed, key, v, NULL, &pt, &used, err)) < 0)
			return r;
		lk1 = is_lk1(v);
		to = lk1 ? newest_x : newest_rsa;
		if (to != NULL && used == to) {
			/* Already with the newest key: left as it is (no churn in Git). */
			lk_secret_free(pt);
			continue;
		}
		if (to == NULL) {
			lk_secret_free(pt);
			return lk_error_set(err, -ENOKEY, "encryptedData.%s: no %s key to reseal with",
					    key, lk1 ? "lk1" : "RSA");
		}
		r = lk_sealing_seal_value(to, scope, ns, name, key, pt, &ct, err);
		lk_secret_free(pt);
		if (r < 0)
			return lk_error_prefix(err, "encryptedData.%s", key);
		r = json_object_set_new(enc, key, json_string(ct)) == 0 ? 0 : -ENOMEM;
		free(ct);
		if (r < 0)
			return lk_error_set(err, r, "out of memory");
		changed++;
	}
	*ret_changed = changed;
	return 0;
}
