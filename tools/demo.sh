#!/bin/sh
# `make demo`: the broker sidecar against `latchkey dev`, end to end, in about a minute.
#
# Starts the dev backend on a free port, seeds a KV secret and a database role whose
# credentials live 20 s (60 s at most), starts the broker on a Unix socket in a temporary
# directory, shows `latchkey status` and `latchkey get`, waits until the broker rotates the
# database credential, then stops everything and shows that the leases were revoked.
#
# usage: tools/demo.sh PATH/TO/latchkey
set -eu

BIN=${1:?usage: tools/demo.sh PATH/TO/latchkey}
ROOT_TOKEN=demo-root
# Bounds on every wait, in tenths of a second.
START_LIMIT=100
ROTATE_LIMIT=900

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-demo.XXXXXX")
dev_pid=""
broker_pid=""

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
fail() { echo "demo: $*" >&2; exit 1; }

dev() { # METHOD PATH [BODY]
	if [ $# -ge 3 ]; then
		curl -sS -f -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" -d "$3" "$addr/v1/$2"
	else
		curl -sS -f -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" "$addr/$2"
	fi
}

command -v curl >/dev/null 2>&1 || fail "curl is needed (tools/deps.sh installs it)"
[ -x "$BIN" ] || fail "$BIN is not an executable"

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

say "seeding a KV secret and a database role (default_ttl 20s, max_ttl 60s)"
dev POST secret/data/demo/api '{"data":{"user":"demo","api_key":"k-0f8e2d7c1b"}}' >/dev/null
dev POST database/config/pg '{"plugin_name":"postgresql-database-plugin","allowed_roles":"app"}' \
	>/dev/null 2>&1 || true
dev POST database/roles/app '{"db_name":"pg","default_ttl":"20s","max_ttl":"60s"}' >/dev/null
echo "secret/data/demo/api and database/creds/app are ready"

mkdir -m 0750 "$tmp/run"
printf '%s' "$ROOT_TOKEN" >"$tmp/token"
chmod 0600 "$tmp/token"
sock="$tmp/run/broker.sock"
cat >"$tmp/broker.json" <<EOF
{
  "vault": {"address": "$addr",
            "auth": {"method": "token", "token_file": "$tmp/token"}},
  "listen": {"socket": "$sock", "mode": "0660"},
  "grace": "5s",
  "secrets": [
    {"name": "db",  "path": "database/creds/app", "required": true, "allow": {"uids": [$(id -u)]}},
    {"name": "api", "path": "secret/data/demo/api", "refresh": "5m"}
  ]
}
EOF
say "the broker's configuration ($tmp/broker.json)"
cat "$tmp/broker.json"
"$BIN" broker --check-config "$tmp/broker.json"

say "starting latchkey broker"
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
grep '"msg":"ready"' "$tmp/broker.log" || true

say "latchkey status"
"$BIN" status
say "latchkey get api/user   and   latchkey get db/username"
"$BIN" get api/user
echo
first=$("$BIN" get db/username)
echo "$first"
say "latchkey get db   (the whole secret as JSON; the password is shown because this is a demo)"
"$BIN" get db

say "waiting for the broker to rotate the database credential (renewed at 2/3 of 20s, capped by the 60s max TTL)"
i=0
current="$first"
while [ "$current" = "$first" ]; do
	i=$((i + 1))
	[ "$i" -lt "$ROTATE_LIMIT" ] || fail "no rotation within $((ROTATE_LIMIT / 10))s: $(tail -n 20 "$tmp/broker.log")"
	if [ $((i % 50)) -eq 0 ]; then
		"$BIN" status | sed -n '/^db /p'
	fi
	sleep 0.1
	current=$("$BIN" get db/username 2>/dev/null || echo "$first")
done
echo "rotated: $first"
echo "     -> $current"
say "latchkey status after the rotation"
"$BIN" status
say "what the broker logged (JSON lines; values never appear)"
grep -E '"msg":"(logged in|secret loaded|lease renewed|lease renewal capped, rotation planned|secret rotated|lease revoked)"' \
	"$tmp/broker.log" || true

say "stopping the broker (SIGTERM): it revokes its leases and removes the socket"
kill -TERM "$broker_pid"
wait "$broker_pid" && echo "broker exited with status 0"
broker_pid=""
if [ -e "$sock" ]; then fail "the socket $sock is still there"; fi
echo "socket removed"
echo "leases on the backend:"
dev GET _latchkey/leases | sed 's/},{/},\n{/g'
echo
say "done"
