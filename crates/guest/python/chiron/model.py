"""Saving the trained model (sealed by the runtime), loading it in prediction, checkpoints.

Tensors are given by name: a `Module` (its `named_tensors()`), a mapping name → tensor, or a
sequence of `(name, tensor)` pairs. Names are 1–64 characters of `[a-z0-9_.]` and unique.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Tuple, Union

from wit_world.imports import model as _wm

from .errors import call
from .nn import Module
from .optim import Optimizer
from .tensor import Tensor, u32

__all__ = ["NamedTensors", "save", "load", "checkpoint", "resume"]

#: What the functions here accept as named tensors.
NamedTensors = Union[Module, Mapping[str, Tensor], Iterable[Tuple[str, Tensor]]]


def _named(tensors: NamedTensors) -> List[Tuple[str, object]]:
    if isinstance(tensors, Module):
        pairs: Iterable[Tuple[str, Tensor]] = tensors.named_tensors()
    elif isinstance(tensors, Mapping):
        pairs = tensors.items()
    else:
        pairs = tensors
    return [(str(name), t.raw) for name, t in pairs]


def save(tensors: NamedTensors) -> None:
    """Saves the given named tensors (e.g. a module: parameters and buffers) as the job's model.

    Saving again replaces the model.
    """
    call(_wm.save, _named(tensors))


def load() -> Dict[str, Tensor]:
    """In prediction: the saved tensors by name, in the order they were saved."""
    return {name: Tensor(t) for name, t in call(_wm.load)}


def checkpoint(epochs_done: int, tensors: NamedTensors, optimizer: Optimizer) -> None:
    """At the end of an epoch: offers the whole training state as a checkpoint.

    `tensors` (every parameter and buffer, by name) and `optimizer` after `epochs_done`
    epochs. The runtime seals the latest offer on its own schedule so that an interrupted job
    resumes here (`resume`); in the operator's test mode it is checked and dropped.
    """
    call(_wm.checkpoint, u32(epochs_done), _named(tensors), optimizer.raw)


def resume(tensors: NamedTensors, optimizer: Optimizer) -> int:
    """Before the first epoch, with the model and optimizer built: restores the last checkpoint.

    Returns the epochs already done (0 on a fresh job, when nothing changes); on a resumed job
    `tensors` and `optimizer` now hold the checkpoint's state. Pass the same names, in the same
    order, as to `checkpoint`.
    """
    return call(_wm.resume, _named(tensors), optimizer.raw)
