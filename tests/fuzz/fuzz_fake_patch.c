/* fuzz_fake_patch.c — the test API server's patches (tests/fakes/patch.c): JSON patch
 * (RFC 6902), merge patch (RFC 7386) and the strategic merge patch approximation. The
 * fake's sources are compiled in. Input: a JSON document, a NUL byte, a JSON patch; the
 * patch is applied in every form that takes its shape. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakes/patch.c"
#include "tests/fakes/util.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	json_t *doc, *patch, *out;
	char err[512];

	if (nul == NULL)
		return 0;
	doc = json_loadb((const char *)data, (size_t)(nul - data), JSON_DECODE_ANY, NULL);
	patch = json_loadb((const char *)nul + 1, size - (size_t)(nul - data) - 1, JSON_DECODE_ANY, NULL);
	if (doc == NULL || patch == NULL)
		goto out;
	if (json_is_array(patch)) {
		json_t *copy = json_deep_copy(doc);

		(void)fk_json_patch(&copy, patch, err, sizeof(err));
		json_decref(copy);
	}
	out = fk_merge_patch(doc, patch);
	json_decref(out);
	out = fk_strategic_merge(doc, patch, err, sizeof(err));
	json_decref(out);
out:
	json_decref(doc);
	json_decref(patch);
	return 0;
}
