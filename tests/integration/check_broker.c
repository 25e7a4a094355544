/* check_broker.c — `latchkey broker` against `latchkey dev`: loading, renewal, rotation,
 * revocation, outages, blocking reads, peer authorization, the socket file, config errors,
 * keep-alive, files, and that no secret value reaches the logs or metrics. */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/httpd.h"
#include "vault/vault.h"
#include "testutil.h"

/* The dynamic role's lease times: short, so rotations happen within seconds. */
#define DB_DEFAULT_TTL "3s"
#define DB_MAX_TTL "6s"
#define KV_PASSWORD "kv-canary-password-7f3a9c51"
#define KV_USER "kv-canary-user-0d2e4b"

struct fixture {
	struct t_dev dev;
	char *dir;
	char sock[600];
	char cfg[600];
	char log[600];
	char token_file[600];
	struct t_proc broker;
};

static long
dev_call(struct fixture *f, const char *method, const char *path, const char *body,
	 char **ret_body)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", f->dev.addr, path);
	return t_http(method, url, NULL, f->dev.token, body, ret_body);
}

static long
broker_get(struct fixture *f, const char *path, char **ret_body)
{
	char url[512];

	snprintf(url, sizeof(url), "http://broker%s", path);
	return t_http("GET", url, f->sock, NULL, NULL, ret_body);
}

/* Starts the dev backend with a database role and a KV secret. */
static void
fixture_dev(struct fixture *f)
{
	char body[256];

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(t_dev_start(&f->dev, NULL), 0);
	f->dir = t_tmpdir();
	ck_assert_ptr_nonnull(f->dir);
	/* Others may traverse (the 403 test connects as nobody), not list or write. */
	ck_assert_int_eq(chmod(f->dir, 0711), 0);
	snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", f->dir);
	snprintf(f->cfg, sizeof(f->cfg), "%s/broker.json", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/broker.log", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
	ck_assert_int_eq(t_write_file(f->token_file, f->dev.token, 0600), 0);
	snprintf(body, sizeof(body), "{\"db_name\":\"pg\",\"default_ttl\":\"%s\",\"max_ttl\":\"%s\"}",
		 DB_DEFAULT_TTL, DB_MAX_TTL);
	ck_assert_int_lt(dev_call(f, "POST", "/v1/database/roles/app", body, NULL), 300);
	ck_assert_int_lt(dev_call(f, "POST", "/v1/secret/data/app/api",
				  "{\"data\":{\"user\":\"" KV_USER "\",\"password\":\"" KV_PASSWORD "\"}}",
				  NULL), 300);
}

/* Writes the config with these secrets (a JSON array's inside) and extra top-level text. */
static void
fixture_config(struct fixture *f, const char *secrets, const char *extra, const char *mode)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "{\n"
		 "  \"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},\n"
		 "  \"listen\": {\"socket\": \"%s\", \"mode\": \"%s\"},\n"
		 "  \"grace\": \"1s\",\n"
		 "  \"retry\": {\"initial\": \"200ms\", \"max\": \"1s\"},\n"
		 /* Every test written this way runs under the allow-list. */
		 "  \"seccomp\": true,\n"
		 "  %s%s"
		 "  \"secrets\": [%s]\n"
		 "}\n",
		 f->dev.addr, f->token_file, f->sock, mode != NULL ? mode : "0666",
		 extra != NULL ? extra : "", extra != NULL ? ",\n" : "", secrets);
	ck_assert_int_eq(t_write_file(f->cfg, text, 0600), 0);
}

static const char default_secrets[] =
	"{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true},"
	"{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"5m\"}";

static void
fixture_start(struct fixture *f)
{
	const char *argv[] = { t_latchkey_bin(), "broker", "--config", f->cfg,
			       "--log-level", "debug", NULL };

	ck_assert_int_eq(t_spawn(&f->broker, argv, NULL, f->log), 0);
	ck_assert_msg(t_wait_log(&f->broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0),
		      "the broker did not start serving");
}

static void
fixture_stop(struct fixture *f)
{
	if (f->broker.pid != 0)
		t_stop(&f->broker, SIGTERM, 5000);
	t_dev_stop(&f->dev);
	if (f->dir != NULL) {
		t_rmrf(f->dir);
		free(f->dir);
		f->dir = NULL;
	}
}

/* Ready, and every secret (required or not) loaded. */
static bool
ready_cond(void *arg)
{
	struct fixture *f = arg;
	char *body = NULL;
	bool ok = broker_get(f, "/v1/ready", &body) == 200 && body != NULL &&
		  strstr(body, "\"state\":\"pending\"") == NULL &&
		  strstr(body, "\"state\":\"failed\"") == NULL;

	free(body);
	return ok;
}

static void
wait_ready(struct fixture *f)
{
	ck_assert_msg(t_wait_until(ready_cond, f, T_DEADLINE_MS), "the broker never became ready");
}

/* GET /v1/secrets/NAME parsed; NULL unless 200. */
static json_t *
get_secret(struct fixture *f, const char *name, long *ret_status)
{
	char path[256], *body = NULL;
	json_t *j = NULL;
	long st;

	snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	st = broker_get(f, path, &body);
	if (ret_status != NULL)
		*ret_status = st;
	if (st == 200 && body != NULL)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

static json_int_t
version_of(json_t *j)
{
	return json_integer_value(json_object_get(j, "version"));
}

static const char *
data_str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(json_object_get(j, "data"), key));
}

/* Runs argv and returns its exit status, with stdout+stderr in *ret_out (malloc'd). */
static int
run(const char *const argv[], char **ret_out)
{
	char path[] = "/tmp/latchkey-run.XXXXXX";
	int fd = mkstemp(path), status = -1;
	pid_t pid;

	ck_assert_int_ge(fd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (ret_out != NULL)
		*ret_out = t_read_file(path);
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The dev backend's view of the leases: how many are in state. */
static int
leases_in_state(struct fixture *f, const char *state, const char *except_id)
{
	char *body = NULL;
	json_t *j, *arr, *l;
	size_t i;
	int n = 0;

	if (dev_call(f, "GET", "/_latchkey/leases", NULL, &body) != 200)
		return -1;
	j = json_loads(body, 0, NULL);
	free(body);
	arr = json_object_get(j, "leases");
	json_array_foreach(arr, i, l) {
		const char *id = json_string_value(json_object_get(l, "lease_id"));

		if (except_id != NULL && id != NULL && strcmp(id, except_id) == 0)
			continue;
		if (strcmp(json_string_value(json_object_get(l, "state")), state) == 0)
			n++;
	}
	json_decref(j);
	return n;
}

/* The latest expire_time among the dev backend's leases, in Unix ms; 0 when none. */
static int64_t
latest_lease_expiry(struct fixture *f)
{
	char *body = NULL;
	json_t *j, *l;
	int64_t latest = 0;
	size_t i;

	if (dev_call(f, "GET", "/_latchkey/leases", NULL, &body) != 200)
		return 0;
	j = json_loads(body, 0, NULL);
	free(body);
	json_array_foreach(json_object_get(j, "leases"), i, l) {
		const char *t = json_string_value(json_object_get(l, "expire_time"));
		int64_t ms = 0;

		if (t != NULL && lk_rfc3339_parse(t, &ms) == 0 && ms > latest)
			latest = ms;
	}
	json_decref(j);
	return latest;
}

/* ---- tests ---- */

START_TEST(test_first_load)
{
	struct fixture f;
	char *body = NULL;
	json_t *j;
	long st;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);

	j = get_secret(&f, "db", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(version_of(j), 1);
	ck_assert_ptr_nonnull(data_str(j, "username"));
	ck_assert(strncmp(data_str(j, "username"), "v-token-app-", 12) == 0);
	ck_assert(json_is_true(json_object_get(json_object_get(j, "lease"), "renewable")));
	ck_assert(json_is_string(json_object_get(json_object_get(j, "lease"), "expires_at")));
	/* The expiry served is never later than the backend's own: the broker counts the
	 * TTL from when it sent the request, not from when the answer arrived. */
	{
		const char *exp = json_string_value(json_object_get(json_object_get(j, "lease"),
								    "expires_at"));
		int64_t served_ms = 0, backend_ms = 0;

		ck_assert_int_eq(lk_rfc3339_parse(exp, &served_ms), 0);
		backend_ms = latest_lease_expiry(&f);
		ck_assert_int_gt(backend_ms, 0);
		ck_assert_msg(served_ms <= backend_ms, "served expiry %lld is %lld ms after the "
			      "backend's", (long long)served_ms, (long long)(served_ms - backend_ms));
	}
	json_decref(j);

	j = get_secret(&f, "api", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(data_str(j, "password"), KV_PASSWORD);
	ck_assert(json_is_null(json_object_get(json_object_get(j, "lease"), "expires_at")));
	json_decref(j);

	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api/password", &body), 200);
	ck_assert_str_eq(body, KV_PASSWORD);
	free(body);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "\"db\""));
	ck_assert_ptr_nonnull(strstr(body, "\"api\""));
	free(body);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/nope", &body), 404);
	ck_assert_ptr_nonnull(strstr(body, "\"error\""));
	free(body);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api/nokey", NULL), 404);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/db?index=x", NULL), 400);
	ck_assert_int_eq(broker_get(&f, "/v1/health", NULL), 200);
	ck_assert_int_eq(broker_get(&f, "/nowhere", NULL), 404);
	{
		char url[128];

		snprintf(url, sizeof(url), "http://broker/v1/secrets/db");
		ck_assert_int_eq(t_http("POST", url, f.sock, NULL, "{}", NULL), 405);
	}
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_requests_total{route=\"secret\",code=\"200\"}"));
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_logins_total 1"));
	free(body);
	/* Every read is audited, without the value. */
	ck_assert(t_wait_log(&f.broker, "\"secret\":\"api\",\"key\":\"password\",\"version\":1,\"result\":\"ok\"",
			     T_DEADLINE_MS, NULL, 0));
	fixture_stop(&f);
}
END_TEST

struct poll_state {
	struct fixture *f;
	json_int_t min_version;
	bool saw_expired;
};

/* True once db is served at min_version or later; flags any served credential that had
 * already expired. */
static bool
version_cond(void *arg)
{
	struct poll_state *ps = arg;
	/* Expired before the request was sent (see db_unavailable_cond). */
	int64_t sent_ms = lk_now_real_ms();
	long st;
	json_t *j = get_secret(ps->f, "db", &st);
	bool done = false;

	if (j != NULL) {
		const char *exp = json_string_value(json_object_get(json_object_get(j, "lease"),
								    "expires_at"));
		int64_t exp_ms = 0;

		if (exp == NULL || lk_rfc3339_parse(exp, &exp_ms) < 0 || exp_ms <= sent_ms)
			ps->saw_expired = true;
		done = version_of(j) >= ps->min_version;
		json_decref(j);
	}
	return done;
}

START_TEST(test_renewal_rotation_revocation)
{
	struct fixture f;
	struct poll_state ps;
	char *metrics = NULL;
	const char *lease_id;
	json_t *first, *j;
	char first_user[256];

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	first = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(first);
	snprintf(first_user, sizeof(first_user), "%s", data_str(first, "username"));
	json_decref(first);

	/* Renewed at 2/3 of 3 s, capped by the 6 s max TTL, then rotated before expiry:
	 * version 2 with a new username, and never an expired credential on the way. */
	ps.f = &f;
	ps.min_version = 2;
	ps.saw_expired = false;
	ck_assert(t_wait_until(version_cond, &ps, T_DEADLINE_MS));
	ck_assert(!ps.saw_expired);
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"lease renewed\"", T_DEADLINE_MS, NULL, 0));
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"lease renewal capped, rotation planned\"",
			     T_DEADLINE_MS, NULL, 0));
	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_ne(data_str(j, "username"), first_user);
	json_decref(j);

	/* The replaced lease is revoked after the 1 s grace, before it would have expired. */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"lease revoked\",\"secret\":\"db\",\"why\":\"replaced\"",
			     T_DEADLINE_MS, NULL, 0));
	ck_assert_int_ge(leases_in_state(&f, "revoked", NULL), 1);
	ck_assert_int_eq(broker_get(&f, "/metrics", &metrics), 200);
	ck_assert_ptr_nonnull(strstr(metrics, "latchkey_broker_renewals_total{secret=\"db\"}"));
	ck_assert_ptr_null(strstr(metrics, "latchkey_broker_rotations_total{secret=\"db\"} 0"));
	ck_assert_ptr_null(strstr(metrics, "latchkey_broker_revocations_total{secret=\"db\"} 0"));
	ck_assert_ptr_nonnull(strstr(metrics, "latchkey_broker_secret_expiry_seconds{secret=\"db\"}"));
	free(metrics);
	(void)lease_id;
	/* Keeps going: a second rotation too. */
	ps.min_version = 3;
	ck_assert(t_wait_until(version_cond, &ps, T_DEADLINE_MS));
	ck_assert(!ps.saw_expired);
	fixture_stop(&f);
}
END_TEST

START_TEST(test_revoke_on_shutdown)
{
	struct fixture f;
	struct stat st;
	int status;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 1);
	ck_assert_int_eq(stat(f.sock, &st), 0);
	/* It exits by itself (t_stop would SIGKILL it after the deadline: WIFEXITED says it
	 * did not need to). */
	status = t_stop(&f.broker, SIGTERM, T_DEADLINE_MS);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 0);
	ck_assert_int_ge(leases_in_state(&f, "revoked", NULL), 1);
	ck_assert_int_ne(stat(f.sock, &st), 0);
	ck_assert_int_eq(errno, ENOENT);
	f.broker.pid = 0;
	fixture_stop(&f);
}
END_TEST

struct expiry_state {
	struct fixture *f;
	bool served_expired;
	char last_error[256];
};

static bool
db_unavailable_cond(void *arg)
{
	struct expiry_state *es = arg;
	char *body = NULL;
	/* Expired means expired before the request was sent: one that runs out while the
	 * answer travels back was still valid when it was served. */
	int64_t sent_ms = lk_now_real_ms();
	long st = broker_get(es->f, "/v1/secrets/db", &body);
	bool done = false;

	if (st == 200) {
		json_t *j = json_loads(body, 0, NULL);
		const char *exp = json_string_value(json_object_get(json_object_get(j, "lease"),
								    "expires_at"));
		int64_t exp_ms = 0;

		if (exp == NULL || lk_rfc3339_parse(exp, &exp_ms) < 0 || exp_ms <= sent_ms)
			es->served_expired = true;
		json_decref(j);
	} else if (st == 503) {
		snprintf(es->last_error, sizeof(es->last_error), "%s", body != NULL ? body : "");
		done = true;
	}
	free(body);
	return done;
}

START_TEST(test_backend_down)
{
	struct fixture f;
	struct expiry_state es;
	char *body = NULL;
	json_t *j;
	long st;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(dev_call(&f, "POST", "/_latchkey/faults",
				  "{\"error_rate\":1.0,\"error_status\":503}", NULL), 200);

	/* The dynamic credential runs out: 503 with the reason, never the expired value. */
	memset(&es, 0, sizeof(es));
	es.f = &f;
	ck_assert(t_wait_until(db_unavailable_cond, &es, T_DEADLINE_MS));
	ck_assert(!es.served_expired);
	ck_assert_ptr_nonnull(strstr(es.last_error, "\"error\":\"secret expired\""));
	ck_assert_ptr_nonnull(strstr(es.last_error, "\"reason\""));

	/* The static secret is still served from the cache. */
	j = get_secret(&f, "api", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_str_eq(data_str(j, "password"), KV_PASSWORD);
	json_decref(j);

	/* Readiness and metrics say what is wrong. */
	ck_assert_int_eq(broker_get(&f, "/v1/ready", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "required secret db is expired"));
	free(body);
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_ready 0"));
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_secrets{state=\"expired\"} 1"));
	free(body);

	/* Back up: a new credential is read and served. */
	ck_assert_int_eq(dev_call(&f, "DELETE", "/_latchkey/faults", NULL, NULL), 200);
	wait_ready(&f);
	j = get_secret(&f, "db", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_int_ge(version_of(j), 2);
	json_decref(j);
	fixture_stop(&f);
}
END_TEST

START_TEST(test_blocking_read)
{
	struct fixture f;
	char *body = NULL;
	json_t *j;
	int64_t t0, elapsed;
	json_int_t v;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	v = version_of(j);
	json_decref(j);

	/* An index far ahead: answered with the current version when the wait ends. */
	t0 = lk_now_mono_ms();
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api?index=99&wait=1s", &body), 200);
	elapsed = lk_now_mono_ms() - t0;
	ck_assert_int_ge(elapsed, 900);
	ck_assert_ptr_nonnull(strstr(body, "\"version\":1"));
	free(body);

	/* `latchkey get --after` blocks for the --wait it is given, also under a second
	 * (it used to send whole seconds: wait=0s, an answer at once). */
	{
		const char *argv[] = { t_latchkey_bin(), "get", "api", "--after", "1", "--wait=800ms",
				       "--socket", f.sock, NULL };
		char *out = NULL;

		t0 = lk_now_mono_ms();
		ck_assert_int_eq(run(argv, &out), 0);
		elapsed = lk_now_mono_ms() - t0;
		ck_assert_msg(elapsed >= 750, "get --after returned after %lld ms",
			      (long long)elapsed);
		ck_assert_ptr_nonnull(strstr(out, "\"version\":1"));
		free(out);
	}

	/* The current index: woken by the rotation, long before the 60 s wait. */
	{
		char path[128];

		snprintf(path, sizeof(path), "/v1/secrets/db?index=%lld&wait=60s", (long long)v);
		t0 = lk_now_mono_ms();
		ck_assert_int_eq(broker_get(&f, path, &body), 200);
	}
	j = json_loads(body, 0, NULL);
	free(body);
	/* A newer version: the rotation woke it (a wait that ran out answers version v). */
	ck_assert_int_gt(version_of(j), v);
	json_decref(j);
	fixture_stop(&f);
}
END_TEST

START_TEST(test_forbidden_peer)
{
	struct fixture f;
	pid_t pid;
	int status;

	fixture_dev(&f);
	fixture_config(&f,
		       "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"allow\": {\"uids\": [0]}},"
		       "{\"name\": \"pub\", \"path\": \"secret/data/app/api\"}", NULL, "0666");
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api", NULL), 200);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *body = NULL;
		int fails = 0;

		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		if (broker_get(&f, "/v1/secrets/api", &body) != 403)
			fails |= 1;
		if (body == NULL || strstr(body, "\"error\":\"forbidden\"") == NULL ||
		    strstr(body, KV_PASSWORD) != NULL)
			fails |= 2;
		free(body);
		body = NULL;
		if (broker_get(&f, "/v1/secrets/api/password", NULL) != 403)
			fails |= 4;
		if (broker_get(&f, "/v1/secrets", &body) != 200 || strstr(body, "\"pub\"") == NULL ||
		    strstr(body, "\"api\"") != NULL)
			fails |= 8;
		free(body);
		if (broker_get(&f, "/v1/secrets/pub", NULL) != 200)
			fails |= 16;
		_exit(fails);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(t_wait_log(&f.broker, "\"uid\":65534,\"gid\":65534,\"secret\":\"api\",\"key\":null,"
			     "\"version\":0,\"result\":\"forbidden\"", T_DEADLINE_MS, NULL, 0));
	fixture_stop(&f);
}
END_TEST

START_TEST(test_socket_mode_owner)
{
	struct fixture f;
	struct stat st;
	char extra_listen[512];
	char *out = NULL;
	int status;

	fixture_dev(&f);
	/* mode and ownership as configured */
	snprintf(extra_listen, sizeof(extra_listen), "%s", "");
	{
		char text[2048];

		snprintf(text, sizeof(text),
			 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},"
			 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0640\", \"owner\": 0, \"group\": 65534},"
			 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\"}]}",
			 f.dev.addr, f.token_file, f.sock);
		ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	}
	fixture_start(&f);
	ck_assert_int_eq(stat(f.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(st.st_uid, 0);
	ck_assert_int_eq(st.st_gid, 65534);
	t_stop(&f.broker, SIGTERM, 5000);
	f.broker.pid = 0;

	/* A socket directory others may write to is refused. */
	{
		char dir[700], text[2048];
		const char *argv[] = { t_latchkey_bin(), "broker", "--config", f.cfg, NULL };

		snprintf(dir, sizeof(dir), "%s/open", f.dir);
		ck_assert_int_eq(mkdir(dir, 0777), 0);
		ck_assert_int_eq(chmod(dir, 0777), 0);
		snprintf(text, sizeof(text),
			 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},"
			 " \"listen\": {\"socket\": \"%s/broker.sock\"},"
			 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\"}]}",
			 f.dev.addr, f.token_file, dir);
		ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
		status = run(argv, &out);
		ck_assert_int_ne(status, 0);
		ck_assert_msg(strstr(out, "writable by others") != NULL, "output: %s", out);
		free(out);
	}
	fixture_stop(&f);
}
END_TEST

struct bad_config {
	const char *text;
	const char *expect;
};

START_TEST(test_bad_config)
{
	static const struct bad_config cases[] = {
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": ["
		  "{\"name\": \"a\", \"path\": \"secret/data/a\"},"
		  "{\"name\": \"b\", \"path\": \"secret/data/b\"},"
		  "{\"name\": \"c\", \"path\": \"secret/data/c\", \"allow\": {\"uids\": \"1000\"}}]}",
		  "secrets[2].allow.uids: expected an array of integers" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": ["
		  "{\"name\": \"a\", \"path\": \"secret/data/a\", \"refesh\": \"5m\"}]}",
		  "secrets[0].refesh: unknown key" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": ["
		  "{\"name\": \"a\", \"path\": \"secret/data/a\"},"
		  "{\"name\": \"a\", \"path\": \"secret/data/b\"}]}",
		  "secrets[1].name: duplicate secret name" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": ["
		  "{\"name\": \"a b\", \"path\": \"secret/data/a\"}]}",
		  "secrets[0].name: expected" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"listen\": {\"mode\": 660},"
		  " \"secrets\": [{\"name\": \"a\", \"path\": \"secret/data/a\"}]}",
		  "listen.mode: expected an octal file mode" },
		{ "{\"secrets\": [{\"name\": \"a\", \"path\": \"secret/data/a\"}]}",
		  "vault: missing required key" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": ["
		  "{\"name\": \"a\", \"path\": \"secret/data/a\", \"refresh\": \"soon\"}]}",
		  "secrets[0].refresh" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\", \"auth\": {\"method\": \"magic\"}},"
		  " \"secrets\": [{\"name\": \"a\", \"path\": \"secret/data/a\"}]}",
		  "vault.auth.method" },
		{ "{\"vault\": {\"address\": \"http://127.0.0.1:1\"}, \"secrets\": [}", "broker.json" },
	};
	char *dir = t_tmpdir(), cfg[600], *out = NULL;
	const char *argv[] = { t_latchkey_bin(), "broker", "--check-config", cfg, NULL };

	ck_assert_ptr_nonnull(dir);
	snprintf(cfg, sizeof(cfg), "%s/broker.json", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(t_write_file(cfg, cases[i].text, 0600), 0);
		ck_assert_int_eq(run(argv, &out), 2);
		ck_assert_msg(strstr(out, cases[i].expect) != NULL && strstr(out, cfg) != NULL,
			      "case %zu: expected \"%s\" naming %s, got: %s", i, cases[i].expect,
			      cfg, out);
		free(out);
	}
	/* The issue's own example validates. */
	ck_assert_int_eq(t_write_file(cfg,
		"{\"vault\": {\"address\": \"http://127.0.0.1:8200\","
		"            \"auth\": {\"method\": \"token\", \"token_file\": \"/run/secrets/token\"}},"
		" \"listen\": {\"socket\": \"/run/latchkey/broker.sock\", \"mode\": \"0660\", \"metrics\": \"127.0.0.1:9102\"},"
		" \"secrets\": ["
		"  {\"name\": \"db\",  \"path\": \"database/creds/app\", \"required\": true, \"allow\": {\"uids\": [1000]}},"
		"  {\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"5m\"}]}", 0600), 0);
	ck_assert_int_eq(run(argv, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "ok (2 secrets)"));
	free(out);
	t_rmrf(dir);
	free(dir);
}
END_TEST

static size_t
discard(char *p, size_t size, size_t n, void *userdata)
{
	(void)p;
	(void)userdata;
	return size * n;
}

START_TEST(test_keepalive)
{
	struct fixture f;
	CURL *h;
	long connects = -1, code = 0;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	h = curl_easy_init();
	ck_assert_ptr_nonnull(h);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, f.sock);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	for (int i = 0; i < 5; i++) {
		curl_easy_setopt(h, CURLOPT_URL, i % 2 ? "http://broker/v1/secrets/api"
						       : "http://broker/v1/secrets/api/user");
		ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		ck_assert_int_eq(code, 200);
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
		ck_assert_int_eq(connects, i == 0 ? 1 : 0);
	}
	curl_easy_cleanup(h);
	fixture_stop(&f);
}
END_TEST

START_TEST(test_no_values_in_logs_or_metrics)
{
	struct fixture f;
	struct poll_state ps;
	char *values[16], *metrics = NULL, *log;
	size_t nvalues = 0;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	values[nvalues++] = strdup(KV_PASSWORD);
	values[nvalues++] = strdup(KV_USER);
	/* Collect the dynamic passwords of two versions, with renewals and a rotation. */
	for (json_int_t v = 1; v <= 2; v++) {
		json_t *j;

		ps.f = &f;
		ps.min_version = v;
		ps.saw_expired = false;
		ck_assert(t_wait_until(version_cond, &ps, T_DEADLINE_MS));
		j = get_secret(&f, "db", NULL);
		ck_assert_ptr_nonnull(j);
		values[nvalues++] = strdup(data_str(j, "password"));
		json_decref(j);
		ck_assert_int_eq(broker_get(&f, "/v1/secrets/db/password", NULL), 200);
		ck_assert_int_eq(broker_get(&f, "/v1/secrets/api/password", NULL), 200);
	}
	ck_assert_int_eq(broker_get(&f, "/metrics", &metrics), 200);
	ck_assert_int_eq(broker_get(&f, "/v1/ready", NULL), 200);
	t_stop(&f.broker, SIGTERM, 5000);
	f.broker.pid = 0;
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"secret rotated\""));
	ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"read\""));
	for (size_t i = 0; i < nvalues; i++) {
		ck_assert_msg(strstr(log, values[i]) == NULL, "value %zu appears in the log", i);
		ck_assert_msg(strstr(metrics, values[i]) == NULL, "value %zu appears in metrics", i);
		free(values[i]);
	}
	ck_assert_uint_gt(strlen(f.dev.token), 30);
	ck_assert_msg(strstr(log, f.dev.token) == NULL, "the token appears in the log");
	ck_assert_msg(strstr(metrics, f.dev.token) == NULL, "the token appears in metrics");
	free(log);
	free(metrics);
	fixture_stop(&f);
}
END_TEST

static bool
file_has(const char *path, const char *needle)
{
	char *t = t_read_file(path);
	bool ok = t != NULL && strstr(t, needle) != NULL;

	free(t);
	return ok;
}

struct file_wait {
	const char *path;
	const char *needle;
};

static bool
file_cond(void *arg)
{
	struct file_wait *fw = arg;

	return file_has(fw->path, fw->needle);
}

START_TEST(test_files_and_signal)
{
	struct fixture f;
	struct t_proc app;
	struct file_wait fw;
	char secrets[4096], env_path[700], tpl_path[700], pidfile[700], marker[700], script[2048];
	char pid_text[32];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct stat st;
	char *t;

	fixture_dev(&f);
	snprintf(env_path, sizeof(env_path), "%s/api.env", f.dir);
	snprintf(tpl_path, sizeof(tpl_path), "%s/db.conf", f.dir);
	snprintf(pidfile, sizeof(pidfile), "%s/app.pid", f.dir);
	snprintf(marker, sizeof(marker), "%s/hups", f.dir);
	snprintf(script, sizeof(script),
		 "trap 'echo hup >> %s' HUP; echo trapping > %s.ready; while :; do sleep 0.05; done",
		 marker, marker);
	ck_assert_int_eq(t_spawn(&app, argv, NULL, "/dev/null"), 0);
	/* The first signal must not come before the shell has set its trap. */
	{
		char ready[800];

		snprintf(ready, sizeof(ready), "%s.ready", marker);
		fw.path = ready;
		fw.needle = "trapping";
		ck_assert(t_wait_until(file_cond, &fw, T_DEADLINE_MS));
	}
	snprintf(pid_text, sizeof(pid_text), "%d\n", (int)app.pid);
	ck_assert_int_eq(t_write_file(pidfile, pid_text, 0644), 0);
	snprintf(secrets, sizeof(secrets),
		 "{\"name\": \"api\", \"path\": \"secret/data/app/api\","
		 " \"file\": {\"path\": \"%s\", \"format\": \"env\"}},"
		 "{\"name\": \"db\", \"path\": \"database/creds/app\","
		 " \"file\": {\"path\": \"%s\", \"format\": \"template\", \"mode\": \"0440\","
		 "  \"template\": \"user={{ username }}\\npass={{ .password }}\\n\","
		 "  \"pidfile\": \"%s\", \"signal\": \"HUP\", \"process\": \"sh\"}}", env_path,
		 tpl_path, pidfile);
	fixture_config(&f, secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);

	fw.path = env_path;
	fw.needle = "password=" KV_PASSWORD "\n";
	ck_assert(t_wait_until(file_cond, &fw, T_DEADLINE_MS));
	ck_assert(file_has(env_path, "user=" KV_USER "\n"));
	ck_assert_int_eq(stat(env_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0400);
	fw.path = tpl_path;
	fw.needle = "user=v-token-app-";
	ck_assert(t_wait_until(file_cond, &fw, T_DEADLINE_MS));
	ck_assert_int_eq(stat(tpl_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0440);
	/* A rotation rewrites the file and signals the process again. */
	fw.path = marker;
	fw.needle = "hup\nhup\n";
	ck_assert(t_wait_until(file_cond, &fw, T_DEADLINE_MS));
	t = t_read_file(tpl_path);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(strstr(t, "pass="));
	free(t);
	t_stop(&app, SIGKILL, 1000);
	fixture_stop(&f);
}
END_TEST

/* Counts the lines of the broker's log that contain needle. */
static int
log_count(struct fixture *f, const char *needle)
{
	char *log = t_read_file(f->log), *p;
	int n = 0;

	for (p = log; p != NULL && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(log);
	return n;
}

struct relogin_state {
	struct fixture *f;
};

static bool
relogin_cond(void *arg)
{
	struct relogin_state *rs = arg;

	return log_count(rs->f, "\"msg\":\"logged in\"") >= 2;
}

START_TEST(test_approle_token_renewal_and_relogin)
{
	struct fixture f;
	struct relogin_state rs;
	char *body = NULL, text[4096], role_id_file[700], secret_id_file[700];
	json_t *j;

	fixture_dev(&f);
	ck_assert_int_lt(dev_call(&f, "PUT", "/v1/sys/policies/acl/app",
				  "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\\n"
				  "path \\\"database/creds/app\\\" { capabilities = [\\\"read\\\"] }\"}",
				  NULL), 300);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/auth/approle/role/app",
				  "{\"token_ttl\":\"3s\",\"token_max_ttl\":\"6s\",\"token_policies\":[\"app\"]}",
				  NULL), 300);
	ck_assert_int_eq(dev_call(&f, "GET", "/v1/auth/approle/role/app/role-id", NULL, &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	snprintf(role_id_file, sizeof(role_id_file), "%s/role_id", f.dir);
	ck_assert_int_eq(t_write_file(role_id_file, json_string_value(json_object_get(
		json_object_get(j, "data"), "role_id")), 0600), 0);
	json_decref(j);
	ck_assert_int_eq(dev_call(&f, "POST", "/v1/auth/approle/role/app/secret-id", "{}", &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	snprintf(secret_id_file, sizeof(secret_id_file), "%s/secret_id", f.dir);
	ck_assert_int_eq(t_write_file(secret_id_file, json_string_value(json_object_get(
		json_object_get(j, "data"), "secret_id")), 0600), 0);
	json_decref(j);
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"approle\","
		 " \"role_id_file\": \"%s\", \"secret_id_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\"},"
		 " \"retry\": {\"initial\": \"200ms\", \"max\": \"1s\"},"
		 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\","
		 " \"required\": true}, {\"name\": \"db\", \"path\": \"database/creds/app\"}]}",
		 f.dev.addr, role_id_file, secret_id_file, f.sock);
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"logged in\",\"ttl_s\":3", T_DEADLINE_MS, NULL, 0));
	/* renewed at 2/3 of 3 s, then capped by the 6 s max TTL: a new login */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"token renewed\"", T_DEADLINE_MS, NULL, 0));
	rs.f = &f;
	ck_assert(t_wait_until(relogin_cond, &rs, T_DEADLINE_MS));
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_null(strstr(body, "latchkey_broker_logins_total 1\n"));
	ck_assert_ptr_null(strstr(body, "latchkey_broker_token_renewals_total 0"));
	free(body);
	/* The KV secret kept being re-read with the new token, without a version bump. */
	j = get_secret(&f, "api", NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(version_of(j), 1);
	json_decref(j);
	ck_assert_int_eq(log_count(&f, "\"msg\":\"secret read failed\""), 0);
	/* The backend revokes the old token's leases when it expires: the broker replaced
	 * the database credential read with it, and what it serves is an active lease. */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"rotating a lease of the previous token\"",
			     T_DEADLINE_MS, NULL, 0));
	{
		struct poll_state ps = { &f, 0, false };

		j = get_secret(&f, "db", NULL);
		ck_assert_ptr_nonnull(j);
		ps.min_version = version_of(j) + 1;
		json_decref(j);
		ck_assert(t_wait_until(version_cond, &ps, T_DEADLINE_MS));
		ck_assert(!ps.saw_expired);
	}
	ck_assert_int_ge(leases_in_state(&f, "active", NULL), 1);
	fixture_stop(&f);
}
END_TEST

START_TEST(test_kv_versions_and_clients)
{
	struct fixture f;
	struct poll_state ps;
	char *out = NULL;
	json_t *j;
	const char *get_key[] = { t_latchkey_bin(), "get", "api/password", "--socket", f.sock, NULL };
	const char *get_all[] = { t_latchkey_bin(), "get", "api", "--socket", f.sock, NULL };
	const char *get_no[] = { t_latchkey_bin(), "get", "nope", "--socket", f.sock, NULL };
	const char *status[] = { t_latchkey_bin(), "status", "--socket", f.sock, NULL };

	fixture_dev(&f);
	fixture_config(&f,
		       "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true},"
		       "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"}",
		       NULL, NULL);
	/* A client started before the broker waits for it with --wait. */
	{
		char out_path[700];
		const char *get_wait[] = { t_latchkey_bin(), "get", "api/user", "--wait=20s",
					   "--socket", f.sock, NULL };
		pid_t pid;
		int st;

		snprintf(out_path, sizeof(out_path), "%s/get-wait.out", f.dir);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			FILE *o = freopen(out_path, "w", stdout);

			if (o == NULL)
				_exit(127);
			execv(get_wait[0], (char *const *)get_wait);
			_exit(127);
		}
		fixture_start(&f);
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert(WIFEXITED(st));
		ck_assert_int_eq(WEXITSTATUS(st), 0);
		out = t_read_file(out_path);
		ck_assert_str_eq(out, KV_USER);
		free(out);
	}
	wait_ready(&f);

	ck_assert_int_eq(run(get_key, &out), 0);
	ck_assert_str_eq(out, KV_PASSWORD);
	free(out);
	ck_assert_int_eq(run(get_all, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"name\":\"api\",\"version\":1"));
	free(out);
	ck_assert_int_eq(run(get_no, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "404"));
	free(out);
	ck_assert_int_eq(run(status, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "ready: yes"));
	ck_assert_ptr_nonnull(strstr(out, "NEXT ACTION"));
	ck_assert_ptr_nonnull(strstr(out, "\ndb "));
	ck_assert_ptr_nonnull(strstr(out, "renew in"));
	ck_assert_ptr_null(strstr(out, KV_PASSWORD));
	free(out);

	/* Re-read every second with the same content: the version stays. */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"read\"", T_DEADLINE_MS, NULL, 0));
	ps.f = &f;
	ps.min_version = 2;
	ps.saw_expired = false;
	ck_assert(t_wait_until(version_cond, &ps, T_DEADLINE_MS)); /* db rotated meanwhile */
	j = get_secret(&f, "api", NULL);
	ck_assert_int_eq(version_of(j), 1);
	json_decref(j);
	/* New content: version 2, and a blocking reader learns of it. */
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/secret/data/app/api",
				  "{\"data\":{\"user\":\"u2\",\"password\":\"p2\"}}", NULL), 300);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api?index=1&wait=30s", &out), 200);
	ck_assert_ptr_nonnull(strstr(out, "\"version\":2"));
	ck_assert_ptr_nonnull(strstr(out, "\"user\":\"u2\""));
	free(out);
	fixture_stop(&f);
}
END_TEST

/* A service-account JWT for `latchkey dev` (which does not check signatures without
 * pem_keys): header.payload.signature in base64url. */
static void
write_jwt(const char *path, const char *sa_name)
{
	char payload[512], hb[256], pb[1024], text[1400];
	const char *header = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";

	snprintf(payload, sizeof(payload),
		 "{\"iss\":\"kubernetes/serviceaccount\",\"sub\":\"system:serviceaccount:default:%s\","
		 "\"exp\":%lld,\"kubernetes.io\":{\"namespace\":\"default\","
		 "\"serviceaccount\":{\"name\":\"%s\",\"uid\":\"0d6c3f1e\"}}}",
		 sa_name, (long long)(lk_now_real_ms() / 1000 + 3600), sa_name);
	sodium_bin2base64(hb, sizeof(hb), (const unsigned char *)header, strlen(header),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(pb, sizeof(pb), (const unsigned char *)payload, strlen(payload),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(text, sizeof(text), "%s.%s.c2lnbmF0dXJl\n", hb, pb);
	ck_assert_int_eq(t_write_file(path, text, 0600), 0);
}

struct count_state {
	struct fixture *f;
	const char *needle;
	int n;
};

static bool
count_cond(void *arg)
{
	struct count_state *cs = arg;

	return log_count(cs->f, cs->needle) >= cs->n;
}

START_TEST(test_kubernetes_jwt_reread)
{
	struct fixture f;
	struct count_state cs;
	char text[4096], jwt_file[700];
	int logins;

	fixture_dev(&f);
	ck_assert_int_lt(dev_call(&f, "PUT", "/v1/sys/policies/acl/app",
				  "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\"}",
				  NULL), 300);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/auth/kubernetes/config",
				  "{\"kubernetes_host\":\"https://kubernetes.default.svc\"}", NULL), 300);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/auth/kubernetes/role/app",
				  "{\"bound_service_account_names\":[\"app\"],"
				  "\"bound_service_account_namespaces\":[\"default\"],"
				  "\"token_ttl\":\"2s\",\"token_max_ttl\":\"3s\",\"token_policies\":[\"app\"]}",
				  NULL), 300);
	snprintf(jwt_file, sizeof(jwt_file), "%s/sa-token", f.dir);
	write_jwt(jwt_file, "app");
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"kubernetes\","
		 " \"role\": \"app\", \"jwt_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\"},"
		 " \"retry\": {\"initial\": \"200ms\", \"max\": \"500ms\"},"
		 " \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"required\": true}]}",
		 f.dev.addr, jwt_file, f.sock);
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	fixture_start(&f);
	wait_ready(&f);

	/* A token for another service account: the next login reads it and is refused. */
	write_jwt(jwt_file, "intruder");
	cs.f = &f;
	cs.needle = "\"msg\":\"login failed\"";
	cs.n = 1;
	ck_assert(t_wait_until(count_cond, &cs, T_DEADLINE_MS));
	/* The rotated (good) token is read at the next attempt: logged in again. */
	logins = log_count(&f, "\"msg\":\"logged in\"");
	write_jwt(jwt_file, "app");
	cs.needle = "\"msg\":\"logged in\"";
	cs.n = logins + 1;
	ck_assert(t_wait_until(count_cond, &cs, T_DEADLINE_MS));
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api/user", NULL), 200);
	fixture_stop(&f);
}
END_TEST

/* The first credential learns the max TTL from its capped renewal; the next ones are
 * replaced while at least 1/5 of their lifetime is left, before any renewal is capped. */
START_TEST(test_rotation_with_learned_max_ttl)
{
	struct fixture f;
	struct count_state cs;
	char line[1024];
	char *log, *p;
	long long left, life;

	fixture_dev(&f);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/database/roles/long",
				  "{\"db_name\":\"pg\",\"default_ttl\":\"2s\",\"max_ttl\":\"8s\"}", NULL), 300);
	fixture_config(&f, "{\"name\": \"db\", \"path\": \"database/creds/long\", \"required\": true}",
		       NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	cs.f = &f;
	cs.needle = "\"msg\":\"secret rotated\"";
	cs.n = 2;
	ck_assert(t_wait_until(count_cond, &cs, 30000));
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	p = strstr(log, cs.needle);
	ck_assert_ptr_nonnull(p);
	p = strstr(p + 1, cs.needle);
	ck_assert_ptr_nonnull(p);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
	free(log);
	p = strstr(line, "\"replaced_left_ms\":");
	ck_assert_ptr_nonnull(p);
	left = atoll(p + strlen("\"replaced_left_ms\":"));
	p = strstr(line, "\"replaced_life_ms\":");
	ck_assert_ptr_nonnull(p);
	life = atoll(p + strlen("\"replaced_life_ms\":"));
	/* Read at most 4/5 into the 8 s max TTL (the replaced lease itself may still have been
	 * due for renewals: life - left is its age when it was replaced). */
	ck_assert_msg(left > 0 && life - left <= 8000 * 4 / 5, "second rotation: %s", line);
	/* Only the first credential ran into the cap. */
	ck_assert_int_eq(log_count(&f, "\"msg\":\"lease renewal capped, rotation planned\""), 1);
	fixture_stop(&f);
}
END_TEST

/* A backend whose answers to a lease read arrive SLOW_ANSWER_MS after it issued the lease:
 * the lease's TTL runs from the issue, not from when the broker got the answer. */
#define SLOW_ANSWER_MS 1500
#define SLOW_TTL_S 10
#define SLOW_LEASES_MAX 64

struct slow_backend {
	pthread_mutex_t lock;
	int64_t issued_ms[SLOW_LEASES_MAX];   /* Unix ms at which lease n was issued */
	int n;
};

static void
slow_handler(void *ctx, struct lk_http_req *req)
{
	struct slow_backend *sb = ctx;
	const char *path = lk_http_path(req);
	char body[256];

	if (strcmp(path, "/v1/auth/token/lookup-self") == 0) {
		snprintf(body, sizeof(body),
			 "{\"data\":{\"ttl\":0,\"renewable\":false,\"policies\":[\"root\"]}}");
		lk_http_respond(req, 200, "application/json", body, strlen(body));
	} else if (strcmp(path, "/v1/database/creds/slow") == 0) {
		struct timespec ts = { SLOW_ANSWER_MS / 1000, (SLOW_ANSWER_MS % 1000) * 1000000L };
		int n;

		pthread_mutex_lock(&sb->lock);
		n = sb->n < SLOW_LEASES_MAX ? sb->n++ : SLOW_LEASES_MAX - 1;
		sb->issued_ms[n] = lk_now_real_ms();
		pthread_mutex_unlock(&sb->lock);
		nanosleep(&ts, NULL);
		snprintf(body, sizeof(body),
			 "{\"lease_id\":\"database/creds/slow/%d\",\"lease_duration\":%d,"
			 "\"renewable\":false,\"data\":{\"username\":\"u-%d\",\"password\":\"p\"}}",
			 n, SLOW_TTL_S, n);
		lk_http_respond(req, 200, "application/json", body, strlen(body));
	} else {
		lk_http_respond(req, 204, "application/json", NULL, 0);
	}
}

static bool
db_served_cond(void *arg)
{
	struct fixture *f = arg;

	return broker_get(f, "/v1/secrets/db", NULL) == 200;
}

/* The expiry the broker serves is counted from when it sent the read: an answer that took
 * 1.5 s to arrive does not let it serve the credential 1.5 s past the backend's expiry. */
START_TEST(test_expiry_counts_from_request)
{
	struct slow_backend sb;
	struct lk_httpd_config hc;
	struct lk_httpd *srv = NULL;
	struct lk_error err;
	struct fixture f;
	char text[2048];
	const char *exp_text;
	const char *user;
	int64_t served_ms = 0, issued_ms;
	json_t *j;
	int n;

	memset(&sb, 0, sizeof(sb));
	pthread_mutex_init(&sb.lock, NULL);
	memset(&hc, 0, sizeof(hc));
	hc.tcp_addr = "127.0.0.1:0";
	hc.threads = 4;
	hc.handler = slow_handler;
	hc.ctx = &sb;
	lk_error_clear(&err);
	ck_assert_msg(lk_httpd_start(&hc, &srv, &err) == 0, "%s", err.msg);

	memset(&f, 0, sizeof(f));
	f.dir = t_tmpdir();
	ck_assert_ptr_nonnull(f.dir);
	snprintf(f.sock, sizeof(f.sock), "%s/broker.sock", f.dir);
	snprintf(f.cfg, sizeof(f.cfg), "%s/broker.json", f.dir);
	snprintf(f.log, sizeof(f.log), "%s/broker.log", f.dir);
	snprintf(f.token_file, sizeof(f.token_file), "%s/token", f.dir);
	ck_assert_int_eq(t_write_file(f.token_file, "test-token", 0600), 0);
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"http://127.0.0.1:%d\","
		 " \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\"},"
		 " \"secrets\": [{\"name\": \"db\", \"path\": \"database/creds/slow\"}]}",
		 lk_httpd_port(srv), f.token_file, f.sock);
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	fixture_start(&f);
	ck_assert_msg(t_wait_until(db_served_cond, &f, T_DEADLINE_MS), "db was never served");

	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	user = data_str(j, "username");
	ck_assert_ptr_nonnull(user);
	n = atoi(user + 2);
	ck_assert(n >= 0 && n < SLOW_LEASES_MAX);
	pthread_mutex_lock(&sb.lock);
	issued_ms = sb.issued_ms[n];
	pthread_mutex_unlock(&sb.lock);
	exp_text = json_string_value(json_object_get(json_object_get(j, "lease"),
							     "expires_at"));
	ck_assert_ptr_nonnull(exp_text);
	ck_assert_int_eq(lk_rfc3339_parse(exp_text, &served_ms), 0);
	ck_assert_msg(served_ms <= issued_ms + SLOW_TTL_S * 1000,
		      "served expiry is %lld ms after the backend's",
		      (long long)(served_ms - issued_ms - SLOW_TTL_S * 1000));
	json_decref(j);

	t_stop(&f.broker, SIGTERM, 10000);
	lk_httpd_stop(srv);
	pthread_mutex_destroy(&sb.lock);
	t_rmrf(f.dir);
	free(f.dir);
}
END_TEST

/* A KV secret as large as a backend answer can carry (the client's 1 MiB cap, less the
 * envelope) is served whole: as JSON and as one text/plain value. */
START_TEST(test_large_kv_secret)
{
	/* The KV v2 envelope and metadata around the data take well under 2 KiB. */
	const size_t vlen = LK_VAULT_RESPONSE_MAX - 2048;
	char *value = malloc(vlen + 1), *body = malloc(vlen + 64), *got = NULL;
	struct fixture f;
	json_t *j;
	long st;

	ck_assert_ptr_nonnull(value);
	ck_assert_ptr_nonnull(body);
	memset(value, 'y', vlen);
	value[vlen] = '\0';
	fixture_dev(&f);
	snprintf(body, vlen + 64, "{\"data\":{\"big\":\"%s\"}}", value);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/secret/data/app/big", body, NULL), 300);
	fixture_config(&f, "{\"name\": \"big\", \"path\": \"secret/data/app/big\", \"required\": true}",
		       NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/big/big", &got), 200);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(strlen(got), vlen);
	ck_assert(strcmp(got, value) == 0);
	free(got);
	j = get_secret(&f, "big", &st);
	ck_assert_int_eq(st, 200);
	ck_assert_uint_eq(strlen(data_str(j, "big")), vlen);
	json_decref(j);
	fixture_stop(&f);
	free(value);
	free(body);
}
END_TEST

/* ---- the token: ttl 0, and revoked behind the broker's back ---- */

/* A backend whose token lookup says ttl 0, with an expire_time (no time left) or without
 * one (a root token, which never expires). */
struct zero_backend {
	atomic_bool never_expires;
	atomic_int creds_reads;
};

static void
zero_handler(void *ctx, struct lk_http_req *req)
{
	struct zero_backend *zb = ctx;
	const char *path = lk_http_path(req);
	char body[512], exp[LK_RFC3339_LEN];

	if (strcmp(path, "/v1/auth/token/lookup-self") == 0) {
		if (atomic_load(&zb->never_expires))
			snprintf(body, sizeof(body), "{\"data\":{\"ttl\":0,\"expire_time\":null,"
				 "\"renewable\":false,\"policies\":[\"root\"]}}");
		else
			snprintf(body, sizeof(body), "{\"data\":{\"ttl\":0,\"expire_time\":\"%s\","
				 "\"renewable\":true,\"policies\":[\"default\"]}}",
				 lk_rfc3339_ms(lk_now_real_ms() + 800, exp));
		lk_http_respond(req, 200, "application/json", body, strlen(body));
	} else if (strcmp(path, "/v1/database/creds/zero") == 0) {
		atomic_fetch_add(&zb->creds_reads, 1);
		snprintf(body, sizeof(body),
			 "{\"lease_id\":\"database/creds/zero/1\",\"lease_duration\":3600,"
			 "\"renewable\":true,\"data\":{\"username\":\"u\",\"password\":\"p\"}}");
		lk_http_respond(req, 200, "application/json", body, strlen(body));
	} else {
		lk_http_respond(req, 204, "application/json", NULL, 0);
	}
}

/* A token whose lookup shows 0 s left is expired, not one that never expires: nothing is
 * read with it and nothing served. A root token (ttl 0, no expire_time) works. */
START_TEST(test_token_zero_ttl)
{
	struct zero_backend zb;
	struct lk_httpd_config hc;
	struct lk_httpd *srv = NULL;
	struct lk_error err;
	struct count_state cs;
	struct fixture f;
	char text[2048], *body = NULL;

	atomic_init(&zb.never_expires, false);
	atomic_init(&zb.creds_reads, 0);
	memset(&hc, 0, sizeof(hc));
	hc.tcp_addr = "127.0.0.1:0";
	hc.threads = 2;
	hc.handler = zero_handler;
	hc.ctx = &zb;
	lk_error_clear(&err);
	ck_assert_msg(lk_httpd_start(&hc, &srv, &err) == 0, "%s", err.msg);
	memset(&f, 0, sizeof(f));
	f.dir = t_tmpdir();
	ck_assert_ptr_nonnull(f.dir);
	snprintf(f.sock, sizeof(f.sock), "%s/broker.sock", f.dir);
	snprintf(f.cfg, sizeof(f.cfg), "%s/broker.json", f.dir);
	snprintf(f.log, sizeof(f.log), "%s/broker.log", f.dir);
	snprintf(f.token_file, sizeof(f.token_file), "%s/token", f.dir);
	ck_assert_int_eq(t_write_file(f.token_file, "test-token", 0600), 0);
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"http://127.0.0.1:%d\","
		 " \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\"},"
		 " \"retry\": {\"initial\": \"100ms\", \"max\": \"300ms\"},"
		 " \"secrets\": [{\"name\": \"db\", \"path\": \"database/creds/zero\", \"required\": true}]}",
		 lk_httpd_port(srv), f.token_file, f.sock);
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	fixture_start(&f);
	cs.f = &f;
	cs.needle = "no time left";
	cs.n = 3;
	ck_assert_msg(t_wait_until(count_cond, &cs, T_DEADLINE_MS), "no login was refused");
	ck_assert_int_eq(atomic_load(&zb.creds_reads), 0);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/db", NULL), 503);
	ck_assert_int_eq(broker_get(&f, "/v1/ready", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "\"logged_in\":false"));
	free(body);
	ck_assert_int_eq(log_count(&f, "\"msg\":\"logged in\""), 0);

	/* A root token: ttl 0 and no expire_time is a token that never expires. */
	atomic_store(&zb.never_expires, true);
	ck_assert_msg(t_wait_until(db_served_cond, &f, T_DEADLINE_MS), "db was never served");
	ck_assert(t_wait_log(&f.broker, "\"never_expires\":true", T_DEADLINE_MS, NULL, 0));
	t_stop(&f.broker, SIGTERM, 10000);
	lk_httpd_stop(srv);
	t_rmrf(f.dir);
	free(f.dir);
}
END_TEST

struct revoked_state {
	struct fixture *f;
	char last[512];
};

static bool
db_revoked_cond(void *arg)
{
	struct revoked_state *rs = arg;
	char *body = NULL;
	long st = broker_get(rs->f, "/v1/secrets/db", &body);
	bool done = st == 503 && body != NULL && strstr(body, "\"error\":\"secret revoked\"") != NULL;
	json_t *j = st != 200 && body != NULL ? json_loads(body, 0, NULL) : NULL;

	/* The status and the error only: a body served with 200 holds the credential. */
	snprintf(rs->last, sizeof(rs->last), "%ld %s", st,
		 json_string_value(json_object_get(j, "error")) ?: "");
	json_decref(j);
	free(body);
	return done;
}

/* Revoking the broker's token revokes every lease it read (the backend does that): the
 * broker finds out with its periodic lookup-self, stops serving those credentials, says so,
 * and reads new ones once it can log in again. Static secrets stay. */
START_TEST(test_token_revoked_behind_its_back)
{
	struct revoked_state rs;
	struct fixture f;
	char *body = NULL, token[256], req[512];
	json_t *j;

	fixture_dev(&f);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/database/roles/long",
				  "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"max_ttl\":\"2h\"}", NULL), 300);
	ck_assert_int_lt(dev_call(&f, "PUT", "/v1/sys/policies/acl/app",
				  "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\\n"
				  "path \\\"database/creds/long\\\" { capabilities = [\\\"read\\\"] }\"}",
				  NULL), 300);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(dev_call(&f, "POST", "/v1/auth/token/create",
					  "{\"policies\":[\"app\"],\"ttl\":\"1h\"}", &body), 200);
		j = json_loads(body, 0, NULL);
		free(body);
		snprintf(k == 0 ? token : req, k == 0 ? sizeof(token) : sizeof(req), "%s",
			 json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
		json_decref(j);
	}
	/* token: the broker's; req holds a second one for later. */
	ck_assert_int_eq(t_write_file(f.token_file, token, 0600), 0);
	fixture_config(&f, "{\"name\": \"db\", \"path\": \"database/creds/long\", \"required\": true},"
		       "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}",
		       "\"token_check\": \"1s\"", NULL);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 1);

	{
		char revoke[512];

		snprintf(revoke, sizeof(revoke), "{\"token\":\"%s\"}", token);
		ck_assert_int_lt(dev_call(&f, "POST", "/v1/auth/token/revoke", revoke, NULL), 300);
	}
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 0);
	rs.f = &f;
	ck_assert_msg(t_wait_until(db_revoked_cond, &rs, T_DEADLINE_MS),
		      "the revoked credential is still served: %s", rs.last);
	ck_assert_int_eq(broker_get(&f, "/v1/ready", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "required secret db is revoked"));
	ck_assert_ptr_nonnull(strstr(body, "\"logged_in\":false"));
	free(body);
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_token_lost_total 1"));
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_secrets{state=\"revoked\"} 1"));
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_logged_in 0"));
	free(body);
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/api/password", NULL), 200);
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"read\",\"pid\"", T_DEADLINE_MS, NULL, 0));
	ck_assert(t_wait_log(&f.broker, "\"result\":\"revoked\"", T_DEADLINE_MS, NULL, 0));

	/* A new token: logged in again, a new credential read and served. */
	ck_assert_int_eq(t_write_file(f.token_file, req, 0600), 0);
	wait_ready(&f);
	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_ge(version_of(j), 2);
	json_decref(j);
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 1);
	fixture_stop(&f);
}
END_TEST

/* ---- conditional reads, unknown names, blocking reads at expiry, the audit ---- */

struct collected {
	char data[4096];
	size_t len;
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct collected *c = arg;
	size_t k = size * n;

	if (c->len + k < sizeof(c->data)) {
		memcpy(c->data + c->len, p, k);
		c->len += k;
		c->data[c->len] = '\0';
	}
	return size * n;
}

/* GET path with one extra request header; the status, and the body in *ret. */
static long
broker_get_with(struct fixture *f, const char *path, const char *header, struct collected *ret)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hs = curl_slist_append(NULL, header);
	char url[512];
	long code = 0;

	memset(ret, 0, sizeof(*ret));
	snprintf(url, sizeof(url), "http://broker%s", path);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, f->sock);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hs);
	curl_easy_cleanup(h);
	return code;
}

/* If-None-Match with the current ETag gets 304 and no value; reads of names that do not
 * exist are audited. */
START_TEST(test_not_modified_and_unknown_names)
{
	struct collected c;
	struct fixture f;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	ck_assert_int_eq(broker_get_with(&f, "/v1/secrets/api", "If-None-Match: \"1\"", &c), 304);
	ck_assert_uint_eq(c.len, 0);
	ck_assert_int_eq(broker_get_with(&f, "/v1/secrets/api/password", "If-None-Match: W/\"1\"", &c),
			 304);
	ck_assert_int_eq(broker_get_with(&f, "/v1/secrets/api", "If-None-Match: \"7\", *", &c), 304);
	ck_assert_int_eq(broker_get_with(&f, "/v1/secrets/api", "If-None-Match: \"2\", \"3\"", &c), 200);
	ck_assert_ptr_nonnull(strstr(c.data, KV_PASSWORD));
	ck_assert(t_wait_log(&f.broker, "\"secret\":\"api\",\"key\":null,\"version\":1,"
			     "\"result\":\"not-modified\"", T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/no-such/k", NULL), 404);
	ck_assert(t_wait_log(&f.broker, "\"secret\":\"no-such\",\"key\":\"k\",\"version\":0,"
			     "\"result\":\"no-such-secret\"", T_DEADLINE_MS, NULL, 0));
	fixture_stop(&f);
}
END_TEST

/* A blocking reader whose credential expires while it waits gets the 503 then, not at
 * the end of its wait. */
START_TEST(test_blocking_read_woken_at_expiry)
{
	struct fixture f;
	char path[128], *body = NULL;
	int64_t t0, elapsed;
	json_t *j;
	json_int_t v;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);
	fixture_start(&f);
	wait_ready(&f);
	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	v = version_of(j);
	json_decref(j);
	/* The backend fails from now on: no renewal, no replacement. */
	ck_assert_int_eq(dev_call(&f, "POST", "/_latchkey/faults",
				  "{\"error_rate\":1.0,\"error_status\":503}", NULL), 200);
	snprintf(path, sizeof(path), "/v1/secrets/db?index=%lld&wait=10m", (long long)v + 100);
	t0 = lk_now_mono_ms();
	ck_assert_int_eq(broker_get(&f, path, &body), 503);
	elapsed = lk_now_mono_ms() - t0;
	ck_assert_ptr_nonnull(strstr(body, "\"error\":\"secret expired\""));
	/* The lease is 3 s; the wait was 10 minutes (and the client's own timeout 30 s). */
	ck_assert_msg(elapsed < 15000, "answered after %lld ms", (long long)elapsed);
	free(body);
	fixture_stop(&f);
}
END_TEST

/* The sum of the audit lines' reads of (this process, api/password, version 1, ok): one
 * line for the first, the others as repeats; *ret_lines counts the lines without repeats. */
static long
audited_reads(struct fixture *f, int *ret_lines)
{
	char *log = t_read_file(f->log), *p, *line;
	const char *needle = "\"secret\":\"api\",\"key\":\"password\",\"version\":1,\"result\":\"ok\"";
	long total = 0;

	*ret_lines = 0;
	for (p = log; p != NULL && (line = strstr(p, needle)) != NULL; p = line + strlen(needle)) {
		char *r = strstr(line, "\"repeats\":"), *nl = strchr(line, '\n');

		if (r != NULL && (nl == NULL || r < nl)) {
			total += atol(r + strlen("\"repeats\":"));
		} else {
			total++;
			(*ret_lines)++;
		}
	}
	free(log);
	return total;
}

struct audit_wait {
	struct fixture *f;
	long want;
};

static bool
audit_cond(void *arg)
{
	struct audit_wait *aw = arg;
	int lines;

	return audited_reads(aw->f, &lines) >= aw->want;
}

/* Many reads of the same thing: the first is logged at once, the repeats are summed up
 * once per audit_interval; every read is counted, the log stays a few lines long. */
START_TEST(test_audit_summarised)
{
	const long reads = 2000;
	struct audit_wait aw;
	struct fixture f;
	CURL *h;
	int lines;

	fixture_dev(&f);
	fixture_config(&f, default_secrets, "\"audit_interval\": \"1s\"", NULL);
	fixture_start(&f);
	wait_ready(&f);
	h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, f.sock);
	curl_easy_setopt(h, CURLOPT_URL, "http://broker/v1/secrets/api/password");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	for (long i = 0; i < reads; i++)
		ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_cleanup(h);
	aw.f = &f;
	aw.want = reads;
	ck_assert_msg(t_wait_until(audit_cond, &aw, T_DEADLINE_MS), "audited %ld of %ld reads",
		      audited_reads(&f, &lines), reads);
	ck_assert_int_eq(audited_reads(&f, &lines), reads);
	ck_assert_int_eq(lines, 1);
	ck_assert_int_lt(log_count(&f, "\"key\":\"password\""), 40);
	fixture_stop(&f);
}
END_TEST

static void
kv_with_keys(struct fixture *f, const char *path, int nkeys)
{
	char *body = malloc((size_t)nkeys * 24 + 64);
	size_t off;

	ck_assert_ptr_nonnull(body);
	off = (size_t)sprintf(body, "{\"data\":{");
	for (int i = 0; i < nkeys; i++)
		off += (size_t)sprintf(body + off, "%s\"k%d\":\"v\"", i ? "," : "", i);
	strcpy(body + off, "}}");
	ck_assert_int_lt(dev_call(f, "POST", path, body, NULL), 300);
	free(body);
}

/* A secret of up to 1,024 keys is served; one with more is refused with a reason that
 * names the limit. */
START_TEST(test_keys_limit)
{
	struct fixture f;
	char *body = NULL;

	fixture_dev(&f);
	kv_with_keys(&f, "/v1/secret/data/app/wide", 1024);
	kv_with_keys(&f, "/v1/secret/data/app/wider", 1025);
	fixture_config(&f, "{\"name\": \"wide\", \"path\": \"secret/data/app/wide\"},"
		       "{\"name\": \"wider\", \"path\": \"secret/data/app/wider\", \"required\": true}",
		       NULL, NULL);
	fixture_start(&f);
	ck_assert(t_wait_log(&f.broker, "the secret has 1025 keys; at most 1024 keys are served",
			     T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(broker_get(&f, "/v1/secrets/wide/k1023", &body), 200);
	free(body);
	ck_assert_int_eq(broker_get(&f, "/v1/ready", &body), 503);
	ck_assert_ptr_nonnull(strstr(body, "at most 1024 keys are served"));
	free(body);
	fixture_stop(&f);
}
END_TEST

/* ---- what a peer sees of secrets it may not read ---- */

/* Exit status bits of metadata_peer: what the peer saw of the hidden secret. */
#define SAW_NAME_IN_METRICS 1
#define SAW_NAME_IN_READY 2
#define SAW_PATH_IN_READY 4
#define SAW_PUB 8
#define SAW_FAILURE 16

/* GETs /metrics and /v1/ready as uid and reports what it saw. */
static int
metadata_peer(struct fixture *f, uid_t uid)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *metrics = NULL, *ready = NULL;
		int saw = 0;

		if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
			_exit(100);
		if (broker_get(f, "/metrics", &metrics) != 200 || broker_get(f, "/v1/ready", &ready) != 503)
			_exit(101);
		if (strstr(metrics, "hidden") != NULL)
			saw |= SAW_NAME_IN_METRICS;
		if (strstr(ready, "hidden\"") != NULL || strstr(ready, "secret hidden") != NULL)
			saw |= SAW_NAME_IN_READY;
		if (strstr(ready, "app/hidden") != NULL)
			saw |= SAW_PATH_IN_READY;
		if (strstr(metrics, "secret=\"pub\"") != NULL && strstr(ready, "\"pub\"") != NULL)
			saw |= SAW_PUB;
		if (strstr(ready, "a required secret this peer may not read is failed") != NULL)
			saw |= SAW_FAILURE;
		free(metrics);
		free(ready);
		_exit(saw);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static bool
hidden_failed_cond(void *arg)
{
	struct fixture *f = arg;
	char *body = NULL;
	bool ok = broker_get(f, "/v1/ready", &body) == 503 && body != NULL &&
		  strstr(body, "required secret hidden is failed") != NULL &&
		  strstr(body, "\"pub\"") != NULL && strstr(body, "\"state\":\"valid\"") != NULL;

	free(body);
	return ok;
}

/* /metrics and the /v1/ready reasons on the socket show a peer only the secrets it may
 * read: not the names, not the backend paths of the others. Admin uids see everything. */
START_TEST(test_metadata_for_peers)
{
	struct fixture f;
	int saw;

	fixture_dev(&f);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/secret/data/app/hidden",
				  "{\"data\":{\"k\":\"v\"}}", NULL), 300);
	ck_assert_int_eq(dev_call(&f, "POST", "/_latchkey/faults",
				  "{\"error_rate\":1.0,\"error_status\":503,\"paths\":\"secret/data/app/hidden\"}",
				  NULL), 200);
	fixture_config(&f,
		       "{\"name\": \"hidden\", \"path\": \"secret/data/app/hidden\", \"required\": true,"
		       " \"allow\": {\"uids\": [0]}},"
		       "{\"name\": \"pub\", \"path\": \"secret/data/app/api\"}", NULL, "0666");
	/* The admin uid goes into listen. */
	{
		char *text = t_read_file(f.cfg), *p = strstr(text, "\"mode\"");
		char out[8192];

		ck_assert_ptr_nonnull(p);
		snprintf(out, sizeof(out), "%.*s\"admin_uids\": [65533], %s", (int)(p - text), text, p);
		ck_assert_int_eq(t_write_file(f.cfg, out, 0600), 0);
		free(text);
	}
	fixture_start(&f);
	ck_assert_msg(t_wait_until(hidden_failed_cond, &f, T_DEADLINE_MS), "never failed as set up");
	saw = metadata_peer(&f, 65534);
	ck_assert_msg((saw & (SAW_NAME_IN_METRICS | SAW_NAME_IN_READY | SAW_PATH_IN_READY)) == 0 &&
		      (saw & SAW_PUB) && (saw & SAW_FAILURE), "uid 65534 saw %#x", saw);
	saw = metadata_peer(&f, 65533);
	ck_assert_msg((saw & SAW_NAME_IN_METRICS) && (saw & SAW_NAME_IN_READY) &&
		      (saw & SAW_PATH_IN_READY), "the admin uid saw %#x", saw);
	fixture_stop(&f);
}
END_TEST

/* ---- the pidfile signal ---- */

struct pidfile_case {
	const char *what;
	bool victim_other_uid;      /* the process runs as uid 65534 */
	uid_t pidfile_owner;
	mode_t pidfile_mode;
	const char *process;        /* the configured command name */
	const char *expect;         /* in the refusal */
};

/* A pidfile that names another process than the one meant — another program, a process
 * of another uid, a file written by another uid or writable by anyone — is not obeyed: the
 * broker says why and signals nothing (a sleep dies of SIGHUP, so it would show). */
START_TEST(test_pidfile_checks)
{
	static const struct pidfile_case cases[] = {
		{ "another program", false, 0, 0644, "sh", "it is not \\\"sh\\\"" },
		{ "another uid's process", true, 0, 0644, "sleep", "it runs as uid 65534, not 0" },
		{ "a pidfile of another uid", false, 65534, 0644, "sleep", "owned by uid 0" },
		{ "a pidfile others may write", false, 0, 0666, "sleep", "writable by nobody else" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pidfile_case *pc = &cases[i];
		const char *plain[] = { "/bin/sleep", "600", NULL };
		const char *as_other[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
					   "--clear-groups", "/bin/sleep", "600", NULL };
		char secrets[2048], out_path[700], pidfile[700], pid_text[32], line[1024];
		struct t_proc victim;
		struct fixture f;

		fixture_dev(&f);
		snprintf(out_path, sizeof(out_path), "%s/api.json", f.dir);
		snprintf(pidfile, sizeof(pidfile), "%s/app.pid", f.dir);
		ck_assert_int_eq(t_spawn(&victim, pc->victim_other_uid ? as_other : plain, NULL,
					 "/dev/null"), 0);
		snprintf(pid_text, sizeof(pid_text), "%d\n", (int)victim.pid);
		ck_assert_int_eq(t_write_file(pidfile, pid_text, pc->pidfile_mode), 0);
		ck_assert_int_eq(chmod(pidfile, pc->pidfile_mode), 0);
		ck_assert_int_eq(chown(pidfile, pc->pidfile_owner, 0), 0);
		snprintf(secrets, sizeof(secrets),
			 "{\"name\": \"api\", \"path\": \"secret/data/app/api\","
			 " \"file\": {\"path\": \"%s\", \"pidfile\": \"%s\", \"process\": \"%s\"}}",
			 out_path, pidfile, pc->process);
		fixture_config(&f, secrets, NULL, NULL);
		fixture_start(&f);
		ck_assert_msg(t_wait_log(&f.broker, "\"msg\":\"file render failed\"", T_DEADLINE_MS,
					 line, sizeof(line)), "%s: no refusal", pc->what);
		ck_assert_msg(strstr(line, "not signalling") != NULL && strstr(line, pc->expect) != NULL,
			      "%s: %s", pc->what, line);
		/* The file itself was written; only the signal was withheld. */
		ck_assert(file_has(out_path, KV_PASSWORD));
		ck_assert_msg(t_alive(&victim), "%s: the process was signalled", pc->what);
		t_stop(&victim, SIGKILL, 1000);
		fixture_stop(&f);
	}
}
END_TEST

/* ---- crash safety: the lease journal ---- */

static void
state_config(struct fixture *f, const char *extra)
{
	char text[1024];

	snprintf(text, sizeof(text), "\"state_dir\": \"%s/state\"%s%s", f->dir,
		 extra != NULL ? ", " : "", extra != NULL ? extra : "");
	fixture_config(f, default_secrets, text, NULL);
}

struct lease_wait {
	struct fixture *f;
	const char *state;
	int want;
};

static bool
leases_cond(void *arg)
{
	struct lease_wait *lw = arg;

	return leases_in_state(lw->f, lw->state, NULL) == lw->want;
}

/* SIGTERM with the backend down: the broker says which lease stays live until when, keeps
 * it in the journal, and exits non-zero; the next start revokes it. */
START_TEST(test_sigterm_backend_down)
{
	struct lease_wait lw;
	struct fixture f;
	char journal[700], line[1024], *text;
	int status;

	fixture_dev(&f);
	state_config(&f, NULL);
	fixture_start(&f);
	wait_ready(&f);
	snprintf(journal, sizeof(journal), "%s/state/leases.json", f.dir);
	ck_assert(file_has(journal, "\"secret\":\"db\""));
	ck_assert_int_eq(dev_call(&f, "POST", "/_latchkey/faults",
				  "{\"error_rate\":1.0,\"error_status\":503}", NULL), 200);
	status = t_stop(&f.broker, SIGTERM, T_DEADLINE_MS);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	f.broker.pid = 0;
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"lease left live\",\"secret\":\"db\",\"expires_at\":\"",
			     T_DEADLINE_MS, line, sizeof(line)));
	ck_assert(t_wait_log(&f.broker, "the next start revokes them", T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 1);
	text = t_read_file(journal);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "database/creds/app/"));
	/* Lease ids and expiries only: no value in the journal. */
	ck_assert_ptr_null(strstr(text, "password"));
	ck_assert_ptr_null(strstr(text, KV_PASSWORD));
	free(text);

	/* The backend is back; a new broker revokes what the last one left. */
	ck_assert_int_eq(dev_call(&f, "DELETE", "/_latchkey/faults", NULL, NULL), 200);
	fixture_start(&f);
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"revoking the leases an earlier run left\","
			     "\"leases\":1", T_DEADLINE_MS, NULL, 0));
	wait_ready(&f);
	lw.f = &f;
	lw.state = "active";
	lw.want = 1;
	ck_assert_msg(t_wait_until(leases_cond, &lw, T_DEADLINE_MS), "%d leases active",
		      leases_in_state(&f, "active", NULL));
	ck_assert_int_ge(leases_in_state(&f, "revoked", NULL), 1);
	status = t_stop(&f.broker, SIGTERM, T_DEADLINE_MS);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	f.broker.pid = 0;
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 0);
	fixture_stop(&f);
}
END_TEST

/* kill -9: nothing runs at exit, the journal already names the lease; the next start
 * revokes it, so one lease is live, not two. */
START_TEST(test_kill9_then_restart)
{
	struct lease_wait lw;
	struct fixture f;

	fixture_dev(&f);
	state_config(&f, NULL);
	fixture_start(&f);
	wait_ready(&f);
	t_stop(&f.broker, SIGKILL, T_DEADLINE_MS);
	f.broker.pid = 0;
	ck_assert_int_eq(leases_in_state(&f, "active", NULL), 1);
	fixture_start(&f);
	wait_ready(&f);
	lw.f = &f;
	lw.state = "active";
	lw.want = 1;
	ck_assert_msg(t_wait_until(leases_cond, &lw, T_DEADLINE_MS), "%d leases active",
		      leases_in_state(&f, "active", NULL));
	ck_assert(t_wait_log(&f.broker, "\"why\":\"left by an earlier run\"", T_DEADLINE_MS,
			     NULL, 0));
	fixture_stop(&f);
}
END_TEST

/* ---- memory locking under a small RLIMIT_MEMLOCK ---- */

/* Secrets of sizes that need one arena region each (one per size class). */
#define MEMLOCK_SECRETS 9

static void
memlock_fixture(struct fixture *f, const char *extra)
{
	char secrets[4096], path[64], *value, body[20000];
	size_t off = 0, len = 30;

	fixture_dev(f);
	value = malloc(16000);
	ck_assert_ptr_nonnull(value);
	for (int i = 0; i < MEMLOCK_SECRETS; i++, len *= 2) {
		memset(value, 'm', len);
		value[len] = '\0';
		snprintf(path, sizeof(path), "/v1/secret/data/app/m%d", i);
		snprintf(body, sizeof(body), "{\"data\":{\"v\":\"%s\"}}", value);
		ck_assert_int_lt(dev_call(f, "POST", path, body, NULL), 300);
		off += (size_t)snprintf(secrets + off, sizeof(secrets) - off,
					"%s{\"name\": \"m%d\", \"path\": \"secret/data/app/m%d\"}",
					i ? "," : "", i, i);
	}
	free(value);
	fixture_config(f, secrets, extra, NULL);
}

/* Starts the broker under RLIMIT_MEMLOCK = limit and without CAP_IPC_LOCK (which would
 * lift the limit for root). False (with a skip) when the tools are missing. */
static bool
memlock_start(struct fixture *f, const char *limit)
{
	char script[256];
	const char *argv[] = { "/bin/sh", "-c", script, t_latchkey_bin(), f->cfg, NULL };

	if (!t_have_program("prlimit") || !t_have_program("setpriv")) {
		t_skip("prlimit or setpriv (util-linux) not found");
		return false;
	}
	/* exec all the way down: the broker keeps the pid the test stops. */
	snprintf(script, sizeof(script), "exec prlimit --memlock=%s:%s setpriv "
		 "--bounding-set=-ipc_lock -- \"$0\" broker --config \"$1\"", limit, limit);
	ck_assert_int_eq(t_spawn(&f->broker, argv, NULL, f->log), 0);
	return true;
}

static bool
all_memlock_served(void *arg)
{
	struct fixture *f = arg;
	char path[64];

	for (int i = 0; i < MEMLOCK_SECRETS; i++) {
		snprintf(path, sizeof(path), "/v1/secrets/m%d/v", i);
		if (broker_get(f, path, NULL) != 200)
			return false;
	}
	return true;
}

/* Under a 64 KiB limit the arena locks what fits, says once what is not locked, and
 * exports it; the secrets are all served. */
START_TEST(test_memlock_limit_reported)
{
	struct fixture f;
	char *body = NULL, *p;
	double unlocked, locked;

	memlock_fixture(&f, NULL);
	if (!memlock_start(&f, "65536")) {
		fixture_stop(&f);
		return;
	}
	ck_assert_msg(t_wait_until(all_memlock_served, &f, T_DEADLINE_MS), "not all served");
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"memory lock limit reached", T_DEADLINE_MS,
			     NULL, 0));
	ck_assert(t_wait_log(&f.broker, "\"memlock_limit_bytes\":65536", T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(log_count(&f, "memory lock limit reached"), 1);
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_memlock_limit_bytes 65536\n"));
	p = strstr(body, "\nlatchkey_broker_secret_memory_unlocked_bytes ");
	ck_assert_ptr_nonnull(p);
	unlocked = atof(p + strlen("\nlatchkey_broker_secret_memory_unlocked_bytes "));
	ck_assert_msg(unlocked > 0, "nothing reported unlocked");
	p = strstr(body, "\nlatchkey_broker_memory_locked_bytes ");
	ck_assert_ptr_nonnull(p);
	locked = atof(p + strlen("\nlatchkey_broker_memory_locked_bytes "));
	ck_assert(locked > 0 && locked <= 65536);
	free(body);
	fixture_stop(&f);
}
END_TEST

/* With require_mlock, memory that cannot be locked is refused: the secrets it would hold
 * fail with a reason that says so, and a limit too small for anything stops the start. */
START_TEST(test_require_mlock)
{
	struct fixture f;
	char *body = NULL;
	int status;

	memlock_fixture(&f, "\"require_mlock\": true");
	if (!memlock_start(&f, "65536")) {
		fixture_stop(&f);
		return;
	}
	ck_assert(t_wait_log(&f.broker, "its memory cannot be locked (require_mlock",
			     T_DEADLINE_MS, NULL, 0));
	ck_assert_int_eq(broker_get(&f, "/metrics", &body), 200);
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_secret_memory_unlocked_bytes 0\n"));
	ck_assert_ptr_nonnull(strstr(body, "latchkey_broker_secrets{state=\"failed\"}"));
	free(body);
	ck_assert_int_eq(log_count(&f, "memory lock limit reached"), 0);
	t_stop(&f.broker, SIGTERM, T_DEADLINE_MS);

	/* 8 KiB: not even one region: a start-up error. */
	ck_assert(memlock_start(&f, "8192"));
	status = t_stop(&f.broker, 0, T_DEADLINE_MS);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 2);
	f.broker.pid = 0;
	body = t_read_file(f.log);
	ck_assert_ptr_nonnull(strstr(body, "require_mlock: memory cannot be locked"));
	free(body);
	fixture_stop(&f);
}
END_TEST

/* The environment process pid was started with, as the kernel shows it
 * (/proc/PID/environ: NAME=value entries, each ended by a NUL byte); malloc'd, its length
 * in *ret_len; NULL when it cannot be read. */
static char *
proc_environ(pid_t pid, size_t *ret_len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/environ", (long)pid);
	return t_read_bytes(path, ret_len);
}

static bool
block_holds(const char *block, size_t len, const char *text)
{
	return memmem(block, len, text, strlen(text)) != NULL;
}

struct version_wait {
	struct fixture *f;
	const char *name;
	json_int_t above;
};

static bool
version_above_cond(void *arg)
{
	struct version_wait *vw = arg;
	json_t *j = get_secret(vw->f, vw->name, NULL);
	bool ok = j != NULL && version_of(j) > vw->above;

	json_decref(j);
	return ok;
}

/* A token given in VAULT_TOKEN does not stay in the broker's environment, where root (and
 * the broker's own uid, were it dumpable) reads it in /proc/PID/environ for as long as the
 * broker runs: its bytes are gone from the block, not only unset. The broker still holds
 * it: it renews it, reads a changed KV secret and a new lease with it. */
START_TEST(test_token_not_left_in_environ)
{
	struct fixture f;
	struct version_wait vw;
	char text[4096], token[256], token_env[300], *body = NULL, *block, *log;
	const char *argv[] = { t_latchkey_bin(), "broker", "--config", f.cfg,
			       "--log-level", "debug", NULL };
	const char *env[] = { token_env, "LK_ENV_PROBE=kept-6d0e", NULL };
	size_t len;
	json_t *j;

	fixture_dev(&f);
	/* A token of its own with a short TTL, so that the broker renews it within seconds. */
	ck_assert_int_eq(dev_call(&f, "POST", "/v1/auth/token/create", "{\"ttl\":\"4s\"}", &body),
			 200);
	j = json_loads(body, 0, NULL);
	free(body);
	body = NULL;
	ck_assert_ptr_nonnull(json_string_value(json_object_get(json_object_get(j, "auth"),
								"client_token")));
	snprintf(token, sizeof(token), "%s",
		 json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
	json_decref(j);
	ck_assert_uint_gt(strlen(token), 16);
	snprintf(token_env, sizeof(token_env), "VAULT_TOKEN=%s", token);
	/* No token_file: the token is the environment's. */
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0666\"},"
		 " \"grace\": \"1s\", \"retry\": {\"initial\": \"200ms\", \"max\": \"1s\"},"
		 " \"seccomp\": true,"
		 " \"secrets\": [%s]}",
		 f.dev.addr, f.sock,
		 "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true},"
		 "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"}");
	ck_assert_int_eq(t_write_file(f.cfg, text, 0600), 0);
	ck_assert_int_eq(t_spawn(&f.broker, argv, env, f.log), 0);
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"serving\"", T_DEADLINE_MS, NULL, 0));
	wait_ready(&f);

	block = proc_environ(f.broker.pid, &len);
	ck_assert_ptr_nonnull(block);
	/* The scan sees the block: the other variables are in it, PATH too. */
	ck_assert(block_holds(block, len, "LK_ENV_PROBE=kept-6d0e"));
	ck_assert(block_holds(block, len, "PATH="));
	ck_assert_msg(!block_holds(block, len, token), "the token is in /proc/PID/environ");
	/* Nor its second half, were it cut. */
	ck_assert(!block_holds(block, len, token + strlen(token) / 2));
	free(block);
	block = NULL;

	/* The token is the broker's still: renewed, ... */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"token renewed\"", T_DEADLINE_MS, NULL, 0));
	/* ... a changed KV secret read with it, ... */
	j = get_secret(&f, "api", NULL);
	ck_assert_ptr_nonnull(j);
	vw.f = &f;
	vw.name = "api";
	vw.above = version_of(j);
	json_decref(j);
	ck_assert_int_lt(dev_call(&f, "POST", "/v1/secret/data/app/api",
				  "{\"data\":{\"user\":\"" KV_USER "\",\"password\":\"changed-5c1e\"}}",
				  NULL), 300);
	ck_assert_msg(t_wait_until(version_above_cond, &vw, T_DEADLINE_MS),
		      "the changed KV secret was not read");
	/* ... and a new lease once the first one ran out (max_ttl 6s). */
	j = get_secret(&f, "db", NULL);
	ck_assert_ptr_nonnull(j);
	vw.name = "db";
	vw.above = version_of(j);
	json_decref(j);
	ck_assert_msg(t_wait_until(version_above_cond, &vw, T_DEADLINE_MS),
		      "the dynamic secret was not read again");
	ck_assert(t_alive(&f.broker));
	log = t_read_file(f.log);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, token) == NULL, "the token is in the log");
	free(log);
	fixture_stop(&f);
}
END_TEST

/* Replaces the fixture config's listen object's closing with extra listen keys. */
static void
config_listen_add(struct fixture *f, const char *keys)
{
	char out[4096], *text = t_read_file(f->cfg), *at;
	size_t n;

	ck_assert_ptr_nonnull(text);
	at = strstr(text, "\"mode\": \"0666\"}");
	ck_assert_ptr_nonnull(at);
	n = (size_t)(at - text) + strlen("\"mode\": \"0666\"");
	snprintf(out, sizeof(out), "%.*s, %s%s", (int)n, text, keys, text + n);
	free(text);
	ck_assert_int_eq(t_write_file(f->cfg, out, 0600), 0);
}

/* CPU masks this large hold every CPU Linux supports (a cpu_set_t holds 1,024). */
#define T_NCPUS 8192

/* This process's CPU mask (T_NCPUS; CPU_FREE it), and how many CPUs are in it. */
static cpu_set_t *
my_cpus(int *count)
{
	cpu_set_t *set = CPU_ALLOC(T_NCPUS);

	ck_assert_ptr_nonnull(set);
	ck_assert_int_eq(sched_getaffinity(0, CPU_ALLOC_SIZE(T_NCPUS), set), 0);
	*count = CPU_COUNT_S(CPU_ALLOC_SIZE(T_NCPUS), set);
	return set;
}

/* Starts the broker (log: NAME.log), on the first CPU of this process's only when one_cpu,
 * and returns its "serving" line in line. */
static void
start_serving(struct fixture *f, const char *name, bool one_cpu, char *line, size_t len)
{
	size_t size = CPU_ALLOC_SIZE(T_NCPUS);
	int count;
	cpu_set_t *all = my_cpus(&count), *one = CPU_ALLOC(T_NCPUS);

	ck_assert_ptr_nonnull(one);
	if (one_cpu) {
		CPU_ZERO_S(size, one);
		for (int c = 0; c < T_NCPUS; c++) {
			if (CPU_ISSET_S(c, size, all)) {
				CPU_SET_S(c, size, one);
				break;
			}
		}
		ck_assert_int_eq(sched_setaffinity(0, size, one), 0);
	}
	snprintf(f->log, sizeof(f->log), "%s/%s.log", f->dir, name);
	/* The child inherits the mask at fork; this process gets its own back at once. */
	{
		const char *argv[] = { t_latchkey_bin(), "broker", "--config", f->cfg, NULL };
		int rc = t_spawn(&f->broker, argv, NULL, f->log);

		if (one_cpu)
			ck_assert_int_eq(sched_setaffinity(0, size, all), 0);
		ck_assert_int_eq(rc, 0);
	}
	CPU_FREE(all);
	CPU_FREE(one);
	ck_assert_msg(t_wait_log(&f->broker, "\"msg\":\"serving\"", T_DEADLINE_MS, line, len),
		      "the broker did not start serving");
}

/* True if text holds word between spaces or line ends. */
static bool
has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = text; p != NULL && (p = strstr(p, word)) != NULL; p += n) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
	}
	return false;
}

/* guest_halt_poll_ns as the kernel writes it ("%u\n"): a number above 0, 0, or -1 when
 * the text is not one. */
static long long
halt_poll_value(const char *ns)
{
	size_t digits = strspn(ns, "0123456789");

	if (digits == 0 || digits > 19 || (ns[digits] != '\0' && strcmp(ns + digits, "\n") != 0))
		return -1;
	return strtoll(ns, NULL, 10);
}

/* What listen.poll_us "auto" should choose here, worked out apart from the broker's probe:
 * the hypervisor flag as /proc/cpuinfo lists it (the probe asks the CPU), the kernel's
 * command line and the cpuidle files. */
static unsigned
poll_us_expected(void)
{
	char *cpuinfo = t_read_file("/proc/cpuinfo"), *cmdline = t_read_file("/proc/cmdline");
	char *type = t_read_file("/sys/hypervisor/type");
	char *driver = t_read_file("/sys/devices/system/cpu/cpuidle/current_driver");
	char *ns = t_read_file("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
	bool vm = (cpuinfo != NULL && has_word(cpuinfo, "hypervisor")) ||
		  (type != NULL && type[strspn(type, " \t\n")] != '\0');
	bool idle_poll = cmdline != NULL && has_word(cmdline, "idle=poll");
	/* haltpoll whose setting cannot be read counts as polling: the kernel's default does. */
	bool halt_polls = driver != NULL && strncmp(driver, "haltpoll", 8) == 0 &&
			  strchr(" \t\n", driver[8]) != NULL &&
			  (ns == NULL || halt_poll_value(ns) != 0);
	unsigned want = vm && !idle_poll && !halt_polls ? 20 : 0;

	free(cpuinfo);
	free(cmdline);
	free(type);
	free(driver);
	free(ns);
	return want;
}

/* listen.threads and listen.poll_us left out: the broker decides at start and says what it
 * decided in its "serving" line; given, a number is used as it is. */
START_TEST(test_auto_settings_decided)
{
	struct fixture f;
	char line[1024], want[64], *metrics = NULL;
	int ncpu;

	CPU_FREE(my_cpus(&ncpu));
	fixture_dev(&f);
	fixture_config(&f, default_secrets, NULL, NULL);

	/* Unpinned: two threads, or one on a machine with one CPU. */
	start_serving(&f, "auto", false, line, sizeof(line));
	snprintf(want, sizeof(want), "\"threads\":%d,", ncpu >= 2 ? 2 : 1);
	ck_assert_msg(strstr(line, want) != NULL, "want %s: %s", want, line);
	snprintf(want, sizeof(want), "\"poll_us\":%u,", poll_us_expected());
	ck_assert_msg(strstr(line, want) != NULL, "want %s: %s", want, line);
	if (strcmp(want, "\"poll_us\":20,") == 0)
		ck_assert_msg(strstr(line, "\"poll_us_because\":\"a virtual machine whose idle CPUs "
				     "halt without polling") != NULL, "%s", line);
	else
		ck_assert_msg(strstr(line, "\"poll_us_because\":\"listen.poll_us\"") == NULL &&
			      strstr(line, "halt without polling") == NULL, "%s", line);
	t_stop(&f.broker, SIGTERM, 5000);

	/* On one CPU: one thread. */
	start_serving(&f, "one-cpu", true, line, sizeof(line));
	ck_assert_msg(strstr(line, "\"threads\":1,") != NULL, "%s", line);
	t_stop(&f.broker, SIGTERM, 5000);

	/* Given as numbers: those numbers, whatever the machine. */
	config_listen_add(&f, "\"threads\": 2, \"poll_us\": 0");
	start_serving(&f, "given", true, line, sizeof(line));
	ck_assert_msg(strstr(line, "\"threads\":2,\"poll_us\":0,\"poll_us_because\":\"listen.poll_us\"")
		      != NULL, "%s", line);
	wait_ready(&f);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(t_http("GET", "http://l/v1/secrets/api", f.sock, NULL, NULL, NULL), 200);
	ck_assert_int_eq(t_http("GET", "http://l/metrics", f.sock, NULL, NULL, &metrics), 200);
	ck_assert_ptr_nonnull(strstr(metrics, "\nlatchkey_broker_poll_seconds_total 0\n"));
	ck_assert_ptr_nonnull(strstr(metrics, "\nlatchkey_broker_poll_hits_total 0\n"));
	free(metrics);
	fixture_stop(&f);
}
END_TEST

/* One case per test, so that CK_RUN_CASE=name runs one. */
#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 60); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
broker_suite(void)
{
	Suite *s = suite_create("broker-integration");

	ADD(s, test_first_load);
	ADD(s, test_auto_settings_decided);
	ADD(s, test_renewal_rotation_revocation);
	ADD(s, test_revoke_on_shutdown);
	ADD(s, test_backend_down);
	ADD(s, test_blocking_read);
	ADD(s, test_forbidden_peer);
	ADD(s, test_socket_mode_owner);
	ADD(s, test_bad_config);
	ADD(s, test_keepalive);
	ADD(s, test_no_values_in_logs_or_metrics);
	ADD(s, test_files_and_signal);
	ADD(s, test_approle_token_renewal_and_relogin);
	ADD(s, test_kv_versions_and_clients);
	ADD(s, test_kubernetes_jwt_reread);
	ADD(s, test_rotation_with_learned_max_ttl);
	ADD(s, test_expiry_counts_from_request);
	ADD(s, test_large_kv_secret);
	ADD(s, test_token_zero_ttl);
	ADD(s, test_token_revoked_behind_its_back);
	ADD(s, test_not_modified_and_unknown_names);
	ADD(s, test_blocking_read_woken_at_expiry);
	ADD(s, test_audit_summarised);
	ADD(s, test_keys_limit);
	ADD(s, test_metadata_for_peers);
	ADD(s, test_pidfile_checks);
	ADD(s, test_sigterm_backend_down);
	ADD(s, test_kill9_then_restart);
	ADD(s, test_memlock_limit_reported);
	ADD(s, test_require_mlock);
	ADD(s, test_token_not_left_in_environ);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(broker_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
