/* seal_util.c — helpers shared by keygen, seal, unseal and reseal. */
#include "cli/seal.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The most manifest files looked at in one key directory. */
#define KEYDIR_MANIFESTS_MAX 1024

const char *
seal_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

const char *
seal_str2(const json_t *obj, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(obj, a), b));
}

int
seal_read_input(const char *path, struct lk_secret **ret, struct lk_error *err)
{
	const char *p = (path == NULL || strcmp(path, "-") == 0) ? "/dev/stdin" : path;
	const char *shown = p == path ? path : "stdin";
	int r;

	r = lk_secret_read_file(p, LK_SECRET_MAX, false, ret);
	if (r == -E2BIG)
		return lk_error_set(err, r, "%s: larger than %u bytes", shown, LK_SECRET_MAX);
	if (r < 0)
		return lk_error_set(err, r, "%s: %s", shown, strerror(-r));
	return 0;
}

/* Reads a file that holds no secret: plain memory, at most max bytes. */
static int
read_public(const char *path, size_t max, char **ret, size_t *ret_len, struct lk_error *err)
{
	const char *shown = (path == NULL || strcmp(path, "-") == 0) ? "stdin" : path;
	size_t len = 0, cap = 65536;
	char *buf = NULL, *nb;
	int fd = STDIN_FILENO, r;

	if (path != NULL && strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return lk_error_set(err, -errno, "%s: %s", shown, strerror(errno));
	}
	buf = malloc(cap + 1);
	if (buf == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap > max) {
				r = lk_error_set(err, -E2BIG, "%s: larger than %zu bytes", shown, max);
				goto out;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				r = lk_error_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = lk_error_set(err, -errno, "%s: %s", shown, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		r = lk_error_set(err, -E2BIG, "%s: larger than %zu bytes", shown, max);
		goto out;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return r;
}

int
seal_read_manifest(const char *path, bool holds_secrets, json_t **ret,
		   enum lk_manifest_format *ret_format, struct lk_error *err)
{
	const char *name = (path == NULL || strcmp(path, "-") == 0) ? "stdin" : path;
	struct lk_secret *text = NULL;
	char *plain = NULL;
	size_t len = 0;
	int r;

	if (holds_secrets) {
		r = seal_read_input(path, &text, err);
		if (r < 0)
			return r;
		r = lk_manifest_parse(lk_secret_cstr(text), lk_secret_len(text), name, ret,
				      ret_format, err);
		lk_secret_free(text);
		return r;
	}
	r = read_public(path, LK_MANIFEST_MAX, &plain, &len, err);
	if (r < 0)
		return r;
	r = lk_manifest_parse(plain, len, name, ret, ret_format, err);
	free(plain);
	return r;
}

static void
wipe_strings(json_t *v, unsigned depth)
{
	if (v == NULL || depth > LK_MANIFEST_DEPTH_MAX + 1)
		return;
	if (json_is_string(v)) {
		/* jansson owns the bytes; zeroing them in place is safe before the last decref. */
		memset((char *)json_string_value(v), 0, json_string_length(v));
	} else if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach(v, k, c)
			wipe_strings(c, depth + 1);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c)
			wipe_strings(c, depth + 1);
	}
}

void
seal_json_wipe_decref(json_t *v)
{
	if (v == NULL)
		return;
	if (v->refcount == 1)
		wipe_strings(v, 0);
	json_decref(v);
}

static int
write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int
seal_write_output(const char *path, const char *data, size_t len, mode_t mode, bool exclusive,
		  struct lk_error *err)
{
	char *tmp = NULL;
	int fd = -1, r;

	if (path == NULL || strcmp(path, "-") == 0) {
		r = write_all(STDOUT_FILENO, data, len);
		if (r < 0)
			return lk_error_set(err, r, "stdout: %s", strerror(-r));
		return 0;
	}
	if (exclusive) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd < 0) {
			r = -errno;
			if (r == -EEXIST)
				return lk_error_set(err, r, "%s: already exists; not overwritten", path);
			return lk_error_set(err, r, "%s: %s", path, strerror(-r));
		}
		/* The umask may have narrowed it; private key files must be exactly mode. */
		fchmod(fd, mode);
		r = write_all(fd, data, len);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		if (r < 0) {
			unlink(path);
			return lk_error_set(err, r, "%s: %s", path, strerror(-r));
		}
		return 0;
	}
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return lk_error_set(err, -ENOMEM, "out of memory");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = lk_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return r;
	}
	fchmod(fd, mode);
	r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		lk_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	free(tmp);
	return r;
}

int
seal_write_manifest(const char *path, const json_t *root, enum lk_manifest_format format,
		    mode_t mode, bool exclusive, struct lk_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = lk_manifest_dump(root, format, &text, &len, err);
	if (r < 0)
		return r;
	r = seal_write_output(path, text, len, mode, exclusive, err);
	sodium_memzero(text, len);
	free(text);
	return r;
}

/* data[key] of a Secret, base64-decoded into a secret; -ENOENT when absent. */
static int
secret_data(const json_t *secret, const char *key, struct lk_secret **ret)
{
	const char *v = seal_str2(secret, "data", key);

	if (v == NULL)
		return -ENOENT;
	return lk_b64_decode(v, strlen(v), LK_B64_STD, ret);
}

static int
import_one(struct lk_keyset *ks, const json_t *secret, const char *name, struct lk_error *err)
{
	struct lk_secret *key_pem = NULL, *crt_pem = NULL, *lk1 = NULL;
	const char *sname = seal_str2(secret, "metadata", "name");
	struct lk_key *k = NULL;
	int r, added = 0;

	if (sname == NULL)
		sname = "(unnamed)";
	if (!json_is_object(secret) || seal_str(secret, "kind") == NULL ||
	    strcmp(seal_str(secret, "kind"), "Secret") != 0)
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
		r = lk_keyset_add_take(ks, k);
		k = NULL;
		if (r < 0 && r != -EEXIST) {
			lk_error_set(err, r, "%s: too many keys", name);
			goto out;
		}
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
		r = lk_keyset_add_take(ks, k);
		k = NULL;
		if (r < 0 && r != -EEXIST) {
			lk_error_set(err, r, "%s: too many keys", name);
			goto out;
		}
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
seal_import_key_manifest(struct lk_keyset *ks, const json_t *root, const char *name,
			 struct lk_error *err)
{
	const char *kind = seal_str(root, "kind");

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

	r = seal_read_manifest(path, true, &root, NULL, err);
	if (r < 0)
		return r;
	kind = seal_str(root, "kind");
	if (lenient && (kind == NULL || (strcmp(kind, "Secret") != 0 && strcmp(kind, "List") != 0))) {
		r = 0;
		goto out;
	}
	r = seal_import_key_manifest(ks, root, path, err);
	if (lenient && r == -ENOENT && lk_keyset_count(ks) == before)
		r = 0;
out:
	seal_json_wipe_decref(root);
	return r;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
seal_load_keys(struct lk_keyset *ks, const char *path, struct lk_error *err)
{
	char *names[KEYDIR_MANIFESTS_MAX];
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
	while ((de = readdir(d)) != NULL && n < KEYDIR_MANIFESTS_MAX) {
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
seal_key_manifest(const struct lk_key *rsa, const struct lk_key *x, const char *ns, json_t **ret,
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
			 SEAL_KEY_LABEL, "active", "type", "kubernetes.io/tls", "data");
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
	seal_json_wipe_decref(root);
	return r;
}

struct fetch {
	char *data;
	size_t len;
	bool too_big;
};

static size_t
fetch_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb;
	char *nd;

	if (f->len + n > SEAL_CERT_FETCH_MAX) {
		f->too_big = true;
		return 0;
	}
	nd = realloc(f->data, f->len + n + 1);
	if (nd == NULL)
		return 0;
	f->data = nd;
	memcpy(f->data + f->len, p, n);
	f->len += n;
	f->data[f->len] = '\0';
	return n;
}

static int
fetch_cert(const char *url, char **ret, size_t *ret_len, struct lk_error *err)
{
	struct fetch f = { NULL, 0, false };
	long status = 0;
	CURLcode rc;
	CURL *c;
	int r;

	c = curl_easy_init();
	if (c == NULL)
		return lk_error_set(err, -ENOMEM, "cannot start libcurl");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)SEAL_CERT_FETCH_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (f.too_big) {
		r = lk_error_set(err, -E2BIG, "%s: certificate larger than %u bytes", url,
				 SEAL_CERT_FETCH_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		r = lk_error_set(err, -EIO, "%s: %s", url, curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		r = lk_error_set(err, -EIO, "%s: HTTP status %ld", url, status);
		goto out;
	}
	if (f.data == NULL) {
		r = lk_error_set(err, -EIO, "%s: empty response", url);
		goto out;
	}
	*ret = f.data;
	*ret_len = f.len;
	f.data = NULL;
	r = 0;
out:
	free(f.data);
	return r;
}

int
seal_load_recipient(const char *source, bool lk1, struct lk_key **ret, struct lk_error *err)
{
	struct lk_secret *file = NULL;
	char *fetched = NULL;
	const char *text;
	size_t len = 0;
	int r;

	if (strncmp(source, "http://", 7) == 0 || strncmp(source, "https://", 8) == 0) {
		r = fetch_cert(source, &fetched, &len, err);
		if (r < 0)
			return r;
		text = fetched;
	} else {
		r = lk_secret_read_file(source, LK_KEYFILE_MAX, false, &file);
		if (r < 0)
			return lk_error_set(err, r, "%s: %s", source,
					    r == -E2BIG ? "too large for a key file" : strerror(-r));
		text = lk_secret_cstr(file);
		len = lk_secret_len(file);
	}
	if (lk1) {
		r = lk_key_x25519_parse(text, len, ret, err);
	} else {
		if (strstr(text, "-----BEGIN CERTIFICATE-----") == NULL)
			r = lk_error_set(err, -EINVAL, "no PEM certificate found");
		else
			r = lk_key_rsa_from_pem(NULL, 0, text, len, false, ret, err);
	}
	if (r < 0)
		lk_error_prefix(err, "%s", source);
	lk_secret_free(file);
	free(fetched);
	return r;
}

static bool
annotation_true(const json_t *meta, const char *name)
{
	const char *v = seal_str(json_object_get(meta, "annotations"), name);

	return v != NULL && strcmp(v, "true") == 0;
}

enum lk_scope
seal_scope_of(const json_t *obj)
{
	const json_t *meta = json_object_get(obj, "metadata");

	if (annotation_true(meta, LK_ANNOT_CLUSTER_WIDE))
		return LK_SCOPE_CLUSTER;
	if (annotation_true(meta, LK_ANNOT_NAMESPACE_WIDE))
		return LK_SCOPE_NAMESPACE;
	return LK_SCOPE_STRICT;
}

int
seal_set_scope_annotations(json_t *metadata, enum lk_scope scope)
{
	json_t *ann = json_object_get(metadata, "annotations");

	if (ann == NULL || !json_is_object(ann)) {
		if (scope == LK_SCOPE_STRICT)
			return 0;
		ann = json_object();
		if (ann == NULL || json_object_set_new(metadata, "annotations", ann) != 0)
			return -ENOMEM;
	}
	json_object_del(ann, LK_ANNOT_CLUSTER_WIDE);
	json_object_del(ann, LK_ANNOT_NAMESPACE_WIDE);
	if (scope == LK_SCOPE_CLUSTER)
		return json_object_set_new(ann, LK_ANNOT_CLUSTER_WIDE, json_string("true")) ? -ENOMEM : 0;
	if (scope == LK_SCOPE_NAMESPACE)
		return json_object_set_new(ann, LK_ANNOT_NAMESPACE_WIDE, json_string("true")) ? -ENOMEM : 0;
	if (json_object_size(ann) == 0)
		json_object_del(metadata, "annotations");
	return 0;
}
