#include "vault/client.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "http/http.h"
#include "vault/config.h"
#include "vault/error.h"
#include "vault/response.h"

/* Largest request body sent (a KV write of LK_SECRET_MAX-sized values, JSON-escaped). */
#define REQUEST_BODY_MAX (4u << 20)
/* Most request header lines (request marker, content type, namespace) plus the NULL. */
#define VAULT_HEADERS_MAX (4 + LK_VAULT_EXTRA_HEADERS_MAX)
/* Longest header line built by the client (namespace, token). */
#define HEADER_LINE_MAX 4096

struct lk_vault_client {
	pthread_mutex_t lock;       /* held for the whole of each call */
	struct lk_http_client *http; /* kept: its connection cache is the reuse */
	struct lk_vault_config cfg; /* copy, with defaults; cfg.token is not used after new */
	struct lk_secret *token;    /* the current token, NULL when none */
	bool https;
};

/* ---- settings ---------------------------------------------------------------------- */

static bool
printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	}
	return true;
}

/* A token goes into a header: visible ASCII only. */
static bool
token_ok(const struct lk_secret *t)
{
	const unsigned char *b = lk_secret_bytes(t);
	size_t n = lk_secret_len(t);

	if (n == 0 || n > HEADER_LINE_MAX / 2)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (b[i] < 0x21 || b[i] > 0x7e)
			return false;
	}
	return true;
}

static int
check_file(const char *what, const char *path, struct lk_vault_error *err)
{
	if (path == NULL)
		return 0;
	if (access(path, R_OK) < 0)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -errno, "%s: %s: %s", what,
		    path, strerror(errno));
	return 0;
}

int
lk_vault_client_new(const struct lk_vault_config *cfg, struct lk_vault_client **ret,
		    struct lk_vault_error *err)
{
	struct lk_vault_client *c;
	size_t n;
	int rc;

	lk_vault_error_clear(err);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
	}
	if (lk_vault_config_copy(&c->cfg, cfg) < 0) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
		goto fail;
	}
	if (c->cfg.addr == NULL && (c->cfg.addr = strdup(LK_VAULT_ADDR_DEFAULT)) == NULL) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
		goto fail;
	}
	n = strlen(c->cfg.addr);
	while (n > 0 && c->cfg.addr[n - 1] == '/')
		c->cfg.addr[--n] = '\0';
	if (strncmp(c->cfg.addr, "https://", 8) == 0) {
		c->https = true;
	} else if (strncmp(c->cfg.addr, "http://", 7) != 0 || n <= 7) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "backend address (vault.address or VAULT_ADDR): expected an http:// or https:// URL");
		goto fail;
	}
	if (n > LK_VAULT_URL_MAX - LK_VAULT_PATH_MAX - 8 || !printable(c->cfg.addr)) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "backend address (vault.address or VAULT_ADDR): too long or with control characters");
		goto fail;
	}
	if (c->cfg.namespace != NULL && (!printable(c->cfg.namespace) ||
	    strlen(c->cfg.namespace) > HEADER_LINE_MAX / 2)) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "VAULT_NAMESPACE: too long or with control characters");
		goto fail;
	}
	if ((rc = check_file("VAULT_CACERT", c->cfg.cacert, err)) < 0 ||
	    (rc = check_file("VAULT_CAPATH", c->cfg.capath, err)) < 0 ||
	    (rc = check_file("VAULT_CLIENT_CERT", c->cfg.client_cert, err)) < 0 ||
	    (rc = check_file("VAULT_CLIENT_KEY", c->cfg.client_key, err)) < 0)
		goto fail;
	if ((c->cfg.client_cert == NULL) != (c->cfg.client_key == NULL)) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY: set both or neither");
		goto fail;
	}
	if (c->cfg.token != NULL) {
		if (!token_ok(c->cfg.token)) {
			rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
			    "VAULT_TOKEN: empty or not printable ASCII");
			goto fail;
		}
		c->token = c->cfg.token;
		c->cfg.token = NULL;
	}
	{
		const struct lk_http_client_config hc = {
			.tls = {
				.ca_file = c->cfg.cacert, .ca_path = c->cfg.capath,
				.ca_pem = c->cfg.ca_pem,
				.ca_pem_len = c->cfg.ca_pem != NULL ? strlen(c->cfg.ca_pem) : 0,
				.cert_pem = c->cfg.client_cert_pem,
				.cert_pem_len = c->cfg.client_cert_pem != NULL ?
					strlen(c->cfg.client_cert_pem) : 0,
				.key_pem = c->cfg.client_key_pem,
				.cert_file = c->cfg.client_cert, .key_file = c->cfg.client_key,
			},
			.connect_timeout_ms = c->cfg.connect_timeout_ms > 0 ?
				c->cfg.connect_timeout_ms : LK_VAULT_CONNECT_TIMEOUT_MS_DEFAULT,
			.timeout_ms = c->cfg.timeout_ms > 0 ? c->cfg.timeout_ms :
				LK_VAULT_TIMEOUT_MS_DEFAULT,
		};
		struct lk_error herr;

		if ((rc = lk_http_client_new(&hc, &c->http, &herr)) < 0) {
			rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, "%s", herr.msg);
			goto fail;
		}
	}
	*ret = c;
	return 0;
fail:
	lk_vault_client_free(c);
	return rc;
}

struct lk_vault_client *
lk_vault_client_free(struct lk_vault_client *c)
{
	if (c == NULL)
		return NULL;
	lk_http_client_free(c->http);
	c->token = lk_secret_free(c->token);
	lk_vault_config_clear(&c->cfg);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

int
lk_vault_client_set_token(struct lk_vault_client *c, const struct lk_secret *token)
{
	struct lk_secret *copy = NULL;

	if (token != NULL) {
		if (!token_ok(token))
			return -EINVAL;
		copy = lk_secret_dup(token);
		if (copy == NULL)
			return -ENOMEM;
	}
	pthread_mutex_lock(&c->lock);
	lk_secret_free(c->token);
	c->token = copy;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

struct lk_secret *
lk_vault_client_token_dup(struct lk_vault_client *c)
{
	struct lk_secret *copy = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->token != NULL)
		copy = lk_secret_dup(c->token);
	pthread_mutex_unlock(&c->lock);
	return copy;
}

bool
lk_vault_client_has_token(struct lk_vault_client *c)
{
	bool has;

	pthread_mutex_lock(&c->lock);
	has = c->token != NULL;
	pthread_mutex_unlock(&c->lock);
	return has;
}

void
lk_vault_client_set_timeouts(struct lk_vault_client *c, int64_t connect_timeout_ms,
			     int64_t timeout_ms)
{
	pthread_mutex_lock(&c->lock);
	lk_http_client_set_timeouts(c->http, connect_timeout_ms, timeout_ms);
	pthread_mutex_unlock(&c->lock);
}

const struct lk_vault_config *
lk_vault_client_config(const struct lk_vault_client *c)
{
	return &c->cfg;
}

/* ---- requests ---------------------------------------------------------------------- */

int
lk_vault_client_encode_path(const char *path, char *out, size_t outlen)
{
	const char *p = path, *end;
	size_t o = 0;

	while (*p == '/')
		p++;
	end = p + strlen(p);
	while (end > p && end[-1] == '/')
		end--;
	if (end == p)
		return -EINVAL;
	while (p < end) {
		const char *seg = p;
		size_t len;

		while (p < end && *p != '/')
			p++;
		len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return -EINVAL;
		for (size_t i = 0; i < len; i++) {
			if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
				return -EINVAL;
		}
		if (lk_http_escape_append(seg, len, out, outlen, &o) < 0)
			return -ENAMETOOLONG;
		if (p < end) {
			if (o + 1 >= outlen)
				return -ENAMETOOLONG;
			out[o++] = '/';
			p++;
		}
	}
	out[o] = '\0';
	return 0;
}

/* The request headers: plain ones into lines (out, at most VAULT_HEADERS_MAX-1 plus a NULL),
 * the token into a secure "X-Vault-Token: ..." line. */
static int
headers_build(struct lk_vault_client *c, const struct lk_vault_call *call, bool has_body,
	      const char **lines, char *ns_line, size_t ns_len, struct lk_secret **ret_token)
{
	const struct lk_secret *token = call->token != NULL ? call->token : c->token;
	static const char prefix[] = "X-Vault-Token: ";
	struct lk_secret *line;
	unsigned char *tmp;
	size_t n = 0;

	lines[n++] = "X-Vault-Request: true";
	if (has_body)
		lines[n++] = "Content-Type: application/json";
	if (c->cfg.namespace != NULL) {
		snprintf(ns_line, ns_len, "X-Vault-Namespace: %s", c->cfg.namespace);
		lines[n++] = ns_line;
	}
	for (size_t i = 0; i < LK_VAULT_EXTRA_HEADERS_MAX && c->cfg.headers[i] != NULL; i++)
		lines[n++] = c->cfg.headers[i];
	lines[n] = NULL;
	*ret_token = NULL;
	if (call->no_token || token == NULL)
		return 0;
	if (!token_ok(token))
		return -EINVAL;
	n = sizeof(prefix) - 1 + lk_secret_len(token);
	if ((tmp = sodium_malloc(n)) == NULL)
		return -ENOMEM;
	memcpy(tmp, prefix, sizeof(prefix) - 1);
	memcpy(tmp + sizeof(prefix) - 1, lk_secret_bytes(token), lk_secret_len(token));
	line = lk_secret_new(tmp, n);
	sodium_free(tmp);
	if (line == NULL)
		return -ENOMEM;
	*ret_token = line;
	return 0;
}

/* The URL to replay a 307 to: an absolute http(s) URL, or an absolute path on the same
 * origin. A redirect from https to http is refused: it would send the token in clear. */
static int
redirect_url(const struct lk_vault_client *c, const char *cur, const char *location,
	     char *out, size_t outlen)
{
	if (location[0] == '/') {
		const char *host = strstr(cur, "://"), *slash;
		if (host == NULL || location[1] == '/')
			return -EINVAL;
		slash = strchr(host + 3, '/');
		if (slash == NULL)
			slash = cur + strlen(cur);
		size_t origin = (size_t)(slash - cur), rest = strlen(location);
		if (origin + rest >= outlen)
			return -ENAMETOOLONG;
		memmove(out, cur, origin);
		memcpy(out + origin, location, rest + 1);
		return 0;
	}
	if (strncmp(location, "https://", 8) != 0 &&
	    (c->https || strncmp(location, "http://", 7) != 0))
		return -EINVAL;
	if (strlen(location) >= outlen)
		return -ENAMETOOLONG;
	memcpy(out, location, strlen(location) + 1);
	return 0;
}

/* Serialises body into guarded memory: owned, sodium_free. */
static int
body_serialise(const json_t *body, unsigned char **ret, size_t *ret_len)
{
	unsigned char *p;
	size_t n;

	n = json_dumpb(body, NULL, 0, JSON_COMPACT);
	if (n == 0 || n > REQUEST_BODY_MAX)
		return n == 0 ? -EINVAL : -E2BIG;
	p = sodium_malloc(n + 1);
	if (p == NULL)
		return -ENOMEM;
	if (json_dumpb(body, (char *)p, n, JSON_COMPACT) != n) {
		sodium_free(p);
		return -EINVAL;
	}
	p[n] = '\0';
	*ret = p;
	*ret_len = n;
	return 0;
}

int
lk_vault_client_call(struct lk_vault_client *c, const struct lk_vault_call *call,
		     struct lk_vault_response *ret, struct lk_vault_error *err)
{
	char path[LK_VAULT_PATH_MAX], url[LK_VAULT_URL_MAX], next[LK_VAULT_URL_MAX];
	char ns_line[HEADER_LINE_MAX];
	const char *lines[VAULT_HEADERS_MAX];
	struct lk_http_response resp = { 0 };
	struct lk_secret *token_line = NULL;
	struct lk_error herr;
	unsigned char *body = NULL;
	size_t body_len = 0;
	bool locked = false;
	int rc;

	lk_vault_error_clear(err);
	if ((rc = lk_vault_client_encode_path(call->path, path, sizeof(path))) < 0) {
		lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc,
		    "%s: invalid Vault path (empty segment, \".\", \"..\", control character, "
		    "or too long)", call->method);
		goto out_unprefixed;
	}
	if ((size_t)snprintf(url, sizeof(url), "%s/v1/%s%s%s", c->cfg.addr, path,
	    call->query != NULL ? "?" : "", call->query != NULL ? call->query : "") >=
	    sizeof(url)) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENAMETOOLONG, "URL too long");
		goto out;
	}
	if (call->body != NULL && (rc = body_serialise(call->body, &body, &body_len)) < 0) {
		lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, "cannot serialise the request body");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	locked = true;
	if ((rc = headers_build(c, call, body != NULL, lines, ns_line, sizeof(ns_line),
				&token_line)) < 0) {
		lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, rc == -EINVAL ?
		    "token is not printable ASCII" : "out of memory");
		goto out;
	}
	for (int replay = 0;; replay++) {
		const struct lk_http_request req = {
			.method = call->method, .url = url, .headers = lines,
			.secret_header = token_line, .body = body, .body_len = body_len,
			.has_body = body != NULL, .max_body = LK_VAULT_RESPONSE_MAX, .wipe = true,
		};

		if ((rc = lk_http_perform(c->http, &req, &resp, &herr)) < 0) {
			rc = lk_vault_error_from_http(err, &resp, &herr);
			goto out;
		}
		if (resp.status != 307 || replay > 0 || resp.location[0] == '\0' ||
		    resp.location_bad)
			break;
		if (redirect_url(c, url, resp.location, next, sizeof(next)) < 0)
			break;
		memcpy(url, next, sizeof(url));
	}
	if (resp.status >= 200 && resp.status <= 299) {
		rc = lk_vault_response_parse(resp.status, resp.body.data, resp.body.len, ret, err);
		if (rc < 0 && err != NULL)
			err->status = resp.status;
		goto out;
	}
	rc = lk_vault_response_error(err, resp.status, resp.body.data, resp.body.len,
				     resp.retry_after_ms);
out:
	if (rc < 0)
		lk_vault_error_prefix(err, "%s /v1/%s", call->method, path);
	if (rc < 0 && locked) {
		const struct lk_secret *t = call->token != NULL ? call->token : c->token;
		if (t != NULL)
			lk_vault_error_redact(err, lk_secret_cstr(t), lk_secret_len(t));
	}
out_unprefixed:
	lk_secret_free(token_line);
	if (locked)
		pthread_mutex_unlock(&c->lock);
	if (body != NULL)
		sodium_free(body);
	lk_http_response_clear(&resp);
	return rc;
}

int
lk_vault_client_request(struct lk_vault_client *c, const char *method, const char *path,
			const json_t *body, struct lk_vault_response *ret,
			struct lk_vault_error *err)
{
	const struct lk_vault_call call = { .method = method, .path = path, .body = body };
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "LIST", NULL };
	bool known = false;

	for (size_t i = 0; methods[i] != NULL; i++)
		known = known || strcmp(method, methods[i]) == 0;
	if (!known)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "unsupported method");
	return lk_vault_client_call(c, &call, ret, err);
}
