/* auth.c — what the auth methods share: issuing a token and its auth block, the token_*
 * fields of AppRole and Kubernetes roles, and which paths are logins. The methods are in
 * auth_token.c, auth_approle.c and auth_kubernetes.c. */
#include "devserver/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

struct dev_token *
dev_token_issue(struct dev_call *c, const struct dev_mount *m, const struct dev_token_opts *o)
{
	json_t *pol = dev_json_strlist(o->policies, false), *all;
	int64_t ttl, max;
	struct dev_token *t;
	bool root;

	if (pol == NULL)
		return NULL;
	root = dev_strlist_has(pol, "root");
	if (!o->no_default_policy && !root)
		json_array_append_new(pol, json_string("default"));
	all = dev_json_strlist(pol, true);
	json_decref(pol);
	t = dev_token_new(c->srv, c->now_ms, all);
	if (t == NULL)
		return NULL;
	max = o->max_ttl_s > 0 ? o->max_ttl_s : m != NULL && m->max_ttl_s > 0 ? m->max_ttl_s :
	    DEV_SYSTEM_TTL_S;
	if (o->explicit_max_s > 0 && o->explicit_max_s < max)
		max = o->explicit_max_s;
	ttl = o->ttl_s > 0 ? o->ttl_s : m != NULL && m->default_ttl_s > 0 ? m->default_ttl_s :
	    DEV_SYSTEM_TTL_S;
	if (o->period_s > 0) {
		ttl = o->period_s;
		max = o->explicit_max_s;   /* a periodic token lives while renewed */
	}
	if (max > 0 && ttl > max)
		ttl = max;
	t->creation_ttl_s = ttl;
	t->max_ttl_s = max;
	t->explicit_max_s = o->explicit_max_s;
	t->period_s = o->period_s;
	t->num_uses = o->num_uses;
	t->renewable = o->renewable;
	t->orphan = o->parent == NULL;
	if (o->parent != NULL)
		snprintf(t->parent, sizeof(t->parent), "%s", o->parent);
	/* A root-policy token asked for without a TTL never expires, as in Vault. */
	if (root && o->ttl_s == 0 && o->period_s == 0 && o->explicit_max_s == 0) {
		t->creation_ttl_s = 0;
		t->renewable = false;
	} else {
		t->expire_ms = c->now_ms + ttl * 1000;
	}
	if (o->meta != NULL && json_object_size(o->meta) > 0)
		t->meta = json_deep_copy(o->meta);
	snprintf(t->path, sizeof(t->path), "%s", o->path);
	snprintf(t->display_name, sizeof(t->display_name), "%s", o->display_name);
	return t;
}

void
dev_reply_auth(struct dev_call *c, struct dev_token *t, const char *warning)
{
	dev_reply_data(c, NULL);
	json_object_set_new(c->reply, "auth", dev_token_auth(c->srv, t, c->now_ms));
	if (warning != NULL && *warning != '\0')
		json_object_set_new(c->reply, "warnings", json_pack("[s]", warning));
}

bool
dev_token_is_rootish(const struct dev_token *t)
{
	return t != NULL && (t->root || dev_strlist_has(t->policies, "root"));
}

/* ---- fields shared by AppRole and Kubernetes roles ---- */

bool
dev_role_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("-_.@", name[i]) == NULL)
			return false;
	return true;
}

/* Updates role from the body's token_* fields; false (with a 400 reply) when one is bad. */
bool
dev_role_token_fields(struct dev_call *c, json_t *role)
{
	static const char *const ttls[] = { "token_ttl", "token_max_ttl", "token_period",
					    "token_explicit_max_ttl", "secret_id_ttl", "period", "ttl",
					    "max_ttl" };
	json_t *v;

	for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
		int64_t s = -1;
		v = json_object_get(c->body, ttls[i]);
		if (v == NULL)
			continue;
		if (dev_json_ttl(v, &s) < 0) {
			dev_reply_errorf(c, 400, "invalid %s", ttls[i]);
			return false;
		}
		/* Older names map onto token_*. */
		const char *key = strcmp(ttls[i], "period") == 0 ? "token_period" :
		    strcmp(ttls[i], "ttl") == 0 ? "token_ttl" :
		    strcmp(ttls[i], "max_ttl") == 0 ? "token_max_ttl" : ttls[i];
		json_object_set_new(role, key, json_integer(s));
	}
	v = json_object_get(c->body, "token_policies");
	if (v == NULL)
		v = json_object_get(c->body, "policies");
	if (v != NULL) {
		json_t *list = dev_json_strlist(v, true);
		if (list == NULL || json_array_size(list) > DEV_TOKEN_POLICIES_MAX) {
			json_decref(list);
			dev_reply_error(c, 400, "token_policies must be a list of at most 64 strings");
			return false;
		}
		json_object_set(role, "token_policies", list);
		json_object_set_new(role, "policies", list);
	}
	v = json_object_get(c->body, "token_num_uses");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		json_object_set(role, "token_num_uses", v);
	v = json_object_get(c->body, "token_no_default_policy");
	if (json_is_boolean(v))
		json_object_set(role, "token_no_default_policy", v);
	v = json_object_get(role, "token_max_ttl");
	if (json_integer_value(v) > 0 &&
	    json_integer_value(json_object_get(role, "token_ttl")) > json_integer_value(v)) {
		dev_reply_error(c, 400, "token_ttl should not be greater than token_max_ttl");
		return false;
	}
	return true;
}

json_t *
dev_role_token_defaults(void)
{
	return json_pack("{s:i, s:i, s:i, s:i, s:i, s:[], s:[], s:b, s:s, s:[]}", "token_ttl", 0,
	    "token_max_ttl", 0, "token_period", 0, "token_explicit_max_ttl", 0, "token_num_uses", 0,
	    "token_policies", "policies", "token_no_default_policy", 0, "token_type", "default",
	    "token_bound_cidrs");
}

void
dev_role_login_opts(const json_t *role, struct dev_token_opts *o)
{
	o->policies = json_object_get(role, "token_policies");
	o->ttl_s = json_integer_value(json_object_get(role, "token_ttl"));
	o->max_ttl_s = json_integer_value(json_object_get(role, "token_max_ttl"));
	o->period_s = json_integer_value(json_object_get(role, "token_period"));
	o->explicit_max_s = json_integer_value(json_object_get(role, "token_explicit_max_ttl"));
	o->num_uses = json_integer_value(json_object_get(role, "token_num_uses"));
	o->no_default_policy = json_is_true(json_object_get(role, "token_no_default_policy"));
	o->renewable = true;
}

/* Splits "role/<name>[/<sub>]"; false when rest is not under role/. */
bool
dev_role_path(const char *rest, char *name, size_t namelen, const char **ret_sub)
{
	const char *p, *slash;

	if (strncmp(rest, "role/", 5) != 0)
		return false;
	p = rest + 5;
	slash = strchr(p, '/');
	if ((size_t)(slash != NULL ? slash - p : (long)strlen(p)) >= namelen)
		return false;
	snprintf(name, namelen, "%.*s", (int)(slash != NULL ? slash - p : (long)strlen(p)), p);
	*ret_sub = slash != NULL ? slash + 1 : "";
	return true;
}

bool
dev_auth_is_login(const struct dev_mount *m, const char *rest)
{
	if (m->type == DEV_AUTH_APPROLE || m->type == DEV_AUTH_KUBERNETES)
		return strcmp(rest, "login") == 0;
	return false;
}

