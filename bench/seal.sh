#!/usr/bin/env bash
# Sealed-container throughput against OpenSSL's AES-256-GCM, measured in one invocation.
#
# Builds bench/seal (release), runs `openssl speed -evp aes-256-gcm` on 64 KiB blocks, runs
# seal-throughput (seal and verified-decrypt MB/s over ~256 MiB in memory), and prints the
# ratios against the target: verified decryption >= 0.8 x OpenSSL AES-256-GCM on this machine.
# Writes the same numbers to bench/out/seal.json. Exits 0 whether the target is met or not;
# non-zero only if a step fails.
#
# Usage: bench/seal.sh [extra seal-throughput arguments, e.g. --reps 9 --mib 512]
# MB = 10^6 bytes throughout.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
target_ratio=0.8
openssl_seconds=${OPENSSL_SECONDS:-3}

if ! command -v openssl >/dev/null 2>&1; then
    echo "openssl not found; install it with: apt-get install -y openssl" >&2
    if [ "$(id -u)" -eq 0 ]; then
        echo "running as root: installing openssl" >&2
        apt-get update -qq && apt-get install -y -qq openssl >/dev/null
    else
        exit 1
    fi
fi

echo "== building seal-throughput (release)" >&2
cargo build --release -j2 -p chiron-bench-seal >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/seal-throughput"

echo "== openssl speed -evp aes-256-gcm -bytes 65536 -seconds $openssl_seconds" >&2
openssl_out=$(openssl speed -evp aes-256-gcm -bytes 65536 -seconds "$openssl_seconds" 2>&1)
openssl_version=$(openssl version)
# The result line is `AES-256-GCM  5393940.48k`: the 65536-byte column in 1000s of bytes per
# second, so the number divided by 1000 is MB/s.
openssl_mb_s=$(awk '/^AES-256-GCM/ { v = $NF; sub(/k$/, "", v); printf "%.1f", v / 1000 }' \
    <<<"$openssl_out")
if [ -z "$openssl_mb_s" ]; then
    echo "could not find the AES-256-GCM line in the output of openssl speed:" >&2
    echo "$openssl_out" >&2
    exit 1
fi

echo "== seal-throughput --json $*" >&2
ours=$("$bin" --json "$@")

mkdir -p bench/out
python3 - "$openssl_mb_s" "$openssl_version" "$target_ratio" "$ours" <<'EOF'
import json, sys

openssl = float(sys.argv[1])
version = sys.argv[2]
target = float(sys.argv[3])
ours = json.loads(sys.argv[4])

seal, verify = ours["seal_mb_s"], ours["verify_mb_s"]
verify_ratio = verify / openssl
seal_ratio = seal / openssl
verdict = "PASS" if verify_ratio >= target else "FAIL"

rows = [
    ("openssl AES-256-GCM (64 KiB blocks)", f"{openssl:10.1f} MB/s", ""),
    ("chiron seal", f"{seal:10.1f} MB/s", f"{seal_ratio:5.2f} x openssl"),
    ("chiron verified decrypt", f"{verify:10.1f} MB/s", f"{verify_ratio:5.2f} x openssl"),
]
if "decrypt_mb_s" in ours:
    rows.append(("chiron chunk decrypt only", f"{ours['decrypt_mb_s']:10.1f} MB/s",
                 f"{ours['decrypt_mb_s'] / openssl:5.2f} x openssl"))
if "ring_open_mb_s" in ours:
    rows.append(("bare ring AES-256-GCM open", f"{ours['ring_open_mb_s']:10.1f} MB/s",
                 f"{ours['ring_open_mb_s'] / openssl:5.2f} x openssl"))
print()
print(f"{version}; {ours['bytes']} plaintext bytes, chunk size {ours['chunk_size']}, "
      f"best of {ours.get('reps', '?')}")
for name, value, ratio in rows:
    print(f"  {name:<38} {value}   {ratio}")
print(f"target: verified decrypt >= {target} x openssl: {verdict} ({verify_ratio:.2f})")

out = {
    "openssl_mb_s": openssl,
    "openssl_version": version,
    "seal_mb_s": seal,
    "verify_mb_s": verify,
    "verify_over_openssl": round(verify_ratio, 3),
    "seal_over_openssl": round(seal_ratio, 3),
    "target_ratio": target,
    "pass": verdict == "PASS",
    "chunk_size": ours["chunk_size"],
    "bytes": ours["bytes"],
    "seal_throughput": ours,
}
with open("bench/out/seal.json", "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print("wrote bench/out/seal.json")
EOF
