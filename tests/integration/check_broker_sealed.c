/* check_broker_sealed.c — the broker opening encrypted-at-source Secrets: the real binary
 * reads a directory written as the kubelet writes a Secret volume (tests/lib/kubeletvol.h)
 * whose values are lk1 text bound to namespace/name/key, and serves the plaintext on its
 * socket. The key from a file (refused when others may read it) or from `latchkey dev`'s
 * KV; a kubelet swap wakes a blocking reader, an unchanged payload bumps no version; a
 * value that does not open keeps the last good one served and names file and key, never a
 * value; and end to end from `latchkey sync` through the test API server to the socket.
 * Values are compared by hash; no test prints one. */
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

#include "common/clock.h"
#include "crypto/crypto.h"
#include "kubeletvol.h"
#include "syncfx.h"
#include "testutil.h"

#define NS "app"
#define SECRET "db-creds"
/* Values that must appear on the socket and nowhere else. */
#define USER1 "sealed-user-3f9a"
#define PASS1 "sealed-canary-pass-81c4d2"
#define PASS2 "sealed-canary-pass-e0b7a5"
#define PASS3 "sealed-canary-pass-5c2f19"

struct sx {
	char *dir;
	char sock[600], cfg[600], log[600], vol[600], keyfile[600], token_file[600];
	struct lk_key *key;         /* the recipient's key pair */
	struct t_proc broker;
	struct t_dev dev;
	bool dev_started;
};

static void
sx_start(struct sx *f)
{
	struct lk_secret *priv = NULL;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(lk_secret_init(), 0);
	f->dir = t_tmpdir();
	snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", f->dir);
	snprintf(f->cfg, sizeof(f->cfg), "%s/broker.json", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/broker.log", f->dir);
	snprintf(f->vol, sizeof(f->vol), "%s/volume", f->dir);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/recipient.lk1", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
	ck_assert_int_eq(lk_key_x25519_generate(&f->key), 0);
	ck_assert_int_eq(lk_key_x25519_private_text(f->key, &priv), 0);
	ck_assert_int_eq(t_write_file(f->keyfile, lk_secret_cstr(priv), 0600), 0);
	lk_secret_free(priv);
}

static void
sx_stop_broker(struct sx *f)
{
	if (f->broker.pid != 0) {
		int st = t_stop(&f->broker, SIGTERM, T_DEADLINE_MS);

		f->broker.pid = 0;
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "the broker did not exit 0 on SIGTERM (status %d)", st);
	}
}

static void
sx_stop(struct sx *f)
{
	sx_stop_broker(f);
	if (f->dev_started)
		t_dev_stop(&f->dev);
	lk_key_free(f->key);
	t_rmrf(f->dir);
	free(f->dir);
}

/* The lk1 text of value sealed to f's key for ns/name/key (owned). */
static char *
seal_for(struct sx *f, const char *ns, const char *name, const char *key, const char *value)
{
	char label[LK_LABEL_MAX + 1];
	struct lk_error err;
	char *ct = NULL;

	lk_error_clear(&err);
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, ns, name, key, label, sizeof(label), &err), 0);
	ck_assert_int_eq(lk_key_seal(f->key, label, value, strlen(value), &ct, &err), 0);
	ck_assert(strncmp(ct, "lk1:", 4) == 0);
	return ct;
}

/* The volume with username and password sealed for NS/SECRET, as the kubelet swaps it in;
 * the password's ciphertext into *ret_ct when not NULL (owned). */
static int
volume_write(struct sx *f, const char *user, const char *pass, char **ret_ct)
{
	const char *keys[] = { "username", "password" };
	char *u = seal_for(f, NS, SECRET, "username", user);
	char *p = seal_for(f, NS, SECRET, "password", pass);
	const char *values[] = { u, p };
	int rc = t_kubelet_write(f->vol, keys, values, 2);

	free(u);
	if (ret_ct != NULL)
		*ret_ct = p;
	else
		free(p);
	return rc;
}

/* The broker's configuration: extra top-level members (may be NULL), the secrets; a vault
 * object only when the dev backend runs. */
static void
sx_config(struct sx *f, const char *extra, const char *secrets)
{
	char *text, vault[1024] = "";

	if (f->dev_started)
		snprintf(vault, sizeof(vault), "\"vault\": {\"address\": \"%s\", \"auth\": "
			 "{\"method\": \"token\", \"token_file\": \"%s\"}},\n", f->dev.addr,
			 f->token_file);
	ck_assert_int_ge(asprintf(&text, "{%s \"listen\": {\"socket\": \"%s\", \"admin_uids\": [%u]},\n"
				  " \"seccomp\": true, \"retry\": {\"initial\": \"100ms\", \"max\": \"1s\"},\n"
				  " %s%s\"secrets\": [%s]}\n", vault, f->sock, (unsigned)getuid(),
				  extra != NULL ? extra : "", extra != NULL ? ",\n " : "", secrets), 0);
	ck_assert_int_eq(t_write_file(f->cfg, text, 0600), 0);
	free(text);
}

static void
sx_broker_start(struct sx *f)
{
	const char *argv[] = { t_latchkey_bin(), "broker", "--config", f->cfg, NULL };

	ck_assert_int_eq(t_spawn(&f->broker, argv, NULL, f->log), 0);
	ck_assert_msg(t_wait_log(&f->broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0),
		      "the broker did not start serving");
}

static long
sx_get(struct sx *f, const char *path, char **ret)
{
	char url[1024];

	snprintf(url, sizeof(url), "http://broker%s", path);
	return t_http("GET", url, f->sock, NULL, NULL, ret);
}

/* Fails unless got is want, showing only hashes of the two. */
static void
assert_same_value(const char *what, const char *got, const char *want)
{
	unsigned char hg[16], hw[16];
	char xg[33], xw[33];

	ck_assert_msg(got != NULL, "%s: no value", what);
	crypto_generichash(hg, sizeof(hg), (const unsigned char *)got, strlen(got), NULL, 0);
	crypto_generichash(hw, sizeof(hw), (const unsigned char *)want, strlen(want), NULL, 0);
	sodium_bin2hex(xg, sizeof(xg), hg, sizeof(hg));
	sodium_bin2hex(xw, sizeof(xw), hw, sizeof(hw));
	ck_assert_msg(sodium_memcmp(hg, hw, sizeof(hg)) == 0, "%s: value with hash %s, "
		      "expected the one with hash %s", what, xg, xw);
}

/* GET /v1/secrets/NAME: the answer (new reference), or NULL unless 200. */
static json_t *
secret_json(struct sx *f, const char *name)
{
	char path[256], *body = NULL;
	json_t *j = NULL;

	snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	if (sx_get(f, path, &body) == 200)
		j = json_loads(body, 0, NULL);
	if (body != NULL)
		sodium_memzero(body, strlen(body));
	free(body);
	return j;
}

static json_int_t
version_of(struct sx *f, const char *name)
{
	json_t *j = secret_json(f, name);
	json_int_t v = j != NULL ? json_integer_value(json_object_get(j, "version")) : 0;

	json_decref(j);
	return v;
}

/* The value of NAME/KEY (owned), or NULL unless 200. */
static char *
value_of(struct sx *f, const char *name, const char *key)
{
	char path[256], *body = NULL;

	snprintf(path, sizeof(path), "/v1/secrets/%s/%s", name, key);
	if (sx_get(f, path, &body) != 200) {
		free(body);
		return NULL;
	}
	return body;
}

/* /v1/ready's entry of secret name (new reference) and the whole answer in *ret_ready. */
static json_t *
ready_entry(struct sx *f, const char *name, json_t **ret_ready)
{
	char *body = NULL;
	json_t *j, *s, *found = NULL;
	size_t i;

	sx_get(f, "/v1/ready", &body);
	j = body != NULL ? json_loads(body, 0, NULL) : NULL;
	free(body);
	json_array_foreach(json_object_get(j, "secrets"), i, s) {
		const char *n = json_string_value(json_object_get(s, "name"));

		if (n != NULL && strcmp(n, name) == 0)
			found = json_incref(s);
	}
	if (ret_ready != NULL)
		*ret_ready = j;
	else
		json_decref(j);
	return found;
}

struct want_version {
	struct sx *f;
	const char *name;
	json_int_t version;
};

static bool
version_is(void *arg)
{
	struct want_version *w = arg;

	return version_of(w->f, w->name) == w->version;
}

struct want_reason {
	struct sx *f;
	const char *name;
	const char *needle;
};

static bool
reason_has(void *arg)
{
	struct want_reason *w = arg;
	json_t *e = ready_entry(w->f, w->name, NULL);
	const char *r = json_string_value(json_object_get(e, "reason"));
	bool ok = r != NULL && strstr(r, w->needle) != NULL;

	json_decref(e);
	return ok;
}

static void
wait_version(struct sx *f, const char *name, json_int_t v)
{
	struct want_version w = { f, name, v };

	ck_assert_msg(t_wait_until(version_is, &w, T_DEADLINE_MS), "%s never reached version %lld "
		      "(at %lld)", name, (long long)v, (long long)version_of(f, name));
}

/* The broker's counter of re-reads of secret name, from /metrics; -1 when absent. */
static long
refreshes(struct sx *f, const char *name)
{
	char needle[256], *body = NULL, *p;
	long n = -1;

	snprintf(needle, sizeof(needle), "latchkey_broker_refreshes_total{secret=\"%s\"} ", name);
	if (sx_get(f, "/metrics", &body) == 200 && (p = strstr(body, needle)) != NULL)
		n = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return n;
}

struct want_refresh {
	struct sx *f;
	long above;
};

static bool
refreshed(void *arg)
{
	struct want_refresh *w = arg;

	return refreshes(w->f, "db") > w->above;
}

/* `latchkey get NAME --after VERSION` started, its output in f->dir/get.out. */
static void
reader_start(struct sx *f, struct t_proc *p, const char *name, json_int_t after)
{
	char v[32];
	const char *argv[] = { t_latchkey_bin(), "get", name, "--after", v, "--wait=60s",
			       "--socket", f->sock, NULL };

	snprintf(v, sizeof(v), "%lld", (long long)after);
	ck_assert_int_eq(t_spawn(p, argv, NULL, t_path(f->dir, "get.out")), 0);
}

static bool
exited(void *arg)
{
	return !t_alive(arg);
}

/* Waits for the reader to exit 0 and returns what it printed (new reference). */
static json_t *
reader_result(struct sx *f, struct t_proc *p)
{
	char *out;
	json_t *j;
	int st;

	ck_assert_msg(t_wait_until(exited, p, T_DEADLINE_MS), "the blocking reader never woke");
	st = t_stop(p, SIGTERM, 1000);
	out = t_read_file(t_path(f->dir, "get.out"));
	ck_assert_msg(out != NULL && (st == -1 || (WIFEXITED(st) && WEXITSTATUS(st) == 0)),
		      "latchkey get --after failed (status %d)", st);
	j = json_loads(out, 0, NULL);
	sodium_memzero(out, strlen(out));
	free(out);
	unlink(t_path(f->dir, "get.out"));
	ck_assert_msg(j != NULL, "latchkey get printed no JSON");
	return j;
}

static const char *
data_of(json_t *j, const char *key)
{
	return json_string_value(json_object_get(json_object_get(j, "data"), key));
}

/* Fails when text holds any of the needles (NULL-terminated), saying which by index. */
static void
assert_none_in(const char *what, const char *text, const char *const needles[])
{
	ck_assert_msg(text != NULL, "%s: nothing to read", what);
	for (size_t i = 0; needles[i] != NULL; i++)
		ck_assert_msg(strstr(text, needles[i]) == NULL, "%s holds secret text #%zu", what, i);
}

#define DB_SECRET "{\"name\": \"db\", \"from_file\": \"%s\", \"decrypt\": true, \"required\": true, " \
	"\"refresh\": \"1h\", \"k8s_secret\": {\"namespace\": \"" NS "\", \"name\": \"" SECRET "\"}}"

/* 1. A key file and a mounted volume of lk1 values: plaintext on the socket only, the
 * source in /v1/ready, no backend; a key file others may read is refused at start. */
START_TEST(key_file_and_volume)
{
	struct sx f;
	char secrets[1024], extra[1024], *v, *log, *err, *ct = NULL;
	json_t *ready = NULL, *e, *j;

	sx_start(&f);
	ck_assert_int_eq(volume_write(&f, USER1, PASS1, &ct), 0);
	snprintf(secrets, sizeof(secrets), DB_SECRET, f.vol);
	snprintf(extra, sizeof(extra), "\"decryption_key\": {\"file\": \"%s\"}", f.keyfile);
	sx_config(&f, extra, secrets);
	sx_broker_start(&f);
	wait_version(&f, "db", 1);
	v = value_of(&f, "db", "password");
	assert_same_value("db/password", v, PASS1);
	free(v);
	j = secret_json(&f, "db");
	assert_same_value("db.data.username", data_of(j, "username"), USER1);
	ck_assert_int_eq(json_object_size(json_object_get(j, "data")), 2);
	json_decref(j);
	e = ready_entry(&f, "db", &ready);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "source")), "file");
	ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "valid");
	ck_assert(json_is_true(json_object_get(ready, "ready")));
	ck_assert(json_is_false(json_object_get(json_object_get(ready, "backend"), "configured")));
	json_decref(e);
	json_decref(ready);
	sx_stop_broker(&f);
	log = t_read_file(f.log);
	assert_none_in("the broker's log", log, (const char *const[]){ PASS1, USER1, ct + 4, NULL });
	free(log);

	/* Others may read the key: refused before anything is served, naming the file, the
	 * config key and the mode expected. */
	ck_assert_int_eq(chmod(f.keyfile, 0644), 0);
	{
		const char *argv[] = { t_latchkey_bin(), "broker", "--config", f.cfg, NULL };

		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, t_path(f.dir, "refused.err")), 2);
	}
	err = t_read_file(t_path(f.dir, "refused.err"));
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "decryption_key.file") != NULL && strstr(err, f.keyfile) != NULL &&
		      strstr(err, "mode 0644") != NULL && strstr(err, "0600") != NULL,
		      "unclear refusal: %s", err);
	ck_assert_ptr_null(strstr(err, "lk1priv:"));
	free(err);
	ck_assert_msg(access(f.sock, F_OK) != 0, "a refused broker left a socket");
	free(ct);
	sx_stop(&f);
}
END_TEST

struct want_file {
	const char *path, *value;
};

/* True when the file holds exactly the value (compared by hash, never printed). */
static bool
file_holds(void *arg)
{
	const struct want_file *w = arg;
	unsigned char hg[16], hw[16];
	char *text = t_read_file(w->path);
	bool same;

	if (text == NULL)
		return false;
	crypto_generichash(hg, sizeof(hg), (const unsigned char *)text, strlen(text), NULL, 0);
	crypto_generichash(hw, sizeof(hw), (const unsigned char *)w->value, strlen(w->value),
			   NULL, 0);
	sodium_memzero(text, strlen(text));
	free(text);
	same = sodium_memcmp(hg, hw, sizeof(hg)) == 0;
	return same;
}

/* 2. A kubelet swap wakes a blocking reader with the new version; the same plaintext
 * sealed again (new ciphertext, a real swap) is read but bumps no version. */
START_TEST(kubelet_swap_wakes_reader)
{
	struct sx f;
	struct t_proc reader;
	char secrets[1024], extra[1024], old[256], now[256], *v;
	json_t *j;
	int64_t t0;
	long base;

	sx_start(&f);
	ck_assert_int_eq(volume_write(&f, USER1, PASS1, NULL), 0);
	snprintf(secrets, sizeof(secrets), DB_SECRET, f.vol);
	/* A template reads the secret too: the file source renders it. */
	snprintf(extra, sizeof(extra), "\"decryption_key\": {\"file\": \"%s\"}, "
		 "\"templates\": [{\"template\": \"{{ .db.password }}\", \"destination\": "
		 "\"%s\"}]", f.keyfile, t_path(f.dir, "rendered"));
	sx_config(&f, extra, secrets);
	sx_broker_start(&f);
	wait_version(&f, "db", 1);
	ck_assert_int_eq(t_kubelet_current(f.vol, old, sizeof(old)), 0);
	{
		struct want_file w = { t_path(f.dir, "rendered"), PASS1 };

		ck_assert_msg(t_wait_until(file_holds, &w, T_DEADLINE_MS),
			      "the template reading db was not rendered");
	}

	reader_start(&f, &reader, "db", 1);
	ck_assert_msg(t_alive(&reader), "get --after 1 returned while version 1 was served");
	t0 = lk_now_mono_ms();
	ck_assert_int_eq(volume_write(&f, USER1, PASS2, NULL), 0);
	ck_assert_int_eq(t_kubelet_current(f.vol, now, sizeof(now)), 0);
	ck_assert_str_ne(old, now);
	j = reader_result(&f, &reader);
	fprintf(stderr, "kubelet_swap_wakes_reader: swap to reader woken in %lld ms\n",
		(long long)(lk_now_mono_ms() - t0));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 2);
	assert_same_value("the reader's db.data.password", data_of(j, "password"), PASS2);
	assert_same_value("the reader's db.data.username", data_of(j, "username"), USER1);
	json_decref(j);
	{
		struct want_file w = { t_path(f.dir, "rendered"), PASS2 };

		ck_assert_msg(t_wait_until(file_holds, &w, T_DEADLINE_MS),
			      "the template was not rendered again after the swap");
	}

	/* The same values sealed again: a new timestamped directory, the same plaintext. */
	base = refreshes(&f, "db");
	ck_assert_int_ge(base, 0);
	ck_assert_int_eq(volume_write(&f, USER1, PASS2, NULL), 0);
	{
		struct want_refresh w = { &f, base };

		ck_assert_msg(t_wait_until(refreshed, &w, T_DEADLINE_MS),
			      "the broker never read the re-sealed volume");
	}
	ck_assert_int_eq(version_of(&f, "db"), 2);
	v = value_of(&f, "db", "password");
	assert_same_value("db/password after the re-seal", v, PASS2);
	free(v);
	sx_stop(&f);
}
END_TEST

/* 3. Values that do not open: sealed for another Secret, another namespace, or tampered.
 * The last good value stays served (stale) and the reason names the file and the key; a
 * secret with nothing good yet fails (and a file name that cannot be a key says so); no
 * value or ciphertext reaches the log or status. */
START_TEST(bad_value_keeps_last_good)
{
	struct sx f;
	char secrets[4096], extra[1024], bad[600], odd[600], *v, *ct_good = NULL, *log, *status_out;
	char *ct_name, *ct_ns, *ct_tampered;
	const char *keys[] = { "password" };
	json_t *ready = NULL, *e;

	sx_start(&f);
	snprintf(bad, sizeof(bad), "%s/fresh", f.dir);
	ck_assert_int_eq(volume_write(&f, USER1, PASS1, &ct_good), 0);
	snprintf(odd, sizeof(odd), "%s/odd", f.dir);
	snprintf(secrets, sizeof(secrets), DB_SECRET ", {\"name\": \"fresh\", \"from_file\": \"%s\", "
		 "\"decrypt\": true, \"k8s_secret\": {\"namespace\": \"" NS "\"}}, "
		 "{\"name\": \"odd\", \"from_file\": \"%s\"}", f.vol, bad, odd);
	snprintf(extra, sizeof(extra), "\"decryption_key\": {\"file\": \"%s\"}", f.keyfile);
	sx_config(&f, extra, secrets);
	/* "fresh" was sealed for another namespace from the start. */
	ct_ns = seal_for(&f, "other", "fresh", "password", PASS3);
	ck_assert_int_eq(t_kubelet_write(bad, keys, (const char *const[]){ ct_ns }, 1), 0);
	/* "odd", a plain directory, holds a file whose name is no key (not UTF-8). */
	ck_assert_int_eq(mkdir(odd, 0700), 0);
	ck_assert_int_eq(t_write_file(t_path(odd, "name\xff"), "x", 0600), 0);
	sx_broker_start(&f);
	wait_version(&f, "db", 1);

	/* Sealed for another Secret's name. */
	ct_name = seal_for(&f, NS, "other", "password", PASS2);
	{
		char *u = seal_for(&f, NS, SECRET, "username", USER1);
		const char *k2[] = { "username", "password" };

		ck_assert_int_eq(t_kubelet_write(f.vol, k2, (const char *const[]){ u, ct_name }, 2), 0);
		free(u);
	}
	{
		struct want_reason w = { &f, "db", "key password" };

		ck_assert_msg(t_wait_until(reason_has, &w, T_DEADLINE_MS), "no reason naming the key");
	}
	e = ready_entry(&f, "db", &ready);
	ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "stale");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")), f.vol));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")), "does not open"));
	json_decref(e);
	json_decref(ready);
	ck_assert_int_eq(version_of(&f, "db"), 1);
	v = value_of(&f, "db", "password");
	assert_same_value("db/password while the new one does not open", v, PASS1);
	free(v);

	/* Tampered: one character of the good ciphertext changed. */
	ct_tampered = strdup(ct_good);
	ct_tampered[strlen(ct_tampered) / 2] ^= ct_tampered[strlen(ct_tampered) / 2] == 'A' ? 2 : 1;
	{
		char *u = seal_for(&f, NS, SECRET, "username", USER1);
		const char *k2[] = { "username", "password" };
		struct want_reason w = { &f, "db", "key password" };

		ck_assert_int_eq(t_kubelet_write(f.vol, k2, (const char *const[]){ u, ct_tampered }, 2), 0);
		free(u);
		ck_assert(t_wait_until(reason_has, &w, T_DEADLINE_MS));
	}
	v = value_of(&f, "db", "password");
	assert_same_value("db/password while tampered", v, PASS1);
	free(v);

	/* Nothing good ever: failed, not served, the reason says where. */
	e = ready_entry(&f, "fresh", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "failed");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")), "key password"));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")), bad));
	json_decref(e);
	ck_assert_int_eq(sx_get(&f, "/v1/secrets/fresh/password", NULL), 503);
	{
		struct want_reason w = { &f, "odd", "holds a file whose name is not UTF-8" };

		ck_assert_msg(t_wait_until(reason_has, &w, T_DEADLINE_MS), "no reason for \"odd\"");
	}
	{
		const char *argv[] = { t_latchkey_bin(), "status", "--socket", f.sock, NULL };

		ck_assert_int_ge(t_run(argv, NULL, NULL, t_path(f.dir, "status.out"), NULL), 0);
	}
	status_out = t_read_file(t_path(f.dir, "status.out"));
	ck_assert_ptr_nonnull(strstr(status_out, "fresh"));
	ck_assert_ptr_nonnull(strstr(status_out, "does not open"));

	/* Good again: served, the reason gone. */
	ck_assert_int_eq(volume_write(&f, USER1, PASS2, NULL), 0);
	wait_version(&f, "db", 2);
	e = ready_entry(&f, "db", NULL);
	ck_assert_ptr_null(json_object_get(e, "reason"));
	ck_assert_str_eq(json_string_value(json_object_get(e, "state")), "valid");
	json_decref(e);
	sx_stop_broker(&f);
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(strstr(log, "file source failed"));
	{
		const char *const secret_text[] = { PASS1, PASS2, PASS3, USER1, ct_good + 4, ct_name + 4,
			ct_ns + 4, ct_tampered + 4, NULL };

		assert_none_in("the broker's log", log, secret_text);
		assert_none_in("latchkey status", status_out, secret_text);
	}
	free(log);
	free(status_out);
	free(ct_good);
	free(ct_name);
	free(ct_ns);
	free(ct_tampered);
	sx_stop(&f);
}
END_TEST

/* 4. The key in the backend: decryption_key {vault_path, field} read from latchkey dev's
 * KV, top level; a per-secret one naming a field that is not there says so. */
START_TEST(key_from_backend_kv)
{
	struct sx f;
	struct lk_secret *priv = NULL;
	char secrets[2048], url[512], *body, *v;
	json_t *kv, *ready = NULL, *e;

	sx_start(&f);
	ck_assert_int_eq(t_dev_start(&f.dev, NULL), 0);
	f.dev_started = true;
	ck_assert_int_eq(t_write_file(f.token_file, f.dev.token, 0600), 0);
	ck_assert_int_eq(lk_key_x25519_private_text(f.key, &priv), 0);
	kv = json_pack("{s:{s:s}}", "data", "lk1", lk_secret_cstr(priv));
	lk_secret_free(priv);
	body = json_dumps(kv, JSON_COMPACT);
	json_decref(kv);
	snprintf(url, sizeof(url), "%s/v1/secret/data/broker/keys", f.dev.addr);
	ck_assert_int_lt(t_http("POST", url, NULL, f.dev.token, body, NULL), 300);
	sodium_memzero(body, strlen(body));
	free(body);
	/* No key file here: the backend's copy is the only one. */
	ck_assert_int_eq(unlink(f.keyfile), 0);
	ck_assert_int_eq(volume_write(&f, USER1, PASS1, NULL), 0);
	snprintf(secrets, sizeof(secrets), DB_SECRET ", {\"name\": \"wrongfield\", \"from_file\": \"%s\", "
		 "\"decrypt\": true, \"k8s_secret\": {\"namespace\": \"" NS "\", \"name\": \"" SECRET "\"}, "
		 "\"decryption_key\": {\"vault_path\": \"secret/data/broker/keys\", \"field\": \"nope\"}}",
		 f.vol, f.vol);
	sx_config(&f, "\"decryption_key\": {\"vault_path\": \"secret/data/broker/keys\", \"field\": \"lk1\"}",
		  secrets);
	sx_broker_start(&f);
	wait_version(&f, "db", 1);
	v = value_of(&f, "db", "password");
	assert_same_value("db/password (key from the backend)", v, PASS1);
	free(v);
	{
		struct want_reason w = { &f, "wrongfield", "no string field \"nope\"" };

		ck_assert_msg(t_wait_until(reason_has, &w, T_DEADLINE_MS),
			      "the missing field is not named");
	}
	e = ready_entry(&f, "wrongfield", &ready);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")),
				     "secret/data/broker/keys"));
	ck_assert(json_is_true(json_object_get(json_object_get(ready, "backend"), "configured")));
	ck_assert_int_eq(sx_get(&f, "/v1/secrets/wrongfield/password", NULL), 503);
	json_decref(e);
	json_decref(ready);
	sx_stop_broker(&f);
	v = t_read_file(f.log);
	ck_assert_ptr_nonnull(strstr(v, "\"msg\":\"decryption key loaded\""));
	assert_none_in("the broker's log", v, (const char *const[]){ PASS1, USER1, "lk1priv:", NULL });
	free(v);
	sx_stop(&f);
}
END_TEST

/* ---- 5. end to end: latchkey sync → the API server → a kubelet volume → the broker ---- */

#define CONTROLLER_NS "latchkey-system"
#define E2E_SECRET "enc-out"

/* The data of Secret NS/E2E_SECRET as the kubelet would mount it: keys and decoded values
 * (the lk1 text; owned). */
struct materialised {
	char *keys[8];
	char *values[8];
	size_t n;
};

static void
materialised_clear(struct materialised *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->keys[i]);
		free(m->values[i]);
	}
	m->n = 0;
}

static bool
secret_fetch(struct t_sfx *fx, struct materialised *m)
{
	json_t *s = t_sfx_get(fx, "/api/v1/namespaces/" NS "/secrets/" E2E_SECRET), *v;
	const char *k;

	materialised_clear(m);
	json_object_foreach(json_object_get(s, "data"), k, v) {
		unsigned char *dec = NULL;
		size_t len = 0;

		if (m->n == 8 || lk_b64_decode_raw(json_string_value(v), json_string_length(v), LK_B64_STD,
					       &dec, &len) < 0)
			break;
		m->keys[m->n] = strdup(k);
		m->values[m->n] = strndup((char *)dec, len);
		free(dec);
		m->n++;
	}
	json_decref(s);
	return m->n > 0;
}

struct new_ciphertext {
	struct t_sfx *fx;
	struct materialised *m;
	const char *not;            /* NULL: any */
};

static bool
secret_written(void *arg)
{
	struct new_ciphertext *w = arg;

	if (!secret_fetch(w->fx, w->m))
		return false;
	for (size_t i = 0; i < w->m->n; i++)
		if (strcmp(w->m->keys[i], "password") == 0)
			return w->not == NULL || strcmp(w->m->values[i], w->not) != 0;
	return false;
}

static const char *
materialised_get(const struct materialised *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->keys[i], key) == 0)
			return m->values[i];
	return NULL;
}

START_TEST(end_to_end_from_sync)
{
	struct sx f;
	struct t_sfx fx;
	struct t_proc reader;
	struct materialised m = { .n = 0 };
	char body[2048], secrets[1024], extra[1024], *pub = NULL, *b64 = NULL, *text, *v, *prev;
	json_t *s, *j;
	int64_t t0;

	sx_start(&f);
	t_sfx_start(&fx, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ck_assert_int_eq(lk_key_x25519_public_text(f.key, &pub), 0);
	pub[strcspn(pub, "\n")] = '\0';
	ck_assert_int_eq(lk_b64_encode(fx.dev.token, strlen(fx.dev.token), LK_B64_STD, &b64), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":"
		 "{\"name\":\"vault-token\"},\"data\":{\"token\":\"%s\"}}", b64);
	free(b64);
	json_decref(t_sfx_kube(&fx, "POST", "/api/v1/namespaces/" NS "/secrets", body, 201));
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\","
		 "\"metadata\":{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\","
		 "\"path\":\"secret\",\"version\":\"v2\",\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\","
		 "\"key\":\"token\"}}}}}}", fx.dev.addr);
	json_decref(t_sfx_kube(&fx, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/secretstores", body, 201));
	t_sfx_kv_put(&fx, "app/db", "{\"user\":\"" USER1 "\",\"password\":\"" PASS1 "\"}");
	t_sfx_ctl_start(&fx, 0, CONTROLLER_NS, (const char *const[]){ "--key-size", "2048",
			"--leader-elect=false", NULL });
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\","
		 "\"metadata\":{\"name\":\"enc\"},\"spec\":{\"refreshInterval\":\"1s\","
		 "\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"name\":\"" E2E_SECRET "\","
		 "\"encryption\":{\"recipient\":\"%s\"}},\"data\":[{\"secretKey\":\"password\","
		 "\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}},{\"secretKey\":\"username\","
		 "\"remoteRef\":{\"key\":\"app/db\",\"property\":\"user\"}}]}}", pub);
	json_decref(t_sfx_kube(&fx, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets",
			       body, 201));
	{
		struct new_ciphertext w = { &fx, &m, NULL };

		ck_assert_msg(t_wait_until(secret_written, &w, T_DEADLINE_MS),
			      "the controller never wrote " E2E_SECRET);
	}
	/* What the API server holds: lk1 text only, neither the value nor its base64. */
	s = t_sfx_get(&fx, "/api/v1/namespaces/" NS "/secrets/" E2E_SECRET);
	text = json_dumps(s, JSON_COMPACT);
	json_decref(s);
	{
		char *b64p = NULL, *b64u = NULL;

		ck_assert_int_eq(lk_b64_encode(PASS1, strlen(PASS1), LK_B64_STD, &b64p), 0);
		ck_assert_int_eq(lk_b64_encode(USER1, strlen(USER1), LK_B64_STD, &b64u), 0);
		assert_none_in("the Secret at the API server", text,
			       (const char *const[]){ PASS1, USER1, b64p, b64u, NULL });
		free(b64p);
		free(b64u);
	}
	free(text);
	for (size_t i = 0; i < m.n; i++)
		ck_assert_msg(strncmp(m.values[i], "lk1:", 4) == 0, "data.%s is not lk1 text", m.keys[i]);

	/* Mounted as the kubelet mounts it; opened at the broker only. */
	ck_assert_int_eq(t_kubelet_write(f.vol, (const char *const *)m.keys,
					 (const char *const *)m.values, m.n), 0);
	snprintf(secrets, sizeof(secrets), "{\"name\": \"db\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"required\": true, \"k8s_secret\": {\"namespace\": \"" NS "\", \"name\": \"" E2E_SECRET
		 "\"}}", f.vol);
	snprintf(extra, sizeof(extra), "\"decryption_key\": {\"file\": \"%s\"}", f.keyfile);
	sx_config(&f, extra, secrets);
	sx_broker_start(&f);
	wait_version(&f, "db", 1);
	v = value_of(&f, "db", "password");
	assert_same_value("db/password from the synced Secret", v, PASS1);
	free(v);
	v = value_of(&f, "db", "username");
	assert_same_value("db/username from the synced Secret", v, USER1);
	free(v);

	/* A new value in the backend: the controller rewrites the Secret, the kubelet swaps
	 * the volume, and a reader blocked on version 1 wakes with it. */
	reader_start(&f, &reader, "db", 1);
	prev = strdup(materialised_get(&m, "password"));
	t0 = lk_now_mono_ms();
	t_sfx_kv_put(&fx, "app/db", "{\"user\":\"" USER1 "\",\"password\":\"" PASS2 "\"}");
	{
		struct new_ciphertext w = { &fx, &m, prev };

		ck_assert_msg(t_wait_until(secret_written, &w, T_DEADLINE_MS),
			      "the controller never rewrote " E2E_SECRET);
	}
	free(prev);
	ck_assert_msg(t_alive(&reader), "the reader returned before the volume changed");
	ck_assert_int_eq(t_kubelet_write(f.vol, (const char *const *)m.keys,
					 (const char *const *)m.values, m.n), 0);
	j = reader_result(&f, &reader);
	fprintf(stderr, "end_to_end_from_sync: backend write to reader woken in %lld ms\n",
		(long long)(lk_now_mono_ms() - t0));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 2);
	assert_same_value("the reader's db.data.password", data_of(j, "password"), PASS2);
	json_decref(j);
	sx_stop_broker(&f);
	v = t_read_file(f.log);
	assert_none_in("the broker's log", v, (const char *const[]){ PASS1, PASS2, USER1, NULL });
	free(v);
	materialised_clear(&m);
	free(pub);
	t_sfx_stop(&fx);
	sx_stop(&f);
}
END_TEST

#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 120); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
broker_sealed_suite(void)
{
	Suite *s = suite_create("broker_sealed");

	ADD(s, key_file_and_volume);
	ADD(s, kubelet_swap_wakes_reader);
	ADD(s, bad_value_keeps_last_good);
	ADD(s, key_from_backend_kv);
	ADD(s, end_to_end_from_sync);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(broker_sealed_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
