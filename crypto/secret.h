/* secret.h — the secret type: bytes in guarded, locked, never-dumped memory.
 *
 * A `struct lk_secret` owns `len` bytes in sodium_malloc memory (guard pages, canary,
 * mlock, MADV_DONTDUMP) followed by a NUL, so text secrets can be handed to libraries
 * that want a C string. Freeing zeroes the bytes (sodium_free).
 *
 * There is deliberately no function that returns the bytes as a plain `char *` for
 * printing: lk_secret_bytes() is for passing to crypto and HTTP calls only, and the type
 * itself cannot be given to the logger (common/log.h).
 *
 * lk_secret_init() must have been called once (it calls sodium_init()).
 */
#ifndef LK_SECRET_H
#define LK_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* The largest single secret: a KV secret or a key file. */
#define LK_SECRET_MAX (1u << 20)

struct lk_secret;

/* Calls sodium_init(); returns 0 or -EIO. Safe to call more than once. */
int lk_secret_init(void) __attribute__((warn_unused_result));

/* A new secret holding a copy of len bytes of p (p may be NULL: zero-filled).
 * owned: free with lk_secret_free. NULL when len > LK_SECRET_MAX or out of memory. */
struct lk_secret *lk_secret_new(const void *p, size_t len);

/* Same, from a NUL-terminated string. */
struct lk_secret *lk_secret_from_str(const char *s);

/* Reads a whole file (at most max bytes, or LK_SECRET_MAX when max is 0) into a secret,
 * trimming one trailing newline when trim_newline is set. Returns 0 or a negative errno
 * (-E2BIG when larger than max). */
int lk_secret_read_file(const char *path, size_t max, bool trim_newline,
			struct lk_secret **ret) __attribute__((warn_unused_result));

/* Same from an open descriptor (a file, pipe, terminal or socket: standard input as a
 * child process gets it); fd stays open. */
int lk_secret_read_fd(int fd, size_t max, bool trim_newline, struct lk_secret **ret)
	__attribute__((warn_unused_result));

/* Zeroes and frees; NULL allowed. Returns NULL so `s = lk_secret_free(s);` clears too. */
struct lk_secret *lk_secret_free(struct lk_secret *s);

/* The bytes (NUL-terminated after len) and length. Borrowed: valid until freed. */
const unsigned char *lk_secret_bytes(const struct lk_secret *s);
const char *lk_secret_cstr(const struct lk_secret *s);
size_t lk_secret_len(const struct lk_secret *s);

/* Constant-time equality of content (lengths compared first: lengths are not secret). */
bool lk_secret_equal(const struct lk_secret *a, const struct lk_secret *b);

/* A copy; NULL on no memory. */
struct lk_secret *lk_secret_dup(const struct lk_secret *s);

#endif
