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
/* Vault's connectionReadHandler: a connection_url of the form scheme://user:pass@host...
 * reads back with every copy of pass replaced by "*****". */
#define DB_URL_MASK "*****"
static void
mask_url_password(json_t *cfg)
{
	const char *url = json_string_value(json_object_get(cfg, "connection_url"));
	const char *auth, *end, *at = NULL, *colon = NULL;
	char *pass, *out, *hit;
	size_t plen, n = 0, cap;

	if (url == NULL || (auth = strstr(url, "://")) == NULL)
		return;
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;             /* the last '@' of the authority ends the userinfo */
	if (at == NULL)
		return;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL || colon + 1 == at)
		return;
	plen = (size_t)(at - colon - 1);
	pass = strndup(colon + 1, plen);
	cap = strlen(url) / plen * strlen(DB_URL_MASK) + strlen(url) + 1;
	out = malloc(cap);
	if (pass == NULL || out == NULL) {
		json_object_del(cfg, "connection_url");  /* never the password, even so */
		goto out;
	}
	for (const char *p = url; (hit = strstr(p, pass)) != NULL; p = hit + plen) {
		memcpy(out + n, p, (size_t)(hit - p));
		n += (size_t)(hit - p);
		memcpy(out + n, DB_URL_MASK, strlen(DB_URL_MASK));
		n += strlen(DB_URL_MASK);
		url = hit + plen;
	}
	strcpy(out + n, url);
	if (json_object_set_new(cfg, "connection_url", json_string(out)) < 0)
		json_object_del(cfg, "connection_url");
out:
	if (pass != NULL)
		sodium_memzero(pass, plen);
	free(pass);
	free(out);
}

/* Vault's PostgreSQL defaults for an empty renew_statements. */
static const char DB_DEFAULT_RENEW[] = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';";

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
		/* As Vault: the password is never read back, neither its own member nor the
		 * one a connection_url may carry. */
		json_object_del(copy, "password");
		mask_url_password(copy);
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
		/* As Vault: with verify_connection (the default) a connection is tried now. */
		if (dev_pg_configured(copy) &&
		    !json_is_false(json_object_get(copy, "verify_connection"))) {
			struct dev_pg *pg = NULL;
			char err[DB_ERROR_MAX];

			if (dev_pg_open(copy, &pg, err, sizeof(err)) < 0) {
				json_decref(copy);
				dev_reply_errorf(c, 400, "error creating database object: error verifying connection: %s",
				    err);
				return;
			}
			dev_pg_close(pg);
		}
		json_object_set_new(configs, name, copy);
		dev_reply_empty(c);
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

/* The config's allowed_roles (a list or a comma-separated string) holds name or "*". */
static bool
role_allowed(const json_t *cfg, const char *name)
{
	json_t *allowed = dev_json_strlist(json_object_get(cfg, "allowed_roles"), false);
	bool ok = allowed != NULL && (dev_strlist_has(allowed, "*") || dev_strlist_has(allowed, name));

	json_decref(allowed);
	return ok;
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
