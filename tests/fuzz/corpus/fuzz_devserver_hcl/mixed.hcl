# comment
// another
/* block */
path "secret/+/app/x" = { policy = "write" }
path "sys/*" { capabilities = ["deny"] allowed_parameters = { "key" = [] "*" = ["a", 1, true] } }
