/* fuzz_broker_template.c — the broker's template language (broker/template.c) on arbitrary
 * text: compiled, and when it compiles, rendered against a few secrets of every kind of
 * value (also a NUL byte, C1 controls, non-characters and bytes that are not UTF-8). The
 * first byte chooses a template of its own (odd) or a secret's own file (even). A render
 * that goes past its step or work limit, or an error that holds a value, aborts. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
	struct broker_template_usage usage;

	if (values[0] == NULL) {
		if (lk_secret_init() < 0)
			abort();
		values[0] = json_pack("{s:s, s:s}", "username", "u", "password", "p'\"\\\n\x01");
		values[1] = json_pack("{s:i, s:f, s:b, s:n, s:{s:{s:s}}, s:[s,i,[]], s:s, s:{}}",
				      "port", 5432, "ratio", 0.5, "flag", 1, "none", "nested", "a",
				      "b", "c", "list", "x", 1, "empty", "", "obj");
		values[2] = json_pack("{s:s}", "user-name", "\xe2\x80\xa8\xc2\x85");
		values[3] = json_pack("{s:s%, s:s, s:s, s:[i,i,i,i,i,i,i,i,i,i]}", "nul",
				      "Qn\0", (size_t)3, "c1", "Qc\xc2\x80\xef\xbf\xbf", "q", "\"",
				      "l", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
		if (values[3] != NULL)
			json_object_set_new(values[3], "bad", json_stringn_nocheck("Qb\xff", 3));
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
	if (broker_template_render_usage(t, (const json_t *const *)values, versions, 4, &out,
					 &usage, &err) < 0) {
		/* A value's mark in a message, when the template does not hold it: a leak. */
		static const char *const marks[] = { "Qn", "Qc", "Qb", "p'" };

		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
			if (strstr(err.msg, marks[i]) != NULL &&
			    memmem(data, size, marks[i], strlen(marks[i])) == NULL)
				abort();
		lk_error_clear(&err);
	}
	if (usage.bytes > BROKER_TPL_WORK_MAX || usage.steps > BROKER_TPL_STEPS_MAX + 1)
		abort();
	lk_buf_free(&out);
	broker_template_free(t);
	return 0;
}
