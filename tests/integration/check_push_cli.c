/* check_push_cli.c — `latchkey push` against `latchkey dev`: values land in KV v2, the
 * printed ExternalSecret references them and holds none of them, errors are clear. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest/manifest.h"
#include "testutil.h"

static struct t_dev dev;

struct run {
	int status;     /* exit status, or -1 */
	char *out;      /* stdout */
	char *err;      /* stderr */
};

static void
run_clear(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Runs `latchkey push ARGS` with VAULT_ADDR and a token, feeding `input` on stdin. */
static void
push(struct run *r, const char *token, const char *input, const char *const args[])
{
	char dir_out[600], dir_err[600], dir_in[600], addr[128], tok[128];
	char home[600];
	const char *argv[32];
	/* HOME elsewhere: no ~/.vault-token of the machine's user is picked up. */
	const char *env[] = { addr, home, token != NULL ? tok : "VAULT_TOKEN=", "VAULT_NAMESPACE=", NULL };
	size_t n = 0;

	snprintf(dir_out, sizeof(dir_out), "%s/push.out", dev.dir);
	snprintf(dir_err, sizeof(dir_err), "%s/push.err", dev.dir);
	snprintf(dir_in, sizeof(dir_in), "%s/push.in", dev.dir);
	ck_assert_int_eq(t_write_file(dir_in, input != NULL ? input : "", 0600), 0);
	snprintf(addr, sizeof(addr), "VAULT_ADDR=%s", dev.addr);
	snprintf(tok, sizeof(tok), "VAULT_TOKEN=%s", token != NULL ? token : "");
	snprintf(home, sizeof(home), "HOME=%s", dev.dir);
	argv[n++] = t_latchkey_bin();
	argv[n++] = "push";
	for (size_t i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	r->status = t_run(argv, env, dir_in, dir_out, dir_err);
	r->out = t_read_file(dir_out);
	r->err = t_read_file(dir_err);
	ck_assert_ptr_nonnull(r->out);
	ck_assert_ptr_nonnull(r->err);
}

/* data.data of a KV v2 secret read over plain HTTP (not latchkey's client). */
static json_t *
kv_read(const char *path)
{
	char url[512], *body = NULL;
	json_t *root, *data;

	snprintf(url, sizeof(url), "%s/v1/secret/data/%s", dev.addr, path);
	ck_assert_int_eq(t_http("GET", url, NULL, dev.token, NULL, &body), 200);
	root = json_loads(body, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(root);
	data = json_incref(json_object_get(json_object_get(root, "data"), "data"));
	json_decref(root);
	return data;
}

static void
setup(void)
{
	ck_assert_int_eq(t_dev_start(&dev, NULL), 0);
}

static void
teardown(void)
{
	t_dev_stop(&dev);
}

START_TEST(test_push_writes_and_references)
{
	char file[600];
	struct run r = { 0 };
	struct lk_error err;
	json_t *es = NULL, *data, *list;

	snprintf(file, sizeof(file), "%s/cert.pem", dev.dir);
	ck_assert_int_eq(t_write_file(file, "-----BEGIN CERT-----\nQUJD\n-----END CERT-----\n", 0600), 0);
	char at_file[620];
	snprintf(at_file, sizeof(at_file), "cert=@%s", file);
	push(&r, dev.token, "from-stdin-V4lue\n", (const char *[]){
		"--path", "secret/data/team/api_Keys", "--namespace", "team",
		"user=alice-V4lue", at_file, "token=-", NULL });
	ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
	/* The values are in the backend, byte for byte (stdin without its newline). */
	data = kv_read("team/api_Keys");
	ck_assert_str_eq(json_string_value(json_object_get(data, "user")), "alice-V4lue");
	ck_assert_str_eq(json_string_value(json_object_get(data, "token")), "from-stdin-V4lue");
	ck_assert_str_eq(json_string_value(json_object_get(data, "cert")),
			 "-----BEGIN CERT-----\nQUJD\n-----END CERT-----\n");
	json_decref(data);
	/* The output is an ExternalSecret that names the keys and holds no value. */
	ck_assert_ptr_null(strstr(r.out, "V4lue"));
	ck_assert_ptr_null(strstr(r.err, "V4lue"));
	ck_assert_ptr_null(strstr(r.out, "QUJD"));
	ck_assert_int_eq(lk_manifest_parse(r.out, strlen(r.out), "stdout", &es, NULL, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(es, "apiVersion")), "latchkey.io/v1");
	ck_assert_str_eq(json_string_value(json_object_get(es, "kind")), "ExternalSecret");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(es, "metadata"), "name")),
			 "api-keys");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(es, "metadata"), "namespace")),
			 "team");
	list = json_object_get(json_object_get(es, "spec"), "data");
	ck_assert_uint_eq(json_array_size(list), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *item = json_array_get(list, i), *ref = json_object_get(item, "remoteRef");
		const char *k = json_string_value(json_object_get(item, "secretKey"));
		ck_assert(strcmp(k, "user") == 0 || strcmp(k, "cert") == 0 || strcmp(k, "token") == 0);
		ck_assert_str_eq(json_string_value(json_object_get(ref, "key")), "secret/team/api_Keys");
		ck_assert_str_eq(json_string_value(json_object_get(ref, "property")), k);
	}
	json_decref(es);
	run_clear(&r);
}
END_TEST

START_TEST(test_push_replace_and_merge)
{
	struct run r = { 0 };
	json_t *data, *es = NULL;
	struct lk_error err;

	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/app", "a=1", "b=2", NULL });
	ck_assert_int_eq(r.status, 0);
	run_clear(&r);
	/* Without --merge the secret is replaced, as `vault kv put` does. */
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/app", "c=3", NULL });
	ck_assert_int_eq(r.status, 0);
	run_clear(&r);
	data = kv_read("app");
	ck_assert_uint_eq(json_object_size(data), 1);
	json_decref(data);
	/* With --merge the other keys stay, and the given one wins. */
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/app", "--merge",
		"--compat", "external-secrets", "--format", "json", "c=33", "d=4", NULL });
	ck_assert_msg(r.status == 0, "%s", r.err);
	data = kv_read("app");
	ck_assert_uint_eq(json_object_size(data), 2);
	ck_assert_str_eq(json_string_value(json_object_get(data, "c")), "33");
	ck_assert_str_eq(json_string_value(json_object_get(data, "d")), "4");
	json_decref(data);
	ck_assert_int_eq(lk_manifest_parse(r.out, strlen(r.out), "stdout", &es, NULL, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(es, "apiVersion")), "external-secrets.io/v1");
	ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(es, "spec"), "data")), 2);
	ck_assert_ptr_nonnull(strstr(r.err, "version 3"));
	json_decref(es);
	run_clear(&r);
	/* A stale check-and-set is refused and says why. */
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/app", "--cas", "1", "e=5", NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "check-and-set"));
	run_clear(&r);
}
END_TEST

START_TEST(test_push_errors)
{
	struct run r = { 0 };

	/* Usage errors: exit 2, nothing written, no value echoed. */
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/app", "a=xyzzy-value", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "MOUNT/data/PATH"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/x", "bad key=xyzzy-value", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_null(strstr(r.err, "xyzzy"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/x", "novalue-xyzzy", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_null(strstr(r.err, "xyzzy"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/x", "a=1", "a=2", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "a: given twice"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/x", "a=@/nonexistent/f", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/f"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "secret/data/x", "--bogus", "a=1", NULL });
	ck_assert_int_eq(r.status, 2);
	run_clear(&r);
	push(&r, NULL, NULL, (const char *[]){ "--path", "secret/data/x", "a=1", NULL });
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "no token"));
	run_clear(&r);
	/* Runtime errors: exit 1 with the backend's reason, never the token. */
	push(&r, "not-a-real-token-qq", NULL, (const char *[]){ "--path", "secret/data/x", "a=1", NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "permission denied"));
	ck_assert_ptr_null(strstr(r.err, "not-a-real-token-qq"));
	run_clear(&r);
	push(&r, dev.token, NULL, (const char *[]){ "--path", "nomount/data/x", "a=1", NULL });
	ck_assert_int_eq(r.status, 1);
	ck_assert_ptr_nonnull(strstr(r.err, "no handler for route"));
	ck_assert_str_eq(r.out, "");
	run_clear(&r);
}
END_TEST

static Suite *
push_suite(void)
{
	Suite *s = suite_create("push_cli");
	TCase *tc = tcase_create("push");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_push_writes_and_references);
	tcase_add_test(tc, test_push_replace_and_merge);
	tcase_add_test(tc, test_push_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(push_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
