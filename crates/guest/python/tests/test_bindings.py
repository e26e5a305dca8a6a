"""The fake bindings (`fake_wit`) have the generated bindings' names and signatures.

Skipped unless componentize-py is available (`target/pytools/venv/bin/componentize-py`, or
the `COMPONENTIZE_PY` environment variable): it generates the real `wit_world` from `wit/`,
and both are described in subprocesses (`describe_bindings.py`) and compared, so the native
tests cannot pass against a fake that the real world does not match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness


def componentize_py() -> str | None:
    path = os.environ.get("COMPONENTIZE_PY") or os.path.join(harness.REPO, "target", "pytools", "venv", "bin", "componentize-py")
    return path if os.path.exists(path) else shutil.which("componentize-py")


class BindingsMatchTheWorld(unittest.TestCase):
    def test_fake_matches_generated(self) -> None:
        tool = componentize_py()
        if tool is None:
            self.skipTest("componentize-py not found")
        script = os.path.join(harness.HERE, "describe_bindings.py")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [tool, "-q", "-d", os.path.join(harness.REPO, "wit"), "-w", "trainer", "bindings", tmp],
                check=True,
            )
            real = json.loads(subprocess.run([sys.executable, script, tmp], check=True, capture_output=True, text=True).stdout)
        fake = json.loads(
            subprocess.run(
                [sys.executable, script, os.path.join(harness.HERE, "fake_wit")], check=True, capture_output=True, text=True
            ).stdout
        )
        for module in real:
            for name, desc in real[module].items():
                with self.subTest(f"{module}.{name}"):
                    self.assertIn(name, fake[module], f"{module}.{name} missing from the fake")
                    got = fake[module][name]
                    if "class" in desc:
                        # The fake may add private helpers; every generated method must exist alike.
                        for method, params in desc["class"].items():
                            self.assertEqual(got["class"].get(method), params, f"{module}.{name}.{method}")
                    else:
                        self.assertEqual(got, desc)


if __name__ == "__main__":
    unittest.main()
