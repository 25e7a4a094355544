#!/usr/bin/python3
"""check_docs.py — what the docs say, held to what the code and the tree are.

  /usr/bin/python3 tests/deploy/check_docs.py SRCDIR

  (a) every relative link in README.md and docs/*.md (outside code blocks) names a file that
      exists, and an anchor (#…) names a heading of that page;
  (b) README.md's Documentation list links every page of docs/;
  (c) docs/config.md lists every key the broker's configuration accepts (the known-key
      lists of broker/config.c, broker/source_file.c, broker/decrypt.c and
      vault/config.c) and every flag of `latchkey sync` (sync/main.c), and every flag its
      sync table names exists;
  (d) every message a heading of docs/troubleshooting.md quotes occurs in the sources: each
      part between the "…" placeholders is in one C string literal (adjacent literals
      joined, escapes read, format directives as boundaries);
  (e) the example kinds tests/integration/check_docs.c runs each have examples;
  (f) broken copies (a dead link, a message the code lacks, a key left out) are refused.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import glob
import os
import re
import sys

SRC = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
MODULES = ["common", "crypto", "http", "manifest", "sealing", "vault", "k8s", "broker", "sync",
           "devserver", "cli"]
EXAMPLE_KINDS = {"seed": 1, "broker-config": 1, "app": 2, "go": 1, "node": 1, "developer": 2,
                 "cluster": 2}

failures = []
counts = {"pages": 0, "links": 0, "config keys": 0, "messages": 0, "examples": 0, "rejections": 0}


def read(path):
    with open(path) as f:
        return f.read()


def strip_code(text):
    """The text with fenced blocks and inline code removed (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    h = re.sub(r"`", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path):
    text = re.sub(r"^```.*?^```", "", read(path), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def check_links(pages):
    bad = []
    for path, text in pages.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", strip_code(text)):
            if re.match(r"^[a-z]+:", target):
                continue
            counts["links"] += 1
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            rel = os.path.relpath(path, SRC)
            if not os.path.exists(dest):
                bad.append(f"{rel}: link to {target}: no such file")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{rel}: link to {target}: no heading #{anchor} there")
    return bad


def check_readme(readme):
    bad = []
    section = readme.split("## Documentation", 1)[-1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\]\((docs/[^)#]+)\)", section))
    for page in sorted(glob.glob(os.path.join(SRC, "docs", "*.md"))):
        rel = os.path.relpath(page, SRC)
        if rel not in listed:
            bad.append(f"README.md: the Documentation list does not link {rel}")
    return bad


def code_keys():
    keys = set()
    for f in ("broker/config.c", "broker/source_file.c", "broker/decrypt.c", "vault/config.c"):
        text = read(os.path.join(SRC, f))
        for m in re.finditer(r"static const char \*const \w+\[\] = \{(.*?)\};", text, re.S):
            keys.update(re.findall(r'"([a-z_]+)"', m.group(1)))
    return keys


def sync_flags():
    text = read(os.path.join(SRC, "sync", "main.c"))
    block = text[text.index("longopts[] = {"):]
    return set(re.findall(r'\{ "([a-z-]+)",', block[:block.index("};")])) - {"help"}


def check_config(config):
    bad = []
    documented = set(re.findall(r"`([a-z_]+)`", config))
    for k in sorted(code_keys()):
        counts["config keys"] += 1
        if k not in documented:
            bad.append(f"docs/config.md: the broker's configuration key `{k}` is not documented")
    section = config.split("## Sync controller", 1)[-1].split("\n## ", 1)[0]
    flags = sync_flags()
    table_flags = set(re.findall(r"^\| `--([a-z-]+)", section, re.M)) | \
        set(re.findall(r"`--([a-z-]+)[ =`]", section.split("|---|", 1)[-1].split("\n\n", 1)[0]))
    for f in sorted(flags):
        counts["config keys"] += 1
        if f"--{f}" not in section:
            bad.append(f"docs/config.md: the flag --{f} of latchkey sync is not documented")
    for f in sorted(table_flags - flags):
        bad.append(f"docs/config.md: --{f} is in the sync table but latchkey sync has no such flag")
    return bad


FORMAT = re.compile(r"%[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|z|j|t)?[diouxXcsfgeEp]")


def source_literals():
    """Every C string literal of the modules, adjacent ones joined, escapes read, format
    directives turned into NUL boundaries."""
    out = []
    lit = r'"((?:[^"\\\n]|\\.)*)"'
    for m in MODULES:
        for path in glob.glob(os.path.join(SRC, m, "*.[ch]")):
            text = read(path)
            for group in re.finditer(r'%s(?:\s*%s)*' % (lit, lit), text):
                parts = re.findall(lit, group.group(0))
                s = "".join(parts)
                s = s.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
                s = s.replace("%%", "%")
                out.append(FORMAT.sub("\0", s))
    return out


def check_messages(trouble, literals):
    bad = []
    heads = re.findall(r"^###\s+`(.+)`\s*$", trouble, re.M)
    if not heads:
        bad.append("docs/troubleshooting.md: no ### `message` headings")
    for msg in heads:
        counts["messages"] += 1
        parts = [p for p in msg.split("…") if len(re.sub(r"[^A-Za-z0-9]", "", p)) >= 3]
        if not parts:
            bad.append(f"docs/troubleshooting.md: `{msg}` has no words to look for")
        for part in parts:
            if not any(part in s for s in literals):
                bad.append(f"docs/troubleshooting.md: `{msg}`: {part!r} is in no string of the sources")
    return bad


def check_examples(pages):
    bad = []
    found = {}
    for path, text in pages.items():
        for kind in re.findall(r"^<!-- test: ([a-z-]+) -->\n```", text, re.M):
            found[kind] = found.get(kind, 0) + 1
            counts["examples"] += 1
        for kind in re.findall(r"^<!-- test: ([a-z-]+) -->\n(?!```)", text, re.M):
            bad.append(f"{os.path.relpath(path, SRC)}: the example marker {kind} is not followed by a block")
    for kind, n in EXAMPLE_KINDS.items():
        if found.get(kind, 0) < n:
            bad.append(f"docs/: {found.get(kind, 0)} examples of kind {kind}, at least {n} expected")
    for kind in found:
        if kind not in EXAMPLE_KINDS:
            bad.append(f"docs/: example kind {kind} is not one check_docs.c runs")
    return bad


def main():
    pages = {p: read(p) for p in sorted(glob.glob(os.path.join(SRC, "docs", "*.md")) +
                                        glob.glob(os.path.join(SRC, "docs", "internals", "*.md")))}
    readme_path = os.path.join(SRC, "README.md")
    readme = read(readme_path)
    counts["pages"] = len(pages) + 1
    config = read(os.path.join(SRC, "docs", "config.md"))
    trouble = read(os.path.join(SRC, "docs", "troubleshooting.md"))
    literals = source_literals()

    failures.extend(check_links(dict(pages, **{readme_path: readme})))
    failures.extend(check_readme(readme))
    failures.extend(check_config(config))
    failures.extend(check_messages(trouble, literals))
    failures.extend(check_examples(pages))

    def refused(reason, bad):
        if any(reason in b for b in bad):
            counts["rejections"] += 1
        else:
            failures.append(f"self-test: a copy that should fail with {reason!r} passed")
    refused("no such file", check_links({os.path.join(SRC, "docs", "x.md"): "see [it](nowhere.md)"}))
    refused("no heading #no-such-heading",
            check_links({os.path.join(SRC, "docs", "x.md"): "see [it](config.md#no-such-heading)"}))
    refused("does not link docs/config.md", check_readme(readme.replace("(docs/config.md)", "(x)")))
    refused("`metrics_series_max` is not documented",
            check_config(config.replace("`metrics_series_max`", "`x`")))
    refused("the flag --store-burst", check_config(config.replace("--store-burst", "--x")))
    refused("is in no string of the sources",
            check_messages("### `this message is not in latchkey at all`\n", literals))

    for f in failures:
        print("FAIL", f)
    print(f"{'ok' if not failures else 'failed'}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if failures else 0


sys.exit(main())
