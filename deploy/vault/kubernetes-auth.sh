#!/bin/sh
# Configures Vault's Kubernetes auth for the broker example (run with a Vault admin token).
set -eu
vault auth enable kubernetes 2>/dev/null || true
vault write auth/kubernetes/config kubernetes_host="https://kubernetes.default.svc"
vault policy write app deploy/vault/policy-app.hcl
vault write auth/kubernetes/role/app \
  bound_service_account_names=app bound_service_account_namespaces=app \
  token_policies=app token_ttl=1h token_max_ttl=24h
