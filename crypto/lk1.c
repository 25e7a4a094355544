/* lk1.c — the lk1 envelope: ephemeral X25519, BLAKE2b key derivation,
 * XChaCha20-Poly1305-IETF over the value with the header and scope label as associated
 * data. docs/internals/envelope.md has the byte layout. */
#include "crypto/key_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LK1_VERSION 0x01
/* version, key id, ephemeral public key */
#define LK1_HEADER_LEN (1 + LK_KEY_ID_BYTES + crypto_scalarmult_BYTES)
#define LK1_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define LK1_MIN_LEN (LK1_HEADER_LEN + LK1_TAG_LEN)
#define LK1_PREFIX_LEN (sizeof(LK_LK1_TEXT_PREFIX) - 1)

static const char kdf_context[] = "latchkey-lk1-kdf-v1";
static const char id_context[] = "latchkey-lk1-key-id";

void
lk1_key_id_of(const unsigned char pk[crypto_scalarmult_BYTES], unsigned char id[LK_KEY_ID_BYTES])
{
	unsigned char h[crypto_generichash_BYTES];
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)id_context, sizeof(id_context) - 1);
	crypto_generichash_update(&st, pk, crypto_scalarmult_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(id, h, LK_KEY_ID_BYTES);
}

/* key || nonce = BLAKE2b-512(context || shared || epk || rpk)[0..56] */
static void
derive(const unsigned char shared[crypto_scalarmult_BYTES],
       const unsigned char epk[crypto_scalarmult_BYTES],
       const unsigned char rpk[crypto_scalarmult_BYTES],
       unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES],
       unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	unsigned char h[crypto_generichash_BYTES_MAX];
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)kdf_context, sizeof(kdf_context) - 1);
	crypto_generichash_update(&st, shared, crypto_scalarmult_BYTES);
	crypto_generichash_update(&st, epk, crypto_scalarmult_BYTES);
	crypto_generichash_update(&st, rpk, crypto_scalarmult_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(key, h, crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
	memcpy(nonce, h + crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	       crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	sodium_memzero(h, sizeof(h));
	sodium_memzero(&st, sizeof(st));
}

/* associated data = header || label; *ret malloc'd */
static int
make_ad(const unsigned char *header, const char *label, unsigned char **ret, size_t *ret_len)
{
	size_t ll = strlen(label);
	unsigned char *ad;

	if (ll > LK_LABEL_MAX)
		return -EINVAL;
	ad = malloc(LK1_HEADER_LEN + ll + 1);
	if (ad == NULL)
		return -ENOMEM;
	memcpy(ad, header, LK1_HEADER_LEN);
	memcpy(ad + LK1_HEADER_LEN, label, ll);
	*ret = ad;
	*ret_len = LK1_HEADER_LEN + ll;
	return 0;
}

int
lk1_seal(const struct lk_key *k, const char *label, const void *pt, size_t n, char **ret,
	 struct lk_error *err)
{
	unsigned char esk[crypto_scalarmult_SCALARBYTES], shared[crypto_scalarmult_BYTES];
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char *blob = NULL, *ad = NULL;
	char *b64 = NULL, *text = NULL;
	size_t blob_len, ad_len = 0, b64_len;
	int r;

	if (k->kind != LK_KEY_X25519)
		return lk_error_set(err, -EINVAL, "key %s is not an lk1 (X25519) key", k->id);
	if (n > LK_SECRET_MAX)
		return lk_error_set(err, -E2BIG, "value larger than %u bytes", LK_SECRET_MAX);
	blob_len = LK1_HEADER_LEN + n + LK1_TAG_LEN;
	blob = malloc(blob_len);
	if (blob == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	blob[0] = LK1_VERSION;
	memcpy(blob + 1, k->id_bytes, LK_KEY_ID_BYTES);
	randombytes_buf(esk, sizeof(esk));
	crypto_scalarmult_base(blob + 1 + LK_KEY_ID_BYTES, esk);
	if (crypto_scalarmult(shared, esk, k->x_pk) != 0) {
		r = lk_error_set(err, -EINVAL, "key %s is a weak X25519 public key", k->id);
		goto out;
	}
	derive(shared, blob + 1 + LK_KEY_ID_BYTES, k->x_pk, key, nonce);
	r = make_ad(blob, label, &ad, &ad_len);
	if (r < 0) {
		lk_error_set(err, r, "bad scope label");
		goto out;
	}
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + LK1_HEADER_LEN, NULL, pt, n, ad, ad_len,
						   NULL, nonce, key);
	r = lk_b64_encode(blob, blob_len, LK_B64_STD, &b64);
	if (r < 0) {
		lk_error_set(err, r, "cannot encode the envelope");
		goto out;
	}
	b64_len = strlen(b64);
	text = malloc(LK1_PREFIX_LEN + b64_len + 1);
	if (text == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(text, LK_LK1_TEXT_PREFIX, LK1_PREFIX_LEN);
	memcpy(text + LK1_PREFIX_LEN, b64, b64_len + 1);
	*ret = text;
	text = NULL;
	r = 0;
out:
	sodium_memzero(esk, sizeof(esk));
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(key, sizeof(key));
	free(blob);
	free(ad);
	free(b64);
	free(text);
	return r;
}

/* Decodes the text form into a blob of at least the minimum length. */
static int
lk1_decode(const char *text, size_t len, unsigned char **ret, size_t *ret_len, struct lk_error *err)
{
	unsigned char *blob = NULL;
	size_t blob_len = 0;
	int r;

	if (len > LK_SEALED_TEXT_MAX)
		return lk_error_set(err, -E2BIG, "lk1 value longer than %zu bytes",
				    (size_t)LK_SEALED_TEXT_MAX);
	if (len < LK1_PREFIX_LEN || memcmp(text, LK_LK1_TEXT_PREFIX, LK1_PREFIX_LEN) != 0)
		return lk_error_set(err, -EINVAL, "not an lk1 value (no 'lk1:' prefix)");
	r = lk_b64_decode_raw(text + LK1_PREFIX_LEN, len - LK1_PREFIX_LEN, LK_B64_STD, &blob,
			      &blob_len);
	if (r < 0)
		return lk_error_set(err, -EINVAL, "lk1 value is not valid base64");
	if (blob_len < LK1_MIN_LEN) {
		free(blob);
		return lk_error_set(err, -EINVAL, "lk1 value too short (%zu bytes)", blob_len);
	}
	if (blob[0] != LK1_VERSION) {
		r = blob[0];
		free(blob);
		return lk_error_set(err, -EINVAL, "lk1 envelope version %d is not supported", r);
	}
	*ret = blob;
	*ret_len = blob_len;
	return 0;
}

int
lk1_key_id(const char *text, size_t len, char *id, size_t idlen)
{
	unsigned char *blob = NULL;
	size_t blob_len;
	int r;

	r = lk1_decode(text, len, &blob, &blob_len, NULL);
	if (r < 0)
		return r;
	r = lk_hex_encode(blob + 1, LK_KEY_ID_BYTES, id, idlen);
	free(blob);
	return r;
}

int
lk1_open(const struct lk_key *k, const char *label, const char *text, size_t len,
	 struct lk_secret **ret, struct lk_error *err)
{
	unsigned char shared[crypto_scalarmult_BYTES];
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char *blob = NULL, *ad = NULL;
	struct lk_secret *pt = NULL;
	size_t blob_len = 0, ad_len = 0, pt_len;
	int r;

	if (k->kind != LK_KEY_X25519 || k->x_sk == NULL)
		return lk_error_set(err, -ENOKEY, "key %s is not an lk1 private key", k->id);
	r = lk1_decode(text, len, &blob, &blob_len, err);
	if (r < 0)
		return r;
	if (!lk_ct_equal(blob + 1, k->id_bytes, LK_KEY_ID_BYTES)) {
		char id[LK_KEY_ID_HEX + 1];

		lk_hex_encode(blob + 1, LK_KEY_ID_BYTES, id, sizeof(id));
		r = lk_error_set(err, -ENOKEY, "lk1 value is sealed to key %s, not %s", id, k->id);
		goto out;
	}
	if (crypto_scalarmult(shared, lk_secret_bytes(k->x_sk), blob + 1 + LK_KEY_ID_BYTES) != 0) {
		r = lk_error_set(err, -EBADMSG, "lk1 value has an invalid ephemeral key");
		goto out;
	}
	derive(shared, blob + 1 + LK_KEY_ID_BYTES, k->x_pk, key, nonce);
	r = make_ad(blob, label, &ad, &ad_len);
	if (r < 0) {
		lk_error_set(err, r, "bad scope label");
		goto out;
	}
	pt_len = blob_len - LK1_MIN_LEN;
	pt = lk_secret_new(NULL, pt_len);
	if (pt == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)lk_secret_bytes(pt), NULL,
						       NULL, blob + LK1_HEADER_LEN,
						       blob_len - LK1_HEADER_LEN, ad, ad_len,
						       nonce, key) != 0) {
		r = lk_error_set(err, -EBADMSG,
				 "lk1 value does not open with key %s: altered, or sealed for "
				 "another scope (label '%s')", k->id, label);
		goto out;
	}
	*ret = pt;
	pt = NULL;
	r = 0;
out:
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(key, sizeof(key));
	lk_secret_free(pt);
	free(blob);
	free(ad);
	return r;
}
