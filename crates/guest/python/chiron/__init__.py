"""`chiron`: the Python SDK operators write Chiron trainers with.

A Python trainer is a module `trainer.py` defining two functions:

    def train(config: chiron.TrainConfig) -> None: ...
    def predict(x: chiron.Tensor) -> chiron.Tensor: ...

`chiron trainer build DIR` bundles it with this package and CPython into a component of the
`chiron:trainer` world (with componentize-py). It runs inside the enclave's sandbox and sees
only that world and a virtual WASI with no files, network, clock or environment. Tensors live
in the host's trusted engine; a `Tensor` here is a *handle*, and every operation is one call
into the host, where the math runs natively. The API is a small PyTorch look-alike: `chiron.nn` (modules,
layers, `functional`), `chiron.optim` (host optimizers and schedules), `chiron.data` (schema,
shuffles, batches), `chiron.report` (progress, metrics), `chiron.model` (save, load,
checkpoint, resume) and `chiron.vision` (helpers image trainers share).

Errors are the world's fixed codes, raised as `ChironError` subclasses (no text crosses the
boundary). Each export runs in a fresh instance: nothing survives from `train` to `predict`
except the model `train` saved. Module-level code of `trainer.py` runs once, when the component
is *built* (CPython is pre-initialised then), so it must not call the host.
"""

from __future__ import annotations

from . import data, model, nn, numeric, optim, report, vision
from .config import TrainConfig
from .errors import (
    BudgetExhausted,
    ChironError,
    ErrorCode,
    InvalidArgument,
    InvalidShape,
    NotAllowed,
    OutOfRange,
    ResourceExhausted,
)
from .tensor import Tensor, cat, concat, full, ones, tensor, zeros

__all__ = [
    "Tensor",
    "tensor",
    "full",
    "zeros",
    "ones",
    "cat",
    "concat",
    "TrainConfig",
    "ErrorCode",
    "ChironError",
    "InvalidShape",
    "InvalidArgument",
    "ResourceExhausted",
    "BudgetExhausted",
    "NotAllowed",
    "OutOfRange",
    "data",
    "model",
    "nn",
    "numeric",
    "optim",
    "report",
    "vision",
]
