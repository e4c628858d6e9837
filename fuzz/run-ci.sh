#!/usr/bin/env bash
# short fuzz run for ci: every target for $FUZZ_SECONDS (default 45 s; four
# targets stay under 4 minutes of fuzzing), from the committed seed corpus,
# on a scratch copy so the tree stays clean. prints one PASS/FAIL line per
# target with its exec count; exit 1 on any crash.
# usage: fuzz/run-ci.sh [seconds]     longer runs: docs/security.md
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-${FUZZ_SECONDS:-45}}"
targets=(frame-roundtrip wire-roundtrip verify-pbt json-drt)
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED: fuzz: no nightly toolchain (rustup toolchain install nightly)"; exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz build >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "PASS: fuzz $t ($runs execs in ${secs}s)"
    else
        echo "FAIL: fuzz $t (log follows)"; tail -40 "$log"; fail=1
        # keep the reproducer where a developer finds it
        mkdir -p artifacts/"$t"; cp -r "$scratch/$t" artifacts/"$t"/corpus-at-failure 2>/dev/null || true
    fi
done
exit $fail
