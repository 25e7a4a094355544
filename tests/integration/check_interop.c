/* check_interop.c — the Bitnami format against an independent implementation
 * (tests/interop/bitnami.py, Python `cryptography`): latchkey seals and it opens, it
 * seals and latchkey opens, for all three scopes. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest/manifest.h"
#include "testutil.h"

/* The Debian interpreter, which has python3-cryptography. */
#define PYTHON "/usr/bin/python3"

static char *dir;
static char script[1024];

static void
setup(void)
{
	const char *src = getenv("LATCHKEY_SRCDIR");

	dir = t_tmpdir();
	snprintf(script, sizeof(script), "%s/tests/interop/bitnami.py", src ? src : ".");
	ck_assert_msg(access(script, R_OK) == 0, "%s not found (run from the source tree or set LATCHKEY_SRCDIR)", script);
	ck_assert_msg(access(PYTHON, X_OK) == 0, PYTHON " is needed (tools/deps.sh installs it)");
}

static void
teardown(void)
{
	t_rmrf(dir);
	free(dir);
	dir = NULL;
}

static const char *
p(const char *name)
{
	return t_path(dir, name);
}

/* On failure, dir/stderr tells why; expected failures are quiet. */
static int
run(const char *const argv[], const char *in, const char *out)
{
	return t_run(argv, NULL, in, out, p("stderr")) == 0 ? 0 : -1;
}

static const char secret_json[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"namespace\":\"app\"},"
	"\"type\":\"Opaque\",\"data\":{\"bin\":\"AP8Q/w==\",\"empty\":\"\"},"
	"\"stringData\":{\"password\":\"p@ss w0rd ✓\"}}";

static void
check_secret(const char *path)
{
	char *text = t_read_file(path);
	struct lk_error err;
	json_t *root = NULL, *data;

	ck_assert_ptr_nonnull(text);
	ck_assert_msg(lk_manifest_parse(text, strlen(text), path, &root, NULL, &err) == 0, "%s", err.msg);
	data = json_object_get(root, "data");
	ck_assert_str_eq(json_string_value(json_object_get(data, "bin")), "AP8Q/w==");
	ck_assert_str_eq(json_string_value(json_object_get(data, "empty")), "");
	ck_assert_str_eq(json_string_value(json_object_get(data, "password")), "cEBzcyB3MHJkIOKckw==");
	json_decref(root);
	free(text);
}

static const char *scopes[] = { "strict", "namespace-wide", "cluster-wide" };

START_TEST(latchkey_seals_python_opens)
{
	const char *keygen[] = { t_latchkey_bin(), "keygen", "--out-dir", p("keys"), "--key-size", "2048", NULL };

	t_write_file(p("secret.json"), secret_json, 0600);
	ck_assert_int_eq(run(keygen, NULL, NULL), 0);
	for (size_t i = 0; i < 3; i++) {
		const char *seal[] = { t_latchkey_bin(), "seal", "-f", p("secret.json"), "--cert",
				       p("keys/0001.crt"), "--compat", "sealed-secrets", "--format", "json",
				       "--scope", scopes[i], NULL };
		const char *open[] = { PYTHON, script, "unseal", "--key", p("keys/0001.key"), NULL };
		const char *wrong[] = { PYTHON, script, "unseal", "--key", p("keys/0001.key"), NULL };

		ck_assert_int_eq(run(seal, NULL, p("sealed.json")), 0);
		ck_assert_msg(run(open, p("sealed.json"), p("plain.json")) == 0, "scope %s: %s", scopes[i],
			      t_read_file(p("stderr")));
		check_secret(p("plain.json"));
		/* and the label matters to the other side too: a renamed copy does not open */
		if (i < 2) {
			char *text = t_read_file(p("sealed.json")), *hit = strstr(text, "\"namespace\": \"app\"");

			ck_assert_ptr_nonnull(hit);
			memcpy(hit + strlen("\"namespace\": \""), "apq", 3);
			t_write_file(p("moved.json"), text, 0600);
			free(text);
			ck_assert_int_ne(run(wrong, p("moved.json"), p("plain.json")), 0);
		}
	}
}
END_TEST

START_TEST(python_seals_latchkey_opens)
{
	const char *keygen[] = { PYTHON, script, "keygen", p("py.key"), p("py.crt"), NULL };

	t_write_file(p("secret.json"), secret_json, 0600);
	ck_assert_int_eq(run(keygen, NULL, NULL), 0);
	for (size_t i = 0; i < 3; i++) {
		const char *seal[] = { PYTHON, script, "seal", "--cert", p("py.crt"), "--scope", scopes[i], NULL };
		const char *open[] = { t_latchkey_bin(), "unseal", "--key", p("py.key"), "-f", p("sealed.json"),
				       "--format", "json", NULL };
		/* latchkey also seals to the certificate Python made */
		const char *seal2[] = { t_latchkey_bin(), "seal", "-f", p("secret.json"), "--cert", p("py.crt"),
					"--format", "json", "--scope", scopes[i], NULL };
		const char *open2[] = { PYTHON, script, "unseal", "--key", p("py.key"), NULL };

		ck_assert_int_eq(run(seal, p("secret.json"), p("sealed.json")), 0);
		ck_assert_msg(run(open, NULL, p("plain.json")) == 0, "scope %s: %s", scopes[i],
			      t_read_file(p("stderr")));
		check_secret(p("plain.json"));
		ck_assert_int_eq(run(seal2, NULL, p("sealed2.json")), 0);
		ck_assert_int_eq(run(open2, p("sealed2.json"), p("plain2.json")), 0);
		check_secret(p("plain2.json"));
	}
}
END_TEST

static Suite *
interop_suite(void)
{
	Suite *s = suite_create("interop");
	TCase *tc = tcase_create("bitnami");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, latchkey_seals_python_opens);
	tcase_add_test(tc, python_seals_latchkey_opens);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(interop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
