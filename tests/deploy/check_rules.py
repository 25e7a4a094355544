#!/usr/bin/python3
"""check_rules.py — the Prometheus rules, their unit tests and the Grafana dashboard in
deploy/monitoring, against each other and against the metrics the C sources export.

  /usr/bin/python3 tests/deploy/check_rules.py SRCDIR [--write-prometheusrule]

  (a) every alert has a severity (critical, warning, info), a summary, a description and
      a runbook anchor that docs/monitoring.md has as a heading;
  (b) every alert has a promtool unit test in tests/deploy/latchkey.rules.test.yaml in
      which it fires and one in which it does not; every alert tested exists;
  (c) deploy/monitoring/prometheusrule.yaml holds exactly the groups of
      latchkey.rules.yaml (--write-prometheusrule writes it from them);
  (d) every latchkey_* metric a rule or a dashboard query names is one the C sources
      export (a string literal in common/, broker/ or sync/, or a literal prefix such as
      "latchkey_broker_" joined in the same file to a literal suffix), histogram series
      included; every latchkey:* series a query names is a
      recording rule, and every recording rule is used by an alert or a panel;
  (e) the dashboard's panels have unique ids, fit the 24-column grid, query the
      ${datasource} variable, and every non-row panel has a query;
  (f) deliberately broken copies (an unknown metric, a missing non-firing test, a missing
      runbook heading) are refused, so that these checks can fail.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import copy
import glob
import json
import os
import re
import sys

import yaml

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--")
                      else ".")
RULES = os.path.join(SRC, "deploy", "monitoring", "latchkey.rules.yaml")
TESTS = os.path.join(SRC, "tests", "deploy", "latchkey.rules.test.yaml")
PROMRULE = os.path.join(SRC, "deploy", "monitoring", "prometheusrule.yaml")
DASHBOARD = os.path.join(SRC, "deploy", "monitoring", "grafana", "latchkey.json")
RUNBOOK = os.path.join(SRC, "docs", "monitoring.md")

SEVERITIES = {"critical", "warning", "info"}
METRIC = re.compile(r"\blatchkey_[a-z0-9_]+\b")
RECORDED = re.compile(r"\blatchkey:[a-zA-Z0-9_:]+\b")
HIST_SUFFIX = ("_bucket", "_sum", "_count")

failures = []
counts = {"alerts": 0, "recording rules": 0, "unit tests": 0, "panels": 0, "metrics": 0,
          "rejections": 0}


def exported_names(src):
    """The metric names the C sources can export."""
    literals_by_file = {}
    for d in ("common", "broker", "sync"):
        for path in glob.glob(os.path.join(src, d, "*.[ch]")):
            text = open(path).read()
            literals_by_file[path] = re.findall(r'"([a-z_][a-z0-9_]*)"', text)
    full, joined = set(), set()
    for path, lits in literals_by_file.items():
        for s in lits:
            if s.startswith("latchkey_"):
                full.add(s)
        prefixes = [s for s in lits if s.startswith("latchkey_") and s.endswith("_")]
        for p in prefixes:
            for s in lits:
                if not s.startswith("latchkey_") and re.match(r"^[a-z][a-z0-9_]*$", s):
                    joined.add(p + s)
    return full, joined


def base_name(name):
    for suf in HIST_SUFFIX:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def is_exported(name, full, joined):
    return name in full or name in joined or base_name(name) in full or base_name(name) in joined


def check_all(rules, tests, promrule, dashboard, runbook_text, full, joined, quiet=False):
    bad = []
    alerts, records = {}, {}
    exprs = []
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            exprs.append(("rule " + r.get("alert", r.get("record", "?")), r.get("expr", "")))
            if "alert" in r:
                alerts[r["alert"]] = r
            elif "record" in r:
                records[r["record"]] = r
    if not quiet:
        counts["alerts"] = len(alerts)
        counts["recording rules"] = len(records)
    headings = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
                for h in re.findall(r"^#+\s+(.+)$", runbook_text, re.M)}
    for name, r in alerts.items():
        sev = r.get("labels", {}).get("severity")
        if sev not in SEVERITIES:
            bad.append(f"alert {name}: severity {sev!r} is not one of {sorted(SEVERITIES)}")
        ann = r.get("annotations", {})
        for k in ("summary", "description", "runbook"):
            if not ann.get(k):
                bad.append(f"alert {name}: no {k} annotation")
        rb = ann.get("runbook", "")
        if not rb.startswith("docs/monitoring.md#") or rb.split("#", 1)[1] not in headings:
            bad.append(f"alert {name}: runbook {rb!r} is not a heading of docs/monitoring.md")
        if rb.split("#", 1)[-1] != name.lower():
            bad.append(f"alert {name}: runbook anchor should be #{name.lower()}")

    firing, quiet_tests = {}, {}
    for t in tests.get("tests", []):
        if not quiet:
            counts["unit tests"] += 1
        for a in t.get("alert_rule_test", []):
            n = a.get("alertname")
            if n not in alerts:
                bad.append(f"unit test {t.get('name')!r}: no alert {n}")
            (firing if a.get("exp_alerts") else quiet_tests).setdefault(n, []).append(t.get("name"))
    for name in alerts:
        if name not in firing:
            bad.append(f"alert {name}: no unit test in which it fires")
        if name not in quiet_tests:
            bad.append(f"alert {name}: no unit test in which it does not fire")
    rf = [os.path.normpath(os.path.join(os.path.dirname(TESTS), f)) for f in tests.get("rule_files", [])]
    if rf != [os.path.normpath(RULES)]:
        bad.append(f"unit tests: rule_files {tests.get('rule_files')} is not the rules file")

    if promrule.get("apiVersion") != "monitoring.coreos.com/v1" or promrule.get("kind") != "PrometheusRule":
        bad.append("prometheusrule.yaml: not a monitoring.coreos.com/v1 PrometheusRule")
    if promrule.get("spec") != {"groups": rules.get("groups")}:
        bad.append("prometheusrule.yaml: its groups differ from latchkey.rules.yaml "
                   "(tests/deploy/check_rules.py . --write-prometheusrule rewrites it)")

    ids = set()
    used_records = set()
    for p in dashboard.get("panels", []):
        if not quiet:
            counts["panels"] += 1
        pid = p.get("id")
        if pid in ids:
            bad.append(f"dashboard: panel id {pid} twice")
        ids.add(pid)
        gp = p.get("gridPos", {})
        if gp.get("x", 0) + gp.get("w", 0) > 24:
            bad.append(f"dashboard: panel {p.get('title')!r} is wider than the grid")
        if p.get("type") == "row":
            continue
        targets = p.get("targets", [])
        if not targets:
            bad.append(f"dashboard: panel {p.get('title')!r} has no query")
        for t in targets:
            if t.get("datasource", {}).get("uid") != "${datasource}":
                bad.append(f"dashboard: panel {p.get('title')!r} does not query ${{datasource}}")
            exprs.append((f"panel {p.get('title')!r}", t.get("expr", "")))
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            exprs.append((f"variable {v.get('name')}", q.get("query", "")))

    names = set()
    for where, e in exprs:
        for m in METRIC.findall(e):
            names.add(m)
            if not is_exported(m, full, joined):
                bad.append(f"{where}: {m} is not a metric the sources export")
        for m in RECORDED.findall(e):
            used_records.add(m)
            if m not in records:
                bad.append(f"{where}: {m} is not a recording rule of latchkey.rules.yaml")
    for r in records:
        if r not in used_records:
            bad.append(f"recording rule {r}: used by no alert and no panel")
    if not quiet:
        counts["metrics"] = len(names)
    return bad


def main():
    rules = yaml.safe_load(open(RULES))
    if "--write-prometheusrule" in sys.argv:
        doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
               "metadata": {"name": "latchkey",
                            "labels": {"app.kubernetes.io/name": "latchkey"}},
               "spec": {"groups": rules["groups"]}}
        with open(PROMRULE, "w") as f:
            f.write("# The rules of latchkey.rules.yaml for the Prometheus Operator; written by\n"
                    "# tests/deploy/check_rules.py . --write-prometheusrule, checked by make check.\n")
            yaml.safe_dump(doc, f, sort_keys=False, width=100)
        print(f"wrote {PROMRULE}")
        return 0
    tests = yaml.safe_load(open(TESTS))
    promrule = yaml.safe_load(open(PROMRULE)) if os.path.exists(PROMRULE) else {}
    dashboard = json.load(open(DASHBOARD))
    runbook = open(RUNBOOK).read() if os.path.exists(RUNBOOK) else ""
    full, joined = exported_names(SRC)
    if not full:
        failures.append("no latchkey_* string literal found in common/, broker/, sync/")
    failures.extend(check_all(rules, tests, promrule, dashboard, runbook, full, joined))

    # (f) each broken copy must be refused for the reason given.
    def refused(reason, rules_=rules, tests_=tests, dash_=dashboard, runbook_=runbook):
        bad = check_all(rules_, tests_, promrule, dash_, runbook_, full, joined, quiet=True)
        if any(reason in b for b in bad):
            counts["rejections"] += 1
        else:
            failures.append(f"self-test: a copy that should fail with {reason!r} passed ({bad})")

    d = copy.deepcopy(dashboard)
    d["panels"][1]["targets"][0]["expr"] = "rate(latchkey_broker_made_up_total[5m])"
    refused("latchkey_broker_made_up_total is not a metric", dash_=d)
    d = copy.deepcopy(dashboard)
    d["panels"][1]["targets"][0]["expr"] = "latchkey:made_up"
    refused("latchkey:made_up is not a recording rule", dash_=d)
    t = copy.deepcopy(tests)
    t["tests"] = [x for x in t["tests"] if not (x["alert_rule_test"][0]["alertname"] ==
                                                "LatchkeySyncNoLeader" and not
                                                x["alert_rule_test"][0]["exp_alerts"])]
    refused("LatchkeySyncNoLeader: no unit test in which it does not fire", tests_=t)
    refused("not a heading of docs/monitoring.md",
            runbook_=runbook.replace("LatchkeySecretNearExpiry", "LatchkeySecretNear"))
    r = copy.deepcopy(rules)
    r["groups"][1]["rules"][0]["expr"] = "latchkey_broker_no_such_gauge > 0"
    refused("latchkey_broker_no_such_gauge is not a metric", rules_=r)

    for f in failures:
        print("FAIL", f)
    print(f"{'ok' if not failures else 'failed'}: " +
          ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if failures else 0


sys.exit(main())
