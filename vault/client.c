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

#include <curl/curl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "vault/config.h"
#include "vault/error.h"
#include "vault/response.h"

/* Largest request body sent (a KV write of LK_SECRET_MAX-sized values, JSON-escaped). */
#define REQUEST_BODY_MAX (4u << 20)
/* Longest Retry-After header value kept (an IMF-fixdate is 29 bytes). */
#define RETRY_AFTER_MAX 64
/* Longest header line built by the client (namespace, token). */
#define HEADER_LINE_MAX 4096

struct lk_vault_client {
	pthread_mutex_t lock;       /* held for the whole of each call */
	CURL *curl;                 /* kept: its connection cache is the reuse */
	struct lk_vault_config cfg; /* copy, with defaults; cfg.token is not used after new */
	struct lk_secret *token;    /* the current token, NULL when none */
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	bool https;
};

/* What one transfer brought back. */
struct xfer {
	struct lk_buf body;         /* wipe-on-free, capped at LK_VAULT_RESPONSE_MAX */
	bool too_large;
	bool oom;
	char retry_after[RETRY_AFTER_MAX];
	char location[LK_VAULT_URL_MAX];
	bool location_bad;          /* too long or with control characters */
};

/* ---- global state -------------------------------------------------------------------- */

int
lk_vault_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void
lk_vault_global_cleanup(void)
{
	curl_global_cleanup();
}

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
	c->connect_timeout_ms = c->cfg.connect_timeout_ms > 0 ? c->cfg.connect_timeout_ms :
	    LK_VAULT_CONNECT_TIMEOUT_MS_DEFAULT;
	c->timeout_ms = c->cfg.timeout_ms > 0 ? c->cfg.timeout_ms : LK_VAULT_TIMEOUT_MS_DEFAULT;
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM,
		    "cannot create a transfer handle");
		goto fail;
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
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
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
	if (connect_timeout_ms > 0)
		c->connect_timeout_ms = connect_timeout_ms;
	if (timeout_ms > 0)
		c->timeout_ms = timeout_ms;
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
	static const char hex[] = "0123456789ABCDEF";
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
			unsigned char ch = (unsigned char)seg[i];
			if (ch < 0x20 || ch == 0x7f)
				return -EINVAL;
			if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
				if (o + 1 >= outlen)
					return -ENAMETOOLONG;
				out[o++] = (char)ch;
			} else {
				if (o + 3 >= outlen)
					return -ENAMETOOLONG;
				out[o++] = '%';
				out[o++] = hex[ch >> 4];
				out[o++] = hex[ch & 15];
			}
		}
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

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	int rc;

	rc = lk_buf_append(&x->body, ptr, n);
	if (rc == -E2BIG) {
		x->too_large = true;
		return 0;
	}
	if (rc < 0) {
		x->oom = true;
		return 0;
	}
	return n;
}

/* Copies the value of a header line "Name: value\r\n" into out when its name is name. */
static bool
header_value(const char *line, size_t n, const char *name, char *out, size_t outlen,
	     bool *ret_bad)
{
	size_t nl = strlen(name);
	const char *v, *e;

	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	v = line + nl + 1;
	e = line + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if ((size_t)(e - v) >= outlen) {
		if (ret_bad != NULL)
			*ret_bad = true;
		out[0] = '\0';
		return true;
	}
	for (const char *q = v; q < e; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			if (ret_bad != NULL)
				*ret_bad = true;
			out[0] = '\0';
			return true;
		}
	}
	memcpy(out, v, (size_t)(e - v));
	out[e - v] = '\0';
	return true;
}

static size_t
on_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nitems;

	/* A new status line (after a 100 Continue, say) starts a new set of headers. */
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		x->retry_after[0] = '\0';
		x->location[0] = '\0';
		x->location_bad = false;
		return n;
	}
	if (!header_value(line, n, "Retry-After", x->retry_after, sizeof(x->retry_after),
	    NULL))
		header_value(line, n, "Location", x->location, sizeof(x->location),
		    &x->location_bad);
	return n;
}

/* Zeroes the strings of a header list (one may hold the token) and frees it. */
static void
headers_free(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p != NULL; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

static int
headers_build(struct lk_vault_client *c, const struct lk_vault_call *call, bool has_body,
	      struct curl_slist **ret)
{
	const struct lk_secret *token = call->token != NULL ? call->token : c->token;
	struct curl_slist *h = NULL, *t;
	char *line = NULL;
	int rc = -ENOMEM;

#define ADD(s) do { if ((t = curl_slist_append(h, (s))) == NULL) goto out; h = t; } while (0)
	ADD("X-Vault-Request: true");
	/* No "Expect: 100-continue" round trip before a body. */
	ADD("Expect:");
	if (has_body)
		ADD("Content-Type: application/json");
	line = sodium_malloc(HEADER_LINE_MAX);
	if (line == NULL)
		goto out;
	if (c->cfg.namespace != NULL) {
		snprintf(line, HEADER_LINE_MAX, "X-Vault-Namespace: %s", c->cfg.namespace);
		ADD(line);
	}
	if (!call->no_token && token != NULL) {
		if (!token_ok(token)) {
			rc = -EINVAL;
			goto out;
		}
		snprintf(line, HEADER_LINE_MAX, "X-Vault-Token: %s", lk_secret_cstr(token));
		ADD(line);
	}
#undef ADD
	*ret = h;
	h = NULL;
	rc = 0;
out:
	if (line != NULL)
		sodium_free(line);
	headers_free(h);
	return rc;
}

static CURLcode
perform(struct lk_vault_client *c, const char *method, const char *url,
	struct curl_slist *headers, const unsigned char *body, size_t body_len, struct xfer *x,
	long *ret_status)
{
	CURL *h = c->curl;
	CURLcode cc;

	/* Reset keeps the live connections: only options are forgotten. */
	curl_easy_reset(h);
	lk_buf_reset(&x->body);
	x->too_large = x->oom = x->location_bad = false;
	x->retry_after[0] = x->location[0] = '\0';
	*ret_status = 0;
#define SET(opt, val) do { if ((cc = curl_easy_setopt(h, (opt), (val))) != CURLE_OK) return cc; } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->cfg.cacert != NULL)
		SET(CURLOPT_CAINFO, c->cfg.cacert);
	if (c->cfg.capath != NULL)
		SET(CURLOPT_CAPATH, c->cfg.capath);
	if (c->cfg.client_cert != NULL) {
		SET(CURLOPT_SSLCERT, c->cfg.client_cert);
		SET(CURLOPT_SSLKEY, c->cfg.client_key);
	}
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	if (strcmp(method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		/* POSTFIELDS is not copied: the guarded buffer is sent as it is. */
		SET(CURLOPT_POSTFIELDS, body != NULL ? (const char *)body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? body_len : 0));
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
#undef SET
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
	return cc;
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
	struct xfer x = { 0 };
	struct curl_slist *headers = NULL;
	unsigned char *body = NULL;
	size_t body_len = 0;
	long status = 0;
	int64_t retry_after = -1;
	bool locked = false;
	CURLcode cc;
	int rc;

	lk_vault_error_clear(err);
	lk_buf_init(&x.body, LK_VAULT_RESPONSE_MAX, true);
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
	if ((rc = headers_build(c, call, body != NULL, &headers)) < 0) {
		lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, rc == -EINVAL ?
		    "token is not printable ASCII" : "out of memory");
		goto out;
	}
	for (int replay = 0;; replay++) {
		cc = perform(c, call->method, url, headers, body, body_len, &x, &status);
		if (cc != CURLE_OK || x.oom) {
			rc = x.oom ? lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM,
			    "out of memory") : lk_vault_error_from_curl(err, cc, x.too_large);
			goto out;
		}
		if (status != 307 || replay > 0 || x.location[0] == '\0' || x.location_bad)
			break;
		if (redirect_url(c, url, x.location, next, sizeof(next)) < 0)
			break;
		memcpy(url, next, sizeof(url));
	}
	if (status >= 200 && status <= 299) {
		rc = lk_vault_response_parse(status, x.body.data, x.body.len, ret, err);
		if (rc < 0 && err != NULL)
			err->status = status;
		goto out;
	}
	if (x.retry_after[0] != '\0' &&
	    lk_vault_retry_after_parse(x.retry_after, lk_now_real_ms(), &retry_after) < 0)
		retry_after = -1;
	rc = lk_vault_response_error(err, status, x.body.data, x.body.len, retry_after);
out:
	if (rc < 0)
		lk_vault_error_prefix(err, "%s /v1/%s", call->method, path);
	if (rc < 0 && locked) {
		const struct lk_secret *t = call->token != NULL ? call->token : c->token;
		if (t != NULL)
			lk_vault_error_redact(err, lk_secret_cstr(t), lk_secret_len(t));
	}
out_unprefixed:
	headers_free(headers);
	if (locked)
		pthread_mutex_unlock(&c->lock);
	if (body != NULL)
		sodium_free(body);
	lk_buf_free(&x.body);
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
