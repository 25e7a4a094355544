/* rsa.c — RSA keys and their certificates for the Bitnami format, over OpenSSL
 * (crypto.h). */
#include "crypto/key_internal.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

/* Bits of the random certificate serial, as Bitnami draws it. */
#define SERIAL_BITS 128

/* ---- RSA ---------------------------------------------------------------------- */

/* id = SHA-256(DER SubjectPublicKeyInfo)[0..8] */
static int
rsa_set_id(struct lk_key *k)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len;

	len = i2d_PUBKEY(k->pkey, &der);
	if (len <= 0)
		return -EIO;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return -EIO;
	}
	OPENSSL_free(der);
	memcpy(k->id_bytes, md, LK_KEY_ID_BYTES);
	return lk_hex_encode(md, LK_KEY_ID_BYTES, k->id, sizeof(k->id));
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

int
lk_key_cert_times(struct lk_key *k)
{
	k->not_before = asn1_time(X509_get0_notBefore(k->cert));
	k->not_after = asn1_time(X509_get0_notAfter(k->cert));
	return 0;
}

static int
add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -EIO;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EIO;
}

int
lk_key_rsa_generate(unsigned bits, const char *cn, unsigned days, struct lk_key **ret,
		    struct lk_error *err)
{
	struct lk_key *k = NULL;
	BIGNUM *serial = NULL;
	X509_NAME *subject = NULL;
	int r = -EIO;

	if (bits < LK_RSA_BITS_MIN || bits > LK_RSA_BITS_MAX)
		return lk_error_set(err, -EINVAL, "RSA key size %u is outside %u..%u", bits,
				    LK_RSA_BITS_MIN, LK_RSA_BITS_MAX);
	if (days == 0 || days > 36500)
		return lk_error_set(err, -EINVAL, "certificate validity of %u days is out of range",
				    days);
	k = lk_key_alloc(LK_KEY_RSA);
	if (k == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	k->pkey = EVP_RSA_gen(bits);
	if (k->pkey == NULL) {
		lk_error_set(err, -EIO, "RSA key generation failed");
		goto out;
	}
	k->rsa_private = true;
	k->cert = X509_new();
	serial = BN_new();
	subject = X509_NAME_new();
	if (k->cert == NULL || serial == NULL || subject == NULL ||
	    X509_set_version(k->cert, X509_VERSION_3) != 1 ||
	    BN_rand(serial, SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(k->cert)) == NULL) {
		lk_error_set(err, -EIO, "certificate setup failed");
		goto out;
	}
	if (cn != NULL && cn[0] != '\0' &&
	    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
				       -1, -1, 0) != 1) {
		lk_error_set(err, -EINVAL, "common name '%s' is not valid", cn);
		goto out;
	}
	if (X509_set_subject_name(k->cert, subject) != 1 ||
	    X509_set_issuer_name(k->cert, subject) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(k->cert), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(k->cert), (int)days, 0, NULL) == NULL ||
	    X509_set_pubkey(k->cert, k->pkey) != 1 ||
	    add_ext(k->cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(k->cert, NID_key_usage, "critical,encipherOnly") < 0 ||
	    X509_sign(k->cert, k->pkey, EVP_sha256()) <= 0) {
		lk_error_set(err, -EIO, "certificate generation failed");
		goto out;
	}
	lk_key_cert_times(k);
	if (rsa_set_id(k) < 0) {
		lk_error_set(err, -EIO, "cannot compute the key id");
		goto out;
	}
	*ret = k;
	k = NULL;
	r = 0;
out:
	lk_key_free(k);
	BN_free(serial);
	X509_NAME_free(subject);
	ERR_clear_error();
	return r;
}

/* Refuses to ask for a passphrase: encrypted keys are not supported. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
lk_key_rsa_from_pem(const char *key_pem, size_t key_len, const char *cert_pem, size_t cert_len,
		    bool allow_expired, struct lk_key **ret, struct lk_error *err)
{
	struct lk_key *k = NULL;
	BIO *bio = NULL;
	int r = -EINVAL;

	if (key_pem == NULL && cert_pem == NULL)
		return lk_error_set(err, -EINVAL, "no key and no certificate");
	if (key_len > LK_KEYFILE_MAX || cert_len > LK_KEYFILE_MAX)
		return lk_error_set(err, -E2BIG, "key or certificate larger than %u bytes",
				    LK_KEYFILE_MAX);
	k = lk_key_alloc(LK_KEY_RSA);
	if (k == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (cert_pem != NULL) {
		bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
		if (bio == NULL || (k->cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) == NULL) {
			lk_error_set(err, -EINVAL, "no PEM certificate found");
			goto out;
		}
		BIO_free(bio);
		bio = NULL;
		lk_key_cert_times(k);
		if (!allow_expired && k->not_after != 0 && k->not_after < time(NULL)) {
			r = lk_error_set(err, -EKEYEXPIRED, "the certificate expired (notAfter passed)");
			goto out;
		}
	}
	if (key_pem != NULL) {
		bio = BIO_new_mem_buf(key_pem, (int)key_len);
		if (bio == NULL ||
		    (k->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
			lk_error_set(err, -EINVAL,
				     "no unencrypted PEM private key (RSA PRIVATE KEY or PRIVATE KEY) found");
			goto out;
		}
		k->rsa_private = true;
	} else {
		k->pkey = X509_get_pubkey(k->cert);
		if (k->pkey == NULL) {
			lk_error_set(err, -EINVAL, "the certificate has no usable public key");
			goto out;
		}
	}
	if (!EVP_PKEY_is_a(k->pkey, "RSA")) {
		lk_error_set(err, -EINVAL, "the key is not an RSA key");
		goto out;
	}
	if (EVP_PKEY_get_bits(k->pkey) < LK_RSA_BITS_MIN / 2 ||
	    EVP_PKEY_get_bits(k->pkey) > LK_RSA_BITS_MAX * 2) {
		lk_error_set(err, -EINVAL, "RSA key of %d bits is out of range",
			     EVP_PKEY_get_bits(k->pkey));
		goto out;
	}
	if (k->cert != NULL && k->rsa_private &&
	    EVP_PKEY_eq(X509_get0_pubkey(k->cert), k->pkey) != 1) {
		lk_error_set(err, -EINVAL, "the certificate does not belong to the private key");
		goto out;
	}
	if (rsa_set_id(k) < 0) {
		lk_error_set(err, -EIO, "cannot compute the key id");
		goto out;
	}
	*ret = k;
	k = NULL;
	r = 0;
out:
	BIO_free(bio);
	lk_key_free(k);
	ERR_clear_error();
	return r;
}

/* The content of a secure-memory BIO as a secret. */
static int
bio_to_secret(BIO *bio, struct lk_secret **ret)
{
	char *p = NULL;
	long n = BIO_get_mem_data(bio, &p);
	struct lk_secret *s;

	if (n <= 0 || p == NULL)
		return -EIO;
	s = lk_secret_new(p, (size_t)n);
	if (s == NULL)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int
lk_key_rsa_private_pem(const struct lk_key *k, struct lk_secret **ret, struct lk_error *err)
{
	BIO *bio;
	int r;

	if (k->kind != LK_KEY_RSA || !k->rsa_private)
		return lk_error_set(err, -ENOKEY, "key %s has no private half", k->id);
	/* secmem: the buffer is cleansed when freed. */
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (PEM_write_bio_PrivateKey_traditional(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		r = lk_error_set(err, -EIO, "cannot write key %s as PEM", k->id);
		goto out;
	}
	r = bio_to_secret(bio, ret);
	if (r < 0)
		lk_error_set(err, r, "cannot copy key %s", k->id);
out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
lk_key_rsa_cert_pem(const struct lk_key *k, char **ret, struct lk_error *err)
{
	char *p = NULL, *out;
	BIO *bio;
	long n;
	int r;

	if (k->kind != LK_KEY_RSA || k->cert == NULL)
		return lk_error_set(err, -ENOENT, "key %s has no certificate", k->id);
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (PEM_write_bio_X509(bio, k->cert) != 1 || (n = BIO_get_mem_data(bio, &p)) <= 0) {
		r = lk_error_set(err, -EIO, "cannot write the certificate of key %s", k->id);
		goto out;
	}
	out = strndup(p, (size_t)n);
	if (out == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*ret = out;
	r = 0;
out:
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

