#!/usr/bin/env bash
# The main job: builds Chiron and runs `chiron demo` (the whole flow that exists, on the
# embedded UCI digits dataset, sim TEE). Extra arguments go to `chiron demo` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
CHIRON_SETUP_DATA=0 source scripts/setup.sh
cargo build --release -j2 -q -p chiron-cli
exec target/release/chiron demo "$@"
