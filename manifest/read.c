/* read.c — YAML and JSON manifests to jansson values, over libyaml (manifest.h). */
#include "manifest/internal.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/json.h"

struct reader {
	yaml_parser_t parser;
	const char *name;
	size_t nodes;
	struct lk_error *err;
	json_t *key_lines;   /* the current document's root keys → lines */
	bool lenient;        /* aliases read as null, repeated keys renamed (scanning) */
};

enum kind_of_value { VALUE_ANY, VALUE_STRING };

/* libyaml frees without zeroing, and a Secret's values pass through its buffers: scalar
 * values are wiped before an event is freed, and the input buffers before the parser is.
 * (Copies made while the scanner grows a long scalar are out of reach.) */
static void
event_delete(yaml_event_t *ev)
{
	if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value != NULL)
		explicit_bzero(ev->data.scalar.value, ev->data.scalar.length);
	yaml_event_delete(ev);
}

static void
parser_wipe_delete(yaml_parser_t *p)
{
	if (p->buffer.start != NULL)
		explicit_bzero(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
	if (p->raw_buffer.start != NULL)
		explicit_bzero(p->raw_buffer.start,
			       (size_t)(p->raw_buffer.end - p->raw_buffer.start));
	for (yaml_token_t *t = p->tokens.head; t != NULL && t < p->tokens.tail; t++)
		if (t->type == YAML_SCALAR_TOKEN && t->data.scalar.value != NULL)
			explicit_bzero(t->data.scalar.value, t->data.scalar.length);
	yaml_parser_delete(p);
}

static int
reader_error(struct reader *rd, const yaml_mark_t *mark, int code, const char *what)
{
	return lk_error_set(rd->err, code, "%s:%zu:%zu: %s", rd->name, mark->line + 1,
			    mark->column + 1, what);
}

static int
next_event(struct reader *rd, yaml_event_t *ev)
{
	if (yaml_parser_parse(&rd->parser, ev))
		return 0;
	if (rd->parser.error == YAML_MEMORY_ERROR)
		return lk_error_set(rd->err, -ENOMEM, "%s: out of memory", rd->name);
	if (rd->parser.context != NULL)
		return lk_error_set(rd->err, -EINVAL, "%s:%zu:%zu: %s (%s at line %zu)", rd->name,
				    rd->parser.problem_mark.line + 1,
				    rd->parser.problem_mark.column + 1,
				    rd->parser.problem ? rd->parser.problem : "syntax error",
				    rd->parser.context, rd->parser.context_mark.line + 1);
	return lk_error_set(rd->err, -EINVAL, "%s:%zu:%zu: %s", rd->name,
			    rd->parser.problem_mark.line + 1, rd->parser.problem_mark.column + 1,
			    rd->parser.problem ? rd->parser.problem : "syntax error");
}


static json_t *
scalar_value(struct reader *rd, yaml_event_t *ev, enum kind_of_value kind, int *ret_r)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	json_t *v = NULL;

	*ret_r = 0;
	if (strlen(s) != len) {
		*ret_r = reader_error(rd, &ev->start_mark, -EINVAL, "NUL character in a scalar");
		return NULL;
	}
	if (kind == VALUE_STRING || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	    (tag != NULL && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0 ||
			     strcmp(tag, "tag:yaml.org,2002:binary") == 0)))
		v = NULL;
	else
		v = lk_manifest_resolve_plain(s, len);
	if (v == NULL && tag != NULL && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    kind != VALUE_STRING &&
	    (strcmp(tag, YAML_INT_TAG) == 0 || strcmp(tag, YAML_FLOAT_TAG) == 0 ||
	     strcmp(tag, YAML_BOOL_TAG) == 0 || strcmp(tag, YAML_NULL_TAG) == 0)) {
		*ret_r = reader_error(rd, &ev->start_mark, -EINVAL,
				      "scalar does not match its explicit tag");
		return NULL;
	}
	if (v == NULL)
		v = json_stringn(s, len);
	if (v == NULL)
		*ret_r = reader_error(rd, &ev->start_mark, -EINVAL,
				      "scalar is not valid UTF-8 or out of memory");
	return v;
}

static int parse_node(struct reader *rd, yaml_event_t *ev, unsigned depth, enum kind_of_value kind,
		      bool resource, json_t **ret);

static int
parse_sequence(struct reader *rd, unsigned depth, bool items_are_resources, json_t **ret)
{
	json_t *arr = json_array();
	yaml_event_t ev;
	int r;

	if (arr == NULL)
		return lk_error_set(rd->err, -ENOMEM, "out of memory");
	for (;;) {
		json_t *child = NULL;

		r = next_event(rd, &ev);
		if (r < 0)
			goto out;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			event_delete(&ev);
			break;
		}
		r = parse_node(rd, &ev, depth + 1, VALUE_ANY, items_are_resources, &child);
		event_delete(&ev);
		if (r < 0)
			goto out;
		if (json_array_append_new(arr, child) != 0) {
			r = lk_error_set(rd->err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	*ret = arr;
	arr = NULL;
	r = 0;
out:
	json_decref(arr);
	return r;
}

static int
parse_mapping(struct reader *rd, unsigned depth, enum kind_of_value kind, bool resource,
	      json_t **ret)
{
	json_t *obj = json_object();
	yaml_event_t ev;
	char *key = NULL;
	int r;

	if (obj == NULL)
		return lk_error_set(rd->err, -ENOMEM, "out of memory");
	for (;;) {
		json_t *child = NULL;
		enum kind_of_value child_kind = VALUE_ANY;
		size_t key_line;

		r = next_event(rd, &ev);
		if (r < 0)
			goto out;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			event_delete(&ev);
			break;
		}
		if (ev.type == YAML_ALIAS_EVENT) {
			r = reader_error(rd, &ev.start_mark, -EINVAL,
					 "aliases are not supported in manifests");
			event_delete(&ev);
			goto out;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			r = reader_error(rd, &ev.start_mark, -EINVAL,
					 "mapping keys must be scalars");
			event_delete(&ev);
			goto out;
		}
		if (++rd->nodes > LK_MANIFEST_NODES_MAX) {
			r = reader_error(rd, &ev.start_mark, -E2BIG, "too many nodes");
			event_delete(&ev);
			goto out;
		}
		if (strlen((const char *)ev.data.scalar.value) != ev.data.scalar.length) {
			r = reader_error(rd, &ev.start_mark, -EINVAL, "NUL character in a key");
			event_delete(&ev);
			goto out;
		}
		key = strdup((const char *)ev.data.scalar.value);
		key_line = ev.start_mark.line + 1;
		if (key == NULL) {
			event_delete(&ev);
			r = lk_error_set(rd->err, -ENOMEM, "out of memory");
			goto out;
		}
		if (json_object_get(obj, key) != NULL && rd->lenient) {
			/* Keep every value where a scanner sees it: "KEY (duplicate N)". N starts
			 * at the mapping's size + 1, so that many repeats stay linear. */
			char *renamed = NULL;
			size_t first = json_object_size(obj) + 1;

			for (size_t dup = first; renamed == NULL || json_object_get(obj, renamed);
			     dup++) {
				free(renamed);
				renamed = NULL;
				/* Keys made up to collide: give up rather than go quadratic. */
				if (dup - first >= 64 ||
				    asprintf(&renamed, "%s (duplicate %zu)", key, dup) < 0) {
					renamed = NULL;
					break;
				}
			}
			free(key);
			key = renamed;
			if (key == NULL) {
				r = reader_error(rd, &ev.start_mark, -EINVAL, "cannot rename a repeated key");
				event_delete(&ev);
				goto out;
			}
		}
		if (json_object_get(obj, key) != NULL) {
			char what[160];

			snprintf(what, sizeof(what), "duplicate key '%.100s'", key);
			r = reader_error(rd, &ev.start_mark, -EINVAL, what);
			event_delete(&ev);
			goto out;
		}
		event_delete(&ev);
		if (resource && (strcmp(key, "data") == 0 || strcmp(key, "stringData") == 0))
			child_kind = VALUE_STRING;
		if (depth == 0 && rd->key_lines != NULL)
			json_object_set_new(rd->key_lines, key, json_integer((json_int_t)key_line));
		r = next_event(rd, &ev);
		if (r < 0)
			goto out;
		/* Values under a resource's data/stringData, and below, are strings. */
		if (kind == VALUE_STRING)
			child_kind = VALUE_STRING;
		r = parse_node(rd, &ev, depth + 1, child_kind,
			       resource && strcmp(key, "items") == 0, &child);
		event_delete(&ev);
		if (r < 0)
			goto out;
		if (json_object_set_new(obj, key, child) != 0) {
			r = lk_error_set(rd->err, -ENOMEM, "%s: key is not valid UTF-8", rd->name);
			goto out;
		}
		free(key);
		key = NULL;
	}
	*ret = obj;
	obj = NULL;
	r = 0;
out:
	free(key);
	json_decref(obj);
	return r;
}

static int
parse_node(struct reader *rd, yaml_event_t *ev, unsigned depth, enum kind_of_value kind,
	   bool resource, json_t **ret)
{
	int r = 0;

	if (depth > LK_MANIFEST_DEPTH_MAX)
		return reader_error(rd, &ev->start_mark, -E2BIG, "nesting too deep");
	if (++rd->nodes > LK_MANIFEST_NODES_MAX)
		return reader_error(rd, &ev->start_mark, -E2BIG, "too many nodes");
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		*ret = scalar_value(rd, ev, kind, &r);
		return r;
	case YAML_SEQUENCE_START_EVENT:
		return parse_sequence(rd, depth, resource, ret);
	case YAML_MAPPING_START_EVENT:
		return parse_mapping(rd, depth, kind, resource, ret);
	case YAML_ALIAS_EVENT:
		if (rd->lenient) {
			/* Never expanded (no billion laughs); a scanner sees no value there. */
			*ret = json_null();
			return 0;
		}
		return reader_error(rd, &ev->start_mark, -EINVAL,
				    "aliases are not supported in manifests");
	default:
		return reader_error(rd, &ev->start_mark, -EINVAL, "unexpected YAML event");
	}
}

static bool
looks_like_json(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')
			continue;
		return text[i] == '{' || text[i] == '[';
	}
	return false;
}

static int
parse_json(const char *text, size_t len, const char *name, json_t **ret, struct lk_error *err)
{
	json_t *root = lk_json_parse(text, len, 0, name, err);

	if (root == NULL)
		return err != NULL && err->code != 0 ? err->code : -EINVAL;
	*ret = root;
	return 0;
}

static int
parse_yaml_all(const char *text, size_t len, const char *name, lk_manifest_doc_fn fn, void *arg,
	       bool single, bool lenient, struct lk_error *err)
{
	struct reader rd;
	yaml_event_t ev;
	unsigned docs = 0;
	int r;

	memset(&rd, 0, sizeof(rd));
	rd.name = name;
	rd.err = err;
	rd.lenient = lenient;
	if (!yaml_parser_initialize(&rd.parser))
		return lk_error_set(err, -ENOMEM, "%s: out of memory", name);
	yaml_parser_set_input_string(&rd.parser, (const unsigned char *)text, len);
	for (;;) {
		json_t *root = NULL;
		struct lk_manifest_doc doc;
		size_t doc_line;

		r = next_event(&rd, &ev);
		if (r < 0)
			goto out;
		if (ev.type == YAML_STREAM_END_EVENT) {
			event_delete(&ev);
			break;
		}
		if (ev.type == YAML_STREAM_START_EVENT) {
			event_delete(&ev);
			continue;
		}
		if (ev.type != YAML_DOCUMENT_START_EVENT) {
			r = reader_error(&rd, &ev.start_mark, -EINVAL, "expected a document");
			event_delete(&ev);
			goto out;
		}
		docs++;
		if (single && docs > 1) {
			r = lk_error_set(err, -EINVAL,
					 "%s:%zu:%zu: document %u: more than one YAML document; "
					 "give one manifest per file", name, ev.start_mark.line + 1,
					 ev.start_mark.column + 1, docs);
			event_delete(&ev);
			goto out;
		}
		event_delete(&ev);
		r = next_event(&rd, &ev);
		if (r < 0)
			goto out;
		doc_line = ev.start_mark.line + 1;
		rd.key_lines = json_object();
		if (rd.key_lines == NULL) {
			event_delete(&ev);
			r = lk_error_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		r = parse_node(&rd, &ev, 0, VALUE_ANY, true, &root);
		event_delete(&ev);
		if (r < 0) {
			json_decref(rd.key_lines);
			rd.key_lines = NULL;
			goto out;
		}
		r = next_event(&rd, &ev);
		if (r == 0) {
			if (ev.type != YAML_DOCUMENT_END_EVENT)
				r = reader_error(&rd, &ev.start_mark, -EINVAL, "expected document end");
			event_delete(&ev);
		}
		if (r == 0 && !json_is_null(root)) {
			doc.root = root;
			doc.index = docs;
			doc.line = (unsigned)doc_line;
			doc.key_lines = rd.key_lines;
			r = fn(&doc, arg);
		} else if (r == 0 && single) {
			r = lk_error_set(err, -EINVAL, "%s:%zu: document %u is empty", name, doc_line,
					 docs);
		}
		json_decref(root);
		json_decref(rd.key_lines);
		rd.key_lines = NULL;
		if (r != 0)
			goto out;
	}
	if (docs == 0 && single)
		r = lk_error_set(err, -EINVAL, "%s: no document", name);
out:
	parser_wipe_delete(&rd.parser);
	return r;
}

static int
parse_all(const char *text, size_t len, const char *name, lk_manifest_doc_fn fn, void *arg,
	  bool lenient, struct lk_error *err)
{
	if (len > LK_MANIFEST_MAX)
		return lk_error_set(err, -E2BIG, "%s: larger than %u bytes", name, LK_MANIFEST_MAX);
	if (looks_like_json(text, len)) {
		struct lk_manifest_doc doc;
		json_t *root = NULL;
		int r;

		r = parse_json(text, len, name, &root, err);
		/* JSON is YAML flow syntax: the lenient YAML reader takes repeated keys. */
		if (r < 0 && lenient)
			return parse_yaml_all(text, len, name, fn, arg, false, true, err);
		if (r < 0)
			return r;
		memset(&doc, 0, sizeof(doc));
		doc.root = root;
		doc.index = 1;
		doc.line = 1;
		r = fn(&doc, arg);
		json_decref(root);
		return r;
	}
	return parse_yaml_all(text, len, name, fn, arg, false, lenient, err);
}

int
lk_manifest_parse_all(const char *text, size_t len, const char *name, lk_manifest_doc_fn fn,
		      void *arg, struct lk_error *err)
{
	return parse_all(text, len, name, fn, arg, false, err);
}

int
lk_manifest_parse_all_lenient(const char *text, size_t len, const char *name,
			      lk_manifest_doc_fn fn, void *arg, struct lk_error *err)
{
	return parse_all(text, len, name, fn, arg, true, err);
}

struct take_one {
	json_t *root;
};

static int
take_one(const struct lk_manifest_doc *doc, void *arg)
{
	struct take_one *t = arg;

	t->root = json_incref(doc->root);
	return 0;
}

int
lk_manifest_parse(const char *text, size_t len, const char *name, json_t **ret,
		  enum lk_manifest_format *ret_format, struct lk_error *err)
{
	struct take_one t = { NULL };
	enum lk_manifest_format format;
	int r;

	if (len > LK_MANIFEST_MAX)
		return lk_error_set(err, -E2BIG, "%s: larger than %u bytes", name, LK_MANIFEST_MAX);
	if (looks_like_json(text, len)) {
		format = LK_MANIFEST_JSON;
		r = parse_json(text, len, name, &t.root, err);
		if (r < 0) {
			/* A YAML flow mapping also starts with '{'; the JSON message stays when
			 * YAML cannot read it either. */
			struct lk_error yerr;

			if (parse_yaml_all(text, len, name, take_one, &t, true, false, &yerr) == 0) {
				format = LK_MANIFEST_YAML;
				r = 0;
			} else {
				json_decref(t.root);
				t.root = NULL;
			}
		}
	} else {
		format = LK_MANIFEST_YAML;
		r = parse_yaml_all(text, len, name, take_one, &t, true, false, err);
	}
	if (r < 0)
		goto out;
	if (!json_is_object(t.root)) {
		r = lk_error_set(err, -EINVAL, "%s:1:1: the document is not a mapping", name);
		goto out;
	}
	*ret = t.root;
	t.root = NULL;
	if (ret_format != NULL)
		*ret_format = format;
	r = 0;
out:
	json_decref(t.root);
	return r;
}

