"""Learning-rate schedules, applied host-side at every `step`.

The optimizer is a host resource that computes its own rate, so a schedule is *given when the
optimizer is created* (`schedule=`) instead of wrapping it afterwards as in PyTorch; there is
no `scheduler.step()` to call. An optional linear warm-up from 0 (`warmup=` steps) comes first.

>>> opt = chiron.optim.SGD(net.parameters(), lr=0.1, momentum=0.9,
...                        schedule=CosineAnnealingLR(T_max=total_steps), warmup=500)
"""

from __future__ import annotations

from dataclasses import dataclass

from wit_world.imports import optim as _wo

from ..tensor import u64

__all__ = ["LRSchedule", "Constant", "StepLR", "CosineAnnealingLR"]


class LRSchedule:
    """Base class of the schedules the runtime implements."""

    def to_wit(self) -> _wo.Schedule:
        """The world's `schedule` variant."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(LRSchedule):
    """The base rate throughout (after any warm-up)."""

    def to_wit(self) -> _wo.Schedule:
        """The world's `constant`."""
        return _wo.Schedule_Constant()


@dataclass(frozen=True)
class StepLR(LRSchedule):
    """Multiplies the rate by `gamma` every `step_size` steps."""

    #: Steps between two decays.
    step_size: int
    #: Factor of each decay.
    gamma: float = 0.1

    def to_wit(self) -> _wo.Schedule:
        """The world's `step((every, gamma))`."""
        return _wo.Schedule_Step((u64(self.step_size), float(self.gamma)))


@dataclass(frozen=True)
class CosineAnnealingLR(LRSchedule):
    """Cosine from the base rate down to `eta_min` over `T_max` steps."""

    #: Steps of the whole cosine.
    T_max: int
    #: The final rate.
    eta_min: float = 0.0

    def to_wit(self) -> _wo.Schedule:
        """The world's `cosine((total, min-lr))`."""
        return _wo.Schedule_Cosine((u64(self.T_max), float(self.eta_min)))
