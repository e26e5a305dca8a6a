"""The job's declared training configuration, as `train` receives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

from .numeric import f32

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """What the job declared: epochs, batch size and named hyper-parameters (f32 values)."""

    #: Epochs the job declared.
    epochs: int
    #: Batch size the job declared.
    batch_size: int
    #: Hyper-parameters from the operator's job description, `(name, value)` in job order.
    hyperparameters: Tuple[Tuple[str, float], ...] = ()

    @classmethod
    def from_wit(cls, config: Any) -> "TrainConfig":
        """From the world's `train-config` record (used by the component entry)."""
        return cls(config.epochs, config.batch_size, tuple((n, v) for n, v in config.hyper))

    def hyper(self, name: str, default: float) -> float:
        """The hyper-parameter `name`, or `default` when the job did not set it.

        Values are f32 (as Python floats): the job's value as given, or `default` rounded to
        f32, so the result is what Rust's `config.hyper(name, default)` returns.
        """
        for n, v in self.hyperparameters:
            if n == name:
                return f32(v)
        return f32(default)
