/* client.c — the HTTP client transport over libcurl (http.h). */
#include "http/http.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/clock.h"

/* Longest Retry-After header value kept (an IMF-fixdate is 29 bytes). */
#define RETRY_AFTER_MAX 64
/* Longest "Name: value" line a trace shows. */
#define TRACE_LINE_MAX 512
/* Longest host name or address taken from a URL (for a server-name override). */
#define HOST_MAX 256

struct lk_http_client {
	CURL *curl;                     /* kept: its connection cache is the reuse */
	char *ca_file, *ca_path, *cert_file, *key_file, *unix_socket, *server_name;
	char *ca_pem, *cert_pem;        /* owned copies, *_len bytes */
	size_t ca_pem_len, cert_pem_len;
	struct lk_secret *key_pem;      /* owned */
	bool insecure;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	unsigned redirects;
	bool trace;                     /* LATCHKEY_HTTP_TRACE: redacted headers on stderr */
};

/* What one transfer is collecting. */
struct xfer {
	const struct lk_http_request *req;
	struct lk_http_response *resp;
	bool too_large;
	bool oom;
	bool aborted;
	char retry_after[RETRY_AFTER_MAX];
};

/* ---- global state and the wiping allocator ------------------------------------------ */

/* libcurl copies request headers (a token among them) into buffers of its own and frees
 * them without zeroing; with these, every block it frees is zeroed first. Blocks stay
 * plain malloc blocks (malloc_usable_size gives their size). */
static void *
wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		lk_free_wiped(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	/* Not realloc: the old block is zeroed before it goes back to the allocator. */
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old);
	lk_free_wiped(p);
	return q;
}

int
lk_http_global_init(void)
{
	return curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, lk_free_wiped, wipe_realloc, strdup,
				    calloc) == CURLE_OK ? 0 : -EIO;
}

void
lk_http_global_cleanup(void)
{
	curl_global_cleanup();
}

/* ---- the client --------------------------------------------------------------------- */

static int
dup_opt(const char *s, char **ret)
{
	if (s == NULL)
		return 0;
	return (*ret = strdup(s)) != NULL ? 0 : -ENOMEM;
}

static int
dup_mem(const char *p, size_t n, char **ret, size_t *ret_len)
{
	if (p == NULL)
		return 0;
	if ((*ret = malloc(n + 1)) == NULL)
		return -ENOMEM;
	memcpy(*ret, p, n);
	(*ret)[n] = '\0';
	*ret_len = n;
	return 0;
}

int
lk_http_client_new(const struct lk_http_client_config *cfg, struct lk_http_client **ret,
		   struct lk_error *err)
{
	const struct lk_http_tls *t = &cfg->tls;
	struct lk_http_client *c;
	const char *trace = getenv("LATCHKEY_HTTP_TRACE");

	if ((t->cert_file == NULL) != (t->key_file == NULL) ||
	    (t->cert_pem == NULL) != (t->key_pem == NULL))
		return lk_error_set(err, -EINVAL, "a client certificate needs its key and a key its certificate");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if (dup_opt(t->ca_file, &c->ca_file) < 0 || dup_opt(t->ca_path, &c->ca_path) < 0 ||
	    dup_opt(t->cert_file, &c->cert_file) < 0 || dup_opt(t->key_file, &c->key_file) < 0 ||
	    dup_opt(t->server_name, &c->server_name) < 0 ||
	    dup_opt(cfg->unix_socket, &c->unix_socket) < 0 ||
	    dup_mem(t->ca_pem, t->ca_pem_len, &c->ca_pem, &c->ca_pem_len) < 0 ||
	    dup_mem(t->cert_pem, t->cert_pem_len, &c->cert_pem, &c->cert_pem_len) < 0 ||
	    (t->key_pem != NULL && (c->key_pem = lk_secret_dup(t->key_pem)) == NULL))
		goto nomem;
	if (c->server_name != NULL && (strlen(c->server_name) >= HOST_MAX ||
	    strpbrk(c->server_name, ":/[] \t\r\n") != NULL)) {
		lk_http_client_free(c);
		return lk_error_set(err, -EINVAL, "TLS server name: expected a host name");
	}
	c->insecure = t->insecure;
	c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms :
		LK_HTTP_CONNECT_TIMEOUT_MS_DEFAULT;
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : LK_HTTP_TIMEOUT_MS_DEFAULT;
	c->redirects = cfg->redirects;
	c->trace = trace != NULL && trace[0] != '\0' && strcmp(trace, "0") != 0;
	if ((c->curl = curl_easy_init()) == NULL)
		goto nomem;
	*ret = c;
	return 0;
nomem:
	lk_http_client_free(c);
	return lk_error_set(err, -ENOMEM, "out of memory");
}

struct lk_http_client *
lk_http_client_free(struct lk_http_client *c)
{
	if (c == NULL)
		return NULL;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->ca_file);
	free(c->ca_path);
	free(c->cert_file);
	free(c->key_file);
	free(c->unix_socket);
	free(c->server_name);
	free(c->ca_pem);
	free(c->cert_pem);
	lk_secret_free(c->key_pem);
	free(c);
	return NULL;
}

void
lk_http_client_set_timeouts(struct lk_http_client *c, int64_t connect_timeout_ms,
			    int64_t timeout_ms)
{
	if (connect_timeout_ms > 0)
		c->connect_timeout_ms = connect_timeout_ms;
	if (timeout_ms > 0)
		c->timeout_ms = timeout_ms;
}

void
lk_http_response_clear(struct lk_http_response *resp)
{
	if (resp == NULL)
		return;
	lk_buf_free(&resp->body);
	memset(resp, 0, sizeof(*resp));
	resp->retry_after_ms = -1;
}

/* ---- callbacks ---------------------------------------------------------------------- */

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	int rc;

	if (x->req->on_data != NULL) {
		if (x->req->on_data(x->req->arg, ptr, n) != 0) {
			x->aborted = true;
			return 0;
		}
		return n;
	}
	rc = lk_buf_append(&x->resp->body, ptr, n);
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

/* Copies the value of a header line "Name: value\r\n" into out when its name is name;
 * *ret_bad when it is too long or holds control characters (out is then ""). */
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
	out[0] = '\0';
	if ((size_t)(e - v) >= outlen) {
		*ret_bad = true;
		return true;
	}
	for (const char *q = v; q < e; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f) {
			*ret_bad = true;
			return true;
		}
	}
	memcpy(out, v, (size_t)(e - v));
	out[e - v] = '\0';
	*ret_bad = false;
	return true;
}

static size_t
on_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	struct lk_http_response *r = x->resp;
	size_t n = size * nitems;
	bool bad = false;

	/* A new status line (after a 100 Continue, say) starts a new set of headers. */
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		x->retry_after[0] = '\0';
		r->location[0] = '\0';
		r->location_bad = false;
		r->content_type[0] = '\0';
		return n;
	}
	if (header_value(line, n, "Retry-After", x->retry_after, sizeof(x->retry_after), &bad))
		return n;
	if (header_value(line, n, "Location", r->location, sizeof(r->location), &bad)) {
		r->location_bad = bad;
		return n;
	}
	(void)header_value(line, n, "Content-Type", r->content_type, sizeof(r->content_type),
			   &bad);
	return n;
}

/* Header names whose values a trace never shows. */
static bool
sensitive_header(const char *line, size_t n)
{
	static const char *const names[] = {
		"authorization", "x-vault-token", "cookie", "set-cookie", "proxy-authorization",
		NULL,
	};

	for (size_t i = 0; names[i] != NULL; i++) {
		size_t l = strlen(names[i]);

		if (n > l && strncasecmp(line, names[i], l) == 0 && line[l] == ':')
			return true;
	}
	return false;
}

/* Writes header lines (one block may hold several) with sensitive values redacted. */
static void
trace_headers(char dir, const char *data, size_t size)
{
	const char *p = data, *end = data + size;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);
		size_t shown = n;
		const char *colon;

		if (shown > 0 && p[shown - 1] == '\r')
			shown--;
		if (shown > 0) {
			if (sensitive_header(p, shown) && (colon = memchr(p, ':', shown)) != NULL)
				fprintf(stderr, "http %c %.*s: [redacted]\n", dir, (int)(colon - p), p);
			else
				fprintf(stderr, "http %c %.*s\n", dir,
					(int)(shown > TRACE_LINE_MAX ? TRACE_LINE_MAX : shown), p);
		}
		p += n + 1;
	}
}

static int
on_trace(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	(void)h;
	(void)arg;
	switch (type) {
	case CURLINFO_HEADER_OUT:
		trace_headers('>', data, size);
		break;
	case CURLINFO_HEADER_IN:
		trace_headers('<', data, size);
		break;
	case CURLINFO_DATA_OUT:
		fprintf(stderr, "http > [%zu body bytes]\n", size);
		break;
	case CURLINFO_DATA_IN:
		fprintf(stderr, "http < [%zu body bytes]\n", size);
		break;
	default:
		/* Text from libcurl itself (connects, TLS): no header values in it. */
		if (type == CURLINFO_TEXT)
			fprintf(stderr, "http * %.*s", (int)(size > TRACE_LINE_MAX ? TRACE_LINE_MAX : size),
				data);
		break;
	}
	return 0;
}

/* ---- errors ------------------------------------------------------------------------- */

static int
fail(struct lk_http_response *resp, struct lk_error *err, enum lk_http_failure f, int code,
     const char *what, const char *why)
{
	resp->failure = f;
	resp->retryable = f == LK_HTTP_FAIL_CONNECT || f == LK_HTTP_FAIL_TIMEOUT ||
			  f == LK_HTTP_FAIL_TRANSPORT;
	return lk_error_set(err, code, "%s: %s", what, why);
}

static int
from_curl(struct lk_http_response *resp, struct lk_error *err, CURLcode cc)
{
	const char *why = curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return fail(resp, err, LK_HTTP_FAIL_TIMEOUT, -ETIMEDOUT, "timed out", why);
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return fail(resp, err, LK_HTTP_FAIL_CONNECT, -ECONNREFUSED, "cannot connect", why);
	case CURLE_OUT_OF_MEMORY:
		return fail(resp, err, LK_HTTP_FAIL_NOMEM, -ENOMEM, "out of memory", why);
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_TOO_MANY_REDIRECTS:
		return fail(resp, err, LK_HTTP_FAIL_CONFIG, -EINVAL, "bad client settings", why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		/* A certificate that does not verify will not verify on the next try either. */
		return fail(resp, err, LK_HTTP_FAIL_TLS, -EIO, "TLS verification failed", why);
	default:
		return fail(resp, err, LK_HTTP_FAIL_TRANSPORT, -EIO, "transfer failed", why);
	}
}

/* ---- one request -------------------------------------------------------------------- */

/* The secret header as a list node of our own in guarded memory: curl_slist_append would
 * copy it into libcurl's heap. Freed (wiped) by secret_node_free. */
static struct curl_slist *
secret_node_new(const struct lk_secret *line)
{
	struct curl_slist *node;
	/* sodium_malloc puts the end of the block against a guard page, so the start is
	 * aligned only when the size is a multiple of the alignment. */
	size_t size = (sizeof(*node) + lk_secret_len(line) + 1 + 15) & ~(size_t)15;

	if ((node = sodium_malloc(size)) == NULL)
		return NULL;
	node->data = (char *)(node + 1);
	memcpy(node->data, lk_secret_bytes(line), lk_secret_len(line));
	node->data[lk_secret_len(line)] = '\0';
	node->next = NULL;
	return node;
}

static bool
header_line_ok(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);

	if (colon == NULL || colon == s)
		return false;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return false;
		if (s[i] == 0x7f)
			return false;
	}
	return true;
}

/* The URL with its host replaced by server_name, and the CURLOPT_CONNECT_TO entry that
 * still connects to the original host: the certificate is checked for server_name. */
static int
server_name_url(const char *url, const char *server_name, char **ret_url,
		struct curl_slist **ret_connect_to)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *out = NULL, entry[3 * HOST_MAX];
	struct curl_slist *ct = NULL;
	int r = -EINVAL;

	if (u == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    strlen(host) >= HOST_MAX)
		goto out;
	snprintf(entry, sizeof(entry), "%s:%s:%s:%s", server_name, port, host, port);
	if (curl_url_set(u, CURLUPART_HOST, server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
		goto out;
	if ((ct = curl_slist_append(NULL, entry)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((*ret_url = strdup(out)) == NULL) {
		curl_slist_free_all(ct);
		r = -ENOMEM;
		goto out;
	}
	*ret_connect_to = ct;
	r = 0;
out:
	curl_free(host);
	curl_free(port);
	curl_free(out);
	curl_url_cleanup(u);
	return r;
}

static CURLcode
set_tls(struct lk_http_client *c, CURL *h)
{
	CURLcode cc;
	struct curl_blob blob;

#define SET(opt, val) do { if ((cc = curl_easy_setopt(h, (opt), (val))) != CURLE_OK) return cc; } while (0)
	SET(CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
	if (c->ca_file != NULL)
		SET(CURLOPT_CAINFO, c->ca_file);
	if (c->ca_path != NULL)
		SET(CURLOPT_CAPATH, c->ca_path);
	if (c->ca_pem != NULL) {
		blob = (struct curl_blob){ c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY };
		SET(CURLOPT_CAINFO_BLOB, &blob);
	}
	if (c->cert_file != NULL) {
		SET(CURLOPT_SSLCERT, c->cert_file);
		SET(CURLOPT_SSLKEY, c->key_file);
	}
	if (c->cert_pem != NULL) {
		blob = (struct curl_blob){ c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY };
		SET(CURLOPT_SSLCERT_BLOB, &blob);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		/* Not copied: libcurl reads the key from our guarded memory. */
		blob = (struct curl_blob){ (void *)lk_secret_bytes(c->key_pem),
					   lk_secret_len(c->key_pem), CURL_BLOB_NOCOPY };
		SET(CURLOPT_SSLKEY_BLOB, &blob);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
	return CURLE_OK;
}

int
lk_http_perform(struct lk_http_client *c, const struct lk_http_request *req,
		struct lk_http_response *resp, struct lk_error *err)
{
	struct xfer x = { .req = req, .resp = resp };
	struct curl_slist *headers = NULL, *t, *secret = NULL, *connect_to = NULL;
	const char *url = req->url;
	char *named_url = NULL;
	bool https;
	CURL *h = c->curl;
	CURLcode cc;
	unsigned n = 0;
	int r;

	lk_http_response_clear(resp);
	lk_buf_init(&resp->body, req->max_body ? req->max_body : LK_HTTP_BODY_MAX_DEFAULT,
		    req->wipe);
	if (req->method == NULL || url == NULL || strlen(url) >= LK_HTTP_URL_MAX)
		return fail(resp, err, LK_HTTP_FAIL_CONFIG, -EINVAL, "request", "no method or URL, or URL too long");
	https = strncmp(url, "https://", 8) == 0;
	if (!https && strncmp(url, "http://", 7) != 0)
		return fail(resp, err, LK_HTTP_FAIL_CONFIG, -EINVAL, "request", "expected an http:// or https:// URL");
	for (const char *const *hp = req->headers; hp != NULL && *hp != NULL; hp++) {
		if (++n > LK_HTTP_HEADERS_MAX || !header_line_ok(*hp, strlen(*hp))) {
			r = fail(resp, err, LK_HTTP_FAIL_CONFIG, -EINVAL, "request",
				 "too many headers, or a header that is not \"Name: value\"");
			goto out;
		}
		if ((t = curl_slist_append(headers, *hp)) == NULL)
			goto nomem;
		headers = t;
	}
	/* No "Expect: 100-continue" round trip before a body. */
	if ((t = curl_slist_append(headers, "Expect:")) == NULL)
		goto nomem;
	headers = t;
	if (req->secret_header != NULL) {
		if (!header_line_ok(lk_secret_cstr(req->secret_header),
				    lk_secret_len(req->secret_header)) ||
		    strlen(lk_secret_cstr(req->secret_header)) != lk_secret_len(req->secret_header)) {
			r = fail(resp, err, LK_HTTP_FAIL_CONFIG, -EINVAL, "request",
				 "the secret header is not a \"Name: value\" line of text");
			goto out;
		}
		if ((secret = secret_node_new(req->secret_header)) == NULL)
			goto nomem;
		for (t = headers; t->next != NULL; t = t->next)
			;
		t->next = secret;
	}
	if (c->server_name != NULL && https &&
	    (r = server_name_url(url, c->server_name, &named_url, &connect_to)) < 0) {
		r = fail(resp, err, r == -ENOMEM ? LK_HTTP_FAIL_NOMEM : LK_HTTP_FAIL_CONFIG, r,
			 "request", "cannot apply the TLS server name to the URL");
		goto out;
	}
	if (named_url != NULL)
		url = named_url;

	/* Reset keeps the live connections: only options are forgotten. */
	curl_easy_reset(h);
#define SET(opt, val) do { if ((cc = curl_easy_setopt(h, (opt), (val))) != CURLE_OK) goto curl_failed; } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms));
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->redirects > 0) {
		SET(CURLOPT_FOLLOWLOCATION, 1L);
		SET(CURLOPT_MAXREDIRS, (long)c->redirects);
		/* From https, only to https: a redirect must not downgrade the transport. */
		SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
	} else {
		SET(CURLOPT_FOLLOWLOCATION, 0L);
	}
	if (c->unix_socket != NULL)
		SET(CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
	if (connect_to != NULL)
		SET(CURLOPT_CONNECT_TO, connect_to);
	if (https && (cc = set_tls(c, h)) != CURLE_OK)
		goto curl_failed;
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, &x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, &x);
	if (c->trace) {
		SET(CURLOPT_DEBUGFUNCTION, on_trace);
		SET(CURLOPT_VERBOSE, 1L);
	}
	if (strcmp(req->method, "GET") == 0 && !req->has_body) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (strcmp(req->method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (req->has_body || strcmp(req->method, "POST") == 0 ||
		   strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0) {
		/* POSTFIELDS is not copied: the caller's (maybe guarded) buffer is sent. */
		SET(CURLOPT_POSTFIELDS, req->body != NULL ? (const char *)req->body : "");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body != NULL ? req->body_len : 0));
		if (strcmp(req->method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
	cc = curl_easy_perform(h);
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (x.retry_after[0] != '\0' &&
	    lk_http_retry_after_parse(x.retry_after, lk_now_real_ms(), &resp->retry_after_ms) < 0)
		resp->retry_after_ms = -1;
	if (x.too_large) {
		r = fail(resp, err, LK_HTTP_FAIL_TOO_LARGE, -EMSGSIZE, "response", "too large");
		lk_error_set(err, r, "response body larger than %zu bytes", resp->body.max);
		goto out;
	}
	if (x.oom)
		goto nomem;
	if (x.aborted) {
		r = fail(resp, err, LK_HTTP_FAIL_ABORTED, -ECANCELED, "transfer", "stopped by the reader");
		goto out;
	}
	if (cc != CURLE_OK) {
		r = from_curl(resp, err, cc);
		goto out;
	}
	/* An empty body still reads as "". */
	if (resp->body.data == NULL && lk_buf_append(&resp->body, "", 0) < 0)
		goto nomem;
	r = 0;
	goto out;
curl_failed:
	r = from_curl(resp, err, cc);
	goto out;
nomem:
	r = fail(resp, err, LK_HTTP_FAIL_NOMEM, -ENOMEM, "request", "out of memory");
out:
	/* The handle keeps pointers to these lists until the next reset; it does not use
	 * them outside curl_easy_perform. */
	if (secret != NULL) {
		for (t = headers; t != NULL && t->next != secret; t = t->next)
			;
		if (t != NULL)
			t->next = NULL;
		sodium_free(secret);
	}
	curl_slist_free_all(headers);
	curl_slist_free_all(connect_to);
	free(named_url);
	return r;
}

int
lk_http_escape_append(const char *s, size_t n, char *out, size_t outlen, size_t *io_len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = *io_len;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

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
	if (o >= outlen)
		return -ENAMETOOLONG;
	out[o] = '\0';
	*io_len = o;
	return 0;
}

int
lk_http_escape(const char *s, char *out, size_t outlen)
{
	size_t len = 0;

	return lk_http_escape_append(s, strlen(s), out, outlen, &len);
}

int
lk_http_retry_after_parse(const char *value, int64_t now_epoch_ms, int64_t *ret_ms)
{
	const char *p = value, *end;
	int64_t ms;
	struct tm tm;
	char *rest;
	time_t t;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	if (end == p)
		return -EINVAL;
	if (isdigit((unsigned char)*p)) {
		int64_t s = 0;

		for (const char *q = p; q < end; q++) {
			if (!isdigit((unsigned char)*q))
				return -EINVAL;
			if (s < LK_HTTP_RETRY_AFTER_MAX_MS / 1000)
				s = s * 10 + (*q - '0');
		}
		ms = s * 1000;
	} else {
		memset(&tm, 0, sizeof(tm));
		rest = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (rest == NULL || rest != end)
			return -EINVAL;
		t = timegm(&tm);
		if (t == (time_t)-1)
			return -EINVAL;
		ms = (int64_t)t * 1000 - now_epoch_ms;
	}
	if (ms < 0)
		ms = 0;
	if (ms > LK_HTTP_RETRY_AFTER_MAX_MS)
		ms = LK_HTTP_RETRY_AFTER_MAX_MS;
	*ret_ms = ms;
	return 0;
}
