#!/usr/bin/env bash
# The guest workspace in CI (called by scripts/test.sh): clippy on the code that runs inside the
# sandbox (crates/guest: the SDK, trainers/, the fixture guests), then a fresh build of every
# prebuilt test component, which must equal the committed bytes: the sandbox and service tests
# run those files, so a source change without a rebuild would test stale code.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# Lint as `cargo clippy` does, for the target the guests run on (without the wrapper
# scripts/test.sh sets for the host workspace, which `cargo clippy` replaces with its own).
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo clippy -q -j2 \
  --manifest-path crates/guest/Cargo.toml --workspace \
  --release --target wasm32-unknown-unknown -- -D warnings
fixtures=crates/enclave/sandbox/tests/fixtures
"$fixtures/rebuild.sh" >/dev/null
if ! git diff --quiet -- "$fixtures/*.component.wasm"; then
  echo "These prebuilt components differ from a fresh build of their sources:" >&2
  git diff --stat -- "$fixtures/*.component.wasm" >&2
  echo "Commit the rebuilt files ($fixtures/rebuild.sh has just written them)." >&2
  exit 1
fi
echo "guest workspace: lint clean; $(ls "$fixtures"/*.component.wasm | wc -l) components match their sources"
