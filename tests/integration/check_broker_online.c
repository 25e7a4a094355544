/* check_broker_online.c — `latchkey broker --check-config FILE --online` against
 * `latchkey dev`: the table and the exit status when every secret can be read, the exact
 * policy line for a path the token may not read, a Kubernetes role bound to another
 * service account named on both sides, an AppRole named by the backend, the lease a dynamic read creates revoked at once,
 * and never a value (nor the JWT) in what it prints. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "brokerutil.h"
#include "common/clock.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"

/* The values bf_dev writes at secret/data/app/api; neither may be printed. */
#define API_USER "bf-user"
#define API_PASSWORD "bf-password-4a1f0c"
/* Every username the dev database engine makes starts so. */
#define DB_USER_PREFIX "v-token-"

#define POLICY_APP "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\\n" \
		   "path \\\"database/creds/app\\\" { capabilities = [\\\"read\\\"] }\"}"

/* A token with policies (a JSON array) into the fixture's token file. */
static void
token_with(struct bf *f, const char *policies)
{
	char body[256], *out = NULL;
	json_t *j;
	const char *tok;

	snprintf(body, sizeof(body), "{\"policies\": %s, \"ttl\": \"1h\"}", policies);
	ck_assert_int_eq(bf_dev_call(f, "POST", "/v1/auth/token/create", body, &out), 200);
	j = json_loads(out, 0, NULL);
	tok = json_string_value(json_object_get(json_object_get(j, "auth"), "client_token"));
	ck_assert_ptr_nonnull(tok);
	ck_assert_int_eq(t_write_file(f->token_file, tok, 0600), 0);
	json_decref(j);
	free(out);
}

/* Runs the check (with --json when as_json); the exit status, and what it printed (stdout
 * and stderr together) in *ret (malloc'd). env: NULL-terminated extra variables or NULL. */
static int
run_check(struct bf *f, bool as_json, const char *const env[], char **ret)
{
	const char *argv[] = { t_latchkey_bin(), "broker", "--check-config", f->cfg, "--online",
			       as_json ? "--json" : NULL, NULL };
	char out[700];
	int status;

	snprintf(out, sizeof(out), "%s/check.out", f->dir);
	status = t_run(argv, env, NULL, out, out);
	*ret = t_read_file(out);
	ck_assert_ptr_nonnull(*ret);
	return status;
}

static void
assert_no_values(const char *out)
{
	ck_assert_ptr_null(strstr(out, API_PASSWORD));
	ck_assert_ptr_null(strstr(out, "\"" API_USER "\""));
	ck_assert_ptr_null(strstr(out, " " API_USER));
	ck_assert_ptr_null(strstr(out, DB_USER_PREFIX));
}

START_TEST(test_all_ok)
{
	struct bf f;
	char *out = NULL;
	json_t *j, *rows, *db = NULL, *api = NULL, *row;
	size_t i;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_lt(bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app", POLICY_APP, NULL), 300);
	token_with(&f, "[\"app\"]");
	bf_config(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/api\"},"
		      "{\"name\": \"db\", \"path\": \"database/creds/app\"}", NULL);
	ck_assert_int_eq(bf_leases(&f, "active"), 0);

	ck_assert_int_eq(run_check(&f, false, NULL, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "login (token): ok, policies app, default"));
	ck_assert_ptr_nonnull(strstr(out, "SECRET"));
	ck_assert_ptr_nonnull(strstr(out, "RENEWABLE"));
	ck_assert_ptr_nonnull(strstr(out, "ok (lease revoked)"));
	ck_assert_ptr_null(strstr(out, "FAILED"));
	ck_assert_ptr_nonnull(strstr(out, "the lease that read created was revoked"));
	assert_no_values(out);
	free(out);
	/* The one lease the dynamic read made is revoked, none left active. */
	ck_assert_int_eq(bf_leases(&f, "active"), 0);
	ck_assert_int_eq(bf_leases(&f, "revoked"), 1);

	ck_assert_int_eq(run_check(&f, true, NULL, &out), 0);
	assert_no_values(out);
	j = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	rows = json_object_get(j, "secrets");
	json_array_foreach(rows, i, row) {
		const char *name = json_string_value(json_object_get(row, "name"));

		if (name != NULL && strcmp(name, "db") == 0)
			db = row;
		if (name != NULL && strcmp(name, "api") == 0)
			api = row;
	}
	ck_assert_ptr_nonnull(db);
	ck_assert_ptr_nonnull(api);
	ck_assert(json_is_true(json_object_get(db, "lease_revoked")));
	ck_assert(json_is_true(json_object_get(db, "renewable")));
	ck_assert_int_eq(json_integer_value(json_object_get(db, "ttl_s")), 3600);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(db, "capabilities"), 0)),
			 "read");
	ck_assert_int_eq(json_integer_value(json_object_get(api, "keys")), 2);
	ck_assert(json_is_false(json_object_get(api, "leased")));
	json_decref(j);
	free(out);
	ck_assert_int_eq(bf_leases(&f, "active"), 0);
	ck_assert_int_eq(bf_leases(&f, "revoked"), 2);
	bf_stop(&f);
}
END_TEST

START_TEST(test_missing_policy_line)
{
	struct bf f;
	char *out = NULL;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_lt(bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app", POLICY_APP, NULL), 300);
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/secret/data/other/db",
				     "{\"data\":{\"password\":\"" API_PASSWORD "\"}}", NULL), 300);
	token_with(&f, "[\"app\"]");
	bf_config(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/api\"},"
		      "{\"name\": \"other\", \"path\": \"secret/data/other/db\"}", NULL);
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "path \"secret/data/other/db\" { capabilities = [\"read\"] }"));
	ck_assert_ptr_nonnull(strstr(out, "add it to policy \"app\""));
	ck_assert_ptr_nonnull(strstr(out, "deny"));
	ck_assert_ptr_nonnull(strstr(out, "FAILED"));
	assert_no_values(out);
	free(out);
	bf_stop(&f);
}
END_TEST

/* A service-account JWT for `latchkey dev` (which checks no signature without pem_keys);
 * its text in *ret_text (at least 1400 bytes) to look for in the output. */
static void
write_jwt(const char *path, const char *ns, const char *sa_name, char *ret_text)
{
	char payload[512], hb[256], pb[1024];
	const char *header = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";

	snprintf(payload, sizeof(payload),
		 "{\"iss\":\"kubernetes/serviceaccount\",\"sub\":\"system:serviceaccount:%s:%s\","
		 "\"exp\":%lld,\"kubernetes.io\":{\"namespace\":\"%s\","
		 "\"serviceaccount\":{\"name\":\"%s\",\"uid\":\"0d6c3f1e\"}}}",
		 ns, sa_name, (long long)(lk_now_real_ms() / 1000 + 3600), ns, sa_name);
	sodium_bin2base64(hb, sizeof(hb), (const unsigned char *)header, strlen(header),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(pb, sizeof(pb), (const unsigned char *)payload, strlen(payload),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(ret_text, 1400, "%s.%s.c2lnbmF0dXJl", hb, pb);
	ck_assert_int_eq(t_write_file(path, ret_text, 0600), 0);
}

static void
kubernetes_config(struct bf *f, const char *jwt_file)
{
	char *text;

	ck_assert_int_ge(asprintf(&text,
		 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"kubernetes\","
		 " \"role\": \"app\", \"jwt_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\"},"
		 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\"}]}",
		 f->dev.addr, jwt_file, f->sock), 0);
	ck_assert_int_eq(t_write_file(f->cfg, text, 0600), 0);
	free(text);
}

START_TEST(test_kubernetes_role_bound_elsewhere)
{
	struct bf f;
	char jwt_file[700], jwt[1400], env_token[200], *out = NULL;
	const char *env[] = { env_token, NULL };
	json_t *j;

	bf_dev(&f, "1h", "2h");
	snprintf(env_token, sizeof(env_token), "VAULT_TOKEN=%s", f.dev.token);
	ck_assert_int_lt(bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app", POLICY_APP, NULL), 300);
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/kubernetes/config",
				     "{\"kubernetes_host\":\"https://kubernetes.default.svc\"}", NULL), 300);
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/kubernetes/role/app",
				     "{\"bound_service_account_names\":[\"web\"],"
				     "\"bound_service_account_namespaces\":[\"shop\"],"
				     "\"token_policies\":[\"app\"]}", NULL), 300);
	snprintf(jwt_file, sizeof(jwt_file), "%s/sa-token", f.dir);
	write_jwt(jwt_file, "shop", "app", jwt);
	kubernetes_config(&f, jwt_file);

	/* With a token that may read the role: both sides named. */
	ck_assert_int_eq(run_check(&f, false, env, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "bound_service_account_names [web]"));
	ck_assert_ptr_nonnull(strstr(out, "bound_service_account_namespaces [shop]"));
	ck_assert_ptr_nonnull(strstr(out, "service account \"app\" in namespace \"shop\""));
	ck_assert_ptr_nonnull(strstr(out, "add \"app\" to bound_service_account_names"));
	ck_assert_ptr_nonnull(strstr(out, "not checked"));
	ck_assert_ptr_null(strstr(out, jwt));
	ck_assert_ptr_null(strstr(out, strchr(jwt, '.') + 1));
	assert_no_values(out);
	free(out);

	/* Without one: the service account still named, and how to see the bindings. */
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "service account \"app\" in namespace \"shop\""));
	ck_assert_ptr_nonnull(strstr(out, "set VAULT_TOKEN to a token that may read "
				     "auth/kubernetes/role/app"));
	ck_assert_ptr_null(strstr(out, strchr(jwt, '.') + 1));
	free(out);

	/* Bound: ok, and the token the check logged in for is revoked. */
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/kubernetes/role/app",
				     "{\"bound_service_account_names\":[\"web\",\"app\"],"
				     "\"bound_service_account_namespaces\":[\"shop\"],"
				     "\"token_policies\":[\"app\"]}", NULL), 300);
	ck_assert_int_eq(run_check(&f, true, NULL, &out), 0);
	j = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_true(json_object_get(json_object_get(j, "login"), "ok")));
	ck_assert(json_is_true(json_object_get(json_object_get(j, "login"), "token_revoked")));
	ck_assert(json_is_true(json_object_get(j, "ok")));
	assert_no_values(out);
	json_decref(j);
	free(out);
	bf_stop(&f);
}
END_TEST

/* A secret read from a file has nothing to ask of the backend: the check covers the
 * others and names it. */
START_TEST(test_file_source_skipped)
{
	struct bf f;
	char secrets[1024], *out = NULL;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_eq(mkdir(t_path(f.dir, "vol"), 0700), 0);
	ck_assert_int_eq(t_write_file(t_path(f.dir, "vol/token"), "file-value-0c1d", 0600), 0);
	snprintf(secrets, sizeof(secrets), "{\"name\": \"api\", \"path\": "
		 "\"secret/data/app/api\"}, {\"name\": \"mounted\", \"from_file\": \"%s\"}",
		 t_path(f.dir, "vol"));
	bf_config(&f, secrets, NULL);
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 0);
	ck_assert_msg(strstr(out, "read from files, not asked of the backend: mounted") != NULL,
		      "%s", out);
	ck_assert_ptr_null(strstr(out, "file-value-0c1d"));
	assert_no_values(out);
	free(out);
	ck_assert_int_eq(run_check(&f, true, NULL, &out), 0);
	ck_assert_ptr_null(strstr(out, "file-value-0c1d"));
	free(out);
	bf_stop(&f);
}
END_TEST

/* A JSON string member of data in body (a `latchkey dev` answer), into path. */
static void
write_data_member(const char *body, const char *key, const char *path)
{
	json_t *j = json_loads(body, 0, NULL);
	const char *v = json_string_value(json_object_get(json_object_get(j, "data"), key));

	ck_assert_msg(v != NULL, "no data.%s in the answer", key);
	ck_assert_int_eq(t_write_file(path, v, 0600), 0);
	json_decref(j);
}

/* An AppRole whose tokens carry no policy that reads the path: the fix names the role the
 * backend says was used, and neither the role_id nor the secret_id is printed. */
START_TEST(test_approle_fix_names_the_role)
{
	struct bf f;
	char *out = NULL, *body = NULL, *text = NULL, *role_id, *secret_id;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/approle/role/web-app",
				     "{\"token_policies\":[\"default\"],\"token_ttl\":\"1h\"}", NULL), 300);
	ck_assert_int_eq(bf_dev_call(&f, "GET", "/v1/auth/approle/role/web-app/role-id", NULL, &body),
			 200);
	write_data_member(body, "role_id", t_path(f.dir, "role_id"));
	free(body);
	ck_assert_int_eq(bf_dev_call(&f, "POST", "/v1/auth/approle/role/web-app/secret-id", "{}",
				     &body), 200);
	write_data_member(body, "secret_id", t_path(f.dir, "secret_id"));
	free(body);
	ck_assert_int_ge(asprintf(&text,
		 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"approle\","
		 " \"role_id_file\": \"%s\", \"secret_id_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\"},"
		 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\"}]}",
		 f.dev.addr, t_path(f.dir, "role_id"), t_path(f.dir, "secret_id"), f.sock), 0);
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	free(text);

	ck_assert_int_eq(run_check(&f, false, NULL, &out), 1);
	ck_assert_msg(strstr(out, "path \"secret/data/app/api\" { capabilities = [\"read\"] }") != NULL,
		      "%s", out);
	ck_assert_msg(strstr(out, "token_policies of role \"web-app\" (auth/approle/role/web-app)")
		      != NULL, "%s", out);
	role_id = t_read_file(t_path(f.dir, "role_id"));
	secret_id = t_read_file(t_path(f.dir, "secret_id"));
	ck_assert_ptr_nonnull(role_id);
	ck_assert_ptr_nonnull(secret_id);
	ck_assert_ptr_null(strstr(out, role_id));
	ck_assert_ptr_null(strstr(out, secret_id));
	assert_no_values(out);
	free(role_id);
	free(secret_id);
	free(out);
	bf_stop(&f);
}
END_TEST

/* Writes {"key": value} (value: JSON text) at secret/data/app/lk1. */
static void
kv_key(struct bf *f, const char *value_json)
{
	char *body = NULL;

	ck_assert_int_ge(asprintf(&body, "{\"data\":{\"key\":%s}}", value_json), 0);
	ck_assert_int_lt(bf_dev_call(f, "POST", "/v1/secret/data/app/lk1", body, NULL), 300);
	sodium_memzero(body, strlen(body));
	free(body);
}

/* A decryption key read from the backend is checked like a secret (read, and its field
 * an lk1 private key); the key's text is never printed. */
START_TEST(test_decryption_key_from_backend)
{
	struct bf f;
	char secrets[1024], *out = NULL, *text;
	struct lk_key *key = NULL;
	struct lk_secret *priv = NULL;
	json_t *js;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_lt(bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app", POLICY_APP, NULL), 300);
	token_with(&f, "[\"app\"]");
	ck_assert_int_eq(mkdir(t_path(f.dir, "vol"), 0700), 0);
	snprintf(secrets, sizeof(secrets), "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}, "
		 "{\"name\": \"sealed\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"k8s_secret\": {\"namespace\": \"apps\", \"name\": \"sealed\"}}", t_path(f.dir, "vol"));
	bf_config(&f, secrets, "\"decryption_key\": {\"vault_path\": \"secret/data/app/lk1\", "
		  "\"field\": \"key\"}");

	/* Not there yet. */
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 1);
	ck_assert_msg(strstr(out, "decryption_key") != NULL && strstr(out, "secret/data/app/lk1") != NULL &&
		      strstr(out, "FAILED") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "nothing at secret/data/app/lk1") != NULL &&
		      strstr(out, "correct decryption_key.vault_path") != NULL, "%s", out);
	free(out);

	/* There, but not a key. */
	kv_key(&f, "\"not-a-key-7e21\"");
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 1);
	ck_assert_msg(strstr(out, "decryption_key: field \"key\"") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "lk1priv:...") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "not-a-key-7e21"));
	free(out);

	/* The private key: every row ok, exit 0, and the key's text nowhere. */
	ck_assert_int_eq(lk_secret_init(), 0);
	ck_assert_int_eq(lk_key_x25519_generate(&key), 0);
	ck_assert_int_eq(lk_key_x25519_private_text(key, &priv), 0);
	js = json_string(lk_secret_cstr(priv));
	text = json_dumps(js, JSON_ENCODE_ANY);
	json_decref(js);
	kv_key(&f, text);
	sodium_memzero(text, strlen(text));
	free(text);
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 0);
	ck_assert_ptr_null(strstr(out, "FAILED"));
	ck_assert_ptr_null(strstr(out, "lk1priv:"));
	ck_assert_ptr_nonnull(strstr(out, "read from files, not asked of the backend: sealed"));
	assert_no_values(out);
	free(out);
	ck_assert_int_eq(run_check(&f, true, NULL, &out), 0);
	ck_assert_ptr_null(strstr(out, "lk1priv:"));
	free(out);
	lk_secret_free(priv);
	lk_key_free(key);
	bf_stop(&f);
}
END_TEST

START_TEST(test_invalid_config)
{
	struct bf f;
	char *out = NULL;

	bf_dev(&f, "1h", "2h");
	bf_config(&f, "{\"name\": \"x\"}", NULL);
	ck_assert_int_eq(run_check(&f, false, NULL, &out), 2);
	ck_assert_ptr_nonnull(strstr(out, f.cfg));
	ck_assert_ptr_nonnull(strstr(out, "path: missing required key"));
	free(out);
	bf_stop(&f);
}
END_TEST

#define ADD(s, fn, secs) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, (secs)); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
online_suite(void)
{
	Suite *s = suite_create("broker-online");

	ADD(s, test_all_ok, 60);
	ADD(s, test_missing_policy_line, 60);
	ADD(s, test_kubernetes_role_bound_elsewhere, 60);
	ADD(s, test_approle_fix_names_the_role, 60);
	ADD(s, test_decryption_key_from_backend, 60);
	ADD(s, test_invalid_config, 60);
	ADD(s, test_file_source_skipped, 60);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(online_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
