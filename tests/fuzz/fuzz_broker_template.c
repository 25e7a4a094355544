/* fuzz_broker_template.c — the broker's template language (broker/template.c) on arbitrary
 * text: compiled, and when it compiles, rendered against a few secrets of every kind of
 * value. The first byte chooses a template of its own (odd) or a secret's own file (even). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "broker/template.h"
#include "common/buf.h"
#include "crypto/secret.h"

/* Inputs larger than the templates the configuration accepts are skipped. */
#define FUZZ_INPUT_MAX (64u << 10)
/* The rendered text kept: large enough for loops to reach the step limit first. */
#define FUZZ_OUTPUT_MAX (256u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "db", "api", "db-main", "x.y" };
	static json_t *values[4];
	static const uint64_t versions[4] = { 1, 2, 3, 4 };
	struct broker_template *t = NULL;
	struct lk_error err;
	struct lk_buf out;

	if (values[0] == NULL) {
		if (lk_secret_init() < 0)
			abort();
		values[0] = json_pack("{s:s, s:s}", "username", "u", "password", "p'\"\\\n\x01");
		values[1] = json_pack("{s:i, s:f, s:b, s:n, s:{s:{s:s}}, s:[s,i,[]], s:s, s:{}}",
				      "port", 5432, "ratio", 0.5, "flag", 1, "none", "nested", "a",
				      "b", "c", "list", "x", 1, "empty", "", "obj");
		values[2] = json_pack("{s:s}", "user-name", "\xe2\x80\xa8\xc2\x85");
		values[3] = json_pack("{}");
		if (values[0] == NULL || values[1] == NULL || values[2] == NULL || values[3] == NULL)
			abort();
	}
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return 0;
	lk_error_clear(&err);
	if (broker_template_compile((const char *)data + 1, size - 1, "fuzz.tpl", names, 4,
				    (data[0] & 1) ? SIZE_MAX : data[0] % 8 / 2, &t, &err) < 0)
		return 0;
	lk_buf_init(&out, FUZZ_OUTPUT_MAX, true);
	if (broker_template_render(t, (const json_t *const *)values, versions, 4, &out, &err) < 0)
		lk_error_clear(&err);
	lk_buf_free(&out);
	broker_template_free(t);
	return 0;
}
