"""Argument checks and conversions between the fake bindings and the fake engine."""

import math
import operator
import struct
from enum import Enum
from typing import Any, Callable, List, Optional

from componentize_py_types import Err

#: The `fake_engine.FakeEngine` the imports call (set by the tests).
ENGINE: Any = None

_F32 = struct.Struct("<f")


class Trap(Exception):
    """What would trap the component: an argument the runtime cannot lower."""


def engine() -> Any:
    if ENGINE is None:
        raise Trap("no fake engine installed")
    return ENGINE


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Calls the engine, turning its `HostError` into the binding's `Err(ErrorCode)`."""
    from fake_engine import HostError

    from .imports.types import ErrorCode

    try:
        return fn(*args)
    except HostError as e:
        raise Err(ErrorCode[e.code.upper().replace("-", "_")]) from None


def f32(x: Any) -> float:
    """pyo3's f32 extraction: any float or int, then `as f32`."""
    if not isinstance(x, (int, float)):
        raise Trap(f"expected a float, got {type(x).__name__}")
    v = float(x)
    try:
        return _F32.unpack(_F32.pack(v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


def uint(x: Any, bits: int) -> int:
    if isinstance(x, float) or not hasattr(x, "__index__"):
        raise Trap(f"expected an int, got {type(x).__name__}")
    v = operator.index(x)
    if not 0 <= v < 2**bits:
        raise Trap(f"{v} out of range for u{bits}")
    return v


def u32(x: Any) -> int:
    return uint(x, 32)


def u64(x: Any) -> int:
    return uint(x, 64)


def s32(x: Any) -> int:
    if isinstance(x, float) or not hasattr(x, "__index__"):
        raise Trap(f"expected an int, got {type(x).__name__}")
    v = operator.index(x)
    if not -(2**31) <= v < 2**31:
        raise Trap(f"{v} out of range for s32")
    return v


def boolean(x: Any) -> bool:
    if not isinstance(x, (bool, int)):
        raise Trap(f"expected a bool, got {type(x).__name__}")
    return bool(x)


def string(x: Any) -> str:
    if not isinstance(x, str):
        raise Trap(f"expected a str, got {type(x).__name__}")
    return x


def lst(x: Any, elem: Callable[[Any], Any]) -> List[Any]:
    if not isinstance(x, list):
        raise Trap(f"expected a list, got {type(x).__name__}")
    return [elem(e) for e in x]


def tup(x: Any, *elems: Callable[[Any], Any]) -> tuple:
    if not isinstance(x, tuple) or len(x) != len(elems):
        raise Trap(f"expected a {len(elems)}-tuple, got {x!r}")
    return tuple(f(e) for f, e in zip(elems, x))


def opt(x: Any, elem: Callable[[Any], Any]) -> Optional[Any]:
    return None if x is None else elem(x)


def enum(x: Any, cls: type) -> str:
    if not isinstance(x, cls):
        raise Trap(f"expected {cls.__name__}, got {x!r}")
    assert isinstance(x, Enum)
    return x.name.lower().replace("_", "-")


def handle(x: Any, cls: type) -> int:
    if type(x) is not cls:
        raise Trap(f"expected a {cls.__name__} handle, got {type(x).__name__}")
    h = getattr(x, "handle", None)
    if h is None:
        raise Trap("use of a handle that was moved or dropped")
    return h
