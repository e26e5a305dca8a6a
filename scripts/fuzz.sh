#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a while. Not part of CI.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
#   targets: header (Header::decode; accepted input must re-encode to itself),
#            container (whole sealed files opened with the fixed fuzzing key),
#            roundtrip (seal a fuzzer-described dataset, read it all back, tamper one byte).
# Environment: FUZZ_SANITIZER=address|none (default address, falling back to none if an
# AddressSanitizer build is impossible here).
#
# Works on a stable toolchain: cargo-fuzz passes `-Zsanitizer=address` (and checks for nightly);
# RUSTC_BOOTSTRAP=1 makes stable rustc and cargo accept that flag, and stable ships the ASan
# runtime for x86_64-unknown-linux-gnu. With `FUZZ_SANITIZER=none` no -Z flag is used at all
# (the sancov instrumentation libFuzzer needs is plain -C flags).
#
# Crashes land in fuzz/artifacts/TARGET/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a TARGET fuzz/artifacts/TARGET/crash-...
# Exits 1 if any target found a crash, 0 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(header container roundtrip)
fi
sanitizer=${FUZZ_SANITIZER:-address}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked -j2
fi

# Seed corpora: small valid sealed files under the fuzzing key, and their headers. Built as an
# ordinary program (no fuzzing flags) before RUSTC_BOOTSTRAP is set.
echo "== writing seed corpora" >&2
cargo run --release -q -j2 --manifest-path fuzz/Cargo.toml --bin make_corpus -- fuzz/corpus

# Stable toolchain: let it accept cargo-fuzz's -Z flags. Harmless on nightly.
if ! rustc -V | grep -q -- '-nightly'; then
    export RUSTC_BOOTSTRAP=1
fi
# Cargo caches rustc's answer to its target probe in fuzz/target/.rustc_info.json without keying
# it on RUSTC_BOOTSTRAP, so one earlier run without it would keep failing with "the option `Z` is
# only accepted on the nightly compiler". Do not use the cache.
export CARGO_CACHE_RUSTC_INFO=0
export RUST_BACKTRACE=1

fuzz_flags=(-O -a -s "$sanitizer")
mkdir -p fuzz/artifacts
build_log=fuzz/artifacts/build.log
echo "== cargo fuzz build ${fuzz_flags[*]} (rustc $(rustc -V | cut -d' ' -f2), RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-unset})" >&2
if ! (cd fuzz && cargo fuzz build "${fuzz_flags[@]}") >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    if [ "$sanitizer" = none ]; then
        exit 1
    fi
    echo "== the $sanitizer-sanitizer build failed; retrying without a sanitizer" >&2
    sanitizer=none
    fuzz_flags=(-O -a -s none)
    (cd fuzz && cargo fuzz build "${fuzz_flags[@]}")
fi

declare -A outcome
found=0
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s (sanitizer: $sanitizer)" >&2
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/artifacts/$t.log"
    set +e
    (cd fuzz && cargo fuzz run "${fuzz_flags[@]}" "$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1
    rc=$?
    set -e
    tail -n 4 "$log" >&2
    if [ $rc -eq 0 ]; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
        outcome[$t]="ok: $runs executions, coverage ${cov:-?} edges, nothing found"
    else
        found=1
        crash=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
        outcome[$t]="FOUND A PROBLEM (exit $rc): ${crash:-see $log}"
    fi
done

echo
echo "fuzz summary (${secs}s per target, sanitizer: $sanitizer):"
for t in "${targets[@]}"; do
    echo "  $t: ${outcome[$t]}"
done
echo "logs: fuzz/artifacts/TARGET.log; corpora: fuzz/corpus/TARGET"
exit "$found"
