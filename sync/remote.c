/* remote.c — one value out of a backend secret: ESO's property lookup and decoding
 * strategies (internal.h; REFERENCE.md §4.6). */
#include "sync/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/* Longest dotted property path followed. */
#define PROPERTY_MAX 512

struct lk_secret *
sync_remote_value(const json_t *v)
{
	struct lk_secret *s;
	char *text;

	if (json_is_string(v))
		return lk_secret_new(json_string_value(v), json_string_length(v));
	if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS)) == NULL)
		return NULL;
	s = lk_secret_new(text, strlen(text));
	explicit_bzero(text, strlen(text));
	free(text);
	return s;
}

int
sync_remote_property(const json_t *data, const char *property, struct lk_secret **ret)
{
	char path[PROPERTY_MAX], *p, *dot;
	const json_t *v;

	if (property == NULL || property[0] == '\0')
		v = data;
	else if ((v = json_object_get(data, property)) == NULL) {
		/* Not a top-level key: a path into nested objects, a.b.c. */
		if (strlen(property) >= sizeof(path))
			return -ENOENT;
		memcpy(path, property, strlen(property) + 1);
		v = data;
		for (p = path; v != NULL && p != NULL; p = dot) {
			dot = strchr(p, '.');
			if (dot != NULL)
				*dot++ = '\0';
			v = json_object_get(v, p);
		}
	}
	if (v == NULL || json_is_null(v))
		return -ENOENT;
	*ret = sync_remote_value(v);
	return *ret != NULL ? 0 : -ENOMEM;
}

int
sync_remote_decode(const char *strategy, struct lk_secret **io)
{
	struct lk_secret *out = NULL;
	const char *s = lk_secret_cstr(*io);
	size_t n = lk_secret_len(*io);
	int r;

	if (strategy == NULL || strategy[0] == '\0' || strcmp(strategy, "None") == 0)
		return 0;
	if (strcmp(strategy, "Base64") == 0) {
		r = lk_b64_decode(s, n, LK_B64_STD, &out);
	} else if (strcmp(strategy, "Base64URL") == 0) {
		r = lk_b64_decode(s, n, LK_B64_URL, &out);
		if (r == -EINVAL)
			r = lk_b64_decode(s, n, LK_B64_URL_NOPAD, &out);
	} else if (strcmp(strategy, "Auto") == 0) {
		r = lk_b64_decode(s, n, LK_B64_STD, &out);
		if (r == -EINVAL)
			r = lk_b64_decode(s, n, LK_B64_URL, &out);
		if (r == -EINVAL)
			r = lk_b64_decode(s, n, LK_B64_URL_NOPAD, &out);
		if (r == -EINVAL)
			return 0; /* not base64: as it is */
	} else {
		return -ENOTSUP;
	}
	if (r < 0)
		return r;
	lk_secret_free(*io);
	*io = out;
	return 0;
}
