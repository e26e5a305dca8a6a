"""The world's fixed error codes as Python exceptions.

Every host call can fail with one of six codes and nothing more (no host text crosses the
boundary). The SDK raises them as `ChironError` subclasses, one per code; `error.code` is the
world's `ErrorCode`. A trainer may catch them, or let them propagate: the component entry turns
an uncaught `ChironError` into the export's error result with the same code. Any other uncaught
exception traps the instance (its traceback goes to stderr).
"""

from __future__ import annotations

from typing import Callable, Dict, NoReturn, Type, TypeVar

from componentize_py_types import Err
from wit_world.imports.types import ErrorCode

__all__ = [
    "ErrorCode",
    "ChironError",
    "InvalidShape",
    "InvalidArgument",
    "ResourceExhausted",
    "BudgetExhausted",
    "NotAllowed",
    "OutOfRange",
    "error_for",
]


class ChironError(Exception):
    """A failure reported by the runtime: one of the world's fixed `ErrorCode`s.

    Raise a subclass (`raise chiron.InvalidArgument()`) to end `train` or `predict` with that
    code; `ChironError(code)` builds the subclass of `code`.
    """

    #: The world's error code of this class.
    code: ErrorCode = ErrorCode.INVALID_ARGUMENT

    def __new__(cls, code: ErrorCode | None = None, *args: object) -> "ChironError":
        if cls is ChironError:
            cls = _BY_CODE[code if code is not None else ErrorCode.INVALID_ARGUMENT]
        return super().__new__(cls)

    def __init__(self, code: ErrorCode | None = None, *args: object) -> None:
        super().__init__(self.code.name.lower().replace("_", "-"), *args)

    def to_err(self) -> Err:
        """The `componentize_py_types.Err` the world's exports raise for this error."""
        return Err(self.code)

    @staticmethod
    def from_err(err: Err) -> "ChironError":
        """The `ChironError` of an `Err(code)` raised by a generated binding."""
        return error_for(err.value)


class InvalidShape(ChironError):
    """Shapes do not fit the operation."""

    code = ErrorCode.INVALID_SHAPE


class InvalidArgument(ChironError):
    """An argument is out of range (axis, stride, probability, name, ...)."""

    code = ErrorCode.INVALID_ARGUMENT


class ResourceExhausted(ChironError):
    """A memory, tensor-count, element or work budget would be exceeded."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class BudgetExhausted(ChironError):
    """The step budget of the job is spent."""

    code = ErrorCode.BUDGET_EXHAUSTED


class NotAllowed(ChironError):
    """The call is not allowed in this phase (e.g. `data` during prediction)."""

    code = ErrorCode.NOT_ALLOWED


class OutOfRange(ChironError):
    """The requested records do not exist."""

    code = ErrorCode.OUT_OF_RANGE


_BY_CODE: Dict[ErrorCode, Type[ChironError]] = {
    cls.code: cls
    for cls in (InvalidShape, InvalidArgument, ResourceExhausted, BudgetExhausted, NotAllowed, OutOfRange)
}


def error_for(code: ErrorCode) -> ChironError:
    """The `ChironError` subclass instance for a world error code."""
    return _BY_CODE[code]()


T = TypeVar("T")


def call(fn: Callable[..., T], *args: object) -> T:
    """Calls a generated binding, turning its `Err(code)` into the `ChironError` of `code`."""
    try:
        return fn(*args)
    except Err as e:
        raise ChironError.from_err(e) from None


def fail(cls: Type[ChironError]) -> NoReturn:
    """Raises a fresh `cls` (helper for the SDK's own argument checks)."""
    raise cls()
