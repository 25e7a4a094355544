/* check_hvac.c — hvac, the Python Vault client (Debian python3-hvac), judges `latchkey dev`:
 * tests/interop/hvac_dev.py drives one part of the API per section against a fresh dev
 * server, and this suite runs one test per section, so a failure names the part and shows
 * what hvac saw. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* The Debian interpreter, which sees python3-hvac (the first python3 on PATH may not). */
#define PYTHON "/usr/bin/python3"

static char script[1024];

/* Whether hvac can run here; the reason when it cannot. A missing script is no reason
 * to skip: the tree is broken, and the test fails. */
static const char *
hvac_missing(void)
{
	const char *probe[] = { PYTHON, "-c", "from hvac import Client; import requests, cryptography", NULL };
	const char *src = getenv("LATCHKEY_SRCDIR");

	snprintf(script, sizeof(script), "%s/tests/interop/hvac_dev.py", src != NULL ? src : ".");
	ck_assert_msg(access(script, R_OK) == 0,
	    "%s not found (run from the source tree or set LATCHKEY_SRCDIR)", script);
	if (access(PYTHON, X_OK) != 0)
		return PYTHON " not found (tools/deps.sh installs python3)";
	if (t_run(probe, NULL, NULL, NULL, NULL) != 0)
		return "python3-hvac is not installed (tools/deps.sh installs it)";
	return NULL;
}

/* Runs one section of the script against a fresh `latchkey dev`. */
static void
run_section(const char *section)
{
	const char *why = hvac_missing();
	struct t_dev d;
	char addr_env[128], token_env[200], out[600], err[600], *text, *log;
	int rc;

	if (why != NULL) {
		t_skip("hvac %s: %s", section, why);
		return;
	}
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
	snprintf(addr_env, sizeof(addr_env), "VAULT_ADDR=%s", d.addr);
	snprintf(token_env, sizeof(token_env), "VAULT_TOKEN=%s", d.token);
	snprintf(out, sizeof(out), "%s/hvac.out", d.dir);
	snprintf(err, sizeof(err), "%s/hvac.err", d.dir);
	rc = t_run((const char *[]){ PYTHON, script, section, NULL },
	    (const char *[]){ addr_env, token_env, "PYTHONDONTWRITEBYTECODE=1", NULL },
	    NULL, out, err);
	text = t_read_file(err);
	log = rc != 0 ? t_read_file(d.proc.log_path) : NULL;
	ck_assert_msg(rc == 0, "hvac section %s failed (exit %d):\n%s\nlatchkey dev log:\n%s", section,
	    rc, text != NULL ? text : "", log != NULL ? log : "");
	free(text);
	free(log);
	text = t_read_file(out);
	ck_assert_msg(text != NULL && strncmp(text, "ok ", 3) == 0, "hvac section %s printed: %s",
	    section, text != NULL ? text : "(nothing)");
	free(text);
	/* The server survived what hvac sent and stops cleanly. */
	rc = t_stop(&d.proc, SIGTERM, 10000);
	ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "latchkey dev exited with %d", rc);
	t_dev_stop(&d);
}

START_TEST(hvac_sys) { run_section("sys"); } END_TEST
START_TEST(hvac_policies) { run_section("policies"); } END_TEST
START_TEST(hvac_token) { run_section("token"); } END_TEST
START_TEST(hvac_kv2) { run_section("kv2"); } END_TEST
START_TEST(hvac_kv1) { run_section("kv1"); } END_TEST
START_TEST(hvac_approle) { run_section("approle"); } END_TEST
START_TEST(hvac_kubernetes) { run_section("kubernetes"); } END_TEST
START_TEST(hvac_database) { run_section("database"); } END_TEST
START_TEST(hvac_leases) { run_section("leases"); } END_TEST
START_TEST(hvac_list) { run_section("list"); } END_TEST

static Suite *
hvac_suite(void)
{
	Suite *s = suite_create("hvac");
	TCase *tc = tcase_create("hvac");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, hvac_sys);
	tcase_add_test(tc, hvac_policies);
	tcase_add_test(tc, hvac_token);
	tcase_add_test(tc, hvac_kv2);
	tcase_add_test(tc, hvac_kv1);
	tcase_add_test(tc, hvac_approle);
	tcase_add_test(tc, hvac_kubernetes);
	tcase_add_test(tc, hvac_database);
	tcase_add_test(tc, hvac_leases);
	tcase_add_test(tc, hvac_list);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hvac_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
