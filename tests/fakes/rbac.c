/* rbac.c — authorization of users other than the admin by the RBAC objects in the store,
 * as the RBAC authorizer decides: ClusterRoleBindings grant everywhere, RoleBindings in
 * their namespace; rules match apiGroups, resources (a resource, resource/subresource, "*", or
 * a star for any resource with a subresource),
 * verbs, resourceNames and nonResourceURLs. Discovery, /version and the health paths are
 * open to every authenticated user, as system:discovery and system:public-info-viewer
 * grant them, and self reviews to everyone, as system:basic-user does. Aggregation rules
 * are not evaluated. */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

static bool
in_list(const json_t *arr, const char *want, bool star)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		if (s != NULL && (strcmp(s, want) == 0 || (star && strcmp(s, "*") == 0)))
			return true;
	}
	return false;
}

static bool
has_group(const char *groups, const char *g)
{
	size_t n = strlen(g);
	const char *p = groups;

	while (*p != '\0') {
		size_t m = strcspn(p, ",");

		if (m == n && strncmp(p, g, n) == 0)
			return true;
		p += m;
		if (*p == ',')
			p++;
	}
	return false;
}

static bool
subject_matches(const json_t *s, const struct fk_user *u, const char *binding_ns)
{
	const char *kind = fk_jstr(s, "kind"), *name = fk_jstr(s, "name"), *ns = fk_jstr(s, "namespace");
	char sa[600];

	if (kind == NULL || name == NULL)
		return false;
	if (strcmp(kind, "User") == 0)
		return strcmp(name, u->name) == 0;
	if (strcmp(kind, "Group") == 0)
		return has_group(u->groups, name);
	if (strcmp(kind, "ServiceAccount") == 0) {
		snprintf(sa, sizeof(sa), "system:serviceaccount:%s:%s",
			 ns != NULL && ns[0] != '\0' ? ns : binding_ns, name);
		return strcmp(sa, u->name) == 0;
	}
	return false;
}

/* A resource rule against the request. */
static bool
rule_allows(const json_t *rule, const struct fk_request *r)
{
	char full[600], anysub[600];
	const json_t *names = json_object_get(rule, "resourceNames");

	if (!in_list(json_object_get(rule, "verbs"), r->verb, true))
		return false;
	if (r->resource[0] == '/' || r->resource[0] == '\0') {
		/* a non-resource path: exact, or a prefix ending in '*' */
		size_t i;
		json_t *v;

		json_array_foreach(json_object_get(rule, "nonResourceURLs"), i, v) {
			const char *s = json_string_value(v);
			size_t n = s != NULL ? strlen(s) : 0;

			if (s == NULL)
				continue;
			if (strcmp(s, r->path) == 0 || strcmp(s, "*") == 0 ||
			    (n > 0 && s[n - 1] == '*' && strncmp(s, r->path, n - 1) == 0))
				return true;
		}
		return false;
	}
	if (!in_list(json_object_get(rule, "apiGroups"), r->group, true))
		return false;
	if (r->subresource[0] != '\0') {
		snprintf(full, sizeof(full), "%s/%s", r->resource, r->subresource);
		snprintf(anysub, sizeof(anysub), "*/%s", r->subresource);
		if (!in_list(json_object_get(rule, "resources"), full, false) &&
		    !in_list(json_object_get(rule, "resources"), anysub, false) &&
		    !in_list(json_object_get(rule, "resources"), "*", false))
			return false;
	} else if (!in_list(json_object_get(rule, "resources"), r->resource, true)) {
		return false;
	}
	if (json_array_size(names) > 0) {
		if (r->name[0] == '\0')
			return false;
		return in_list(names, r->name, false);
	}
	return true;
}

static json_t *
role_rules(struct fk_state *st, const json_t *ref, const char *ns)
{
	const char *kind = fk_jstr(ref, "kind"), *name = fk_jstr(ref, "name");
	struct fk_rtype *t;
	struct fk_obj *o;
	char key[FK_KEY_MAX];

	if (kind == NULL || name == NULL)
		return NULL;
	t = fk_rtype_find(st, "rbac.authorization.k8s.io", "v1",
			  strcmp(kind, "ClusterRole") == 0 ? "clusterroles" : "roles", NULL);
	if (t == NULL)
		return NULL;
	fk_obj_key(t, ns, name, key);
	o = fk_store_get(st, t, key);
	return o != NULL ? json_object_get(o->obj, "rules") : NULL;
}

static bool
bindings_allow(struct fk_state *st, const struct fk_request *r, const char *plural, const char *ns)
{
	struct fk_rtype *t = fk_rtype_find(st, "rbac.authorization.k8s.io", "v1", plural, NULL);
	size_t nslen = ns != NULL ? strlen(ns) : 0;

	if (t == NULL)
		return false;
	for (size_t i = 0; i < t->bucket.n; i++) {
		struct fk_obj *o = &t->bucket.objs[i];
		json_t *subjects = json_object_get(o->obj, "subjects"), *s, *rules, *rule;
		const char *bns = fk_meta_str(o->obj, "namespace");
		bool mine = false;
		size_t j;

		if (ns != NULL && (strncmp(o->key, ns, nslen) != 0 || o->key[nslen] != '/'))
			continue;
		json_array_foreach(subjects, j, s) {
			if (subject_matches(s, &r->user, bns != NULL ? bns : ""))
				mine = true;
		}
		if (!mine)
			continue;
		/* a RoleBinding's Role lives in its namespace; ClusterRoles are cluster-wide */
		rules = role_rules(st, fk_jobj(o->obj, "roleRef"), bns);
		json_array_foreach(rules, j, rule) {
			if (rule_allows(rule, r))
				return true;
		}
	}
	return false;
}

static bool
public_for_authenticated(const char *path)
{
	static const char *const prefixes[] = { "/api", "/apis", "/openapi", "/version", "/healthz",
						"/livez", "/readyz", NULL };

	for (size_t i = 0; prefixes[i] != NULL; i++) {
		size_t n = strlen(prefixes[i]);

		if (strncmp(path, prefixes[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

bool
fk_authorized(struct fk_state *st, const struct fk_request *r)
{
	if (r->user.admin)
		return true;
	if (r->resource[0] == '/' || r->resource[0] == '\0') {
		if (public_for_authenticated(r->path) && (r->user.name[0] != '\0' ||
		    strcmp(r->path, "/version") == 0 || strcmp(r->path, "/healthz") == 0 ||
		    strcmp(r->path, "/livez") == 0 || strcmp(r->path, "/readyz") == 0))
			return true;
	}
	if (r->user.name[0] == '\0')
		return false;
	/* system:basic-user: everyone may ask who they are and what they may do */
	if (strcmp(r->verb, "create") == 0 &&
	    ((strcmp(r->group, "authorization.k8s.io") == 0 && strcmp(r->resource, "selfsubjectaccessreviews") == 0) ||
	     (strcmp(r->group, "authentication.k8s.io") == 0 && strcmp(r->resource, "selfsubjectreviews") == 0)))
		return true;
	if (bindings_allow(st, r, "clusterrolebindings", NULL))
		return true;
	if (r->namespace[0] != '\0' && r->resource[0] != '/' &&
	    bindings_allow(st, r, "rolebindings", r->namespace))
		return true;
	return false;
}
