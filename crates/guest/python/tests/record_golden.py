"""Records `golden/<scenario>.json` by running the *Rust* trainers as components.

The stdlib tests (`test_trainers.py`) compare the Python trainers, run natively, against these
files: every host call in order with its arguments, the resumed job's calls, the prediction's
calls and output. Re-record them whenever the Rust `mlp` / `cnn` trainers, the Rust SDK or
`fake_engine.py` change:

    pip install wasmtime                      # wasmtime-py with component support (>= 50)
    python3 crates/guest/python/tests/record_golden.py \\
        --mlp crates/guest/target/wasm32-unknown-unknown/release/trainer_mlp.component.wasm \\
        --cnn /tmp/trainer_cnn.component.wasm

(A component from the core module: `wasm-tools component new trainer_cnn.wasm -o ...`.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from component_host import ComponentRunner  # noqa: E402


def dumps(out: dict) -> str:
    """JSON with one host call per line, so that a change reads as a small diff."""
    lines = ["{"]
    keys = list(out)
    for i, key in enumerate(keys):
        value = out[key]
        comma = "," if i + 1 < len(keys) else ""
        if key.endswith("_log"):
            calls = [json.dumps(call, separators=(",", ":")) for call in value]
            body = ",\n".join("    " + c for c in calls)
            lines.append(f"  {json.dumps(key)}: [\n{body}\n  ]{comma}" if calls else f"  {json.dumps(key)}: []{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    release = os.path.join(harness.REPO, "crates", "guest", "target", "wasm32-unknown-unknown", "release")
    parser.add_argument("--mlp", default=os.path.join(release, "trainer_mlp.component.wasm"))
    parser.add_argument("--cnn", default=os.path.join(release, "trainer_cnn.component.wasm"))
    parser.add_argument("scenarios", nargs="*", help="names (default: all)")
    args = parser.parse_args()
    runners = {}
    os.makedirs(harness.GOLDEN, exist_ok=True)
    for sc in harness.scenarios():
        if args.scenarios and sc.name not in args.scenarios:
            continue
        if sc.trainer not in runners:
            runners[sc.trainer] = ComponentRunner(getattr(args, sc.trainer))
        r = runners[sc.trainer]
        out = harness.normalise(harness.run_scenario(sc, r.train, r.predict))
        with open(harness.golden_path(sc), "w") as f:
            f.write(dumps(out))
        print(f"{sc.name}: {len(out['train_log'])} calls, result {out['train_result']}")


if __name__ == "__main__":
    main()
