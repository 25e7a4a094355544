#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
lk_error_set(struct lk_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int
lk_error_prefix(struct lk_error *err, const char *fmt, ...)
{
	char prefix[LK_ERROR_MSG_MAX], old[LK_ERROR_MSG_MAX];
	va_list ap;

	if (err == NULL)
		return 0;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* A message that no longer fits is cut: it is one line for people. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) < 0)
		err->msg[0] = '\0';
	return err->code;
}

void
lk_error_clear(struct lk_error *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}
