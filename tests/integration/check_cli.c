/* check_cli.c — the `latchkey` command itself: help, version, unknown subcommands and flags,
 * and that the shipped example configuration validates. */
#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *const subcommands[] = {
	"broker", "sync", "get", "status", "seal", "unseal", "reseal", "keygen", "push", "scan", "dev", NULL,
};

static char *dir;

static void
setup(void)
{
	dir = t_tmpdir();
	ck_assert_ptr_nonnull(dir);
}

static void
teardown(void)
{
	t_rmrf(dir);
	free(dir);
}

/* Runs latchkey with up to three arguments; returns the exit status, output in *ret_out
 * and *ret_err (malloc'd). */
static int
lk(const char *a1, const char *a2, const char *a3, char **ret_out, char **ret_err)
{
	const char *argv[] = { t_latchkey_bin(), a1, a2, a3, NULL };
	char out[600], err[600];
	int status;

	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	status = t_run(argv, NULL, NULL, out, err);
	*ret_out = t_read_file(out);
	*ret_err = t_read_file(err);
	ck_assert_ptr_nonnull(*ret_out);
	ck_assert_ptr_nonnull(*ret_err);
	return status;
}

START_TEST(test_help_lists_every_subcommand)
{
	char *out, *err;

	ck_assert_int_eq(lk("help", NULL, NULL, &out, &err), 0);
	for (size_t i = 0; subcommands[i] != NULL; i++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "\n  %s ", subcommands[i]);
		ck_assert_msg(strstr(out, needle) != NULL, "help does not list %s", subcommands[i]);
	}
	free(out);
	free(err);
	ck_assert_int_eq(lk("version", NULL, NULL, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "latchkey "));
	free(out);
	free(err);
	/* No subcommand: usage on stderr, exit 2. */
	ck_assert_int_eq(lk(NULL, NULL, NULL, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "usage: latchkey"));
	free(out);
	free(err);
}
END_TEST

START_TEST(test_unknown_subcommand)
{
	char *out, *err;

	ck_assert_int_eq(lk("sael", NULL, NULL, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "unknown subcommand 'sael'"));
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
}
END_TEST

/* Every subcommand answers --help with exit 0 and an unknown flag with exit 2 and a message. */
START_TEST(test_subcommand_help_and_unknown_flag)
{
	const char *cmd = subcommands[_i];
	char *out, *err;

	ck_assert_msg(lk(cmd, "--help", NULL, &out, &err) == 0, "%s --help: %s", cmd, err);
	ck_assert_msg(strstr(out, "usage") != NULL || strstr(out, "Usage") != NULL,
		      "%s --help prints no usage", cmd);
	free(out);
	free(err);
	ck_assert_msg(lk(cmd, "--no-such-flag", NULL, &out, &err) == 2, "%s --no-such-flag", cmd);
	ck_assert_msg(err[0] != '\0', "%s: an unknown flag must say why", cmd);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_shipped_broker_config_validates)
{
	const char *src = getenv("LATCHKEY_SRC");
	char path[600], *out, *err;

	snprintf(path, sizeof(path), "%s/deploy/broker/broker.json", src != NULL ? src : ".");
	ck_assert_msg(lk("broker", "--check-config", path, &out, &err) == 0, "%s: %s", path, err);
	free(out);
	free(err);
}
END_TEST

/* The project keeps no plaintext secret in its own sources: its fixtures carry the
 * `latchkey-scan: allow` marker where they must look like one. */
/* The files of the tree: what Git tracks when it is a checkout (files a local run left
 * behind are not the project's), else everything at the top but build output. */
static size_t
source_paths(const char *src, char **paths, size_t max)
{
	char cmd[700], line[1024];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "git -C '%s' ls-files 2>/dev/null", src);
	if ((f = popen(cmd, "r")) != NULL) {
		while (n < max && fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] != '\0' && asprintf(&paths[n], "%s/%s", src, line) >= 0)
				n++;
		}
		if (pclose(f) == 0 && n > 0)
			return n;
		while (n > 0)
			free(paths[--n]);
	}
	{
		char pattern[600];
		glob_t g;

		snprintf(pattern, sizeof(pattern), "%s/*", src);
		if (glob(pattern, 0, NULL, &g) != 0)
			return 0;
		for (size_t i = 0; i < g.gl_pathc && n < max; i++) {
			const char *base = strrchr(g.gl_pathv[i], '/') + 1;

			if (strncmp(base, "build", 5) != 0)
				paths[n++] = strdup(g.gl_pathv[i]);
		}
		globfree(&g);
	}
	return n;
}

/* The most files scanned. */
#define SOURCES_MAX 4096

START_TEST(test_sources_scan_clean)
{
	const char *src = getenv("LATCHKEY_SRC");
	static char *paths[SOURCES_MAX];
	static const char *argv[SOURCES_MAX + 3];
	char out[600], err[600];
	size_t n = 0, np;

	/* Every file, so that a module or a folder added later is scanned without anyone
	 * remembering to list it. */
	np = source_paths(src != NULL ? src : ".", paths, SOURCES_MAX);
	argv[n++] = t_latchkey_bin();
	argv[n++] = "scan";
	for (size_t i = 0; i < np; i++)
		argv[n++] = paths[i];
	argv[n] = NULL;
	/* The module folders are among them. */
	ck_assert_uint_gt(np, 100);
	snprintf(out, sizeof(out), "%s/scan.out", dir);
	snprintf(err, sizeof(err), "%s/scan.err", dir);
	if (t_run(argv, NULL, NULL, out, err) != 0) {
		char *text = t_read_file(out), *etext = t_read_file(err);
		ck_abort_msg("latchkey scan found something in the sources:\n%s%s", text ? text : "",
			     etext ? etext : "");
	}
	for (size_t i = 0; i < np; i++)
		free(paths[i]);
}
END_TEST

/* A running subcommand (here `latchkey dev`) has core dumps off: it holds secrets. */
START_TEST(test_no_core_dumps)
{
	struct t_dev dev;
	char path[64], *limits, *line;

	ck_assert_int_eq(t_dev_start(&dev, NULL), 0);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)dev.proc.pid);
	limits = t_read_file(path);
	t_dev_stop(&dev);
	ck_assert_ptr_nonnull(limits);
	line = strstr(limits, "Max core file size");
	ck_assert_ptr_nonnull(line);
	{
		char soft[32], hard[32];
		/* Both limits: a soft 0 alone is many shells' default and proves nothing. */
		ck_assert_int_eq(sscanf(line, "Max core file size %31s %31s", soft, hard), 2);
		ck_assert_msg(strcmp(soft, "0") == 0 && strcmp(hard, "0") == 0,
			      "core dumps are on: soft %s, hard %s", soft, hard);
	}
	free(limits);
}
END_TEST

static Suite *
cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");
	size_t n = 0;

	while (subcommands[n] != NULL)
		n++;
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_help_lists_every_subcommand);
	tcase_add_test(tc, test_unknown_subcommand);
	tcase_add_loop_test(tc, test_subcommand_help_and_unknown_flag, 0, (int)n);
	tcase_add_test(tc, test_shipped_broker_config_validates);
	tcase_add_test(tc, test_no_core_dumps);
	tcase_add_test(tc, test_sources_scan_clean);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
