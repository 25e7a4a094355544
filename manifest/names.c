/* names.c — Kubernetes naming rules (manifest.h). */
#include "manifest/manifest.h"

#include <string.h>

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool
lk_manifest_secret_key_valid(const char *key, size_t len)
{
	if (len == 0 || len > LK_MANIFEST_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/* One label of len bytes: [a-z0-9]([-a-z0-9]*[a-z0-9])?. */
static bool
label_ok(const char *s, size_t len)
{
	if (len == 0 || len > LK_MANIFEST_LABEL_MAX || !is_lower_alnum(s[0]) ||
	    !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 1; i + 1 < len; i++) {
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool
lk_manifest_subdomain_valid(const char *s)
{
	size_t len = strlen(s);
	const char *p = s, *dot;

	if (len == 0 || len > LK_MANIFEST_NAME_MAX)
		return false;
	for (;;) {
		dot = strchr(p, '.');
		/* Parts of a subdomain are labels but for the 63-byte bound. */
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (n == 0 || !is_lower_alnum(p[0]) || !is_lower_alnum(p[n - 1]))
			return false;
		for (size_t i = 1; i + 1 < n; i++) {
			if (!is_lower_alnum(p[i]) && p[i] != '-')
				return false;
		}
		if (dot == NULL)
			return true;
		p = dot + 1;
	}
}

bool
lk_manifest_label_valid(const char *s)
{
	return label_ok(s, strlen(s));
}
