#!/usr/bin/env bash
# Distributed training benchmark (issue 6), in one invocation, all through the real CLI:
# `chiron cluster up --workers N --observe` (loopback, sim TEE) for each N, the operator
# registers the example trainer, the owner seals the dataset and submits a job whose policy
# has a [distributed] table, and the job runs to the end. Plus one single-enclave run (no
# [distributed] table) as the accuracy baseline.
#
# Reports, per worker count:
#  - bytes on the wire per step per worker (the workers→server link, both directions, TLS
#    records included, checkpoints and the join left out) against the ideal 2 × |params| × 4;
#  - time per step: the span of the step messages on that link ÷ the schedule's length;
#  - the test accuracy the trainer reported to the owner (its last test-accuracy metric), and
#    its difference from the single-enclave run.
#
# The global batch stays the single run's: each of N workers takes batch/N, so N workers make
# the same number of optimizer steps on the same number of samples per step.
#
# Usage: bench/distributed.sh [--dataset digits|fmnist] [--workers "1 2 4"] [--epochs E]
#                             [--batch B] [--wall-seconds S] [--no-single]
#   Every job takes exactly its wall budget (the runtime ends jobs only then: docs/service.md),
#   so `job_seconds` is the budget; the speed of training is `step_seconds`, measured on the
#   links. --wall-seconds (default 60 for digits, 600 for fmnist) must exceed the slowest run.
#   digits (default): the mlp trainer on the embedded UCI digits; fmnist: the cnn trainer on
#   Fashion-MNIST from /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist;
#   installed on first use). Environment: CARGO_TARGET_DIR, CHIRON_BIN_DIR (prebuilt chiron and
#   chiron-enclave: skips the build). Writes bench/out/distributed.json.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
dataset=digits
workers_list="1 2 4"
epochs=""
batch=""
wall=""
single=1
while [ $# -gt 0 ]; do
    case "$1" in
        --dataset) dataset=$2; shift 2 ;;
        --workers) workers_list=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --wall-seconds) wall=$2; shift 2 ;;
        --no-single) single=0; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -n "${CHIRON_BIN_DIR:-}" ]; then
    bin=$CHIRON_BIN_DIR
else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
    echo "== building chiron and chiron-enclave (release)" >&2
    cargo build --release -p chiron-cli -p chiron-enclave >&2
    bin=$CARGO_TARGET_DIR/release
fi
chiron="$bin/chiron"

work=$(mktemp -d)
cleanup() {
    [ -n "${cluster_pid:-}" ] && kill -INT "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

"$chiron" keygen --out "$work/owner.key" >/dev/null
case "$dataset" in
    digits)
        trainer=crates/enclave/sandbox/tests/fixtures/mlp.component.wasm
        epochs=${epochs:-20}; batch=${batch:-32}; blob_mib=4; wall=${wall:-60}
        "$chiron" dataset seal --format csv --no-header --label-column 64 --shape 1,8,8 \
            --test-fraction 0.2 --seed 42 --key "$work/owner.key" --out "$work/data.chd" \
            data/digits/digits.csv.gz >&2
        ;;
    fmnist)
        trainer=crates/enclave/sandbox/tests/fixtures/cnn.component.wasm
        # 824,554 parameters: a checkpoint with momentum, or the server's state, is ~7-10 MB.
        epochs=${epochs:-4}; batch=${batch:-64}; blob_mib=16; wall=${wall:-600}
        src=/usr/share/datasets/fashion-mnist
        if [ ! -d "$src" ]; then
            echo "== installing dataset-fashion-mnist (apt)" >&2
            sudo apt-get install -y dataset-fashion-mnist >&2 || apt-get install -y dataset-fashion-mnist >&2
        fi
        "$chiron" dataset seal --format idx --key "$work/owner.key" --out "$work/data.chd" "$src" >&2
        ;;
    *) echo "unknown dataset $dataset" >&2; exit 2 ;;
esac
# |parameters|: what the trainer's optimizer updates (one short native run of the trainer).
case "$dataset" in
    digits) probe="$work/data.chd" ;;
    fmnist)
        "$chiron" dataset seal --format idx --test-fraction 0.5 --seed 1 --key "$work/owner.key" \
            --out "$work/probe.chd" "$src/t10k-images-idx3-ubyte.gz" "$src/t10k-labels-idx1-ubyte.gz" >&2
        probe="$work/probe.chd" ;;
esac
parameters=$("$chiron" trainer test --trainer "$trainer" --data "$probe" --key "$work/owner.key" \
    --epochs 1 --json | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["parameters"])')
echo "== $parameters parameters: ideal bytes per step $((8 * parameters))" >&2
train_records=$("$chiron" dataset inspect "$work/data.chd" --json | python3 -c '
import json, sys
h = json.load(sys.stdin)
print(h["splits"]["train"]["records"])')

# The job policy for N workers (0: a single enclave). Every worker sends exactly max_steps
# step messages: one per step of its shard, so the schedule is as long as the training.
policy() {
    local n=$1 per_batch=$batch shard=$train_records steps
    if [ "$n" -gt 0 ]; then per_batch=$((batch / n)); shard=$((train_records / n)); fi
    steps=$((epochs * ((shard + per_batch - 1) / per_batch)))
    cat <<EOF
epochs = $epochs
batch_size = $per_batch
seed = 1
max_steps = $steps
wall_seconds = $wall
report_steps = $epochs
sealed_blob_mib = $blob_mib
metrics = ["test-accuracy"]
[predictions]
output = "label"
query_budget = 1000
rate_per_second = 100
EOF
    if [ "$n" -gt 0 ]; then printf '[distributed]\nworkers = %d\n' "$n"; fi
    echo "# steps=$steps"
}

run() {
    local n=$1 cluster_workers=$1 dir="$work/cluster-$1"
    [ "$n" -eq 0 ] && cluster_workers=1
    policy "$n" > "$work/policy-$n.toml"
    local steps
    steps=$(sed -n 's/^# steps=//p' "$work/policy-$n.toml")
    "$chiron" cluster up --workers "$cluster_workers" --dir "$dir" --observe \
        --api-listen 127.0.0.1:0 --enclave-listen 127.0.0.1:0 > "$work/cluster-$n.log" 2>&1 &
    cluster_pid=$!
    for _ in $(seq 300); do [ -f "$dir/client.toml" ] && break; sleep 0.1; done
    local connect="$dir/client.toml"
    local digest job start end
    digest=$("$chiron" trainer register --connect "$connect" --token-file "$work/op.token" "$trainer")
    job=$("$chiron" job submit --connect "$connect" --trainer "$digest" --data "$work/data.chd" \
        --key "$work/owner.key" --policy "$work/policy-$n.toml" --token-file "$work/owner.token")
    start=$(date +%s.%N)
    "$chiron" job release --connect "$connect" --job "$job" --token-file "$work/op.token" >/dev/null
    "$chiron" job status --connect "$connect" --job "$job" --token-file "$work/owner.token" --watch \
        > "$work/status-$n.txt"
    end=$(date +%s.%N)
    sleep 1.5  # links.json is rewritten every second
    kill -INT "$cluster_pid"; wait "$cluster_pid" || true; cluster_pid=
    python3 - "$n" "$steps" "$work/status-$n.txt" "$dir/links.json" "$start" "$end" \
        "$parameters" <<'PY' >> "$work/results.jsonl"
import json, re, sys
n, steps, status, links, start, end = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
parameters = int(sys.argv[7])
text = open(status).read()
if " ready " not in text:
    sys.exit(f"job with {n} workers did not finish: {text}")
acc = [float(m) for m in re.findall(r"test-accuracy\s+([0-9.]+)", text)]
out = {"workers": n, "steps": steps, "test_accuracy": acc[-1] if acc else None,
       "job_seconds": end - start}
if n > 0:
    conns = next(l for l in json.load(open(links))["links"] if l["link"] == "workers→server")["connections"]
    out["step_link_connections"] = len(conns)
    out["step_seconds"] = max(c["up"]["message_span_s"] for c in conns) / steps
    out["link_bytes_per_worker"] = sum(c["up"]["bytes"] + c["down"]["bytes"] for c in conns) / len(conns)
    # One step = the most frequent request plus the most frequent reply, as wire bytes (TLS
    # records, HTTP/2 frames, gRPC and protobuf framing included).
    per_step = [c["up"]["common_segments"][0]["bytes"] + c["down"]["common_segments"][0]["bytes"] for c in conns]
    out["wire_bytes_per_step"] = max(per_step)
    out["ideal_bytes_per_step"] = 8 * parameters
    out["wire_overhead"] = max(per_step) / (8 * parameters) - 1
print(json.dumps(out))
PY
}

: > "$work/results.jsonl"
if [ "$single" = 1 ]; then echo "== single enclave" >&2; run 0; fi
for n in $workers_list; do echo "== $n workers" >&2; run "$n"; done

mkdir -p bench/out
python3 - "$work/results.jsonl" "$dataset" "$epochs" "$batch" "$work/data.chd" "$chiron" <<'PY'
import json, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
dataset, epochs, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
single = next((r for r in rows if r["workers"] == 0), None)
print(f"distributed training, {dataset}, {epochs} epochs, global batch {batch}")
print(f"{'workers':>8} {'steps':>7} {'s/step':>8} {'wire B/step':>12} {'ideal':>10} {'overhead':>9} {'test acc':>9} {'vs single':>10} {'job s':>7}")
for r in rows:
    delta = "" if single is None or r["workers"] == 0 else f"{100 * (r['test_accuracy'] - single['test_accuracy']):+.2f} pt"
    wire = f"{r['wire_bytes_per_step']:>12} {r['ideal_bytes_per_step']:>10} {100 * r['wire_overhead']:>8.2f}%" if "wire_bytes_per_step" in r else f"{'':>12} {'':>10} {'':>9}"
    print(f"{r['workers'] or 'single':>8} {r['steps']:>7} {r.get('step_seconds', float('nan')):>8.4f} {wire} "
          f"{r['test_accuracy']:>9.4f} {delta:>10} {r['job_seconds']:>7.1f}")
json.dump({"dataset": dataset, "epochs": epochs, "global_batch": batch, "runs": rows},
          open("bench/out/distributed.json", "w"), indent=2)
PY
