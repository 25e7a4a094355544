#include "vault/vault.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vault/client.h"
#include "vault/error.h"
#include "vault/response.h"

static int
join(char *out, size_t outlen, const char *mount, const char *infix, const char *path,
     struct lk_vault_error *err)
{
	if (mount == NULL || path == NULL)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "KV: mount and path are required");
	if ((size_t)snprintf(out, outlen, "%s/%s%s", mount, infix, path) >= outlen)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENAMETOOLONG,
		    "KV: %s: path too long", mount);
	return 0;
}

int
lk_vault_kv_read_v1(struct lk_vault_client *c, const char *mount, const char *path,
		    struct lk_vault_kv_secret *ret, struct lk_vault_error *err)
{
	char full[LK_VAULT_PATH_MAX];
	struct lk_vault_call call = { .method = "GET", .path = full };
	struct lk_vault_response r = { 0 };
	int rc;

	lk_vault_error_clear(err);
	if ((rc = join(full, sizeof(full), mount, "", path, err)) < 0)
		return rc;
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_kv1(&r, ret, err)) < 0)
		lk_vault_error_prefix(err, "GET /v1/%s", full);
out:
	lk_vault_response_clear(&r);
	return rc;
}

int
lk_vault_kv_read_v2(struct lk_vault_client *c, const char *mount, const char *path,
		    int64_t version, struct lk_vault_kv_secret *ret, struct lk_vault_error *err)
{
	char full[LK_VAULT_PATH_MAX], query[32];
	struct lk_vault_call call = { .method = "GET", .path = full };
	struct lk_vault_response r = { 0 };
	int rc;

	lk_vault_error_clear(err);
	if ((rc = join(full, sizeof(full), mount, "data/", path, err)) < 0)
		return rc;
	if (version > 0) {
		snprintf(query, sizeof(query), "version=%lld", (long long)version);
		call.query = query;
	}
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_kv2(&r, ret, err)) < 0)
		lk_vault_error_prefix(err, "GET /v1/%s", full);
out:
	lk_vault_response_clear(&r);
	return rc;
}

int
lk_vault_kv_write_v2(struct lk_vault_client *c, const char *mount, const char *path,
		     const json_t *data, int64_t cas, int64_t *ret_version,
		     json_t **ret_warnings, struct lk_vault_error *err)
{
	char full[LK_VAULT_PATH_MAX];
	struct lk_vault_call call = { .method = "POST", .path = full };
	struct lk_vault_response r = { 0 };
	json_t *body = NULL;
	int64_t version;
	int rc;

	lk_vault_error_clear(err);
	if ((rc = join(full, sizeof(full), mount, "data/", path, err)) < 0)
		return rc;
	if (!json_is_object(data))
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "POST /v1/%s: data must be a JSON object", full);
	/* The body shares data's values (a reference, not a copy). */
	body = cas >= 0 ?
	    json_pack("{s:O, s:{s:I}}", "data", (json_t *)data, "options", "cas", (json_int_t)cas) :
	    json_pack("{s:O}", "data", (json_t *)data);
	if (body == NULL) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
		goto out;
	}
	call.body = body;
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_kv2_write(&r, &version, err)) < 0) {
		lk_vault_error_prefix(err, "POST /v1/%s", full);
		goto out;
	}
	*ret_version = version;
	if (ret_warnings != NULL)
		*ret_warnings = json_incref(r.warnings);
out:
	json_decref(body);
	lk_vault_response_clear(&r);
	return rc;
}
