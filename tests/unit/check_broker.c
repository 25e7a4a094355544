/* check_broker.c — the broker's pieces on their own: configuration errors with key paths,
 * the guarded arena, snapshot reference counting and zeroing, the scheduling math, file
 * renderers and peer authorization. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "broker/internal.h"
#include "common/clock.h"
#include "common/log.h"
#include "testutil.h"
#include "common/buf.h"
#include "common/config.h"
#include "crypto/secret.h"

static const char example[] =
	"{\n"
	"  \"vault\": {\"address\": \"http://127.0.0.1:8200\",\n"
	"            \"auth\": {\"method\": \"token\", \"token_file\": \"/run/secrets/token\"}},\n"
	"  \"listen\": {\"socket\": \"/run/latchkey/broker.sock\", \"mode\": \"0660\", \"metrics\": \"127.0.0.1:9102\"},\n"
	"  \"secrets\": [\n"
	"    {\"name\": \"db\",  \"path\": \"database/creds/app\", \"required\": true, \"allow\": {\"uids\": [1000]}},\n"
	"    {\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"5m\"}\n"
	"  ]\n"
	"}\n";

static int
parse_text(const char *text, struct broker_config *cfg, struct lk_error *err)
{
	json_t *root = lk_cfg_load_text("broker.json", text, strlen(text), err);
	int rc;

	if (root == NULL)
		return -EINVAL;
	rc = broker_config_parse(cfg, "broker.json", root, err);
	json_decref(root);
	return rc;
}

/* ---- configuration ---- */

START_TEST(test_config_example)
{
	struct broker_config cfg;
	struct lk_error err;

	lk_error_clear(&err);
	ck_assert_msg(parse_text(example, &cfg, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.vault.addr, "http://127.0.0.1:8200");
	ck_assert_int_eq(cfg.vault.auth.method, LK_VAULT_AUTH_TOKEN);
	ck_assert_str_eq(cfg.socket_path, "/run/latchkey/broker.sock");
	ck_assert_int_eq(cfg.socket_mode, 0660);
	ck_assert_str_eq(cfg.metrics_addr, "127.0.0.1:9102");
	ck_assert_uint_eq(cfg.nsecrets, 2);
	ck_assert_str_eq(cfg.secrets[0].name, "db");
	ck_assert(cfg.secrets[0].required);
	ck_assert(cfg.secrets[0].restricted);
	ck_assert_uint_eq(cfg.secrets[0].nuids, 1);
	ck_assert_uint_eq(cfg.secrets[0].uids[0], 1000);
	ck_assert(!cfg.secrets[1].restricted);
	ck_assert_int_eq(cfg.secrets[1].refresh_ms, 5 * 60 * 1000);
	/* defaults */
	ck_assert_int_eq(cfg.grace_ms, BROKER_GRACE_DEFAULT_MS);
	ck_assert_int_eq(cfg.secrets[1].grace_ms, BROKER_GRACE_DEFAULT_MS);
	ck_assert(cfg.revoke_on_shutdown);
	ck_assert_uint_eq(cfg.poll_us, BROKER_POLL_US_AUTO);
	ck_assert_uint_eq(cfg.threads, BROKER_THREADS_AUTO);
	broker_config_clear(&cfg);
	ck_assert_ptr_null(cfg.secrets);
}
END_TEST

/* listen.threads and listen.poll_us: "auto" (the default) or a number, the ends included. */
START_TEST(test_config_auto_settings)
{
	static const struct {
		const char *key, *value;
		unsigned want;
	} cases[] = {
		{ "poll_us", "\"auto\"", BROKER_POLL_US_AUTO },
		{ "poll_us", "0", 0 },
		{ "poll_us", "20", 20 },
		{ "poll_us", "1000", 1000 },
		{ "threads", "\"auto\"", BROKER_THREADS_AUTO },
		{ "threads", "1", 1 },
		{ "threads", "64", 64 },
	};
	char text[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct broker_config cfg;
		struct lk_error err;
		bool poll = strcmp(cases[i].key, "poll_us") == 0;

		snprintf(text, sizeof(text), "{\"vault\":{},\"listen\":{\"%s\":%s},"
			 "\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}", cases[i].key,
			 cases[i].value);
		lk_error_clear(&err);
		ck_assert_msg(parse_text(text, &cfg, &err) == 0, "%s: %s", cases[i].value, err.msg);
		ck_assert_uint_eq(poll ? cfg.poll_us : cfg.threads, cases[i].want);
		ck_assert_uint_eq(poll ? cfg.threads : cfg.poll_us,
				  poll ? BROKER_THREADS_AUTO : BROKER_POLL_US_AUTO);
		broker_config_clear(&cfg);
	}
}
END_TEST

struct config_case {
	const char *text;
	const char *message;
};

START_TEST(test_config_errors)
{
	static const struct config_case cases[] = {
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"},{\"name\":\"b\",\"path\":\"p/b\"},"
		  "{\"name\":\"c\",\"path\":\"p/c\",\"allow\":{\"uids\":\"x\"}}]}",
		  "broker.json: secrets[2].allow.uids: expected an array of integers" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"c\",\"path\":\"p/c\",\"allow\":{\"gids\":[1,\"2\"]}}]}",
		  "broker.json: secrets[0].allow.gids: expected an array of integers" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"c\",\"path\":\"p/c\",\"allow\":{\"uids\":[-1]}}]}",
		  "broker.json: secrets[0].allow.uids[0]: expected an id" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"c\",\"path\":\"p/c\",\"allow\":{\"users\":[1]}}]}",
		  "broker.json: secrets[0].allow.users: unknown key" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"},{\"name\":\"a\",\"path\":\"p/b\"}]}",
		  "broker.json: secrets[1].name: duplicate secret name" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a/b\",\"path\":\"p/a\"}]}",
		  "broker.json: secrets[0].name: expected" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\".hidden\",\"path\":\"p/a\"}]}",
		  "broker.json: secrets[0].name: expected" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"/p/a\"}]}",
		  "broker.json: secrets[0].path: expected a Vault path" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\"}]}",
		  "broker.json: secrets[0].path: missing required key" },
		{ "{\"vault\":{},\"secrets\":[]}", "broker.json: secrets: expected between 1" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"refresh\":\"100ms\"}]}",
		  "broker.json: secrets[0].refresh: expected at least 1s" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"kind\":\"kv3\"}]}",
		  "broker.json: secrets[0].kind: expected" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"rel\"}}]}",
		  "broker.json: secrets[0].file.path: expected an absolute path" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"/x\",\"format\":\"template\"}}]}",
		  "broker.json: secrets[0].file: format \"template\" needs exactly one" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"/x\",\"signal\":\"KILL\"}}]}",
		  "broker.json: secrets[0].file.signal: expected one of" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}],\"templates\":"
		  "[{\"destination\":\"/x\",\"template\":\"{{ .a.k }}\\n{{ .nope.k }}\"}]}",
		  "broker.json: templates[0].template:2: no secret named \"nope\" is configured" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"/x\","
		  "\"format\":\"template\",\"template\":\"{{ exec \\\"sh\\\" }}\"}}]}",
		  "broker.json: secrets[0].file.template:1: unknown function \"exec\"" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}],\"templates\":"
		  "[{\"destination\":\"/x\",\"template\":\"x\",\"format\":\"env\"}]}",
		  "broker.json: templates[0].format: unknown key" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}],\"templates\":"
		  "[{\"template\":\"x\"}]}",
		  "broker.json: templates[0].destination: missing required key" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}],\"templates\":"
		  "[{\"destination\":\"rel\",\"template\":\"x\"}]}",
		  "broker.json: templates[0].destination: expected an absolute path" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}],\"templates\":"
		  "[{\"destination\":\"/x\"}]}",
		  "broker.json: templates[0]: format \"template\" needs exactly one" },
		{ "{\"vault\":{},\"listen\":{\"socket\":\"relative.sock\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.socket: expected an absolute path" },
		{ "{\"vault\":{},\"listen\":{\"threads\":0},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.threads: expected \"auto\" or an integer from 1 to 64, got 0" },
		{ "{\"vault\":{},\"listen\":{\"threads\":\"all\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.threads: expected \"auto\" or an integer from 1 to 64" },
		{ "{\"vault\":{},\"listen\":{\"poll_us\":1001},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.poll_us: expected \"auto\" or an integer from 0 to 1000, got 1001" },
		{ "{\"vault\":{},\"listen\":{\"poll_us\":-1},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.poll_us: expected \"auto\" or an integer from 0 to 1000, got -1" },
		{ "{\"vault\":{},\"listen\":{\"poll_us\":\"20us\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.poll_us: expected \"auto\" or an integer from 0 to 1000" },
		{ "{\"vault\":{},\"listen\":{\"poll_us\":20.5},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.poll_us: expected \"auto\" or an integer from 0 to 1000" },
		{ "{\"vault\":{\"address\":\"http://a\",\"addr\":\"http://b\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: vault.address: give either address or addr" },
		{ "{\"vault\":{\"auth\":{\"method\":\"token\",\"token\":\"t\"}},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: vault.auth.token" },
		{ "{\"vault\":{},\"retry\":{\"initial\":\"2s\",\"max\":\"1s\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: retry: expected 0 < initial <= max" },
		{ "{\"vault\":{},\"log_level\":\"loud\",\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: log_level: expected" },
		{ "{\"vault\":{},\"secret\":[]}", "broker.json: secret: unknown key" },
		/* A pidfile names the process it may signal. */
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"/x\",\"pidfile\":\"/p\"}}]}",
		  "broker.json: secrets[0].file.pidfile: a pidfile needs \"process\"" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"file\":{\"path\":\"/x\",\"pidfile\":\"/p\",\"process\":\"/usr/bin/x\"}}]}",
		  "broker.json: secrets[0].file.process: expected a command name" },
		{ "{\"vault\":{},\"listen\":{\"header_timeout\":\"10ms\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: listen.header_timeout: expected a duration between" },
		{ "{\"vault\":{},\"token_check\":\"500ms\",\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: token_check: expected 0 (off) or at least 1s" },
		/* Durations the scheduler adds to the clock are bounded: near INT64_MAX they
		 * would wrap to the past and turn the timer into a busy loop. */
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"refresh\":9000000000000000}]}",
		  "broker.json: secrets[0].refresh: expected a duration of at most 720h" },
		{ "{\"vault\":{},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\",\"grace\":\"2562047h\"}]}",
		  "broker.json: secrets[0].grace: expected a duration of at most 720h" },
		{ "{\"vault\":{},\"grace\":\"721h\",\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: grace: expected a duration of at most 720h" },
		{ "{\"vault\":{},\"retry\":{\"max\":\"100000h\"},\"secrets\":[{\"name\":\"a\",\"path\":\"p/a\"}]}",
		  "broker.json: retry.max: expected a duration of at most 720h" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct broker_config cfg;
		struct lk_error err;

		lk_error_clear(&err);
		ck_assert_msg(parse_text(cases[i].text, &cfg, &err) == -EINVAL, "case %zu parsed", i);
		ck_assert_msg(strncmp(err.msg, cases[i].message, strlen(cases[i].message)) == 0,
			      "case %zu: expected \"%s\", got \"%s\"", i, cases[i].message, err.msg);
		ck_assert_ptr_null(cfg.secrets);
	}
}
END_TEST

START_TEST(test_config_file_and_addr)
{
	struct broker_config cfg;
	struct lk_error err;

	lk_error_clear(&err);
	ck_assert_msg(parse_text(
		"{\"vault\":{\"addr\":\"http://h:1\"},\"grace\":\"5s\",\"revoke_on_shutdown\":false,"
		"\"secrets\":[{\"name\":\"a.b-c_d\",\"path\":\"kv/x\",\"kind\":\"kv-v1\",\"grace\":\"2s\","
		"\"file\":{\"path\":\"/x/y\",\"format\":\"env\",\"pidfile\":\"/run/app.pid\",\"signal\":\"SIGUSR1\","
		"\"process\":\"nginx\",\"process_uid\":101}}]}",
		&cfg, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(cfg.vault.addr, "http://h:1");
	ck_assert_int_eq(cfg.grace_ms, 5000);
	ck_assert(!cfg.revoke_on_shutdown);
	ck_assert_int_eq(cfg.secrets[0].grace_ms, 2000);
	ck_assert_int_eq(cfg.secrets[0].kind, BROKER_KIND_KV1);
	ck_assert_ptr_nonnull(cfg.secrets[0].file);
	ck_assert_int_eq(cfg.secrets[0].file->mode, 0400);
	ck_assert_int_eq(cfg.secrets[0].file->format, BROKER_FORMAT_ENV);
	ck_assert_int_eq(cfg.secrets[0].file->signal, SIGUSR1);
	ck_assert_str_eq(cfg.secrets[0].file->pidfile, "/run/app.pid");
	ck_assert_str_eq(cfg.secrets[0].file->process, "nginx");
	ck_assert_int_eq(cfg.secrets[0].file->process_uid, 101);
	broker_config_clear(&cfg);

	/* templates[]: what each reads is known from the load on. */
	ck_assert_msg(parse_text(
		"{\"vault\":{},\"secrets\":[{\"name\":\"db\",\"path\":\"database/creds/app\","
		"\"file\":{\"path\":\"/run/db\",\"format\":\"template\",\"template\":\"{{ username }}\"}},"
		"{\"name\":\"api\",\"path\":\"kv/api\"},{\"name\":\"other\",\"path\":\"kv/o\"}],"
		"\"templates\":[{\"destination\":\"/run/app.conf\",\"mode\":\"0440\",\"template\":"
		"\"{{ with secret \\\"db\\\" }}{{ .Data.username }}{{ end }}{{ .api.key | json }}\"}]}",
		&cfg, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(cfg.ntemplates, 1);
	ck_assert_str_eq(cfg.templates[0]->path, "/run/app.conf");
	ck_assert_int_eq(cfg.templates[0]->mode, 0440);
	ck_assert_int_eq(cfg.templates[0]->format, BROKER_FORMAT_TEMPLATE);
	ck_assert(cfg.templates[0]->secret == SIZE_MAX);
	ck_assert_str_eq(cfg.templates[0]->origin, "broker.json: templates[0].template");
	ck_assert_uint_eq(broker_template_ndeps(cfg.templates[0]->template), 2);
	ck_assert(broker_template_reads(cfg.templates[0]->template, 0));
	ck_assert(broker_template_reads(cfg.templates[0]->template, 1));
	ck_assert(!broker_template_reads(cfg.templates[0]->template, 2));
	ck_assert_uint_eq(cfg.secrets[0].file->secret, 0);
	ck_assert(broker_template_reads(cfg.secrets[0].file->template, 0));
	ck_assert_uint_eq(broker_template_ndeps(cfg.secrets[0].file->template), 1);
	broker_config_clear(&cfg);

	/* The longest accepted durations. */
	ck_assert_msg(parse_text(
		"{\"vault\":{},\"grace\":\"720h\",\"retry\":{\"initial\":\"1s\",\"max\":2592000},"
		"\"secrets\":[{\"name\":\"a\",\"path\":\"kv/x\",\"refresh\":\"720h\"}]}",
		&cfg, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(cfg.secrets[0].refresh_ms, BROKER_DURATION_MAX_MS);
	ck_assert_int_eq(cfg.retry_cap_ms, BROKER_DURATION_MAX_MS);
	broker_config_clear(&cfg);
}
END_TEST

/* ---- arena and snapshots ---- */

START_TEST(test_arena)
{
	struct broker_arena *a = broker_arena_new();
	unsigned char *blocks[300], *big;

	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(broker_arena_bytes(a), 0);
	for (size_t i = 0; i < 300; i++) {
		blocks[i] = broker_arena_alloc(a, 200);
		ck_assert_ptr_nonnull(blocks[i]);
		ck_assert_uint_eq((uintptr_t)blocks[i] % 16, 0);
		for (size_t k = 0; k < 200; k++)
			ck_assert_uint_eq(blocks[i][k], 0);
		memset(blocks[i], 0xA5, 200);
	}
	/* 300 blocks of 256 bytes share two 64 KiB regions, not 300 page-sized allocations. */
	ck_assert_uint_le(broker_arena_bytes(a), 2 * 65536);
	broker_arena_release(a, blocks[7]);
	/* Released memory is zeroed (past the free-list link) and handed out again. */
	for (size_t k = 16; k < 200; k++)
		ck_assert_uint_eq(blocks[7][k], 0);
	ck_assert_ptr_eq(broker_arena_alloc(a, 180), blocks[7]);
	big = broker_arena_alloc(a, 100000);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 100000);
	broker_arena_release(a, big);
	ck_assert_ptr_null(broker_arena_alloc(a, 0));
	ck_assert_ptr_null(broker_arena_alloc(a, BROKER_SNAPSHOT_BLOCK_MAX + 1));
	for (size_t i = 0; i < 300; i++)
		if (i != 7)
			broker_arena_release(a, blocks[i]);
	broker_arena_release(a, blocks[7]);
	broker_arena_free(a);
}
END_TEST

/* Regions shrink under a small memory lock limit, so that several fit under it; what
 * the arena holds is accounted as locked or not. */
START_TEST(test_arena_region_size_and_lock_accounting)
{
	struct broker_memlock ml = { 0 };
	struct broker_arena_stats st;
	struct broker_arena *a;
	void *p, *big;

	ck_assert_uint_eq(broker_arena_region_size(NULL), 65536);
	ck_assert_uint_eq(broker_arena_region_size(&ml), 65536);
	ml.limited = true;
	ml.limit = 8u << 20;
	ck_assert_uint_eq(broker_arena_region_size(&ml), 65536);
	ml.limit = 128u << 10;
	ck_assert_uint_eq(broker_arena_region_size(&ml), 32768);
	ml.limit = 64u << 10;
	ck_assert_uint_eq(broker_arena_region_size(&ml), 16384);
	ml.limit = 4096;
	ck_assert_uint_eq(broker_arena_region_size(&ml), 16384);

	a = broker_arena_new_with(&ml);
	ck_assert_ptr_nonnull(a);
	p = broker_arena_alloc(a, 100);
	big = broker_arena_alloc(a, 50000);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(big);
	broker_arena_stats(a, &st);
	ck_assert_uint_eq(st.region_size, 16384);
	/* Every byte held is counted one way or the other (this process may lock all). */
	ck_assert_uint_ge(st.locked + st.unlocked, 16384 + 50000);
	broker_arena_release(a, big);
	broker_arena_stats(a, &st);
	ck_assert_uint_eq(st.locked + st.unlocked, 16384);
	broker_arena_release(a, p);
	broker_arena_free(a);
}
END_TEST

START_TEST(test_snapshot_refcount_and_zeroing)
{
	struct broker_arena *a = broker_arena_new();
	struct broker_lease_info li = { .leased = true, .renewable = true, .ttl_s = 30,
					.expires_mono_ms = 1000, .expires_real_ms = 1795677359000LL };
	struct broker_snapshot *s = NULL, *r = NULL;
	const struct broker_kv *kv;
	json_t *data = json_pack("{s:s, s:s, s:i, s:{s:b}}", "username", "u-1",
				 "password", "pa'ss word", "port", 5432, "opts", "tls", 1);
	const char *value;
	size_t vlen;

	ck_assert_int_eq(broker_snapshot_new(a, "db", 3, data, &li, &s), 0);
	ck_assert_uint_eq(s->version, 3);
	ck_assert_ptr_nonnull(strstr(s->body, "{\"name\":\"db\",\"version\":3,\"data\":{\"opts\":{\"tls\":true},"
				     "\"password\":\"pa'ss word\",\"port\":5432,\"username\":\"u-1\"},"
				     "\"lease\":{\"renewable\":true,\"ttl\":30,\"expires_at\":\"2026-11-26T"));
	ck_assert_uint_eq(strlen(s->body), s->body_len);
	ck_assert_int_eq(s->body[s->body_len - 1], '\n');
	kv = broker_snapshot_key(s, "password");
	ck_assert_ptr_nonnull(kv);
	ck_assert_str_eq(kv->value, "pa'ss word");
	ck_assert_str_eq(broker_snapshot_key(s, "port")->value, "5432");
	ck_assert_str_eq(broker_snapshot_key(s, "opts")->value, "{\"tls\":true}");
	ck_assert_ptr_null(broker_snapshot_key(s, "nope"));
	/* Its stated expiry (2026-11-26) is past: expired, whatever the monotonic clock says. */
	ck_assert(broker_snapshot_expired(s, 999));

	/* The same data, new lease facts: same version, same digest. */
	li.ttl_s = 10;
	li.expires_real_ms = lk_now_real_ms() + 3600 * 1000LL;
	ck_assert_int_eq(broker_snapshot_relabel(s, "db", &li, &r), 0);
	ck_assert_uint_eq(r->version, 3);
	ck_assert_mem_eq(r->digest, s->digest, 32);
	ck_assert_ptr_nonnull(strstr(r->body, "\"ttl\":10"));
	ck_assert(!broker_snapshot_expired(r, 999));
	ck_assert(broker_snapshot_expired(r, 1000));
	broker_snapshot_unref(r);
	/* The monotonic expiry ahead, the stated one just past (the clocks drifted). */
	li.expires_real_ms = lk_now_real_ms() - 1;
	ck_assert_int_eq(broker_snapshot_relabel(s, "db", &li, &r), 0);
	ck_assert(broker_snapshot_expired(r, 999));
	/* More than the drift allowed left by the monotonic clock: a wall clock that jumped
	 * ahead does not end it. */
	ck_assert(!broker_snapshot_expired(r, 1000 - BROKER_CLOCK_DRIFT_MAX_MS - 1));
	ck_assert(broker_snapshot_expired(r, 1000 - BROKER_CLOCK_DRIFT_MAX_MS));
	broker_snapshot_unref(r);

	/* A reader's reference keeps the payload; the last one zeroes it. */
	value = kv->value;
	vlen = kv->value_len;
	ck_assert_ptr_eq(broker_snapshot_ref(s), s);
	broker_snapshot_unref(s);
	ck_assert_mem_eq(value, "pa'ss word", vlen);
	broker_snapshot_unref(s);
	for (size_t i = 0; i < vlen; i++)
		ck_assert_uint_eq((unsigned char)value[i], 0);

	ck_assert_int_eq(broker_snapshot_new(a, "bad name", 1, data, &li, &s), -EINVAL);
	json_decref(data);
	broker_arena_free(a);
}
END_TEST

/* Data up to LK_SECRET_MAX is served, however it splits into keys; over it is refused. */
START_TEST(test_snapshot_at_the_data_limit)
{
	struct broker_arena *a = broker_arena_new();
	struct broker_lease_info li = { 0 };
	struct broker_snapshot *s = NULL;
	/* {"v":"..."}: 8 bytes around the value. */
	size_t vlen = LK_SECRET_MAX - 8;
	char *big = malloc(vlen + 2);
	json_t *data, *many;
	char key[16];

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', vlen + 1);
	big[vlen] = '\0';
	data = json_pack("{s:s}", "v", big);
	ck_assert_int_eq(broker_snapshot_new(a, "big", 1, data, &li, &s), 0);
	ck_assert_uint_eq(s->data_len, LK_SECRET_MAX);
	ck_assert_uint_eq(broker_snapshot_key(s, "v")->value_len, vlen);
	ck_assert_int_eq(memcmp(s->data_json, "{\"v\":\"xxx", 9), 0);
	broker_snapshot_unref(s);
	json_decref(data);
	/* One byte more is over. */
	big[vlen] = 'x';
	big[vlen + 1] = '\0';
	data = json_pack("{s:s}", "v", big);
	ck_assert_int_eq(broker_snapshot_new(a, "big", 2, data, &li, &s), -E2BIG);
	json_decref(data);
	/* The most keys, with the data still near the limit. */
	many = json_object();
	for (int i = 0; i < BROKER_KEYS_MAX; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		big[LK_SECRET_MAX / BROKER_KEYS_MAX - 16] = '\0';
		json_object_set_new(many, key, json_string(big));
	}
	ck_assert_int_eq(broker_snapshot_new(a, "many", 1, many, &li, &s), 0);
	ck_assert_uint_gt(s->data_len, LK_SECRET_MAX - LK_SECRET_MAX / 16);
	ck_assert_uint_eq(s->nkeys, BROKER_KEYS_MAX);
	ck_assert_ptr_nonnull(broker_snapshot_key(s, "k1023"));
	broker_snapshot_unref(s);
	json_decref(many);
	free(big);
	broker_arena_free(a);
}
END_TEST

START_TEST(test_digest)
{
	struct broker_arena *a = broker_arena_new();
	json_t *x = json_loads("{\"a\":\"1\",\"b\":\"2\"}", 0, NULL);
	json_t *y = json_loads("{\"b\":\"2\",\"a\":\"1\"}", 0, NULL);
	json_t *z = json_loads("{\"a\":\"1\",\"b\":\"3\"}", 0, NULL);
	unsigned char dx[32], dy[32], dz[32];

	ck_assert_int_eq(broker_data_digest(a, x, dx), 0);
	ck_assert_int_eq(broker_data_digest(a, y, dy), 0);
	ck_assert_int_eq(broker_data_digest(a, z, dz), 0);
	ck_assert_mem_eq(dx, dy, 32);
	ck_assert(memcmp(dx, dz, 32) != 0);
	json_decref(x);
	json_decref(y);
	json_decref(z);
	broker_arena_free(a);
}
END_TEST

/* ---- scheduling math ---- */

START_TEST(test_renew_at)
{
	struct lk_backoff rng;
	int64_t lo = INT64_MAX, hi = 0, sum = 0;
	const int n = 5000;

	lk_backoff_init(&rng, 1, 1);
	for (int i = 0; i < n; i++) {
		int64_t at = broker_renew_at(1000, 30000, &rng) - 1000;

		/* 2/3 of 30 s = 20 s, +-10% = [18 s, 22 s] */
		ck_assert_int_ge(at, 18000);
		ck_assert_int_le(at, 22000);
		lo = at < lo ? at : lo;
		hi = at > hi ? at : hi;
		sum += at;
	}
	/* The jitter is really there, on both sides, centred on 2/3. */
	ck_assert_int_lt(lo, 18500);
	ck_assert_int_gt(hi, 21500);
	ck_assert_int_gt(sum / n, 19700);
	ck_assert_int_lt(sum / n, 20300);
	ck_assert_int_eq(broker_renew_at(5, 0, &rng), 5);
}
END_TEST

START_TEST(test_rotate_at)
{
	struct lk_backoff rng;

	lk_backoff_init(&rng, 1, 1);
	for (int i = 0; i < 2000; i++) {
		int64_t at = broker_rotate_at(0, 0, 60000, &rng);

		/* at least 1/5 of the 60 s lifetime (12 s) left when the replacement is read */
		ck_assert_int_le(at, 60000 - 12000);
		ck_assert_int_ge(at, 60000 - 60000 / 4 - 60000 / 20);
	}
	/* Already past the point: now. */
	ck_assert_int_eq(broker_rotate_at(50000, 0, 60000, &rng), 50000);
	/* A capped renewal late in life: issued at 0, expiring at 6 s, now 4 s. */
	ck_assert_int_ge(broker_rotate_at(4000, 0, 6000, &rng), 4000);
	ck_assert_int_le(broker_rotate_at(4000, 0, 6000, &rng), 6000 - 6000 / 5);
}
END_TEST

START_TEST(test_revoke_at)
{
	/* grace applies when expiry is far */
	ck_assert_int_eq(broker_revoke_at(1000, 30000, 1000000), 31000);
	/* never past expiry: capped to expiry minus the margin */
	ck_assert_int_eq(broker_revoke_at(1000, 30000, 20000), 20000 - BROKER_REVOKE_MARGIN_MS);
	ck_assert_int_lt(broker_revoke_at(1000, 30000, 20000), 20000);
	/* nearly expired: now */
	ck_assert_int_eq(broker_revoke_at(1000, 30000, 1200), 1000);
	/* no expiry known */
	ck_assert_int_eq(broker_revoke_at(1000, 30000, 0), 31000);
	ck_assert_int_eq(broker_revoke_at(1000, 0, 0), 1000);
}
END_TEST

START_TEST(test_refresh_at)
{
	struct lk_backoff rng;

	lk_backoff_init(&rng, 1, 1);
	for (int i = 0; i < 1000; i++) {
		int64_t at = broker_refresh_at(0, 300000, &rng);

		ck_assert_int_ge(at, 270000);
		ck_assert_int_le(at, 330000);
	}
}
END_TEST

START_TEST(test_expires_at)
{
	/* Counted from when the request left: never later than the backend's own expiry. */
	ck_assert_int_eq(broker_expires_at(1000, 3), 4000);
	ck_assert_int_eq(broker_expires_at(1000, 0), 1000);
	ck_assert_int_eq(broker_expires_at(1000, -5), 1000);
	/* A TTL from the backend that would overflow is cut, not wrapped into the past. */
	ck_assert_int_eq(broker_expires_at(1000, INT64_MAX), 1000 + BROKER_TTL_MAX_S * 1000);
	ck_assert_int_gt(broker_expires_at(INT64_MAX / 4, INT64_MAX / 1000), INT64_MAX / 4);
}
END_TEST

/* ---- renderers and peers ---- */

START_TEST(test_render)
{
	struct broker_arena *a = broker_arena_new();
	struct broker_lease_info li = { 0 };
	struct broker_file_spec fs = { .format = BROKER_FORMAT_ENV, .mode = 0400 };
	struct broker_snapshot *s = NULL;
	json_t *data = json_pack("{s:s, s:s}", "USER", "app", "PASSWORD", "it's $secret");
	struct lk_buf out;
	struct lk_error err;

	lk_error_clear(&err);
	ck_assert_int_eq(broker_snapshot_new(a, "x", 1, data, &li, &s), 0);
	lk_buf_init(&out, 4096, true);
	ck_assert_int_eq(broker_render(&fs, s, &out, &err), 0);
	ck_assert_str_eq(out.data, "PASSWORD=it's $secret\nUSER=app\n");
	lk_buf_reset(&out);
	fs.format = BROKER_FORMAT_JSON;
	ck_assert_int_eq(broker_render(&fs, s, &out, &err), 0);
	ck_assert_str_eq(out.data, "{\"PASSWORD\":\"it's $secret\",\"USER\":\"app\"}\n");
	lk_buf_reset(&out);
	/* The older {{ KEY }} form of a secret's own file, compiled by broker/template. */
	fs.format = BROKER_FORMAT_TEMPLATE;
	fs.secret = 0;
	{
		static const char *const names[] = { "x" };
		const char *text = "u={{ USER }} p={{.PASSWORD}}!";

		ck_assert_int_eq(broker_template_compile(text, strlen(text), "t.tpl", names, 1, 0,
							 &fs.template, &err), 0);
		ck_assert_int_eq(broker_render(&fs, s, &out, &err), 0);
		ck_assert_str_eq(out.data, "u=app p=it's $secret!");
		lk_buf_reset(&out);
		fs.template = broker_template_free(fs.template);
		text = "\n{{ MISSING }}";
		ck_assert_int_eq(broker_template_compile(text, strlen(text), "t.tpl", names, 1, 0,
							 &fs.template, &err), 0);
		ck_assert_int_eq(broker_render(&fs, s, &out, &err), -ENOENT);
		ck_assert_ptr_nonnull(strstr(err.msg, "t.tpl:2: secret \"x\" has no key \"MISSING\""));
		ck_assert_ptr_null(strstr(err.msg, "it's"));
		fs.template = broker_template_free(fs.template);
	}
	lk_buf_free(&out);
	broker_snapshot_unref(s);
	json_decref(data);
	broker_arena_free(a);
}
END_TEST

/* How systemd's EnvironmentFile reads one "KEY=..." assignment (src/basic/env-file.c:
 * parse_env_file_internal, for one key): the value, NUL-terminated, into out. */
static void
systemd_read(const char *text, char *out, size_t cap)
{
	enum { PRE_VALUE, VALUE, VALUE_ESCAPE, SQ, DQ, DQ_ESCAPE } st = PRE_VALUE;
	const char *p = strchr(text, '=') + 1;
	size_t n = 0, last_ws = SIZE_MAX;

	for (; *p != '\0' && n + 2 < cap; p++) {
		char c = *p;

		switch (st) {
		case PRE_VALUE:
			if (c == '\n')
				goto done;
			if (c == '\'')
				st = SQ;
			else if (c == '"')
				st = DQ;
			else if (c == '\\')
				st = VALUE_ESCAPE;
			else if (c != ' ' && c != '\t') {
				st = VALUE;
				out[n++] = c;
			}
			break;
		case VALUE:
			if (c == '\n')
				goto done;
			if (c == '\\') {
				st = VALUE_ESCAPE;
				last_ws = SIZE_MAX;
			} else {
				if (c != ' ' && c != '\t')
					last_ws = SIZE_MAX;
				else if (last_ws == SIZE_MAX)
					last_ws = n;
				out[n++] = c;
			}
			break;
		case VALUE_ESCAPE:
			st = VALUE;
			if (c != '\n')
				out[n++] = c;
			break;
		case SQ:
			if (c == '\'')
				st = PRE_VALUE;
			else
				out[n++] = c;
			break;
		case DQ:
			if (c == '"')
				st = PRE_VALUE;
			else if (c == '\\')
				st = DQ_ESCAPE;
			else
				out[n++] = c;
			break;
		case DQ_ESCAPE:
			st = DQ;
			if (strchr("\"\\`$", c) != NULL) {
				out[n++] = c;
			} else if (c != '\n') {
				out[n++] = '\\';
				out[n++] = c;
			}
			break;
		}
	}
done:
	if (st == VALUE && last_ws != SIZE_MAX)
		n = last_ws;
	out[n] = '\0';
}

/* How docker --env-file reads it: the rest of the line after the first '='. */
static void
docker_read(const char *text, char *out, size_t cap)
{
	const char *p = strchr(text, '=') + 1;
	size_t n = strcspn(p, "\n");

	snprintf(out, cap, "%.*s", (int)n, p);
}

/* Each value either round-trips through the readers its dialect names, or is refused with
 * a reason (never quoting the value). */
START_TEST(test_env_dialects)
{
	static const char *const values[] = {
		"plain", "with space", "it's $HOME", "a\"b", "back\\slash", " lead", "trail ",
		"'quoted'", "\"dq\"", "line\nbreak", "cr\rhere", "#hash", "a=b", "`tick`",
		"tab\tin", "", "\xc3\xa9t\xc3\xa9", "x\\\n", "nul\\u0000",
	};
	static const enum broker_env_dialect dialects[] = {
		BROKER_ENV_PORTABLE, BROKER_ENV_SYSTEMD, BROKER_ENV_DOCKER,
	};
	struct broker_arena *a = broker_arena_new();

	for (size_t d = 0; d < 3; d++) {
		for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
			struct broker_file_spec fs = { .format = BROKER_FORMAT_ENV,
						       .dialect = dialects[d] };
			struct broker_lease_info li = { 0 };
			struct broker_snapshot *snap = NULL;
			json_t *data = json_pack("{s:s}", "K", values[i]);
			char got[256];
			struct lk_buf out;
			struct lk_error err;
			int rc;

			lk_error_clear(&err);
			ck_assert_int_eq(broker_snapshot_new(a, "x", 1, data, &li, &snap), 0);
			lk_buf_init(&out, 4096, true);
			rc = broker_render(&fs, snap, &out, &err);
			if (rc < 0) {
				ck_assert_msg(strstr(err.msg, "the value of key \"K\"") != NULL, "%s",
					      err.msg);
				/* Portable refuses only what the two read differently. */
				if (dialects[d] == BROKER_ENV_PORTABLE && strchr(values[i], '\n') == NULL &&
				    strchr(values[i], '\r') == NULL) {
					char s1[256], s2[256], line[300];

					snprintf(line, sizeof(line), "K=%s\n", values[i]);
					systemd_read(line, s1, sizeof(s1));
					docker_read(line, s2, sizeof(s2));
					ck_assert_msg(strcmp(s1, s2) != 0 || strcmp(s1, values[i]) != 0,
						      "value %zu refused although both read it", i);
				}
			} else {
				ck_assert_int_eq(rc, 0);
				if (dialects[d] != BROKER_ENV_DOCKER) {
					systemd_read(out.data, got, sizeof(got));
					ck_assert_msg(strcmp(got, values[i]) == 0,
						      "dialect %zu value %zu: systemd reads it otherwise", d, i);
				}
				if (dialects[d] != BROKER_ENV_SYSTEMD) {
					docker_read(out.data, got, sizeof(got));
					ck_assert_msg(strcmp(got, values[i]) == 0,
						      "dialect %zu value %zu: docker reads it otherwise", d, i);
				}
			}
			lk_buf_free(&out);
			broker_snapshot_unref(snap);
			json_decref(data);
		}
	}
	broker_arena_free(a);
}
END_TEST

START_TEST(test_peer_allowed)
{
	uid_t uids[] = { 1000 };
	gid_t gids[] = { 50 };
	struct broker_secret_spec open = { .restricted = false };
	struct broker_secret_spec shut = { .restricted = true };
	struct broker_secret_spec some = { .restricted = true, .uids = uids, .nuids = 1,
					   .gids = gids, .ngids = 1 };
	struct lk_peer u1000 = { true, 1, 1000, 1000 }, g50 = { true, 1, 7, 50 };
	struct lk_peer root = { true, 1, 0, 0 }, tcp = { false, 0, 0, 0 };

	ck_assert(broker_peer_allowed(&open, &root));
	ck_assert(!broker_peer_allowed(&shut, &root));
	ck_assert(broker_peer_allowed(&some, &u1000));
	ck_assert(broker_peer_allowed(&some, &g50));
	ck_assert(!broker_peer_allowed(&some, &root));
	ck_assert(!broker_peer_allowed(&some, &tcp));
}
END_TEST

/* A required secret with nothing valid retries on a short cap; others on retry.max. */
START_TEST(test_retry_delay)
{
	struct lk_backoff bo;
	int64_t most = 0, d;

	lk_backoff_init(&bo, 500, 30000);
	for (int i = 0; i < 200; i++) {
		d = broker_retry_delay(&bo, true);
		ck_assert_int_le(d, BROKER_RETRY_URGENT_CAP_MS);
		ck_assert_int_eq(bo.cap_ms, 30000);
	}
	for (int i = 0; i < 200; i++) {
		d = broker_retry_delay(&bo, false);
		ck_assert_int_le(d, 30000);
		if (d > most)
			most = d;
	}
	ck_assert_int_gt(most, BROKER_RETRY_URGENT_CAP_MS);
	/* A retry.max below the urgent cap stays as it is. */
	lk_backoff_init(&bo, 100, 400);
	for (int i = 0; i < 50; i++)
		ck_assert_int_le(broker_retry_delay(&bo, true), 400);
}
END_TEST

/* ---- the system-call allow-list ---- */

static void *
thread_noop(void *arg)
{
	return arg;
}

/* Runs what(kind) in a child under the broker's allow-list; returns its wait status. */
static int
under_seccomp(int kind)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct lk_error err;
		char buf[64];
		pthread_t th;
		int fd;

		lk_error_clear(&err);
		if (broker_seccomp_install(&err) < 0)
			_exit(100);
		switch (kind) {
		case 0:
			/* What the broker does all day: files, sockets, threads, time. */
			fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
			if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
				_exit(1);
			close(fd);
			if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
				_exit(2);
			close(fd);
			if ((fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
				_exit(3);
			close(fd);
			if (pthread_create(&th, NULL, thread_noop, NULL) != 0 ||
			    pthread_join(th, NULL) != 0)
				_exit(4);
			if (lk_now_mono_ms() <= 0 || getpid() <= 0)
				_exit(5);
			_exit(0);
		case 1:
			/* Never, in any build. */
			syscall(__NR_execve, "/bin/true", NULL, NULL);
			_exit(0);
		case 2:
			/* A call outside the list. */
			syscall(__NR_getpriority, 0, 0);
			_exit(0);
		case 3:
			/* An argument outside the list: a raw packet socket. */
			syscall(__NR_socket, AF_PACKET, SOCK_RAW, 0);
			_exit(0);
		default:
			/* A process, not a thread. */
			syscall(__NR_clone, SIGCHLD, 0, 0, 0, 0);
			_exit(0);
		}
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* The allow-list lets the broker's own calls through and kills the process that makes
 * another (only the test's child process here); sanitizer builds log those instead,
 * except the calls that are never allowed. */
START_TEST(test_seccomp_allow_list)
{
	int st;

	st = under_seccomp(0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "allowed calls: status %#x", st);
	st = under_seccomp(1);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "execve: status %#x", st);
	for (int kind = 2; kind <= 4; kind++) {
		st = under_seccomp(kind);
		if (broker_seccomp_enforcing())
			ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
				      "case %d: status %#x", kind, st);
		else
			ck_assert_msg(WIFEXITED(st), "case %d (logged only): status %#x", kind, st);
	}
}
END_TEST

START_TEST(test_etag_and_route)
{
	struct broker_route_req rr;
	uint64_t index = 0;
	int64_t wait = 0;

	ck_assert(broker_etag_matches("\"3\"", 3));
	ck_assert(broker_etag_matches("W/\"3\"", 3));
	ck_assert(broker_etag_matches(" \"1\" , \"3\"", 3));
	ck_assert(broker_etag_matches("*", 3));
	ck_assert(!broker_etag_matches("\"30\"", 3));
	ck_assert(!broker_etag_matches("3", 3));
	ck_assert(!broker_etag_matches("\"3", 3));
	ck_assert(!broker_etag_matches("\"\"", 0));
	/* Tags compare as strings: a leading zero is another tag. */
	ck_assert(broker_etag_matches("\"0\"", 0));
	ck_assert(!broker_etag_matches("\"07\"", 7));
	ck_assert(!broker_etag_matches("\"018446744073709551615\"", UINT64_MAX));
	ck_assert(broker_etag_matches(" *", 3));
	ck_assert(!broker_etag_matches("\"99999999999999999999999\"", 3));
	/* The edges of uint64_t: every version up to UINT64_MAX matches its own tag; one
	 * past it, or a digit more, is no version and matches none (not the wrapped one). */
	ck_assert(broker_etag_matches("\"18446744073709551615\"", UINT64_MAX));
	ck_assert(broker_etag_matches("\"18446744073709551614\"", UINT64_MAX - 1));
	ck_assert(broker_etag_matches("\"18446744073709551610\"", UINT64_MAX - 5));
	ck_assert(broker_etag_matches("\"18446744073709551609\"", UINT64_MAX - 6));
	ck_assert(broker_etag_matches("\"1844674407370955161\"", UINT64_MAX / 10));
	ck_assert(broker_etag_matches("W/\"1\", \"18446744073709551615\"", UINT64_MAX));
	ck_assert(!broker_etag_matches("\"18446744073709551615\"", UINT64_MAX - 1));
	ck_assert(!broker_etag_matches("\"18446744073709551616\"", 0));
	ck_assert(!broker_etag_matches("\"18446744073709551616\"", UINT64_MAX));
	ck_assert(!broker_etag_matches("\"18446744073709551625\"", 9));
	ck_assert(!broker_etag_matches("\"184467440737095516150\"", UINT64_MAX));
	ck_assert(!broker_etag_matches("\"184467440737095516150\"", UINT64_MAX * 10));
	ck_assert(!broker_etag_matches("\"99999999999999999999\"", UINT64_MAX));
	ck_assert(!broker_etag_matches(NULL, 3));

	ck_assert_int_eq(broker_route_parse("/v1/secrets", &rr), BROKER_ROUTE_LIST);
	ck_assert_int_eq(broker_route_parse("/v1/secrets/db", &rr), BROKER_ROUTE_SECRET);
	ck_assert_str_eq(rr.name, "db");
	ck_assert(rr.name_ok && rr.key == NULL);
	ck_assert_int_eq(broker_route_parse("/v1/secrets/db/pass/word", &rr), BROKER_ROUTE_KEY);
	ck_assert_str_eq(rr.name, "db");
	ck_assert_str_eq(rr.key, "pass/word");
	ck_assert_int_eq(broker_route_parse("/v1/secrets/db/", &rr), BROKER_ROUTE_KEY);
	ck_assert(!rr.key_ok);
	ck_assert_int_eq(broker_route_parse("/v1/secrets//x", &rr), BROKER_ROUTE_KEY);
	ck_assert(!rr.name_ok);
	ck_assert_int_eq(broker_route_parse("/v1/secretsX", &rr), BROKER_ROUTE_OTHER);
	ck_assert_int_eq(broker_route_parse("/metrics", &rr), BROKER_ROUTE_METRICS);

	ck_assert_int_eq(broker_parse_blocking(NULL, NULL, &index, &wait), 1);
	ck_assert_int_eq(broker_parse_blocking(NULL, "1s", &index, &wait), -EINVAL);
	ck_assert_int_eq(broker_parse_blocking("7", "20m", &index, &wait), 0);
	ck_assert_int_eq(index, 7);
	ck_assert_int_eq(wait, BROKER_WAIT_MAX_MS);
	ck_assert_int_eq(broker_parse_blocking("-1", NULL, &index, &wait), -EINVAL);
	ck_assert_int_eq(broker_parse_blocking("99999999999999999999999", NULL, &index, &wait),
			 -EINVAL);
}
END_TEST

/* Past the table's bound reads are counted, not lost: one "not itemised" line. */
/* The table grows with the distinct reads (none is left unitemised below the bound) and
 * forgets idle ones at a flush; a long key is logged cut, marked with "...". */
START_TEST(test_audit_grows_and_forgets)
{
	struct lk_peer peer = { true, 10, 1000, 1000 };
	char path[] = "/tmp/latchkey-audit.XXXXXX";
	struct broker_audit *a = broker_audit_new(4096, 1000);
	int fd = mkstemp(path);
	char name[32], longkey[300], *text, *p;
	int reads = 0;

	ck_assert_ptr_nonnull(a);
	ck_assert_int_ge(fd, 0);
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	lk_log_setup(fd, LK_INFO);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		broker_audit_read(a, &peer, name, NULL, 1, "ok");
	}
	broker_audit_read(a, &peer, "s7", NULL, 1, "ok");          /* a repeat: kept */
	broker_audit_read(a, &peer, "long", longkey, 1, "ok");
	broker_audit_read(a, &peer, "long", longkey, 1, "ok");
	broker_audit_flush(a, lk_now_mono_ms() + 2000, false);
	broker_audit_read(a, &peer, "s8", NULL, 1, "ok");          /* forgotten: logged again */
	broker_audit_read(a, &peer, "s7", NULL, 1, "ok");          /* still known: counted */
	broker_audit_flush(a, lk_now_mono_ms() + 4000, true);
	lk_log_setup(2, LK_INFO);
	close(fd);
	text = t_read_file(path);
	unlink(path);
	ck_assert_ptr_nonnull(text);
	for (p = text; (p = strstr(p, "\"msg\":\"read\"")) != NULL; p++)
		reads++;
	/* 300 first reads, "long" once and once summarised, s7 summarised twice, s8 again. */
	ck_assert_int_eq(reads, 300 + 2 + 2 + 1);
	ck_assert_ptr_null(strstr(text, "not itemised"));
	ck_assert_ptr_nonnull(strstr(text, "\"secret\":\"s8\",\"key\":null,\"version\":1,\"result\":\"ok\"}"));
	ck_assert_ptr_nonnull(strstr(text, "\"secret\":\"s7\",\"key\":null,\"version\":1,"
				     "\"result\":\"ok\",\"repeats\":1"));
	/* Keys are kept to 128 bytes: 125 of the key and "...". */
	longkey[125] = '\0';
	p = strstr(text, longkey);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(strncmp(p + 125, "...\"", 4), 0);
	free(text);
	broker_audit_free(a);
}
END_TEST

START_TEST(test_audit_bounded)
{
	struct lk_peer peer = { true, 10, 1000, 1000 };
	char path[] = "/tmp/latchkey-audit.XXXXXX";
	struct broker_audit *a = broker_audit_new(2, 1000);
	int fd = mkstemp(path);
	char *text;

	ck_assert_ptr_nonnull(a);
	ck_assert_int_ge(fd, 0);
	lk_log_setup(fd, LK_INFO);
	for (int i = 0; i < 5; i++)
		broker_audit_read(a, &peer, "a", NULL, 1, "ok");
	broker_audit_read(a, &peer, "b", "k", 1, "ok");
	broker_audit_read(a, &peer, "c", NULL, 1, "ok");
	broker_audit_read(a, &peer, "d", NULL, 1, "ok");
	broker_audit_read(a, &peer, "a", NULL, 2, "forbidden");
	broker_audit_flush(a, lk_now_mono_ms(), true);
	lk_log_setup(2, LK_INFO);
	close(fd);
	text = t_read_file(path);
	unlink(path);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"secret\":\"a\",\"key\":null,\"version\":1,\"result\":\"ok\"}"));
	ck_assert_ptr_nonnull(strstr(text, "\"secret\":\"a\",\"key\":null,\"version\":1,"
				     "\"result\":\"ok\",\"repeats\":4"));
	ck_assert_ptr_nonnull(strstr(text, "\"secret\":\"b\",\"key\":\"k\""));
	ck_assert_ptr_nonnull(strstr(text, "\"msg\":\"reads not itemised\",\"reads\":3"));
	free(text);
	broker_audit_free(a);
}
END_TEST

/* ---- exec mode ---- */

static const char exec_config[] =
	"{\"vault\": {\"address\": \"http://127.0.0.1:8200\", \"auth\": {\"method\": \"token\","
	" \"token_file\": \"/run/secrets/token\"}},\n"
	" \"secrets\": [{\"name\": \"api\", \"path\": \"secret/data/api\"},\n"
	"              {\"name\": \"billing.v2\", \"path\": \"secret/data/api2\"}],\n"
	" \"exec\": {\"command\": [\"/bin/app\", \"--flag\"], \"env\": {\"API_PW\": \"api.password\","
	" \"V2_TOKEN\": \"billing.v2.token\"}, \"kill_timeout\": \"3s\"}}\n";

/* exec.env references split after the configured secret name (names may hold dots); two
 * candidates are ambiguous. */
START_TEST(test_exec_config)
{
	struct broker_config cfg;
	struct lk_error err;
	static const char ambiguous[] =
		"{\"vault\": {}, \"secrets\": [{\"name\": \"a\", \"path\": \"p/a\"}, {\"name\": \"a.b\","
		" \"path\": \"p/b\"}], \"exec\": {\"command\": [\"x\"], \"env\": {\"X\": \"a.b.c\"}}}";

	lk_error_clear(&err);
	ck_assert_msg(parse_text(exec_config, &cfg, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(cfg.exec);
	ck_assert_uint_eq(cfg.exec->ncommand, 2);
	ck_assert_str_eq(cfg.exec->command[1], "--flag");
	ck_assert_ptr_null(cfg.exec->command[2]);
	ck_assert_uint_eq(cfg.exec->nenv, 2);
	ck_assert_int_eq(cfg.exec->restart, BROKER_RESTART_ALWAYS);
	ck_assert_int_eq(cfg.exec->restart_signal, 0);
	ck_assert_int_eq(cfg.exec->kill_timeout_ms, 3000);
	for (size_t i = 0; i < cfg.exec->nenv; i++) {
		const struct broker_exec_env *e = &cfg.exec->env[i];

		if (strcmp(e->name, "API_PW") == 0) {
			ck_assert_uint_eq(e->secret, 0);
			ck_assert_str_eq(e->key, "password");
		} else {
			ck_assert_str_eq(e->name, "V2_TOKEN");
			ck_assert_uint_eq(e->secret, 1);
			ck_assert_str_eq(e->key, "token");
		}
	}
	{
		/* "--" replaces the file's command. */
		char *argv[] = { "/bin/other", NULL };

		ck_assert_int_eq(broker_config_set_command(&cfg, argv, 1, &err), 0);
		ck_assert_uint_eq(cfg.exec->ncommand, 1);
		ck_assert_str_eq(cfg.exec->command[0], "/bin/other");
		ck_assert_ptr_null(cfg.exec->command[1]);
	}
	broker_config_clear(&cfg);
	ck_assert_int_eq(parse_text(ambiguous, &cfg, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "broker.json: exec.env.X: ambiguous") != NULL, "%s", err.msg);
}
END_TEST

/* broker_find by name over an index sorted at init: every name of a config listed out of
 * order is found at its own entry, and names that are not there (between, before, after
 * the others, a prefix) are not. */
START_TEST(test_find_by_name)
{
	static const char *const names[] = { "m", "b", "zz", "a.b", "z", "c", "a", "mm" };
	char text[2048];
	size_t len;
	struct broker_config cfg;
	struct broker b;
	struct lk_error err;

	lk_error_clear(&err);
	len = (size_t)snprintf(text, sizeof(text), "{\"vault\": {\"address\": \"http://127.0.0.1:8200\","
			       " \"auth\": {\"method\": \"token\", \"token_file\": \"/run/t\"}},"
			       " \"secrets\": [");
	for (size_t i = 0; i < 8; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
				       "%s{\"name\": \"%s\", \"path\": \"secret/data/%zu\"}",
				       i ? ", " : "", names[i], i);
	snprintf(text + len, sizeof(text) - len, "]}");
	ck_assert_msg(parse_text(text, &cfg, &err) == 0, "%s", err.msg);
	ck_assert_msg(broker_init(&b, &cfg, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < 8; i++) {
		struct broker_entry *e = broker_find(&b, names[i]);

		ck_assert_ptr_nonnull(e);
		ck_assert_ptr_eq(e, &b.entries[i]);
		ck_assert_str_eq(e->spec->name, names[i]);
	}
	ck_assert_ptr_null(broker_find(&b, ""));
	ck_assert_ptr_null(broker_find(&b, "0"));
	ck_assert_ptr_null(broker_find(&b, "a."));
	ck_assert_ptr_null(broker_find(&b, "bb"));
	ck_assert_ptr_null(broker_find(&b, "zzz"));
	ck_assert_ptr_null(broker_find(&b, "M"));
	broker_fini(&b);
	broker_config_clear(&cfg);
}
END_TEST

/* The launcher's message: the command, the broker's environment without VAULT_* and
 * LATCHKEY_* (and without what exec.env sets), then exec.env from the snapshots; a value
 * with a NUL byte is refused naming the variable, the secret and the key. */
START_TEST(test_exec_env_build)
{
	struct broker_config cfg;
	struct broker b;
	struct lk_error err;
	struct lk_buf blob;
	struct broker_lease_info li = { 0 };
	char *argv[BROKER_EXEC_ARGS_MAX + 1], *envp[BROKER_EXEC_STRINGS_MAX + 1];
	json_t *d1 = json_pack("{s:s}", "password", "pw-1"), *d2 = json_object();
	uint64_t versions[2] = { 0, 0 };
	int seen_pw = 0, seen_v2 = 0, seen_keep = 0;

	lk_error_clear(&err);
	setenv("VAULT_TOKEN", "hvs.must-not-pass", 1);
	setenv("LATCHKEY_SOCKET", "/nowhere", 1);
	setenv("KEEP_ME", "yes", 1);
	setenv("API_PW", "inherited", 1);
	ck_assert_msg(parse_text(exec_config, &cfg, &err) == 0, "%s", err.msg);
	ck_assert_msg(broker_init(&b, &cfg, &err) == 0, "%s", err.msg);
	json_object_set_new(d2, "token", json_stringn("t\0k", 3));
	ck_assert_int_eq(broker_snapshot_new(b.arena, "api", 4, d1, &li, &b.entries[0].current), 0);
	ck_assert_int_eq(broker_snapshot_new(b.arena, "billing.v2", 2, d2, &li, &b.entries[1].current),
			 0);

	lk_buf_init(&blob, BROKER_EXEC_MESSAGE_MAX, true);
	ck_assert_int_eq(broker_exec_env_build(&b, &blob, versions, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "exec.env.V2_TOKEN: the value of billing.v2.token (version 2) "
			     "holds a NUL byte") != NULL, "%s", err.msg);
	lk_buf_reset(&blob);

	/* Without the NUL. */
	broker_snapshot_unref(b.entries[1].current);
	json_object_set_new(d2, "token", json_string("tk"));
	ck_assert_int_eq(broker_snapshot_new(b.arena, "billing.v2", 3, d2, &li, &b.entries[1].current),
			 0);
	ck_assert_msg(broker_exec_env_build(&b, &blob, versions, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(versions[0], 4);
	ck_assert_uint_eq(versions[1], 3);
	ck_assert_int_eq(broker_exec_blob_parse(blob.data, blob.len, argv, BROKER_EXEC_ARGS_MAX + 1,
						envp, BROKER_EXEC_STRINGS_MAX + 1), 0);
	ck_assert_str_eq(argv[0], "/bin/app");
	ck_assert_str_eq(argv[1], "--flag");
	ck_assert_ptr_null(argv[2]);
	for (char **e = envp; *e != NULL; e++) {
		ck_assert_msg(strncmp(*e, "VAULT_", 6) != 0 && strncmp(*e, "LATCHKEY_", 9) != 0,
			      "withheld variable passed");
		if (strncmp(*e, "API_PW=", 7) == 0) {
			seen_pw++;
			ck_assert(strcmp(*e + 7, "pw-1") == 0);
		}
		if (strcmp(*e, "V2_TOKEN=tk") == 0)
			seen_v2++;
		if (strcmp(*e, "KEEP_ME=yes") == 0)
			seen_keep++;
	}
	ck_assert_int_eq(seen_pw, 1);
	ck_assert_int_eq(seen_v2, 1);
	ck_assert_int_eq(seen_keep, 1);
	/* A message one byte short, or with a byte more, is refused. */
	ck_assert_int_eq(broker_exec_blob_parse(blob.data, blob.len - 1, argv,
						BROKER_EXEC_ARGS_MAX + 1, envp,
						BROKER_EXEC_STRINGS_MAX + 1), -EINVAL);
	lk_buf_free(&blob);
	json_decref(d1);
	json_decref(d2);
	broker_fini(&b);
	broker_config_clear(&cfg);
	unsetenv("VAULT_TOKEN");
	unsetenv("LATCHKEY_SOCKET");
	unsetenv("KEEP_ME");
	unsetenv("API_PW");
}
END_TEST

static Suite *
broker_suite(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = tcase_create("broker");

	tcase_add_test(tc, test_config_example);
	tcase_add_test(tc, test_config_auto_settings);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tc, test_config_file_and_addr);
	tcase_add_test(tc, test_arena);
	tcase_add_test(tc, test_arena_region_size_and_lock_accounting);
	tcase_add_test(tc, test_snapshot_refcount_and_zeroing);
	tcase_add_test(tc, test_snapshot_at_the_data_limit);
	tcase_add_test(tc, test_digest);
	tcase_add_test(tc, test_renew_at);
	tcase_add_test(tc, test_rotate_at);
	tcase_add_test(tc, test_revoke_at);
	tcase_add_test(tc, test_refresh_at);
	tcase_add_test(tc, test_expires_at);
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_peer_allowed);
	tcase_add_test(tc, test_env_dialects);
	tcase_add_test(tc, test_retry_delay);
	tcase_add_test(tc, test_seccomp_allow_list);
	tcase_add_test(tc, test_etag_and_route);
	tcase_add_test(tc, test_audit_bounded);
	tcase_add_test(tc, test_exec_config);
	tcase_add_test(tc, test_exec_env_build);
	tcase_add_test(tc, test_find_by_name);
	tcase_add_test(tc, test_audit_grows_and_forgets);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (lk_secret_init() < 0)
		return EXIT_FAILURE;
	lk_json_wipe_on_free();
	sr = srunner_create(broker_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
