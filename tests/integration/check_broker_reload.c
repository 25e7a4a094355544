/* check_broker_reload.c — SIGHUP re-reads the broker's configuration (broker/reload.c):
 * a secret added is served, one removed has its lease revoked in the backend and answers
 * 404 (its blocked readers too), one unchanged keeps its version and lease and costs no
 * login; an invalid file or a change of a restart-only key is refused and the running
 * configuration goes on serving; a change of allow takes effect; a new token in the token
 * file is used; decryption keys, in files and in the backend, are read again (a changed one
 * replaces the key, an unreadable one refuses the reload, an unchanged one changes
 * nothing). Real broker, real `latchkey dev`, real sockets. */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>

#include "brokerutil.h"
#include "kubeletvol.h"
#include "common/clock.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"

#define API "{\"name\": \"api\", \"path\": \"secret/data/app/api\"}"
#define DB "{\"name\": \"db\", \"path\": \"database/creds/app\"}"
#define API2 "{\"name\": \"api2\", \"path\": \"secret/data/app/api\"}"

/* The version of secret name as served (0: not served). */
static long long
version_of(struct bf *f, const char *name)
{
	char path[256], *body = NULL;
	long long v = 0;
	json_t *j;

	snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	if (bf_get(f, path, &body) == 200 && (j = json_loads(body, 0, NULL)) != NULL) {
		v = json_integer_value(json_object_get(j, "version"));
		json_decref(j);
	}
	free(body);
	return v;
}

struct status_wait {
	struct bf *f;
	const char *path;
	long status;
};

static bool
status_is(void *arg)
{
	struct status_wait *w = arg;

	return bf_get(w->f, w->path, NULL) == w->status;
}

static bool
wait_status(struct bf *f, const char *path, long status)
{
	struct status_wait w = { f, path, status };

	return t_wait_until(status_is, &w, T_DEADLINE_MS);
}

/* True when the metrics page (the admin's view) holds the sample line. */
static bool
metrics_has(struct bf *f, const char *line)
{
	char *body = NULL;
	bool found;

	found = bf_get(f, "/metrics", &body) == 200 && body != NULL && strstr(body, line) != NULL;
	free(body);
	return found;
}

static void
sighup(struct bf *f)
{
	ck_assert_int_eq(kill(f->broker.pid, SIGHUP), 0);
}

/* Rewrites the configuration and sends SIGHUP; waits for the nth reload's outcome. */
static void
reload(struct bf *f, const char *secrets, const char *listen, const char *extra,
       const char *outcome, int nth)
{
	bf_config_listen(f, secrets, listen, extra);
	sighup(f);
	ck_assert_msg(bf_wait_log_count(f, outcome, nth), "no \"%s\" in the log", outcome);
}

struct reader {
	struct bf *f;
	char path[256];
	long status;
	pthread_t th;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;

	r->status = bf_get(r->f, r->path, NULL);
	return NULL;
}

struct conn_wait {
	struct bf *f;
	const char *line;
};

static bool
conns_are(void *arg)
{
	struct conn_wait *w = arg;

	return metrics_has(w->f, w->line);
}

struct lease_wait {
	struct bf *f;
	const char *id;
};

static bool
lease_revoked(void *arg)
{
	struct lease_wait *w = arg;
	char state[32];

	return bf_lease_state(w->f, w->id, state, sizeof(state)) == 0 &&
	       strcmp(state, "revoked") == 0;
}

/* Stops the broker: a clean exit (0; under a sanitizer, no report either), then the rest. */
static void
finish(struct bf *f)
{
	int status = bf_stop_broker(f, SIGTERM, T_DEADLINE_MS);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker status %#x", status);
	bf_stop(f);
}

#define OK_LOG "\"msg\":\"configuration reloaded\""
#define REFUSED_LOG "\"msg\":\"configuration reload refused\""

/* Added, removed, unchanged: the lease of the removed one is revoked in the backend, its
 * blocked reader wakes with 404, the unchanged one keeps version and lease, no login. */
START_TEST(test_add_remove_keep)
{
	char lease[256], state[32], api_lease_before[256];
	long long api_version, db_version;
	struct conn_wait cw;
	struct lease_wait lw;
	struct reader r;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	bf_config(&f, API "," DB, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/db", 200));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	ck_assert(bf_current_lease(&f, "db", lease, sizeof(lease)));
	ck_assert(!bf_current_lease(&f, "api", api_lease_before, sizeof(api_lease_before)));
	api_version = version_of(&f, "api");
	db_version = version_of(&f, "db");
	ck_assert_int_gt(api_version, 0);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"logged in\""), 1);
	ck_assert_int_eq(bf_leases(&f, "active"), 1);

	/* A reader blocked on db: its connection is open (the /metrics request is the
	 * other one) before the reload. */
	memset(&r, 0, sizeof(r));
	r.f = &f;
	snprintf(r.path, sizeof(r.path), "/v1/secrets/db?index=%lld&wait=60s", db_version);
	ck_assert_int_eq(pthread_create(&r.th, NULL, reader_main, &r), 0);
	cw.f = &f;
	cw.line = "latchkey_broker_connections 2\n";
	ck_assert_msg(t_wait_until(conns_are, &cw, T_DEADLINE_MS), "the reader did not connect");

	reload(&f, API "," API2, NULL, NULL, OK_LOG, 1);
	pthread_join(r.th, NULL);
	ck_assert_int_eq(r.status, 404);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/db", NULL), 404);
	ck_assert(wait_status(&f, "/v1/secrets/api2", 200));
	/* Revoked in the backend, not left to expire (its TTL is an hour). */
	lw.f = &f;
	lw.id = lease;
	ck_assert_msg(t_wait_until(lease_revoked, &lw, T_DEADLINE_MS), "lease not revoked");
	ck_assert_int_eq(bf_lease_state(&f, lease, state, sizeof(state)), 0);
	ck_assert_str_eq(state, "revoked");
	ck_assert_int_eq(bf_leases(&f, "active"), 0);
	ck_assert(bf_wait_log_count(&f, "\"why\":\"removed or changed by a reload\"", 1));
	/* The unchanged one: same version, no new login, no lease. */
	ck_assert_int_eq(version_of(&f, "api"), api_version);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"logged in\""), 1);
	ck_assert_int_eq(bf_log_count(&f, "\"added\":\"api2\""), 1);
	ck_assert_int_eq(bf_log_count(&f, "\"removed\":\"db\""), 1);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"ok\"} 1\n"));
	/* The removed secret's series went with it. */
	ck_assert(!metrics_has(&f, "secret=\"db\""));

	/* A dynamic secret added back: a new lease, served; the unchanged one still is. */
	reload(&f, API "," API2 "," DB, NULL, NULL, OK_LOG, 2);
	ck_assert(wait_status(&f, "/v1/secrets/db", 200));
	ck_assert_int_eq(bf_leases(&f, "active"), 1);
	ck_assert_int_eq(version_of(&f, "api"), api_version);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"logged in\""), 1);
	finish(&f);
}
END_TEST

/* Another path under the same name: read anew, the version going on, so that the reader
 * blocked on it is answered with the new data; no login. */
START_TEST(test_changed_source)
{
	long long v;
	struct conn_wait cw;
	struct reader r;
	struct bf f;
	char *body = NULL;
	json_t *j;

	bf_dev(&f, "1h", "2h");
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/secret/data/app/other",
				     "{\"data\":{\"user\":\"other-user\"}}", NULL), 300);
	bf_config(&f, API, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	v = version_of(&f, "api");
	memset(&r, 0, sizeof(r));
	r.f = &f;
	snprintf(r.path, sizeof(r.path), "/v1/secrets/api?index=%lld&wait=60s", v);
	ck_assert_int_eq(pthread_create(&r.th, NULL, reader_main, &r), 0);
	cw.f = &f;
	cw.line = "latchkey_broker_connections 2\n";
	ck_assert_msg(t_wait_until(conns_are, &cw, T_DEADLINE_MS), "the reader did not connect");
	reload(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/other\"}", NULL, NULL,
	       OK_LOG, 1);
	pthread_join(r.th, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(bf_log_count(&f, "\"changed\":\"api\""), 1);
	ck_assert_int_gt(version_of(&f, "api"), v);
	/* The new source's data: it has no password key, the old one had. */
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api", &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_null(json_object_get(json_object_get(j, "data"), "password"));
	ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "data"), "user"));
	json_decref(j);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"logged in\""), 1);
	finish(&f);
}
END_TEST

static bool
one_active_lease(void *arg)
{
	return bf_leases(arg, "active") == 1;
}

struct hammer {
	struct bf *f;
	pthread_t th;
	atomic_bool *stop;
	long reads, not_ok;
	double worst_ms;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(h->stop)) {
		int64_t t0 = lk_now_mono_ms();
		long st = bf_get(h->f, "/v1/secrets/api", NULL);
		double ms = (double)(lk_now_mono_ms() - t0);

		h->reads++;
		if (st != 200)
			h->not_ok++;
		if (ms > h->worst_ms)
			h->worst_ms = ms;
	}
	return NULL;
}

/* Reloads one after another while readers hammer a secret that stays: every read is
 * answered 200, every reload applied. Under ThreadSanitizer (make tsan) this is the
 * race check of the generation lock. */
START_TEST(test_reload_under_load)
{
	enum { RELOADS = 20, READERS = 2 };
	struct hammer h[READERS];
	atomic_bool stop;
	int64_t t0, worst_reload = 0;
	long reads = 0, not_ok = 0;
	double worst_read = 0;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	bf_config(&f, API "," DB, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	ck_assert(wait_status(&f, "/v1/secrets/db", 200));
	atomic_init(&stop, false);
	for (int i = 0; i < READERS; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		h[i].f = &f;
		h[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&h[i].th, NULL, hammer_main, &h[i]), 0);
	}
	for (int k = 1; k <= RELOADS; k++) {
		t0 = lk_now_mono_ms();
		reload(&f, k % 2 ? API "," API2 : API "," DB, NULL, NULL, OK_LOG, k);
		if (lk_now_mono_ms() - t0 > worst_reload)
			worst_reload = lk_now_mono_ms() - t0;
		/* db added back is read before the next reload removes it: each removal then
		 * has a lease to revoke. */
		if (k % 2 == 0)
			ck_assert(wait_status(&f, "/v1/secrets/db", 200));
	}
	atomic_store(&stop, true);
	for (int i = 0; i < READERS; i++) {
		pthread_join(h[i].th, NULL);
		reads += h[i].reads;
		not_ok += h[i].not_ok;
		if (h[i].worst_ms > worst_read)
			worst_read = h[i].worst_ms;
	}
	printf("FIGURE: %d reloads under %d readers: %ld reads, %ld not 200, slowest read %.0f ms, "
	       "slowest SIGHUP-to-log %lld ms\n", RELOADS, READERS, reads, not_ok, worst_read,
	       (long long)worst_reload);
	ck_assert_int_gt(reads, 0);
	ck_assert_int_eq(not_ok, 0);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"ok\"} 20\n"));
	/* db removed and added back ten times: each of its leases revoked but the last. */
	ck_assert(wait_status(&f, "/v1/secrets/db", 200));
	ck_assert_msg(t_wait_until(one_active_lease, &f, T_DEADLINE_MS), "%d leases active",
		      bf_leases(&f, "active"));
	ck_assert_int_eq(bf_leases(&f, "revoked"), RELOADS / 2);
	finish(&f);
}
END_TEST

struct version_wait {
	struct bf *f;
	const char *name;
	long long above;
};

static bool
version_above(void *arg)
{
	struct version_wait *w = arg;

	return version_of(w->f, w->name) > w->above;
}

struct file_wait {
	const char *path, *text;
};

static bool
file_is(void *arg)
{
	const struct file_wait *w = arg;
	char *text = t_read_file(w->path);
	bool same = text != NULL && strcmp(text, w->text) == 0;

	free(text);
	return same;
}

/* secret name's entry in the admin's /v1/ready (owned), or NULL. */
static json_t *
ready_entry(struct bf *f, const char *name)
{
	char *body = NULL;
	json_t *j, *arr, *e, *found = NULL;
	size_t i;

	bf_get(f, "/v1/ready", &body);
	j = body != NULL ? json_loads(body, 0, NULL) : NULL;
	free(body);
	arr = json_object_get(j, "secrets");
	json_array_foreach(arr, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) {
			found = json_incref(e);
			break;
		}
	}
	json_decref(j);
	return found;
}

struct state_wait {
	struct bf *f;
	const char *name, *state;
};

static bool
state_is(void *arg)
{
	struct state_wait *w = arg;
	json_t *e = ready_entry(w->f, w->name);
	bool same = e != NULL && strcmp(json_string_value(json_object_get(e, "state")),
					w->state) == 0;

	json_decref(e);
	return same;
}

/* True when the value of key of secret name, as served, is want (never printed). */
static bool
served_value_is(struct bf *f, const char *name, const char *key, const char *want)
{
	char path[256], *body = NULL;
	bool same;

	snprintf(path, sizeof(path), "/v1/secrets/%s/%s", name, key);
	same = bf_get(f, path, &body) == 200 && body != NULL && strcmp(body, want) == 0;
	free(body);
	return same;
}

struct value_wait {
	struct bf *f;
	const char *name, *key, *want;
};

static bool
value_is(void *arg)
{
	struct value_wait *w = arg;

	return served_value_is(w->f, w->name, w->key, w->want);
}

#define VOL_USER1 "reload-vol-user-6d1e"
#define VOL_USER2 "reload-vol-user-93ab"
#define VOL_USER3 "reload-vol-user-0c57"

/* A file source kept across a reload that moves it to another index still follows its
 * file. (A broker that started with file sources only has no backend login: its first
 * backend secret needs a restart, so one is there.) */
START_TEST(test_file_source_kept)
{
	char secrets[2048], file[700];
	struct version_wait vw;
	long long v;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	snprintf(file, sizeof(file), "%s/token.txt", f.dir);
	ck_assert_int_eq(t_write_file(file, "first-value\n", 0600), 0);
	snprintf(secrets, sizeof(secrets), API2 ", {\"name\": \"fs\", \"from_file\": \"%s\"}",
		 file);
	bf_config(&f, secrets, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/fs", 200));
	v = version_of(&f, "fs");

	/* fs moves from index 1 to 2. */
	snprintf(secrets, sizeof(secrets), API ", " API2 ", {\"name\": \"fs\", \"from_file\": "
		 "\"%s\"}", file);
	reload(&f, secrets, NULL, NULL, OK_LOG, 1);
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	ck_assert_int_eq(version_of(&f, "fs"), v);
	ck_assert_int_eq(t_write_file(file, "second-value\n", 0600), 0);
	vw.f = &f;
	vw.name = "fs";
	vw.above = v;
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the file change was missed");
	finish(&f);
}
END_TEST

/* File sources added and removed by reloads: an added Secret volume (the kubelet's layout)
 * is read, watched, served and rendered; a removed one answers 404, its rendered file
 * stays as it was (as a removed backend secret's does) and a change of its source is no
 * longer followed; one pointed at another directory is read from there, its version going
 * on; one that cannot be read is added all the same and says why, as a backend secret
 * whose first read fails. */
START_TEST(test_file_source_add_remove)
{
	char secrets[4096], file[700], vol[700], vol2[700], out[700], missing[700];
	const char *keys[] = { "username" };
	struct version_wait vw;
	struct stat st1, st2;
	long long v;
	char *text;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	snprintf(file, sizeof(file), "%s/token.txt", f.dir);
	snprintf(vol, sizeof(vol), "%s/volume", f.dir);
	snprintf(vol2, sizeof(vol2), "%s/volume2", f.dir);
	snprintf(out, sizeof(out), "%s/vol.env", f.dir);
	snprintf(missing, sizeof(missing), "%s/not-mounted", f.dir);
	ck_assert_int_eq(t_write_file(file, "first-value\n", 0600), 0);
	ck_assert_int_ge(t_kubelet_write(vol, keys, (const char *const[]){ VOL_USER1 }, 1), 0);
	ck_assert_int_ge(t_kubelet_write(vol2, keys, (const char *const[]){ VOL_USER3 }, 1), 0);
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}",
		 file);
	bf_config(&f, secrets, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/fs", 200));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/vol", NULL), 404);

	/* Added: a mounted volume with a file rendered from it. */
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}, "
		 "{\"name\": \"vol\", \"from_file\": \"%s\", \"file\": {\"path\": \"%s\", "
		 "\"format\": \"env\"}}", file, vol, out);
	reload(&f, secrets, NULL, NULL, OK_LOG, 1);
	ck_assert_int_eq(bf_log_count(&f, "\"added\":\"vol\""), 1);
	{
		struct value_wait w = { &f, "vol", "username", VOL_USER1 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the added volume is not "
			      "served");
	}
	{
		struct file_wait w = { out, "username=" VOL_USER1 "\n" };

		ck_assert_msg(t_wait_until(file_is, &w, T_DEADLINE_MS), "the added volume's file "
			      "was not rendered");
	}
	/* Watched: the kubelet's swap is followed. */
	v = version_of(&f, "vol");
	ck_assert_int_eq(t_kubelet_write(vol, keys, (const char *const[]){ VOL_USER2 }, 1), 0);
	{
		struct value_wait w = { &f, "vol", "username", VOL_USER2 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the swap was missed");
	}
	ck_assert_int_gt(version_of(&f, "vol"), v);
	{
		struct file_wait w = { out, "username=" VOL_USER2 "\n" };

		ck_assert_msg(t_wait_until(file_is, &w, T_DEADLINE_MS), "the file was not rendered "
			      "again");
	}

	/* Changed: another directory under the same name; read from there, the version going
	 * on. */
	v = version_of(&f, "vol");
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}, "
		 "{\"name\": \"vol\", \"from_file\": \"%s\", \"file\": {\"path\": \"%s\", "
		 "\"format\": \"env\"}}", file, vol2, out);
	reload(&f, secrets, NULL, NULL, OK_LOG, 2);
	ck_assert_int_eq(bf_log_count(&f, "\"changed\":\"vol\""), 1);
	{
		struct value_wait w = { &f, "vol", "username", VOL_USER3 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the changed source is not "
			      "served");
	}
	ck_assert_int_gt(version_of(&f, "vol"), v);
	{
		struct file_wait w = { out, "username=" VOL_USER3 "\n" };

		ck_assert_msg(t_wait_until(file_is, &w, T_DEADLINE_MS), "the changed source's "
			      "file was not rendered");
	}

	/* Removed (fs and vol), and one that is not there added: 404 for the removed, their
	 * file left as it was; the new one failed, the reason naming its path. */
	ck_assert_int_eq(stat(out, &st1), 0);
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"gone\", \"from_file\": \"%s\"}",
		 missing);
	reload(&f, secrets, NULL, NULL, OK_LOG, 3);
	ck_assert_int_eq(bf_log_count(&f, "\"removed\":\"fs,vol\""), 1);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/vol", NULL), 404);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/fs", NULL), 404);
	{
		struct state_wait w = { &f, "gone", "failed" };
		json_t *e;

		ck_assert_msg(t_wait_until(state_is, &w, T_DEADLINE_MS), "the unreadable source "
			      "did not fail");
		e = ready_entry(&f, "gone");
		ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")),
					     missing));
		json_decref(e);
	}
	ck_assert(bf_wait_log_count(&f, "\"msg\":\"file source failed\",\"secret\":\"gone\"", 1));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/gone", NULL), 503);
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	/* The removed ones' sources change: nothing follows them any more (a change of the
	 * kept api, and a write of the new gone, show the thread is awake). */
	ck_assert_int_eq(t_kubelet_write(vol2, keys, (const char *const[]){ VOL_USER1 }, 1), 0);
	ck_assert_int_eq(t_write_file(file, "second-value\n", 0600), 0);
	ck_assert_int_eq(t_write_file(missing, "now-there\n", 0600), 0);
	ck_assert(wait_status(&f, "/v1/secrets/gone", 200));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/vol", NULL), 404);
	ck_assert_int_eq(stat(out, &st2), 0);
	ck_assert_int_eq(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	ck_assert_int_eq(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	text = t_read_file(out);
	ck_assert(text != NULL && strcmp(text, "username=" VOL_USER3 "\n") == 0);
	free(text);

	/* Added back: read anew, watched again. */
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"gone\", \"from_file\": \"%s\"}, "
		 "{\"name\": \"vol\", \"from_file\": \"%s\"}", missing, vol2);
	reload(&f, secrets, NULL, NULL, OK_LOG, 4);
	{
		struct value_wait w = { &f, "vol", "username", VOL_USER1 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the volume added back "
			      "is not served");
	}
	v = version_of(&f, "vol");
	ck_assert_int_eq(t_kubelet_write(vol2, keys, (const char *const[]){ VOL_USER2 }, 1), 0);
	vw.f = &f;
	vw.name = "vol";
	vw.above = v;
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the swap was missed");
	ck_assert(served_value_is(&f, "vol", "username", VOL_USER2));
	finish(&f);
}
END_TEST

struct rewriter {
	const char *path;
	atomic_bool *stop;
	pthread_t th;
	long writes;
};

static void *
rewriter_main(void *arg)
{
	struct rewriter *r = arg;
	char text[64];

	while (!atomic_load(r->stop)) {
		snprintf(text, sizeof(text), "value-%ld\n", r->writes++);
		if (t_write_file(r->path, text, 0600) != 0)
			break;
	}
	return NULL;
}

/* A file source removed and added back by one reload after another while its file is
 * rewritten without pause (inotify events arriving throughout): every reload applied, the
 * kept file source followed all along. Under ThreadSanitizer (make tsan) this is the race
 * check of the watcher thread against broker_files_remap. */
START_TEST(test_file_source_reload_under_writes)
{
	enum { RELOADS = 10 };
	char with[4096], without[2048], file[700], kept[700];
	struct version_wait vw;
	struct rewriter rw;
	atomic_bool stop;
	long long v;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	snprintf(file, sizeof(file), "%s/busy.txt", f.dir);
	snprintf(kept, sizeof(kept), "%s/kept.txt", f.dir);
	ck_assert_int_eq(t_write_file(file, "value\n", 0600), 0);
	ck_assert_int_eq(t_write_file(kept, "kept-1\n", 0600), 0);
	snprintf(without, sizeof(without), API ", {\"name\": \"kept\", \"from_file\": \"%s\"}",
		 kept);
	snprintf(with, sizeof(with), "%s, {\"name\": \"busy\", \"from_file\": \"%s\"}", without,
		 file);
	bf_config(&f, with, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/busy", 200));
	atomic_init(&stop, false);
	memset(&rw, 0, sizeof(rw));
	rw.path = file;
	rw.stop = &stop;
	ck_assert_int_eq(pthread_create(&rw.th, NULL, rewriter_main, &rw), 0);
	for (int k = 1; k <= RELOADS; k++)
		reload(&f, k % 2 ? without : with, NULL, NULL, OK_LOG, k);
	atomic_store(&stop, true);
	pthread_join(rw.th, NULL);
	ck_assert_int_gt(rw.writes, 0);
	/* The last reload added busy back. */
	ck_assert(wait_status(&f, "/v1/secrets/busy", 200));
	ck_assert_int_eq(bf_log_count(&f, REFUSED_LOG), 0);
	v = version_of(&f, "kept");
	ck_assert_int_eq(t_write_file(kept, "kept-2\n", 0600), 0);
	vw.f = &f;
	vw.name = "kept";
	vw.above = v;
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the kept source's change "
		      "was missed");
	ck_assert(served_value_is(&f, "kept", "kept.txt", "kept-2\n"));
	finish(&f);
}
END_TEST

/* A key pair, its private half written to path (mode 0600); owned: lk_key_free. */
static struct lk_key *
key_file_new(const char *path)
{
	struct lk_secret *priv = NULL;
	struct lk_key *k = NULL;

	ck_assert_int_eq(lk_key_x25519_generate(&k), 0);
	ck_assert_int_eq(lk_key_x25519_private_text(k, &priv), 0);
	ck_assert_int_eq(t_write_file(path, lk_secret_cstr(priv), 0600), 0);
	lk_secret_free(priv);
	return k;
}

#define SEALED_VALUE "reload-sealed-pass-7e21"

/* Sealed volumes (decrypt, each with a decryption_key of its own) added by a reload: the
 * new key file is read by the reload and the value opens; one sealed to another key is
 * added all the same, failed, its reason saying the key does not open, never the value. */
START_TEST(test_file_source_sealed_added)
{
	char secrets[4096], vol[700], keyfile[700], otherkey[700], label[LK_LABEL_MAX + 1];
	char file[700], *ct = NULL, *body = NULL;
	const char *keys[] = { "password" };
	struct lk_key *k, *other;
	struct lk_error err;
	struct bf f;

	ck_assert_int_eq(lk_secret_init(), 0);
	bf_dev(&f, "1h", "2h");
	snprintf(file, sizeof(file), "%s/token.txt", f.dir);
	snprintf(vol, sizeof(vol), "%s/sealed", f.dir);
	snprintf(keyfile, sizeof(keyfile), "%s/recipient.lk1", f.dir);
	snprintf(otherkey, sizeof(otherkey), "%s/other.lk1", f.dir);
	ck_assert_int_eq(t_write_file(file, "first-value\n", 0600), 0);
	k = key_file_new(keyfile);
	other = key_file_new(otherkey);
	lk_error_clear(&err);
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "app", "db-creds", "password", label,
					sizeof(label), &err), 0);
	ck_assert_int_eq(lk_key_seal(k, label, SEALED_VALUE, strlen(SEALED_VALUE), &ct, &err), 0);
	ck_assert_int_ge(t_kubelet_write(vol, keys, (const char *const[]){ ct }, 1), 0);
	free(ct);
	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}", file);
	bf_config(&f, secrets, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/fs", 200));

	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}, "
		 "{\"name\": \"sealed\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"k8s_secret\": {\"namespace\": \"app\", \"name\": \"db-creds\"}, "
		 "\"decryption_key\": {\"file\": \"%s\"}}, "
		 "{\"name\": \"wrong\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"k8s_secret\": {\"namespace\": \"app\", \"name\": \"db-creds\"}, "
		 "\"decryption_key\": {\"file\": \"%s\"}}", file, vol, keyfile, vol, otherkey);
	reload(&f, secrets, NULL, NULL, OK_LOG, 1);
	{
		struct value_wait w = { &f, "sealed", "password", SEALED_VALUE };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the sealed volume added "
			      "is not served");
	}
	{
		struct state_wait w = { &f, "wrong", "failed" };
		json_t *e;

		ck_assert_msg(t_wait_until(state_is, &w, T_DEADLINE_MS), "the source sealed to "
			      "another key did not fail");
		e = ready_entry(&f, "wrong");
		ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "reason")),
					     "does not open"));
		json_decref(e);
	}
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/wrong", NULL), 503);
	ck_assert_int_eq(bf_log_count(&f, SEALED_VALUE), 0);
	/* Not required: ready all the same. */
	ck_assert_int_eq(bf_get(&f, "/v1/ready", &body), 200);
	ck_assert_ptr_null(strstr(body, SEALED_VALUE));
	free(body);
	lk_key_free(k);
	lk_key_free(other);
	finish(&f);
}
END_TEST

/* The threads of the broker's process, from /proc (-1: unknown). */
static int
threads_of(pid_t pid)
{
	char path[64], *text, *at;
	int n = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = t_read_file(path);
	if (text != NULL && (at = strstr(text, "\nThreads:")) != NULL)
		n = atoi(at + strlen("\nThreads:"));
	free(text);
	return n;
}

struct threads_wait {
	pid_t pid;
	int n;
};

static bool
threads_are(void *arg)
{
	const struct threads_wait *w = arg;

	return threads_of(w->pid) == w->n;
}

#define FIRST_VALUE1 "reload-first-file-3b7d\n"
#define FIRST_VALUE2 "reload-first-file-c41e\n"
#define FIRST_SEALED "reload-first-sealed-9a0f"

/* A broker that started with backend secrets only (and the allow-list on, as bf_config
 * sets it) gets its first file sources by a reload: a plain file and a sealed volume that
 * opens with a top-level decryption_key also added by that reload. The watcher thread
 * starts then (one thread more, none before), both are served, and a change to the file is
 * seen afterwards. */
START_TEST(test_file_source_first_added)
{
	char secrets[4096], extra[1024], file[700], vol[700], keyfile[700];
	char label[LK_LABEL_MAX + 1], *ct = NULL, *body = NULL;
	const char *keys[] = { "password" };
	struct version_wait vw;
	struct lk_error err;
	struct lk_key *k;
	int threads;
	struct bf f;

	ck_assert_int_eq(lk_secret_init(), 0);
	bf_dev(&f, "1h", "2h");
	snprintf(file, sizeof(file), "%s/token.txt", f.dir);
	snprintf(vol, sizeof(vol), "%s/sealed", f.dir);
	snprintf(keyfile, sizeof(keyfile), "%s/recipient.lk1", f.dir);
	ck_assert_int_eq(t_write_file(file, FIRST_VALUE1, 0600), 0);
	k = key_file_new(keyfile);
	lk_error_clear(&err);
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "app", "db-creds", "password", label,
					sizeof(label), &err), 0);
	ck_assert_int_eq(lk_key_seal(k, label, FIRST_SEALED, strlen(FIRST_SEALED), &ct, &err), 0);
	ck_assert_int_ge(t_kubelet_write(vol, keys, (const char *const[]){ ct }, 1), 0);
	free(ct);
	bf_config(&f, API, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	threads = threads_of(f.broker.pid);
	ck_assert_int_gt(threads, 0);

	snprintf(secrets, sizeof(secrets), API ", {\"name\": \"fs\", \"from_file\": \"%s\"}, "
		 "{\"name\": \"sealed\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"k8s_secret\": {\"namespace\": \"app\", \"name\": \"db-creds\"}}", file, vol);
	snprintf(extra, sizeof(extra), "\"decryption_key\": {\"file\": \"%s\"}", keyfile);
	reload(&f, secrets, NULL, extra, OK_LOG, 1);
	{
		struct value_wait w = { &f, "fs", "token.txt", FIRST_VALUE1 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the first file source "
			      "added is not served");
	}
	{
		struct value_wait w = { &f, "sealed", "password", FIRST_SEALED };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "the sealed volume added "
			      "is not served");
	}
	{
		struct threads_wait w = { f.broker.pid, threads + 1 };

		ck_assert_msg(t_wait_until(threads_are, &w, T_DEADLINE_MS), "threads: %d, then %d",
			      threads, threads_of(f.broker.pid));
	}
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api", NULL), 200);

	/* Watched from then on. */
	vw.f = &f;
	vw.name = "fs";
	vw.above = version_of(&f, "fs");
	ck_assert_int_gt(vw.above, 0);
	ck_assert_int_eq(t_write_file(file, FIRST_VALUE2, 0600), 0);
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the file change was missed");
	ck_assert(served_value_is(&f, "fs", "token.txt", FIRST_VALUE2));
	ck_assert_int_eq(bf_get(&f, "/v1/ready", &body), 200);
	ck_assert_ptr_null(strstr(body, FIRST_SEALED));
	free(body);
	ck_assert_int_eq(bf_log_count(&f, FIRST_SEALED), 0);
	ck_assert_int_eq(bf_log_count(&f, "reload-first-file-"), 0);
	lk_key_free(k);
	finish(&f);
}
END_TEST

#define ROT_VALUE1 "reload-rotate-pass-51c2"
#define ROT_VALUE2 "reload-rotate-pass-e8d4"
#define ROT_VALUE3 "reload-rotate-pass-2f96"
#define ROT_OWN1 "reload-rotate-own-7a13"
#define ROT_OWN2 "reload-rotate-own-b05e"

/* The volume at dir as the kubelet writes it: key password, value sealed with k for
 * app/NAME/password. */
static void
seal_volume(const char *dir, struct lk_key *k, const char *name, const char *value)
{
	const char *keys[] = { "password" };
	char label[LK_LABEL_MAX + 1], *ct = NULL;
	struct lk_error err;

	lk_error_clear(&err);
	ck_assert_int_eq(lk_scope_label(LK_SCOPE_STRICT, "app", name, "password", label,
					sizeof(label), &err), 0);
	ck_assert_int_eq(lk_key_seal(k, label, value, strlen(value), &ct, &err), 0);
	ck_assert_int_ge(t_kubelet_write(dir, keys, (const char *const[]){ ct }, 1), 0);
	free(ct);
}

struct rot {
	struct bf f;
	char vol[700], own[700], keyfile[700], ownkey[700], secrets[4096], extra[1024];
};

/* Two sealed volumes: "top" opens with the top-level decryption_key, "own" with one of its
 * own; both served. */
static void
rot_start(struct rot *r, struct lk_key **ret_top, struct lk_key **ret_own)
{
	ck_assert_int_eq(lk_secret_init(), 0);
	bf_dev(&r->f, "1h", "2h");
	snprintf(r->vol, sizeof(r->vol), "%s/top", r->f.dir);
	snprintf(r->own, sizeof(r->own), "%s/own", r->f.dir);
	snprintf(r->keyfile, sizeof(r->keyfile), "%s/top.lk1", r->f.dir);
	snprintf(r->ownkey, sizeof(r->ownkey), "%s/own.lk1", r->f.dir);
	*ret_top = key_file_new(r->keyfile);
	*ret_own = key_file_new(r->ownkey);
	seal_volume(r->vol, *ret_top, "top", ROT_VALUE1);
	seal_volume(r->own, *ret_own, "own", ROT_OWN1);
	snprintf(r->secrets, sizeof(r->secrets), API ", {\"name\": \"top\", \"from_file\": \"%s\", "
		 "\"decrypt\": true, \"k8s_secret\": {\"namespace\": \"app\"}}, "
		 "{\"name\": \"own\", \"from_file\": \"%s\", \"decrypt\": true, "
		 "\"k8s_secret\": {\"namespace\": \"app\"}, \"decryption_key\": {\"file\": \"%s\"}}",
		 r->vol, r->own, r->ownkey);
	snprintf(r->extra, sizeof(r->extra), "\"decryption_key\": {\"file\": \"%s\"}", r->keyfile);
	bf_config(&r->f, r->secrets, r->extra);
	ck_assert(bf_start(&r->f));
	{
		struct value_wait w = { &r->f, "top", "password", ROT_VALUE1 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "top is not served");
	}
	{
		struct value_wait w = { &r->f, "own", "password", ROT_OWN1 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "own is not served");
	}
}

/* No value of the test in the log or in /v1/ready. */
static void
rot_no_values(struct rot *r)
{
	const char *values[] = { ROT_VALUE1, ROT_VALUE2, ROT_VALUE3, ROT_OWN1, ROT_OWN2 };
	char *body = NULL;

	ck_assert_int_eq(bf_get(&r->f, "/v1/ready", &body) > 0, 1);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ck_assert_int_eq(bf_log_count(&r->f, values[i]), 0);
		ck_assert_ptr_null(strstr(body != NULL ? body : "", values[i]));
	}
	free(body);
}

/* Key rotation under the same file names: new keys written over both key files and the
 * volumes sealed again with them. Until SIGHUP the new ciphertext does not open (each
 * secret serves its old value, stale); the reload reads the key files again, sees their
 * bytes changed, loads the new keys and opens the volumes again: the new values are
 * served, valid, without a restart. */
START_TEST(test_key_file_rotated)
{
	struct lk_key *top, *own, *top2, *own2;
	struct rot r;

	rot_start(&r, &top, &own);
	top2 = key_file_new(r.keyfile);
	own2 = key_file_new(r.ownkey);
	seal_volume(r.vol, top2, "top", ROT_VALUE2);
	seal_volume(r.own, own2, "own", ROT_OWN2);
	{
		struct state_wait w = { &r.f, "top", "stale" };

		ck_assert_msg(t_wait_until(state_is, &w, T_DEADLINE_MS), "top did not go stale");
		w.name = "own";
		ck_assert_msg(t_wait_until(state_is, &w, T_DEADLINE_MS), "own did not go stale");
	}
	ck_assert(served_value_is(&r.f, "top", "password", ROT_VALUE1));
	ck_assert(served_value_is(&r.f, "own", "password", ROT_OWN1));

	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	{
		struct value_wait w = { &r.f, "top", "password", ROT_VALUE2 };

		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "top is not opened with "
			      "the new key");
		w.name = "own";
		w.want = ROT_OWN2;
		ck_assert_msg(t_wait_until(value_is, &w, T_DEADLINE_MS), "own is not opened with "
			      "the new key");
	}
	{
		struct state_wait w = { &r.f, "top", "valid" };

		ck_assert(t_wait_until(state_is, &w, T_DEADLINE_MS));
		w.name = "own";
		ck_assert(t_wait_until(state_is, &w, T_DEADLINE_MS));
	}
	ck_assert(bf_wait_log_count(&r.f, "\"replaced\":true", 2));
	ck_assert_int_eq(bf_log_count(&r.f, REFUSED_LOG), 0);
	rot_no_values(&r);
	lk_key_free(top);
	lk_key_free(own);
	lk_key_free(top2);
	lk_key_free(own2);
	finish(&r.f);
}
END_TEST

/* A key file that no longer parses, then one others may read: each reload is refused with
 * the configuration key and the file named, and the old key goes on serving (a new
 * version sealed with it opens). Put back as it was, the file reloads without replacing
 * the key. */
START_TEST(test_key_file_broken)
{
	struct lk_key *top, *own;
	struct version_wait vw;
	char *orig, needle[900];
	struct rot r;

	rot_start(&r, &top, &own);
	orig = t_read_file(r.keyfile);
	ck_assert_ptr_nonnull(orig);
	ck_assert_int_eq(t_write_file(r.keyfile, "not a key\n", 0600), 0);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 1));
	snprintf(needle, sizeof(needle), "decryption_key.file: %s:", r.keyfile);
	ck_assert_int_eq(bf_log_count(&r.f, needle), 1);

	ck_assert_int_eq(t_write_file(r.keyfile, orig, 0644), 0);
	ck_assert_int_eq(chmod(r.keyfile, 0644), 0);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 2));
	snprintf(needle, sizeof(needle), "decryption_key.file: %s: mode 0644", r.keyfile);
	ck_assert_int_eq(bf_log_count(&r.f, needle), 1);
	ck_assert_int_eq(bf_log_count(&r.f, OK_LOG), 0);

	/* The old key serves, and opens what is sealed with it now. */
	ck_assert(served_value_is(&r.f, "top", "password", ROT_VALUE1));
	vw.f = &r.f;
	vw.name = "top";
	vw.above = version_of(&r.f, "top");
	ck_assert_int_gt(vw.above, 0);
	seal_volume(r.vol, top, "top", ROT_VALUE3);
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the new version was missed");
	ck_assert(served_value_is(&r.f, "top", "password", ROT_VALUE3));
	ck_assert(served_value_is(&r.f, "own", "password", ROT_OWN1));

	ck_assert_int_eq(chmod(r.keyfile, 0600), 0);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	ck_assert_int_eq(bf_log_count(&r.f, "\"replaced\":true"), 0);
	ck_assert(served_value_is(&r.f, "top", "password", ROT_VALUE3));
	rot_no_values(&r);
	orig[strcspn(orig, "\r\n")] = '\0';
	ck_assert_int_gt(strlen(orig), 16);
	ck_assert_int_eq(bf_log_count(&r.f, orig), 0);
	free(orig);
	lk_key_free(top);
	lk_key_free(own);
	finish(&r.f);
}
END_TEST

/* ---- decryption keys kept in the backend (decryption_key.vault_path) ---- */

#define BK_PATH "secret/data/broker/keys"
#define BK_VALUE1 "reload-backend-key-1f3a"
#define BK_VALUE2 "reload-backend-key-8c2d"
#define BK_VALUE3 "reload-backend-key-e947"
/* The log line of a refused reload names the configuration key, the path and the field. */
#define BK_REFUSED "decryption_key.vault_path: the decryption key (" BK_PATH ", field lk1) " \
	"could not be read"

/* True when the value of key of secret name, as served, has the BLAKE2b hash of want
 * (neither is printed). */
static bool
served_hash_is(struct bf *f, const char *name, const char *key, const char *want)
{
	unsigned char got[32], expect[32];
	char path[256], *body = NULL;
	bool same = false;

	snprintf(path, sizeof(path), "/v1/secrets/%s/%s", name, key);
	if (bf_get(f, path, &body) == 200 && body != NULL) {
		crypto_generichash(got, sizeof(got), (const unsigned char *)body, strlen(body),
				   NULL, 0);
		crypto_generichash(expect, sizeof(expect), (const unsigned char *)want,
				   strlen(want), NULL, 0);
		same = sodium_memcmp(got, expect, sizeof(got)) == 0;
	}
	free(body);
	return same;
}

static bool
hash_is(void *arg)
{
	struct value_wait *w = arg;

	return served_hash_is(w->f, w->name, w->key, w->want);
}

/* Writes data (a JSON object's inside) as a new version of BK_PATH in the backend; the
 * request body is zeroed after (it may hold a private key). */
static void
bk_put(struct bf *f, const char *data)
{
	char *body = NULL;

	ck_assert_int_gt(asprintf(&body, "{\"data\": {%s}}", data), 0);
	ck_assert_int_lt(bf_dev_call(f, "POST", "/v1/" BK_PATH, body, NULL), 300);
	sodium_memzero(body, strlen(body));
	free(body);
}

/* k's private half as a new version of field lk1 of BK_PATH (the request body zeroed
 * after). */
static void
bk_put_key(struct bf *f, const struct lk_key *k)
{
	struct lk_secret *priv = NULL;
	char *body;
	json_t *kv;

	ck_assert_int_eq(lk_key_x25519_private_text(k, &priv), 0);
	kv = json_pack("{s:{s:s}}", "data", "lk1", lk_secret_cstr(priv));
	lk_secret_free(priv);
	ck_assert_ptr_nonnull(kv);
	body = json_dumps(kv, JSON_COMPACT);
	json_decref(kv);
	ck_assert_ptr_nonnull(body);
	ck_assert_int_lt(bf_dev_call(f, "POST", "/v1/" BK_PATH, body, NULL), 300);
	sodium_memzero(body, strlen(body));
	free(body);
}

/* Lines of the backend's log (at debug: one per request) holding needle. */
static int
dev_log_count(struct bf *f, const char *needle)
{
	char path[700], *text, *line, *save = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "%s/dev.log", f->dev.dir);
	text = t_read_file(path);
	for (line = text != NULL ? strtok_r(text, "\n", &save) : NULL; line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		n += strstr(line, needle) != NULL;
	free(text);
	return n;
}

struct dev_log_wait {
	struct bf *f;
	const char *needle;
	int count;
};

static bool
dev_log_reaches(void *arg)
{
	const struct dev_log_wait *w = arg;

	return dev_log_count(w->f, w->needle) >= w->count;
}

/* A counter's value on the metrics page: 0 while its series is not there (a series shows
 * from its first count on), -1 when the page is not served. */
static long long
counter_value(struct bf *f, const char *sample)
{
	char *body = NULL, *at;
	long long v = -1;

	if (bf_get(f, "/metrics", &body) == 200 && body != NULL)
		v = (at = strstr(body, sample)) != NULL ? strtoll(at + strlen(sample), NULL, 10) : 0;
	free(body);
	return v;
}

/* The ETag of GET path on the socket, read from the answer's head as a number (-1: none
 * or not a quoted number). */
static size_t
etag_header(char *data, size_t size, size_t n, void *arg)
{
	long long *ret = arg;
	size_t len = size * n;
	char line[128];

	if (len < sizeof(line) && strncasecmp(data, "ETag: \"", 7) == 0) {
		memcpy(line, data, len);
		line[len] = '\0';
		*ret = strtoll(line + 7, NULL, 10);
	}
	return len;
}

static size_t
discard_body(char *data, size_t size, size_t n, void *arg)
{
	(void)data;
	(void)arg;
	return size * n;
}

static long long
etag_of(struct bf *f, const char *path)
{
	char url[300];
	long long etag = -1;
	CURL *c = curl_easy_init();

	ck_assert_ptr_nonnull(c);
	snprintf(url, sizeof(url), "http://broker%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, f->sock);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, etag_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &etag);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)T_DEADLINE_MS);
	if (curl_easy_perform(c) != CURLE_OK)
		etag = -1;
	curl_easy_cleanup(c);
	return etag;
}

struct bk {
	struct bf f;
	char vol[700], secrets[2048];
};

/* A sealed volume "top" that opens with the top-level decryption_key kept in the backend
 * (BK_PATH, field lk1), holding k; served with BK_VALUE1. The backend logs every request. */
static void
bk_start(struct bk *r, struct lk_key **ret_key)
{
	const char *dev_args[] = { "--log-level", "debug", NULL };

	ck_assert_int_eq(lk_secret_init(), 0);
	bf_dev_args(&r->f, "1h", "2h", dev_args);
	snprintf(r->vol, sizeof(r->vol), "%s/top", r->f.dir);
	ck_assert_int_eq(lk_key_x25519_generate(ret_key), 0);
	bk_put_key(&r->f, *ret_key);
	seal_volume(r->vol, *ret_key, "top", BK_VALUE1);
	snprintf(r->secrets, sizeof(r->secrets), "{\"name\": \"top\", \"from_file\": \"%s\", "
		 "\"decrypt\": true, \"k8s_secret\": {\"namespace\": \"app\"}}", r->vol);
	bf_config(&r->f, r->secrets, "\"decryption_key\": {\"vault_path\": \"" BK_PATH "\", "
		  "\"field\": \"lk1\"}");
	ck_assert(bf_start(&r->f));
	{
		struct value_wait w = { &r->f, "top", "password", BK_VALUE1 };

		ck_assert_msg(t_wait_until(hash_is, &w, T_DEADLINE_MS), "top is not served");
	}
}

/* No value of the test and no text of the private keys (n of them) in the broker's log or
 * in /v1/ready. */
static void
bk_no_values(struct bk *r, struct lk_key *const keys[], size_t n)
{
	const char *values[] = { BK_VALUE1, BK_VALUE2, BK_VALUE3 };
	char *body = NULL;

	ck_assert_int_eq(bf_get(&r->f, "/v1/ready", &body) > 0, 1);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ck_assert_int_eq(bf_log_count(&r->f, values[i]), 0);
		ck_assert_ptr_null(strstr(body != NULL ? body : "", values[i]));
	}
	for (size_t i = 0; i < n; i++) {
		struct lk_secret *priv = NULL;
		char *text;

		ck_assert_int_eq(lk_key_x25519_private_text(keys[i], &priv), 0);
		text = strdup(lk_secret_cstr(priv));
		lk_secret_free(priv);
		ck_assert_ptr_nonnull(text);
		text[strcspn(text, "\r\n")] = '\0';
		ck_assert_int_gt(strlen(text), 16);
		ck_assert_int_eq(bf_log_count(&r->f, text), 0);
		ck_assert_ptr_null(strstr(body != NULL ? body : "", text));
		sodium_memzero(text, strlen(text));
		free(text);
	}
	free(body);
}

/* The key rotated in the backend under the same path and field, the volume sealed again
 * with the new key: until SIGHUP the new ciphertext does not open (stale, the old value
 * served); the reload reads the key again, sees its text changed, loads it and opens the
 * volume again: the new value is served, valid, as a new version. */
START_TEST(test_backend_key_rotated)
{
	struct lk_key *k1, *k2;
	long long v1;
	struct bk r;

	bk_start(&r, &k1);
	v1 = version_of(&r.f, "top");
	ck_assert_int_gt(v1, 0);
	ck_assert_int_eq(lk_key_x25519_generate(&k2), 0);
	bk_put_key(&r.f, k2);
	seal_volume(r.vol, k2, "top", BK_VALUE2);
	{
		struct state_wait w = { &r.f, "top", "stale" };

		ck_assert_msg(t_wait_until(state_is, &w, T_DEADLINE_MS), "top did not go stale");
	}
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE1));

	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	{
		struct value_wait w = { &r.f, "top", "password", BK_VALUE2 };

		ck_assert_msg(t_wait_until(hash_is, &w, T_DEADLINE_MS), "top is not opened with "
			      "the key rotated in the backend");
	}
	{
		struct state_wait w = { &r.f, "top", "valid" };

		ck_assert(t_wait_until(state_is, &w, T_DEADLINE_MS));
	}
	ck_assert_int_gt(version_of(&r.f, "top"), v1);
	ck_assert(bf_wait_log_count(&r.f, "\"vault_path\":\"" BK_PATH "\",\"field\":\"lk1\","
				    "\"key_id\":", 1));
	ck_assert_int_eq(bf_log_count(&r.f, "\"replaced\":true"), 1);
	ck_assert_int_eq(bf_log_count(&r.f, REFUSED_LOG), 0);
	bk_no_values(&r, (struct lk_key *const[]){ k1, k2 }, 2);
	lk_key_free(k1);
	lk_key_free(k2);
	finish(&r.f);
}
END_TEST

/* The key's path answers 403, then 404; then the field is missing, then not a key: each
 * reload is refused naming the configuration key, the path and the field, and the key
 * loaded before goes on serving (a new version sealed with it opens). Put back as it was,
 * the key reloads without being replaced. */
START_TEST(test_backend_key_unreadable)
{
	struct version_wait vw;
	struct lk_key *k;
	struct bk r;
	long long v;

	bk_start(&r, &k);
	v = version_of(&r.f, "top");
	ck_assert_int_lt(bf_dev_call(&r.f, "PUT", "/_latchkey/faults", "{\"error_rate\": 1, "
				     "\"error_status\": 403, \"paths\": \"" BK_PATH "\"}", NULL), 300);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 1));
	ck_assert_int_eq(bf_log_count(&r.f, BK_REFUSED), 1);
	ck_assert_int_eq(bf_log_count(&r.f, "HTTP 403"), 1);
	ck_assert_int_lt(bf_dev_call(&r.f, "DELETE", "/_latchkey/faults", NULL, NULL), 300);
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE1));
	ck_assert_int_eq(version_of(&r.f, "top"), v);

	/* Every version gone: 404. */
	ck_assert_int_lt(bf_dev_call(&r.f, "DELETE", "/v1/secret/metadata/broker/keys", NULL,
				     NULL), 300);
	ck_assert_int_eq(bf_dev_call(&r.f, "GET", "/v1/" BK_PATH, NULL, NULL), 404);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 2));
	ck_assert_int_eq(bf_log_count(&r.f, BK_REFUSED), 2);
	ck_assert_int_eq(bf_log_count(&r.f, "HTTP 404"), 1);

	bk_put(&r.f, "\"other\": \"x\"");
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 3));
	ck_assert_int_eq(bf_log_count(&r.f, BK_REFUSED), 3);
	ck_assert_int_eq(bf_log_count(&r.f, "no string field \\\"lk1\\\""), 1);

	bk_put(&r.f, "\"lk1\": \"not a key\"");
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, REFUSED_LOG, 4));
	ck_assert_int_eq(bf_log_count(&r.f, BK_REFUSED), 4);
	ck_assert_int_eq(bf_log_count(&r.f, "field \\\"lk1\\\": "), 1);
	ck_assert_int_eq(bf_log_count(&r.f, OK_LOG), 0);
	ck_assert(metrics_has(&r.f, "latchkey_broker_reloads_total{result=\"error\"} 4\n"));

	/* The old key serves, and opens what is sealed with it now. */
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE1));
	vw.f = &r.f;
	vw.name = "top";
	vw.above = version_of(&r.f, "top");
	ck_assert_int_eq(vw.above, v);
	seal_volume(r.vol, k, "top", BK_VALUE3);
	ck_assert_msg(t_wait_until(version_above, &vw, T_DEADLINE_MS), "the new version was missed");
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE3));

	bk_put_key(&r.f, k);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	ck_assert_int_eq(bf_log_count(&r.f, "\"replaced\":true"), 0);
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE3));
	bk_no_values(&r, &k, 1);
	lk_key_free(k);
	finish(&r.f);
}
END_TEST

/* The same key text, written again as a new KV version: the reload reads it (the backend
 * sees the read) and changes nothing: the secret keeps its version (its ETag), its source
 * is not read again, no key is replaced. */
START_TEST(test_backend_key_unchanged)
{
	const char *read_line = "\"method\":\"GET\",\"path\":\"/v1/" BK_PATH "\"";
	const char *refreshes = "latchkey_broker_refreshes_total{secret=\"top\"} ";
	long long v, reads;
	struct lk_key *k;
	int n0;
	struct bk r;

	bk_start(&r, &k);
	bk_put_key(&r.f, k);
	v = version_of(&r.f, "top");
	ck_assert_int_gt(v, 0);
	reads = counter_value(&r.f, refreshes);
	ck_assert_int_ge(reads, 0);
	n0 = dev_log_count(&r.f, read_line);
	ck_assert_int_ge(n0, 1);

	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	{
		struct dev_log_wait w = { &r.f, read_line, n0 + 1 };

		ck_assert_msg(t_wait_until(dev_log_reaches, &w, T_DEADLINE_MS), "the reload did "
			      "not read the key in the backend");
	}
	ck_assert_int_eq(bf_log_count(&r.f, "\"replaced\":"), 0);
	ck_assert_int_eq(version_of(&r.f, "top"), v);
	ck_assert_int_eq(counter_value(&r.f, refreshes), reads);
	ck_assert(served_hash_is(&r.f, "top", "password", BK_VALUE1));
	ck_assert_int_eq(etag_of(&r.f, "/v1/secrets/top"), v);
	bk_no_values(&r, &k, 1);
	lk_key_free(k);
	finish(&r.f);
}
END_TEST

/* An invalid file, then a restart-only key: both refused with the key named, the running
 * configuration serving, reloads_total{result="error"} counting them. */
START_TEST(test_refused)
{
	char line[1024], keys[64];
	const char *at;
	long long v;
	unsigned threads, poll_us;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	bf_config(&f, API, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	v = version_of(&f, "api");
	/* What "auto" chose for the serving threads, which differs from machine to machine. */
	ck_assert(t_wait_log(&f.broker, "\"msg\":\"serving\"", T_DEADLINE_MS, line, sizeof(line)));
	ck_assert_ptr_nonnull(at = strstr(line, "\"threads\":"));
	threads = (unsigned)strtoul(at + strlen("\"threads\":"), NULL, 10);
	ck_assert_ptr_nonnull(at = strstr(line, "\"poll_us\":"));
	poll_us = (unsigned)strtoul(at + strlen("\"poll_us\":"), NULL, 10);
	ck_assert_uint_ge(threads, 1);

	reload(&f, "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"soon\"},"
	       API2, NULL, NULL, REFUSED_LOG, 1);
	ck_assert_int_eq(bf_log_count(&f, "secrets[0].refresh"), 1);
	ck_assert_int_eq(version_of(&f, "api"), v);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api2", NULL), 404);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"error\"} 1\n"));
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"ok\"} 0\n"));

	reload(&f, API "," API2, "\"threads\": 3", NULL, REFUSED_LOG, 2);
	ck_assert_int_eq(bf_log_count(&f, "listen.threads: changed, and only a restart"), 1);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api2", NULL), 404);
	ck_assert_int_eq(version_of(&f, "api"), v);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"error\"} 2\n"));

	snprintf(keys, sizeof(keys), "\"poll_us\": %u", poll_us == 0 ? 20 : 0);
	reload(&f, API "," API2, keys, NULL, REFUSED_LOG, 3);
	ck_assert_int_eq(bf_log_count(&f, "listen.poll_us: changed, and only a restart"), 1);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api2", NULL), 404);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"error\"} 3\n"));

	/* Fixed: applied. The numbers "auto" chose are no change. */
	snprintf(keys, sizeof(keys), "\"threads\": %u, \"poll_us\": %u", threads, poll_us);
	reload(&f, API "," API2, keys, NULL, OK_LOG, 1);
	ck_assert(wait_status(&f, "/v1/secrets/api2", 200));
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"ok\"} 1\n"));
	/* And back to "auto": no change either, even once the broker may run on fewer CPUs
	 * than at start ("auto" is decided at start, and is not decided again here). */
	{
		cpu_set_t one;
		int cpu = sched_getcpu();

		CPU_ZERO(&one);
		CPU_SET(cpu >= 0 ? cpu : 0, &one);
		ck_assert_int_eq(sched_setaffinity(f.broker.pid, sizeof(one), &one), 0);
	}
	reload(&f, API "," API2, "\"threads\": \"auto\", \"poll_us\": \"auto\"", NULL, OK_LOG, 2);
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"ok\"} 2\n"));
	ck_assert(metrics_has(&f, "latchkey_broker_reloads_total{result=\"error\"} 3\n"));
	finish(&f);
}
END_TEST

/* allow is applied in place: the data stays, the peer is refused. */
START_TEST(test_allow_change)
{
	char secrets[512];
	long long v;
	struct conn_wait cw;
	struct reader r;
	struct bf f;
	uid_t me = geteuid();

	bf_dev(&f, "1h", "2h");
	snprintf(secrets, sizeof(secrets), "{\"name\": \"api\", \"path\": \"secret/data/app/api\", "
		 "\"allow\": {\"uids\": [%u]}}", (unsigned)me);
	bf_config(&f, secrets, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	v = version_of(&f, "api");
	/* A reader blocked on it before the change is judged again when it is answered (here
	 * at the end of its wait). */
	memset(&r, 0, sizeof(r));
	r.f = &f;
	snprintf(r.path, sizeof(r.path), "/v1/secrets/api?index=%lld&wait=3s", v);
	ck_assert_int_eq(pthread_create(&r.th, NULL, reader_main, &r), 0);
	cw.f = &f;
	cw.line = "latchkey_broker_connections 2\n";
	ck_assert_msg(t_wait_until(conns_are, &cw, T_DEADLINE_MS), "the reader did not connect");
	snprintf(secrets, sizeof(secrets), "{\"name\": \"api\", \"path\": \"secret/data/app/api\", "
		 "\"allow\": {\"uids\": [%u]}}", (unsigned)me + 1);
	reload(&f, secrets, NULL, NULL, OK_LOG, 1);
	pthread_join(r.th, NULL);
	ck_assert_int_eq(r.status, 403);
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api", NULL), 403);
	ck_assert_int_eq(bf_log_count(&f, "\"changed\":\"\""), 1);
	snprintf(secrets, sizeof(secrets), "{\"name\": \"api\", \"path\": \"secret/data/app/api\", "
		 "\"allow\": {\"uids\": [%u]}}", (unsigned)me);
	reload(&f, secrets, NULL, NULL, OK_LOG, 2);
	ck_assert_int_eq(version_of(&f, "api"), v);
	finish(&f);
}
END_TEST

/* A template over a kept secret: a reload with a changed template renders it again at
 * once (no backend call); a reload with the same one does not write it again. */
START_TEST(test_template_reload)
{
	char extra[1024], out[600];
	struct bf f;
	struct stat st1, st2;
	int rendered;

	bf_dev(&f, "1h", "2h");
	snprintf(out, sizeof(out), "%s", t_path(f.dir, "app.conf"));
	snprintf(extra, sizeof(extra), "\"templates\": [{\"template\": \"user={{ .api.user }}\", "
		 "\"destination\": \"%s\"}]", out);
	bf_config(&f, API, extra);
	ck_assert(bf_start(&f));
	{
		struct file_wait w = { out, "user=bf-user" };

		ck_assert_msg(t_wait_until(file_is, &w, T_DEADLINE_MS), "the template never rendered");
	}
	ck_assert_int_eq(stat(out, &st1), 0);
	rendered = bf_log_count(&f, "\"msg\":\"template rendered\"");
	/* The same template: not written again. */
	reload(&f, API, NULL, extra, OK_LOG, 1);
	ck_assert_int_eq(stat(out, &st2), 0);
	ck_assert_int_eq(st1.st_ino, st2.st_ino);
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"template rendered\""), rendered);
	/* Another template over the same secret: rendered at once. */
	snprintf(extra, sizeof(extra), "\"templates\": [{\"template\": \"login={{ .api.user }}\", "
		 "\"destination\": \"%s\"}]", out);
	reload(&f, API, NULL, extra, OK_LOG, 2);
	{
		struct file_wait w = { out, "login=bf-user" };

		ck_assert_msg(t_wait_until(file_is, &w, T_DEADLINE_MS),
			      "the changed template was not rendered after the reload");
	}
	ck_assert_int_eq(bf_log_count(&f, "\"login\":true"), 0);
	finish(&f);
}
END_TEST

/* A token of its own, from the dev server's root, with the policy named. */
static void
new_token(struct bf *f, const char *policy, char *out, size_t len)
{
	char *body = NULL, req[128];
	json_t *j;

	snprintf(req, sizeof(req), "{\"policies\":[\"%s\"],\"ttl\":\"1h\"}", policy);
	ck_assert_int_eq(bf_dev_call(f, "POST", "/v1/auth/token/create", req, &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(j);
	snprintf(out, len, "%s",
		 json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
	json_decref(j);
}

/* A new token in the token file: the broker logs in with it; with the old one revoked, it
 * still reads. */
START_TEST(test_token_file)
{
	char first[256], second[256], req[512];
	struct bf f;

	bf_dev(&f, "1h", "2h");
	bf_dev_call(&f, "PUT", "/v1/sys/policies/acl/app",
		    "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = [\\\"read\\\"] }\"}",
		    NULL);
	new_token(&f, "app", first, sizeof(first));
	new_token(&f, "app", second, sizeof(second));
	ck_assert_int_eq(t_write_file(f.token_file, first, 0600), 0);
	bf_config(&f, API, NULL);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"logged in\""), 1);

	/* The same file again: no login. */
	reload(&f, API, NULL, NULL, OK_LOG, 1);
	ck_assert_int_eq(bf_log_count(&f, "\"login\":false"), 1);

	ck_assert_int_eq(t_write_file(f.token_file, second, 0600), 0);
	reload(&f, API, NULL, NULL, OK_LOG, 2);
	ck_assert_int_eq(bf_log_count(&f, "\"login\":true"), 1);
	ck_assert(bf_wait_log_count(&f, "\"msg\":\"logged in\"", 2));
	snprintf(req, sizeof(req), "{\"token\":\"%s\"}", first);
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/auth/token/revoke", req, NULL), 300);
	/* Read with the new token only: the old one is gone. */
	reload(&f, API "," API2, NULL, NULL, OK_LOG, 3);
	ck_assert(wait_status(&f, "/v1/secrets/api2", 200));
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"backend token lost"), 0);
	finish(&f);
}
END_TEST

/* An AppRole login for the broker in f's dev backend: the role "app" (policy app reads
 * secret/data/app/...; a secret_id is good for one login), its role_id written to
 * role_id_file; secret_id_file named. */
static void
approle_setup(struct bf *f, char *role_id_file, char *secret_id_file, size_t len)
{
	char *body = NULL;
	json_t *j;

	ck_assert_int_lt(bf_dev_call(f, "PUT", "/v1/sys/policies/acl/app",
				     "{\"policy\":\"path \\\"secret/data/app/*\\\" { capabilities = "
				     "[\\\"read\\\"] }\"}", NULL), 300);
	ck_assert_int_lt(bf_dev_call(f, "POST", "/v1/auth/approle/role/app",
				     "{\"token_ttl\":\"1h\",\"token_max_ttl\":\"2h\","
				     "\"secret_id_num_uses\":1,\"token_policies\":[\"app\"]}",
				     NULL), 300);
	ck_assert_int_eq(bf_dev_call(f, "GET", "/v1/auth/approle/role/app/role-id", NULL, &body),
			 200);
	j = json_loads(body, 0, NULL);
	free(body);
	snprintf(role_id_file, len, "%s/role_id", f->dir);
	ck_assert_int_eq(t_write_file(role_id_file, json_string_value(json_object_get(
		json_object_get(j, "data"), "role_id")), 0600), 0);
	json_decref(j);
	snprintf(secret_id_file, len, "%s/secret_id", f->dir);
}

/* A new secret_id of role app written to file. */
static void
approle_new_secret_id(struct bf *f, const char *file)
{
	char *body = NULL;
	json_t *j;

	ck_assert_int_eq(bf_dev_call(f, "POST", "/v1/auth/approle/role/app/secret-id", "{}",
				     &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	ck_assert_int_eq(t_write_file(file, json_string_value(json_object_get(
		json_object_get(j, "data"), "secret_id")), 0600), 0);
	json_decref(j);
}

/* The broker's configuration with AppRole auth, as bf_config writes the rest. */
static void
approle_config(struct bf *f, const char *role_id_file, const char *secret_id_file,
	       const char *secrets)
{
	char *text;

	ck_assert_int_ge(asprintf(&text,
		"{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"approle\","
		" \"role_id_file\": \"%s\", \"secret_id_file\": \"%s\"}},\n"
		" \"listen\": {\"socket\": \"%s\", \"mode\": \"0666\", \"admin_uids\": [0]},\n"
		" \"state_dir\": \"%s\", \"seccomp\": true, \"grace\": \"1s\",\n"
		" \"retry\": {\"initial\": \"200ms\", \"max\": \"2s\"},\n"
		" \"secrets\": [%s]}\n", f->dev.addr, role_id_file, secret_id_file, f->sock,
		f->state_dir, secrets), 0);
	ck_assert_int_eq(t_write_file(f->cfg, text, 0600), 0);
	free(text);
}

#define LOGGED_IN "\"msg\":\"logged in\""

/* The AppRole secret_id rotated under the same file name: a reload logs in with the new
 * one (each is good for one login, so only the new one can), and reads with the new
 * token. The same file again costs no login. */
START_TEST(test_approle_credentials_changed)
{
	char role_id_file[700], secret_id_file[700], *body = NULL;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	approle_setup(&f, role_id_file, secret_id_file, sizeof(role_id_file));
	approle_new_secret_id(&f, secret_id_file);
	approle_config(&f, role_id_file, secret_id_file, API);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));
	ck_assert_int_eq(bf_log_count(&f, LOGGED_IN), 1);

	/* The same files: no login. */
	sighup(&f);
	ck_assert(bf_wait_log_count(&f, OK_LOG, 1));
	ck_assert_int_eq(bf_log_count(&f, "\"login\":false"), 1);

	/* Rotated: a new secret_id in the same file (the old one was good for one login). */
	approle_new_secret_id(&f, secret_id_file);
	approle_config(&f, role_id_file, secret_id_file, API "," API2);
	sighup(&f);
	ck_assert(bf_wait_log_count(&f, OK_LOG, 2));
	ck_assert_int_eq(bf_log_count(&f, "\"login\":true"), 1);
	ck_assert_msg(bf_wait_log_count(&f, LOGGED_IN, 2), "no new login after the secret_id changed");
	ck_assert(wait_status(&f, "/v1/secrets/api2", 200));
	ck_assert(metrics_has(&f, "latchkey_broker_logins_total 2\n"));
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"login failed\""), 0);
	ck_assert_int_eq(bf_get(&f, "/v1/ready", &body), 200);
	ck_assert_ptr_null(strstr(body, "login_error"));
	free(body);
	finish(&f);
}
END_TEST

/* A secret_id file rewritten with one the backend refuses: the reload asks for a login,
 * which fails; the token held goes on serving (a secret added by the same reload is read
 * with it), the log and /v1/ready's backend.login_error say so, without the value. */
START_TEST(test_approle_login_fails)
{
	char role_id_file[700], secret_id_file[700], *body = NULL;
	json_t *j, *be;
	struct bf f;

	bf_dev(&f, "1h", "2h");
	approle_setup(&f, role_id_file, secret_id_file, sizeof(role_id_file));
	approle_new_secret_id(&f, secret_id_file);
	approle_config(&f, role_id_file, secret_id_file, API);
	ck_assert(bf_start(&f));
	ck_assert(wait_status(&f, "/v1/secrets/api", 200));

	ck_assert_int_eq(t_write_file(secret_id_file, "reload-bad-secret-id-4b1f", 0600), 0);
	approle_config(&f, role_id_file, secret_id_file, API "," API2);
	sighup(&f);
	ck_assert(bf_wait_log_count(&f, OK_LOG, 1));
	ck_assert_int_eq(bf_log_count(&f, "\"login\":true"), 1);
	ck_assert_msg(bf_wait_log_count(&f, "\"msg\":\"the login a reload asked for failed: the "
				     "token held goes on serving\"", 1), "no failed login logged");
	ck_assert(wait_status(&f, "/v1/secrets/api2", 200));
	ck_assert_int_eq(bf_get(&f, "/v1/secrets/api", NULL), 200);
	ck_assert_int_eq(bf_log_count(&f, LOGGED_IN), 1);
	ck_assert_int_eq(bf_log_count(&f, "reload-bad-secret-id-4b1f"), 0);
	ck_assert_int_eq(bf_get(&f, "/v1/ready", &body), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	be = json_object_get(j, "backend");
	ck_assert_ptr_nonnull(json_object_get(be, "login_error"));
	ck_assert(json_is_true(json_object_get(be, "logged_in")));
	ck_assert_ptr_null(strstr(json_string_value(json_object_get(be, "login_error")),
				  "reload-bad-secret-id-4b1f"));
	json_decref(j);
	/* One login tried, not a retry loop: the token held is renewed as before. */
	ck_assert_int_eq(bf_log_count(&f, "\"msg\":\"login failed\""), 1);

	/* Fixed: the next reload logs in, and the error goes. */
	approle_new_secret_id(&f, secret_id_file);
	sighup(&f);
	ck_assert(bf_wait_log_count(&f, OK_LOG, 2));
	ck_assert(bf_wait_log_count(&f, LOGGED_IN, 2));
	ck_assert_int_eq(bf_get(&f, "/v1/ready", &body), 200);
	ck_assert_ptr_null(strstr(body, "login_error"));
	free(body);
	finish(&f);
}
END_TEST

/* The token held is revoked; a new one is written to token_file and SIGHUP sent. The
 * reload logs in with it rather than reading the backend key with the revoked one (which
 * would refuse the reload), and the secret keeps serving. */
START_TEST(test_backend_key_token_rotated)
{
	char t1[256], t2[256], req[512];
	struct lk_key *k;
	struct bk r;

	bk_start(&r, &k);
	ck_assert_int_lt(bf_dev_call(&r.f, "PUT", "/v1/sys/policies/acl/bk-read",
		    "{\"policy\":\"path \\\"secret/*\\\" { capabilities = [\\\"read\\\"] }\"}",
		    NULL), 300);
	new_token(&r.f, "bk-read", t1, sizeof(t1));
	ck_assert_int_eq(t_write_file(r.f.token_file, t1, 0600), 0);
	sighup(&r.f);
	ck_assert(bf_wait_log_count(&r.f, OK_LOG, 1));
	ck_assert(bf_wait_log_count(&r.f, "\"msg\":\"logged in\"", 2));
	snprintf(req, sizeof(req), "{\"token\":\"%s\"}", t1);
	ck_assert_int_lt(bf_dev_call(&r.f, "POST", "/v1/auth/token/revoke", req, NULL), 300);
	new_token(&r.f, "bk-read", t2, sizeof(t2));
	ck_assert_int_eq(t_write_file(r.f.token_file, t2, 0600), 0);
	sighup(&r.f);
	ck_assert_msg(bf_wait_log_count(&r.f, OK_LOG, 2),
		      "the reload with a new token file was not applied (refused: %d)",
		      bf_log_count(&r.f, REFUSED_LOG));
	ck_assert(bf_wait_log_count(&r.f, "\"msg\":\"logged in\"", 3));
	ck_assert_int_eq(bf_log_count(&r.f, REFUSED_LOG), 0);
	ck_assert_int_eq(bf_log_count(&r.f, BK_REFUSED), 0);
	{
		struct value_wait w = { &r.f, "top", "password", BK_VALUE1 };

		ck_assert(t_wait_until(hash_is, &w, T_DEADLINE_MS));
	}
	lk_key_free(k);
	finish(&r.f);
}
END_TEST

#define ADD(s, fn, secs) do { \
	TCase *tc_ = tcase_create(#fn); \
	tcase_set_timeout(tc_, (secs)); \
	tcase_add_test(tc_, fn); \
	suite_add_tcase((s), tc_); \
} while (0)

static Suite *
reload_suite(void)
{
	Suite *s = suite_create("broker-reload");

	ADD(s, test_add_remove_keep, 90);
	ADD(s, test_changed_source, 90);
	ADD(s, test_refused, 90);
	ADD(s, test_file_source_kept, 90);
	ADD(s, test_file_source_add_remove, 120);
	ADD(s, test_file_source_first_added, 90);
	ADD(s, test_key_file_rotated, 90);
	ADD(s, test_key_file_broken, 90);
	ADD(s, test_backend_key_rotated, 90);
	ADD(s, test_backend_key_unreadable, 120);
	ADD(s, test_backend_key_unchanged, 90);
	ADD(s, test_backend_key_token_rotated, 90);
	ADD(s, test_file_source_sealed_added, 90);
	ADD(s, test_file_source_reload_under_writes, 120);
	ADD(s, test_reload_under_load, 120);
	ADD(s, test_allow_change, 90);
	ADD(s, test_token_file, 90);
	ADD(s, test_approle_credentials_changed, 90);
	ADD(s, test_approle_login_fails, 90);
	ADD(s, test_template_reload, 90);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reload_suite());
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
