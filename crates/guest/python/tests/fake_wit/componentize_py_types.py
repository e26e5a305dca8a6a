"""Stand-in for componentize-py's generated `componentize_py_types` (native tests only)."""

from dataclasses import dataclass
from typing import Generic, TypeVar, Union

S = TypeVar("S")


@dataclass
class Some(Generic[S]):
    """The present case of a nested option."""

    value: S


T = TypeVar("T")


@dataclass
class Ok(Generic[T]):
    """The success case of a result."""

    value: T


E = TypeVar("E")


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    """The failure case of a result (raised by imports, raised by exports)."""

    value: E


Result = Union[Ok[T], Err[E]]
