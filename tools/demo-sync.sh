#!/bin/sh
# `make demo-sync`: the controller end to end on one machine, shown with kubectl.
#
# Starts the test API server (tests/fakes) and `latchkey dev` on free ports, applies the
# CRDs and an example with kubectl, runs `latchkey sync`, and shows what an admin looks
# at: the ExternalSecret becoming Ready, the Secret it made, a backend change reaching the
# Secret, and an error in the status. Stops everything it started, also on Ctrl-C.
#
# usage: tools/demo-sync.sh PATH/TO/latchkey PATH/TO/fake-apiserver
set -eu

BIN=${1:?usage: tools/demo-sync.sh PATH/TO/latchkey PATH/TO/fake-apiserver}
FAKE=${2:?usage: tools/demo-sync.sh PATH/TO/latchkey PATH/TO/fake-apiserver}
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT_TOKEN=demo-root
# Bounds on every wait, in tenths of a second.
LIMIT=300

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-demo-sync.XXXXXX")
pids=""

cleanup() {
	status=$?
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $pids; do
		wait "$p" 2>/dev/null || true
	done
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
fail() { echo "demo-sync: $*" >&2; exit 1; }
show() { printf '$ %s\n' "$*"; "$@"; }

# Waits (a tenth of a second at a time, LIMIT times at most) until "$@" succeeds.
wait_for() {
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt "$LIMIT" ] || return 1
		sleep 0.1
	done
}

# The first line of a log that matches a sed expression printing its capture.
log_value() { sed -n "$2" "$1" | head -n 1; }

dev() { # METHOD PATH BODY
	curl -sS -f -X "$1" -H "X-Vault-Token: $ROOT_TOKEN" -d "$3" "$addr/v1/$2" >/dev/null
}

command -v kubectl >/dev/null 2>&1 || fail "kubectl is needed (on Debian: the kubernetes-client package)"
command -v curl >/dev/null 2>&1 || fail "curl is needed (tools/deps.sh installs it)"
[ -x "$BIN" ] || fail "$BIN is not an executable"
[ -x "$FAKE" ] || fail "$FAKE is not an executable (make builds it)"

say "starting the test Kubernetes API server and latchkey dev"
"$FAKE" --listen 127.0.0.1:0 --dir "$tmp/kube" >"$tmp/kube.log" 2>&1 &
pids="$pids $!"
"$BIN" dev --listen 127.0.0.1:0 --root-token "$ROOT_TOKEN" >"$tmp/dev.log" 2>&1 &
pids="$pids $!"
wait_for test -s "$tmp/kube/kubeconfig" || fail "the API server did not start: $(cat "$tmp/kube.log")"
wait_for grep -q '"msg":"listening"' "$tmp/dev.log" || fail "latchkey dev did not start: $(cat "$tmp/dev.log")"
addr=$(log_value "$tmp/dev.log" 's/.*"msg":"listening","addr":"\([^"]*\)".*/http:\/\/\1/p')
export KUBECONFIG="$tmp/kube/kubeconfig"
echo "API server: $(log_value "$tmp/kube.log" 's/.*"addr":"\([^"]*\)".*/\1/p'); backend: $addr"

say "a secret in the backend"
dev POST secret/data/app/db '{"data":{"username":"app","password":"first-password"}}'
echo "secret/data/app/db holds username and password"

say "the CRDs and an example, applied with kubectl"
show kubectl apply -f "$SRC/deploy/crds/"
kubectl create namespace app >/dev/null
kubectl create namespace latchkey-system >/dev/null
show kubectl -n app create secret generic vault-token --from-literal=token="$ROOT_TOKEN"
cat >"$tmp/example.yaml" <<EOF
apiVersion: latchkey.io/v1
kind: SecretStore
metadata: {name: vault, namespace: app}
spec:
  provider:
    vault:
      server: $addr
      path: secret
      version: v2
      auth:
        tokenSecretRef: {name: vault-token, key: token}
---
apiVersion: latchkey.io/v1
kind: ExternalSecret
metadata: {name: db, namespace: app}
spec:
  refreshInterval: 5s
  secretStoreRef: {name: vault}
  target:
    name: db-creds
    template:
      data:
        dsn: "postgres://{{ .username }}:{{ .password }}@db.app.svc:5432/app"
  data:
    - {secretKey: username, remoteRef: {key: app/db, property: username}}
    - {secretKey: password, remoteRef: {key: app/db, property: password}}
EOF
show kubectl apply -f "$tmp/example.yaml"

say "latchkey sync"
"$BIN" sync --metrics 127.0.0.1:0 --controller-namespace latchkey-system >"$tmp/sync.log" 2>&1 &
pids="$pids $!"
wait_for grep -q '"msg":"leading' "$tmp/sync.log" || fail "latchkey sync did not lead: $(cat "$tmp/sync.log")"
log_value "$tmp/sync.log" '/"msg":"leading/p'

say "the ExternalSecret becomes Ready"
show kubectl -n app wait --for=condition=Ready externalsecrets.latchkey.io/db --timeout=30s
show kubectl -n app get externalsecrets.latchkey.io,secretstores.latchkey.io
show kubectl -n app get secret db-creds
printf '$ kubectl -n app get secret db-creds -o jsonpath={.data.dsn} | base64 -d\n'
kubectl -n app get secret db-creds -o jsonpath='{.data.dsn}' | base64 -d
echo

say "the password changes in the backend: the Secret follows within the refresh interval"
dev POST secret/data/app/db '{"data":{"username":"app","password":"second-password"}}'
dsn_has_second() { kubectl -n app get secret db-creds -o jsonpath='{.data.dsn}' | base64 -d | grep -q second-password; }
wait_for dsn_has_second || fail "the Secret did not follow"
printf '$ kubectl -n app get secret db-creds -o jsonpath={.data.dsn} | base64 -d\n'
kubectl -n app get secret db-creds -o jsonpath='{.data.dsn}' | base64 -d
echo

say "an error in the status: an ExternalSecret asks for a property the secret does not have"
cat >"$tmp/broken.yaml" <<EOF
apiVersion: latchkey.io/v1
kind: ExternalSecret
metadata: {name: broken, namespace: app}
spec:
  secretStoreRef: {name: vault}
  data:
    - {secretKey: token, remoteRef: {key: app/db, property: token}}
EOF
show kubectl apply -f "$tmp/broken.yaml"
show kubectl -n app wait --for=condition=Ready=false externalsecrets.latchkey.io/broken --timeout=30s
show kubectl -n app get externalsecrets.latchkey.io broken \
	-o jsonpath='{.status.conditions[0].reason}: {.status.conditions[0].message}{"\n"}'
show kubectl -n app get events --field-selector involvedObject.name=broken

say "what the controller counted"
port=$(log_value "$tmp/sync.log" 's/.*"metrics_port":\([0-9]*\).*/\1/p')
curl -sS "http://127.0.0.1:$port/metrics" | grep -E '^latchkey_sync_(secret_writes_total|reconcile_total|backend_requests_total|leader) ' || true
curl -sS "http://127.0.0.1:$port/metrics" | grep -E '^latchkey_sync_(secret_writes_total|reconcile_total|backend_requests_total)\{' || true

say "done: stopping everything"
