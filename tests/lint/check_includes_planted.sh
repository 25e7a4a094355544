#!/bin/sh
# check_includes_planted.sh — proves check_includes.sh can fail: in a copy of the tree it
# plants an upward include (common/ including cli/) and an include of another module's
# internal header, and expects the check to name both, with file and line.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/docs/internals"
cp "$src/docs/internals/architecture.md" "$tmp/docs/internals/"
for d in common crypto http manifest sealing vault broker devserver cli; do
	[ -d "$src/$d" ] && cp -r "$src/$d" "$tmp/$d"
done
"$src/tests/lint/check_includes.sh" "$tmp" >/dev/null || {
	echo "the unchanged copy should pass"; exit 1; }

printf '#include "cli/commands.h"\n' >>"$tmp/common/buf.c"
line=$(wc -l <"$tmp/common/buf.c")
printf '#include "vault/client.h"\n' >>"$tmp/broker/render.c"
line2=$(wc -l <"$tmp/broker/render.c")
if out=$("$src/tests/lint/check_includes.sh" "$tmp"); then
	echo "check_includes.sh passed a tree with planted includes"; exit 1
fi
echo "$out" | grep -q "^common/buf.c:$line: common may not include cli/" || {
	echo "the upward include was not named: $out"; exit 1; }
echo "$out" | grep -q "^broker/render.c:$line2: \"vault/client.h\" is internal to vault/" || {
	echo "the internal include was not named: $out"; exit 1; }
echo "check_includes_planted: both planted includes were named"
