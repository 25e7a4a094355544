#!/bin/sh
# Runs every fuzz target under libFuzzer (clang, ASan+UBSan) for SECONDS each (default 60).
# Seeds come from tests/fuzz/corpus/<target>/; new inputs go to build-fuzz/corpus/<target>/,
# crashes to build-fuzz/crashes/. Copy a crash input into the seed folder to keep it as a
# regression test: `make check` replays every seed.
# FUZZ_JOBS targets run at a time (default 1; at most the machine's cores are useful).
# A summary line per target (executions, seconds) goes to build-fuzz/summary.txt. Exit
# status 1 when any target crashed, leaked or hit undefined behaviour.
#   usage: tools/fuzz.sh [SECONDS] [TARGET...]
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
jobs=${FUZZ_JOBS:-1}
out=build-fuzz
command -v clang >/dev/null || { echo "fuzz: clang is missing (tools/deps.sh --dev)" >&2; exit 1; }

san="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1"
make -s BUILD=$out CC=clang SAN=1 CFLAGS="-fsanitize=fuzzer-no-link" ${FUZZ_MAKEFLAGS:-} $out/liblatchkey.a
libs=$(pkg-config --libs libcurl jansson libsodium openssl yaml-0.1)
cflags=$(pkg-config --cflags libcurl jansson libsodium openssl yaml-0.1)
mkdir -p $out/fuzz $out/crashes
: > $out/summary.txt
for t in $targets; do
	# shellcheck disable=SC2086
	clang -std=c11 -D_GNU_SOURCE $san -fsanitize=fuzzer -I. $cflags -o $out/fuzz/$t \
		tests/fuzz/$t.c $out/liblatchkey.a $libs -lpthread
	mkdir -p $out/corpus/$t
done

# One target: its verdict in $out/$t.status (0 or 1).
run_one() {
	t=$1
	echo "fuzz: $t for ${secs}s"
	if $out/fuzz/$t -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
		-artifact_prefix=$out/crashes/$t- $out/corpus/$t tests/fuzz/corpus/$t \
		>$out/$t.log 2>&1; then
		runs=$(sed -n -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 \2/p' $out/$t.log | tail -n 1)
		echo "fuzz: $t: ${runs%% *} executions in ${runs##* } s"
		echo "$t ${runs%% *} ${runs##* }" >> $out/summary.txt
		echo 0 > $out/$t.status
	else
		echo "fuzz: $t FAILED; see $out/$t.log and $out/crashes/" >&2
		tail -n 30 $out/$t.log >&2
		echo 1 > $out/$t.status
	fi
}

running=0
for t in $targets; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait
status=0
for t in $targets; do
	[ "$(cat $out/$t.status 2>/dev/null || echo 1)" = 0 ] || status=1
done
exit $status
