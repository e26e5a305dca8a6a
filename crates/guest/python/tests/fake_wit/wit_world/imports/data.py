"""Fake `wit_world.imports.data`."""

from dataclasses import dataclass
from typing import List, Optional, Tuple

from .. import _host as h
from .tensor import Tensor


@dataclass
class DataSchema:
    shape: List[int]
    classes: int
    splits: List[Tuple[str, int]]


@dataclass
class Augment:
    crop_padding: int
    horizontal_flip: bool


@dataclass
class Normalize:
    mean: List[float]
    std: List[float]


def schema() -> DataSchema:
    s = h.engine().schema()
    return DataSchema(list(s["shape"]), s["classes"], [tuple(x) for x in s["splits"]])


def shuffled(split: str, epoch: int) -> List[int]:
    return h.call(h.engine().shuffled, h.string(split), h.u32(epoch))


def _normalize(n: Normalize) -> dict:
    if type(n) is not Normalize:
        raise h.Trap("expected Normalize")
    return {"mean": h.lst(n.mean, h.f32), "std": h.lst(n.std, h.f32)}


def _augment(a: Augment) -> dict:
    if type(a) is not Augment:
        raise h.Trap("expected Augment")
    return {"crop_padding": h.u32(a.crop_padding), "horizontal_flip": h.boolean(a.horizontal_flip)}


def batch(split: str, indices: List[int], normalize: Optional[Normalize], augment: Optional[Augment]) -> Tuple[Tensor, Tensor]:
    x, y = h.call(
        h.engine().batch,
        h.string(split),
        h.lst(indices, h.u64),
        h.opt(normalize, _normalize),
        h.opt(augment, _augment),
    )
    return Tensor._wrap(x), Tensor._wrap(y)
