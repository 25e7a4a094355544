/* apply.c — server-side apply and managedFields.
 *
 * Field sets are kept in the FieldsV1 form itself: {"f:spec":{"f:replicas":{}}}, list
 * elements by key ("k:{\"name\":\"app\"}" with "." for the element), set members
 * ("v:\"x\""). Lists are associative when the type says so: for CRDs x-kubernetes-list-type
 * map/set in the schema, for built-ins the strategic merge keys (patch.c); other lists are
 * atomic. An apply sets the applier's fields, removes those it applied before and no
 * longer does (when nobody else owns them), and fails with 409 when another manager owns
 * a field it sets to a different value, unless forced. Updates (PUT, PATCH, create) give
 * their manager the fields they changed and take those fields from the others. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest path text (".spec.containers[name=\"x\"].image"). */
#define APPLY_PATH_TEXT_MAX 2048
/* Conflicts listed in one 409. */
#define APPLY_CONFLICTS_MAX 64
/* Deepest nesting tracked field by field; deeper values are owned as a whole. */
#define APPLY_DEPTH_MAX 64

/* Where a value sits in its type: the schema node (CRDs) or the field path (built-ins). */
struct tinfo {
	const json_t *schema;
	bool crd;
	int depth;
	char path[1024];
};

enum list_kind { LIST_ATOMIC, LIST_SET, LIST_MAP };

static struct tinfo
ti_child(const struct tinfo *ti, const char *field)
{
	struct tinfo c = *ti;

	c.depth++;
	if (snprintf(c.path, sizeof(c.path), "%s%s%s", ti->path, ti->path[0] ? "." : "", field) >= (int)sizeof(c.path))
		c.path[0] = '\0';      /* too deep to name: treated as atomic */
	c.schema = ti->schema != NULL ? fk_schema_child(ti->schema, field) : NULL;
	return c;
}

static struct tinfo
ti_item(const struct tinfo *ti)
{
	struct tinfo c = *ti;

	c.depth++;
	c.schema = ti->schema != NULL ? fk_schema_items(ti->schema) : NULL;
	return c;
}

/* The list's kind; keys (a new array of key names) for LIST_MAP. */
static enum list_kind
list_kind(const struct tinfo *ti, json_t **ret_keys)
{
	*ret_keys = NULL;
	if (ti->depth > APPLY_DEPTH_MAX)
		return LIST_ATOMIC;
	if (ti->crd && strncmp(ti->path, "metadata", 8) != 0) {
		const json_t *keys;
		const char *lt = fk_schema_list_type(ti->schema, &keys);

		if (strcmp(lt, "set") == 0)
			return LIST_SET;
		if (strcmp(lt, "map") == 0 && json_array_size(keys) > 0) {
			*ret_keys = json_deep_copy(keys);
			return LIST_MAP;
		}
		return LIST_ATOMIC;
	}
	bool set = false;
	const char *k = fk_smp_merge_key(ti->path, &set);

	if (set)
		return LIST_SET;
	if (k != NULL) {
		*ret_keys = json_pack("[s]", k);
		return LIST_MAP;
	}
	return LIST_ATOMIC;
}

static bool
map_atomic(const struct tinfo *ti)
{
	if (ti->depth > APPLY_DEPTH_MAX)
		return true;
	return ti->crd && ti->schema != NULL &&
	       strcmp(fk_jstr(ti->schema, "x-kubernetes-map-type") ? fk_jstr(ti->schema, "x-kubernetes-map-type") : "",
		      "atomic") == 0;
}

/* "k:{...}" for an element: its key fields, sorted, compact. */
static char *
element_key(const json_t *elem, const json_t *keys)
{
	json_t *o = json_object();
	size_t i;
	json_t *k;
	char *text, *out = NULL;

	json_array_foreach(keys, i, k) {
		json_t *v = json_object_get(elem, json_string_value(k));

		if (v != NULL)
			json_object_set(o, json_string_value(k), v);
	}
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (text != NULL && asprintf(&out, "k:%s", text) < 0)
		out = NULL;
	free(text);
	json_decref(o);
	return out;
}

static char *
set_key(const json_t *v)
{
	char *text = fk_json_dump(v), *out = NULL;

	if (text != NULL && asprintf(&out, "v:%s", text) < 0)
		out = NULL;
	free(text);
	return out;
}

/* ---- field sets from objects ---- */

static json_t *fs_object(const json_t *obj, const struct tinfo *ti);

static json_t *
fs_value(const json_t *v, const struct tinfo *ti)
{
	json_t *keys = NULL, *out;
	enum list_kind lk;
	size_t i;
	json_t *e;

	if (json_is_object(v) && json_object_size(v) > 0 && !map_atomic(ti))
		return fs_object(v, ti);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return json_object();
	lk = list_kind(ti, &keys);
	if (lk == LIST_ATOMIC)
		return json_object();
	out = json_object();
	json_array_foreach(v, i, e) {
		char *k;

		if (lk == LIST_SET) {
			if ((k = set_key(e)) != NULL)
				json_object_set_new(out, k, json_object());
		} else if (json_is_object(e) && (k = element_key(e, keys)) != NULL) {
			struct tinfo it = ti_item(ti);
			json_t *sub = fs_object(e, &it);

			json_object_set_new(sub, ".", json_object());
			json_object_set_new(out, k, sub);
		} else {
			continue;
		}
		free(k);
	}
	json_decref(keys);
	return out;
}

static json_t *
fs_object(const json_t *obj, const struct tinfo *ti)
{
	json_t *out = json_object(), *v;
	const char *k;
	char fk[300];

	json_object_foreach((json_t *)obj, k, v) {
		struct tinfo c = ti_child(ti, k);

		snprintf(fk, sizeof(fk), "f:%s", k);
		json_object_set_new(out, fk, fs_value(v, &c));
	}
	return out;
}

/* A copy of obj without what managedFields never track, nor (main resource) status or
 * (status subresource) anything but status. */
static json_t *
tracked(const json_t *obj, bool status_only)
{
	static const char *const drop[] = { "name", "namespace", "uid", "resourceVersion", "generation",
					    "creationTimestamp", "deletionTimestamp",
					    "deletionGracePeriodSeconds", "managedFields", "selfLink", NULL };
	json_t *c = json_deep_copy(obj), *meta;

	if (c == NULL)
		return NULL;
	json_object_del(c, "apiVersion");
	json_object_del(c, "kind");
	if (status_only) {
		json_t *s = json_incref(json_object_get(c, "status"));

		json_object_clear(c);
		if (s != NULL)
			json_object_set_new(c, "status", s);
		return c;
	}
	json_object_del(c, "status");
	if ((meta = fk_jobj(c, "metadata")) != NULL) {
		for (size_t i = 0; drop[i] != NULL; i++)
			json_object_del(meta, drop[i]);
		if (json_object_size(meta) == 0)
			json_object_del(c, "metadata");
	}
	return c;
}

static struct tinfo
root_info(const struct fk_ctx *c)
{
	struct tinfo ti = { .crd = (c->t->flags & FK_CRD) != 0 };

	ti.schema = c->t->versions[c->version].schema;
	return ti;
}

static json_t *
field_set(const struct fk_ctx *c, const json_t *obj)
{
	struct tinfo ti = root_info(c);
	json_t *t = tracked(obj, c->status_only), *fs;

	fs = t != NULL ? fs_object(t, &ti) : json_object();
	json_decref(t);
	return fs;
}

/* ---- leaf paths ---- */

/* Appends every leaf path of set (arrays of path elements) to out. */
static void
leaves(const json_t *set, json_t *prefix, json_t *out)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)set, k, v) {
		json_t *p = json_copy(prefix);

		json_array_append_new(p, json_string(k));
		if (strcmp(k, ".") == 0 || json_object_size(v) == 0)
			json_array_append(out, p);
		else
			leaves(v, p, out);
		json_decref(p);
	}
}

static json_t *
all_leaves(const json_t *set)
{
	json_t *out = json_array(), *prefix = json_array();

	leaves(set, prefix, out);
	json_decref(prefix);
	return out;
}

static bool
has_path(const json_t *set, const json_t *path)
{
	const json_t *cur = set;
	size_t i;
	json_t *e;

	json_array_foreach(path, i, e) {
		cur = json_object_get(cur, json_string_value(e));
		if (cur == NULL)
			return false;
	}
	/* a leaf there, not only a parent of other leaves */
	return json_object_size(cur) == 0 || strcmp(json_string_value(json_array_get(path, json_array_size(path) - 1)), ".") == 0;
}

static void
add_path(json_t *set, const json_t *path)
{
	json_t *cur = set;
	size_t i;
	json_t *e;

	json_array_foreach(path, i, e) {
		json_t *next = json_object_get(cur, json_string_value(e));

		if (next == NULL) {
			next = json_object();
			json_object_set_new(cur, json_string_value(e), next);
		}
		cur = next;
	}
}

/* Removes path and the parents it leaves empty. */
static void
remove_path(json_t *set, const json_t *path, size_t from)
{
	const char *k = json_string_value(json_array_get(path, from));
	json_t *next = k != NULL ? json_object_get(set, k) : NULL;

	if (next == NULL)
		return;
	if (from + 1 == json_array_size(path)) {
		if (json_object_size(next) == 0 || strcmp(k, ".") == 0)
			json_object_del(set, k);
		return;
	}
	remove_path(next, path, from + 1);
	if (json_object_size(next) == 0)
		json_object_del(set, k);
}

/* The value at a path in obj (borrowed), or NULL. */
static json_t *
resolve(json_t *obj, const json_t *path, size_t upto)
{
	json_t *cur = obj;

	for (size_t i = 0; i < upto && cur != NULL; i++) {
		const char *el = json_string_value(json_array_get(path, i));

		if (strcmp(el, ".") == 0)
			continue;
		if (strncmp(el, "f:", 2) == 0) {
			cur = json_is_object(cur) ? json_object_get(cur, el + 2) : NULL;
		} else if (strncmp(el, "k:", 2) == 0 || strncmp(el, "v:", 2) == 0) {
			json_t *want = json_loads(el + 2, JSON_DECODE_ANY, NULL), *x, *found = NULL;
			size_t j;

			json_array_foreach(cur, j, x) {
				if (el[0] == 'v') {
					if (fk_json_equal(x, want))
						found = x;
				} else {
					const char *kk;
					json_t *kv;
					bool ok = json_is_object(x);

					json_object_foreach(want, kk, kv) {
						if (!fk_json_equal(json_object_get(x, kk), kv))
							ok = false;
					}
					if (ok)
						found = x;
				}
				if (found != NULL)
					break;
			}
			json_decref(want);
			cur = found;
		} else {
			cur = NULL;
		}
	}
	return cur;
}

/* Deletes what a path names from obj. */
static void
remove_value(json_t *obj, const json_t *path)
{
	size_t n = json_array_size(path);
	const char *last = json_string_value(json_array_get(path, n - 1));
	json_t *parent;

	if (strcmp(last, ".") == 0) {
		/* the element itself: its parent is the list */
		if (n < 2)
			return;
		json_t *list = resolve(obj, path, n - 2), *elem = resolve(obj, path, n - 1), *x;
		size_t j;

		json_array_foreach(list, j, x) {
			if (x == elem) {
				json_array_remove(list, j);
				break;
			}
		}
		return;
	}
	parent = resolve(obj, path, n - 1);
	if (strncmp(last, "f:", 2) == 0) {
		json_object_del(parent, last + 2);
	} else if (strncmp(last, "v:", 2) == 0) {
		json_t *elem = resolve(obj, path, n), *x;
		size_t j;

		json_array_foreach(parent, j, x) {
			if (x == elem) {
				json_array_remove(parent, j);
				break;
			}
		}
	}
}

/* ".spec.containers[name=\"x\"].image" */
static void
path_text(const json_t *path, char *out, size_t len)
{
	size_t o = 0, i;
	json_t *e;

	out[0] = '\0';
	json_array_foreach(path, i, e) {
		const char *el = json_string_value(e);
		int n = 0;

		if (strcmp(el, ".") == 0)
			continue;
		if (strncmp(el, "f:", 2) == 0) {
			n = snprintf(out + o, len - o, ".%s", el + 2);
		} else if (strncmp(el, "v:", 2) == 0) {
			n = snprintf(out + o, len - o, "[=%s]", el + 2);
		} else if (strncmp(el, "k:", 2) == 0) {
			json_t *k = json_loads(el + 2, 0, NULL), *v;
			const char *kk;
			bool first = true;

			n = snprintf(out + o, len - o, "[");
			json_object_foreach(k, kk, v) {
				char *vt = fk_json_dump(v);
				int m;

				if (o + (size_t)n >= len)
					break;
				m = snprintf(out + o + n, len - o - (size_t)n, "%s%s=%s", first ? "" : ",", kk,
					     vt != NULL ? vt : "");
				n += m;
				first = false;
				free(vt);
			}
			json_decref(k);
			if (o + (size_t)n < len)
				n += snprintf(out + o + n, len - o - (size_t)n, "]");
		}
		if (n < 0 || o + (size_t)n >= len)
			return;
		o += (size_t)n;
	}
}

/* ---- managedFields entries ---- */

static const char *
entry_sub(const json_t *e)
{
	const char *s = fk_jstr(e, "subresource");

	return s != NULL ? s : "";
}

/* The managedFields array of obj (borrowed; created when missing). */
static json_t *
managed(json_t *obj)
{
	json_t *meta = fk_meta(obj), *mf = json_object_get(meta, "managedFields");

	if (!json_is_array(mf)) {
		mf = json_array();
		json_object_set_new(meta, "managedFields", mf);
	}
	return mf;
}

/* The entry of manager/operation/subresource, created when missing. */
static json_t *
entry(struct fk_ctx *c, json_t *mf, const char *op)
{
	const char *sub = c->status_only ? "status" : "";
	char gv[400], now[32];
	size_t i;
	json_t *e;

	fk_now_rfc3339(now);
	snprintf(gv, sizeof(gv), "%s%s%s", c->t->group, c->t->group[0] ? "/" : "", c->t->versions[c->version].name);
	json_array_foreach(mf, i, e) {
		if (strcmp(fk_jstr(e, "manager") ? fk_jstr(e, "manager") : "", c->manager) == 0 &&
		    strcmp(fk_jstr(e, "operation") ? fk_jstr(e, "operation") : "", op) == 0 &&
		    strcmp(entry_sub(e), sub) == 0) {
			json_object_set_new(e, "time", json_string(now));
			json_object_set_new(e, "apiVersion", json_string(gv));
			if (!json_is_object(json_object_get(e, "fieldsV1")))
				json_object_set_new(e, "fieldsV1", json_object());
			return e;
		}
	}
	if (json_array_size(mf) >= FK_MANAGERS_MAX)
		json_array_remove(mf, 0);
	e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{}}", "manager", c->manager, "operation", op, "apiVersion", gv,
		      "time", now, "fieldsType", "FieldsV1", "fieldsV1");
	if (sub[0] != '\0')
		json_object_set_new(e, "subresource", json_string(sub));
	json_array_append_new(mf, e);
	return e;
}

static void
drop_empty(json_t *mf)
{
	for (size_t i = json_array_size(mf); i-- > 0;) {
		json_t *e = json_array_get(mf, i);

		if (json_object_size(json_object_get(e, "fieldsV1")) == 0)
			json_array_remove(mf, i);
	}
}

/* Keeps in every entry only the leaves obj still has. */
static void
prune_gone(json_t *mf, json_t *obj, const json_t *now_set, bool status_only)
{
	size_t i;
	json_t *e;

	json_array_foreach(mf, i, e) {
		json_t *set = json_object_get(e, "fieldsV1"), *ls;
		size_t j;
		json_t *p;

		if ((strcmp(entry_sub(e), "status") == 0) != status_only)
			continue;
		ls = all_leaves(set);
		json_array_foreach(ls, j, p) {
			if (!has_path(now_set, p) && resolve(obj, p, json_array_size(p)) == NULL)
				remove_path(set, p, 0);
		}
		json_decref(ls);
	}
}

void
fk_managed_update(struct fk_ctx *c, const json_t *old, json_t *obj)
{
	json_t *mf = managed(obj), *now_set = field_set(c, obj), *ls, *p, *mine, *o;
	json_t *oldt = old != NULL ? json_deep_copy(old) : NULL;
	size_t i, j;

	ls = all_leaves(now_set);
	mine = json_object_get(entry(c, mf, "Update"), "fieldsV1");
	json_array_foreach(ls, i, p) {
		json_t *nv = resolve(obj, p, json_array_size(p));
		json_t *ov = oldt != NULL ? resolve(oldt, p, json_array_size(p)) : NULL;
		bool dot = strcmp(json_string_value(json_array_get(p, json_array_size(p) - 1)), ".") == 0;

		if (old != NULL && (dot ? ov != NULL : fk_json_equal(nv, ov)))
			continue;
		add_path(mine, p);
		json_array_foreach(mf, j, o) {
			json_t *set = json_object_get(o, "fieldsV1");

			if (set != mine && (strcmp(entry_sub(o), "status") == 0) == c->status_only && !dot)
				remove_path(set, p, 0);
		}
	}
	prune_gone(mf, obj, now_set, c->status_only);
	drop_empty(mf);
	if (json_array_size(mf) == 0)
		json_object_del(fk_meta(obj), "managedFields");
	json_decref(ls);
	json_decref(now_set);
	json_decref(oldt);
}

/* ---- apply ---- */

static bool
same_element(const json_t *a, const json_t *b, enum list_kind lk, const json_t *keys)
{
	char *ka, *kb;
	bool same;

	if (lk == LIST_SET)
		return fk_json_equal(a, b);
	ka = element_key(a, keys);
	kb = element_key(b, keys);
	same = ka != NULL && kb != NULL && strcmp(ka, kb) == 0;
	free(ka);
	free(kb);
	return same;
}

static json_t *
merge_value(json_t *live, const json_t *cfg, const struct tinfo *ti)
{
	json_t *keys = NULL;
	enum list_kind lk;

	if (json_is_object(cfg) && json_is_object(live) && !map_atomic(ti)) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)cfg, k, v) {
			struct tinfo c = ti_child(ti, k);

			json_object_set_new(live, k, merge_value(json_object_get(live, k), v, &c));
		}
		return json_incref(live);
	}
	if (json_is_array(cfg) && json_is_array(live) && (lk = list_kind(ti, &keys)) != LIST_ATOMIC) {
		json_t *out = json_deep_copy(live), *ce;
		struct tinfo it = ti_item(ti);
		size_t i;

		json_array_foreach(cfg, i, ce) {
			size_t j;
			json_t *le;
			long at = -1;

			json_array_foreach(out, j, le) {
				if (same_element(le, ce, lk, keys)) {
					at = (long)j;
					break;
				}
			}
			if (at < 0)
				json_array_append_new(out, json_deep_copy(ce));
			else if (lk == LIST_MAP)
				json_array_set_new(out, (size_t)at, merge_value(json_array_get(out, (size_t)at), ce, &it));
		}
		json_decref(keys);
		return out;
	}
	json_decref(keys);
	return json_deep_copy(cfg);
}

struct conflict {
	char manager[128];
	char api[128];
	char field[APPLY_PATH_TEXT_MAX];
};

static void
reply_conflicts(struct fk_ctx *c, const struct conflict *cs, size_t n)
{
	char *msg = NULL;
	size_t len = 0, cap = 0;
	json_t *causes = json_array(), *details;

	if (n == 1) {
		fk_appendf(&msg, &len, &cap, "Apply failed with 1 conflict: conflict with \"%s\" using %s: %s",
			   cs[0].manager, cs[0].api, cs[0].field);
	} else {
		fk_appendf(&msg, &len, &cap, "Apply failed with %zu conflicts: ", n);
		for (size_t i = 0; i < n; i++) {
			if (i == 0 || strcmp(cs[i].manager, cs[i - 1].manager) != 0)
				fk_appendf(&msg, &len, &cap, "%sconflicts with \"%s\" using %s:", i ? "\n" : "",
					   cs[i].manager, cs[i].api);
			fk_appendf(&msg, &len, &cap, "\n- %s", cs[i].field);
		}
	}
	for (size_t i = 0; i < n; i++) {
		char m[300];

		snprintf(m, sizeof(m), "conflict with \"%s\" using %s", cs[i].manager, cs[i].api);
		json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason", "FieldManagerConflict",
							"message", m, "field", cs[i].field));
	}
	details = json_pack("{s:o}", "causes", causes);
	fk_reply_json(c->r, 409, fk_status_new(409, "Conflict", msg != NULL ? msg : "Apply failed", details));
	free(msg);
}

int
fk_apply(struct fk_ctx *c, const json_t *live, const json_t *config, bool force, json_t **ret)
{
	json_t *result = live != NULL ? json_deep_copy(live) : json_object();
	json_t *mf, *me, *prev, *next, *cfg_t, *ls_next = NULL, *ls_prev = NULL, *p, *o;
	struct conflict *cs = NULL;
	struct tinfo ti = root_info(c);
	size_t ncs = 0, i, j;
	const char *rv = fk_meta_str(config, "resourceVersion");
	int r = -EBUSY;

	if (live != NULL && rv != NULL && rv[0] != '\0' && strcmp(rv, fk_meta_str(live, "resourceVersion")) != 0) {
		fk_reply_conflict(c->r, c->t, c->name, NULL);
		json_decref(result);
		return -EBUSY;
	}
	if (live == NULL && c->status_only) {
		fk_reply_not_found(c->r, c->t, c->name);
		json_decref(result);
		return -ENOENT;
	}
	cfg_t = tracked(config, c->status_only);
	next = fs_object(cfg_t, &ti);
	mf = managed(result);
	me = entry(c, mf, "Apply");
	prev = json_deep_copy(json_object_get(me, "fieldsV1"));
	ls_next = all_leaves(next);
	cs = calloc(APPLY_CONFLICTS_MAX, sizeof(*cs));
	/* conflicts: a field set to another value than another manager set it to */
	json_array_foreach(ls_next, i, p) {
		json_t *lv = resolve(result, p, json_array_size(p));
		json_t *cv = resolve(cfg_t, p, json_array_size(p));

		if (lv == NULL || strcmp(json_string_value(json_array_get(p, json_array_size(p) - 1)), ".") == 0 ||
		    fk_json_equal(lv, cv))
			continue;
		json_array_foreach(mf, j, o) {
			json_t *set = json_object_get(o, "fieldsV1");

			if (o == me || (strcmp(entry_sub(o), "status") == 0) != c->status_only || !has_path(set, p))
				continue;
			if (force) {
				remove_path(set, p, 0);
				continue;
			}
			if (cs != NULL && ncs < APPLY_CONFLICTS_MAX) {
				snprintf(cs[ncs].manager, sizeof(cs[ncs].manager), "%s", fk_jstr(o, "manager") ? fk_jstr(o, "manager") : "");
				snprintf(cs[ncs].api, sizeof(cs[ncs].api), "%s", fk_jstr(o, "apiVersion") ? fk_jstr(o, "apiVersion") : "");
				path_text(p, cs[ncs].field, sizeof(cs[ncs].field));
				ncs++;
			}
		}
	}
	if (ncs > 0) {
		reply_conflicts(c, cs, ncs);
		goto out;
	}
	/* fields applied before and not now: removed unless someone else owns them */
	ls_prev = all_leaves(prev);
	for (i = json_array_size(ls_prev); i-- > 0;) {
		bool owned = false;

		p = json_array_get(ls_prev, i);
		if (has_path(next, p))
			continue;
		json_array_foreach(mf, j, o) {
			if (o != me && has_path(json_object_get(o, "fieldsV1"), p))
				owned = true;
		}
		if (!owned)
			remove_value(result, p);
	}
	{
		json_t *merged = merge_value(result, cfg_t, &ti);

		json_decref(result);
		result = merged;
	}
	/* the config's identity: apiVersion, kind, name, namespace */
	json_object_set(result, "apiVersion", json_object_get(config, "apiVersion"));
	json_object_set(result, "kind", json_object_get(config, "kind"));
	if (fk_meta_str(config, "name") != NULL)
		json_object_set(fk_meta(result), "name", json_object_get(json_object_get(config, "metadata"), "name"));
	if (fk_meta_str(config, "namespace") != NULL)
		json_object_set(fk_meta(result), "namespace",
				json_object_get(json_object_get(config, "metadata"), "namespace"));
	mf = managed(result);
	me = entry(c, mf, "Apply");
	json_object_set(me, "fieldsV1", next);
	drop_empty(mf);
	*ret = result;
	result = NULL;
	r = 0;
out:
	free(cs);
	json_decref(ls_next);
	json_decref(ls_prev);
	json_decref(prev);
	json_decref(next);
	json_decref(cfg_t);
	json_decref(result);
	return r;
}
