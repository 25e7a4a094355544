#!/bin/sh
# shellcheck disable=SC2317  # functions run through wait_for and traps
# bench-sync.sh — the sync benchmark that `make bench` runs after the socket benchmark:
# `latchkey sync` against the test API server (tests/fakes) and `latchkey dev`, with
# BENCH_SYNC_NS namespaces of BENCH_SYNC_PER_NS ExternalSecrets each over BENCH_SYNC_PATHS
# backend paths (10,000 ExternalSecrets, 100 namespaces, 1,000 paths by default).
#
# It reports: the time from start to every Secret written (first full sync), backend reads
# in that sync and in one refresh of every ExternalSecret, Secret writes and API requests
# during that refresh, peak RSS and CPU seconds of the controller; and, as the peer in the
# same run, the API server's own create rate measured alone (one client creating the
# objects one after another), so that the first-sync figure can be read against what the
# API server can take.
#
# usage: tools/bench-sync.sh LATCHKEY_BIN FAKE_APISERVER_BIN BENCH_BIN_DIR
#
# Environment (all optional):
#   BENCH_SYNC_NS=100          namespaces, each with a SecretStore and a token Secret
#   BENCH_SYNC_PER_NS=100      ExternalSecrets per namespace
#   BENCH_SYNC_PATHS=1000      backend paths (a multiple of BENCH_SYNC_NS)
#   BENCH_SYNC_REFRESH=120s    refreshInterval of every ExternalSecret
#   BENCH_SYNC_WORKERS=4       --workers of the controller (its default)
#   BENCH_SYNC_QPS=5000        --qps and, doubled, --burst of the controller
#   BENCH_TIME_LIMIT=600       seconds after which the whole run is stopped
#   BENCH_KEEP=1               keep the temporary directory (logs) for a look afterwards
#
# Figures are reported, never judged: the exit status is 0 when every part ran, 1 when
# something could not run or did not converge within its deadline.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: tools/bench-sync.sh LATCHKEY_BIN FAKE_APISERVER_BIN BENCH_BIN_DIR" >&2
	exit 2
fi
LK=$1
FAKE=$2
LOAD=$3/sync_load
SRC=$(cd "$(dirname "$0")/.." && pwd)

NS=${BENCH_SYNC_NS:-100}
PER_NS=${BENCH_SYNC_PER_NS:-100}
PATHS=${BENCH_SYNC_PATHS:-1000}
REFRESH=${BENCH_SYNC_REFRESH:-120s}
WORKERS=${BENCH_SYNC_WORKERS:-4}
QPS=${BENCH_SYNC_QPS:-5000}
TIME_LIMIT=${BENCH_TIME_LIMIT:-600}
for v in "$NS" "$PER_NS" "$PATHS" "$WORKERS" "$QPS" "$TIME_LIMIT"; do
	case $v in
	'' | *[!0-9]* | 0) echo "bench-sync: BENCH_SYNC_* counts must be positive integers" >&2; exit 2 ;;
	esac
done
case $REFRESH in
[1-9]*s) REFRESH_S=${REFRESH%s} ;;
*) echo "bench-sync: BENCH_SYNC_REFRESH: expected seconds, such as 60s" >&2; exit 2 ;;
esac
case $REFRESH_S in
*[!0-9]*) echo "bench-sync: BENCH_SYNC_REFRESH: expected seconds, such as 60s" >&2; exit 2 ;;
esac
ES_TOTAL=$((NS * PER_NS))
[ -x "$LK" ] || { echo "bench-sync: $LK: not an executable" >&2; exit 2; }
[ -x "$FAKE" ] || { echo "bench-sync: $FAKE: not built (make tests builds it)" >&2; exit 2; }
[ -x "$LOAD" ] || { echo "bench-sync: $LOAD: not built" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "bench-sync: curl is needed" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 || {
	echo "bench-sync: kubectl is needed to apply the CRDs (Debian: kubernetes-client); not run" >&2
	exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench-sync.XXXXXX")
PIDS=""
WATCHDOG=""

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
		echo "bench-sync: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
on_signal() {
	if [ -e "$TMP/.time-limit" ]; then
		echo "bench-sync: stopped at the time limit of $TIME_LIMIT s (BENCH_TIME_LIMIT)" >&2
	else
		echo "bench-sync: interrupted" >&2
	fi
	cleanup
	exit 1
}
trap on_signal INT TERM
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$TIME_LIMIT" &
	sp=$!
	wait "$sp"
	: >"$TMP/.time-limit"
	kill -s TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!

die() {
	echo "bench-sync: $*" >&2
	exit 1
}

# wait_for SECONDS COMMAND...: runs COMMAND every 100 ms until it succeeds.
wait_for() {
	n=$(($1 * 10))
	shift
	i=0
	while [ $i -lt $n ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

now_ms() { date +%s%3N; }

ES_RECONCILES='latchkey_sync_reconcile_total{kind="ExternalSecret"}'
# metric NAME: the sum of every series of a counter or gauge on the controller's /metrics;
# NAME{label="value"} picks one series.
metric() {
	curl -s --max-time 10 "http://127.0.0.1:$MPORT/metrics" |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

# cpu_s PID: user + system CPU seconds so far.
cpu_s() {
	awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat"
}

vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

fake_stats() {
	curl -s --max-time 10 --cacert "$TMP/kube/ca.crt" -H "Authorization: Bearer $KTOKEN" "$KADDR/fake/stats"
}

fake_stats_reset() {
	curl -s --max-time 10 --cacert "$TMP/kube/ca.crt" -H "Authorization: Bearer $KTOKEN" \
		-X DELETE "$KADDR/fake/stats" >/dev/null
}

# jint JSON KEY: the first integer under KEY in a JSON text.
jint() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1; }

# writes_of JSON RESOURCE: writes counted for RESOURCE in a /fake/stats answer.
writes_of() {
	printf '%s\n' "$1" | sed -n 's/.*"writes_by_resource":{\([^}]*\)}.*/\1/p' |
		tr ',' '\n' | sed -n "s/^\"$2\":\([0-9]*\)$/\1/p" | head -n 1
}

# ---- the test API server and the backend ----

OBJECTS=$((NS * (PER_NS * 2 + 4) + 1000))
"$FAKE" --listen 127.0.0.1:0 --dir "$TMP/kube" --max-objects "$((OBJECTS * 2))" \
	--history "$((OBJECTS * 2))" >"$TMP/kube.log" 2>&1 &
FAKE_PID=$!
PIDS="$PIDS $FAKE_PID"
wait_for 20 test -s "$TMP/kube/kubeconfig" || { tail -n 5 "$TMP/kube.log" >&2; die "the test API server did not start"; }
KADDR=$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$TMP/kube.log" | head -n 1)
KTOKEN=$(cat "$TMP/kube/token")
export KUBECONFIG="$TMP/kube/kubeconfig"

DTOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
"$LK" dev --listen 127.0.0.1:0 --root-token "$DTOKEN" >"$TMP/dev.log" 2>&1 &
DEV_PID=$!
PIDS="$PIDS $DEV_PID"
wait_for 20 grep -q '"msg":"listening"' "$TMP/dev.log" || { tail -n 5 "$TMP/dev.log" >&2; die "latchkey dev did not start"; }
DADDR=http://$(sed -n 's/.*"msg":"listening".*"addr":"\([0-9.]*:[0-9]*\)".*/\1/p' "$TMP/dev.log" | head -n 1)

kubectl apply -f "$SRC/deploy/crds/" >"$TMP/kubectl.log" 2>&1 || { cat "$TMP/kubectl.log" >&2; die "kubectl apply of the CRDs failed"; }
kubectl wait --for=condition=Established --timeout=30s crd --all >>"$TMP/kubectl.log" 2>&1 ||
	{ cat "$TMP/kubectl.log" >&2; die "the CRDs were not established"; }
kubectl create namespace latchkey-system >>"$TMP/kubectl.log" 2>&1 || die "could not create latchkey-system"

echo "== sync: $ES_TOTAL ExternalSecrets in $NS namespaces over $PATHS backend paths, refreshInterval $REFRESH, --workers $WORKERS --qps $QPS"
# The peer figure: the API server taking creates from one client, measured alone.
LOAD_OUT=$("$LOAD" "$KADDR" "$KTOKEN" "$TMP/kube/ca.crt" "$DADDR" "$DTOKEN" "$NS" "$PER_NS" "$PATHS" "$REFRESH") ||
	{ printf '%s\n' "$LOAD_OUT" >&2; die "creating the objects failed"; }
OBJ_N=$(printf '%s\n' "$LOAD_OUT" | awk '$1 == "objects" { print $2 }')
OBJ_S=$(printf '%s\n' "$LOAD_OUT" | awk '$1 == "objects" { print $3 }')
OBJ_RATE=$(printf '%s\n' "$LOAD_OUT" | awk '$1 == "objects" { print $4 }')
echo "  created $OBJ_N objects in $OBJ_S s ($OBJ_RATE/s, one client); the API server holds $(jint "$(fake_stats)" objects) objects"
FAKE_CPU0=$(cpu_s "$FAKE_PID")
DEV_CPU0=$(cpu_s "$DEV_PID")
fake_stats_reset

# ---- first full sync ----

T0=$(now_ms)
"$LK" sync --kubeconfig "$KUBECONFIG" --leader-elect=false --metrics 127.0.0.1:0 \
	--controller-namespace latchkey-system --workers "$WORKERS" --qps "$QPS" --burst "$((QPS * 2))" \
	--store-qps "$QPS" --store-burst "$((QPS * 2))" >"$TMP/sync.log" 2>&1 &
SYNC_PID=$!
PIDS="$PIDS $SYNC_PID"
wait_for 30 grep -q '"metrics_port"' "$TMP/sync.log" || { tail -n 5 "$TMP/sync.log" >&2; die "latchkey sync did not start"; }
MPORT=$(sed -n 's/.*"metrics_port":\([0-9]*\).*/\1/p' "$TMP/sync.log" | head -n 1)

all_written() { [ "$(metric latchkey_sync_secret_writes_total)" -ge "$ES_TOTAL" ]; }
wait_for 300 all_written || {
	tail -n 5 "$TMP/sync.log" >&2
	die "not every Secret was written within 300 s ($(metric latchkey_sync_secret_writes_total) of $ES_TOTAL)"
}
T1=$(now_ms)
FIRST_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }')
# Status updates trail the Secret writes; the sync is over when every ExternalSecret has
# been reconciled once and the queue is empty.
settled() {
	[ "$(metric "$ES_RECONCILES")" -ge "$ES_TOTAL" ] && [ "$(metric latchkey_sync_queue_depth)" -eq 0 ]
}
wait_for 120 settled || die "the queue did not drain after the first sync"
T2=$(now_ms)
SETTLED_S=$(awk -v a="$T0" -v b="$T2" 'BEGIN { printf "%.1f\n", (b - a) / 1000 }')
ST=$(fake_stats)
FIRST_API=$(jint "$ST" requests_total)
FIRST_SECRET_WRITES=$(writes_of "$ST" secrets)
FIRST_READS=$(metric latchkey_sync_backend_requests_total)
FIRST_COALESCED=$(metric latchkey_sync_backend_reads_coalesced_total)
FIRST_ERRORS=$(metric latchkey_sync_reconcile_errors_total)
FIRST_CPU=$(cpu_s "$SYNC_PID")
FIRST_RSS=$(vm_kb "$SYNC_PID" VmRSS)
echo "  first full sync: $FIRST_S s to every Secret, $SETTLED_S s to every status; now one refresh (about $REFRESH)"

# ---- one refresh of every ExternalSecret ----

READS0=$FIRST_READS
WRITES0=$(metric latchkey_sync_secret_writes_total)
CPU0=$FIRST_CPU
fake_stats_reset
T3=$(now_ms)
# An ExternalSecret's refresh writes its status (status.refreshTime) once, and its own
# status write brings it round once more without a backend read; so the refresh is counted
# in status writes at the API server, one per ExternalSecret.
es_writes() { w=$(writes_of "$(fake_stats)" 'externalsecrets\.latchkey\.io'); echo "${w:-0}"; }
refreshed() { [ "$(es_writes)" -ge "$ES_TOTAL" ]; }
wait_for "$((REFRESH_S * 3 + 60))" refreshed || die "not every ExternalSecret refreshed within $((REFRESH_S * 3 + 60)) s"
wait_for 60 settled || die "the queue did not drain after the refresh"
T4=$(now_ms)
ST=$(fake_stats)
REF_API=$(jint "$ST" requests_total)
REF_WRITES_ALL=$(jint "$ST" writes_total)
REF_SECRET_WRITES=$(writes_of "$ST" secrets)
REF_READS=$(($(metric latchkey_sync_backend_requests_total) - READS0))
REF_SYNC_WRITES=$(($(metric latchkey_sync_secret_writes_total) - WRITES0))
REF_CPU=$(awk -v a="$CPU0" -v b="$(cpu_s "$SYNC_PID")" 'BEGIN { printf "%.2f\n", b - a }')
REF_S=$(awk -v a="$T3" -v b="$T4" 'BEGIN { printf "%.0f\n", (b - a) / 1000 }')
PEAK_RSS=$(vm_kb "$SYNC_PID" VmHWM)
RSS=$(vm_kb "$SYNC_PID" VmRSS)
TOTAL_CPU=$(cpu_s "$SYNC_PID")
FAKE_CPU=$(awk -v a="$FAKE_CPU0" -v b="$(cpu_s "$FAKE_PID")" 'BEGIN { printf "%.2f\n", b - a }')
DEV_CPU=$(awk -v a="$DEV_CPU0" -v b="$(cpu_s "$DEV_PID")" 'BEGIN { printf "%.2f\n", b - a }')
FAKE_RSS=$(vm_kb "$FAKE_PID" VmHWM)
grep -c '"level":"error"' "$TMP/sync.log" >"$TMP/errors" || true

# ---- the summary ----

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB\n", k / 1024 }'; }
# The first sync written at the API server's one-client create rate, for comparison.
PEER_S=$(awk -v n="$ES_TOTAL" -v r="$OBJ_RATE" 'BEGIN { if (r > 0) printf "%.1f\n", n / r; else print "n/a" }')
echo
echo "== sync summary ($(date -u +%Y-%m-%d), $(nproc 2>/dev/null || echo '?') cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-52s %12s\n' "first full sync: every Secret written (s)" "$FIRST_S"
printf '%-52s %12s\n' "  every status written, queue empty (s)" "$SETTLED_S"
printf '%-52s %12s\n' "  the same $ES_TOTAL creates from one client (s)" "$PEER_S"
printf '%-52s %12s\n' "  ratio sync / one-client creates" "$(awk -v a="$FIRST_S" -v b="$PEER_S" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "n/a" }')"
printf '%-52s %12s\n' "  backend reads (unique paths: $PATHS)" "$FIRST_READS"
printf '%-52s %12s\n' "  reads served by a coalesced read" "$FIRST_COALESCED"
printf '%-52s %12s\n' "  Secret writes at the API server" "${FIRST_SECRET_WRITES:-0}"
printf '%-52s %12s\n' "  API requests" "$FIRST_API"
printf '%-52s %12s\n' "  reconcile errors" "$FIRST_ERRORS"
printf '%-52s %12s\n' "  controller CPU (s)" "$FIRST_CPU"
printf '%-52s %12s\n' "  controller RSS after it" "$(mib "$FIRST_RSS")"
printf '%-52s %12s\n' "one refresh of every ExternalSecret (s)" "$REF_S"
printf '%-52s %12s\n' "  backend reads (unique paths: $PATHS)" "$REF_READS"
printf '%-52s %12s\n' "  Secret writes (controller / API server)" "$REF_SYNC_WRITES / ${REF_SECRET_WRITES:-0}"
printf '%-52s %12s\n' "  writes of any kind at the API server" "$REF_WRITES_ALL"
printf '%-52s %12s\n' "  API requests" "$REF_API"
printf '%-52s %12s\n' "  controller CPU (s)" "$REF_CPU"
printf '%-52s %12s\n' "controller peak RSS (VmHWM)" "$(mib "$PEAK_RSS")"
printf '%-52s %12s\n' "controller RSS at the end" "$(mib "$RSS")"
printf '%-52s %12s\n' "controller CPU in all (s)" "$TOTAL_CPU"
printf '%-52s %12s\n' "test API server CPU over both (s)" "$FAKE_CPU"
printf '%-52s %12s\n' "test API server peak RSS" "$(mib "$FAKE_RSS")"
printf '%-52s %12s\n' "latchkey dev CPU over both (s)" "$DEV_CPU"
printf '%-52s %12s\n' "error lines in the controller log" "$(cat "$TMP/errors")"
echo "targets: first sync <= 30 s on 2 cores, one backend read per unique path, 0 writes in a steady refresh, RSS <= 64 MiB"
exit 0
