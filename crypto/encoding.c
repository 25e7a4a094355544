/* encoding.c — base64, hex, constant-time compare, scope labels. */
#include "crypto/crypto.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int
b64_variant(enum lk_b64 variant)
{
	switch (variant) {
	case LK_B64_URL:
		return sodium_base64_VARIANT_URLSAFE;
	case LK_B64_URL_NOPAD:
		return sodium_base64_VARIANT_URLSAFE_NO_PADDING;
	case LK_B64_STD:
	case LK_B64_STD_GO:
	default:
		return sodium_base64_VARIANT_ORIGINAL;
	}
}

int
lk_b64_encode(const void *p, size_t n, enum lk_b64 variant, char **ret)
{
	size_t len;
	char *out;
	int v = b64_variant(variant);

	if (n > LK_SEALED_TEXT_MAX)
		return -E2BIG;
	len = sodium_base64_ENCODED_LEN(n, v);
	out = malloc(len);
	if (out == NULL)
		return -ENOMEM;
	sodium_bin2base64(out, len, p, n, v);
	*ret = out;
	return 0;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 as Go's base64.StdEncoding decodes it (how the API server reads a
 * Secret's data and Bitnami's controller a sealed value): CR and LF anywhere are skipped,
 * padding is required, and the spare bits of the last character are not checked. */
static int
b64_go_decode(unsigned char *dst, size_t cap, const char *s, size_t n, size_t *ret_len)
{
	unsigned acc = 0;
	size_t out = 0, chars = 0, pad = 0;
	int bits = 0, r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == '\r' || c == '\n')
			continue;
		chars++;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_value(c)) < 0) {
			r = -EINVAL;
			break;
		}
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (out >= cap) {
				r = -EINVAL;
				break;
			}
			dst[out++] = (unsigned char)(acc >> bits);
		}
	}
	/* Whole quanta; "=" after three characters of one, "==" after two. */
	if (r == 0 && (chars % 4 != 0 || pad > 2 || (pad > 0 && (chars - pad) % 4 != 4 - pad)))
		r = -EINVAL;
	sodium_memzero(&acc, sizeof(acc));
	if (r == 0)
		*ret_len = out;
	return r;
}

/* Decodes into dst (capacity cap); returns 0 or -EINVAL. */
static int
b64_decode_into(unsigned char *dst, size_t cap, const char *s, size_t n, enum lk_b64 variant,
		size_t *ret_len)
{
	const char *end = NULL;
	size_t got = 0;

	if (variant == LK_B64_STD_GO)
		return b64_go_decode(dst, cap, s, n, ret_len);

	if (sodium_base642bin(dst, cap, s, n, NULL, &got, &end, b64_variant(variant)) != 0)
		return -EINVAL;
	/* sodium stops at the first character it does not know; the whole input must go. */
	if (end != s + n)
		return -EINVAL;
	*ret_len = got;
	return 0;
}

int
lk_b64_decode(const char *s, size_t n, enum lk_b64 variant, struct lk_secret **ret)
{
	struct lk_secret *tmp = NULL, *out = NULL;
	size_t cap = n / 4 * 3 + 3, got = 0;
	int r;

	if (cap > LK_SECRET_MAX + 3)
		return -E2BIG;
	tmp = lk_secret_new(NULL, cap);
	if (tmp == NULL)
		return -ENOMEM;
	r = b64_decode_into((unsigned char *)lk_secret_bytes(tmp), cap, s, n, variant, &got);
	if (r < 0)
		goto out;
	if (got > LK_SECRET_MAX) {
		r = -E2BIG;
		goto out;
	}
	out = lk_secret_new(lk_secret_bytes(tmp), got);
	if (out == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*ret = out;
	r = 0;
out:
	lk_secret_free(tmp);
	return r;
}

int
lk_b64_decode_raw(const char *s, size_t n, enum lk_b64 variant, unsigned char **ret,
		  size_t *ret_len)
{
	size_t cap = n / 4 * 3 + 3, got = 0;
	unsigned char *out;
	int r;

	if (n > LK_SEALED_TEXT_MAX)
		return -E2BIG;
	out = malloc(cap);
	if (out == NULL)
		return -ENOMEM;
	r = b64_decode_into(out, cap, s, n, variant, &got);
	if (r < 0) {
		free(out);
		return r;
	}
	*ret = out;
	*ret_len = got;
	return 0;
}

int
lk_hex_encode(const void *p, size_t n, char *out, size_t outlen)
{
	if (outlen < 2 * n + 1)
		return -ENOSPC;
	sodium_bin2hex(out, outlen, p, n);
	return 0;
}

bool
lk_ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

int
lk_scope_parse(const char *s, enum lk_scope *ret)
{
	if (strcmp(s, "strict") == 0)
		*ret = LK_SCOPE_STRICT;
	else if (strcmp(s, "namespace-wide") == 0)
		*ret = LK_SCOPE_NAMESPACE;
	else if (strcmp(s, "cluster-wide") == 0)
		*ret = LK_SCOPE_CLUSTER;
	else
		return -EINVAL;
	return 0;
}

const char *
lk_scope_name(enum lk_scope scope)
{
	switch (scope) {
	case LK_SCOPE_NAMESPACE:
		return "namespace-wide";
	case LK_SCOPE_CLUSTER:
		return "cluster-wide";
	case LK_SCOPE_STRICT:
	default:
		return "strict";
	}
}

/* Namespace: a DNS label (63); Secret name: a DNS subdomain (253); key: 253. */
#define NS_MAX   63
#define NAME_MAX_LEN 253
#define KEY_MAX  253

static int
check_part(const char *what, const char *v, size_t max, struct lk_error *err)
{
	size_t n;

	if (v == NULL || v[0] == '\0')
		return lk_error_set(err, -EINVAL, "%s is missing", what);
	n = strlen(v);
	if (n > max)
		return lk_error_set(err, -EINVAL, "%s is longer than %zu characters", what, max);
	if (strchr(v, '/') != NULL)
		return lk_error_set(err, -EINVAL, "%s '%s' contains '/'", what, v);
	return 0;
}

int
lk_scope_label(enum lk_scope scope, const char *ns, const char *name, const char *key,
	       char *buf, size_t buflen, struct lk_error *err)
{
	int r, n;

	switch (scope) {
	case LK_SCOPE_CLUSTER:
		n = snprintf(buf, buflen, "%s", "");
		break;
	case LK_SCOPE_NAMESPACE:
		r = check_part("namespace (needed for namespace-wide scope)", ns, NS_MAX, err);
		if (r < 0)
			return r;
		n = snprintf(buf, buflen, "%s", ns);
		break;
	case LK_SCOPE_STRICT:
	default:
		r = check_part("namespace (needed for strict scope)", ns, NS_MAX, err);
		if (r < 0)
			return r;
		r = check_part("name (needed for strict scope)", name, NAME_MAX_LEN, err);
		if (r < 0)
			return r;
		if (key != NULL) {
			r = check_part("key", key, KEY_MAX, err);
			if (r < 0)
				return r;
			n = snprintf(buf, buflen, "%s/%s/%s", ns, name, key);
		} else {
			n = snprintf(buf, buflen, "%s/%s", ns, name);
		}
		break;
	}
	if (n < 0 || (size_t)n >= buflen)
		return lk_error_set(err, -ENOSPC, "scope label too long");
	return 0;
}
