"""The dataset, as the trainer may see it: its schema and batches by index.

Records are decrypted and assembled host-side; the trainer asks for indices and gets tensor
handles. Shuffles and augmentation come from the host's seeded generator, so a job is
reproducible from its seed.

>>> schema = chiron.data.schema()
>>> for idx in chiron.data.Batches.shuffled("train", epoch, 64, drop_last=True):
...     x, y = chiron.data.batch("train", idx)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

from wit_world.imports import data as _wd

from .errors import InvalidArgument, InvalidShape, call
from .tensor import Tensor, u32, u64

__all__ = ["Schema", "Normalize", "Augment", "schema", "shuffled", "batch", "Batches"]


@dataclass(frozen=True)
class Schema:
    """The declared schema: record shape, class count, splits (in storage order)."""

    #: Shape of one record, e.g. `(1, 28, 28)`.
    shape: Tuple[int, ...]
    #: Number of classes.
    classes: int
    #: Split names and record counts, in storage order.
    splits: Tuple[Tuple[str, int], ...]

    def records(self, split: str) -> int:
        """Number of records in `split` (0 when there is no such split)."""
        for name, n in self.splits:
            if name == split:
                return n
        return 0

    def features(self) -> int:
        """Elements per record (product of the shape): the input width of a tabular model.

        `InvalidShape` if it does not fit in a u32.
        """
        n = 1
        for d in self.shape:
            n *= d
            if n >= 2**32:
                raise InvalidShape()
        return n

    def batch_shape(self, n: int) -> Tuple[int, ...]:
        """The shape of a batch of `n` records: `(n, *shape)`."""
        return (n,) + self.shape


@dataclass(frozen=True)
class Normalize:
    """Per-channel normalisation applied host-side after scaling u8 data to [0, 1]."""

    mean: Sequence[float]
    std: Sequence[float]

    def to_wit(self) -> _wd.Normalize:
        """The world's `normalize` record."""
        return _wd.Normalize([float(m) for m in self.mean], [float(s) for s in self.std])


@dataclass(frozen=True)
class Augment:
    """Augmentation drawn host-side: random crop (zero-pad, crop back) and horizontal flip."""

    #: Zero-pad by this many pixels then crop back at a random offset (0 = off).
    crop_padding: int = 0
    #: Flip horizontally with probability 1/2.
    horizontal_flip: bool = False

    def to_wit(self) -> _wd.Augment:
        """The world's `augment` record."""
        return _wd.Augment(u32(self.crop_padding), bool(self.horizontal_flip))


def schema() -> Schema:
    """The dataset's declared schema."""
    s = _wd.schema()
    return Schema(tuple(s.shape), s.classes, tuple((name, n) for name, n in s.splits))


def shuffled(split: str, epoch: int) -> List[int]:
    """A deterministic permutation of the records of `split` for `epoch` (seeded by the job)."""
    return call(_wd.shuffled, split, u32(epoch))


def batch(
    split: str,
    indices: Sequence[int],
    normalize: Optional[Normalize] = None,
    augment: Optional[Augment] = None,
) -> Tuple[Tensor, Tensor]:
    """Features `[n, *shape]` and labels `[n]` (class indices as f32) of records `indices`.

    u8 data is scaled to [0, 1], then normalised per channel if `normalize` is given, then
    augmented if `augment` is given.
    """
    x, y = call(
        _wd.batch,
        split,
        [u64(i) for i in indices],
        None if normalize is None else normalize.to_wit(),
        None if augment is None else augment.to_wit(),
    )
    return Tensor(x), Tensor(y)


class Batches:
    """The index batches of one pass over a split: consecutive chunks of `batch_size` indices.

    `drop_last` leaves out a final short batch (keeps batch-norm statistics well defined).
    Iterating yields lists of indices; `len()` is the number of batches. The same chunks as
    the Rust SDK's `Batches`.
    """

    def __init__(self, indices: Sequence[int], batch_size: int, drop_last: bool = False) -> None:
        """Batches over the given indices (`InvalidArgument` if `batch_size` is 0)."""
        size = u32(batch_size)
        if size == 0:
            raise InvalidArgument()
        self.indices: List[int] = list(indices)
        self.batch_size: int = size
        self.drop_last: bool = drop_last

    @classmethod
    def over(cls, indices: Sequence[int], batch_size: int, drop_last: bool = False) -> "Batches":
        """Batches over the given indices (same as the constructor)."""
        return cls(indices, batch_size, drop_last)

    @classmethod
    def shuffled(cls, split: str, epoch: int, batch_size: int, drop_last: bool = False) -> "Batches":
        """One epoch over `split` in the host's shuffled order for `epoch`."""
        return cls(shuffled(split, epoch), batch_size, drop_last)

    @classmethod
    def sequential(cls, schema: Schema, split: str, batch_size: int) -> "Batches":
        """One pass over `split` in storage order (evaluation; the last batch may be short)."""
        return cls(range(schema.records(split)), batch_size, False)

    def __len__(self) -> int:
        """Number of batches this pass yields."""
        n = len(self.indices)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def num_batches(self) -> int:
        """Number of batches this pass yields (`len(self)`)."""
        return len(self)

    def __iter__(self) -> Iterator[List[int]]:
        """The batches, in order."""
        n, size = len(self.indices), self.batch_size
        for start in range(0, n, size):
            chunk = self.indices[start : start + size]
            if self.drop_last and len(chunk) < size:
                return
            yield chunk
