#include "crypto/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lk_secret {
	size_t len;
	unsigned char bytes[]; /* len bytes then a NUL */
};

int
lk_secret_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

static struct lk_secret *
secret_alloc(const void *p, size_t len)
{
	struct lk_secret *s;
	/* sodium_malloc places the block against the guard page at its end: keep the size a
	 * multiple of 16 so that the struct is aligned. */
	size_t n = (sizeof(*s) + len + 1 + 15) & ~(size_t)15;

	s = sodium_malloc(n);
	if (s == NULL)
		return NULL;
	s->len = len;
	if (p != NULL && len > 0)
		memcpy(s->bytes, p, len);
	else
		memset(s->bytes, 0, len);
	s->bytes[len] = '\0';
	return s;
}

struct lk_secret *
lk_secret_new(const void *p, size_t len)
{
	if (len > LK_SECRET_MAX)
		return NULL;
	return secret_alloc(p, len);
}

struct lk_secret *
lk_secret_from_str(const char *s)
{
	return lk_secret_new(s, strlen(s));
}

int
lk_secret_read_fd(int fd, size_t max, bool trim_newline, struct lk_secret **ret)
{
	struct lk_secret *s = NULL;
	struct stat st;
	size_t got = 0;
	int r;

	if (max == 0 || max > LK_SECRET_MAX)
		max = LK_SECRET_MAX;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) &&
	    !S_ISSOCK(st.st_mode))
		return -EINVAL;
	/* Read into a buffer of max+1 so that a file over the limit is noticed. */
	s = secret_alloc(NULL, max + 1);
	if (s == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, s->bytes + got, s->len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > max) {
			r = -E2BIG;
			goto out;
		}
	}
	if (trim_newline && got > 0 && s->bytes[got - 1] == '\n')
		got--;
	if (trim_newline && got > 0 && s->bytes[got - 1] == '\r')
		got--;
	/* Shrink the visible length; the tail stays zeroed memory of the same allocation. */
	sodium_memzero(s->bytes + got, s->len - got);
	s->len = got;
	*ret = s;
	s = NULL;
	r = 0;
out:
	lk_secret_free(s);
	return r;
}

int
lk_secret_read_file(const char *path, size_t max, bool trim_newline, struct lk_secret **ret)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = lk_secret_read_fd(fd, max, trim_newline, ret);
	close(fd);
	return r;
}

struct lk_secret *
lk_secret_free(struct lk_secret *s)
{
	/* sodium_free zeroes the whole allocation before unmapping it. */
	if (s != NULL)
		sodium_free(s);
	return NULL;
}

const unsigned char *
lk_secret_bytes(const struct lk_secret *s)
{
	return s->bytes;
}

const char *
lk_secret_cstr(const struct lk_secret *s)
{
	return (const char *)s->bytes;
}

size_t
lk_secret_len(const struct lk_secret *s)
{
	return s->len;
}

bool
lk_secret_equal(const struct lk_secret *a, const struct lk_secret *b)
{
	if (a->len != b->len)
		return false;
	return sodium_memcmp(a->bytes, b->bytes, a->len) == 0;
}

struct lk_secret *
lk_secret_dup(const struct lk_secret *s)
{
	return lk_secret_new(s->bytes, s->len);
}
