/* status.c — the condition of the resources the controller serves (Ready; Synced for
 * SealedSecrets, as Bitnami's controller writes it), written only
 * when it (or the rest of the status) changed, and an Event when the condition changes
 * (internal.h). Messages never hold a value: callers build them from names and reasons.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"

static void
now_text(char *out, size_t outlen)
{
	char t[LK_RFC3339_LEN];

	lk_rfc3339_ms(lk_now_real_ms(), t);
	/* metav1.Time: second precision. */
	snprintf(out, outlen, "%.19sZ", t);
}

static const json_t *
find_condition(const json_t *conds, const char *type)
{
	json_t *c;
	size_t i;

	json_array_foreach(conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));

		if (t != NULL && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

static bool
same_str(const json_t *obj, const char *key, const char *want)
{
	const char *have = json_string_value(json_object_get(obj, key));

	return have != NULL && strcmp(have, want) == 0;
}

int
sync_status_write(struct sync_ctx *ctx, const struct lk_k8s_resource *res, const json_t *obj,
		  bool ready, const char *reason, const char *message, const json_t *extra)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	const json_t *status = json_object_get(obj, "status");
	const json_t *old_conds = json_object_get(status, "conditions");
	/* SealedSecrets carry Bitnami's condition, which tools such as Argo CD read. */
	const char *type = strcmp(res->kind, "SealedSecret") == 0 ? "Synced" : "Ready";
	const json_t *old = find_condition(old_conds, type);
	const char *cstatus = ready ? "True" : "False";
	char msg[SYNC_MESSAGE_MAX], now[32];
	struct lk_k8s_error kerr;
	json_t *cond, *conds, *patch, *newstatus, *c;
	bool changed_condition, changed = false;
	const char *k;
	json_t *v;
	size_t i;
	int r = 0;

	if (name == NULL)
		return -EINVAL;
	snprintf(msg, sizeof(msg), "%s", message != NULL ? message : "");
	changed_condition = old == NULL || !same_str(old, "status", cstatus) ||
			    !same_str(old, "reason", reason) || !same_str(old, "message", msg);
	now_text(now, sizeof(now));
	cond = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", cstatus,
			 "reason", reason, "message", msg, "lastTransitionTime", now);
	if (cond != NULL && strcmp(type, "Synced") == 0)
		json_object_set_new(cond, "lastUpdateTime", json_string(now));
	conds = json_array();
	newstatus = json_object();
	if (cond == NULL || conds == NULL || newstatus == NULL) {
		json_decref(cond);
		json_decref(conds);
		json_decref(newstatus);
		return -ENOMEM;
	}
	/* The transition time moves only when the status does. */
	if (old != NULL && same_str(old, "status", cstatus) &&
	    json_is_string(json_object_get(old, "lastTransitionTime")))
		json_object_set(cond, "lastTransitionTime", json_object_get(old, "lastTransitionTime"));
	json_array_foreach(old_conds, i, c) {
		if (c != old)
			json_array_append(conds, c);
	}
	json_array_append_new(conds, cond);
	json_object_set_new(newstatus, "conditions", conds);
	if (changed_condition)
		changed = true;
	json_object_foreach((json_t *)extra, k, v) {
		json_object_set(newstatus, k, v);
		if (!json_equal(json_object_get(status, k), v))
			changed = true;
	}
	if (json_is_integer(json_object_get(meta, "generation")) &&
	    !json_equal(json_object_get(status, "observedGeneration"), json_object_get(meta, "generation"))) {
		json_object_set(newstatus, "observedGeneration", json_object_get(meta, "generation"));
		changed = true;
	}
	if (changed && sync_may_write(ctx)) {
		patch = json_pack("{s:o}", "status", newstatus);
		newstatus = NULL;
		r = patch != NULL ? lk_k8s_patch(ctx->k8s, res, ns, name, "status", LK_K8S_PATCH_MERGE,
						 patch, NULL, &kerr) : -ENOMEM;
		json_decref(patch);
		/* Gone meanwhile: nothing to report on. */
		if (r == -ENOENT)
			r = 0;
	}
	json_decref(newstatus);
	if (changed_condition && sync_may_write(ctx) && (!ready || old != NULL)) {
		/* A first success is news enough in the status; failures and recoveries get an
		 * Event too. */
		(void)lk_k8s_event(ctx->k8s, obj, ready ? "Normal" : "Warning", reason, msg, &kerr);
	}
	return r;
}
