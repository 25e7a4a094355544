/* auth_kubernetes.c — the Kubernetes auth method: config, roles and login with a service
 * account JWT. state is { config, roles }. */
#include "devserver/internal.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "devserver/jwt.h"

static void
k8s_config(struct dev_call *c, struct dev_mount *m)
{
	json_t *cfg = json_object_get(m->state, "config"), *keys, *out;
	const char *host = dev_body_str(c, "kubernetes_host");
	json_t *v;

	if (c->op == DEV_OP_READ) {
		if (json_is_null(cfg)) {
			dev_reply_error(c, 404, NULL);
			return;
		}
		out = json_deep_copy(cfg);
		json_object_set_new(out, "token_reviewer_jwt_set",
		    json_boolean(json_object_get(out, "token_reviewer_jwt") != NULL));
		json_object_del(out, "token_reviewer_jwt");
		dev_reply_data(c, out);
		return;
	}
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (host == NULL || *host == '\0') {
		dev_reply_error(c, 400, "no host provided");
		return;
	}
	keys = dev_json_strlist(json_object_get(c->body, "pem_keys"), false);
	if (keys == NULL) {
		dev_reply_error(c, 400, "pem_keys must be a list of PEM strings");
		return;
	}
	for (size_t i = 0; i < json_array_size(keys); i++) {
		if (json_string_length(json_array_get(keys, i)) > DEV_JWT_PEM_MAX ||
		    strstr(json_string_value(json_array_get(keys, i)), "-----BEGIN") == NULL) {
			json_decref(keys);
			dev_reply_error(c, 400, "data does not contain any valid public keys");
			return;
		}
	}
	out = json_pack("{s:s, s:s, s:o, s:s, s:b, s:b}", "kubernetes_host", host,
	    "kubernetes_ca_cert", dev_body_str(c, "kubernetes_ca_cert") != NULL ?
	    dev_body_str(c, "kubernetes_ca_cert") : "", "pem_keys", keys,
	    "issuer", dev_body_str(c, "issuer") != NULL ? dev_body_str(c, "issuer") : "",
	    "disable_iss_validation", 1, "disable_local_ca_jwt", 0);
	v = json_object_get(c->body, "disable_iss_validation");
	if (json_is_boolean(v))
		json_object_set(out, "disable_iss_validation", v);
	v = json_object_get(c->body, "disable_local_ca_jwt");
	if (json_is_boolean(v))
		json_object_set(out, "disable_local_ca_jwt", v);
	if (dev_body_str(c, "token_reviewer_jwt") != NULL)
		json_object_set_new(out, "token_reviewer_jwt",
		    json_string(dev_body_str(c, "token_reviewer_jwt")));
	json_object_set_new(m->state, "config", out);
	dev_reply_empty(c);
}

static void
k8s_role(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *roles = json_object_get(m->state, "roles"), *role = json_object_get(roles, name);
	json_t *names, *nss;
	json_t *v;

	if (!dev_role_name_ok(name)) {
		dev_reply_error(c, 400, "invalid role name");
		return;
	}
	if (dev_reply_role(c, roles, name, role, NULL))
		return;
	switch (c->op) {
	case DEV_OP_WRITE:
		if (role == NULL && json_object_size(roles) >= DEV_ROLES_MAX) {
			dev_reply_error(c, 400, "too many roles");
			return;
		}
		role = role != NULL ? json_deep_copy(role) : dev_role_token_defaults();
		if (!dev_role_token_fields(c, role)) {
			json_decref(role);
			return;
		}
		v = json_object_get(c->body, "bound_service_account_names");
		if (v != NULL)
			json_object_set_new(role, "bound_service_account_names", dev_json_strlist(v, false));
		v = json_object_get(c->body, "bound_service_account_namespaces");
		if (v != NULL)
			json_object_set_new(role, "bound_service_account_namespaces",
			    dev_json_strlist(v, false));
		names = json_object_get(role, "bound_service_account_names");
		nss = json_object_get(role, "bound_service_account_namespaces");
		if (json_array_size(names) == 0) {
			json_decref(role);
			dev_reply_error(c, 400, "\"bound_service_account_names\" can not be empty");
			return;
		}
		if (json_array_size(nss) == 0) {
			json_decref(role);
			dev_reply_error(c, 400, "\"bound_service_account_namespaces\" can not be empty");
			return;
		}
		if (dev_strlist_has(names, "*") && dev_strlist_has(nss, "*")) {
			json_decref(role);
			dev_reply_error(c, 400, "service_account_names and service_account_namespaces can not both be \"*\"");
			return;
		}
		if (dev_body_str(c, "audience") != NULL)
			json_object_set_new(role, "audience", json_string(dev_body_str(c, "audience")));
		if (json_object_get(role, "alias_name_source") == NULL)
			json_object_set_new(role, "alias_name_source", json_string("serviceaccount_uid"));
		json_object_set_new(roles, name, role);
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

static bool
bound(const json_t *list, const char *value)
{
	return dev_strlist_has(list, "*") || dev_strlist_has(list, value);
}

static void
k8s_login(struct dev_call *c, struct dev_mount *m)
{
	const char *rname = dev_body_str(c, "role"), *jwt_text = dev_body_str(c, "jwt");
	json_t *role, *cfg = json_object_get(m->state, "config"), *keys, *meta;
	struct dev_jwt jwt;
	struct lk_error err = { 0 };
	struct dev_token_opts o = { 0 };
	struct dev_token *t;
	char path[DEV_NAME_MAX + 16], display[DEV_JWT_CLAIM_MAX * 2 + 16];
	bool verified = false;

	memset(&jwt, 0, sizeof(jwt));
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (rname == NULL || *rname == '\0') {
		dev_reply_error(c, 400, "missing role");
		return;
	}
	if (jwt_text == NULL || *jwt_text == '\0') {
		dev_reply_error(c, 400, "missing jwt");
		return;
	}
	role = json_object_get(json_object_get(m->state, "roles"), rname);
	if (role == NULL) {
		dev_reply_errorf(c, 400, "invalid role name \"%.128s\"", rname);
		return;
	}
	if (json_is_null(cfg)) {
		dev_reply_error(c, 400, "could not load backend configuration");
		return;
	}
	if (dev_jwt_decode(jwt_text, strlen(jwt_text), &jwt, &err) < 0) {
		lk_log(LK_INFO, "kubernetes login refused", LK_STR("role", rname), LK_STR("reason", err.msg));
		dev_reply_error(c, 403, "permission denied");
		goto out;
	}
	if ((jwt.has_exp && jwt.exp <= c->now_ms / 1000) || (jwt.has_nbf && jwt.nbf > c->now_ms / 1000)) {
		lk_log(LK_INFO, "kubernetes login refused", LK_STR("role", rname),
		    LK_STR("reason", "jwt expired or not yet valid"));
		dev_reply_error(c, 403, "permission denied");
		goto out;
	}
	const char *iss = json_string_value(json_object_get(cfg, "issuer"));
	if (!json_is_true(json_object_get(cfg, "disable_iss_validation")) && iss != NULL &&
	    *iss != '\0' && strcmp(iss, jwt.iss) != 0) {
		dev_reply_error(c, 403, "permission denied");
		goto out;
	}
	keys = json_object_get(cfg, "pem_keys");
	for (size_t i = 0; i < json_array_size(keys) && !verified; i++) {
		const json_t *k = json_array_get(keys, i);
		verified = dev_jwt_verify(&jwt, json_string_value(k), json_string_length(k), &err) == 0;
	}
	if (json_array_size(keys) > 0 && !verified) {
		lk_log(LK_INFO, "kubernetes login refused", LK_STR("role", rname), LK_STR("reason", err.msg));
		dev_reply_error(c, 403, "permission denied");
		goto out;
	}
	if (json_array_size(keys) == 0 && !c->srv->quiet_jwt_warning) {
		lk_log(LK_WARN, "kubernetes auth: JWT signatures are not verified; set pem_keys in "
		    "auth/kubernetes/config to verify them", LK_STR("mount", m->path));
		c->srv->quiet_jwt_warning = true;
	}
	/* The role's audience, as Vault checks it: the token must have been issued for it. */
	{
		const char *aud = json_string_value(json_object_get(role, "audience"));

		if (aud != NULL && *aud != '\0' && !dev_jwt_has_audience(&jwt, aud)) {
			lk_log(LK_INFO, "kubernetes login refused", LK_STR("role", rname),
			    LK_STR("reason", "the jwt's aud claim does not name the role's audience"));
			dev_reply_error(c, 403, "invalid audience (aud) claim: audience claim does not "
			    "match any expected audience");
			goto out;
		}
	}
	if (!bound(json_object_get(role, "bound_service_account_names"), jwt.sa_name)) {
		dev_reply_error(c, 403, "service account name not authorized");
		goto out;
	}
	if (!bound(json_object_get(role, "bound_service_account_namespaces"), jwt.sa_namespace)) {
		dev_reply_error(c, 403, "namespace not authorized");
		goto out;
	}
	dev_role_login_opts(role, &o);
	meta = json_pack("{s:s, s:s, s:s, s:s, s:s}", "role", rname, "service_account_name",
	    jwt.sa_name, "service_account_namespace", jwt.sa_namespace,
	    "service_account_secret_name", jwt.secret_name, "service_account_uid", jwt.sa_uid);
	o.meta = meta;
	snprintf(path, sizeof(path), "auth/%slogin", m->path);
	o.path = path;
	snprintf(display, sizeof(display), "kubernetes-%s-%s", jwt.sa_namespace, jwt.sa_name);
	o.display_name = display;
	t = dev_token_issue(c, m, &o);
	json_decref(meta);
	if (t == NULL) {
		dev_reply_error(c, 500, "token limit reached");
		goto out;
	}
	dev_reply_auth(c, t, NULL);
out:
	dev_jwt_clear(&jwt);
}

void
dev_k8s_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	char name[DEV_NAME_MAX];
	const char *sub;

	if (strcmp(rest, "login") == 0) {
		k8s_login(c, m);
	} else if (strcmp(rest, "config") == 0) {
		k8s_config(c, m);
	} else if (strcmp(rest, "role") == 0 || strcmp(rest, "role/") == 0) {
		if (c->op != DEV_OP_LIST)
			dev_reply_bad_method(c);
		else
			dev_reply_keys(c, dev_list_children(json_object_get(m->state, "roles"), ""));
	} else if (dev_role_path(rest, name, sizeof(name), &sub) && *sub == '\0') {
		k8s_role(c, m, name);
	} else {
		dev_reply_no_route(c);
	}
}
