/* openapi.c — OpenAPI v3 as far as clients use it: the /openapi/v3 index with a hash per
 * group-version, and per group-version the paths with their operations (kubectl checks
 * that PATCH takes fieldValidation before it validates on the server) and the schemas
 * (`kubectl explain`): a CRD's own openAPIV3Schema, and the top-level fields of the
 * built-in kinds. */
#include "fake.h"

#include <stdlib.h>
#include <string.h>

static unsigned long long
fnv(const char *s, unsigned long long h)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void
gv_path(const struct fk_rtype *t, const char *version, char *out, size_t len)
{
	if (t->group[0] == '\0')
		snprintf(out, len, "api/%s", version);
	else
		snprintf(out, len, "apis/%s/%s", t->group, version);
}

/* "io.k8s.api.core.v1.Secret", or "com.example.v1.Widget" for a CRD of example.com. */
static void
schema_id(const struct fk_rtype *t, const char *version, char *out, size_t len)
{
	static const struct { const char *group, *pkg; } builtin[] = {
		{ "", "io.k8s.api.core" },
		{ "apps", "io.k8s.api.apps" },
		{ "events.k8s.io", "io.k8s.api.events" },
		{ "networking.k8s.io", "io.k8s.api.networking" },
		{ "policy", "io.k8s.api.policy" },
		{ "rbac.authorization.k8s.io", "io.k8s.api.rbac" },
		{ "coordination.k8s.io", "io.k8s.api.coordination" },
		{ "apiextensions.k8s.io", "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions" },
	};
	char rev[FK_GROUP_MAX] = "";
	size_t o = 0;

	if (!(t->flags & FK_CRD)) {
		for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
			if (strcmp(builtin[i].group, t->group) == 0) {
				snprintf(out, len, "%s.%s.%s", builtin[i].pkg, version, t->kind);
				return;
			}
		}
	}
	/* reverse the group's labels */
	for (const char *end = t->group + strlen(t->group); end > t->group;) {
		const char *start = end;

		while (start > t->group && start[-1] != '.')
			start--;
		int n = snprintf(rev + o, sizeof(rev) - o, "%s%.*s", o ? "." : "", (int)(end - start), start);
		if (n < 0 || (size_t)n >= sizeof(rev) - o)
			break;
		o += (size_t)n;
		end = start > t->group ? start - 1 : start;
	}
	snprintf(out, len, "%s.%s.%s", rev, version, t->kind);
}

json_t *
fk_openapi_v3_root(struct fk_state *st)
{
	json_t *paths = json_object();
	char gv[400], url[600];

	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		for (unsigned v = 0; v < t->nversions; v++) {
			if (!t->versions[v].served)
				continue;
			gv_path(t, t->versions[v].name, gv, sizeof(gv));
			snprintf(url, sizeof(url), "/openapi/v3/%s?hash=%016llX", gv,
				 fnv(gv, 14695981039346656037ULL ^ (st->reg.generation * 0x9E3779B97F4A7C15ULL)));
			json_object_set_new(paths, gv, json_pack("{s:s}", "serverRelativeURL", url));
		}
	}
	return json_pack("{s:o}", "paths", paths);
}

static json_t *
param(const char *name, const char *in, bool required)
{
	return json_pack("{s:s,s:s,s:b,s:{s:s},s:b}", "name", name, "in", in, "required", required,
			 "schema", "type", "string", "uniqueItems", true);
}

static json_t *
op(const struct fk_rtype *t, const char *version, const char *action, const char *opid,
   const char *ref, bool body)
{
	json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:[],s:{s:{s:s,s:{s:{s:{s:s}}}}}}", "operationId", opid,
			      "x-kubernetes-action", action, "x-kubernetes-group-version-kind", "group",
			      t->group, "version", version, "kind", t->kind, "parameters", "responses", "200",
			      "description", "OK", "content", "application/json", "schema", "$ref", ref);
	json_t *params = json_object_get(o, "parameters");

	if (body) {
		json_array_append_new(params, param("dryRun", "query", false));
		json_array_append_new(params, param("fieldManager", "query", false));
		json_array_append_new(params, param("fieldValidation", "query", false));
		if (strcmp(action, "patch") == 0)
			json_array_append_new(params, param("force", "query", false));
		json_object_set_new(o, "requestBody", json_pack("{s:{s:{s:{s:s}}},s:b}", "content",
			strcmp(action, "patch") == 0 ? "application/merge-patch+json" : "application/json",
			"schema", "$ref", strcmp(action, "patch") == 0 ? "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch" : ref,
			"required", true));
	}
	if (strcmp(action, "list") == 0 || strcmp(action, "watchlist") == 0) {
		static const char *const q[] = { "labelSelector", "fieldSelector", "limit", "continue",
						 "resourceVersion", "resourceVersionMatch", "watch",
						 "allowWatchBookmarks", "timeoutSeconds", "sendInitialEvents", NULL };
		for (size_t i = 0; q[i] != NULL; i++)
			json_array_append_new(params, param(q[i], "query", false));
	}
	return o;
}

static json_t *
props(const char *spec)
{
	/* "name:type,name:type" */
	json_t *p = json_object();
	const char *s = spec;

	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		char item[128], *colon;

		snprintf(item, sizeof(item), "%.*s", (int)n, s);
		if ((colon = strchr(item, ':')) != NULL) {
			const char *type = colon + 1;

			*colon = '\0';
			/* "map": of strings; "strings": an array of them; "array": of objects */
			if (strcmp(type, "map") == 0)
				json_object_set_new(p, item, json_pack("{s:s,s:{s:s}}", "type", "object",
						    "additionalProperties", "type", "string"));
			else if (strcmp(type, "strings") == 0)
				json_object_set_new(p, item, json_pack("{s:s,s:{s:s}}", "type", "array", "items",
						    "type", "string"));
			else if (strcmp(type, "array") == 0)
				json_object_set_new(p, item, json_pack("{s:s,s:{s:s}}", "type", "array", "items",
						    "type", "object"));
			else
				json_object_set_new(p, item, json_pack("{s:s}", "type", type));
		}
		s += n;
		if (*s == ',')
			s++;
	}
	return p;
}

/* The top-level fields of the built-in kinds. */
static json_t *
builtin_schema(const struct fk_rtype *t)
{
	const char *fields;

	switch (t->hook) {
	case FK_HOOK_SECRET: fields = "data:map,stringData:map,type:string,immutable:boolean"; break;
	case FK_HOOK_CONFIGMAP: fields = "data:map,binaryData:map,immutable:boolean"; break;
	case FK_HOOK_SERVICEACCOUNT: fields = "secrets:array,imagePullSecrets:array,automountServiceAccountToken:boolean"; break;
	case FK_HOOK_EVENT: fields = "involvedObject:object,reason:string,message:string,type:string,source:object,count:integer,firstTimestamp:string,lastTimestamp:string,eventTime:string,action:string,related:object,reportingComponent:string,reportingInstance:string,series:object"; break;
	case FK_HOOK_EVENTS_V1: fields = "regarding:object,reason:string,note:string,type:string,eventTime:string,action:string,related:object,reportingController:string,reportingInstance:string,series:object,deprecatedSource:object,deprecatedCount:integer,deprecatedFirstTimestamp:string,deprecatedLastTimestamp:string"; break;
	case FK_HOOK_RBAC:
		fields = strstr(t->kind, "Binding") != NULL ? "roleRef:object,subjects:array" : "rules:array,aggregationRule:object";
		break;
	default: fields = "spec:object,status:object"; break;
	}
	json_t *s = json_pack("{s:s,s:o}", "type", "object", "properties", props(fields));
	return s;
}

static json_t *
object_meta(void)
{
	return json_pack("{s:s,s:s,s:o}", "type", "object", "description",
			 "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
			 "properties", props("name:string,generateName:string,namespace:string,uid:string,"
					     "resourceVersion:string,generation:integer,creationTimestamp:string,"
					     "deletionTimestamp:string,labels:map,annotations:map,"
					     "ownerReferences:array,finalizers:strings,managedFields:array"));
}

static json_t *
kind_schema(const struct fk_rtype *t, unsigned vi)
{
	json_t *s = t->versions[vi].schema != NULL ? json_deep_copy(t->versions[vi].schema) : builtin_schema(t);
	json_t *p = fk_jobj_ensure(s, "properties");

	json_object_set_new(p, "apiVersion", json_pack("{s:s,s:s}", "type", "string", "description",
		"APIVersion defines the versioned schema of this representation of an object."));
	json_object_set_new(p, "kind", json_pack("{s:s,s:s}", "type", "string", "description",
		"Kind is a string value representing the REST resource this object represents."));
	json_object_set_new(p, "metadata", json_pack("{s:[{s:s}],s:{},s:s}", "allOf", "$ref",
		"#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "default",
		"description", "Standard object's metadata."));
	json_object_set_new(s, "x-kubernetes-group-version-kind", json_pack("[{s:s,s:s,s:s}]", "group", t->group,
		"version", t->versions[vi].name, "kind", t->kind));
	return s;
}

json_t *
fk_openapi_v3_doc(struct fk_state *st, const char *gvpath)
{
	json_t *doc = NULL, *paths = json_object(), *schemas = json_object();
	char gv[400], base[600], id[600], ref[700], opid[300];
	bool any = false;

	for (unsigned i = 0; i < st->reg.n; i++) {
		struct fk_rtype *t = st->reg.types[i];

		for (unsigned v = 0; v < t->nversions; v++) {
			const char *ver = t->versions[v].name;
			json_t *coll, *item;

			if (!t->versions[v].served)
				continue;
			gv_path(t, ver, gv, sizeof(gv));
			if (strcmp(gv, gvpath) != 0)
				continue;
			any = true;
			schema_id(t, ver, id, sizeof(id));
			snprintf(ref, sizeof(ref), "#/components/schemas/%s", id);
			json_object_set_new(schemas, id, kind_schema(t, v));
			snprintf(base, sizeof(base), "/%s%s/%s", gv, t->namespaced ? "/namespaces/{namespace}" : "", t->plural);
			snprintf(opid, sizeof(opid), "list%s", t->kind);
			coll = json_pack("{s:o,s:o}", "get", op(t, ver, "list", opid, ref, false), "post",
					 op(t, ver, "post", opid, ref, true));
			json_object_set_new(paths, base, coll);
			snprintf(opid, sizeof(opid), "patch%s", t->kind);
			item = json_pack("{s:o,s:o,s:o,s:o,s:[o]}", "get", op(t, ver, "get", opid, ref, false),
					 "put", op(t, ver, "put", opid, ref, true), "patch",
					 op(t, ver, "patch", opid, ref, true), "delete",
					 op(t, ver, "delete", opid, ref, false), "parameters",
					 param("name", "path", true));
			if (t->namespaced)
				json_array_append_new(json_object_get(item, "parameters"), param("namespace", "path", true));
			snprintf(base + strlen(base), sizeof(base) - strlen(base), "/{name}");
			json_object_set_new(paths, base, item);
			if (t->versions[v].status) {
				snprintf(base + strlen(base), sizeof(base) - strlen(base), "/status");
				json_object_set_new(paths, base, json_pack("{s:o,s:o,s:o}", "get",
					op(t, ver, "get", opid, ref, false), "put", op(t, ver, "put", opid, ref, true),
					"patch", op(t, ver, "patch", opid, ref, true)));
			}
		}
	}
	if (!any) {
		json_decref(paths);
		json_decref(schemas);
		return NULL;
	}
	json_object_set_new(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", object_meta());
	json_object_set_new(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
			    json_pack("{s:s,s:s}", "type", "object", "description",
				      "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."));
	doc = json_pack("{s:s,s:{s:s,s:s},s:o,s:{s:o}}", "openapi", "3.0.0", "info", "title", "Kubernetes",
			"version", "v1.31.0", "paths", paths, "components", "schemas", schemas);
	return doc;
}
