/* brokerutil.h — a broker against `latchkey dev`, for the fault, abuse and crash suites.
 *
 * The fixture starts the dev backend, writes the broker's configuration, starts and stops
 * the broker, reads from its socket and asks the backend about its leases. Everything it
 * starts dies with the test (tests/lib/testutil.h) and is stopped by bf_stop.
 */
#ifndef LK_BROKERUTIL_H
#define LK_BROKERUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "testutil.h"

struct bf {
	struct t_dev dev;
	char *dir;
	char sock[600];
	char cfg[600];
	char log[600];
	char token_file[600];
	char state_dir[600];
	struct t_proc broker;
};

/* The dev backend with a database role "app" (default_ttl/max_ttl as given, e.g. "3s")
 * and a KV v2 secret secret/data/app/api {"user","password"}; the token file holds the
 * root token. */
void bf_dev(struct bf *f, const char *default_ttl, const char *max_ttl);
/* The same with more arguments of `latchkey dev` (NULL-terminated, may be NULL), e.g.
 * "--log-level", "debug" to have every request in its log (f->dev.dir/dev.log). */
void bf_dev_args(struct bf *f, const char *default_ttl, const char *max_ttl,
		 const char *const extra_args[]);
/* A request to the dev backend with its root token; the status, the body in *ret (may be
 * NULL; malloc'd). */
long bf_dev_call(struct bf *f, const char *method, const char *path, const char *body,
		 char **ret);
/* Writes the broker's configuration: the secrets (the inside of a JSON array) and extra
 * top-level members (may be NULL; a "retry" there replaces the default 200ms..2s). The
 * socket is 0666, the state_dir is set, uid 0 is an admin uid (it sees lease ids), and the
 * allow-list is on. */
void bf_config(struct bf *f, const char *secrets, const char *extra);
/* The same with more members of "listen" (e.g. "\"header_timeout\": \"2s\""). */
void bf_config_listen(struct bf *f, const char *secrets, const char *listen, const char *extra);
/* Starts the broker and waits until it serves; false (and a message) when it does not. */
bool bf_start(struct bf *f);
/* Waits until /v1/ready is 200. */
bool bf_wait_ready(struct bf *f, int timeout_ms);
/* Stops the broker with sig (waiting up to timeout_ms) and returns its wait status. */
int bf_stop_broker(struct bf *f, int sig, int timeout_ms);
/* Stops everything and removes the directory. */
void bf_stop(struct bf *f);
/* GET path on the socket: the status (0: no answer), the body in *ret (may be NULL). */
long bf_get(struct bf *f, const char *path, char **ret);
/* How many of the backend's leases are in state ("active", "revoked", "expired"). */
int bf_leases(struct bf *f, const char *state);
/* The backend's state of lease id into state (at least 16 bytes): 0, or -1 when unknown. */
int bf_lease_state(struct bf *f, const char *id, char *state, size_t len);
/* The current lease id of secret name, from the admin's /v1/ready; false when none. */
bool bf_current_lease(struct bf *f, const char *name, char *id, size_t len);
/* Counts lines of the broker's log holding needle. */
int bf_log_count(struct bf *f, const char *needle);
/* Waits (up to T_DEADLINE_MS) until the log holds needle at least count times: the
 * broker logs some things (a render) after their effect shows (the file written), so a
 * test that saw the effect waits for the line. */
bool bf_wait_log_count(struct bf *f, const char *needle, int count);
/* A percentile (0..100) of n values (sorted in place). */
double bf_percentile(double *v, size_t n, double pct);

#endif
