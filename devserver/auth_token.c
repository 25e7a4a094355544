/* auth_token.c — the token auth method: auth/token/create, lookup, renew and revoke. */
#include "devserver/internal.h"

#include <stdio.h>
#include <string.h>

static void
token_create(struct dev_call *c, const struct dev_mount *m, bool orphan)
{
	struct dev_token *t, *parent = c->token;
	struct dev_token_opts o = { .renewable = true, .path = "auth/token/create" };
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
	if (!dev_token_is_rootish(parent)) {
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
	t = dev_token_issue(c, m, &o);
	json_decref(pol);
	if (t == NULL) {
		dev_reply_error(c, 400, "token limit reached");
		return;
	}
	dev_reply_auth(c, t, NULL);
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
	dev_reply_auth(c, t, warning);
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

/* The token whose accessor the body names ({"accessor": ...}); NULL with a 400 reply. */
static struct dev_token *
body_accessor(struct dev_call *c)
{
	const char *accessor = dev_body_str(c, "accessor");

	if (accessor == NULL || *accessor == '\0') {
		dev_reply_error(c, 400, "missing accessor");
		return NULL;
	}
	for (struct dev_token *t = c->srv->tokens; t != NULL; t = t->next)
		if (strcmp(t->accessor, accessor) == 0)
			return t;
	dev_reply_error(c, 400, "invalid accessor");
	return NULL;
}

/* Revokes t with its leases, and its children too unless orphan_children (revoke-orphan:
 * they stay, as orphans). The caller's own token may be among them. */
static void
revoke(struct dev_call *c, struct dev_token *t, bool orphan_children)
{
	if (orphan_children) {
		for (struct dev_token *o = c->srv->tokens; o != NULL; o = o->next) {
			if (strcmp(o->parent, t->id) == 0) {
				o->parent[0] = '\0';
				o->orphan = true;
			}
		}
	}
	if (c->token != NULL && dev_token_descends(c->srv, c->token, t))
		c->token = NULL;
	dev_token_revoke(c->srv, t, c->now_ms);
	dev_reply_empty(c);
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
		revoke(c, c->token, false);
	} else if (strcmp(rest, "lookup-accessor") == 0 || strcmp(rest, "revoke-accessor") == 0) {
		if (c->op != DEV_OP_WRITE) {
			dev_reply_bad_method(c);
			return;
		}
		t = body_accessor(c);
		if (t == NULL)
			return;
		if (strcmp(rest, "lookup-accessor") == 0) {
			/* As Vault: the accessor does not reveal the token. */
			dev_reply_data(c, dev_token_lookup(t, c->now_ms));
			json_object_set_new(json_object_get(c->reply, "data"), "id", json_string(""));
			return;
		}
		revoke(c, t, false);
	} else if (strcmp(rest, "lookup") == 0 || strcmp(rest, "renew") == 0 ||
		   strcmp(rest, "revoke") == 0 || strcmp(rest, "revoke-orphan") == 0) {
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
			revoke(c, t, strcmp(rest, "revoke-orphan") == 0);
		}
	} else {
		dev_reply_no_route(c);
	}
}
