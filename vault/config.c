#include "vault/config.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "vault/error.h"

void
lk_vault_config_init(struct lk_vault_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

void
lk_vault_config_clear(struct lk_vault_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->addr);
	free(cfg->cacert);
	free(cfg->ca_pem);
	free(cfg->client_cert_pem);
	lk_secret_free(cfg->client_key_pem);
	for (size_t i = 0; i < LK_VAULT_EXTRA_HEADERS_MAX; i++)
		free(cfg->headers[i]);
	free(cfg->capath);
	free(cfg->client_cert);
	free(cfg->client_key);
	free(cfg->namespace);
	lk_secret_free(cfg->token);
	free(cfg->auth.mount);
	free(cfg->auth.role);
	free(cfg->auth.jwt_file);
	free(cfg->auth.role_id_file);
	free(cfg->auth.secret_id_file);
	free(cfg->auth.token_file);
	lk_vault_config_init(cfg);
}

/* Sets *dst to a copy of src when *dst is unset and src is non-empty. */
static int
fill_string(char **dst, const char *src)
{
	if (*dst != NULL || src == NULL || src[0] == '\0')
		return 0;
	*dst = strdup(src);
	return *dst == NULL ? -ENOMEM : 0;
}

int
lk_vault_config_from_env(struct lk_vault_config *cfg, struct lk_vault_error *err)
{
	const char *token;

	if (fill_string(&cfg->addr, getenv("VAULT_ADDR")) < 0 ||
	    fill_string(&cfg->cacert, getenv("VAULT_CACERT")) < 0 ||
	    fill_string(&cfg->capath, getenv("VAULT_CAPATH")) < 0 ||
	    fill_string(&cfg->client_cert, getenv("VAULT_CLIENT_CERT")) < 0 ||
	    fill_string(&cfg->client_key, getenv("VAULT_CLIENT_KEY")) < 0 ||
	    fill_string(&cfg->namespace, getenv("VAULT_NAMESPACE")) < 0)
		return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
	token = getenv("VAULT_TOKEN");
	if (cfg->token == NULL && cfg->auth.token_file == NULL && token != NULL &&
	    token[0] != '\0') {
		cfg->token = lk_secret_from_str(token);
		if (cfg->token == NULL)
			return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM,
			    "VAULT_TOKEN: cannot copy into secure memory");
	}
	return 0;
}

extern char **environ;

void
lk_vault_config_env_erase(void)
{
	static const char name[] = "VAULT_TOKEN=";

	/* unsetenv only drops the pointer: the bytes stay where they are, and the process's
	 * initial block is what /proc/PID/environ shows. Every entry of that name: a process
	 * may be started with the variable twice. */
	for (char **e = environ; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, name, sizeof(name) - 1) == 0) {
			char *value = *e + sizeof(name) - 1;

			sodium_memzero(value, strlen(value));
		}
	}
	unsetenv("VAULT_TOKEN");
}

static int
copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst == NULL ? -ENOMEM : 0;
}

int
lk_vault_config_copy(struct lk_vault_config *dst, const struct lk_vault_config *src)
{
	lk_vault_config_init(dst);
	if (copy_string(&dst->addr, src->addr) < 0 ||
	    copy_string(&dst->cacert, src->cacert) < 0 ||
	    copy_string(&dst->ca_pem, src->ca_pem) < 0 ||
	    copy_string(&dst->capath, src->capath) < 0 ||
	    copy_string(&dst->client_cert, src->client_cert) < 0 ||
	    copy_string(&dst->client_key, src->client_key) < 0 ||
	    copy_string(&dst->namespace, src->namespace) < 0 ||
	    copy_string(&dst->auth.mount, src->auth.mount) < 0 ||
	    copy_string(&dst->auth.role, src->auth.role) < 0 ||
	    copy_string(&dst->auth.jwt_file, src->auth.jwt_file) < 0 ||
	    copy_string(&dst->auth.role_id_file, src->auth.role_id_file) < 0 ||
	    copy_string(&dst->auth.secret_id_file, src->auth.secret_id_file) < 0 ||
	    copy_string(&dst->auth.token_file, src->auth.token_file) < 0)
		goto fail;
	if (src->token != NULL && (dst->token = lk_secret_dup(src->token)) == NULL)
		goto fail;
	if (copy_string(&dst->client_cert_pem, src->client_cert_pem) < 0 ||
	    (src->client_key_pem != NULL &&
	     (dst->client_key_pem = lk_secret_dup(src->client_key_pem)) == NULL))
		goto fail;
	for (size_t i = 0; i < LK_VAULT_EXTRA_HEADERS_MAX && src->headers[i] != NULL; i++) {
		if (copy_string(&dst->headers[i], src->headers[i]) < 0)
			goto fail;
	}
	dst->connect_timeout_ms = src->connect_timeout_ms;
	dst->timeout_ms = src->timeout_ms;
	dst->auth.method = src->auth.method;
	return 0;
fail:
	lk_vault_config_clear(dst);
	return -ENOMEM;
}

/* Replaces *dst by the optional string member key of obj, when present. */
static int
json_string_member(struct lk_cfg *c, const json_t *obj, const char *key, char **dst)
{
	const char *v = NULL;
	char *copy;
	int rc;

	if ((rc = lk_cfg_string(c, obj, key, false, &v)) < 0)
		return rc;
	if (v == NULL)
		return 0;
	copy = strdup(v);
	if (copy == NULL)
		return lk_cfg_fail(c, "out of memory");
	free(*dst);
	*dst = copy;
	return 0;
}

static int
json_auth(struct lk_vault_config *cfg, struct lk_cfg *c, const json_t *auth)
{
	static const char *const known[] = { "method", "mount", "role", "jwt_file",
		"role_id_file", "secret_id_file", "token_file", NULL };
	const char *method = NULL;
	size_t mark;
	int rc;

	mark = lk_cfg_push_key(c, "auth");
	if ((rc = lk_cfg_keys(c, auth, known)) < 0 ||
	    (rc = lk_cfg_string(c, auth, "method", false, &method)) < 0)
		goto out;
	if (method != NULL) {
		if (strcmp(method, "token") == 0) {
			cfg->auth.method = LK_VAULT_AUTH_TOKEN;
		} else if (strcmp(method, "approle") == 0) {
			cfg->auth.method = LK_VAULT_AUTH_APPROLE;
		} else if (strcmp(method, "kubernetes") == 0) {
			cfg->auth.method = LK_VAULT_AUTH_KUBERNETES;
		} else {
			size_t m2 = lk_cfg_push_key(c, "method");
			rc = lk_cfg_fail(c, "expected \"token\", \"approle\" or \"kubernetes\"");
			lk_cfg_pop(c, m2);
			goto out;
		}
	}
	if ((rc = json_string_member(c, auth, "mount", &cfg->auth.mount)) < 0 ||
	    (rc = json_string_member(c, auth, "role", &cfg->auth.role)) < 0 ||
	    (rc = json_string_member(c, auth, "jwt_file", &cfg->auth.jwt_file)) < 0 ||
	    (rc = json_string_member(c, auth, "role_id_file", &cfg->auth.role_id_file)) < 0 ||
	    (rc = json_string_member(c, auth, "secret_id_file", &cfg->auth.secret_id_file)) < 0 ||
	    (rc = json_string_member(c, auth, "token_file", &cfg->auth.token_file)) < 0)
		goto out;
	rc = 0;
out:
	lk_cfg_pop(c, mark);
	return rc;
}

int
lk_vault_config_from_json(struct lk_vault_config *cfg, struct lk_cfg *c, const json_t *obj)
{
	static const char *const known[] = { "address", "addr", "cacert", "capath", "client_cert",
		"client_key", "namespace", "connect_timeout", "timeout", "auth", NULL };
	/* Upper bound of a configured timeout: ten minutes. */
	static const int64_t timeout_max_ms = 600000;
	json_t *auth = NULL;
	int64_t ms;
	int rc;

	if ((rc = lk_cfg_keys(c, obj, known)) < 0)
		return rc;
	/* "address" as in latchkey's examples; "addr" as in Vault Agent's config. */
	if (json_object_get(obj, "address") != NULL && json_object_get(obj, "addr") != NULL) {
		size_t mark = lk_cfg_push_key(c, "address");
		rc = lk_cfg_fail(c, "give either address or addr, not both");
		lk_cfg_pop(c, mark);
		return rc;
	}
	if ((rc = json_string_member(c, obj, "address", &cfg->addr)) < 0 ||
	    (rc = json_string_member(c, obj, "addr", &cfg->addr)) < 0 ||
	    (rc = json_string_member(c, obj, "cacert", &cfg->cacert)) < 0 ||
	    (rc = json_string_member(c, obj, "capath", &cfg->capath)) < 0 ||
	    (rc = json_string_member(c, obj, "client_cert", &cfg->client_cert)) < 0 ||
	    (rc = json_string_member(c, obj, "client_key", &cfg->client_key)) < 0 ||
	    (rc = json_string_member(c, obj, "namespace", &cfg->namespace)) < 0)
		return rc;
	if (cfg->addr != NULL && strncmp(cfg->addr, "http://", 7) != 0 &&
	    strncmp(cfg->addr, "https://", 8) != 0) {
		size_t mark = lk_cfg_push_key(c, json_object_get(obj, "address") ? "address" : "addr");
		rc = lk_cfg_fail(c, "expected an http:// or https:// URL");
		lk_cfg_pop(c, mark);
		return rc;
	}
	ms = -1;
	if ((rc = lk_cfg_duration(c, obj, "connect_timeout", false, &ms)) < 0)
		return rc;
	if (ms != -1) {
		size_t mark = lk_cfg_push_key(c, "connect_timeout");
		if (ms <= 0 || ms > timeout_max_ms)
			rc = lk_cfg_fail(c, "expected a duration between 1ms and 10m");
		lk_cfg_pop(c, mark);
		if (rc < 0)
			return rc;
		cfg->connect_timeout_ms = ms;
	}
	ms = -1;
	if ((rc = lk_cfg_duration(c, obj, "timeout", false, &ms)) < 0)
		return rc;
	if (ms != -1) {
		size_t mark = lk_cfg_push_key(c, "timeout");
		if (ms <= 0 || ms > timeout_max_ms)
			rc = lk_cfg_fail(c, "expected a duration between 1ms and 10m");
		lk_cfg_pop(c, mark);
		if (rc < 0)
			return rc;
		cfg->timeout_ms = ms;
	}
	if ((rc = lk_cfg_object(c, obj, "auth", false, &auth)) < 0)
		return rc;
	if (auth != NULL && (rc = json_auth(cfg, c, auth)) < 0)
		return rc;
	return 0;
}
