"""Runs the Python trainers natively (CPython, fake `wit_world`) against `fake_engine.FakeEngine`.

Importing this module puts the fake bindings (`tests/fake_wit`) and the SDK (`crates/guest/python`)
first on `sys.path`. `scenarios()` lists the jobs the tests run, each with its dataset, job
configuration and, for a predict scenario, how to get the saved model.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(SDK, "..", "..", ".."))
GOLDEN = os.path.join(HERE, "golden")

for path in (SDK, os.path.join(HERE, "fake_wit"), HERE):
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)

from fake_engine import Dataset, FakeEngine  # noqa: E402


@dataclass
class Scenario:
    """One training job (then one prediction with its model) on a synthetic dataset."""

    name: str
    trainer: str
    shape: Tuple[int, ...]
    classes: int
    splits: List[Tuple[str, int]]
    epochs: int
    batch_size: int
    hyper: List[Tuple[str, float]] = field(default_factory=list)
    seed: int = 1
    #: `(epochs_done)`: resume from the checkpoint a plain run offered after that many epochs.
    resume_after: Optional[int] = None
    predict_rows: int = 5

    def dataset(self) -> Dataset:
        return Dataset(self.shape, self.classes, self.splits)


def scenarios() -> List[Scenario]:
    """The jobs compared against the Rust trainers (small enough for a pure-Python engine)."""
    return [
        # mlp, Adam, no validation (split smaller than validate_from): all epochs.
        Scenario("mlp_adam", "mlp", (2, 3), 3, [("train", 40), ("test", 10)], 3, 8, [("hidden1", 8.0), ("hidden2", 4.0)]),
        # mlp, SGD with a short last batch, a learning rate and decay from the job.
        Scenario(
            "mlp_sgd",
            "mlp",
            (6,),
            4,
            [("train", 37), ("test", 9)],
            2,
            10,
            [("sgd", 1.0), ("lr", 0.1), ("weight_decay", 0.0005), ("hidden1", 6.0), ("hidden2", 5.0)],
        ),
        # mlp with validation and early stopping (validate_from at its minimum of 10).
        Scenario(
            "mlp_early_stop",
            "mlp",
            (4,),
            3,
            [("train", 50), ("test", 12)],
            8,
            8,
            [("validate_from", 10.0), ("patience", 2.0), ("hidden1", 5.0), ("hidden2", 4.0), ("lr", 0.5)],
        ),
        # The same, with a learning rate that makes the validation loss rise: stops early and
        # saves the weights (and reports the test accuracy) of an earlier epoch.
        Scenario(
            "mlp_early_stop_break",
            "mlp",
            (4,),
            3,
            [("train", 50), ("test", 12)],
            10,
            8,
            [("validate_from", 10.0), ("patience", 2.0), ("hidden1", 5.0), ("hidden2", 4.0), ("lr", 5.0)],
        ),
        # mlp resumed after one epoch of three.
        Scenario("mlp_resume", "mlp", (2, 3), 3, [("train", 40), ("test", 10)], 3, 8, [("hidden1", 8.0), ("hidden2", 4.0)], resume_after=1),
        # mlp without a test split.
        Scenario("mlp_no_test", "mlp", (5,), 2, [("train", 20)], 2, 6, [("hidden1", 4.0), ("hidden2", 3.0)]),
        # A job error: batch size 0 (`invalid-argument` once the first epoch starts).
        Scenario("mlp_batch_zero", "mlp", (3,), 2, [("train", 10)], 1, 0),
        # A job error: flat records given to the image trainer (`invalid-shape`).
        Scenario("cnn_flat_records", "cnn", (6,), 2, [("train", 10)], 1, 4),
        # cnn on one-channel 8×8 images: one block, no augmentation, dropout; 21 steps, so
        # one of warm-up.
        Scenario("cnn_gray", "cnn", (1, 8, 8), 3, [("train", 12), ("test", 5)], 7, 4, [("hidden", 8.0)]),
        # cnn on three-channel 8×8 images: augmentation on by default, a few stats records.
        Scenario("cnn_rgb", "cnn", (3, 8, 8), 2, [("train", 10), ("test", 3)], 2, 4, [("hidden", 6.0), ("stats_records", 7.0), ("dropout", 0.5)]),
        # cnn resumed after one epoch of two.
        Scenario("cnn_resume", "cnn", (1, 8, 8), 3, [("train", 12), ("test", 5)], 2, 4, [("hidden", 8.0)], resume_after=1),
    ]


# --- native runs ---

_loaded: Dict[str, Any] = {}


def world(trainer: str) -> Any:
    """A `chiron_entry.WitWorld` over `trainers/python/<trainer>/trainer.py`."""
    path = os.path.join(REPO, "trainers", "python", trainer, "trainer.py")
    spec = importlib.util.spec_from_file_location("trainer", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["trainer"] = module
    spec.loader.exec_module(module)
    import chiron_entry

    entry = importlib.reload(chiron_entry)
    return entry.WitWorld()


def _install(engine: Optional[FakeEngine]) -> None:
    from wit_world import _host

    _host.ENGINE = engine


def native_train(trainer: str, engine: FakeEngine, epochs: int, batch_size: int, hyper: List[Tuple[str, float]]) -> Optional[str]:
    """Runs `train` of the Python trainer natively; None or the error code's name."""
    import wit_world
    from componentize_py_types import Err

    w = world(trainer)
    _install(engine)
    try:
        # The world's hyper-parameters are f32: round as the component's runtime would.
        hyper = [(n, struct.unpack("<f", struct.pack("<f", v))[0]) for n, v in hyper]
        w.train(wit_world.TrainConfig(epochs, batch_size, hyper))
        return None
    except Err as e:
        return e.value.name.lower().replace("_", "-")
    finally:
        gc.collect()
        _install(None)


def native_predict(trainer: str, engine: FakeEngine, input_handle: int) -> Any:
    """Runs `predict` of the Python trainer natively; the result's handle or error name."""
    from componentize_py_types import Err
    from wit_world.imports import tensor

    w = world(trainer)
    _install(engine)
    try:
        x = tensor.Tensor.__new__(tensor.Tensor)
        x.handle = input_handle  # a borrow: no finalizer
        out = w.predict(x)
        out.finalizer.detach()  # ownership passes to the host
        return out.handle
    except Err as e:
        return e.value.name.lower().replace("_", "-")
    finally:
        gc.collect()
        _install(None)


# --- one scenario, whatever runs the trainer ---


def stats(engine: FakeEngine) -> Dict[str, int]:
    """How the run used the engine: most live tensors, largest graph, graph sweeps.

    Equal numbers mean the trainer also released its tensors at the same points (a Python
    reference kept past the Rust drop point shows up here, not in the call log).
    """
    return {"live_max": engine.live_max, "graph_max": engine.graph_max, "sweeps": engine.sweeps}


def run_scenario(sc: Scenario, train, predict) -> Dict[str, Any]:
    """Runs `sc` with `train(engine, epochs, batch, hyper)` / `predict(engine, handle)`.

    Returns the call logs, results and `stats` of: the training job, the resumed job (if
    any) and a prediction with the trained model on the first `predict_rows` test (or
    train) records.
    """
    out: Dict[str, Any] = {}
    engine = FakeEngine(sc.dataset(), seed=sc.seed)
    out["train_result"] = train(engine, sc.epochs, sc.batch_size, sc.hyper)
    out["train_log"] = engine.log
    out["train_stats"] = stats(engine)
    saved = engine.result
    if sc.resume_after is not None:
        state = dict(engine.checkpoints)[sc.resume_after]
        resumed = FakeEngine(sc.dataset(), seed=sc.seed, resume=(sc.resume_after, state))
        out["resume_result"] = train(resumed, sc.epochs, sc.batch_size, sc.hyper)
        out["resume_log"] = resumed.log
        out["resume_stats"] = stats(resumed)
    if saved is not None:
        p = FakeEngine(sc.dataset(), phase="predict", seed=sc.seed, saved=saved)
        split = "test" if any(n == "test" for n, _ in sc.splits) else "train"
        rows = min(sc.predict_rows, dict(sc.splits)[split])
        p.phase = "train"
        x, _ = p.batch(split, list(range(rows)), None, None)
        p.phase = "predict"
        p.log.clear()
        handle = predict(p, x)
        out["predict_log"] = p.log
        out["predict_stats"] = stats(p)
        out["predict_output"] = (
            [list(p.tensors[handle].shape), p.tensors[handle].data] if isinstance(handle, int) else handle
        )
    return out


def native(sc: Scenario) -> Dict[str, Any]:
    """`run_scenario` with the Python trainer run natively."""
    return run_scenario(
        sc,
        lambda e, ep, bs, hy: native_train(sc.trainer, e, ep, bs, hy),
        lambda e, h: native_predict(sc.trainer, e, h),
    )


def normalise(obj: Any) -> Any:
    """JSON round trip (tuples become lists) so live runs compare equal to stored ones."""
    return json.loads(json.dumps(obj))


def golden_path(sc: Scenario) -> str:
    return os.path.join(GOLDEN, f"{sc.name}.json")


def load_golden(sc: Scenario) -> Optional[Dict[str, Any]]:
    try:
        with open(golden_path(sc)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
