/* secret.c — writing the Secrets the controller makes, for ExternalSecrets and
 * SealedSecrets alike (internal.h): the current Secret from the cache or the API, whether
 * it already is what is wanted, whether it may be taken over, and the create or replace
 * with conflict retries.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

void
sync_owner_label(const char *name, char *out, size_t outlen)
{
	unsigned char d[16];

	if (strlen(name) <= LK_MANIFEST_LABEL_MAX && lk_manifest_label_valid(name)) {
		snprintf(out, outlen, "%s", name);
		return;
	}
	crypto_generichash(d, sizeof(d), (const unsigned char *)name, strlen(name), NULL, 0);
	(void)lk_hex_encode(d, sizeof(d), out, outlen);
}

json_t *
sync_owner_ref(const json_t *obj)
{
	const json_t *meta = json_object_get(obj, "metadata");

	return json_pack("{s:O, s:O, s:O, s:O, s:b, s:b}", "apiVersion",
			 json_object_get(obj, "apiVersion"), "kind", json_object_get(obj, "kind"),
			 "name", json_object_get(meta, "name"), "uid", json_object_get(meta, "uid"),
			 "controller", 1, "blockOwnerDeletion", 1);
}

const char *
sync_controller_uid(const json_t *obj)
{
	const json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
	json_t *r;
	size_t i;

	json_array_foreach(refs, i, r) {
		if (json_is_true(json_object_get(r, "controller")))
			return str(r, "uid");
	}
	return NULL;
}

void
sync_count_write(struct sync_ctx *ctx, const char *kind)
{
	lk_metric_add(ctx->metrics.secret_writes, (const char *const[]){ kind }, 1);
}

int
sync_secret_current(struct sync_ctx *ctx, const char *ns, const char *name, bool from_api,
		    json_t **ret, struct lk_error *err)
{
	struct lk_k8s_error kerr;
	json_t *obj = NULL;
	char h[65];
	int r;

	*ret = NULL;
	if (!from_api) {
		*ret = sync_cached(ctx, "secret", ns, name);
		if (*ret != NULL || sync_informer_for(ctx, "secret", ns) != NULL)
			return 0;
	}
	r = lk_k8s_get(ctx->k8s, &lk_k8s_secrets, ns, name, &obj, &kerr);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return lk_error_set(err, r, "%s", kerr.base.msg);
	sync_content_hash(ctx, NULL, NULL, NULL, json_object_get(obj, "data"), h);
	json_object_set_new(obj, "x-latchkey-data-hash", json_string(h));
	*ret = obj;
	return 0;
}

/* Whether cur belongs to what w writes it for: controlled by it, or (without an
 * ownerReference) labelled as its own. */
static bool
belongs(const json_t *cur, const struct sync_secret_want *w)
{
	const json_t *labels = json_object_get(json_object_get(cur, "metadata"), "labels");
	const char *uid = sync_controller_uid(cur);
	const char *owner_uid = str(json_object_get(w->owner, "metadata"), "uid");
	const char *mine = w->owner_label != NULL ? str(w->labels, w->owner_label) : NULL;

	if (uid != NULL)
		return owner_uid != NULL && strcmp(uid, owner_uid) == 0;
	return mine != NULL && str(labels, w->owner_label) != NULL &&
	       strcmp(str(labels, w->owner_label), mine) == 0 &&
	       str(labels, SYNC_LABEL_MANAGED) != NULL && strcmp(str(labels, SYNC_LABEL_MANAGED), "true") == 0;
}

/* Whether cur may be written over: 0, or -EEXIST / -EPERM with err. */
static int
may_take(const json_t *cur, const struct sync_secret_want *w, struct lk_error *err)
{
	const json_t *ann = json_object_get(json_object_get(cur, "metadata"), "annotations");
	const char *uid = sync_controller_uid(cur);
	const char *owner_uid = str(json_object_get(w->owner, "metadata"), "uid");

	if (w->owner_ref && uid != NULL && owner_uid != NULL && strcmp(uid, owner_uid) != 0)
		return lk_error_set(err, -EPERM, "target is owned by another %s (Secret %s/%s)",
				    w->kind, w->ns, w->name);
	if (w->adopt == SYNC_ADOPT_MANAGED && !belongs(cur, w) &&
	    (str(ann, SYNC_ANNOT_BITNAMI_MANAGED) == NULL ||
	     strcmp(str(ann, SYNC_ANNOT_BITNAMI_MANAGED), "true") != 0))
		return lk_error_set(err, -EEXIST, "Resource \"%s\" already exists and is not managed "
				    "by %s (annotate it %s: \"true\" to let latchkey replace it)",
				    w->name, w->kind, SYNC_ANNOT_BITNAMI_MANAGED);
	return 0;
}

static bool
up_to_date(const json_t *cur, const struct sync_secret_want *w)
{
	const json_t *meta = json_object_get(cur, "metadata");
	const json_t *ann = json_object_get(meta, "annotations");
	const json_t *labels = json_object_get(meta, "labels");
	const char *k;
	json_t *v;

	if (str(ann, SYNC_ANNOT_CONTENT) == NULL || strcmp(str(ann, SYNC_ANNOT_CONTENT), w->content_hash) != 0)
		return false;
	/* Edited by someone else since it was written: put back. */
	if (str(ann, SYNC_ANNOT_DATA) == NULL || str(cur, "x-latchkey-data-hash") == NULL ||
	    strcmp(str(ann, SYNC_ANNOT_DATA), str(cur, "x-latchkey-data-hash")) != 0)
		return false;
	if (strcmp(str(cur, "type") != NULL ? str(cur, "type") : "Opaque", w->type) != 0)
		return false;
	json_object_foreach((json_t *)w->labels, k, v) {
		if (!json_equal(json_object_get(labels, k), v))
			return false;
	}
	if (w->owner_ref) {
		const char *uid = sync_controller_uid(cur);
		const char *owner_uid = str(json_object_get(w->owner, "metadata"), "uid");

		if (uid == NULL || owner_uid == NULL || strcmp(uid, owner_uid) != 0)
			return false;
	}
	return true;
}

/* A whole Secret to create or replace cur with (cur may be NULL): the labels and
 * annotations others put there stay. */
static json_t *
secret_body(const struct sync_secret_want *w, const json_t *cur)
{
	const json_t *cmeta = json_object_get(cur, "metadata");
	json_t *meta, *labels, *ann, *refs, *body;
	const char *k;
	json_t *v;

	labels = json_is_object(json_object_get(cmeta, "labels")) ?
		json_deep_copy(json_object_get(cmeta, "labels")) : json_object();
	ann = json_is_object(json_object_get(cmeta, "annotations")) ?
		json_deep_copy(json_object_get(cmeta, "annotations")) : json_object();
	refs = json_is_array(json_object_get(cmeta, "ownerReferences")) ?
		json_deep_copy(json_object_get(cmeta, "ownerReferences")) : json_array();
	if (labels == NULL || ann == NULL || refs == NULL) {
		json_decref(labels);
		json_decref(ann);
		json_decref(refs);
		return NULL;
	}
	json_object_foreach((json_t *)w->labels, k, v)
		json_object_set(labels, k, v);
	json_object_foreach((json_t *)w->annotations, k, v)
		json_object_set(ann, k, v);
	if (w->owner_ref && sync_controller_uid(cur) == NULL)
		json_array_append_new(refs, sync_owner_ref(w->owner));
	meta = json_pack("{s:s, s:s, s:o, s:o}", "name", w->name, "namespace", w->ns,
			 "labels", labels, "annotations", ann);
	if (meta == NULL) {
		json_decref(refs);
		return NULL;
	}
	if (json_array_size(refs) > 0)
		json_object_set_new(meta, "ownerReferences", refs);
	else
		json_decref(refs);
	if (str(cmeta, "resourceVersion") != NULL)
		json_object_set(meta, "resourceVersion", json_object_get(cmeta, "resourceVersion"));
	if (w->finalizers != NULL)
		json_object_set(meta, "finalizers", (json_t *)w->finalizers);
	else if (json_object_get(cmeta, "finalizers") != NULL)
		json_object_set(meta, "finalizers", json_object_get(cmeta, "finalizers"));
	body = json_pack("{s:s, s:s, s:o, s:s, s:O}", "apiVersion", "v1", "kind", "Secret",
			 "metadata", meta, "type", w->type, "data", w->data);
	if (body != NULL && w->immutable)
		json_object_set_new(body, "immutable", json_true());
	return body;
}

int
sync_secret_put(struct sync_ctx *ctx, const struct sync_secret_want *w, struct lk_error *err)
{
	struct lk_k8s_error kerr;
	json_t *cur = NULL, *body;
	bool from_api = false;
	int r = 0;

	for (int attempt = 0; attempt < SYNC_CONFLICT_RETRIES; attempt++) {
		json_decref(cur);
		cur = NULL;
		if ((r = sync_secret_current(ctx, w->ns, w->name, from_api, &cur, err)) < 0)
			return r;
		/* Not in the cache of managed Secrets: one that is not labelled ours may still
		 * be there, and is only taken over when allowed. */
		if (cur == NULL && !from_api && w->adopt == SYNC_ADOPT_MANAGED &&
		    (r = sync_secret_current(ctx, w->ns, w->name, true, &cur, err)) < 0)
			return r;
		if (cur != NULL) {
			if ((r = may_take(cur, w, err)) < 0) {
				json_decref(cur);
				return r;
			}
			if (up_to_date(cur, w)) {
				json_decref(cur);
				return 1;
			}
			if (json_is_true(json_object_get(cur, "immutable"))) {
				json_decref(cur);
				return lk_error_set(err, -EPERM, "could not update secret, target is "
						    "immutable (Secret %s/%s)", w->ns, w->name);
			}
		}
		if (!sync_may_write(ctx)) {
			json_decref(cur);
			return lk_error_set(err, -EAGAIN, "not the leader: the Secret is not written");
		}
		if ((body = secret_body(w, cur)) == NULL) {
			json_decref(cur);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		if (cur == NULL)
			r = lk_k8s_create(ctx->k8s, &lk_k8s_secrets, w->ns, body, NULL, &kerr);
		else
			r = lk_k8s_replace(ctx->k8s, &lk_k8s_secrets, w->ns, w->name, NULL, body, NULL, &kerr);
		json_decref(body);
		if (r == 0) {
			sync_count_write(ctx, w->kind);
			break;
		}
		/* Someone wrote in between (or the cache was behind): read it again. */
		if (r == -ESTALE || r == -EEXIST || (r == -ENOENT && cur != NULL)) {
			from_api = true;
			continue;
		}
		break;
	}
	json_decref(cur);
	if (r < 0)
		return lk_error_set(err, r, "could not update secret: %s", kerr.base.msg);
	return 0;
}
