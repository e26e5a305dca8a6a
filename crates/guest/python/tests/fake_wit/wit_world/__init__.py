"""Stand-in for the generated `wit_world` package (native tests only).

Same names, classes and signatures as `componentize-py -d wit -w trainer bindings`, but each
import calls `wit_world._host.ENGINE` (a `fake_engine.FakeEngine`) and checks its arguments the
way the component's runtime does (exact `list`/`tuple` types, ints for integer parameters,
f32 rounding for floats), so SDK bugs that would trap in the component fail here too.
"""

from abc import abstractmethod
from dataclasses import dataclass
from typing import List, Protocol, Tuple

from .imports import tensor


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    hyper: List[Tuple[str, float]]


class WitWorld(Protocol):
    @abstractmethod
    def train(self, config: TrainConfig) -> None:
        raise NotImplementedError

    @abstractmethod
    def predict(self, input: tensor.Tensor) -> tensor.Tensor:
        raise NotImplementedError
