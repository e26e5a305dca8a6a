"""End to end: the trainers as real components, run by wasmtime against the fake engine.

Opt-in (slow: each component takes ~15 s to build and ~15 s to compile), and skipped unless
the `wasmtime` Python package (>= 50, component support) is installed:

    CHIRON_COMPONENT_TESTS=1 python3 -m unittest discover -s crates/guest/python/tests -k components

* `test_python_<trainer>`: builds `trainers/python/<trainer>` with componentize-py exactly as
  `chiron trainer build` does (from a copy of the sources, so no `__pycache__` lands in the
  tree), with and without `--stub-wasi`, runs every scenario in the component and compares
  with the golden logs of the Rust trainer.
* `test_rust_goldens_are_current`: reruns the Rust components (`CHIRON_RUST_MLP`,
  `CHIRON_RUST_CNN`, default `crates/guest/target/wasm32-unknown-unknown/release/
  trainer_<name>.component.wasm`) and checks that the golden files still describe them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unittest

import harness
from test_bindings import componentize_py

ENABLED = os.environ.get("CHIRON_COMPONENT_TESTS") == "1"
try:
    import wasmtime  # noqa: F401

    HAVE_WASMTIME = True
except ImportError:
    HAVE_WASMTIME = False


def build_python_component(trainer: str, out_dir: str, stub_wasi: bool) -> str:
    """componentize-py with `-p DIR -p <sdk>` and `chiron_entry`, from copies of both."""
    tool = componentize_py()
    if tool is None:
        raise unittest.SkipTest("componentize-py not found")
    src = os.path.join(out_dir, "src")
    app = os.path.join(src, trainer)
    sdk = os.path.join(src, "sdk")
    ignore = shutil.ignore_patterns("__pycache__", "tests")
    shutil.copytree(os.path.join(harness.REPO, "trainers", "python", trainer), app, ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(harness.SDK, sdk, ignore=ignore, dirs_exist_ok=True)
    out = os.path.join(out_dir, f"{trainer}{'-stub' if stub_wasi else ''}.wasm")
    cmd = [tool, "-q", "-d", os.path.join(harness.REPO, "wit"), "-w", "trainer", "componentize"]
    if stub_wasi:
        cmd.append("--stub-wasi")
    cmd += ["-p", app, "-p", sdk, "chiron_entry", "-o", out]
    subprocess.run(cmd, check=True, cwd=out_dir)
    return out


@unittest.skipUnless(ENABLED, "set CHIRON_COMPONENT_TESTS=1 to run the component tests")
@unittest.skipUnless(HAVE_WASMTIME, "needs the wasmtime Python package")
class Components(unittest.TestCase):
    maxDiff = None

    def compare(self, runner, trainer: str) -> None:
        from test_trainers import first_difference

        for sc in harness.scenarios():
            if sc.trainer != trainer:
                continue
            golden = harness.load_golden(sc)
            if golden is None:
                continue
            with self.subTest(sc.name):
                out = harness.normalise(harness.run_scenario(sc, runner.train, runner.predict))
                for key in golden:
                    if out.get(key) != golden[key]:
                        if isinstance(out.get(key), list):
                            self.fail(f"{sc.name} {key}: {first_difference(golden[key], out[key])}")
                        self.fail(f"{sc.name} {key}: golden {golden[key]!r}, component {out.get(key)!r}")

    def python_component(self, trainer: str) -> None:
        from component_host import ComponentRunner

        with tempfile.TemporaryDirectory() as tmp:
            for stub in (False, True):
                path = build_python_component(trainer, tmp, stub)
                self.compare(ComponentRunner(path), trainer)

    def test_python_mlp(self) -> None:
        self.python_component("mlp")

    def test_python_cnn(self) -> None:
        self.python_component("cnn")

    def test_rust_goldens_are_current(self) -> None:
        from component_host import ComponentRunner

        release = os.path.join(harness.REPO, "crates", "guest", "target", "wasm32-unknown-unknown", "release")
        ran = 0
        for trainer in ("mlp", "cnn"):
            path = os.environ.get(f"CHIRON_RUST_{trainer.upper()}") or os.path.join(
                release, f"trainer_{trainer}.component.wasm"
            )
            if not os.path.exists(path):
                continue
            self.compare(ComponentRunner(path), trainer)
            ran += 1
        if not ran:
            self.skipTest("no Rust trainer component found")


if __name__ == "__main__":
    unittest.main()
