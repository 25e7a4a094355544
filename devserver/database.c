/* database.c — the database secrets engine: roles, connection configs, and credentials
 * minted on every read under a renewable lease. A config with plugin_name
 * postgresql-database-plugin and a connection_url makes them real PostgreSQL users (pg.c):
 * created from the role's creation_statements, renewed with its renew_statements and
 * dropped with its revocation_statements (Vault's defaults when empty). Without a
 * connection_url only names are minted and no database is contacted. */
#include "devserver/internal.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "devserver/pg.h"

/* Longest role name put in a generated username. */
#define DB_USER_ROLE_MAX 32
/* Length of the random parts of generated usernames and passwords. */
#define DB_RANDOM_LEN 20
/* Longest generated username: PostgreSQL's identifier limit (NAMEDATALEN - 1), as Vault's
 * username template truncates to. */
#define DB_USER_MAX 63
/* Longest error text from the database kept for an answer. */
#define DB_ERROR_MAX 512
/* Vault's connectionReadHandler (Go's url.Redacted): a connection_url that parses as
 * scheme://user:pass@host... reads back with pass replaced by "xxxxx", only there. A URL
 * whose userinfo holds characters Go's parser refuses (a {{password}} template) reads back
 * as written, as in Vault. */
#define DB_URL_REDACTED "xxxxx"
/* Vault's warning on a write whose connection_url carries a password. */
#define DB_WARN_URL_PASSWORD "Password found in connection_url, use a templated url to enable " \
	"root rotation and prevent read access to password information."
/* The characters Go's net/url accepts in a userinfo (validUserinfo). */
#define DB_USERINFO_CHARS "-._:~!$&'()*+,;=%@"

static bool
userinfo_ok(const char *p, const char *end)
{
	for (; p < end; p++)
		if (!isalnum((unsigned char)*p) && strchr(DB_USERINFO_CHARS, *p) == NULL)
			return false;
	return true;
}

/* Where the password of a scheme://user:pass@host... URL lies: [*ret_start, *ret_end).
 * False when the URL has none, or is not one Go's parser takes. */
static bool
url_password_span(const char *url, size_t *ret_start, size_t *ret_end)
{
	const char *p, *auth, *end, *at = NULL, *colon;

	if (url == NULL || !isalpha((unsigned char)*url))
		return false;
	for (p = url; isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'; p++)
		;
	if (strncmp(p, "://", 3) != 0)
		return false;
	auth = p + 3;
	end = auth + strcspn(auth, "/?#");
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;             /* the last '@' of the authority ends the userinfo */
	if (at == NULL || !userinfo_ok(auth, at))
		return false;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL)
		return false;
	*ret_start = (size_t)(colon + 1 - url);
	*ret_end = (size_t)(at - url);
	return true;
}

/* The connection_url of details, redacted in place. When that cannot be built the member
 * goes: never the password. */
static void
redact_url(json_t *details)
{
	const char *url = json_string_value(json_object_get(details, "connection_url"));
	size_t from, to, n;
	char *out;

	if (!url_password_span(url, &from, &to))
		return;
	n = from + strlen(DB_URL_REDACTED) + strlen(url + to) + 1;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "%.*s%s%s", (int)from, url, DB_URL_REDACTED, url + to);
	if (out == NULL || json_object_set_new(details, "connection_url", json_string(out)) < 0)
		json_object_del(details, "connection_url");
	free(out);
}

/* Vault's PostgreSQL defaults for an empty renew_statements. */
static const char DB_DEFAULT_RENEW[] = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';";

static bool
name_ok(const char *name)
{
	return *name != '\0' && strlen(name) < DEV_NAME_MAX && strchr(name, '/') == NULL;
}

/* A copy of s without leading and trailing white space (Go's strings.TrimSpace). */
static json_t *
trimmed(const char *s)
{
	size_t l;

	while (isspace((unsigned char)*s))
		s++;
	l = strlen(s);
	while (l > 0 && isspace((unsigned char)s[l - 1]))
		l--;
	return json_stringn(s, l);
}

/* A field of Vault's TypeStringSlice (statements): a list of strings, or one string that
 * is one element ("" none); never split on commas. Each element is trimmed. New
 * reference, or NULL when v is neither. */
static json_t *
string_slice(const json_t *v)
{
	json_t *out = json_array(), *e;
	size_t i;

	if (out == NULL)
		return NULL;
	if (json_is_string(v)) {
		if (json_string_length(v) > 0 && json_array_append_new(out, trimmed(json_string_value(v))) < 0)
			goto fail;
		return out;
	}
	if (!json_is_array(v))
		goto fail;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || json_array_append_new(out, trimmed(json_string_value(e))) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* Sets obj[key] from body[field] when it is there (as a TypeStringSlice, or as Vault's
 * TypeCommaStringSlice when comma is set); else, when creating, to an empty list; else
 * leaves it. 0, or -EINVAL / -ENOMEM with err set. */
static int
set_list_field(json_t *obj, const json_t *body, const char *key, const char *field, bool comma,
	       bool create, char *err, size_t errlen)
{
	const json_t *v = json_object_get(body, field);
	json_t *list;

	if (v == NULL || json_is_null(v)) {
		if (!create)
			return 0;
		list = json_array();
	} else {
		list = comma ? dev_json_strlist(v, false) : string_slice(v);
		if (list == NULL) {
			snprintf(err, errlen, "invalid %s: expected a list of strings or a string", field);
			return -EINVAL;
		}
	}
	if (json_object_set_new(obj, key, list) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Vault's RemoveEmpty, which it applies to revocation_statements. */
static void
drop_empty(json_t *list)
{
	for (size_t i = json_array_size(list); i-- > 0;)
		if (json_string_length(json_array_get(list, i)) == 0)
			json_array_remove(list, i);
}

json_t *
dev_db_role_view(const json_t *role)
{
	json_t *view = json_deep_copy(role);

	if (json_object_size(json_object_get(view, "credential_config")) == 0)
		json_object_del(view, "credential_config");
	return view;
}

static const char *const DB_ROLE_STATEMENTS[] = {
	"creation_statements", "revocation_statements", "rollback_statements", "renew_statements",
	NULL,
};

int
dev_db_role_new(const json_t *old, const json_t *body, json_t **ret, char *err, size_t errlen)
{
	const char *db = json_string_value(json_object_get(body, "db_name"));
	int64_t def = 0, max = 0;
	json_t *role;
	int r;

	if (db == NULL && old != NULL)
		db = json_string_value(json_object_get(old, "db_name"));
	if (db == NULL || *db == '\0') {
		snprintf(err, errlen, "empty database name attribute");
		return -EINVAL;
	}
	if (old != NULL) {
		def = json_integer_value(json_object_get(old, "default_ttl"));
		max = json_integer_value(json_object_get(old, "max_ttl"));
	}
	if (dev_json_ttl(json_object_get(body, "default_ttl"), &def) < 0 ||
	    dev_json_ttl(json_object_get(body, "max_ttl"), &max) < 0) {
		snprintf(err, errlen, "invalid default_ttl or max_ttl");
		return -EINVAL;
	}
	if (max > 0 && def > max) {
		snprintf(err, errlen, "ttl cannot be greater than max_ttl");
		return -EINVAL;
	}
	role = old != NULL ? json_deep_copy(old) :
	    json_pack("{s:s, s:{}}", "credential_type", "password", "credential_config");
	if (role == NULL || json_object_set_new(role, "db_name", json_string(db)) < 0 ||
	    json_object_set_new(role, "default_ttl", json_integer(def)) < 0 ||
	    json_object_set_new(role, "max_ttl", json_integer(max)) < 0) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; DB_ROLE_STATEMENTS[i] != NULL; i++)
		if ((r = set_list_field(role, body, DB_ROLE_STATEMENTS[i], DB_ROLE_STATEMENTS[i],
		    false, old == NULL, err, errlen)) < 0)
			goto fail;
	drop_empty(json_object_get(role, "revocation_statements"));
	*ret = role;
	return 0;
fail:
	json_decref(role);
	return r;
}

static void
db_roles(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *roles = json_object_get(m->state, "roles"), *role, *updated;
	char err[DB_ERROR_MAX];

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
	if (dev_reply_role(c, roles, name, role, dev_db_role_view))
		return;
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (role == NULL && json_object_size(roles) >= DEV_SECRETS_MAX) {
		dev_reply_error(c, 400, "too many roles");
		return;
	}
	if (dev_db_role_new(role, c->body, &updated, err, sizeof(err)) < 0) {
		dev_reply_error(c, 400, err);
		return;
	}
	json_object_set_new(roles, name, updated);
	dev_reply_empty(c);
}

/* The members of a config write that are Vault's own (DatabaseConfig and the rotation
 * fields it strips); every other member is the plugin's and goes to connection_details. */
static const char *const DB_CONFIG_OWN[] = {
	"name", "plugin_name", "plugin_version", "allowed_roles", "verify_connection",
	"root_rotation_statements", "password_policy", "skip_static_role_import_rotation",
	"rotation_schedule", "rotation_window", "rotation_period", "disable_automated_rotation",
	NULL,
};

/* The connection_details members a read never shows (Vault's connectionReadHandler). */
static const char *const DB_CONFIG_HIDDEN[] = {
	"password", "private_key", "service_account_json", NULL,
};

/* A body member of Vault's TypeBool: a JSON boolean or a string Go's ParseBool takes.
 * 0, or -EINVAL. */
static int
body_bool(const json_t *v, bool *ret)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True", NULL };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False", NULL };
	const char *s = json_string_value(v);

	if (json_is_boolean(v)) {
		*ret = json_is_true(v);
		return 0;
	}
	for (size_t i = 0; s != NULL && yes[i] != NULL; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Sets cfg[key] to body[key] when that is a string; 0, or -EINVAL with err set. */
static int
set_string_field(json_t *cfg, const json_t *body, const char *key, char *err, size_t errlen)
{
	json_t *v = json_object_get(body, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "invalid %s: expected a string", key);
		return -EINVAL;
	}
	return json_object_set(cfg, key, v) < 0 ? -ENOMEM : 0;
}

int
dev_db_config_new(const json_t *old, const json_t *body, json_t **ret, char *err, size_t errlen)
{
	const char *key, *version;
	json_t *cfg, *details, *v;
	bool verify;
	int r = -EINVAL;

	cfg = old != NULL ? json_deep_copy(old) :
	    json_pack("{s:s, s:s, s:{}, s:[], s:[], s:s, s:b}", "plugin_name", "",
	    "plugin_version", "", "connection_details", "allowed_roles",
	    "root_credentials_rotate_statements", "password_policy", "", "verify_connection", 1);
	if (cfg == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((v = json_object_get(body, "verify_connection")) != NULL) {
		if (body_bool(v, &verify) < 0) {
			snprintf(err, errlen, "invalid verify_connection: expected a boolean");
			goto fail;
		}
		json_object_set_new(cfg, "verify_connection", json_boolean(verify));
	}
	if ((r = set_string_field(cfg, body, "plugin_name", err, errlen)) < 0)
		goto fail;
	r = -EINVAL;
	if (json_string_length(json_object_get(cfg, "plugin_name")) == 0) {
		snprintf(err, errlen, "empty plugin name");
		goto fail;
	}
	/* Only the built-in plugins are served: a version naming one ("v1.2.3+builtin") is
	 * stored as "", as Vault stores it; any other names a plugin that is not here. */
	v = json_object_get(body, "plugin_version");
	version = json_string_value(v);
	if (v != NULL && !json_is_string(v)) {
		snprintf(err, errlen, "invalid plugin_version: expected a string");
		goto fail;
	}
	if (version != NULL && *version != '\0' && strstr(version, "+builtin") == NULL) {
		snprintf(err, errlen, "error creating database object: plugin_version %.64s of %.128s is "
		    "not available: latchkey dev serves only the built-in plugins", version,
		    json_string_value(json_object_get(cfg, "plugin_name")));
		goto fail;
	}
	if ((r = set_list_field(cfg, body, "allowed_roles", "allowed_roles", true, old == NULL, err,
	    errlen)) < 0 ||
	    (r = set_list_field(cfg, body, "root_credentials_rotate_statements",
	    "root_rotation_statements", false, old == NULL, err, errlen)) < 0 ||
	    (r = set_string_field(cfg, body, "password_policy", err, errlen)) < 0)
		goto fail;
	details = json_object_get(cfg, "connection_details");
	json_object_foreach((json_t *)body, key, v) {
		bool own = false;

		for (size_t i = 0; DB_CONFIG_OWN[i] != NULL && !own; i++)
			own = strcmp(key, DB_CONFIG_OWN[i]) == 0;
		if (!own && json_object_set(details, key, v) < 0) {
			snprintf(err, errlen, "out of memory");
			r = -ENOMEM;
			goto fail;
		}
	}
	*ret = cfg;
	return 0;
fail:
	json_decref(cfg);
	return r;
}

json_t *
dev_db_config_view(const json_t *cfg)
{
	json_t *view = json_deep_copy(cfg), *details = json_object_get(view, "connection_details");

	for (size_t i = 0; DB_CONFIG_HIDDEN[i] != NULL; i++)
		json_object_del(details, DB_CONFIG_HIDDEN[i]);
	redact_url(details);
	return view;
}

static void
db_config_write(struct dev_call *c, json_t *configs, const char *name, const json_t *old)
{
	char err[DB_ERROR_MAX];
	const char *url;
	size_t from, to;
	json_t *cfg;

	if (old == NULL && json_object_size(configs) >= DEV_SECRETS_MAX) {
		dev_reply_error(c, 400, "too many connections");
		return;
	}
	if (dev_db_config_new(old, c->body, &cfg, err, sizeof(err)) < 0) {
		dev_reply_error(c, 400, err);
		return;
	}
	/* As Vault: with verify_connection (the default) a connection is tried now. */
	if (dev_pg_configured(cfg) && json_is_true(json_object_get(cfg, "verify_connection"))) {
		struct dev_pg *pg = NULL;

		if (dev_pg_open(cfg, &pg, err, sizeof(err)) < 0) {
			json_decref(cfg);
			dev_reply_errorf(c, 400, "error creating database object: error verifying connection: %s",
			    err);
			return;
		}
		dev_pg_close(pg);
	}
	url = json_string_value(json_object_get(json_object_get(cfg, "connection_details"),
	    "connection_url"));
	/* As Vault: a password in the URL is stored, with a warning. */
	if (url_password_span(url, &from, &to)) {
		dev_reply_data(c, NULL);
		json_object_set_new(c->reply, "warnings", json_pack("[s]", DB_WARN_URL_PASSWORD));
	} else {
		dev_reply_empty(c);
	}
	json_object_set_new(configs, name, cfg);
}

static void
db_config(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *configs = json_object_get(m->state, "config"), *cfg;

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
		if (cfg == NULL)
			dev_reply_error(c, 404, NULL);
		else
			dev_reply_data(c, dev_db_config_view(cfg));
		return;
	case DEV_OP_DELETE:
		json_object_del(configs, name);
		dev_reply_empty(c);
		return;
	case DEV_OP_WRITE:
		db_config_write(c, configs, name, cfg);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

/* A password like Vault's default policy makes: 20 characters with a lower, an upper, a
 * digit and a dash (not first or last). The dash goes in before the check, so that it
 * cannot replace the only character of a class. */
static void
db_password(char out[DB_RANDOM_LEN + 1])
{
	do {
		dev_random_alnum(out, DB_RANDOM_LEN);
		out[randombytes_uniform(DB_RANDOM_LEN - 2) + 1] = '-';
	} while (strpbrk(out, "abcdefghijklmnopqrstuvwxyz") == NULL ||
		 strpbrk(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == NULL ||
		 strpbrk(out, "0123456789") == NULL);
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

/* "v-token-<role>-<random>-<unix time>", cut at DB_USER_MAX; the role's characters outside
 * [A-Za-z0-9_-] become '_', so the name is safe raw inside a quoted identifier or literal,
 * where the statements put it. */
static void
db_username(const char *role, int64_t now_ms, char out[DB_USER_MAX + 1])
{
	char rnd[DB_RANDOM_LEN + 1], safe[DB_USER_ROLE_MAX + 1], full[DB_USER_ROLE_MAX + 64];
	size_t i;

	for (i = 0; role[i] != '\0' && i < DB_USER_ROLE_MAX; i++)
		safe[i] = isalnum((unsigned char)role[i]) || role[i] == '-' || role[i] == '_' ? role[i] : '_';
	safe[i] = '\0';
	dev_random_alnum(rnd, DB_RANDOM_LEN);
	snprintf(full, sizeof(full), "v-token-%s-%s-%lld", safe, rnd, (long long)(now_ms / 1000));
	snprintf(out, DB_USER_MAX + 1, "%.*s", DB_USER_MAX, full);
}

/* The config's allowed_roles (stored as a list) holds name or "*". */
static bool
role_allowed(const json_t *cfg, const char *name)
{
	const json_t *allowed = json_object_get(cfg, "allowed_roles");

	return dev_strlist_has(allowed, "*") || dev_strlist_has(allowed, name);
}

/* Vault's {{expiration}}: "2006-01-02 15:04:05-0700", in UTC. */
static void
expiration_str(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%d %H:%M:%S+0000", &tm);
}

/* Connects with cfg and runs statements with the user's variables. 0, or -errno with err
 * set (no password in it). */
static int
db_run(const json_t *cfg, const json_t *statements, const char *user, const char *pass,
       int64_t expire_ms, char err[DB_ERROR_MAX])
{
	struct dev_pg *pg = NULL;
	char exp[32];
	int r;

	expiration_str(expire_ms, exp);
	r = dev_pg_open(cfg, &pg, err, DB_ERROR_MAX);
	if (r == 0)
		r = dev_pg_run(pg, statements, (const char *[]){ "name", user, "username", user,
		    "password", pass != NULL ? pass : "", "expiration", exp, NULL }, err, DB_ERROR_MAX);
	dev_pg_close(pg);
	return r;
}

/* Runs the role's creation_statements for a new user (Vault: NewUser). */
static int
db_create_user(struct dev_call *c, const json_t *cfg, const json_t *role, const char *user,
	       const char *pass, int64_t expire_ms)
{
	const json_t *stmts = json_object_get(role, "creation_statements");
	char err[DB_ERROR_MAX];
	int r;

	if (json_array_size(stmts) == 0) {
		dev_reply_error(c, 500, "empty creation statements");
		return -EINVAL;
	}
	r = db_run(cfg, stmts, user, pass, expire_ms, err);
	if (r < 0)
		dev_reply_errorf(c, 502, "error creating the database user: %s", err);
	return r;
}

/* The config and role of a creds lease of mount m, when its users are real. */
static bool
lease_db(const struct dev_mount *m, const struct dev_lease *l, const json_t **ret_cfg,
	 const json_t **ret_role, const char **ret_user)
{
	const char *user = json_string_value(json_object_get(l->data, "username"));
	const char *db = json_string_value(json_object_get(l->data, "db_name"));
	const char *role = json_string_value(json_object_get(l->data, "role"));
	const json_t *cfg;

	if (user == NULL || db == NULL || role == NULL)
		return false;
	cfg = json_object_get(json_object_get(m->state, "config"), db);
	if (cfg == NULL || !dev_pg_configured(cfg))
		return false;
	*ret_cfg = cfg;
	/* A role deleted since: Vault's default statements. */
	*ret_role = json_object_get(json_object_get(m->state, "roles"), role);
	*ret_user = user;
	return true;
}

int
dev_db_lease_renew(struct dev_call *c, struct dev_mount *m, struct dev_lease *l, int64_t expire_ms)
{
	const json_t *cfg, *role, *stmts;
	char err[DB_ERROR_MAX];
	const char *user;
	json_t *def = NULL;
	int r;

	if (!lease_db(m, l, &cfg, &role, &user))
		return 0;
	stmts = json_object_get(role, "renew_statements");
	if (json_array_size(stmts) == 0)
		stmts = def = json_pack("[s]", DB_DEFAULT_RENEW);
	r = db_run(cfg, stmts, user, NULL, expire_ms, err);
	json_decref(def);
	if (r < 0)
		dev_reply_errorf(c, 502, "error renewing the database user: %s", err);
	return r;
}

static void
db_creds(struct dev_call *c, struct dev_mount *m, const char *name)
{
	json_t *role = json_object_get(json_object_get(m->state, "roles"), name), *cfg;
	char user[DB_USER_MAX + 1], pass[DB_RANDOM_LEN + 1];
	char uuid[40], lease_id[DEV_NAME_MAX + 64];
	const char *db;
	int64_t def, max;
	struct dev_lease *l;
	int n;

	if (c->op != DEV_OP_READ) {
		dev_reply_bad_method(c);
		return;
	}
	if (role == NULL || !name_ok(name)) {
		dev_reply_errorf(c, 400, "unknown role: %.128s", name);
		return;
	}
	role_limits(m, role, &def, &max);
	db = json_string_value(json_object_get(role, "db_name"));
	cfg = json_object_get(json_object_get(m->state, "config"), db != NULL ? db : "");
	if (cfg != NULL && dev_pg_configured(cfg) && !role_allowed(cfg, name)) {
		dev_reply_errorf(c, 400, "\"%.128s\" is not an allowed role", name);
		return;
	}
	db_username(name, c->now_ms, user);
	db_password(pass);
	dev_random_uuid(uuid);
	n = snprintf(lease_id, sizeof(lease_id), "%screds/%s/%s", m->path, name, uuid);
	/* Checked before a database user is made, so that none is left without a lease. */
	if (n < 0 || (size_t)n >= sizeof(l->id)) {
		dev_reply_error(c, 400, "role name too long");
		goto out;
	}
	if (dev_lease_count_full(c->srv)) {
		dev_reply_error(c, 429, "lease count quota exceeded");
		goto out;
	}
	if (cfg != NULL && dev_pg_configured(cfg) &&
	    db_create_user(c, cfg, role, user, pass, c->now_ms + def * 1000) < 0)
		goto out;
	l = dev_lease_new(c->srv, lease_id, c->token != NULL ? c->token->id : "", c->now_ms, def,
	    max, true);
	if (l == NULL) {
		dev_reply_error(c, 429, "lease count quota exceeded");
		goto out;
	}
	l->data = json_pack("{s:s, s:s, s:s}", "username", user, "role", name, "db_name",
	    db != NULL ? db : "");
	dev_reply_data(c, json_pack("{s:s, s:s}", "username", user, "password", pass));
	json_object_set_new(c->reply, "lease_id", json_string(l->id));
	json_object_set_new(c->reply, "renewable", json_true());
	json_object_set_new(c->reply, "lease_duration", json_integer(def));
out:
	sodium_memzero(pass, sizeof(pass));
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
	const json_t *cfg, *role, *stmts;
	struct dev_pg *pg = NULL;
	char err[DB_ERROR_MAX];
	const char *user;
	int r;

	(void)s;
	if (!lease_db(m, l, &cfg, &role, &user))
		return;
	stmts = json_object_get(role, "revocation_statements");
	if (json_array_size(stmts) > 0) {
		r = db_run(cfg, stmts, user, NULL, l->expire_ms, err);
	} else {
		r = dev_pg_open(cfg, &pg, err, sizeof(err));
		if (r == 0)
			r = dev_pg_drop_user(pg, user, err, sizeof(err));
		dev_pg_close(pg);
	}
	/* The lease ends all the same; Vault would retry, here the log says so. */
	if (r < 0)
		lk_log(LK_WARN, "database user not revoked", LK_STR("lease_id", l->id),
		    LK_STR("username", user), LK_STR("error", err));
}
