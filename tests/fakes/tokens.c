/* tokens.c — service-account tokens and the review APIs: TokenRequest (the /token
 * subresource: an RS256 JWT with the projected-token claims), who a bearer token is
 * (the admin token, --user tokens, our service-account JWTs), TokenReview,
 * SelfSubjectReview (`kubectl auth whoami`) and SelfSubjectAccessReview
 * (`kubectl auth can-i`). The reviews are answered, never stored. */
#include "fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Shortest and longest TokenRequest expirations (kube-apiserver's bounds). */
#define TOKENS_MIN_S 600
#define TOKENS_MAX_S 4294967296LL
#define TOKENS_DEFAULT_S 3600
/* How far in the future a token's nbf may be (clock skew). */
#define TOKENS_SKEW_S 60

static bool
same_token(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	unsigned char d = (unsigned char)(n != m);

	for (size_t i = 0; i < n && i < m; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* A service-account token of ours: signed, in date, for our audience (or audience when
 * given), of an account that still exists with the same uid. */
static int
sa_user(struct fk_state *st, const char *token, const char *audience, struct fk_user *u, json_t **ret_aud)
{
	json_t *claims = NULL, *k8s, *sa, *aud, *a;
	const char *ns, *name, *uid, *jti;
	struct fk_rtype *t;
	struct fk_obj *o;
	char key[FK_KEY_MAX];
	long long now = (long long)time(NULL);
	bool aud_ok = false;
	size_t i;
	int r = -EACCES;

	if (fk_jwt_verify(&st->keys, token, &claims) < 0)
		return -EACCES;
	k8s = fk_jobj(claims, "kubernetes.io");
	sa = fk_jobj(k8s, "serviceaccount");
	ns = fk_jstr(k8s, "namespace");
	name = fk_jstr(sa, "name");
	uid = fk_jstr(sa, "uid");
	jti = fk_jstr(claims, "jti");
	if (ns == NULL || name == NULL || uid == NULL)
		goto out;
	if (json_integer_value(json_object_get(claims, "exp")) <= now ||
	    json_integer_value(json_object_get(claims, "nbf")) > now + TOKENS_SKEW_S)
		goto out;
	aud = json_object_get(claims, "aud");
	json_array_foreach(aud, i, a) {
		if (json_is_string(a) && strcmp(json_string_value(a), audience != NULL ? audience : st->cfg->issuer) == 0)
			aud_ok = true;
	}
	if (!aud_ok)
		goto out;
	t = fk_rtype_find(st, "", "v1", "serviceaccounts", NULL);
	fk_obj_key(t, ns, name, key);
	o = fk_store_get(st, t, key);
	if (o == NULL || fk_meta_str(o->obj, "uid") == NULL || strcmp(fk_meta_str(o->obj, "uid"), uid) != 0)
		goto out;
	snprintf(u->name, sizeof(u->name), "system:serviceaccount:%s:%s", ns, name);
	snprintf(u->groups, sizeof(u->groups),
		 "system:serviceaccounts,system:serviceaccounts:%s,system:authenticated", ns);
	snprintf(u->token_id, sizeof(u->token_id), "%s", jti != NULL ? jti : "sa");
	snprintf(u->uid, sizeof(u->uid), "%s", uid);
	if (ret_aud != NULL)
		*ret_aud = json_incref(aud);
	r = 0;
out:
	json_decref(claims);
	return r;
}

int
fk_token_user(struct fk_state *st, const char *tok, struct fk_user *u)
{
	memset(u, 0, sizeof(*u));
	if (*tok == '\0' || strlen(tok) > FK_TOKEN_MAX)
		return -EACCES;
	if (same_token(tok, st->cfg->token)) {
		snprintf(u->name, sizeof(u->name), "admin");
		snprintf(u->groups, sizeof(u->groups), "system:masters,system:authenticated");
		snprintf(u->token_id, sizeof(u->token_id), "admin");
		u->admin = true;
		return 0;
	}
	for (unsigned i = 0; i < st->cfg->nusers; i++) {
		const struct fk_user_token *ut = &st->cfg->users[i];

		if (same_token(tok, ut->token)) {
			snprintf(u->name, sizeof(u->name), "%s", ut->name);
			snprintf(u->groups, sizeof(u->groups), "%s%ssystem:authenticated", ut->groups,
				 ut->groups[0] != '\0' ? "," : "");
			snprintf(u->token_id, sizeof(u->token_id), "user:%s", ut->name);
			u->admin = strstr(ut->groups, "system:masters") != NULL;
			return 0;
		}
	}
	if (strchr(tok, '.') != NULL)
		return sa_user(st, tok, NULL, u, NULL);
	return -EACCES;
}

static json_t *
groups_array(const char *groups)
{
	json_t *arr = json_array();
	const char *p = groups;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (n > 0)
			json_array_append_new(arr, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	return arr;
}

static json_t *
user_info(const struct fk_user *u)
{
	json_t *ui = json_pack("{s:s,s:o}", "username", u->name, "groups", groups_array(u->groups));

	if (u->uid[0] != '\0')
		json_object_set_new(ui, "uid", json_string(u->uid));
	return ui;
}

/* ---- TokenRequest ---- */

void
fk_token_request(struct fk_ctx *c, const char *key)
{
	struct fk_request *r = c->r;
	struct fk_obj *sa = fk_store_get(c->st, c->t, key);
	json_t *body = NULL, *spec, *aud, *claims = NULL, *ref, *k8s, *resp;
	long long exp_s = TOKENS_DEFAULT_S;
	time_t now = time(NULL);
	char jti[37], expires[32], *jwt = NULL, sub[600];
	struct fk_errors e;

	if (sa == NULL) {
		fk_reply_not_found(r, c->t, c->name);
		return;
	}
	if (r->body_len > 0) {
		if ((body = fk_decode_body(c, false)) == NULL)
			return;
	} else {
		body = json_object();
	}
	spec = fk_jobj(body, "spec");
	aud = json_object_get(spec, "audiences");
	/* kubectl sends "expirationSeconds": null when none is asked for */
	if (json_is_integer(json_object_get(spec, "expirationSeconds")))
		exp_s = json_integer_value(json_object_get(spec, "expirationSeconds"));
	fk_errors_init(&e);
	if (exp_s < TOKENS_MIN_S)
		fk_error_add(&e, "FieldValueInvalid", "spec.expirationSeconds",
			     "%lld: may not specify a duration less than 10 minutes", exp_s);
	else if (exp_s > TOKENS_MAX_S)
		fk_error_add(&e, "FieldValueTooLong", "spec.expirationSeconds",
			     "may not specify a duration larger than 2^32 seconds");
	if (fk_errors_any(&e)) {
		struct fk_rtype tr = { .kind = "TokenRequest", .group = "authentication.k8s.io" };

		fk_reply_invalid(r, &tr, c->name, &e);
		goto out;
	}
	fk_errors_clear(&e);
	if (!json_is_array(aud) || json_array_size(aud) == 0)
		aud = json_pack("[s]", c->st->cfg->issuer);
	else
		aud = json_deep_copy(aud);
	fk_uuid(jti);
	snprintf(sub, sizeof(sub), "system:serviceaccount:%s:%s", c->ns, c->name);
	k8s = json_pack("{s:s,s:{s:s,s:s}}", "namespace", c->ns, "serviceaccount", "name", c->name,
			"uid", fk_meta_str(sa->obj, "uid"));
	ref = fk_jobj(spec, "boundObjectRef");
	if (ref != NULL) {
		const char *kind = fk_jstr(ref, "kind"), *rn = fk_jstr(ref, "name"), *ruid = fk_jstr(ref, "uid");
		const char *plural = kind != NULL && strcmp(kind, "Pod") == 0 ? "pods" :
				     kind != NULL && strcmp(kind, "Secret") == 0 ? "secrets" : NULL;
		struct fk_rtype *bt = plural != NULL ? fk_rtype_find(c->st, "", "v1", plural, NULL) : NULL;
		struct fk_obj *bo;
		char bkey[FK_KEY_MAX];

		if (bt == NULL || rn == NULL) {
			fk_reply_bad_request(r, "cannot bind token to object of type %s", kind ? kind : "");
			goto fail;
		}
		fk_obj_key(bt, c->ns, rn, bkey);
		if ((bo = fk_store_get(c->st, bt, bkey)) == NULL) {
			fk_reply_not_found(r, bt, rn);
			goto fail;
		}
		if (ruid != NULL && ruid[0] != '\0' && strcmp(ruid, fk_meta_str(bo->obj, "uid")) != 0) {
			fk_reply_status(r, 409, "Conflict", fk_details(bt, rn, false),
					"Operation cannot be fulfilled on %s \"%s\": the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated",
					plural, rn, ruid);
			goto fail;
		}
		json_object_set_new(k8s, strcmp(plural, "pods") == 0 ? "pod" : "secret",
				    json_pack("{s:s,s:s}", "name", rn, "uid", fk_meta_str(bo->obj, "uid")));
	}
	claims = json_pack("{s:o,s:I,s:I,s:s,s:s,s:o,s:I,s:s}", "aud", aud, "exp", (json_int_t)(now + exp_s),
			   "iat", (json_int_t)now, "iss", c->st->cfg->issuer, "jti", jti,
			   "kubernetes.io", k8s, "nbf", (json_int_t)now, "sub", sub);
	if (claims == NULL || fk_jwt_sign(&c->st->keys, claims, &jwt) < 0) {
		fk_reply_status(r, 500, "InternalError", NULL, "Internal error occurred: signing failed");
		goto out;
	}
	fk_time_rfc3339(now + (time_t)exp_s, expires);
	resp = json_pack("{s:s,s:s,s:{s:s,s:s,s:n},s:{s:O,s:I,s:O},s:{s:s,s:s}}", "kind", "TokenRequest",
			 "apiVersion", "authentication.k8s.io/v1", "metadata", "name", c->name, "namespace",
			 c->ns, "creationTimestamp", "spec", "audiences", json_object_get(claims, "aud"),
			 "expirationSeconds", (json_int_t)exp_s, "boundObjectRef",
			 ref != NULL ? ref : json_null(), "status", "token", jwt, "expirationTimestamp", expires);
	fk_reply_json(r, 201, resp);
	goto out;
fail:
	json_decref(k8s);
	json_decref(aud);
out:
	free(jwt);
	json_decref(claims);
	json_decref(body);
}

/* ---- reviews ---- */

static void
token_review(struct fk_ctx *c, json_t *body)
{
	json_t *spec = fk_jobj(body, "spec"), *auds = json_object_get(spec, "audiences"), *status, *aud = NULL;
	const char *tok = fk_jstr(spec, "token");
	const char *want = json_is_string(json_array_get(auds, 0)) ? json_string_value(json_array_get(auds, 0)) : NULL;
	struct fk_user u;
	int r;

	memset(&u, 0, sizeof(u));
	if (tok == NULL) {
		r = -EACCES;
	} else if (want != NULL && strchr(tok, '.') != NULL) {
		r = sa_user(c->st, tok, want, &u, &aud);
	} else {
		r = fk_token_user(c->st, tok, &u);
		aud = json_pack("[s]", c->st->cfg->issuer);
	}
	if (r == 0) {
		status = json_pack("{s:b,s:o,s:o}", "authenticated", true, "user", user_info(&u), "audiences", aud);
	} else {
		json_decref(aud);
		status = json_pack("{s:{},s:s}", "user", "error", "invalid bearer token");
	}
	json_object_del(spec, "token");     /* never echoed */
	json_object_set_new(body, "status", status);
	json_object_set_new(fk_meta(body), "creationTimestamp", json_null());
	fk_reply_json(c->r, 201, json_incref(body));
}

static void
access_review(struct fk_ctx *c, json_t *body)
{
	json_t *spec = fk_jobj(body, "spec"), *ra = fk_jobj(spec, "resourceAttributes");
	json_t *nra = fk_jobj(spec, "nonResourceAttributes");
	struct fk_request q;
	bool allowed;

	memset(&q, 0, sizeof(q));
	q.user = c->r->user;
#define COPY(dst, obj, key) snprintf(dst, sizeof(dst), "%s", fk_jstr(obj, key) ? fk_jstr(obj, key) : "")
	if (ra != NULL) {
		COPY(q.verb, ra, "verb");
		COPY(q.group, ra, "group");
		COPY(q.resource, ra, "resource");
		COPY(q.subresource, ra, "subresource");
		COPY(q.namespace, ra, "namespace");
		COPY(q.name, ra, "name");
		q.path = "";
		allowed = q.resource[0] != '\0' && fk_authorized(c->st, &q);
	} else {
		COPY(q.verb, nra, "verb");
		COPY(q.resource, nra, "path");
		q.path = fk_jstr(nra, "path") ? fk_jstr(nra, "path") : "";
		allowed = fk_authorized(c->st, &q);
	}
#undef COPY
	json_object_set_new(body, "status", allowed ? json_pack("{s:b,s:s}", "allowed", true, "reason",
				c->r->user.admin ? "" : "RBAC: allowed by a binding")
			    : json_pack("{s:b}", "allowed", false));
	json_object_set_new(fk_meta(body), "creationTimestamp", json_null());
	fk_reply_json(c->r, 201, json_incref(body));
}

void
fk_review(struct fk_ctx *c)
{
	json_t *body;

	if (strcmp(c->r->verb, "create") != 0 || c->r->name[0] != '\0') {
		fk_reply_method_not_allowed(c->r);
		return;
	}
	if ((body = fk_decode_body(c, false)) == NULL)
		return;
	if (!json_is_object(body)) {
		fk_reply_bad_request(c->r, "the body must be a JSON object");
		json_decref(body);
		return;
	}
	switch (c->t->hook) {
	case FK_HOOK_TOKENREVIEW:
		token_review(c, body);
		break;
	case FK_HOOK_SELFSUBJECTREVIEW:
		json_object_set_new(body, "status", json_pack("{s:o}", "userInfo", user_info(&c->r->user)));
		json_object_set_new(fk_meta(body), "creationTimestamp", json_null());
		fk_reply_json(c->r, 201, json_incref(body));
		break;
	default:
		access_review(c, body);
		break;
	}
	json_decref(body);
}
