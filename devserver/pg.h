/* pg.h — PostgreSQL users for the database engine of `latchkey dev` (pg.c), made the way
 * Vault's postgresql-database-plugin makes them. Library code: errors come back as text
 * (never holding the connection's password), nothing is logged. */
#ifndef LK_DEVSERVER_PG_H
#define LK_DEVSERVER_PG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest username or password a connection config may carry. */
#define DEV_PG_SECRET_MAX 256

struct dev_pg;

/* True when a database/config entry (stored as Vault's DatabaseConfig: plugin_name and
 * connection_details) asks for a real PostgreSQL: plugin_name postgresql-database-plugin
 * and a connection_url in its connection_details. */
bool dev_pg_configured(const json_t *config);

/* Connects with the connection_url of the config's connection_details, {{username}} and
 * {{password}} replaced by their username and password. *ret is owned: close with dev_pg_close. 0, or -errno with
 * err set ("failed to connect to the database: <libpq's reason>"). */
int dev_pg_open(const json_t *config, struct dev_pg **ret, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* NULL allowed. */
void dev_pg_close(struct dev_pg *pg);

/* Runs statements (a JSON array of strings) in one transaction, {{key}} replaced from vars
 * (NULL-terminated key, value pairs); each statement is split on ';' unless it holds '$$'.
 * 0, or -errno with err set (the transaction rolled back). */
int dev_pg_run(struct dev_pg *pg, const json_t *statements, const char *const *vars, char *err,
	       size_t errlen) __attribute__((warn_unused_result));

/* Vault's default revocation: revokes the role's privileges (in every schema it has
 * grants in, in public, CONNECT on the database) and drops it. Nothing when the role does
 * not exist. 0, or -errno with err set. */
int dev_pg_drop_user(struct dev_pg *pg, const char *username, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
