#!/usr/bin/env bash
# Engine benchmarks (issue 3), measured in one invocation:
#
#  - the reference CNN (conv 3->32->64->128, 3x3 pad 1, each + ReLU + 2x2 max-pool; linear
#    2048->256->10; cross-entropy; SGD momentum 0.9, lr 0.01; batch 64 of random 32x32x3 u8
#    images, sealed and served through the data interface) trained natively through the
#    chiron-engine API and through the sandbox (bench/engine/guest-refcnn, a trainer component
#    making the same calls through the chiron:trainer world): train img/s both ways and the
#    sandbox overhead (target <= 2 %);
#  - prediction latency and throughput for batches of 1, 64 and 256, natively and through the
#    sandbox's run_predict (a fresh instance per call);
#  - the same model in PyTorch on the CPU (bench/engine/torch_ref.py, 2 threads): train and
#    inference img/s, and the engine/PyTorch training ratio (target >= 1.0).
#
# Medians over --reps repetitions (default 3). Prints a table and writes bench/out/engine.json.
# Exits 0 whether the targets are met or not; non-zero only if a step fails.
#
# Usage: bench/engine.sh [--steps N] [--warmup N] [--reps N] [--records N] [--predict-calls N]
#   The options go to both engine-bench and torch_ref.py. Environment: CARGO_TARGET_DIR
#   (default: the repository's target/), CARGO_BUILD_JOBS, SKIP_TORCH=1 (no PyTorch reference),
#   RAYON_NUM_THREADS (engine threads; default: all cores), GLIBC_TUNABLES (default: the malloc
#   settings chiron-host gives the enclave process; applied to both sides).
#
# PyTorch (CPU use only) is installed on first use into bench/engine/.venv with `pip install
# torch` from PyPI. The default Linux wheel depends on the CUDA libraries: ~3 GB to download,
# ~5.5 GB installed. It is never a test or CI dependency.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv="$root/bench/engine/.venv"

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "== installing the wasm32-unknown-unknown target (trainer components)" >&2
    rustup target add wasm32-unknown-unknown >&2
fi

echo "== building engine-bench (release)" >&2
cargo build --release --manifest-path bench/engine/Cargo.toml >&2
bin="$CARGO_TARGET_DIR/release/engine-bench"

torch_json=null
if [ "${SKIP_TORCH:-0}" != 1 ]; then
    if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
        echo "== installing PyTorch into $venv (pip install torch; ~3 GB download)" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --progress-bar off torch numpy >&2 || {
            echo "pip install torch failed: continuing without the PyTorch reference" >&2
        }
    fi
fi

# CPU time the whole machine spent busy (jiffies of /proc/stat: user nice system irq softirq
# steal), and what this script's children used: the difference is other work on the machine
# during the measurements.
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat 2>/dev/null || echo 0; }
# cutime + cstime of this shell (waited-for descendants), in seconds.
children_cpu() { sed 's/.*) //' "/proc/$$/stat" 2>/dev/null | awk '{ print ($14 + $15) / 100 }' || echo 0; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# The allocator settings chiron-host gives the enclave process (ENCLAVE_MALLOC_TUNABLES in
# crates/common/proto/src/lib.rs), for both sides of the comparison.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=18446744073709551615}"
busy_before=$(busy_jiffies)
ours_before=$(children_cpu)
wall_before=$(date +%s.%N)
echo "== engine-bench $* (builds the guest trainer, then trains and predicts both ways)" >&2
engine_json=$("$bin" "$@")

if [ "${SKIP_TORCH:-0}" != 1 ] && "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "== torch_ref.py $*" >&2
    torch_json=$("$venv/bin/python" bench/engine/torch_ref.py "$@")
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
others=$(awk -v b0="$busy_before" -v b1="$(busy_jiffies)" -v o0="$ours_before" \
    -v o1="$(children_cpu)" -v w0="$wall_before" -v w1="$(date +%s.%N)" -v n="$(nproc)" \
    'BEGIN { other = (b1 - b0) / 100 - (o1 - o0); if (other < 0) other = 0;
             printf "%.3f", other / ((w1 - w0) * n) }')

mkdir -p bench/out
python3 - "$engine_json" "$torch_json" "$load_before" "$load_after" "$others" <<'EOF'
import json, os, platform, sys

ours = json.loads(sys.argv[1])
torch = json.loads(sys.argv[2])
load_before, load_after = sys.argv[3], sys.argv[4]
others = float(sys.argv[5])
overhead_target = 0.02
torch_target = 1.0

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"

# Other work on the machine (a compiler, say) skews everything, PyTorch most: its OpenMP
# threads spin-wait for each other and lose badly when a core is taken away.
busy = others > 0.05

train = ours["train"]
cfg = ours["config"]
native, sandbox, overhead = train["native_img_s"], train["sandbox_img_s"], train["overhead"]
torch_train = torch["train_img_s"] if torch else None
torch_infer = torch["infer_img_s"] if torch else None
engine_vs_torch = native / torch_train if torch_train else None
native_infer = next(p["native_img_s"] for p in ours["predict"] if p["batch"] == 64)
infer_vs_torch = native_infer / torch_infer if torch_infer else None

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)

print()
print(f"reference CNN, batch {cfg['batch']}, {cfg['measured_steps']} steps after "
      f"{cfg['warmup_steps']} warm-up, median of {cfg['reps']}; {cpu_model()}, "
      f"{os.cpu_count()} CPUs, engine threads {cfg['engine_threads']}; other processes used "
      f"{others * 100:.0f} % of the CPUs meanwhile")
print(f"  {'training':<44} {'img/s':>10}")
print(f"  {'engine, native API':<44} {native:10.0f}")
print(f"  {'engine, through the sandbox':<44} {sandbox:10.0f}")
if torch:
    print(f"  {'PyTorch ' + torch['torch_version'] + ' (CPU, ' + str(torch['threads']) + ' threads)':<44} "
          f"{torch_train:10.0f}")
print(f"  {'prediction (fresh engine / instance per call)':<44} {'native ms':>10} {'sandbox ms':>11} "
      f"{'overhead':>9} {'native img/s':>13} {'sandbox img/s':>14} {'torch ms':>9}")
for p in ours["predict"]:
    t = next((q for q in torch["predict"] if q["batch"] == p["batch"]), None) if torch else None
    print(f"  {'batch ' + str(p['batch']):<44} {p['native_ms']:10.3f} {p['sandbox_ms']:11.3f} "
          f"{p['overhead'] * 100:8.1f}% {p['native_img_s']:13.0f} {p['sandbox_img_s']:14.0f} "
          f"{fmt(t and t['ms'], '9.3f'):>9}")
print(f"  fresh sandbox instance: {ours['fresh_instance_us']:.1f} us; final weights native vs "
      f"sandbox: max |diff| {train['max_abs_weight_diff']:.3g}")
overhead_ok = overhead <= overhead_target
runs = lambda key: ", ".join(f"{o * 100:+.1f}" for o in train[key])
print(f"sandbox overhead, training (steady-state img/s): {overhead * 100:+.2f} % "
      f"(pairs {runs('overhead_runs')}): target <= {overhead_target * 100:.0f} %: "
      f"{'PASS' if overhead_ok else 'FAIL'}")
print(f"  same from median step times: {train['median_step_overhead'] * 100:+.2f} % "
      f"(pairs {runs('median_step_overhead_runs')}); whole train call: "
      f"{train['whole_call']['overhead'] * 100:+.2f} %")
if engine_vs_torch is not None:
    print(f"engine vs PyTorch, training: {engine_vs_torch:.2f} x (target >= {torch_target:.1f} x: "
          f"{'PASS' if engine_vs_torch >= torch_target else 'FAIL'}); inference, batch 64: "
          f"{infer_vs_torch:.2f} x ({native_infer:.0f} vs {torch_infer:.0f} img/s)")
else:
    print("engine vs PyTorch: not measured (no PyTorch)")

if busy:
    print(f"WARNING: the machine was busy (other processes used {others * 100:.0f} % of the "
          "CPUs): these numbers are not comparable with a quiet run, the PyTorch ones least "
          "of all")

out = {
    "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "busy": busy,
                "other_processes_cpu_share": others,
                "load_average_before": load_before, "load_average_after": load_after},
    "train_img_s": {"native": native, "sandbox": sandbox, "torch": torch_train},
    "infer_img_s_batch64": {"native": native_infer, "torch": torch_infer},
    "sandbox_overhead": overhead,
    "sandbox_overhead_median_step": train["median_step_overhead"],
    "sandbox_overhead_target": overhead_target,
    "sandbox_overhead_pass": overhead_ok,
    "engine_over_torch_train": engine_vs_torch,
    "engine_over_torch_infer": infer_vs_torch,
    "engine_over_torch_target": torch_target,
    "engine_over_torch_pass": None if engine_vs_torch is None else engine_vs_torch >= torch_target,
    "engine_bench": ours,
    "torch": torch,
}
with open("bench/out/engine.json", "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print("wrote bench/out/engine.json")
EOF
