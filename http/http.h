/* http.h — the HTTP client transport, over libcurl: the one module that calls it
 * (http/, above crypto/ for the secret type and below vault/, k8s/ and sealing/).
 *
 * One `struct lk_http_client` keeps one libcurl handle, so connections are reused across
 * requests (keep-alive). It is not thread-safe: one thread at a time (callers that share
 * one hold their own lock; a watch stream gets a client of its own).
 *
 * What every request gets here, so that callers need not remember it:
 *   - TLS verified against the configured CA (a file, a directory or inline PEM), with an
 *     optional client certificate and key (files or inline; an inline key is secure
 *     memory) and an optional server name to verify instead of the URL's host;
 *   - a connect timeout and a total timeout; a response body capped (a larger one is an
 *     error, never a truncation), collected in a buffer that is wiped when asked, or handed
 *     over as it arrives (streams);
 *   - the headers callers look at captured (Retry-After parsed, Location, Content-Type);
 *   - libcurl's errors mapped to a few failures with a retryable flag;
 *   - no redirect followed unless asked, and never from https to http;
 *   - a secret header (a token) kept out of libcurl's own copies where the API allows:
 *     the header list node is built in guarded memory and wiped after the call, and
 *     libcurl's heap is zeroed when freed (lk_http_global_init). A trace of the traffic
 *     (LATCHKEY_HTTP_TRACE=1 in the environment) shows header names and sizes but the
 *     values of Authorization, X-Vault-Token, Cookie and Proxy-Authorization are replaced
 *     by "[redacted]", and bodies are never shown.
 *
 * docs/internals/http-client.md describes the design.
 */
#ifndef LK_HTTP_H
#define LK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "crypto/secret.h"

/* Longest URL accepted, and longest Location kept. */
#define LK_HTTP_URL_MAX 4096
/* Default response cap when a request names none. */
#define LK_HTTP_BODY_MAX_DEFAULT (1u << 20)
/* Default timeouts: connecting, and the whole request including the body. */
#define LK_HTTP_CONNECT_TIMEOUT_MS_DEFAULT 5000
#define LK_HTTP_TIMEOUT_MS_DEFAULT 30000
/* Largest accepted Retry-After: one day; larger values are clamped to it. */
#define LK_HTTP_RETRY_AFTER_MAX_MS (24 * 3600 * 1000LL)
/* Most plain request headers one request may carry. */
#define LK_HTTP_HEADERS_MAX 16
/* Longest Content-Type kept. */
#define LK_HTTP_CONTENT_TYPE_MAX 128

struct lk_http_tls {
	const char *ca_file;            /* PEM bundle */
	const char *ca_path;            /* hashed certificate directory */
	const char *ca_pem;             /* inline PEM bundle (not secret); ca_pem_len bytes */
	size_t ca_pem_len;
	const char *cert_file;          /* client certificate (PEM), with key_file */
	const char *key_file;
	const char *cert_pem;           /* inline client certificate, with key_pem */
	size_t cert_pem_len;
	const struct lk_secret *key_pem; /* inline client key, in secure memory */
	const char *server_name;        /* verify the certificate for this name (SNI too) */
	bool insecure;                  /* no verification at all (the caller warns) */
};

struct lk_http_client_config {
	struct lk_http_tls tls;         /* everything borrowed until lk_http_client_new returns */
	const char *unix_socket;        /* connect to this socket instead of the URL's host */
	int64_t connect_timeout_ms;     /* 0: the default */
	int64_t timeout_ms;             /* 0: the default */
	unsigned redirects;             /* follow at most this many (0: none); https never
					 * redirects to http */
};

struct lk_http_client;

/* Copies cfg (inline PEM and the key included; the key into secure memory). *ret is
 * owned: lk_http_client_free. */
int lk_http_client_new(const struct lk_http_client_config *cfg, struct lk_http_client **ret,
		       struct lk_error *err) __attribute__((warn_unused_result));

/* Frees (NULL allowed); returns NULL. */
struct lk_http_client *lk_http_client_free(struct lk_http_client *c);

/* Changes the timeouts of later requests (values <= 0 leave one as it is). */
void lk_http_client_set_timeouts(struct lk_http_client *c, int64_t connect_timeout_ms,
				 int64_t timeout_ms);

struct lk_http_request {
	const char *method;             /* GET, HEAD, POST, PUT, PATCH, DELETE, or any token */
	const char *url;                /* http:// or https:// */
	const char *const *headers;     /* NULL-terminated "Name: value" lines (not secret) */
	const struct lk_secret *secret_header; /* one "Name: value" line (a token), or NULL */
	const void *body;               /* sent as it is (may be secure memory); body_len bytes */
	size_t body_len;
	bool has_body;                  /* send a body, even an empty one */
	size_t max_body;                /* response cap; 0: LK_HTTP_BODY_MAX_DEFAULT */
	bool wipe;                      /* the response may hold secrets: wipe its buffer */
	int64_t timeout_ms;             /* 0: the client's */
	/* A stream: the body is handed over as it arrives instead of being collected (the cap
	 * does not apply); a non-zero return stops the transfer (LK_HTTP_FAIL_ABORTED). */
	int (*on_data)(void *arg, const char *data, size_t len);
	void *arg;
	/* When it turns true the transfer stops within about a second, even while no data
	 * arrives (LK_HTTP_FAIL_ABORTED): a long-lived stream can be ended from outside. */
	const volatile bool *cancel;
};

enum lk_http_failure {
	LK_HTTP_FAIL_NONE = 0,
	LK_HTTP_FAIL_CONNECT,           /* refused, unreachable, no such host or socket */
	LK_HTTP_FAIL_TIMEOUT,           /* connect or total timeout passed */
	LK_HTTP_FAIL_TLS,               /* the peer's certificate did not verify */
	LK_HTTP_FAIL_TRANSPORT,         /* reset, truncated, anything else after connecting */
	LK_HTTP_FAIL_TOO_LARGE,         /* the body passed the cap */
	LK_HTTP_FAIL_CONFIG,            /* bad URL, protocol, certificate or key file */
	LK_HTTP_FAIL_NOMEM,
	LK_HTTP_FAIL_ABORTED,           /* on_data stopped it */
};

struct lk_http_response {
	long status;                    /* 0 when no answer came */
	struct lk_buf body;             /* NUL-terminated; "" when empty */
	int64_t retry_after_ms;         /* from Retry-After, -1 when absent or unreadable */
	char location[LK_HTTP_URL_MAX]; /* "" when absent */
	bool location_bad;              /* too long or with control characters */
	char content_type[LK_HTTP_CONTENT_TYPE_MAX];
	enum lk_http_failure failure;   /* why no (whole) answer came */
	bool retryable;                 /* a retry may help: CONNECT, TIMEOUT, TRANSPORT */
};

/* Empties resp (its buffer freed, wiped when it was a wipe request). NULL allowed. */
void lk_http_response_clear(struct lk_http_response *resp);

/* Sends req and collects the answer into resp (cleared first). Returns 0 when a status
 * line arrived (whatever the status: the caller decides what 404 means) and the whole
 * body with it; otherwise a negative code, resp->failure and err ("what: why"; never a
 * header value or a body):
 *   CONNECT -ECONNREFUSED, TIMEOUT -ETIMEDOUT, TLS/TRANSPORT -EIO, TOO_LARGE -EMSGSIZE,
 *   CONFIG -EINVAL, NOMEM -ENOMEM, ABORTED -ECANCELED.
 * resp->status is kept when the failure came after the status line (a truncated body). */
int lk_http_perform(struct lk_http_client *c, const struct lk_http_request *req,
		    struct lk_http_response *resp, struct lk_error *err)
	__attribute__((warn_unused_result));

/* Percent-encodes s for a URL path segment or query value: every byte but the unreserved
 * [A-Za-z0-9-._~] becomes %XX. Returns 0 or -ENAMETOOLONG when out (outlen bytes) is too
 * small. */
int lk_http_escape(const char *s, char *out, size_t outlen);

/* The same for n bytes of s, appended at out[*io_len] (out stays NUL-terminated); *io_len
 * grows by what was written. */
int lk_http_escape_append(const char *s, size_t n, char *out, size_t outlen, size_t *io_len);

/* Parses a Retry-After value: delta seconds or an IMF-fixdate, relative to now (epoch
 * ms). Negative waits become 0; waits over LK_HTTP_RETRY_AFTER_MAX_MS are clamped.
 * Returns 0 or -EINVAL. */
int lk_http_retry_after_parse(const char *value, int64_t now_epoch_ms, int64_t *ret_ms);

/* Once per process, before threads start: libcurl's global state, with an allocator
 * that zeroes every block it frees. Returns 0 or -EIO. */
int lk_http_global_init(void) __attribute__((warn_unused_result));
void lk_http_global_cleanup(void);

#endif
