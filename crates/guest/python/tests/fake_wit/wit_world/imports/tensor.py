"""Fake `wit_world.imports.tensor`."""

import weakref
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .. import _host as h


def _drop(handle: int) -> None:
    if h.ENGINE is not None:
        h.ENGINE.drop_tensor(handle)


class Tensor:
    """Fake `tensor` resource: `handle` and a finalizer that drops it, as componentize-py does."""

    @classmethod
    def _wrap(cls, handle: int) -> "Tensor":
        obj = cls.__new__(cls)
        obj.handle = handle
        obj.finalizer = weakref.finalize(obj, _drop, handle)
        return obj

    @classmethod
    def from_data(cls, shape: List[int], data: List[float]) -> "Tensor":
        e = h.engine()
        return cls._wrap(h.call(e.from_data, h.lst(shape, h.u32), h.lst(data, h.f32)))

    @classmethod
    def full(cls, shape: List[int], value: float) -> "Tensor":
        e = h.engine()
        return cls._wrap(h.call(e.full, h.lst(shape, h.u32), h.f32(value)))

    def shape(self) -> List[int]:
        return h.engine().shape(h.handle(self, Tensor))

    def item(self) -> float:
        return h.call(h.engine().item, h.handle(self, Tensor))

    def to_list(self) -> List[float]:
        return h.call(h.engine().to_list, h.handle(self, Tensor))

    def __enter__(self) -> "Tensor":
        return self

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        self.finalizer()


@dataclass
class Conv2dOptions:
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int


@dataclass
class Pool2dOptions:
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


def _t(x: Tensor) -> int:
    return h.handle(x, Tensor)


def _pair(x: Tuple[int, int]) -> List[int]:
    return list(h.tup(x, h.u32, h.u32))


def _new(handle: int) -> Tensor:
    return Tensor._wrap(handle)


def add(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().add, _t(a), _t(b)))


def sub(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().sub, _t(a), _t(b)))


def mul(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().mul, _t(a), _t(b)))


def div(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().div, _t(a), _t(b)))


def affine(a: Tensor, scale: float, shift: float) -> Tensor:
    return _new(h.call(h.engine().affine, _t(a), h.f32(scale), h.f32(shift)))


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().matmul, _t(a), _t(b)))


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    return _new(h.call(h.engine().linear, _t(x), _t(weight), h.opt(bias, _t)))


def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor], options: Conv2dOptions) -> Tensor:
    if type(options) is not Conv2dOptions:
        raise h.Trap("expected Conv2dOptions")
    o = {
        "stride": _pair(options.stride),
        "padding": _pair(options.padding),
        "dilation": _pair(options.dilation),
        "groups": h.u32(options.groups),
    }
    return _new(h.call(h.engine().conv2d, _t(x), _t(weight), h.opt(bias, _t), o))


def _pool(options: Pool2dOptions) -> dict:
    if type(options) is not Pool2dOptions:
        raise h.Trap("expected Pool2dOptions")
    return {"kernel": _pair(options.kernel), "stride": _pair(options.stride), "padding": _pair(options.padding)}


def max_pool2d(x: Tensor, options: Pool2dOptions) -> Tensor:
    return _new(h.call(h.engine().max_pool2d, _t(x), _pool(options)))


def avg_pool2d(x: Tensor, options: Pool2dOptions) -> Tensor:
    return _new(h.call(h.engine().avg_pool2d, _t(x), _pool(options)))


def adaptive_avg_pool2d(x: Tensor, output: Tuple[int, int]) -> Tensor:
    return _new(h.call(h.engine().adaptive_avg_pool2d, _t(x), h.tup(output, h.u32, h.u32)))


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor, running_var: Tensor, training: bool, momentum: float, eps: float) -> Tensor:
    return _new(
        h.call(
            h.engine().batch_norm,
            _t(x), _t(gamma), _t(beta), _t(running_mean), _t(running_var),
            h.boolean(training), h.f32(momentum), h.f32(eps),
        )
    )


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    return _new(h.call(h.engine().dropout, _t(x), h.f32(p), h.boolean(training)))


def relu(x: Tensor) -> Tensor:
    return _new(h.call(h.engine().relu, _t(x)))


def gelu(x: Tensor) -> Tensor:
    return _new(h.call(h.engine().gelu, _t(x)))


def sigmoid(x: Tensor) -> Tensor:
    return _new(h.call(h.engine().sigmoid, _t(x)))


def tanh(x: Tensor) -> Tensor:
    return _new(h.call(h.engine().tanh, _t(x)))


def softmax(x: Tensor, axis: int) -> Tensor:
    return _new(h.call(h.engine().softmax, _t(x), h.u32(axis)))


def log_softmax(x: Tensor, axis: int) -> Tensor:
    return _new(h.call(h.engine().log_softmax, _t(x), h.u32(axis)))


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    return _new(h.call(h.engine().cross_entropy, _t(logits), _t(labels)))


def mse(a: Tensor, b: Tensor) -> Tensor:
    return _new(h.call(h.engine().mse, _t(a), _t(b)))


def reshape(x: Tensor, shape: List[int]) -> Tensor:
    return _new(h.call(h.engine().reshape, _t(x), h.lst(shape, h.s32)))


def flatten(x: Tensor, start: int) -> Tensor:
    return _new(h.call(h.engine().flatten, _t(x), h.u32(start)))


def transpose(x: Tensor, axis0: int, axis1: int) -> Tensor:
    return _new(h.call(h.engine().transpose, _t(x), h.u32(axis0), h.u32(axis1)))


def concat(xs: List[Tensor], axis: int) -> Tensor:
    return _new(h.call(h.engine().concat, h.lst(xs, _t), h.u32(axis)))


def mean(x: Tensor, axis: Optional[int], keep: bool) -> Tensor:
    return _new(h.call(h.engine().mean, _t(x), h.opt(axis, h.u32), h.boolean(keep)))


def sum(x: Tensor, axis: Optional[int], keep: bool) -> Tensor:
    return _new(h.call(h.engine().sum, _t(x), h.opt(axis, h.u32), h.boolean(keep)))


def argmax(x: Tensor, axis: int) -> Tensor:
    return _new(h.call(h.engine().argmax, _t(x), h.u32(axis)))


def detach(x: Tensor) -> Tensor:
    return _new(h.call(h.engine().detach, _t(x)))


def normalize_channels(x: Tensor, mean: List[float], std: List[float]) -> Tensor:
    return _new(h.call(h.engine().normalize_channels, _t(x), h.lst(mean, h.f32), h.lst(std, h.f32)))
