/* syncfx.c — the fixture of the `latchkey sync` suites (syncfx.h). */
#include "syncfx.h"

#include <check.h>
#include <ctype.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "crypto/crypto.h"
#include "manifest/manifest.h"

json_t *
t_sfx_kube(struct t_sfx *f, const char *method, const char *path, const char *body, long want)
{
	json_t *j = NULL;
	long st = t_kube_json(&f->kube, method, path, NULL, body, &j);

	if (want != 0 && st != want) {
		char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

		ck_abort_msg("%s %s: %ld (want %ld): %s", method, path, st, want, text != NULL ? text : "");
	}
	return j;
}

json_t *
t_sfx_patch(struct t_sfx *f, const char *path, const char *body, long want)
{
	json_t *j = NULL;
	long st = t_kube_json(&f->kube, "PATCH", path, "application/merge-patch+json", body, &j);

	ck_assert_msg(st == want, "PATCH %s: %ld (want %ld)", path, st, want);
	return j;
}

json_t *
t_sfx_get(struct t_sfx *f, const char *path)
{
	json_t *j = NULL;

	if (t_kube_json(&f->kube, "GET", path, NULL, NULL, &j) != 200) {
		json_decref(j);
		return NULL;
	}
	return j;
}

void
t_sfx_ns_create(struct t_sfx *f, const char *ns)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
	json_decref(t_sfx_kube(f, "POST", "/api/v1/namespaces", body, 201));
}

struct apply_arg {
	struct t_sfx *f;
	const char *ns;
};

/* The collection URL of a manifest. */
static void
collection(const json_t *obj, const char *dflt_ns, char *out, size_t outlen)
{
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	char plural[128];
	size_t i;
	bool cluster;

	ck_assert_msg(api != NULL && kind != NULL, "a manifest without apiVersion or kind");
	for (i = 0; kind[i] != '\0' && i + 2 < sizeof(plural); i++)
		plural[i] = (char)tolower((unsigned char)kind[i]);
	plural[i++] = 's';
	plural[i] = '\0';
	cluster = strcmp(kind, "Namespace") == 0 || strcmp(kind, "CustomResourceDefinition") == 0 ||
		  strcmp(kind, "ClusterSecretStore") == 0;
	if (ns == NULL)
		ns = dflt_ns;
	snprintf(out, outlen, "/%s/%s%s%s/%s", strchr(api, '/') != NULL ? "apis" : "api", api,
		 cluster ? "" : "/namespaces/", cluster ? "" : ns, plural);
}

static int
apply_doc(const struct lk_manifest_doc *doc, void *arg)
{
	struct apply_arg *a = arg;
	char url[512], *text;

	if (!json_is_object(doc->root))
		return 0;
	collection(doc->root, a->ns, url, sizeof(url));
	text = json_dumps(doc->root, JSON_COMPACT);
	json_decref(t_sfx_kube(a->f, "POST", url, text, 201));
	free(text);
	return 0;
}

void
t_sfx_apply(struct t_sfx *f, const char *ns, const char *text)
{
	struct apply_arg a = { f, ns };
	struct lk_error err;

	ck_assert_msg(lk_manifest_parse_all(text, strlen(text), "manifest", apply_doc, &a, &err) == 0,
		      "%s", err.msg);
}

void
t_sfx_apply_crds(struct t_sfx *f, const char *pattern)
{
	const char *src = getenv("LATCHKEY_SRCDIR");
	char glob_pattern[600];
	glob_t g;

	snprintf(glob_pattern, sizeof(glob_pattern), "%s/%s", src != NULL ? src : ".", pattern);
	ck_assert_int_eq(glob(glob_pattern, 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *text = t_read_file(g.gl_pathv[i]);

		ck_assert_ptr_nonnull(text);
		t_sfx_apply(f, NULL, text);
		free(text);
	}
	globfree(&g);
}

struct served {
	struct t_sfx *f;
	const char *path;
	size_t resources;
};

static bool
group_served(void *arg)
{
	struct served *s = arg;
	json_t *j = t_sfx_get(s->f, s->path);
	bool ok = j != NULL && json_array_size(json_object_get(j, "resources")) >= s->resources;

	json_decref(j);
	return ok;
}

void
t_sfx_start(struct t_sfx *f, const char *extra_crds, const char *const namespaces[])
{
	struct served s;

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(lk_secret_init(), 0);
	f->dir = t_tmpdir();
	ck_assert_msg(t_kube_start(&f->kube, NULL) == 0, "the test API server did not start (%s)",
		      t_fake_apiserver_bin());
	ck_assert_int_eq(t_dev_start(&f->dev, NULL), 0);
	t_sfx_apply_crds(f, "deploy/crds/*.yaml");
	if (extra_crds != NULL)
		t_sfx_apply_crds(f, extra_crds);
	s = (struct served){ f, "/apis/latchkey.io/v1", 4 };
	ck_assert_msg(t_wait_until(group_served, &s, T_DEADLINE_MS), "the CRDs are not served");
	for (size_t i = 0; namespaces != NULL && namespaces[i] != NULL; i++)
		t_sfx_ns_create(f, namespaces[i]);
}

void
t_sfx_ctl_start(struct t_sfx *f, int i, const char *controller_ns, const char *const extra[])
{
	const char *argv[48] = { t_latchkey_bin(), "sync", "--kubeconfig", f->kube.kubeconfig,
		"--metrics", "127.0.0.1:0", "--controller-namespace", controller_ns,
		"--log-level", "debug" };
	size_t n = 10;
	char log[600], line[1024], *at;

	for (size_t j = 0; extra != NULL && extra[j] != NULL && n < 47; j++)
		argv[n++] = extra[j];
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s/sync%d.log", f->dir, i);
	ck_assert_int_eq(t_spawn(&f->ctl[i], argv, NULL, log), 0);
	ck_assert_msg(t_wait_log(&f->ctl[i], "\"msg\":\"starting\"", T_DEADLINE_MS, line, sizeof(line)),
		      "latchkey sync did not start");
	at = strstr(line, "\"metrics_port\":");
	ck_assert_ptr_nonnull(at);
	f->metrics_port[i] = atoi(at + strlen("\"metrics_port\":"));
	ck_assert(t_wait_log(&f->ctl[i], "\"msg\":\"running\"", T_DEADLINE_MS, NULL, 0));
}

void
t_sfx_stop(struct t_sfx *f)
{
	for (int i = 0; i < 2; i++) {
		if (f->ctl[i].pid != 0) {
			int st = t_stop(&f->ctl[i], SIGTERM, T_DEADLINE_MS);

			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
				      "latchkey sync %d did not exit cleanly (%d)", i, st);
		}
	}
	t_dev_stop(&f->dev);
	t_kube_stop(&f->kube);
	t_rmrf(f->dir);
	free(f->dir);
	f->dir = NULL;
}

long
t_sfx_dev(struct t_sfx *f, const char *method, const char *path, const char *body)
{
	char url[512];
	char *out = NULL;
	long st;

	snprintf(url, sizeof(url), "%s%s", f->dev.addr, path);
	st = t_http(method, url, NULL, f->dev.token, body, &out);
	free(out);
	return st;
}

void
t_sfx_kv_put(struct t_sfx *f, const char *path, const char *data)
{
	char url[256], body[4096];

	snprintf(url, sizeof(url), "/v1/secret/data/%s", path);
	snprintf(body, sizeof(body), "{\"data\":%s}", data);
	ck_assert_int_lt(t_sfx_dev(f, "POST", url, body), 300);
}

char *
t_sfx_secret_value(struct t_sfx *f, const char *ns, const char *name, const char *key)
{
	char path[512];
	json_t *s;
	const char *b64;
	unsigned char *raw = NULL;
	size_t n = 0;
	char *out = NULL;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	s = t_sfx_get(f, path);
	b64 = json_string_value(json_object_get(json_object_get(s, "data"), key));
	if (b64 != NULL && lk_b64_decode_raw(b64, strlen(b64), LK_B64_STD, &raw, &n) == 0) {
		out = strndup((const char *)raw, n);
		free(raw);
	}
	json_decref(s);
	return out;
}

struct want_value {
	struct t_sfx *f;
	const char *ns, *secret, *key, *value;
};

static bool
value_is(void *arg)
{
	struct want_value *w = arg;
	char *v = t_sfx_secret_value(w->f, w->ns, w->secret, w->key);
	bool ok = w->value == NULL ? v == NULL : v != NULL && strcmp(v, w->value) == 0;

	free(v);
	return ok;
}

void
t_sfx_wait_value(struct t_sfx *f, const char *ns, const char *name, const char *key, const char *value)
{
	struct want_value w = { f, ns, name, key, value };

	ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "Secret %s/%s key %s never became %s",
		      ns, name, key, value != NULL ? "the expected value" : "absent");
}

struct want_condition {
	struct t_sfx *f;
	const char *path, *type, *status, *needle;
	char message[1024];
};

static bool
condition_is(void *arg)
{
	struct want_condition *w = arg;
	json_t *j = t_sfx_get(w->f, w->path), *c;
	size_t i;
	bool ok = false;

	json_array_foreach(json_object_get(json_object_get(j, "status"), "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *st = json_string_value(json_object_get(c, "status"));
		const char *msg = json_string_value(json_object_get(c, "message"));

		if (type == NULL || strcmp(type, w->type) != 0)
			continue;
		snprintf(w->message, sizeof(w->message), "%s", msg != NULL ? msg : "");
		ok = st != NULL && strcmp(st, w->status) == 0 &&
		     (w->needle == NULL || (msg != NULL && strstr(msg, w->needle) != NULL));
	}
	json_decref(j);
	return ok;
}

void
t_sfx_wait_condition(struct t_sfx *f, const char *path, const char *type, const char *status,
		     const char *needle)
{
	struct want_condition w = { .f = f, .path = path, .type = type, .status = status, .needle = needle };

	ck_assert_msg(t_wait_until(condition_is, &w, T_DEADLINE_MS),
		      "%s never became %s=%s%s%s (last message: %s)", path, type, status,
		      needle != NULL ? " with " : "", needle != NULL ? needle : "", w.message);
}

char *
t_sfx_metrics(struct t_sfx *f, int i)
{
	char url[128], *body = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", f->metrics_port[i]);
	if (t_http("GET", url, NULL, NULL, NULL, &body) != 200) {
		free(body);
		return NULL;
	}
	return body;
}
