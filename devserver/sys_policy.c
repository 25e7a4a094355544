/* sys_policy.c — ACL policies: sys/policy and sys/policies/acl, the built-in default
 * policy, and what a token may do on a path. */
#include "devserver/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void
dev_sys_policy(struct dev_call *c, const char *name, bool acl)
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

int
dev_policy_init_default(struct dev_server *s)
{
	return dev_policy_set(s, "default", DEFAULT_POLICY, NULL);
}

/* Most paths one sys/capabilities-self request may ask about. */
#define CAPABILITIES_PATHS_MAX 256

/* The names of caps in Vault's order (sorted); ["deny"] when it grants nothing, ["root"]
 * for a root token. New reference. */
static json_t *
caps_names(unsigned caps, bool root)
{
	/* Alphabetical, as Vault sorts them. */
	static const struct { const char *name; unsigned bit; } order[] = {
		{ "create", DEV_CAP_CREATE }, { "delete", DEV_CAP_DELETE }, { "list", DEV_CAP_LIST },
		{ "patch", DEV_CAP_PATCH }, { "read", DEV_CAP_READ }, { "sudo", DEV_CAP_SUDO },
		{ "update", DEV_CAP_UPDATE },
	};
	json_t *list = json_array();

	if (root) {
		json_array_append_new(list, json_string("root"));
		return list;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (caps & order[i].bit)
			json_array_append_new(list, json_string(order[i].name));
	if (json_array_size(list) == 0)
		json_array_append_new(list, json_string("deny"));
	return list;
}

void
dev_sys_capabilities_self(struct dev_call *c)
{
	const json_t *given = json_object_get(c->body, "paths");
	json_t *paths, *data, *p;
	bool root;
	size_t i;

	if (c->op != DEV_OP_WRITE) {
		dev_reply_bad_method(c);
		return;
	}
	if (given == NULL)
		given = json_object_get(c->body, "path");  /* the older name Vault still reads */
	paths = given != NULL ? dev_json_strlist(given, false) : NULL;
	if (paths == NULL || json_array_size(paths) == 0) {
		json_decref(paths);
		dev_reply_error(c, 400, "'paths' must be supplied");
		return;
	}
	if (json_array_size(paths) > CAPABILITIES_PATHS_MAX) {
		json_decref(paths);
		dev_reply_error(c, 400, "too many paths");
		return;
	}
	root = c->token->root || dev_strlist_has(c->token->policies, "root");
	data = json_object();
	json_array_foreach(paths, i, p) {
		const char *path = json_string_value(p);

		while (*path == '/')
			path++;
		json_object_set_new(data, json_string_value(p),
				    caps_names(dev_token_caps(c->srv, c->token, path), root));
	}
	/* For one path Vault also answers "capabilities", for older clients. */
	if (json_array_size(paths) == 1)
		json_object_set(data, "capabilities",
				json_object_get(data, json_string_value(json_array_get(paths, 0))));
	json_decref(paths);
	{
		/* Vault's answer has the fields at the top level as well as under "data" (a
		 * path named like an envelope field is only under "data"). */
		json_t *env = dev_envelope(json_deep_copy(data));

		json_object_update_missing(env, data);
		json_decref(data);
		json_decref(c->reply);
		c->reply = env;
		c->status = 200;
	}
}
