# latchkey-app: what the broker sidecar of the example application (deploy/broker/) reads:
# its KV v2 secrets and its database credentials, and the leases it holds renewed and
# revoked. Token lookup-self and renew-self, and sys/leases/renew, are in Vault's `default`
# policy already; revoking the leases it replaced is not.
path "secret/data/app/*" {
  capabilities = ["read"]
}

path "database/creds/app" {
  capabilities = ["read"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}
