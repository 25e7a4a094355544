/* resolve.c — YAML 1.1 plain scalars: what a Kubernetes reader (go-yaml) takes them for. */
#include "manifest/internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Scalars longer than this are never numbers or booleans. */
#define RESOLVE_LEN_MAX 64

static bool
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static const char *const yaml_nulls[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const yaml_trues[] = { "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
					  "on", "On", "ON", NULL };
static const char *const yaml_falses[] = { "n", "N", "no", "No", "NO", "false", "False", "FALSE",
					   "off", "Off", "OFF", NULL };
static const char *const yaml_specials[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
					     "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN",
					     NULL };

/* Copies s without '_' into buf; false when too long or empty after that. */
static bool
strip_underscores(const char *s, char *buf, size_t buflen)
{
	size_t j = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '_')
			continue;
		if (j + 1 >= buflen)
			return false;
		buf[j++] = s[i];
	}
	buf[j] = '\0';
	return j > 0;
}

static bool
all_in(const char *s, const char *set)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (strchr(set, *s) == NULL)
			return false;
	return true;
}

/* YAML 1.1 integer: [-+]?(0b[01_]+ | 0x[0-9a-fA-F_]+ | 0[0-7_]+ | [1-9][0-9_]* | 0). */
static bool
resolve_int(const char *s, json_int_t *ret, bool *ret_overflow)
{
	char buf[RESOLVE_LEN_MAX + 1], *p, *end;
	bool neg = false;
	int base = 10;
	unsigned long long v;

	*ret_overflow = false;
	if (!strip_underscores(s, buf, sizeof(buf)))
		return false;
	if (s[0] == '_')
		return false;
	p = buf;
	if (*p == '-' || *p == '+') {
		neg = *p == '-';
		p++;
	}
	if (p[0] == '0' && p[1] == 'b') {
		base = 2;
		p += 2;
		if (!all_in(p, "01"))
			return false;
	} else if (p[0] == '0' && p[1] == 'x') {
		base = 16;
		p += 2;
		if (!all_in(p, "0123456789abcdefABCDEF"))
			return false;
	} else if (p[0] == '0' && p[1] != '\0') {
		base = 8;
		p += 1;
		if (!all_in(p, "01234567"))
			return false;
	} else if (!all_in(p, "0123456789")) {
		return false;
	}
	errno = 0;
	v = strtoull(p, &end, base);
	if (*end != '\0')
		return false;
	if (errno == ERANGE || (!neg && v > (unsigned long long)INT64_MAX) ||
	    (neg && v > (unsigned long long)INT64_MAX + 1)) {
		*ret_overflow = true;
		return true;
	}
	if (neg)
		*ret = v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)v;
	else
		*ret = (json_int_t)v;
	return true;
}

/* A float as Go's strconv.ParseFloat reads a plain scalar: digits, one '.', an
 * exponent; at least one digit in the mantissa. */
static bool
resolve_float(const char *s, double *ret)
{
	char buf[RESOLVE_LEN_MAX + 1], *end;
	const char *p;
	bool digit = false;

	if (!strip_underscores(s, buf, sizeof(buf)) || !all_in(buf, "0123456789+-.eE"))
		return false;
	p = buf;
	if (*p == '+' || *p == '-')
		p++;
	for (const char *q = p; *q != '\0' && *q != 'e' && *q != 'E'; q++)
		if (*q >= '0' && *q <= '9')
			digit = true;
	if (!digit)
		return false;
	errno = 0;
	*ret = strtod(buf, &end);
	return *end == '\0';
}

/* The JSON value of a plain scalar, or NULL for a string. */
json_t *
lk_manifest_resolve_plain(const char *s, size_t len)
{
	json_int_t iv;
	double dv;
	bool overflow;

	if (len > RESOLVE_LEN_MAX || strlen(s) != len)
		return NULL;
	if (in_list(s, yaml_nulls))
		return json_null();
	if (in_list(s, yaml_trues))
		return json_true();
	if (in_list(s, yaml_falses))
		return json_false();
	if (resolve_int(s, &iv, &overflow)) {
		if (!overflow)
			return json_integer(iv);
		if (resolve_float(s, &dv))
			return json_real(dv);
		return NULL;
	}
	if (resolve_float(s, &dv))
		return json_real(dv);
	return NULL;
}

/* Would a plain scalar with this text be read as something else than this string? */
bool
lk_manifest_plain_is_ambiguous(const char *s, size_t len)
{
	json_t *v;

	if (in_list(s, yaml_specials))
		return true;
	v = lk_manifest_resolve_plain(s, len);
	if (v == NULL)
		return false;
	json_decref(v);
	return true;
}
