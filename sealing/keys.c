/* keys.c — key Secrets in Bitnami's shape, and key files and directories (sealing.h). */
#include "sealing/sealing.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* data[key] of a Secret, base64-decoded into a secret; -ENOENT when absent. */
static int
secret_data(const json_t *secret, const char *key, struct lk_secret **ret)
{
	const char *v = lk_sealing_str2(secret, "data", key);

	if (v == NULL)
		return -ENOENT;
	return lk_b64_decode(v, strlen(v), LK_B64_STD_GO, ret);
}

/* Adds k (taken); a key already in the set is not an error. */
static int
add_key(struct lk_keyset *ks, struct lk_key *k, const char *name, struct lk_error *err)
{
	int r = lk_keyset_add_take(ks, k);

	if (r < 0 && r != -EEXIST)
		return lk_error_set(err, r, "%s: too many keys", name);
	return 0;
}

static int
import_one(struct lk_keyset *ks, const json_t *secret, const char *name, struct lk_error *err)
{
	struct lk_secret *key_pem = NULL, *crt_pem = NULL, *lk1 = NULL;
	const char *sname = lk_sealing_str2(secret, "metadata", "name");
	struct lk_key *k = NULL;
	int r, added = 0;

	if (sname == NULL)
		sname = "(unnamed)";
	if (!json_is_object(secret) || lk_sealing_str(secret, "kind") == NULL ||
	    strcmp(lk_sealing_str(secret, "kind"), "Secret") != 0)
		return lk_error_set(err, -EINVAL, "%s: not a Secret", name);
	r = secret_data(secret, "tls.key", &key_pem);
	if (r == 0) {
		r = secret_data(secret, "tls.crt", &crt_pem);
		if (r < 0 && r != -ENOENT) {
			lk_error_set(err, r, "%s: Secret %s: data.tls.crt is not base64", name, sname);
			goto out;
		}
		r = lk_key_rsa_from_pem(lk_secret_cstr(key_pem), lk_secret_len(key_pem),
					crt_pem ? lk_secret_cstr(crt_pem) : NULL,
					crt_pem ? lk_secret_len(crt_pem) : 0, true, &k, err);
		if (r < 0) {
			lk_error_prefix(err, "%s: Secret %s", name, sname);
			goto out;
		}
		r = add_key(ks, k, name, err);
		k = NULL;
		if (r < 0)
			goto out;
		added++;
	} else if (r != -ENOENT) {
		lk_error_set(err, r, "%s: Secret %s: data.tls.key is not base64", name, sname);
		goto out;
	}
	r = secret_data(secret, "lk1.key", &lk1);
	if (r == 0) {
		r = lk_key_x25519_parse(lk_secret_cstr(lk1), lk_secret_len(lk1), &k, err);
		if (r < 0) {
			lk_error_prefix(err, "%s: Secret %s: lk1.key", name, sname);
			goto out;
		}
		r = add_key(ks, k, name, err);
		k = NULL;
		if (r < 0)
			goto out;
		added++;
	} else if (r != -ENOENT) {
		lk_error_set(err, r, "%s: Secret %s: data.lk1.key is not base64", name, sname);
		goto out;
	}
	r = added > 0 ? 0 : lk_error_set(err, -ENOENT, "%s: Secret %s has no tls.key or lk1.key",
					  name, sname);
out:
	lk_secret_free(key_pem);
	lk_secret_free(crt_pem);
	lk_secret_free(lk1);
	lk_key_free(k);
	return r;
}

int
lk_sealing_import_key_manifest(struct lk_keyset *ks, const json_t *root, const char *name,
			 struct lk_error *err)
{
	const char *kind = lk_sealing_str(root, "kind");

	if (kind != NULL && strcmp(kind, "List") == 0) {
		const json_t *items = json_object_get(root, "items");
		size_t i;
		json_t *item;
		int r;

		if (!json_is_array(items) || json_array_size(items) == 0)
			return lk_error_set(err, -ENOENT, "%s: empty List", name);
		json_array_foreach(items, i, item) {
			r = import_one(ks, item, name, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	return import_one(ks, root, name, err);
}

static bool
is_manifest_name(const char *n)
{
	size_t l = strlen(n);

	return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0) ||
	       (l > 5 && strcmp(n + l - 5, ".json") == 0);
}

/* lenient (a key directory): manifests that are not key Secrets are skipped. */
static int
import_manifest_file(struct lk_keyset *ks, const char *path, bool lenient, struct lk_error *err)
{
	json_t *root = NULL;
	const char *kind;
	size_t before = lk_keyset_count(ks);
	int r;

	r = lk_sealing_read_manifest(path, true, &root, NULL, err);
	if (r < 0)
		return r;
	kind = lk_sealing_str(root, "kind");
	if (lenient && (kind == NULL || (strcmp(kind, "Secret") != 0 && strcmp(kind, "List") != 0))) {
		r = 0;
		goto out;
	}
	r = lk_sealing_import_key_manifest(ks, root, path, err);
	if (lenient && r == -ENOENT && lk_keyset_count(ks) == before)
		r = 0;
out:
	json_decref(root);
	return r;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
lk_sealing_load_keys(struct lk_keyset *ks, const char *path, struct lk_error *err)
{
	char *names[LK_SEALING_KEYDIR_MANIFESTS_MAX];
	struct dirent *de;
	struct stat st;
	size_t n = 0;
	DIR *d;
	int r;

	if (stat(path, &st) < 0)
		return lk_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		r = lk_keyset_load_file(ks, path, err);
		if (r == -ENOTSUP)
			r = import_manifest_file(ks, path, false, err);
		return r;
	}
	r = lk_keyset_load_dir(ks, path, err);
	if (r < 0 && r != -ENOENT)
		return r;
	d = opendir(path);
	if (d == NULL)
		return lk_error_set(err, -errno, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL && n < LK_SEALING_KEYDIR_MANIFESTS_MAX) {
		if (de->d_name[0] == '.' || !is_manifest_name(de->d_name))
			continue;
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	r = 0;
	for (size_t i = 0; i < n; i++) {
		if (r == 0)
			r = import_manifest_file(ks, names[i], true, err);
		free(names[i]);
	}
	if (r < 0)
		return r;
	if (lk_keyset_count(ks) == 0)
		return lk_error_set(err, -ENOENT, "%s: no keys found", path);
	return 0;
}

static int
b64_set(json_t *obj, const char *key, const void *p, size_t n)
{
	char *b64 = NULL;
	int r;

	r = lk_b64_encode(p, n, LK_B64_STD, &b64);
	if (r < 0)
		return r;
	r = json_object_set_new(obj, key, json_string(b64)) == 0 ? 0 : -ENOMEM;
	sodium_memzero(b64, strlen(b64));
	free(b64);
	return r;
}

int
lk_sealing_key_manifest(const struct lk_key *rsa, const struct lk_key *x, const char *ns, json_t **ret,
		  struct lk_error *err)
{
	struct lk_secret *pem = NULL, *xt = NULL;
	char *crt = NULL, name[64];
	json_t *root = NULL, *data;
	int r;

	r = lk_key_rsa_private_pem(rsa, &pem, err);
	if (r < 0)
		goto out;
	r = lk_key_rsa_cert_pem(rsa, &crt, err);
	if (r < 0)
		goto out;
	/* Bitnami's controller names its keys sealed-secrets-key + 5 characters. */
	snprintf(name, sizeof(name), "sealed-secrets-key%.5s", lk_key_id(rsa));
	root = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:{}}", "apiVersion", "v1",
			 "kind", "Secret", "metadata", "name", name, "namespace", ns, "labels",
			 LK_SEALING_KEY_LABEL, "active", "type", "kubernetes.io/tls", "data");
	if (root == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	data = json_object_get(root, "data");
	r = b64_set(data, "tls.crt", crt, strlen(crt));
	if (r == 0)
		r = b64_set(data, "tls.key", lk_secret_bytes(pem), lk_secret_len(pem));
	if (r == 0 && x != NULL) {
		r = lk_key_x25519_private_text(x, &xt);
		if (r == 0)
			r = b64_set(data, "lk1.key", lk_secret_bytes(xt), lk_secret_len(xt));
	}
	if (r < 0) {
		lk_error_set(err, r, "cannot build the key Secret");
		goto out;
	}
	*ret = root;
	root = NULL;
out:
	lk_secret_free(pem);
	lk_secret_free(xt);
	free(crt);
	json_decref(root);
	return r;
}

