/* check_bitnami.c — latchkey's Bitnami sealed-secrets format judged by an independent
 * implementation: tests/interop/bitnami.py (Python `cryptography`, written from the
 * format's description, not from latchkey's code).
 *
 * Each side seals and the other opens the exact bytes (binary, empty and 64 KiB values) in
 * all three scopes; a copy moved to another name or namespace, an altered byte and bent
 * scope annotations fail, or open, alike in both; key Secrets pass from one to the other;
 * the certificates look like the controller's. Where /usr/bin/python3 or its
 * cryptography module is missing every test says SKIP, never passes.
 *
 * The RSA keys are made once per run, in the parent (an unchecked fixture): RSA-2048 where
 * the size does not matter, one RSA-4096 pair for the controller's default size. Each
 * test's files go in a directory inside the run's, which the parent removes, so a test
 * that fails (its forked child exits before the checked teardown) leaves nothing behind. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* The Debian interpreter, which sees python3-cryptography (the first python3 on PATH may
 * not). */
#define PYTHON "/usr/bin/python3"
/* The large value: a Secret holds up to 1 MiB; 64 KiB is well past any single buffer. */
#define BIG_VALUE_BYTES (64u * 1024)
/* AES-GCM's tag, appended to the ciphertext. */
#define GCM_TAG_BYTES 16
/* The longest argv a helper builds. */
#define ARGV_MAX 40
/* How much of a tool's stderr goes into a failure message. */
#define ERR_TEXT_MAX 4096

static const char *const scopes[] = { "strict", "namespace-wide", "cluster-wide" };
static const char *const scope_annotation[] = {
	NULL, "sealedsecrets.bitnami.com/namespace-wide", "sealedsecrets.bitnami.com/cluster-wide",
};

/* Set once by the unchecked fixture, in the parent, before the tests fork. */
static char run_dir[1024];       /* the keys below, and one directory per test */
static char script[1100];
static char skip_why[512];       /* non-empty: every test says SKIP with this */
static char setup_failed[ERR_TEXT_MAX + 256]; /* non-empty: every test fails with this */
static bool have_yaml;           /* python3-yaml, for the YAML key Secret */

static char *dir;                /* this test's directory, inside run_dir */

/* ---- processes -------------------------------------------------------------------- */

static const char *
p(const char *name)
{
	return t_path(dir, name);
}

/* The run's shared files: py/ (Python, RSA-2048), py4096/, lk/ + lk-key.json (latchkey
 * keygen, RSA-2048, with its key Secret), lky/ + lk-key.yaml (the same in YAML). */
static const char *
shared(const char *name)
{
	return t_path(run_dir, name);
}

/* Runs prefix (NULL-terminated) then the varargs (NULL-terminated): stdin from in (NULL:
 * /dev/null), stdout to out (NULL: discarded), stderr to err. Returns the exit status,
 * -1 when the process did not exit normally. */
static int
run_va(const char *const prefix[], const char *in, const char *out, const char *err, va_list ap)
{
	const char *argv[ARGV_MAX];
	size_t n = 0;

	for (; prefix[n] != NULL; n++)
		argv[n] = prefix[n];
	while (n < ARGV_MAX - 1 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	ck_assert_msg(n < ARGV_MAX - 1, "argv too long");
	argv[n] = NULL;
	return t_run(argv, NULL, in, out, err);
}

/* bitnami.py ARGS... NULL; its stderr in dir/py.err. */
static int
py(const char *in, const char *out, ...)
{
	const char *const prefix[] = { PYTHON, script, NULL };
	va_list ap;
	int rc;

	va_start(ap, out);
	rc = run_va(prefix, in, out, p("py.err"), ap);
	va_end(ap);
	return rc;
}

/* latchkey ARGS... NULL; its stderr in dir/lk.err. */
static int
lk(const char *in, const char *out, ...)
{
	const char *const prefix[] = { t_latchkey_bin(), NULL };
	va_list ap;
	int rc;

	va_start(ap, out);
	rc = run_va(prefix, in, out, p("lk.err"), ap);
	va_end(ap);
	return rc;
}

/* The first ERR_TEXT_MAX bytes of a file, for failure messages ("" when unreadable). */
static const char *
text_of(const char *path)
{
	static char buf[ERR_TEXT_MAX + 1];
	char *text = t_read_file(path);

	snprintf(buf, sizeof(buf), "%s", text != NULL ? text : "");
	free(text);
	return buf;
}

/* ---- the run's keys (unchecked fixture, in the parent) ------------------------------ */

/* Runs argv with stderr to run_dir/setup.err; on failure records why in setup_failed. */
static bool
setup_step(const char *what, const char *const argv[])
{
	char err[1100];
	int rc;

	snprintf(err, sizeof(err), "%s/setup.err", run_dir);
	rc = t_run(argv, NULL, NULL, NULL, err);
	if (rc != 0)
		snprintf(setup_failed, sizeof(setup_failed), "%s: exit %d: %s", what, rc, text_of(err));
	return rc == 0;
}

static void
run_setup(void)
{
	const char *src = getenv("LATCHKEY_SRCDIR");
	const char *probe_crypto[] = { PYTHON, "-c", "import cryptography.hazmat.primitives.ciphers.aead", NULL };
	const char *probe_yaml[] = { PYTHON, "-c", "import yaml", NULL };
	char *tmp = t_tmpdir();
	char py2048[1100], py4096[1100], lkdir[1100], lkman[1100], lkydir[1100], lkyman[1100];

	if (tmp == NULL) {
		snprintf(setup_failed, sizeof(setup_failed), "cannot make a temporary directory: %s",
			 strerror(errno));
		return;
	}
	snprintf(run_dir, sizeof(run_dir), "%s", tmp);
	free(tmp);
	snprintf(script, sizeof(script), "%s/tests/interop/bitnami.py", src != NULL ? src : ".");
	if (access(PYTHON, X_OK) != 0) {
		snprintf(skip_why, sizeof(skip_why), PYTHON " not found: the independent Bitnami "
			 "implementation did not run (tools/deps.sh installs python3-cryptography)");
		return;
	}
	if (t_run(probe_crypto, NULL, NULL, NULL, NULL) != 0) {
		snprintf(skip_why, sizeof(skip_why), PYTHON " has no cryptography module: the "
			 "independent Bitnami implementation did not run (python3-cryptography)");
		return;
	}
	if (access(script, R_OK) != 0) {
		snprintf(setup_failed, sizeof(setup_failed), "%s not found (run from the source tree "
			 "or set LATCHKEY_SRCDIR)", script);
		return;
	}
	have_yaml = t_run(probe_yaml, NULL, NULL, NULL, NULL) == 0;
	snprintf(py2048, sizeof(py2048), "%s/py", run_dir);
	snprintf(py4096, sizeof(py4096), "%s/py4096", run_dir);
	snprintf(lkdir, sizeof(lkdir), "%s/lk", run_dir);
	snprintf(lkman, sizeof(lkman), "%s/lk-key.json", run_dir);
	snprintf(lkydir, sizeof(lkydir), "%s/lky", run_dir);
	snprintf(lkyman, sizeof(lkyman), "%s/lk-key.yaml", run_dir);
	{
		const char *a[] = { PYTHON, script, "keygen", "--out-dir", py2048, "--bits", "2048",
				    "--namespace", "sealing", NULL };
		const char *b[] = { PYTHON, script, "keygen", "--out-dir", py4096, NULL };
		const char *c[] = { t_latchkey_bin(), "keygen", "--out-dir", lkdir, "--key-size", "2048",
				    "--secret-manifest", lkman, "--namespace", "sealing", NULL };
		const char *d[] = { t_latchkey_bin(), "keygen", "--out-dir", lkydir, "--key-size", "2048",
				    "--secret-manifest", lkyman, NULL };

		(void)(setup_step("bitnami.py keygen --bits 2048", a) &&
		       setup_step("bitnami.py keygen (RSA-4096)", b) &&
		       setup_step("latchkey keygen --secret-manifest JSON", c) &&
		       setup_step("latchkey keygen --secret-manifest YAML", d));
	}
}

static void
run_teardown(void)
{
	if (run_dir[0] != '\0')
		t_rmrf(run_dir);
	run_dir[0] = '\0';
}

/* Each test starts here: false (after a SKIP line) when the tools are missing. */
static bool
ready(const char *test)
{
	if (skip_why[0] != '\0') {
		t_skip("%s: %s", test, skip_why);
		return false;
	}
	ck_assert_msg(setup_failed[0] == '\0', "suite setup failed: %s", setup_failed);
	return true;
}

static void
setup(void)
{
	char path[1100];

	dir = NULL;
	if (run_dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/test.XXXXXX", run_dir);
	ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp: %s", strerror(errno));
	dir = strdup(path);
	ck_assert_ptr_nonnull(dir);
}

static void
teardown(void)
{
	if (dir != NULL)
		t_rmrf(dir);
	free(dir);
	dir = NULL;
}

/* ---- values, base64 and JSON -------------------------------------------------------- */

struct value {
	const char *key;
	unsigned char *bytes;
	size_t len;
	bool string_data;   /* given in stringData (plain text) instead of data (base64) */
};

static struct value values[4];
static const size_t nvalues = sizeof(values) / sizeof(values[0]);

/* The values every Secret here holds: bytes that are not UTF-8 (all 256 byte values, an
 * overlong NUL, a lone surrogate), an empty value, 64 KiB of pseudo-random bytes and a
 * UTF-8 text given in stringData. */
static void
make_values(void)
{
	static unsigned char binary[256 + 5], big[BIG_VALUE_BYTES];
	static const unsigned char tail[] = { 0xc0, 0x80, 0xed, 0xa0, 0x80 };
	static char text[] = "p@ss w0rd \xe2\x9c\x93 \"quoted\"\n";
	uint32_t x = 0x9e3779b9u;

	for (size_t i = 0; i < 256; i++)
		binary[i] = (unsigned char)(255 - i);
	memcpy(binary + 256, tail, sizeof(tail));
	for (size_t i = 0; i < sizeof(big); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		big[i] = (unsigned char)x;
	}
	values[0] = (struct value){ "binary", binary, sizeof(binary), false };
	values[1] = (struct value){ "empty", (unsigned char *)"", 0, false };
	values[2] = (struct value){ "big", big, sizeof(big), false };
	values[3] = (struct value){ "text", (unsigned char *)text, strlen(text), true };
}

/* Standard padded base64; owned: free(). */
static char *
b64_encode(const unsigned char *raw, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	ck_assert_ptr_nonnull(out);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)len);
	return out;
}

/* Decodes standard padded base64 (OpenSSL, not latchkey's code); NULL when malformed.
 * Owned: free(). */
static unsigned char *
b64_decode(const char *text, size_t *ret_len)
{
	size_t n;
	unsigned char *out;
	int r;

	ck_assert_msg(text != NULL, "a base64 value is missing");
	n = strlen(text);
	out = malloc(n / 4 * 3 + 4);
	ck_assert_ptr_nonnull(out);
	if (n % 4 != 0 || (r = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n)) < 0) {
		free(out);
		return NULL;
	}
	if (n > 0 && text[n - 1] == '=')
		r--;
	if (n > 1 && text[n - 2] == '=')
		r--;
	*ret_len = (size_t)r;
	return out;
}

/* root[k1][k2]... (NULL-terminated keys), or NULL. Borrowed. */
static json_t *
at(json_t *root, ...)
{
	const char *k;
	va_list ap;

	va_start(ap, root);
	while (root != NULL && (k = va_arg(ap, const char *)) != NULL)
		root = json_object_get(root, k);
	va_end(ap);
	return root;
}

/* obj[key], made an empty object when missing. Borrowed. */
static json_t *
child(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);

	if (c == NULL) {
		c = json_object();
		ck_assert_int_eq(json_object_set_new(obj, key, c), 0);
	}
	return c;
}

static json_t *
load(const char *path)
{
	json_error_t e;
	json_t *root = json_load_file(path, 0, &e);

	ck_assert_msg(root != NULL, "%s: not JSON: %s (line %d)", path, e.text, e.line);
	return root;
}

static void
save(const json_t *root, const char *path)
{
	ck_assert_int_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
}

/* base64 of raw broken into lines of width characters by eol, as base64(1) prints it and
 * a YAML literal block keeps it; owned: free(). */
static char *
b64_encode_lines(const unsigned char *raw, size_t len, size_t width, const char *eol)
{
	char *flat = b64_encode(raw, len), *out;
	size_t n = strlen(flat), o = 0;

	out = malloc(n + (n / width + 1) * strlen(eol) + 1);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < n; i += width) {
		size_t k = n - i < width ? n - i : width;

		memcpy(out + o, flat + i, k);
		o += k;
		memcpy(out + o, eol, strlen(eol));
		o += strlen(eol);
	}
	out[o] = '\0';
	free(flat);
	return out;
}

/* The Secret the tests seal, written to path. Its metadata carries what kubeseal must not
 * copy into the template (the last-applied annotation, which holds the plaintext, and
 * ownerReferences); annotation: a scope annotation set to "true" on it (NULL: none);
 * eol: when not NULL, the data values are broken into 76-character lines by it. */
static const char *
write_secret_as(const char *path, const char *annotation, const char *eol)
{
	json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s, s:s}, s:[{s:s, s:s, s:s, s:s}]}, s:s}",
			      "apiVersion", "v1", "kind", "Secret",
			      "metadata", "name", "db", "namespace", "app", "labels", "app", "db",
			      "annotations", "team", "payments",
			      "kubectl.kubernetes.io/last-applied-configuration", "{\"stringData\":{\"text\":\"p@ss\"}}",
			      "ownerReferences", "apiVersion", "v1", "kind", "ConfigMap", "name", "owner", "uid", "1",
			      "type", "Opaque");
	json_t *data = json_object(), *string_data = json_object();

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < nvalues; i++) {
		if (values[i].string_data) {
			json_object_set_new(string_data, values[i].key,
					    json_stringn((const char *)values[i].bytes, values[i].len));
		} else {
			char *b = eol != NULL ? b64_encode_lines(values[i].bytes, values[i].len, 76, eol)
					      : b64_encode(values[i].bytes, values[i].len);

			json_object_set_new(data, values[i].key, json_string(b));
			free(b);
		}
	}
	json_object_set_new(s, "data", data);
	json_object_set_new(s, "stringData", string_data);
	if (annotation != NULL)
		json_object_set_new(at(s, "metadata", "annotations", NULL), annotation, json_string("true"));
	save(s, path);
	json_decref(s);
	return path;
}

/* The plain Secret: dir/secret.json. */
static const char *
write_secret(void)
{
	return write_secret_as(p("secret.json"), NULL, NULL);
}

/* An unsealed Secret holds exactly the values, byte for byte, under name/namespace. */
static void
check_secret(const char *path, const char *name, const char *ns, const char *what)
{
	json_t *s = load(path), *data = at(s, "data", NULL);

	ck_assert_msg(json_is_object(data), "%s: no data", what);
	ck_assert_str_eq(json_string_value(at(s, "kind", NULL)), "Secret");
	ck_assert_msg(json_string_value(at(s, "metadata", "name", NULL)) != NULL &&
		      strcmp(json_string_value(at(s, "metadata", "name", NULL)), name) == 0,
		      "%s: metadata.name is not %s", what, name);
	ck_assert_msg(json_string_value(at(s, "metadata", "namespace", NULL)) != NULL &&
		      strcmp(json_string_value(at(s, "metadata", "namespace", NULL)), ns) == 0,
		      "%s: metadata.namespace is not %s", what, ns);
	ck_assert_msg(json_object_size(data) == nvalues, "%s: %zu values, not %zu", what,
		      json_object_size(data), nvalues);
	for (size_t i = 0; i < nvalues; i++) {
		const char *b = json_string_value(json_object_get(data, values[i].key));
		unsigned char *raw;
		size_t n = 0;

		ck_assert_msg(b != NULL, "%s: value %s missing", what, values[i].key);
		raw = b64_decode(b, &n);
		ck_assert_msg(raw != NULL, "%s: value %s is not base64", what, values[i].key);
		ck_assert_msg(n == values[i].len && memcmp(raw, values[i].bytes, n) == 0,
			      "%s: value %s differs (%zu bytes, expected %zu)", what, values[i].key, n,
			      values[i].len);
		free(raw);
	}
	json_decref(s);
}

/* Every encryptedData value is BE16(modulus bytes) || RSA || value || 16-byte tag. */
static void
check_blobs(const char *path, size_t modulus_bytes, const char *what)
{
	json_t *ss = load(path), *enc = at(ss, "spec", "encryptedData", NULL);

	ck_assert_msg(json_object_size(enc) == nvalues, "%s: %zu values sealed, not %zu", what,
		      json_object_size(enc), nvalues);
	for (size_t i = 0; i < nvalues; i++) {
		const char *b = json_string_value(json_object_get(enc, values[i].key));
		unsigned char *blob;
		size_t n = 0;

		ck_assert_msg(b != NULL, "%s: %s not sealed", what, values[i].key);
		blob = b64_decode(b, &n);
		ck_assert_msg(blob != NULL, "%s: %s is not standard base64", what, values[i].key);
		ck_assert_msg(n == 2 + modulus_bytes + values[i].len + GCM_TAG_BYTES,
			      "%s: %s is %zu bytes, not 2 + %zu + %zu + 16", what, values[i].key, n,
			      modulus_bytes, values[i].len);
		ck_assert_msg(blob[0] == modulus_bytes >> 8 && blob[1] == (modulus_bytes & 0xff),
			      "%s: %s length prefix %02x %02x", what, values[i].key, blob[0], blob[1]);
		free(blob);
	}
	json_decref(ss);
}

/* The SealedSecret's envelope: apiVersion, name, namespace, and the scope annotation
 * (exactly "true", none for strict) on its metadata. */
static void
check_sealed(const char *path, const char *api, size_t scope, const char *what)
{
	json_t *ss = load(path), *ann = at(ss, "metadata", "annotations", NULL);

	ck_assert_str_eq(json_string_value(at(ss, "apiVersion", NULL)), api);
	ck_assert_str_eq(json_string_value(at(ss, "kind", NULL)), "SealedSecret");
	ck_assert_str_eq(json_string_value(at(ss, "metadata", "name", NULL)), "db");
	ck_assert_str_eq(json_string_value(at(ss, "metadata", "namespace", NULL)), "app");
	for (size_t i = 1; i < 3; i++) {
		const char *v = json_string_value(json_object_get(ann, scope_annotation[i]));

		if (i == scope)
			ck_assert_msg(v != NULL && strcmp(v, "true") == 0, "%s: %s is not \"true\"", what,
				      scope_annotation[i]);
		else
			ck_assert_msg(v == NULL, "%s: %s is set in %s scope", what, scope_annotation[i],
				      scopes[scope]);
	}
	json_decref(ss);
}

/* kubeseal's template: labels, annotations but the last-applied one, type; no
 * ownerReferences. */
static void
check_template(const char *path, const char *what)
{
	json_t *ss = load(path), *meta = at(ss, "spec", "template", "metadata", NULL);

	ck_assert_msg(json_is_object(meta), "%s: no spec.template.metadata", what);
	ck_assert_str_eq(json_string_value(at(meta, "name", NULL)), "db");
	ck_assert_str_eq(json_string_value(at(meta, "namespace", NULL)), "app");
	ck_assert_str_eq(json_string_value(at(meta, "labels", "app", NULL)), "db");
	ck_assert_str_eq(json_string_value(at(meta, "annotations", "team", NULL)), "payments");
	ck_assert_msg(at(meta, "annotations", "kubectl.kubernetes.io/last-applied-configuration", NULL) == NULL,
		      "%s: the last-applied annotation (plaintext) is in the template", what);
	ck_assert_msg(at(meta, "ownerReferences", NULL) == NULL, "%s: ownerReferences copied", what);
	ck_assert_str_eq(json_string_value(at(ss, "spec", "template", "type", NULL)), "Opaque");
	ck_assert_msg(at(ss, "spec", "data", NULL) == NULL, "%s: the deprecated spec.data", what);
	json_decref(ss);
}

/* ---- the two implementations, side by side ------------------------------------------ */

enum sealer { BY_PYTHON, BY_LATCHKEY };
static const char *const sealer_name[] = { "bitnami.py", "latchkey" };

/* Seals dir/secret.json to cert in scope with one implementation (Bitnami's apiVersion)
 * into out. */
static void
seal_with(enum sealer who, const char *cert, size_t scope, const char *out)
{
	const char *in = write_secret();
	int rc;

	if (who == BY_PYTHON)
		rc = py(in, out, "seal", "--cert", cert, "--scope", scopes[scope], NULL);
	else
		rc = lk(NULL, out, "seal", "-f", in, "--cert", cert, "--scope", scopes[scope],
			"--compat", "sealed-secrets", "--format", "json", NULL);
	ck_assert_msg(rc == 0, "%s seal (%s scope) exit %d: %s", sealer_name[who], scopes[scope], rc,
		      text_of(p(who == BY_PYTHON ? "py.err" : "lk.err")));
}

/* Opens sealed with both implementations, both with the Python key pair in py/ (latchkey
 * through its key Secret). should_open: both open it and the Secret holds the exact values
 * under name/namespace; else both refuse it (exit 1, not a crash), naming no value. The
 * judge's verdict is checked first: a case it gets wrong is a bug in the test. */
static void
open_both(const char *sealed, bool should_open, const char *name, const char *ns, const char *what)
{
	int lk_rc, py_rc;

	lk_rc = lk(NULL, p("lk.out"), "unseal", "--key", shared("py/key-secret.json"), "-f", sealed,
		   "--format", "json", NULL);
	py_rc = py(sealed, p("py.out"), "unseal", "--key", shared("py/tls.key"), NULL);
	if (should_open) {
		ck_assert_msg(py_rc == 0, "%s: bitnami.py unseal: exit %d: %s", what, py_rc, text_of(p("py.err")));
		check_secret(p("py.out"), name, ns, "bitnami.py unseal");
		ck_assert_msg(lk_rc == 0, "%s: bitnami.py opens it, latchkey unseal does not (exit %d): %s", what,
			      lk_rc, text_of(p("lk.err")));
		check_secret(p("lk.out"), name, ns, "latchkey unseal");
	} else {
		ck_assert_msg(py_rc == 1, "%s: bitnami.py unseal: exit %d (expected a refusal): %s", what, py_rc,
			      text_of(p("py.err")));
		ck_assert_msg(strstr(text_of(p("py.err")), "does not open") != NULL,
			      "%s: bitnami.py: unclear message: %s", what, text_of(p("py.err")));
		ck_assert_msg(lk_rc == 1, "%s: latchkey unseal opened it (exit %d); Bitnami's controller "
			      "would not", what, lk_rc);
		ck_assert_msg(strstr(text_of(p("lk.err")), "p@ss") == NULL, "%s: latchkey: a value in the "
			      "message", what);
	}
}

/* Sets metadata (and the template's, as whoever copies a manifest would) name/namespace. */
static void
move_to(json_t *ss, const char *ns, const char *name)
{
	json_t *meta = child(ss, "metadata"), *tmeta = child(child(child(ss, "spec"), "template"), "metadata");

	json_object_set_new(meta, "namespace", json_string(ns));
	json_object_set_new(meta, "name", json_string(name));
	json_object_set_new(tmeta, "namespace", json_string(ns));
	json_object_set_new(tmeta, "name", json_string(name));
}

/* ---- tests -------------------------------------------------------------------------- */

/* Python seals with its own certificate; latchkey opens it with the Python key Secret
 * and with the PEM key. */
START_TEST(python_seals_latchkey_opens)
{
	char what[128];

	if (!ready("python_seals_latchkey_opens"))
		return;
	snprintf(what, sizeof(what), "bitnami.py seal, %s scope", scopes[_i]);
	seal_with(BY_PYTHON, shared("py/tls.crt"), (size_t)_i, p("sealed.json"));
	check_sealed(p("sealed.json"), "bitnami.com/v1alpha1", (size_t)_i, what);
	check_template(p("sealed.json"), what);
	check_blobs(p("sealed.json"), 256, what);
	/* the judge agrees with itself */
	ck_assert_msg(py(p("sealed.json"), p("self.json"), "unseal", "--key", shared("py/tls.key"), NULL) == 0,
		      "%s: bitnami.py does not open its own: %s", what, text_of(p("py.err")));
	check_secret(p("self.json"), "db", "app", what);

	ck_assert_msg(lk(NULL, p("a.json"), "unseal", "--key", shared("py/key-secret.json"), "-f",
			 p("sealed.json"), "--format", "json", NULL) == 0,
		      "%s: latchkey unseal --key key-secret.json: %s", what, text_of(p("lk.err")));
	check_secret(p("a.json"), "db", "app", "latchkey unseal --key key-secret.json");
	ck_assert_msg(lk(NULL, p("b.json"), "unseal", "--key", shared("py/tls.key"), "-f",
			 p("sealed.json"), "--format", "json", NULL) == 0,
		      "%s: latchkey unseal --key tls.key: %s", what, text_of(p("lk.err")));
	check_secret(p("b.json"), "db", "app", "latchkey unseal --key tls.key");

	/* YAML, as kubeseal -o yaml writes it (long values folded over lines by PyYAML) */
	if (!have_yaml) {
		t_skip("python_seals_latchkey_opens: " PYTHON " has no yaml module: no YAML SealedSecret "
		       "was read by latchkey (python3-yaml)");
		return;
	}
	ck_assert_msg(py(p("secret.json"), p("sealed.yaml"), "seal", "--cert", shared("py/tls.crt"), "--scope",
			 scopes[_i], "--format", "yaml", NULL) == 0, "%s --format yaml: %s", what, text_of(p("py.err")));
	ck_assert_msg(lk(NULL, p("c.json"), "unseal", "--key", shared("py/tls.key"), "-f", p("sealed.yaml"),
			 "--format", "json", NULL) == 0,
		      "%s: latchkey unseal of YAML: %s", what, text_of(p("lk.err")));
	check_secret(p("c.json"), "db", "app", "latchkey unseal of a YAML SealedSecret");
}
END_TEST

/* Without --scope both take the scope from the Secret's own annotations; the template
 * keeps them (kubeseal copies the Secret's metadata). */
START_TEST(scope_from_secret_annotations)
{
	if (!ready("scope_from_secret_annotations"))
		return;
	for (int who = BY_PYTHON; who <= BY_LATCHKEY; who++) {
		const char *in = write_secret_as(p("annotated.json"), scope_annotation[_i], NULL);
		char what[256];
		json_t *ss;
		int rc;

		snprintf(what, sizeof(what), "%s seal, no --scope, Secret annotated %s", sealer_name[who],
			 scope_annotation[_i] ? scope_annotation[_i] : "(nothing)");
		if (who == BY_PYTHON)
			rc = py(in, p("sealed.json"), "seal", "--cert", shared("py/tls.crt"), NULL);
		else
			rc = lk(NULL, p("sealed.json"), "seal", "-f", in, "--cert", shared("py/tls.crt"),
				"--compat", "sealed-secrets", "--format", "json", NULL);
		ck_assert_msg(rc == 0, "%s: exit %d: %s", what, rc,
			      text_of(p(who == BY_PYTHON ? "py.err" : "lk.err")));
		check_sealed(p("sealed.json"), "bitnami.com/v1alpha1", (size_t)_i, what);
		if (scope_annotation[_i] != NULL) {
			ss = load(p("sealed.json"));
			ck_assert_msg(json_string_value(at(ss, "spec", "template", "metadata", "annotations",
							   scope_annotation[_i], NULL)) != NULL,
				      "%s: the template lost the Secret's scope annotation", what);
			json_decref(ss);
		}
		open_both(p("sealed.json"), true, "db", "app", what);
	}
}
END_TEST

/* latchkey seals to its own certificate and to the Python one; Python opens both. */
START_TEST(latchkey_seals_python_opens)
{
	char what[128];

	if (!ready("latchkey_seals_python_opens"))
		return;
	snprintf(what, sizeof(what), "latchkey seal --compat sealed-secrets, %s scope", scopes[_i]);
	seal_with(BY_LATCHKEY, shared("lk/0001.crt"), (size_t)_i, p("sealed.json"));
	check_sealed(p("sealed.json"), "bitnami.com/v1alpha1", (size_t)_i, what);
	check_template(p("sealed.json"), what);
	check_blobs(p("sealed.json"), 256, what);
	ck_assert_msg(py(p("sealed.json"), p("a.json"), "unseal", "--key", shared("lk/0001.key"), NULL) == 0,
		      "%s: bitnami.py unseal: %s", what, text_of(p("py.err")));
	check_secret(p("a.json"), "db", "app", what);

	/* latchkey's own apiVersion, to the certificate Python made */
	snprintf(what, sizeof(what), "latchkey seal (latchkey.io/v1) to the Python cert, %s scope", scopes[_i]);
	ck_assert_msg(lk(NULL, p("sealed2.json"), "seal", "-f", write_secret(), "--cert", shared("py/tls.crt"),
			 "--scope", scopes[_i], "--format", "json", NULL) == 0,
		      "%s: %s", what, text_of(p("lk.err")));
	check_sealed(p("sealed2.json"), "latchkey.io/v1", (size_t)_i, what);
	check_blobs(p("sealed2.json"), 256, what);
	ck_assert_msg(py(p("sealed2.json"), p("b.json"), "unseal", "--key", shared("py/tls.key"), NULL) == 0,
		      "%s: bitnami.py unseal: %s", what, text_of(p("py.err")));
	check_secret(p("b.json"), "db", "app", what);
}
END_TEST

/* `latchkey seal --raw` (kubeseal --raw): one ciphertext, put into a SealedSecret by
 * hand as a kubeseal user would, opens in Python. */
START_TEST(latchkey_raw_python_opens)
{
	json_t *ss;
	char *ct;
	size_t n;

	if (!ready("latchkey_raw_python_opens"))
		return;
	{
		FILE *f = fopen(p("value"), "wb");

		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(values[0].bytes, 1, values[0].len, f), values[0].len);
		ck_assert_int_eq(fclose(f), 0);
	}
	ck_assert_msg(lk(NULL, p("ct"), "seal", "--raw", "--cert", shared("py/tls.crt"), "--scope",
			 scopes[_i], "--namespace", "app", "--name", "db", "--from-file", p("value"), NULL) == 0,
		      "latchkey seal --raw (%s): %s", scopes[_i], text_of(p("lk.err")));
	ct = t_read_file(p("ct"));
	ck_assert_ptr_nonnull(ct);
	n = strcspn(ct, "\n");
	ck_assert_msg(ct[n] == '\0' || ct[n + 1] == '\0', "--raw printed more than one line");
	ct[n] = '\0';
	ss = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}}}", "apiVersion", "bitnami.com/v1alpha1",
		       "kind", "SealedSecret", "metadata", "name", "db", "namespace", "app",
		       "spec", "encryptedData", values[0].key, ct);
	ck_assert_ptr_nonnull(ss);
	if (scope_annotation[_i] != NULL)
		json_object_set_new(child(at(ss, "metadata", NULL), "annotations"), scope_annotation[_i],
				    json_string("true"));
	save(ss, p("sealed.json"));
	json_decref(ss);
	free(ct);
	ck_assert_msg(py(p("sealed.json"), p("out.json"), "unseal", "--key", shared("py/tls.key"), NULL) == 0,
		      "bitnami.py unseal of a --raw value (%s): %s", scopes[_i], text_of(p("py.err")));
	{
		json_t *s = load(p("out.json"));
		unsigned char *raw = b64_decode(json_string_value(at(s, "data", values[0].key, NULL)), &n);

		ck_assert_ptr_nonnull(raw);
		ck_assert_msg(n == values[0].len && memcmp(raw, values[0].bytes, n) == 0,
			      "the --raw value differs");
		free(raw);
		json_decref(s);
	}
}
END_TEST

/* A copy renamed in the same namespace, and one moved to another namespace: strict opens
 * neither, namespace-wide only the renamed one, cluster-wide both; the same in both
 * implementations, whichever sealed. */
START_TEST(moved_copies)
{
	static const struct {
		const char *ns, *name;
		bool opens[3];     /* by scope */
	} moves[] = {
		{ "app", "db2", { false, true, true } },
		{ "other", "db", { false, false, true } },
		{ "other", "db2", { false, false, true } },
	};

	if (!ready("moved_copies"))
		return;
	for (int who = BY_PYTHON; who <= BY_LATCHKEY; who++) {
		char what[256];

		seal_with((enum sealer)who, shared("py/tls.crt"), (size_t)_i, p("sealed.json"));
		snprintf(what, sizeof(what), "%s seal, %s scope, in place", sealer_name[who], scopes[_i]);
		open_both(p("sealed.json"), true, "db", "app", what);
		for (size_t m = 0; m < sizeof(moves) / sizeof(moves[0]); m++) {
			json_t *ss = load(p("sealed.json"));

			move_to(ss, moves[m].ns, moves[m].name);
			save(ss, p("moved.json"));
			json_decref(ss);
			snprintf(what, sizeof(what), "%s seal, %s scope, copied to %s/%s", sealer_name[who],
				 scopes[_i], moves[m].ns, moves[m].name);
			open_both(p("moved.json"), moves[m].opens[_i], moves[m].name, moves[m].ns, what);
		}
	}
}
END_TEST

/* One altered byte anywhere in a value (its length prefix, the RSA part, the AES-GCM
 * ciphertext, the tag), or a cut value, does not open in either implementation. */
START_TEST(altered_bytes_fail)
{
	enum { PREFIX, RSA_PART, GCM_BODY, GCM_TAG, CUT, NMUT };
	static const char *const mut_name[] = { "length prefix", "RSA ciphertext", "AES-GCM ciphertext",
						"GCM tag", "last byte cut" };

	if (!ready("altered_bytes_fail"))
		return;
	for (int who = BY_PYTHON; who <= BY_LATCHKEY; who++) {
		seal_with((enum sealer)who, shared("py/tls.crt"), (size_t)_i, p("sealed.json"));
		for (int m = 0; m < NMUT; m++) {
			json_t *ss = load(p("sealed.json")), *enc = at(ss, "spec", "encryptedData", NULL);
			unsigned char *blob;
			char *b, what[256];
			size_t n = 0;

			blob = b64_decode(json_string_value(json_object_get(enc, values[0].key)), &n);
			ck_assert_ptr_nonnull(blob);
			ck_assert_uint_eq(n, 2 + 256 + values[0].len + GCM_TAG_BYTES);
			switch (m) {
			case PREFIX: blob[1] ^= 0x01; break;
			case RSA_PART: blob[2 + 100] ^= 0x01; break;
			case GCM_BODY: blob[2 + 256 + 7] ^= 0x80; break;
			case GCM_TAG: blob[n - 1] ^= 0x01; break;
			case CUT: n--; break;
			}
			b = b64_encode(blob, n);
			json_object_set_new(enc, values[0].key, json_string(b));
			save(ss, p("altered.json"));
			free(b);
			free(blob);
			json_decref(ss);
			snprintf(what, sizeof(what), "%s seal, %s scope, %s altered", sealer_name[who],
				 scopes[_i], mut_name[m]);
			open_both(p("altered.json"), false, "db", "app", what);
		}
	}
}
END_TEST

/* The scope comes from the SealedSecret's own metadata.annotations, cluster-wide first,
 * each only when exactly "true"; the template's annotations do not count. */
START_TEST(scope_annotations_exact)
{
	static const struct {
		size_t sealed_in;                  /* the scope sealed with */
		const char *annotation, *value;    /* then set (value NULL: removed) on metadata */
		bool also_template_only;           /* move the sealed scope's annotation to the template */
		bool opens;
		const char *why;
	} cases[] = {
		{ 2, "sealedsecrets.bitnami.com/cluster-wide", "True", false, false, "cluster-wide: \"True\" is not \"true\"" },
		{ 2, "sealedsecrets.bitnami.com/namespace-wide", "true", false, true, "both set: cluster-wide wins" },
		{ 1, "sealedsecrets.bitnami.com/cluster-wide", "true", false, false, "namespace-wide sealed, cluster-wide added" },
		{ 0, "sealedsecrets.bitnami.com/namespace-wide", "false", false, true, "namespace-wide: \"false\" is strict" },
		{ 0, "sealedsecrets.bitnami.com/cluster-wide", "yes", false, true, "cluster-wide: \"yes\" is strict" },
		{ 1, "sealedsecrets.bitnami.com/namespace-wide", NULL, false, false, "namespace-wide annotation removed" },
		{ 2, "sealedsecrets.bitnami.com/cluster-wide", NULL, true, false, "cluster-wide only in the template" },
	};

	if (!ready("scope_annotations_exact"))
		return;
	for (int who = BY_PYTHON; who <= BY_LATCHKEY; who++) {
		for (size_t sc = 0; sc < 3; sc++) {
			seal_with((enum sealer)who, shared("py/tls.crt"), sc, p("sealed.json"));
			for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
				json_t *ss, *ann;
				char what[256];

				if (cases[c].sealed_in != sc)
					continue;
				ss = load(p("sealed.json"));
				ann = child(child(ss, "metadata"), "annotations");
				if (cases[c].value != NULL)
					json_object_set_new(ann, cases[c].annotation, json_string(cases[c].value));
				else
					json_object_del(ann, cases[c].annotation);
				if (cases[c].also_template_only)
					json_object_set_new(child(at(ss, "spec", "template", "metadata", NULL), "annotations"),
							    cases[c].annotation, json_string("true"));
				save(ss, p("bent.json"));
				json_decref(ss);
				snprintf(what, sizeof(what), "%s seal, %s", sealer_name[who], cases[c].why);
				open_both(p("bent.json"), cases[c].opens, "db", "app", what);
			}
		}
	}
}
END_TEST

/* A key Secret made by `latchkey keygen --secret-manifest` opens values in Python and the
 * other way round (as a file, imported, in a List, next to other keys); a wrong key is
 * refused by both. */
START_TEST(key_secrets_exchange)
{
	if (!ready("key_secrets_exchange"))
		return;
	/* latchkey's key Secret (JSON) in Python */
	seal_with(BY_LATCHKEY, shared("lk/0001.crt"), 0, p("lk-sealed.json"));
	ck_assert_msg(py(p("lk-sealed.json"), p("a.json"), "unseal", "--key", shared("lk-key.json"), NULL) == 0,
		      "bitnami.py unseal --key <latchkey key Secret>: %s", text_of(p("py.err")));
	check_secret(p("a.json"), "db", "app", "bitnami.py with latchkey's key Secret");
	seal_with(BY_PYTHON, shared("lk/0001.crt"), 1, p("py-to-lk.json"));
	ck_assert_msg(lk(NULL, p("b.json"), "unseal", "--key", shared("lk-key.json"), "-f", p("py-to-lk.json"),
			 "--format", "json", NULL) == 0, "latchkey: %s", text_of(p("lk.err")));
	check_secret(p("b.json"), "db", "app", "latchkey with its key Secret, Python-sealed");

	/* the same in YAML, which Python reads only with python3-yaml */
	if (have_yaml) {
		seal_with(BY_LATCHKEY, shared("lky/0001.crt"), 2, p("lky-sealed.json"));
		ck_assert_msg(py(p("lky-sealed.json"), p("c.json"), "unseal", "--key", shared("lk-key.yaml"), NULL) == 0,
			      "bitnami.py unseal --key <latchkey key Secret, YAML>: %s", text_of(p("py.err")));
		check_secret(p("c.json"), "db", "app", "bitnami.py with latchkey's YAML key Secret");
	} else {
		t_skip("key_secrets_exchange: " PYTHON " has no yaml module: the YAML key Secret was not "
		       "read by Python (python3-yaml)");
	}

	/* Python's key Secret imported into a latchkey key directory, both ways */
	ck_assert_msg(lk(NULL, NULL, "keygen", "--import", shared("py/key-secret.json"), "--out-dir",
			 p("imported"), NULL) == 0, "latchkey keygen --import: %s", text_of(p("lk.err")));
	seal_with(BY_PYTHON, shared("py/tls.crt"), 0, p("py-sealed.json"));
	ck_assert_msg(lk(NULL, p("d.json"), "unseal", "--key", p("imported"), "-f", p("py-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey unseal --key <imported>: %s", text_of(p("lk.err")));
	check_secret(p("d.json"), "db", "app", "latchkey with the imported Python key");
	seal_with(BY_LATCHKEY, p("imported/0001.crt"), 0, p("imp-sealed.json"));
	ck_assert_msg(py(p("imp-sealed.json"), p("e.json"), "unseal", "--key", shared("py/tls.key"), NULL) == 0,
		      "bitnami.py unseal of a value sealed to the imported cert: %s", text_of(p("py.err")));
	check_secret(p("e.json"), "db", "app", "Python with its key, sealed to latchkey's import");

	/* a List of both key Secrets, as `kubectl get secret -l ...key -o json` prints */
	{
		json_t *list = json_pack("{s:s, s:s, s:[o, o]}", "apiVersion", "v1", "kind", "List", "items",
					 load(shared("lk-key.json")), load(shared("py/key-secret.json")));

		ck_assert_ptr_nonnull(list);
		save(list, p("keys-list.json"));
		json_decref(list);
	}
	ck_assert_msg(lk(NULL, p("f.json"), "unseal", "--key", p("keys-list.json"), "-f", p("py-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey with a List: %s", text_of(p("lk.err")));
	check_secret(p("f.json"), "db", "app", "latchkey with a List, Python's key");
	ck_assert_msg(lk(NULL, p("g.json"), "unseal", "--key", p("keys-list.json"), "-f", p("lk-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey with a List: %s", text_of(p("lk.err")));
	check_secret(p("g.json"), "db", "app", "latchkey with a List, latchkey's key");
	ck_assert_msg(py(p("py-sealed.json"), p("h.json"), "unseal", "--key", p("keys-list.json"), NULL) == 0,
		      "bitnami.py with a List: %s", text_of(p("py.err")));
	check_secret(p("h.json"), "db", "app", "bitnami.py with a List, Python's key");
	ck_assert_msg(py(p("lk-sealed.json"), p("i.json"), "unseal", "--key", p("keys-list.json"), NULL) == 0,
		      "bitnami.py with a List: %s", text_of(p("py.err")));
	check_secret(p("i.json"), "db", "app", "bitnami.py with a List, latchkey's key");

	/* every key given is tried: the wrong one first */
	ck_assert_msg(py(p("py-sealed.json"), p("j.json"), "unseal", "--key", shared("lk/0001.key"), "--key",
			 shared("py/tls.key"), NULL) == 0, "bitnami.py, two keys: %s", text_of(p("py.err")));
	check_secret(p("j.json"), "db", "app", "bitnami.py, two keys");
	/* a latchkey key directory that also holds an older key Secret from Bitnami's
	 * controller: both keys open */
	ck_assert_int_eq(mkdir(p("ring"), 0700), 0);
	{
		char *man = t_read_file(shared("py/key-secret.json")), *key = t_read_file(shared("lk/0001.key"));

		ck_assert_ptr_nonnull(man);
		ck_assert_ptr_nonnull(key);
		ck_assert_int_eq(t_write_file(p("ring/sealed-secrets-key.json"), man, 0600), 0);
		ck_assert_int_eq(t_write_file(p("ring/0001.key"), key, 0600), 0);
		free(man);
		free(key);
	}
	ck_assert_msg(lk(NULL, p("l.json"), "unseal", "--key", p("ring"), "-f", p("py-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey, key directory: %s", text_of(p("lk.err")));
	check_secret(p("l.json"), "db", "app", "latchkey, key directory, Python's key");
	ck_assert_msg(lk(NULL, p("m.json"), "unseal", "--key", p("ring"), "-f", p("lk-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey, key directory: %s", text_of(p("lk.err")));
	check_secret(p("m.json"), "db", "app", "latchkey, key directory, latchkey's key");

	/* the key as PKCS#8 ("PRIVATE KEY", as openssl pkcs8 -topk8 writes it): the
	 * controller's PEM parser reads both forms */
	{
		FILE *in = fopen(shared("py/tls.key"), "r"), *out;
		EVP_PKEY *k;

		ck_assert_ptr_nonnull(in);
		k = PEM_read_PrivateKey(in, NULL, NULL, NULL);
		fclose(in);
		ck_assert_ptr_nonnull(k);
		out = fopen(p("pkcs8.pem"), "w");
		ck_assert_ptr_nonnull(out);
		ck_assert_int_eq(PEM_write_PrivateKey(out, k, NULL, NULL, 0, NULL, NULL), 1);
		ck_assert_int_eq(fclose(out), 0);
		EVP_PKEY_free(k);
	}
	ck_assert_msg(lk(NULL, p("n.json"), "unseal", "--key", p("pkcs8.pem"), "-f", p("py-sealed.json"),
			 "--format", "json", NULL) == 0, "latchkey, PKCS#8 key: %s", text_of(p("lk.err")));
	check_secret(p("n.json"), "db", "app", "latchkey, PKCS#8 key");
	ck_assert_msg(py(p("py-sealed.json"), p("o.json"), "unseal", "--key", p("pkcs8.pem"), NULL) == 0,
		      "bitnami.py, PKCS#8 key: %s", text_of(p("py.err")));
	check_secret(p("o.json"), "db", "app", "bitnami.py, PKCS#8 key");

	/* the wrong key alone: refused by both, with a message */
	ck_assert_int_eq(lk(NULL, p("k.json"), "unseal", "--key", shared("lk/0001.key"), "-f", p("py-sealed.json"),
			    NULL), 1);
	ck_assert_int_eq(py(p("lk-sealed.json"), p("k.json"), "unseal", "--key", shared("py/tls.key"), NULL), 1);
	ck_assert_msg(strstr(text_of(p("py.err")), "does not open") != NULL, "bitnami.py: %s", text_of(p("py.err")));
}
END_TEST

/* Go's base64.StdEncoding skips CR and LF wherever they are. The API server and kubeseal
 * decode a Secret's data with it (encoding/json), so a value pasted from base64(1) into a
 * YAML block, 76 characters a line, is a valid Secret that kubeseal seals. */
START_TEST(seal_accepts_line_broken_data)
{
	if (!ready("seal_accepts_line_broken_data"))
		return;
	for (int crlf = 0; crlf <= 1; crlf++) {
		const char *eol = crlf ? "\r\n" : "\n";
		const char *in = write_secret_as(p("wrapped.json"), NULL, eol);
		char what[128];

		snprintf(what, sizeof(what), "a Secret with data broken into lines by %s", crlf ? "CRLF" : "LF");
		ck_assert_msg(py(in, p("py-sealed.json"), "seal", "--cert", shared("py/tls.crt"), NULL) == 0,
			      "bitnami.py seal of %s: %s", what, text_of(p("py.err")));
		open_both(p("py-sealed.json"), true, "db", "app", what);
		ck_assert_msg(lk(NULL, p("lk-sealed.json"), "seal", "-f", in, "--cert", shared("py/tls.crt"),
				 "--compat", "sealed-secrets", "--format", "json", NULL) == 0,
			      "latchkey seal refuses %s, which kubeseal seals: %s", what, text_of(p("lk.err")));
		open_both(p("lk-sealed.json"), true, "db", "app", what);
	}
}
END_TEST

/* The controller decodes each encryptedData value with base64.StdEncoding.DecodeString
 * (sealedsecret_expansion.go Unseal), which skips CR and LF: a value broken into lines
 * (a YAML literal block, an editor's wrap) still opens there. */
START_TEST(unseal_accepts_line_broken_values)
{
	if (!ready("unseal_accepts_line_broken_values"))
		return;
	seal_with(BY_PYTHON, shared("py/tls.crt"), 0, p("sealed.json"));
	for (int crlf = 0; crlf <= 1; crlf++) {
		json_t *ss = load(p("sealed.json")), *enc = at(ss, "spec", "encryptedData", NULL);
		char what[128];

		for (size_t i = 0; i < nvalues; i++) {
			size_t n = 0;
			unsigned char *blob = b64_decode(json_string_value(json_object_get(enc, values[i].key)), &n);
			char *b;

			ck_assert_ptr_nonnull(blob);
			b = b64_encode_lines(blob, n, 64, crlf ? "\r\n" : "\n");
			json_object_set_new(enc, values[i].key, json_string(b));
			free(b);
			free(blob);
		}
		save(ss, p("wrapped.json"));
		json_decref(ss);
		snprintf(what, sizeof(what), "encryptedData values broken into lines by %s", crlf ? "CRLF" : "LF");
		open_both(p("wrapped.json"), true, "db", "app", what);
	}
}
END_TEST

/* base64.StdEncoding is not Strict(): non-zero bits after the last byte (here the low bit
 * of the character before "==") are ignored, and the controller opens the value. The
 * value is authenticated by AES-GCM, so this malleability changes no byte that opens. */
START_TEST(unseal_accepts_non_canonical_base64)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	json_t *ss, *enc;
	char *b;
	size_t n;

	if (!ready("unseal_accepts_non_canonical_base64"))
		return;
	seal_with(BY_PYTHON, shared("py/tls.crt"), 0, p("sealed.json"));
	ss = load(p("sealed.json"));
	enc = at(ss, "spec", "encryptedData", NULL);
	b = strdup(json_string_value(json_object_get(enc, values[0].key)));
	ck_assert_ptr_nonnull(b);
	n = strlen(b);
	/* 2 + 256 + 261 + 16 = 535 bytes: 535 % 3 == 1, so "==" and 4 spare bits */
	ck_assert_msg(n > 3 && b[n - 1] == '=' && b[n - 2] == '=', "the binary value does not end in ==");
	b[n - 3] = alphabet[(strchr(alphabet, b[n - 3]) - alphabet) | 1];
	json_object_set_new(enc, values[0].key, json_string(b));
	free(b);
	save(ss, p("noncanonical.json"));
	json_decref(ss);
	open_both(p("noncanonical.json"), true, "db", "app", "a value with non-zero spare base64 bits");
}
END_TEST

/* The controller's default size: RSA-4096, length prefix 0x02 0x00, both ways. */
START_TEST(rsa4096_both_ways)
{
	if (!ready("rsa4096_both_ways"))
		return;
	seal_with(BY_LATCHKEY, shared("py4096/tls.crt"), 0, p("lk.json"));
	check_blobs(p("lk.json"), 512, "latchkey seal, RSA-4096");
	ck_assert_msg(py(p("lk.json"), p("a.json"), "unseal", "--key", shared("py4096/tls.key"), NULL) == 0,
		      "bitnami.py unseal, RSA-4096: %s", text_of(p("py.err")));
	check_secret(p("a.json"), "db", "app", "bitnami.py unseal, RSA-4096");
	seal_with(BY_PYTHON, shared("py4096/tls.crt"), 0, p("py.json"));
	check_blobs(p("py.json"), 512, "bitnami.py seal, RSA-4096");
	ck_assert_msg(lk(NULL, p("b.json"), "unseal", "--key", shared("py4096/key-secret.json"), "-f", p("py.json"),
			 "--format", "json", NULL) == 0, "latchkey unseal, RSA-4096: %s", text_of(p("lk.err")));
	check_secret(p("b.json"), "db", "app", "latchkey unseal, RSA-4096");
}
END_TEST

/* Both certificates look like the controller's (pkg/crypto/keys.go): self-signed, CA,
 * keyUsage encipherOnly alone, a random serial of at most 128 bits, no subject CN by
 * default, about ten years. And both key Secrets have the controller's shape. */
static void
check_cert(const char *path, int bits, const char *what)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	EVP_PKEY *k;
	const ASN1_INTEGER *serial;
	BIGNUM *bn;
	int days = 0, secs = 0;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_msg(x != NULL, "%s: not a PEM certificate", what);
	/* basicConstraints CA:TRUE (X509_check_ca would also want keyCertSign, which
	 * Bitnami's certificate does not have) */
	ck_assert_msg((X509_get_extension_flags(x) & EXFLAG_CA) != 0, "%s: not CA:TRUE", what);
	ck_assert_msg((X509_get_extension_flags(x) & EXFLAG_KUSAGE) != 0, "%s: no keyUsage", what);
	ck_assert_msg(X509_get_key_usage(x) == KU_ENCIPHER_ONLY, "%s: keyUsage is %#x, not encipherOnly alone",
		      what, X509_get_key_usage(x));
	/* self-signed: X509_check_issued would want keyCertSign too */
	ck_assert_msg(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(x)) == 0 &&
		      X509_verify(x, X509_get0_pubkey(x)) == 1, "%s: not self-signed", what);
	ck_assert_msg(X509_NAME_entry_count(X509_get_subject_name(x)) == 0, "%s: a subject by default", what);
	serial = X509_get0_serialNumber(x);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	ck_assert_ptr_nonnull(bn);
	ck_assert_msg(BN_num_bits(bn) <= 128 && BN_num_bits(bn) > 64, "%s: serial of %d bits", what,
		      BN_num_bits(bn));
	BN_free(bn);
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	ck_assert_msg(days >= 3649 && days <= 3651, "%s: valid %d days, not 10 years", what, days);
	k = X509_get0_pubkey(x);
	ck_assert_msg(k != NULL && EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) == bits,
		      "%s: not RSA-%d", what, bits);
	X509_free(x);
}

static void
check_key_secret(const char *path, const char *ns, const char *what)
{
	json_t *s = load(path);
	const char *name = json_string_value(at(s, "metadata", "name", NULL));
	size_t n = 0;
	unsigned char *pem;

	ck_assert_str_eq(json_string_value(at(s, "kind", NULL)), "Secret");
	ck_assert_str_eq(json_string_value(at(s, "type", NULL)), "kubernetes.io/tls");
	ck_assert_str_eq(json_string_value(at(s, "metadata", "namespace", NULL)), ns);
	ck_assert_str_eq(json_string_value(at(s, "metadata", "labels",
					      "sealedsecrets.bitnami.com/sealed-secrets-key", NULL)), "active");
	ck_assert_msg(name != NULL && strncmp(name, "sealed-secrets-key", 18) == 0 && strlen(name) == 23,
		      "%s: name %s is not sealed-secrets-key + 5", what, name ? name : "(none)");
	pem = b64_decode(json_string_value(at(s, "data", "tls.key", NULL)), &n);
	ck_assert_msg(pem != NULL && n > 31 && memcmp(pem, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0, /* latchkey-scan: allow */
		      "%s: tls.key is not a PKCS#1 PEM", what);
	free(pem);
	pem = b64_decode(json_string_value(at(s, "data", "tls.crt", NULL)), &n);
	ck_assert_msg(pem != NULL && n > 27 && memcmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0,
		      "%s: tls.crt is not a PEM certificate", what);
	free(pem);
	json_decref(s);
}

START_TEST(certificates_and_key_secrets_like_the_controllers)
{
	if (!ready("certificates_and_key_secrets_like_the_controllers"))
		return;
	check_cert(shared("py/tls.crt"), 2048, "bitnami.py certificate");
	check_cert(shared("py4096/tls.crt"), 4096, "bitnami.py certificate, default size");
	check_cert(shared("lk/0001.crt"), 2048, "latchkey keygen certificate");
	check_key_secret(shared("py/key-secret.json"), "sealing", "bitnami.py key Secret");
	check_key_secret(shared("py4096/key-secret.json"), "kube-system", "bitnami.py key Secret, default namespace");
	check_key_secret(shared("lk-key.json"), "sealing", "latchkey keygen key Secret");
}
END_TEST

static Suite *
bitnami_suite(void)
{
	Suite *s = suite_create("bitnami");
	TCase *tc = tcase_create("interop");

	tcase_add_unchecked_fixture(tc, run_setup, run_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, python_seals_latchkey_opens, 0, 3);
	tcase_add_loop_test(tc, latchkey_seals_python_opens, 0, 3);
	tcase_add_loop_test(tc, latchkey_raw_python_opens, 0, 3);
	tcase_add_loop_test(tc, moved_copies, 0, 3);
	tcase_add_loop_test(tc, altered_bytes_fail, 0, 3);
	tcase_add_loop_test(tc, scope_from_secret_annotations, 0, 3);
	tcase_add_test(tc, scope_annotations_exact);
	tcase_add_test(tc, key_secrets_exchange);
	tcase_add_test(tc, rsa4096_both_ways);
	tcase_add_test(tc, seal_accepts_line_broken_data);
	tcase_add_test(tc, unseal_accepts_line_broken_values);
	tcase_add_test(tc, unseal_accepts_non_canonical_base64);
	tcase_add_test(tc, certificates_and_key_secrets_like_the_controllers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(bitnami_suite());
	int failed;

	make_values();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
