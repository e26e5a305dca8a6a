"""Progress and metrics.

Progress goes (coarsened) to the operator; metrics go to the owner only, if its policy allows,
under names from a fixed list so that a name cannot carry data.

>>> chiron.report.progress(step, total)
>>> chiron.report.metric("train_loss", step, loss)      # or Metric.TRAIN_LOSS
"""

from __future__ import annotations

from enum import Enum
from typing import Union

from wit_world.imports import report as _wr

from .errors import InvalidArgument
from .numeric import f32
from .tensor import u64

__all__ = ["Metric", "progress", "metric"]


class Metric(str, Enum):
    """The fixed metric names."""

    TRAIN_LOSS = "train_loss"
    TRAIN_ACCURACY = "train_accuracy"
    TEST_LOSS = "test_loss"
    TEST_ACCURACY = "test_accuracy"
    LEARNING_RATE = "learning_rate"


def progress(step: int, total: int) -> None:
    """Progress through the declared budget: `step` of `total`."""
    _wr.progress(u64(step), u64(total))


def metric(name: Union[Metric, str], step: int, value: float) -> None:
    """A metric value at `step`, for the owner.

    `name` is a `Metric` or its value (`"train_loss"`, ...; `InvalidArgument` otherwise).
    `value` is sent as an f32 (rounded as Rust's `as f32`); it must be finite, or the run ends
    as the trainer's failure.
    """
    try:
        m = Metric(name)
    except ValueError:
        raise InvalidArgument() from None
    _wr.metric(_wr.MetricName[m.name], u64(step), f32(float(value)))
