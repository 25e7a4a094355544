/* json.h — jansson, the latchkey way: blocks wiped when freed, errors that never quote
 * the input.
 *
 * jansson's own error text quotes the input near the error ("invalid token near
 * 'hunter2'"), so a misplaced token or value would end up in a message or a log line.
 * Every parse error in latchkey goes through lk_json_error_text instead.
 */
#ifndef LK_JSON_H
#define LK_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* The longest text lk_json_error_text writes, NUL included. */
#define LK_JSON_ERROR_TEXT_MAX 64

/* Makes jansson zero every block before freeing it, so that secret values held in json_t
 * (KV data, dynamic credentials, Secret data) do not stay in freed heap memory. jansson's
 * allocator is global to the process: call this once, first thing in main(), before
 * threads start (json_set_alloc_funcs is not thread-safe). Blocks remain ordinary malloc
 * blocks, so json_t created earlier and json_dumps output released with free() stay valid.
 * Safe to call more than once. */
void lk_json_wipe_on_free(void);

/* What went wrong, in fixed words chosen from the error code ("invalid syntax",
 * "truncated", "duplicate key", ...): never a piece of the input. Returns a static
 * string. */
const char *lk_json_error_text(const json_error_t *je);

/* Parses len bytes of text (flags as json_loadb; duplicate keys are always refused).
 * Returns a new reference (owned: json_decref), or NULL with err set to
 * "NAME:LINE:COLUMN: <lk_json_error_text>" (-EINVAL, or -ENOMEM). */
json_t *lk_json_parse(const char *text, size_t len, size_t flags, const char *name,
		      struct lk_error *err);

/* True when v is a JSON string that holds no NUL byte: one whose C string is the whole of
 * it. (Parsed with JSON_ALLOW_NUL, "\u0000" may stand anywhere in a string.) */
bool lk_json_is_cstring(const json_t *v);

/* A JSON string of text that may not be valid UTF-8 (a message cut at a fixed length in
 * the middle of a character, a file name of other bytes): each byte that does not begin
 * or continue a whole UTF-8 character becomes '?'. Returns a new reference, NULL only
 * when out of memory. */
json_t *lk_json_string_lossy(const char *text);

#endif
