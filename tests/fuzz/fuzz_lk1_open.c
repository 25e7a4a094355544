/* fuzz_lk1_open.c — opening lk1 text with a fixed key: the first input byte picks the
 * scope label, the rest is the value. Nothing may crash; whatever opens must have been
 * sealed to the fixed key (the seeds hold such values). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed private key: 32 bytes of 0x42. */
#define FUZZ_KEY "lk1priv:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=" /* latchkey-scan: allow */

static const char *const labels[] = { "app/db/password", "app", "" };

static struct lk_keyset *
keyset(void)
{
	static struct lk_keyset *ks;
	struct lk_key *k = NULL;
	struct lk_error err;

	if (ks != NULL)
		return ks;
	if (lk_secret_init() < 0 || lk_key_x25519_parse(FUZZ_KEY, strlen(FUZZ_KEY), &k, &err) < 0)
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
	struct lk_secret *pt = NULL;
	struct lk_error err;
	char id[LK_KEY_ID_HEX + 1];
	const char *label;

	if (size < 1)
		return 0;
	label = labels[data[0] % 3];
	if (lk1_key_id((const char *)data + 1, size - 1, id, sizeof(id)) == 0 && strlen(id) != LK_KEY_ID_HEX)
		abort();
	if (lk_keyset_open(ks, label, (const char *)data + 1, size - 1, &pt, &err) == 0) {
		/* An opened value re-seals and opens to the same bytes. */
		struct lk_secret *again = NULL;
		char *ct = NULL;

		if (lk_key_seal(lk_keyset_get(ks, 0), label, lk_secret_bytes(pt), lk_secret_len(pt),
				&ct, &err) != 0)
			abort();
		if (lk_keyset_open(ks, label, ct, strlen(ct), &again, &err) != 0 ||
		    !lk_secret_equal(pt, again))
			abort();
		lk_secret_free(again);
		free(ct);
		lk_secret_free(pt);
	}
	return 0;
}
