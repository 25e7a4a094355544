/* proto.c — request bodies in Kubernetes protobuf ("k8s\0" + runtime.Unknown) decoded to
 * JSON, for the kinds kubectl's typed clients create: kubectl ≥ 1.33 sends them so
 * (`kubectl create secret|configmap|namespace|serviceaccount|service|deployment|pdb|role|
 * ...`, `kubectl create token`, `kubectl auth can-i`, `kubectl auth whoami`). The field
 * numbers are those of k8s.io/api's generated.proto; the fields decoded are those these
 * commands set, and a body that sets another is refused (415) rather than cut short.
 * Answers stay JSON, which these clients also accept. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Deepest message nesting decoded. */
#define PROTO_DEPTH_MAX 32

enum pkind { P_STRING, P_BYTES, P_INT, P_BOOL, P_MSG, P_MAP_SS, P_MAP_SB, P_MAP_SQ, P_TIME, P_INTSTR,
	     P_RAWJSON };

struct pmsg;

struct pfield {
	unsigned num;
	const char *name;
	enum pkind kind;
	bool repeated;
	const struct pmsg *msg;
};

struct pmsg {
	const struct pfield *fields;
};

#define F(n, name, kind) { n, name, kind, false, NULL }
#define R(n, name, kind) { n, name, kind, true, NULL }
#define M(n, name, m) { n, name, P_MSG, false, &m }
#define RM(n, name, m) { n, name, P_MSG, true, &m }
#define END { 0, NULL, P_STRING, false, NULL }

static const struct pfield f_fieldsv1[] = { F(1, "", P_RAWJSON), END };
static const struct pmsg m_fieldsv1 = { f_fieldsv1 };
static const struct pfield f_managed[] = {
	F(1, "manager", P_STRING), F(2, "operation", P_STRING), F(3, "apiVersion", P_STRING),
	F(4, "time", P_TIME), F(6, "fieldsType", P_STRING), M(7, "fieldsV1", m_fieldsv1),
	F(8, "subresource", P_STRING), END
};
static const struct pmsg m_managed = { f_managed };
static const struct pfield f_owner[] = {
	F(5, "apiVersion", P_STRING), F(1, "kind", P_STRING), F(3, "name", P_STRING),
	F(4, "uid", P_STRING), F(6, "controller", P_BOOL), F(7, "blockOwnerDeletion", P_BOOL), END
};
static const struct pmsg m_owner = { f_owner };
static const struct pfield f_meta[] = {
	F(1, "name", P_STRING), F(2, "generateName", P_STRING), F(3, "namespace", P_STRING),
	F(4, "selfLink", P_STRING), F(5, "uid", P_STRING), F(6, "resourceVersion", P_STRING),
	F(7, "generation", P_INT), F(8, "creationTimestamp", P_TIME), F(9, "deletionTimestamp", P_TIME),
	F(10, "deletionGracePeriodSeconds", P_INT), F(11, "labels", P_MAP_SS),
	F(12, "annotations", P_MAP_SS), RM(13, "ownerReferences", m_owner),
	R(14, "finalizers", P_STRING), RM(17, "managedFields", m_managed), END
};
static const struct pmsg m_meta = { f_meta };

static const struct pfield f_secret[] = {
	M(1, "metadata", m_meta), F(5, "immutable", P_BOOL), F(2, "data", P_MAP_SB),
	F(4, "stringData", P_MAP_SS), F(3, "type", P_STRING), END
};
static const struct pfield f_configmap[] = {
	M(1, "metadata", m_meta), F(4, "immutable", P_BOOL), F(2, "data", P_MAP_SS),
	F(3, "binaryData", P_MAP_SB), END
};
static const struct pfield f_ns_spec[] = { R(1, "finalizers", P_STRING), END };
static const struct pmsg m_ns_spec = { f_ns_spec };
static const struct pfield f_namespace[] = { M(1, "metadata", m_meta), M(2, "spec", m_ns_spec), END };
static const struct pfield f_objref[] = {
	F(1, "kind", P_STRING), F(2, "namespace", P_STRING), F(3, "name", P_STRING), F(4, "uid", P_STRING),
	F(5, "apiVersion", P_STRING), F(6, "resourceVersion", P_STRING), F(7, "fieldPath", P_STRING), END
};
static const struct pmsg m_objref = { f_objref };
static const struct pfield f_localref[] = { F(1, "name", P_STRING), END };
static const struct pmsg m_localref = { f_localref };
static const struct pfield f_sa[] = {
	M(1, "metadata", m_meta), RM(2, "secrets", m_objref), RM(3, "imagePullSecrets", m_localref),
	F(4, "automountServiceAccountToken", P_BOOL), END
};
static const struct pfield f_bound[] = {
	F(1, "kind", P_STRING), F(2, "apiVersion", P_STRING), F(3, "name", P_STRING), F(4, "uid", P_STRING), END
};
static const struct pmsg m_bound = { f_bound };
static const struct pfield f_tr_spec[] = {
	R(1, "audiences", P_STRING), F(4, "expirationSeconds", P_INT), M(3, "boundObjectRef", m_bound), END
};
static const struct pmsg m_tr_spec = { f_tr_spec };
static const struct pfield f_token_request[] = { M(1, "metadata", m_meta), M(2, "spec", m_tr_spec), END };
static const struct pfield f_rule[] = {
	R(1, "verbs", P_STRING), R(2, "apiGroups", P_STRING), R(3, "resources", P_STRING),
	R(4, "resourceNames", P_STRING), R(5, "nonResourceURLs", P_STRING), END
};
static const struct pmsg m_rule = { f_rule };
static const struct pfield f_subject[] = {
	F(1, "kind", P_STRING), F(2, "apiGroup", P_STRING), F(3, "name", P_STRING), F(4, "namespace", P_STRING), END
};
static const struct pmsg m_subject = { f_subject };
static const struct pfield f_roleref[] = {
	F(1, "apiGroup", P_STRING), F(2, "kind", P_STRING), F(3, "name", P_STRING), END
};
static const struct pmsg m_roleref = { f_roleref };
static const struct pfield f_lsr[] = { F(1, "key", P_STRING), F(2, "operator", P_STRING), R(3, "values", P_STRING), END };
static const struct pmsg m_lsr = { f_lsr };
static const struct pfield f_ls[] = { F(1, "matchLabels", P_MAP_SS), RM(2, "matchExpressions", m_lsr), END };
static const struct pmsg m_ls = { f_ls };
static const struct pfield f_aggr[] = { RM(1, "clusterRoleSelectors", m_ls), END };
static const struct pmsg m_aggr = { f_aggr };
static const struct pfield f_role[] = { M(1, "metadata", m_meta), RM(2, "rules", m_rule), M(3, "aggregationRule", m_aggr), END };
static const struct pfield f_binding[] = {
	M(1, "metadata", m_meta), RM(2, "subjects", m_subject), M(3, "roleRef", m_roleref), END
};
static const struct pfield f_port[] = {
	F(1, "name", P_STRING), F(2, "protocol", P_STRING), F(6, "appProtocol", P_STRING), F(3, "port", P_INT),
	F(4, "targetPort", P_INTSTR), F(5, "nodePort", P_INT), END
};
static const struct pmsg m_port = { f_port };
static const struct pfield f_svc_spec[] = {
	RM(1, "ports", m_port), F(2, "selector", P_MAP_SS), F(3, "clusterIP", P_STRING),
	R(18, "clusterIPs", P_STRING), F(4, "type", P_STRING), R(5, "externalIPs", P_STRING),
	F(7, "sessionAffinity", P_STRING), F(10, "externalName", P_STRING),
	F(11, "externalTrafficPolicy", P_STRING), R(19, "ipFamilies", P_STRING),
	F(17, "ipFamilyPolicy", P_STRING), F(22, "internalTrafficPolicy", P_STRING), END
};
static const struct pmsg m_svc_spec = { f_svc_spec };
static const struct pfield f_service[] = { M(1, "metadata", m_meta), M(2, "spec", m_svc_spec), END };
static const struct pfield f_res_attr[] = {
	F(1, "namespace", P_STRING), F(2, "verb", P_STRING), F(3, "group", P_STRING), F(4, "version", P_STRING),
	F(5, "resource", P_STRING), F(6, "subresource", P_STRING), F(7, "name", P_STRING), END
};
static const struct pmsg m_res_attr = { f_res_attr };
static const struct pfield f_nonres_attr[] = { F(1, "path", P_STRING), F(2, "verb", P_STRING), END };
static const struct pmsg m_nonres_attr = { f_nonres_attr };
static const struct pfield f_ssar_spec[] = {
	M(1, "resourceAttributes", m_res_attr), M(2, "nonResourceAttributes", m_nonres_attr), END
};
static const struct pmsg m_ssar_spec = { f_ssar_spec };
static const struct pfield f_meta_only[] = { M(1, "metadata", m_meta), END };
static const struct pfield f_ssar[] = { M(1, "metadata", m_meta), M(2, "spec", m_ssar_spec), END };

static const struct pfield f_env[] = { F(1, "name", P_STRING), F(2, "value", P_STRING), END };
static const struct pmsg m_env = { f_env };
static const struct pfield f_cport[] = {
	F(1, "name", P_STRING), F(2, "hostPort", P_INT), F(3, "containerPort", P_INT), F(4, "protocol", P_STRING),
	F(5, "hostIP", P_STRING), END
};
static const struct pmsg m_cport = { f_cport };
static const struct pfield f_resources[] = { F(1, "limits", P_MAP_SQ), F(2, "requests", P_MAP_SQ), END };
static const struct pmsg m_resources = { f_resources };
static const struct pfield f_mount[] = {
	F(1, "name", P_STRING), F(2, "readOnly", P_BOOL), F(3, "mountPath", P_STRING), F(4, "subPath", P_STRING), END
};
static const struct pmsg m_mount = { f_mount };
static const struct pfield f_container[] = {
	F(1, "name", P_STRING), F(2, "image", P_STRING), R(3, "command", P_STRING), R(4, "args", P_STRING),
	F(5, "workingDir", P_STRING), RM(6, "ports", m_cport), RM(7, "env", m_env), M(8, "resources", m_resources),
	RM(9, "volumeMounts", m_mount), F(13, "terminationMessagePath", P_STRING),
	F(14, "imagePullPolicy", P_STRING), F(16, "stdin", P_BOOL), F(17, "stdinOnce", P_BOOL), F(18, "tty", P_BOOL),
	F(20, "terminationMessagePolicy", P_STRING), END
};
static const struct pmsg m_container = { f_container };
static const struct pfield f_podspec[] = {
	RM(20, "initContainers", m_container), RM(2, "containers", m_container), F(3, "restartPolicy", P_STRING),
	F(4, "terminationGracePeriodSeconds", P_INT), F(6, "dnsPolicy", P_STRING), F(7, "nodeSelector", P_MAP_SS),
	F(8, "serviceAccountName", P_STRING), F(19, "schedulerName", P_STRING), END
};
static const struct pmsg m_podspec = { f_podspec };
static const struct pfield f_template[] = { M(1, "metadata", m_meta), M(2, "spec", m_podspec), END };
static const struct pmsg m_template = { f_template };
static const struct pfield f_rolling[] = { F(1, "maxUnavailable", P_INTSTR), F(2, "maxSurge", P_INTSTR), END };
static const struct pmsg m_rolling = { f_rolling };
static const struct pfield f_strategy[] = { F(1, "type", P_STRING), M(2, "rollingUpdate", m_rolling), END };
static const struct pmsg m_strategy = { f_strategy };
static const struct pfield f_deploy_spec[] = {
	F(1, "replicas", P_INT), M(2, "selector", m_ls), M(3, "template", m_template), M(4, "strategy", m_strategy),
	F(5, "minReadySeconds", P_INT), F(6, "revisionHistoryLimit", P_INT), F(7, "paused", P_BOOL),
	F(9, "progressDeadlineSeconds", P_INT), END
};
static const struct pmsg m_deploy_spec = { f_deploy_spec };
static const struct pfield f_deployment[] = { M(1, "metadata", m_meta), M(2, "spec", m_deploy_spec), END };
static const struct pfield f_pdb_spec[] = {
	F(1, "minAvailable", P_INTSTR), M(2, "selector", m_ls), F(3, "maxUnavailable", P_INTSTR),
	F(4, "unhealthyPodEvictionPolicy", P_STRING), END
};
static const struct pmsg m_pdb_spec = { f_pdb_spec };
static const struct pfield f_pdb[] = { M(1, "metadata", m_meta), M(2, "spec", m_pdb_spec), END };

static const struct {
	const char *api_version, *kind;
	struct pmsg msg;
} kinds[] = {
	{ "apps/v1", "Deployment", { f_deployment } },
	{ "policy/v1", "PodDisruptionBudget", { f_pdb } },
	{ "v1", "Secret", { f_secret } },
	{ "v1", "ConfigMap", { f_configmap } },
	{ "v1", "Namespace", { f_namespace } },
	{ "v1", "ServiceAccount", { f_sa } },
	{ "v1", "Service", { f_service } },
	{ "authentication.k8s.io/v1", "TokenRequest", { f_token_request } },
	{ "rbac.authorization.k8s.io/v1", "Role", { f_role } },
	{ "rbac.authorization.k8s.io/v1", "ClusterRole", { f_role } },
	{ "rbac.authorization.k8s.io/v1", "RoleBinding", { f_binding } },
	{ "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", { f_binding } },
	{ "authorization.k8s.io/v1", "SelfSubjectAccessReview", { f_ssar } },
	{ "authentication.k8s.io/v1", "SelfSubjectReview", { f_meta_only } },
};

struct rd {
	const unsigned char *p, *end;
};

static int
varint(struct rd *r, uint64_t *ret)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -EINVAL;
		unsigned char b = *r->p++;

		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*ret = v;
			return 0;
		}
	}
	return -EINVAL;
}

/* One length-delimited field's bytes. */
static int
chunk(struct rd *r, struct rd *ret)
{
	uint64_t n;

	if (varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
		return -EINVAL;
	ret->p = r->p;
	ret->end = r->p + n;
	r->p += n;
	return 0;
}

static int
skip(struct rd *r, unsigned wire)
{
	uint64_t v;
	struct rd c;

	switch (wire) {
	case 0:
		return varint(r, &v);
	case 1:
		if (r->end - r->p < 8)
			return -EINVAL;
		r->p += 8;
		return 0;
	case 2:
		return chunk(r, &c);
	case 5:
		if (r->end - r->p < 4)
			return -EINVAL;
		r->p += 4;
		return 0;
	default:
		return -EINVAL;
	}
}

/* What made decoding stop: a field this decoder does not know, set to something. */
struct pctx {
	bool unsupported;
	char what[256];
};

static json_t *decode_msg(struct rd r, const struct pmsg *m, const char *path, int depth, struct pctx *x);

/* Whether a field's encoded value (after its tag) is a default: zero, empty, or a message
 * of defaults. */
static bool
all_default(struct rd v, unsigned wire, int depth)
{
	uint64_t n;
	struct rd c;

	if (depth > PROTO_DEPTH_MAX)
		return false;
	switch (wire) {
	case 0:
		return varint(&v, &n) == 0 && n == 0;
	case 1:
	case 5:
		for (const unsigned char *p = v.p; p < v.end; p++) {
			if (*p != 0)
				return false;
		}
		return true;
	case 2:
		if (chunk(&v, &c) < 0)
			return false;
		while (c.p < c.end) {
			uint64_t tag;
			struct rd f;

			if (varint(&c, &tag) < 0)
				return false;
			f.p = c.p;
			if (skip(&c, (unsigned)(tag & 7)) < 0)
				return false;
			f.end = c.p;
			if (!all_default(f, (unsigned)(tag & 7), depth + 1))
				return false;
		}
		return true;
	default:
		return false;
	}
}

/* A Quantity message's string (field 1). */
static char *
quantity(struct rd v)
{
	while (v.p < v.end) {
		uint64_t tag;
		struct rd c;

		if (varint(&v, &tag) < 0 || (tag & 7) != 2 || chunk(&v, &c) < 0)
			return NULL;
		if ((tag >> 3) == 1)
			return strndup((const char *)c.p, (size_t)(c.end - c.p));
	}
	return strdup("");
}

/* map entry: key = 1, value = 2 (a string, bytes as base64, or a Quantity) */
static int
map_entry(struct rd r, enum pkind kind, json_t *into)
{
	struct rd k = { 0 }, v = { 0 };
	char *key, *val;

	while (r.p < r.end) {
		uint64_t tag;
		struct rd c;

		if (varint(&r, &tag) < 0)
			return -EINVAL;
		if ((tag & 7) != 2)
			return -EINVAL;
		if (chunk(&r, &c) < 0)
			return -EINVAL;
		if ((tag >> 3) == 1)
			k = c;
		else if ((tag >> 3) == 2)
			v = c;
	}
	if ((key = strndup((const char *)k.p, (size_t)(k.end - k.p))) == NULL)
		return -ENOMEM;
	if (kind == P_MAP_SB)
		val = fk_b64_encode(v.p, (size_t)(v.end - v.p));
	else if (kind == P_MAP_SQ)
		val = quantity(v);
	else
		val = strndup((const char *)v.p, (size_t)(v.end - v.p));
	if (val != NULL)
		json_object_set_new(into, key, json_stringn(val, strlen(val)));
	free(key);
	free(val);
	return val != NULL ? 0 : -ENOMEM;
}

static json_t *
decode_time(struct rd r)
{
	uint64_t secs = 0, v;
	char buf[32];

	while (r.p < r.end) {
		uint64_t tag;

		if (varint(&r, &tag) < 0)
			return NULL;
		if ((tag & 7) != 0) {
			if (skip(&r, (unsigned)(tag & 7)) < 0)
				return NULL;
			continue;
		}
		if (varint(&r, &v) < 0)
			return NULL;
		if ((tag >> 3) == 1)
			secs = v;
	}
	fk_time_rfc3339((time_t)secs, buf);
	return json_string(buf);
}

static json_t *
decode_intstr(struct rd r)
{
	uint64_t type = 0, ival = 0, v;
	char *s = NULL;
	json_t *out;

	while (r.p < r.end) {
		uint64_t tag;
		struct rd c;

		if (varint(&r, &tag) < 0)
			goto bad;
		if ((tag & 7) == 0) {
			if (varint(&r, &v) < 0)
				goto bad;
			if ((tag >> 3) == 1)
				type = v;
			else if ((tag >> 3) == 2)
				ival = v;
		} else if ((tag & 7) == 2 && (tag >> 3) == 3) {
			if (chunk(&r, &c) < 0)
				goto bad;
			free(s);
			s = strndup((const char *)c.p, (size_t)(c.end - c.p));
		} else if (skip(&r, (unsigned)(tag & 7)) < 0) {
			goto bad;
		}
	}
	out = type == 1 ? json_string(s != NULL ? s : "") : json_integer((json_int_t)(int32_t)ival);
	free(s);
	return out;
bad:
	free(s);
	return NULL;
}

static json_t *
decode_msg(struct rd r, const struct pmsg *m, const char *path, int depth, struct pctx *x)
{
	json_t *obj = json_object();
	char sub[256];

	if (obj == NULL || depth > PROTO_DEPTH_MAX)
		goto bad;
	while (r.p < r.end) {
		uint64_t tag, v;
		const struct pfield *f = NULL;
		struct rd c;
		json_t *val = NULL;

		if (varint(&r, &tag) < 0)
			goto bad;
		for (const struct pfield *fd = m->fields; fd->name != NULL; fd++) {
			if (fd->num == (tag >> 3))
				f = fd;
		}
		if (f == NULL) {
			/* Go's generated code writes every field, zeros too: a field holding only
			 * defaults says nothing; anything else would be lost, so it is refused */
			struct rd field = { r.p, r.end };
			bool empty;

			if (skip(&r, (unsigned)(tag & 7)) < 0)
				goto bad;
			field.end = r.p;
			empty = all_default(field, (unsigned)(tag & 7), 0);
			if (!empty) {
				x->unsupported = true;
				snprintf(x->what, sizeof(x->what), "%s%sfield %u", path, path[0] ? " " : "",
					 (unsigned)(tag >> 3));
				goto bad;
			}
			continue;
		}
		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", f->name);
		if (f->kind == P_INT || f->kind == P_BOOL) {
			if ((tag & 7) != 0 || varint(&r, &v) < 0)
				goto bad;
			val = f->kind == P_BOOL ? json_boolean(v != 0) : json_integer((json_int_t)v);
		} else {
			if ((tag & 7) != 2 || chunk(&r, &c) < 0)
				goto bad;
			switch (f->kind) {
			case P_STRING:
				val = json_stringn((const char *)c.p, (size_t)(c.end - c.p));
				break;
			case P_BYTES: {
				char *b = fk_b64_encode(c.p, (size_t)(c.end - c.p));

				val = b != NULL ? json_string(b) : NULL;
				free(b);
				break;
			}
			case P_RAWJSON:
				val = json_loadb((const char *)c.p, (size_t)(c.end - c.p), 0, NULL);
				break;
			case P_MSG:
				val = decode_msg(c, f->msg, sub, depth + 1, x);
				break;
			case P_TIME:
				val = decode_time(c);
				break;
			case P_INTSTR:
				val = decode_intstr(c);
				break;
			case P_MAP_SS:
			case P_MAP_SB:
			case P_MAP_SQ:
				if (map_entry(c, f->kind, fk_jobj_ensure(obj, f->name)) < 0)
					goto bad;
				continue;
			default:
				goto bad;
			}
		}
		if (val == NULL)
			goto bad;
		if (f->name[0] == '\0') {
			/* FieldsV1: the message is its raw JSON */
			json_decref(obj);
			obj = val;
			continue;
		}
		/* zeros as Go's JSON leaves omitempty fields out: "", 0, false, a zero time */
		if (!f->repeated && ((json_is_string(val) && json_string_length(val) == 0) ||
				     (json_is_integer(val) && json_integer_value(val) == 0 && f->kind != P_INTSTR) ||
				     json_is_false(val) ||
				     (f->kind == P_TIME && strcmp(json_string_value(val), "1970-01-01T00:00:00Z") == 0))) {
			json_decref(val);
			continue;
		}
		if (f->repeated) {
			json_t *arr = json_object_get(obj, f->name);

			if (!json_is_array(arr)) {
				arr = json_array();
				json_object_set_new(obj, f->name, arr);
			}
			json_array_append_new(arr, val);
		} else {
			json_object_set_new(obj, f->name, val);
		}
	}
	return obj;
bad:
	json_decref(obj);
	return NULL;
}

int
fk_proto_decode(const char *body, size_t len, json_t **ret, char *err, size_t errlen)
{
	struct rd r = { (const unsigned char *)body + 4, (const unsigned char *)body + len };
	struct rd raw = { 0 }, tm = { 0 };
	char av[256] = "", kind[128] = "";

	if (len < 4 || memcmp(body, "k8s\0", 4) != 0) {
		snprintf(err, errlen, "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]");
		return -EINVAL;
	}
	while (r.p < r.end) {
		uint64_t tag;
		struct rd c;

		if (varint(&r, &tag) < 0 || (tag & 7) != 2 || chunk(&r, &c) < 0) {
			snprintf(err, errlen, "proto: malformed runtime.Unknown");
			return -EINVAL;
		}
		if ((tag >> 3) == 1)
			tm = c;
		else if ((tag >> 3) == 2)
			raw = c;
	}
	while (tm.p < tm.end) {
		uint64_t tag;
		struct rd c;

		if (varint(&tm, &tag) < 0 || (tag & 7) != 2 || chunk(&tm, &c) < 0)
			break;
		if ((tag >> 3) == 1)
			snprintf(av, sizeof(av), "%.*s", (int)(c.end - c.p), (const char *)c.p);
		else if ((tag >> 3) == 2)
			snprintf(kind, sizeof(kind), "%.*s", (int)(c.end - c.p), (const char *)c.p);
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct pctx x = { 0 };
		json_t *obj;

		if (strcmp(kinds[i].api_version, av) != 0 || strcmp(kinds[i].kind, kind) != 0)
			continue;
		if (raw.p == NULL || (obj = decode_msg(raw, &kinds[i].msg, "", 0, &x)) == NULL) {
			if (x.unsupported) {
				snprintf(err, errlen, "the protobuf form of %s %s sets %s, which this server does not decode; send JSON",
					 av, kind, x.what);
				return -ENOTSUP;
			}
			snprintf(err, errlen, "proto: malformed %s", kind);
			return -EINVAL;
		}
		json_object_set_new(obj, "apiVersion", json_string(av));
		json_object_set_new(obj, "kind", json_string(kind));
		*ret = obj;
		return 0;
	}
	snprintf(err, errlen, "the protobuf form of %s %s is not supported by this server; send JSON", av, kind);
	return -ENOTSUP;
}
