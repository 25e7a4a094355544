#!/bin/sh
# Runs the test binaries given as arguments, each with a time limit, and prints one
# closing line: "N passed, N failed". Check suites count their checks; other binaries
# (fuzz corpus replays) count as one test each. Exit status 1 when anything failed.
# A test that could not run here (a tool missing) prints "SKIP: why" (tests/lib t_skip):
# those lines are counted and repeated at the end, so a skip never reads as a pass.
set -u
passed=0
failed=0
skipped=0
skips=""
bad=""
limit=${TEST_TIMEOUT:-600}
log_dir=${BUILD:-build}/test-logs
mkdir -p "$log_dir"
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}

for t in "$@"; do
	name="$(basename "$(dirname "$t")")/$(basename "$t")"
	mkdir -p "$log_dir/$(basename "$(dirname "$t")")"
	out="$log_dir/$name.log"
	start=$(date +%s)
	timeout -k 10 "$limit" "$t" >"$out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	nskip=$(grep -c '^SKIP: ' "$out")
	if [ "$nskip" -gt 0 ]; then
		skipped=$((skipped + nskip))
		skips="$skips$(grep '^SKIP: ' "$out" | sed "s|^SKIP: |  $name: |")
"
	fi
	line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$out" | tail -n 1)
	if [ -n "$line" ]; then
		checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
		fails=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
		errs=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
		nf=$((fails + errs))
		passed=$((passed + checks - nf))
		failed=$((failed + nf))
		if [ "$nf" -gt 0 ] || [ "$rc" -ne 0 ]; then
			[ "$nf" -eq 0 ] && failed=$((failed + 1))
			bad="$bad $name"
			echo "FAIL $name ($secs s): $line"
			grep -E ':[EF]:' "$out" | head -n 20
		else
			echo "ok   $name ($secs s): $checks checks"
		fi
	elif [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok   $name ($secs s)"
	else
		failed=$((failed + 1))
		bad="$bad $name"
		echo "FAIL $name ($secs s): exit $rc"
		tail -n 20 "$out"
	fi
done

[ -n "$bad" ] && echo "failed:$bad (logs in $log_dir)"
if [ "$skipped" -gt 0 ]; then
	echo "skipped here (counted as passed, but their checks did not run):"
	printf '%s' "$skips"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
