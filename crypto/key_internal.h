/* key_internal.h — the key structure shared by the files of crypto/.
 * Not for use outside crypto/: the rest of the tree goes through crypto/crypto.h. */
#ifndef LK_KEY_INTERNAL_H
#define LK_KEY_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "crypto/crypto.h"

struct lk_key {
	enum lk_key_kind kind;
	char id[LK_KEY_ID_HEX + 1];
	unsigned char id_bytes[LK_KEY_ID_BYTES];
	/* RSA */
	EVP_PKEY *pkey;            /* private or public; owned */
	X509 *cert;                /* may be NULL; owned */
	bool rsa_private;
	time_t not_before, not_after;
	/* X25519 */
	unsigned char x_pk[crypto_scalarmult_BYTES];
	struct lk_secret *x_sk;    /* NULL when public only */
};

/* A zeroed key of kind; owned: lk_key_free. NULL when out of memory. */
struct lk_key *lk_key_alloc(enum lk_key_kind kind);

/* Sets not_before / not_after from the key's certificate. Returns 0 or -EINVAL. */
int lk_key_cert_times(struct lk_key *k);

/* The lk1 key id of an X25519 public key. */
void lk1_key_id_of(const unsigned char pk[crypto_scalarmult_BYTES],
		   unsigned char id[LK_KEY_ID_BYTES]);

/* Seals to one key of each kind; *ret owned (free()). */
int lk1_seal(const struct lk_key *k, const char *label, const void *pt, size_t n, char **ret,
	     struct lk_error *err);
int lk_hybrid_seal(const struct lk_key *k, const char *label, const void *pt, size_t n,
		   char **ret, struct lk_error *err);

#endif
