"""Fake `wit_world.imports.optim`."""

import weakref
from dataclasses import dataclass
from typing import List, Tuple, Union

from .. import _host as h
from .tensor import Tensor


@dataclass
class SgdConfig:
    momentum: float
    nesterov: bool
    weight_decay: float


@dataclass
class AdamConfig:
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    decoupled: bool


@dataclass
class Schedule_Constant:
    pass


@dataclass
class Schedule_Step:
    value: Tuple[int, float]


@dataclass
class Schedule_Cosine:
    value: Tuple[int, float]


Schedule = Union[Schedule_Constant, Schedule_Step, Schedule_Cosine]


@dataclass
class LrConfig:
    base: float
    schedule: Schedule
    warmup: int


def _lr(lr: LrConfig) -> dict:
    if type(lr) is not LrConfig:
        raise h.Trap("expected LrConfig")
    s = lr.schedule
    if type(s) is Schedule_Constant:
        schedule: tuple = ("constant",)
    elif type(s) is Schedule_Step:
        schedule = ("step",) + h.tup(s.value, h.u64, h.f32)
    elif type(s) is Schedule_Cosine:
        schedule = ("cosine",) + h.tup(s.value, h.u64, h.f32)
    else:
        raise h.Trap(f"not a Schedule case: {s!r}")
    return {"base": h.f32(lr.base), "schedule": list(schedule), "warmup": h.u64(lr.warmup)}


def _drop(handle: int) -> None:
    if h.ENGINE is not None:
        h.ENGINE.drop_optimizer(handle)


class Optimizer:
    @classmethod
    def _wrap(cls, handle: int) -> "Optimizer":
        obj = cls.__new__(cls)
        obj.handle = handle
        obj.finalizer = weakref.finalize(obj, _drop, handle)
        return obj

    @classmethod
    def sgd(cls, params: List[Tensor], lr: LrConfig, config: SgdConfig) -> "Optimizer":
        if type(config) is not SgdConfig:
            raise h.Trap("expected SgdConfig")
        c = {"momentum": h.f32(config.momentum), "nesterov": h.boolean(config.nesterov), "weight_decay": h.f32(config.weight_decay)}
        ps = h.lst(params, lambda p: h.handle(p, Tensor))
        return cls._wrap(h.call(h.engine().sgd, ps, _lr(lr), c))

    @classmethod
    def adam(cls, params: List[Tensor], lr: LrConfig, config: AdamConfig) -> "Optimizer":
        if type(config) is not AdamConfig:
            raise h.Trap("expected AdamConfig")
        c = {
            "beta1": h.f32(config.beta1),
            "beta2": h.f32(config.beta2),
            "eps": h.f32(config.eps),
            "weight_decay": h.f32(config.weight_decay),
            "decoupled": h.boolean(config.decoupled),
        }
        ps = h.lst(params, lambda p: h.handle(p, Tensor))
        return cls._wrap(h.call(h.engine().adam, ps, _lr(lr), c))

    def step(self) -> None:
        h.call(h.engine().step, h.handle(self, Optimizer))

    def zero_grad(self) -> None:
        h.engine().zero_grad(h.handle(self, Optimizer))

    def learning_rate(self) -> float:
        return h.engine().learning_rate(h.handle(self, Optimizer))

    def __enter__(self) -> "Optimizer":
        return self

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        self.finalizer()
