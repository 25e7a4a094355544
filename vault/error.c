#include "vault/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"

/* Shortest cut-off start of a token that lk_vault_error_redact removes from a message's end
 * (shorter tails, such as a token's public "hvs." prefix, tell nothing). */
#define REDACT_TAIL_MIN 4

void
lk_vault_error_clear(struct lk_vault_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->retry_after_ms = -1;
}

const char *
lk_vault_error_kind_name(enum lk_vault_error_kind kind)
{
	switch (kind) {
	case LK_VAULT_ERR_TRANSPORT:
		return "transport";
	case LK_VAULT_ERR_TIMEOUT:
		return "timeout";
	case LK_VAULT_ERR_HTTP:
		return "http";
	case LK_VAULT_ERR_INVALID:
		return "invalid-response";
	case LK_VAULT_ERR_TOO_LARGE:
		return "too-large";
	case LK_VAULT_ERR_CONFIG:
		return "config";
	case LK_VAULT_ERR_NONE:
		break;
	}
	return "none";
}

const char *
lk_vault_not_found_name(enum lk_vault_not_found nf)
{
	switch (nf) {
	case LK_VAULT_NF_MISSING:
		return "missing";
	case LK_VAULT_NF_DELETED:
		return "deleted";
	case LK_VAULT_NF_DESTROYED:
		return "destroyed";
	case LK_VAULT_NF_NO_ROUTE:
		return "no-route";
	case LK_VAULT_NF_NONE:
		break;
	}
	return "none";
}

int
lk_vault_error_set(struct lk_vault_error *err, enum lk_vault_error_kind kind, int code,
		   const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	lk_vault_error_clear(err);
	err->kind = kind;
	err->base.code = code;
	err->retryable = kind == LK_VAULT_ERR_TRANSPORT || kind == LK_VAULT_ERR_TIMEOUT;
	va_start(ap, fmt);
	vsnprintf(err->base.msg, sizeof(err->base.msg), fmt, ap);
	va_end(ap);
	return code;
}

int
lk_vault_error_from_http(struct lk_vault_error *err, const struct lk_http_response *resp,
			 const struct lk_error *herr)
{
	switch (resp->failure) {
	case LK_HTTP_FAIL_TIMEOUT:
		return lk_vault_error_set(err, LK_VAULT_ERR_TIMEOUT, -ETIMEDOUT, "%s", herr->msg);
	case LK_HTTP_FAIL_CONNECT:
		return lk_vault_error_set(err, LK_VAULT_ERR_TRANSPORT, -ECONNREFUSED, "%s", herr->msg);
	case LK_HTTP_FAIL_NOMEM:
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
	case LK_HTTP_FAIL_CONFIG:
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL, "%s", herr->msg);
	case LK_HTTP_FAIL_TOO_LARGE:
		return lk_vault_error_set(err, LK_VAULT_ERR_TOO_LARGE, -EMSGSIZE,
		    "response body larger than %u bytes", LK_VAULT_RESPONSE_MAX);
	case LK_HTTP_FAIL_TLS:
		/* A certificate that does not verify will not verify on the next try either. */
		lk_vault_error_set(err, LK_VAULT_ERR_TRANSPORT, -EIO, "%s", herr->msg);
		if (err != NULL)
			err->retryable = false;
		return -EIO;
	default:
		return lk_vault_error_set(err, LK_VAULT_ERR_TRANSPORT, -EIO, "%s", herr->msg);
	}
}

int
lk_vault_error_from_json(struct lk_vault_error *err, const json_error_t *je)
{
	if (json_error_code(je) == json_error_out_of_memory)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
	/* Valid JSON, but jansson keeps keys as C strings: no "\u0000" in a key. */
	if (json_error_code(je) == json_error_null_byte_in_key)
		return lk_vault_error_set(err, LK_VAULT_ERR_INVALID, -EBADMSG,
		    "response body: a key holds a NUL byte (\\u0000), which latchkey cannot "
		    "represent (line %d, column %d)", je->line, je->column);
	return lk_vault_error_set(err, LK_VAULT_ERR_INVALID, -EBADMSG,
	    "response body is not valid JSON (%s at line %d, column %d)",
	    lk_json_error_text(je), je->line, je->column);
}

int
lk_vault_error_http_code(long status)
{
	switch (status) {
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 412:
	case 429:
	case 503:
		return -EAGAIN;
	default:
		return -EREMOTEIO;
	}
}

bool
lk_vault_error_http_retryable(long status)
{
	return status == 412 || status == 429 || (status >= 500 && status <= 599);
}

void
lk_vault_error_prefix(struct lk_vault_error *err, const char *fmt, ...)
{
	char prefix[LK_ERROR_MSG_MAX];
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	lk_error_prefix(&err->base, "%s", prefix);
}

void
lk_vault_error_redact(struct lk_vault_error *err, const char *needle, size_t len)
{
	static const char mark[] = "[redacted]";
	char out[LK_ERROR_MSG_MAX];
	size_t o = 0, i = 0, n;

	if (err == NULL || needle == NULL || len == 0)
		return;
	n = strlen(err->base.msg);
	/* Messages are cut to fit (the backend's text comes last): a token cut off at the end
	 * is still a token. Drop a tail that begins it, from REDACT_TAIL_MIN bytes on. */
	for (size_t k = len - 1 < n ? len - 1 : n; k >= REDACT_TAIL_MIN && k > 0; k--) {
		if (memcmp(err->base.msg + n - k, needle, k) == 0) {
			n -= k;
			err->base.msg[n] = '\0';
			if (n + sizeof(mark) <= sizeof(err->base.msg)) {
				memcpy(err->base.msg + n, mark, sizeof(mark));
				n += sizeof(mark) - 1;
			}
			break;
		}
	}
	if (memmem(err->base.msg, n, needle, len) == NULL)
		return;
	while (i < n && o + 1 < sizeof(out)) {
		if (i + len <= n && memcmp(err->base.msg + i, needle, len) == 0) {
			size_t m = sizeof(mark) - 1;
			if (o + m >= sizeof(out))
				break;
			memcpy(out + o, mark, m);
			o += m;
			i += len;
		} else {
			out[o++] = err->base.msg[i++];
		}
	}
	out[o] = '\0';
	memcpy(err->base.msg, out, o + 1);
}

bool
lk_vault_error_token_invalid(const struct lk_vault_error *err)
{
	return err != NULL && err->kind == LK_VAULT_ERR_HTTP && err->status == 403 &&
	       strstr(err->base.msg, "invalid token") != NULL;
}
