/* jwt.c — service-account JWT decoding and signature checks. */
#include "devserver/jwt.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
dev_base64url_decode(const char *in, size_t in_len, unsigned char *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	long n = 0;

	if (in_len % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < in_len; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -EINVAL;
	return n;
}

/* Decodes one base64url JSON part into an object. Returns a new reference or NULL. */
static json_t *
decode_part(const char *p, size_t n)
{
	unsigned char *buf = malloc(n * 3 / 4 + 1);
	json_t *obj = NULL;
	long len;

	if (buf == NULL)
		return NULL;
	len = dev_base64url_decode(p, n, buf);
	if (len > 0)
		obj = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (obj != NULL && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

/* Copies a string claim; false when absent, not a string, empty or too long. */
static bool
claim_str(const json_t *obj, const char *key, char *out, size_t outlen)
{
	const json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return false;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= outlen || memchr(s, '\0', n) != NULL)
		return false;
	memcpy(out, s, n + 1);
	return true;
}

static int
claim_time(const json_t *payload, const char *key, bool *ret_has, int64_t *ret)
{
	const json_t *v = json_object_get(payload, key);
	double d;

	if (v == NULL)
		return 0;
	if (json_is_integer(v)) {
		*ret = (int64_t)json_integer_value(v);
	} else if (json_is_real(v)) {
		d = json_real_value(v);
		if (!isfinite(d) || d < -9e15 || d > 9e15)
			return -EINVAL;
		*ret = (int64_t)d;
	} else {
		return -EINVAL;
	}
	*ret_has = true;
	return 0;
}

int
dev_jwt_decode(const char *text, size_t len, struct dev_jwt *ret, struct lk_error *err)
{
	const char *dot1, *dot2;
	json_t *header = NULL, *payload = NULL;
	const json_t *k8s;
	long n;
	int r = -EINVAL;

	memset(ret, 0, sizeof(*ret));
	if (len == 0 || len > DEV_JWT_MAX)
		return lk_error_set(err, -EINVAL, "jwt: empty or longer than %u bytes", DEV_JWT_MAX);
	dot1 = memchr(text, '.', len);
	dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - text)) : NULL;
	if (dot1 == NULL || dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - text)) != NULL)
		return lk_error_set(err, -EINVAL, "jwt: not three dot-separated parts");
	header = decode_part(text, (size_t)(dot1 - text));
	payload = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (header == NULL || payload == NULL) {
		lk_error_set(err, -EINVAL, "jwt: %s is not base64url-encoded JSON object",
		    header == NULL ? "header" : "payload");
		goto out;
	}
	if (!claim_str(header, "alg", ret->alg, sizeof(ret->alg))) {
		lk_error_set(err, -EINVAL, "jwt: header has no alg");
		goto out;
	}
	k8s = json_object_get(payload, "kubernetes.io");
	if (json_is_object(k8s)) {
		const json_t *sa = json_object_get(k8s, "serviceaccount");

		claim_str(k8s, "namespace", ret->sa_namespace, sizeof(ret->sa_namespace));
		claim_str(sa, "name", ret->sa_name, sizeof(ret->sa_name));
		claim_str(sa, "uid", ret->sa_uid, sizeof(ret->sa_uid));
	} else {
		claim_str(payload, "kubernetes.io/serviceaccount/service-account.name",
		    ret->sa_name, sizeof(ret->sa_name));
		if (!claim_str(payload, "kubernetes.io/serviceaccount/namespace",
			ret->sa_namespace, sizeof(ret->sa_namespace)))
			claim_str(payload, "kubernetes.io/serviceaccount/service-account.namespace",
			    ret->sa_namespace, sizeof(ret->sa_namespace));
		claim_str(payload, "kubernetes.io/serviceaccount/service-account.uid",
		    ret->sa_uid, sizeof(ret->sa_uid));
		claim_str(payload, "kubernetes.io/serviceaccount/secret.name",
		    ret->secret_name, sizeof(ret->secret_name));
	}
	if (ret->sa_name[0] == '\0' || ret->sa_namespace[0] == '\0') {
		lk_error_set(err, -EINVAL, "jwt: no service account name or namespace claim");
		goto out;
	}
	claim_str(payload, "iss", ret->iss, sizeof(ret->iss));
	{
		const json_t *aud = json_object_get(payload, "aud"), *a;
		size_t i;

		if (json_is_string(aud) && json_string_length(aud) <= DEV_JWT_CLAIM_MAX)
			snprintf(ret->aud[ret->naud++], sizeof(ret->aud[0]), "%s", json_string_value(aud));
		json_array_foreach(aud, i, a) {
			if (ret->naud < DEV_JWT_AUD_MAX && json_is_string(a) &&
			    json_string_length(a) <= DEV_JWT_CLAIM_MAX)
				snprintf(ret->aud[ret->naud++], sizeof(ret->aud[0]), "%s", json_string_value(a));
		}
	}
	if (claim_time(payload, "exp", &ret->has_exp, &ret->exp) < 0 ||
	    claim_time(payload, "nbf", &ret->has_nbf, &ret->nbf) < 0) {
		lk_error_set(err, -EINVAL, "jwt: exp or nbf is not a number");
		goto out;
	}
	ret->signed_len = (size_t)(dot2 - text);
	ret->signed_part = malloc(ret->signed_len + 1);
	ret->signature = malloc((len - ret->signed_len) * 3 / 4 + 1);
	if (ret->signed_part == NULL || ret->signature == NULL) {
		lk_error_set(err, -ENOMEM, "jwt: out of memory");
		r = -ENOMEM;
		goto out;
	}
	memcpy(ret->signed_part, text, ret->signed_len);
	ret->signed_part[ret->signed_len] = '\0';
	n = dev_base64url_decode(dot2 + 1, len - ret->signed_len - 1, ret->signature);
	if (n < 0) {
		lk_error_set(err, -EINVAL, "jwt: signature is not base64url");
		goto out;
	}
	ret->signature_len = (size_t)n;
	r = 0;
out:
	json_decref(header);
	json_decref(payload);
	return r;
}

bool
dev_jwt_has_audience(const struct dev_jwt *jwt, const char *aud)
{
	for (size_t i = 0; i < jwt->naud; i++)
		if (strcmp(jwt->aud[i], aud) == 0)
			return true;
	return false;
}

void
dev_jwt_clear(struct dev_jwt *jwt)
{
	if (jwt == NULL)
		return;
	free(jwt->signed_part);
	free(jwt->signature);
	memset(jwt, 0, sizeof(*jwt));
}

static EVP_PKEY *
load_key(const char *pem, size_t pem_len)
{
	OSSL_DECODER_CTX *dctx = NULL;
	const unsigned char *p = (const unsigned char *)pem;
	size_t left = pem_len;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIO *bio;

	/* "PUBLIC KEY" (SPKI) and "RSA PUBLIC KEY" (PKCS#1) both decode here. */
	dctx = OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY,
	    NULL, NULL);
	if (dctx != NULL && OSSL_DECODER_from_data(dctx, &p, &left) != 1)
		key = NULL;
	OSSL_DECODER_CTX_free(dctx);
	if (key != NULL)
		return key;
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL)
		return NULL;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert != NULL)
		key = X509_get_pubkey(cert);
	X509_free(cert);
	BIO_free(bio);
	return key;
}

/* ES256 signatures are r || s, 32 bytes each; OpenSSL wants DER. */
static int
es256_to_der(const unsigned char *sig, size_t len, unsigned char **ret_der, size_t *ret_len)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int n, rc = -EINVAL;

	if (len != 64)
		return -EINVAL;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	n = i2d_ECDSA_SIG(es, &der);
	if (n <= 0)
		goto out;
	*ret_der = der;
	*ret_len = (size_t)n;
	rc = 0;
out:
	ECDSA_SIG_free(es);
	return rc;
}

int
dev_jwt_verify(const struct dev_jwt *jwt, const char *pem, size_t pem_len, struct lk_error *err)
{
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = jwt->signature;
	size_t sig_len = jwt->signature_len;
	int want, r;

	if (pem_len == 0 || pem_len > DEV_JWT_PEM_MAX)
		return lk_error_set(err, -EINVAL, "jwt: PEM key empty or too long");
	if (strcmp(jwt->alg, "RS256") == 0)
		want = EVP_PKEY_RSA;
	else if (strcmp(jwt->alg, "ES256") == 0)
		want = EVP_PKEY_EC;
	else
		return lk_error_set(err, -EACCES, "jwt: unsupported alg \"%.15s\"", jwt->alg);
	key = load_key(pem, pem_len);
	if (key == NULL) {
		r = lk_error_set(err, -EINVAL, "jwt: cannot read PEM public key");
		goto out;
	}
	if (EVP_PKEY_get_base_id(key) != want) {
		r = lk_error_set(err, -EINVAL, "jwt: key type does not fit alg %s", jwt->alg);
		goto out;
	}
	if (want == EVP_PKEY_EC) {
		if (es256_to_der(jwt->signature, jwt->signature_len, &der, &sig_len) < 0) {
			r = lk_error_set(err, -EACCES, "jwt: malformed ES256 signature");
			goto out;
		}
		sig = der;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1) {
		r = lk_error_set(err, -ENOMEM, "jwt: cannot set up verification");
		goto out;
	}
	if (EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jwt->signed_part,
		jwt->signed_len) != 1) {
		r = lk_error_set(err, -EACCES, "jwt: signature does not verify");
		goto out;
	}
	r = 0;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}
