/* sys_leases.c — lease renewal, revocation and lookup: sys/leases/… and the older
 * sys/renew and sys/revoke. */
#include "devserver/internal.h"

#include <stdio.h>
#include <string.h>

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
	if (m != NULL && m->type == DEV_MOUNT_DATABASE &&
	    dev_db_lease_renew(c, m, l, c->now_ms + ttl * 1000) < 0)
		return;
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
	if (l != NULL)
		dev_lease_revoke(c->srv, l, c->now_ms);
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

/* LIST sys/leases/lookup/<prefix>: the active leases one level below prefix. */
static void
lease_list(struct dev_call *c, const char *prefix)
{
	json_t *ids = json_object();
	char dir[DEV_PATH_MAX + 2];

	snprintf(dir, sizeof(dir), "%s%s", prefix,
	    *prefix != '\0' && prefix[strlen(prefix) - 1] != '/' ? "/" : "");
	for (struct dev_lease *l = c->srv->leases; l != NULL; l = l->next)
		if (l->state == DEV_LEASE_ACTIVE && strncmp(l->id, dir, strlen(dir)) == 0)
			json_object_set_new(ids, l->id, json_true());
	dev_reply_keys(c, dev_list_children(ids, dir));
	json_decref(ids);
}

bool
dev_sys_leases(struct dev_call *c, const char *rest)
{
	const char *sub;

	if (dev_path_starts(rest, "leases/renew", &sub) || dev_path_starts(rest, "renew", &sub)) {
		lease_renew(c, sub);
	} else if (dev_path_starts(rest, "leases/revoke-prefix", &sub) ||
		   dev_path_starts(rest, "revoke-prefix", &sub)) {
		if (c->op != DEV_OP_WRITE || *sub != '/') {
			dev_reply_bad_method(c);
			return true;
		}
		dev_lease_revoke_prefix(c->srv, sub + 1, c->now_ms);
		dev_reply_empty(c);
	} else if (dev_path_starts(rest, "leases/revoke", &sub) || dev_path_starts(rest, "revoke", &sub)) {
		lease_revoke(c, sub);
	} else if (c->op == DEV_OP_LIST && dev_path_starts(rest, "leases/lookup", &sub)) {
		lease_list(c, *sub == '/' ? sub + 1 : sub);
	} else if (strcmp(rest, "leases/lookup") == 0) {
		lease_lookup(c);
	} else {
		return false;
	}
	return true;
}
