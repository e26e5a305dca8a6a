"""Prints a JSON description of a `wit_world` package: names, signatures, fields, members.

`python3 describe_bindings.py DIR` describes the `wit_world` found first in DIR; used by
`test_bindings.py` to check that the fake bindings (`fake_wit`) match the generated ones.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import sys

MODULES = ["wit_world", *(f"wit_world.imports.{m}" for m in ("types", "tensor", "nn", "optim", "data", "report", "model"))]


def describe_callable(fn: object) -> list:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [p.name for p in sig.parameters.values()]


def describe(module_name: str) -> dict:
    m = importlib.import_module(module_name)
    out: dict = {}
    for name, obj in vars(m).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isclass(obj):
            if issubclass(obj, enum.Enum):
                out[name] = {"enum": [(e.name, e.value) for e in obj]}
            elif dataclasses.is_dataclass(obj):
                out[name] = {"record": [f.name for f in dataclasses.fields(obj)]}
            else:
                methods = {}
                for mname, member in vars(obj).items():
                    if mname.startswith("_") and mname not in ("__enter__", "__exit__"):
                        continue
                    if isinstance(member, classmethod):
                        methods[mname] = ["classmethod", *describe_callable(member.__func__)]
                    elif inspect.isfunction(member):
                        methods[mname] = describe_callable(member)
                out[name] = {"class": methods}
        elif inspect.isfunction(obj):
            out[name] = {"function": describe_callable(obj)}
    return out


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    print(json.dumps({m: describe(m) for m in MODULES}, indent=1, sort_keys=True))
