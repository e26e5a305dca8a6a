#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of the workspace, including the ones
# on real data (installed by scripts/setup.sh; CHIRON_REQUIRE_REAL_DATA makes their absence a
# failure instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export CHIRON_REQUIRE_REAL_DATA=1 CHIRON_REQUIRE_WASM_TARGET=1

cargo fmt --all -- --check
cargo clippy -j2 --workspace --all-targets -q -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -j2 --workspace --no-fail-fast
  cargo test -j2 --workspace --doc -q
else
  cargo test -j2 --workspace --no-fail-fast
fi
# The enclave links chiron-attest without the `pccs` feature (no HTTP client); the workspace run
# above unifies features with the CLI, so check that build on its own too.
cargo test -j2 -p chiron-attest --test pccs -q
