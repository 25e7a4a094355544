/* router.c — from an HTTP request to an answer: authentication (bearer tokens), the
 * request's verb and resource as kube-apiserver's RequestInfo reads them, faults,
 * authorization, then discovery, OpenAPI, the admin endpoints or the resource verbs; and
 * afterwards the counters, the audit line and the debug log. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Path segments looked at; longer paths are not API paths. */
#define ROUTER_SEGMENTS_MAX 12
/* The version the server says it is (/version). */
#define ROUTER_MAJOR "1"
#define ROUTER_MINOR "31"
#define ROUTER_GIT_VERSION "v1.31.0"

struct path {
	unsigned n;
	char seg[ROUTER_SEGMENTS_MAX][FK_NAME_MAX];
};

static int
split_path(const char *p, struct path *out)
{
	out->n = 0;
	while (*p == '/')
		p++;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (out->n >= ROUTER_SEGMENTS_MAX || n >= FK_NAME_MAX)
			return -E2BIG;
		memcpy(out->seg[out->n], p, n);
		out->seg[out->n][n] = '\0';
		out->n++;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* Go's strconv.ParseBool true values. */
static bool
query_true(const struct fk_request *r, const char *key)
{
	const char *v = fk_req_query(r, key);

	return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
			     strcmp(v, "t") == 0 || strcmp(v, "T") == 0);
}

/* ---- authentication ---- */

/* 0: authenticated (or anonymous, u->name empty); -EACCES: a bad token. */
static int
authenticate(struct fk_state *st, struct fk_request *r)
{
	const char *h = fk_req_header(r, "Authorization");
	const char *tok;
	int e;

	memset(&r->user, 0, sizeof(r->user));
	if (h == NULL)
		return 0;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return -EACCES;
	tok = h + 7;
	while (*tok == ' ')
		tok++;
	pthread_mutex_lock(&st->lock);
	e = fk_token_user(st, tok, &r->user);
	pthread_mutex_unlock(&st->lock);
	return e;
}

/* ---- request info ---- */

static void
set_verb(struct fk_request *r, bool watch)
{
	const char *m = r->method;
	const char *v = "unknown";

	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		v = watch ? "watch" : r->name[0] != '\0' ? "get" : "list";
	else if (strcmp(m, "POST") == 0)
		v = "create";
	else if (strcmp(m, "PUT") == 0)
		v = "update";
	else if (strcmp(m, "PATCH") == 0)
		v = "patch";
	else if (strcmp(m, "DELETE") == 0)
		v = r->name[0] != '\0' ? "delete" : "deletecollection";
	snprintf(r->verb, sizeof(r->verb), "%s", v);
}

/* Fills verb/group/version/resource/namespace/name/subresource for /api and /apis paths.
 * Returns false for paths that are not resource paths. */
static bool
resource_info(struct fk_request *r, const struct path *p)
{
	unsigned i;
	bool watch = false;

	if (p->n >= 2 && strcmp(p->seg[0], "api") == 0) {
		r->group[0] = '\0';
		snprintf(r->version, sizeof(r->version), "%s", p->seg[1]);
		i = 2;
	} else if (p->n >= 3 && strcmp(p->seg[0], "apis") == 0) {
		snprintf(r->group, sizeof(r->group), "%s", p->seg[1]);
		snprintf(r->version, sizeof(r->version), "%s", p->seg[2]);
		i = 3;
	} else {
		return false;
	}
	if (i >= p->n)
		return false;
	if (strcmp(p->seg[i], "watch") == 0) {
		watch = true;
		i++;
	}
	if (i < p->n && strcmp(p->seg[i], "namespaces") == 0 && i + 1 < p->n) {
		snprintf(r->namespace, sizeof(r->namespace), "%s", p->seg[i + 1]);
		if (i + 2 < p->n && strcmp(p->seg[i + 2], "status") != 0 &&
		    strcmp(p->seg[i + 2], "finalize") != 0)
			i += 2;
	}
	if (i >= p->n)
		return false;
	snprintf(r->resource, sizeof(r->resource), "%s", p->seg[i]);
	if (i + 1 < p->n)
		snprintf(r->name, sizeof(r->name), "%s", p->seg[i + 1]);
	if (i + 2 < p->n)
		snprintf(r->subresource, sizeof(r->subresource), "%s", p->seg[i + 2]);
	if (i + 3 < p->n)
		return false;
	/* /api/v1/namespaces/x: the namespace is the object itself */
	if (strcmp(r->resource, "namespaces") == 0 && r->group[0] == '\0')
		snprintf(r->namespace, sizeof(r->namespace), "%s", r->name);
	if (!watch && (strcmp(r->method, "GET") == 0) && query_true(r, "watch"))
		watch = true;
	set_verb(r, watch);
	return true;
}

/* ---- content negotiation ---- */

struct media {
	char type[64];                  /* "application/json" */
	char as[64], g[64], v[32];
};

/* The first acceptable media type of Accept that is JSON (any "as" form), or what the
 * client accepts when nothing is said. Returns false when only other forms are accepted. */
static bool
negotiate(const struct fk_request *r, struct media *m)
{
	const char *a = fk_req_header(r, "Accept");
	const char *p = a;

	memset(m, 0, sizeof(*m));
	snprintf(m->type, sizeof(m->type), "application/json");
	if (a == NULL || *a == '\0')
		return true;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char item[512], *save = NULL, *tok;
		struct media cand;

		memset(&cand, 0, sizeof(cand));
		if (n >= sizeof(item)) {
			p += n;
			if (*p == ',')
				p++;
			continue;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		p += n;
		if (*p == ',')
			p++;
		for (tok = strtok_r(item, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
			while (*tok == ' ')
				tok++;
			char *end = tok + strlen(tok);
			while (end > tok && end[-1] == ' ')
				*--end = '\0';
			if (cand.type[0] == '\0')
				snprintf(cand.type, sizeof(cand.type), "%s", tok);
			else if (strncmp(tok, "as=", 3) == 0)
				snprintf(cand.as, sizeof(cand.as), "%s", tok + 3);
			else if (strncmp(tok, "g=", 2) == 0)
				snprintf(cand.g, sizeof(cand.g), "%s", tok + 2);
			else if (strncmp(tok, "v=", 2) == 0)
				snprintf(cand.v, sizeof(cand.v), "%s", tok + 2);
		}
		if (strcmp(cand.type, "application/json") == 0 || strcmp(cand.type, "*/*") == 0 ||
		    strcmp(cand.type, "application/*") == 0 || strcmp(cand.type, "application/yaml") == 0) {
			*m = cand;
			snprintf(m->type, sizeof(m->type), "application/json");
			return true;
		}
	}
	return false;
}

static void
reply_not_acceptable(struct fk_request *r)
{
	fk_reply_status(r, 406, "NotAcceptable", NULL,
			"only the following media types are accepted: application/json, "
			"application/yaml, application/vnd.kubernetes.protobuf");
}

/* ---- non-resource paths ---- */

static void
reply_version(struct fk_request *r)
{
	fk_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major", ROUTER_MAJOR,
		"minor", ROUTER_MINOR, "gitVersion", ROUTER_GIT_VERSION, "gitCommit", "fake",
		"gitTreeState", "clean", "buildDate", "2024-08-13T07:28:49Z", "goVersion", "go1.22.5",
		"compiler", "gc", "platform", "linux/amd64"));
}

static void
reply_discovery(struct fk_state *st, struct fk_request *r, const struct path *p)
{
	struct media m;
	json_t *doc = NULL;
	bool aggregated;

	if (!negotiate(r, &m)) {
		reply_not_acceptable(r);
		return;
	}
	aggregated = strcmp(m.as, "APIGroupDiscoveryList") == 0 &&
		     strcmp(m.g, "apidiscovery.k8s.io") == 0 &&
		     (strcmp(m.v, "v2") == 0 || strcmp(m.v, "v2beta1") == 0);
	if (p->n == 1 && aggregated) {
		doc = fk_discovery_aggregated(st, strcmp(p->seg[0], "api") == 0, m.v);
		fk_reply_json(r, 200, doc);
		static char ct[2][96] = {
			"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
			"application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
		};
		r->resp_type = strcmp(m.v, "v2") == 0 ? ct[0] : ct[1];
		snprintf(r->etag, sizeof(r->etag), "\"%llx-%llu\"",
			 (unsigned long long)st->reg.generation, (unsigned long long)st->reg.n);
		return;
	}
	if (p->n == 1 && strcmp(p->seg[0], "api") == 0)
		doc = fk_discovery_api_versions(st);
	else if (p->n == 1)
		doc = fk_discovery_groups(st);
	else if (p->n == 2 && strcmp(p->seg[0], "api") == 0)
		doc = fk_discovery_resources(st, "", p->seg[1]);
	else if (p->n == 2)
		doc = fk_discovery_group(st, p->seg[1]);
	else if (p->n == 3 && strcmp(p->seg[0], "apis") == 0)
		doc = fk_discovery_resources(st, p->seg[1], p->seg[2]);
	if (doc == NULL) {
		fk_reply_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	fk_reply_json(r, 200, doc);
}

static void
reply_openapi(struct fk_state *st, struct fk_request *r, const struct path *p)
{
	json_t *doc = NULL;
	char gv[600];

	if (p->n == 2 && strcmp(p->seg[1], "v2") == 0) {
		const char *accept = fk_req_header(r, "Accept");
		char *pb = NULL;
		size_t len = 0;

		if (accept != NULL && strstr(accept, "protobuf") != NULL) {
			if (fk_openapi_v2_protobuf(st, &pb, &len) < 0) {
				fk_reply_status(r, 500, "InternalError", NULL, "out of memory");
				return;
			}
			fk_reply_bytes(r, 200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", pb, len);
			return;
		}
		doc = fk_openapi_v2(st);
	} else if (p->n == 2 && strcmp(p->seg[1], "v3") == 0) {
		doc = fk_openapi_v3_root(st);
	} else if (p->n >= 3 && strcmp(p->seg[1], "v3") == 0) {
		size_t len = 0;

		gv[0] = '\0';
		for (unsigned i = 2; i < p->n; i++) {
			int n = snprintf(gv + len, sizeof(gv) - len, "%s%s", i > 2 ? "/" : "", p->seg[i]);
			if (n < 0 || (size_t)n >= sizeof(gv) - len)
				break;
			len += (size_t)n;
		}
		doc = fk_openapi_v3_doc(st, gv);
	}
	if (doc == NULL) {
		fk_reply_text(r, 404, "text/plain; charset=utf-8", "404 page not found\n");
		return;
	}
	fk_reply_json(r, 200, doc);
}

/* ---- the whole request ---- */

static void
reply_unauthorized(struct fk_request *r)
{
	fk_reply_status(r, 401, "Unauthorized", NULL, "Unauthorized");
}

static void
reply_forbidden(struct fk_state *st, struct fk_request *r)
{
	char what[600], where[400];
	struct fk_rtype *t = fk_rtype_find(st, r->group, r->version, r->resource, NULL);
	json_t *details = json_object();

	if (r->resource[0] == '\0') {
		fk_reply_status(r, 403, "Forbidden", details, "forbidden: User \"%s\" cannot %s path \"%s\"",
				r->user.name[0] ? r->user.name : "system:anonymous",
				r->verb, r->path);
		return;
	}
	if (r->name[0] != '\0')
		json_object_set_new(details, "name", json_string(r->name));
	if (r->group[0] != '\0')
		json_object_set_new(details, "group", json_string(r->group));
	json_object_set_new(details, "kind", json_string(r->resource));
	if (t != NULL)
		fk_rtype_qualified(t, what, sizeof(what));
	else
		snprintf(what, sizeof(what), "%s%s%s", r->resource, r->group[0] ? "." : "", r->group);
	if (r->subresource[0] != '\0') {
		size_t n = strlen(what);
		snprintf(what + n, sizeof(what) - n, "/%s", r->subresource);
	}
	if (r->namespace[0] != '\0' && strcmp(r->resource, "namespaces") != 0)
		snprintf(where, sizeof(where), "in the namespace \"%s\"", r->namespace);
	else
		snprintf(where, sizeof(where), "at the cluster scope");
	if (r->name[0] != '\0')
		fk_reply_status(r, 403, "Forbidden", details,
				"%s \"%s\" is forbidden: User \"%s\" cannot %s resource \"%s%s%s\" in API group \"%s\" %s",
				what, r->name, r->user.name, r->verb, r->resource,
				r->subresource[0] ? "/" : "", r->subresource, r->group, where);
	else
		fk_reply_status(r, 403, "Forbidden", details,
				"%s is forbidden: User \"%s\" cannot %s resource \"%s%s%s\" in API group \"%s\" %s",
				what, r->user.name, r->verb, r->resource,
				r->subresource[0] ? "/" : "", r->subresource, r->group, where);
}

static void
sleep_latency(struct fk_state *st, long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&st->lock);
	while (!st->stopping) {
		if (pthread_cond_timedwait(&st->changed, &st->lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&st->lock);
}

static bool
public_path(const char *path)
{
	return strcmp(path, "/version") == 0 || strcmp(path, "/healthz") == 0 ||
	       strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0;
}

static void
log_request(const struct fk_request *r, long ms)
{
	if (!fk_log_enabled(FK_DEBUG))
		return;
	fk_log(FK_DEBUG, "request", json_pack("{s:s,s:s,s:s,s:i,s:s,s:i}", "method", r->method,
		"path", r->path, "verb", r->verb, "code", (int)r->status, "user",
		r->user.name[0] ? r->user.name : "system:anonymous", "ms", (int)ms));
}

void
fk_handle(struct fk_state *st, struct fk_request *r)
{
	long start = fk_mono_ms(), latency = 0;
	struct path p;
	struct fk_rtype *t;
	unsigned version = 0;
	bool is_resource, admin_path;

	if (split_path(r->path, &p) < 0) {
		fk_reply_text(r, 404, "text/plain; charset=utf-8", "404 page not found\n");
		goto done;
	}
	admin_path = p.n >= 1 && strcmp(p.seg[0], "fake") == 0;
	if (authenticate(st, r) < 0 || (r->user.name[0] == '\0' && !public_path(r->path))) {
		snprintf(r->verb, sizeof(r->verb), "%s", r->method);
		reply_unauthorized(r);
		goto done;
	}
	if (admin_path) {
		if (!r->user.admin) {
			fk_reply_status(r, 403, "Forbidden", NULL, "the admin endpoints need the admin token");
			return;
		}
		fk_admin(st, r);
		return;          /* not counted: tests count what clients do */
	}
	is_resource = resource_info(r, &p);
	if (!is_resource) {
		snprintf(r->verb, sizeof(r->verb), "%s", strcmp(r->method, "GET") == 0 ? "get" : r->method);
		snprintf(r->resource, sizeof(r->resource), "%s", r->path);
	}

	pthread_mutex_lock(&st->lock);
	if (fk_faults_intercept(st, r, &latency)) {
		pthread_mutex_unlock(&st->lock);
		goto done;
	}
	pthread_mutex_unlock(&st->lock);
	if (latency > 0)
		sleep_latency(st, latency);

	pthread_mutex_lock(&st->lock);
	if (!fk_authorized(st, r)) {
		reply_forbidden(st, r);
		goto unlock;
	}
	if (!is_resource) {
		if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
			if (p.n >= 1 && (strcmp(p.seg[0], "api") == 0 || strcmp(p.seg[0], "apis") == 0))
				fk_reply_method_not_allowed(r);
			else
				fk_reply_text(r, 404, "text/plain; charset=utf-8", "404 page not found\n");
		} else if (strcmp(r->path, "/version") == 0 || strcmp(r->path, "/version/") == 0) {
			reply_version(r);
		} else if (public_path(r->path)) {
			fk_reply_text(r, 200, "text/plain; charset=utf-8", "ok");
		} else if (p.n >= 1 && p.n <= 3 &&
			   (strcmp(p.seg[0], "api") == 0 || strcmp(p.seg[0], "apis") == 0)) {
			reply_discovery(st, r, &p);
		} else if (p.n >= 2 && strcmp(p.seg[0], "openapi") == 0) {
			reply_openapi(st, r, &p);
		} else {
			fk_reply_text(r, 404, "text/plain; charset=utf-8", "404 page not found\n");
		}
		goto unlock;
	}
	t = fk_rtype_find(st, r->group, r->version, r->resource, &version);
	if (t == NULL) {
		fk_reply_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		goto unlock;
	}
	{
		struct media m;

		if (!negotiate(r, &m)) {
			reply_not_acceptable(r);
			goto unlock;
		}
	}
	fk_crud(st, r, t, version);
unlock:
	pthread_mutex_unlock(&st->lock);
done:
	/* a watch counts once, when its stream starts */
	fk_stats_request(&st->stats, r);
	fk_audit(st, r);
	log_request(r, fk_mono_ms() - start);
}
