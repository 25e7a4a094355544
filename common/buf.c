#include "common/buf.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Volatile function pointer: the compiler cannot drop the zeroing of memory about to be freed. */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void
lk_buf_init(struct lk_buf *b, size_t max, bool wipe)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->wipe = wipe;
}

static int
grow(struct lk_buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 256;
	char *nd;

	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	if (b->wipe) {
		/* realloc could leave a copy behind: move by hand and wipe the old block. */
		nd = malloc(cap);
		if (nd == NULL)
			return -ENOMEM;
		if (b->data != NULL) {
			memcpy(nd, b->data, b->len + 1);
			wipe_memset(b->data, 0, b->cap);
			free(b->data);
		}
	} else {
		nd = realloc(b->data, cap);
		if (nd == NULL)
			return -ENOMEM;
	}
	b->data = nd;
	b->cap = cap;
	return 0;
}

int
lk_buf_append(struct lk_buf *b, const void *p, size_t n)
{
	int r;

	if (n > b->max || b->len > b->max - n)
		return -E2BIG;
	if (b->len + n + 1 > b->cap) {
		r = grow(b, b->len + n + 1);
		if (r < 0)
			return r;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
lk_buf_printf(struct lk_buf *b, const char *fmt, ...)
{
	char small[256];
	char *big = NULL;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return lk_buf_append(b, small, (size_t)n);
	big = malloc((size_t)n + 1);
	if (big == NULL)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = lk_buf_append(b, big, (size_t)n);
	if (b->wipe)
		wipe_memset(big, 0, (size_t)n);
	free(big);
	return r;
}

void
lk_buf_reset(struct lk_buf *b)
{
	if (b->data == NULL)
		return;
	if (b->wipe)
		wipe_memset(b->data, 0, b->len);
	b->len = 0;
	b->data[0] = '\0';
}

void
lk_buf_free(struct lk_buf *b)
{
	if (b == NULL || b->data == NULL)
		return;
	if (b->wipe)
		wipe_memset(b->data, 0, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int
lk_buf_take(struct lk_buf *b, char **ret_data, size_t *ret_len)
{
	if (b->data == NULL) {
		char *empty = calloc(1, 1);
		if (empty == NULL)
			return -ENOMEM;
		*ret_data = empty;
		if (ret_len != NULL)
			*ret_len = 0;
		return 0;
	}
	*ret_data = b->data;
	if (ret_len != NULL)
		*ret_len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return 0;
}

void
lk_free_wiped(void *p)
{
	if (p == NULL)
		return;
	wipe_memset(p, 0, malloc_usable_size(p));
	free(p);
}

char *
lk_put_u64(char *out, uint64_t v)
{
	char digits[LK_U64_DIGITS];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*out++ = digits[--n];
	return out;
}
