/* check_common.c — the logger, buffers, clock and durations, backoff, config walker and
 * metrics registry. */
#include <check.h>
#include <inttypes.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/backoff.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/cpuidle.h"
#include "common/error.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "testutil.h"

/* ---- logger ---- */

static char *
capture_log(void (*emit)(void))
{
	char path[] = "/tmp/latchkey-log.XXXXXX";
	int fd = mkstemp(path);
	char *text;

	ck_assert_int_ge(fd, 0);
	lk_log_setup(fd, LK_DEBUG);
	emit();
	lk_log_setup(2, LK_INFO);
	close(fd);
	text = t_read_file(path);
	unlink(path);
	ck_assert_ptr_nonnull(text);
	return text;
}

static void
emit_fields(void)
{
	lk_log(LK_INFO, "secret served", LK_STR("secret", "db"), LK_INT("uid", 1000),
	       LK_BOOL("ok", true), LK_DOUBLE("secs", 1.5), LK_STR("none", NULL));
}

START_TEST(test_log_line_shape)
{
	char *text = capture_log(emit_fields);
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);
	const char *keys[8];
	size_t n = 0;
	const char *k;
	json_t *v;
	int64_t ms;

	ck_assert_msg(o != NULL, "not JSON: %s (%s)", text, jerr.text);
	ck_assert_int_eq(text[strlen(text) - 1], '\n');
	json_object_foreach(o, k, v) {
		if (n < 8)
			keys[n++] = k;
	}
	/* Stable order: ts, level, msg, then the fields as given. */
	ck_assert_uint_eq(n, 8);
	ck_assert_str_eq(keys[0], "ts");
	ck_assert_str_eq(keys[1], "level");
	ck_assert_str_eq(keys[2], "msg");
	ck_assert_str_eq(keys[3], "secret");
	ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "info");
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "secret served");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "uid")), 1000);
	ck_assert(json_is_true(json_object_get(o, "ok")));
	ck_assert(json_real_value(json_object_get(o, "secs")) == 1.5);
	ck_assert(json_is_null(json_object_get(o, "none")));
	ck_assert_int_eq(lk_rfc3339_parse(json_string_value(json_object_get(o, "ts")), &ms), 0);
	ck_assert_int_le(llabs(ms - lk_now_real_ms()), 60000);
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(o, "ts"))), 24);
	json_decref(o);
	free(text);
}
END_TEST

static void
emit_escapes(void)
{
	lk_log(LK_WARN, "quote \" backslash \\ newline \n tab \t bell \a", LK_STR("k\"ey", "v\x01"));
	lk_log(LK_DEBUG, "no fields");
}

START_TEST(test_log_escaping)
{
	char *text = capture_log(emit_escapes);
	char *second = strchr(text, '\n');
	json_t *o;

	ck_assert_ptr_nonnull(second);
	*second++ = '\0';
	o = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
			 "quote \" backslash \\ newline \n tab \t bell \a");
	ck_assert_str_eq(json_string_value(json_object_get(o, "k\"ey")), "v\x01");
	json_decref(o);
	o = json_loads(second, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "debug");
	json_decref(o);
	free(text);
}
END_TEST

static void
emit_long(void)
{
	char *big = malloc(20000);
	memset(big, 'x', 19999);
	big[19999] = '\0';
	lk_log(LK_ERROR, "long", LK_STR("value", big), LK_INT("after", 1));
	free(big);
}

START_TEST(test_log_long_value_stays_json)
{
	char *text = capture_log(emit_long);
	json_t *o = json_loads(text, 0, NULL);

	ck_assert_msg(o != NULL, "a cut line must still be JSON");
	ck_assert_uint_lt(strlen(text), 9000);
	json_decref(o);
	free(text);
}
END_TEST

START_TEST(test_log_level_parse_and_filter)
{
	enum lk_log_level l;
	char path[] = "/tmp/latchkey-log.XXXXXX";
	int fd = mkstemp(path);
	char *text;

	ck_assert_int_eq(lk_log_level_parse("warn", &l), 0);
	ck_assert_int_eq(l, LK_WARN);
	ck_assert_int_eq(lk_log_level_parse("loud", &l), -EINVAL);
	lk_log_setup(fd, LK_WARN);
	lk_log(LK_INFO, "hidden");
	lk_log(LK_ERROR, "shown");
	lk_log_setup(2, LK_INFO);
	close(fd);
	text = t_read_file(path);
	unlink(path);
	ck_assert_ptr_null(strstr(text, "hidden"));
	ck_assert_ptr_nonnull(strstr(text, "\"msg\":\"shown\""));
	free(text);
}
END_TEST

/* ---- buffers ---- */

START_TEST(test_buf_cap)
{
	struct lk_buf b;

	lk_buf_init(&b, 10, true);
	ck_assert_int_eq(lk_buf_append(&b, "hello", 5), 0);
	ck_assert_int_eq(lk_buf_printf(&b, "%d", 1234), 0);
	ck_assert_str_eq(b.data, "hello1234");
	ck_assert_int_eq(lk_buf_append(&b, "xy", 2), -E2BIG);
	ck_assert_str_eq(b.data, "hello1234");
	ck_assert_int_eq(lk_buf_append(&b, "z", 1), 0);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_int_eq(lk_buf_printf(&b, "%s", "more"), -E2BIG);
	lk_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	lk_buf_free(&b);
	ck_assert_ptr_null(b.data);
	lk_buf_free(NULL);
}
END_TEST

/* lk_put_u64 writes the decimal digits, no more, for the whole range. */
START_TEST(test_put_u64)
{
	static const uint64_t vals[] = { 0, 7, 10, 99, 1000000007ULL, UINT64_MAX };
	char got[LK_U64_DIGITS + 1], want[32];

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		char *end = lk_put_u64(got, vals[i]);

		*end = '\0';
		snprintf(want, sizeof(want), "%" PRIu64, vals[i]);
		ck_assert_str_eq(got, want);
		ck_assert_uint_eq((size_t)(end - got), strlen(want));
	}
}
END_TEST

START_TEST(test_buf_grow_and_take)
{
	struct lk_buf b;
	char *data;
	size_t len;

	lk_buf_init(&b, 1 << 20, false);
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(lk_buf_printf(&b, "%04d", i % 10000), 0);
	ck_assert_uint_eq(b.len, 40000);
	ck_assert_int_eq(memcmp(b.data + 39996, "9999", 4), 0);
	ck_assert_int_eq(lk_buf_take(&b, &data, &len), 0);
	ck_assert_uint_eq(len, 40000);
	ck_assert_ptr_null(b.data);
	free(data);
	ck_assert_int_eq(lk_buf_take(&b, &data, &len), 0);
	ck_assert_str_eq(data, "");
	free(data);
	/* A long formatted string goes through the slow path. */
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(lk_buf_printf(&b, "[%s]", big), 0);
	ck_assert_uint_eq(b.len, 1001);
	lk_buf_free(&b);
}
END_TEST

/* ---- clock and durations ---- */

START_TEST(test_rfc3339)
{
	char out[LK_RFC3339_LEN];
	int64_t ms;

	ck_assert_str_eq(lk_rfc3339_ms(0, out), "1970-01-01T00:00:00.000Z");
	ck_assert_str_eq(lk_rfc3339_ms(1795676400123LL, out), "2026-11-26T07:00:00.123Z");
	ck_assert_int_eq(lk_rfc3339_parse("2026-11-26T07:00:00.123Z", &ms), 0);
	ck_assert_int_eq(ms, 1795676400123LL);
	ck_assert_int_eq(lk_rfc3339_parse("2018-05-19T11:35:54.466476215-04:00", &ms), 0);
	ck_assert_int_eq(ms, 1526744154466LL);
	ck_assert_int_eq(lk_rfc3339_parse("2026-11-26T07:00:00Z", &ms), 0);
	ck_assert_int_eq(ms, 1795676400000LL);
	ck_assert_int_eq(lk_rfc3339_parse("2026-13-26T07:00:00Z", &ms), -EINVAL);
	ck_assert_int_eq(lk_rfc3339_parse("2026-11-26T07:00:00", &ms), -EINVAL);
	ck_assert_int_eq(lk_rfc3339_parse("2026-11-26T07:00:00Zjunk", &ms), -EINVAL);
	ck_assert_int_eq(lk_rfc3339_parse("", &ms), -EINVAL);
	struct timespec ts = { 1795676400, 5 };
	ck_assert_str_eq(lk_rfc3339_ns(&ts, out), "2026-11-26T07:00:00.000000005Z");
}
END_TEST

START_TEST(test_duration_parse)
{
	int64_t ms = -1;

	ck_assert_int_eq(lk_duration_parse("90", &ms), 0);
	ck_assert_int_eq(ms, 90000);
	ck_assert_int_eq(lk_duration_parse("5m", &ms), 0);
	ck_assert_int_eq(ms, 300000);
	ck_assert_int_eq(lk_duration_parse("1h30m", &ms), 0);
	ck_assert_int_eq(ms, 5400000);
	ck_assert_int_eq(lk_duration_parse("500ms", &ms), 0);
	ck_assert_int_eq(ms, 500);
	ck_assert_int_eq(lk_duration_parse("1.5s", &ms), 0);
	ck_assert_int_eq(ms, 1500);
	ck_assert_int_eq(lk_duration_parse("2h3m4s", &ms), 0);
	ck_assert_int_eq(ms, 7384000);
	ck_assert_int_eq(lk_duration_parse("0s", &ms), 0);
	ck_assert_int_eq(ms, 0);
	ms = 7;
	ck_assert_int_eq(lk_duration_parse("", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse("5", &ms), 0);
	ck_assert_int_eq(lk_duration_parse("m", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse("5d", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse("-5s", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse("5s ", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse(".s", &ms), -EINVAL);
	ck_assert_int_eq(lk_duration_parse("99999999999999999999h", &ms), -ERANGE);
	ck_assert_int_eq(lk_duration_parse("99999999999999999999", &ms), -ERANGE);
	ck_assert_int_eq(ms, 5000);
}
END_TEST

START_TEST(test_duration_format)
{
	char out[32];

	ck_assert_str_eq(lk_duration_format(0, out, sizeof(out)), "0s");
	ck_assert_str_eq(lk_duration_format(45000, out, sizeof(out)), "45s");
	ck_assert_str_eq(lk_duration_format(724000, out, sizeof(out)), "12m4s");
	ck_assert_str_eq(lk_duration_format(3600000, out, sizeof(out)), "1h0m0s");
	ck_assert_str_eq(lk_duration_format(3723999, out, sizeof(out)), "1h2m3s");
}
END_TEST

/* ---- backoff ---- */

START_TEST(test_backoff_bounds_and_growth)
{
	struct lk_backoff b;
	int64_t max_seen[8] = { 0 };

	/* Over many runs, attempt n stays within [0, min(cap, base*2^n)] and reaches near it. */
	for (int run = 0; run < 2000; run++) {
		lk_backoff_init(&b, 100, 1000);
		for (int n = 0; n < 8; n++) {
			int64_t w = lk_backoff_next(&b);
			int64_t ceiling = 100LL << n;
			if (ceiling > 1000)
				ceiling = 1000;
			ck_assert_int_ge(w, 0);
			ck_assert_int_le(w, ceiling);
			if (w > max_seen[n])
				max_seen[n] = w;
		}
	}
	ck_assert_int_ge(max_seen[0], 90);
	ck_assert_int_ge(max_seen[2], 360);
	ck_assert_int_ge(max_seen[7], 900);
	lk_backoff_reset(&b);
	ck_assert_uint_eq(b.attempt, 0);
	ck_assert_int_le(lk_backoff_next(&b), 100);
}
END_TEST

START_TEST(test_backoff_full_jitter_spread)
{
	struct lk_backoff b;
	unsigned low = 0, high = 0;

	/* Full jitter: waits spread over the whole range, not clustered at the ceiling. */
	lk_backoff_init(&b, 1000, 1000);
	for (int i = 0; i < 4000; i++) {
		int64_t w = lk_backoff_next(&b);
		if (w < 250)
			low++;
		if (w > 750)
			high++;
	}
	ck_assert_uint_gt(low, 700);
	ck_assert_uint_gt(high, 700);
}
END_TEST

/* ---- config ---- */

static json_t *
load(const char *text, struct lk_error *err)
{
	return lk_cfg_load_text("broker.json", text, strlen(text), err);
}

START_TEST(test_cfg_paths_in_errors)
{
	struct lk_error err = { 0 };
	struct lk_cfg c;
	json_t *root = load("{\"secrets\":[{\"name\":\"a\"},{\"name\":\"b\"},"
			    "{\"name\":\"c\",\"allow\":{\"uids\":\"1000\"}}]}", &err);
	json_t *secrets = NULL, *allow = NULL, *uids = NULL;

	ck_assert_ptr_nonnull(root);
	lk_cfg_init(&c, "broker.json", &err);
	ck_assert_int_eq(lk_cfg_array(&c, root, "secrets", true, &secrets), 0);
	size_t m1 = lk_cfg_push_key(&c, "secrets");
	size_t m2 = lk_cfg_push_index(&c, 2);
	ck_assert_int_eq(lk_cfg_object(&c, json_array_get(secrets, 2), "allow", false, &allow), 0);
	size_t m3 = lk_cfg_push_key(&c, "allow");
	ck_assert_int_eq(lk_cfg_array(&c, allow, "uids", false, &uids), -EINVAL);
	ck_assert_str_eq(err.msg, "broker.json: secrets[2].allow.uids: expected an array, got a string");
	lk_cfg_pop(&c, m3);
	lk_cfg_pop(&c, m2);
	lk_cfg_pop(&c, m1);
	ck_assert_str_eq(c.path, "");
	json_decref(root);
}
END_TEST

START_TEST(test_cfg_unknown_and_missing)
{
	struct lk_error err = { 0 };
	struct lk_cfg c;
	json_t *root = load("{\"vault\":{\"adress\":\"x\"}}", &err);
	json_t *vault = NULL;
	const char *s = "default";
	static const char *const top[] = { "vault", "listen", NULL };
	static const char *const vkeys[] = { "address", "auth", NULL };

	lk_cfg_init(&c, "broker.json", &err);
	ck_assert_int_eq(lk_cfg_keys(&c, root, top), 0);
	ck_assert_int_eq(lk_cfg_object(&c, root, "vault", true, &vault), 0);
	lk_cfg_push_key(&c, "vault");
	ck_assert_int_eq(lk_cfg_keys(&c, vault, vkeys), -EINVAL);
	ck_assert_str_eq(err.msg,
			 "broker.json: vault.adress: unknown key (expected one of: address, auth)");
	ck_assert_int_eq(lk_cfg_string(&c, vault, "address", true, &s), -EINVAL);
	ck_assert_str_eq(err.msg, "broker.json: vault.address: missing required key");
	ck_assert_int_eq(lk_cfg_string(&c, vault, "role", false, &s), 0);
	ck_assert_str_eq(s, "default");
	json_decref(root);
}
END_TEST

START_TEST(test_cfg_types)
{
	struct lk_error err = { 0 };
	struct lk_cfg c;
	json_t *root = load("{\"n\":5,\"big\":99999,\"d\":\"5m\",\"ds\":30,\"bad\":\"5 minutes\","
			    "\"mode\":\"0660\",\"badmode\":\"0999\",\"b\":true,\"s\":\"\",\"x\":1.5}", &err);
	int64_t n = 0, ms = 0;
	mode_t mode = 0;
	bool b = false;
	const char *s = NULL;

	ck_assert_ptr_nonnull(root);
	lk_cfg_init(&c, "f.json", &err);
	ck_assert_int_eq(lk_cfg_int(&c, root, "n", true, 0, 10, &n), 0);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(lk_cfg_int(&c, root, "big", true, 0, 10, &n), -EINVAL);
	ck_assert_str_eq(err.msg, "f.json: big: expected an integer from 0 to 10, got 99999");
	ck_assert_int_eq(lk_cfg_int(&c, root, "x", true, 0, 10, &n), -EINVAL);
	ck_assert_str_eq(err.msg, "f.json: x: expected an integer, got a number");
	ck_assert_int_eq(lk_cfg_duration(&c, root, "d", true, &ms), 0);
	ck_assert_int_eq(ms, 300000);
	ck_assert_int_eq(lk_cfg_duration(&c, root, "ds", true, &ms), 0);
	ck_assert_int_eq(ms, 30000);
	ck_assert_int_eq(lk_cfg_duration(&c, root, "bad", true, &ms), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "f.json: bad: expected a duration"));
	ck_assert_ptr_null(strstr(err.msg, "5 minutes"));
	ck_assert_int_eq(lk_cfg_mode(&c, root, "mode", &mode), 0);
	ck_assert_uint_eq(mode, 0660);
	ck_assert_int_eq(lk_cfg_mode(&c, root, "badmode", &mode), -EINVAL);
	ck_assert_int_eq(lk_cfg_bool(&c, root, "b", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(lk_cfg_bool(&c, root, "n", &b), -EINVAL);
	ck_assert_str_eq(err.msg, "f.json: n: expected true or false, got an integer");
	ck_assert_int_eq(lk_cfg_string(&c, root, "s", true, &s), -EINVAL);
	ck_assert_str_eq(err.msg, "f.json: s: expected a non-empty string");
	json_decref(root);
}
END_TEST

START_TEST(test_cfg_file_errors)
{
	struct lk_error err = { 0 };
	char *dir = t_tmpdir();
	char path[600];
	json_t *root;

	snprintf(path, sizeof(path), "%s/broker.json", dir);
	ck_assert_ptr_null(lk_cfg_load_file(path, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "broker.json: cannot open"));
	t_write_file(path, "{\n  \"a\": 1,\n  \"a\": 2\n}\n", 0600);
	ck_assert_ptr_null(lk_cfg_load_file(path, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "broker.json:3:"));
	/* A syntax error names line and column but never quotes the text around it. */
	t_write_file(path, "{\"token\": hunter2secret}", 0600);
	ck_assert_ptr_null(lk_cfg_load_file(path, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "broker.json:1:"));
	ck_assert_ptr_null(strstr(err.msg, "hunter"));
	t_write_file(path, "{\"a\": [1, 2,]}", 0600);
	ck_assert_ptr_null(lk_cfg_load_file(path, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "broker.json:1:"));
	t_write_file(path, "{\"a\": [1, 2]}", 0600);
	root = lk_cfg_load_file(path, &err);
	ck_assert_ptr_nonnull(root);
	json_decref(root);
	ck_assert_ptr_null(lk_cfg_load_file(dir, &err));
	ck_assert_ptr_nonnull(strstr(err.msg, "is a directory"));
	t_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- metrics ---- */

START_TEST(test_metrics_series_limit)
{
	struct lk_metrics *reg = lk_metrics_new();
	struct lk_metric *m;
	struct lk_series *kept[3];
	struct lk_buf out;
	char name[16];

	ck_assert_ptr_nonnull(reg);
	lk_metrics_set_series_max(reg, 3);
	m = lk_metrics_add(reg, LK_COUNTER, "t_events_total", "events",
			   (const char *const[]){ "name", NULL }, NULL, 0);
	ck_assert_ptr_nonnull(m);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		kept[i] = lk_metric_series(m, (const char *const[]){ name });
		ck_assert_ptr_nonnull(kept[i]);
		lk_series_add(kept[i], 1);
	}
	/* Past the limit: no series, the update is dropped, nothing crashes. */
	ck_assert_ptr_null(lk_metric_series(m, (const char *const[]){ "s3" }));
	lk_metric_add(m, (const char *const[]){ "s4" }, 1);
	lk_series_add(NULL, 1);
	/* A series that exists still updates. */
	lk_metric_add(m, (const char *const[]){ "s1" }, 5);
	ck_assert_ptr_eq(lk_metric_series(m, (const char *const[]){ "s0" }), kept[0]);
	lk_buf_init(&out, 1 << 16, false);
	ck_assert_int_eq(lk_metrics_render(reg, &out), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "t_events_total{name=\"s1\"} 6\n"));
	ck_assert_ptr_null(strstr(out.data, "name=\"s3\""));
	ck_assert_ptr_null(strstr(out.data, "name=\"s4\""));
	ck_assert_ptr_nonnull(strstr(out.data, "# TYPE latchkey_metrics_series_dropped_total counter\n"));
	ck_assert_ptr_nonnull(strstr(out.data,
		"latchkey_metrics_series_dropped_total{metric=\"t_events_total\"} 2\n"));
	lk_buf_free(&out);
	/* A higher limit lets new series in again. */
	lk_metrics_set_series_max(reg, 4);
	ck_assert_ptr_nonnull(lk_metric_series(m, (const char *const[]){ "s3" }));
	ck_assert_ptr_null(lk_metric_series(m, (const char *const[]){ "s5" }));
	lk_metrics_free(reg);
}
END_TEST

START_TEST(test_metrics_render)
{
	struct lk_metrics *reg = lk_metrics_new();
	struct lk_metric *req, *up, *lat;
	struct lk_buf out;
	static const double bounds[] = { 0.1, 1 };

	lk_buf_init(&out, 1 << 20, false);
	req = lk_metrics_add(reg, LK_COUNTER, "lk_requests_total", "Requests by route\nand code.",
			     (const char *[]){ "route", "code", NULL }, NULL, 0);
	up = lk_metrics_add(reg, LK_GAUGE, "lk_up", "Up.", NULL, NULL, 0);
	lat = lk_metrics_add(reg, LK_HISTOGRAM, "lk_latency_seconds", "Latency.",
			     (const char *[]){ "route", NULL }, bounds, 2);
	ck_assert_ptr_nonnull(req);
	ck_assert_ptr_nonnull(up);
	ck_assert_ptr_nonnull(lat);
	ck_assert_ptr_null(lk_metrics_add(reg, LK_GAUGE, "lk_up", "dup", NULL, NULL, 0));
	ck_assert_ptr_null(lk_metrics_add(reg, LK_GAUGE, "9bad", "bad", NULL, NULL, 0));
	ck_assert_ptr_null(lk_metrics_add(reg, LK_GAUGE, "lk_x", "x",
					  (const char *[]){ "__reserved", NULL }, NULL, 0));
	lk_metric_add(req, (const char *[]){ "/v1/secrets", "200" }, 1);
	lk_metric_add(req, (const char *[]){ "/v1/secrets", "200" }, 2);
	lk_metric_add(req, (const char *[]){ "a\"b\\c\nd", "403" }, 1);
	lk_metric_set(up, NULL, 1);
	lk_metric_observe(lat, (const char *[]){ "/x" }, 0.05);
	lk_metric_observe(lat, (const char *[]){ "/x" }, 0.5);
	lk_metric_observe(lat, (const char *[]){ "/x" }, 5);
	ck_assert_int_eq(lk_metrics_render(reg, &out), 0);
	ck_assert_str_eq(out.data,
		"# HELP lk_requests_total Requests by route\\nand code.\n"
		"# TYPE lk_requests_total counter\n"
		"lk_requests_total{route=\"a\\\"b\\\\c\\nd\",code=\"403\"} 1\n"
		"lk_requests_total{route=\"/v1/secrets\",code=\"200\"} 3\n"
		"# HELP lk_up Up.\n"
		"# TYPE lk_up gauge\n"
		"lk_up 1\n"
		"# HELP lk_latency_seconds Latency.\n"
		"# TYPE lk_latency_seconds histogram\n"
		"lk_latency_seconds_bucket{route=\"/x\",le=\"0.10000000000000001\"} 1\n"
		"lk_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"
		"lk_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"
		"lk_latency_seconds_sum{route=\"/x\"} 5.5499999999999998\n"
		"lk_latency_seconds_count{route=\"/x\"} 3\n"
		"# HELP latchkey_metrics_series_dropped_total Series lookups refused because the "
		"metric reached its limit of series (the update was dropped).\n"
		"# TYPE latchkey_metrics_series_dropped_total counter\n");
	lk_metric_remove(req, (const char *[]){ "a\"b\\c\nd", "403" });
	lk_buf_reset(&out);
	ck_assert_int_eq(lk_metrics_render(reg, &out), 0);
	ck_assert_ptr_null(strstr(out.data, "403"));
	lk_buf_free(&out);
	lk_metrics_free(reg);
}
END_TEST

struct counter_arg {
	struct lk_series *s;
};

static void *
bump(void *p)
{
	struct counter_arg *a = p;

	for (int i = 0; i < 100000; i++)
		lk_series_add(a->s, 1);
	return NULL;
}

START_TEST(test_metrics_concurrent_adds)
{
	struct lk_metrics *reg = lk_metrics_new();
	struct lk_metric *m = lk_metrics_add(reg, LK_COUNTER, "lk_c_total", "c", NULL, NULL, 0);
	struct counter_arg a = { lk_metric_series(m, NULL) };
	pthread_t th[4];
	struct lk_buf out;

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, bump, &a);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	lk_buf_init(&out, 4096, false);
	ck_assert_int_eq(lk_metrics_render(reg, &out), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "lk_c_total 400000\n"));
	lk_buf_free(&out);
	lk_metrics_free(reg);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_error_prefix)
{
	struct lk_error err = { 0 };

	ck_assert_int_eq(lk_error_set(&err, -ENOENT, "no such %s", "file"), -ENOENT);
	ck_assert_int_eq(lk_error_prefix(&err, "token_file %s", "/x"), -ENOENT);
	ck_assert_str_eq(err.msg, "token_file /x: no such file");
	ck_assert_int_eq(lk_error_set(NULL, -EINVAL, "ignored"), -EINVAL);
	lk_error_clear(&err);
	ck_assert_int_eq(err.code, 0);
	ck_assert_str_eq(err.msg, "");
}
END_TEST

START_TEST(test_json_wipe_allocator)
{
	json_t *before, *o;
	json_malloc_t m;
	json_free_t f;
	char *s;

	/* Made before the switch: still freed correctly after it. */
	before = json_pack("{s:s}", "k", "v");
	lk_json_wipe_on_free();
	json_get_alloc_funcs(&m, &f);
	ck_assert_ptr_ne((void *)f, (void *)free);
	lk_json_wipe_on_free();
	{
		json_malloc_t m2;
		json_free_t f2;
		json_get_alloc_funcs(&m2, &f2);
		ck_assert_ptr_eq((void *)f2, (void *)f);
	}
	o = json_pack("{s:s, s:[i,i]}", "password", "p4ss", "n", 1, 2);
	ck_assert_ptr_nonnull(o);
	/* json_dumps output may still be released with plain free(). */
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_str_eq(s, "{\"n\":[1,2],\"password\":\"p4ss\"}");
	free(s);
	json_decref(o);
	json_decref(before);
}
END_TEST

START_TEST(test_json_parse_never_quotes)
{
	static const char text[] = "{\"token\": hunter2-s3cr3t}";
	struct lk_error err = { 0 };
	json_t *j;

	j = lk_json_parse(text, strlen(text), 0, "in.json", &err);
	ck_assert_ptr_null(j);
	ck_assert_int_eq(err.code, -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "in.json:1:"));
	ck_assert_ptr_null(strstr(err.msg, "hunter2"));
	ck_assert_ptr_nonnull(strstr(err.msg, "invalid syntax"));
	j = lk_json_parse("{\"a\":1,\"a\":2}", 13, 0, "dup", &err);
	ck_assert_ptr_null(j);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate key"));
	j = lk_json_parse("{\"a\":1}", 7, 0, "ok", &err);
	ck_assert_ptr_nonnull(j);
	json_decref(j);
}
END_TEST

/* Text cut in the middle of a character, or holding other bytes, still makes a string:
 * whole characters kept, the rest '?'. */
START_TEST(test_json_string_lossy)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "plain", "plain" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },
		{ "cut \xe2\x82", "cut ??" },
		{ "name \xff\xfe.txt", "name ??.txt" },
		{ "overlong \xc0\xaf", "overlong ??" },
		{ "surrogate \xed\xa0\x80", "surrogate ???" },
		{ "emoji \xf0\x9f\x94\x91 \xf0\x9f", "emoji \xf0\x9f\x94\x91 ??" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = lk_json_string_lossy(cases[i].in);

		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(json_string_value(j), cases[i].out);
		json_decref(j);
	}
}
END_TEST

START_TEST(test_file_read_cap_and_stdin_socket)
{
	struct lk_error err = { 0 };
	struct lk_buf b;
	char *dir = t_tmpdir();
	const char *p = t_path(dir, "f");
	int sv[2], saved;
	pid_t pid;

	ck_assert_int_eq(t_write_file(p, "0123456789", 0600), 0);
	lk_buf_init(&b, 10, true);
	ck_assert_int_eq(lk_file_read(p, true, &b, &err), 0);
	ck_assert_str_eq(b.data, "0123456789");
	lk_buf_free(&b);
	lk_buf_init(&b, 9, false);
	ck_assert_int_eq(lk_file_read(p, false, &b, &err), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err.msg, "larger than 9 bytes"));
	lk_buf_free(&b);
	lk_buf_init(&b, 9, false);
	ck_assert_int_eq(lk_file_read(t_path(dir, "missing"), false, &b, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "missing"));
	lk_buf_free(&b);
	/* An empty file reads as "". */
	ck_assert_int_eq(t_write_file(p, "", 0600), 0);
	lk_buf_init(&b, 9, false);
	ck_assert_int_eq(lk_file_read(p, false, &b, &err), 0);
	ck_assert_str_eq(b.data, "");
	lk_buf_free(&b);

	/* Standard input that is a socket, as a child process of Node gets it. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		ck_assert_int_eq(lk_write_all(sv[1], "from a socket", 13), 0);
		_exit(0);
	}
	close(sv[1]);
	saved = dup(STDIN_FILENO);
	dup2(sv[0], STDIN_FILENO);
	close(sv[0]);
	lk_buf_init(&b, 100, false);
	ck_assert_int_eq(lk_file_read("-", false, &b, &err), 0);
	dup2(saved, STDIN_FILENO);
	close(saved);
	waitpid(pid, NULL, 0);
	ck_assert_str_eq(b.data, "from a socket");
	lk_buf_free(&b);
	t_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_file_write_atomic_and_new)
{
	struct lk_error err = { 0 };
	char *dir = t_tmpdir(), *text;
	const char *p = t_path(dir, "out");
	struct stat st;
	mode_t old = umask(077);

	ck_assert_int_eq(lk_file_write_atomic(p, "one", 3, 0644, (uid_t)-1, (gid_t)-1, &err), 0);
	ck_assert_int_eq(lk_file_write_atomic(p, "two", 3, 0640, (uid_t)-1, (gid_t)-1, &err), 0);
	umask(old);
	text = t_read_file(p);
	ck_assert_str_eq(text, "two");
	free(text);
	ck_assert_int_eq(stat(p, &st), 0);
	/* Exactly the mode asked for, whatever the umask. */
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	/* A directory that does not exist: an error naming the file, nothing left behind. */
	ck_assert_int_lt(lk_file_write_atomic(t_path(dir, "no/such"), "x", 1, 0600, (uid_t)-1,
					      (gid_t)-1, &err), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, "no/such"));

	ck_assert_int_eq(lk_file_write_new(t_path(dir, "key"), "k", 1, 0600, &err), 0);
	ck_assert_int_eq(lk_file_write_new(t_path(dir, "key"), "k2", 2, 0600, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err.msg, "already exists"));
	text = t_read_file(t_path(dir, "key"));
	ck_assert_str_eq(text, "k");
	free(text);
	/* Only the two files: no temporary was left. */
	ck_assert_int_eq(t_run((const char *const[]){ "/bin/sh", "-c",
		"test $(ls -A \"$0\" | wc -l) -eq 2", dir, NULL }, NULL, NULL, NULL, NULL), 0);
	t_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- cpuidle ---- */

/* The files' text as the kernel writes it, and what is not quite it. */
START_TEST(test_cpuidle_parse)
{
	static const char *const not_numbers[] = { "12ab\n", "-1\n", "99999999999999999999999\n",
		"", " 5", "5 \n" };
	struct lk_cpuidle m;

	lk_cpuidle_parse("console=ttyS0 idle=poll quiet\n", "haltpoll\n", "200000\n", &m);
	ck_assert(m.idle_poll);
	ck_assert(m.halt_poll_seen);
	ck_assert_str_eq(m.driver, "haltpoll");
	ck_assert_uint_eq(m.halt_poll_ns, 200000);
	/* idle=poll only as a word of its own. */
	lk_cpuidle_parse("xidle=poll idle=pollx idle=halt", NULL, NULL, &m);
	ck_assert(!m.idle_poll);
	ck_assert(!m.halt_poll_seen);
	ck_assert_str_eq(m.driver, "");
	ck_assert_uint_eq(m.halt_poll_ns, 0);
	lk_cpuidle_parse("idle=poll", "none\n", "0\n", &m);
	ck_assert(m.idle_poll);
	ck_assert_str_eq(m.driver, "none");
	ck_assert_uint_eq(m.halt_poll_ns, 0);
	/* A driver name longer than the field is taken as none; a number that is not whole is
	 * not seen at all. */
	lk_cpuidle_parse("", "a_driver_name_longer_than_thirty_one_bytes\n", "12ab\n", &m);
	ck_assert_str_eq(m.driver, "");
	for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++) {
		lk_cpuidle_parse(NULL, NULL, not_numbers[i], &m);
		ck_assert_uint_eq(m.halt_poll_ns, 0);
		ck_assert_msg(!m.halt_poll_seen, "\"%s\"", not_numbers[i]);
	}
	lk_cpuidle_parse(NULL, NULL, "0\n", &m);
	ck_assert_uint_eq(m.halt_poll_ns, 0);
	ck_assert(m.halt_poll_seen);
	ck_assert(!m.cpuidle_seen);
	/* The longest driver name that fits (31 bytes), and one byte more. */
	lk_cpuidle_parse(NULL, "abcdefghijklmnopqrstuvwxyz01234\n", NULL, &m);
	ck_assert(m.cpuidle_seen);
	ck_assert_str_eq(m.driver, "abcdefghijklmnopqrstuvwxyz01234");
	lk_cpuidle_parse(NULL, "abcdefghijklmnopqrstuvwxyz012345\n", NULL, &m);
	ck_assert(m.cpuidle_seen);
	ck_assert_str_eq(m.driver, "");
}
END_TEST

static void
write_under(const char *root, const char *rel, const char *text)
{
	char path[1024], *p;

	snprintf(path, sizeof(path), "%s%s", root, rel);
	for (p = strchr(path + strlen(root) + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
		*p = '/';
	}
	ck_assert_int_eq(t_write_file(path, text, 0600), 0);
}

/* The probe reads the files under its root; one that is missing leaves its default. */
START_TEST(test_cpuidle_probe_files)
{
	char *root = t_tmpdir();
	struct lk_cpuidle m;

	lk_cpuidle_probe(root, &m);
	ck_assert(!m.sys_hypervisor);
	ck_assert(!m.idle_poll);
	ck_assert(!m.cpuidle_seen);
	ck_assert_str_eq(m.driver, "");
	ck_assert(!m.halt_poll_seen);
	ck_assert_uint_eq(m.halt_poll_ns, 0);

	write_under(root, "/proc/cmdline", "root=/dev/vda idle=poll\n");
	write_under(root, "/sys/devices/system/cpu/cpuidle/current_driver", "haltpoll\n");
	write_under(root, "/sys/module/haltpoll/parameters/guest_halt_poll_ns", "200000\n");
	write_under(root, "/sys/hypervisor/type", "\n");
	lk_cpuidle_probe(root, &m);
	ck_assert(!m.sys_hypervisor);
	ck_assert(m.idle_poll);
	ck_assert_str_eq(m.driver, "haltpoll");
	ck_assert(m.halt_poll_seen);
	ck_assert_uint_eq(m.halt_poll_ns, 200000);

	write_under(root, "/sys/hypervisor/type", "xen\n");
	lk_cpuidle_probe(root, &m);
	ck_assert(m.sys_hypervisor);
	ck_assert(m.cpuidle_seen);

	/* A file longer than what is read of it: cut, a word past the cut not seen. */
	{
		char big[6000];

		memset(big, 'x', sizeof(big));
		memcpy(big + sizeof(big) - 12, " idle=poll\n", 12);
		write_under(root, "/proc/cmdline", big);
		lk_cpuidle_probe(root, &m);
		ck_assert(!m.idle_poll);
		memcpy(big, "idle=poll ", 10);
		write_under(root, "/proc/cmdline", big);
		lk_cpuidle_probe(root, &m);
		ck_assert(m.idle_poll);
	}
	/* A directory where a file should be cannot be read: as if missing. */
	t_rmrf(t_path(root, "sys/devices/system/cpu/cpuidle/current_driver"));
	ck_assert_int_eq(mkdir(t_path(root, "sys/devices/system/cpu/cpuidle/current_driver"), 0700), 0);
	lk_cpuidle_probe(root, &m);
	ck_assert(!m.cpuidle_seen);
	ck_assert_str_eq(m.driver, "");
	t_rmrf(root);
	free(root);
}
END_TEST

/* Polling pays only in a virtual machine whose idle CPUs halt without polling first. */
START_TEST(test_cpuidle_poll_pays)
{
	static const struct {
		struct lk_cpuidle m;
		bool pays;
		const char *why;
	} cases[] = {
		{ { .cpuid_hypervisor = false }, false, "not a virtual machine" },
		{ { .cpuid_hypervisor = false, .driver = "haltpoll", .halt_poll_ns = 0 }, false,
		  "not a virtual machine" },
		{ { .cpuid_hypervisor = true }, true,
		  "taken to halt without polling (no /sys/devices/system/cpu/cpuidle" },
		{ { .sys_hypervisor = true, .cpuidle_seen = true, .driver = "none" }, true,
		  "CPUs halt without polling" },
		{ { .cpuid_hypervisor = true, .cpuidle_seen = true, .driver = "haltpoll",
		    .halt_poll_seen = true, .halt_poll_ns = 0 }, true, "CPUs halt without polling" },
		{ { .cpuid_hypervisor = true, .cpuidle_seen = true, .driver = "haltpoll",
		    .halt_poll_seen = true, .halt_poll_ns = 200000 }, false, "CPUs poll before halting" },
		/* haltpoll whose setting cannot be read: the kernel's default polls. */
		{ { .cpuid_hypervisor = true, .cpuidle_seen = true, .driver = "haltpoll" }, false,
		  "taken to poll before halting (cpuidle haltpoll, guest_halt_poll_ns unreadable)" },
		{ { .cpuid_hypervisor = true, .cpuidle_seen = true, .driver = "acpi_idle",
		    .halt_poll_seen = true, .halt_poll_ns = 200000 }, true, "CPUs halt without polling" },
		{ { .cpuid_hypervisor = true, .idle_poll = true }, false, "idle=poll" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;

		ck_assert_msg(lk_cpuidle_poll_pays(&cases[i].m, &why) == cases[i].pays, "case %zu", i);
		ck_assert_ptr_nonnull(why);
		ck_assert_msg(strstr(why, cases[i].why) != NULL, "case %zu: %s", i, why);
	}
}
END_TEST

static Suite *
common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_log_line_shape);
	tcase_add_test(tc, test_log_escaping);
	tcase_add_test(tc, test_log_long_value_stays_json);
	tcase_add_test(tc, test_log_level_parse_and_filter);
	tcase_add_test(tc, test_buf_cap);
	tcase_add_test(tc, test_put_u64);
	tcase_add_test(tc, test_buf_grow_and_take);
	tcase_add_test(tc, test_rfc3339);
	tcase_add_test(tc, test_duration_parse);
	tcase_add_test(tc, test_duration_format);
	tcase_add_test(tc, test_backoff_bounds_and_growth);
	tcase_add_test(tc, test_backoff_full_jitter_spread);
	tcase_add_test(tc, test_cfg_paths_in_errors);
	tcase_add_test(tc, test_cfg_unknown_and_missing);
	tcase_add_test(tc, test_cfg_types);
	tcase_add_test(tc, test_cfg_file_errors);
	tcase_add_test(tc, test_metrics_render);
	tcase_add_test(tc, test_metrics_series_limit);
	tcase_add_test(tc, test_metrics_concurrent_adds);
	tcase_add_test(tc, test_error_prefix);
	tcase_add_test(tc, test_json_wipe_allocator);
	tcase_add_test(tc, test_json_parse_never_quotes);
	tcase_add_test(tc, test_json_string_lossy);
	tcase_add_test(tc, test_file_read_cap_and_stdin_socket);
	tcase_add_test(tc, test_file_write_atomic_and_new);
	tcase_add_test(tc, test_cpuidle_parse);
	tcase_add_test(tc, test_cpuidle_probe_files);
	tcase_add_test(tc, test_cpuidle_poll_pays);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(common_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
