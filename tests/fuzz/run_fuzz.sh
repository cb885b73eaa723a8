#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Builds the libFuzzer targets with clang (a build directory of their own,
# -DFERRY_FUZZ=ON) and runs each for a while on its seed corpus; new inputs
# go to <build>/tests/fuzz/work/<target>/, crashes to
# <build>/tests/fuzz/crashes/<target>/. Exit status 1 when any target found a
# crash (or did not run). `make fuzz` calls this.
#
# usage: tests/fuzz/run_fuzz.sh [BUILD_DIR] [SECONDS_PER_TARGET]
#        (defaults: build-fuzz, $FUZZ_TIME or 20)
set -eu
build=${1:-build-fuzz}
secs=${2:-${FUZZ_TIME:-20}}
src=$(cd "$(dirname "$0")/../.." && pwd)
cc=${FUZZ_CC:-clang}

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFERRY_FUZZ=ON >/dev/null
cmake --build "$build" --target ferry_fuzz -j "$(nproc 2>/dev/null || echo 2)"

dir="$build/tests/fuzz"
status=0
summary=""
for exe in "$dir"/fuzz_*; do
    case "$exe" in *_replay) continue ;; esac
    [ -x "$exe" ] || continue
    t=${exe##*/fuzz_}
    mkdir -p "$dir/work/$t" "$dir/crashes/$t"
    log="$dir/$t.log"
    echo "== fuzz_$t for ${secs}s"
    # -timeout: one input may not take longer (a hang is a finding too).
    if "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/crashes/$t/" "$dir/work/$t" "$dir/corpus/$t" >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -40 "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    summary="$summary$(printf '%-14s %-7s %12s execs  %s' "$t" "$result" "${execs:-?}" "$cov")
"
done
printf '\n%s' "$summary"
exit $status
