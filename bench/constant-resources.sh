#!/usr/bin/env bash
# What holding the enclave's resources constant costs training (issue 12), measured in one
# invocation with bench/engine's reference CNN (engine-bench: native API and through the
# sandbox), three ways, interleaved round by round so drift hits all three alike:
#
#   baseline   glibc settings of the enclave before issue 12 (big mmap and trim thresholds:
#              freed memory still went back to the OS, RSS followed the trainer)
#   resident   chiron_proto::ENCLAVE_MALLOC_TUNABLES (one arena, no mmap, never trim: what
#              the enclave runs with now, its heap touched at start)
#   +cpu-fill  resident, plus one SCHED_IDLE busy loop per core for the whole run (`chrt --idle`;
#              what the enclave's CpuFill does while a job with constant_cpu runs)
#   confined   +cpu-fill, and the engine on one thread at nice 15 (RAYON_NUM_THREADS=1,
#              `nice -n 15`): how a constant_cpu job trains, on its one thread
#
# Prints the median train img/s of each and its ratio to the baseline (target: >= 0.95), and
# writes bench/out/constant-resources.json.
#
# Usage: bench/constant-resources.sh [--rounds N] [engine-bench options...]
#   (default 3 rounds of `engine-bench --reps 1 --steps 30`). Environment: CARGO_TARGET_DIR
#   (default: the repository's target/), RAYON_NUM_THREADS.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
rounds=3
if [ "${1:-}" = "--rounds" ]; then
    rounds=$2
    shift 2
fi
bench_args=("$@")
[ ${#bench_args[@]} -gt 0 ] || bench_args=(--reps 1 --steps 30)

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "== installing the wasm32-unknown-unknown target (trainer components)" >&2
    rustup target add wasm32-unknown-unknown >&2
fi
echo "== building engine-bench (release)" >&2
cargo build --release --manifest-path bench/engine/Cargo.toml >&2
bin="$CARGO_TARGET_DIR/release/engine-bench"

baseline_tunables="glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"
# Kept equal to chiron_proto::ENCLAVE_MALLOC_TUNABLES (crates/common/proto/src/lib.rs).
resident_tunables=$(sed -n '/ENCLAVE_MALLOC_TUNABLES: &str = /,/;$/p' crates/common/proto/src/lib.rs \
    | tr -d '\n' | sed 's/.*= "//; s/\\ *//g; s/";$//')
case "$resident_tunables" in
    glibc.malloc.arena_max=1:*) ;;
    *) echo "could not read ENCLAVE_MALLOC_TUNABLES: '$resident_tunables'" >&2; exit 1 ;;
esac

# What the enclave's CpuFill threads run as: SCHED_IDLE (`chrt --idle 0`); FILL=nice: nice 19.
spin="chrt --idle 0"
[ "${FILL:-idle}" = nice ] && spin="nice -n 19"
fill_pids=()
start_fill() {
    for _ in $(seq "$(nproc)"); do
        $spin sh -c 'while :; do :; done' &
        fill_pids+=($!)
    done
}
stop_fill() {
    [ ${#fill_pids[@]} -eq 0 ] || kill "${fill_pids[@]}" 2>/dev/null || true
    wait "${fill_pids[@]}" 2>/dev/null || true
    fill_pids=()
}
trap stop_fill EXIT

out=$(mktemp -d)
for round in $(seq "$rounds"); do
    for way in baseline resident cpu-fill confined; do
        echo "== round $round/$rounds: $way" >&2
        tunables=$resident_tunables
        [ "$way" = baseline ] && tunables=$baseline_tunables
        case "$way" in cpu-fill | confined) start_fill ;; esac
        if [ "$way" = confined ]; then
            GLIBC_TUNABLES=$tunables RAYON_NUM_THREADS=1 nice -n 15 "$bin" "${bench_args[@]}" \
                > "$out/$way.$round.json"
        else
            GLIBC_TUNABLES=$tunables "$bin" "${bench_args[@]}" > "$out/$way.$round.json"
        fi
        stop_fill
    done
done

mkdir -p bench/out
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ways = ["baseline", "resident", "cpu-fill", "confined"]
runs = {w: [json.load(open(f"{out}/{w}.{r}.json"))["train"] for r in range(1, rounds + 1)]
        for w in ways}
result = {}
for side in ["native_img_s", "sandbox_img_s"]:
    med = {w: statistics.median(r[side] for r in runs[w]) for w in ways}
    result[side] = {w: {"median": med[w], "runs": [r[side] for r in runs[w]],
                        "ratio": med[w] / med["baseline"]} for w in ways}
print(f"reference CNN training, median of {rounds} interleaved rounds (img/s; ratio to baseline)")
print(f"  {'':<12} {'native':>16} {'sandbox':>16}")
for w in ways:
    n, s = result["native_img_s"][w], result["sandbox_img_s"][w]
    print(f"  {w:<12} {n['median']:8.0f} ({n['ratio']:.3f}) {s['median']:8.0f} ({s['ratio']:.3f})")
# The target is for holding memory and CPU time constant; `confined` also gives up the job's
# own parallelism (one thread), reported beside it.
worst = min(result[side][w]["ratio"] for side in result for w in ["resident", "cpu-fill"])
print(f"worst ratio of resident / cpu-fill {worst:.3f}: target >= 0.95: "
      f"{'PASS' if worst >= 0.95 else 'FAIL'}")
with open("bench/out/constant-resources.json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print("wrote bench/out/constant-resources.json")
EOF
