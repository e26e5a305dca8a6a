"""The component's entry: exports the operator's `trainer` module as the world's `train`/`predict`.

`chiron trainer build DIR` runs componentize-py with `-p DIR -p <this directory>` and this
module as the app: it imports `trainer` (DIR/trainer.py), which defines

    def train(config: chiron.TrainConfig) -> None
    def predict(x: chiron.Tensor) -> chiron.Tensor

A `ChironError` escaping either becomes the export's error result with its code; any other
exception propagates, so its traceback is printed to stderr and the instance traps.
"""

from __future__ import annotations

import wit_world
from wit_world.imports import tensor as _wt

import chiron
import trainer


class WitWorld(wit_world.WitWorld):
    """The world's exports, delegating to the operator's `trainer` module."""

    def train(self, config: wit_world.TrainConfig) -> None:
        """Runs `trainer.train` with the job's configuration."""
        try:
            trainer.train(chiron.TrainConfig.from_wit(config))
        except chiron.ChironError as e:
            raise e.to_err() from None

    def predict(self, input: _wt.Tensor) -> _wt.Tensor:
        """Runs `trainer.predict` on the (borrowed) input batch and hands back its result."""
        x = chiron.Tensor(input, _borrowed=True)
        try:
            out = trainer.predict(x)
            if not isinstance(out, chiron.Tensor):
                raise TypeError(f"predict must return a chiron.Tensor, not {type(out).__name__}")
            if out._borrowed:
                # The input is only borrowed; the world's result must be a tensor we own.
                out = out.detach()
            raw = out.raw
        except chiron.ChironError as e:
            raise e.to_err() from None
        finally:
            # The borrow ends with this call: forget it so nothing can use it afterwards.
            x._raw = None
        return raw
