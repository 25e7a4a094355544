/* check_broker_crash.c — kill -9 at random points (start-up, reads, renewals, rotations),
 * restart, and count the leases left live in `latchkey dev`. With the lease journal, after
 * each restart at most one lease per secret is live: the new broker's. A lease can escape
 * the journal only if the kill lands between the backend's answer and the journal's write;
 * such a lease is told apart by its issue time (just before the kill) and counted, not
 * hidden. LATCHKEY_CRASH_CYCLES sets the number of kills (12 unless set); the seed is
 * printed, and the figures go to the log as "FIGURE:" lines. */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "brokerutil.h"
#include "common/clock.h"

/* A lease issued this long before the kill at most may have escaped the journal. */
#define JOURNAL_WINDOW_MS 200
#define ORPHANS_MAX 64

static int
cycles(void)
{
	const char *s = getenv("LATCHKEY_CRASH_CYCLES");

	return s != NULL && atoi(s) > 0 ? atoi(s) : 12;
}

struct orphans {
	char id[ORPHANS_MAX][256];
	int n;
};

static bool
is_orphan(const struct orphans *o, const char *id)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->id[i], id) == 0)
			return true;
	return false;
}

/* Active leases of a role (database/creds/ROLE/...), the known orphans left out. */
static int
active_of(struct bf *f, const char *role, const struct orphans *o, json_t **ret_list)
{
	char *body = NULL, prefix[128];
	json_t *j, *l;
	size_t i;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "database/creds/%s/", role);
	if (bf_dev_call(f, "GET", "/_latchkey/leases", NULL, &body) != 200)
		return -1;
	j = json_loads(body, 0, NULL);
	free(body);
	if (ret_list != NULL)
		*ret_list = json_array();
	json_array_foreach(json_object_get(j, "leases"), i, l) {
		const char *id = json_string_value(json_object_get(l, "lease_id"));
		const char *st = json_string_value(json_object_get(l, "state"));

		if (id == NULL || st == NULL || strncmp(id, prefix, strlen(prefix)) != 0 ||
		    strcmp(st, "active") != 0 || is_orphan(o, id))
			continue;
		n++;
		if (ret_list != NULL)
			json_array_append(*ret_list, l);
	}
	json_decref(j);
	return n;
}

struct settle {
	struct bf *f;
	const struct orphans *o;
};

static bool
settled(void *arg)
{
	struct settle *s = arg;

	return active_of(s->f, "app", s->o, NULL) <= 1 && active_of(s->f, "long", s->o, NULL) <= 1;
}

static void
nap(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

START_TEST(test_kill9_anywhere)
{
	unsigned seed = (unsigned)lk_now_real_ms();
	struct orphans o = { .n = 0 };
	struct settle st;
	struct bf f;
	int kills = cycles(), at_startup = 0, worst = 0, status;

	printf("crash: %d kills, seed %u\n", kills, seed);
	srand(seed);
	bf_dev(&f, "2s", "4s");
	ck_assert_int_lt(bf_dev_call(&f, "POST", "/v1/database/roles/long",
				     "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"max_ttl\":\"2h\"}", NULL),
			 300);
	bf_config(&f, "{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true},"
		  "{\"name\": \"long\", \"path\": \"database/creds/long\", \"required\": true},"
		  "{\"name\": \"api\", \"path\": \"secret/data/app/api\", \"refresh\": \"1s\"}", NULL);
	st.f = &f;
	st.o = &o;
	for (int k = 0; k < kills; k++) {
		int64_t killed_ms;
		json_t *list;

		ck_assert(bf_start(&f));
		if (rand() % 4 == 0) {
			/* Start-up: inheriting the journal, logging in, the first reads. */
			nap(rand() % 300);
			at_startup++;
		} else {
			ck_assert_msg(bf_wait_ready(&f, T_DEADLINE_MS), "kill %d: never ready", k);
			/* Across renewals and rotations (one every 2.5 to 3.5 s). */
			nap(rand() % 4000);
		}
		killed_ms = lk_now_real_ms();
		bf_stop_broker(&f, SIGKILL, T_DEADLINE_MS);

		/* The next broker revokes what this one journaled. */
		ck_assert(bf_start(&f));
		ck_assert_msg(bf_wait_ready(&f, T_DEADLINE_MS), "restart %d: never ready", k);
		if (!t_wait_until(settled, &st, T_DEADLINE_MS)) {
			/* More than one live lease for a secret: each extra one must be a lease
			 * issued just before the kill, which the journal could not have held. */
			const char *roles[] = { "app", "long" };

			for (int r = 0; r < 2; r++) {
				char current[256] = "";
				size_t i;
				json_t *l;

				bf_current_lease(&f, r == 0 ? "db" : "long", current, sizeof(current));
				if (active_of(&f, roles[r], &o, &list) <= 1) {
					json_decref(list);
					continue;
				}
				json_array_foreach(list, i, l) {
					const char *id = json_string_value(json_object_get(l, "lease_id"));
					const char *issued = json_string_value(json_object_get(l, "issue_time"));
					int64_t ms = 0;

					if (strcmp(id, current) == 0)
						continue;
					ck_assert(lk_rfc3339_parse(issued, &ms) == 0);
					ck_assert_msg(ms <= killed_ms && killed_ms - ms <= JOURNAL_WINDOW_MS,
						      "kill %d: lease %s, issued %lld ms before the kill, "
						      "outlived it", k, id, (long long)(killed_ms - ms));
					ck_assert(o.n < ORPHANS_MAX);
					snprintf(o.id[o.n++], sizeof(o.id[0]), "%s", id);
				}
				json_decref(list);
			}
		}
		{
			int a = active_of(&f, "app", &o, NULL), l = active_of(&f, "long", &o, NULL);

			if (a - 1 > worst)
				worst = a - 1;
			if (l - 1 > worst)
				worst = l - 1;
		}
		bf_stop_broker(&f, SIGKILL, T_DEADLINE_MS);
	}
	/* The last one stops cleanly: nothing journaled is left. */
	ck_assert(bf_start(&f));
	ck_assert(bf_wait_ready(&f, T_DEADLINE_MS));
	status = bf_stop_broker(&f, SIGTERM, T_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	printf("FIGURE: kill -9 %d times (%d during start-up), then a clean stop: leases left "
	       "live beyond one per secret after a restart: %d; leases that escaped the journal "
	       "(issued < %d ms before a kill): %d; live after the clean stop: %d\n", kills,
	       at_startup, worst, JOURNAL_WINDOW_MS, o.n,
	       active_of(&f, "app", &o, NULL) + active_of(&f, "long", &o, NULL));
	ck_assert_int_eq(active_of(&f, "app", &o, NULL), 0);
	ck_assert_int_eq(active_of(&f, "long", &o, NULL), 0);
	bf_stop(&f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("broker-crash");
	TCase *tc = tcase_create("test_kill9_anywhere");
	SRunner *sr;
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	tcase_set_timeout(tc, 60 + cycles() * 30);
	tcase_add_test(tc, test_kill9_anywhere);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
