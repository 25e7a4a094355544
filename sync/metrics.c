/* metrics.c — the controller's metrics, all named latchkey_sync_* (internal.h; the table
 * in docs/sync.md). Labels are kinds, verbs, resource types and status codes: never a
 * namespace, a name or a value, so the series stay few whatever the cluster holds. */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Backend and API latency buckets, seconds. */
static const double latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25, 0.5, 1, 2.5, 5, 10 };
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

int
sync_metrics_init(struct sync_metrics *m)
{
	memset(m, 0, sizeof(*m));
	if ((m->reg = lk_metrics_new()) == NULL)
		return -ENOMEM;
	m->reconciles = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_sync_reconcile_total",
		"Reconciles by kind (ExternalSecret, SecretStore, ClusterSecretStore, SealedSecret).",
		(const char *const[]){ "kind", NULL }, NULL, 0);
	m->errors = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_sync_reconcile_errors_total",
		"Reconciles that failed, by kind.", (const char *const[]){ "kind", NULL }, NULL, 0);
	m->duration = lk_metrics_add(m->reg, LK_HISTOGRAM, "latchkey_sync_reconcile_duration_seconds",
		"Time one reconcile took, by kind.", (const char *const[]){ "kind", NULL },
		latency_buckets, NBUCKETS);
	m->queue_depth = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_sync_queue_depth",
		"Keys waiting in the work queue (delayed refreshes not counted).", NULL, NULL, 0);
	m->backend_requests = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_sync_backend_requests_total",
		"Requests to the secret backend by HTTP status (0: no answer).",
		(const char *const[]){ "code", NULL }, NULL, 0);
	m->backend_duration = lk_metrics_add(m->reg, LK_HISTOGRAM,
		"latchkey_sync_backend_request_duration_seconds", "Time of one backend request.",
		NULL, latency_buckets, NBUCKETS);
	m->api_requests = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_sync_api_requests_total",
		"Requests to the Kubernetes API by verb, resource and HTTP status (0: no answer).",
		(const char *const[]){ "verb", "resource", "code", NULL }, NULL, 0);
	m->api_duration = lk_metrics_add(m->reg, LK_HISTOGRAM,
		"latchkey_sync_api_request_duration_seconds",
		"Time of one Kubernetes API request by verb (watches not included).",
		(const char *const[]){ "verb", NULL }, latency_buckets, NBUCKETS);
	m->leader = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_sync_leader",
		"1 while this controller leads (and writes), 0 while it stands by.", NULL, NULL, 0);
	m->secret_writes = lk_metrics_add(m->reg, LK_COUNTER, "latchkey_sync_secret_writes_total",
		"Secrets created, updated or deleted, by the kind that owns them.",
		(const char *const[]){ "kind", NULL }, NULL, 0);
	m->coalesced = lk_metrics_add(m->reg, LK_COUNTER,
		"latchkey_sync_backend_reads_coalesced_total",
		"Backend reads served by a read of the same secret a moment before.", NULL, NULL, 0);
	m->stores = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_sync_stores",
		"Stores by state (ready: logged in).", (const char *const[]){ "state", NULL }, NULL, 0);
	m->key_uses = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_sync_sealing_key_sealedsecrets",
		"SealedSecrets whose values open with each sealing key (0: the key may be retired).",
		(const char *const[]){ "key", NULL }, NULL, 0);
	m->key_age = lk_metrics_add(m->reg, LK_GAUGE, "latchkey_sync_sealing_key_age_seconds",
		"Age of each sealing key (from its certificate's notBefore).",
		(const char *const[]){ "key", NULL }, NULL, 0);
	if (m->reconciles == NULL || m->errors == NULL || m->duration == NULL ||
	    m->queue_depth == NULL || m->backend_requests == NULL || m->backend_duration == NULL ||
	    m->api_requests == NULL || m->api_duration == NULL || m->leader == NULL ||
	    m->secret_writes == NULL || m->coalesced == NULL || m->stores == NULL ||
	    m->key_uses == NULL || m->key_age == NULL) {
		sync_metrics_free(m);
		return -ENOMEM;
	}
	lk_metric_set(m->leader, NULL, 0);
	lk_metric_add(m->coalesced, NULL, 0);
	return 0;
}

void
sync_metrics_free(struct sync_metrics *m)
{
	lk_metrics_free(m->reg);
	memset(m, 0, sizeof(*m));
}

void
sync_metrics_observe_api(void *arg, const char *verb, const char *resource, long status,
			 double seconds)
{
	struct sync_metrics *m = arg;
	char code[16];

	snprintf(code, sizeof(code), "%ld", status);
	lk_metric_add(m->api_requests, (const char *const[]){ verb, resource, code }, 1);
	if (strcmp(verb, "watch") != 0)
		lk_metric_observe(m->api_duration, (const char *const[]){ verb }, seconds);
}

void
sync_metrics_backend(struct sync_metrics *m, long status, double seconds)
{
	char code[16];

	snprintf(code, sizeof(code), "%ld", status);
	lk_metric_add(m->backend_requests, (const char *const[]){ code }, 1);
	lk_metric_observe(m->backend_duration, NULL, seconds);
}
