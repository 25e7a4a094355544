/* keys.c — RSA keys and certificates (OpenSSL), X25519 keys for lk1, key sets and key
 * files. */
#include "crypto/key_internal.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The most files looked at in one key directory. */
#define KEYDIR_FILES_MAX 4096
/* Bits of the random certificate serial, as Bitnami draws it. */
#define SERIAL_BITS 128

struct lk_keyset {
	struct lk_key *keys[LK_KEYSET_MAX];
	size_t n;
};

static struct lk_key *
key_alloc(enum lk_key_kind kind)
{
	struct lk_key *k = calloc(1, sizeof(*k));

	if (k != NULL)
		k->kind = kind;
	return k;
}

struct lk_key *
lk_key_free(struct lk_key *k)
{
	if (k == NULL)
		return NULL;
	EVP_PKEY_free(k->pkey);
	X509_free(k->cert);
	lk_secret_free(k->x_sk);
	sodium_memzero(k, sizeof(*k));
	free(k);
	return NULL;
}

enum lk_key_kind
lk_key_kind(const struct lk_key *k)
{
	return k->kind;
}

bool
lk_key_has_private(const struct lk_key *k)
{
	return k->kind == LK_KEY_RSA ? k->rsa_private : k->x_sk != NULL;
}

const char *
lk_key_id(const struct lk_key *k)
{
	return k->id;
}

time_t
lk_key_not_before(const struct lk_key *k)
{
	return k->not_before;
}

time_t
lk_key_not_after(const struct lk_key *k)
{
	return k->not_after;
}

unsigned
lk_key_bits(const struct lk_key *k)
{
	return k->kind == LK_KEY_RSA ? (unsigned)EVP_PKEY_get_bits(k->pkey) : 0;
}

int
lk_key_seal(const struct lk_key *k, const char *label, const void *pt, size_t n, char **ret,
	    struct lk_error *err)
{
	if (k->kind == LK_KEY_X25519)
		return lk1_seal(k, label, pt, n, ret, err);
	return lk_hybrid_seal(k, label, pt, n, ret, err);
}

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

static int
cert_times(struct lk_key *k)
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
	k = key_alloc(LK_KEY_RSA);
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
	cert_times(k);
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
	k = key_alloc(LK_KEY_RSA);
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
		cert_times(k);
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

/* ---- X25519 ------------------------------------------------------------------- */

int
lk_key_x25519_generate(struct lk_key **ret)
{
	struct lk_key *k = key_alloc(LK_KEY_X25519);

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
	k = key_alloc(LK_KEY_X25519);
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
				cert_times(k);
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

int
lk_keyset_open(const struct lk_keyset *ks, const char *label, const char *text, size_t len,
	       struct lk_secret **ret, struct lk_error *err)
{
	unsigned char *blob = NULL;
	size_t blob_len = 0, tried = 0;
	int r;

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
			if (r == 0 || r == -ENOMEM)
				return r;
		}
		if (r != -ENOKEY)
			return r;
		return lk_error_set(err, -ENOKEY,
				    "lk1 value is sealed to key %s, which is not among the keys loaded",
				    id);
	}
	r = lk_b64_decode_raw(text, len, LK_B64_STD, &blob, &blob_len);
	if (r < 0)
		return lk_error_set(err, -EINVAL, "sealed value is not valid base64");
	r = -ENOKEY;
	for (size_t i = 0; i < ks->n; i++) {
		const struct lk_key *k = ks->keys[i];

		if (k->kind != LK_KEY_RSA || !k->rsa_private)
			continue;
		tried++;
		r = lk_hybrid_open_blob(k, label, blob, blob_len, ret, err);
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
