/* check_vault.c — the backend client's parsing and classification, on literal bodies:
 * the response envelope, typed results (login, lookup, KV v1/v2, leases, renewals), both
 * 404 forms, mistyped fields, warnings, capped renewals, Retry-After, error classes,
 * path encoding, redaction and configuration. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "crypto/secret.h"
#include "testutil.h"
#include "vault/client.h"
#include "http/http.h"
#include "vault/error.h"
#include "vault/response.h"
#include "vault/vault.h"

static int
parse(long status, const char *body, struct lk_vault_response *r, struct lk_vault_error *err)
{
	memset(r, 0, sizeof(*r));
	lk_vault_error_clear(err);
	return lk_vault_response_parse(status, body, strlen(body), r, err);
}

static int
http_error(long status, const char *body, struct lk_vault_error *err)
{
	return lk_vault_response_error(err, status, body, strlen(body), -1);
}

/* ---- envelope ---- */

START_TEST(test_envelope_kv2)
{
	static const char body[] =
	    "{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
	    "\"data\":{\"data\":{\"username\":\"u\",\"password\":\"p\",\"n\":{\"deep\":1}},"
	    "\"metadata\":{\"created_time\":\"2018-03-22T02:24:06.945319214Z\","
	    "\"custom_metadata\":{\"owner\":\"jdoe\"},\"deletion_time\":\"\",\"destroyed\":false,"
	    "\"version\":2}},\"wrap_info\":null,\"warnings\":null,\"auth\":null,\"mount_type\":\"kv\"}";
	struct lk_vault_response r;
	struct lk_vault_kv_secret s;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, body, &r, &err), 0);
	ck_assert_ptr_null(r.lease_id);
	ck_assert_ptr_null(r.auth);
	ck_assert_ptr_null(r.warnings);
	ck_assert_ptr_nonnull(r.data);
	ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), 0);
	ck_assert_int_eq(s.version, 2);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "password")), "p");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(s.data, "n"), "deep")), 1);
	ck_assert_str_eq(s.created_time, "2018-03-22T02:24:06.945319214Z");
	ck_assert_ptr_null(s.deletion_time);
	ck_assert(!s.destroyed);
	ck_assert_str_eq(json_string_value(json_object_get(s.custom_metadata, "owner")), "jdoe");
	lk_vault_kv_secret_clear(&s);
	lk_vault_response_clear(&r);
	ck_assert_ptr_null(r.data);
}
END_TEST

START_TEST(test_envelope_kv1_and_dynamic)
{
	struct lk_vault_response r;
	struct lk_vault_kv_secret s;
	struct lk_vault_lease_secret l;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, "{\"data\":{\"foo\":\"bar\",\"ttl\":\"1h\"},\"lease_id\":\"\","
	    "\"lease_duration\":3600,\"renewable\":false,\"auth\":null}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv1(&r, &s, &err), 0);
	ck_assert_int_eq(s.lease_duration_s, 3600);
	ck_assert_int_eq(s.version, 0);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "foo")), "bar");
	lk_vault_kv_secret_clear(&s);
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"request_id\":\"x\",\"lease_id\":"
	    "\"database/creds/my-role/2f6a614c\",\"renewable\":true,\"lease_duration\":3600,"
	    "\"data\":{\"username\":\"v-token\",\"password\":\"pw\"},\"wrap_info\":null,"
	    "\"warnings\":[\"w1\"],\"auth\":null}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_lease(&r, &l, &err), 0);
	ck_assert_str_eq(l.lease_id, "database/creds/my-role/2f6a614c");
	ck_assert_int_eq(l.lease_duration_s, 3600);
	ck_assert(l.renewable);
	ck_assert_str_eq(json_string_value(json_object_get(l.data, "username")), "v-token");
	ck_assert_int_eq(json_array_size(l.warnings), 1);
	ck_assert_str_eq(json_string_value(json_array_get(l.warnings, 0)), "w1");
	lk_vault_lease_secret_clear(&l);
	lk_vault_response_clear(&r);

	/* A 204: no body at all. */
	ck_assert_int_eq(parse(204, "", &r, &err), 0);
	ck_assert_int_eq(r.status, 204);
	ck_assert_ptr_null(r.data);
	ck_assert_int_eq(lk_vault_response_lease(&r, &l, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data: expected an object");
	lk_vault_response_clear(&r);
}
END_TEST

START_TEST(test_envelope_login)
{
	static const char body[] =
	    "{\"auth\":{\"client_token\":\"s.tokenvalue\",\"accessor\":\"acc1\","
	    "\"policies\":[\"default\",\"app\"],\"token_policies\":[\"default\",\"app\"],"
	    "\"metadata\":{\"role\":\"my-role\"},\"lease_duration\":2764800,\"renewable\":true,"
	    "\"entity_id\":\"e\",\"token_type\":\"service\",\"orphan\":true,\"num_uses\":0},"
	    "\"lease_id\":\"\",\"lease_duration\":0,\"renewable\":false,\"data\":null,"
	    "\"warnings\":null}";
	struct lk_vault_response r;
	struct lk_vault_token_info t;
	struct lk_secret *token = NULL;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, body, &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), 0);
	ck_assert_ptr_nonnull(token);
	ck_assert_str_eq(lk_secret_cstr(token), "s.tokenvalue");
	ck_assert_str_eq(t.accessor, "acc1");
	ck_assert_int_eq(t.lease_duration_s, 2764800);
	ck_assert(t.renewable);
	ck_assert(t.orphan);
	ck_assert_str_eq(t.token_type, "service");
	ck_assert_int_eq(json_array_size(t.policies), 2);
	ck_assert_str_eq(json_string_value(json_array_get(t.policies, 1)), "app");
	lk_vault_token_info_clear(&t);
	lk_secret_free(token);
	lk_vault_response_clear(&r);
}
END_TEST

START_TEST(test_lookup_self)
{
	struct lk_vault_response r;
	struct lk_vault_token_info t;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, "{\"data\":{\"accessor\":\"a\",\"creation_ttl\":2764800,"
	    "\"expire_time\":\"2018-05-19T11:35:54.466476215-04:00\",\"id\":\"s.secret\","
	    "\"policies\":[\"default\"],\"renewable\":true,\"ttl\":2764790,\"type\":\"service\","
	    "\"period\":3600}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_lookup(&r, &t, &err), 0);
	ck_assert_int_eq(t.lease_duration_s, 2764790);
	ck_assert_int_eq(t.expire_time_ms, 1526744154466LL);
	ck_assert_int_eq(t.period_s, 3600);
	ck_assert(t.renewable);
	ck_assert(!t.never_expires);
	lk_vault_token_info_clear(&t);
	lk_vault_response_clear(&r);

	/* A root token never expires: expire_time null. */
	ck_assert_int_eq(parse(200, "{\"data\":{\"ttl\":0,\"expire_time\":null,"
	    "\"policies\":[\"root\"],\"renewable\":false}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_lookup(&r, &t, &err), 0);
	ck_assert_int_eq(t.expire_time_ms, 0);
	ck_assert(t.never_expires);
	lk_vault_token_info_clear(&t);
	lk_vault_response_clear(&r);

	/* A ttl of 0 with an expire_time: no time left, not "never". */
	ck_assert_int_eq(parse(200, "{\"data\":{\"ttl\":0,\"expire_time\":"
	    "\"2026-11-26T07:00:00.5Z\",\"policies\":[\"default\"],\"renewable\":true}}", &r,
	    &err), 0);
	ck_assert_int_eq(lk_vault_response_lookup(&r, &t, &err), 0);
	ck_assert_int_eq(t.lease_duration_s, 0);
	ck_assert(!t.never_expires);
	lk_vault_token_info_clear(&t);
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":{\"ttl\":5,\"expire_time\":\"tomorrow\"}}", &r,
	    &err), 0);
	ck_assert_int_eq(lk_vault_response_lookup(&r, &t, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.expire_time: expected an RFC 3339 time or null");
	lk_vault_response_clear(&r);
}
END_TEST

/* ---- mistyped and missing fields ---- */

static void
expect_parse_error(const char *body, const char *msg)
{
	struct lk_vault_response r;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, body, &r, &err), -EBADMSG);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_INVALID);
	ck_assert(!err.retryable);
	ck_assert_str_eq(err.base.msg, msg);
}

START_TEST(test_mistyped_envelope)
{
	expect_parse_error("{\"lease_duration\":\"3600\"}",
	    "lease_duration: expected a non-negative integer");
	expect_parse_error("{\"lease_duration\":-1}",
	    "lease_duration: expected a non-negative integer");
	expect_parse_error("{\"lease_id\":5}", "lease_id: expected a string");
	expect_parse_error("{\"renewable\":\"yes\"}", "renewable: expected a boolean");
	expect_parse_error("{\"data\":[1,2]}", "data: expected an object or null");
	expect_parse_error("{\"auth\":\"x\"}", "auth: expected an object or null");
	expect_parse_error("{\"warnings\":[\"ok\",3]}", "warnings: expected an array of strings");
	expect_parse_error("{\"warnings\":\"one\"}", "warnings: expected an array of strings");
	expect_parse_error("[1,2,3]", "response body: expected a JSON object");
}
END_TEST

/* A KV value may hold "\u0000": kept whole, length and bytes. The envelope's own strings
 * (lease_id, client_token, warnings, policies) are C strings and refuse one by name; a
 * key cannot hold one, and the error says so rather than "not valid JSON". */
START_TEST(test_nul_bytes)
{
	static const char kv[] =
	    "{\"data\":{\"data\":{\"blob\":\"a\\u0000b\",\"name\":\"plain\"},"
	    "\"metadata\":{\"version\":3}}}";
	struct lk_vault_response r;
	struct lk_vault_kv_secret s;
	struct lk_vault_token_info t;
	struct lk_secret *token = NULL;
	struct lk_vault_error err;
	const json_t *blob;

	ck_assert_int_eq(parse(200, kv, &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), 0);
	blob = json_object_get(s.data, "blob");
	ck_assert(json_is_string(blob));
	ck_assert_uint_eq(json_string_length(blob), 3);
	ck_assert_mem_eq(json_string_value(blob), "a\0b", 3);
	ck_assert_str_eq(json_string_value(json_object_get(s.data, "name")), "plain");
	lk_vault_kv_secret_clear(&s);
	lk_vault_response_clear(&r);

	expect_parse_error("{\"lease_id\":\"db/creds/x\\u0000y\"}",
	    "lease_id: expected a string without NUL bytes");
	expect_parse_error("{\"warnings\":[\"ok\",\"a\\u0000\"]}",
	    "warnings: expected an array of strings without NUL bytes");
	expect_parse_error("{\"data\":{\"a\\u0000b\":\"x\"}}",
	    "response body: a key holds a NUL byte (\\u0000), which latchkey cannot represent "
	    "(line 1, column 19)");

	ck_assert_int_eq(parse(200, "{\"auth\":{\"client_token\":\"hvs.a\\u0000b\","
	    "\"lease_duration\":1}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "auth.client_token: expected a string without NUL bytes");
	ck_assert_ptr_null(token);
	lk_vault_response_clear(&r);
	ck_assert_int_eq(parse(200, "{\"auth\":{\"client_token\":\"hvs.ab\",\"lease_duration\":1,"
	    "\"policies\":[\"default\",\"a\\u0000\"]}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg,
	    "auth.policies: expected an array of strings without NUL bytes");
	lk_vault_response_clear(&r);
	ck_assert_int_eq(parse(200, "{\"data\":{\"ttl\":5,"
	    "\"expire_time\":\"2026-01-01T00:00:00Z\\u0000junk\"}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_lookup(&r, &t, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.expire_time: expected an RFC 3339 time or null");
	lk_vault_response_clear(&r);
}
END_TEST

START_TEST(test_mistyped_typed_fields)
{
	struct lk_vault_response r;
	struct lk_vault_token_info t;
	struct lk_vault_kv_secret s;
	struct lk_secret *token = NULL;
	struct lk_vault_error err;
	int64_t v = 77;

	ck_assert_int_eq(parse(200, "{\"auth\":{\"client_token\":42,\"lease_duration\":1}}", &r,
	    &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "auth.client_token: expected a string");
	ck_assert_ptr_null(token);
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"auth\":{\"lease_duration\":1}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "auth.client_token: expected a string");
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"auth\":{\"client_token\":\"t\",\"lease_duration\":1,"
	    "\"policies\":[\"a\",null]}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "auth.policies: expected an array of strings");
	ck_assert_ptr_null(token);
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":null,\"auth\":null}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_auth(&r, &t, &token, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "auth: expected an object");
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":{\"data\":{},\"metadata\":{\"version\":\"2\"}}}",
	    &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.metadata.version: expected a non-negative integer");
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":{\"data\":{\"a\":1}}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.metadata: expected an object");
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":{\"data\":\"flat\",\"metadata\":{\"version\":1}}}",
	    &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.data: expected an object or null");
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"data\":{\"created_time\":\"x\"}}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_kv2_write(&r, &v, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "data.version: expected a non-negative integer");
	ck_assert_int_eq(v, 77);
	lk_vault_response_clear(&r);
}
END_TEST

START_TEST(test_not_json_never_quoted)
{
	struct lk_vault_response r;
	struct lk_vault_error err;

	ck_assert_int_eq(parse(200, "{\"data\":{\"password\":\"hunter2-secret\"", &r, &err),
	    -EBADMSG);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "truncated"));
	ck_assert_ptr_null(strstr(err.base.msg, "hunter2"));

	ck_assert_int_eq(parse(200, "hunter2-secret <html>", &r, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "not valid JSON"));
	ck_assert_ptr_null(strstr(err.base.msg, "hunter2"));

	ck_assert_int_eq(parse(200, "{\"a\":1,\"a\":2}", &r, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "duplicate key"));
}
END_TEST

/* ---- 404 in both forms ---- */

START_TEST(test_404_forms)
{
	struct lk_vault_error err;

	ck_assert_int_eq(http_error(404, "{\"errors\":[]}", &err), -ENOENT);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
	ck_assert_int_eq(err.status, 404);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert(!err.retryable);
	ck_assert_str_eq(err.base.msg, "HTTP 404: not found");

	ck_assert_int_eq(http_error(404, "{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":"
	    "false,\"lease_duration\":0,\"data\":{\"data\":null,\"metadata\":{\"created_time\":"
	    "\"2018-03-22T02:24:06.945319214Z\",\"custom_metadata\":null,\"deletion_time\":"
	    "\"2018-03-22T02:36:43.986212308Z\",\"destroyed\":false,\"version\":3}},"
	    "\"wrap_info\":null,\"warnings\":null,\"auth\":null}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_DELETED);
	ck_assert_int_eq(err.version, 3);
	ck_assert_str_eq(err.base.msg, "HTTP 404: version 3 is deleted");

	ck_assert_int_eq(http_error(404, "{\"data\":{\"data\":null,\"metadata\":{\"deletion_time\":"
	    "\"\",\"destroyed\":true,\"version\":1}}}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_DESTROYED);
	ck_assert_int_eq(err.version, 1);

	ck_assert_int_eq(http_error(404, "{\"errors\":[\"no handler for route \\\"nomount/data/x\\\"."
	    " route entry not found.\"]}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_NO_ROUTE);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "no handler for route"));

	/* NUL bytes in the answer, as KV metadata may hold: still the deleted version, and an
	 * error line with one is shown whole, the NUL as a space. */
	ck_assert_int_eq(http_error(404, "{\"data\":{\"data\":null,\"metadata\":{\"custom_metadata\":"
	    "{\"owner\":\"a\\u0000b\"},\"destroyed\":false,\"version\":5}}}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_DELETED);
	ck_assert_int_eq(err.version, 5);
	ck_assert_int_eq(http_error(403, "{\"errors\":[\"permission\\u0000denied\\nsecond line\"]}", &err),
			 -EACCES);
	ck_assert_str_eq(err.base.msg, "HTTP 403: permission denied; second line");
	/* A line of NUL bytes or other control characters only is no line, as one of blanks
	 * is. */
	ck_assert_int_eq(http_error(404, "{\"errors\":[\"\\u0000 \\u0000\"]}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_str_eq(err.base.msg, "HTTP 404: not found");
	ck_assert_int_eq(http_error(404, "{\"errors\":[\"\\u0001\\u001b\\u007f\"]}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_str_eq(err.base.msg, "HTTP 404: not found");
	/* C1 controls (U+0080-U+009F, two bytes in UTF-8) too; CSI never reaches a terminal. */
	ck_assert_int_eq(http_error(404, "{\"errors\":[\"\\u0085\\u009f\"]}", &err), -ENOENT);
	ck_assert_int_eq(err.not_found, LK_VAULT_NF_MISSING);
	ck_assert_int_eq(http_error(403, "{\"errors\":[\"\\u009b31mdenied\\u009bm\\u00e9\"]}", &err),
			 -EACCES);
	ck_assert_str_eq(err.base.msg, "HTTP 403: 31mdenied  m\xc3\xa9");

	/* A 200 whose data.data is null is the same "deleted" answer. */
	{
		struct lk_vault_response r;
		struct lk_vault_kv_secret s;

		ck_assert_int_eq(parse(200, "{\"data\":{\"data\":null,\"metadata\":{\"version\":4,"
		    "\"destroyed\":true}}}", &r, &err), 0);
		ck_assert_int_eq(lk_vault_response_kv2(&r, &s, &err), -ENOENT);
		ck_assert_int_eq(err.not_found, LK_VAULT_NF_DESTROYED);
		ck_assert_int_eq(err.version, 4);
		lk_vault_response_clear(&r);
	}
}
END_TEST

/* ---- classification ---- */

START_TEST(test_classification)
{
	static const struct {
		long status;
		const char *body;
		int code;
		bool retryable;
		const char *msg;
	} cases[] = {
		{ 403, "{\"errors\":[\"2 errors occurred:\\n\\t* permission denied\\n\\t* invalid token\\n\\n\"]}",
		  -EACCES, false, "HTTP 403: permission denied; invalid token" },
		{ 403, "{\"errors\":[\"1 error occurred:\\n\\t* permission denied\\n\\n\"]}",
		  -EACCES, false, "HTTP 403: permission denied" },
		{ 400, "{\"errors\":[\"invalid role or secret ID\"]}", -EREMOTEIO, false,
		  "HTTP 400: invalid role or secret ID" },
		{ 400, "{\"errors\":[\"past the max TTL, cannot renew\"]}", -EREMOTEIO, false,
		  "HTTP 400: past the max TTL, cannot renew" },
		{ 405, "{\"errors\":[]}", -EREMOTEIO, false, "HTTP 405" },
		{ 412, "{\"errors\":[\"required index state not present\"]}", -EAGAIN, true,
		  "HTTP 412: required index state not present" },
		{ 429, "{\"errors\":[\"request path \\\"kv/x\\\": rate limit quota exceeded\"]}",
		  -EAGAIN, true, "HTTP 429: request path \"kv/x\": rate limit quota exceeded" },
		{ 500, "{\"errors\":[\"internal error\"]}", -EREMOTEIO, true,
		  "HTTP 500: internal error" },
		{ 502, "<html><body>Bad Gateway</body></html>", -EREMOTEIO, true,
		  "HTTP 502 (body is not JSON)" },
		{ 503, "{\"errors\":[\"Vault is sealed\"]}", -EAGAIN, true,
		  "HTTP 503: Vault is sealed" },
		{ 503, "", -EAGAIN, true, "HTTP 503" },
		{ 500, "{\"errors\":[\"a\",\"  b  \",\"\"]}", -EREMOTEIO, true, "HTTP 500: a; b" },
		{ 307, "", -EREMOTEIO, false, "HTTP 307" },
	};
	struct lk_vault_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = lk_vault_response_error(&err, cases[i].status, cases[i].body,
		    strlen(cases[i].body), i == 6 ? 2000 : -1);
		ck_assert_int_eq(rc, cases[i].code);
		ck_assert_int_eq(err.base.code, cases[i].code);
		ck_assert_int_eq(err.kind, LK_VAULT_ERR_HTTP);
		ck_assert_int_eq(err.status, cases[i].status);
		ck_assert_msg(err.retryable == cases[i].retryable, "case %zu retryable", i);
		ck_assert_str_eq(err.base.msg, cases[i].msg);
		ck_assert_int_eq(err.retry_after_ms, i == 6 ? 2000 : -1);
		ck_assert_int_eq(err.not_found, LK_VAULT_NF_NONE);
	}
}
END_TEST

START_TEST(test_transport_and_json_translation)
{
	struct lk_vault_error err;
	json_error_t je;

	struct lk_http_response resp = { .failure = LK_HTTP_FAIL_TIMEOUT };
	struct lk_error herr = { .msg = "timed out: Timeout was reached" };

	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -ETIMEDOUT);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TIMEOUT);
	ck_assert(err.retryable);
	ck_assert_int_eq(err.status, 0);
	ck_assert_str_eq(err.base.msg, "timed out: Timeout was reached");
	resp.failure = LK_HTTP_FAIL_CONNECT;
	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -ECONNREFUSED);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert(err.retryable);
	resp.failure = LK_HTTP_FAIL_TRANSPORT;
	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -EIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert(err.retryable);
	resp.failure = LK_HTTP_FAIL_TOO_LARGE;
	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -EMSGSIZE);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TOO_LARGE);
	ck_assert(!err.retryable);
	resp.failure = LK_HTTP_FAIL_TLS;
	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -EIO);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_TRANSPORT);
	ck_assert(!err.retryable);
	resp.failure = LK_HTTP_FAIL_CONFIG;
	ck_assert_int_eq(lk_vault_error_from_http(&err, &resp, &herr), -EINVAL);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_CONFIG);

	ck_assert_ptr_null(json_loads("{\"k\": tru", 0, &je));
	ck_assert_int_eq(lk_vault_error_from_json(&err, &je), -EBADMSG);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_INVALID);
	ck_assert_ptr_null(strstr(err.base.msg, "tru"));

	ck_assert_str_eq(lk_vault_error_kind_name(LK_VAULT_ERR_INVALID), "invalid-response");
	ck_assert_str_eq(lk_vault_error_kind_name(LK_VAULT_ERR_TOO_LARGE), "too-large");
	ck_assert_str_eq(lk_vault_not_found_name(LK_VAULT_NF_DELETED), "deleted");
}
END_TEST

/* ---- warnings and capped renewals ---- */

START_TEST(test_renewal_capped)
{
	struct lk_vault_response r;
	struct lk_vault_lease_renewal n;
	struct lk_vault_error err;
	json_t *w;

	ck_assert_int_eq(parse(200, "{\"lease_id\":\"database/creds/r/1\",\"renewable\":true,"
	    "\"lease_duration\":1800,\"data\":null,\"warnings\":null}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_renewal(&r, 1800, &n, &err), 0);
	ck_assert(!n.capped);
	ck_assert_int_eq(n.lease_duration_s, 1800);
	ck_assert_str_eq(n.lease_id, "database/creds/r/1");
	lk_vault_lease_renewal_clear(&n);
	/* The same answer to a larger request was capped. */
	ck_assert_int_eq(lk_vault_response_renewal(&r, 3600, &n, &err), 0);
	ck_assert(n.capped);
	lk_vault_lease_renewal_clear(&n);
	lk_vault_response_clear(&r);

	/* Capped by the warning alone (granted equals what was asked, e.g. no increment). */
	ck_assert_int_eq(parse(200, "{\"lease_id\":\"database/creds/r/1\",\"renewable\":true,"
	    "\"lease_duration\":724,\"data\":null,\"warnings\":[\"TTL of \\\"30m\\\" exceeded the "
	    "effective max_ttl of \\\"12m4s\\\"; TTL value is capped accordingly\"]}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_renewal(&r, 0, &n, &err), 0);
	ck_assert(n.capped);
	ck_assert_int_eq(json_array_size(n.warnings), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(n.warnings, 0)), "max_ttl"));
	lk_vault_lease_renewal_clear(&n);
	lk_vault_response_clear(&r);

	ck_assert_int_eq(parse(200, "{\"lease_id\":\"\",\"lease_duration\":5}", &r, &err), 0);
	ck_assert_int_eq(lk_vault_response_renewal(&r, 5, &n, &err), -EBADMSG);
	ck_assert_str_eq(err.base.msg, "lease_id: expected a non-empty string");
	lk_vault_response_clear(&r);

	w = json_pack("[s]", "period of \"1h\" exceeded the effective max_ttl of \"10m\"");
	ck_assert(lk_vault_renewal_capped(0, 600, w));
	ck_assert(!lk_vault_renewal_capped(0, 600, NULL));
	ck_assert(!lk_vault_renewal_capped(600, 600, NULL));
	ck_assert(!lk_vault_renewal_capped(600, 900, NULL));
	ck_assert(lk_vault_renewal_capped(600, 599, NULL));
	json_decref(w);
}
END_TEST

/* ---- Retry-After ---- */

/* ---- paths, redaction ---- */

START_TEST(test_encode_path)
{
	char out[64];

	ck_assert_int_eq(lk_vault_client_encode_path("/secret/data/app/db/", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "secret/data/app/db");
	ck_assert_int_eq(lk_vault_client_encode_path("kv/a b?c#d%e", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "kv/a%20b%3Fc%23d%25e");
	ck_assert_int_eq(lk_vault_client_encode_path("kv/a.b_c-d~e", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "kv/a.b_c-d~e");
	ck_assert_int_eq(lk_vault_client_encode_path("kv//x", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(lk_vault_client_encode_path("kv/../sys", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(lk_vault_client_encode_path("kv/./x", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(lk_vault_client_encode_path("kv/a\nb", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(lk_vault_client_encode_path("///", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(lk_vault_client_encode_path("kv/%%%%%%%%%%%%%%%%%%%%%%%%%", out, 32),
	    -ENAMETOOLONG);
}
END_TEST

START_TEST(test_redact)
{
	struct lk_vault_error err;

	lk_vault_error_set(&err, LK_VAULT_ERR_HTTP, -EACCES, "token s.abc rejected; s.abc again");
	lk_vault_error_redact(&err, "s.abc", 5);
	ck_assert_str_eq(err.base.msg, "token [redacted] rejected; [redacted] again");
	lk_vault_error_redact(&err, "zzz", 3);
	ck_assert_str_eq(err.base.msg, "token [redacted] rejected; [redacted] again");
}
END_TEST

/* A message cut to LK_ERROR_MSG_MAX in the middle of an echoed token: the cut-off start
 * of the token goes too, not only whole occurrences. */
START_TEST(test_redact_cut_token)
{
	static const char token[] = "s.CUTTOKEN0123456789abcdef"; /* latchkey-scan: allow */
	char echo[LK_ERROR_MSG_MAX + 64];
	struct lk_vault_error err;
	size_t pad = LK_ERROR_MSG_MAX - 1 - 12;

	/* 12 bytes of the token fit before the cut. */
	memset(echo, 'x', pad);
	snprintf(echo + pad, sizeof(echo) - pad, "%s tail", token);
	lk_vault_error_set(&err, LK_VAULT_ERR_HTTP, -EREMOTEIO, "%s", echo);
	ck_assert_uint_eq(strlen(err.base.msg), LK_ERROR_MSG_MAX - 1);
	lk_vault_error_redact(&err, token, strlen(token));
	ck_assert_msg(strstr(err.base.msg, "s.CUTTOKEN") == NULL, "%s", err.base.msg);
	ck_assert_msg(strstr(err.base.msg, "CUTTOKEN") == NULL, "%s", err.base.msg);
	ck_assert(strncmp(err.base.msg, "xxxx", 4) == 0);

	/* Through the real path: the backend's errors list, then the request prefix. */
	{
		char body[LK_ERROR_MSG_MAX + 128];
		/* 430 bytes, then the token: the joined errors list is cut inside it. */
		snprintf(body, sizeof(body), "{\"errors\":[\"%.*s token %s is bad\"]}", 430,
		    echo, token);
		lk_vault_response_error(&err, 400, body, strlen(body), -1);
		lk_vault_error_prefix(&err, "GET /v1/%s", "secret/data/a-rather-long-path/for-the-cut");
		lk_vault_error_redact(&err, token, strlen(token));
		ck_assert_msg(strstr(err.base.msg, "s.CUT") == NULL, "%s", err.base.msg);
	}

	/* A tail shorter than four bytes is left: it could be anything. */
	lk_vault_error_set(&err, LK_VAULT_ERR_HTTP, -EACCES, "denied for s.C");
	lk_vault_error_redact(&err, token, strlen(token));
	ck_assert_str_eq(err.base.msg, "denied for s.C");
}
END_TEST

/* ---- configuration ---- */

START_TEST(test_config_env_fills_only_unset)
{
	struct lk_vault_config cfg;
	struct lk_vault_error err;

	setenv("VAULT_ADDR", "http://env:8200", 1);
	setenv("VAULT_NAMESPACE", "ns1/", 1);
	setenv("VAULT_CACERT", "", 1);
	setenv("VAULT_TOKEN", "s.fromenv", 1);
	lk_vault_config_init(&cfg);
	cfg.addr = strdup("https://file:8200");
	ck_assert_int_eq(lk_vault_config_from_env(&cfg, &err), 0);
	ck_assert_str_eq(cfg.addr, "https://file:8200");
	ck_assert_str_eq(cfg.namespace, "ns1/");
	ck_assert_ptr_null(cfg.cacert);
	ck_assert_ptr_nonnull(cfg.token);
	ck_assert_str_eq(lk_secret_cstr(cfg.token), "s.fromenv");
	lk_vault_config_clear(&cfg);
	ck_assert_ptr_null(cfg.addr);

	/* A token file in the config wins over VAULT_TOKEN. */
	lk_vault_config_init(&cfg);
	cfg.auth.token_file = strdup("/run/token");
	ck_assert_int_eq(lk_vault_config_from_env(&cfg, &err), 0);
	ck_assert_ptr_null(cfg.token);
	ck_assert_str_eq(cfg.addr, "http://env:8200");
	lk_vault_config_clear(&cfg);
}
END_TEST

START_TEST(test_config_json)
{
	static const char text[] = "{\"addr\":\"https://v:8200\",\"namespace\":\"team/\","
	    "\"timeout\":\"10s\",\"connect_timeout\":2,\"auth\":{\"method\":\"kubernetes\","
	    "\"role\":\"app\",\"jwt_file\":\"/tmp/jwt\"}}";
	struct lk_vault_config cfg;
	struct lk_error e = { 0 };
	struct lk_cfg c;
	json_t *doc;

	doc = lk_cfg_load_text("broker.json", text, strlen(text), &e);
	ck_assert_ptr_nonnull(doc);
	lk_vault_config_init(&cfg);
	lk_cfg_init(&c, "broker.json", &e);
	ck_assert_int_eq(lk_vault_config_from_json(&cfg, &c, doc), 0);
	ck_assert_str_eq(cfg.addr, "https://v:8200");
	ck_assert_str_eq(cfg.namespace, "team/");
	ck_assert_int_eq(cfg.timeout_ms, 10000);
	ck_assert_int_eq(cfg.connect_timeout_ms, 2000);
	ck_assert_int_eq(cfg.auth.method, LK_VAULT_AUTH_KUBERNETES);
	ck_assert_str_eq(cfg.auth.role, "app");
	ck_assert_str_eq(cfg.auth.jwt_file, "/tmp/jwt");
	json_decref(doc);

	doc = lk_cfg_load_text("broker.json", "{\"auth\":{\"method\":\"ldap\"}}",
	    strlen("{\"auth\":{\"method\":\"ldap\"}}"), &e);
	ck_assert_ptr_nonnull(doc);
	lk_cfg_init(&c, "broker.json", &e);
	ck_assert_int_eq(lk_vault_config_from_json(&cfg, &c, doc), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "auth.method"));
	json_decref(doc);

	doc = lk_cfg_load_text("broker.json", "{\"token\":\"s.x\"}",
	    strlen("{\"token\":\"s.x\"}"), &e);
	ck_assert_ptr_nonnull(doc);
	lk_cfg_init(&c, "broker.json", &e);
	ck_assert_int_eq(lk_vault_config_from_json(&cfg, &c, doc), -EINVAL);
	ck_assert_ptr_null(strstr(e.msg, "s.x"));
	json_decref(doc);
	lk_vault_config_clear(&cfg);
}
END_TEST

START_TEST(test_client_new_checks)
{
	struct lk_vault_config cfg;
	struct lk_vault_client *c = NULL;
	struct lk_vault_error err;

	lk_vault_config_init(&cfg);
	cfg.addr = strdup("ftp://x");
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), -EINVAL);
	ck_assert_int_eq(err.kind, LK_VAULT_ERR_CONFIG);
	ck_assert_ptr_null(c);
	free(cfg.addr);
	cfg.addr = strdup("http://127.0.0.1:1/");
	cfg.cacert = strdup("/nonexistent/ca.pem");
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.base.msg, "VAULT_CACERT"));
	free(cfg.cacert);
	cfg.cacert = NULL;
	cfg.token = lk_secret_from_str("bad\ntoken");
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), -EINVAL);
	ck_assert_ptr_null(strstr(err.base.msg, "token\n"));
	cfg.token = lk_secret_free(cfg.token);
	cfg.token = lk_secret_from_str("s.good");
	ck_assert_int_eq(lk_vault_client_new(&cfg, &c, &err), 0);
	lk_vault_config_clear(&cfg);
	/* The client kept its own copy of the token. */
	ck_assert(lk_vault_client_has_token(c));
	{
		struct lk_secret *t = lk_vault_client_token_dup(c);
		ck_assert_str_eq(lk_secret_cstr(t), "s.good");
		lk_secret_free(t);
	}
	ck_assert_int_eq(lk_vault_client_set_token(c, NULL), 0);
	ck_assert(!lk_vault_client_has_token(c));
	c = lk_vault_client_free(c);
	ck_assert_ptr_null(c);
}
END_TEST

static Suite *
vault_suite(void)
{
	Suite *s = suite_create("vault");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_envelope_kv2);
	tcase_add_test(tc, test_envelope_kv1_and_dynamic);
	tcase_add_test(tc, test_envelope_login);
	tcase_add_test(tc, test_lookup_self);
	tcase_add_test(tc, test_mistyped_envelope);
	tcase_add_test(tc, test_nul_bytes);
	tcase_add_test(tc, test_mistyped_typed_fields);
	tcase_add_test(tc, test_not_json_never_quoted);
	tcase_add_test(tc, test_404_forms);
	tcase_add_test(tc, test_classification);
	tcase_add_test(tc, test_transport_and_json_translation);
	tcase_add_test(tc, test_renewal_capped);
	tcase_add_test(tc, test_encode_path);
	tcase_add_test(tc, test_redact);
	tcase_add_test(tc, test_redact_cut_token);
	tcase_add_test(tc, test_config_env_fills_only_unset);
	tcase_add_test(tc, test_config_json);
	tcase_add_test(tc, test_client_new_checks);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (lk_secret_init() < 0)
		return 1;
	sr = srunner_create(vault_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
