#!/bin/sh
# kubectl against the test API server (build/fake-apiserver): apply (client-side and
# --server-side, of a kustomize rendering), get (-A, -o yaml/json, -w), describe, wait,
# annotate, label, patch (merge, json, strategic, --subresource=status), delete (and
# --cascade), api-resources, explain, auth, create token.
#
# usage: kubectl.sh KUBECTL KUBECONFIG WORKDIR
# KUBECTL is a kubectl binary; the fake must be fresh (nothing created yet). Exit 0 when
# every check passed; on failure the last line names the check. The source tree is found
# from this script's path (tests/fakes/testdata, deploy/crds when present).
set -eu

KUBECTL=$1
export KUBECONFIG=$2
W=$3
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TD=$SRC/tests/fakes/testdata
NS=interop
# Generous: a busy 2-core machine.
DEADLINE=30

k() {
	"$KUBECTL" --cache-dir "$W/cache" --request-timeout=30s "$@"
}

step() {
	STEP=$1
	echo "--- $STEP"
}

fail() {
	echo "FAIL [$STEP]: $*" >&2
	exit 1
}

# contains FILE TEXT
contains() {
	grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "no \"$2\" in the output"; }
}

# until_true DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until the deadline
until_true() {
	what=$1
	shift
	end=$(( $(date +%s) + DEADLINE ))
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || fail "timed out waiting for $what"
		sleep 0.2
	done
}

gone() {
	! k get "$@" >/dev/null 2>&1
}

mkdir -p "$W"
O=$W/out

step "version and discovery"
k version >"$O" 2>&1 || true
contains "$O" "Server Version"
contains "$O" "v1.31"
k api-resources >"$O"
contains "$O" "leases"
contains "$O" "coordination.k8s.io/v1"
contains "$O" "customresourcedefinitions"

step "client-side apply of CRDs, then of custom objects"
k apply -f "$TD/crds/widgets.yaml" -f "$TD/crds/gadgets.yaml" >"$O"
contains "$O" "widgets.fake.latchkey.io created"
k wait --for=condition=Established --timeout=${DEADLINE}s crd/widgets.fake.latchkey.io >"$O"
if [ -d "$SRC/deploy/crds" ]; then
	k apply -f "$SRC/deploy/crds" >"$O"
fi
k create namespace "$NS" >"$O"
k apply -n "$NS" -f "$TD/widget.yaml" >"$O"
contains "$O" "widget.fake.latchkey.io/w1 created"
k apply -n "$NS" -f "$TD/widget.yaml" >"$O"
contains "$O" "unchanged"
sed 's/size: 3/size: 5/' "$TD/widget.yaml" >"$W/widget5.yaml"
k apply -n "$NS" -f "$W/widget5.yaml" >"$O"
contains "$O" "configured"
k get -n "$NS" wd w1 -o jsonpath='{.spec.size} {.metadata.generation}' >"$O"
contains "$O" "5 2"

step "the schema: a wrong type is 422, an unknown field 400 with Strict"
sed 's/size: 3/size: three/' "$TD/widget.yaml" >"$W/bad.yaml"
! k apply -n "$NS" -f "$W/bad.yaml" >"$O" 2>&1 || fail "a string size was accepted"
contains "$O" "spec.size"
sed 's/color: red/colour: red/' "$TD/widget.yaml" >"$W/unknown.yaml"
! k apply -n "$NS" -f "$W/unknown.yaml" --validate=strict >"$O" 2>&1 || fail "an unknown field was accepted"
contains "$O" "colour"

step "client-side apply of built-in kinds, twice (strategic merge patch)"
k apply -n "$NS" -f "$TD/app.yaml" >"$O"
contains "$O" "deployment.apps/web created"
contains "$O" "secret/web-config created"
sed -e 's/image: nginx:1.25/image: nginx:1.27/' -e 's/LOG_LEVEL/LOG_FORMAT/' "$TD/app.yaml" >"$W/app2.yaml"
k apply -n "$NS" -f "$W/app2.yaml" >"$O"
contains "$O" "deployment.apps/web configured"
k get -n "$NS" deployment web -o json >"$O"
contains "$O" '"image": "nginx:1.27"'
contains "$O" '"name": "LOG_FORMAT"'
! grep -q '"LOG_LEVEL"' "$O" || fail "the env var removed from the manifest is still there"
contains "$O" '"image": "busybox:1.36"'

step "server-side apply of a kustomize rendering, twice"
k kustomize "$TD/controller" >"$W/rendered.yaml"
k apply --server-side -f "$W/rendered.yaml" >"$O"
contains "$O" "deployment.apps/fake-controller serverside-applied"
contains "$O" "networkpolicy.networking.k8s.io/fake-controller serverside-applied"
k apply --server-side -f "$W/rendered.yaml" >"$O"
contains "$O" "poddisruptionbudget.policy/fake-controller serverside-applied"
k get -n fake-system deployment fake-controller -o jsonpath='{.metadata.managedFields[0].manager}' >"$O"
contains "$O" "kubectl"

step "server-side apply conflicts with another manager, and --force-conflicts"
k scale -n fake-system deployment fake-controller --replicas=3 >"$O" 2>&1 || \
	k patch -n fake-system deployment fake-controller --type=merge -p '{"spec":{"replicas":3}}' >"$O"
! k apply --server-side -f "$W/rendered.yaml" >"$O" 2>&1 || fail "no conflict over spec.replicas"
contains "$O" "conflict"
contains "$O" ".spec.replicas"
k apply --server-side --force-conflicts -f "$W/rendered.yaml" >"$O"
k get -n fake-system deployment fake-controller -o jsonpath='{.spec.replicas}' >"$O"
contains "$O" "2"

step "kubectl create (typed clients: protobuf bodies with kubectl ≥ 1.33)"
k create -n "$NS" secret generic typed --from-literal=user=app >"$O"
k create -n "$NS" configmap typed --from-literal=a=b >"$O"
k create -n "$NS" serviceaccount typed >"$O"
k create -n "$NS" deployment typed --image=nginx:1.27 --port=80 --replicas=2 >"$O"
k create -n "$NS" service clusterip typed --tcp=80:8080 >"$O"
k create -n "$NS" poddisruptionbudget typed --selector=app=typed --min-available=1 >"$O"
k create -n "$NS" role typed --verb=get,list --resource=secrets >"$O"
k create -n "$NS" rolebinding typed --role=typed --serviceaccount="$NS:typed" >"$O"
k get -n "$NS" deployment typed -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}' >"$O"
contains "$O" "2 80"
k get -n "$NS" secret typed -o jsonpath='{.data.user}' >"$O"
contains "$O" "YXBw"
k --token="$(k create token -n "$NS" typed)" get -n "$NS" secrets >"$O" 2>&1
contains "$O" "typed"

step "get, get -A, -o yaml, -o json"
k get -n "$NS" secrets >"$O"
contains "$O" "web-config"
contains "$O" "Opaque"
k get secrets -A >"$O"
contains "$O" "NAMESPACE"
contains "$O" "$NS"
k get -n "$NS" secret web-config -o yaml >"$O"
contains "$O" "kind: Secret"
contains "$O" "resourceVersion:"
k get -n "$NS" configmap web -o json >"$O"
contains "$O" '"kind": "ConfigMap"'
k get fake -A >"$O"
contains "$O" "w1"
k get gadgets >"$O" 2>&1
contains "$O" "No resources found"

step "annotate, label, patch --type=merge|json, strategic"
k annotate -n "$NS" secret web-config team=blue >"$O"
contains "$O" "secret/web-config annotate"
k label -n "$NS" secret web-config tier=backend >"$O"
contains "$O" "secret/web-config label"
k get -n "$NS" secrets -l tier=backend >"$O"
contains "$O" "web-config"
k get -n "$NS" secrets -l 'tier in (backend,frontend),team!=red' >"$O"
contains "$O" "web-config"
k patch -n "$NS" configmap web --type=merge -p '{"data":{"mode":"merge"}}' >"$O"
contains "$O" "patched"
k patch -n "$NS" configmap web --type=json -p '[{"op":"add","path":"/data/json","value":"yes"}]' >"$O"
k get -n "$NS" configmap web -o jsonpath='{.data.mode}/{.data.json}' >"$O"
contains "$O" "merge/yes"
k patch -n "$NS" deployment web -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}' >"$O"
k get -n "$NS" deployment web -o jsonpath='{.spec.template.spec.containers[*].image}' >"$O"
contains "$O" "nginx:1.28 busybox:1.36"

step "get -w sees a change made meanwhile"
k get -n "$NS" widgets -w >"$W/watch.out" 2>&1 &
WATCH=$!
until_true "the watch's first line" grep -q w1 "$W/watch.out"
sed 's/name: w1/name: w2/' "$TD/widget.yaml" | k apply -n "$NS" -f - >"$O"
until_true "w2 in the watch" grep -q w2 "$W/watch.out"
kill "$WATCH" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true

step "wait --for=condition=Ready, the condition set through /status"
k wait -n "$NS" --for=condition=Ready --timeout=${DEADLINE}s widget/w2 >"$W/wait.out" 2>&1 &
WAIT=$!
sleep 0.5
k patch -n "$NS" widget w2 --subresource=status --type=merge \
	-p '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test"}]}}' >"$O"
wait "$WAIT" || { cat "$W/wait.out" >&2; fail "kubectl wait did not see Ready"; }
contains "$W/wait.out" "condition met"
k get -n "$NS" widgets w2 >"$O"
contains "$O" "True"

step "describe"
k describe -n "$NS" widget w2 >"$O"
contains "$O" "Name:"
contains "$O" "w2"
contains "$O" "Ready"
k describe -n "$NS" secret web-config >"$O"
contains "$O" "password:"

step "explain"
k explain widgets.spec.size >"$O" 2>&1
contains "$O" "How big"

step "delete with --cascade"
k create -n "$NS" configmap owner >"$O"
UID_OWNER=$(k get -n "$NS" configmap owner -o jsonpath='{.metadata.uid}')
for dep in dep1 dep2 dep3; do
	cat >"$W/$dep.yaml" <<-EOF
	apiVersion: v1
	kind: ConfigMap
	metadata:
	  name: $dep
	  ownerReferences:
	    - {apiVersion: v1, kind: ConfigMap, name: owner, uid: $UID_OWNER, blockOwnerDeletion: true}
	EOF
	k apply -n "$NS" -f "$W/$dep.yaml" >"$O"
done
k delete -n "$NS" configmap owner --cascade=orphan >"$O"
until_true "the orphaned dependent" k get -n "$NS" configmap dep1
k get -n "$NS" configmap dep1 -o jsonpath='{.metadata.ownerReferences}' >"$O"
[ ! -s "$O" ] || fail "the orphan keeps its ownerReferences: $(cat "$O")"
k create -n "$NS" configmap owner >"$O"
UID_OWNER=$(k get -n "$NS" configmap owner -o jsonpath='{.metadata.uid}')
for dep in dep2 dep3; do
	sed "s/uid: .*}/uid: $UID_OWNER, blockOwnerDeletion: true}/" "$W/$dep.yaml" | k apply -n "$NS" -f - >"$O"
done
k delete -n "$NS" configmap owner --cascade=foreground >"$O"
until_true "foreground deletion of the dependents" gone -n "$NS" configmap dep2
until_true "foreground deletion of the owner" gone -n "$NS" configmap owner
k delete -n "$NS" deployment web >"$O"
contains "$O" "deleted"

step "auth and tokens"
k auth can-i create secrets -n "$NS" >"$O" 2>&1
contains "$O" "yes"
k create token -n fake-system fake-controller --audience=vault >"$W/sa.jwt"
[ "$(tr -cd . <"$W/sa.jwt" | wc -c)" -eq 2 ] || fail "not a JWT: $(cat "$W/sa.jwt")"
k --token="$(k create token -n fake-system fake-controller)" auth can-i list widgets -A >"$O" 2>&1 || true
contains "$O" "yes"
k --token="$(k create token -n fake-system fake-controller)" auth can-i delete secrets -n "$NS" >"$O" 2>&1 || true
contains "$O" "no"
! k --token="$(k create token -n fake-system fake-controller)" delete -n "$NS" secret web-config >"$O" 2>&1 || \
	fail "the service account deleted a secret its role does not allow"
contains "$O" "forbidden"

step "delete a namespace and everything in it"
k delete namespace "$NS" --timeout=${DEADLINE}s >"$O"
until_true "the namespace to go" gone namespace "$NS"
k get secrets -A >"$O" 2>&1
! grep -q "web-config" "$O" || fail "a secret of the deleted namespace is left"

echo "ok: every kubectl check passed"
