/* fuzz_bitnami_open.c — the Bitnami format's parsing with an RSA key made at start-up:
 * the first input byte picks the label; the rest is tried as base64 text and as the
 * binary blob. An input starting with 'S' is sealed and opened again instead, which
 * reaches the AES-GCM code that random blobs cannot (their RSA part never decrypts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const labels[] = { "app/db", "app", "" };

static struct lk_keyset *
keyset(void)
{
	static struct lk_keyset *ks;
	struct lk_key *k = NULL;
	struct lk_error err;

	if (ks != NULL)
		return ks;
	if (lk_secret_init() < 0 || lk_key_rsa_generate(LK_RSA_BITS_MIN, "fuzz", 1, &k, &err) < 0)
		abort();
	ks = lk_keyset_new();
	if (ks == NULL || lk_keyset_add_take(ks, k) < 0)
		abort();
	return ks;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lk_keyset *ks = keyset();
	const struct lk_key *k = lk_keyset_get(ks, 0);
	struct lk_secret *pt = NULL;
	struct lk_error err;
	const char *label;

	if (size < 2)
		return 0;
	label = labels[data[1] % 3];
	if (data[0] == 'S') {
		char *ct = NULL;

		if (lk_key_seal(k, label, data + 2, size - 2, &ct, &err) != 0)
			abort();
		if (lk_keyset_open(ks, label, ct, strlen(ct), &pt, &err) != 0 ||
		    lk_secret_len(pt) != size - 2 || memcmp(lk_secret_bytes(pt), data + 2, size - 2) != 0)
			abort();
		/* the same value under another label does not open */
		lk_secret_free(pt);
		pt = NULL;
		if (lk_keyset_open(ks, labels[(data[1] + 1) % 3], ct, strlen(ct), &pt, &err) == 0)
			abort();
		free(ct);
		return 0;
	}
	if (lk_keyset_open(ks, label, (const char *)data + 2, size - 2, &pt, &err) == 0)
		lk_secret_free(pt);
	pt = NULL;
	if (lk_hybrid_open_blob(k, label, data + 2, size - 2, &pt, &err) == 0)
		lk_secret_free(pt);
	return 0;
}
