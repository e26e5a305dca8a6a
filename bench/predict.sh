#!/usr/bin/env bash
# Prediction serving (issue 14), measured in one invocation, through the whole service: the host
# as `chiron-host` in a process of its own with its sim-TEE enclave, the owner's load generator
# (`chiron bench predict`) in another, RA-TLS through the host's relay, the example cnn trainer
# on Fashion-MNIST (/usr/share/datasets/fashion-mnist, installed by scripts/setup.sh).
#
#  1. Single-image latency on one reused connection, no fixed reply time: p50/p90/p99, with the
#     cores kept busy (`constant_cpu = true`, the default policy) and without.
#  2. Throughput of batch-64 requests (four connections), no fixed reply time, beside
#     PyTorch's eval-mode forward pass of the same network on the CPU (2 threads, batches of
#     64; bench/engine/torch_fmnist.py; skipped with SKIP_TORCH=1 or if PyTorch is not
#     installed in bench/engine/.venv — bench/engine.sh installs it).
#  3. With LOAD_SECONDS=N (e.g. 300): 64 clients for N s, errors and the enclave's and the
#     host's resident memory over time (the load generator's own memory is not in the host's).
#
# Writes the JSON lines to bench/out/predict.json. Exits 0 whether targets are met or not.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/bench/out"
mkdir -p "$out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

echo "== building chiron, chiron-enclave and chiron-host (release)" >&2
cargo build --release -j2 -p chiron-cli -p chiron-enclave -p chiron-host >&2
bin="$CARGO_TARGET_DIR/release"
bench() { "$bin/chiron" bench predict --host-process --latency-ms 0 --json "$@"; }
last_json() { tail -n 1; }

: >"$out/predict.json"
for cpu in false true; do
    echo "== 1. one image per request, one connection, constant_cpu = $cpu" >&2
    bench --batch 1 --concurrency 1 --requests "${REQUESTS:-2000}" --constant-cpu "$cpu" |
        tee /dev/stderr | last_json >>"$out/predict.json"
done

echo "== 2. 64 images per request, four connections" >&2
bench --batch 64 --concurrency 4 --requests "${BATCH_REQUESTS:-400}" --constant-cpu false |
    tee /dev/stderr | last_json >>"$out/predict.json"
service=$(tail -n 1 "$out/predict.json" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["results"][0]["inputs_per_s"])')
torch=""
python="$root/bench/engine/.venv/bin/python"
if [ "${SKIP_TORCH:-0}" != 1 ] && "$python" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "== 2. PyTorch forward pass, batches of 64, 2 threads" >&2
    torch=$("$python" bench/engine/torch_fmnist.py --epochs 0 --forward-batch 64 \
        --forward-seconds 20 | tail -n 1)
    echo "$torch" >>"$out/predict.json"
fi

if [ -n "${LOAD_SECONDS:-}" ]; then
    echo "== 3. 64 clients for $LOAD_SECONDS s" >&2
    bench --batch 1 --concurrency 64 --duration-seconds "$LOAD_SECONDS" |
        tee /dev/stderr | last_json >>"$out/predict.json"
fi

echo
printf 'batch 64 through the service: %.0f inputs/s\n' "$service"
if [ -n "$torch" ]; then
    python3 - "$service" "$torch" <<'EOF'
import json, sys
service, torch = float(sys.argv[1]), json.loads(sys.argv[2])
t = torch["forward_inputs_per_s"]
print(f"PyTorch {torch['torch']} forward pass, batch 64: {t:.0f} inputs/s; "
      f"service / PyTorch = {service / t:.2f}")
EOF
fi
echo "JSON lines: $out/predict.json"
