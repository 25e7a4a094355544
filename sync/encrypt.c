/* encrypt.c — encryption at source (internal.h; docs/crds.md "Encryption at source"):
 * the recipient an `encryption` object names (a literal lk1 public key, or one in a
 * ConfigMap of the resource's namespace), and the sealing of a Secret's values to it,
 * each bound to the namespace, name and key of the Secret it is written into.
 */
#include "sync/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "sealing/sealing.h"

/* ConfigMap recipients remembered, at most. */
#define RECIPIENTS_MAX 4096
/* The longest recipient text: one lk1pub: line. */
#define RECIPIENT_TEXT_MAX 256

struct recipient_entry {
	char key[SYNC_KEY_MAX];         /* "ns/configmap/key" */
	char text[RECIPIENT_TEXT_MAX];
	int64_t fetched_ms;             /* monotonic */
};

struct sync_recipients {
	pthread_mutex_t lock;
	struct recipient_entry *e;
	size_t n;
};

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

struct sync_recipients *
sync_recipients_new(void)
{
	struct sync_recipients *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->e = calloc(RECIPIENTS_MAX, sizeof(*r->e))) == NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
sync_recipients_free(struct sync_recipients *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->e);
	free(r);
}

int
sync_encryption_check(const json_t *enc, const char *field, struct lk_error *err)
{
	const json_t *from, *cm;
	const char *rcpt;

	if (enc == NULL)
		return 0;
	if (!json_is_object(enc))
		return lk_error_set(err, -EINVAL, "%s: expected an object with recipient or recipientFrom", field);
	rcpt = str(enc, "recipient");
	from = json_object_get(enc, "recipientFrom");
	if ((rcpt != NULL) == (from != NULL))
		return lk_error_set(err, -EINVAL, "%s: expected exactly one of recipient and recipientFrom", field);
	if (json_object_get(enc, "recipient") != NULL && rcpt == NULL)
		return lk_error_set(err, -EINVAL, "%s.recipient: expected a string (lk1pub:...)", field);
	if (rcpt != NULL) {
		if (strncmp(rcpt, LK_LK1_PRIV_PREFIX, strlen(LK_LK1_PRIV_PREFIX)) == 0)
			return lk_error_set(err, -EINVAL, "%s.recipient: this is a private key; the "
					    "recipient is the public one (the .lk1.pub file)", field);
		if (strncmp(rcpt, LK_LK1_PUB_PREFIX, strlen(LK_LK1_PUB_PREFIX)) != 0)
			return lk_error_set(err, -EINVAL, "%s.recipient: expected an lk1 public key "
					    "(lk1pub:...), as latchkey keygen --lk1 prints it", field);
		return 0;
	}
	cm = json_object_get(from, "configMapKeyRef");
	if (!json_is_object(cm) || str(cm, "name") == NULL || str(cm, "key") == NULL)
		return lk_error_set(err, -EINVAL, "%s.recipientFrom.configMapKeyRef: expected name and key",
				    field);
	if (!lk_manifest_subdomain_valid(str(cm, "name")))
		return lk_error_set(err, -EINVAL, "%s.recipientFrom.configMapKeyRef.name: expected a "
				    "ConfigMap name", field);
	if (!lk_manifest_secret_key_valid(str(cm, "key"), strlen(str(cm, "key"))))
		return lk_error_set(err, -EINVAL, "%s.recipientFrom.configMapKeyRef.key: expected a "
				    "ConfigMap key ([-._a-zA-Z0-9]+)", field);
	return 0;
}

/* The recipient text of ConfigMap ns/name key, from memory when read within max_age_ms. */
static int
configmap_text(struct sync_ctx *ctx, const char *field, const char *ns, const char *name,
	       const char *key, int64_t max_age_ms, char *out, size_t outlen, struct lk_error *err)
{
	struct sync_recipients *rc = ctx->recipients;
	struct lk_k8s_error kerr;
	struct recipient_entry *slot = NULL, *oldest = NULL;
	char ck[SYNC_KEY_MAX];
	json_t *cm = NULL;
	const char *v;
	int64_t now = lk_now_mono_ms();
	int r;

	snprintf(ck, sizeof(ck), "%s/%s/%s", ns, name, key);
	pthread_mutex_lock(&rc->lock);
	for (size_t i = 0; i < rc->n; i++) {
		if (strcmp(rc->e[i].key, ck) == 0) {
			slot = &rc->e[i];
			break;
		}
	}
	if (slot != NULL && now - slot->fetched_ms <= max_age_ms) {
		snprintf(out, outlen, "%s", slot->text);
		pthread_mutex_unlock(&rc->lock);
		return 0;
	}
	pthread_mutex_unlock(&rc->lock);

	r = lk_k8s_get(ctx->k8s, &lk_k8s_configmaps, ns, name, &cm, &kerr);
	if (r == -ENOENT)
		return lk_error_set(err, r, "%s.recipientFrom.configMapKeyRef: ConfigMap %s/%s not found",
				    field, ns, name);
	if (r < 0)
		return lk_error_set(err, r, "%s.recipientFrom.configMapKeyRef: ConfigMap %s/%s: %s",
				    field, ns, name, kerr.base.msg);
	v = str(json_object_get(cm, "data"), key);
	if (v == NULL || strlen(v) >= outlen) {
		json_decref(cm);
		return lk_error_set(err, v == NULL ? -ENOENT : -EINVAL, "%s.recipientFrom.configMapKeyRef: "
				    "ConfigMap %s/%s has %s under key %s", field, ns, name,
				    v == NULL ? "nothing" : "more than an lk1 public key", key);
	}
	snprintf(out, outlen, "%s", v);
	json_decref(cm);

	pthread_mutex_lock(&rc->lock);
	if (slot == NULL || strcmp(slot->key, ck) != 0) {
		slot = NULL;
		for (size_t i = 0; i < rc->n && slot == NULL; i++)
			if (strcmp(rc->e[i].key, ck) == 0)
				slot = &rc->e[i];
	}
	if (slot == NULL && rc->n < RECIPIENTS_MAX)
		slot = &rc->e[rc->n++];
	for (size_t i = 0; slot == NULL && i < rc->n; i++)
		if (oldest == NULL || rc->e[i].fetched_ms < oldest->fetched_ms)
			oldest = &rc->e[i];
	if (slot == NULL)
		slot = oldest;
	snprintf(slot->key, sizeof(slot->key), "%s", ck);
	snprintf(slot->text, sizeof(slot->text), "%s", out);
	slot->fetched_ms = now;
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

int
sync_encryption_recipient(struct sync_ctx *ctx, const json_t *enc, const char *field,
			  const char *ns, int64_t max_age_ms, struct lk_key **ret, struct lk_error *err)
{
	char text[RECIPIENT_TEXT_MAX];
	const json_t *cm;
	struct lk_key *k = NULL;
	int r;

	*ret = NULL;
	if ((r = sync_encryption_check(enc, field, err)) < 0)
		return r;
	if (str(enc, "recipient") != NULL) {
		snprintf(text, sizeof(text), "%s", str(enc, "recipient"));
	} else {
		cm = json_object_get(json_object_get(enc, "recipientFrom"), "configMapKeyRef");
		if ((r = configmap_text(ctx, field, ns, str(cm, "name"), str(cm, "key"), max_age_ms,
					text, sizeof(text), err)) < 0)
			return r;
		/* Never parse (so never hold) a private key someone put in a ConfigMap. */
		if (strncmp(text, LK_LK1_PUB_PREFIX, strlen(LK_LK1_PUB_PREFIX)) != 0)
			return lk_error_set(err, -EINVAL, "%s.recipientFrom.configMapKeyRef: ConfigMap "
					    "%s/%s key %s does not hold an lk1 public key (lk1pub:...)",
					    field, ns, str(cm, "name"), str(cm, "key"));
	}
	if ((r = lk_key_x25519_parse(text, strlen(text), &k, err)) < 0)
		return lk_error_prefix(err, "%s: the recipient", field);
	if (lk_key_has_private(k)) {
		lk_key_free(k);
		return lk_error_set(err, -EINVAL, "%s: the recipient is a private key", field);
	}
	*ret = k;
	return 0;
}

int
sync_encryption_seal(const struct lk_key *recipient, const char *ns, const char *name,
		     json_t *data, struct lk_error *err)
{
	const char *k;
	json_t *v;

	json_object_foreach(data, k, v) {
		struct lk_secret *pt = NULL;
		char *ct = NULL, *b64 = NULL;
		const char *s = json_string_value(v);
		int r;

		if (s == NULL)
			return lk_error_set(err, -EINVAL, "key %s: not a base64 string", k);
		if ((r = lk_b64_decode(s, strlen(s), LK_B64_STD, &pt)) < 0)
			return lk_error_set(err, r, "key %s: not valid base64", k);
		r = lk_sealing_seal_value(recipient, LK_SCOPE_STRICT, ns, name, k, pt, &ct, err);
		lk_secret_free(pt);
		if (r < 0)
			return lk_error_prefix(err, "key %s", k);
		r = lk_b64_encode(ct, strlen(ct), LK_B64_STD, &b64);
		free(ct);
		if (r < 0 || json_object_set_new(data, k, json_string(b64)) < 0) {
			free(b64);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		free(b64);
	}
	return 0;
}
