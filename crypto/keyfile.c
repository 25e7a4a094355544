/* keyfile.c — key files and key directories into key sets (crypto.h). */
#include "crypto/key_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The most files looked at in one key directory. */
#define KEYDIR_FILES_MAX 4096

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* path with its extension `from` replaced by `to`; owned (free()). */
static char *
sibling(const char *path, const char *from, const char *to)
{
	size_t n = strlen(path), f = strlen(from);
	char *out;

	if (!has_suffix(path, from))
		return NULL;
	out = malloc(n - f + strlen(to) + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, path, n - f);
	strcpy(out + n - f, to);
	return out;
}

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

int
lk_keyset_load_file(struct lk_keyset *ks, const char *path, struct lk_error *err)
{
	struct lk_secret *text = NULL;
	struct lk_key *k = NULL;
	char *crt_path = NULL, *crt = NULL;
	size_t crt_len = 0;
	const char *p, *end;
	int r;

	r = lk_secret_read_file(path, LK_KEYFILE_MAX, false, &text);
	if (r < 0)
		return lk_error_set(err, r, "%s: %s", path, strerror(-r));
	p = lk_secret_cstr(text);
	end = p + lk_secret_len(text);
	p = skip_space(p, end);
	if (strncmp(p, LK_LK1_PRIV_PREFIX, strlen(LK_LK1_PRIV_PREFIX)) == 0 ||
	    strncmp(p, LK_LK1_PUB_PREFIX, strlen(LK_LK1_PUB_PREFIX)) == 0) {
		r = lk_key_x25519_parse(p, (size_t)(end - p), &k, err);
	} else if (strstr(p, "PRIVATE KEY-----") != NULL) {
		const char *in_file = strstr(p, "-----BEGIN CERTIFICATE-----");

		if (in_file != NULL) {
			r = lk_key_rsa_from_pem(p, (size_t)(end - p), in_file, (size_t)(end - in_file),
						true, &k, err);
		} else {
			crt_path = sibling(path, ".key", ".crt");
			if (crt_path == NULL)
				crt_path = sibling(path, ".pem", ".crt");
			if (crt_path != NULL && file_exists(crt_path)) {
				struct lk_secret *c = NULL;

				r = lk_secret_read_file(crt_path, LK_KEYFILE_MAX, false, &c);
				if (r < 0) {
					lk_error_set(err, r, "%s: %s", crt_path, strerror(-r));
					goto out;
				}
				crt_len = lk_secret_len(c);
				crt = strndup(lk_secret_cstr(c), crt_len);
				lk_secret_free(c);
				if (crt == NULL) {
					r = lk_error_set(err, -ENOMEM, "out of memory");
					goto out;
				}
			}
			r = lk_key_rsa_from_pem(p, (size_t)(end - p), crt, crt_len, true, &k, err);
		}
	} else if (strstr(p, "-----BEGIN CERTIFICATE-----") != NULL) {
		r = lk_key_rsa_from_pem(NULL, 0, p, (size_t)(end - p), true, &k, err);
	} else {
		r = lk_error_set(err, -ENOTSUP, "%s: not a PEM key, certificate or lk1 key file",
				 path);
		goto out;
	}
	if (r < 0) {
		lk_error_prefix(err, "%s", path);
		goto out;
	}
	r = lk_keyset_add_take(ks, k);
	k = NULL;
	if (r == -E2BIG)
		lk_error_set(err, r, "%s: more than %d keys", path, LK_KEYSET_MAX);
	else if (r == -EEXIST)
		lk_error_set(err, r, "%s: the same key is loaded twice", path);
out:
	lk_key_free(k);
	lk_secret_free(text);
	free(crt_path);
	free(crt);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
lk_keyset_load_dir(struct lk_keyset *ks, const char *dir, struct lk_error *err)
{
	char **names = NULL;
	size_t n = 0, loaded = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (d == NULL)
		return lk_error_set(err, -errno, "%s: %s", dir, strerror(errno));
	names = calloc(KEYDIR_FILES_MAX, sizeof(*names));
	if (names == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n >= KEYDIR_FILES_MAX) {
			r = lk_error_set(err, -E2BIG, "%s: more than %d files", dir, KEYDIR_FILES_MAX);
			goto out;
		}
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
			names[n] = NULL;
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		const char *path = names[i];
		char *other = NULL;
		bool take = false;

		if (!file_exists(path))
			continue;
		if (has_suffix(path, ".key") || has_suffix(path, ".lk1")) {
			take = true;
		} else if (has_suffix(path, ".crt")) {
			other = sibling(path, ".crt", ".key");
			take = other != NULL && !file_exists(other);
		} else if (has_suffix(path, ".lk1.pub")) {
			other = sibling(path, ".lk1.pub", ".lk1");
			take = other != NULL && !file_exists(other);
		}
		free(other);
		if (!take)
			continue;
		r = lk_keyset_load_file(ks, path, err);
		if (r == -EEXIST) {
			r = 0;
			continue;
		}
		if (r < 0)
			goto out;
		loaded++;
	}
	if (loaded == 0)
		r = lk_error_set(err, -ENOENT, "%s: no key files (*.key, *.crt, *.lk1, *.lk1.pub)",
				 dir);
out:
	if (names != NULL) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	closedir(d);
	return r;
}

