/* database.c — the database secrets engine: roles, connection configs, and credentials
 * minted on every read under a renewable lease. No database is contacted. */
#include "devserver/internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Longest role name put in a generated username. */
#define DB_USER_ROLE_MAX 32
/* Length of the random parts of generated usernames and passwords. */
#define DB_RANDOM_LEN 20

static bool
name_ok(const char *name)
{
	return *name != '\0' && strlen(name) < DEV_NAME_MAX && strchr(name, '/') == NULL;
}

static json_t *
statements(const json_t *v)
{
	json_t *list = dev_json_strlist(v, false);

	return list != NULL ? list : json_array();
}

static void
db_roles(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *roles = json_object_get(m->state, "roles"), *role;
	int64_t def = 0, max = 0;
	const char *db;

	if (*name == '\0' || c->op == DEV_OP_LIST) {
		if (c->op != DEV_OP_LIST) {
			dev_reply_bad_method(c);
			return;
		}
		dev_reply_keys(c, dev_list_children(roles, ""));
		return;
	}
	if (!name_ok(name)) {
		dev_reply_error(c, 400, "invalid role name");
		return;
	}
	role = json_object_get(roles, name);
	if (dev_reply_role(c, roles, name, role, NULL))
		return;
	switch (c->op) {
	case DEV_OP_WRITE:
		db = dev_body_str(c, "db_name");
		if (db == NULL && role != NULL)
			db = json_string_value(json_object_get(role, "db_name"));
		if (db == NULL || *db == '\0') {
			dev_reply_error(c, 400, "empty database name attribute");
			return;
		}
		if (role != NULL) {
			def = json_integer_value(json_object_get(role, "default_ttl"));
			max = json_integer_value(json_object_get(role, "max_ttl"));
		}
		if (dev_json_ttl(json_object_get(c->body, "default_ttl"), &def) < 0 ||
		    dev_json_ttl(json_object_get(c->body, "max_ttl"), &max) < 0) {
			dev_reply_error(c, 400, "invalid default_ttl or max_ttl");
			return;
		}
		if (max > 0 && def > max) {
			dev_reply_error(c, 400, "ttl cannot be greater than max_ttl");
			return;
		}
		if (role == NULL && json_object_size(roles) >= DEV_SECRETS_MAX) {
			dev_reply_error(c, 400, "too many roles");
			return;
		}
		role = json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:s, s:{}}",
		    "db_name", db, "default_ttl", (json_int_t)def, "max_ttl", (json_int_t)max,
		    "creation_statements", statements(json_object_get(c->body, "creation_statements")),
		    "revocation_statements", statements(json_object_get(c->body, "revocation_statements")),
		    "rollback_statements", statements(json_object_get(c->body, "rollback_statements")),
		    "renew_statements", statements(json_object_get(c->body, "renew_statements")),
		    "credential_type", "password", "credential_config");
		json_object_set_new(roles, name, role);
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

static void
db_config(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *configs = json_object_get(m->state, "config"), *cfg, *copy;

	if (*name == '\0' || c->op == DEV_OP_LIST) {
		if (c->op != DEV_OP_LIST) {
			dev_reply_bad_method(c);
			return;
		}
		dev_reply_keys(c, dev_list_children(configs, ""));
		return;
	}
	if (!name_ok(name)) {
		dev_reply_error(c, 400, "invalid connection name");
		return;
	}
	cfg = json_object_get(configs, name);
	switch (c->op) {
	case DEV_OP_READ:
		if (cfg == NULL) {
			dev_reply_error(c, 404, NULL);
			return;
		}
		copy = json_deep_copy(cfg);
		/* As Vault: the password is never read back. */
		json_object_del(copy, "password");
		dev_reply_data(c, copy);
		return;
	case DEV_OP_DELETE:
		json_object_del(configs, name);
		dev_reply_empty(c);
		return;
	case DEV_OP_WRITE:
		if (cfg == NULL && json_object_size(configs) >= DEV_SECRETS_MAX) {
			dev_reply_error(c, 400, "too many connections");
			return;
		}
		copy = json_deep_copy(c->body);
		if (json_object_get(copy, "plugin_name") == NULL) {
			json_decref(copy);
			dev_reply_error(c, 400, "plugin_name must be provided");
			return;
		}
		json_object_set_new(configs, name, copy);
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

/* A password like Vault's default policy makes: 20 characters with a lower, an upper
 * and a digit. */
static void
db_password(char out[DB_RANDOM_LEN + 1])
{
	do {
		dev_random_alnum(out, DB_RANDOM_LEN);
	} while (strpbrk(out, "abcdefghijklmnopqrstuvwxyz") == NULL ||
		 strpbrk(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == NULL ||
		 strpbrk(out, "0123456789") == NULL);
	out[randombytes_uniform(DB_RANDOM_LEN - 2) + 1] = '-';
}

/* The TTL and max TTL a role's credentials get: the role's, else the mount's, else the
 * system's. */
static void
role_limits(const struct dev_mount *m, const json_t *role, int64_t *ret_def, int64_t *ret_max)
{
	int64_t sys_max = m->max_ttl_s > 0 ? m->max_ttl_s : DEV_SYSTEM_TTL_S;
	int64_t def = json_integer_value(json_object_get(role, "default_ttl"));
	int64_t max = json_integer_value(json_object_get(role, "max_ttl"));

	if (def <= 0)
		def = m->default_ttl_s > 0 ? m->default_ttl_s : DEV_SYSTEM_TTL_S;
	if (max <= 0 || max > sys_max)
		max = sys_max;
	*ret_def = def < max ? def : max;
	*ret_max = max;
}

int
dev_db_lease_limits(const struct dev_mount *m, const char *lease_id, int64_t *ret_def,
		    int64_t *ret_max)
{
	const char *rest = dev_mount_rest(m, lease_id), *slash;
	char name[DEV_NAME_MAX];
	const json_t *role;

	if (strncmp(rest, "creds/", 6) != 0)
		return -ENOENT;
	rest += 6;
	slash = strrchr(rest, '/');
	if (slash == NULL || (size_t)(slash - rest) >= sizeof(name))
		return -ENOENT;
	snprintf(name, sizeof(name), "%.*s", (int)(slash - rest), rest);
	role = json_object_get(json_object_get(m->state, "roles"), name);
	if (role == NULL)
		return -ENOENT;
	role_limits(m, role, ret_def, ret_max);
	return 0;
}

static void
db_creds(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *role = json_object_get(json_object_get(m->state, "roles"), name);
	char user[160], rnd[DB_RANDOM_LEN + 1], pass[DB_RANDOM_LEN + 1];
	char uuid[40], lease_id[DEV_NAME_MAX + 64];
	int64_t def, max;
	struct dev_lease *l;

	if (c->op != DEV_OP_READ) {
		dev_reply_bad_method(c);
		return;
	}
	if (role == NULL || !name_ok(name)) {
		dev_reply_errorf(c, 400, "unknown role: %.128s", name);
		return;
	}
	role_limits(m, role, &def, &max);
	dev_random_alnum(rnd, DB_RANDOM_LEN);
	snprintf(user, sizeof(user), "v-token-%.*s-%s-%lld", DB_USER_ROLE_MAX, name, rnd,
	    (long long)(c->now_ms / 1000));
	db_password(pass);
	dev_random_uuid(uuid);
	snprintf(lease_id, sizeof(lease_id), "%screds/%s/%s", m->path, name, uuid);
	l = dev_lease_new(c->srv, lease_id, c->token != NULL ? c->token->id : "", c->now_ms, def,
	    max, true);
	if (l == NULL) {
		dev_reply_error(c, 429, "lease count quota exceeded");
		sodium_memzero(pass, sizeof(pass));
		return;
	}
	dev_reply_data(c, json_pack("{s:s, s:s}", "username", user, "password", pass));
	sodium_memzero(pass, sizeof(pass));
	json_object_set_new(c->reply, "lease_id", json_string(l->id));
	json_object_set_new(c->reply, "renewable", json_true());
	json_object_set_new(c->reply, "lease_duration", json_integer(def));
}

void
dev_db_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	if (*rest == '/')
		rest++;
	if (strncmp(rest, "roles", 5) == 0 && (rest[5] == '\0' || rest[5] == '/'))
		db_roles(c, m, rest[5] == '/' ? rest + 6 : rest + 5);
	else if (strncmp(rest, "config", 6) == 0 && (rest[6] == '\0' || rest[6] == '/'))
		db_config(c, m, rest[6] == '/' ? rest + 7 : rest + 6);
	else if (strncmp(rest, "creds/", 6) == 0)
		db_creds(c, m, rest + 6);
	else
		dev_reply_no_route(c);
}

void
dev_db_lease_end(struct dev_server *s, struct dev_mount *m, struct dev_lease *l)
{
	(void)s;
	(void)m;
	(void)l;
}
