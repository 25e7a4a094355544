#include "vault/response.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "vault/error.h"


static int
bad_field(struct lk_vault_error *err, const char *prefix, const char *key, const char *expected)
{
	if (prefix != NULL && prefix[0] != '\0')
		return lk_vault_error_set(err, LK_VAULT_ERR_INVALID, -EBADMSG,
		    "%s.%s: expected %s", prefix, key, expected);
	return lk_vault_error_set(err, LK_VAULT_ERR_INVALID, -EBADMSG, "%s: expected %s", key,
	    expected);
}

static int
no_memory(struct lk_vault_error *err)
{
	return lk_vault_error_set(err, LK_VAULT_ERR_CONFIG, -ENOMEM, "out of memory");
}

/* Field getters: absent and null are the same ("not there"). Required ones fail when not
 * there; optional ones leave *ret as it was. Returned json_t and strings are borrowed. */
static int
get_string(const json_t *obj, const char *prefix, const char *key, bool required,
	   const char **ret, struct lk_vault_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return bad_field(err, prefix, key, "a string");
		return 0;
	}
	if (!json_is_string(v))
		return bad_field(err, prefix, key, "a string");
	/* Values in data may hold NUL bytes; the backend's own fields are C strings. */
	if (!lk_json_is_cstring(v))
		return bad_field(err, prefix, key, "a string without NUL bytes");
	*ret = json_string_value(v);
	return 0;
}

static int
get_int(const json_t *obj, const char *prefix, const char *key, bool required,
	int64_t *ret, struct lk_vault_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return bad_field(err, prefix, key, "a non-negative integer");
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bad_field(err, prefix, key, "a non-negative integer");
	*ret = json_integer_value(v);
	return 0;
}

static int
get_bool(const json_t *obj, const char *prefix, const char *key, bool *ret,
	 struct lk_vault_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad_field(err, prefix, key, "a boolean");
	*ret = json_is_true(v);
	return 0;
}

static int
get_object(const json_t *obj, const char *prefix, const char *key, bool required,
	   json_t **ret, struct lk_vault_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return bad_field(err, prefix, key, "an object");
		*ret = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return bad_field(err, prefix, key, required ? "an object" : "an object or null");
	*ret = v;
	return 0;
}

/* An array of strings, at most max entries; NULL when not there or empty. */
static int
get_string_array(const json_t *obj, const char *prefix, const char *key, size_t max,
		 json_t **ret, struct lk_vault_error *err)
{
	json_t *v = json_object_get(obj, key), *item;
	size_t i;

	*ret = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > max)
		return bad_field(err, prefix, key, "an array of strings");
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return bad_field(err, prefix, key, "an array of strings");
		if (!lk_json_is_cstring(item))
			return bad_field(err, prefix, key, "an array of strings without NUL bytes");
	}
	if (json_array_size(v) > 0)
		*ret = v;
	return 0;
}

static int
dup_string(const char *s, char **ret, struct lk_vault_error *err)
{
	char *d;

	if (s == NULL || s[0] == '\0') {
		*ret = NULL;
		return 0;
	}
	d = strdup(s);
	if (d == NULL)
		return no_memory(err);
	*ret = d;
	return 0;
}

void
lk_vault_response_clear(struct lk_vault_response *r)
{
	if (r == NULL)
		return;
	free(r->lease_id);
	json_decref(r->data);
	json_decref(r->auth);
	json_decref(r->wrap_info);
	json_decref(r->warnings);
	memset(r, 0, sizeof(*r));
}

int
lk_vault_response_parse(long status, const char *body, size_t len,
			struct lk_vault_response *ret, struct lk_vault_error *err)
{
	struct lk_vault_response r = { .status = status };
	const char *lease_id = NULL;
	json_t *root = NULL, *data, *auth, *wrap, *warnings;
	json_error_t je;
	int rc;

	if (len == 0) {
		*ret = r;
		return 0;
	}
	/* A KV value may hold "\u0000" (Vault stores what it is sent): it is kept whole, and
	 * what cannot carry it (an environment variable, a file written raw) refuses it where
	 * it is used. The envelope's own strings are checked by the getters above. */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (root == NULL)
		return lk_vault_error_from_json(err, &je);
	if (!json_is_object(root)) {
		rc = lk_vault_error_set(err, LK_VAULT_ERR_INVALID, -EBADMSG,
		    "response body: expected a JSON object");
		goto out;
	}
	if ((rc = get_string(root, NULL, "lease_id", false, &lease_id, err)) < 0 ||
	    (rc = get_int(root, NULL, "lease_duration", false, &r.lease_duration_s, err)) < 0 ||
	    (rc = get_bool(root, NULL, "renewable", &r.renewable, err)) < 0 ||
	    (rc = get_object(root, NULL, "data", false, &data, err)) < 0 ||
	    (rc = get_object(root, NULL, "auth", false, &auth, err)) < 0 ||
	    (rc = get_object(root, NULL, "wrap_info", false, &wrap, err)) < 0 ||
	    (rc = get_string_array(root, NULL, "warnings", LK_VAULT_WARNINGS_MAX, &warnings,
	    err)) < 0)
		goto out;
	if ((rc = dup_string(lease_id, &r.lease_id, err)) < 0)
		goto out;
	r.data = json_incref(data);
	r.auth = json_incref(auth);
	r.wrap_info = json_incref(wrap);
	r.warnings = json_incref(warnings);
	*ret = r;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Appends the lines of one backend error (len bytes) to out, trimmed, without
 * go-multierror's "N errors occurred:" line and "* " bullets, separated by "; ". Control
 * characters (C0 but the line feed, NUL among them, DEL, and C1 as UTF-8) are shown as
 * spaces, and trimmed like them: no terminal control reaches a message. */
static void
append_error_lines(char *out, size_t outlen, const char *raw, size_t len)
{
	char *text = malloc(len + 1);
	const char *p, *end;

	if (text == NULL)
		return;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)raw[i];

		if (ch == 0xc2 && i + 1 < len && (unsigned char)raw[i + 1] >= 0x80 &&
		    (unsigned char)raw[i + 1] <= 0x9f) {
			text[i] = text[i + 1] = ' ';
			i++;
		} else {
			text[i] = (ch != '\n' && (ch < 0x20 || ch == 0x7f)) ? ' ' : (char)ch;
		}
	}
	text[len] = '\0';
	p = text;
	end = text + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *s = p, *e;
		size_t used, n;

		if (eol == NULL)
			eol = end;
		e = eol;
		while (s < e && *s == ' ')
			s++;
		if (s < e && *s == '*') {
			s++;
			while (s < e && *s == ' ')
				s++;
		}
		while (e > s && e[-1] == ' ')
			e--;
		n = (size_t)(e - s);
		/* "1 error occurred:" / "2 errors occurred:" say nothing the list does not. */
		if (n > 0 && isdigit((unsigned char)*s) && e[-1] == ':' &&
		    memmem(s, n, " occurred", 9) != NULL)
			n = 0;
		used = strlen(out);
		if (n > 0 && used + 3 < outlen) {
			if (used > 0) {
				memcpy(out + used, "; ", 2);
				used += 2;
			}
			if (n > outlen - used - 1)
				n = outlen - used - 1;
			memcpy(out + used, s, n);
			out[used + n] = '\0';
		}
		p = eol < end ? eol + 1 : eol;
	}
	free(text);
}

int
lk_vault_response_error(struct lk_vault_error *err, long status, const char *body,
			size_t len, int64_t retry_after_ms)
{
	char joined[LK_ERROR_MSG_MAX - 64] = "";
	enum lk_vault_not_found nf = LK_VAULT_NF_NONE;
	json_t *root = NULL, *errors, *item, *data, *meta;
	int64_t version = 0;
	bool is_json = false, has_errors = false;
	size_t i;
	int code = lk_vault_error_http_code(status);

	if (len > 0)
		root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if (json_is_object(root)) {
		is_json = true;
		errors = json_object_get(root, "errors");
		if (json_is_array(errors)) {
			has_errors = true;
			json_array_foreach(errors, i, item) {
				if (i >= LK_VAULT_ERRORS_MAX)
					break;
				if (json_is_string(item))
					append_error_lines(joined, sizeof(joined),
					    json_string_value(item), json_string_length(item));
			}
		}
	}
	if (status == 404) {
		data = is_json ? json_object_get(root, "data") : NULL;
		meta = json_is_object(data) ? json_object_get(data, "metadata") : NULL;
		if (json_is_object(meta) && json_is_null(json_object_get(data, "data"))) {
			json_t *v = json_object_get(meta, "version");
			if (json_is_integer(v) && json_integer_value(v) >= 0)
				version = json_integer_value(v);
			nf = json_is_true(json_object_get(meta, "destroyed")) ?
			    LK_VAULT_NF_DESTROYED : LK_VAULT_NF_DELETED;
		} else if (joined[0] != '\0') {
			nf = LK_VAULT_NF_NO_ROUTE;
		} else {
			nf = LK_VAULT_NF_MISSING;
		}
	}

	if (nf == LK_VAULT_NF_DELETED || nf == LK_VAULT_NF_DESTROYED)
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP 404: version %lld is %s",
		    (long long)version, lk_vault_not_found_name(nf));
	else if (nf == LK_VAULT_NF_MISSING)
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP 404: not found");
	else if (joined[0] != '\0')
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP %ld: %s", status, joined);
	else if (len > 0 && !is_json)
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP %ld (body is not JSON)",
		    status);
	else if (has_errors || len == 0)
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP %ld", status);
	else
		lk_vault_error_set(err, LK_VAULT_ERR_HTTP, code, "HTTP %ld (no errors list)",
		    status);
	if (err != NULL) {
		err->status = status;
		err->retryable = lk_vault_error_http_retryable(status);
		err->retry_after_ms = retry_after_ms;
		err->not_found = nf;
		err->version = version;
	}
	json_decref(root);
	return code;
}

void
lk_vault_token_info_clear(struct lk_vault_token_info *t)
{
	if (t == NULL)
		return;
	free(t->accessor);
	free(t->token_type);
	free(t->role_name);
	json_decref(t->policies);
	json_decref(t->warnings);
	memset(t, 0, sizeof(*t));
}

/* The policies array of obj as a new reference; an empty array when absent. */
static int
get_policies(const json_t *obj, const char *prefix, json_t **ret, struct lk_vault_error *err)
{
	json_t *v;
	int rc;

	if ((rc = get_string_array(obj, prefix, "policies", SIZE_MAX, &v, err)) < 0)
		return rc;
	*ret = v != NULL ? json_incref(v) : json_array();
	if (*ret == NULL)
		return no_memory(err);
	return 0;
}

int
lk_vault_response_auth(const struct lk_vault_response *r, struct lk_vault_token_info *ret,
		       struct lk_secret **ret_token, struct lk_vault_error *err)
{
	struct lk_vault_token_info t = { 0 };
	const char *token = NULL, *accessor = NULL, *type = NULL, *role = NULL;
	const json_t *meta, *v;
	struct lk_secret *secret = NULL;
	int rc;

	if (r->auth == NULL)
		return bad_field(err, NULL, "auth", "an object");
	if ((rc = get_string(r->auth, "auth", "client_token", true, &token, err)) < 0)
		goto out;
	if (token[0] == '\0') {
		rc = bad_field(err, "auth", "client_token", "a non-empty string");
		goto out;
	}
	if ((rc = get_string(r->auth, "auth", "accessor", false, &accessor, err)) < 0 ||
	    (rc = get_int(r->auth, "auth", "lease_duration", true, &t.lease_duration_s, err)) < 0 ||
	    (rc = get_bool(r->auth, "auth", "renewable", &t.renewable, err)) < 0 ||
	    (rc = get_string(r->auth, "auth", "token_type", false, &type, err)) < 0 ||
	    (rc = get_bool(r->auth, "auth", "orphan", &t.orphan, err)) < 0 ||
	    (rc = get_policies(r->auth, "auth", &t.policies, err)) < 0 ||
	    (rc = dup_string(accessor, &t.accessor, err)) < 0 ||
	    (rc = dup_string(type, &t.token_type, err)) < 0)
		goto out;
	/* Who logged in, for messages only: a metadata object that is absent, null or odd is
	 * no error. */
	meta = json_object_get(r->auth, "metadata");
	v = json_object_get(meta, "role_name");
	role = lk_json_is_cstring(v) ? json_string_value(v) : NULL;
	if (role != NULL && (rc = dup_string(role, &t.role_name, err)) < 0)
		goto out;
	if (ret_token != NULL) {
		secret = lk_secret_from_str(token);
		if (secret == NULL) {
			rc = no_memory(err);
			goto out;
		}
	}
	t.warnings = json_incref(r->warnings);
	*ret = t;
	memset(&t, 0, sizeof(t));
	if (ret_token != NULL)
		*ret_token = secret;
	rc = 0;
out:
	lk_vault_token_info_clear(&t);
	return rc;
}

int
lk_vault_response_lookup(const struct lk_vault_response *r, struct lk_vault_token_info *ret,
			 struct lk_vault_error *err)
{
	struct lk_vault_token_info t = { 0 };
	const char *accessor = NULL, *type = NULL;
	json_t *expire;
	int rc;

	if (r->data == NULL)
		return bad_field(err, NULL, "data", "an object");
	if ((rc = get_string(r->data, "data", "accessor", false, &accessor, err)) < 0 ||
	    (rc = get_int(r->data, "data", "ttl", true, &t.lease_duration_s, err)) < 0 ||
	    (rc = get_bool(r->data, "data", "renewable", &t.renewable, err)) < 0 ||
	    (rc = get_string(r->data, "data", "type", false, &type, err)) < 0 ||
	    (rc = get_bool(r->data, "data", "orphan", &t.orphan, err)) < 0 ||
	    (rc = get_int(r->data, "data", "period", false, &t.period_s, err)) < 0 ||
	    (rc = get_policies(r->data, "data", &t.policies, err)) < 0 ||
	    (rc = dup_string(accessor, &t.accessor, err)) < 0 ||
	    (rc = dup_string(type, &t.token_type, err)) < 0)
		goto out;
	expire = json_object_get(r->data, "expire_time");
	if (expire != NULL && !json_is_null(expire)) {
		if (!lk_json_is_cstring(expire) ||
		    lk_rfc3339_parse(json_string_value(expire), &t.expire_time_ms) < 0) {
			rc = bad_field(err, "data", "expire_time", "an RFC 3339 time or null");
			goto out;
		}
	}
	t.never_expires = t.lease_duration_s == 0 && t.expire_time_ms == 0;
	t.warnings = json_incref(r->warnings);
	*ret = t;
	memset(&t, 0, sizeof(t));
	rc = 0;
out:
	lk_vault_token_info_clear(&t);
	return rc;
}

void
lk_vault_kv_secret_clear(struct lk_vault_kv_secret *s)
{
	if (s == NULL)
		return;
	json_decref(s->data);
	free(s->created_time);
	free(s->deletion_time);
	json_decref(s->custom_metadata);
	json_decref(s->warnings);
	memset(s, 0, sizeof(*s));
}

int
lk_vault_response_kv1(const struct lk_vault_response *r, struct lk_vault_kv_secret *ret,
		      struct lk_vault_error *err)
{
	struct lk_vault_kv_secret s = { 0 };

	if (r->data == NULL)
		return bad_field(err, NULL, "data", "an object");
	s.data = json_incref(r->data);
	s.lease_duration_s = r->lease_duration_s;
	s.warnings = json_incref(r->warnings);
	*ret = s;
	return 0;
}

int
lk_vault_response_kv2(const struct lk_vault_response *r, struct lk_vault_kv_secret *ret,
		      struct lk_vault_error *err)
{
	struct lk_vault_kv_secret s = { 0 };
	const char *created = NULL, *deletion = NULL;
	json_t *data, *meta, *custom;
	int rc;

	if (r->data == NULL)
		return bad_field(err, NULL, "data", "an object");
	if ((rc = get_object(r->data, "data", "metadata", true, &meta, err)) < 0 ||
	    (rc = get_int(meta, "data.metadata", "version", true, &s.version, err)) < 0 ||
	    (rc = get_string(meta, "data.metadata", "created_time", false, &created, err)) < 0 ||
	    (rc = get_string(meta, "data.metadata", "deletion_time", false, &deletion, err)) < 0 ||
	    (rc = get_bool(meta, "data.metadata", "destroyed", &s.destroyed, err)) < 0 ||
	    (rc = get_object(meta, "data.metadata", "custom_metadata", false, &custom, err)) < 0 ||
	    (rc = get_object(r->data, "data", "data", false, &data, err)) < 0)
		goto out;
	if (data == NULL) {
		enum lk_vault_not_found nf = s.destroyed ? LK_VAULT_NF_DESTROYED :
		    LK_VAULT_NF_DELETED;
		rc = lk_vault_error_set(err, LK_VAULT_ERR_HTTP, -ENOENT, "version %lld is %s",
		    (long long)s.version, lk_vault_not_found_name(nf));
		if (err != NULL) {
			err->status = r->status;
			err->not_found = nf;
			err->version = s.version;
		}
		goto out;
	}
	if ((rc = dup_string(created, &s.created_time, err)) < 0 ||
	    (rc = dup_string(deletion, &s.deletion_time, err)) < 0)
		goto out;
	s.data = json_incref(data);
	s.custom_metadata = json_incref(custom);
	s.warnings = json_incref(r->warnings);
	*ret = s;
	memset(&s, 0, sizeof(s));
	rc = 0;
out:
	lk_vault_kv_secret_clear(&s);
	return rc;
}

int
lk_vault_response_kv2_write(const struct lk_vault_response *r, int64_t *ret_version,
			    struct lk_vault_error *err)
{
	int64_t version = 0;
	int rc;

	if (r->data == NULL)
		return bad_field(err, NULL, "data", "an object");
	if ((rc = get_int(r->data, "data", "version", true, &version, err)) < 0)
		return rc;
	*ret_version = version;
	return 0;
}

void
lk_vault_lease_secret_clear(struct lk_vault_lease_secret *s)
{
	if (s == NULL)
		return;
	free(s->lease_id);
	json_decref(s->data);
	json_decref(s->warnings);
	memset(s, 0, sizeof(*s));
}

int
lk_vault_response_lease(const struct lk_vault_response *r, struct lk_vault_lease_secret *ret,
			struct lk_vault_error *err)
{
	struct lk_vault_lease_secret s = { 0 };
	int rc;

	if (r->data == NULL)
		return bad_field(err, NULL, "data", "an object");
	if ((rc = dup_string(r->lease_id, &s.lease_id, err)) < 0)
		return rc;
	s.lease_duration_s = r->lease_duration_s;
	s.renewable = r->renewable;
	s.data = json_incref(r->data);
	s.warnings = json_incref(r->warnings);
	*ret = s;
	return 0;
}

void
lk_vault_lease_renewal_clear(struct lk_vault_lease_renewal *r)
{
	if (r == NULL)
		return;
	free(r->lease_id);
	json_decref(r->warnings);
	memset(r, 0, sizeof(*r));
}

int
lk_vault_response_renewal(const struct lk_vault_response *r, int64_t increment_s,
			  struct lk_vault_lease_renewal *ret, struct lk_vault_error *err)
{
	struct lk_vault_lease_renewal n = { 0 };
	int rc;

	if (r->lease_id == NULL)
		return bad_field(err, NULL, "lease_id", "a non-empty string");
	if ((rc = dup_string(r->lease_id, &n.lease_id, err)) < 0)
		return rc;
	n.lease_duration_s = r->lease_duration_s;
	n.renewable = r->renewable;
	n.capped = lk_vault_renewal_capped(increment_s, r->lease_duration_s, r->warnings);
	n.warnings = json_incref(r->warnings);
	*ret = n;
	return 0;
}
