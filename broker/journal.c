/* journal.c — the lease journal: which dynamic leases this broker holds, so that one that
 * starts after it died (kill -9, an OOM kill, a node drain that ran out of time) revokes
 * what it left behind.
 *
 * The file (state_dir/leases.json, mode 0600) holds lease ids, the secret each belongs to
 * and when each expires, never a value. The scheduler rewrites it atomically
 * (common/file.h) after every action that changed the set of leases or an expiry, so the
 * only lease a crash can leave unjournaled is one whose answer had arrived and not been
 * written yet: microseconds after the backend's answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/json.h"

/* Largest journal read: 8,192 pending and 4,096 current leases of a few hundred bytes. */
#define JOURNAL_FILE_MAX (8u << 20)
#define JOURNAL_NAME "leases.json"

int
broker_journal_path(const struct broker_config *cfg, char *out, size_t outlen)
{
	if (cfg->state_dir == NULL)
		return -ENOENT;
	if ((size_t)snprintf(out, outlen, "%s/%s", cfg->state_dir, JOURNAL_NAME) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

void
broker_journal_leases_free(struct broker_journal_lease *l, size_t n)
{
	for (size_t i = 0; l != NULL && i < n; i++) {
		free(l[i].lease_id);
		free(l[i].secret);
	}
	free(l);
}

int
broker_journal_load(const struct broker_config *cfg, struct broker_journal_lease **ret,
		    size_t *ret_n, struct lk_error *err)
{
	char path[BROKER_FILE_PATH_MAX + 32];
	struct broker_journal_lease *out = NULL;
	struct lk_buf buf;
	json_t *root = NULL, *leases, *l;
	size_t i, n = 0;
	int rc;

	*ret = NULL;
	*ret_n = 0;
	if ((rc = broker_journal_path(cfg, path, sizeof(path))) < 0)
		return rc == -ENOENT ? 0 : lk_error_set(err, rc, "state_dir: path too long");
	lk_buf_init(&buf, JOURNAL_FILE_MAX, false);
	rc = lk_file_read(path, true, &buf, err);
	if (rc == -ENOENT) {
		lk_buf_free(&buf);
		lk_error_clear(err);
		return 0;
	}
	if (rc < 0)
		goto out;
	if ((root = lk_json_parse(buf.data, buf.len, 0, path, err)) == NULL) {
		rc = err->code < 0 ? err->code : -EINVAL;
		goto out;
	}
	leases = json_object_get(root, "leases");
	if (!json_is_object(root) || !json_is_array(leases)) {
		rc = lk_error_set(err, -EINVAL, "%s: not a lease journal", path);
		goto out;
	}
	if ((out = calloc(json_array_size(leases) + 1, sizeof(*out))) == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	json_array_foreach(leases, i, l) {
		const char *id = json_string_value(json_object_get(l, "lease_id"));
		const char *secret = json_string_value(json_object_get(l, "secret"));
		const char *exp = json_string_value(json_object_get(l, "expires_at"));
		int64_t ms = 0;

		if (id == NULL || id[0] == '\0' || strlen(id) >= LK_VAULT_PATH_MAX ||
		    (exp != NULL && lk_rfc3339_parse(exp, &ms) < 0))
			continue;       /* what cannot be read cannot be revoked */
		out[n].lease_id = strdup(id);
		out[n].secret = strdup(secret != NULL ? secret : "");
		out[n].expires_real_ms = ms;
		if (out[n].lease_id == NULL || out[n].secret == NULL) {
			n++;
			rc = lk_error_set(err, -ENOMEM, "%s: out of memory", path);
			goto out;
		}
		n++;
	}
	*ret = out;
	*ret_n = n;
	out = NULL;
	n = 0;
	rc = 0;
out:
	broker_journal_leases_free(out, n);
	json_decref(root);
	lk_buf_free(&buf);
	return rc;
}

static int
add_lease(json_t *arr, const char *id, const char *secret, int64_t expires_real_ms,
	  const char *state)
{
	char ts[LK_RFC3339_LEN];
	json_t *o = json_pack("{s:s, s:s, s:s?, s:s}", "lease_id", id, "secret", secret,
			      "expires_at", expires_real_ms > 0 ? lk_rfc3339_ms(expires_real_ms, ts) :
			      NULL, "state", state);

	return o != NULL ? json_array_append_new(arr, o) : -1;
}

int
broker_journal_save(struct broker *b, struct lk_error *err)
{
	char path[BROKER_FILE_PATH_MAX + 32], ts[LK_RFC3339_LEN];
	json_t *root = NULL, *arr = json_array();
	char *text = NULL;
	int rc;

	if ((rc = broker_journal_path(b->cfg, path, sizeof(path))) < 0) {
		json_decref(arr);
		return rc == -ENOENT ? 0 : lk_error_set(err, rc, "state_dir: path too long");
	}
	if (arr == NULL)
		goto nomem;
	for (size_t i = 0; i < b->n; i++) {
		struct broker_entry *e = &b->entries[i];

		if (e->lease_id != NULL &&
		    add_lease(arr, e->lease_id, e->spec->name, e->expires_real_ms, "current") < 0)
			goto nomem;
	}
	for (size_t i = 0; i < b->nrevocations; i++) {
		struct broker_revocation *r = &b->revocations[i];

		if (add_lease(arr, r->lease_id, r->secret, r->expires_real_ms, "replaced") < 0)
			goto nomem;
	}
	root = json_pack("{s:i, s:s, s:o}", "version", 1, "written_at",
			 lk_rfc3339_ms(lk_now_real_ms(), ts), "leases", arr);
	arr = NULL;
	if (root == NULL || (text = json_dumps(root, JSON_COMPACT)) == NULL)
		goto nomem;
	rc = lk_file_write_atomic(path, text, strlen(text), 0600, (uid_t)-1, (gid_t)-1, err);
	goto out;
nomem:
	rc = lk_error_set(err, -ENOMEM, "%s: out of memory", path);
out:
	free(text);
	json_decref(root);
	json_decref(arr);
	return rc;
}
