/* check_sync.c — `latchkey sync` end to end: the real binary against the test API server
 * (tests/fakes) and `latchkey dev`: ExternalSecrets become Secrets with the right data and
 * status, backend changes propagate, a steady state writes nothing (counted at the
 * server), the creation and deletion policies, a foreign edit is put back, a 403 from the
 * backend shows in the status and recovers, conflict storms, throttling and dropped
 * watches converge, leader election hands over when the leader is killed, invalid
 * resources name their field, shards keep apart, Kubernetes auth through the TokenRequest
 * API, and no value ever reaches the logs, Events or status. */
#include <check.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "fakekube.h"
#include "syncfx.h"
#include "manifest/manifest.h"
#include "testutil.h"

#define NS "app"
#define CONTROLLER_NS "latchkey-system"
/* Values that must never appear outside the Secret's data. */
#define VALUE1 "sync-canary-value-5d1e8a"
#define VALUE2 "sync-canary-value-b7c042"

/* ---- the fixture (tests/lib/syncfx.h) and its shorthands for namespace NS ---- */

#define fx t_sfx

static json_t *
kube(struct fx *f, const char *method, const char *path, const char *body, long want)
{
	return t_sfx_kube(f, method, path, body, want);
}

static json_t *
kube_patch(struct fx *f, const char *path, const char *body, long want)
{
	return t_sfx_patch(f, path, body, want);
}

static long
dev(struct fx *f, const char *method, const char *path, const char *body)
{
	return t_sfx_dev(f, method, path, body);
}

static void
kv_put(struct fx *f, const char *path, const char *data)
{
	t_sfx_kv_put(f, path, data);
}

/* The API server, the backend, the namespaces, a token Secret and a SecretStore in NS. */
static void
fx_start(struct fx *f)
{
	char body[512];
	char *b64 = NULL;

	t_sfx_start(f, NULL, (const char *const[]){ NS, CONTROLLER_NS, NULL });
	ck_assert_int_eq(lk_b64_encode(f->dev.token, strlen(f->dev.token), LK_B64_STD, &b64), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":"
		 "{\"name\":\"vault-token\"},\"data\":{\"token\":\"%s\"}}", b64);
	free(b64);
	json_decref(kube(f, "POST", "/api/v1/namespaces/" NS "/secrets", body, 201));
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\","
		 "\"metadata\":{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\","
		 "\"path\":\"secret\",\"version\":\"v2\",\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\","
		 "\"key\":\"token\"}}}}}}", f->dev.addr);
	json_decref(kube(f, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/secretstores", body, 201));
}

static bool
api_answers(void *arg)
{
	json_t *j = t_sfx_get(arg, "/version");

	json_decref(j);
	return j != NULL;
}

/* With small sealing keys: the controller makes one at start, which these tests do not
 * need to wait for. */
static void
ctl_start(struct fx *f, int i, const char *const extra[])
{
	const char *args[32] = { "--key-size", "2048" };
	size_t n = 2;

	for (size_t j = 0; extra != NULL && extra[j] != NULL && n < 31; j++)
		args[n++] = extra[j];
	args[n] = NULL;
	t_sfx_ctl_start(f, i, CONTROLLER_NS, args);
}

static void
fx_stop(struct fx *f)
{
	t_sfx_stop(f);
}

static void
es_create(struct fx *f, const char *name, const char *spec)
{
	char body[4096];

	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\","
		 "\"metadata\":{\"name\":\"%s\"},\"spec\":%s}", name, spec);
	json_decref(kube(f, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets", body, 201));
}

static json_t *
secret_get(struct fx *f, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/api/v1/namespaces/" NS "/secrets/%s", name);
	return t_sfx_get(f, path);
}

/* The decoded value of data[key] of Secret name, or NULL. */
static char *
secret_value(struct fx *f, const char *name, const char *key)
{
	return t_sfx_secret_value(f, NS, name, key);
}

static void
wait_value(struct fx *f, const char *secret, const char *key, const char *value)
{
	t_sfx_wait_value(f, NS, secret, key, value);
}

static void
wait_ready(struct fx *f, const char *name, const char *status, const char *needle)
{
	char path[256];

	snprintf(path, sizeof(path), "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets/%s", name);
	t_sfx_wait_condition(f, path, "Ready", status, needle);
}

static const char plain_spec[] =
	"{\"refreshInterval\":\"2s\",\"secretStoreRef\":{\"name\":\"vault\"},"
	"\"target\":{\"name\":\"db-creds\"},\"data\":["
	"{\"secretKey\":\"password\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}},"
	"{\"secretKey\":\"user\",\"remoteRef\":{\"key\":\"secret/data/app/db\",\"property\":\"user\"}}]}";

/* Counts the refreshes of an ExternalSecret by its status.refreshTime moving on. */
struct refreshes {
	struct fx *f;
	const char *name;
	int want, seen;
	char prev[64];
};

static bool
refreshed(void *arg)
{
	struct refreshes *r = arg;
	char path[256];
	json_t *es = NULL;
	const char *rt;

	snprintf(path, sizeof(path), "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets/%s", r->name);
	if (t_kube_json(&r->f->kube, "GET", path, NULL, NULL, &es) == 200 &&
	    (rt = json_string_value(json_object_get(json_object_get(es, "status"), "refreshTime"))) != NULL &&
	    strcmp(rt, r->prev) != 0) {
		if (r->prev[0] != '\0')
			r->seen++;
		snprintf(r->prev, sizeof(r->prev), "%s", rt);
	}
	json_decref(es);
	return r->seen >= r->want;
}

static bool
group_served(void *arg)
{
	struct fx *f = arg;
	json_t *j = NULL;
	long st = t_kube_json(&f->kube, "GET", "/apis/external-secrets.io/v1", NULL, NULL, &j);

	json_decref(j);
	return st == 200;
}

/* ---- tests ---- */

START_TEST(create_update_and_steady_state)
{
	struct fx f;
	json_t *s, *refs;
	long writes;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "db", plain_spec);
	wait_value(&f, "db-creds", "password", VALUE1);
	wait_value(&f, "db-creds", "user", "alice");
	wait_ready(&f, "db", "True", "secret synced");
	s = secret_get(&f, "db-creds");
	refs = json_object_get(json_object_get(s, "metadata"), "ownerReferences");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(refs, 0), "kind")), "ExternalSecret");
	ck_assert(json_is_true(json_object_get(json_array_get(refs, 0), "controller")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(s, "metadata"),
		"labels"), "latchkey.io/managed")), "true");
	json_decref(s);

	/* The backend changes: the Secret follows within the 2 s interval (a deadline). */
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE2 "\"}");
	wait_value(&f, "db-creds", "password", VALUE2);

	/* Nothing changes: three refreshes later, no Secret was written. */
	ck_assert_int_eq(t_kube_stats_reset(&f.kube), 0);
	{
		struct refreshes r = { .f = &f, .name = "db", .want = 3 };

		ck_assert_msg(t_wait_until(refreshed, &r, T_DEADLINE_MS), "only %d refreshes", r.seen);
	}
	/* In NS: the controller namespace gets its sealing key meanwhile. */
	writes = t_kube_writes_in(&f.kube, "secrets", NS);
	ck_assert_msg(writes == 0, "a steady state wrote %ld Secrets", writes);

	/* Someone edits the Secret: it is put back. */
	json_decref(kube_patch(&f, "/api/v1/namespaces/" NS "/secrets/db-creds",
			       "{\"data\":{\"password\":\"ZWRpdGVk\"}}", 200));
	wait_value(&f, "db-creds", "password", VALUE2);
	/* ... and deleted: made again. */
	json_decref(kube(&f, "DELETE", "/api/v1/namespaces/" NS "/secrets/db-creds", NULL, 200));
	wait_value(&f, "db-creds", "password", VALUE2);
	fx_stop(&f);
}
END_TEST

START_TEST(policies_merge_and_deletion)
{
	struct fx f;
	char spec[2048];

	fx_start(&f);
	kv_put(&f, "app/a", "{\"k\":\"" VALUE1 "\"}");
	kv_put(&f, "app/b", "{\"k\":\"" VALUE1 "\"}");
	kv_put(&f, "app/c", "{\"k\":\"" VALUE1 "\"}");
	/* A Secret made by someone else, with a key of its own. */
	json_decref(kube(&f, "POST", "/api/v1/namespaces/" NS "/secrets",
			 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"shared\"},"
			 "\"data\":{\"foreign\":\"b3duZXI=\"}}", 201));
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	snprintf(spec, sizeof(spec), "{\"refreshInterval\":\"1s\",\"secretStoreRef\":{\"name\":\"vault\"},"
		 "\"target\":{\"name\":\"shared\",\"creationPolicy\":\"Merge\",\"deletionPolicy\":\"Merge\"},"
		 "\"data\":[{\"secretKey\":\"mine\",\"remoteRef\":{\"key\":\"app/a\",\"property\":\"k\"}}]}");
	es_create(&f, "merge", spec);
	snprintf(spec, sizeof(spec), "{\"refreshInterval\":\"1s\",\"secretStoreRef\":{\"name\":\"vault\"},"
		 "\"target\":{\"name\":\"retained\",\"deletionPolicy\":\"Retain\"},"
		 "\"data\":[{\"secretKey\":\"k\",\"remoteRef\":{\"key\":\"app/b\",\"property\":\"k\"}}]}");
	es_create(&f, "retain", spec);
	snprintf(spec, sizeof(spec), "{\"refreshInterval\":\"1s\",\"secretStoreRef\":{\"name\":\"vault\"},"
		 "\"target\":{\"name\":\"deleted\",\"deletionPolicy\":\"Delete\"},"
		 "\"dataFrom\":[{\"extract\":{\"key\":\"app/c\"}}]}");
	es_create(&f, "delete", spec);
	wait_value(&f, "shared", "mine", VALUE1);
	wait_value(&f, "retained", "k", VALUE1);
	wait_value(&f, "deleted", "k", VALUE1);
	{
		char *foreign = secret_value(&f, "shared", "foreign");

		/* Merge left the other key alone. */
		ck_assert_str_eq(foreign, "owner");
		free(foreign);
	}
	/* The backend secrets go: each policy does what it says. */
	ck_assert_int_lt(dev(&f, "DELETE", "/v1/secret/metadata/app/a", NULL), 300);
	ck_assert_int_lt(dev(&f, "DELETE", "/v1/secret/metadata/app/b", NULL), 300);
	ck_assert_int_lt(dev(&f, "DELETE", "/v1/secret/metadata/app/c", NULL), 300);
	wait_value(&f, "shared", "mine", NULL);
	wait_value(&f, "deleted", "k", NULL);
	wait_ready(&f, "retain", "True", "DeletionPolicy=Retain");
	wait_value(&f, "retained", "k", VALUE1);
	{
		char *foreign = secret_value(&f, "shared", "foreign");

		ck_assert_str_eq(foreign, "owner");
		free(foreign);
	}
	fx_stop(&f);
}
END_TEST

START_TEST(backend_forbidden_then_fixed)
{
	struct fx f;
	char body[1024], url[256], *out = NULL, *b64 = NULL, tok[256];
	json_t *j;
	const char *t;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	/* A token whose policy cannot read app/db yet. */
	ck_assert_int_lt(dev(&f, "PUT", "/v1/sys/policy/app", "{\"policy\":\"path \\\"secret/data/other\\\" "
			     "{ capabilities = [\\\"read\\\"] }\"}"), 300);
	snprintf(url, sizeof(url), "%s/v1/auth/token/create", f.dev.addr);
	ck_assert_int_eq(t_http("POST", url, NULL, f.dev.token, "{\"policies\":[\"app\"],\"ttl\":\"1h\"}", &out), 200);
	j = json_loads(out, 0, NULL);
	free(out);
	t = json_string_value(json_object_get(json_object_get(j, "auth"), "client_token"));
	ck_assert_ptr_nonnull(t);
	snprintf(tok, sizeof(tok), "%s", t);
	json_decref(j);
	ck_assert_int_eq(lk_b64_encode(tok, strlen(tok), LK_B64_STD, &b64), 0);
	snprintf(body, sizeof(body), "{\"data\":{\"token\":\"%s\"}}", b64);
	free(b64);
	json_decref(kube_patch(&f, "/api/v1/namespaces/" NS "/secrets/vault-token", body, 200));
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "db", plain_spec);
	wait_ready(&f, "db", "False", "403");
	/* No Secret was made, and the message holds no value. */
	ck_assert_ptr_null(secret_get(&f, "db-creds"));
	/* The policy is fixed: it recovers by itself. */
	ck_assert_int_lt(dev(&f, "PUT", "/v1/sys/policy/app", "{\"policy\":\"path \\\"secret/data/app/*\\\" "
			     "{ capabilities = [\\\"read\\\"] }\"}"), 300);
	wait_value(&f, "db-creds", "password", VALUE1);
	wait_ready(&f, "db", "True", NULL);
	fx_stop(&f);
}
END_TEST

START_TEST(faults_converge)
{
	struct fx f;
	char name[32], spec[1024];

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	/* 409 storms on the Secret writes, 429 on lists, and watches that are cut. */
	ck_assert_int_eq(t_kube_fault(&f.kube, "{\"conflicts\":{\"count\":6,\"resource\":\"secrets\"},"
				      "\"throttle\":{\"count\":4,\"retry_after\":1,\"verb\":\"list\"},"
				      "\"watch_max_events\":3}"), 0);
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "es%d", i);
		snprintf(spec, sizeof(spec), "{\"refreshInterval\":\"1h\",\"secretStoreRef\":{\"name\":\"vault\"},"
			 "\"target\":{\"name\":\"out%d\"},\"data\":[{\"secretKey\":\"p\",\"remoteRef\":"
			 "{\"key\":\"app/db\",\"property\":\"password\"}}]}", i);
		es_create(&f, name, spec);
	}
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "out%d", i);
		wait_value(&f, name, "p", VALUE1);
	}
	/* The API server drops every watch and then restarts: still in step afterwards. */
	ck_assert_int_eq(t_kube_fault(&f.kube, "{\"drop_watches\":\"abort\",\"compact\":true}"), 0);
	ck_assert_int_eq(t_kube_fault(&f.kube, "{\"restart_ms\":1500}"), 0);
	ck_assert(t_wait_log(&f.kube.proc, "\"msg\":\"restarting\"", T_DEADLINE_MS, NULL, 0));
	ck_assert(t_wait_until(api_answers, &f, T_DEADLINE_MS));
	es_create(&f, "late", "{\"refreshInterval\":\"1h\",\"secretStoreRef\":{\"name\":\"vault\"},"
		  "\"target\":{\"name\":\"late\"},\"data\":[{\"secretKey\":\"p\",\"remoteRef\":"
		  "{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	wait_value(&f, "late", "p", VALUE1);
	fx_stop(&f);
}
END_TEST

START_TEST(invalid_resources_name_the_field)
{
	struct fx f;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	/* The schema lets these through; the controller refuses them by name. */
	es_create(&f, "badtpl", "{\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"template\":"
		  "{\"data\":{\"dsn\":\"{{ .missing }}\"}}},\"data\":[{\"secretKey\":\"p\",\"remoteRef\":"
		  "{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	es_create(&f, "nostore", "{\"secretStoreRef\":{\"name\":\"nowhere\"},\"data\":[{\"secretKey\":\"p\","
		  "\"remoteRef\":{\"key\":\"app/db\"}}]}");
	es_create(&f, "noprop", "{\"secretStoreRef\":{\"name\":\"vault\"},\"data\":[{\"secretKey\":\"p\","
		  "\"remoteRef\":{\"key\":\"app/db\",\"property\":\"nope\"}}]}");
	es_create(&f, "good", "{\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"template\":"
		  "{\"type\":\"kubernetes.io/basic-auth\",\"data\":{\"username\":\"{{ .u }}\",\"dsn\":"
		  "\"pg://{{ .u }}:{{ index . \\\"p\\\" }}@db\"}}},\"data\":["
		  "{\"secretKey\":\"p\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}},"
		  "{\"secretKey\":\"u\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"user\"}}]}");
	wait_ready(&f, "badtpl", "False", "spec.target.template.data.dsn");
	wait_ready(&f, "nostore", "False", "SecretStore \"nowhere\" not found");
	wait_ready(&f, "noprop", "False", "spec.data[0]");
	/* The others are unaffected. */
	wait_value(&f, "good", "dsn", "pg://alice:" VALUE1 "@db");
	wait_value(&f, "good", "username", "alice");
	{
		json_t *s = secret_get(&f, "good");

		ck_assert_str_eq(json_string_value(json_object_get(s, "type")), "kubernetes.io/basic-auth");
		/* Replace (the default): only the template's keys. */
		ck_assert_ptr_null(json_object_get(json_object_get(s, "data"), "p"));
		json_decref(s);
	}
	fx_stop(&f);
}
END_TEST

struct leader_wait {
	struct fx *f;
	int port;
};

static bool
metric_leader(void *arg)
{
	struct leader_wait *w = arg;
	char url[128], *body = NULL;
	bool ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", w->port);
	ok = t_http("GET", url, NULL, NULL, NULL, &body) == 200 && body != NULL &&
	     strstr(body, "\nlatchkey_sync_leader 1\n") != NULL;
	free(body);
	return ok;
}

START_TEST(leader_election_hands_over)
{
	const char *const le[] = { "--lease-duration", "6s", "--renew-deadline", "4s",
				   "--retry-period", "1s", NULL };
	struct leader_wait w0, w1;
	struct fx f;
	int leader;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, le);
	w0 = (struct leader_wait){ &f, f.metrics_port[0] };
	ck_assert(t_wait_until(metric_leader, &w0, T_DEADLINE_MS));
	ctl_start(&f, 1, le);
	w1 = (struct leader_wait){ &f, f.metrics_port[1] };
	es_create(&f, "db", plain_spec);
	wait_value(&f, "db-creds", "password", VALUE1);
	/* One leader: the second stands by. */
	ck_assert(!metric_leader(&w1));
	leader = 0;
	/* The leader dies without a word: the standby takes over within 20 s. */
	kill(f.ctl[leader].pid, SIGKILL);
	t_stop(&f.ctl[leader], SIGKILL, 5000);
	f.ctl[leader].pid = 0;
	ck_assert_msg(t_wait_until(metric_leader, &w1, 20000),
		      "the standby did not take over within 20 s");
	/* Nothing is lost: work made meanwhile is done by the new leader. */
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE2 "\"}");
	wait_value(&f, "db-creds", "password", VALUE2);
	fx_stop(&f);
}
END_TEST

START_TEST(shards_keep_apart)
{
	struct fx f;
	char spec[1024];
	char *audit, *line, *save = NULL;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", "--selector", "shard=a", NULL });
	ctl_start(&f, 1, (const char *const[]){ "--leader-elect=false", "--selector", "shard=b", NULL });
	for (int i = 0; i < 2; i++) {
		char body[2048];

		snprintf(spec, sizeof(spec), "{\"refreshInterval\":\"1h\",\"secretStoreRef\":{\"name\":\"vault\"},"
			 "\"target\":{\"name\":\"shard-%c\"},\"data\":[{\"secretKey\":\"p\",\"remoteRef\":"
			 "{\"key\":\"app/db\",\"property\":\"password\"}}]}", 'a' + i);
		snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\","
			 "\"metadata\":{\"name\":\"es-%c\",\"labels\":{\"shard\":\"%c\"}},\"spec\":%s}",
			 'a' + i, 'a' + i, spec);
		json_decref(kube(&f, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets", body, 201));
	}
	wait_value(&f, "shard-a", "p", VALUE1);
	wait_value(&f, "shard-b", "p", VALUE1);
	/* Each controller wrote only its own shard's objects: read in their logs. */
	for (int i = 0; i < 2; i++) {
		char other[32];

		snprintf(other, sizeof(other), "es-%c", 'b' - i);
		audit = t_read_file(f.ctl[i].log_path);
		ck_assert_ptr_nonnull(audit);
		for (line = strtok_r(audit, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
			ck_assert_msg(strstr(line, other) == NULL, "controller %d touched %s: %s", i, other, line);
		free(audit);
	}
	fx_stop(&f);
}
END_TEST

START_TEST(kubernetes_auth_with_token_request)
{
	struct fx f;
	char *pub, body[8192], *esc;
	json_t *j;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	/* latchkey dev verifies the service-account JWTs the test API server signs. */
	pub = t_read_file(f.kube.sa_pub);
	ck_assert_ptr_nonnull(pub);
	j = json_pack("{s:s, s:[s]}", "kubernetes_host", f.kube.addr, "pem_keys", pub);
	esc = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	free(pub);
	ck_assert_int_lt(dev(&f, "POST", "/v1/auth/kubernetes/config", esc), 300);
	free(esc);
	ck_assert_int_lt(dev(&f, "PUT", "/v1/sys/policy/reader", "{\"policy\":\"path \\\"secret/data/app/*\\\" "
			     "{ capabilities = [\\\"read\\\"] }\"}"), 300);
	ck_assert_int_lt(dev(&f, "POST", "/v1/auth/kubernetes/role/sync",
			     "{\"bound_service_account_names\":[\"reader\"],\"bound_service_account_namespaces\":"
			     "[\"" NS "\"],\"token_policies\":[\"reader\"],\"token_ttl\":\"1h\"}"), 300);
	json_decref(kube(&f, "POST", "/api/v1/namespaces/" NS "/serviceaccounts",
			 "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"reader\"}}", 201));
	snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\","
		 "\"metadata\":{\"name\":\"vault-k8s\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\","
		 "\"path\":\"secret\",\"auth\":{\"kubernetes\":{\"role\":\"sync\",\"serviceAccountRef\":"
		 "{\"name\":\"reader\"}}}}}}}", f.dev.addr);
	json_decref(kube(&f, "POST", "/apis/latchkey.io/v1/namespaces/" NS "/secretstores", body, 201));
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "viak8s", "{\"secretStoreRef\":{\"name\":\"vault-k8s\"},\"target\":{\"name\":\"viak8s\"},"
		  "\"data\":[{\"secretKey\":\"p\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	wait_value(&f, "viak8s", "p", VALUE1);
	fx_stop(&f);
}
END_TEST

START_TEST(no_values_in_logs_events_or_status)
{
	struct fx f;
	char *text;
	json_t *j;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "db", plain_spec);
	es_create(&f, "broken", "{\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"template\":"
		  "{\"data\":{\"x\":\"{{ .nope }} " VALUE2 "\"}}},\"data\":[{\"secretKey\":\"p\","
		  "\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	wait_value(&f, "db-creds", "password", VALUE1);
	wait_ready(&f, "broken", "False", NULL);
	/* The controller's log, the Events, the ExternalSecrets' status: no value. */
	text = t_read_file(f.ctl[0].log_path);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_null(strstr(text, VALUE1));
	ck_assert_ptr_null(strstr(text, f.dev.token));
	free(text);
	j = kube(&f, "GET", "/api/v1/namespaces/" NS "/events", NULL, 200);
	text = json_dumps(j, 0);
	ck_assert_ptr_nonnull(strstr(text, "broken"));
	ck_assert_ptr_null(strstr(text, VALUE1));
	free(text);
	json_decref(j);
	j = kube(&f, "GET", "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets", NULL, 200);
	text = json_dumps(j, 0);
	ck_assert_ptr_null(strstr(text, VALUE1));
	free(text);
	json_decref(j);
	fx_stop(&f);
}
END_TEST

START_TEST(compat_external_secrets)
{
	struct fx f;
	char body[2048];

	fx_start(&f);
	t_sfx_apply_crds(&f, "tests/fixtures/compat-crds/*.yaml");
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	snprintf(body, sizeof(body), "{\"apiVersion\":\"external-secrets.io/v1\",\"kind\":\"SecretStore\","
		 "\"metadata\":{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\","
		 "\"path\":\"secret\",\"version\":\"v2\",\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\","
		 "\"key\":\"token\"}}}}}}", f.dev.addr);
	/* The ESO group appears once its CRDs are in. */
	ck_assert(t_wait_until(group_served, &f, T_DEADLINE_MS));
	json_decref(kube(&f, "POST", "/apis/external-secrets.io/v1/namespaces/" NS "/secretstores", body, 201));
	json_decref(kube(&f, "POST", "/apis/external-secrets.io/v1/namespaces/" NS "/externalsecrets",
			 "{\"apiVersion\":\"external-secrets.io/v1\",\"kind\":\"ExternalSecret\",\"metadata\":"
			 "{\"name\":\"eso\"},\"spec\":{\"refreshInterval\":\"1h0m0s\",\"secretStoreRef\":"
			 "{\"name\":\"vault\",\"kind\":\"SecretStore\"},\"target\":{\"name\":\"eso-out\"},"
			 "\"data\":[{\"secretKey\":\"p\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}}]}}",
			 201));
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", "--compat", "external-secrets", NULL });
	wait_value(&f, "eso-out", "p", VALUE1);
	{
		json_t *s = secret_get(&f, "eso-out");

		ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(s,
			"metadata"), "labels"), "reconcile.external-secrets.io/managed")), "true");
		json_decref(s);
	}
	fx_stop(&f);
}
END_TEST

/* The data of Secret name, key, opened with the lk1 private key of ks. NULL when it does
 * not open (or the Secret is not there). */
static char *
opened_value(struct fx *f, const struct lk_keyset *ks, const char *name, const char *key)
{
	char *ct = secret_value(f, name, key), label[256], *out = NULL;
	struct lk_secret *pt = NULL;
	struct lk_error err;

	snprintf(label, sizeof(label), NS "/%s/%s", name, key);
	if (ct != NULL && strncmp(ct, "lk1:", 4) == 0 &&
	    lk_keyset_open(ks, label, ct, strlen(ct), &pt, &err) == 0)
		out = strndup(lk_secret_cstr(pt), lk_secret_len(pt));
	lk_secret_free(pt);
	free(ct);
	return out;
}

struct want_opened {
	struct fx *f;
	const struct lk_keyset *ks;
	const char *name, *key, *value;
};

static bool
opens_to(void *arg)
{
	struct want_opened *w = arg;
	char *v = opened_value(w->f, w->ks, w->name, w->key);
	bool ok = v != NULL && strcmp(v, w->value) == 0;

	free(v);
	return ok;
}

/* target.encryption: the Secret holds lk1 text only; the recipient's private key opens it;
 * change detection still works (a steady refresh writes nothing, a new value re-encrypts);
 * a private key offered as the recipient is refused without being shown. */
START_TEST(encryption_at_source)
{
	struct lk_keyset *ks = lk_keyset_new();
	struct lk_key *x = NULL;
	struct lk_error err;
	struct fx f;
	const char *rdir;
	char *pub, *priv, body[1024], *text;
	json_t *s;
	long writes;

	fx_start(&f);
	rdir = t_path(f.dir, "recipient");
	{
		const char *argv[] = { t_latchkey_bin(), "keygen", "--lk1", "--out-dir", rdir, NULL };

		ck_assert_int_eq(t_run(argv, NULL, NULL, NULL, NULL), 0);
	}
	pub = t_read_file(t_path(rdir, "0001.lk1.pub"));
	priv = t_read_file(t_path(rdir, "0001.lk1"));
	ck_assert(pub != NULL && priv != NULL);
	pub[strcspn(pub, "\n")] = '\0';
	priv[strcspn(priv, "\n")] = '\0';
	ck_assert_int_eq(lk_key_x25519_parse(priv, strlen(priv), &x, &err), 0);
	ck_assert_int_eq(lk_keyset_add_take(ks, x), 0);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"recipient\"},\"data\":{\"lk1.pub\":\"%s\\n\"}}", pub);
	json_decref(kube(&f, "POST", "/api/v1/namespaces/" NS "/configmaps", body, 201));
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE1 "\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "enc", "{\"refreshInterval\":\"2s\",\"secretStoreRef\":{\"name\":\"vault\"},"
		  "\"target\":{\"name\":\"enc-out\",\"encryption\":{\"recipientFrom\":{\"configMapKeyRef\":"
		  "{\"name\":\"recipient\",\"key\":\"lk1.pub\"}}}},\"data\":[{\"secretKey\":\"password\","
		  "\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	{
		struct want_opened w = { &f, ks, "enc-out", "password", VALUE1 };

		ck_assert_msg(t_wait_until(opens_to, &w, T_DEADLINE_MS), "enc-out never opened to the value");
	}
	s = secret_get(&f, "enc-out");
	text = json_dumps(s, JSON_COMPACT);
	ck_assert_msg(strstr(text, VALUE1) == NULL, "plaintext at the API server");
	free(text);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(s, "metadata"),
		"annotations"), "latchkey.io/recipient")), lk_key_id(lk_keyset_get(ks, 0)));
	json_decref(s);
	/* Bound to its key: the value does not open as another. */
	{
		char *ct = secret_value(&f, "enc-out", "password");
		struct lk_secret *pt = NULL;

		ck_assert_int_lt(lk_keyset_open(ks, NS "/other/password", ct, strlen(ct), &pt, &err), 0);
		free(ct);
	}
	/* Randomised ciphertext, yet a steady refresh writes nothing. */
	ck_assert_int_eq(t_kube_stats_reset(&f.kube), 0);
	{
		struct refreshes r = { .f = &f, .name = "enc", .want = 3 };

		ck_assert_msg(t_wait_until(refreshed, &r, T_DEADLINE_MS), "only %d refreshes", r.seen);
	}
	writes = t_kube_writes_in(&f.kube, "secrets", NS);
	ck_assert_msg(writes == 0, "a steady refresh wrote %ld Secrets", writes);
	/* A new value is encrypted again. */
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"" VALUE2 "\"}");
	{
		struct want_opened w = { &f, ks, "enc-out", "password", VALUE2 };

		ck_assert_msg(t_wait_until(opens_to, &w, T_DEADLINE_MS), "enc-out never opened to the new value");
	}
	/* A private key where the recipient goes: refused, and never shown. */
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
		 "{\"name\":\"oops\"},\"data\":{\"lk1.pub\":\"%s\"}}", priv);
	json_decref(kube(&f, "POST", "/api/v1/namespaces/" NS "/configmaps", body, 201));
	es_create(&f, "oops", "{\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"encryption\":"
		  "{\"recipientFrom\":{\"configMapKeyRef\":{\"name\":\"oops\",\"key\":\"lk1.pub\"}}}},"
		  "\"data\":[{\"secretKey\":\"p\",\"remoteRef\":{\"key\":\"app/db\",\"property\":\"password\"}}]}");
	wait_ready(&f, "oops", "False", "does not hold an lk1 public key");
	{
		json_t *es = t_sfx_get(&f, "/apis/latchkey.io/v1/namespaces/" NS "/externalsecrets/oops");

		text = json_dumps(es, JSON_COMPACT);
		ck_assert_msg(strstr(text, priv + 8) == NULL, "the private key reached the status");
		free(text);
		json_decref(es);
		ck_assert_ptr_null(secret_get(&f, "oops"));
	}
	free(pub);
	free(priv);
	lk_keyset_free(ks);
	fx_stop(&f);
}
END_TEST

/* A backend value holding \u0000, read twice by one ExternalSecret: the second read is
 * served from the first one's cached answer, NUL and all. */
START_TEST(nul_value_read_twice)
{
	struct fx f;

	fx_start(&f);
	kv_put(&f, "app/db", "{\"user\":\"alice\",\"password\":\"a\\u0000b\"}");
	ctl_start(&f, 0, (const char *const[]){ "--leader-elect=false", NULL });
	es_create(&f, "db", plain_spec);
	wait_ready(&f, "db", "True", "secret synced");
	wait_value(&f, "db-creds", "user", "alice");
	fx_stop(&f);
}
END_TEST

#define ADD(s, fn) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, 240); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
sync_suite(void)
{
	Suite *s = suite_create("sync");

	ADD(s, create_update_and_steady_state);
	ADD(s, policies_merge_and_deletion);
	ADD(s, backend_forbidden_then_fixed);
	ADD(s, faults_converge);
	ADD(s, invalid_resources_name_the_field);
	ADD(s, leader_election_hands_over);
	ADD(s, shards_keep_apart);
	ADD(s, kubernetes_auth_with_token_request);
	ADD(s, no_values_in_logs_events_or_status);
	ADD(s, compat_external_secrets);
	ADD(s, encryption_at_source);
	ADD(s, nul_value_read_twice);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sync_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
