/* config.h — reading JSON configuration files with errors that say where.
 *
 * A `struct lk_cfg` walks a parsed document and keeps the key path of where it is, so an
 * error reads
 *
 *   broker.json: secrets[2].allow.uids: expected an array of integers, got a string
 *
 * Unknown keys are errors (a misspelt key must not be silently ignored). Messages never
 * quote values: a config may hold a token.
 *
 * Typical use:
 *
 *   struct lk_cfg c;
 *   lk_cfg_init(&c, file, err);
 *   if (lk_cfg_keys(&c, root, (const char *[]){ "vault", "listen", "secrets", NULL }) < 0) ...
 *   size_t mark = lk_cfg_push_key(&c, "listen");
 *   ...
 *   lk_cfg_pop(&c, mark);
 */
#ifndef LK_CONFIG_H
#define LK_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Configuration files larger than this are refused. */
#define LK_CFG_FILE_MAX (4u << 20)
/* Longest key path kept for messages. */
#define LK_CFG_PATH_MAX 256

struct lk_cfg {
	const char *file;          /* borrowed: named in every message */
	char path[LK_CFG_PATH_MAX]; /* current key path, "" at the root */
	size_t path_len;
	struct lk_error *err;      /* borrowed; may be NULL */
};

/* Reads and parses a JSON file (at most LK_CFG_FILE_MAX bytes, duplicate keys refused).
 * Returns a new reference (owned: json_decref) or NULL with err naming the file and the
 * line and column of a syntax error. */
json_t *lk_cfg_load_file(const char *file, struct lk_error *err);

/* Parses JSON text already in memory the same way; `file` only names it in messages. */
json_t *lk_cfg_load_text(const char *file, const char *text, size_t len, struct lk_error *err);

void lk_cfg_init(struct lk_cfg *c, const char *file, struct lk_error *err);

/* Path handling: push returns a mark to pop back to. */
size_t lk_cfg_push_key(struct lk_cfg *c, const char *key);
size_t lk_cfg_push_index(struct lk_cfg *c, size_t index);
void lk_cfg_pop(struct lk_cfg *c, size_t mark);

/* Sets err to "FILE: PATH: <formatted>" (or "FILE: <formatted>" at the root); returns -EINVAL. */
int lk_cfg_fail(struct lk_cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks that obj is an object whose keys are all in the NULL-terminated list `known`. */
int lk_cfg_keys(struct lk_cfg *c, const json_t *obj, const char *const known[]);

/* Getters: the member `key` of object obj. When absent, required ones fail ("missing
 * required key") and optional ones return 0 leaving *ret untouched (so set the default
 * first). A value of the wrong type fails naming the expected type. */
int lk_cfg_string(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
		  const char **ret);                   /* borrowed from obj; never empty */
int lk_cfg_int(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
	       int64_t min, int64_t max, int64_t *ret);
int lk_cfg_bool(struct lk_cfg *c, const json_t *obj, const char *key, bool *ret);
/* A duration: a string such as "5m" or "90s", or an integer number of seconds. */
int lk_cfg_duration(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
		    int64_t *ret_ms);
/* A file mode as an octal string, "0660". */
int lk_cfg_mode(struct lk_cfg *c, const json_t *obj, const char *key, mode_t *ret);
/* Objects and arrays: *ret is borrowed from obj; absent optional ones leave *ret untouched. */
int lk_cfg_object(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
		  json_t **ret);
int lk_cfg_array(struct lk_cfg *c, const json_t *obj, const char *key, bool required,
		 json_t **ret);

#endif
