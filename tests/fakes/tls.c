/* tls.c — the test CA, the server certificate and the service-account signing key
 * (OpenSSL 3), and RS256 JWTs. The private keys never leave memory. */
#include "fake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Validity of the generated certificates. */
#define TLS_CERT_DAYS 3650
/* Size of the service-account RSA key. */
#define TLS_SA_BITS 2048
/* Longest JWT part accepted for verification. */
#define TLS_JWT_MAX FK_TOKEN_MAX

static char *
bio_string(BIO *bio)
{
	char *data, *out;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return out;
}

static char *
cert_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (bio != NULL && PEM_write_bio_X509(bio, x) == 1)
		s = bio_string(bio);
	BIO_free(bio);
	return s;
}

static char *
key_pem(EVP_PKEY *k, bool private)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;
	int ok;

	if (bio == NULL)
		return NULL;
	ok = private ? PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_bio_PUBKEY(bio, k);
	if (ok == 1)
		s = bio_string(bio);
	BIO_free(bio);
	return s;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int r;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -EINVAL;
	r = X509_add_ext(cert, ext, -1) == 1 ? 0 : -EINVAL;
	X509_EXTENSION_free(ext);
	return r;
}

/* A certificate for key, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	bool ok = false;

	if (x == NULL)
		return NULL;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto out;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)TLS_CERT_DAYS * 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
					       : X509_get_subject_name(x));
	if (issuer == NULL) {
		if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
		    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
		    add_ext(x, x, NID_subject_key_identifier, "hash") < 0)
			goto out;
	} else {
		if (add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		    add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
		    add_ext(x, issuer, NID_ext_key_usage, "serverAuth") < 0 ||
		    add_ext(x, issuer, NID_authority_key_identifier, "keyid:always") < 0 ||
		    add_ext(x, issuer, NID_subject_alt_name, san) < 0)
			goto out;
	}
	if (X509_sign(x, issuer_key, EVP_sha256()) == 0)
		goto out;
	ok = true;
out:
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static bool
is_ip(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int
fk_keys_generate(struct fk_keys *k, const char *host)
{
	EVP_PKEY *ca_key = NULL, *srv_key = NULL;
	X509 *ca = NULL, *srv = NULL;
	unsigned char *der = NULL, digest[32];
	unsigned int dlen = 0;
	char san[600], *kid;
	int derlen, r = -ENOMEM;

	memset(k, 0, sizeof(*k));
	snprintf(san, sizeof(san), "IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,"
		 "DNS:kubernetes.default,DNS:kubernetes.default.svc");
	if (host[0] != '\0' && strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0 &&
	    strcmp(host, "localhost") != 0 && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0) {
		size_t n = strlen(san);
		snprintf(san + n, sizeof(san) - n, ",%s:%s", is_ip(host) ? "IP" : "DNS", host);
	}
	if ((ca_key = EVP_EC_gen("P-256")) == NULL || (srv_key = EVP_EC_gen("P-256")) == NULL)
		goto out;
	if ((ca = make_cert(ca_key, "fake-apiserver-ca", NULL, ca_key, NULL)) == NULL)
		goto out;
	if ((srv = make_cert(srv_key, "kube-apiserver", ca, ca_key, san)) == NULL)
		goto out;
	if ((k->sa_key = EVP_RSA_gen(TLS_SA_BITS)) == NULL)
		goto out;
	if ((k->ca_pem = cert_pem(ca)) == NULL || (k->cert_pem = cert_pem(srv)) == NULL ||
	    (k->key_pem = key_pem(srv_key, true)) == NULL ||
	    (k->sa_pub_pem = key_pem(k->sa_key, false)) == NULL)
		goto out;
	/* The key id as kube-apiserver computes it: base64url(SHA-256(DER public key)). */
	if ((derlen = i2d_PUBKEY(k->sa_key, &der)) <= 0)
		goto out;
	if (EVP_Digest(der, (size_t)derlen, digest, &dlen, EVP_sha256(), NULL) != 1)
		goto out;
	if ((kid = fk_b64url_encode(digest, dlen)) == NULL)
		goto out;
	snprintf(k->sa_kid, sizeof(k->sa_kid), "%s", kid);
	free(kid);
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	if (r < 0)
		fk_keys_clear(k);
	return r;
}

void
fk_keys_clear(struct fk_keys *k)
{
	free(k->ca_pem);
	free(k->cert_pem);
	if (k->key_pem != NULL) {
		OPENSSL_cleanse(k->key_pem, strlen(k->key_pem));
		free(k->key_pem);
	}
	free(k->sa_pub_pem);
	EVP_PKEY_free(k->sa_key);
	memset(k, 0, sizeof(*k));
}

int
fk_jwt_sign(const struct fk_keys *k, const json_t *claims, char **ret)
{
	json_t *hdr = json_pack("{s:s,s:s}", "alg", "RS256", "kid", k->sa_kid);
	char *h = NULL, *c = NULL, *hb = NULL, *cb = NULL, *sb = NULL, *input = NULL, *out = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *md = NULL;
	int r = -ENOMEM;

	if (hdr == NULL || (h = fk_json_dump(hdr)) == NULL || (c = fk_json_dump(claims)) == NULL)
		goto out;
	if ((hb = fk_b64url_encode((unsigned char *)h, strlen(h))) == NULL ||
	    (cb = fk_b64url_encode((unsigned char *)c, strlen(c))) == NULL)
		goto out;
	if (asprintf(&input, "%s.%s", hb, cb) < 0) {
		input = NULL;
		goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL)
		goto out;
	r = -EIO;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->sa_key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, strlen(input)) != 1)
		goto out;
	r = -ENOMEM;
	if ((sig = malloc(siglen)) == NULL)
		goto out;
	r = -EIO;
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, strlen(input)) != 1)
		goto out;
	r = -ENOMEM;
	if ((sb = fk_b64url_encode(sig, siglen)) == NULL || asprintf(&out, "%s.%s", input, sb) < 0)
		goto out;
	*ret = out;
	r = 0;
out:
	EVP_MD_CTX_free(md);
	json_decref(hdr);
	free(h);
	free(c);
	free(hb);
	free(cb);
	free(sb);
	free(sig);
	free(input);
	return r;
}

int
fk_jwt_verify(const struct fk_keys *k, const char *jwt, json_t **ret_claims)
{
	const char *dot1, *dot2;
	char *signed_part = NULL, *payload_b64 = NULL;
	unsigned char *sig = NULL, *payload = NULL;
	size_t siglen = 0, plen = 0;
	EVP_MD_CTX *md = NULL;
	json_t *claims = NULL;
	int r = -EINVAL;

	if (strlen(jwt) > TLS_JWT_MAX || (dot1 = strchr(jwt, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.') != NULL)
		return -EINVAL;
	if ((signed_part = strndup(jwt, (size_t)(dot2 - jwt))) == NULL ||
	    (payload_b64 = strndup(dot1 + 1, (size_t)(dot2 - dot1 - 1))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (fk_b64url_decode(dot2 + 1, &sig, &siglen) < 0 ||
	    fk_b64url_decode(payload_b64, &payload, &plen) < 0)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->sa_key) != 1 ||
	    EVP_DigestVerify(md, sig, siglen, (unsigned char *)signed_part, strlen(signed_part)) != 1) {
		r = -EPERM;
		goto out;
	}
	if ((claims = json_loadb((char *)payload, plen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(claims)) {
		json_decref(claims);
		goto out;
	}
	*ret_claims = claims;
	r = 0;
out:
	EVP_MD_CTX_free(md);
	free(signed_part);
	free(payload_b64);
	free(sig);
	free(payload);
	return r;
}
