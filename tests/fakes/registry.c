/* registry.c — the resource types served (the built-ins and those CRDs add at run time)
 * and the discovery documents built from them: /api, /api/v1, /apis, /apis/{g}[/{v}] and
 * the aggregated form kubectl ≥ 1.26 asks for (apidiscovery.k8s.io v2 and v2beta1). */
#include "fake.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct builtin {
	const char *group, *version, *plural, *singular, *kind;
	bool namespaced;
	const char *short_names;        /* comma-separated */
	const char *categories;
	unsigned flags;
	enum fk_hook hook;
	unsigned order;                 /* of its group in /apis */
};

#define STD (FK_SMP)
static const struct builtin builtins[] = {
	{ "", "v1", "configmaps", "configmap", "ConfigMap", true, "cm", "", STD, FK_HOOK_CONFIGMAP, 0 },
	{ "", "v1", "events", "event", "Event", true, "ev", "", STD, FK_HOOK_EVENT, 0 },
	{ "", "v1", "namespaces", "namespace", "Namespace", false, "ns", "",
	  STD | FK_STATUS | FK_NO_DELETECOLLECTION | FK_FINALIZE, FK_HOOK_NAMESPACE, 0 },
	{ "", "v1", "pods", "pod", "Pod", true, "po", "all", STD | FK_STATUS, FK_HOOK_POD, 0 },
	{ "", "v1", "secrets", "secret", "Secret", true, "", "", STD, FK_HOOK_SECRET, 0 },
	{ "", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, "sa", "",
	  STD | FK_TOKEN, FK_HOOK_SERVICEACCOUNT, 0 },
	{ "", "v1", "services", "service", "Service", true, "svc", "all", STD | FK_STATUS,
	  FK_HOOK_SERVICE, 0 },
	{ "apps", "v1", "deployments", "deployment", "Deployment", true, "deploy", "all",
	  STD | FK_STATUS | FK_GENERATION, FK_HOOK_DEPLOYMENT, 2 },
	{ "events.k8s.io", "v1", "events", "event", "Event", true, "ev", "", STD,
	  FK_HOOK_EVENTS_V1, 3 },
	{ "networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true,
	  "netpol", "", STD | FK_GENERATION, FK_HOOK_NETPOL, 9 },
	{ "policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget",
	  true, "pdb", "", STD | FK_STATUS | FK_GENERATION, FK_HOOK_PDB, 10 },
	{ "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
	  "ClusterRoleBinding", false, "", "", STD, FK_HOOK_RBAC, 11 },
	{ "rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false,
	  "", "", STD, FK_HOOK_RBAC, 11 },
	{ "rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true,
	  "", "", STD, FK_HOOK_RBAC, 11 },
	{ "rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, "", "", STD,
	  FK_HOOK_RBAC, 11 },
	{ "apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
	  "CustomResourceDefinition", false, "crd,crds", "api-extensions",
	  FK_STATUS | FK_GENERATION, FK_HOOK_CRD, 14 },
	{ "coordination.k8s.io", "v1", "leases", "lease", "Lease", true, "", "", STD | FK_RV_REQUIRED,
	  FK_HOOK_LEASE, 16 },
	{ "authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview",
	  false, "", "", FK_VIRTUAL, FK_HOOK_SELFSUBJECTREVIEW, 4 },
	{ "authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", false, "", "",
	  FK_VIRTUAL, FK_HOOK_TOKENREVIEW, 4 },
	{ "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
	  "SelfSubjectAccessReview", false, "", "", FK_VIRTUAL, FK_HOOK_ACCESSREVIEW, 5 },
};
#undef STD

/* Discovery order of CRD groups: after every built-in group, then by name. */
#define REGISTRY_CRD_ORDER 1000

static json_t *
split_list(const char *s)
{
	json_t *arr = json_array();
	const char *p = s;

	while (arr != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		json_array_append_new(arr, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	return arr;
}

static json_t *
standard_verbs(unsigned flags)
{
	json_t *v, *rest;

	if (flags & FK_VIRTUAL)
		return json_pack("[s]", "create");
	v = json_pack("[s,s]", "create", "delete");

	if (!(flags & FK_NO_DELETECOLLECTION))
		json_array_append_new(v, json_string("deletecollection"));
	rest = json_pack("[s,s,s,s,s]", "get", "list", "patch", "update", "watch");
	json_array_extend(v, rest);
	json_decref(rest);
	return v;
}

static void
rtype_free(struct fk_rtype *t)
{
	if (t == NULL)
		return;
	json_decref(t->short_names);
	json_decref(t->categories);
	json_decref(t->verbs);
	json_decref(t->crd);
	free(t->bucket.objs);
	free(t);
}

int
fk_registry_init(struct fk_state *st)
{
	struct fk_registry *reg = &st->reg;
	struct fk_rtype *core_events = NULL;

	memset(reg, 0, sizeof(*reg));
	reg->next_bucket_id = 1;
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		const struct builtin *b = &builtins[i];
		struct fk_rtype *t = calloc(1, sizeof(*t));

		if (t == NULL)
			return -ENOMEM;
		snprintf(t->group, sizeof(t->group), "%s", b->group);
		snprintf(t->plural, sizeof(t->plural), "%s", b->plural);
		snprintf(t->singular, sizeof(t->singular), "%s", b->singular);
		snprintf(t->kind, sizeof(t->kind), "%s", b->kind);
		snprintf(t->list_kind, sizeof(t->list_kind), "%sList", b->kind);
		t->namespaced = b->namespaced;
		t->flags = b->flags;
		t->hook = b->hook;
		t->order = b->order;
		t->short_names = split_list(b->short_names);
		t->categories = split_list(b->categories);
		t->verbs = standard_verbs(b->flags);
		t->nversions = 1;
		snprintf(t->versions[0].name, sizeof(t->versions[0].name), "%s", b->version);
		t->versions[0].served = t->versions[0].storage = true;
		t->versions[0].status = (b->flags & FK_STATUS) != 0;
		t->bucket.id = reg->next_bucket_id++;
		if (t->short_names == NULL || t->categories == NULL || t->verbs == NULL) {
			rtype_free(t);
			return -ENOMEM;
		}
		if (b->hook == FK_HOOK_EVENT)
			core_events = t;
		if (b->hook == FK_HOOK_EVENTS_V1)
			t->storage = core_events;
		reg->types[reg->n++] = t;
	}
	return 0;
}

void
fk_registry_clear(struct fk_registry *reg)
{
	for (unsigned i = 0; i < reg->n; i++)
		rtype_free(reg->types[i]);
	reg->n = 0;
}

bool
fk_rtype_served(const struct fk_rtype *t, const char *version, unsigned *ret_index)
{
	for (unsigned i = 0; i < t->nversions; i++) {
		if (t->versions[i].served && strcmp(t->versions[i].name, version) == 0) {
			if (ret_index != NULL)
				*ret_index = i;
			return true;
		}
	}
	return false;
}

struct fk_rtype *
fk_rtype_find(struct fk_state *st, const char *group, const char *version, const char *plural,
	      unsigned *ret_version)
{
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		if (strcmp(t->group, group) == 0 && strcmp(t->plural, plural) == 0 &&
		    fk_rtype_served(t, version, ret_version))
			return t;
	}
	return NULL;
}

struct fk_rtype *
fk_rtype_by_kind(struct fk_state *st, const char *group, const char *kind)
{
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		if (strcmp(t->group, group) == 0 && strcmp(t->kind, kind) == 0 && t->storage == NULL)
			return t;
	}
	return NULL;
}

struct fk_rtype *
fk_rtype_storage(struct fk_rtype *t)
{
	return t->storage != NULL ? t->storage : t;
}

const char *
fk_rtype_storage_version(const struct fk_rtype *t)
{
	for (unsigned i = 0; i < t->nversions; i++) {
		if (t->versions[i].storage)
			return t->versions[i].name;
	}
	return t->versions[0].name;
}

void
fk_rtype_qualified(const struct fk_rtype *t, char *out, size_t outlen)
{
	if (t->group[0] == '\0')
		snprintf(out, outlen, "%s", t->plural);
	else
		snprintf(out, outlen, "%s.%s", t->plural, t->group);
}

/* ---- CRDs ---- */

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Fills t from the CRD copy it owns. */
static int
crd_fill(struct fk_rtype *t, json_t *crd)
{
	json_t *spec = fk_jobj(crd, "spec"), *names = fk_jobj(spec, "names");
	json_t *versions = json_object_get(spec, "versions"), *v;
	const char *s;
	size_t i;

	snprintf(t->group, sizeof(t->group), "%s", fk_jstr(spec, "group") ? fk_jstr(spec, "group") : "");
	snprintf(t->plural, sizeof(t->plural), "%s", fk_jstr(names, "plural") ? fk_jstr(names, "plural") : "");
	snprintf(t->kind, sizeof(t->kind), "%s", fk_jstr(names, "kind") ? fk_jstr(names, "kind") : "");
	if ((s = fk_jstr(names, "singular")) != NULL && s[0] != '\0') {
		snprintf(t->singular, sizeof(t->singular), "%s", s);
	} else {
		snprintf(t->singular, sizeof(t->singular), "%s", t->kind);
		lower(t->singular);
	}
	if ((s = fk_jstr(names, "listKind")) != NULL && s[0] != '\0')
		snprintf(t->list_kind, sizeof(t->list_kind), "%s", s);
	else
		snprintf(t->list_kind, sizeof(t->list_kind), "%sList", t->kind);
	t->namespaced = strcmp(fk_jstr(spec, "scope") ? fk_jstr(spec, "scope") : "", "Cluster") != 0;
	json_decref(t->short_names);
	json_decref(t->categories);
	json_decref(t->verbs);
	t->short_names = json_is_array(json_object_get(names, "shortNames"))
			 ? json_deep_copy(json_object_get(names, "shortNames")) : json_array();
	t->categories = json_is_array(json_object_get(names, "categories"))
			? json_deep_copy(json_object_get(names, "categories")) : json_array();
	t->verbs = standard_verbs(0);
	t->flags = FK_CRD | FK_GENERATION | FK_RV_REQUIRED;
	t->hook = FK_HOOK_NONE;
	t->order = REGISTRY_CRD_ORDER;
	t->nversions = 0;
	json_array_foreach(versions, i, v) {
		struct fk_version *fv;

		if (t->nversions >= FK_VERSIONS_MAX)
			break;
		fv = &t->versions[t->nversions++];
		memset(fv, 0, sizeof(*fv));
		snprintf(fv->name, sizeof(fv->name), "%s", fk_jstr(v, "name") ? fk_jstr(v, "name") : "");
		fv->served = json_is_true(json_object_get(v, "served"));
		fv->storage = json_is_true(json_object_get(v, "storage"));
		fv->status = fk_jobj(fk_jobj(v, "subresources"), "status") != NULL;
		fv->schema = fk_jobj(fk_jobj(v, "schema"), "openAPIV3Schema");
		fv->columns = json_object_get(v, "additionalPrinterColumns");
		fv->selectable = json_object_get(v, "selectableFields");
		if (fv->status)
			t->flags |= FK_STATUS;
	}
	if (t->short_names == NULL || t->categories == NULL || t->verbs == NULL)
		return -ENOMEM;
	return 0;
}

static struct fk_rtype *
crd_type(struct fk_state *st, const char *crd_name, unsigned *ret_index)
{
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];
		const char *n = t->crd != NULL ? fk_meta_str(t->crd, "name") : NULL;

		if (n != NULL && strcmp(n, crd_name) == 0) {
			*ret_index = i;
			return t;
		}
	}
	return NULL;
}

int
fk_registry_crd_sync(struct fk_state *st, json_t *crd, bool deleted)
{
	struct fk_registry *reg = &st->reg;
	const char *name = fk_meta_str(crd, "name");
	unsigned idx = 0;
	struct fk_rtype *t = name != NULL ? crd_type(st, name, &idx) : NULL;
	json_t *copy;
	int r;

	if (name == NULL)
		return -EINVAL;
	reg->generation++;
	if (deleted) {
		if (t == NULL)
			return 0;
		fk_store_drop_bucket(st, t);
		memmove(&reg->types[idx], &reg->types[idx + 1],
			(reg->n - idx - 1) * sizeof(reg->types[0]));
		reg->n--;
		rtype_free(t);
		return 0;
	}
	if ((copy = json_deep_copy(crd)) == NULL)
		return -ENOMEM;
	if (t == NULL) {
		if (reg->n >= FK_RTYPES_MAX) {
			json_decref(copy);
			return -ENOSPC;
		}
		if ((t = calloc(1, sizeof(*t))) == NULL) {
			json_decref(copy);
			return -ENOMEM;
		}
		t->bucket.id = reg->next_bucket_id++;
		reg->types[reg->n++] = t;
	}
	json_decref(t->crd);
	t->crd = copy;
	if ((r = crd_fill(t, copy)) < 0)
		return r;
	return 0;
}

/* ---- discovery ---- */

static int
cmp_types(const void *a, const void *b)
{
	const struct fk_rtype *x = *(struct fk_rtype *const *)a, *y = *(struct fk_rtype *const *)b;
	int c;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	if ((c = strcmp(x->group, y->group)) != 0)
		return c;
	return strcmp(x->plural, y->plural);
}

/* The types sorted by group order; *ret_n of them. Caller frees the array. */
static struct fk_rtype **
sorted_types(struct fk_state *st, size_t *ret_n)
{
	struct fk_rtype **v = malloc((st->reg.n + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	memcpy(v, st->reg.types, st->reg.n * sizeof(*v));
	qsort(v, st->reg.n, sizeof(*v), cmp_types);
	*ret_n = st->reg.n;
	return v;
}

/* The versions of group, preferred (the storage version of its first type) first. */
static json_t *
group_versions(struct fk_state *st, const char *group)
{
	json_t *out = json_array();

	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		if (strcmp(t->group, group) != 0)
			continue;
		for (unsigned v = 0; v < t->nversions; v++) {
			size_t j;
			json_t *have;
			bool seen = false;

			if (!t->versions[v].served)
				continue;
			json_array_foreach(out, j, have) {
				if (strcmp(json_string_value(have), t->versions[v].name) == 0)
					seen = true;
			}
			if (!seen)
				json_array_append_new(out, json_string(t->versions[v].name));
		}
	}
	/* Kubernetes version priority: GA before beta before alpha, higher numbers first. */
	size_t n = json_array_size(out);
	for (size_t a = 0; a < n; a++) {
		for (size_t b = a + 1; b < n; b++) {
			const char *x = json_string_value(json_array_get(out, a));
			const char *y = json_string_value(json_array_get(out, b));
			int rx = strstr(x, "alpha") ? 0 : strstr(x, "beta") ? 1 : 2;
			int ry = strstr(y, "alpha") ? 0 : strstr(y, "beta") ? 1 : 2;
			bool swap = ry > rx || (ry == rx && atoi(y + 1) > atoi(x + 1));

			if (swap) {
				json_t *tmp = json_incref(json_array_get(out, a));
				json_array_set(out, a, json_array_get(out, b));
				json_array_set_new(out, b, tmp);
			}
		}
	}
	return out;
}

json_t *
fk_discovery_api_versions(struct fk_state *st)
{
	const char *host = st->addr + strlen("https://");

	return json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions", "versions", "v1",
			 "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress", host);
}

static json_t *
group_object(struct fk_state *st, const char *group)
{
	json_t *versions = group_versions(st, group), *out, *v;
	size_t i;
	char gv[400];

	if (json_array_size(versions) == 0) {
		json_decref(versions);
		return NULL;
	}
	out = json_pack("{s:s,s:[]}", "name", group, "versions");
	json_array_foreach(versions, i, v) {
		snprintf(gv, sizeof(gv), "%s/%s", group, json_string_value(v));
		json_array_append_new(json_object_get(out, "versions"),
				      json_pack("{s:s,s:s}", "groupVersion", gv, "version", json_string_value(v)));
	}
	json_object_set(out, "preferredVersion", json_array_get(json_object_get(out, "versions"), 0));
	json_decref(versions);
	return out;
}

json_t *
fk_discovery_groups(struct fk_state *st)
{
	json_t *list = json_pack("{s:s,s:s,s:[]}", "kind", "APIGroupList", "apiVersion", "v1", "groups");
	json_t *groups = json_object_get(list, "groups");
	struct fk_rtype **v;
	size_t n = 0;
	const char *last = NULL;

	if ((v = sorted_types(st, &n)) == NULL) {
		json_decref(list);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i]->group[0] == '\0' || (last != NULL && strcmp(last, v[i]->group) == 0))
			continue;
		last = v[i]->group;
		json_t *g = group_object(st, v[i]->group);
		if (g != NULL)
			json_array_append_new(groups, g);
	}
	free(v);
	return list;
}

json_t *
fk_discovery_group(struct fk_state *st, const char *group)
{
	json_t *g = group_object(st, group);

	if (g == NULL)
		return NULL;
	json_object_set_new(g, "kind", json_string("APIGroup"));
	json_object_set_new(g, "apiVersion", json_string("v1"));
	return g;
}

/* The subresources of a type at a version: name, kind, group, version, verbs. */
struct sub {
	const char *name, *group, *version, *kind;
	json_t *verbs;
};

static unsigned
subresources(const struct fk_rtype *t, unsigned vi, struct sub *out)
{
	unsigned n = 0;

	if (t->versions[vi].status)
		out[n++] = (struct sub){ "status", NULL, NULL, NULL, json_pack("[s,s,s]", "get", "patch", "update") };
	if (t->flags & FK_FINALIZE)
		out[n++] = (struct sub){ "finalize", NULL, NULL, NULL, json_pack("[s]", "update") };
	if (t->flags & FK_TOKEN)
		out[n++] = (struct sub){ "token", "authentication.k8s.io", "v1", "TokenRequest",
					 json_pack("[s]", "create") };
	return n;
}

json_t *
fk_discovery_resources(struct fk_state *st, const char *group, const char *version)
{
	char gv[400];
	json_t *list, *res;
	bool any = false;

	snprintf(gv, sizeof(gv), "%s%s%s", group, group[0] != '\0' ? "/" : "", version);
	list = json_pack("{s:s,s:s,s:s,s:[]}", "kind", "APIResourceList", "apiVersion", "v1",
			 "groupVersion", gv, "resources");
	res = json_object_get(list, "resources");
	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];
		struct sub subs[4];
		unsigned vi, ns;
		json_t *r;

		if (strcmp(t->group, group) != 0 || !fk_rtype_served(t, version, &vi))
			continue;
		any = true;
		r = json_pack("{s:s,s:s,s:b,s:s,s:O}", "name", t->plural, "singularName", t->singular,
			      "namespaced", t->namespaced, "kind", t->kind, "verbs", t->verbs);
		if (json_array_size(t->short_names) > 0)
			json_object_set(r, "shortNames", t->short_names);
		if (json_array_size(t->categories) > 0)
			json_object_set(r, "categories", t->categories);
		json_array_append_new(res, r);
		ns = subresources(t, vi, subs);
		for (unsigned s = 0; s < ns; s++) {
			char name[200];

			snprintf(name, sizeof(name), "%s/%s", t->plural, subs[s].name);
			r = json_pack("{s:s,s:s,s:b,s:s,s:o}", "name", name, "singularName", "",
				      "namespaced", t->namespaced, "kind",
				      subs[s].kind != NULL ? subs[s].kind : t->kind, "verbs", subs[s].verbs);
			if (subs[s].group != NULL) {
				json_object_set_new(r, "group", json_string(subs[s].group));
				json_object_set_new(r, "version", json_string(subs[s].version));
			}
			json_array_append_new(res, r);
		}
	}
	if (!any) {
		json_decref(list);
		return NULL;
	}
	return list;
}

/* One resource in the aggregated form. */
static json_t *
aggregated_resource(const struct fk_rtype *t, unsigned vi)
{
	struct sub subs[4];
	unsigned ns = subresources(t, vi, subs);
	json_t *r, *arr;

	r = json_pack("{s:s,s:{s:s,s:s,s:s},s:s,s:s,s:O}", "resource", t->plural, "responseKind",
		      "group", t->group, "version", t->versions[vi].name, "kind", t->kind, "scope",
		      t->namespaced ? "Namespaced" : "Cluster", "singularResource", t->singular,
		      "verbs", t->verbs);
	if (json_array_size(t->short_names) > 0)
		json_object_set(r, "shortNames", t->short_names);
	if (json_array_size(t->categories) > 0)
		json_object_set(r, "categories", t->categories);
	if (ns > 0) {
		arr = json_array();
		for (unsigned s = 0; s < ns; s++) {
			json_array_append_new(arr, json_pack("{s:s,s:{s:s,s:s,s:s},s:o}", "subresource",
				subs[s].name, "responseKind", "group", subs[s].group ? subs[s].group : t->group,
				"version", subs[s].version ? subs[s].version : t->versions[vi].name,
				"kind", subs[s].kind ? subs[s].kind : t->kind, "verbs", subs[s].verbs));
		}
		json_object_set_new(r, "subresources", arr);
	}
	return r;
}

static json_t *
aggregated_group(struct fk_state *st, const char *group)
{
	json_t *versions = group_versions(st, group), *out, *vv, *v;
	size_t i;

	out = json_pack("{s:{s:s,s:n},s:[]}", "metadata", "name", group, "creationTimestamp", "versions");
	vv = json_object_get(out, "versions");
	json_array_foreach(versions, i, v) {
		json_t *res = json_array();

		for (unsigned k = 0; k < st->reg.n; k++) {
			struct fk_rtype *t = st->reg.types[k];
			unsigned vi;

			if (strcmp(t->group, group) == 0 && fk_rtype_served(t, json_string_value(v), &vi))
				json_array_append_new(res, aggregated_resource(t, vi));
		}
		json_array_append_new(vv, json_pack("{s:s,s:o,s:s}", "version", json_string_value(v),
						    "resources", res, "freshness", "Current"));
	}
	json_decref(versions);
	return out;
}

json_t *
fk_discovery_aggregated(struct fk_state *st, bool legacy, const char *v)
{
	char api[64];
	json_t *list, *items;
	struct fk_rtype **types;
	size_t n = 0;
	const char *last = NULL;

	snprintf(api, sizeof(api), "apidiscovery.k8s.io/%s", v);
	list = json_pack("{s:s,s:s,s:{},s:[]}", "kind", "APIGroupDiscoveryList", "apiVersion", api,
			 "metadata", "items");
	items = json_object_get(list, "items");
	if (legacy) {
		json_array_append_new(items, aggregated_group(st, ""));
		return list;
	}
	if ((types = sorted_types(st, &n)) == NULL) {
		json_decref(list);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (types[i]->group[0] == '\0' || (last != NULL && strcmp(last, types[i]->group) == 0))
			continue;
		last = types[i]->group;
		json_array_append_new(items, aggregated_group(st, types[i]->group));
	}
	free(types);
	return list;
}
