#include "vault/vault.h"

#include <errno.h>
#include <string.h>

#include "vault/client.h"
#include "vault/error.h"
#include "vault/response.h"

bool
lk_vault_renewal_capped(int64_t increment_s, int64_t granted_s, const json_t *warnings)
{
	json_t *w;
	size_t i;

	if (increment_s > 0 && granted_s < increment_s)
		return true;
	/* `TTL of "30m" exceeded the effective max_ttl of "12m4s"; TTL value is capped
	 * accordingly` (and the "period of ..." wording for periodic tokens). */
	json_array_foreach(warnings, i, w) {
		const char *s = json_string_value(w);
		if (s != NULL && (strstr(s, "capped") != NULL ||
		    strstr(s, "exceeded the effective max_ttl") != NULL))
			return true;
	}
	return false;
}

int
lk_vault_lease_read(struct lk_vault_client *c, const char *path,
		    struct lk_vault_lease_secret *ret, struct lk_vault_error *err)
{
	const struct lk_vault_call call = { .method = "GET", .path = path };
	struct lk_vault_response r = { 0 };
	int rc;

	lk_vault_error_clear(err);
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_lease(&r, ret, err)) < 0)
		lk_vault_error_prefix(err, "GET /v1/%s", path);
out:
	lk_vault_response_clear(&r);
	return rc;
}

static int
lease_body(const char *lease_id, int64_t increment_s, json_t **ret, struct lk_vault_error *err)
{
	json_t *body;

	if (lease_id == NULL || lease_id[0] == '\0' || strlen(lease_id) >= LK_VAULT_PATH_MAX)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "lease_id: empty or longer than %d bytes", LK_VAULT_PATH_MAX - 1);
	body = increment_s > 0 ?
	    json_pack("{s:s, s:I}", "lease_id", lease_id, "increment", (json_int_t)increment_s) :
	    json_pack("{s:s}", "lease_id", lease_id);
	if (body == NULL)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "lease_id: not valid UTF-8 (or out of memory)");
	*ret = body;
	return 0;
}

int
lk_vault_lease_renew(struct lk_vault_client *c, const char *lease_id, int64_t increment_s,
		     struct lk_vault_lease_renewal *ret, struct lk_vault_error *err)
{
	struct lk_vault_call call = { .method = "PUT", .path = "sys/leases/renew" };
	struct lk_vault_response r = { 0 };
	json_t *body = NULL;
	int rc;

	lk_vault_error_clear(err);
	if ((rc = lease_body(lease_id, increment_s, &body, err)) < 0)
		return rc;
	call.body = body;
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_renewal(&r, increment_s, ret, err)) < 0)
		lk_vault_error_prefix(err, "PUT /v1/sys/leases/renew");
out:
	json_decref(body);
	lk_vault_response_clear(&r);
	return rc;
}

int
lk_vault_lease_revoke(struct lk_vault_client *c, const char *lease_id, json_t **ret_warnings,
		      struct lk_vault_error *err)
{
	struct lk_vault_call call = { .method = "PUT", .path = "sys/leases/revoke" };
	struct lk_vault_response r = { 0 };
	json_t *body = NULL;
	int rc;

	lk_vault_error_clear(err);
	if ((rc = lease_body(lease_id, 0, &body, err)) < 0)
		return rc;
	call.body = body;
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if (ret_warnings != NULL)
		*ret_warnings = json_incref(r.warnings);
out:
	json_decref(body);
	lk_vault_response_clear(&r);
	return rc;
}
