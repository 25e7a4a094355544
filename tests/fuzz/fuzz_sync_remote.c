/* fuzz_sync_remote.c — one value out of a backend secret, as the reconciler reads a
 * remoteRef: the property lookup (sync_remote_property: a top-level key, else a dotted
 * path; none: the whole data as JSON) and the decoding strategies (sync_remote_decode:
 * None, Base64, Base64URL, Auto, and names it refuses).
 *
 * Input: the secret's data as JSON, a NUL, the property, a NUL, the decodingStrategy.
 * Missing parts are empty.
 *
 * Checked: the empty property is the whole data; None leaves the value as it is; a value
 * encoded with the standard alphabet decodes back with Base64 and Auto, and with the
 * url-safe one with Base64URL. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "crypto/crypto.h"
#include "sync/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest input tried. */
#define FUZZ_INPUT_MAX (128u << 10)

/* The next NUL-terminated part of the input (a copy; owned: free), or "" past its end. */
static char *
part(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul != NULL ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nul != NULL ? nul + 1 : end;
	return s;
}

/* v encoded with variant decodes back to v under strategy. */
static void
round_trip(const struct lk_secret *v, enum lk_b64 variant, const char *strategy)
{
	struct lk_secret *io;
	char *b64 = NULL;

	if (lk_b64_encode(lk_secret_bytes(v), lk_secret_len(v), variant, &b64) < 0)
		return;
	io = lk_secret_from_str(b64);
	free(b64);
	if (io == NULL)
		return;
	if (sync_remote_decode(strategy, &io) != 0 || !lk_secret_equal(io, v))
		abort();
	lk_secret_free(io);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const uint8_t *p = data, *end = data + size;
	struct lk_secret *v = NULL, *whole = NULL, *io;
	char *text, *property, *strategy;
	json_t *secret;
	int r;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	if (!ready) {
		/* As `latchkey` does first thing in main(). */
		lk_json_wipe_on_free();
		if (lk_secret_init() < 0)
			abort();
		ready = 1;
	}
	text = part(&p, end);
	property = part(&p, end);
	strategy = part(&p, end);
	secret = json_loads(text, 0, NULL);
	if (secret == NULL)
		goto out;

	if (sync_remote_property(secret, "", &whole) != 0 || sync_remote_property(secret, NULL, &v) != 0 ||
	    !lk_secret_equal(whole, v))
		abort();
	v = lk_secret_free(v);
	r = sync_remote_property(secret, property, &v);
	if (r == -ENOENT)
		goto out;
	if (r != 0)
		abort();
	if ((io = lk_secret_dup(v)) == NULL)
		goto out;
	r = sync_remote_decode(strategy, &io);
	if (r == 0 && (strcmp(strategy, "") == 0 || strcmp(strategy, "None") == 0) &&
	    !lk_secret_equal(io, v))
		abort();
	lk_secret_free(io);
	/* Encoded values of at most 1 MiB; longer ones do not fit a secret. */
	if (lk_secret_len(v) <= LK_SECRET_MAX / 4 * 3 - 3) {
		round_trip(v, LK_B64_STD, "Base64");
		round_trip(v, LK_B64_STD, "Auto");
		round_trip(v, LK_B64_URL, "Base64URL");
		round_trip(v, LK_B64_URL_NOPAD, "Base64URL");
	}
out:
	lk_secret_free(v);
	lk_secret_free(whole);
	json_decref(secret);
	free(text);
	free(property);
	free(strategy);
	return 0;
}
