/* template.c — spec.target.template data: the value of each key is text in which
 * {{ .key }} and {{ index . "key" }} are replaced by the fetched values (internal.h). No
 * functions: a template never runs anything, reads a file or reaches the network.
 */
#include "sync/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/buf.h"
#include "crypto/crypto.h"

/* Longest key named in an action. */
#define ACTION_KEY_MAX 256

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

/* The key an action "{{ ... }}" (inner text p..end) names, or -EINVAL. */
static int
action_key(const char *p, const char *end, char *key, size_t keylen)
{
	const char *k, *e;
	size_t n;

	p = skip_space(p, end);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	if (p < end && *p == '.') {
		k = p + 1;
		e = end;
		for (const char *q = k; q < e; q++)
			if (!(isalnum((unsigned char)*q) || *q == '_'))
				return -EINVAL;
	} else if ((size_t)(end - p) > 6 && strncmp(p, "index", 5) == 0 && isspace((unsigned char)p[5])) {
		p = skip_space(p + 5, end);
		if (p >= end || *p != '.')
			return -EINVAL;
		p = skip_space(p + 1, end);
		if (p >= end || *p != '"' || end - p < 2 || end[-1] != '"')
			return -EINVAL;
		k = p + 1;
		e = end - 1;
		if (memchr(k, '"', (size_t)(e - k)) != NULL || memchr(k, '\\', (size_t)(e - k)) != NULL)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	n = (size_t)(e - k);
	if (n == 0 || n >= keylen)
		return -EINVAL;
	memcpy(key, k, n);
	key[n] = '\0';
	return 0;
}

int
sync_template_render(const char *tpl, const json_t *data_b64, struct lk_secret **ret,
		     struct lk_error *err)
{
	const char *p = tpl, *end = tpl + strlen(tpl);
	struct lk_buf out;
	char key[ACTION_KEY_MAX];
	int r = 0;

	lk_buf_init(&out, LK_SECRET_MAX, true);
	while (p < end) {
		const char *open = strstr(p, "{{"), *close;

		if (open == NULL) {
			r = lk_buf_append(&out, p, (size_t)(end - p));
			break;
		}
		if ((r = lk_buf_append(&out, p, (size_t)(open - p))) < 0)
			break;
		if ((close = strstr(open + 2, "}}")) == NULL) {
			r = lk_error_set(err, -EINVAL, "an action opened with {{ is not closed");
			break;
		}
		if (action_key(open + 2, close, key, sizeof(key)) < 0) {
			r = lk_error_set(err, -EINVAL, "{{%.*s}}: only {{ .key }} and {{ index . \"key\" }} "
					 "are supported", (int)(close - open - 2 > 60 ? 60 : close - open - 2),
					 open + 2);
			break;
		}
		{
			const char *b64 = json_string_value(json_object_get(data_b64, key));
			struct lk_secret *v = NULL;

			if (b64 == NULL) {
				r = lk_error_set(err, -EINVAL, "{{ .%s }}: no such key in the fetched data", key);
				break;
			}
			if ((r = lk_b64_decode(b64, strlen(b64), LK_B64_STD, &v)) < 0) {
				lk_error_set(err, r, "{{ .%s }}: cannot decode", key);
				break;
			}
			r = lk_buf_append(&out, lk_secret_bytes(v), lk_secret_len(v));
			lk_secret_free(v);
			if (r < 0)
				break;
		}
		p = close + 2;
	}
	if (r == -E2BIG)
		lk_error_set(err, r, "the rendered value is larger than %u bytes", LK_SECRET_MAX);
	if (r == 0) {
		*ret = lk_secret_new(out.data != NULL ? out.data : "", out.len);
		if (*ret == NULL)
			r = lk_error_set(err, -ENOMEM, "out of memory");
	}
	lk_buf_free(&out);
	return r;
}
