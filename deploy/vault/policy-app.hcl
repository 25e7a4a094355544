# The Vault policy a broker sidecar needs for the example in deploy/broker/:
# read its KV secrets and mint database credentials, and manage its own leases.
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
