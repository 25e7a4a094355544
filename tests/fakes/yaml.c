/* yaml.c — one YAML document into JSON values (libyaml), as sigs.k8s.io/yaml reads request
 * bodies: plain scalars resolve as YAML 1.1 (null, booleans including yes/no/on/off,
 * integers, floats), quoted and block scalars are strings, mapping keys are strings.
 * Anchors and aliases are refused (they make small documents large). */
#include "fake.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Deepest nesting of mappings and sequences. */
#define YAML_DEPTH_MAX 100

struct parse {
	yaml_parser_t parser;
	char *err;
	size_t errlen;
};

static bool
next(struct parse *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(&p->parser, ev))
		return true;
	snprintf(p->err, p->errlen, "error converting YAML to JSON: yaml: line %zu: %s",
		 p->parser.problem_mark.line + 1,
		 p->parser.problem != NULL ? p->parser.problem : "syntax error");
	return false;
}

static bool
any_of(const char *s, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(s, *set) == 0)
			return true;
	}
	return false;
}

/* A plain scalar resolved to its YAML 1.1 type. */
static json_t *
resolve_plain(const char *s, size_t len)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
					     "on", "On", "ON", NULL };
	static const char *const falses[] = { "n", "N", "no", "No", "NO", "false", "False", "FALSE",
					      "off", "Off", "OFF", NULL };
	char *end;

	if (any_of(s, nulls))
		return json_null();
	if (any_of(s, trues))
		return json_true();
	if (any_of(s, falses))
		return json_false();
	if (len > 0 && strspn(s, "+-0123456789_xXoabcdefABCDEF.eE") == len) {
		char clean[64];
		size_t o = 0;
		long long v;
		double d;

		if (len >= sizeof(clean))
			return json_stringn(s, len);
		for (size_t i = 0; i < len; i++) {
			if (s[i] != '_')
				clean[o++] = s[i];
		}
		clean[o] = '\0';
		errno = 0;
		if (strncmp(clean, "0o", 2) == 0)
			v = strtoll(clean + 2, &end, 8);
		else
			v = strtoll(clean, &end, 0);   /* 0x.., leading 0 is octal in YAML 1.1 */
		if (errno == 0 && *end == '\0' && end != clean)
			return json_integer(v);
		errno = 0;
		d = strtod(clean, &end);
		if (errno == 0 && *end == '\0' && end != clean && strpbrk(clean, "xX") == NULL &&
		    isfinite(d))
			return json_real(d);
	}
	if (strcasecmp(s, ".inf") == 0 || strcasecmp(s, "+.inf") == 0 || strcasecmp(s, "-.inf") == 0 ||
	    strcasecmp(s, ".nan") == 0)
		return json_stringn(s, len);    /* JSON has no such numbers */
	return json_stringn(s, len);
}

static json_t *
scalar(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;

	if (tag != NULL) {
		if (strcmp(tag, YAML_STR_TAG) == 0)
			return json_stringn(s, len);
		if (strcmp(tag, YAML_NULL_TAG) == 0)
			return json_null();
		if (strcmp(tag, YAML_BOOL_TAG) == 0 || strcmp(tag, YAML_INT_TAG) == 0 ||
		    strcmp(tag, YAML_FLOAT_TAG) == 0)
			return resolve_plain(s, len);
	}
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, len);
	return resolve_plain(s, len);
}

static json_t *node(struct parse *p, yaml_event_t *ev, int depth);

static json_t *
mapping(struct parse *p, int depth)
{
	json_t *obj = json_object();
	yaml_event_t kev, vev;

	if (obj == NULL)
		return NULL;
	for (;;) {
		json_t *key, *val;
		char *kbuf;

		if (!next(p, &kev))
			goto fail;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return obj;
		}
		key = node(p, &kev, depth + 1);
		yaml_event_delete(&kev);
		if (key == NULL)
			goto fail;
		if (json_is_string(key)) {
			kbuf = strdup(json_string_value(key));
		} else if (json_is_object(key) || json_is_array(key)) {
			json_decref(key);
			snprintf(p->err, p->errlen, "error converting YAML to JSON: mapping keys must be scalars");
			goto fail;
		} else {
			kbuf = fk_json_dump(key);   /* 1: x -> "1" */
		}
		json_decref(key);
		if (kbuf == NULL)
			goto fail;
		if (!next(p, &vev)) {
			free(kbuf);
			goto fail;
		}
		val = node(p, &vev, depth + 1);
		yaml_event_delete(&vev);
		if (val == NULL) {
			free(kbuf);
			goto fail;
		}
		if (json_object_get(obj, kbuf) != NULL) {
			snprintf(p->err, p->errlen, "error converting YAML to JSON: yaml: mapping key \"%s\" already defined", kbuf);
			free(kbuf);
			json_decref(val);
			goto fail;
		}
		json_object_set_new(obj, kbuf, val);
		free(kbuf);
	}
fail:
	json_decref(obj);
	return NULL;
}

static json_t *
sequence(struct parse *p, int depth)
{
	json_t *arr = json_array();
	yaml_event_t ev;

	if (arr == NULL)
		return NULL;
	for (;;) {
		json_t *v;

		if (!next(p, &ev))
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return arr;
		}
		v = node(p, &ev, depth + 1);
		yaml_event_delete(&ev);
		if (v == NULL)
			goto fail;
		json_array_append_new(arr, v);
	}
fail:
	json_decref(arr);
	return NULL;
}

static json_t *
node(struct parse *p, yaml_event_t *ev, int depth)
{
	if (depth > YAML_DEPTH_MAX) {
		snprintf(p->err, p->errlen, "error converting YAML to JSON: nesting deeper than %d",
			 YAML_DEPTH_MAX);
		return NULL;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor != NULL)
			break;
		return scalar(ev);
	case YAML_MAPPING_START_EVENT:
		if (ev->data.mapping_start.anchor != NULL)
			break;
		return mapping(p, depth);
	case YAML_SEQUENCE_START_EVENT:
		if (ev->data.sequence_start.anchor != NULL)
			break;
		return sequence(p, depth);
	case YAML_ALIAS_EVENT:
		break;
	default:
		snprintf(p->err, p->errlen, "error converting YAML to JSON: unexpected event");
		return NULL;
	}
	snprintf(p->err, p->errlen, "error converting YAML to JSON: anchors and aliases are not accepted");
	return NULL;
}

int
fk_yaml_parse(const char *text, size_t len, json_t **ret, char *err, size_t errlen)
{
	struct parse p = { .err = err, .errlen = errlen };
	yaml_event_t ev;
	json_t *doc = NULL;
	int r = -EINVAL;

	snprintf(err, errlen, "error converting YAML to JSON: empty document");
	if (!yaml_parser_initialize(&p.parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
	for (;;) {
		if (!next(&p, &ev))
			goto out;
		if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (doc != NULL) {
			yaml_event_delete(&ev);
			goto out;
		}
		doc = node(&p, &ev, 0);
		yaml_event_delete(&ev);
		if (doc == NULL)
			goto out;
	}
	if (doc == NULL)
		goto out;
	*ret = doc;
	doc = NULL;
	r = 0;
out:
	json_decref(doc);
	yaml_parser_delete(&p.parser);
	return r;
}
