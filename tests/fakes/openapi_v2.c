/* openapi_v2.c — /openapi/v2, in JSON or in the protobuf form (gnostic's openapi_v2.Document)
 * that kubectl ≤ 1.27 asks for: it reads the PATCH operations' fieldValidation parameter
 * (to validate on the server) and the definitions (`kubectl explain`, client-side apply).
 * Built from the same paths and schemas as OpenAPI v3 (openapi.c). */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Deepest schema nesting encoded. */
#define V2_DEPTH_MAX 64

/* ---- the JSON document ---- */

static json_t *
v2_param(const char *name, const char *in, bool required)
{
	return json_pack("{s:s,s:s,s:b,s:s,s:b}", "name", name, "in", in, "required", required, "type", "string",
			 "uniqueItems", true);
}

/* OpenAPI v3's refs (#/components/schemas/X) as v2's (#/definitions/X), recursively. */
static void
v3_to_v2_refs(json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		const char *ref = fk_jstr(v, "$ref");

		if (ref != NULL && strncmp(ref, "#/components/schemas/", 21) == 0) {
			char buf[600];

			snprintf(buf, sizeof(buf), "#/definitions/%s", ref + 21);
			json_object_set_new(v, "$ref", json_string(buf));
		}
		json_object_foreach(v, k, x)
			v3_to_v2_refs(x);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			v3_to_v2_refs(x);
	}
}

/* metadata: {"allOf":[{"$ref":..}]} as v2 writes it: {"$ref":..} */
static void
flatten_allof(json_t *v)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return;
	json_object_foreach(v, k, x) {
		json_t *all = json_object_get(x, "allOf");

		if (json_is_object(x) && json_array_size(all) == 1 && fk_jstr(json_array_get(all, 0), "$ref") != NULL) {
			json_object_set(x, "$ref", json_object_get(json_array_get(all, 0), "$ref"));
			json_object_del(x, "allOf");
			json_object_del(x, "default");
		}
		flatten_allof(x);
	}
}

static json_t *
v2_json(struct fk_state *st)
{
	json_t *paths = json_object(), *defs = json_object();
	json_t *root = fk_openapi_v3_root(st);
	const char *gv;
	json_t *entry;

	json_object_foreach(json_object_get(root, "paths"), gv, entry) {
		json_t *doc = fk_openapi_v3_doc(st, gv), *p, *ops;
		const char *path, *method, *id;
		json_t *schema;

		(void)entry;
		if (doc == NULL)
			continue;
		json_object_foreach(json_object_get(doc, "paths"), path, ops) {
			json_t *item = json_object();

			json_object_foreach(ops, method, p) {
				if (strcmp(method, "parameters") == 0) {
					json_t *params = json_array();
					size_t i;
					json_t *x;

					json_array_foreach(p, i, x)
						json_array_append_new(params, v2_param(fk_jstr(x, "name"), fk_jstr(x, "in"),
										       json_is_true(json_object_get(x, "required"))));
					json_object_set_new(item, "parameters", params);
					continue;
				}
				json_t *op = json_pack("{s:O,s:O,s:O,s:[s],s:[s],s:[],s:{s:{s:s,s:O}}}",
					"operationId", json_object_get(p, "operationId"),
					"x-kubernetes-action", json_object_get(p, "x-kubernetes-action"),
					"x-kubernetes-group-version-kind", json_object_get(p, "x-kubernetes-group-version-kind"),
					"consumes", "application/json", "produces", "application/json",
					"parameters", "responses", "200", "description", "OK", "schema",
					json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
						p, "responses"), "200"), "content"), "application/json"), "schema"));
				size_t i;
				json_t *x;

				json_array_foreach(json_object_get(p, "parameters"), i, x)
					json_array_append_new(json_object_get(op, "parameters"),
							      v2_param(fk_jstr(x, "name"), "query", false));
				if (json_object_get(p, "requestBody") != NULL)
					json_array_append_new(json_object_get(op, "parameters"), json_pack("{s:s,s:s,s:b,s:O}",
						"name", "body", "in", "body", "required", true, "schema",
						json_object_get(json_object_get(json_object_get(json_object_get(p, "requestBody"),
							"content"), fk_jstr(p, "x-kubernetes-action") && strcmp(fk_jstr(p, "x-kubernetes-action"), "patch") == 0
							? "application/merge-patch+json" : "application/json"), "schema")));
				json_object_set_new(item, method, op);
			}
			json_object_set_new(paths, path, item);
		}
		json_object_foreach(json_object_get(json_object_get(doc, "components"), "schemas"), id, schema)
			json_object_set(defs, id, schema);
		json_decref(doc);
	}
	json_decref(root);
	v3_to_v2_refs(paths);
	v3_to_v2_refs(defs);
	flatten_allof(defs);
	return json_pack("{s:s,s:{s:s,s:s},s:o,s:o}", "swagger", "2.0", "info", "title", "Kubernetes", "version",
			 "v1.31.0", "paths", paths, "definitions", defs);
}

json_t *
fk_openapi_v2(struct fk_state *st)
{
	return v2_json(st);
}

/* ---- protobuf ---- */

struct pb {
	unsigned char *d;
	size_t len, cap;
	bool failed;
};

static void
pb_bytes(struct pb *b, const void *p, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		unsigned char *nd;

		while (cap < b->len + n)
			cap *= 2;
		if ((nd = realloc(b->d, cap)) == NULL) {
			b->failed = true;
			return;
		}
		b->d = nd;
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
}

static void
pb_varint(struct pb *b, uint64_t v)
{
	unsigned char buf[10];
	size_t n = 0;

	do {
		buf[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			buf[n] |= 0x80;
		n++;
	} while (v != 0);
	pb_bytes(b, buf, n);
}

static void
pb_tag(struct pb *b, unsigned field, unsigned wire)
{
	pb_varint(b, ((uint64_t)field << 3) | wire);
}

static void
pb_string(struct pb *b, unsigned field, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return;
	pb_tag(b, field, 2);
	pb_varint(b, strlen(s));
	pb_bytes(b, s, strlen(s));
}

static void
pb_bool(struct pb *b, unsigned field, bool v)
{
	if (!v)
		return;
	pb_tag(b, field, 0);
	pb_varint(b, 1);
}

/* A nested message: built in its own buffer, then written with its length. */
static void
pb_msg(struct pb *b, unsigned field, const struct pb *inner)
{
	if (inner->failed) {
		b->failed = true;
		return;
	}
	pb_tag(b, field, 2);
	pb_varint(b, inner->len);
	pb_bytes(b, inner->d, inner->len);
}

static void
pb_free(struct pb *b)
{
	free(b->d);
	b->d = NULL;
}

/* NamedAny{name, Any{yaml}} — JSON is YAML. */
static void
enc_named_any(struct pb *b, unsigned field, const char *name, const json_t *v)
{
	struct pb any = { 0 }, named = { 0 };
	char *text = fk_json_dump(v);

	pb_string(&any, 2, text != NULL ? text : "null");
	free(text);
	pb_string(&named, 1, name);
	pb_msg(&named, 2, &any);
	pb_msg(b, field, &named);
	pb_free(&any);
	pb_free(&named);
}

static void
enc_extensions(struct pb *b, unsigned field, const json_t *obj)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		if (strncmp(k, "x-", 2) == 0)
			enc_named_any(b, field, k, v);
	}
}

static void
enc_schema(struct pb *b, const json_t *s, int depth)
{
	const char *k;
	json_t *v, *props = json_object_get(s, "properties"), *items = json_object_get(s, "items");
	json_t *addl = json_object_get(s, "additionalProperties");
	size_t i;

	if (depth > V2_DEPTH_MAX)
		return;
	pb_string(b, 1, fk_jstr(s, "$ref"));
	pb_string(b, 2, fk_jstr(s, "format"));
	pb_string(b, 4, fk_jstr(s, "description"));
	json_array_foreach(json_object_get(s, "required"), i, v)
		pb_string(b, 19, json_string_value(v));
	json_array_foreach(json_object_get(s, "enum"), i, v) {
		struct pb any = { 0 };
		char *text = fk_json_dump(v);

		pb_string(&any, 2, text);
		free(text);
		pb_msg(b, 20, &any);
		pb_free(&any);
	}
	if (json_is_object(addl) || json_is_boolean(addl)) {
		struct pb ap = { 0 }, sub = { 0 };

		if (json_is_object(addl)) {
			enc_schema(&sub, addl, depth + 1);
			pb_msg(&ap, 1, &sub);
		} else {
			pb_bool(&ap, 2, json_is_true(addl));
		}
		pb_msg(b, 21, &ap);
		pb_free(&ap);
		pb_free(&sub);
	}
	if (fk_jstr(s, "type") != NULL) {
		struct pb ti = { 0 };

		pb_string(&ti, 1, fk_jstr(s, "type"));
		pb_msg(b, 22, &ti);
		pb_free(&ti);
	}
	if (json_is_object(items)) {
		struct pb ii = { 0 }, sub = { 0 };

		enc_schema(&sub, items, depth + 1);
		pb_msg(&ii, 1, &sub);
		pb_msg(b, 23, &ii);
		pb_free(&ii);
		pb_free(&sub);
	}
	if (json_is_object(props)) {
		struct pb pp = { 0 };

		json_object_foreach(props, k, v) {
			struct pb named = { 0 }, sub = { 0 };

			pb_string(&named, 1, k);
			enc_schema(&sub, v, depth + 1);
			pb_msg(&named, 2, &sub);
			pb_msg(&pp, 1, &named);
			pb_free(&named);
			pb_free(&sub);
		}
		pb_msg(b, 25, &pp);
		pb_free(&pp);
	}
	enc_extensions(b, 31, s);
}

/* ParametersItem{Parameter{NonBodyParameter{Query|Path sub-schema}}} or the body. */
static void
enc_parameter(struct pb *b, unsigned field, const json_t *p)
{
	struct pb item = { 0 }, param = { 0 }, nb = { 0 }, sub = { 0 };
	const char *in = fk_jstr(p, "in");

	if (in != NULL && strcmp(in, "body") == 0) {
		struct pb schema = { 0 };

		pb_string(&sub, 2, fk_jstr(p, "name"));
		pb_string(&sub, 3, in);
		pb_bool(&sub, 4, json_is_true(json_object_get(p, "required")));
		enc_schema(&schema, json_object_get(p, "schema"), 0);
		pb_msg(&sub, 5, &schema);
		pb_free(&schema);
		pb_msg(&param, 1, &sub);
	} else if (in != NULL && strcmp(in, "path") == 0) {
		pb_bool(&sub, 1, json_is_true(json_object_get(p, "required")));
		pb_string(&sub, 2, in);
		pb_string(&sub, 4, fk_jstr(p, "name"));
		pb_string(&sub, 5, fk_jstr(p, "type"));
		pb_bool(&sub, 19, json_is_true(json_object_get(p, "uniqueItems")));
		pb_msg(&nb, 4, &sub);
		pb_msg(&param, 2, &nb);
	} else {
		pb_bool(&sub, 1, json_is_true(json_object_get(p, "required")));
		pb_string(&sub, 2, in);
		pb_string(&sub, 4, fk_jstr(p, "name"));
		pb_string(&sub, 6, fk_jstr(p, "type"));
		pb_bool(&sub, 20, json_is_true(json_object_get(p, "uniqueItems")));
		pb_msg(&nb, 3, &sub);
		pb_msg(&param, 2, &nb);
	}
	pb_msg(&item, 1, &param);
	pb_msg(b, field, &item);
	pb_free(&item);
	pb_free(&param);
	pb_free(&nb);
	pb_free(&sub);
}

static void
enc_operation(struct pb *b, unsigned field, const json_t *op)
{
	struct pb o = { 0 }, responses = { 0 };
	const char *code;
	json_t *v;
	size_t i;

	pb_string(&o, 5, fk_jstr(op, "operationId"));
	json_array_foreach(json_object_get(op, "produces"), i, v)
		pb_string(&o, 6, json_string_value(v));
	json_array_foreach(json_object_get(op, "consumes"), i, v)
		pb_string(&o, 7, json_string_value(v));
	json_array_foreach(json_object_get(op, "parameters"), i, v)
		enc_parameter(&o, 8, v);
	json_object_foreach(json_object_get(op, "responses"), code, v) {
		struct pb named = { 0 }, value = { 0 }, resp = { 0 }, item = { 0 }, schema = { 0 };

		pb_string(&resp, 1, fk_jstr(v, "description"));
		if (json_object_get(v, "schema") != NULL) {
			enc_schema(&schema, json_object_get(v, "schema"), 0);
			pb_msg(&item, 1, &schema);
			pb_msg(&resp, 2, &item);
		}
		pb_msg(&value, 1, &resp);
		pb_string(&named, 1, code);
		pb_msg(&named, 2, &value);
		pb_msg(&responses, 1, &named);
		pb_free(&named);
		pb_free(&value);
		pb_free(&resp);
		pb_free(&item);
		pb_free(&schema);
	}
	pb_msg(&o, 9, &responses);
	enc_extensions(&o, 13, op);
	pb_msg(b, field, &o);
	pb_free(&o);
	pb_free(&responses);
}

int
fk_openapi_v2_protobuf(struct fk_state *st, char **ret, size_t *ret_len)
{
	json_t *doc = v2_json(st), *v;
	struct pb b = { 0 }, info = { 0 }, paths = { 0 }, defs = { 0 };
	const char *k;

	if (doc == NULL)
		return -ENOMEM;
	pb_string(&b, 1, "2.0");
	pb_string(&info, 1, "Kubernetes");
	pb_string(&info, 2, "v1.31.0");
	pb_msg(&b, 2, &info);
	json_object_foreach(json_object_get(doc, "paths"), k, v) {
		static const struct { const char *method; unsigned field; } methods[] = {
			{ "get", 2 }, { "put", 3 }, { "post", 4 }, { "delete", 5 }, { "patch", 8 },
		};
		struct pb named = { 0 }, item = { 0 };
		size_t i;
		json_t *p;

		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			if ((p = json_object_get(v, methods[m].method)) != NULL)
				enc_operation(&item, methods[m].field, p);
		}
		json_array_foreach(json_object_get(v, "parameters"), i, p)
			enc_parameter(&item, 9, p);
		pb_string(&named, 1, k);
		pb_msg(&named, 2, &item);
		pb_msg(&paths, 2, &named);
		pb_free(&named);
		pb_free(&item);
	}
	pb_msg(&b, 8, &paths);
	json_object_foreach(json_object_get(doc, "definitions"), k, v) {
		struct pb named = { 0 }, schema = { 0 };

		pb_string(&named, 1, k);
		enc_schema(&schema, v, 0);
		pb_msg(&named, 2, &schema);
		pb_msg(&defs, 1, &named);
		pb_free(&named);
		pb_free(&schema);
	}
	pb_msg(&b, 9, &defs);
	pb_free(&info);
	pb_free(&paths);
	pb_free(&defs);
	json_decref(doc);
	if (b.failed) {
		pb_free(&b);
		return -ENOMEM;
	}
	*ret = (char *)b.d;
	*ret_len = b.len;
	return 0;
}
