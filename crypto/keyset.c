/* keyset.c — sets of keys: adding, the newest of a kind, opening a value with whichever
 * key fits (crypto.h). */
#include "crypto/key_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

struct lk_keyset {
	struct lk_key *keys[LK_KEYSET_MAX];
	size_t n;
};

/* ---- key sets ----------------------------------------------------------------- */

struct lk_keyset *
lk_keyset_new(void)
{
	return calloc(1, sizeof(struct lk_keyset));
}

struct lk_keyset *
lk_keyset_free(struct lk_keyset *ks)
{
	if (ks == NULL)
		return NULL;
	for (size_t i = 0; i < ks->n; i++)
		lk_key_free(ks->keys[i]);
	free(ks);
	return NULL;
}

/* The same public key (not just the same 8-byte id, which two keys may share). */
static bool
same_public_key(const struct lk_key *a, const struct lk_key *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == LK_KEY_X25519)
		return sodium_memcmp(a->x_pk, b->x_pk, sizeof(a->x_pk)) == 0;
	return EVP_PKEY_eq(a->pkey, b->pkey) == 1;
}

int
lk_keyset_add_take(struct lk_keyset *ks, struct lk_key *k)
{
	for (size_t i = 0; i < ks->n; i++) {
		struct lk_key *old = ks->keys[i];

		if (!same_public_key(old, k))
			continue;
		/* A certificate or .lk1.pub read before the private key (a key directory
		 * holding a backup manifest): the private half replaces the public one. */
		if (lk_key_has_private(k) && !lk_key_has_private(old)) {
			if (k->cert == NULL && old->cert != NULL) {
				k->cert = old->cert;
				old->cert = NULL;
				lk_key_cert_times(k);
			}
			ks->keys[i] = k;
			lk_key_free(old);
			return 0;
		}
		lk_key_free(k);
		ERR_clear_error();
		return -EEXIST;
	}
	ERR_clear_error();
	if (ks->n >= LK_KEYSET_MAX) {
		lk_key_free(k);
		return -E2BIG;
	}
	ks->keys[ks->n++] = k;
	return 0;
}

size_t
lk_keyset_count(const struct lk_keyset *ks)
{
	return ks->n;
}

const struct lk_key *
lk_keyset_get(const struct lk_keyset *ks, size_t i)
{
	return i < ks->n ? ks->keys[i] : NULL;
}

const struct lk_key *
lk_keyset_newest(const struct lk_keyset *ks, enum lk_key_kind kind)
{
	const struct lk_key *best = NULL;

	for (size_t i = 0; i < ks->n; i++) {
		const struct lk_key *k = ks->keys[i];

		if (k->kind != kind)
			continue;
		if (best == NULL || k->not_before >= best->not_before)
			best = k;
	}
	return best;
}

int
lk_keyset_open(const struct lk_keyset *ks, const char *label, const char *text, size_t len,
	       struct lk_secret **ret, struct lk_error *err)
{
	return lk_keyset_open_with(ks, label, text, len, NULL, ret, NULL, err);
}

/* Tries RSA key k on blob: -ENOKEY when k cannot open anything (public only or X25519). */
static int
try_rsa(const struct lk_key *k, const char *label, const unsigned char *blob, size_t blob_len,
	struct lk_secret **ret, struct lk_error *err)
{
	if (k->kind != LK_KEY_RSA || !k->rsa_private)
		return -ENOKEY;
	return lk_hybrid_open_blob(k, label, blob, blob_len, ret, err);
}

int
lk_keyset_open_with(const struct lk_keyset *ks, const char *label, const char *text, size_t len,
		    const char *prefer_id, struct lk_secret **ret, const struct lk_key **ret_key,
		    struct lk_error *err)
{
	unsigned char *blob = NULL;
	size_t blob_len = 0, tried = 0, first = ks->n;
	int r;

	if (ret_key != NULL)
		*ret_key = NULL;
	if (len > LK_SEALED_TEXT_MAX)
		return lk_error_set(err, -E2BIG, "sealed value longer than %zu bytes",
				    (size_t)LK_SEALED_TEXT_MAX);
	if (len >= strlen(LK_LK1_TEXT_PREFIX) &&
	    memcmp(text, LK_LK1_TEXT_PREFIX, strlen(LK_LK1_TEXT_PREFIX)) == 0) {
		char id[LK_KEY_ID_HEX + 1];

		r = lk1_key_id(text, len, id, sizeof(id));
		if (r < 0)
			return lk_error_set(err, r == -E2BIG ? r : -EINVAL,
					    "malformed lk1 value (base64, length or version)");
		/* Ids are 64 bits: two keys may share one, so every key with the id is tried. */
		r = -ENOKEY;
		for (size_t i = 0; i < ks->n; i++) {
			const struct lk_key *k = ks->keys[i];

			if (k->kind != LK_KEY_X25519 || k->x_sk == NULL || strcmp(k->id, id) != 0)
				continue;
			r = lk1_open(k, label, text, len, ret, err);
			if (r == 0 && ret_key != NULL)
				*ret_key = k;
			if (r == 0 || r == -ENOMEM)
				return r;
		}
		if (r != -ENOKEY)
			return r;
		return lk_error_set(err, -ENOKEY,
				    "lk1 value is sealed to key %s, which is not among the keys loaded",
				    id);
	}
	r = lk_b64_decode_raw(text, len, LK_B64_STD_GO, &blob, &blob_len);
	if (r < 0)
		return lk_error_set(err, -EINVAL, "sealed value is not valid base64");
	/* The preferred key first (the one that opened this value last time: an RSA
	 * decryption that fails costs as much as one that succeeds), then the others. */
	for (size_t i = 0; prefer_id != NULL && i < ks->n; i++) {
		if (ks->keys[i]->kind == LK_KEY_RSA && ks->keys[i]->rsa_private &&
		    strcmp(ks->keys[i]->id, prefer_id) == 0) {
			first = i;
			break;
		}
	}
	r = -ENOKEY;
	for (size_t j = 0; j <= ks->n; j++) {
		size_t i = j == 0 ? first : j - 1;

		if (i >= ks->n || (j > 0 && i == first))
			continue;
		r = try_rsa(ks->keys[i], label, blob, blob_len, ret, err);
		if (r == -ENOKEY)
			continue;
		tried++;
		if (r == 0 && ret_key != NULL)
			*ret_key = ks->keys[i];
		if (r == 0 || r == -EINVAL || r == -ENOMEM)
			goto out;
	}
	if (tried == 0)
		r = lk_error_set(err, -ENOKEY, "no RSA private key loaded to open the value");
	else if (tried > 1)
		r = lk_error_set(err, -EBADMSG,
				 "sealed value does not open with any of the %zu RSA keys: another "
				 "key, altered, or sealed for another scope (label '%s')", tried, label);
out:
	free(blob);
	return r;
}

