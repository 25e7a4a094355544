/* util.c — time, identifiers, base64, JSON lookups and the logger of the test API server. */
#include "fake.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static enum fk_level log_level = FK_INFO;

void
fk_log_setup(enum fk_level level)
{
	log_level = level;
}

bool
fk_log_enabled(enum fk_level level)
{
	return level >= log_level;
}

void
fk_log(enum fk_level level, const char *msg, json_t *fields)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	json_t *line;
	char ts[40], *text;

	if (level < log_level) {
		json_decref(fields);
		return;
	}
	fk_now_micro(ts);
	line = json_pack("{s:s,s:s,s:s}", "ts", ts, "level", names[level], "msg", msg);
	if (line == NULL) {
		json_decref(fields);
		return;
	}
	if (fields != NULL) {
		json_object_update(line, fields);
		json_decref(fields);
	}
	/* JSON_PRESERVE_ORDER keeps ts, level and msg first. */
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL) {
		fprintf(stderr, "%s\n", text);
		fflush(stderr);
		free(text);
	}
	json_decref(line);
}

/* ---- time ---- */

void
fk_time_rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
fk_now_rfc3339(char out[32])
{
	fk_time_rfc3339(time(NULL), out);
}

void
fk_now_micro(char out[40])
{
	struct timespec ts;
	struct tm tm;
	char base[24];
	int us;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	us = (int)(ts.tv_nsec / 1000) % 1000000;
	snprintf(out, 40, "%.19s.%06dZ", base, us);
}

long
fk_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SS" and returns the offset past it. */
static int
parse_base(const char *s, struct tm *tm)
{
	int y, mo, d, h, mi, se;

	if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (digits(s, 4, &y) < 0 || digits(s + 5, 2, &mo) < 0 || digits(s + 8, 2, &d) < 0 ||
	    digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &mi) < 0 || digits(s + 17, 2, &se) < 0)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = y - 1900;
	tm->tm_mon = mo - 1;
	tm->tm_mday = d;
	tm->tm_hour = h;
	tm->tm_min = mi;
	tm->tm_sec = se;
	return 19;
}

/* Parses "Z" or "+HH:MM"; returns the offset in seconds east of UTC. */
static int
parse_zone(const char *s, long *ret)
{
	int h, m;

	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
		*ret = 0;
		return 0;
	}
	if ((s[0] != '+' && s[0] != '-') || strlen(s) != 6 || s[3] != ':' ||
	    digits(s + 1, 2, &h) < 0 || digits(s + 4, 2, &m) < 0 || h > 23 || m > 59)
		return -EINVAL;
	*ret = (s[0] == '-' ? -1 : 1) * (h * 3600L + m * 60L);
	return 0;
}

int
fk_parse_rfc3339(const char *s, time_t *ret)
{
	struct tm tm;
	long off;
	int n;

	if ((n = parse_base(s, &tm)) < 0)
		return n;
	s += n;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (parse_zone(s, &off) < 0)
		return -EINVAL;
	*ret = timegm(&tm) - off;
	return 0;
}

int
fk_parse_micro(const char *s, char out[40])
{
	struct tm tm;
	char base[32];
	time_t t;
	long off;
	int n, frac;

	if ((n = parse_base(s, &tm)) < 0)
		return n;
	s += n;
	if (s[0] != '.' || digits(s + 1, 6, &frac) < 0)
		return -EINVAL;
	s += 7;
	if (parse_zone(s, &off) < 0)
		return -EINVAL;
	t = timegm(&tm) - off;
	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%06dZ", base, frac);
	return 0;
}

/* kubectl's duration.HumanDuration. */
void
fk_human_age(time_t since, char out[32])
{
	long s = (long)(time(NULL) - since);
	long m, h;

	if (s < 0)
		s = 0;
	if (s < 120) {
		snprintf(out, 32, "%lds", s);
		return;
	}
	m = s / 60;
	if (m < 10) {
		if (s % 60 == 0)
			snprintf(out, 32, "%ldm", m);
		else
			snprintf(out, 32, "%ldm%lds", m, s % 60);
		return;
	}
	if (m < 180) {
		snprintf(out, 32, "%ldm", m);
		return;
	}
	h = s / 3600;
	if (h < 8) {
		if (m % 60 == 0)
			snprintf(out, 32, "%ldh", h);
		else
			snprintf(out, 32, "%ldh%ldm", h, m % 60);
		return;
	}
	if (h < 48) {
		snprintf(out, 32, "%ldh", h);
		return;
	}
	if (h < 24 * 8) {
		if (h % 24 == 0)
			snprintf(out, 32, "%ldd", h / 24);
		else
			snprintf(out, 32, "%ldd%ldh", h / 24, h % 24);
		return;
	}
	if (h < 24 * 365 * 2) {
		snprintf(out, 32, "%ldd", h / 24);
		return;
	}
	snprintf(out, 32, "%ldy", h / (24 * 365));
}

/* ---- identifiers ---- */

static void
random_bytes(unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			abort();        /* no randomness: nothing sensible to hand out */
		}
		p += got;
		n -= (size_t)got;
	}
}

void
fk_uuid(char out[37])
{
	unsigned char b[16];

	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

void
fk_random_alnum(char *out, size_t n)
{
	static const char set[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char b[64];

	while (n > 0) {
		size_t k = n < sizeof(b) ? n : sizeof(b);

		random_bytes(b, k);
		for (size_t i = 0; i < k; i++)
			*out++ = set[b[i] % (sizeof(set) - 1)];
		n -= k;
	}
	*out = '\0';
}

/* ---- base64 ---- */

static char *
b64_encode(const unsigned char *d, size_t len, const char *alpha, bool pad)
{
	size_t cap = (len + 2) / 3 * 4 + 1, o = 0;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)d[i] << 16;
		size_t rest = len - i;

		if (rest > 1)
			v |= (unsigned)d[i + 1] << 8;
		if (rest > 2)
			v |= d[i + 2];
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		if (rest > 1)
			out[o++] = alpha[(v >> 6) & 63];
		else if (pad)
			out[o++] = '=';
		if (rest > 2)
			out[o++] = alpha[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
fk_b64_encode(const unsigned char *data, size_t len)
{
	return b64_encode(data, len, B64, true);
}

char *
fk_b64url_encode(const unsigned char *data, size_t len)
{
	return b64_encode(data, len, B64URL, false);
}

static int
b64_value(char c, const char *alpha)
{
	const char *p = c != '\0' ? strchr(alpha, c) : NULL;

	return p != NULL ? (int)(p - alpha) : -1;
}

static int
b64_decode(const char *s, const char *alpha, bool pad, unsigned char **ret, size_t *ret_len)
{
	size_t len = strlen(s), o = 0, n = 0;
	unsigned acc = 0;
	unsigned char *out;
	int bits = 0;

	if (pad && len % 4 != 0)
		return -EINVAL;
	if ((out = malloc(len / 4 * 3 + 3)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int v;

		if (pad && s[i] == '=') {
			/* only at the end, at most two */
			if (len - i > 2 || (len - i == 2 && s[i + 1] != '='))
				goto bad;
			break;
		}
		if ((v = b64_value(s[i], alpha)) < 0)
			goto bad;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		n++;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (n % 4 == 1)
		goto bad;
	*ret = out;
	*ret_len = o;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

int
fk_b64_decode(const char *s, unsigned char **ret, size_t *ret_len)
{
	return b64_decode(s, B64, true, ret, ret_len);
}

int
fk_b64url_decode(const char *s, unsigned char **ret, size_t *ret_len)
{
	return b64_decode(s, B64URL, false, ret, ret_len);
}

/* ---- JSON ---- */

const char *
fk_jstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

json_t *
fk_jobj(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_object(v) ? v : NULL;
}

json_t *
fk_jpath(json_t *root, const char *dotted)
{
	char part[256];
	const char *p = dotted;
	json_t *cur = root;

	while (cur != NULL && *p != '\0') {
		const char *dot = strchr(p, '.');
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		cur = json_is_object(cur) ? json_object_get(cur, part) : NULL;
		p += n;
		if (*p == '.')
			p++;
	}
	return cur;
}

const char *
fk_meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

json_t *
fk_jobj_ensure(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_object(v)) {
		v = json_object();
		json_object_set_new(obj, key, v);
	}
	return v;
}

json_t *
fk_meta(json_t *obj)
{
	return fk_jobj_ensure(obj, "metadata");
}

char *
fk_json_dump(const json_t *v)
{
	/* 15 digits: 0.1 prints as 0.1, as Go's shortest form does. */
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
}

bool
fk_json_equal(const json_t *a, const json_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	/* jansson compares integers and reals as different types; so does Go's JSON for
	 * the values we keep (numbers keep their text form through the store). */
	return json_equal(a, b) != 0;
}

static bool
dns_label(const char *s, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

bool
fk_valid_dns1123_label(const char *s)
{
	return dns_label(s, strlen(s));
}

bool
fk_valid_dns1123_subdomain(const char *s)
{
	size_t len = strlen(s);
	const char *p = s;

	if (len == 0 || len > 253)
		return false;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);

		if (!dns_label(p, n))
			return false;
		if (dot == NULL)
			return true;
		p = dot + 1;
	}
}

int
fk_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = *cap - *len;

		va_start(ap, fmt);
		n = vsnprintf(*buf != NULL ? *buf + *len : NULL, *buf != NULL ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (*buf != NULL && (size_t)n < room) {
			*len += (size_t)n;
			return 0;
		}
		size_t ncap = *cap ? *cap * 2 : 256;
		while (ncap < *len + (size_t)n + 1)
			ncap *= 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
}
