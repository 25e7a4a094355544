#!/bin/sh
# `make demo-db`: real PostgreSQL credentials from `latchkey dev` through the broker, end to
# end, in under a minute.
#
# Starts a PostgreSQL of its own (initdb in a temporary directory, listening only on a Unix
# socket there), `latchkey dev` with a database/config that reaches it and a role whose
# users live 8 s (16 s at most), and the broker on a Unix socket. It logs in with the app's
# credential (psql), waits for the broker to rotate it, logs in with the new one, shows the
# old one refused after the grace period, then stops the broker and shows that every role
# it had was dropped. Everything it started is stopped on the way out, Ctrl-C included.
#
# usage: tools/demo-db.sh PATH/TO/latchkey
set -eu

BIN=${1:?usage: tools/demo-db.sh PATH/TO/latchkey}
ROOT_TOKEN=demo-root
PG_ADMIN=vault
PG_PORT=54329
# Bounds on every wait, in tenths of a second.
START_LIMIT=150
ROTATE_LIMIT=600

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-demo-db.XXXXXX")
dev_pid=""
broker_pid=""
pg_started=""
as_pg=""

cleanup() {
	status=$?
	if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
		kill -TERM "$dev_pid" 2>/dev/null || true
		wait "$dev_pid" 2>/dev/null || true
	fi
	if [ -n "$pg_started" ]; then
		$as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
fail() { echo "demo-db: $*" >&2; exit 1; }

dev() { # METHOD PATH BODY
	curl -sS -f -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" -d "$3" "$addr/v1/$2"
}
# psql as USER with PASSWORD; the rest goes to psql.
psql_as() {
	u=$1 p=$2
	shift 2
	PGPASSWORD=$p psql -X -q -h "$tmp/pg" -p "$PG_PORT" -U "$u" -d postgres "$@"
}
login() { # USER PASSWORD: prints who the server says we are
	psql_as "$1" "$2" -t -A -c 'SELECT current_user' 2>&1
}
admin_pw=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

command -v curl >/dev/null 2>&1 || fail "curl is needed (tools/deps.sh installs it)"
command -v psql >/dev/null 2>&1 || fail "psql is needed (tools/deps.sh installs postgresql)"
[ -x "$BIN" ] || fail "$BIN is not an executable"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] ||
	fail "PostgreSQL's server binaries are not under /usr/lib/postgresql/*/bin (tools/deps.sh installs postgresql)"

say "starting PostgreSQL ($bindir), only on a Unix socket in $tmp/pg"
mkdir -m 0700 "$tmp/pg"
printf '%s\n' "$admin_pw" >"$tmp/pg/pwfile"
if [ "$(id -u)" -eq 0 ]; then
	# initdb refuses root: run PostgreSQL as the postgres user.
	id postgres >/dev/null 2>&1 || fail "running as root and there is no user postgres"
	chown -R postgres:postgres "$tmp/pg"
	chmod 0711 "$tmp"   # postgres may pass through to its own directory, not list
	as_pg="runuser -u postgres --"
fi
$as_pg "$bindir/initdb" -D "$tmp/pg/data" -U "$PG_ADMIN" --pwfile "$tmp/pg/pwfile" -A scram-sha-256 \
	-E UTF8 --no-locale --no-sync >"$tmp/initdb.log" 2>&1 || fail "initdb failed: $(cat "$tmp/initdb.log")"
rm -f "$tmp/pg/pwfile"
pg_started=yes
$as_pg "$bindir/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/pg.log" -w -t 30 \
	-o "-p $PG_PORT -c listen_addresses= -c unix_socket_directories=$tmp/pg -c fsync=off" start >/dev/null ||
	fail "PostgreSQL did not start: $(cat "$tmp/pg/pg.log")"
echo "PostgreSQL is up; superuser $PG_ADMIN"

say "starting latchkey dev (in-memory Vault-compatible backend)"
"$BIN" dev --listen 127.0.0.1:0 --root-token "$ROOT_TOKEN" >"$tmp/dev.log" 2>&1 &
dev_pid=$!
i=0
addr=""
while [ -z "$addr" ]; do
	addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/http:\/\/\1/p' "$tmp/dev.log" | head -n 1)
	[ -n "$addr" ] && break
	i=$((i + 1))
	[ "$i" -lt "$START_LIMIT" ] || fail "latchkey dev did not start: $(cat "$tmp/dev.log")"
	kill -0 "$dev_pid" 2>/dev/null || fail "latchkey dev exited: $(cat "$tmp/dev.log")"
	sleep 0.1
done
echo "backend at $addr"

say "database/config/pg: the PostgreSQL plugin, with {{username}} and {{password}} in the connection_url"
dev POST database/config/pg "{\"plugin_name\":\"postgresql-database-plugin\",
  \"connection_url\":\"host=$tmp/pg port=$PG_PORT dbname=postgres user={{username}} password={{password}}\",
  \"username\":\"$PG_ADMIN\",\"password\":\"$admin_pw\",\"allowed_roles\":[\"app\"]}"
echo "configured (the connection was verified, as Vault does)"
say "database/roles/app: CREATE ROLE … VALID UNTIL '{{expiration}}' (default_ttl 8s, max_ttl 16s)"
dev POST database/roles/app '{"db_name":"pg","default_ttl":"8s","max_ttl":"16s",
  "creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '"'"'{{password}}'"'"' VALID UNTIL '"'"'{{expiration}}'"'"'; GRANT CONNECT ON DATABASE postgres TO \"{{name}}\";"]}'
echo "created"

mkdir -m 0750 "$tmp/run"
printf '%s' "$ROOT_TOKEN" >"$tmp/token"
chmod 0600 "$tmp/token"
sock="$tmp/run/broker.sock"
cat >"$tmp/broker.json" <<EOF
{
  "vault": {"address": "$addr",
            "auth": {"method": "token", "token_file": "$tmp/token"}},
  "listen": {"socket": "$sock", "mode": "0660"},
  "grace": "2s",
  "secrets": [
    {"name": "db", "path": "database/creds/app", "required": true, "allow": {"uids": [$(id -u)]}}
  ]
}
EOF
say "starting latchkey broker ($tmp/broker.json)"
cat "$tmp/broker.json"
"$BIN" broker --config "$tmp/broker.json" --log-level debug >"$tmp/broker.log" 2>&1 &
broker_pid=$!
export LATCHKEY_SOCKET="$sock"
i=0
until "$BIN" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -lt "$START_LIMIT" ] || fail "the broker did not become ready: $(cat "$tmp/broker.log")"
	kill -0 "$broker_pid" 2>/dev/null || fail "the broker exited: $(cat "$tmp/broker.log")"
	sleep 0.1
done
"$BIN" status

first_user=$("$BIN" get db/username)
first_pw=$("$BIN" get db/password)
say "the app's credential from the broker logs in to PostgreSQL"
echo "latchkey get db/username -> $first_user"
echo "psql as $first_user -> $(login "$first_user" "$first_pw")"
psql_as "$PG_ADMIN" "$admin_pw" -c "SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolname LIKE 'v-token-%'"

say "waiting for the broker to rotate it (renewed at 2/3 of 8s, capped by the 16s max TTL)"
i=0
user="$first_user"
while [ "$user" = "$first_user" ]; do
	i=$((i + 1))
	[ "$i" -lt "$ROTATE_LIMIT" ] || fail "no rotation within $((ROTATE_LIMIT / 10))s: $(tail -n 20 "$tmp/broker.log")"
	sleep 0.1
	user=$("$BIN" get db/username 2>/dev/null || echo "$first_user")
done
pw=$("$BIN" get db/password)
echo "rotated: $first_user"
echo "     -> $user"
echo "psql as the new $user -> $(login "$user" "$pw")"

say "after the grace period (2s) the old credential no longer logs in"
i=0
while login "$first_user" "$first_pw" | grep -qx "$first_user"; do
	i=$((i + 1))
	[ "$i" -lt "$ROTATE_LIMIT" ] || fail "the old credential still logs in"
	sleep 0.1
done
echo "psql as the old $first_user -> $(login "$first_user" "$first_pw" | head -n 1)"
# Its VALID UNTIL (whole seconds) may refuse it a moment before the revocation drops it.
i=0
until [ "$(psql_as "$PG_ADMIN" "$admin_pw" -t -A -c "SELECT count(*) FROM pg_roles WHERE rolname = '$first_user'")" = 0 ]; do
	i=$((i + 1))
	[ "$i" -lt "$ROTATE_LIMIT" ] || fail "the old role was not dropped"
	sleep 0.1
done
psql_as "$PG_ADMIN" "$admin_pw" -c "SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolname LIKE 'v-token-%'"

say "stopping the broker (SIGTERM): it revokes its leases, and latchkey dev drops the roles"
kill -TERM "$broker_pid"
wait "$broker_pid" && echo "broker exited with status 0"
broker_pid=""
left=$(psql_as "$PG_ADMIN" "$admin_pw" -t -A -c "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-token-%'")
echo "roles v-token-* left in PostgreSQL: $left"
[ "$left" = "0" ] || fail "$left roles were not dropped"
echo "what the broker logged (JSON lines; values never appear):"
grep -E '"msg":"(secret loaded|lease renewed|lease renewal capped, rotation planned|secret rotated|lease revoked)"' \
	"$tmp/broker.log" || true
say "done"
