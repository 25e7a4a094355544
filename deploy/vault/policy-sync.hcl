# latchkey-sync: what `latchkey sync` reads through the ClusterSecretStore vault-shared-k8s
# (deploy/examples/clustersecretstore-kubernetes.yaml), which logs in as the controller's own
# service account: KV v2 values under secret/shared/, and their custom metadata for
# ExternalSecrets with metadataPolicy: Fetch. The controller only reads; it renews its
# token with renew-self, which the `default` policy allows.
path "secret/data/shared/*" {
  capabilities = ["read"]
}

path "secret/metadata/shared/*" {
  capabilities = ["read"]
}
