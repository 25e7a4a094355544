#include "vault/vault.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vault/client.h"
#include "vault/error.h"
#include "vault/response.h"

/* "auth/<mount>/login" */
static int
login_path(char *out, size_t outlen, const char *mount, struct lk_vault_error *err)
{
	if ((size_t)snprintf(out, outlen, "auth/%s/login", mount) >= outlen)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENAMETOOLONG,
		    "auth mount name too long");
	return 0;
}

static int lookup(struct lk_vault_client *c, const struct lk_secret *token,
		  struct lk_vault_token_info *ret, struct lk_vault_error *err);

/* POSTs body to auth/<mount>/login without a token; on success keeps the new token. */
static int
login(struct lk_vault_client *c, const char *path, const json_t *body,
      struct lk_vault_token_info *ret, struct lk_vault_error *err)
{
	const struct lk_vault_call call = { .method = "POST", .path = path, .body = body,
		.no_token = true };
	struct lk_vault_response r = { 0 };
	struct lk_vault_token_info info = { 0 };
	struct lk_secret *token = NULL;
	int rc;

	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_auth(&r, &info, &token, err)) < 0) {
		lk_vault_error_prefix(err, "POST /v1/%s", path);
		goto out;
	}
	if ((rc = lk_vault_client_set_token(c, token)) < 0) {
		lk_vault_error_set(err, LK_VAULT_ERR_INVALID, rc,
		    "POST /v1/%s: auth.client_token: not printable ASCII", path);
		goto out;
	}
	if (info.lease_duration_s == 0) {
		/* 0 is either "never expires" or "no time left": only the token's own
		 * lookup (expire_time null or not) tells which. A lookup that fails leaves
		 * it "no time left", the safe reading. */
		struct lk_vault_token_info look = { 0 };

		if (lookup(c, NULL, &look, err) == 0) {
			info.never_expires = look.never_expires;
			info.expire_time_ms = look.expire_time_ms;
			lk_vault_token_info_clear(&look);
		}
		lk_vault_error_clear(err);
	}
	*ret = info;
	memset(&info, 0, sizeof(info));
	rc = 0;
out:
	lk_vault_token_info_clear(&info);
	lk_secret_free(token);
	lk_vault_response_clear(&r);
	return rc;
}

static int
body_fail(struct lk_vault_error *err, const char *what)
{
	return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
	    "%s: cannot build the login request (not valid UTF-8, or out of memory)", what);
}

int
lk_vault_auth_login_approle(struct lk_vault_client *c, const char *mount,
			    const struct lk_secret *role_id, const struct lk_secret *secret_id,
			    struct lk_vault_token_info *ret, struct lk_vault_error *err)
{
	char path[LK_VAULT_PATH_MAX];
	json_t *body = NULL;
	int rc;

	lk_vault_error_clear(err);
	if ((rc = login_path(path, sizeof(path),
	    mount != NULL ? mount : LK_VAULT_APPROLE_MOUNT_DEFAULT, err)) < 0)
		return rc;
	body = json_pack("{s:s}", "role_id", lk_secret_cstr(role_id));
	if (body == NULL)
		return body_fail(err, "approle role_id");
	if (secret_id != NULL &&
	    json_object_set_new(body, "secret_id", json_string(lk_secret_cstr(secret_id))) < 0) {
		rc = body_fail(err, "approle secret_id");
		goto out;
	}
	rc = login(c, path, body, ret, err);
out:
	json_decref(body);
	return rc;
}

int
lk_vault_auth_login_kubernetes(struct lk_vault_client *c, const char *mount, const char *role,
			       const struct lk_secret *jwt, struct lk_vault_token_info *ret,
			       struct lk_vault_error *err)
{
	char path[LK_VAULT_PATH_MAX];
	json_t *body;
	int rc;

	lk_vault_error_clear(err);
	if (role == NULL || role[0] == '\0')
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "kubernetes auth: a role is required");
	if ((rc = login_path(path, sizeof(path),
	    mount != NULL ? mount : LK_VAULT_K8S_MOUNT_DEFAULT, err)) < 0)
		return rc;
	body = json_pack("{s:s, s:s}", "role", role, "jwt", lk_secret_cstr(jwt));
	if (body == NULL)
		return body_fail(err, "kubernetes jwt");
	rc = login(c, path, body, ret, err);
	json_decref(body);
	return rc;
}

static int
lookup(struct lk_vault_client *c, const struct lk_secret *token,
       struct lk_vault_token_info *ret, struct lk_vault_error *err)
{
	const struct lk_vault_call call = { .method = "GET", .path = "auth/token/lookup-self",
		.token = token };
	struct lk_vault_response r = { 0 };
	int rc;

	lk_vault_error_clear(err);
	if (token == NULL && !lk_vault_client_has_token(c))
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
		    "GET /v1/auth/token/lookup-self: the client has no token");
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_lookup(&r, ret, err)) < 0)
		lk_vault_error_prefix(err, "GET /v1/auth/token/lookup-self");
out:
	lk_vault_response_clear(&r);
	return rc;
}

int
lk_vault_auth_lookup_self(struct lk_vault_client *c, struct lk_vault_token_info *ret,
			  struct lk_vault_error *err)
{
	return lookup(c, NULL, ret, err);
}

/* Reads a credential file named by a setting; the error names the setting and the file. */
static int
read_credential(const char *setting, const char *file, struct lk_secret **ret,
		struct lk_vault_error *err)
{
	int rc;

	rc = lk_secret_read_file(file, LK_VAULT_CREDENTIAL_FILE_MAX, true, ret);
	if (rc == -E2BIG)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc,
		    "%s: %s: larger than %u bytes", setting, file, LK_VAULT_CREDENTIAL_FILE_MAX);
	if (rc < 0)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, "%s: %s: %s", setting,
		    file, strerror(-rc));
	if (lk_secret_len(*ret) == 0) {
		*ret = lk_secret_free(*ret);
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL, "%s: %s: empty",
		    setting, file);
	}
	return 0;
}

static int
login_token(struct lk_vault_client *c, const struct lk_vault_config *cfg,
	    struct lk_vault_token_info *ret, struct lk_vault_error *err)
{
	struct lk_secret *token = NULL;
	int rc;

	if (cfg->auth.token_file != NULL) {
		if ((rc = read_credential("auth.token_file", cfg->auth.token_file, &token,
		    err)) < 0)
			return rc;
	} else {
		token = lk_vault_client_token_dup(c);
		if (token == NULL)
			return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
			    "token auth: no token (set VAULT_TOKEN or auth.token_file)");
	}
	if ((rc = lookup(c, token, ret, err)) < 0)
		goto out;
	if ((rc = lk_vault_client_set_token(c, token)) < 0) {
		lk_vault_token_info_clear(ret);
		lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, rc, "token: not printable ASCII");
	}
out:
	lk_secret_free(token);
	return rc;
}

int
lk_vault_auth_login(struct lk_vault_client *c, struct lk_vault_token_info *ret,
		    struct lk_vault_error *err)
{
	const struct lk_vault_config *cfg = lk_vault_client_config(c);
	struct lk_secret *a = NULL, *b = NULL;
	int rc;

	lk_vault_error_clear(err);
	switch (cfg->auth.method) {
	case LK_VAULT_AUTH_NONE:
	case LK_VAULT_AUTH_TOKEN:
		return login_token(c, cfg, ret, err);
	case LK_VAULT_AUTH_APPROLE:
		if (cfg->auth.role_id_file == NULL)
			return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL,
			    "approle auth: auth.role_id_file is required");
		if ((rc = read_credential("auth.role_id_file", cfg->auth.role_id_file, &a,
		    err)) < 0)
			goto out;
		if (cfg->auth.secret_id_file != NULL &&
		    (rc = read_credential("auth.secret_id_file", cfg->auth.secret_id_file, &b,
		    err)) < 0)
			goto out;
		rc = lk_vault_auth_login_approle(c, cfg->auth.mount, a, b, ret, err);
		break;
	case LK_VAULT_AUTH_KUBERNETES:
		/* Projected service-account tokens rotate: read the file at every login. */
		if ((rc = read_credential("auth.jwt_file", cfg->auth.jwt_file != NULL ?
		    cfg->auth.jwt_file : LK_VAULT_K8S_JWT_PATH_DEFAULT, &a, err)) < 0)
			goto out;
		rc = lk_vault_auth_login_kubernetes(c, cfg->auth.mount, cfg->auth.role, a, ret,
		    err);
		break;
	default:
		rc = lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -EINVAL, "unknown auth method");
		break;
	}
out:
	lk_secret_free(a);
	lk_secret_free(b);
	return rc;
}

int
lk_vault_auth_renew_self(struct lk_vault_client *c, int64_t increment_s,
			 struct lk_vault_token_info *ret, struct lk_vault_error *err)
{
	struct lk_vault_call call = { .method = "POST", .path = "auth/token/renew-self" };
	struct lk_vault_response r = { 0 };
	struct lk_vault_token_info info = { 0 };
	json_t *body = NULL;
	int rc;

	lk_vault_error_clear(err);
	if (increment_s > 0) {
		body = json_pack("{s:I}", "increment", (json_int_t)increment_s);
		if (body == NULL)
			return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM,
			    "out of memory");
		call.body = body;
	}
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	if ((rc = lk_vault_response_auth(&r, &info, NULL, err)) < 0) {
		lk_vault_error_prefix(err, "POST /v1/auth/token/renew-self");
		goto out;
	}
	info.capped = lk_vault_renewal_capped(increment_s, info.lease_duration_s, info.warnings);
	*ret = info;
	rc = 0;
out:
	json_decref(body);
	lk_vault_response_clear(&r);
	return rc;
}

int
lk_vault_auth_revoke_self(struct lk_vault_client *c, json_t **ret_warnings,
			  struct lk_vault_error *err)
{
	const struct lk_vault_call call = { .method = "POST", .path = "auth/token/revoke-self" };
	struct lk_vault_response r = { 0 };
	int rc;

	lk_vault_error_clear(err);
	if ((rc = lk_vault_client_call(c, &call, &r, err)) < 0)
		goto out;
	(void)lk_vault_client_set_token(c, NULL);
	if (ret_warnings != NULL)
		*ret_warnings = json_incref(r.warnings);
out:
	lk_vault_response_clear(&r);
	return rc;
}
