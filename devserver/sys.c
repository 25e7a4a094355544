/* sys.c — the sys/ backend: health, seal, mounts, auth methods, policies, leases; and the
 * server's initial state. */
#include "devserver/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#ifndef LK_VERSION
#define LK_VERSION "0.1.0"
#endif
#define DEV_VERSION LK_VERSION "+latchkey-dev"

/* The built-in default policy: what every token may do with itself and its leases. */
static const char DEFAULT_POLICY[] =
    "# Every token may look itself up, renew and revoke itself, and renew, look up\n"
    "# and revoke leases (a non-root token only its own).\n"
    "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\n"
    "path \"auth/token/renew-self\" { capabilities = [\"update\"] }\n"
    "path \"auth/token/revoke-self\" { capabilities = [\"update\"] }\n"
    "path \"sys/capabilities-self\" { capabilities = [\"update\"] }\n"
    "path \"sys/leases/lookup\" { capabilities = [\"update\"] }\n"
    "path \"sys/leases/renew\" { capabilities = [\"update\"] }\n"
    "path \"sys/leases/renew/*\" { capabilities = [\"update\"] }\n"
    "path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n"
    "path \"sys/leases/revoke/*\" { capabilities = [\"update\"] }\n"
    "path \"sys/renew\" { capabilities = [\"update\"] }\n"
    "path \"sys/renew/*\" { capabilities = [\"update\"] }\n";

/* ---- mounts ---- */

struct dev_mount *
dev_mount_new(const char *path, enum dev_mount_type type)
{
	struct dev_mount *m = calloc(1, sizeof(*m));
	char rnd[16];

	if (m == NULL)
		return NULL;
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->type = type;
	dev_random_alnum(rnd, 8);
	snprintf(m->accessor, sizeof(m->accessor), "%s_%s",
	    type == DEV_MOUNT_KV1 || type == DEV_MOUNT_KV2 ? "kv" :
	    type == DEV_MOUNT_DATABASE ? "database" : type == DEV_MOUNT_SYSTEM ? "system" :
	    type == DEV_AUTH_TOKEN ? "auth_token" : type == DEV_AUTH_APPROLE ? "auth_approle" :
	    "auth_kubernetes", rnd);
	dev_random_uuid(m->uuid);
	switch (type) {
	case DEV_MOUNT_KV2:
		m->state = json_pack("{s:{}, s:{s:i, s:b, s:s}}", "secrets", "config",
		    "max_versions", 0, "cas_required", 0, "delete_version_after", "0s");
		break;
	case DEV_MOUNT_DATABASE:
		m->state = json_pack("{s:{}, s:{}}", "roles", "config");
		break;
	case DEV_AUTH_KUBERNETES:
		m->state = json_pack("{s:n, s:{}}", "config", "roles");
		break;
	default:
		m->state = json_pack("{s:{}, s:{}}", "secrets", "roles");
	}
	if (m->state == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
dev_mount_free(struct dev_mount *m)
{
	if (m == NULL)
		return;
	json_decref(m->state);
	free(m);
}

struct dev_mount *
dev_mount_lookup(struct dev_mount *const *list, size_t n, const char *path)
{
	struct dev_mount *best = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(list[i]->path);

		/* "secret/" owns "secret/x" and "secret" itself. */
		if (strncmp(path, list[i]->path, l) == 0 ||
		    (strncmp(path, list[i]->path, l - 1) == 0 && path[l - 1] == '\0')) {
			if (best == NULL || l > strlen(best->path))
				best = list[i];
		}
	}
	return best;
}

const char *
dev_mount_rest(const struct dev_mount *m, const char *path)
{
	size_t l = strlen(m->path), n = strlen(path);

	/* Never past path's NUL: what follows it in the request buffer is the query. */
	return path + (n < l ? n : l);
}

static const char *
mount_type_name(enum dev_mount_type t)
{
	switch (t) {
	case DEV_MOUNT_KV1:
	case DEV_MOUNT_KV2:
		return "kv";
	case DEV_MOUNT_DATABASE:
		return "database";
	case DEV_MOUNT_SYSTEM:
		return "system";
	case DEV_AUTH_TOKEN:
		return "token";
	case DEV_AUTH_APPROLE:
		return "approle";
	case DEV_AUTH_KUBERNETES:
		return "kubernetes";
	}
	return "unknown";
}

static json_t *
mount_json(const struct dev_mount *m)
{
	json_t *options = m->type == DEV_MOUNT_KV1 ? json_pack("{s:s}", "version", "1") :
	    m->type == DEV_MOUNT_KV2 ? json_pack("{s:s}", "version", "2") : json_null();
	json_t *config = json_pack("{s:I, s:b, s:I}", "default_lease_ttl",
	    (json_int_t)m->default_ttl_s, "force_no_cache", 0, "max_lease_ttl",
	    (json_int_t)m->max_ttl_s);

	if (m->type == DEV_AUTH_TOKEN)
		json_object_set_new(config, "token_type", json_string("default-service"));
	return json_pack("{s:s, s:o, s:s, s:b, s:b, s:o, s:s, s:s, s:b, s:s, s:s}",
	    "accessor", m->accessor, "config", config, "description", m->description,
	    "external_entropy_access", 0, "local", 0, "options", options, "plugin_version", "",
	    "running_plugin_version", "builtin", "seal_wrap", 0, "type", mount_type_name(m->type),
	    "uuid", m->uuid);
}

/* Normalises a mount path into out with one trailing slash; false when invalid. */
static bool
mount_path(const char *in, char *out, size_t outlen)
{
	size_t n;

	while (*in == '/')
		in++;
	n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	if (n == 0 || n + 2 > outlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)in[i]) || strchr("-_./", in[i]) != NULL))
			return false;
	snprintf(out, outlen, "%.*s/", (int)n, in);
	return strstr(out, "//") == NULL && strstr(out, "..") == NULL;
}

static bool
overlaps(struct dev_mount *const *list, size_t n, const char *path, const struct dev_mount **ret)
{
	for (size_t i = 0; i < n; i++) {
		size_t a = strlen(list[i]->path), b = strlen(path);
		if (strncmp(list[i]->path, path, a < b ? a : b) == 0) {
			*ret = list[i];
			return true;
		}
	}
	return false;
}

static void
list_mounts(struct dev_call *c, struct dev_mount *const *list, size_t n)
{
	json_t *data = json_object(), *env;
	const char *key;
	json_t *v;

	for (size_t i = 0; i < n; i++)
		json_object_set_new(data, list[i]->path, mount_json(list[i]));
	env = dev_envelope(json_deep_copy(data));
	/* Vault also repeats every mount at the top level, for older clients. */
	json_object_foreach(data, key, v)
		json_object_set(env, key, v);
	json_decref(data);
	c->status = 200;
	json_decref(c->reply);
	c->reply = env;
}

static void
remove_mount(struct dev_mount **list, size_t *n, size_t i)
{
	dev_mount_free(list[i]);
	memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof(list[0]));
	(*n)--;
}

static void
revoke_prefix(struct dev_server *s, const char *prefix, int64_t now_ms)
{
	for (struct dev_lease *l = s->leases; l != NULL; l = l->next) {
		if (l->state == DEV_LEASE_ACTIVE && strncmp(l->id, prefix, strlen(prefix)) == 0) {
			l->state = DEV_LEASE_REVOKED;
			l->end_ms = now_ms;
		}
	}
}

static void
sys_mounts(struct dev_call *c, const char *rest, bool auth)
{
	struct dev_server *s = c->srv;
	struct dev_mount **list = auth ? s->auths : s->mounts;
	size_t *n = auth ? &s->nauths : &s->nmounts;
	const struct dev_mount *other;
	enum dev_mount_type type;
	char path[DEV_NAME_MAX];
	const char *tname;
	struct dev_mount *m;
	json_t *options, *config;
	int64_t ttl;

	if (*rest == '\0') {
		if (c->op != DEV_OP_READ) {
			dev_reply_bad_method(c);
			return;
		}
		list_mounts(c, list, *n);
		return;
	}
	if (!mount_path(rest, path, sizeof(path))) {
		dev_reply_errorf(c, 400, "invalid mount path \"%.128s\"", rest);
		return;
	}
	m = NULL;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i]->path, path) == 0)
			m = list[i];
	if (c->op == DEV_OP_READ) {
		if (m == NULL) {
			dev_reply_errorf(c, 400, "cannot fetch sysview for path \"%.128s\"", path);
			return;
		}
		dev_reply_data(c, mount_json(m));
		return;
	}
	if (c->op == DEV_OP_DELETE) {
		if (m == NULL) {
			dev_reply_empty(c);
			return;
		}
		if (m->type == DEV_MOUNT_SYSTEM || m->type == DEV_AUTH_TOKEN) {
			dev_reply_errorf(c, 400, "cannot unmount \"%s\"", path);
			return;
		}
		for (size_t i = 0; i < *n; i++) {
			if (list[i] == m) {
				char prefix[DEV_NAME_MAX + 8];
				snprintf(prefix, sizeof(prefix), "%s%s", auth ? "auth/" : "", path);
				revoke_prefix(s, prefix, c->now_ms);
				remove_mount(list, n, i);
				break;
			}
		}
		dev_reply_empty(c);
		return;
	}
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	tname = dev_body_str(c, "type");
	if (tname == NULL) {
		dev_reply_error(c, 400, "backend type must be specified as a string");
		return;
	}
	options = json_object_get(c->body, "options");
	config = json_object_get(c->body, "config");
	if (auth) {
		if (strcmp(tname, "approle") == 0)
			type = DEV_AUTH_APPROLE;
		else if (strcmp(tname, "kubernetes") == 0)
			type = DEV_AUTH_KUBERNETES;
		else if (strcmp(tname, "token") == 0)
			type = DEV_AUTH_TOKEN;
		else {
			dev_reply_errorf(c, 400, "plugin not found in the catalog: %.64s", tname);
			return;
		}
	} else {
		const json_t *ver = json_object_get(options, "version");
		const char *vs = json_is_string(ver) ? json_string_value(ver) : NULL;

		if (strcmp(tname, "kv") == 0)
			type = (vs != NULL && strcmp(vs, "2") == 0) ||
			    (json_is_integer(ver) && json_integer_value(ver) == 2) ?
			    DEV_MOUNT_KV2 : DEV_MOUNT_KV1;
		else if (strcmp(tname, "kv-v2") == 0)
			type = DEV_MOUNT_KV2;
		else if (strcmp(tname, "kv-v1") == 0)
			type = DEV_MOUNT_KV1;
		else if (strcmp(tname, "database") == 0)
			type = DEV_MOUNT_DATABASE;
		else {
			dev_reply_errorf(c, 400, "plugin not found in the catalog: %.64s", tname);
			return;
		}
		if (strncmp(path, "sys/", 4) == 0 || strncmp(path, "auth/", 5) == 0 ||
		    strncmp(path, "cubbyhole/", 10) == 0 || strncmp(path, "identity/", 9) == 0) {
			dev_reply_errorf(c, 400, "cannot mount under a protected path \"%s\"", path);
			return;
		}
	}
	if (m != NULL && auth && m->type == type) {
		/* approle/ and kubernetes/ are enabled from the start; enabling them again
		 * is accepted so that setup scripts written for a plain Vault work. */
		dev_reply_empty(c);
		return;
	}
	if (overlaps(list, *n, path, &other)) {
		dev_reply_errorf(c, 400, "path is already in use at %s", other->path);
		return;
	}
	if (*n >= DEV_MOUNTS_MAX) {
		dev_reply_error(c, 400, "too many mounts");
		return;
	}
	m = dev_mount_new(path, type);
	if (m == NULL) {
		dev_reply_error(c, 500, "out of memory");
		return;
	}
	if (dev_body_str(c, "description") != NULL)
		snprintf(m->description, sizeof(m->description), "%s", dev_body_str(c, "description"));
	ttl = 0;
	if (dev_json_ttl(json_object_get(config, "default_lease_ttl"), &ttl) == 0)
		m->default_ttl_s = ttl;
	ttl = 0;
	if (dev_json_ttl(json_object_get(config, "max_lease_ttl"), &ttl) == 0)
		m->max_ttl_s = ttl;
	list[(*n)++] = m;
	dev_reply_empty(c);
}

/* ---- health and seal ---- */

static unsigned
query_code(struct dev_call *c, const char *key, unsigned def)
{
	const char *v = lk_http_query(c->req, key);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < 100 || n > 599)
		return def;
	return (unsigned)n;
}

static void
sys_health(struct dev_call *c)
{
	struct dev_server *s = c->srv;
	bool sealed = s->faults.sealed;
	json_t *h;

	if (c->op != DEV_OP_READ) {
		dev_reply_bad_method(c);
		return;
	}
	h = json_pack("{s:b, s:b, s:b, s:b, s:s, s:s, s:I, s:s}", "initialized", 1, "sealed", sealed,
	    "standby", 0, "performance_standby", 0, "replication_performance_mode", "disabled",
	    "replication_dr_mode", "disabled", "server_time_utc", (json_int_t)(c->now_ms / 1000),
	    "version", DEV_VERSION);
	if (!sealed) {
		json_object_set_new(h, "cluster_name", json_string(s->cluster_name));
		json_object_set_new(h, "cluster_id", json_string(s->cluster_id));
	}
	json_decref(c->reply);
	c->reply = h;
	c->status = sealed ? query_code(c, "sealedcode", 503) : query_code(c, "activecode", 200);
}

static json_t *
seal_status(const struct dev_server *s)
{
	return json_pack("{s:s, s:b, s:b, s:i, s:i, s:i, s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:s}",
	    "type", "shamir", "initialized", 1, "sealed", s->faults.sealed, "t", 1, "n", 1,
	    "progress", 0, "nonce", "", "version", DEV_VERSION, "build_date", "", "migration", 0,
	    "cluster_name", s->cluster_name, "cluster_id", s->cluster_id, "recovery_seal", 0,
	    "storage_type", "inmem");
}

static void
sys_unseal(struct dev_call *c)
{
	struct dev_server *s = c->srv;
	const char *key = dev_body_str(c, "key");

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (!json_is_true(json_object_get(c->body, "reset"))) {
		if (key == NULL) {
			dev_reply_error(c, 400, "'key' must be specified in request body as JSON, or 'reset' set to true");
			return;
		}
		if (strcmp(key, s->unseal_key) != 0) {
			dev_reply_error(c, 400, "Unseal failed, invalid key");
			return;
		}
		s->faults.sealed = false;
	}
	json_decref(c->reply);
	c->reply = seal_status(s);
	c->status = 200;
}

/* ---- policies ---- */

static struct dev_policy_entry *
policy_find(struct dev_server *s, const char *name)
{
	for (size_t i = 0; i < s->npolicies; i++)
		if (strcmp(s->policies[i].name, name) == 0)
			return &s->policies[i];
	return NULL;
}

int
dev_policy_set(struct dev_server *s, const char *name, const char *text, struct lk_error *err)
{
	struct dev_policy_entry *e = policy_find(s, name);
	struct dev_policy *parsed;
	char *t;
	int r;

	r = dev_policy_parse(text, strlen(text), &parsed, err);
	if (r < 0)
		return r;
	t = strdup(text);
	if (t == NULL || (e == NULL && s->npolicies >= DEV_POLICIES_MAX)) {
		free(t);
		dev_policy_free(parsed);
		return lk_error_set(err, t == NULL ? -ENOMEM : -E2BIG, "too many policies");
	}
	if (e == NULL) {
		e = &s->policies[s->npolicies];
		e->name = strdup(name);
		if (e->name == NULL) {
			free(t);
			dev_policy_free(parsed);
			return lk_error_set(err, -ENOMEM, "out of memory");
		}
		s->npolicies++;
	}
	free(e->text);
	dev_policy_free(e->parsed);
	e->text = t;
	e->parsed = parsed;
	return 0;
}

unsigned
dev_token_caps(struct dev_server *s, const struct dev_token *t, const char *path)
{
	const struct dev_policy *set[DEV_TOKEN_POLICIES_MAX + 1];
	size_t n = 0, i;
	json_t *p;

	if (t->root || dev_strlist_has(t->policies, "root"))
		return ~0u & ~(unsigned)DEV_CAP_DENY;
	json_array_foreach(t->policies, i, p) {
		struct dev_policy_entry *e = policy_find(s, json_string_value(p));
		if (e != NULL && n < sizeof(set) / sizeof(set[0]))
			set[n++] = e->parsed;
	}
	return dev_policy_caps(set, n, path);
}

static void
sys_policy(struct dev_call *c, const char *name, bool acl)
{
	struct dev_server *s = c->srv;
	struct dev_policy_entry *e;
	struct lk_error err = { 0 };
	char lower[DEV_NAME_MAX];
	const char *text;

	if (*name == '\0') {
		json_t *keys = json_array();

		if (c->op != DEV_OP_LIST && c->op != DEV_OP_READ) {
			dev_reply_bad_method(c);
			return;
		}
		for (size_t i = 0; i < s->npolicies; i++)
			json_array_append_new(keys, json_string(s->policies[i].name));
		json_array_append_new(keys, json_string("root"));
		json_t *sorted = dev_json_strlist(keys, true);
		json_decref(keys);
		if (acl)
			dev_reply_data(c, json_pack("{s:o}", "keys", sorted));
		else
			dev_reply_data(c, json_pack("{s:O, s:o}", "keys", sorted, "policies", sorted));
		return;
	}
	if (strlen(name) >= sizeof(lower)) {
		dev_reply_error(c, 400, "policy name too long");
		return;
	}
	for (size_t i = 0; ; i++) {
		lower[i] = (char)tolower((unsigned char)name[i]);
		if (name[i] == '\0')
			break;
	}
	e = policy_find(s, lower);
	switch (c->op) {
	case DEV_OP_READ:
		if (strcmp(lower, "root") == 0) {
			dev_reply_data(c, json_pack("{s:s, s:s}", "name", "root", acl ? "policy" : "rules", ""));
			return;
		}
		if (e == NULL) {
			dev_reply_error(c, 404, NULL);
			return;
		}
		dev_reply_data(c, json_pack("{s:s, s:s}", "name", e->name, acl ? "policy" : "rules", e->text));
		return;
	case DEV_OP_WRITE:
		if (strcmp(lower, "root") == 0) {
			dev_reply_error(c, 400, "cannot update \"root\" policy");
			return;
		}
		text = dev_body_str(c, "policy");
		if (text == NULL)
			text = dev_body_str(c, "rules");
		if (text == NULL) {
			dev_reply_error(c, 400, "'policy' parameter not supplied or empty");
			return;
		}
		if (dev_policy_set(s, lower, text, &err) < 0) {
			dev_reply_errorf(c, 400, "failed to parse policy: %s", err.msg);
			return;
		}
		dev_reply_empty(c);
		return;
	case DEV_OP_DELETE:
		if (strcmp(lower, "root") == 0 || strcmp(lower, "default") == 0) {
			dev_reply_errorf(c, 400, "cannot delete \"%s\" policy", lower);
			return;
		}
		if (e != NULL) {
			free(e->name);
			free(e->text);
			dev_policy_free(e->parsed);
			size_t i = (size_t)(e - s->policies);
			memmove(&s->policies[i], &s->policies[i + 1],
			    (s->npolicies - i - 1) * sizeof(s->policies[0]));
			s->npolicies--;
		}
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

/* ---- leases ---- */

static bool
may_touch_lease(const struct dev_call *c, const struct dev_lease *l)
{
	if (c->token == NULL)
		return false;
	if (c->token->root || dev_strlist_has(c->token->policies, "root"))
		return true;
	return strcmp(l->owner, c->token->id) == 0;
}

static const char *
lease_id_arg(struct dev_call *c, const char *suffix)
{
	const char *id = dev_body_str(c, "lease_id");

	if (id == NULL || *id == '\0')
		id = *suffix == '/' ? suffix + 1 : NULL;
	return id != NULL && *id != '\0' && strlen(id) < DEV_NAME_MAX + DEV_ID_LEN ? id : NULL;
}

static void
lease_renew(struct dev_call *c, const char *suffix)
{
	const char *id = lease_id_arg(c, suffix);
	struct dev_lease *l;
	struct dev_mount *m;
	int64_t increment = 0, ttl, def, max;
	char warning[256];

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (id == NULL) {
		dev_reply_error(c, 400, "lease_id must be specified");
		return;
	}
	if (dev_json_ttl(json_object_get(c->body, "increment"), &increment) < 0) {
		dev_reply_error(c, 400, "invalid increment");
		return;
	}
	l = dev_lease_find(c->srv, id);
	if (l == NULL || l->state == DEV_LEASE_REVOKED) {
		dev_reply_error(c, 400, "invalid lease ID");
		return;
	}
	if (!may_touch_lease(c, l)) {
		dev_reply_error(c, 403, "1 error occurred:\n\t* permission denied\n\n");
		return;
	}
	if (l->state == DEV_LEASE_EXPIRED) {
		dev_reply_error(c, 400, "lease expired");
		return;
	}
	if (!l->renewable) {
		dev_reply_error(c, 400, "lease is not renewable");
		return;
	}
	def = l->default_ttl_s;
	max = l->max_ttl_s;
	m = dev_mount_lookup(c->srv->mounts, c->srv->nmounts, l->id);
	if (m != NULL && m->type == DEV_MOUNT_DATABASE)
		(void)dev_db_lease_limits(m, l->id, &def, &max);
	if (dev_calculate_ttl(c->now_ms, l->issue_ms, increment, def, max, &ttl, warning,
		sizeof(warning)) < 0) {
		dev_reply_error(c, 400, "past the max TTL, cannot renew");
		return;
	}
	l->expire_ms = c->now_ms + ttl * 1000;
	l->last_renew_ms = c->now_ms;
	dev_reply_data(c, NULL);
	json_object_set_new(c->reply, "lease_id", json_string(l->id));
	json_object_set_new(c->reply, "renewable", json_true());
	json_object_set_new(c->reply, "lease_duration", json_integer(ttl));
	if (warning[0] != '\0')
		json_object_set_new(c->reply, "warnings", json_pack("[s]", warning));
}

static void
lease_revoke(struct dev_call *c, const char *suffix)
{
	const char *id = lease_id_arg(c, suffix);
	struct dev_lease *l;

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (id == NULL) {
		dev_reply_error(c, 400, "lease_id must be specified");
		return;
	}
	l = dev_lease_find(c->srv, id);
	if (l != NULL && !may_touch_lease(c, l)) {
		dev_reply_error(c, 403, "1 error occurred:\n\t* permission denied\n\n");
		return;
	}
	if (l != NULL && l->state == DEV_LEASE_ACTIVE) {
		l->state = DEV_LEASE_REVOKED;
		l->end_ms = c->now_ms;
	}
	dev_reply_empty(c);
}

static void
lease_lookup(struct dev_call *c)
{
	const char *id = dev_body_str(c, "lease_id");
	struct dev_lease *l;
	char issue[40], expire[40], renew[40];

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (id == NULL || *id == '\0') {
		dev_reply_error(c, 400, "missing lease ID");
		return;
	}
	l = dev_lease_find(c->srv, id);
	if (l == NULL || l->state != DEV_LEASE_ACTIVE) {
		dev_reply_error(c, 400, "invalid lease ID");
		return;
	}
	if (!may_touch_lease(c, l)) {
		dev_reply_error(c, 403, "1 error occurred:\n\t* permission denied\n\n");
		return;
	}
	dev_reply_data(c, json_pack("{s:s, s:s, s:s, s:o, s:b, s:I}", "id", l->id,
	    "issue_time", dev_time_str(l->issue_ms, issue),
	    "expire_time", dev_time_str(l->expire_ms, expire),
	    "last_renewal", l->last_renew_ms != 0 ?
	    json_string(dev_time_str(l->last_renew_ms, renew)) : json_null(),
	    "renewable", l->renewable, "ttl", (json_int_t)((l->expire_ms - c->now_ms) / 1000)));
}

static bool
starts(const char *s, const char *prefix, const char **ret_rest)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) != 0 || (s[n] != '\0' && s[n] != '/'))
		return false;
	*ret_rest = s + n;
	return true;
}

void
dev_sys_handle(struct dev_call *c, const char *rest)
{
	const char *sub;

	if (strcmp(rest, "health") == 0) {
		sys_health(c);
	} else if (strcmp(rest, "seal-status") == 0) {
		if (c->op != DEV_OP_READ)
			dev_reply_bad_method(c);
		else {
			c->status = 200;
			c->reply = seal_status(c->srv);
		}
	} else if (strcmp(rest, "seal") == 0) {
		if (c->op != DEV_OP_WRITE)
			dev_reply_bad_method(c);
		else {
			c->srv->faults.sealed = true;
			dev_reply_empty(c);
		}
	} else if (strcmp(rest, "unseal") == 0) {
		sys_unseal(c);
	} else if (starts(rest, "mounts", &sub)) {
		sys_mounts(c, *sub == '/' ? sub + 1 : sub, false);
	} else if (starts(rest, "auth", &sub)) {
		sys_mounts(c, *sub == '/' ? sub + 1 : sub, true);
	} else if (starts(rest, "policies/acl", &sub)) {
		sys_policy(c, *sub == '/' ? sub + 1 : sub, true);
	} else if (starts(rest, "policy", &sub)) {
		sys_policy(c, *sub == '/' ? sub + 1 : sub, false);
	} else if (starts(rest, "leases/renew", &sub) || starts(rest, "renew", &sub)) {
		lease_renew(c, sub);
	} else if (starts(rest, "leases/revoke-prefix", &sub)) {
		if (c->op != DEV_OP_WRITE || *sub != '/') {
			dev_reply_bad_method(c);
			return;
		}
		revoke_prefix(c->srv, sub + 1, c->now_ms);
		dev_reply_empty(c);
	} else if (starts(rest, "leases/revoke", &sub) || starts(rest, "revoke", &sub)) {
		lease_revoke(c, sub);
	} else if (strcmp(rest, "leases/lookup") == 0) {
		lease_lookup(c);
	} else {
		dev_reply_no_route(c);
	}
}

/* ---- the initial state ---- */

int
dev_server_init(struct dev_server *s, const char *root_token)
{
	static const struct { const char *path; enum dev_mount_type type; const char *desc; } mounts[] = {
		{ "secret/", DEV_MOUNT_KV2, "key/value secret storage" },
		{ "database/", DEV_MOUNT_DATABASE, "dynamic database credentials" },
		{ "sys/", DEV_MOUNT_SYSTEM, "system endpoints used for control, policy and debugging" },
	}, auths[] = {
		{ "token/", DEV_AUTH_TOKEN, "token based credentials" },
		{ "approle/", DEV_AUTH_APPROLE, "" },
		{ "kubernetes/", DEV_AUTH_KUBERNETES, "" },
	};
	struct dev_token *root;
	char rnd[40];

	pthread_mutex_init(&s->lock, NULL);
	s->faults.error_status = 500;
	s->faults.retry_after_s = 1;
	snprintf(s->root_token, sizeof(s->root_token), "%s", root_token);
	dev_random_alnum(rnd, 8);
	snprintf(s->cluster_name, sizeof(s->cluster_name), "vault-cluster-%s", rnd);
	dev_random_uuid(s->cluster_id);
	dev_random_alnum(s->unseal_key, 43);
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		struct dev_mount *m = dev_mount_new(mounts[i].path, mounts[i].type);
		if (m == NULL)
			return -ENOMEM;
		snprintf(m->description, sizeof(m->description), "%s", mounts[i].desc);
		s->mounts[s->nmounts++] = m;
	}
	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		struct dev_mount *m = dev_mount_new(auths[i].path, auths[i].type);
		if (m == NULL)
			return -ENOMEM;
		snprintf(m->description, sizeof(m->description), "%s", auths[i].desc);
		s->auths[s->nauths++] = m;
	}
	if (dev_policy_set(s, "default", DEFAULT_POLICY, NULL) < 0)
		return -ENOMEM;
	root = dev_token_new(s, lk_now_real_ms(), json_pack("[s]", "root"));
	if (root == NULL)
		return -ENOMEM;
	snprintf(root->id, sizeof(root->id), "%s", root_token);
	snprintf(root->path, sizeof(root->path), "auth/token/root");
	snprintf(root->display_name, sizeof(root->display_name), "root");
	root->root = true;
	root->orphan = true;
	root->renewable = false;
	return 0;
}

void
dev_server_clear(struct dev_server *s)
{
	while (s->tokens != NULL) {
		struct dev_token *t = s->tokens;
		s->tokens = t->next;
		json_decref(t->policies);
		json_decref(t->meta);
		free(t);
	}
	while (s->leases != NULL) {
		struct dev_lease *l = s->leases;
		s->leases = l->next;
		free(l);
	}
	for (size_t i = 0; i < s->nmounts; i++)
		dev_mount_free(s->mounts[i]);
	for (size_t i = 0; i < s->nauths; i++)
		dev_mount_free(s->auths[i]);
	for (size_t i = 0; i < s->npolicies; i++) {
		free(s->policies[i].name);
		free(s->policies[i].text);
		dev_policy_free(s->policies[i].parsed);
	}
	s->nmounts = s->nauths = s->npolicies = 0;
	pthread_mutex_destroy(&s->lock);
}
