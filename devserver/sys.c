/* sys.c — the sys/ backend: health and seal here, and the dispatch to mounts
 * (sys_mounts.c), policies (sys_policy.c) and leases (sys_leases.c); and the server's
 * initial state. */
#include "devserver/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#ifndef LK_VERSION
#define LK_VERSION "0.1.0"
#endif
#define DEV_VERSION LK_VERSION "+latchkey-dev"

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
	} else if (dev_path_starts(rest, "mounts", &sub)) {
		dev_sys_mounts(c, *sub == '/' ? sub + 1 : sub, false);
	} else if (dev_path_starts(rest, "auth", &sub)) {
		dev_sys_mounts(c, *sub == '/' ? sub + 1 : sub, true);
	} else if (strcmp(rest, "capabilities-self") == 0) {
		dev_sys_capabilities_self(c);
	} else if (dev_path_starts(rest, "policies/acl", &sub)) {
		dev_sys_policy(c, *sub == '/' ? sub + 1 : sub, true);
	} else if (dev_path_starts(rest, "policy", &sub)) {
		dev_sys_policy(c, *sub == '/' ? sub + 1 : sub, false);
	} else if (!dev_sys_leases(c, rest)) {
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
	if (dev_policy_init_default(s) < 0)
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
		dev_lease_free(l);
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
