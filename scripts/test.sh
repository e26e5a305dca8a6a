#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of the workspace, including the ones
# on real data (installed by scripts/setup.sh; CHIRON_REQUIRE_REAL_DATA makes their absence a
# failure instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export CHIRON_REQUIRE_REAL_DATA=1 CHIRON_REQUIRE_WASM_TARGET=1 CHIRON_REQUIRE_PYTHON_TRAINERS=1

cargo fmt --all -- --check
# Lints as the code builds: clippy-driver wraps the workspace's own crates (what `cargo clippy`
# does), so dependencies are compiled once, not checked once and then built again — a separate
# `cargo clippy --all-targets` took 18 of a clean 2-core run's 46 minutes. The same variables
# stay set for the test runs below, which reuse these artifacts.
if ! rustup which clippy-driver >/dev/null 2>&1; then rustup component add clippy; fi
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings"
cargo build -j2 --workspace --all-targets -q
# The guest workspace (trainers, SDK, fixture guests): lint, and the committed test components
# must equal a fresh build of their sources (about a minute once the host build is done).
scripts/check-guests.sh
# The Python SDK against a recorded host (standard library only, a few seconds): the example
# Python trainers make the same engine calls, in the same order, as the Rust ones.
python3 -m unittest discover -s crates/guest/python/tests
# The owner's and operator's `chiron` (`--no-default-features`: no demo, cluster, bench or
# trainer test) must not link the enclave's crates or the host. Checked on the dependency
# graph: building that configuration recompiles ~200 dependencies with other features.
if cargo tree -q -p chiron-cli --no-default-features -e normal --prefix none \
    | grep -E '^chiron-(engine|sandbox|enclave|host) '; then
  echo "chiron-cli without its dev feature links the crates above" >&2
  exit 1
fi
if cargo nextest --version >/dev/null 2>&1; then
  # Profile `ci` (.config/nextest.toml): hung tests are killed, JUnit XML in target/nextest/ci.
  cargo nextest run -j2 --workspace --no-fail-fast --profile ci
  cargo test -j2 --workspace --doc -q
else
  cargo test -j2 --workspace --no-fail-fast
fi
# The enclave links chiron-attest without the `pccs` feature (no HTTP client); the workspace run
# above unifies features with the CLI, so check that build on its own too.
cargo test -j2 -p chiron-attest --test pccs -q
