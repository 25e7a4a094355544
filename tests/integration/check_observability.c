/* check_observability.c — the Prometheus side of deploy/monitoring with Debian's prometheus
 * package: promtool checks the rules and runs their unit tests (every alert fires in one
 * and stays quiet in another), tests/deploy/check_rules.py holds the rules, the tests and
 * the Grafana dashboard to the metrics the sources export, promtool lints the real
 * /metrics of a broker and of a controller, and a real Prometheus scrapes a running
 * broker, loads the rules and answers PromQL queries with its series.
 * Without promtool or prometheus (tools/deps.sh installs them) a test says SKIP. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "fakekube.h"
#include "testutil.h"

#define PYTHON "/usr/bin/python3"
/* Short leases, so that renewals and a rotation appear in the broker's metrics. */
#define DB_TTL "2s"
#define DB_MAX_TTL "4s"

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

static char *
slurp(const char *path)
{
	char *text = t_read_file(path);

	return text ? text : strdup("");
}

static bool
have(const char *test, const char *prog)
{
	if (!t_have_program(prog)) {
		t_skip("%s: %s not found (tools/deps.sh installs Debian's prometheus package)", test, prog);
		return false;
	}
	return true;
}

/* Runs /usr/bin/env PROG ARGS... (stdin from in_path); exit status, output in out_name. */
static int
run(const char *out_name, const char *in_path, const char *const args[])
{
	const char *argv[24] = { "/usr/bin/env" };
	size_t n = 1;

	for (size_t i = 0; args[i] != NULL && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return t_run(argv, NULL, in_path, p(out_name), p(out_name));
}

static void
run_ok(const char *what, const char *in_path, const char *const args[])
{
	int rc = run("run.out", in_path, args);
	char *out = slurp(p("run.out"));

	ck_assert_msg(rc == 0, "%s: exit %d:\n%s", what, rc, out);
	free(out);
}

/* A port free at the time of asking (the kernel's pick for port 0). */
static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

START_TEST(rules_check_and_unit_tests)
{
	char rules[1100], tests[1100], script[1100], scrape[1100];
	char *out;
	int rc;

	if (!have("rules_check_and_unit_tests", "promtool"))
		return;
	snprintf(rules, sizeof(rules), "%s/deploy/monitoring/latchkey.rules.yaml", src);
	snprintf(tests, sizeof(tests), "%s/tests/deploy/latchkey.rules.test.yaml", src);
	snprintf(script, sizeof(script), "%s/tests/deploy/check_rules.py", src);
	snprintf(scrape, sizeof(scrape), "%s/deploy/monitoring/prometheus-scrape.yaml", src);
	run_ok("promtool check rules", NULL, (const char *const[]){ "promtool", "check", "rules", rules, NULL });
	run_ok("promtool test rules", NULL, (const char *const[]){ "promtool", "test", "rules", tests, NULL });
	if (access(PYTHON, X_OK) != 0) {
		t_skip("rules_check_and_unit_tests: " PYTHON " not found for check_rules.py");
	} else {
		rc = run("rules.out", NULL, (const char *const[]){ PYTHON, script, src, NULL });
		out = slurp(p("rules.out"));
		ck_assert_msg(rc == 0 && strstr(out, "ok: ") != NULL && strstr(out, " 0 alerts") == NULL &&
			      strstr(out, " 0 rejections") == NULL, "check_rules.py exit %d:\n%s", rc, out);
		free(out);
	}
	/* The scrape configuration for a Prometheus without the Operator: Debian builds its
	 * prometheus without Kubernetes service discovery, so promtool there cannot read it. */
	rc = run("config.out", NULL, (const char *const[]){ "promtool", "check", "config", scrape, NULL });
	out = slurp(p("config.out"));
	if (rc != 0 && strstr(out, "field kubernetes_sd_configs not found") != NULL)
		t_skip("promtool check config prometheus-scrape.yaml: this promtool is built without "
		       "Kubernetes service discovery (Debian's is)");
	else
		ck_assert_msg(rc == 0, "promtool check config %s: exit %d:\n%s", scrape, rc, out);
	free(out);
}
END_TEST

/* ---- a broker against latchkey dev -------------------------------------------------- */

struct broker_fx {
	struct t_dev dev;
	struct t_proc broker;
	char sock[600];
	int metrics_port;
};

static long
dev_call(struct t_dev *d, const char *method, const char *path, const char *body)
{
	char url[512], *out = NULL;
	long st;

	snprintf(url, sizeof(url), "%s%s", d->addr, path);
	st = t_http(method, url, NULL, d->token, body, &out);
	free(out);
	return st;
}

static bool
broker_ready(void *arg)
{
	struct broker_fx *f = arg;
	char *body = NULL;
	bool ok = t_http("GET", "http://broker/v1/ready", f->sock, NULL, NULL, &body) == 200;

	free(body);
	return ok;
}

/* The metrics page's text (owned), or NULL. */
static char *
metrics_page(int port)
{
	char url[128], *body = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (t_http("GET", url, NULL, NULL, NULL, &body) != 200) {
		free(body);
		return NULL;
	}
	return body;
}

static bool
broker_rotated(void *arg)
{
	struct broker_fx *f = arg;
	char *m = metrics_page(f->metrics_port);
	bool ok = m != NULL && strstr(m, "latchkey_broker_rotations_total{secret=\"db\"}") != NULL &&
		  strstr(m, "latchkey_broker_renewals_total{secret=\"db\"}") != NULL;

	free(m);
	return ok;
}

static void
broker_start(struct broker_fx *f)
{
	char cfg[2048], token_file[600], run_dir[560], log[600];

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(t_dev_start(&f->dev, NULL), 0);
	ck_assert_int_lt(dev_call(&f->dev, "POST", "/v1/database/roles/app",
				  "{\"db_name\":\"pg\",\"default_ttl\":\"" DB_TTL "\",\"max_ttl\":\"" DB_MAX_TTL "\"}"), 300);
	ck_assert_int_lt(dev_call(&f->dev, "POST", "/v1/secret/data/app/api",
				  "{\"data\":{\"user\":\"u\",\"password\":\"p\"}}"), 300);
	snprintf(token_file, sizeof(token_file), "%s", p("token"));
	ck_assert_int_eq(t_write_file(token_file, f->dev.token, 0600), 0);
	snprintf(run_dir, sizeof(run_dir), "%s", p("run"));
	ck_assert_int_eq(mkdir(run_dir, 0750), 0);
	snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", run_dir);
	snprintf(log, sizeof(log), "%s", p("broker.log"));
	/* The metrics port is picked here and bound by the broker a moment later: if another
	 * process took it meanwhile, the broker fails to start and the next pick is tried. */
	for (int attempt = 0; attempt < 3; attempt++) {
		const char *argv[] = { t_latchkey_bin(), "broker", "--config", p("broker.json"), NULL };

		f->metrics_port = free_port();
		snprintf(cfg, sizeof(cfg),
			 "{\"vault\":{\"address\":\"%s\",\"auth\":{\"method\":\"token\",\"token_file\":\"%s\"}},"
			 "\"listen\":{\"socket\":\"%s\",\"mode\":\"0660\",\"metrics\":\"127.0.0.1:%d\"},"
			 "\"grace\":\"1s\",\"retry\":{\"initial\":\"200ms\",\"max\":\"1s\"},"
			 "\"secrets\":[{\"name\":\"db\",\"path\":\"database/creds/app\",\"required\":true},"
			 "{\"name\":\"api\",\"path\":\"secret/data/app/api\",\"refresh\":\"1s\"}]}",
			 f->dev.addr, token_file, f->sock, f->metrics_port);
		ck_assert_int_eq(t_write_file(p("broker.json"), cfg, 0600), 0);
		ck_assert_int_eq(t_spawn(&f->broker, argv, NULL, log), 0);
		if (t_wait_log(&f->broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0))
			break;
		t_stop(&f->broker, SIGTERM, 5000);
		f->broker.pid = 0;
	}
	ck_assert_msg(f->broker.pid != 0, "the broker did not start serving");
	ck_assert_msg(t_wait_until(broker_ready, f, T_DEADLINE_MS), "the broker never became ready");
}

static void
broker_stop(struct broker_fx *f)
{
	if (f->broker.pid != 0) {
		int st = t_stop(&f->broker, SIGTERM, T_DEADLINE_MS);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the broker did not exit cleanly (%d)", st);
	}
	t_dev_stop(&f->dev);
}

/* promtool check metrics on a page; fails with promtool's complaints. */
static void
lint_metrics(const char *what, const char *page)
{
	int rc;
	char *out;

	ck_assert_int_eq(t_write_file(p("metrics.txt"), page, 0600), 0);
	rc = run("lint.out", p("metrics.txt"), (const char *const[]){ "promtool", "check", "metrics", NULL });
	out = slurp(p("lint.out"));
	ck_assert_msg(rc == 0, "promtool check metrics on %s's /metrics: exit %d:\n%s", what, rc, out);
	free(out);
}

START_TEST(broker_metrics_lint)
{
	struct broker_fx f;
	char *page;

	if (!have("broker_metrics_lint", "promtool"))
		return;
	broker_start(&f);
	/* Series of every family: requests by route, renewals and a rotation of db. */
	for (int i = 0; i < 3; i++) {
		char *b = NULL;

		t_http("GET", "http://broker/v1/secrets/db", f.sock, NULL, NULL, &b);
		free(b);
		t_http("GET", "http://broker/v1/secrets/api/user", f.sock, NULL, NULL, &b);
		free(b);
	}
	ck_assert_msg(t_wait_until(broker_rotated, &f, 3 * T_DEADLINE_MS),
		      "no renewal and rotation of db in the metrics");
	page = metrics_page(f.metrics_port);
	ck_assert_ptr_nonnull(page);
	ck_assert_ptr_nonnull(strstr(page, "latchkey_broker_request_duration_seconds_bucket{route=\"secret\""));
	ck_assert_ptr_nonnull(strstr(page, "latchkey_broker_secret_expiry_seconds{secret=\"db\"}"));
	lint_metrics("the broker", page);
	free(page);
	broker_stop(&f);
}
END_TEST

/* ---- a controller against the test API server and latchkey dev ---------------------- */

static bool
reconciled(void *arg)
{
	int *port = arg;
	char *m = metrics_page(*port);
	bool ok = m != NULL && strstr(m, "latchkey_sync_secret_writes_total{kind=\"ExternalSecret\"}") != NULL &&
		  strstr(m, "latchkey_sync_reconcile_total{kind=\"SecretStore\"}") != NULL;

	free(m);
	return ok;
}

START_TEST(sync_metrics_lint)
{
	struct t_kube k;
	struct t_dev d;
	struct t_proc ctl;
	char body[2048], crds[1100], line[1024], *b64 = NULL, *page, *at;
	json_t *j = NULL;
	int port;

	if (!have("sync_metrics_lint", "promtool") || !have("sync_metrics_lint", "kubectl"))
		return;
	ck_assert_int_eq(lk_secret_init(), 0);
	ck_assert_msg(t_kube_start(&k, NULL) == 0, "the test API server did not start");
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
	snprintf(crds, sizeof(crds), "%s/deploy/crds/", src);
	{
		char env[700];
		const char *e[] = { env, NULL };
		const char *argv[] = { "/usr/bin/env", "kubectl", "apply", "--server-side", "-f", crds, NULL };

		snprintf(env, sizeof(env), "KUBECONFIG=%s", k.kubeconfig);
		ck_assert_int_eq(t_run(argv, e, NULL, p("apply.out"), p("apply.out")), 0);
	}
	ck_assert_int_lt(dev_call(&d, "POST", "/v1/secret/data/app/db", "{\"data\":{\"v\":\"x\"}}"), 300);
	ck_assert_int_eq(t_kube_json(&k, "POST", "/api/v1/namespaces", NULL, "{\"apiVersion\":\"v1\",\"kind\":"
				     "\"Namespace\",\"metadata\":{\"name\":\"app\"}}", &j), 201);
	json_decref(j);
	ck_assert_int_eq(lk_b64_encode(d.token, strlen(d.token), LK_B64_STD, &b64), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
		 "\"vault-token\"},\"data\":{\"token\":\"%s\"}}", b64);
	free(b64);
	ck_assert_int_eq(t_kube_json(&k, "POST", "/api/v1/namespaces/app/secrets", NULL, body, &j), 201);
	json_decref(j);
	{
		const char *argv[] = { t_latchkey_bin(), "sync", "--kubeconfig", k.kubeconfig, "--metrics",
			"127.0.0.1:0", "--controller-namespace", "default", NULL };

		ck_assert_int_eq(t_spawn(&ctl, argv, NULL, p("sync.log")), 0);
	}
	ck_assert(t_wait_log(&ctl, "\"msg\":\"leading: writes start\"", T_DEADLINE_MS, NULL, 0));
	ck_assert(t_wait_log(&ctl, "\"metrics_port\":", T_DEADLINE_MS, line, sizeof(line)));
	at = strstr(line, "\"metrics_port\":");
	port = atoi(at + strlen("\"metrics_port\":"));
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\",\"metadata\":"
		 "{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\",\"path\":\"secret\","
		 "\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\",\"key\":\"token\"}}}}}}", d.addr);
	ck_assert_int_eq(t_kube_json(&k, "POST", "/apis/latchkey.io/v1/namespaces/app/secretstores", NULL, body, &j), 201);
	json_decref(j);
	ck_assert_int_eq(t_kube_json(&k, "POST", "/apis/latchkey.io/v1/namespaces/app/externalsecrets", NULL,
				     "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\",\"metadata\":"
				     "{\"name\":\"db\"},\"spec\":{\"secretStoreRef\":{\"name\":\"vault\"},\"data\":"
				     "[{\"secretKey\":\"v\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"v\"}}]}}", &j), 201);
	json_decref(j);
	ck_assert_msg(t_wait_until(reconciled, &port, 3 * T_DEADLINE_MS), "the controller never wrote the Secret");
	page = metrics_page(port);
	ck_assert_ptr_nonnull(page);
	ck_assert_ptr_nonnull(strstr(page, "latchkey_sync_leader 1"));
	ck_assert_ptr_nonnull(strstr(page, "latchkey_sync_api_request_duration_seconds_bucket"));
	lint_metrics("latchkey sync", page);
	free(page);
	{
		int st = t_stop(&ctl, SIGTERM, T_DEADLINE_MS);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "latchkey sync did not exit cleanly");
	}
	t_dev_stop(&d);
	ck_assert_int_eq(t_kube_stop(&k), 0);
}
END_TEST

/* ---- a real Prometheus -------------------------------------------------------------- */

struct prom_query {
	int port;
	const char *query;
	const char *want;       /* a substring of the first result's value, e.g. "\"1\"" */
	char last[1024];
};

static bool
prom_answers(void *arg)
{
	struct prom_query *q = arg;
	char url[1024], *body = NULL, *esc;
	bool ok = false;
	CURL *c = curl_easy_init();

	esc = curl_easy_escape(c, q->query, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", q->port, esc);
	curl_free(esc);
	curl_easy_cleanup(c);
	if (t_http("GET", url, NULL, NULL, NULL, &body) == 200 && body != NULL) {
		json_t *j = json_loads(body, 0, NULL);
		json_t *r = json_array_get(json_object_get(json_object_get(j, "data"), "result"), 0);
		char *text = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;

		snprintf(q->last, sizeof(q->last), "%s", body);
		ok = text != NULL && strstr(text, q->want) != NULL;
		free(text);
		json_decref(j);
	}
	free(body);
	return ok;
}

static bool
prom_ready(void *arg)
{
	int *port = arg;
	char url[128], *body = NULL;
	bool ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/-/ready", *port);
	ok = t_http("GET", url, NULL, NULL, NULL, &body) == 200;
	free(body);
	return ok;
}

static void
prom_expect(int port, const char *query, const char *want)
{
	struct prom_query q = { .port = port, .query = query, .want = want };

	/* Scrapes every second, rules every second: a generous bound for a busy machine. */
	ck_assert_msg(t_wait_until(prom_answers, &q, 3 * T_DEADLINE_MS),
		      "Prometheus never answered %s with %s (last answer: %s)", query, want, q.last);
}

START_TEST(prometheus_scrapes_broker)
{
	struct broker_fx f;
	struct t_proc prom = { 0 };
	char cfg[4096], rules[2048], listen[64], data_dir[600], cfg_arg[700], data_arg[700];
	int port = 0;

	if (!have("prometheus_scrapes_broker", "prometheus"))
		return;
	broker_start(&f);
	snprintf(rules, sizeof(rules), "%s/deploy/monitoring/latchkey.rules.yaml", src);
	if (rules[0] != '/') {
		char cwd[900];

		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		snprintf(rules, sizeof(rules), "%s/%s/deploy/monitoring/latchkey.rules.yaml", cwd, src);
	}
	snprintf(cfg, sizeof(cfg),
		 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
		 "rule_files:\n  - %s\n"
		 "scrape_configs:\n  - job_name: latchkey-broker\n    static_configs:\n"
		 "      - targets: ['127.0.0.1:%d']\n        labels: {namespace: app, pod: app-0}\n",
		 rules, f.metrics_port);
	ck_assert_int_eq(t_write_file(p("prometheus.yml"), cfg, 0600), 0);
	snprintf(data_dir, sizeof(data_dir), "%s", p("tsdb"));
	snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", p("prometheus.yml"));
	snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", data_dir);
	for (int attempt = 0; attempt < 3 && prom.pid == 0; attempt++) {
		const char *argv[] = { "/usr/bin/env", "prometheus", cfg_arg, data_arg, listen,
			"--storage.tsdb.retention.time=1h", "--log.level=warn", NULL };

		port = free_port();
		snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", port);
		ck_assert_int_eq(t_spawn(&prom, argv, NULL, p("prometheus.log")), 0);
		if (!t_wait_until(prom_ready, &port, 3 * T_DEADLINE_MS)) {
			t_stop(&prom, SIGTERM, T_DEADLINE_MS);
			prom.pid = 0;
		}
	}
	if (prom.pid == 0) {
		char *log = slurp(p("prometheus.log"));

		ck_abort_msg("prometheus did not become ready:\n%s", log);
	}
	/* The broker's series, with the target's labels, and a rule of latchkey.rules.yaml. */
	prom_expect(port, "latchkey_broker_ready{job=\"latchkey-broker\",namespace=\"app\"}", "\"1\"]");
	prom_expect(port, "latchkey_broker_secrets{state=\"valid\"}", "\"2\"]");
	prom_expect(port, "count(latchkey_broker_secret_expiry_seconds{secret=\"db\"} > 0)", "\"1\"]");
	prom_expect(port, "count(latchkey:broker_secret_lifetime_seconds:max1d)", "\"1\"]");
	prom_expect(port, "count(ALERTS{alertname=\"LatchkeyBrokerNotReady\"}) or vector(0)", "\"0\"]");
	{
		int st = t_stop(&prom, SIGTERM, T_DEADLINE_MS);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "prometheus did not exit cleanly (%d)", st);
	}
	broker_stop(&f);
}
END_TEST

static Suite *
observability_suite(void)
{
	Suite *s = suite_create("observability");
	TCase *tc = tcase_create("observability");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, rules_check_and_unit_tests);
	tcase_add_test(tc, broker_metrics_lint);
	tcase_add_test(tc, sync_metrics_lint);
	tcase_add_test(tc, prometheus_scrapes_broker);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(observability_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
