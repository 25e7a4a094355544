/* util.c — replies in Vault's shapes, randomness, times and small JSON helpers. */
#include "devserver/internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"

static void
set_reply(struct dev_call *c, unsigned status, json_t *body)
{
	json_decref(c->reply);
	c->status = status;
	c->reply = body;
}

void
dev_reply_error(struct dev_call *c, unsigned status, const char *msg)
{
	json_t *errs = json_array();

	if (msg != NULL)
		json_array_append_new(errs, json_string(msg));
	set_reply(c, status, json_pack("{s:o}", "errors", errs));
}

void
dev_reply_errorf(struct dev_call *c, unsigned status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dev_reply_error(c, status, msg);
}

json_t *
dev_envelope(json_t *data)
{
	char id[40];

	dev_random_uuid(id);
	return json_pack("{s:s, s:s, s:b, s:i, s:o, s:n, s:n, s:n}",
	    "request_id", id, "lease_id", "", "renewable", 0, "lease_duration", 0,
	    "data", data != NULL ? data : json_null(), "wrap_info", "warnings", "auth");
}

void
dev_reply_data(struct dev_call *c, json_t *data)
{
	set_reply(c, 200, dev_envelope(data));
}

void
dev_reply_empty(struct dev_call *c)
{
	set_reply(c, 204, NULL);
}

void
dev_reply_bad_method(struct dev_call *c)
{
	dev_reply_error(c, 405, "1 error occurred:\n\t* unsupported operation\n\n");
}

void
dev_reply_no_route(struct dev_call *c)
{
	dev_reply_errorf(c, 404, "no handler for route \"%.512s\". route entry not found.", c->path);
}

bool
dev_reply_role(struct dev_call *c, json_t *roles, const char *name, const json_t *role,
	       json_t *(*view)(const json_t *role))
{
	switch (c->op) {
	case DEV_OP_READ:
		if (role == NULL)
			dev_reply_error(c, 404, NULL);
		else
			dev_reply_data(c, view != NULL ? view(role) : json_deep_copy(role));
		return true;
	case DEV_OP_DELETE:
		json_object_del(roles, name);
		dev_reply_empty(c);
		return true;
	default:
		return false;
	}
}

void
dev_reply_keys(struct dev_call *c, json_t *keys)
{
	if (keys == NULL || json_array_size(keys) == 0) {
		json_decref(keys);
		dev_reply_error(c, 404, NULL);
		return;
	}
	dev_reply_data(c, json_pack("{s:o}", "keys", keys));
}

void
dev_random_uuid(char out[40])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
	    b[14], b[15]);
}

void
dev_random_alnum(char *out, size_t n)
{
	static const char set[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

	for (size_t i = 0; i < n; i++)
		out[i] = set[randombytes_uniform(sizeof(set) - 1)];
	out[n] = '\0';
}

double
dev_random_unit(void)
{
	return (double)randombytes_uniform(1000000) / 1000000.0;
}

char *
dev_time_str(int64_t ms, char *out)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	return lk_rfc3339_ns(&ts, out);
}

char *
dev_duration_str(int64_t s, char *out, size_t outlen)
{
	int64_t h = s / 3600, m = (s % 3600) / 60, sec = s % 60;

	/* Go's Duration.String with Vault's humanDuration trimming of "h0m" and "m0s". */
	if (s <= 0)
		snprintf(out, outlen, "0s");
	else if (h > 0 && m == 0 && sec == 0)
		snprintf(out, outlen, "%lldh", (long long)h);
	else if (h > 0 && sec == 0)
		snprintf(out, outlen, "%lldh%lldm", (long long)h, (long long)m);
	else if (h > 0 && m == 0)
		snprintf(out, outlen, "%lldh%llds", (long long)h, (long long)sec);
	else if (h > 0)
		snprintf(out, outlen, "%lldh%lldm%llds", (long long)h, (long long)m, (long long)sec);
	else if (m > 0 && sec == 0)
		snprintf(out, outlen, "%lldm", (long long)m);
	else if (m > 0)
		snprintf(out, outlen, "%lldm%llds", (long long)m, (long long)sec);
	else
		snprintf(out, outlen, "%llds", (long long)sec);
	return out;
}

int
dev_json_ttl(const json_t *v, int64_t *ret_s)
{
	int64_t ms;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 || json_integer_value(v) > INT64_MAX / 1000)
			return -EINVAL;
		*ret_s = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d >= 0 && d < 1e15))
			return -EINVAL;
		*ret_s = (int64_t)d;
		return 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	if (json_string_length(v) == 0) {
		*ret_s = 0;
		return 0;
	}
	if (lk_duration_parse(json_string_value(v), &ms) < 0)
		return -EINVAL;
	*ret_s = ms / 1000;
	return 0;
}

const char *
dev_body_str(const struct dev_call *c, const char *key)
{
	const json_t *v = json_object_get(c->body, key);

	/* A field that holds a NUL byte is not the C string it would be cut to (a role_id
	 * "x\u0000y" is not "x"): absent, as Vault's own decoding would not match it. */
	return lk_json_is_cstring(v) ? json_string_value(v) : NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *
dev_json_strlist(const json_t *v, bool sort)
{
	json_t *out = json_array();
	const char **items = NULL;
	size_t n = 0;

	if (out == NULL)
		return NULL;
	if (v == NULL || json_is_null(v))
		return out;
	if (json_is_string(v)) {
		char *copy = strdup(json_string_value(v)), *save = NULL;

		if (copy == NULL)
			goto fail;
		for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ')
				tok++;
			size_t l = strlen(tok);
			while (l > 0 && tok[l - 1] == ' ')
				tok[--l] = '\0';
			if (l > 0)
				json_array_append_new(out, json_string(tok));
		}
		free(copy);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e) {
			if (!json_is_string(e))
				goto fail;
			if (json_string_length(e) > 0)
				json_array_append(out, e);
		}
	} else {
		goto fail;
	}
	if (!sort)
		return out;
	n = json_array_size(out);
	items = calloc(n + 1, sizeof(*items));
	if (items == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		items[i] = json_string_value(json_array_get(out, i));
	qsort(items, n, sizeof(*items), cmp_str);
	json_t *sorted = json_array();
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(items[i], items[i - 1]) != 0)
			json_array_append_new(sorted, json_string(items[i]));
	free(items);
	json_decref(out);
	return sorted;
fail:
	json_decref(out);
	return NULL;
}

bool
dev_strlist_has(const json_t *list, const char *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e)
		if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
			return true;
	return false;
}

json_t *
dev_list_children(const json_t *obj, const char *prefix)
{
	size_t plen = strlen(prefix);
	const char *key;
	json_t *v, *seen = json_object(), *out;

	json_object_foreach((json_t *)obj, key, v) {
		const char *rest, *slash;
		char child[DEV_PATH_MAX];

		if (strncmp(key, prefix, plen) != 0 || key[plen] == '\0')
			continue;
		rest = key + plen;
		slash = strchr(rest, '/');
		if (slash != NULL)
			snprintf(child, sizeof(child), "%.*s", (int)(slash - rest + 1), rest);
		else
			snprintf(child, sizeof(child), "%s", rest);
		json_object_set_new(seen, child, json_true());
	}
	out = json_array();
	json_object_foreach(seen, key, v)
		json_array_append_new(out, json_string(key));
	json_decref(seen);
	v = dev_json_strlist(out, true);
	json_decref(out);
	return v;
}

bool
dev_path_starts(const char *path, const char *prefix, const char **ret_rest)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return false;
	*ret_rest = path + n;
	return true;
}

json_t *
dev_json_merge_patch(const json_t *target, const json_t *patch)
{
	const char *key;
	json_t *out, *v;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_is_object(target) ? json_deep_copy(target) : json_object();
	if (out == NULL)
		return NULL;
	json_object_foreach((json_t *)patch, key, v) {
		json_t *merged;

		if (json_is_null(v)) {
			json_object_del(out, key);
			continue;
		}
		merged = dev_json_merge_patch(json_object_get(out, key), v);
		if (merged == NULL || json_object_set_new(out, key, merged) < 0) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

const char *
dev_json_error_words(const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_out_of_memory:
		return "out of memory";
	case json_error_stack_overflow:
		return "nested too deeply";
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "unexpected end of JSON input";
	case json_error_end_of_input_expected:
		return "invalid character after top-level value";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "NUL character";
	case json_error_numeric_overflow:
		return "number out of range";
	default:
		return "invalid syntax";
	}
}
