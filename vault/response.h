/* response.h — parsing and validating what the backend sends (internal to vault/).
 *
 * Pure functions over bytes and json_t: no I/O, so the unit tests and the fuzz target
 * drive them directly. Every mistyped or missing field is an LK_VAULT_ERR_INVALID error
 * (-EBADMSG) whose message names the field, e.g. "auth.client_token: expected a string";
 * messages never quote values. Out-parameters are set only on success.
 */
#ifndef LK_VAULT_RESPONSE_H
#define LK_VAULT_RESPONSE_H

#include "vault/vault.h"

/* Most warnings kept from one response; more is a malformed response. */
#define LK_VAULT_WARNINGS_MAX 64
/* Most entries of an "errors" list that go into a message. */
#define LK_VAULT_ERRORS_MAX 16

/* Parses the envelope of a success (or 404-with-envelope) body of len bytes; an empty
 * body (204) gives an envelope with everything absent. *ret is owned by the caller
 * (lk_vault_response_clear). */
int lk_vault_response_parse(long status, const char *body, size_t len,
			    struct lk_vault_response *ret, struct lk_vault_error *err);

/* Fills err for a status >= 300 from its body (any bytes; JSON or not): kind HTTP, the
 * status, the "errors" list trimmed and joined with "; ", retryable by status, the given
 * retry_after_ms (-1: none) and, for 404, the not-found reason (a KV v2 envelope with
 * data.data null gives DELETED or DESTROYED and the version). Returns err's code. */
int lk_vault_response_error(struct lk_vault_error *err, long status, const char *body,
			    size_t len, int64_t retry_after_ms);


/* The auth block of a login or renew-self: *ret (clear with lk_vault_token_info_clear)
 * and the token (owned: lk_secret_free; ret_token may be NULL to only validate). */
int lk_vault_response_auth(const struct lk_vault_response *r, struct lk_vault_token_info *ret,
			   struct lk_secret **ret_token, struct lk_vault_error *err);

/* The data of auth/token/lookup-self. The data's "id" (the token) is never read. */
int lk_vault_response_lookup(const struct lk_vault_response *r,
			     struct lk_vault_token_info *ret, struct lk_vault_error *err);

/* KV v1 and v2 reads. A v2 body with data.data null is -ENOENT with not_found DELETED or
 * DESTROYED (kind HTTP, the response status). */
int lk_vault_response_kv1(const struct lk_vault_response *r, struct lk_vault_kv_secret *ret,
			  struct lk_vault_error *err);
int lk_vault_response_kv2(const struct lk_vault_response *r, struct lk_vault_kv_secret *ret,
			  struct lk_vault_error *err);

/* The data.version of a KV v2 write. */
int lk_vault_response_kv2_write(const struct lk_vault_response *r, int64_t *ret_version,
				struct lk_vault_error *err);

/* A logical read with an optional lease. */
int lk_vault_response_lease(const struct lk_vault_response *r, struct lk_vault_lease_secret *ret,
			    struct lk_vault_error *err);

/* A sys/leases/renew answer for a request of increment_s (<= 0: none asked). */
int lk_vault_response_renewal(const struct lk_vault_response *r, int64_t increment_s,
			      struct lk_vault_lease_renewal *ret, struct lk_vault_error *err);

#endif
