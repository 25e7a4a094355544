/* schema.c — custom objects against their CRD's openAPIV3Schema: defaults, types, required
 * fields, enums, string lengths, number bounds, nullable, int-or-string,
 * preserve-unknown-fields and embedded resources. Unknown fields are pruned and reported,
 * for the caller to apply fieldValidation (Strict: 400, Warn: a Warning header, Ignore:
 * silence). Patterns, formats and CEL rules (x-kubernetes-validations) are not checked. */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

/* Longest field path reported. */
#define SCHEMA_PATH_MAX 1024
/* Deepest nesting validated. */
#define SCHEMA_DEPTH_MAX 64

static const char *
type_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

/* The value as it appears in "Invalid value: ..." */
static void
shown(const json_t *v, char *out, size_t len)
{
	char *t;

	if (json_is_string(v)) {
		snprintf(out, len, "\"%s\"", json_string_value(v));
		return;
	}
	if (json_is_object(v) || json_is_array(v)) {
		snprintf(out, len, "\"%s\"", type_of(v));
		return;
	}
	t = fk_json_dump(v);
	snprintf(out, len, "%s", t != NULL ? t : "null");
	free(t);
}

static bool
bool_ext(const json_t *node, const char *key)
{
	return json_is_true(json_object_get(node, key));
}

static void
walk(const json_t *node, json_t *v, const char *path, int depth, struct fk_errors *e,
     json_t *unknown, bool root)
{
	const char *type = fk_jstr(node, "type");
	char sub[SCHEMA_PATH_MAX], val[256];
	json_t *en;

	if (node == NULL || depth > SCHEMA_DEPTH_MAX)
		return;
	if (json_is_null(v)) {
		if (!bool_ext(node, "nullable") && type != NULL)
			fk_error_add(e, "FieldValueTypeInvalid", path, "\"null\": %s in body must be of type %s: \"null\"",
				     path, type);
		return;
	}
	if (bool_ext(node, "x-kubernetes-int-or-string")) {
		if (!json_is_integer(v) && !json_is_string(v)) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueTypeInvalid", path, "%s: %s in body must be of type int-or-string: \"%s\"",
				     val, path, type_of(v));
		}
		return;
	}
	if (type != NULL) {
		const char *have = type_of(v);
		bool ok = strcmp(type, have) == 0 ||
			  (strcmp(type, "number") == 0 && strcmp(have, "integer") == 0) ||
			  (strcmp(type, "integer") == 0 && json_is_real(v) &&
			   json_real_value(v) == (double)(long long)json_real_value(v));

		if (!ok) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueTypeInvalid", path, "%s: %s in body must be of type %s: \"%s\"",
				     val, path, type, have);
			return;
		}
	}
	if ((en = json_object_get(node, "enum")) != NULL && json_is_array(en)) {
		size_t i;
		json_t *x;
		bool found = false;
		char *list = NULL;
		size_t len = 0, cap = 0;

		json_array_foreach(en, i, x) {
			char one[256];

			if (fk_json_equal(x, v))
				found = true;
			shown(x, one, sizeof(one));
			fk_appendf(&list, &len, &cap, "%s%s", i ? ", " : "", one);
		}
		if (!found) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueNotSupported", path, "%s: supported values: %s", val,
				     list != NULL ? list : "");
		}
		free(list);
	}
	if (json_is_string(v)) {
		json_t *mx = json_object_get(node, "maxLength"), *mn = json_object_get(node, "minLength");

		if (json_is_integer(mx) && (json_int_t)json_string_length(v) > json_integer_value(mx))
			fk_error_add(e, "FieldValueTooLong", path, "may not be more than %lld bytes",
				     (long long)json_integer_value(mx));
		if (json_is_integer(mn) && (json_int_t)json_string_length(v) < json_integer_value(mn)) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueInvalid", path, "%s: %s in body should be at least %lld chars long",
				     val, path, (long long)json_integer_value(mn));
		}
	}
	if (json_is_number(v)) {
		json_t *mx = json_object_get(node, "maximum"), *mn = json_object_get(node, "minimum");
		double d = json_number_value(v);

		if (json_is_number(mx) && d > json_number_value(mx)) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueInvalid", path, "%s: %s in body should be less than or equal to %g",
				     val, path, json_number_value(mx));
		}
		if (json_is_number(mn) && d < json_number_value(mn)) {
			shown(v, val, sizeof(val));
			fk_error_add(e, "FieldValueInvalid", path, "%s: %s in body should be greater than or equal to %g",
				     val, path, json_number_value(mn));
		}
	}
	if (json_is_array(v)) {
		const json_t *items = fk_schema_items(node);
		json_t *mx = json_object_get(node, "maxItems");
		size_t i;
		json_t *x;

		if (json_is_integer(mx) && (json_int_t)json_array_size(v) > json_integer_value(mx))
			fk_error_add(e, "FieldValueTooMany", path, "%zu: must have at most %lld items",
				     json_array_size(v), (long long)json_integer_value(mx));
		json_array_foreach(v, i, x) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			walk(items, x, sub, depth + 1, e, unknown, false);
		}
		return;
	}
	if (!json_is_object(v))
		return;
	{
		json_t *props = json_object_get(node, "properties"), *req = json_object_get(node, "required");
		json_t *addl = json_object_get(node, "additionalProperties");
		bool preserve = bool_ext(node, "x-kubernetes-preserve-unknown-fields") ||
				json_is_true(addl) || bool_ext(node, "x-kubernetes-embedded-resource");
		const char *k;
		json_t *x;
		void *tmp;
		size_t i;

		/* defaults first, as the apiserver applies them before it validates */
		json_object_foreach(props, k, x) {
			json_t *dflt = json_object_get(x, "default");

			if (dflt != NULL && json_object_get(v, k) == NULL)
				json_object_set_new(v, k, json_deep_copy(dflt));
		}
		json_array_foreach(req, i, x) {
			const char *rk = json_string_value(x);

			if (rk != NULL && json_object_get(v, rk) == NULL) {
				snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", rk);
				fk_error_add(e, "FieldValueRequired", sub, NULL);
			}
		}
		json_object_foreach_safe(v, tmp, k, x) {
			const json_t *child = json_object_get(props, k);

			snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", k);
			if (root && (strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0 ||
				     strcmp(k, "metadata") == 0))
				continue;
			if (child == NULL && json_is_object(addl))
				child = addl;
			if (child != NULL) {
				walk(child, x, sub, depth + 1, e, unknown, false);
				continue;
			}
			if (preserve)
				continue;
			/* pruned, as kube-apiserver drops fields its schema does not declare */
			if (unknown != NULL)
				json_array_append_new(unknown, json_string(sub));
			json_object_del(v, k);
		}
	}
}

void
fk_schema_check(const json_t *schema, json_t *obj, struct fk_errors *e, json_t *unknown)
{
	walk(schema, obj, "", 0, e, unknown, true);
}

const char *
fk_schema_list_type(const json_t *node, const json_t **ret_keys)
{
	const char *t = fk_jstr(node, "x-kubernetes-list-type");

	*ret_keys = json_object_get(node, "x-kubernetes-list-map-keys");
	if (t == NULL)
		return "atomic";
	return t;
}

const json_t *
fk_schema_child(const json_t *node, const char *field)
{
	const json_t *p = json_object_get(json_object_get(node, "properties"), field);

	if (p != NULL)
		return p;
	p = json_object_get(node, "additionalProperties");
	return json_is_object(p) ? p : NULL;
}

const json_t *
fk_schema_items(const json_t *node)
{
	const json_t *i = json_object_get(node, "items");

	return json_is_object(i) ? i : NULL;
}
