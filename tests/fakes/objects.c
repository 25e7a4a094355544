/* objects.c — what is particular to each kind: defaults on create, what an update keeps,
 * validation (the checks kube-apiserver makes that clients meet: names, labels, Secret
 * data, immutability, MicroTime, CRD names, ...), side effects (a namespace's default
 * objects, CRD registration), the events.k8s.io view of core events, and the objects a
 * fresh cluster starts with. */
#include "fake.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Total size of a ConfigMap's or Secret's values (FK_SECRET_MAX), and of annotations. */
#define OBJ_ANNOTATIONS_MAX (256u << 10)
/* The service network that ClusterIPs come from: 10.96.0.0/12, as kubeadm's default. */
#define OBJ_SERVICE_NET 0x0a600000u
#define OBJ_SERVICE_NET_SIZE (1u << 20)

/* ---- helpers ---- */

static bool
config_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > 253 || strcmp(k, ".") == 0 || strcmp(k, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)k[i]) && k[i] != '-' && k[i] != '_' && k[i] != '.')
			return false;
	}
	return true;
}

static bool
name_part_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	}
	return true;
}

static bool
qualified_name_ok(const char *k)
{
	const char *slash = strchr(k, '/');
	char prefix[256];

	if (slash == NULL)
		return name_part_ok(k, strlen(k));
	if ((size_t)(slash - k) >= sizeof(prefix))
		return false;
	memcpy(prefix, k, (size_t)(slash - k));
	prefix[slash - k] = '\0';
	return fk_valid_dns1123_subdomain(prefix) && name_part_ok(slash + 1, strlen(slash + 1));
}

static bool
path_segment_ok(const char *s)
{
	return s[0] != '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	       strchr(s, '/') == NULL && strchr(s, '%') == NULL;
}

/* ---- the events.k8s.io view ---- */

/* core Event field <-> events.k8s.io/v1 Event field */
static const char *const event_renames[][2] = {
	{ "message", "note" },
	{ "involvedObject", "regarding" },
	{ "related", "related" },
	{ "firstTimestamp", "deprecatedFirstTimestamp" },
	{ "lastTimestamp", "deprecatedLastTimestamp" },
	{ "count", "deprecatedCount" },
	{ "source", "deprecatedSource" },
	{ "reportingComponent", "reportingController" },
};

static void
rename_fields(json_t *obj, int from, int to)
{
	json_t *moved = json_object();

	for (size_t i = 0; i < sizeof(event_renames) / sizeof(event_renames[0]); i++) {
		json_t *v = json_object_get(obj, event_renames[i][from]);

		if (v != NULL) {
			json_object_set(moved, event_renames[i][to], v);
			json_object_del(obj, event_renames[i][from]);
		}
	}
	json_object_update(obj, moved);
	json_decref(moved);
}

/* Puts the keys named in first before the others, which keep their order. */
static void
order_keys(json_t *obj, const char *const *first)
{
	json_t *rest = json_copy(obj), *v;
	const char *k;

	if (rest == NULL)
		return;
	json_object_clear(obj);
	for (size_t i = 0; first[i] != NULL; i++) {
		if ((v = json_object_get(rest, first[i])) != NULL) {
			json_object_set(obj, first[i], v);
			json_object_del(rest, first[i]);
		}
	}
	json_object_foreach(rest, k, v)
		json_object_set(obj, k, v);
	json_decref(rest);
}

void
fk_to_version(const struct fk_rtype *t, unsigned version, json_t *obj)
{
	static const char *const top[] = { "kind", "apiVersion", "metadata", NULL };
	static const char *const meta[] = { "name", "generateName", "namespace", "uid", "resourceVersion",
					    "generation", "creationTimestamp", "deletionTimestamp",
					    "deletionGracePeriodSeconds", "labels", "annotations",
					    "ownerReferences", "finalizers", "managedFields", NULL };
	char gv[400];

	snprintf(gv, sizeof(gv), "%s%s%s", t->group, t->group[0] ? "/" : "", t->versions[version].name);
	if (t->hook == FK_HOOK_EVENTS_V1)
		rename_fields(obj, 0, 1);
	json_object_set_new(obj, "apiVersion", json_string(gv));
	json_object_set_new(obj, "kind", json_string(t->kind));
	/* kube-apiserver's order: kind, apiVersion, metadata (its fields as ObjectMeta has them) */
	if (fk_jobj(obj, "metadata") != NULL)
		order_keys(fk_jobj(obj, "metadata"), meta);
	order_keys(obj, top);
}

void
fk_from_version(const struct fk_rtype *t, unsigned version, json_t *obj)
{
	const struct fk_rtype *s = t->storage != NULL ? t->storage : t;
	char gv[400];

	(void)version;
	if (t->hook == FK_HOOK_EVENTS_V1)
		rename_fields(obj, 1, 0);
	snprintf(gv, sizeof(gv), "%s%s%s", s->group, s->group[0] ? "/" : "", fk_rtype_storage_version(s));
	json_object_set_new(obj, "apiVersion", json_string(gv));
	json_object_set_new(obj, "kind", json_string(s->kind));
}

/* ---- create defaults ---- */

static void
set_default(json_t *obj, const char *key, json_t *value)
{
	if (json_object_get(obj, key) == NULL)
		json_object_set_new(obj, key, value);
	else
		json_decref(value);
}

/* stringData into data (base64), as the Secret strategy does; stringData wins. */
static void
merge_string_data(json_t *obj)
{
	json_t *sd = json_object_get(obj, "stringData"), *data, *v;
	const char *k;

	if (json_is_object(sd)) {
		data = fk_jobj_ensure(obj, "data");
		json_object_foreach(sd, k, v) {
			const char *s = json_string_value(v);
			char *b;

			if (s == NULL)
				continue;
			if ((b = fk_b64_encode((const unsigned char *)s, strlen(s))) != NULL) {
				json_object_set_new(data, k, json_string(b));
				free(b);
			}
		}
	}
	json_object_del(obj, "stringData");
}

static void
service_defaults(struct fk_state *st, json_t *obj)
{
	json_t *spec = fk_jobj_ensure(obj, "spec"), *ports, *p;
	const char *ip = fk_jstr(spec, "clusterIP");
	char buf[32];
	size_t i;

	set_default(spec, "type", json_string("ClusterIP"));
	set_default(spec, "sessionAffinity", json_string("None"));
	if (strcmp(fk_jstr(spec, "type") ? fk_jstr(spec, "type") : "", "ExternalName") != 0) {
		if (ip == NULL || ip[0] == '\0') {
			uint32_t a = OBJ_SERVICE_NET + 1 + (st->next_cluster_ip++ % (OBJ_SERVICE_NET_SIZE - 2));

			snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
			json_object_set_new(spec, "clusterIP", json_string(buf));
		}
		set_default(spec, "clusterIPs", json_pack("[O]", json_object_get(spec, "clusterIP")));
		set_default(spec, "ipFamilies", json_pack("[s]", "IPv4"));
		set_default(spec, "ipFamilyPolicy", json_string("SingleStack"));
		set_default(spec, "internalTrafficPolicy", json_string("Cluster"));
	}
	ports = json_object_get(spec, "ports");
	json_array_foreach(ports, i, p) {
		set_default(p, "protocol", json_string("TCP"));
		if (json_object_get(p, "targetPort") == NULL && json_object_get(p, "port") != NULL)
			json_object_set(p, "targetPort", json_object_get(p, "port"));
	}
	json_object_set_new(obj, "status", json_pack("{s:{}}", "loadBalancer"));
}

static json_t *
crd_status(const json_t *crd, const json_t *old)
{
	json_t *names = json_deep_copy(fk_jobj(fk_jobj((json_t *)crd, "spec"), "names"));
	json_t *stored = json_array(), *v, *conds;
	json_t *versions = json_object_get(fk_jobj((json_t *)crd, "spec"), "versions");
	const char *kind = fk_jstr(names, "kind");
	char now[32], lower[128];
	size_t i;

	fk_now_rfc3339(now);
	if (kind != NULL) {
		snprintf(lower, sizeof(lower), "%s", kind);
		for (char *p = lower; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		set_default(names, "singular", json_string(lower));
		snprintf(lower, sizeof(lower), "%sList", kind);
		set_default(names, "listKind", json_string(lower));
	}
	if (old != NULL)
		json_array_extend(stored, json_object_get(fk_jobj((json_t *)old, "status"), "storedVersions"));
	json_array_foreach(versions, i, v) {
		if (json_is_true(json_object_get(v, "storage"))) {
			size_t j;
			json_t *s;
			bool have = false;

			json_array_foreach(stored, j, s) {
				if (fk_json_equal(s, json_object_get(v, "name")))
					have = true;
			}
			if (!have)
				json_array_append(stored, json_object_get(v, "name"));
		}
	}
	conds = json_pack("[{s:s,s:s,s:s,s:s,s:s},{s:s,s:s,s:s,s:s,s:s}]",
			  "type", "NamesAccepted", "status", "True", "lastTransitionTime", now,
			  "reason", "NoConflicts", "message", "no conflicts found",
			  "type", "Established", "status", "True", "lastTransitionTime", now,
			  "reason", "InitialNamesAccepted", "message", "the initial names have been accepted");
	return json_pack("{s:o,s:o,s:o}", "conditions", conds, "acceptedNames", names,
			 "storedVersions", stored);
}

void
fk_prepare_create(struct fk_ctx *c, json_t *obj)
{
	json_t *meta = fk_meta(obj), *spec;

	switch (c->t->hook) {
	case FK_HOOK_NAMESPACE:
		spec = fk_jobj_ensure(obj, "spec");
		set_default(spec, "finalizers", json_pack("[s]", "kubernetes"));
		json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Active"));
		json_object_set_new(fk_jobj_ensure(meta, "labels"), "kubernetes.io/metadata.name",
				    json_string(c->name));
		break;
	case FK_HOOK_SECRET:
		set_default(obj, "type", json_string("Opaque"));
		merge_string_data(obj);
		break;
	case FK_HOOK_SERVICE:
		service_defaults(c->st, obj);
		break;
	case FK_HOOK_POD:
		spec = fk_jobj_ensure(obj, "spec");
		set_default(spec, "restartPolicy", json_string("Always"));
		set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
		set_default(spec, "schedulerName", json_string("default-scheduler"));
		set_default(spec, "serviceAccountName", json_string("default"));
		set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
		json_object_set_new(obj, "status", json_pack("{s:s,s:s}", "phase", "Pending", "qosClass", "BestEffort"));
		break;
	case FK_HOOK_DEPLOYMENT:
		spec = fk_jobj_ensure(obj, "spec");
		set_default(spec, "replicas", json_integer(1));
		set_default(spec, "revisionHistoryLimit", json_integer(10));
		set_default(spec, "progressDeadlineSeconds", json_integer(600));
		set_default(spec, "strategy", json_object());
		set_default(fk_jobj(spec, "strategy"), "type", json_string("RollingUpdate"));
		if (strcmp(fk_jstr(fk_jobj(spec, "strategy"), "type") ? fk_jstr(fk_jobj(spec, "strategy"), "type") : "",
			   "RollingUpdate") == 0)
			set_default(fk_jobj(spec, "strategy"), "rollingUpdate",
				    json_pack("{s:s,s:s}", "maxUnavailable", "25%", "maxSurge", "25%"));
		json_object_set_new(obj, "status", json_object());
		break;
	case FK_HOOK_PDB:
		json_object_set_new(obj, "status", json_pack("{s:i,s:i,s:i,s:i}", "currentHealthy", 0,
				"desiredHealthy", 0, "disruptionsAllowed", 0, "expectedPods", 0));
		break;
	case FK_HOOK_CRD:
		json_object_set_new(obj, "status", crd_status(obj, NULL));
		break;
	default:
		break;
	}
}

void
fk_prepare_update(struct fk_ctx *c, const json_t *old, json_t *obj)
{
	json_t *spec, *ospec;

	switch (c->t->hook) {
	case FK_HOOK_SECRET:
		merge_string_data(obj);
		break;
	case FK_HOOK_SERVICE:
		spec = fk_jobj_ensure(obj, "spec");
		ospec = fk_jobj((json_t *)old, "spec");
		if (fk_jstr(spec, "clusterIP") == NULL && fk_jstr(ospec, "clusterIP") != NULL)
			json_object_set(spec, "clusterIP", json_object_get(ospec, "clusterIP"));
		if (json_object_get(spec, "clusterIPs") == NULL && json_object_get(ospec, "clusterIPs") != NULL)
			json_object_set(spec, "clusterIPs", json_object_get(ospec, "clusterIPs"));
		break;
	case FK_HOOK_NAMESPACE:
		/* spec.finalizers change only through /finalize */
		if (strcmp(c->r->subresource, "finalize") != 0) {
			spec = fk_jobj_ensure(obj, "spec");
			ospec = fk_jobj((json_t *)old, "spec");
			if (json_object_get(ospec, "finalizers") != NULL)
				json_object_set(spec, "finalizers", json_object_get(ospec, "finalizers"));
			else
				json_object_del(spec, "finalizers");
		}
		json_object_set_new(fk_jobj_ensure(fk_meta(obj), "labels"), "kubernetes.io/metadata.name",
				    json_string(c->name));
		break;
	case FK_HOOK_CRD:
		if (!c->status_only)
			json_object_set_new(obj, "status", crd_status(obj, old));
		break;
	default:
		break;
	}
}

/* ---- validation ---- */

static void
check_name(struct fk_ctx *c, const char *name, struct fk_errors *e)
{
	bool ok;
	const char *why = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
			  "characters, '-' or '.', and must start and end with an alphanumeric character "
			  "(e.g. 'example.com', regex used for validation is "
			  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

	switch (c->t->hook) {
	case FK_HOOK_NAMESPACE:
	case FK_HOOK_SERVICE:
		ok = fk_valid_dns1123_label(name);
		why = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
		      "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
		      "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
		break;
	case FK_HOOK_RBAC:
		ok = path_segment_ok(name);
		why = "may not contain '/' or '%'";
		break;
	default:
		ok = fk_valid_dns1123_subdomain(name);
		break;
	}
	if (!ok)
		fk_error_add(e, "FieldValueInvalid", "metadata.name", "\"%s\": %s", name, why);
}

static void
check_meta(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e)
{
	json_t *meta = fk_meta(obj), *labels = json_object_get(meta, "labels"), *v;
	json_t *ann = json_object_get(meta, "annotations");
	const char *k;
	char field[600];
	size_t total = 0;

	check_name(c, c->name, e);
	if (labels != NULL && !json_is_object(labels))
		fk_error_add(e, "FieldValueTypeInvalid", "metadata.labels", "must be a map of strings");
	json_object_foreach(labels, k, v) {
		snprintf(field, sizeof(field), "metadata.labels");
		if (!qualified_name_ok(k))
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": name part must consist of "
				     "alphanumeric characters, '-', '_' or '.', and must start and end with an "
				     "alphanumeric character", k);
		else if (!json_is_string(v))
			fk_error_add(e, "FieldValueTypeInvalid", field, "label values must be strings");
		else if (json_string_length(v) > 0 && !name_part_ok(json_string_value(v), json_string_length(v)))
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": a valid label must be an empty "
				     "string or consist of alphanumeric characters, '-', '_' or '.', and must "
				     "start and end with an alphanumeric character", json_string_value(v));
	}
	json_object_foreach(ann, k, v) {
		if (!qualified_name_ok(k))
			fk_error_add(e, "FieldValueInvalid", "metadata.annotations", "\"%s\": name part must "
				     "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
				     "with an alphanumeric character", k);
		else if (!json_is_string(v))
			fk_error_add(e, "FieldValueTypeInvalid", "metadata.annotations", "annotation values must be strings");
		total += strlen(k) + json_string_length(v);
	}
	if (total > OBJ_ANNOTATIONS_MAX)
		fk_error_add(e, "FieldValueTooLong", "metadata.annotations", "may not be more than %u bytes",
			     OBJ_ANNOTATIONS_MAX);
	/* an object being deleted takes no new finalizers */
	if (old != NULL && fk_meta_str(old, "deletionTimestamp") != NULL) {
		json_t *nf = json_object_get(meta, "finalizers");
		json_t *of = json_object_get(json_object_get((json_t *)old, "metadata"), "finalizers");
		size_t i, j;
		json_t *f, *g;

		json_array_foreach(nf, i, f) {
			bool had = false;

			json_array_foreach(of, j, g) {
				if (fk_json_equal(f, g))
					had = true;
			}
			if (!had)
				fk_error_add(e, "FieldValueForbidden", "metadata.finalizers",
					     "no new finalizers can be added if the object is being deleted, "
					     "found new finalizers []string{\"%s\"}", json_string_value(f));
		}
	}
	json_array_foreach(json_object_get(meta, "ownerReferences"), total, v) {
		if (fk_jstr(v, "apiVersion") == NULL || fk_jstr(v, "kind") == NULL ||
		    fk_jstr(v, "name") == NULL || fk_jstr(v, "uid") == NULL)
			fk_error_add(e, "FieldValueRequired", "metadata.ownerReferences",
				     "apiVersion, kind, name and uid are required");
	}
}

/* A decoding error answered as kube-apiserver does (400, "cannot be handled as"). */
static int
undecodable(struct fk_ctx *c, const char *why)
{
	fk_reply_bad_request(c->r, "%s in version \"%s\" cannot be handled as a %s: %s", c->t->kind,
			     c->t->versions[c->version].name, c->t->kind, why);
	return -EINVAL;
}

static int
check_values(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e, bool secret)
{
	json_t *data = json_object_get(obj, "data"), *bin = json_object_get(obj, "binaryData"), *v;
	const char *k;
	size_t total = 0;
	char field[600];

	json_object_foreach(data, k, v) {
		snprintf(field, sizeof(field), "data[%s]", k);
		if (!config_key_ok(k))
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": a valid config key must consist "
				     "of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
				     "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')", k);
		if (!json_is_string(v) && !json_is_null(v))
			return undecodable(c, "json: cannot unmarshal value into Go struct field of type string");
		if (secret && json_is_string(v)) {
			unsigned char *raw = NULL;
			size_t n = 0;

			if (fk_b64_decode(json_string_value(v), &raw, &n) < 0)
				return undecodable(c, "illegal base64 data at input byte 0");
			free(raw);
			total += n;
		} else {
			total += json_string_length(v);
		}
	}
	json_object_foreach(bin, k, v) {
		unsigned char *raw = NULL;
		size_t n = 0;

		snprintf(field, sizeof(field), "binaryData[%s]", k);
		if (!config_key_ok(k))
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": a valid config key must consist "
				     "of alphanumeric characters, '-', '_' or '.'", k);
		if (json_object_get(data, k) != NULL)
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": duplicate of key present in data", k);
		if (!json_is_string(v) || fk_b64_decode(json_string_value(v), &raw, &n) < 0)
			return undecodable(c, "illegal base64 data at input byte 0");
		free(raw);
		total += n;
	}
	if (total > FK_SECRET_MAX)
		fk_error_add(e, "FieldValueTooLong", "data", "must have at most %u bytes", FK_SECRET_MAX);
	if (old != NULL && json_is_true(json_object_get((json_t *)old, "immutable"))) {
		if (!fk_json_equal(json_object_get((json_t *)old, "data"), data) ||
		    !fk_json_equal(json_object_get((json_t *)old, "binaryData"), bin))
			fk_error_add(e, "FieldValueForbidden", "data", "field is immutable when `immutable` is set");
		if (!json_is_true(json_object_get(obj, "immutable")))
			fk_error_add(e, "FieldValueForbidden", "immutable", "field is immutable when `immutable` is set");
	}
	if (secret) {
		const char *type = fk_jstr(obj, "type"), *otype = old != NULL ? fk_jstr(old, "type") : NULL;

		if (otype != NULL && type != NULL && strcmp(type, otype) != 0)
			fk_error_add(e, "FieldValueInvalid", "type", "\"%s\": field is immutable", type);
		if (type != NULL && strcmp(type, "kubernetes.io/tls") == 0) {
			if (json_object_get(data, "tls.crt") == NULL)
				fk_error_add(e, "FieldValueRequired", "data[tls.crt]", NULL);
			if (json_object_get(data, "tls.key") == NULL)
				fk_error_add(e, "FieldValueRequired", "data[tls.key]", NULL);
		}
		if (type != NULL && strcmp(type, "kubernetes.io/dockerconfigjson") == 0 &&
		    json_object_get(data, ".dockerconfigjson") == NULL)
			fk_error_add(e, "FieldValueRequired", "data[.dockerconfigjson]", NULL);
		if (type != NULL && strcmp(type, "kubernetes.io/basic-auth") == 0 && json_object_size(data) > 0 &&
		    json_object_get(data, "username") == NULL && json_object_get(data, "password") == NULL)
			fk_error_add(e, "FieldValueRequired", "data[username]", NULL);
	}
	return 0;
}

/* MicroTime fields: exactly six fractional digits; normalised to UTC. */
static int
check_micro(struct fk_ctx *c, json_t *parent, const char *key)
{
	json_t *v = json_object_get(parent, key);
	char norm[40], why[256];

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || fk_parse_micro(json_string_value(v), norm) < 0) {
		snprintf(why, sizeof(why), "parsing time \"%s\" as \"2006-01-02T15:04:05.000000Z07:00\": "
			 "cannot parse \"%s\" as \".000000\"", json_is_string(v) ? json_string_value(v) : "",
			 json_is_string(v) && strlen(json_string_value(v)) > 19 ? json_string_value(v) + 19 : "");
		return undecodable(c, why);
	}
	json_object_set_new(parent, key, json_string(norm));
	return 0;
}

static void
check_containers(json_t *spec, const char *prefix, struct fk_errors *e)
{
	json_t *cs = json_object_get(spec, "containers"), *ct;
	char field[300];
	size_t i;

	if (json_array_size(cs) == 0) {
		snprintf(field, sizeof(field), "%scontainers", prefix);
		fk_error_add(e, "FieldValueRequired", field, NULL);
	}
	json_array_foreach(cs, i, ct) {
		if (fk_jstr(ct, "name") == NULL || fk_jstr(ct, "name")[0] == '\0') {
			snprintf(field, sizeof(field), "%scontainers[%zu].name", prefix, i);
			fk_error_add(e, "FieldValueRequired", field, NULL);
		}
		if (fk_jstr(ct, "image") == NULL || fk_jstr(ct, "image")[0] == '\0') {
			snprintf(field, sizeof(field), "%scontainers[%zu].image", prefix, i);
			fk_error_add(e, "FieldValueRequired", field, NULL);
		}
	}
}

static void
check_deployment(const json_t *old, json_t *obj, struct fk_errors *e)
{
	json_t *spec = fk_jobj(obj, "spec"), *sel = fk_jobj(spec, "selector");
	json_t *tmpl = fk_jobj(spec, "template"), *labels = json_object_get(fk_jobj(tmpl, "metadata"), "labels");
	json_t *ml = json_object_get(sel, "matchLabels"), *v;
	const char *k;

	if (sel == NULL || json_object_size(sel) == 0) {
		fk_error_add(e, "FieldValueRequired", "spec.selector", NULL);
	} else {
		bool ok = true;

		json_object_foreach(ml, k, v) {
			if (!fk_json_equal(json_object_get(labels, k), v))
				ok = false;
		}
		if (!ok)
			fk_error_add(e, "FieldValueInvalid", "spec.template.metadata.labels",
				     "`selector` does not match template `labels`");
	}
	check_containers(fk_jobj(tmpl, "spec"), "spec.template.spec.", e);
	if (old != NULL && !fk_json_equal(json_object_get(fk_jobj((json_t *)old, "spec"), "selector"), sel))
		fk_error_add(e, "FieldValueInvalid", "spec.selector", "field is immutable");
}

static bool
dns_label_lower(const char *s)
{
	return s != NULL && fk_valid_dns1123_label(s);
}

static void
check_crd(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e)
{
	json_t *spec = fk_jobj(obj, "spec"), *names = fk_jobj(spec, "names");
	json_t *versions = json_object_get(spec, "versions"), *v;
	const char *group = fk_jstr(spec, "group"), *plural = fk_jstr(names, "plural");
	const char *kind = fk_jstr(names, "kind"), *scope = fk_jstr(spec, "scope");
	char want[600], field[200];
	size_t i, storage = 0;

	if (group == NULL || group[0] == '\0')
		fk_error_add(e, "FieldValueRequired", "spec.group", NULL);
	else if (strchr(group, '.') == NULL || !fk_valid_dns1123_subdomain(group))
		fk_error_add(e, "FieldValueInvalid", "spec.group", "\"%s\": should be a domain with at least one dot", group);
	if (!dns_label_lower(plural))
		fk_error_add(e, "FieldValueInvalid", "spec.names.plural", "\"%s\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'", plural ? plural : "");
	if (kind == NULL || kind[0] == '\0')
		fk_error_add(e, "FieldValueRequired", "spec.names.kind", NULL);
	if (scope == NULL || (strcmp(scope, "Namespaced") != 0 && strcmp(scope, "Cluster") != 0))
		fk_error_add(e, "FieldValueNotSupported", "spec.scope", "\"%s\": supported values: \"Cluster\", \"Namespaced\"",
			     scope ? scope : "");
	snprintf(want, sizeof(want), "%s.%s", plural ? plural : "", group ? group : "");
	if (strcmp(c->name, want) != 0)
		fk_error_add(e, "FieldValueInvalid", "metadata.name", "\"%s\": must be spec.names.plural+\".\"+spec.group", c->name);
	if (json_array_size(versions) == 0)
		fk_error_add(e, "FieldValueInvalid", "spec.versions", "must have exactly one version marked as storage version");
	if (json_array_size(versions) > FK_VERSIONS_MAX)
		fk_error_add(e, "FieldValueTooMany", "spec.versions", "must have at most %d items", FK_VERSIONS_MAX);
	json_array_foreach(versions, i, v) {
		json_t *schema = fk_jobj(fk_jobj(v, "schema"), "openAPIV3Schema");

		if (json_is_true(json_object_get(v, "storage")))
			storage++;
		if (fk_jstr(v, "name") == NULL || !fk_valid_dns1123_label(fk_jstr(v, "name"))) {
			snprintf(field, sizeof(field), "spec.versions[%zu].name", i);
			fk_error_add(e, "FieldValueInvalid", field, "\"%s\": a DNS-1035 label", fk_jstr(v, "name") ? fk_jstr(v, "name") : "");
		}
		if (schema == NULL) {
			snprintf(field, sizeof(field), "spec.versions[%zu].schema.openAPIV3Schema", i);
			fk_error_add(e, "FieldValueRequired", field, "schemas are required");
		} else if (fk_jstr(schema, "type") == NULL) {
			snprintf(field, sizeof(field), "spec.versions[%zu].schema.openAPIV3Schema.type", i);
			fk_error_add(e, "FieldValueRequired", field, "must not be empty at the root");
		}
	}
	if (json_array_size(versions) > 0 && storage != 1)
		fk_error_add(e, "FieldValueInvalid", "spec.versions", "must have exactly one version marked as storage version");
	if (old != NULL) {
		json_t *ospec = fk_jobj((json_t *)old, "spec");

		if (!fk_json_equal(json_object_get(ospec, "scope"), json_object_get(spec, "scope")))
			fk_error_add(e, "FieldValueInvalid", "spec.scope", "field is immutable");
		if (!fk_json_equal(json_object_get(fk_jobj(ospec, "names"), "plural"), json_object_get(names, "plural")))
			fk_error_add(e, "FieldValueInvalid", "status.storedVersions", "must appear in spec.versions");
	} else if (group != NULL && kind != NULL) {
		/* another CRD (or a built-in) already serving this kind in the group */
		struct fk_rtype *other = fk_rtype_by_kind(c->st, group, kind);

		if (other != NULL && !(other->flags & FK_CRD))
			fk_error_add(e, "FieldValueInvalid", "spec.group", "\"%s\": a built-in group", group);
	}
}

static void
check_rbac(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e)
{
	const char *kind = c->t->kind;
	char field[100];
	size_t i;
	json_t *rule;

	if (strcmp(kind, "Role") == 0 || strcmp(kind, "ClusterRole") == 0) {
		json_array_foreach(json_object_get(obj, "rules"), i, rule) {
			if (json_array_size(json_object_get(rule, "verbs")) == 0) {
				snprintf(field, sizeof(field), "rules[%zu].verbs", i);
				fk_error_add(e, "FieldValueRequired", field, "verbs must contain at least one value");
			}
			if (json_array_size(json_object_get(rule, "nonResourceURLs")) == 0 &&
			    json_array_size(json_object_get(rule, "resources")) == 0 &&
			    json_object_get(obj, "aggregationRule") == NULL) {
				snprintf(field, sizeof(field), "rules[%zu].resources", i);
				fk_error_add(e, "FieldValueRequired", field, "resource rules must supply at least one resource");
			}
		}
		return;
	}
	json_t *ref = fk_jobj(obj, "roleRef");
	const char *rk = fk_jstr(ref, "kind");

	if (fk_jstr(ref, "name") == NULL || fk_jstr(ref, "name")[0] == '\0')
		fk_error_add(e, "FieldValueRequired", "roleRef.name", NULL);
	if (rk == NULL || (strcmp(rk, "ClusterRole") != 0 && (strcmp(rk, "Role") != 0 || strcmp(kind, "ClusterRoleBinding") == 0)))
		fk_error_add(e, "FieldValueNotSupported", "roleRef.kind", "\"%s\"", rk ? rk : "");
	if (strcmp(fk_jstr(ref, "apiGroup") ? fk_jstr(ref, "apiGroup") : "", "rbac.authorization.k8s.io") != 0)
		fk_error_add(e, "FieldValueNotSupported", "roleRef.apiGroup", "\"%s\": supported values: \"rbac.authorization.k8s.io\"",
			     fk_jstr(ref, "apiGroup") ? fk_jstr(ref, "apiGroup") : "");
	if (old != NULL && !fk_json_equal(fk_jobj((json_t *)old, "roleRef"), ref))
		fk_error_add(e, "FieldValueInvalid", "roleRef", "cannot change roleRef");
}

int
fk_validate(struct fk_ctx *c, const json_t *old, json_t *obj, struct fk_errors *e)
{
	json_t *spec = fk_jobj(obj, "spec");
	int r = 0;

	check_meta(c, old, obj, e);
	switch (c->t->hook) {
	case FK_HOOK_SECRET:
		r = check_values(c, old, obj, e, true);
		break;
	case FK_HOOK_CONFIGMAP:
		r = check_values(c, old, obj, e, false);
		break;
	case FK_HOOK_LEASE:
		if ((r = check_micro(c, spec, "acquireTime")) < 0 || (r = check_micro(c, spec, "renewTime")) < 0)
			break;
		if (json_object_get(spec, "leaseDurationSeconds") != NULL &&
		    json_integer_value(json_object_get(spec, "leaseDurationSeconds")) <= 0)
			fk_error_add(e, "FieldValueInvalid", "spec.leaseDurationSeconds", "%lld: must be greater than 0",
				     (long long)json_integer_value(json_object_get(spec, "leaseDurationSeconds")));
		if (json_integer_value(json_object_get(spec, "leaseTransitions")) < 0)
			fk_error_add(e, "FieldValueInvalid", "spec.leaseTransitions", "must be greater than or equal to 0");
		break;
	case FK_HOOK_EVENT:
	case FK_HOOK_EVENTS_V1:
		if ((r = check_micro(c, obj, "eventTime")) < 0)
			break;
		if (strcmp(c->r->group, "events.k8s.io") == 0 && old == NULL) {
			/* created through events.k8s.io/v1: the fields that API requires (stored form) */
			if (json_object_get(obj, "eventTime") == NULL || json_is_null(json_object_get(obj, "eventTime")))
				fk_error_add(e, "FieldValueRequired", "eventTime", NULL);
			if (fk_jstr(obj, "reportingComponent") == NULL)
				fk_error_add(e, "FieldValueRequired", "reportingController", NULL);
			if (fk_jstr(obj, "reportingInstance") == NULL)
				fk_error_add(e, "FieldValueRequired", "reportingInstance", NULL);
			if (fk_jstr(obj, "action") == NULL)
				fk_error_add(e, "FieldValueRequired", "action", NULL);
			if (fk_jstr(obj, "reason") == NULL)
				fk_error_add(e, "FieldValueRequired", "reason", NULL);
		}
		break;
	case FK_HOOK_DEPLOYMENT:
		if (!c->status_only)
			check_deployment(old, obj, e);
		break;
	case FK_HOOK_POD:
		if (!c->status_only)
			check_containers(spec, "spec.", e);
		break;
	case FK_HOOK_SERVICE:
		if (strcmp(fk_jstr(spec, "type") ? fk_jstr(spec, "type") : "", "ExternalName") != 0 &&
		    strcmp(fk_jstr(spec, "clusterIP") ? fk_jstr(spec, "clusterIP") : "", "None") != 0 &&
		    json_array_size(json_object_get(spec, "ports")) == 0)
			fk_error_add(e, "FieldValueRequired", "spec.ports", NULL);
		break;
	case FK_HOOK_PDB:
		if (json_object_get(spec, "minAvailable") != NULL && json_object_get(spec, "maxUnavailable") != NULL)
			fk_error_add(e, "FieldValueInvalid", "spec", "minAvailable and maxUnavailable cannot be both set");
		break;
	case FK_HOOK_CRD:
		if (!c->status_only)
			check_crd(c, old, obj, e);
		break;
	case FK_HOOK_RBAC:
		check_rbac(c, old, obj, e);
		break;
	default:
		break;
	}
	return r;
}

/* ---- after a write ---- */

static void
create_internal(struct fk_state *st, const char *plural, json_t *obj)
{
	struct fk_rtype *t = fk_rtype_find(st, "", "v1", plural, NULL);
	char key[FK_KEY_MAX], uid[37], now[32];
	json_t *meta = fk_meta(obj);

	fk_obj_key(t, fk_jstr(meta, "namespace"), fk_jstr(meta, "name"), key);
	if (fk_store_get(st, t, key) != NULL) {
		json_decref(obj);
		return;
	}
	fk_uuid(uid);
	fk_now_rfc3339(now);
	json_object_set_new(meta, "uid", json_string(uid));
	json_object_set_new(meta, "creationTimestamp", json_string(now));
	if (fk_store_create(st, t, key, obj) == 0)
		fk_stats_write(&st->stats, "create", t, NULL, fk_jstr(meta, "namespace"), true);
}

/* What the service-account and root-CA controllers add to every namespace. */
static void
namespace_objects(struct fk_state *st, const char *ns)
{
	create_internal(st, "serviceaccounts", json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", "v1",
			"kind", "ServiceAccount", "metadata", "name", "default", "namespace", ns));
	create_internal(st, "configmaps", json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1",
			"kind", "ConfigMap", "metadata", "name", "kube-root-ca.crt", "namespace", ns,
			"annotations", "kubernetes.io/description",
			"Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.",
			"data", "ca.crt", st->keys.ca_pem));
}

void
fk_after_write(struct fk_ctx *c, json_t *obj, bool created)
{
	if (c->t->hook == FK_HOOK_NAMESPACE && created)
		namespace_objects(c->st, c->name);
	if (c->t->hook == FK_HOOK_CRD) {
		bool gone = fk_store_get(c->st, c->t, c->name) == NULL;

		fk_registry_crd_sync(c->st, obj, gone);
	}
}

/* ---- a fresh cluster ---- */

int
fk_seed(struct fk_state *st)
{
	static const char *const namespaces[] = { "default", "kube-system", "kube-public", "kube-node-lease" };
	struct fk_rtype *nst = fk_rtype_find(st, "", "v1", "namespaces", NULL);
	struct fk_rtype *crt = fk_rtype_find(st, "rbac.authorization.k8s.io", "v1", "clusterroles", NULL);
	char uid[37], now[32];

	for (size_t i = 0; i < sizeof(namespaces) / sizeof(namespaces[0]); i++) {
		json_t *ns = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:[s]},s:{s:s}}", "apiVersion", "v1",
				       "kind", "Namespace", "metadata", "name", namespaces[i], "labels",
				       "kubernetes.io/metadata.name", namespaces[i], "spec", "finalizers",
				       "kubernetes", "status", "phase", "Active");

		fk_uuid(uid);
		fk_now_rfc3339(now);
		json_object_set_new(fk_meta(ns), "uid", json_string(uid));
		json_object_set_new(fk_meta(ns), "creationTimestamp", json_string(now));
		if (fk_store_create(st, nst, namespaces[i], ns) < 0)
			return -ENOMEM;
		namespace_objects(st, namespaces[i]);
	}
	/* the ClusterRoles tests bind service accounts to */
	static const char *const roles[][2] = {
		{ "cluster-admin", "[{\"apiGroups\":[\"*\"],\"resources\":[\"*\"],\"verbs\":[\"*\"]},{\"nonResourceURLs\":[\"*\"],\"verbs\":[\"*\"]}]" },
		{ "view", "[{\"apiGroups\":[\"\",\"apps\",\"coordination.k8s.io\",\"policy\",\"networking.k8s.io\",\"events.k8s.io\"],\"resources\":[\"configmaps\",\"events\",\"namespaces\",\"pods\",\"serviceaccounts\",\"services\",\"deployments\",\"leases\",\"poddisruptionbudgets\",\"networkpolicies\"],\"verbs\":[\"get\",\"list\",\"watch\"]}]" },
	};
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		json_t *rules = json_loads(roles[i][1], 0, NULL);
		json_t *cr = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:o}", "apiVersion", "rbac.authorization.k8s.io/v1",
				       "kind", "ClusterRole", "metadata", "name", roles[i][0], "labels",
				       "kubernetes.io/bootstrapping", "rbac-defaults", "rules", rules);

		fk_uuid(uid);
		fk_now_rfc3339(now);
		json_object_set_new(fk_meta(cr), "uid", json_string(uid));
		json_object_set_new(fk_meta(cr), "creationTimestamp", json_string(now));
		if (fk_store_create(st, crt, roles[i][0], cr) < 0)
			return -ENOMEM;
	}
	return 0;
}
