/* client.h — the transport shared by auth.c, kv.c and lease.c (internal to vault/). */
#ifndef LK_VAULT_CLIENT_H
#define LK_VAULT_CLIENT_H

#include "vault/vault.h"

/* One request. Everything is borrowed for the duration of the call. */
struct lk_vault_call {
	const char *method;             /* "GET", "POST", "PUT", "DELETE", "LIST" */
	const char *path;               /* Vault path without "/v1/", checked and encoded */
	const char *query;              /* NULL, or "version=2" (already encoded) */
	const json_t *body;             /* NULL for none; serialised into guarded memory */
	bool no_token;                  /* login endpoints: send no token */
	const struct lk_secret *token;  /* NULL: the client's token */
};

/* Sends call (replaying it once to the Location of a 307), and parses a 2xx body into
 * *ret (owned by the caller: lk_vault_response_clear). A status >= 300 is an HTTP error
 * classified by lk_vault_response_error. Messages start with "METHOD /v1/PATH: " and
 * never contain the token. */
int lk_vault_client_call(struct lk_vault_client *c, const struct lk_vault_call *call,
			 struct lk_vault_response *ret, struct lk_vault_error *err);

/* The client's configuration (auth settings for lk_vault_auth_login). Borrowed: valid
 * until the client is freed; it never changes. */
const struct lk_vault_config *lk_vault_client_config(const struct lk_vault_client *c);

/* Percent-encodes one path segment-wise into out (outlen bytes) after checking it: no
 * empty, "." or ".." segments, no control characters; leading and trailing slashes are
 * dropped. Returns 0 or -EINVAL (bad path) / -ENAMETOOLONG. */
int lk_vault_client_encode_path(const char *path, char *out, size_t outlen);

#endif
