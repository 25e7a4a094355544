/* check_broker_faults.c — the broker against a failing backend: latency, errors, 429 with
 * Retry-After, dropped connections, answers cut in the middle of the body, a sealed
 * backend, a token revoked behind its back, leases that cannot be renewed and a max TTL
 * reached; then a soak that mixes them with short TTLs (LATCHKEY_SOAK_SECONDS, 45 s unless
 * set).
 *
 * An observer reads the required dynamic secret all along and holds the broker to its
 * promises: no credential served once expired (counted from when the request was sent),
 * none served whose lease the backend has revoked, and readiness true whenever the required
 * secret is served with more than a second of validity left. Figures go to the test log as
 * "FIGURE:" lines (docs/reliability.md). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "brokerutil.h"
#include "common/clock.h"

#define DB_SECRET "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true}," \
		  "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"}"

/* ---- the observer ---- */

struct observer {
	struct bf *f;
	const char *secret;          /* the required dynamic secret it reads */
	pthread_t th;
	atomic_bool stop;
	/* A token revoked on purpose: until then (real ms) a revoked lease may still be
	 * served, for at most token_check + its jitter. */
	_Atomic int64_t revoked_grace_until_ms;
	pthread_mutex_t lock;
	long reads, served, expired_served, revoked_served, not_ready_while_valid;
	long ready_checks;
	char violation[512];
};

static void
violation(struct observer *o, const char *what)
{
	pthread_mutex_lock(&o->lock);
	if (o->violation[0] == '\0')
		snprintf(o->violation, sizeof(o->violation), "%s", what);
	pthread_mutex_unlock(&o->lock);
}

/* The served entry of /v1/ready (admin view): its state and lease id. */
static bool
ready_entry(struct observer *o, long *ret_status, char *state, size_t slen, char *lease,
	    size_t llen)
{
	char *body = NULL;
	json_t *j, *s;
	size_t i;
	bool found = false;

	*ret_status = bf_get(o->f, "/v1/ready", &body);
	j = body != NULL ? json_loads(body, 0, NULL) : NULL;
	free(body);
	json_array_foreach(json_object_get(j, "secrets"), i, s) {
		const char *n = json_string_value(json_object_get(s, "name"));

		if (n == NULL || strcmp(n, o->secret) != 0)
			continue;
		snprintf(state, slen, "%s", json_string_value(json_object_get(s, "state")) ?: "");
		snprintf(lease, llen, "%s", json_string_value(json_object_get(s, "lease_id")) ?: "");
		found = true;
	}
	json_decref(j);
	return found;
}

static void *
observer_run(void *arg)
{
	struct observer *o = arg;
	char path[160];

	snprintf(path, sizeof(path), "/v1/secrets/%s", o->secret);
	for (long n = 0; !atomic_load(&o->stop); n++) {
		int64_t sent = lk_now_real_ms(), exp_ms = 0;
		char *body = NULL, state[32], lease[512], state2[32], lease2[512], dev[32];
		long st = bf_get(o->f, path, &body), rst;
		bool valid = false;

		pthread_mutex_lock(&o->lock);
		o->reads++;
		pthread_mutex_unlock(&o->lock);
		if (st == 200) {
			json_t *j = json_loads(body, 0, NULL);
			const char *exp = json_string_value(json_object_get(json_object_get(j, "lease"),
									    "expires_at"));

			if (exp == NULL || lk_rfc3339_parse(exp, &exp_ms) < 0 || exp_ms <= sent)
				violation(o, "an expired credential was served");
			valid = exp_ms > lk_now_real_ms() + 1000;
			json_decref(j);
			pthread_mutex_lock(&o->lock);
			o->served++;
			if (exp_ms <= sent)
				o->expired_served++;
			pthread_mutex_unlock(&o->lock);
		}
		free(body);
		/* Ready whenever the required secret is served, with a second to spare. */
		if (ready_entry(o, &rst, state, sizeof(state), lease, sizeof(lease))) {
			pthread_mutex_lock(&o->lock);
			o->ready_checks++;
			if (valid && rst == 503 && exp_ms > lk_now_real_ms() + 1000 &&
			    strcmp(state, "valid") == 0)
				o->not_ready_while_valid++;
			pthread_mutex_unlock(&o->lock);
		}
		/* Served while the backend calls its lease revoked: the lease id the broker
		 * serves, the backend's word on it, and the broker still serving it after. */
		if (n % 4 == 0 && lease[0] != '\0' &&
		    (strcmp(state, "valid") == 0 || strcmp(state, "stale") == 0) &&
		    bf_lease_state(o->f, lease, dev, sizeof(dev)) == 0 && strcmp(dev, "revoked") == 0 &&
		    ready_entry(o, &rst, state2, sizeof(state2), lease2, sizeof(lease2)) &&
		    strcmp(lease, lease2) == 0 &&
		    (strcmp(state2, "valid") == 0 || strcmp(state2, "stale") == 0) &&
		    lk_now_real_ms() > atomic_load(&o->revoked_grace_until_ms)) {
			pthread_mutex_lock(&o->lock);
			o->revoked_served++;
			pthread_mutex_unlock(&o->lock);
			violation(o, "a credential whose lease the backend revoked was served");
		}
		{
			struct timespec ts = { 0, 20 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void
observer_start(struct observer *o, struct bf *f, const char *secret)
{
	memset(o, 0, sizeof(*o));
	o->f = f;
	o->secret = secret;
	atomic_init(&o->stop, false);
	atomic_init(&o->revoked_grace_until_ms, 0);
	pthread_mutex_init(&o->lock, NULL);
	ck_assert_int_eq(pthread_create(&o->th, NULL, observer_run, o), 0);
}

/* Stops it and fails the test on any broken promise. */
static void
observer_finish(struct observer *o, const char *scenario)
{
	atomic_store(&o->stop, true);
	pthread_join(o->th, NULL);
	printf("FIGURE: %s: %ld reads, %ld served, %ld expired served, %ld revoked served, "
	       "%ld not ready while valid\n", scenario, o->reads, o->served, o->expired_served,
	       o->revoked_served, o->not_ready_while_valid);
	fflush(stdout);
	ck_assert_msg(o->violation[0] == '\0', "%s: %s", scenario, o->violation);
	ck_assert_msg(o->not_ready_while_valid == 0, "%s: not ready while the secret was valid "
		      "(%ld times)", scenario, o->not_ready_while_valid);
	ck_assert_msg(o->reads > 0, "%s: the observer never read", scenario);
	pthread_mutex_destroy(&o->lock);
}

/* Lets time pass while the observer works: the scenario's length, not a wait for a
 * condition (the condition is that nothing goes wrong meanwhile). */
static void
run_for(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
faults(struct bf *f, const char *json)
{
	ck_assert_int_eq(bf_dev_call(f, "POST", "/_latchkey/faults", json, NULL), 200);
}

static void
no_faults(struct bf *f)
{
	ck_assert_int_eq(bf_dev_call(f, "DELETE", "/_latchkey/faults", NULL, NULL), 200);
}

static void
start_ready(struct bf *f, const char *ttl, const char *max, const char *extra)
{
	bf_dev(f, ttl, max);
	bf_config(f, DB_SECRET, extra);
	ck_assert_msg(bf_start(f), "the broker did not start");
	ck_assert_msg(bf_wait_ready(f, T_DEADLINE_MS), "the broker never became ready");
}

/* Clean stop: exit 0, no lease left. */
static void
finish(struct bf *f)
{
	int status;

	no_faults(f);
	status = bf_stop_broker(f, SIGTERM, T_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker status %#x", status);
	ck_assert_int_eq(bf_leases(f, "active"), 0);
	bf_stop(f);
}

static long
version_of(struct bf *f)
{
	char *body = NULL;
	long v = -1;
	json_t *j;

	if (bf_get(f, "/v1/secrets/db", &body) == 200 && (j = json_loads(body, 0, NULL)) != NULL) {
		v = (long)json_integer_value(json_object_get(j, "version"));
		json_decref(j);
	}
	free(body);
	return v;
}

/* ---- scenarios ---- */

/* Every answer 2 s late (the client's timeout is 4 s), while a KV secret is re-read every
 * second: one call at a time, but the lease's renewal goes first and nothing expires. */
START_TEST(test_latency)
{
	struct observer o;
	char *body = NULL;
	struct bf f;

	start_ready(&f, "15s", "60s", NULL);
	observer_start(&o, &f, "db");
	faults(&f, "{\"latency_ms\":2000}");
	/* Until the lease was renewed through the latency (at about 10 s). */
	for (int64_t t0 = lk_now_mono_ms();; run_for(200)) {
		ck_assert_msg(lk_now_mono_ms() - t0 < 2 * T_DEADLINE_MS, "never renewed");
		ck_assert_int_eq(bf_get(&f, "/metrics", &body), 200);
		if (strstr(body, "latchkey_broker_renewals_total{secret=\"db\"}") != NULL)
			break;
		free(body);
	}
	free(body);
	observer_finish(&o, "latency 2s");
	ck_assert_int_eq(o.served, o.reads);
	finish(&f);
}
END_TEST

/* Half the answers are 500s. */
START_TEST(test_half_errors)
{
	struct observer o;
	struct bf f;

	start_ready(&f, "3s", "6s", NULL);
	observer_start(&o, &f, "db");
	faults(&f, "{\"error_rate\":0.5,\"error_status\":500}");
	run_for(7000);
	observer_finish(&o, "50% 500s");
	finish(&f);
}
END_TEST

/* 429 with Retry-After 2 from the start: every retry of the first read waits at least
 * that long (nothing is served yet, so no expiry pulls a retry forward). */
START_TEST(test_rate_limited)
{
	char *log, *p;
	struct bf f;
	int waits = 0, short_waits = 0;

	bf_dev(&f, "3s", "6s");
	bf_config(&f, DB_SECRET, NULL);
	faults(&f, "{\"error_rate\":1.0,\"error_status\":429,\"retry_after\":2,"
	       "\"paths\":\"database/\"}");
	ck_assert(bf_start(&f));
	while (bf_log_count(&f, "rate limit quota exceeded") < 4)
		run_for(50);
	no_faults(&f);
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	log = t_read_file(f.log);
	for (p = log; p != NULL && (p = strstr(p, "rate limit quota exceeded")) != NULL; p++) {
		char *r = strstr(p, "\"retry_in_ms\":"), *nl = strchr(p, '\n');

		if (r == NULL || (nl != NULL && r > nl))
			continue;
		waits++;
		if (atol(r + strlen("\"retry_in_ms\":")) < 2000)
			short_waits++;
	}
	free(log);
	printf("FIGURE: 429 Retry-After 2: %d retries, %d sooner than asked\n", waits, short_waits);
	ck_assert_int_ge(waits, 4);
	ck_assert_int_eq(short_waits, 0);
	finish(&f);
}
END_TEST

/* A fifth of the connections closed without an answer. */
START_TEST(test_dropped_connections)
{
	struct observer o;
	struct bf f;

	start_ready(&f, "3s", "6s", NULL);
	observer_start(&o, &f, "db");
	faults(&f, "{\"drop_rate\":0.2}");
	run_for(10000);
	observer_finish(&o, "20% dropped connections");
	ck_assert_int_ge(version_of(&f), 2);
	finish(&f);
}
END_TEST

/* Sealed: every call fails with 503; the credential expires and is not served; unsealed,
 * a new one is served within seconds (the recovery time is a figure). */
START_TEST(test_sealed_and_recovery)
{
	struct observer o;
	struct bf f;
	int64_t t0, recovered;

	start_ready(&f, "3s", "6s", "\"retry\": {\"initial\": \"500ms\", \"max\": \"30s\"}");
	observer_start(&o, &f, "db");
	ck_assert_int_eq(bf_dev_call(&f, "POST", "/_latchkey/seal", NULL, NULL), 200);
	/* Long enough for the lease to run out and the retries to back off. */
	run_for(9000);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/db", NULL), 503);
	ck_assert_int_eq(bf_get(&f, "/v1/ready", NULL), 503);
	ck_assert_int_eq(bf_dev_call(&f, "POST", "/_latchkey/unseal", NULL, NULL), 200);
	t0 = lk_now_mono_ms();
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	recovered = lk_now_mono_ms() - t0;
	observer_finish(&o, "sealed");
	printf("FIGURE: recovery after unseal (retry.max 30s): %lld ms\n", (long long)recovered);
	/* A required secret with nothing to serve retries on a 2 s cap. */
	ck_assert_msg(recovered < 6000, "ready %lld ms after the backend came back",
		      (long long)recovered);
	finish(&f);
}
END_TEST

/* The token revoked behind the broker's back: found within token_check, the credentials
 * withdrawn; a new token, new credentials. */
START_TEST(test_token_revoked)
{
	char *body = NULL, token[256], next[256], req[512];
	struct observer o;
	struct bf f;
	int64_t t0, found;

	bf_dev(&f, "1h", "2h");
	bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app",
		    "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\\n"
		    "path \\\"database/creds/app\\\" { capabilities = [\\\"read\\\"] }\"}", NULL);
	for (int k = 0; k < 2; k++) {
		json_t *j;

		ck_assert_int_eq(bf_dev_call(&f, "POST", "/v1/auth/token/create",
					     "{\"policies\":[\"app\"],\"ttl\":\"1h\"}", &body), 200);
		j = json_loads(body, 0, NULL);
		free(body);
		snprintf(k == 0 ? token : next, sizeof(token), "%s",
			 json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
		json_decref(j);
	}
	ck_assert_int_eq(t_write_file(f.token_file, token, 0600), 0);
	bf_config(&f, DB_SECRET, "\"token_check\": \"1s\"");
	ck_assert(bf_start(&f));
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	observer_start(&o, &f, "db");
	/* Found within token_check (1 s, +10%) and a read: until then it may be served. */
	atomic_store(&o.revoked_grace_until_ms, lk_now_real_ms() + 2500);
	snprintf(req, sizeof(req), "{\"token\":\"%s\"}", token);
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/token/revoke", req, NULL), 300);
	t0 = lk_now_mono_ms();
	while (bf_log_count(&f, "\"msg\":\"backend token lost") == 0) {
		ck_assert_msg(lk_now_mono_ms() - t0 < T_DEADLINE_MS, "the revocation was not found");
		run_for(20);
	}
	found = lk_now_mono_ms() - t0;
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/db", NULL), 503);
	ck_assert_int_eq(t_write_file(f.token_file, next, 0600), 0);
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	observer_finish(&o, "token revoked");
	printf("FIGURE: token revocation found after %lld ms (token_check 1s)\n", (long long)found);
	ck_assert_msg(found < 2500, "found after %lld ms", (long long)found);
	finish(&f);
}
END_TEST

/* The max TTL reached: renewals are capped, the credential is replaced before it
 * expires, again and again. */
START_TEST(test_max_ttl)
{
	struct observer o;
	struct bf f;

	start_ready(&f, "2s", "4s", NULL);
	observer_start(&o, &f, "db");
	run_for(10000);
	observer_finish(&o, "max TTL");
	ck_assert_int_ge(version_of(&f), 3);
	ck_assert_int_ge(bf_log_count(&f, "lease renewal capped"), 1);
	finish(&f);
}
END_TEST

/* ---- a backend of our own: leases that cannot be renewed, bodies cut short ---- */

struct raw_backend {
	int fd;
	int port;
	pthread_t th;
	atomic_bool stop;
	atomic_int creds, renews, cut;
	bool cut_every_other;        /* every other credential answer stops mid-body */
};

static void
raw_answer(int c, const char *body, bool cut)
{
	char head[256];
	size_t n = strlen(body);

	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", n);
	(void)!send(c, head, strlen(head), MSG_NOSIGNAL);
	(void)!send(c, body, cut ? n / 3 : n, MSG_NOSIGNAL);
}

static void *
raw_run(void *arg)
{
	struct raw_backend *rb = arg;
	struct pollfd p = { .fd = rb->fd, .events = POLLIN };

	while (!atomic_load(&rb->stop)) {
		char req[4096], body[512];
		ssize_t n;
		int c;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((c = accept(rb->fd, NULL, NULL)) < 0)
			continue;
		n = recv(c, req, sizeof(req) - 1, 0);
		req[n > 0 ? n : 0] = '\0';
		if (strstr(req, "/v1/auth/token/lookup-self") != NULL) {
			raw_answer(c, "{\"data\":{\"ttl\":0,\"expire_time\":null,\"renewable\":false,"
				   "\"policies\":[\"root\"]}}", false);
		} else if (strstr(req, "/v1/database/creds/") != NULL) {
			int k = atomic_fetch_add(&rb->creds, 1);
			bool cut = rb->cut_every_other && k % 2 == 1;

			if (cut)
				atomic_fetch_add(&rb->cut, 1);
			snprintf(body, sizeof(body),
				 "{\"lease_id\":\"database/creds/x/%d\",\"lease_duration\":3,"
				 "\"renewable\":false,\"data\":{\"username\":\"u%d\",\"password\":\"p\"}}",
				 k, k);
			raw_answer(c, body, cut);
		} else if (strstr(req, "/v1/sys/leases/renew") != NULL) {
			atomic_fetch_add(&rb->renews, 1);
			raw_answer(c, "{}", false);
		} else {
			(void)!send(c, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", 46,
				    MSG_NOSIGNAL);
		}
		close(c);
	}
	return NULL;
}

static void
raw_start(struct raw_backend *rb, bool cut)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int one = 1;

	memset(rb, 0, sizeof(*rb));
	rb->cut_every_other = cut;
	rb->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(rb->fd, 0);
	setsockopt(rb->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(rb->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(rb->fd, 16), 0);
	ck_assert_int_eq(getsockname(rb->fd, (struct sockaddr *)&sin, &len), 0);
	rb->port = ntohs(sin.sin_port);
	ck_assert_int_eq(pthread_create(&rb->th, NULL, raw_run, rb), 0);
}

static void
raw_stop(struct raw_backend *rb)
{
	atomic_store(&rb->stop, true);
	pthread_join(rb->th, NULL);
	close(rb->fd);
}

static void
raw_broker(struct bf *f, struct raw_backend *rb)
{
	char text[2048];

	memset(f, 0, sizeof(*f));
	f->dir = t_tmpdir();
	snprintf(f->sock, sizeof(f->sock), "%s/broker.sock", f->dir);
	snprintf(f->cfg, sizeof(f->cfg), "%s/broker.json", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/broker.log", f->dir);
	snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
	ck_assert_int_eq(t_write_file(f->token_file, "raw-backend-token", 0600), 0);
	snprintf(text, sizeof(text),
		 "{\"vault\": {\"address\": \"http://127.0.0.1:%d\", \"auth\": {\"method\": \"token\","
		 " \"token_file\": \"%s\"}},"
		 " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\", \"admin_uids\": [0]},"
		 " \"seccomp\": true, \"grace\": \"500ms\", \"revoke_on_shutdown\": false,"
		 " \"retry\": {\"initial\": \"100ms\", \"max\": \"500ms\"},"
		 " \"secrets\": [{\"name\": \"db\", \"path\": \"database/creds/x\", \"required\": true}]}",
		 rb->port, f->token_file, f->sock);
	ck_assert_int_eq(t_write_file(f->cfg, text, 0600), 0);
	ck_assert(bf_start(f));
	ck_assert(bf_wait_ready(f, T_DEADLINE_MS));
}

static void
raw_finish(struct bf *f, struct raw_backend *rb)
{
	bf_stop_broker(f, SIGTERM, T_DEADLINE_MS);
	raw_stop(rb);
	t_rmrf(f->dir);
	free(f->dir);
}

/* Leases that cannot be renewed: replaced before they expire, never renewed. */
START_TEST(test_not_renewable)
{
	struct raw_backend rb;
	struct observer o;
	struct bf f;

	raw_start(&rb, false);
	raw_broker(&f, &rb);
	observer_start(&o, &f, "db");
	run_for(6000);
	observer_finish(&o, "lease not renewable");
	ck_assert_int_eq(atomic_load(&rb.renews), 0);
	ck_assert_int_ge(atomic_load(&rb.creds), 3);
	raw_finish(&f, &rb);
}
END_TEST

/* Every other answer stops in the middle of its body: a transport error, retried; what is
 * served is always a whole credential. */
START_TEST(test_cut_mid_body)
{
	struct raw_backend rb;
	struct observer o;
	struct bf f;

	raw_start(&rb, true);
	raw_broker(&f, &rb);
	observer_start(&o, &f, "db");
	run_for(6000);
	observer_finish(&o, "answers cut mid-body");
	ck_assert_int_ge(atomic_load(&rb.cut), 2);
	ck_assert_int_ge(bf_log_count(&f, "\"msg\":\"secret read failed\""), 1);
	raw_finish(&f, &rb);
}
END_TEST

/* ---- the soak ---- */

static int
soak_seconds(void)
{
	const char *s = getenv("LATCHKEY_SOAK_SECONDS");

	return s != NULL && atoi(s) > 0 ? atoi(s) : 45;
}

/* Short TTLs and faults that come and go, mixed at random (the seed is printed). */
START_TEST(test_soak)
{
	/* A healthy backend half the time, one fault or another the rest. */
	static const char *const mix[] = {
		NULL, NULL, NULL, NULL, NULL, "{\"latency_ms\":300}",
		"{\"error_rate\":0.5,\"error_status\":500}",
		"{\"error_rate\":0.5,\"error_status\":429,\"retry_after\":1}",
		"{\"drop_rate\":0.3}", "{\"sealed\":true}",
	};
	unsigned seed = (unsigned)lk_now_real_ms();
	int64_t end, t0 = lk_now_mono_ms();
	struct observer o;
	struct bf f;
	long rotations, faults_set = 0;
	int status;

	printf("soak: %d s, seed %u\n", soak_seconds(), seed);
	srand(seed);
	start_ready(&f, "2s", "5s", NULL);
	observer_start(&o, &f, "db");
	end = t0 + soak_seconds() * 1000LL;
	while (lk_now_mono_ms() < end) {
		const char *fault = mix[rand() % (int)(sizeof(mix) / sizeof(mix[0]))];

		if (fault == NULL)
			no_faults(&f);
		else
			faults(&f, fault);
		faults_set++;
		run_for(500 + rand() % 2500);
		ck_assert_msg(t_alive(&f.broker), "the broker died");
	}
	no_faults(&f);
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	observer_finish(&o, "soak");
	rotations = bf_log_count(&f, "\"msg\":\"secret rotated\"");
	printf("FIGURE: soak %d s: %ld fault changes, %ld rotations, %ld reads, 0 crashes\n",
	       soak_seconds(), faults_set, rotations, o.reads);
	status = bf_stop_broker(&f, SIGTERM, T_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker status %#x", status);
	ck_assert_int_eq(bf_leases(&f, "active"), 0);
	bf_stop(&f);
}
END_TEST

#define ADD(s, fn, secs) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, (secs)); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
faults_suite(void)
{
	Suite *s = suite_create("broker-faults");

	ADD(s, test_latency, 90);
	ADD(s, test_half_errors, 90);
	ADD(s, test_rate_limited, 90);
	ADD(s, test_dropped_connections, 90);
	ADD(s, test_sealed_and_recovery, 90);
	ADD(s, test_token_revoked, 90);
	ADD(s, test_max_ttl, 90);
	ADD(s, test_not_renewable, 90);
	ADD(s, test_cut_mid_body, 90);
	ADD(s, test_soak, soak_seconds() + 120);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(faults_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
