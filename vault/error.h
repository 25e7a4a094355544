/* error.h — filling `struct lk_vault_error` (internal to vault/).
 *
 * The one place where transport failures and jansson parse errors become vault errors, and
 * where the kind decides the code and whether a retry may help.
 */
#ifndef LK_VAULT_ERROR_H
#define LK_VAULT_ERROR_H

#include <jansson.h>

#include "http/http.h"
#include "vault/vault.h"

/* Sets err (NULL allowed) to kind with code and a formatted message; status 0, retryable
 * as the kind implies (TRANSPORT, TIMEOUT: yes). Returns code. */
int lk_vault_error_set(struct lk_vault_error *err, enum lk_vault_error_kind kind, int code,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Translates a failed transfer (lk_http_perform's failure and message). Returns the
 * code. */
int lk_vault_error_from_http(struct lk_vault_error *err, const struct lk_http_response *resp,
			     const struct lk_error *herr);

/* Translates a jansson parse failure into an INVALID error with line and column and a
 * fixed description; jansson's own text is not used because it quotes the input. */
int lk_vault_error_from_json(struct lk_vault_error *err, const json_error_t *je);

/* The code and retryability of an HTTP status >= 300. */
int lk_vault_error_http_code(long status);
bool lk_vault_error_http_retryable(long status);

/* Puts "prefix: " in front of the message (NULL err allowed). */
void lk_vault_error_prefix(struct lk_vault_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Replaces every occurrence of the len bytes of needle in the message by "[redacted]"
 * (len 0 or NULL needle: nothing), and a message end that is the start of needle (4 bytes
 * or more: the token was cut off with the message). Keeps a token out of messages
 * whatever their origin. */
void lk_vault_error_redact(struct lk_vault_error *err, const char *needle, size_t len);

#endif
