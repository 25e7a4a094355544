/* write.c — jansson values to YAML (libyaml's emitter) or indented JSON (manifest.h). */
#include "manifest/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/buf.h"

/* ---- writing ------------------------------------------------------------------ */

/* The largest serialized manifest: room for base64 and quoting of LK_MANIFEST_MAX input. */
#define WRITE_MAX ((size_t)LK_MANIFEST_MAX * 4)

/* libyaml's output callback: appends to a wipe buffer (the text may be an unsealed
 * Secret or a private key). Returns 0 (stop) when the buffer is full. */
static int
write_handler(void *arg, unsigned char *buffer, size_t size)
{
	return lk_buf_append(arg, buffer, size) == 0;
}

static int
emit_scalar(yaml_emitter_t *em, const char *s, size_t len, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

static int
emit_string(yaml_emitter_t *em, const char *s, size_t len)
{
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;

	if (len > INT_MAX)
		return -E2BIG;
	if (memchr(s, '\n', len) != NULL)
		style = YAML_LITERAL_SCALAR_STYLE;
	else if (lk_manifest_plain_is_ambiguous(s, len))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return emit_scalar(em, s, len, style);
}

static int
emit_value(yaml_emitter_t *em, const json_t *v, unsigned depth)
{
	yaml_event_t ev;
	char num[64];
	int r;

	if (depth > LK_MANIFEST_DEPTH_MAX)
		return -E2BIG;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *child;

		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -EIO;
		json_object_foreach((json_t *)v, key, child) {
			r = emit_string(em, key, strlen(key));
			if (r < 0)
				return r;
			r = emit_value(em, child, depth + 1);
			if (r < 0)
				return r;
		}
		if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -EIO;
		return 0;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *child;

		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -EIO;
		json_array_foreach((json_t *)v, i, child) {
			r = emit_value(em, child, depth + 1);
			if (r < 0)
				return r;
		}
		if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -EIO;
		return 0;
	}
	case JSON_STRING:
		return emit_string(em, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		if (strpbrk(num, ".eEn") == NULL)
			strcat(num, ".0");
		return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
	default:
		return emit_scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
}

static int
dump_yaml(const json_t *root, struct lk_buf *o)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int r = -EIO;

	if (!yaml_emitter_initialize(&em))
		return -ENOMEM;
	yaml_emitter_set_output(&em, write_handler, o);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_indent(&em, 2);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	r = emit_value(&em, root, 0);
	if (r < 0)
		goto out;
	r = -EIO;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev))
		goto out;
	r = 0;
out:
	/* The output buffer held the text (an unsealed Secret's values, a private key). */
	if (em.buffer.start != NULL)
		explicit_bzero(em.buffer.start, (size_t)(em.buffer.end - em.buffer.start));
	if (em.raw_buffer.start != NULL)
		explicit_bzero(em.raw_buffer.start, (size_t)(em.raw_buffer.end - em.raw_buffer.start));
	yaml_emitter_delete(&em);
	return r;
}

int
lk_manifest_dump(const json_t *root, enum lk_manifest_format format, char **ret,
		 size_t *ret_len, struct lk_error *err)
{
	struct lk_buf o;
	int r;

	if (!json_is_object(root))
		return lk_error_set(err, -EINVAL, "manifest root is not an object");
	lk_buf_init(&o, WRITE_MAX, true);
	if (format == LK_MANIFEST_JSON) {
		char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (s == NULL)
			return lk_error_set(err, -ENOMEM, "cannot serialize the manifest as JSON");
		r = lk_buf_append(&o, s, strlen(s));
		if (r == 0)
			r = lk_buf_append(&o, "\n", 1);
		/* The text may hold secret values (an unsealed Secret); a plain memset before
		 * free() may be optimized away. */
		explicit_bzero(s, strlen(s));
		free(s);
		if (r < 0) {
			lk_buf_free(&o);
			return lk_error_set(err, r, "cannot serialize the manifest as JSON");
		}
	} else {
		r = dump_yaml(root, &o);
		if (r < 0) {
			lk_buf_free(&o);
			return lk_error_set(err, r, "cannot serialize the manifest as YAML");
		}
		if (o.len == 0) {
			lk_buf_free(&o);
			return lk_error_set(err, -EIO, "empty YAML output");
		}
	}
	return lk_buf_take(&o, ret, ret_len);
}
