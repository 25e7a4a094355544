/* error.h — how library code reports failure.
 *
 * Functions return 0 on success or a negative errno-style code. When the caller wants
 * words, it passes a `struct lk_error`; the callee fills `msg` with one line that names
 * what was wrong and where (file, key path, field, URL) and never a secret value.
 * Library code does not log: the command that called it does.
 */
#ifndef LK_ERROR_H
#define LK_ERROR_H

#include <stddef.h>

/* One message line; longer messages are cut. */
#define LK_ERROR_MSG_MAX 512

struct lk_error {
	int code;                  /* the negative errno-style code, 0 when unset */
	char msg[LK_ERROR_MSG_MAX];
};

/* Sets err (NULL allowed) to code and a formatted message; returns code, which must be
 * negative, so that `return lk_error_set(err, -EINVAL, "...")` reads naturally. */
int lk_error_set(struct lk_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Puts "prefix: " in front of err's message (NULL err allowed); returns err->code. */
int lk_error_prefix(struct lk_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears err (NULL allowed). */
void lk_error_clear(struct lk_error *err);

#endif
