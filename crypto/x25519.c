/* x25519.c — X25519 key pairs for lk1 and their key file texts (crypto.h). */
#include "crypto/key_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- X25519 ------------------------------------------------------------------- */

int
lk_key_x25519_generate(struct lk_key **ret)
{
	struct lk_key *k = lk_key_alloc(LK_KEY_X25519);

	if (k == NULL)
		return -ENOMEM;
	k->x_sk = lk_secret_new(NULL, crypto_scalarmult_SCALARBYTES);
	if (k->x_sk == NULL) {
		lk_key_free(k);
		return -ENOMEM;
	}
	randombytes_buf((unsigned char *)lk_secret_bytes(k->x_sk), crypto_scalarmult_SCALARBYTES);
	crypto_scalarmult_base(k->x_pk, lk_secret_bytes(k->x_sk));
	lk1_key_id_of(k->x_pk, k->id_bytes);
	lk_hex_encode(k->id_bytes, LK_KEY_ID_BYTES, k->id, sizeof(k->id));
	*ret = k;
	return 0;
}

int
lk_key_x25519_parse(const char *text, size_t len, struct lk_key **ret, struct lk_error *err)
{
	unsigned char raw[crypto_scalarmult_BYTES];
	struct lk_key *k = NULL;
	const char *b64;
	size_t plen, got = 0, blen;
	const char *end = NULL;
	bool priv;
	int r = -EINVAL;

	if (len > LK_KEYFILE_MAX)
		return lk_error_set(err, -E2BIG, "lk1 key file too large");
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
			   text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len >= strlen(LK_LK1_PRIV_PREFIX) &&
	    memcmp(text, LK_LK1_PRIV_PREFIX, strlen(LK_LK1_PRIV_PREFIX)) == 0) {
		priv = true;
		plen = strlen(LK_LK1_PRIV_PREFIX);
	} else if (len >= strlen(LK_LK1_PUB_PREFIX) &&
		   memcmp(text, LK_LK1_PUB_PREFIX, strlen(LK_LK1_PUB_PREFIX)) == 0) {
		priv = false;
		plen = strlen(LK_LK1_PUB_PREFIX);
	} else {
		return lk_error_set(err, -ENOTSUP, "not an lk1 key file (no '%s' or '%s' prefix)",
				    LK_LK1_PUB_PREFIX, LK_LK1_PRIV_PREFIX);
	}
	b64 = text + plen;
	blen = len - plen;
	if (sodium_base642bin(raw, sizeof(raw), b64, blen, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != b64 + blen ||
	    got != sizeof(raw)) {
		r = lk_error_set(err, -EINVAL, "lk1 key file: the key is not 32 bytes of base64");
		goto out;
	}
	k = lk_key_alloc(LK_KEY_X25519);
	if (k == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (priv) {
		k->x_sk = lk_secret_new(raw, sizeof(raw));
		if (k->x_sk == NULL) {
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		crypto_scalarmult_base(k->x_pk, raw);
	} else {
		memcpy(k->x_pk, raw, sizeof(raw));
	}
	lk1_key_id_of(k->x_pk, k->id_bytes);
	lk_hex_encode(k->id_bytes, LK_KEY_ID_BYTES, k->id, sizeof(k->id));
	*ret = k;
	k = NULL;
	r = 0;
out:
	sodium_memzero(raw, sizeof(raw));
	lk_key_free(k);
	return r;
}

/* prefix || base64(bytes) || "\n" into a secret */
static int
key_text(const char *prefix, const unsigned char *bytes, size_t n, struct lk_secret **ret)
{
	char buf[128];
	size_t pl = strlen(prefix);
	struct lk_secret *s;

	if (pl + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL) + 1 > sizeof(buf))
		return -ENOSPC;
	memcpy(buf, prefix, pl);
	sodium_bin2base64(buf + pl, sizeof(buf) - pl, bytes, n, sodium_base64_VARIANT_ORIGINAL);
	pl = strlen(buf);
	buf[pl++] = '\n';
	s = lk_secret_new(buf, pl);
	sodium_memzero(buf, sizeof(buf));
	if (s == NULL)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int
lk_key_x25519_private_text(const struct lk_key *k, struct lk_secret **ret)
{
	if (k->kind != LK_KEY_X25519 || k->x_sk == NULL)
		return -ENOKEY;
	return key_text(LK_LK1_PRIV_PREFIX, lk_secret_bytes(k->x_sk), lk_secret_len(k->x_sk), ret);
}

int
lk_key_x25519_public_text(const struct lk_key *k, char **ret)
{
	struct lk_secret *s = NULL;
	char *out;
	int r;

	if (k->kind != LK_KEY_X25519)
		return -EINVAL;
	r = key_text(LK_LK1_PUB_PREFIX, k->x_pk, sizeof(k->x_pk), &s);
	if (r < 0)
		return r;
	out = strdup(lk_secret_cstr(s));
	lk_secret_free(s);
	if (out == NULL)
		return -ENOMEM;
	*ret = out;
	return 0;
}

