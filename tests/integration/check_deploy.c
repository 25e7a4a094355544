/* check_deploy.c — the manifests under deploy/. tests/deploy/check_crds.py (Python yaml and
 * jsonschema) checks the CRDs, the examples and the docs against each other; kubectl's
 * kustomize renders deploy/crds and deploy/broker as `kubectl apply -k` would send them.
 * Where the Python modules or kubectl are missing the test says SKIP, never passes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest/manifest.h"
#include "testutil.h"

/* The Debian interpreter, which sees python3-yaml and python3-jsonschema. */
#define PYTHON "/usr/bin/python3"
/* The most documents a rendered kustomization is expected to hold here. */
#define MAX_DOCS 16

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

START_TEST(crds_examples_and_docs)
{
	const char *probe[] = { PYTHON, "-c", "import yaml, jsonschema", NULL };
	char script[1100];
	int rc;

	if (access(PYTHON, X_OK) != 0) {
		t_skip("crds_examples_and_docs: " PYTHON " not found (tools/deps.sh installs it)");
		return;
	}
	if (t_run(probe, NULL, NULL, NULL, p("probe.err")) != 0) {
		t_skip("crds_examples_and_docs: " PYTHON " lacks yaml or jsonschema "
		       "(tools/deps.sh installs python3-yaml python3-jsonschema)");
		return;
	}
	snprintf(script, sizeof(script), "%s/tests/deploy/check_crds.py", src);
	ck_assert_msg(access(script, R_OK) == 0, "%s not found (run from the source tree or set "
		      "LATCHKEY_SRCDIR)", script);
	{
		const char *argv[] = { PYTHON, script, src, NULL };
		char *out, *err;

		rc = t_run(argv, NULL, NULL, p("out"), p("err"));
		out = slurp(p("out"));
		err = slurp(p("err"));
		ck_assert_msg(rc == 0, "check_crds.py exit %d:\n%s%s", rc, out, err);
		/* the summary line: something was checked and something was refused */
		ck_assert_msg(strstr(out, "ok: ") != NULL && strstr(out, " 0 CRDs") == NULL &&
			      strstr(out, " 0 examples") == NULL && strstr(out, " 0 rejections") == NULL,
			      "unexpected summary:\n%s", out);
		free(out);
		free(err);
	}
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

/* Runs `kubectl kustomize <src>/<what>` and parses its output into r; false (after a
 * SKIP line) when kubectl is missing. */
static bool
kustomize(const char *what, struct rendered *r)
{
	char path[1100];
	/* t_run takes a program path; env finds kubectl on PATH as t_have_program did */
	const char *argv[] = { "/usr/bin/env", "kubectl", "kustomize", path, NULL };
	struct lk_error err;
	char *text, *etext;
	int rc;

	if (!t_have_program("kubectl")) {
		t_skip("kustomize %s: kubectl not found", what);
		return false;
	}
	snprintf(path, sizeof(path), "%s/%s", src, what);
	rc = t_run(argv, NULL, NULL, p("kustomize.out"), p("kustomize.err"));
	etext = slurp(p("kustomize.err"));
	ck_assert_msg(rc == 0, "kubectl kustomize %s: exit %d: %s", what, rc, etext);
	free(etext);
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

static Suite *
deploy_suite(void)
{
	Suite *s = suite_create("deploy");
	TCase *tc = tcase_create("deploy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, crds_examples_and_docs);
	tcase_add_test(tc, kustomize_crds);
	tcase_add_test(tc, kustomize_broker);
	suite_add_tcase(s, tc);
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
