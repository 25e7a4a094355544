/* sealedsecret.c — the SealedSecret reconciler (internal.h; docs/sync.md "SealedSecrets").
 *
 * One pass: read the SealedSecret from the cache; when the Secret already holds what this
 * very spec opened to (a keyed hash of spec and scope on the Secret, its data unchanged
 * since), stop without a decryption. Otherwise open every encryptedData value with the
 * key ring (the key that opened it last time first), render spec.template.data, seal the
 * values again to a recipient when spec.encryption says so, and write the Secret with
 * Bitnami's rules: same name and namespace, template type, labels and annotations, a
 * controller ownerReference unless skip-set-owner-references, and an existing Secret
 * replaced only when it is this SealedSecret's or annotated managed. A value that does
 * not open leaves the Secret as it is and says why in the status and an Event.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "sealing/sealing.h"

/* How often a SealedSecret whose recipient comes from a ConfigMap is looked at again. */
#define RECIPIENT_RECHECK_MS (5 * 60 * 1000LL)
#define ANNOT_SKIP_OWNER "sealedsecrets.bitnami.com/skip-set-owner-references"

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

struct lk_k8s_informer *
sync_sealed_informer(struct sync_ctx *ctx, size_t i, const char *ns)
{
	if (i >= ctx->kinds.nsealed)
		return NULL;
	if (ctx->opt.nnamespaces == 0)
		return ctx->sealed_inf[i][0];
	for (size_t j = 0; j < ctx->opt.nnamespaces; j++) {
		if (strcmp(ctx->opt.namespaces[j], ns) == 0)
			return ctx->sealed_inf[i][j];
	}
	return NULL;
}

/* Keyed hash of what the Secret depends on besides the keys: the spec and the scope
 * annotations (names are in the queue key). hex into out (65 bytes). */
static int
sealed_hash(const struct sync_ctx *ctx, const json_t *ss, char *out)
{
	crypto_generichash_state h;
	unsigned char d[32];
	char *spec;
	const char *scope = lk_scope_name(lk_sealing_scope_of(ss));

	if ((spec = json_dumps(json_object_get(ss, "spec"), JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return -ENOMEM;
	crypto_generichash_init(&h, ctx->hash_key, sizeof(ctx->hash_key), sizeof(d));
	crypto_generichash_update(&h, (const unsigned char *)scope, strlen(scope) + 1);
	crypto_generichash_update(&h, (const unsigned char *)spec, strlen(spec));
	crypto_generichash_final(&h, d, sizeof(d));
	free(spec);
	(void)lk_hex_encode(d, sizeof(d), out, 65);
	return 0;
}

/* Whether the Secret already holds what this spec opens to, with the same recipient. */
static bool
unchanged(struct sync_ctx *ctx, const json_t *ss, const char *ns, const char *name,
	  const char *hash, const char *recipient_id)
{
	const json_t *status = json_object_get(ss, "status"), *c;
	json_t *cur = NULL;
	struct lk_error err;
	bool same = false, synced = false;
	size_t i;

	json_array_foreach(json_object_get(status, "conditions"), i, c) {
		if (str(c, "type") != NULL && strcmp(str(c, "type"), "Synced") == 0)
			synced = str(c, "status") != NULL && strcmp(str(c, "status"), "True") == 0;
	}
	if (!synced || !json_equal(json_object_get(status, "observedGeneration"),
				   json_object_get(json_object_get(ss, "metadata"), "generation")))
		return false;
	if (sync_secret_current(ctx, ns, name, false, &cur, &err) < 0 || cur == NULL)
		return false;
	{
		const json_t *ann = json_object_get(json_object_get(cur, "metadata"), "annotations");

		same = str(ann, SYNC_ANNOT_SEALED) != NULL && strcmp(str(ann, SYNC_ANNOT_SEALED), hash) == 0 &&
		       str(ann, SYNC_ANNOT_DATA) != NULL && str(cur, "x-latchkey-data-hash") != NULL &&
		       strcmp(str(ann, SYNC_ANNOT_DATA), str(cur, "x-latchkey-data-hash")) == 0 &&
		       ((recipient_id == NULL && str(ann, SYNC_ANNOT_RECIPIENT) == NULL) ||
			(recipient_id != NULL && str(ann, SYNC_ANNOT_RECIPIENT) != NULL &&
			 strcmp(str(ann, SYNC_ANNOT_RECIPIENT), recipient_id) == 0));
	}
	json_decref(cur);
	return same;
}

/* Adds id to a comma-separated list when not in it yet. */
static void
add_id(char *ids, size_t len, const char *id)
{
	if (strstr(ids, id) != NULL || strlen(ids) + strlen(id) + 2 > len)
		return;
	if (ids[0] != '\0')
		strcat(ids, ",");
	strcat(ids, id);
}

/* Opens every value into data (key -> base64). */
static int
open_values(struct sync_ctx *ctx, const struct sync_keyring *ring, const json_t *ss,
	    const char *qkey, json_t *data, char *ids, size_t idslen, struct lk_error *err)
{
	const json_t *enc = json_object_get(json_object_get(ss, "spec"), "encryptedData");
	char prefer[LK_KEY_ID_HEX + 1] = "";
	const char *k;
	json_t *v;

	(void)sync_keys_last_use(ctx->keys, qkey, prefer, sizeof(prefer));
	json_object_foreach((json_t *)enc, k, v) {
		const struct lk_key *used = NULL;
		struct lk_secret *pt = NULL;
		char *b64 = NULL;
		int r;

		if (!lk_manifest_secret_key_valid(k, strlen(k)))
			return lk_error_set(err, -EINVAL, "spec.encryptedData.%.100s: not a valid Secret "
					    "key ([-._a-zA-Z0-9]+)", k);
		if ((r = lk_sealing_open_value_with(ring->ks, ss, k, v, prefer[0] ? prefer : NULL,
						    &pt, &used, err)) < 0)
			return r;
		add_id(ids, idslen, lk_key_id(used));
		r = lk_b64_encode(lk_secret_bytes(pt), lk_secret_len(pt), LK_B64_STD, &b64);
		lk_secret_free(pt);
		if (r < 0 || json_object_set_new(data, k, json_string(b64)) < 0) {
			lk_free_wiped(b64);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		lk_free_wiped(b64);
	}
	return 0;
}

/* spec.template.data over the opened values: a text renders, null removes the key. */
static int
render_template(const json_t *tdata, json_t *data, struct lk_error *err)
{
	json_t *opened = json_deep_copy(data);
	const char *k;
	json_t *v;
	int r = 0;

	if (opened == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)tdata, k, v) {
		struct lk_secret *out = NULL;
		char *b64 = NULL;

		if (!lk_manifest_secret_key_valid(k, strlen(k))) {
			r = lk_error_set(err, -EINVAL, "spec.template.data.%.100s: not a valid Secret key", k);
			break;
		}
		if (json_is_null(v)) {
			json_object_del(data, k);
			continue;
		}
		if (!json_is_string(v)) {
			r = lk_error_set(err, -EINVAL, "spec.template.data.%.100s: expected a text or null", k);
			break;
		}
		if ((r = sync_template_render(json_string_value(v), opened, &out, err)) < 0) {
			lk_error_prefix(err, "spec.template.data.%.100s", k);
			break;
		}
		r = lk_b64_encode(lk_secret_bytes(out), lk_secret_len(out), LK_B64_STD, &b64);
		lk_secret_free(out);
		if (r < 0 || json_object_set_new(data, k, json_string(b64)) < 0) {
			lk_free_wiped(b64);
			r = lk_error_set(err, -ENOMEM, "out of memory");
			break;
		}
		lk_free_wiped(b64);
	}
	json_decref(opened);
	return r;
}

/* A map of strings at field, copied (an empty object when absent). */
static json_t *
string_map(const json_t *m, const char *field, struct lk_error *err)
{
	const char *k;
	json_t *v;

	if (m == NULL)
		return json_object();
	if (!json_is_object(m)) {
		lk_error_set(err, -EINVAL, "%s: expected a map of strings", field);
		return NULL;
	}
	json_object_foreach((json_t *)m, k, v) {
		if (!json_is_string(v)) {
			lk_error_set(err, -EINVAL, "%s.%.100s: expected a string", field, k);
			return NULL;
		}
	}
	return json_deep_copy(m);
}

int
sync_sealedsecret_reconcile(struct sync_ctx *ctx, size_t kind, const char *ns, const char *name)
{
	const struct lk_k8s_resource *res = &ctx->kinds.sealed[kind];
	struct lk_k8s_informer *inf = sync_sealed_informer(ctx, kind, ns);
	const json_t *spec, *tmpl, *tmeta, *enc;
	struct sync_keyring *ring = NULL;
	struct lk_key *rcpt = NULL;
	struct lk_error err = { 0 };
	json_t *ss, *data = NULL, *labels = NULL, *annotations = NULL, *tlabels = NULL,
	       *tann = NULL, *extra = NULL, *idlist = NULL;
	char qkey[SYNC_KEY_MAX], hash[65], content[65], datah[65], owner[80];
	char ids[SYNC_USE_IDS_MAX] = "";
	const char *type, *reason = "ErrUnsealFailed", *p;
	bool retry = false;
	int r;

	snprintf(qkey, sizeof(qkey), "sealed/%zu/%s/%s", kind, ns, name);
	if (inf == NULL || (ss = lk_k8s_informer_get(inf, ns, name)) == NULL) {
		sync_keys_note_use(ctx->keys, qkey, NULL);
		return 0;   /* deleted: its Secret goes with it (ownerReference) */
	}
	if (json_object_get(json_object_get(ss, "metadata"), "deletionTimestamp") != NULL) {
		sync_keys_note_use(ctx->keys, qkey, NULL);
		json_decref(ss);
		return 0;
	}
	spec = json_object_get(ss, "spec");
	enc = json_object_get(spec, "encryptedData");
	tmpl = json_object_get(spec, "template");
	tmeta = json_object_get(tmpl, "metadata");
	reason = "ErrInvalidSpec";
	if (json_object_get(spec, "data") != NULL && enc == NULL) {
		lk_error_set(&err, -EINVAL, "spec.data (the deprecated single-blob format) is not "
			     "supported: seal again with latchkey seal or kubeseal");
		goto fail;
	}
	if (!json_is_object(enc) || json_object_size(enc) == 0) {
		lk_error_set(&err, -EINVAL, "spec.encryptedData: expected a map of sealed values");
		goto fail;
	}
	if (tmpl != NULL && !json_is_object(tmpl)) {
		lk_error_set(&err, -EINVAL, "spec.template: expected an object");
		goto fail;
	}
	if (json_object_get(tmpl, "data") != NULL && !json_is_object(json_object_get(tmpl, "data")) &&
	    !json_is_null(json_object_get(tmpl, "data"))) {
		lk_error_set(&err, -EINVAL, "spec.template.data: expected a map");
		goto fail;
	}
	type = str(tmpl, "type") != NULL ? str(tmpl, "type") : "Opaque";
	if (sync_encryption_check(json_object_get(spec, "encryption"), "spec.encryption", &err) < 0)
		goto fail;
	if ((tlabels = string_map(json_object_get(tmeta, "labels"), "spec.template.metadata.labels", &err)) == NULL ||
	    (tann = string_map(json_object_get(tmeta, "annotations"), "spec.template.metadata.annotations", &err)) == NULL)
		goto fail;
	if (sealed_hash(ctx, ss, hash) < 0) {
		lk_error_set(&err, -ENOMEM, "out of memory");
		retry = true;
		goto fail;
	}
	reason = "ErrRecipient";
	if (json_object_get(spec, "encryption") != NULL &&
	    sync_encryption_recipient(ctx, json_object_get(spec, "encryption"), "spec.encryption", ns,
				      ctx->opt.coalesce_ms, &rcpt, &err) < 0) {
		retry = true;
		goto fail;
	}
	if (unchanged(ctx, ss, ns, name, hash, rcpt != NULL ? lk_key_id(rcpt) : NULL))
		goto done;

	/* Open. */
	reason = "ErrUnsealFailed";
	if ((ring = sync_keys_acquire(ctx->keys)) == NULL || ring->ninfo == 0) {
		lk_error_set(&err, -EAGAIN, "no sealing key yet: the controller makes one at start");
		retry = true;
		goto fail;
	}
	if ((data = json_object()) == NULL) {
		lk_error_set(&err, -ENOMEM, "out of memory");
		retry = true;
		goto fail;
	}
	if (open_values(ctx, ring, ss, qkey, data, ids, sizeof(ids), &err) < 0) {
		lk_error_prefix(&err, "Failed to unseal");
		goto fail;
	}
	reason = "ErrInvalidTemplate";
	if (json_is_object(json_object_get(tmpl, "data")) &&
	    render_template(json_object_get(tmpl, "data"), data, &err) < 0)
		goto fail;

	/* The Secret as Bitnami writes it, with latchkey's labels and hashes. */
	reason = "ErrUpdateFailed";
	labels = json_deep_copy(tlabels);
	annotations = json_deep_copy(tann);
	if (labels == NULL || annotations == NULL) {
		lk_error_set(&err, -ENOMEM, "out of memory");
		retry = true;
		goto fail;
	}
	sync_owner_label(name, owner, sizeof(owner));
	json_object_set_new(labels, SYNC_LABEL_MANAGED, json_string("true"));
	json_object_set_new(labels, SYNC_LABEL_SEALED_OWNER, json_string(owner));
	if (rcpt != NULL) {
		json_object_set_new(tann, SYNC_ANNOT_RECIPIENT, json_string(lk_key_id(rcpt)));
		json_object_set_new(annotations, SYNC_ANNOT_RECIPIENT, json_string(lk_key_id(rcpt)));
	}
	sync_content_hash(ctx, type, tlabels, tann, data, content);
	if (rcpt != NULL && sync_encryption_seal(rcpt, ns, name, data, &err) < 0) {
		lk_error_prefix(&err, "spec.encryption");
		goto fail;
	}
	sync_content_hash(ctx, NULL, NULL, NULL, data, datah);
	json_object_set_new(annotations, SYNC_ANNOT_CONTENT, json_string(content));
	json_object_set_new(annotations, SYNC_ANNOT_DATA, json_string(datah));
	json_object_set_new(annotations, SYNC_ANNOT_SEALED, json_string(hash));
	{
		const struct sync_secret_want w = {
			.kind = "SealedSecret", .ns = ns, .name = name, .owner = ss,
			.owner_ref = (p = str(tann, ANNOT_SKIP_OWNER)) == NULL || strcmp(p, "true") != 0,
			.owner_label = SYNC_LABEL_SEALED_OWNER, .adopt = SYNC_ADOPT_MANAGED,
			.type = type, .data = data, .labels = labels, .annotations = annotations,
			.finalizers = json_is_array(json_object_get(tmeta, "finalizers")) ?
				json_object_get(tmeta, "finalizers") : NULL,
			.immutable = json_is_true(json_object_get(tmpl, "immutable")),
			.content_hash = content,
		};

		if ((r = sync_secret_put(ctx, &w, &err)) < 0) {
			retry = r != -EEXIST && r != -EPERM;
			goto fail;
		}
	}
	sync_keys_note_use(ctx->keys, qkey, ids);
	/* The keys that opened it, for `latchkey keys` and whoever retires keys. */
	if ((idlist = json_array()) != NULL) {
		char copy[SYNC_USE_IDS_MAX], *save = NULL;

		snprintf(copy, sizeof(copy), "%s", ids);
		for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
			json_array_append_new(idlist, json_string(t));
	}
	extra = json_pack("{s:o?}", "sealingKeys", idlist);
	(void)sync_status_write(ctx, res, ss, true, "Unsealed", "SealedSecret unsealed successfully", extra);
done:
	/* Nothing else says when a ConfigMap recipient changes. */
	if (json_object_get(json_object_get(spec, "encryption"), "recipientFrom") != NULL)
		sync_queue_add_after(ctx->queue, qkey, RECIPIENT_RECHECK_MS);
	r = 0;
	goto out;
fail:
	(void)sync_status_write(ctx, res, ss, false, reason, err.msg, NULL);
	lk_log(LK_WARN, "SealedSecret not unsealed", LK_STR("namespace", ns), LK_STR("name", name),
	       LK_STR("reason", reason), LK_STR("error", err.msg));
	/* Not worth retrying until something changes (the spec, a key, the Secret), which
	 * enqueues it again; a missing key or a backend hiccup is. */
	r = retry ? -EAGAIN : 0;
out:
	lk_key_free(rcpt);
	sync_keyring_release(ring);
	json_decref(data);
	json_decref(labels);
	json_decref(annotations);
	json_decref(tlabels);
	json_decref(tann);
	json_decref(extra);
	json_decref(ss);
	return r;
}

struct retry_arg {
	struct sync_ctx *ctx;
	size_t kind;
};

static void
retry_one(void *arg, const json_t *ss)
{
	struct retry_arg *a = arg;
	const json_t *c, *meta = json_object_get(ss, "metadata");
	char key[SYNC_KEY_MAX];
	bool synced = false;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(ss, "status"), "conditions"), i, c) {
		if (str(c, "type") != NULL && strcmp(str(c, "type"), "Synced") == 0)
			synced = str(c, "status") != NULL && strcmp(str(c, "status"), "True") == 0;
	}
	if (synced || str(meta, "namespace") == NULL || str(meta, "name") == NULL)
		return;
	snprintf(key, sizeof(key), "sealed/%zu/%s/%s", a->kind, str(meta, "namespace"), str(meta, "name"));
	sync_queue_add(a->ctx->queue, key);
}

void
sync_sealedsecrets_retry(struct sync_ctx *ctx)
{
	size_t n = ctx->opt.nnamespaces > 0 ? ctx->opt.nnamespaces : 1;

	for (size_t i = 0; i < ctx->kinds.nsealed; i++) {
		struct retry_arg a = { ctx, i };

		for (size_t j = 0; j < n; j++)
			if (ctx->sealed_inf[i][j] != NULL)
				lk_k8s_informer_foreach(ctx->sealed_inf[i][j], retry_one, &a);
	}
}
