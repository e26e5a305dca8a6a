"""Scalar helpers that reproduce Rust's `f32` arithmetic and `as` casts exactly.

Python floats are f64. The engine, the optimizer and the job's hyper-parameters are f32. Most
trainers never need this module, but a trainer that wants to make *exactly* the same calls as a
Rust trainer (same learning rates, same reported values) computes its f32 quantities with it:

>>> lr = config.hyper("lr", 3e-3)          # already an f32 value
>>> min_lr = f32(lr * f32(0.01))            # Rust: `lr * 0.01` on f32

A product, quotient, sum or difference of two f32 values computed in f64 and then rounded with
`f32` equals the f32 operation (f64 has more than twice f32's precision), so `f32(a op b)` is
Rust's `a op b` whenever `a` and `b` are f32 values.
"""

from __future__ import annotations

import math
import struct

__all__ = ["f32", "as_u32", "as_u64", "fmax", "fmin", "U32_MAX", "U64_MAX"]

#: Largest `u32`.
U32_MAX: int = 2**32 - 1
#: Largest `u64`.
U64_MAX: int = 2**64 - 1

_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """`x as f32`: rounds to the nearest f32 (ties to even); out of range gives ±infinity."""
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _saturating_int(x: float, top: int) -> int:
    if math.isnan(x):
        return 0
    if x <= 0.0:
        return 0
    if math.isinf(x) or x >= top:
        return top
    return int(x)  # truncates toward zero, as `as` does


def as_u32(x: float) -> int:
    """Rust's `x as u32` for a float: truncates toward zero, saturates, NaN gives 0."""
    return _saturating_int(x, U32_MAX)


def as_u64(x: float) -> int:
    """Rust's `x as u64` for a float: truncates toward zero, saturates, NaN gives 0."""
    return _saturating_int(x, U64_MAX)


def fmax(a: float, b: float) -> float:
    """Rust's `a.max(b)`: the larger value; if one is NaN, the other."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a >= b else b


def fmin(a: float, b: float) -> float:
    """Rust's `a.min(b)`: the smaller value; if one is NaN, the other."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a <= b else b
