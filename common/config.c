#include "common/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/json.h"

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

json_t *
lk_cfg_load_text(const char *file, const char *text, size_t len, struct lk_error *err)
{
	return lk_json_parse(text, len, 0, file, err);
}

json_t *
lk_cfg_load_file(const char *file, struct lk_error *err)
{
	struct lk_buf b;
	json_t *root = NULL;
	int r;

	/* A config may hold a token: the wipe buffer zeroes the text. */
	lk_buf_init(&b, LK_CFG_FILE_MAX, true);
	r = lk_file_read(file, false, &b, err);
	if (r == -EISDIR)
		lk_error_set(err, r, "%s: is a directory, expected a JSON file", file);
	else if (r == 0)
		root = lk_cfg_load_text(file, b.data, b.len, err);
	lk_buf_free(&b);
	return root;
}

void
lk_cfg_init(struct lk_cfg *c, const char *file, struct lk_error *err)
{
	c->file = file;
	c->path[0] = '\0';
	c->path_len = 0;
	c->err = err;
}

size_t
lk_cfg_push_key(struct lk_cfg *c, const char *key)
{
	size_t mark = c->path_len;
	int n;

	n = snprintf(c->path + c->path_len, sizeof(c->path) - c->path_len, "%s%s",
		     c->path_len > 0 ? "." : "", key);
	if (n > 0)
		c->path_len += (size_t)n;
	if (c->path_len >= sizeof(c->path))
		c->path_len = sizeof(c->path) - 1;
	return mark;
}

size_t
lk_cfg_push_index(struct lk_cfg *c, size_t index)
{
	size_t mark = c->path_len;
	int n;

	n = snprintf(c->path + c->path_len, sizeof(c->path) - c->path_len, "[%zu]", index);
	if (n > 0)
		c->path_len += (size_t)n;
	if (c->path_len >= sizeof(c->path))
		c->path_len = sizeof(c->path) - 1;
	return mark;
}

void
lk_cfg_pop(struct lk_cfg *c, size_t mark)
{
	if (mark <= c->path_len) {
		c->path_len = mark;
		c->path[mark] = '\0';
	}
}

int
lk_cfg_fail(struct lk_cfg *c, const char *fmt, ...)
{
	char what[LK_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->path_len > 0)
		return lk_error_set(c->err, -EINVAL, "%s: %s: %s", c->file, c->path, what);
	return lk_error_set(c->err, -EINVAL, "%s: %s", c->file, what);
}

/* Fails naming c's path plus key. */
static int
fail_key(struct lk_cfg *c, const char *key, const char *what)
{
	size_t mark = lk_cfg_push_key(c, key);
	int r = lk_cfg_fail(c, "%s", what);

	lk_cfg_pop(c, mark);
	return r;
}

int
lk_cfg_keys(struct lk_cfg *c, const json_t *obj, const char *const known[])
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return lk_cfg_fail(c, "expected an object, got %s", type_name(obj));
	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;
		char list[256];
		size_t n = 0;

		for (size_t i = 0; known[i] != NULL; i++) {
			if (strcmp(key, known[i]) == 0) {
				ok = true;
				break;
			}
		}
		if (ok)
			continue;
		list[0] = '\0';
		for (size_t i = 0; known[i] != NULL && n < sizeof(list); i++) {
			int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", known[i]);
			if (w < 0)
				break;
			n += (size_t)w;
		}
		{
			size_t mark = lk_cfg_push_key(c, key);
			int r = lk_cfg_fail(c, "unknown key (expected one of: %s)", list);
			lk_cfg_pop(c, mark);
			return r;
		}
	}
	return 0;
}

static json_t *
member(const json_t *obj, const char *key)
{
	json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return v;
}

static int
missing(struct lk_cfg *c, const char *key, bool required)
{
	if (required)
		return fail_key(c, key, "missing required key");
	return 1; /* absent, fine */
}

int
lk_cfg_string(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
	      const char **ret)
{
	json_t *v = member(obj, key);

	if (v == NULL)
		return missing(c, key, required) > 0 ? 0 : -EINVAL;
	if (!json_is_string(v)) {
		size_t mark = lk_cfg_push_key(c, key);
		int r = lk_cfg_fail(c, "expected a string, got %s", type_name(v));
		lk_cfg_pop(c, mark);
		return r;
	}
	if (json_string_length(v) == 0)
		return fail_key(c, key, "expected a non-empty string");
	if (!lk_json_is_cstring(v))
		return fail_key(c, key, "expected a string without NUL bytes");
	*ret = json_string_value(v);
	return 0;
}

int
lk_cfg_int(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
	   int64_t min, int64_t max, int64_t *ret)
{
	json_t *v = member(obj, key);
	json_int_t n;

	if (v == NULL)
		return missing(c, key, required) > 0 ? 0 : -EINVAL;
	if (!json_is_integer(v)) {
		size_t mark = lk_cfg_push_key(c, key);
		int r = lk_cfg_fail(c, "expected an integer, got %s", type_name(v));
		lk_cfg_pop(c, mark);
		return r;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		size_t mark = lk_cfg_push_key(c, key);
		int r = lk_cfg_fail(c, "expected an integer from %lld to %lld, got %lld",
				    (long long)min, (long long)max, (long long)n);
		lk_cfg_pop(c, mark);
		return r;
	}
	*ret = (int64_t)n;
	return 0;
}

int
lk_cfg_bool(struct lk_cfg *c, const json_t *obj, const char *key, bool *ret)
{
	json_t *v = member(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		size_t mark = lk_cfg_push_key(c, key);
		int r = lk_cfg_fail(c, "expected true or false, got %s", type_name(v));
		lk_cfg_pop(c, mark);
		return r;
	}
	*ret = json_is_true(v);
	return 0;
}

int
lk_cfg_duration(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
		int64_t *ret_ms)
{
	json_t *v = member(obj, key);
	int64_t ms;

	if (v == NULL)
		return missing(c, key, required) > 0 ? 0 : -EINVAL;
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < INT64_MAX / 1000) {
		*ret_ms = (int64_t)json_integer_value(v) * 1000;
		return 0;
	}
	if (json_is_string(v) && lk_duration_parse(json_string_value(v), &ms) == 0) {
		*ret_ms = ms;
		return 0;
	}
	return fail_key(c, key,
			"expected a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds");
}

int
lk_cfg_mode(struct lk_cfg *c, const json_t *obj, const char *key, mode_t *ret)
{
	json_t *v = member(obj, key);
	const char *s;
	char *end;
	long m;

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return fail_key(c, key, "expected an octal file mode as a string, such as \"0660\"");
	s = json_string_value(v);
	errno = 0;
	m = strtol(s, &end, 8);
	if (*s == '\0' || *end != '\0' || errno != 0 || m < 0 || m > 07777 ||
	    strspn(s, "01234567") != strlen(s))
		return fail_key(c, key, "expected an octal file mode as a string, such as \"0660\"");
	*ret = (mode_t)m;
	return 0;
}

static int
container(struct lk_cfg *c, const json_t *obj, const char *key, bool required, json_t **ret,
	  bool want_object)
{
	json_t *v = member(obj, key);

	if (v == NULL)
		return missing(c, key, required) > 0 ? 0 : -EINVAL;
	if (want_object ? !json_is_object(v) : !json_is_array(v)) {
		size_t mark = lk_cfg_push_key(c, key);
		int r = lk_cfg_fail(c, "expected %s, got %s", want_object ? "an object" : "an array",
				    type_name(v));
		lk_cfg_pop(c, mark);
		return r;
	}
	*ret = v;
	return 0;
}

int
lk_cfg_object(struct lk_cfg *c, const json_t *obj, const char *key, bool required, json_t **ret)
{
	return container(c, obj, key, required, ret, true);
}

int
lk_cfg_array(struct lk_cfg *c, const json_t *obj, const char *key, bool required, json_t **ret)
{
	return container(c, obj, key, required, ret, false);
}
