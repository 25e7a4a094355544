#include "common/clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

int64_t
lk_now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
lk_now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
lk_now_real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec
lk_timespec_in_ms(clockid_t clock, int64_t ms)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	if (ms <= 0)
		return ts;
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void
lk_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
lk_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int r;

	if ((r = pthread_condattr_init(&ca)) != 0)
		return r;
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

char *
lk_rfc3339_ms(int64_t epoch_ms, char *out)
{
	time_t secs = (time_t)(epoch_ms / 1000);
	int ms = (int)(epoch_ms % 1000);
	struct tm tm;
	size_t n;

	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	n = strftime(out, LK_RFC3339_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, LK_RFC3339_LEN - n, ".%03dZ", ms);
	return out;
}

char *
lk_rfc3339_ns(const struct timespec *ts, char *out)
{
	struct tm tm;
	size_t n;

	gmtime_r(&ts->tv_sec, &tm);
	n = strftime(out, LK_RFC3339_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, LK_RFC3339_LEN - n, ".%09ldZ", (long)ts->tv_nsec);
	return out;
}

static int
digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

int
lk_rfc3339_parse(const char *s, int64_t *ret_epoch_ms)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, ms = 0, off = 0, oh, om;
	struct tm tm = { 0 };
	const char *p = s;
	time_t t;

	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	if (*p == '.') {
		int n = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++, n++) {
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		}
		for (; n < 3; n++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ret_epoch_ms = ((int64_t)t - off) * 1000 + ms;
	return 0;
}

int
lk_duration_parse(const char *s, int64_t *ret_ms)
{
	/* Units in nanoseconds, longest names first so "ms" wins over "m". */
	static const struct { const char *name; int64_t ns; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "ms", 1000000 },
		{ "s", 1000000000LL }, { "m", 60000000000LL }, { "h", 3600000000000LL },
	};
	const char *p = s;
	__int128 total = 0;
	bool any = false;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	/* A plain integer is a number of seconds, as Vault accepts. */
	if (strspn(s, "0123456789") == strlen(s)) {
		int64_t v = 0;
		for (; *p; p++) {
			if (v > (INT64_MAX / 1000 - 9) / 10)
				return -ERANGE;
			v = v * 10 + (*p - '0');
		}
		*ret_ms = v * 1000;
		return 0;
	}
	while (*p != '\0') {
		__int128 whole = 0, frac = 0, scale = 1;
		const char *start = p;
		size_t best = 0;
		int64_t unit = 0;

		for (; isdigit((unsigned char)*p); p++) {
			whole = whole * 10 + (*p - '0');
			if (whole > (__int128)INT64_MAX)
				return -ERANGE;
		}
		if (*p == '.') {
			p++;
			for (; isdigit((unsigned char)*p); p++) {
				if (scale < 1000000000000000000LL) {
					frac = frac * 10 + (*p - '0');
					scale *= 10;
				}
			}
		}
		if (p == start || (p == start + 1 && *start == '.'))
			return -EINVAL;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].name);
			if (n > best && strncmp(p, units[i].name, n) == 0) {
				best = n;
				unit = units[i].ns;
			}
		}
		if (best == 0)
			return -EINVAL;
		p += best;
		total += whole * unit + frac * unit / scale;
		if (total > (__int128)INT64_MAX)
			return -ERANGE;
		any = true;
	}
	if (!any)
		return -EINVAL;
	*ret_ms = (int64_t)(total / 1000000);
	return 0;
}

char *
lk_duration_format(int64_t ms, char *out, size_t outlen)
{
	int64_t s = ms / 1000, h, m;
	size_t n = 0;

	if (s <= 0) {
		snprintf(out, outlen, "0s");
		return out;
	}
	h = s / 3600;
	m = (s % 3600) / 60;
	s %= 60;
	out[0] = '\0';
	if (h > 0)
		n += (size_t)snprintf(out + n, outlen - n, "%lldh", (long long)h);
	if (h > 0 || m > 0)
		n += (size_t)snprintf(out + n, outlen > n ? outlen - n : 0, "%lldm", (long long)m);
	snprintf(out + n, outlen > n ? outlen - n : 0, "%llds", (long long)s);
	return out;
}
