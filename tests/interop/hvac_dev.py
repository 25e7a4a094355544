#!/usr/bin/python3
"""hvac, the Python Vault client (Debian python3-hvac 0.11), against a running `latchkey dev`.

usage: hvac_dev.py SECTION    with VAULT_ADDR and VAULT_TOKEN (the root token) set

Each section drives one part of the API through hvac the way an application would, and
checks what hvac hands back. It prints "ok SECTION" and exits 0, or names the failed
check and exits 1. Sections: sys policies token kv2 kv1 approle kubernetes database
leases list (tests/integration/check_hvac.c runs one test per section).
"""
import base64
import datetime
import json
import os
import sys
import time

import hvac
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ADDR = os.environ["VAULT_ADDR"]
ROOT = os.environ["VAULT_TOKEN"]


class CheckFailed(Exception):
    pass


def check(cond, what, got=None):
    if not cond:
        raise CheckFailed(what + ("" if got is None else ": got %r" % (got,)))


def raises(exc, fn, *args, **kwargs):
    """Calls fn and checks that it raises exc (an hvac exception class)."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise CheckFailed("%s did not raise %s" % (getattr(fn, "__name__", fn), exc.__name__))


def client(token=ROOT):
    return hvac.Client(url=ADDR, token=token)


def raw(method, path, token=ROOT, **kwargs):
    headers = kwargs.pop("headers", {})
    headers.setdefault("X-Vault-Token", token)
    return requests.request(method, ADDR + "/v1/" + path, headers=headers, timeout=30, **kwargs)


# ---- sections ----

def sec_sys():
    c = client()
    health = c.sys.read_health_status(method="GET")
    check(health["initialized"] is True and health["sealed"] is False, "health", health)
    check(c.sys.read_health_status().status_code == 200, "HEAD sys/health")
    seal = c.sys.read_seal_status()
    check(seal["sealed"] is False and seal["t"] == 1, "seal-status", seal)
    check(c.sys.is_sealed() is False, "is_sealed")
    mounts = c.sys.list_mounted_secrets_engines()
    check(mounts["data"]["secret/"]["options"]["version"] == "2", "secret/ is KV v2", mounts["data"])
    check("database/" in mounts["data"], "database/ mounted")
    c.sys.enable_secrets_engine("kv", path="hvac-kv", options={"version": "1"})
    tune = c.sys.read_mount_configuration("hvac-kv")
    check(tune["data"]["default_lease_ttl"] == 2764800 and tune["data"]["options"]["version"] == "1",
          "read_mount_configuration", tune)
    c.sys.tune_mount_configuration("hvac-kv", default_lease_ttl="1h", max_lease_ttl="2h",
                                   description="tuned by hvac")
    tune = c.sys.read_mount_configuration("hvac-kv")["data"]
    check(tune["default_lease_ttl"] == 3600 and tune["max_lease_ttl"] == 7200 and
          tune["description"] == "tuned by hvac", "tune_mount_configuration", tune)
    check("hvac-kv/" in c.sys.list_mounted_secrets_engines()["data"], "new mount listed")
    c.sys.disable_secrets_engine("hvac-kv")
    check("hvac-kv/" not in c.sys.list_mounted_secrets_engines()["data"], "unmounted")
    auths = c.sys.list_auth_methods()
    check(auths["data"]["approle/"]["type"] == "approle", "approle/ listed", auths["data"])
    check(auths["data"]["token/"]["type"] == "token", "token/ listed")
    # enabling again what is already on is accepted, as for a script written for Vault
    c.sys.enable_auth_method("approle")
    c.sys.enable_auth_method("approle", path="approle2")
    check("approle2/" in c.sys.list_auth_methods()["data"], "approle2/ enabled")
    c.sys.disable_auth_method("approle2")
    # the dev server's fault endpoint, reachable through hvac's own adapter
    faults = c.adapter.put("/v1/sys/dev/faults", json={"error_rate": 1, "error_status": 500, "paths": "secret/"})
    check(faults["error_rate"] == 1 and faults["paths"] == "secret/", "set faults", faults)
    raises(hvac.exceptions.InternalServerError, c.secrets.kv.v2.read_secret_version, "x")
    check(c.sys.read_health_status(method="GET")["sealed"] is False, "faults stay under their paths")
    check(c.adapter.delete("/v1/sys/dev/faults")["error_rate"] == 0, "faults cleared")
    raises(hvac.exceptions.InvalidPath, c.secrets.kv.v2.read_secret_version, "x")


def sec_policies():
    c = client()
    hcl = 'path "secret/data/hcl/*" {\n  capabilities = ["read", "list"]\n}\n'
    c.sys.create_or_update_policy("hvac-hcl", hcl)
    check(c.sys.read_policy("hvac-hcl")["data"]["rules"] == hcl, "HCL read back")
    # a dict is sent as a JSON policy document (pretty-printed by hvac)
    c.sys.create_or_update_policy("hvac-json", {"path": {"secret/data/json/*": {"capabilities": ["read"]}}})
    check('"capabilities"' in c.sys.read_policy("hvac-json")["data"]["rules"], "JSON read back")
    names = c.sys.list_policies()["data"]["policies"]
    check({"hvac-hcl", "hvac-json", "default", "root"} <= set(names), "policies listed", names)
    c.secrets.kv.v2.create_or_update_secret("json/a", {"k": "v"})
    c.secrets.kv.v2.create_or_update_secret("hcl/a", {"k": "v"})
    tok = c.auth.token.create(policies=["hvac-json"], ttl="10m")["auth"]["client_token"]
    u = client(tok)
    check(u.secrets.kv.v2.read_secret_version("json/a")["data"]["data"] == {"k": "v"}, "JSON policy grants")
    raises(hvac.exceptions.Forbidden, u.secrets.kv.v2.read_secret_version, "hcl/a")
    # sys/capabilities-self: each path's capabilities, "capabilities" too for one path
    caps = u.sys.get_capabilities(["secret/data/json/a", "secret/data/hcl/a"])
    check(caps["secret/data/json/a"] == ["read"] and caps["secret/data/hcl/a"] == ["deny"] and
          caps["data"]["secret/data/json/a"] == ["read"] and "capabilities" not in caps,
          "get_capabilities", caps)
    one = u.sys.get_capabilities(["secret/data/json/a"])
    check(one["capabilities"] == ["read"], "get_capabilities for one path", one)
    check(c.sys.get_capabilities(["anything"])["capabilities"] == ["root"], "root's capabilities")
    # a broken JSON document: 400 that names the problem without echoing the document
    e = raises(hvac.exceptions.InvalidRequest, c.sys.create_or_update_policy, "bad",
               '{"path": {"x/*": {"capabilities": ["fly"]}}, "hunter2": 1}')
    check("hunter2" not in str(e), "error quotes the document", str(e))
    # sys/policies/acl through the adapter, as hvac 0.11 has no method for it
    c.adapter.put("/v1/sys/policies/acl/hvac-acl",
                  json={"policy": json.dumps({"path": {"secret/data/acl/*": {"capabilities": ["read"]}}})})
    acl = c.adapter.get("/v1/sys/policies/acl/hvac-acl")
    check('"secret/data/acl/*"' in acl["data"]["policy"], "ACL policy read back", acl)
    c.sys.delete_policy("hvac-hcl")
    check("hvac-hcl" not in c.sys.list_policies()["data"]["policies"], "policy deleted")


def sec_token():
    c = client()
    c.sys.create_or_update_policy("hvac-creator", 'path "auth/token/create" { capabilities = ["update"] }')
    made = c.auth.token.create(policies=["hvac-creator"], ttl="1h", explicit_max_ttl="2h",
                               meta={"app": "hvac"})
    tok, accessor = made["auth"]["client_token"], made["auth"]["accessor"]
    check(made["auth"]["lease_duration"] == 3600 and made["auth"]["renewable"] is True,
          "create", made["auth"])
    look = c.auth.token.lookup(tok)["data"]
    check(look["id"] == tok and look["meta"] == {"app": "hvac"} and look["explicit_max_ttl"] == 7200,
          "lookup", look)
    check(0 < look["ttl"] <= 3600, "lookup ttl", look["ttl"])
    u = client(tok)
    check(u.auth.token.lookup_self()["data"]["accessor"] == accessor, "lookup_self")
    check(u.lookup_token()["data"]["id"] == tok, "lookup_token")
    renewed = c.auth.token.renew(tok, increment="30m")
    check(renewed["auth"]["lease_duration"] == 1800, "renew", renewed["auth"])
    check(u.auth.token.renew_self(increment=600)["auth"]["lease_duration"] == 600, "renew_self")
    by_acc = c.auth.token.lookup_accessor(accessor)["data"]
    check(by_acc["accessor"] == accessor and by_acc["id"] == "", "lookup_accessor hides the token", by_acc)
    child = u.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    c.auth.token.revoke(tok)
    raises(hvac.exceptions.Forbidden, client(child).auth.token.lookup_self)
    raises(hvac.exceptions.Forbidden, u.auth.token.lookup_self)
    other = c.auth.token.create(policies=["default"], ttl="10m")["auth"]
    c.auth.token.revoke_accessor(other["accessor"])
    raises(hvac.exceptions.Forbidden, client(other["client_token"]).auth.token.lookup_self)
    last = client(c.auth.token.create(policies=["default"])["auth"]["client_token"])
    check(last.is_authenticated(), "is_authenticated")
    last.auth.token.revoke_self()
    check(not last.is_authenticated(), "revoked itself")
    # the root token never expires: ttl 0, no expire_time
    root = c.auth.token.lookup_self()["data"]
    check(root["ttl"] == 0 and root["expire_time"] is None, "root token", root)
    # a token that reaches its explicit max TTL is gone
    short = c.auth.token.create(policies=["default"], ttl="1h", explicit_max_ttl=1)["auth"]
    check(short["lease_duration"] == 1, "explicit max caps the ttl", short)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            check(client(short["client_token"]).auth.token.lookup_self()["data"]["ttl"] >= 1,
                  "a live token with ttl 0")
        except hvac.exceptions.Forbidden:
            break
        time.sleep(0.05)
    else:
        raise CheckFailed("the token outlived its explicit max TTL")


def sec_kv2():
    c = client()
    kv = c.secrets.kv.v2
    w = kv.create_or_update_secret("app/db", {"user": "u", "password": "p1"})
    check(w["data"]["version"] == 1, "create", w)
    w = kv.create_or_update_secret("app/db", {"user": "u", "password": "p2"}, cas=1)
    check(w["data"]["version"] == 2, "update with cas", w)
    raises(hvac.exceptions.InvalidRequest, kv.create_or_update_secret, "app/db", {"x": 1}, cas=1)
    r = kv.read_secret_version("app/db")
    check(r["data"]["data"]["password"] == "p2" and r["data"]["metadata"]["version"] == 2, "read", r)
    check(kv.read_secret_version("app/db", version=1)["data"]["data"]["password"] == "p1", "read v1")
    # a NUL byte in a value is kept, as Vault keeps it
    kv.create_or_update_secret("app/nul", {"blob": "a\x00b"})
    check(kv.read_secret_version("app/nul")["data"]["data"] == {"blob": "a\x00b"}, "NUL kept")
    kv.delete_metadata_and_all_versions("app/nul")
    # hvac's own patch: read, merge, write with cas
    p = kv.patch("app/db", {"password": "p3"})
    check(p["data"]["version"] == 3, "hvac patch", p)
    # the PATCH verb (Vault >= 1.9), a JSON merge patch
    resp = raw("PATCH", "secret/data/app/db", headers={"Content-Type": "application/merge-patch+json"},
               data=json.dumps({"data": {"user": None, "password": "p4"}, "options": {"cas": 3}}))
    check(resp.status_code == 200 and resp.json()["data"]["version"] == 4, "PATCH", resp.text)
    check(kv.read_secret_version("app/db")["data"]["data"] == {"password": "p4"}, "merge patch applied")
    resp = raw("PATCH", "secret/data/app/db", headers={"Content-Type": "application/json"},
               data=json.dumps({"data": {"x": 1}}))
    check(resp.status_code == 415, "PATCH with application/json", resp.status_code)
    check(kv.list_secrets("app")["data"]["keys"] == ["db"], "list")
    check(kv.list_secrets("")["data"]["keys"] == ["app/"], "list the root")
    kv.delete_latest_version_of_secret("app/db")
    raises(hvac.exceptions.InvalidPath, kv.read_secret_version, "app/db")
    kv.undelete_secret_versions("app/db", versions=[4])
    check(kv.read_secret_version("app/db")["data"]["metadata"]["version"] == 4, "undelete")
    kv.delete_secret_versions("app/db", versions=[1])
    kv.destroy_secret_versions("app/db", versions=[2])
    meta = kv.read_secret_metadata("app/db")["data"]
    check(meta["current_version"] == 4 and meta["versions"]["2"]["destroyed"] is True and
          meta["versions"]["1"]["deletion_time"] != "", "metadata", meta)
    kv.update_metadata("app/db", max_versions=3, delete_version_after="1h")
    # hvac 0.11 has no custom_metadata parameter: through the adapter
    c.adapter.post("/v1/secret/metadata/app/db", json={"custom_metadata": {"owner": "hvac"}})
    meta = kv.read_secret_metadata("app/db")["data"]
    check(meta["max_versions"] == 3 and meta["custom_metadata"] == {"owner": "hvac"} and
          meta["delete_version_after"] == "1h", "update_metadata", meta)
    kv.configure(max_versions=5)
    check(kv.read_configuration()["data"]["max_versions"] == 5, "configure")
    kv.delete_metadata_and_all_versions("app/db")
    raises(hvac.exceptions.InvalidPath, kv.read_secret_metadata, "app/db")


def sec_kv1():
    c = client()
    c.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    kv = c.secrets.kv.v1
    kv.create_or_update_secret("team/app", {"foo": "bar", "ttl": "1h"}, mount_point="kv1")
    r = kv.read_secret("team/app", mount_point="kv1")
    check(r["data"] == {"foo": "bar", "ttl": "1h"} and r["lease_duration"] == 3600, "read", r)
    check(kv.list_secrets("team", mount_point="kv1")["data"]["keys"] == ["app"], "list")
    kv.delete_secret("team/app", mount_point="kv1")
    raises(hvac.exceptions.InvalidPath, kv.read_secret, "team/app", mount_point="kv1")


def sec_approle():
    c = client()
    c.sys.create_or_update_policy("hvac-app", 'path "secret/data/app/*" { capabilities = ["read"] }')
    ar = c.auth.approle
    ar.create_or_update_approle("hvac-role", token_policies=["hvac-app"], token_ttl="1h",
                                token_max_ttl="4h", secret_id_ttl="10m")
    role = ar.read_role("hvac-role")["data"]
    check(role["token_ttl"] == 3600 and role["token_policies"] == ["hvac-app"], "read_role", role)
    check("hvac-role" in ar.list_roles()["data"]["keys"], "list_roles")
    role_id = ar.read_role_id("hvac-role")["data"]["role_id"]
    sid = ar.generate_secret_id("hvac-role", metadata={"host": "a"})["data"]
    check(sid["secret_id_ttl"] == 600 and sid["secret_id_accessor"], "generate_secret_id", sid)
    check(sid["secret_id_accessor"] in ar.list_secret_id_accessors("hvac-role")["data"]["keys"],
          "list_secret_id_accessors")
    u = client(None)
    login = u.auth.approle.login(role_id, sid["secret_id"])
    check(login["auth"]["policies"] == ["default", "hvac-app"] and login["auth"]["lease_duration"] == 3600,
          "login", login["auth"])
    check(u.is_authenticated() and u.token == login["auth"]["client_token"], "hvac took the token")
    check(u.auth.token.lookup_self()["data"]["path"] == "auth/approle/login", "token path")
    e = raises(hvac.exceptions.InvalidRequest, client(None).auth.approle.login, role_id, "nope")
    check("invalid role or secret ID" in str(e), "bad secret ID", str(e))
    # the real credentials with a NUL byte and more after them are other credentials
    raises(hvac.exceptions.InvalidRequest, client(None).auth.approle.login,
           role_id + "\x00x", sid["secret_id"] + "\x00x")
    ar.update_role_id("hvac-role", "custom-role-id")
    check(ar.read_role_id("hvac-role")["data"]["role_id"] == "custom-role-id", "update_role_id")
    ar.delete_role("hvac-role")
    raises(hvac.exceptions.InvalidPath, ar.read_role, "hvac-role")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def service_account_jwt(key, namespace, name, exp_delta=600):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "hvac"}
    claims = {"aud": ["vault"], "exp": now + exp_delta, "iat": now, "nbf": now - 5,
              "iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:%s:%s" % (namespace, name),
              "kubernetes.io": {"namespace": namespace,
                                "serviceaccount": {"name": name, "uid": "7d3c-hvac"}}}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64url(sig)


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "service-account-signer")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sec_kubernetes():
    c = client()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # hvac 0.11 takes only certificates in pem_keys (Vault takes keys or certificates)
    pem = self_signed(key)
    k8s = c.auth.kubernetes
    k8s.configure("https://127.0.0.1:6443", pem_keys=[pem])
    cfg = k8s.read_config()  # hvac hands back the data
    check(cfg["kubernetes_host"] == "https://127.0.0.1:6443" and cfg["pem_keys"] == [pem], "read_config", cfg)
    k8s.create_role("hvac-k8s", bound_service_account_names=["app"],
                    bound_service_account_namespaces=["default"], policies=["default"], ttl="1h")
    role = k8s.read_role("hvac-k8s")
    check(role["bound_service_account_names"] == ["app"], "read_role", role)
    check("hvac-k8s" in k8s.list_roles()["keys"], "list_roles")
    u = client(None)
    login = u.auth.kubernetes.login("hvac-k8s", service_account_jwt(key, "default", "app"))
    meta = login["auth"]["metadata"]
    check(meta["service_account_name"] == "app" and meta["service_account_namespace"] == "default" and
          meta["role"] == "hvac-k8s", "login metadata", meta)
    check(login["auth"]["lease_duration"] == 3600 and u.is_authenticated(), "login", login["auth"])
    raises(hvac.exceptions.Forbidden, client(None).auth.kubernetes.login, "hvac-k8s",
           service_account_jwt(other, "default", "app"))
    raises(hvac.exceptions.Forbidden, client(None).auth.kubernetes.login, "hvac-k8s",
           service_account_jwt(key, "default", "app", exp_delta=-60))
    raises(hvac.exceptions.Forbidden, client(None).auth.kubernetes.login, "hvac-k8s",
           service_account_jwt(key, "kube-system", "app"))
    raises(hvac.exceptions.InvalidRequest, client(None).auth.kubernetes.login, "nope",
           service_account_jwt(key, "default", "app"))
    k8s.delete_role("hvac-k8s")
    raises(hvac.exceptions.InvalidPath, k8s.read_role, "hvac-k8s")


def sec_database():
    c = client()
    db = c.secrets.database
    # No connection_url: the dev server only mints names (docs/dev-server.md).
    db.configure("pg", "postgresql-database-plugin", allowed_roles=["app"], username="vault",
                 password="db-admin-pw-hvac")
    conn = db.read_connection("pg")["data"]
    details = conn["connection_details"]
    check(conn["plugin_name"] == "postgresql-database-plugin" and conn["allowed_roles"] == ["app"] and
          conn["verify_connection"] is True and conn["plugin_version"] == "" and
          conn["root_credentials_rotate_statements"] == [] and conn["password_policy"] == "",
          "read_connection as Vault shapes it", sorted(conn))
    check(details == {"username": "vault"}, "read_connection hides the password",
          "password shown" if "db-admin-pw-hvac" in repr(conn) else sorted(details))
    check("pg" in db.list_connections()["data"]["keys"], "list_connections")
    # A password inside connection_url reads back redacted, as Vault's url.Redacted does.
    resp = db.configure("inline", "postgresql-database-plugin", verify_connection=False,
                        connection_url="postgresql://vault:Inline-hvac-pw-9@db.example:5432/app")
    # hvac hands back the body of a 200: here Vault's warning, and no data.
    check(isinstance(resp, dict) and resp["data"] is None and
          resp["warnings"][0].startswith("Password found in connection_url"),
          "configure warns of a password in connection_url", resp)
    conn = db.read_connection("inline")["data"]
    url = conn["connection_details"]["connection_url"]
    check(url == "postgresql://vault:xxxxx@db.example:5432/app" and "connection_url" not in conn,
          "read_connection redacts the password in connection_url",
          "unredacted" if "Inline-hvac-pw-9" in repr(conn) else url)
    db.delete_connection("inline")
    raises(hvac.exceptions.InvalidPath, db.read_connection, "inline")
    check(db.list_connections()["data"]["keys"] == ["pg"], "list_connections after delete")
    # A statement given as a string reads back as a list of one, commas and all.
    db.create_role("app", "pg", creation_statements="CREATE ROLE \"{{name}}\"; GRANT SELECT, INSERT ON t TO \"{{name}}\";",
                   default_ttl="1h", max_ttl="24h")
    role = db.read_role("app")["data"]
    check(role == {"db_name": "pg", "default_ttl": 3600, "max_ttl": 86400, "credential_type": "password",
                   "creation_statements": ["CREATE ROLE \"{{name}}\"; GRANT SELECT, INSERT ON t TO \"{{name}}\";"],
                   "revocation_statements": [], "rollback_statements": [], "renew_statements": []},
          "read_role", role)
    check(db.list_roles()["data"]["keys"] == ["app"], "list_roles")
    creds = db.generate_credentials("app")
    check(creds["lease_id"].startswith("database/creds/app/") and creds["renewable"] is True and
          creds["lease_duration"] == 3600, "generate_credentials", creds)
    check(creds["data"]["username"].startswith("v-token-app-") and len(creds["data"]["password"]) >= 20,
          "credentials", creds["data"])
    e = raises(hvac.exceptions.InvalidRequest, db.create_role, "nodb", "", [])
    check("empty database name attribute" in str(e), "role without db_name", str(e))
    db.delete_role("app")
    raises(hvac.exceptions.InvalidPath, db.read_role, "app")
    db.delete_connection("pg")


def sec_leases():
    c = client()
    c.secrets.database.create_role("lease", "pg", [], default_ttl="10m", max_ttl="1h")
    creds = c.secrets.database.generate_credentials("lease")
    lease = creds["lease_id"]
    look = c.sys.read_lease(lease)["data"]
    check(look["id"] == lease and look["renewable"] is True and 0 < look["ttl"] <= 600, "read_lease", look)
    listed = c.sys.list_leases("database/creds/lease")["data"]["keys"]
    check(listed == [lease.rsplit("/", 1)[1]], "list_leases", listed)
    check(c.sys.list_leases("database/creds")["data"]["keys"] == ["lease/"], "list_leases one level up")
    renewed = c.sys.renew_lease(lease, increment=120)
    check(renewed["lease_id"] == lease and renewed["lease_duration"] == 120, "renew_lease", renewed)
    c.sys.revoke_lease(lease)
    raises(hvac.exceptions.InvalidRequest, c.sys.read_lease, lease)
    second = c.secrets.database.generate_credentials("lease")["lease_id"]
    c.sys.revoke_prefix("database/creds/lease")
    raises(hvac.exceptions.InvalidRequest, c.sys.renew_lease, second)
    # a token's leases go with it
    tok = c.auth.token.create(policies=["root"], ttl="10m")["auth"]["client_token"]
    mine = client(tok).secrets.database.generate_credentials("lease")["lease_id"]
    c.auth.token.revoke(tok)
    raises(hvac.exceptions.InvalidRequest, c.sys.read_lease, mine)


def sec_list():
    c = client()
    c.secrets.kv.v2.create_or_update_secret("dir/a", {"k": "v"})
    c.secrets.kv.v2.create_or_update_secret("dir/sub/b", {"k": "v"})
    for value in ("1", "t", "T", "TRUE", "true", "True"):
        resp = raw("GET", "secret/metadata/dir?list=" + value)
        check(resp.status_code == 200 and resp.json()["data"]["keys"] == ["a", "sub/"],
              "?list=" + value, resp.text)
    for value in ("0", "false"):
        resp = raw("GET", "secret/metadata/dir/a?list=" + value)
        check(resp.status_code == 200 and resp.json()["data"]["current_version"] == 1,
              "?list=%s is a read" % value, resp.text)
    resp = raw("GET", "secret/metadata/dir?list=yes")
    check(resp.status_code == 400 and resp.json() == {"errors": []}, "?list=yes", resp.text)
    resp = raw("LIST", "secret/metadata/dir")
    check(resp.status_code == 200 and resp.json()["data"]["keys"] == ["a", "sub/"], "LIST verb", resp.text)
    # what hvac sends for its own lists
    check(c.secrets.kv.v2.list_secrets("dir/sub")["data"]["keys"] == ["b"], "hvac list")
    resp = raw("GET", "secret/metadata/nothing?list=1")
    check(resp.status_code == 404, "empty list", resp.status_code)


SECTIONS = {
    "sys": sec_sys, "policies": sec_policies, "token": sec_token, "kv2": sec_kv2, "kv1": sec_kv1,
    "approle": sec_approle, "kubernetes": sec_kubernetes, "database": sec_database,
    "leases": sec_leases, "list": sec_list,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in SECTIONS:
        print("usage: hvac_dev.py {%s}" % "|".join(SECTIONS), file=sys.stderr)
        return 2
    try:
        SECTIONS[argv[1]]()
    except CheckFailed as e:
        print("FAILED %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    print("ok " + argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
