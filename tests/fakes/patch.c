/* patch.c — JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch
 * as an approximation: merge-patch semantics plus list merging by the merge keys of the
 * built-in types' lists (containers by name, ports by port, ...) and the directives kubectl
 * sends ($patch, $retainKeys, $setElementOrder/, $deleteFromPrimitiveList/). */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Deepest nesting a patch may reach. */
#define PATCH_DEPTH_MAX 100
/* Operations in one JSON patch. */
#define PATCH_OPS_MAX 10000

/* ---- merge patch ---- */

static json_t *
merge(const json_t *target, const json_t *patch, int depth)
{
	json_t *result;
	const char *key;
	json_t *pv;

	if (!json_is_object(patch) || depth > PATCH_DEPTH_MAX)
		return json_deep_copy(patch);
	result = json_is_object(target) ? json_deep_copy(target) : json_object();
	if (result == NULL)
		return NULL;
	json_object_foreach((json_t *)patch, key, pv) {
		if (json_is_null(pv)) {
			json_object_del(result, key);
			continue;
		}
		json_t *nv = merge(json_object_get(result, key), pv, depth + 1);
		if (nv == NULL) {
			json_decref(result);
			return NULL;
		}
		json_object_set_new(result, key, nv);
	}
	return result;
}

json_t *
fk_merge_patch(const json_t *target, const json_t *patch)
{
	return merge(target, patch, 0);
}

/* ---- JSON patch ---- */

/* Splits a JSON pointer into its last token and the parent value; tokens unescaped. */
static int
pointer_parent(json_t *doc, const char *ptr, json_t **ret_parent, char *last, size_t lastlen,
	       char *err, size_t errlen)
{
	json_t *cur = doc;
	const char *p = ptr;
	char tok[1024];

	if (ptr[0] != '/') {
		snprintf(err, errlen, "JSON pointer must be empty or start with a \"/\": \"%s\"", ptr);
		return -EINVAL;
	}
	for (;;) {
		size_t o = 0;

		p++;
		while (*p != '\0' && *p != '/') {
			char c = *p++;

			if (c == '~') {
				if (*p == '0')
					c = '~';
				else if (*p == '1')
					c = '/';
				else {
					snprintf(err, errlen, "invalid JSON pointer escape in \"%s\"", ptr);
					return -EINVAL;
				}
				p++;
			}
			if (o + 1 >= sizeof(tok)) {
				snprintf(err, errlen, "JSON pointer token too long");
				return -EINVAL;
			}
			tok[o++] = c;
		}
		tok[o] = '\0';
		if (*p == '\0') {
			snprintf(last, lastlen, "%s", tok);
			*ret_parent = cur;
			return 0;
		}
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			char *end;
			long i = strtol(tok, &end, 10);

			cur = (*end == '\0' && end != tok && i >= 0) ? json_array_get(cur, (size_t)i) : NULL;
		} else {
			cur = NULL;
		}
		if (cur == NULL) {
			snprintf(err, errlen, "doc is missing path: \"%s\": missing value", ptr);
			return -ENOENT;
		}
	}
}

static int
array_index(const json_t *arr, const char *tok, bool allow_end, size_t *ret)
{
	char *end;
	long i;

	if (allow_end && strcmp(tok, "-") == 0) {
		*ret = json_array_size(arr);
		return 0;
	}
	if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
		return -EINVAL;
	i = strtol(tok, &end, 10);
	if (*end != '\0' || i < 0)
		return -EINVAL;
	if ((size_t)i > json_array_size(arr) || (!allow_end && (size_t)i == json_array_size(arr)))
		return -EINVAL;
	*ret = (size_t)i;
	return 0;
}

/* The value at ptr (borrowed), or NULL. */
static json_t *
pointer_get(json_t *doc, const char *ptr, char *err, size_t errlen)
{
	json_t *parent;
	char last[1024];
	size_t i;

	if (ptr[0] == '\0')
		return doc;
	if (pointer_parent(doc, ptr, &parent, last, sizeof(last), err, errlen) < 0)
		return NULL;
	if (json_is_object(parent))
		return json_object_get(parent, last);
	if (json_is_array(parent) && array_index(parent, last, false, &i) == 0)
		return json_array_get(parent, i);
	return NULL;
}

static int
op_add(json_t **doc, const char *path, json_t *value, bool replace, char *err, size_t errlen)
{
	json_t *parent;
	char last[1024];
	size_t i;
	int r;

	if (path[0] == '\0') {
		json_decref(*doc);
		*doc = json_incref(value);
		return 0;
	}
	if ((r = pointer_parent(*doc, path, &parent, last, sizeof(last), err, errlen)) < 0)
		return r;
	if (json_is_object(parent)) {
		if (replace && json_object_get(parent, last) == NULL) {
			snprintf(err, errlen, "replace operation does not apply: doc is missing key: %s: missing value", path);
			return -ENOENT;
		}
		return json_object_set(parent, last, value) == 0 ? 0 : -ENOMEM;
	}
	if (json_is_array(parent)) {
		if (array_index(parent, last, !replace, &i) < 0) {
			snprintf(err, errlen, "%s operation does not apply: doc is missing path: %s: missing value",
				 replace ? "replace" : "add", path);
			return -ENOENT;
		}
		if (replace)
			return json_array_set(parent, i, value) == 0 ? 0 : -ENOMEM;
		return json_array_insert(parent, i, value) == 0 ? 0 : -ENOMEM;
	}
	snprintf(err, errlen, "%s operation does not apply: doc is missing path: %s: missing value",
		 replace ? "replace" : "add", path);
	return -ENOENT;
}

static int
op_remove(json_t *doc, const char *path, char *err, size_t errlen)
{
	json_t *parent;
	char last[1024];
	size_t i;
	int r;

	if ((r = pointer_parent(doc, path, &parent, last, sizeof(last), err, errlen)) < 0)
		return r;
	if (json_is_object(parent) && json_object_get(parent, last) != NULL)
		return json_object_del(parent, last) == 0 ? 0 : -EINVAL;
	if (json_is_array(parent) && array_index(parent, last, false, &i) == 0)
		return json_array_remove(parent, i) == 0 ? 0 : -EINVAL;
	snprintf(err, errlen, "remove operation does not apply: doc is missing path: \"%s\": missing value", path);
	return -ENOENT;
}

int
fk_json_patch(json_t **doc, const json_t *ops, char *err, size_t errlen)
{
	size_t idx;
	json_t *op;

	if (!json_is_array(ops)) {
		snprintf(err, errlen, "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
		return -EINVAL;
	}
	if (json_array_size(ops) > PATCH_OPS_MAX) {
		snprintf(err, errlen, "the patch has more than %d operations", PATCH_OPS_MAX);
		return -E2BIG;
	}
	json_array_foreach(ops, idx, op) {
		const char *name = fk_jstr(op, "op"), *path = fk_jstr(op, "path");
		const char *from = fk_jstr(op, "from");
		json_t *value = json_object_get(op, "value"), *src, *copy;
		int r;

		if (name == NULL || path == NULL) {
			snprintf(err, errlen, "Unexpected kind: %s", name != NULL ? "missing path" : "missing op");
			return -EINVAL;
		}
		if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
			if (value == NULL) {
				snprintf(err, errlen, "%s operation does not apply: missing value", name);
				return -EINVAL;
			}
			if ((copy = json_deep_copy(value)) == NULL)
				return -ENOMEM;
			r = op_add(doc, path, copy, name[0] == 'r', err, errlen);
			json_decref(copy);
		} else if (strcmp(name, "remove") == 0) {
			r = op_remove(*doc, path, err, errlen);
		} else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
			if (from == NULL || (src = pointer_get(*doc, from, err, errlen)) == NULL) {
				snprintf(err, errlen, "%s operation does not apply: doc is missing from path: %s: missing value",
					 name, from != NULL ? from : "");
				return -ENOENT;
			}
			if ((copy = json_deep_copy(src)) == NULL)
				return -ENOMEM;
			r = 0;
			if (name[0] == 'm')
				r = op_remove(*doc, from, err, errlen);
			if (r == 0)
				r = op_add(doc, path, copy, false, err, errlen);
			json_decref(copy);
		} else if (strcmp(name, "test") == 0) {
			src = pointer_get(*doc, path, err, errlen);
			if (!fk_json_equal(src, value != NULL ? value : json_null()) &&
			    !(src == NULL && json_is_null(value))) {
				snprintf(err, errlen, "testing value %s failed: test failed", path);
				return -EINVAL;
			}
			r = 0;
		} else {
			snprintf(err, errlen, "Unexpected kind: %s", name);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- strategic merge patch ---- */

struct merge_key {
	const char *suffix;             /* the list's path ends with this */
	const char *key;                /* NULL: a set of primitives */
};

/* The built-in types' patchMergeKey tags that kubectl's patches touch. */
static const struct merge_key merge_keys[] = {
	{ "containers.ports", "containerPort" },
	{ "initContainers.ports", "containerPort" },
	{ "ephemeralContainers.ports", "containerPort" },
	{ "containers", "name" },
	{ "initContainers", "name" },
	{ "ephemeralContainers", "name" },
	{ ".env", "name" },
	{ "volumeMounts", "mountPath" },
	{ "volumeDevices", "devicePath" },
	{ "volumes", "name" },
	{ "imagePullSecrets", "name" },
	{ "hostAliases", "ip" },
	{ "topologySpreadConstraints", "topologyKey" },
	{ "conditions", "type" },
	{ "ownerReferences", "uid" },
	{ "readinessGates", "conditionType" },
	{ "schedulingGates", "name" },
	{ "resourceClaims", "name" },
	{ "metadata.finalizers", NULL },
	{ "spec.finalizers", NULL },
};

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (m > n || strcmp(s + n - m, suffix) != 0)
		return false;
	/* a whole component: "xcontainers" is not "containers" */
	return n == m || suffix[0] == '.' || s[n - m - 1] == '.';
}

const char *
fk_smp_merge_key(const char *path, bool *ret_set)
{
	*ret_set = false;
	/* Service ports merge by port; a ServiceAccount's secrets by name. */
	if (strcmp(path, "spec.ports") == 0)
		return "port";
	if (strcmp(path, "secrets") == 0)
		return "name";
	if (strcmp(path, "env") == 0)
		return "name";
	for (size_t i = 0; i < sizeof(merge_keys) / sizeof(merge_keys[0]); i++) {
		if (ends_with(path, merge_keys[i].suffix)) {
			*ret_set = merge_keys[i].key == NULL;
			return merge_keys[i].key;
		}
	}
	return NULL;
}

static bool
is_directive_key(const char *k)
{
	return k[0] == '$';
}

/* A copy of v without directive keys, down to PATCH_DEPTH_MAX (deeper: as it is). */
static json_t *
strip_directives_at(const json_t *v, int depth)
{
	json_t *out, *x;
	const char *k;
	size_t i;

	if (depth > PATCH_DEPTH_MAX)
		return json_deep_copy(v);
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach((json_t *)v, k, x) {
			if (!is_directive_key(k))
				json_object_set_new(out, k, strip_directives_at(x, depth + 1));
		}
		return out;
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, x) {
			if (json_is_object(x) && json_object_get(x, "$patch") != NULL)
				continue;
			json_array_append_new(out, strip_directives_at(x, depth + 1));
		}
		return out;
	}
	return json_deep_copy(v);
}

static json_t *
strip_directives(const json_t *v)
{
	return strip_directives_at(v, 0);
}

static json_t *smp_map(const json_t *orig, const json_t *patch, const char *path, int depth,
		       char *err, size_t errlen);

static long
find_by_key(const json_t *list, const char *mkey, const json_t *kv)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		if (fk_json_equal(json_object_get(e, mkey), kv))
			return (long)i;
	}
	return -1;
}

static json_t *
smp_list(const json_t *orig, const json_t *patch, const char *path, int depth, char *err,
	 size_t errlen)
{
	bool set = false;
	const char *mkey = fk_smp_merge_key(path, &set);
	json_t *result, *pe;
	size_t i;

	if (mkey == NULL && !set)
		return strip_directives(patch);           /* atomic: replaced */
	json_array_foreach(patch, i, pe) {
		if (json_is_object(pe) && json_object_size(pe) == 1 &&
		    strcmp(fk_jstr(pe, "$patch") != NULL ? fk_jstr(pe, "$patch") : "", "replace") == 0)
			return strip_directives(patch);
	}
	result = json_is_array(orig) ? json_deep_copy(orig) : json_array();
	json_array_foreach(patch, i, pe) {
		if (set || !json_is_object(pe)) {
			size_t j;
			json_t *e;
			bool have = false;

			json_array_foreach(result, j, e) {
				if (fk_json_equal(e, pe))
					have = true;
			}
			if (!have)
				json_array_append(result, pe);
			continue;
		}
		json_t *kv = json_object_get(pe, mkey);
		const char *directive = fk_jstr(pe, "$patch");
		long at = kv != NULL ? find_by_key(result, mkey, kv) : -1;

		if (kv == NULL) {
			snprintf(err, errlen, "map: %s does not contain declared merge key: %s", path, mkey);
			json_decref(result);
			return NULL;
		}
		if (directive != NULL && strcmp(directive, "delete") == 0) {
			while ((at = find_by_key(result, mkey, kv)) >= 0)
				json_array_remove(result, (size_t)at);
			continue;
		}
		json_t *merged = smp_map(at >= 0 ? json_array_get(result, (size_t)at) : NULL, pe, path,
					 depth + 1, err, errlen);
		if (merged == NULL && err[0] != '\0') {
			json_decref(result);
			return NULL;
		}
		if (merged == NULL)
			continue;
		if (at >= 0)
			json_array_set_new(result, (size_t)at, merged);
		else
			json_array_append_new(result, merged);
	}
	return result;
}

/* Orders list elements as order says (by merge key, or by value for sets); the rest keep
 * their order after them. */
static void
set_element_order(json_t *list, const json_t *order, const char *path)
{
	bool set = false;
	const char *mkey = fk_smp_merge_key(path, &set);
	json_t *out = json_array(), *o, *e;
	size_t i, j;

	if (!json_is_array(list) || !json_is_array(order) || out == NULL) {
		json_decref(out);
		return;
	}
	json_array_foreach(order, i, o) {
		json_array_foreach(list, j, e) {
			bool same = mkey != NULL ? fk_json_equal(json_object_get(e, mkey),
								 json_object_get(o, mkey))
						 : fk_json_equal(e, o);
			if (same) {
				json_array_append(out, e);
				json_array_remove(list, j);
				break;
			}
		}
	}
	json_array_extend(out, list);
	json_array_clear(list);
	json_array_extend(list, out);
	json_decref(out);
}

static json_t *
smp_map(const json_t *orig, const json_t *patch, const char *path, int depth, char *err,
	size_t errlen)
{
	const char *directive = fk_jstr(patch, "$patch"), *k;
	json_t *result, *pv, *retain = json_object_get(patch, "$retainKeys");
	char sub[1024];

	if (depth > PATCH_DEPTH_MAX) {
		snprintf(err, errlen, "the patch is nested too deeply");
		return NULL;
	}
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	if (directive != NULL && strcmp(directive, "delete") == 0)
		return NULL;
	if (directive != NULL && strcmp(directive, "replace") == 0)
		return strip_directives(patch);
	if (directive != NULL && strcmp(directive, "merge") != 0) {
		snprintf(err, errlen, "Unknown patch type: %s in map: %s", directive, path);
		return NULL;
	}
	result = json_is_object(orig) ? json_deep_copy(orig) : json_object();
	if (json_is_array(retain)) {
		void *tmp;

		json_object_foreach_safe(result, tmp, k, pv) {
			size_t i;
			json_t *rk;
			bool keep = false;

			json_array_foreach(retain, i, rk) {
				if (json_is_string(rk) && strcmp(json_string_value(rk), k) == 0)
					keep = true;
			}
			if (!keep)
				json_object_del(result, k);
		}
	}
	json_object_foreach((json_t *)patch, k, pv) {
		if (strncmp(k, "$deleteFromPrimitiveList/", 25) == 0) {
			json_t *list = json_object_get(result, k + 25), *dv;
			size_t i;

			json_array_foreach(pv, i, dv) {
				for (size_t j = json_array_size(list); j-- > 0;) {
					if (fk_json_equal(json_array_get(list, j), dv))
						json_array_remove(list, j);
				}
			}
			continue;
		}
		if (is_directive_key(k))
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", k);
		if (json_is_null(pv)) {
			json_object_del(result, k);
		} else if (json_is_object(pv)) {
			json_t *nv = smp_map(json_object_get(result, k), pv, sub, depth + 1, err, errlen);

			if (nv == NULL) {
				if (err[0] != '\0') {
					json_decref(result);
					return NULL;
				}
				json_object_del(result, k);
			} else {
				json_object_set_new(result, k, nv);
			}
		} else if (json_is_array(pv)) {
			json_t *nv = smp_list(json_object_get(result, k), pv, sub, depth + 1, err, errlen);

			if (nv == NULL) {
				json_decref(result);
				return NULL;
			}
			json_object_set_new(result, k, nv);
		} else {
			json_object_set(result, k, pv);
		}
	}
	json_object_foreach((json_t *)patch, k, pv) {
		if (strncmp(k, "$setElementOrder/", 17) == 0) {
			snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", k + 17);
			set_element_order(json_object_get(result, k + 17), pv, sub);
		}
	}
	return result;
}

json_t *
fk_strategic_merge(const json_t *target, const json_t *patch, char *err, size_t errlen)
{
	json_t *r;

	err[0] = '\0';
	if (!json_is_object(patch)) {
		snprintf(err, errlen, "json: cannot unmarshal array into Go value of type map[string]interface {}");
		return NULL;
	}
	r = smp_map(target, patch, "", 0, err, errlen);
	if (r == NULL && err[0] == '\0')
		r = json_object();      /* "$patch: delete" at the top: nothing left */
	return r;
}
