/* check_docs.c — the examples in docs/ run, so that the guides and the code cannot drift.
 *
 * A fenced block right below a line `<!-- test: KIND -->` is an example the suite runs,
 * taken from the Markdown at run time:
 *   seed           sh, against latchkey dev (VAULT_ADDR, VAULT_TOKEN), before the broker
 *   broker-config  the broker's JSON configuration for the `app` examples; the test points
 *                  vault.address, vault.auth.token_file and listen.socket at its own
 *   app            sh or python, run against that broker (LATCHKEY_SOCKET) and latchkey dev
 *   go             compiled with `go vet` when Go is installed (SKIP otherwise)
 *   node           run with node against the broker when Node.js is installed (SKIP otherwise)
 *   developer      sh, the blocks of one page in order in one shell, in an empty directory,
 *                  with latchkey dev and git (the sealing, push, scan and hook guide)
 *   cluster        sh, the blocks of one page in order in one shell, from the source tree,
 *                  with KUBECONFIG at the test API server and latchkey dev for Vault
 * tests/deploy/check_docs.py then checks what needs no process: links and anchors, the
 * config reference against the keys and flags the code knows, the troubleshooting page's
 * messages against the sources, the README's documentation list, and that the kinds above
 * each still have examples. */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakekube.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
/* The most example blocks read from docs/. */
#define MAX_BLOCKS 64
/* The dev-only value the app guide seeds; no example may print it. */
#define SEEDED_PASSWORD "dev-only-password"

struct block {
	char kind[32];
	char lang[16];
	char file[256];
	int line;
	char *text;
};

static char *dir;
static char src[1024];
static char srcabs[PATH_MAX];
static char pathenv[PATH_MAX + 8192];
static struct block blocks[MAX_BLOCKS];
static size_t nblocks;

/* Reads every marked block of the pages in docs/ into blocks[]. Lines are split by hand: blank
 * lines inside a block are part of it. */
static void
read_blocks(void)
{
	char pattern[1100];
	glob_t g;

	nblocks = 0;
	snprintf(pattern, sizeof(pattern), "%s/docs/*.md", src);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *text = t_read_file(g.gl_pathv[i]), *line, *next, kind[32] = "";
		int n = 0, kind_line = -1;
		char *body = NULL;
		size_t blen = 0;
		bool in = false;

		ck_assert_ptr_nonnull(text);
		for (line = text; line != NULL && *line != '\0'; line = next) {
			size_t len;

			next = strchr(line, '\n');
			len = next != NULL ? (size_t)(next - line) : strlen(line);
			if (next != NULL)
				*next++ = '\0';
			n++;
			if (in) {
				if (strncmp(line, "```", 3) == 0) {
					blocks[nblocks++].text = body;
					body = NULL;
					in = false;
					continue;
				}
				body = realloc(body, blen + len + 2);
				memcpy(body + blen, line, len);
				blen += len;
				body[blen++] = '\n';
				body[blen] = '\0';
				continue;
			}
			if (strncmp(line, "<!-- test: ", 11) == 0) {
				snprintf(kind, sizeof(kind), "%.*s", (int)strcspn(line + 11, " "), line + 11);
				kind_line = n;
				continue;
			}
			if (kind_line == n - 1 && strncmp(line, "```", 3) == 0) {
				struct block *b = &blocks[nblocks];

				ck_assert_msg(nblocks < MAX_BLOCKS, "more than %d examples", MAX_BLOCKS);
				snprintf(b->kind, sizeof(b->kind), "%s", kind);
				snprintf(b->lang, sizeof(b->lang), "%s", line + 3);
				snprintf(b->file, sizeof(b->file), "docs/%s", strrchr(g.gl_pathv[i], '/') + 1);
				b->line = n + 1;
				body = strdup("");
				blen = 0;
				in = true;
			}
		}
		ck_assert_msg(!in, "%s: an example block is not closed", g.gl_pathv[i]);
		free(text);
	}
	globfree(&g);
}

static void
setup(void)
{
	const char *s = getenv("LATCHKEY_SRCDIR");
	char bin[PATH_MAX], *slash;

	dir = t_tmpdir();
	snprintf(src, sizeof(src), "%s", s ? s : ".");
	ck_assert_ptr_nonnull(realpath(src, srcabs));
	/* latchkey first on PATH, as the guides call it. */
	ck_assert_ptr_nonnull(realpath(t_latchkey_bin(), bin));
	slash = strrchr(bin, '/');
	*slash = '\0';
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	read_blocks();
}

static void
teardown(void)
{
	for (size_t i = 0; i < nblocks; i++)
		free(blocks[i].text);
	nblocks = 0;
	t_rmrf(dir);
	free(dir);
	dir = NULL;
}

static const char *
p(const char *name)
{
	return t_path(dir, name);
}

static char *
slurp(const char *path)
{
	char *text = t_read_file(path);

	return text ? text : strdup("");
}

static size_t
count(const char *kind, const char *lang)
{
	size_t n = 0;

	for (size_t i = 0; i < nblocks; i++)
		n += strcmp(blocks[i].kind, kind) == 0 && (lang == NULL || strcmp(blocks[i].lang, lang) == 0);
	return n;
}

/* Runs one example with argv[0] the interpreter and the block's text as a file, in cwd, with
 * env; fails naming the page and line. The output is returned (owned). */
static char *
run_block(const struct block *b, const char *const interp[], const char *cwd, const char *const env[],
	  const char *ext)
{
	char file[700], wrap[2048];
	const char *argv[12];
	size_t n = 0;
	char *out;
	int rc;

	snprintf(file, sizeof(file), "%s/example-%d%s", dir, b->line, ext);
	ck_assert_int_eq(t_write_file(file, b->text, 0600), 0);
	/* cd into cwd first: t_run keeps the test's directory. */
	snprintf(wrap, sizeof(wrap), "cd \"$1\" && shift && exec \"$@\"");
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = wrap;
	argv[n++] = "sh";
	argv[n++] = cwd;
	for (size_t i = 0; interp[i] != NULL && n < 10; i++)
		argv[n++] = interp[i];
	argv[n++] = file;
	argv[n] = NULL;
	rc = t_run(argv, env, NULL, p("example.out"), p("example.out"));
	out = slurp(p("example.out"));
	ck_assert_msg(rc == 0, "%s:%d (%s %s example) exit %d:\n%s", b->file, b->line, b->kind, b->lang,
		      rc, out);
	return out;
}

/* ---- the application guide against a broker ----------------------------------------- */

struct broker_fx {
	struct t_dev dev;
	struct t_proc broker;
	char sock[600];
	char env_addr[200], env_token[200], env_socket[700];
};

static bool
ready(void *arg)
{
	struct broker_fx *f = arg;
	char *body = NULL;
	bool ok = t_http("GET", "http://latchkey/v1/ready", f->sock, NULL, NULL, &body) == 200;

	free(body);
	return ok;
}

START_TEST(app_examples)
{
	struct broker_fx f;
	const struct block *cfg = NULL;
	json_t *j, *vault, *listen;
	json_error_t jerr;
	char run_dir[560], token_file[600];
	const char *env[6];
	char *text, *out;
	size_t ran = 0;

	memset(&f, 0, sizeof(f));
	ck_assert_msg(count("app", "sh") > 0 && count("app", "python") > 0 && count("go", NULL) > 0 &&
		      count("node", NULL) > 0 && count("broker-config", NULL) == 1 && count("seed", NULL) > 0,
		      "the app guide's examples are missing (shell, Python, Go, Node, its config and seed)");
	ck_assert_int_eq(t_dev_start(&f.dev, NULL), 0);
	snprintf(f.env_addr, sizeof(f.env_addr), "VAULT_ADDR=%s", f.dev.addr);
	snprintf(f.env_token, sizeof(f.env_token), "VAULT_TOKEN=%s", f.dev.token);
	env[0] = pathenv;
	env[1] = f.env_addr;
	env[2] = f.env_token;
	env[3] = NULL;
	for (size_t i = 0; i < nblocks; i++) {
		if (strcmp(blocks[i].kind, "seed") == 0) {
			free(run_block(&blocks[i], (const char *const[]){ "/bin/sh", "-eu", NULL }, dir, env, ".sh"));
			ran++;
		} else if (strcmp(blocks[i].kind, "broker-config") == 0) {
			cfg = &blocks[i];
		}
	}

	/* The guide's configuration, pointed at this test's backend, token and socket. */
	j = json_loads(cfg->text, 0, &jerr);
	ck_assert_msg(j != NULL, "%s:%d: the broker configuration is not JSON: %s", cfg->file, cfg->line, jerr.text);
	snprintf(run_dir, sizeof(run_dir), "%s", p("run"));
	ck_assert_int_eq(mkdir(run_dir, 0750), 0);
	snprintf(f.sock, sizeof(f.sock), "%s/broker.sock", run_dir);
	snprintf(token_file, sizeof(token_file), "%s", p("token"));
	ck_assert_int_eq(t_write_file(token_file, f.dev.token, 0600), 0);
	vault = json_object_get(j, "vault");
	listen = json_object_get(j, "listen");
	ck_assert_ptr_nonnull(vault);
	ck_assert_ptr_nonnull(listen);
	json_object_set_new(vault, "address", json_string(f.dev.addr));
	json_object_set_new(json_object_get(vault, "auth"), "token_file", json_string(token_file));
	json_object_set_new(listen, "socket", json_string(f.sock));
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	ck_assert_int_eq(t_write_file(p("broker.json"), text, 0600), 0);
	free(text);
	{
		const char *argv[] = { t_latchkey_bin(), "broker", "--config", p("broker.json"), NULL };

		ck_assert_int_eq(t_spawn(&f.broker, argv, NULL, p("broker.log")), 0);
	}
	ck_assert_msg(t_wait_until(ready, &f, T_DEADLINE_MS), "the guide's broker never became ready:\n%s",
		      slurp(p("broker.log")));

	snprintf(f.env_socket, sizeof(f.env_socket), "LATCHKEY_SOCKET=%s", f.sock);
	env[3] = f.env_socket;
	env[4] = NULL;
	for (size_t i = 0; i < nblocks; i++) {
		const struct block *b = &blocks[i];

		out = NULL;
		if (strcmp(b->kind, "app") == 0 && strcmp(b->lang, "sh") == 0)
			out = run_block(b, (const char *const[]){ "/bin/sh", "-eu", NULL }, dir, env, ".sh");
		else if (strcmp(b->kind, "app") == 0 && strcmp(b->lang, "python") == 0)
			out = run_block(b, (const char *const[]){ access(PYTHON, X_OK) == 0 ? PYTHON : "/usr/bin/env",
								 access(PYTHON, X_OK) == 0 ? NULL : "python3", NULL },
					dir, env, ".py");
		else if (strcmp(b->kind, "node") == 0 && t_have_program("node"))
			out = run_block(b, (const char *const[]){ "/usr/bin/env", "node", NULL }, dir, env, ".js");
		else if (strcmp(b->kind, "node") == 0)
			t_skip("%s:%d: Node.js not installed: the example was not run", b->file, b->line);
		else if (strcmp(b->kind, "app") == 0)
			ck_abort_msg("%s:%d: app examples are sh or python, not %s", b->file, b->line, b->lang);
		if (out != NULL) {
			ck_assert_msg(strstr(out, SEEDED_PASSWORD) == NULL, "%s:%d prints a secret value:\n%s",
				      b->file, b->line, out);
			ran++;
			free(out);
		}
	}
	ck_assert_uint_gt(ran, 2);
	{
		int st = t_stop(&f.broker, SIGTERM, T_DEADLINE_MS);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the broker did not exit cleanly");
	}
	t_dev_stop(&f.dev);
}
END_TEST

/* Go is not in Debian's build dependencies here: the example is vetted when Go is there. */
START_TEST(go_examples)
{
	char gopath[700], gocache[700], home[700];
	const char *env[4];

	if (!t_have_program("go")) {
		t_skip("go_examples: Go is not installed: the Go examples were not compiled");
		return;
	}
	snprintf(gopath, sizeof(gopath), "GOPATH=%s", p("gopath"));
	snprintf(gocache, sizeof(gocache), "GOCACHE=%s", p("gocache"));
	snprintf(home, sizeof(home), "HOME=%s", dir);
	env[0] = gopath;
	env[1] = gocache;
	env[2] = home;
	env[3] = NULL;
	for (size_t i = 0; i < nblocks; i++) {
		if (strcmp(blocks[i].kind, "go") != 0)
			continue;
		free(run_block(&blocks[i], (const char *const[]){ "/usr/bin/env", "go", "vet", NULL }, dir, env, ".go"));
	}
}
END_TEST

/* All the blocks of KIND on one page, in order, as one shell script; the script echoes
 * which block it is in, so that a failure names it. */
static void
run_pages(const char *kind, const char *cwd, const char *const env[])
{
	char pages[MAX_BLOCKS][256];
	size_t npages = 0;

	for (size_t i = 0; i < nblocks; i++) {
		bool seen = false;

		if (strcmp(blocks[i].kind, kind) != 0)
			continue;
		ck_assert_msg(strcmp(blocks[i].lang, "sh") == 0, "%s:%d: %s examples are sh", blocks[i].file,
			      blocks[i].line, kind);
		for (size_t k = 0; k < npages; k++)
			seen = seen || strcmp(pages[k], blocks[i].file) == 0;
		if (!seen)
			snprintf(pages[npages++], sizeof(pages[0]), "%s", blocks[i].file);
	}
	ck_assert_msg(npages > 0, "no %s examples in docs/", kind);
	for (size_t k = 0; k < npages; k++) {
		struct block all = { .line = 0 };
		size_t len = 0;
		char *script = strdup(""), *out;

		for (size_t i = 0; i < nblocks; i++) {
			char head[400];

			if (strcmp(blocks[i].kind, kind) != 0 || strcmp(blocks[i].file, pages[k]) != 0)
				continue;
			snprintf(head, sizeof(head), "echo '== %s:%d' >&2\n", blocks[i].file, blocks[i].line);
			script = realloc(script, len + strlen(head) + strlen(blocks[i].text) + 1);
			memcpy(script + len, head, strlen(head));
			len += strlen(head);
			memcpy(script + len, blocks[i].text, strlen(blocks[i].text));
			len += strlen(blocks[i].text);
			script[len] = '\0';
			if (all.line == 0)
				all.line = blocks[i].line;
		}
		snprintf(all.kind, sizeof(all.kind), "%s", kind);
		snprintf(all.lang, sizeof(all.lang), "sh");
		snprintf(all.file, sizeof(all.file), "%.*s", (int)sizeof(all.file) - 1, pages[k]);
		all.text = script;
		out = run_block(&all, (const char *const[]){ "/bin/sh", "-eu", NULL }, cwd, env, ".sh");
		free(out);
		free(script);
	}
}

START_TEST(developer_examples)
{
	struct t_dev d;
	char addr[200], token[200], home[700], srcenv[PATH_MAX + 16], work[700], tmpenv[700];
	const char *env[12];

	if (!t_have_program("git")) {
		t_skip("developer_examples: git not found: the guide's hook and commit examples need it");
		return;
	}
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
	snprintf(addr, sizeof(addr), "VAULT_ADDR=%s", d.addr);
	snprintf(token, sizeof(token), "VAULT_TOKEN=%s", d.token);
	snprintf(home, sizeof(home), "HOME=%s", p("home"));
	snprintf(srcenv, sizeof(srcenv), "LATCHKEY_SRC=%s", srcabs);
	snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", dir);
	ck_assert_int_eq(mkdir(p("home"), 0700), 0);
	snprintf(work, sizeof(work), "%s", p("work"));
	ck_assert_int_eq(mkdir(work, 0700), 0);
	env[0] = pathenv;
	env[1] = addr;
	env[2] = token;
	env[3] = home;
	env[4] = srcenv;
	env[5] = tmpenv;
	env[6] = "GIT_AUTHOR_NAME=latchkey docs";
	env[7] = "GIT_AUTHOR_EMAIL=docs@example.com";
	env[8] = "GIT_COMMITTER_NAME=latchkey docs";
	env[9] = "GIT_COMMITTER_EMAIL=docs@example.com";
	env[10] = "GIT_CONFIG_NOSYSTEM=1";
	env[11] = NULL;
	run_pages("developer", work, env);
	t_dev_stop(&d);
}
END_TEST

START_TEST(cluster_examples)
{
	struct t_kube k;
	struct t_dev d;
	char addr[200], token[200], kube[700], tmpenv[700], home[700];
	const char *env[8];

	if (!t_have_program("kubectl") || !t_have_program("curl")) {
		t_skip("cluster_examples: kubectl or curl not found");
		return;
	}
	ck_assert_msg(t_kube_start(&k, NULL) == 0, "the test API server did not start");
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
	snprintf(addr, sizeof(addr), "VAULT_ADDR=%s", d.addr);
	snprintf(token, sizeof(token), "VAULT_TOKEN=%s", d.token);
	snprintf(kube, sizeof(kube), "KUBECONFIG=%s", k.kubeconfig);
	snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", dir);
	snprintf(home, sizeof(home), "HOME=%s", dir);
	env[0] = pathenv;
	env[1] = addr;
	env[2] = token;
	env[3] = kube;
	env[4] = tmpenv;
	env[5] = home;
	env[6] = NULL;
	run_pages("cluster", srcabs, env);
	t_dev_stop(&d);
	ck_assert_int_eq(t_kube_stop(&k), 0);
}
END_TEST

START_TEST(static_checks)
{
	char script[1100], *out;
	int rc;

	if (access(PYTHON, X_OK) != 0) {
		t_skip("static_checks: " PYTHON " not found");
		return;
	}
	snprintf(script, sizeof(script), "%s/tests/deploy/check_docs.py", src);
	rc = t_run((const char *const[]){ PYTHON, script, src, NULL }, NULL, NULL, p("docs.out"), p("docs.out"));
	out = slurp(p("docs.out"));
	ck_assert_msg(rc == 0 && strstr(out, "ok: ") != NULL, "check_docs.py exit %d:\n%s", rc, out);
	free(out);
}
END_TEST

static Suite *
docs_suite(void)
{
	Suite *s = suite_create("docs");
	TCase *tc = tcase_create("docs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, static_checks);
	tcase_add_test(tc, app_examples);
	tcase_add_test(tc, go_examples);
	tcase_add_test(tc, developer_examples);
	tcase_add_test(tc, cluster_examples);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(docs_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
