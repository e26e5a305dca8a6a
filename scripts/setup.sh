#!/usr/bin/env bash
# Installs what Chiron's build, demo and tests need on a fresh Debian machine with Rust.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (each step checks first).
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; return 1; fi
}

apt_updated=0
apt_install() {
  # $1 = a file or command that proves the package is there; the rest = packages.
  local probe=$1; shift
  if [ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1; then return 0; fi
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

# Trainer modules are built for wasm32-unknown-unknown (no WASI) and componentised.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

# Real data for the tests (Fashion-MNIST, MIT licence): never committed, installed here.
if [ "${CHIRON_SETUP_DATA:-1}" = 1 ]; then
  apt_install /usr/share/datasets/fashion-mnist dataset-fashion-mnist
fi

# Python trainers are built with componentize-py (a PyPI wheel with CPython for wasm inside),
# in a virtual environment of the repository; `chiron trainer build` finds it through
# CHIRON_COMPONENTIZE_PY. Offline once installed.
CHIRON_TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"
CHIRON_COMPONENTIZE_PY="$CHIRON_TOOLS/python/bin/componentize-py"
if ! "$CHIRON_COMPONENTIZE_PY" --version 2>/dev/null | grep -q ' 0\.25\.1$'; then
  apt_install python3 python3
  # Debian's python3 creates virtual environments only with python3-venv (ensurepip) installed.
  if ! python3 -c 'import ensurepip' 2>/dev/null; then apt_install /nonexistent python3-venv; fi
  rm -rf "$CHIRON_TOOLS/python"
  python3 -m venv "$CHIRON_TOOLS/python"
  "$CHIRON_TOOLS/python/bin/pip" install -q --disable-pip-version-check componentize-py==0.25.1
fi
export CHIRON_COMPONENTIZE_PY
