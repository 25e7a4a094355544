/* pg.c — real database users for the database engine, through libpq, the way Vault's
 * postgresql-database-plugin makes them: statements run with {{name}}, {{username}},
 * {{password}} and {{expiration}} substituted raw into the template (generated names and
 * passwords hold only [A-Za-z0-9_-]), each statement split on ';' unless it holds a
 * dollar-quoted body, all in one transaction; the default revocation revokes privileges
 * and drops the role with quoted identifiers. Error texts are libpq's first line with the
 * connection's password cut out.
 *
 * libpq is loaded with dlopen when the first connection is opened, not linked: the other
 * commands of the binary (the broker, the sync controller) never map it or the libraries
 * it brings in. */
#include "devserver/pg.h"

#include <dlfcn.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds libpq may take to connect, and a statement to run: both happen under the dev
 * server's one lock. */
#define PG_CONNECT_TIMEOUT "5"
#define PG_STATEMENT_TIMEOUT "SET statement_timeout = '10s'"
/* Longest connection string after substitution, and longest statement after it. */
#define PG_CONNINFO_MAX 4096
#define PG_STATEMENT_MAX (64u << 10)

/* The shared object loaded, by its soname (Debian's libpq5). */
#define PG_LIBPQ_SONAME "libpq.so.5"

/* libpq's functions, resolved from PG_LIBPQ_SONAME once (pg_load). */
static struct {
	__typeof__(PQclear) *PQclear;
	__typeof__(PQconnectdbParams) *PQconnectdbParams;
	__typeof__(PQerrorMessage) *PQerrorMessage;
	__typeof__(PQescapeIdentifier) *PQescapeIdentifier;
	__typeof__(PQexec) *PQexec;
	__typeof__(PQexecParams) *PQexecParams;
	__typeof__(PQfinish) *PQfinish;
	__typeof__(PQfreemem) *PQfreemem;
	__typeof__(PQgetvalue) *PQgetvalue;
	__typeof__(PQntuples) *PQntuples;
	__typeof__(PQresultErrorMessage) *PQresultErrorMessage;
	__typeof__(PQresultStatus) *PQresultStatus;
	__typeof__(PQstatus) *PQstatus;
} pq;
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static char pq_error[256];          /* why loading failed; "" when it worked */

static void
pg_load_once(void)
{
	void *h = dlopen(PG_LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (h == NULL) {
		snprintf(pq_error, sizeof(pq_error), "cannot load %s (install libpq5): %s",
		    PG_LIBPQ_SONAME, dlerror());
		return;
	}
	if (missing == NULL && (*(void **)&pq.PQclear = dlsym(h, "PQclear")) == NULL)
		missing = "PQclear";
	if (missing == NULL && (*(void **)&pq.PQconnectdbParams = dlsym(h, "PQconnectdbParams")) == NULL)
		missing = "PQconnectdbParams";
	if (missing == NULL && (*(void **)&pq.PQerrorMessage = dlsym(h, "PQerrorMessage")) == NULL)
		missing = "PQerrorMessage";
	if (missing == NULL && (*(void **)&pq.PQescapeIdentifier = dlsym(h, "PQescapeIdentifier")) == NULL)
		missing = "PQescapeIdentifier";
	if (missing == NULL && (*(void **)&pq.PQexec = dlsym(h, "PQexec")) == NULL)
		missing = "PQexec";
	if (missing == NULL && (*(void **)&pq.PQexecParams = dlsym(h, "PQexecParams")) == NULL)
		missing = "PQexecParams";
	if (missing == NULL && (*(void **)&pq.PQfinish = dlsym(h, "PQfinish")) == NULL)
		missing = "PQfinish";
	if (missing == NULL && (*(void **)&pq.PQfreemem = dlsym(h, "PQfreemem")) == NULL)
		missing = "PQfreemem";
	if (missing == NULL && (*(void **)&pq.PQgetvalue = dlsym(h, "PQgetvalue")) == NULL)
		missing = "PQgetvalue";
	if (missing == NULL && (*(void **)&pq.PQntuples = dlsym(h, "PQntuples")) == NULL)
		missing = "PQntuples";
	if (missing == NULL && (*(void **)&pq.PQresultErrorMessage = dlsym(h, "PQresultErrorMessage")) == NULL)
		missing = "PQresultErrorMessage";
	if (missing == NULL && (*(void **)&pq.PQresultStatus = dlsym(h, "PQresultStatus")) == NULL)
		missing = "PQresultStatus";
	if (missing == NULL && (*(void **)&pq.PQstatus = dlsym(h, "PQstatus")) == NULL)
		missing = "PQstatus";
	if (missing != NULL) {
		snprintf(pq_error, sizeof(pq_error), "%s has no symbol %s", PG_LIBPQ_SONAME, missing);
		dlclose(h);
	}
}

/* Loads libpq the first time; 0, or -ENOSYS with err set. */
static int
pg_load(char *err, size_t errlen)
{
	pthread_once(&pq_once, pg_load_once);
	if (pq_error[0] != '\0') {
		snprintf(err, errlen, "%s", pq_error);
		return -ENOSYS;
	}
	return 0;
}

struct dev_pg {
	PGconn *conn;
	char password[DEV_PG_SECRET_MAX];  /* the config's, to cut out of error texts */
	const char *generated;             /* borrowed during dev_pg_run: the new user's password */
};

/* Removes every copy of password (NULL or "": nothing) from line; each cut shortens it,
 * so this ends. */
static void
cut_all(char *line, const char *password)
{
	size_t n = password != NULL ? strlen(password) : 0;
	char *hit;

	while (n > 0 && (hit = strstr(line, password)) != NULL)
		memmove(hit, hit + n, strlen(hit + n) + 1);
}

/* err := what, and libpq's first line with every copy of the password cut out (each cut
 * shortens the text, so this ends). */
static void
set_error(char *err, size_t errlen, const char *what, const char *detail, const char *password)
{
	size_t len = detail != NULL ? strcspn(detail, "\n") : 0;
	char *line = strndup(detail != NULL ? detail : "", len);

	if (line == NULL) {
		snprintf(err, errlen, "%s", what);
		return;
	}
	/* Cut the whole line before it is shortened to fit err, so that no part of a
	 * password can be left at the place where it is cut. */
	cut_all(line, password);
	snprintf(err, errlen, "%s%s%s", what, what[0] != '\0' && line[0] != '\0' ? ": " : "", line);
	sodium_memzero(line, len);
	free(line);
}

/* "%XX" for every byte outside RFC 3986's unreserved set, as Go's url.PathEscape does
 * for the user and password of a URL. */
static int
url_escape(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p) != NULL) {
			if (o + 1 >= outlen)
				return -E2BIG;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= outlen)
				return -E2BIG;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* Replaces every {{key}} of vars (NULL-terminated key, value pairs) in text into out.
 * Unknown {{...}} are left as they are, as Vault's QueryHelper does. */
static int
substitute(const char *text, const char *const *vars, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = text; *p != '\0';) {
		const char *val = NULL;
		size_t skip = 0;

		if (p[0] == '{' && p[1] == '{') {
			for (size_t i = 0; vars[i] != NULL; i += 2) {
				size_t kl = strlen(vars[i]);
				if (strncmp(p + 2, vars[i], kl) == 0 && strncmp(p + 2 + kl, "}}", 2) == 0) {
					val = vars[i + 1];
					skip = kl + 4;
					break;
				}
			}
		}
		if (val != NULL) {
			size_t vl = strlen(val);
			if (o + vl >= outlen)
				return -E2BIG;
			memcpy(out + o, val, vl);
			o += vl;
			p += skip;
		} else {
			if (o + 1 >= outlen)
				return -E2BIG;
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return 0;
}

/* A string of the config's connection_details (the plugin's members); NULL when absent.
 * Borrowed. */
static const char *
detail(const json_t *config, const char *key)
{
	return json_string_value(json_object_get(json_object_get(config, "connection_details"), key));
}

bool
dev_pg_configured(const json_t *config)
{
	const char *plugin = json_string_value(json_object_get(config, "plugin_name"));
	const char *url = detail(config, "connection_url");

	return plugin != NULL && strcmp(plugin, "postgresql-database-plugin") == 0 && url != NULL &&
	    *url != '\0';
}

int
dev_pg_open(const json_t *config, struct dev_pg **ret, char *err, size_t errlen)
{
	const char *url = detail(config, "connection_url");
	const char *user = detail(config, "username");
	const char *pass = detail(config, "password");
	char euser[DEV_PG_SECRET_MAX * 3], epass[DEV_PG_SECRET_MAX * 3];
	const char *keys[] = { "connect_timeout", "dbname", NULL };
	const char *values[3] = { PG_CONNECT_TIMEOUT, NULL, NULL };
	char *conninfo = NULL;
	struct dev_pg *pg = NULL;
	PGresult *res;
	bool is_url;
	int r;

	if (url == NULL) {
		set_error(err, errlen, "connection_url is not set", NULL, NULL);
		return -EINVAL;
	}
	if ((r = pg_load(err, errlen)) < 0)
		return r;
	user = user != NULL ? user : "";
	pass = pass != NULL ? pass : "";
	if (strlen(user) >= DEV_PG_SECRET_MAX || strlen(pass) >= DEV_PG_SECRET_MAX) {
		set_error(err, errlen, "username or password too long", NULL, NULL);
		return -E2BIG;
	}
	is_url = strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
	conninfo = sodium_malloc(PG_CONNINFO_MAX);
	pg = calloc(1, sizeof(*pg));
	if (conninfo == NULL || pg == NULL) {
		set_error(err, errlen, "out of memory", NULL, NULL);
		r = -ENOMEM;
		goto out;
	}
	snprintf(pg->password, sizeof(pg->password), "%s", pass);
	/* In a URL the user and password are escaped (Vault: url.PathEscape); in the
	 * key=value form they go in raw, as Vault's QueryHelper puts them. */
	if (is_url ? url_escape(user, euser, sizeof(euser)) < 0 || url_escape(pass, epass, sizeof(epass)) < 0 :
	    (snprintf(euser, sizeof(euser), "%s", user), snprintf(epass, sizeof(epass), "%s", pass), 0)) {
		r = -E2BIG;
		set_error(err, errlen, "username or password too long", NULL, NULL);
		goto out;
	}
	if (substitute(url, (const char *[]){ "username", euser, "password", epass, NULL }, conninfo,
	    PG_CONNINFO_MAX) < 0) {
		r = -E2BIG;
		set_error(err, errlen, "connection_url too long", NULL, NULL);
		goto out;
	}
	values[1] = conninfo;
	pg->conn = pq.PQconnectdbParams(keys, values, 1);
	if (pg->conn == NULL || pq.PQstatus(pg->conn) != CONNECTION_OK) {
		set_error(err, errlen, "failed to connect to the database",
		    pg->conn != NULL ? pq.PQerrorMessage(pg->conn) : "out of memory", pass);
		r = -ECONNREFUSED;
		goto out;
	}
	res = pq.PQexec(pg->conn, PG_STATEMENT_TIMEOUT);
	pq.PQclear(res);
	*ret = pg;
	pg = NULL;
	r = 0;
out:
	sodium_memzero(euser, sizeof(euser));
	sodium_memzero(epass, sizeof(epass));
	sodium_free(conninfo);
	dev_pg_close(pg);
	return r;
}

void
dev_pg_close(struct dev_pg *pg)
{
	if (pg == NULL)
		return;
	if (pg->conn != NULL)
		pq.PQfinish(pg->conn);
	sodium_memzero(pg->password, sizeof(pg->password));
	free(pg);
}

/* Runs one query; false with err set when it fails. */
static bool
exec_one(struct dev_pg *pg, const char *query, char *err, size_t errlen)
{
	PGresult *res = pq.PQexec(pg->conn, query);
	ExecStatusType st = res != NULL ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok) {
		/* The server may quote the statement near an error: a password substituted
		 * into it must not come back in the text. */
		const char *why = res != NULL ? pq.PQresultErrorMessage(res) :
			pq.PQerrorMessage(pg->conn);
		size_t len = why != NULL ? strcspn(why, "\n") : 0;
		char *line = strndup(why != NULL ? why : "", len);

		/* Both passwords come out of the whole line before it is cut to fit. */
		if (line != NULL)
			cut_all(line, pg->generated);
		set_error(err, errlen, "statement failed", line != NULL ? line : "out of memory",
		    pg->password);
		if (line != NULL) {
			sodium_memzero(line, len);
			free(line);
		}
	}
	pq.PQclear(res);
	return ok;
}

/* Substitutes vars into template (into query, PG_STATEMENT_MAX bytes) and runs it. */
static bool
exec_template(struct dev_pg *pg, const char *template, const char *const *vars, char *query,
	      char *err, size_t errlen)
{
	if (substitute(template, vars, query, PG_STATEMENT_MAX) < 0) {
		set_error(err, errlen, "statement too long", NULL, NULL);
		return false;
	}
	return exec_one(pg, query, err, errlen);
}

int
dev_pg_run(struct dev_pg *pg, const json_t *statements, const char *const *vars, char *err,
	   size_t errlen)
{
	char *query = sodium_malloc(PG_STATEMENT_MAX);
	size_t i;
	json_t *v;
	int r = -EIO;

	if (query == NULL) {
		set_error(err, errlen, "out of memory", NULL, NULL);
		return -ENOMEM;
	}
	for (size_t k = 0; vars[k] != NULL; k += 2)
		if (strcmp(vars[k], "password") == 0)
			pg->generated = vars[k + 1];
	if (!exec_one(pg, "BEGIN", err, errlen))
		goto out;
	json_array_foreach(statements, i, v) {
		const char *stmt = json_string_value(v);
		char *copy, *save = NULL;
		bool ok = true;

		if (stmt == NULL)
			continue;
		/* As Vault: a statement with a dollar-quoted body runs whole; any other is
		 * split on ';' first, and each part gets the substitutions. */
		if (strstr(stmt, "$$") != NULL) {
			if (!exec_template(pg, stmt, vars, query, err, errlen))
				goto rollback;
			continue;
		}
		copy = strdup(stmt);
		if (copy == NULL) {
			set_error(err, errlen, "out of memory", NULL, NULL);
			goto rollback;
		}
		for (char *part = strtok_r(copy, ";", &save); part != NULL && ok;
		     part = strtok_r(NULL, ";", &save))
			if (strspn(part, " \t\r\n") != strlen(part))
				ok = exec_template(pg, part, vars, query, err, errlen);
		free(copy);
		if (!ok)
			goto rollback;
	}
	if (!exec_one(pg, "COMMIT", err, errlen))
		goto out;
	r = 0;
	goto out;
rollback:
	pq.PQclear(pq.PQexec(pg->conn, "ROLLBACK"));
out:
	pg->generated = NULL;
	sodium_memzero(query, PG_STATEMENT_MAX);
	sodium_free(query);
	return r;
}

/* Runs head + quoted a [+ mid + quoted b] outside a transaction (the default revocation
 * goes on past errors). */
static bool
exec_quoted(struct dev_pg *pg, const char *head, const char *a, const char *mid, const char *b,
	    char *err, size_t errlen)
{
	char *qa = pq.PQescapeIdentifier(pg->conn, a, strlen(a));
	char *qb = b != NULL ? pq.PQescapeIdentifier(pg->conn, b, strlen(b)) : NULL;
	char query[1024];
	bool ok = false;

	if (qa != NULL && (b == NULL || qb != NULL)) {
		snprintf(query, sizeof(query), "%s%s%s%s", head, qa, b != NULL ? mid : "",
		    qb != NULL ? qb : "");
		ok = exec_one(pg, query, err, errlen);
	} else {
		set_error(err, errlen, "cannot quote an identifier", pq.PQerrorMessage(pg->conn), pg->password);
	}
	pq.PQfreemem(qa);
	pq.PQfreemem(qb);
	return ok;
}

int
dev_pg_drop_user(struct dev_pg *pg, const char *username, char *err, size_t errlen)
{
	const char *params[1] = { username };
	PGresult *res;
	bool exists, ok = true;
	char last[512] = "";

	res = pq.PQexecParams(pg->conn, "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, NULL, params, NULL,
	    NULL, 0);
	if (res == NULL || pq.PQresultStatus(res) != PGRES_TUPLES_OK) {
		set_error(err, errlen, "looking up the role failed",
		    res != NULL ? pq.PQresultErrorMessage(res) : pq.PQerrorMessage(pg->conn), pg->password);
		pq.PQclear(res);
		return -EIO;
	}
	exists = pq.PQntuples(res) > 0;
	pq.PQclear(res);
	if (!exists)
		return 0;
	/* As Vault's defaultDeleteUser: revoke in every schema the role has grants in, then
	 * in public, then CONNECT on the database, going on past errors; then drop. */
	res = pq.PQexecParams(pg->conn, "SELECT DISTINCT table_schema FROM information_schema.role_column_grants "
	    "WHERE grantee = $1", 1, NULL, params, NULL, NULL, 0);
	for (int i = 0; res != NULL && pq.PQresultStatus(res) == PGRES_TUPLES_OK && i < pq.PQntuples(res); i++) {
		const char *schema = pq.PQgetvalue(res, i, 0);
		ok &= exec_quoted(pg, "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA ", schema, " FROM ",
		    username, last, sizeof(last));
		ok &= exec_quoted(pg, "REVOKE USAGE ON SCHEMA ", schema, " FROM ", username, last, sizeof(last));
	}
	pq.PQclear(res);
	ok &= exec_quoted(pg, "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM ", username, NULL,
	    NULL, last, sizeof(last));
	ok &= exec_quoted(pg, "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM ", username,
	    NULL, NULL, last, sizeof(last));
	ok &= exec_quoted(pg, "REVOKE USAGE ON SCHEMA public FROM ", username, NULL, NULL, last, sizeof(last));
	res = pq.PQexec(pg->conn, "SELECT current_database()");
	if (res != NULL && pq.PQresultStatus(res) == PGRES_TUPLES_OK && pq.PQntuples(res) == 1)
		ok &= exec_quoted(pg, "REVOKE CONNECT ON DATABASE ", pq.PQgetvalue(res, 0, 0), " FROM ", username,
		    last, sizeof(last));
	pq.PQclear(res);
	if (!ok) {
		snprintf(err, errlen, "%s", last);
		return -EIO;
	}
	return exec_quoted(pg, "DROP ROLE IF EXISTS ", username, NULL, NULL, err, errlen) ? 0 : -EIO;
}
