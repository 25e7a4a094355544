#!/bin/sh
# check_includes.sh [ROOT] — the module graph of docs/internals/architecture.md, enforced.
# Reads the two tables of that page ("may include", "public headers") and every
# `#include "..."` in the module folders and tests/fakes/ under ROOT (default: the source
# tree), and prints FILE:LINE: why for each include the graph does not allow. Exit 1 when
# there is one, 0 when there is none.
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
doc="$root/docs/internals/architecture.md"
[ -f "$doc" ] || { echo "check_includes: $doc not found" >&2; exit 2; }

# "| `mod` | `a` `b` |" rows of the first table, then of the second (after "public headers").
rules=$(awk '
	/^\| module \| may include \|/ { t = 1; next }
	/^\| module \| public headers \|/ { t = 2; next }
	/^$/ { t = 0 }
	t && /^\| `/ {
		line = $0; gsub(/`/, "", line); n = split(line, f, "|")
		gsub(/^ +| +$/, "", f[2]); gsub(/^ +| +$/, "", f[3])
		print (t == 1 ? "may" : "pub") " " f[2] " " f[3]
	}' "$doc")
[ -n "$rules" ] || { echo "check_includes: no tables found in $doc" >&2; exit 2; }
modules=$(echo "$rules" | awk '$1 == "may" { print $2 }')

bad=0
for m in $modules; do
	[ -d "$root/$m" ] || continue
	allowed=$(echo "$rules" | awk -v m="$m" '$1 == "may" && $2 == m { for (i = 3; i <= NF; i++) if ($i != "—") print $i }')
	for f in $(find "$root/$m" -name '*.[ch]' | sort); do
		rel=${f#"$root"/}
		grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r hit; do
			line=${hit%%:*}
			inc=$(echo "$hit" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
			case "$inc" in
			*/*) target=${inc%/*}; header=${inc##*/} ;;
			*) continue ;;      # a header beside the file (tests/fakes)
			esac
			[ "$target" = "$m" ] && continue
			if ! echo "$allowed" | grep -qx "$target"; then
				echo "$rel:$line: $m may not include $target/ (\"$inc\"); see docs/internals/architecture.md"
				continue
			fi
			pub=$(echo "$rules" | awk -v t="$target" '$1 == "pub" && $2 == t { for (i = 3; i <= NF; i++) print $i }')
			if ! echo "$pub" | grep -qx "$header"; then
				echo "$rel:$line: \"$inc\" is internal to $target/; include its public header"
			fi
		done
	done
done >"${TMPDIR:-/tmp}/check_includes.$$"
if [ -s "${TMPDIR:-/tmp}/check_includes.$$" ]; then
	cat "${TMPDIR:-/tmp}/check_includes.$$"
	bad=1
fi
rm -f "${TMPDIR:-/tmp}/check_includes.$$"
[ "$bad" -eq 0 ] && echo "check_includes: every include follows the module graph"
exit "$bad"
