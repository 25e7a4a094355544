/* fuzz_fake_selector.c — the test API server's label and field selector parsers
 * (tests/fakes/selector.c) and their matching. The fake is a program, not a library: its
 * sources are compiled in here. Input: a selector; the same text is tried as both kinds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakes/selector.c"
#include "tests/fakes/util.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fk_selector sel;         /* large: not on the stack */
	struct fk_rtype t;
	char *text, err[512];
	json_t *labels, *obj;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	labels = json_pack("{s:s,s:s,s:s,s:s}", "app", "web", "tier", "backend", "n", "42",
			   "example.com/x", "");
	obj = json_pack("{s:{s:s,s:s,s:O},s:s,s:{s:s}}", "metadata", "name", "a", "namespace", "ns",
			"labels", labels, "type", "Opaque", "involvedObject", "kind", "Secret");
	if (fk_label_selector_parse(text, &sel, err, sizeof(err)) == 0) {
		(void)fk_labels_match(&sel, labels);
		(void)fk_labels_match(&sel, NULL);
		fk_selector_clear(&sel);
	}
	memset(&t, 0, sizeof(t));
	t.hook = FK_HOOK_EVENT;
	if (fk_field_selector_parse(text, &sel, err, sizeof(err)) == 0) {
		(void)fk_fields_supported(&t, &sel, err, sizeof(err));
		(void)fk_fields_match(&sel, obj);
		fk_selector_clear(&sel);
	}
	json_decref(labels);
	json_decref(obj);
	free(text);
	return 0;
}
