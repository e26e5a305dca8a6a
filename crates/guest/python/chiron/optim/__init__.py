"""Optimizers: the toolchain's, configured here and stepped host-side.

>>> opt = chiron.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
...                        weight_decay=5e-4, schedule=CosineAnnealingLR(total_steps))
>>> loss.backward()
>>> opt.step()          # consumes and clears the gradients: no zero_grad() needed

Defaults are the Rust SDK builders' (and PyTorch's): SGD without momentum, decay or warm-up
and a constant rate; Adam with betas (0.9, 0.999), eps 1e-8, no decay.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from wit_world.imports import optim as _wo

from ..errors import call
from ..tensor import Tensor, u64
from . import lr_scheduler
from .lr_scheduler import Constant, CosineAnnealingLR, LRSchedule, StepLR

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "lr_scheduler",
    "LRSchedule",
    "Constant",
    "StepLR",
    "CosineAnnealingLR",
]


def _lr_config(lr: float, schedule: Optional[LRSchedule], warmup: int) -> _wo.LrConfig:
    wit_schedule = (schedule or Constant()).to_wit()
    return _wo.LrConfig(float(lr), wit_schedule, u64(warmup))


def _param_list(params: Iterable[Tensor]) -> List[Tensor]:
    out = list(params)
    for p in out:
        if not isinstance(p, Tensor):
            raise TypeError("optimizer parameters must be chiron tensors (param groups are not supported)")
    return out


class Optimizer:
    """A live host optimizer over a list of parameters."""

    def __init__(self, raw: _wo.Optimizer, params: List[Tensor]) -> None:
        """Wraps a host optimizer (SDK-internal; use `SGD`, `Adam` or `AdamW`)."""
        self.raw: _wo.Optimizer = raw
        self._params = params

    def step(self) -> None:
        """Updates the parameters with the gradients of the last `backward`, then clears them."""
        call(self.raw.step)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the stored gradients (`step` already does; needed only to discard some)."""
        self.raw.zero_grad()

    def learning_rate(self) -> float:
        """The learning rate the next `step` will use (schedule and warm-up applied)."""
        return self.raw.learning_rate()

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        """PyTorch-style read-only view: one group with `params` and the current `lr`."""
        return [{"params": list(self._params), "lr": self.learning_rate()}]


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        *,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        schedule: Optional[LRSchedule] = None,
        warmup: int = 0,
    ) -> None:
        """SGD at base rate `lr` over `params`.

        `schedule` (default constant) follows a linear warm-up from 0 over `warmup` steps.
        """
        plist = _param_list(params)
        raw = call(
            _wo.Optimizer.sgd,
            [p.raw for p in plist],
            _lr_config(lr, schedule, warmup),
            _wo.SgdConfig(float(momentum), bool(nesterov), float(weight_decay)),
        )
        super().__init__(raw, plist)


class Adam(Optimizer):
    """Adam (L2 weight decay added to the gradient); see `AdamW` for decoupled decay."""

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        schedule: Optional[LRSchedule] = None,
        warmup: int = 0,
    ) -> None:
        """Adam at base rate `lr` over `params` (PyTorch's defaults).

        `schedule` (default constant) follows a linear warm-up from 0 over `warmup` steps.
        """
        plist = _param_list(params)
        beta1, beta2 = betas
        raw = call(
            _wo.Optimizer.adam,
            [p.raw for p in plist],
            _lr_config(lr, schedule, warmup),
            _wo.AdamConfig(float(beta1), float(beta2), float(eps), float(weight_decay), self._decoupled),
        )
        super().__init__(raw, plist)


class AdamW(Adam):
    """AdamW: Adam with weight decay decoupled from the gradient (PyTorch's default 0.01)."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        schedule: Optional[LRSchedule] = None,
        warmup: int = 0,
    ) -> None:
        """AdamW at base rate `lr` with decoupled decay `weight_decay`."""
        super().__init__(params, lr, betas, eps, weight_decay, schedule=schedule, warmup=warmup)
