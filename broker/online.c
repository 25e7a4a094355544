/* online.c — `latchkey broker --check-config FILE --online`: logs in as the broker would,
 * asks the backend what the token may do on each secret's path (sys/capabilities-self),
 * reads each secret (and each decryption key kept in the backend) once, and says, per
 * secret, what is wrong and the exact fix. A lease
 * the read creates is revoked at once; a token the check logged in for is revoked at the
 * end. No value is ever printed: TTL, renewable and the number of keys only. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/exit.h"
#include "crypto/crypto.h"
#include "crypto/secret.h"

/* Longest fix or error text kept per row. */
#define ONLINE_TEXT_MAX 1024
/* Longest service-account name or namespace taken from a JWT (Kubernetes: 253). */
#define ONLINE_SA_MAX 254

struct online_row {
	const struct broker_secret_spec *spec;
	/* A decryption key read from the backend: spec is then a stand-in made for it (the
	 * key's config path as its name, vault_path as its path), and the row also checks
	 * that the field holds an lk1 private key. */
	const struct broker_key_spec *key;
	char caps[128];             /* "read,list", "deny", or "unknown" */
	bool read_ok;
	int64_t ttl_s;
	bool renewable;
	bool leased;
	bool lease_revoked;
	size_t nkeys;
	char error[ONLINE_TEXT_MAX];
	char fix[ONLINE_TEXT_MAX];
};

struct online_login {
	const char *method;         /* "token", "approle", "kubernetes" */
	bool ok;
	json_t *policies;           /* owned; NULL when the login failed */
	int64_t ttl_s;
	bool renewable;
	bool never_expires;
	char role[ONLINE_SA_MAX + 1]; /* the AppRole the backend says was used; "" when unknown */
	char error[ONLINE_TEXT_MAX];
	char fix[ONLINE_TEXT_MAX];
};

/* ---- the service account a Kubernetes JWT names (pure; for the fuzz target) ---- */

static bool
copy_claim(const json_t *v, char *out, size_t outlen)
{
	const char *s = json_string_value(v);

	if (s == NULL || *s == '\0' || strlen(s) >= outlen)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\')
			return false;   /* printed in messages: nothing that could forge a line */
	strcpy(out, s);
	return true;
}

int
broker_jwt_service_account(const char *jwt, size_t len, char *ret_namespace, size_t nslen,
			   char *ret_name, size_t namelen)
{
	const char *dot1, *dot2, *end = jwt + len;
	unsigned char *bin = NULL;
	size_t binlen = 0, seglen;
	char ns[ONLINE_SA_MAX + 1], name[ONLINE_SA_MAX + 1];
	json_t *claims = NULL, *k8s;
	int rc = -EINVAL;

	if (jwt == NULL || len == 0 || len > LK_VAULT_CREDENTIAL_FILE_MAX)
		return -EINVAL;
	dot1 = memchr(jwt, '.', len);
	if (dot1 == NULL)
		return -EINVAL;
	dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
	if (dot2 == NULL)
		return -EINVAL;
	seglen = (size_t)(dot2 - dot1 - 1);
	if (seglen == 0)
		return -EINVAL;
	bin = malloc(seglen);
	if (bin == NULL)
		return -ENOMEM;
	if (sodium_base642bin(bin, seglen, dot1 + 1, seglen, "=", &binlen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		goto out;
	claims = json_loadb((const char *)bin, binlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(claims))
		goto out;
	/* Projected tokens: kubernetes.io.{namespace, serviceaccount.name}; older secret-based
	 * tokens: kubernetes.io/serviceaccount/{namespace, service-account.name}. */
	k8s = json_object_get(claims, "kubernetes.io");
	if (json_is_object(k8s) &&
	    copy_claim(json_object_get(k8s, "namespace"), ns, sizeof(ns)) &&
	    copy_claim(json_object_get(json_object_get(k8s, "serviceaccount"), "name"), name,
		       sizeof(name))) {
		rc = 0;
	} else if (copy_claim(json_object_get(claims, "kubernetes.io/serviceaccount/namespace"),
			      ns, sizeof(ns)) &&
		   copy_claim(json_object_get(claims,
					      "kubernetes.io/serviceaccount/service-account.name"),
			      name, sizeof(name))) {
		rc = 0;
	}
	if (rc == 0) {
		if (strlen(ns) >= nslen || strlen(name) >= namelen) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		strcpy(ret_namespace, ns);
		strcpy(ret_name, name);
	}
out:
	json_decref(claims);
	sodium_memzero(bin, seglen);
	free(bin);
	return rc;
}

/* ---- helpers ---- */

/* snprintf into a message buffer, cut to fit: every text here is a bounded message. */
static void __attribute__((format(printf, 3, 4)))
textf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

/* "a, b, c" from an array of strings into out. */
static void
join_list(const json_t *list, char *out, size_t outlen)
{
	size_t i, used = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(list, i, v) {
		int n;

		if (!json_is_string(v))
			continue;
		n = snprintf(out + used, outlen - used, "%s%s", used > 0 ? ", " : "",
			     json_string_value(v));
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

static const char *
auth_mount(const struct lk_vault_config *vc)
{
	if (vc->auth.mount != NULL)
		return vc->auth.mount;
	return vc->auth.method == LK_VAULT_AUTH_KUBERNETES ? LK_VAULT_K8S_MOUNT_DEFAULT :
	       LK_VAULT_APPROLE_MOUNT_DEFAULT;
}

/* The first policy other than "default" the token has, or NULL. */
static const char *
main_policy(const json_t *policies)
{
	size_t i;
	json_t *v;

	json_array_foreach(policies, i, v) {
		const char *s = json_string_value(v);

		if (s != NULL && strcmp(s, "default") != 0 && strcmp(s, "root") != 0)
			return s;
	}
	return NULL;
}

/* ---- login ---- */

/* Why a Kubernetes login was refused for the service account, with the role's bindings
 * when the client's token (VAULT_TOKEN, when set) may read the role. */
static void
kubernetes_fix(struct lk_vault_client *client, const struct lk_vault_config *vc,
	       struct online_login *lg)
{
	struct lk_secret *jwt = NULL;
	struct lk_vault_response r;
	struct lk_vault_error verr;
	char ns[ONLINE_SA_MAX + 1] = "", name[ONLINE_SA_MAX + 1] = "";
	char path[LK_VAULT_PATH_MAX], names[512] = "", nss[512] = "", who[600];
	const char *jwt_file = vc->auth.jwt_file != NULL ? vc->auth.jwt_file :
			       LK_VAULT_K8S_JWT_PATH_DEFAULT;
	bool known_sa = false, bindings = false;

	if (lk_secret_read_file(jwt_file, LK_VAULT_CREDENTIAL_FILE_MAX, true, &jwt) == 0)
		known_sa = broker_jwt_service_account(lk_secret_cstr(jwt), lk_secret_len(jwt), ns,
						      sizeof(ns), name, sizeof(name)) == 0;
	jwt = lk_secret_free(jwt);
	if (known_sa)
		textf(who, sizeof(who), "this pod's token (%s) is service account \"%s\" in "
			 "namespace \"%s\"", jwt_file, name, ns);
	else
		textf(who, sizeof(who), "the service account of %s could not be read from "
			 "its claims", jwt_file);
	memset(&r, 0, sizeof(r));
	lk_vault_error_clear(&verr);
	textf(path, sizeof(path), "auth/%s/role/%s", auth_mount(vc), vc->auth.role);
	if (lk_vault_client_has_token(client) &&
	    lk_vault_client_request(client, "GET", path, NULL, &r, &verr) == 0 &&
	    json_is_object(r.data)) {
		join_list(json_object_get(r.data, "bound_service_account_names"), names,
			  sizeof(names));
		join_list(json_object_get(r.data, "bound_service_account_namespaces"), nss,
			  sizeof(nss));
		bindings = true;
	}
	lk_vault_response_clear(&r);
	if (bindings)
		textf(lg->fix, sizeof(lg->fix), "role \"%s\" (%s) binds "
			 "bound_service_account_names [%s] and bound_service_account_namespaces "
			 "[%s]; %s: add \"%s\" to bound_service_account_names and \"%s\" to "
			 "bound_service_account_namespaces, or run the pod as a bound service "
			 "account", vc->auth.role, path, names, nss, who,
			 known_sa ? name : "its name", known_sa ? ns : "its namespace");
	else
		textf(lg->fix, sizeof(lg->fix), "%s; the bindings of role \"%s\" could not be "
			 "read (set VAULT_TOKEN to a token that may read %s to see them): its "
			 "bound_service_account_names and bound_service_account_namespaces must "
			 "hold them", who, vc->auth.role, path);
}

static void
do_login(struct lk_vault_client *client, const struct lk_vault_config *vc,
	 struct online_login *lg)
{
	struct lk_vault_token_info ti;
	struct lk_vault_error verr;

	memset(&ti, 0, sizeof(ti));
	lk_vault_error_clear(&verr);
	switch (vc->auth.method) {
	case LK_VAULT_AUTH_APPROLE:
		lg->method = "approle";
		break;
	case LK_VAULT_AUTH_KUBERNETES:
		lg->method = "kubernetes";
		break;
	default:
		lg->method = "token";
	}
	if (lk_vault_auth_login(client, &ti, &verr) == 0) {
		lg->ok = true;
		lg->policies = json_incref(ti.policies);
		lg->ttl_s = ti.lease_duration_s;
		lg->renewable = ti.renewable;
		lg->never_expires = ti.never_expires;
		if (ti.role_name != NULL) {
			json_t *name = json_string(ti.role_name);

			if (!copy_claim(name, lg->role, sizeof(lg->role)))
				lg->role[0] = '\0';
			json_decref(name);
		}
		lk_vault_token_info_clear(&ti);
		return;
	}
	broker_copy_text(lg->error, sizeof(lg->error), verr.base.msg);
	if (verr.kind != LK_VAULT_ERR_HTTP) {
		textf(lg->fix, sizeof(lg->fix), "the backend at %s did not answer as expected: "
			 "check vault.address, the network and the TLS settings", vc->addr != NULL ?
			 vc->addr : LK_VAULT_ADDR_DEFAULT);
	} else if (vc->auth.method == LK_VAULT_AUTH_KUBERNETES && verr.status == 403 &&
		   (strstr(verr.base.msg, "service account name not authorized") != NULL ||
		    strstr(verr.base.msg, "namespace not authorized") != NULL)) {
		kubernetes_fix(client, vc, lg);
	} else if (vc->auth.method == LK_VAULT_AUTH_KUBERNETES) {
		textf(lg->fix, sizeof(lg->fix), "check that role \"%s\" exists at auth/%s/role/%s, "
			 "that auth/%s/config can verify this cluster's tokens, and that the "
			 "token's audience matches the role's", vc->auth.role, auth_mount(vc),
			 vc->auth.role, auth_mount(vc));
	} else if (vc->auth.method == LK_VAULT_AUTH_APPROLE) {
		textf(lg->fix, sizeof(lg->fix), "check that the role_id and secret_id files hold "
			 "a current pair of auth/%s (a secret_id may have expired or run out of "
			 "uses)", auth_mount(vc));
	} else {
		textf(lg->fix, sizeof(lg->fix), "the token is not valid (expired or revoked): put "
			 "a current token in %s", vc->auth.token_file != NULL ? vc->auth.token_file :
			 "VAULT_TOKEN");
	}
}

/* ---- per secret ---- */

/* The capabilities of every secret's path at once; rows keep "unknown" when the backend
 * does not say (an older backend, or a token denied sys/capabilities-self). */
static void
ask_capabilities(struct lk_vault_client *client, struct online_row *rows, size_t n)
{
	struct lk_vault_response r;
	struct lk_vault_error verr;
	json_t *body = json_object(), *paths = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(paths, json_string(rows[i].spec->path));
	json_object_set_new(body, "paths", paths);
	memset(&r, 0, sizeof(r));
	lk_vault_error_clear(&verr);
	if (lk_vault_client_request(client, "POST", "sys/capabilities-self", body, &r, &verr) == 0)
		for (size_t i = 0; i < n; i++) {
			const json_t *caps = json_object_get(r.data, rows[i].spec->path);
			size_t j, used = 0;
			json_t *v;

			if (!json_is_array(caps))
				continue;
			rows[i].caps[0] = '\0';
			json_array_foreach(caps, j, v) {
				int k;

				if (!json_is_string(v))
					continue;
				k = snprintf(rows[i].caps + used, sizeof(rows[i].caps) - used, "%s%s",
					     used > 0 ? "," : "", json_string_value(v));
				if (k < 0 || (size_t)k >= sizeof(rows[i].caps) - used)
					break;
				used += (size_t)k;
			}
		}
	json_decref(body);
	lk_vault_response_clear(&r);
}

static bool
caps_allow_read(const char *caps)
{
	char copy[128], *save = NULL;

	broker_copy_text(copy, sizeof(copy), caps);
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, "read") == 0 || strcmp(t, "root") == 0)
			return true;
	return false;
}

/* Where the missing policy line goes, by login method. */
static void
policy_target(const struct lk_vault_config *vc, const struct online_login *lg, char *out,
	      size_t outlen)
{
	char list[512];
	const char *p = main_policy(lg->policies);

	join_list(lg->policies, list, sizeof(list));
	if (p != NULL)
		textf(out, outlen, "add it to policy \"%s\" (this token's policies: %s)", p, list);
	else if (vc->auth.method == LK_VAULT_AUTH_KUBERNETES)
		textf(out, outlen, "put it in a policy and add that policy to token_policies of "
			 "role \"%s\" (auth/%s/role/%s); this token's policies: %s", vc->auth.role,
			 auth_mount(vc), vc->auth.role, list);
	else if (vc->auth.method == LK_VAULT_AUTH_APPROLE && lg->role[0] != '\0')
		textf(out, outlen, "put it in a policy and add that policy to token_policies of "
			 "role \"%s\" (auth/%s/role/%s); this token's policies: %s", lg->role,
			 auth_mount(vc), lg->role, list);
	else if (vc->auth.method == LK_VAULT_AUTH_APPROLE)
		textf(out, outlen, "put it in a policy and add that policy to token_policies of "
			 "the AppRole (auth/%s/role/NAME); this token's policies: %s",
			 auth_mount(vc), list);
	else
		textf(out, outlen, "put it in a policy and give the token that policy; this "
			 "token's policies: %s", list);
}

/* A decryption key's field: a string that parses as an lk1 private key. Its text is never
 * printed; the error says what the field holds instead. */
static bool
key_field_ok(struct online_row *row, const json_t *data)
{
	const json_t *v = json_object_get(data, row->key->field);
	struct lk_key *key = NULL;
	struct lk_error err;
	bool ok;

	if (!json_is_string(v)) {
		textf(row->error, sizeof(row->error), "%s: the secret has no string field \"%s\"",
			 row->key->where, row->key->field);
		textf(row->fix, sizeof(row->fix), "write the key file's text (lk1priv:...) to "
			 "field \"%s\" of %s, or set %s.field to the field that holds it",
			 row->key->field, row->key->vault_path, row->key->where);
		return false;
	}
	lk_error_clear(&err);
	if (lk_key_x25519_parse(json_string_value(v), json_string_length(v), &key, &err) < 0) {
		textf(row->error, sizeof(row->error), "%s: field \"%s\": %s", row->key->where,
			 row->key->field, err.msg);
		textf(row->fix, sizeof(row->fix), "field \"%s\" of %s must hold an lk1 private "
			 "key (lk1priv:..., as `latchkey keygen --lk1` writes it)", row->key->field,
			 row->key->vault_path);
		return false;
	}
	ok = lk_key_has_private(key);
	if (!ok) {
		textf(row->error, sizeof(row->error), "%s: field \"%s\" holds an lk1 public key",
			 row->key->where, row->key->field);
		textf(row->fix, sizeof(row->fix), "store the private key (lk1priv:...) there: "
			 "the public one seals, it cannot open");
	}
	lk_key_free(key);
	return ok;
}

static void
check_secret(struct lk_vault_client *client, const struct lk_vault_config *vc,
	     const struct online_login *lg, struct online_row *row)
{
	const struct broker_secret_spec *sp = row->spec;
	struct lk_vault_lease_secret ls;
	struct lk_vault_error verr;
	char where[600], key[128];
	const json_t *data;

	memset(&ls, 0, sizeof(ls));
	lk_vault_error_clear(&verr);
	/* The configuration key a fix tells the user to correct. */
	if (row->key != NULL)
		textf(key, sizeof(key), "%s.vault_path", row->key->where);
	else
		textf(key, sizeof(key), "secrets[].path");
	if (lk_vault_lease_read(client, sp->path, &ls, &verr) < 0) {
		broker_copy_text(row->error, sizeof(row->error), verr.base.msg);
		if (verr.status == 403 && !lk_vault_error_token_invalid(&verr)) {
			policy_target(vc, lg, where, sizeof(where));
			textf(row->fix, sizeof(row->fix), "the token may not read %s: %s:\n"
				 "    path \"%s\" { capabilities = [\"read\"] }", sp->path, where,
				 sp->path);
		} else if (verr.status == 404 && sp->kind == BROKER_KIND_KV2 &&
			   strstr(sp->path, "/data/") == NULL) {
			textf(row->fix, sizeof(row->fix), "a KV v2 secret is read at MOUNT/data/"
				 "NAME: set %s to the data/ path (for secret/app/db, "
				 "secret/data/app/db), and grant read on that path", key);
		} else if (verr.status == 404) {
			textf(row->fix, sizeof(row->fix), "nothing at %s (%s): write the secret, or "
				 "correct %s (a KV v2 secret is read at MOUNT/data/NAME)",
				 sp->path, lk_vault_not_found_name(verr.not_found), key);
		} else {
			textf(row->fix, sizeof(row->fix), "the backend refused the read: see the "
				 "error");
		}
		goto out;
	}
	data = broker_secret_data(sp, &ls);
	if (data == NULL) {
		textf(row->error, sizeof(row->error), "GET /v1/%s: the KV version has no data",
			 sp->path);
		textf(row->fix, sizeof(row->fix), "the latest version is deleted or destroyed: "
			 "undelete it or write a new version");
		goto out;
	}
	if (row->key != NULL && !key_field_ok(row, data))
		goto out;
	row->read_ok = true;
	row->nkeys = json_object_size(data);
	row->leased = ls.lease_id != NULL && sp->kind != BROKER_KIND_KV1 &&
		      sp->kind != BROKER_KIND_KV2;
	row->ttl_s = ls.lease_duration_s;
	row->renewable = row->leased && ls.renewable;
	if (row->leased) {
		/* The check must not leave a credential behind. */
		lk_vault_error_clear(&verr);
		if (lk_vault_lease_revoke(client, ls.lease_id, NULL, &verr) == 0)
			row->lease_revoked = true;
		else
			textf(row->fix, sizeof(row->fix), "the lease this check created could not "
				 "be revoked (%s): it expires on its own; grant update on "
				 "sys/leases/revoke", verr.base.msg);
	}
out:
	lk_vault_lease_secret_clear(&ls);
}

/* ---- output ---- */

static void
ttl_text(const struct online_row *row, char *out, size_t outlen)
{
	if (!row->read_ok || row->ttl_s <= 0)
		textf(out, outlen, "-");
	else
		lk_duration_format(row->ttl_s * 1000, out, outlen);
}

static void
print_table(FILE *out, const char *file, const struct online_login *lg,
	    const struct online_row *rows, size_t n, bool token_revoked)
{
	int wname = 6, wpath = 4;
	char policies[512], ttl[32];

	join_list(lg->policies, policies, sizeof(policies));
	if (lg->ok) {
		if (lg->never_expires)
			textf(ttl, sizeof(ttl), "never expires");
		else
			lk_duration_format(lg->ttl_s * 1000, ttl, sizeof(ttl));
		fprintf(out, "%s: login (%s): ok, policies %s, token TTL %s%s\n", file, lg->method,
			policies, ttl, lg->renewable ? ", renewable" : "");
	} else {
		fprintf(out, "%s: login (%s): FAILED: %s\n", file, lg->method, lg->error);
		fprintf(out, "  fix: %s\n", lg->fix);
	}
	for (size_t i = 0; i < n; i++) {
		if ((int)strlen(rows[i].spec->name) > wname)
			wname = (int)strlen(rows[i].spec->name);
		if ((int)strlen(rows[i].spec->path) > wpath)
			wpath = (int)strlen(rows[i].spec->path);
	}
	fprintf(out, "\n%-*s  %-*s  %-5s  %-16s  %-8s  %-9s  %-4s  %s\n", wname, "SECRET", wpath,
		"PATH", "LOGIN", "CAPABILITY", "TTL", "RENEWABLE", "KEYS", "RESULT");
	for (size_t i = 0; i < n; i++) {
		const struct online_row *r = &rows[i];
		char keys[24];

		ttl_text(r, ttl, sizeof(ttl));
		textf(keys, sizeof(keys), r->read_ok ? "%zu" : "-", r->nkeys);
		fprintf(out, "%-*s  %-*s  %-5s  %-16s  %-8s  %-9s  %-4s  %s\n", wname, r->spec->name,
			wpath, r->spec->path, lg->ok ? "ok" : "no", r->caps, ttl,
			!r->read_ok ? "-" : r->renewable ? "yes" : "no", keys,
			!lg->ok ? "not checked" : !r->read_ok ? "FAILED" :
			r->lease_revoked ? "ok (lease revoked)" : r->leased ? "ok (lease left)" :
			"ok");
	}
	for (size_t i = 0; i < n; i++) {
		const struct online_row *r = &rows[i];

		if (r->error[0] == '\0' && r->fix[0] == '\0')
			continue;
		fprintf(out, "\n%s:\n", r->spec->name);
		if (r->error[0] != '\0')
			fprintf(out, "  error: %s\n", r->error);
		if (r->fix[0] != '\0')
			fprintf(out, "  fix: %s\n", r->fix);
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].lease_revoked) {
			fprintf(out, "\nEach dynamic secret was read once to check it; the lease that "
				"read created was revoked at once.\n");
			break;
		}
	if (token_revoked)
		fprintf(out, "The token this check logged in for was revoked.\n");
}

static void
print_json(FILE *out, const char *file, const struct online_login *lg,
	   const struct online_row *rows, size_t n, bool ok, bool token_revoked)
{
	json_t *root, *login, *list = json_array();
	char *text;

	login = json_pack("{s:s, s:b}", "method", lg->method, "ok", lg->ok);
	if (lg->ok) {
		json_object_set(login, "policies", lg->policies);
		json_object_set_new(login, "ttl_s", lg->never_expires ? json_null() :
				    json_integer(lg->ttl_s));
		json_object_set_new(login, "renewable", json_boolean(lg->renewable));
		json_object_set_new(login, "token_revoked", json_boolean(token_revoked));
	} else {
		json_object_set_new(login, "error", json_string(lg->error));
		json_object_set_new(login, "fix", json_string(lg->fix));
	}
	for (size_t i = 0; i < n; i++) {
		const struct online_row *r = &rows[i];
		json_t *row = json_pack("{s:s, s:s, s:b, s:b}", "name", r->spec->name, "path",
					r->spec->path, "login_ok", lg->ok, "ok", lg->ok && r->read_ok);
		json_t *caps = json_array();
		char copy[sizeof(r->caps)], *save = NULL;

		/* "unknown" stays a null: the backend did not say. */
		broker_copy_text(copy, sizeof(copy), r->caps);
		for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
			json_array_append_new(caps, json_string(t));
		json_object_set_new(row, "capabilities", strcmp(r->caps, "unknown") == 0 ?
				    (json_decref(caps), json_null()) : caps);

		if (r->read_ok) {
			json_object_set_new(row, "ttl_s", json_integer(r->ttl_s));
			json_object_set_new(row, "renewable", json_boolean(r->renewable));
			json_object_set_new(row, "keys", json_integer((json_int_t)r->nkeys));
			json_object_set_new(row, "leased", json_boolean(r->leased));
			json_object_set_new(row, "lease_revoked", json_boolean(r->lease_revoked));
		}
		if (r->error[0] != '\0')
			json_object_set_new(row, "error", json_string(r->error));
		if (r->fix[0] != '\0')
			json_object_set_new(row, "fix", json_string(r->fix));
		json_array_append_new(list, row);
	}
	root = json_pack("{s:s, s:b, s:o, s:o}", "config", file, "ok", ok, "login", login,
			 "secrets", list);
	text = json_dumps(root, JSON_INDENT(2));
	if (text != NULL)
		fprintf(out, "%s\n", text);
	free(text);
	json_decref(root);
}

int
broker_check_online(struct broker_config *cfg, bool as_json, FILE *out)
{
	struct lk_vault_client *client = NULL;
	struct lk_vault_error verr;
	struct online_login lg;
	struct online_row *rows;
	size_t n = 0;
	bool ok, token_revoked = false;
	int status = LK_EXIT_FAILURE;
	struct broker_secret_spec *key_specs = NULL;
	size_t nkeys = 0;

	memset(&lg, 0, sizeof(lg));
	/* The decryption keys read from the backend: the top-level one and the secrets' own. */
	for (size_t i = 0; i < cfg->nsecrets; i++)
		nkeys += cfg->secrets[i].from_file != NULL &&
			 cfg->secrets[i].from_file->decryption_key != NULL &&
			 cfg->secrets[i].from_file->decryption_key->vault_path != NULL;
	nkeys += cfg->decryption_key != NULL && cfg->decryption_key->vault_path != NULL;
	rows = calloc(cfg->nsecrets + nkeys + 1, sizeof(*rows));
	key_specs = calloc(nkeys + 1, sizeof(*key_specs));
	if (rows == NULL || key_specs == NULL) {
		free(key_specs);
		fprintf(stderr, "latchkey broker: out of memory\n");
		return LK_EXIT_FAILURE;
	}
	if (cfg->vault.connect_timeout_ms <= 0)
		cfg->vault.connect_timeout_ms = BROKER_VAULT_CONNECT_TIMEOUT_MS;
	if (cfg->vault.timeout_ms <= 0)
		cfg->vault.timeout_ms = BROKER_VAULT_TIMEOUT_MS;
	lk_vault_error_clear(&verr);
	if (lk_vault_client_new(&cfg->vault, &client, &verr) < 0) {
		fprintf(stderr, "latchkey broker: %s: vault: %s\n", cfg->file, verr.base.msg);
		status = LK_EXIT_USAGE;
		goto out;
	}
	/* The secrets read from the backend; those read from files have nothing to ask it. */
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		if (cfg->secrets[i].from_file != NULL)
			continue;
		rows[n].spec = &cfg->secrets[i];
		textf(rows[n].caps, sizeof(rows[n].caps), "%s", "unknown");
		n++;
	}
	nkeys = 0;
	for (size_t i = 0; i <= cfg->nsecrets; i++) {
		const struct broker_key_spec *k = i < cfg->nsecrets ?
			(cfg->secrets[i].from_file != NULL ? cfg->secrets[i].from_file->decryption_key :
			 NULL) : cfg->decryption_key;

		if (k == NULL || k->vault_path == NULL)
			continue;
		key_specs[nkeys].name = k->where;
		key_specs[nkeys].path = k->vault_path;
		key_specs[nkeys].kind = BROKER_KIND_AUTO;
		rows[n].spec = &key_specs[nkeys++];
		rows[n].key = k;
		textf(rows[n].caps, sizeof(rows[n].caps), "%s", "unknown");
		n++;
	}
	do_login(client, &cfg->vault, &lg);
	if (lg.ok) {
		if (n > 0)
			ask_capabilities(client, rows, n);
		for (size_t i = 0; i < n; i++) {
			check_secret(client, &cfg->vault, &lg, &rows[i]);
			if (!rows[i].read_ok && rows[i].fix[0] == '\0' &&
			    strcmp(rows[i].caps, "unknown") != 0 && !caps_allow_read(rows[i].caps))
				textf(rows[i].fix, sizeof(rows[i].fix), "the token has [%s] on %s, "
					 "not read", rows[i].caps, rows[i].spec->path);
		}
		/* A token of the user's own (method token) is theirs to keep; one this check
		 * logged in for is not left behind. */
		if (cfg->vault.auth.method == LK_VAULT_AUTH_APPROLE ||
		    cfg->vault.auth.method == LK_VAULT_AUTH_KUBERNETES) {
			lk_vault_error_clear(&verr);
			token_revoked = lk_vault_auth_revoke_self(client, NULL, &verr) == 0;
		}
	}
	ok = lg.ok;
	for (size_t i = 0; i < n; i++)
		ok = ok && rows[i].read_ok;
	if (as_json)
		print_json(out, cfg->file, &lg, rows, n, ok, token_revoked);
	else
		print_table(out, cfg->file, &lg, rows, n, token_revoked);
	if (!as_json && n - nkeys < cfg->nsecrets) {
		fprintf(out, "read from files, not asked of the backend:");
		for (size_t i = 0; i < cfg->nsecrets; i++)
			if (cfg->secrets[i].from_file != NULL)
				fprintf(out, " %s", cfg->secrets[i].name);
		fputc('\n', out);
	}
	status = ok ? LK_EXIT_OK : LK_EXIT_FAILURE;
out:
	json_decref(lg.policies);
	free(key_specs);            /* its strings belong to the keys */
	free(rows);
	lk_vault_client_free(client);
	return status;
}
