#!/usr/bin/python3
"""measure_sync.py — what `latchkey sync` and `latchkey broker` cost, for the resource requests
and limits in deploy/ (the figures are quoted there, beside the numbers they justify).

  /usr/bin/python3 tests/deploy/measure_sync.py [--namespaces N] [--per-namespace M]
      [--paths P] [--settle S] [--broker-secrets K] [--sync-arg=--qps=N]...

Starts the test API server (build/fake-apiserver) and `latchkey dev` on free ports, creates
N namespaces, each with a SecretStore, a token Secret and M ExternalSecrets reading P
distinct KV paths in all, then starts `latchkey sync` with its defaults (4 workers, 50 qps)
and reports, from /proc: the time until every ExternalSecret is Ready, the peak resident
set (VmHWM), the resident set once settled (VmRSS after S seconds of steady state), and the
CPU seconds spent converging and per minute when settled. Then the same for a broker with K
secrets (half KV, half dynamic database credentials) and 20 s of socket reads.
Everything started is stopped at the end, also on failure. Not part of `make check`: it
takes minutes.
"""
import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LATCHKEY = os.environ.get("LATCHKEY_BIN", os.path.join(ROOT, "build", "latchkey"))
FAKE = os.environ.get("FAKE_APISERVER", os.path.join(ROOT, "build", "fake-apiserver"))
TICKS = os.sysconf("SC_CLK_TCK")
procs = []


def start(argv, log, env=None):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    return p


def wait_log(path, pattern, timeout=60):
    end = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < end:
        with open(path) as f:
            m = rx.search(f.read())
        if m:
            return m
        time.sleep(0.05)
    raise RuntimeError(f"{path}: no {pattern!r} within {timeout}s:\n" + open(path).read()[-2000:])


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


class Kube:
    def __init__(self, addr, token, ca):
        host, port = addr.replace("https://", "").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx)
        self.token = token

    def req(self, method, path, body=None):
        hdr = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        self.conn.request(method, path, json.dumps(body) if body is not None else None, hdr)
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None


class Dev:
    def __init__(self, addr, token):
        host, port = addr.replace("http://", "").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port))
        self.token = token

    def req(self, method, path, body=None):
        self.conn.request(method, "/v1/" + path, json.dumps(body) if body is not None else None,
                          {"X-Vault-Token": self.token})
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return data


def measure_sync(a, tmp):
    kdir = os.path.join(tmp, "kube")
    klog = os.path.join(tmp, "fake.log")
    start([FAKE, "--listen", "127.0.0.1:0", "--dir", kdir, "--max-objects", "100000",
           "--history", "100000"], klog)
    addr = wait_log(klog, r'"addr":"(https://[^"]+)"').group(1)
    kube = Kube(addr, open(os.path.join(kdir, "token")).read().strip(), os.path.join(kdir, "ca.crt"))
    dlog = os.path.join(tmp, "dev.log")
    token = "hvs.measure-" + os.urandom(8).hex()
    start([LATCHKEY, "dev", "--listen", "127.0.0.1:0", "--root-token", token], dlog)
    daddr = "http://" + wait_log(dlog, r'"msg":"listening","addr":"([^"]+)"').group(1)
    dev = Dev(daddr, token)

    for name in sorted(os.listdir(os.path.join(ROOT, "deploy", "crds"))):
        if name.endswith(".yaml"):
            out = subprocess.run(["kubectl", "--kubeconfig", os.path.join(kdir, "kubeconfig"),
                                  "apply", "--server-side", "-f",
                                  os.path.join(ROOT, "deploy", "crds", name)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
    for p in range(a.paths):
        dev.req("POST", f"secret/data/app/s{p}", {"data": {"user": f"u{p}",
                                                          "password": os.urandom(12).hex()}})
    kube.req("POST", "/api/v1/namespaces", {"metadata": {"name": "latchkey-system"}})
    tok64 = base64.b64encode(token.encode()).decode()
    n = 0
    t0 = time.time()
    for i in range(a.namespaces):
        ns = f"team-{i:02d}"
        kube.req("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        kube.req("POST", f"/api/v1/namespaces/{ns}/secrets",
                 {"metadata": {"name": "vault-token"}, "data": {"token": tok64}})
        kube.req("POST", f"/apis/latchkey.io/v1/namespaces/{ns}/secretstores",
                 {"apiVersion": "latchkey.io/v1", "kind": "SecretStore",
                  "metadata": {"name": "vault"},
                  "spec": {"provider": {"vault": {"server": daddr, "path": "secret",
                                                   "auth": {"tokenSecretRef": {
                                                       "name": "vault-token", "key": "token"}}}}}})
        for j in range(a.per_namespace):
            p = n % a.paths
            n += 1
            kube.req("POST", f"/apis/latchkey.io/v1/namespaces/{ns}/externalsecrets",
                     {"apiVersion": "latchkey.io/v1", "kind": "ExternalSecret",
                      "metadata": {"name": f"es-{j:04d}", "labels": {"team": ns}},
                      "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "vault"},
                               "target": {"name": f"es-{j:04d}",
                                          "template": {"metadata": {"labels": {"app": "x"}}}},
                               "data": [{"secretKey": "user", "remoteRef": {
                                   "key": f"app/s{p}", "property": "user"}},
                                        {"secretKey": "password", "remoteRef": {
                                   "key": f"app/s{p}", "property": "password"}}]}})
    print(f"created {n} ExternalSecrets in {a.namespaces} namespaces over {a.paths} paths "
          f"in {time.time() - t0:.1f}s", flush=True)

    slog = os.path.join(tmp, "sync.log")
    env = dict(os.environ, POD_NAMESPACE="latchkey-system", POD_NAME="measure-0")
    sync = start([LATCHKEY, "sync", "--kubeconfig", os.path.join(kdir, "kubeconfig"),
                  "--metrics", "127.0.0.1:0"] + a.sync_arg, slog, env)
    port = int(wait_log(slog, r'"metrics_port":(\d+)').group(1))
    t0 = time.time()
    peak_cpu = 0.0
    while True:
        body = urlget(port, "/metrics")
        m = re.search(r'^latchkey_sync_reconcile_total\{kind="ExternalSecret"\} (\d+)', body, re.M)
        done = m is not None and int(m.group(1)) >= n and \
            re.search(r"^latchkey_sync_queue_depth (\d+)", body, re.M).group(1) == "0"
        if done:
            ready = count_ready(kube, a.namespaces)
            if ready >= n:
                break
        if time.time() - t0 > 1800:
            raise RuntimeError("not converged in 30 minutes")
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited ({p.returncode}) before convergence")
        time.sleep(1)
    conv = time.time() - t0
    st = proc_status(sync.pid)
    print(f"sync: converged in {conv:.1f}s; VmHWM {st['VmHWM']:.1f} MiB, VmRSS {st['VmRSS']:.1f} "
          f"MiB, CPU {st['cpu']:.1f}s ({st['cpu'] / conv * 1000:.0f} millicores average)",
          flush=True)
    c0 = st["cpu"]
    time.sleep(a.settle)
    st = proc_status(sync.pid)
    print(f"sync: after {a.settle}s settled: VmRSS {st['VmRSS']:.1f} MiB, VmHWM "
          f"{st['VmHWM']:.1f} MiB, CPU {(st['cpu'] - c0) / a.settle * 1000:.1f} millicores",
          flush=True)
    sync.send_signal(signal.SIGTERM)
    sync.wait(30)


def count_ready(kube, namespaces):
    ready = 0
    for i in range(namespaces):
        lst = kube.req("GET", f"/apis/latchkey.io/v1/namespaces/team-{i:02d}/externalsecrets")
        for it in lst["items"]:
            for c in it.get("status", {}).get("conditions", []):
                if c.get("type") == "Ready" and c.get("status") == "True":
                    ready += 1
    return ready


def urlget(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    return c.getresponse().read().decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measure_broker(a, tmp):
    dlog = os.path.join(tmp, "bdev.log")
    token = "hvs.measure-" + os.urandom(8).hex()
    start([LATCHKEY, "dev", "--listen", "127.0.0.1:0", "--root-token", token], dlog)
    daddr = "http://" + wait_log(dlog, r'"msg":"listening","addr":"([^"]+)"').group(1)
    dev = Dev(daddr, token)
    dev.req("POST", "database/roles/app", {"db_name": "pg", "default_ttl": "1h", "max_ttl": "24h"})
    secrets = []
    for k in range(a.broker_secrets):
        if k % 2 == 0:
            dev.req("POST", f"secret/data/app/k{k}", {"data": {"user": "u", "password": "p" * 32}})
            secrets.append({"name": f"kv{k}", "path": f"secret/data/app/k{k}", "required": True})
        else:
            secrets.append({"name": f"db{k}", "path": "database/creds/app", "required": True})
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o750)
    tokfile = os.path.join(tmp, "token")
    with open(tokfile, "w") as f:
        f.write(token)
    os.chmod(tokfile, 0o600)
    sock = os.path.join(run, "broker.sock")
    cfg = os.path.join(tmp, "broker.json")
    with open(cfg, "w") as f:
        json.dump({"vault": {"address": daddr, "auth": {"method": "token", "token_file": tokfile}},
                   "listen": {"socket": sock, "metrics": f"127.0.0.1:{free_port()}"},
                   "secrets": secrets}, f)
    blog = os.path.join(tmp, "broker.log")
    b = start([LATCHKEY, "broker", "--config", cfg], blog)
    wait_log(blog, r'"msg":"ready"', 120)
    st = proc_status(b.pid)
    print(f"broker ({a.broker_secrets} secrets): ready; VmRSS {st['VmRSS']:.1f} MiB, VmHWM "
          f"{st['VmHWM']:.1f} MiB", flush=True)
    c0, t0, reads = st["cpu"], time.time(), [0]
    stop = threading.Event()

    def reader():
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        f = s.makefile("rb")
        while not stop.is_set():
            s.sendall(f"GET /v1/secrets/{secrets[reads[0] % len(secrets)]['name']} HTTP/1.1\r\n"
                      "Host: b\r\n\r\n".encode())
            length = 0
            while True:
                line = f.readline()
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b""):
                    break
            f.read(length)
            reads[0] += 1
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(20)
    stop.set()
    for t in threads:
        t.join()
    st = proc_status(b.pid)
    secs = time.time() - t0
    print(f"broker: {reads[0] / secs:.0f} reads/s for {secs:.0f}s (two keep-alive readers): "
          f"CPU {(st['cpu'] - c0) / secs * 1000:.0f} millicores, VmRSS {st['VmRSS']:.1f} MiB, "
          f"VmHWM {st['VmHWM']:.1f} MiB", flush=True)
    c0 = st["cpu"]
    time.sleep(a.settle)
    st = proc_status(b.pid)
    print(f"broker: idle {a.settle}s: CPU {(st['cpu'] - c0) / a.settle * 1000:.1f} millicores",
          flush=True)
    b.send_signal(signal.SIGTERM)
    b.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--per-namespace", type=int, default=100)
    ap.add_argument("--paths", type=int, default=200)
    ap.add_argument("--settle", type=int, default=60)
    ap.add_argument("--broker-secrets", type=int, default=20)
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--sync-arg", action="append", default=[],
                    help="an extra flag for latchkey sync (repeatable), e.g. --sync-arg=--qps=500")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="latchkey-measure.")
    try:
        if not a.skip_sync:
            measure_sync(a, tmp)
        measure_broker(a, tmp)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
