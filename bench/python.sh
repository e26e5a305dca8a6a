#!/usr/bin/env bash
# Python trainers against Rust trainers (issue 16), in one invocation on one machine:
#
#  - training: the Python `cnn` (trainers/python/cnn) and the Rust `cnn` (trainers/cnn, the
#    committed component) trained alternately with `chiron trainer test` on the real
#    Fashion-MNIST (seed 1, batch 64); per repetition, seconds per optimizer step of each (the
#    trainers' own evaluation passes included, as both make the same ones) and the Python/Rust
#    ratio; the median step (time between progress reports, which a burst of other load
#    hardly moves); each step split into the trainer's own code and the engine calls (the
#    sandbox's test-mode clock), so what the language costs shows apart from the machine's
#    drift; the model digests of the two must be equal (bit-identical weights);
#  - what a CPython component costs the sandbox: component size, compile time (once per
#    registration) and a fresh instance (once per prediction request), Python and Rust.
#
# Medians over --reps (default 3) of --epochs (default 1) epochs each, and the ratio of the
# fastest run of each (drift only slows runs down). Prints a table and writes
# bench/out/python.json (python-threadsN.json with --threads N). Exits non-zero if a step fails or the digests differ.
#
# `--threads 1` runs the engine on one thread (RAYON_NUM_THREADS=1), as a confined job of the
# service (policy `constant_cpu`, the default) does; by default it uses every core.
#
# Usage: bench/python.sh [--epochs N] [--reps N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
epochs=1
reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --threads) export RAYON_NUM_THREADS=$2; shift 2 ;;
    *) echo "usage: bench/python.sh [--epochs N] [--reps N] [--threads N]" >&2; exit 2 ;;
  esac
done

echo "== building chiron (release)" >&2
cargo build --release -q -p chiron-cli >&2
chiron=target/release/chiron
mkdir -p bench/out
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building the Python cnn" >&2
python_cnn=$("$chiron" trainer build trainers/python/cnn | tail -n 1)
rust_cnn=crates/enclave/sandbox/tests/fixtures/cnn.component.wasm

echo "== sealing Fashion-MNIST" >&2
"$chiron" keygen --out "$work/k.key" >/dev/null
"$chiron" dataset seal --format idx --key "$work/k.key" --out "$work/fmnist.chd" \
  /usr/share/datasets/fashion-mnist >&2

run() { # $1 = component; prints the JSON line of `trainer test`
  "$chiron" trainer test --trainer "$1" --data "$work/fmnist.chd" --key "$work/k.key" \
    --epochs "$epochs" --batch-size 64 --seed 1 --json 2>/dev/null | tail -n 1
}

: >"$work/runs.jsonl"
for rep in $(seq 1 "$reps"); do
  # Alternate which goes first, so drift of the machine falls on both.
  if [ $((rep % 2)) = 1 ]; then order="rust python"; else order="python rust"; fi
  for kind in $order; do
    if [ "$kind" = rust ]; then c=$rust_cnn; else c=$python_cnn; fi
    echo "== rep $rep: $kind cnn, $epochs epoch(s)" >&2
    run "$c" | python3 -c "import json,sys; d=json.load(sys.stdin); d['kind']='$kind'; print(json.dumps(d))" \
      >>"$work/runs.jsonl"
  done
done

python3 - "$work/runs.jsonl" "$epochs" <<'EOF'
import json, os, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
epochs = int(sys.argv[2])
by = {k: [r for r in runs if r["kind"] == k] for k in ("rust", "python")}
step_ms = {k: [1e3 * r["train_seconds"] / r["steps"] for r in v] for k, v in by.items()}
ratios = [p / r for p, r in zip(step_ms["python"], step_ms["rust"])]
digests = {r["model_digest"] for r in runs}
out = {
    "engine_threads": os.environ.get("RAYON_NUM_THREADS", "all cores"),
    "epochs": epochs,
    "reps": len(ratios),
    "step_ms": {k: statistics.median(v) for k, v in step_ms.items()},
    "step_ms_runs": step_ms,
    "python_over_rust": statistics.median(ratios),
    "ratios": ratios,
    # The fastest run of each: this VM's drift only ever slows a run down, so the best runs
    # are the least disturbed pair.
    "python_over_rust_best": min(step_ms["python"]) / min(step_ms["rust"]),
    "bit_identical": len(digests) == 1,
    "test_accuracy": {k: v[0]["test_accuracy"] for k, v in by.items()},
    "component_bytes": {k: v[0]["component_bytes"] for k, v in by.items()},
    "compile_seconds": {k: statistics.median(r["compile_seconds"] for r in v) for k, v in by.items()},
    "fresh_instance_ms": {k: statistics.median(r["fresh_instance_ms"] for r in v) for k, v in by.items()},
    "predict_worst_ms_single": {k: statistics.median(r["predict_worst_ms_single"] for r in v) for k, v in by.items()},
    # The run's time split at the sandbox boundary, per step: the trainer's own code (what
    # the language costs) and the engine calls (the same work in both).
    "guest_ms_per_step": {k: statistics.median(r["guest_ms_per_step"] for r in v) for k, v in by.items()},
    "host_ms_per_step": {k: statistics.median(r["host_ms_per_step"] for r in v) for k, v in by.items()},
    "host_calls_per_step": {k: statistics.median(r["host_calls_per_step"] for r in v) for k, v in by.items()},
    "progress_interval_median_ms": {k: statistics.median(r["progress_interval_median_ms"] for r in v) for k, v in by.items()},
}
# What the Python code adds to a step, relative to the Rust step: the difference of guest
# time over the Rust run's whole step time (drift changes both runs' engine time, hardly this).
out["guest_overhead"] = (
    out["guest_ms_per_step"]["python"] - out["guest_ms_per_step"]["rust"]
) / out["step_ms"]["rust"]
out["python_over_rust_progress_interval"] = (
    out["progress_interval_median_ms"]["python"] / out["progress_interval_median_ms"]["rust"]
)
threads = os.environ.get("RAYON_NUM_THREADS")
json.dump(out, open(f"bench/out/python{'' if threads is None else '-threads' + threads}.json", "w"), indent=2)
print(f"{'':28}{'rust cnn':>12}{'python cnn':>12}")
for label, key, fmt in [
    ("ms per training step", "step_ms", "{:.2f}"),
    ("  in the trainer's code", "guest_ms_per_step", "{:.3f}"),
    ("  in engine calls", "host_ms_per_step", "{:.2f}"),
    ("  engine calls", "host_calls_per_step", "{:.1f}"),
    ("median step (progress) ms", "progress_interval_median_ms", "{:.2f}"),
    ("component MB", "component_bytes", None),
    ("compile s", "compile_seconds", "{:.2f}"),
    ("fresh instance ms", "fresh_instance_ms", "{:.3f}"),
    ("worst 1-input predict ms", "predict_worst_ms_single", "{:.2f}"),
    ("test accuracy", "test_accuracy", "{:.4f}"),
]:
    v = out[key]
    cells = [f"{v[k] / 1e6:.1f}" if fmt is None else fmt.format(v[k]) for k in ("rust", "python")]
    print(f"{label:28}{cells[0]:>12}{cells[1]:>12}")
print(f"engine threads: {out['engine_threads']}")
print(f"python/rust step time: {out['python_over_rust']:.4f} (per rep: {', '.join(f'{r:.4f}' for r in ratios)}; "
      f"best run over best run: {out['python_over_rust_best']:.4f})")
print(f"python/rust median step: {out['python_over_rust_progress_interval']:.4f}; "
      f"the Python code adds {100 * out['guest_overhead']:.2f} % of a Rust step")
print(f"bit-identical weights: {out['bit_identical']}")
sys.exit(0 if out["bit_identical"] else 1)
EOF
