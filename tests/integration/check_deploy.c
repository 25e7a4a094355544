/* check_deploy.c — what deploy/ ships, checked without a cluster or a Docker engine.
 *
 * - tests/deploy/check_crds.py: the CRDs, the examples and the docs against each other;
 * - tests/deploy/check_dockerfile.py: deploy/Dockerfile's invariants, and the build stage's
 *   COPY list built as Docker would copy it;
 * - tests/deploy/check_manifests.py: every kustomization rendered by kubectl and checked
 *   (API versions, container resources, probes and security context, images, RBAC against
 *   the Kubernetes calls in the sources, the controller's and the example app's wiring);
 * - kubectl apply --server-side of the rendered overlays against the test API server;
 * - latchkey sync run as its own service account with the RBAC the production overlay
 *   grants, exercising every rule against latchkey dev: no request refused, no rule unused;
 * - deploy/vault/setup.sh against latchkey dev: the roles log in with the service-account
 *   tokens the test API server signs, and the policies allow what the examples read and
 *   refuse the rest;
 * - the two ways of docs/migrate-from-eso.md and of docs/migrate-from-sealed-secrets.md:
 *   the Secret ESO or Bitnami's controller made is taken over, never deleted, its value
 *   never changed.
 * Where Python's modules, kubectl or make are missing a test says SKIP, never passes. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "fakekube.h"
#include "manifest/manifest.h"
#include "testutil.h"

/* The Debian interpreter, which sees python3-yaml and python3-jsonschema. */
#define PYTHON "/usr/bin/python3"
/* The most documents a rendered kustomization is expected to hold here. */
#define MAX_DOCS 32
/* A Vault value that must reach Secrets and never the controller's log. */
#define VALUE1 "deploy-canary-value-91c3e2"
#define VALUE2 "deploy-canary-value-4be07d"
#define SA_USER "system:serviceaccount:latchkey-system:latchkey-sync"

static char *dir;
static char src[1024];

static void
setup(void)
{
	const char *s = getenv("LATCHKEY_SRCDIR");

	dir = t_tmpdir();
	snprintf(src, sizeof(src), "%s", s ? s : ".");
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

/* The file's text for a failure message ("" when unreadable); owned: free(). */
static char *
slurp(const char *path)
{
	char *text = t_read_file(path);

	return text ? text : strdup("");
}

/* Whether /usr/bin/python3 with yaml (and jsonschema when asked) is here; SKIP otherwise. */
static bool
have_python(const char *test, bool jsonschema)
{
	const char *probe[] = { PYTHON, "-c", jsonschema ? "import yaml, jsonschema" : "import yaml",
				NULL };

	if (access(PYTHON, X_OK) != 0) {
		t_skip("%s: " PYTHON " not found (tools/deps.sh installs it)", test);
		return false;
	}
	if (t_run(probe, NULL, NULL, NULL, p("probe.err")) != 0) {
		t_skip("%s: " PYTHON " lacks %s (tools/deps.sh installs python3-yaml "
		       "python3-jsonschema)", test, jsonschema ? "yaml or jsonschema" : "yaml");
		return false;
	}
	return true;
}

static bool
have_kubectl(const char *test)
{
	if (!t_have_program("kubectl")) {
		t_skip("%s: kubectl not found", test);
		return false;
	}
	return true;
}

/* Runs a checker script of tests/deploy with args; fails with its output unless it exits
 * 0 and prints a summary line starting "ok: ". */
static void
run_checker(const char *script, const char *const extra[])
{
	const char *argv[16] = { PYTHON };
	char path[1100];
	char *out, *err;
	size_t n = 1;
	int rc;

	snprintf(path, sizeof(path), "%s/tests/deploy/%s", src, script);
	ck_assert_msg(access(path, R_OK) == 0, "%s not found (run from the source tree or set "
		      "LATCHKEY_SRCDIR)", path);
	argv[n++] = path;
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	rc = t_run(argv, NULL, NULL, p("checker.out"), p("checker.err"));
	out = slurp(p("checker.out"));
	err = slurp(p("checker.err"));
	ck_assert_msg(rc == 0 && strstr(out, "ok: ") != NULL, "%s exit %d:\n%s%s", script, rc, out, err);
	free(out);
	free(err);
}

START_TEST(crds_examples_and_docs)
{
	char *out;

	if (!have_python("crds_examples_and_docs", true))
		return;
	run_checker("check_crds.py", (const char *const[]){ src, NULL });
	out = slurp(p("checker.out"));
	/* the summary line: something was checked and something was refused */
	ck_assert_msg(strstr(out, " 0 CRDs") == NULL && strstr(out, " 0 examples") == NULL &&
		      strstr(out, " 0 rejections") == NULL, "unexpected summary:\n%s", out);
	free(out);
}
END_TEST

/* The Dockerfile's build stage, emulated: its COPY lines into a fresh directory, then the
 * stage's `make build/latchkey` there with none of this make's variables (make check and
 * make san pass BUILD, SAN and MAKEFLAGS down); then the invariants, with the binary built
 * so, whose shared libraries the run stage must install. */
START_TEST(dockerfile)
{
	const char *make[] = { "/usr/bin/env", "-u", "MAKEFLAGS", "-u", "MFLAGS", "-u", "MAKELEVEL",
		"-u", "SAN", "-u", "TSAN", "-u", "BUILD", "-u", "CFLAGS", "-u", "LDFLAGS", "make", "-C",
		NULL, "-j2", "build/latchkey", NULL };
	char ctx[1100], bin[1200];
	char *log;
	int rc;

	if (!have_python("dockerfile", false))
		return;
	if (!t_have_program("make") || !t_have_program("readelf")) {
		t_skip("dockerfile: make or readelf not found (build-essential)");
		return;
	}
	snprintf(ctx, sizeof(ctx), "%s", p("context"));
	ck_assert_int_eq(mkdir(ctx, 0700), 0);
	run_checker("check_dockerfile.py", (const char *const[]){ src, "--build-dir", ctx, NULL });
	make[19] = ctx;
	rc = t_run(make, NULL, NULL, p("make.log"), p("make.log"));
	log = slurp(p("make.log"));
	ck_assert_msg(rc == 0, "the Dockerfile's build stage does not build from what it copies "
		      "(make exit %d):\n%s", rc, log);
	free(log);
	snprintf(bin, sizeof(bin), "%s/build/latchkey", ctx);
	run_checker("check_dockerfile.py", (const char *const[]){ src, bin, NULL });
}
END_TEST

START_TEST(manifests)
{
	char kubectl[1100];
	const char *which[] = { "/usr/bin/env", "sh", "-c", "command -v kubectl", NULL };
	char *path;

	if (!have_python("manifests", false) || !have_kubectl("manifests"))
		return;
	ck_assert_int_eq(t_run(which, NULL, NULL, p("which"), NULL), 0);
	path = slurp(p("which"));
	path[strcspn(path, "\n")] = '\0';
	snprintf(kubectl, sizeof(kubectl), "%s", path);
	free(path);
	run_checker("check_manifests.py", (const char *const[]){ src, kubectl, t_latchkey_bin(), NULL });
}
END_TEST

struct rendered {
	size_t n;
	json_t *docs[MAX_DOCS];
};

static int
keep_doc(const struct lk_manifest_doc *doc, void *arg)
{
	struct rendered *r = arg;

	if (r->n == MAX_DOCS)
		return -1;
	r->docs[r->n++] = json_incref(doc->root);
	return 0;
}

static void
rendered_clear(struct rendered *r)
{
	for (size_t i = 0; i < r->n; i++)
		json_decref(r->docs[i]);
	r->n = 0;
}

/* Runs `kubectl kustomize <src>/<what>` into out_path. */
static void
kustomize_to(const char *what, const char *out_path)
{
	char path[1100];
	/* t_run takes a program path; env finds kubectl on PATH as t_have_program did */
	const char *argv[] = { "/usr/bin/env", "kubectl", "kustomize", path, NULL };
	char *etext;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", src, what);
	rc = t_run(argv, NULL, NULL, out_path, p("kustomize.err"));
	etext = slurp(p("kustomize.err"));
	ck_assert_msg(rc == 0, "kubectl kustomize %s: exit %d: %s", what, rc, etext);
	free(etext);
}

/* Renders <src>/<what> and parses it into r; false (after a SKIP line) without kubectl. */
static bool
kustomize(const char *what, struct rendered *r)
{
	struct lk_error err;
	char *text;

	if (!have_kubectl(what))
		return false;
	kustomize_to(what, p("kustomize.out"));
	text = t_read_file(p("kustomize.out"));
	ck_assert_ptr_nonnull(text);
	r->n = 0;
	ck_assert_msg(lk_manifest_parse_all(text, strlen(text), "kustomize output", keep_doc, r,
					    &err) == 0, "%s", err.msg);
	free(text);
	return true;
}

static const char *
str_at(json_t *obj, const char *a, const char *b)
{
	json_t *v = json_object_get(obj, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_string_value(v);
}

START_TEST(kustomize_crds)
{
	static const char *const names[] = { "clustersecretstores.latchkey.io",
		"externalsecrets.latchkey.io", "sealedsecrets.latchkey.io",
		"secretstores.latchkey.io" };
	struct rendered r;
	bool seen[4] = { false };

	if (!kustomize("deploy/crds", &r))
		return;
	ck_assert_uint_eq(r.n, 4);
	for (size_t i = 0; i < r.n; i++) {
		const char *name = str_at(r.docs[i], "metadata", "name");
		json_t *versions = json_object_get(json_object_get(r.docs[i], "spec"), "versions");
		size_t j;

		ck_assert_str_eq(str_at(r.docs[i], "apiVersion", NULL), "apiextensions.k8s.io/v1");
		ck_assert_str_eq(str_at(r.docs[i], "kind", NULL), "CustomResourceDefinition");
		ck_assert_str_eq(str_at(json_object_get(r.docs[i], "spec"), "group", NULL),
				 "latchkey.io");
		ck_assert_ptr_nonnull(name);
		for (j = 0; j < 4 && strcmp(names[j], name) != 0; j++)
			;
		ck_assert_msg(j < 4, "unexpected CRD %s", name);
		ck_assert_msg(!seen[j], "%s twice", name);
		seen[j] = true;
		ck_assert_uint_eq(json_array_size(versions), 1);
		ck_assert_ptr_nonnull(json_object_get(json_object_get(json_array_get(versions, 0),
								       "schema"), "openAPIV3Schema"));
	}
	rendered_clear(&r);
}
END_TEST

/* deploy/broker: the ConfigMap generator's hashed name is what the Deployment mounts. */
START_TEST(kustomize_broker)
{
	struct rendered r;
	json_t *sa = NULL, *cm = NULL, *deploy = NULL, *volumes, *v;
	const char *cm_name = NULL, *mounted = NULL;
	size_t i;

	if (!kustomize("deploy/broker", &r))
		return;
	for (i = 0; i < r.n; i++) {
		const char *kind = str_at(r.docs[i], "kind", NULL);

		ck_assert_ptr_nonnull(kind);
		ck_assert_msg(str_at(r.docs[i], "metadata", "namespace") != NULL &&
			      strcmp(str_at(r.docs[i], "metadata", "namespace"), "app") == 0,
			      "%s not in the namespace app", kind);
		if (strcmp(kind, "ServiceAccount") == 0)
			sa = r.docs[i];
		else if (strcmp(kind, "ConfigMap") == 0)
			cm = r.docs[i];
		else if (strcmp(kind, "Deployment") == 0)
			deploy = r.docs[i];
		else
			ck_abort_msg("unexpected %s", kind);
	}
	ck_assert_uint_eq(r.n, 3);
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(cm);
	ck_assert_ptr_nonnull(deploy);
	ck_assert_str_eq(str_at(sa, "metadata", "name"), "app");
	cm_name = str_at(cm, "metadata", "name");
	ck_assert_ptr_nonnull(cm_name);
	ck_assert_msg(strncmp(cm_name, "latchkey-broker-", 16) == 0 && strlen(cm_name) > 16,
		      "ConfigMap %s has no generated suffix", cm_name);
	ck_assert_ptr_nonnull(json_object_get(json_object_get(cm, "data"), "broker.json"));
	volumes = json_object_get(json_object_get(json_object_get(json_object_get(deploy, "spec"),
								  "template"), "spec"), "volumes");
	json_array_foreach(volumes, i, v) {
		const char *vname = json_string_value(json_object_get(v, "name"));

		if (vname != NULL && strcmp(vname, "latchkey-config") == 0)
			mounted = str_at(v, "configMap", "name");
	}
	ck_assert_ptr_nonnull(mounted);
	ck_assert_str_eq(mounted, cm_name);
	rendered_clear(&r);
}
END_TEST

/* ---- against the test API server ---------------------------------------------------- */

static char kubeconfig_env[700];

/* kubectl ARGS... with KUBECONFIG; returns the exit status, output in out_name. */
static int
kubectl(struct t_kube *k, const char *out_name, const char *const args[])
{
	const char *argv[24] = { "/usr/bin/env", "kubectl" };
	const char *env[] = { kubeconfig_env, NULL };
	size_t n = 2;

	snprintf(kubeconfig_env, sizeof(kubeconfig_env), "KUBECONFIG=%s", k->kubeconfig);
	for (size_t i = 0; args[i] != NULL && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return t_run(argv, env, NULL, p(out_name), p(out_name));
}

static void
kubectl_ok(struct t_kube *k, const char *const args[])
{
	int rc = kubectl(k, "kubectl.out", args);
	char *out = slurp(p("kubectl.out"));

	ck_assert_msg(rc == 0, "kubectl %s %s %s: exit %d:\n%s", args[0], args[1] ? args[1] : "",
		      args[1] && args[2] ? args[2] : "", rc, out);
	free(out);
}

static json_t *
kube(struct t_kube *k, const char *method, const char *path, const char *body, long want)
{
	json_t *j = NULL;
	long st = t_kube_json(k, method, path, NULL, body, &j);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	ck_assert_msg(want == 0 || st == want, "%s %s: %ld (want %ld): %s", method, path, st, want,
		      text != NULL ? text : "");
	free(text);
	return j;
}

struct served {
	struct t_kube *k;
	const char *path;
};

static bool
is_served(void *arg)
{
	struct served *s = arg;
	json_t *j = NULL;
	long st = t_kube_json(s->k, "GET", s->path, NULL, NULL, &j);

	json_decref(j);
	return st == 200;
}

/* Renders what (a kustomization under src) and applies it server-side. */
static void
apply_rendered(struct t_kube *k, const char *what, const char *file)
{
	kustomize_to(what, p(file));
	kubectl_ok(k, (const char *const[]){ "apply", "--server-side", "--field-manager=latchkey-deploy",
					     "-f", p(file), NULL });
}

static json_int_t
int_at(json_t *j, const char *a, const char *b)
{
	return json_integer_value(json_object_get(json_object_get(j, a), b));
}

START_TEST(server_side_apply)
{
	struct t_kube k;
	json_t *j;

	if (!have_kubectl("server_side_apply"))
		return;
	ck_assert_msg(t_kube_start(&k, NULL) == 0, "the test API server did not start (%s)",
		      t_fake_apiserver_bin());
	apply_rendered(&k, "deploy/overlays/production", "production.yaml");
	j = kube(&k, "GET", "/apis/apps/v1/namespaces/latchkey-system/deployments/latchkey-sync", NULL, 200);
	ck_assert_int_eq(int_at(j, "spec", "replicas"), 2);
	json_decref(j);
	json_decref(kube(&k, "GET", "/apis/policy/v1/namespaces/latchkey-system/poddisruptionbudgets/latchkey-sync",
			 NULL, 200));
	json_decref(kube(&k, "GET", "/apis/networking.k8s.io/v1/namespaces/latchkey-system/networkpolicies/"
			 "latchkey-sync", NULL, 200));
	json_decref(kube(&k, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/latchkey-sync", NULL, 200));
	json_decref(kube(&k, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
			 "externalsecrets.latchkey.io", NULL, 200));
	/* dev over production: the same objects, one replica. */
	apply_rendered(&k, "deploy/overlays/dev", "dev.yaml");
	j = kube(&k, "GET", "/apis/apps/v1/namespaces/latchkey-system/deployments/latchkey-sync", NULL, 200);
	ck_assert_int_eq(int_at(j, "spec", "replicas"), 1);
	json_decref(j);
	/* The example application, in its namespace. */
	kubectl_ok(&k, (const char *const[]){ "create", "namespace", "app", NULL });
	apply_rendered(&k, "deploy/broker", "broker.yaml");
	json_decref(kube(&k, "GET", "/apis/apps/v1/namespaces/app/deployments/app", NULL, 200));
	/* The CRDs alone, as the docs install them: kubectl apply -f deploy/crds/. */
	{
		char crds[1100];

		snprintf(crds, sizeof(crds), "%s/deploy/crds/", src);
		kubectl_ok(&k, (const char *const[]){ "apply", "--server-side", "--force-conflicts", "-f",
						     crds, NULL });
	}
	ck_assert_int_eq(t_kube_stop(&k), 0);
}
END_TEST

/* ---- the controller as its service account ----------------------------------------- */

struct fx {
	struct t_kube kube;
	struct t_dev dev;
	struct t_proc ctl;
	char sa_kubeconfig[600];
	char audit[600];
};

static long
dev(struct fx *f, const char *method, const char *path, const char *body)
{
	char url[512];
	char *out = NULL;
	long st;

	snprintf(url, sizeof(url), "%s%s", f->dev.addr, path);
	st = t_http(method, url, NULL, f->dev.token, body, &out);
	free(out);
	return st;
}

static void
post(struct fx *f, const char *path, const char *body)
{
	json_decref(kube(&f->kube, "POST", path, body, 201));
}

/* A ServiceAccount token from the TokenRequest API (owned: free). */
static char *
sa_token(struct t_kube *k, const char *ns, const char *name, const char *audience)
{
	char path[300], body[300];
	json_t *j;
	char *tok;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/serviceaccounts/%s/token", ns, name);
	if (audience != NULL)
		snprintf(body, sizeof(body), "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":"
			 "\"TokenRequest\",\"spec\":{\"audiences\":[\"%s\"],\"expirationSeconds\":3600}}",
			 audience);
	else
		snprintf(body, sizeof(body), "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":"
			 "\"TokenRequest\",\"spec\":{\"expirationSeconds\":3600}}");
	j = kube(k, "POST", path, body, 201);
	tok = strdup(json_string_value(json_object_get(json_object_get(j, "status"), "token")));
	json_decref(j);
	return tok;
}

static void
secret_create(struct fx *f, const char *ns, const char *name, const char *key, const char *value)
{
	char path[256], body[1024];
	char *b64 = NULL;

	ck_assert_int_eq(lk_b64_encode(value, strlen(value), LK_B64_STD, &b64), 0);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", ns);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
		 "\"%s\"},\"data\":{\"%s\":\"%s\"}}", name, key, b64);
	free(b64);
	post(f, path, body);
}

/* The decoded value of data[key] of Secret ns/name, or NULL. */
static char *
secret_value(struct fx *f, const char *ns, const char *name, const char *key)
{
	char path[256];
	json_t *j = NULL;
	const char *b64;
	unsigned char *raw = NULL;
	size_t n = 0;
	char *out = NULL;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	if (t_kube_json(&f->kube, "GET", path, NULL, NULL, &j) == 200 &&
	    (b64 = json_string_value(json_object_get(json_object_get(j, "data"), key))) != NULL &&
	    lk_b64_decode_raw(b64, strlen(b64), LK_B64_STD, &raw, &n) == 0) {
		out = strndup((const char *)raw, n);
		free(raw);
	}
	json_decref(j);
	return out;
}

struct want_value {
	struct fx *f;
	const char *ns, *secret, *key, *value;   /* value NULL: the Secret or key is gone */
};

static bool
value_is(void *arg)
{
	struct want_value *w = arg;
	char *v = secret_value(w->f, w->ns, w->secret, w->key);
	bool ok = w->value == NULL ? v == NULL : v != NULL && strcmp(v, w->value) == 0;

	free(v);
	return ok;
}

static void
wait_value(struct fx *f, const char *ns, const char *secret, const char *key, const char *value)
{
	struct want_value w = { f, ns, secret, key, value };

	ck_assert_msg(t_wait_until(value_is, &w, 3 * T_DEADLINE_MS), "Secret %s/%s key %s never became %s",
		      ns, secret, key, value != NULL ? "the expected value" : "absent");
}

struct want_cond {
	struct fx *f;
	const char *path, *status;
};

static bool
cond_is(void *arg)
{
	struct want_cond *w = arg;
	json_t *j = NULL, *c;
	size_t i;
	bool ok = false;

	if (t_kube_json(&w->f->kube, "GET", w->path, NULL, NULL, &j) == 200) {
		json_array_foreach(json_object_get(json_object_get(j, "status"), "conditions"), i, c) {
			if (strcmp(json_string_value(json_object_get(c, "type")), "Ready") == 0)
				ok = strcmp(json_string_value(json_object_get(c, "status")), w->status) == 0;
		}
	}
	json_decref(j);
	return ok;
}

static void
wait_ready(struct fx *f, const char *path, const char *status)
{
	struct want_cond w = { f, path, status };

	ck_assert_msg(t_wait_until(cond_is, &w, 3 * T_DEADLINE_MS), "%s never became Ready=%s", path,
		      status);
}

struct events_in {
	struct fx *f;
	const char *ns, *needle;
};

static bool
has_event(void *arg)
{
	struct events_in *e = arg;
	char path[256], *text;
	json_t *j = NULL;
	bool ok = false;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", e->ns);
	if (t_kube_json(&e->f->kube, "GET", path, NULL, NULL, &j) == 200) {
		text = json_dumps(j, JSON_COMPACT);
		ok = text != NULL && strstr(text, e->needle) != NULL;
		free(text);
	}
	json_decref(j);
	return ok;
}

/* Whether `latchkey seal` with these arguments (a NULL-terminated argv) succeeds now. */
static bool
seals(void *arg)
{
	const char *const *argv = arg;

	return t_run(argv, NULL, NULL, p("seal.out"), p("seal.out")) == 0;
}

static const char es_fmt[] =
	"{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\",\"metadata\":{\"name\":\"%s\"},"
	"\"spec\":{\"refreshInterval\":\"1s\",\"secretStoreRef\":{\"name\":\"%s\",\"kind\":\"%s\"},"
	"\"target\":{\"name\":\"%s\"%s},\"data\":[{\"secretKey\":\"v\",\"remoteRef\":{\"key\":\"%s\","
	"\"property\":\"v\"}}]}}";

static void
es_create(struct fx *f, const char *name, const char *store, const char *kind, const char *target_extra,
	  const char *key)
{
	char body[2048];

	snprintf(body, sizeof(body), es_fmt, name, store, kind, name, target_extra, key);
	post(f, "/apis/latchkey.io/v1/namespaces/app/externalsecrets", body);
}

/* The production overlay applied as the admin, then latchkey sync started as the service
 * account latchkey-system/latchkey-sync with only the RBAC it grants, and a workload that
 * uses every rule: Owner Secrets created and replaced, a Merge target patched, a Delete
 * policy deleting, stores reading token Secrets, a CA ConfigMap and a TokenRequest, a
 * ClusterSecretStore with a namespace selector, status written, Events in the app's and
 * in the controller's namespace, the Lease and the hash key. The test API server's audit
 * log then says whether anything was refused and whether any grant went unused. */
START_TEST(controller_as_its_service_account)
{
	struct fx f;
	const char *audit_arg[] = { "--audit", NULL, NULL };
	char audit_opt[700], body[4096], kubectl_path[1100], *tok, *pub, *esc, *text;
	int metrics_port = 0;
	const char *which[] = { "/usr/bin/env", "sh", "-c", "command -v kubectl", NULL };
	json_t *j;
	int st;

	if (!have_python("controller_as_its_service_account", false) ||
	    !have_kubectl("controller_as_its_service_account"))
		return;
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(lk_secret_init(), 0);
	snprintf(f.audit, sizeof(f.audit), "%s", p("audit.jsonl"));
	snprintf(audit_opt, sizeof(audit_opt), "%s", f.audit);
	audit_arg[1] = audit_opt;
	ck_assert_msg(t_kube_start(&f.kube, audit_arg) == 0, "the test API server did not start");
	ck_assert_int_eq(t_dev_start(&f.dev, NULL), 0);
	apply_rendered(&f.kube, "deploy/overlays/production", "production.yaml");
	{
		struct served s = { &f.kube, "/apis/latchkey.io/v1" };

		ck_assert(t_wait_until(is_served, &s, T_DEADLINE_MS));
	}

	/* The backend: KV values, Kubernetes auth verifying the test API server's tokens. */
	ck_assert_int_lt(dev(&f, "POST", "/v1/secret/data/app/db", "{\"data\":{\"v\":\"" VALUE1 "\"}}"), 300);
	ck_assert_int_lt(dev(&f, "POST", "/v1/secret/data/app/gone", "{\"data\":{\"v\":\"x\"}}"), 300);
	pub = t_read_file(f.kube.sa_pub);
	ck_assert_ptr_nonnull(pub);
	j = json_pack("{s:s, s:[s]}", "kubernetes_host", f.kube.addr, "pem_keys", pub);
	esc = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(pub);
	ck_assert_int_lt(dev(&f, "POST", "/v1/auth/kubernetes/config", esc), 300);
	free(esc);
	ck_assert_int_lt(dev(&f, "POST", "/v1/auth/kubernetes/role/reader",
			     "{\"bound_service_account_names\":[\"reader\"],\"bound_service_account_namespaces\":"
			     "[\"app\"],\"token_policies\":[\"root\"],\"token_ttl\":\"1h\"}"), 300);

	/* The controller, as the service account, with nothing but its token; leading before
	 * the objects below exist, so that each is reconciled as it comes. */
	tok = sa_token(&f.kube, "latchkey-system", "latchkey-sync", NULL);
	snprintf(f.sa_kubeconfig, sizeof(f.sa_kubeconfig), "%s", p("sa.kubeconfig"));
	snprintf(body, sizeof(body), "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n"
		 "    server: %s\n    certificate-authority: %s\nusers:\n- name: sa\n  user:\n    token: %s\n"
		 "contexts:\n- name: sa\n  context: {cluster: fake, user: sa, namespace: latchkey-system}\n"
		 "current-context: sa\n", f.kube.addr, f.kube.ca, tok);
	free(tok);
	ck_assert_int_eq(t_write_file(f.sa_kubeconfig, body, 0600), 0);
	{
		const char *argv[] = { t_latchkey_bin(), "sync", "--kubeconfig", f.sa_kubeconfig,
			"--metrics", "127.0.0.1:0", "--retry-period", "1s", "--log-level", "debug", NULL };
		const char *env[] = { "POD_NAMESPACE=latchkey-system", "POD_NAME=latchkey-sync-test-0", NULL };

		ck_assert_int_eq(t_spawn(&f.ctl, argv, env, p("sync.log")), 0);
	}
	ck_assert_msg(t_wait_log(&f.ctl, "\"msg\":\"leading: writes start\"", 3 * T_DEADLINE_MS, NULL, 0),
		      "latchkey sync never led");
	{
		char line[1024];
		const char *at;

		ck_assert(t_wait_log(&f.ctl, "\"metrics_port\":", T_DEADLINE_MS, line, sizeof(line)));
		at = strstr(line, "\"metrics_port\":");
		metrics_port = atoi(at + strlen("\"metrics_port\":"));
	}

	/* The application's namespace: stores of three kinds, and their inputs. */
	post(&f, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":"
	     "{\"name\":\"app\",\"labels\":{\"latchkey.io/vault\":\"shared\"}}}");
	secret_create(&f, "app", "vault-token", "token", f.dev.token);
	post(&f, "/api/v1/namespaces/app/serviceaccounts",
	     "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"reader\"}}");
	pub = t_read_file(f.kube.ca);
	j = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
		      "name", "vault-ca", "data", "ca.crt", pub);
	esc = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(pub);
	post(&f, "/api/v1/namespaces/app/configmaps", esc);
	free(esc);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\",\"metadata\":"
		 "{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\",\"path\":\"secret\","
		 "\"caProvider\":{\"type\":\"ConfigMap\",\"name\":\"vault-ca\",\"key\":\"ca.crt\"},"
		 "\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\",\"key\":\"token\"}}}}}}", f.dev.addr);
	post(&f, "/apis/latchkey.io/v1/namespaces/app/secretstores", body);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\",\"metadata\":"
		 "{\"name\":\"vault-k8s\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\",\"path\":\"secret\","
		 "\"auth\":{\"kubernetes\":{\"role\":\"reader\",\"serviceAccountRef\":{\"name\":\"reader\","
		 "\"audiences\":[\"vault\"]}}}}}}}", f.dev.addr);
	post(&f, "/apis/latchkey.io/v1/namespaces/app/secretstores", body);
	/* The ClusterSecretStore's token is not there yet: it fails first (an Event in the
	 * controller's namespace), then recovers. */
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ClusterSecretStore\","
		 "\"metadata\":{\"name\":\"shared\"},\"spec\":{\"refreshInterval\":\"1s\",\"provider\":{\"vault\":"
		 "{\"server\":\"%s\",\"path\":\"secret\",\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\","
		 "\"namespace\":\"latchkey-system\",\"key\":\"token\"}}}},\"conditions\":[{\"namespaceSelector\":"
		 "{\"matchLabels\":{\"latchkey.io/vault\":\"shared\"}}}]}}", f.dev.addr);
	post(&f, "/apis/latchkey.io/v1/clustersecretstores", body);
	/* A Merge target made by someone else. */
	secret_create(&f, "app", "merged", "other", "kept");

	es_create(&f, "owned", "vault", "SecretStore", "", "app/db");
	es_create(&f, "merged", "vault", "SecretStore", ",\"creationPolicy\":\"Merge\"", "app/db");
	es_create(&f, "gone", "vault", "SecretStore", ",\"deletionPolicy\":\"Delete\"", "app/gone");
	es_create(&f, "via-k8s", "vault-k8s", "SecretStore", "", "app/db");
	es_create(&f, "broken", "nope", "SecretStore", "", "app/db");

	wait_value(&f, "app", "owned", "v", VALUE1);
	wait_value(&f, "app", "merged", "v", VALUE1);
	wait_value(&f, "app", "gone", "v", "x");
	wait_value(&f, "app", "via-k8s", "v", VALUE1);
	wait_ready(&f, "/apis/latchkey.io/v1/namespaces/app/externalsecrets/broken", "False");
	{
		struct events_in e = { &f, "app", "broken" };

		ck_assert_msg(t_wait_until(has_event, &e, 3 * T_DEADLINE_MS), "no Event about broken");
	}
	{
		struct events_in e = { &f, "latchkey-system", "shared" };

		ck_assert_msg(t_wait_until(has_event, &e, 3 * T_DEADLINE_MS),
			      "no Event about the ClusterSecretStore in the controller's namespace");
	}
	secret_create(&f, "latchkey-system", "vault-token", "token", f.dev.token);
	wait_ready(&f, "/apis/latchkey.io/v1/clustersecretstores/shared", "True");
	es_create(&f, "via-cluster", "shared", "ClusterSecretStore", "", "app/db");
	wait_value(&f, "app", "via-cluster", "v", VALUE1);
	wait_ready(&f, "/apis/latchkey.io/v1/namespaces/app/secretstores/vault", "True");
	/* A new value: the Owner Secret replaced (update). */
	ck_assert_int_lt(dev(&f, "POST", "/v1/secret/data/app/db", "{\"data\":{\"v\":\"" VALUE2 "\"}}"), 300);
	wait_value(&f, "app", "owned", "v", VALUE2);
	/* Every version gone from the backend: deletionPolicy Delete deletes the Secret. */
	ck_assert_int_lt(dev(&f, "DELETE", "/v1/secret/metadata/app/gone", NULL), 300);
	wait_value(&f, "app", "gone", "v", NULL);
	/* A SealedSecret, sealed with `latchkey seal` to the certificate the controller serves
	 * for the sealing key it made in its namespace: unsealed into a Secret, its status
	 * written. */
	{
		char cert[128], secret_yaml[600], sealed_yaml[600], *out;
		const char *seal[] = { t_latchkey_bin(), "seal", "--cert", cert, "-f", secret_yaml, "-o",
			sealed_yaml, NULL };
		int rc = -1;

		snprintf(cert, sizeof(cert), "http://127.0.0.1:%d/v1/cert.pem", metrics_port);
		snprintf(secret_yaml, sizeof(secret_yaml), "%s", p("smtp.yaml"));
		snprintf(sealed_yaml, sizeof(sealed_yaml), "%s", p("smtp.sealed.yaml"));
		ck_assert_int_eq(t_write_file(secret_yaml, "apiVersion: v1\nkind: Secret\nmetadata:\n"
					      "  name: smtp\n  namespace: app\nstringData:\n  password: " VALUE1 "\n",
					      0600), 0);
		/* The first key is made once the controller leads: until then there is no cert. */
		rc = t_wait_until(seals, (void *)seal, 3 * T_DEADLINE_MS) ? 0 : -1;
		out = slurp(p("seal.out"));
		ck_assert_msg(rc == 0, "latchkey seal --cert %s: %s", cert, out);
		free(out);
		kubectl_ok(&f.kube, (const char *const[]){ "apply", "--server-side", "-f", sealed_yaml, NULL });
		wait_value(&f, "app", "smtp", "password", VALUE1);
	}
	/* SIGTERM releases the Lease (get, update) before the process exits. */
	st = t_stop(&f.ctl, SIGTERM, T_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "latchkey sync did not exit cleanly (%d)", st);
	text = slurp(f.ctl.log_path);
	ck_assert_msg(strstr(text, VALUE1) == NULL && strstr(text, VALUE2) == NULL &&
		      strstr(text, f.dev.token) == NULL, "a value or the token in the controller's log");
	free(text);

	ck_assert_int_eq(t_run(which, NULL, NULL, p("which"), NULL), 0);
	text = slurp(p("which"));
	text[strcspn(text, "\n")] = '\0';
	snprintf(kubectl_path, sizeof(kubectl_path), "%s", text);
	free(text);
	run_checker("check_manifests.py", (const char *const[]){ src, kubectl_path, "--audit", f.audit, NULL });
	t_dev_stop(&f.dev);
	ck_assert_int_eq(t_kube_stop(&f.kube), 0);
}
END_TEST

/* ---- moving from External Secrets Operator (docs/migrate-from-eso.md) ---------------- */

struct mig {
	struct fx f;
	char uid[128];          /* the ESO ExternalSecret's */
	char rv[64];            /* the Secret's resourceVersion once made */
	char *b64;              /* the value, base64 */
};

/* ESO's CRDs (tests/fixtures/compat-crds), a store and an ExternalSecret of theirs, and the
 * Secret ESO would have written for it: owned by it, labelled as ESO labels. */
static void
mig_start(struct mig *m)
{
	char body[4096], crds[1100];
	json_t *j;

	memset(m, 0, sizeof(*m));
	ck_assert_int_eq(lk_secret_init(), 0);
	ck_assert_msg(t_kube_start(&m->f.kube, NULL) == 0, "the test API server did not start");
	ck_assert_int_eq(t_dev_start(&m->f.dev, NULL), 0);
	snprintf(crds, sizeof(crds), "%s/tests/fixtures/compat-crds/", src);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", crds, NULL });
	snprintf(crds, sizeof(crds), "%s/deploy/crds/", src);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", crds, NULL });
	{
		struct served s = { &m->f.kube, "/apis/external-secrets.io/v1" };
		struct served l = { &m->f.kube, "/apis/latchkey.io/v1" };

		ck_assert(t_wait_until(is_served, &s, T_DEADLINE_MS));
		ck_assert(t_wait_until(is_served, &l, T_DEADLINE_MS));
	}
	ck_assert_int_lt(dev(&m->f, "POST", "/v1/secret/data/app/db", "{\"data\":{\"v\":\"" VALUE1 "\"}}"), 300);
	post(&m->f, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"app\"}}");
	post(&m->f, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":"
	     "{\"name\":\"latchkey-system\"}}");
	secret_create(&m->f, "app", "vault-token", "token", m->f.dev.token);
	for (int i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), "{\"apiVersion\":\"%s\",\"kind\":\"SecretStore\",\"metadata\":"
			 "{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\",\"path\":\"secret\","
			 "\"version\":\"v2\",\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\",\"key\":\"token\"}}}}}}",
			 i == 0 ? "external-secrets.io/v1" : "latchkey.io/v1", m->f.dev.addr);
		post(&m->f, i == 0 ? "/apis/external-secrets.io/v1/namespaces/app/secretstores" :
		     "/apis/latchkey.io/v1/namespaces/app/secretstores", body);
	}
	j = kube(&m->f.kube, "POST", "/apis/external-secrets.io/v1/namespaces/app/externalsecrets",
		 "{\"apiVersion\":\"external-secrets.io/v1\",\"kind\":\"ExternalSecret\",\"metadata\":{\"name\":\"db\"},"
		 "\"spec\":{\"refreshInterval\":\"1h0m0s\",\"secretStoreRef\":{\"name\":\"vault\",\"kind\":\"SecretStore\"},"
		 "\"target\":{\"name\":\"db\",\"creationPolicy\":\"Owner\"},\"data\":[{\"secretKey\":\"v\",\"remoteRef\":"
		 "{\"key\":\"secret/app/db\",\"property\":\"v\"}}]}}", 201);
	snprintf(m->uid, sizeof(m->uid), "%s", str_at(j, "metadata", "uid"));
	json_decref(j);
	ck_assert_int_eq(lk_b64_encode(VALUE1, strlen(VALUE1), LK_B64_STD, &m->b64), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\","
		 "\"labels\":{\"reconcile.external-secrets.io/managed\":\"true\"},\"annotations\":"
		 "{\"reconcile.external-secrets.io/data-hash\":\"0123\"},\"ownerReferences\":[{\"apiVersion\":"
		 "\"external-secrets.io/v1\",\"kind\":\"ExternalSecret\",\"name\":\"db\",\"uid\":\"%s\","
		 "\"controller\":true,\"blockOwnerDeletion\":true}]},\"type\":\"Opaque\",\"data\":{\"v\":\"%s\"}}",
		 m->uid, m->b64);
	j = kube(&m->f.kube, "POST", "/api/v1/namespaces/app/secrets", body, 201);
	snprintf(m->rv, sizeof(m->rv), "%s", str_at(j, "metadata", "resourceVersion"));
	json_decref(j);
}

static void
mig_controller(struct mig *m, const char *const extra[])
{
	const char *argv[16] = { t_latchkey_bin(), "sync", "--kubeconfig", m->f.kube.kubeconfig, "--metrics",
		"127.0.0.1:0", "--controller-namespace", "latchkey-system", "--leader-elect=false" };
	size_t n = 9;

	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	ck_assert_int_eq(t_spawn(&m->f.ctl, argv, NULL, p("sync.log")), 0);
	ck_assert(t_wait_log(&m->f.ctl, "\"msg\":\"running\"", T_DEADLINE_MS, NULL, 0));
}

struct owned_by {
	struct fx *f;
	const char *uid;        /* NULL: no controller owner at all */
	bool latchkey_label;
};

static bool
secret_owned_by(void *arg)
{
	struct owned_by *o = arg;
	json_t *j = NULL, *r;
	const char *uid = NULL;
	size_t i;
	bool ok = false;

	if (t_kube_json(&o->f->kube, "GET", "/api/v1/namespaces/app/secrets/db", NULL, NULL, &j) == 200) {
		json_array_foreach(json_object_get(json_object_get(j, "metadata"), "ownerReferences"), i, r) {
			if (json_is_true(json_object_get(r, "controller")))
				uid = json_string_value(json_object_get(r, "uid"));
		}
		ok = o->uid == NULL ? uid == NULL : uid != NULL && strcmp(uid, o->uid) == 0;
		if (o->latchkey_label)
			ok = ok && json_object_get(json_object_get(json_object_get(j, "metadata"), "labels"),
						   "latchkey.io/managed") != NULL;
	}
	json_decref(j);
	return ok;
}

/* Every event of the Secret since it was made: it was never deleted, its value never
 * changed. */
static void
mig_check_history(struct mig *m)
{
	char path[400], needle[200], *body = NULL;
	long st;

	snprintf(path, sizeof(path), "/api/v1/namespaces/app/secrets?watch=true&resourceVersion=%s"
		 "&fieldSelector=metadata.name%%3Ddb&timeoutSeconds=2", m->rv);
	st = t_kube_stream(&m->f.kube, path, NULL, 3 * T_DEADLINE_MS, &body);
	ck_assert_int_eq(st, 200);
	ck_assert_ptr_nonnull(body);
	ck_assert_msg(strstr(body, "\"type\":\"DELETED\"") == NULL, "the Secret was deleted on the way:\n%s", body);
	ck_assert_msg(strstr(body, "\"type\":\"MODIFIED\"") != NULL, "the Secret was never taken over");
	snprintf(needle, sizeof(needle), "\"v\":\"%s\"", m->b64);
	for (const char *ev = strstr(body, "{\"type\""); ev != NULL; ev = strstr(ev + 1, "{\"type\"")) {
		const char *end = strstr(ev + 1, "{\"type\"");
		const char *v = strstr(ev, needle);

		ck_assert_msg(v != NULL && (end == NULL || v < end), "an event of the Secret with other data");
	}
	free(body);
}

static void
mig_stop(struct mig *m)
{
	int st = t_stop(&m->f.ctl, SIGTERM, T_DEADLINE_MS);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "latchkey sync did not exit cleanly (%d)", st);
	free(m->b64);
	t_dev_stop(&m->f.dev);
	ck_assert_int_eq(t_kube_stop(&m->f.kube), 0);
}

/* Drop-in: ESO's controller gone, latchkey sync --compat external-secrets takes over ESO's
 * objects; the Secret keeps its owner and its value, and is never deleted. */
START_TEST(migrate_from_eso_drop_in)
{
	struct mig m;
	struct owned_by o;

	if (!have_kubectl("migrate_from_eso_drop_in"))
		return;
	mig_start(&m);
	mig_controller(&m, (const char *const[]){ "--compat", "external-secrets", NULL });
	o = (struct owned_by){ &m.f, m.uid, true };
	ck_assert_msg(t_wait_until(secret_owned_by, &o, 3 * T_DEADLINE_MS),
		      "latchkey did not take the Secret over from ESO's ExternalSecret");
	wait_ready(&m.f, "/apis/external-secrets.io/v1/namespaces/app/externalsecrets/db", "True");
	mig_check_history(&m);
	mig_stop(&m);
}
END_TEST

/* Convert: the latchkey twin applied first fails (the Secret is ESO's); the ESO
 * ExternalSecret deleted with --cascade=orphan; latchkey's takes the Secret over. */
START_TEST(migrate_from_eso_convert)
{
	struct mig m;
	struct owned_by o;
	char uid[128];
	json_t *j;

	if (!have_kubectl("migrate_from_eso_convert"))
		return;
	mig_start(&m);
	mig_controller(&m, NULL);
	j = kube(&m.f.kube, "POST", "/apis/latchkey.io/v1/namespaces/app/externalsecrets",
		 "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\",\"metadata\":{\"name\":\"db\"},"
		 "\"spec\":{\"refreshInterval\":\"1h0m0s\",\"secretStoreRef\":{\"name\":\"vault\",\"kind\":\"SecretStore\"},"
		 "\"target\":{\"name\":\"db\",\"creationPolicy\":\"Owner\"},\"data\":[{\"secretKey\":\"v\",\"remoteRef\":"
		 "{\"key\":\"secret/app/db\",\"property\":\"v\"}}]}}", 201);
	snprintf(uid, sizeof(uid), "%s", str_at(j, "metadata", "uid"));
	json_decref(j);
	wait_ready(&m.f, "/apis/latchkey.io/v1/namespaces/app/externalsecrets/db", "False");
	kubectl_ok(&m.f.kube, (const char *const[]){ "-n", "app", "delete", "externalsecrets.external-secrets.io",
						     "db", "--cascade=orphan", NULL });
	o = (struct owned_by){ &m.f, uid, true };
	ck_assert_msg(t_wait_until(secret_owned_by, &o, 3 * T_DEADLINE_MS),
		      "latchkey's ExternalSecret did not take the orphaned Secret over");
	wait_ready(&m.f, "/apis/latchkey.io/v1/namespaces/app/externalsecrets/db", "True");
	mig_check_history(&m);
	mig_stop(&m);
}
END_TEST

/* ---- moving from Bitnami Sealed Secrets (docs/migrate-from-sealed-secrets.md) -------- */

/* Bitnami's CRD, a sealing key in Bitnami's shape given to latchkey's namespace, a
 * bitnami.com SealedSecret sealed to it (in *sealed_yaml), and the Secret Bitnami's
 * controller would have made from it: owned by it, the plaintext value. */
static void
mig_sealed_start(struct mig *m, char *sealed_yaml, size_t len)
{
	char body[4096], crds[1100], keys[600], key_yaml[600], secret_yaml[600], cert[700], *out;
	json_t *j;
	int rc;

	memset(m, 0, sizeof(*m));
	ck_assert_int_eq(lk_secret_init(), 0);
	ck_assert_msg(t_kube_start(&m->f.kube, NULL) == 0, "the test API server did not start");
	snprintf(crds, sizeof(crds), "%s/tests/fixtures/compat-crds/", src);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", crds, NULL });
	snprintf(crds, sizeof(crds), "%s/deploy/crds/", src);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", crds, NULL });
	{
		struct served s = { &m->f.kube, "/apis/bitnami.com/v1alpha1" };
		struct served l = { &m->f.kube, "/apis/latchkey.io/v1" };

		ck_assert(t_wait_until(is_served, &s, T_DEADLINE_MS));
		ck_assert(t_wait_until(is_served, &l, T_DEADLINE_MS));
	}
	post(&m->f, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"app\"}}");
	post(&m->f, "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":"
	     "{\"name\":\"latchkey-system\"}}");
	/* The key, as an admin copies Bitnami's key Secrets over. */
	snprintf(keys, sizeof(keys), "%s", p("keys"));
	snprintf(key_yaml, sizeof(key_yaml), "%s", p("key.yaml"));
	rc = t_run((const char *const[]){ t_latchkey_bin(), "keygen", "--out-dir", keys, "--secret-manifest",
					  key_yaml, "--namespace", "latchkey-system", "--key-size", "2048", NULL },
		   NULL, NULL, p("keygen.out"), p("keygen.out"));
	out = slurp(p("keygen.out"));
	ck_assert_msg(rc == 0, "latchkey keygen: %s", out);
	free(out);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", key_yaml, NULL });
	snprintf(secret_yaml, sizeof(secret_yaml), "%s", p("smtp.yaml"));
	ck_assert_int_eq(t_write_file(secret_yaml, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: smtp\n"
				      "  namespace: app\nstringData:\n  password: " VALUE1 "\n", 0600), 0);
	snprintf(cert, sizeof(cert), "%s/0001.crt", keys);
	snprintf(sealed_yaml, len, "%s", p("smtp.sealed.yaml"));
	rc = t_run((const char *const[]){ t_latchkey_bin(), "seal", "--cert", cert, "--compat", "sealed-secrets",
					  "-f", secret_yaml, "-o", sealed_yaml, NULL }, NULL, NULL, p("seal.out"),
		   p("seal.out"));
	out = slurp(p("seal.out"));
	ck_assert_msg(rc == 0, "latchkey seal: %s", out);
	free(out);
	kubectl_ok(&m->f.kube, (const char *const[]){ "apply", "--server-side", "-f", sealed_yaml, NULL });
	j = kube(&m->f.kube, "GET", "/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/smtp", NULL, 200);
	snprintf(m->uid, sizeof(m->uid), "%s", str_at(j, "metadata", "uid"));
	json_decref(j);
	ck_assert_int_eq(lk_b64_encode(VALUE1, strlen(VALUE1), LK_B64_STD, &m->b64), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"smtp\","
		 "\"ownerReferences\":[{\"apiVersion\":\"bitnami.com/v1alpha1\",\"kind\":\"SealedSecret\","
		 "\"name\":\"smtp\",\"uid\":\"%s\",\"controller\":true}]},\"type\":\"Opaque\","
		 "\"data\":{\"password\":\"%s\"}}", m->uid, m->b64);
	j = kube(&m->f.kube, "POST", "/api/v1/namespaces/app/secrets", body, 201);
	snprintf(m->rv, sizeof(m->rv), "%s", str_at(j, "metadata", "resourceVersion"));
	json_decref(j);
}

static bool
smtp_owned_by(void *arg)
{
	struct owned_by *o = arg;
	json_t *j = NULL, *r;
	const char *uid = NULL;
	size_t i;
	bool ok = false;

	if (t_kube_json(&o->f->kube, "GET", "/api/v1/namespaces/app/secrets/smtp", NULL, NULL, &j) == 200) {
		json_array_foreach(json_object_get(json_object_get(j, "metadata"), "ownerReferences"), i, r) {
			if (json_is_true(json_object_get(r, "controller")))
				uid = json_string_value(json_object_get(r, "uid"));
		}
		ok = uid != NULL && strcmp(uid, o->uid) == 0 &&
		     json_object_get(json_object_get(json_object_get(j, "metadata"), "labels"),
				     "latchkey.io/managed") != NULL;
	}
	json_decref(j);
	return ok;
}

/* The Secret's history since it was made: never deleted, its value never changed. */
static void
mig_sealed_history(struct mig *m)
{
	char path[400], needle[200], *body = NULL;

	snprintf(path, sizeof(path), "/api/v1/namespaces/app/secrets?watch=true&resourceVersion=%s"
		 "&fieldSelector=metadata.name%%3Dsmtp&timeoutSeconds=2", m->rv);
	ck_assert_int_eq(t_kube_stream(&m->f.kube, path, NULL, 3 * T_DEADLINE_MS, &body), 200);
	ck_assert_ptr_nonnull(body);
	ck_assert_msg(strstr(body, "\"type\":\"DELETED\"") == NULL, "the Secret was deleted on the way:\n%s", body);
	ck_assert_msg(strstr(body, "\"type\":\"MODIFIED\"") != NULL, "the Secret was never taken over");
	snprintf(needle, sizeof(needle), "\"password\":\"%s\"", m->b64);
	for (const char *ev = strstr(body, "{\"type\""); ev != NULL; ev = strstr(ev + 1, "{\"type\"")) {
		const char *end = strstr(ev + 1, "{\"type\"");
		const char *v = strstr(ev, needle);

		ck_assert_msg(v != NULL && (end == NULL || v < end), "an event of the Secret with other data");
	}
	free(body);
}

static void
mig_sealed_stop(struct mig *m)
{
	int st = t_stop(&m->f.ctl, SIGTERM, T_DEADLINE_MS);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "latchkey sync did not exit cleanly (%d)", st);
	free(m->b64);
	ck_assert_int_eq(t_kube_stop(&m->f.kube), 0);
}

/* Drop-in: Bitnami's controller gone, latchkey sync --compat sealed-secrets opens its
 * SealedSecret with the key it was given and takes the Secret over in place. */
START_TEST(migrate_from_sealed_secrets_drop_in)
{
	char sealed[600];
	struct mig m;
	struct owned_by o;

	if (!have_kubectl("migrate_from_sealed_secrets_drop_in"))
		return;
	mig_sealed_start(&m, sealed, sizeof(sealed));
	mig_controller(&m, (const char *const[]){ "--compat", "sealed-secrets", NULL });
	o = (struct owned_by){ &m.f, m.uid, true };
	ck_assert_msg(t_wait_until(smtp_owned_by, &o, 3 * T_DEADLINE_MS),
		      "latchkey did not take the Secret over from Bitnami's SealedSecret");
	mig_sealed_history(&m);
	mig_sealed_stop(&m);
}
END_TEST

/* Convert, in the order docs/migrate-from-sealed-secrets.md gives: Bitnami's SealedSecret
 * deleted with --cascade=orphan, the Secret annotated managed (Bitnami's rule for taking
 * over a Secret latchkey did not make), then the latchkey.io twin applied, which takes the
 * Secret over in place. */
START_TEST(migrate_from_sealed_secrets_convert)
{
	char sealed[600], *text, *at, uid[128];
	struct mig m;
	struct owned_by o;
	json_t *j;

	if (!have_kubectl("migrate_from_sealed_secrets_convert"))
		return;
	mig_sealed_start(&m, sealed, sizeof(sealed));
	mig_controller(&m, NULL);
	kubectl_ok(&m.f.kube, (const char *const[]){ "-n", "app", "delete", "sealedsecrets.bitnami.com", "smtp",
						     "--cascade=orphan", NULL });
	kubectl_ok(&m.f.kube, (const char *const[]){ "-n", "app", "annotate", "secret", "smtp",
						     "sealedsecrets.bitnami.com/managed=true", NULL });
	text = slurp(sealed);
	ck_assert_ptr_nonnull(at = strstr(text, "apiVersion: bitnami.com/v1alpha1"));
	memcpy(at, "apiVersion: latchkey.io/v1      ", strlen("apiVersion: bitnami.com/v1alpha1"));
	ck_assert_int_eq(t_write_file(p("smtp.latchkey.yaml"), text, 0600), 0);
	free(text);
	kubectl_ok(&m.f.kube, (const char *const[]){ "apply", "--server-side", "-f", p("smtp.latchkey.yaml"), NULL });
	j = kube(&m.f.kube, "GET", "/apis/latchkey.io/v1/namespaces/app/sealedsecrets/smtp", NULL, 200);
	snprintf(uid, sizeof(uid), "%s", str_at(j, "metadata", "uid"));
	json_decref(j);
	o = (struct owned_by){ &m.f, uid, true };
	ck_assert_msg(t_wait_until(smtp_owned_by, &o, 3 * T_DEADLINE_MS),
		      "latchkey's SealedSecret did not take the annotated Secret over");
	mig_sealed_history(&m);
	mig_sealed_stop(&m);
}
END_TEST

/* ---- deploy/vault ------------------------------------------------------------------- */

/* Logs in to latchkey dev with role and jwt; the client token (owned) or NULL. */
static char *
vault_login(struct t_dev *d, const char *role, const char *jwt, long *ret_status)
{
	char url[300], *out = NULL, *tok = NULL;
	json_t *body = json_pack("{s:s, s:s}", "role", role, "jwt", jwt), *j;
	char *text = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	snprintf(url, sizeof(url), "%s/v1/auth/kubernetes/login", d->addr);
	*ret_status = t_http("POST", url, NULL, NULL, text, &out);
	free(text);
	if (*ret_status == 200 && (j = json_loads(out, 0, NULL)) != NULL) {
		const char *t = json_string_value(json_object_get(json_object_get(j, "auth"), "client_token"));

		tok = t != NULL ? strdup(t) : NULL;
		json_decref(j);
	}
	free(out);
	return tok;
}

static long
vault_as(struct t_dev *d, const char *token, const char *method, const char *path, const char *body)
{
	char url[300], *out = NULL;
	long st;

	snprintf(url, sizeof(url), "%s/v1/%s", d->addr, path);
	st = t_http(method, url, NULL, token, body, &out);
	free(out);
	return st;
}

START_TEST(vault_setup_and_policies)
{
	struct t_kube k;
	struct t_dev d;
	char script[1100], env_addr[200], env_token[200], env_host[200], env_ca[700], env_pem[700];
	char *jwt, *tok, *out;
	const char *env[] = { env_addr, env_token, env_host, env_ca, env_pem, NULL };
	long st;
	int rc;

	if (!t_have_program("curl")) {
		t_skip("vault_setup_and_policies: curl not found (deploy/vault/setup.sh uses it)");
		return;
	}
	ck_assert_msg(t_kube_start(&k, NULL) == 0, "the test API server did not start");
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
	snprintf(script, sizeof(script), "%s/deploy/vault/setup.sh", src);
	snprintf(env_addr, sizeof(env_addr), "VAULT_ADDR=%s", d.addr);
	snprintf(env_token, sizeof(env_token), "VAULT_TOKEN=%s", d.token);
	snprintf(env_host, sizeof(env_host), "KUBERNETES_HOST=%s", k.addr);
	snprintf(env_ca, sizeof(env_ca), "KUBERNETES_CA_CERT=%s", k.ca);
	snprintf(env_pem, sizeof(env_pem), "KUBERNETES_PEM_KEYS=%s", k.sa_pub);
	/* Twice: every step is idempotent. */
	for (int i = 0; i < 2; i++) {
		rc = t_run((const char *const[]){ "/bin/sh", script, NULL }, env, NULL, p("setup.out"),
			   p("setup.out"));
		out = slurp(p("setup.out"));
		ck_assert_msg(rc == 0, "deploy/vault/setup.sh exit %d:\n%s", rc, out);
		free(out);
	}
	ck_assert_int_lt(vault_as(&d, d.token, "POST", "secret/data/app/api", "{\"data\":{\"k\":\"v\"}}"), 300);
	ck_assert_int_lt(vault_as(&d, d.token, "POST", "secret/data/shared/x", "{\"data\":{\"k\":\"v\"}}"), 300);
	ck_assert_int_lt(vault_as(&d, d.token, "POST", "secret/data/other/y", "{\"data\":{\"k\":\"v\"}}"), 300);
	ck_assert_int_lt(vault_as(&d, d.token, "POST", "database/roles/app",
				  "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"max_ttl\":\"24h\"}"), 300);

	/* The broker of deploy/broker: service account app/app, a token for the audience vault. */
	json_decref(kube(&k, "POST", "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
			 "\"metadata\":{\"name\":\"app\"}}", 201));
	json_decref(kube(&k, "POST", "/api/v1/namespaces/app/serviceaccounts", "{\"apiVersion\":\"v1\","
			 "\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"app\"}}", 201));
	jwt = sa_token(&k, "app", "app", "vault");
	tok = vault_login(&d, "app", jwt, &st);
	ck_assert_msg(tok != NULL, "role app: login as app/app: %ld", st);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/data/app/api", NULL), 200);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "database/creds/app", NULL), 200);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/data/shared/x", NULL), 403);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/data/other/y", NULL), 403);
	ck_assert_int_eq(vault_as(&d, tok, "POST", "secret/data/app/api", "{\"data\":{\"k\":\"w\"}}"), 403);
	free(tok);
	/* The controller's role does not take the app's service account, nor the app's role
	 * the controller's. */
	tok = vault_login(&d, "latchkey-sync", jwt, &st);
	ck_assert_msg(tok == NULL && st == 403, "role latchkey-sync took app/app (%ld)", st);
	free(jwt);

	/* The controller: latchkey-system/latchkey-sync. */
	json_decref(kube(&k, "POST", "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
			 "\"metadata\":{\"name\":\"latchkey-system\"}}", 201));
	json_decref(kube(&k, "POST", "/api/v1/namespaces/latchkey-system/serviceaccounts", "{\"apiVersion\":"
			 "\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"latchkey-sync\"}}", 201));
	jwt = sa_token(&k, "latchkey-system", "latchkey-sync", "vault");
	tok = vault_login(&d, "latchkey-sync", jwt, &st);
	ck_assert_msg(tok != NULL, "role latchkey-sync: login: %ld", st);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/data/shared/x", NULL), 200);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/metadata/shared/x", NULL), 200);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "secret/data/app/api", NULL), 403);
	ck_assert_int_eq(vault_as(&d, tok, "GET", "database/creds/app", NULL), 403);
	ck_assert_int_eq(vault_as(&d, tok, "POST", "auth/token/renew-self", "{}"), 200);
	free(tok);
	tok = vault_login(&d, "app", jwt, &st);
	ck_assert_msg(tok == NULL && st == 403, "role app took latchkey-system/latchkey-sync (%ld)", st);
	free(jwt);
	t_dev_stop(&d);
	ck_assert_int_eq(t_kube_stop(&k), 0);
}
END_TEST

static Suite *
deploy_suite(void)
{
	Suite *s = suite_create("deploy");
	TCase *tc = tcase_create("deploy");
	TCase *slow = tcase_create("against the test API server");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, crds_examples_and_docs);
	tcase_add_test(tc, dockerfile);
	tcase_add_test(tc, manifests);
	tcase_add_test(tc, kustomize_crds);
	tcase_add_test(tc, kustomize_broker);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(slow, setup, teardown);
	tcase_set_timeout(slow, 300);
	tcase_add_test(slow, server_side_apply);
	tcase_add_test(slow, controller_as_its_service_account);
	tcase_add_test(slow, vault_setup_and_policies);
	tcase_add_test(slow, migrate_from_eso_drop_in);
	tcase_add_test(slow, migrate_from_eso_convert);
	tcase_add_test(slow, migrate_from_sealed_secrets_drop_in);
	tcase_add_test(slow, migrate_from_sealed_secrets_convert);
	suite_add_tcase(s, slow);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(deploy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
