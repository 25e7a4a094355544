/* client.c — the Kubernetes API client: connection pool, rate limit, bearer token,
 * retries, Status errors, and the REST verbs (k8s.h). */
#include "k8s/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/json.h"

/* Longest Status message kept in an error (the rest is cut). */
#define STATUS_MESSAGE_MAX 240
/* The wait before retrying a 429 that names no Retry-After. */
#define RETRY_DEFAULT_MS 1000
/* Longest single wait between retries. */
#define RETRY_WAIT_MAX_MS 30000
/* Longest token read from a file. */
#define TOKEN_MAX (64u << 10)

const struct lk_k8s_resource lk_k8s_secrets = { "", "v1", "secrets", "Secret", true };
const struct lk_k8s_resource lk_k8s_configmaps = { "", "v1", "configmaps", "ConfigMap", true };
const struct lk_k8s_resource lk_k8s_events = { "", "v1", "events", "Event", true };
const struct lk_k8s_resource lk_k8s_serviceaccounts = { "", "v1", "serviceaccounts",
							"ServiceAccount", true };
const struct lk_k8s_resource lk_k8s_namespaces = { "", "v1", "namespaces", "Namespace", false };
const struct lk_k8s_resource lk_k8s_leases = { "coordination.k8s.io", "v1", "leases", "Lease",
					       true };

struct lk_k8s_client {
	struct lk_k8s_config cfg;       /* a copy; key and token in secure memory */
	struct lk_http_client_config http_cfg;

	pthread_mutex_t pool_lock;
	struct lk_http_client *idle[LK_K8S_POOL_MAX];
	size_t nidle;

	pthread_mutex_t token_lock;
	struct lk_secret *auth_line;    /* "Authorization: Bearer ...", NULL: none */
	int64_t token_read_ms;          /* when the file was last read (monotonic) */

	pthread_mutex_t rate_lock;
	double tokens;                  /* the bucket */
	int64_t rate_ms;                /* when it was last filled */

	lk_k8s_observe_fn observe;
	void *observe_arg;
};

void
lk_k8s_error_clear(struct lk_k8s_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->retry_after_ms = -1;
}

const char *
k8s_client_namespace(const struct lk_k8s_client *c)
{
	return c->cfg.namespace;
}

void
k8s_sleep_ms(int64_t ms, const volatile bool *stop)
{
	int64_t end = lk_now_mono_ms() + ms;

	while (stop == NULL || !*stop) {
		int64_t left = end - lk_now_mono_ms();
		struct timespec ts;

		if (left <= 0)
			return;
		if (left > 100)
			left = 100;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

const char *
lk_k8s_api_version(const struct lk_k8s_resource *r, char *out, size_t outlen)
{
	if (r->group[0] == '\0')
		snprintf(out, outlen, "%s", r->version);
	else
		snprintf(out, outlen, "%s/%s", r->group, r->version);
	return out;
}

/* ---- the client --------------------------------------------------------------------- */

static int
dup_str(char **dst, const char *s)
{
	if (s == NULL)
		return 0;
	return (*dst = strdup(s)) != NULL ? 0 : -ENOMEM;
}

static int
dup_mem(char **dst, const char *p, size_t n)
{
	if (p == NULL)
		return 0;
	if ((*dst = malloc(n + 1)) == NULL)
		return -ENOMEM;
	memcpy(*dst, p, n);
	(*dst)[n] = '\0';
	return 0;
}

int
lk_k8s_client_new(const struct lk_k8s_config *cfg, struct lk_k8s_client **ret,
		  struct lk_error *err)
{
	struct lk_k8s_client *c;
	struct lk_k8s_config *k;
	struct lk_http_client *probe = NULL;
	int r;

	if (cfg->server == NULL)
		return lk_error_set(err, -EINVAL, "Kubernetes API: no server");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	k = &c->cfg;
	if (dup_str(&k->server, cfg->server) < 0 || dup_str(&k->ca_file, cfg->ca_file) < 0 ||
	    dup_mem(&k->ca_pem, cfg->ca_pem, cfg->ca_pem_len) < 0 ||
	    dup_str(&k->cert_file, cfg->cert_file) < 0 || dup_str(&k->key_file, cfg->key_file) < 0 ||
	    dup_mem(&k->cert_pem, cfg->cert_pem, cfg->cert_pem_len) < 0 ||
	    (cfg->key_pem != NULL && (k->key_pem = lk_secret_dup(cfg->key_pem)) == NULL) ||
	    dup_str(&k->token_file, cfg->token_file) < 0 ||
	    (cfg->token != NULL && (k->token = lk_secret_dup(cfg->token)) == NULL) ||
	    dup_str(&k->server_name, cfg->server_name) < 0 ||
	    dup_str(&k->namespace, cfg->namespace) < 0 || dup_str(&k->source, cfg->source) < 0) {
		lk_k8s_config_clear(k);
		free(c);
		return lk_error_set(err, -ENOMEM, "out of memory");
	}
	k->ca_pem_len = cfg->ca_pem_len;
	k->cert_pem_len = cfg->cert_pem_len;
	k->insecure = cfg->insecure;
	k->qps = cfg->qps != 0 ? cfg->qps : LK_K8S_QPS_DEFAULT;
	k->burst = cfg->burst != 0 ? cfg->burst : LK_K8S_BURST_DEFAULT;
	k->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : LK_K8S_TIMEOUT_MS_DEFAULT;
	c->http_cfg = (struct lk_http_client_config){
		.tls = {
			.ca_file = k->ca_file, .ca_pem = k->ca_pem, .ca_pem_len = k->ca_pem_len,
			.cert_file = k->cert_file, .key_file = k->key_file,
			.cert_pem = k->cert_pem, .cert_pem_len = k->cert_pem_len,
			.key_pem = k->key_pem, .server_name = k->server_name,
			.insecure = k->insecure,
		},
		.timeout_ms = k->timeout_ms,
	};
	pthread_mutex_init(&c->pool_lock, NULL);
	pthread_mutex_init(&c->token_lock, NULL);
	pthread_mutex_init(&c->rate_lock, NULL);
	c->tokens = (double)k->burst;
	c->rate_ms = lk_now_mono_ms();
	/* One connection now: a bad certificate or key is a start-up error, not a request's. */
	if ((r = lk_http_client_new(&c->http_cfg, &probe, err)) < 0) {
		lk_error_prefix(err, "Kubernetes API (%s)", k->source != NULL ? k->source : k->server);
		lk_k8s_client_free(c);
		return r;
	}
	c->idle[c->nidle++] = probe;
	*ret = c;
	return 0;
}

struct lk_k8s_client *
lk_k8s_client_free(struct lk_k8s_client *c)
{
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < c->nidle; i++)
		lk_http_client_free(c->idle[i]);
	lk_secret_free(c->auth_line);
	lk_k8s_config_clear(&c->cfg);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->token_lock);
	pthread_mutex_destroy(&c->rate_lock);
	free(c);
	return NULL;
}

void
lk_k8s_client_set_observer(struct lk_k8s_client *c, lk_k8s_observe_fn fn, void *arg)
{
	c->observe = fn;
	c->observe_arg = arg;
}

static struct lk_http_client *
pool_get(struct lk_k8s_client *c, struct lk_error *err)
{
	struct lk_http_client *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->nidle > 0)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->pool_lock);
	if (h == NULL && lk_http_client_new(&c->http_cfg, &h, err) < 0)
		return NULL;
	return h;
}

static void
pool_put(struct lk_k8s_client *c, struct lk_http_client *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->nidle < LK_K8S_POOL_MAX) {
		c->idle[c->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	lk_http_client_free(h);
}

/* Waits for a token of the bucket (QPS and burst). */
static void
rate_wait(struct lk_k8s_client *c)
{
	int64_t wait = 0, now;

	if (c->cfg.qps < 0)
		return;
	pthread_mutex_lock(&c->rate_lock);
	now = lk_now_mono_ms();
	c->tokens += (double)(now - c->rate_ms) * c->cfg.qps / 1000.0;
	if (c->tokens > (double)c->cfg.burst)
		c->tokens = (double)c->cfg.burst;
	c->rate_ms = now;
	c->tokens -= 1.0;
	/* In debt: wait until the bucket has refilled to zero. */
	if (c->tokens < 0)
		wait = (int64_t)(-c->tokens * 1000.0 / c->cfg.qps) + 1;
	pthread_mutex_unlock(&c->rate_lock);
	if (wait > 0)
		k8s_sleep_ms(wait, NULL);
}

/* The Authorization line, re-read from the token file when it is older than the reread
 * period or force is set. New copy (caller frees) or NULL when there is no token. */
static struct lk_secret *
auth_line(struct lk_k8s_client *c, bool force, struct lk_error *err, int *ret_rc)
{
	static const char prefix[] = "Authorization: Bearer ";
	struct lk_secret *tok = NULL, *line = NULL, *copy = NULL;
	unsigned char *tmp;
	size_t n;
	int r = 0;

	*ret_rc = 0;
	pthread_mutex_lock(&c->token_lock);
	if (c->auth_line != NULL && !force &&
	    (c->cfg.token_file == NULL || lk_now_mono_ms() - c->token_read_ms < LK_K8S_TOKEN_REREAD_MS))
		goto done;
	if (c->cfg.token_file != NULL) {
		r = lk_secret_read_file(c->cfg.token_file, TOKEN_MAX, true, &tok);
		if (r < 0) {
			/* Keep the token we have: the file may be in the middle of a swap. */
			if (c->auth_line == NULL) {
				lk_error_set(err, r, "%s: %s (the bearer token)", c->cfg.token_file,
					     strerror(-r));
				*ret_rc = r;
			}
			goto done;
		}
	} else if (c->cfg.token != NULL) {
		tok = lk_secret_dup(c->cfg.token);
	} else {
		goto done;
	}
	if (tok == NULL || lk_secret_len(tok) == 0) {
		lk_secret_free(tok);
		goto done;
	}
	n = sizeof(prefix) - 1 + lk_secret_len(tok);
	if ((tmp = sodium_malloc(n)) != NULL) {
		memcpy(tmp, prefix, sizeof(prefix) - 1);
		memcpy(tmp + sizeof(prefix) - 1, lk_secret_bytes(tok), lk_secret_len(tok));
		line = lk_secret_new(tmp, n);
		sodium_free(tmp);
	}
	lk_secret_free(tok);
	if (line != NULL) {
		lk_secret_free(c->auth_line);
		c->auth_line = line;
		c->token_read_ms = lk_now_mono_ms();
	}
done:
	if (c->auth_line != NULL)
		copy = lk_secret_dup(c->auth_line);
	pthread_mutex_unlock(&c->token_lock);
	return copy;
}

/* ---- paths and errors --------------------------------------------------------------- */

static int
build_url(const struct lk_k8s_client *c, const struct k8s_call *call, char *out, size_t outlen)
{
	const struct lk_k8s_resource *r = call->res;
	char seg[600];
	size_t n;
	int w;

	if (call->path != NULL) {
		w = snprintf(out, outlen, "%s%s", c->cfg.server, call->path);
		return w < 0 || (size_t)w >= outlen ? -ENAMETOOLONG : 0;
	}
	if (r->group[0] == '\0')
		w = snprintf(out, outlen, "%s/api/%s", c->cfg.server, r->version);
	else
		w = snprintf(out, outlen, "%s/apis/%s/%s", c->cfg.server, r->group, r->version);
	if (w < 0 || (size_t)w >= outlen)
		return -ENAMETOOLONG;
	n = (size_t)w;
	if (r->namespaced && call->ns != NULL && call->ns[0] != '\0') {
		if (lk_http_escape(call->ns, seg, sizeof(seg)) < 0)
			return -ENAMETOOLONG;
		w = snprintf(out + n, outlen - n, "/namespaces/%s", seg);
		if (w < 0 || (size_t)w >= outlen - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	w = snprintf(out + n, outlen - n, "/%s", r->plural);
	if (w < 0 || (size_t)w >= outlen - n)
		return -ENAMETOOLONG;
	n += (size_t)w;
	if (call->name != NULL) {
		if (lk_http_escape(call->name, seg, sizeof(seg)) < 0)
			return -ENAMETOOLONG;
		w = snprintf(out + n, outlen - n, "/%s%s%s", seg, call->sub != NULL ? "/" : "",
			     call->sub != NULL ? call->sub : "");
		if (w < 0 || (size_t)w >= outlen - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	if (call->query != NULL && call->query[0] != '\0') {
		w = snprintf(out + n, outlen - n, "?%s", call->query);
		if (w < 0 || (size_t)w >= outlen - n)
			return -ENAMETOOLONG;
	}
	return 0;
}

static int
code_of(long status, const char *reason)
{
	switch (status) {
	case 401: case 403: return -EACCES;
	case 404: return -ENOENT;
	case 409: return strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -ESTALE;
	case 410: return -ESTALE;
	case 400: case 422: return -EINVAL;
	case 413: return -E2BIG;
	case 415: return -EPROTONOSUPPORT;
	case 429: return -EAGAIN;
	default: return status >= 500 ? -EAGAIN : -EREMOTEIO;
	}
}

/* "get secrets app/db" for messages. */
static void
what(const struct k8s_call *call, char *out, size_t outlen)
{
	const char *g = call->res->group;

	snprintf(out, outlen, "%s %s%s%s%s%s%s%s%s", call->verb, call->res->plural,
		 g[0] != '\0' ? "." : "", g, call->ns != NULL || call->name != NULL ? " " : "",
		 call->ns != NULL ? call->ns : "", call->ns != NULL && call->name != NULL ? "/" : "",
		 call->name != NULL ? call->name : "", call->sub != NULL ? " (" : "");
	if (call->sub != NULL) {
		size_t n = strlen(out);

		snprintf(out + n, outlen - n, "%s)", call->sub);
	}
}

/* Fills err from a non-2xx answer: a Status when the body is JSON, else only the code
 * (a 429 from API Priority and Fairness is plain text). */
static int
status_error(const struct k8s_call *call, const struct lk_http_response *resp,
	     struct lk_k8s_error *err)
{
	char w[400], msg[STATUS_MESSAGE_MAX + 1] = "";
	const char *reason = "", *m = NULL;
	json_t *st = NULL;
	int code;

	if (strncmp(resp->content_type, "application/json", 16) == 0 && resp->body.len > 0)
		st = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	if (json_is_object(st)) {
		const json_t *details = json_object_get(st, "details");
		const json_t *cause = json_array_get(json_object_get(details, "causes"), 0);

		reason = json_string_value(json_object_get(st, "reason"));
		if (reason == NULL)
			reason = "";
		m = json_string_value(json_object_get(st, "message"));
		if (err != NULL && json_is_string(json_object_get(cause, "field")))
			snprintf(err->field, sizeof(err->field), "%s",
				 json_string_value(json_object_get(cause, "field")));
		if (err != NULL && json_is_integer(json_object_get(details, "retryAfterSeconds")) &&
		    json_integer_value(json_object_get(details, "retryAfterSeconds")) > 0)
			err->retry_after_ms = json_integer_value(json_object_get(details,
									   "retryAfterSeconds")) * 1000;
	}
	if (m != NULL)
		snprintf(msg, sizeof(msg), "%s", m);
	code = code_of(resp->status, reason);
	what(call, w, sizeof(w));
	if (err != NULL) {
		err->status = resp->status;
		snprintf(err->reason, sizeof(err->reason), "%s", reason);
		err->retryable = resp->status == 429 || resp->status >= 500;
		if (resp->retry_after_ms >= 0)
			err->retry_after_ms = resp->retry_after_ms;
	}
	lk_error_set(err != NULL ? &err->base : NULL, code, "%s: %ld %s%s%s", w, resp->status,
		     reason[0] != '\0' ? reason : "error", msg[0] != '\0' ? ": " : "", msg);
	json_decref(st);
	return code;
}

/* ---- one call ----------------------------------------------------------------------- */

int
k8s_call(struct lk_k8s_client *c, const struct k8s_call *call, json_t **ret,
	 struct lk_k8s_error *err)
{
	char url[LK_K8S_URL_MAX], ctype[96], w[400];
	const char *headers[4];
	struct lk_http_response resp = { 0 };
	struct lk_http_client *h = NULL;
	struct lk_secret *auth = NULL;
	struct lk_error herr;
	char *body = NULL;
	size_t body_len = 0;
	int64_t deadline, t0;
	bool reread = false;
	int r, attempt;

	lk_k8s_error_clear(err);
	if ((r = build_url(c, call, url, sizeof(url))) < 0) {
		what(call, w, sizeof(w));
		return lk_error_set(err != NULL ? &err->base : NULL, r, "%s: URL too long", w);
	}
	if (call->body != NULL) {
		body = json_dumps(call->body, JSON_COMPACT);
		if (body == NULL)
			return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
		body_len = strlen(body);
	}
	snprintf(ctype, sizeof(ctype), "Content-Type: %s",
		 call->content_type != NULL ? call->content_type : "application/json");
	headers[0] = "Accept: application/json";
	headers[1] = body != NULL ? ctype : NULL;
	headers[2] = NULL;
	deadline = lk_now_mono_ms() + (call->timeout_ms > 0 ? call->timeout_ms : c->cfg.timeout_ms);
	for (attempt = 0;; attempt++) {
		const struct lk_http_request req = {
			.method = call->method, .url = url, .headers = headers,
			.body = body, .body_len = body_len, .has_body = body != NULL,
			.max_body = call->max_body ? call->max_body : LK_K8S_RESPONSE_MAX,
			.wipe = call->wipe || body != NULL,
			.timeout_ms = deadline - lk_now_mono_ms() > 0 ? deadline - lk_now_mono_ms() : 1,
			.on_data = call->on_data, .arg = call->arg, .cancel = call->cancel,
		};
		struct lk_http_request with_auth = req;
		int64_t wait;

		lk_secret_free(auth);
		auth = auth_line(c, reread, err != NULL ? &err->base : NULL, &r);
		if (r < 0)
			goto out;
		with_auth.secret_header = auth;
		rate_wait(c);
		if (h == NULL && (h = pool_get(c, &herr)) == NULL) {
			r = lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "%s", herr.msg);
			goto out;
		}
		t0 = lk_now_mono_ms();
		r = lk_http_perform(h, &with_auth, &resp, &herr);
		if (c->observe != NULL)
			c->observe(c->observe_arg, call->verb, call->res->plural, r < 0 ? 0 : resp.status,
				   (double)(lk_now_mono_ms() - t0) / 1000.0);
		if (r < 0) {
			what(call, w, sizeof(w));
			lk_error_set(err != NULL ? &err->base : NULL,
				     resp.failure == LK_HTTP_FAIL_TIMEOUT ? -ETIMEDOUT :
				     resp.failure == LK_HTTP_FAIL_NOMEM ? -ENOMEM :
				     resp.failure == LK_HTTP_FAIL_TOO_LARGE ? -EMSGSIZE :
				     resp.failure == LK_HTTP_FAIL_ABORTED ? -ECANCELED : -EIO,
				     "%s: %s", w, herr.msg);
			if (err != NULL) {
				err->retryable = resp.retryable;
				err->status = resp.status;
			}
			r = err != NULL ? err->base.code : -EIO;
			/* A broken connection is not kept. */
			lk_http_client_free(h);
			h = NULL;
			goto out;
		}
		if (resp.status >= 200 && resp.status <= 299)
			break;
		if (resp.status == 401 && !reread && c->cfg.token_file != NULL) {
			/* A rotated token: read the file again and try once more. */
			reread = true;
			continue;
		}
		wait = -1;
		if (!call->no_retry && attempt < LK_K8S_RETRIES_MAX &&
		    (resp.status == 429 || (resp.status >= 500 && resp.retry_after_ms >= 0)))
			wait = resp.retry_after_ms >= 0 ? resp.retry_after_ms : RETRY_DEFAULT_MS;
		if (wait > RETRY_WAIT_MAX_MS)
			wait = RETRY_WAIT_MAX_MS;
		if (wait < 0 || lk_now_mono_ms() + wait >= deadline) {
			r = status_error(call, &resp, err);
			goto out;
		}
		k8s_sleep_ms(wait, NULL);
	}
	r = 0;
	if (ret != NULL && call->on_data == NULL) {
		json_error_t je;

		*ret = json_loadb(resp.body.data, resp.body.len, 0, &je);
		if (*ret == NULL) {
			what(call, w, sizeof(w));
			r = lk_error_set(err != NULL ? &err->base : NULL, -EBADMSG,
					 "%s: the answer is not JSON (%s at line %d)", w,
					 lk_json_error_text(&je), je.line);
		}
	}
out:
	if (h != NULL)
		pool_put(c, h);
	lk_secret_free(auth);
	lk_http_response_clear(&resp);
	if (body != NULL) {
		explicit_bzero(body, body_len);
		free(body);
	}
	return r;
}

/* ---- verbs -------------------------------------------------------------------------- */

/* A body with kind and apiVersion filled in from the resource when they are missing. */
static json_t *
typed(const struct lk_k8s_resource *r, const json_t *obj)
{
	char api[128];
	json_t *copy = json_copy((json_t *)obj);

	if (copy == NULL)
		return NULL;
	if (json_object_get(copy, "kind") == NULL)
		json_object_set_new(copy, "kind", json_string(r->kind));
	if (json_object_get(copy, "apiVersion") == NULL)
		json_object_set_new(copy, "apiVersion", json_string(lk_k8s_api_version(r, api,
									sizeof(api))));
	return copy;
}

int
lk_k8s_get(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	   const char *name, json_t **ret, struct lk_k8s_error *err)
{
	const struct k8s_call call = {
		.verb = "get", .method = "GET", .res = r, .ns = ns, .name = name, .wipe = true,
	};

	return k8s_call(c, &call, ret, err);
}

static int
write_call(struct lk_k8s_client *c, const char *verb, const char *method,
	   const struct lk_k8s_resource *r, const char *ns, const char *name, const char *sub,
	   const json_t *obj, const char *ctype, const char *query, json_t **ret,
	   struct lk_k8s_error *err)
{
	json_t *body = sub == NULL && strcmp(method, "PATCH") != 0 ? typed(r, obj) : json_incref((json_t *)obj);
	const struct k8s_call call = {
		.verb = verb, .method = method, .res = r, .ns = ns, .name = name, .sub = sub,
		.body = body, .content_type = ctype, .query = query, .wipe = true,
	};
	int rc;

	if (body == NULL)
		return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
	rc = k8s_call(c, &call, ret, err);
	json_decref(body);
	return rc;
}

int
lk_k8s_create(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	      const json_t *obj, json_t **ret, struct lk_k8s_error *err)
{
	return write_call(c, "create", "POST", r, ns, NULL, NULL, obj, NULL,
			  "fieldManager=" LK_K8S_FIELD_MANAGER, ret, err);
}

int
lk_k8s_create_sub(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
		  const char *name, const char *sub, const json_t *obj, json_t **ret,
		  struct lk_k8s_error *err)
{
	return write_call(c, "create", "POST", r, ns, name, sub, obj, NULL, NULL, ret, err);
}

int
lk_k8s_replace(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	       const char *name, const char *sub, const json_t *obj, json_t **ret,
	       struct lk_k8s_error *err)
{
	json_t *body = typed(r, obj);
	int rc;

	if (body == NULL)
		return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
	rc = write_call(c, "update", "PUT", r, ns, name, sub, body, NULL,
			"fieldManager=" LK_K8S_FIELD_MANAGER, ret, err);
	json_decref(body);
	return rc;
}

int
lk_k8s_patch(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	     const char *name, const char *sub, enum lk_k8s_patch type, const json_t *patch,
	     json_t **ret, struct lk_k8s_error *err)
{
	const char *ctype = "application/merge-patch+json";
	const char *query = "fieldManager=" LK_K8S_FIELD_MANAGER;
	json_t *body = NULL;
	int rc;

	switch (type) {
	case LK_K8S_PATCH_MERGE:
		break;
	case LK_K8S_PATCH_JSON:
		ctype = "application/json-patch+json";
		break;
	case LK_K8S_PATCH_APPLY_FORCE:
		query = "fieldManager=" LK_K8S_FIELD_MANAGER "&force=true";
		/* fall through */
	case LK_K8S_PATCH_APPLY:
		/* JSON is YAML: the apply body goes as JSON, with its type named. */
		ctype = "application/apply-patch+yaml";
		if ((body = typed(r, patch)) == NULL)
			return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
		break;
	}
	rc = write_call(c, "patch", "PATCH", r, ns, name, sub, body != NULL ? body : patch, ctype,
			query, ret, err);
	json_decref(body);
	return rc;
}

int
lk_k8s_delete(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	      const char *name, const char *propagation, const char *uid,
	      struct lk_k8s_error *err)
{
	json_t *opts = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
	const struct k8s_call call = {
		.verb = "delete", .method = "DELETE", .res = r, .ns = ns, .name = name, .body = opts,
	};
	int rc;

	if (opts == NULL)
		return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
	if (propagation != NULL)
		json_object_set_new(opts, "propagationPolicy", json_string(propagation));
	if (uid != NULL)
		json_object_set_new(opts, "preconditions", json_pack("{s:s}", "uid", uid));
	rc = k8s_call(c, &call, NULL, err);
	json_decref(opts);
	return rc;
}

int
lk_k8s_served(struct lk_k8s_client *c, const struct lk_k8s_resource *r, struct lk_k8s_error *err)
{
	char path[512];
	const struct k8s_call call = {
		.verb = "get", .method = "GET", .res = r, .path = path,
	};
	const json_t *res;
	json_t *list = NULL, *it;
	size_t i;
	int rc;

	if (r->group[0] == '\0')
		snprintf(path, sizeof(path), "/api/%s", r->version);
	else
		snprintf(path, sizeof(path), "/apis/%s/%s", r->group, r->version);
	if ((rc = k8s_call(c, &call, &list, err)) < 0)
		return rc;
	res = json_object_get(list, "resources");
	json_array_foreach(res, i, it) {
		const char *name = json_string_value(json_object_get(it, "name"));

		if (name != NULL && strcmp(name, r->plural) == 0) {
			json_decref(list);
			return 0;
		}
	}
	json_decref(list);
	return lk_error_set(err != NULL ? &err->base : NULL, -ENOENT, "%s is not served in %s",
			    r->plural, path);
}

/* ---- list --------------------------------------------------------------------------- */

int
lk_k8s_list(struct lk_k8s_client *c, const struct lk_k8s_resource *r, const char *ns,
	    const char *label_selector, int (*fn)(void *arg, json_t *item), void *arg,
	    char *ret_rv, size_t rvlen, struct lk_k8s_error *err)
{
	char query[LK_K8S_URL_MAX], sel[2048], cont[2048] = "", api[128];
	unsigned limit = LK_K8S_PAGE_DEFAULT;
	json_t *page = NULL;
	int rc;

	sel[0] = '\0';
	if (label_selector != NULL && lk_http_escape(label_selector, sel, sizeof(sel)) < 0)
		return lk_error_set(err != NULL ? &err->base : NULL, -ENAMETOOLONG,
				    "label selector too long");
	lk_k8s_api_version(r, api, sizeof(api));
	for (;;) {
		const struct k8s_call call = {
			.verb = "list", .method = "GET", .res = r, .ns = ns, .query = query,
			.wipe = true,
		};
		const json_t *items, *meta;
		const char *next;
		json_t *it;
		size_t i;

		int qlen = snprintf(query, sizeof(query), "limit=%u%s%s%s%s", limit,
				    sel[0] ? "&labelSelector=" : "", sel, cont[0] ? "&continue=" : "", cont);

		if (qlen < 0 || (size_t)qlen >= sizeof(query))
			return lk_error_set(err != NULL ? &err->base : NULL, -ENAMETOOLONG,
					    "list query too long (label selector and continue token)");
		rc = k8s_call(c, &call, &page, err);
		if (rc == -EMSGSIZE && limit > 1) {
			/* A page too large for one answer: ask for fewer items. */
			limit /= 2;
			continue;
		}
		if (rc == -ESTALE && cont[0] != '\0' && err != NULL && err->status == 410) {
			/* The continue token expired: start over (the caller's fn sees items again). */
			cont[0] = '\0';
			continue;
		}
		if (rc < 0)
			return rc;
		items = json_object_get(page, "items");
		json_array_foreach(items, i, it) {
			if (json_object_get(it, "kind") == NULL)
				json_object_set_new(it, "kind", json_string(r->kind));
			if (json_object_get(it, "apiVersion") == NULL)
				json_object_set_new(it, "apiVersion", json_string(api));
			if ((rc = fn(arg, it)) != 0) {
				json_decref(page);
				return rc;
			}
		}
		meta = json_object_get(page, "metadata");
		if (ret_rv != NULL && json_is_string(json_object_get(meta, "resourceVersion")))
			snprintf(ret_rv, rvlen, "%s", json_string_value(json_object_get(meta,
							"resourceVersion")));
		next = json_string_value(json_object_get(meta, "continue"));
		if (next == NULL || next[0] == '\0') {
			json_decref(page);
			return 0;
		}
		if (lk_http_escape(next, cont, sizeof(cont)) < 0) {
			json_decref(page);
			return lk_error_set(err != NULL ? &err->base : NULL, -ENAMETOOLONG,
					    "continue token too long");
		}
		json_decref(page);
		page = NULL;
	}
}

/* ---- events ------------------------------------------------------------------------- */

int
lk_k8s_event(struct lk_k8s_client *c, const json_t *about, const char *type,
	     const char *reason, const char *message, struct lk_k8s_error *err)
{
	const json_t *meta = json_object_get(about, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	char now[32], evname[300];
	unsigned char rnd[4];
	json_t *ev;
	int rc;

	if (ns == NULL)
		ns = k8s_client_namespace(c) != NULL ? k8s_client_namespace(c) : "default";
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(evname, sizeof(evname), "%.200s.%02x%02x%02x%02x", name != NULL ? name : "object",
		 rnd[0], rnd[1], rnd[2], rnd[3]);
	lk_rfc3339_ms(lk_now_real_ms(), now);
	/* Second precision: Event timestamps are metav1.Time. */
	memmove(now + 19, "Z", 2);
	ev = json_pack("{s:{s:s, s:s}, s:{s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}, s:s, s:s, s:s,"
		       " s:{s:s}, s:s, s:s, s:i, s:s}",
		       "metadata", "name", evname, "namespace", ns,
		       "involvedObject", "apiVersion", json_object_get(about, "apiVersion"),
		       "kind", json_object_get(about, "kind"), "name", json_object_get(meta, "name"),
		       "namespace", json_object_get(meta, "namespace"),
		       "uid", json_object_get(meta, "uid"),
		       "resourceVersion", json_object_get(meta, "resourceVersion"),
		       "type", type, "reason", reason, "message", message,
		       "source", "component", "latchkey-sync",
		       "firstTimestamp", now, "lastTimestamp", now, "count", 1,
		       "reportingComponent", "latchkey-sync");
	if (ev == NULL)
		return lk_error_set(err != NULL ? &err->base : NULL, -ENOMEM, "out of memory");
	rc = lk_k8s_create(c, &lk_k8s_events, ns, ev, NULL, err);
	json_decref(ev);
	return rc;
}

/* ---- MicroTime ---------------------------------------------------------------------- */

char *
lk_k8s_microtime(int64_t epoch_us, char *out)
{
	time_t s = (time_t)(epoch_us / 1000000);
	struct tm tm;

	char date[24];

	gmtime_r(&s, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%06dZ", date, (int)(epoch_us % 1000000));
	return out;
}
