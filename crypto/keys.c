/* keys.c — the key object both formats use: allocation, accessors, sealing by kind
 * (crypto.h). RSA keys are in rsa.c, X25519 keys in x25519.c, key sets in keyset.c and
 * key files in keyfile.c. */
#include "crypto/key_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lk_key *
lk_key_alloc(enum lk_key_kind kind)
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

