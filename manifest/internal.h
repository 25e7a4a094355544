/* internal.h — what the reader and the writer of manifest/ share (not for other modules). */
#ifndef LK_MANIFEST_INTERNAL_H
#define LK_MANIFEST_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "manifest/manifest.h"

/* The JSON value a YAML 1.1 plain scalar of len bytes resolves to (null, a boolean, an
 * integer or a float: new reference), or NULL when it is a string. */
json_t *lk_manifest_resolve_plain(const char *s, size_t len);

/* Would a plain scalar with this text be read as something else than this string? The
 * writer quotes such strings so that reading its output gives the same value back. */
bool lk_manifest_plain_is_ambiguous(const char *s, size_t len);

#endif
