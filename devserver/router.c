/* router.c — one request: admin endpoints, fault injection, the token and policy gate,
 * and dispatch to the mount that owns the path. */
#include "devserver/internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"

#define ADMIN_PREFIX "/_latchkey/"
/* The fault endpoint again under /v1/, for clients that only speak Vault's API; Vault has
 * no sys/dev/. Like the admin endpoints, no fault or seal applies to it. */
#define FAULTS_V1_PATH "/v1/sys/dev/faults"

static const char *const PERMISSION_DENIED_1 = "1 error occurred:\n\t* permission denied\n\n";
static const char *const INVALID_TOKEN_2 =
    "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n";

static void
nap_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The client token: X-Vault-Token, else Authorization: Bearer. NULL when none. */
static const char *
request_token(struct lk_http_req *req)
{
	const char *t = lk_http_header(req, "X-Vault-Token");

	if (t != NULL && *t != '\0')
		return t;
	t = lk_http_header(req, "Authorization");
	if (t != NULL && strncasecmp(t, "Bearer ", 7) == 0) {
		t += 7;
		while (*t == ' ')
			t++;
		return *t != '\0' ? t : NULL;
	}
	return NULL;
}

static bool
is_root_token(const struct dev_server *s, const char *token)
{
	size_t n = strlen(s->root_token);

	return token != NULL && strlen(token) == n &&
	    sodium_memcmp(token, s->root_token, n) == 0;
}

/* Parses the body into c->body; false (with a 400 reply) when it is not a JSON object. */
static bool
parse_body(struct dev_call *c)
{
	size_t len;
	const char *text = lk_http_body(c->req, &len);
	json_error_t jerr;

	if (len == 0 || strspn(text, " \t\r\n") == len) {
		c->body = json_object();
		return true;
	}
	/* Duplicate keys: the last wins, and "\u0000" is a character like any other, as in
	 * Go's encoding/json. */
	c->body = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
	if (c->body == NULL) {
		dev_reply_errorf(c, 400, "failed to parse JSON input: %s at line %d, column %d",
		    dev_json_error_words(&jerr), jerr.line, jerr.column);
		return false;
	}
	if (!json_is_object(c->body)) {
		json_decref(c->body);
		c->body = NULL;
		dev_reply_error(c, 400, "failed to parse JSON input: expected a JSON object");
		return false;
	}
	return true;
}

static json_t *
faults_json(const struct dev_faults *f)
{
	return json_pack("{s:I, s:f, s:i, s:f, s:f, s:b, s:s, s:I}", "latency_ms",
	    (json_int_t)f->latency_ms, "error_rate", f->error_rate, "error_status",
	    (int)f->error_status, "drop_rate", f->drop_rate, "cut_rate", f->cut_rate, "sealed",
	    f->sealed, "paths", f->paths, "retry_after", (json_int_t)f->retry_after_s);
}

static bool
rate_ok(const json_t *v, double *ret)
{
	double d;

	if (!json_is_number(v))
		return false;
	d = json_number_value(v);
	if (!(d >= 0.0 && d <= 1.0))
		return false;
	*ret = d;
	return true;
}

/* Applies a POSTed fault document to *f; 0 or -EINVAL with msg set. */
static int
faults_update(struct dev_faults *f, const json_t *body, char *msg, size_t msglen)
{
	struct dev_faults n = *f;
	const char *key;
	json_t *v;

	if (json_is_true(json_object_get(body, "reset"))) {
		memset(&n, 0, sizeof(n));
		n.error_status = 500;
		n.retry_after_s = 1;
	}
	json_object_foreach((json_t *)body, key, v) {
		if (strcmp(key, "reset") == 0)
			continue;
		if (strcmp(key, "latency_ms") == 0 && json_is_integer(v) &&
		    json_integer_value(v) >= 0 && json_integer_value(v) <= DEV_LATENCY_MAX_MS)
			n.latency_ms = json_integer_value(v);
		else if (strcmp(key, "error_rate") == 0 && rate_ok(v, &n.error_rate))
			;
		else if (strcmp(key, "drop_rate") == 0 && rate_ok(v, &n.drop_rate))
			;
		else if (strcmp(key, "cut_rate") == 0 && rate_ok(v, &n.cut_rate))
			;
		else if (strcmp(key, "error_status") == 0 && json_is_integer(v) &&
			 json_integer_value(v) >= 400 && json_integer_value(v) <= 599)
			n.error_status = (unsigned)json_integer_value(v);
		else if (strcmp(key, "sealed") == 0 && json_is_boolean(v))
			n.sealed = json_is_true(v);
		else if (strcmp(key, "retry_after") == 0 && json_is_integer(v) &&
			 json_integer_value(v) >= 0 && json_integer_value(v) <= DEV_RETRY_AFTER_MAX_S)
			n.retry_after_s = json_integer_value(v);
		else if (strcmp(key, "paths") == 0 && json_is_string(v) &&
			 json_string_length(v) < sizeof(n.paths)) {
			const char *p = json_string_value(v);
			if (strncmp(p, "/v1/", 4) == 0)
				p += 4;
			snprintf(n.paths, sizeof(n.paths), "%s", p);
		} else {
			snprintf(msg, msglen, "faults: bad or unknown key \"%.64s\"", key);
			return -EINVAL;
		}
	}
	*f = n;
	return 0;
}

static json_t *
leases_json(struct dev_server *s, int64_t now_ms)
{
	static const char *const states[] = { "active", "revoked", "expired" };
	json_t *arr = json_array();
	char issue[40], expire[40];

	for (struct dev_lease *l = s->leases; l != NULL; l = l->next) {
		int64_t ttl = l->state == DEV_LEASE_ACTIVE && l->expire_ms > now_ms ?
		    (l->expire_ms - now_ms) / 1000 : 0;
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}",
		    "lease_id", l->id, "state", states[l->state],
		    "issue_time", dev_time_str(l->issue_ms, issue),
		    "expire_time", dev_time_str(l->expire_ms, expire),
		    "renewable", l->renewable, "ttl", (json_int_t)ttl));
	}
	return json_pack("{s:o}", "leases", arr);
}

static void
admin(struct dev_call *c, const char *method, const char *what)
{
	struct dev_server *s = c->srv;
	char msg[256];

	if (!is_root_token(s, request_token(c->req))) {
		dev_reply_error(c, 403, "permission denied");
		return;
	}
	if (!parse_body(c))
		return;
	/* No sweep here: the lease list shows what the server itself has done, so that a
	 * test can see the sweeper end a lease. */
	pthread_mutex_lock(&s->lock);
	if (strcmp(what, "faults") == 0) {
		if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
			if (faults_update(&s->faults, c->body, msg, sizeof(msg)) < 0) {
				dev_reply_error(c, 400, msg);
				goto out;
			}
		} else if (strcmp(method, "DELETE") == 0) {
			json_t *reset = json_pack("{s:b}", "reset", 1);
			faults_update(&s->faults, reset, msg, sizeof(msg));
			json_decref(reset);
		} else if (strcmp(method, "GET") != 0) {
			dev_reply_bad_method(c);
			goto out;
		}
		c->status = 200;
		c->reply = faults_json(&s->faults);
	} else if (strcmp(what, "leases") == 0) {
		if (strcmp(method, "GET") != 0) {
			dev_reply_bad_method(c);
			goto out;
		}
		c->status = 200;
		c->reply = leases_json(s, c->now_ms);
	} else if (strcmp(what, "seal") == 0 || strcmp(what, "unseal") == 0) {
		if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0) {
			dev_reply_bad_method(c);
			goto out;
		}
		s->faults.sealed = strcmp(what, "seal") == 0;
		c->status = 200;
		c->reply = faults_json(&s->faults);
	} else {
		dev_reply_error(c, 404, NULL);
	}
out:
	pthread_mutex_unlock(&s->lock);
}

static unsigned
needed_caps(enum dev_op op)
{
	switch (op) {
	case DEV_OP_READ:
		return DEV_CAP_READ;
	case DEV_OP_WRITE:
		return DEV_CAP_CREATE | DEV_CAP_UPDATE;
	case DEV_OP_DELETE:
		return DEV_CAP_DELETE;
	case DEV_OP_LIST:
		return DEV_CAP_LIST;
	case DEV_OP_PATCH:
		return DEV_CAP_PATCH;
	}
	return 0;
}

static bool
unauthenticated(struct dev_call *c, struct dev_mount **ret_auth)
{
	const char *p = c->path;
	struct dev_mount *am;

	if (strcmp(p, "sys/health") == 0 || strcmp(p, "sys/seal-status") == 0 ||
	    strcmp(p, "sys/unseal") == 0)
		return true;
	if (strncmp(p, "auth/", 5) != 0)
		return false;
	am = dev_mount_lookup(c->srv->auths, c->srv->nauths, p + 5);
	*ret_auth = am;
	return am != NULL && dev_auth_is_login(am, dev_mount_rest(am, p + 5));
}

static void
route(struct dev_call *c, const char *token)
{
	struct dev_server *s = c->srv;
	struct dev_mount *am = NULL, *m;
	const char *p = c->path;
	bool open = unauthenticated(c, &am);

	if (token != NULL)
		c->token = dev_token_find(s, token);
	if (!open) {
		char check[DEV_PATH_MAX + 2];
		unsigned caps;

		if (token == NULL) {
			dev_reply_error(c, 403, "permission denied");
			return;
		}
		if (c->token == NULL) {
			dev_reply_error(c, 403, INVALID_TOKEN_2);
			return;
		}
		/* A LIST is checked against the path with a trailing slash, as Vault does. */
		snprintf(check, sizeof(check), "%s%s", p,
		    c->op == DEV_OP_LIST && p[0] != '\0' && p[strlen(p) - 1] != '/' ? "/" : "");
		caps = dev_token_caps(s, c->token, check);
		if ((caps & needed_caps(c->op)) == 0) {
			dev_reply_error(c, 403, PERMISSION_DENIED_1);
			return;
		}
		if (c->token->num_uses > 0 && --c->token->num_uses == 0)
			c->revoke_token_after = true;
	}
	if (strncmp(p, "sys/", 4) == 0) {
		dev_sys_handle(c, p + 4);
		return;
	}
	if (strncmp(p, "auth/", 5) == 0) {
		if (am == NULL) {
			dev_reply_no_route(c);
			return;
		}
		const char *rest = dev_mount_rest(am, p + 5);
		switch (am->type) {
		case DEV_AUTH_TOKEN:
			dev_token_handle(c, am, rest);
			break;
		case DEV_AUTH_APPROLE:
			dev_approle_handle(c, am, rest);
			break;
		case DEV_AUTH_KUBERNETES:
			dev_k8s_handle(c, am, rest);
			break;
		default:
			dev_reply_no_route(c);
		}
		return;
	}
	m = dev_mount_lookup(s->mounts, s->nmounts, p);
	if (m == NULL) {
		dev_reply_no_route(c);
		return;
	}
	switch (m->type) {
	case DEV_MOUNT_KV1:
		dev_kv1_handle(c, m, dev_mount_rest(m, p));
		break;
	case DEV_MOUNT_KV2:
		dev_kv2_handle(c, m, dev_mount_rest(m, p));
		break;
	case DEV_MOUNT_DATABASE:
		dev_db_handle(c, m, dev_mount_rest(m, p));
		break;
	default:
		dev_reply_no_route(c);
	}
}

/* Go's strconv.ParseBool, which Vault reads ?list= with: 1 true, 0 false, -EINVAL for
 * anything else. */
static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0)
			return 1;
		if (strcmp(s, no[i]) == 0)
			return 0;
	}
	return -EINVAL;
}

/* The operation; false (with the reply set) when the request names none: 405 for an
 * unknown method, 400 for a ?list= that is not a boolean (Vault's empty errors). */
static bool
parse_op(struct dev_call *c, const char *method, enum dev_op *ret)
{
	const char *list = lk_http_query(c->req, "list");
	int b;

	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
		b = list != NULL && *list != '\0' ? parse_bool(list) : 0;
		if (b < 0) {
			dev_reply_error(c, 400, NULL);
			return false;
		}
		*ret = b == 1 ? DEV_OP_LIST : DEV_OP_READ;
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
		*ret = DEV_OP_WRITE;
	else if (strcmp(method, "DELETE") == 0)
		*ret = DEV_OP_DELETE;
	else if (strcmp(method, "LIST") == 0)
		*ret = DEV_OP_LIST;
	else if (strcmp(method, "PATCH") == 0)
		*ret = DEV_OP_PATCH;
	else {
		dev_reply_bad_method(c);
		return false;
	}
	return true;
}

/* A PATCH body must be a JSON merge patch, as Vault's HTTP layer requires before any
 * routing: no media type is 400 (Go's mime error), another one 415. */
static bool
patch_type_ok(struct dev_call *c)
{
	const char *ct = lk_http_header(c->req, "Content-Type");
	size_t n;

	if (ct == NULL)
		ct = "";
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 0) {
		dev_reply_error(c, 400, "mime: no media type");
		return false;
	}
	if (n != strlen(DEV_MERGE_PATCH_TYPE) || strncasecmp(ct, DEV_MERGE_PATCH_TYPE, n) != 0) {
		dev_reply_errorf(c, 415, "PATCH requires Content-Type of %s, provided %.*s",
		    DEV_MERGE_PATCH_TYPE, (int)(n < 128 ? n : 128), ct);
		return false;
	}
	return true;
}

static const char *
injected_message(unsigned status)
{
	switch (status) {
	case 429:
		return NULL; /* built from the path */
	case 500:
		return "internal error";
	case 502:
		return "upstream error (injected)";
	case 503:
		return "no active Vault instance found";
	default:
		return "injected fault";
	}
}

/* Returns true when the request was answered (or dropped) by a fault. */
static bool
inject(struct dev_call *c)
{
	struct dev_server *s = c->srv;
	struct dev_faults f;
	char retry[24];

	pthread_mutex_lock(&s->lock);
	f = s->faults;
	pthread_mutex_unlock(&s->lock);
	if (f.sealed && strcmp(c->path, "sys/health") != 0 && strcmp(c->path, "sys/seal-status") != 0 &&
	    strcmp(c->path, "sys/unseal") != 0) {
		dev_reply_error(c, 503, "Vault is sealed");
		return true;
	}
	if (strncmp(c->path, f.paths, strlen(f.paths)) != 0)
		return false;
	if (f.latency_ms > 0)
		nap_ms(f.latency_ms);
	if (f.drop_rate > 0 && dev_random_unit() < f.drop_rate) {
		lk_http_drop(c->req);
		c->status = 0;
		return true;
	}
	/* Decided before the error, which then wins: an injected error is cut too. */
	c->cut = f.cut_rate > 0 && dev_random_unit() < f.cut_rate;
	if (f.error_rate > 0 && dev_random_unit() < f.error_rate) {
		unsigned st = f.error_status != 0 ? f.error_status : 500;
		const char *msg = injected_message(st);

		if (msg != NULL) {
			dev_reply_error(c, st, msg);
		} else {
			dev_reply_errorf(c, st, "request path \"%.512s\": rate limit quota exceeded", c->path);
			snprintf(retry, sizeof(retry), "%lld", (long long)f.retry_after_s);
			lk_http_add_header(c->req, "Retry-After", retry);
		}
		return true;
	}
	return false;
}

/* Sends the status, the headers and the first half of the body, then closes: a
 * connection dropped mid-body. The library sends a body as given once a handler forces
 * chunked framing, so the body here is one chunk whose size line announces the whole
 * rendering while only half of it follows; with Connection: close the library then
 * closes. A client sees a truncated chunk (curl: "transfer closed with outstanding read
 * data remaining"). Returns false when there is no body to cut (the caller drops). */
static bool
respond_cut(struct lk_http_req *req, unsigned status, const json_t *reply)
{
	char *text = reply != NULL ? json_dumps(reply, JSON_COMPACT) : NULL;
	size_t len = text != NULL ? strlen(text) : 0, half = len / 2, n;
	char *buf;
	bool ok = false;

	if (len < 2)
		goto out;
	buf = malloc(half + 32);
	if (buf == NULL)
		goto out;
	n = (size_t)snprintf(buf, 32, "%zx\r\n", len);
	memcpy(buf + n, text, half);
	ok = lk_http_add_header(req, "Transfer-Encoding", "chunked") == 0 &&
	    lk_http_add_header(req, "Connection", "close") == 0 &&
	    lk_http_respond(req, status, "application/json", buf, n + half) == 0;
	sodium_memzero(buf, half + 32);
	free(buf);
out:
	if (text != NULL) {
		sodium_memzero(text, len);
		free(text);
	}
	return ok;
}

void
dev_handle_request(void *ctx, struct lk_http_req *req)
{
	struct dev_server *s = ctx;
	const char *method = lk_http_method(req), *path = lk_http_path(req);
	struct dev_call c = { .srv = s, .req = req, .now_ms = lk_now_real_ms() };
	bool dropped = false;

	if (strncmp(path, ADMIN_PREFIX, strlen(ADMIN_PREFIX)) == 0) {
		c.path = path;
		admin(&c, method, path + strlen(ADMIN_PREFIX));
		goto send;
	}
	if (strcmp(path, FAULTS_V1_PATH) == 0) {
		c.path = path;
		admin(&c, method, "faults");
		goto send;
	}
	if (strncmp(path, "/v1/", 4) != 0) {
		dev_reply_error(&c, 404, NULL);
		goto send;
	}
	c.path = path + 4;
	if (strlen(c.path) > DEV_PATH_MAX || strstr(c.path, "//") != NULL) {
		dev_reply_error(&c, 400, "invalid request path");
		goto send;
	}
	if (!parse_op(&c, method, &c.op))
		goto send;
	if (c.op == DEV_OP_PATCH && !patch_type_ok(&c))
		goto send;
	if (inject(&c)) {
		dropped = c.status == 0;
		goto send;
	}
	if (!parse_body(&c))
		goto send;
	/* X-Vault-Namespace is accepted; there is only the root namespace. */
	pthread_mutex_lock(&s->lock);
	c.now_ms = lk_now_real_ms();
	dev_sweep(s, c.now_ms);
	route(&c, request_token(req));
	if (c.revoke_token_after && c.token != NULL) {
		/* Only if the handler did not already revoke it (compared by address). */
		for (struct dev_token *t = s->tokens; t != NULL; t = t->next) {
			if (t == c.token) {
				dev_token_revoke(s, t, c.now_ms);
				break;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
send:
	if (dropped) {
		lk_log(LK_DEBUG, "request dropped", LK_STR("method", method), LK_STR("path", path));
	} else {
		if (c.status == 0)
			dev_reply_error(&c, 500, "internal error");
		if (c.cut) {
			if (!respond_cut(req, c.status, c.reply))
				lk_http_drop(req);
			lk_log(LK_DEBUG, "request cut mid-body", LK_STR("method", method),
			    LK_STR("path", path), LK_INT("status", c.status));
		} else if (c.reply == NULL)
			lk_http_respond(req, c.status, "application/json", NULL, 0);
		else
			lk_http_respond_json(req, c.status, c.reply);
		if (!c.cut)
			lk_log(LK_DEBUG, "request", LK_STR("method", method), LK_STR("path", path),
			    LK_INT("status", c.status));
	}
	json_decref(c.reply);
	json_decref(c.body);
}
