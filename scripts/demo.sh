#!/usr/bin/env bash
# The main job: builds Chiron and runs `chiron demo` (host, sim enclave, owner, operator,
# training, predictions, on the
# embedded UCI digits dataset). Extra arguments go to `chiron demo` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
CHIRON_SETUP_DATA=0 source scripts/setup.sh
cargo build --release -j2 -q -p chiron-cli -p chiron-enclave -p chiron-host
exec target/release/chiron demo "$@"
