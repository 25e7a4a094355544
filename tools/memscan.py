#!/usr/bin/python3
"""memscan.py - where a secret sits in a running process's memory.

usage: tools/memscan.py PID NEEDLE_FILE

Reads the process's memory through /proc/PID/mem (root, or the process's user when it is
dumpable) and prints, for each kind of mapping, how many copies of the needle it holds and
whether that mapping is locked (smaps "Locked:"). The needle is read from a file, so that
it never appears on a command line. Nothing of the memory is printed.
"""
import re
import sys


def regions(pid):
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16),
                       "perm": m.group(3), "name": m.group(4).strip() or "[anon]",
                       "locked_kb": 0}
                out.append(cur)
            elif cur is not None and line.startswith("Locked:"):
                cur["locked_kb"] = int(line.split()[1])
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    with open(sys.argv[2], "rb") as f:
        needle = f.read().strip()
    if len(needle) < 8:
        sys.exit("memscan: a needle of at least 8 bytes, please")
    found = {}
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for r in regions(pid):
            if "r" not in r["perm"]:
                continue
            try:
                mem.seek(r["start"])
                data = mem.read(r["end"] - r["start"])
            except OSError:
                continue
            n = data.count(needle)
            if n:
                key = (r["name"], "locked" if r["locked_kb"] else "not locked")
                found[key] = found.get(key, 0) + n
    total = sum(found.values())
    print(f"copies: {total}")
    for (name, locked), n in sorted(found.items()):
        print(f"  {n:4d}  {name} ({locked})")


if __name__ == "__main__":
    main()
