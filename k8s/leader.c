/* leader.c — leader election on a coordination.k8s.io/v1 Lease, as client-go does it
 * (k8s.h; REFERENCE.md §2.10): a lease held by another counts as valid for its duration
 * from when this process last saw it change (local clock, not the remote renewTime),
 * optimistic concurrency on the Lease's resourceVersion, renewals every retry period, and
 * leadership given up when no renewal succeeded within the renew deadline.
 */
#include "k8s/internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"

/* Longest holder identity. */
#define IDENTITY_MAX 256

struct lk_k8s_leader {
	struct lk_k8s_client *client;
	char *ns, *name;
	char identity[IDENTITY_MAX];
	int64_t lease_ms, renew_deadline_ms, retry_ms;
	void (*on_change)(void *arg, bool leading);
	void *arg;

	pthread_t thread;
	volatile bool stop;
	atomic_bool leading;
	int64_t last_renew_ms;      /* monotonic, of the last successful write */
	char *observed;             /* the Lease spec last seen, as text */
	int64_t observed_ms;        /* when it was seen to change (monotonic) */
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
set_leading(struct lk_k8s_leader *l, bool leading)
{
	if (atomic_exchange(&l->leading, leading) != leading && l->on_change != NULL)
		l->on_change(l->arg, leading);
}

/* The spec of a new or taken-over record. */
static json_t *
record(const struct lk_k8s_leader *l, const char *holder, int64_t duration_s,
       const json_t *old_spec, bool keep_acquire)
{
	char now[32];
	json_int_t transitions = json_integer_value(json_object_get(old_spec, "leaseTransitions"));
	json_t *spec;

	lk_k8s_microtime(now_us(), now);
	spec = json_pack("{s:s, s:I, s:s, s:s, s:I}", "holderIdentity", holder,
			 "leaseDurationSeconds", (json_int_t)duration_s,
			 "acquireTime", now, "renewTime", now, "leaseTransitions", transitions);
	if (spec != NULL && keep_acquire &&
	    json_is_string(json_object_get(old_spec, "acquireTime")))
		json_object_set(spec, "acquireTime", json_object_get(old_spec, "acquireTime"));
	return spec;
}

enum attempt { HELD, HELD_BY_OTHER, FAILED };

/* One tryAcquireOrRenew. */
static enum attempt
try_acquire_or_renew(struct lk_k8s_leader *l)
{
	struct lk_k8s_error err;
	json_t *lease = NULL, *spec, *put = NULL;
	const json_t *old_spec;
	const char *holder;
	char *text;
	enum attempt result = FAILED;
	bool mine;
	int rc;

	rc = lk_k8s_get(l->client, &lk_k8s_leases, l->ns, l->name, &lease, &err);
	if (rc == -ENOENT) {
		spec = record(l, l->identity, l->lease_ms / 1000, NULL, false);
		put = json_pack("{s:{s:s, s:s}, s:o}", "metadata", "name", l->name, "namespace",
				l->ns, "spec", spec);
		rc = put != NULL ? lk_k8s_create(l->client, &lk_k8s_leases, l->ns, put, NULL, &err) :
				   -ENOMEM;
		json_decref(put);
		if (rc == 0)
			l->last_renew_ms = lk_now_mono_ms();
		return rc == 0 ? HELD : FAILED;
	}
	if (rc < 0)
		return FAILED;
	old_spec = json_object_get(lease, "spec");
	text = json_dumps(old_spec, JSON_COMPACT | JSON_SORT_KEYS);
	if (text != NULL && (l->observed == NULL || strcmp(text, l->observed) != 0)) {
		free(l->observed);
		l->observed = text;
		l->observed_ms = lk_now_mono_ms();
		text = NULL;
	}
	free(text);
	holder = json_string_value(json_object_get(old_spec, "holderIdentity"));
	mine = holder != NULL && strcmp(holder, l->identity) == 0;
	if (!mine && holder != NULL && holder[0] != '\0') {
		json_int_t dur = json_integer_value(json_object_get(old_spec, "leaseDurationSeconds"));

		/* Another holder's lease is valid until its duration has passed since we last
		 * saw it change, by our own clock. */
		if (lk_now_mono_ms() < l->observed_ms + (int64_t)dur * 1000) {
			result = HELD_BY_OTHER;
			goto out;
		}
	}
	spec = record(l, l->identity, l->lease_ms / 1000, old_spec, mine);
	if (spec == NULL)
		goto out;
	if (!mine)
		json_object_set_new(spec, "leaseTransitions", json_integer(
			json_integer_value(json_object_get(old_spec, "leaseTransitions")) + 1));
	put = json_deep_copy(lease);
	if (put == NULL) {
		json_decref(spec);
		goto out;
	}
	json_object_set_new(put, "spec", spec);
	/* The GET's resourceVersion: a 409 means another process wrote first. */
	rc = lk_k8s_replace(l->client, &lk_k8s_leases, l->ns, l->name, NULL, put, NULL, &err);
	if (rc == 0) {
		l->last_renew_ms = lk_now_mono_ms();
		result = HELD;
	}
out:
	json_decref(put);
	json_decref(lease);
	return result;
}

/* Gives the lease up at once: holder "", a 1 s duration, transitions kept. */
static void
release(struct lk_k8s_leader *l)
{
	struct lk_k8s_error err;
	json_t *lease = NULL, *spec;
	const char *holder;

	if (lk_k8s_get(l->client, &lk_k8s_leases, l->ns, l->name, &lease, &err) < 0)
		return;
	holder = json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity"));
	if (holder != NULL && strcmp(holder, l->identity) == 0 &&
	    (spec = record(l, "", 1, json_object_get(lease, "spec"), false)) != NULL) {
		json_object_set_new(lease, "spec", spec);
		(void)lk_k8s_replace(l->client, &lk_k8s_leases, l->ns, l->name, NULL, lease, NULL,
				     &err);
	}
	json_decref(lease);
}

static void *
leader_main(void *arg)
{
	struct lk_k8s_leader *l = arg;

	while (!l->stop) {
		enum attempt a = try_acquire_or_renew(l);
		bool held = a == HELD;
		uint32_t jitter;
		int64_t wait;

		/* Another holder: stop at once. A failed renewal: go on leading until the renew
		 * deadline has passed since the last one that worked. */
		if (held)
			set_leading(l, true);
		else if (a == HELD_BY_OTHER ||
			 lk_now_mono_ms() - l->last_renew_ms >= l->renew_deadline_ms)
			set_leading(l, false);
		/* The retry period with client-go's jitter factor 1.2 when not leading. */
		jitter = held ? 0 : randombytes_uniform((uint32_t)(l->retry_ms / 5 + 1));
		wait = l->retry_ms + jitter;
		k8s_sleep_ms(wait, &l->stop);
	}
	if (atomic_load(&l->leading)) {
		release(l);
		set_leading(l, false);
	}
	return NULL;
}

int
lk_k8s_leader_start(struct lk_k8s_client *c, const struct lk_k8s_leader_config *cfg,
		    struct lk_k8s_leader **ret, struct lk_error *err)
{
	struct lk_k8s_leader *l;
	const char *pod = getenv("POD_NAME");
	int r;

	if (cfg->ns == NULL || cfg->name == NULL)
		return lk_error_set(err, -EINVAL, "leader election: no Lease namespace or name");
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	l->client = c;
	l->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : 15000;
	l->renew_deadline_ms = cfg->renew_deadline_ms > 0 ? cfg->renew_deadline_ms : 10000;
	l->retry_ms = cfg->retry_ms > 0 ? cfg->retry_ms : 2000;
	l->on_change = cfg->on_change;
	l->arg = cfg->arg;
	if (!(l->lease_ms > l->renew_deadline_ms && l->renew_deadline_ms * 10 > l->retry_ms * 12)) {
		free(l);
		return lk_error_set(err, -EINVAL, "leader election: the lease duration must exceed "
				    "the renew deadline, and the deadline 1.2 times the retry period");
	}
	if (cfg->identity != NULL) {
		snprintf(l->identity, sizeof(l->identity), "%s", cfg->identity);
	} else if (pod != NULL && pod[0] != '\0') {
		snprintf(l->identity, sizeof(l->identity), "%s", pod);
	} else {
		char host[128] = "latchkey";
		unsigned char rnd[8];

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		randombytes_buf(rnd, sizeof(rnd));
		snprintf(l->identity, sizeof(l->identity), "%s_%02x%02x%02x%02x%02x%02x%02x%02x",
			 host, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	}
	l->ns = strdup(cfg->ns);
	l->name = strdup(cfg->name);
	atomic_init(&l->leading, false);
	if (l->ns == NULL || l->name == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((r = pthread_create(&l->thread, NULL, leader_main, l)) != 0) {
		r = lk_error_set(err, -r, "cannot start a thread: %s", strerror(r));
		goto fail;
	}
	*ret = l;
	return 0;
fail:
	free(l->ns);
	free(l->name);
	free(l);
	return r;
}

bool
lk_k8s_leader_is_leading(const struct lk_k8s_leader *l)
{
	return l != NULL && atomic_load(&((struct lk_k8s_leader *)l)->leading);
}

const char *
lk_k8s_leader_identity(const struct lk_k8s_leader *l)
{
	return l->identity;
}

void
lk_k8s_leader_stop(struct lk_k8s_leader *l)
{
	if (l == NULL)
		return;
	l->stop = true;
	pthread_join(l->thread, NULL);
	free(l->observed);
	free(l->ns);
	free(l->name);
	free(l);
}
