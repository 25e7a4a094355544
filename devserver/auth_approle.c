/* auth_approle.c — the AppRole auth method: roles, role IDs, secret IDs and login.
 * state.roles is { name: { ..., role_id, secret_ids: { id: {...} } } }. */
#include "devserver/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

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

	if (!dev_role_name_ok(name)) {
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

			role = dev_role_token_defaults();
			json_object_update(role, extra);
			json_decref(extra);
		} else {
			role = json_deep_copy(role);
		}
		if (!dev_role_token_fields(c, role)) {
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
	struct dev_token_opts o = { 0 };
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
	dev_role_login_opts(role, &o);
	meta = json_pack("{s:s}", "role_name", name);
	o.meta = meta;
	snprintf(path, sizeof(path), "auth/%slogin", m->path);
	o.path = path;
	o.display_name = "approle";
	t = dev_token_issue(c, m, &o);
	json_decref(meta);
	if (t == NULL) {
		dev_reply_error(c, 500, "token limit reached");
		return;
	}
	dev_reply_auth(c, t, NULL);
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
	} else if (dev_role_path(rest, name, sizeof(name), &sub)) {
		approle_role(c, m, name, sub);
	} else {
		dev_reply_no_route(c);
	}
}
