/* fuzz_config.c — the config loader and walker, durations, RFC 3339 timestamps, and the
 * text of the kernel files lk_cpuidle_probe reads (split at the first two NUL bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/cpuidle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = { "vault", "listen", "secrets", "refresh", NULL };
	struct lk_error err;
	struct lk_cfg c;
	char *text;
	json_t *root, *arr = NULL, *obj = NULL;
	const char *s;
	int64_t ms, n;
	bool b;
	mode_t mode;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	{
		/* text[size] is a NUL too, so each part is a string within the copy. */
		const char *end = text + size, *driver = NULL, *ns = NULL;
		struct lk_cpuidle m;

		if (text + strlen(text) < end)
			driver = text + strlen(text) + 1;
		if (driver != NULL && driver + strlen(driver) < end)
			ns = driver + strlen(driver) + 1;
		lk_cpuidle_parse(text, driver, ns, &m);
	}
	lk_duration_parse(text, &ms);
	lk_rfc3339_parse(text, &ms);
	root = lk_cfg_load_text("fuzz.json", text, size, &err);
	if (root != NULL) {
		lk_cfg_init(&c, "fuzz.json", &err);
		lk_cfg_keys(&c, root, known);
		lk_cfg_string(&c, root, "vault", false, &s);
		lk_cfg_duration(&c, root, "refresh", false, &ms);
		lk_cfg_int(&c, root, "n", false, -5, 5, &n);
		lk_cfg_bool(&c, root, "b", &b);
		lk_cfg_mode(&c, root, "mode", &mode);
		lk_cfg_object(&c, root, "listen", false, &obj);
		if (lk_cfg_array(&c, root, "secrets", false, &arr) == 0 && arr != NULL) {
			size_t m = lk_cfg_push_key(&c, "secrets");
			for (size_t i = 0; i < json_array_size(arr); i++) {
				size_t m2 = lk_cfg_push_index(&c, i);
				lk_cfg_keys(&c, json_array_get(arr, i), known);
				lk_cfg_pop(&c, m2);
			}
			lk_cfg_pop(&c, m);
		}
		json_decref(root);
	}
	free(text);
	return 0;
}
