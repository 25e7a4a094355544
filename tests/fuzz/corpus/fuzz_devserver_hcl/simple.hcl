path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
