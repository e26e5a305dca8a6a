"""Fake `wit_world.imports.model`."""

from typing import List, Tuple

from .. import _host as h
from .optim import Optimizer
from .tensor import Tensor


def _named(tensors: List[Tuple[str, Tensor]]) -> list:
    return h.lst(tensors, lambda p: h.tup(p, h.string, lambda t: h.handle(t, Tensor)))


def save(tensors: List[Tuple[str, Tensor]]) -> None:
    h.call(h.engine().save, _named(tensors))


def load() -> List[Tuple[str, Tensor]]:
    return [(n, Tensor._wrap(t)) for n, t in h.call(h.engine().load)]


def checkpoint(epochs_done: int, tensors: List[Tuple[str, Tensor]], optimizer: Optimizer) -> None:
    h.call(h.engine().checkpoint, h.u32(epochs_done), _named(tensors), h.handle(optimizer, Optimizer))


def resume(tensors: List[Tuple[str, Tensor]], optimizer: Optimizer) -> int:
    return h.call(h.engine().resume, _named(tensors), h.handle(optimizer, Optimizer))
