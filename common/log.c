#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

/* The longest line written; longer field values are cut, the line stays valid JSON. */
#define LOG_LINE_MAX 8192

static int log_fd = 2;
static enum lk_log_level log_min = LK_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
lk_log_setup(int fd, enum lk_log_level min_level)
{
	log_fd = fd;
	log_min = min_level;
}

int
lk_log_level_parse(const char *s, enum lk_log_level *ret_level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret_level = (enum lk_log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*ret_level = LK_WARN;
		return 0;
	}
	return -EINVAL;
}

struct line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int full;
};

static void
put(struct line *l, const char *s, size_t n)
{
	/* Keep room for the closing "}\n". */
	if (l->full || l->len + n > sizeof(l->buf) - 8) {
		l->full = 1;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void
put_quoted(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char esc[6];

	put(l, "\"", 1);
	for (; *p != '\0' && !l->full; p++) {
		switch (*p) {
		case '"': put(l, "\\\"", 2); break;
		case '\\': put(l, "\\\\", 2); break;
		case '\n': put(l, "\\n", 2); break;
		case '\r': put(l, "\\r", 2); break;
		case '\t': put(l, "\\t", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
				put(l, esc, 6);
			} else {
				put(l, (const char *)p, 1);
			}
		}
	}
	if (l->full) {
		/* Cut: close the string so the line stays valid JSON. */
		l->full = 0;
		l->len = l->len > sizeof(l->buf) - 16 ? sizeof(l->buf) - 16 : l->len;
		put(l, "...\"", 4);
		l->full = 1;
		return;
	}
	put(l, "\"", 1);
}

void
lk_log_fields(enum lk_log_level level, const char *msg, const struct lk_field *fields)
{
	struct line l;
	char ts[LK_RFC3339_LEN], num[64];
	int saved_errno = errno;

	if (level < log_min || level > LK_ERROR)
		return;
	l.len = 0;
	l.full = 0;
	put_str(&l, "{\"ts\":\"");
	put_str(&l, lk_rfc3339_ms(lk_now_real_ms(), ts));
	put_str(&l, "\",\"level\":\"");
	put_str(&l, level_names[level]);
	put_str(&l, "\",\"msg\":");
	put_quoted(&l, msg != NULL ? msg : "");
	for (; fields != NULL && fields->type != LK_FIELD_END && !l.full; fields++) {
		put(&l, ",", 1);
		put_quoted(&l, fields->key);
		put(&l, ":", 1);
		switch (fields->type) {
		case LK_FIELD_STR:
			if (fields->v.s == NULL)
				put_str(&l, "null");
			else
				put_quoted(&l, fields->v.s);
			break;
		case LK_FIELD_INT:
			snprintf(num, sizeof(num), "%lld", (long long)fields->v.i);
			put_str(&l, num);
			break;
		case LK_FIELD_BOOL:
			put_str(&l, fields->v.b ? "true" : "false");
			break;
		case LK_FIELD_DOUBLE:
			if (isfinite(fields->v.d))
				snprintf(num, sizeof(num), "%.17g", fields->v.d);
			else
				snprintf(num, sizeof(num), "null");
			put_str(&l, num);
			break;
		case LK_FIELD_END:
			break;
		}
	}
	l.full = 0;
	put(&l, "}\n", 2);
	/* One write per line: lines from several threads do not interleave. */
	for (size_t off = 0; off < l.len;) {
		ssize_t n = write(log_fd, l.buf + off, l.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	errno = saved_errno;
}
