/* crud.c — the resource verbs: get, list (selectors, pagination, resourceVersion
 * semantics), watch (watch.c), create, update, patch (merge, JSON, strategic, apply),
 * delete (preconditions, propagation, finalizers), deletecollection, the /status and
 * /finalize subresources and the TokenRequest API. st->lock is held throughout. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Characters generateName appends. */
#define CRUD_GENERATE_SUFFIX 5
/* Longest fieldManager. */
#define CRUD_MANAGER_MAX 128
/* Objects one deletecollection deletes. */
#define CRUD_DELETECOLLECTION_MAX 10000

static bool
qtrue(const struct fk_request *r, const char *key)
{
	const char *v = fk_req_query(r, key);

	return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

static const char *
content_type(const struct fk_request *r, char *buf, size_t len)
{
	const char *ct = fk_req_header(r, "Content-Type");
	size_t n;

	if (ct == NULL)
		return "";
	n = strcspn(ct, ";");
	snprintf(buf, len, "%.*s", (int)n, ct);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return buf;
}

json_t *
fk_decode_body(struct fk_ctx *c, bool allow_yaml)
{
	struct fk_request *r = c->r;
	char ctbuf[128], err[512];
	const char *ct = content_type(r, ctbuf, sizeof(ctbuf));
	json_error_t jerr;
	json_t *v = NULL;
	int e;

	if (strcmp(ct, "application/vnd.kubernetes.protobuf") == 0) {
		if ((e = fk_proto_decode(r->body, r->body_len, &v, err, sizeof(err))) == -ENOTSUP) {
			fk_reply_status(r, 415, "UnsupportedMediaType", NULL, "%s", err);
			return NULL;
		}
		if (e < 0) {
			fk_reply_bad_request(r, "%s", err);
			return NULL;
		}
		return v;
	}
	if (strcmp(ct, "application/cbor") == 0 ||
	    (ct[0] != '\0' && strcmp(ct, "application/json") != 0 && strcmp(ct, "application/yaml") != 0 &&
	     strcmp(ct, "application/apply-patch+yaml") != 0 && strncmp(ct, "application/", 12) != 0)) {
		fk_reply_status(r, 415, "UnsupportedMediaType", NULL,
				"the body of the request was in an unknown format - accepted media types "
				"include: application/json, application/yaml");
		return NULL;
	}
	if (allow_yaml || strcmp(ct, "application/yaml") == 0) {
		if (fk_yaml_parse(r->body, r->body_len, &v, err, sizeof(err)) < 0) {
			fk_reply_bad_request(r, "%s", err);
			return NULL;
		}
	} else if ((v = json_loadb(r->body, r->body_len, 0, &jerr)) == NULL) {
		fk_reply_bad_request(r, "couldn't get version/kind; json parse error: %s (line %d, column %d)",
				     jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	return v;
}

static void
gv_of(const struct fk_rtype *t, unsigned vi, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", t->group, t->group[0] ? "/" : "", t->versions[vi].name);
}

/* The body's apiVersion and kind against the URL's; fills them in when missing. */
static int
check_type(struct fk_ctx *c, json_t *obj)
{
	const char *av = fk_jstr(obj, "apiVersion"), *kind = fk_jstr(obj, "kind");
	char gv[400];

	gv_of(c->t, c->version, gv, sizeof(gv));
	if (!json_is_object(obj)) {
		fk_reply_bad_request(c->r, "the body must be a JSON object");
		return -EINVAL;
	}
	if (kind != NULL && kind[0] != '\0' && strcmp(kind, c->t->kind) != 0) {
		fk_reply_bad_request(c->r, "%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" is registered for version \"%s\"",
				     kind, c->t->versions[c->version].name, c->t->kind, kind, av ? av : gv);
		return -EINVAL;
	}
	if (av != NULL && av[0] != '\0' && strcmp(av, gv) != 0) {
		const char *slash = strrchr(av, '/');
		size_t glen = slash != NULL ? (size_t)(slash - av) : 0;
		unsigned vi;

		if (strlen(c->t->group) != glen || strncmp(av, c->t->group, glen) != 0 ||
		    !fk_rtype_served(c->t, slash != NULL ? slash + 1 : av, &vi)) {
			fk_reply_bad_request(c->r, "the API version in the data (%s) does not match the expected API version (%s)",
					     av, gv);
			return -EINVAL;
		}
	}
	json_object_set_new(obj, "apiVersion", json_string(gv));
	json_object_set_new(obj, "kind", json_string(c->t->kind));
	return 0;
}

/* The object as the client sees it at the request's version. New reference. */
static json_t *
shown(struct fk_ctx *c, const json_t *stored)
{
	json_t *v = json_deep_copy(stored);

	if (v != NULL)
		fk_to_version(c->t, c->version, v);
	return v;
}

static void
reply_object(struct fk_ctx *c, unsigned code, const json_t *stored)
{
	json_t *v = shown(c, stored);

	if (v != NULL && fk_wants_table(c->r)) {
		json_t *tab = fk_table(c->st, c->t, c->version, &v, 1, fk_req_query(c->r, "includeObject"), true);

		json_decref(v);
		v = tab;
	}
	fk_reply_json(c->r, code, v);
}

static bool
namespace_ok(struct fk_ctx *c)
{
	struct fk_rtype *nst;
	struct fk_obj *o;
	char q[400];

	if (!c->t->namespaced)
		return true;
	nst = fk_rtype_find(c->st, "", "v1", "namespaces", NULL);
	o = nst != NULL ? fk_store_get(c->st, nst, c->ns) : NULL;
	if (o == NULL) {
		fk_reply_not_found(c->r, nst, c->ns);
		return false;
	}
	if (fk_meta_str(o->obj, "deletionTimestamp") != NULL) {
		fk_rtype_qualified(c->t, q, sizeof(q));
		fk_reply_status(c->r, 403, "Forbidden", fk_details(c->t, c->name, false),
				"%s \"%s\" is forbidden: unable to create new content in namespace %s because it is being terminated",
				q, c->name, c->ns);
		return false;
	}
	return true;
}

static const char *const server_meta[] = {
	"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
	"deletionGracePeriodSeconds", "generation", "selfLink", NULL
};

/* Removes the status (types with a status subresource) and decides unknown fields. */
static int
schema_check(struct fk_ctx *c, json_t *obj, struct fk_errors *e)
{
	const json_t *schema = c->t->versions[c->version].schema;
	json_t *unknown;
	size_t i;
	json_t *u;

	if (!(c->t->flags & FK_CRD) || schema == NULL)
		return 0;
	unknown = json_array();
	fk_schema_check(schema, obj, e, unknown);
	if (json_array_size(unknown) > 0) {
		if (strcmp(c->validation, "Strict") == 0) {
			char *msg = NULL;
			size_t len = 0, cap = 0;

			json_array_foreach(unknown, i, u)
				fk_appendf(&msg, &len, &cap, "%sunknown field \"%s\"", i ? ", " : "",
					   json_string_value(u));
			fk_reply_bad_request(c->r, "strict decoding error: %s", msg ? msg : "");
			free(msg);
			json_decref(unknown);
			return -EINVAL;
		}
		if (strcmp(c->validation, "Warn") == 0) {
			json_array_foreach(unknown, i, u)
				fk_warn(c->r, "unknown field \"%s\"", json_string_value(u));
		}
	}
	json_decref(unknown);
	return 0;
}

/* What every write checks; answers itself and returns < 0 on a 400 or 422. */
static int
validate(struct fk_ctx *c, const json_t *old, json_t *obj)
{
	struct fk_errors e;
	int r;

	fk_errors_init(&e);
	if ((r = schema_check(c, obj, &e)) < 0)
		goto out;
	if ((r = fk_validate(c, old, obj, &e)) < 0)
		goto out;
	if (fk_errors_any(&e)) {
		fk_reply_invalid(c->r, c->t, c->name, &e);
		r = -EINVAL;
	}
out:
	fk_errors_clear(&e);
	return r;
}

static void
set_manager(struct fk_ctx *c)
{
	const char *m = fk_req_query(c->r, "fieldManager");
	const char *ua = fk_req_header(c->r, "User-Agent");

	if (m != NULL && m[0] != '\0') {
		snprintf(c->manager, sizeof(c->manager), "%s", m);
		return;
	}
	/* kube-apiserver: the User-Agent up to its first '/' */
	snprintf(c->manager, sizeof(c->manager), "%.*s",
		 ua != NULL ? (int)strcspn(ua, "/") : 7, ua != NULL ? ua : "unknown");
}

static int
set_validation(struct fk_ctx *c)
{
	const char *v = fk_req_query(c->r, "fieldValidation");

	if (v == NULL || v[0] == '\0')
		c->validation = "Warn";
	else if (strcasecmp(v, "Strict") == 0)
		c->validation = "Strict";
	else if (strcasecmp(v, "Warn") == 0)
		c->validation = "Warn";
	else if (strcasecmp(v, "Ignore") == 0)
		c->validation = "Ignore";
	else {
		fk_reply_bad_request(c->r, "fieldValidation parameter unsupported: %s", v);
		return -EINVAL;
	}
	return 0;
}

static int
set_dry_run(struct fk_ctx *c)
{
	const char *d = fk_req_query(c->r, "dryRun");

	c->dry_run = false;
	if (d == NULL || d[0] == '\0')
		return 0;
	if (strcmp(d, "All") != 0) {
		fk_reply_bad_request(c->r, "dryRun: Unsupported value: \"%s\": supported values: \"All\"", d);
		return -EINVAL;
	}
	c->dry_run = true;
	return 0;
}

/* spec (everything outside metadata, and outside status for types with a /status) */
static bool
spec_changed(const struct fk_rtype *t, const json_t *a, const json_t *b)
{
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	bool changed;

	json_object_del(x, "metadata");
	json_object_del(y, "metadata");
	if (t->flags & FK_STATUS) {
		json_object_del(x, "status");
		json_object_del(y, "status");
	}
	changed = !fk_json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return changed;
}

/* Same object but for its version and managedFields: a no-op write. */
static bool
unchanged(const json_t *a, const json_t *b)
{
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	bool same;

	json_object_del(fk_meta(x), "resourceVersion");
	json_object_del(fk_meta(y), "resourceVersion");
	json_object_del(fk_meta(x), "managedFields");
	json_object_del(fk_meta(y), "managedFields");
	same = fk_json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return same;
}

static void
kick_if_owned(struct fk_state *st, const json_t *obj)
{
	if (json_array_size(json_object_get(json_object_get(obj, "metadata"), "ownerReferences")) > 0 ||
	    fk_meta_str(obj, "deletionTimestamp") != NULL)
		fk_gc_kick(st);
}

/* ---- create ---- */

static void
create_object(struct fk_ctx *c, json_t *obj, bool from_apply)
{
	struct fk_request *r = c->r;
	json_t *meta;
	const char *name, *gen, *bns, *rv;
	char key[FK_KEY_MAX], generated[FK_NAME_MAX], uid[37], now[32];
	int e;

	meta = fk_meta(obj);
	name = fk_jstr(meta, "name");
	gen = fk_jstr(meta, "generateName");
	if ((name == NULL || name[0] == '\0') && gen != NULL && gen[0] != '\0') {
		char suffix[CRUD_GENERATE_SUFFIX + 1];

		fk_random_alnum(suffix, CRUD_GENERATE_SUFFIX);
		snprintf(generated, sizeof(generated), "%.*s%s", 58, gen, suffix);
		json_object_set_new(meta, "name", json_string(generated));
		name = fk_jstr(meta, "name");
	}
	if (name == NULL || name[0] == '\0') {
		struct fk_errors er;

		fk_errors_init(&er);
		fk_error_add(&er, "FieldValueRequired", "metadata.name", "name or generateName is required");
		fk_reply_invalid(r, c->t, "", &er);
		goto out;
	}
	c->name = name;
	snprintf(r->name, sizeof(r->name), "%s", name);
	bns = fk_jstr(meta, "namespace");
	if (c->t->namespaced) {
		if (bns != NULL && bns[0] != '\0' && strcmp(bns, c->ns) != 0) {
			fk_reply_bad_request(r, "the namespace of the provided object does not match the namespace sent on the request");
			goto out;
		}
		json_object_set_new(meta, "namespace", json_string(c->ns));
	} else {
		json_object_del(meta, "namespace");
	}
	rv = fk_jstr(meta, "resourceVersion");
	if (rv != NULL && rv[0] != '\0' && !from_apply) {
		fk_reply_bad_request(r, "resourceVersion should not be set on objects to be created");
		goto out;
	}
	if (!namespace_ok(c))
		goto out;
	fk_obj_key(c->t, c->ns, name, key);
	if (fk_store_get(c->st, c->t, key) != NULL) {
		fk_reply_already_exists(r, c->t, name);
		goto out;
	}
	for (size_t i = 0; server_meta[i] != NULL; i++)
		json_object_del(meta, server_meta[i]);
	if (!from_apply)
		json_object_del(meta, "managedFields");
	if (c->t->flags & FK_STATUS)
		json_object_del(obj, "status");
	fk_prepare_create(c, obj);
	if (validate(c, NULL, obj) < 0)
		goto out;
	fk_uuid(uid);
	fk_now_rfc3339(now);
	json_object_set_new(meta, "uid", json_string(uid));
	json_object_set_new(meta, "creationTimestamp", json_string(now));
	if (c->t->flags & FK_GENERATION)
		json_object_set_new(meta, "generation", json_integer(1));
	if (!from_apply)
		fk_managed_update(c, NULL, obj);
	if (c->dry_run) {
		reply_object(c, 201, obj);
		goto out;
	}
	json_incref(obj);
	if ((e = fk_store_create(c->st, c->t, key, obj)) < 0) {
		if (e == -ENOSPC)
			fk_reply_status(r, 500, "InternalError", NULL,
					"Internal error occurred: the store holds its maximum of %ld objects",
					c->st->cfg->max_objects);
		else
			fk_reply_status(r, 500, "InternalError", NULL, "Internal error occurred: %s", strerror(-e));
		goto out;
	}
	fk_stats_write(&c->st->stats, "create", c->t, NULL, c->ns, false);
	fk_after_write(c, obj, true);
	kick_if_owned(c->st, obj);
	reply_object(c, 201, obj);
out:
	json_decref(obj);
}

/* ---- update ---- */

/* Writes obj (stolen) over the stored object at key; old borrowed. The common end of PUT,
 * PATCH and apply. */
static void
update_object(struct fk_ctx *c, const char *key, const json_t *old, json_t *obj, bool from_apply)
{
	struct fk_request *r = c->r;
	json_t *meta = fk_meta(obj), *oldmeta = json_object_get(old, "metadata");
	const char *rv = fk_jstr(meta, "resourceVersion"), *name = fk_jstr(meta, "name");
	const char *bns = fk_jstr(meta, "namespace");
	bool deleting, owners_changed;

	if (name == NULL || name[0] == '\0') {
		json_object_set_new(meta, "name", json_string(c->name));
	} else if (strcmp(name, c->name) != 0) {
		fk_reply_bad_request(r, "the name of the object (%s) does not match the name on the URL (%s)",
				     name, c->name);
		goto out;
	}
	if (c->t->namespaced) {
		if (bns != NULL && bns[0] != '\0' && strcmp(bns, c->ns) != 0) {
			fk_reply_bad_request(r, "the namespace of the provided object does not match the namespace sent on the request");
			goto out;
		}
		json_object_set_new(meta, "namespace", json_string(c->ns));
	} else {
		json_object_del(meta, "namespace");
	}
	if (rv != NULL && rv[0] != '\0') {
		if (strcmp(rv, fk_jstr(oldmeta, "resourceVersion")) != 0) {
			fk_reply_conflict(r, c->t, c->name, NULL);
			goto out;
		}
	} else if ((c->t->flags & FK_RV_REQUIRED) && strcmp(r->verb, "update") == 0) {
		struct fk_errors e;

		fk_errors_init(&e);
		fk_error_add(&e, "FieldValueInvalid", "metadata.resourceVersion",
			     "0x0: must be specified for an update");
		fk_reply_invalid(r, c->t, c->name, &e);
		goto out;
	}
	if (fk_faults_conflict(c->st, r)) {
		fk_reply_conflict(r, c->t, c->name, NULL);
		goto out;
	}
	/* What the client may not change. */
	for (size_t i = 0; server_meta[i] != NULL; i++) {
		json_t *v = json_object_get(oldmeta, server_meta[i]);

		if (v != NULL)
			json_object_set(meta, server_meta[i], v);
		else
			json_object_del(meta, server_meta[i]);
	}
	if (json_object_get(meta, "managedFields") == NULL && json_object_get(oldmeta, "managedFields") != NULL)
		json_object_set(meta, "managedFields", json_object_get(oldmeta, "managedFields"));
	if (c->status_only) {
		/* /status: only the status changes */
		json_t *status = json_incref(json_object_get(obj, "status"));
		json_t *managed = json_incref(json_object_get(meta, "managedFields"));
		json_t *copy = json_deep_copy(old);

		json_decref(obj);
		obj = copy;
		meta = fk_meta(obj);
		if (status != NULL)
			json_object_set_new(obj, "status", status);
		else
			json_object_del(obj, "status");
		if (managed != NULL)
			json_object_set_new(meta, "managedFields", managed);
	} else if (c->t->flags & FK_STATUS) {
		json_t *status = json_object_get(old, "status");

		if (status != NULL)
			json_object_set(obj, "status", status);
		else
			json_object_del(obj, "status");
	}
	fk_prepare_update(c, old, obj);
	if (validate(c, old, obj) < 0)
		goto out;
	if ((c->t->flags & FK_GENERATION) && spec_changed(c->t, old, obj))
		json_object_set_new(meta, "generation",
				    json_integer(json_integer_value(json_object_get(oldmeta, "generation")) + 1));
	if (!from_apply)
		fk_managed_update(c, old, obj);
	if (unchanged(old, obj)) {
		/* kube-apiserver does not write an unchanged object: no new version, no event */
		reply_object(c, 200, old);
		goto out;
	}
	deleting = fk_meta_str(obj, "deletionTimestamp") != NULL &&
		   json_array_size(json_object_get(meta, "finalizers")) == 0;
	if (c->dry_run) {
		reply_object(c, 200, obj);
		goto out;
	}
	if (deleting) {
		/* the last finalizer is gone: the update is the deletion */
		reply_object(c, 200, obj);
		fk_store_delete(c->st, c->t, key);
		fk_stats_write(&c->st->stats, "delete", c->t, c->status_only ? "status" : NULL, c->ns, false);
		fk_after_write(c, obj, false);
		fk_gc_kick(c->st);
		goto out;
	}
	owners_changed = !fk_json_equal(json_object_get(oldmeta, "ownerReferences"),
					json_object_get(meta, "ownerReferences"));
	json_incref(obj);
	if (fk_store_update(c->st, c->t, key, obj) < 0) {
		fk_reply_status(r, 500, "InternalError", NULL, "Internal error occurred: update failed");
		goto out;
	}
	fk_stats_write(&c->st->stats, strcmp(r->verb, "patch") == 0 ? "patch" : "update", c->t,
		       c->status_only ? "status" : NULL, c->ns, false);
	fk_after_write(c, obj, false);
	/* The collector has work when the owners changed or a deletion started; an update
	 * that leaves both alone (most: status, data) changes nothing it decides on. */
	if (owners_changed || fk_meta_str(obj, "deletionTimestamp") != NULL)
		fk_gc_kick(c->st);
	reply_object(c, 200, obj);
out:
	json_decref(obj);
}

static void
do_update(struct fk_ctx *c, const char *key)
{
	struct fk_obj *o = fk_store_get(c->st, c->t, key);
	json_t *obj;

	if ((obj = fk_decode_body(c, false)) == NULL)
		return;
	if (check_type(c, obj) < 0) {
		json_decref(obj);
		return;
	}
	if (o == NULL) {
		json_decref(obj);
		fk_reply_not_found(c->r, c->t, c->name);
		return;
	}
	fk_from_version(c->t, c->version, obj);
	if (strcmp(c->r->subresource, "finalize") == 0) {
		/* only spec.finalizers of a namespace */
		json_t *copy = json_deep_copy(o->obj);
		json_t *fins = json_object_get(fk_jobj(obj, "spec"), "finalizers");

		json_t *rv = json_object_get(fk_meta(obj), "resourceVersion");

		json_object_set_new(fk_jobj_ensure(copy, "spec"), "finalizers", fins != NULL ? json_incref(fins) : json_array());
		if (rv != NULL)
			json_object_set(fk_meta(copy), "resourceVersion", rv);
		else
			json_object_del(fk_meta(copy), "resourceVersion");
		json_decref(obj);
		obj = copy;
	}
	update_object(c, key, o->obj, obj, false);
}

/* ---- patch ---- */

static void
do_patch(struct fk_ctx *c, const char *key)
{
	struct fk_request *r = c->r;
	struct fk_obj *o = fk_store_get(c->st, c->t, key);
	char ctbuf[128], err[512];
	const char *ct = content_type(r, ctbuf, sizeof(ctbuf));
	json_t *patch = NULL, *cur = NULL, *result = NULL;
	bool apply = strcmp(ct, "application/apply-patch+yaml") == 0;

	if (strcmp(ct, "application/json-patch+json") != 0 && strcmp(ct, "application/merge-patch+json") != 0 &&
	    strcmp(ct, "application/strategic-merge-patch+json") != 0 && !apply) {
		fk_reply_unsupported_patch(r, c->t);
		return;
	}
	if (strcmp(ct, "application/strategic-merge-patch+json") == 0 && !(c->t->flags & FK_SMP)) {
		fk_reply_unsupported_patch(r, c->t);
		return;
	}
	if (apply && fk_req_query(r, "fieldManager") == NULL) {
		fk_reply_bad_request(r, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
		return;
	}
	if (apply) {
		char errbuf[512];

		if (fk_yaml_parse(r->body, r->body_len, &patch, errbuf, sizeof(errbuf)) < 0) {
			fk_reply_bad_request(r, "%s", errbuf);
			return;
		}
	} else if ((patch = json_loadb(r->body, r->body_len, 0, NULL)) == NULL) {
		fk_reply_bad_request(r, "error decoding patch: invalid JSON");
		return;
	}
	if (apply) {
		json_t *live;
		int e;

		if (check_type(c, patch) < 0)
			goto out;
		if (json_object_get(fk_jobj(patch, "metadata"), "managedFields") != NULL) {
			fk_reply_bad_request(r, "metadata.managedFields must be nil");
			goto out;
		}
		live = o != NULL ? shown(c, o->obj) : NULL;
		e = fk_apply(c, live, patch, qtrue(r, "force"), &result);
		json_decref(live);
		if (e < 0)
			goto out;
		fk_from_version(c->t, c->version, result);
		if (o == NULL) {
			if (c->status_only) {
				fk_reply_not_found(r, c->t, c->name);
				goto out;
			}
			create_object(c, result, true);
		} else {
			update_object(c, key, o->obj, result, true);
		}
		result = NULL;          /* taken */
		goto out;
	}
	if (o == NULL) {
		fk_reply_not_found(r, c->t, c->name);
		goto out;
	}
	cur = shown(c, o->obj);
	if (strcmp(ct, "application/json-patch+json") == 0) {
		if (fk_json_patch(&cur, patch, err, sizeof(err)) < 0) {
			if (!json_is_array(patch))
				fk_reply_bad_request(r, "%s", err);
			else
				fk_reply_status(r, 422, "Invalid", NULL, "%s", err);
			goto out;
		}
		result = json_incref(cur);
	} else if (strcmp(ct, "application/merge-patch+json") == 0) {
		if (!json_is_object(patch)) {
			fk_reply_bad_request(r, "json: cannot unmarshal %s into Go value of type map[string]interface {}",
					     json_is_array(patch) ? "array" : "value");
			goto out;
		}
		result = fk_merge_patch(cur, patch);
	} else {
		if ((result = fk_strategic_merge(cur, patch, err, sizeof(err))) == NULL) {
			fk_reply_bad_request(r, "%s", err);
			goto out;
		}
	}
	if (!json_is_object(result)) {
		fk_reply_bad_request(r, "the patch does not leave an object");
		goto out;
	}
	if (check_type(c, result) < 0)
		goto out;
	fk_from_version(c->t, c->version, result);
	update_object(c, key, o->obj, json_incref(result), false);
out:
	json_decref(patch);
	json_decref(cur);
	json_decref(result);
}

/* ---- delete ---- */

int
fk_delete_object(struct fk_state *st, struct fk_rtype *t, const char *key, const char *policy,
		 json_t **ret_obj)
{
	struct fk_obj *o = fk_store_get(st, t, key);
	json_t *obj, *meta, *fins;
	const char *add = NULL;
	bool changed = false;
	char now[32];

	if (o == NULL)
		return -ENOENT;
	obj = json_deep_copy(o->obj);
	meta = fk_meta(obj);
	fins = json_object_get(meta, "finalizers");
	if (policy != NULL && strcmp(policy, "Orphan") == 0)
		add = "orphan";
	else if (policy != NULL && strcmp(policy, "Foreground") == 0)
		add = "foregroundDeletion";
	if (add != NULL) {
		size_t i;
		json_t *f;
		bool have = false;

		json_array_foreach(fins, i, f) {
			if (json_is_string(f) && strcmp(json_string_value(f), add) == 0)
				have = true;
		}
		if (!have) {
			if (!json_is_array(fins)) {
				fins = json_array();
				json_object_set_new(meta, "finalizers", fins);
			}
			json_array_append_new(fins, json_string(add));
			changed = true;
		}
	}
	if (t->hook == FK_HOOK_NAMESPACE) {
		json_t *status = fk_jobj_ensure(obj, "status");

		if (strcmp(fk_jstr(status, "phase") ? fk_jstr(status, "phase") : "", "Terminating") != 0) {
			json_object_set_new(status, "phase", json_string("Terminating"));
			changed = true;
		}
	}
	if (json_array_size(fins) > 0 || t->hook == FK_HOOK_NAMESPACE) {
		if (fk_jstr(meta, "deletionTimestamp") == NULL) {
			fk_now_rfc3339(now);
			json_object_set_new(meta, "deletionTimestamp", json_string(now));
			json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(0));
			changed = true;
		}
		if (changed)
			fk_store_update(st, t, key, json_incref(obj));
		fk_gc_kick(st);
		if (ret_obj != NULL)
			*ret_obj = obj;
		else
			json_decref(obj);
		return -EAGAIN;
	}
	json_decref(obj);
	obj = json_incref(o->obj);
	fk_store_delete(st, t, key);
	if (t->hook == FK_HOOK_CRD)
		fk_registry_crd_sync(st, obj, true);
	fk_gc_kick(st);
	if (ret_obj != NULL)
		*ret_obj = obj;
	else
		json_decref(obj);
	return 0;
}

/* DeleteOptions from the body or the query. */
static int
delete_options(struct fk_ctx *c, const char **ret_policy, json_t **ret_opts)
{
	struct fk_request *r = c->r;
	json_t *opts = NULL;
	const char *p;

	if (r->body_len > 0) {
		if ((opts = json_loadb(r->body, r->body_len, 0, NULL)) == NULL || !json_is_object(opts)) {
			json_decref(opts);
			fk_reply_bad_request(r, "couldn't get version/kind; json parse error in DeleteOptions");
			return -EINVAL;
		}
	} else {
		opts = json_object();
	}
	p = fk_jstr(opts, "propagationPolicy");
	if (p == NULL)
		p = fk_req_query(r, "propagationPolicy");
	if (p == NULL) {
		json_t *orphan = json_object_get(opts, "orphanDependents");
		const char *q = fk_req_query(r, "orphanDependents");

		if (json_is_true(orphan) || (q != NULL && strcmp(q, "true") == 0))
			p = "Orphan";
	}
	if (p != NULL && strcmp(p, "Background") != 0 && strcmp(p, "Foreground") != 0 &&
	    strcmp(p, "Orphan") != 0) {
		fk_reply_status(r, 422, "Invalid", NULL, "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"%s\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"", p);
		json_decref(opts);
		return -EINVAL;
	}
	if (json_is_array(json_object_get(opts, "dryRun")) && json_array_size(json_object_get(opts, "dryRun")) > 0)
		c->dry_run = true;
	*ret_policy = p;
	*ret_opts = opts;
	return 0;
}

static void
do_delete(struct fk_ctx *c, const char *key)
{
	struct fk_request *r = c->r;
	struct fk_obj *o = fk_store_get(c->st, c->t, key);
	json_t *opts = NULL, *pre, *after = NULL;
	const char *policy = NULL, *puid, *prv;
	int e;

	if (delete_options(c, &policy, &opts) < 0)
		return;
	if (o == NULL) {
		fk_reply_not_found(r, c->t, c->name);
		goto out;
	}
	pre = fk_jobj(opts, "preconditions");
	puid = fk_jstr(pre, "uid");
	prv = fk_jstr(pre, "resourceVersion");
	if (puid != NULL && strcmp(puid, fk_meta_str(o->obj, "uid")) != 0) {
		fk_reply_status(r, 409, "Conflict", fk_details(c->t, c->name, false),
				"Precondition failed: UID in precondition: %s, UID in object meta: %s",
				puid, fk_meta_str(o->obj, "uid"));
		goto out;
	}
	if (prv != NULL && strcmp(prv, fk_meta_str(o->obj, "resourceVersion")) != 0) {
		fk_reply_status(r, 409, "Conflict", fk_details(c->t, c->name, false),
				"Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s",
				prv, fk_meta_str(o->obj, "resourceVersion"));
		goto out;
	}
	if (c->dry_run) {
		reply_object(c, 200, o->obj);
		goto out;
	}
	char uid[64];
	snprintf(uid, sizeof(uid), "%s", fk_meta_str(o->obj, "uid") ? fk_meta_str(o->obj, "uid") : "");
	e = fk_delete_object(c->st, c->t, key, policy, &after);
	if (e == -EAGAIN) {
		fk_stats_write(&c->st->stats, "update", c->t, NULL, c->ns, false);
		reply_object(c, 200, after);
	} else if (e == 0) {
		json_t *d = fk_details(c->t, c->name, false);

		fk_stats_write(&c->st->stats, "delete", c->t, NULL, c->ns, false);
		json_object_set_new(d, "uid", json_string(uid));
		fk_reply_json(r, 200, fk_status_new(200, NULL, NULL, d));
	} else {
		fk_reply_not_found(r, c->t, c->name);
	}
out:
	json_decref(after);
	json_decref(opts);
}

/* ---- get and list ---- */

static json_t *
partial_metadata(const json_t *obj)
{
	return json_pack("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata", "apiVersion", "meta.k8s.io/v1",
			 "metadata", json_object_get(obj, "metadata"));
}

static bool
wants_partial(const struct fk_request *r, const char *as)
{
	const char *a = fk_req_header(r, "Accept");

	return a != NULL && strstr(a, as) != NULL && strstr(a, "g=meta.k8s.io") != NULL &&
	       strstr(a, "as=Table") == NULL;
}

static void
do_get(struct fk_ctx *c, const char *key)
{
	struct fk_obj *o = fk_store_get(c->st, c->t, key);
	json_t *v;

	if (o == NULL) {
		fk_reply_not_found(c->r, c->t, c->name);
		return;
	}
	if (strcmp(c->r->subresource, "token") == 0 || strcmp(c->r->subresource, "finalize") == 0) {
		fk_reply_method_not_allowed(c->r);
		return;
	}
	if (wants_partial(c->r, "as=PartialObjectMetadata")) {
		v = shown(c, o->obj);
		fk_reply_json(c->r, 200, partial_metadata(v));
		json_decref(v);
		return;
	}
	reply_object(c, 200, o->obj);
}

static char *
continue_token(uint64_t rv, const char *key)
{
	json_t *t = json_pack("{s:s,s:I}", "v", "meta.k8s.io/v1", "rv", (json_int_t)rv);
	char start[FK_KEY_MAX + 1], *text, *out = NULL;
	size_t n = strlen(key);

	/* "start" is the last key and a NUL, as etcd3's keys: the next page begins after it */
	if (t == NULL || n >= FK_KEY_MAX) {
		json_decref(t);
		return NULL;
	}
	memcpy(start, key, n);
	start[n] = '\0';
	json_object_set_new(t, "start", json_stringn(start, n + 1));
	if ((text = fk_json_dump(t)) != NULL)
		out = fk_b64url_encode((unsigned char *)text, strlen(text));
	free(text);
	json_decref(t);
	return out;
}

static int
parse_continue(const char *tok, uint64_t *ret_rv, char *start, size_t startlen)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	json_t *t;
	const char *s;
	int r = -EINVAL;

	if (fk_b64url_decode(tok, &raw, &len) < 0)
		return -EINVAL;
	t = json_loadb((char *)raw, len, JSON_ALLOW_NUL, NULL);
	free(raw);
	s = fk_jstr(t, "start");
	if (t != NULL && s != NULL && json_is_integer(json_object_get(t, "rv")) &&
	    strcmp(fk_jstr(t, "v") ? fk_jstr(t, "v") : "", "meta.k8s.io/v1") == 0 &&
	    json_integer_value(json_object_get(t, "rv")) > 0) {
		*ret_rv = (uint64_t)json_integer_value(json_object_get(t, "rv"));
		snprintf(start, startlen, "%s", s);
		r = 0;
	}
	json_decref(t);
	return r;
}

static void
do_list(struct fk_ctx *c)
{
	struct fk_request *r = c->r;
	const char *ls = fk_req_query(r, "labelSelector"), *fs = fk_req_query(r, "fieldSelector");
	const char *lim = fk_req_query(r, "limit"), *cont = fk_req_query(r, "continue");
	const char *rvs = fk_req_query(r, "resourceVersion"), *match = fk_req_query(r, "resourceVersionMatch");
	struct fk_selector labels = { 0 }, fields = { 0 };
	struct fk_snap_item *items = NULL;
	size_t n = 0, i, taken = 0;
	long limit = 0;
	uint64_t rv = 0, list_rv;
	char err[512], start[FK_KEY_MAX] = "", rvbuf[32], gv[400];
	json_t **picked = NULL, *list, *arr;
	char *next = NULL;
	bool more = false;
	long remaining = 0;
	int e;

	if (ls != NULL && fk_label_selector_parse(ls, &labels, err, sizeof(err)) < 0) {
		fk_reply_bad_request(r, "unable to parse requirement: %s", err);
		return;
	}
	if (fs != NULL && (fk_field_selector_parse(fs, &fields, err, sizeof(err)) < 0 ||
			   fk_fields_supported(c->t, &fields, err, sizeof(err)) < 0)) {
		fk_reply_bad_request(r, "%s", err);
		goto out;
	}
	if (lim != NULL && lim[0] != '\0') {
		char *end;

		limit = strtol(lim, &end, 10);
		if (*end != '\0' || limit < 0)
			limit = 0;
	}
	if (match != NULL && match[0] != '\0' && (rvs == NULL || rvs[0] == '\0')) {
		fk_reply_bad_request(r, "resourceVersionMatch is forbidden unless resourceVersion is provided");
		goto out;
	}
	if (cont != NULL && cont[0] != '\0') {
		if (rvs != NULL && rvs[0] != '\0' && strcmp(rvs, "0") != 0) {
			fk_reply_bad_request(r, "specifying resource version is not allowed when using continue");
			goto out;
		}
		if (parse_continue(cont, &rv, start, sizeof(start)) < 0) {
			fk_reply_bad_request(r, "continue key is not valid: invalid continue token");
			goto out;
		}
		if (rv < c->st->hist.compact_rv && rv < c->st->rv) {
			char *fresh = continue_token(c->st->rv, start);
			json_t *s = fk_status_new(410, "Expired",
				"The provided continue parameter is too old to display a consistent list result. "
				"You can start a new list without the continue parameter, or use the continue "
				"token in this response to retrieve the remainder of the results. Continuing "
				"with the provided token results in an inconsistent list - objects that were "
				"created, modified, or deleted between the time the first chunk was returned "
				"and now may show up in the list.", NULL);

			/* as the real server: a token that goes on, inconsistently */
			if (s != NULL && fresh != NULL)
				json_object_set_new(fk_meta(s), "continue", json_string(fresh));
			free(fresh);
			fk_reply_json(r, 410, s);
			goto out;
		}
	} else if (rvs != NULL && rvs[0] != '\0' && strcmp(rvs, "0") != 0) {
		char *end;
		uint64_t want = strtoull(rvs, &end, 10);

		if (*end != '\0') {
			fk_reply_bad_request(r, "invalid resource version: %s", rvs);
			goto out;
		}
		if (want > c->st->rv) {
			fk_reply_status(r, 504, "Timeout", json_pack("{s:i}", "retryAfterSeconds", 1),
					"Timeout: Too large resource version: %llu, current: %llu",
					(unsigned long long)want, (unsigned long long)c->st->rv);
			goto out;
		}
		if (match != NULL && strcmp(match, "Exact") == 0)
			rv = want;
	} else if (match != NULL && strcmp(match, "Exact") == 0) {
		fk_reply_bad_request(r, "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"");
		goto out;
	}
	if (match != NULL && match[0] != '\0' && strcmp(match, "Exact") != 0 && strcmp(match, "NotOlderThan") != 0) {
		fk_reply_bad_request(r, "resourceVersionMatch: Unsupported value: \"%s\"", match);
		goto out;
	}
	e = fk_store_snapshot(c->st, c->t, rv, c->t->namespaced && c->ns[0] ? c->ns : NULL, &items, &n);
	if (e == -ESTALE) {
		fk_reply_status(r, 410, "Expired", NULL, "too old resource version: %llu (%llu)",
				(unsigned long long)rv, (unsigned long long)c->st->hist.compact_rv);
		goto out;
	}
	if (e < 0) {
		fk_reply_status(r, 500, "InternalError", NULL, "out of memory");
		goto out;
	}
	list_rv = rv != 0 ? rv : c->st->rv;
	picked = calloc(n + 1, sizeof(*picked));
	for (i = 0; picked != NULL && i < n; i++) {
		json_t *obj = items[i].obj;

		if (start[0] != '\0' && strcmp(items[i].key, start) <= 0)
			continue;
		if (!fk_labels_match(&labels, json_object_get(json_object_get(obj, "metadata"), "labels")) ||
		    !fk_fields_match(&fields, obj))
			continue;
		if (limit > 0 && (long)taken == limit) {
			more = true;
			remaining = (long)(n - i);
			break;
		}
		picked[taken++] = obj;
	}
	if (more && taken > 0) {
		/* the key of the last item returned */
		for (size_t k = 0; k < n; k++) {
			if (items[k].obj == picked[taken - 1]) {
				next = continue_token(list_rv, items[k].key);
				break;
			}
		}
	}
	snprintf(rvbuf, sizeof(rvbuf), "%llu", (unsigned long long)list_rv);
	for (i = 0; i < taken; i++) {
		json_t *v = shown(c, picked[i]);

		if (!(c->t->flags & FK_CRD)) {
			json_object_del(v, "kind");
			json_object_del(v, "apiVersion");
		}
		picked[i] = v;
	}
	if (fk_wants_table(r)) {
		list = fk_table(c->st, c->t, c->version, picked, taken, fk_req_query(r, "includeObject"), true);
	} else if (wants_partial(r, "as=PartialObjectMetadataList")) {
		list = json_pack("{s:s,s:s,s:{},s:[]}", "kind", "PartialObjectMetadataList", "apiVersion",
				 "meta.k8s.io/v1", "metadata", "items");
		for (i = 0; i < taken; i++)
			json_array_append_new(json_object_get(list, "items"), partial_metadata(picked[i]));
	} else {
		gv_of(c->t, c->version, gv, sizeof(gv));
		arr = json_array();
		for (i = 0; i < taken; i++)
			json_array_append(arr, picked[i]);
		list = json_pack("{s:s,s:s,s:{},s:o}", "kind", c->t->list_kind, "apiVersion", gv,
				 "metadata", "items", arr);
	}
	json_object_set_new(fk_meta(list), "resourceVersion", json_string(rvbuf));
	if (next != NULL) {
		json_object_set_new(fk_meta(list), "continue", json_string(next));
		if (labels.n == 0 && fields.n == 0)
			json_object_set_new(fk_meta(list), "remainingItemCount", json_integer(remaining));
	}
	for (i = 0; i < taken; i++)
		json_decref(picked[i]);
	fk_reply_json(r, 200, list);
out:
	free(next);
	free(picked);
	fk_snapshot_free(items, n);
	fk_selector_clear(&labels);
	fk_selector_clear(&fields);
}

static void
do_delete_collection(struct fk_ctx *c)
{
	struct fk_request *r = c->r;
	const char *ls = fk_req_query(r, "labelSelector"), *fs = fk_req_query(r, "fieldSelector");
	struct fk_selector labels = { 0 }, fields = { 0 };
	struct fk_snap_item *items = NULL;
	size_t n = 0;
	json_t *opts = NULL, *arr = json_array();
	const char *policy = NULL;
	char err[512], gv[400], key[FK_KEY_MAX];

	if (delete_options(c, &policy, &opts) < 0)
		goto out;
	if (ls != NULL && fk_label_selector_parse(ls, &labels, err, sizeof(err)) < 0) {
		fk_reply_bad_request(r, "unable to parse requirement: %s", err);
		goto out;
	}
	if (fs != NULL && (fk_field_selector_parse(fs, &fields, err, sizeof(err)) < 0 ||
			   fk_fields_supported(c->t, &fields, err, sizeof(err)) < 0)) {
		fk_reply_bad_request(r, "%s", err);
		goto out;
	}
	if (fk_store_snapshot(c->st, c->t, 0, c->t->namespaced && c->ns[0] ? c->ns : NULL, &items, &n) < 0) {
		fk_reply_status(r, 500, "InternalError", NULL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && i < CRUD_DELETECOLLECTION_MAX; i++) {
		json_t *obj = items[i].obj, *after = NULL;

		if (!fk_labels_match(&labels, json_object_get(json_object_get(obj, "metadata"), "labels")) ||
		    !fk_fields_match(&fields, obj))
			continue;
		snprintf(key, sizeof(key), "%s", items[i].key);
		if (!c->dry_run && fk_delete_object(c->st, c->t, key, policy, &after) >= -EAGAIN) {
			fk_stats_write(&c->st->stats, "delete", c->t, NULL, fk_meta_str(obj, "namespace"), false);
		}
		json_t *v = shown(c, after != NULL ? after : obj);
		json_array_append_new(arr, v);
		json_decref(after);
	}
	gv_of(c->t, c->version, gv, sizeof(gv));
	fk_reply_json(r, 200, json_pack("{s:s,s:s,s:{},s:O}", "kind", c->t->list_kind, "apiVersion", gv,
					"metadata", "items", arr));
out:
	json_decref(arr);
	json_decref(opts);
	fk_snapshot_free(items, n);
	fk_selector_clear(&labels);
	fk_selector_clear(&fields);
}

/* ---- dispatch ---- */

void
fk_crud(struct fk_state *st, struct fk_request *r, struct fk_rtype *t, unsigned version)
{
	struct fk_ctx c = { .st = st, .r = r, .t = t, .version = version };
	const char *sub = r->subresource, *verb = r->verb;
	char key[FK_KEY_MAX];
	json_t *obj;

	c.ns = t->namespaced ? r->namespace : "";
	c.name = r->name;
	if (t->namespaced && r->namespace[0] == '\0' && r->name[0] != '\0') {
		fk_reply_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	if (!t->namespaced && r->namespace[0] != '\0' && t->hook != FK_HOOK_NAMESPACE) {
		fk_reply_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	if (sub[0] != '\0' &&
	    !(strcmp(sub, "status") == 0 && t->versions[version].status) &&
	    !(strcmp(sub, "token") == 0 && (t->flags & FK_TOKEN)) &&
	    !(strcmp(sub, "finalize") == 0 && (t->flags & FK_FINALIZE))) {
		fk_reply_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	if (t->flags & FK_VIRTUAL) {
		fk_review(&c);
		return;
	}
	c.status_only = strcmp(sub, "status") == 0;
	set_manager(&c);
	if (set_validation(&c) < 0 || set_dry_run(&c) < 0)
		return;
	fk_obj_key(t, c.ns, c.name, key);

	if (strcmp(verb, "get") == 0) {
		do_get(&c, key);
	} else if (strcmp(verb, "list") == 0) {
		do_list(&c);
	} else if (strcmp(verb, "watch") == 0) {
		fk_watch_start(st, r, t, version, c.ns[0] ? c.ns : NULL, r->name[0] ? r->name : NULL);
	} else if (strcmp(verb, "create") == 0) {
		if (strcmp(sub, "token") == 0) {
			fk_token_request(&c, key);
			return;
		}
		if (r->name[0] != '\0') {
			fk_reply_method_not_allowed(r);
			return;
		}
		if ((obj = fk_decode_body(&c, false)) == NULL)
			return;
		if (check_type(&c, obj) < 0) {
			json_decref(obj);
			return;
		}
		fk_from_version(t, version, obj);
		create_object(&c, obj, false);
	} else if (strcmp(verb, "update") == 0) {
		if (strcmp(sub, "token") == 0) {
			fk_reply_method_not_allowed(r);
			return;
		}
		do_update(&c, key);
	} else if (strcmp(verb, "patch") == 0) {
		if (sub[0] != '\0' && !c.status_only) {
			fk_reply_method_not_allowed(r);
			return;
		}
		do_patch(&c, key);
	} else if (strcmp(verb, "delete") == 0) {
		if (sub[0] != '\0') {
			fk_reply_method_not_allowed(r);
			return;
		}
		do_delete(&c, key);
	} else if (strcmp(verb, "deletecollection") == 0) {
		if (t->flags & FK_NO_DELETECOLLECTION) {
			fk_reply_method_not_allowed(r);
			return;
		}
		do_delete_collection(&c);
	} else {
		fk_reply_method_not_allowed(r);
	}
}
