"""Fake `wit_world.imports.nn`."""

from enum import Enum
from typing import List

from .. import _host as h
from .tensor import Tensor


class Init(Enum):
    ZEROS = 0
    ONES = 1
    KAIMING_UNIFORM = 2
    KAIMING_NORMAL = 3
    XAVIER_UNIFORM = 4
    XAVIER_NORMAL = 5
    BIAS_UNIFORM = 6


def parameter(shape: List[int], init: Init, fan_in: int, fan_out: int) -> Tensor:
    e = h.engine()
    return Tensor._wrap(h.call(e.parameter, h.lst(shape, h.u32), h.enum(init, Init), h.u32(fan_in), h.u32(fan_out)))


def buffer(shape: List[int], value: float) -> Tensor:
    return Tensor._wrap(h.call(h.engine().buffer, h.lst(shape, h.u32), h.f32(value)))


def backward(loss: Tensor) -> None:
    h.call(h.engine().backward, h.handle(loss, Tensor))
