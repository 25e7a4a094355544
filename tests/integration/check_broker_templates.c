/* check_broker_templates.c — templates of templates[] on a real broker against `latchkey
 * dev`: a template that reads two secrets renders; a new KV version of either renders it
 * again; a change that leaves the rendered bytes as they were does not rewrite the file; a
 * missing key keeps the old file and is reported (log and /v1/ready) with the template's
 * origin, line and key, never a value; a template naming a secret that is not configured
 * is refused at load with its file and line; a NUL byte in a file-source value fails only
 * the template that writes it raw. Values are compared, never printed. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brokerutil.h"

#define CFG_HOST "db-7f3a.internal"
#define CFG_PORT "port-58c1e"

/* The template file: the two forms of access, and the key that goes missing on line 4. */
static const char template_text[] =
	"# rendered by latchkey\n"
	"user={{ with secret \"api\" }}{{ .Data.user }}{{ end }}\n"
	"pass={{ .api.password | json }}\n"
	"url=postgres://{{ .api.user | url }}@{{ .cfg.host }}:{{ .cfg.port }}\n";

struct file_wait {
	const char *path;
	const char *want;           /* the whole content */
};

static bool
file_is(void *arg)
{
	struct file_wait *w = arg;
	char *t = t_read_file(w->path);
	bool ok = t != NULL && strcmp(t, w->want) == 0;

	free(t);
	return ok;
}

/* The rendered file for these values. */
static char *
expected(const char *user, const char *password, const char *host, const char *port)
{
	char *text;

	if (asprintf(&text, "# rendered by latchkey\nuser=%s\npass=\"%s\"\n"
		     "url=postgres://%s@%s:%s\n", user, password, user, host, port) < 0)
		exit(1);
	return text;
}

struct status_wait {
	struct bf *f;
	const char *state;
	char error[512];
	size_t index;               /* which file of /v1/ready, in configuration order */
};

/* File index of the admin's /v1/ready is in state (its error copied out). */
static bool
file_state_is(void *arg)
{
	struct status_wait *w = arg;
	char *body = NULL;
	json_t *j, *file;
	bool ok = false;

	if (bf_get(w->f, "/v1/ready", &body) == 0 || body == NULL) {
		free(body);
		return false;
	}
	j = json_loads(body, 0, NULL);
	free(body);
	file = json_array_get(json_object_get(j, "files"), w->index);
	if (file != NULL && json_is_string(json_object_get(file, "state")) &&
	    strcmp(json_string_value(json_object_get(file, "state")), w->state) == 0) {
		const char *e = json_string_value(json_object_get(file, "error"));

		snprintf(w->error, sizeof(w->error), "%s", e != NULL ? e : "");
		ok = true;
	}
	json_decref(j);
	return ok;
}

struct version_wait {
	struct bf *f;
	const char *name;
	long long version;
};

static bool
version_at_least(void *arg)
{
	struct version_wait *w = arg;
	char path[256], *body = NULL;
	json_t *j;
	bool ok;

	snprintf(path, sizeof(path), "/v1/secrets/%s", w->name);
	if (bf_get(w->f, path, &body) != 200 || body == NULL) {
		free(body);
		return false;
	}
	j = json_loads(body, JSON_ALLOW_NUL, NULL);
	/* The body holds values: wiped before it goes. */
	memset(body, 0, strlen(body));
	free(body);
	ok = json_integer_value(json_object_get(j, "version")) >= w->version;
	json_decref(j);
	return ok;
}

static int
kv_put(struct bf *f, const char *path, const char *data)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"data\":%s}", data);
	return bf_dev_call(f, "POST", path, body, NULL) == 200 ? 0 : -1;
}

START_TEST(test_two_secrets_render_rotate_and_fail)
{
	struct bf f;
	char tpl_path[700], out_path[700], secrets[2048], extra[2048], *want, *before, *log;
	struct file_wait fw;
	struct status_wait sw;
	struct stat st;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/cfg",
				"{\"host\":\"" CFG_HOST "\",\"port\":\"" CFG_PORT "\"}"), 0);
	snprintf(tpl_path, sizeof(tpl_path), "%s/app.tpl", f.dir);
	snprintf(out_path, sizeof(out_path), "%s/app.conf", f.dir);
	ck_assert_int_eq(t_write_file(tpl_path, template_text, 0644), 0);
	snprintf(secrets, sizeof(secrets),
		 "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"},"
		 "{\"name\": \"cfg\", \"path\": \"secret/data/app/cfg\", \"refresh\": \"1s\"}");
	snprintf(extra, sizeof(extra),
		 "\"templates\": [{\"template_file\": \"%s\", \"destination\": \"%s\","
		 " \"mode\": \"0640\"}]", tpl_path, out_path);
	bf_config(&f, secrets, extra);
	ck_assert(bf_start(&f));

	/* Both secrets in one file, with its mode. */
	want = expected("bf-user", "bf-password-4a1f0c", CFG_HOST, CFG_PORT);
	fw.path = out_path;
	fw.want = want;
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "the template was not rendered");
	free(want);
	ck_assert_int_eq(stat(out_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	sw.f = &f;
	sw.state = "written";
	sw.index = 0;
	ck_assert(t_wait_until(file_state_is, &sw, T_DEADLINE_MS));

	/* A new version of one secret that leaves the rendered bytes alone: no write. It is
	 * waited for through the socket, and the scheduler renders before it reads again. */
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/cfg",
				"{\"host\":\"" CFG_HOST "\",\"port\":\"" CFG_PORT "\","
				"\"unused\":\"x\"}"), 0);
	{
		struct version_wait vw = { &f, "cfg", 2 };

		ck_assert(t_wait_until(version_at_least, &vw, T_DEADLINE_MS));
	}

	/* A rotation of the other renders the file again. */
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/api",
				"{\"user\":\"bf-user\",\"password\":\"bf-rotated-91c2\"}"), 0);
	want = expected("bf-user", "bf-rotated-91c2", CFG_HOST, CFG_PORT);
	fw.want = want;
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "not rendered after api changed");
	free(want);
	/* Written twice: at the first load and after the rotation, not for cfg's version 2
	 * (whose render, had it written, would have logged before the rotation's). */
	ck_assert(bf_wait_log_count(&f, "\"msg\":\"template rendered\"", 2));
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"template rendered\""), 2);

	/* And a new version of the first one too. */
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/cfg",
				"{\"host\":\"db-2.internal\",\"port\":\"" CFG_PORT "\"}"), 0);
	want = expected("bf-user", "bf-rotated-91c2", "db-2.internal", CFG_PORT);
	fw.want = want;
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "not rendered after cfg changed");
	free(want);

	/* A missing key: the old file stays, the error names origin:line and key. */
	before = t_read_file(out_path);
	ck_assert_ptr_nonnull(before);
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/cfg", "{\"port\":\"" CFG_PORT "\"}"), 0);
	sw.state = "failed";
	ck_assert(t_wait_until(file_state_is, &sw, T_DEADLINE_MS));
	{
		char want_error[800];

		snprintf(want_error, sizeof(want_error), "%s:4: secret \"cfg\" has no key \"host\"",
			 tpl_path);
		ck_assert_str_eq(sw.error, want_error);
	}
	fw.want = before;
	ck_assert(file_is(&fw));
	free(before);
	ck_assert(bf_wait_log_count(&f, "\"msg\":\"file render failed\"", 1));
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"file render failed\""), 1);
	ck_assert_int_eq(bf_log_count(&f, "app.tpl:4: secret \\\"cfg\\\" has no key \\\"host\\\""), 1);
	/* No value in the log. */
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "bf-password-4a1f0c") == NULL, "a value in the log");
	ck_assert_msg(strstr(log, "bf-rotated-91c2") == NULL, "a value in the log");
	ck_assert_msg(strstr(log, CFG_PORT) == NULL, "a value in the log");
	ck_assert_msg(strstr(log, "db-2.internal") == NULL, "a value in the log");
	free(log);

	/* The key back: rendered again, and the state says so. */
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/cfg",
				"{\"host\":\"" CFG_HOST "\",\"port\":\"" CFG_PORT "\"}"), 0);
	want = expected("bf-user", "bf-rotated-91c2", CFG_HOST, CFG_PORT);
	fw.want = want;
	ck_assert(t_wait_until(file_is, &fw, T_DEADLINE_MS));
	free(want);
	sw.state = "written";
	ck_assert(t_wait_until(file_state_is, &sw, T_DEADLINE_MS));
	bf_stop(&f);
}
END_TEST

/* A file-source secret with a NUL byte in one value (source_file accepts any bytes): a
 * template that reads only its other values renders; one that writes that value raw fails
 * with the template's line and the key, not a false "out of memory", and writes nothing;
 * one that escapes it renders it. */
START_TEST(test_nul_in_a_file_source)
{
	static const char blob[] = { 'a', '\0', 'b' };
	struct bf f;
	char dir[700], path[800], extra[4096], secrets[1024], out[3][700], *log;
	struct file_wait fw;
	struct status_wait sw;
	FILE *fp;

	bf_dev(&f, "1h", "2h");
	snprintf(dir, sizeof(dir), "%s/vol", f.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/name", dir);
	ck_assert_int_eq(t_write_file(path, "plain-4e2b", 0600), 0);
	snprintf(path, sizeof(path), "%s/blob", dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(blob, 1, sizeof(blob), fp), sizeof(blob));
	ck_assert_int_eq(fclose(fp), 0);
	for (int i = 0; i < 3; i++)
		snprintf(out[i], sizeof(out[i]), "%s/out%d.conf", f.dir, i);
	snprintf(secrets, sizeof(secrets), "{\"name\": \"m\", \"from_file\": \"%s\"}", dir);
	snprintf(extra, sizeof(extra),
		 "\"templates\": ["
		 "{\"template\": \"name={{ .m.name }}\\n\", \"destination\": \"%s\"},"
		 "{\"template\": \"x\\nblob={{ .m.blob }}\\n\", \"destination\": \"%s\"},"
		 "{\"template\": \"blob={{ .m.blob | json }}\\n\", \"destination\": \"%s\"}]",
		 out[0], out[1], out[2]);
	bf_config(&f, secrets, extra);
	ck_assert(bf_start(&f));

	fw.path = out[0];
	fw.want = "name=plain-4e2b\n";
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "the other values did not render");
	fw.path = out[2];
	fw.want = "blob=\"a\\u0000b\"\n";
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "the escaped value did not render");
	sw.f = &f;
	sw.state = "failed";
	sw.index = 1;
	ck_assert(t_wait_until(file_state_is, &sw, T_DEADLINE_MS));
	ck_assert_msg(strstr(sw.error, ":2: key \"blob\" of secret \"m\" holds a NUL byte") != NULL,
		      "%s", sw.error);
	ck_assert_ptr_null(strstr(sw.error, "out of memory"));
	ck_assert_int_eq(access(out[1], F_OK), -1);
	ck_assert(bf_wait_log_count(&f, "\"msg\":\"file render failed\"", 1));
	ck_assert_int_eq(bf_log_count(&f, "holds a NUL byte"), 1);
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "plain-4e2b") == NULL, "a value in the log");
	ck_assert_msg(strstr(log, "out of memory") == NULL, "a false error in the log");
	free(log);
	bf_stop(&f);
}
END_TEST

#define BNUL_LEFT "bnul-left-3d7a"
#define BNUL_RIGHT "bnul-right-91c4"
#define BNUL_CLEAN "clean-blob-0e5f"
#define BNUL_NAME "plain-77b1"

/* A KV value holding a NUL byte ("\u0000" in the backend's JSON, as Vault stores it) is
 * what a file source's can be: the new version is loaded and served byte for byte on the
 * socket; the file that would write it raw keeps the previous version's content and says
 * which line, key and secret, never the value; the escaping template, the other values
 * and the other secrets go on. */
START_TEST(test_nul_in_a_backend_value)
{
	static const char nul_value[] = BNUL_LEFT "\0" BNUL_RIGHT;
	struct bf f;
	char secrets[1024], extra[4096], out[3][700], got_path[700], *bytes, *body = NULL, *log;
	const char *get_argv[] = { t_latchkey_bin(), "get", "n/blob", "--socket", f.sock, NULL };
	struct file_wait fw;
	struct status_wait sw;
	struct version_wait vw;
	size_t len = 0;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/nul",
				"{\"blob\":\"" BNUL_CLEAN "\",\"name\":\"" BNUL_NAME "\"}"), 0);
	for (int i = 0; i < 3; i++)
		snprintf(out[i], sizeof(out[i]), "%s/out%d.conf", f.dir, i);
	snprintf(got_path, sizeof(got_path), "%s/get.out", f.dir);
	snprintf(secrets, sizeof(secrets),
		 "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"},"
		 "{\"name\": \"n\", \"path\": \"secret/data/app/nul\", \"refresh\": \"1s\"}");
	snprintf(extra, sizeof(extra),
		 "\"templates\": ["
		 "{\"template\": \"name={{ .n.name }}\\n\", \"destination\": \"%s\"},"
		 "{\"template\": \"x\\nblob={{ .n.blob }}\\n\", \"destination\": \"%s\"},"
		 "{\"template\": \"blob={{ .n.blob | json }}\\n\", \"destination\": \"%s\"}]",
		 out[0], out[1], out[2]);
	bf_config(&f, secrets, extra);
	ck_assert(bf_start(&f));
	fw.path = out[1];
	fw.want = "x\nblob=" BNUL_CLEAN "\n";
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "version 1 did not render");

	/* Version 2, written over HTTP with the NUL byte escaped as JSON has it. */
	ck_assert_int_eq(kv_put(&f, "/v1/secret/data/app/nul",
				"{\"blob\":\"" BNUL_LEFT "\\u0000" BNUL_RIGHT "\","
				"\"name\":\"" BNUL_NAME "\"}"), 0);
	vw.f = &f;
	vw.name = "n";
	vw.version = 2;
	ck_assert_msg(t_wait_until(version_at_least, &vw, T_DEADLINE_MS),
		      "the version with a NUL byte was not loaded");
	/* The socket serves it whole: `latchkey get` writes the bytes it was sent. */
	ck_assert_int_eq(t_run(get_argv, NULL, NULL, got_path, NULL), 0);
	bytes = t_read_bytes(got_path, &len);
	ck_assert_ptr_nonnull(bytes);
	ck_assert_uint_eq(len, sizeof(nul_value) - 1);
	ck_assert_msg(memcmp(bytes, nul_value, len) == 0, "the value was not served as stored");
	sodium_memzero(bytes, len);
	free(bytes);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/n", &body), 200);
	ck_assert_msg(strstr(body, "\"blob\":\"" BNUL_LEFT "\\u0000" BNUL_RIGHT "\"") != NULL,
		      "the JSON answer does not escape the NUL byte");
	free(body);
	body = NULL;

	/* The raw file keeps version 1, and its error names the line, the key, the secret. */
	sw.f = &f;
	sw.state = "failed";
	sw.index = 1;
	ck_assert(t_wait_until(file_state_is, &sw, T_DEADLINE_MS));
	ck_assert_msg(strstr(sw.error, ":2: key \"blob\" of secret \"n\" holds a NUL byte") != NULL,
		      "%s", sw.error);
	ck_assert(strstr(sw.error, BNUL_LEFT) == NULL && strstr(sw.error, BNUL_RIGHT) == NULL);
	ck_assert(file_is(&fw));
	/* The escaping template writes the new version; the other value and secret serve. */
	fw.path = out[2];
	fw.want = "blob=\"" BNUL_LEFT "\\u0000" BNUL_RIGHT "\"\n";
	ck_assert_msg(t_wait_until(file_is, &fw, T_DEADLINE_MS), "the escaped value did not render");
	fw.path = out[0];
	fw.want = "name=" BNUL_NAME "\n";
	ck_assert(file_is(&fw));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api", NULL), 200);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/n/name", NULL), 200);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"secret read failed\""), 0);
	ck_assert(bf_wait_log_count(&f, "holds a NUL byte", 1));
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, BNUL_LEFT) == NULL && strstr(log, BNUL_RIGHT) == NULL &&
		      strstr(log, BNUL_CLEAN) == NULL && strstr(log, BNUL_NAME) == NULL,
		      "a value in the log");
	free(log);
	bf_stop(&f);
}
END_TEST

/* A template that names a secret the configuration does not have is refused at load. */
START_TEST(test_unknown_secret_refused_at_load)
{
	struct bf f;
	char tpl_path[700], err_path[700], extra[2048], want[800], *err;
	const char *argv[5];
	int status;

	bf_dev(&f, "1h", "2h");
	snprintf(tpl_path, sizeof(tpl_path), "%s/bad.tpl", f.dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", f.dir);
	ck_assert_int_eq(t_write_file(tpl_path, "ok\n{{ .api.user }}\n{{ .nosuch.key }}\n", 0644),
			 0);
	snprintf(extra, sizeof(extra),
		 "\"templates\": [{\"template_file\": \"%s\", \"destination\": \"%s/out\"}]",
		 tpl_path, f.dir);
	bf_config(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}", extra);
	argv[0] = t_latchkey_bin();
	argv[1] = "broker";
	argv[2] = "--config";
	argv[3] = f.cfg;
	argv[4] = NULL;
	status = t_run(argv, NULL, NULL, NULL, err_path);
	ck_assert_int_eq(status, 2);
	err = t_read_file(err_path);
	ck_assert_ptr_nonnull(err);
	snprintf(want, sizeof(want), "%s:3: no secret named \"nosuch\" is configured", tpl_path);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	free(err);
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
templates_suite(void)
{
	Suite *s = suite_create("broker-templates");

	ADD(s, test_two_secrets_render_rotate_and_fail, 120);
	ADD(s, test_unknown_secret_refused_at_load, 60);
	ADD(s, test_nul_in_a_file_source, 60);
	ADD(s, test_nul_in_a_backend_value, 60);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(templates_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
