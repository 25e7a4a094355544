/* crypto.h — sealing: encodings, the lk1 envelope, the Bitnami-compatible hybrid
 * format, and the keys both use.
 *
 * Two ciphertext formats:
 *   - `lk1:`: X25519 + XChaCha20-Poly1305 from libsodium, naming the recipient key by id
 *     (docs/internals/envelope.md gives the byte layout);
 *   - the Bitnami sealed-secrets hybrid: RSA-OAEP-SHA256 wrapping a fresh AES-256-GCM key,
 *     byte-compatible with kubeseal and the sealed-secrets controller.
 * Both authenticate a scope label, so a value moved to another Secret, namespace or key
 * does not open.
 *
 * Plaintext that comes out of an open is a `struct lk_secret` (crypto/secret.h).
 * Messages put in a `struct lk_error` name the key id, the scope or the format, never a
 * value. lk_secret_init() must have been called before any function here.
 */
#ifndef LK_CRYPTO_H
#define LK_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/error.h"
#include "crypto/secret.h"

/* ---- encodings ---------------------------------------------------------------- */

enum lk_b64 {
	LK_B64_STD,        /* standard alphabet, '=' padded (Kubernetes data, Bitnami values) */
	LK_B64_URL,        /* url-safe alphabet, '=' padded */
	LK_B64_URL_NOPAD,  /* url-safe alphabet, no padding */
	LK_B64_STD_GO,     /* decoding only: standard, as Go's StdEncoding reads it (CR and LF
			    * skipped, spare bits unchecked): what people paste into a
			    * Secret's data and what Bitnami's controller accepts */
};

/* Encodes n bytes. *ret is owned: free with free(). Returns 0 or -ENOMEM / -E2BIG. */
int lk_b64_encode(const void *p, size_t n, enum lk_b64 variant, char **ret)
	__attribute__((warn_unused_result));

/* Decodes exactly n characters (no whitespace, canonical padding and trailing bits; but
 * see LK_B64_STD_GO) into
 * a secret. Owned: free with lk_secret_free. Returns 0, -EINVAL on bad input, -E2BIG
 * when the result would exceed LK_SECRET_MAX, or -ENOMEM. */
int lk_b64_decode(const char *s, size_t n, enum lk_b64 variant, struct lk_secret **ret)
	__attribute__((warn_unused_result));

/* Same for data that is not secret: *ret (malloc'd, free with free()) and *ret_len. */
int lk_b64_decode_raw(const char *s, size_t n, enum lk_b64 variant, unsigned char **ret,
		      size_t *ret_len) __attribute__((warn_unused_result));

/* Lowercase hex of n bytes into out (2n+1 bytes). Returns 0 or -ENOSPC. */
int lk_hex_encode(const void *p, size_t n, char *out, size_t outlen);

/* Constant-time equality of n bytes. */
bool lk_ct_equal(const void *a, const void *b, size_t n);

/* ---- scopes ------------------------------------------------------------------- */

enum lk_scope {
	LK_SCOPE_STRICT,     /* namespace + name (+ key for lk1) */
	LK_SCOPE_NAMESPACE,  /* any name in the namespace */
	LK_SCOPE_CLUSTER,    /* anywhere */
};

/* The longest scope label: a namespace (63), a Secret name (253) and a key (253), two '/'. */
#define LK_LABEL_MAX 576

/* The annotations on a SealedSecret's metadata that select a wider scope. */
#define LK_ANNOT_NAMESPACE_WIDE "sealedsecrets.bitnami.com/namespace-wide"
#define LK_ANNOT_CLUSTER_WIDE   "sealedsecrets.bitnami.com/cluster-wide"

/* "strict", "namespace-wide", "cluster-wide" → scope. Returns 0 or -EINVAL. */
int lk_scope_parse(const char *s, enum lk_scope *ret);
const char *lk_scope_name(enum lk_scope scope);

/* Builds the label into buf (LK_LABEL_MAX+1 bytes suffice). With key == NULL, the
 * Bitnami label: "ns/name", "ns" or "". With a key, the lk1 label: "ns/name/key", "ns" or
 * "". Strict needs ns and name (and key for lk1), namespace-wide needs ns; names may not
 * contain '/'. Returns 0 or -EINVAL with a message. */
int lk_scope_label(enum lk_scope scope, const char *ns, const char *name, const char *key,
		   char *buf, size_t buflen, struct lk_error *err);

/* ---- keys --------------------------------------------------------------------- */

/* Key ids: the first 8 bytes of a hash of the public key, as 16 hex digits. */
#define LK_KEY_ID_BYTES 8
#define LK_KEY_ID_HEX   (2 * LK_KEY_ID_BYTES)

/* RSA sizes accepted for generation. */
#define LK_RSA_BITS_DEFAULT 4096
#define LK_RSA_BITS_MIN     2048
#define LK_RSA_BITS_MAX     8192

/* Bitnami's default certificate lifetime: 10 years. */
#define LK_CERT_DAYS_DEFAULT 3650

/* The largest PEM or key file read: a few certificates in a chain. */
#define LK_KEYFILE_MAX (64u * 1024)

/* Public and private lk1 key file prefixes (one line: prefix, standard base64, newline). */
#define LK_LK1_PUB_PREFIX  "lk1pub:"
#define LK_LK1_PRIV_PREFIX "lk1priv:"

enum lk_key_kind { LK_KEY_RSA, LK_KEY_X25519 };

/* An RSA key with its certificate, or an X25519 key; public only or with its private
 * half. Immutable once made. */
struct lk_key;

/* A new RSA key of `bits` and a self-signed certificate as Bitnami makes them: 128-bit
 * random serial, CA=true, KeyUsage encipherOnly, issuer = subject = CN cn (may be empty),
 * valid `days` from now. Owned: free with lk_key_free. */
int lk_key_rsa_generate(unsigned bits, const char *cn, unsigned days, struct lk_key **ret,
			struct lk_error *err) __attribute__((warn_unused_result));

/* An RSA key from PEM text: key_pem (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY";
 * may be NULL) and cert_pem (may be NULL; not both NULL). When both are given the
 * certificate's public key must match. A certificate whose notAfter has passed is refused
 * unless allow_expired (for opening old values, an expired certificate still names the
 * key). Owned: free with lk_key_free. */
int lk_key_rsa_from_pem(const char *key_pem, size_t key_len, const char *cert_pem,
			size_t cert_len, bool allow_expired, struct lk_key **ret,
			struct lk_error *err) __attribute__((warn_unused_result));

/* The private key as PKCS#1 PEM ("RSA PRIVATE KEY"), in secure memory. -ENOKEY when the
 * key is public only. */
int lk_key_rsa_private_pem(const struct lk_key *k, struct lk_secret **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* The certificate as PEM; owned: free with free(). -ENOENT when there is none. */
int lk_key_rsa_cert_pem(const struct lk_key *k, char **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* A new X25519 key pair. Owned: free with lk_key_free. */
int lk_key_x25519_generate(struct lk_key **ret) __attribute__((warn_unused_result));

/* An X25519 key from the text of an lk1 key file (public or private form). */
int lk_key_x25519_parse(const char *text, size_t len, struct lk_key **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* The key file texts, newline-terminated: the private one in secure memory (-ENOKEY when
 * public only), the public one owned (free with free()). */
int lk_key_x25519_private_text(const struct lk_key *k, struct lk_secret **ret)
	__attribute__((warn_unused_result));
int lk_key_x25519_public_text(const struct lk_key *k, char **ret)
	__attribute__((warn_unused_result));

/* Frees (private material is wiped); NULL allowed; returns NULL. */
struct lk_key *lk_key_free(struct lk_key *k);

enum lk_key_kind lk_key_kind(const struct lk_key *k);
bool lk_key_has_private(const struct lk_key *k);
/* The id as hex; borrowed: valid while k lives. */
const char *lk_key_id(const struct lk_key *k);
/* Certificate validity (0 when there is no certificate). */
time_t lk_key_not_before(const struct lk_key *k);
time_t lk_key_not_after(const struct lk_key *k);
/* RSA modulus size in bits (0 for X25519). */
unsigned lk_key_bits(const struct lk_key *k);

/* Seals n bytes of pt to k under label (from lk_scope_label): the Bitnami format in
 * standard base64 for an RSA key, the `lk1:` text for an X25519 key. *ret is owned:
 * free with free(). */
int lk_key_seal(const struct lk_key *k, const char *label, const void *pt, size_t n,
		char **ret, struct lk_error *err) __attribute__((warn_unused_result));

/* ---- key sets ----------------------------------------------------------------- */

/* The most keys one set holds. */
#define LK_KEYSET_MAX 256

/* Several keys: all open, the newest of each kind seals. Newest = the latest certificate
 * notBefore for RSA (ties: the one added last), the one added last for X25519. */
struct lk_keyset;

struct lk_keyset *lk_keyset_new(void);
/* Frees the set and every key in it; NULL allowed; returns NULL. */
struct lk_keyset *lk_keyset_free(struct lk_keyset *ks);

/* Adds k; the set owns it from now on, even on failure (-E2BIG when full, -EEXIST when the
 * same public key is already in; k is freed then). A private key replaces a public-only
 * copy of itself already in the set (keeping that copy's certificate when k has none), in
 * its place. Different keys that share an id are both kept. */
int lk_keyset_add_take(struct lk_keyset *ks, struct lk_key *k);

size_t lk_keyset_count(const struct lk_keyset *ks);
/* The i-th key in order of addition; borrowed. */
const struct lk_key *lk_keyset_get(const struct lk_keyset *ks, size_t i);
/* The newest key of a kind (public or private), or NULL; borrowed. */
const struct lk_key *lk_keyset_newest(const struct lk_keyset *ks, enum lk_key_kind kind);

/* Loads one key file: PEM private key (its certificate from the same file or from the
 * sibling with the extension .crt), PEM certificate alone (public only), or an lk1 key
 * file. Returns -ENOTSUP when the file is none of these (the caller may try it as a
 * manifest). */
int lk_keyset_load_file(struct lk_keyset *ks, const char *path, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Loads a key directory in file-name order: *.key (with *.crt), *.crt without a *.key,
 * *.lk1, *.lk1.pub without a *.lk1. Other files are skipped. -ENOENT when none is found. */
int lk_keyset_load_dir(struct lk_keyset *ks, const char *dir, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Opens one value: `lk1:` text with the X25519 key(s) its id names, anything else as the
 * Bitnami format with every RSA private key in turn. Returns 0, -EBADMSG when nothing
 * opens it (the message says which keys were tried, and for lk1 whether the key id is
 * unknown), -EINVAL on malformed input. */
int lk_keyset_open(const struct lk_keyset *ks, const char *label, const char *text,
		   size_t len, struct lk_secret **ret, struct lk_error *err)
	__attribute__((warn_unused_result));
/* The same, trying the RSA key whose id is prefer_id (may be NULL) first, and saying in
 * *ret_key (may be NULL; borrowed from ks) which key opened the value. */
int lk_keyset_open_with(const struct lk_keyset *ks, const char *label, const char *text,
			size_t len, const char *prefer_id, struct lk_secret **ret,
			const struct lk_key **ret_key, struct lk_error *err)
	__attribute__((warn_unused_result));

/* ---- the formats directly ----------------------------------------------------- */

/* The longest ciphertext text accepted by an open: a secret of LK_SECRET_MAX in base64
 * plus room for headers. */
#define LK_SEALED_TEXT_MAX (LK_SECRET_MAX / 3 * 4 + 4096)

#define LK_LK1_TEXT_PREFIX "lk1:"

/* lk1 with one key: -ENOKEY when the key id does not match k. */
int lk1_open(const struct lk_key *k, const char *label, const char *text, size_t len,
	     struct lk_secret **ret, struct lk_error *err) __attribute__((warn_unused_result));

/* The key id named by an lk1 text, as hex into id (LK_KEY_ID_HEX+1 bytes). */
int lk1_key_id(const char *text, size_t len, char *id, size_t idlen)
	__attribute__((warn_unused_result));

/* The Bitnami format with one RSA private key, from its binary blob (not base64). */
int lk_hybrid_open_blob(const struct lk_key *k, const char *label, const unsigned char *blob,
			size_t len, struct lk_secret **ret, struct lk_error *err)
	__attribute__((warn_unused_result));

#endif
