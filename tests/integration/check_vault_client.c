/* check_vault_client.c — the backend client (vault/) against the real `latchkey dev`:
 * every auth method, KV v1 and v2 (versions, deleted, destroyed), dynamic database
 * credentials with renew (capped too) and revoke, token renew/revoke, and every error
 * class through the dev server's fault injection. Transport failures the dev server
 * cannot produce (truncated and non-JSON bodies, oversized bodies, stalls, redirects,
 * connection reuse) come from a small raw TCP server inside the test. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto/secret.h"
#include "testutil.h"
#include "common/json.h"
#include "http/http.h"
#include "vault/vault.h"

/* ---- helpers ---- */

static struct t_dev dev;

static void
dev_up(void)
{
	int rc = t_dev_start(&dev, NULL);

	ck_assert_msg(rc == 0, "latchkey dev did not start: %d (%s)", rc, t_latchkey_bin());
}

/* A request to the dev server with the root token, through the test library's own curl. */
static json_t *
admin(const char *method, const char *path, const char *body, long want)
{
	char url[512], *out = NULL;
	json_t *j = NULL;
	long status;

	snprintf(url, sizeof(url), "%s%s", dev.addr, path);
	status = t_http(method, url, NULL, dev.token, body, &out);
	ck_assert_msg(status == want, "%s %s: status %ld, want %ld: %s", method, path, status,
	    want, out != NULL ? out : "");
	if (out != NULL && out[0] != '\0')
		j = json_loads(out, 0, NULL);
	free(out);
	return j;
}

static struct lk_vault_client *
client_for(const char *addr, const char *token)
{
	struct lk_vault_config cfg;
	struct lk_vault_client *c = NULL;
	struct lk_vault_error err;

	lk_vault_config_init(&cfg);
	cfg.addr = strdup(addr);
	cfg.timeout_ms = 10000;
	if (token != NULL)
		cfg.token = lk_secret_from_str(token);
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	return c;
}

static bool
has_string(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

static char *
write_tmp(const char *dir, const char *name, const char *text)
{
	char *path = malloc(600);

	ck_assert_ptr_nonnull(path);
	snprintf(path, 600, "%s/%s", dir, name);
	ck_assert_int_eq(t_write_file(path, text, 0600), 0);
	return path;
}

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

/* An unsigned-verification service-account JWT: header.payload.signature. */
static char *
make_jwt(const char *ns, const char *sa)
{
	char payload[1024], h64[256], p64[1400], *jwt = malloc(2048);
	static const char header[] = "{\"alg\":\"RS256\",\"kid\":\"test\"}";

	ck_assert_ptr_nonnull(jwt);
	snprintf(payload, sizeof(payload), "{\"aud\":[\"https://kubernetes.default.svc\"],"
	    "\"exp\":4102444800,\"iat\":1700000000,\"iss\":\"https://kubernetes.default.svc\","
	    "\"kubernetes.io\":{\"namespace\":\"%s\",\"serviceaccount\":{\"name\":\"%s\","
	    "\"uid\":\"9b2c3c6e-1111-2222-3333-444455556666\"}},"
	    "\"sub\":\"system:serviceaccount:%s:%s\"}", ns, sa, ns, sa);
	b64url((const unsigned char *)header, strlen(header), h64);
	b64url((const unsigned char *)payload, strlen(payload), p64);
	snprintf(jwt, 2048, "%s.%s.c2lnbmF0dXJl", h64, p64);
	return jwt;
}

/* ---- auth ---- */

START_TEST(test_token_auth)
{
	struct lk_vault_client *c;
	struct lk_vault_token_info t;
	struct lk_vault_config cfg;
	struct lk_vault_error err;
	char *dir, *file;

	dev_up();
	/* VAULT_TOKEN style: the token given in the config. */
	c = client_for(dev.addr, dev.token);
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), 0);
	ck_assert(has_string(t.policies, "root"));
	ck_assert_int_eq(t.expire_time_ms, 0);
	lk_vault_token_info_clear(&t);
	lk_vault_client_free(c);

	/* A token file, re-read at each login. */
	dir = t_tmpdir();
	{
		char line[160];

		snprintf(line, sizeof(line), "%s\n", dev.token);
		file = write_tmp(dir, "token", line);
	}
	lk_vault_config_init(&cfg);
	cfg.addr = strdup(dev.addr);
	cfg.auth.method = LK_VAULT_AUTH_TOKEN;
	cfg.auth.token_file = strdup(file);
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	ck_assert(!lk_vault_client_has_token(c));
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), 0);
	ck_assert(lk_vault_client_has_token(c));
	lk_vault_token_info_clear(&t);
	ck_assert_int_eq(t_write_file(file, "s.not-a-real-token-value\n", 0600), 0);
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), -EACCES);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
	ck_assert_int_eq(err.status, 403);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.base.msg, "s.not-a-real-token-value") == NULL, "%s", err.base.msg);
	/* The failed login kept the previous (root) token. */
	ck_assert_int_eq(lk_vault_auth_lookup_self(c, &t, &err), 0);
	ck_assert(has_string(t.policies, "root"));
	lk_vault_token_info_clear(&t);
	unlink(file);
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), -ENOENT);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_CONFIG);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "auth.token_file"));
	lk_vault_client_free(c);
	free(file);
	t_rmrf(dir);
	free(dir);
	t_dev_stop(&dev);
}
END_TEST

START_TEST(test_approle_auth)
{
	struct lk_vault_client *c;
	struct lk_vault_token_info t;
	struct lk_vault_kv_secret s;
	struct lk_vault_config cfg;
	struct lk_vault_error err;
	json_t *j;
	char *dir, *rid_file, *sid_file, *rid, *sid;

	dev_up();
	json_decref(admin("POST", "/v1/sys/auth/approle", "{\"type\":\"approle\"}", 204));
	json_decref(admin("PUT", "/v1/sys/policies/acl/app",
	    "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\"}", 204));
	json_decref(admin("POST", "/v1/auth/approle/role/web",
	    "{\"token_policies\":\"app\",\"token_ttl\":\"1h\",\"token_max_ttl\":\"4h\"}", 204));
	json_decref(admin("POST", "/v1/secret/data/app/db", "{\"data\":{\"password\":\"pw1\"}}", 200));
	j = admin("GET", "/v1/auth/approle/role/web/role-id", NULL, 200);
	rid = strdup(json_string_value(json_object_get(json_object_get(j, "data"), "role_id")));
	json_decref(j);
	j = admin("POST", "/v1/auth/approle/role/web/secret-id", NULL, 200);
	sid = strdup(json_string_value(json_object_get(json_object_get(j, "data"), "secret_id")));
	json_decref(j);

	dir = t_tmpdir();
	rid_file = write_tmp(dir, "role_id", rid);
	sid_file = write_tmp(dir, "secret_id", sid);
	lk_vault_config_init(&cfg);
	cfg.addr = strdup(dev.addr);
	cfg.auth.method = LK_VAULT_AUTH_APPROLE;
	cfg.auth.role_id_file = strdup(rid_file);
	cfg.auth.secret_id_file = strdup(sid_file);
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	ck_assert_msg(lk_vault_auth_login(c, &t, &err) == 0, "%s", err.base.msg);
	ck_assert(has_string(t.policies, "app"));
	ck_assert_int_eq(t.lease_duration_s, 3600);
	ck_assert(t.renewable);
	ck_assert_ptr_nonnull(t.accessor);
	lk_vault_token_info_clear(&t);
	/* The new token reads what its policy allows, and no more. */
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 0, &s, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "password")), "pw1");
	lk_vault_kv_secret_clear(&s);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "other", 0, &s, &err), -EACCES);
	ck_assert_int_eq(err.status, 403);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "permission denied"));
	ck_assert(!lk_vault_error_token_invalid(&err));

	/* A wrong secret_id: 400, not retryable; the client keeps its token. */
	ck_assert_int_eq(t_write_file(sid_file, "00000000-0000-0000-0000-000000000000", 0600), 0);
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), -EREMOTEIO);
	ck_assert_int_eq(err.status, 400);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.base.msg, "invalid role or secret ID") != NULL, "%s", err.base.msg);
	ck_assert(lk_vault_client_has_token(c));
	lk_vault_client_free(c);
	free(rid);
	free(sid);
	free(rid_file);
	free(sid_file);
	t_rmrf(dir);
	free(dir);
	t_dev_stop(&dev);
}
END_TEST

START_TEST(test_kubernetes_auth)
{
	struct lk_vault_client *c;
	struct lk_vault_token_info t;
	struct lk_vault_config cfg;
	struct lk_vault_error err;
	char *dir, *jwt_file, *jwt;

	dev_up();
	json_decref(admin("POST", "/v1/sys/auth/kubernetes", "{\"type\":\"kubernetes\"}", 204));
	json_decref(admin("POST", "/v1/auth/kubernetes/config",
	    "{\"kubernetes_host\":\"https://kubernetes.default.svc\"}", 204));
	json_decref(admin("PUT", "/v1/sys/policies/acl/app",
	    "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\"}", 204));
	json_decref(admin("POST", "/v1/auth/kubernetes/role/app",
	    "{\"bound_service_account_names\":[\"web\"],\"bound_service_account_namespaces\":"
	    "[\"shop\"],\"token_policies\":[\"app\"],\"token_ttl\":1800}", 204));

	dir = t_tmpdir();
	jwt = make_jwt("shop", "web");
	jwt_file = write_tmp(dir, "token", jwt);
	lk_vault_config_init(&cfg);
	cfg.addr = strdup(dev.addr);
	cfg.auth.method = LK_VAULT_AUTH_KUBERNETES;
	cfg.auth.role = strdup("app");
	cfg.auth.jwt_file = strdup(jwt_file);
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	ck_assert_msg(lk_vault_auth_login(c, &t, &err) == 0, "%s", err.base.msg);
	ck_assert(has_string(t.policies, "app"));
	ck_assert_int_eq(t.lease_duration_s, 1800);
	lk_vault_token_info_clear(&t);
	ck_assert_int_eq(lk_vault_auth_lookup_self(c, &t, &err), 0);
	ck_assert(has_string(t.policies, "app"));
	ck_assert(t.lease_duration_s > 0 && t.lease_duration_s <= 1800);
	ck_assert(t.expire_time_ms > 0);
	lk_vault_token_info_clear(&t);

	/* The file is read again at each login: a token for another account is refused. */
	free(jwt);
	jwt = make_jwt("shop", "intruder");
	ck_assert_int_eq(t_write_file(jwt_file, jwt, 0600), 0);
	ck_assert_int_eq(lk_vault_auth_login(c, &t, &err), -EACCES);
	ck_assert_int_eq(err.status, 403);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.base.msg, jwt) == NULL, "%s", err.base.msg);

	/* An unknown role: 400. */
	{
		struct lk_secret *j = lk_secret_from_str(jwt);
		ck_assert_int_eq(lk_vault_auth_login_kubernetes(c, NULL, "nope", j, &t, &err),
		    -EREMOTEIO);
		ck_assert_int_eq(err.status, 400);
		lk_secret_free(j);
	}
	lk_vault_client_free(c);
	free(jwt);
	free(jwt_file);
	t_rmrf(dir);
	free(dir);
	t_dev_stop(&dev);
}
END_TEST

START_TEST(test_token_renew_revoke)
{
	struct lk_vault_client *c;
	struct lk_vault_token_info t;
	struct lk_vault_error err;
	json_t *j, *w = NULL;
	char *tok;

	dev_up();
	j = admin("POST", "/v1/auth/token/create",
	    "{\"policies\":[\"default\"],\"ttl\":\"10m\",\"explicit_max_ttl\":\"20m\"}", 200);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(json_object_get(j, "auth"),
	    "client_token")));
	tok = strdup(json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
	c = client_for(dev.addr, tok);
	json_decref(j);

	ck_assert_int_eq(lk_vault_auth_lookup_self(c, &t, &err), 0);
	ck_assert(t.renewable);
	ck_assert(t.lease_duration_s > 0 && t.lease_duration_s <= 600);
	lk_vault_token_info_clear(&t);

	ck_assert_msg(lk_vault_auth_renew_self(c, 300, &t, &err) == 0, "%s", err.base.msg);
	ck_assert_int_eq(t.lease_duration_s, 300);
	ck_assert(!t.capped);
	lk_vault_token_info_clear(&t);
	/* Asking past the explicit max TTL: granted less, so capped. */
	ck_assert_int_eq(lk_vault_auth_renew_self(c, 7200, &t, &err), 0);
	ck_assert(t.lease_duration_s < 7200);
	ck_assert(t.lease_duration_s <= 1200);
	ck_assert(t.capped);
	lk_vault_token_info_clear(&t);

	ck_assert_int_eq(lk_vault_auth_revoke_self(c, &w, &err), 0);
	json_decref(w);
	ck_assert(!lk_vault_client_has_token(c));
	lk_vault_client_free(c);
	/* The revoked token no longer works, and the message does not repeat it. */
	c = client_for(dev.addr, tok);
	ck_assert_int_eq(lk_vault_auth_lookup_self(c, &t, &err), -EACCES);
	ck_assert_int_eq(err.status, 403);
	ck_assert_msg(strstr(err.base.msg, tok) == NULL, "%s", err.base.msg);
	/* Told apart from a policy that denies a path to a valid token. */
	ck_assert(lk_vault_error_token_invalid(&err));
	lk_vault_client_free(c);
	free(tok);
	t_dev_stop(&dev);
}
END_TEST

/* ---- KV ---- */

START_TEST(test_kv1)
{
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;

	dev_up();
	json_decref(admin("POST", "/v1/sys/mounts/kv", "{\"type\":\"kv\",\"options\":{\"version\":\"1\"}}", 204));
	json_decref(admin("POST", "/v1/kv/app/config", "{\"foo\":\"bar\",\"ttl\":\"1h\"}", 204));
	c = client_for(dev.addr, dev.token);
	ck_assert_msg(lk_vault_kv_read_v1(c, "kv", "app/config", &s, &err) == 0, "%s", err.base.msg);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "foo")), "bar");
	ck_assert_int_eq(s.lease_duration_s, 3600);
	ck_assert_int_eq(s.version, 0);
	lk_vault_kv_secret_clear(&s);
	ck_assert_int_eq(lk_vault_kv_read_v1(c, "kv", "app/missing", &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_int_eq(err.status, 404);
	ck_assert(!err.retryable);
	lk_vault_client_free(c);
	t_dev_stop(&dev);
}
END_TEST

START_TEST(test_kv2_versions)
{
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	json_t *data, *w = NULL;
	int64_t v = 0;

	dev_up();
	c = client_for(dev.addr, dev.token);
	data = json_pack("{s:s, s:i}", "password", "one", "port", 5432);
	ck_assert_msg(lk_vault_kv_write_v2(c, "secret", "app/db", data, -1, &v, &w, &err) == 0,
	    "%s", err.base.msg);
	ck_assert_int_eq(v, 1);
	json_decref(data);
	json_decref(w);
	data = json_pack("{s:s}", "password", "two");
	ck_assert_int_eq(lk_vault_kv_write_v2(c, "secret", "app/db", data, 1, &v, NULL, &err), 0);
	ck_assert_int_eq(v, 2);
	/* cas that does not match the current version: refused. */
	ck_assert_int_eq(lk_vault_kv_write_v2(c, "secret", "app/db", data, 1, &v, NULL, &err),
	    -EREMOTEIO);
	ck_assert_int_eq(err.status, 400);
	ck_assert_int_eq(v, 2);
	json_decref(data);
	json_decref(admin("POST", "/v1/secret/metadata/app/db",
	    "{\"custom_metadata\":{\"owner\":\"team-a\"}}", 204));

	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 0, &s, &err), 0);
	ck_assert_int_eq(s.version, 2);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "password")), "two");
	ck_assert_ptr_nonnull(s.created_time);
	ck_assert_ptr_null(s.deletion_time);
	ck_assert_str_eq(json_string_value(json_object_get(s.custom_metadata, "owner")), "team-a");
	lk_vault_kv_secret_clear(&s);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 1, &s, &err), 0);
	ck_assert_int_eq(s.version, 1);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "password")), "one");
	ck_assert_int_eq(json_integer_value(json_object_get(s.data, "port")), 5432);
	lk_vault_kv_secret_clear(&s);

	/* Soft-deleted version 1, destroyed version 2: both "not found", told apart. */
	json_decref(admin("POST", "/v1/secret/delete/app/db", "{\"versions\":[1]}", 204));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 1, &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_DELETED);
	ck_assert_int_eq(err.version, 1);
	json_decref(admin("PUT", "/v1/secret/destroy/app/db", "{\"versions\":[2]}", 204));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 0, &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_DESTROYED);
	ck_assert_int_eq(err.version, 2);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/db", 9, &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app/nothing", 0, &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_str_eq(err.base.msg, "GET /v1/secret/data/app/nothing: HTTP 404: not found");
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "nomount", "x", 0, &s, &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_NO_ROUTE);
	lk_vault_client_free(c);
	t_dev_stop(&dev);
}
END_TEST

/* ---- dynamic secrets and leases ---- */

static json_t *
lease_state(const char *lease_id)
{
	json_t *j = admin("GET", "/_latchkey/leases", NULL, 200), *l, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(j, "leases"), i, l) {
		const char *id = json_string_value(json_object_get(l, "lease_id"));
		if (id == NULL)
			id = json_string_value(json_object_get(l, "id"));
		if (id != NULL && strcmp(id, lease_id) == 0)
			found = json_incref(l);
	}
	json_decref(j);
	return found;
}

START_TEST(test_dynamic_renew_revoke)
{
	struct lk_vault_client *c;
	struct lk_vault_lease_secret s;
	struct lk_vault_lease_renewal n;
	struct lk_vault_error err;
	json_t *l, *w = NULL;

	dev_up();
	json_decref(admin("POST", "/v1/sys/mounts/dyn", "{\"type\":\"database\"}", 204));
	json_decref(admin("POST", "/v1/dyn/config/pg",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"allowed_roles\":\"*\","
	    "\"username\":\"admin\",\"password\":\"admin\"}", 204));
	json_decref(admin("POST", "/v1/dyn/roles/app",
	    "{\"db_name\":\"pg\",\"creation_statements\":[\"CREATE ROLE x\"],"
	    "\"default_ttl\":\"1m\",\"max_ttl\":\"2m\"}", 204));
	c = client_for(dev.addr, dev.token);
	ck_assert_msg(lk_vault_lease_read(c, "dyn/creds/app", &s, &err) == 0, "%s",
	    err.base.msg);
	ck_assert_ptr_nonnull(s.lease_id);
	ck_assert_ptr_nonnull(strstr(s.lease_id, "dyn/creds/app/"));
	ck_assert(s.renewable);
	ck_assert_int_eq(s.lease_duration_s, 60);
	ck_assert(json_is_string(json_object_get(s.data, "username")));
	ck_assert(json_is_string(json_object_get(s.data, "password")));

	ck_assert_msg(lk_vault_lease_renew(c, s.lease_id, 30, &n, &err) == 0, "%s", err.base.msg);
	ck_assert_str_eq(n.lease_id, s.lease_id);
	ck_assert_int_eq(n.lease_duration_s, 30);
	ck_assert(!n.capped);
	lk_vault_lease_renewal_clear(&n);
	/* Past the role's max_ttl of 2m: granted less than asked, with the warning. */
	ck_assert_int_eq(lk_vault_lease_renew(c, s.lease_id, 600, &n, &err), 0);
	ck_assert(n.lease_duration_s <= 120);
	ck_assert(n.capped);
	lk_vault_lease_renewal_clear(&n);

	ck_assert_int_eq(lk_vault_lease_revoke(c, s.lease_id, &w, &err), 0);
	json_decref(w);
	l = lease_state(s.lease_id);
	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(json_string_value(json_object_get(l, "state")), "revoked");
	json_decref(l);
	/* Renewing a revoked lease: 400, not retryable. */
	ck_assert_int_eq(lk_vault_lease_renew(c, s.lease_id, 30, &n, &err), -EREMOTEIO);
	ck_assert_int_eq(err.status, 400);
	ck_assert(!err.retryable);
	lk_vault_lease_secret_clear(&s);

	ck_assert_int_eq(lk_vault_lease_read(c, "dyn/creds/nope", &s, &err), -EREMOTEIO);
	ck_assert_int_eq(err.status, 400);
	lk_vault_client_free(c);
	t_dev_stop(&dev);
}
END_TEST

/* ---- one client shared by threads ---- */

/* Reads each thread makes through the shared client. */
#define SHARED_READS 25

struct shared_arg {
	struct lk_vault_client *c;
	int ok;
};

static void *
shared_reader(void *p)
{
	struct shared_arg *a = p;

	for (int i = 0; i < SHARED_READS; i++) {
		struct lk_vault_kv_secret s;
		struct lk_vault_error err;

		if (lk_vault_kv_read_v2(a->c, "secret", "shared", 0, &s, &err) == 0) {
			if (s.version == 1 && json_is_string(json_object_get(s.data, "k")))
				a->ok++;
			lk_vault_kv_secret_clear(&s);
		}
	}
	return NULL;
}

START_TEST(test_shared_client_threads)
{
	struct shared_arg a[3];
	pthread_t th[3];
	struct lk_vault_client *c;

	dev_up();
	json_decref(admin("POST", "/v1/secret/data/shared", "{\"data\":{\"k\":\"v\"}}", 200));
	c = client_for(dev.addr, dev.token);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct shared_arg){ .c = c };
		ck_assert_int_eq(pthread_create(&th[i], NULL, shared_reader, &a[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(a[i].ok, SHARED_READS);
	}
	lk_vault_client_free(c);
	t_dev_stop(&dev);
}
END_TEST

/* ---- error classes through fault injection ---- */

START_TEST(test_faults)
{
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;

	dev_up();
	json_decref(admin("POST", "/v1/secret/data/x", "{\"data\":{\"k\":\"v\"}}", 200));
	c = client_for(dev.addr, dev.token);

	json_decref(admin("POST", "/_latchkey/faults",
	    "{\"error_rate\":1.0,\"error_status\":429,\"retry_after\":3}", 200));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EAGAIN);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
	ck_assert_int_eq(err.status, 429);
	ck_assert(err.retryable);
	ck_assert_int_eq(err.retry_after_ms, 3000);

	json_decref(admin("POST", "/_latchkey/faults", "{\"error_rate\":1.0,\"error_status\":500}", 200));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EREMOTEIO);
	ck_assert_int_eq(err.status, 500);
	ck_assert(err.retryable);
	ck_assert_int_eq(err.retry_after_ms, -1);

	json_decref(admin("DELETE", "/_latchkey/faults", NULL, 200));
	json_decref(admin("POST", "/_latchkey/faults", "{\"sealed\":true}", 200));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EAGAIN);
	ck_assert_int_eq(err.status, 503);
	ck_assert(err.retryable);
	ck_assert_msg(strstr(err.base.msg, "sealed") != NULL, "%s", err.base.msg);

	json_decref(admin("POST", "/_latchkey/faults", "{\"sealed\":false,\"drop_rate\":1.0}", 200));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert_int_eq(err.status, 0);
	ck_assert(err.retryable);

	json_decref(admin("DELETE", "/_latchkey/faults", NULL, 200));
	json_decref(admin("POST", "/_latchkey/faults", "{\"latency_ms\":3000}", 200));
	lk_vault_client_set_timeouts(c, 0, 300);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -ETIMEDOUT);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TIMEOUT);
	ck_assert(err.retryable);

	/* And after the faults are gone, the same client works again. */
	json_decref(admin("DELETE", "/_latchkey/faults", NULL, 200));
	lk_vault_client_set_timeouts(c, 0, 10000);
	ck_assert_msg(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err) == 0, "%s", err.base.msg);
	lk_vault_kv_secret_clear(&s);

	/* 403 for a token that does not exist; the message does not repeat the token. */
	lk_vault_client_free(c);
	c = client_for(dev.addr, "hvs.SECRETSECRETSECRET");
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EACCES);
	ck_assert(!err.retryable);
	ck_assert_msg(strstr(err.base.msg, "SECRETSECRET") == NULL, "%s", err.base.msg);
	lk_vault_client_free(c);
	t_dev_stop(&dev);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	char addr[64];
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	/* Bound but not listening: a connection is refused, and the port stays ours for
	 * the whole test, so nothing else can start listening on it meanwhile. */
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	c = client_for(addr, "root");
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -ECONNREFUSED);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert_int_eq(err.status, 0);
	ck_assert(err.retryable);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "GET /v1/secret/data/x"));
	lk_vault_client_free(c);
	close(fd);
}
END_TEST

/* ---- a raw TCP server for what a real backend does not do on purpose ---- */

/* Largest request the raw server records. */
#define RAW_REQ_MAX 16384

enum raw_mode { RAW_CANNED, RAW_STALL, RAW_BIG };

struct raw {
	int fd;
	int port;
	pthread_t thread;
	enum raw_mode mode;
	const char *responses[4];   /* one per request, in order; last one repeats */
	char request[RAW_REQ_MAX];  /* all requests received, concatenated */
	size_t request_len;
	int accepts;
	int served;
	volatile int stop;
	pthread_mutex_t lock;
};

/* Reads one request (headers and Content-Length body); false when the peer closed. */
static bool
raw_read_request(struct raw *r, int cfd)
{
	char buf[RAW_REQ_MAX];
	size_t n = 0, need = 0;
	char *end;

	for (;;) {
		struct pollfd p = { .fd = cfd, .events = POLLIN };
		ssize_t got;

		if (r->stop)
			return false;
		if (poll(&p, 1, 50) <= 0)
			continue;
		got = recv(cfd, buf + n, sizeof(buf) - 1 - n, 0);
		if (got <= 0)
			return false;
		n += (size_t)got;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");
			size_t hdr = (size_t)(end + 4 - buf);
			need = hdr + (cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
			if (n >= need || n >= sizeof(buf) - 1)
				break;
		}
		if (n >= sizeof(buf) - 1)
			break;
	}
	pthread_mutex_lock(&r->lock);
	if (r->request_len + n < sizeof(r->request)) {
		memcpy(r->request + r->request_len, buf, n);
		r->request_len += n;
		r->request[r->request_len] = '\0';
	}
	pthread_mutex_unlock(&r->lock);
	return true;
}

static void
raw_send(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void *
raw_main(void *arg)
{
	struct raw *r = arg;

	while (!r->stop) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int cfd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		cfd = accept(r->fd, NULL, NULL);
		if (cfd < 0)
			continue;
		pthread_mutex_lock(&r->lock);
		r->accepts++;
		pthread_mutex_unlock(&r->lock);
		while (raw_read_request(r, cfd)) {
			if (r->mode == RAW_STALL) {
				while (!r->stop)
					poll(NULL, 0, 20);
				break;
			}
			if (r->mode == RAW_BIG) {
				static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: "
				    "application/json\r\nContent-Length: 1572864\r\n\r\n";
				char chunk[8192];
				memset(chunk, ' ', sizeof(chunk));
				raw_send(cfd, head, strlen(head));
				for (int i = 0; i < 1572864 / (int)sizeof(chunk) && !r->stop; i++)
					raw_send(cfd, chunk, sizeof(chunk));
				break;
			}
			{
				int i = r->served < 3 ? r->served : 3;
				const char *resp = r->responses[i] != NULL ? r->responses[i] :
				    r->responses[0];
				raw_send(cfd, resp, strlen(resp));
				pthread_mutex_lock(&r->lock);
				r->served++;
				pthread_mutex_unlock(&r->lock);
				/* A response without Content-Length ends at close. */
				if (strstr(resp, "Content-Length") == NULL ||
				    strstr(resp, "Connection: close") != NULL)
					break;
			}
		}
		close(cfd);
	}
	return NULL;
}

static void
raw_start(struct raw *r, enum raw_mode mode)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->mode = mode;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(r->fd, 16), 0);
	ck_assert_int_eq(getsockname(r->fd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
}

static void
raw_run(struct raw *r)
{
	ck_assert_int_eq(pthread_create(&r->thread, NULL, raw_main, r), 0);
}

static void
raw_stop(struct raw *r)
{
	r->stop = 1;
	pthread_join(r->thread, NULL);
	close(r->fd);
	pthread_mutex_destroy(&r->lock);
}

static struct lk_vault_client *
raw_client(const struct raw *r, int64_t timeout_ms)
{
	char addr[64];
	struct lk_vault_client *c;

	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", r->port);
	c = client_for(addr, "s.rawtoken");
	lk_vault_client_set_timeouts(c, 0, timeout_ms);
	return c;
}

/* A complete response with a correct Content-Length. */
static void
canned(char *out, size_t outlen, const char *status_line, const char *body)
{
	snprintf(out, outlen, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", status_line, strlen(body), body);
}

START_TEST(test_raw_bodies)
{
	static const char short_body[] = "HTTP/1.1 200 OK\r\nContent-Length: 400\r\n"
	    "Connection: close\r\n\r\n{\"data\":{\"data\":";
	char ok[256], not_json[256], cut_json[256], html502[256];
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	struct raw r;

	canned(ok, sizeof(ok), "200 OK",
	    "{\"data\":{\"data\":{\"k\":\"v\"},\"metadata\":{\"version\":7}}}");
	canned(not_json, sizeof(not_json), "200 OK", "<html>maintenance</html>");
	canned(cut_json, sizeof(cut_json), "200 OK", "{\"data\":{\"data\":");
	canned(html502, sizeof(html502), "502 Bad Gateway", "<h1>bad gateway</h1>");
	/* Truncated transfer: fewer bytes than Content-Length, then close. */
	raw_start(&r, RAW_CANNED);
	r.responses[0] = short_body;
	raw_run(&r);
	c = raw_client(&r, 5000);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert(err.retryable);
	lk_vault_client_free(c);
	raw_stop(&r);

	/* The request carried the headers every request must. */
	ck_assert_ptr_nonnull(strstr(r.request, "GET /v1/secret/data/x HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strcasestr(r.request, "\r\nX-Vault-Request: true\r\n"));
	ck_assert_ptr_nonnull(strcasestr(r.request, "\r\nX-Vault-Token: s.rawtoken\r\n"));

	/* Complete, but not JSON; complete, but JSON cut short; an HTML 502. */
	raw_start(&r, RAW_CANNED);
	r.responses[0] = not_json;
	r.responses[1] = cut_json;
	r.responses[2] = html502;
	r.responses[3] = ok;
	raw_run(&r);
	c = raw_client(&r, 5000);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EBADMSG);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_INVALID);
	ck_assert_int_eq(err.status, 200);
	ck_assert(!err.retryable);
	ck_assert_ptr_null(strstr(err.base.msg, "maintenance"));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "truncated"));
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EREMOTEIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
	ck_assert_int_eq(err.status, 502);
	ck_assert(err.retryable);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), 0);
	ck_assert_int_eq(s.version, 7);
	lk_vault_kv_secret_clear(&s);
	lk_vault_client_free(c);
	raw_stop(&r);
	/* Four requests, one connection: the handle keeps it. */
	ck_assert_int_eq(r.served, 4);
	ck_assert_int_eq(r.accepts, 1);
}
END_TEST

START_TEST(test_raw_too_large)
{
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	struct raw r;

	raw_start(&r, RAW_BIG);
	raw_run(&r);
	c = raw_client(&r, 10000);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EMSGSIZE);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TOO_LARGE);
	ck_assert(!err.retryable);
	lk_vault_client_free(c);
	raw_stop(&r);
}
END_TEST

START_TEST(test_raw_stall_timeout)
{
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	struct raw r;

	raw_start(&r, RAW_STALL);
	raw_run(&r);
	c = raw_client(&r, 300);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -ETIMEDOUT);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TIMEOUT);
	ck_assert_int_eq(err.status, 0);
	ck_assert(err.retryable);
	lk_vault_client_free(c);
	raw_stop(&r);
}
END_TEST

START_TEST(test_raw_redirect)
{
	char redirect[256], loop[256], ns_addr[64];
	struct lk_vault_client *c;
	struct lk_vault_config cfg;
	struct lk_vault_error err;
	struct lk_vault_kv_secret s;
	json_t *data;
	int64_t v = 0;
	struct raw r;

	dev_up();
	/* A standby that cannot forward: 307 to the active node, for every request. */
	raw_start(&r, RAW_CANNED);
	snprintf(redirect, sizeof(redirect), "HTTP/1.1 307 Temporary Redirect\r\n"
	    "Location: %s/v1/secret/data/app\r\nContent-Length: 0\r\n\r\n", dev.addr);
	r.responses[0] = redirect;
	raw_run(&r);
	c = raw_client(&r, 10000);
	ck_assert_int_eq(lk_vault_client_set_token(c, NULL), 0);
	{
		struct lk_secret *t = lk_secret_from_str(dev.token);
		ck_assert_int_eq(lk_vault_client_set_token(c, t), 0);
		lk_secret_free(t);
	}
	/* A POST is replayed as a POST with its body: the write lands. */
	data = json_pack("{s:s}", "k", "via-redirect");
	ck_assert_msg(lk_vault_kv_write_v2(c, "secret", "app", data, -1, &v, NULL, &err) == 0,
	    "%s", err.base.msg);
	ck_assert_int_eq(v, 1);
	json_decref(data);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "app", 0, &s, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "k")), "via-redirect");
	lk_vault_kv_secret_clear(&s);
	lk_vault_client_free(c);
	raw_stop(&r);

	/* Redirected twice: not followed again; an HTTP error that is not retried. */
	raw_start(&r, RAW_CANNED);
	snprintf(loop, sizeof(loop), "HTTP/1.1 307 Temporary Redirect\r\n"
	    "Location: http://127.0.0.1:%d/v1/elsewhere\r\nContent-Length: 0\r\n\r\n", r.port);
	r.responses[0] = loop;
	raw_run(&r);
	lk_vault_config_init(&cfg);
	snprintf(ns_addr, sizeof(ns_addr), "http://127.0.0.1:%d", r.port);
	cfg.addr = strdup(ns_addr);
	cfg.namespace = strdup("team-a/");
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EREMOTEIO);
	ck_assert_int_eq(err.status, 307);
	ck_assert(!err.retryable);
	lk_vault_client_free(c);
	raw_stop(&r);
	ck_assert_int_eq(r.served, 2);
	ck_assert_ptr_nonnull(strstr(r.request, "GET /v1/elsewhere HTTP/1.1"));
	ck_assert_ptr_nonnull(strcasestr(r.request, "\r\nX-Vault-Namespace: team-a/\r\n"));
	/* No token configured: none sent. */
	ck_assert_ptr_null(strcasestr(r.request, "X-Vault-Token"));
	t_dev_stop(&dev);
}
END_TEST

/* ---- TLS: verification on, CA file, client certificate ---- */

/* A self-signed P-256 certificate for 127.0.0.1, written as PEM to dir/<name>.pem and
 * dir/<name>-key.pem. */
static void
make_cert(const char *dir, const char *name)
{
	char path[600];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	FILE *f;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
	ck_assert_ptr_nonnull(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_X509(f, x);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s-key.pem", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

struct tls_server {
	struct raw raw;             /* the listening socket, stop flag and counters */
	SSL_CTX *ctx;
	const char *response;
	int handshakes_ok;
};

static void *
tls_main(void *arg)
{
	struct tls_server *t = arg;
	struct raw *r = &t->raw;

	while (!r->stop) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		char buf[RAW_REQ_MAX];
		size_t n = 0;
		SSL *ssl;
		int cfd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		cfd = accept(r->fd, NULL, NULL);
		if (cfd < 0)
			continue;
		ssl = SSL_new(t->ctx);
		SSL_set_fd(ssl, cfd);
		if (SSL_accept(ssl) == 1) {
			pthread_mutex_lock(&r->lock);
			t->handshakes_ok++;
			pthread_mutex_unlock(&r->lock);
			while (n < sizeof(buf) - 1) {
				int got = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n));
				if (got <= 0)
					break;
				n += (size_t)got;
				buf[n] = '\0';
				if (strstr(buf, "\r\n\r\n") != NULL)
					break;
			}
			SSL_write(ssl, t->response, (int)strlen(t->response));
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(cfd);
	}
	return NULL;
}

static void
tls_start(struct tls_server *t, const char *dir, bool want_client_cert, const char *response)
{
	char cert[600], key[600], client[600];

	memset(t, 0, sizeof(*t));
	raw_start(&t->raw, RAW_CANNED);
	t->response = response;
	t->ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(t->ctx);
	snprintf(cert, sizeof(cert), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server-key.pem", dir);
	ck_assert_int_eq(SSL_CTX_use_certificate_file(t->ctx, cert, SSL_FILETYPE_PEM), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
	if (want_client_cert) {
		snprintf(client, sizeof(client), "%s/client.pem", dir);
		ck_assert_int_eq(SSL_CTX_load_verify_locations(t->ctx, client, NULL), 1);
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	ck_assert_int_eq(pthread_create(&t->raw.thread, NULL, tls_main, t), 0);
}

static void
tls_stop(struct tls_server *t)
{
	raw_stop(&t->raw);
	SSL_CTX_free(t->ctx);
}

static struct lk_vault_client *
tls_client(const struct tls_server *t, const char *dir, bool ca, bool client_cert)
{
	struct lk_vault_config cfg;
	struct lk_vault_client *c = NULL;
	struct lk_vault_error err;
	char buf[600];

	lk_vault_config_init(&cfg);
	snprintf(buf, sizeof(buf), "https://127.0.0.1:%d", t->raw.port);
	cfg.addr = strdup(buf);
	cfg.timeout_ms = 10000;
	cfg.token = lk_secret_from_str("s.tls");
	if (ca) {
		snprintf(buf, sizeof(buf), "%s/server.pem", dir);
		cfg.cacert = strdup(buf);
	}
	if (client_cert) {
		snprintf(buf, sizeof(buf), "%s/client.pem", dir);
		cfg.client_cert = strdup(buf);
		snprintf(buf, sizeof(buf), "%s/client-key.pem", dir);
		cfg.client_key = strdup(buf);
	}
	ck_assert_msg(lk_vault_client_new(&cfg, &c, &err) == 0, "%s", err.base.msg);
	lk_vault_config_clear(&cfg);
	return c;
}

START_TEST(test_tls)
{
	char ok[256], downgrade[256];
	struct tls_server t;
	struct lk_vault_client *c;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;
	char *dir = t_tmpdir();

	make_cert(dir, "server");
	make_cert(dir, "client");
	snprintf(ok, sizeof(ok), "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %zu\r\n"
	    "\r\n%s", strlen("{\"data\":{\"data\":{\"k\":\"v\"},\"metadata\":{\"version\":3}}}"),
	    "{\"data\":{\"data\":{\"k\":\"v\"},\"metadata\":{\"version\":3}}}");

	/* The server's certificate verifies against the configured CA file. */
	tls_start(&t, dir, false, ok);
	c = tls_client(&t, dir, true, false);
	ck_assert_msg(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err) == 0, "%s", err.base.msg);
	ck_assert_int_eq(s.version, 3);
	lk_vault_kv_secret_clear(&s);
	lk_vault_client_free(c);
	/* Without that CA the same certificate is refused, and retrying will not help. */
	c = tls_client(&t, dir, false, false);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert(!err.retryable);
	lk_vault_client_free(c);
	tls_stop(&t);

	/* A server that wants a client certificate: presented from the configured files. */
	tls_start(&t, dir, true, ok);
	c = tls_client(&t, dir, true, true);
	ck_assert_msg(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err) == 0, "%s", err.base.msg);
	lk_vault_kv_secret_clear(&s);
	lk_vault_client_free(c);
	c = tls_client(&t, dir, true, false);
	ck_assert_int_lt(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), 0);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	lk_vault_client_free(c);
	tls_stop(&t);
	ck_assert_int_eq(t.handshakes_ok, 1);

	/* A redirect from https to plain http is not followed: it would expose the token. */
	snprintf(downgrade, sizeof(downgrade), "HTTP/1.1 307 Temporary Redirect\r\n"
	    "Location: http://127.0.0.1:1/v1/secret/data/x\r\nConnection: close\r\n"
	    "Content-Length: 0\r\n\r\n");
	tls_start(&t, dir, false, downgrade);
	c = tls_client(&t, dir, true, false);
	ck_assert_int_eq(lk_vault_kv_read_v2(c, "secret", "x", 0, &s, &err), -EREMOTEIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
	ck_assert_int_eq(err.status, 307);
	ck_assert(!err.retryable);
	lk_vault_client_free(c);
	tls_stop(&t);
	t_rmrf(dir);
	free(dir);
}
END_TEST

static Suite *
vault_client_suite(void)
{
	Suite *s = suite_create("vault_client");
	TCase *tc = tcase_create("dev");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_token_auth);
	tcase_add_test(tc, test_approle_auth);
	tcase_add_test(tc, test_kubernetes_auth);
	tcase_add_test(tc, test_token_renew_revoke);
	tcase_add_test(tc, test_kv1);
	tcase_add_test(tc, test_kv2_versions);
	tcase_add_test(tc, test_dynamic_renew_revoke);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_shared_client_threads);
	tcase_add_test(tc, test_raw_redirect);
	suite_add_tcase(s, tc);
	tc = tcase_create("raw");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_raw_bodies);
	tcase_add_test(tc, test_raw_too_large);
	tcase_add_test(tc, test_raw_stall_timeout);
	tcase_add_test(tc, test_tls);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (lk_secret_init() < 0)
		return 1;
	lk_json_wipe_on_free();
	if (lk_http_global_init() < 0)
		return 1;
	sr = srunner_create(vault_client_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	lk_http_global_cleanup();
	return failed == 0 ? 0 : 1;
}
