/* check_devserver.c — `latchkey dev` as a black box: the real binary on a free port,
 * spoken to over HTTP with libcurl, each response's shape compared with the golden
 * fixtures in tests/golden/vault/ (transcribed from Vault/OpenBao's wire formats). */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "common/clock.h"
#include "testutil.h"

#define GOLDEN_DIR "tests/golden/vault"

/* ---- HTTP helpers ---- */

struct reply {
	long status;
	json_t *json;       /* NULL when the body is empty or not JSON */
	char *raw;
	char retry_after[32];
};

static void
reply_clear(struct reply *r)
{
	json_decref(r->json);
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* Through t_http: method, path under the server, token (NULL: none), body (NULL: none). */
static long
call(const struct t_dev *d, const char *method, const char *path, const char *token,
     const char *body, struct reply *r)
{
	char url[2048];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", d->addr, path);
	r->status = t_http(method, url, NULL, token, body, &r->raw);
	if (r->raw != NULL && r->raw[0] != '\0')
		r->json = json_loads(r->raw, 0, NULL);
	return r->status;
}

static long
call_json(const struct t_dev *d, const char *method, const char *path, const char *token,
	  json_t *body, struct reply *r)
{
	char *text = json_dumps(body, JSON_COMPACT);
	long st = call(d, method, path, token, text, r);

	free(text);
	json_decref(body);
	return st;
}

static size_t
collect(char *p, size_t size, size_t n, void *ud)
{
	char **buf = ud;
	size_t old = *buf != NULL ? strlen(*buf) : 0;
	char *nb = realloc(*buf, old + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + old, p, size * n);
	nb[old + size * n] = '\0';
	*buf = nb;
	return size * n;
}

static size_t
header_cb(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;

	if (size * n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
		snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)strcspn(p + 12, "\r\n") - 1,
		    p + 13);
	return size * n;
}

/* With extra request headers, and the Retry-After response header. */
static long
call_headers(const struct t_dev *d, const char *method, const char *path,
	     const char *const headers[], const char *body, struct reply *r)
{
	struct curl_slist *h = NULL;
	char url[2048];
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", d->addr, path);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		h = curl_slist_append(h, headers[i]);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->raw);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->raw != NULL && r->raw[0] != '\0')
		r->json = json_loads(r->raw, 0, NULL);
	return r->status;
}

static const char *
jstr(const json_t *root, const char *a, const char *b)
{
	const json_t *v = json_object_get(root, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static json_int_t
jint(const json_t *root, const char *a, const char *b)
{
	const json_t *v = json_object_get(root, a);

	if (b != NULL)
		v = json_object_get(v, b);
	ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", a, b != NULL ? b : "");
	return json_integer_value(v);
}

static const json_t *
jarr(const json_t *root, const char *a, const char *b)
{
	const json_t *v = json_object_get(root, a);

	if (b != NULL)
		v = json_object_get(v, b);
	ck_assert_msg(json_is_array(v), "%s.%s is not an array", a, b != NULL ? b : "");
	return v;
}

/* ---- golden shapes ---- */

static bool
is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (strchr("0123456789abcdef", s[i]) == NULL) {
			return false;
		}
	}
	return true;
}

/* Markers in golden strings: "<uuid>", "<rfc3339>", "<token>", "<int>", "<string>",
 * "<prefix:TEXT>"; any other value must be equal. Objects must have the same keys. */
static bool
shape_eq(const json_t *g, const json_t *a, const char *path, char *why, size_t whylen)
{
	char sub[512];

	if (json_is_string(g)) {
		const char *m = json_string_value(g);
		size_t ml = strlen(m);

		if (ml > 2 && m[0] == '<' && m[ml - 1] == '>') {
			int64_t ms;

			if (strcmp(m, "<int>") == 0) {
				if (json_is_integer(a))
					return true;
			} else if (!json_is_string(a)) {
				snprintf(why, whylen, "%s: expected a string", path);
				return false;
			} else if (strcmp(m, "<string>") == 0) {
				return true;
			} else if (strcmp(m, "<uuid>") == 0) {
				if (is_uuid(json_string_value(a)))
					return true;
			} else if (strcmp(m, "<rfc3339>") == 0) {
				if (lk_rfc3339_parse(json_string_value(a), &ms) == 0)
					return true;
			} else if (strcmp(m, "<token>") == 0) {
				if (strncmp(json_string_value(a), "s.", 2) == 0 && json_string_length(a) > 10)
					return true;
			} else if (strncmp(m, "<prefix:", 8) == 0) {
				if (strncmp(json_string_value(a), m + 8, ml - 9) == 0)
					return true;
			}
			snprintf(why, whylen, "%s: %s does not fit %s", path,
			    json_is_string(a) ? json_string_value(a) : "(not a string)", m);
			return false;
		}
	}
	if (json_typeof(g) != json_typeof(a) &&
	    !(json_is_boolean(g) && json_is_boolean(a))) {
		snprintf(why, whylen, "%s: JSON type differs", path);
		return false;
	}
	if (json_is_object(g)) {
		const char *key;
		json_t *v;

		json_object_foreach((json_t *)g, key, v) {
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			if (json_object_get(a, key) == NULL) {
				snprintf(why, whylen, "%s: missing", sub);
				return false;
			}
			if (!shape_eq(v, json_object_get(a, key), sub, why, whylen))
				return false;
		}
		json_object_foreach((json_t *)a, key, v) {
			if (json_object_get(g, key) == NULL) {
				snprintf(why, whylen, "%s.%s: not in the golden file", path, key);
				return false;
			}
		}
		return true;
	}
	if (json_is_array(g)) {
		if (json_array_size(g) != json_array_size(a)) {
			snprintf(why, whylen, "%s: %zu elements, golden has %zu", path,
			    json_array_size(a), json_array_size(g));
			return false;
		}
		for (size_t i = 0; i < json_array_size(g); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (!shape_eq(json_array_get(g, i), json_array_get(a, i), sub, why, whylen))
				return false;
		}
		return true;
	}
	if (!json_equal(g, a)) {
		snprintf(why, whylen, "%s: value differs from the golden file", path);
		return false;
	}
	return true;
}

static void
check_golden(const char *name, const struct reply *r)
{
	char file[256], why[1024] = "";
	json_error_t jerr;
	json_t *g;

	snprintf(file, sizeof(file), "%s/%s.json", GOLDEN_DIR, name);
	g = json_load_file(file, 0, &jerr);
	ck_assert_msg(g != NULL, "%s: %s", file, jerr.text);
	ck_assert_msg(r->json != NULL, "%s: response is not JSON: %s", name, r->raw ? r->raw : "(none)");
	ck_assert_msg(shape_eq(g, r->json, "$", why, sizeof(why)), "%s: %s\nbody: %s", name, why,
	    r->raw);
	json_decref(g);
}

static void
start(struct t_dev *d, const char *const extra[])
{
	/* This suite checks what the root token can do by its name. */
	const char *args[32] = { "--root-token", "root" };
	size_t n = 2;
	int r;

	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	r = t_dev_start(d, args);

	ck_assert_msg(r == 0, "latchkey dev did not start (%d)", r);
}

/* Stops the server with SIGTERM: it must exit 0 (a sanitizer build fails here on leaks
 * and memory errors). */
static void
stop(struct t_dev *d)
{
	int status = t_stop(&d->proc, SIGTERM, 10000);
	char *log = t_read_file(d->proc.log_path);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "latchkey dev exited with status %d:\n%s", status, log != NULL ? log : "");
	free(log);
	t_dev_stop(d);
}

/* ---- tests ---- */

START_TEST(test_health)
{
	struct t_dev d;
	struct reply r;

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 200);
	check_golden("health", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health?standbyok=true&activecode=299", NULL, NULL, &r), 299);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/seal-status", NULL, NULL, &r), 200);
	ck_assert(json_is_false(json_object_get(r.json, "sealed")));
	reply_clear(&r);
	/* Authorization: Bearer and X-Vault-Namespace work like X-Vault-Token. */
	ck_assert_int_eq(call_headers(&d, "GET", "/v1/auth/token/lookup-self",
	    (const char *[]){ "Authorization: Bearer root", "X-Vault-Namespace: ns1/", NULL }, NULL, &r), 200);
	ck_assert_str_eq(jstr(r.json, "data", "id"), "root");
	ck_assert(json_is_null(json_object_get(json_object_get(r.json, "data"), "expire_time")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/mounts", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "secret/", "type"), "kv");
	ck_assert_str_eq(jstr(json_object_get(json_object_get(r.json, "data"), "secret/"), "options",
	    "version"), "2");
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "database/", "type"), "database");
	ck_assert_ptr_null(json_object_get(r.json, "mount_type"));
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_kv2)
{
	struct t_dev d;
	struct reply r;
	char *log;

	start(&d, (const char *[]){ "--log-level", "debug", NULL });
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 404);
	check_golden("error_empty", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root",
	    "{\"data\":{\"username\":\"u0\",\"password\":\"pw-4f1d9c-first\"},\"options\":{\"cas\":0}}", &r), 200);
	check_golden("kv2_write", &r);
	reply_clear(&r);
	/* cas must match the current version. */
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root",
	    "{\"data\":{\"x\":\"y\"},\"options\":{\"cas\":0}}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "check-and-set parameter did not match"));
	reply_clear(&r);
	/* PUT is POST. */
	ck_assert_int_eq(call(&d, "PUT", "/v1/secret/data/app/db", "root",
	    "{\"data\":{\"username\":\"u\",\"password\":\"p\"},\"options\":{\"cas\":1}}", &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "version"), 2);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 200);
	check_golden("kv2_read", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db?version=1", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "data", "username"), "u0");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db?version=7", "root", NULL, &r), 404);
	check_golden("error_empty", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/metadata/app/db", "root", NULL, &r), 200);
	check_golden("kv2_metadata", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/secret/metadata/app", "root", NULL, &r), 200);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(r.json,
	    "data"), "keys"), 0)), "db");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/metadata/?list=true", "root", NULL, &r), 200);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(r.json,
	    "data"), "keys"), 0)), "app/");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/secret/metadata/nothing", "root", NULL, &r), 404);
	reply_clear(&r);

	/* Soft delete of the latest version: 404 with the whole envelope. */
	ck_assert_int_eq(call(&d, "DELETE", "/v1/secret/data/app/db", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 404);
	check_golden("kv2_deleted", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/undelete/app/db", "root", "{\"versions\":[2]}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/delete/app/db", "root", "{\"versions\":[1]}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db?version=1", "root", NULL, &r), 404);
	ck_assert(json_is_null(json_object_get(json_object_get(r.json, "data"), "data")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/secret/destroy/app/db", "root", "{\"versions\":[1]}", &r), 204);
	reply_clear(&r);
	/* A destroyed version cannot be undeleted. */
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/undelete/app/db", "root", "{\"versions\":[1]}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db?version=1", "root", NULL, &r), 404);
	ck_assert(json_is_true(json_object_get(json_object_get(json_object_get(r.json, "data"),
	    "metadata"), "destroyed")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/secret/metadata/app/db", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 404);
	check_golden("error_empty", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/nomount/data/x", "root", NULL, &r), 404);
	ck_assert_ptr_nonnull(strstr(r.raw, "no handler for route"));
	reply_clear(&r);
	/* Requests are logged at debug level, without bodies. */
	ck_assert(t_wait_log(&d.proc, "\"path\":\"/v1/nomount/data/x\",\"status\":404", T_DEADLINE_MS, NULL, 0));
	log = t_read_file(d.proc.log_path);
	ck_assert_ptr_null(strstr(log, "pw-4f1d9c"));
	free(log);
	stop(&d);
}
END_TEST

START_TEST(test_kv1)
{
	struct t_dev d;
	struct reply r;

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/mounts/kv", "root",
	    "{\"type\":\"kv\",\"options\":{\"version\":\"1\"}}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/mounts/kv", "root", "{\"type\":\"kv\"}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "path is already in use"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/mounts", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(json_object_get(json_object_get(r.json, "data"), "kv/"), "options",
	    "version"), "1");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/kv/team/app", "root", "{\"foo\":\"bar\",\"ttl\":\"1h\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/kv/team/app", "root", NULL, &r), 200);
	check_golden("kv1_read", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/kv/team", "root", NULL, &r), 200);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(r.json,
	    "data"), "keys"), 0)), "app");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/kv/team/app", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/kv/team/app", "root", NULL, &r), 404);
	check_golden("error_empty", &r);
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_token)
{
	struct t_dev d;
	struct reply r;
	char child[128], shortlived[128];
	const char *warning;

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/policy/app", "root",
	    "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root",
	    "{\"policies\":[\"app\"],\"ttl\":\"1h\",\"explicit_max_ttl\":\"90m\"}", &r), 200);
	check_golden("token_create", &r);
	snprintf(child, sizeof(child), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", child, NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "explicit_max_ttl"), 5400);
	json_object_set_new(json_object_get(r.json, "data"), "explicit_max_ttl", json_integer(0));
	check_golden("token_lookup_self", &r);
	reply_clear(&r);
	/* Renewal within the explicit max TTL, then capped by it with Vault's warning. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/renew-self", child, "{\"increment\":\"30m\"}", &r), 200);
	ck_assert_int_eq(jint(r.json, "auth", "lease_duration"), 1800);
	ck_assert(json_is_null(json_object_get(r.json, "warnings")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/renew-self", child, "{\"increment\":7200}", &r), 200);
	ck_assert_int_le(jint(r.json, "auth", "lease_duration"), 5400);
	ck_assert_int_gt(jint(r.json, "auth", "lease_duration"), 5300);
	/* The time left is counted in milliseconds and shown in whole seconds: 1h30m when
	 * the renewal came within a millisecond of the creation, 1h29m59s or less after. */
	warning = json_string_value(json_array_get(json_object_get(r.json, "warnings"), 0));
	ck_assert_ptr_nonnull(warning);
	ck_assert_msg(strstr(warning, "TTL of \"2h\" exceeded the effective max_ttl of \"1h29m") != NULL ||
		      strstr(warning, "TTL of \"2h\" exceeded the effective max_ttl of \"1h30m\"") != NULL,
		      "%s", warning);
	reply_clear(&r);
	/* The root token cannot be renewed. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/renew-self", "root", NULL, &r), 400);
	reply_clear(&r);
	/* A child may not gain policies its parent lacks. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", child,
	    "{\"policies\":[\"admin\"]}", &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/revoke-self", child, NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", child, NULL, &r), 403);
	check_golden("error_invalid_token", &r);
	reply_clear(&r);

	/* Tokens expire for real. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root",
	    "{\"policies\":[\"app\"],\"ttl\":1}", &r), 200);
	snprintf(shortlived, sizeof(shortlived), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	int64_t deadline = lk_now_mono_ms() + T_DEADLINE_MS;
	long st;
	do {
		st = call(&d, "GET", "/v1/auth/token/lookup-self", shortlived, NULL, &r);
		reply_clear(&r);
		if (st == 403)
			break;
		ck_assert_int_eq(st, 200);
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	} while (lk_now_mono_ms() < deadline);
	ck_assert_int_eq(st, 403);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", NULL, NULL, &r), 403);
	ck_assert_ptr_nonnull(strstr(r.raw, "permission denied"));
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_approle)
{
	struct t_dev d;
	struct reply r;
	char role_id[64], secret_id[64], token[128];

	start(&d, NULL);
	/* Enabling again is accepted (approle/ is on from the start). */
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/auth/approle", "root", "{\"type\":\"approle\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/role/my-role", "root",
	    "{\"token_policies\":\"app\",\"token_ttl\":\"1h\",\"token_max_ttl\":\"4h\",\"secret_id_ttl\":\"10m\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/approle/role/my-role", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "token_ttl"), 3600);
	ck_assert_int_eq(jint(r.json, "data", "token_max_ttl"), 14400);
	ck_assert_int_eq(jint(r.json, "data", "secret_id_ttl"), 600);
	ck_assert(json_is_true(json_object_get(json_object_get(r.json, "data"), "bind_secret_id")));
	ck_assert_ptr_null(json_object_get(json_object_get(r.json, "data"), "secret_ids"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/auth/approle/role", "root", NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/approle/role/my-role/role-id", "root", NULL, &r), 200);
	snprintf(role_id, sizeof(role_id), "%s", jstr(r.json, "data", "role_id"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/role/my-role/secret-id", "root", NULL, &r), 200);
	snprintf(secret_id, sizeof(secret_id), "%s", jstr(r.json, "data", "secret_id"));
	ck_assert_int_eq(jint(r.json, "data", "secret_id_ttl"), 600);
	ck_assert_ptr_nonnull(jstr(r.json, "data", "secret_id_accessor"));
	reply_clear(&r);

	char body[256];
	snprintf(body, sizeof(body), "{\"role_id\":\"%s\",\"secret_id\":\"%s\"}", role_id, secret_id);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL, body, &r), 200);
	check_golden("approle_login", &r);
	snprintf(token, sizeof(token), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", token, NULL, &r), 200);
	ck_assert_str_eq(jstr(r.json, "data", "path"), "auth/approle/login");
	reply_clear(&r);

	snprintf(body, sizeof(body), "{\"role_id\":\"%s\",\"secret_id\":\"nope\"}", role_id);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL, body, &r), 400);
	check_golden("error_approle", &r);
	reply_clear(&r);
	snprintf(body, sizeof(body), "{\"role_id\":\"nope\",\"secret_id\":\"%s\"}", secret_id);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL, body, &r), 400);
	check_golden("error_approle", &r);
	reply_clear(&r);
	/* Credentials with a NUL byte and more after it are not the ones before the NUL. */
	snprintf(body, sizeof(body), "{\"role_id\":\"%s\\u0000x\",\"secret_id\":\"%s\\u0000x\"}",
		 role_id, secret_id);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL, body, &r), 400);
	ck_assert_ptr_null(jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/approle/role/none", "root", NULL, &r), 404);
	reply_clear(&r);
	stop(&d);
}
END_TEST

/* ---- Kubernetes JWTs ---- */

static char *
b64url(const unsigned char *p, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = malloc(n * 4 / 3 + 4), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = set[p[i] >> 2];
		*o++ = set[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = set[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = set[p[i + 2] & 63];
	}
	if (n - i == 1) {
		*o++ = set[p[i] >> 2];
		*o++ = set[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		*o++ = set[p[i] >> 2];
		*o++ = set[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = set[(p[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/* A JWT with the payload; signed with key (RS256 or ES256 by its type), or carrying a
 * junk signature when key is NULL. Owned: free(). */
static char *
make_jwt(json_t *payload, EVP_PKEY *key)
{
	bool ec = key != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC;
	json_t *hdr = json_pack("{s:s, s:s}", "alg", ec ? "ES256" : "RS256", "typ", "JWT");
	char *hdr_json = json_dumps(hdr, JSON_COMPACT);
	char *pl_json = json_dumps(payload, JSON_COMPACT);
	char *h = b64url((unsigned char *)hdr_json, strlen(hdr_json));
	char *p = b64url((unsigned char *)pl_json, strlen(pl_json));
	char *signing, *sig, *out;
	unsigned char sigbuf[1024];
	size_t siglen = sizeof(sigbuf);

	json_decref(hdr);
	json_decref(payload);
	if (asprintf(&signing, "%s.%s", h, p) < 0)
		return NULL;
	if (key == NULL) {
		memcpy(sigbuf, "not a signature", 15);
		siglen = 15;
	} else {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		ck_assert(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
		ck_assert(EVP_DigestSign(md, sigbuf, &siglen, (unsigned char *)signing, strlen(signing)) == 1);
		EVP_MD_CTX_free(md);
		if (ec) {
			const unsigned char *q = sigbuf;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)siglen);
			const BIGNUM *r, *s;
			ck_assert_ptr_nonnull(es);
			ECDSA_SIG_get0(es, &r, &s);
			BN_bn2binpad(r, sigbuf, 32);
			BN_bn2binpad(s, sigbuf + 32, 32);
			siglen = 64;
			ECDSA_SIG_free(es);
		}
	}
	sig = b64url(sigbuf, siglen);
	if (asprintf(&out, "%s.%s", signing, sig) < 0)
		out = NULL;
	free(hdr_json);
	free(pl_json);
	free(h);
	free(p);
	free(sig);
	free(signing);
	return out;
}

static json_t *
projected_claims(const char *ns, const char *name, long exp_delta)
{
	long now = (long)time(NULL);

	return json_pack("{s:[s], s:I, s:I, s:s, s:{s:s, s:{s:s, s:s}}, s:I, s:s}",
	    "aud", "vault", "exp", (json_int_t)(now + exp_delta), "iat", (json_int_t)now,
	    "iss", "https://kubernetes.default.svc", "kubernetes.io", "namespace", ns,
	    "serviceaccount", "name", name, "uid", "0b9f8c3e-uid", "nbf", (json_int_t)now - 5,
	    "sub", "system:serviceaccount");
}

static json_t *
legacy_claims(const char *ns, const char *name)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "iss", "kubernetes/serviceaccount",
	    "kubernetes.io/serviceaccount/namespace", ns,
	    "kubernetes.io/serviceaccount/secret.name", "app-token-x7k2p",
	    "kubernetes.io/serviceaccount/service-account.name", name,
	    "kubernetes.io/serviceaccount/service-account.uid", "uid-legacy",
	    "sub", "system:serviceaccount");
}

static long
k8s_login(const struct t_dev *d, const char *role, char *jwt, struct reply *r)
{
	long st = call_json(d, "POST", "/v1/auth/kubernetes/login", NULL,
	    json_pack("{s:s, s:s}", "role", role, "jwt", jwt), r);

	free(jwt);
	return st;
}

static char *
pem_of(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert(PEM_write_bio_PUBKEY(b, key) == 1);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

START_TEST(test_kubernetes)
{
	struct t_dev d;
	struct reply r;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *pem_rsa = pem_of(rsa), *pem_ec = pem_of(ec);

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/kubernetes/config", "root",
	    "{\"kubernetes_host\":\"https://127.0.0.1:6443\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/kubernetes/role/my-role", "root",
	    "{\"bound_service_account_names\":[\"app\"],\"bound_service_account_namespaces\":[\"*\"],"
	    "\"token_policies\":[\"app\"]}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/kubernetes/role/my-role", "root", NULL, &r), 200);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(r.json,
	    "data"), "bound_service_account_names"), 0)), "app");
	reply_clear(&r);

	/* No pem_keys: decoded, not verified. Projected and legacy claims both work. */
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", 600), NULL), &r), 200);
	check_golden("k8s_login", &r);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(legacy_claims("team", "app"), NULL), &r), 200);
	ck_assert_str_eq(jstr(json_object_get(r.json, "auth"), "metadata", "service_account_secret_name"),
	    "app-token-x7k2p");
	ck_assert_str_eq(jstr(json_object_get(r.json, "auth"), "metadata", "service_account_namespace"),
	    "team");
	reply_clear(&r);
	ck_assert(t_wait_log(&d.proc, "signatures are not verified", T_DEADLINE_MS, NULL, 0));

	/* Unknown role, unbound service account, expired token, garbage. */
	ck_assert_int_eq(k8s_login(&d, "x", make_jwt(projected_claims("default", "app", 600), NULL), &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "invalid role name \\\"x\\\""));
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "web", 600), NULL), &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", -60), NULL), &r), 403);
	ck_assert_ptr_nonnull(strstr(r.raw, "permission denied"));
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", strdup("a.b.c"), &r), 403);
	reply_clear(&r);

	/* A role with an audience takes only tokens issued for it (projected tokens carry
	 * aud ["vault"]; legacy ones none). */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/kubernetes/role/aud-role", "root",
	    "{\"bound_service_account_names\":[\"app\"],\"bound_service_account_namespaces\":[\"*\"],"
	    "\"audience\":\"vault\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "aud-role", make_jwt(projected_claims("default", "app", 600), NULL), &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "aud-role", make_jwt(legacy_claims("team", "app"), NULL), &r), 403);
	ck_assert_ptr_nonnull(strstr(r.raw, "invalid audience"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/kubernetes/role/aud-role", "root",
	    "{\"bound_service_account_names\":[\"app\"],\"bound_service_account_namespaces\":[\"*\"],"
	    "\"audience\":\"https://kubernetes.default.svc\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "aud-role", make_jwt(projected_claims("default", "app", 600), NULL), &r), 403);
	reply_clear(&r);

	/* With pem_keys, signatures are checked: RS256 and ES256 pass, others fail. */
	ck_assert_int_eq(call_json(&d, "POST", "/v1/auth/kubernetes/config", "root",
	    json_pack("{s:s, s:[s, s]}", "kubernetes_host", "https://127.0.0.1:6443", "pem_keys",
	    pem_rsa, pem_ec), &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", 600), rsa), &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", 600), ec), &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", 600), other), &r), 403);
	ck_assert_ptr_nonnull(strstr(r.raw, "permission denied"));
	reply_clear(&r);
	ck_assert_int_eq(k8s_login(&d, "my-role", make_jwt(projected_claims("default", "app", 600), NULL), &r), 403);
	reply_clear(&r);
	/* A signed token whose payload was swapped afterwards. */
	char *good = make_jwt(projected_claims("default", "app", 600), rsa);
	char *forged = make_jwt(projected_claims("kube-system", "app", 600), NULL);
	char *sig = strrchr(good, '.'), *fsig = strrchr(forged, '.');
	char *mixed;
	*fsig = '\0';
	ck_assert(asprintf(&mixed, "%s%s", forged, sig) > 0);
	ck_assert_int_eq(k8s_login(&d, "my-role", mixed, &r), 403);
	reply_clear(&r);
	free(good);
	free(forged);
	stop(&d);
	free(pem_rsa);
	free(pem_ec);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(other);
}
END_TEST

static const char *
lease_state(const struct t_dev *d, const char *lease_id)
{
	static char state[32];
	struct reply r;
	size_t i;
	json_t *l;

	state[0] = '\0';
	if (call(d, "GET", "/_latchkey/leases", "root", NULL, &r) != 200) {
		reply_clear(&r);
		return "error";
	}
	json_array_foreach(json_object_get(r.json, "leases"), i, l) {
		if (strcmp(jstr(l, "lease_id", NULL), lease_id) == 0)
			snprintf(state, sizeof(state), "%s", jstr(l, "state", NULL));
	}
	reply_clear(&r);
	return state;
}

/* At least ms milliseconds have passed since start (a lower bound, never an upper one). */
struct since {
	int64_t start;
	int64_t ms;
};

static bool
elapsed(void *arg)
{
	const struct since *w = arg;

	return lk_now_mono_ms() - w->start >= w->ms;
}

START_TEST(test_database)
{
	struct t_dev d;
	struct reply r, r2;
	char lease[512], body[640], token[128];

	start(&d, NULL);
	/* Read back as Vault shapes it: the plugin's members under connection_details, never
	 * the password (the golden file holds every key). */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/pg", "root",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"username\":\"vault\",\"password\":\"Db-Admin-Secret-1\","
	    "\"max_open_connections\":4,\"allowed_roles\":\"*\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/pg", "root", NULL, &r), 200);
	check_golden("database_config", &r);
	ck_assert_ptr_null(strstr(r.raw, "Db-Admin-Secret-1"));
	reply_clear(&r);
	/* A password inside connection_url: stored with Vault's warning, read back redacted
	 * in the userinfo only (Go's url.Redacted). */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/inline", "root",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"verify_connection\":false,"
	    "\"connection_url\":\"postgresql://vault:Inline-Secret-99@db.example:5432/app?sslmode=disable\"}",
	    &r), 200);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "warnings"), 0)),
	    "Password found in connection_url, use a templated url to enable root rotation and "
	    "prevent read access to password information.");
	ck_assert_ptr_null(strstr(r.raw, "Inline-Secret-99"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/inline", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "connection_details", "connection_url"),
			 "postgresql://vault:xxxxx@db.example:5432/app?sslmode=disable");
	ck_assert_ptr_null(json_object_get(json_object_get(r.json, "data"), "connection_url"));
	ck_assert(json_is_false(json_object_get(json_object_get(r.json, "data"), "verify_connection")));
	ck_assert_ptr_null(strstr(r.raw, "Inline-Secret-99"));
	reply_clear(&r);
	/* An update changes only what it carries, as Vault's: the URL stays, still redacted. */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/inline", "root",
	    "{\"allowed_roles\":[\"app\",\"other\"],\"max_idle_connections\":2}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/inline", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(r.json, "data", "plugin_name"), "postgresql-database-plugin");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_object_get(r.json, "data"),
	    "allowed_roles"), 1)), "other");
	ck_assert_int_eq(jint(json_object_get(r.json, "data"), "connection_details", "max_idle_connections"), 2);
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "connection_details", "connection_url"),
			 "postgresql://vault:xxxxx@db.example:5432/app?sslmode=disable");
	ck_assert(json_is_false(json_object_get(json_object_get(r.json, "data"), "verify_connection")));
	reply_clear(&r);
	/* A templated URL is not a password: no warning, read back as written. */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/tmpl", "root",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"verify_connection\":false,"
	    "\"connection_url\":\"postgresql://{{username}}:{{password}}@db.example/app\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/tmpl", "root", NULL, &r), 200);
	ck_assert_str_eq(jstr(json_object_get(r.json, "data"), "connection_details", "connection_url"),
			 "postgresql://{{username}}:{{password}}@db.example/app");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/database/config", "root", NULL, &r), 200);
	ck_assert_int_eq(json_array_size(jarr(r.json, "data", "keys")), 3);
	ck_assert_str_eq(json_string_value(json_array_get(jarr(r.json, "data", "keys"), 0)), "inline");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/database/config/tmpl", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/tmpl", "root", NULL, &r), 404);
	check_golden("error_empty", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/database/config/tmpl", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/database/config/inline", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config?list=true", "root", NULL, &r), 200);
	ck_assert_int_eq(json_array_size(jarr(r.json, "data", "keys")), 1);
	ck_assert_str_eq(json_string_value(json_array_get(jarr(r.json, "data", "keys"), 0)), "pg");
	reply_clear(&r);
	/* Bad input: the field and what was expected. */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/bad", "root",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"verify_connection\":\"maybe\"}", &r), 400);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "errors"), 0)),
	    "invalid verify_connection: expected a boolean");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/bad", "root",
	    "{\"plugin_name\":\"postgresql-database-plugin\",\"allowed_roles\":7}", &r), 400);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "errors"), 0)),
	    "invalid allowed_roles: expected a list of strings or a string");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/bad", "root", "{\"username\":\"vault\"}", &r), 400);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "errors"), 0)),
	    "empty plugin name");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/config/bad", "root", NULL, &r), 404);
	reply_clear(&r);

	/* Roles as Vault's pathRoleRead: TTLs in seconds, statements as lists — a string is
	 * one statement, commas and all. */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/my-role", "root",
	    "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"max_ttl\":\"24h\","
	    "\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\"; GRANT SELECT, INSERT ON t TO \\\"{{name}}\\\";\"}",
	    &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/roles/my-role", "root", NULL, &r), 200);
	check_golden("database_role", &r);
	reply_clear(&r);
	/* An update keeps what it does not carry. */
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/my-role", "root", "{\"max_ttl\":\"48h\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/roles/my-role", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "default_ttl"), 3600);
	ck_assert_int_eq(jint(r.json, "data", "max_ttl"), 172800);
	ck_assert_int_eq(json_array_size(jarr(r.json, "data", "creation_statements")), 1);
	ck_assert_str_eq(jstr(r.json, "data", "db_name"), "pg");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/my-role", "root",
	    "{\"max_ttl\":\"24h\",\"renew_statements\":{\"a\":1}}", &r), 400);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "errors"), 0)),
	    "invalid renew_statements: expected a list of strings or a string");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/my-role", "root", "{\"max_ttl\":\"24h\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/database/roles", "root", NULL, &r), 200);
	reply_clear(&r);

	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/my-role", "root", NULL, &r), 200);
	check_golden("database_creds", &r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/my-role", "root", NULL, &r2), 200);
	ck_assert_str_ne(jstr(r.json, "data", "username"), jstr(r2.json, "data", "username"));
	ck_assert_str_ne(jstr(r.json, "data", "password"), jstr(r2.json, "data", "password"));
	ck_assert_str_ne(jstr(r.json, "lease_id", NULL), jstr(r2.json, "lease_id", NULL));
	snprintf(lease, sizeof(lease), "%s", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);
	reply_clear(&r2);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/none", "root", NULL, &r), 400);
	reply_clear(&r);

	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", lease);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/lookup", "root", body, &r), 200);
	check_golden("lease_lookup", &r);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lease), "active");
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/revoke", "root", body, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/lookup", "root", body, &r), 400);
	check_golden("error_invalid_lease", &r);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lease), "revoked");

	/* Leases die with the token that made them; a token may only touch its own. */
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/policies/acl/db", "root",
	    "{\"policy\":\"path \\\"database/creds/*\\\" { capabilities = [\\\"read\\\"] }\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root", "{\"policies\":[\"db\"]}", &r), 200);
	snprintf(token, sizeof(token), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/my-role", token, NULL, &r), 200);
	snprintf(lease, sizeof(lease), "%s", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/my-role", "root", NULL, &r), 200);
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/renew", token, body, &r), 403);
	reply_clear(&r);
	/* Looking up another token's lease is refused the same way (documented: 403). */
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/lookup", token, body, &r), 403);
	check_golden("error_denied", &r);
	reply_clear(&r);
	snprintf(body, sizeof(body), "/v1/sys/leases/renew/%s", lease);
	ck_assert_int_eq(call(&d, "PUT", body, token, NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "lease_duration", NULL), 3600);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/revoke-self", token, NULL, &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lease), "revoked");

	/* The role's max TTL is read at renewal, as Vault's database backend does: lowered
	 * below the lease's age, the renewal is refused. */
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/my-role", "root", NULL, &r), 200);
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);
	struct since age = { lk_now_mono_ms(), 1100 };
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/my-role", "root",
	    "{\"db_name\":\"pg\",\"default_ttl\":1,\"max_ttl\":1}", &r), 204);
	reply_clear(&r);
	ck_assert(t_wait_until(elapsed, &age, T_DEADLINE_MS));
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/renew", "root", body, &r), 400);
	check_golden("error_past_max_ttl", &r);
	reply_clear(&r);
	stop(&d);
}
END_TEST

struct lease_wait {
	const struct t_dev *d;
	const char *lease;
	const char *want;
};

static bool
lease_in_state(void *arg)
{
	struct lease_wait *w = arg;

	return strcmp(lease_state(w->d, w->lease), w->want) == 0;
}

static bool
lease_ttl_at_most_one(void *arg)
{
	struct lease_wait *w = arg;
	struct reply r;
	char body[640];
	bool done;

	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", w->lease);
	call(w->d, "PUT", "/v1/sys/leases/lookup", "root", body, &r);
	done = r.status == 200 && jint(r.json, "data", "ttl") <= 1;
	reply_clear(&r);
	return done;
}

START_TEST(test_lease_renew_capped_and_expiry)
{
	struct t_dev d;
	struct reply r;
	char lease[512], body[640];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/short", "root",
	    "{\"db_name\":\"pg\",\"default_ttl\":\"3s\",\"max_ttl\":\"6s\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/short", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "lease_duration", NULL), 3);
	snprintf(lease, sizeof(lease), "%s", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);

	/* At least a second later (ttl down to 1), renewing for 10s is capped below 6s. */
	struct lease_wait w = { &d, lease, "expired" };
	ck_assert(t_wait_until(lease_ttl_at_most_one, &w, T_DEADLINE_MS));
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\",\"increment\":10}", lease);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/renew", "root", body, &r), 200);
	check_golden("lease_renew_capped", &r);
	ck_assert_int_lt(jint(r.json, "lease_duration", NULL), 6);
	ck_assert_int_ge(jint(r.json, "lease_duration", NULL), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(json_object_get(r.json,
	    "warnings"), 0)), "; TTL value is capped accordingly"));
	reply_clear(&r);

	/* The lease really expires at the max TTL, and cannot be renewed after. */
	ck_assert(t_wait_until(lease_in_state, &w, T_DEADLINE_MS));
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/leases/renew", "root", body, &r), 400);
	check_golden("error_lease_expired", &r);
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_policies)
{
	struct t_dev d;
	struct reply r;
	char token[128];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/other", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/app", "root",
	    "{\"policy\":\"# app\\npath \\\"secret/data/app/*\\\" {\\n  capabilities = [\\\"read\\\"]\\n}\\n"
	    "path \\\"secret/metadata/+/\\\" { capabilities = [\\\"list\\\"] }\\n"
	    "path \\\"secret/data/app/locked\\\" { capabilities = [\\\"deny\\\"] }\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/broken", "root",
	    "{\"policy\":\"path \\\"x\\\" { capabilities = [\\\"fly\\\"] }\"}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "unknown capability"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/policy/app", "root", NULL, &r), 200);
	ck_assert_ptr_nonnull(strstr(jstr(r.json, "data", "rules"), "secret/data/app/*"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root", "{\"policies\":[\"app\"]}", &r), 200);
	snprintf(token, sizeof(token), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);

	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", token, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/other", token, NULL, &r), 403);
	check_golden("error_denied", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", token, "{\"data\":{}}", &r), 403);
	check_golden("error_denied", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/locked", token, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/secret/metadata/app", token, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/secret/metadata/app/x", token, NULL, &r), 403);
	reply_clear(&r);
	/* The default policy: the token may look itself up, not read sys/. */
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", token, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/mounts", token, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/sys/policy/root", "root", "{\"policy\":\"\"}", &r), 400);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/sys/policy/app", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", token, NULL, &r), 403);
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_methods_and_limits)
{
	struct t_dev d;
	struct reply r;
	size_t big = (1u << 20) + 4096;
	char *body = malloc(big + 1);

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/sys/health", NULL, NULL, &r), 405);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/create", "root", NULL, &r), 405);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "OPTIONS", "/v1/secret/data/x", "root", NULL, &r), 405);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/x", "root", "{not json", &r), 400);
	reply_clear(&r);
	memset(body, ' ', big);
	body[0] = '{';
	body[big - 1] = '}';
	body[big] = '\0';
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/x", "root", body, &r), 413);
	/* Vault's error shape, also for what the HTTP layer answers by itself. */
	ck_assert_msg(r.json != NULL && json_is_array(json_object_get(r.json, "errors")) &&
		      json_array_size(json_object_get(r.json, "errors")) == 1,
		      "413 body is not {\"errors\":[...]}");
	reply_clear(&r);
	/* The server is still fine afterwards. */
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 200);
	reply_clear(&r);
	free(body);
	stop(&d);
}
END_TEST

START_TEST(test_sealed)
{
	struct t_dev d;
	struct reply r;

	start(&d, (const char *[]){ "--sealed", NULL });
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 503);
	ck_assert(json_is_true(json_object_get(r.json, "sealed")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health?sealedcode=200", NULL, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/x", "root", NULL, &r), 503);
	check_golden("error_sealed", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/unseal", NULL, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/unseal", "root", NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/x", "root", NULL, &r), 404);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/seal", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/x", "root", NULL, &r), 503);
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_faults)
{
	struct t_dev d;
	struct reply r;
	int64_t t0;

	start(&d, (const char *[]){ "--error-rate", "1", "--error-status", "502", NULL });
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 502);
	ck_assert(json_is_array(json_object_get(r.json, "errors")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/_latchkey/faults", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "error_status", NULL), 502);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/faults", "root",
	    "{\"error_rate\":1,\"error_status\":429,\"paths\":\"secret/\",\"retry_after\":7}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call_headers(&d, "GET", "/v1/secret/data/x",
	    (const char *[]){ "X-Vault-Token: root", NULL }, NULL, &r), 429);
	ck_assert_str_eq(r.retry_after, "7");
	ck_assert_ptr_nonnull(strstr(r.raw, "rate limit quota exceeded"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/faults", "root", "{\"bogus\":1}", &r), 400);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/faults", NULL, "{\"error_rate\":0}", &r), 403);
	reply_clear(&r);
	/* Drop: the connection closes without an answer. */
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/faults", "root",
	    "{\"reset\":true,\"drop_rate\":1,\"paths\":\"secret/\"}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/x", "root", NULL, &r), 0);
	reply_clear(&r);
	/* Latency. */
	ck_assert_int_eq(call(&d, "POST", "/_latchkey/faults", "root",
	    "{\"reset\":true,\"latency_ms\":300}", &r), 200);
	reply_clear(&r);
	t0 = lk_now_mono_ms();
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 200);
	ck_assert_int_ge(lk_now_mono_ms() - t0, 300);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/_latchkey/faults", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "latency_ms", NULL), 0);
	reply_clear(&r);
	stop(&d);
}
END_TEST

/* A path that names a mount without its trailing slash ("secret", "auth/approle") has
 * nothing below the mount: the query string that follows the path in the request buffer
 * must not be read as the rest of the path (it would skip the policy check). */
START_TEST(test_mount_root_paths)
{
	struct t_dev d;
	struct reply r;
	char token[128];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root",
	    "{\"data\":{\"password\":\"pw-root-only-7c1e\"}}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/mountroot", "root",
	    "{\"policy\":\"path \\\"secret\\\" { capabilities = [\\\"read\\\"] }\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root",
	    "{\"policies\":[\"mountroot\"]}", &r), 200);
	snprintf(token, sizeof(token), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", token, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret?data/app/db", token, NULL, &r), 404);
	ck_assert_ptr_null(strstr(r.raw, "pw-root-only"));
	ck_assert_ptr_nonnull(strstr(r.raw, "no handler for route \\\"secret\\\""));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret", "root", NULL, &r), 404);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database?creds/x", "root", NULL, &r), 404);
	reply_clear(&r);
	/* Only auth/approle/login itself is open. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle?login", NULL, "{\"role_id\":\"x\"}", &r), 403);
	check_golden("error_permission_denied", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL, "{\"role_id\":\"x\"}", &r), 400);
	check_golden("error_approle", &r);
	reply_clear(&r);
	stop(&d);
}
END_TEST

/* A body that is not JSON: 400 in Vault's words, never quoting the body (it may hold a
 * secret ID, a JWT or secret data). */
START_TEST(test_bad_json_not_echoed)
{
	struct t_dev d;
	struct reply r;

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/approle/login", NULL,
	    "{\"role_id\": hunter2secret}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "failed to parse JSON input"));
	ck_assert_msg(strstr(r.raw, "hunter") == NULL, "%s", r.raw);
	ck_assert(json_is_array(json_object_get(r.json, "errors")));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app", "root",
	    "{\"data\":{\"password\":\"s3cr3t-value\"} trailing-s3cr3t", &r), 400);
	ck_assert_msg(strstr(r.raw, "s3cr3t") == NULL, "%s", r.raw);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app", "root", "[1,2]", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "expected a JSON object"));
	reply_clear(&r);
	stop(&d);
}
END_TEST

static bool
exited(void *arg)
{
	return !t_alive(arg);
}

START_TEST(test_cli)
{
	struct t_dev d;
	struct t_proc p;
	char *dir = t_tmpdir(), log[600], *text;
	int status;

	snprintf(log, sizeof(log), "%s/bad.log", dir);
	ck_assert_int_eq(t_spawn(&p, (const char *[]){ t_latchkey_bin(), "dev", "--bogus", NULL },
	    NULL, log), 0);
	ck_assert(t_wait_until(exited, &p, T_DEADLINE_MS));
	status = -(p.pid + 1);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 2);
	text = t_read_file(log);
	ck_assert_ptr_nonnull(strstr(text, "unknown option '--bogus'"));
	free(text);
	t_rmrf(dir);
	free(dir);

	/* SIGTERM stops it cleanly with status 0; the banner names the address and token. */
	start(&d, NULL);
	ck_assert(t_wait_log(&d.proc, "export VAULT_ADDR='http://127.0.0.1:", T_DEADLINE_MS, NULL, 0));
	ck_assert(t_wait_log(&d.proc, "Root Token: root", T_DEADLINE_MS, NULL, 0));
	status = t_stop(&d.proc, SIGTERM, 10000);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	stop(&d);
}
END_TEST

/* ---- what real clients found ---- */

/* A token with the given policies; its ID into out. */
static void
new_token(const struct t_dev *d, const char *token, const char *body, char *out, size_t outlen)
{
	struct reply r;

	ck_assert_int_eq(call(d, "POST", "/v1/auth/token/create", token, body, &r), 200);
	snprintf(out, outlen, "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
}

START_TEST(test_json_policies)
{
	struct t_dev d;
	struct reply r;
	char token[128];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/other", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	/* sys/policy with a JSON document, sys/policies/acl with "path" as a list. */
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policy/jread", "root", json_pack("{s:s}", "policy",
	    "{\"path\":{\"secret/data/app/*\":{\"capabilities\":[\"read\"]}}}"), &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policies/acl/jlist", "root", json_pack("{s:s}", "policy",
	    "{\"name\":\"jlist\",\"path\":[{\"secret/metadata/*\":{\"capabilities\":[\"list\"]}},"
	    "{\"secret/data/app/locked\":{\"policy\":\"deny\"}}]}"), &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/policies/acl/jread", "root", NULL, &r), 200);
	ck_assert_ptr_nonnull(strstr(jstr(r.json, "data", "policy"), "\"capabilities\":[\"read\"]"));
	reply_clear(&r);
	new_token(&d, "root", "{\"policies\":[\"jread\",\"jlist\"]}", token, sizeof(token));
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", token, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/other", token, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/locked", token, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "LIST", "/v1/secret/metadata/app", token, NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", token, "{\"data\":{}}", &r), 403);
	reply_clear(&r);

	/* Errors name what is wrong and never quote the document. */
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policy/bad", "root", json_pack("{s:s}", "policy",
	    "{\"path\": hunter2-in-policy}"), &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "failed to parse policy: policy: JSON: invalid syntax at line 1"));
	ck_assert_ptr_null(strstr(r.raw, "hunter2"));
	reply_clear(&r);
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policy/bad", "root", json_pack("{s:s}", "policy",
	    "{\"path\":{\"a/*\":{\"capabilities\":[\"fly\"]}}}"), &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "unknown capability \\\"fly\\\""));
	reply_clear(&r);
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policy/bad", "root", json_pack("{s:s}", "policy",
	    "{\"paths\":{\"s3cr3t-key/*\":{}}}"), &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "unknown top-level key"));
	ck_assert_ptr_null(strstr(r.raw, "s3cr3t"));
	reply_clear(&r);
	ck_assert_int_eq(call_json(&d, "PUT", "/v1/sys/policy/bad", "root", json_pack("{s:s}", "policy",
	    "{\"path\":{\"a/*\":{\"capabilities\":\"read\"}}}"), &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "capabilities must be a list of strings"));
	reply_clear(&r);
	stop(&d);
}
END_TEST

START_TEST(test_list_query_parsebool)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
	static const char *const bad[] = { "yes", "2", "tRuE", "on" };
	struct t_dev d;
	struct reply r;
	char path[128];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	for (size_t i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "/v1/secret/metadata/app?list=%s", yes[i]);
		ck_assert_int_eq(call(&d, "GET", path, "root", NULL, &r), 200);
		ck_assert_msg(json_is_array(json_object_get(json_object_get(r.json, "data"), "keys")),
		    "list=%s: %s", yes[i], r.raw);
		reply_clear(&r);
		/* a false value is a plain read: of metadata/app, which holds no secret */
		snprintf(path, sizeof(path), "/v1/secret/metadata/app/db?list=%s", no[i]);
		ck_assert_int_eq(call(&d, "GET", path, "root", NULL, &r), 200);
		ck_assert_int_eq(jint(r.json, "data", "current_version"), 1);
		reply_clear(&r);
	}
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "/v1/secret/metadata/app?list=%s", bad[i]);
		ck_assert_int_eq(call(&d, "GET", path, "root", NULL, &r), 400);
		check_golden("error_empty", &r);
		reply_clear(&r);
	}
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/metadata/app/db?list=", "root", NULL, &r), 200);
	reply_clear(&r);
	stop(&d);
}
END_TEST

static long
patch(const struct t_dev *d, const char *path, const char *token, const char *type, const char *body,
      struct reply *r)
{
	char tok[160], ct[160];

	snprintf(tok, sizeof(tok), "X-Vault-Token: %s", token);
	snprintf(ct, sizeof(ct), "Content-Type: %s", type);
	return call_headers(d, "PATCH", path, (const char *[]){ tok, ct, NULL }, body, r);
}

START_TEST(test_kv2_patch)
{
	struct t_dev d;
	struct reply r;
	char updater[128], patcher[128];
	const json_t *data;

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app/db", "root",
	    "{\"data\":{\"user\":\"u\",\"password\":\"p1\",\"nested\":{\"a\":1,\"b\":2}}}", &r), 200);
	reply_clear(&r);
	/* Vault's HTTP layer wants a merge patch: no type is 400, another type 415. */
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/json",
	    "{\"data\":{\"password\":\"p2\"}}", &r), 415);
	ck_assert_ptr_nonnull(strstr(r.raw, "PATCH requires Content-Type of application/merge-patch+json"));
	reply_clear(&r);
	ck_assert_int_eq(call_headers(&d, "PATCH", "/v1/secret/data/app/db",
	    (const char *[]){ "X-Vault-Token: root", "Content-Type:", NULL }, NULL, &r), 400);
	reply_clear(&r);
	/* A merge patch of the current version: null deletes, objects merge. */
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/merge-patch+json; charset=utf-8",
	    "{\"data\":{\"password\":\"p2\",\"user\":null,\"nested\":{\"b\":null,\"c\":3}}}", &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "version"), 2);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app/db", "root", NULL, &r), 200);
	data = json_object_get(json_object_get(r.json, "data"), "data");
	ck_assert_str_eq(json_string_value(json_object_get(data, "password")), "p2");
	ck_assert_ptr_null(json_object_get(data, "user"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(data, "nested"), "a")), 1);
	ck_assert_ptr_null(json_object_get(json_object_get(data, "nested"), "b"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(data, "nested"), "c")), 3);
	reply_clear(&r);
	/* options.cas is honoured. */
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/merge-patch+json",
	    "{\"data\":{\"x\":1},\"options\":{\"cas\":1}}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "check-and-set parameter did not match the current version"));
	reply_clear(&r);
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/merge-patch+json",
	    "{\"data\":{\"x\":1},\"options\":{\"cas\":2}}", &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "version"), 3);
	reply_clear(&r);
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/merge-patch+json",
	    "{\"options\":{}}", &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "no data provided"));
	reply_clear(&r);
	/* No secret: 404 without a body. A deleted current version: 404 with its metadata. */
	ck_assert_int_eq(patch(&d, "/v1/secret/data/nothing", "root", "application/merge-patch+json",
	    "{\"data\":{\"x\":1}}", &r), 404);
	ck_assert(r.raw == NULL || r.raw[0] == '\0');
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/secret/data/app/db", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", "root", "application/merge-patch+json",
	    "{\"data\":{\"x\":2}}", &r), 404);
	ck_assert_int_eq(jint(r.json, "data", "version"), 3);
	ck_assert_str_ne(jstr(r.json, "data", "deletion_time"), "");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/undelete/app/db", "root", "{\"versions\":[3]}", &r), 204);
	reply_clear(&r);

	/* The patch capability: update alone does not allow it. */
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/upd", "root",
	    "{\"policy\":\"path \\\"secret/data/*\\\" { capabilities = [\\\"update\\\", \\\"read\\\"] }\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/pat", "root",
	    "{\"policy\":\"path \\\"secret/data/*\\\" { capabilities = [\\\"patch\\\"] }\"}", &r), 204);
	reply_clear(&r);
	new_token(&d, "root", "{\"policies\":[\"upd\"]}", updater, sizeof(updater));
	new_token(&d, "root", "{\"policies\":[\"pat\"]}", patcher, sizeof(patcher));
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", updater, "application/merge-patch+json",
	    "{\"data\":{\"x\":3}}", &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(patch(&d, "/v1/secret/data/app/db", patcher, "application/merge-patch+json",
	    "{\"data\":{\"x\":3}}", &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "version"), 4);
	reply_clear(&r);
	stop(&d);
}
END_TEST

static long
creds(const struct t_dev *d, const char *token, char *lease, size_t leaselen)
{
	struct reply r;
	long st = call(d, "GET", "/v1/database/creds/app", token, NULL, &r);

	if (st == 200)
		snprintf(lease, leaselen, "%s", jstr(r.json, "lease_id", NULL));
	reply_clear(&r);
	return st;
}

/* Revoking a token revokes every lease it created and its child tokens (and theirs), by
 * token, by accessor or itself; the legacy sys/revoke-prefix works beside the new one. */
START_TEST(test_token_revocation_tree)
{
	struct t_dev d;
	struct reply r;
	char parent[128], child[128], grandchild[128], other[128], accessor[128];
	char lp[512], lc[512], lg[512], lo[512], lr[512], body[256];

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/app", "root", "{\"db_name\":\"pg\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/policy/creator", "root",
	    "{\"policy\":\"path \\\"auth/token/create\\\" { capabilities = [\\\"update\\\"] }\\n"
	    "path \\\"database/creds/*\\\" { capabilities = [\\\"read\\\"] }\"}", &r), 204);
	reply_clear(&r);
	new_token(&d, "root", "{\"policies\":[\"creator\"]}", parent, sizeof(parent));
	new_token(&d, parent, "{\"policies\":[\"creator\"]}", child, sizeof(child));
	new_token(&d, child, "{\"policies\":[\"creator\"]}", grandchild, sizeof(grandchild));
	ck_assert_int_eq(creds(&d, parent, lp, sizeof(lp)), 200);
	ck_assert_int_eq(creds(&d, child, lc, sizeof(lc)), 200);
	ck_assert_int_eq(creds(&d, grandchild, lg, sizeof(lg)), 200);
	ck_assert_int_eq(call_json(&d, "POST", "/v1/auth/token/revoke", "root",
	    json_pack("{s:s}", "token", parent), &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lp), "revoked");
	ck_assert_str_eq(lease_state(&d, lc), "revoked");
	ck_assert_str_eq(lease_state(&d, lg), "revoked");
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", grandchild, NULL, &r), 403);
	check_golden("error_invalid_token", &r);
	reply_clear(&r);

	/* By accessor: the token and its leases. lookup-accessor does not show the token. */
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root", "{\"policies\":[\"creator\"]}", &r), 200);
	snprintf(other, sizeof(other), "%s", jstr(r.json, "auth", "client_token"));
	snprintf(accessor, sizeof(accessor), "%s", jstr(r.json, "auth", "accessor"));
	reply_clear(&r);
	ck_assert_int_eq(creds(&d, other, lo, sizeof(lo)), 200);
	snprintf(body, sizeof(body), "{\"accessor\":\"%s\"}", accessor);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/lookup-accessor", "root", body, &r), 200);
	ck_assert_str_eq(jstr(r.json, "data", "id"), "");
	ck_assert_str_eq(jstr(r.json, "data", "accessor"), accessor);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/revoke-accessor", "root", body, &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lo), "revoked");
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", other, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/revoke-accessor", "root", body, &r), 400);
	reply_clear(&r);

	/* revoke-self takes the children along too. */
	new_token(&d, "root", "{\"policies\":[\"creator\"]}", parent, sizeof(parent));
	new_token(&d, parent, "{\"policies\":[\"creator\"]}", child, sizeof(child));
	ck_assert_int_eq(creds(&d, child, lc, sizeof(lc)), 200);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/revoke-self", parent, NULL, &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lc), "revoked");
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", child, NULL, &r), 403);
	reply_clear(&r);

	/* revoke-orphan: the children stay, as orphans, and keep their leases. */
	new_token(&d, "root", "{\"policies\":[\"creator\"]}", parent, sizeof(parent));
	new_token(&d, parent, "{\"policies\":[\"creator\"]}", child, sizeof(child));
	ck_assert_int_eq(creds(&d, child, lc, sizeof(lc)), 200);
	ck_assert_int_eq(call_json(&d, "POST", "/v1/auth/token/revoke-orphan", "root",
	    json_pack("{s:s}", "token", parent), &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lc), "active");
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", child, NULL, &r), 200);
	ck_assert(json_is_true(json_object_get(json_object_get(r.json, "data"), "orphan")));
	reply_clear(&r);

	/* The legacy sys/revoke-prefix/<prefix>. */
	ck_assert_int_eq(creds(&d, "root", lr, sizeof(lr)), 200);
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/revoke-prefix/database/creds/app", "root", NULL, &r), 204);
	reply_clear(&r);
	ck_assert_str_eq(lease_state(&d, lr), "revoked");
	ck_assert_str_eq(lease_state(&d, lc), "revoked");
	stop(&d);
}
END_TEST

struct token_wait {
	const struct t_dev *d;
	const char *token;
	long last_status;
	json_int_t min_ttl;      /* the smallest ttl a 200 lookup showed */
};

static bool
token_gone(void *arg)
{
	struct token_wait *w = arg;
	struct reply r;

	w->last_status = call(w->d, "GET", "/v1/auth/token/lookup-self", w->token, NULL, &r);
	if (w->last_status == 200 && jint(r.json, "data", "ttl") < w->min_ttl)
		w->min_ttl = jint(r.json, "data", "ttl");
	reply_clear(&r);
	return w->last_status == 403;
}

/* A token created with explicit_max_ttl is gone once it reaches it, however it is renewed;
 * a token that expires never shows a ttl of 0 (the root token's, which never expires). */
START_TEST(test_explicit_max_ttl)
{
	struct t_dev d;
	struct reply r;
	char token[128];
	struct token_wait w = { &d, token, 0, 1000 };

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/create", "root",
	    "{\"policies\":[\"default\"],\"ttl\":\"1h\",\"explicit_max_ttl\":4}", &r), 200);
	ck_assert_int_eq(jint(r.json, "auth", "lease_duration"), 4);
	snprintf(token, sizeof(token), "%s", jstr(r.json, "auth", "client_token"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/auth/token/renew-self", token, "{\"increment\":\"1h\"}", &r), 200);
	ck_assert_int_le(jint(r.json, "auth", "lease_duration"), 4);
	ck_assert_int_ge(jint(r.json, "auth", "lease_duration"), 1);
	ck_assert_ptr_nonnull(json_array_get(json_object_get(r.json, "warnings"), 0));
	reply_clear(&r);
	ck_assert(t_wait_until(token_gone, &w, T_DEADLINE_MS));
	ck_assert_int_ge(w.min_ttl, 1);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", token, NULL, &r), 403);
	check_golden("error_invalid_token", &r);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/auth/token/lookup-self", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "data", "ttl"), 0);
	reply_clear(&r);
	stop(&d);
}
END_TEST

/* Expired leases are ended by the sweeper, with no request to notice them (the admin
 * lease list does not sweep). */
START_TEST(test_lease_sweeper)
{
	struct t_dev d;
	struct reply r;
	char lease[512];
	struct lease_wait w = { &d, lease, "expired" };

	start(&d, NULL);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/app", "root",
	    "{\"db_name\":\"pg\",\"default_ttl\":1,\"max_ttl\":1}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(creds(&d, "root", lease, sizeof(lease)), 200);
	ck_assert(t_wait_until(lease_in_state, &w, T_DEADLINE_MS));
	stop(&d);
}
END_TEST

/* Faults changed at run time: an answer cut mid-body (headers and part of the body, then
 * the connection closes), 429 with the Retry-After of --retry-after, per-path scoping. */
START_TEST(test_fault_cut_and_retry_after)
{
	struct t_dev d;
	struct reply r;

	start(&d, (const char *[]){ "--retry-after", "9", NULL });
	ck_assert_int_eq(call(&d, "POST", "/v1/secret/data/app", "root", "{\"data\":{\"k\":\"v\"}}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/_latchkey/faults", "root",
	    "{\"cut_rate\":1,\"paths\":\"secret/\"}", &r), 200);
	ck_assert(json_real_value(json_object_get(r.json, "cut_rate")) == 1.0);
	ck_assert_int_eq(jint(r.json, "retry_after", NULL), 9);
	reply_clear(&r);
	/* The status and part of the body arrive, then the connection closes: the transfer
	 * fails (t_http answers 0) with a body that is not JSON. */
	ck_assert_int_eq(call_headers(&d, "GET", "/v1/secret/data/app",
	    (const char *[]){ "X-Vault-Token: root", NULL }, NULL, &r), 0);
	ck_assert_ptr_nonnull(r.raw);
	ck_assert_msg(strncmp(r.raw, "{\"request_id\":", 14) == 0, "%s", r.raw);
	ck_assert_ptr_null(r.json);
	reply_clear(&r);
	/* Outside the paths, answers are whole. */
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/health", NULL, NULL, &r), 200);
	reply_clear(&r);
	/* An error that is cut: 429 with its Retry-After header, then the cut body. */
	ck_assert_int_eq(call(&d, "PUT", "/_latchkey/faults", "root",
	    "{\"error_rate\":1,\"error_status\":429}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call_headers(&d, "GET", "/v1/secret/data/app",
	    (const char *[]){ "X-Vault-Token: root", NULL }, NULL, &r), 0);
	ck_assert_str_eq(r.retry_after, "9");
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/_latchkey/faults", "root", "{\"cut_rate\":0}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call_headers(&d, "GET", "/v1/secret/data/app",
	    (const char *[]){ "X-Vault-Token: root", NULL }, NULL, &r), 429);
	ck_assert_str_eq(r.retry_after, "9");
	ck_assert_ptr_nonnull(strstr(r.raw, "rate limit quota exceeded"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "PUT", "/_latchkey/faults", "root", "{\"cut_rate\":2}", &r), 400);
	reply_clear(&r);
	/* The same endpoint under /v1/sys/dev/faults, which no fault reaches. */
	ck_assert_int_eq(call(&d, "PUT", "/v1/sys/dev/faults", "root",
	    "{\"reset\":true,\"error_rate\":1,\"error_status\":503,\"sealed\":true}", &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/dev/faults", "root", NULL, &r), 200);
	ck_assert_int_eq(jint(r.json, "error_status", NULL), 503);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/sys/dev/faults", NULL, NULL, &r), 403);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app", "root", NULL, &r), 503);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "DELETE", "/v1/sys/dev/faults", "root", NULL, &r), 200);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/secret/data/app", "root", NULL, &r), 200);
	reply_clear(&r);
	stop(&d);
}
END_TEST

/* A connection_url that cannot be reached: the error Vault gives, never the password. */
START_TEST(test_database_unreachable)
{
	struct t_dev d;
	struct reply r;
	char body[1024];

	start(&d, NULL);
	snprintf(body, sizeof(body), "{\"plugin_name\":\"postgresql-database-plugin\","
	    "\"connection_url\":\"host=%s/no-such-dir user={{username}} password={{password}} dbname=postgres\","
	    "\"username\":\"vault\",\"password\":\"pw-unreachable-77c1\",\"allowed_roles\":[\"app\"]}", d.dir);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/pg", "root", body, &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "error creating database object: error verifying connection: "
	    "failed to connect to the database"));
	ck_assert_ptr_null(strstr(r.raw, "pw-unreachable"));
	reply_clear(&r);
	/* Not verified at write time: the creds read fails, 502, no lease made. */
	snprintf(body + strlen(body) - 1, sizeof(body) - strlen(body) + 1, ",\"verify_connection\":false}");
	ck_assert_int_eq(call(&d, "POST", "/v1/database/config/pg", "root", body, &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/app", "root",
	    "{\"db_name\":\"pg\",\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}';\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "POST", "/v1/database/roles/other", "root", "{\"db_name\":\"pg\"}", &r), 204);
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/app", "root", NULL, &r), 502);
	ck_assert_ptr_nonnull(strstr(r.raw, "failed to connect to the database"));
	ck_assert_ptr_null(strstr(r.raw, "pw-unreachable"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/v1/database/creds/other", "root", NULL, &r), 400);
	ck_assert_ptr_nonnull(strstr(r.raw, "\\\"other\\\" is not an allowed role"));
	reply_clear(&r);
	ck_assert_int_eq(call(&d, "GET", "/_latchkey/leases", "root", NULL, &r), 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "leases")), 0);
	reply_clear(&r);
	stop(&d);
}
END_TEST

static Suite *
devserver_suite(void)
{
	Suite *s = suite_create("devserver");
	TCase *tc = tcase_create("dev");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_health);
	tcase_add_test(tc, test_kv2);
	tcase_add_test(tc, test_kv1);
	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_approle);
	tcase_add_test(tc, test_kubernetes);
	tcase_add_test(tc, test_database);
	tcase_add_test(tc, test_lease_renew_capped_and_expiry);
	tcase_add_test(tc, test_policies);
	tcase_add_test(tc, test_methods_and_limits);
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_cli);
	tcase_add_test(tc, test_mount_root_paths);
	tcase_add_test(tc, test_bad_json_not_echoed);
	tcase_add_test(tc, test_json_policies);
	tcase_add_test(tc, test_list_query_parsebool);
	tcase_add_test(tc, test_kv2_patch);
	tcase_add_test(tc, test_token_revocation_tree);
	tcase_add_test(tc, test_explicit_max_ttl);
	tcase_add_test(tc, test_lease_sweeper);
	tcase_add_test(tc, test_fault_cut_and_retry_after);
	tcase_add_test(tc, test_database_unreachable);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(devserver_suite());
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
