/* client.h — the command-line clients of the broker socket.
 *
 * Both find the socket in --socket PATH, else $LATCHKEY_SOCKET, else
 * CLIENT_SOCKET_DEFAULT, and return the process exit status (cli/commands.h). */
#ifndef LK_CLIENT_H
#define LK_CLIENT_H

#include "common/buf.h"

#define CLIENT_SOCKET_DEFAULT "/run/latchkey/broker.sock"
/* Largest answer read from the broker. */
#define CLIENT_RESPONSE_MAX (4u << 20)

/* The socket to use: flag (may be NULL), else $LATCHKEY_SOCKET, else the default.
 * Borrowed. */
const char *client_socket_path(const char *flag);

/* GET path over the Unix socket into out (a wipe buffer the caller set up). Returns 0 with
 * *ret_status set, or, with msg set (at least 256 bytes) saying which case it is and what
 * to do: -ENOENT (no such socket), -ENOTSOCK (the path is not a socket), -EACCES (this
 * user may not connect), -ECONNREFUSED (nothing listens), -EBUSY (its queue of new
 * connections stayed full), -EIO (no answer came), -EINVAL (a path over the limit),
 * -ENOMEM. A broker that is there but busy or slow to answer is tried again, with short
 * pauses, until timeout_ms, which bounds the whole call. */
int client_get(const char *socket, const char *path, long timeout_ms, long *ret_status,
	       struct lk_buf *out, char *msg, size_t msglen);

/* `latchkey get NAME[/KEY] [--socket PATH] [--wait[=DURATION]] [--after VERSION]`:
 * prints one value (NAME/KEY) or the secret's JSON (NAME). */
int cmd_get(int argc, char **argv);

/* `latchkey status [--socket PATH] [--json]`: a table of the secrets the caller may read:
 * secret, version, state, TTL left, last renewal, next action. */
int cmd_status(int argc, char **argv);

#endif
