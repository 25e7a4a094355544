/* jwt.h — decoding Kubernetes service-account JWTs for `latchkey dev`'s kubernetes auth.
 *
 * A JWT is base64url(header) "." base64url(payload) "." base64url(signature). The
 * service account is read from the projected-token claims
 *   "kubernetes.io": { "namespace": ..., "serviceaccount": { "name": ..., "uid": ... } }
 * or, for legacy secret-based tokens, from the flat claims
 *   "kubernetes.io/serviceaccount/service-account.name", ".../namespace",
 *   ".../service-account.uid", ".../secret.name".
 * Decoding checks the shape only; dev_jwt_verify checks the signature (RS256 or ES256)
 * against a PEM public key or certificate.
 */
#ifndef LK_DEVSERVER_JWT_H
#define LK_DEVSERVER_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Longest JWT accepted. */
#define DEV_JWT_MAX (16u << 10)
/* Longest claim value kept (a DNS-1123 subdomain is at most 253 bytes). */
#define DEV_JWT_CLAIM_MAX 253
/* Audiences kept from the aud claim, at most. */
#define DEV_JWT_AUD_MAX 8
/* Longest PEM key accepted. */
#define DEV_JWT_PEM_MAX (16u << 10)

struct dev_jwt {
	char alg[16];
	char sa_name[DEV_JWT_CLAIM_MAX + 1];
	char sa_namespace[DEV_JWT_CLAIM_MAX + 1];
	char sa_uid[DEV_JWT_CLAIM_MAX + 1];
	char secret_name[DEV_JWT_CLAIM_MAX + 1];  /* "" for projected tokens */
	char iss[DEV_JWT_CLAIM_MAX + 1];
	char aud[DEV_JWT_AUD_MAX][DEV_JWT_CLAIM_MAX + 1]; /* the aud claim (a string or a list) */
	size_t naud;
	bool has_exp;
	int64_t exp;                   /* seconds since the epoch */
	bool has_nbf;
	int64_t nbf;
	char *signed_part;             /* owned: "header.payload", NUL-terminated */
	size_t signed_len;
	unsigned char *signature;      /* owned */
	size_t signature_len;
};

/* Decodes len bytes of text into *ret (which the caller clears with dev_jwt_clear, also
 * on failure). Fails with -EINVAL when the token is malformed or names no service account. */
int dev_jwt_decode(const char *text, size_t len, struct dev_jwt *ret, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Whether aud is among the token's audiences. */
bool dev_jwt_has_audience(const struct dev_jwt *jwt, const char *aud);

/* Frees what dev_jwt_decode allocated; the struct is zeroed. NULL allowed. */
void dev_jwt_clear(struct dev_jwt *jwt);

/* Checks the signature with a PEM public key ("PUBLIC KEY", "RSA PUBLIC KEY") or
 * certificate. Returns 0 when it verifies, -EACCES when it does not, -EINVAL when the key
 * cannot be read or does not fit the algorithm. */
int dev_jwt_verify(const struct dev_jwt *jwt, const char *pem, size_t pem_len,
		   struct lk_error *err) __attribute__((warn_unused_result));

/* Decodes base64url without padding. out must hold in_len * 3 / 4 + 1 bytes.
 * Returns the decoded length, or -EINVAL. */
long dev_base64url_decode(const char *in, size_t in_len, unsigned char *out);

#endif
