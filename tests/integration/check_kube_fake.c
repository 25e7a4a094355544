/* check_kube_fake.c — the test Kubernetes API server (build/fake-apiserver, $FAKE_APISERVER):
 * real clients drive it (tests/interop/kubectl.sh with the oldest, newest and default
 * kubectl; tests/interop/kube_client.py with the Python client), and libcurl checks what
 * scripts show poorly: Status bodies, 409 on a stale resourceVersion, the 410 ERROR event,
 * pagination tokens, faults, counters, the audit log, apply conflicts, garbage collection.
 * Every test starts its own server and stops it, also when it fails. */
#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakekube.h"
#include "testutil.h"

/* The Debian interpreter, which has python3-kubernetes. */
#define PYTHON "/usr/bin/python3"

static struct t_kube kube;
static char *work;

static void
setup(void)
{
	work = t_tmpdir();
	ck_assert_ptr_nonnull(work);
}

static void
teardown(void)
{
	int status = t_kube_stop(&kube);

	t_rmrf(work);
	free(work);
	work = NULL;
	/* a server that crashed or leaked (sanitizer builds) fails the test */
	ck_assert_msg(status == 0 || status == -1, "fake-apiserver exit status %d", status);
}

static void
start(const char *const extra[])
{
	int r = t_kube_start(&kube, extra);

	ck_assert_msg(r == 0, "the fake did not start (%d): %s", r, t_read_file(kube.log));
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A dotted path in a JSON value ("details.causes.0.field" indexes arrays too). */
static json_t *
jget(json_t *v, const char *path)
{
	char part[256];
	const char *p = path;

	while (v != NULL && *p != '\0') {
		size_t n = strcspn(p, ".");

		snprintf(part, sizeof(part), "%.*s", (int)n, p);
		if (json_is_array(v))
			v = json_array_get(v, (size_t)atoi(part));
		else
			v = json_object_get(v, part);
		p += n;
		if (*p == '.')
			p++;
	}
	return v;
}

static const char *
jstr(json_t *v, const char *path)
{
	const char *s = json_string_value(jget(v, path));

	return s != NULL ? s : "";
}

/* The request as the admin, its status checked; the body returned (decref it). */
static json_t *
call(long want, const char *method, const char *path, const char *ctype, const char *body)
{
	json_t *j = NULL;
	long got = t_kube_json(&kube, method, path, ctype, body, &j);

	ck_assert_msg(got == want, "%s %s: %ld, not %ld: %s", method, path, got, want,
		      j != NULL ? json_dumps(j, JSON_COMPACT) : "(no JSON)");
	return j != NULL ? j : json_object();
}

static void
call0(long want, const char *method, const char *path, const char *ctype, const char *body)
{
	json_decref(call(want, method, path, ctype, body));
}

/* A failure Status as REFERENCE.md §2.4 shapes it. */
static void
check_status(json_t *s, int code, const char *reason)
{
	ck_assert_str_eq(jstr(s, "kind"), "Status");
	ck_assert_str_eq(jstr(s, "apiVersion"), "v1");
	ck_assert(json_is_object(jget(s, "metadata")));
	ck_assert_str_eq(jstr(s, "status"), "Failure");
	ck_assert_str_eq(jstr(s, "reason"), reason);
	ck_assert_int_eq(json_integer_value(jget(s, "code")), code);
	ck_assert(strlen(jstr(s, "message")) > 0);
}

static const char *
src(const char *rel)
{
	static char buf[4][PATH_MAX];
	static int n;
	const char *root = getenv("LATCHKEY_SRCDIR");
	char *b = buf[n++ % 4];

	snprintf(b, PATH_MAX, "%s/%s", root != NULL ? root : ".", rel);
	return b;
}

#define NS "/api/v1/namespaces/default"

static json_t *
make_cm(const char *name, const char *labels)
{
	char body[1024];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\"%s%s%s},\"data\":{\"k\":\"v\"}}",
		 name, labels != NULL ? ",\"labels\":" : "", labels != NULL ? labels : "", "");
	return call(201, "POST", NS "/configmaps", NULL, body);
}

/* ---- real clients ---- */

/* The directory holding kubectl.1.NN beside the kubectl on PATH; the oldest and newest. */
static bool
kubectl_versions(char *dir, size_t dirlen, int *ret_min, int *ret_max)
{
	char found[PATH_MAX], *slash, real[PATH_MAX];
	const char *path = getenv("PATH");
	DIR *d;
	struct dirent *e;
	int lo = 0, hi = 0;

	found[0] = '\0';
	for (const char *p = path != NULL ? path : "/usr/bin"; *p != '\0';) {
		size_t n = strcspn(p, ":");

		snprintf(found, sizeof(found), "%.*s/kubectl", (int)n, p);
		if (access(found, X_OK) == 0)
			break;
		found[0] = '\0';
		p += n;
		if (*p == ':')
			p++;
	}
	if (found[0] == '\0' || realpath(found, real) == NULL)
		return false;
	if ((slash = strrchr(real, '/')) != NULL)
		*slash = '\0';
	if ((d = opendir(real)) == NULL)
		return false;
	while ((e = readdir(d)) != NULL) {
		int minor;

		if (sscanf(e->d_name, "kubectl.1.%d", &minor) == 1) {
			lo = lo == 0 || minor < lo ? minor : lo;
			hi = minor > hi ? minor : hi;
		}
	}
	closedir(d);
	snprintf(dir, dirlen, "%s", real);
	*ret_min = lo;
	*ret_max = hi;
	return true;
}

static void
run_kubectl(const char *kubectl)
{
	const char *argv[] = { "/bin/sh", src("tests/interop/kubectl.sh"), kubectl, kube.kubeconfig,
			       t_path(work, "kubectl"), NULL };
	int rc;

	start(NULL);
	rc = t_run(argv, NULL, NULL, t_path(work, "kubectl.out"), t_path(work, "kubectl.err"));
	ck_assert_msg(rc == 0, "%s: exit %d\n%s\n%s", kubectl, rc, t_read_file(t_path(work, "kubectl.out")),
		      t_read_file(t_path(work, "kubectl.err")));
}

static void
kubectl_test(int which)
{
	char dir[PATH_MAX], bin[PATH_MAX + 32];
	int lo = 0, hi = 0;

	if (!t_have_program("kubectl")) {
		t_skip("kubectl not found on PATH: the kubectl interop checks did not run");
		return;
	}
	if (which == 0) {
		run_kubectl("kubectl");
		return;
	}
	if (!kubectl_versions(dir, sizeof(dir), &lo, &hi) || lo == 0) {
		t_skip("no versioned kubectl.1.NN beside kubectl: only the default kubectl was checked");
		return;
	}
	snprintf(bin, sizeof(bin), "%s/kubectl.1.%d", dir, which < 0 ? lo : hi);
	run_kubectl(bin);
}

START_TEST(kubectl_default)
{
	kubectl_test(0);
}
END_TEST

START_TEST(kubectl_oldest)
{
	kubectl_test(-1);
}
END_TEST

START_TEST(kubectl_newest)
{
	kubectl_test(1);
}
END_TEST

START_TEST(python_client)
{
	const char *probe[] = { PYTHON, "-c", "import kubernetes, yaml", NULL };
	const char *argv[] = { PYTHON, src("tests/interop/kube_client.py"), NULL, NULL, NULL };
	int rc;

	if (access(PYTHON, X_OK) != 0 || t_run(probe, NULL, NULL, NULL, NULL) != 0) {
		t_skip("python3-kubernetes (or python3-yaml) not found for " PYTHON ": the Python client checks did not run");
		return;
	}
	start(NULL);
	argv[2] = kube.kubeconfig;
	argv[3] = kube.dir;
	rc = t_run(argv, NULL, NULL, t_path(work, "py.out"), t_path(work, "py.err"));
	ck_assert_msg(rc == 0, "exit %d\n%s\n%s", rc, t_read_file(t_path(work, "py.out")),
		      t_read_file(t_path(work, "py.err")));
}
END_TEST

/* ---- the server itself ---- */

START_TEST(files_and_auth)
{
	char *kc, *text = NULL, *hdrs = NULL;
	json_t *j;
	long code;

	start(NULL);
	kc = t_read_file(kube.kubeconfig);
	ck_assert_ptr_nonnull(kc);
	ck_assert_ptr_nonnull(strstr(kc, kube.addr));
	ck_assert_ptr_nonnull(strstr(kc, "certificate-authority-data:"));
	ck_assert_ptr_nonnull(strstr(kc, kube.token));
	free(kc);
	kc = t_read_file(kube.ca);
	ck_assert_ptr_nonnull(strstr(kc, "BEGIN CERTIFICATE"));
	free(kc);
	kc = t_read_file(kube.sa_pub);
	ck_assert_ptr_nonnull(strstr(kc, "BEGIN PUBLIC KEY"));
	free(kc);
	/* no token, a wrong one: 401 Status */
	code = t_kube_req(&kube, NULL, "GET", "/api/v1/namespaces", NULL, NULL, &text, NULL);
	ck_assert_int_eq(code, 401);
	j = json_loads(text, 0, NULL);
	check_status(j, 401, "Unauthorized");
	json_decref(j);
	free(text);
	ck_assert_int_eq(t_kube_req(&kube, "wrong", "GET", "/api", NULL, NULL, NULL, NULL), 401);
	ck_assert_int_eq(t_kube_req(&kube, "wrong", "GET", "/version", NULL, NULL, NULL, NULL), 401);
	/* /version is public; discovery needs a token */
	ck_assert_int_eq(t_kube_req(&kube, NULL, "GET", "/version", NULL, NULL, NULL, NULL), 200);
	ck_assert_int_eq(t_kube_req(&kube, T_KUBE_ADMIN, "GET", "/apis", NULL, NULL, NULL, &hdrs), 200);
	ck_assert_ptr_nonnull(strcasestr(hdrs, "Content-Type: application/json"));
	free(hdrs);
	/* the admin endpoints need the admin token */
	ck_assert_int_eq(t_kube_req(&kube, NULL, "GET", "/fake/stats", NULL, NULL, NULL, NULL), 401);
}
END_TEST

START_TEST(status_bodies)
{
	json_t *j, *cause;
	char *tok = NULL;

	start(NULL);
	json_decref(make_cm("a", NULL));
	j = call(409, "POST", NS "/configmaps", NULL, "{\"metadata\":{\"name\":\"a\"}}");
	check_status(j, 409, "AlreadyExists");
	ck_assert_str_eq(jstr(j, "details.name"), "a");
	ck_assert_str_eq(jstr(j, "details.kind"), "configmaps");
	ck_assert_str_eq(jstr(j, "message"), "configmaps \"a\" already exists");
	json_decref(j);
	j = call(404, "GET", NS "/secrets/nope", NULL, NULL);
	check_status(j, 404, "NotFound");
	ck_assert_str_eq(jstr(j, "message"), "secrets \"nope\" not found");
	ck_assert_str_eq(jstr(j, "details.kind"), "secrets");
	json_decref(j);
	j = call(404, "GET", "/apis/apps/v1/namespaces/default/deployments/nope", NULL, NULL);
	ck_assert_str_eq(jstr(j, "message"), "deployments.apps \"nope\" not found");
	ck_assert_str_eq(jstr(j, "details.group"), "apps");
	json_decref(j);
	j = call(422, "POST", NS "/configmaps", NULL, "{\"metadata\":{\"name\":\"Bad_Name\"}}");
	check_status(j, 422, "Invalid");
	ck_assert_str_eq(jstr(j, "details.kind"), "ConfigMap");
	cause = jget(j, "details.causes.0");
	ck_assert_str_eq(jstr(cause, "reason"), "FieldValueInvalid");
	ck_assert_str_eq(jstr(cause, "field"), "metadata.name");
	ck_assert_ptr_nonnull(strstr(jstr(j, "message"), "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"));
	json_decref(j);
	j = call(400, "POST", NS "/configmaps", NULL, "{not json");
	check_status(j, 400, "BadRequest");
	json_decref(j);
	j = call(405, "POST", NS "/configmaps/a", NULL, "{}");
	check_status(j, 405, "MethodNotAllowed");
	json_decref(j);
	j = call(415, "POST", NS "/configmaps", "text/csv", "a,b");
	check_status(j, 415, "UnsupportedMediaType");
	json_decref(j);
	j = call(415, "PATCH", NS "/configmaps/a", "application/x-patch", "{}");
	check_status(j, 415, "UnsupportedMediaType");
	json_decref(j);
	/* a service account without any binding: 403 with the RBAC message */
	call0(201, "POST", NS "/serviceaccounts", NULL, "{\"metadata\":{\"name\":\"nobody\"}}");
	j = call(201, "POST", NS "/serviceaccounts/nobody/token", NULL, "{\"spec\":{}}");
	tok = strdup(jstr(j, "status.token"));
	json_decref(j);
	{
		char *text = NULL;
		long code = t_kube_req(&kube, tok, "GET", NS "/secrets", NULL, NULL, &text, NULL);

		ck_assert_int_eq(code, 403);
		j = json_loads(text, 0, NULL);
		check_status(j, 403, "Forbidden");
		ck_assert_str_eq(jstr(j, "details.kind"), "secrets");
		ck_assert_str_eq(jstr(j, "message"), "secrets is forbidden: User \"system:serviceaccount:default:nobody\" "
				 "cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"");
		json_decref(j);
		free(text);
		/* discovery is open to every authenticated user */
		ck_assert_int_eq(t_kube_req(&kube, tok, "GET", "/api/v1", NULL, NULL, NULL, NULL), 200);
	}
	free(tok);
}
END_TEST

START_TEST(stale_resource_version)
{
	json_t *a, *j;
	char body[512], rv1[32];

	start(NULL);
	a = make_cm("x", NULL);
	snprintf(rv1, sizeof(rv1), "%s", jstr(a, "metadata.resourceVersion"));
	json_decref(a);
	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"%s\"},\"data\":{\"k\":\"2\"}}", rv1);
	j = call(200, "PUT", NS "/configmaps/x", NULL, body);
	ck_assert_str_ne(jstr(j, "metadata.resourceVersion"), rv1);
	json_decref(j);
	/* the same resourceVersion again: stale now */
	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"%s\"},\"data\":{\"k\":\"3\"}}", rv1);
	j = call(409, "PUT", NS "/configmaps/x", NULL, body);
	check_status(j, 409, "Conflict");
	ck_assert_str_eq(jstr(j, "message"), "Operation cannot be fulfilled on configmaps \"x\": the object has been "
			 "modified; please apply your changes to the latest version and try again");
	ck_assert_str_eq(jstr(j, "details.name"), "x");
	json_decref(j);
	/* a merge patch carrying a stale resourceVersion is checked too */
	snprintf(body, sizeof(body), "{\"metadata\":{\"resourceVersion\":\"%s\"},\"data\":{\"k\":\"4\"}}", rv1);
	call0(409, "PATCH", NS "/configmaps/x", "application/merge-patch+json", body);
	/* JSON patch test op */
	call0(422, "PATCH", NS "/configmaps/x", "application/json-patch+json",
	      "[{\"op\":\"test\",\"path\":\"/data/k\",\"value\":\"nope\"}]");
	/* a PUT that changes nothing writes nothing */
	j = call(200, "GET", NS "/configmaps/x", NULL, NULL);
	{
		char *text = json_dumps(j, JSON_COMPACT);
		json_t *again;

		t_kube_stats_reset(&kube);
		again = call(200, "PUT", NS "/configmaps/x", NULL, text);
		ck_assert_str_eq(jstr(again, "metadata.resourceVersion"), jstr(j, "metadata.resourceVersion"));
		ck_assert_int_eq(t_kube_writes(&kube, "configmaps"), 0);
		json_decref(again);
		free(text);
	}
	json_decref(j);
	/* custom resources and Leases need a resourceVersion on PUT */
	call0(201, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", NULL,
	      "{\"metadata\":{\"name\":\"l\"},\"spec\":{\"holderIdentity\":\"a\"}}");
	j = call(422, "PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/l", NULL,
		 "{\"metadata\":{\"name\":\"l\"},\"spec\":{\"holderIdentity\":\"b\"}}");
	ck_assert_str_eq(jstr(j, "details.causes.0.field"), "metadata.resourceVersion");
	json_decref(j);
}
END_TEST

START_TEST(watch_replay_and_410)
{
	char *body = NULL, path[512], rv0[32];
	json_t *l;

	start((const char *const[]){ "--bookmark-interval", "200", NULL });
	l = call(200, "GET", NS "/configmaps", NULL, NULL);
	snprintf(rv0, sizeof(rv0), "%s", jstr(l, "metadata.resourceVersion"));
	json_decref(l);
	json_decref(make_cm("w", "{\"app\":\"x\"}"));
	call0(200, "PATCH", NS "/configmaps/w", "application/merge-patch+json", "{\"data\":{\"k\":\"2\"}}");
	call0(200, "PATCH", NS "/configmaps/w", "application/merge-patch+json", "{\"metadata\":{\"labels\":{\"app\":\"y\"}}}");
	call0(200, "DELETE", NS "/configmaps/w", NULL, NULL);
	/* from rv0: the writes in order */
	snprintf(path, sizeof(path), NS "/configmaps?watch=true&resourceVersion=%s&timeoutSeconds=2", rv0);
	ck_assert_int_eq(t_kube_stream(&kube, path, "\"DELETED\"", 10000, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "{\"type\":\"ADDED\""));
	ck_assert(strstr(body, "\"ADDED\"") < strstr(body, "\"MODIFIED\""));
	ck_assert(strstr(body, "\"MODIFIED\"") < strstr(body, "\"DELETED\""));
	free(body);
	/* with a selector, the label change reads as DELETED */
	snprintf(path, sizeof(path), NS "/configmaps?watch=1&resourceVersion=%s&labelSelector=app%%3Dx&timeoutSeconds=2", rv0);
	ck_assert_int_eq(t_kube_stream(&kube, path, NULL, 10000, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"ADDED\""));
	ck_assert_ptr_nonnull(strstr(body, "\"DELETED\""));
	ck_assert_ptr_eq(strstr(strstr(body, "\"DELETED\"") + 1, "\"DELETED\""), NULL);
	free(body);
	/* from "": ADDED for what exists; bookmarks when asked for */
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=3",
				       "\"BOOKMARK\"", 10000, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "kube-root-ca.crt"));
	ck_assert_ptr_nonnull(strstr(body, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\""));
	free(body);
	/* the legacy /watch/ path */
	ck_assert_int_eq(t_kube_stream(&kube, "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1",
				       "kube-root-ca.crt", 10000, &body), 200);
	free(body);
	/* compacted: an ERROR event carrying a 410 Status, on a 200 stream */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"compact\":true}"), 0);
	snprintf(path, sizeof(path), NS "/configmaps?watch=true&resourceVersion=%s", rv0);
	ck_assert_int_eq(t_kube_stream(&kube, path, NULL, 10000, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\""));
	ck_assert_ptr_nonnull(strstr(body, "\"reason\":\"Expired\""));
	ck_assert_ptr_nonnull(strstr(body, "\"code\":410"));
	ck_assert_ptr_nonnull(strstr(body, "too old resource version"));
	free(body);
	/* and the HTTP 410 the fault injects */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"watch_gone\":1}"), 0);
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=true&resourceVersion=1", NULL, 10000, &body), 410);
	ck_assert_ptr_nonnull(strstr(body, "\"reason\":\"Expired\""));
	free(body);
}
END_TEST

struct writer {
	struct t_kube *k;
	long delay_ms;
	const char *method, *path, *body;
	long status;
};

static void *
write_later(void *arg)
{
	struct writer *w = arg;
	struct timespec ts = { w->delay_ms / 1000, (w->delay_ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	w->status = t_kube_req(w->k, T_KUBE_ADMIN, w->method, w->path, NULL, w->body, NULL, NULL);
	return NULL;
}

static bool
one_watch(void *arg)
{
	json_t *s = t_kube_stats(arg);
	bool yes = json_integer_value(json_object_get(s, "watches")) == 1;

	json_decref(s);
	return yes;
}

/* Waits until one watch is open, then sends the request. */
static void *
drop_when_watching(void *arg)
{
	struct writer *w = arg;

	if (t_wait_until(one_watch, w->k, T_DEADLINE_MS))
		return write_later(arg);
	return NULL;
}

START_TEST(watch_live_and_dropped)
{
	struct writer w = { &kube, 300, "POST", NS "/configmaps", "{\"metadata\":{\"name\":\"live\"}}", 0 };
	struct writer drop = { &kube, 0, "POST", "/fake/faults", "{\"drop_watches\":true}", 0 };
	pthread_t th;
	char *body = NULL;
	long t0;

	start(NULL);
	/* an event that happens while the stream is open */
	ck_assert_int_eq(pthread_create(&th, NULL, write_later, &w), 0);
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&resourceVersion=0&timeoutSeconds=20",
				       "\"name\":\"live\"", 15000, &body), 200);
	pthread_join(th, NULL);
	ck_assert_int_eq(w.status, 201);
	free(body);
	/* dropped by the fault: the stream ends long before its timeout */
	ck_assert_int_eq(pthread_create(&th, NULL, drop_when_watching, &drop), 0);
	t0 = now_ms();
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&timeoutSeconds=60", NULL, 50000, &body), 200);
	pthread_join(th, NULL);
	ck_assert_msg(now_ms() - t0 < 20000, "the watch was not dropped");
	free(body);
	/* each watch ends after N events */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"watch_max_events\":1}"), 0);
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&timeoutSeconds=30", NULL, 25000, &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"ADDED\""));
	ck_assert_ptr_eq(strstr(strstr(body, "\"ADDED\"") + 1, "\"ADDED\""), NULL);
	free(body);
}
END_TEST

START_TEST(pagination)
{
	json_t *p1, *p2, *j;
	char path[4096], rv[32], tok[2048];

	start(NULL);
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		json_decref(make_cm(name, NULL));
	}
	/* 6 with kube-root-ca.crt */
	p1 = call(200, "GET", NS "/configmaps?limit=2", NULL, NULL);
	ck_assert_int_eq(json_array_size(jget(p1, "items")), 2);
	ck_assert_int_eq(json_integer_value(jget(p1, "metadata.remainingItemCount")), 4);
	ck_assert_str_eq(jstr(p1, "kind"), "ConfigMapList");
	ck_assert_ptr_null(jget(p1, "items.0.kind"));       /* typed lists: items without kind */
	snprintf(rv, sizeof(rv), "%s", jstr(p1, "metadata.resourceVersion"));
	snprintf(tok, sizeof(tok), "%s", jstr(p1, "metadata.continue"));
	ck_assert(tok[0] != '\0');
	/* a write between pages is not in the later pages: one consistent snapshot */
	json_decref(make_cm("p9", NULL));
	snprintf(path, sizeof(path), NS "/configmaps?limit=10&continue=%s", tok);
	p2 = call(200, "GET", path, NULL, NULL);
	ck_assert_int_eq(json_array_size(jget(p2, "items")), 4);
	ck_assert_str_eq(jstr(p2, "metadata.resourceVersion"), rv);
	ck_assert_str_eq(jstr(p2, "metadata.continue"), "");
	ck_assert_str_eq(jstr(p2, "items.3.metadata.name"), "p4");
	json_decref(p2);
	/* resourceVersionMatch=Exact: the list as it was */
	snprintf(path, sizeof(path), NS "/configmaps?resourceVersion=%s&resourceVersionMatch=Exact", rv);
	j = call(200, "GET", path, NULL, NULL);
	ck_assert_int_eq(json_array_size(jget(j, "items")), 6);
	json_decref(j);
	call0(504, "GET", NS "/configmaps?resourceVersion=999999&resourceVersionMatch=NotOlderThan", NULL, NULL);
	call0(400, "GET", NS "/configmaps?resourceVersionMatch=Exact", NULL, NULL);
	/* field selectors */
	j = call(200, "GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Dp3", NULL, NULL);
	ck_assert_int_eq(json_array_size(jget(j, "items")), 1);
	json_decref(j);
	j = call(400, "GET", NS "/configmaps?fieldSelector=data.k%3Dv", NULL, NULL);
	check_status(j, 400, "BadRequest");
	json_decref(j);
	j = call(400, "GET", NS "/configmaps?labelSelector=a%20b", NULL, NULL);
	check_status(j, 400, "BadRequest");
	json_decref(j);
	/* compacted: the token has expired, with a token to go on inconsistently */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"compact\":true}"), 0);
	snprintf(path, sizeof(path), NS "/configmaps?limit=2&continue=%s", tok);
	j = call(410, "GET", path, NULL, NULL);
	check_status(j, 410, "Expired");
	ck_assert(strlen(jstr(j, "metadata.continue")) > 0);
	json_decref(j);
	snprintf(path, sizeof(path), NS "/configmaps?resourceVersion=%s&resourceVersionMatch=Exact", rv);
	call0(410, "GET", path, NULL, NULL);
	call0(400, "GET", NS "/configmaps?limit=2&continue=bm90LWEtdG9rZW4", NULL, NULL);
	json_decref(p1);
}
END_TEST

START_TEST(fault_conflicts_throttle_errors_latency)
{
	char *text = NULL, *hdrs = NULL;
	long t0;

	start((const char *const[]){ "--fault", "{\"conflicts\":{\"count\":2,\"resource\":\"configmaps\",\"name\":\"c\"}}", NULL });
	json_decref(make_cm("c", NULL));
	json_decref(make_cm("other", NULL));
	for (int i = 0; i < 2; i++) {
		json_t *j = call(409, "PATCH", NS "/configmaps/c", "application/merge-patch+json", "{\"data\":{\"k\":\"x\"}}");

		check_status(j, 409, "Conflict");
		json_decref(j);
		call0(200, "PATCH", NS "/configmaps/other", "application/merge-patch+json", "{\"data\":{\"i\":\"x\"}}");
	}
	call0(200, "PATCH", NS "/configmaps/c", "application/merge-patch+json", "{\"data\":{\"k\":\"x\"}}");
	/* 429 as API Priority and Fairness sends it: text, Retry-After */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"throttle\":{\"count\":1,\"retry_after\":3,\"verb\":\"list\"}}"), 0);
	ck_assert_int_eq(t_kube_req(&kube, T_KUBE_ADMIN, "GET", NS "/configmaps", NULL, NULL, &text, &hdrs), 429);
	ck_assert_str_eq(text, "Too many requests, please try again later.\n");
	ck_assert_ptr_nonnull(strcasestr(hdrs, "Retry-After: 3\r\n"));
	ck_assert_ptr_nonnull(strcasestr(hdrs, "Content-Type: text/plain"));
	free(text);
	free(hdrs);
	call0(200, "GET", NS "/configmaps", NULL, NULL);
	/* a 503 Status */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"errors\":{\"count\":1,\"code\":503}}"), 0);
	{
		json_t *j = call(503, "GET", NS "/configmaps/c", NULL, NULL);

		check_status(j, 503, "ServiceUnavailable");
		json_decref(j);
	}
	/* latency for gets only */
	ck_assert_int_eq(t_kube_fault(&kube, "{\"latency_ms\":400,\"latency_match\":{\"verb\":\"get\"}}"), 0);
	t0 = now_ms();
	call0(200, "GET", NS "/configmaps/c", NULL, NULL);
	ck_assert_int_ge(now_ms() - t0, 400);
	/* unknown faults are refused */
	ck_assert_int_ne(t_kube_fault(&kube, "{\"nonsense\":1}"), 0);
	ck_assert_int_eq(t_kube_req(&kube, T_KUBE_ADMIN, "DELETE", "/fake/faults", NULL, NULL, NULL, NULL), 200);
	t0 = now_ms();
	call0(200, "GET", NS "/configmaps/c", NULL, NULL);
	ck_assert_int_lt(now_ms() - t0, 400);
}
END_TEST

static bool
refused(void *arg)
{
	return t_kube_req(arg, T_KUBE_ADMIN, "GET", "/version", NULL, NULL, NULL, NULL) == 0;
}

static bool
serving(void *arg)
{
	return t_kube_req(arg, T_KUBE_ADMIN, "GET", "/version", NULL, NULL, NULL, NULL) == 200;
}

START_TEST(fault_restart_keeps_state)
{
	json_t *a, *b;

	start(NULL);
	a = make_cm("kept", NULL);
	ck_assert_int_eq(t_kube_fault(&kube, "{\"restart_ms\":1500}"), 0);
	ck_assert_msg(t_wait_until(refused, &kube, T_DEADLINE_MS), "connections were not refused");
	ck_assert_msg(t_wait_until(serving, &kube, T_DEADLINE_MS), "the server did not come back");
	b = call(200, "GET", NS "/configmaps/kept", NULL, NULL);
	ck_assert_str_eq(jstr(a, "metadata.uid"), jstr(b, "metadata.uid"));
	json_decref(b);
	b = make_cm("after", NULL);
	ck_assert_int_gt(atoll(jstr(b, "metadata.resourceVersion")), atoll(jstr(a, "metadata.resourceVersion")));
	json_decref(a);
	json_decref(b);
	ck_assert(t_wait_log(&kube.proc, "\"msg\":\"restarting\"", T_DEADLINE_MS, NULL, 0));
}
END_TEST

START_TEST(stats_and_audit)
{
	const char *audit = t_path(work, "audit.jsonl");
	json_t *s, *x;
	char *log;

	start((const char *const[]){ "--audit", audit, NULL });
	ck_assert_int_eq(t_kube_stats_reset(&kube), 0);
	call0(201, "POST", NS "/secrets", NULL, "{\"metadata\":{\"name\":\"s\"},\"stringData\":{\"a\":\"b\"}}");
	call0(200, "PATCH", NS "/secrets/s", "application/merge-patch+json", "{\"data\":{\"c\":\"ZA==\"}}");
	call0(200, "PATCH", NS "/secrets/s", "application/merge-patch+json", "{\"data\":{\"c\":\"ZA==\"}}");
	call0(200, "GET", NS "/secrets/s", NULL, NULL);
	call0(404, "GET", NS "/secrets/none", NULL, NULL);
	s = t_kube_stats(&kube);
	ck_assert_ptr_nonnull(s);
	/* the unchanged patch is a request but no write */
	ck_assert_int_eq(json_integer_value(jget(s, "writes_by_resource.secrets")), 2);
	ck_assert_int_eq(json_integer_value(jget(s, "requests_by_verb.patch")), 2);
	ck_assert_int_eq(json_integer_value(jget(s, "requests_by_verb.get")), 2);
	ck_assert_int_eq(json_integer_value(jget(s, "requests_by_code.404")), 1);
	ck_assert_int_eq(json_integer_value(jget(s, "requests_total")), 5);
	x = json_array_get(jget(s, "requests"), 0);
	ck_assert_str_eq(jstr(x, "verb"), "create");
	ck_assert_str_eq(jstr(x, "resource"), "secrets");
	ck_assert_str_eq(jstr(x, "namespace"), "default");
	ck_assert_int_eq(json_integer_value(jget(x, "code")), 201);
	json_decref(s);
	ck_assert_int_eq(t_kube_writes(&kube, "configmaps"), 0);
	log = t_read_file(audit);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, "\"user\":\"admin\",\"token\":\"admin\",\"verb\":\"create\",\"group\":\"\","
				     "\"resource\":\"secrets\",\"subresource\":\"\",\"namespace\":\"default\",\"name\":\"s\""));
	ck_assert_ptr_nonnull(strstr(log, "\"code\":404"));
	ck_assert_ptr_null(strstr(log, "/fake/"));
	free(log);
}
END_TEST

#define APPLY "application/apply-patch+yaml"
#define CM_A "/api/v1/namespaces/default/configmaps/ssa?fieldManager=alice"
#define CM_B "/api/v1/namespaces/default/configmaps/ssa?fieldManager=bob"

START_TEST(server_side_apply)
{
	json_t *j, *mf, *e;
	size_t i;
	bool alice_has_k = false;

	start(NULL);
	/* YAML body; the object is created */
	j = call(201, "PATCH", CM_A, APPLY,
		 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  k: one\n  only-alice: x\n");
	ck_assert_str_eq(jstr(j, "metadata.managedFields.0.manager"), "alice");
	ck_assert_str_eq(jstr(j, "metadata.managedFields.0.operation"), "Apply");
	ck_assert_ptr_nonnull(jget(j, "metadata.managedFields.0.fieldsV1.f:data.f:k"));
	json_decref(j);
	/* bob sets the same field to another value: 409 naming the field and alice */
	j = call(409, "PATCH", CM_B, APPLY, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},\"data\":{\"k\":\"two\"}}");
	check_status(j, 409, "Conflict");
	ck_assert_str_eq(jstr(j, "details.causes.0.reason"), "FieldManagerConflict");
	ck_assert_str_eq(jstr(j, "details.causes.0.field"), ".data.k");
	ck_assert_ptr_nonnull(strstr(jstr(j, "message"), "conflict with \"alice\""));
	json_decref(j);
	/* the same value is shared, not a conflict */
	call0(200, "PATCH", CM_B, APPLY, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},\"data\":{\"k\":\"one\"}}");
	/* forced: bob takes it */
	j = call(200, "PATCH", CM_B "&force=true", APPLY,
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},\"data\":{\"k\":\"two\"}}");
	ck_assert_str_eq(jstr(j, "data.k"), "two");
	mf = jget(j, "metadata.managedFields");
	json_array_foreach(mf, i, e) {
		if (strcmp(jstr(e, "manager"), "alice") == 0 && jget(e, "fieldsV1.f:data.f:k") != NULL)
			alice_has_k = true;
	}
	ck_assert(!alice_has_k);
	json_decref(j);
	/* alice drops a field she alone owned: it goes */
	j = call(200, "PATCH", CM_A, APPLY, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"},\"data\":{}}");
	ck_assert_ptr_null(jget(j, "data.only-alice"));
	ck_assert_str_eq(jstr(j, "data.k"), "two");
	json_decref(j);
	/* an update by another manager is recorded as Update */
	j = call(200, "PATCH", NS "/configmaps/ssa?fieldManager=carol", "application/merge-patch+json",
		 "{\"data\":{\"c\":\"3\"}}");
	mf = jget(j, "metadata.managedFields");
	ck_assert_str_eq(jstr(json_array_get(mf, json_array_size(mf) - 1), "operation"), "Update");
	ck_assert_str_eq(jstr(json_array_get(mf, json_array_size(mf) - 1), "manager"), "carol");
	json_decref(j);
	/* fieldManager is required; managedFields in the body are refused */
	call0(400, "PATCH", NS "/configmaps/ssa", APPLY, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\"}}");
	call0(400, "PATCH", CM_A, APPLY, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"ssa\",\"managedFields\":[{}]}}");
}
END_TEST

static bool
gone(void *path)
{
	return t_kube_req(&kube, T_KUBE_ADMIN, "GET", path, NULL, NULL, NULL, NULL) == 404;
}

static void
dependent(const char *name, const char *owner_uid, bool block)
{
	char body[1024];

	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"%s\",\"ownerReferences\":[{\"apiVersion\":\"v1\","
		 "\"kind\":\"ConfigMap\",\"name\":\"owner\",\"uid\":\"%s\",\"blockOwnerDeletion\":%s}]}}",
		 name, owner_uid, block ? "true" : "false");
	call0(201, "POST", NS "/configmaps", NULL, body);
}

START_TEST(garbage_collection)
{
	json_t *o, *j;
	char uid[64];

	start(NULL);
	/* background (the default): the owner goes at once, then its dependents */
	o = make_cm("owner", NULL);
	snprintf(uid, sizeof(uid), "%s", jstr(o, "metadata.uid"));
	json_decref(o);
	dependent("d1", uid, false);
	j = call(200, "DELETE", NS "/configmaps/owner", NULL, NULL);
	ck_assert_str_eq(jstr(j, "status"), "Success");
	ck_assert_str_eq(jstr(j, "details.uid"), uid);
	json_decref(j);
	ck_assert(t_wait_until(gone, NS "/configmaps/d1", T_DEADLINE_MS));
	/* orphan: the dependent stays, without the reference */
	o = make_cm("owner", NULL);
	snprintf(uid, sizeof(uid), "%s", jstr(o, "metadata.uid"));
	json_decref(o);
	dependent("d2", uid, true);
	call0(200, "DELETE", NS "/configmaps/owner?propagationPolicy=Orphan", NULL, NULL);
	ck_assert(t_wait_until(gone, NS "/configmaps/owner", T_DEADLINE_MS));
	j = call(200, "GET", NS "/configmaps/d2", NULL, NULL);
	ck_assert_ptr_null(jget(j, "metadata.ownerReferences"));
	json_decref(j);
	/* foreground, from a DeleteOptions body: the owner waits for its blocking dependents */
	o = make_cm("owner", NULL);
	snprintf(uid, sizeof(uid), "%s", jstr(o, "metadata.uid"));
	json_decref(o);
	call0(201, "POST", NS "/configmaps", NULL,
	      "{\"metadata\":{\"name\":\"held\",\"finalizers\":[\"test.latchkey.io/hold\"]}}");
	{
		char body[1024];

		snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"d3\",\"finalizers\":[\"test.latchkey.io/hold\"],"
			 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner\",\"uid\":\"%s\","
			 "\"blockOwnerDeletion\":true}]}}", uid);
		call0(201, "POST", NS "/configmaps", NULL, body);
	}
	j = call(200, "DELETE", NS "/configmaps/owner", NULL, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":\"Foreground\"}");
	ck_assert(strlen(jstr(j, "metadata.deletionTimestamp")) > 0);
	ck_assert_str_eq(jstr(j, "metadata.finalizers.0"), "foregroundDeletion");
	json_decref(j);
	/* d3 has its own finalizer: only marked; the owner waits */
	j = call(200, "GET", NS "/configmaps/d3", NULL, NULL);
	for (int i = 0; i < 50 && jget(j, "metadata.deletionTimestamp") == NULL; i++) {
		json_decref(j);
		usleep(100000);
		j = call(200, "GET", NS "/configmaps/d3", NULL, NULL);
	}
	ck_assert_ptr_nonnull(jget(j, "metadata.deletionTimestamp"));
	json_decref(j);
	call0(200, "GET", NS "/configmaps/owner", NULL, NULL);
	/* a finalizer may not be added now; removing the last one deletes it */
	call0(422, "PATCH", NS "/configmaps/d3", "application/merge-patch+json",
	      "{\"metadata\":{\"finalizers\":[\"test.latchkey.io/hold\",\"test.latchkey.io/new\"]}}");
	call0(200, "PATCH", NS "/configmaps/d3", "application/merge-patch+json", "{\"metadata\":{\"finalizers\":null}}");
	ck_assert(t_wait_until(gone, NS "/configmaps/d3", T_DEADLINE_MS));
	ck_assert(t_wait_until(gone, NS "/configmaps/owner", T_DEADLINE_MS));
	/* a plain object with a finalizer: marked, then gone when it is removed */
	j = call(200, "DELETE", NS "/configmaps/held", NULL, NULL);
	ck_assert(strlen(jstr(j, "metadata.deletionTimestamp")) > 0);
	json_decref(j);
	call0(200, "PATCH", NS "/configmaps/held", "application/json-patch+json",
	      "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]");
	ck_assert(t_wait_until(gone, NS "/configmaps/held", T_DEADLINE_MS));
	/* preconditions */
	o = make_cm("pre", NULL);
	call0(409, "DELETE", NS "/configmaps/pre", NULL, "{\"preconditions\":{\"uid\":\"not-the-uid\"}}");
	json_decref(o);
	/* a namespace takes everything in it along */
	call0(201, "POST", "/api/v1/namespaces", NULL, "{\"metadata\":{\"name\":\"doomed\"}}");
	call0(201, "POST", "/api/v1/namespaces/doomed/secrets", NULL, "{\"metadata\":{\"name\":\"s\"}}");
	j = call(200, "DELETE", "/api/v1/namespaces/doomed", NULL, NULL);
	ck_assert_str_eq(jstr(j, "status.phase"), "Terminating");
	json_decref(j);
	ck_assert(t_wait_until(gone, "/api/v1/namespaces/doomed", T_DEADLINE_MS));
	call0(404, "GET", "/api/v1/namespaces/doomed/secrets/s", NULL, NULL);
	j = call(404, "POST", "/api/v1/namespaces/doomed/secrets", NULL, "{\"metadata\":{\"name\":\"s\"}}");
	ck_assert_str_eq(jstr(j, "message"), "namespaces \"doomed\" not found");
	json_decref(j);
}
END_TEST

START_TEST(custom_resources_and_status)
{
	char *crd = t_read_file(src("tests/fakes/testdata/crds/widgets.yaml"));
	json_t *j;
	char body[1024], rv[32];

	start(NULL);
	ck_assert_ptr_nonnull(crd);
	json_decref(call(201, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/yaml", crd));
	free(crd);
	j = call(200, "GET", "/apis/fake.latchkey.io/v1", NULL, NULL);
	ck_assert_str_eq(jstr(j, "resources.0.name"), "widgets");
	ck_assert_str_eq(jstr(j, "resources.1.name"), "widgets/status");
	json_decref(j);
	/* created with a status: the status is dropped; generation 1 */
	j = call(201, "POST", "/apis/fake.latchkey.io/v1/namespaces/default/widgets", NULL,
		 "{\"apiVersion\":\"fake.latchkey.io/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
		 "\"spec\":{\"size\":1,\"junk\":true},\"status\":{\"observedGeneration\":5}}");
	ck_assert_int_eq(json_integer_value(jget(j, "metadata.generation")), 1);
	ck_assert_ptr_null(jget(j, "status"));
	ck_assert_ptr_null(jget(j, "spec.junk"));      /* pruned (fieldValidation Warn) */
	ck_assert_str_eq(jstr(j, "spec.shape"), "round"); /* the schema's default */
	snprintf(rv, sizeof(rv), "%s", jstr(j, "metadata.resourceVersion"));
	json_decref(j);
	/* strict: an unknown field is 400 */
	j = call(400, "POST", "/apis/fake.latchkey.io/v1/namespaces/default/widgets?fieldValidation=Strict", NULL,
		 "{\"apiVersion\":\"fake.latchkey.io/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"size\":1,\"junk\":1}}");
	ck_assert_str_eq(jstr(j, "message"), "strict decoding error: unknown field \"spec.junk\"");
	json_decref(j);
	/* types and enums: 422 naming the field */
	j = call(422, "POST", "/apis/fake.latchkey.io/v1/namespaces/default/widgets", NULL,
		 "{\"apiVersion\":\"fake.latchkey.io/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"x\"},\"spec\":{\"size\":\"1\",\"color\":\"pink\"}}");
	ck_assert_str_eq(jstr(j, "details.group"), "fake.latchkey.io");
	ck_assert_str_eq(jstr(j, "details.kind"), "Widget");
	ck_assert_str_eq(jstr(j, "details.causes.0.field"), "spec.size");
	ck_assert_str_eq(jstr(j, "details.causes.0.reason"), "FieldValueTypeInvalid");
	ck_assert_str_eq(jstr(j, "details.causes.1.reason"), "FieldValueNotSupported");
	json_decref(j);
	/* PUT on the main resource ignores the status; /status ignores the rest */
	snprintf(body, sizeof(body), "{\"apiVersion\":\"fake.latchkey.io/v1\",\"kind\":\"Widget\",\"metadata\":"
		 "{\"name\":\"w\",\"resourceVersion\":\"%s\"},\"spec\":{\"size\":2},\"status\":{\"observedGeneration\":7}}", rv);
	j = call(200, "PUT", "/apis/fake.latchkey.io/v1/namespaces/default/widgets/w", NULL, body);
	ck_assert_int_eq(json_integer_value(jget(j, "metadata.generation")), 2);
	ck_assert_ptr_null(jget(j, "status"));
	snprintf(rv, sizeof(rv), "%s", jstr(j, "metadata.resourceVersion"));
	json_decref(j);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"fake.latchkey.io/v1\",\"kind\":\"Widget\",\"metadata\":"
		 "{\"name\":\"w\",\"resourceVersion\":\"%s\"},\"spec\":{\"size\":9},\"status\":{\"observedGeneration\":2}}", rv);
	j = call(200, "PUT", "/apis/fake.latchkey.io/v1/namespaces/default/widgets/w/status", NULL, body);
	ck_assert_int_eq(json_integer_value(jget(j, "spec.size")), 2);
	ck_assert_int_eq(json_integer_value(jget(j, "status.observedGeneration")), 2);
	ck_assert_int_eq(json_integer_value(jget(j, "metadata.generation")), 2);
	json_decref(j);
	/* strategic merge patch is for built-in kinds only */
	j = call(415, "PATCH", "/apis/fake.latchkey.io/v1/namespaces/default/widgets/w",
		 "application/strategic-merge-patch+json", "{\"spec\":{\"size\":3}}");
	check_status(j, 415, "UnsupportedMediaType");
	json_decref(j);
	/* the other served version */
	j = call(200, "GET", "/apis/fake.latchkey.io/v1beta1/namespaces/default/widgets/w", NULL, NULL);
	ck_assert_str_eq(jstr(j, "apiVersion"), "fake.latchkey.io/v1beta1");
	json_decref(j);
	/* the CRD goes, its objects and its endpoints with it */
	call0(200, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.fake.latchkey.io", NULL, NULL);
	call0(404, "GET", "/apis/fake.latchkey.io/v1/namespaces/default/widgets/w", NULL, NULL);
	call0(404, "GET", "/apis/fake.latchkey.io/v1", NULL, NULL);
}
END_TEST

START_TEST(kinds_rules)
{
	json_t *j;

	start(NULL);
	/* MicroTime: exactly six fractional digits */
	j = call(400, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", NULL,
		 "{\"metadata\":{\"name\":\"l\"},\"spec\":{\"renewTime\":\"2026-12-01T07:10:31.123Z\"}}");
	check_status(j, 400, "BadRequest");
	json_decref(j);
	j = call(201, "POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", NULL,
		 "{\"metadata\":{\"name\":\"l\"},\"spec\":{\"renewTime\":\"2026-12-01T08:10:31.123456+01:00\"}}");
	ck_assert_str_eq(jstr(j, "spec.renewTime"), "2026-12-01T07:10:31.123456Z");
	json_decref(j);
	/* generateName */
	j = call(201, "POST", NS "/configmaps", NULL, "{\"metadata\":{\"generateName\":\"gen-\"}}");
	ck_assert_int_eq(strlen(jstr(j, "metadata.name")), 9);
	ck_assert_int_eq(strncmp(jstr(j, "metadata.name"), "gen-", 4), 0);
	json_decref(j);
	/* Secrets: base64 data, immutability, type */
	call0(400, "POST", NS "/secrets", NULL, "{\"metadata\":{\"name\":\"b\"},\"data\":{\"k\":\"not base64!\"}}");
	call0(201, "POST", NS "/secrets", NULL, "{\"metadata\":{\"name\":\"i\"},\"immutable\":true,\"data\":{\"k\":\"dg==\"}}");
	j = call(422, "PATCH", NS "/secrets/i", "application/merge-patch+json", "{\"data\":{\"k\":\"dw==\"}}");
	ck_assert_str_eq(jstr(j, "details.causes.0.field"), "data");
	json_decref(j);
	call0(422, "PATCH", NS "/secrets/i", "application/merge-patch+json", "{\"type\":\"kubernetes.io/tls\"}");
	/* a body past 3 MiB: 413 */
	{
		size_t n = (3u << 20) + 100;
		char *big = malloc(n + 64);

		ck_assert_ptr_nonnull(big);
		strcpy(big, "{\"metadata\":{\"name\":\"big\"},\"data\":{\"k\":\"");
		memset(big + strlen(big), 'a', n);
		strcpy(big + strlen("{\"metadata\":{\"name\":\"big\"},\"data\":{\"k\":\"") + n, "\"}}");
		j = call(413, "POST", NS "/configmaps", NULL, big);
		check_status(j, 413, "RequestEntityTooLarge");
		json_decref(j);
		free(big);
	}
	/* creating in a missing namespace */
	call0(404, "POST", "/api/v1/namespaces/missing/configmaps", NULL, "{\"metadata\":{\"name\":\"x\"}}");
	/* strategic merge patch of a list merged by key */
	call0(201, "POST", "/apis/apps/v1/namespaces/default/deployments", NULL,
	      "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"selector\":{\"matchLabels\":{\"a\":\"b\"}},\"template\":{\"metadata\":"
	      "{\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{\"name\":\"one\",\"image\":\"i:1\"},{\"name\":\"two\",\"image\":\"j:1\"}]}}}}");
	j = call(200, "PATCH", "/apis/apps/v1/namespaces/default/deployments/d", "application/strategic-merge-patch+json",
		 "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"two\",\"image\":\"j:2\"},{\"name\":\"one\",\"$patch\":\"delete\"}]}}}}");
	ck_assert_int_eq(json_array_size(jget(j, "spec.template.spec.containers")), 1);
	ck_assert_str_eq(jstr(j, "spec.template.spec.containers.0.image"), "j:2");
	ck_assert_int_eq(json_integer_value(jget(j, "metadata.generation")), 2);
	json_decref(j);
}
END_TEST

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

/* One request with an extra header, through libcurl directly. */
static long
with_header(const char *path, const char *header)
{
	char url[256], auth[256];
	struct curl_slist *h = NULL;
	long code = 0;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", kube.addr, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", kube.token);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, kube.ca);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return code;
}

static void *
hold_watch(void *arg)
{
	(void)arg;
	t_kube_stream(&kube, NS "/configmaps?watch=1&timeoutSeconds=5", NULL, 15000, NULL);
	return NULL;
}

START_TEST(events_warnings_limits)
{
	char *big, *hdrs = NULL, *crd;
	json_t *j;
	pthread_t th;
	long code;

	start((const char *const[]){ "--max-watches", "1", "--max-objects", "40", NULL });
	/* events.k8s.io/v1 and core/v1 are two views of the same events */
	j = call(201, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", NULL,
		 "{\"metadata\":{\"name\":\"e1\"},\"eventTime\":\"2026-12-01T07:10:31.000000Z\","
		 "\"reportingController\":\"latchkey.io/sync\",\"reportingInstance\":\"pod-1\",\"action\":\"Sync\","
		 "\"reason\":\"Synced\",\"note\":\"all good\",\"type\":\"Normal\","
		 "\"regarding\":{\"kind\":\"Secret\",\"name\":\"s\",\"namespace\":\"default\"}}");
	ck_assert_str_eq(jstr(j, "note"), "all good");
	json_decref(j);
	j = call(200, "GET", NS "/events/e1", NULL, NULL);
	ck_assert_str_eq(jstr(j, "message"), "all good");
	ck_assert_str_eq(jstr(j, "involvedObject.kind"), "Secret");
	ck_assert_str_eq(jstr(j, "reportingComponent"), "latchkey.io/sync");
	json_decref(j);
	j = call(200, "GET", NS "/events?fieldSelector=involvedObject.kind%3DSecret,involvedObject.name%3Ds", NULL, NULL);
	ck_assert_int_eq(json_array_size(jget(j, "items")), 1);
	json_decref(j);
	j = call(422, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", NULL,
		 "{\"metadata\":{\"name\":\"e2\"},\"note\":\"x\"}");
	ck_assert_str_eq(jstr(j, "details.causes.0.field"), "eventTime");
	json_decref(j);
	/* fieldValidation=Warn: a Warning header, the field dropped */
	crd = t_read_file(src("tests/fakes/testdata/crds/gadgets.yaml"));
	json_decref(call(201, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/yaml", crd));
	free(crd);
	code = t_kube_req(&kube, T_KUBE_ADMIN, "POST", "/apis/fake.latchkey.io/v1alpha1/gadgets?fieldValidation=Warn", NULL,
			  "{\"apiVersion\":\"fake.latchkey.io/v1alpha1\",\"kind\":\"Gadget\",\"metadata\":{\"name\":\"g\"},"
			  "\"spec\":{\"free\":1},\"extra\":2}", NULL, &hdrs);
	ck_assert_int_eq(code, 201);
	ck_assert_ptr_nonnull(strstr(hdrs, "Warning: 299 - \"unknown field \\\"extra\\\"\""));
	free(hdrs);
	/* headers past the limit: 431 before any handler */
	big = malloc(70 * 1024);
	strcpy(big, "X-Big: ");
	memset(big + 7, 'a', 68 * 1024);
	big[7 + 68 * 1024] = '\0';
	ck_assert_int_eq(with_header("/api", big), 431);
	free(big);
	/* one watch at most: the second gets 429 */
	ck_assert_int_eq(pthread_create(&th, NULL, hold_watch, NULL), 0);
	ck_assert(t_wait_until(one_watch, &kube, T_DEADLINE_MS));
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&timeoutSeconds=1", NULL, 5000, NULL), 429);
	pthread_join(th, NULL);
	/* the object limit */
	for (int i = 0;; i++) {
		char body[128];

		snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"n%d\"}}", i);
		code = t_kube_json(&kube, "POST", NS "/configmaps", NULL, body, &j);
		if (code != 201) {
			ck_assert_int_eq(code, 500);
			check_status(j, 500, "InternalError");
			json_decref(j);
			break;
		}
		json_decref(j);
		ck_assert_int_lt(i, 40);
	}
}
END_TEST

/* A protobuf Secret as kubectl ≥ 1.33 sends it: "k8s\0" + runtime.Unknown. */
START_TEST(protobuf_body)
{
	static const unsigned char secret[] = {
		0x0a, 0x04, 0x0a, 0x02, 'p', 'b',                       /* metadata { name: "pb" } */
		0x12, 0x08, 0x0a, 0x01, 'k', 0x12, 0x03, 'x', 'y', 'z', /* data { k: "xyz" } */
		0x1a, 0x06, 'O', 'p', 'a', 'q', 'u', 'e',               /* type */
	};
	unsigned char msg[128];
	size_t n = 0;
	json_t *j;
	CURL *c;

	start(NULL);
	memcpy(msg, "k8s\0", 4);
	n = 4;
	msg[n++] = 0x0a;                                                /* typeMeta */
	msg[n++] = 12;
	msg[n++] = 0x0a; msg[n++] = 2; msg[n++] = 'v'; msg[n++] = '1';
	msg[n++] = 0x12; msg[n++] = 6; memcpy(msg + n, "Secret", 6); n += 6;
	msg[n++] = 0x12;                                                /* raw */
	msg[n++] = (unsigned char)sizeof(secret);
	memcpy(msg + n, secret, sizeof(secret));
	n += sizeof(secret);
	/* libcurl directly: the body has NUL bytes */
	c = curl_easy_init();
	{
		char url[256], auth[256];
		struct curl_slist *h = NULL;
		long code = 0;

		snprintf(url, sizeof(url), "%s" NS "/secrets", kube.addr);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", kube.token);
		h = curl_slist_append(h, auth);
		h = curl_slist_append(h, "Content-Type: application/vnd.kubernetes.protobuf");
		h = curl_slist_append(h, "Accept: application/vnd.kubernetes.protobuf,application/json");
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CAINFO, kube.ca);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, msg);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		ck_assert_int_eq(code, 201);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
	}
	j = call(200, "GET", NS "/secrets/pb", NULL, NULL);
	ck_assert_str_eq(jstr(j, "data.k"), "eHl6");
	ck_assert_str_eq(jstr(j, "type"), "Opaque");
	json_decref(j);
}
END_TEST

START_TEST(sigterm_stops_cleanly)
{
	int status;

	start(NULL);
	ck_assert_int_eq(t_kube_stream(&kube, NS "/configmaps?watch=1&timeoutSeconds=1", NULL, 5000, NULL), 200);
	status = t_kube_stop(&kube);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
}
END_TEST

static Suite *
kube_fake_suite(void)
{
	Suite *s = suite_create("kube_fake");
	TCase *interop = tcase_create("interop");
	TCase *server = tcase_create("server");

	tcase_add_checked_fixture(interop, setup, teardown);
	tcase_set_timeout(interop, 420);
	tcase_add_test(interop, kubectl_default);
	tcase_add_test(interop, kubectl_oldest);
	tcase_add_test(interop, kubectl_newest);
	tcase_add_test(interop, python_client);
	suite_add_tcase(s, interop);

	tcase_add_checked_fixture(server, setup, teardown);
	tcase_set_timeout(server, 120);
	tcase_add_test(server, files_and_auth);
	tcase_add_test(server, status_bodies);
	tcase_add_test(server, stale_resource_version);
	tcase_add_test(server, watch_replay_and_410);
	tcase_add_test(server, watch_live_and_dropped);
	tcase_add_test(server, pagination);
	tcase_add_test(server, fault_conflicts_throttle_errors_latency);
	tcase_add_test(server, fault_restart_keeps_state);
	tcase_add_test(server, stats_and_audit);
	tcase_add_test(server, server_side_apply);
	tcase_add_test(server, garbage_collection);
	tcase_add_test(server, custom_resources_and_status);
	tcase_add_test(server, kinds_rules);
	tcase_add_test(server, events_warnings_limits);
	tcase_add_test(server, protobuf_body);
	tcase_add_test(server, sigterm_stops_cleanly);
	suite_add_tcase(s, server);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(kube_fake_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
