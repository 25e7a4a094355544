#!/usr/bin/python3
"""check_dockerfile.py — deploy/Dockerfile's invariants, checked without a Docker engine.

  /usr/bin/python3 tests/deploy/check_dockerfile.py SRCDIR [BINARY]

  (a) every stage is FROM a Debian 12 image pinned to a point release (debian:12.N or
      debian:12.N-slim, optionally @sha256:…), never `latest`, a bare `12` or `bookworm`;
      the last stage is -slim;
  (b) the build stage installs the -dev package of every pkg-config module the Makefile
      looks for (PKGS, FAKE_PKG and TESTPKG), mapped to Debian packages with dpkg -S;
  (c) the last stage installs the package of every shared library BINARY links
      (readelf -d; packages that are Essential or Priority required are in every Debian
      image), and no -dev package or compiler;
  (d) package layers come before the sources: no RUN that installs packages after the
      first COPY of a stage; apt-get uses --no-install-recommends and removes its lists in
      the same RUN;
  (e) the build stage copies the Makefile and every module folder the Makefile builds
      (MODULES and cli/);
  (f) the last stage runs as a numeric non-root USER uid:gid; ENTRYPOINT, CMD and
      HEALTHCHECK are exec form (JSON arrays), the health check calls the binary the
      entrypoint names, nothing needs a shell at run time (no SHELL, no `sh -c`);
  (g) .dockerignore keeps build trees and .git out of the context;
  (h) broken variants of the Dockerfile are refused, so that the checks above can fail.
With --build-dir DIR it only copies what the build stage's COPY lines name into DIR, as
Docker would, and exits: the C test then builds there, to show the COPY list is enough.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import json
import os
import re
import shutil
import subprocess
import sys

BUILD_DIR = None
args = []
argv = sys.argv[1:]
while argv:
    a = argv.pop(0)
    if a == "--build-dir" and argv:
        BUILD_DIR = argv.pop(0)
    else:
        args.append(a)
SRC = os.path.abspath(args[0] if args else ".")
BINARY = args[1] if len(args) > 1 else os.path.join(SRC, "build", "latchkey")

failures = []
counts = {"stages": 0, "instructions": 0, "libraries": 0, "rejections": 0}

PINNED = re.compile(r"^debian:12\.\d+(-slim)?(@sha256:[0-9a-f]{64})?$")
APT_INSTALL = re.compile(r"\bapt(-get)?\s+install\b")
# Besides the libraries: the CA certificates libcurl verifies the backend's TLS with.
RUNTIME_EXTRA = ("ca-certificates",)
DEV_OR_TOOL = re.compile(r"(-dev$|^build-essential$|^gcc|^clang|^make$|^pkg-config$)")


def parse(text):
    """Instructions as (line, KEYWORD, argument text) with continuations joined."""
    out, buf, start = [], "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        kw, _, rest = buf.strip().partition(" ")
        out.append((start, kw.upper(), rest.strip()))
        buf = ""
    return out


def stages(instrs):
    """[(from_line, image, alias, [instructions])]."""
    out = []
    for ins in instrs:
        if ins[1] == "FROM":
            parts = [p for p in ins[2].split() if not p.startswith("--")]
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            out.append((ins[0], parts[0] if parts else "", alias, []))
        elif out:
            out[-1][3].append(ins)
    return out


def exec_form(arg):
    try:
        v = json.loads(arg)
    except ValueError:
        return None
    return v if isinstance(v, list) and v and all(isinstance(x, str) for x in v) else None


def packages_installed(run):
    """Package names an apt-get install in this RUN text installs."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run):
        m = APT_INSTALL.search(cmd)
        if not m:
            continue
        for w in cmd[m.end():].split():
            if not w.startswith("-") and re.match(r"^[a-z0-9][a-z0-9.+-]+$", w):
                pkgs.append(w)
    return pkgs


def make_var(makefile, name):
    m = re.search(r"^%s\s*[:?]?=\s*(.*)$" % re.escape(name), makefile, re.M)
    return m.group(1).split() if m else []


def dpkg_owner(path):
    for p in (path, os.path.realpath(path)):
        for cand in (p, p.replace("/usr/lib/", "/lib/", 1), p.replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0 and r.stdout:
                return r.stdout.split(":")[0].strip()
    return None


_BASE = None


def in_base_image(pkg):
    """Whether pkg is in every Debian image: an Essential package, or what one depends on."""
    global _BASE
    if _BASE is None:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Pre-Depends}, "
                            "${Depends}\n"], capture_output=True, text=True)
        deps, todo = {}, []
        for line in r.stdout.splitlines():
            name, essential, d = (line.split("\t") + ["", ""])[:3]
            deps[name] = [re.split(r"[\s(:]", alt.strip())[0] for alt in d.split(",")
                          if alt.strip()]
            if essential == "yes":
                todo.append(name)
        _BASE = set()
        while todo:
            n = todo.pop()
            if n not in _BASE:
                _BASE.add(n)
                todo.extend(deps.get(n, []))
    return pkg in _BASE


def check(text, where, makefile, dockerignore, needed_pkgs, dev_pkgs, quiet=False):
    """The failures of one Dockerfile text (a list of strings)."""
    bad = []
    instrs = parse(text)
    st = stages(instrs)
    if not quiet:
        counts["stages"] += len(st)
        counts["instructions"] += len(instrs)
    if len(st) < 2:
        bad.append(f"{where}: expected a build stage and a run stage, found {len(st)} FROM")
        return bad
    for line, image, alias, body in st:
        if not PINNED.match(image):
            bad.append(f"{where}:{line}: FROM {image}: expected debian:12.N or debian:12.N-slim "
                       "(a pinned point release, never latest)")
    if not st[-1][1].split("@")[0].endswith("-slim"):
        bad.append(f"{where}:{st[-1][0]}: the run stage is not a -slim image")
    if any(ins[1] == "SHELL" for ins in instrs):
        bad.append(f"{where}: SHELL instruction: nothing may need a shell")
    if any(ins[1] == "ADD" for ins in instrs):
        bad.append(f"{where}: ADD: use COPY (no URLs, no implicit unpacking)")
    for line, image, alias, body in st:
        copied = False
        for n, kw, rest in body:
            if kw == "COPY" and "--from=" not in rest:
                copied = True
            if kw == "RUN" and APT_INSTALL.search(rest):
                if copied:
                    bad.append(f"{where}:{n}: packages installed after the sources were copied "
                               "(dependency layers go first)")
                if "--no-install-recommends" not in rest:
                    bad.append(f"{where}:{n}: apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in rest:
                    bad.append(f"{where}:{n}: the apt lists are not removed in the same layer")
    build = st[0][3]
    build_pkgs = [p for n, kw, rest in build if kw == "RUN" for p in packages_installed(rest)]
    for p in dev_pkgs:
        if p not in build_pkgs:
            bad.append(f"{where}: the build stage does not install {p} (the Makefile needs it)")
    copies = [rest.split() for n, kw, rest in build if kw == "COPY" and "--from=" not in rest]
    sources = {s.rstrip("/") for c in copies for s in c[:-1] if not s.startswith("--")}
    if "." not in sources:
        for need in ["Makefile"] + make_var(makefile, "MODULES") + ["cli"]:
            if need not in sources:
                bad.append(f"{where}: the build stage does not copy {need}/ (the Makefile builds it)")
    run = st[-1][3]
    run_pkgs = [p for n, kw, rest in run if kw == "RUN" for p in packages_installed(rest)]
    for p in needed_pkgs:
        if p not in run_pkgs:
            bad.append(f"{where}: the run stage does not install {p} (the binary links it)")
    for p in run_pkgs:
        if DEV_OR_TOOL.search(p):
            bad.append(f"{where}: the run stage installs {p}: build tools stay in the build stage")
        elif needed_pkgs and p not in needed_pkgs and p not in RUNTIME_EXTRA:
            bad.append(f"{where}: the run stage installs {p}, which the binary does not link")
    users = [rest for n, kw, rest in run if kw == "USER"]
    if not users:
        bad.append(f"{where}: the run stage has no USER (it would run as root)")
    else:
        m = re.match(r"^(\d+):(\d+)$", users[-1])
        if not m:
            bad.append(f"{where}: USER {users[-1]}: expected numeric uid:gid")
        elif m.group(1) == "0" or m.group(2) == "0":
            bad.append(f"{where}: USER {users[-1]}: root")
    entry = [rest for n, kw, rest in run if kw == "ENTRYPOINT"]
    ep = exec_form(entry[-1]) if entry else None
    if ep is None:
        bad.append(f"{where}: ENTRYPOINT missing or not exec form (a JSON array)")
    cmds = [rest for n, kw, rest in run if kw == "CMD"]
    if cmds and exec_form(cmds[-1]) is None:
        bad.append(f"{where}: CMD is not exec form")
    hc = [rest for n, kw, rest in run if kw == "HEALTHCHECK"]
    if not hc:
        bad.append(f"{where}: no HEALTHCHECK")
    else:
        m = re.search(r"\bCMD\s+(.*)$", hc[-1])
        hcmd = exec_form(m.group(1)) if m else None
        if hcmd is None:
            bad.append(f"{where}: HEALTHCHECK CMD is not exec form")
        elif ep is not None and hcmd[0] != ep[0]:
            bad.append(f"{where}: HEALTHCHECK calls {hcmd[0]}, not the binary {ep[0]}")
    for form in [ep] + [exec_form(c) for c in cmds]:
        if form and os.path.basename(form[0]) in ("sh", "bash", "dash") or \
           (form and "-c" in form[:2] and os.path.basename(form[0]).endswith("sh")):
            bad.append(f"{where}: {form[0]}: a shell at run time")
    binaries = [rest.split()[-1] for n, kw, rest in run if kw == "COPY" and "--from=" in rest]
    if ep is not None and ep[0] not in binaries:
        bad.append(f"{where}: ENTRYPOINT {ep[0]} is not what the run stage copies ({binaries})")
    if "latest" in text.replace("latest version", ""):
        bad.append(f"{where}: names `latest`")
    ignored = [l.strip() for l in dockerignore.splitlines() if l.strip() and not l.startswith("#")]
    for need in ("build*/", ".git/"):
        if need not in ignored:
            bad.append(f".dockerignore: {need} is not excluded")
    return bad


def main():
    path = os.path.join(SRC, "deploy", "Dockerfile")
    text = open(path).read()
    if BUILD_DIR is not None:
        # Docker's COPY: a folder's contents into the destination; a file to the destination,
        # or into it when the destination ends with "/".
        for n, kw, rest in stages(parse(text))[0][3]:
            if kw != "COPY" or "--from=" in rest:
                continue
            parts = [p for p in rest.split() if not p.startswith("--")]
            dst = os.path.join(BUILD_DIR, parts[-1])
            for s in parts[:-1]:
                srcp = os.path.join(SRC, s)
                if os.path.isdir(srcp):
                    shutil.copytree(srcp, dst, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("*.o", "*.d"))
                else:
                    target = os.path.join(dst, os.path.basename(s)) if parts[-1].endswith("/") \
                        else dst
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copy2(srcp, target)
        n = sum(len(files) for _, _, files in os.walk(BUILD_DIR))
        print(f"ok: copied {n} files into {BUILD_DIR}")
        return 0

    makefile = open(os.path.join(SRC, "Makefile")).read()
    dockerignore = open(os.path.join(SRC, ".dockerignore")).read()

    dev_pkgs = []
    for pc in make_var(makefile, "PKGS") + make_var(makefile, "FAKE_PKG") + make_var(makefile, "TESTPKG"):
        r = subprocess.run(["pkg-config", "--variable=pcfiledir", pc], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"pkg-config cannot find {pc} here (run tools/deps.sh)")
            continue
        owner = dpkg_owner(os.path.join(r.stdout.strip(), pc + ".pc"))
        if owner is None:
            failures.append(f"dpkg -S: no package owns {pc}.pc")
        else:
            dev_pkgs.append(owner)

    needed = []
    if not os.access(BINARY, os.X_OK):
        failures.append(f"{BINARY}: not built (make)")
    else:
        r = subprocess.run(["readelf", "-d", BINARY], capture_output=True, text=True)
        sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
        if not sonames:
            failures.append(f"readelf -d {BINARY}: no NEEDED entries")
        cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
        for so in sonames:
            counts["libraries"] += 1
            m = re.search(r"^\s*%s \(.*x86-64.*\) => (\S+)$" % re.escape(so), cache, re.M) or \
                re.search(r"^\s*%s \(.*\) => (\S+)$" % re.escape(so), cache, re.M)
            owner = dpkg_owner(m.group(1)) if m else None
            if owner is None:
                failures.append(f"{so}: no Debian package found for it")
            elif not in_base_image(owner) and owner not in needed:
                needed.append(owner)

    failures.extend(check(text, "deploy/Dockerfile", makefile, dockerignore, needed, dev_pkgs))

    # (h) the checks can fail: each variant must be refused with the reason expected.
    variants = [
        ("FROM debian:12.11-slim\n", "FROM debian:latest\n", "pinned point release"),
        ("FROM debian:12.11 AS build", "FROM debian:12 AS build", "pinned point release"),
        ("USER 10001:10001", "USER latchkey", "numeric uid:gid"),
        ("USER 10001:10001", "USER 0:0", "root"),
        ('ENTRYPOINT ["/usr/local/bin/latchkey"]', "ENTRYPOINT /usr/local/bin/latchkey",
         "exec form"),
        ('CMD ["/usr/local/bin/latchkey", "status"]', "CMD /usr/local/bin/latchkey status",
         "HEALTHCHECK CMD is not exec form"),
        ('CMD ["/usr/local/bin/latchkey", "status"]', 'CMD ["/bin/sh", "-c", "true"]',
         "not the binary"),
        ("libyaml-0-2 \\", "\\", "does not install libyaml-0-2"),
        ("libpq-dev check", "check", "does not install libpq-dev"),
        ("COPY sync/ sync/\n", "", "does not copy sync/"),
        ("COPY cli/ cli/\n", "COPY cli/ cli/\nRUN apt-get update && apt-get install -y "
         "--no-install-recommends gdb && rm -rf /var/lib/apt/lists/*\n", "after the sources"),
        ("libyaml-0-2 \\", "libyaml-0-2 libssl-dev \\", "build tools stay"),
        ("libyaml-0-2 \\", "libyaml-0-2 libpq5 \\", "does not link"),
    ]
    for old, new, reason in variants:
        if old not in text:
            failures.append(f"self-test: {old!r} is not in deploy/Dockerfile any more")
            continue
        bad = check(text.replace(old, new, 1), "variant", makefile, dockerignore, needed,
                    dev_pkgs, quiet=True)
        if not any(reason in b for b in bad):
            failures.append(f"self-test: replacing {old!r} by {new!r} was not refused for "
                            f"{reason!r} ({bad})")
        else:
            counts["rejections"] += 1

    for f in failures:
        print("FAIL", f)
    print(f"{'ok' if not failures else 'failed'}: {counts['stages']} stages, "
          f"{counts['instructions']} instructions, {counts['libraries']} libraries, "
          f"{counts['rejections']} rejections")
    return 1 if failures else 0


sys.exit(main())
