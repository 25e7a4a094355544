/* fuzz_manifest.c — the YAML/JSON manifest readers (strict and lenient), and the writer:
 * whatever parses must serialize, and the serialization must parse back to the same value. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_doc(const struct lk_manifest_doc *doc, void *arg)
{
	(void)arg;
	return json_is_null(doc->root) ? 1 : 0;
}

static void
round_trip(json_t *root, enum lk_manifest_format format)
{
	struct lk_error err;
	json_t *again = NULL;
	char *text = NULL;
	size_t len = 0;

	if (lk_manifest_dump(root, format, &text, &len, &err) != 0)
		abort();
	if (lk_manifest_parse(text, len, "dump", &again, NULL, &err) != 0)
		abort();
	if (!json_equal(root, again))
		abort();
	json_decref(again);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum lk_manifest_format format = LK_MANIFEST_YAML;
	struct lk_error err;
	json_t *root = NULL;
	char *text;

	if (size > LK_MANIFEST_MAX)
		return 0;
	/* The readers take text with a NUL after it, as they get it from a file. */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (lk_manifest_parse_all(text, size, "fuzz", on_doc, NULL, &err) < 0)
		lk_error_clear(&err);
	/* The lenient reader `scan` uses: aliases read as null, repeated keys renamed. */
	if (lk_manifest_parse_all_lenient(text, size, "fuzz", on_doc, NULL, &err) < 0)
		lk_error_clear(&err);
	if (lk_manifest_parse(text, size, "fuzz", &root, &format, &err) == 0) {
		/* JSON keeps a number under data as a number (the seal command refuses it);
		 * YAML reads it as a string: only YAML input must survive YAML output. */
		if (format == LK_MANIFEST_YAML)
			round_trip(root, LK_MANIFEST_YAML);
		round_trip(root, LK_MANIFEST_JSON);
		json_decref(root);
	}
	free(text);
	return 0;
}
