/* kv.c — the KV secrets engine, version 1 (flat) and version 2 (versioned). */
#include "devserver/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- version 1: state.secrets is { path: data } ---- */

static bool
valid_key(const char *path)
{
	return *path != '\0' && strlen(path) < DEV_PATH_MAX;
}

void
dev_kv1_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	json_t *secrets = json_object_get(m->state, "secrets");
	json_t *data;
	int64_t ttl = 0;

	if (*rest == '/')
		rest++;
	switch (c->op) {
	case DEV_OP_LIST:
		if (*rest != '\0' && rest[strlen(rest) - 1] != '/') {
			char prefix[DEV_PATH_MAX + 2];
			snprintf(prefix, sizeof(prefix), "%s/", rest);
			dev_reply_keys(c, dev_list_children(secrets, prefix));
		} else {
			dev_reply_keys(c, dev_list_children(secrets, rest));
		}
		return;
	case DEV_OP_READ:
		data = json_object_get(secrets, rest);
		if (data == NULL) {
			dev_reply_error(c, 404, NULL);
			return;
		}
		dev_reply_data(c, json_deep_copy(data));
		/* A ttl key is a hint of how often to re-read; no lease is made. */
		if (dev_json_ttl(json_object_get(data, "ttl"), &ttl) == 0 && ttl > 0)
			json_object_set_new(c->reply, "lease_duration", json_integer(ttl));
		return;
	case DEV_OP_WRITE:
		if (!valid_key(rest)) {
			dev_reply_error(c, 400, "missing path");
			return;
		}
		if (json_object_size(c->body) == 0) {
			dev_reply_error(c, 400, "missing data fields");
			return;
		}
		if (json_object_get(c->body, "ttl") != NULL &&
		    dev_json_ttl(json_object_get(c->body, "ttl"), &ttl) < 0) {
			dev_reply_error(c, 400, "failed to parse ttl for entry");
			return;
		}
		if (json_object_get(secrets, rest) == NULL && json_object_size(secrets) >= DEV_SECRETS_MAX) {
			dev_reply_error(c, 400, "too many secrets in this mount");
			return;
		}
		json_object_set(secrets, rest, c->body);
		dev_reply_empty(c);
		return;
	case DEV_OP_DELETE:
		json_object_del(secrets, rest);
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

/* ---- version 2: state.secrets is { path: { current_version, oldest_version,
 * created_time, updated_time, max_versions, cas_required, delete_version_after,
 * custom_metadata, versions: { "N": { data, created_time, deletion_time, destroyed } } } } */

static json_int_t
int_of(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static json_t *
version_get(const json_t *secret, json_int_t n)
{
	char k[24];

	snprintf(k, sizeof(k), "%lld", (long long)n);
	return json_object_get(json_object_get(secret, "versions"), k);
}

static json_t *
version_metadata(const json_t *secret, const json_t *ver, json_int_t n)
{
	const json_t *cm = json_object_get(secret, "custom_metadata");

	return json_pack("{s:O, s:O, s:O, s:O, s:I}", "created_time",
	    json_object_get(ver, "created_time"), "custom_metadata", cm != NULL ? cm : json_null(),
	    "deletion_time", json_object_get(ver, "deletion_time"), "destroyed",
	    json_object_get(ver, "destroyed"), "version", n);
}

static bool
version_deleted(const json_t *ver)
{
	const char *dt = json_string_value(json_object_get(ver, "deletion_time"));

	return (dt != NULL && *dt != '\0') || json_is_true(json_object_get(ver, "destroyed"));
}

static void
kv2_read(struct dev_call *c, json_t *secrets, const char *path)
{
	const json_t *secret = json_object_get(secrets, path);
	const char *vq = lk_http_query(c->req, "version");
	json_int_t n;
	json_t *ver;
	char *end;

	if (secret == NULL) {
		dev_reply_error(c, 404, NULL);
		return;
	}
	n = int_of(secret, "current_version");
	if (vq != NULL && *vq != '\0') {
		long long q = strtoll(vq, &end, 10);
		if (*end != '\0' || q < 0) {
			dev_reply_error(c, 400, "invalid version");
			return;
		}
		if (q > 0)
			n = q;
	}
	ver = version_get(secret, n);
	if (ver == NULL) {
		dev_reply_error(c, 404, NULL);
		return;
	}
	if (version_deleted(ver)) {
		/* A deleted or destroyed version: 404 with the whole envelope. */
		dev_reply_data(c, json_pack("{s:n, s:o}", "data", "metadata",
		    version_metadata(secret, ver, n)));
		c->status = 404;
		return;
	}
	dev_reply_data(c, json_pack("{s:O, s:o}", "data", json_object_get(ver, "data"),
	    "metadata", version_metadata(secret, ver, n)));
}

static json_int_t
max_versions(const json_t *mount_state, const json_t *secret)
{
	json_int_t n = int_of(secret, "max_versions");

	if (n <= 0)
		n = int_of(json_object_get(mount_state, "config"), "max_versions");
	return n > 0 ? n : DEV_KV_VERSIONS_DEFAULT;
}

static json_t *
new_secret(const char *now)
{
	return json_pack("{s:i, s:i, s:s, s:s, s:i, s:b, s:s, s:n, s:{}}", "current_version", 0,
	    "oldest_version", 0, "created_time", now, "updated_time", now, "max_versions", 0,
	    "cas_required", 0, "delete_version_after", "0s", "custom_metadata", "versions");
}

/* Vault's validateCheckAndSetOption: a cas option must be an integer equal to the current
 * version (0 for a new secret); it is required when the mount or the secret says so.
 * false with a 400 reply when the request fails it. */
static bool
cas_ok(struct dev_call *c, const struct dev_mount *m, const json_t *secret)
{
	const json_t *cas = json_object_get(json_object_get(c->body, "options"), "cas");
	bool required = json_is_true(json_object_get(json_object_get(m->state, "config"), "cas_required")) ||
	    (secret != NULL && json_is_true(json_object_get(secret, "cas_required")));

	if (cas != NULL && !json_is_integer(cas)) {
		dev_reply_error(c, 400, "invalid cas option");
		return false;
	}
	if (cas == NULL && required) {
		dev_reply_error(c, 400, "check-and-set parameter required for this call");
		return false;
	}
	if (cas != NULL &&
	    json_integer_value(cas) != (secret != NULL ? int_of(secret, "current_version") : 0)) {
		dev_reply_error(c, 400, "check-and-set parameter did not match the current version");
		return false;
	}
	return true;
}

/* Adds data (a new reference, stolen) as the secret's next version, drops the versions
 * past max_versions, and replies with the new version's metadata. */
static void
add_version(struct dev_call *c, const struct dev_mount *m, json_t *secret, json_t *data)
{
	json_t *versions = json_object_get(secret, "versions"), *ver;
	json_int_t n = int_of(secret, "current_version") + 1, oldest, keep;
	char now[40], k[24];

	dev_time_str(c->now_ms, now);
	ver = json_pack("{s:o, s:s, s:s, s:b}", "data", data, "created_time", now, "deletion_time", "",
	    "destroyed", 0);
	snprintf(k, sizeof(k), "%lld", (long long)n);
	json_object_set_new(versions, k, ver);
	json_object_set_new(secret, "current_version", json_integer(n));
	json_object_set_new(secret, "updated_time", json_string(now));
	/* oldest_version stays 0 until old versions are dropped, as in Vault. */
	oldest = int_of(secret, "oldest_version");
	keep = max_versions(m->state, secret);
	if (n - (oldest > 0 ? oldest : 1) + 1 > keep) {
		for (oldest = oldest > 0 ? oldest : 1; n - oldest + 1 > keep; oldest++) {
			snprintf(k, sizeof(k), "%lld", (long long)oldest);
			json_object_del(versions, k);
		}
		json_object_set_new(secret, "oldest_version", json_integer(oldest));
	}
	dev_reply_data(c, version_metadata(secret, ver, n));
}

static void
kv2_write(struct dev_call *c, struct dev_mount *m, json_t *secrets, const char *path)
{
	json_t *secret = json_object_get(secrets, path), *data = json_object_get(c->body, "data");
	char now[40];

	if (!valid_key(path)) {
		dev_reply_error(c, 400, "missing path");
		return;
	}
	if (!json_is_object(data)) {
		dev_reply_error(c, 400, "no data provided");
		return;
	}
	if (!cas_ok(c, m, secret))
		return;
	if (secret == NULL) {
		if (json_object_size(secrets) >= DEV_SECRETS_MAX) {
			dev_reply_error(c, 400, "too many secrets in this mount");
			return;
		}
		secret = new_secret(dev_time_str(c->now_ms, now));
		json_object_set_new(secrets, path, secret);
	}
	add_version(c, m, secret, json_incref(data));
}

/* PATCH data/<path> (Vault >= 1.9): a JSON merge patch (RFC 7386) of the current
 * version's data becomes the next version. No secret or no current version: 404 with no
 * body; a deleted or destroyed one: 404 with its metadata, as Vault's pathDataPatch. */
static void
kv2_patch(struct dev_call *c, struct dev_mount *m, json_t *secrets, const char *path)
{
	json_t *secret = json_object_get(secrets, path), *patch = json_object_get(c->body, "data");
	json_t *ver, *merged;
	json_int_t n;

	if (!json_is_object(patch)) {
		dev_reply_error(c, 400, "no data provided");
		return;
	}
	if (secret == NULL) {
		c->status = 404;
		return;
	}
	if (!cas_ok(c, m, secret))
		return;
	n = int_of(secret, "current_version");
	ver = version_get(secret, n);
	if (ver == NULL) {
		c->status = 404;
		return;
	}
	if (version_deleted(ver)) {
		dev_reply_data(c, version_metadata(secret, ver, n));
		c->status = 404;
		return;
	}
	merged = dev_json_merge_patch(json_object_get(ver, "data"), patch);
	if (merged == NULL) {
		dev_reply_error(c, 500, "out of memory");
		return;
	}
	add_version(c, m, secret, merged);
}

/* DELETE data/<path>: a soft delete of the latest version. */
static void
kv2_delete_latest(struct dev_call *c, json_t *secrets, const char *path)
{
	json_t *secret = json_object_get(secrets, path);
	json_t *ver = secret != NULL ? version_get(secret, int_of(secret, "current_version")) : NULL;
	char now[40];

	if (ver != NULL && !version_deleted(ver))
		json_object_set_new(ver, "deletion_time", json_string(dev_time_str(c->now_ms, now)));
	dev_reply_empty(c);
}

/* The versions to act on: body.versions, an array of integers. */
static json_t *
body_versions(struct dev_call *c)
{
	json_t *v = json_object_get(c->body, "versions");
	size_t i;
	json_t *e;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		dev_reply_error(c, 400, "no version number provided");
		return NULL;
	}
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) && !(json_is_string(e) && atoll(json_string_value(e)) > 0)) {
			dev_reply_error(c, 400, "invalid version number");
			return NULL;
		}
	}
	return v;
}

static json_int_t
version_number(const json_t *e)
{
	return json_is_integer(e) ? json_integer_value(e) : atoll(json_string_value(e));
}

enum version_action { ACT_DELETE, ACT_UNDELETE, ACT_DESTROY };

static void
kv2_versions(struct dev_call *c, json_t *secrets, const char *path, enum version_action act)
{
	json_t *secret = json_object_get(secrets, path), *list, *e, *ver;
	char now[40];
	size_t i;

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	list = body_versions(c);
	if (list == NULL)
		return;
	dev_time_str(c->now_ms, now);
	json_array_foreach(list, i, e) {
		ver = secret != NULL ? version_get(secret, version_number(e)) : NULL;
		if (ver == NULL || json_is_true(json_object_get(ver, "destroyed")))
			continue;
		switch (act) {
		case ACT_DELETE:
			if (!version_deleted(ver))
				json_object_set_new(ver, "deletion_time", json_string(now));
			break;
		case ACT_UNDELETE:
			json_object_set_new(ver, "deletion_time", json_string(""));
			break;
		case ACT_DESTROY:
			json_object_set_new(ver, "destroyed", json_true());
			json_object_set_new(ver, "data", json_null());
			break;
		}
	}
	dev_reply_empty(c);
}

static void
kv2_metadata(struct dev_call *c, struct dev_mount *m, json_t *secrets, const char *path)
{
	json_t *secret = json_object_get(secrets, path), *versions, *out, *v;
	const char *key;
	int64_t dva = 0;
	char dvabuf[32];

	switch (c->op) {
	case DEV_OP_LIST: {
		char prefix[DEV_PATH_MAX + 2];

		snprintf(prefix, sizeof(prefix), "%s%s", path,
		    *path != '\0' && path[strlen(path) - 1] != '/' ? "/" : "");
		dev_reply_keys(c, dev_list_children(secrets, prefix));
		return;
	}
	case DEV_OP_READ:
		if (secret == NULL) {
			dev_reply_error(c, 404, NULL);
			return;
		}
		versions = json_object();
		json_object_foreach(json_object_get(secret, "versions"), key, v)
			json_object_set_new(versions, key, json_pack("{s:O, s:O, s:O}", "created_time",
			    json_object_get(v, "created_time"), "deletion_time",
			    json_object_get(v, "deletion_time"), "destroyed",
			    json_object_get(v, "destroyed")));
		out = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:o}",
		    "cas_required", json_object_get(secret, "cas_required"),
		    "created_time", json_object_get(secret, "created_time"),
		    "current_version", json_object_get(secret, "current_version"),
		    "custom_metadata", json_object_get(secret, "custom_metadata"),
		    "delete_version_after", json_object_get(secret, "delete_version_after"),
		    "max_versions", json_object_get(secret, "max_versions"),
		    "oldest_version", json_object_get(secret, "oldest_version"),
		    "updated_time", json_object_get(secret, "updated_time"),
		    "versions", versions);
		dev_reply_data(c, out);
		return;
	case DEV_OP_DELETE:
		json_object_del(secrets, path);
		dev_reply_empty(c);
		return;
	case DEV_OP_WRITE:
		if (!valid_key(path)) {
			dev_reply_error(c, 400, "missing path");
			return;
		}
		v = json_object_get(c->body, "custom_metadata");
		if (v != NULL && !json_is_object(v) && !json_is_null(v)) {
			dev_reply_error(c, 400, "custom_metadata must be a map of strings");
			return;
		}
		if (json_object_get(c->body, "delete_version_after") != NULL &&
		    dev_json_ttl(json_object_get(c->body, "delete_version_after"), &dva) < 0) {
			dev_reply_error(c, 400, "invalid delete_version_after");
			return;
		}
		if (secret == NULL) {
			char now[40];

			if (json_object_size(secrets) >= DEV_SECRETS_MAX) {
				dev_reply_error(c, 400, "too many secrets in this mount");
				return;
			}
			secret = new_secret(dev_time_str(c->now_ms, now));
			json_object_set_new(secrets, path, secret);
		}
		if (v != NULL)
			json_object_set(secret, "custom_metadata", v);
		if (json_is_integer(json_object_get(c->body, "max_versions")))
			json_object_set(secret, "max_versions", json_object_get(c->body, "max_versions"));
		if (json_is_boolean(json_object_get(c->body, "cas_required")))
			json_object_set(secret, "cas_required", json_object_get(c->body, "cas_required"));
		if (json_object_get(c->body, "delete_version_after") != NULL)
			json_object_set_new(secret, "delete_version_after",
			    json_string(dev_duration_str(dva, dvabuf, sizeof(dvabuf))));
		(void)m;
		dev_reply_empty(c);
		return;
	default:
		dev_reply_bad_method(c);
	}
}

static void
kv2_config(struct dev_call *c, struct dev_mount *m)
{
	json_t *config = json_object_get(m->state, "config");

	if (c->op == DEV_OP_READ) {
		dev_reply_data(c, json_deep_copy(config));
	} else if (c->op == DEV_OP_WRITE) {
		if (json_is_integer(json_object_get(c->body, "max_versions")))
			json_object_set(config, "max_versions", json_object_get(c->body, "max_versions"));
		if (json_is_boolean(json_object_get(c->body, "cas_required")))
			json_object_set(config, "cas_required", json_object_get(c->body, "cas_required"));
		dev_reply_empty(c);
	} else {
		dev_reply_bad_method(c);
	}
}

static bool
sub(const char *rest, const char *name, const char **ret_path)
{
	size_t n = strlen(name);

	if (strncmp(rest, name, n) != 0)
		return false;
	if (rest[n] == '\0') {
		*ret_path = rest + n;
		return true;
	}
	if (rest[n] != '/')
		return false;
	*ret_path = rest + n + 1;
	return true;
}

void
dev_kv2_handle(struct dev_call *c, struct dev_mount *m, const char *rest)
{
	json_t *secrets = json_object_get(m->state, "secrets");
	const char *path;

	if (*rest == '/')
		rest++;
	if (strcmp(rest, "config") == 0) {
		kv2_config(c, m);
	} else if (sub(rest, "data", &path)) {
		if (c->op == DEV_OP_READ)
			kv2_read(c, secrets, path);
		else if (c->op == DEV_OP_WRITE)
			kv2_write(c, m, secrets, path);
		else if (c->op == DEV_OP_DELETE)
			kv2_delete_latest(c, secrets, path);
		else if (c->op == DEV_OP_PATCH)
			kv2_patch(c, m, secrets, path);
		else
			dev_reply_bad_method(c);
	} else if (sub(rest, "metadata", &path)) {
		kv2_metadata(c, m, secrets, path);
	} else if (sub(rest, "delete", &path) && *path != '\0') {
		kv2_versions(c, secrets, path, ACT_DELETE);
	} else if (sub(rest, "undelete", &path) && *path != '\0') {
		kv2_versions(c, secrets, path, ACT_UNDELETE);
	} else if (sub(rest, "destroy", &path) && *path != '\0') {
		kv2_versions(c, secrets, path, ACT_DESTROY);
	} else {
		dev_reply_no_route(c);
	}
}
