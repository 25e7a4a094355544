/* hybrid.c — the Bitnami sealed-secrets format:
 *   BE16(len(rsa_ct)) || RSA-OAEP-SHA256(K, label) || AES-256-GCM(K, nonce 0^12, no AAD)
 * with the 16-byte tag appended, in standard base64. */
#include "crypto/key_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_KEY_LEN 32
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

static EVP_PKEY_CTX *
oaep_ctx(EVP_PKEY *pkey, const char *label, bool encrypt)
{
	EVP_PKEY_CTX *ctx;
	size_t ll = strlen(label);

	ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL)
		return NULL;
	if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0)
		goto fail;
	if (ll > 0) {
		/* The context takes the copy. An empty label is no label: OAEP hashes "". */
		unsigned char *copy = OPENSSL_memdup(label, ll);
		if (copy == NULL)
			goto fail;
		if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, copy, (int)ll) <= 0) {
			OPENSSL_free(copy);
			goto fail;
		}
	}
	return ctx;
fail:
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

/* AES-256-GCM with the zero nonce; out must hold n (+ tag when sealing). */
static int
gcm(bool encrypt, const unsigned char key[SESSION_KEY_LEN], const unsigned char *in, size_t n,
    unsigned char *out, unsigned char tag[GCM_TAG_LEN])
{
	static const unsigned char nonce[GCM_NONCE_LEN];
	EVP_CIPHER_CTX *c;
	int len = 0, r = -EIO;

	if (n > INT32_MAX)
		return -E2BIG;
	c = EVP_CIPHER_CTX_new();
	if (c == NULL)
		return -ENOMEM;
	if ((encrypt ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL)
		     : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, encrypt ? 1 : 0) != 1)
		goto out;
	if (n > 0 && EVP_CipherUpdate(c, out, &len, in, (int)n) != 1)
		goto out;
	if (encrypt) {
		if (EVP_CipherFinal_ex(c, out + len, &len) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) != 1)
			goto out;
	} else {
		if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) != 1)
			goto out;
		if (EVP_CipherFinal_ex(c, out + len, &len) != 1) {
			r = -EBADMSG;
			goto out;
		}
	}
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return r;
}

int
lk_hybrid_seal(const struct lk_key *k, const char *label, const void *pt, size_t n, char **ret,
	       struct lk_error *err)
{
	unsigned char key[SESSION_KEY_LEN];
	unsigned char *blob = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t rsa_len = 0, blob_len;
	int r;

	if (k->kind != LK_KEY_RSA)
		return lk_error_set(err, -EINVAL, "key %s is not an RSA key", k->id);
	if (n > LK_SECRET_MAX)
		return lk_error_set(err, -E2BIG, "value larger than %u bytes", LK_SECRET_MAX);
	randombytes_buf(key, sizeof(key));
	ctx = oaep_ctx(k->pkey, label, true);
	if (ctx == NULL || EVP_PKEY_encrypt(ctx, NULL, &rsa_len, key, sizeof(key)) <= 0 ||
	    rsa_len > 0xffff) {
		r = lk_error_set(err, -EIO, "RSA-OAEP setup failed for key %s", k->id);
		goto out;
	}
	blob_len = 2 + rsa_len + n + GCM_TAG_LEN;
	blob = malloc(blob_len);
	if (blob == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (EVP_PKEY_encrypt(ctx, blob + 2, &rsa_len, key, sizeof(key)) <= 0) {
		r = lk_error_set(err, -EIO, "RSA-OAEP encryption failed for key %s", k->id);
		goto out;
	}
	blob[0] = (unsigned char)(rsa_len >> 8);
	blob[1] = (unsigned char)(rsa_len & 0xff);
	blob_len = 2 + rsa_len + n + GCM_TAG_LEN;
	r = gcm(true, key, pt, n, blob + 2 + rsa_len, blob + 2 + rsa_len + n);
	if (r < 0) {
		lk_error_set(err, r, "AES-256-GCM encryption failed");
		goto out;
	}
	r = lk_b64_encode(blob, blob_len, LK_B64_STD, ret);
	if (r < 0)
		lk_error_set(err, r, "cannot encode the sealed value");
out:
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_CTX_free(ctx);
	free(blob);
	ERR_clear_error();
	return r;
}

int
lk_hybrid_open_blob(const struct lk_key *k, const char *label, const unsigned char *blob,
		    size_t len, struct lk_secret **ret, struct lk_error *err)
{
	struct lk_secret *pt = NULL, *keybuf = NULL;
	unsigned char *key;
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char tag[GCM_TAG_LEN];
	size_t rsa_len, key_len, ct_len;
	unsigned char *out_buf = NULL;
	int r;

	if (k->kind != LK_KEY_RSA || !k->rsa_private)
		return lk_error_set(err, -ENOKEY, "key %s is not an RSA private key", k->id);
	if (len < 2)
		return lk_error_set(err, -EINVAL, "sealed value too short");
	rsa_len = ((size_t)blob[0] << 8) | blob[1];
	if (len < 2 + rsa_len + GCM_TAG_LEN)
		return lk_error_set(err, -EINVAL, "sealed value too short for its %zu-byte RSA part",
				    rsa_len);
	if (rsa_len != (size_t)EVP_PKEY_get_size(k->pkey))
		return lk_error_set(err, -EBADMSG,
				    "sealed value's RSA part (%zu bytes) does not fit key %s",
				    rsa_len, k->id);
	/* OpenSSL wants room for a whole modulus before it checks the OAEP padding. */
	keybuf = lk_secret_new(NULL, rsa_len);
	if (keybuf == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	key = (unsigned char *)lk_secret_bytes(keybuf);
	key_len = rsa_len;
	ctx = oaep_ctx(k->pkey, label, false);
	if (ctx == NULL) {
		r = lk_error_set(err, -EIO, "RSA-OAEP setup failed for key %s", k->id);
		goto out;
	}
	if (EVP_PKEY_decrypt(ctx, key, &key_len, blob + 2, rsa_len) <= 0 ||
	    key_len != SESSION_KEY_LEN) {
		r = lk_error_set(err, -EBADMSG,
				 "sealed value does not open with key %s: another key, or sealed "
				 "for another scope (label '%s')", k->id, label);
		goto out;
	}
	ct_len = len - 2 - rsa_len - GCM_TAG_LEN;
	memcpy(tag, blob + 2 + rsa_len + ct_len, GCM_TAG_LEN);
	pt = lk_secret_new(NULL, ct_len);
	if (pt == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	out_buf = (unsigned char *)lk_secret_bytes(pt);
	r = gcm(false, key, blob + 2 + rsa_len, ct_len, out_buf, tag);
	if (r < 0) {
		lk_error_set(err, r == -EBADMSG ? r : -EIO,
			     "sealed value with key %s fails authentication: altered", k->id);
		r = r == -EBADMSG ? r : -EIO;
		goto out;
	}
	*ret = pt;
	pt = NULL;
	r = 0;
out:
	lk_secret_free(keybuf);
	EVP_PKEY_CTX_free(ctx);
	lk_secret_free(pt);
	ERR_clear_error();
	return r;
}
