#!/usr/bin/python3
"""check_manifests.py — what `kubectl kustomize` renders from deploy/, checked against the
rules of the deploy and against the code that will run with it.

  /usr/bin/python3 tests/deploy/check_manifests.py SRCDIR KUBECTL [LATCHKEY]

Renders deploy/overlays/dev, deploy/overlays/production, production with
deploy/components/compat-external-secrets, deploy/base, deploy/broker, deploy/monitoring and
deploy/crds with KUBECTL kustomize, and checks:
  (a) every document parses and names the API version expected of its kind (no beta or
      removed versions); every kind is one this deploy means to ship;
  (b) every container and native sidecar has cpu and memory requests and limits (requests
      not above limits), readiness and liveness probes, runAsNonRoot, a read-only root
      filesystem, no privilege escalation, all capabilities dropped and none added,
      seccompProfile RuntimeDefault; every image has an explicit tag that is not `latest`;
  (c) RBAC: the verbs and resources granted to the controller's service account are exactly
      those of the Kubernetes calls in sync/ and k8s/leader.c (read from the sources: each
      lk_k8s_* call site and informer), cluster-wide and in the controller's namespace;
      Leases only in the controller's namespace; no wildcard, no escalate, bind or
      impersonate; the compat-external-secrets component moves the ExternalSecret and store
      rules to external-secrets.io, compat-sealed-secrets adds bitnami.com's SealedSecrets,
      and neither changes anything else;
  (d) the controller's Deployment: replicas (2 in production, 1 in dev), leader election,
      POD_NAMESPACE and POD_NAME from the downward API, probes on /readyz and /healthz at
      the --metrics port, flags that `latchkey sync` has; its Service, PodDisruptionBudget,
      NetworkPolicy and ServiceMonitor select its pods and name its port;
  (e) the monitoring: the ServiceMonitor and PodMonitor select the controller's Service and
      the app's pods and name their ports, prometheus-scrape.yaml's relabelling keeps those
      pods and ports (Debian's promtool cannot load kubernetes_sd_configs);
      the example application: the broker a native sidecar (init container with
      restartPolicy Always and a startupProbe), the socket on an emptyDir both containers
      mount at the path broker.json names, the app's readiness asking the broker's
      /v1/ready, the PodMonitor selecting the pod and its metrics port; with LATCHKEY,
      `latchkey broker --check-config` accepts the rendered broker.json;
  (f) broken copies of the rendered documents are refused, so that the checks can fail.
With --audit FILE (the test API server's audit log of a run of the controller as its
service account, tests/integration/check_deploy.c) it checks instead that no request of
that service account was refused, and that every rule production grants it was used:
each tuple at least once, and each of its own namespace's there.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ARGS = [a for a in sys.argv[1:]]
AUDIT = None
if "--audit" in ARGS:
    i = ARGS.index("--audit")
    AUDIT = ARGS[i + 1]
    del ARGS[i:i + 2]
SRC = os.path.abspath(ARGS[0])
KUBECTL = ARGS[1]
LATCHKEY = ARGS[2] if len(ARGS) > 2 else None

failures = []
counts = {"renders": 0, "documents": 0, "containers": 0, "rbac tuples": 0, "call sites": 0,
          "rejections": 0}

API = {
    "Namespace": "v1", "ServiceAccount": "v1", "Service": "v1", "ConfigMap": "v1",
    "Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1", "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}

SA = ("latchkey-system", "latchkey-sync")
CONTROLLER_NS = "latchkey-system"

def fail(where, msg):
    failures.append(f"{where}: {msg}")


def render(path):
    r = subprocess.run([KUBECTL, "kustomize", path], capture_output=True, text=True)
    if r.returncode != 0:
        fail(os.path.relpath(path, SRC) if path.startswith(SRC) else path,
             f"kubectl kustomize failed: {r.stderr.strip()[:500]}")
        return []
    counts["renders"] += 1
    try:
        return [d for d in yaml.safe_load_all(r.stdout) if d]
    except yaml.YAMLError as e:
        fail(path, f"rendered YAML does not parse: {e}")
        return []


# ---------------------------------------------------------------------------- (a), (b)

def check_api(docs, where):
    bad = []
    for d in docs:
        kind, api = d.get("kind"), d.get("apiVersion")
        if kind not in API:
            bad.append(f"{where}: kind {kind} is not one this deploy ships")
        elif api != API[kind]:
            bad.append(f"{where}: {kind} {d['metadata'].get('name')}: apiVersion {api}, "
                       f"expected {API[kind]}")
    return bad


def pod_specs(docs):
    for d in docs:
        if d.get("kind") == "Deployment":
            yield d, d["spec"]["template"]["spec"]


def quantity(q):
    """A Kubernetes quantity in base units (cores or bytes)."""
    m = re.match(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$", str(q))
    if not m:
        return None
    mult = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
            "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]
    return float(m.group(1)) * mult


def image_ok(image):
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (it would be :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return "is tagged latest"
    return None


def check_containers(docs, where, quiet=False):
    bad = []
    for d, spec in pod_specs(docs):
        name = d["metadata"]["name"]
        psc = spec.get("securityContext", {})
        conts = [(c, False) for c in spec.get("containers", [])]
        conts += [(c, c.get("restartPolicy") == "Always") for c in spec.get("initContainers", [])]
        for c, sidecar in conts:
            if not quiet:
                counts["containers"] += 1
            w = f"{where}: Deployment {name} container {c.get('name')}"
            is_init = c in spec.get("initContainers", []) and not sidecar
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        bad.append(f"{w}: no {r} {part[:-1]}")
            for r in ("cpu", "memory"):
                rq, lm = res.get("requests", {}).get(r), res.get("limits", {}).get(r)
                if rq is not None and lm is not None and quantity(rq) is not None and \
                   quantity(lm) is not None and quantity(rq) > quantity(lm):
                    bad.append(f"{w}: {r} request {rq} above its limit {lm}")
            if not is_init:
                for p in ("readinessProbe", "livenessProbe"):
                    if p not in c:
                        bad.append(f"{w}: no {p}")
            sc = c.get("securityContext", {})

            def eff(k):
                return sc.get(k, psc.get(k))
            if eff("runAsNonRoot") is not True:
                bad.append(f"{w}: runAsNonRoot is not true")
            if eff("runAsUser") == 0:
                bad.append(f"{w}: runAsUser 0")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad.append(f"{w}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad.append(f"{w}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                bad.append(f"{w}: privileged")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []):
                bad.append(f"{w}: capabilities are not all dropped")
            if caps.get("add"):
                bad.append(f"{w}: adds capabilities {caps['add']}")
            if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
                bad.append(f"{w}: seccompProfile is not RuntimeDefault")
            why = image_ok(c.get("image", ""))
            if why:
                bad.append(f"{w}: image {c.get('image')!r} {why}")
    return bad


# ---------------------------------------------------------------------------- (c) RBAC

def balanced_args(text, start):
    """The top-level arguments of the call whose '(' is at text[start]."""
    depth, i, args, cur = 0, start, [], ""
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                return args
        elif ch == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
            i += 1
            continue
        elif ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur += text[i:j + 1]
            i = j + 1
            continue
        if depth >= 1:
            cur += ch
        i += 1
    return args


# What each resource expression of a call site names. "@" is the group of the
# ExternalSecret kinds (latchkey.io, or external-secrets.io with --compat
# external-secrets), "@sealed" the SealedSecret groups (latchkey.io, and bitnami.com with
# --compat sealed-secrets). `res` in status.c is the resource its callers pass:
# ExternalSecrets (sync/externalsecret.c), the two store kinds (sync/stores.c) and the
# SealedSecret kinds (sync/sealedsecret.c).
RESOURCES = {
    "&lk_k8s_secrets": [("", "secrets")],
    "&lk_k8s_configmaps": [("", "configmaps")],
    "&lk_k8s_namespaces": [("", "namespaces")],
    "&lk_k8s_serviceaccounts": [("", "serviceaccounts")],
    "&lk_k8s_leases": [("coordination.k8s.io", "leases")],
    "&lk_k8s_events": [("", "events")],
    "&ctx->kinds.es": [("@", "externalsecrets")],
    "&ctx->kinds.ss": [("@", "secretstores")],
    "&ctx->kinds.css": [("@", "clustersecretstores")],
    "&ctx->kinds.sealed[k]": [("@sealed", "sealedsecrets")],
    "res": [("@", "externalsecrets"), ("@", "secretstores"), ("@", "clustersecretstores"),
            ("@sealed", "sealedsecrets")],
}
# The calls made in the controller's own namespace: those of the functions named here (the
# hash key), k8s/leader.c's (the Lease), and Events, which lk_k8s_event puts there for an
# object without a namespace (a ClusterSecretStore).
OWN_NAMESPACE_FUNCS = {"load_hash_key", "start_keys", "make_key"}
VERBS = {"get": "get", "create": "create", "create_sub": "create", "replace": "update",
         "patch": "patch", "delete": "delete", "list": "list"}
CALL = re.compile(r"\blk_k8s_(get|create_sub|create|replace|patch|delete|list|event|"
                  r"informer_start|served)\s*\(")


def code_calls(src, group, sealed_groups=("latchkey.io",)):
    """({(group, resource[/sub], verb): [where]}, the same for the calls made in the
    controller's own namespace) from the sources; unknown call sites fail."""
    out, out_own = {}, {}
    files = sorted(glob.glob(os.path.join(src, "sync", "*.c"))) + [os.path.join(src, "k8s", "leader.c")]
    for path in files:
        text = open(path).read()
        rel = os.path.relpath(path, src)
        informers = {}
        for m in re.finditer(r"struct lk_k8s_informer_config (\w+) = \{(.*?)\};", text, re.S):
            r = re.search(r"\.resource\s*=\s*([^,}]+)", m.group(2))
            informers["&" + m.group(1)] = r.group(1).strip() if r else None
        for m in CALL.finditer(text):
            fn = m.group(1)
            defs = list(re.finditer(r"^([a-z_][a-z0-9_]*)\(", text[:m.start()], re.M))
            func = defs[-1].group(1) if defs else ""
            args = balanced_args(text, m.end() - 1)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{rel}:{line}"
            counts["call sites"] += 1
            if fn == "served":
                continue  # discovery: a non-resource URL every authenticated user may read
            if fn == "event":
                tuples = [("", "events", "create")]
            elif fn == "informer_start":
                res = informers.get(args[1]) if len(args) > 1 else None
                if res not in RESOURCES:
                    fail(where, f"informer {args[1:2]} of unknown resource {res!r}")
                    continue
                tuples = [(g, r, v) for g, r in RESOURCES[res] for v in ("list", "watch")]
            else:
                if len(args) < 2 or args[1] not in RESOURCES:
                    fail(where, f"lk_k8s_{fn} of {args[1:2]}: add its resource to RESOURCES "
                         "in check_manifests.py (and the RBAC it needs to deploy/base/rbac.yaml)")
                    continue
                # lk_k8s_create_sub, _patch and _replace take the subresource fifth.
                sub = None
                if fn in ("create_sub", "patch", "replace") and len(args) > 4 and \
                   args[4].startswith('"'):
                    sub = args[4].strip('"')
                tuples = [(g, r + (f"/{sub}" if sub else ""), VERBS[fn]) for g, r in RESOURCES[args[1]]]
            for g0, r, v in tuples:
                for g in ([group] if g0 == "@" else list(sealed_groups) if g0 == "@sealed" else [g0]):
                    out.setdefault((g, r, v), []).append(where)
                    if rel == os.path.join("k8s", "leader.c") or func in OWN_NAMESPACE_FUNCS or \
                       fn == "event":
                        out_own.setdefault((g, r, v), []).append(where)
    return out, out_own


def rbac_grants(docs, where):
    """({tuple: scopes}, bad): what the bindings give SA, scope "cluster" or a namespace."""
    bad = []
    roles = {}
    for d in docs:
        if d.get("kind") in ("ClusterRole", "Role"):
            roles[(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])] = d
    grants = {}
    for d in docs:
        if d.get("kind") not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subj = [(s.get("namespace"), s.get("name")) for s in d.get("subjects", [])
                if s.get("kind") == "ServiceAccount"]
        if SA not in subj:
            continue
        ref = d["roleRef"]
        ns = d["metadata"].get("namespace")
        key = (ref["kind"], None if ref["kind"] == "ClusterRole" else ns, ref["name"])
        role = roles.get(key)
        if role is None:
            bad.append(f"{where}: {d['kind']} {d['metadata']['name']} names a missing {ref['kind']} {ref['name']}")
            continue
        scope = "cluster" if d["kind"] == "ClusterRoleBinding" else ns
        for rule in role.get("rules", []):
            for k in ("apiGroups", "resources", "verbs"):
                if "*" in rule.get(k, []):
                    bad.append(f"{where}: {role['kind']} {role['metadata']['name']}: wildcard in {k}")
            for v in rule.get("verbs", []):
                if v in ("escalate", "bind", "impersonate"):
                    bad.append(f"{where}: {role['kind']} {role['metadata']['name']}: verb {v}")
            if rule.get("nonResourceURLs"):
                bad.append(f"{where}: {role['kind']} {role['metadata']['name']}: nonResourceURLs")
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    for v in rule.get("verbs", []):
                        grants.setdefault((g, r, v), set()).add(scope)
    return grants, bad


def check_rbac(docs, required, where, quiet=False):
    required, own = required
    grants, bad = rbac_grants(docs, where)
    if not quiet:
        counts["rbac tuples"] += len(grants)
    for t, sites in sorted(required.items()):
        if t not in grants:
            bad.append(f"{where}: {t} is used ({sites[0]}) but not granted")
    for t, sites in sorted(own.items()):
        if t in grants and not grants[t] & {"cluster", CONTROLLER_NS}:
            bad.append(f"{where}: {t} is used in {CONTROLLER_NS} ({sites[0]}) but not granted there")
    for t, scopes in sorted(grants.items()):
        if "cluster" in scopes and t not in required:
            bad.append(f"{where}: {t} is granted but nothing in sync/ or k8s/leader.c uses it")
        if scopes - {"cluster"} and t not in own:
            bad.append(f"{where}: {t} is granted in {sorted(scopes - {'cluster'})} but the "
                       "controller makes no such call in its own namespace")
        if scopes - {"cluster", CONTROLLER_NS}:
            bad.append(f"{where}: {t} is granted in {sorted(scopes)}")
    for t, scopes in grants.items():
        if t[1] == "leases" and scopes != {CONTROLLER_NS}:
            bad.append(f"{where}: Leases granted in {sorted(scopes)}, not only in {CONTROLLER_NS}")
    return bad


# ---------------------------------------------------------------------------- (d), (e)

def by_kind(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items()) and bool(selector)


def sync_flags(src):
    text = open(os.path.join(src, "sync", "main.c")).read()
    block = text[text.index("longopts[] = {"):]
    block = block[:block.index("};")]
    return set(re.findall(r'\{ "([a-z-]+)",', block))


def check_controller(docs, where, replicas, flags):
    bad = []
    deps = by_kind(docs, "Deployment", "latchkey-sync")
    if len(deps) != 1:
        return [f"{where}: expected one Deployment latchkey-sync, found {len(deps)}"]
    dep = deps[0]
    spec = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    if dep["spec"].get("replicas") != replicas:
        bad.append(f"{where}: latchkey-sync replicas {dep['spec'].get('replicas')}, expected {replicas}")
    if not selects(dep["spec"]["selector"].get("matchLabels"), labels):
        bad.append(f"{where}: the Deployment's selector does not match its pods")
    if spec.get("serviceAccountName") != SA[1]:
        bad.append(f"{where}: serviceAccountName {spec.get('serviceAccountName')}, expected {SA[1]}")
    c = spec["containers"][0]
    args = c.get("args", [])
    if not args or args[0] != "sync":
        bad.append(f"{where}: the container does not run `latchkey sync` ({args[:1]})")
    port = None
    for a in args[1:]:
        m = re.match(r"^--([a-z-]+)(=(.*))?$", a)
        if not m or m.group(1) not in flags:
            bad.append(f"{where}: argument {a!r} is not a flag of latchkey sync")
            continue
        if m.group(1) == "leader-elect" and m.group(3) not in (None, "true"):
            bad.append(f"{where}: leader election is off")
        if m.group(1) == "metrics":
            port = int(m.group(3).rsplit(":", 1)[1])
    if port is None:
        port = 8080  # the default listener, 0.0.0.0:8080
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("metrics") != port:
        bad.append(f"{where}: container port metrics is {ports.get('metrics')}, --metrics listens on {port}")
    env = {e["name"]: e for e in c.get("env", [])}
    for var, path in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        fp = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if fp != path:
            bad.append(f"{where}: {var} is not the downward API's {path}")
    for var in env:
        if var.startswith("LATCHKEY_SYNC_") and var[14:].lower().replace("_", "-") not in flags:
            bad.append(f"{where}: {var} is not the variable of a flag")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        hg = c.get(probe, {}).get("httpGet", {})
        if hg.get("path") != path or hg.get("port") not in ("metrics", port):
            bad.append(f"{where}: {probe} is not GET {path} on the metrics port")
    for svc in by_kind(docs, "Service", "latchkey-sync"):
        if not selects(svc["spec"].get("selector"), labels):
            bad.append(f"{where}: Service latchkey-sync does not select the controller's pods")
        for p in svc["spec"].get("ports", []):
            if p.get("targetPort") not in ("metrics", port):
                bad.append(f"{where}: Service port {p.get('name')} targets {p.get('targetPort')}")
    if not by_kind(docs, "Service", "latchkey-sync"):
        bad.append(f"{where}: no Service latchkey-sync")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if not pdbs or not all(selects(p["spec"]["selector"].get("matchLabels"), labels) for p in pdbs):
        bad.append(f"{where}: no PodDisruptionBudget selecting the controller's pods")
    nps = by_kind(docs, "NetworkPolicy")
    if not nps:
        bad.append(f"{where}: no NetworkPolicy")
    for np in nps:
        if not selects(np["spec"]["podSelector"].get("matchLabels"), labels):
            bad.append(f"{where}: NetworkPolicy {np['metadata']['name']} does not select the controller")
        inports = [p.get("port") for r in np["spec"].get("ingress", []) for p in r.get("ports", [])]
        if inports != [port]:
            bad.append(f"{where}: NetworkPolicy ingress ports {inports}, expected [{port}]")
        if set(np["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
            bad.append(f"{where}: NetworkPolicy does not restrict both directions")
    ns = by_kind(docs, "Namespace", CONTROLLER_NS)
    if not ns:
        bad.append(f"{where}: no Namespace {CONTROLLER_NS}")
    for d in docs:
        if d["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole",
                             "ClusterRoleBinding") and d["metadata"].get("namespace") != CONTROLLER_NS:
            bad.append(f"{where}: {d['kind']} {d['metadata']['name']} is not in {CONTROLLER_NS}")
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    want = {"externalsecrets.latchkey.io", "secretstores.latchkey.io",
            "clustersecretstores.latchkey.io", "sealedsecrets.latchkey.io"}
    if crds != want:
        bad.append(f"{where}: CRDs {sorted(crds)}, expected {sorted(want)}")
    return bad


def check_app(docs, monitoring, where):
    bad = []
    deps = by_kind(docs, "Deployment", "app")
    cms = by_kind(docs, "ConfigMap")
    if len(deps) != 1 or len(cms) != 1:
        return [f"{where}: expected one Deployment app and one ConfigMap"]
    dep, cm = deps[0], cms[0]
    spec = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    side = [c for c in spec.get("initContainers", []) if c.get("name") == "latchkey"]
    if len(side) != 1:
        return bad + [f"{where}: the broker is not an init container named latchkey"]
    b = side[0]
    if b.get("restartPolicy") != "Always":
        bad.append(f"{where}: the broker init container lacks restartPolicy: Always (a native sidecar)")
    if "startupProbe" not in b:
        bad.append(f"{where}: the broker has no startupProbe: the app would start before the secrets")
    if b.get("args", [])[:1] != ["broker"]:
        bad.append(f"{where}: the sidecar does not run `latchkey broker`")
    cfg = json.loads(cm["data"]["broker.json"])
    sock = cfg.get("listen", {}).get("socket", "/run/latchkey/broker.sock")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    apps = spec.get("containers", [])
    if not apps:
        return bad + [f"{where}: no application container"]

    def mount_for(c, path):
        for m in c.get("volumeMounts", []):
            if path.startswith(m["mountPath"].rstrip("/") + "/"):
                return m["name"]
        return None
    bvol = mount_for(b, sock)
    if bvol is None or "emptyDir" not in vols.get(bvol, {}):
        bad.append(f"{where}: the socket {sock} is not on an emptyDir the broker mounts")
    for a in apps:
        if mount_for(a, sock) != bvol:
            bad.append(f"{where}: container {a['name']} does not mount the socket's volume")
        env = {e["name"]: e.get("value") for e in a.get("env", [])}
        if env.get("LATCHKEY_SOCKET") != sock:
            bad.append(f"{where}: container {a['name']}: LATCHKEY_SOCKET is not {sock}")
        probe = json.dumps(a.get("readinessProbe", {}))
        if sock not in probe or "/v1/ready" not in probe:
            bad.append(f"{where}: container {a['name']}: readiness does not ask the broker's /v1/ready")
    for p in ("startupProbe", "readinessProbe"):
        if sock not in json.dumps(b.get(p, {})):
            bad.append(f"{where}: the broker's {p} does not use its socket")
    mport = cfg.get("listen", {}).get("metrics")
    bports = {p.get("name"): p.get("containerPort") for p in b.get("ports", [])}
    if mport is None or int(mport.rsplit(":", 1)[1]) != bports.get("metrics"):
        bad.append(f"{where}: listen.metrics {mport} is not the container port metrics {bports.get('metrics')}")
    jwt = cfg.get("vault", {}).get("auth", {}).get("jwt_file")
    if jwt and mount_for(b, jwt) is None:
        bad.append(f"{where}: jwt_file {jwt} is on no volume of the broker")
    for pm in by_kind(monitoring, "PodMonitor"):
        if not selects(pm["spec"]["selector"].get("matchLabels"), labels):
            bad.append(f"{where}: PodMonitor {pm['metadata']['name']} does not select the app's pods")
        for ep in pm["spec"].get("podMetricsEndpoints", []):
            if ep.get("port") not in bports:
                bad.append(f"{where}: PodMonitor port {ep.get('port')} is not a broker port")
    if LATCHKEY:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(cm["data"]["broker.json"])
        r = subprocess.run([LATCHKEY, "broker", "--check-config", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if r.returncode != 0:
            bad.append(f"{where}: latchkey broker --check-config refuses broker.json: {r.stderr.strip()}")
    return bad


def scrape_keeps(job, labels, ports):
    """Whether a kubernetes_sd pod job's keep rules admit a pod with these labels and one of
    these container port names (the meta labels Prometheus derives, names sanitised)."""
    meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v
            for k, v in labels.items()}
    for port in ports:
        m = dict(meta, __meta_kubernetes_pod_container_port_name=port)
        if all(re.fullmatch(r.get("regex", "(.*)"), r.get("separator", ";").join(
                m.get(s, "") for s in r["source_labels"]))
               for r in job.get("relabel_configs", []) if r.get("action") == "keep"):
            return True
    return False


def check_scrape_config(path, controller, app, where):
    """prometheus-scrape.yaml's jobs keep the controller's and the app's pods (Debian's
    promtool cannot load kubernetes_sd_configs, so this is checked here)."""
    bad = []
    cfg = yaml.safe_load(open(path))
    jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}
    for job, docs, name in (("latchkey-sync", controller, "latchkey-sync"), ("latchkey-broker", app, "app")):
        if job not in jobs:
            bad.append(f"{where}: no job {job}")
            continue
        for dep in by_kind(docs, "Deployment", name):
            tpl = dep["spec"]["template"]
            conts = tpl["spec"].get("containers", []) + tpl["spec"].get("initContainers", [])
            ports = [p_["name"] for c in conts for p_ in c.get("ports", []) if "name" in p_]
            if not scrape_keeps(jobs[job], tpl["metadata"].get("labels", {}), ports):
                bad.append(f"{where}: job {job} does not keep the pods of Deployment {name}")
            if job == "latchkey-broker" and \
               scrape_keeps(jobs[job], tpl["metadata"].get("labels", {}), ["http"]):
                bad.append(f"{where}: job {job} also keeps the app's own port http")
    for j in jobs.values():
        for r in j.get("relabel_configs", []):
            try:
                re.compile(r.get("regex", "(.*)"))
            except re.error as e:
                bad.append(f"{where}: job {j['job_name']}: regex {r.get('regex')!r}: {e}")
    if cfg.get("rule_files") != ["latchkey.rules.yaml"]:
        bad.append(f"{where}: rule_files is not latchkey.rules.yaml beside it")
    return bad


def check_monitoring(mon, controller, where):
    bad = []
    svcs = by_kind(controller, "Service", "latchkey-sync")
    for sm in by_kind(mon, "ServiceMonitor"):
        for svc in svcs:
            if not selects(sm["spec"]["selector"].get("matchLabels"), svc["metadata"].get("labels", {})):
                bad.append(f"{where}: ServiceMonitor {sm['metadata']['name']} does not select Service latchkey-sync")
            names = {p.get("name") for p in svc["spec"]["ports"]}
            for ep in sm["spec"].get("endpoints", []):
                if ep.get("port") not in names:
                    bad.append(f"{where}: ServiceMonitor port {ep.get('port')} is not a port of the Service")
    kinds = sorted(d["kind"] for d in mon)
    if kinds != ["ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor"]:
        bad.append(f"{where}: kinds {kinds}")
    for d in by_kind(mon, "ConfigMap"):
        if d["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            bad.append(f"{where}: the dashboard ConfigMap lacks the grafana_dashboard label")
        try:
            json.loads(d["data"]["latchkey.json"])
        except (KeyError, ValueError) as e:
            bad.append(f"{where}: the dashboard ConfigMap holds no dashboard JSON ({e})")
    return bad


# ---------------------------------------------------------------------------- --audit

def check_audit(path):
    prod = render(os.path.join(SRC, "deploy", "overlays", "production"))
    grants, bad = rbac_grants(prod, "overlays/production")
    failures.extend(bad)
    user = f"system:serviceaccount:{SA[0]}:{SA[1]}"
    seen = {}
    n = 0
    with open(path) as f:
        for line in f:
            a = json.loads(line)
            if a.get("user") != user:
                continue
            n += 1
            res = a.get("resource", "") + (f"/{a['subresource']}" if a.get("subresource") else "")
            t = (a.get("group", ""), res, a.get("verb"))
            if a.get("code") == 403:
                fail("audit", f"{a.get('verb')} {a.get('path')} was refused (403)")
            seen.setdefault(t, set()).add(a.get("namespace") or "cluster")
    if n == 0:
        fail("audit", f"no request of {user} in {path}")
    for t, scopes in sorted(grants.items()):
        if t not in seen:
            fail("audit", f"{t} is granted but the controller never used it in this run")
        elif CONTROLLER_NS in scopes and CONTROLLER_NS not in seen[t]:
            fail("audit", f"{t} is granted in {CONTROLLER_NS} but was never used there")
    counts["rbac tuples"] = len(grants)
    for f in failures:
        print("FAIL", f)
    print(f"{'ok' if not failures else 'failed'}: {n} requests of {user}, "
          f"{len(seen)} tuples used, {len(grants)} granted")
    return 1 if failures else 0


# ---------------------------------------------------------------------------- main

def main():
    if AUDIT is not None:
        return check_audit(AUDIT)
    d = lambda *p: os.path.join(SRC, "deploy", *p)
    prod = render(d("overlays", "production"))
    dev = render(d("overlays", "dev"))
    base = render(d("base"))
    app = render(d("broker"))
    mon = render(d("monitoring"))
    crds = render(d("crds"))
    def with_components(*names):
        tmp = tempfile.mkdtemp(prefix="latchkey-kustomize.")
        try:
            rel = os.path.relpath(d(), tmp)
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                f.write(f"resources: [{rel}/overlays/production]\ncomponents:\n" +
                        "".join(f"  - {rel}/components/{n}\n" for n in names))
            return render(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    compat = with_components("compat-external-secrets")
    compat_sealed = with_components("compat-sealed-secrets")
    compat_both = with_components("compat-external-secrets", "compat-sealed-secrets")
    renders = {"overlays/production": prod, "overlays/dev": dev, "base": base, "broker": app,
               "monitoring": mon, "crds": crds, "production+compat-external-secrets": compat,
               "production+compat-sealed-secrets": compat_sealed,
               "production+both compat components": compat_both}
    for where, docs in renders.items():
        counts["documents"] += len(docs)
        if not docs:
            fail(where, "rendered nothing")
        failures.extend(check_api(docs, where))
        failures.extend(check_containers(docs, where))

    flags = sync_flags(SRC)
    both = ("latchkey.io", "bitnami.com")
    required = code_calls(SRC, "latchkey.io")
    counted = counts["call sites"]
    for where, docs in (("overlays/production", prod), ("overlays/dev", dev), ("base", base)):
        failures.extend(check_rbac(docs, required, where))
    for where, docs, req in (("production+compat-external-secrets", compat,
                              code_calls(SRC, "external-secrets.io")),
                             ("production+compat-sealed-secrets", compat_sealed,
                              code_calls(SRC, "latchkey.io", both)),
                             ("production+both compat components", compat_both,
                              code_calls(SRC, "external-secrets.io", both))):
        failures.extend(check_rbac(docs, req, where, quiet=True))
        failures.extend(check_controller(docs, where, 2, flags))
    counts["call sites"] = counted
    # Each component touches its ClusterRole rules and the Deployment's flag, nothing else.
    strip = lambda docs: [x for x in docs if x["kind"] not in ("ClusterRole", "Deployment")]
    for name, docs, flag in (("compat-external-secrets", compat, "--compat=external-secrets"),
                             ("compat-sealed-secrets", compat_sealed, "--compat=sealed-secrets")):
        if strip(docs) != strip(prod):
            fail(f"components/{name}", "changes more than the ClusterRoles and the Deployment")
        args = by_kind(docs, "Deployment", "latchkey-sync")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        if flag not in args:
            fail(f"components/{name}", f"does not pass {flag}")
    for where, docs, n in (("overlays/production", prod, 2), ("overlays/dev", dev, 1), ("base", base, 2)):
        failures.extend(check_controller(docs, where, n, flags))
    failures.extend(check_app(app, mon, "broker"))
    failures.extend(check_monitoring(mon, prod, "monitoring"))
    scrape = d("monitoring", "prometheus-scrape.yaml")
    failures.extend(check_scrape_config(scrape, prod, app, "monitoring/prometheus-scrape.yaml"))

    # (f) broken copies are refused.
    def refused(reason, bad):
        if any(reason in b for b in bad):
            counts["rejections"] += 1
        else:
            failures.append(f"self-test: a copy that should fail with {reason!r} passed ({bad[:3]})")

    def mutate(docs, kind, fn):
        out = copy.deepcopy(docs)
        for x in out:
            if x["kind"] == kind:
                fn(x)
                break
        return out
    cont = lambda x: x["spec"]["template"]["spec"]["containers"][0]
    refused("no memory limit", check_containers(mutate(prod, "Deployment",
            lambda x: cont(x)["resources"]["limits"].pop("memory")), "copy", True))
    refused("is tagged latest", check_containers(mutate(prod, "Deployment",
            lambda x: cont(x).__setitem__("image", "registry.example.com/latchkey:latest")), "copy", True))
    refused("has no tag", check_containers(mutate(prod, "Deployment",
            lambda x: cont(x).__setitem__("image", "registry.example.com/latchkey")), "copy", True))
    refused("readOnlyRootFilesystem is not true", check_containers(mutate(prod, "Deployment",
            lambda x: cont(x)["securityContext"].pop("readOnlyRootFilesystem")), "copy", True))
    refused("adds capabilities", check_containers(mutate(app, "Deployment",
            lambda x: x["spec"]["template"]["spec"]["initContainers"][0]["securityContext"]["capabilities"]
            .__setitem__("add", ["IPC_LOCK"])), "copy", True))
    refused("no livenessProbe", check_containers(mutate(prod, "Deployment",
            lambda x: cont(x).pop("livenessProbe")), "copy", True))
    refused("is granted but nothing", check_rbac(mutate(prod, "ClusterRole",
            lambda x: x["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})),
            required, "copy", True))
    refused("is used (", check_rbac(mutate(prod, "ClusterRole",
            lambda x: x["rules"].__setitem__(0, {"apiGroups": ["latchkey.io"],
                                                 "resources": ["externalsecrets"], "verbs": ["list"]})),
            required, "copy", True))
    refused("Leases granted in", check_rbac(mutate(prod, "ClusterRole",
            lambda x: x["rules"].append({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                         "verbs": ["get"]})), required, "copy", True))
    refused("no such call in its own namespace", check_rbac(mutate(prod, "Role",
            lambda x: x["rules"].append({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]})),
            required, "copy", True))
    refused("wildcard", check_rbac(mutate(prod, "ClusterRole",
            lambda x: x["rules"].append({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]})),
            required, "copy", True))
    refused("apiVersion policy/v1beta1", check_api(mutate(prod, "PodDisruptionBudget",
            lambda x: x.__setitem__("apiVersion", "policy/v1beta1")), "copy"))
    refused("not a flag of latchkey sync", check_controller(mutate(prod, "Deployment",
            lambda x: cont(x)["args"].append("--leader-election")), "copy", 2, flags))
    refused("lacks restartPolicy", check_app(mutate(app, "Deployment",
            lambda x: x["spec"]["template"]["spec"]["initContainers"][0].pop("restartPolicy")), mon, "copy"))
    refused("does not keep the pods of Deployment app", check_scrape_config(scrape, prod, mutate(app,
            "Deployment", lambda x: x["spec"]["template"]["metadata"]["labels"].pop("latchkey.io/broker")),
            "copy"))
    refused("readiness does not ask", check_app(mutate(app, "Deployment",
            lambda x: cont(x).pop("readinessProbe")), mon, "copy"))

    for f in failures:
        print("FAIL", f)
    print(f"{'ok' if not failures else 'failed'}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if failures else 0


sys.exit(main())
