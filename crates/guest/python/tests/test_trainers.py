"""The Python `mlp` and `cnn` trainers make the same host calls as the Rust ones.

Each scenario of `harness.scenarios()` runs the Python trainer natively against the fake
engine and compares every host call (name and arguments, in order; handles are numbered in
creation order, so a tensor created in a different order shows up too), the resumed job's
calls, and the prediction's calls and output with `golden/<scenario>.json`, which
`record_golden.py` recorded by running the Rust trainers as components against the same
engine. Equal logs mean bit-identical models for the same seed.

Run from the repository root: `python3 -m unittest discover -s crates/guest/python/tests`.
"""

from __future__ import annotations

import unittest

import harness


def first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"call {i}:\n  rust:   {x}\n  python: {y}"
    return f"lengths differ: rust {len(a)} calls, python {len(b)}"


class TrainersMatchRust(unittest.TestCase):
    maxDiff = None

    def check(self, name: str) -> None:
        sc = {s.name: s for s in harness.scenarios()}[name]
        golden = harness.load_golden(sc)
        if golden is None:
            self.skipTest(f"no golden/{name}.json (run record_golden.py)")
        out = harness.normalise(harness.native(sc))
        self.assertEqual(sorted(out), sorted(golden), "different phases ran")
        for key in golden:
            if out[key] != golden[key]:
                if isinstance(golden[key], list) and isinstance(out[key], list):
                    self.fail(f"{name} {key}: {first_difference(golden[key], out[key])}")
                self.fail(f"{name} {key}: rust {golden[key]!r}, python {out[key]!r}")


def _add(name: str) -> None:
    setattr(TrainersMatchRust, f"test_{name}", lambda self: self.check(name))


for _sc in harness.scenarios():
    _add(_sc.name)


if __name__ == "__main__":
    unittest.main()
