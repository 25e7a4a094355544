/* fuzz_vault_response.c — the backend client's response parsing: the envelope, every
 * typed result (login, lookup-self, KV v1/v2, KV write, lease read, renewal), the error
 * classification of non-2xx bodies (both 404 forms) and Retry-After values.
 *
 * The first input byte picks the status the body is treated as having; the rest is the
 * body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "vault/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 204, 404, 400, 403, 412, 429, 500, 503, 307 };

static void
typed(const struct lk_vault_response *r)
{
	struct lk_vault_error err;
	struct lk_vault_token_info t;
	struct lk_vault_kv_secret kv;
	struct lk_vault_lease_secret ls;
	struct lk_vault_lease_renewal rn;
	struct lk_secret *token = NULL;
	int64_t version;

	if (lk_vault_response_auth(r, &t, &token, &err) == 0) {
		lk_vault_token_info_clear(&t);
		lk_secret_free(token);
	}
	if (lk_vault_response_lookup(r, &t, &err) == 0)
		lk_vault_token_info_clear(&t);
	if (lk_vault_response_kv1(r, &kv, &err) == 0)
		lk_vault_kv_secret_clear(&kv);
	if (lk_vault_response_kv2(r, &kv, &err) == 0)
		lk_vault_kv_secret_clear(&kv);
	(void)lk_vault_response_kv2_write(r, &version, &err);
	if (lk_vault_response_lease(r, &ls, &err) == 0)
		lk_vault_lease_secret_clear(&ls);
	if (lk_vault_response_renewal(r, 3600, &rn, &err) == 0)
		lk_vault_lease_renewal_clear(&rn);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lk_vault_response r = { 0 };
	struct lk_vault_error err;
	long status;
	char *text;
	int64_t ms;

	if (size < 1 || size > LK_VAULT_RESPONSE_MAX)
		return 0;
	if (lk_secret_init() < 0)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	data++;
	size--;
	/* The client hands parsers a NUL-terminated buffer; so does this. */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (lk_vault_response_parse(status, text, size, &r, &err) == 0) {
		typed(&r);
		lk_vault_response_clear(&r);
	}
	(void)lk_vault_response_error(&err, status, text, size, -1);
	if (size < 128)
		(void)lk_http_retry_after_parse(text, 784111777000LL, &ms);
	free(text);
	return 0;
}
