/* check_sealed.c — the SealedSecret controller of `latchkey sync` end to end: the real
 * binary against the test API server (tests/fakes), sealing with the real `latchkey seal`
 * (and, for the Bitnami kind, the independent Python implementation in tests/interop/).
 * The controller makes its key and serves the certificate; SealedSecrets of each scope
 * become Secrets with the exact bytes; a copy moved to another namespace or an altered
 * value fails with a clear status and Event and the Secret it would replace stays; the
 * template, ownership and adoption rules are Bitnami's; rotation keeps old SealedSecrets
 * opening, the inventory says which key each uses, `latchkey reseal` moves them to the
 * newest; an imported Bitnami key is used without a restart; encryption at source leaves
 * only lk1 ciphertext in the Secret; a restart rewrites nothing; no value reaches the log
 * or the Events. */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "sealing/sealing.h"
#include "syncfx.h"

#define NS "app"
#define NS2 "other"
#define CONTROLLER_NS "latchkey-system"
#define PYTHON "/usr/bin/python3"
/* Values that must never appear outside a Secret's data. */
#define VALUE1 "sealed-canary-value-3f9a2c"
#define VALUE2 "sealed-canary-value-81d0e7"
#define KEY_LABEL "sealedsecrets.bitnami.com/sealed-secrets-key"

/* ---- helpers ---- */

static void
ctl_start(struct t_sfx *f, const char *const extra[])
{
	const char *args[32] = { "--key-size", "2048", "--leader-elect=false" };
	size_t n = 3;

	for (size_t j = 0; extra != NULL && extra[j] != NULL && n < 31; j++)
		args[n++] = extra[j];
	args[n] = NULL;
	t_sfx_ctl_start(f, 0, CONTROLLER_NS, args);
}

/* The key Secrets in the controller's namespace (a List). */
static json_t *
key_secrets(struct t_sfx *f)
{
	return t_sfx_get(f, "/api/v1/namespaces/" CONTROLLER_NS "/secrets?labelSelector="
			 "sealedsecrets.bitnami.com%2Fsealed-secrets-key");
}

struct keys_wait {
	struct t_sfx *f;
	size_t want;
};

static bool
keys_at_least(void *arg)
{
	struct keys_wait *w = arg;
	json_t *l = key_secrets(w->f);
	bool ok = json_array_size(json_object_get(l, "items")) >= w->want;

	json_decref(l);
	return ok;
}

static void
wait_keys(struct t_sfx *f, size_t n)
{
	struct keys_wait w = { f, n };

	ck_assert_msg(t_wait_until(keys_at_least, &w, T_DEADLINE_MS), "fewer than %zu key Secrets", n);
}

static char *
cert_url(struct t_sfx *f, const char *what)
{
	char *url = NULL;

	ck_assert_int_ge(asprintf(&url, "http://127.0.0.1:%d/v1/%s", f->metrics_port[0], what), 0);
	return url;
}

/* The id of the key the controller serves at /v1/cert.pem now. */
static void
served_key_id(struct t_sfx *f, char *out, size_t outlen)
{
	char *url = cert_url(f, "cert.pem"), *pem = NULL;
	struct lk_key *k = NULL;
	struct lk_error err;

	ck_assert_int_eq(t_http("GET", url, NULL, NULL, NULL, &pem), 200);
	ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE-----"));
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, pem, strlen(pem), false, &k, &err), 0);
	snprintf(out, outlen, "%s", lk_key_id(k));
	lk_key_free(k);
	free(pem);
	free(url);
}

/* `latchkey seal` of a Secret (JSON text) with extra arguments: the SealedSecret. */
static json_t *
seal(struct t_sfx *f, const char *secret, const char *const extra[])
{
	const char *in = t_path(f->dir, "seal-in.json"), *out = t_path(f->dir, "seal-out.json");
	const char *argv[24] = { t_latchkey_bin(), "seal", "-f", in, "-o", out, "--format", "json" };
	size_t n = 8;
	json_t *j;
	char *text;

	unlink(out);
	ck_assert_int_eq(t_write_file(in, secret, 0600), 0);
	for (size_t i = 0; extra[i] != NULL && n < 23; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, t_path(f->dir, "seal.err")), 0);
	unlink(in);
	text = t_read_file(out);
	ck_assert_ptr_nonnull(text);
	j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	free(text);
	return j;
}

/* Seals with the controller's certificate. */
static json_t *
seal_cert(struct t_sfx *f, const char *secret, const char *scope)
{
	char *url = cert_url(f, "cert.pem");
	json_t *j = seal(f, secret, (const char *const[]){ "--cert", url, "--scope", scope, NULL });

	free(url);
	return j;
}

static void
ss_post(struct t_sfx *f, const char *ns, json_t *ss)
{
	char path[256], *text;

	json_object_set_new(json_object_get(ss, "metadata"), "namespace", json_string(ns));
	text = json_dumps(ss, JSON_COMPACT);
	snprintf(path, sizeof(path), "/apis/latchkey.io/v1/namespaces/%s/sealedsecrets", ns);
	json_decref(t_sfx_kube(f, "POST", path, text, 201));
	free(text);
}

static void
wait_synced(struct t_sfx *f, const char *ns, const char *name, const char *status, const char *needle)
{
	char path[256];

	snprintf(path, sizeof(path), "/apis/latchkey.io/v1/namespaces/%s/sealedsecrets/%s", ns, name);
	t_sfx_wait_condition(f, path, "Synced", status, needle);
}

static json_t *
ss_get(struct t_sfx *f, const char *ns, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/apis/latchkey.io/v1/namespaces/%s/sealedsecrets/%s", ns, name);
	return t_sfx_get(f, path);
}

static json_t *
secret_get(struct t_sfx *f, const char *ns, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	return t_sfx_get(f, path);
}

static const char *
jstr2(const json_t *o, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(o, a), b));
}

/* The first sealingKeys entry of a SealedSecret's status. */
static const char *
first_key(const json_t *ss)
{
	return json_string_value(json_array_get(json_object_get(json_object_get(ss, "status"),
								 "sealingKeys"), 0));
}

struct metric_wait {
	struct t_sfx *f;
	char needle[256];
};

static bool
metric_has(void *arg)
{
	struct metric_wait *w = arg;
	char *m = t_sfx_metrics(w->f, 0);
	bool ok = m != NULL && strstr(m, w->needle) != NULL;

	free(m);
	return ok;
}

static void
wait_metric(struct t_sfx *f, const char *line)
{
	struct metric_wait w = { .f = f };

	snprintf(w.needle, sizeof(w.needle), "\n%s\n", line);
	ck_assert_msg(t_wait_until(metric_has, &w, T_DEADLINE_MS), "/metrics never showed %s", line);
}

struct metric_min {
	struct t_sfx *f;
	const char *series;
	double min;
};

static bool
metric_at_least(void *arg)
{
	struct metric_min *w = arg;
	char *m = t_sfx_metrics(w->f, 0), needle[256], *at;
	bool ok = false;

	snprintf(needle, sizeof(needle), "\n%s ", w->series);
	if (m != NULL && (at = strstr(m, needle)) != NULL)
		ok = strtod(at + strlen(needle), NULL) >= w->min;
	free(m);
	return ok;
}

static void
wait_metric_min(struct t_sfx *f, const char *series, double min)
{
	struct metric_min w = { f, series, min };

	ck_assert_msg(t_wait_until(metric_at_least, &w, T_DEADLINE_MS), "%s never reached %g", series, min);
}

/* Neither the controller's log nor the Events of ns hold needle. */
static void
assert_nowhere(struct t_sfx *f, const char *ns, const char *needle)
{
	char pattern[1100], path[256], *text;
	json_t *ev;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/sync*.log", f->dir);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *log = t_read_file(g.gl_pathv[i]);

		ck_assert_ptr_nonnull(log);
		ck_assert_msg(strstr(log, needle) == NULL, "a value reached the controller's log %s",
			      g.gl_pathv[i]);
		free(log);
	}
	globfree(&g);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	ev = t_sfx_get(f, path);
	text = json_dumps(ev, JSON_COMPACT);
	ck_assert_msg(text == NULL || strstr(text, needle) == NULL, "a value reached an Event");
	free(text);
	json_decref(ev);
}

static const char db_secret[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"namespace\":\"" NS "\"},"
	"\"stringData\":{\"password\":\"" VALUE1 "\"},\"data\":{\"bin\":\"AAEC/w==\"}}";

/* ---- tests ---- */

START_TEST(keys_cert_and_unseal)
{
	struct t_sfx f;
	char id[LK_KEY_ID_HEX + 1], line[256];
	json_t *l, *k, *s, *ss;
	unsigned char *raw = NULL;
	size_t n = 0;

	t_sfx_start(&f, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ctl_start(&f, NULL);
	/* The first key, made at start in Bitnami's shape. */
	wait_keys(&f, 1);
	l = key_secrets(&f);
	k = json_array_get(json_object_get(l, "items"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(k, "type")), "kubernetes.io/tls");
	ck_assert_str_eq(jstr2(json_object_get(k, "metadata"), "labels", KEY_LABEL), "active");
	ck_assert(strncmp(jstr2(k, "metadata", "name"), "sealed-secrets-key", 18) == 0);
	ck_assert_ptr_nonnull(jstr2(k, "data", "tls.crt"));
	ck_assert_ptr_nonnull(jstr2(k, "data", "tls.key"));
	ck_assert_ptr_nonnull(jstr2(k, "data", "lk1.key"));
	json_decref(l);
	served_key_id(&f, id, sizeof(id));

	/* Sealed with the served certificate: the Secret holds the exact bytes. */
	ss = seal_cert(&f, db_secret, "strict");
	ss_post(&f, NS, ss);
	json_decref(ss);
	t_sfx_wait_value(&f, NS, "db", "password", VALUE1);
	wait_synced(&f, NS, "db", "True", "unsealed");
	s = secret_get(&f, NS, "db");
	ck_assert_int_eq(lk_b64_decode_raw(jstr2(s, "data", "bin"), strlen(jstr2(s, "data", "bin")),
					   LK_B64_STD, &raw, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert(memcmp(raw, "\x00\x01\x02\xff", 4) == 0);
	free(raw);
	k = json_array_get(json_object_get(json_object_get(s, "metadata"), "ownerReferences"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(k, "kind")), "SealedSecret");
	ck_assert(json_is_true(json_object_get(k, "controller")));
	ck_assert_str_eq(jstr2(json_object_get(s, "metadata"), "labels", "latchkey.io/managed"), "true");
	json_decref(s);
	ss = ss_get(&f, NS, "db");
	ck_assert_str_eq(first_key(ss), id);
	json_decref(ss);
	snprintf(line, sizeof(line), "latchkey_sync_sealing_key_sealedsecrets{key=\"%s\"} 1", id);
	wait_metric(&f, line);

	/* lk1 values, sealed to the served lk1 public key. */
	{
		char *url = cert_url(&f, "lk1.pub"), *pub = NULL;
		const char *pubfile = t_path(f.dir, "cluster.lk1.pub");

		ck_assert_int_eq(t_http("GET", url, NULL, NULL, NULL, &pub), 200);
		ck_assert(strncmp(pub, "lk1pub:", 7) == 0);
		ck_assert_int_eq(t_write_file(pubfile, pub, 0644), 0);
		ss = seal(&f, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"api\","
			  "\"namespace\":\"" NS "\"},\"stringData\":{\"token\":\"" VALUE2 "\"}}",
			  (const char *const[]){ "--envelope", "lk1", "--key-file", pubfile, NULL });
		ck_assert(strncmp(jstr2(json_object_get(ss, "spec"), "encryptedData", "token"), "lk1:", 4) == 0);
		ss_post(&f, NS, ss);
		json_decref(ss);
		t_sfx_wait_value(&f, NS, "api", "token", VALUE2);
		wait_synced(&f, NS, "api", "True", "unsealed");
		free(url);
		free(pub);
	}

	/* A restart opens nothing it does not have to and writes nothing. */
	ck_assert_int_eq(t_stop(&f.ctl[0], SIGTERM, T_DEADLINE_MS) >= 0, 1);
	memset(&f.ctl[0], 0, sizeof(f.ctl[0]));
	ck_assert_int_eq(t_kube_stats_reset(&f.kube), 0);
	ctl_start(&f, NULL);
	wait_metric_min(&f, "latchkey_sync_reconcile_total{kind=\"SealedSecret\"}", 2);
	ck_assert_int_eq(t_kube_writes_in(&f.kube, "secrets", NS), 0);
	ck_assert_int_eq(t_kube_writes_in(&f.kube, "sealedsecrets", NS), 0);
	assert_nowhere(&f, NS, VALUE1);
	assert_nowhere(&f, NS, VALUE2);
	t_sfx_stop(&f);
}
END_TEST

START_TEST(scopes_copies_and_tampering)
{
	struct t_sfx f;
	json_t *ss, *moved;
	char *text, path[256], *v;

	t_sfx_start(&f, NULL, (const char *const[]){ NS, NS2, CONTROLLER_NS, NULL });
	ctl_start(&f, NULL);
	wait_keys(&f, 1);

	/* namespace-wide: opens under another name in the same namespace. */
	ss = seal_cert(&f, db_secret, "namespace-wide");
	json_object_set_new(json_object_get(ss, "metadata"), "name", json_string("renamed"));
	ss_post(&f, NS, ss);
	json_decref(ss);
	t_sfx_wait_value(&f, NS, "renamed", "password", VALUE1);

	/* cluster-wide: opens in another namespace. */
	ss = seal_cert(&f, db_secret, "cluster-wide");
	ss_post(&f, NS2, ss);
	json_decref(ss);
	t_sfx_wait_value(&f, NS2, "db", "password", VALUE1);
	wait_synced(&f, NS2, "db", "True", NULL);

	/* A strict SealedSecret of NS copied over NS2's: it does not open there, and the
	 * Secret NS2/db keeps what it had. */
	text = strdup("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"namespace\":\"" NS
		      "\"},\"stringData\":{\"password\":\"" VALUE2 "\"}}");
	moved = seal_cert(&f, text, "strict");
	free(text);
	{
		/* the scope annotations go too: the copy is strict */
		json_t *patch = json_pack("{s:{s:O}, s:{s:{s:n, s:n}}}", "spec", "encryptedData",
			json_object_get(json_object_get(moved, "spec"), "encryptedData"), "metadata",
			"annotations", LK_ANNOT_CLUSTER_WIDE, LK_ANNOT_NAMESPACE_WIDE);

		ck_assert_ptr_nonnull(patch);
		text = json_dumps(patch, JSON_COMPACT);
		json_decref(patch);
	}
	json_decref(t_sfx_patch(&f, "/apis/latchkey.io/v1/namespaces/" NS2 "/sealedsecrets/db", text, 200));
	free(text);
	wait_synced(&f, NS2, "db", "False", "scope strict");
	wait_synced(&f, NS2, "db", "False", "Failed to unseal");
	v = t_sfx_secret_value(&f, NS2, "db", "password");
	ck_assert_str_eq(v, VALUE1);
	free(v);
	snprintf(path, sizeof(path), "/api/v1/namespaces/" NS2 "/events");
	{
		json_t *ev = t_sfx_get(&f, path), *e;
		size_t i;
		bool warned = false;

		json_array_foreach(json_object_get(ev, "items"), i, e) {
			const char *reason = json_string_value(json_object_get(e, "reason"));

			warned = warned || (reason != NULL && strcmp(reason, "ErrUnsealFailed") == 0 &&
					    strcmp(json_string_value(json_object_get(e, "type")), "Warning") == 0);
		}
		ck_assert_msg(warned, "no ErrUnsealFailed Warning Event in " NS2);
		json_decref(ev);
	}

	/* One altered character: it does not open. */
	{
		json_t *enc = json_object_get(json_object_get(moved, "spec"), "encryptedData");
		char *bad = strdup(json_string_value(json_object_get(enc, "password")));
		size_t mid = strlen(bad) / 2;

		bad[mid] = bad[mid] == 'A' ? 'B' : 'A';
		json_object_set_new(enc, "password", json_string(bad));
		free(bad);
		json_object_set_new(json_object_get(moved, "metadata"), "name", json_string("db"));
		ss_post(&f, NS, moved);
		wait_synced(&f, NS, "db", "False", "Failed to unseal");
		ck_assert_ptr_null(secret_get(&f, NS, "db"));
	}
	json_decref(moved);
	assert_nowhere(&f, NS, VALUE2);
	assert_nowhere(&f, NS2, VALUE2);
	t_sfx_stop(&f);
}
END_TEST

START_TEST(template_owner_and_adoption)
{
	struct t_sfx f;
	json_t *ss, *tmpl, *s;
	char *v;

	t_sfx_start(&f, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ctl_start(&f, NULL);
	wait_keys(&f, 1);

	/* The template: type, labels, annotations, data rendered from the opened values, a
	 * null that removes a key, no ownerReference when asked. */
	ss = seal_cert(&f, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"example.com/db\","
		       "\"metadata\":{\"name\":\"tpl\",\"namespace\":\"" NS "\",\"labels\":{\"tier\":\"db\"},"
		       "\"annotations\":{\"note\":\"kept\"}},\"stringData\":{\"user\":\"alice\","
		       "\"password\":\"" VALUE1 "\"}}", "strict");
	tmpl = json_object_get(json_object_get(ss, "spec"), "template");
	json_object_set_new(tmpl, "data", json_pack("{s:s, s:n}", "dsn",
		"pg://{{ .user }}:{{ index . \"password\" }}@db", "user"));
	json_object_set_new(json_object_get(json_object_get(tmpl, "metadata"), "annotations"),
			    "sealedsecrets.bitnami.com/skip-set-owner-references", json_string("true"));
	ss_post(&f, NS, ss);
	json_decref(ss);
	t_sfx_wait_value(&f, NS, "tpl", "dsn", "pg://alice:" VALUE1 "@db");
	s = secret_get(&f, NS, "tpl");
	ck_assert_str_eq(json_string_value(json_object_get(s, "type")), "example.com/db");
	ck_assert_str_eq(jstr2(json_object_get(s, "metadata"), "labels", "tier"), "db");
	ck_assert_str_eq(jstr2(json_object_get(s, "metadata"), "annotations", "note"), "kept");
	ck_assert_ptr_null(json_object_get(json_object_get(s, "data"), "user"));
	ck_assert_ptr_nonnull(json_object_get(json_object_get(s, "data"), "password"));
	ck_assert_ptr_null(json_object_get(json_object_get(s, "metadata"), "ownerReferences"));
	json_decref(s);

	/* A Secret that is not the SealedSecret's is not replaced... */
	json_decref(t_sfx_kube(&f, "POST", "/api/v1/namespaces/" NS "/secrets",
			       "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"taken\"},"
			       "\"data\":{\"password\":\"b3JpZ2luYWw=\"}}", 201));
	ss = seal_cert(&f, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"taken\","
		       "\"namespace\":\"" NS "\"},\"stringData\":{\"password\":\"" VALUE1 "\"}}", "strict");
	ss_post(&f, NS, ss);
	json_decref(ss);
	wait_synced(&f, NS, "taken", "False", "already exists and is not managed");
	v = t_sfx_secret_value(&f, NS, "taken", "password");
	ck_assert_str_eq(v, "original");
	free(v);
	/* ... until it is annotated managed. */
	json_decref(t_sfx_patch(&f, "/api/v1/namespaces/" NS "/secrets/taken",
				"{\"metadata\":{\"annotations\":{\"sealedsecrets.bitnami.com/managed\":\"true\"}}}", 200));
	t_sfx_wait_value(&f, NS, "taken", "password", VALUE1);
	wait_synced(&f, NS, "taken", "True", NULL);
	t_sfx_stop(&f);
}
END_TEST

START_TEST(rotation_inventory_and_reseal)
{
	struct t_sfx f;
	char first[LK_KEY_ID_HEX + 1], newest[LK_KEY_ID_HEX + 1], line[256];
	const char *keys = NULL, *repo = NULL, *file = NULL;
	struct lk_keyset *ks;
	struct lk_error err;
	json_t *ss, *l, *inv;
	char *text;

	t_sfx_start(&f, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ctl_start(&f, (const char *const[]){ "--key-rotation", "3s", NULL });
	wait_keys(&f, 1);
	served_key_id(&f, first, sizeof(first));
	ss = seal_cert(&f, db_secret, "strict");
	ss_post(&f, NS, ss);
	t_sfx_wait_value(&f, NS, "db", "password", VALUE1);

	/* A new key comes; the old SealedSecret still opens and is counted on its key. */
	wait_keys(&f, 2);
	wait_synced(&f, NS, "db", "True", NULL);
	snprintf(line, sizeof(line), "latchkey_sync_sealing_key_sealedsecrets{key=\"%s\"} 1", first);
	wait_metric(&f, line);
	{
		const char *argv[] = { t_latchkey_bin(), "keys", "--kubeconfig", f.kube.kubeconfig,
				       "--controller-namespace", CONTROLLER_NS, "--output", "json", NULL };
		json_t *k;
		size_t i;
		bool found = false;

		ck_assert_int_eq(t_run(argv, NULL, NULL, t_path(f.dir, "keys.json"), t_path(f.dir, "keys.err")), 0);
		text = t_read_file(t_path(f.dir, "keys.json"));
		inv = json_loads(text, 0, NULL);
		free(text);
		ck_assert_ptr_nonnull(inv);
		ck_assert_int_ge(json_array_size(json_object_get(inv, "keys")), 4);
		json_array_foreach(json_object_get(inv, "keys"), i, k) {
			const char *id = json_string_value(json_object_get(k, "id"));
			size_t users = json_array_size(json_object_get(k, "sealedSecrets"));

			if (strcmp(id, first) == 0) {
				found = true;
				ck_assert_uint_eq(users, 1);
				ck_assert_str_eq(json_string_value(json_array_get(json_object_get(k, "sealedSecrets"), 0)),
						 NS "/db");
			} else {
				ck_assert_uint_eq(users, 0);
			}
		}
		ck_assert(found);
		json_decref(inv);
	}

	/* The admin's way: the key Secrets out, reseal the repository in place, apply. */
	l = key_secrets(&f);      /* a SecretList, as the API gives it */
	text = json_dumps(l, JSON_COMPACT);
	json_decref(l);
	keys = t_path(f.dir, "keys-backup.json");
	ck_assert_int_eq(t_write_file(keys, text, 0600), 0);
	free(text);
	ks = lk_keyset_new();
	ck_assert_int_eq(lk_sealing_load_keys(ks, keys, &err), 0);
	snprintf(newest, sizeof(newest), "%s", lk_key_id(lk_keyset_newest(ks, LK_KEY_RSA)));
	lk_keyset_free(ks);
	ck_assert_str_ne(newest, first);
	repo = t_path(f.dir, "repo");
	ck_assert_int_eq(mkdir(repo, 0700), 0);
	file = t_path(f.dir, "repo/db.json");
	text = json_dumps(ss, JSON_INDENT(2));
	ck_assert_int_eq(t_write_file(file, text, 0644), 0);
	free(text);
	json_decref(ss);
	{
		const char *argv[] = { t_latchkey_bin(), "reseal", "--key", keys, repo, NULL };

		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, t_path(f.dir, "reseal.err")), 0);
	}
	text = t_read_file(file);
	ss = json_loads(text, 0, NULL);
	free(text);
	ck_assert_ptr_nonnull(ss);
	{
		json_t *patch = json_pack("{s:{s:O}}", "spec", "encryptedData",
					  json_object_get(json_object_get(ss, "spec"), "encryptedData"));

		text = json_dumps(patch, JSON_COMPACT);
		json_decref(patch);
	}
	json_decref(t_sfx_patch(&f, "/apis/latchkey.io/v1/namespaces/" NS "/sealedsecrets/db", text, 200));
	free(text);
	json_decref(ss);
	snprintf(line, sizeof(line), "latchkey_sync_sealing_key_sealedsecrets{key=\"%s\"} 1", newest);
	wait_metric(&f, line);
	snprintf(line, sizeof(line), "latchkey_sync_sealing_key_sealedsecrets{key=\"%s\"} 0", first);
	wait_metric(&f, line);
	ss = ss_get(&f, NS, "db");
	ck_assert_str_eq(first_key(ss), newest);
	json_decref(ss);
	t_sfx_wait_value(&f, NS, "db", "password", VALUE1);
	t_sfx_stop(&f);
}
END_TEST

static bool
bitnami_served(void *arg)
{
	json_t *j = t_sfx_get(arg, "/apis/bitnami.com/v1alpha1");

	json_decref(j);
	return j != NULL;
}

/* Bitnami's own kind, sealed by the independent Python implementation to a key it made,
 * which the admin imports as it is: used without a restart. */
START_TEST(bitnami_kind_and_imported_key)
{
	const char *probe[] = { PYTHON, "-c", "import cryptography.hazmat.primitives.ciphers.aead", NULL };
	const char *src = getenv("LATCHKEY_SRCDIR");
	char script[600], *text, *keyid_text = NULL;
	struct t_sfx f;
	const char *kdir;
	struct lk_key *k = NULL;
	struct lk_error err;
	char line[256];

	if (access(PYTHON, X_OK) != 0 || t_run(probe, NULL, NULL, NULL, NULL) != 0) {
		t_skip("bitnami_kind_and_imported_key: " PYTHON " with python3-cryptography is needed "
		       "for the independent Bitnami implementation (tools/deps.sh installs it)");
		return;
	}
	snprintf(script, sizeof(script), "%s/tests/interop/bitnami.py", src != NULL ? src : ".");
	t_sfx_start(&f, "tests/fixtures/compat-crds/sealedsecrets.bitnami.com.yaml",
		    (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ck_assert_msg(t_wait_until(bitnami_served, &f, T_DEADLINE_MS), "bitnami.com/v1alpha1 is not served");
	ctl_start(&f, (const char *const[]){ "--compat", "sealed-secrets", NULL });
	wait_keys(&f, 1);
	kdir = t_path(f.dir, "bitnami-key");
	{
		const char *argv[] = { PYTHON, script, "keygen", "--out-dir", kdir, "--bits", "2048",
				       "--namespace", CONTROLLER_NS, NULL };

		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, NULL), 0);
	}
	text = t_read_file(t_path(kdir, "key-secret.json"));
	ck_assert_ptr_nonnull(text);
	t_sfx_apply(&f, CONTROLLER_NS, text);
	free(text);
	text = t_read_file(t_path(kdir, "tls.crt"));
	ck_assert_int_eq(lk_key_rsa_from_pem(NULL, 0, text, strlen(text), false, &k, &err), 0);
	keyid_text = strdup(lk_key_id(k));
	lk_key_free(k);
	free(text);
	{
		const char *in = t_path(f.dir, "bn-secret.json"), *out = t_path(f.dir, "bn-sealed.json");
		const char *argv[] = { PYTHON, script, "seal", "--cert", t_path(kdir, "tls.crt"), "--scope",
				       "strict", NULL };

		ck_assert_int_eq(t_write_file(in, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":"
					      "{\"name\":\"bn\",\"namespace\":\"" NS "\"},\"stringData\":"
					      "{\"password\":\"" VALUE1 "\"}}", 0600), 0);
		ck_assert_int_eq(t_run(argv, NULL, in, out, NULL), 0);
		text = t_read_file(out);
		ck_assert_ptr_nonnull(strstr(text, "bitnami.com/v1alpha1"));
		json_decref(t_sfx_kube(&f, "POST", "/apis/bitnami.com/v1alpha1/namespaces/" NS "/sealedsecrets",
				       text, 201));
		free(text);
	}
	t_sfx_wait_value(&f, NS, "bn", "password", VALUE1);
	t_sfx_wait_condition(&f, "/apis/bitnami.com/v1alpha1/namespaces/" NS "/sealedsecrets/bn", "Synced",
			     "True", NULL);
	snprintf(line, sizeof(line), "latchkey_sync_sealing_key_sealedsecrets{key=\"%s\"} 1", keyid_text);
	wait_metric(&f, line);
	free(keyid_text);
	assert_nowhere(&f, NS, VALUE1);
	t_sfx_stop(&f);
}
END_TEST

/* spec.encryption: the Secret holds lk1 text only, which the recipient's private key
 * opens, bound to the Secret's namespace, name and key. */
START_TEST(encryption_at_source)
{
	struct t_sfx f;
	const char *rdir;
	char *pub, *priv, *b64text, spec_patch[512];
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_key *x = NULL;
	struct lk_secret *pt = NULL, *ct = NULL;
	struct lk_error err;
	json_t *ss, *s;

	t_sfx_start(&f, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ctl_start(&f, NULL);
	wait_keys(&f, 1);
	rdir = t_path(f.dir, "recipient");
	{
		const char *argv[] = { t_latchkey_bin(), "keygen", "--lk1", "--out-dir", rdir, NULL };

		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, NULL), 0);
	}
	pub = t_read_file(t_path(rdir, "0001.lk1.pub"));
	priv = t_read_file(t_path(rdir, "0001.lk1"));
	ck_assert(pub != NULL && priv != NULL);
	pub[strcspn(pub, "\n")] = '\0';
	ss = seal_cert(&f, db_secret, "strict");
	snprintf(spec_patch, sizeof(spec_patch), "{\"recipient\":\"%s\"}", pub);
	json_object_set_new(json_object_get(ss, "spec"), "encryption", json_loads(spec_patch, 0, NULL));
	ss_post(&f, NS, ss);
	json_decref(ss);
	wait_synced(&f, NS, "db", "True", NULL);
	s = secret_get(&f, NS, "db");
	b64text = json_dumps(s, JSON_COMPACT);
	ck_assert_msg(strstr(b64text, VALUE1) == NULL, "plaintext in the Secret");
	free(b64text);
	{
		const char *v = jstr2(s, "data", "password");

		ck_assert_int_eq(lk_b64_decode(v, strlen(v), LK_B64_STD, &ct), 0);
		ck_assert(strncmp(lk_secret_cstr(ct), "lk1:", 4) == 0);
	}
	ck_assert_int_eq(lk_key_x25519_parse(priv, strlen(priv), &x, &err), 0);
	ck_assert_str_eq(jstr2(json_object_get(s, "metadata"), "annotations", "latchkey.io/recipient"), lk_key_id(x));
	ck_assert_int_eq(lk_keyset_add_take(ks, x), 0);
	ck_assert_int_eq(lk_keyset_open(ks, NS "/db/password", lk_secret_cstr(ct), lk_secret_len(ct), &pt, &err), 0);
	ck_assert_str_eq(lk_secret_cstr(pt), VALUE1);
	pt = lk_secret_free(pt);
	/* bound to its key: not under another */
	ck_assert_int_lt(lk_keyset_open(ks, NS "/db/bin", lk_secret_cstr(ct), lk_secret_len(ct), &pt, &err), 0);
	lk_secret_free(ct);
	json_decref(s);
	lk_keyset_free(ks);
	free(pub);
	free(priv);
	assert_nowhere(&f, NS, VALUE1);
	t_sfx_stop(&f);
}
END_TEST

static Suite *
sealed_suite(void)
{
	Suite *s = suite_create("sealed");
	TCase *tc = tcase_create("controller");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, keys_cert_and_unseal);
	tcase_add_test(tc, scopes_copies_and_tampering);
	tcase_add_test(tc, template_owner_and_adoption);
	tcase_add_test(tc, rotation_inventory_and_reseal);
	tcase_add_test(tc, bitnami_kind_and_imported_key);
	tcase_add_test(tc, encryption_at_source);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sealed_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
