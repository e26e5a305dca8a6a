"""Fake `wit_world.imports.report`."""

from enum import Enum

from .. import _host as h


class MetricName(Enum):
    TRAIN_LOSS = 0
    TRAIN_ACCURACY = 1
    TEST_LOSS = 2
    TEST_ACCURACY = 3
    LEARNING_RATE = 4


def progress(step: int, total: int) -> None:
    h.engine().progress(h.u64(step), h.u64(total))


def metric(name: MetricName, step: int, value: float) -> None:
    h.engine().metric(h.enum(name, MetricName), h.u64(step), h.f32(value))
