/* check_seal_cli.c — keygen, seal, unseal, reseal and scan through the real binary. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manifest/manifest.h"
#include "crypto/crypto.h"
#include "testutil.h"

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
	dir = NULL;
}

/* dir/name (t_path). */
static const char *
p(const char *name)
{
	return t_path(dir, name);
}

/* Runs argv with stdin from in (NULL: /dev/null), stdout to out (NULL: discarded) and
 * stderr to err (NULL: dir/last.err). Returns the exit status, or -1. */
static int
run_io(const char *const argv[], const char *in, const char *out, const char *err, const char *const env[])
{
	return t_run(argv, env, in, out, err != NULL ? err : p("last.err"));
}

/* latchkey ARGS... NULL with stdin/stdout files. */
static int
lk(const char *in, const char *out, ...)
{
	const char *argv[40];
	size_t n = 0;
	va_list ap;

	argv[n++] = t_latchkey_bin();
	va_start(ap, out);
	while (n < 39 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_io(argv, in, out, NULL, NULL);
}

static char *
last_err(void)
{
	char *s = t_read_file(p("last.err"));

	ck_assert_ptr_nonnull(s);
	return s;
}

static json_t *
load(const char *path)
{
	char *text = t_read_file(path);
	struct lk_error err;
	json_t *root = NULL;

	ck_assert_msg(text != NULL, "cannot read %s", path);
	ck_assert_msg(lk_manifest_parse(text, strlen(text), path, &root, NULL, &err) == 0, "%s", err.msg);
	free(text);
	return root;
}

static const char *
get(const json_t *root, const char *path)
{
	char buf[512], *save = NULL, *tok;
	const json_t *v = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		v = json_object_get(v, tok);
	return json_string_value(v);
}

static void
keygen(const char *keydir)
{
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--out-dir", keydir, "--key-size", "2048", NULL), 0);
}

static const char secret_yaml[] =
	"# an application's credentials\n"
	"apiVersion: v1\n"
	"kind: Secret\n"
	"metadata:\n"
	"  name: db\n"
	"  namespace: app\n"
	"  labels: {app: db}\n"
	"  annotations:\n"
	"    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"password\":\"hunter2-plain\"}}'\n"
	"    team: payments\n"
	"  ownerReferences:\n"
	"  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: 1}\n"
	"type: Opaque\n"
	"data:\n"
	"  binary: AP8Q/w==\n"
	"stringData:\n"
	"  password: hunter2-plain\n"
	"  port: 5432\n"
	"  cert.pem: |\n"
	"    -----BEGIN CERTIFICATE-----\n"
	"    MIIB\n"
	"    -----END CERTIFICATE-----\n";

/* The base64 each key must unseal to. */
static const char *const expect[][2] = {
	{ "binary", "AP8Q/w==" },
	{ "password", "aHVudGVyMi1wbGFpbg==" },
	{ "port", "NTQzMg==" },
	{ "cert.pem", "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=" },
};

static void
check_unsealed(const char *path)
{
	json_t *s = load(path);

	ck_assert_str_eq(get(s, "kind"), "Secret");
	ck_assert_str_eq(get(s, "metadata.name"), "db");
	ck_assert_str_eq(get(s, "metadata.namespace"), "app");
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		const char *v = json_string_value(json_object_get(json_object_get(s, "data"), expect[i][0]));

		ck_assert_msg(v != NULL, "key %s missing", expect[i][0]);
		ck_assert_str_eq(v, expect[i][1]);
	}
	ck_assert_uint_eq(json_object_size(json_object_get(s, "data")), 4);
	json_decref(s);
}

START_TEST(keygen_files_modes_rotation)
{
	struct stat st;
	char *before, *after, *err, *man;

	keygen(p("keys"));
	ck_assert_int_eq(stat(p("keys/0001.key"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(p("keys/0001.lk1"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(p("keys/0001.crt"), &st), 0);
	ck_assert_int_eq(stat(p("keys/0001.lk1.pub"), &st), 0);
	before = t_read_file(p("keys/0001.key"));
	ck_assert_ptr_nonnull(strstr(before, "-----BEGIN RSA PRIVATE KEY-----")); /* latchkey-scan: allow */
	/* an existing key directory is not reused silently */
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--out-dir", p("keys"), "--key-size", "2048", NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "--rotate"));
	free(err);
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--rotate", p("keys"), "--key-size", "2048",
			    "--secret-manifest", p("backup.yaml"), "--namespace", "sealing", NULL), 0);
	ck_assert_int_eq(stat(p("keys/0002.key"), &st), 0);
	after = t_read_file(p("keys/0001.key"));
	ck_assert_str_eq(before, after);
	ck_assert_int_eq(stat(p("backup.yaml"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	man = t_read_file(p("backup.yaml"));
	ck_assert_ptr_nonnull(strstr(man, "sealedsecrets.bitnami.com/sealed-secrets-key: active"));
	ck_assert_ptr_nonnull(strstr(man, "type: kubernetes.io/tls"));
	ck_assert_ptr_nonnull(strstr(man, "namespace: sealing"));
	ck_assert_ptr_nonnull(strstr(man, "tls.key:"));
	ck_assert_ptr_nonnull(strstr(man, "tls.crt:"));
	/* the manifest is not overwritten either */
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--secret-manifest", p("backup.yaml"),
			    "--key-size", "2048", NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "already exists"));
	/* usage errors */
	ck_assert_int_eq(lk(NULL, NULL, "keygen", NULL), 2);
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--out-dir", p("x"), "--key-size", "512", NULL), 2);
	free(err);
	free(man);
	free(before);
	free(after);
}
END_TEST

START_TEST(default_key_is_rsa4096)
{
	unsigned char *blob = NULL;
	size_t n = 0;
	char *ct;

	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--out-dir", p("k"), NULL), 0);
	t_write_file(p("v"), "value", 0600);
	ck_assert_int_eq(lk(NULL, p("ct"), "seal", "--raw", "--cert", p("k/0001.crt"), "--namespace",
			    "a", "--name", "b", "--from-file", p("v"), NULL), 0);
	ct = t_read_file(p("ct"));
	ct[strcspn(ct, "\n")] = '\0';
	/* BE16(512) = 0x02 0x00, then 512 bytes of RSA, then 5 + 16 */
	ck_assert_int_eq(lk_b64_decode_raw(ct, strlen(ct), LK_B64_STD, &blob, &n), 0);
	ck_assert_uint_eq(blob[0], 0x02);
	ck_assert_uint_eq(blob[1], 0x00);
	ck_assert_uint_eq(n, 2 + 512 + 5 + 16);
	free(blob);
	free(ct);
}
END_TEST

static void
seal_unseal(const char *scope, bool lk1, bool json_in)
{
	const char *scope_annot = strcmp(scope, "namespace-wide") == 0 ? "sealedsecrets.bitnami.com/namespace-wide" :
				  strcmp(scope, "cluster-wide") == 0 ? "sealedsecrets.bitnami.com/cluster-wide" : NULL;
	const char *in = p("secret.yaml");
	json_t *ss;
	char *text;

	t_write_file(in, secret_yaml, 0600);
	if (json_in) {
		json_t *s = load(in);
		char *j = json_dumps(s, 0);

		t_write_file(p("secret.json"), j, 0600);
		free(j);
		json_decref(s);
		in = p("secret.json");
	}
	if (lk1)
		ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", in, "--envelope", "lk1", "--key-file",
				    p("keys/0001.lk1.pub"), "--scope", scope, NULL), 0);
	else
		ck_assert_int_eq(lk(in, p("sealed"), "seal", "--cert", p("keys/0001.crt"), "--scope", scope,
				    NULL), 0);
	text = t_read_file(p("sealed"));
	ck_assert_ptr_null(strstr(text, "hunter2"));
	ck_assert_ptr_null(strstr(text, "aHVudGVyMi1wbGFpbg"));
	ck_assert_int_eq(json_in, text[0] == '{');
	free(text);
	ss = load(p("sealed"));
	ck_assert_str_eq(get(ss, "apiVersion"), "latchkey.io/v1");
	ck_assert_str_eq(get(ss, "kind"), "SealedSecret");
	if (scope_annot != NULL)
		ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(ss, "metadata"), "annotations"), scope_annot)), "true");
	else
		ck_assert_ptr_null(json_object_get(json_object_get(ss, "metadata"), "annotations"));
	ck_assert_int_eq(lk1, strncmp(get(ss, "spec.encryptedData.password"), "lk1:", 4) == 0);
	json_decref(ss);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("sealed"), NULL), 0);
	check_unsealed(p("plain"));
}

START_TEST(round_trip_all_scopes_both_formats)
{
	static const char *scopes[] = { "strict", "namespace-wide", "cluster-wide" };

	keygen(p("keys"));
	for (size_t i = 0; i < 3; i++) {
		seal_unseal(scopes[i], false, i == 1);
		seal_unseal(scopes[i], true, i == 2);
	}
}
END_TEST

START_TEST(template_and_compat)
{
	json_t *ss;

	keygen(p("keys"));
	t_write_file(p("s.yaml"), secret_yaml, 0600);
	ck_assert_int_eq(lk(NULL, p("ss.json"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"),
			    "--compat", "sealed-secrets", "--format", "json", NULL), 0);
	ss = load(p("ss.json"));
	ck_assert_str_eq(get(ss, "apiVersion"), "bitnami.com/v1alpha1");
	ck_assert_str_eq(get(ss, "spec.template.type"), "Opaque");
	ck_assert_str_eq(get(ss, "spec.template.metadata.labels.app"), "db");
	ck_assert_str_eq(get(ss, "spec.template.metadata.annotations.team"), "payments");
	ck_assert_ptr_null(json_object_get(json_object_get(json_object_get(json_object_get(ss, "spec"), "template"), "metadata"), "ownerReferences"));
	ck_assert_uint_eq(json_object_size(json_object_get(json_object_get(json_object_get(json_object_get(ss, "spec"), "template"), "metadata"), "annotations")), 1);
	json_decref(ss);
	/* lk1 cannot go to Bitnami's controller */
	ck_assert_int_eq(lk(NULL, NULL, "seal", "-f", p("s.yaml"), "--envelope", "lk1", "--key-file",
			    p("keys/0001.lk1.pub"), "--compat", "sealed-secrets", NULL), 2);
	/* the key Secret backup opens it too */
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--secret-manifest", p("bk.yaml"), "--key-size", "2048", NULL), 0);
	ck_assert_int_eq(lk(NULL, p("ss2"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"), NULL), 0);
	ck_assert_int_eq(lk(NULL, p("out"), "unseal", "--key", p("bk.yaml"), "-f", p("ss2"), NULL), 1);
	ck_assert_int_eq(lk(NULL, p("out"), "unseal", "--key", p("keys/0001.key"), "-f", p("ss2"), NULL), 0);
	check_unsealed(p("out"));
	/* import the backup as key files; seal to its certificate; open with a directory
	 * holding the backup and an unrelated manifest */
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--import", p("bk.yaml"), "--out-dir", p("imported"), NULL), 0);
	ck_assert_int_eq(access(p("imported/0001.key"), R_OK), 0);
	ck_assert_int_eq(access(p("imported/0002.lk1"), R_OK), 0);
	ck_assert_int_eq(lk(NULL, p("ss3"), "seal", "-f", p("s.yaml"), "--cert", p("imported/0001.crt"), NULL), 0);
	ck_assert_int_eq(lk(NULL, p("ss4"), "seal", "-f", p("s.yaml"), "--envelope", "lk1", "--key-file",
			    p("imported/0002.lk1.pub"), NULL), 0);
	ck_assert_int_eq(mkdir(p("backups"), 0700), 0);
	ck_assert_int_eq(rename(p("bk.yaml"), p("backups/bk.yaml")), 0);
	t_write_file(p("backups/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", 0600);
	/* the published public halves next to the backup: read first, they must not hide the
	 * private keys of the backup */
	{
		char *crt = t_read_file(p("imported/0001.crt")), *pub = t_read_file(p("imported/0002.lk1.pub"));

		ck_assert_ptr_nonnull(crt);
		ck_assert_ptr_nonnull(pub);
		t_write_file(p("backups/0001.crt"), crt, 0644);
		t_write_file(p("backups/0002.lk1.pub"), pub, 0644);
		free(crt);
		free(pub);
	}
	ck_assert_int_eq(lk(NULL, p("out"), "unseal", "--key", p("backups"), "-f", p("ss3"), NULL), 0);
	check_unsealed(p("out"));
	ck_assert_int_eq(lk(NULL, p("out"), "unseal", "--key", p("backups"), "-f", p("ss4"), NULL), 0);
	check_unsealed(p("out"));
}
END_TEST

START_TEST(refusals_never_echo_plaintext)
{
	char *err;

	keygen(p("keys"));
	t_write_file(p("cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\ndata: {k: v}\n", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("cm.yaml"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "not Secret"));
	free(err);
	t_write_file(p("bad.yaml"), "kind: Secret\nmetadata: {name: a, namespace: b}\n"
		     "data:\n  password: PLAINTEXT-MARKER-4711!\n", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("bad.yaml"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "data.password"));
	ck_assert_ptr_nonnull(strstr(err, "base64"));
	ck_assert_ptr_null(strstr(err, "MARKER"));
	free(err);
	err = t_read_file(p("out"));
	ck_assert_ptr_null(strstr(err, "MARKER"));
	free(err);
	/* malformed JSON: jansson's "near '...'" would quote the value */
	t_write_file(p("bad.json"), "{\"kind\": \"Secret\", \"metadata\": {\"name\": \"a\", \"namespace\": \"b\"},"
		     " \"stringData\": {\"password\": \"MARKER-4711\" x}}\n", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("bad.json"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "bad.json:1:"));
	ck_assert_msg(strstr(err, "MARKER") == NULL, "%s", err);
	free(err);
	t_write_file(p("bad.json"), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
		     "\"stringData\":{\"password\":\"MARKER-4711\001\"}}", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("bad.json"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_msg(strstr(err, "MARKER") == NULL, "%s", err);
	free(err);
	/* strict scope without a namespace */
	t_write_file(p("nons.yaml"), "kind: Secret\nmetadata: {name: a}\nstringData: {k: v}\n", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("nons.yaml"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "strict scope needs a namespace"));
	free(err);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("nons.yaml"), "--cert", p("keys/0001.crt"),
			    "--scope", "cluster-wide", NULL), 0);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("nons.yaml"), "--cert", p("keys/0001.crt"),
			    "--namespace", "given", NULL), 0);
	/* a multi-document file is refused with its name and the document */
	t_write_file(p("two.yaml"), "kind: Secret\n---\nkind: Secret\n", 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "seal", "-f", p("two.yaml"), "--cert", p("keys/0001.crt"), NULL), 1);
	err = last_err();
	ck_assert_ptr_nonnull(strstr(err, "two.yaml:2:1: document 2"));
	free(err);
	/* usage errors */
	ck_assert_int_eq(lk(NULL, NULL, "seal", "-f", p("nons.yaml"), NULL), 2);
	ck_assert_int_eq(lk(NULL, NULL, "seal", "--scope", "everywhere", "--cert", p("keys/0001.crt"), NULL), 2);
	ck_assert_int_eq(lk(NULL, NULL, "seal", "--cert", p("missing.crt"), "-f", p("nons.yaml"), NULL), 1);
}
END_TEST

/* Rewrites dir/sealed with one substitution, then unseal must fail with a clear reason. */
static void
tamper_fails(const char *from, const char *to)
{
	char *text = t_read_file(p("sealed")), *hit, *out, *err;

	hit = strstr(text, from);
	ck_assert_msg(hit != NULL, "'%s' not in the sealed file", from);
	ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(hit - text), text, to, hit + strlen(from)), 0);
	t_write_file(p("moved"), out, 0600);
	ck_assert_int_eq(lk(NULL, p("out"), "unseal", "--key", p("keys"), "-f", p("moved"), NULL), 1);
	err = last_err();
	ck_assert_msg(strstr(err, "another scope") != NULL || strstr(err, "does not open") != NULL, "%s", err);
	ck_assert_ptr_null(strstr(err, "hunter2"));
	free(err);
	free(out);
	free(text);
}

START_TEST(moved_values_fail)
{
	keygen(p("keys"));
	t_write_file(p("s.yaml"), secret_yaml, 0600);
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"), NULL), 0);
	tamper_fails("  name: db\n  namespace: app\nspec", "  name: web\n  namespace: app\nspec");
	tamper_fails("  name: db\n  namespace: app\nspec", "  name: db\n  namespace: prod\nspec");
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"),
			    "--scope", "namespace-wide", NULL), 0);
	tamper_fails("  namespace: app\n  annotations", "  namespace: prod\n  annotations");
	tamper_fails("namespace-wide: \"true\"", "cluster-wide: \"true\"");
	/* lk1 strict binds the key too */
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--envelope", "lk1",
			    "--key-file", p("keys/0001.lk1.pub"), NULL), 0);
	tamper_fails("    password: lk1:", "    username: lk1:");
	tamper_fails("  name: db\n  namespace: app\nspec", "  name: dbx\n  namespace: app\nspec");
}
END_TEST

START_TEST(merge_into_keeps_other_keys)
{
	json_t *before, *after;
	char *bin_before;

	keygen(p("keys"));
	t_write_file(p("s.yaml"), secret_yaml, 0600);
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"), NULL), 0);
	before = load(p("sealed"));
	bin_before = strdup(get(before, "spec.encryptedData.binary"));
	t_write_file(p("upd.yaml"), "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\n"
		     "stringData: {password: rotated-pw, extra: added}\n", 0600);
	ck_assert_int_eq(lk(NULL, NULL, "seal", "-f", p("upd.yaml"), "--cert", p("keys/0001.crt"),
			    "--merge-into", p("sealed"), NULL), 0);
	after = load(p("sealed"));
	ck_assert_str_eq(get(after, "spec.encryptedData.binary"), bin_before);
	ck_assert_str_eq(get(after, "spec.encryptedData.port"), get(before, "spec.encryptedData.port"));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(after, "spec"), "encryptedData"), "cert.pem")),
			 json_string_value(json_object_get(json_object_get(json_object_get(before, "spec"), "encryptedData"), "cert.pem")));
	ck_assert_str_ne(get(after, "spec.encryptedData.password"), get(before, "spec.encryptedData.password"));
	ck_assert_ptr_nonnull(get(after, "spec.encryptedData.extra"));
	ck_assert_str_eq(get(after, "spec.template.metadata.annotations.team"), "payments");
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("sealed"), NULL), 0);
	{
		json_t *s = load(p("plain"));

		ck_assert_str_eq(get(s, "data.password"), "cm90YXRlZC1wdw==");
		ck_assert_str_eq(get(s, "data.extra"), "YWRkZWQ=");
		ck_assert_str_eq(get(s, "data.binary"), "AP8Q/w==");
		json_decref(s);
	}
	/* a Secret for another name is refused */
	t_write_file(p("other.yaml"), "kind: Secret\nmetadata: {name: web, namespace: app}\nstringData: {a: b}\n", 0600);
	ck_assert_int_eq(lk(NULL, NULL, "seal", "-f", p("other.yaml"), "--cert", p("keys/0001.crt"),
			    "--merge-into", p("sealed"), NULL), 1);
	free(bin_before);
	json_decref(before);
	json_decref(after);
}
END_TEST

START_TEST(rotation_and_reseal)
{
	json_t *a, *b;

	keygen(p("keys"));
	t_write_file(p("s.yaml"), secret_yaml, 0600);
	ck_assert_int_eq(lk(NULL, p("old"), "seal", "-f", p("s.yaml"), "--cert", p("keys/0001.crt"), NULL), 0);
	ck_assert_int_eq(lk(NULL, p("oldlk1"), "seal", "-f", p("s.yaml"), "--envelope", "lk1", "--key-file", p("keys/0001.lk1.pub"), NULL), 0);
	ck_assert_int_eq(lk(NULL, NULL, "keygen", "--rotate", p("keys"), "--key-size", "2048", NULL), 0);
	/* old values still open with the rotated directory */
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("old"), NULL), 0);
	check_unsealed(p("plain"));
	ck_assert_int_eq(lk(NULL, p("new"), "reseal", "--key", p("keys"), "-f", p("old"), NULL), 0);
	ck_assert_int_eq(lk(NULL, p("newlk1"), "reseal", "--key", p("keys"), "-f", p("oldlk1"), NULL), 0);
	a = load(p("old"));
	b = load(p("new"));
	ck_assert_str_ne(get(a, "spec.encryptedData.password"), get(b, "spec.encryptedData.password"));
	ck_assert_str_eq(get(a, "spec.template.metadata.annotations.team"), get(b, "spec.template.metadata.annotations.team"));
	json_decref(a);
	json_decref(b);
	/* only the new key opens the resealed files; only the old one the old */
	ck_assert_int_eq(mkdir(p("newonly"), 0700), 0);
	ck_assert_int_eq(rename(p("keys/0002.key"), p("newonly/0002.key")), 0);
	ck_assert_int_eq(rename(p("keys/0002.crt"), p("newonly/0002.crt")), 0);
	ck_assert_int_eq(rename(p("keys/0002.lk1"), p("newonly/0002.lk1")), 0);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("newonly"), "-f", p("new"), NULL), 0);
	check_unsealed(p("plain"));
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("newonly"), "-f", p("newlk1"), NULL), 0);
	check_unsealed(p("plain"));
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("newonly"), "-f", p("old"), NULL), 1);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("new"), NULL), 1);
}
END_TEST

START_TEST(raw_values)
{
	char *ct, *doc = NULL;

	keygen(p("keys"));
	t_write_file(p("pw"), "raw-secret\n", 0600);
	ck_assert_int_eq(lk(NULL, p("ct"), "seal", "--raw", "--cert", p("keys/0001.crt"), "--namespace", "app",
			    "--name", "db", "--from-file", p("pw"), NULL), 0);
	ct = t_read_file(p("ct"));
	ct[strcspn(ct, "\n")] = '\0';
	ck_assert_int_ge(asprintf(&doc, "{\"apiVersion\":\"bitnami.com/v1alpha1\",\"kind\":\"SealedSecret\","
				  "\"metadata\":{\"name\":\"db\",\"namespace\":\"app\"},"
				  "\"spec\":{\"encryptedData\":{\"pw\":\"%s\"}}}", ct), 0);
	t_write_file(p("ss.json"), doc, 0600);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("ss.json"), NULL), 0);
	{
		json_t *s = load(p("plain"));

		ck_assert_str_eq(get(s, "data.pw"), "cmF3LXNlY3JldAo=");
		json_decref(s);
	}
	free(ct);
	free(doc);
	/* lk1 strict binds the key name: KEY=PATH */
	ck_assert_int_eq(lk(p("pw"), p("ct"), "seal", "--raw", "--envelope", "lk1", "--key-file",
			    p("keys/0001.lk1.pub"), "--namespace", "app", "--name", "db", NULL), 1);
	ck_assert_int_eq(lk(NULL, p("ct"), "seal", "--raw", "--envelope", "lk1", "--key-file",
			    p("keys/0001.lk1.pub"), "--namespace", "app", "--name", "db",
			    "--from-file", "token=/dev/null", NULL), 0);
	ct = t_read_file(p("ct"));
	ck_assert_int_eq(strncmp(ct, "lk1:", 4), 0);
	ct[strcspn(ct, "\n")] = '\0';
	ck_assert_int_ge(asprintf(&doc, "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SealedSecret\","
				  "\"metadata\":{\"name\":\"db\",\"namespace\":\"app\"},"
				  "\"spec\":{\"encryptedData\":{\"token\":\"%s\"}}}", ct), 0);
	t_write_file(p("ss.json"), doc, 0600);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("ss.json"), NULL), 0);
	free(ct);
	free(doc);
}
END_TEST

START_TEST(cert_from_url)
{
	const char *argv[] = { "/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
			       "--directory", p("keys"), NULL };
	struct t_proc srv;
	char line[256], url[512], *err;
	const char *port;

	keygen(p("keys"));
	t_write_file(p("s.yaml"), secret_yaml, 0600);
	ck_assert_int_eq(t_spawn(&srv, argv, NULL, p("http.log")), 0);
	ck_assert_msg(t_wait_log(&srv, "Serving HTTP on", T_DEADLINE_MS, line, sizeof(line)), "no HTTP server");
	port = strstr(line, " port ");
	ck_assert_ptr_nonnull(port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/0001.crt", atoi(port + 6));
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", url, NULL), 0);
	ck_assert_int_eq(lk(NULL, p("plain"), "unseal", "--key", p("keys"), "-f", p("sealed"), NULL), 0);
	check_unsealed(p("plain"));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/missing.crt", atoi(port + 6));
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", url, NULL), 1);
	err = last_err();
	ck_assert_msg(strstr(err, "HTTP status 404") != NULL, "%s", err);
	free(err);
	/* a private key file served by mistake is not a certificate */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/0001.lk1.pub", atoi(port + 6));
	ck_assert_int_eq(lk(NULL, p("sealed"), "seal", "-f", p("s.yaml"), "--cert", url, NULL), 1);
	t_stop(&srv, SIGTERM, 5000);
}
END_TEST

/* A token assembled at run time, so that this source file does not trip the scanner. */
static char *
token(const char *prefix, const char *body)
{
	char *t = NULL;

	ck_assert_int_ge(asprintf(&t, "%s%s", prefix, body), 0);
	return t;
}

START_TEST(scan_finds_and_passes)
{
	char *aws = token("AKIA", "Q7X2M4PZ9RTL3KVW"), *gh = token("ghp_", "a8Kq2ZxP0rT5mW9yL3vB7nC1dF6gH4jS2eU8"),
	     *slack = token("xoxb-", "1234567890-abcdefGHIJKL"), *vault = token("hvs.", "CAESIJ3k9Xq2mZ7pL0rT5wY8vB1n"),
	     *text = NULL, *out, *err;

	ck_assert_int_eq(mkdir(p("repo"), 0700), 0);
	ck_assert_int_eq(mkdir(p("repo/sub"), 0700), 0);
	t_write_file(p("repo/secret.yaml"), "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData:\n  pw: hunter2\n", 0600);
	ck_assert_int_ge(asprintf(&text, "# config\naws_key = %s\ngithub = \"%s\"\n", aws, gh), 0);
	t_write_file(p("repo/sub/app.env"), text, 0600);
	free(text);
	ck_assert_int_ge(asprintf(&text, "slack: %s\nvault: %s\nplaceholder: AKIAXXXXXXXXXXXXXXXX\n", slack, vault), 0);
	t_write_file(p("repo/sub/tokens.txt"), text, 0600);
	free(text);
	t_write_file(p("repo/key.pem"), "-----BEGIN " "RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n", 0600);
	/* these pass */
	t_write_file(p("repo/sealed.yaml"), "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"
		     "metadata: {name: a}\nspec:\n  encryptedData: {pw: AgBy3i4OJSWK+PiTySYZZA==}\n", 0600);
	/* well-formed lk1 envelopes (version 1, 57 bytes), as text and in base64 */
	t_write_file(p("repo/encrypted-at-source.yaml"), "kind: Secret\nmetadata: {name: a}\n"
		     "stringData: {pw: \"lk1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5\"}\n"
		     "data: {x: bGsxOkFRSURCQVVHQndnSkNnc01EUTRQRUJFU0V4UVZGaGNZR1JvYkhCMGVIeUFoSWlNa0pTWW5LQ2txS3l3dExpOHdNVEl6TkRVMk56ZzU=}\n", 0600);
	/* what kubectl accepts but the strict manifest reader refuses: aliases, repeated keys */
	t_write_file(p("repo/alias.yaml"), "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n"
		     "  labels: &l {app: x}\n  annotations: *l\nstringData:\n  pw: hunter2\n", 0600);
	t_write_file(p("repo/dup.yaml"), "kind: Secret\nmetadata: {name: a}\nstringData:\n"
		     "  pw: \"lk1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5\"\n"
		     "stringData:\n  pw: hunter2\n", 0600);
	t_write_file(p("repo/dup.json"), "{\"kind\": \"Secret\", \"metadata\": {\"name\": \"a\"},\n"
		     " \"data\": {\"pw\": \"aHVudGVyMg==\", \"pw\": \"bGsxOkFRSURCQVVHQndnSkNnc01EUTRQRUJFU0V4UVZGaGNZR1JvYkhCMGVIeUFoSWlNa0pTWW5LQ2txS3l3dExpOHdNVEl6TkRVMk56ZzU=\"}}\n", 0600);
	/* "lk1:" in front of a plain value is not ciphertext */
	t_write_file(p("repo/fake-lk1.yaml"), "kind: Secret\nmetadata: {name: a}\n"
		     "stringData: {pw: \"lk1:hunter2\"}\n", 0600);
	/* a real key right after AWS's documented example key, or after a placeholder */
	ck_assert_int_ge(asprintf(&text, "keys: AKIAIOSFODNN7EXAMPLE,%s\nk=AKIAXXXXXXXXXXXXXXXX %s\n", aws, aws), 0);
	t_write_file(p("repo/sub/two.txt"), text, 0600);
	free(text);
	t_write_file(p("repo/docs.md"), "Example: s.abc and hvs.short and the word Secret.\n", 0600);
	ck_assert_int_eq(lk(NULL, p("scan.out"), "scan", p("repo"), NULL), 1);
	out = t_read_file(p("scan.out"));
	ck_assert_msg(strstr(out, "/repo/secret.yaml:4: kind: Secret with plaintext stringData") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/app.env:2: AWS access key id\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/app.env:3: GitHub token\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/tokens.txt:1: Slack token\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/tokens.txt:2: Vault token\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/key.pem:1: private key PEM block\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/fake-lk1.yaml:3: kind: Secret with plaintext stringData") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/alias.yaml:7: kind: Secret with plaintext stringData") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/dup.yaml:5: kind: Secret with plaintext stringData") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "/repo/dup.yaml:3:"));
	ck_assert_msg(strstr(out, "/repo/dup.json:2: kind: Secret with plaintext data") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/two.txt:1: AWS access key id\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "/repo/sub/two.txt:2: AWS access key id\n") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "tokens.txt:3"));
	ck_assert_ptr_null(strstr(out, "sealed.yaml"));
	ck_assert_ptr_null(strstr(out, "encrypted-at-source.yaml"));
	ck_assert_ptr_null(strstr(out, "docs.md"));
	/* the secret itself never appears */
	ck_assert_ptr_null(strstr(out, aws));
	ck_assert_ptr_null(strstr(out, gh));
	ck_assert_ptr_null(strstr(out, "hunter2"));
	err = last_err();
	ck_assert_ptr_null(strstr(err, aws));
	free(err);
	free(out);
	/* clean paths */
	ck_assert_int_eq(lk(NULL, p("scan.out"), "scan", p("repo/sealed.yaml"), p("repo/docs.md"),
			    p("repo/encrypted-at-source.yaml"), NULL), 0);
	/* usage and read errors */
	ck_assert_int_eq(lk(NULL, NULL, "scan", "--bogus", NULL), 2);
	ck_assert_int_eq(lk(NULL, NULL, "scan", p("missing"), NULL), 2);
	free(aws);
	free(gh);
	free(slack);
	free(vault);
}
END_TEST

static int
git(const char *repo, ...)
{
	const char *argv[20];
	size_t n = 0;
	va_list ap;

	argv[n++] = "/usr/bin/git";
	argv[n++] = "-C";
	argv[n++] = repo;
	va_start(ap, repo);
	while (n < 19 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_io(argv, NULL, NULL, p("git.err"), NULL);
}

START_TEST(scan_staged_and_hook)
{
	const char *repo = p("repo");
	char *gh = token("ghp_", "a8Kq2ZxP0rT5mW9yL3vB7nC1dF6gH4jS2eU8"), *text = NULL, *out, *env_bin = NULL;
	char hook[1024];
	int r;

	if (access("/usr/bin/git", X_OK) != 0)
		ck_abort_msg("git is needed for --staged");
	ck_assert_int_eq(mkdir(repo, 0700), 0);
	ck_assert_int_eq(git(repo, "init", "-q", NULL), 0);
	ck_assert_int_eq(git(repo, "config", "user.email", "t@example.invalid", NULL), 0);
	ck_assert_int_eq(git(repo, "config", "user.name", "t", NULL), 0);
	t_write_file(p("repo/clean.txt"), "nothing here\n", 0600);
	ck_assert_int_eq(git(repo, "add", "clean.txt", NULL), 0);
	ck_assert_int_ge(asprintf(&text, "token: %s\n", gh), 0);
	t_write_file(p("repo/app.cfg"), text, 0600);
	ck_assert_int_eq(git(repo, "add", "app.cfg", NULL), 0);
	/* the working tree is clean again, but the index is not: --staged reads the index */
	t_write_file(p("repo/app.cfg"), "token: from-env\n", 0600);
	{
		const char *argv[] = { t_latchkey_bin(), "scan", "--staged", NULL };
		pid_t pid = fork();
		int status;

		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int fd = open(p("staged.out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

			dup2(fd, 1);
			fd = open(p("staged.err"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(fd, 2);
			if (chdir(repo) < 0)
				_exit(126);
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 1);
	}
	out = t_read_file(p("staged.out"));
	ck_assert_msg(strstr(out, "app.cfg:1: GitHub token") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(out, "clean.txt"));
	ck_assert_ptr_null(strstr(out, gh));
	free(out);
	/* the hook blocks the commit */
	{
		const char *argv[] = { "/bin/sh", "tools/pre-commit", "install", repo, NULL };

		ck_assert_int_eq(run_io(argv, NULL, NULL, p("install.err"), NULL), 0);
	}
	snprintf(hook, sizeof(hook), "%s/.git/hooks/pre-commit", repo);
	ck_assert_int_eq(access(hook, X_OK), 0);
	ck_assert_int_ge(asprintf(&env_bin, "LATCHKEY=%s", t_latchkey_bin()), 0);
	{
		const char *argv[] = { "/usr/bin/git", "-C", repo, "commit", "-q", "-m", "x", NULL };
		const char *env[] = { env_bin, NULL };

		r = run_io(argv, NULL, NULL, p("commit.err"), env);
		ck_assert_int_ne(r, 0);
		out = t_read_file(p("commit.err"));
		ck_assert_msg(strstr(out, "commit blocked") != NULL, "%s", out);
		free(out);
		/* once the staged file is clean, the commit goes through */
		ck_assert_int_eq(git(repo, "add", "app.cfg", NULL), 0);
		r = run_io(argv, NULL, NULL, p("commit.err"), env);
		ck_assert_int_eq(r, 0);
	}
	free(env_bin);
	free(text);
	free(gh);
}
END_TEST

static Suite *
seal_cli_suite(void)
{
	Suite *s = suite_create("seal_cli");
	TCase *tc = tcase_create("cli");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, keygen_files_modes_rotation);
	tcase_add_test(tc, default_key_is_rsa4096);
	tcase_add_test(tc, round_trip_all_scopes_both_formats);
	tcase_add_test(tc, template_and_compat);
	tcase_add_test(tc, refusals_never_echo_plaintext);
	tcase_add_test(tc, moved_values_fail);
	tcase_add_test(tc, merge_into_keeps_other_keys);
	tcase_add_test(tc, rotation_and_reseal);
	tcase_add_test(tc, raw_values);
	tcase_add_test(tc, cert_from_url);
	tcase_add_test(tc, scan_finds_and_passes);
	tcase_add_test(tc, scan_staged_and_hook);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(seal_cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
