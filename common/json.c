/* json.c — the wipe-on-free allocator and parse errors without input (json.h). */
#include "common/json.h"

#include "common/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* lk_free_wiped: blocks stay plain malloc blocks, so memory that jansson allocated before
 * the switch, or that a caller frees with free() (json_dumps output), is still handled
 * correctly. */
void
lk_json_wipe_on_free(void)
{
	json_malloc_t m;
	json_free_t f;

	json_get_alloc_funcs(&m, &f);
	if (f == lk_free_wiped)
		return;
	json_set_alloc_funcs(malloc, lk_free_wiped);
}

const char *
lk_json_error_text(const json_error_t *je)
{
	switch (json_error_code(je)) {
	case json_error_out_of_memory:
		return "out of memory";
	case json_error_stack_overflow:
		return "nested too deeply";
	case json_error_cannot_open_file:
		return "cannot open";
	case json_error_invalid_argument:
		return "invalid argument";
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "truncated";
	case json_error_end_of_input_expected:
		return "garbage after the document";
	case json_error_invalid_syntax:
		return "invalid syntax";
	case json_error_invalid_format:
		return "invalid format";
	case json_error_wrong_type:
		return "wrong type";
	case json_error_null_character:
		return "NUL character";
	case json_error_null_value:
		return "null value";
	case json_error_null_byte_in_key:
		return "NUL byte in a key";
	case json_error_duplicate_key:
		return "duplicate key";
	case json_error_numeric_overflow:
		return "number out of range";
	case json_error_item_not_found:
		return "item not found";
	case json_error_index_out_of_range:
		return "index out of range";
	case json_error_unknown:
		break;
	}
	return "unreadable";
}

json_t *
lk_json_parse(const char *text, size_t len, size_t flags, const char *name,
	      struct lk_error *err)
{
	json_error_t je;
	json_t *root;

	root = json_loadb(text, len, flags | JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		if (json_error_code(&je) == json_error_out_of_memory)
			lk_error_set(err, -ENOMEM, "%s: out of memory", name);
		else
			lk_error_set(err, -EINVAL, "%s:%d:%d: %s", name, je.line, je.column,
				     lk_json_error_text(&je));
	}
	return root;
}

/* Length of the whole UTF-8 character at s (n bytes left), or 0 when none starts there. */
static size_t
utf8_char_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not characters. */
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

json_t *
lk_json_string_lossy(const char *text)
{
	size_t n = strlen(text);
	json_t *j;
	char *copy;

	if ((j = json_stringn(text, n)) != NULL || (copy = malloc(n + 1)) == NULL)
		return j;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_char_len((const unsigned char *)text + i, n - i);

		if (len == 0) {
			copy[i++] = '?';
			continue;
		}
		memcpy(copy + i, text + i, len);
		i += len;
	}
	copy[n] = '\0';
	j = json_stringn(copy, n);
	free(copy);
	return j;
}

bool
lk_json_is_cstring(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}
