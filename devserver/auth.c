/* auth.c — the auth methods: token, AppRole and Kubernetes. */
#include "devserver/internal.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "devserver/jwt.h"

/* What a new token gets; policies and meta are borrowed. */
struct token_opts {
	const json_t *policies;
	bool no_default_policy;
	int64_t ttl_s, max_ttl_s, explicit_max_s, period_s, num_uses;
	const json_t *meta;
	const char *path;
	const char *display_name;
	const char *parent;      /* NULL: orphan */
	bool renewable;
};

static struct dev_token *
issue(struct dev_call *c, const struct dev_mount *m, const struct token_opts *o)
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

static void
reply_auth(struct dev_call *c, struct dev_token *t, const char *warning)
{
	dev_reply_data(c, NULL);
	json_object_set_new(c->reply, "auth", dev_token_auth(c->srv, t, c->now_ms));
	if (warning != NULL && *warning != '\0')
		json_object_set_new(c->reply, "warnings", json_pack("[s]", warning));
}

static bool
is_rootish(const struct dev_token *t)
{
	return t != NULL && (t->root || dev_strlist_has(t->policies, "root"));
}

/* ---- token ---- */

static void
token_create(struct dev_call *c, const struct dev_mount *m, bool orphan)
{
	struct dev_token *t, *parent = c->token;
	struct token_opts o = { .renewable = true, .path = "auth/token/create" };
	json_t *pol = NULL;
	json_t *v;
	char display[128];
	const char *dn = dev_body_str(c, "display_name");

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	v = json_object_get(c->body, "policies");
	pol = v != NULL ? dev_json_strlist(v, true) : json_deep_copy(parent->policies);
	if (pol == NULL || json_array_size(pol) > DEV_TOKEN_POLICIES_MAX) {
		json_decref(pol);
		dev_reply_error(c, 400, "policies must be a list of at most 64 strings");
		return;
	}
	if (!is_rootish(parent)) {
		size_t i;
		json_t *p;

		json_array_foreach(pol, i, p) {
			if (strcmp(json_string_value(p), "default") != 0 &&
			    !dev_strlist_has(parent->policies, json_string_value(p))) {
				json_decref(pol);
				dev_reply_error(c, 400, "child policies must be subset of parent");
				return;
			}
		}
	}
	if (dev_json_ttl(json_object_get(c->body, "ttl"), &o.ttl_s) < 0 ||
	    dev_json_ttl(json_object_get(c->body, "explicit_max_ttl"), &o.explicit_max_s) < 0 ||
	    dev_json_ttl(json_object_get(c->body, "period"), &o.period_s) < 0) {
		json_decref(pol);
		dev_reply_error(c, 400, "invalid ttl, explicit_max_ttl or period");
		return;
	}
	v = json_object_get(c->body, "num_uses");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		o.num_uses = json_integer_value(v);
	v = json_object_get(c->body, "renewable");
	if (json_is_boolean(v))
		o.renewable = json_is_true(v);
	o.no_default_policy = json_is_true(json_object_get(c->body, "no_default_policy"));
	v = json_object_get(c->body, "meta");
	if (v != NULL && !json_is_null(v)) {
		const char *key;
		json_t *mv;

		if (!json_is_object(v)) {
			json_decref(pol);
			dev_reply_error(c, 400, "meta must be a map of strings");
			return;
		}
		json_object_foreach((json_t *)v, key, mv) {
			if (!json_is_string(mv)) {
				json_decref(pol);
				dev_reply_error(c, 400, "meta must be a map of strings");
				return;
			}
		}
		o.meta = v;
	}
	orphan = orphan || json_is_true(json_object_get(c->body, "no_parent"));
	o.parent = orphan ? NULL : parent->id;
	if (orphan)
		o.path = "auth/token/create-orphan";
	snprintf(display, sizeof(display), "token%s%.100s", dn != NULL && *dn != '\0' ? "-" : "",
	    dn != NULL ? dn : "");
	o.display_name = display;
	o.policies = pol;
	t = issue(c, m, &o);
	json_decref(pol);
	if (t == NULL) {
		dev_reply_error(c, 400, "token limit reached");
		return;
	}
	reply_auth(c, t, NULL);
}

static void
token_renew(struct dev_call *c, struct dev_token *t)
{
	int64_t increment = 0, ttl, max;
	char warning[256] = "";

	if (!t->renewable || t->expire_ms == 0) {
		dev_reply_error(c, 400, "lease is not renewable");
		return;
	}
	if (dev_json_ttl(json_object_get(c->body, "increment"), &increment) < 0) {
		dev_reply_error(c, 400, "invalid increment");
		return;
	}
	max = t->max_ttl_s;
	if (t->period_s > 0) {
		ttl = t->period_s;
		if (max > 0 && dev_calculate_ttl(c->now_ms, t->issue_ms, t->period_s, t->period_s, max,
		    &ttl, warning, sizeof(warning)) < 0) {
			dev_reply_error(c, 400, "past the max TTL, cannot renew");
			return;
		}
		if (warning[0] != '\0') {
			/* Vault words it "period of ..." for periodic tokens. */
			char tmp[sizeof(warning) + 8];
			snprintf(tmp, sizeof(tmp), "period%s", warning + 3);
			snprintf(warning, sizeof(warning), "%.250s", tmp);
		}
	} else if (dev_calculate_ttl(c->now_ms, t->issue_ms, increment, t->creation_ttl_s,
		       max > 0 ? max : DEV_SYSTEM_TTL_S, &ttl, warning, sizeof(warning)) < 0) {
		dev_reply_error(c, 400, "past the max TTL, cannot renew");
		return;
	}
	t->expire_ms = c->now_ms + ttl * 1000;
	t->last_renew_ms = c->now_ms;
	reply_auth(c, t, warning);
}

/* The token named in the body ({"token": ...}) for lookup, renew and revoke. */
static struct dev_token *
body_token(struct dev_call *c)
{
	const char *id = dev_body_str(c, "token");
	struct dev_token *t;

	if (id == NULL || *id == '\0') {
		dev_reply_error(c, 400, "missing token");
		return NULL;
	}
	t = dev_token_find(c->srv, id);
	if (t == NULL)
		dev_reply_error(c, 403, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n");
	return t;
}

void
dev_token_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	struct dev_token *t;

	if (strcmp(rest, "create") == 0) {
		token_create(c, m, false);
	} else if (strcmp(rest, "create-orphan") == 0) {
		token_create(c, m, true);
	} else if (strcmp(rest, "lookup-self") == 0) {
		if (c->op != DEV_OP_READ && c->op != DEV_OP_WRITE)
			dev_reply_bad_method(c);
		else
			dev_reply_data(c, dev_token_lookup(c->token, c->now_ms));
	} else if (strcmp(rest, "renew-self") == 0) {
		if (c->op != DEV_OP_WRITE)
			dev_reply_bad_method(c);
		else
			token_renew(c, c->token);
	} else if (strcmp(rest, "revoke-self") == 0) {
		if (c->op != DEV_OP_WRITE) {
			dev_reply_bad_method(c);
			return;
		}
		dev_token_revoke(c->srv, c->token, c->now_ms);
		c->token = NULL;
		dev_reply_empty(c);
	} else if (strcmp(rest, "lookup") == 0 || strcmp(rest, "renew") == 0 ||
		   strcmp(rest, "revoke") == 0) {
		if (c->op != DEV_OP_WRITE) {
			dev_reply_bad_method(c);
			return;
		}
		t = body_token(c);
		if (t == NULL)
			return;
		if (strcmp(rest, "lookup") == 0) {
			dev_reply_data(c, dev_token_lookup(t, c->now_ms));
		} else if (strcmp(rest, "renew") == 0) {
			token_renew(c, t);
		} else {
			if (t == c->token)
				c->token = NULL;
			dev_token_revoke(c->srv, t, c->now_ms);
			dev_reply_empty(c);
		}
	} else {
		dev_reply_no_route(c);
	}
}

/* ---- fields shared by AppRole and Kubernetes roles ---- */

static bool
role_name_ok(const char *name)
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
static bool
token_fields(struct dev_call *c, json_t *role)
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

static json_t *
token_defaults(void)
{
	return json_pack("{s:i, s:i, s:i, s:i, s:i, s:[], s:[], s:b, s:s, s:[]}", "token_ttl", 0,
	    "token_max_ttl", 0, "token_period", 0, "token_explicit_max_ttl", 0, "token_num_uses", 0,
	    "token_policies", "policies", "token_no_default_policy", 0, "token_type", "default",
	    "token_bound_cidrs");
}

static void
login_opts(const json_t *role, struct token_opts *o)
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
static bool
role_path(const char *rest, char *name, size_t namelen, const char **ret_sub)
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

/* ---- AppRole: state.roles is { name: { ..., role_id, secret_ids: { id: {...} } } } ---- */

bool
dev_auth_is_login(const struct dev_mount *m, const char *rest)
{
	if (m->type == DEV_AUTH_APPROLE || m->type == DEV_AUTH_KUBERNETES)
		return strcmp(rest, "login") == 0;
	return false;
}

static json_t *
approle_public(const json_t *role)
{
	json_t *out = json_deep_copy(role);

	json_object_del(out, "secret_ids");
	json_object_del(out, "role_id");
	return out;
}

static void
approle_secret_id(struct dev_call *c, json_t *role)
{
	json_t *ids = json_object_get(role, "secret_ids"), *meta;
	char id[40], accessor[40], now[40];
	int64_t ttl = json_integer_value(json_object_get(role, "secret_id_ttl"));
	json_int_t uses = json_integer_value(json_object_get(role, "secret_id_num_uses"));
	const char *key;
	json_t *v, *tmp;

	if (c->op == DEV_OP_LIST) {
		json_t *keys = json_array();
		json_object_foreach(ids, key, v)
			json_array_append(keys, json_object_get(v, "accessor"));
		dev_reply_keys(c, keys);
		return;
	}
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (json_object_size(ids) >= DEV_ROLES_MAX) {
		/* Make room by forgetting expired secret IDs. */
		json_object_foreach_safe(ids, tmp, key, v) {
			json_int_t exp = json_integer_value(json_object_get(v, "expire_ms"));
			if (exp != 0 && exp <= c->now_ms)
				json_object_del(ids, key);
		}
		if (json_object_size(ids) >= DEV_ROLES_MAX) {
			dev_reply_error(c, 400, "too many secret IDs for this role");
			return;
		}
	}
	meta = json_object_get(c->body, "metadata");
	dev_random_uuid(id);
	dev_random_uuid(accessor);
	json_object_set_new(ids, id, json_pack("{s:s, s:I, s:I, s:I, s:s, s:O}", "accessor", accessor,
	    "creation_ms", (json_int_t)c->now_ms,
	    "expire_ms", (json_int_t)(ttl > 0 ? c->now_ms + ttl * 1000 : 0), "num_uses", uses,
	    "creation_time", dev_time_str(c->now_ms, now),
	    "metadata", json_is_object(meta) ? meta : json_null()));
	dev_reply_data(c, json_pack("{s:s, s:s, s:I, s:I}", "secret_id", id, "secret_id_accessor",
	    accessor, "secret_id_ttl", (json_int_t)ttl, "secret_id_num_uses", uses));
}

static void
approle_role(struct dev_call *c, struct dev_mount *m, const char *name, const char *sub)
{
	json_t *roles = json_object_get(m->state, "roles"), *role = json_object_get(roles, name);
	json_t *v;

	if (!role_name_ok(name)) {
		dev_reply_error(c, 400, "invalid role name");
		return;
	}
	if (*sub != '\0' && role == NULL) {
		dev_reply_errorf(c, 400, "role \"%s\" does not exist", name);
		return;
	}
	if (strcmp(sub, "role-id") == 0) {
		if (c->op == DEV_OP_READ) {
			dev_reply_data(c, json_pack("{s:O}", "role_id", json_object_get(role, "role_id")));
		} else if (c->op == DEV_OP_WRITE && dev_body_str(c, "role_id") != NULL &&
			   *dev_body_str(c, "role_id") != '\0') {
			json_object_set_new(role, "role_id", json_string(dev_body_str(c, "role_id")));
			dev_reply_empty(c);
		} else if (c->op == DEV_OP_WRITE) {
			dev_reply_error(c, 400, "missing role_id");
		} else {
			dev_reply_bad_method(c);
		}
		return;
	}
	if (strcmp(sub, "secret-id") == 0) {
		approle_secret_id(c, role);
		return;
	}
	if (*sub != '\0') {
		dev_reply_no_route(c);
		return;
	}
	if (dev_reply_role(c, roles, name, role, approle_public))
		return;
	switch (c->op) {
	case DEV_OP_WRITE:
		if (role == NULL) {
			char id[40];

			if (json_object_size(roles) >= DEV_ROLES_MAX) {
				dev_reply_error(c, 400, "too many roles");
				return;
			}
			dev_random_uuid(id);
			json_t *extra = json_pack("{s:b, s:i, s:i, s:[], s:b, s:s, s:{}}",
			    "bind_secret_id", 1, "secret_id_ttl", 0, "secret_id_num_uses", 0,
			    "secret_id_bound_cidrs", "local_secret_ids", 0, "role_id", id, "secret_ids");

			role = token_defaults();
			json_object_update(role, extra);
			json_decref(extra);
		} else {
			role = json_deep_copy(role);
		}
		if (!token_fields(c, role)) {
			json_decref(role);
			return;
		}
		v = json_object_get(c->body, "bind_secret_id");
		if (json_is_boolean(v))
			json_object_set(role, "bind_secret_id", v);
		v = json_object_get(c->body, "secret_id_num_uses");
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			json_object_set(role, "secret_id_num_uses", v);
		if (dev_body_str(c, "role_id") != NULL && *dev_body_str(c, "role_id") != '\0')
			json_object_set_new(role, "role_id", json_string(dev_body_str(c, "role_id")));
		if (!json_is_true(json_object_get(role, "bind_secret_id"))) {
			json_decref(role);
			dev_reply_error(c, 400, "at least one constraint should be enabled on the role");
			return;
		}
		json_object_set_new(roles, name, role);
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

static void
approle_login(struct dev_call *c, struct dev_mount *m)
{
	json_t *roles = json_object_get(m->state, "roles"), *role = NULL, *ids, *sid = NULL, *v;
	const char *role_id = dev_body_str(c, "role_id"), *secret_id = dev_body_str(c, "secret_id");
	const char *name = NULL, *key;
	struct token_opts o = { 0 };
	struct dev_token *t;
	char path[DEV_NAME_MAX + 16];
	json_t *meta;

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (role_id == NULL || *role_id == '\0') {
		dev_reply_error(c, 400, "missing role_id");
		return;
	}
	json_object_foreach(roles, key, v) {
		const char *rid = json_string_value(json_object_get(v, "role_id"));
		if (rid != NULL && strlen(rid) == strlen(role_id) &&
		    sodium_memcmp(rid, role_id, strlen(rid)) == 0) {
			role = v;
			name = key;
		}
	}
	if (role == NULL) {
		dev_reply_error(c, 400, "invalid role or secret ID");
		return;
	}
	if (json_is_true(json_object_get(role, "bind_secret_id"))) {
		ids = json_object_get(role, "secret_ids");
		sid = secret_id != NULL ? json_object_get(ids, secret_id) : NULL;
		if (sid != NULL) {
			json_int_t exp = json_integer_value(json_object_get(sid, "expire_ms"));
			if (exp != 0 && exp <= c->now_ms) {
				json_object_del(ids, secret_id);
				sid = NULL;
			}
		}
		if (sid == NULL) {
			dev_reply_error(c, 400, "invalid role or secret ID");
			return;
		}
		json_int_t uses = json_integer_value(json_object_get(sid, "num_uses"));
		if (uses == 1)
			json_object_del(ids, secret_id);
		else if (uses > 1)
			json_object_set_new(sid, "num_uses", json_integer(uses - 1));
	}
	login_opts(role, &o);
	meta = json_pack("{s:s}", "role_name", name);
	o.meta = meta;
	snprintf(path, sizeof(path), "auth/%slogin", m->path);
	o.path = path;
	o.display_name = "approle";
	t = issue(c, m, &o);
	json_decref(meta);
	if (t == NULL) {
		dev_reply_error(c, 500, "token limit reached");
		return;
	}
	reply_auth(c, t, NULL);
}

void
dev_approle_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	char name[DEV_NAME_MAX];
	const char *sub;

	if (strcmp(rest, "login") == 0) {
		approle_login(c, m);
	} else if (strcmp(rest, "role") == 0 || strcmp(rest, "role/") == 0) {
		if (c->op != DEV_OP_LIST)
			dev_reply_bad_method(c);
		else
			dev_reply_keys(c, dev_list_children(json_object_get(m->state, "roles"), ""));
	} else if (role_path(rest, name, sizeof(name), &sub)) {
		approle_role(c, m, name, sub);
	} else {
		dev_reply_no_route(c);
	}
}

/* ---- Kubernetes: state.config, state.roles ---- */

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

	if (!role_name_ok(name)) {
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
		role = role != NULL ? json_deep_copy(role) : token_defaults();
		if (!token_fields(c, role)) {
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
	struct token_opts o = { 0 };
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
	if (!bound(json_object_get(role, "bound_service_account_names"), jwt.sa_name)) {
		dev_reply_error(c, 403, "service account name not authorized");
		goto out;
	}
	if (!bound(json_object_get(role, "bound_service_account_namespaces"), jwt.sa_namespace)) {
		dev_reply_error(c, 403, "namespace not authorized");
		goto out;
	}
	login_opts(role, &o);
	meta = json_pack("{s:s, s:s, s:s, s:s, s:s}", "role", rname, "service_account_name",
	    jwt.sa_name, "service_account_namespace", jwt.sa_namespace,
	    "service_account_secret_name", jwt.secret_name, "service_account_uid", jwt.sa_uid);
	o.meta = meta;
	snprintf(path, sizeof(path), "auth/%slogin", m->path);
	o.path = path;
	snprintf(display, sizeof(display), "kubernetes-%s-%s", jwt.sa_namespace, jwt.sa_name);
	o.display_name = display;
	t = issue(c, m, &o);
	json_decref(meta);
	if (t == NULL) {
		dev_reply_error(c, 500, "token limit reached");
		goto out;
	}
	reply_auth(c, t, NULL);
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
	} else if (role_path(rest, name, sizeof(name), &sub) && *sub == '\0') {
		k8s_role(c, m, name);
	} else {
		dev_reply_no_route(c);
	}
}
