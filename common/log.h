/* log.h — the JSON-lines logger.
 *
 * Every line is one JSON object with stable keys: "ts" (RFC 3339, UTC, milliseconds),
 * "level", "msg", then the fields in the order given:
 *
 *   lk_log(LK_INFO, "secret served", LK_STR("secret", name), LK_INT("uid", uid));
 *   {"ts":"2026-11-26T07:00:00.123Z","level":"info","msg":"secret served","secret":"db","uid":1000}
 *
 * Fields take only plain strings, integers, booleans and doubles. The secret type
 * (`struct lk_secret`, crypto/secret.h) is an opaque pointer and does not convert to
 * `const char *`, so passing one to LK_STR is a compile error. Writes are one write(2)
 * per line, so lines from several threads never interleave.
 */
#ifndef LK_LOG_H
#define LK_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum lk_log_level { LK_DEBUG = 0, LK_INFO, LK_WARN, LK_ERROR };

enum lk_field_type { LK_FIELD_END = 0, LK_FIELD_STR, LK_FIELD_INT, LK_FIELD_BOOL, LK_FIELD_DOUBLE };

struct lk_field {
	const char *key;
	enum lk_field_type type;
	union {
		const char *s;
		int64_t i;
		bool b;
		double d;
	} v;
};

#define LK_STR(k, val)    ((struct lk_field){ .key = (k), .type = LK_FIELD_STR, .v.s = (val) })
#define LK_INT(k, val)    ((struct lk_field){ .key = (k), .type = LK_FIELD_INT, .v.i = (int64_t)(val) })
#define LK_BOOL(k, val)   ((struct lk_field){ .key = (k), .type = LK_FIELD_BOOL, .v.b = (val) })
#define LK_DOUBLE(k, val) ((struct lk_field){ .key = (k), .type = LK_FIELD_DOUBLE, .v.d = (val) })

#define lk_log(level, msg, ...) \
	lk_log_fields((level), (msg), (const struct lk_field[]){ __VA_ARGS__ __VA_OPT__(,) { 0 } })

/* Sets where lines go (an fd, 2 by default) and the lowest level written (LK_INFO by default).
 * Call before other threads log. */
void lk_log_setup(int fd, enum lk_log_level min_level);

/* Parses "debug", "info", "warn" or "error"; returns 0 or -EINVAL. */
int lk_log_level_parse(const char *s, enum lk_log_level *ret_level);

/* Writes one line; fields ends with an entry whose type is LK_FIELD_END. A NULL string
 * value is written as null. */
void lk_log_fields(enum lk_log_level level, const char *msg, const struct lk_field *fields);

#endif
