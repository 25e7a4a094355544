/* sys_mounts.c — secret engine and auth method mounts: sys/mounts and sys/auth. */
#include "devserver/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The data of a tune read: the mount's TTLs (the system's when 0), as Vault shows them. */
static json_t *
tune_json(const struct dev_mount *m)
{
	json_t *t = json_pack("{s:I, s:I, s:b, s:s}", "default_lease_ttl",
	    (json_int_t)(m->default_ttl_s > 0 ? m->default_ttl_s : DEV_SYSTEM_TTL_S),
	    "max_lease_ttl", (json_int_t)(m->max_ttl_s > 0 ? m->max_ttl_s : DEV_SYSTEM_TTL_S),
	    "force_no_cache", 0, "description", m->description);

	if (m->type == DEV_MOUNT_KV1 || m->type == DEV_MOUNT_KV2)
		json_object_set_new(t, "options", json_pack("{s:s}", "version",
		    m->type == DEV_MOUNT_KV2 ? "2" : "1"));
	if (m->type == DEV_AUTH_TOKEN)
		json_object_set_new(t, "token_type", json_string("default-service"));
	return t;
}

/* sys/mounts/<path>/tune and sys/auth/<path>/tune: read, or change the TTLs and the
 * description. Like sys/mounts itself, the data is repeated at the top level. */
static void
mount_tune(struct dev_call *c, struct dev_mount *m, const char *path)
{
	int64_t def, max;
	const char *key;
	json_t *v;

	if (m == NULL) {
		dev_reply_errorf(c, 400, "cannot fetch sysview for path \"%.128s\"", path);
		return;
	}
	if (c->op == DEV_OP_READ) {
		dev_reply_data(c, tune_json(m));
		json_object_foreach(json_object_get(c->reply, "data"), key, v)
			json_object_set(c->reply, key, v);
		return;
	}
	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	def = m->default_ttl_s;
	max = m->max_ttl_s;
	if (dev_json_ttl(json_object_get(c->body, "default_lease_ttl"), &def) < 0 ||
	    dev_json_ttl(json_object_get(c->body, "max_lease_ttl"), &max) < 0) {
		dev_reply_error(c, 400, "invalid default_lease_ttl or max_lease_ttl");
		return;
	}
	if (max > 0 && def > max) {
		dev_reply_error(c, 400, "backend max lease TTL cannot be less than backend default lease TTL");
		return;
	}
	m->default_ttl_s = def;
	m->max_ttl_s = max;
	if (dev_body_str(c, "description") != NULL)
		snprintf(m->description, sizeof(m->description), "%s", dev_body_str(c, "description"));
	dev_reply_empty(c);
}

void
dev_sys_mounts(struct dev_call *c, const char *rest, bool auth)
{
	struct dev_server *s = c->srv;
	struct dev_mount **list = auth ? s->auths : s->mounts;
	size_t *n = auth ? &s->nauths : &s->nmounts;
	const struct dev_mount *other;
	enum dev_mount_type type;
	char path[DEV_NAME_MAX], base[DEV_NAME_MAX];
	const char *tname;
	struct dev_mount *m;
	json_t *options, *config;
	int64_t ttl;
	bool tune;

	if (*rest == '\0') {
		if (c->op != DEV_OP_READ) {
			dev_reply_bad_method(c);
			return;
		}
		list_mounts(c, list, *n);
		return;
	}
	tune = strlen(rest) > 5 && strcmp(rest + strlen(rest) - 5, "/tune") == 0;
	snprintf(base, sizeof(base), "%.*s", (int)(strlen(rest) - (tune ? 5 : 0)), rest);
	if (!mount_path(base, path, sizeof(path))) {
		dev_reply_errorf(c, 400, "invalid mount path \"%.128s\"", rest);
		return;
	}
	m = NULL;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i]->path, path) == 0)
			m = list[i];
	if (tune) {
		mount_tune(c, m, path);
		return;
	}
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
				dev_lease_revoke_prefix(s, prefix, c->now_ms);
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
