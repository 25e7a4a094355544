/* buf.h — a growable byte buffer with a hard cap.
 *
 * Every buffer that holds input from outside has a maximum size: appending past it fails
 * with -E2BIG and leaves the buffer as it was. The content is always NUL-terminated (the
 * terminator is not counted in len), so text can be handed to parsers directly.
 *
 * With `wipe` set, memory is zeroed before it is freed or moved on growth: use it for
 * buffers that may hold secret material (HTTP bodies from the backend, for example).
 */
#ifndef LK_BUF_H
#define LK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lk_buf {
	char *data;    /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;    /* the most bytes it may hold */
	bool wipe;     /* zero memory before freeing or moving it */
};

/* Prepares an empty buffer that will hold at most max bytes. Allocates nothing. */
void lk_buf_init(struct lk_buf *b, size_t max, bool wipe);

/* Appends n bytes; returns 0, -E2BIG past max (buffer unchanged) or -ENOMEM. */
int lk_buf_append(struct lk_buf *b, const void *p, size_t n) __attribute__((warn_unused_result));

/* Appends a formatted string; same returns as lk_buf_append. */
int lk_buf_printf(struct lk_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));

/* Empties the buffer and keeps its memory (zeroing the used part when wipe is set). */
void lk_buf_reset(struct lk_buf *b);

/* Frees the memory (zeroed first when wipe is set); the buffer is empty again. NULL allowed. */
void lk_buf_free(struct lk_buf *b);

/* Hands over the content: *ret_data is owned by the caller (free with free(), or zero it
 * first when it was a wipe buffer); the buffer is empty again. Returns 0 or -ENOMEM when
 * nothing was ever appended and an empty string cannot be allocated. */
int lk_buf_take(struct lk_buf *b, char **ret_data, size_t *ret_len);

/* Zeroes a block from malloc (all of its usable size) and frees it; NULL allowed. For
 * allocators that must not hand secret bytes back to the heap (jansson's, libcurl's). */
void lk_free_wiped(void *p);

/* Writes v in decimal at out (at most LK_U64_DIGITS bytes, no NUL); returns the byte after
 * the last digit. For hot paths where snprintf's cost shows. */
#define LK_U64_DIGITS 20
char *lk_put_u64(char *out, uint64_t v);

#endif
