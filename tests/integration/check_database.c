/* check_database.c — real database credentials end to end: a PostgreSQL of its own
 * (initdb in a temporary directory, listening only on a Unix socket there), `latchkey dev`
 * with a database/config that reaches it, and `latchkey broker` serving the credential.
 * The app's credential logs in; after a rotation the new one logs in and, once the grace
 * period is over, the old one cannot; at broker shutdown every role it had is gone from
 * pg_roles. A second test drives latchkey dev directly: renewal moves VALID UNTIL, and
 * every way a lease ends drops its role. PostgreSQL's server binaries missing: a skip.
 *
 * PostgreSQL starts once for the test case (an unchecked fixture, in the runner process)
 * and is stopped there whatever the test did; it runs as the user postgres since initdb
 * refuses root. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* The superuser latchkey dev connects as, and its password (a fixture, not a secret). */
#define PG_ADMIN "vault"
#define PG_ADMIN_PASSWORD "pg-admin-fixture-3b8e"   /* latchkey-scan: allow */
/* Only a Unix socket, in the temporary directory: the port names the socket file. */
#define PG_PORT "54329"
/* The database role's lease times: short, so that a rotation comes within seconds. */
#define DB_DEFAULT_TTL "3s"
#define DB_MAX_TTL "6s"

static struct {
	char bindir[512];
	char *dir;             /* owned by the postgres user: data/, the socket, pg.log */
	pid_t pid;             /* the postmaster, 0 when not running */
	char why[256];         /* why PostgreSQL is not here (a skip), "" when it is */
	char error[512];       /* why it did not start although it is here (a failure) */
} pg;

/* The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres. */
static bool
find_bindir(char *out, size_t outlen)
{
	glob_t g;
	bool found = false;

	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
		return false;
	/* glob sorts: the last is the newest version (same number of digits here). */
	for (size_t i = g.gl_pathc; i > 0 && !found; i--) {
		char postgres[600];

		snprintf(out, outlen, "%.*s", (int)(strlen(g.gl_pathv[i - 1]) - strlen("/initdb")),
		    g.gl_pathv[i - 1]);
		snprintf(postgres, sizeof(postgres), "%s/postgres", out);
		found = access(postgres, X_OK) == 0;
	}
	globfree(&g);
	return found;
}

/* Forks argv as the postgres user (when root), output to log, dying with the runner.
 * Returns the pid, or -1. */
static pid_t
spawn_as_postgres(const char *const argv[], const char *log)
{
	struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
	pid_t parent = getpid(), pid;

	if (geteuid() == 0 && pw == NULL)
		return -1;
	pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (pw != NULL && (fchown(fd, pw->pw_uid, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0))
		_exit(126);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static int
wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *
pgpath(const char *name)
{
	return t_path(pg.dir, name);
}

static bool
pg_ready(void *arg)
{
	char conninfo[1024];

	(void)arg;
	snprintf(conninfo, sizeof(conninfo), "host=%s port=" PG_PORT " dbname=postgres user=" PG_ADMIN
	    " password=" PG_ADMIN_PASSWORD " connect_timeout=2", pg.dir);
	return PQping(conninfo) == PQPING_OK;
}

static void
pg_start(void)
{
	char initdb[600], postgres[600], sockdir[700];
	struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
	pid_t pid;

	pg.why[0] = pg.error[0] = '\0';
	if (!find_bindir(pg.bindir, sizeof(pg.bindir))) {
		snprintf(pg.why, sizeof(pg.why), "PostgreSQL's server binaries (initdb, postgres) are not "
		    "under /usr/lib/postgresql/*/bin (tools/deps.sh installs postgresql)");
		return;
	}
	if (geteuid() == 0 && pw == NULL) {
		snprintf(pg.error, sizeof(pg.error), "running as root and there is no user postgres to "
		    "run PostgreSQL as (initdb refuses root)");
		return;
	}
	pg.dir = t_tmpdir();
	if (pg.dir == NULL || (pw != NULL && chown(pg.dir, pw->pw_uid, pw->pw_gid) < 0) ||
	    t_write_file(pgpath("pwfile"), PG_ADMIN_PASSWORD "\n", 0600) < 0 ||
	    (pw != NULL && chown(pgpath("pwfile"), pw->pw_uid, pw->pw_gid) < 0)) {
		snprintf(pg.error, sizeof(pg.error), "cannot prepare a directory for PostgreSQL");
		return;
	}
	snprintf(initdb, sizeof(initdb), "%s/initdb", pg.bindir);
	snprintf(postgres, sizeof(postgres), "%s/postgres", pg.bindir);
	pid = spawn_as_postgres((const char *[]){ initdb, "-D", pgpath("data"), "-U", PG_ADMIN,
	    "--pwfile", pgpath("pwfile"), "-A", "scram-sha-256", "-E", "UTF8", "--no-locale",
	    "--no-sync", NULL }, pgpath("initdb.log"));
	if (pid < 0 || wait_exit(pid) != 0) {
		char *log = t_read_file(pgpath("initdb.log"));
		snprintf(pg.error, sizeof(pg.error), "initdb failed: %.400s", log != NULL ? log : "");
		free(log);
		return;
	}
	snprintf(sockdir, sizeof(sockdir), "unix_socket_directories=%s", pg.dir);
	pg.pid = spawn_as_postgres((const char *[]){ postgres, "-D", pgpath("data"), "-p", PG_PORT,
	    "-c", "listen_addresses=", "-c", sockdir, "-c", "fsync=off", "-c", "full_page_writes=off",
	    "-c", "synchronous_commit=off", "-c", "max_connections=30", NULL }, pgpath("pg.log"));
	if (pg.pid < 0)
		pg.pid = 0;
}

static void
pg_stop(void)
{
	struct t_proc p = { .pid = pg.pid };

	if (pg.pid > 0)
		t_stop(&p, SIGINT, 15000); /* fast shutdown; SIGKILL after the wait */
	pg.pid = 0;
	if (pg.dir != NULL) {
		t_rmrf(pg.dir);
		free(pg.dir);
		pg.dir = NULL;
	}
}

/* ---- helpers ---- */

static PGconn *
pg_connect(const char *user, const char *password)
{
	const char *keys[] = { "host", "port", "dbname", "user", "password", "connect_timeout", NULL };
	const char *values[] = { pg.dir, PG_PORT, "postgres", user, password, "5", NULL };

	return PQconnectdbParams(keys, values, 0);
}

/* Whether user/password can log in (and is who the server says). */
static bool
can_login(const char *user, const char *password)
{
	PGconn *c = pg_connect(user, password);
	bool ok = PQstatus(c) == CONNECTION_OK;

	if (ok) {
		PGresult *r = PQexec(c, "SELECT current_user");
		ok = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), user) == 0;
		PQclear(r);
	}
	PQfinish(c);
	return ok;
}

/* One value of a query run as the superuser, param $1; "" when no row. Static buffer. */
static const char *
admin_query(const char *sql, const char *param)
{
	static char out[256];
	PGconn *c = pg_connect(PG_ADMIN, PG_ADMIN_PASSWORD);
	PGresult *r;

	out[0] = '\0';
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "superuser login: %s", PQerrorMessage(c));
	r = PQexecParams(c, sql, param != NULL ? 1 : 0, NULL, param != NULL ? &param : NULL, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	if (PQntuples(r) > 0)
		snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return out;
}

static long
roles_left(void)
{
	return atol(admin_query("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-token-%'", NULL));
}

struct fixture {
	struct t_dev dev;
	char *dir;
	char sock[600], cfg[600], log[600], token_file[600];
	struct t_proc broker;
};

static long
dev_call(struct fixture *f, const char *method, const char *path, const char *body, char **ret)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", f->dev.addr, path);
	return t_http(method, url, NULL, f->dev.token, body, ret);
}

/* The broker's current credential: version, username, password (static buffers). */
struct cred {
	json_int_t version;
	char username[128];
	char password[128];
};

static bool
broker_cred(struct fixture *f, struct cred *out)
{
	char *body = NULL;
	json_t *j = NULL;
	bool ok = false;

	if (t_http("GET", "http://broker/v1/secrets/db", f->sock, NULL, NULL, &body) == 200 && body != NULL)
		j = json_loads(body, 0, NULL);
	if (j != NULL) {
		const json_t *data = json_object_get(j, "data");
		const char *u = json_string_value(json_object_get(data, "username"));
		const char *p = json_string_value(json_object_get(data, "password"));
		if (u != NULL && p != NULL) {
			out->version = json_integer_value(json_object_get(j, "version"));
			snprintf(out->username, sizeof(out->username), "%s", u);
			snprintf(out->password, sizeof(out->password), "%s", p);
			ok = true;
		}
	}
	json_decref(j);
	free(body);
	return ok;
}

struct rotation_wait {
	struct fixture *f;
	json_int_t after;
	struct cred cred;
};

static bool
rotated(void *arg)
{
	struct rotation_wait *w = arg;

	return broker_cred(w->f, &w->cred) && w->cred.version > w->after;
}

static bool
served(void *arg)
{
	struct rotation_wait *w = arg;

	return broker_cred(w->f, &w->cred);
}

struct login_wait {
	const struct cred *cred;
};

static bool
login_refused(void *arg)
{
	const struct login_wait *w = arg;

	return !can_login(w->cred->username, w->cred->password);
}

static bool
no_roles_left(void *arg)
{
	(void)arg;
	return roles_left() == 0;
}

static bool
role_gone(void *arg)
{
	return strcmp(admin_query("SELECT count(*) FROM pg_roles WHERE rolname = $1", arg), "0") == 0;
}

START_TEST(test_postgres_end_to_end)
{
	struct fixture f;
	struct rotation_wait w = { &f, 0, { 0 } };
	struct cred first;
	char body[2048];
	const char *argv[] = { t_latchkey_bin(), "broker", "--config", f.cfg, "--log-level", "debug", NULL };
	int status;

	if (pg.why[0] != '\0') {
		t_skip("PostgreSQL end to end: %s", pg.why);
		return;
	}
	ck_assert_msg(pg.error[0] == '\0', "PostgreSQL: %s", pg.error);
	ck_assert_msg(pg.pid > 0 && t_wait_until(pg_ready, NULL, T_DEADLINE_MS),
	    "PostgreSQL did not start: %s", pg.dir != NULL ? t_read_file(pgpath("pg.log")) : "");
	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(t_dev_start(&f.dev, NULL), 0);
	f.dir = t_tmpdir();
	snprintf(f.sock, sizeof(f.sock), "%s/broker.sock", f.dir);
	snprintf(f.cfg, sizeof(f.cfg), "%s/broker.json", f.dir);
	snprintf(f.log, sizeof(f.log), "%s/broker.log", f.dir);
	snprintf(f.token_file, sizeof(f.token_file), "%s/token", f.dir);
	ck_assert_int_eq(t_write_file(f.token_file, f.dev.token, 0600), 0);

	/* The connection Vault's PostgreSQL plugin would be given, and a role whose two
	 * statements come in one string (split on ';', as Vault does). */
	snprintf(body, sizeof(body), "{\"plugin_name\":\"postgresql-database-plugin\","
	    "\"connection_url\":\"host=%s port=" PG_PORT " dbname=postgres user={{username}} password={{password}}\","
	    "\"username\":\"" PG_ADMIN "\",\"password\":\"" PG_ADMIN_PASSWORD "\",\"allowed_roles\":[\"app\"]}", pg.dir);
	ck_assert_int_eq(dev_call(&f, "POST", "/v1/database/config/pg", body, NULL), 204);
	ck_assert_int_eq(dev_call(&f, "POST", "/v1/database/roles/app",
	    "{\"db_name\":\"pg\",\"default_ttl\":\"" DB_DEFAULT_TTL "\",\"max_ttl\":\"" DB_MAX_TTL "\","
	    "\"creation_statements\":[\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}' "
	    "VALID UNTIL '{{expiration}}'; GRANT CONNECT ON DATABASE postgres TO \\\"{{name}}\\\";\"]}", NULL), 204);

	snprintf(body, sizeof(body),
	    "{\"vault\": {\"address\": \"%s\", \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"}},\n"
	    " \"listen\": {\"socket\": \"%s\", \"mode\": \"0600\"},\n"
	    " \"grace\": \"1s\", \"retry\": {\"initial\": \"200ms\", \"max\": \"1s\"},\n"
	    " \"secrets\": [{\"name\": \"db\", \"path\": \"database/creds/app\", \"required\": true}]}\n",
	    f.dev.addr, f.token_file, f.sock);
	ck_assert_int_eq(t_write_file(f.cfg, body, 0600), 0);
	ck_assert_int_eq(t_spawn(&f.broker, argv, NULL, f.log), 0);
	ck_assert_msg(t_wait_until(served, &w, T_DEADLINE_MS), "the broker served no credential:\n%s",
	    t_read_file(f.log));
	first = w.cred;

	/* The app's credential from the broker socket logs in. */
	ck_assert_msg(can_login(first.username, first.password), "%s cannot log in", first.username);
	/* After a rotation the new credential logs in; after the grace period the old one
	 * no longer can, and its role is gone. */
	w.after = first.version;
	ck_assert_msg(t_wait_until(rotated, &w, T_DEADLINE_MS), "no rotation:\n%s", t_read_file(f.log));
	ck_assert_str_ne(w.cred.username, first.username);
	ck_assert_msg(can_login(w.cred.username, w.cred.password), "the new %s cannot log in",
	    w.cred.username);
	ck_assert_msg(t_wait_until(login_refused, &(struct login_wait){ &first }, T_DEADLINE_MS),
	    "the old %s still logs in", first.username);
	/* Its VALID UNTIL (whole seconds, as Vault writes it) may refuse it a moment before
	 * the revocation drops it. */
	ck_assert_msg(t_wait_until(role_gone, first.username, T_DEADLINE_MS), "the old %s was not dropped",
	    first.username);

	/* At shutdown the broker revokes its leases: every role it had is dropped. */
	ck_assert_int_gt(roles_left(), 0);
	status = t_stop(&f.broker, SIGTERM, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "broker exit %d:\n%s", status,
	    t_read_file(f.log));
	ck_assert_msg(t_wait_until(no_roles_left, NULL, T_DEADLINE_MS), "%ld roles left after shutdown",
	    roles_left());
	ck_assert(!can_login(w.cred.username, w.cred.password));

	status = t_stop(&f.dev.proc, SIGTERM, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "latchkey dev exit %d", status);
	t_dev_stop(&f.dev);
	t_rmrf(f.dir);
	free(f.dir);
}
END_TEST

/* Direct: creds make a role; revoke, revoke-prefix and a token's revocation drop what they
 * end, and the sweeper drops an expired one with no request; errors never hold a password. */
START_TEST(test_postgres_lifecycle)
{
	struct t_dev d;
	char body[2048], *reply = NULL, url[256];
	json_t *j;
	char user[128], lease[512], token[128], valid_until[64];

	if (pg.why[0] != '\0') {
		t_skip("PostgreSQL lifecycle: %s", pg.why);
		return;
	}
	ck_assert_msg(pg.error[0] == '\0', "PostgreSQL: %s", pg.error);
	ck_assert_msg(pg.pid > 0 && t_wait_until(pg_ready, NULL, T_DEADLINE_MS),
	    "PostgreSQL did not start: %s", pg.dir != NULL ? t_read_file(pgpath("pg.log")) : "");
	ck_assert_int_eq(t_dev_start(&d, NULL), 0);
#define DEV(method, path, data, ret) \
	(snprintf(url, sizeof(url), "%s%s", d.addr, path), t_http(method, url, NULL, d.token, data, ret))
	/* A wrong admin password: Vault's verify error, without the password. */
	snprintf(body, sizeof(body), "{\"plugin_name\":\"postgresql-database-plugin\","
	    "\"connection_url\":\"postgresql://{{username}}:{{password}}@/postgres?host=%s&port=" PG_PORT "\","
	    "\"username\":\"" PG_ADMIN "\",\"password\":\"wrong-pw-5d1f\",\"allowed_roles\":\"*\"}", pg.dir);
	ck_assert_int_eq(DEV("POST", "/v1/database/config/pg", body, &reply), 400);
	ck_assert_ptr_nonnull(strstr(reply, "password authentication failed"));
	ck_assert_ptr_null(strstr(reply, "wrong-pw"));
	free(reply);
	/* The URL form, escaped. */
	snprintf(body, sizeof(body), "{\"plugin_name\":\"postgresql-database-plugin\","
	    "\"connection_url\":\"postgresql://{{username}}:{{password}}@/postgres?host=%s&port=" PG_PORT "\","
	    "\"username\":\"" PG_ADMIN "\",\"password\":\"" PG_ADMIN_PASSWORD "\",\"allowed_roles\":\"*\"}", pg.dir);
	ck_assert_int_eq(DEV("POST", "/v1/database/config/pg", body, NULL), 204);
	ck_assert_int_eq(DEV("POST", "/v1/database/roles/short", "{\"db_name\":\"pg\",\"default_ttl\":1,\"max_ttl\":1,"
	    "\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}';\"}", NULL), 204);
	/* Custom revocation statements. */
	ck_assert_int_eq(DEV("POST", "/v1/database/roles/long", "{\"db_name\":\"pg\",\"default_ttl\":\"1h\","
	    "\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}';\","
	    "\"revocation_statements\":[\"DROP ROLE IF EXISTS \\\"{{name}}\\\";\"]}", NULL), 204);
	/* A statement error that quotes the new user's password: the password is cut out of
	 * the error (PostgreSQL's "at or near" names the token whole), and no role is left. */
	ck_assert_int_eq(DEV("POST", "/v1/database/roles/leaky", "{\"db_name\":\"pg\",\"default_ttl\":\"1h\","
	    "\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}' '{{password}}';\"}",
	    NULL), 204);
	ck_assert_int_ge(DEV("GET", "/v1/database/creds/leaky", NULL, &reply), 400);
	ck_assert_ptr_nonnull(strstr(reply, "syntax error"));
	ck_assert_ptr_nonnull(strstr(reply, "at or near \\\"''\\\""));
	free(reply);
	ck_assert_str_eq(admin_query("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-token-leaky-%'",
				     NULL), "0");

	ck_assert_int_eq(DEV("GET", "/v1/database/creds/long", NULL, &reply), 200);
	j = json_loads(reply, 0, NULL);
	snprintf(user, sizeof(user), "%s", json_string_value(json_object_get(json_object_get(j, "data"), "username")));
	snprintf(lease, sizeof(lease), "%s", json_string_value(json_object_get(j, "lease_id")));
	ck_assert(can_login(user, json_string_value(json_object_get(json_object_get(j, "data"), "password"))));
	json_decref(j);
	free(reply);
	/* Renewal runs the default renew statement: VALID UNTIL moves to the new expiry. */
	snprintf(valid_until, sizeof(valid_until), "%s",
	    admin_query("SELECT rolvaliduntil::text FROM pg_roles WHERE rolname = $1", user));
	ck_assert_str_eq(valid_until, "");   /* the role's statement set none */
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\",\"increment\":\"2h\"}", lease);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/renew", body, NULL), 200);
	ck_assert_str_eq(admin_query("SELECT rolvaliduntil > now() + interval '119 minutes' "
	    "AND rolvaliduntil <= now() + interval '121 minutes' FROM pg_roles WHERE rolname = $1", user), "t");
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", lease);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/revoke", body, NULL), 204);
	ck_assert_str_eq(admin_query("SELECT count(*) FROM pg_roles WHERE rolname = $1", user), "0");

	/* A token's leases go with it. */
	ck_assert_int_eq(DEV("POST", "/v1/auth/token/create", "{\"policies\":[\"root\"],\"ttl\":\"1h\"}", &reply), 200);
	j = json_loads(reply, 0, NULL);
	snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(json_object_get(j, "auth"), "client_token")));
	json_decref(j);
	free(reply);
	snprintf(url, sizeof(url), "%s/v1/database/creds/long", d.addr);
	ck_assert_int_eq(t_http("GET", url, NULL, token, NULL, NULL), 200);
	ck_assert_int_eq(roles_left(), 1);
	snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
	ck_assert_int_eq(DEV("POST", "/v1/auth/token/revoke", body, NULL), 204);
	ck_assert_int_eq(roles_left(), 0);

	/* Renewal runs renew_statements: when they fail, 502 and the lease stays as it was. */
	ck_assert_int_eq(DEV("POST", "/v1/database/roles/badrenew", "{\"db_name\":\"pg\",\"default_ttl\":\"1h\","
	    "\"creation_statements\":\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}';\","
	    "\"renew_statements\":[\"ALTER ROLE no_such_role_9f VALID UNTIL '{{expiration}}';\"]}", NULL), 204);
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/badrenew", NULL, &reply), 200);
	j = json_loads(reply, 0, NULL);
	snprintf(body, sizeof(body), "{\"lease_id\":\"%s\",\"increment\":60}",
	    json_string_value(json_object_get(j, "lease_id")));
	json_decref(j);
	free(reply);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/renew", body, &reply), 502);
	ck_assert_ptr_nonnull(strstr(reply, "error renewing the database user: statement failed"));
	ck_assert_ptr_nonnull(strstr(reply, "no_such_role_9f"));
	free(reply);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/lookup", body, &reply), 200);
	ck_assert_ptr_nonnull(strstr(reply, "\"ttl\":3")); /* still about an hour: 3599 or 3600 */
	free(reply);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/revoke-prefix/database/creds/badrenew", NULL, NULL), 204);
	ck_assert_int_eq(roles_left(), 0);

	/* A dollar-quoted body is run whole, not split at its ';'. */
	ck_assert_int_eq(DEV("POST", "/v1/database/roles/dollar", "{\"db_name\":\"pg\",\"default_ttl\":\"1h\","
	    "\"creation_statements\":[\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}';\","
	    "\"DO $$ BEGIN EXECUTE 'COMMENT ON ROLE \\\"{{name}}\\\" IS ''by latchkey dev'''; END $$;\"]}", NULL), 204);
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/dollar", NULL, &reply), 200);
	j = json_loads(reply, 0, NULL);
	snprintf(user, sizeof(user), "%s", json_string_value(json_object_get(json_object_get(j, "data"), "username")));
	json_decref(j);
	free(reply);
	ck_assert_str_eq(admin_query("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
	    user), "by latchkey dev");
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/revoke-prefix/database/creds/dollar", NULL, NULL), 204);
	ck_assert_int_eq(roles_left(), 0);

	/* revoke-prefix, new and legacy. */
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/long", NULL, NULL), 200);
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/long", NULL, NULL), 200);
	ck_assert_int_eq(roles_left(), 2);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/leases/revoke-prefix/database/creds/long", NULL, NULL), 204);
	ck_assert_int_eq(roles_left(), 0);
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/long", NULL, NULL), 200);
	ck_assert_int_eq(DEV("PUT", "/v1/sys/revoke-prefix/database/creds", NULL, NULL), 204);
	ck_assert_int_eq(roles_left(), 0);

	/* The sweeper: a 1 s lease ends by itself, and its role is dropped. */
	ck_assert_int_eq(DEV("GET", "/v1/database/creds/short", NULL, NULL), 200);
	ck_assert_int_eq(roles_left(), 1);
	ck_assert(t_wait_until(no_roles_left, NULL, T_DEADLINE_MS));
#undef DEV
	ck_assert_int_eq(WEXITSTATUS(t_stop(&d.proc, SIGTERM, 10000)), 0);
	t_dev_stop(&d);
}
END_TEST

static Suite *
database_suite(void)
{
	Suite *s = suite_create("database");
	TCase *tc = tcase_create("postgres");

	tcase_add_unchecked_fixture(tc, pg_start, pg_stop);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_postgres_lifecycle);
	tcase_add_test(tc, test_postgres_end_to_end);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(database_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
