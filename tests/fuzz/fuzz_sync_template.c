/* fuzz_sync_template.c — spec.target.template data rendering (sync_template_render):
 * {{ .key }} and {{ index . "key" }} actions, everything else refused.
 *
 * Input: the template, a NUL, then a JSON object of the fetched data (key -> base64, as
 * the reconciler builds it). Without a NUL the whole input is the template and the data
 * is empty.
 *
 * Checked: a template without "{{" renders as itself; {{ index . "KEY" }} renders as the
 * decoded value of KEY for the data's first keys; a failure always has a message. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "crypto/crypto.h"
#include "sync/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest input tried: a template of a few KiB, or many actions. */
#define FUZZ_INPUT_MAX (128u << 10)
/* Keys of the data rendered one by one. */
#define FUZZ_KEYS_CHECKED 4

static int
render(const char *tpl, const json_t *fetched, struct lk_secret **ret)
{
	struct lk_error err = { 0 };
	int r = sync_template_render(tpl, fetched, ret, &err);

	if (r < 0 && err.msg[0] == '\0')
		abort();
	if (r == 0 && lk_secret_len(*ret) > LK_SECRET_MAX)
		abort();
	return r;
}

/* {{ index . "KEY" }} is KEY's value, decoded, when it decodes. */
static void
check_key(const json_t *fetched, const char *key, const json_t *v)
{
	struct lk_secret *want = NULL, *got = NULL;
	char *tpl;
	int r;

	if (key[0] == '\0' || strlen(key) >= 256 || strpbrk(key, "\"\\") != NULL ||
	    strstr(key, "}}") != NULL)
		return;
	if (asprintf(&tpl, "{{ index . \"%s\" }}", key) < 0)
		return;
	r = render(tpl, fetched, &got);
	if (json_is_string(v) &&
	    lk_b64_decode(json_string_value(v), json_string_length(v), LK_B64_STD, &want) == 0) {
		if (r != 0 || !lk_secret_equal(want, got))
			abort();
	} else if (r == 0) {
		abort();
	}
	lk_secret_free(want);
	lk_secret_free(got);
	free(tpl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const uint8_t *nul;
	struct lk_secret *out = NULL;
	json_t *fetched = NULL, *v;
	const char *key;
	char *tpl;
	size_t n, i = 0;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	if (!ready) {
		/* As `latchkey` does first thing in main(). */
		lk_json_wipe_on_free();
		if (lk_secret_init() < 0)
			abort();
		ready = 1;
	}
	nul = memchr(data, '\0', size);
	n = nul != NULL ? (size_t)(nul - data) : size;
	if ((tpl = malloc(n + 1)) == NULL)
		return 0;
	memcpy(tpl, data, n);
	tpl[n] = '\0';
	if (nul != NULL)
		fetched = json_loadb((const char *)nul + 1, size - n - 1, 0, NULL);
	if (fetched == NULL && (fetched = json_object()) == NULL) {
		free(tpl);
		return 0;
	}

	if (render(tpl, fetched, &out) == 0 && strstr(tpl, "{{") == NULL &&
	    (lk_secret_len(out) != n || memcmp(lk_secret_bytes(out), tpl, n) != 0))
		abort();
	lk_secret_free(out);
	json_object_foreach(fetched, key, v) {
		if (i++ == FUZZ_KEYS_CHECKED)
			break;
		check_key(fetched, key, v);
	}
	json_decref(fetched);
	free(tpl);
	return 0;
}
