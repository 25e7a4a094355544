/* table.c — server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for,
 * with the usual columns of the built-in kinds and a CRD's additionalPrinterColumns
 * (a JSONPath subset: .field, [n], [*], [?(@.path=="value")] and !=). */
#include "fake.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Nodes one JSONPath step may produce. */
#define TABLE_JSONPATH_NODES_MAX 1024

bool
fk_wants_table(const struct fk_request *r)
{
	const char *a = fk_req_header(r, "Accept");

	return a != NULL && strstr(a, "as=Table") != NULL && strstr(a, "g=meta.k8s.io") != NULL;
}

/* ---- JSONPath ---- */

static int
step_field(json_t *in, const char *name, json_t *out)
{
	size_t i;
	json_t *v;

	json_array_foreach(in, i, v) {
		json_t *x = json_is_object(v) ? json_object_get(v, name) : NULL;

		if (x != NULL && json_array_size(out) < TABLE_JSONPATH_NODES_MAX)
			json_array_append(out, x);
	}
	return 0;
}

/* @.a.b=="v" on one node */
static bool
filter_ok(json_t *node, const char *expr)
{
	char path[256], want[256];
	const char *op = strstr(expr, "=="), *ne = strstr(expr, "!=");
	bool negate = false;
	size_t n;
	json_t *v = node;

	if (ne != NULL && (op == NULL || ne < op)) {
		op = ne;
		negate = true;
	}
	if (op == NULL || strncmp(expr, "@.", 2) != 0)
		return false;
	n = (size_t)(op - expr - 2);
	if (n >= sizeof(path))
		return false;
	memcpy(path, expr + 2, n);
	path[n] = '\0';
	while (n > 0 && path[n - 1] == ' ')
		path[--n] = '\0';
	const char *rhs = op + 2;
	while (*rhs == ' ')
		rhs++;
	n = strlen(rhs);
	while (n > 0 && rhs[n - 1] == ' ')
		n--;
	if (n >= 2 && (rhs[0] == '"' || rhs[0] == '\'') && rhs[n - 1] == rhs[0]) {
		rhs++;
		n -= 2;
	}
	if (n >= sizeof(want))
		return false;
	memcpy(want, rhs, n);
	want[n] = '\0';
	v = fk_jpath(node, path);
	char have[256] = "";
	if (json_is_string(v))
		snprintf(have, sizeof(have), "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(have, sizeof(have), "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(have, sizeof(have), "%s", json_is_true(v) ? "true" : "false");
	else if (v == NULL)
		return negate;
	return (strcmp(have, want) == 0) != negate;
}

int
fk_jsonpath(json_t *obj, const char *expr, json_t *out)
{
	json_t *cur = json_pack("[O]", obj), *next;
	const char *p = expr;
	char buf[256];
	int r = -EINVAL;

	if (*p == '{') {
		p++;
	}
	while (*p != '\0' && *p != '}') {
		next = json_array();
		if (*p == '.') {
			size_t n;

			p++;
			n = strcspn(p, ".[}");
			if (n == 0 || n >= sizeof(buf)) {
				json_decref(next);
				goto out;
			}
			memcpy(buf, p, n);
			buf[n] = '\0';
			p += n;
			step_field(cur, buf, next);
		} else if (*p == '[') {
			const char *end = strchr(p, ']');
			size_t n, i;
			json_t *v;

			if (end == NULL || (n = (size_t)(end - p - 1)) >= sizeof(buf)) {
				json_decref(next);
				goto out;
			}
			memcpy(buf, p + 1, n);
			buf[n] = '\0';
			p = end + 1;
			json_array_foreach(cur, i, v) {
				if (!json_is_array(v))
					continue;
				if (strcmp(buf, "*") == 0) {
					json_array_extend(next, v);
				} else if (buf[0] == '?') {
					char inner[256];
					size_t m = strlen(buf);
					size_t j;
					json_t *x;

					if (m < 4 || buf[1] != '(' || buf[m - 1] != ')')
						continue;
					snprintf(inner, sizeof(inner), "%.*s", (int)(m - 3), buf + 2);
					json_array_foreach(v, j, x) {
						if (filter_ok(x, inner))
							json_array_append(next, x);
					}
				} else {
					char *e;
					long idx = strtol(buf, &e, 10);

					if (*e != '\0')
						continue;
					if (idx < 0)
						idx += (long)json_array_size(v);
					if (idx >= 0 && (size_t)idx < json_array_size(v))
						json_array_append(next, json_array_get(v, (size_t)idx));
				}
			}
		} else {
			json_decref(next);
			goto out;
		}
		json_decref(cur);
		cur = next;
	}
	json_array_extend(out, cur);
	r = 0;
out:
	json_decref(cur);
	return r;
}

/* ---- columns ---- */

struct column {
	const char *name, *type, *format, *path;
	int priority;
};

static json_t *
age(json_t *obj)
{
	const char *ts = fk_meta_str(obj, "creationTimestamp");
	time_t t;
	char out[32];

	if (ts == NULL || fk_parse_rfc3339(ts, &t) < 0)
		return json_string("<unknown>");
	fk_human_age(t, out);
	return json_string(out);
}

static json_t *
count_of(json_t *v)
{
	return json_integer((json_int_t)(json_is_object(v) ? json_object_size(v) : json_array_size(v)));
}

static json_t *
str_or(json_t *v, const char *dflt)
{
	return json_is_string(v) ? json_incref(v) : json_string(dflt);
}

/* The built-in kinds' columns: each cell computed from the object. */
static json_t *
builtin_cell(const struct fk_rtype *t, const char *col, json_t *obj)
{
	json_t *spec = fk_jobj(obj, "spec"), *status = fk_jobj(obj, "status");
	char buf[512];

	if (strcmp(col, "Name") == 0)
		return str_or(json_object_get(fk_jobj(obj, "metadata"), "name"), "");
	if (strcmp(col, "Age") == 0)
		return age(obj);
	if (strcmp(col, "Created At") == 0)
		return str_or(json_object_get(fk_jobj(obj, "metadata"), "creationTimestamp"), "");
	switch (t->hook) {
	case FK_HOOK_NAMESPACE:
		return str_or(json_object_get(status, "phase"), "");
	case FK_HOOK_SECRET:
		if (strcmp(col, "Type") == 0)
			return str_or(json_object_get(obj, "type"), "");
		return count_of(json_object_get(obj, "data"));
	case FK_HOOK_CONFIGMAP:
		return json_integer((json_int_t)(json_object_size(json_object_get(obj, "data")) +
						 json_object_size(json_object_get(obj, "binaryData"))));
	case FK_HOOK_SERVICEACCOUNT:
		return count_of(json_object_get(obj, "secrets"));
	case FK_HOOK_LEASE:
		return str_or(json_object_get(spec, "holderIdentity"), "");
	case FK_HOOK_SERVICE:
		if (strcmp(col, "Type") == 0)
			return str_or(json_object_get(spec, "type"), "ClusterIP");
		if (strcmp(col, "Cluster-IP") == 0)
			return str_or(json_object_get(spec, "clusterIP"), "<none>");
		if (strcmp(col, "External-IP") == 0)
			return json_string("<none>");
		if (strcmp(col, "Port(s)") == 0) {
			size_t i, o = 0;
			json_t *p;

			buf[0] = '\0';
			json_array_foreach(json_object_get(spec, "ports"), i, p) {
				int n = snprintf(buf + o, sizeof(buf) - o, "%s%lld/%s", i ? "," : "",
						 (long long)json_integer_value(json_object_get(p, "port")),
						 fk_jstr(p, "protocol") ? fk_jstr(p, "protocol") : "TCP");
				if (n < 0 || (size_t)n >= sizeof(buf) - o)
					break;
				o += (size_t)n;
			}
			return json_string(buf[0] ? buf : "<none>");
		}
		break;
	case FK_HOOK_POD:
		if (strcmp(col, "Ready") == 0) {
			snprintf(buf, sizeof(buf), "0/%zu", json_array_size(json_object_get(spec, "containers")));
			return json_string(buf);
		}
		if (strcmp(col, "Status") == 0)
			return str_or(json_object_get(status, "phase"), "Pending");
		if (strcmp(col, "Restarts") == 0)
			return json_integer(0);
		break;
	case FK_HOOK_DEPLOYMENT:
		if (strcmp(col, "Ready") == 0) {
			snprintf(buf, sizeof(buf), "%lld/%lld",
				 (long long)json_integer_value(json_object_get(status, "readyReplicas")),
				 (long long)json_integer_value(json_object_get(spec, "replicas")));
			return json_string(buf);
		}
		if (strcmp(col, "Up-to-date") == 0)
			return json_integer(json_integer_value(json_object_get(status, "updatedReplicas")));
		if (strcmp(col, "Available") == 0)
			return json_integer(json_integer_value(json_object_get(status, "availableReplicas")));
		break;
	case FK_HOOK_EVENT:
	case FK_HOOK_EVENTS_V1: {
		json_t *io = fk_jobj(obj, "involvedObject");

		if (strcmp(col, "Last Seen") == 0) {
			const char *ts = fk_jstr(obj, "lastTimestamp") ? fk_jstr(obj, "lastTimestamp") : fk_jstr(obj, "eventTime");
			time_t when;

			if (ts == NULL || fk_parse_rfc3339(ts, &when) < 0)
				return age(obj);
			fk_human_age(when, buf);
			return json_string(buf);
		}
		if (strcmp(col, "Type") == 0)
			return str_or(json_object_get(obj, "type"), "");
		if (strcmp(col, "Reason") == 0)
			return str_or(json_object_get(obj, "reason"), "");
		if (strcmp(col, "Object") == 0) {
			char kind[128];

			snprintf(kind, sizeof(kind), "%s", fk_jstr(io, "kind") ? fk_jstr(io, "kind") : "");
			for (char *c = kind; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			snprintf(buf, sizeof(buf), "%s/%s", kind, fk_jstr(io, "name") ? fk_jstr(io, "name") : "");
			return json_string(buf);
		}
		if (strcmp(col, "Message") == 0)
			return str_or(json_object_get(obj, "message"), "");
		break;
	}
	case FK_HOOK_RBAC:
		if (strcmp(col, "Role") == 0) {
			json_t *ref = fk_jobj(obj, "roleRef");

			snprintf(buf, sizeof(buf), "%s/%s", fk_jstr(ref, "kind") ? fk_jstr(ref, "kind") : "",
				 fk_jstr(ref, "name") ? fk_jstr(ref, "name") : "");
			return json_string(buf);
		}
		break;
	case FK_HOOK_PDB:
		if (strcmp(col, "Min Available") == 0)
			return json_object_get(spec, "minAvailable") ? json_incref(json_object_get(spec, "minAvailable")) : json_string("N/A");
		if (strcmp(col, "Max Unavailable") == 0)
			return json_object_get(spec, "maxUnavailable") ? json_incref(json_object_get(spec, "maxUnavailable")) : json_string("N/A");
		if (strcmp(col, "Allowed Disruptions") == 0)
			return json_integer(json_integer_value(json_object_get(status, "disruptionsAllowed")));
		break;
	case FK_HOOK_NETPOL:
		if (strcmp(col, "Pod-Selector") == 0) {
			json_t *ml = json_object_get(fk_jobj(spec, "podSelector"), "matchLabels"), *v;
			const char *k;
			size_t o = 0;

			buf[0] = '\0';
			json_object_foreach(ml, k, v) {
				int n = snprintf(buf + o, sizeof(buf) - o, "%s%s=%s", o ? "," : "", k,
						 json_string_value(v) ? json_string_value(v) : "");
				if (n < 0 || (size_t)n >= sizeof(buf) - o)
					break;
				o += (size_t)n;
			}
			return json_string(buf[0] ? buf : "<none>");
		}
		break;
	default:
		break;
	}
	return json_string("");
}

static const struct column *
builtin_columns(const struct fk_rtype *t)
{
	static const struct column ns[] = { { "Name", "string", "name", NULL, 0 }, { "Status", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column secret[] = { { "Name", "string", "name", NULL, 0 }, { "Type", "string", "", NULL, 0 }, { "Data", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column data[] = { { "Name", "string", "name", NULL, 0 }, { "Data", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column sa[] = { { "Name", "string", "name", NULL, 0 }, { "Secrets", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column lease[] = { { "Name", "string", "name", NULL, 0 }, { "Holder", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column svc[] = { { "Name", "string", "name", NULL, 0 }, { "Type", "string", "", NULL, 0 }, { "Cluster-IP", "string", "", NULL, 0 }, { "External-IP", "string", "", NULL, 0 }, { "Port(s)", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column pod[] = { { "Name", "string", "name", NULL, 0 }, { "Ready", "string", "", NULL, 0 }, { "Status", "string", "", NULL, 0 }, { "Restarts", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column deploy[] = { { "Name", "string", "name", NULL, 0 }, { "Ready", "string", "", NULL, 0 }, { "Up-to-date", "string", "", NULL, 0 }, { "Available", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column event[] = { { "Last Seen", "string", "", NULL, 0 }, { "Type", "string", "", NULL, 0 }, { "Reason", "string", "", NULL, 0 }, { "Object", "string", "", NULL, 0 }, { "Message", "string", "", NULL, 0 }, { 0 } };
	static const struct column created[] = { { "Name", "string", "name", NULL, 0 }, { "Created At", "date", "", NULL, 0 }, { 0 } };
	static const struct column binding[] = { { "Name", "string", "name", NULL, 0 }, { "Role", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column pdb[] = { { "Name", "string", "name", NULL, 0 }, { "Min Available", "string", "", NULL, 0 }, { "Max Unavailable", "string", "", NULL, 0 }, { "Allowed Disruptions", "integer", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column netpol[] = { { "Name", "string", "name", NULL, 0 }, { "Pod-Selector", "string", "", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };
	static const struct column plain[] = { { "Name", "string", "name", NULL, 0 }, { "Age", "string", "", NULL, 0 }, { 0 } };

	switch (t->hook) {
	case FK_HOOK_NAMESPACE: return ns;
	case FK_HOOK_SECRET: return secret;
	case FK_HOOK_CONFIGMAP: return data;
	case FK_HOOK_SERVICEACCOUNT: return sa;
	case FK_HOOK_LEASE: return lease;
	case FK_HOOK_SERVICE: return svc;
	case FK_HOOK_POD: return pod;
	case FK_HOOK_DEPLOYMENT: return deploy;
	case FK_HOOK_EVENT:
	case FK_HOOK_EVENTS_V1: return event;
	case FK_HOOK_CRD: return created;
	case FK_HOOK_RBAC: return strstr(t->kind, "Binding") != NULL ? binding : created;
	case FK_HOOK_PDB: return pdb;
	case FK_HOOK_NETPOL: return netpol;
	default: return plain;
	}
}

/* A CRD column's cell: the first JSONPath result, or all of them, or null. */
static json_t *
crd_cell(json_t *obj, const json_t *col)
{
	const char *path = fk_jstr(col, "jsonPath"), *type = fk_jstr(col, "type");
	json_t *res = json_array(), *cell;

	if (path == NULL || fk_jsonpath(obj, path, res) < 0 || json_array_size(res) == 0) {
		json_decref(res);
		return json_null();
	}
	cell = json_array_size(res) == 1 ? json_incref(json_array_get(res, 0)) : json_incref(res);
	json_decref(res);
	if (type != NULL && strcmp(type, "date") == 0 && json_is_string(cell)) {
		time_t t;
		char out[32];

		if (fk_parse_rfc3339(json_string_value(cell), &t) == 0) {
			fk_human_age(t, out);
			json_decref(cell);
			cell = json_string(out);
		}
	}
	return cell;
}

json_t *
fk_table(struct fk_state *st, const struct fk_rtype *t, unsigned version, json_t *const *items, size_t n,
	 const char *include_object, bool with_columns)
{
	json_t *tab = json_pack("{s:s,s:s,s:{}}", "kind", "Table", "apiVersion", "meta.k8s.io/v1", "metadata");
	json_t *defs = json_array(), *rows = json_array();
	const json_t *crd_cols = (t->flags & FK_CRD) ? t->versions[version].columns : NULL;
	const struct column *cols = builtin_columns(t);
	const char *inc = include_object != NULL ? include_object : "Metadata";
	size_t i, k;
	json_t *col;

	(void)st;
	if (json_array_size(crd_cols) > 0) {
		json_array_append_new(defs, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", "Name", "type", "string",
						      "format", "name", "description", "Name must be unique within a namespace.",
						      "priority", 0));
		json_array_foreach(crd_cols, k, col) {
			json_array_append_new(defs, json_pack("{s:s,s:s,s:s,s:s,s:I}", "name",
				fk_jstr(col, "name") ? fk_jstr(col, "name") : "", "type",
				fk_jstr(col, "type") ? fk_jstr(col, "type") : "string", "format",
				fk_jstr(col, "format") ? fk_jstr(col, "format") : "", "description",
				fk_jstr(col, "description") ? fk_jstr(col, "description") : "", "priority",
				json_integer_value(json_object_get(col, "priority"))));
		}
	} else {
		for (const struct column *c = cols; c->name != NULL; c++)
			json_array_append_new(defs, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type",
							      c->type, "format", c->format, "description", "",
							      "priority", c->priority));
	}
	for (i = 0; i < n; i++) {
		json_t *obj = items[i], *cells = json_array(), *row;

		if (json_array_size(crd_cols) > 0) {
			json_array_append_new(cells, str_or(json_object_get(fk_jobj(obj, "metadata"), "name"), ""));
			json_array_foreach(crd_cols, k, col)
				json_array_append_new(cells, crd_cell(obj, col));
		} else {
			for (const struct column *c = cols; c->name != NULL; c++)
				json_array_append_new(cells, builtin_cell(t, c->name, obj));
		}
		row = json_pack("{s:o}", "cells", cells);
		if (strcmp(inc, "Object") == 0) {
			json_t *full = json_deep_copy(obj);
			char gv[400];

			snprintf(gv, sizeof(gv), "%s%s%s", t->group, t->group[0] ? "/" : "", t->versions[version].name);
			json_object_set_new(full, "apiVersion", json_string(gv));
			json_object_set_new(full, "kind", json_string(t->kind));
			json_object_set_new(row, "object", full);
		} else if (strcmp(inc, "None") != 0) {
			json_object_set_new(row, "object", json_pack("{s:s,s:s,s:O}", "kind", "PartialObjectMetadata",
				"apiVersion", "meta.k8s.io/v1", "metadata", json_object_get(obj, "metadata")));
		}
		json_array_append_new(rows, row);
	}
	if (with_columns)
		json_object_set_new(tab, "columnDefinitions", defs);
	else
		json_decref(defs);
	json_object_set_new(tab, "rows", rows);
	return tab;
}
