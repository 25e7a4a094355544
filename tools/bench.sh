#!/bin/sh
# shellcheck disable=SC2317  # functions run through wait_for and traps
# bench.sh — the socket benchmark that `make bench` runs: `latchkey broker` against nginx
# serving the same bytes on a Unix socket and a bare epoll server writing the broker's
# canned response (the floor), each with two client shapes (one epoll thread; a blocking
# thread per connection); broker memory with 1, 10 and many cached secrets, beside the memory
# of a process that only makes one libcurl request (the floor of any libcurl client); time from
# start to ready; and the seal/open rates when bench_seal was built.
#
# usage: tools/bench.sh LATCHKEY_BIN BENCH_BIN_DIR
#
# Environment (all optional):
#   BENCH_ROUNDS=3        rounds of throughput runs (nginx, bare, broker in each shape and placement)
#   BENCH_DURATION=4      measured seconds per run
#   BENCH_WARMUP=1        warm-up seconds per run, not measured
#   BENCH_CONNS=4         keep-alive connections
#   BENCH_WORKERS=ncpu    nginx worker processes and broker serving threads (the same number)
#   BENCH_SECRETS=1000    secrets cached for the memory figure
#   BENCH_READY_RUNS=5    start-to-ready runs (the median is reported)
#   BENCH_PLACEMENTS="shared split free"
#                         where the client and the server under test run: shared, both on
#                         one CPU; split, the client on one CPU and the server on the others;
#                         free, wherever the kernel's scheduler puts them
#   BENCH_RATES="2000 20000"  paced rates (req/s) for what each server spends at a steady load
#   BENCH_POLL_US=        the broker's listen.poll_us (empty: left out, so the broker
#                         decides; the second broker always has 0)
#   BENCH_TIME_LIMIT=900  seconds after which the whole run is stopped
#   BENCH_KEEP=1          keep the temporary directory (logs, configs) for a look afterwards
#
# Figures are reported, never judged: the exit status is 0 when every part ran, 1 when
# something could not run (a process failed to start, a request failed, loadgen errors).
set -eu

if [ $# -ne 2 ]; then
	echo "usage: tools/bench.sh LATCHKEY_BIN BENCH_BIN_DIR" >&2
	exit 2
fi
LK=$1
BENCHDIR=$2
LOADGEN=$BENCHDIR/loadgen
BARE=$BENCHDIR/bare_server

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-4}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-4}
WORKERS=${BENCH_WORKERS:-$(nproc 2>/dev/null || echo 2)}
NSECRETS=${BENCH_SECRETS:-1000}
READY_RUNS=${BENCH_READY_RUNS:-5}
TIME_LIMIT=${BENCH_TIME_LIMIT:-900}
PLACEMENTS=${BENCH_PLACEMENTS:-shared split free}
RATES=${BENCH_RATES-2000 20000}
POLL_US=${BENCH_POLL_US:-}
# How long a started process may take to become ready, seconds.
START_WAIT=20

for v in "$ROUNDS" "$CONNS" "$WORKERS" "$NSECRETS" "$READY_RUNS" "$TIME_LIMIT"; do
	case $v in
	'' | *[!0-9]*) echo "bench: BENCH_* counts must be positive integers" >&2; exit 2 ;;
	esac
done
[ -x "$LK" ] || { echo "bench: $LK: not an executable" >&2; exit 2; }
[ -x "$LOADGEN" ] || { echo "bench: $LOADGEN: not built" >&2; exit 2; }
[ -x "$BARE" ] || { echo "bench: $BARE: not built" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "bench: curl is needed" >&2; exit 2; }
case $POLL_US in
'' | auto | 0 | [1-9] | [1-9][0-9] | [1-9][0-9][0-9] | 1000) ;;
*) echo "bench: BENCH_POLL_US must be empty, auto or an integer from 0 to 1000" >&2; exit 2 ;;
esac
for v in $RATES; do
	case $v in
	'' | *[!0-9]* | 0) echo "bench: BENCH_RATES must be positive integers (req/s)" >&2; exit 2 ;;
	esac
done
for p in $PLACEMENTS; do
	case $p in
	shared | split | free) ;;
	*) echo "bench: BENCH_PLACEMENTS: \"$p\" is not shared, split or free" >&2; exit 2 ;;
	esac
done

# The CPUs this run may use, as taskset writes them, and the first of them: the client's
# CPU in the shared and split placements.
CPUS_ALL=""
CPU_FIRST=""
CPUS_REST=""
if command -v taskset >/dev/null 2>&1; then
	CPUS_ALL=$(taskset -c -p $$ | sed 's/.*: *//')
	cpu_list=$(printf '%s\n' "$CPUS_ALL" | tr ',' '\n' |
		awk -F- '{ hi = (NF == 2) ? $2 : $1; for (c = $1; c <= hi; c++) print c }')
	CPU_FIRST=$(printf '%s\n' "$cpu_list" | head -n 1)
	CPUS_REST=$(printf '%s\n' "$cpu_list" | sed 1d | paste -sd, -)
fi
kept=""
for p in $PLACEMENTS; do
	if [ "$p" != free ] && [ -z "$CPU_FIRST" ]; then
		echo "bench: taskset (util-linux) is missing: the $p placement is left out" >&2
	elif [ "$p" = split ] && [ -z "$CPUS_REST" ]; then
		echo "bench: one CPU only: the split placement is left out" >&2
	else
		kept="$kept $p"
	fi
done
PLACEMENTS=${kept# }
[ -n "$PLACEMENTS" ] || { echo "bench: no placement left to run" >&2; exit 2; }
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench: nginx is needed (tools/deps.sh --dev installs nginx-light)" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
PIDS=""
WATCHDOG=""
FAILED=""

# ---- process bookkeeping ----

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
	kill -s TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -s KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

forget_pid() {
	new=""
	for p in $PIDS; do
		[ "$p" = "$1" ] || new="$new $p"
	done
	PIDS=$new
}

cleanup() {
	trap - EXIT INT TERM
	for p in $PIDS; do
		stop_pid "$p"
	done
	PIDS=""
	if [ -n "$WATCHDOG" ]; then
		kill -s TERM "$WATCHDOG" 2>/dev/null || true
		wait "$WATCHDOG" 2>/dev/null || true
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
on_signal() {
	if [ -e "$TMP/.time-limit" ]; then
		echo "bench: stopped at the time limit of $TIME_LIMIT s (BENCH_TIME_LIMIT)" >&2
	else
		echo "bench: interrupted" >&2
	fi
	cleanup
	exit 1
}
trap on_signal INT TERM

# The whole run is bounded: past the limit the main shell gets SIGTERM (handled once the
# running command, itself bounded, returns).
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$TIME_LIMIT" &
	sp=$!
	wait "$sp"
	: >"$TMP/.time-limit"
	kill -s TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!

fail() {
	echo "bench: $*" >&2
	FAILED="$FAILED
  - $*"
}

die() {
	echo "bench: $*" >&2
	exit 1
}

# wait_for SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds.
wait_for() {
	n=$(($1 * 50))
	shift
	i=0
	while [ $i -lt $n ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.02
		i=$((i + 1))
	done
	return 1
}

# jnum JSON KEY: a number from a flat JSON line.
jnum() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p"
}

# median [FORMAT]: the median of the numbers on stdin, printed with FORMAT (%.1f).
median() {
	sort -n | awk -v f="${1:-%.1f}\n" '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		if (NR % 2) printf f, v[(NR + 1) / 2]; else printf f, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B with two decimals, n/a when either is missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a";
		else printf "%.2f\n", a / b }'
}

http_code() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true
}

socket_ready() {
	[ "$(http_code --unix-socket "$1" http://localhost/v1/ready)" = 200 ]
}

vm_field() {
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null
}

log_has_listening() {
	grep -q '"msg":"listening"' "$1"
}

# ---- (1) the backend ----

TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
umask 077
printf '%s' "$TOKEN" >"$TMP/token"

DEV_ADDR=""
"$LK" dev --listen 127.0.0.1:0 --root-token "$TOKEN" >"$TMP/dev.log" 2>&1 &
DEV_PID=$!
PIDS="$PIDS $DEV_PID"
if wait_for "$START_WAIT" log_has_listening "$TMP/dev.log"; then
	DEV_ADDR=$(sed -n 's/.*"msg":"listening".*"addr":"\([0-9.]*:[0-9]*\)".*/\1/p' "$TMP/dev.log" | head -n 1)
fi
[ -n "$DEV_ADDR" ] || { tail -n 5 "$TMP/dev.log" >&2; die "latchkey dev did not start"; }
VAULT="http://$DEV_ADDR"

seed() {
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
		-H "X-Vault-Token: $TOKEN" -H 'Content-Type: application/json' \
		--data "$2" "$VAULT/v1/secret/data/$1" || true)
	case $code in 200 | 204) return 0 ;; esac
	die "seeding secret/data/$1 failed (HTTP $code)"
}
seed bench '{"data":{"username":"bench-user","password":"bench-password-0123456789abcdef"}}'

# ---- (2) the broker, serving that secret ----

broker_config() {
	# broker_config FILE SOCKET SECRETS_JSON [MORE_LISTEN_KEYS]
	cat >"$1" <<EOF
{
  "vault": {"address": "$VAULT", "auth": {"method": "token", "token_file": "$TMP/token"}},
  "listen": {"socket": "$2", "mode": "0600", "threads": $WORKERS${4:+, $4}},
  "secrets": [$3]
}
EOF
}

# start_broker NAME SOCKET [MORE_LISTEN_KEYS]: a broker serving the bench secret, with its
# config in $TMP/NAME.json and its log in $TMP/NAME.log; STARTED_PID is its PID. Fails
# (its log's tail on stderr) when it is not ready within START_WAIT seconds.
start_broker() {
	broker_config "$TMP/$1.json" "$2" \
		'{"name": "bench", "path": "secret/data/bench", "required": true}' "${3:-}"
	"$LK" broker --config "$TMP/$1.json" >"$TMP/$1.log" 2>&1 &
	STARTED_PID=$!
	PIDS="$PIDS $STARTED_PID"
	wait_for "$START_WAIT" socket_ready "$2" && return 0
	tail -n 5 "$TMP/$1.log" >&2
	return 1
}

BROKER_OK=1
if ! "$LK" broker --help >/dev/null 2>&1; then
	fail "this latchkey has no working 'broker' subcommand: broker figures skipped"
	BROKER_OK=0
fi

BSOCK=$TMP/broker.sock
BODY=$TMP/body.json
CTYPE=application/json
if [ $BROKER_OK = 1 ]; then
	POLL_KEY=
	case $POLL_US in
	'') ;;
	auto) POLL_KEY='"poll_us": "auto"' ;;
	*) POLL_KEY="\"poll_us\": $POLL_US" ;;
	esac
	start_broker broker "$BSOCK" "$POLL_KEY" ||
		{ fail "the broker did not become ready within $START_WAIT s"; BROKER_OK=0; }
	BROKER_PID=$STARTED_PID
	# What it polls, and what decided it: the poll_us fields of its "serving" line.
	wait_for 5 grep -q '"msg":"serving"' "$TMP/broker.log" || true
	BROKER_POLL=$(sed -n 's/.*"msg":"serving".*"poll_us":\([0-9]*\),"poll_us_because":"\([^"]*\)".*/\1 µs (\2)/p' \
		"$TMP/broker.log" | head -n 1)
	echo "== broker: listen.poll_us ${BROKER_POLL:-unknown}"
fi
# The same broker with listen.poll_us 0: what polling before sleeping buys, and costs.
BSOCK0=$TMP/broker0.sock
BROKER0_OK=0
if [ $BROKER_OK = 1 ]; then
	if start_broker broker0 "$BSOCK0" '"poll_us": 0'; then
		BROKER0_OK=1
	else
		fail "the broker with poll_us 0 did not become ready within $START_WAIT s"
	fi
	BROKER0_PID=$STARTED_PID
fi
if [ $BROKER_OK = 1 ]; then
	curl -sf --max-time 5 --unix-socket "$BSOCK" -D "$TMP/headers" -o "$BODY" \
		http://localhost/v1/secrets/bench || die "reading /v1/secrets/bench from the broker failed"
	curl -sf --max-time 5 --unix-socket "$BSOCK" -o "$TMP/body2.json" \
		http://localhost/v1/secrets/bench || die "reading /v1/secrets/bench from the broker failed"
	# The whole response as it came, headers included: what the bare server writes.
	curl -sf --max-time 5 --unix-socket "$BSOCK" -i -o "$TMP/response.raw" \
		http://localhost/v1/secrets/bench || die "reading /v1/secrets/bench from the broker failed"
	CTYPE=$(sed -n 's/^[Cc]ontent-[Tt]ype:[[:space:]]*\([^[:cntrl:]]*\).*/\1/p' "$TMP/headers" | head -n 1)
	[ -n "$CTYPE" ] || CTYPE=application/json
else
	# No broker: nginx alone, on a body of the same shape and size.
	printf '%s' '{"name":"bench","version":1,"data":{"password":"bench-password-0123456789abcdef","username":"bench-user"},"lease":{"renewable":false,"ttl":0}}' >"$BODY"
	cp "$BODY" "$TMP/body2.json"
	{
		printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n'
		printf 'Content-Length: %s\r\n\r\n' "$(wc -c <"$BODY" | tr -d ' ')"
		cat "$BODY"
	} >"$TMP/response.raw"
fi
# The body is checked byte for byte on every response when the broker's is stable.
EXPECT_BROKER="--expect-file $BODY"
if ! cmp -s "$BODY" "$TMP/body2.json"; then
	echo "bench: the broker's body differs between two reads; its responses are checked for status and length only" >&2
	EXPECT_BROKER=""
fi
BODY_BYTES=$(wc -c <"$BODY" | tr -d ' ')

# ---- (3) nginx, serving the same bytes from a file ----

NGX=$TMP/nginx
mkdir -p "$NGX/www/v1/secrets" "$NGX/temp"
cp "$BODY" "$NGX/www/v1/secrets/bench"
NSOCK=$NGX/nginx.sock
NGX_USER=""
# As root nginx would switch its workers to nobody, who cannot enter this 0700 directory.
[ "$(id -u)" -eq 0 ] && NGX_USER="user root;"
# Fairness: as many worker processes as the broker has serving threads; the file's
# descriptor and metadata cached (open_file_cache), no access log, keep-alive without a
# request limit, and sendfile off, which on this small body saves a system call.
cat >"$NGX/nginx.conf" <<EOF
$NGX_USER
worker_processes $WORKERS;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $NGX/temp/body;
	proxy_temp_path $NGX/temp/proxy;
	fastcgi_temp_path $NGX/temp/fastcgi;
	uwsgi_temp_path $NGX/temp/uwsgi;
	scgi_temp_path $NGX/temp/scgi;
	keepalive_requests 1000000000;
	keepalive_timeout 300s;
	open_file_cache max=16 inactive=300s;
	open_file_cache_valid 300s;
	sendfile off;
	server_tokens off;
	types { }
	default_type "$CTYPE";
	server {
		listen unix:$NSOCK;
		root $NGX/www;
		add_header Cache-Control no-store;
	}
}
EOF
"$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;' >"$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS="$PIDS $NGINX_PID"
nginx_up() {
	[ "$(http_code --unix-socket "$NSOCK" http://localhost/v1/secrets/bench)" = 200 ]
}
if ! wait_for "$START_WAIT" nginx_up; then
	cat "$NGX/error.log" "$NGX/stdout.log" >&2 2>/dev/null || true
	die "nginx did not start"
fi
curl -sf --max-time 5 --unix-socket "$NSOCK" -o "$TMP/nginx-body" http://localhost/v1/secrets/bench
cmp -s "$BODY" "$TMP/nginx-body" || die "nginx does not serve the broker's bytes"

# ---- (3b) the bare epoll server, writing the broker's whole response as it came ----

BSOCK_BARE=$TMP/bare.sock
"$BARE" --unix "$BSOCK_BARE" --response "$TMP/response.raw" --threads "$WORKERS" \
	>"$TMP/bare.log" 2>&1 &
BARE_PID=$!
PIDS="$PIDS $BARE_PID"
bare_up() {
	[ "$(http_code --unix-socket "$BSOCK_BARE" http://localhost/v1/secrets/bench)" = 200 ]
}
if ! wait_for "$START_WAIT" bare_up; then
	cat "$TMP/bare.log" >&2 2>/dev/null || true
	die "bare_server did not start"
fi
curl -sf --max-time 5 --unix-socket "$BSOCK_BARE" -o "$TMP/bare-body" http://localhost/v1/secrets/bench
cmp -s "$BODY" "$TMP/bare-body" || die "bare_server does not serve the broker's bytes"

# ---- (4) throughput and latency, alternated ----

RESULTS=$TMP/results
: >"$RESULTS"
# place PLACEMENT PID...: moves every thread of each PID (the server under test) to the
# placement's CPUs, and sets CLIENT_CPU, the load generator's option, to match.
place() {
	placement=$1
	shift
	case $placement in
	shared) cpus=$CPU_FIRST; CLIENT_CPU="--cpu $CPU_FIRST" ;;
	split) cpus=$CPUS_REST; CLIENT_CPU="--cpu $CPU_FIRST" ;;
	free) cpus=$CPUS_ALL; CLIENT_CPU="" ;;
	esac
	LOAD_PIDS="$*"
	[ -n "$cpus" ] || return 0
	for pid in "$@"; do
		taskset -a -c -p "$cpus" "$pid" >/dev/null 2>&1 || fail "taskset could not move $pid to CPUs $cpus"
	done
}
# load LABEL SHAPE PLACEMENT SOCKET [EXPECT...]: one run, labelled LABEL-SHAPE@PLACEMENT.
load() {
	label=$1-$2@$3
	shape=$2
	sock=$4
	shift 4
	set +e
	# shellcheck disable=SC2086  # a list of PIDs
	ticks0=$(cpu_ticks $LOAD_PIDS)
	# shellcheck disable=SC2086  # CLIENT_CPU is empty or two words
	out=$("$LOADGEN" --unix "$sock" --path /v1/secrets/bench -c "$CONNS" -d "$DURATION" \
		-w "$WARMUP" --label "$label" --shape "$shape" $CLIENT_CPU "$@")
	rc=$?
	# shellcheck disable=SC2086
	ticks1=$(cpu_ticks $LOAD_PIDS)
	set -e
	line=$(printf '%s\n' "$out" | grep '^{' || true)
	# The server's CPU per request: its user and system time over the whole run over the
	# requests answered in it, warm-up included (null when none was).
	if [ -n "$line" ]; then
		cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$CLK_TCK" -v n="$(jnum "$line" ok)" \
			-v m="$(jnum "$line" warmup_ok)" \
			'BEGIN { if (n + m > 0) printf "%.2f", (b - a) * 1e6 / hz / (n + m); else print "null" }')
		line=$(printf '%s' "$line" | sed "s|}\$|,\"cpu_us\":$cpu}|")
	fi
	printf '%s\n' "$out" | grep -v '^{' | sed 's/^/  /' || true
	if [ -z "$line" ]; then
		fail "loadgen against $label could not run"
		return 0
	fi
	printf '%s\n' "$line" >>"$RESULTS"
	[ $rc -eq 0 ] || fail "loadgen against $label reported errors: $(printf '%s' "$line" | sed -n 's/.*\("errors":[0-9]*\).*/\1/p')"
}

# cpu_ticks PID...: user and system clock ticks of the processes, all their threads.
cpu_ticks() {
	for pid in "$@"; do
		sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }'
	done | awk '{ s += $1 } END { print s + 0 }'
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
LOAD_PIDS=""

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
SHAPES="epoll threads"
echo "== throughput: $CONNS connections, ${WARMUP}s warm-up + ${DURATION}s per run, $ROUNDS rounds, $WORKERS nginx workers / bare threads / broker threads, ${BODY_BYTES}-byte body"
echo "   client shapes: epoll (one thread, one epoll loop), threads ($CONNS blocking threads, a connection each)"
echo "   placements: $PLACEMENTS (shared: client and server on CPU $CPU_FIRST; split: client on CPU $CPU_FIRST, server on ${CPUS_REST:-none})"
# nginx's master and its workers (the master's children), each moved with it.
NGINX_KIDS=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null ||
	pgrep -P "$NGINX_PID" 2>/dev/null || true)
NGINX_PIDS="$NGINX_PID $(printf '%s\n' "$NGINX_KIDS" | tr '\n' ' ')"
nkids=$(printf '%s\n' "$NGINX_KIDS" | wc -w)
if [ "$nkids" -ne "$WORKERS" ] && [ "$PLACEMENTS" != free ]; then
	fail "found $nkids nginx workers, not $WORKERS: the shared and split placements leave nginx out"
	NGINX_PLACED=0
else
	NGINX_PLACED=1
fi
r=1
while [ $r -le "$ROUNDS" ]; do
	for placement in $PLACEMENTS; do
		for shape in $SHAPES; do
			if [ $NGINX_PLACED = 1 ] || [ "$placement" = free ]; then
				# shellcheck disable=SC2086  # a list of PIDs
				place "$placement" $NGINX_PIDS
				load nginx "$shape" "$placement" "$NSOCK" --expect-file "$BODY"
			fi
			place "$placement" "$BARE_PID"
			load bare "$shape" "$placement" "$BSOCK_BARE" --expect-file "$BODY"
			if [ $BROKER_OK = 1 ]; then
				place "$placement" "$BROKER_PID"
				# shellcheck disable=SC2086
				load broker "$shape" "$placement" "$BSOCK" $EXPECT_BROKER
			fi
			if [ $BROKER0_OK = 1 ]; then
				place "$placement" "$BROKER0_PID"
				# shellcheck disable=SC2086
				load poll0 "$shape" "$placement" "$BSOCK0" $EXPECT_BROKER
			fi
		done
	done
	r=$((r + 1))
done
# Paced runs, unpinned: the threads client at a fixed rate (loadgen --rate), labelled
# SERVER-threads@rateR, for what each server spends on a steady load.
for rate in $RATES; do
	# shellcheck disable=SC2086
	place free $NGINX_PIDS
	load nginx threads "rate$rate" "$NSOCK" --expect-file "$BODY" --rate "$rate"
	if [ $BROKER_OK = 1 ]; then
		place free "$BROKER_PID"
		# shellcheck disable=SC2086
		load broker threads "rate$rate" "$BSOCK" $EXPECT_BROKER --rate "$rate"
	fi
	if [ $BROKER0_OK = 1 ]; then
		place free "$BROKER0_PID"
		# shellcheck disable=SC2086
		load poll0 threads "rate$rate" "$BSOCK0" $EXPECT_BROKER --rate "$rate"
	fi
done
# The memory and start-up parts run where the scheduler puts them.
CLIENT_CPU=""
if [ -n "$CPUS_ALL" ]; then
	# shellcheck disable=SC2086
	for pid in $NGINX_PIDS $BARE_PID $( [ $BROKER_OK = 1 ] && echo "$BROKER_PID") \
		$( [ $BROKER0_OK = 1 ] && echo "$BROKER0_PID"); do
		taskset -a -c -p "$CPUS_ALL" "$pid" >/dev/null 2>&1 || true
	done
fi

# figure LABEL KEY: the median of KEY over LABEL's runs.
figure() {
	grep "\"label\":\"$1\"" "$RESULTS" | while IFS= read -r l; do jnum "$l" "$2"; done | median
}
# range LABEL KEY: "min-max" of KEY over LABEL's runs.
range() {
	grep "\"label\":\"$1\"" "$RESULTS" | while IFS= read -r l; do jnum "$l" "$2"; done |
		sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.0f-%.0f\n", lo, hi; else print "n/a" }'
}
# paired KEY SHAPE PEER [SERVER]: the median over the rounds of SERVER/PEER in SHAPE
# (SERVER: broker unless named), each SERVER run against the PEER run of its round (before
# it), so that a slow phase of the machine cancels out.
paired() {
	n=""
	while IFS= read -r l; do
		case $l in
		*"\"label\":\"$3-$2\""*) n=$(jnum "$l" "$1") ;;
		*"\"label\":\"${4:-broker}-$2\""*) ratio "$(jnum "$l" "$1")" "${n:-}"; n="" ;;
		esac
	done <"$RESULTS" | grep -v n/a | median %.2f
}
errors_of() {
	grep "\"label\":\"$1\"" "$RESULTS" | while IFS= read -r l; do jnum "$l" errors; done |
		awk '{ s += $1 } END { print s + 0 }'
}

RSS_ONE=n/a
ANON_ONE=n/a
LCK_ONE=n/a
if [ $BROKER_OK = 1 ]; then
	RSS_ONE=$(vm_field "$BROKER_PID" VmRSS)
	ANON_ONE=$(vm_field "$BROKER_PID" RssAnon)
	LCK_ONE=$(vm_field "$BROKER_PID" VmLck)
	stop_pid "$BROKER_PID"
	forget_pid "$BROKER_PID"
fi
if [ $BROKER0_OK = 1 ]; then
	stop_pid "$BROKER0_PID"
	forget_pid "$BROKER0_PID"
fi
stop_pid "$NGINX_PID"
forget_pid "$NGINX_PID"
stop_pid "$BARE_PID"
forget_pid "$BARE_PID"

# ---- (5) memory with 1, 10 and many cached secrets ----

READY_MANY=n/a
FLOOR_RSS=n/a
FLOOR_ANON=n/a
FLOOR_FILE=n/a
MEM_ROWS=$TMP/memory
: >"$MEM_ROWS"
# mem_run N: a broker with the first N secrets; once ready, each is read once over one
# connection, and after a 2 s pause (the broker hands freed heap back once ready) a row
# "N VmRSS RssAnon RssFile VmLck VmHWM" (kB) goes to $MEM_ROWS.
mem_run() {
	msock=$TMP/mem-$1.sock
	head -n "$1" "$TMP/secrets.list" | paste -sd, - >"$TMP/secrets-$1.json"
	broker_config "$TMP/mem-$1.json" "$msock" "$(cat "$TMP/secrets-$1.json")"
	"$LK" broker --config "$TMP/mem-$1.json" >"$TMP/mem-$1.log" 2>&1 &
	mpid=$!
	PIDS="$PIDS $mpid"
	if wait_for 60 socket_ready "$msock"; then
		codes=$(curl -s --max-time 120 --unix-socket "$msock" -o /dev/null -w '%{http_code}\n' \
			"http://localhost/v1/secrets/s[1-$1]" || true)
		read_ok=$(printf '%s\n' "$codes" | grep -c '^200$' || true)
		[ "$read_ok" -eq "$1" ] || fail "reading the $1 secrets: only $read_ok answered 200"
		sleep 2
		printf '%s %s %s %s %s %s\n' "$1" "$(vm_field "$mpid" VmRSS)" "$(vm_field "$mpid" RssAnon)" \
			"$(vm_field "$mpid" RssFile)" "$(vm_field "$mpid" VmLck)" "$(vm_field "$mpid" VmHWM)" >>"$MEM_ROWS"
	else
		tail -n 5 "$TMP/mem-$1.log" >&2
		fail "the broker with $1 secrets did not become ready within 60 s"
	fi
	stop_pid "$mpid"
	forget_pid "$mpid"
}
if [ $BROKER_OK = 1 ]; then
	echo "== memory: 1, 10 and $NSECRETS cached secrets, each read once"
	# One curl run writes them all over one connection.
	i=1
	: >"$TMP/seed.curl"
	: >"$TMP/secrets.list"
	while [ $i -le "$NSECRETS" ]; do
		[ $i -gt 1 ] && printf 'next\n' >>"$TMP/seed.curl"
		cat >>"$TMP/seed.curl" <<EOF
url = "$VAULT/v1/secret/data/s$i"
request = "POST"
header = "X-Vault-Token: $TOKEN"
header = "Content-Type: application/json"
data = "{\"data\":{\"username\":\"user-$i\",\"password\":\"password-$i-0123456789abcdef\"}}"
output = "/dev/null"
write-out = "%{http_code}\\n"
EOF
		printf '{"name": "s%d", "path": "secret/data/s%d", "required": true}\n' $i $i >>"$TMP/secrets.list"
		i=$((i + 1))
	done
	curl -s --max-time 120 -K "$TMP/seed.curl" >"$TMP/seed.codes" || true
	seeded=$(grep -c '^20[04]$' "$TMP/seed.codes" || true)
	[ "$seeded" -eq "$NSECRETS" ] || die "seeding $NSECRETS secrets: only $seeded succeeded"

	for n in 1 10 "$NSECRETS"; do
		[ "$n" -le "$NSECRETS" ] || continue
		grep -q "^$n " "$MEM_ROWS" && continue
		mem_run "$n"
	done
	while read -r n rss anon file lck hwm; do
		echo "  $n secrets: VmRSS $rss kB (RssAnon $anon kB, RssFile $file kB), VmLck $lck kB, VmHWM $hwm kB"
	done <"$MEM_ROWS"
	# The floor: a process that only initialises libcurl and makes one request to the
	# same backend (tests/bench/curl_floor.c, linked with libcurl alone).
	if [ -x "$BENCHDIR/curl_floor" ]; then
		"$BENCHDIR/curl_floor" "$VAULT/v1/sys/health" >"$TMP/floor.out" 2>"$TMP/floor.err" &
		fpid=$!
		PIDS="$PIDS $fpid"
		floor_ready() { grep -q '^ready$' "$TMP/floor.out"; }
		if wait_for "$START_WAIT" floor_ready; then
			sleep 2
			FLOOR_RSS=$(vm_field "$fpid" VmRSS)
			FLOOR_ANON=$(vm_field "$fpid" RssAnon)
			FLOOR_FILE=$(vm_field "$fpid" RssFile)
			echo "  libcurl floor (curl_floor): VmRSS $FLOOR_RSS kB (RssAnon $FLOOR_ANON kB, RssFile $FLOOR_FILE kB)"
		else
			cat "$TMP/floor.err" >&2 2>/dev/null || true
			fail "curl_floor did not get ready"
		fi
		stop_pid "$fpid"
		forget_pid "$fpid"
	fi
	echo "  (the one-secret broker after its throughput runs: VmRSS ${RSS_ONE} kB, RssAnon ${ANON_ONE} kB, VmLck ${LCK_ONE} kB)"
fi

# ---- (6) start to ready ----

READY_MEDIAN=n/a
STOP_MEDIAN=n/a
# ready_run CONFIG SOCKET LOG: one start-to-ready measurement; prints loadgen's JSON line,
# or nothing (and the end of the broker's log on stderr) when it did not get ready.
ready_run() {
	rm -f "$2"
	out=$("$LOADGEN" ready --unix "$2" --timeout-ms 30000 --log "$3" -- \
		"$LK" broker --config "$1" || true)
	if printf '%s\n' "$out" | grep '^{'; then
		return 0
	fi
	tail -n 3 "$3" >&2 2>/dev/null || true
}
if [ $BROKER_OK = 1 ]; then
	echo "== start to ready: $READY_RUNS runs"
	: >"$TMP/ready.results"
	i=1
	while [ $i -le "$READY_RUNS" ]; do
		line=$(ready_run "$TMP/broker.json" "$BSOCK" "$TMP/ready-$i.log")
		if [ -n "$line" ]; then
			printf '%s\n' "$line" >>"$TMP/ready.results"
			echo "  run $i: $(jnum "$line" ready_ms) ms to ready, exited $(jnum "$line" stop_ms) ms after SIGTERM"
		else
			fail "start-to-ready run $i did not reach ready"
		fi
		i=$((i + 1))
	done
	READY_MEDIAN=$(while IFS= read -r l; do jnum "$l" ready_ms; done <"$TMP/ready.results" | median)
	STOP_MEDIAN=$(while IFS= read -r l; do jnum "$l" stop_ms; done <"$TMP/ready.results" | median)
	line=$(ready_run "$TMP/mem-$NSECRETS.json" "$TMP/mem-$NSECRETS.sock" "$TMP/ready-many.log")
	if [ -n "$line" ]; then
		READY_MANY=$(jnum "$line" ready_ms)
		echo "  with $NSECRETS secrets: $READY_MANY ms to ready"
	else
		fail "start-to-ready with $NSECRETS secrets did not reach ready"
	fi
fi

# ---- (7) seal and open rates ----

SEAL_OUT=""
if [ -x "$BENCHDIR/bench_seal" ]; then
	echo "== bench_seal"
	if SEAL_OUT=$(timeout 120 "$BENCHDIR/bench_seal" 2>&1); then
		printf '%s\n' "$SEAL_OUT" | sed 's/^/  /'
	else
		printf '%s\n' "$SEAL_OUT" | sed 's/^/  /'
		fail "bench_seal failed"
	fi
fi

# ---- summary ----

kb_to_mib() {
	awk -v k="$1" 'BEGIN { if (k == "n/a" || k == "") print "n/a"; else printf "%.1f MiB\n", k / 1024 }'
}

echo
echo "== summary ($(date -u +%Y-%m-%d), $(nproc 2>/dev/null || echo '?') cores, medians of $ROUNDS runs)"
# Other work on the machine moves every figure; the load average says how busy it was.
echo "load average before the throughput runs: $LOAD_BEFORE; now: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
[ $BROKER_OK = 1 ] && echo "broker: listen.poll_us ${BROKER_POLL:-unknown}"
for placement in $PLACEMENTS; do
for cshape in $SHAPES; do
	shape=$cshape@$placement
	echo "-- placement: $placement, client shape: $cshape"
	printf '%-26s %10s %10s %10s %10s %13s %12s %12s\n' "figure" "broker" "poll 0" "nginx" "bare" \
		"broker/nginx" "broker/bare" "poll0/nginx"
	for k in rps p50_us p99_us cpu_us; do
		case $k in
		rps) name="throughput (req/s)" ;;
		p50_us) name="latency p50 (us)" ;;
		p99_us) name="latency p99 (us)" ;;
		cpu_us) name="server CPU/request (us)" ;;
		esac
		b=n/a
		b0=n/a
		rn=n/a
		rb=n/a
		r0=n/a
		if [ $BROKER_OK = 1 ]; then
			b=$(figure "broker-$shape" "$k")
			rn=$(paired "$k" "$shape" nginx)
			rb=$(paired "$k" "$shape" bare)
		fi
		if [ $BROKER0_OK = 1 ]; then
			b0=$(figure "poll0-$shape" "$k")
			r0=$(paired "$k" "$shape" nginx poll0)
		fi
		printf '%-26s %10s %10s %10s %10s %13s %12s %12s\n' "$name" "$b" "$b0" \
			"$(figure "nginx-$shape" "$k")" "$(figure "bare-$shape" "$k")" "$rn" "$rb" "$r0"
	done
	printf '%-26s %10s %10s %10s %10s\n' "  throughput range" \
		"$( [ $BROKER_OK = 1 ] && range "broker-$shape" rps || echo n/a)" \
		"$( [ $BROKER0_OK = 1 ] && range "poll0-$shape" rps || echo n/a)" \
		"$(range "nginx-$shape" rps)" "$(range "bare-$shape" rps)"
	printf '%-26s %10s %10s %10s %10s\n' "errors (all runs)" \
		"$( [ $BROKER_OK = 1 ] && errors_of "broker-$shape" || echo n/a)" \
		"$( [ $BROKER0_OK = 1 ] && errors_of "poll0-$shape" || echo n/a)" \
		"$(errors_of "nginx-$shape")" "$(errors_of "bare-$shape")"
done
done
echo "(figures: medians over the runs; ratios: the median of each round's ratio;"
echo " poll 0: the broker with listen.poll_us 0; server CPU: user and system time per request)"
for rate in $RATES; do
	shape=threads@rate$rate
	echo "-- paced: $rate req/s, threads client, unpinned, one run each"
	printf '%-26s %10s %10s %10s\n' "figure" "broker" "poll 0" "nginx"
	for k in rps p99_us cpu_us; do
		case $k in
		rps) name="throughput (req/s)" ;;
		p99_us) name="latency p99 (us)" ;;
		cpu_us) name="server CPU/request (us)" ;;
		esac
		printf '%-26s %10s %10s %10s\n' "$name" \
			"$( [ $BROKER_OK = 1 ] && figure "broker-$shape" "$k" || echo n/a)" \
			"$( [ $BROKER0_OK = 1 ] && figure "poll0-$shape" "$k" || echo n/a)" \
			"$(figure "nginx-$shape" "$k")"
	done
done
echo "-- broker memory, each secret read once (MiB)"
printf '%-26s %10s %10s %10s %10s\n' "secrets" "VmRSS" "RssAnon" "RssFile" "VmLck"
while read -r n rss anon file lck hwm; do
	printf '%-26s %10s %10s %10s %10s\n' "$n" "$(kb_to_mib "$rss" | cut -d' ' -f1)" \
		"$(kb_to_mib "$anon" | cut -d' ' -f1)" "$(kb_to_mib "$file" | cut -d' ' -f1)" \
		"$(kb_to_mib "$lck" | cut -d' ' -f1)"
done <"$MEM_ROWS"
printf '%-26s %10s %10s %10s\n' "libcurl floor" "$(kb_to_mib "$FLOOR_RSS" | cut -d' ' -f1)" \
	"$(kb_to_mib "$FLOOR_ANON" | cut -d' ' -f1)" "$(kb_to_mib "$FLOOR_FILE" | cut -d' ' -f1)"
ten=$(awk '$1 == 10 { print $2 }' "$MEM_ROWS")
printf '%-26s %10s\n' "10 secrets / floor" "$(ratio "${ten:-n/a}" "$FLOOR_RSS")"
printf '%-26s %10s %10s %10s %10s\n' "1, after the throughput" "$(kb_to_mib "$RSS_ONE" | cut -d' ' -f1)" \
	"$(kb_to_mib "$ANON_ONE" | cut -d' ' -f1)" "" "$(kb_to_mib "$LCK_ONE" | cut -d' ' -f1)"
printf '%-34s %14s\n' "start to ready, 1 secret (ms)" "$READY_MEDIAN"
printf '%-34s %14s\n' "start to ready, $NSECRETS secrets (ms)" "$READY_MANY"
printf '%-34s %14s\n' "exit after SIGTERM (ms)" "$STOP_MEDIAN"
echo "targets: in both shapes throughput >= 1.2x nginx and >= 0.8x bare, p99 <= 150 us;"
echo "         RssAnon <= 2 MiB with 10 secrets and <= 4 MiB with 1,000, VmRSS <= 10 MiB with 10; ready <= 100 ms"

if [ -n "$FAILED" ]; then
	echo "bench: some parts could not run:$FAILED" >&2
	exit 1
fi
exit 0
