#!/usr/bin/python3
"""The official Kubernetes Python client (Debian python3-kubernetes) against the test
API server: CoreV1Api create/read/replace (409 on a stale resourceVersion), list with a
label selector and pagination, watch with a 410 relist (an ERROR event after compaction,
and a plain HTTP 410), CustomObjectsApi on a CRD with its /status, Leases (MicroTime),
and the TokenRequest API (the JWT checked with python3-cryptography).

usage: kube_client.py KUBECONFIG DIR   (DIR: the fake's --dir, for token, ca.crt, sa.pub)
Exit 0 when every check passed; each check prints "ok: <name>".
"""
import base64
import datetime
import json
import os
import ssl
import sys
import threading
import time
import urllib.request

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

DEADLINE = 30.0
NS = "pyclient"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def ok(name):
    print("ok: " + name, flush=True)


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        check(e.status == code, "expected %d, got %d: %s" % (code, e.status, e.body))
        return json.loads(e.body) if e.body else {}
    raise AssertionError("expected HTTP %d, the call succeeded" % code)


class Admin:
    """The fake's /fake/ endpoints, with urllib (no client code involved)."""

    def __init__(self, server, cadir):
        self.server = server
        with open(os.path.join(cadir, "token")) as f:
            self.token = f.read().strip()
        self.ctx = ssl.create_default_context(cafile=os.path.join(cadir, "ca.crt"))

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.ctx, timeout=DEADLINE) as r:
            return json.loads(r.read() or b"{}")


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def wait_until(what, cond):
    end = time.time() + DEADLINE
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def core(v1):
    ns = client.V1Namespace(metadata=client.V1ObjectMeta(name=NS))
    v1.create_namespace(ns)
    sec = client.V1Secret(metadata=client.V1ObjectMeta(name="db", labels={"app": "py"}),
                          string_data={"password": "p@ss w0rd"}, type="Opaque")
    created = v1.create_namespaced_secret(NS, sec)
    check(created.metadata.uid and created.metadata.resource_version, "uid and resourceVersion set")
    check(created.string_data is None, "stringData is never returned")
    check(base64.b64decode(created.data["password"]) == b"p@ss w0rd", "stringData merged into data")
    expect_status(409, v1.create_namespaced_secret, NS, sec)
    ok("create; 409 AlreadyExists on a second create")

    got = v1.read_namespaced_secret("db", NS)
    check(got.metadata.resource_version == created.metadata.resource_version, "read what was created")
    got.data["user"] = base64.b64encode(b"app").decode()
    replaced = v1.replace_namespaced_secret("db", NS, got)
    check(replaced.metadata.resource_version != got.metadata.resource_version, "a new resourceVersion")
    stale = got
    stale.data["user"] = base64.b64encode(b"other").decode()
    body = expect_status(409, v1.replace_namespaced_secret, "db", NS, stale)
    check(body.get("reason") == "Conflict" and body.get("kind") == "Status", "a Conflict Status: %r" % body)
    check("the object has been modified" in body.get("message", ""), "the optimistic-lock message")
    again = v1.replace_namespaced_secret("db", NS, replaced)
    check(again.metadata.resource_version == replaced.metadata.resource_version,
          "an unchanged replace writes nothing (same resourceVersion)")
    body = expect_status(404, v1.read_namespaced_secret, "nope", NS)
    check(body["details"]["kind"] == "secrets" and body["details"]["name"] == "nope", "NotFound details")
    ok("read, replace, 409 Conflict on a stale resourceVersion, 404 NotFound")

    for i in range(7):
        v1.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="cm-%d" % i, labels={"set": "a" if i % 2 else "b", "n": str(i)}),
            data={"i": str(i)}))
    names, token, pages, rv = [], None, 0, None
    while True:
        kw = {"label_selector": "set=a", "limit": 2}
        if token:
            kw["_continue"] = token
        page = v1.list_namespaced_config_map(NS, **kw)
        pages += 1
        if rv is None:
            rv = page.metadata.resource_version
        check(page.metadata.resource_version == rv, "every page has the list's resourceVersion")
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    check(names == ["cm-1", "cm-3", "cm-5"], "paged label-selected list: %r" % names)
    check(pages == 2, "two pages of at most two: %d" % pages)
    sel = v1.list_namespaced_config_map(NS, label_selector="set in (b),n notin (0,2),!missing")
    check([c.metadata.name for c in sel.items] == ["cm-4", "cm-6"], "in/notin/!exists")
    allns = v1.list_config_map_for_all_namespaces(field_selector="metadata.name=cm-1")
    check([c.metadata.namespace for c in allns.items] == [NS], "all namespaces with a field selector")
    ok("list with label selectors and pagination (_continue)")
    return rv


def watches(v1, admin):
    start = v1.list_namespaced_config_map(NS).metadata.resource_version
    seen = []

    def watcher():
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_config_map, NS, resource_version=start, timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "late":
                w.stop()

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.3)
    v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="late")))
    t.join(DEADLINE)
    check(("ADDED", "late") in seen, "the watch saw the create: %r" % seen)
    ok("watch from a resourceVersion")

    old = start
    v1.patch_namespaced_config_map("cm-1", NS, {"data": {"i": "changed"}})
    admin.call("POST", "/fake/faults", {"compact": True})
    w = watch.Watch()
    try:
        for _ in w.stream(v1.list_namespaced_config_map, NS, resource_version=old, timeout_seconds=5):
            raise AssertionError("an event from a compacted resourceVersion")
        raise AssertionError("no 410 from a compacted resourceVersion")
    except ApiException as e:
        check(e.status == 410, "410 from the ERROR event, got %d" % e.status)
    fresh = v1.list_namespaced_config_map(NS)
    got = []
    w = watch.Watch()

    def relisted():
        for ev in w.stream(v1.list_namespaced_config_map, NS,
                           resource_version=fresh.metadata.resource_version, timeout_seconds=20):
            got.append(ev["object"].metadata.name)
            w.stop()

    t = threading.Thread(target=relisted)
    t.start()
    time.sleep(0.3)
    v1.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after-relist")))
    t.join(DEADLINE)
    check(got == ["after-relist"], "the watch after the relist: %r" % got)
    ok("watch: an ERROR event with 410 after compaction, relist, watch again")

    admin.call("POST", "/fake/faults", {"watch_gone": 1})
    try:
        for _ in watch.Watch().stream(v1.list_namespaced_config_map, NS,
                                      resource_version=fresh.metadata.resource_version, timeout_seconds=5):
            raise AssertionError("an event despite the injected HTTP 410")
        raise AssertionError("no HTTP 410")
    except ApiException as e:
        check(e.status == 410, "HTTP 410, got %d" % e.status)
    ok("watch: a plain HTTP 410")


def custom(api_ext, co):
    crd_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes", "testdata", "crds",
                            "widgets.yaml")
    import yaml
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    api_ext.create_custom_resource_definition(crd)
    wait_until("the CRD to be Established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in (api_ext.read_custom_resource_definition("widgets.fake.latchkey.io").status.conditions or [])))
    g, v, p = "fake.latchkey.io", "v1", "widgets"
    w = {"apiVersion": "fake.latchkey.io/v1", "kind": "Widget", "metadata": {"name": "pw"},
         "spec": {"size": 2, "color": "green", "status_ignored": None}, "status": {"observedGeneration": 99}}
    del w["spec"]["status_ignored"]
    made = co.create_namespaced_custom_object(g, v, NS, p, w)
    check(made["metadata"]["generation"] == 1, "generation 1")
    check("status" not in made or made["status"].get("observedGeneration") != 99,
          "status is not written through the main resource")
    bad = dict(w, metadata={"name": "bad"}, spec={"color": "green"})
    body = expect_status(422, co.create_namespaced_custom_object, g, v, NS, p, bad)
    check(body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "spec.size",
          "required spec.size named: %r" % body)
    lst = co.list_namespaced_custom_object(g, v, NS, p)
    check([i["metadata"]["name"] for i in lst["items"]] == ["pw"], "list the custom objects")
    patched = co.patch_namespaced_custom_object(g, v, NS, p, "pw", {"spec": {"size": 4}})
    check(patched["spec"]["size"] == 4 and patched["metadata"]["generation"] == 2, "a spec change bumps generation")
    st = co.patch_namespaced_custom_object_status(g, v, NS, p, "pw", {
        "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {"size": 100}})
    check(st["status"]["observedGeneration"] == 2, "status written through /status")
    check(st["spec"]["size"] == 4, "/status ignores the spec")
    check(st["metadata"]["generation"] == 2, "a status change does not bump generation")
    got = co.get_namespaced_custom_object_status(g, v, NS, p, "pw")
    check(got["status"]["conditions"][0]["type"] == "Ready", "read through /status")
    co.delete_namespaced_custom_object(g, v, NS, p, "pw")
    expect_status(404, co.get_namespaced_custom_object, g, v, NS, p, "pw")
    ok("CustomObjectsApi on a CRD, patch_namespaced_custom_object_status")


def leases(coord, api):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=123456)
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(
        holder_identity="py_1", lease_duration_seconds=15, acquire_time=now, renew_time=now, lease_transitions=0))
    made = coord.create_namespaced_lease(NS, lease)
    check(made.spec.renew_time == now, "MicroTime round trip: %r" % made.spec.renew_time)
    made.spec.renew_time = now + datetime.timedelta(seconds=2)
    renewed = coord.replace_namespaced_lease("leader", NS, made)
    check(renewed.spec.renew_time == now + datetime.timedelta(seconds=2), "renewed")
    expect_status(409, coord.replace_namespaced_lease, "leader", NS, made)
    raw = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "badtime"},
           "spec": {"holderIdentity": "x", "renewTime": "2026-12-01T07:10:31Z"}}
    try:
        api.call_api("/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS, "POST", body=raw,
                     header_params={"Content-Type": "application/json", "Accept": "application/json"},
                     auth_settings=["BearerToken"], response_type="object")
        raise AssertionError("a MicroTime without six fractional digits was accepted")
    except ApiException as e:
        check(e.status == 400, "400 for a bad MicroTime, got %d" % e.status)
    ok("Lease create/replace with MicroTime; 409 on a stale renew; 400 on a bad MicroTime")


def tokens(v1, cadir):
    v1.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="bot")))
    tr = v1.create_namespaced_service_account_token("bot", NS, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=600)))
    jwt = tr.status.token
    head, claims, sig = jwt.split(".")
    h = json.loads(b64url(head))
    c = json.loads(b64url(claims))
    check(h["alg"] == "RS256" and h.get("kid"), "an RS256 header with a kid")
    check(c["aud"] == ["vault"], "aud from the request")
    check(c["sub"] == "system:serviceaccount:%s:bot" % NS, "sub")
    check(c["kubernetes.io"]["namespace"] == NS and c["kubernetes.io"]["serviceaccount"]["name"] == "bot", "claims")
    check(590 <= c["exp"] - c["iat"] <= 610 and c["iss"], "exp and iss")
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
        with open(os.path.join(cadir, "sa.pub"), "rb") as f:
            pub = serialization.load_pem_public_key(f.read())
        pub.verify(b64url(sig), (head + "." + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
        verified = "the signature verifies with sa.pub"
    except ImportError:
        verified = "python3-cryptography missing: the signature was not checked"
    expect_status(422, v1.create_namespaced_service_account_token, "bot", NS,
                  client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
                      audiences=["vault"], expiration_seconds=60)))
    expect_status(404, v1.create_namespaced_service_account_token, "nobody", NS,
                  client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=["vault"])))
    ok("TokenRequest: RS256 JWT with the projected claims; " + verified)


def main():
    kubeconfig, cadir = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    admin = Admin(api.configuration.host, cadir)
    v1 = client.CoreV1Api(api)
    core(v1)
    watches(v1, admin)
    custom(client.ApiextensionsV1Api(api), client.CustomObjectsApi(api))
    leases(client.CoordinationV1Api(api), api)
    tokens(v1, cadir)
    v1.delete_namespace(NS)
    wait_until("the namespace to go", lambda: not [n for n in v1.list_namespace().items if n.metadata.name == NS])
    ok("delete the namespace")
    print("ok: every Python client check passed")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, ApiException) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
