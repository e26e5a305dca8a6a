"""Helpers image trainers share (the Rust SDK's `vision` module, call for call).

`image_shape` reads `[c, h, w]` from a shape, `channel_stats` measures per-channel
normalisation statistics on the `train` split, `evaluate` counts top-1 hits of a network on a
split, and `train_epoch` runs one epoch of classification training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import data, report
from .data import Augment, Batches, Normalize, Schema
from .errors import InvalidShape
from .nn import Module
from .numeric import f32, fmax
from .optim import Optimizer
from .tensor import Tensor

__all__ = ["PASS_BATCH", "image_shape", "channel_stats", "evaluate", "EpochStats", "train_epoch"]

#: Records per batch of the statistics and evaluation passes (no gradients: larger is cheaper).
PASS_BATCH: int = 256


def image_shape(shape: Sequence[int], skip: int = 0) -> Tuple[int, int, int]:
    """`(c, h, w)` of a record shape, or of a batch shape with `skip` leading axes.

    `InvalidShape` unless exactly three axes remain.
    """
    rest = tuple(shape)[skip:]
    if skip > len(tuple(shape)) or len(rest) != 3:
        raise InvalidShape()
    return rest  # type: ignore[return-value]


def _per_channel(t: Tensor) -> List[float]:
    # [n, c, h, w] → [c] by summing axis 0, then (what were) axes 2 and 3.
    return t.sum(0).sum(1).sum(1).to_list()


# Each batch's work runs in a function of its own, so that its tensors are released when it
# returns, before the next batch, as at the end of a Rust loop body (a loop variable would keep
# the last batch's tensors, and with them its autodiff graph, alive into the next one).


def _batch_channel_sums(idx: List[int]) -> Tuple[List[float], List[float]]:
    x, _labels = data.batch("train", idx, None, None)
    return _per_channel(x), _per_channel(x * x)


def channel_stats(schema: Schema, limit: int) -> Normalize:
    """Per-channel mean and standard deviation over (up to `limit` records of) `train`.

    Sums in f64 as the Rust SDK does; the standard deviation is at least 1e-3.
    """
    c, h, w = image_shape(schema.shape, 0)
    per_record = float(h) * float(w)
    sums = [0.0] * c
    sums_sq = [0.0] * c
    n = min(schema.records("train"), limit)
    for idx in Batches.over(range(n), PASS_BATCH, False):
        s, q = _batch_channel_sums(idx)
        for i, v in zip(range(c), s):
            sums[i] += v
        for i, v in zip(range(c), q):
            sums_sq[i] += v
    count = fmax(float(n) * per_record, 1.0)
    mean = [s / count for s in sums]
    std = [
        f32(fmax(math.sqrt(fmax(q / count - m * m, 0.0)), 1e-3)) for q, m in zip(sums_sq, mean)
    ]
    return Normalize([f32(m) for m in mean], std)


def evaluate(schema: Schema, net: Module, normalize: Normalize, split: str) -> Tuple[int, int]:
    """Correct top-1 predictions of `net` on `split` and its record count (in eval mode)."""
    correct = 0
    total = 0
    for idx in Batches.sequential(schema, split, PASS_BATCH):
        correct += _batch_correct(net, normalize, split, idx)
        total += len(idx)
    return correct, total


def _batch_correct(net: Module, normalize: Normalize, split: str, idx: List[int]) -> int:
    x, y = data.batch(split, idx, normalize, None)
    return net(x).correct(y)


@dataclass(frozen=True)
class EpochStats:
    """Loss and accuracy of one training epoch (f32 values)."""

    #: Mean training loss over the epoch's batches.
    loss: float
    #: Fraction of training records classified correctly (as the model was during the epoch).
    accuracy: float


def _train_step(
    net: Module, optimizer: Optimizer, normalize: Normalize, augment: Optional[Augment], idx: List[int]
) -> Tuple[float, int]:
    x, y = data.batch("train", idx, normalize, augment)
    logits = net(x)
    loss = logits.cross_entropy(y)
    loss.backward()
    optimizer.step()
    return loss.item(), logits.correct(y)


def train_epoch(
    net: Module,
    optimizer: Optimizer,
    normalize: Normalize,
    augment: Optional[Augment],
    epoch: int,
    batch_size: int,
    step: int,
    total: int,
) -> Tuple[EpochStats, int]:
    """One epoch of classification training on `train`; returns its stats and the new `step`.

    Seeded shuffle of `epoch`, full batches of `batch_size` (the last partial one dropped),
    normalised and optionally augmented host-side, cross-entropy, backward, `optimizer.step()`;
    reports progress as `step` of `total` after each batch. Call with `net` in training mode.
    """
    loss_sum = 0.0
    correct = 0
    seen = 0
    batches = 0
    for idx in Batches.shuffled("train", epoch, batch_size, True):
        loss, hits = _train_step(net, optimizer, normalize, augment, idx)
        loss_sum += loss
        correct += hits
        seen += len(idx)
        batches += 1
        step += 1
        report.progress(step, total)
    stats = EpochStats(
        loss=f32(loss_sum / float(max(batches, 1))),
        accuracy=f32(f32(float(correct)) / f32(float(max(seen, 1)))),
    )
    return stats, step
