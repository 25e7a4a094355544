#!/bin/bash
# broker-footprint.sh — what an idle broker with one backend secret and no file source
# holds: VmSize, VmRSS and Threads from /proc/PID/status and its open descriptors, once it
# is ready, has answered 20 reads and has settled for 1 s. Each binary runs in turn, ROUNDS
# times, against its own `latchkey dev`; one line per run.
#
# usage: tools/broker-footprint.sh LATCHKEY_BIN [LATCHKEY_BIN...]
#
# Environment: ROUNDS=5. Needs curl.
set -u
ROUNDS=${ROUNDS:-5}

run() {
	bin=$1
	d=$(mktemp -d "${TMPDIR:-/tmp}/footprint.XXXXXX")
	tok=hvs.footprint-$RANDOM$RANDOM
	"$bin" dev --listen 127.0.0.1:0 --root-token "$tok" >"$d/dev.log" 2>&1 &
	dev=$!
	for _ in $(seq 200); do grep -q '"msg":"listening"' "$d/dev.log" 2>/dev/null && break; sleep 0.1; done
	port=$(grep -o '"addr":"127.0.0.1:[0-9]*' "$d/dev.log" | head -1 | sed 's/.*://')
	curl -s -o /dev/null -H "X-Vault-Token: $tok" -X POST \
		-d '{"data":{"user":"u","password":"p"}}' "http://127.0.0.1:$port/v1/secret/data/app/api"
	printf '%s' "$tok" >"$d/token"
	chmod 600 "$d/token"
	cat >"$d/b.json" <<J
{"vault": {"address": "http://127.0.0.1:$port", "auth": {"method": "token", "token_file": "$d/token"}},
 "listen": {"socket": "$d/b.sock", "mode": "0666"}, "seccomp": true,
 "secrets": [{"name": "api", "path": "secret/data/app/api"}]}
J
	chmod 600 "$d/b.json"
	"$bin" broker --config "$d/b.json" >"$d/b.log" 2>&1 &
	b=$!
	for _ in $(seq 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$d/b.sock" http://b/v1/ready)" = 200 ] && break
		sleep 0.1
	done
	for _ in $(seq 20); do curl -s -o /dev/null --unix-socket "$d/b.sock" http://b/v1/secrets/api; done
	sleep 1
	echo "$bin $(grep -E '^(VmSize|VmRSS|Threads)' "/proc/$b/status" | tr -s ' \t' ' ' | tr '\n' ' ')fds: $(find "/proc/$b/fd" -mindepth 1 -maxdepth 1 | wc -l)"
	kill "$b"; wait "$b" 2>/dev/null
	kill "$dev"; wait "$dev" 2>/dev/null
	rm -rf "$d"
}

[ $# -ge 1 ] || { echo "usage: $0 LATCHKEY_BIN [LATCHKEY_BIN...]" >&2; exit 2; }
for _ in $(seq "$ROUNDS"); do
	for bin in "$@"; do run "$bin"; done
done
