/* fuzz_sync_spec.c — the ExternalSecret spec check (sync_externalsecret_check): store
 * reference, target and its policies, template, refresh policy and interval, data and
 * dataFrom entries.
 *
 * Input: the ExternalSecret as JSON.
 *
 * Checked: a failure has a message, and the message never holds a value. The check reads
 * no member named "value" or "password" (template data keys and values, and the like, are
 * named so), so its answer cannot depend on them: the input is checked again with every
 * such member replaced by a sentinel string, and must give the same code and message,
 * without the sentinel in it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sync/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest input tried: an ExternalSecret of a few hundred references. */
#define FUZZ_INPUT_MAX (256u << 10)
/* What replaces the values: a string no message of the check holds. */
#define FUZZ_SENTINEL "latchkey-fuzz-sentinel"

/* Replaces every member named "value" or "password" below v with the sentinel. */
static void
plant(json_t *v, unsigned depth)
{
	const char *key;
	json_t *it;
	size_t i;

	if (depth > 64)
		return;
	if (json_is_array(v)) {
		json_array_foreach(v, i, it)
			plant(it, depth + 1);
		return;
	}
	json_object_foreach(v, key, it) {
		if (strcmp(key, "value") == 0 || strcmp(key, "password") == 0)
			json_object_set_new(v, key, json_string(FUZZ_SENTINEL));
		else
			plant(it, depth + 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct lk_error err = { 0 }, err2 = { 0 };
	json_t *es, *planted;
	int r, r2;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	if (!ready) {
		/* As `latchkey` does first thing in main(). */
		lk_json_wipe_on_free();
		ready = 1;
	}
	if ((es = json_loadb((const char *)data, size, 0, NULL)) == NULL)
		return 0;
	r = sync_externalsecret_check(es, &err);
	if (r != 0 && (r != -EINVAL || err.msg[0] == '\0'))
		abort();
	if ((planted = json_deep_copy(es)) != NULL) {
		plant(planted, 0);
		r2 = sync_externalsecret_check(planted, &err2);
		if (r2 != r || (r != 0 && strcmp(err.msg, err2.msg) != 0) ||
		    strstr(err2.msg, FUZZ_SENTINEL) != NULL)
			abort();
		json_decref(planted);
	}
	json_decref(es);
	return 0;
}
