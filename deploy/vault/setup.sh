#!/bin/sh
# Vault's side of the examples in deploy/: the Kubernetes auth method, the policies
# latchkey-app (the broker sidecar of deploy/broker/) and latchkey-sync (the controller's
# ClusterSecretStore), and a role for each, bound to its service account and to tokens
# with the audience `vault`.
#
#   VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=… \
#   KUBERNETES_HOST=https://kubernetes.default.svc [KUBERNETES_CA_CERT=ca.crt] \
#   deploy/vault/setup.sh
#
# It speaks Vault's HTTP API with curl, so it needs no vault CLI; each step is idempotent.
# With OpenBao, or `latchkey dev` for a try-out, it runs the same. Optional:
# KUBERNETES_PEM_KEYS (a file with the service-account signing public key, for a Vault
# that cannot reach the API server's TokenReview), VAULT_CACERT, VAULT_NAMESPACE.
set -eu

: "${VAULT_ADDR:?set VAULT_ADDR}"
: "${VAULT_TOKEN:?set VAULT_TOKEN}"
: "${KUBERNETES_HOST:?set KUBERNETES_HOST (the API server as Vault reaches it)}"
here=$(dirname "$0")

vault_api() { # METHOD PATH [JSON]; the body goes on stdin (a CA file is long for argv)
	printf '%s' "${3:-}" | curl -sS --fail-with-body -X "$1" ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} \
		-H "X-Vault-Token: $VAULT_TOKEN" -H "X-Vault-Request: true" \
		${VAULT_NAMESPACE:+-H "X-Vault-Namespace: $VAULT_NAMESPACE"} \
		${3:+-H "Content-Type: application/json" --data-binary @-} "$VAULT_ADDR/v1/$2" >/dev/null
}

# A file's text as a JSON string.
json_string() {
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' "$1" | awk '{printf "%s\\n", $0}' |
		sed -e 's/^/"/' -e 's/$/"/'
}

# The auth method, unless it is there already.
if ! curl -sS --fail ${VAULT_CACERT:+--cacert "$VAULT_CACERT"} -H "X-Vault-Token: $VAULT_TOKEN" \
	${VAULT_NAMESPACE:+-H "X-Vault-Namespace: $VAULT_NAMESPACE"} \
	"$VAULT_ADDR/v1/sys/auth" | grep -q '"kubernetes/"'; then
	vault_api POST sys/auth/kubernetes '{"type":"kubernetes"}'
fi

config="{\"kubernetes_host\":\"$KUBERNETES_HOST\""
[ -n "${KUBERNETES_CA_CERT:-}" ] && config="$config,\"kubernetes_ca_cert\":$(json_string "$KUBERNETES_CA_CERT")"
[ -n "${KUBERNETES_PEM_KEYS:-}" ] && config="$config,\"pem_keys\":[$(json_string "$KUBERNETES_PEM_KEYS")]"
vault_api POST auth/kubernetes/config "$config}"

vault_api PUT sys/policies/acl/latchkey-app "{\"policy\":$(json_string "$here/policy-app.hcl")}"
vault_api PUT sys/policies/acl/latchkey-sync "{\"policy\":$(json_string "$here/policy-sync.hcl")}"

# The broker of deploy/broker/: service account app in the namespace app, the token its
# pod projects for the audience vault. Its leases live at most a day.
vault_api POST auth/kubernetes/role/app '{"bound_service_account_names":["app"],
  "bound_service_account_namespaces":["app"],"audience":"vault",
  "token_policies":["latchkey-app"],"token_ttl":"1h","token_max_ttl":"24h"}'

# The controller's ClusterSecretStore vault-shared-k8s: the controller's service account, with
# a token it requests for itself with the audience vault.
vault_api POST auth/kubernetes/role/latchkey-sync '{"bound_service_account_names":["latchkey-sync"],
  "bound_service_account_namespaces":["latchkey-system"],"audience":"vault",
  "token_policies":["latchkey-sync"],"token_ttl":"1h","token_max_ttl":"24h"}'

echo "deploy/vault/setup.sh: Kubernetes auth, policies latchkey-app and latchkey-sync, roles app and latchkey-sync"
